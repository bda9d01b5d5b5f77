//! Shared fixtures for the prover tests.
#![allow(dead_code)]

use std::sync::OnceLock;

use bitsage_core::proof::ProofEnvelope;
use bitsage_core::{JobId, JobKind, JobSpec};
use bitsage_prover::StwoProver;

/// A small chain job (length not a power of two: exercises padding).
pub(crate) fn chain_spec(seed: u64, length: u32) -> JobSpec {
    JobSpec::new(JobId::new(), JobKind::Poseidon2Chain { seed, length }).expect("valid spec")
}

/// A small wide-fibonacci job.
pub(crate) fn fib_spec(columns: u32, log_rows: u32, a: u32, b: u32) -> JobSpec {
    JobSpec::new(
        JobId::new(),
        JobKind::WideFibonacci {
            columns,
            log_rows,
            a,
            b,
        },
    )
    .expect("valid spec")
}

/// One chain proof, made once per test binary.
pub(crate) fn chain_fixture() -> &'static (JobSpec, ProofEnvelope) {
    static F: OnceLock<(JobSpec, ProofEnvelope)> = OnceLock::new();
    F.get_or_init(|| {
        let spec = chain_spec(42, 21);
        let env = StwoProver::new().prove_sync(&spec).expect("prove");
        (spec, env)
    })
}

/// One wide-fibonacci proof, made once per test binary.
pub(crate) fn fib_fixture() -> &'static (JobSpec, ProofEnvelope) {
    static F: OnceLock<(JobSpec, ProofEnvelope)> = OnceLock::new();
    F.get_or_init(|| {
        let spec = fib_spec(8, 5, 3, 4);
        let env = StwoProver::new().prove_sync(&spec).expect("prove");
        (spec, env)
    })
}

/// Re-seals `env` after its statement or proof bytes were changed, so that only the STARK
/// itself can catch the change (sizes, output text and hash made consistent).
pub(crate) fn reseal(env: &mut ProofEnvelope) {
    env.output = bitsage_core::proof::output_text(&env.public_output);
    env.sizes.compressed_bytes = env.proof.len() as u64;
    env.proof_hash = bitsage_prover::envelope::proof_hash(
        env.format_version,
        &env.job,
        &env.public_output,
        &env.config,
        &env.proof,
    );
}

/// Decompressed proof bytes of an envelope.
pub(crate) fn raw_proof(env: &ProofEnvelope) -> Vec<u8> {
    zstd::bulk::decompress(&env.proof, env.sizes.raw_bytes as usize).expect("decompress")
}

/// Replaces an envelope's proof with `raw` (compressed as the prover does) and reseals it.
pub(crate) fn replace_raw_proof(env: &mut ProofEnvelope, raw: &[u8]) {
    let mut c = zstd::bulk::Compressor::new(bitsage_prover::envelope::ZSTD_LEVEL).expect("zstd");
    c.include_contentsize(true).expect("zstd");
    c.include_checksum(true).expect("zstd");
    env.proof = c.compress(raw).expect("compress");
    env.sizes.raw_bytes = raw.len() as u64;
    reseal(env);
}
