//! The coordinator as a service: its ports, its policy, its typed errors, and the periodic
//! upkeep ([`Coordinator::sweep`]). The node use cases are in [`super::nodes`], the job use
//! cases in [`super::jobs`]; both are methods of [`Coordinator`], so a transport holds one
//! value and calls it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::deployment::DeploymentKey;
use crate::event::{NewEvent, Topic};
use crate::funding::{DynFundingSource, LocalCredit};
use crate::job::ExpirySweep;
use crate::message::NodeSignedMessage;
use crate::node::{NodeFilter, NodeRecord};
use crate::time::check_skew;
use crate::wallet::DynWalletVerifier;
use crate::{
    DynChainSource, DynCoordinatorStore, DynProofStore, DynProver, Error, NodeId, NodeStatus,
    Timestamp, Transition,
};

/// The most receipts one settlement epoch may hold: one transaction must fit the chain's
/// per-transaction gas (measured on starknet-devnet 0.10.1, `loadgen settle`: 400 jobs use
/// 1.16 G L2 gas and are accepted, 600 are refused).
pub const MAX_EPOCH_JOBS: u32 = 400;

/// The rules of a deployment's coordinators — what a node must do and what a job costs —
/// separate from any transport's settings (body limits, timeouts of a web request).
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinatorPolicy {
    /// How often nodes must send a heartbeat (default 10 s); told to agents.
    pub heartbeat_interval: Duration,
    /// The longest interval the coordinator tells agents when heartbeat ingest falls behind
    /// (default 20 s). Never less than `heartbeat_interval` nor more than two thirds of
    /// `stale_after` (a paced node must not look silent): see
    /// [`CoordinatorPolicy::heartbeat_interval_range`].
    pub max_heartbeat_interval: Duration,
    /// The time a heartbeat takes to be accepted (signature, checks, commit; a recent mean)
    /// above which ingest counts as behind and the advertised interval doubles (default
    /// 250 ms; below a quarter of it the interval halves again).
    pub heartbeat_latency_target: Duration,
    /// How far a signed message's `sent_at` may be from the coordinator's clock (default
    /// 5 min); replayed messages are remembered this long.
    pub max_clock_skew: Duration,
    /// How long a leased job stays with its node before it is re-queued (default 10 min).
    pub lease_duration: Duration,
    /// How long a probe ticket stays valid (default 10 min).
    pub probe_ttl: Duration,
    /// Length of the Poseidon2 chain a probe asks for (default 256).
    pub probe_chain_length: u32,
    /// The network fee kept from every payment, basis points (default 250 = 2.5 %).
    pub fee_bps: u16,
    /// How long an agent waits before asking again when there is no work (default 2 s).
    pub idle_retry: Duration,
    /// How long an attestation challenge stays valid (default 5 min).
    pub attestation_challenge_ttl: Duration,
    /// A bearer token job submission needs (none: submission is open).
    pub submit_token: Option<String>,
    /// An active node silent this long goes stale (default 30 s).
    pub stale_after: Duration,
    /// A node silent this long goes offline (default 5 min).
    pub offline_after: Duration,
    /// How often accepted heartbeats are summarised on the `workers` topic (default 30 s);
    /// heartbeats are never broadcast one by one.
    pub heartbeat_summary_every: Duration,
    /// With a chain: how often every active node's stake is re-checked against its tier's
    /// minimum (default 60 s; chain reads are cached, at most 15 s stale).
    pub stake_recheck_every: Duration,
    /// A settlement epoch is sent when this many receipts wait (default 100, at most
    /// [`MAX_EPOCH_JOBS`])…
    pub epoch_max_jobs: u32,
    /// …or when the oldest has waited this long (default 60 s).
    pub epoch_every: Duration,
    /// The reputation's window, weights and quarantine threshold.
    pub reputation: crate::reputation::ReputationPolicy,
    /// How often every node's reputation is recomputed (default 60 s).
    pub reputation_every: Duration,
    /// Longest drain an operator may set (default 24 h).
    pub max_drain: Duration,
    /// Feature flags as configured (an admin may override them at runtime).
    pub flags: std::collections::BTreeMap<crate::flags::Flag, bool>,
    /// How long each kind of data is kept ([`crate::retention`]).
    pub retention: crate::retention::RetentionPolicy,
    /// A node's month is eligible for payout once its net earnings reach this (base
    /// units; default 100 SAGE).
    pub payout_threshold: crate::TokenAmount,
    /// Whether a new node must present an enrolment token (default off: any node may
    /// register, as before).
    pub require_enrolment: bool,
}

