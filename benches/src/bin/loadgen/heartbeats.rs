//! Scenario `heartbeats`: N simulated agents, each with its own ed25519 key, register with a
//! real coordinator and then send signed heartbeats (closed loop, or at a target rate), through
//! the same typed client the agent uses.

use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bitsage_coordinator::{serve, CoordinatorConfig, StoreConfig};
use bitsage_core::gpu::{DeviceState, GpuDevice, GpuSample};
use bitsage_core::node::HardwareReport;
use bitsage_core::{NodeId, TimeWindow, WalletAddress};
use bitsage_http::api::{HeartbeatRequest, RegisterRequest};
use bitsage_http::client::{ClientError, CoordinatorClient};
use clap::{Args, ValueEnum};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use crate::measure::{
    cpu_over, format_errors, format_threads, fsync_probe, CpuReport, Environment, FsyncProbe,
    Percentiles, Tally, Window,
};

/// The agent version string the simulated agents send.
const AGENT_VERSION: &str = "bitsage-loadgen/0.1.0";

/// Registrations in flight at once during setup.
const REGISTER_CONCURRENCY: usize = 32;

pub use bitsage_store::testing::PG_URL_VAR;

/// Which store the coordinator runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// SQLite in a fresh temp directory (WAL, `synchronous = FULL`): the embedded default.
    Sqlite,
    /// A fresh database on the PostgreSQL server at `$BITSAGE_TEST_PG_URL`.
    Postgres,
}

/// Arguments of `loadgen heartbeats`.
#[derive(Debug, Clone, Args)]
pub struct HeartbeatArgs {
    /// Simulated agents (each registers its own node and key).
    #[arg(long, default_value_t = 50)]
    pub agents: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Warm-up seconds (load runs, nothing is counted).
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Target heartbeats per second over all agents (open loop, latency measured from each
    /// heartbeat's scheduled time). Without it: closed loop, every agent sends back to back.
    #[arg(long)]
    pub rate: Option<f64>,
    /// The coordinator's store.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,
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
}

/// The outcome of `loadgen heartbeats`, printed as one JSON line.
#[derive(Debug, Serialize)]
pub struct HeartbeatReport {
    /// `"heartbeats"`.
    pub scenario: &'static str,
    /// The store.
    pub store: StoreKind,
    /// Simulated agents.
    pub agents: usize,
    /// `"closed"` or `"open"`.
    pub mode: &'static str,
    /// Target rate (open loop).
    pub target_per_sec: Option<f64>,
    /// GPU samples per heartbeat.
    pub gpu_samples_per_heartbeat: usize,
    /// Warm-up, seconds.
    pub warmup_secs: u64,
    /// Measured window, seconds.
    pub duration_secs: f64,
    /// Heartbeats answered 200 inside the window.
    pub accepted: u64,
    /// `accepted / duration`.
    pub accepted_per_sec: f64,
    /// Latency of accepted heartbeats (open loop: from the scheduled send time).
    pub latency: Percentiles,
    /// Failed heartbeats inside the window by kind (HTTP status + error type, `transport`).
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Failed heartbeats during warm-up or drain.
    pub errors_outside_window: std::collections::BTreeMap<String, u64>,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
    /// Heartbeats answered 200 over the whole run (warm-up and drain included).
    pub accepted_total: u64,
    /// Heartbeats the store holds for these nodes after the run (should equal
    /// `accepted_total`; more means a request timed out client-side after the commit).
    pub stored_total: u64,
    /// CPU use inside the window.
    pub cpu: CpuReport,
    /// `write + fdatasync` latency in the data directory, measured before the load (SQLite).
    pub fsync_probe: Option<FsyncProbe>,
    /// The coordinator's background-service interval, milliseconds.
    pub sweep_interval_ms: u64,
    /// Setup: how long registering the agents took, seconds.
    pub register_secs: f64,
    /// Machine and build.
    pub environment: Environment,
}

/// One simulated agent.
#[derive(Debug, Clone)]
struct Agent {
    id: NodeId,
    key: SigningKey,
}

/// A short category for an error (the full text goes to the samples).
fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Api { status, kind, .. } => format!("{status} {kind}"),
        ClientError::Transport(_) => "transport".into(),
        ClientError::Decode(_) => "decode".into(),
        _ => "other".into(),
    }
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

