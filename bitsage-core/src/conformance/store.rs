//! Conformance suite for [`JobStore`](crate::JobStore).
//!
//! [`run_all`] takes a factory that returns a **fresh, empty** store for each check, so checks
//! never see each other's jobs. Backends call it from one test named after themselves
//! (`conformance_sqlite`, ...). [`lease_exactly_once`] is also exposed with a size parameter for
//! the heavier per-store lease test.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use primitive_types::U256;

use crate::chain::{ChainEvent, IndexerCursor};
use crate::crypto::{Hash32, PublicKey};
use crate::funding::{Funding, FundingLimit, PayerAccount};
use crate::gpu::{DeviceState, GpuDevice, GpuSample, GpuTier, HostInfo, XidEvent};
use crate::job::{JobFilter, JobResult, NewJob};
use crate::ledger::EarningEntry;
use crate::lifecycle::{transition, LifecycleEvent};
use crate::node::{HardwareReport, Heartbeat, NewNode, NodeFilter};
use crate::page::PageRequest;
use crate::receipt::{Receipt, ReceiptBody, ReceiptFilter};
use crate::wallet::FeltHex;
use crate::{
    DynJobStore, EntryId, Error, Inserted, JobId, JobKind, JobSpec, JobStatus, JobStoreExt, NodeId,
    NodeStatus, ReceiptId, TimeWindow, Timestamp, TokenAmount, WalletAddress,
};

/// Runs every check of every focused port, each on a fresh store from `fresh`.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynJobStore>,
{
    run_nodes(&fresh).await;
    run_telemetry(&fresh).await;
    run_job_queue(&fresh).await;
    run_receipt_ledger(&fresh).await;
    run_chain_events(&fresh).await;
    run_payers(&fresh).await;
    super::fleet::run_all(&fresh).await;
}

