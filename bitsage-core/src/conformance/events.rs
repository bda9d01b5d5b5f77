//! Conformance suite for the event seam: the store's outbox ([`EventLog`](crate::EventLog)), the one-transaction
//! settlement of a verified completion, and the [`EventBus`](crate::EventBus) wake-ups. Each check takes a fresh,
//! empty store with its bus.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::crypto::{Hash32, PublicKey};
use crate::event::{StoredEvent, Topic};
use crate::job::{JobResult, VerifiedCompletion};
use crate::ledger::EarningEntry;
use crate::lifecycle::{transition, LifecycleEvent};
use crate::node::Heartbeat;
use crate::receipt::{Receipt, ReceiptBody};
use crate::{DynCoordinatorStore, DynEventBus, EntryId, Error, JobStatus, ReceiptId, TokenAmount};

use super::store::{cursor, event, key, new_job, new_node, node_id, t};

/// A store under test and the bus that announces its commits.
pub struct Fixture {
    /// The store (job store, replay log, event log).
    pub store: DynCoordinatorStore,
    /// Its bus.
    pub bus: DynEventBus,
}

/// Runs every check, each on a fresh fixture from `fresh`.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Fixture>,
{
    writes_leave_their_events_in_order(fresh().await).await;
    failed_writes_leave_no_events(fresh().await).await;
    settle_completion_is_one_transaction(fresh().await).await;
    ids_follow_commit_order_under_concurrency(fresh().await, 8, 25).await;
    bus_wakes_after_a_commit(fresh().await).await;
    retention_keeps_the_newest(fresh().await).await;
    a_lone_event_is_appended_in_order(fresh().await).await;
    epochs_are_assembled_once_and_accepted_once(fresh().await).await;
}

/// Settles one funded job (node 1, wallet 1) paying `pay`; returns its receipt.
async fn settle_funded(
    s: &DynCoordinatorStore,
    seed: u64,
    pay: u64,
    payer: crate::WalletAddress,
    at: i64,
) -> Receipt {
    let job = super::store::funded_job(seed, pay, payer, crate::funding::FundingLimit::LocalCredit);
    s.enqueue_job(&job).await.expect("enqueue");
    let lease = s
        .lease_job(&node_id(1), t(at), Duration::from_secs(600))
        .await
        .expect("lease")
        .expect("a job");
    let (mut receipt, mut entry) = paperwork(job.spec.id, TokenAmount::from(pay), seed as u8);
    // Completion times order the epoch's leaves.
    receipt.body.completed_at = t(at);
    let sig = receipt.body.sign_as_node(&key(1)).expect("sign");
    receipt = Receipt::countersign(receipt.body, sig, &key(200)).expect("countersign");
    entry.credited_at = t(at);
    let c = VerifiedCompletion {
        lease: lease.reference(),
        result: result(seed as u8),
        receipt: receipt.clone(),
        entry,
        verify_time: Duration::from_millis(3),
    };
    s.settle_completion(&c, t(at)).await.expect("settle");
    receipt
}

