#![doc = include_str!("../README.md")]

mod chain_air;
pub mod cpu;
pub mod envelope;
mod fib_air;
pub mod policy;
pub mod poseidon2;
mod stark;

use std::time::Instant;

use async_trait::async_trait;
use bitsage_core::proof::{ProofEnvelope, SecurityConfig, VerifiedProof};
use bitsage_core::{JobSpec, Prover, Result};

pub use envelope::{decode_envelope_json, encode_envelope_json, verify_envelope};
pub use fib_air::reference_last_pair as wide_fibonacci_reference;
pub use policy::SECURITY_POLICY;
pub use stark::{prove_raw, Proof, RawProof, MAX_TRACE_CELLS};

/// The stwo prover (SIMD backend, BLAKE2s Merkle commitments).
///
/// Proves with its configuration (the policy by default) and always verifies with
/// [`SECURITY_POLICY`].
#[derive(Debug, Clone)]
pub struct StwoProver {
    config: SecurityConfig,
}

impl Default for StwoProver {
    fn default() -> Self {
        Self::new()
    }
}

impl StwoProver {
    /// A prover that proves under the verifier's policy.
    pub fn new() -> Self {
        Self {
            config: SECURITY_POLICY,
        }
    }

    /// A prover that proves with another configuration (for tests and experiments: its proofs
    /// are rejected by every verifier unless `config` is the policy).
    pub fn with_config(config: SecurityConfig) -> Self {
        Self { config }
    }

    /// The configuration this prover proves with.
    pub fn config(&self) -> SecurityConfig {
        self.config
    }

    /// Proves `spec` synchronously (the async [`Prover::prove`] runs this on a blocking thread).
    pub fn prove_sync(&self, spec: &JobSpec) -> Result<ProofEnvelope> {
        let start = Instant::now();
        let raw = prove_raw(spec, &self.config)?;
        envelope::seal(spec, &self.config, raw, start)
    }

    /// Verifies synchronously under [`SECURITY_POLICY`].
    pub fn verify_sync(&self, spec: &JobSpec, envelope: &ProofEnvelope) -> Result<VerifiedProof> {
        verify_envelope(spec, envelope)
    }
}

#[async_trait]
impl Prover for StwoProver {
    fn name(&self) -> &'static str {
        "stwo-simd"
    }

    async fn prove(&self, spec: &JobSpec) -> Result<ProofEnvelope> {
        let this = self.clone();
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || this.prove_sync(&spec))
            .await
            .map_err(|e| bitsage_core::Error::backend("stwo", e))?
    }

    async fn verify(&self, spec: &JobSpec, envelope: &ProofEnvelope) -> Result<VerifiedProof> {
        let spec = spec.clone();
        let envelope = envelope.clone();
        tokio::task::spawn_blocking(move || verify_envelope(&spec, &envelope))
            .await
            .map_err(|e| bitsage_core::Error::backend("stwo", e))?
    }
}
