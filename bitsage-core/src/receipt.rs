//! Receipts: a job's outcome, signed by the node that proved it and countersigned by the
//! coordinator that verified it. Anyone holding the two public keys can check one offline.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::amount::TokenAmount;
use crate::crypto::{sign, CanonicalWriter, Hash32, PublicKey, SignatureBytes};
use crate::ids::{JobId, NodeId, ReceiptId};
use crate::time::Timestamp;
use crate::Error;

const RECEIPT_DOMAIN: &str = "bitsage/receipt/v1";
const COUNTERSIGN_DOMAIN: &str = "bitsage/receipt-countersign/v1";

/// The signed content of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceiptBody {
    /// The receipt's id.
    pub id: ReceiptId,
    /// The job.
    pub job_id: JobId,
    /// The job kind's name, e.g. `poseidon2-chain`.
    pub kind: String,
    /// The node that proved it.
    pub node_id: NodeId,
    /// The node's key.
    pub node_key: PublicKey,
    /// The coordinator's key.
    pub coordinator_key: PublicKey,
    /// The public output stated by the proof (e.g. the digest).
    pub output: String,
    /// The verified proof envelope's hash.
    pub proof_hash: Hash32,
    /// What the client paid, base units.
    pub payment: TokenAmount,
    /// The network fee kept, base units.
    pub fee: TokenAmount,
    /// What the node earned (`payment − fee`), base units.
    pub net: TokenAmount,
    /// When the coordinator accepted the proof.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub completed_at: Timestamp,
}

impl ReceiptBody {
    /// The canonical bytes both signatures cover.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(RECEIPT_DOMAIN);
        w.field(self.id.0.as_bytes())
            .field(self.job_id.0.as_bytes())
            .field(self.kind.as_bytes())
            .field(self.node_id.as_str().as_bytes())
            .field(&self.node_key.to_bytes())
            .field(&self.coordinator_key.to_bytes())
            .field(self.output.as_bytes())
            .field(&self.proof_hash.0)
            .field(self.payment.to_string().as_bytes())
            .field(self.fee.to_string().as_bytes())
            .field(self.net.to_string().as_bytes())
            .field(&self.completed_at.timestamp_micros().to_be_bytes());
        w.finish()
    }

    /// Checks the amounts add up: `net = payment − fee`.
    pub fn check_amounts(&self) -> Result<(), Error> {
        if self.payment.checked_sub(self.fee)? != self.net {
            return Err(Error::invalid("receipt", "net is not payment minus fee"));
        }
        Ok(())
    }

    /// The node's signature over the canonical bytes.
    pub fn sign_as_node(&self, node_key: &SigningKey) -> Result<SignatureBytes, Error> {
        if PublicKey::of(node_key) != self.node_key {
            return Err(Error::Signature(
                "signing key is not the receipt's node key".into(),
            ));
        }
        Ok(sign(node_key, &self.canonical_bytes()))
    }

    /// The bytes the coordinator's countersignature covers (the body's canonical bytes and the
    /// node's signature, after the countersign domain) — for a second verifier, such as the
    /// console's re-check in the browser.
    pub fn countersign_bytes(&self, node_signature: &SignatureBytes) -> Vec<u8> {
        let mut w = CanonicalWriter::new(COUNTERSIGN_DOMAIN);
        w.field(&self.canonical_bytes()).field(&node_signature.0);
        w.finish()
    }
}

/// A receipt with both signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// The signed content.
    #[serde(flatten)]
    pub body: ReceiptBody,
    /// The node's signature over [`ReceiptBody::canonical_bytes`].
    pub node_signature: SignatureBytes,
    /// The coordinator's signature over the body and the node's signature.
    pub coordinator_signature: SignatureBytes,
}

