//! Scenario `heartbeats`: N simulated agents (nodes), each with its own ed25519 key, register
//! with one or more real coordinators and then send signed heartbeats.
//!
//! - **Closed loop** (no `--interval-secs`, no `--rate`): every agent sends back to back; the
//!   maximum throughput. Heartbeats are **pre-signed before the window** (on `lg-signer`
//!   threads: signing is the agents' work, on their own machines), enough for
//!   `--presign-rate` per second over the run; an agent that runs out signs inline (counted).
//! - **Fleet / open loop** (`--interval-secs S`, or `--rate R` = every agent each N/R s):
//!   node i sends at phase i·S/N, every S seconds, one heartbeat in flight per node; latency
//!   counted from each heartbeat's *scheduled* time (a slow server or a late client is not
//!   hidden). Each answer's `heartbeat_interval_secs` is obeyed from the next heartbeat on (the
//!   server raises it under overload: backpressure); the intervals seen are reported. Each
//!   heartbeat is signed on an `lg-signer` thread as soon as it is scheduled (one interval
//!   ahead), so signing is not counted as server or HTTP-client CPU.
//!
//! The body is serialised once and sent as it is with a lean hyper client (or reqwest, to
//! compare); `--coordinators K` (PostgreSQL) starts K coordinators on one database, each on
//! its own runtime (`lg-server-c<i>`), node i always talking to coordinator i % K.
//! After every run each accepted heartbeat is counted back from the store.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bitsage_coordinator::{
    serve, CoordinatorConfig, DeploymentKeySource, RunningCoordinator, StoreConfig,
};
use bitsage_core::crypto::PublicKey;
use bitsage_core::gpu::{DeviceState, GpuDevice, GpuSample};
use bitsage_core::node::{HardwareReport, NewNode, NodeProfile};
use bitsage_core::{NodeId, TimeWindow, Timestamp, WalletAddress};
use bitsage_http::api::{ErrorBody, HeartbeatRequest, HeartbeatResponse, RegisterRequest};
use bitsage_http::client::CoordinatorClient;
use clap::{Args, ValueEnum};
use ed25519_dalek::SigningKey;
use hyper::body::Bytes;
use hyper::Uri;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::lean::{ClientKind, HttpClient};
use crate::measure::{
    cpu_over, format_errors, format_threads, fsync_probe, rss_over, CpuReport, Environment,
    FsyncProbe, Histogram, Percentiles, RssReport, Window,
};

/// The agent version string the simulated agents send.
const AGENT_VERSION: &str = "bitsage-loadgen/0.1.0";

/// The wallet every simulated node earns for.
const WALLET: &str = "0x10ad9e4";

/// The most distinct error messages kept (the counts are always complete).
const MAX_ERROR_SAMPLES: usize = 5;

/// A pre-signed heartbeat is used only this long after signing (the coordinator's clock-skew
/// window is 5 minutes); later the agent signs inline.
const PRESIGN_MAX_AGE: Duration = Duration::from_secs(240);

/// How early the open loop's dispatcher may start a heartbeat (its timer's granularity).
const DISPATCH_EARLY: Duration = Duration::from_micros(500);

/// The longest interval an agent accepts from the coordinator (as the real agent).
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

pub(crate) use bitsage_store::testing::PG_URL_VAR;

/// Which store the coordinator runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StoreKind {
    /// SQLite in a fresh temp directory (WAL, `synchronous = FULL`): the embedded default.
    Sqlite,
    /// A fresh database on the PostgreSQL server at `$BITSAGE_TEST_PG_URL`.
    Postgres,
}

/// How the simulated nodes get into the store before the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RegisterVia {
    /// Signed `POST /api/nodes/register`, as agents do (node i at coordinator i % K).
    Http,
    /// The store's own port (`create_node`), skipping HTTP and the signature check: same
    /// rows for what heartbeats read (id, key, status pending).
    Store,
}

/// Arguments of `loadgen heartbeats`.
#[derive(Debug, Clone, Args)]
pub(crate) struct HeartbeatArgs {
    /// Simulated agents = nodes (each registers its own node and key).
    #[arg(long, visible_alias = "nodes", default_value_t = 50)]
    pub agents: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Warm-up seconds (load runs, nothing is counted). Default: one interval with
    /// `--interval-secs` (every node has sent once), otherwise 3.
    #[arg(long)]
    pub warmup_secs: Option<u64>,
    /// Fleet mode (open loop): every node heartbeats every S seconds, node i at phase
    /// i·S/N, obeying the interval each answer advertises. The coordinator's heartbeat
    /// interval is set to S.
    #[arg(long, conflicts_with = "rate")]
    pub interval_secs: Option<u64>,
    /// Open loop at R heartbeats per second over all agents (each agent every N/R s; a raised
    /// advertised interval stretches that by advertised ÷ the coordinator's interval).
    /// Without it and without `--interval-secs`: closed loop, every agent back to back.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: keep the schedule whatever interval the answers advertise.
    #[arg(long)]
    pub ignore_advertised_interval: bool,
    /// The coordinators' store.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,
    /// Coordinators on the one store (more than one needs `--store postgres`), each on its
    /// own runtime; node i talks to coordinator i % K only.
    #[arg(long, default_value_t = 1)]
    pub coordinators: usize,
    /// The HTTP client the heartbeats are sent with.
    #[arg(long, value_enum, default_value_t = ClientKind::Hyper)]
    pub client: ClientKind,
    /// How the nodes get registered before the load.
    #[arg(long, value_enum, default_value_t = RegisterVia::Http)]
    pub register: RegisterVia,
    /// Registrations (or store inserts) in flight at once during setup.
    #[arg(long, default_value_t = 64)]
    pub register_concurrency: usize,
    /// Closed loop: heartbeats to pre-sign, per second of the run (warm-up + window, at most
    /// 240 s), over all agents; an agent that runs out signs inline (reported).
    #[arg(long, default_value_t = 25_000.0)]
    pub presign_rate: f64,
    /// Threads that sign (`lg-signer`): pre-signing before a closed loop, signing ahead of
    /// the schedule in the open loop.
    #[arg(long, default_value_t = 2)]
    pub signer_threads: usize,
    /// Open loop: requests in flight at once per coordinator (the rest wait for a slot; their
    /// latency still counts from the schedule). Also bounds the client's connections.
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,
    /// GPUs per simulated node: registered in its hardware, and one sample of each attached
    /// to every heartbeat (0: a GPU-less host). Samples are stored in the heartbeat's transaction.
    #[arg(long, default_value_t = 0)]
    pub gpu_samples: usize,
    /// How often the coordinator's background services (lifecycle sweep: one `last_seen`
    /// query per node) run, milliseconds (default: the coordinator's, 2000).
    #[arg(long)]
    pub sweep_interval_ms: Option<u64>,
    /// Per-request client timeout, seconds (a timeout counts as an error).
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Seconds of `write + fdatasync` in the data directory before the run (0: skip).
    #[arg(long, default_value_t = 2)]
    pub fsync_probe_secs: u64,
    /// Seconds between samples of the process's resident set during the window.
    #[arg(long, default_value_t = 10)]
    pub rss_every_secs: u64,
}

