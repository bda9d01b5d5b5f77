//! What keeps heartbeat ingest fast and bounded: the node-key cache (a heartbeat is checked
//! without a store read) and the pacer (the server-set heartbeat interval grows when ingest
//! falls behind, instead of latency growing without bound).
//!
//! Both are per-process and hold nothing that must survive a restart or be shared: the cache
//! holds what never changes once a node is registered (its id's key and GPU inventory — a
//! re-registration may change neither), and the pacer only reflects this process's load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::crypto::PublicKey;
use crate::node::NodeRecord;
use crate::NodeId;

/// What a heartbeat is checked against: fixed for a node id once it is registered.
#[derive(Debug)]
pub struct NodeIdentity {
    /// The node's key (registration refuses another key for the same id).
    pub public_key: PublicKey,
    /// The UUIDs of the GPUs it registered (re-registration keeps the stored hardware).
    pub gpu_uuids: Vec<String>,
}

impl NodeIdentity {
    /// The identity of a stored node.
    pub fn of(node: &NodeRecord) -> Self {
        Self {
            public_key: node.public_key,
            gpu_uuids: node.hardware.gpus.iter().map(|g| g.uuid.clone()).collect(),
        }
    }
}

/// Most identities cached; beyond it the cache is emptied and refills from the store (a
/// bound on memory that an outsider cannot grow: only registered nodes are cached).
pub const MAX_CACHED_NODES: usize = 1_000_000;

/// The node-identity cache.
#[derive(Debug, Default)]
pub struct NodeKeys {
    map: RwLock<HashMap<NodeId, Arc<NodeIdentity>>>,
}

impl NodeKeys {
    /// The cached identity of `id`.
    pub fn get(&self, id: &NodeId) -> Option<Arc<NodeIdentity>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Caches `node`'s identity and returns it.
    pub fn insert(&self, node: &NodeRecord) -> Arc<NodeIdentity> {
        let identity = Arc::new(NodeIdentity::of(node));
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_NODES {
            map.clear();
        }
        map.insert(node.id.clone(), Arc::clone(&identity));
        identity
    }

    /// How many identities are cached.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The pacer's rule, a pure function: the interval to advertise next, from the one advertised
/// now and the recent store latency of heartbeats (an exponentially weighted mean).
///
/// - latency above `target`: ingest is behind — double the interval, up to `max`;
/// - latency below a quarter of `target`: ingest has room — halve it, down to `base`;
/// - in between: keep it (the gap avoids flapping).
pub fn next_interval(
    current: Duration,
    latency: Duration,
    base: Duration,
    max: Duration,
    target: Duration,
) -> Duration {
    let next = if latency > target {
        current.saturating_mul(2)
    } else if latency < target / 4 {
        current / 2
    } else {
        current
    };
    next.clamp(base, max.max(base))
}

/// Weight of the newest observation in the latency mean.
const EWMA_WEIGHT: f64 = 0.05;

/// This process's heartbeat load and the interval it advertises.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    /// Seconds; `None` until the first observation.
    latency: Option<f64>,
    current: Option<Duration>,
    last_change: Instant,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            state: Mutex::new(PacerState {
                latency: None,
                current: None,
                last_change: Instant::now(),
            }),
        }
    }
}

impl Pacer {
    /// Records how long a heartbeat took to be accepted (or refused).
    pub fn observe(&self, latency: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let x = latency.as_secs_f64();
        s.latency = Some(match s.latency {
            None => x,
            Some(m) => m + EWMA_WEIGHT * (x - m),
        });
    }

    /// The recent mean time heartbeats took.
    pub fn latency(&self) -> Option<Duration> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.latency.map(Duration::from_secs_f64)
    }

    /// The interval to tell agents now: re-decided at most once per `base` interval (agents
    /// need one beat to adopt a change before it is judged again).
    pub fn interval(&self, base: Duration, max: Duration, target: Duration) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let current = s.current.unwrap_or(base).clamp(base, max.max(base));
        let Some(latency) = s.latency else {
            return current;
        };
        if s.last_change.elapsed() < base {
            return current;
        }
        let next = next_interval(current, Duration::from_secs_f64(latency), base, max, target);
        if next != current {
            tracing::info!(
                from_secs = current.as_secs_f64(),
                to_secs = next.as_secs_f64(),
                store_latency_ms = latency * 1e3,
                "heartbeat interval changed"
            );
        }
        s.current = Some(next);
        s.last_change = Instant::now();
        next
    }
}

/// The ingest state a coordinator keeps in memory.
#[derive(Debug, Default)]
pub struct Ingest {
    /// Registered nodes' identities.
    pub keys: NodeKeys,
    /// The heartbeat pacer.
    pub pacer: Pacer,
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn interval_grows_under_load_shrinks_with_room_and_stays_in_bounds() {
        let (base, max, target) = (S(10), S(20), MS(250));
        assert_eq!(next_interval(S(10), MS(300), base, max, target), S(20));
        assert_eq!(
            next_interval(S(20), S(3), base, max, target),
            S(20),
            "capped"
        );
        assert_eq!(
            next_interval(S(20), MS(100), base, max, target),
            S(20),
            "hysteresis"
        );
        assert_eq!(next_interval(S(20), MS(10), base, max, target), S(10));
        assert_eq!(
            next_interval(S(10), MS(1), base, max, target),
            S(10),
            "floored"
        );
        // A max below the base never advertises less than the base.
        assert_eq!(next_interval(S(10), S(1), base, S(5), target), S(10));
    }

    #[test]
    fn pacer_starts_at_base_and_follows_latency() {
        let p = Pacer::default();
        assert_eq!(p.interval(MS(1), MS(8), MS(250)), MS(1));
        for _ in 0..50 {
            p.observe(S(1));
        }
        std::thread::sleep(MS(2));
        assert_eq!(p.interval(MS(1), MS(8), MS(250)), MS(2));
        std::thread::sleep(MS(2));
        assert_eq!(p.interval(MS(1), MS(8), MS(250)), MS(4));
        for _ in 0..500 {
            p.observe(MS(1));
        }
        std::thread::sleep(MS(2));
        assert_eq!(p.interval(MS(1), MS(8), MS(250)), MS(2));
    }
}
