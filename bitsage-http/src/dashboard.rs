//! The validator dashboard and network views.
//!
//! Every number comes from a real source: the store (`state.store`) or the chain
//! (`state.chain`). A response is split into **field groups**, each a [`Section`]: the group's
//! fields next to `"status":"ok"`, or `{"status":"unavailable","reason":"…"}` when its source
//! could not answer — no chain source configured, an error (logged; the client gets a safe
//! reason), or no answer within `HttpConfig::dashboard_budget`. One failed or slow source
//! degrades its own groups only: the response is still 200 and arrives within about the
//! budget, because every source is queried concurrently under one deadline.
//!
//! Chain groups are [`ChainReading`]s: the value plus the block it was read at, when it was
//! read and its age in seconds. A chain field never carries a number the chain did not give.
//!
//! Routes (see [`routes`]; the exact shapes are in `GET /openapi.json`):
//! - `GET /api/validator/status|gpus|rewards|history`: the wallet named by the
//!   `X-Wallet-Address` header ([`WalletHeader`]) and its nodes.
//! - `GET /api/network/workers`, `GET /api/worker/uptime`.
//! - `GET /api/jobs/analytics`, `GET /api/jobs/recent`.
//! - `GET /api/summary`: the dashboard's front page in one call.
//! - `GET /openapi.json`: the OpenAPI 3.1 document of the whole API ([`crate::openapi`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use axum::routing::get;
use axum::{Json, Router};
use bitsage_core::attestation::AttestationSummary;
use bitsage_core::chain::{NetworkTotals, Observed, ReputationInfo, RewardsInfo, StakeInfo};
use bitsage_core::gpu::{GpuDevice, GpuSample, GpuTier, HostInfo, ReportedCollector};
use bitsage_core::job::JobFilter;
use bitsage_core::ledger::EarningsTotal;
use bitsage_core::node::{NodeFilter, NodeRecord, StatusChange, Uptime};
use bitsage_core::openapi::TimestampSchema;
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::{
    DynJobStore, Error, JobStatus, JobStoreExt, NodeId, NodeStatus, TimeWindow, Timestamp,
    TokenAmount, WalletAddress,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use crate::api::ErrorBody;
use crate::api::{ComponentHealth, DailyEarningsView, EarningsTotalView, HealthStatus, JobView};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::openapi::responses::*;
use crate::{openapi, service, AppState, HttpConfig};

// ---------------------------------------------------------------- field groups

/// The reason a chain group gives when the coordinator has no chain source.
pub const NO_CHAIN_SOURCE: &str = "no chain source configured";

/// One field group of a dashboard response, tagged by `status`.
///
/// - `{"status":"ok", …the group's fields…}` when its source answered in time;
/// - `{"status":"unavailable","reason":"…"}` when it did not (no source configured, an error,
///   or no answer within the dashboard budget). The reason is safe to show; details are logged.
///
/// A group's own fields never include one named `status` (it is the tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Section<T> {
    /// The source answered; the value's fields sit next to the tag.
    Ok(T),
    /// The source could not answer.
    Unavailable {
        /// Why, in words safe to show.
        reason: String,
    },
}

impl<T> Section<T> {
    /// An unavailable group with this reason.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Section::Unavailable {
            reason: reason.into(),
        }
    }

    /// The value, when the source answered.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Section::Ok(v) => Some(v),
            Section::Unavailable { .. } => None,
        }
    }

    /// The reason, when the source did not answer.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Section::Ok(_) => None,
            Section::Unavailable { reason } => Some(reason),
        }
    }

    /// Maps the value of an available group.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Section<U> {
        match self {
            Section::Ok(v) => Section::Ok(f(v)),
            Section::Unavailable { reason } => Section::Unavailable { reason },
        }
    }
}

/// A value read from the chain, with its provenance: the value's fields, then the block it was
/// read at, when it was read (a cached answer keeps its original read time) and its age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChainReading<T> {
    /// The value.
    #[serde(flatten)]
    pub value: T,
    /// The block the value was read at.
    pub block_number: u64,
    /// That block's hash (hex), when the source knows it.
    pub block_hash: Option<String>,
    /// When the value was read from the chain.
    #[schema(value_type = TimestampSchema)]
    pub read_at: Timestamp,
    /// How old the value was when this response was built, whole seconds.
    pub age_secs: u64,
}

impl<T> ChainReading<T> {
    /// A reading of `observed`, its value converted by `view`, aged at `now`.
    pub fn new<U>(observed: Observed<U>, view: impl FnOnce(U) -> T, now: Timestamp) -> Self {
        let age_secs = observed.age(now).as_secs();
        Self {
            value: view(observed.value),
            block_number: observed.at.block_number,
            block_hash: observed.at.block_hash,
            read_at: observed.at.read_at,
            age_secs,
        }
    }
}

// ---------------------------------------------------------------- chain views

/// A wallet's stake as the staking contract reports it, amounts in base units and formatted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StakeView {
    /// Staked amount.
    pub amount: TokenAmount,
    /// `amount` for people.
    pub amount_formatted: String,
    /// Amount locked in a pending unstake.
    pub locked_amount: TokenAmount,
    /// `locked_amount` for people.
    pub locked_amount_formatted: String,
    /// When the stake was made (`null` if never staked).
    #[schema(value_type = Option<TimestampSchema>)]
    pub staked_at: Option<Timestamp>,
    /// When rewards were last claimed.
    #[schema(value_type = Option<TimestampSchema>)]
    pub last_claim_at: Option<Timestamp>,
    /// The tier staked for.
    pub gpu_tier: GpuTier,
    /// Whether the stake is active.
    pub is_active: bool,
    /// Consecutive failed jobs.
    pub consecutive_failures: u32,
    /// Total slashed so far.
    pub total_slashed: TokenAmount,
    /// `total_slashed` for people.
    pub total_slashed_formatted: String,
    /// Rewards accrued and not yet claimed.
    pub pending_rewards: TokenAmount,
    /// `pending_rewards` for people.
    pub pending_rewards_formatted: String,
}

impl From<StakeInfo> for StakeView {
    fn from(s: StakeInfo) -> Self {
        Self {
            amount_formatted: s.amount.format_sage(),
            amount: s.amount,
            locked_amount_formatted: s.locked_amount.format_sage(),
            locked_amount: s.locked_amount,
            staked_at: s.staked_at,
            last_claim_at: s.last_claim_at,
            gpu_tier: s.gpu_tier,
            is_active: s.is_active,
            consecutive_failures: s.consecutive_failures,
            total_slashed_formatted: s.total_slashed.format_sage(),
            total_slashed: s.total_slashed,
            pending_rewards_formatted: s.pending_rewards.format_sage(),
            pending_rewards: s.pending_rewards,
        }
    }
}

