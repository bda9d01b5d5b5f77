//! The `JobEscrow` contract from Rust: reading it ([`EscrowReader`]: accounts, epochs, the
//! published deployment key), funding limits from it ([`EscrowFunding`]), and settling epochs
//! through it ([`StarknetSettlement`]: one multicall per epoch from the settler account —
//! `settle_epoch` with payouts, fee and the receipts root, `record_success` and a reputation
//! update per job, `slash` per cheating node).

use std::time::Duration;

use async_trait::async_trait;
use bitsage_core::crypto::{Hash32, PublicKey};
use bitsage_core::funding::{FundingLimit, FundingSource};
use bitsage_core::settlement::{EpochBatch, Settlement, TxStatus};
use bitsage_core::{Error, JobId, Result, TokenAmount, WalletAddress};
use starknet::accounts::{Account, ConnectedAccount, ExecutionEncoding, SingleOwnerAccount};
use starknet::core::types::{
    BlockId, BlockTag, Call, ExecutionResult, Felt, FunctionCall, StarknetError,
};
use starknet::core::utils::cairo_short_string_to_felt;
use starknet::macros::selector;
use starknet::providers::jsonrpc::HttpTransport;
use starknet::providers::{Provider, ProviderError};
use starknet::signers::{LocalWallet, SigningKey};
use url::Url;

use crate::rpc_timing::{timed_client, TimedClient};
use crate::snip12::felt_of_address;

const SOURCE: &str = "escrow";

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    tracing::warn!(source = SOURCE, what, error = %crate::starknet_source::scrub_urls(&e.to_string()), "escrow call failed");
    Error::Unavailable {
        source_name: SOURCE.into(),
        reason: format!("{what}: the Starknet RPC endpoint did not answer usably"),
    }
}

/// A JSON-RPC client for `rpc_url` whose every request is bounded by `timeout`.
pub(crate) fn provider(rpc_url: &str, timeout: Duration) -> Result<TimedClient> {
    let url = Url::parse(rpc_url.trim())
        .map_err(|e| Error::invalid("starknet rpc url", e.to_string()))?;
    let http = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| Error::backend(SOURCE, e))?;
    Ok(timed_client(HttpTransport::new_with_client(url, http)))
}

fn limb(f: &Felt, what: &str) -> Result<u128> {
    let b = f.to_bytes_be();
    if b[..16].iter().any(|x| *x != 0) {
        return Err(Error::backend(SOURCE, format!("{what}: limb above 2^128")));
    }
    let mut low = [0u8; 16];
    low.copy_from_slice(&b[16..]);
    Ok(u128::from_be_bytes(low))
}

fn u256_at(felts: &[Felt], i: usize, what: &str) -> Result<TokenAmount> {
    match (felts.get(i), felts.get(i + 1)) {
        (Some(lo), Some(hi)) => Ok(TokenAmount::from_limbs(limb(lo, what)?, limb(hi, what)?)),
        _ => Err(Error::backend(SOURCE, format!("{what}: answer too short"))),
    }
}

fn u64_at(felts: &[Felt], i: usize, what: &str) -> Result<u64> {
    let f = felts
        .get(i)
        .ok_or_else(|| Error::backend(SOURCE, format!("{what}: answer too short")))?;
    u64::try_from(limb(f, what)?).map_err(|_| Error::backend(SOURCE, format!("{what}: above u64")))
}

fn u256_felts(a: TokenAmount) -> [Felt; 2] {
    let (low, high) = a.to_limbs();
    [Felt::from(low), Felt::from(high)]
}

/// A job id as a field element (a UUID is 128 bits).
pub fn job_felt(id: &JobId) -> Felt {
    Felt::from(id.0.as_u128())
}

/// A payer's escrow account as the contract reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowAccount {
    /// Deposited, less withdrawn and settled.
    pub balance: TokenAmount,
    /// Requested for withdrawal (not spendable for new jobs).
    pub pending_withdrawal: TokenAmount,
    /// Paid out for this account's jobs.
    pub settled: TokenAmount,
}

impl EscrowAccount {
    /// What new jobs may reserve: balance less requested withdrawals.
    pub fn spendable(&self) -> TokenAmount {
        self.balance
            .checked_sub(self.pending_withdrawal)
            .unwrap_or_default()
    }
}

/// A settled epoch as the contract reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchoredEpoch {
    /// The receipts root (a field element, as 32 bytes).
    pub receipts_root: Hash32,
    /// How many receipts.
    pub jobs: u32,
    /// The block it was settled in.
    pub block: u64,
}

/// Reads the `JobEscrow` contract at the latest block.
#[derive(Clone)]
pub struct EscrowReader {
    provider: std::sync::Arc<TimedClient>,
    escrow: Felt,
}

impl std::fmt::Debug for EscrowReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EscrowReader")
            .field("escrow", &format!("{:#x}", self.escrow))
            .finish_non_exhaustive()
    }
}

