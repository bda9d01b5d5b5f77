//! [`InMemoryStore`]: the whole state in process memory. Real and always compiled — for
//! embedding, demos and tests — but nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bitsage_core::chain::{ChainEvent, IndexerCursor};
use bitsage_core::crypto::Hash32;
use bitsage_core::event::{self, NewEvent, StoredEvent};
use bitsage_core::gpu::{GpuSample, ReportedCollector};
use bitsage_core::job::{
    ExpirySweep, JobFilter, JobRecord, JobResult, Lease, LeaseInfo, LeaseRef, NewJob,
    VerifiedCompletion,
};
use bitsage_core::ledger::{daily_totals, DailyEarnings, EarningEntry, EarningsTotal};
use bitsage_core::node::{Heartbeat, NewNode, NodeFilter, NodeRecord, StatusChange};
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::receipt::{Receipt, ReceiptFilter};
use bitsage_core::{ChainEventStore, JobQueue, NodeStore, ReceiptLedger, TelemetryStore};
use bitsage_core::{
    Error, EventLog, Inserted, JobId, JobStatus, JobStore, LeaseId, NodeId, ReceiptId, ReplayLog,
    Result, TimeWindow, Timestamp, Transition,
};

use crate::common::{
    apply_payer_effect, check_lease, complete, expiry_error, lease_until, new_job_record,
    new_node_record, paginate, payer_effect, settle_failure, settle_payer,
};
use crate::events::LocalEventBus;
use bitsage_core::funding::PayerAccount;
use bitsage_core::settlement::{
    Backlog, Epoch, EpochState, PendingSettlement, SettlementItem, SettlementLedger, SlashItem,
};
use bitsage_core::PayerLedger;

#[derive(Debug, Default)]
struct State {
    nodes: Vec<NodeRecord>,
    history: Vec<StatusChange>,
    heartbeats: HashMap<NodeId, Vec<Heartbeat>>,
    /// Per node, its latest accepted heartbeat (kept when raw heartbeats are deleted).
    latest_beat: HashMap<NodeId, Heartbeat>,
    /// The per-minute rollup: beats per (node, minute).
    minutes: BTreeMap<(NodeId, i64), u64>,
    timings: Vec<bitsage_core::timing::JobTiming>,
    facts: Vec<(NodeId, bitsage_core::reputation::NodeFact, Timestamp)>,
    gpu_minutes: BTreeMap<(NodeId, String, i64), bitsage_core::retention::GpuMinute>,
    maintenance: Vec<(NodeId, TimeWindow)>,
    samples: HashMap<NodeId, Vec<GpuSample>>,
    jobs: Vec<JobRecord>,
    receipts: Vec<Receipt>,
    earnings: Vec<EarningEntry>,
    events: BTreeMap<(String, String, u32), ChainEvent>,
    cursors: HashMap<String, IndexerCursor>,
    replay: HashMap<Hash32, Timestamp>,
    payers: HashMap<bitsage_core::WalletAddress, PayerAccount>,
    epochs: Vec<MemEpoch>,
    receipt_epochs: HashMap<ReceiptId, u64>,
    slashes: Vec<(SlashItem, Option<u64>)>,
    outbox: Vec<StoredEvent>,
    last_event_id: u64,
    /// Events of the write in progress: kept when it succeeds, dropped when it fails.
    pending: Vec<NewEvent>,
}

impl State {
    fn emit(&mut self, e: NewEvent) {
        self.pending.push(e);
    }

    /// Applies a job's move to its payer's books.
    fn account_job(&mut self, before: JobStatus, job: &JobRecord, at: Timestamp) -> Result<()> {
        let (Some(effect), Some(payer)) = (payer_effect(before, job), job.payer) else {
            return Ok(());
        };
        let account = self
            .payers
            .entry(payer)
            .or_insert_with(|| PayerAccount::empty(payer, at));
        apply_payer_effect(account, effect, job, at)
    }

    /// Puts an event in the outbox with the next id; returns the id.
    fn publish(&mut self, e: NewEvent, at: Timestamp) -> u64 {
        self.last_event_id += 1;
        let id = self.last_event_id;
        self.outbox.push(StoredEvent {
            id,
            topic: e.topic,
            kind: e.kind,
            at,
            data: e.data,
        });
        id
    }
}