/// A wallet's on-chain rewards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RewardsView {
    /// Accrued, unclaimed rewards.
    pub pending: TokenAmount,
    /// `pending` for people.
    pub pending_formatted: String,
    /// When rewards were last claimed.
    #[schema(value_type = Option<TimestampSchema>)]
    pub last_claim_at: Option<Timestamp>,
}

impl From<RewardsInfo> for RewardsView {
    fn from(r: RewardsInfo) -> Self {
        Self {
            pending_formatted: r.pending.format_sage(),
            pending: r.pending,
            last_claim_at: r.last_claim_at,
        }
    }
}

/// Network-wide chain totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NetworkTotalsView {
    /// Total staked across workers.
    pub total_staked: TokenAmount,
    /// `total_staked` for people.
    pub total_staked_formatted: String,
}

impl From<NetworkTotals> for NetworkTotalsView {
    fn from(t: NetworkTotals) -> Self {
        Self {
            total_staked_formatted: t.total_staked.format_sage(),
            total_staked: t.total_staked,
        }
    }
}

// ---------------------------------------------------------------- store views

/// Nodes counted by status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerCounts {
    /// Nodes in any status.
    pub total: u64,
    /// Nodes per status; every status is present (zero when none).
    pub by_status: BTreeMap<String, u64>,
    /// A wallet's nodes by wallet proof: `proven` (the wallet account signed for the node
    /// key, checked on chain) and `unverified` (named by the node only). Wallet views only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_wallet_status: Option<BTreeMap<String, u64>>,
}

impl WorkerCounts {
    fn of(nodes: &[NodeRecord]) -> Self {
        let mut by_status = zero_counts(NodeStatus::ALL.iter().map(NodeStatus::as_str));
        let mut by_wallet = zero_counts(["proven", "unverified"].into_iter());
        for n in nodes {
            *by_status.entry(n.status.as_str().to_string()).or_default() += 1;
            *by_wallet
                .entry(n.wallet_status().as_str().to_string())
                .or_default() += 1;
        }
        Self {
            total: nodes.len() as u64,
            by_status,
            by_wallet_status: Some(by_wallet),
        }
    }
}

/// Jobs of a wallet's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WalletJobs {
    /// Jobs completed by the wallet's nodes.
    pub completed: u64,
    /// Jobs leased to the wallet's nodes right now.
    pub leased: u64,
}

/// Jobs counted by status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobCounts {
    /// Jobs in any status (the sum of `by_status`).
    pub total: u64,
    /// Jobs per status; every status is present (zero when none).
    pub by_status: BTreeMap<String, u64>,
    /// `completed / (completed + failed)`, 0–1; `null` while no job has finished.
    pub success_rate: Option<f64>,
}

impl JobCounts {
    fn of(counts: &[(JobStatus, u64)]) -> Self {
        let mut by_status = zero_counts(JobStatus::ALL.iter().map(JobStatus::as_str));
        for (s, n) in counts {
            by_status.insert(s.as_str().to_string(), *n);
        }
        let get = |s: JobStatus| by_status.get(s.as_str()).copied().unwrap_or(0);
        let (completed, failed) = (get(JobStatus::Completed), get(JobStatus::Failed));
        let finished = completed + failed;
        Self {
            total: by_status.values().sum(),
            success_rate: (finished > 0).then(|| completed as f64 / finished as f64),
            by_status,
        }
    }
}

fn zero_counts<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    names.map(|n| (n.to_string(), 0)).collect()
}

// ---------------------------------------------------------------- responses

/// `GET /api/validator/status`: a wallet's nodes, jobs, ledger earnings and chain standing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidatorStatus {
    /// The wallet (normalised).
    pub wallet: WalletAddress,
    /// When the response was built.
    #[schema(value_type = TimestampSchema)]
    pub generated_at: Timestamp,
    /// The wallet's nodes by status (store).
    pub workers: Section<WorkerCounts>,
    /// Jobs of those nodes (store).
    pub jobs: Section<WalletJobs>,
    /// Exact ledger earnings summed over those nodes, all time (store).
    pub earnings: Section<EarningsTotalView>,
    /// The wallet's stake (chain).
    pub stake: Section<ChainReading<StakeView>>,
    /// The wallet's rewards (chain).
    pub rewards: Section<ChainReading<RewardsView>>,
    /// The wallet's reputation (chain).
    pub reputation: Section<ChainReading<ReputationInfo>>,
}

/// One node's GPUs: its hardware report and the latest sample of each device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeGpus {
    /// The node.
    pub node_id: NodeId,
    /// Its lifecycle status.
    pub status: NodeStatus,
    /// Its GPUs as reported at registration (empty on a GPU-less host).
    pub gpus: Vec<GpuDevice>,
    /// Its host (CPU, memory), when reported.
    pub host: Option<HostInfo>,
    /// Why the node has no GPU data, when it says so.
    pub gpu_unavailable_reason: Option<String>,
    /// The latest sample of each device, from its heartbeats (empty before the first).
    pub latest_samples: Vec<GpuSample>,
    /// The node's GPU collector health, as its latest heartbeat reported it.
    pub gpu_collector: Option<ReportedCollector>,
    /// What the coordinator checked of the node's confidential-compute attestation.
    pub attestation: AttestationSummary,
}

/// The GPUs of a wallet's nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WalletGpus {
    /// GPUs over all the wallet's nodes.
    pub total_gpus: u64,
    /// Each node, in registration order.
    pub nodes: Vec<NodeGpus>,
}

/// `GET /api/validator/gpus`: the wallet's nodes' GPUs (never the coordinator's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidatorGpus {
    /// The wallet.
    pub wallet: WalletAddress,
    /// When the response was built.
    #[schema(value_type = TimestampSchema)]
    pub generated_at: Timestamp,
    /// The nodes and their GPUs (store).
    pub workers: Section<WalletGpus>,
}

/// One node's ledger earnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeEarnings {
    /// The node.
    pub node_id: NodeId,
    /// Its exact sums, all time.
    #[serde(flatten)]
    pub total: EarningsTotalView,
}

/// Ledger earnings of a wallet's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEarnings {
    /// Exact sums over all the wallet's nodes.
    pub total: EarningsTotalView,
    /// Per node, in registration order.
    pub nodes: Vec<NodeEarnings>,
}

/// `GET /api/validator/rewards`: ledger earnings (store) and on-chain rewards (chain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidatorRewards {
    /// The wallet.
    pub wallet: WalletAddress,
    /// When the response was built.
    #[schema(value_type = TimestampSchema)]
    pub generated_at: Timestamp,
    /// What the coordinator's ledger credited the wallet's nodes (store).
    pub earnings: Section<LedgerEarnings>,
    /// The wallet's rewards on chain (chain).
    pub rewards: Section<ChainReading<RewardsView>>,
}

