//! The ports: what the coordinator and agent need from the outside world. Implementations live
//! in the leaf crates (`bitsage-gpu`, `bitsage-chain`, `bitsage-prover`, `bitsage-store`); each
//! must pass its conformance suite in `crate::conformance` (feature `conformance`).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::address::WalletAddress;
use crate::attestation::{HostAttestation, ATTESTATION_NONCE_LEN};
use crate::chain::{
    ChainEvent, IndexerCursor, NetworkTotals, Observed, ReputationInfo, RewardsInfo, StakeInfo,
};
use crate::crypto::Hash32;
use crate::event::{NewEvent, StoredEvent};
use crate::gpu::{GpuInventory, GpuSample, HostInfo, ReportedCollector};
use crate::ids::{JobId, NodeId, ReceiptId};
use crate::job::{
    ExpirySweep, JobFilter, JobRecord, JobResult, Lease, LeaseRef, NewJob, VerifiedCompletion,
};
use crate::ledger::{DailyEarnings, EarningEntry, EarningsTotal};
use crate::lifecycle::Transition;
use crate::node::{Heartbeat, NewNode, NodeFilter, NodeRecord, StatusChange, Uptime};
use crate::page::{Page, PageRequest};
use crate::proof::{ProofEnvelope, VerifiedProof};
use crate::receipt::{Receipt, ReceiptFilter};
use crate::time::{TimeWindow, Timestamp};
use crate::{JobSpec, Result};

/// Reads GPU (and host) hardware.
///
/// # Contract
/// - Reports only what the hardware says: a metric a device does not support is `None`, never
///   zero or a guess; ratios lie in `0..=1`.
/// - When the source cannot read at all (library missing, no permission), `inventory` and
///   `sample` return [`crate::Error::Unavailable`] with the reason; they never return made-up
///   devices.
/// - Every sample's `uuid` names a device of `inventory`; a lost device is reported with
///   `DeviceState::Lost`, not dropped silently.
/// - Calls are cheap enough for a 1 Hz loop and never block the async runtime for long.
/// - `attest` never guesses: a device gets a report only when its hardware produced one for
///   this nonce; otherwise it (or the whole host) is `not_available` with the reason. The
///   default answers `not_available` for sources that cannot attest.
#[async_trait]
pub trait GpuSource: Send + Sync + Debug {
    /// The source's name (`"nvml"`, `"fixture"`, ...).
    fn name(&self) -> &'static str;
    /// The devices and driver versions.
    async fn inventory(&self) -> Result<GpuInventory>;
    /// One reading per device.
    async fn sample(&self) -> Result<Vec<GpuSample>>;
    /// The host (CPU, memory); `Unavailable` where it cannot be read.
    async fn host(&self) -> Result<HostInfo>;
    /// Confidential-compute attestation of every device over a coordinator-chosen `nonce`.
    async fn attest(&self, nonce: [u8; ATTESTATION_NONCE_LEN]) -> HostAttestation {
        let _ = nonce;
        HostAttestation::unavailable(format_args!("the {} source cannot attest", self.name()))
    }
}

/// Reads stake, rewards and reputation from the chain.
///
/// # Contract
/// - Every answer carries the block it was read at and when it was read ([`Observed`]); a
///   cached answer keeps its original read time, so its age is honest.
/// - A wallet with no stake or reputation gets the contract's zero/default view, not an error.
/// - When the chain cannot be reached, calls return [`crate::Error::Unavailable`]; provider
///   error text stays in logs.
#[async_trait]
pub trait ChainSource: Send + Sync + Debug {
    /// The source's name.
    fn name(&self) -> &'static str;
    /// A wallet's stake.
    async fn stake(&self, wallet: &WalletAddress) -> Result<Observed<StakeInfo>>;
    /// A wallet's rewards.
    async fn rewards(&self, wallet: &WalletAddress) -> Result<Observed<RewardsInfo>>;
    /// A wallet's reputation.
    async fn reputation(&self, wallet: &WalletAddress) -> Result<Observed<ReputationInfo>>;
    /// A wallet's SAGE balance.
    async fn token_balance(&self, wallet: &WalletAddress) -> Result<Observed<crate::TokenAmount>>;
    /// Network totals.
    async fn totals(&self) -> Result<Observed<NetworkTotals>>;
    /// The minimum free stake of `tier` (`ProverStaking.get_min_stake`).
    async fn min_stake(&self, tier: crate::gpu::GpuTier) -> Result<Observed<crate::TokenAmount>>;
    /// Whether `wallet` may work (`ProverStaking.is_eligible`: an active stake whose free part
    /// meets the minimum of the tier staked for).
    async fn is_eligible(&self, wallet: &WalletAddress) -> Result<Observed<bool>>;
    /// The staking contract's reward rate, basis points a year (`ProverStaking.apy_bps`).
    async fn apy_bps(&self) -> Result<Observed<u64>>;
}

