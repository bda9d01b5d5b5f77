//! Scenario `console`: server time to first byte of the web console's pages (Overview `/`,
//! Nodes `/nodes`) on a coordinator holding a fleet-sized store (default 1,000 nodes and
//! 100,000 jobs), beside the JSON answers the pages are built from (`GET /api/summary`,
//! `GET /api/nodes?limit=25`), same client, same run.
//!
//! The coordinator runs in this process on SQLite in a fresh temp directory (rate limits
//! off). The store is seeded through its own port (`create_node`, `apply_transition`,
//! `append_heartbeat`, `enqueue_job`, `lease_job` + `settle_completion` with receipts
//! countersigned by the deployment's own key), then an admin logs in with
//! `POST /api/auth/login` and every request carries its `bitsage_access` cookie.
//!
//! Two phases per page: sequential (one request at a time on one keep-alive connection, the
//! pages interleaved so background work hits all alike) and concurrent (C connections, one
//! request in flight each, one page at a time). TTFB is the time from sending a request to
//! its response headers (`reqwest`'s `send().await`); "full" adds reading the body. Every
//! answer is checked (status 200, the expected page and figures): a wrong page is an error,
//! never a fast result.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bitsage_coordinator::{serve, CoordinatorConfig, RunningCoordinator};
use bitsage_core::crypto::{Hash32, PublicKey};
use bitsage_core::gpu::{DeviceState, GpuDevice, GpuTier, HostInfo};
use bitsage_core::job::{JobFilter, JobResult, NewJob, VerifiedCompletion};
use bitsage_core::ledger::EarningEntry;
use bitsage_core::lifecycle::transition;
use bitsage_core::node::{HardwareReport, Heartbeat, NewNode, NodeFilter, NodeProfile, Runtime};
use bitsage_core::receipt::{Receipt, ReceiptBody};
use bitsage_core::{
    DynJobStore, EntryId, JobId, JobKind, JobSpec, JobStatus, LifecycleEvent, NodeId, NodeStatus,
    ReceiptId, Timestamp, TokenAmount, WalletAddress,
};
use chrono::TimeDelta;
use clap::Args;
use ed25519_dalek::SigningKey;
use serde::Serialize;
use tokio::runtime::Runtime as TokioRuntime;
use tokio::task::JoinSet;

use crate::measure::{
    cpu_over, format_errors, format_threads, CpuReport, Environment, Percentiles, Tally, Window,
};

/// The admin the load logs in as.
const ADMIN: (&str, &str) = ("loadgen", "loadgen console password");

/// Regions the nodes are spread over (a few nodes have none: "unassigned").
const REGIONS: [&str; 6] = [
    "eu-west",
    "eu-central",
    "us-east",
    "us-west",
    "ap-south",
    "ap-northeast",
];

/// The region of the filtered Nodes page.
const FILTER_REGION: &str = "eu-west";

/// The Nodes page's rows per page (the console's `PAGE`).
const ROWS: usize = 25;

/// The page of the deep Nodes request (the last page when there are fewer).
const DEEP_PAGE: usize = 20;

/// Arguments of `loadgen console`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConsoleArgs {
    /// Nodes in the store.
    #[arg(long, default_value_t = 1_000)]
    pub nodes: usize,
    /// Jobs in the store, all statuses together.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Of those, completed (leased, then settled with receipt and ledger credit) in the last
    /// 24 hours.
    #[arg(long, default_value_t = 10_000)]
    pub completed: usize,
    /// Of those, completed in the 24 hours before (the KPIs' comparison window).
    #[arg(long, default_value_t = 2_000)]
    pub completed_before: usize,
    /// Measured sequential requests per page.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Warm-up requests per page before the sequential phase.
    #[arg(long, default_value_t = 20)]
    pub warmup_requests: usize,
    /// Concurrent connections of the second phase (one request in flight on each).
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Measured seconds of the concurrent phase, per page.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Warm-up seconds before each concurrent phase.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Store writes in flight while seeding queued jobs and heartbeats.
    #[arg(long, default_value_t = 4)]
    pub seed_concurrency: usize,
    /// Times each store read behind Overview alone this many times before the load (0: skip).
    #[arg(long, default_value_t = 20)]
    pub breakdown_reps: usize,
}

/// What a page is, for the checks and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Target {
    /// `GET /` (HTML).
    Overview,
    /// `GET /nodes` (HTML, first page).
    Nodes,
    /// `GET /nodes?page=20` (HTML).
    NodesDeep,
    /// `GET /nodes?status=active&region=eu-west` (HTML).
    NodesFiltered,
    /// `GET /api/summary` (JSON behind Overview).
    ApiSummary,
    /// `GET /api/nodes?limit=25` (JSON behind Nodes).
    ApiNodes,
}

impl Target {
    fn path(self, deep_page: usize) -> String {
        match self {
            Target::Overview => "/".into(),
            Target::Nodes => "/nodes".into(),
            Target::NodesDeep => format!("/nodes?page={deep_page}"),
            Target::NodesFiltered => format!("/nodes?status=active&region={FILTER_REGION}"),
            Target::ApiSummary => "/api/summary".into(),
            Target::ApiNodes => format!("/api/nodes?limit={ROWS}"),
        }
    }

    fn is_html(self) -> bool {
        !matches!(self, Target::ApiSummary | Target::ApiNodes)
    }
}

/// What every answer of a page must contain (and, for the JSON, what it must not contain
/// more often than the first answer did).
#[derive(Debug, Clone)]
struct Expect {
    /// The request path.
    path: String,
    /// Substrings that must all occur.
    contains: Vec<String>,
    /// A substring that must occur exactly this often.
    count: Option<(String, usize)>,
}

impl Expect {
    fn check(&self, body: &[u8]) -> Result<(), String> {
        for s in &self.contains {
            if occurrences(body, s.as_bytes()) == 0 {
                return Err(format!("`{s}` missing"));
            }
        }
        if let Some((s, n)) = &self.count {
            let got = occurrences(body, s.as_bytes());
            if got != *n {
                return Err(format!("`{s}` {got} times, expected {n}"));
            }
        }
        Ok(())
    }
}

/// How many times `needle` occurs in `hay`.
fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() || hay.len() < needle.len() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Nearest-rank percentiles with p95 (the target), milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Quantiles {
    /// Count, mean, p50, p90, p99, p99.9, max (`measure::Percentiles`).
    #[serde(flatten)]
    pub base: Percentiles,
    /// 95th percentile.
    pub p95_ms: f64,
}