impl EscrowReader {
    /// A reader of the escrow at `escrow` over `rpc_url`, each call bounded by `timeout`.
    pub fn new(rpc_url: &str, escrow: &WalletAddress, timeout: Duration) -> Result<Self> {
        Ok(Self {
            provider: std::sync::Arc::new(provider(rpc_url, timeout)?),
            escrow: felt_of_address(escrow),
        })
    }

    async fn call(
        &self,
        what: &'static str,
        selector: Felt,
        calldata: Vec<Felt>,
    ) -> Result<Vec<Felt>> {
        self.provider
            .call(
                FunctionCall {
                    contract_address: self.escrow,
                    entry_point_selector: selector,
                    calldata,
                },
                BlockId::Tag(BlockTag::Latest),
            )
            .await
            .map_err(|e| match e {
                ProviderError::StarknetError(StarknetError::ContractNotFound) => Error::invalid(
                    "escrow address",
                    "no contract is deployed there (check --escrow-address)",
                ),
                other => unavailable(what, other),
            })
    }

    /// The deployment key the escrow publishes (the key receipts are countersigned with).
    pub async fn deployment_key(&self) -> Result<PublicKey> {
        let f = self
            .call("deployment_key", selector!("deployment_key"), vec![])
            .await?;
        let key = u256_at(&f, 0, "deployment_key")?;
        let (low, high) = key.to_limbs();
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&high.to_be_bytes());
        bytes[16..].copy_from_slice(&low.to_be_bytes());
        if bytes == [0; 32] {
            return Err(Error::invalid(
                "escrow",
                "it publishes no deployment key (the owner has not set one)",
            ));
        }
        PublicKey::from_bytes(&bytes)
    }

    /// A payer's account.
    pub async fn account(&self, payer: &WalletAddress) -> Result<EscrowAccount> {
        let f = self
            .call(
                "get_account",
                selector!("get_account"),
                vec![felt_of_address(payer)],
            )
            .await?;
        Ok(EscrowAccount {
            balance: u256_at(&f, 0, "balance")?,
            pending_withdrawal: u256_at(&f, 2, "pending_withdrawal")?,
            settled: u256_at(&f, 5, "settled")?,
        })
    }

    /// Epoch `id` when it is settled on chain.
    pub async fn epoch(&self, id: u64) -> Result<Option<AnchoredEpoch>> {
        let seen = self
            .call("is_settled", selector!("is_settled"), vec![Felt::from(id)])
            .await?;
        if seen.first() != Some(&Felt::ONE) {
            return Ok(None);
        }
        let f = self
            .call("get_epoch", selector!("get_epoch"), vec![Felt::from(id)])
            .await?;
        // receipts_root, jobs, paid (2), fee (2), settled_at, block
        let root = f
            .first()
            .ok_or_else(|| Error::backend(SOURCE, "get_epoch: empty answer"))?;
        Ok(Some(AnchoredEpoch {
            receipts_root: Hash32(root.to_bytes_be()),
            jobs: u32::try_from(u64_at(&f, 1, "jobs")?)
                .map_err(|_| Error::backend(SOURCE, "jobs above u32"))?,
            block: u64_at(&f, 7, "block")?,
        }))
    }
}

/// Payers' limits read from the escrow (spendable = balance − requested withdrawals), fresh
/// at every submission: money is never taken from a cache.
#[derive(Debug, Clone)]
pub struct EscrowFunding {
    reader: EscrowReader,
}

impl EscrowFunding {
    /// Funding from `reader`'s escrow.
    pub fn new(reader: EscrowReader) -> Self {
        Self { reader }
    }
}

#[async_trait]
impl FundingSource for EscrowFunding {
    async fn limit(&self, payer: &WalletAddress) -> Result<FundingLimit> {
        let account = self.reader.account(payer).await?;
        Ok(FundingLimit::Escrow {
            spendable: account.spendable(),
        })
    }
}

/// The contracts an epoch touches and the settler that sends it.
#[derive(Debug, Clone)]
pub struct SettlementContracts {
    /// `JobEscrow`.
    pub escrow: WalletAddress,
    /// `ProverStaking` (`record_success`, `slash`).
    pub staking: WalletAddress,
    /// `ReputationManager` (`update_reputation`).
    pub reputation: WalletAddress,
}

/// Settles epochs on Starknet: one multicall transaction per epoch from the settler account
/// (see the [module documentation](self)).
pub struct StarknetSettlement {
    account: SingleOwnerAccount<TimedClient, LocalWallet>,
    reader: EscrowReader,
    contracts: SettlementContracts,
}

impl std::fmt::Debug for StarknetSettlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StarknetSettlement")
            .field("settler", &format!("{:#x}", self.account.address()))
            .field("contracts", &self.contracts)
            .finish_non_exhaustive()
    }
}

/// `ReputationManager` outcome index of a succeeded job.
const OUTCOME_SUCCEEDED: u8 = 0;
/// `ReputationManager` outcome index of a slash.
const OUTCOME_SLASH: u8 = 3;

