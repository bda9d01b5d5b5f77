//! Offline receipt verification (`bitsage-agent verify-receipt`).
//!
//! The input is a receipt as `GET /api/receipts/{id}` serves it (the signed receipt with its
//! `*_formatted` amounts; other extra fields are ignored), optionally with an `"envelope"`
//! field holding the proof envelope. Checked: that the receipt is countersigned by the
//! **pinned** deployment key (a receipt never vouches for its own keys: anyone can make a
//! receipt whose two signatures verify with two fresh keys), both signatures and the amounts
//! ([`Receipt::verify`]); and, with an envelope, that it is the proof the receipt names (job,
//! output, hash) and that the proof verifies.

use bitsage_core::crypto::PublicKey;
use bitsage_core::proof::{ProofEnvelope, VerifiedProof};
use bitsage_core::receipt::Receipt;
use serde::Deserialize;

/// Largest receipt file accepted (an envelope holds a proof of a few MiB, hex-encoded).
pub const MAX_RECEIPT_FILE_BYTES: usize = 64 * 1024 * 1024;

/// A receipt file: the receipt's fields at the top level, plus an optional envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceiptFile {
    /// The signed receipt.
    #[serde(flatten)]
    pub receipt: Receipt,
    /// The proof envelope the receipt is for, when the file carries it.
    #[serde(default)]
    pub envelope: Option<ProofEnvelope>,
    /// The receipt's inclusion proof in its settlement epoch, when the file carries it
    /// (`?with_inclusion=true`).
    #[serde(default)]
    pub inclusion: Option<bitsage_core::settlement::InclusionProof>,
}

/// Why a receipt is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptCheckError {
    /// The file is not a receipt.
    #[error("not a receipt: {0}")]
    Malformed(String),
    /// A signature (or the amounts) did not verify.
    #[error("{0}")]
    Signature(String),
    /// The receipt names another coordinator key than the pinned one.
    #[error("coordinator key is {actual}, not the pinned deployment key {expected}")]
    CoordinatorKey {
        /// The key the receipt names (hex).
        actual: String,
        /// The key asked for (hex).
        expected: String,
    },
    /// The envelope is not the proof the receipt names.
    #[error("the envelope does not match the receipt: {0}")]
    EnvelopeMismatch(String),
    /// The proof does not verify.
    #[error("the proof does not verify: {0}")]
    ProofRejected(String),
}

/// What a successful check established.
#[derive(Debug, Clone)]
pub struct ReceiptCheck {
    /// The receipt.
    pub receipt: Receipt,
    /// The proof's verification, when the file had an envelope.
    pub proof: Option<VerifiedProof>,
}

/// Parses a receipt file (size-bounded).
pub fn parse_receipt_file(bytes: &[u8]) -> Result<ReceiptFile, ReceiptCheckError> {
    if bytes.len() > MAX_RECEIPT_FILE_BYTES {
        return Err(ReceiptCheckError::Malformed(format!(
            "file larger than {MAX_RECEIPT_FILE_BYTES} bytes"
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| ReceiptCheckError::Malformed(e.to_string()))
}

/// Checks a receipt file against the pinned deployment key `pinned`: the receipt names that
/// key, both signatures and the amounts verify, and the envelope (when there is one) is the
/// receipt's proof and verifies.
pub fn check_receipt(
    file: &ReceiptFile,
    pinned: &PublicKey,
) -> Result<ReceiptCheck, ReceiptCheckError> {
    let receipt = &file.receipt;
    if receipt.body.coordinator_key != *pinned {
        return Err(ReceiptCheckError::CoordinatorKey {
            actual: receipt.body.coordinator_key.to_hex(),
            expected: pinned.to_hex(),
        });
    }
    receipt
        .verify()
        .map_err(|e| ReceiptCheckError::Signature(e.to_string()))?;
    let proof = match &file.envelope {
        None => None,
        Some(envelope) => Some(check_envelope(receipt, envelope)?),
    };
    Ok(ReceiptCheck {
        receipt: receipt.clone(),
        proof,
    })
}

fn check_envelope(
    receipt: &Receipt,
    envelope: &ProofEnvelope,
) -> Result<VerifiedProof, ReceiptCheckError> {
    let body = &receipt.body;
    if envelope.job.id != body.job_id {
        return Err(ReceiptCheckError::EnvelopeMismatch(format!(
            "it proves job {}, the receipt is for job {}",
            envelope.job.id, body.job_id
        )));
    }
    if envelope.job.kind.name() != body.kind {
        return Err(ReceiptCheckError::EnvelopeMismatch(format!(
            "it proves a {} job, the receipt is for a {} job",
            envelope.job.kind.name(),
            body.kind
        )));
    }
    if envelope.proof_hash != body.proof_hash {
        return Err(ReceiptCheckError::EnvelopeMismatch(format!(
            "proof hash {} differs from the receipt's {}",
            envelope.proof_hash, body.proof_hash
        )));
    }
    if envelope.output != body.output {
        return Err(ReceiptCheckError::EnvelopeMismatch(
            "its output differs from the receipt's".into(),
        ));
    }
    bitsage_prover::verify_envelope(&envelope.job, envelope)
        .map_err(|e| ReceiptCheckError::ProofRejected(e.to_string()))
}
