//! `loadgen fanout --rate R --duration-secs S`: event fan-out latency across coordinators.
//!
//! Two `PgStore`s on one fresh PostgreSQL database stand for two coordinators: "A" writes
//! (one `enqueue_job` per event, at `R` per second, each a committed transaction that appends
//! its `job_queued` event), "B" delivers — its [`EventHub`] is woken by `LISTEN/NOTIFY` and
//! reads the outbox, and one subscriber on B receives every event. Latency per event: from
//! A's commit acknowledged (the write call returned) to B's subscriber holding the event; also
//! from the write call's start (commit included). Needs `BITSAGE_TEST_PG_URL` (scripts/bench.sh
//! or scripts/test.sh start a throw-away cluster).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bitsage_core::event::Topic;
use bitsage_core::job::NewJob;
use bitsage_core::store_prelude::*;
use bitsage_core::{JobId, JobKind, JobSpec, TokenAmount};
use bitsage_http::live::{EventHub, LiveSettings};
use bitsage_store::{PgEventBus, PgStore};
use serde::Serialize;

use crate::measure::{Environment, Percentiles};

/// Arguments of `loadgen fanout`.
#[derive(Debug, clap::Args)]
pub(crate) struct FanoutArgs {
    /// Events written per second on coordinator A.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds of writing.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// PostgreSQL server URL (default: `BITSAGE_TEST_PG_URL`).
    #[arg(long, env = "BITSAGE_TEST_PG_URL")]
    database_url: String,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub(crate) struct FanoutReport {
    scenario: &'static str,
    environment: Environment,
    rate_target: u32,
    duration_secs: u64,
    written: u64,
    delivered: u64,
    writes_per_sec: f64,
    /// From A's acknowledged commit to B's subscriber.
    commit_to_delivery: Percentiles,
    /// From the start of A's write call to B's subscriber.
    write_start_to_delivery: Percentiles,
}

impl FanoutReport {
    /// A summary for people.
    pub(crate) fn human(&self) -> String {
        let c = &self.commit_to_delivery;
        let w = &self.write_start_to_delivery;
        format!(
            "fanout: target {} ev/s, wrote {} ({:.1}/s), delivered {} on the other coordinator\n  \
             commit -> delivery: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n  \
             write start -> delivery: p50 {:.2} ms  p99 {:.2} ms\n{}\n",
            self.rate_target,
            self.written,
            self.writes_per_sec,
            self.delivered,
            c.p50_ms,
            c.p99_ms,
            c.max_ms,
            w.p50_ms,
            w.p99_ms,
            self.environment.summary()
        )
    }
}

fn job(seed: u64) -> anyhow::Result<NewJob> {
    Ok(NewJob {
        spec: JobSpec::new(JobId::new(), JobKind::Poseidon2Chain { seed, length: 64 })?,
        payment: TokenAmount::from_u128(1),
        max_attempts: 1,
        submitted_at: bitsage_core::time::now(),
        // The load generator measures the queue, not payments.
        funding: None,
    })
}

/// Runs the scenario on `rt`.
pub(crate) fn run(
    rt: &tokio::runtime::Runtime,
    args: &FanoutArgs,
    environment: Environment,
) -> anyhow::Result<FanoutReport> {
    rt.block_on(async {
        let db = bitsage_store::testing::create_database(&args.database_url, "bitsage_fanout")
            .await
            .context("creating the database")?;
        let a = Arc::new(PgStore::connect(&db.url).await?);
        let b = Arc::new(PgStore::connect(&db.url).await?);
        let bus = Arc::new(PgEventBus::listen(&db.url).await?);
        let hub = EventHub::new(
            b,
            Some(bus),
            LiveSettings {
                buffer: 1 << 16,
                ..LiveSettings::default()
            },
        );
        let topics: BTreeSet<Topic> = [Topic::Jobs].into_iter().collect();
        let mut sub = hub
            .subscribe(topics, None)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        // job id → (write start, commit acknowledged)
        let sent: Arc<Mutex<HashMap<String, (Instant, Instant)>>> = Arc::default();
        let total = u64::from(args.rate) * args.duration_secs;
        let receiver = {
            let sent = Arc::clone(&sent);
            tokio::spawn(async move {
                let mut from_commit = Vec::new();
                let mut from_start = Vec::new();
                while (from_commit.len() as u64) < total {
                    let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(30), sub.next()).await
                    else {
                        break;
                    };
                    let got = Instant::now();
                    let id = e.data["job_id"].as_str().unwrap_or_default().to_string();
                    // The write may not have recorded its ack yet (NOTIFY is delivered at
                    // commit, before the client hears back): wait for it.
                    let times = loop {
                        if let Some(t) = sent.lock().expect("lock").get(&id).copied() {
                            break t;
                        }
                        tokio::task::yield_now().await;
                    };
                    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                    from_commit.push(us(got.saturating_duration_since(times.1)));
                    from_start.push(us(got.saturating_duration_since(times.0)));
                }
                (from_commit, from_start)
            })
        };
        let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut writers = Vec::new();
        for i in 0..total {
            tick.tick().await;
            let a = Arc::clone(&a);
            let sent = Arc::clone(&sent);
            let j = job(i)?;
            writers.push(tokio::spawn(async move {
                let id = j.spec.id.to_string();
                let t0 = Instant::now();
                a.enqueue_job(&j).await.expect("enqueue");
                let t1 = Instant::now();
                sent.lock().expect("lock").insert(id, (t0, t1));
            }));
        }
        for w in writers {
            w.await?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let (mut from_commit, mut from_start) = receiver.await?;
        Ok(FanoutReport {
            scenario: "fanout",
            environment,
            rate_target: args.rate,
            duration_secs: args.duration_secs,
            written: total,
            delivered: from_commit.len() as u64,
            writes_per_sec: total as f64 / elapsed,
            commit_to_delivery: Percentiles::of(&mut from_commit),
            write_start_to_delivery: Percentiles::of(&mut from_start),
        })
    })
}
