//! The verifier's security policy: the one STARK configuration a BitSage verifier accepts.
//!
//! # Parameters and why
//! - `log_blowup_factor = 2` (4× Reed–Solomon blowup): each query is worth 2 bits, so 40
//!   queries give 80 bits. At `log_blowup_factor = 1` the same security needs twice the
//!   queries (proof about twice as large, verification slower) for a commitment domain half
//!   as large; at 3 the proof shrinks by a third but the low-degree extension and Merkle
//!   commitments double again. 2 is the middle: the benchmark (`BENCHMARKS.md`, "Prover")
//!   measures the three on one job.
//! - `n_queries = 40`: 40 × 2 = 80 bits from FRI queries.
//! - `pow_bits = 20`: 2^20 BLAKE2s evaluations of grinding (milliseconds with SIMD), 20 more
//!   bits.
//!
//! Conjectured security: `pow_bits + n_queries × log_blowup_factor = 20 + 40 × 2 = 100` bits
//! (≥ [`bitsage_core::proof::MIN_SECURITY_BITS`] = 96). `PcsConfig::default()` would be 13 bits
//! and is never used. FRI folds one layer at a time down to a constant last layer.

use bitsage_core::proof::{SecurityConfig, MIN_SECURITY_BITS};
use stwo::core::fri::FriConfig;
use stwo::core::pcs::PcsConfig;

/// The configuration every proof must carry and every verifier imposes.
pub const SECURITY_POLICY: SecurityConfig = SecurityConfig {
    log_blowup_factor: 2,
    n_queries: 40,
    pow_bits: 20,
};

/// FRI's last layer degree bound (log2); fixed.
pub const LOG_LAST_LAYER_DEGREE_BOUND: u32 = 0;
/// FRI fold step; fixed.
pub const FOLD_STEP: u32 = 1;

const _: () = assert!(
    SECURITY_POLICY.pow_bits + SECURITY_POLICY.n_queries * SECURITY_POLICY.log_blowup_factor
        >= MIN_SECURITY_BITS
);

/// The stwo configuration for `config`, or `None` where stwo cannot use it (blowup outside
/// 1 ..= 16, pow bits above 32, no queries). `lifting_log_size` is the commitment domain every
/// tree is lifted to (stwo's prover needs all non-preprocessed trees at one height; the
/// composition polynomial's domain is the largest).
pub fn pcs_config(config: &SecurityConfig, lifting_log_size: Option<u32>) -> Option<PcsConfig> {
    if !(1..=16).contains(&config.log_blowup_factor)
        || config.pow_bits > 32
        || config.n_queries == 0
        || config.n_queries > 1024
    {
        return None;
    }
    Some(PcsConfig {
        pow_bits: config.pow_bits,
        fri_config: FriConfig::new(
            LOG_LAST_LAYER_DEGREE_BOUND,
            config.log_blowup_factor,
            config.n_queries as usize,
            FOLD_STEP,
        ),
        lifting_log_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_at_least_96_bits() {
        assert_eq!(SECURITY_POLICY.security_bits(), 100);
        let pcs = pcs_config(&SECURITY_POLICY, None).expect("policy is usable");
        assert_eq!(pcs.security_bits(), 100);
        assert!(pcs_config(
            &SecurityConfig {
                log_blowup_factor: 0,
                n_queries: 1,
                pow_bits: 0
            },
            None
        )
        .is_none());
    }
}