/// Proves and verifies jobs.
///
/// # Contract
/// - `prove` is deterministic: the same spec gives the same proof bytes and hash.
/// - `verify` rebuilds the statement from the `JobSpec` it is given, never from the envelope's
///   word; it rejects an envelope whose job differs from the spec, whose configuration differs
///   from the verifier's own policy (≥ [`crate::proof::MIN_SECURITY_BITS`]), or whose bytes were
///   altered — with [`crate::Error::ProofRejected`], never a panic.
#[async_trait]
pub trait Prover: Send + Sync + Debug {
    /// The prover's name.
    fn name(&self) -> &'static str;
    /// Proves a job.
    async fn prove(&self, spec: &JobSpec) -> Result<ProofEnvelope>;
    /// Verifies a proof of `spec`.
    async fn verify(&self, spec: &JobSpec, envelope: &ProofEnvelope) -> Result<VerifiedProof>;
}

/// Most raw GPU samples one [`TelemetryStore::apply_retention`] call rolls up.
pub const RETENTION_BATCH: u32 = 10_000;

/// Whether an idempotent insert wrote a new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// It was new and is now stored.
    New,
    /// An identical record was already stored; nothing changed.
    AlreadyPresent,
}

/// The coordinator's state, as one bundle of the focused store ports — [`NodeStore`],
/// [`TelemetryStore`], [`JobQueue`], [`ReceiptLedger`], [`ChainEventStore`] — plus what spans
/// them (settling a verified completion). Consumers that need one part ask for that port.
///
/// # Contract (for every method of the bundle and its ports)
/// - **Durability**: when a method returns `Ok`, its write is committed (for a disk store, on
///   disk); a crash after that loses nothing acknowledged.
/// - **Atomicity**: every method is one transaction; a failed call changes nothing.
/// - **Exact money**: amounts are stored and summed exactly as u256 (no float, no i64);
///   a sum that would exceed u256 is [`crate::Error::Overflow`].
/// - **Nodes**: `create_node` fails with `AlreadyExists` for a known id. `apply_transition`
///   succeeds only when the node's current status equals `transition.from` (otherwise
///   `Conflict`) and records the change with its reason in the history.
/// - **Leases**: `lease_job` hands each queued job to at most one node at a time, even under
///   concurrent callers, oldest submission first; it increments `attempts`. Only the current
///   lease (job, lease id, node) may `complete_job`/`fail_job` it, and only before it expires
///   (`Conflict` otherwise). `sweep_expired_leases` puts expired leases back in the queue, or
///   fails the job when `attempts == max_attempts`; `fail_job` does the same.
/// - **Idempotency**: `insert_receipt` and `credit_earning` return `AlreadyPresent` for an
///   identical record with a known id and `AlreadyExists` for a different one;
///   `append_chain_events` ignores events already stored under the same
///   (block hash, tx hash, event index).
/// - **Lists** are in a stable order (nodes by registration, jobs by submission, receipts by
///   completion, oldest first; ties by id) and paginate with [`PageRequest`].
/// - Absent records are `Ok(None)`; `NotFound` is for writes that name a missing record.
#[async_trait]
pub trait JobStore:
    NodeStore
    + TelemetryStore
    + JobQueue
    + ReceiptLedger
    + ChainEventStore
    + PayerLedger
    + crate::settlement::SettlementLedger
{
    /// The backend's name (`"memory"`, `"sqlite"`, `"postgres"`).
    fn backend(&self) -> &'static str;
    /// Settles a verified completion in **one transaction**: completes the job (as
    /// `complete_job`; skipped when this node already completed it with the same proof hash,
    /// so a retry after a crash fills in only what is missing), stores the receipt (as
    /// `insert_receipt`) and the ledger credit (as `credit_earning`), with their events. Any
    /// failure (a lost lease, a different receipt or entry under the same id) changes nothing.
    async fn settle_completion(
        &self,
        completion: &VerifiedCompletion,
        now: Timestamp,
    ) -> Result<JobRecord>;
}