impl Quantiles {
    fn of(us: &mut [u32]) -> Self {
        let base = Percentiles::of(us); // sorts
        let p95_ms = if us.is_empty() {
            0.0
        } else {
            let rank = (0.95 * us.len() as f64).ceil() as usize;
            f64::from(us[rank.clamp(1, us.len()) - 1]) / 1000.0
        };
        Self { base, p95_ms }
    }
}

/// One page in one phase.
#[derive(Debug, Serialize)]
pub(crate) struct PhaseFigures {
    /// Answers that were 200 and the expected page, inside the window.
    pub ok: u64,
    /// `ok / seconds` (sequential: over the measured requests' wall time).
    pub requests_per_sec: f64,
    /// Time to the response headers.
    pub ttfb: Quantiles,
    /// Time to the end of the body.
    pub full: Quantiles,
    /// Failures inside the window by kind (HTTP status, `transport`, `wrong_page`).
    pub errors: BTreeMap<String, u64>,
    /// Failures during warm-up or drain.
    pub errors_outside_window: BTreeMap<String, u64>,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
    /// CPU inside the window (concurrent phase only).
    pub cpu: Option<CpuReport>,
}

/// One page over both phases.
#[derive(Debug, Serialize)]
pub(crate) struct PageReport {
    /// Which.
    pub target: Target,
    /// The request path.
    pub path: String,
    /// Size of the first answer, bytes.
    pub response_bytes: usize,
    /// One request at a time.
    pub sequential: PhaseFigures,
    /// `connections` at once.
    pub concurrent: PhaseFigures,
}

/// HTML over its JSON, by TTFB.
#[derive(Debug, Serialize)]
pub(crate) struct Ratio {
    /// `overview/api_summary` or `nodes/api_nodes`.
    pub pair: String,
    /// p50 HTML ÷ p50 JSON, sequential.
    pub sequential_p50: f64,
    /// p95 HTML ÷ p95 JSON, sequential.
    pub sequential_p95: f64,
    /// p50 HTML ÷ p50 JSON, concurrent.
    pub concurrent_p50: f64,
    /// JSON req/s ÷ HTML req/s, concurrent.
    pub concurrent_throughput: f64,
}

/// What the store held when the load started (counted back from it).
#[derive(Debug, Serialize)]
pub(crate) struct SeedReport {
    /// Nodes by status.
    pub nodes_by_status: BTreeMap<String, u64>,
    /// Nodes per region (`unassigned`: none).
    pub nodes_by_region: BTreeMap<String, u64>,
    /// Jobs by status.
    pub jobs_by_status: BTreeMap<String, u64>,
    /// Completed in the last 24 h (as seeded).
    pub completed_last_24h: usize,
    /// Completed in the 24 h before (as seeded).
    pub completed_day_before: usize,
    /// Heartbeats appended.
    pub heartbeats: u64,
    /// Active nodes in the filtered page's region.
    pub active_in_filter_region: u64,
    /// Seconds: nodes (create + transitions + heartbeats).
    pub nodes_secs: f64,
    /// Seconds: completed jobs (enqueue + lease + settle, one at a time).
    pub completed_secs: f64,
    /// Seconds: queued jobs.
    pub queued_secs: f64,
    /// Seconds: one reputation round over all nodes (run once before the load).
    pub reputation_round_secs: f64,
    /// Size of the SQLite database with its WAL, bytes.
    pub database_bytes: u64,
}