/// An epoch's row: its state and which receipts and slashes it holds.
#[derive(Debug, Clone)]
struct MemEpoch {
    id: u64,
    state: EpochState,
    receipts: Vec<ReceiptId>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl State {
    fn settlement_item(&self, id: &ReceiptId) -> Result<SettlementItem> {
        let receipt = self
            .receipts
            .iter()
            .find(|r| r.body.id == *id)
            .cloned()
            .ok_or_else(|| Error::not_found("receipt", id))?;
        let payer = self
            .jobs
            .iter()
            .find(|j| j.spec.id == receipt.body.job_id)
            .and_then(|j| j.payer);
        let worker = self
            .nodes
            .iter()
            .find(|n| n.id == receipt.body.node_id)
            .map(|n| n.wallet)
            .ok_or_else(|| Error::not_found("node", &receipt.body.node_id))?;
        Ok(SettlementItem {
            receipt,
            payer,
            worker,
        })
    }

    fn epoch_view(&self, e: &MemEpoch) -> Result<Epoch> {
        Ok(Epoch {
            id: e.id,
            state: e.state.clone(),
            items: e
                .receipts
                .iter()
                .map(|r| self.settlement_item(r))
                .collect::<Result<_>>()?,
            slashes: self
                .slashes
                .iter()
                .filter(|(_, ep)| *ep == Some(e.id))
                .map(|(s, _)| s.clone())
                .collect(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        })
    }

    fn epoch_mut(&mut self, id: u64) -> Result<&mut MemEpoch> {
        self.epochs
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or_else(|| Error::not_found("epoch", id))
    }
}

/// A [`JobStore`] in process memory (one mutex; every method is atomic).
#[derive(Debug, Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
    bus: LocalEventBus,
    /// Accounts and the audit log (`memory_access`), apart from the job state: no method
    /// touches both.
    pub(crate) access: Mutex<crate::memory_access::AccessState>,
    /// Incidents and flags (`memory_ops`).
    pub(crate) ops: Mutex<crate::memory_ops::OpsState>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bus that wakes readers after this store committed events.
    pub fn event_bus(&self) -> LocalEventBus {
        self.bus.clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        // A poisoned lock means a panic mid-update in this process; the state may be torn.
        let mut guard = self
            .state
            .lock()
            .map_err(|_| Error::backend("memory", "store lock poisoned by an earlier panic"))?;
        let out = f(&mut guard);
        let pending = std::mem::take(&mut guard.pending);
        if out.is_ok() && !pending.is_empty() {
            let at = bitsage_core::time::now();
            for e in pending {
                guard.publish(e, at);
            }
            drop(guard);
            self.bus.notify();
        }
        out
    }
}

fn job_mut<'a>(s: &'a mut State, id: &JobId) -> Result<&'a mut JobRecord> {
    s.jobs
        .iter_mut()
        .find(|j| j.spec.id == *id)
        .ok_or_else(|| Error::not_found("job", id))
}

#[async_trait]
impl EventLog for InMemoryStore {
    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        self.with(|s| {
            let start = s.outbox.partition_point(|e| e.id <= after);
            Ok(s.outbox[start..]
                .iter()
                .take(limit as usize)
                .cloned()
                .collect())
        })
    }

    async fn last_event_id(&self) -> Result<u64> {
        self.with(|s| Ok(s.last_event_id))
    }

    async fn purge_events(&self, before: Timestamp) -> Result<u64> {
        self.with(|s| {
            let newest = s.outbox.last().map(|e| e.id);
            let n = s.outbox.len();
            s.outbox.retain(|e| e.at >= before || Some(e.id) == newest);
            Ok((n - s.outbox.len()) as u64)
        })
    }

    async fn append_event(&self, event: &NewEvent, at: Timestamp) -> Result<u64> {
        let id = self.with(|s| Ok(s.publish(event.clone(), at)))?;
        self.bus.notify();
        Ok(id)
    }
}

#[async_trait]
impl ReplayLog for InMemoryStore {
    async fn remember_message(&self, digest: &Hash32, keep_until: Timestamp) -> Result<bool> {
        self.with(|s| match s.replay.entry(*digest) {
            std::collections::hash_map::Entry::Occupied(_) => Ok(false),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(keep_until);
                Ok(true)
            }
        })
    }

    async fn purge_messages(&self, before: Timestamp) -> Result<u64> {
        self.with(|s| {
            let n = s.replay.len();
            s.replay.retain(|_, keep| *keep >= before);
            Ok((n - s.replay.len()) as u64)
        })
    }
}

#[async_trait]
impl JobStore for InMemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn settle_completion(&self, c: &VerifiedCompletion, now: Timestamp) -> Result<JobRecord> {
        c.check()?;
        c.entry.validate()?;
        self.with(|s| {
            // Check everything first, then change: all of it or none.
            let mut job = job_mut(s, &c.lease.job_id)?.clone();
            let before = job.status;
            let applied = c.already_applied_to(&job);
            let region = s
                .nodes
                .iter()
                .find(|n| n.id == c.lease.node_id)
                .and_then(|n| n.profile.region.clone());
            let timing = bitsage_core::timing::JobTiming::of(&job, now, c.verify_time, region);
            if !applied {
                complete(&mut job, &c.lease, &c.result, now)?;
            }
            let receipt = receipt_state(s, &c.receipt)?;
            let entry = entry_state(s, &c.entry)?;
            s.account_job(before, &job, now)?;
            *job_mut(s, &c.lease.job_id)? = job.clone();
            if !applied {
                s.emit(event::job_completed(&job));
            }
            if receipt == Inserted::New {
                s.receipts.push(c.receipt.clone());
                s.emit(event::receipt_issued(&c.receipt));
            }
            if entry == Inserted::New {
                s.earnings.push(c.entry.clone());
            }
            if let Some(timing) = timing.filter(|_| !applied) {
                s.timings.retain(|t| t.job_id != timing.job_id);
                s.timings.push(timing);
            }
            if !applied {
                s.facts.push((
                    c.lease.node_id.clone(),
                    bitsage_core::reputation::NodeFact::LeaseCompleted,
                    now,
                ));
            }
            Ok(job)
        })
    }
}