impl Receipt {
    /// Countersigns a node-signed body: checks the node's signature and the amounts, then signs.
    pub fn countersign(
        body: ReceiptBody,
        node_signature: SignatureBytes,
        coordinator_key: &SigningKey,
    ) -> Result<Self, Error> {
        if PublicKey::of(coordinator_key) != body.coordinator_key {
            return Err(Error::Signature(
                "signing key is not the receipt's coordinator key".into(),
            ));
        }
        body.check_amounts()?;
        body.node_key
            .verify(&body.canonical_bytes(), &node_signature)?;
        let coordinator_signature = sign(coordinator_key, &body.countersign_bytes(&node_signature));
        Ok(Self {
            body,
            node_signature,
            coordinator_signature,
        })
    }

    /// Verifies the receipt against the deployment key `pinned` (published and pinned, never
    /// taken from the receipt): the receipt must name that key, and both signatures and the
    /// amounts must verify.
    pub fn verify_pinned(&self, pinned: &PublicKey) -> Result<(), Error> {
        if self.body.coordinator_key != *pinned {
            return Err(Error::Signature(format!(
                "countersigned by key {}, not the deployment's key {}",
                crate::deployment::key_id(&self.body.coordinator_key),
                crate::deployment::key_id(pinned)
            )));
        }
        self.verify()
    }

    /// Verifies both signatures and the amounts.
    pub fn verify(&self) -> Result<(), Error> {
        self.body.check_amounts()?;
        self.body
            .node_key
            .verify(&self.body.canonical_bytes(), &self.node_signature)
            .map_err(|_| Error::Signature("node signature does not verify".into()))?;
        self.body
            .coordinator_key
            .verify(
                &self.body.countersign_bytes(&self.node_signature),
                &self.coordinator_signature,
            )
            .map_err(|_| Error::Signature("coordinator countersignature does not verify".into()))
    }
}

/// Filters for listing receipts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiptFilter {
    /// Only this node's.
    pub node: Option<NodeId>,
    /// Only those completed in this window.
    pub window: Option<crate::time::TimeWindow>,
    /// Only this job kind.
    pub kind: Option<String>,
    /// Only the receipt of this job.
    pub job: Option<crate::JobId>,
    /// Newest first (completion time, then id, both descending) instead of oldest first.
    pub newest_first: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn body(node: &SigningKey, coord: &SigningKey) -> ReceiptBody {
        ReceiptBody {
            id: ReceiptId::new(),
            job_id: JobId::new(),
            kind: "poseidon2-chain".into(),
            node_id: NodeId::parse("node-1").unwrap(),
            node_key: PublicKey::of(node),
            coordinator_key: PublicKey::of(coord),
            output: "abcd".into(),
            proof_hash: Hash32([9; 32]),
            payment: TokenAmount::from(1000u64),
            fee: TokenAmount::from(25u64),
            net: TokenAmount::from(975u64),
            completed_at: crate::time::now(),
        }
    }

    #[test]
    fn sign_countersign_verify_and_tamper() {
        let (n, c) = (key(1), key(2));
        let b = body(&n, &c);
        let sig = b.sign_as_node(&n).unwrap();
        let r = Receipt::countersign(b, sig, &c).unwrap();
        r.verify().unwrap();
        let json = serde_json::to_string(&r).unwrap();
        let back: Receipt = serde_json::from_str(&json).unwrap();
        back.verify().unwrap();

        let mut t = r.clone();
        t.body.net = TokenAmount::from(976u64);
        t.body.fee = TokenAmount::from(24u64);
        assert!(
            t.verify().is_err(),
            "changed amounts must break the signatures"
        );
        let mut t = r.clone();
        t.body.output.push('0');
        assert!(t.verify().is_err());
        let mut t = r.clone();
        t.coordinator_signature.0[0] ^= 1;
        assert!(t.verify().is_err());
        // A node cannot get a countersignature with someone else's key.
        let b = body(&n, &c);
        let forged = b.sign_as_node(&n).unwrap();
        let mut other = b.clone();
        other.node_key = PublicKey::of(&key(3));
        assert!(Receipt::countersign(other, forged, &c).is_err());
    }

    #[test]
    fn amounts_must_add_up() {
        let (n, c) = (key(1), key(2));
        let mut b = body(&n, &c);
        b.net = TokenAmount::from(1u64);
        let sig = b.sign_as_node(&n).unwrap();
        assert!(Receipt::countersign(b, sig, &c).is_err());
    }
}