/// Registered nodes and their lifecycle.
///
/// # Contract
/// - `create_node` fails with `AlreadyExists` for a known id. `apply_transition` succeeds only
///   when the node's current status equals `transition.from` (otherwise `Conflict`) and records
///   the change with its reason in the history.
/// - Lists are in registration order (ties by id) and paginate with [`PageRequest`]; absent
///   records are `Ok(None)`.
#[async_trait]
pub trait NodeStore: Send + Sync + Debug {
    /// Registers a node in status `pending`.
    async fn create_node(&self, node: &NewNode) -> Result<NodeRecord>;
    /// One node.
    async fn get_node(&self, id: &NodeId) -> Result<Option<NodeRecord>>;
    /// Nodes matching `filter`.
    async fn list_nodes(&self, filter: &NodeFilter, page: PageRequest) -> Result<Page<NodeRecord>>;
    /// The nodes in `status` silent since before `before` — whose latest heartbeat (before
    /// their first one: their registration) is older — each with that time, in registration
    /// order. What the lifecycle sweep reads: its cost follows the silent nodes, not the fleet.
    async fn silent_nodes(
        &self,
        status: crate::NodeStatus,
        before: Timestamp,
    ) -> Result<Vec<(NodeRecord, Timestamp)>>;
    /// How many nodes match `filter`: the `total` of [`NodeStore::list_nodes`] (one row read).
    async fn count_nodes(&self, filter: &NodeFilter) -> Result<u64> {
        let one = PageRequest {
            limit: 1,
            offset: 0,
        };
        Ok(self.list_nodes(filter, one).await?.total)
    }
    /// Moves a node along a lifecycle transition, recording it.
    async fn apply_transition(
        &self,
        id: &NodeId,
        transition: &Transition,
        at: Timestamp,
    ) -> Result<NodeRecord>;
    /// A node's status changes, oldest first.
    async fn status_history(&self, id: &NodeId) -> Result<Vec<StatusChange>>;
    /// Records that a node's wallet was proven at `at` (a node registered unverified proving
    /// it later). `NotFound` for an unknown node.
    async fn set_wallet_proven(&self, id: &NodeId, at: Timestamp) -> Result<NodeRecord>;
    /// Replaces a node's profile (region, runtime, labels, energy tag); `NotFound` for an
    /// unknown node.
    async fn set_node_profile(
        &self,
        id: &NodeId,
        profile: &crate::node::NodeProfile,
    ) -> Result<NodeRecord>;
    /// Stores a node's newly computed reputation (and its R for filtering); `NotFound` for
    /// an unknown node.
    async fn set_reputation(
        &self,
        id: &NodeId,
        reputation: &crate::reputation::Reputation,
    ) -> Result<()>;
    /// Starts (`Some`) or ends (`None`, at `now`) a node's drain, recording its maintenance
    /// window (from `since` to `until`, cut at `now` when ended early); `NotFound` for an
    /// unknown node. Ending a drain that is not set changes nothing.
    async fn set_drain(
        &self,
        id: &NodeId,
        drain: Option<&crate::node::Drain>,
        now: Timestamp,
    ) -> Result<NodeRecord>;
    /// A node's maintenance windows overlapping `window`, oldest first.
    async fn maintenance_windows(&self, id: &NodeId, window: TimeWindow)
        -> Result<Vec<TimeWindow>>;
    /// Sets the status reason of a node that is in `status`, without a move (e.g. why a
    /// pending node waits). `Ok(false)`: unknown node, another status, or the same reason
    /// already — nothing written.
    async fn set_status_reason(
        &self,
        id: &NodeId,
        status: crate::NodeStatus,
        reason: &str,
    ) -> Result<bool>;
}

