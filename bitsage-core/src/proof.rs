//! The proof envelope: everything a verifier needs besides the job spec, plus the figures a
//! researcher wants (sizes, timings). Produced and checked by a [`crate::Prover`].

use serde::{Deserialize, Serialize};

use crate::crypto::Hash32;
use crate::job::JobSpec;

/// Minimum security, in bits, any BitSage verifier accepts.
pub const MIN_SECURITY_BITS: u32 = 96;

/// The STARK parameters a proof was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
pub struct ProofSizes {
    /// Serialized proof, bytes.
    pub raw_bytes: u64,
    /// After zstd, bytes.
    pub compressed_bytes: u64,
}

/// How long proving took (not covered by the proof hash: timings differ run to run).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ProverTimings {
    /// Trace generation, milliseconds.
    pub trace_ms: f64,
    /// Proving (commitments, FRI, ...), milliseconds.
    pub prove_ms: f64,
    /// Everything, milliseconds.
    pub total_ms: f64,
}

/// A proof with its statement and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofEnvelope {
    /// Envelope format version.
    pub format_version: u16,
    /// The job proven (kind and parameters).
    pub job: JobSpec,
    /// The public output the proof states (e.g. the chain digest), as text.
    pub output: String,
    /// The parameters the proof was made with.
    pub config: SecurityConfig,
    /// The serialized stark proof, zstd-compressed.
    #[serde(with = "hex_bytes")]
    pub proof: Vec<u8>,
    /// Domain-separated BLAKE2s-256 over the envelope's canonical bytes.
    pub proof_hash: Hash32,
    /// The trace commitments (Merkle roots), in order.
    pub commitments: Vec<Hash32>,
    /// Proof sizes.
    pub sizes: ProofSizes,
    /// Prover timings.
    pub timings: ProverTimings,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedProof {
    /// The public output proven.
    pub output: String,
    /// The security level, bits, of the verifier's policy the proof satisfied.
    pub security_bits: u32,
    /// The envelope's hash.
    pub proof_hash: Hash32,
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