/// Settlement epochs ([`crate::SettlementLedger`]): waiting receipts (completion order, at
/// most `max_items`) and slashes go into one epoch with the next id; an unfinished epoch is
/// handed out again (never a second one over the same receipts); acceptance is final and
/// takes the payments out of the payers' unsettled amounts.
pub async fn epochs_are_assembled_once_and_accepted_once(f: Fixture) {
    use crate::settlement::{EpochState, SlashItem};
    let s = &f.store;
    assert!(
        s.next_epoch(10, t(0)).await.expect("next").is_none(),
        "nothing waits"
    );
    s.create_node(&new_node(1, 1, t(0))).await.expect("create");
    let payer = crate::WalletAddress::parse("0xfee5").expect("payer");
    s.set_payer(&payer, None, TokenAmount::from(10_000u64), t(0))
        .await
        .expect("payer");
    let r1 = settle_funded(s, 1, 1_000, payer, 10).await;
    let r2 = settle_funded(s, 2, 2_000, payer, 11).await;
    let r3 = settle_funded(s, 3, 3_000, payer, 12).await;
    let backlog = s.settlement_backlog().await.expect("backlog");
    assert_eq!((backlog.receipts, backlog.oldest), (3, Some(t(10))));
    assert!(s.unfinished_epoch().await.expect("unfinished").is_none());

    let e1 = s
        .next_epoch(2, t(20))
        .await
        .expect("next")
        .expect("an epoch");
    assert_eq!(e1.id, 1);
    assert_eq!(e1.state, EpochState::Pending);
    let ids: Vec<ReceiptId> = e1.items.iter().map(|i| i.receipt.body.id).collect();
    assert_eq!(
        ids,
        vec![r1.body.id, r2.body.id],
        "oldest first, at most max_items"
    );
    assert_eq!(e1.items[0].receipt, r1);
    assert_eq!(e1.items[0].payer, Some(payer));
    assert_eq!(
        e1.items[0].worker,
        super::store::new_node(1, 1, t(0)).wallet
    );
    assert_eq!(
        s.receipt_epoch(&r1.body.id).await.expect("epoch of"),
        Some(1)
    );
    assert_eq!(s.receipt_epoch(&r3.body.id).await.expect("epoch of"), None);
    assert_eq!(
        s.unfinished_epoch()
            .await
            .expect("unfinished")
            .map(|e| e.id),
        Some(1)
    );
    // Unfinished: handed out again, not a second epoch.
    let again = s
        .next_epoch(2, t(21))
        .await
        .expect("next")
        .expect("the same");
    assert_eq!((again.id, again.items.len()), (1, 2));
    s.epoch_sent(1, "0xabc", t(22)).await.expect("sent");
    let sent = s.epoch(1).await.expect("epoch").expect("exists");
    assert_eq!(
        sent.state,
        EpochState::Sent {
            tx_hash: "0xabc".into()
        }
    );
    s.epoch_failed(1, "chain down", t(23))
        .await
        .expect("failed");
    assert_eq!(
        s.next_epoch(2, t(24))
            .await
            .expect("next")
            .expect("retry")
            .id,
        1,
        "a failed epoch is retried under its id"
    );
    let books = s.payer(&payer).await.expect("payer").expect("exists");
    assert_eq!(books.unsettled, TokenAmount::from(6_000u64));
    s.epoch_accepted(1, "0xabc", 77, t(25))
        .await
        .expect("accepted");
    // Accepting again changes nothing; an accepted epoch cannot be sent or failed.
    s.epoch_accepted(1, "0xabc", 77, t(26))
        .await
        .expect("idempotent");
    assert!(matches!(
        s.epoch_sent(1, "0xdef", t(27)).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.epoch_failed(1, "x", t(27)).await,
        Err(Error::Conflict(_))
    ));
    let books = s.payer(&payer).await.expect("payer").expect("exists");
    assert_eq!(
        books.unsettled,
        TokenAmount::from(3_000u64),
        "epoch 1 paid 1,000 + 2,000"
    );
    let accepted = s.epoch(1).await.expect("epoch").expect("exists");
    assert_eq!(
        accepted.state,
        EpochState::Accepted {
            tx_hash: "0xabc".into(),
            block: 77
        }
    );
    let backlog = s.settlement_backlog().await.expect("backlog");
    assert_eq!((backlog.receipts, backlog.oldest), (1, Some(t(12))));
    assert!(s.unfinished_epoch().await.expect("unfinished").is_none());

    // The rest, with a slash.
    let slash = SlashItem {
        node_id: node_id(1),
        worker: super::store::new_node(1, 1, t(0)).wallet,
        job_id: r3.body.job_id,
        reason: "invalid proof".into(),
        at: t(30),
    };
    s.record_slash(&slash).await.expect("slash");
    assert_eq!(s.settlement_backlog().await.expect("backlog").slashes, 1);
    let e2 = s
        .next_epoch(10, t(31))
        .await
        .expect("next")
        .expect("epoch 2");
    assert_eq!(e2.id, 2);
    assert_eq!(e2.items.len(), 1);
    assert_eq!(e2.slashes, vec![slash]);
    s.epoch_accepted(2, "0xdef", 78, t(32))
        .await
        .expect("accepted");
    assert!(s.next_epoch(10, t(33)).await.expect("next").is_none());
    assert_eq!(
        s.settlement_backlog().await.expect("backlog"),
        crate::settlement::Backlog::default()
    );
}

