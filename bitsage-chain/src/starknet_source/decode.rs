//! Typed decoding of the felts a `starknet_call` returns into domain values.
//!
//! Cairo serialises a return value as a flat list of field elements: a `u256` is two felts
//! `[low, high]` (each below 2^128), an integer type one felt within its range, a `bool` one felt
//! `0`/`1`, an enum one felt holding the variant index (for unit variants), and a struct its
//! members in declaration order. Every reader here checks those rules and the exact length of
//! the answer, and says which field broke which rule: a malformed answer is a [`DecodeError`],
//! never a panic or a silently truncated value.

use bitsage_core::chain::{NetworkTotals, ReputationInfo, StakeInfo};
use bitsage_core::gpu::GpuTier;
use bitsage_core::time::Timestamp;
use bitsage_core::TokenAmount;
use starknet::core::types::Felt;

/// A contract answer that does not have the shape its ABI promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed answer from {function}: {reason}")]
pub struct DecodeError {
    /// The contract function whose answer was malformed, e.g. `"get_stake"`.
    pub function: &'static str,
    /// What was wrong, naming the field.
    pub reason: String,
}

/// `0x` followed by 64 lowercase hex digits: the canonical spelling of a felt (block hashes,
/// transaction hashes, addresses), the same as [`bitsage_core::WalletAddress`]'s display.
pub fn felt_hex(felt: &Felt) -> String {
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    for b in felt.to_bytes_be() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Reads Cairo values off a `starknet_call` answer, front to back.
#[derive(Debug)]
pub struct FeltReader<'a> {
    function: &'static str,
    felts: &'a [Felt],
    pos: usize,
}

impl<'a> FeltReader<'a> {
    /// A reader over the answer of `function`.
    pub fn new(function: &'static str, felts: &'a [Felt]) -> Self {
        Self {
            function,
            felts,
            pos: 0,
        }
    }

    fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            function: self.function,
            reason: reason.into(),
        }
    }

    fn next(&mut self, field: &str) -> Result<Felt, DecodeError> {
        let felt = self.felts.get(self.pos).copied().ok_or_else(|| {
            self.error(format!(
                "answer too short: field `{field}` expected at position {}, the answer has {} felt(s)",
                self.pos,
                self.felts.len()
            ))
        })?;
        self.pos += 1;
        Ok(felt)
    }

    /// A felt that must be below 2^128 (a `u128`, or one limb of a `u256`).
    pub fn u128(&mut self, field: &str) -> Result<u128, DecodeError> {
        let felt = self.next(field)?;
        let bytes = felt.to_bytes_be();
        let (high, low) = bytes.split_at(16);
        if high.iter().any(|b| *b != 0) {
            return Err(self.error(format!(
                "field `{field}` = {} is not below 2^128",
                felt_hex(&felt)
            )));
        }
        let mut limb = [0u8; 16];
        limb.copy_from_slice(low);
        Ok(u128::from_be_bytes(limb))
    }

    /// A Cairo `u256`: two felts `[low, high]`, each below 2^128.
    pub fn u256(&mut self, field: &str) -> Result<TokenAmount, DecodeError> {
        let low = self.u128(&format!("{field}.low"))?;
        let high = self.u128(&format!("{field}.high"))?;
        Ok(TokenAmount::from_limbs(low, high))
    }

    fn narrow<T: TryFrom<u128>>(&mut self, field: &str, ty: &str) -> Result<T, DecodeError> {
        let v = self.u128(field)?;
        T::try_from(v)
            .map_err(|_| self.error(format!("field `{field}` = {v} does not fit in {ty}")))
    }

    /// A Cairo `u64`.
    pub fn u64(&mut self, field: &str) -> Result<u64, DecodeError> {
        self.narrow(field, "u64")
    }

    /// A Cairo `u32`.
    pub fn u32(&mut self, field: &str) -> Result<u32, DecodeError> {
        self.narrow(field, "u32")
    }

    /// A Cairo `u8`.
    pub fn u8(&mut self, field: &str) -> Result<u8, DecodeError> {
        self.narrow(field, "u8")
    }

    /// A Cairo `bool`: exactly `0` or `1`.
    pub fn bool(&mut self, field: &str) -> Result<bool, DecodeError> {
        let felt = self.next(field)?;
        if felt == Felt::ZERO {
            Ok(false)
        } else if felt == Felt::ONE {
            Ok(true)
        } else {
            Err(self.error(format!(
                "field `{field}` = {} is not a bool (0 or 1)",
                felt_hex(&felt)
            )))
        }
    }

    /// The variant index of an enum of unit variants with `variants` variants.
    pub fn variant(&mut self, field: &str, variants: u64) -> Result<u64, DecodeError> {
        let v = self.u64(field)?;
        if v >= variants {
            return Err(self.error(format!(
                "field `{field}` = {v} is not a known variant (0..{variants})"
            )));
        }
        Ok(v)
    }

    /// A block timestamp (`u64` seconds since the Unix epoch); `0` means "never" (`None`).
    pub fn timestamp(&mut self, field: &str) -> Result<Option<Timestamp>, DecodeError> {
        let secs = self.u64(field)?;
        if secs == 0 {
            return Ok(None);
        }
        i64::try_from(secs)
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map(Some)
            .ok_or_else(|| {
                self.error(format!(
                    "field `{field}` = {secs} is not a representable timestamp"
                ))
            })
    }

    /// Ends the read: the answer must have had exactly the felts read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.pos != self.felts.len() {
            return Err(self.error(format!(
                "answer has {} felt(s), expected {}",
                self.felts.len(),
                self.pos
            )));
        }
        Ok(())
    }
}