/// One part of the Overview's data (what `GET /api/summary` and `GET /` read), timed alone,
/// one call after another, before the load.
#[derive(Debug, Serialize)]
pub(crate) struct PartTiming {
    /// What was called.
    pub part: String,
    /// Store calls in it (run one after another here; the summary runs them concurrently);
    /// `None` for the wholes.
    pub store_calls: Option<u32>,
    /// Rows it returned, where it returns rows.
    pub rows: Option<usize>,
    /// Median over the repetitions, ms.
    pub p50_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

/// The outcome of `loadgen console`, printed as one JSON line.
#[derive(Debug, Serialize)]
pub(crate) struct ConsoleReport {
    /// `"console"`.
    pub scenario: &'static str,
    /// Sequential requests per page.
    pub requests: usize,
    /// Warm-up requests per page.
    pub warmup_requests: usize,
    /// Concurrent connections.
    pub connections: usize,
    /// Seconds per concurrent phase.
    pub duration_secs: u64,
    /// Warm-up seconds per concurrent phase.
    pub warmup_secs: u64,
    /// The store's contents.
    pub seed: SeedReport,
    /// Where the Overview's time goes: its reads, timed alone before the load.
    pub overview_parts: Vec<PartTiming>,
    /// Every page.
    pub pages: Vec<PageReport>,
    /// HTML ÷ JSON.
    pub ratios: Vec<Ratio>,
    /// Whether every HTML page met p50 < 200 ms and p95 < 600 ms TTFB, per phase.
    pub targets_met_sequential: bool,
    /// The same under concurrency.
    pub targets_met_concurrent: bool,
    /// Machine and build.
    pub environment: Environment,
}

// ---------------------------------------------------------------- seeding

/// A deterministic pseudo-random number of `i` and `salt` (splitmix64).
fn mix(i: u64, salt: u64) -> u64 {
    let mut z = i
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One seeded node.
struct PlannedNode {
    id: NodeId,
    key: SigningKey,
    region: Option<&'static str>,
    status: NodeStatus,
}

/// The status of node `i`: 70 % active, 5 % stale, 10 % offline, 10 % pending,
/// 5 % quarantined.
fn status_of(i: u64) -> NodeStatus {
    match mix(i, 1) % 20 {
        0..=13 => NodeStatus::Active,
        14 => NodeStatus::Stale,
        15 | 16 => NodeStatus::Offline,
        17 | 18 => NodeStatus::Pending,
        _ => NodeStatus::Quarantined,
    }
}

fn region_of(i: u64) -> Option<&'static str> {
    let h = mix(i, 2);
    // About 3 % without a region.
    (!h.is_multiple_of(33)).then(|| REGIONS[(h / 33 % REGIONS.len() as u64) as usize])
}

fn hardware_of(i: u64) -> HardwareReport {
    let h = mix(i, 3);
    let (count, name, tier, mem_gib) = match h % 10 {
        0 | 1 => (0, "", GpuTier::Consumer, 0),
        2 | 3 => (1, "NVIDIA GeForce RTX 4090", GpuTier::Consumer, 24),
        4 => (2, "NVIDIA L40S", GpuTier::DataCenter, 48),
        5 | 6 => (4, "NVIDIA A100-SXM4-80GB", GpuTier::Enterprise, 80),
        7 | 8 => (8, "NVIDIA H100 80GB HBM3", GpuTier::Frontier, 80),
        _ => (8, "NVIDIA H200", GpuTier::Frontier, 141),
    };
    let gpus = (0..count)
        .map(|d| GpuDevice {
            index: d,
            uuid: format!("GPU-{i:08x}-{d:04x}-4000-8000-{h:012x}"),
            name: name.into(),
            pci_bus_id: Some(format!("00000000:{:02X}:00.0", 0x18 + d)),
            memory_total_bytes: Some(mem_gib << 30),
            mig_enabled: Some(false),
            confidential_compute: None,
            tier: Some(tier),
            state: DeviceState::Ok,
        })
        .collect();
    HardwareReport {
        gpus,
        host: Some(HostInfo {
            cpu_model: Some("AMD EPYC 9654 96-Core Processor".into()),
            logical_cores: 64,
            load_average_1m: None,
            memory_total_bytes: 512 << 30,
            memory_available_bytes: Some(300 << 30),
        }),
        gpu_unavailable_reason: (count == 0).then(|| "no NVIDIA driver on this host".into()),
        driver_version: (count > 0).then(|| "580.65.06".into()),
        cuda_version: (count > 0).then(|| "13.0".into()),
        hardware_hash: None,
        attestation: None,
    }
}

/// The transitions that take a new (pending) node to `status`.
fn events_to(status: NodeStatus) -> Vec<LifecycleEvent> {
    let probe = LifecycleEvent::ProbePassed {
        job_id: "probe".into(),
    };
    match status {
        NodeStatus::Pending => vec![],
        NodeStatus::Active => vec![probe],
        NodeStatus::Stale => vec![
            probe,
            LifecycleEvent::HeartbeatOverdue {
                silent_secs: 3 * 3600,
            },
        ],
        NodeStatus::Offline => vec![
            probe,
            LifecycleEvent::OfflineTimeout {
                silent_secs: 30 * 3600,
            },
        ],
        NodeStatus::Quarantined => vec![
            probe,
            LifecycleEvent::AdminQuarantined {
                admin: ADMIN.0.into(),
                reason: "load generator: seeded quarantine".into(),
            },
        ],
    }
}

/// Heartbeat times of a node in `status` (oldest first): hourly over the last day for active
/// nodes (plus one a few seconds ago), until 3 h ago for stale ones, every 4 h the day before
/// for every node that ever ran.
fn heartbeat_times(status: NodeStatus, i: u64, now: Timestamp) -> Vec<Timestamp> {
    if matches!(status, NodeStatus::Pending | NodeStatus::Quarantined) {
        return vec![];
    }
    let jitter = TimeDelta::seconds((mix(i, 4) % 3600) as i64);
    let start = now - TimeDelta::hours(48) + jitter;
    let mut times: Vec<Timestamp> = (0..6).map(|k| start + TimeDelta::hours(4 * k)).collect();
    let last_hour = match status {
        NodeStatus::Active => 24,
        NodeStatus::Stale => 21,
        _ => 0,
    };
    let day = now - TimeDelta::hours(24) + jitter;
    times.extend(
        (0..last_hour)
            .map(|k| day + TimeDelta::hours(k))
            .filter(|t| *t < now),
    );
    if status == NodeStatus::Active {
        times.push(now - TimeDelta::seconds((mix(i, 5) % 30) as i64 + 1));
    }
    times.sort();
    times
}

/// Runs `f` over `items` with at most `concurrency` in flight.
pub(crate) async fn for_each_concurrent<T, F, Fut>(
    items: Vec<T>,
    concurrency: usize,
    f: F,
) -> anyhow::Result<()>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let f = Arc::new(f);
    let queue = Arc::new(std::sync::Mutex::new(items.into_iter()));
    let mut set = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (f, queue) = (f.clone(), queue.clone());
        set.spawn(async move {
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .next();
                let Some(item) = next else {
                    return anyhow::Ok(());
                };
                f(item).await?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.context("seeding task")??;
    }
    Ok(())
}

/// Creates the nodes with their statuses and heartbeats; returns them and the heartbeat count.
async fn seed_nodes(
    store: &DynJobStore,
    args: &ConsoleArgs,
    now: Timestamp,
) -> anyhow::Result<(Vec<PlannedNode>, u64)> {
    let mut planned = Vec::with_capacity(args.nodes);
    let mut news = Vec::with_capacity(args.nodes);
    for i in 0..args.nodes as u64 {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&mix(i, 6).to_le_bytes());
        seed[8..16].copy_from_slice(&i.to_le_bytes());
        let key = SigningKey::from_bytes(&seed);
        let id = NodeId::parse(&format!("console-node-{i:04}"))?;
        let region = region_of(i);
        let status = status_of(i);
        let registered_at =
            now - TimeDelta::days(3) - TimeDelta::minutes((mix(i, 7) % 40_000) as i64);
        let wallet = WalletAddress::parse(&format!("{:#x}", 0x5a6e_0000u64 + mix(i, 8) % 300))?;
        news.push((
            NewNode {
                id: id.clone(),
                public_key: PublicKey::of(&key),
                wallet,
                hardware: hardware_of(i),
                agent_version: "bitsage-agent/0.1.0".into(),
                registered_at,
                wallet_proven_at: Some(registered_at),
                profile: NodeProfile {
                    region: region.map(str::to_string),
                    runtime: Runtime::ALL[(mix(i, 9) % Runtime::ALL.len() as u64) as usize],
                    labels: BTreeMap::new(),
                    energy_tag: None,
                },
            },
            status,
            i,
        ));
        planned.push(PlannedNode {
            id,
            key,
            region,
            status,
        });
    }
    let heartbeats = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (st, hb) = (store.clone(), heartbeats.clone());
    for_each_concurrent(news, args.seed_concurrency, move |(node, status, i)| {
        let (store, hb) = (st.clone(), hb.clone());
        async move {
            let rec = store.create_node(&node).await.context("create_node")?;
            let mut current = rec.status;
            let mut at = node.registered_at;
            for event in events_to(status) {
                at += TimeDelta::minutes(10);
                let t = transition(current, &event)?.context("a seeded transition moves")?;
                current = store
                    .apply_transition(&node.id, &t, at)
                    .await
                    .context("apply_transition")?
                    .status;
            }
            anyhow::ensure!(
                current == status,
                "node {} is {current}, not {status}",
                node.id
            );
            for (seq, at) in heartbeat_times(status, i, now).into_iter().enumerate() {
                store
                    .append_heartbeat(&Heartbeat {
                        node_id: node.id.clone(),
                        at,
                        sequence: seq as u64 + 1,
                        load_average_1m: Some(1.0 + (mix(i, seq as u64) % 300) as f64 / 100.0),
                        agent_version: node.agent_version.clone(),
                        gpu_collector: None,
                        gpu_samples: vec![],
                    })
                    .await
                    .context("append_heartbeat")?;
                hb.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        }
    })
    .await?;
    Ok((
        planned,
        heartbeats.load(std::sync::atomic::Ordering::Relaxed),
    ))
}

/// Run time of job `k` on a node in `region`, seconds: a base per region times 0.5–3.
fn run_secs(k: u64, region: Option<&str>) -> i64 {
    let base = match region {
        Some(r) if r.starts_with("eu") => 20,
        Some(r) if r.starts_with("us") => 30,
        Some(_) => 45,
        None => 60,
    };
    base * (50 + (mix(k, 10) % 250) as i64) / 100
}

fn kind_of(k: u64) -> JobKind {
    if mix(k, 11).is_multiple_of(4) {
        JobKind::WideFibonacci {
            columns: 64,
            log_rows: 12,
            a: 1,
            b: 1,
        }
    } else {
        JobKind::Poseidon2Chain {
            seed: k,
            length: 4096,
        }
    }
}

/// Completes `count` jobs with completions spread evenly over `(from, to)`: each is queued,
/// leased by a running node and settled (result, countersigned receipt, ledger credit, timing)
/// in the store's one transaction, one job at a time (so the lease takes exactly that job).
async fn seed_completed(
    store: &DynJobStore,
    deployment: &SigningKey,
    nodes: &[PlannedNode],
    count: usize,
    from: Timestamp,
    to: Timestamp,
    salt: u64,
) -> anyhow::Result<()> {
    let workers: Vec<&PlannedNode> = nodes
        .iter()
        .filter(|n| matches!(n.status, NodeStatus::Active | NodeStatus::Stale))
        .collect();
    anyhow::ensure!(
        !workers.is_empty() || count == 0,
        "no running node to complete jobs"
    );
    let span_us = (to - from).num_microseconds().unwrap_or(0).max(1);
    let coordinator_key = PublicKey::of(deployment);
    let payment = TokenAmount::from(2_000_000_000_000_000u64);
    let fee = payment.mul_bps(250)?;
    let net = payment.checked_sub(fee)?;
    for k in 0..count as u64 {
        let key_k = k + salt;
        let node = workers[(mix(key_k, 12) % workers.len() as u64) as usize];
        let done = from + TimeDelta::microseconds(span_us * k as i64 / count.max(1) as i64);
        let run = TimeDelta::seconds(run_secs(key_k, node.region));
        let wait = TimeDelta::seconds(1 + (mix(key_k, 13) % 60) as i64);
        let leased_at = done - run;
        let submitted = leased_at - wait;
        let job = NewJob {
            spec: JobSpec::new(JobId::new(), kind_of(key_k))?,
            payment,
            max_attempts: 3,
            submitted_at: submitted,
            funding: None,
        };
        store.enqueue_job(&job).await.context("enqueue_job")?;
        // Past leases must outlive the coordinator's sweeper (it expires leases against the
        // real clock): held until an hour after now, settled at `done` well before that.
        let hold = (bitsage_core::time::now() - leased_at)
            .to_std()
            .unwrap_or(Duration::ZERO)
            + Duration::from_secs(3600);
        let lease = store
            .lease_job(&node.id, leased_at, hold)
            .await
            .context("lease_job")?
            .context("the job just queued")?;
        anyhow::ensure!(lease.spec.id == job.spec.id, "leased another job");
        let proof_hash = Hash32(
            mix(key_k, 14)
                .to_le_bytes()
                .repeat(4)
                .try_into()
                .unwrap_or([7; 32]),
        );
        let body = ReceiptBody {
            id: ReceiptId(job.spec.id.0),
            job_id: job.spec.id,
            kind: job.spec.kind.name().into(),
            node_id: node.id.clone(),
            node_key: PublicKey::of(&node.key),
            coordinator_key,
            output: format!("{:016x}", mix(key_k, 15)),
            proof_hash,
            payment,
            fee,
            net,
            completed_at: done,
        };
        let sig = body.sign_as_node(&node.key)?;
        let receipt = Receipt::countersign(body, sig, deployment)?;
        let completion = VerifiedCompletion {
            lease: lease.reference(),
            result: JobResult {
                output: receipt.body.output.clone(),
                proof_hash,
                proof_ref: format!("proofs/{}", job.spec.id),
                completed_at: done,
            },
            receipt,
            entry: EarningEntry {
                id: EntryId(job.spec.id.0),
                node_id: node.id.clone(),
                job_id: job.spec.id,
                gross: payment,
                fee,
                net,
                credited_at: done,
            },
            verify_time: Duration::from_millis(2 + mix(key_k, 16) % 20),
        };
        store
            .settle_completion(&completion, done)
            .await
            .context("settle_completion")?;
    }
    Ok(())
}

/// Queues `count` jobs submitted over the last 6 hours.
async fn seed_queued(
    store: &DynJobStore,
    count: usize,
    concurrency: usize,
    now: Timestamp,
) -> anyhow::Result<()> {
    let st = store.clone();
    for_each_concurrent((0..count as u64).collect(), concurrency, move |k: u64| {
        let store = st.clone();
        async move {
            let key_k = k + 1_000_000_000;
            let job = NewJob {
                spec: JobSpec::new(JobId::new(), kind_of(key_k))?,
                payment: TokenAmount::from(2_000_000_000_000_000u64),
                max_attempts: 3,
                submitted_at: now - TimeDelta::seconds((mix(key_k, 17) % (6 * 3600)) as i64),
                // The load generator measures the console, not payments.
                funding: None,
            };
            store.enqueue_job(&job).await.context("enqueue_job")?;
            Ok(())
        }
    })
    .await
}

/// The store's contents, counted back.
async fn count_back(
    store: &DynJobStore,
) -> anyhow::Result<(
    BTreeMap<String, u64>,
    BTreeMap<String, u64>,
    BTreeMap<String, u64>,
    u64,
)> {
    let mut nodes = BTreeMap::new();
    for s in NodeStatus::ALL {
        nodes.insert(
            s.to_string(),
            store.count_nodes(&NodeFilter::status(s)).await?,
        );
    }
    let mut regions = BTreeMap::new();
    for r in REGIONS {
        let f = NodeFilter {
            region: Some(r.into()),
            ..NodeFilter::default()
        };
        regions.insert(r.to_string(), store.count_nodes(&f).await?);
    }
    let all = store.count_nodes(&NodeFilter::default()).await?;
    regions.insert("unassigned".into(), all - regions.values().sum::<u64>());
    let mut jobs = BTreeMap::new();
    for s in JobStatus::ALL {
        let f = JobFilter {
            status: Some(s),
            node: None,
        };
        jobs.insert(s.as_str().to_string(), store.count_jobs(&f).await?);
    }
    let active_in_region = store
        .count_nodes(&NodeFilter {
            status: Some(NodeStatus::Active),
            region: Some(FILTER_REGION.into()),
            ..NodeFilter::default()
        })
        .await?;
    Ok((nodes, regions, jobs, active_in_region))
}

// ---------------------------------------------------------------- load

/// Logs the admin in; returns the `bitsage_access` cookie value.
async fn login(base: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({ "username": ADMIN.0, "password": ADMIN.1 }))
        .send()
        .await
        .context("POST /api/auth/login")?;
    let status = resp.status();
    let cookie = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|kv| kv.trim().strip_prefix("bitsage_access="))
                .map(str::to_string)
        });
    let body = resp.text().await.unwrap_or_default();
    anyhow::ensure!(status == reqwest::StatusCode::OK, "login: {status}: {body}");
    cookie
        .filter(|c| !c.is_empty())
        .context("login answered without a bitsage_access cookie")
}

