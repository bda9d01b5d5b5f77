//! The chain behind the coordinator: a [`StarknetChainSource`] for stake, rewards and
//! reputation, a [`StarknetWalletVerifier`] proving node wallets, the stake gate, and an [`Indexer`]
//! following our contracts' events into the store.

use std::sync::Arc;

use anyhow::Context as _;
use bitsage_chain::escrow::{EscrowFunding, EscrowReader, SettlementContracts, StarknetSettlement};
use bitsage_chain::indexer::{Indexer, IndexerConfig, IndexerStatusHandle, StarknetEventSource};
use bitsage_chain::{
    ContractAddresses, StarknetChainSource, StarknetConfig, StarknetWalletVerifier,
};
use bitsage_http::contracts::ChainInfo;
use bitsage_http::AppState;

/// The name the coordinator's indexer stores its cursor under.
pub const INDEXER_NAME: &str = "bitsage-contracts";

/// Which chain to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    /// The Starknet JSON-RPC endpoint.
    pub rpc_url: String,
    /// Our contracts on that chain.
    pub contracts: ContractAddresses,
    /// The first block to index (the deployment block; 0 reads from genesis).
    pub start_block: u64,
    /// The `JobEscrow` contract: with it, payers' limits are their escrow and (with a
    /// settler) verified work settles on chain in epochs.
    pub escrow: Option<bitsage_core::WalletAddress>,
    /// The account that settles epochs (the escrow's settler, the staking verifier and a
    /// reputation updater) and its owner key.
    pub settler: Option<Settler>,
}

/// The settler account.
#[derive(Clone, PartialEq, Eq)]
pub struct Settler {
    /// Its address.
    pub address: bitsage_core::WalletAddress,
    /// Its owner's Stark private key.
    pub key: starknet::core::types::Felt,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// What `GET /api/contracts` shows: the configured addresses and the indexer's live status.
#[derive(Debug)]
struct CoordinatorChainInfo {
    contracts: ContractAddresses,
    escrow: Option<bitsage_core::WalletAddress>,
    indexer: IndexerStatusHandle,
    started_at: bitsage_core::Timestamp,
}

impl ChainInfo for CoordinatorChainInfo {
    fn network(&self) -> &str {
        "starknet"
    }

    fn contracts(&self) -> Vec<(String, String)> {
        vec![
            ("token".into(), self.contracts.token.to_string()),
            ("staking".into(), self.contracts.staking.to_string()),
            ("reputation".into(), self.contracts.reputation.to_string()),
        ]
        .into_iter()
        .chain(self.escrow.map(|e| ("escrow".into(), e.to_string())))
        .collect()
    }

    fn indexer(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.indexer.snapshot()).ok()
    }

    fn indexer_progress(&self) -> Option<bitsage_http::contracts::IndexerProgress> {
        let s = self.indexer.snapshot();
        Some(bitsage_http::contracts::IndexerProgress {
            block_height: s.cursor.map(|c| c.block_number),
            lag_blocks: s.lag_blocks,
        })
    }

    fn indexer_health(&self) -> Option<bitsage_http::contracts::IndexerHealth> {
        let s = self.indexer.snapshot();
        Some(bitsage_http::contracts::IndexerHealth {
            last_success_at: s.last_success_at,
            started_at: self.started_at,
            lag_blocks: s.lag_blocks,
            consecutive_failures: s.consecutive_failures,
            last_error: s.last_error,
        })
    }
}

/// Adds the chain source and chain info to `state` and builds the indexer (not yet running).
pub async fn attach(state: AppState, chain: &ChainConfig) -> anyhow::Result<(AppState, Indexer)> {
    // Under the dashboard's budget (default 2 s), so a slow chain is answered from the cache
    // with its age rather than cut off by the dashboard's own deadline.
    let config = StarknetConfig::new(&chain.rpc_url, chain.contracts)?
        .with_call_timeout(std::time::Duration::from_millis(1500));
    let source: bitsage_core::DynChainSource = Arc::new(StarknetChainSource::new(config)?);
    let addresses = [
        chain.contracts.token.to_string(),
        chain.contracts.staking.to_string(),
        chain.contracts.reputation.to_string(),
    ];
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let config = IndexerConfig::new(INDEXER_NAME, &refs)?.with_start_block(chain.start_block);
    let events = StarknetEventSource::from_url(&chain.rpc_url)?;
    let indexer = Indexer::new(config, Arc::new(events), state.store.clone());
    let info = CoordinatorChainInfo {
        contracts: chain.contracts,
        escrow: chain.escrow,
        indexer: indexer.status_handle(),
        started_at: bitsage_core::time::now(),
    };
    // Node wallets are proven by their account contracts on this chain.
    let wallets: bitsage_core::wallet::DynWalletVerifier = Arc::new(StarknetWalletVerifier::new(
        &chain.rpc_url,
        std::time::Duration::from_secs(5),
    )?);
    let state = state
        .with_chain(source.clone())
        .with_chain_info(Arc::new(info))
        .with_wallet_verifier(wallets.clone())
        // Payers sign with their account contracts too.
        .with_payer_verifier(wallets)
        // Nodes work only while their stake meets their tier's minimum.
        .with_stake_gate(source);
    let timeout = std::time::Duration::from_secs(10);
    let state = match &chain.escrow {
        Some(escrow) => {
            let reader = EscrowReader::new(&chain.rpc_url, escrow, timeout)?;
            let state = state.with_funding(Arc::new(EscrowFunding::new(reader)));
            match &chain.settler {
                Some(settler) => {
                    let contracts = SettlementContracts {
                        escrow: *escrow,
                        staking: chain.contracts.staking,
                        reputation: chain.contracts.reputation,
                    };
                    let settlement = StarknetSettlement::connect(
                        &chain.rpc_url,
                        &settler.address,
                        settler.key,
                        contracts,
                        timeout,
                    )
                    .await
                    .context("connecting the settler account")?;
                    tracing::info!(escrow = %escrow, settler = %settler.address, "settling verified work on chain");
                    state.with_settlement(Arc::new(settlement))
                }
                None => state,
            }
        }
        None => state,
    };
    Ok((state, indexer))
}