async fn all_events(f: &Fixture) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = f.store.events_after(after, 3).await.expect("events_after");
        let Some(last) = page.last() else {
            return out;
        };
        after = last.id;
        out.extend(page);
    }
}

fn kinds(events: &[StoredEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}/{}", e.topic, e.kind))
        .collect()
}

fn result(hash: u8) -> JobResult {
    JobResult {
        output: "0123".into(),
        proof_hash: Hash32([hash; 32]),
        proof_ref: format!("proofs/{hash}"),
        completed_at: t(5),
    }
}

/// A receipt and a ledger entry for `job` completed by node 1.
fn paperwork(job: crate::JobId, payment: TokenAmount, hash: u8) -> (Receipt, EarningEntry) {
    let node_key = key(1);
    let coordinator = key(200);
    let fee = payment.mul_bps(250).expect("fee");
    let net = payment.checked_sub(fee).expect("net");
    let body = ReceiptBody {
        id: ReceiptId(job.0),
        job_id: job,
        kind: "poseidon2-chain".into(),
        node_id: node_id(1),
        node_key: PublicKey::of(&node_key),
        coordinator_key: PublicKey::of(&coordinator),
        output: "0123".into(),
        proof_hash: Hash32([hash; 32]),
        payment,
        fee,
        net,
        completed_at: t(5),
    };
    let sig = body.sign_as_node(&node_key).expect("sign");
    let receipt = Receipt::countersign(body, sig, &coordinator).expect("countersign");
    let entry = EarningEntry {
        id: EntryId(job.0),
        node_id: node_id(1),
        job_id: job,
        gross: payment,
        fee,
        net,
        credited_at: t(5),
    };
    (receipt, entry)
}