fn http_client(cookie: &str, connections: usize) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        format!("bitsage_access={cookie}")
            .parse()
            .context("cookie header")?,
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(connections)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")
}

/// One request's outcome.
enum Outcome {
    Ok {
        ttfb: Duration,
        full: Duration,
        bytes: Vec<u8>,
    },
    Failed {
        kind: String,
        message: String,
    },
}

async fn request(client: &reqwest::Client, url: &str, expect: &Expect, html: bool) -> Outcome {
    let started = Instant::now();
    let resp = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Failed {
                kind: "transport".into(),
                message: format!("{e:?}"),
            }
        }
    };
    let ttfb = started.elapsed();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match resp.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) => {
            return Outcome::Failed {
                kind: "transport".into(),
                message: format!("{e:?}"),
            }
        }
    };
    let full = started.elapsed();
    if status != reqwest::StatusCode::OK {
        return Outcome::Failed {
            kind: status.as_u16().to_string(),
            message: format!(
                "{url}: {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ),
        };
    }
    let wanted = if html {
        "text/html"
    } else {
        "application/json"
    };
    let checked = if content_type.starts_with(wanted) {
        expect.check(&body)
    } else {
        Err(format!("content type `{content_type}`, expected {wanted}"))
    };
    match checked {
        Ok(()) => Outcome::Ok {
            ttfb,
            full,
            bytes: body,
        },
        Err(why) => Outcome::Failed {
            kind: "wrong_page".into(),
            message: format!("{url}: {why}"),
        },
    }
}

