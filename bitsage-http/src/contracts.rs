//! `GET /api/contracts`: which contracts the coordinator reads and how far its event indexer
//! has followed them.

use std::fmt::Debug;

use serde::Serialize;
use utoipa::ToSchema;

/// What the coordinator knows about the chain it reads, for `GET /api/contracts`.
///
/// # Contract
/// - `contracts` is static configuration (names and addresses), never a chain read.
/// - `indexer` reports the indexer's last known state (cursor, head, lag, last error) without
///   blocking; `None` when no indexer runs.
/// - Neither returns backend error text.
pub trait ChainInfo: Send + Sync + Debug {
    /// The network's name (e.g. `"starknet"`).
    fn network(&self) -> &str;
    /// The contracts read, as (name, `0x` address) pairs.
    fn contracts(&self) -> Vec<(String, String)>;
    /// The indexer's status as JSON, when an indexer runs.
    fn indexer(&self) -> Option<serde_json::Value>;
    /// The indexer's health for readiness and incidents, when an indexer runs.
    fn indexer_health(&self) -> Option<IndexerHealth> {
        None
    }
    /// How far the indexer has followed the chain, for `/metrics`, when an indexer runs.
    fn indexer_progress(&self) -> Option<IndexerProgress> {
        None
    }
}

/// How far the event indexer has followed the chain (`bitsage_indexer_*` on `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexerProgress {
    /// The last block it processed (its stored cursor); `None` before its first step.
    pub block_height: Option<u64>,
    /// Blocks between its cursor and the chain's head at its last successful step.
    pub lag_blocks: Option<u64>,
}

/// How well the event indexer keeps up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexerHealth {
    /// When its last successful step ended (`None`: none yet).
    pub last_success_at: Option<bitsage_core::Timestamp>,
    /// When it started (a first step is expected soon after).
    pub started_at: bitsage_core::Timestamp,
    /// Blocks between its cursor and the chain's head at the last successful step.
    pub lag_blocks: Option<u64>,
    /// Failed steps in a row.
    pub consecutive_failures: u32,
    /// The last step's error, in words safe to show.
    pub last_error: Option<String>,
}

/// An indexer more than this many blocks behind the head is behind.
pub const INDEXER_MAX_LAG_BLOCKS: u64 = 20;
/// An indexer without a successful step for this long is behind.
pub const INDEXER_MAX_SILENCE: std::time::Duration = std::time::Duration::from_secs(60);

impl IndexerHealth {
    /// Why the indexer is behind at `now` (`None`: it keeps up): no successful step for
    /// [`INDEXER_MAX_SILENCE`], or more than [`INDEXER_MAX_LAG_BLOCKS`] blocks behind.
    pub fn behind(&self, now: bitsage_core::Timestamp) -> Option<String> {
        let silence =
            chrono::TimeDelta::from_std(INDEXER_MAX_SILENCE).unwrap_or(chrono::TimeDelta::MAX);
        let last = self.last_success_at.unwrap_or(self.started_at);
        if now - last > silence {
            return Some(match &self.last_error {
                Some(e) => format!(
                    "no successful step since {} ({} failures in a row: {e})",
                    last.to_rfc3339(),
                    self.consecutive_failures
                ),
                None => format!("no successful step since {}", last.to_rfc3339()),
            });
        }
        match self.lag_blocks {
            Some(l) if l > INDEXER_MAX_LAG_BLOCKS => {
                Some(format!("{l} blocks behind the chain's head"))
            }
            _ => None,
        }
    }
}

/// One contract in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContractEntry {
    /// Its name (`token`, `staking`, `reputation`).
    pub name: String,
    /// Its address.
    pub address: String,
}

/// The answer of `GET /api/contracts`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ContractsResponse {
    /// A chain is configured.
    Ok {
        /// The network.
        network: String,
        /// The contracts.
        contracts: Vec<ContractEntry>,
        /// The indexer's status (`null` when none runs).
        indexer: Option<serde_json::Value>,
    },
    /// No chain is configured.
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// Builds the answer from the state's chain info.
pub fn response(info: Option<&dyn ChainInfo>) -> ContractsResponse {
    match info {
        None => ContractsResponse::Unavailable {
            reason: "no chain source configured".into(),
        },
        Some(i) => ContractsResponse::Ok {
            network: i.network().to_string(),
            contracts: i
                .contracts()
                .into_iter()
                .map(|(name, address)| ContractEntry { name, address })
                .collect(),
            indexer: i.indexer(),
        },
    }
}
