//! [`WalletVerifier`] implementations: [`StarknetWalletVerifier`] asks the account contract
//! (`is_valid_signature`, so any account contract works); [`PinnedKeyWalletVerifier`] checks
//! plain Stark-key signatures against keys pinned per account (tests, known keys);
//! [`StoredKeyVerifier`] checks payers' signatures against the keys an operator stored with
//! their local credit (a coordinator without a chain).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bitsage_core::wallet::{AccountMessage, FeltHex, WalletCheck, WalletVerifier};
use bitsage_core::{Error, PayerLedger, Result, WalletAddress};
use starknet::core::crypto::Signature;
use starknet::core::types::{BlockId, BlockTag, Felt, FunctionCall, StarknetError};
use starknet::macros::selector;
use starknet::providers::{Provider, ProviderError};
use starknet::signers::VerifyingKey;
use tokio::sync::OnceCell;

use super::{classify, ReadError, SOURCE_NAME};
use crate::rpc_timing::TimedClient;
use crate::snip12::{felt_of_address, felt_of_hex, message_hash};

/// `'VALID'` as a Cairo short string: what SNIP-6 accounts answer for a valid signature.
const VALID: Felt = Felt::from_hex_unchecked("0x56414c4944");

/// Parses a signature's elements (each below the field's modulus).
fn felts(signature: &[FeltHex]) -> std::result::Result<Vec<Felt>, String> {
    signature
        .iter()
        .map(|f| felt_of_hex(f).map_err(|e| e.to_string()))
        .collect()
}

/// Checks wallet signatures with the wallet's own account contract over Starknet JSON-RPC:
/// `is_valid_signature(hash, signature)` at the latest block; `'VALID'` (or the legacy `1`)
/// is valid. No account at the address, a contract that is no account, or a reverted check
/// is a refusal; an unreachable endpoint is [`Error::Unavailable`].
pub struct StarknetWalletVerifier {
    provider: TimedClient,
    timeout: Duration,
    chain_id: OnceCell<String>,
}

impl std::fmt::Debug for StarknetWalletVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StarknetWalletVerifier")
            .field("chain_id", &self.chain_id.get())
            .finish_non_exhaustive()
    }
}

impl StarknetWalletVerifier {
    /// A verifier over the JSON-RPC endpoint `rpc_url`, each call bounded by `timeout`. Makes
    /// no call: the chain id is read on first use.
    pub fn new(rpc_url: &str, timeout: Duration) -> Result<Self> {
        Ok(Self {
            provider: crate::escrow::provider(rpc_url, timeout)?,
            timeout,
            chain_id: OnceCell::new(),
        })
    }

    fn unavailable(e: ReadError) -> Error {
        Error::Unavailable {
            source_name: SOURCE_NAME.to_string(),
            reason: e.to_string(),
        }
    }
}

#[async_trait]
impl WalletVerifier for StarknetWalletVerifier {
    async fn chain_id(&self) -> Result<String> {
        self.chain_id
            .get_or_try_init(|| async {
                let id = self.provider.chain_id().await.map_err(|e| {
                    Self::unavailable(classify("starknet_chainId", &e, self.timeout))
                })?;
                starknet::core::utils::parse_cairo_short_string(&id)
                    .map_err(|_| Error::backend(SOURCE_NAME, "the chain id is not a short string"))
            })
            .await
            .cloned()
    }

    async fn check(&self, message: &AccountMessage, signature: &[FeltHex]) -> Result<WalletCheck> {
        let chain_id = self.chain_id().await?;
        let sig = match felts(signature) {
            Ok(s) => s,
            Err(why) => return Ok(WalletCheck::Refused(why)),
        };
        let hash = message_hash(message, &chain_id)?;
        let mut calldata = Vec::with_capacity(2 + sig.len());
        calldata.push(hash);
        calldata.push(Felt::from(sig.len() as u64));
        calldata.extend(sig);
        let call = FunctionCall {
            contract_address: felt_of_address(&message.account()),
            entry_point_selector: selector!("is_valid_signature"),
            calldata,
        };
        let answer = self
            .provider
            .call(call, BlockId::Tag(BlockTag::Latest))
            .await;
        let felts = match answer {
            Ok(f) => f,
            Err(ProviderError::StarknetError(StarknetError::ContractNotFound)) => {
                return Ok(WalletCheck::Refused(
                    "no account contract is deployed at this address".into(),
                ))
            }
            Err(ProviderError::StarknetError(StarknetError::EntrypointNotFound)) => {
                return Ok(WalletCheck::Refused(
                    "the contract at this address is not an account (no is_valid_signature)".into(),
                ))
            }
            Err(ProviderError::StarknetError(StarknetError::ContractError(_))) => {
                return Ok(WalletCheck::Refused(
                    "the account contract rejected the signature".into(),
                ))
            }
            Err(e) => {
                return Err(Self::unavailable(classify(
                    "is_valid_signature",
                    &e,
                    self.timeout,
                )))
            }
        };
        match felts.first() {
            Some(v) if *v == VALID || *v == Felt::ONE => Ok(WalletCheck::Valid),
            Some(_) => Ok(WalletCheck::Refused(
                "the account contract says the signature is not valid".into(),
            )),
            None => Err(Error::backend(
                SOURCE_NAME,
                "is_valid_signature returned nothing",
            )),
        }
    }
}