#[async_trait]
impl NodeStore for InMemoryStore {
    async fn create_node(&self, node: &NewNode) -> Result<NodeRecord> {
        self.with(|s| {
            if s.nodes.iter().any(|n| n.id == node.id) {
                return Err(Error::AlreadyExists {
                    what: "node",
                    id: node.id.to_string(),
                });
            }
            let rec = new_node_record(node);
            s.nodes.push(rec.clone());
            s.emit(event::node_registered(&rec));
            Ok(rec)
        })
    }

    async fn get_node(&self, id: &NodeId) -> Result<Option<NodeRecord>> {
        self.with(|s| Ok(s.nodes.iter().find(|n| n.id == *id).cloned()))
    }

    async fn silent_nodes(
        &self,
        status: bitsage_core::NodeStatus,
        before: Timestamp,
    ) -> Result<Vec<(NodeRecord, Timestamp)>> {
        self.with(|s| {
            let mut silent: Vec<(NodeRecord, Timestamp)> = s
                .nodes
                .iter()
                .filter(|n| n.status == status)
                .map(|n| {
                    let seen = s.latest_beat.get(&n.id).map_or(n.registered_at, |b| b.at);
                    (n.clone(), seen)
                })
                .filter(|(_, seen)| *seen < before)
                .collect();
            silent.sort_by(|a, b| (a.0.registered_at, &a.0.id).cmp(&(b.0.registered_at, &b.0.id)));
            Ok(silent)
        })
    }

    async fn list_nodes(&self, filter: &NodeFilter, page: PageRequest) -> Result<Page<NodeRecord>> {
        self.with(|s| {
            let mut all: Vec<NodeRecord> = s
                .nodes
                .iter()
                .filter(|n| filter.matches(n))
                .cloned()
                .collect();
            all.sort_by(|a, b| (a.registered_at, &a.id).cmp(&(b.registered_at, &b.id)));
            Ok(paginate(all, page))
        })
    }

    async fn apply_transition(
        &self,
        id: &NodeId,
        transition: &Transition,
        at: Timestamp,
    ) -> Result<NodeRecord> {
        self.with(|s| {
            let node = s
                .nodes
                .iter_mut()
                .find(|n| n.id == *id)
                .ok_or_else(|| Error::not_found("node", id))?;
            if node.status != transition.from {
                return Err(Error::Conflict(format!(
                    "node {id} is {}, not {}",
                    node.status, transition.from
                )));
            }
            node.status = transition.to;
            node.status_reason = transition.reason.clone();
            node.status_changed_at = at;
            let rec = node.clone();
            s.history.push(StatusChange {
                node_id: id.clone(),
                from: transition.from,
                to: transition.to,
                reason: transition.reason.clone(),
                at,
            });
            s.emit(event::node_status_changed(id, transition));
            Ok(rec)
        })
    }

    async fn set_wallet_proven(&self, id: &NodeId, at: Timestamp) -> Result<NodeRecord> {
        self.with(|s| {
            let node = s
                .nodes
                .iter_mut()
                .find(|n| n.id == *id)
                .ok_or_else(|| Error::not_found("node", id))?;
            node.wallet_proven_at = Some(at);
            Ok(node.clone())
        })
    }

    async fn set_node_profile(
        &self,
        id: &NodeId,
        profile: &bitsage_core::node::NodeProfile,
    ) -> Result<NodeRecord> {
        self.with(|s| {
            let node = s
                .nodes
                .iter_mut()
                .find(|n| n.id == *id)
                .ok_or_else(|| Error::not_found("node", id))?;
            node.profile = profile.clone();
            Ok(node.clone())
        })
    }

    async fn set_reputation(
        &self,
        id: &NodeId,
        reputation: &bitsage_core::reputation::Reputation,
    ) -> Result<()> {
        self.with(|s| {
            let node = s
                .nodes
                .iter_mut()
                .find(|n| n.id == *id)
                .ok_or_else(|| Error::not_found("node", id))?;
            node.reputation = Some(reputation.clone());
            Ok(())
        })
    }

    async fn set_drain(
        &self,
        id: &NodeId,
        drain: Option<&bitsage_core::node::Drain>,
        now: Timestamp,
    ) -> Result<NodeRecord> {
        self.with(|s| {
            let node = s
                .nodes
                .iter_mut()
                .find(|n| n.id == *id)
                .ok_or_else(|| Error::not_found("node", id))?;
            let previous = node.drain.take();
            node.drain = drain.cloned();
            let rec = node.clone();
            if let Some(p) = previous {
                // An earlier drain ends now (if it had not ended already).
                if let Some((_, w)) = s
                    .maintenance
                    .iter_mut()
                    .find(|(n, w)| n == id && w.from == p.since)
                {
                    w.to = w.to.min(now).max(w.from);
                }
            }
            if let Some(d) = drain {
                s.maintenance.push((
                    id.clone(),
                    TimeWindow {
                        from: d.since,
                        to: d.until,
                    },
                ));
            }
            Ok(rec)
        })
    }

