//! What the coordinator's use cases count while they run — heartbeats accepted and refused,
//! proofs verified and rejected (why, how long verification took, per node), fraud caught, the
//! stake of the nodes' wallets — and how long each chain JSON-RPC call took. Plain atomics and
//! small maps a transport reads at scrape time (`bitsage-http` renders them on `/metrics`);
//! no metrics library and no exposition format here, so the core stays free of both.
//!
//! These are **this process's** counts since it started (Prometheus sums them over the
//! coordinators of a deployment, and handles the reset after a restart); nothing here is
//! state another coordinator needs.
//!
//! | field | kind | where it is counted |
//! |---|---|---|
//! | [`Telemetry::heartbeats`] | counters (accepted / rejected) | the heartbeat use case |
//! | [`Telemetry::proofs_verified`] | counter | a probe's proof verified; a leased job's proof verified and its receipt matching it |
//! | [`Telemetry::proofs_rejected`] | counters by [`ProofRejection`] | the completion use case |
//! | [`Telemetry::verification`] | histogram, seconds ([`VERIFICATION_BUCKETS`]) | every verification of a completion's proof, whatever its outcome |
//! | [`Telemetry::node_outcomes`] | counters per node, verified / rejected (at most [`MAX_TRACKED_NODES`] nodes, then [`OTHER_NODE`]) | the completion use case |
//! | [`Telemetry::fraud`] | counters by [`FraudKind`] | a node quarantined for cheating |
//! | [`Telemetry::total_staked`] | last known value | the periodic stake re-check |
//! | [`chain_rpc`] (process-wide) | histograms per JSON-RPC method ([`CHAIN_RPC_BUCKETS`]) | the Starknet clients of `bitsage-chain` |

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::service::Coordinator;
use crate::{NodeId, TokenAmount};

/// Most nodes [`Telemetry::node_outcomes`] keeps a series for: outcomes of nodes first seen
/// after that many are added up under [`OTHER_NODE`], so memory (and the scrape) stay bounded
/// — about 100 bytes a node, 10 MB at the bound.
pub const MAX_TRACKED_NODES: usize = 100_000;

/// The node label of outcomes beyond [`MAX_TRACKED_NODES`] (a real node named `other` shares
/// that series).
pub const OTHER_NODE: &str = "other";

/// Upper bounds (seconds) of the proof-verification histogram: 1 ms to 30 s.
pub const VERIFICATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds (seconds) of the chain JSON-RPC histograms: 5 ms to 30 s.
pub const CHAIN_RPC_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Most distinct method names [`chain_rpc`] keeps (the JSON-RPC specification has about 30);
/// further names are counted under `other`.
pub const MAX_RPC_METHODS: usize = 64;

/// A histogram of durations over fixed upper bounds, lock-free.
#[derive(Debug)]
pub struct DurationHistogram {
    bounds: &'static [f64],
    /// One counter per bound, then one for observations above the last bound.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// What a [`DurationHistogram`] holds at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations in that bucket)` — each bucket's own count, not
    /// cumulative; observations above the last bound are only in `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (always at least the sum of `buckets`).
    pub count: u64,
    /// The sum of the observations, seconds.
    pub sum_seconds: f64,
}

impl DurationHistogram {
    /// An empty histogram over `bounds` (ascending, seconds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.partition_point(|b| *b < secs);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts now. `count` is the sum of the buckets read, so a concurrent observation
    /// never makes the buckets add up to more than the count.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            buckets: self
                .bounds
                .iter()
                .copied()
                .zip(counts.iter().copied())
                .collect(),
            count: counts.iter().sum(),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Why a completion's proof was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProofRejection {
    /// The coordinator's verifier refused the proof.
    InvalidProof,
    /// The proof verified, but the node's receipt contradicts it (output or proof hash).
    ReceiptMismatch,
    /// The node's signature on its receipt does not verify (the proof was not even checked).
    BadReceiptSignature,
}

impl ProofRejection {
    /// Every reason.
    pub const ALL: [ProofRejection; 3] = [
        ProofRejection::InvalidProof,
        ProofRejection::ReceiptMismatch,
        ProofRejection::BadReceiptSignature,
    ];

