//! Scenario `status`: `GET /api/validator/status` on the real router (coordinator on SQLite, a
//! wallet with registered nodes and ledger credits) beside a bare axum handler answering a
//! fixed small JSON on the same route, both in this process, loaded alternately with the same
//! client settings in the same run (`--client hyper`, the default: a lean hyper client with a
//! keep-alive pool, so the bare handler is less bound by the client; `--client reqwest`: the
//! agent's stack, as in the first figures). Optionally `wrk` loads both too (a separate,
//! lighter client) as a cross-check. The process's resident set is sampled in every phase.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::routing::get;
use axum::{Json, Router};
use bitsage_coordinator::{serve, CoordinatorConfig};
use bitsage_core::job::NewJob;
use bitsage_core::ledger::EarningEntry;
use bitsage_core::node::HardwareReport;
use bitsage_core::{JobId, JobKind, JobSpec, NodeId, TokenAmount, WalletAddress};
use bitsage_http::api::RegisterRequest;
use bitsage_http::client::CoordinatorClient;
use clap::Args;
use ed25519_dalek::SigningKey;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::lean::{ClientKind, HttpClient};
use crate::measure::{
    cpu_over, format_errors, format_threads, rss_over, CpuReport, Environment, Percentiles,
    RssReport, Tally, Window,
};

/// The route both servers answer.
const ROUTE: &str = "/api/validator/status";

/// The wallet whose status is asked for.
const WALLET: &str = "0x05a11e7";

/// What marks a degraded field group in a dashboard answer.
const UNAVAILABLE: &[u8] = b"\"unavailable\"";

/// Arguments of `loadgen status`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatusArgs {
    /// Concurrent connections (one request in flight on each).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Measured seconds per phase (one phase = one server, after the warm-up).
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Warm-up seconds before each phase.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Rounds; each round loads both servers, alternating which goes first (ours/bare,
    /// bare/ours, …) so drift in the machine's load hits both alike.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Nodes registered for the wallet.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Ledger credits per node.
    #[arg(long, default_value_t = 5)]
    pub credits_per_node: usize,
    /// Queued jobs in the store (not the wallet's: they only make the jobs table larger,
    /// to show whether the per-node job counts scale with it).
    #[arg(long, default_value_t = 0)]
    pub queued_jobs: usize,
    /// Also load both servers with `wrk` (if installed), after the in-process phases.
    #[arg(long)]
    pub wrk: bool,
    /// `wrk` threads.
    #[arg(long, default_value_t = 2)]
    pub wrk_threads: usize,
    /// The in-process client both servers are loaded with.
    #[arg(long, value_enum, default_value_t = ClientKind::Hyper)]
    pub client: ClientKind,
    /// Seconds between samples of the process's resident set in each phase.
    #[arg(long, default_value_t = 10)]
    pub rss_every_secs: u64,
}

/// Which server a phase loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Target {
    /// The coordinator's router (`bitsage_http::router`) over SQLite.
    Ours,
    /// A bare axum router with one handler returning a fixed small JSON.
    Bare,
}

/// One phase: one server for one window.
#[derive(Debug, Serialize)]
pub(crate) struct Phase {
    /// The round.
    pub round: usize,
    /// The server.
    pub target: Target,
    /// Requests answered 200 with the expected body inside the window.
    pub ok: u64,
    /// `ok / duration`.
    pub requests_per_sec: f64,
    /// Latency of those requests.
    pub latency: Percentiles,
    /// Failures by kind (HTTP status, `transport`, `degraded` = a 200 whose store groups
    /// were unavailable).
    pub errors: BTreeMap<String, u64>,
    /// Failures during warm-up or drain.
    pub errors_outside_window: BTreeMap<String, u64>,
    /// CPU inside the window.
    pub cpu: CpuReport,
    /// The process's resident set during the window.
    pub rss: RssReport,
}

/// One server over all rounds.
#[derive(Debug, Serialize)]
pub(crate) struct TargetSummary {
    /// Requests answered 200 with the expected body, all rounds.
    pub ok: u64,
    /// `ok / measured seconds`.
    pub requests_per_sec: f64,
    /// Latency over all rounds.
    pub latency: Percentiles,
    /// Failures inside the windows, all rounds.
    pub errors: u64,
    /// Failures outside the windows, all rounds.
    pub errors_outside_window: u64,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
    /// Size of one answer, bytes.
    pub response_bytes: usize,
}

