//! The event seam (outbox, one-transaction settlement, bus) runs its conformance suite against
//! every store: memory and SQLite with their in-process bus, PostgreSQL with `LISTEN/NOTIFY`.

use crate::support;

use std::sync::{Arc, Mutex};

use bitsage_core::conformance::events::{self, Fixture};
use bitsage_core::{DynCoordinatorStore, DynEventBus};
use bitsage_store::{InMemoryStore, PgEventBus};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_memory() {
    events::run_all(|| async {
        let store = Arc::new(InMemoryStore::new());
        Fixture {
            bus: Arc::new(store.event_bus()) as DynEventBus,
            store: store as DynCoordinatorStore,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_sqlite() {
    let dirs = Arc::new(Mutex::new(Vec::new()));
    events::run_all(|| {
        let dirs = dirs.clone();
        async move {
            let (store, dir) = support::fresh_sqlite_store().await;
            dirs.lock().expect("lock").push(dir);
            Fixture {
                bus: Arc::new(store.event_bus()) as DynEventBus,
                store: store as DynCoordinatorStore,
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_postgres() {
    let Some(url) = support::pg_url_or_skip("events_postgres") else {
        return;
    };
    events::run_all(|| async {
        let (store, db) = support::fresh_pg_store_and_url(&url).await;
        Fixture {
            bus: Arc::new(PgEventBus::listen(&db).await.expect("listen")) as DynEventBus,
            store: store as DynCoordinatorStore,
        }
    })
    .await;
}

/// Two coordinators on one PostgreSQL: a commit through one wakes the other's bus, and the
/// other reads the event from the shared outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_events_reach_another_connection() {
    let Some(url) = support::pg_url_or_skip("postgres_events_reach_another_connection") else {
        return;
    };
    let (a, db) = support::fresh_pg_store_and_url(&url).await;
    let b = bitsage_store::PgStore::connect(&db).await.expect("b");
    let bus_b = PgEventBus::listen(&db).await.expect("listen");
    use bitsage_core::store_prelude::*;
    use bitsage_core::{EventBus as _, EventLog as _};
    let seen = bus_b.generation();
    let waiter = tokio::spawn(async move { bus_b.wait_changed(seen).await });
    a.create_node(&bitsage_core::conformance::store::new_node(
        1,
        1,
        bitsage_core::conformance::store::t(0),
    ))
    .await
    .expect("create through a");
    tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("b woken within 10 s")
        .expect("join")
        .expect("bus");
    let got = b.events_after(0, 10).await.expect("read through b");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, "node_registered");
}