/// What the coordinators advertised as the heartbeat interval (answers inside the window).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct AdvertisedIntervals {
    /// The coordinators' configured interval, seconds (what registration answers).
    pub base_secs: u64,
    /// Whether the agents followed it (open loop, unless `--ignore-advertised-interval`).
    pub obeyed: bool,
    /// Answers seen.
    pub answers: u64,
    /// Smallest advertised, seconds.
    pub min_secs: Option<u64>,
    /// Largest advertised, seconds.
    pub max_secs: Option<u64>,
    /// Answers advertising more than `base_secs` (backpressure).
    pub raised: u64,
    /// Answers per advertised value (seconds → count).
    pub by_value: BTreeMap<u64, u64>,
}

impl AdvertisedIntervals {
    fn record(&mut self, secs: u64, base: u64) {
        self.answers += 1;
        self.min_secs = Some(self.min_secs.map_or(secs, |m| m.min(secs)));
        self.max_secs = Some(self.max_secs.map_or(secs, |m| m.max(secs)));
        if secs > base {
            self.raised += 1;
        }
        *self.by_value.entry(secs).or_default() += 1;
    }

    fn merge(&mut self, o: &AdvertisedIntervals) {
        self.answers += o.answers;
        self.raised += o.raised;
        for (k, v) in &o.by_value {
            *self.by_value.entry(*k).or_default() += v;
        }
        self.min_secs = match (self.min_secs, o.min_secs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_secs = match (self.max_secs, o.max_secs) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// How the heartbeats were signed.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SigningReport {
    /// `"presigned"` (closed loop: before the window) or `"ahead"` (open loop: on the signer
    /// threads when scheduled, about one interval ahead).
    pub mode: &'static str,
    /// Signer threads.
    pub threads: usize,
    /// Heartbeats signed before the load started (closed loop: the pre-signed stock; open
    /// loop: every node's first).
    pub before_start: u64,
    /// Seconds that took.
    pub before_start_secs: f64,
    /// Closed loop: pre-signed heartbeats left unused.
    pub presigned_unused: u64,
    /// Closed loop: heartbeats signed inline (on the client runtime) inside the window
    /// because an agent's stock ran out (0 is the goal: raise `--presign-rate`).
    pub inline_in_window: u64,
    /// Open loop: heartbeats signed on the signer threads while the load ran.
    pub ahead_during_run: u64,
    /// Size of one heartbeat body, bytes.
    pub body_bytes: usize,
}

/// CPU seconds per 1,000 accepted heartbeats inside the window.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct CpuPer1000 {
    /// The coordinator(s): server runtimes and SQLite worker threads.
    pub server_secs: f64,
    /// The load generator's HTTP client runtime.
    pub client_secs: f64,
    /// The signer threads (the agents' own cost).
    pub signer_secs: f64,
    /// PostgreSQL's processes (the store server; 0 on SQLite).
    pub postgres_secs: f64,
    /// The whole machine's busy time (PostgreSQL, other users included).
    pub machine_secs: f64,
}

/// One coordinator's share.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CoordinatorFigures {
    /// Index (node i talks to coordinator i % K).
    pub index: usize,
    /// Its URL.
    pub url: String,
    /// Nodes pinned to it.
    pub nodes: usize,
    /// Heartbeats answered 200 inside the window.
    pub accepted: u64,
    /// `accepted / duration`.
    pub accepted_per_sec: f64,
    /// Latency (open loop: from the scheduled time).
    pub latency: Percentiles,
    /// Failures inside the window by kind.
    pub errors: BTreeMap<String, u64>,
    /// Advertised intervals in its answers.
    pub advertised_interval: AdvertisedIntervals,
    /// Its runtime's threads (several coordinators only: one runtime each), cores.
    pub server_cores: Option<f64>,
    /// Its server CPU seconds per 1,000 of its accepted heartbeats (several coordinators).
    pub server_cpu_secs_per_1000: Option<f64>,
}

/// The outcome of `loadgen heartbeats`, printed as one JSON line.
#[derive(Debug, Serialize)]
pub(crate) struct HeartbeatReport {
    /// `"heartbeats"`.
    pub scenario: &'static str,
    /// The store.
    pub store: StoreKind,
    /// Coordinators on it.
    pub coordinators: usize,
    /// Simulated agents (nodes).
    pub agents: usize,
    /// `"closed"` or `"open"`.
    pub mode: &'static str,
    /// The HTTP client.
    pub client: ClientKind,
    /// Open loop: each node's interval at the start, seconds.
    pub interval_secs: Option<f64>,
    /// Open loop: nodes ÷ interval, the offered rate while no interval is raised.
    pub target_per_sec: Option<f64>,
    /// GPU samples per heartbeat.
    pub gpu_samples_per_heartbeat: usize,
    /// Warm-up, seconds.
    pub warmup_secs: u64,
    /// Measured window, seconds.
    pub duration_secs: f64,
    /// Open loop: heartbeats scheduled inside the window (falls below the offered rate when
    /// the intervals were raised).
    pub scheduled_in_window: Option<u64>,
    /// Heartbeats answered 200 inside the window.
    pub accepted: u64,
    /// `accepted / duration`: the sustained rate.
    pub accepted_per_sec: f64,
    /// The slowest and fastest whole second of the window, accepted heartbeats.
    pub accepted_per_sec_min_1s: u64,
    /// See `accepted_per_sec_min_1s`.
    pub accepted_per_sec_max_1s: u64,
    /// Accepted per second in each 10-second slice of the window.
    pub accepted_per_sec_by_10s: Vec<f64>,
    /// Latency of accepted heartbeats (open loop: from the scheduled send time).
    pub latency: Percentiles,
    /// Open loop: from the scheduled time to the request's start (a waiting client, a full
    /// `--max-in-flight`, or a node whose previous heartbeat was still out). Near zero when
    /// the client keeps up.
    pub dispatch_lag: Option<Percentiles>,
    /// Failed heartbeats inside the window by kind (HTTP status + error type, `transport`).
    pub errors: BTreeMap<String, u64>,
    /// Failed heartbeats during warm-up or drain.
    pub errors_outside_window: BTreeMap<String, u64>,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
    /// Heartbeats answered 200 over the whole run (warm-up and drain included).
    pub accepted_total: u64,
    /// Heartbeats the store holds for these nodes after the run (should equal
    /// `accepted_total`; more means a request timed out client-side after the commit).
    pub stored_total: u64,
    /// The interval the answers advertised.
    pub advertised_interval: AdvertisedIntervals,
    /// CPU use inside the window.
    pub cpu: CpuReport,
    /// CPU seconds per 1,000 accepted heartbeats.
    pub cpu_per_1000: CpuPer1000,
    /// The process's resident set (server and client) during the window.
    pub rss: RssReport,
    /// Per coordinator.
    pub per_coordinator: Vec<CoordinatorFigures>,
    /// How the heartbeats were signed.
    pub signing: SigningReport,
    /// `write + fdatasync` latency in the data directory, measured before the load (SQLite).
    pub fsync_probe: Option<FsyncProbe>,
    /// The coordinator's background-service interval, milliseconds.
    pub sweep_interval_ms: u64,
    /// How the nodes were registered.
    pub register_via: RegisterVia,
    /// Setup: how long registering the agents took, seconds.
    pub register_secs: f64,
    /// Setup: how long counting the heartbeats back took, seconds.
    pub count_back_secs: f64,
    /// Requests in flight per coordinator at most (open loop).
    pub max_in_flight: usize,
    /// Machine and build.
    pub environment: Environment,
}