    async fn maintenance_windows(
        &self,
        id: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<TimeWindow>> {
        self.with(|s| {
            let mut out: Vec<TimeWindow> = s
                .maintenance
                .iter()
                .filter(|(n, w)| n == id && w.from < window.to && w.to > window.from)
                .map(|(_, w)| *w)
                .collect();
            out.sort_by_key(|w| w.from);
            Ok(out)
        })
    }

    async fn set_status_reason(
        &self,
        id: &NodeId,
        status: bitsage_core::NodeStatus,
        reason: &str,
    ) -> Result<bool> {
        self.with(|s| {
            Ok(match s.nodes.iter_mut().find(|n| n.id == *id) {
                Some(n) if n.status == status && n.status_reason != reason => {
                    n.status_reason = reason.to_string();
                    true
                }
                _ => false,
            })
        })
    }

    async fn status_history(&self, id: &NodeId) -> Result<Vec<StatusChange>> {
        self.with(|s| {
            Ok(s.history
                .iter()
                .filter(|h| h.node_id == *id)
                .cloned()
                .collect())
        })
    }
}

#[async_trait]
impl TelemetryStore for InMemoryStore {
    async fn append_heartbeat(&self, hb: &Heartbeat) -> Result<bitsage_core::NodeStatus> {
        self.with(|s| {
            let Some(status) = s
                .nodes
                .iter()
                .find(|n| n.id == hb.node_id)
                .map(|n| n.status)
            else {
                return Err(Error::not_found("node", &hb.node_id));
            };
            if let Some(last) = s.latest_beat.get(&hb.node_id).map(|b| b.sequence) {
                if hb.sequence <= last {
                    return Err(Error::Conflict(format!(
                        "heartbeat sequence {} replayed (last {last})",
                        hb.sequence
                    )));
                }
            }
            let mut raw = hb.clone();
            raw.gpu_samples.clear();
            s.heartbeats
                .entry(hb.node_id.clone())
                .or_default()
                .push(raw.clone());
            s.latest_beat.insert(hb.node_id.clone(), raw);
            *s.minutes
                .entry((hb.node_id.clone(), bitsage_core::node::minute_of(hb.at)))
                .or_default() += 1;
            if !hb.gpu_samples.is_empty() {
                s.samples
                    .entry(hb.node_id.clone())
                    .or_default()
                    .extend_from_slice(&hb.gpu_samples);
            }
            Ok(status)
        })
    }

    async fn gpu_collector(&self, id: &NodeId) -> Result<Option<ReportedCollector>> {
        self.with(|s| {
            Ok(s.latest_beat.get(id).and_then(|b| {
                b.gpu_collector
                    .clone()
                    .map(|status| ReportedCollector { at: b.at, status })
            }))
        })
    }

    async fn last_seen(&self, id: &NodeId) -> Result<Option<Timestamp>> {
        self.with(|s| Ok(s.latest_beat.get(id).map(|b| b.at)))
    }

    async fn heartbeat_times(&self, id: &NodeId, window: TimeWindow) -> Result<Vec<Timestamp>> {
        self.with(|s| {
            let mut times: Vec<Timestamp> = s
                .heartbeats
                .get(id)
                .into_iter()
                .flatten()
                .map(|b| b.at)
                .filter(|t| window.contains(*t))
                .collect();
            times.sort_unstable();
            Ok(times)
        })
    }

    async fn heartbeat_coverage(
        &self,
        id: &NodeId,
        minutes: bitsage_core::node::MinuteRange,
    ) -> Result<bitsage_core::node::MinuteCoverage> {
        self.with(|s| {
            let mut c = bitsage_core::node::MinuteCoverage::default();
            if minutes.is_empty() {
                return Ok(c);
            }
            for (_, beats) in s
                .minutes
                .range((id.clone(), minutes.first)..=(id.clone(), minutes.last))
            {
                c.minutes_up += 1;
                c.heartbeats += beats;
            }
            Ok(c)
        })
    }

    async fn record_node_fact(
        &self,
        id: &NodeId,
        fact: bitsage_core::reputation::NodeFact,
        at: Timestamp,
        _detail: &str,
    ) -> Result<()> {
        self.with(|s| {
            s.facts.push((id.clone(), fact, at));
            Ok(())
        })
    }

    async fn node_facts(
        &self,
        id: &NodeId,
        window: TimeWindow,
    ) -> Result<bitsage_core::reputation::FactCounts> {
        self.with(|s| {
            let mut counts = bitsage_core::reputation::FactCounts::new();
            for (_, f, _) in s
                .facts
                .iter()
                .filter(|(n, _, at)| n == id && window.contains(*at))
            {
                *counts.entry(*f).or_default() += 1;
            }
            Ok(counts)
        })
    }

    async fn nodes_heartbeating(&self, minutes: bitsage_core::node::MinuteRange) -> Result<u64> {
        self.with(|s| {
            let nodes: std::collections::HashSet<&NodeId> = s
                .minutes
                .keys()
                .filter(|(_, m)| (minutes.first..=minutes.last).contains(m))
                .map(|(n, _)| n)
                .collect();
            Ok(nodes.len() as u64)
        })
    }

    async fn job_timings(
        &self,
        filter: &bitsage_core::timing::TimingFilter,
    ) -> Result<Vec<bitsage_core::timing::JobTiming>> {
        self.with(|s| {
            let mut out: Vec<_> = s
                .timings
                .iter()
                .filter(|t| filter.matches(t))
                .cloned()
                .collect();
            out.sort_by_key(|t| std::cmp::Reverse((t.completed_at, t.job_id)));
            out.truncate(filter.limit.min(bitsage_core::timing::MAX_TIMINGS) as usize);
            Ok(out)
        })
    }