/// What nodes report while they run: heartbeats (with their GPU samples and collector status)
/// and GPU samples, with retention.
///
/// # Contract
/// - `append_heartbeat` refuses a sequence not above the node's last stored one (`Conflict`,
///   nothing stored) and stores the heartbeat, its samples and its collector status in one
///   transaction, with the node's per-minute rollup (one more beat in the heartbeat's
///   [`crate::node::minute_of`]) and its latest heartbeat time (`last_seen`); it answers with
///   the node's status at that commit. Concurrent calls (many nodes at once, or one node's
///   heartbeats racing) keep every one of these rules exactly: each accepted sequence is
///   stored once, each refused one not at all, whatever the batching.
/// - `last_seen` and the rollup do not depend on raw heartbeats: they survive retention.
/// - `settle_completion` stores the job's [`crate::timing::JobTiming`] and the node's
///   `lease_completed` fact ([`crate::reputation::NodeFact`]) in its transaction, once;
///   `job_timings` filters by node, region and completion window.
/// - Windows are half-open and results oldest first.
#[async_trait]
pub trait TelemetryStore: Send + Sync + Debug {
    /// Stores a heartbeat (the node must exist) and returns the node's status as of that
    /// commit. A sequence not above the last stored one is a replay: `Conflict`, nothing
    /// stored. In the same transaction the heartbeat's `gpu_samples` are stored (as by
    /// `append_gpu_samples`) and its `gpu_collector` becomes the node's latest collector status
    /// (`None` clears it): all of it or none. Returns only once that is durable; an
    /// implementation may commit concurrent heartbeats together (group commit), each still
    /// checked and answered on its own.
    async fn append_heartbeat(&self, heartbeat: &Heartbeat) -> Result<crate::NodeStatus>;
    /// The GPU collector status of the node's latest accepted heartbeat, with that
    /// heartbeat's time; `None` when it carried none (or the node is unknown).
    async fn gpu_collector(&self, id: &NodeId) -> Result<Option<ReportedCollector>>;
    /// The time of a node's latest heartbeat.
    async fn last_seen(&self, id: &NodeId) -> Result<Option<Timestamp>>;
    /// Heartbeat times of a node in `window`, oldest first (raw heartbeats, kept for the
    /// retention window only).
    async fn heartbeat_times(&self, id: &NodeId, window: TimeWindow) -> Result<Vec<Timestamp>>;
    /// What the per-minute rollup holds for a node over `minutes`: minutes with a heartbeat
    /// and their heartbeat count (zero for an unknown node).
    async fn heartbeat_coverage(
        &self,
        id: &NodeId,
        minutes: crate::node::MinuteRange,
    ) -> Result<crate::node::MinuteCoverage>;
    /// Records something a node did that reputation counts, at `at`, with a detail.
    async fn record_node_fact(
        &self,
        id: &NodeId,
        fact: crate::reputation::NodeFact,
        at: Timestamp,
        detail: &str,
    ) -> Result<()>;
    /// How many of each fact a node has in `window` (facts it has none of are absent).
    async fn node_facts(
        &self,
        id: &NodeId,
        window: TimeWindow,
    ) -> Result<crate::reputation::FactCounts>;
    /// How many distinct nodes heartbeated in `minutes` (from the rollup).
    async fn nodes_heartbeating(&self, minutes: crate::node::MinuteRange) -> Result<u64>;
    /// Timings of completed jobs matching `filter`, newest first, at most `filter.limit`.
    async fn job_timings(
        &self,
        filter: &crate::timing::TimingFilter,
    ) -> Result<Vec<crate::timing::JobTiming>>;