/// One simulated agent.
#[derive(Debug, Clone)]
struct Agent {
    id: NodeId,
    key: SigningKey,
}

/// The uuid of pretend device `i`.
fn gpu_uuid(i: usize) -> String {
    format!("GPU-loadgen-{i:04}")
}

/// A node's hardware with `gpus` pretend devices (the coordinator accepts samples only for
/// registered devices).
fn hardware(gpus: usize) -> HardwareReport {
    HardwareReport {
        gpus: (0..gpus)
            .map(|i| GpuDevice {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                uuid: gpu_uuid(i),
                name: "NVIDIA H100 80GB HBM3".into(),
                pci_bus_id: None,
                memory_total_bytes: Some(80 << 30),
                mig_enabled: Some(false),
                confidential_compute: Some(false),
                tier: None,
                state: DeviceState::Ok,
            })
            .collect(),
        ..HardwareReport::default()
    }
}

/// `count` synthetic GPU samples taken at `at` (one per pretend device), all metrics set.
fn gpu_samples(count: usize, at: Timestamp) -> Vec<GpuSample> {
    (0..count)
        .map(|i| GpuSample {
            state: DeviceState::Ok,
            gpu_utilization_ratio: Some(0.5),
            memory_utilization_ratio: Some(0.25),
            memory_used_bytes: Some(8 << 30),
            memory_free_bytes: Some(72 << 30),
            temperature_celsius: Some(61.0),
            power_watts: Some(300.0),
            energy_joules_total: Some(1.0e6),
            sm_clock_hz: Some(1_980_000_000),
            memory_clock_hz: Some(2_619_000_000),
            pcie_tx_bytes_per_second: Some(1 << 20),
            pcie_rx_bytes_per_second: Some(1 << 20),
            pcie_replays_total: Some(0),
            ecc_corrected_total: Some(0),
            ecc_uncorrected_total: Some(0),
            ..GpuSample::empty(gpu_uuid(i), at)
        })
        .collect()
}

/// Signs and serialises heartbeats (what the agents would do on their own machines).
#[derive(Debug)]
struct Signer {
    agents: Vec<Agent>,
    gpus: usize,
}

impl Signer {
    /// Agent `node`'s heartbeat number `sequence`, sent at `sent_at`, as the JSON body.
    fn body(&self, node: usize, sequence: u64, sent_at: Timestamp) -> Bytes {
        let a = &self.agents[node];
        let req = HeartbeatRequest::signed(
            &a.key,
            a.id.clone(),
            sequence,
            sent_at,
            Some(0.5),
            AGENT_VERSION,
            gpu_samples(self.gpus, sent_at),
        );
        // Exactly sized (a serde_json buffer has up to twice the capacity it needs: the
        // pre-signed stock would hold that much more memory).
        Bytes::from(
            serde_json::to_vec(&req)
                .expect("a heartbeat serialises")
                .into_boxed_slice(),
        )
    }
}

/// The wall-clock time of the monotonic instant `at`.
fn wall_time(at: Instant) -> Timestamp {
    let now_i = Instant::now();
    let now_w = bitsage_core::time::now();
    let delta = |d: Duration| chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
    if at >= now_i {
        now_w + delta(at - now_i)
    } else {
        now_w - delta(now_i - at)
    }
}

/// What one exchange gave.
#[derive(Debug)]
enum Outcome {
    /// 200 with this advertised interval.
    Ok { interval_secs: u64 },
    /// Anything else: a short kind and the full message.
    Err { kind: String, message: String },
}

/// Sends one prepared heartbeat and reads the answer.
async fn exchange(client: &HttpClient, uri: &Uri, body: Bytes) -> Outcome {
    match client.post_json(uri, body).await {
        Ok((200, bytes)) => match serde_json::from_slice::<HeartbeatResponse>(&bytes) {
            Ok(r) => Outcome::Ok {
                interval_secs: r.heartbeat_interval_secs,
            },
            Err(e) => Outcome::Err {
                kind: "decode".into(),
                message: format!("decoding a 200 answer: {e}"),
            },
        },
        Ok((status, bytes)) => {
            let (kind, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => (format!("{status} {}", b.error.kind), b.error.message),
                Err(_) => (
                    status.to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ),
            };
            Outcome::Err {
                kind,
                message: format!("{status}: {message}"),
            }
        }
        Err(e) => Outcome::Err {
            kind: "transport".into(),
            message: e.0,
        },
    }
}

/// What one coordinator's heartbeats showed.
#[derive(Debug)]
struct Stats {
    latency: Histogram,
    lag: Histogram,
    ok: u64,
    ok_total: u64,
    scheduled_in_window: u64,
    /// Accepted per whole second of the window.
    per_second: Vec<u64>,
    errors: BTreeMap<String, u64>,
    errors_outside_window: BTreeMap<String, u64>,
    error_samples: Vec<String>,
    intervals: AdvertisedIntervals,
}

impl Stats {
    fn new(window: &Window) -> Self {
        Self {
            latency: Histogram::default(),
            lag: Histogram::default(),
            ok: 0,
            ok_total: 0,
            scheduled_in_window: 0,
            per_second: vec![0; window.secs().ceil() as usize + 1],
            errors: BTreeMap::new(),
            errors_outside_window: BTreeMap::new(),
            error_samples: Vec::new(),
            intervals: AdvertisedIntervals::default(),
        }
    }

    /// Records an exchange that started at `sent` (scheduled at `due`, closed loop: = `sent`)
    /// and ended at `done`.
    fn record(
        &mut self,
        window: &Window,
        base_interval: u64,
        due: Instant,
        sent: Instant,
        done: Instant,
        outcome: Outcome,
    ) {
        if window.counts(due) {
            self.scheduled_in_window += 1;
        }
        if window.counts(sent) {
            self.lag.record(sent.saturating_duration_since(due));
        }
        let counted = window.counts(done);
        match outcome {
            Outcome::Ok { interval_secs } => {
                self.ok_total += 1;
                if counted {
                    self.ok += 1;
                    // From the schedule; from the send where the dispatcher went up to its
                    // timer's granularity early.
                    self.latency.record(done - due.min(sent));
                    let s = (done - window.start).as_secs() as usize;
                    if let Some(slot) = self.per_second.get_mut(s) {
                        *slot += 1;
                    }
                    self.intervals.record(interval_secs, base_interval);
                }
            }
            Outcome::Err { kind, message } => {
                let map = if counted {
                    &mut self.errors
                } else {
                    &mut self.errors_outside_window
                };
                *map.entry(kind).or_default() += 1;
                if self.error_samples.len() < MAX_ERROR_SAMPLES
                    && !self.error_samples.contains(&message)
                {
                    self.error_samples.push(message);
                }
            }
        }
    }

