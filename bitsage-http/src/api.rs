//! Wire types of the HTTP API, shared by the coordinator (server) and the agent's typed client.
//!
//! Conventions: JSON in snake_case; token amounts as base-unit decimal strings, each next to a
//! `*_formatted` string for people (`1,234.5 SAGE`); times in RFC 3339 UTC; request bodies
//! reject unknown fields.
//!
//! The signed node messages (registration, heartbeat, lease, completion, failure report, the
//! probe ticket) live in [`bitsage_core::message`], next to the services that check them, and
//! are re-exported here so the agent's client and the server name them in one place.
//!
//! Every type here derives `utoipa::ToSchema` (query structs `IntoParams`): the served OpenAPI
//! document ([`crate::openapi`]) is generated from them, so their doc comments are its
//! descriptions.

use bitsage_core::attestation::{AttestationSummary, RegistrationAttestation};
use bitsage_core::crypto::PublicKey;
use bitsage_core::gpu::ReportedCollector;
use bitsage_core::job::{JobKind, JobRecord, JobResult, LeaseInfo};
use bitsage_core::ledger::{DailyEarnings, EarningsTotal};
use bitsage_core::node::{HardwareReport, NodeRecord, StatusChange};
use bitsage_core::openapi::TimestampSchema;
use bitsage_core::proof::ProofEnvelope;
use bitsage_core::receipt::Receipt;
use bitsage_core::{JobId, JobStatus, NodeId, NodeStatus, Timestamp, TokenAmount, WalletAddress};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use bitsage_core::message::{
    Assignment, CompleteRequest, FailRequest, HeartbeatRequest, LeaseRequest, ProbeTicket,
    RegisterRequest, SubmitJobRequest, COMPLETE_DOMAIN, FAIL_DOMAIN, HEARTBEAT_DOMAIN,
    LEASE_DOMAIN, MAX_AGENT_VERSION_LEN, MAX_FAIL_REASON_LEN, MAX_JOB_ATTEMPTS, PROBE_DOMAIN,
    REGISTER_DOMAIN,
};
pub use bitsage_core::page::Page;

// ---------------------------------------------------------------- errors

/// The body of every error response: `{"error":{"type":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, in a machine-readable `type` and a human-readable `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case category, e.g. `invalid_request`, `not_found`, `unauthorized`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened, for people; never internal error text.
    pub message: String,
}

/// The answer to a registration (201 when created, 200 when already registered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    /// The node as stored.
    pub node: NodeView,
    /// How often the node must send a heartbeat, seconds.
    pub heartbeat_interval_secs: u64,
    /// The coordinator's public key (it countersigns receipts).
    pub coordinator_public_key: PublicKey,
}

/// The answer to an accepted heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// The node's status after this heartbeat.
    pub status: NodeStatus,
    /// How often the node must send a heartbeat, seconds.
    pub heartbeat_interval_secs: u64,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// The job's id.
    pub id: JobId,
    /// What to compute.
    pub job: JobKind,
    /// Queue status.
    pub status: JobStatus,
    /// Payment on completion, base units.
    pub payment: TokenAmount,
    /// `payment` for people.
    pub payment_formatted: String,
    /// Leases granted so far.
    pub attempts: u32,
    /// Lease limit.
    pub max_attempts: u32,
    /// The current lease while `leased`.
    pub lease: Option<LeaseInfo>,
    /// The result once `completed`.
    pub result: Option<JobResult>,
    /// The node that completed it.
    pub completed_by: Option<NodeId>,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
    /// Submission time.
    #[schema(value_type = TimestampSchema)]
    pub submitted_at: Timestamp,
    /// Last change.
    #[schema(value_type = TimestampSchema)]
    pub updated_at: Timestamp,
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        Self {
            id: j.spec.id,
            job: j.spec.kind,
            status: j.status,
            payment_formatted: j.payment.format_sage(),
            payment: j.payment,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            lease: j.lease,
            result: j.result,
            completed_by: j.completed_by,
            last_error: j.last_error,
            submitted_at: j.submitted_at,
            updated_at: j.updated_at,
        }
    }
}

/// The answer to a lease request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseResponse {
    /// The work, or `null` when there is none for this node now.
    pub assignment: Option<Assignment>,
    /// When there is no work: how long to wait before asking again, seconds.
    pub retry_after_secs: u64,
    /// The node's status.
    pub node_status: NodeStatus,
    /// Why a pending node gets no probe yet (with a chain: its stake is below its tier's
    /// minimum), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
}

/// The answer to an accepted completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompleteResponse {
    /// The countersigned receipt (`null` for a probe).
    pub receipt: Option<ReceiptView>,
    /// The node's status after this completion (`active` after a passed probe).
    pub node_status: NodeStatus,
    /// The security level the proof was verified at, bits.
    pub security_bits: u32,
}

