//! Sealing, encoding and checking [`ProofEnvelope`]s.
//!
//! - Proof bytes: `postcard` of stwo's `StarkProof`, compressed with zstd (level
//!   [`ZSTD_LEVEL`], content size recorded in the frame). The decoder refuses frames declaring
//!   more than [`MAX_RAW_PROOF_BYTES`] and re-encodes the decoded proof to check the bytes are
//!   canonical.
//! - Proof hash: BLAKE2s-256 over a length-prefixed canonical encoding
//!   ([`bitsage_core::crypto::CanonicalWriter`], domain [`PROOF_HASH_DOMAIN`]) of the format
//!   version, job id, kind and parameters, public output, configuration and compressed proof.

use std::time::Instant;

use bitsage_core::crypto::{CanonicalWriter, Hash32};
use bitsage_core::job::{JobKind, JobSpec};
use bitsage_core::proof::{
    output_text, ProofEnvelope, ProofSizes, ProverTimings, SecurityConfig, VerifiedProof,
    PROOF_FORMAT_VERSION,
};
use bitsage_core::{Error, Result};
use blake2::{Blake2s256, Digest};

use crate::policy::SECURITY_POLICY;
use crate::stark::{self, Proof, RawProof};

/// zstd level used for proofs (deterministic for a given zstd build).
pub const ZSTD_LEVEL: i32 = 3;
/// Largest decompressed proof accepted (bytes).
pub const MAX_RAW_PROOF_BYTES: u64 = 64 << 20;
/// Largest compressed proof accepted (bytes).
pub const MAX_COMPRESSED_PROOF_BYTES: usize = 64 << 20;
/// Largest envelope JSON accepted (bytes; the proof is hex in JSON).
pub const MAX_ENVELOPE_JSON_BYTES: usize = 2 * MAX_COMPRESSED_PROOF_BYTES + (1 << 20);
/// Domain-separation tag of the proof hash.
pub const PROOF_HASH_DOMAIN: &str = "bitsage/proof-envelope/v1";

fn rejected(msg: impl Into<String>) -> Error {
    Error::ProofRejected(msg.into())
}

/// The envelope's hash over its canonical bytes (see the module docs).
pub fn proof_hash(
    format_version: u16,
    job: &JobSpec,
    public_output: &[u32],
    config: &SecurityConfig,
    compressed_proof: &[u8],
) -> Hash32 {
    let mut w = CanonicalWriter::new(PROOF_HASH_DOMAIN);
    w.field(&format_version.to_be_bytes());
    w.field(job.id.0.as_bytes());
    w.field(job.kind.name().as_bytes());
    match job.kind {
        JobKind::Poseidon2Chain { seed, length } => {
            w.field(&seed.to_be_bytes());
            w.field(&length.to_be_bytes());
        }
        JobKind::WideFibonacci {
            columns,
            log_rows,
            a,
            b,
        } => {
            for v in [columns, log_rows, a, b] {
                w.field(&v.to_be_bytes());
            }
        }
    }
    let out: Vec<u8> = public_output.iter().flat_map(|e| e.to_be_bytes()).collect();
    w.field(&out);
    w.field(&config.log_blowup_factor.to_be_bytes());
    w.field(&config.n_queries.to_be_bytes());
    w.field(&config.pow_bits.to_be_bytes());
    w.field(compressed_proof);
    Hash32(Blake2s256::digest(w.finish()).into())
}

/// Wraps a raw proof into an envelope: serialize, compress, hash (`start`: when proving
/// began, for the total time). All the work our envelope adds to a bare stwo prove.
pub fn seal(
    spec: &JobSpec,
    config: &SecurityConfig,
    raw: RawProof,
    start: Instant,
) -> Result<ProofEnvelope> {
    let bytes = postcard::to_allocvec(&raw.proof).map_err(|e| Error::backend("postcard", e))?;
    let compressed = compress(&bytes)?;
    let commitments = stark::commitments(&raw.proof)
        .into_iter()
        .map(Hash32)
        .collect();
    let hash = proof_hash(
        PROOF_FORMAT_VERSION,
        spec,
        &raw.public_output,
        config,
        &compressed,
    );
    Ok(ProofEnvelope {
        format_version: PROOF_FORMAT_VERSION,
        job: spec.clone(),
        output: output_text(&raw.public_output),
        public_output: raw.public_output,
        config: *config,
        sizes: ProofSizes {
            raw_bytes: bytes.len() as u64,
            compressed_bytes: compressed.len() as u64,
        },
        proof: compressed,
        proof_hash: hash,
        commitments,
        timings: ProverTimings {
            trace_ms: raw.trace_ms,
            prove_ms: raw.prove_ms,
            total_ms: start.elapsed().as_secs_f64() * 1e3,
        },
    })
}