/// The [`crate::PayerLedger`] checks: credit and keys, reservations moving with their jobs,
/// refusals storing nothing, concurrent submissions of one account never over-reserving.
pub async fn run_payers<F, Fut>(fresh: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynJobStore>,
{
    payer_reservations_follow_their_jobs(fresh().await).await;
    payer_reservations_hold_under_concurrency(fresh().await, 40, 10).await;
}

fn assert_books(p: &PayerAccount, reserved: u64, unsettled: u64, spent: u64, what: &str) {
    assert_eq!(
        (p.reserved, p.unsettled, p.spent),
        (
            TokenAmount::from(reserved),
            TokenAmount::from(unsettled),
            TokenAmount::from(spent)
        ),
        "{what}: (reserved, unsettled, spent)"
    );
}

/// Credit and key round-trip; a job reserves, completion spends, a final failure releases; a
/// payment beyond the limit is refused and stores nothing; an escrow limit counts what is
/// spent but unsettled.
pub async fn payer_reservations_follow_their_jobs(store: DynJobStore) {
    let payer = wallet(77);
    assert!(store.payer(&payer).await.expect("payer").is_none());
    let key = FeltHex::parse("0x1234").expect("key");
    let set = store
        .set_payer(&payer, Some(&key), TokenAmount::from(100u64), t(0))
        .await
        .expect("set payer");
    assert_eq!(set.credit, TokenAmount::from(100u64));
    let got = store.payer(&payer).await.expect("payer").expect("exists");
    assert_eq!(got.public_key.as_ref(), Some(&key));
    assert_books(&got, 0, 0, 0, "fresh");

    let a = store
        .enqueue_job(&funded_job(1, 60, payer, FundingLimit::LocalCredit))
        .await
        .expect("within credit");
    assert_eq!(a.payer, Some(payer));
    let p = store.payer(&payer).await.expect("payer").expect("exists");
    assert_books(&p, 60, 0, 0, "after a reservation");
    // 60 + 60 > 100: refused, nothing stored.
    let refused = funded_job(2, 60, payer, FundingLimit::LocalCredit);
    match store.enqueue_job(&refused).await {
        Err(Error::InsufficientFunds(_)) => {}
        other => panic!("over credit: expected InsufficientFunds, got {other:?}"),
    }
    assert!(store
        .get_job(&refused.spec.id)
        .await
        .expect("get")
        .is_none());
    let p = store.payer(&payer).await.expect("payer").expect("exists");
    assert_books(&p, 60, 0, 0, "after a refusal");

    // Completion spends (and is unsettled until an epoch settles it).
    store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("node");
    let lease = store
        .lease_job(&node_id(1), t(10), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("the funded job");
    let result = JobResult {
        output: "ab".into(),
        proof_hash: Hash32([3; 32]),
        proof_ref: "proofs/ab".into(),
        completed_at: t(11),
    };
    store
        .complete_job(&lease.reference(), &result, t(11))
        .await
        .expect("complete");
    let p = store.payer(&payer).await.expect("payer").expect("exists");
    assert_books(&p, 0, 60, 60, "after completion");
    // Setting the credit again keeps the books.
    let p = store
        .set_payer(&payer, None, TokenAmount::from(200u64), t(12))
        .await
        .expect("set again");
    assert_books(&p, 0, 60, 60, "after a credit change");
    assert!(p.public_key.is_none());

    // A job that fails for good releases its reservation (max_attempts 1).
    store
        .enqueue_job(&funded_job(3, 100, payer, FundingLimit::LocalCredit))
        .await
        .expect("within the new credit");
    let lease = store
        .lease_job(&node_id(1), t(20), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("job");
    store
        .fail_job(&lease.reference(), "prover error", t(21))
        .await
        .expect("fail");
    let p = store.payer(&payer).await.expect("payer").expect("exists");
    assert_books(&p, 0, 60, 60, "after a final failure");

    // An escrow limit: spendable less reserved less unsettled.
    let escrow = FundingLimit::Escrow {
        spendable: TokenAmount::from(100u64),
    };
    match store
        .enqueue_job(&funded_job(4, 41, payer, escrow.clone()))
        .await
    {
        Err(Error::InsufficientFunds(_)) => {}
        other => panic!("over escrow: expected InsufficientFunds, got {other:?}"),
    }
    store
        .enqueue_job(&funded_job(5, 40, payer, escrow))
        .await
        .expect("within escrow");
    // An expired lease at the attempt limit releases too.
    let lease = store
        .lease_job(&node_id(1), t(30), Duration::from_secs(1))
        .await
        .expect("lease")
        .expect("job");
    assert_eq!(lease.payment, TokenAmount::from(40u64));
    store.sweep_expired_leases(t(40)).await.expect("sweep");
    let p = store.payer(&payer).await.expect("payer").expect("exists");
    assert_books(&p, 0, 60, 60, "after an expired final lease");
}

/// `submissions` concurrent jobs of one account, each paying 10 against a credit of
/// `10 × accepted`: exactly `accepted` are queued and reserved.
pub async fn payer_reservations_hold_under_concurrency(
    store: DynJobStore,
    submissions: u64,
    accepted: u64,
) {
    let payer = wallet(88);
    store
        .set_payer(&payer, None, TokenAmount::from(10 * accepted), t(0))
        .await
        .expect("set payer");
    let tasks: Vec<_> = (0..submissions)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enqueue_job(&funded_job(100 + i, 10, payer, FundingLimit::LocalCredit))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(Error::InsufficientFunds(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(ok, accepted, "accepted submissions");
    let p = store.payer(&payer).await.expect("payer").expect("exists");
    assert_books(&p, 10 * accepted, 0, 0, "after concurrent submissions");
}

/// The [`crate::NodeStore`] checks.
pub async fn run_nodes<F, Fut>(fresh: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynJobStore>,
{
    nodes_create_get_list(fresh().await).await;
    node_transitions_are_recorded(fresh().await).await;
}

/// The [`crate::TelemetryStore`] checks.
pub async fn run_telemetry<F, Fut>(fresh: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynJobStore>,
{
    heartbeats_and_uptime(fresh().await).await;
    concurrent_heartbeats_are_exact(fresh().await).await;
    gpu_samples_latest_window_retention(fresh().await).await;
}

/// The [`crate::JobQueue`] checks.
pub async fn run_job_queue<F, Fut>(fresh: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynJobStore>,
{
    jobs_enqueue_get_list(fresh().await).await;
    lease_oldest_first(fresh().await).await;
    lease_exactly_once(fresh().await, 200, 8).await;
    lease_expiry_requeues_and_retry_limit(fresh().await).await;
    rejected_writes_hold_no_locks(fresh().await).await;
    complete_and_fail(fresh().await).await;
}

/// The [`crate::ReceiptLedger`] checks (settling a completion in one transaction is checked
/// with the outbox, in [`super::events`]).
pub async fn run_receipt_ledger<F, Fut>(fresh: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynJobStore>,
{
    receipts_idempotent_and_filtered(fresh().await).await;
    earnings_exact_beyond_u128(fresh().await).await;
    earnings_overflow_is_an_error(fresh().await).await;
}

/// The [`crate::ChainEventStore`] checks.
pub async fn run_chain_events<F, Fut>(fresh: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynJobStore>,
{
    chain_events_idempotent_and_reorg(fresh().await).await;
}

/// A fixed reference time (microsecond precision), plus `secs`.
pub fn t(secs: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid date")
        + TimeDelta::seconds(secs)
}

pub(crate) fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn wallet(n: u64) -> WalletAddress {
    WalletAddress::parse(&format!("{:#x}", 0x1000 + n)).expect("valid wallet")
}

pub(crate) fn node_id(n: u64) -> NodeId {
    NodeId::parse(&format!("node-{n}")).expect("valid node id")
}

/// A node to register, with a real key and hardware report.
pub fn new_node(n: u64, wallet_n: u64, at: Timestamp) -> NewNode {
    NewNode {
        id: node_id(n),
        public_key: PublicKey::of(&key(n as u8)),
        wallet: wallet(wallet_n),
        hardware: HardwareReport {
            gpus: vec![GpuDevice {
                index: 0,
                uuid: format!("GPU-{n:08}"),
                name: "Test Accelerator".into(),
                pci_bus_id: Some("00000000:18:00.0".into()),
                memory_total_bytes: Some(80 * (1 << 30)),
                mig_enabled: Some(false),
                confidential_compute: None,
                tier: Some(GpuTier::Enterprise),
                state: DeviceState::Ok,
            }],
            host: Some(HostInfo {
                cpu_model: Some("Test CPU".into()),
                logical_cores: 16,
                load_average_1m: None,
                memory_total_bytes: 64 << 30,
                memory_available_bytes: Some(32 << 30),
            }),
            gpu_unavailable_reason: None,
            driver_version: Some("580.65.06".into()),
            cuda_version: Some("13.0".into()),
            hardware_hash: Some(Hash32([n as u8; 32])),
            attestation: None,
        },
        agent_version: "0.1.0".into(),
        registered_at: at,
        wallet_proven_at: None,
        profile: crate::node::NodeProfile::default(),
    }
}

/// A job to queue.
pub fn new_job(seed: u64, payment: u64, max_attempts: u32, at: Timestamp) -> NewJob {
    NewJob {
        spec: JobSpec::new(JobId::new(), JobKind::Poseidon2Chain { seed, length: 16 })
            .expect("valid spec"),
        payment: TokenAmount::from(payment),
        max_attempts,
        submitted_at: at,
        funding: None,
    }
}

/// A job `payer` pays for under `limit`.
pub fn funded_job(seed: u64, payment: u64, payer: WalletAddress, limit: FundingLimit) -> NewJob {
    NewJob {
        funding: Some(Funding { payer, limit }),
        ..new_job(seed, payment, 1, t(seed as i64))
    }
}

fn page(limit: u32, offset: u64) -> PageRequest {
    PageRequest::new(limit, offset).expect("valid page")
}

fn window(from: i64, to: i64) -> TimeWindow {
    TimeWindow::new(t(from), t(to)).expect("valid window")
}

/// Nodes: create, duplicate refused, get, list with filters and pagination.
pub async fn nodes_create_get_list(store: DynJobStore) {
    for (n, w) in [(1, 1), (2, 1), (3, 2)] {
        let rec = store
            .create_node(&new_node(n, w, t(n as i64)))
            .await
            .expect("create node");
        assert_eq!(rec.status, NodeStatus::Pending);
        assert!(
            !rec.status_reason.is_empty(),
            "a new node needs a status reason"
        );
        assert_eq!(rec.registered_at, t(n as i64));
    }
    match store.create_node(&new_node(1, 1, t(9))).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("duplicate node: expected AlreadyExists, got {other:?}"),
    }
    // A status reason set without a move: only in the expected status, only when it changes.
    assert!(store
        .set_status_reason(&node_id(1), NodeStatus::Pending, "stake too low")
        .await
        .expect("set reason"));
    assert!(!store
        .set_status_reason(&node_id(1), NodeStatus::Pending, "stake too low")
        .await
        .expect("same reason"));
    assert!(!store
        .set_status_reason(&node_id(1), NodeStatus::Active, "other")
        .await
        .expect("other status"));
    assert!(!store
        .set_status_reason(&node_id(99), NodeStatus::Pending, "x")
        .await
        .expect("unknown node"));
    let n1 = store
        .get_node(&node_id(1))
        .await
        .expect("get")
        .expect("node 1");
    assert_eq!(n1.status_reason, "stake too low");
    assert_eq!(n1.status, NodeStatus::Pending);
    assert!(store
        .status_history(&node_id(1))
        .await
        .expect("history")
        .is_empty());

    // A wallet proven later.
    let later = store
        .set_wallet_proven(&node_id(3), t(30))
        .await
        .expect("prove later");
    assert_eq!(later.wallet_proven_at, Some(t(30)));
    assert_eq!(
        store
            .get_node(&node_id(3))
            .await
            .expect("get")
            .expect("node 3")
            .wallet_proven_at,
        Some(t(30))
    );
    assert!(matches!(
        store.set_wallet_proven(&node_id(99), t(30)).await,
        Err(Error::NotFound { .. })
    ));
    // A proven wallet keeps its proof time; the others stay unverified.
    let mut proven = new_node(4, 3, t(4));
    proven.wallet_proven_at = Some(t(4));
    store
        .create_node(&proven)
        .await
        .expect("create proven node");
    let got = store
        .get_node(&node_id(4))
        .await
        .expect("get")
        .expect("node 4");
    assert_eq!(got.wallet_proven_at, Some(t(4)));
    assert_eq!(got.wallet_status(), crate::wallet::WalletStatus::Proven);
    let got = store
        .get_node(&node_id(2))
        .await
        .expect("get")
        .expect("node 2 exists");
    assert_eq!(got.wallet_status(), crate::wallet::WalletStatus::Unverified);
    let want = new_node(2, 1, t(2));
    assert_eq!(got.public_key, want.public_key);
    assert_eq!(got.wallet, want.wallet);
    assert_eq!(
        got.hardware, want.hardware,
        "hardware report must round-trip"
    );
    assert!(store.get_node(&node_id(99)).await.expect("get").is_none());

    let all = store
        .list_nodes(&NodeFilter::default(), page(2, 0))
        .await
        .expect("list");
    assert_eq!(all.total, 4);
    assert_eq!(
        all.items.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
        vec![node_id(1), node_id(2)]
    );
    assert_eq!(all.next_offset, Some(2));
    let rest = store
        .list_nodes(&NodeFilter::default(), page(2, 2))
        .await
        .expect("list");
    assert_eq!(rest.items.len(), 2);
    assert_eq!(rest.next_offset, None);

    let by_wallet = store
        .list_nodes(
            &NodeFilter {
                wallet: Some(wallet(1)),
                status: None,
                ..Default::default()
            },
            page(10, 0),
        )
        .await
        .expect("list by wallet");
    assert_eq!(by_wallet.total, 2);
    let tr = transition(
        NodeStatus::Pending,
        &LifecycleEvent::ProbePassed { job_id: "p".into() },
    )
    .expect("legal")
    .expect("moves");
    store
        .apply_transition(&node_id(3), &tr, t(10))
        .await
        .expect("activate");
    let active = store
        .list_nodes(
            &NodeFilter {
                status: Some(NodeStatus::Active),
                wallet: None,
                ..Default::default()
            },
            page(10, 0),
        )
        .await
        .expect("list active");
    assert_eq!(active.items.len(), 1);
    assert_eq!(active.items[0].id, node_id(3));
    let none = store
        .list_nodes(
            &NodeFilter {
                status: Some(NodeStatus::Active),
                wallet: Some(wallet(1)),
                ..Default::default()
            },
            page(10, 0),
        )
        .await
        .expect("list");
    assert_eq!(none.total, 0);

    // Profiles: stored at registration, filterable, replaced by set_node_profile.
    let mut profiled = new_node(40, 2, t(40));
    profiled.profile = crate::node::NodeProfile {
        region: Some("eu-west".into()),
        runtime: crate::node::Runtime::Vllm,
        labels: [("pool".to_string(), "a".to_string())].into(),
        energy_tag: Some("renewable".into()),
    };
    let rec = store.create_node(&profiled).await.expect("create profiled");
    assert_eq!(rec.profile, profiled.profile);
    assert_eq!(
        store
            .get_node(&node_id(40))
            .await
            .expect("get")
            .map(|n| n.profile),
        Some(profiled.profile.clone())
    );
    let ids = |p: crate::page::Page<crate::node::NodeRecord>| {
        p.items.into_iter().map(|n| n.id).collect::<Vec<_>>()
    };
    for filter in [
        NodeFilter {
            region: Some("eu-west".into()),
            ..NodeFilter::default()
        },
        NodeFilter {
            runtime: Some(crate::node::Runtime::Vllm),
            ..NodeFilter::default()
        },
        NodeFilter {
            label: Some(("pool".into(), "a".into())),
            ..NodeFilter::default()
        },
        NodeFilter {
            energy_tag: Some("renewable".into()),
            wallet: Some(wallet(2)),
            ..NodeFilter::default()
        },
    ] {
        let got = store.list_nodes(&filter, page(10, 0)).await.expect("list");
        assert_eq!(got.total, 1, "{filter:?}");
        assert_eq!(ids(got), vec![node_id(40)], "{filter:?}");
    }
    for filter in [
        NodeFilter {
            region: Some("us-east".into()),
            ..NodeFilter::default()
        },
        NodeFilter {
            label: Some(("pool".into(), "b".into())),
            ..NodeFilter::default()
        },
        NodeFilter {
            label: Some(("other".into(), "a".into())),
            ..NodeFilter::default()
        },
        NodeFilter {
            runtime: Some(crate::node::Runtime::Native),
            region: Some("eu-west".into()),
            ..NodeFilter::default()
        },
    ] {
        let got = store.list_nodes(&filter, page(10, 0)).await.expect("list");
        assert_eq!(got.total, 0, "{filter:?}");
    }
    let native = store
        .list_nodes(
            &NodeFilter {
                runtime: Some(crate::node::Runtime::Native),
                ..NodeFilter::default()
            },
            page(10, 0),
        )
        .await
        .expect("list");
    assert_eq!(native.total, 4, "the default runtime is native");
    let moved = crate::node::NodeProfile {
        region: Some("us-east".into()),
        ..crate::node::NodeProfile::default()
    };
    let rec = store
        .set_node_profile(&node_id(40), &moved)
        .await
        .expect("set profile");
    assert_eq!(rec.profile, moved);
    assert_eq!(
        store
            .get_node(&node_id(40))
            .await
            .expect("get")
            .map(|n| n.profile),
        Some(moved)
    );
    match store
        .set_node_profile(&node_id(99), &crate::node::NodeProfile::default())
        .await
    {
        Err(Error::NotFound { .. }) => {}
        other => panic!("profile of an unknown node: expected NotFound, got {other:?}"),
    }
}

/// Status changes: applied only from the current status, recorded with reasons, in order.
pub async fn node_transitions_are_recorded(store: DynJobStore) {
    store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("create");
    let events = [
        LifecycleEvent::ProbePassed {
            job_id: "probe-1".into(),
        },
        LifecycleEvent::HeartbeatOverdue { silent_secs: 30 },
        LifecycleEvent::OfflineTimeout { silent_secs: 300 },
        LifecycleEvent::Heartbeat,
        LifecycleEvent::BadSignature {
            detail: "forged heartbeat".into(),
        },
        LifecycleEvent::AdminCleared {
            admin: "ops".into(),
            note: "verified".into(),
        },
    ];
    let mut state = NodeStatus::Pending;
    for (i, ev) in events.iter().enumerate() {
        let tr = transition(state, ev).expect("legal").expect("moves");
        let rec = store
            .apply_transition(&node_id(1), &tr, t(10 + i as i64))
            .await
            .expect("apply");
        assert_eq!(rec.status, tr.to);
        assert_eq!(rec.status_reason, tr.reason);
        assert_eq!(rec.status_changed_at, t(10 + i as i64));
        state = tr.to;
    }
    let history = store.status_history(&node_id(1)).await.expect("history");
    assert_eq!(history.len(), events.len());
    assert_eq!(history[0].from, NodeStatus::Pending);
    assert_eq!(history[0].to, NodeStatus::Active);
    assert!(history[0].reason.contains("probe-1"));
    assert_eq!(history[4].to, NodeStatus::Quarantined);
    assert!(history[4].reason.contains("forged heartbeat"));
    assert!(history
        .windows(2)
        .all(|w| w[0].at <= w[1].at && w[0].to == w[1].from));

    // A transition from a status the node is not in is a conflict and changes nothing.
    let stale_tr = transition(
        NodeStatus::Active,
        &LifecycleEvent::HeartbeatOverdue { silent_secs: 1 },
    )
    .expect("legal")
    .expect("moves");
    match store.apply_transition(&node_id(1), &stale_tr, t(100)).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("transition from the wrong status: expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store
            .status_history(&node_id(1))
            .await
            .expect("history")
            .len(),
        events.len()
    );
    match store
        .apply_transition(&node_id(42), &stale_tr, t(100))
        .await
    {
        Err(Error::NotFound { .. }) => {}
        other => panic!("transition of an unknown node: expected NotFound, got {other:?}"),
    }
}

fn collector(samples_total: u64) -> crate::gpu::GpuCollectorStatus {
    crate::gpu::GpuCollectorStatus {
        source: "nvml".into(),
        up: !samples_total.is_multiple_of(2),
        last_error: samples_total
            .is_multiple_of(2)
            .then(|| "the sample timed out after 5s".into()),
        samples_total,
        sample_errors_total: 3,
        last_sample_age_seconds: Some(0.25),
    }
}

/// Many heartbeats at once (as a loaded coordinator sends them, and as a store that commits
/// them in groups sees them): 20 nodes × sequences 1..=10 in random arrival order plus a
/// duplicate of each node's 10, and heartbeats of an unknown node. Every answer is exact:
/// each accepted heartbeat is stored once (no refused one at all), the duplicate is accepted
/// once, an unknown node is `NotFound`, an accepted one answers the node's status.
pub async fn concurrent_heartbeats_are_exact(store: DynJobStore) {
    use rand::seq::SliceRandom as _;
    const NODES: u64 = 20;
    const SEQS: u64 = 10;
    for n in 1..=NODES {
        store
            .create_node(&new_node(n, 1, t(0)))
            .await
            .expect("create");
    }
    let beat = |n: u64, sequence: u64| Heartbeat {
        node_id: node_id(n),
        at: t(1),
        sequence,
        load_average_1m: None,
        agent_version: "0.1.0".into(),
        gpu_collector: None,
        gpu_samples: Vec::new(),
    };
    let mut sends: Vec<(u64, u64)> = Vec::new();
    for n in 1..=NODES {
        sends.extend((1..=SEQS).map(|s| (n, s)));
        sends.push((n, SEQS));
    }
    sends.extend((1..=5).map(|s| (999, s)));
    sends.shuffle(&mut rand::thread_rng());
    let answers = futures::future::join_all(sends.iter().map(|&(n, s)| {
        let store = Arc::clone(&store);
        let hb = beat(n, s);
        async move { store.append_heartbeat(&hb).await }
    }))
    .await;
    let mut accepted = std::collections::HashMap::<u64, Vec<u64>>::new();
    for (&(n, s), answer) in sends.iter().zip(answers) {
        match answer {
            Ok(status) => {
                assert_ne!(n, 999, "a heartbeat of an unknown node was accepted");
                assert_eq!(
                    status,
                    crate::NodeStatus::Pending,
                    "the node's status at commit"
                );
                accepted.entry(n).or_default().push(s);
            }
            Err(Error::NotFound { .. }) => assert_eq!(n, 999, "node {n} exists"),
            Err(Error::Conflict(_)) => assert_ne!(n, 999),
            Err(e) => panic!("heartbeat {n}/{s}: unexpected error {e}"),
        }
    }
    for n in 1..=NODES {
        let mut got = accepted.remove(&n).unwrap_or_default();
        got.sort_unstable();
        let before = got.len();
        got.dedup();
        assert_eq!(before, got.len(), "node {n}: a sequence was accepted twice");
        assert_eq!(
            got.last(),
            Some(&SEQS),
            "node {n}: its highest sequence is accepted once"
        );
        let stored = store
            .heartbeat_times(&node_id(n), window(0, 100))
            .await
            .expect("heartbeat times");
        assert_eq!(stored.len(), got.len(), "node {n}: stored = accepted");
        assert!(
            matches!(
                store.append_heartbeat(&beat(n, SEQS)).await,
                Err(Error::Conflict(_))
            ),
            "node {n}: the last sequence is claimed"
        );
        store
            .append_heartbeat(&beat(n, SEQS + 1))
            .await
            .expect("the next sequence is accepted");
    }
}

/// Heartbeats: append, last seen, replay refused, window query, uptime, collector status.
pub async fn heartbeats_and_uptime(store: DynJobStore) {
    store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("create");
    store
        .create_node(&new_node(2, 1, t(0)))
        .await
        .expect("create");
    assert!(store
        .last_seen(&node_id(1))
        .await
        .expect("last seen")
        .is_none());
    // Node 1 beats every 10 s for the first 50 s of a 100-s window.
    for (i, s) in (0..50).step_by(10).enumerate() {
        store
            .append_heartbeat(&Heartbeat {
                node_id: node_id(1),
                at: t(s),
                sequence: i as u64 + 1,
                load_average_1m: Some(0.5),
                agent_version: "0.1.0".into(),
                gpu_collector: Some(collector(i as u64 + 1)),
                gpu_samples: vec![sample("GPU-hb", t(s), 0.5)],
            })
            .await
            .expect("append heartbeat");
    }
    let latest = store
        .gpu_collector(&node_id(1))
        .await
        .expect("gpu collector")
        .expect("the latest heartbeat carried a collector status");
    assert_eq!(latest.at, t(40));
    assert_eq!(latest.status, collector(5), "the latest heartbeat's status");
    // The samples each heartbeat carried were stored with it.
    let carried = store
        .gpu_samples(&node_id(1), window(0, 100))
        .await
        .expect("samples");
    assert_eq!(carried.len(), 5, "one sample per heartbeat");
    assert_eq!(
        store
            .latest_gpu_samples(&node_id(1))
            .await
            .expect("latest")
            .iter()
            .map(|s| s.at)
            .collect::<Vec<_>>(),
        vec![t(40)]
    );
    assert!(store
        .gpu_collector(&node_id(2))
        .await
        .expect("gpu collector")
        .is_none());
    assert_eq!(
        store.last_seen(&node_id(1)).await.expect("last seen"),
        Some(t(40))
    );
    assert!(store
        .last_seen(&node_id(2))
        .await
        .expect("last seen")
        .is_none());
    // Silence: node 1 last beat at 40 s, node 2 (never beat) registered at 0 s.
    let silent = |before: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .silent_nodes(crate::NodeStatus::Pending, t(before))
                .await
                .expect("silent nodes")
                .into_iter()
                .map(|(n, seen)| (n.id, seen))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(silent(0).await, vec![], "nobody is silent since before 0 s");
    assert_eq!(
        silent(1).await,
        vec![(node_id(2), t(0))],
        "never beat: registration time"
    );
    assert_eq!(
        silent(41).await,
        vec![(node_id(1), t(40)), (node_id(2), t(0))],
        "registration order, with the last heartbeat"
    );
    assert!(
        store
            .silent_nodes(crate::NodeStatus::Active, t(1000))
            .await
            .expect("silent nodes")
            .is_empty(),
        "another status"
    );

    let replay = Heartbeat {
        node_id: node_id(1),
        at: t(60),
        sequence: 5,
        load_average_1m: None,
        agent_version: "0.1.0".into(),
        gpu_collector: None,
        gpu_samples: vec![sample("GPU-replayed", t(60), 0.9)],
    };
    match store.append_heartbeat(&replay).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("replayed heartbeat sequence: expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store.last_seen(&node_id(1)).await.expect("last seen"),
        Some(t(40)),
        "a replay must not be stored"
    );
    assert_eq!(
        store
            .gpu_collector(&node_id(1))
            .await
            .expect("gpu collector")
            .map(|c| c.status),
        Some(collector(5)),
        "a replay must not change the collector status"
    );
    assert!(
        store
            .latest_gpu_samples(&node_id(1))
            .await
            .expect("latest")
            .iter()
            .all(|s| s.uuid != "GPU-replayed"),
        "a replay's samples must not be stored"
    );
    let unknown = Heartbeat {
        node_id: node_id(77),
        sequence: 1,
        ..replay.clone()
    };
    match store.append_heartbeat(&unknown).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("heartbeat of an unknown node: expected NotFound, got {other:?}"),
    }

    let times = store
        .heartbeat_times(&node_id(1), window(10, 40))
        .await
        .expect("times");
    assert_eq!(times, vec![t(10), t(20), t(30)], "window is [from, to)");
    // Uptime from the per-minute rollup: minute 0 (beats at 0..40 s) up, minute 1 not.
    let n1 = store
        .get_node(&node_id(1))
        .await
        .expect("get")
        .expect("node 1");
    let up = store.uptime(&n1, window(0, 120)).await.expect("uptime");
    assert_eq!((up.minutes_counted, up.minutes_up), (2, 1));
    assert_eq!(up.heartbeats, 5);
    assert_eq!(up.ratio, Some(0.5));
    // A window ending inside a silent minute does not count that minute yet.
    let open = store.uptime(&n1, window(0, 100)).await.expect("uptime");
    assert_eq!((open.minutes_counted, open.ratio), (1, Some(1.0)));
    let coverage = store
        .heartbeat_coverage(
            &node_id(1),
            crate::node::MinuteRange {
                first: crate::node::minute_of(t(0)),
                last: crate::node::minute_of(t(0)),
            },
        )
        .await
        .expect("coverage");
    assert_eq!((coverage.minutes_up, coverage.heartbeats), (1, 5));
    // Counted from registration: a window opening a day before t(0) counts from t(0).
    let day = TimeWindow::new(t(-86_400), t(30)).expect("window");
    let fresh = store.uptime(&n1, day).await.expect("uptime");
    assert_eq!(fresh.counted_from, t(0));
    assert_eq!(fresh.ratio, Some(1.0), "up since registration");
    // The latest heartbeat time is kept on the node.
    assert_eq!(
        store.last_seen(&node_id(1)).await.expect("last seen"),
        Some(t(40))
    );
    // A heartbeat without a collector status clears it (no stale health is served).
    store
        .append_heartbeat(&Heartbeat {
            node_id: node_id(2),
            at: t(45),
            sequence: 1,
            load_average_1m: None,
            agent_version: "0.1.0".into(),
            gpu_collector: Some(collector(1)),
            gpu_samples: Vec::new(),
        })
        .await
        .expect("append heartbeat");
    store
        .append_heartbeat(&Heartbeat {
            node_id: node_id(2),
            at: t(46),
            sequence: 2,
            load_average_1m: None,
            agent_version: "0.1.0".into(),
            gpu_collector: None,
            gpu_samples: Vec::new(),
        })
        .await
        .expect("append heartbeat");
    assert!(store
        .gpu_collector(&node_id(2))
        .await
        .expect("gpu collector")
        .is_none());
    let none = store
        .heartbeat_coverage(
            &node_id(2),
            crate::node::MinuteRange {
                first: crate::node::minute_of(t(60)),
                last: crate::node::minute_of(t(600)),
            },
        )
        .await
        .expect("coverage");
    assert_eq!(none, crate::node::MinuteCoverage::default());
}

fn sample(uuid: &str, at: Timestamp, util: f64) -> GpuSample {
    let mut s = GpuSample::empty(uuid, at);
    s.gpu_utilization_ratio = Some(util);
    s.memory_used_bytes = Some(1 << 30);
    s.power_watts = Some(312.5);
    s.energy_joules_total = Some(1.25e9);
    s.xid_events = Some(vec![XidEvent { code: 79, at }]);
    s
}

/// GPU samples: latest per device, window query, absent metrics stay absent, retention.
pub async fn gpu_samples_latest_window_retention(store: DynJobStore) {
    store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("create");
    store
        .create_node(&new_node(2, 1, t(0)))
        .await
        .expect("create");
    for s in 0..5 {
        store
            .append_gpu_samples(
                &node_id(1),
                &[
                    sample("GPU-a", t(s * 10), 0.1 * s as f64),
                    sample("GPU-b", t(s * 10 + 1), 0.9),
                ],
            )
            .await
            .expect("append samples");
    }
    let bare = GpuSample::empty("GPU-c", t(3));
    store
        .append_gpu_samples(&node_id(2), std::slice::from_ref(&bare))
        .await
        .expect("append");

    let mut latest = store.latest_gpu_samples(&node_id(1)).await.expect("latest");
    latest.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0], sample("GPU-a", t(40), 0.4));
    assert_eq!(latest[1].at, t(41));
    let other = store.latest_gpu_samples(&node_id(2)).await.expect("latest");
    assert_eq!(
        other,
        vec![bare],
        "absent metrics must stay absent (None), not become 0"
    );

    let win = store
        .gpu_samples(&node_id(1), window(10, 30))
        .await
        .expect("window");
    assert_eq!(win.len(), 4);
    assert!(win.windows(2).all(|w| w[0].at <= w[1].at));

    // Retention rolls samples up per device and minute (min/avg/max), then deletes them.
    let keep_all = crate::time::earliest();
    let cutoffs = |gpu: Timestamp| crate::retention::RetentionCutoffs {
        raw_heartbeats: keep_all,
        raw_gpu_samples: gpu,
        minute_rollups: keep_all,
        job_timings: keep_all,
        node_facts: keep_all,
    };
    let report = store
        .apply_retention(&cutoffs(t(20)))
        .await
        .expect("retention");
    assert_eq!(
        report.gpu_samples,
        4 + 1,
        "samples at 0,1,10,11 of node 1 and 3 of node 2"
    );
    assert_eq!(
        store
            .gpu_samples(&node_id(1), window(0, 100))
            .await
            .expect("window")
            .len(),
        6
    );
    assert!(store
        .latest_gpu_samples(&node_id(2))
        .await
        .expect("latest")
        .is_empty());
    let minutes = store
        .gpu_minutes(&node_id(1), window(0, 3600))
        .await
        .expect("rollups");
    assert_eq!(
        minutes.len(),
        2,
        "one row per device and minute: {minutes:?}"
    );
    let a = &minutes[0];
    assert_eq!((a.uuid.as_str(), a.samples), ("GPU-a", 2));
    let u = a.metrics["gpu_utilization_ratio"];
    assert_eq!((u.min, u.max, u.n), (0.0, 0.1, 2));
    assert_eq!(a.metrics["power_watts"].avg(), 312.5);
    assert!(
        !a.metrics.contains_key("temperature_celsius"),
        "never reported"
    );
    let c = store
        .gpu_minutes(&node_id(2), window(0, 3600))
        .await
        .expect("rollups");
    assert_eq!((c.len(), c[0].samples), (1, 1));
    assert!(c[0].metrics.is_empty(), "no metric reported, none made up");
    // A later pass merges into the same minute; nothing left to roll up is a no-op.
    let report = store
        .apply_retention(&cutoffs(t(25)))
        .await
        .expect("retention");
    assert_eq!(report.gpu_samples, 2);
    let minutes = store
        .gpu_minutes(&node_id(1), window(0, 3600))
        .await
        .expect("rollups");
    assert_eq!(minutes[0].samples, 3);
    assert_eq!(minutes[0].metrics["gpu_utilization_ratio"].max, 0.2);
    let again = store
        .apply_retention(&cutoffs(t(25)))
        .await
        .expect("retention");
    assert_eq!(again, crate::retention::RetentionReport::default());
}

/// Jobs: enqueue, duplicate refused, get, list by status.
pub async fn jobs_enqueue_get_list(store: DynJobStore) {
    let jobs: Vec<NewJob> = (0..5)
        .map(|i| new_job(i, 1000 + i, 3, t(i as i64)))
        .collect();
    for j in &jobs {
        let rec = store.enqueue_job(j).await.expect("enqueue");
        assert_eq!(rec.status, JobStatus::Queued);
        assert_eq!(rec.attempts, 0);
        assert_eq!(rec.spec, j.spec);
        assert_eq!(rec.payment, j.payment);
    }
    match store.enqueue_job(&jobs[0]).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("duplicate job: expected AlreadyExists, got {other:?}"),
    }
    let got = store
        .get_job(&jobs[3].spec.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.spec, jobs[3].spec);
    assert!(store.get_job(&JobId::new()).await.expect("get").is_none());
    let queued = store
        .list_jobs(
            &JobFilter {
                status: Some(JobStatus::Queued),
                node: None,
            },
            page(3, 0),
        )
        .await
        .expect("list");
    assert_eq!(queued.total, 5);
    assert_eq!(queued.items.len(), 3);
    assert_eq!(queued.items[0].spec.id, jobs[0].spec.id, "oldest first");
    assert_eq!(queued.next_offset, Some(3));
}

/// Leases go to the oldest queued job first; an empty queue leases nothing.
pub async fn lease_oldest_first(store: DynJobStore) {
    store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("create");
    let a = new_job(1, 10, 3, t(5));
    let b = new_job(2, 10, 3, t(1));
    store.enqueue_job(&a).await.expect("enqueue");
    store.enqueue_job(&b).await.expect("enqueue");
    let first = store
        .lease_job(&node_id(1), t(10), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("a job");
    assert_eq!(first.spec.id, b.spec.id, "oldest submission first");
    assert_eq!(first.attempt, 1);
    assert_eq!(first.lease.expires_at, t(70));
    let second = store
        .lease_job(&node_id(1), t(10), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("a job");
    assert_eq!(second.spec.id, a.spec.id);
    assert!(store
        .lease_job(&node_id(1), t(10), Duration::from_secs(60))
        .await
        .expect("lease")
        .is_none());
    let rec = store
        .get_job(&a.spec.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(rec.status, JobStatus::Leased);
    assert_eq!(
        rec.lease.as_ref().map(|l| l.node_id.clone()),
        Some(node_id(1))
    );
}

/// `leasers` concurrent nodes lease `jobs` jobs: every job is leased exactly once.
pub async fn lease_exactly_once(store: DynJobStore, jobs: usize, leasers: usize) {
    for n in 0..leasers as u64 {
        store
            .create_node(&new_node(n + 1, 1, t(0)))
            .await
            .expect("create");
    }
    let mut ids = HashSet::new();
    for i in 0..jobs {
        let j = new_job(i as u64, 1, 1, t(i as i64));
        ids.insert(j.spec.id);
        store.enqueue_job(&j).await.expect("enqueue");
    }
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for n in 0..leasers as u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(lease) = store
                .lease_job(&node_id(n + 1), t(100_000), Duration::from_secs(3600))
                .await
                .expect("lease")
            {
                assert_eq!(lease.lease.node_id, node_id(n + 1));
                mine.push(lease.spec.id);
            }
            mine
        }));
    }
    let mut seen: HashMap<JobId, usize> = HashMap::new();
    for task in tasks {
        for id in task.await.expect("leaser task") {
            *seen.entry(id).or_default() += 1;
        }
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dupes.is_empty(), "jobs leased more than once: {dupes:?}");
    assert_eq!(seen.len(), jobs, "every job must be leased");
    assert!(seen.keys().all(|id| ids.contains(id)));
}

/// An expired lease is re-queued (and its holder can no longer complete); at the retry limit
/// the job fails.
pub async fn lease_expiry_requeues_and_retry_limit(store: DynJobStore) {
    store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("create");
    store
        .create_node(&new_node(2, 1, t(0)))
        .await
        .expect("create");
    let job = new_job(7, 10, 2, t(0));
    store.enqueue_job(&job).await.expect("enqueue");
    let l1 = store
        .lease_job(&node_id(1), t(10), Duration::from_secs(30))
        .await
        .expect("lease")
        .expect("job");
    // Not expired yet: nothing to sweep.
    assert_eq!(
        store.sweep_expired_leases(t(39)).await.expect("sweep"),
        Default::default()
    );
    let sweep = store.sweep_expired_leases(t(41)).await.expect("sweep");
    assert_eq!(sweep.requeued, vec![job.spec.id]);
    assert!(sweep.failed.is_empty());
    let rec = store
        .get_job(&job.spec.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(rec.status, JobStatus::Queued);
    assert!(rec.lease.is_none());
    assert!(rec
        .last_error
        .as_deref()
        .unwrap_or_default()
        .contains("expired"));

    let l2 = store
        .lease_job(&node_id(2), t(50), Duration::from_secs(30))
        .await
        .expect("lease")
        .expect("job");
    assert_eq!(l2.attempt, 2);
    let result = JobResult {
        output: "digest".into(),
        proof_hash: Hash32([1; 32]),
        proof_ref: "proofs/x".into(),
        completed_at: t(55),
    };
    match store.complete_job(&l1.reference(), &result, t(55)).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("completion with an expired lease: expected Conflict, got {other:?}"),
    }
    let sweep = store.sweep_expired_leases(t(81)).await.expect("sweep");
    assert_eq!(
        sweep.failed,
        vec![job.spec.id],
        "attempts exhausted: the job fails"
    );
    let rec = store
        .get_job(&job.spec.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(rec.status, JobStatus::Failed);
    assert_eq!(rec.attempts, 2);
    assert!(store
        .lease_job(&node_id(1), t(90), Duration::from_secs(30))
        .await
        .expect("lease")
        .is_none());
}

/// A write refused mid-transaction (here: completions by a node without the lease) leaves no
/// lock behind: a sweep right after still sees and re-queues the expired job.
pub async fn rejected_writes_hold_no_locks(store: DynJobStore) {
    const ROUNDS: u32 = 50;
    store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("create");
    let job = new_job(3, 10, ROUNDS + 1, t(0));
    store.enqueue_job(&job).await.expect("enqueue");
    for round in 0..ROUNDS {
        let start = i64::from(round) * 100;
        let lease = store
            .lease_job(&node_id(1), t(start), Duration::from_secs(10))
            .await
            .expect("lease")
            .expect("job");
        let mut wrong = lease.reference();
        wrong.node_id = node_id(2);
        let result = JobResult {
            output: "x".into(),
            proof_hash: Hash32([3; 32]),
            proof_ref: "proofs/x".into(),
            completed_at: t(start + 1),
        };
        match store.complete_job(&wrong, &result, t(start + 1)).await {
            Err(Error::Conflict(_)) => {}
            other => panic!("completion without the lease: expected Conflict, got {other:?}"),
        }
        let sweep = store
            .sweep_expired_leases(t(start + 20))
            .await
            .expect("sweep");
        assert_eq!(
            sweep.requeued,
            vec![job.spec.id],
            "round {round}: a refused write left the job locked"
        );
    }
}

/// Completion by the holder records the result once; failures re-queue until the limit.
pub async fn complete_and_fail(store: DynJobStore) {
    store
        .create_node(&new_node(1, 1, t(0)))
        .await
        .expect("create");
    store
        .create_node(&new_node(2, 1, t(0)))
        .await
        .expect("create");
    let job = new_job(1, 10, 2, t(0));
    store.enqueue_job(&job).await.expect("enqueue");
    let lease = store
        .lease_job(&node_id(1), t(1), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("job");
    let result = JobResult {
        output: "abcd".into(),
        proof_hash: Hash32([2; 32]),
        proof_ref: "proofs/abcd".into(),
        completed_at: t(5),
    };
    let mut wrong = lease.reference();
    wrong.node_id = node_id(2);
    match store.complete_job(&wrong, &result, t(5)).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("completion by a node without the lease: expected Conflict, got {other:?}"),
    }
    match store.complete_job(&lease.reference(), &result, t(62)).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("completion after expiry: expected Conflict, got {other:?}"),
    }
    let done = store
        .complete_job(&lease.reference(), &result, t(5))
        .await
        .expect("complete");
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.result.as_ref(), Some(&result));
    assert_eq!(done.completed_by, Some(node_id(1)));
    match store.complete_job(&lease.reference(), &result, t(6)).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("second completion: expected Conflict, got {other:?}"),
    }
    let by_node = store
        .list_jobs(
            &JobFilter {
                status: Some(JobStatus::Completed),
                node: Some(node_id(1)),
            },
            page(10, 0),
        )
        .await
        .expect("list");
    assert_eq!(by_node.total, 1);
    // Counting agrees with listing for every combination of filters: the node filter means
    // "completed by or leased to", and a job counts once even when it is both.
    for status in [None, Some(JobStatus::Completed), Some(JobStatus::Leased)] {
        for node in [None, Some(node_id(1)), Some(node_id(2))] {
            let filter = JobFilter { status, node };
            let listed = store.list_jobs(&filter, page(100, 0)).await.expect("list");
            assert_eq!(
                store.count_jobs(&filter).await.expect("count"),
                listed.total,
                "{filter:?}"
            );
            assert_eq!(listed.items.len() as u64, listed.total, "{filter:?}");
        }
    }

    let job2 = new_job(2, 10, 2, t(10));
    store.enqueue_job(&job2).await.expect("enqueue");
    let l = store
        .lease_job(&node_id(2), t(11), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("job");
    let rec = store
        .fail_job(&l.reference(), "out of memory", t(12))
        .await
        .expect("fail");
    assert_eq!(
        rec.status,
        JobStatus::Queued,
        "below the retry limit a failure re-queues"
    );
    assert_eq!(rec.last_error.as_deref(), Some("out of memory"));
    match store.fail_job(&l.reference(), "again", t(13)).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("failing a lease twice: expected Conflict, got {other:?}"),
    }
    let l = store
        .lease_job(&node_id(1), t(14), Duration::from_secs(60))
        .await
        .expect("lease")
        .expect("job");
    let rec = store
        .fail_job(&l.reference(), "proof rejected", t(15))
        .await
        .expect("fail");
    assert_eq!(rec.status, JobStatus::Failed);
    assert_eq!(rec.attempts, 2);
    match store.complete_job(&wrong, &result, t(5)).await {
        Err(Error::Conflict(_)) | Err(Error::NotFound { .. }) => {}
        other => panic!("completion of a completed job: got {other:?}"),
    }
}

/// A real, doubly signed receipt.
pub fn signed_receipt(node: u64, kind: &str, at: Timestamp, payment: u64) -> Receipt {
    let node_key = key(node as u8);
    let coordinator = key(200);
    let payment = TokenAmount::from(payment);
    let fee = payment.mul_bps(500).expect("fee");
    let body = ReceiptBody {
        id: ReceiptId::new(),
        job_id: JobId::new(),
        kind: kind.into(),
        node_id: node_id(node),
        node_key: PublicKey::of(&node_key),
        coordinator_key: PublicKey::of(&coordinator),
        output: "0123".into(),
        proof_hash: Hash32([node as u8; 32]),
        payment,
        fee,
        net: payment.checked_sub(fee).expect("net"),
        completed_at: at,
    };
    let sig = body.sign_as_node(&node_key).expect("node signs");
    Receipt::countersign(body, sig, &coordinator).expect("countersign")
}

/// Receipts: idempotent by id, conflicting duplicates refused, filters and pagination.
pub async fn receipts_idempotent_and_filtered(store: DynJobStore) {
    let r1 = signed_receipt(1, "poseidon2-chain", t(10), 1000);
    let r2 = signed_receipt(1, "wide-fibonacci", t(20), 2000);
    let r3 = signed_receipt(2, "poseidon2-chain", t(30), 3000);
    for r in [&r1, &r2, &r3] {
        assert_eq!(
            store.insert_receipt(r).await.expect("insert"),
            Inserted::New
        );
    }
    assert_eq!(
        store.insert_receipt(&r1).await.expect("insert again"),
        Inserted::AlreadyPresent
    );
    let mut altered = r1.clone();
    altered.body.output = "ffff".into();
    match store.insert_receipt(&altered).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => {
            panic!("a different receipt under a known id: expected AlreadyExists, got {other:?}")
        }
    }
    let got = store
        .get_receipt(&r2.body.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got, r2);
    got.verify().expect("stored receipt still verifies");
    assert!(store
        .get_receipt(&ReceiptId::new())
        .await
        .expect("get")
        .is_none());

    let by_node = store
        .list_receipts(
            &ReceiptFilter {
                node: Some(node_id(1)),
                ..Default::default()
            },
            page(10, 0),
        )
        .await
        .expect("list");
    assert_eq!(by_node.items, vec![r1.clone(), r2.clone()]);
    let by_kind = store
        .list_receipts(
            &ReceiptFilter {
                kind: Some("poseidon2-chain".into()),
                ..Default::default()
            },
            page(10, 0),
        )
        .await
        .expect("list");
    assert_eq!(by_kind.items, vec![r1.clone(), r3.clone()]);
    let by_time = store
        .list_receipts(
            &ReceiptFilter {
                window: Some(window(15, 30)),
                ..Default::default()
            },
            page(10, 0),
        )
        .await
        .expect("list");
    assert_eq!(by_time.items, vec![r2.clone()], "window is [from, to)");
    let by_job = store
        .list_receipts(
            &ReceiptFilter {
                job: Some(r2.body.job_id),
                ..Default::default()
            },
            page(10, 0),
        )
        .await
        .expect("list");
    assert_eq!(by_job.items, vec![r2.clone()], "the receipt of one job");
    assert_eq!(by_job.total, 1);
    let newest = store
        .list_receipts(
            &ReceiptFilter {
                newest_first: true,
                ..Default::default()
            },
            page(2, 0),
        )
        .await
        .expect("list");
    assert_eq!(newest.items, vec![r3.clone(), r2.clone()], "newest first");
    assert_eq!(newest.total, 3);
    let paged = store
        .list_receipts(&ReceiptFilter::default(), page(2, 1))
        .await
        .expect("list");
    assert_eq!(paged.total, 3);
    assert_eq!(paged.items, vec![r2, r3]);
    assert_eq!(paged.next_offset, None);
}

fn entry(node: u64, gross: TokenAmount, fee: TokenAmount, at: Timestamp) -> EarningEntry {
    EarningEntry {
        id: EntryId::new(),
        node_id: node_id(node),
        job_id: JobId::new(),
        gross,
        fee,
        net: gross.checked_sub(fee).expect("net"),
        credited_at: at,
    }
}

/// Earnings: idempotent credits, sums exact beyond 2^64 and 2^128, per node, window and day.
pub async fn earnings_exact_beyond_u128(store: DynJobStore) {
    let big = TokenAmount::from_u256(U256::from(u128::MAX)); // 2^128 - 1
    let mid = TokenAmount::from(u64::MAX); // 2^64 - 1
    let day = 86_400;
    let entries = [
        entry(1, big, TokenAmount::from(1u64), t(0)),
        entry(1, big, mid, t(10)),
        entry(1, mid, TokenAmount::ZERO, t(day)),
        entry(2, TokenAmount::from(5u64), TokenAmount::from(1u64), t(0)),
    ];
    for e in &entries {
        assert_eq!(
            store.credit_earning(e).await.expect("credit"),
            Inserted::New
        );
    }
    assert_eq!(
        store.credit_earning(&entries[0]).await.expect("again"),
        Inserted::AlreadyPresent
    );
    let mut conflicting = entries[0].clone();
    conflicting.fee = TokenAmount::from(2u64);
    conflicting.net = conflicting.gross.checked_sub(conflicting.fee).expect("net");
    match store.credit_earning(&conflicting).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => {
            panic!("a different entry under a known id: expected AlreadyExists, got {other:?}")
        }
    }

    let total = store
        .earnings_total(&node_id(1), None)
        .await
        .expect("total");
    let want_gross = TokenAmount::checked_sum([big, big, mid]).expect("sum");
    assert!(
        want_gross > TokenAmount::from_u256(U256::from(u128::MAX)),
        "the sum exceeds 2^128"
    );
    assert_eq!(total.entries, 3);
    assert_eq!(total.gross, want_gross);
    assert_eq!(
        total.fee,
        TokenAmount::checked_sum([TokenAmount::from(1u64), mid]).expect("sum")
    );
    assert_eq!(total.net, want_gross.checked_sub(total.fee).expect("net"));
    assert_eq!(
        total.gross.to_string(),
        "680564733841876926945195958937245974525",
        "exact decimal of 2·(2^128−1) + 2^64−1"
    );

    let first_day = store
        .earnings_total(&node_id(1), Some(window(0, day)))
        .await
        .expect("total");
    assert_eq!(first_day.entries, 2);
    assert_eq!(first_day.gross, big.checked_add(big).expect("sum"));
    let other = store
        .earnings_total(&node_id(2), None)
        .await
        .expect("total");
    assert_eq!(other.net, TokenAmount::from(4u64));
    let nobody = store
        .earnings_total(&node_id(9), None)
        .await
        .expect("total");
    assert_eq!(nobody.entries, 0);
    assert!(nobody.gross.is_zero());

    let days = store
        .earnings_by_day(&node_id(1), window(-day, 3 * day))
        .await
        .expect("by day");
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].day, t(0).date_naive());
    assert_eq!(days[0].total.entries, 2);
    assert_eq!(days[0].total.gross, big.checked_add(big).expect("sum"));
    assert_eq!(days[1].day, t(day).date_naive());
    assert_eq!(days[1].total.net, mid);
}

