//! Prover benchmarks: prove and verify time and proof size against trace size, Poseidon2
//! hashes proven per second, and our envelope's overhead over a bare stwo prove of the same AIR.
//!
//! Two parts, in one run:
//! 1. A summary table (printed to stdout and written to `target/bench-prover-summary.md`): for
//!    every size, `BITSAGE_BENCH_REPS` (default 3) interleaved repetitions of
//!    `StwoProver::prove_sync` (envelope: trace, stwo, postcard, zstd, hash) and
//!    `bitsage_prover::prove_raw` (bare stwo: trace and stwo only), medians, their ratio, verify
//!    time and proof sizes. Interleaving keeps drift on a shared machine out of the ratio.
//!    Chain lengths 2^8 … 2^`BITSAGE_BENCH_MAX_CHAIN_LOG` (default 16), wide-fibonacci (64
//!    columns) log_rows 10 … `BITSAGE_BENCH_MAX_FIB_LOG` (default 18).
//! 2. Criterion groups on the small sizes (sample size 10) for statistically sound figures.
//!
//! Run with `RUSTFLAGS="-C target-cpu=native"` so stwo's AVX2/AVX-512 paths are compiled in.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitsage_core::{JobId, JobKind, JobSpec};
use bitsage_prover::{prove_raw, verify_envelope, StwoProver, SECURITY_POLICY};
use criterion::{BenchmarkId, Criterion, Throughput};

const FIB_COLUMNS: u32 = 64;

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spec(kind: JobKind) -> JobSpec {
    match JobSpec::new(JobId(uuid::Uuid::from_u128(0xB175_A6E0)), kind) {
        Ok(s) => s,
        Err(e) => panic!("bench spec: {e}"),
    }
}

fn chain(log: u32) -> JobSpec {
    spec(JobKind::Poseidon2Chain {
        seed: 42,
        length: 1 << log,
    })
}