    /// The label value: `invalid_proof`, `receipt_mismatch`, `bad_receipt_signature`.
    pub fn label(self) -> &'static str {
        match self {
            ProofRejection::InvalidProof => "invalid_proof",
            ProofRejection::ReceiptMismatch => "receipt_mismatch",
            ProofRejection::BadReceiptSignature => "bad_receipt_signature",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a node was quarantined as a cheat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FraudKind {
    /// It submitted a proof the verifier refused.
    InvalidProof,
    /// It signed a receipt with a signature that does not verify.
    BadSignature,
}

impl FraudKind {
    /// Every kind.
    pub const ALL: [FraudKind; 2] = [FraudKind::InvalidProof, FraudKind::BadSignature];

    /// The label value: `invalid_proof`, `bad_signature`.
    pub fn label(self) -> &'static str {
        match self {
            FraudKind::InvalidProof => "invalid_proof",
            FraudKind::BadSignature => "bad_signature",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One node's verification outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeOutcomes {
    /// Completions whose proof was accepted.
    pub verified: u64,
    /// Completions whose proof was rejected (any [`ProofRejection`]).
    pub rejected: u64,
}

/// Heartbeats counted by the heartbeat use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartbeatCounts {
    /// Accepted (stored).
    pub accepted: u64,
    /// Refused (unknown node, bad signature, replay, invalid content, ...).
    pub rejected: u64,
}

/// The coordinator's counters (see the [module documentation](self)). Owned by the
/// [`Coordinator`] as an `Arc` ([`Coordinator::telemetry`]); every method takes `&self`.
#[derive(Debug)]
pub struct Telemetry {
    heartbeats_accepted: AtomicU64,
    heartbeats_rejected: AtomicU64,
    proofs_verified: AtomicU64,
    proofs_rejected: [AtomicU64; ProofRejection::ALL.len()],
    fraud: [AtomicU64; FraudKind::ALL.len()],
    verification: DurationHistogram,
    node_outcomes: Mutex<HashMap<String, NodeOutcomes>>,
    total_staked: Mutex<Option<TokenAmount>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            heartbeats_accepted: AtomicU64::new(0),
            heartbeats_rejected: AtomicU64::new(0),
            proofs_verified: AtomicU64::new(0),
            proofs_rejected: Default::default(),
            fraud: Default::default(),
            verification: DurationHistogram::new(&VERIFICATION_BUCKETS),
            node_outcomes: Mutex::new(HashMap::new()),
            total_staked: Mutex::new(None),
        }
    }
}

