//! Counters an agent keeps while it runs, shared through a cheap [`AgentHandle`] so that an
//! embedding process (the coordinator's `dev` mode, tests, a status page) can watch progress.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bitsage_core::{NodeId, NodeStatus};
use serde::Serialize;
use tokio::sync::watch;

/// The live counters of one agent (atomics; every update also wakes
/// [`AgentHandle::wait_until`] callers).
#[derive(Debug)]
pub struct AgentStats {
    registrations: AtomicU64,
    heartbeats_sent: AtomicU64,
    heartbeats_failed: AtomicU64,
    jobs_completed: AtomicU64,
    probes_passed: AtomicU64,
    failures: AtomicU64,
    leases_released: AtomicU64,
    reconnects: AtomicU64,
    proving: AtomicBool,
    node_status: Mutex<Option<NodeStatus>>,
    changed: watch::Sender<u64>,
}

impl Default for AgentStats {
    fn default() -> Self {
        Self {
            registrations: AtomicU64::new(0),
            heartbeats_sent: AtomicU64::new(0),
            heartbeats_failed: AtomicU64::new(0),
            jobs_completed: AtomicU64::new(0),
            probes_passed: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            leases_released: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            proving: AtomicBool::new(false),
            node_status: Mutex::new(None),
            changed: watch::Sender::new(0),
        }
    }
}

/// A copy of an agent's counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AgentSnapshot {
    /// Successful registrations (the first, and each re-registration after the coordinator
    /// forgot the node).
    pub registrations: u64,
    /// Heartbeats the coordinator accepted.
    pub heartbeats_sent: u64,
    /// Heartbeats that failed (unreachable coordinator or refused).
    pub heartbeats_failed: u64,
    /// Leased jobs proven and accepted (a countersigned receipt came back).
    pub jobs_completed: u64,
    /// Probes proven and accepted.
    pub probes_passed: u64,
    /// Work that did not end in an accepted proof: prover errors, rejected proofs, refused
    /// or undeliverable completions.
    pub failures: u64,
    /// Leases given back with `fail` (prover errors and shutdown).
    pub leases_released: u64,
    /// Times the agent got through to the coordinator again after losing it.
    pub reconnects: u64,
    /// Whether a proof is being computed right now.
    pub proving: bool,
    /// The node's status as the coordinator last reported it.
    pub node_status: Option<NodeStatus>,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    Registrations,
    HeartbeatsSent,
    HeartbeatsFailed,
    JobsCompleted,
    ProbesPassed,
    Failures,
    LeasesReleased,
    Reconnects,
}

impl AgentStats {
    fn counter(&self, c: Counter) -> &AtomicU64 {
        match c {
            Counter::Registrations => &self.registrations,
            Counter::HeartbeatsSent => &self.heartbeats_sent,
            Counter::HeartbeatsFailed => &self.heartbeats_failed,
            Counter::JobsCompleted => &self.jobs_completed,
            Counter::ProbesPassed => &self.probes_passed,
            Counter::Failures => &self.failures,
            Counter::LeasesReleased => &self.leases_released,
            Counter::Reconnects => &self.reconnects,
        }
    }

    fn notify(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub(crate) fn bump(&self, c: Counter) {
        self.counter(c).fetch_add(1, Ordering::Relaxed);
        self.notify();
    }

    pub(crate) fn set_proving(&self, proving: bool) {
        self.proving.store(proving, Ordering::Relaxed);
        self.notify();
    }

    pub(crate) fn set_status(&self, status: NodeStatus) {
        let mut s = self.node_status.lock().unwrap_or_else(|p| p.into_inner());
        if *s != Some(status) {
            *s = Some(status);
            drop(s);
            self.notify();
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> AgentSnapshot {
        let get = |c| self.counter(c).load(Ordering::Relaxed);
        AgentSnapshot {
            registrations: get(Counter::Registrations),
            heartbeats_sent: get(Counter::HeartbeatsSent),
            heartbeats_failed: get(Counter::HeartbeatsFailed),
            jobs_completed: get(Counter::JobsCompleted),
            probes_passed: get(Counter::ProbesPassed),
            failures: get(Counter::Failures),
            leases_released: get(Counter::LeasesReleased),
            reconnects: get(Counter::Reconnects),
            proving: self.proving.load(Ordering::Relaxed),
            node_status: *self.node_status.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// A cheap, cloneable view of a running (or finished) agent: its node id and counters.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    node_id: NodeId,
    stats: Arc<AgentStats>,
}

impl AgentHandle {
    pub(crate) fn new(node_id: NodeId, stats: Arc<AgentStats>) -> Self {
        Self { node_id, stats }
    }

    /// The node the agent runs as.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The counters now.
    pub fn snapshot(&self) -> AgentSnapshot {
        self.stats.snapshot()
    }

    /// The shared counters.
    pub fn stats(&self) -> &Arc<AgentStats> {
        &self.stats
    }

    /// Waits until `pred` holds for the counters (checked now and after every change) and
    /// returns that snapshot. Never returns if it never holds: bound it with
    /// `tokio::time::timeout`.
    pub async fn wait_until(&self, mut pred: impl FnMut(&AgentSnapshot) -> bool) -> AgentSnapshot {
        let mut rx = self.stats.changed.subscribe();
        loop {
            rx.borrow_and_update();
            let snap = self.snapshot();
            if pred(&snap) {
                return snap;
            }
            // The sender lives in the stats this handle holds, so it is never dropped
            // while we wait.
            if rx.changed().await.is_err() {
                return self.snapshot();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_until_wakes_on_a_change() {
        let stats = Arc::new(AgentStats::default());
        let handle = AgentHandle::new(NodeId::parse("n").expect("id"), stats.clone());
        let waiter = tokio::spawn({
            let handle = handle.clone();
            async move { handle.wait_until(|s| s.jobs_completed >= 2).await }
        });
        stats.bump(Counter::JobsCompleted);
        stats.set_status(NodeStatus::Active);
        stats.bump(Counter::JobsCompleted);
        let snap = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert_eq!(snap.jobs_completed, 2);
        assert_eq!(handle.snapshot().node_status, Some(NodeStatus::Active));
    }
}