    /// Stores samples reported by a node.
    async fn append_gpu_samples(&self, node: &NodeId, samples: &[GpuSample]) -> Result<()>;
    /// The latest sample of each of a node's devices, by device UUID.
    async fn latest_gpu_samples(&self, node: &NodeId) -> Result<Vec<GpuSample>>;
    /// A node's samples in `window`, oldest first.
    async fn gpu_samples(&self, node: &NodeId, window: TimeWindow) -> Result<Vec<GpuSample>>;
    /// One retention pass ([`crate::retention`]): GPU samples before their cutoff are rolled
    /// up per device and minute (merged into rows already there) and then deleted, in the
    /// same transaction; raw heartbeats, per-minute rollups (heartbeat and GPU), job timings
    /// and reputation facts before their cutoffs are deleted. Work per call is bounded (at
    /// most [`RETENTION_BATCH`] GPU samples); call again while it reports any.
    async fn apply_retention(
        &self,
        cutoffs: &crate::retention::RetentionCutoffs,
    ) -> Result<crate::retention::RetentionReport>;
    /// A device's per-minute rollups in `window` (by minute start), oldest first, for every
    /// device of `node`.
    async fn gpu_minutes(
        &self,
        node: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<crate::retention::GpuMinute>>;
}

/// The job queue: submission, leases, completion and failure.
///
/// # Contract
/// - `lease_job` hands each queued job to at most one node at a time, even under concurrent
///   callers and coordinators, oldest submission first; it increments `attempts`. Only the
///   current lease (job, lease id, node) may `complete_job`/`fail_job` it, and only before it
///   expires (`Conflict` otherwise). `sweep_expired_leases` puts expired leases back in the
///   queue, or fails the job when `attempts == max_attempts`; `fail_job` does the same.
/// - Lists are in submission order (ties by id).
#[async_trait]
pub trait JobQueue: Send + Sync + Debug {
    /// Queues a job, reserving its payment from its payer when it has funding
    /// ([`PayerLedger`]). `AlreadyExists` for a known id.
    async fn enqueue_job(&self, job: &NewJob) -> Result<JobRecord>;
    /// One job.
    async fn get_job(&self, id: &JobId) -> Result<Option<JobRecord>>;
    /// Jobs matching `filter`.
    async fn list_jobs(&self, filter: &JobFilter, page: PageRequest) -> Result<Page<JobRecord>>;
    /// How many jobs match `filter`: the `total` of [`JobQueue::list_jobs`], without reading
    /// any job (backends override the default with a single count).
    async fn count_jobs(&self, filter: &JobFilter) -> Result<u64> {
        let one = PageRequest {
            limit: 1,
            offset: 0,
        };
        Ok(self.list_jobs(filter, one).await?.total)
    }
    /// Leases the oldest queued job to `node` until `now + duration`.
    async fn lease_job(
        &self,
        node: &NodeId,
        now: Timestamp,
        duration: Duration,
    ) -> Result<Option<Lease>>;
    /// Re-queues (or fails) jobs whose lease expired before `now`.
    async fn sweep_expired_leases(&self, now: Timestamp) -> Result<ExpirySweep>;
    /// Completes a leased job with its result.
    async fn complete_job(
        &self,
        lease: &LeaseRef,
        result: &JobResult,
        now: Timestamp,
    ) -> Result<JobRecord>;
    /// Records a failed attempt: re-queues the job, or fails it at the retry limit.
    async fn fail_job(&self, lease: &LeaseRef, reason: &str, now: Timestamp) -> Result<JobRecord>;
}

/// Paying accounts: local credit, signing keys, and the reservations of their jobs
/// ([`crate::funding`]).
///
/// # Contract
/// - `set_payer` creates an account or changes its credit and key; what is reserved, unsettled
///   and spent is kept.
/// - Reservations move only with their jobs, in the same transaction: `enqueue_job` with
///   funding reserves the payment — or refuses with [`crate::Error::InsufficientFunds`] and
///   stores nothing — even under concurrent submissions for one account; a job that completes
///   spends it (and makes it unsettled), a job that fails for good releases it.
#[async_trait]
pub trait PayerLedger: Send + Sync + Debug {
    /// Sets an account's local credit and (optionally) its Stark public key.
    async fn set_payer(
        &self,
        account: &WalletAddress,
        public_key: Option<&crate::wallet::FeltHex>,
        credit: crate::TokenAmount,
        at: Timestamp,
    ) -> Result<crate::funding::PayerAccount>;
    /// An account's books (`None`: never funded, never paid).
    async fn payer(&self, account: &WalletAddress) -> Result<Option<crate::funding::PayerAccount>>;
}

/// Receipts and the earnings ledger.
///
/// # Contract
/// - `insert_receipt` and `credit_earning` return `AlreadyPresent` for an identical record with
///   a known id and `AlreadyExists` for a different one.
/// - **Exact money**: amounts are stored and summed exactly as u256 (no float, no i64); a sum
///   that would exceed u256 is [`crate::Error::Overflow`].
/// - Receipts list in completion order (ties by id).
#[async_trait]
pub trait ReceiptLedger: Send + Sync + Debug {
    /// Stores a receipt (idempotent by id).
    async fn insert_receipt(&self, receipt: &Receipt) -> Result<Inserted>;
    /// One receipt.
    async fn get_receipt(&self, id: &ReceiptId) -> Result<Option<Receipt>>;
    /// Receipts matching `filter`.
    async fn list_receipts(
        &self,
        filter: &ReceiptFilter,
        page: PageRequest,
    ) -> Result<Page<Receipt>>;

