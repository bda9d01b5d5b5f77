//! The proof envelope: everything a verifier needs besides the job spec, plus the figures a
//! researcher wants (sizes, timings). Produced and checked by a [`crate::Prover`].

use serde::{Deserialize, Serialize};

use crate::crypto::Hash32;
use crate::job::JobSpec;

/// Minimum security, in bits, any BitSage verifier accepts.
pub const MIN_SECURITY_BITS: u32 = 96;

/// The envelope format this crate writes and reads.
pub const PROOF_FORMAT_VERSION: u16 = 1;

/// The STARK parameters a proof was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// log2 of the FRI blowup factor.
    pub log_blowup_factor: u32,
    /// Number of FRI queries.
    pub n_queries: u32,
    /// Proof-of-work (grinding) bits.
    pub pow_bits: u32,
}

impl SecurityConfig {
    /// Conjectured security: `pow_bits + n_queries × log_blowup_factor`.
    pub fn security_bits(&self) -> u32 {
        self.pow_bits
            .saturating_add(self.n_queries.saturating_mul(self.log_blowup_factor))
    }
}

/// Sizes of the serialized proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProofSizes {
    /// Serialized proof, bytes.
    pub raw_bytes: u64,
    /// After zstd, bytes.
    pub compressed_bytes: u64,
}

/// How long proving took (not covered by the proof hash: timings differ run to run).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProverTimings {
    /// Trace generation, milliseconds.
    pub trace_ms: f64,
    /// Proving (commitments, FRI, ...), milliseconds.
    pub prove_ms: f64,
    /// Everything, milliseconds.
    pub total_ms: f64,
}

/// A proof with its statement and metadata.
///
/// The statement is `job` (id, kind, parameters) plus `public_output`; both are bound into the
/// proof (Fiat–Shamir transcript and the AIR's boundary sums), so changing either makes
/// verification fail. `sizes` and `commitments` are checked against the proof bytes; `timings`
/// are informational and covered by nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProofEnvelope {
    /// Envelope format version ([`PROOF_FORMAT_VERSION`]).
    pub format_version: u16,
    /// The job proven (id, kind and parameters).
    pub job: JobSpec,
    /// The public output as M31 field elements (each below 2^31 - 1): the 16-element digest of a
    /// `poseidon2-chain`, the final pair of a `wide-fibonacci`.
    pub public_output: Vec<u32>,
    /// The public output as text: each element of `public_output` as 8 lowercase hex digits,
    /// concatenated (what a [`crate::job::JobResult`] records).
    pub output: String,
    /// The parameters the proof was made with.
    pub config: SecurityConfig,
    /// The serialized stark proof (postcard), zstd-compressed.
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-f]*$"))]
    pub proof: Vec<u8>,
    /// Domain-separated BLAKE2s-256 over the envelope's canonical bytes (format version, job,
    /// public output, configuration, compressed proof; not the timings).
    pub proof_hash: Hash32,
    /// The trace commitments (Merkle roots), in order.
    pub commitments: Vec<Hash32>,
    /// Proof sizes.
    pub sizes: ProofSizes,
    /// Prover timings.
    pub timings: ProverTimings,
}

/// Domain tag of [`ProofEnvelope::transport_digest`].
pub const ENVELOPE_DIGEST_DOMAIN: &str = "bitsage/envelope-transport/v1";

impl ProofEnvelope {
    /// BLAKE2s-256 over every byte of the envelope a verifier reads — all fields but the
    /// informational `timings`, in a length-prefixed canonical encoding. A node signs this
    /// digest in its completion: when the bytes that arrive do not hash to it they were
    /// altered on the way (a transport error, not the node's fault); when they do, the node
    /// vouched for exactly these bytes and a failed verification is its own.
    pub fn transport_digest(&self) -> Hash32 {
        use blake2::{Blake2s256, Digest};
        let mut w = crate::crypto::CanonicalWriter::new(ENVELOPE_DIGEST_DOMAIN);
        w.field(&self.format_version.to_be_bytes());
        // A job spec holds no maps with non-string keys: serialising cannot fail.
        w.field(&serde_json::to_vec(&self.job).unwrap_or_default());
        let out: Vec<u8> = self
            .public_output
            .iter()
            .flat_map(|e| e.to_be_bytes())
            .collect();
        w.field(&out);
        w.field(self.output.as_bytes());
        w.field(&self.config.log_blowup_factor.to_be_bytes());
        w.field(&self.config.n_queries.to_be_bytes());
        w.field(&self.config.pow_bits.to_be_bytes());
        w.field(&self.proof);
        w.field(&self.proof_hash.0);
        let roots: Vec<u8> = self.commitments.iter().flat_map(|c| c.0).collect();
        w.field(&roots);
        w.field(&self.sizes.raw_bytes.to_be_bytes());
        w.field(&self.sizes.compressed_bytes.to_be_bytes());
        Hash32(Blake2s256::digest(w.finish()).into())
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedProof {
    /// The job kind's name (`"poseidon2-chain"`, ...).
    pub kind: String,
    /// The public output proven.
    pub output: String,
    /// The security level, bits, of the verifier's policy the proof satisfied.
    pub security_bits: u32,
    /// The envelope's hash.
    pub proof_hash: Hash32,
}

/// Renders M31 elements as the envelope's `output` text (8 lowercase hex digits each).
pub fn output_text(elements: &[u32]) -> String {
    elements.iter().map(|e| format!("{e:08x}")).collect()
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}