    fn merge(&mut self, o: &Stats) {
        self.latency.merge(&o.latency);
        self.lag.merge(&o.lag);
        self.ok += o.ok;
        self.ok_total += o.ok_total;
        self.scheduled_in_window += o.scheduled_in_window;
        for (a, b) in self.per_second.iter_mut().zip(&o.per_second) {
            *a += b;
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.errors_outside_window {
            *self.errors_outside_window.entry(k.clone()).or_default() += v;
        }
        for m in &o.error_samples {
            if self.error_samples.len() < MAX_ERROR_SAMPLES && !self.error_samples.contains(m) {
                self.error_samples.push(m.clone());
            }
        }
        self.intervals.merge(&o.intervals);
    }
}

/// What the load phase hands back.
struct LoadOutcome {
    per_coordinator: Vec<Stats>,
    signing: SigningReport,
}

/// Everything the load phase needs.
struct Load {
    signer: Arc<Signer>,
    client: HttpClient,
    uris: Vec<Uri>,
    window: Window,
    base_interval_secs: u64,
}

// ---------------------------------------------------------------- closed loop

/// Pre-signs `per_agent` heartbeats for each agent on `threads` `lg-signer` threads; every
/// body is sent at most [`PRESIGN_MAX_AGE`] after signing.
fn presign(signer: &Arc<Signer>, per_agent: usize, threads: usize) -> Vec<Vec<Bytes>> {
    let n = signer.agents.len();
    let threads = threads.clamp(1, n.max(1));
    let chunk = n.div_ceil(threads);
    let mut out: Vec<Vec<Bytes>> = Vec::with_capacity(n);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let signer = Arc::clone(signer);
            std::thread::Builder::new()
                .name(format!("lg-signer-{t}"))
                .spawn(move || {
                    let from = t * chunk;
                    let to = ((t + 1) * chunk).min(signer.agents.len());
                    (from..to)
                        .map(|i| {
                            (1..=per_agent as u64)
                                .map(|seq| signer.body(i, seq, bitsage_core::time::now()))
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
                .expect("spawning a signer thread")
        })
        .collect();
    for h in handles {
        out.extend(h.join().expect("a signer thread panicked"));
    }
    out
}

/// One closed-loop agent: pre-signed heartbeats back to back, then inline-signed ones.
async fn closed_agent(
    load: Arc<Load>,
    stats: Arc<Vec<Mutex<Stats>>>,
    node: usize,
    stock: Vec<Bytes>,
    signed_at: Instant,
    inline: Arc<AtomicU64>,
    unused: Arc<AtomicU64>,
) {
    let coordinator = node % load.uris.len();
    let mut next_seq = stock.len() as u64 + 1;
    let mut stock = stock.into_iter();
    loop {
        let started = Instant::now();
        if started >= load.window.end {
            break;
        }
        let body = match stock.next() {
            Some(b) if signed_at.elapsed() < PRESIGN_MAX_AGE => b,
            other => {
                // The stock is used up (or too old to pass the skew check): sign here.
                if other.is_some() {
                    unused.fetch_add(1 + stock.len() as u64, Ordering::Relaxed);
                    stock = Vec::new().into_iter();
                }
                if load.window.counts(started) {
                    inline.fetch_add(1, Ordering::Relaxed);
                }
                let b = load.signer.body(node, next_seq, bitsage_core::time::now());
                next_seq += 1;
                b
            }
        };
        let sent = Instant::now();
        let outcome = exchange(&load.client, &load.uris[coordinator], body).await;
        let done = Instant::now();
        stats[coordinator].lock().expect("stats lock").record(
            &load.window,
            load.base_interval_secs,
            sent,
            sent,
            done,
            outcome,
        );
    }
    unused.fetch_add(stock.len() as u64, Ordering::Relaxed);
}

fn run_closed(
    client_rt: &Runtime,
    load: Load,
    args: &HeartbeatArgs,
    warmup: Duration,
) -> anyhow::Result<(LoadOutcome, std::thread::JoinHandle<CpuReport>, RssJoin)> {
    let agents = load.signer.agents.len();
    let run_secs = (warmup + Duration::from_secs(args.duration_secs))
        .min(PRESIGN_MAX_AGE)
        .as_secs_f64();
    let per_agent = ((args.presign_rate.max(0.0) * run_secs) / agents as f64).ceil() as usize;
    let per_agent = per_agent.max(1);
    let t = Instant::now();
    let stocks = presign(&load.signer, per_agent, args.signer_threads);
    let presign_secs = t.elapsed().as_secs_f64();
    let signed_at = Instant::now();
    let body_bytes = stocks.first().and_then(|s| s.first()).map_or(0, Bytes::len);

    // The window starts after the pre-signing.
    let start = Instant::now() + warmup;
    let window = Window {
        start,
        end: start + Duration::from_secs(args.duration_secs),
    };
    let load = Arc::new(Load { window, ..load });
    let cpu = cpu_over(window);
    let rss = rss_over(window, Duration::from_secs(args.rss_every_secs.max(1)));
    let stats: Arc<Vec<Mutex<Stats>>> = Arc::new(
        (0..load.uris.len())
            .map(|_| Mutex::new(Stats::new(&window)))
            .collect(),
    );
    let inline = Arc::new(AtomicU64::new(0));
    let unused = Arc::new(AtomicU64::new(0));
    client_rt.block_on(async {
        let mut set = JoinSet::new();
        for (node, stock) in stocks.into_iter().enumerate() {
            set.spawn(closed_agent(
                Arc::clone(&load),
                Arc::clone(&stats),
                node,
                stock,
                signed_at,
                Arc::clone(&inline),
                Arc::clone(&unused),
            ));
        }
        while let Some(r) = set.join_next().await {
            r.context("agent task")?;
        }
        anyhow::Ok(())
    })?;
    let stats = Arc::try_unwrap(stats)
        .map_err(|_| anyhow::anyhow!("agent tasks still hold the stats"))?
        .into_iter()
        .map(|m| m.into_inner().expect("stats lock"))
        .collect();
    Ok((
        LoadOutcome {
            per_coordinator: stats,
            signing: SigningReport {
                mode: "presigned",
                threads: args.signer_threads.max(1),
                before_start: (per_agent * agents) as u64,
                before_start_secs: presign_secs,
                presigned_unused: unused.load(Ordering::Relaxed),
                inline_in_window: inline.load(Ordering::Relaxed),
                ahead_during_run: 0,
                body_bytes,
            },
        },
        cpu,
        RssJoin(rss, window),
    ))
}

// ---------------------------------------------------------------- open loop (fleet)

/// A heartbeat to sign: node, sequence, scheduled time.
struct SignJob {
    node: u32,
    seq: u64,
    due: Instant,
}

/// A signed heartbeat waiting for its time.
struct Ready {
    node: u32,
    seq: u64,
    due: Instant,
    body: Bytes,
}

/// A finished exchange.
struct Done {
    node: u32,
    seq: u64,
    due: Instant,
    sent: Instant,
    done: Instant,
    outcome: Outcome,
}

/// The sampler handles joined after the load.
struct RssJoin(std::thread::JoinHandle<RssReport>, Window);

/// The signer threads of the open loop: each takes the jobs of its share of the nodes (node
/// i → thread i % threads) and hands the signed bodies to the dispatcher of the node's
/// coordinator (`ready[i % K]`).
fn spawn_signers(
    signer: &Arc<Signer>,
    threads: usize,
    ready: &[mpsc::UnboundedSender<Ready>],
    counter: &Arc<AtomicU64>,
) -> (
    Vec<std::sync::mpsc::Sender<SignJob>>,
    Vec<std::thread::JoinHandle<()>>,
) {
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for t in 0..threads.max(1) {
        let (tx, rx) = std::sync::mpsc::channel::<SignJob>();
        let signer = Arc::clone(signer);
        let ready = ready.to_vec();
        let counter = Arc::clone(counter);
        let h = std::thread::Builder::new()
            .name(format!("lg-signer-{t}"))
            .spawn(move || {
                for job in rx {
                    let body = signer.body(job.node as usize, job.seq, wall_time(job.due));
                    counter.fetch_add(1, Ordering::Relaxed);
                    let to = &ready[job.node as usize % ready.len()];
                    let r = Ready {
                        node: job.node,
                        seq: job.seq,
                        due: job.due,
                        body,
                    };
                    if to.send(r).is_err() {
                        return;
                    }
                }
            })
            .expect("spawning a signer thread");
        senders.push(tx);
        handles.push(h);
    }
    (senders, handles)
}

/// The heartbeats one dispatcher holds: at most one per node, its body at node / K, its time
/// in the heap.
struct Pending {
    k: usize,
    bodies: Vec<Option<Bytes>>,
    heap: BinaryHeap<Reverse<(Instant, u32, u64)>>,
}

impl Pending {
    fn push(&mut self, r: Ready) {
        self.bodies[r.node as usize / self.k] = Some(r.body);
        self.heap.push(Reverse((r.due, r.node, r.seq)));
    }

    /// The earliest time held.
    fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((due, _, _))| *due)
    }

    /// The earliest heartbeat: (due, node, sequence, body).
    fn pop(&mut self) -> Option<(Instant, u32, u64, Bytes)> {
        let Reverse((due, node, seq)) = self.heap.pop()?;
        let body = self.bodies[node as usize / self.k].take()?;
        Some((due, node, seq, body))
    }
}

/// One coordinator's dispatcher: holds its nodes' signed heartbeats until their time, then
/// starts each exchange on the runtime once one of its `--max-in-flight` slots is free (the
/// wait counts as dispatch lag; waiting heartbeats stay here, not in spawned tasks, so the
/// client's memory does not grow when the server falls behind).
async fn dispatcher(
    load: Arc<Load>,
    coordinator: usize,
    mut ready: mpsc::UnboundedReceiver<Ready>,
    done: mpsc::UnboundedSender<Done>,
    slots: Arc<Semaphore>,
) {
    let k = load.uris.len();
    let mut pending = Pending {
        k,
        bodies: vec![None; load.signer.agents.len().div_ceil(k)],
        heap: BinaryHeap::new(),
    };
    let mut open = true;
    loop {
        // Take everything signed so far.
        while let Ok(r) = ready.try_recv() {
            pending.push(r);
        }
        // The timer wakes on whole milliseconds (rounding up): start what is due within one,
        // so the schedule is kept to ±1 ms rather than always late by up to 1 ms.
        let now = Instant::now() + DISPATCH_EARLY;
        match pending.next_due() {
            Some(due) if due <= now => {
                let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let Some((due, node, seq, body)) = pending.pop() else {
                    continue;
                };
                let load = Arc::clone(&load);
                let done = done.clone();
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let outcome = exchange(&load.client, &load.uris[coordinator], body).await;
                    let finished = Instant::now();
                    drop(permit);
                    let _ = done.send(Done {
                        node,
                        seq,
                        due,
                        sent,
                        done: finished,
                        outcome,
                    });
                });
            }
            Some(due) => {
                let wake = due - DISPATCH_EARLY;
                if open {
                    tokio::select! {
                        () = tokio::time::sleep_until(wake.into()) => {}
                        r = ready.recv() => match r {
                            Some(r) => pending.push(r),
                            None => open = false,
                        },
                    }
                } else {
                    tokio::time::sleep_until(wake.into()).await;
                }
            }
            None if open => match ready.recv().await {
                Some(r) => pending.push(r),
                None => open = false,
            },
            None => return,
        }
    }
}