/// `ProverStaking::get_stake` → [`StakeInfo`] (13 felts).
pub fn decode_stake(felts: &[Felt]) -> Result<StakeInfo, DecodeError> {
    let mut r = FeltReader::new("get_stake", felts);
    let amount = r.u256("amount")?;
    let locked_amount = r.u256("locked_amount")?;
    let staked_at = r.timestamp("staked_at")?;
    let last_claim_at = r.timestamp("last_claim_at")?;
    let tier = r.variant("gpu_tier", GpuTier::ALL.len() as u64)?;
    let gpu_tier = GpuTier::from_index(tier).map_err(|_| DecodeError {
        function: "get_stake",
        reason: format!("field `gpu_tier` = {tier} is not a known tier"),
    })?;
    let is_active = r.bool("is_active")?;
    let consecutive_failures = r.u32("consecutive_failures")?;
    let total_slashed = r.u256("total_slashed")?;
    let pending_rewards = r.u256("pending_rewards")?;
    r.finish()?;
    Ok(StakeInfo {
        amount,
        locked_amount,
        staked_at,
        last_claim_at,
        gpu_tier,
        is_active,
        consecutive_failures,
        total_slashed,
        pending_rewards,
    })
}

/// `ReputationManager::get_reputation` → [`ReputationInfo`] (8 felts). The score must be at most
/// 1000 and the level 1..=5, as the contract guarantees.
pub fn decode_reputation(felts: &[Felt]) -> Result<ReputationInfo, DecodeError> {
    let mut r = FeltReader::new("get_reputation", felts);
    let score = r.u32("score")?;
    let level = r.u8("level")?;
    let last_updated = r.timestamp("last_updated")?;
    let total_jobs_completed = r.u64("total_jobs_completed")?;
    let successful_jobs = r.u64("successful_jobs")?;
    let failed_jobs = r.u64("failed_jobs")?;
    let dispute_count = r.u64("dispute_count")?;
    let slash_count = r.u64("slash_count")?;
    r.finish()?;
    let bad = |reason: String| DecodeError {
        function: "get_reputation",
        reason,
    };
    if score > 1000 {
        return Err(bad(format!("field `score` = {score} is above 1000")));
    }
    if !(1..=5).contains(&level) {
        return Err(bad(format!("field `level` = {level} is outside 1..=5")));
    }
    Ok(ReputationInfo {
        score,
        level,
        last_updated,
        total_jobs_completed,
        successful_jobs,
        failed_jobs,
        dispute_count,
        slash_count,
    })
}