impl Default for CoordinatorPolicy {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            max_heartbeat_interval: Duration::from_secs(20),
            heartbeat_latency_target: Duration::from_millis(250),
            max_clock_skew: Duration::from_secs(5 * 60),
            lease_duration: Duration::from_secs(10 * 60),
            probe_ttl: Duration::from_secs(10 * 60),
            probe_chain_length: 256,
            fee_bps: 250,
            idle_retry: Duration::from_secs(2),
            attestation_challenge_ttl: Duration::from_secs(5 * 60),
            submit_token: None,
            stale_after: Duration::from_secs(30),
            offline_after: Duration::from_secs(5 * 60),
            heartbeat_summary_every: Duration::from_secs(30),
            stake_recheck_every: Duration::from_secs(60),
            epoch_max_jobs: 100,
            epoch_every: Duration::from_secs(60),
            reputation: crate::reputation::ReputationPolicy::default(),
            reputation_every: Duration::from_secs(60),
            max_drain: Duration::from_secs(24 * 3600),
            flags: std::collections::BTreeMap::new(),
            retention: crate::retention::RetentionPolicy::default(),
            payout_threshold: crate::TokenAmount::from_u128(100 * 10u128.pow(18)),
            require_enrolment: false,
        }
    }
}

impl CoordinatorPolicy {
    /// The intervals the pacer may advertise: from `heartbeat_interval` up to
    /// `max_heartbeat_interval`, capped at two thirds of `stale_after` so that a node sending at
    /// the longest interval still has a third of `stale_after` to spare.
    pub fn heartbeat_interval_range(&self) -> (Duration, Duration) {
        let base = self.heartbeat_interval;
        let cap = self.stale_after.saturating_mul(2) / 3;
        (base, self.max_heartbeat_interval.min(cap).max(base))
    }

    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), Error> {
        if self.stale_after >= self.offline_after {
            return Err(Error::invalid(
                "coordinator policy",
                format!(
                    "stale_after ({:?}) must be shorter than offline_after ({:?})",
                    self.stale_after, self.offline_after
                ),
            ));
        }
        if self.stale_after <= self.heartbeat_interval {
            return Err(Error::invalid(
                "coordinator policy",
                format!(
                    "stale_after ({:?}) must be longer than the heartbeat interval ({:?})",
                    self.stale_after, self.heartbeat_interval
                ),
            ));
        }
        if self.fee_bps > 10_000 {
            return Err(Error::invalid(
                "coordinator policy",
                "fee_bps must be at most 10000",
            ));
        }
        if self.epoch_max_jobs == 0 || self.epoch_max_jobs > MAX_EPOCH_JOBS {
            return Err(Error::invalid(
                "coordinator policy",
                format!("epoch_max_jobs must be 1 ..= {MAX_EPOCH_JOBS}"),
            ));
        }
        if self.probe_chain_length == 0 {
            return Err(Error::invalid(
                "coordinator policy",
                "probe_chain_length must be positive",
            ));
        }
        Ok(())
    }
}

/// Why a use case refused. Transports map each variant to their own answer (HTTP: a status
/// and an error `type`); [`ServiceError::Domain`] carries the port errors and validation
/// errors, mapped as the core [`Error`] always is.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The sender did not prove its key (unknown node or bad signature). The message is the
    /// same for both, so it does not tell whether a node id exists.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The sender proved its key but may not do this (a missing submit token, a probe ticket
    /// this deployment did not issue, a receipt signature that does not verify).
    #[error("{0}")]
    Unauthorized(String),
    /// The node may not do this in its current state (quarantined).
    #[error("{0}")]
    Forbidden(String),
    /// The registration's attestation evidence was refused.
    #[error("{0}")]
    AttestationRejected(String),
    /// The node's wallet is not proven: no proof where one is required, or the wallet
    /// account refused the signature.
    #[error("{0}")]
    WalletRejected(String),
    /// The registration's enrolment token is missing where one is required, unknown,
    /// expired, used by another node, or for another wallet.
    #[error("{0}")]
    EnrolmentRejected(String),
    /// The message was altered on the way (its bytes no longer match what the node signed):
    /// no fault of the node's; it should send again.
    #[error("{0}")]
    Transport(String),
    /// A domain or port error (invalid input, not found, conflict, replay, proof rejected,
    /// unavailable backend, ...).
    #[error(transparent)]
    Domain(#[from] Error),
}

