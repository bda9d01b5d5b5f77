//! A read-through cache of chain answers, one per contract view.
//!
//! An entry is **fresh** for the TTL (≤ 15 s) and served without a call; after that it may still
//! be served as **stale** — only when the chain cannot answer, and for at most the stale limit
//! — with its original read time, so whoever shows it can show its age. Entries also carry a
//! per-key lock, so concurrent misses for one key make one call (single flight), and the last
//! failure, so callers that waited on a failed call do not immediately repeat it.
//!
//! Time is passed in (`now`) so the rules are tested without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitsage_core::chain::Observed;

#[derive(Debug)]
struct Entry<V> {
    value: Observed<V>,
    stored: Instant,
}

/// The cache of one view (e.g. `get_stake` by wallet).
#[derive(Debug)]
pub(super) struct Cache<K, V, E> {
    ttl: Duration,
    stale_limit: Duration,
    max_entries: usize,
    entries: HashMap<K, Entry<V>>,
    failures: HashMap<K, (Instant, E)>,
    locks: HashMap<K, Arc<tokio::sync::Mutex<()>>>,
}

impl<K: Eq + Hash + Clone, V: Clone, E: Clone> Cache<K, V, E> {
    /// An empty cache.
    pub(super) fn new(ttl: Duration, stale_limit: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            stale_limit,
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
            failures: HashMap::new(),
            locks: HashMap::new(),
        }
    }

    /// The entry for `key` if it is younger than the TTL at `now`.
    pub(super) fn fresh(&self, key: &K, now: Instant) -> Option<Observed<V>> {
        self.entries
            .get(key)
            .filter(|e| now.saturating_duration_since(e.stored) < self.ttl)
            .map(|e| e.value.clone())
    }

    /// The entry for `key` and its age, if it is not older than the stale limit at `now`.
    pub(super) fn stale(&self, key: &K, now: Instant) -> Option<(Observed<V>, Duration)> {
        self.entries.get(key).and_then(|e| {
            let age = now.saturating_duration_since(e.stored);
            (age <= self.stale_limit).then(|| (e.value.clone(), age))
        })
    }

    /// Stores a value read at `now`; clears the key's last failure.
    pub(super) fn insert(&mut self, key: K, value: Observed<V>, now: Instant) {
        self.failures.remove(&key);
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&key) {
            self.evict(now);
        }
        self.entries.insert(key, Entry { value, stored: now });
    }

    /// Makes room: drops entries past the stale limit, then the oldest if still full.
    fn evict(&mut self, now: Instant) {
        let limit = self.stale_limit;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.stored) <= limit);
        self.failures
            .retain(|_, (at, _)| now.saturating_duration_since(*at) <= limit);
        if self.entries.len() >= self.max_entries {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.stored)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
    }

    /// Remembers that a read of `key` failed at `now`.
    pub(super) fn record_failure(&mut self, key: K, error: E, now: Instant) {
        if self.failures.len() >= self.max_entries {
            let limit = self.stale_limit;
            self.failures
                .retain(|_, (at, _)| now.saturating_duration_since(*at) <= limit);
            if self.failures.len() >= self.max_entries {
                self.failures.clear();
            }
        }
        self.failures.insert(key, (now, error));
    }

    /// The failure of a read of `key` that ended at or after `since`, if any.
    pub(super) fn failure_since(&self, key: &K, since: Instant) -> Option<E> {
        self.failures
            .get(key)
            .filter(|(at, _)| *at >= since)
            .map(|(_, e)| e.clone())
    }

    /// The lock that serialises reads of `key`.
    pub(super) fn lock_for(&mut self, key: &K) -> Arc<tokio::sync::Mutex<()>> {
        if self.locks.len() >= self.max_entries {
            // Only locks nobody holds or waits on (the map's own reference) can go.
            self.locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        self.locks.entry(key.clone()).or_default().clone()
    }

    /// Forgets `key`'s lock once nobody else holds it (the caller still holds `lock`).
    pub(super) fn release_lock(&mut self, key: &K, lock: &Arc<tokio::sync::Mutex<()>>) {
        if let Some(current) = self.locks.get(key) {
            // The map's reference and the caller's: nobody else is waiting.
            if Arc::ptr_eq(current, lock) && Arc::strong_count(current) <= 2 {
                self.locks.remove(key);
            }
        }
    }

    /// How many values are cached.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitsage_core::chain::ChainReadAt;

    fn observed(v: u32, read_at: bitsage_core::time::Timestamp) -> Observed<u32> {
        Observed {
            value: v,
            at: ChainReadAt {
                block_number: 7,
                block_hash: Some("0x7".into()),
                read_at,
            },
        }
    }

    const TTL: Duration = Duration::from_secs(10);
    const STALE: Duration = Duration::from_secs(300);

    #[test]
    fn fresh_within_ttl_keeps_its_read_time() {
        let mut c: Cache<u8, u32, String> = Cache::new(TTL, STALE, 100);
        let t0 = Instant::now();
        let read_at = bitsage_core::time::now();
        c.insert(1, observed(42, read_at), t0);
        let hit = c
            .fresh(&1, t0 + Duration::from_secs(9))
            .expect("fresh at 9 s");
        assert_eq!(hit.value, 42);
        assert_eq!(
            hit.at.read_at, read_at,
            "a cached answer keeps its original read time"
        );
        assert!(c.fresh(&1, t0 + TTL).is_none(), "expired at the TTL");
        assert!(c.fresh(&2, t0).is_none());
    }

    #[test]
    fn stale_until_the_limit_with_its_age() {
        let mut c: Cache<u8, u32, String> = Cache::new(TTL, STALE, 100);
        let t0 = Instant::now();
        let read_at = bitsage_core::time::now();
        c.insert(1, observed(42, read_at), t0);
        let (v, age) = c.stale(&1, t0 + Duration::from_secs(60)).expect("stale");
        assert_eq!(age, Duration::from_secs(60));
        assert_eq!(v.at.read_at, read_at);
        assert!(c.stale(&1, t0 + STALE + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn failures_are_remembered_until_a_success() {
        let mut c: Cache<u8, u32, String> = Cache::new(TTL, STALE, 100);
        let t0 = Instant::now();
        c.record_failure(1, "down".into(), t0 + Duration::from_secs(1));
        assert_eq!(c.failure_since(&1, t0).as_deref(), Some("down"));
        assert!(
            c.failure_since(&1, t0 + Duration::from_secs(2)).is_none(),
            "failed before we started waiting"
        );
        c.insert(1, observed(1, bitsage_core::time::now()), t0);
        assert!(c.failure_since(&1, t0).is_none());
    }

    #[test]
    fn full_cache_evicts_expired_then_oldest() {
        let mut c: Cache<u8, u32, String> = Cache::new(TTL, STALE, 2);
        let t0 = Instant::now();
        let now = bitsage_core::time::now();
        c.insert(1, observed(1, now), t0);
        c.insert(2, observed(2, now), t0 + Duration::from_secs(1));
        c.insert(3, observed(3, now), t0 + Duration::from_secs(2));
        assert_eq!(c.len(), 2);
        assert!(
            c.stale(&1, t0 + Duration::from_secs(2)).is_none(),
            "oldest went"
        );
        assert!(c.stale(&3, t0 + Duration::from_secs(2)).is_some());
    }

    #[test]
    fn locks_are_shared_per_key_and_released() {
        let mut c: Cache<u8, u32, String> = Cache::new(TTL, STALE, 100);
        let a = c.lock_for(&1);
        let b = c.lock_for(&1);
        assert!(Arc::ptr_eq(&a, &b));
        c.release_lock(&1, &a);
        assert!(Arc::ptr_eq(&c.lock_for(&1), &a), "b still holds it");
        drop(b);
        c.release_lock(&1, &a);
        assert!(!Arc::ptr_eq(&c.lock_for(&1), &a), "released");
    }
}