    async fn append_gpu_samples(&self, node: &NodeId, samples: &[GpuSample]) -> Result<()> {
        self.with(|s| {
            if !s.nodes.iter().any(|n| n.id == *node) {
                return Err(Error::not_found("node", node));
            }
            s.samples
                .entry(node.clone())
                .or_default()
                .extend_from_slice(samples);
            Ok(())
        })
    }

    async fn latest_gpu_samples(&self, node: &NodeId) -> Result<Vec<GpuSample>> {
        self.with(|s| {
            let mut latest: BTreeMap<&str, &GpuSample> = BTreeMap::new();
            for smp in s.samples.get(node).into_iter().flatten() {
                let slot = latest.entry(smp.uuid.as_str()).or_insert(smp);
                if smp.at >= slot.at {
                    *slot = smp;
                }
            }
            Ok(latest.into_values().cloned().collect())
        })
    }

    async fn gpu_samples(&self, node: &NodeId, window: TimeWindow) -> Result<Vec<GpuSample>> {
        self.with(|s| {
            let mut out: Vec<GpuSample> = s
                .samples
                .get(node)
                .into_iter()
                .flatten()
                .filter(|smp| window.contains(smp.at))
                .cloned()
                .collect();
            out.sort_by(|a, b| (a.at, &a.uuid).cmp(&(b.at, &b.uuid)));
            Ok(out)
        })
    }

    async fn apply_retention(
        &self,
        cut: &bitsage_core::retention::RetentionCutoffs,
    ) -> Result<bitsage_core::retention::RetentionReport> {
        use bitsage_core::node::minute_of;
        self.with(|s| {
            let mut report = bitsage_core::retention::RetentionReport::default();
            // Roll up, then drop, at most one batch of old samples.
            let mut old: Vec<(NodeId, GpuSample)> = Vec::new();
            for (node, samples) in s.samples.iter_mut() {
                let room = bitsage_core::ports::RETENTION_BATCH as usize - old.len();
                if room == 0 {
                    break;
                }
                let mut kept = Vec::with_capacity(samples.len());
                for smp in samples.drain(..) {
                    if smp.at < cut.raw_gpu_samples
                        && old.len() < bitsage_core::ports::RETENTION_BATCH as usize
                    {
                        old.push((node.clone(), smp));
                    } else {
                        kept.push(smp);
                    }
                }
                *samples = kept;
            }
            report.gpu_samples = old.len() as u64;
            for m in bitsage_core::retention::roll_up(old.iter().map(|(n, smp)| (n, smp))) {
                s.gpu_minutes
                    .entry((m.node_id.clone(), m.uuid.clone(), m.minute))
                    .and_modify(|e| e.merge(&m))
                    .or_insert(m);
            }
            for beats in s.heartbeats.values_mut() {
                let n = beats.len();
                beats.retain(|b| b.at >= cut.raw_heartbeats);
                report.heartbeats += (n - beats.len()) as u64;
            }
            let first = minute_of(cut.minute_rollups);
            let n = s.minutes.len() + s.gpu_minutes.len();
            s.minutes.retain(|(_, m), _| *m >= first);
            s.gpu_minutes.retain(|(_, _, m), _| *m >= first);
            report.rollups = (n - s.minutes.len() - s.gpu_minutes.len()) as u64;
            let n = s.maintenance.len();
            s.maintenance.retain(|(_, w)| w.to >= cut.minute_rollups);
            report.rollups += (n - s.maintenance.len()) as u64;
            let n = s.timings.len();
            s.timings.retain(|t| t.completed_at >= cut.job_timings);
            report.job_timings = (n - s.timings.len()) as u64;
            let n = s.facts.len();
            s.facts.retain(|(_, _, at)| *at >= cut.node_facts);
            report.node_facts = (n - s.facts.len()) as u64;
            Ok(report)
        })
    }

