//! Round trips, statement binding, policy enforcement, determinism and agreement with the
//! reference implementations.

use crate::common;

use bitsage_core::proof::{SecurityConfig, MIN_SECURITY_BITS};
use bitsage_core::{Error, JobId, JobKind, JobSpec};
use bitsage_prover::{
    poseidon2, verify_envelope, wide_fibonacci_reference, StwoProver, SECURITY_POLICY,
};
use common::{chain_fixture, chain_spec, fib_fixture, fib_spec, reseal};
use rand::{Rng, SeedableRng};

fn assert_rejected<T: std::fmt::Debug>(r: bitsage_core::Result<T>, what: &str) {
    match r {
        Err(Error::ProofRejected(_)) | Err(Error::Invalid { .. }) => {}
        other => panic!("{what} was not rejected: {other:?}"),
    }
}

#[test]
fn chain_round_trips_at_several_sizes_and_matches_the_reference() {
    let prover = StwoProver::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xB175A6E);
    for length in [1u32, 2, 16, 17, 100, 300] {
        let seed: u64 = rng.gen();
        let spec = chain_spec(seed, length);
        let env = prover.prove_sync(&spec).expect("prove");
        assert_eq!(
            env.public_output,
            poseidon2::chain_digest(seed, length).to_vec(),
            "AIR digest differs from the reference for seed {seed}, length {length}"
        );
        let v = verify_envelope(&spec, &env).expect("verify");
        assert_eq!(v.kind, "poseidon2-chain");
        assert!(v.security_bits >= MIN_SECURITY_BITS);
        assert_eq!(v.output, env.output);
        assert_eq!(env.sizes.compressed_bytes, env.proof.len() as u64);
        assert_eq!(env.commitments.len(), 4);
    }
}

#[test]
fn wide_fibonacci_round_trips_and_matches_the_reference() {
    let prover = StwoProver::new();
    for (columns, log_rows, a, b) in [(2, 4, 1, 1), (3, 4, 5, 7), (16, 6, 1, 2), (64, 8, 123, 456)]
    {
        let spec = fib_spec(columns, log_rows, a, b);
        let env = prover.prove_sync(&spec).expect("prove");
        assert_eq!(
            env.public_output,
            wide_fibonacci_reference(columns, log_rows, a, b).to_vec()
        );
        let v = verify_envelope(&spec, &env).expect("verify");
        assert_eq!(v.kind, "wide-fibonacci");
    }
}

#[test]
fn proving_is_deterministic() {
    let (spec, env) = chain_fixture();
    let again = StwoProver::new().prove_sync(spec).expect("prove");
    assert_eq!(again.proof, env.proof);
    assert_eq!(again.proof_hash, env.proof_hash);
    assert_eq!(again.commitments, env.commitments);
    let (spec, env) = fib_fixture();
    let again = StwoProver::new().prove_sync(spec).expect("prove");
    assert_eq!(again.proof, env.proof);
    assert_eq!(again.proof_hash, env.proof_hash);
}

#[test]
fn chain_proof_does_not_verify_for_another_statement() {
    let (spec, env) = chain_fixture();
    let JobKind::Poseidon2Chain { seed, length } = spec.kind else {
        unreachable!()
    };
    // Other job id, seed, length: the envelope names the original job.
    for kind in [
        JobKind::Poseidon2Chain {
            seed: seed + 1,
            length,
        },
        JobKind::Poseidon2Chain {
            seed,
            length: length + 1,
        },
        JobKind::Poseidon2Chain {
            seed,
            length: length - 1,
        },
    ] {
        let other = JobSpec { id: spec.id, kind };
        assert_rejected(verify_envelope(&other, env), "another statement");
        // Even when the envelope is relabelled consistently, the STARK rejects it.
        let mut relabelled = env.clone();
        relabelled.job = other.clone();
        reseal(&mut relabelled);
        assert_rejected(
            verify_envelope(&other, &relabelled),
            "a relabelled statement",
        );
    }
    let other_id = JobSpec {
        id: JobId::new(),
        kind: spec.kind.clone(),
    };
    let mut relabelled = env.clone();
    relabelled.job = other_id.clone();
    reseal(&mut relabelled);
    assert_rejected(
        verify_envelope(&other_id, &relabelled),
        "a replay under another job id",
    );

    // A wrong digest (consistent everywhere but the proof) is rejected.
    for i in [0usize, 7, 15] {
        let mut forged = env.clone();
        forged.public_output[i] = (forged.public_output[i] + 1) % poseidon2::P;
        reseal(&mut forged);
        assert_rejected(verify_envelope(spec, &forged), "a forged digest");
    }
    // The digest of the chain one step shorter or longer.
    for l in [length - 1, length + 1] {
        let mut forged = env.clone();
        forged.public_output = poseidon2::chain_digest(seed, l).to_vec();
        reseal(&mut forged);
        assert_rejected(verify_envelope(spec, &forged), "a digest of another length");
    }
}

