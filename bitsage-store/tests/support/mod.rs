//! Test support: fresh stores per check, PostgreSQL from `BITSAGE_TEST_PG_URL`.

#![allow(dead_code)]

use std::str::FromStr;
use std::sync::Arc;

use bitsage_core::DynJobStore;
use bitsage_store::{PgStore, SqliteStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

/// The environment variable naming the test PostgreSQL server.
pub const PG_URL_VAR: &str = "BITSAGE_TEST_PG_URL";

/// The PostgreSQL URL, or `None` (with the reason printed) when the test should skip.
/// Under `CI=true` a missing server fails the test instead.
pub fn pg_url_or_skip(test: &str) -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {PG_URL_VAR} is not set and CI=true: PostgreSQL is required in CI (run scripts/test.sh)");
            }
            eprintln!("SKIPPED {test}: {PG_URL_VAR} is not set (scripts/test.sh starts a throw-away PostgreSQL and sets it)");
            None
        }
    }
}

/// A fresh SQLite store in its own temporary directory (kept alive by the returned guard).
pub async fn fresh_sqlite() -> (DynJobStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_dir(dir.path())
        .await
        .expect("open sqlite");
    (Arc::new(store), dir)
}

/// A fresh PgStore on a new database of the server at `url`.
pub async fn fresh_pg(url: &str) -> DynJobStore {
    let name = format!("bitsage_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(url)
        .await
        .expect("connect to test PostgreSQL");
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create test database");
    admin.close().await.ok();
    let opts = PgConnectOptions::from_str(url)
        .expect("valid url")
        .database(&name);
    Arc::new(
        PgStore::connect_with(opts, 16)
            .await
            .expect("connect PgStore"),
    )
}
