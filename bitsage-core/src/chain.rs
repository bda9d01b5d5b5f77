//! Views of on-chain state (stake, rewards, reputation) and indexed contract events.

use serde::{Deserialize, Serialize};

use crate::amount::TokenAmount;
use crate::gpu::GpuTier;
use crate::time::Timestamp;

/// Where and when a chain value was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReadAt {
    /// The block the call was made against.
    pub block_number: u64,
    /// That block's hash (hex), when known.
    pub block_hash: Option<String>,
    /// When the value was read from the chain (not when it was served from a cache).
    pub read_at: Timestamp,
}

/// A chain value with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed<T> {
    /// The value.
    pub value: T,
    /// Where and when it was read.
    pub at: ChainReadAt,
}

impl<T> Observed<T> {
    /// How old the value is at `now` (zero if `now` is earlier).
    pub fn age(&self, now: Timestamp) -> std::time::Duration {
        (now - self.at.read_at).to_std().unwrap_or_default()
    }
}

/// A worker's stake, as `ProverStaking::get_stake` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeInfo {
    /// Staked amount.
    pub amount: TokenAmount,
    /// Amount locked in a pending unstake.
    pub locked_amount: TokenAmount,
    /// When the stake was made (absent if never staked).
    pub staked_at: Option<Timestamp>,
    /// When rewards were last claimed.
    pub last_claim_at: Option<Timestamp>,
    /// The tier staked for.
    pub gpu_tier: GpuTier,
    /// Whether the stake is active.
    pub is_active: bool,
    /// Consecutive failed jobs.
    pub consecutive_failures: u32,
    /// Total slashed so far.
    pub total_slashed: TokenAmount,
    /// Rewards accrued and not yet claimed.
    pub pending_rewards: TokenAmount,
}

/// A worker's rewards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardsInfo {
    /// Accrued, unclaimed rewards.
    pub pending: TokenAmount,
    /// When rewards were last claimed.
    pub last_claim_at: Option<Timestamp>,
}

impl StakeInfo {
    /// What the staking contract reports for a wallet that never staked: nothing staked,
    /// consumer tier, inactive.
    pub fn never_staked() -> Self {
        Self {
            amount: TokenAmount::ZERO,
            locked_amount: TokenAmount::ZERO,
            staked_at: None,
            last_claim_at: None,
            gpu_tier: GpuTier::Consumer,
            is_active: false,
            consecutive_failures: 0,
            total_slashed: TokenAmount::ZERO,
            pending_rewards: TokenAmount::ZERO,
        }
    }
}

/// A worker's reputation, as `ReputationManager::get_reputation` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReputationInfo {
    /// Score, 0–1000.
    pub score: u32,
    /// Level, 1–5.
    pub level: u8,
    /// Last update.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::TimestampSchema>))]
    pub last_updated: Option<Timestamp>,
    /// Jobs completed.
    pub total_jobs_completed: u64,
    /// Successful jobs.
    pub successful_jobs: u64,
    /// Failed jobs.
    pub failed_jobs: u64,
    /// Disputes.
    pub dispute_count: u64,
    /// Slashes.
    pub slash_count: u64,
}

impl ReputationInfo {
    /// What the reputation contract reports for a worker it never rated: every worker starts
    /// at score 500, level 3, with no history.
    pub fn starting() -> Self {
        Self {
            score: 500,
            level: 3,
            last_updated: None,
            total_jobs_completed: 0,
            successful_jobs: 0,
            failed_jobs: 0,
            dispute_count: 0,
            slash_count: 0,
        }
    }
}

/// Network-wide totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkTotals {
    /// Total staked across workers.
    pub total_staked: TokenAmount,
}

/// A block's identity, as the indexer's cursor keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexerCursor {
    /// Block number.
    pub block_number: u64,
    /// Block hash (hex).
    pub block_hash: String,
}

/// One contract event, as indexed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEvent {
    /// Block number.
    pub block_number: u64,
    /// Block hash (hex).
    pub block_hash: String,
    /// Transaction hash (hex).
    pub tx_hash: String,
    /// Index of the event within its transaction's receipt.
    pub event_index: u32,
    /// Emitting contract (hex).
    pub contract: String,
    /// Keys (selector first), hex felts.
    pub keys: Vec<String>,
    /// Data, hex felts.
    pub data: Vec<String>,
}