fn run_open(
    client_rt: &Runtime,
    load: Load,
    args: &HeartbeatArgs,
    period: Duration,
    warmup: Duration,
) -> anyhow::Result<(LoadOutcome, std::thread::JoinHandle<CpuReport>, RssJoin)> {
    let nodes = load.signer.agents.len();
    let k = load.uris.len();
    let signed = Arc::new(AtomicU64::new(0));
    let (ready_txs, ready_rxs): (Vec<_>, Vec<_>) =
        (0..k).map(|_| mpsc::unbounded_channel::<Ready>()).unzip();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let (sign_txs, sign_handles) =
        spawn_signers(&load.signer, args.signer_threads, &ready_txs, &signed);
    drop(ready_txs);

    // Every node's first heartbeat goes to the signers now, the first due in 0.5 s; the rest
    // are signed while the early nodes send (the signers outpace the schedule by far).
    let t0 = Instant::now() + Duration::from_millis(500);
    let start = t0 + warmup;
    let window = Window {
        start,
        end: start + Duration::from_secs(args.duration_secs),
    };
    let load = Arc::new(Load { window, ..load });
    let mut finished = 0usize;
    for node in 0..nodes {
        let due = t0 + period.mul_f64(node as f64 / nodes as f64);
        if due >= window.end {
            finished += 1;
            continue;
        }
        sign_txs[node % sign_txs.len()]
            .send(SignJob {
                node: node as u32,
                seq: 1,
                due,
            })
            .map_err(|_| anyhow::anyhow!("a signer thread stopped"))?;
    }
    let body_bytes = load.signer.body(0, 0, bitsage_core::time::now()).len();

    let cpu = cpu_over(window);
    let rss = rss_over(window, Duration::from_secs(args.rss_every_secs.max(1)));
    let mut stats: Vec<Stats> = (0..k).map(|_| Stats::new(&window)).collect();
    let obey = !args.ignore_advertised_interval;
    let base = load.base_interval_secs.max(1);
    let signed_before_window = Arc::clone(&signed);
    // The completion loop runs as a task on the client runtime (not on this thread, which
    // would count as `other`).
    let max_in_flight = args.max_in_flight.max(1);
    let completions = client_rt.spawn(async move {
        let dispatchers: Vec<_> = ready_rxs
            .into_iter()
            .enumerate()
            .map(|(c, rx)| {
                tokio::spawn(dispatcher(
                    Arc::clone(&load),
                    c,
                    rx,
                    done_tx.clone(),
                    Arc::new(Semaphore::new(max_in_flight)),
                ))
            })
            .collect();
        drop(done_tx);
        let mut periods = vec![period; nodes];
        let mut sign_txs = Some(sign_txs);
        while finished < nodes {
            let Some(d) = done_rx.recv().await else {
                anyhow::bail!("the dispatcher stopped early");
            };
            let node = d.node as usize;
            let c = node % k;
            if obey {
                if let Outcome::Ok { interval_secs } = &d.outcome {
                    // The agent follows the advertised interval; in `--rate` mode the
                    // schedule stretches by the same factor.
                    let factor = (*interval_secs).max(1) as f64 / base as f64;
                    periods[node] = period.mul_f64(factor).min(MAX_INTERVAL);
                }
            }
            stats[c].record(&window, base, d.due, d.sent, d.done, d.outcome);
            let next = d.due + periods[node];
            if next >= window.end {
                finished += 1;
                continue;
            }
            let txs = sign_txs.as_ref().expect("open until all finished");
            txs[node % txs.len()]
                .send(SignJob {
                    node: d.node,
                    seq: d.seq + 1,
                    due: next,
                })
                .map_err(|_| anyhow::anyhow!("a signer thread stopped"))?;
        }
        // Let the signers, then the dispatchers, wind down.
        sign_txs.take();
        for d in dispatchers {
            d.await.context("dispatcher task")?;
        }
        anyhow::Ok(stats)
    });
    let stats = client_rt
        .block_on(completions)
        .context("completion task")??;
    for h in sign_handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a signer thread panicked"))?;
    }
    let total_signed = signed_before_window.load(Ordering::Relaxed);
    Ok((
        LoadOutcome {
            per_coordinator: stats,
            signing: SigningReport {
                mode: "ahead",
                threads: args.signer_threads.max(1),
                before_start: 0,
                before_start_secs: 0.0,
                presigned_unused: 0,
                inline_in_window: 0,
                ahead_during_run: total_signed,
                body_bytes,
            },
        },
        cpu,
        RssJoin(rss, window),
    ))
}