/// Result of a use case.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Heartbeats accepted by this coordinator since the last summary (a tally for the live
/// feed, not state: a crash loses at most one summary window).
#[derive(Debug, Default)]
pub(crate) struct HeartbeatTally {
    pub(crate) per_node: HashMap<NodeId, u64>,
    pub(crate) since: Option<Timestamp>,
}

/// One deployment's coordinator use cases over its ports. Cheap to clone (ports are `Arc`s);
/// holds no state other coordinators of the deployment need — the store, the replay log and
/// the proof store are shared, the deployment key is the same everywhere.
#[derive(Debug, Clone)]
pub struct Coordinator {
    pub(crate) store: DynCoordinatorStore,
    pub(crate) verifier: DynProver,
    pub(crate) proofs: DynProofStore,
    pub(crate) deployment: Arc<DeploymentKey>,
    pub(crate) policy: CoordinatorPolicy,
    pub(crate) instance: String,
    pub(crate) tally: Arc<Mutex<HeartbeatTally>>,
    pub(crate) wallets: Option<DynWalletVerifier>,
    pub(crate) stake_gate: Option<DynChainSource>,
    pub(crate) payers: Option<DynWalletVerifier>,
    pub(crate) funding: DynFundingSource,
    pub(crate) settlement: Option<crate::settlement::DynSettlement>,
    /// When this process last re-checked stakes (a schedule, not state: every coordinator
    /// re-checks, and a restart only re-checks sooner).
    pub(crate) last_stake_check: Arc<Mutex<Option<Timestamp>>>,
    pub(crate) last_reputation_round: Arc<Mutex<Option<Timestamp>>>,
    /// Flags as last read from the store, and when (read again after 2 s).
    pub(crate) flag_cache: Arc<Mutex<Option<super::incidents::FlagCache>>>,
    /// What the use cases count ([`crate::telemetry`]), read by `/metrics`.
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
    /// Node-key cache and heartbeat pacer ([`super::ingest`]).
    pub(crate) ingest: Arc<super::ingest::Ingest>,
}

/// What one [`Coordinator::sweep`] did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Lifecycle moves of silent nodes.
    pub transitions: Vec<(NodeId, Transition)>,
    /// Expired leases re-queued or failed.
    pub expired: ExpirySweep,
    /// Whether a heartbeat summary was written to the outbox.
    pub heartbeat_summary: bool,
    /// Replay-log entries purged (their messages are past the skew window).
    pub replay_purged: u64,
    /// The reputation round, when one was due.
    pub reputation: Option<super::reputation::ReputationRound>,
}

impl Coordinator {
    /// The use cases over `store` (nodes, jobs, receipts, ledger, replay log, outbox),
    /// verifying every proof with `verifier` (its own ≥ 96-bit policy), keeping proofs in
    /// `proofs`, signing with `deployment`, under `policy`.
    pub fn new(
        store: DynCoordinatorStore,
        verifier: DynProver,
        proofs: DynProofStore,
        deployment: Arc<DeploymentKey>,
        policy: CoordinatorPolicy,
    ) -> Self {
        Self {
            store,
            verifier,
            proofs,
            deployment,
            policy,
            instance: uuid::Uuid::new_v4().to_string(),
            tally: Arc::default(),
            wallets: None,
            stake_gate: None,
            payers: None,
            funding: Arc::new(LocalCredit),
            settlement: None,
            last_stake_check: Arc::default(),
            last_reputation_round: Arc::default(),
            flag_cache: Arc::default(),
            telemetry: Arc::default(),
            ingest: Arc::default(),
        }
    }

    /// The same use cases gating work on stake read from `chain`: a pending node gets a probe
    /// only once its wallet is eligible and its free stake meets the minimum of the GPU tier
    /// it registered; active nodes are re-checked every
    /// [`CoordinatorPolicy::stake_recheck_every`] and go back to pending below it.
    pub fn with_stake_gate(mut self, chain: DynChainSource) -> Self {
        self.stake_gate = Some(chain);
        self
    }

