//! The audit log is append-only in the database itself: a connection that bypasses the store
//! cannot change or delete an entry (the migrations' triggers refuse it).

use crate::support;

use bitsage_core::access::{ActorKind, AuditFilter, AuditLog, NewAuditEntry, Outcome};
use bitsage_core::page::PageRequest;
use sqlx::{Connection, Executor};

fn entry() -> NewAuditEntry {
    NewAuditEntry {
        at: bitsage_core::time::now(),
        actor: "system".into(),
        actor_kind: ActorKind::System,
        role: None,
        action: "audit.test".into(),
        target: None,
        outcome: Outcome::Success,
        status: None,
        request_id: None,
        source: None,
    }
}

/// Runs each statement on `conn`, expecting every one to be refused.
async fn assert_refused<C>(conn: &mut C, statements: &[&str])
where
    for<'c> &'c mut C: Executor<'c>,
{
    for sql in statements {
        let Err(err) = conn.execute(*sql).await else {
            panic!("{sql}: an audit entry was changed");
        };
        assert!(
            err.to_string().contains("append-only"),
            "{sql}: refused for another reason: {err}"
        );
    }
}

#[tokio::test]
async fn sqlite_audit_log_refuses_update_and_delete() {
    let (store, _dir) = support::fresh_sqlite_store().await;
    let stored = store.append_audit(&entry()).await.expect("append");
    let url = format!("sqlite://{}", store.path().display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    assert_refused(
        &mut conn,
        &[
            "UPDATE audit_log SET actor = 'mallory'",
            "DELETE FROM audit_log",
        ],
    )
    .await;
    conn.close().await.ok();
    let page = store
        .list_audit(&AuditFilter::default(), PageRequest::default())
        .await
        .expect("list");
    assert_eq!(page.items, vec![stored], "the entry is unchanged");
}

#[tokio::test]
async fn postgres_audit_log_refuses_update_delete_and_truncate() {
    let Some(url) =
        support::pg_url_or_skip("postgres_audit_log_refuses_update_delete_and_truncate")
    else {
        return;
    };
    let (store, db_url) = support::fresh_pg_store_and_url(&url).await;
    let stored = store.append_audit(&entry()).await.expect("append");
    let mut conn = sqlx::PgConnection::connect(&db_url).await.expect("connect");
    assert_refused(
        &mut conn,
        &[
            "UPDATE audit_log SET actor = 'mallory'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ],
    )
    .await;
    conn.close().await.ok();
    let page = store
        .list_audit(&AuditFilter::default(), PageRequest::default())
        .await
        .expect("list");
    assert_eq!(page.items, vec![stored], "the entry is unchanged");
}
