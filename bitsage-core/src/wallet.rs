//! Proven wallets: a node names the wallet it earns for only with that wallet account's
//! signature over (node key, network, a fresh coordinator nonce), as SNIP-12 typed data.
//!
//! The coordinator issues the nonce (an [`AttestationChallenge`], signed with the deployment
//! key, bound to the node key, with an expiry), the wallet's account signs a [`WalletClaim`],
//! and a [`WalletVerifier`] decides. On Starknet the verifier asks the account contract itself
//! (`is_valid_signature`), so any account contract works (account abstraction). A coordinator
//! without a chain cannot check a claim: the wallet is stored **unverified**, never proven.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::attestation::{AttestationChallenge, ATTESTATION_NONCE_LEN};
use crate::crypto::PublicKey;
use crate::{Error, Timestamp, WalletAddress};

/// Most field elements a wallet signature may have (multisig and guardian accounts sign with
/// several; one standard signature is two).
pub const MAX_WALLET_SIGNATURE_FELTS: usize = 32;

/// A field element written as `0x` and 1 to 64 lower-case hex digits (checked against the
/// field's modulus by the verifier that uses it).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FeltHex(String);

impl FeltHex {
    /// Parses `0x`-prefixed hex of 1 to 64 digits (any case; stored lower-case, no leading
    /// zeros beyond one digit).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| Error::invalid("signature element", "must start with 0x"))?;
        if digits.is_empty() || digits.len() > 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(Error::invalid(
                "signature element",
                "must be 0x and 1 to 64 hex digits",
            ));
        }
        let trimmed = digits.trim_start_matches('0');
        let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
        Ok(Self(format!("0x{}", trimmed.to_ascii_lowercase())))
    }

    /// The 32 big-endian bytes of the value.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let digits = &self.0[2..];
        let padded = format!("{digits:0>64}");
        let mut out = [0u8; 32];
        // `parse` admitted only hex digits, at most 64 of them.
        hex::decode_to_slice(padded, &mut out).unwrap_or_default();
        out
    }

    /// From 32 big-endian bytes.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Self {
        let hex = hex::encode(bytes);
        let trimmed = hex.trim_start_matches('0');
        Self(format!(
            "0x{}",
            if trimmed.is_empty() { "0" } else { trimmed }
        ))
    }

    /// The text (`0x…`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FeltHex {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<FeltHex> for String {
    fn from(f: FeltHex) -> String {
        f.0
    }
}

impl fmt::Display for FeltHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FeltHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a node presents to prove its wallet: the coordinator's challenge and the wallet
/// account's signature over the [`WalletClaim`] it implies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WalletProof {
    /// The challenge the coordinator issued to the node key (its nonce and expiry are signed).
    pub challenge: AttestationChallenge,
    /// The account's signature (field elements; `[r, s]` for a standard account).
    pub signature: Vec<FeltHex>,
}

impl WalletProof {
    /// Checks the shape: 1 to [`MAX_WALLET_SIGNATURE_FELTS`] elements and a well-formed nonce.
    pub fn validate(&self) -> Result<(), Error> {
        if self.signature.is_empty() || self.signature.len() > MAX_WALLET_SIGNATURE_FELTS {
            return Err(Error::invalid(
                "wallet signature",
                format!("must have 1 to {MAX_WALLET_SIGNATURE_FELTS} elements"),
            ));
        }
        self.challenge.nonce().map(|_| ())
    }
}

/// The statement a wallet account signs (SNIP-12 `BitSageNodeWallet`): "node key `node_key`
/// of network `network` earns for me", with the coordinator's nonce and its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletClaim {
    /// The wallet (the account contract that signs).
    pub wallet: WalletAddress,
    /// The node's ed25519 key.
    pub node_key: PublicKey,
    /// The deployment's network name.
    pub network: String,
    /// The coordinator's nonce.
    pub nonce: [u8; ATTESTATION_NONCE_LEN],
    /// When the challenge expires.
    pub expires_at: Timestamp,
}

impl WalletClaim {
    /// The claim a proof made with `challenge` states for `wallet` on `network`.
    pub fn new(
        wallet: WalletAddress,
        challenge: &AttestationChallenge,
        network: impl Into<String>,
    ) -> Result<Self, Error> {
        Ok(Self {
            wallet,
            node_key: challenge.public_key,
            network: network.into(),
            nonce: challenge.nonce()?,
            expires_at: challenge.expires_at,
        })
    }
}

/// Whether a node's wallet is proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WalletStatus {
    /// The wallet account's signature was checked on chain.
    Proven,
    /// Named by the node, not checked (a coordinator without a chain cannot check it).
    Unverified,
}

impl WalletStatus {
    /// `"proven"` / `"unverified"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            WalletStatus::Proven => "proven",
            WalletStatus::Unverified => "unverified",
        }
    }
}

/// A statement a Starknet account signs for BitSage (SNIP-12 typed data, see
/// `bitsage_chain::snip12`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountMessage {
    /// A node's wallet claim.
    NodeWallet(WalletClaim),
    /// A job submission's payment.
    JobPayment(crate::funding::PaymentClaim),
}

impl AccountMessage {
    /// The account that must have signed it.
    pub fn account(&self) -> WalletAddress {
        match self {
            AccountMessage::NodeWallet(c) => c.wallet,
            AccountMessage::JobPayment(c) => c.payer,
        }
    }
}

/// A verifier's verdict on a wallet signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletCheck {
    /// The account accepted the signature.
    Valid,
    /// The account refused it, or there is no account at the address; the reason in words.
    Refused(String),
}

/// Decides whether a Starknet account signed an [`AccountMessage`].
///
/// # Contract
/// - `Ok(Valid)` only when the account ([`AccountMessage::account`]) accepts `signature` for
///   the message's SNIP-12 hash on the chain [`WalletVerifier::chain_id`] names. A signature
///   over any other message (another node key, network, nonce, expiry, job or payment),
///   another account's signature, or malformed elements give `Ok(Refused(reason))`; so does
///   an address with no account, or a message kind this verifier does not check.
/// - `chain_id` names the chain signatures must be made for; it does not change while the
///   verifier lives.
/// - `Err(Error::Unavailable)` when the verifier cannot reach its source (the caller must not
///   treat that as refused or as proven). Never panics on any input.
#[async_trait]
pub trait WalletVerifier: Send + Sync + fmt::Debug {
    /// The chain id (SNIP-12 domain `chainId`, e.g. `SN_SEPOLIA`) signatures must be made for.
    async fn chain_id(&self) -> Result<String, Error>;
    /// Checks `signature` over `message` with its account.
    async fn check(
        &self,
        message: &AccountMessage,
        signature: &[FeltHex],
    ) -> Result<WalletCheck, Error>;
}

/// A shared [`WalletVerifier`].
pub type DynWalletVerifier = std::sync::Arc<dyn WalletVerifier>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn felts_parse_and_normalise() {
        assert_eq!(FeltHex::parse("0x00AB").unwrap().as_str(), "0xab");
        assert_eq!(FeltHex::parse("0x0").unwrap().as_str(), "0x0");
        for bad in ["", "0x", "ab", "0xzz", &format!("0x{}", "1".repeat(65))] {
            assert!(FeltHex::parse(bad).is_err(), "{bad:?}");
        }
        let f = FeltHex::parse("0x1234").unwrap();
        assert_eq!(FeltHex::from_be_bytes(&f.to_be_bytes()), f);
    }
}