/// Query of `GET /api/validator/history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Window start (default: `to` − 30 days).
    #[param(value_type = Option<TimestampSchema>)]
    pub from: Option<Timestamp>,
    /// Window end, exclusive (default: now).
    #[param(value_type = Option<TimestampSchema>)]
    pub to: Option<Timestamp>,
}

/// Earnings per UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DailySeries {
    /// Days with earnings, oldest first, summed over the wallet's nodes.
    pub days: Vec<DailyEarningsView>,
}

/// Status changes of a wallet's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusChanges {
    /// Changes in the window.
    pub total: u64,
    /// The newest changes first, at most [`MAX_STATUS_CHANGES`].
    pub items: Vec<StatusChange>,
}

/// `GET /api/validator/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidatorHistory {
    /// The wallet.
    pub wallet: WalletAddress,
    /// Window start.
    #[schema(value_type = TimestampSchema)]
    pub from: Timestamp,
    /// Window end (exclusive).
    #[schema(value_type = TimestampSchema)]
    pub to: Timestamp,
    /// When the response was built.
    #[schema(value_type = TimestampSchema)]
    pub generated_at: Timestamp,
    /// Earnings per UTC day in the window (store).
    pub earnings: Section<DailySeries>,
    /// Status changes of the wallet's nodes in the window (store).
    pub status_changes: Section<StatusChanges>,
}

/// Query of `GET /api/network/workers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NetworkWorkersQuery {
    /// Only nodes in this status.
    pub status: Option<NodeStatus>,
    /// Page size (1 ..= [`MAX_NETWORK_WORKERS`], default [`DEFAULT_NETWORK_WORKERS`]).
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

/// A node as the network view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NetworkWorker {
    /// The node.
    pub node_id: NodeId,
    /// Its lifecycle status.
    pub status: NodeStatus,
    /// The wallet it earns for.
    pub wallet: WalletAddress,
    /// When it registered.
    #[schema(value_type = TimestampSchema)]
    pub registered_at: Timestamp,
    /// Its latest heartbeat (`null` before the first).
    #[schema(value_type = Option<TimestampSchema>)]
    pub last_seen: Option<Timestamp>,
    /// GPUs in its hardware report.
    pub gpu_count: u64,
    /// Distinct GPU model names in its hardware report, in report order.
    pub gpu_models: Vec<String>,
    /// Share of the minutes of the last 24 h since its registration with a heartbeat, 0–1
    /// (`null` when none is counted).
    pub uptime_24h: Option<f64>,
}

/// `GET /api/network/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NetworkWorkers {
    /// When the response was built.
    #[schema(value_type = TimestampSchema)]
    pub generated_at: Timestamp,
    /// A page of nodes, in registration order (store).
    pub workers: Section<Page<NetworkWorker>>,
}

/// Query of `GET /api/worker/uptime`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UptimeQuery {
    /// The node.
    pub node: String,
    /// The window ending now, seconds (1 ..= [`MAX_UPTIME_WINDOW_SECS`], default 86 400).
    pub window_secs: Option<u64>,
}

/// `GET /api/worker/uptime`: a node's uptime over a window ending now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerUptime {
    /// The node.
    pub node_id: NodeId,
    /// The window's length, seconds.
    pub window_secs: u64,
    /// The window, heartbeats counted, seconds covered and the ratio.
    #[serde(flatten)]
    pub uptime: Uptime,
    /// The heartbeat interval the coordinator asks of nodes, seconds.
    pub heartbeat_interval_secs: u64,
    /// Its latest heartbeat (`null` before the first).
    #[schema(value_type = Option<TimestampSchema>)]
    pub last_seen: Option<Timestamp>,
}

/// `GET /api/jobs/analytics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobAnalytics {
    /// When the response was built.
    #[schema(value_type = TimestampSchema)]
    pub generated_at: Timestamp,
    /// Jobs by status (store).
    pub jobs: Section<JobCounts>,
}

/// Query of `GET /api/jobs/recent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecentJobsQuery {
    /// How many (1 ..= [`MAX_RECENT_JOBS`], default [`DEFAULT_RECENT_JOBS`]).
    pub limit: Option<u32>,
}

/// The newest jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecentJobsList {
    /// Jobs in the store.
    pub total: u64,
    /// The newest submissions first.
    pub items: Vec<JobView>,
}

/// `GET /api/jobs/recent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecentJobs {
    /// When the response was built.
    #[schema(value_type = TimestampSchema)]
    pub generated_at: Timestamp,
    /// The newest jobs (store).
    pub jobs: Section<RecentJobsList>,
}

/// The network at a glance, from the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NetworkSummary {
    /// Nodes in status `active`.
    pub active_workers: u64,
    /// Nodes in any status.
    pub total_workers: u64,
    /// Nodes per status.
    pub workers_by_status: BTreeMap<String, u64>,
    /// Jobs by status.
    pub jobs: JobCounts,
}

/// `GET /api/summary`: the dashboard's front page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    /// When the response was built.
    #[schema(value_type = TimestampSchema)]
    pub generated_at: Timestamp,
    /// Workers and jobs (store).
    pub network: Section<NetworkSummary>,
    /// Network totals (chain).
    pub chain: Section<ChainReading<NetworkTotalsView>>,
    /// Whether the store answers, and how fast.
    pub store: ComponentHealth,
    /// Verified work waiting to be settled on chain (store).
    pub settlement: Section<SettlementSummary>,
    /// KPIs over the last 24 h against the 24 h before, p95 by region, hourly trends
    /// (store).
    pub operations: Section<bitsage_core::service::fleet::OperationsSummary>,
}

/// What waits for settlement on chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SettlementSummary {
    /// Receipts not yet in an accepted epoch.
    pub pending_receipts: u64,
    /// Slashes not yet sent.
    pub pending_slashes: u64,
    /// When the oldest pending receipt was completed.
    #[schema(value_type = Option<TimestampSchema>)]
    pub oldest_pending_at: Option<Timestamp>,
    /// Its age, seconds.
    pub oldest_pending_age_secs: Option<i64>,
}

// ---------------------------------------------------------------- limits