// ---------------------------------------------------------------- nodes

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    /// Its id.
    pub id: NodeId,
    /// Its ed25519 key.
    pub public_key: PublicKey,
    /// The wallet it earns for.
    pub wallet: WalletAddress,
    /// `proven` (the wallet account signed for this node key, checked on chain) or
    /// `unverified` (named by the node only: this coordinator has no chain to check it on).
    pub wallet_status: bitsage_core::wallet::WalletStatus,
    /// When the wallet was proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TimestampSchema>)]
    pub wallet_proven_at: Option<Timestamp>,
    /// Its hardware as reported at registration (the raw attestation evidence is left out:
    /// see `attestation` and `GET /api/nodes/{id}/attestation`).
    pub hardware: HardwareReport,
    /// What the coordinator checked of the node's confidential-compute attestation.
    pub attestation: AttestationSummary,
    /// The agent's version at registration.
    pub agent_version: String,
    /// Lifecycle status.
    pub status: NodeStatus,
    /// Why it is in that status.
    pub status_reason: String,
    /// When the status last changed.
    #[schema(value_type = TimestampSchema)]
    pub status_changed_at: Timestamp,
    /// When it registered.
    #[schema(value_type = TimestampSchema)]
    pub registered_at: Timestamp,
    /// Region, runtime, labels and energy tag from the agent's configuration.
    pub profile: bitsage_core::node::NodeProfile,
    /// The network's reputation R 0–100 as last computed, with its explanation (`null`
    /// before the first round).
    pub reputation: Option<bitsage_core::reputation::Reputation>,
    /// Set while the node is drained for maintenance.
    pub drain: Option<bitsage_core::node::Drain>,
}

impl From<NodeRecord> for NodeView {
    fn from(mut n: NodeRecord) -> Self {
        let attestation = n.hardware.attestation_summary();
        // The raw evidence is served by `GET /api/nodes/{id}/attestation` only.
        n.hardware.attestation = None;
        Self {
            wallet_status: n.wallet_status(),
            wallet_proven_at: n.wallet_proven_at,
            id: n.id,
            public_key: n.public_key,
            wallet: n.wallet,
            hardware: n.hardware,
            attestation,
            agent_version: n.agent_version,
            status: n.status,
            status_reason: n.status_reason,
            status_changed_at: n.status_changed_at,
            registered_at: n.registered_at,
            profile: n.profile,
            reputation: n.reputation,
            drain: n.drain,
        }
    }
}

/// `GET /api/nodes/{id}`: a node with its latest heartbeat time and status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeDetail {
    /// The node.
    #[serde(flatten)]
    pub node: NodeView,
    /// When its latest heartbeat arrived (`null` before the first).
    #[schema(value_type = Option<TimestampSchema>)]
    pub last_seen: Option<Timestamp>,
    /// Its GPU collector's health as its latest heartbeat reported it (`null` when that
    /// heartbeat carried none).
    pub gpu_collector: Option<ReportedCollector>,
    /// Its status changes, oldest first.
    pub history: Vec<StatusChange>,
    /// Uptime over 24 h, 7 d and 30 d, and job latency over 24 h.
    #[serde(flatten)]
    pub operations: bitsage_core::service::fleet::NodeOperations,
}

/// `GET /api/nodes/attestation-challenge`: a fresh nonce for the node to attest over, signed
/// by the coordinator for the node's key; register with the answer before `expires_at`.
pub type ChallengeResponse = bitsage_core::attestation::AttestationChallenge;

/// Query of `GET /api/nodes/attestation-challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChallengeQuery {
    /// The key the node will register with (hex); the challenge is valid for it only.
    pub public_key: PublicKey,
}

/// `GET /api/nodes/{id}/attestation`: the evidence a node registered with (the challenge and,
/// per GPU, NVML's report in hex), for verification with NVIDIA's tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttestationEvidence {
    /// The node.
    pub node_id: NodeId,
    /// What the coordinator checked.
    pub summary: AttestationSummary,
    /// The raw evidence.
    pub evidence: RegistrationAttestation,
}

/// Query of `GET /api/nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NodeListQuery {
    /// Only nodes in this status.
    pub status: Option<NodeStatus>,
    /// Only nodes earning for this wallet.
    pub wallet: Option<WalletAddress>,
    /// Only nodes in this region (e.g. `eu-west`).
    pub region: Option<String>,
    /// Only nodes with this runtime.
    pub runtime: Option<bitsage_core::node::Runtime>,
    /// Only nodes carrying this label, as `key=value`.
    pub label: Option<String>,
    /// Only nodes with this energy tag.
    pub energy_tag: Option<String>,
    /// Only nodes whose reputation R is at least this (0–100).
    pub reputation_min: Option<u32>,
    /// Only nodes whose reputation R is at most this (0–100).
    pub reputation_max: Option<u32>,
    /// Page size (1 ..= 1000, default 100).
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

