//! Proves and verifies a job with `bitsage-prover` alone — no coordinator, no network — and
//! shows what the verifier refuses.
//!
//! ```text
//! cargo run -p bitsage-prover --example prove_and_verify
//! ```
//!
//! What it does:
//! 1. builds a [`JobSpec`] (a `poseidon2-chain` of 64 permutations; the job id is bound into
//!    the proof's transcript),
//! 2. proves it with [`StwoProver`] through the [`Prover`] port (what a node runs) and prints
//!    the proof hash, its size and the security level,
//! 3. verifies it twice: through the [`Prover`] port and with the free function
//!    [`verify_envelope`] (all a verifier needs: the spec it asked for and the envelope),
//!    after a round trip through the envelope's JSON form,
//! 4. shows three forgeries rejected with [`Error::ProofRejected`]: a changed public output
//!    (with the envelope's hash recomputed, so only the STARK can catch it), the proof checked
//!    against another job's spec, and the proof relabelled as that other job.
//!
//! `cargo test -p bitsage-prover --example prove_and_verify` runs it as a test.

use bitsage_core::proof::ProofEnvelope;
use bitsage_core::{Error, JobId, JobKind, JobSpec, Prover};
use bitsage_prover::{decode_envelope_json, encode_envelope_json, verify_envelope, StwoProver};

/// What a run found (the test asserts on it).
#[derive(Debug)]
struct Report {
    /// The proven output (16 M31 elements as hex).
    output: String,
    /// Security bits of the verifier's policy the proof met.
    security_bits: u32,
    /// The rejection of each forgery, in order.
    rejections: Vec<Error>,
}

/// Proves, verifies and tries the forgeries; prints what happens.
async fn run() -> Result<Report, Error> {
    // A job is its id and its kind with parameters. A coordinator picks the id; here any
    // fresh one will do.
    let spec = JobSpec::new(
        JobId::new(),
        JobKind::Poseidon2Chain {
            seed: 2024,
            length: 64,
        },
    )?;
    println!("job        {} ({})", spec.id, spec.kind.name());

    // Prove (a node's side). `Prover::prove` runs the prover on a blocking thread;
    // `StwoProver::prove_sync` is the same thing for synchronous callers.
    let prover = StwoProver::new();
    let envelope = prover.prove(&spec).await?;
    println!("output     {}", envelope.output);
    println!("proof hash {}", envelope.proof_hash);
    println!(
        "proof size {} bytes compressed ({} serialized), proven in {:.1} ms",
        envelope.sizes.compressed_bytes, envelope.sizes.raw_bytes, envelope.timings.total_ms
    );

    // Verify through the port (what a coordinator calls)...
    let verified = prover.verify(&spec, &envelope).await?;
    println!(
        "verified   {} at {} bits of security (policy {:?})",
        verified.kind, verified.security_bits, envelope.config
    );
    // ...and with the free function, after the envelope went over the wire as JSON. The
    // verifier rebuilds the statement from the spec it asked for, never from the envelope.
    let json = encode_envelope_json(&envelope)?;
    let received = decode_envelope_json(&json)?;
    let again = verify_envelope(&spec, &received)?;
    assert_eq!(again, verified);
    println!("verified   again from {} bytes of JSON", json.len());

    // Forgeries.
    let other = JobSpec::new(
        JobId::new(),
        JobKind::Poseidon2Chain {
            seed: 2025,
            length: 64,
        },
    )?;
    let mut rejections = Vec::new();
    let mut attempt = |what: &str, spec: &JobSpec, envelope: &ProofEnvelope| match verify_envelope(
        spec, envelope,
    ) {
        Ok(_) => println!("ACCEPTED   {what} (this must not happen)"),
        Err(e) => {
            println!("rejected   {what}: {e}");
            rejections.push(e);
        }
    };

    // 1. Another output claimed. Recomputing the envelope's hash passes the envelope checks;
    //    the STARK, whose statement is the claimed output, does not verify.
    let mut forged = envelope.clone();
    forged.public_output[0] = (forged.public_output[0] + 1) % ((1 << 31) - 1);
    reseal(&mut forged);
    attempt("a changed output", &spec, &forged);

    // 2. The genuine proof offered for another job.
    attempt("the proof checked against another job", &other, &envelope);

    // 3. The proof relabelled as the other job and resealed: the job (id, parameters) is in
    //    the transcript, so the proof does not transfer.
    let mut relabelled = envelope.clone();
    relabelled.job = other.clone();
    reseal(&mut relabelled);
    attempt("the proof relabelled as another job", &other, &relabelled);

    Ok(Report {
        output: verified.output,
        security_bits: verified.security_bits,
        rejections,
    })
}

/// Makes an altered envelope self-consistent (output text, hash), as a careful forger would.
fn reseal(envelope: &mut ProofEnvelope) {
    envelope.output = bitsage_core::proof::output_text(&envelope.public_output);
    envelope.proof_hash = bitsage_prover::envelope::proof_hash(
        envelope.format_version,
        &envelope.job,
        &envelope.public_output,
        &envelope.config,
        &envelope.proof,
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The build targets x86-64-v3 by default: say so clearly on an older CPU.
    bitsage_prover::cpu::check()?;
    let report = run().await?;
    if report.rejections.len() != 3 {
        return Err("a forgery was accepted".into());
    }
    println!(
        "done       output {}… proven at {} bits; {} forgeries rejected",
        &report.output[..16],
        report.security_bits,
        report.rejections.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs() {
        let report = run().await.expect("prove and verify");
        assert_eq!(report.output.len(), 16 * 8, "16 M31 elements as hex");
        assert!(report.security_bits >= bitsage_core::proof::MIN_SECURITY_BITS);
        assert_eq!(report.rejections.len(), 3, "every forgery is rejected");
        for e in &report.rejections {
            assert!(matches!(e, Error::ProofRejected(_)), "{e:?}");
        }
    }
}
