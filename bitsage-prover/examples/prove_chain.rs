//! Proves and verifies a Poseidon2 chain job with `bitsage-prover` alone, and prints how long
//! it took with this build's SIMD backend.
//!
//! ```text
//! cargo run --release -p bitsage-prover --example prove_chain -- [LOG2_LENGTH] [REPS]
//! ```
//!
//! Used to compare builds (the default `x86-64-v3`, `-C target-cpu=native`, the baseline
//! `-C target-cpu=x86-64`): each prints one line with its SIMD backend and the median times.

use std::time::Instant;

use bitsage_core::{JobId, JobKind, JobSpec};
use bitsage_prover::{cpu, verify_envelope, StwoProver};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cpu::check()?;
    let mut args = std::env::args().skip(1);
    let log: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(14);
    let reps: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let spec = JobSpec::new(
        JobId::parse("00000000-0000-0000-0000-0000b175a6e0")?,
        JobKind::Poseidon2Chain {
            seed: 42,
            length: 1 << log,
        },
    )?;
    let prover = StwoProver::new();
    let (mut prove, mut verify) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let envelope = prover.prove_sync(&spec)?;
        prove.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        verify_envelope(&spec, &envelope)?;
        verify.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "built_for={} simd={} chain=2^{log} reps={} prove_ms_median={:.1} verify_ms_median={:.2}",
        cpu::build_level(),
        cpu::simd_backend(),
        reps.max(1),
        median(prove),
        median(verify)
    );
    Ok(())
}
