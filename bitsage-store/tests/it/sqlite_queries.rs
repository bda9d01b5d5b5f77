//! SqliteStore specifics behind the port: per-node job counts are served by indexes (query
//! plans), and all-time earnings come from running totals that a pre-existing ledger is summed
//! into when the store opens.

use bitsage_core::conformance::store::{new_job, new_node, t};
use bitsage_core::job::JobFilter;
use bitsage_core::ledger::EarningEntry;
use bitsage_core::page::PageRequest;
use bitsage_core::store_prelude::*;
use bitsage_core::{JobStatus, NodeId, TimeWindow, TokenAmount};
use bitsage_store::SqliteStore;
use sqlx::Connection;

fn node() -> NodeId {
    // `new_node(1, …)`'s id.
    new_node(1, 1, t(0)).id
}

async fn raw(store: &SqliteStore) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", store.path().display()))
        .await
        .expect("raw connection")
}

#[tokio::test]
async fn per_node_job_counts_use_the_node_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).await.unwrap();
    for i in 0..20 {
        store
            .enqueue_job(&new_job(i, 1, 3, t(i as i64)))
            .await
            .unwrap();
    }
    let filter = JobFilter {
        status: Some(JobStatus::Completed),
        node: Some(node()),
    };
    let page = PageRequest {
        limit: 1,
        offset: 0,
    };
    assert_eq!(store.list_jobs(&filter, page).await.unwrap().total, 0);

    let mut conn = raw(&store).await;
    // The statement `list_jobs` counts with for this filter.
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM jobs WHERE id IN \
         (SELECT id FROM jobs WHERE completed_by = ?2 AND status = ?1 \
         UNION SELECT id FROM jobs WHERE lease_node = ?2 AND status = ?1)",
    )
    .bind("completed")
    .bind(node().as_str())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
    assert!(
        plan.iter().any(|l| l.contains("jobs_by_completer"))
            && plan.iter().any(|l| l.contains("jobs_by_lease_node")),
        "the per-node count must use both node indexes, not scan jobs: {plan:?}"
    );
}

#[tokio::test]
async fn a_ledger_from_before_the_running_totals_is_summed_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).await.unwrap();
    store.create_node(&new_node(1, 1, t(0))).await.unwrap();
    // Above 2^128: the totals are exact u256 sums, not floats or i64s.
    let big = TokenAmount::from_base_units("340282366920938463463374607431768211457").unwrap();
    for (i, gross) in [big, TokenAmount::from(1_000u64), big]
        .into_iter()
        .enumerate()
    {
        let job = new_job(i as u64, 1, 3, t(i as i64));
        store
            .credit_earning(
                &EarningEntry::with_fee_bps(node(), job.spec.id, gross, 250, t(i as i64 * 86_400))
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let before = store.earnings_total(&node(), None).await.unwrap();
    assert_eq!(before.entries, 3);
    assert_eq!(
        before.gross,
        big.checked_add(big)
            .unwrap()
            .checked_add(TokenAmount::from(1_000u64))
            .unwrap()
    );
    let first_day = TimeWindow::new(t(0), t(86_400)).unwrap();
    let windowed = store
        .earnings_total(&node(), Some(first_day))
        .await
        .unwrap();
    assert_eq!((windowed.entries, windowed.gross), (1, big));

    // A database written before migration 0005: the ledger without its totals.
    let mut conn = raw(&store).await;
    sqlx::query("DELETE FROM earnings_totals")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    store.close().await;
    let reopened = SqliteStore::open_dir(dir.path()).await.unwrap();
    assert_eq!(
        reopened.earnings_total(&node(), None).await.unwrap(),
        before
    );
    // And credits after that keep the total exact.
    let job = new_job(9, 1, 3, t(9));
    reopened
        .credit_earning(
            &EarningEntry::with_fee_bps(node(), job.spec.id, TokenAmount::from(1u64), 250, t(9))
                .unwrap(),
        )
        .await
        .unwrap();
    let after = reopened.earnings_total(&node(), None).await.unwrap();
    assert_eq!(after.entries, 4);
    assert_eq!(
        after.gross,
        before.gross.checked_add(TokenAmount::from(1u64)).unwrap()
    );
}
