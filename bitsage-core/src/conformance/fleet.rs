//! The fleet view over a store ([`crate::service::fleet`]): uptime counted from registration
//! from the per-minute rollup, latency percentiles per node and per region from scripted job
//! timings, and the network KPIs against the day before. Run by every store's tests, so the
//! rollup and timing queries of each backend are checked end to end.

use std::future::Future;
use std::time::Duration;

use chrono::TimeDelta;

use crate::crypto::{Hash32, PublicKey};
use crate::job::{JobResult, VerifiedCompletion};
use crate::ledger::EarningEntry;
use crate::node::{Heartbeat, NodeProfile};
use crate::receipt::{Receipt, ReceiptBody};
use crate::service::fleet;
use crate::{DynJobStore, EntryId, JobStoreExt as _, ReceiptId, Timestamp, TokenAmount};

use super::store::{key, new_job, new_node, node_id, t};

/// Every fleet check, each on a fresh store.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynJobStore>,
{
    uptime_counts_from_registration(fresh().await).await;
    latency_per_node_and_region(fresh().await).await;
    facts_reputation_and_drains(fresh().await).await;
}

/// Facts count by window; a stored reputation reads back and filters by range; a drain is
/// stored with its maintenance window (cut when it ends early), and silent minutes inside it
/// are excused from uptime.
pub async fn facts_reputation_and_drains(store: DynJobStore) {
    use crate::node::{Drain, NodeFilter};
    use crate::reputation::{self, NodeFact, ReputationInputs, ReputationPolicy};
    use crate::time::TimeWindow;
    for n in [1, 2] {
        store
            .create_node(&new_node(n, 1, t(0)))
            .await
            .expect("create");
    }
    for (fact, at) in [
        (NodeFact::LeaseCompleted, 10),
        (NodeFact::LeaseCompleted, 20),
        (NodeFact::ProofRejected, 30),
        (NodeFact::LeaseExpired, 500),
    ] {
        store
            .record_node_fact(&node_id(1), fact, t(at), "scripted")
            .await
            .expect("record fact");
    }
    let w = |a: i64, b: i64| TimeWindow::new(t(a), t(b)).expect("window");
    let counts = store
        .node_facts(&node_id(1), w(0, 100))
        .await
        .expect("facts");
    assert_eq!(counts.get(&NodeFact::LeaseCompleted), Some(&2));
    assert_eq!(counts.get(&NodeFact::ProofRejected), Some(&1));
    assert_eq!(
        counts.get(&NodeFact::LeaseExpired),
        None,
        "outside the window"
    );
    assert!(store
        .node_facts(&node_id(2), w(0, 1000))
        .await
        .expect("facts")
        .is_empty());

    let rep = reputation::compute(
        &ReputationPolicy::default(),
        &ReputationInputs {
            facts: counts,
            uptime: Some(1.0),
            ..ReputationInputs::default()
        },
        t(0),
        t(100),
    );
    store
        .set_reputation(&node_id(1), &rep)
        .await
        .expect("set reputation");
    let got = store
        .get_node(&node_id(1))
        .await
        .expect("get")
        .expect("node");
    assert_eq!(got.reputation.as_ref(), Some(&rep));
    let score = rep.score.expect("a score");
    let range = |min: Option<u32>, max: Option<u32>| NodeFilter {
        reputation_min: min,
        reputation_max: max,
        ..NodeFilter::default()
    };
    let page = crate::page::PageRequest::new(10, 0).expect("page");
    for (f, want) in [
        (range(Some(score), Some(score)), 1),
        (range(Some(score + 1), None), 0),
        (range(None, Some(score.saturating_sub(1))), 0),
        (range(Some(0), None), 1),
    ] {
        let n = store.list_nodes(&f, page).await.expect("list").total;
        assert_eq!(
            n, want,
            "{f:?}: a node without reputation never matches a range"
        );
    }
    match store.set_reputation(&node_id(9), &rep).await {
        Err(crate::Error::NotFound { .. }) => {}
        other => panic!("reputation of an unknown node: expected NotFound, got {other:?}"),
    }

    // Node 2 beats in minute 0 only, drained from minute 1 to minute 4 (ended at minute 3).
    beat(&store, 2, 1, t(5)).await;
    let drain = Drain {
        reason: "driver upgrade".into(),
        by: "ops".into(),
        since: t(60),
        until: t(240),
    };
    let rec = store
        .set_drain(&node_id(2), Some(&drain), t(60))
        .await
        .expect("drain");
    assert_eq!(rec.drain.as_ref(), Some(&drain));
    let rec = store
        .set_drain(&node_id(2), None, t(180))
        .await
        .expect("undrain");
    assert_eq!(rec.drain, None);
    let windows = store
        .maintenance_windows(&node_id(2), w(0, 600))
        .await
        .expect("windows");
    assert_eq!(windows, vec![w(60, 180)], "cut at the undrain");
    assert!(store
        .maintenance_windows(&node_id(2), w(180, 600))
        .await
        .expect("windows")
        .is_empty());
    let n2 = store.get_node(&node_id(2)).await.expect("get").expect("n2");
    let up = store.uptime(&n2, w(0, 300)).await.expect("uptime");
    // 5 minutes: 1 up, 2 excused (minutes 1–2 drained and silent), 2 down.
    assert_eq!(
        (up.minutes_counted, up.minutes_up, up.minutes_excused),
        (5, 1, 2)
    );
    assert_eq!(up.ratio, Some(1.0 / 3.0));
    match store.set_drain(&node_id(9), None, t(0)).await {
        Err(crate::Error::NotFound { .. }) => {}
        other => panic!("drain of an unknown node: expected NotFound, got {other:?}"),
    }

    // Retention: facts, raw heartbeats and rollups past their cutoffs go; the node keeps its
    // last-seen time.
    let keep = crate::time::earliest();
    let report = store
        .apply_retention(&crate::retention::RetentionCutoffs {
            raw_heartbeats: t(60),
            raw_gpu_samples: keep,
            minute_rollups: t(60),
            job_timings: keep,
            node_facts: t(100),
        })
        .await
        .expect("retention");
    assert_eq!(report.node_facts, 3, "facts at 10, 20, 30");
    assert_eq!(report.heartbeats, 1, "node 2's beat at 5");
    assert_eq!(report.rollups, 1, "node 2's minute 0");
    assert_eq!(
        store.last_seen(&node_id(2)).await.expect("last seen"),
        Some(t(5)),
        "kept on the node"
    );
    assert!(store
        .heartbeat_times(&node_id(2), w(0, 600))
        .await
        .expect("times")
        .is_empty());
    let left = store
        .node_facts(&node_id(1), w(0, 1000))
        .await
        .expect("facts");
    assert_eq!(left.get(&NodeFact::LeaseExpired), Some(&1));
}