    /// Credits a node (idempotent by entry id).
    async fn credit_earning(&self, entry: &EarningEntry) -> Result<Inserted>;
    /// Exact sums of a node's entries, optionally within a window.
    async fn earnings_total(
        &self,
        node: &NodeId,
        window: Option<TimeWindow>,
    ) -> Result<EarningsTotal>;
    /// A node's earnings per UTC day within `window`, oldest first.
    async fn earnings_by_day(
        &self,
        node: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<DailyEarnings>>;
}

/// Indexed chain events and the indexer's cursor.
///
/// # Contract
/// - `append_chain_events` ignores events already stored under the same (block hash, tx hash,
///   event index) and moves the cursor in the same transaction; `rewind_chain` deletes above
///   the ancestor and moves the cursor in one transaction.
#[async_trait]
pub trait ChainEventStore: Send + Sync + Debug {
    /// Stores a page of events and moves the indexer's cursor, in one transaction. Returns how
    /// many events were new.
    async fn append_chain_events(
        &self,
        indexer: &str,
        events: &[ChainEvent],
        cursor: &IndexerCursor,
    ) -> Result<u64>;
    /// Events in blocks `from_block ..= to_block`, in (block, tx, index) order.
    async fn chain_events(&self, from_block: u64, to_block: u64) -> Result<Vec<ChainEvent>>;
    /// Reorg rollback: deletes every event above `to.block_number` and sets the cursor to
    /// `to`, in one transaction. Returns how many events were deleted.
    async fn rewind_chain(&self, indexer: &str, to: &IndexerCursor) -> Result<u64>;
    /// The indexer's cursor.
    async fn indexer_cursor(&self, indexer: &str) -> Result<Option<IndexerCursor>>;
}

/// Remembers signed node messages, so each is accepted **once** by every coordinator that
/// shares the store, across restarts.
///
/// Callers key a message by a digest of its signed bytes (domain-tagged, so no two message
/// kinds share a key) and keep it until its `sent_at` could no longer pass the clock-skew
/// check; after that the skew check refuses it on its own.
///
/// # Contract
/// - `remember_message` returns `true` the first time a digest is given and `false` for every
///   later call while the entry is kept — also under concurrency, across connections and
///   processes: of any number of concurrent calls with one digest, exactly one gets `true`.
/// - When it returns `true` the entry is durable like any other write of the store.
/// - `purge_messages(before)` deletes entries whose `keep_until` is before `before` and returns
///   how many; it never deletes an entry still to be kept.
#[async_trait]
pub trait ReplayLog: Send + Sync + Debug {
    /// Records `digest` until `keep_until`; `false` when it was already recorded (a replay).
    async fn remember_message(&self, digest: &Hash32, keep_until: Timestamp) -> Result<bool>;
    /// Deletes entries kept until before `before`.
    async fn purge_messages(&self, before: Timestamp) -> Result<u64>;
}

/// Proof envelopes by hash, shared by every coordinator of a deployment, so any of them can
/// serve the proof behind any receipt.
///
/// # Contract
/// - Content-addressed: `put_proof` stores `envelope` under `envelope.proof_hash` and returns
///   a reference (for [`crate::job::JobResult::proof_ref`]). Putting an envelope whose hash is
///   already stored changes nothing (the first copy stays) and succeeds.
/// - When `put_proof` returns, the envelope is durable and visible to `get_proof` from every
///   coordinator using the same backend.
/// - `get_proof` returns `Ok(None)` for an unknown hash; what it returns has the asked hash.
/// - `purge_proofs_before(t)` deletes envelopes first stored before `t` (retention) and
///   returns how many; a later `get_proof` of one answers `Ok(None)`.
#[async_trait]
pub trait ProofStore: Send + Sync + Debug {
    /// The backend's name (`"filesystem"`, `"postgres"`, `"memory"`).
    fn proof_backend(&self) -> &'static str;
    /// Stores an envelope under its hash; returns its reference.
    async fn put_proof(&self, envelope: &ProofEnvelope) -> Result<String>;
    /// The envelope with this hash.
    async fn get_proof(&self, hash: &Hash32) -> Result<Option<ProofEnvelope>>;
    /// Deletes envelopes stored before `before`; returns how many.
    async fn purge_proofs_before(&self, before: Timestamp) -> Result<u64>;
}

/// The outbox of domain events ([`crate::event`]): every change the store makes leaves its
/// events here, in the same transaction, for every coordinator to deliver.
///
/// # Contract
/// - Every state-changing write of the [`JobStore`] appends the events [`crate::event`] makes
///   for it in its own transaction, after the change: `create_node` → `node_registered`;
///   `apply_transition` → `node_status_changed`; `enqueue_job` → `job_queued`; `lease_job` →
///   `job_leased`; `complete_job` → `job_completed`; `fail_job` and `sweep_expired_leases` →
///   `job_requeued` or `job_failed` per job; `insert_receipt` (when new) → `receipt_issued`;
///   `settle_completion` → `job_completed` (unless already applied) and `receipt_issued`
///   (when new); `append_chain_events` → `chain_event_indexed` per new event; `rewind_chain`
///   → `chain_rewound`. A write that fails appends nothing; heartbeats, GPU samples and
///   ledger credits append none (heartbeats are summarised, not broadcast one by one).
/// - Ids increase strictly **in commit order**: once `events_after` returned id `n`, no event
///   with an id ≤ `n` appears later — also with several coordinators writing concurrently.
/// - `events_after(after, limit)` returns the events with id > `after`, ascending, at most
///   `limit`; `last_event_id` is the largest id written (0 before the first) and never
///   decreases; `purge_events(before)` deletes events written before `before` except the
///   newest one, and returns how many; `append_event` writes one event on its own, under the
///   same ordering rule, and returns its id.
#[async_trait]
pub trait EventLog: Send + Sync + Debug {
    /// Events with id > `after`, oldest first, at most `limit`.
    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>>;
    /// The largest event id written (0 when none).
    async fn last_event_id(&self) -> Result<u64>;
    /// Retention: deletes events written before `before` (never the newest).
    async fn purge_events(&self, before: Timestamp) -> Result<u64>;
    /// Appends one event that goes with no other write (a heartbeat summary), at `at`;
    /// returns its id.
    async fn append_event(&self, event: &NewEvent, at: Timestamp) -> Result<u64>;
}

/// Wakes a coordinator when events were committed — by itself or by another coordinator of
/// the deployment. A wake-up is a hint; the events themselves are read from the
/// [`EventLog`], which is the record.
///
/// # Contract
/// - `generation()` is a counter; `wait_changed(seen)` returns a generation greater than
///   `seen` once an event was committed after `seen` was observed (at once if that already
///   happened). Spurious wake-ups are allowed (the reader then finds nothing new).
/// - An implementation that may have missed notifications (a lost connection) reports a
///   wake-up when it is back. Readers still poll the log now and then, so a lost hint delays
///   delivery, never loses an event.
#[async_trait]
pub trait EventBus: Send + Sync + Debug {
    /// The bus's name (`"in-process"`, `"postgres-listen"`).
    fn bus_name(&self) -> &'static str;
    /// The current generation.
    fn generation(&self) -> u64;
    /// Waits for a generation above `seen`.
    async fn wait_changed(&self, seen: u64) -> Result<u64>;
}

/// Incidents (the status banner and its history), shared by every coordinator.
///
/// # Contract
/// - `create_incident` stores a new incident (`AlreadyExists` for a known id). For an
///   automatic incident (`condition` set) it is `Conflict` when an open incident with the
///   same condition exists, also under concurrent calls from several coordinators: at most
///   one open incident per condition.
/// - `save_incident` replaces a known incident (`NotFound` otherwise).
/// - `list_incidents` answers newest first and paginates; `open_incident_for` finds the open
///   incident of a condition.
#[async_trait]
pub trait IncidentStore: Send + Sync + Debug {
    /// Stores a new incident.
    async fn create_incident(&self, incident: &crate::incident::Incident) -> Result<()>;
    /// Replaces a stored incident.
    async fn save_incident(&self, incident: &crate::incident::Incident) -> Result<()>;
    /// One incident.
    async fn get_incident(
        &self,
        id: &crate::IncidentId,
    ) -> Result<Option<crate::incident::Incident>>;
    /// Incidents matching `filter`, newest first.
    async fn list_incidents(
        &self,
        filter: &crate::incident::IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<crate::incident::Incident>>;
    /// The open incident watching `condition`.
    async fn open_incident_for(&self, condition: &str)
        -> Result<Option<crate::incident::Incident>>;
    /// Marks `condition` as holding since `at` unless it already is; returns the time it
    /// has held since (the first mark's).
    async fn mark_condition(&self, condition: &str, at: Timestamp) -> Result<Timestamp>;
    /// Forgets `condition` (it no longer holds).
    async fn clear_condition(&self, condition: &str) -> Result<()>;
}

/// Feature flags an admin set at runtime, shared by every coordinator.
///
/// # Contract
/// - `set_flag` stores (or replaces) a flag's value; `flags` returns every stored one.
#[async_trait]
pub trait FlagStore: Send + Sync + Debug {
    /// Every flag set at runtime.
    async fn flags(
        &self,
    ) -> Result<std::collections::BTreeMap<crate::flags::Flag, crate::flags::FlagValue>>;
    /// Sets a flag.
    async fn set_flag(&self, value: &crate::flags::FlagValue) -> Result<()>;
}

/// Admins' marks that a node's payout period is ready to pay.
///
/// # Contract
/// - `mark_payout` stores a mark; a second mark of the same node and period is
///   `AlreadyExists` (also under concurrent calls) and changes nothing.
/// - `payout_marks` lists a node's marks, newest period first.
#[async_trait]
pub trait PayoutStore: Send + Sync + Debug {
    /// Stores a mark.
    async fn mark_payout(&self, mark: &crate::payout::PayoutMark) -> Result<()>;
    /// A node's marks.
    async fn payout_marks(&self, node: &NodeId) -> Result<Vec<crate::payout::PayoutMark>>;
}

/// What a coordinator needs from its store: the [`JobStore`], the [`ReplayLog`], the
/// [`EventLog`], the [`crate::access::AccountStore`], the [`crate::access::AuditLog`], the
/// [`IncidentStore`], the [`FlagStore`] and the [`PayoutStore`] that coordinators sharing it
/// must agree on.
/// Implemented by every type that implements them all.
pub trait CoordinatorStore:
    JobStore
    + ReplayLog
    + EventLog
    + crate::access::AccountStore
    + crate::access::AuditLog
    + IncidentStore
    + FlagStore
    + PayoutStore
{
}

impl<
        T: JobStore
            + ReplayLog
            + EventLog
            + crate::access::AccountStore
            + crate::access::AuditLog
            + IncidentStore
            + FlagStore
            + PayoutStore
            + ?Sized,
    > CoordinatorStore for T
{
}

/// Conveniences over [`JobStore`], implemented for every store (blanket impl), so a wrapper
/// store can never skip or diverge from them.
#[async_trait]
pub trait JobStoreExt: JobStore {
    /// A node's uptime over `window`, counted from its registration, from the per-minute
    /// heartbeat rollup.
    async fn uptime(&self, node: &NodeRecord, window: TimeWindow) -> Result<Uptime> {
        use crate::node::{counted_minutes, minute_of, MinuteCoverage, MinuteRange};
        let range = counted_minutes(window, node.registered_at);
        if range.is_empty() {
            return Ok(crate::node::uptime(
                window,
                node.registered_at,
                MinuteCoverage::default(),
                0,
                false,
            ));
        }
        let coverage = self.heartbeat_coverage(&node.id, range).await?;
        // The minute in progress counts only once it has a heartbeat (a node is not down
        // for the seconds before its next beat).
        let open = window.to.timestamp() % 60 != 0 || window.to.timestamp_subsec_nanos() != 0;
        let last = MinuteRange {
            first: range.last,
            last: range.last,
        };
        let open_minute_silent =
            open && self.heartbeat_coverage(&node.id, last).await?.minutes_up == 0;
        // Maintenance: the union of the drain windows, in whole minutes, each silent minute
        // excused once, at most [`crate::node::MAX_EXCUSED_MINUTES`] per window.
        let mut spans: Vec<(i64, i64)> = self
            .maintenance_windows(&node.id, window)
            .await?
            .into_iter()
            .filter_map(|m| {
                let from = m.from.max(window.from).max(node.registered_at);
                let to = m.to.min(window.to);
                (from < to).then(|| {
                    (
                        minute_of(from),
                        minute_of(to - chrono::TimeDelta::microseconds(1)),
                    )
                })
            })
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (f, l) in spans {
            match merged.last_mut() {
                Some(m) if f <= m.1 + 1 => m.1 = m.1.max(l),
                _ => merged.push((f, l)),
            }
        }
        let mut excused = 0;
        for (first, last) in merged {
            let r = MinuteRange { first, last };
            let up = self.heartbeat_coverage(&node.id, r).await?.minutes_up;
            excused += r.len().saturating_sub(up);
        }
        Ok(crate::node::uptime(
            window,
            node.registered_at,
            coverage,
            excused.min(crate::node::MAX_EXCUSED_MINUTES),
            open_minute_silent,
        ))
    }