/// Checks wallet signatures as plain Stark ECDSA signatures (`[r, s]`) against public keys
/// pinned per wallet, for chain `chain_id`. For deployments whose wallets are known keys and
/// for tests without a chain; an unknown wallet is refused.
#[derive(Debug, Clone, Default)]
pub struct PinnedKeyWalletVerifier {
    chain_id: String,
    keys: HashMap<WalletAddress, Felt>,
}

impl PinnedKeyWalletVerifier {
    /// A verifier for chain `chain_id` with no keys.
    pub fn new(chain_id: impl Into<String>) -> Self {
        Self {
            chain_id: chain_id.into(),
            keys: HashMap::new(),
        }
    }

    /// Pins `public_key` (a Stark public key) for `wallet`.
    pub fn with_key(mut self, wallet: WalletAddress, public_key: Felt) -> Self {
        self.keys.insert(wallet, public_key);
        self
    }
}

#[async_trait]
impl WalletVerifier for PinnedKeyWalletVerifier {
    async fn chain_id(&self) -> Result<String> {
        Ok(self.chain_id.clone())
    }

    async fn check(&self, claim: &AccountMessage, signature: &[FeltHex]) -> Result<WalletCheck> {
        let Some(key) = self.keys.get(&claim.account()) else {
            return Ok(WalletCheck::Refused(
                "no key is pinned for this wallet".into(),
            ));
        };
        check_with_key(*key, claim, signature, &self.chain_id)
    }
}

/// Checks a `[r, s]` Stark signature of `message` against `key`.
fn check_with_key(
    key: Felt,
    message: &AccountMessage,
    signature: &[FeltHex],
    chain_id: &str,
) -> Result<WalletCheck> {
    let sig = match felts(signature) {
        Ok(s) if s.len() == 2 => Signature { r: s[0], s: s[1] },
        Ok(_) => {
            return Ok(WalletCheck::Refused(
                "a Stark signature has two elements (r, s)".into(),
            ))
        }
        Err(why) => return Ok(WalletCheck::Refused(why)),
    };
    let hash = message_hash(message, chain_id)?;
    match VerifyingKey::from_scalar(key).verify(&hash, &sig) {
        Ok(true) => Ok(WalletCheck::Valid),
        _ => Ok(WalletCheck::Refused(
            "the signature does not verify with the account's key".into(),
        )),
    }
}

/// The chain id payers sign for when a coordinator has no chain (SNIP-12 `chainId`).
pub const LOCAL_CHAIN_ID: &str = "BITSAGE_LOCAL";

/// Checks job payers' signatures against the Stark public key stored with their local credit
/// (`bitsage-coordinator credit set --public-key`), for chain id [`LOCAL_CHAIN_ID`]. Node
/// wallet claims are refused: without a chain a wallet cannot be proven.
#[derive(Debug, Clone)]
pub struct StoredKeyVerifier {
    payers: std::sync::Arc<dyn PayerLedger>,
}

impl StoredKeyVerifier {
    /// A verifier reading keys from `payers`.
    pub fn new(payers: std::sync::Arc<dyn PayerLedger>) -> Self {
        Self { payers }
    }
}

#[async_trait]
impl WalletVerifier for StoredKeyVerifier {
    async fn chain_id(&self) -> Result<String> {
        Ok(LOCAL_CHAIN_ID.to_string())
    }

    async fn check(&self, message: &AccountMessage, signature: &[FeltHex]) -> Result<WalletCheck> {
        if matches!(message, AccountMessage::NodeWallet(_)) {
            return Ok(WalletCheck::Refused(
                "without a chain a wallet cannot be proven".into(),
            ));
        }
        let account = message.account();
        let key = match self.payers.payer(&account).await? {
            Some(p) => p.public_key,
            None => None,
        };
        let Some(key) = key else {
            return Ok(WalletCheck::Refused(
                "no public key is stored for this account (bitsage-coordinator credit set --public-key)"
                    .into(),
            ));
        };
        let key = match felt_of_hex(&key) {
            Ok(k) => k,
            Err(e) => return Ok(WalletCheck::Refused(e.to_string())),
        };
        check_with_key(key, message, signature, LOCAL_CHAIN_ID)
    }
}
