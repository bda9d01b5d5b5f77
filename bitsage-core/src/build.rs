//! What this build of the code was compiled for (named in `bitsage_build_info` and the
//! agent's start-up log; the prover refuses to start on a CPU without it).

/// The x86-64 micro-architecture level (or other target) this build assumes.
pub const fn target_level() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        if cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl"
        )) {
            "x86-64-v4"
        } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
            "x86-64-v3"
        } else if cfg!(target_feature = "sse4.2") {
            "x86-64-v2"
        } else {
            "x86-64"
        }
    } else if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        std::env::consts::ARCH
    }
}