// ---------------------------------------------------------------- setup

/// A fresh database on the server at `admin_url`; returns its URL and name.
async fn fresh_pg_database(admin_url: &str) -> anyhow::Result<(String, String)> {
    let db = bitsage_store::testing::create_database(admin_url, "bitsage_loadgen")
        .await
        .with_context(|| format!("creating a database on the PostgreSQL at ${PG_URL_VAR}"))?;
    Ok((db.url, db.name))
}

/// Drops the benchmark database (best effort).
async fn drop_pg_database(admin_url: &str, name: &str) {
    if let Err(e) = bitsage_store::testing::drop_database(admin_url, name).await {
        eprintln!("could not drop the benchmark database {name}: {e}");
    }
}

/// Registers every agent: signed registrations (agent i at coordinator i % K), or straight
/// into the store.
async fn register_all(
    via: RegisterVia,
    urls: &[String],
    store: &bitsage_core::DynJobStore,
    agents: &Arc<Vec<Agent>>,
    gpus: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let wallet = WalletAddress::parse(WALLET)?;
    let clients: Arc<Vec<CoordinatorClient>> = Arc::new(
        urls.iter()
            .map(|u| CoordinatorClient::new(u))
            .collect::<Result<_, _>>()?,
    );
    let store = store.clone();
    let agents_c = Arc::clone(agents);
    crate::console::for_each_concurrent(
        (0..agents.len()).collect(),
        concurrency,
        move |i: usize| {
            let (clients, store, agents) = (clients.clone(), store.clone(), agents_c.clone());
            async move {
                let a = &agents[i];
                match via {
                    RegisterVia::Http => {
                        let req = RegisterRequest::signed(
                            &a.key,
                            a.id.clone(),
                            wallet,
                            hardware(gpus),
                            AGENT_VERSION,
                            bitsage_core::time::now(),
                        );
                        let registered = clients[i % clients.len()]
                            .register(&req)
                            .await
                            .context("registering a simulated node")?;
                        anyhow::ensure!(registered.created, "a fresh node was already registered");
                    }
                    RegisterVia::Store => {
                        store
                            .create_node(&NewNode {
                                id: a.id.clone(),
                                public_key: PublicKey::of(&a.key),
                                wallet,
                                hardware: hardware(gpus),
                                agent_version: AGENT_VERSION.into(),
                                registered_at: bitsage_core::time::now(),
                                wallet_proven_at: None,
                                profile: NodeProfile::default(),
                            })
                            .await
                            .context("create_node")?;
                    }
                }
                Ok(())
            }
        },
    )
    .await
}

/// Counts every agent's stored heartbeats since `from`.
async fn count_back(
    store: &bitsage_core::DynJobStore,
    agents: &Arc<Vec<Agent>>,
    from: Timestamp,
) -> anyhow::Result<u64> {
    let to = bitsage_core::time::now() + chrono::TimeDelta::minutes(1);
    let w = TimeWindow::new(from, to)?;
    let total = Arc::new(AtomicU64::new(0));
    let (store, agents_c, total_c) = (store.clone(), Arc::clone(agents), Arc::clone(&total));
    crate::console::for_each_concurrent((0..agents.len()).collect(), 16, move |i: usize| {
        let (store, agents, total) = (store.clone(), agents_c.clone(), total_c.clone());
        async move {
            let n = store.heartbeat_times(&agents[i].id, w).await?.len() as u64;
            total.fetch_add(n, Ordering::Relaxed);
            Ok(())
        }
    })
    .await?;
    Ok(total.load(Ordering::Relaxed))
}

/// Coordinator `i`'s runtime: its own, or the shared server runtime.
fn runtime_of<'a>(own: &'a [Runtime], shared: &'a Runtime, i: usize) -> &'a Runtime {
    own.get(i).unwrap_or(shared)
}