/// Latencies and errors of one page in one phase.
#[derive(Default)]
struct Samples {
    /// Full times and errors.
    tally: Tally,
    /// TTFB of the same successes, microseconds.
    ttfb_us: Vec<u32>,
}

impl Samples {
    fn record(&mut self, window: &Window, done: Instant, outcome: Outcome) {
        match outcome {
            Outcome::Ok { ttfb, full, .. } => {
                if window.counts(done) {
                    self.ttfb_us
                        .push(u32::try_from(ttfb.as_micros()).unwrap_or(u32::MAX));
                }
                self.tally.ok(window, done, full);
            }
            Outcome::Failed { kind, message } => self.tally.error(window, done, kind, message),
        }
    }

    fn merge(&mut self, other: Samples) {
        self.tally.merge(other.tally);
        self.ttfb_us.extend(other.ttfb_us);
    }

    fn figures(mut self, secs: f64, cpu: Option<CpuReport>) -> PhaseFigures {
        PhaseFigures {
            ok: self.tally.ok,
            requests_per_sec: if secs > 0.0 {
                self.tally.ok as f64 / secs
            } else {
                0.0
            },
            ttfb: Quantiles::of(&mut self.ttfb_us),
            full: Quantiles::of(&mut self.tally.latencies_us),
            errors: self.tally.errors,
            errors_outside_window: self.tally.errors_outside_window,
            error_samples: self.tally.error_samples,
            cpu,
        }
    }
}

/// The sequential phase: warm-up, then `requests` rounds over every page, one request at a
/// time. Returns each page's samples and the seconds its measured requests took.
async fn sequential(
    client: &reqwest::Client,
    base: &str,
    pages: &[(Target, Expect)],
    args: &ConsoleArgs,
) -> Vec<(Samples, f64)> {
    let warm = Window {
        start: Instant::now() + Duration::from_secs(365 * 86_400),
        end: Instant::now() + Duration::from_secs(366 * 86_400),
    };
    let mut out: Vec<(Samples, f64)> = pages.iter().map(|_| (Samples::default(), 0.0)).collect();
    for _ in 0..args.warmup_requests {
        for ((t, e), (s, _)) in pages.iter().zip(out.iter_mut()) {
            let o = request(client, &format!("{base}{}", e.path), e, t.is_html()).await;
            s.record(&warm, Instant::now(), o);
        }
    }
    let measured = Window {
        start: Instant::now(),
        end: Instant::now() + Duration::from_secs(365 * 86_400),
    };
    for _ in 0..args.requests {
        for ((t, e), (s, secs)) in pages.iter().zip(out.iter_mut()) {
            let started = Instant::now();
            let o = request(client, &format!("{base}{}", e.path), e, t.is_html()).await;
            let done = Instant::now();
            *secs += (done - started).as_secs_f64();
            s.record(&measured, done, o);
        }
    }
    out
}

/// The concurrent phase of one page: `connections` loops for one window.
fn concurrent(
    client_rt: &TokioRuntime,
    client: &reqwest::Client,
    url: String,
    expect: &Expect,
    html: bool,
    args: &ConsoleArgs,
) -> anyhow::Result<(Samples, f64, CpuReport)> {
    let window = Window::after_warmup(
        Duration::from_secs(args.warmup_secs),
        Duration::from_secs(args.duration_secs),
    );
    let cpu = cpu_over(window);
    let samples = client_rt.block_on(async {
        let mut set = JoinSet::new();
        for _ in 0..args.connections {
            let (client, url, expect) = (client.clone(), url.clone(), expect.clone());
            set.spawn(async move {
                let mut s = Samples::default();
                while Instant::now() < window.end {
                    let o = request(&client, &url, &expect, html).await;
                    s.record(&window, Instant::now(), o);
                }
                s
            });
        }
        let mut all = Samples::default();
        while let Some(s) = set.join_next().await {
            all.merge(s.context("connection task")?);
        }
        anyhow::Ok(all)
    })?;
    let cpu = cpu
        .join()
        .map_err(|_| anyhow::anyhow!("the CPU sampling thread panicked"))?;
    Ok((samples, window.secs(), cpu))
}