    async fn gpu_minutes(
        &self,
        node: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<bitsage_core::retention::GpuMinute>> {
        let r = bitsage_core::node::counted_minutes(window, window.from);
        self.with(|s| {
            let mut out: Vec<_> = s
                .gpu_minutes
                .values()
                .filter(|m| m.node_id == *node && m.minute >= r.first && m.minute <= r.last)
                .cloned()
                .collect();
            out.sort_by(|a, b| (a.minute, &a.uuid).cmp(&(b.minute, &b.uuid)));
            Ok(out)
        })
    }
}

#[async_trait]
impl JobQueue for InMemoryStore {
    async fn enqueue_job(&self, job: &NewJob) -> Result<JobRecord> {
        job.spec.kind.validate()?;
        self.with(|s| {
            if s.jobs.iter().any(|j| j.spec.id == job.spec.id) {
                return Err(Error::AlreadyExists {
                    what: "job",
                    id: job.spec.id.to_string(),
                });
            }
            let rec = new_job_record(job)?;
            if let Some(f) = &job.funding {
                let mut account = s
                    .payers
                    .get(&f.payer)
                    .cloned()
                    .unwrap_or_else(|| PayerAccount::empty(f.payer, job.submitted_at));
                account.reserve(job.payment, &f.limit)?;
                account.updated_at = job.submitted_at;
                s.payers.insert(f.payer, account);
            }
            s.jobs.push(rec.clone());
            s.emit(event::job_queued(&rec));
            Ok(rec)
        })
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<JobRecord>> {
        self.with(|s| Ok(s.jobs.iter().find(|j| j.spec.id == *id).cloned()))
    }

    async fn list_jobs(&self, filter: &JobFilter, page: PageRequest) -> Result<Page<JobRecord>> {
        self.with(|s| {
            let mut all: Vec<JobRecord> = s
                .jobs
                .iter()
                .filter(|j| filter.status.is_none_or(|st| j.status == st))
                .filter(|j| {
                    filter.node.as_ref().is_none_or(|n| {
                        j.completed_by.as_ref() == Some(n)
                            || j.lease.as_ref().map(|l| &l.node_id) == Some(n)
                    })
                })
                .cloned()
                .collect();
            all.sort_by_key(|j| (j.submitted_at, j.spec.id));
            Ok(paginate(all, page))
        })
    }

    async fn lease_job(
        &self,
        node: &NodeId,
        now: Timestamp,
        duration: Duration,
    ) -> Result<Option<Lease>> {
        let expires_at = lease_until(now, duration)?;
        self.with(|s| {
            let Some(job) = s
                .jobs
                .iter_mut()
                .filter(|j| j.status == JobStatus::Queued)
                .min_by_key(|j| (j.submitted_at, j.spec.id))
            else {
                return Ok(None);
            };
            let info = LeaseInfo {
                lease_id: LeaseId::new(),
                node_id: node.clone(),
                leased_at: now,
                expires_at,
            };
            job.status = JobStatus::Leased;
            job.attempts += 1;
            job.lease = Some(info.clone());
            job.updated_at = now;
            let lease = Lease {
                spec: job.spec.clone(),
                payment: job.payment,
                attempt: job.attempts,
                lease: info,
            };
            let e = event::job_leased(job);
            s.emit(e);
            Ok(Some(lease))
        })
    }

    async fn sweep_expired_leases(&self, now: Timestamp) -> Result<ExpirySweep> {
        self.with(|s| {
            let mut sweep = ExpirySweep::default();
            let mut expired: Vec<&mut JobRecord> = s
                .jobs
                .iter_mut()
                .filter(|j| {
                    j.status == JobStatus::Leased
                        && j.lease.as_ref().is_some_and(|l| l.expires_at < now)
                })
                .collect();
            expired.sort_by_key(|j| (j.submitted_at, j.spec.id));
            let mut events = Vec::new();
            let mut moved = Vec::new();
            for job in expired {
                let reason = expiry_error(job.lease.as_ref());
                let before = job.status;
                settle_failure(job, reason, now, &mut sweep);
                events.push(event::job_attempt_failed(job));
                moved.push((before, job.clone()));
            }
            s.pending.extend(events);
            for (before, job) in &moved {
                s.account_job(*before, job, now)?;
            }
            Ok(sweep)
        })
    }

    async fn complete_job(
        &self,
        lease: &LeaseRef,
        result: &JobResult,
        now: Timestamp,
    ) -> Result<JobRecord> {
        self.with(|s| {
            let job = job_mut(s, &lease.job_id)?;
            let before = job.status;
            complete(job, lease, result, now)?;
            let done = job.clone();
            s.account_job(before, &done, now)?;
            s.emit(event::job_completed(&done));
            Ok(done)
        })
    }

    async fn fail_job(&self, lease: &LeaseRef, reason: &str, now: Timestamp) -> Result<JobRecord> {
        self.with(|s| {
            let job = job_mut(s, &lease.job_id)?;
            check_lease(job, lease, now)?;
            let before = job.status;
            settle_failure(job, reason.to_string(), now, &mut ExpirySweep::default());
            let done = job.clone();
            s.account_job(before, &done, now)?;
            s.emit(event::job_attempt_failed(&done));
            Ok(done)
        })
    }
}

#[async_trait]
impl PayerLedger for InMemoryStore {
    async fn set_payer(
        &self,
        account: &bitsage_core::WalletAddress,
        public_key: Option<&bitsage_core::wallet::FeltHex>,
        credit: bitsage_core::TokenAmount,
        at: Timestamp,
    ) -> Result<PayerAccount> {
        self.with(|s| {
            let rec = s
                .payers
                .entry(*account)
                .or_insert_with(|| PayerAccount::empty(*account, at));
            rec.credit = credit;
            rec.public_key = public_key.cloned();
            rec.updated_at = at;
            Ok(rec.clone())
        })
    }