    /// The same use cases checking node wallets with `wallets` (a chain): a node then
    /// registers only with a proven wallet. Without one, wallets are stored unverified.
    pub fn with_wallet_verifier(mut self, wallets: DynWalletVerifier) -> Self {
        self.wallets = Some(wallets);
        self
    }

    /// The same use cases checking job submissions' payer signatures with `payers` (with a
    /// chain, the account contracts; without, the keys stored with local credit). Without
    /// one, submissions are refused: a payment is never accepted unsigned.
    pub fn with_payer_verifier(mut self, payers: DynWalletVerifier) -> Self {
        self.payers = Some(payers);
        self
    }

    /// The same use cases reading payers' limits from `funding` (default [`LocalCredit`];
    /// with a chain, the escrow).
    pub fn with_funding(mut self, funding: DynFundingSource) -> Self {
        self.funding = funding;
        self
    }

    /// The chain id payer signatures must be made for; `None` when submissions cannot be
    /// checked (no payer verifier).
    pub async fn payment_chain_id(&self) -> Result<Option<String>, Error> {
        match &self.payers {
            Some(p) => p.chain_id().await.map(Some),
            None => Ok(None),
        }
    }

    /// The deployment's network name.
    pub fn network(&self) -> &str {
        self.deployment.network()
    }

    /// The chain id wallet signatures must be made for; `None` when wallets are not checked
    /// (no chain), `Err` when the chain cannot say.
    pub async fn wallet_chain_id(&self) -> Result<Option<String>, Error> {
        match &self.wallets {
            Some(w) => w.chain_id().await.map(Some),
            None => Ok(None),
        }
    }

