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