/// `count` synthetic GPU samples (one per pretend device), all metrics set.
fn gpu_samples(count: usize) -> Vec<GpuSample> {
    let at = bitsage_core::time::now();
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

/// One agent's load loop. Closed loop when `period` is `None`; otherwise one heartbeat per
/// `period` starting at `first`, latency counted from the scheduled time (so a slow server is
/// not hidden by the generator waiting for it). Returns what it saw.
async fn agent_loop(
    client: CoordinatorClient,
    agent: Agent,
    window: Window,
    schedule: Option<(tokio::time::Instant, Duration)>,
    samples_per_beat: usize,
) -> Tally {
    let mut tally = Tally::default();
    let mut sequence: u64 = 0;
    let mut ticker = schedule.map(|(first, period)| tokio::time::interval_at(first, period));
    loop {
        let started = match ticker.as_mut() {
            Some(t) => t.tick().await.into_std(),
            None => Instant::now(),
        };
        if started >= window.end {
            break;
        }
        // Strictly increasing, also past failures (the server may have committed one that
        // timed out here).
        sequence += 1;
        let req = HeartbeatRequest::signed(
            &agent.key,
            agent.id.clone(),
            sequence,
            bitsage_core::time::now(),
            Some(0.5),
            AGENT_VERSION,
            gpu_samples(samples_per_beat),
        );
        let result = client.heartbeat(&req).await;
        let done = Instant::now();
        match result {
            Ok(_) => tally.ok(&window, done, done - started),
            Err(e) => tally.error(&window, done, error_kind(&e), e.to_string()),
        }
    }
    tally
}

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

/// Registers `agents` (signed registrations, a few at a time).
async fn register_all(
    client: &CoordinatorClient,
    agents: &[Agent],
    gpus: usize,
) -> anyhow::Result<()> {
    let wallet = WalletAddress::parse("0x10ad9e4")?;
    for chunk in agents.chunks(REGISTER_CONCURRENCY) {
        let mut set = JoinSet::new();
        for a in chunk {
            let client = client.clone();
            let req = RegisterRequest::signed(
                &a.key,
                a.id.clone(),
                wallet,
                hardware(gpus),
                AGENT_VERSION,
                bitsage_core::time::now(),
            );
            set.spawn(async move { client.register(&req).await });
        }
        while let Some(r) = set.join_next().await {
            let registered = r
                .context("registration task")?
                .context("registering a simulated node")?;
            anyhow::ensure!(registered.created, "a fresh node was already registered");
        }
    }
    Ok(())
}

/// Runs the scenario: the coordinator on `server_rt`, the agents on `client_rt`.
pub fn run(
    server_rt: &Runtime,
    client_rt: &Runtime,
    args: &HeartbeatArgs,
    environment: Environment,
) -> anyhow::Result<HeartbeatReport> {
    anyhow::ensure!(args.agents > 0, "--agents must be at least 1");
    anyhow::ensure!(args.duration_secs > 0, "--duration-secs must be at least 1");
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be positive");
    }
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

    let mut config = CoordinatorConfig::new(
        std::net::SocketAddr::from_str("127.0.0.1:0")?,
        dir.path().join("coordinator"),
    );
    // The ingest path is measured, not the limiter (every simulated node shares one address).
    config.http.rate_limits = bitsage_http::ratelimit::RateLimits::disabled();
    if let Some(ms) = args.sweep_interval_ms {
        config.sweep_interval = Duration::from_millis(ms.max(1));
    }
    let sweep_interval_ms = u64::try_from(config.sweep_interval.as_millis()).unwrap_or(u64::MAX);
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
            config.store = StoreConfig::Postgres(url);
            Some((admin, name))
        }
    };
    let running = server_rt
        .block_on(serve(config))
        .context("starting the coordinator")?;
    let store = running.state.store.clone();
    let url = running.url();

    let agents: Vec<Agent> = (0..args.agents)
        .map(|i| {
            Ok(Agent {
                id: NodeId::parse(&format!("loadgen-{i:05}"))?,
                key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let run_from = bitsage_core::time::now() - chrono::TimeDelta::minutes(1);

    let client = CoordinatorClient::new(&url)?.with_timeout(Duration::from_secs(args.timeout_secs));
    let register_started = Instant::now();
    client_rt.block_on(register_all(&client, &agents, args.gpu_samples))?;
    let register_secs = register_started.elapsed().as_secs_f64();

    let window = Window::after_warmup(
        Duration::from_secs(args.warmup_secs),
        Duration::from_secs(args.duration_secs),
    );
    let cpu = cpu_over(window);
    let tally = client_rt.block_on(async {
        let start = tokio::time::Instant::now();
        let mut set = JoinSet::new();
        for (i, agent) in agents.iter().enumerate() {
            // Open loop: each agent sends every agents/rate seconds, the agents spread evenly
            // over one period so the load is smooth.
            let schedule = args.rate.map(|rate| {
                let period = Duration::from_secs_f64(args.agents as f64 / rate);
                let offset = period.mul_f64(i as f64 / args.agents as f64);
                (start + offset, period)
            });
            set.spawn(agent_loop(
                client.clone(),
                agent.clone(),
                window,
                schedule,
                args.gpu_samples,
            ));
        }
        let mut all = Tally::default();
        while let Some(t) = set.join_next().await {
            all.merge(t.context("agent task")?);
        }
        anyhow::Ok(all)
    })?;
    let cpu = cpu
        .join()
        .map_err(|_| anyhow::anyhow!("the CPU sampling thread panicked"))?;

    // Every accepted heartbeat must be in the store: count them back.
    let stored_total = server_rt.block_on(async {
        let to = bitsage_core::time::now() + chrono::TimeDelta::minutes(1);
        let w = TimeWindow::new(run_from, to)?;
        let mut n = 0u64;
        for a in &agents {
            n += store.heartbeat_times(&a.id, w).await?.len() as u64;
        }
        anyhow::Ok(n)
    })?;
    drop(store);
    server_rt
        .block_on(running.shutdown())
        .context("stopping the coordinator")?;
    if let Some((admin, name)) = pg {
        server_rt.block_on(drop_pg_database(&admin, &name));
    }

    let mut tally = tally;
    let latency = Percentiles::of(&mut tally.latencies_us);
    let secs = window.secs();
    Ok(HeartbeatReport {
        scenario: "heartbeats",
        store: args.store,
        agents: args.agents,
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        target_per_sec: args.rate,
        gpu_samples_per_heartbeat: args.gpu_samples,
        warmup_secs: args.warmup_secs,
        duration_secs: secs,
        accepted: tally.ok,
        accepted_per_sec: tally.ok as f64 / secs,
        latency,
        error_samples: tally.error_samples.clone(),
        errors: tally.errors.clone(),
        errors_outside_window: tally.errors_outside_window.clone(),
        accepted_total: tally.ok_total,
        stored_total,
        cpu,
        fsync_probe: probe,
        sweep_interval_ms,
        register_secs,
        environment,
    })
}

impl HeartbeatReport {
    /// The summary for people.
    pub fn human(&self) -> String {
        let l = &self.latency;
        let mut out = format!(
            "heartbeats: {} agents, store {:?}, {} loop{}, {} GPU samples/heartbeat, \
             {:.0} s measured after {} s warm-up\n",
            self.agents,
            self.store,
            self.mode,
            self.target_per_sec
                .map_or_else(String::new, |r| format!(" at {r} /s target")),
            self.gpu_samples_per_heartbeat,
            self.duration_secs,
            self.warmup_secs,
        );
        out += &format!(
            "  accepted {} ({:.1} /s); latency ms p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} \
             max {:.2} (mean {:.2})\n",
            self.accepted,
            self.accepted_per_sec,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.p999_ms,
            l.max_ms,
            l.mean_ms
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
            "  store check: {} accepted over the run, {} stored{}\n",
            self.accepted_total,
            self.stored_total,
            if self.accepted_total == self.stored_total {
                " (match)"
            } else {
                " (MISMATCH)"
            }
        );
        let c = &self.cpu;
        out += &format!(
            "  CPU (cores): server {:.2}, client {:.2}, process {:.2}; machine busy {:.2} of {} \
             (iowait {:.0} %, steal {:.0} %)\n",
            c.server_cores,
            c.client_cores,
            c.process_cores,
            c.machine_busy_cores,
            c.machine_cores,
            c.machine_iowait_ratio * 100.0,
            c.machine_steal_ratio * 100.0
        );
        out += &format!(
            "  busiest threads (cores): {}\n",
            format_threads(&c.top_threads)
        );
        if let Some(p) = &self.fsync_probe {
            out += &format!(
                "  fsync probe (write 4 KiB + fdatasync, before the load): p50 {:.3} ms, p99 \
                 {:.3} ms → ≤ {:.0} synced commits/s for one writer\n",
                p.p50_ms, p.p99_ms, p.ceiling_per_sec
            );
        }
        out += &format!(
            "  setup: {} registrations in {:.2} s; coordinator sweep every {} ms\n",
            self.agents, self.register_secs, self.sweep_interval_ms
        );
        out += &format!("  {}\n", self.environment.summary());
        out
    }
}
