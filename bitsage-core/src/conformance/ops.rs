//! The [`IncidentStore`] and [`FlagStore`] checks: incidents round-trip and list newest
//! first; at most one open incident per watched condition, even under concurrent creators;
//! conditions remember when they first held; flags round-trip.

use std::future::Future;
use std::sync::Arc;

use crate::flags::{Flag, FlagValue};
use crate::incident::{Incident, IncidentFilter, IncidentStatus, IncidentUpdate, Severity};
use crate::page::PageRequest;
use crate::{Error, FlagStore, IncidentId, IncidentStore};

use super::store::t;

/// Every check, each on a fresh store.
pub async fn run_all<S, F, Fut>(fresh: F)
where
    S: IncidentStore + FlagStore + crate::PayoutStore + ?Sized + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    incidents_round_trip_and_list(fresh().await).await;
    one_open_incident_per_condition(fresh().await).await;
    flags_round_trip(fresh().await).await;
    payout_marks_once(fresh().await).await;
}

/// A period is marked once (a second mark is `AlreadyExists`, also concurrently); marks
/// list newest period first, exact amounts kept.
pub async fn payout_marks_once<S: crate::PayoutStore + ?Sized + 'static>(store: Arc<S>) {
    use crate::payout::PayoutMark;
    let node = super::store::node_id(1);
    let mark = |period: &str, net: u128| PayoutMark {
        node_id: node.clone(),
        period: period.into(),
        marked_by: "admin".into(),
        marked_at: t(1),
        net: crate::TokenAmount::from_u128(net),
    };
    let tries: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            let m = mark("2026-01", (1u128 << 100) + 7);
            async move { store.mark_payout(&m).await }
        })
        .collect();
    let results = futures::future::join_all(tries).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(Error::AlreadyExists { .. }))));
    store.mark_payout(&mark("2026-02", 5)).await.expect("mark");
    let marks = store.payout_marks(&node).await.expect("marks");
    assert_eq!(
        marks,
        vec![mark("2026-02", 5), mark("2026-01", (1u128 << 100) + 7)]
    );
    assert!(store
        .payout_marks(&super::store::node_id(2))
        .await
        .expect("marks")
        .is_empty());
}

fn incident(n: i64, condition: Option<&str>) -> Incident {
    Incident {
        id: IncidentId::new(),
        title: format!("incident {n}"),
        severity: Severity::Warn,
        region: None,
        status: IncidentStatus::Open,
        condition: condition.map(str::to_string),
        opened_at: t(n),
        resolved_at: None,
        updates: vec![IncidentUpdate {
            at: t(n),
            by: "ops".into(),
            message: "seen".into(),
            status: IncidentStatus::Open,
            severity: Severity::Warn,
        }],
    }
}

/// Create, get, save, list (newest first, by status and start), duplicates refused.
pub async fn incidents_round_trip_and_list<S: IncidentStore + ?Sized>(store: Arc<S>) {
    let a = incident(10, None);
    let mut b = incident(20, None);
    store.create_incident(&a).await.expect("create a");
    store.create_incident(&b).await.expect("create b");
    match store.create_incident(&a).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("a known incident id: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.get_incident(&a.id).await.expect("get"),
        Some(a.clone())
    );
    assert_eq!(
        store.get_incident(&IncidentId::new()).await.expect("get"),
        None
    );
    b.status = IncidentStatus::Resolved;
    b.resolved_at = Some(t(30));
    store.save_incident(&b).await.expect("save");
    match store.save_incident(&incident(99, None)).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("saving an unknown incident: expected NotFound, got {other:?}"),
    }
    let page = PageRequest::new(10, 0).expect("page");
    let all = store
        .list_incidents(&IncidentFilter::default(), page)
        .await
        .expect("list");
    assert_eq!(all.total, 2);
    assert_eq!(
        all.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![b.id, a.id],
        "newest first"
    );
    let open = store
        .list_incidents(
            &IncidentFilter {
                status: Some(IncidentStatus::Open),
                from: None,
            },
            page,
        )
        .await
        .expect("list");
    assert_eq!(open.items, vec![a.clone()]);
    let late = store
        .list_incidents(
            &IncidentFilter {
                status: None,
                from: Some(t(15)),
            },
            page,
        )
        .await
        .expect("list");
    assert_eq!(late.items, vec![b]);
}

/// Of concurrent creators of an open incident for one condition, one wins, the others get
/// `Conflict`; once it is resolved, a new one may open. Conditions keep their first time.
pub async fn one_open_incident_per_condition<S: IncidentStore + ?Sized + 'static>(store: Arc<S>) {
    let attempts: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            async move {
                store
                    .create_incident(&incident(n, Some("no_active_workers")))
                    .await
            }
        })
        .collect();
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        won, 1,
        "exactly one open incident per condition: {results:?}"
    );
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(Error::Conflict(_)))));
    let mut open = store
        .open_incident_for("no_active_workers")
        .await
        .expect("open")
        .expect("the winner");
    assert_eq!(store.open_incident_for("other").await.expect("open"), None);
    open.status = IncidentStatus::Resolved;
    store.save_incident(&open).await.expect("resolve");
    assert_eq!(
        store
            .open_incident_for("no_active_workers")
            .await
            .expect("open"),
        None
    );
    store
        .create_incident(&incident(50, Some("no_active_workers")))
        .await
        .expect("a new one after the first resolved");
    // Reopening the first while the second is open is a conflict.
    open.status = IncidentStatus::Open;
    match store.save_incident(&open).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("two open incidents for one condition: expected Conflict, got {other:?}"),
    }

    assert_eq!(
        store
            .mark_condition("indexer_behind", t(5))
            .await
            .expect("mark"),
        t(5)
    );
    assert_eq!(
        store
            .mark_condition("indexer_behind", t(9))
            .await
            .expect("mark"),
        t(5),
        "the first time is kept"
    );
    store
        .clear_condition("indexer_behind")
        .await
        .expect("clear");
    assert_eq!(
        store
            .mark_condition("indexer_behind", t(12))
            .await
            .expect("mark"),
        t(12)
    );
}

/// Flags round-trip and replace.
pub async fn flags_round_trip<S: FlagStore + ?Sized>(store: Arc<S>) {
    assert!(store.flags().await.expect("flags").is_empty());
    let v = |enabled: bool, at: i64| FlagValue {
        flag: Flag::AllowAnonymousOverview,
        enabled,
        set_by: "admin".into(),
        set_at: Some(t(at)),
    };
    store.set_flag(&v(false, 1)).await.expect("set");
    store.set_flag(&v(true, 2)).await.expect("replace");
    let flags = store.flags().await.expect("flags");
    assert_eq!(flags.len(), 1);
    assert_eq!(flags.get(&Flag::AllowAnonymousOverview), Some(&v(true, 2)));
}