impl StarknetSettlement {
    /// A settler account (`settler`, owner key `settler_key`) over `rpc_url` for `contracts`.
    /// Reads the chain id once.
    pub async fn connect(
        rpc_url: &str,
        settler: &WalletAddress,
        settler_key: Felt,
        contracts: SettlementContracts,
        timeout: Duration,
    ) -> Result<Self> {
        let p = provider(rpc_url, timeout)?;
        let chain_id = p
            .chain_id()
            .await
            .map_err(|e| unavailable("starknet_chainId", e))?;
        let account = SingleOwnerAccount::new(
            p,
            LocalWallet::from(SigningKey::from_secret_scalar(settler_key)),
            felt_of_address(settler),
            chain_id,
            ExecutionEncoding::New,
        );
        Ok(Self {
            account,
            reader: EscrowReader::new(rpc_url, &contracts.escrow, timeout)?,
            contracts,
        })
    }

    /// The escrow reader.
    pub fn reader(&self) -> &EscrowReader {
        &self.reader
    }

    /// The calls of one epoch's transaction.
    pub fn calls(&self, batch: &EpochBatch) -> Result<Vec<Call>> {
        let escrow = felt_of_address(&self.contracts.escrow);
        let staking = felt_of_address(&self.contracts.staking);
        let reputation = felt_of_address(&self.contracts.reputation);
        let mut data = vec![
            Felt::from(batch.epoch_id),
            Felt::from_bytes_be(&batch.receipts_root.0),
            Felt::from(batch.jobs),
            Felt::from(batch.debits.len() as u64),
        ];
        for (payer, amount) in &batch.debits {
            data.push(felt_of_address(payer));
            data.extend(u256_felts(*amount));
        }
        data.push(Felt::from(batch.payouts.len() as u64));
        for (worker, amount) in &batch.payouts {
            data.push(felt_of_address(worker));
            data.extend(u256_felts(*amount));
        }
        data.extend(u256_felts(batch.fee));
        let mut calls = vec![Call {
            to: escrow,
            selector: selector!("settle_epoch"),
            calldata: data,
        }];
        for (worker, job) in &batch.successes {
            let (w, j) = (felt_of_address(worker), job_felt(job));
            calls.push(Call {
                to: staking,
                selector: selector!("record_success"),
                calldata: vec![w, j],
            });
            calls.push(Call {
                to: reputation,
                selector: selector!("update_reputation"),
                calldata: vec![w, Felt::from(OUTCOME_SUCCEEDED), j],
            });
        }
        for s in &batch.slashes {
            let (w, j) = (felt_of_address(&s.worker), job_felt(&s.job_id));
            let mut reason = s.reason.clone();
            reason.truncate(31);
            let reason = cairo_short_string_to_felt(&reason)
                .map_err(|e| Error::invalid("slash reason", e.to_string()))?;
            calls.push(Call {
                to: staking,
                selector: selector!("slash"),
                calldata: vec![w, reason, j],
            });
            calls.push(Call {
                to: reputation,
                selector: selector!("update_reputation"),
                calldata: vec![w, Felt::from(OUTCOME_SLASH), j],
            });
        }
        Ok(calls)
    }
}

#[async_trait]
impl Settlement for StarknetSettlement {
    async fn settled(&self, epoch_id: u64) -> Result<Option<u64>> {
        Ok(self.reader.epoch(epoch_id).await?.map(|e| e.block))
    }

    async fn send(&self, batch: &EpochBatch) -> Result<String> {
        let calls = self.calls(batch)?;
        let sent = self.account.execute_v3(calls).send().await.map_err(|e| {
            // A transaction the chain would revert (a seen epoch id, an escrow too low)
            // fails here, at fee estimation; its text stays in the logs.
            tracing::warn!(epoch = batch.epoch_id, error = %crate::starknet_source::scrub_urls(&e.to_string()), "settlement transaction refused");
            Error::Conflict(format!(
                "the chain refused the settlement of epoch {} (see the coordinator log)",
                batch.epoch_id
            ))
        })?;
        Ok(format!("{:#x}", sent.transaction_hash))
    }

    async fn status(&self, tx_hash: &str) -> Result<TxStatus> {
        let tx = Felt::from_hex(tx_hash).map_err(|_| Error::invalid("tx hash", "not hex"))?;
        match self.account.provider().get_transaction_receipt(tx).await {
            Ok(r) => Ok(match r.receipt.execution_result() {
                ExecutionResult::Succeeded => TxStatus::Accepted {
                    block: r.block.block_number(),
                },
                ExecutionResult::Reverted { reason } => TxStatus::Reverted {
                    reason: reason.chars().take(300).collect(),
                },
            }),
            Err(ProviderError::StarknetError(StarknetError::TransactionHashNotFound)) => {
                Ok(TxStatus::Pending)
            }
            Err(e) => Err(unavailable("starknet_getTransactionReceipt", e)),
        }
    }
}