    /// The same use cases under `policy`.
    pub fn with_policy(mut self, policy: CoordinatorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &CoordinatorPolicy {
        &self.policy
    }

    /// Finds the sender of a node-signed message and checks it: the node exists, the
    /// signature verifies with its stored key (both failures answer `rejected`, so the answer
    /// does not tell whether a node id exists) and `sent_at` lies in the skew window.
    pub(crate) async fn signed_sender(
        &self,
        msg: &impl NodeSignedMessage,
        rejected: &'static str,
        now: Timestamp,
    ) -> ServiceResult<NodeRecord> {
        let node = self
            .store
            .get_node(msg.sender())
            .await?
            .ok_or(ServiceError::Unauthenticated(rejected))?;
        msg.verify_with(&node.public_key)
            .map_err(|_| ServiceError::Unauthenticated(rejected))?;
        // From here on the sender holds the node key, so precise reasons reveal nothing.
        check_skew(msg.sent_at(), now, self.policy.max_clock_skew)?;
        Ok(node)
    }

    /// This process's instance id (random per start), named in heartbeat summaries.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The periodic upkeep, safe to run on every coordinator at once: moves silent nodes
    /// (stale, offline), re-queues or fails expired leases, every
    /// [`CoordinatorPolicy::heartbeat_summary_every`] writes a `workers/heartbeats_summary`
    /// event for the heartbeats this coordinator accepted (when it accepted any), and purges
    /// replay-log entries whose messages could no longer pass the skew check.
    pub async fn sweep(&self, now: Timestamp) -> ServiceResult<SweepReport> {
        let mut transitions = super::lifecycle::sweep(
            &*self.store,
            now,
            self.policy.stale_after,
            self.policy.offline_after,
        )
        .await?;
        if self.stake_check_due(now) {
            transitions.extend(self.recheck_stakes(now).await?);
        }
        for (node, t) in &transitions {
            tracing::info!(node = %node, from = %t.from, to = %t.to, reason = %t.reason, "node status changed");
        }
        let expired = self.store.sweep_expired_leases(now).await?;
        if !expired.requeued.is_empty() || !expired.failed.is_empty() {
            tracing::info!(
                requeued = expired.requeued.len(),
                failed = expired.failed.len(),
                "expired leases swept"
            );
        }
        for (job, node) in &expired.holders {
            self.note_fact(
                node,
                crate::reputation::NodeFact::LeaseExpired,
                now,
                &format!("lease of job {job} expired"),
            )
            .await;
        }
        if let Err(e) = self.watch_builtin(now).await {
            tracing::warn!(error = %e, "incident conditions could not be checked");
        }
        let reputation = if self.reputation_due(now) {
            let round = self.update_reputations(now).await?;
            for (node, score) in &round.quarantined {
                tracing::warn!(node = %node, score, "node quarantined for low reputation");
            }
            Some(round)
        } else {
            None
        };
        let heartbeat_summary = self.summarise_heartbeats(now).await?;
        // Entries are kept until their message could no longer pass the skew check.
        let replay_purged = self.store.purge_messages(now).await?;
        Ok(SweepReport {
            transitions,
            expired,
            heartbeat_summary,
            replay_purged,
            reputation,
        })
    }

    /// One retention pass at `now` ([`crate::retention`]): telemetry rolled up and deleted
    /// past its windows (the GPU rollup in bounded batches, repeated while there is more),
    /// proofs past theirs when a proof window is configured.
    pub async fn apply_retention(
        &self,
        now: Timestamp,
    ) -> ServiceResult<crate::retention::RetentionReport> {
        let cutoffs = self.policy.retention.cutoffs(now);
        let mut total = crate::retention::RetentionReport::default();
        // Bounded: at most 10 batches per pass; the rest waits for the next pass.
        for _ in 0..10 {
            let r = self.store.apply_retention(&cutoffs).await?;
            total.gpu_samples += r.gpu_samples;
            total.heartbeats += r.heartbeats;
            total.rollups += r.rollups;
            total.job_timings += r.job_timings;
            total.node_facts += r.node_facts;
            if r.gpu_samples < u64::from(crate::ports::RETENTION_BATCH) {
                break;
            }
        }
        if let Some(keep) = self.policy.retention.proofs {
            let before = chrono::TimeDelta::from_std(keep)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or_else(crate::time::earliest);
            total.proofs = self.proofs.purge_proofs_before(before).await?;
        }
        if total != crate::retention::RetentionReport::default() {
            tracing::info!(?total, "retention pass");
        }
        Ok(total)
    }

    /// Whether the periodic reputation round is due (and, if so, marks it done now).
    fn reputation_due(&self, now: Timestamp) -> bool {
        let mut last = self
            .last_reputation_round
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let every = chrono::TimeDelta::from_std(self.policy.reputation_every)
            .unwrap_or(chrono::TimeDelta::MAX);
        let due = last.is_none_or(|at| now - at >= every);
        if due {
            *last = Some(now);
        }
        due
    }

    /// Whether the periodic stake re-check is due (and, if so, marks it done now).
    fn stake_check_due(&self, now: Timestamp) -> bool {
        if self.stake_gate.is_none() {
            return false;
        }
        let mut last = self
            .last_stake_check
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|at| {
            (now - at)
                .to_std()
                .is_ok_and(|d| d >= self.policy.stake_recheck_every)
        });
        if due {
            *last = Some(now);
        }
        due
    }

    /// Writes the heartbeat summary when one is due and there is something to say: `from`
    /// (when the first heartbeat counted arrived), `to` (now), `heartbeats`, `nodes` (how
    /// many sent them), `nodes_by_status` (the whole deployment, from the store) and
    /// `coordinator_instance` (each coordinator summarises what it accepted).
    async fn summarise_heartbeats(&self, now: Timestamp) -> ServiceResult<bool> {
        let (since, per_node) = {
            let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            let Some(since) = tally.since else {
                return Ok(false);
            };
            let due = (now - since)
                .to_std()
                .is_ok_and(|d| d >= self.policy.heartbeat_summary_every);
            if !due {
                return Ok(false);
            }
            tally.since = None;
            (since, std::mem::take(&mut tally.per_node))
        };
        let heartbeats: u64 = per_node.values().sum();
        let mut by_status = serde_json::Map::new();
        for status in NodeStatus::ALL {
            let filter = NodeFilter::status(status);
            let total = self.store.count_nodes(&filter).await?;
            by_status.insert(status.to_string(), json!(total));
        }
        let event = NewEvent {
            topic: Topic::Workers,
            kind: "heartbeats_summary".to_string(),
            data: json!({
                "coordinator_instance": self.instance,
                "from": since,
                "to": now,
                "heartbeats": heartbeats,
                "nodes": per_node.len(),
                "nodes_by_status": by_status,
            }),
        };
        self.store.append_event(&event, now).await?;
        Ok(true)
    }
}
