//! Conformance suite for [`Prover`].

use crate::job::JobSpec;
use crate::proof::MIN_SECURITY_BITS;
use crate::{Error, JobId, Prover};

/// Runs every check over `specs` (small jobs: each is proven a few times).
pub async fn run_all(prover: &dyn Prover, specs: &[JobSpec]) {
    for spec in specs {
        round_trip_and_determinism(prover, spec).await;
        rejects_other_statement(prover, spec).await;
        rejects_tampering(prover, spec).await;
        rejects_weaker_config(prover, spec).await;
        survives_json_and_binds_public_output(prover, spec).await;
    }
}

/// A proof verifies at ≥ 96 bits, and the same job proves to the same bytes.
pub async fn round_trip_and_determinism(prover: &dyn Prover, spec: &JobSpec) {
    let a = prover.prove(spec).await.expect("prove");
    let v = prover.verify(spec, &a).await.expect("verify own proof");
    assert!(
        v.security_bits >= MIN_SECURITY_BITS,
        "{} bits",
        v.security_bits
    );
    assert_eq!(v.proof_hash, a.proof_hash);
    assert_eq!(v.output, a.output);
    let b = prover.prove(spec).await.expect("prove again");
    assert_eq!(a.proof, b.proof, "proving is not deterministic");
    assert_eq!(a.proof_hash, b.proof_hash);
}

/// A proof does not verify for another job (another id, or other parameters).
pub async fn rejects_other_statement(prover: &dyn Prover, spec: &JobSpec) {
    let env = prover.prove(spec).await.expect("prove");
    let other_id = JobSpec {
        id: JobId::new(),
        kind: spec.kind.clone(),
    };
    expect_rejected(prover.verify(&other_id, &env).await, "another job id");
    let mut other_kind = spec.clone();
    match &mut other_kind.kind {
        crate::JobKind::Poseidon2Chain { seed, .. } => *seed = seed.wrapping_add(1),
        crate::JobKind::WideFibonacci { a, .. } => *a = (*a + 1) % crate::job::M31_MODULUS,
    }
    expect_rejected(prover.verify(&other_kind, &env).await, "other parameters");
    let mut wrong_output = env.clone();
    wrong_output.output.push('0');
    expect_rejected(
        prover.verify(spec, &wrong_output).await,
        "an altered output",
    );
    let mut other_job = env.clone();
    other_job.job.id = JobId::new();
    expect_rejected(
        prover.verify(spec, &other_job).await,
        "an envelope naming another job",
    );
}

/// An envelope survives a JSON round trip (it is what travels), carries the job it proves, and
/// any change to its public output, commitments or format version is rejected.
pub async fn survives_json_and_binds_public_output(prover: &dyn Prover, spec: &JobSpec) {
    let env = prover.prove(spec).await.expect("prove");
    assert_eq!(&env.job, spec, "the envelope must carry the job it proves");
    assert_eq!(env.format_version, crate::proof::PROOF_FORMAT_VERSION);
    assert_eq!(env.output, crate::proof::output_text(&env.public_output));
    assert_eq!(env.sizes.compressed_bytes, env.proof.len() as u64);
    let json = serde_json::to_string(&env).expect("envelope to JSON");
    let back: crate::proof::ProofEnvelope =
        serde_json::from_str(&json).expect("envelope from JSON");
    // Timings are floats and informational: JSON may round them.
    let mut same = back.clone();
    same.timings = env.timings;
    assert!(same == env, "the envelope changed in a JSON round trip");
    prover
        .verify(spec, &back)
        .await
        .expect("verify after a JSON round trip");
    for i in 0..env.public_output.len() {
        let mut t = env.clone();
        t.public_output[i] = (t.public_output[i] + 1) % crate::job::M31_MODULUS;
        t.output = crate::proof::output_text(&t.public_output);
        expect_rejected(prover.verify(spec, &t).await, "an altered public output");
    }
    if !env.commitments.is_empty() {
        let mut t = env.clone();
        t.commitments[0].0[0] ^= 1;
        expect_rejected(prover.verify(spec, &t).await, "an altered commitment");
    }
    let mut t = env.clone();
    t.format_version = t.format_version.wrapping_add(1);
    expect_rejected(prover.verify(spec, &t).await, "another format version");
}

/// Flipping bytes of the proof is always rejected.
pub async fn rejects_tampering(prover: &dyn Prover, spec: &JobSpec) {
    let env = prover.prove(spec).await.expect("prove");
    let n = env.proof.len();
    for pos in [0, n / 3, n / 2, n.saturating_sub(1)] {
        let mut t = env.clone();
        if let Some(b) = t.proof.get_mut(pos) {
            *b ^= 0x01;
        }
        expect_rejected(prover.verify(spec, &t).await, "a flipped proof byte");
    }
    let mut t = env.clone();
    t.proof_hash.0[0] ^= 1;
    expect_rejected(prover.verify(spec, &t).await, "an altered proof hash");
}

/// A proof claiming a configuration other than the verifier's policy is rejected.
pub async fn rejects_weaker_config(prover: &dyn Prover, spec: &JobSpec) {
    let env = prover.prove(spec).await.expect("prove");
    let mut weak = env.clone();
    weak.config.n_queries = 3;
    weak.config.pow_bits = 5;
    expect_rejected(prover.verify(spec, &weak).await, "a weaker configuration");
}

fn expect_rejected<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::ProofRejected(_)) | Err(Error::Invalid { .. }) => {}
        other => panic!("a proof with {what} was not rejected: {other:?}"),
    }
}