async fn beat(store: &DynJobStore, n: u64, seq: u64, at: Timestamp) {
    store
        .append_heartbeat(&Heartbeat {
            node_id: node_id(n),
            at,
            sequence: seq,
            load_average_1m: None,
            agent_version: "0.1.0".into(),
            gpu_collector: None,
            gpu_samples: Vec::new(),
        })
        .await
        .expect("heartbeat");
}

/// A node 30 s old that heartbeated throughout is up 1.0 over 24 h, 7 d and 30 d; a node
/// that went silent after its first minute is up 1 of the minutes since it registered.
pub async fn uptime_counts_from_registration(store: DynJobStore) {
    let day = 86_400;
    store
        .create_node(&new_node(1, 1, t(day)))
        .await
        .expect("create");
    store
        .create_node(&new_node(2, 1, t(day - 240)))
        .await
        .expect("create");
    for (i, s) in [0, 10, 20, 30].into_iter().enumerate() {
        beat(&store, 1, i as u64 + 1, t(day + s)).await;
    }
    beat(&store, 2, 1, t(day - 230)).await;
    let now = t(day + 30);
    let n1 = store.get_node(&node_id(1)).await.expect("get").expect("n1");
    let ops = fleet::node_operations(&*store, &n1, now)
        .await
        .expect("operations");
    for u in [&ops.uptime_24h, &ops.uptime_7d, &ops.uptime_30d] {
        assert_eq!(u.ratio, Some(1.0), "30 s old and beating: {u:?}");
        assert_eq!(u.counted_from, t(day));
        assert_eq!(u.heartbeats, 4);
    }
    assert_eq!(ops.latency_24h.run.count, 0);
    assert_eq!(ops.latency_24h.run.p95_ms, None, "no job: n/a, not 0");
    // Node 2: registered 4.5 minutes before `now`, beat once in its first minute.
    let n2 = store.get_node(&node_id(2)).await.expect("get").expect("n2");
    let ops = fleet::node_operations(&*store, &n2, now)
        .await
        .expect("operations");
    let u = &ops.uptime_24h;
    assert_eq!(u.minutes_up, 1);
    assert!(
        (4..=5).contains(&u.minutes_counted),
        "minutes since registration: {u:?}"
    );
    let s = fleet::summary(&*store, now).await.expect("summary");
    assert_eq!(s.nodes_up.value, Some(2.0));
    assert_eq!(s.nodes_up.previous, Some(0.0));
    assert_eq!(s.trend.len(), 24);
    assert_eq!(s.trend.last().map(|p| p.nodes_up), Some(2));
}

/// A receipt and ledger entry for `job` completed by node `n` at `at`.
fn paperwork(
    n: u64,
    job: crate::JobId,
    payment: TokenAmount,
    hash: u8,
    at: Timestamp,
) -> (Receipt, EarningEntry) {
    let node_key = key(n as u8);
    let coordinator = key(200);
    let fee = payment.mul_bps(250).expect("fee");
    let net = payment.checked_sub(fee).expect("net");
    let body = ReceiptBody {
        id: ReceiptId(job.0),
        job_id: job,
        kind: "poseidon2-chain".into(),
        node_id: node_id(n),
        node_key: PublicKey::of(&node_key),
        coordinator_key: PublicKey::of(&coordinator),
        output: "0123".into(),
        proof_hash: Hash32([hash; 32]),
        payment,
        fee,
        net,
        completed_at: at,
    };
    let sig = body.sign_as_node(&node_key).expect("sign");
    let receipt = Receipt::countersign(body, sig, &coordinator).expect("countersign");
    let entry = EarningEntry {
        id: EntryId(job.0),
        node_id: node_id(n),
        job_id: job,
        gross: payment,
        fee,
        net,
        credited_at: at,
    };
    (receipt, entry)
}