/// What each page must show, from the store's counts and one checked answer of each JSON.
async fn expectations(
    client: &reqwest::Client,
    base: &str,
    nodes_total: u64,
    jobs_total: u64,
    active_in_region: u64,
    completed_24h: usize,
) -> anyhow::Result<Vec<(Target, Expect)>> {
    let pages_total = (nodes_total as usize).div_ceil(ROWS).max(1);
    let deep_page = DEEP_PAGE.min(pages_total);
    let deep_rows = (nodes_total as usize)
        .saturating_sub((deep_page - 1) * ROWS)
        .min(ROWS);
    let filtered_rows = (active_in_region as usize).min(ROWS);
    // The JSON behind Overview: every store group answered; the chain groups say
    // `unavailable` (no chain configured), and no more groups may under load.
    let summary: serde_json::Value = client
        .get(format!("{base}/api/summary"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    for group in ["network", "settlement", "operations"] {
        anyhow::ensure!(
            summary[group]["status"] == "ok",
            "/api/summary: group {group} is not ok before the load: {}",
            summary[group]
        );
    }
    anyhow::ensure!(
        summary["operations"]["jobs"]["value"].as_f64() == Some(completed_24h as f64),
        "/api/summary counts {} jobs completed in 24 h, {completed_24h} were seeded",
        summary["operations"]["jobs"]["value"]
    );
    let unavailable = occurrences(summary.to_string().as_bytes(), b"\"unavailable\"");
    let api_nodes: serde_json::Value = client
        .get(format!("{base}/api/nodes?limit={ROWS}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    anyhow::ensure!(
        api_nodes["total"].as_u64() == Some(nodes_total)
            && api_nodes["items"].as_array().map(Vec::len) == Some(ROWS.min(nodes_total as usize)),
        "/api/nodes does not list the seeded nodes: total {}",
        api_nodes["total"]
    );
    Ok(vec![
        (
            Target::Overview,
            Expect {
                path: Target::Overview.path(deep_page),
                contains: vec![
                    "data-kpi=\"jobs\"".into(),
                    "data-kpi=\"p95\"".into(),
                    format!("{jobs_total} jobs in total"),
                    "Receipts waiting for an epoch".into(),
                ],
                count: None,
            },
        ),
        (
            Target::Nodes,
            Expect {
                path: Target::Nodes.path(deep_page),
                contains: vec![
                    format!("{nodes_total} nodes match"),
                    format!("Page 1 of {pages_total}"),
                ],
                count: Some(("data-node-id=".into(), ROWS.min(nodes_total as usize))),
            },
        ),
        (
            Target::NodesDeep,
            Expect {
                path: Target::NodesDeep.path(deep_page),
                contains: vec![
                    format!("{nodes_total} nodes match"),
                    format!("Page {deep_page} of {pages_total}"),
                ],
                count: Some(("data-node-id=".into(), deep_rows)),
            },
        ),
        (
            Target::NodesFiltered,
            Expect {
                path: Target::NodesFiltered.path(deep_page),
                contains: vec![format!("{active_in_region} nodes match")],
                count: Some(("data-node-id=".into(), filtered_rows)),
            },
        ),
        (
            Target::ApiSummary,
            Expect {
                path: Target::ApiSummary.path(deep_page),
                contains: vec!["\"operations\":{\"status\":\"ok\"".into()],
                count: Some(("\"unavailable\"".into(), unavailable)),
            },
        ),
        (
            Target::ApiNodes,
            Expect {
                path: Target::ApiNodes.path(deep_page),
                contains: vec![format!("\"total\":{nodes_total}")],
                count: None,
            },
        ),
    ])
}

/// The whole minutes of `w` (as the fleet summary counts nodes up).
fn minutes_of(w: bitsage_core::TimeWindow) -> bitsage_core::node::MinuteRange {
    use bitsage_core::node::minute_of;
    let aligned = w.from.timestamp().rem_euclid(60) == 0 && w.from.timestamp_subsec_nanos() == 0;
    bitsage_core::node::MinuteRange {
        first: minute_of(w.from) + i64::from(!aligned),
        last: minute_of(w.to - TimeDelta::microseconds(1)),
    }
}

/// Times each read behind the Overview alone, `reps` times, one after another: the store
/// calls of `fleet::summary` and of the dashboard's network/settlement groups, then both
/// whole.
async fn overview_parts(
    state: &bitsage_http::AppState,
    reps: usize,
) -> anyhow::Result<Vec<PartTiming>> {
    use bitsage_core::service::fleet;
    use bitsage_core::timing::TimingFilter;
    let store = &state.store;
    let now = bitsage_core::time::now();
    let day = fleet::window_ending(now, TimeDelta::days(1));
    let before = fleet::window_ending(day.from, TimeDelta::days(1));
    let hours: Vec<bitsage_core::TimeWindow> = (0..24)
        .map(|h| {
            let from = day.from + TimeDelta::hours(h);
            bitsage_core::TimeWindow {
                from,
                to: (from + TimeDelta::hours(1)).min(day.to),
            }
        })
        .collect();
    let mut out = Vec::new();
    macro_rules! part {
        ($name:expr, $calls:expr, $body:expr) => {{
            let mut us = Vec::with_capacity(reps);
            let mut rows = None;
            for _ in 0..reps {
                let t = Instant::now();
                let r: Option<usize> = $body;
                us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                rows = r;
            }
            let p = Percentiles::of(&mut us);
            out.push(PartTiming {
                part: $name.to_string(),
                store_calls: $calls,
                rows,
                p50_ms: p.p50_ms,
                max_ms: p.max_ms,
            });
        }};
    }
    part!("count_nodes per status", Some(5), {
        for st in NodeStatus::ALL {
            store.count_nodes(&NodeFilter::status(st)).await?;
        }
        None
    });
    part!("count_jobs per status", Some(4), {
        for st in JobStatus::ALL {
            let f = JobFilter {
                status: Some(st),
                node: None,
            };
            store.count_jobs(&f).await?;
        }
        None
    });
    part!("settlement_backlog", Some(1), {
        store.settlement_backlog().await?;
        None
    });
    part!("readiness: list_nodes(limit 1)", Some(1), {
        let one = bitsage_core::page::PageRequest {
            limit: 1,
            offset: 0,
        };
        store.list_nodes(&NodeFilter::default(), one).await?;
        None
    });
    part!("nodes_heartbeating: 2 days + 24 hours", Some(26), {
        store.nodes_heartbeating(minutes_of(day)).await?;
        store.nodes_heartbeating(minutes_of(before)).await?;
        for h in &hours {
            store.nodes_heartbeating(minutes_of(*h)).await?;
        }
        None
    });
    part!("job_timings: last 24 h", Some(1), {
        Some(store.job_timings(&TimingFilter::window(day)).await?.len())
    });
    part!("job_timings: the 24 h before", Some(1), {
        Some(
            store
                .job_timings(&TimingFilter::window(before))
                .await?
                .len(),
        )
    });
    part!("fleet::summary (whole, its calls concurrent)", None, {
        fleet::summary(&**store, bitsage_core::time::now()).await?;
        None
    });
    part!("dashboard::summary_of (all of /api/summary)", None, {
        let s = bitsage_http::dashboard::summary_of(state).await;
        anyhow::ensure!(s.operations.ok().is_some(), "operations unavailable");
        None
    });
    Ok(out)
}

// ---------------------------------------------------------------- the scenario

/// Runs the scenario: the coordinator on `server_rt`, the client on `client_rt`.
pub(crate) fn run(
    server_rt: &TokioRuntime,
    client_rt: &TokioRuntime,
    args: &ConsoleArgs,
    environment: Environment,
) -> anyhow::Result<ConsoleReport> {
    anyhow::ensure!(args.nodes > 0, "--nodes must be at least 1");
    anyhow::ensure!(
        args.completed + args.completed_before <= args.jobs,
        "--completed + --completed-before must not exceed --jobs"
    );
    anyhow::ensure!(
        args.connections > 0 && args.requests > 0,
        "nothing to measure"
    );
    let dir = tempfile::Builder::new()
        .prefix("bitsage-loadgen-")
        .tempdir()
        .context("creating a temp data directory")?;
    let data_dir = dir.path().join("coordinator");
    let mut config = CoordinatorConfig::new(SocketAddr::from_str("127.0.0.1:0")?, &data_dir);
    // The pages are measured, not the limiter (one session sends every request).
    config.http.rate_limits = bitsage_http::ratelimit::RateLimits::disabled();
    // No agent heartbeats during the load: keep the seeded statuses (the lifecycle sweep
    // still walks every node each pass), and let the reputation rounds run without
    // quarantining (seeded uptime is hourly heartbeats only).
    config.policy.stale_after = Duration::from_secs(30 * 86_400);
    config.policy.offline_after = Duration::from_secs(60 * 86_400);
    config.policy.reputation.quarantine_below = None;
    config.bootstrap_admin = Some((ADMIN.0.into(), ADMIN.1.into()));
    let running: RunningCoordinator = server_rt
        .block_on(serve(config))
        .context("starting the coordinator")?;
    let base = running.url();
    let store = running.state.store.clone();
    let deployment = running.state.deployment.signing_key().clone();

    eprintln!(
        "console: seeding {} nodes and {} jobs ({} + {} completed) …",
        args.nodes, args.jobs, args.completed, args.completed_before
    );
    let now = bitsage_core::time::now();
    let t0 = Instant::now();
    let (planned, heartbeats) = server_rt.block_on(seed_nodes(&store, args, now))?;
    let nodes_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    server_rt.block_on(async {
        seed_completed(
            &store,
            &deployment,
            &planned,
            args.completed_before,
            now - TimeDelta::hours(47),
            now - TimeDelta::hours(25),
            500_000_000,
        )
        .await?;
        seed_completed(
            &store,
            &deployment,
            &planned,
            args.completed,
            now - TimeDelta::minutes(23 * 60 + 50),
            now - TimeDelta::minutes(2),
            0,
        )
        .await
    })?;
    let completed_secs = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let queued = args.jobs - args.completed - args.completed_before;
    server_rt.block_on(seed_queued(&store, queued, args.seed_concurrency, now))?;
    let queued_secs = t2.elapsed().as_secs_f64();
    eprintln!(
        "console: seeded in {:.1} s (nodes {nodes_secs:.1} s, completed {completed_secs:.1} s, \
         queued {queued_secs:.1} s); one reputation round …",
        t0.elapsed().as_secs_f64()
    );
    let t3 = Instant::now();
    server_rt
        .block_on(
            running
                .state
                .coordinator
                .update_reputations(bitsage_core::time::now()),
        )
        .map_err(|e| anyhow::anyhow!("reputation round: {e}"))?;
    let reputation_round_secs = t3.elapsed().as_secs_f64();
    let parts = if args.breakdown_reps > 0 {
        eprintln!("console: timing the Overview's reads alone …");
        server_rt.block_on(overview_parts(&running.state, args.breakdown_reps))?
    } else {
        Vec::new()
    };
    let (nodes_by_status, nodes_by_region, jobs_by_status, active_in_region) =
        server_rt.block_on(count_back(&store))?;
    drop(store);
    let database_bytes = std::fs::read_dir(&data_dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(".db"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let nodes_total: u64 = nodes_by_status.values().sum();
    let jobs_total: u64 = jobs_by_status.values().sum();
    anyhow::ensure!(
        nodes_total == args.nodes as u64 && jobs_total == args.jobs as u64,
        "the store holds {nodes_total} nodes and {jobs_total} jobs, not {} and {}",
        args.nodes,
        args.jobs
    );
    let seed = SeedReport {
        nodes_by_status,
        nodes_by_region,
        jobs_by_status,
        completed_last_24h: args.completed,
        completed_day_before: args.completed_before,
        heartbeats,
        active_in_filter_region: active_in_region,
        nodes_secs,
        completed_secs,
        queued_secs,
        reputation_round_secs,
        database_bytes,
    };

    // Sequential phase: one keep-alive connection, pages interleaved.
    eprintln!("console: sequential phase …");
    let (pages, first_sizes, seq) = client_rt.block_on(async {
        let cookie = login(&base).await?;
        let client = http_client(&cookie, 1)?;
        let pages = expectations(
            &client,
            &base,
            nodes_total,
            jobs_total,
            active_in_region,
            args.completed,
        )
        .await?;
        let mut sizes = Vec::new();
        for (t, e) in &pages {
            match request(&client, &format!("{base}{}", e.path), e, t.is_html()).await {
                Outcome::Ok { bytes, .. } => sizes.push(bytes.len()),
                Outcome::Failed { message, .. } => {
                    anyhow::bail!(
                        "{:?} is not the expected page before the load: {message}",
                        t
                    )
                }
            }
        }
        let seq = sequential(&client, &base, &pages, args).await;
        anyhow::Ok((pages, sizes, seq))
    })?;

    // Concurrent phase: one page at a time, a fresh session and pool.
    let mut conc = Vec::new();
    for (t, e) in &pages {
        eprintln!("console: concurrent phase, {:?} …", t);
        let client = client_rt.block_on(async {
            let cookie = login(&base).await?;
            http_client(&cookie, args.connections)
        })?;
        conc.push(concurrent(
            client_rt,
            &client,
            format!("{base}{}", e.path),
            e,
            t.is_html(),
            args,
        )?);
    }

    server_rt
        .block_on(running.shutdown())
        .context("stopping the coordinator")?;

    let mut reports = Vec::new();
    for ((((t, e), (s, secs)), (c, csecs, cpu)), bytes) in
        pages.iter().zip(seq).zip(conc).zip(first_sizes)
    {
        reports.push(PageReport {
            target: *t,
            path: e.path.clone(),
            response_bytes: bytes,
            sequential: s.figures(secs, None),
            concurrent: c.figures(csecs, Some(cpu)),
        });
    }
    let find = |t: Target| reports.iter().find(|p| p.target == t);
    let mut ratios = Vec::new();
    for (html, json, pair) in [
        (Target::Overview, Target::ApiSummary, "overview/api_summary"),
        (Target::Nodes, Target::ApiNodes, "nodes/api_nodes"),
    ] {
        if let (Some(h), Some(j)) = (find(html), find(json)) {
            let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
            ratios.push(Ratio {
                pair: pair.into(),
                sequential_p50: div(h.sequential.ttfb.base.p50_ms, j.sequential.ttfb.base.p50_ms),
                sequential_p95: div(h.sequential.ttfb.p95_ms, j.sequential.ttfb.p95_ms),
                concurrent_p50: div(h.concurrent.ttfb.base.p50_ms, j.concurrent.ttfb.base.p50_ms),
                concurrent_throughput: div(
                    j.concurrent.requests_per_sec,
                    h.concurrent.requests_per_sec,
                ),
            });
        }
    }
    let met = |f: &PhaseFigures| {
        f.errors.is_empty()
            && f.ttfb.base.count > 0
            && f.ttfb.base.p50_ms < 200.0
            && f.ttfb.p95_ms < 600.0
    };
    let html_pages = || reports.iter().filter(|p| p.target.is_html());
    Ok(ConsoleReport {
        scenario: "console",
        requests: args.requests,
        warmup_requests: args.warmup_requests,
        connections: args.connections,
        duration_secs: args.duration_secs,
        warmup_secs: args.warmup_secs,
        targets_met_sequential: html_pages().all(|p| met(&p.sequential)),
        targets_met_concurrent: html_pages().all(|p| met(&p.concurrent)),
        seed,
        overview_parts: parts,
        pages: reports,
        ratios,
        environment,
    })
}

impl ConsoleReport {
    /// The summary for people.
    pub(crate) fn human(&self) -> String {
        let s = &self.seed;
        let mut out = format!(
            "console: TTFB of the web console's pages; store: {} nodes ({}), {} jobs ({}), \
             {} completed in the last 24 h + {} the day before, {} heartbeats; database {:.1} MiB\n",
            s.nodes_by_status.values().sum::<u64>(),
            join_counts(&s.nodes_by_status),
            s.jobs_by_status.values().sum::<u64>(),
            join_counts(&s.jobs_by_status),
            s.completed_last_24h,
            s.completed_day_before,
            s.heartbeats,
            s.database_bytes as f64 / (1 << 20) as f64,
        );
        out += &format!(
            "  regions: {}; active in {FILTER_REGION}: {}\n",
            join_counts(&s.nodes_by_region),
            s.active_in_filter_region
        );
        out += &format!(
            "  seeding: nodes {:.1} s, completed jobs {:.1} s, queued jobs {:.1} s (total {:.1} s); \
             one reputation round over all nodes {:.2} s\n",
            s.nodes_secs,
            s.completed_secs,
            s.queued_secs,
            s.nodes_secs + s.completed_secs + s.queued_secs,
            s.reputation_round_secs
        );
        out += &format!(
            "  sequential: {} requests per page after {} warm-up, one at a time, pages \
             interleaved; concurrent: {} connections × {} s per page after {} s warm-up\n",
            self.requests,
            self.warmup_requests,
            self.connections,
            self.duration_secs,
            self.warmup_secs
        );
        out += "  page                                  phase       TTFB p50 / p95 / p99 / max ms      full p50 / p95 ms   req/s   bytes  errors\n";
        for p in &self.pages {
            for (phase, f) in [("sequential", &p.sequential), ("concurrent", &p.concurrent)] {
                out += &format!(
                    "  {:<37} {:<10} {:>8.1} / {:>6.1} / {:>6.1} / {:>6.1}   {:>8.1} / {:>6.1}  {:>6.1}  {:>6}  {}\n",
                    p.path,
                    phase,
                    f.ttfb.base.p50_ms,
                    f.ttfb.p95_ms,
                    f.ttfb.base.p99_ms,
                    f.ttfb.base.max_ms,
                    f.full.base.p50_ms,
                    f.full.p95_ms,
                    f.requests_per_sec,
                    p.response_bytes,
                    format_errors(&f.errors),
                );
                for e in &f.error_samples {
                    out += &format!("      e.g. {e}\n");
                }
            }
            if let Some(cpu) = &p.concurrent.cpu {
                out += &format!(
                    "      concurrent CPU: server {:.2} client {:.2} machine busy {:.2} of {}; busiest: {}\n",
                    cpu.server_cores,
                    cpu.client_cores,
                    cpu.machine_busy_cores,
                    cpu.machine_cores,
                    format_threads(&cpu.top_threads)
                );
            }
        }
        if !self.overview_parts.is_empty() {
            out += "  the Overview's reads, each alone before the load (calls one after another), p50 / max ms:\n";
            for p in &self.overview_parts {
                out += &format!(
                    "    {:<48} {:>9} {:>8.2} / {:>8.2}{}\n",
                    p.part,
                    p.store_calls
                        .map_or_else(|| "whole".to_string(), |n| format!("{n} call(s)")),
                    p.p50_ms,
                    p.max_ms,
                    p.rows.map_or_else(String::new, |r| format!("  ({r} rows)"))
                );
            }
        }
        for r in &self.ratios {
            out += &format!(
                "  HTML ÷ JSON ({}): TTFB p50 {:.2}× (p95 {:.2}×) sequential, p50 {:.2}× concurrent; \
                 JSON serves {:.2}× the req/s\n",
                r.pair, r.sequential_p50, r.sequential_p95, r.concurrent_p50, r.concurrent_throughput
            );
        }
        out += &format!(
            "  target (HTML pages, TTFB p50 < 200 ms and p95 < 600 ms, no errors): sequential {}, concurrent {}\n",
            if self.targets_met_sequential { "met" } else { "MISSED" },
            if self.targets_met_concurrent { "met" } else { "MISSED" },
        );
        out += &format!("  {}\n", self.environment.summary());
        out
    }
}

fn join_counts(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
