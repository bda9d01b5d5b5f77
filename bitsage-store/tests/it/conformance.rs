//! Every store runs the same conformance suites (jobs, accounts and audit, incidents and
//! flags) and the same exactly-once lease test.

use crate::support;

use std::sync::{Arc, Mutex};

use bitsage_core::conformance::{access, ops, store};
use bitsage_core::DynJobStore;
use bitsage_store::InMemoryStore;

/// Jobs and concurrent leasers of the exactly-once lease test.
const LEASE_JOBS: usize = 1000;
const LEASERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_memory() {
    store::run_all(|| async { Arc::new(InMemoryStore::new()) as DynJobStore }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_sqlite() {
    // Keep every temp dir alive until the suite ends.
    let dirs = Arc::new(Mutex::new(Vec::new()));
    store::run_all(|| {
        let dirs = dirs.clone();
        async move {
            let (s, dir) = support::fresh_sqlite().await;
            dirs.lock().expect("lock").push(dir);
            s
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_postgres() {
    let Some(url) = support::pg_url_or_skip("conformance_postgres") else {
        return;
    };
    store::run_all(|| support::fresh_pg(&url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_exactly_once_memory() {
    store::lease_exactly_once(Arc::new(InMemoryStore::new()), LEASE_JOBS, LEASERS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_exactly_once_sqlite() {
    let (s, _dir) = support::fresh_sqlite().await;
    store::lease_exactly_once(s, LEASE_JOBS, LEASERS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_exactly_once_postgres() {
    let Some(url) = support::pg_url_or_skip("lease_exactly_once_postgres") else {
        return;
    };
    store::lease_exactly_once(support::fresh_pg(&url).await, LEASE_JOBS, LEASERS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_access_memory() {
    access::run_all(|| async { Arc::new(InMemoryStore::new()) }).await;
    ops::run_all(|| async { Arc::new(InMemoryStore::new()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_access_sqlite() {
    let dirs = Arc::new(Mutex::new(Vec::new()));
    let fresh = || {
        let dirs = dirs.clone();
        async move {
            let (s, dir) = support::fresh_sqlite_store().await;
            dirs.lock().expect("lock").push(dir);
            s
        }
    };
    access::run_all(fresh).await;
    ops::run_all(fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_access_postgres() {
    let Some(url) = support::pg_url_or_skip("conformance_access_postgres") else {
        return;
    };
    access::run_all(|| support::fresh_pg_store(&url)).await;
    ops::run_all(|| support::fresh_pg_store(&url)).await;
}
