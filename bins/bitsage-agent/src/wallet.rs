//! Proving the node's wallet: the wallet account's SNIP-12 signature over (node key,
//! network, a coordinator nonce), made here from a Stark private-key file or by an external
//! wallet from the typed data [`typed_data`] prints.

use std::fmt;
use std::path::Path;

use bitsage_chain::snip12;
use bitsage_core::attestation::AttestationChallenge;
use bitsage_core::wallet::{WalletClaim, WalletProof};
use bitsage_core::WalletAddress;
use starknet::core::types::Felt;

/// How an agent proves its wallet when it registers.
#[derive(Clone, Default)]
pub enum WalletSigner {
    /// No proof: the wallet is registered unverified (a coordinator with a chain refuses it).
    #[default]
    None,
    /// Sign each registration's fresh challenge with this Stark private key (the owner key
    /// of a standard account).
    Key(Felt),
    /// A proof made beforehand (e.g. by an external wallet); valid until its challenge
    /// expires.
    Prepared(Box<WalletProof>),
}

impl fmt::Debug for WalletSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalletSigner::None => f.write_str("None"),
            WalletSigner::Key(_) => f.write_str("Key(<secret>)"),
            WalletSigner::Prepared(p) => write!(f, "Prepared(expires {})", p.challenge.expires_at),
        }
    }
}

/// Reads a Stark private key file (`0x` + hex, whitespace ignored). Refuses a file other
/// users can read, as it holds the wallet's key.
pub fn load_private_key(path: &Path) -> anyhow::Result<Felt> {
    use anyhow::Context;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{} is readable by other users (mode {:o}): chmod 600 it, it holds a wallet key",
                path.display(),
                mode & 0o777
            );
        }
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(snip12::parse_private_key(&text)?)
}

/// The proof for `challenge` on `network`/`chain_id`, signed with `key` for `wallet`.
pub fn sign_proof(
    key: &Felt,
    wallet: WalletAddress,
    challenge: &AttestationChallenge,
    network: &str,
    chain_id: &str,
) -> Result<WalletProof, bitsage_core::Error> {
    let claim = WalletClaim::new(wallet, challenge, network)?;
    Ok(WalletProof {
        challenge: challenge.clone(),
        signature: snip12::sign_node_wallet(key, &claim, chain_id)?,
    })
}

/// The SNIP-12 typed data (JSON) an external wallet signs for `challenge`.
pub fn typed_data(
    wallet: WalletAddress,
    challenge: &AttestationChallenge,
    network: &str,
    chain_id: &str,
) -> Result<serde_json::Value, bitsage_core::Error> {
    let claim = WalletClaim::new(wallet, challenge, network)?;
    snip12::node_wallet_typed_data(&claim, chain_id)
}