/// Every state-changing write leaves its events, with strictly increasing ids; heartbeats
/// leave none; `events_after` pages; `last_event_id` is the newest id.
pub async fn writes_leave_their_events_in_order(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.last_event_id().await.expect("last"), 0);
    s.create_node(&new_node(1, 1, t(0))).await.expect("create");
    s.create_node(&new_node(2, 1, t(0))).await.expect("create");
    let probe = transition(
        crate::NodeStatus::Pending,
        &LifecycleEvent::ProbePassed {
            job_id: "probe".into(),
        },
    )
    .expect("transition")
    .expect("moves");
    s.apply_transition(&node_id(1), &probe, t(1))
        .await
        .expect("move");
    s.append_heartbeat(&Heartbeat {
        node_id: node_id(1),
        at: t(2),
        sequence: 1,
        load_average_1m: None,
        agent_version: "x".into(),
        gpu_collector: None,
        gpu_samples: vec![],
    })
    .await
    .expect("heartbeat");
    let job = new_job(1, 100, 2, t(2));
    s.enqueue_job(&job).await.expect("enqueue");
    let lease = s
        .lease_job(&node_id(1), t(3), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("a job");
    s.fail_job(&lease.reference(), "gave it back", t(4))
        .await
        .expect("fail");
    let lease = s
        .lease_job(&node_id(1), t(4), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("a job");
    s.complete_job(&lease.reference(), &result(1), t(5))
        .await
        .expect("complete");
    let (receipt, _) = paperwork(job.spec.id, TokenAmount::from(100u64), 1);
    s.insert_receipt(&receipt).await.expect("receipt");
    s.insert_receipt(&receipt).await.expect("again: no event");
    let page = [event(10, "a", 1, 0), event(10, "a", 1, 1)];
    s.append_chain_events("idx", &page, &cursor(10, "a"))
        .await
        .expect("chain");
    s.append_chain_events("idx", &page, &cursor(10, "a"))
        .await
        .expect("again: no event");
    s.rewind_chain("idx", &cursor(9, "a"))
        .await
        .expect("rewind");

    let events = all_events(&f).await;
    assert_eq!(
        kinds(&events),
        [
            "workers/node_registered",
            "workers/node_registered",
            "workers/node_status_changed",
            "jobs/job_queued",
            "jobs/job_leased",
            "jobs/job_requeued",
            "jobs/job_leased",
            "jobs/job_completed",
            "receipts/receipt_issued",
            "staking/chain_event_indexed",
            "staking/chain_event_indexed",
            "staking/chain_rewound",
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert_eq!(
        s.last_event_id().await.expect("last"),
        events.last().expect("some").id
    );
    assert_eq!(events[2].data["to"], "active");
    assert_eq!(events[7].data["job_id"], serde_json::json!(job.spec.id));
    assert_eq!(events[7].data["node_id"], "node-1");
    let tail = s.events_after(events[9].id, 100).await.expect("after");
    assert_eq!(tail.len(), 2);
    assert!(s
        .events_after(events[11].id, 100)
        .await
        .expect("after")
        .is_empty());
    assert!(events.iter().all(|e| e.topic != Topic::Incidents));
}

/// A write that fails leaves no event.
pub async fn failed_writes_leave_no_events(f: Fixture) {
    let s = &f.store;
    s.create_node(&new_node(1, 1, t(0))).await.expect("create");
    let before = s.last_event_id().await.expect("last");
    assert!(s.create_node(&new_node(1, 1, t(0))).await.is_err());
    let wrong = transition(
        crate::NodeStatus::Active,
        &LifecycleEvent::HeartbeatOverdue { silent_secs: 99 },
    )
    .expect("transition")
    .expect("moves");
    assert!(s.apply_transition(&node_id(1), &wrong, t(1)).await.is_err());
    let job = new_job(1, 100, 2, t(2));
    s.enqueue_job(&job).await.expect("enqueue");
    assert!(s.enqueue_job(&job).await.is_err());
    let after_enqueue = s.last_event_id().await.expect("last");
    assert_eq!(after_enqueue, before + 1, "only the enqueue left an event");
    let lease = s
        .lease_job(&node_id(1), t(3), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("a job");
    let mut stolen = lease.reference();
    stolen.node_id = node_id(9);
    assert!(s.complete_job(&stolen, &result(1), t(5)).await.is_err());
    assert!(s.fail_job(&stolen, "no", t(5)).await.is_err());
    assert_eq!(
        s.last_event_id().await.expect("last"),
        after_enqueue + 1,
        "only the lease"
    );
}

/// `settle_completion`: job, receipt, credit and events together; a retry adds nothing; a
/// conflicting receipt or a lost lease changes nothing.
pub async fn settle_completion_is_one_transaction(f: Fixture) {
    let s = &f.store;
    s.create_node(&new_node(1, 1, t(0))).await.expect("create");
    let pay = TokenAmount::from(1_000_000u64);
    // A conflicting receipt already stored under the job's id: nothing is settled.
    let first = new_job(1, 1_000_000, 2, t(1));
    s.enqueue_job(&first).await.expect("enqueue");
    let lease = s
        .lease_job(&node_id(1), t(2), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("a job");
    let (receipt, entry) = paperwork(first.spec.id, pay, 1);
    let (mut other, _) = paperwork(first.spec.id, pay, 1);
    other.body.output = "ffff".into();
    let sig = other.body.sign_as_node(&key(1)).expect("sign");
    let other = Receipt::countersign(other.body, sig, &key(200)).expect("countersign");
    s.insert_receipt(&other).await.expect("conflicting receipt");
    let before = s.last_event_id().await.expect("last");
    let c = VerifiedCompletion {
        lease: lease.reference(),
        result: result(1),
        receipt: receipt.clone(),
        entry: entry.clone(),
        verify_time: Duration::from_millis(3),
    };
    match s.settle_completion(&c, t(5)).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("a conflicting receipt: expected AlreadyExists, got {other:?}"),
    }
    let job = s.get_job(&first.spec.id).await.expect("get").expect("job");
    assert_eq!(job.status, JobStatus::Leased, "the job is not completed");
    let total = s.earnings_total(&node_id(1), None).await.expect("total");
    assert_eq!(total.entries, 0, "nothing credited");
    assert_eq!(s.last_event_id().await.expect("last"), before, "no event");

    // A clean settlement.
    let second = new_job(2, 1_000_000, 2, t(1));
    s.enqueue_job(&second).await.expect("enqueue");
    let lease = s
        .lease_job(&node_id(1), t(3), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("a job");
    assert_eq!(lease.spec.id, second.spec.id);
    let (receipt, entry) = paperwork(second.spec.id, pay, 2);
    let c = VerifiedCompletion {
        lease: lease.reference(),
        result: result(2),
        receipt: receipt.clone(),
        entry: entry.clone(),
        verify_time: Duration::from_millis(3),
    };
    let mark = s.last_event_id().await.expect("last");
    let done = s.settle_completion(&c, t(5)).await.expect("settle");
    assert_eq!(done.status, JobStatus::Completed);
    // The job's timing is stored with it: submitted t(1), leased t(3), completed t(5).
    let all = crate::time::TimeWindow::new(t(0), t(100)).expect("window");
    let timings = s
        .job_timings(&crate::timing::TimingFilter {
            node: Some(node_id(1)),
            ..crate::timing::TimingFilter::window(all)
        })
        .await
        .expect("timings");
    assert_eq!(timings.len(), 1, "one timing per settled job");
    let tm = &timings[0];
    assert_eq!(tm.job_id, second.spec.id);
    assert_eq!(
        (tm.queue_wait, tm.run, tm.verify),
        (
            Duration::from_secs(2),
            Duration::from_secs(2),
            Duration::from_millis(3)
        )
    );
    assert_eq!((tm.completed_at, tm.region.as_deref()), (t(5), None));
    let elsewhere = s
        .job_timings(&crate::timing::TimingFilter {
            region: Some("eu-west".into()),
            ..crate::timing::TimingFilter::window(all)
        })
        .await
        .expect("timings");
    assert!(elsewhere.is_empty(), "filtered by region");
    // The node's reputation fact, once, with the settlement.
    let facts = s.node_facts(&node_id(1), all).await.expect("facts");
    assert_eq!(
        facts.get(&crate::reputation::NodeFact::LeaseCompleted),
        Some(&1)
    );
    assert_eq!(
        s.get_receipt(&receipt.body.id).await.expect("get"),
        Some(receipt.clone())
    );
    let total = s.earnings_total(&node_id(1), None).await.expect("total");
    assert_eq!((total.entries, total.net), (1, entry.net));
    let new = s.events_after(mark, 10).await.expect("events");
    assert_eq!(
        kinds(&new),
        ["jobs/job_completed", "receipts/receipt_issued"]
    );
    // A retry (the coordinator crashed before answering) changes nothing.
    let mark = s.last_event_id().await.expect("last");
    let again = s.settle_completion(&c, t(6)).await.expect("retry");
    assert_eq!(again.status, JobStatus::Completed);
    let total = s.earnings_total(&node_id(1), None).await.expect("total");
    assert_eq!(total.entries, 1, "credited once");
    assert_eq!(s.last_event_id().await.expect("last"), mark, "no new event");
    let facts = s.node_facts(&node_id(1), all).await.expect("facts");
    assert_eq!(
        facts.get(&crate::reputation::NodeFact::LeaseCompleted),
        Some(&1),
        "counted once"
    );
    // Without the lease (another node's claim), nothing happens.
    let mut stolen = c.clone();
    stolen.lease.node_id = node_id(2);
    stolen.receipt.body.node_id = node_id(2);
    stolen.entry.node_id = node_id(2);
    assert!(s.settle_completion(&stolen, t(6)).await.is_err());
    // A completion naming another job is refused before anything is read.
    let mut crossed = c.clone();
    crossed.entry.job_id = first.spec.id;
    assert!(matches!(
        s.settle_completion(&crossed, t(6)).await,
        Err(Error::Invalid { .. })
    ));
}

/// Concurrent writers: a reader polling `events_after` never sees an id at or below one it
/// already saw appear later, and in the end has seen every event exactly once.
pub async fn ids_follow_commit_order_under_concurrency(f: Fixture, writers: u64, each: u64) {
    let store = Arc::clone(&f.store);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                store
                    .enqueue_job(&new_job(w * 10_000 + i, 1, 1, t(1)))
                    .await
                    .expect("enqueue");
            }
        }));
    }
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            let expected = (writers * each) as usize;
            for _ in 0..200_000 {
                let page = store.events_after(after, 50).await.expect("read");
                for e in &page {
                    assert!(e.id > after, "ids only grow for a reader");
                    after = e.id;
                    seen.push(e.id);
                }
                if seen.len() >= expected {
                    break;
                }
                if page.is_empty() {
                    tokio::task::yield_now().await;
                }
            }
            seen
        })
    };
    for task in tasks {
        task.await.expect("writer");
    }
    let seen = reader.await.expect("reader");
    let all: Vec<u64> = all_events(&f).await.iter().map(|e| e.id).collect();
    assert_eq!(all.len() as u64, writers * each);
    assert_eq!(
        seen, all,
        "the polling reader saw every event, in order, none skipped"
    );
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());
}