/// A random 32-byte seed as 64 hex digits (the deployment key the coordinators share).
fn random_hex_seed() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the scenario: the coordinator(s) on `server_rt` (one) or on runtimes of their own
/// (`server_threads` workers each), the agents on `client_rt`.
pub(crate) fn run(
    server_rt: &Runtime,
    client_rt: &Runtime,
    server_threads: usize,
    args: &HeartbeatArgs,
    environment: Environment,
) -> anyhow::Result<HeartbeatReport> {
    anyhow::ensure!(args.agents > 0, "--agents must be at least 1");
    anyhow::ensure!(
        u32::try_from(args.agents).is_ok(),
        "--agents must fit in 32 bits"
    );
    anyhow::ensure!(args.duration_secs > 0, "--duration-secs must be at least 1");
    anyhow::ensure!(args.coordinators > 0, "--coordinators must be at least 1");
    anyhow::ensure!(
        args.coordinators == 1 || args.store == StoreKind::Postgres,
        "several coordinators share one store: use --store postgres"
    );
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be positive");
    }
    if let Some(s) = args.interval_secs {
        anyhow::ensure!(s > 0, "--interval-secs must be at least 1");
    }
    let open_period = match (args.interval_secs, args.rate) {
        (Some(s), _) => Some(Duration::from_secs(s)),
        (None, Some(rate)) => Some(Duration::from_secs_f64(args.agents as f64 / rate)),
        (None, None) => None,
    };
    let warmup = Duration::from_secs(
        args.warmup_secs
            .unwrap_or_else(|| args.interval_secs.unwrap_or(3)),
    );
    let dir = tempfile::Builder::new()
        .prefix("bitsage-loadgen-")
        .tempdir()
        .context("creating a temp data directory")?;
    let probe = match (args.store, args.fsync_probe_secs) {
        (StoreKind::Sqlite, s) if s > 0 => {
            Some(fsync_probe(dir.path(), Duration::from_secs(s)).context("fsync probe")?)
        }
        _ => None,
    };

    // The coordinators' settings (each gets its own data directory; one deployment key).
    let mut base_config = CoordinatorConfig::new(
        std::net::SocketAddr::from_str("127.0.0.1:0")?,
        dir.path().join("coordinator"),
    );
    // The ingest path is measured, not the limiter (every simulated node shares one address).
    base_config.http.rate_limits = bitsage_http::ratelimit::RateLimits::disabled();
    if let Some(ms) = args.sweep_interval_ms {
        base_config.sweep_interval = Duration::from_millis(ms.max(1));
    }
    if let Some(s) = args.interval_secs {
        let p = &mut base_config.policy;
        p.heartbeat_interval = Duration::from_secs(s);
        p.stale_after = p.stale_after.max(Duration::from_secs(3 * s));
        p.offline_after = p.offline_after.max(Duration::from_secs(30 * s));
    }
    let base_interval_secs = base_config.policy.heartbeat_interval.as_secs();
    let sweep_interval_ms =
        u64::try_from(base_config.sweep_interval.as_millis()).unwrap_or(u64::MAX);
    let pg = match args.store {
        StoreKind::Sqlite => None,
        StoreKind::Postgres => {
            let admin = std::env::var(PG_URL_VAR)
                .ok()
                .filter(|u| !u.is_empty())
                .with_context(|| {
                    format!("--store postgres needs ${PG_URL_VAR} (e.g. from scripts/loadgen.sh)")
                })?;
            let (url, name) = server_rt.block_on(fresh_pg_database(&admin))?;
            base_config.store = StoreConfig::Postgres(url);
            Some((admin, name))
        }
    };
    if args.coordinators > 1 {
        base_config.deployment_key = DeploymentKeySource::Hex(random_hex_seed());
    }

    // One coordinator runs on the shared server runtime; several get one runtime each, so
    // their CPU can be told apart (as separate processes would be).
    let own_rts: Vec<Runtime> = if args.coordinators > 1 {
        (0..args.coordinators)
            .map(|i| crate::runtime(&format!("lg-server-c{i}"), server_threads))
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let rt_of = |i: usize| runtime_of(&own_rts, server_rt, i);
    let mut running: Vec<RunningCoordinator> = Vec::new();
    for i in 0..args.coordinators {
        let mut config = base_config.clone();
        config.data_dir = dir.path().join(format!("coordinator-{i}"));
        let r = rt_of(i)
            .block_on(serve(config))
            .with_context(|| format!("starting coordinator {i}"))?;
        running.push(r);
    }
    let urls: Vec<String> = running.iter().map(RunningCoordinator::url).collect();
    let store = running[0].state.store.clone();

    let agents: Arc<Vec<Agent>> = Arc::new(
        (0..args.agents)
            .map(|i| {
                Ok(Agent {
                    id: NodeId::parse(&format!("loadgen-{i:06}"))?,
                    key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
                })
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let run_from = bitsage_core::time::now() - chrono::TimeDelta::minutes(1);

    let register_started = Instant::now();
    rt_of(0).block_on(register_all(
        args.register,
        &urls,
        &store,
        &agents,
        args.gpu_samples,
        args.register_concurrency,
    ))?;
    let register_secs = register_started.elapsed().as_secs_f64();

    let client = HttpClient::new(
        args.client,
        args.max_in_flight.max(args.agents.min(4096)),
        Duration::from_secs(args.timeout_secs),
        &[],
    )?;
    let uris: Vec<Uri> = urls
        .iter()
        .map(|u| format!("{u}/api/nodes/heartbeat").parse::<Uri>())
        .collect::<Result<_, _>>()
        .context("heartbeat URI")?;
    let signer = Arc::new(Signer {
        agents: agents.as_ref().clone(),
        gpus: args.gpu_samples,
    });
    let load = Load {
        signer,
        client,
        uris,
        // Set when the load starts.
        window: Window::after_warmup(Duration::ZERO, Duration::ZERO),
        base_interval_secs,
    };
    let (outcome, cpu, RssJoin(rss, window)) = match open_period {
        None => run_closed(client_rt, load, args, warmup)?,
        Some(period) => run_open(client_rt, load, args, period, warmup)?,
    };
    let cpu = cpu
        .join()
        .map_err(|_| anyhow::anyhow!("the CPU sampling thread panicked"))?;
    let rss = rss
        .join()
        .map_err(|_| anyhow::anyhow!("the RSS sampling thread panicked"))?;

    // Every accepted heartbeat must be in the store: count them back.
    let counted = Instant::now();
    let stored_total = rt_of(0).block_on(count_back(&store, &agents, run_from))?;
    let count_back_secs = counted.elapsed().as_secs_f64();
    drop(store);
    for (i, r) in running.into_iter().enumerate() {
        rt_of(i)
            .block_on(r.shutdown())
            .with_context(|| format!("stopping coordinator {i}"))?;
    }
    if let Some((admin, name)) = pg {
        server_rt.block_on(drop_pg_database(&admin, &name));
    }
    for rt in own_rts {
        rt.shutdown_timeout(Duration::from_secs(5));
    }

    let secs = window.secs();
    let per1000 = |cores: f64, accepted: u64| {
        if accepted == 0 {
            0.0
        } else {
            cores * secs / accepted as f64 * 1000.0
        }
    };
    let mut all = Stats::new(&window);
    let mut per_coordinator = Vec::new();
    for (i, s) in outcome.per_coordinator.iter().enumerate() {
        all.merge(s);
        let server_cores = (args.coordinators > 1).then(|| {
            cpu.by_thread_name
                .get(&format!("lg-server-c{i}"))
                .copied()
                .unwrap_or(0.0)
        });
        per_coordinator.push(CoordinatorFigures {
            index: i,
            url: urls[i].clone(),
            nodes: (0..args.agents)
                .filter(|n| n % args.coordinators == i)
                .count(),
            accepted: s.ok,
            accepted_per_sec: s.ok as f64 / secs,
            latency: s.latency.percentiles(),
            errors: s.errors.clone(),
            advertised_interval: s.intervals.clone(),
            server_cores,
            server_cpu_secs_per_1000: server_cores.map(|c| per1000(c, s.ok)),
        });
    }
    let mut intervals = all.intervals.clone();
    intervals.base_secs = base_interval_secs;
    intervals.obeyed = open_period.is_some() && !args.ignore_advertised_interval;
    for c in &mut per_coordinator {
        c.advertised_interval.base_secs = base_interval_secs;
        c.advertised_interval.obeyed = intervals.obeyed;
    }
    let whole_secs = (secs.floor() as usize).max(1);
    let seconds = &all.per_second[..whole_secs.min(all.per_second.len())];
    let by_10s = seconds
        .chunks(10)
        .map(|c| c.iter().sum::<u64>() as f64 / c.len() as f64)
        .collect();
    Ok(HeartbeatReport {
        scenario: "heartbeats",
        store: args.store,
        coordinators: args.coordinators,
        agents: args.agents,
        mode: if open_period.is_some() {
            "open"
        } else {
            "closed"
        },
        client: args.client,
        interval_secs: open_period.map(|p| p.as_secs_f64()),
        target_per_sec: open_period.map(|p| args.agents as f64 / p.as_secs_f64()),
        gpu_samples_per_heartbeat: args.gpu_samples,
        warmup_secs: warmup.as_secs(),
        duration_secs: secs,
        scheduled_in_window: open_period.map(|_| all.scheduled_in_window),
        accepted: all.ok,
        accepted_per_sec: all.ok as f64 / secs,
        accepted_per_sec_min_1s: seconds.iter().copied().min().unwrap_or(0),
        accepted_per_sec_max_1s: seconds.iter().copied().max().unwrap_or(0),
        accepted_per_sec_by_10s: by_10s,
        latency: all.latency.percentiles(),
        dispatch_lag: open_period.map(|_| all.lag.percentiles()),
        error_samples: all.error_samples.clone(),
        errors: all.errors.clone(),
        errors_outside_window: all.errors_outside_window.clone(),
        accepted_total: all.ok_total,
        stored_total,
        advertised_interval: intervals,
        cpu_per_1000: CpuPer1000 {
            server_secs: per1000(cpu.server_cores, all.ok),
            client_secs: per1000(cpu.client_cores, all.ok),
            signer_secs: per1000(cpu.signer_cores, all.ok),
            postgres_secs: per1000(cpu.postgres_cores, all.ok),
            machine_secs: per1000(cpu.machine_busy_cores, all.ok),
        },
        cpu,
        rss,
        per_coordinator,
        signing: outcome.signing,
        fsync_probe: probe,
        sweep_interval_ms,
        register_via: args.register,
        register_secs,
        count_back_secs,
        max_in_flight: args.max_in_flight,
        environment,
    })
}

impl HeartbeatReport {
    /// The summary for people.
    pub(crate) fn human(&self) -> String {
        let l = &self.latency;
        let mut out = format!(
            "heartbeats: {} agents, store {:?} × {} coordinator(s), {} loop{}, client {:?}, {} \
             GPU samples/heartbeat, {:.0} s measured after {} s warm-up\n",
            self.agents,
            self.store,
            self.coordinators,
            self.mode,
            match (self.interval_secs, self.target_per_sec) {
                (Some(i), Some(r)) => format!(" (every {i:.3} s per node = {r:.1} /s offered)"),
                _ => String::new(),
            },
            self.client,
            self.gpu_samples_per_heartbeat,
            self.duration_secs,
            self.warmup_secs,
        );
        out += &format!(
            "  accepted {} ({:.1} /s; slowest 1 s {}, fastest {}{}); latency ms p50 {:.2} p90 \
             {:.2} p99 {:.2} p99.9 {:.2} max {:.2} (mean {:.2})\n",
            self.accepted,
            self.accepted_per_sec,
            self.accepted_per_sec_min_1s,
            self.accepted_per_sec_max_1s,
            self.scheduled_in_window
                .map_or_else(String::new, |s| format!("; {s} scheduled in the window")),
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.p999_ms,
            l.max_ms,
            l.mean_ms
        );
        if let Some(g) = &self.dispatch_lag {
            out += &format!(
                "  dispatch lag (schedule → request start) ms: p50 {:.2} p99 {:.2} max {:.2}\n",
                g.p50_ms, g.p99_ms, g.max_ms
            );
        }
        let a = &self.advertised_interval;
        out += &format!(
            "  advertised interval: base {} s, {} answers, min {} max {}, raised in {}{}\n",
            a.base_secs,
            a.answers,
            a.min_secs.map_or_else(|| "-".into(), |v| format!("{v} s")),
            a.max_secs.map_or_else(|| "-".into(), |v| format!("{v} s")),
            a.raised,
            if a.obeyed { " (obeyed)" } else { "" }
        );
        out += &format!(
            "  errors in window: {}; outside window: {}\n",
            format_errors(&self.errors),
            format_errors(&self.errors_outside_window)
        );
        for s in &self.error_samples {
            out += &format!("    e.g. {s}\n");
        }
        out += &format!(
            "  store check: {} accepted over the run, {} stored{} (counted back in {:.1} s)\n",
            self.accepted_total,
            self.stored_total,
            if self.accepted_total == self.stored_total {
                " (match)"
            } else {
                " (MISMATCH)"
            },
            self.count_back_secs
        );
        let c = &self.cpu;
        out += &format!(
            "  CPU (cores): server {:.2}, client {:.2}, signer {:.2}, process {:.2}, PostgreSQL \
             {:.2}; machine busy {:.2} of {} (iowait {:.0} %, steal {:.0} %)\n",
            c.server_cores,
            c.client_cores,
            c.signer_cores,
            c.process_cores,
            c.postgres_cores,
            c.machine_busy_cores,
            c.machine_cores,
            c.machine_iowait_ratio * 100.0,
            c.machine_steal_ratio * 100.0
        );
        let p = &self.cpu_per_1000;
        out += &format!(
            "  CPU s per 1,000 accepted: server {:.3}{}, client {:.3}, signer {:.3}, machine {:.3}\n",
            p.server_secs,
            if self.store == StoreKind::Postgres {
                format!(" + PostgreSQL {:.3}", p.postgres_secs)
            } else {
                String::new()
            },
            p.client_secs,
            p.signer_secs,
            p.machine_secs
        );
        out += &format!(
            "  busiest threads (cores): {}\n",
            format_threads(&c.top_threads)
        );
        if self.per_coordinator.len() > 1 {
            for pc in &self.per_coordinator {
                out += &format!(
                    "  coordinator {} ({} nodes): {:.1} /s, p50 {:.2} p99 {:.2} ms, errors {}, \
                     server {:.2} cores = {:.3} s per 1,000; raised intervals {}\n",
                    pc.index,
                    pc.nodes,
                    pc.accepted_per_sec,
                    pc.latency.p50_ms,
                    pc.latency.p99_ms,
                    format_errors(&pc.errors),
                    pc.server_cores.unwrap_or(0.0),
                    pc.server_cpu_secs_per_1000.unwrap_or(0.0),
                    pc.advertised_interval.raised
                );
            }
        }
        out += &format!("  {}\n", self.rss.summary());
        let s = &self.signing;
        out += &if s.mode == "ahead" {
            format!(
                "  signing: ahead of the schedule on {} lg-signer thread(s), {} heartbeats; \
                 body {} bytes\n",
                s.threads, s.ahead_during_run, s.body_bytes
            )
        } else {
            format!(
                "  signing: {} pre-signed on {} lg-signer thread(s) in {:.2} s before the \
                 window, {} left unused, {} signed inline in the window; body {} bytes\n",
                s.before_start,
                s.threads,
                s.before_start_secs,
                s.presigned_unused,
                s.inline_in_window,
                s.body_bytes
            )
        };
        if let Some(p) = &self.fsync_probe {
            out += &format!(
                "  fsync probe (write 4 KiB + fdatasync, before the load): p50 {:.3} ms, p99 \
                 {:.3} ms → ≤ {:.0} synced commits/s for one writer\n",
                p.p50_ms, p.p99_ms, p.ceiling_per_sec
            );
        }
        out += &format!(
            "  setup: {} registrations ({:?}) in {:.2} s; coordinator sweep every {} ms\n",
            self.agents, self.register_via, self.register_secs, self.sweep_interval_ms
        );
        out += &format!("  {}\n", self.environment.summary());
        out
    }
}