fn compress(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| Error::backend("zstd", e))?;
    c.include_contentsize(true)
        .and_then(|_| c.include_checksum(true))
        .map_err(|e| Error::backend("zstd", e))?;
    c.compress(bytes).map_err(|e| Error::backend("zstd", e))
}

/// Decompresses and decodes a proof, bounding sizes; checks the encoding is canonical.
pub fn decode_proof(compressed: &[u8], expected_raw_len: u64) -> Result<Proof> {
    if compressed.len() > MAX_COMPRESSED_PROOF_BYTES {
        return Err(rejected("compressed proof too large"));
    }
    let declared = zstd::zstd_safe::get_frame_content_size(compressed)
        .map_err(|_| rejected("proof is not a zstd frame"))?
        .ok_or_else(|| rejected("zstd frame does not declare its size"))?;
    if declared > MAX_RAW_PROOF_BYTES {
        return Err(rejected("proof decompresses beyond the size limit"));
    }
    if declared != expected_raw_len {
        return Err(rejected("proof size differs from the envelope's"));
    }
    let bytes = zstd::bulk::decompress(compressed, declared as usize)
        .map_err(|e| rejected(format!("proof does not decompress: {e}")))?;
    if bytes.len() as u64 != declared {
        return Err(rejected("proof size differs from its frame"));
    }
    let proof: Proof = postcard::from_bytes(&bytes)
        .map_err(|e| rejected(format!("proof does not decode: {e}")))?;
    let again = postcard::to_allocvec(&proof).map_err(|e| Error::backend("postcard", e))?;
    if again != bytes {
        return Err(rejected("proof encoding is not canonical"));
    }
    Ok(proof)
}

/// Verifies `envelope` as a proof of `spec` under [`SECURITY_POLICY`]: checks the envelope's
/// statement, configuration, hash, sizes and commitments, then the STARK itself, rebuilt from
/// `spec`.
pub fn verify_envelope(spec: &JobSpec, envelope: &ProofEnvelope) -> Result<VerifiedProof> {
    spec.kind.validate()?;
    if envelope.format_version != PROOF_FORMAT_VERSION {
        return Err(rejected(format!(
            "unsupported envelope format {}",
            envelope.format_version
        )));
    }
    if envelope.job != *spec {
        return Err(rejected("the envelope proves another job"));
    }
    if envelope.config != SECURITY_POLICY {
        return Err(rejected(format!(
            "configuration {:?} is not the verifier's policy {:?}",
            envelope.config, SECURITY_POLICY
        )));
    }
    if envelope.output != output_text(&envelope.public_output) {
        return Err(rejected("output text differs from the public output"));
    }
    let hash = proof_hash(
        envelope.format_version,
        spec,
        &envelope.public_output,
        &envelope.config,
        &envelope.proof,
    );
    if hash != envelope.proof_hash {
        return Err(rejected("proof hash does not match the envelope"));
    }
    if envelope.sizes.compressed_bytes != envelope.proof.len() as u64 {
        return Err(rejected("compressed size differs from the proof"));
    }
    let proof = decode_proof(&envelope.proof, envelope.sizes.raw_bytes)?;
    let roots: Vec<Hash32> = stark::commitments(&proof).into_iter().map(Hash32).collect();
    if roots != envelope.commitments {
        return Err(rejected("commitments differ from the proof's"));
    }
    stark::verify_raw(spec, &envelope.public_output, proof, &SECURITY_POLICY)?;
    Ok(VerifiedProof {
        kind: spec.kind.name().to_string(),
        output: envelope.output.clone(),
        security_bits: SECURITY_POLICY.security_bits(),
        proof_hash: envelope.proof_hash,
    })
}

/// The envelope as JSON (what `bitsage-agent prove --out` writes).
pub fn encode_envelope_json(envelope: &ProofEnvelope) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(envelope).map_err(|e| Error::backend("json", e))
}

/// Parses an envelope from JSON, bounding its size; malformed input is [`Error::Invalid`].
pub fn decode_envelope_json(bytes: &[u8]) -> Result<ProofEnvelope> {
    if bytes.len() > MAX_ENVELOPE_JSON_BYTES {
        return Err(Error::invalid("proof envelope", "file too large"));
    }
    let env: ProofEnvelope = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid("proof envelope", e.to_string()))?;
    env.job.kind.validate()?;
    Ok(env)
}