/// `SageToken::balance_of` → the balance (one `u256`).
pub fn decode_balance(felts: &[Felt]) -> Result<TokenAmount, DecodeError> {
    decode_single_u256("balance_of", "balance", felts)
}

/// `ProverStaking::get_min_stake` → the tier's minimum (one `u256`).
pub fn decode_min_stake(felts: &[Felt]) -> Result<TokenAmount, DecodeError> {
    decode_single_u256("get_min_stake", "minimum", felts)
}

/// `ProverStaking::apy_bps` → basis points a year (one `u256`, which must fit 64 bits).
pub fn decode_apy_bps(felts: &[Felt]) -> Result<u64, DecodeError> {
    let v = decode_single_u256("apy_bps", "rate", felts)?;
    let (low, high) = v.to_limbs();
    if high != 0 || low > u128::from(u64::MAX) {
        return Err(DecodeError {
            function: "apy_bps",
            reason: "rate does not fit 64 bits".into(),
        });
    }
    Ok(low as u64)
}

/// `ProverStaking::is_eligible` → a bool (one felt, 0 or 1).
pub fn decode_eligible(felts: &[Felt]) -> Result<bool, DecodeError> {
    let mut r = FeltReader::new("is_eligible", felts);
    let v = r.bool("eligible")?;
    r.finish()?;
    Ok(v)
}

/// `ProverStaking::total_staked` → [`NetworkTotals`] (one `u256`).
pub fn decode_totals(felts: &[Felt]) -> Result<NetworkTotals, DecodeError> {
    Ok(NetworkTotals {
        total_staked: decode_single_u256("total_staked", "total", felts)?,
    })
}

