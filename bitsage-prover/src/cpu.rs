//! The CPU features this build of the prover was compiled for, and a check that the CPU it
//! runs on has them.
//!
//! stwo chooses its SIMD code at compile time (`target_feature` = AVX-512F → 16-lane M31
//! vectors, AVX2 → 8 lanes, else portable fallbacks), so a binary built for the baseline
//! x86-64 proves 2–3× slower than one built for the CPU's SIMD. The workspace therefore
//! builds for `x86-64-v3` (`.cargo/config.toml`); a binary built that way must not start on
//! an older CPU, where it would die of an illegal instruction at some later moment. The
//! binaries call [`check`] first thing, before any other code of theirs runs, and exit with
//! its message. Portable build for such CPUs: `RUSTFLAGS="-C target-cpu=x86-64" cargo build
//! --release`.

/// The x86-64 micro-architecture level (or other target) this build assumes
/// ([`bitsage_core::build::target_level`]).
pub const fn build_level() -> &'static str {
    bitsage_core::build::target_level()
}

/// The SIMD width stwo's backend was compiled with in this build.
pub fn simd_backend() -> &'static str {
    if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
        "avx512"
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
        "avx2"
    } else if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        "neon"
    } else {
        "portable"
    }
}

/// Instruction-set features this build uses that the CPU it runs on lacks (empty: it can run).
pub fn missing_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut missing = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! need {
            ($($f:tt),*) => {$(
                if cfg!(target_feature = $f) && !std::arch::is_x86_feature_detected!($f) {
                    missing.push($f);
                }
            )*};
        }
        need!(
            "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "bmi1", "bmi2", "fma",
            "lzcnt", "movbe", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"
        );
    }
    missing
}

/// `Err` with a message for the operator when this CPU lacks a feature the build uses.
pub fn check() -> Result<(), String> {
    let missing = missing_features();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "this binary was built for {} and this CPU lacks {}; build the portable variant with \
         RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release (it proves 2-3x slower)",
        build_level(),
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_running_the_tests_can_run_this_build() {
        assert_eq!(check(), Ok(()), "built for {}", build_level());
        assert!(!simd_backend().is_empty());
    }
}