#[test]
fn wide_fibonacci_proof_does_not_verify_for_another_statement() {
    let (spec, env) = fib_fixture();
    let JobKind::WideFibonacci {
        columns,
        log_rows,
        a,
        b,
    } = spec.kind
    else {
        unreachable!()
    };
    for kind in [
        JobKind::WideFibonacci {
            columns,
            log_rows,
            a: a + 1,
            b,
        },
        JobKind::WideFibonacci {
            columns,
            log_rows,
            a,
            b: b + 1,
        },
        JobKind::WideFibonacci {
            columns: columns + 1,
            log_rows,
            a,
            b,
        },
        JobKind::WideFibonacci {
            columns,
            log_rows: log_rows + 1,
            a,
            b,
        },
    ] {
        let other = JobSpec { id: spec.id, kind };
        let mut relabelled = env.clone();
        relabelled.job = other.clone();
        reseal(&mut relabelled);
        assert_rejected(
            verify_envelope(&other, &relabelled),
            "a relabelled statement",
        );
    }
    let mut forged = env.clone();
    forged.public_output[1] = (forged.public_output[1] + 1) % poseidon2::P;
    reseal(&mut forged);
    assert_rejected(verify_envelope(spec, &forged), "a forged last value");
}

#[test]
fn weaker_configurations_are_rejected() {
    let spec = chain_spec(9, 10);
    let weak = SecurityConfig {
        log_blowup_factor: 1,
        n_queries: 12,
        pow_bits: 4,
    };
    let env = StwoProver::with_config(weak)
        .prove_sync(&spec)
        .expect("prove weak");
    assert_eq!(env.config, weak);
    assert_rejected(verify_envelope(&spec, &env), "a weak proof");
    // Claiming the policy in the envelope does not help: the proof carries its own config.
    let mut lying = env.clone();
    lying.config = SECURITY_POLICY;
    reseal(&mut lying);
    assert_rejected(
        verify_envelope(&spec, &lying),
        "a weak proof claiming the policy",
    );
    // Stronger-but-different is rejected too: the verifier owns the configuration.
    let other = SecurityConfig {
        log_blowup_factor: 2,
        n_queries: 41,
        pow_bits: 20,
    };
    let env = StwoProver::with_config(other)
        .prove_sync(&spec)
        .expect("prove other");
    assert_rejected(verify_envelope(&spec, &env), "a non-policy proof");
}

#[test]
fn invalid_jobs_are_refused_before_proving() {
    let bad = JobSpec {
        id: JobId::new(),
        kind: JobKind::Poseidon2Chain { seed: 1, length: 0 },
    };
    assert!(matches!(
        StwoProver::new().prove_sync(&bad),
        Err(Error::Invalid { .. })
    ));
    let huge = JobSpec {
        id: JobId::new(),
        kind: JobKind::WideFibonacci {
            columns: 1024,
            log_rows: 22,
            a: 1,
            b: 1,
        },
    };
    assert!(matches!(
        StwoProver::new().prove_sync(&huge),
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test]
async fn core_prover_conformance_suite() {
    let prover = StwoProver::new();
    let specs = [chain_spec(5, 3), fib_spec(4, 4, 1, 1)];
    bitsage_core::conformance::prover::run_all(&prover, &specs).await;
}
