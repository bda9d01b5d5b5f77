#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items
//! Store throughput: heartbeat append and job lease for SqliteStore and PgStore, each beside a
//! bare sqlx statement writing the same row in the same run (so the ratio is ours vs sqlx's
//! floor on the same machine, same moment); a verified completion settled in one transaction
//! beside the former three-call path.
//!
//! PgStore groups need `BITSAGE_TEST_PG_URL` (scripts/bench.sh starts a throw-away cluster);
//! without it they are skipped with a printed reason.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitsage_core::conformance::store::{new_job, new_node, t};
use bitsage_core::crypto::{Hash32, PublicKey};
use bitsage_core::gpu::GpuSample;
use bitsage_core::job::{JobResult, VerifiedCompletion};
use bitsage_core::ledger::EarningEntry;
use bitsage_core::node::Heartbeat;
use bitsage_core::receipt::{Receipt, ReceiptBody};
use bitsage_core::time::to_micros;
use bitsage_core::{DynJobStore, EntryId, NodeId, ReceiptId};
use bitsage_store::testing::{create_database, PG_URL_VAR};
use bitsage_store::{PgStore, SqliteStore};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::runtime::Runtime;

fn rt() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn node() -> NodeId {
    NodeId::parse("node-1").expect("id")
}

fn heartbeat(seq: u64) -> Heartbeat {
    Heartbeat {
        node_id: node(),
        at: t(seq as i64),
        sequence: seq,
        load_average_1m: Some(0.25),
        agent_version: "0.1.0".into(),
        gpu_collector: None,
        gpu_samples: Vec::new(),
    }
}

/// A bare sqlx pool on the same kind of file, with the same durability settings as SqliteStore.
async fn bare_sqlite(path: &std::path::Path) -> sqlx::SqlitePool {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("bare pool")
}