/// Longest window `GET /api/validator/history` accepts, days.
pub const MAX_HISTORY_DAYS: i64 = 366;
/// Default window of `GET /api/validator/history`, days.
pub const DEFAULT_HISTORY_DAYS: i64 = 30;
/// Most status changes `GET /api/validator/history` lists.
pub const MAX_STATUS_CHANGES: usize = 100;
/// Default page size of `GET /api/network/workers`.
pub const DEFAULT_NETWORK_WORKERS: u32 = 50;
/// Largest page of `GET /api/network/workers` (each node costs two store reads).
pub const MAX_NETWORK_WORKERS: u32 = 200;
/// Default window of `GET /api/worker/uptime`, seconds (24 h).
pub const DEFAULT_UPTIME_WINDOW_SECS: u64 = 86_400;
/// Longest window of `GET /api/worker/uptime`, seconds (30 days).
pub const MAX_UPTIME_WINDOW_SECS: u64 = 30 * 86_400;
/// Default size of `GET /api/jobs/recent`.
pub const DEFAULT_RECENT_JOBS: u32 = 20;
/// Largest size of `GET /api/jobs/recent`.
pub const MAX_RECENT_JOBS: u32 = 100;

// ---------------------------------------------------------------- the wallet header

/// The header naming the validator's wallet.
pub const WALLET_HEADER: &str = "x-wallet-address";

/// The wallet named by the `X-Wallet-Address` header, validated as a Starknet address and
/// visible to the caller (admins: any; operators: their organisation's — 404 otherwise).
/// Missing or malformed → 400 `invalid_request` in the API shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletHeader(pub WalletAddress);

impl FromRequestParts<AppState> for WalletHeader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let wallet = Self::parse(parts)?;
        let caller = crate::auth::Caller::from_request_parts(parts, state).await?;
        crate::auth::ensure_wallet_visible(state, &caller, &wallet.0, "wallet").await?;
        Ok(wallet)
    }
}

impl WalletHeader {
    fn parse(parts: &Parts) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(WALLET_HEADER)
            .ok_or_else(|| ApiError::invalid("X-Wallet-Address header is required"))?;
        let text = value.to_str().map_err(|_| {
            ApiError::invalid("X-Wallet-Address header must be a 0x-prefixed hex address")
        })?;
        WalletAddress::parse(text.trim())
            .map(Self)
            .map_err(ApiError::from)
    }
}

// ---------------------------------------------------------------- sources under a budget

/// The sources a response draws on.
#[derive(Debug, Clone, Copy)]
enum Source {
    Store,
    Chain,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Store => "store",
            Source::Chain => "chain",
        }
    }
}

/// The deadline every source of one response shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) deadline: Instant,
    limit: Duration,
}

impl Budget {
    pub(crate) fn start(config: &HttpConfig) -> Self {
        let now = Instant::now();
        let limit = config.dashboard_budget;
        // A budget too large for the clock is, in effect, no deadline (a year).
        let deadline = now
            .checked_add(limit)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400));
        Self { deadline, limit }
    }

    fn timeout_reason(&self, source: Source) -> String {
        format!(
            "{} did not answer within {} ms",
            source.name(),
            self.limit.as_millis()
        )
    }
}

/// A reason safe to show for a source's error; the detail goes to the log.
fn safe_reason(source: Source, err: &Error) -> String {
    match err {
        // Written for operators, with no backend text (see the port contracts).
        Error::Unavailable { .. } | Error::Overflow(_) => {
            tracing::warn!(source = source.name(), error = %err, "dashboard source unavailable");
            err.to_string()
        }
        _ => {
            tracing::error!(source = source.name(), error = %err, detail = ?err, "dashboard source failed");
            format!("{} query failed", source.name())
        }
    }
}

/// Runs `fut` against `source` until the budget's deadline: its value, or an unavailable group.
async fn fetch<T>(
    source: Source,
    budget: &Budget,
    fut: impl Future<Output = Result<T, Error>>,
) -> Section<T> {
    match tokio::time::timeout_at(budget.deadline, fut).await {
        Ok(Ok(v)) => Section::Ok(v),
        Ok(Err(e)) => Section::unavailable(safe_reason(source, &e)),
        Err(_) => {
            tracing::warn!(
                source = source.name(),
                budget_ms = budget.limit.as_millis() as u64,
                "dashboard source missed its budget"
            );
            Section::unavailable(budget.timeout_reason(source))
        }
    }
}

/// Reads a chain value under the budget (`read` is `None` without a chain source).
pub(crate) async fn chain_read<T, V>(
    budget: &Budget,
    read: Option<impl Future<Output = Result<Observed<T>, Error>>>,
    view: impl FnOnce(T) -> V,
) -> Section<ChainReading<V>> {
    let Some(read) = read else {
        return Section::unavailable(NO_CHAIN_SOURCE);
    };
    fetch(Source::Chain, budget, read)
        .await
        .map(|o| ChainReading::new(o, view, bitsage_core::time::now()))
}

/// Polls all `futs` concurrently (on this task) and returns their outputs in order.
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// [`join_all`] over fallible futures: every output, or the first error.
async fn try_join_all<T, F: Future<Output = Result<T, Error>>>(
    futs: Vec<F>,
) -> Result<Vec<T>, Error> {
    join_all(futs).await.into_iter().collect()
}

// ---------------------------------------------------------------- store queries

/// Every node of `wallet`, in registration order (all pages).
async fn wallet_nodes(
    store: &DynJobStore,
    wallet: WalletAddress,
) -> Result<Vec<NodeRecord>, Error> {
    let filter = NodeFilter {
        status: None,
        wallet: Some(wallet),
        ..Default::default()
    };
    store.all_nodes(&filter).await
}

async fn count_jobs(
    store: &DynJobStore,
    status: JobStatus,
    node: Option<NodeId>,
) -> Result<u64, Error> {
    let filter = JobFilter {
        status: Some(status),
        node,
    };
    store.count_jobs(&filter).await
}

/// Jobs completed by and leased to `nodes`.
async fn wallet_jobs(store: &DynJobStore, nodes: &[NodeRecord]) -> Result<WalletJobs, Error> {
    let per_node = nodes.iter().map(|n| async move {
        tokio::try_join!(
            count_jobs(store, JobStatus::Completed, Some(n.id.clone())),
            count_jobs(store, JobStatus::Leased, Some(n.id.clone())),
        )
    });
    let counts = try_join_all(per_node.collect()).await?;
    Ok(WalletJobs {
        completed: counts.iter().map(|c| c.0).sum(),
        leased: counts.iter().map(|c| c.1).sum(),
    })
}

/// Adds `t` to `acc`, exactly.
fn add_total(acc: &mut EarningsTotal, t: &EarningsTotal) -> Result<(), Error> {
    acc.entries = acc
        .entries
        .checked_add(t.entries)
        .ok_or(Error::Overflow("earnings entry count"))?;
    acc.gross = acc.gross.checked_add(t.gross)?;
    acc.fee = acc.fee.checked_add(t.fee)?;
    acc.net = acc.net.checked_add(t.net)?;
    Ok(())
}

