//! The deployment's identity: one ed25519 signing key shared by every coordinator of a network
//! (countersigns receipts, signs probe tickets and attestation challenges), a short key id
//! derived from its public half, and the network's name. Published at `GET /api/coordinator`
//! so receipts can be checked against a **pinned** key, never against the key a receipt names.

use std::fmt;

use blake2::{Blake2s256, Digest};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::crypto::PublicKey;
use crate::Error;

/// Domain tag of the key id hash.
pub const KEY_ID_DOMAIN: &[u8] = b"bitsage/deployment-key-id/v1";

/// Longest accepted network name.
pub const MAX_NETWORK_NAME_LEN: usize = 64;

/// The key id of a deployment public key: `bsk_` and the first 16 hex digits of
/// BLAKE2s-256(domain ‖ key). Short enough to read aloud, long enough to pin.
pub fn key_id(public_key: &PublicKey) -> String {
    let mut h = Blake2s256::new();
    h.update(KEY_ID_DOMAIN);
    h.update(public_key.to_bytes());
    let digest = h.finalize();
    format!("bsk_{}", hex::encode(&digest[..8]))
}

/// Checks a network name: 1 to [`MAX_NETWORK_NAME_LEN`] of `a-z`, `0-9`, `-`, `_`, `.`.
pub fn check_network_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NETWORK_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "network name",
            format!("must be 1 to {MAX_NETWORK_NAME_LEN} characters of a-z, 0-9, '-', '_' or '.'"),
        ))
    }
}

/// The deployment's signing key with its id and network. Every coordinator of a deployment
/// loads the same one; its `Debug` never prints the secret.
#[derive(Clone)]
pub struct DeploymentKey {
    key: SigningKey,
    key_id: String,
    network: String,
}

impl DeploymentKey {
    /// The deployment key `key` of network `network` (validated by [`check_network_name`]).
    pub fn new(key: SigningKey, network: impl Into<String>) -> Result<Self, Error> {
        let network = network.into();
        check_network_name(&network)?;
        let key_id = key_id(&PublicKey::of(&key));
        Ok(Self {
            key,
            key_id,
            network,
        })
    }

    /// The secret key (for signing only).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// A 32-byte secret for `purpose` derived from the deployment key (BLAKE2s-256 of a
    /// domain tag, the purpose and the secret key), the same on every coordinator of the
    /// deployment — e.g. the key access tokens are signed with.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        let mut h = Blake2s256::new();
        h.update(b"bitsage/derived-secret/v1\0");
        h.update(purpose.as_bytes());
        h.update([0u8]);
        h.update(self.key.to_bytes());
        h.finalize().into()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::of(&self.key)
    }

    /// The key id ([`key_id`]).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The network's name.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// What a coordinator publishes about this key.
    pub fn info(&self, version: impl Into<String>) -> DeploymentInfo {
        DeploymentInfo {
            network: self.network.clone(),
            public_key: self.public_key(),
            key_id: self.key_id.clone(),
            version: version.into(),
            wallet_chain_id: None,
            payment_chain_id: None,
        }
    }
}

impl fmt::Debug for DeploymentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentKey")
            .field("public_key", &self.public_key())
            .field("key_id", &self.key_id)
            .field("network", &self.network)
            .finish()
    }
}

/// `GET /api/coordinator` (and `/.well-known/bitsage.json`): the deployment's published
/// identity. Pin `public_key` (or check it against `key_id`) before trusting a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentInfo {
    /// The network's name.
    pub network: String,
    /// The deployment key every coordinator of this network countersigns receipts with.
    pub public_key: PublicKey,
    /// [`key_id`] of `public_key`.
    pub key_id: String,
    /// The coordinator's software version.
    pub version: String,
    /// The chain (SNIP-12 `chainId`) node wallet proofs are checked on; absent when this
    /// coordinator checks none (no chain: wallets are stored unverified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_chain_id: Option<String>,
    /// The chain (SNIP-12 `chainId`) job payers sign submissions for (`BITSAGE_LOCAL` without
    /// a chain); absent when this coordinator accepts no submissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_chain_id: Option<String>,
}

impl DeploymentInfo {
    /// Checks that `key_id` is the id of `public_key` (a published pair is consistent).
    pub fn check(&self) -> Result<(), Error> {
        check_network_name(&self.network)?;
        if key_id(&self.public_key) != self.key_id {
            return Err(Error::invalid(
                "key id",
                "does not match the published public key",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_stable_and_checked() {
        let k = DeploymentKey::new(SigningKey::from_bytes(&[7; 32]), "testnet").unwrap();
        assert!(k.key_id().starts_with("bsk_"));
        assert_eq!(k.key_id().len(), 4 + 16);
        let info = k.info("1.0");
        info.check().unwrap();
        let mut forged = info.clone();
        forged.public_key = PublicKey::of(&SigningKey::from_bytes(&[8; 32]));
        assert!(forged.check().is_err());
        assert!(!format!("{k:?}").contains("signing"));
    }

    #[test]
    fn network_names_are_validated() {
        assert!(check_network_name("bitsage-dev").is_ok());
        for bad in ["", "Upper", "a b", &"x".repeat(65), "ünï"] {
            assert!(check_network_name(bad).is_err(), "{bad:?}");
        }
    }
}