    /// Every node matching `filter`, all pages, in the list's stable order.
    async fn all_nodes(&self, filter: &NodeFilter) -> Result<Vec<NodeRecord>> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .list_nodes(
                    filter,
                    PageRequest::new(crate::page::MAX_PAGE_SIZE, offset)?,
                )
                .await?;
            let got = page.items.len();
            out.extend(page.items);
            match page.next_offset {
                Some(next) if got > 0 && next > offset => offset = next,
                _ => return Ok(out),
            }
        }
    }
}

impl<T: JobStore + ?Sized> JobStoreExt for T {}

/// A shared store.
pub type DynJobStore = Arc<dyn JobStore>;
/// A shared replay log.
pub type DynReplayLog = Arc<dyn ReplayLog>;
/// A shared event log.
pub type DynEventLog = Arc<dyn EventLog>;
/// A shared event bus.
pub type DynEventBus = Arc<dyn EventBus>;
/// A shared proof store.
pub type DynProofStore = Arc<dyn ProofStore>;
/// A shared coordinator store (job store and replay log).
pub type DynCoordinatorStore = Arc<dyn CoordinatorStore>;
/// A shared GPU source.
pub type DynGpuSource = Arc<dyn GpuSource>;
/// A shared chain source.
pub type DynChainSource = Arc<dyn ChainSource>;
/// A shared prover.
pub type DynProver = Arc<dyn Prover>;