/// Each node's all-time ledger sums, and their exact total.
async fn wallet_earnings(
    store: &DynJobStore,
    nodes: &[NodeRecord],
) -> Result<(EarningsTotal, Vec<(NodeId, EarningsTotal)>), Error> {
    let per_node = nodes.iter().map(|n| async move {
        let t = store.earnings_total(&n.id, None).await?;
        Ok((n.id.clone(), t))
    });
    let per_node = try_join_all(per_node.collect()).await?;
    let mut total = EarningsTotal::default();
    for (_, t) in &per_node {
        add_total(&mut total, t)?;
    }
    Ok((total, per_node))
}

/// The GPUs and latest samples of `nodes`.
async fn wallet_gpus(store: &DynJobStore, nodes: Vec<NodeRecord>) -> Result<WalletGpus, Error> {
    let samples = try_join_all(
        nodes
            .iter()
            .map(|n| store.latest_gpu_samples(&n.id))
            .collect(),
    );
    let collectors = try_join_all(nodes.iter().map(|n| store.gpu_collector(&n.id)).collect());
    let (samples, collectors) = tokio::try_join!(samples, collectors)?;
    let nodes: Vec<NodeGpus> = nodes
        .into_iter()
        .zip(samples)
        .zip(collectors)
        .map(|((n, latest_samples), gpu_collector)| NodeGpus {
            attestation: n.hardware.attestation_summary(),
            node_id: n.id,
            status: n.status,
            gpus: n.hardware.gpus,
            host: n.hardware.host,
            gpu_unavailable_reason: n.hardware.gpu_unavailable_reason,
            latest_samples,
            gpu_collector,
        })
        .collect();
    Ok(WalletGpus {
        total_gpus: nodes.iter().map(|n| n.gpus.len() as u64).sum(),
        nodes,
    })
}

/// Earnings per UTC day in `window`, summed over `nodes`.
async fn wallet_days(
    store: &DynJobStore,
    nodes: &[NodeRecord],
    window: TimeWindow,
) -> Result<DailySeries, Error> {
    let per_node = try_join_all(
        nodes
            .iter()
            .map(|n| store.earnings_by_day(&n.id, window))
            .collect(),
    )
    .await?;
    let mut by_day: BTreeMap<chrono::NaiveDate, EarningsTotal> = BTreeMap::new();
    for day in per_node.iter().flatten() {
        add_total(by_day.entry(day.day).or_default(), &day.total)?;
    }
    Ok(DailySeries {
        days: by_day
            .into_iter()
            .map(|(day, total)| DailyEarningsView {
                day,
                total: total.into(),
            })
            .collect(),
    })
}

/// Status changes of `nodes` in `window`, newest first.
async fn wallet_status_changes(
    store: &DynJobStore,
    nodes: &[NodeRecord],
    window: TimeWindow,
) -> Result<StatusChanges, Error> {
    let per_node =
        try_join_all(nodes.iter().map(|n| store.status_history(&n.id)).collect()).await?;
    let mut changes: Vec<StatusChange> = per_node
        .into_iter()
        .flatten()
        .filter(|c| window.contains(c.at))
        .collect();
    changes.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.node_id.cmp(&b.node_id)));
    let total = changes.len() as u64;
    changes.truncate(MAX_STATUS_CHANGES);
    Ok(StatusChanges {
        total,
        items: changes,
    })
}

/// Jobs counted by status (one count query per status, concurrently).
async fn job_counts(store: &DynJobStore) -> Result<JobCounts, Error> {
    let counts = try_join_all(
        JobStatus::ALL
            .iter()
            .map(|s| async move { Ok((*s, count_jobs(store, *s, None).await?)) })
            .collect(),
    )
    .await?;
    Ok(JobCounts::of(&counts))
}

/// Nodes counted by status (one count query per status, concurrently).
async fn node_counts(store: &DynJobStore) -> Result<WorkerCounts, Error> {
    let counts = try_join_all(
        NodeStatus::ALL
            .iter()
            .map(|s| async move {
                let filter = NodeFilter::status(*s);
                Ok((*s, store.count_nodes(&filter).await?))
            })
            .collect(),
    )
    .await?;
    let mut by_status = zero_counts(NodeStatus::ALL.iter().map(NodeStatus::as_str));
    for (s, n) in &counts {
        by_status.insert(s.as_str().to_string(), *n);
    }
    Ok(WorkerCounts {
        total: by_status.values().sum(),
        by_status,
        by_wallet_status: None,
    })
}

/// The 24-hour window ending at `now`.
fn last_day(now: Timestamp) -> TimeWindow {
    bitsage_core::service::fleet::window_ending(now, chrono::TimeDelta::days(1))
}

/// One network-view row: the node plus its last heartbeat and 24-hour uptime.
async fn network_worker(
    store: &DynJobStore,
    node: NodeRecord,
    now: Timestamp,
) -> Result<NetworkWorker, Error> {
    let (last_seen, uptime) = tokio::try_join!(
        store.last_seen(&node.id),
        store.uptime(&node, last_day(now)),
    )?;
    let mut gpu_models: Vec<String> = Vec::new();
    for g in &node.hardware.gpus {
        if !gpu_models.contains(&g.name) {
            gpu_models.push(g.name.clone());
        }
    }
    Ok(NetworkWorker {
        gpu_count: node.hardware.gpus.len() as u64,
        gpu_models,
        node_id: node.id,
        status: node.status,
        wallet: node.wallet,
        registered_at: node.registered_at,
        last_seen,
        uptime_24h: uptime.ratio,
    })
}

async fn network_page(
    store: &DynJobStore,
    filter: NodeFilter,
    page: PageRequest,
    now: Timestamp,
) -> Result<Page<NetworkWorker>, Error> {
    let nodes = store.list_nodes(&filter, page).await?;
    let items = try_join_all(
        nodes
            .items
            .into_iter()
            .map(|n| network_worker(store, n, now))
            .collect(),
    )
    .await?;
    Ok(Page {
        items,
        total: nodes.total,
        next_offset: nodes.next_offset,
    })
}

/// The newest `limit` jobs, newest first: the store lists oldest first, so the page is the
/// list's tail.
async fn recent_jobs(store: &DynJobStore, limit: u32) -> Result<RecentJobsList, Error> {
    let all = JobFilter::default();
    let total = store.count_jobs(&all).await?;
    let offset = total.saturating_sub(u64::from(limit));
    let page = store.list_jobs(&all, PageRequest { limit, offset }).await?;
    let mut items: Vec<JobView> = page.items.into_iter().map(JobView::from).collect();
    items.reverse();
    Ok(RecentJobsList {
        total: page.total,
        items,
    })
}

// ---------------------------------------------------------------- handlers