/// Benchmarks one backend: `store` beside the bare statements `bare_heartbeat` (the same
/// heartbeat row) and `bare_lease` (the same lease UPDATE), in one run.
fn bench_backend<H, HF, L, LF>(
    c: &mut Criterion,
    backend: &str,
    rt: &Runtime,
    store: DynJobStore,
    bare_heartbeat: H,
    bare_lease: L,
) where
    H: Fn(Heartbeat) -> HF,
    HF: Future<Output = ()>,
    L: Fn() -> LF,
    LF: Future<Output = ()>,
{
    rt.block_on(store.create_node(&new_node(1, 1, t(0))))
        .expect("node");
    let mut g = c.benchmark_group(format!("{backend}/heartbeat_append"));
    g.throughput(Throughput::Elements(1));
    let mut seq = 0u64;
    g.bench_function("store", |b| {
        b.to_async(rt).iter(|| {
            seq += 1;
            let s = store.clone();
            let hb = heartbeat(seq);
            async move { s.append_heartbeat(&hb).await.expect("append") }
        })
    });
    // The bare statement writes into the store's own table, with sequences the store never uses.
    let mut bare_seq = 1u64 << 40;
    g.bench_function("bare_sqlx_insert", |b| {
        b.to_async(rt).iter(|| {
            bare_seq += 1;
            bare_heartbeat(heartbeat(bare_seq))
        })
    });
    g.finish();

    // A heartbeat carrying two GPU samples: stored in one transaction (what the coordinator
    // does) beside the former path, a heartbeat call then a samples call (two transactions).
    let mut g = c.benchmark_group(format!("{backend}/heartbeat_with_2_samples"));
    g.throughput(Throughput::Elements(1));
    let samples = |seq: u64| {
        ["GPU-0", "GPU-1"]
            .map(|uuid| {
                let mut s = GpuSample::empty(uuid, t(seq as i64));
                s.gpu_utilization_ratio = Some(0.5);
                s.power_watts = Some(300.0);
                s
            })
            .to_vec()
    };
    let mut seq_one = 1u64 << 41;
    g.bench_function("one_transaction", |b| {
        b.to_async(rt).iter(|| {
            seq_one += 1;
            let s = store.clone();
            let hb = Heartbeat {
                gpu_samples: samples(seq_one),
                ..heartbeat(seq_one)
            };
            async move { s.append_heartbeat(&hb).await.expect("append") }
        })
    });
    let mut seq_two = 1u64 << 42;
    g.bench_function("two_calls", |b| {
        b.to_async(rt).iter(|| {
            seq_two += 1;
            let s = store.clone();
            let hb = heartbeat(seq_two);
            let smp = samples(seq_two);
            async move {
                s.append_heartbeat(&hb).await.expect("append");
                s.append_gpu_samples(&hb.node_id, &smp)
                    .await
                    .expect("samples");
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("{backend}/job_lease"));
    g.throughput(Throughput::Elements(1));
    // Each batch first queues as many jobs as it will lease (untimed), then times the leases.
    let queue = &store;
    let fill = |iters: u64| async move {
        for i in 0..iters {
            queue
                .enqueue_job(&new_job(i, 1, 3, t(i as i64)))
                .await
                .expect("enqueue");
        }
    };
    g.bench_function("store", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                fill(iters).await;
                let start = Instant::now();
                for _ in 0..iters {
                    store
                        .lease_job(&node(), t(1_000_000), Duration::from_secs(60))
                        .await
                        .expect("lease")
                        .expect("a job");
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("bare_sqlx_update", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                fill(iters).await;
                let start = Instant::now();
                for _ in 0..iters {
                    bare_lease().await;
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    // A verified completion: result + receipt + ledger credit (+ events). One transaction
    // (`settle_completion`) beside the former path of three store calls, same run.
    let mut g = c.benchmark_group(format!("{backend}/completion_settle"));
    g.throughput(Throughput::Elements(1));
    let leased = |iters: u64| async move {
        let mut out = Vec::with_capacity(iters as usize);
        for i in 0..iters {
            queue
                .enqueue_job(&new_job(i, 1_000_000, 3, t(i as i64)))
                .await
                .expect("enqueue");
            let lease = queue
                .lease_job(&node(), t(1_000_000), Duration::from_secs(3600))
                .await
                .expect("lease")
                .expect("a job");
            out.push(completion(&lease));
        }
        out
    };
    g.bench_function("one_transaction", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let work = leased(iters).await;
                let start = Instant::now();
                for c in &work {
                    store
                        .settle_completion(c, t(1_000_001))
                        .await
                        .expect("settle");
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("three_calls", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let work = leased(iters).await;
                let start = Instant::now();
                for c in &work {
                    store
                        .complete_job(&c.lease, &c.result, t(1_000_001))
                        .await
                        .expect("complete");
                    store.insert_receipt(&c.receipt).await.expect("receipt");
                    store.credit_earning(&c.entry).await.expect("credit");
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

/// A verified completion of `lease` by node 1 (receipt signed by the node and countersigned).
fn completion(lease: &bitsage_core::job::Lease) -> VerifiedCompletion {
    let node_key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let coordinator = ed25519_dalek::SigningKey::from_bytes(&[200; 32]);
    let (fee, net) = bitsage_core::ledger::split_payment(lease.payment, 250).expect("split");
    let body = ReceiptBody {
        id: ReceiptId(lease.spec.id.0),
        job_id: lease.spec.id,
        kind: lease.spec.kind.name().into(),
        node_id: node(),
        node_key: PublicKey::of(&node_key),
        coordinator_key: PublicKey::of(&coordinator),
        output: "0123".into(),
        proof_hash: Hash32([7; 32]),
        payment: lease.payment,
        fee,
        net,
        completed_at: t(1_000_001),
    };
    let sig = body.sign_as_node(&node_key).expect("sign");
    let receipt = Receipt::countersign(body, sig, &coordinator).expect("countersign");
    VerifiedCompletion {
        lease: lease.reference(),
        result: JobResult {
            output: "0123".into(),
            proof_hash: Hash32([7; 32]),
            proof_ref: "bench".into(),
            completed_at: t(1_000_001),
        },
        receipt,
        entry: EarningEntry {
            id: EntryId(lease.spec.id.0),
            node_id: node(),
            job_id: lease.spec.id,
            gross: lease.payment,
            fee,
            net,
            credited_at: t(1_000_001),
        },
        verify_time: std::time::Duration::from_millis(1),
    }
}

fn sqlite_benches(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().expect("dir");
    let store = rt
        .block_on(SqliteStore::open_dir(dir.path()))
        .expect("open");
    let bare = rt.block_on(bare_sqlite(store.path()));
    bench_backend(
        c,
        "sqlite",
        &rt,
        Arc::new(store),
        |hb| {
            let pool = bare.clone();
            async move {
                sqlx::query(
                    "INSERT INTO heartbeats (node_id, sequence, at, load_average_1m, \
                     agent_version) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(hb.node_id.as_str())
                .bind(hb.sequence as i64)
                .bind(to_micros(hb.at))
                .bind(hb.load_average_1m)
                .bind(&hb.agent_version)
                .execute(&pool)
                .await
                .expect("insert");
            }
        },
        || {
            let pool = bare.clone();
            async move {
                sqlx::query(
                    "UPDATE jobs SET status = 'leased', attempts = attempts + 1, \
                     lease_id = ?, lease_node = ?, leased_at = ?, lease_expires_at = ?, \
                     updated_at = ? WHERE id = (SELECT id FROM jobs WHERE status = 'queued' \
                     ORDER BY submitted_at, id LIMIT 1) RETURNING id",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind("node-1")
                .bind(to_micros(t(1_000_000)))
                .bind(to_micros(t(1_000_060)))
                .bind(to_micros(t(1_000_000)))
                .fetch_one(&pool)
                .await
                .expect("lease");
            }
        },
    );
}

fn pg_benches(c: &mut Criterion) {
    let Ok(url) = std::env::var(PG_URL_VAR) else {
        eprintln!("SKIPPED postgres benches: {PG_URL_VAR} is not set (use scripts/bench.sh)");
        return;
    };
    let rt = rt();
    let store = rt.block_on(async {
        let db = create_database(&url, "bitsage_bench")
            .await
            .expect("create db");
        let opts = PgConnectOptions::from_str(&db.url).expect("url");
        PgStore::connect_with(opts, 8).await.expect("PgStore")
    });
    let bare = store.pool().clone();
    bench_backend(
        c,
        "postgres",
        &rt,
        Arc::new(store),
        |hb| {
            let pool = bare.clone();
            async move {
                sqlx::query(
                    "INSERT INTO heartbeats (node_id, sequence, at, load_average_1m, \
                     agent_version) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(hb.node_id.as_str())
                .bind(hb.sequence as i64)
                .bind(hb.at)
                .bind(hb.load_average_1m)
                .bind(&hb.agent_version)
                .execute(&pool)
                .await
                .expect("insert");
            }
        },
        || {
            let pool = bare.clone();
            async move {
                sqlx::query(
                    "UPDATE jobs SET status = 'leased', attempts = attempts + 1, \
                     lease_id = $1::uuid, lease_node = $2, leased_at = $3, \
                     lease_expires_at = $4, updated_at = $3 WHERE id = (SELECT id FROM jobs \
                     WHERE status = 'queued' ORDER BY submitted_at, id LIMIT 1 \
                     FOR UPDATE SKIP LOCKED) RETURNING id",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind("node-1")
                .bind(t(1_000_000))
                .bind(t(1_000_060))
                .fetch_one(&pool)
                .await
                .expect("lease");
            }
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = sqlite_benches, pg_benches
}
criterion_main!(benches);