fn decode_single_u256(
    function: &'static str,
    field: &str,
    felts: &[Felt],
) -> Result<TokenAmount, DecodeError> {
    let mut r = FeltReader::new(function, felts);
    let v = r.u256(field)?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: u128) -> Felt {
        Felt::from(v)
    }

    /// 2^128 as a felt (one above the largest u128 limb).
    fn two_pow_128() -> Felt {
        Felt::from(u128::MAX) + Felt::ONE
    }

    fn good_stake() -> Vec<Felt> {
        vec![
            f(5),
            f(1), // amount = 2^128 + 5
            f(0),
            f(0),
            f(1_700_000_000),
            f(0),
            f(3),
            f(1),
            f(2),
            f(7),
            f(0),
            f(9),
            f(0),
        ]
    }

    #[test]
    fn stake_decodes_every_field() {
        let s = decode_stake(&good_stake()).expect("decodes");
        assert_eq!(s.amount, TokenAmount::from_limbs(5, 1));
        assert!(s.locked_amount.is_zero());
        assert_eq!(s.staked_at.map(|t| t.timestamp()), Some(1_700_000_000));
        assert_eq!(s.last_claim_at, None, "timestamp 0 reads as never");
        assert_eq!(s.gpu_tier, GpuTier::Enterprise);
        assert!(s.is_active);
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.total_slashed, TokenAmount::from(7u64));
        assert_eq!(s.pending_rewards, TokenAmount::from(9u64));
    }

    #[test]
    fn u256_limb_at_or_above_2_pow_128_is_rejected() {
        let mut felts = good_stake();
        felts[0] = two_pow_128();
        let e = decode_stake(&felts).expect_err("low limb too large");
        assert!(e.reason.contains("amount.low"), "{e}");
        assert!(e.reason.contains("2^128"), "{e}");
        let mut felts = good_stake();
        felts[1] = Felt::MAX;
        let e = decode_stake(&felts).expect_err("high limb too large");
        assert!(e.reason.contains("amount.high"), "{e}");
        // The largest limb is fine.
        let mut felts = good_stake();
        felts[0] = f(u128::MAX);
        assert!(decode_stake(&felts).is_ok());
    }

    #[test]
    fn bool_other_than_0_or_1_is_rejected() {
        let mut felts = good_stake();
        felts[7] = f(2);
        let e = decode_stake(&felts).expect_err("bool 2");
        assert!(
            e.reason.contains("is_active") && e.reason.contains("bool"),
            "{e}"
        );
    }

    #[test]
    fn unknown_tier_variant_is_rejected() {
        let mut felts = good_stake();
        felts[6] = f(5);
        let e = decode_stake(&felts).expect_err("tier 5");
        assert!(e.reason.contains("gpu_tier"), "{e}");
        for (i, tier) in GpuTier::ALL.iter().enumerate() {
            let mut felts = good_stake();
            felts[6] = f(i as u128);
            assert_eq!(decode_stake(&felts).expect("known tier").gpu_tier, *tier);
        }
    }

    #[test]
    fn integers_out_of_range_are_rejected() {
        let mut felts = good_stake();
        felts[8] = f(u32::MAX as u128 + 1);
        let e = decode_stake(&felts).expect_err("u32 overflow");
        assert!(
            e.reason.contains("consecutive_failures") && e.reason.contains("u32"),
            "{e}"
        );
        let mut felts = good_stake();
        felts[4] = f(u64::MAX as u128 + 1);
        let e = decode_stake(&felts).expect_err("u64 overflow");
        assert!(e.reason.contains("staked_at"), "{e}");
        // A u64 that chrono cannot represent as a time.
        let mut felts = good_stake();
        felts[4] = f(u64::MAX as u128);
        let e = decode_stake(&felts).expect_err("timestamp out of range");
        assert!(e.reason.contains("timestamp"), "{e}");
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        let mut felts = good_stake();
        felts.pop();
        let e = decode_stake(&felts).expect_err("short");
        assert!(e.reason.contains("too short"), "{e}");
        let mut felts = good_stake();
        felts.push(f(0));
        let e = decode_stake(&felts).expect_err("long");
        assert!(e.reason.contains("expected 13"), "{e}");
        assert!(decode_stake(&[]).is_err());
        assert!(decode_balance(&[f(1)]).is_err());
        assert!(decode_balance(&[f(1), f(0), f(0)]).is_err());
        assert!(decode_totals(&[]).is_err());
    }

    fn good_reputation() -> Vec<Felt> {
        vec![f(720), f(4), f(0), f(10), f(9), f(1), f(0), f(0)]
    }

    #[test]
    fn reputation_decodes_and_checks_its_ranges() {
        let r = decode_reputation(&good_reputation()).expect("decodes");
        assert_eq!((r.score, r.level, r.total_jobs_completed), (720, 4, 10));
        assert_eq!(r.last_updated, None);
        let mut felts = good_reputation();
        felts[0] = f(1001);
        assert!(decode_reputation(&felts)
            .expect_err("score")
            .reason
            .contains("score"));
        let mut felts = good_reputation();
        felts[1] = f(0);
        assert!(decode_reputation(&felts)
            .expect_err("level")
            .reason
            .contains("level"));
        let mut felts = good_reputation();
        felts[1] = f(256);
        assert!(decode_reputation(&felts)
            .expect_err("u8")
            .reason
            .contains("u8"));
    }

    #[test]
    fn single_u256_answers() {
        assert_eq!(
            decode_balance(&[f(3), f(2)]).expect("balance"),
            TokenAmount::from_limbs(3, 2)
        );
        assert_eq!(
            decode_totals(&[f(0), f(0)]).expect("totals").total_staked,
            TokenAmount::ZERO
        );
    }

    #[test]
    fn felt_hex_is_canonical() {
        assert_eq!(
            felt_hex(&f(0xab)),
            format!("0x{}ab", "0".repeat(62)),
            "0x + 64 lowercase digits"
        );
    }
}