/// A commit wakes a waiter on the bus.
pub async fn bus_wakes_after_a_commit(f: Fixture) {
    let seen = f.bus.generation();
    let bus = Arc::clone(&f.bus);
    let waiter = tokio::spawn(async move { bus.wait_changed(seen).await });
    f.store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("create");
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("a wake-up within 10 s")
        .expect("join")
        .expect("bus");
    assert_ne!(got, seen);
    // Waiting on a generation already passed returns at once.
    let now = tokio::time::timeout(Duration::from_secs(1), f.bus.wait_changed(seen))
        .await
        .expect("immediate")
        .expect("bus");
    assert_ne!(now, seen);
}

/// Retention deletes old events but never the newest, so `last_event_id` never goes back.
pub async fn retention_keeps_the_newest(f: Fixture) {
    let s = &f.store;
    for n in 1..=3 {
        s.create_node(&new_node(n, 1, t(0))).await.expect("create");
    }
    let last = s.last_event_id().await.expect("last");
    let far_future = t(0) + chrono::TimeDelta::days(365 * 100);
    assert_eq!(s.purge_events(far_future).await.expect("purge"), 2);
    assert_eq!(s.last_event_id().await.expect("last"), last);
    let left = s.events_after(0, 10).await.expect("left");
    assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), [last]);
    assert_eq!(s.purge_events(t(-100)).await.expect("purge"), 0);
}