fn fib(log_rows: u32) -> JobSpec {
    spec(JobKind::WideFibonacci {
        columns: FIB_COLUMNS,
        log_rows,
        a: 1,
        b: 1,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Row {
    label: String,
    log_trace: u32,
    ours_ms: f64,
    bare_ms: f64,
    verify_ms: f64,
    seal_ms: f64,
    raw_bytes: u64,
    compressed_bytes: u64,
    hashes_per_s: Option<f64>,
}

fn measure(label: String, log_trace: u32, spec: &JobSpec, reps: usize, hashes: Option<u64>) -> Row {
    let prover = StwoProver::new();
    let (mut ours, mut bare, mut ver, mut seal) = (vec![], vec![], vec![], vec![]);
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        let env = prover
            .prove_sync(spec)
            .unwrap_or_else(|e| panic!("prove: {e}"));
        ours.push(ms(t.elapsed()));
        let t = Instant::now();
        let raw = prove_raw(spec, &SECURITY_POLICY).unwrap_or_else(|e| panic!("prove_raw: {e}"));
        bare.push(ms(t.elapsed()));
        // The envelope work alone, on that bare proof.
        let t = Instant::now();
        let sealed = bitsage_prover::envelope::seal(spec, &SECURITY_POLICY, raw, t)
            .unwrap_or_else(|e| panic!("seal: {e}"));
        seal.push(ms(t.elapsed()));
        black_box(sealed);
        let t = Instant::now();
        verify_envelope(spec, &env).unwrap_or_else(|e| panic!("verify: {e}"));
        ver.push(ms(t.elapsed()));
        last = Some(env);
    }
    let env = last.unwrap_or_else(|| panic!("no repetitions"));
    let ours_ms = median(ours);
    Row {
        label,
        log_trace,
        ours_ms,
        bare_ms: median(bare),
        verify_ms: median(ver),
        seal_ms: median(seal),
        raw_bytes: env.sizes.raw_bytes,
        compressed_bytes: env.sizes.compressed_bytes,
        hashes_per_s: hashes.map(|h| h as f64 / (ours_ms / 1e3)),
    }
}

fn summary() {
    let reps = env_u32("BITSAGE_BENCH_REPS", 3).max(1) as usize;
    let max_chain = env_u32("BITSAGE_BENCH_MAX_CHAIN_LOG", 16);
    let max_fib = env_u32("BITSAGE_BENCH_MAX_FIB_LOG", 18);
    let mut rows = vec![];
    for log in 8..=max_chain {
        let r = measure(
            format!("poseidon2-chain length 2^{log}"),
            log,
            &chain(log),
            reps,
            Some(1 << log),
        );
        eprintln!(
            "{}: ours {:.1} ms, bare {:.1} ms",
            r.label, r.ours_ms, r.bare_ms
        );
        rows.push(r);
    }
    for log in (10..=max_fib).step_by(2) {
        let r = measure(
            format!("wide-fibonacci {FIB_COLUMNS} cols, 2^{log} rows"),
            log,
            &fib(log),
            reps,
            None,
        );
        eprintln!(
            "{}: ours {:.1} ms, bare {:.1} ms",
            r.label, r.ours_ms, r.bare_ms
        );
        rows.push(r);
    }
    let mut out = String::new();
    out.push_str(&format!(
        "Medians of {reps} interleaved repetitions; policy: log_blowup {}, {} queries, {} pow bits.\n\n",
        SECURITY_POLICY.log_blowup_factor, SECURITY_POLICY.n_queries, SECURITY_POLICY.pow_bits
    ));
    out.push_str("| job | log2 rows | prove (envelope) ms | bare stwo ms | overhead ratio (medians) | envelope work ms | overhead ratio ((bare + envelope) / bare) | verify ms | proof raw KiB | proof zstd KiB | Poseidon2 hashes/s |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.3} | {:.2} | {:.4} | {:.2} | {:.1} | {:.1} | {} |\n",
            r.label,
            r.log_trace,
            r.ours_ms,
            r.bare_ms,
            r.ours_ms / r.bare_ms,
            r.seal_ms,
            (r.bare_ms + r.seal_ms) / r.bare_ms,
            r.verify_ms,
            r.raw_bytes as f64 / 1024.0,
            r.compressed_bytes as f64 / 1024.0,
            r.hashes_per_s
                .map(|h| format!("{h:.0}"))
                .unwrap_or_else(|| "—".into()),
        ));
    }
    out.push_str(&config_comparison(reps));
    println!("{out}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("bench-prover-summary.md");
    if let Err(e) = std::fs::write(&path, &out) {
        eprintln!("could not write {}: {e}", path.display());
    }
}

/// Prove time vs proof size for the policy and two other ≈ 96–100-bit configurations, on one
/// chain (the evidence behind the policy's choice).
fn config_comparison(reps: usize) -> String {
    use bitsage_core::proof::SecurityConfig;
    let log = env_u32("BITSAGE_BENCH_CONFIG_LOG", 14);
    let s = chain(log);
    let mut out = format!(
        "\nConfiguration trade-off (poseidon2-chain length 2^{log}; only the policy verifies):\n\n"
    );
    out.push_str("| log_blowup | queries | pow bits | bits | prove ms | proof zstd KiB |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|\n");
    for config in [
        SecurityConfig {
            log_blowup_factor: 1,
            n_queries: 80,
            pow_bits: 20,
        },
        SECURITY_POLICY,
        SecurityConfig {
            log_blowup_factor: 3,
            n_queries: 27,
            pow_bits: 20,
        },
    ] {
        let prover = StwoProver::with_config(config);
        let mut times = vec![];
        let mut size = 0;
        for _ in 0..reps {
            let t = Instant::now();
            let env = prover
                .prove_sync(&s)
                .unwrap_or_else(|e| panic!("prove: {e}"));
            times.push(ms(t.elapsed()));
            size = env.sizes.compressed_bytes;
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} |\n",
            config.log_blowup_factor,
            config.n_queries,
            config.pow_bits,
            config.security_bits(),
            median(times),
            size as f64 / 1024.0
        ));
    }
    out
}

fn criterion_groups(c: &mut Criterion) {
    let prover = StwoProver::new();
    let mut g = c.benchmark_group("prover/poseidon2-chain");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for log in [8u32, 10, 12] {
        let s = chain(log);
        g.throughput(Throughput::Elements(1 << log));
        g.bench_with_input(BenchmarkId::new("prove_envelope", log), &s, |b, s| {
            b.iter(|| prover.prove_sync(s))
        });
        g.bench_with_input(BenchmarkId::new("prove_bare_stwo", log), &s, |b, s| {
            b.iter(|| prove_raw(s, &SECURITY_POLICY))
        });
        let env = prover
            .prove_sync(&s)
            .unwrap_or_else(|e| panic!("prove: {e}"));
        g.bench_with_input(BenchmarkId::new("verify", log), &s, |b, s| {
            b.iter(|| verify_envelope(s, &env))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("prover/wide-fibonacci-64");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for log in [10u32, 12] {
        let s = fib(log);
        g.throughput(Throughput::Elements(u64::from(FIB_COLUMNS) << log));
        g.bench_with_input(BenchmarkId::new("prove_envelope", log), &s, |b, s| {
            b.iter(|| prover.prove_sync(s))
        });
        g.bench_with_input(BenchmarkId::new("prove_bare_stwo", log), &s, |b, s| {
            b.iter(|| prove_raw(s, &SECURITY_POLICY))
        });
    }
    g.finish();
}

fn main() {
    if std::env::var_os("BITSAGE_BENCH_SKIP_SUMMARY").is_none() {
        summary();
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c);
    c.final_summary();
}