/// `wrk`'s figures for one server.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct WrkFigures {
    /// `Requests/sec:`.
    pub requests_per_sec: f64,
    /// Latency distribution 50 %, ms.
    pub p50_ms: f64,
    /// 90 %, ms.
    pub p90_ms: f64,
    /// 99 %, ms.
    pub p99_ms: f64,
    /// `N requests in …`.
    pub requests: u64,
    /// `Non-2xx or 3xx responses:` (0 when absent).
    pub non_2xx: u64,
    /// `Socket errors:` line, when present.
    pub socket_errors: Option<String>,
}

/// The `wrk` cross-check.
#[derive(Debug, Serialize)]
pub(crate) struct WrkReport {
    /// The command for ours (the bare one differs only in the port).
    pub command: String,
    /// Ours.
    pub ours: WrkFigures,
    /// Bare.
    pub bare: WrkFigures,
    /// `bare ÷ ours` in requests/s.
    pub ratio_bare_over_ours: f64,
}

/// The outcome of `loadgen status`, printed as one JSON line.
#[derive(Debug, Serialize)]
pub(crate) struct StatusReport {
    /// `"status"`.
    pub scenario: &'static str,
    /// Concurrent connections.
    pub connections: usize,
    /// Seconds measured per phase.
    pub duration_secs: u64,
    /// Warm-up seconds per phase.
    pub warmup_secs: u64,
    /// Rounds.
    pub rounds: usize,
    /// Nodes of the wallet.
    pub nodes: usize,
    /// Ledger credits per node.
    pub credits_per_node: usize,
    /// Queued jobs in the store (other clients' work).
    pub queued_jobs: usize,
    /// The in-process client.
    pub client: ClientKind,
    /// Every phase in order.
    pub phases: Vec<Phase>,
    /// Ours over all rounds (in-process client).
    pub ours: TargetSummary,
    /// Bare over all rounds (same client).
    pub bare: TargetSummary,
    /// `bare ÷ ours` in requests/s (in-process client, all rounds).
    pub ratio_bare_over_ours: f64,
    /// `bare ÷ ours` per round.
    pub ratio_per_round: Vec<f64>,
    /// The `wrk` cross-check, when asked for and installed.
    pub wrk: Option<WrkReport>,
    /// Machine and build.
    pub environment: Environment,
}

/// The bare handler's answer: a fixed small JSON.
#[derive(Debug, Clone, Serialize)]
struct BareStatus {
    wallet: &'static str,
    workers: BareWorkers,
}

#[derive(Debug, Clone, Serialize)]
struct BareWorkers {
    status: &'static str,
    total: u64,
}

async fn bare_status() -> Json<BareStatus> {
    Json(BareStatus {
        wallet: WALLET,
        workers: BareWorkers {
            status: "ok",
            total: 4,
        },
    })
}

/// Starts the bare server on `127.0.0.1:0`; returns its address and a stop switch.
async fn serve_bare() -> anyhow::Result<(SocketAddr, watch::Sender<bool>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route(ROUTE, get(bare_status));
    let (stop, mut rx) = watch::channel(false);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
    });
    Ok((addr, stop))
}