    async fn payer(&self, account: &bitsage_core::WalletAddress) -> Result<Option<PayerAccount>> {
        self.with(|s| Ok(s.payers.get(account).cloned()))
    }
}

#[async_trait]
impl SettlementLedger for InMemoryStore {
    async fn next_epoch(&self, max_items: u32, now: Timestamp) -> Result<Option<Epoch>> {
        self.with(|s| {
            if let Some(open) = s
                .epochs
                .iter()
                .find(|e| !matches!(e.state, EpochState::Accepted { .. }))
            {
                return s.epoch_view(open).map(Some);
            }
            let mut waiting: Vec<&Receipt> = s
                .receipts
                .iter()
                .filter(|r| !s.receipt_epochs.contains_key(&r.body.id))
                .collect();
            waiting.sort_by_key(|r| (r.body.completed_at, r.body.id));
            let ids: Vec<ReceiptId> = waiting
                .iter()
                .take(max_items as usize)
                .map(|r| r.body.id)
                .collect();
            let slashes_waiting = s.slashes.iter().any(|(_, e)| e.is_none());
            if ids.is_empty() && !slashes_waiting {
                return Ok(None);
            }
            let id = s.epochs.iter().map(|e| e.id).max().unwrap_or(0) + 1;
            for r in &ids {
                s.receipt_epochs.insert(*r, id);
            }
            for (_, e) in s.slashes.iter_mut().filter(|(_, e)| e.is_none()) {
                *e = Some(id);
            }
            let epoch = MemEpoch {
                id,
                state: EpochState::Pending,
                receipts: ids,
                created_at: now,
                updated_at: now,
            };
            let view = s.epoch_view(&epoch)?;
            s.epochs.push(epoch);
            Ok(Some(view))
        })
    }

    async fn unfinished_epoch(&self) -> Result<Option<Epoch>> {
        self.with(|s| {
            match s
                .epochs
                .iter()
                .find(|e| !matches!(e.state, EpochState::Accepted { .. }))
            {
                Some(e) => s.epoch_view(e).map(Some),
                None => Ok(None),
            }
        })
    }

    async fn epoch_sent(&self, id: u64, tx_hash: &str, now: Timestamp) -> Result<()> {
        self.with(|s| {
            let e = s.epoch_mut(id)?;
            if matches!(e.state, EpochState::Accepted { .. }) {
                return Err(Error::Conflict(format!("epoch {id} is already accepted")));
            }
            e.state = EpochState::Sent {
                tx_hash: tx_hash.to_string(),
            };
            e.updated_at = now;
            Ok(())
        })
    }

    async fn epoch_accepted(
        &self,
        id: u64,
        tx_hash: &str,
        block: u64,
        now: Timestamp,
    ) -> Result<()> {
        self.with(|s| {
            let e = s.epoch_mut(id)?.clone();
            if matches!(e.state, EpochState::Accepted { .. }) {
                return Ok(());
            }
            let view = s.epoch_view(&e)?;
            let mut books = s.payers.clone();
            for item in &view.items {
                if let Some(payer) = item.payer {
                    let account = books
                        .entry(payer)
                        .or_insert_with(|| PayerAccount::empty(payer, now));
                    settle_payer(account, item.receipt.body.payment, now)?;
                }
            }
            s.payers = books;
            let e = s.epoch_mut(id)?;
            e.state = EpochState::Accepted {
                tx_hash: tx_hash.to_string(),
                block,
            };
            e.updated_at = now;
            Ok(())
        })
    }

    async fn epoch_failed(&self, id: u64, reason: &str, now: Timestamp) -> Result<()> {
        self.with(|s| {
            let e = s.epoch_mut(id)?;
            if matches!(e.state, EpochState::Accepted { .. }) {
                return Err(Error::Conflict(format!("epoch {id} is already accepted")));
            }
            e.state = EpochState::Failed {
                reason: reason.to_string(),
            };
            e.updated_at = now;
            Ok(())
        })
    }

    async fn epoch(&self, id: u64) -> Result<Option<Epoch>> {
        self.with(|s| match s.epochs.iter().find(|e| e.id == id) {
            Some(e) => s.epoch_view(e).map(Some),
            None => Ok(None),
        })
    }

    async fn receipt_epoch(&self, receipt: &ReceiptId) -> Result<Option<u64>> {
        self.with(|s| Ok(s.receipt_epochs.get(receipt).copied()))
    }

    async fn record_slash(&self, slash: &SlashItem) -> Result<()> {
        self.with(|s| {
            s.slashes.push((slash.clone(), None));
            Ok(())
        })
    }

    async fn pending_settlement(&self, node: &NodeId) -> Result<PendingSettlement> {
        self.with(|s| {
            let accepted = |r: &Receipt| {
                s.receipt_epochs.get(&r.body.id).is_some_and(|id| {
                    s.epochs
                        .iter()
                        .any(|e| e.id == *id && matches!(e.state, EpochState::Accepted { .. }))
                })
            };
            PendingSettlement::of(
                s.receipts
                    .iter()
                    .filter(|r| r.body.node_id == *node && !accepted(r)),
            )
        })
    }

    async fn settlement_backlog(&self) -> Result<Backlog> {
        self.with(|s| {
            let settled = |r: &Receipt| {
                s.receipt_epochs.get(&r.body.id).is_some_and(|id| {
                    s.epochs
                        .iter()
                        .any(|e| e.id == *id && matches!(e.state, EpochState::Accepted { .. }))
                })
            };
            let waiting: Vec<&Receipt> = s.receipts.iter().filter(|r| !settled(r)).collect();
            Ok(Backlog {
                receipts: waiting.len() as u64,
                oldest: waiting.iter().map(|r| r.body.completed_at).min(),
                slashes: s.slashes.iter().filter(|(_, e)| e.is_none()).count() as u64,
            })
        })
    }
}

#[async_trait]
impl ReceiptLedger for InMemoryStore {
    async fn insert_receipt(&self, receipt: &Receipt) -> Result<Inserted> {
        self.with(|s| {
            let inserted = receipt_state(s, receipt)?;
            if inserted == Inserted::New {
                s.receipts.push(receipt.clone());
                s.emit(event::receipt_issued(receipt));
            }
            Ok(inserted)
        })
    }