// ---------------------------------------------------------------- receipts

/// Query of `GET /api/receipts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReceiptListQuery {
    /// Only this node's receipts.
    pub node: Option<NodeId>,
    /// Only this job kind (e.g. `poseidon2-chain`).
    pub kind: Option<String>,
    /// Only receipts completed at or after this time.
    #[param(value_type = Option<TimestampSchema>)]
    pub from: Option<Timestamp>,
    /// Only receipts completed before this time.
    #[param(value_type = Option<TimestampSchema>)]
    pub to: Option<Timestamp>,
    /// Page size (1 ..= 1000, default 100).
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

/// A receipt as the API shows it: the signed receipt (verifiable offline with its two keys)
/// plus formatted amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptView {
    /// The signed receipt, exactly as stored.
    #[serde(flatten)]
    pub receipt: Receipt,
    /// `payment` for people.
    pub payment_formatted: String,
    /// `fee` for people.
    pub fee_formatted: String,
    /// `net` for people.
    pub net_formatted: String,
}

impl From<Receipt> for ReceiptView {
    fn from(receipt: Receipt) -> Self {
        Self {
            payment_formatted: receipt.body.payment.format_sage(),
            fee_formatted: receipt.body.fee.format_sage(),
            net_formatted: receipt.body.net.format_sage(),
            receipt,
        }
    }
}

/// Query of `GET /api/receipts/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    /// Include the proof envelope the receipt's `proof_hash` names (default `false`).
    pub with_proof: Option<bool>,
    /// Include the receipt's inclusion proof in its settlement epoch, when it has one
    /// (default `false`).
    pub with_inclusion: Option<bool>,
}

/// `GET /api/receipts/{id}`: the receipt, and with `?with_proof=true` the proof envelope it
/// names, so the whole thing can be checked offline (`bitsage-agent verify-receipt FILE`:
/// both signatures, the envelope's hash against the receipt, and the proof itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptBundle {
    /// The receipt with formatted amounts.
    #[serde(flatten)]
    pub receipt: ReceiptView,
    /// The proof envelope (only when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<ProofEnvelope>,
    /// The inclusion proof in its settlement epoch (only when asked for and assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<bitsage_core::settlement::InclusionProof>,
}

// ---------------------------------------------------------------- earnings

/// Response format of `GET /api/earnings/{node}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EarningsFormat {
    /// JSON ([`EarningsResponse`]).
    #[default]
    Json,
    /// CSV, one row per UTC day: `day,entries,gross,fee,net` in base units.
    Csv,
}

/// Query of `GET /api/earnings/{node}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EarningsQuery {
    /// Only entries credited at or after this time.
    #[param(value_type = Option<TimestampSchema>)]
    pub from: Option<Timestamp>,
    /// Only entries credited before this time.
    #[param(value_type = Option<TimestampSchema>)]
    pub to: Option<Timestamp>,
    /// `json` (default) or `csv`.
    pub format: Option<EarningsFormat>,
}

/// Exact sums of earnings, in base units and formatted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EarningsTotalView {
    /// Entries summed.
    pub entries: u64,
    /// Sum of what clients paid.
    pub gross: TokenAmount,
    /// `gross` for people.
    pub gross_formatted: String,
    /// Sum of network fees.
    pub fee: TokenAmount,
    /// `fee` for people.
    pub fee_formatted: String,
    /// Sum of what the node earned.
    pub net: TokenAmount,
    /// `net` for people.
    pub net_formatted: String,
}

impl From<EarningsTotal> for EarningsTotalView {
    fn from(t: EarningsTotal) -> Self {
        Self {
            entries: t.entries,
            gross_formatted: t.gross.format_sage(),
            gross: t.gross,
            fee_formatted: t.fee.format_sage(),
            fee: t.fee,
            net_formatted: t.net.format_sage(),
            net: t.net,
        }
    }
}

/// Earnings of one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DailyEarningsView {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: chrono::NaiveDate,
    /// Its sums.
    #[serde(flatten)]
    pub total: EarningsTotalView,
}

impl From<DailyEarnings> for DailyEarningsView {
    fn from(d: DailyEarnings) -> Self {
        Self {
            day: d.day,
            total: d.total.into(),
        }
    }
}

