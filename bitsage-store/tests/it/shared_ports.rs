//! The ports coordinators of one deployment share — the replay log and the proof store — run
//! their conformance suites against every implementation.

use crate::support;

use std::sync::{Arc, Mutex};

use bitsage_core::conformance::shared;
use bitsage_core::{DynProofStore, DynReplayLog};
use bitsage_store::{FsProofStore, InMemoryProofStore, InMemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_log_memory() {
    shared::run_replay_log(|| async { Arc::new(InMemoryStore::new()) as DynReplayLog }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_log_sqlite() {
    let dirs = Arc::new(Mutex::new(Vec::new()));
    shared::run_replay_log(|| {
        let dirs = dirs.clone();
        async move {
            let (s, dir) = support::fresh_sqlite_store().await;
            dirs.lock().expect("lock").push(dir);
            s as DynReplayLog
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_log_postgres() {
    let Some(url) = support::pg_url_or_skip("replay_log_postgres") else {
        return;
    };
    shared::run_replay_log(|| async { support::fresh_pg_store(&url).await as DynReplayLog }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proof_store_memory() {
    shared::run_proof_store(|| async { Arc::new(InMemoryProofStore::new()) as DynProofStore })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proof_store_filesystem() {
    let dirs = Arc::new(Mutex::new(Vec::new()));
    shared::run_proof_store(|| {
        let dirs = dirs.clone();
        async move {
            let dir = tempfile::tempdir().expect("temp dir");
            let s = FsProofStore::open(dir.path().join("proofs")).expect("open");
            dirs.lock().expect("lock").push(dir);
            Arc::new(s) as DynProofStore
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proof_store_postgres() {
    let Some(url) = support::pg_url_or_skip("proof_store_postgres") else {
        return;
    };
    shared::run_proof_store(|| async { support::fresh_pg_store(&url).await as DynProofStore })
        .await;
}

/// Two `PgStore`s on one database see each other's proofs and replay entries (two
/// coordinators of one deployment).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_shares_proofs_and_replays_across_connections() {
    let Some(url) = support::pg_url_or_skip("postgres_shares_proofs_and_replays") else {
        return;
    };
    let db = bitsage_store::testing::create_database(&url, "bitsage_t")
        .await
        .expect("create test database");
    let a = bitsage_store::PgStore::connect(&db.url).await.expect("a");
    let b = bitsage_store::PgStore::connect(&db.url).await.expect("b");
    let env = shared::sample_envelope(9, 1000);
    use bitsage_core::{ProofStore as _, ReplayLog as _};
    a.put_proof(&env).await.expect("put through a");
    assert_eq!(b.get_proof(&env.proof_hash).await.expect("get"), Some(env));
    let d = bitsage_core::crypto::Hash32([3; 32]);
    let until = bitsage_core::conformance::store::t(600);
    assert!(a.remember_message(&d, until).await.expect("a"));
    assert!(!b.remember_message(&d, until).await.expect("b"));
}