/// `append_event` writes one event with the next id, readable like any other, and wakes the
/// bus.
pub async fn a_lone_event_is_appended_in_order(f: Fixture) {
    let s = &f.store;
    s.create_node(&new_node(1, 1, t(0))).await.expect("create");
    let before = s.last_event_id().await.expect("last");
    let seen = f.bus.generation();
    let event = crate::event::NewEvent {
        topic: crate::event::Topic::Workers,
        kind: "heartbeats_summary".into(),
        data: serde_json::json!({ "heartbeats": 3 }),
    };
    let id = s.append_event(&event, t(7)).await.expect("append");
    assert!(id > before, "id {id} must follow {before}");
    assert_eq!(s.last_event_id().await.expect("last"), id);
    let got = s.events_after(before, 10).await.expect("after");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].topic, crate::event::Topic::Workers);
    assert_eq!(got[0].kind, "heartbeats_summary");
    assert_eq!(got[0].at, t(7));
    assert_eq!(got[0].data, event.data);
    tokio::time::timeout(std::time::Duration::from_secs(5), f.bus.wait_changed(seen))
        .await
        .expect("the bus wakes after append_event")
        .expect("bus");
    s.create_node(&new_node(2, 2, t(8))).await.expect("create");
    assert!(s.last_event_id().await.expect("last") > id);
}
