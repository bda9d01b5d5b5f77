//! Conformance suites for the ports coordinators of one deployment share: [`ReplayLog`](crate::ReplayLog) and
//! [`ProofStore`](crate::ProofStore). Each check takes a fresh, empty implementation.

use std::collections::HashSet;
use std::sync::Arc;

use crate::crypto::Hash32;
use crate::proof::{ProofEnvelope, ProofSizes, ProverTimings, SecurityConfig};
use crate::{DynProofStore, DynReplayLog, JobId, JobKind, JobSpec};

use super::store::t;

/// Runs every [`ReplayLog`](crate::ReplayLog) check, each on a fresh log from `fresh`.
pub async fn run_replay_log<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = DynReplayLog>,
{
    replay_first_use_only(fresh().await).await;
    replay_exactly_once_under_concurrency(fresh().await, 64).await;
    replay_purge_keeps_live_entries(fresh().await).await;
}

fn digest(n: u32) -> Hash32 {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[31] = 0xa5;
    Hash32(b)
}

/// A digest is accepted the first time only.
pub async fn replay_first_use_only(log: DynReplayLog) {
    assert!(log.remember_message(&digest(1), t(600)).await.unwrap());
    assert!(
        !log.remember_message(&digest(1), t(600)).await.unwrap(),
        "a digest remembered once must be refused the second time"
    );
    assert!(
        !log.remember_message(&digest(1), t(9_000)).await.unwrap(),
        "a replay with a later keep_until is still a replay"
    );
    assert!(log.remember_message(&digest(2), t(600)).await.unwrap());
}

/// Of `n` concurrent calls with one digest, exactly one is accepted.
pub async fn replay_exactly_once_under_concurrency(log: DynReplayLog, n: usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            log.remember_message(&digest(77), t(600)).await.unwrap()
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1, "exactly one concurrent call may win a digest");
}

/// Purging removes only expired entries; a purged digest may be remembered again.
pub async fn replay_purge_keeps_live_entries(log: DynReplayLog) {
    assert!(log.remember_message(&digest(10), t(100)).await.unwrap());
    assert!(log.remember_message(&digest(11), t(300)).await.unwrap());
    assert_eq!(log.purge_messages(t(200)).await.unwrap(), 1);
    assert!(
        !log.remember_message(&digest(11), t(300)).await.unwrap(),
        "a live entry must survive a purge"
    );
    assert!(
        log.remember_message(&digest(10), t(400)).await.unwrap(),
        "a purged entry is forgotten"
    );
    assert_eq!(log.purge_messages(t(0)).await.unwrap(), 0);
}

/// Runs every [`ProofStore`](crate::ProofStore) check, each on a fresh store from `fresh`.
pub async fn run_proof_store<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = DynProofStore>,
{
    proofs_round_trip_by_hash(fresh().await).await;
    proofs_first_copy_wins(fresh().await).await;
    proofs_concurrent_puts(fresh().await).await;
    proofs_purged_by_age(fresh().await).await;
}

/// An envelope-shaped record (not a valid proof: stores do not verify) with hash `n`.
pub fn sample_envelope(n: u32, proof_len: usize) -> ProofEnvelope {
    let job = JobSpec::new(
        JobId::new(),
        JobKind::Poseidon2Chain {
            seed: u64::from(n),
            length: 64,
        },
    )
    .expect("valid job");
    ProofEnvelope {
        format_version: 1,
        job,
        public_output: vec![n, 2, 3],
        output: crate::proof::output_text(&[n, 2, 3]),
        config: SecurityConfig {
            log_blowup_factor: 4,
            n_queries: 24,
            pow_bits: 20,
        },
        proof: (0..proof_len).map(|i| (i as u8) ^ (n as u8)).collect(),
        proof_hash: digest(n),
        commitments: vec![digest(n + 1000)],
        sizes: ProofSizes {
            raw_bytes: proof_len as u64 * 2,
            compressed_bytes: proof_len as u64,
        },
        timings: ProverTimings {
            trace_ms: 1.5,
            prove_ms: 2.5,
            total_ms: 4.0,
        },
    }
}

/// What is put comes back by its hash, byte for byte; an unknown hash is `None`.
pub async fn proofs_round_trip_by_hash(store: DynProofStore) {
    let a = sample_envelope(1, 300_000);
    let b = sample_envelope(2, 10);
    let ra = store.put_proof(&a).await.unwrap();
    let rb = store.put_proof(&b).await.unwrap();
    assert!(!ra.is_empty() && ra != rb, "references name their proofs");
    assert_eq!(store.get_proof(&a.proof_hash).await.unwrap(), Some(a));
    assert_eq!(store.get_proof(&b.proof_hash).await.unwrap(), Some(b));
    assert_eq!(store.get_proof(&digest(99)).await.unwrap(), None);
}

/// Putting a hash again succeeds and keeps the first copy.
pub async fn proofs_first_copy_wins(store: DynProofStore) {
    let first = sample_envelope(5, 100);
    let mut again = first.clone();
    again.timings.total_ms = 99.0;
    let r1 = store.put_proof(&first).await.unwrap();
    let r2 = store.put_proof(&again).await.unwrap();
    assert_eq!(r1, r2, "one hash, one reference");
    assert_eq!(
        store.get_proof(&first.proof_hash).await.unwrap(),
        Some(first)
    );
}

/// Concurrent puts of the same and of different envelopes all succeed and are all readable.
pub async fn proofs_concurrent_puts(store: DynProofStore) {
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let env = sample_envelope(100 + i % 4, 1000);
            store.put_proof(&env).await.unwrap()
        }));
    }
    let mut refs = HashSet::new();
    for task in tasks {
        refs.insert(task.await.unwrap());
    }
    assert_eq!(refs.len(), 4, "four distinct proofs, four references");
    for i in 0..4 {
        assert!(store.get_proof(&digest(100 + i)).await.unwrap().is_some());
    }
}

/// Retention: nothing stored after the cutoff goes; everything before it does, and is then
/// unknown.
pub async fn proofs_purged_by_age(store: DynProofStore) {
    let a = sample_envelope(7, 1000);
    store.put_proof(&a).await.unwrap();
    let hour_ago = crate::time::now() - chrono::TimeDelta::hours(1);
    assert_eq!(store.purge_proofs_before(hour_ago).await.unwrap(), 0);
    assert!(store.get_proof(&a.proof_hash).await.unwrap().is_some());
    let later = crate::time::now() + chrono::TimeDelta::seconds(5);
    assert_eq!(store.purge_proofs_before(later).await.unwrap(), 1);
    assert_eq!(store.get_proof(&a.proof_hash).await.unwrap(), None);
    assert_eq!(store.purge_proofs_before(later).await.unwrap(), 0);
}