/// `GET /api/earnings/{node}`: a node's exact earnings, in total and per UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EarningsResponse {
    /// The node.
    pub node_id: NodeId,
    /// The window's start as asked (`null`: from the beginning).
    #[schema(value_type = Option<TimestampSchema>)]
    pub from: Option<Timestamp>,
    /// The window's end as asked (`null`: until now).
    #[schema(value_type = Option<TimestampSchema>)]
    pub to: Option<Timestamp>,
    /// Sums over the window.
    pub total: EarningsTotalView,
    /// Sums per UTC day, oldest first.
    pub days: Vec<DailyEarningsView>,
    /// All-time net split into settled on chain and pending settlement.
    pub settlement: SettlementSplitView,
    /// Payout readiness of each month the days fall in, newest first.
    pub payouts: Vec<bitsage_core::payout::PayoutPeriod>,
}

/// A node's all-time net earnings: settled on chain, and verified but pending settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SettlementSplitView {
    /// Net of receipts in accepted epochs (paid on chain).
    pub settled_net: TokenAmount,
    /// `settled_net` for people.
    pub settled_net_formatted: String,
    /// Net of receipts not yet in an accepted epoch.
    pub pending_net: TokenAmount,
    /// `pending_net` for people.
    pub pending_net_formatted: String,
    /// How many receipts are pending.
    pub pending_receipts: u64,
    /// When the oldest pending receipt was completed.
    #[schema(value_type = Option<TimestampSchema>)]
    pub oldest_pending_at: Option<Timestamp>,
}

// ---------------------------------------------------------------- network

/// `GET /api/network/stats`: counts read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NetworkStats {
    /// Nodes in status `active`.
    pub active_workers: u64,
    /// Registered nodes, any status.
    pub total_workers: u64,
    /// Jobs completed.
    pub total_jobs_processed: u64,
}

// ---------------------------------------------------------------- health

/// The health of the service or of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working.
    Ok,
    /// Working, but a dependency other than the store is failing or behind: the process
    /// stays in service (readiness answers 200).
    Degraded,
    /// Not answering (or too slowly).
    Unavailable,
}

/// `GET /livez`: the process answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveResponse {
    /// Always `ok`.
    pub status: HealthStatus,
}

/// `GET /readyz` (and `/health`, `/health/ready`): readiness with per-component detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` when every component is.
    pub status: HealthStatus,
    /// Each component's health.
    pub components: HealthComponents,
}

/// The components a readiness check looks at: the store always, the others when this
/// coordinator is configured with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthComponents {
    /// The job store (`unavailable` makes the coordinator not ready).
    pub store: ComponentHealth,
    /// The chain RPC (stake, rewards, reputation reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ComponentHealth>,
    /// The chain event indexer (`degraded` when behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexer: Option<ComponentHealth>,
    /// Settlement on chain (`degraded` when verified work waits too long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<ComponentHealth>,
}

impl HealthComponents {
    /// Each configured component with its name.
    pub fn named(&self) -> Vec<(&'static str, &ComponentHealth)> {
        [
            Some(("store", &self.store)),
            self.chain.as_ref().map(|c| ("chain", c)),
            self.indexer.as_ref().map(|c| ("indexer", c)),
            self.settlement.as_ref().map(|c| ("settlement", c)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// `GET /health`: the seed's health document — status, version, process uptime, each
/// component with its response time, and a few headline metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthReport {
    /// `ok`, `degraded` (a dependency other than the store is failing) or `unavailable`.
    pub status: HealthStatus,
    /// The coordinator's version.
    pub version: String,
    /// Seconds since this process started.
    pub uptime_seconds: u64,
    /// Each configured component.
    pub components: Vec<NamedComponent>,
    /// Headline figures from the store (`null` each when the store did not answer).
    pub metrics: HealthMetrics,
}

/// One component of [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NamedComponent {
    /// `store`, `chain`, `indexer` or `settlement`.
    pub name: String,
    /// Its status.
    pub status: HealthStatus,
    /// How long its check took, ms (`null` when it did not answer).
    pub response_time_ms: Option<f64>,
    /// Why it is not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Headline figures of [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthMetrics {
    /// Nodes registered.
    pub nodes_total: Option<u64>,
    /// Nodes active.
    pub nodes_active: Option<u64>,
    /// Jobs waiting in the queue.
    pub jobs_queued: Option<u64>,
    /// Jobs leased to a node.
    pub jobs_leased: Option<u64>,
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComponentHealth {
    /// Whether it answered in time.
    pub status: HealthStatus,
    /// The backend's name (`sqlite`, `postgres`, `memory`).
    pub backend: String,
    /// How long the check query took, milliseconds (when it answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Why it is unavailable (when it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
