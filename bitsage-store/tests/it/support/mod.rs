//! Test support: fresh stores per check, PostgreSQL from `BITSAGE_TEST_PG_URL`.

#![allow(dead_code)]

use std::str::FromStr;
use std::sync::Arc;

use bitsage_core::DynJobStore;
use bitsage_store::testing::create_database;
use bitsage_store::{PgStore, SqliteStore};
use sqlx::postgres::PgConnectOptions;

#[allow(unused_imports)] // not every test binary that includes this module uses both
pub(crate) use bitsage_store::testing::{pg_url_or_skip, PG_URL_VAR};

/// A fresh SQLite store in its own temporary directory (kept alive by the returned guard).
pub(crate) async fn fresh_sqlite() -> (DynJobStore, tempfile::TempDir) {
    let (store, dir) = fresh_sqlite_store().await;
    (store, dir)
}

/// [`fresh_sqlite`] as the concrete type (for the other ports it implements).
pub(crate) async fn fresh_sqlite_store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_dir(dir.path())
        .await
        .expect("open sqlite");
    (Arc::new(store), dir)
}

/// A fresh PgStore on a new database of the server at `url`.
pub(crate) async fn fresh_pg(url: &str) -> DynJobStore {
    fresh_pg_store(url).await
}

/// [`fresh_pg`] as the concrete type (for the other ports it implements).
pub(crate) async fn fresh_pg_store(url: &str) -> Arc<PgStore> {
    fresh_pg_store_and_url(url).await.0
}

/// [`fresh_pg_store`] and the new database's URL.
pub(crate) async fn fresh_pg_store_and_url(url: &str) -> (Arc<PgStore>, String) {
    let db = create_database(url, "bitsage_t")
        .await
        .expect("create test database");
    let opts = PgConnectOptions::from_str(&db.url).expect("valid url");
    let store = Arc::new(
        PgStore::connect_with(opts, 16)
            .await
            .expect("connect PgStore"),
    );
    (store, db.url.clone())
}