/// How many times `needle` occurs in `hay`.
fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() || hay.len() < needle.len() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// The API key every request carries (ours needs it; the bare server ignores it), set once
/// the coordinator is up.
static API_KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// An admin API key (scope `nodes:read`) on the coordinator of `running`: the dashboard read
/// is measured as an operator's tool calls it, authenticated.
async fn api_key(running: &bitsage_coordinator::RunningCoordinator) -> anyhow::Result<String> {
    use bitsage_core::access::{Role, Scope};
    use bitsage_core::service::accounts::{Actor, NewKeyInput, Principal};
    let now = bitsage_core::time::now();
    let accounts = &running.state.accounts;
    let admin = accounts
        .bootstrap_admin("loadgen", "loadgen admin password", now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let by = Principal {
        actor: Actor::User {
            id: admin.id,
            username: admin.username,
        },
        role: Role::Admin,
        org: None,
        scopes: None,
    };
    let key = accounts
        .create_key(
            &by,
            NewKeyInput {
                name: "loadgen".into(),
                role: None,
                scopes: vec![Scope::NodesRead],
                expires_at: None,
                org: None,
            },
            now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(key.secret)
}

/// The client both servers are loaded with (a fresh pool per phase, same settings).
fn load_client(kind: ClientKind, connections: usize) -> anyhow::Result<HttpClient> {
    let auth = format!("Bearer {}", API_KEY.get().map_or("", |k| k.as_str()));
    HttpClient::new(
        kind,
        connections,
        Duration::from_secs(30),
        &[("authorization", &auth), ("x-wallet-address", WALLET)],
    )
}

/// The reqwest client of the one-off answer check.
fn http_client(connections: usize) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = API_KEY.get() {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {key}").parse().context("API key header")?,
        );
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(connections)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

/// Asks once and checks the answer; returns the body.
async fn probe(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let resp = client
        .get(url)
        .header("X-Wallet-Address", WALLET)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = resp.bytes().await?.to_vec();
    anyhow::ensure!(
        status == reqwest::StatusCode::OK,
        "GET {url}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(body)
}

/// One connection's loop: request after request until the window ends.
async fn connection_loop(
    client: HttpClient,
    uri: hyper::Uri,
    window: Window,
    expected_unavailable: usize,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        let result = client.get(&uri).await;
        let done = Instant::now();
        match result {
            Ok((200, body)) => {
                if occurrences(&body, UNAVAILABLE) == expected_unavailable {
                    tally.ok(&window, done, done - started);
                } else {
                    tally.error(
                        &window,
                        done,
                        "degraded".into(),
                        format!(
                            "200 with degraded groups: {}",
                            String::from_utf8_lossy(&body)
                        ),
                    );
                }
            }
            Ok((status, body)) => tally.error(
                &window,
                done,
                format!("{status}"),
                format!("{status}: {}", String::from_utf8_lossy(&body)),
            ),
            Err(e) => tally.error(&window, done, "transport".into(), e.0),
        }
    }
    tally
}

/// Loads `url` with `connections` connections for one window.
fn run_phase(
    client_rt: &Runtime,
    url: &str,
    args: &StatusArgs,
    expected_unavailable: usize,
) -> anyhow::Result<(Tally, CpuReport, RssReport, f64)> {
    let client = client_rt.block_on(async { load_client(args.client, args.connections) })?;
    let uri: hyper::Uri = url.parse().context("status URI")?;
    let window = Window::after_warmup(
        Duration::from_secs(args.warmup_secs),
        Duration::from_secs(args.duration_secs),
    );
    let cpu = cpu_over(window);
    let rss = rss_over(window, Duration::from_secs(args.rss_every_secs.max(1)));
    let tally = client_rt.block_on(async {
        let mut set = JoinSet::new();
        for _ in 0..args.connections {
            set.spawn(connection_loop(
                client.clone(),
                uri.clone(),
                window,
                expected_unavailable,
            ));
        }
        let mut all = Tally::default();
        while let Some(t) = set.join_next().await {
            all.merge(t.context("connection task")?);
        }
        anyhow::Ok(all)
    })?;
    let cpu = cpu
        .join()
        .map_err(|_| anyhow::anyhow!("the CPU sampling thread panicked"))?;
    let rss = rss
        .join()
        .map_err(|_| anyhow::anyhow!("the RSS sampling thread panicked"))?;
    Ok((tally, cpu, rss, window.secs()))
}

/// Registers `nodes` nodes for the wallet and credits each `credits` ledger entries.
async fn seed(
    url: &str,
    store: &bitsage_core::DynJobStore,
    nodes: usize,
    credits: usize,
    queued_jobs: usize,
) -> anyhow::Result<()> {
    for i in 0..queued_jobs {
        let spec = JobSpec::new(
            JobId::new(),
            JobKind::Poseidon2Chain {
                seed: i as u64,
                length: 256,
            },
        )?;
        store
            .enqueue_job(&NewJob {
                spec,
                payment: TokenAmount::from(1_000_000u64),
                max_attempts: 3,
                submitted_at: bitsage_core::time::now(),
                // The load generator measures the queue, not payments.
                funding: None,
            })
            .await
            .context("enqueueing a job")?;
    }
    let client = CoordinatorClient::new(url)?;
    let wallet = WalletAddress::parse(WALLET)?;
    for i in 0..nodes {
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let id = NodeId::parse(&format!("status-node-{i:03}"))?;
        let req = RegisterRequest::signed(
            &key,
            id.clone(),
            wallet,
            HardwareReport::default(),
            "bitsage-loadgen/0.1.0",
            bitsage_core::time::now(),
        );
        client.register(&req).await.context("registering a node")?;
        for c in 0..credits {
            let gross = TokenAmount::from(1_000_000_000_000_000_000u64 + c as u64);
            let entry = EarningEntry::with_fee_bps(
                id.clone(),
                JobId::new(),
                gross,
                250,
                bitsage_core::time::now(),
            )?;
            store.credit_earning(&entry).await.context("crediting")?;
        }
    }
    Ok(())
}

/// Parses a `wrk` duration (`635.00us`, `3.42ms`, `1.20s`, `1.00m`) into milliseconds.
fn wrk_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60_000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// The figures of a `wrk --latency` output.
fn parse_wrk(out: &str) -> WrkFigures {
    let mut f = WrkFigures::default();
    for line in out.lines() {
        let t = line.trim();
        let mut words = t.split_whitespace();
        match words.next() {
            Some("50%") => f.p50_ms = words.next().and_then(wrk_ms).unwrap_or(f64::NAN),
            Some("90%") => f.p90_ms = words.next().and_then(wrk_ms).unwrap_or(f64::NAN),
            Some("99%") => f.p99_ms = words.next().and_then(wrk_ms).unwrap_or(f64::NAN),
            Some("Requests/sec:") => {
                f.requests_per_sec = words.next().and_then(|v| v.parse().ok()).unwrap_or(0.0)
            }
            Some("Non-2xx") => {
                f.non_2xx = t
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            }
            Some("Socket") => f.socket_errors = Some(t.to_string()),
            Some(n) if t.contains(" requests in ") => f.requests = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    f
}

/// Runs `wrk` against `url` (a warm-up run first, not counted).
fn run_wrk(args: &StatusArgs, url: &str) -> anyhow::Result<(String, WrkFigures)> {
    let header = format!("X-Wallet-Address: {WALLET}");
    let auth = format!(
        "Authorization: Bearer {}",
        API_KEY.get().map_or("", |k| k.as_str())
    );
    let threads = args.wrk_threads.clamp(1, args.connections.max(1));
    let base = |secs: u64| {
        let mut c = std::process::Command::new("wrk");
        c.arg(format!("-t{threads}"))
            .arg(format!("-c{}", args.connections))
            .arg(format!("-d{secs}s"))
            .arg("--latency")
            .arg("-H")
            .arg(&header)
            .arg("-H")
            .arg(&auth)
            .arg(url);
        c
    };
    if args.warmup_secs > 0 {
        base(args.warmup_secs).output().context("running wrk")?;
    }
    let out = base(args.duration_secs).output().context("running wrk")?;
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let command = format!(
        "wrk -t{threads} -c{} -d{}s --latency -H '{header}' {url}",
        args.connections, args.duration_secs
    );
    Ok((command, parse_wrk(&text)))
}

/// Whether `wrk` is on the PATH.
fn wrk_installed() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok()
}

/// One server's phases merged.
fn summarise(phases: Vec<(Tally, f64)>, response_bytes: usize) -> TargetSummary {
    let mut all = Tally::default();
    let mut secs = 0.0;
    for (tally, s) in phases {
        all.merge(tally);
        secs += s;
    }
    let latency = Percentiles::of(&mut all.latencies_us);
    TargetSummary {
        ok: all.ok,
        requests_per_sec: if secs > 0.0 {
            all.ok as f64 / secs
        } else {
            0.0
        },
        latency,
        errors: all.error_count(),
        errors_outside_window: all.error_count_outside(),
        error_samples: all.error_samples,
        response_bytes,
    }
}

/// Runs the scenario: both servers on `server_rt`, the client on `client_rt`.
pub(crate) fn run(
    server_rt: &Runtime,
    client_rt: &Runtime,
    args: &StatusArgs,
    environment: Environment,
) -> anyhow::Result<StatusReport> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.duration_secs > 0, "--duration-secs must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let dir = tempfile::Builder::new()
        .prefix("bitsage-loadgen-")
        .tempdir()
        .context("creating a temp data directory")?;
    let mut config = CoordinatorConfig::new(
        SocketAddr::from_str("127.0.0.1:0")?,
        dir.path().join("coordinator"),
    );
    // The read path is measured, not the limiter (one client key sends every request).
    config.http.rate_limits = bitsage_http::ratelimit::RateLimits::disabled();
    let running = server_rt
        .block_on(serve(config))
        .context("starting the coordinator")?;
    let key = server_rt.block_on(api_key(&running))?;
    let _ = API_KEY.set(key);
    let (bare_addr, bare_stop) = server_rt.block_on(serve_bare())?;
    let ours_url = format!("{}{ROUTE}", running.url());
    let bare_url = format!("http://{bare_addr}{ROUTE}");
    let store = running.state.store.clone();
    server_rt.block_on(seed(
        &running.url(),
        &store,
        args.nodes,
        args.credits_per_node,
        args.queued_jobs,
    ))?;
    drop(store);

    // Check both answers once, and learn how many groups are legitimately unavailable (the
    // chain groups: no chain source is configured).
    let (ours_body, bare_body) = client_rt.block_on(async {
        let c = http_client(1)?;
        anyhow::Ok((probe(&c, &ours_url).await?, probe(&c, &bare_url).await?))
    })?;
    let v: serde_json::Value =
        serde_json::from_slice(&ours_body).context("decoding our status answer")?;
    for group in ["workers", "jobs", "earnings"] {
        anyhow::ensure!(
            v[group]["status"] == "ok",
            "store group {group} is not ok before the load: {v}"
        );
    }
    anyhow::ensure!(
        v["workers"]["total"] == args.nodes as u64
            && v["earnings"]["entries"] == (args.nodes * args.credits_per_node) as u64,
        "the seeded wallet does not show in the answer: {v}"
    );
    let ours_unavailable = occurrences(&ours_body, UNAVAILABLE);
    let bare_unavailable = occurrences(&bare_body, UNAVAILABLE);

    let mut phases = Vec::new();
    let mut report_phases = Vec::new();
    for round in 0..args.rounds {
        let order = if round % 2 == 0 {
            [Target::Ours, Target::Bare]
        } else {
            [Target::Bare, Target::Ours]
        };
        for target in order {
            let (url, expected) = match target {
                Target::Ours => (&ours_url, ours_unavailable),
                Target::Bare => (&bare_url, bare_unavailable),
            };
            let (tally, cpu, rss, secs) = run_phase(client_rt, url, args, expected)?;
            let mut lat = tally.latencies_us.clone();
            report_phases.push(Phase {
                round,
                target,
                ok: tally.ok,
                requests_per_sec: tally.ok as f64 / secs,
                latency: Percentiles::of(&mut lat),
                errors: tally.errors.clone(),
                errors_outside_window: tally.errors_outside_window.clone(),
                cpu,
                rss,
            });
            phases.push((target, tally, secs));
        }
    }
    let ratio_per_round = (0..args.rounds)
        .map(|r| {
            let rps = |t: Target| {
                report_phases
                    .iter()
                    .find(|p| p.round == r && p.target == t)
                    .map_or(0.0, |p| p.requests_per_sec)
            };
            rps(Target::Bare) / rps(Target::Ours).max(f64::MIN_POSITIVE)
        })
        .collect();
    let (ours_phases, bare_phases): (Vec<_>, Vec<_>) =
        phases.into_iter().partition(|(t, _, _)| *t == Target::Ours);
    let strip = |v: Vec<(Target, Tally, f64)>| v.into_iter().map(|(_, t, s)| (t, s)).collect();
    let ours = summarise(strip(ours_phases), ours_body.len());
    let bare = summarise(strip(bare_phases), bare_body.len());

    let wrk = if args.wrk {
        if wrk_installed() {
            let (command, o) = run_wrk(args, &ours_url)?;
            let (_, b) = run_wrk(args, &bare_url)?;
            Some(WrkReport {
                command,
                ratio_bare_over_ours: b.requests_per_sec
                    / o.requests_per_sec.max(f64::MIN_POSITIVE),
                ours: o,
                bare: b,
            })
        } else {
            eprintln!("--wrk: wrk is not installed (apt-get install -y wrk); skipped");
            None
        }
    } else {
        None
    };

    let _ = bare_stop.send(true);
    server_rt
        .block_on(running.shutdown())
        .context("stopping the coordinator")?;
    Ok(StatusReport {
        scenario: "status",
        connections: args.connections,
        duration_secs: args.duration_secs,
        warmup_secs: args.warmup_secs,
        rounds: args.rounds,
        nodes: args.nodes,
        credits_per_node: args.credits_per_node,
        queued_jobs: args.queued_jobs,
        client: args.client,
        ratio_bare_over_ours: bare.requests_per_sec / ours.requests_per_sec.max(f64::MIN_POSITIVE),
        ratio_per_round,
        phases: report_phases,
        ours,
        bare,
        wrk,
        environment,
    })
}

impl StatusReport {
    /// The summary for people.
    pub(crate) fn human(&self) -> String {
        let mut out = format!(
            "status: GET {ROUTE}, {} connections, {} round(s) × (ours, bare) × {} s after {} s \
             warm-up each; wallet with {} nodes × {} ledger credits; {} queued jobs\n",
            self.connections,
            self.rounds,
            self.duration_secs,
            self.warmup_secs,
            self.nodes,
            self.credits_per_node,
            self.queued_jobs
        );
        out += &format!(
            "  in-process client ({:?}, same settings for both):\n",
            self.client
        );
        for p in &self.phases {
            out += &format!(
                "    round {} {:<4}: {:>9.1} req/s, p50 {:.3} ms, p99 {:.3} ms, errors {}; CPU \
                 server {:.2} client {:.2} machine busy {:.2}\n",
                p.round,
                format!("{:?}", p.target).to_lowercase(),
                p.requests_per_sec,
                p.latency.p50_ms,
                p.latency.p99_ms,
                format_errors(&p.errors),
                p.cpu.server_cores,
                p.cpu.client_cores,
                p.cpu.machine_busy_cores
            );
            out += &format!(
                "      busiest threads (cores): {}\n",
                format_threads(&p.cpu.top_threads)
            );
            out += &format!("      {}\n", p.rss.summary());
        }
        for (name, s) in [("ours", &self.ours), ("bare", &self.bare)] {
            out += &format!(
                "  {name}: {:.1} req/s, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms; \
                 errors {} (+{} outside windows); answer {} bytes\n",
                s.requests_per_sec,
                s.latency.p50_ms,
                s.latency.p90_ms,
                s.latency.p99_ms,
                s.latency.max_ms,
                s.errors,
                s.errors_outside_window,
                s.response_bytes
            );
            for e in &s.error_samples {
                out += &format!("    e.g. {e}\n");
            }
        }
        out += &format!(
            "  ratio bare ÷ ours (req/s): {:.2} (per round: {})\n",
            self.ratio_bare_over_ours,
            self.ratio_per_round
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(w) = &self.wrk {
            out += &format!("  wrk cross-check ({}):\n", w.command);
            for (name, f) in [("ours", &w.ours), ("bare", &w.bare)] {
                out += &format!(
                    "    {name}: {:.1} req/s, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, non-2xx \
                     {}{}\n",
                    f.requests_per_sec,
                    f.p50_ms,
                    f.p90_ms,
                    f.p99_ms,
                    f.non_2xx,
                    f.socket_errors
                        .as_ref()
                        .map_or_else(String::new, |s| format!(", {s}"))
                );
            }
            out += &format!(
                "    ratio bare ÷ ours (wrk): {:.2}\n",
                w.ratio_bare_over_ours
            );
        }
        out += &format!("  {}\n", self.environment.summary());
        out
    }
}