/// Three store groups that all need the wallet's node list: unavailable together when it is.
fn split_unavailable<A, B, C>(reason: String) -> (Section<A>, Section<B>, Section<C>) {
    (
        Section::unavailable(reason.clone()),
        Section::unavailable(reason.clone()),
        Section::unavailable(reason),
    )
}

/// `GET /api/validator/status`.
#[utoipa::path(
    get,
    path = "/api/validator/status",
    tag = "dashboard",
    operation_id = "validatorStatus",
    summary = "A wallet's workers, jobs, ledger earnings, stake, rewards and reputation",
    description = "Each field group is `status: ok` with its fields, or `status: unavailable` \
        with a reason (no chain configured, an error, or no answer within the dashboard budget).",
    params((
        "X-Wallet-Address" = WalletAddress, Header, description = "The validator's Starknet wallet \
            address (admins: any; operators: their organisation's)."
    )),
    responses(
        (status = 200, description = "The wallet's status.", body = ValidatorStatus),
        (status = 400, description = "`X-Wallet-Address` missing or not a Starknet address \
            (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "The wallet is not the caller's organisation's \
            (`not_found`).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn validator_status(
    State(state): State<AppState>,
    WalletHeader(wallet): WalletHeader,
) -> axum::response::Response {
    let cache = state.status_cache.clone();
    let ttl = state.config.status_cache_ttl.min(MAX_STATUS_CACHE_TTL);
    let (body, at) = cache
        .get_or_compute(wallet, ttl, || async {
            let status = compute_validator_status(&state, wallet).await;
            // A store group that did not answer is not kept: the next request asks again.
            let keep = matches!(status.workers, Section::Ok(_))
                && matches!(status.jobs, Section::Ok(_))
                && matches!(status.earnings, Section::Ok(_));
            (
                serde_json::to_vec(&status).map(axum::body::Bytes::from),
                keep,
            )
        })
        .await;
    match body {
        Ok(bytes) => {
            let age = at.elapsed().as_secs();
            (
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "application/json".to_string(),
                    ),
                    (axum::http::header::AGE, age.to_string()),
                    (
                        axum::http::header::CACHE_CONTROL,
                        format!("private, max-age={}", ttl.as_secs().saturating_sub(age)),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => {
            ApiError::from(bitsage_core::Error::backend("json", e.to_string())).into_response()
        }
    }
}

/// The longest a validator status answer is reused ([`HttpConfig::status_cache_ttl`] is capped
/// at this).
pub const MAX_STATUS_CACHE_TTL: Duration = Duration::from_secs(15);

/// Most wallets whose status answer is kept at once; beyond it expired answers are dropped,
/// and if none is expired the cache starts over (a bound on memory an outsider cannot grow
/// beyond: only callers allowed to read a wallet's status fill it).
pub const MAX_STATUS_CACHE_WALLETS: usize = 10_000;

type StatusSlot = Arc<(
    std::time::Instant,
    tokio::sync::OnceCell<(Result<axum::body::Bytes, Arc<serde_json::Error>>, bool)>,
)>;

/// `GET /api/validator/status` answers per wallet, reused for [`HttpConfig::status_cache_ttl`]
/// (default 5 s, at most 15 s), with their age in the `Age` header and `generated_at` in the
/// body: the answer's cost no longer depends on how often it is asked. Concurrent requests
/// for a wallet whose answer is missing or expired share one computation. A cache of a read,
/// per process (nothing to agree on between coordinators).
#[derive(Debug, Clone, Default)]
pub struct StatusCache {
    slots: Arc<std::sync::Mutex<std::collections::HashMap<WalletAddress, StatusSlot>>>,
}

impl StatusCache {
    /// The answer for `wallet` and when it was computed: reused when younger than `ttl`,
    /// else computed by `compute` (which also says whether the answer may be kept).
    async fn get_or_compute<F, Fut>(
        &self,
        wallet: WalletAddress,
        ttl: Duration,
        compute: F,
    ) -> (
        Result<axum::body::Bytes, Arc<serde_json::Error>>,
        std::time::Instant,
    )
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (Result<axum::body::Bytes, serde_json::Error>, bool)>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(&wallet) {
                Some(slot) if slot.0.elapsed() < ttl => Arc::clone(slot),
                _ => {
                    if slots.len() >= MAX_STATUS_CACHE_WALLETS {
                        slots.retain(|_, s| s.0.elapsed() < ttl);
                        if slots.len() >= MAX_STATUS_CACHE_WALLETS {
                            slots.clear();
                        }
                    }
                    let slot: StatusSlot =
                        Arc::new((std::time::Instant::now(), tokio::sync::OnceCell::new()));
                    slots.insert(wallet, Arc::clone(&slot));
                    slot
                }
            }
        };
        let (body, keep) = slot
            .1
            .get_or_init(|| async {
                let (body, keep) = compute().await;
                (body.map_err(Arc::new), keep)
            })
            .await
            .clone();
        if !keep {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.get(&wallet).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.remove(&wallet);
            }
        }
        (body, slot.0)
    }
}

/// The validator status of `wallet`, read now.
pub(crate) async fn compute_validator_status(
    state: &AppState,
    wallet: WalletAddress,
) -> ValidatorStatus {
    let budget = Budget::start(&state.config);
    let store = &state.store;
    let store_groups = async {
        match fetch(Source::Store, &budget, wallet_nodes(store, wallet)).await {
            Section::Ok(nodes) => {
                let (jobs, earnings) = tokio::join!(
                    fetch(Source::Store, &budget, wallet_jobs(store, &nodes)),
                    fetch(Source::Store, &budget, wallet_earnings(store, &nodes)),
                );
                (
                    Section::Ok(WorkerCounts::of(&nodes)),
                    jobs,
                    earnings.map(|(total, _)| EarningsTotalView::from(total)),
                )
            }
            Section::Unavailable { reason } => split_unavailable(reason),
        }
    };
    let chain = state.chain.as_ref();
    let ((workers, jobs, earnings), stake, rewards, reputation) = tokio::join!(
        store_groups,
        chain_read(&budget, chain.map(|c| c.stake(&wallet)), StakeView::from),
        chain_read(
            &budget,
            chain.map(|c| c.rewards(&wallet)),
            RewardsView::from
        ),
        chain_read(&budget, chain.map(|c| c.reputation(&wallet)), |r| r),
    );
    ValidatorStatus {
        wallet,
        generated_at: bitsage_core::time::now(),
        workers,
        jobs,
        earnings,
        stake,
        rewards,
        reputation,
    }
}

/// `GET /api/validator/gpus`.
#[utoipa::path(
    get,
    path = "/api/validator/gpus",
    tag = "dashboard",
    operation_id = "validatorGpus",
    summary = "The GPUs of a wallet's nodes (hardware reports and latest samples)",
    params((
        "X-Wallet-Address" = WalletAddress, Header, description = "The validator's Starknet wallet \
            address (admins: any; operators: their organisation's)."
    )),
    responses(
        (status = 200, description = "The wallet's GPUs.", body = ValidatorGpus),
        (status = 400, description = "`X-Wallet-Address` missing or not a Starknet address \
            (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "The wallet is not the caller's organisation's \
            (`not_found`).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn validator_gpus(
    State(state): State<AppState>,
    WalletHeader(wallet): WalletHeader,
) -> Json<ValidatorGpus> {
    let budget = Budget::start(&state.config);
    let store = &state.store;
    let workers = fetch(Source::Store, &budget, async {
        let nodes = wallet_nodes(store, wallet).await?;
        wallet_gpus(store, nodes).await
    })
    .await;
    Json(ValidatorGpus {
        wallet,
        generated_at: bitsage_core::time::now(),
        workers,
    })
}

/// `GET /api/validator/rewards`.
#[utoipa::path(
    get,
    path = "/api/validator/rewards",
    tag = "dashboard",
    operation_id = "validatorRewards",
    summary = "Ledger earnings of a wallet's nodes and its on-chain rewards",
    params((
        "X-Wallet-Address" = WalletAddress, Header, description = "The validator's Starknet wallet \
            address (admins: any; operators: their organisation's)."
    )),
    responses(
        (status = 200, description = "The wallet's rewards.", body = ValidatorRewards),
        (status = 400, description = "`X-Wallet-Address` missing or not a Starknet address \
            (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "The wallet is not the caller's organisation's \
            (`not_found`).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn validator_rewards(
    State(state): State<AppState>,
    WalletHeader(wallet): WalletHeader,
) -> Json<ValidatorRewards> {
    let budget = Budget::start(&state.config);
    let store = &state.store;
    let ledger = fetch(Source::Store, &budget, async {
        let nodes = wallet_nodes(store, wallet).await?;
        let (total, per_node) = wallet_earnings(store, &nodes).await?;
        Ok(LedgerEarnings {
            total: total.into(),
            nodes: per_node
                .into_iter()
                .map(|(node_id, t)| NodeEarnings {
                    node_id,
                    total: t.into(),
                })
                .collect(),
        })
    });
    let chain = state.chain.as_ref();
    let (earnings, rewards) = tokio::join!(
        ledger,
        chain_read(
            &budget,
            chain.map(|c| c.rewards(&wallet)),
            RewardsView::from
        ),
    );
    Json(ValidatorRewards {
        wallet,
        generated_at: bitsage_core::time::now(),
        earnings,
        rewards,
    })
}

/// The history window: `[from, to)`, defaulting to the last [`DEFAULT_HISTORY_DAYS`] days and
/// at most [`MAX_HISTORY_DAYS`] long.
fn history_window(q: &HistoryQuery, now: Timestamp) -> ApiResult<TimeWindow> {
    let to = q.to.unwrap_or(now);
    let from = match q.from {
        Some(from) => from,
        None => to
            .checked_sub_signed(chrono::TimeDelta::days(DEFAULT_HISTORY_DAYS))
            .ok_or_else(|| ApiError::invalid("`to` is too early"))?,
    };
    let window = TimeWindow::new(from, to)?;
    if to - from > chrono::TimeDelta::days(MAX_HISTORY_DAYS) {
        return Err(ApiError::invalid(format!(
            "the window may span at most {MAX_HISTORY_DAYS} days"
        )));
    }
    Ok(window)
}

/// `GET /api/validator/history?from=&to=`.
#[utoipa::path(
    get,
    path = "/api/validator/history",
    tag = "dashboard",
    operation_id = "validatorHistory",
    summary = "Earnings per UTC day and status changes of a wallet's nodes",
    description = "Default window: the last 30 days; at most 366 days.",
    params(
        ("X-Wallet-Address" = WalletAddress, Header, description = "The validator's Starknet wallet \
            address (admins: any; operators: their organisation's)."),
        HistoryQuery,
    ),
    responses(
        (status = 200, description = "The wallet's history.", body = ValidatorHistory),
        (status = 400, description = "`X-Wallet-Address` missing or not a Starknet address, or \
            a bad window (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "The wallet is not the caller's organisation's \
            (`not_found`).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn validator_history(
    State(state): State<AppState>,
    WalletHeader(wallet): WalletHeader,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<ValidatorHistory>> {
    let window = history_window(&q, bitsage_core::time::now())?;
    let budget = Budget::start(&state.config);
    let store = &state.store;
    let (earnings, status_changes) =
        match fetch(Source::Store, &budget, wallet_nodes(store, wallet)).await {
            Section::Ok(nodes) => {
                tokio::join!(
                    fetch(Source::Store, &budget, wallet_days(store, &nodes, window)),
                    fetch(
                        Source::Store,
                        &budget,
                        wallet_status_changes(store, &nodes, window)
                    ),
                )
            }
            Section::Unavailable { reason } => (
                Section::unavailable(reason.clone()),
                Section::unavailable(reason),
            ),
        };
    Ok(Json(ValidatorHistory {
        wallet,
        from: window.from,
        to: window.to,
        generated_at: bitsage_core::time::now(),
        earnings,
        status_changes,
    }))
}

/// `GET /api/network/workers?status=&limit=&offset=`.
#[utoipa::path(
    get,
    path = "/api/network/workers",
    tag = "network",
    operation_id = "networkWorkers",
    summary = "Nodes with status, wallet, last heartbeat, GPUs and 24-hour uptime",
    params(NetworkWorkersQuery),
    responses(
        (status = 200, description = "A page of workers.", body = NetworkWorkers),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn network_workers(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<NetworkWorkersQuery>,
) -> ApiResult<Json<NetworkWorkers>> {
    let limit = q.limit.unwrap_or(DEFAULT_NETWORK_WORKERS);
    if !(1..=MAX_NETWORK_WORKERS).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be 1 ..= {MAX_NETWORK_WORKERS}"
        )));
    }
    let page = PageRequest::new(limit, q.offset.unwrap_or(0))?;
    let filter = NodeFilter {
        status: q.status,
        wallet: None,
        ..Default::default()
    };
    let budget = Budget::start(&state.config);
    let now = bitsage_core::time::now();
    let workers = fetch(
        Source::Store,
        &budget,
        network_page(&state.store, filter, page, now),
    )
    .await;
    Ok(Json(NetworkWorkers {
        generated_at: bitsage_core::time::now(),
        workers,
    }))
}

/// `GET /api/worker/uptime?node=&window_secs=`: 404 for an unknown node; 503 when the store
/// does not answer within the budget.
#[utoipa::path(
    get,
    path = "/api/worker/uptime",
    tag = "nodes",
    operation_id = "workerUptime",
    summary = "A node's uptime from its heartbeats over a window ending now",
    params(UptimeQuery),
    responses(
        (status = 200, description = "The uptime.", body = WorkerUptime),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn worker_uptime(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    ApiQuery(q): ApiQuery<UptimeQuery>,
) -> ApiResult<Json<WorkerUptime>> {
    let node_id = service::parse_node_id(&q.node)?;
    crate::auth::ensure_node_visible(&state, &caller, &node_id).await?;
    let window_secs = q.window_secs.unwrap_or(DEFAULT_UPTIME_WINDOW_SECS);
    if !(1..=MAX_UPTIME_WINDOW_SECS).contains(&window_secs) {
        return Err(ApiError::invalid(format!(
            "window_secs must be 1 ..= {MAX_UPTIME_WINDOW_SECS}"
        )));
    }
    let now = bitsage_core::time::now();
    // Within range: at most 30 days.
    let window = TimeWindow {
        from: now - chrono::TimeDelta::seconds(window_secs as i64),
        to: now,
    };
    let budget = Budget::start(&state.config);
    let store = &state.store;
    let interval = state.policy().heartbeat_interval;
    let read = async {
        let Some(node) = store.get_node(&node_id).await? else {
            return Ok(None);
        };
        let (uptime, last_seen) =
            tokio::try_join!(store.uptime(&node, window), store.last_seen(&node_id),)?;
        Ok::<_, Error>(Some((uptime, last_seen)))
    };
    let (uptime, last_seen) = match tokio::time::timeout_at(budget.deadline, read).await {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => return Err(ApiError::not_found(format!("node {node_id} not found"))),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                budget.timeout_reason(Source::Store),
            ))
        }
    };
    Ok(Json(WorkerUptime {
        node_id,
        window_secs,
        uptime,
        heartbeat_interval_secs: interval.as_secs(),
        last_seen,
    }))
}

/// `GET /api/jobs/analytics`.
#[utoipa::path(
    get,
    path = "/api/jobs/analytics",
    tag = "dashboard",
    operation_id = "jobAnalytics",
    summary = "Jobs per status, total and success rate",
    responses(
        (status = 200, description = "Job analytics.", body = JobAnalytics),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security((), ("bearer" = []), ("cookie" = []))
)]
pub async fn jobs_analytics(State(state): State<AppState>) -> Json<JobAnalytics> {
    let budget = Budget::start(&state.config);
    let jobs = fetch(Source::Store, &budget, job_counts(&state.store)).await;
    Json(JobAnalytics {
        generated_at: bitsage_core::time::now(),
        jobs,
    })
}

/// `GET /api/jobs/recent?limit=`.
#[utoipa::path(
    get,
    path = "/api/jobs/recent",
    tag = "dashboard",
    operation_id = "recentJobs",
    summary = "The newest jobs, newest first",
    params(RecentJobsQuery),
    responses(
        (status = 200, description = "Recent jobs.", body = RecentJobs),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn jobs_recent(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RecentJobsQuery>,
) -> ApiResult<Json<RecentJobs>> {
    let limit = q.limit.unwrap_or(DEFAULT_RECENT_JOBS);
    if !(1..=MAX_RECENT_JOBS).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be 1 ..= {MAX_RECENT_JOBS}"
        )));
    }
    let budget = Budget::start(&state.config);
    let jobs = fetch(Source::Store, &budget, recent_jobs(&state.store, limit)).await;
    Ok(Json(RecentJobs {
        generated_at: bitsage_core::time::now(),
        jobs,
    }))
}

