//! Records how the benchmarks were built (profile, RUSTFLAGS, rustc) so the load generator can
//! print it next to its figures.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .unwrap_or_default()
        .replace('\u{1f}', " ");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BITSAGE_BENCH_RUSTFLAGS={flags}");
    println!("cargo:rustc-env=BITSAGE_BENCH_PROFILE={profile}");
    println!("cargo:rustc-env=BITSAGE_BENCH_OPT_LEVEL={opt_level}");
    println!("cargo:rustc-env=BITSAGE_BENCH_RUSTC={rustc_version}");
}