/// Node `n` takes one job submitted at `submitted`, leased `wait` s later and completed
/// `run` s after the lease.
async fn complete_one(store: &DynJobStore, n: u64, seed: u64, submitted: i64, wait: i64, run: i64) {
    let job = new_job(seed, 1_000, 1, t(submitted));
    store.enqueue_job(&job).await.expect("enqueue");
    let lease = store
        .lease_job(&node_id(n), t(submitted + wait), Duration::from_secs(3_600))
        .await
        .expect("lease")
        .expect("the job");
    assert_eq!(lease.spec.id, job.spec.id);
    let done = t(submitted + wait + run);
    let (receipt, entry) = paperwork(
        n,
        job.spec.id,
        TokenAmount::from(1_000u64),
        seed as u8,
        done,
    );
    let c = VerifiedCompletion {
        lease: lease.reference(),
        result: JobResult {
            output: "0123".into(),
            proof_hash: Hash32([seed as u8; 32]),
            proof_ref: format!("proofs/{seed}"),
            completed_at: done,
        },
        receipt,
        entry,
        verify_time: Duration::from_millis(seed),
    };
    store.settle_completion(&c, done).await.expect("settle");
}

/// p50/p95/p99 per node and per region from known run times; the KPIs compare the last 24 h
/// with the 24 h before.
pub async fn latency_per_node_and_region(store: DynJobStore) {
    let day: i64 = 86_400;
    let region = |r: &str| NodeProfile {
        region: Some(r.into()),
        ..NodeProfile::default()
    };
    for (n, p) in [
        (1, region("eu-west")),
        (2, region("us-east")),
        (3, NodeProfile::default()),
    ] {
        let mut node = new_node(n, 1, t(0));
        node.profile = p;
        store.create_node(&node).await.expect("create");
    }
    // The day before: two jobs of node 3 (runs 50 s and 70 s).
    complete_one(&store, 3, 1, 1_000, 1, 50).await;
    complete_one(&store, 3, 2, 2_000, 1, 70).await;
    // The last day: node 1 runs 1..=20 s, node 2 runs 101..=120 s, queue waits of 2 s.
    let mut seed = 10;
    for i in 1..=20 {
        complete_one(&store, 1, seed, day + i * 300, 2, i).await;
        complete_one(&store, 2, seed + 1, day + i * 300 + 100, 2, 100 + i).await;
        seed += 2;
    }
    let now = t(2 * day - 1);
    let n1 = store.get_node(&node_id(1)).await.expect("get").expect("n1");
    let lat = fleet::node_operations(&*store, &n1, now)
        .await
        .expect("operations")
        .latency_24h;
    assert_eq!(lat.run.count, 20);
    assert_eq!(
        (lat.run.p50_ms, lat.run.p95_ms, lat.run.p99_ms),
        (Some(10_000.0), Some(19_000.0), Some(20_000.0)),
        "nearest-rank percentiles of 1..=20 s"
    );
    assert_eq!(lat.queue_wait.p95_ms, Some(2_000.0));
    assert!(lat.verify.p50_ms.is_some());

    let s = fleet::summary(&*store, now).await.expect("summary");
    assert_eq!(s.jobs.value, Some(40.0));
    assert_eq!(s.jobs.previous, Some(2.0));
    assert_eq!(s.jobs.change, Some(38.0));
    // 40 runs: 1..=20 and 101..=120 s; p95 is the 38th: 118 s. The day before: 70 s.
    assert_eq!(s.p95_ms.value, Some(118_000.0));
    assert_eq!(s.p95_ms.previous, Some(70_000.0));
    assert_eq!(s.job_kinds, vec!["poseidon2-chain".to_string()]);
    assert_eq!(s.job_kinds_served.value, Some(1.0));
    let by: Vec<_> = s
        .by_region
        .iter()
        .map(|r| (r.region.as_str(), r.run.count, r.run.p95_ms))
        .collect();
    assert_eq!(
        by,
        vec![
            ("eu-west", 20, Some(19_000.0)),
            ("us-east", 20, Some(119_000.0)),
        ],
        "regions from the nodes' profiles at completion"
    );
    let jobs_in_trend: u64 = s.trend.iter().map(|p| p.jobs).sum();
    assert_eq!(jobs_in_trend, 40);
    assert!(!s.sampled);
    // A window with nothing in it: no p95, not a zero.
    let empty = fleet::summary(&*store, now + TimeDelta::days(5))
        .await
        .expect("summary");
    assert_eq!(empty.p95_ms.value, None);
    assert_eq!(empty.p95_ms.change, None);
}