/// A sum beyond u256 is an overflow error, never a wrapped or rounded number.
pub async fn earnings_overflow_is_an_error(store: DynJobStore) {
    let max = TokenAmount::from_u256(U256::MAX);
    for s in [0, 1] {
        store
            .credit_earning(&entry(1, max, TokenAmount::ZERO, t(s)))
            .await
            .expect("credit");
    }
    match store.earnings_total(&node_id(1), None).await {
        Err(Error::Overflow(_)) => {}
        other => panic!("a sum beyond u256: expected Overflow, got {other:?}"),
    }
}

pub(crate) fn event(block: u64, fork: &str, tx: u8, index: u32) -> ChainEvent {
    ChainEvent {
        block_number: block,
        block_hash: format!("0x{fork}{block:04x}"),
        tx_hash: format!("0x{tx:02x}{block:04x}"),
        event_index: index,
        contract: "0x0123".into(),
        keys: vec!["0x99".into(), format!("0x{block:x}")],
        data: vec!["0x1".into(), "0x0".into()],
    }
}

pub(crate) fn cursor(block: u64, fork: &str) -> IndexerCursor {
    IndexerCursor {
        block_number: block,
        block_hash: format!("0x{fork}{block:04x}"),
    }
}

/// Chain events: idempotent by (block hash, tx hash, index), cursor moves with each page,
/// a reorg rollback deletes above the ancestor and moves the cursor atomically.
pub async fn chain_events_idempotent_and_reorg(store: DynJobStore) {
    assert!(store
        .indexer_cursor("staking")
        .await
        .expect("cursor")
        .is_none());
    let page1 = vec![
        event(1, "a", 1, 0),
        event(1, "a", 1, 1),
        event(2, "a", 2, 0),
    ];
    assert_eq!(
        store
            .append_chain_events("staking", &page1, &cursor(2, "a"))
            .await
            .expect("append"),
        3
    );
    assert_eq!(
        store.indexer_cursor("staking").await.expect("cursor"),
        Some(cursor(2, "a"))
    );
    // Re-delivering a page (e.g. after a crash before the cursor moved) stores nothing twice.
    let page2 = vec![
        event(2, "a", 2, 0),
        event(3, "a", 3, 0),
        event(4, "a", 4, 0),
    ];
    assert_eq!(
        store
            .append_chain_events("staking", &page2, &cursor(4, "a"))
            .await
            .expect("append"),
        2
    );
    let all = store.chain_events(0, 100).await.expect("events");
    assert_eq!(all.len(), 5);
    assert_eq!(all[0], page1[0], "events round-trip");
    assert!(all
        .windows(2)
        .all(|w| (w[0].block_number, w[0].event_index) <= (w[1].block_number, w[1].event_index)));
    assert_eq!(store.chain_events(2, 3).await.expect("events").len(), 2);
    assert!(
        store
            .indexer_cursor("other")
            .await
            .expect("cursor")
            .is_none(),
        "cursors are per indexer"
    );

    // Reorg: blocks above 2 are replaced by fork "b".
    let deleted = store
        .rewind_chain("staking", &cursor(2, "a"))
        .await
        .expect("rewind");
    assert_eq!(deleted, 2);
    assert_eq!(
        store.indexer_cursor("staking").await.expect("cursor"),
        Some(cursor(2, "a"))
    );
    assert_eq!(store.chain_events(0, 100).await.expect("events").len(), 3);
    let fork = vec![event(3, "b", 7, 0)];
    assert_eq!(
        store
            .append_chain_events("staking", &fork, &cursor(3, "b"))
            .await
            .expect("append"),
        1
    );
    let after = store.chain_events(3, 100).await.expect("events");
    assert_eq!(after, fork);
}