/// `GET /api/summary`.
#[utoipa::path(
    get,
    path = "/api/summary",
    tag = "dashboard",
    operation_id = "summary",
    summary = "The dashboard's front page: workers, jobs, chain totals, store health, settlement",
    responses(
        (status = 200, description = "The summary.", body = Summary),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security((), ("bearer" = []), ("cookie" = []))
)]
pub async fn summary(State(state): State<AppState>) -> Json<Summary> {
    Json(summary_of(&state).await)
}

/// The summary (also the console's Overview), each group within the dashboard budget.
pub async fn summary_of(state: &AppState) -> Summary {
    let budget = Budget::start(&state.config);
    let store = &state.store;
    let network = fetch(Source::Store, &budget, async {
        let (workers, jobs) = tokio::try_join!(node_counts(store), job_counts(store))?;
        Ok(NetworkSummary {
            active_workers: workers
                .by_status
                .get(NodeStatus::Active.as_str())
                .copied()
                .unwrap_or(0),
            total_workers: workers.total,
            workers_by_status: workers.by_status,
            jobs,
        })
    });
    let health = async {
        match tokio::time::timeout_at(budget.deadline, service::readiness(state)).await {
            Ok(h) => h.components.store,
            Err(_) => ComponentHealth {
                status: HealthStatus::Unavailable,
                backend: store.backend().to_string(),
                latency_ms: None,
                error: Some(budget.timeout_reason(Source::Store)),
            },
        }
    };
    let totals = chain_read(
        &budget,
        state.chain.as_ref().map(|c| c.totals()),
        NetworkTotalsView::from,
    );
    let settlement = fetch(Source::Store, &budget, async {
        let b = store.settlement_backlog().await?;
        let now = bitsage_core::time::now();
        Ok(SettlementSummary {
            pending_receipts: b.receipts,
            pending_slashes: b.slashes,
            oldest_pending_at: b.oldest,
            oldest_pending_age_secs: b.oldest.map(|at| (now - at).num_seconds().max(0)),
        })
    });
    let operations = fetch(
        Source::Store,
        &budget,
        bitsage_core::service::fleet::summary(&**store, bitsage_core::time::now()),
    );
    let (network, chain, store_health, settlement, operations) =
        tokio::join!(network, totals, health, settlement, operations);
    Summary {
        generated_at: bitsage_core::time::now(),
        network,
        chain,
        store: store_health,
        settlement,
        operations,
    }
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    operation_id = "openapi",
    summary = "This document",
    description = "The OpenAPI 3.1 document of the whole API, generated from the types the \
        handlers send and receive.",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", body = Object),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document())
}

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/validator/status", get(validator_status))
        .route("/api/validator/gpus", get(validator_gpus))
        .route("/api/validator/rewards", get(validator_rewards))
        .route("/api/validator/history", get(validator_history))
        .route("/api/network/workers", get(network_workers))
        .route("/api/worker/uptime", get(worker_uptime))
        .route("/api/jobs/analytics", get(jobs_analytics))
        .route("/api/jobs/recent", get(jobs_recent))
        .route("/api/summary", get(summary))
        .route("/openapi.json", get(openapi_json))
}