    async fn get_receipt(&self, id: &ReceiptId) -> Result<Option<Receipt>> {
        self.with(|s| Ok(s.receipts.iter().find(|r| r.body.id == *id).cloned()))
    }

    async fn list_receipts(
        &self,
        filter: &ReceiptFilter,
        page: PageRequest,
    ) -> Result<Page<Receipt>> {
        self.with(|s| {
            let mut all: Vec<Receipt> = s
                .receipts
                .iter()
                .filter(|r| filter.node.as_ref().is_none_or(|n| r.body.node_id == *n))
                .filter(|r| filter.kind.as_ref().is_none_or(|k| r.body.kind == *k))
                .filter(|r| filter.job.as_ref().is_none_or(|j| r.body.job_id == *j))
                .filter(|r| {
                    filter
                        .window
                        .is_none_or(|w| w.contains(r.body.completed_at))
                })
                .cloned()
                .collect();
            all.sort_by(|a, b| {
                (a.body.completed_at, a.body.id).cmp(&(b.body.completed_at, b.body.id))
            });
            if filter.newest_first {
                all.reverse();
            }
            Ok(paginate(all, page))
        })
    }

    async fn credit_earning(&self, entry: &EarningEntry) -> Result<Inserted> {
        entry.validate()?;
        self.with(|s| {
            let inserted = entry_state(s, entry)?;
            if inserted == Inserted::New {
                s.earnings.push(entry.clone());
            }
            Ok(inserted)
        })
    }

    async fn earnings_total(
        &self,
        node: &NodeId,
        window: Option<TimeWindow>,
    ) -> Result<EarningsTotal> {
        self.with(|s| {
            let mut total = EarningsTotal::default();
            for e in s.earnings.iter().filter(|e| e.node_id == *node) {
                if window.is_none_or(|w| w.contains(e.credited_at)) {
                    total.add(e)?;
                }
            }
            Ok(total)
        })
    }

    async fn earnings_by_day(
        &self,
        node: &NodeId,
        window: TimeWindow,
    ) -> Result<Vec<DailyEarnings>> {
        self.with(|s| {
            daily_totals(
                s.earnings
                    .iter()
                    .filter(|e| e.node_id == *node && window.contains(e.credited_at)),
            )
        })
    }
}

#[async_trait]
impl ChainEventStore for InMemoryStore {
    async fn append_chain_events(
        &self,
        indexer: &str,
        events: &[ChainEvent],
        cursor: &IndexerCursor,
    ) -> Result<u64> {
        self.with(|s| {
            let mut new = 0;
            for e in events {
                let key = (e.block_hash.clone(), e.tx_hash.clone(), e.event_index);
                if let std::collections::btree_map::Entry::Vacant(v) = s.events.entry(key) {
                    v.insert(e.clone());
                    s.pending.push(event::chain_event_indexed(e));
                    new += 1;
                }
            }
            s.cursors.insert(indexer.to_string(), cursor.clone());
            Ok(new)
        })
    }

    async fn chain_events(&self, from_block: u64, to_block: u64) -> Result<Vec<ChainEvent>> {
        self.with(|s| {
            let mut out: Vec<ChainEvent> = s
                .events
                .values()
                .filter(|e| (from_block..=to_block).contains(&e.block_number))
                .cloned()
                .collect();
            out.sort_by(|a, b| {
                (a.block_number, &a.tx_hash, a.event_index).cmp(&(
                    b.block_number,
                    &b.tx_hash,
                    b.event_index,
                ))
            });
            Ok(out)
        })
    }

    async fn rewind_chain(&self, indexer: &str, to: &IndexerCursor) -> Result<u64> {
        self.with(|s| {
            let before = s.events.len();
            s.events.retain(|_, e| e.block_number <= to.block_number);
            s.cursors.insert(indexer.to_string(), to.clone());
            let deleted = (before - s.events.len()) as u64;
            s.emit(event::chain_rewound(indexer, to.block_number, deleted));
            Ok(deleted)
        })
    }

    async fn indexer_cursor(&self, indexer: &str) -> Result<Option<IndexerCursor>> {
        self.with(|s| Ok(s.cursors.get(indexer).cloned()))
    }
}

/// Whether `receipt` is new, already stored identically, or conflicts with a stored one.
fn receipt_state(s: &State, receipt: &Receipt) -> Result<Inserted> {
    match s.receipts.iter().find(|r| r.body.id == receipt.body.id) {
        Some(existing) if existing == receipt => Ok(Inserted::AlreadyPresent),
        Some(_) => Err(Error::AlreadyExists {
            what: "receipt",
            id: receipt.body.id.to_string(),
        }),
        None => Ok(Inserted::New),
    }
}

/// Whether `entry` is new, already stored identically, or conflicts with a stored one.
fn entry_state(s: &State, entry: &EarningEntry) -> Result<Inserted> {
    match s.earnings.iter().find(|e| e.id == entry.id) {
        Some(existing) if existing == entry => Ok(Inserted::AlreadyPresent),
        Some(_) => Err(Error::AlreadyExists {
            what: "ledger entry",
            id: entry.id.to_string(),
        }),
        None => Ok(Inserted::New),
    }
}