impl Telemetry {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts an accepted heartbeat.
    pub fn heartbeat_accepted(&self) {
        self.heartbeats_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused heartbeat.
    pub fn heartbeat_rejected(&self) {
        self.heartbeats_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Heartbeats accepted and refused so far.
    pub fn heartbeats(&self) -> HeartbeatCounts {
        HeartbeatCounts {
            accepted: self.heartbeats_accepted.load(Ordering::Relaxed),
            rejected: self.heartbeats_rejected.load(Ordering::Relaxed),
        }
    }

    /// Records how long one verification of a proof took (whatever its outcome).
    pub fn observe_verification(&self, took: Duration) {
        self.verification.observe(took);
    }

    /// The verification durations so far.
    pub fn verification(&self) -> HistogramSnapshot {
        self.verification.snapshot()
    }

    /// Counts a completion of `node` whose proof was accepted.
    pub fn proof_verified(&self, node: &NodeId) {
        self.proofs_verified.fetch_add(1, Ordering::Relaxed);
        self.with_node(node, |o| o.verified += 1);
    }

    /// Counts a completion of `node` whose proof was not accepted, and why.
    pub fn proof_rejected(&self, node: &NodeId, why: ProofRejection) {
        self.proofs_rejected[why.index()].fetch_add(1, Ordering::Relaxed);
        self.with_node(node, |o| o.rejected += 1);
    }

    /// Counts a node quarantined as a cheat.
    pub fn fraud_detected(&self, kind: FraudKind) {
        self.fraud[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Proofs accepted so far.
    pub fn proofs_verified(&self) -> u64 {
        self.proofs_verified.load(Ordering::Relaxed)
    }

    /// Proofs rejected so far, for every reason (zeros included).
    pub fn proofs_rejected(&self) -> [(ProofRejection, u64); ProofRejection::ALL.len()] {
        ProofRejection::ALL.map(|r| (r, self.proofs_rejected[r.index()].load(Ordering::Relaxed)))
    }

    /// Nodes quarantined as cheats so far, for every kind (zeros included).
    pub fn fraud(&self) -> [(FraudKind, u64); FraudKind::ALL.len()] {
        FraudKind::ALL.map(|k| (k, self.fraud[k.index()].load(Ordering::Relaxed)))
    }

    /// Every node's outcomes (at most [`MAX_TRACKED_NODES`] + [`OTHER_NODE`]), by node id.
    pub fn node_outcomes(&self) -> BTreeMap<String, NodeOutcomes> {
        let map = self.node_outcomes.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Records the total stake of the nodes' wallets (as the stake re-check last read it).
    pub fn set_total_staked(&self, total: TokenAmount) {
        *self.total_staked.lock().unwrap_or_else(|p| p.into_inner()) = Some(total);
    }

    /// The total stake of the active and stale nodes' distinct wallets, exact, as of the last
    /// stake re-check that read every one of them; `None` before one (or without a chain).
    pub fn total_staked(&self) -> Option<TokenAmount> {
        *self.total_staked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_node(&self, node: &NodeId, f: impl FnOnce(&mut NodeOutcomes)) {
        let mut map = self.node_outcomes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = map.get_mut(node.as_str()) {
            f(o);
            return;
        }
        let key = if map.len() < MAX_TRACKED_NODES {
            node.as_str()
        } else {
            OTHER_NODE
        };
        f(map.entry(key.to_string()).or_default());
    }
}

impl Coordinator {
    /// This coordinator's counters ([`Telemetry`]), shared by its clones.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }
}

/// Durations of JSON-RPC calls, by method (see [`chain_rpc`]).
#[derive(Debug)]
pub struct RpcTimings {
    by_method: Mutex<BTreeMap<String, Arc<DurationHistogram>>>,
}

static CHAIN_RPC: RpcTimings = RpcTimings {
    by_method: Mutex::new(BTreeMap::new()),
};

/// The process-wide timings of the chain JSON-RPC calls this process made (every Starknet
/// client of `bitsage-chain` records into it). Process-wide because the clients are built in
/// many places and a process talks to one chain; a registry-free static keeps `bitsage-chain`
/// and `bitsage-http` apart.
pub fn chain_rpc() -> &'static RpcTimings {
    &CHAIN_RPC
}

impl RpcTimings {
    /// Records one call of `method` that took `took` (answered or failed).
    pub fn observe(&self, method: &str, took: Duration) {
        let histogram =
            {
                let mut map = self.by_method.lock().unwrap_or_else(|p| p.into_inner());
                match map.get(method) {
                    Some(h) => Arc::clone(h),
                    None => {
                        let key = if map.len() < MAX_RPC_METHODS {
                            method
                        } else {
                            "other"
                        };
                        Arc::clone(map.entry(key.to_string()).or_insert_with(|| {
                            Arc::new(DurationHistogram::new(&CHAIN_RPC_BUCKETS))
                        }))
                    }
                }
            };
        histogram.observe(took);
    }

    /// Every method's durations so far, by method name.
    pub fn snapshot(&self) -> Vec<(String, HistogramSnapshot)> {
        let map = self.by_method.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(m, h)| (m.clone(), h.snapshot())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_each_observation_once() {
        let h = DurationHistogram::new(&VERIFICATION_BUCKETS);
        h.observe(Duration::from_micros(500)); // ≤ 1 ms
        h.observe(Duration::from_millis(1)); // ≤ 1 ms (bounds are inclusive)
        h.observe(Duration::from_millis(700)); // ≤ 1 s
        h.observe(Duration::from_secs(60)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.001, 2));
        assert_eq!(s.buckets[9], (1.0, 1));
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        assert!((s.sum_seconds - 60.7015).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn per_node_outcomes_are_bounded() {
        let t = Telemetry::new();
        for i in 0..MAX_TRACKED_NODES + 5 {
            let id = NodeId::parse(&format!("n{i}")).unwrap();
            t.proof_verified(&id);
        }
        let id = NodeId::parse("n0").unwrap();
        t.proof_rejected(&id, ProofRejection::InvalidProof);
        let map = t.node_outcomes();
        assert_eq!(map.len(), MAX_TRACKED_NODES + 1);
        assert_eq!(map[OTHER_NODE].verified, 5);
        assert_eq!(
            map["n0"],
            NodeOutcomes {
                verified: 1,
                rejected: 1
            }
        );
        assert_eq!(t.proofs_verified(), MAX_TRACKED_NODES as u64 + 5);
        assert_eq!(t.proofs_rejected()[0], (ProofRejection::InvalidProof, 1));
    }

    #[test]
    fn rpc_methods_are_timed_by_name() {
        let t = RpcTimings {
            by_method: Mutex::new(BTreeMap::new()),
        };
        t.observe("starknet_call", Duration::from_millis(20));
        t.observe("starknet_call", Duration::from_millis(40));
        t.observe("starknet_blockNumber", Duration::from_millis(3));
        let s = t.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].0, "starknet_call");
        assert_eq!(s[1].1.count, 2);
    }
}
