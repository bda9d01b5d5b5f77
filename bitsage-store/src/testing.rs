//! Helpers for tests and benchmarks that run against a PostgreSQL server (the stores never use
//! them): where the server is, what to do when it is missing, and a fresh database per run.

use std::str::FromStr;

use bitsage_core::{Error, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

/// The environment variable naming the test PostgreSQL server (`scripts/test.sh` and
/// `scripts/bench.sh` start a throw-away cluster and set it).
pub const PG_URL_VAR: &str = "BITSAGE_TEST_PG_URL";

/// The PostgreSQL server URL, or `None` (with the reason printed) when `test` should skip.
/// Under `CI=true` a missing server fails the test instead: CI must not pass by skipping.
pub fn pg_url_or_skip(test: &str) -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{test}: {PG_URL_VAR} is not set and CI=true: PostgreSQL is required in CI \
                     (run scripts/test.sh)"
                );
            }
            eprintln!(
                "SKIPPED {test}: {PG_URL_VAR} is not set (scripts/test.sh starts a throw-away \
                 PostgreSQL and sets it)"
            );
            None
        }
    }
}

/// A database made by [`create_database`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDatabase {
    /// Its URL (the server URL with the database path replaced; query parameters kept).
    pub url: String,
    /// Its name.
    pub name: String,
}

/// Creates a database named `<prefix>_<random>` on the server at `server_url`.
pub async fn create_database(server_url: &str, prefix: &str) -> Result<TestDatabase> {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let url = database_url(server_url, &name)?;
    let mut admin = PgConnection::connect(server_url).await.map_err(pg_err)?;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .map_err(pg_err)?;
    admin.close().await.ok();
    Ok(TestDatabase { url, name })
}

/// Drops a database made by [`create_database`], closing its connections first.
pub async fn drop_database(server_url: &str, name: &str) -> Result<()> {
    let mut admin = PgConnection::connect(server_url).await.map_err(pg_err)?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .map_err(pg_err)?;
    admin.close().await.ok();
    Ok(())
}

fn pg_err(e: sqlx::Error) -> Error {
    Error::backend("postgres", e)
}

/// `server_url` with its database path replaced by `database`.
pub fn database_url(server_url: &str, database: &str) -> Result<String> {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    let url = match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    };
    // Refuse to hand out something the driver cannot read.
    PgConnectOptions::from_str(&url).map_err(pg_err)?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_replace_only_the_path() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u:p@h:1/db?sslmode=disable", "t2").unwrap(),
            "postgres://u:p@h:1/t2?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432", "t3").unwrap(),
            "postgres://postgres@127.0.0.1:5432/t3"
        );
    }
}
