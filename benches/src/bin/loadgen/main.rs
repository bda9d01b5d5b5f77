//! `loadgen`: the coordinator's HTTP load generator (see `BENCHMARKS.md`, "HTTP and load").
//!
//! Each scenario starts its servers **in this process** on loopback with a fresh temp data
//! directory: the coordinator on its own tokio runtime (threads `lg-server*`, plus sqlx's
//! SQLite worker threads) and the load on another (threads `lg-client*`), so the CPU each side
//! uses can be told apart. No tracing subscriber is installed (the server logs nothing).
//!
//! - `loadgen heartbeats --agents N --duration-secs S [--store sqlite|postgres]`: N simulated
//!   agents register (signed) and send signed heartbeats back to back (closed loop: the
//!   maximum), or as a fleet with `--nodes N --interval-secs 10` (open loop, each node every
//!   10 s, obeying the interval the answers advertise; `--rate R` for a rate instead), to
//!   one coordinator or `--coordinators K` on one PostgreSQL; accepted/s, latency
//!   percentiles, errors, CPU per 1,000 heartbeats, RSS over the window.
//! - `loadgen status --connections C --duration-secs S [--wrk] [--client hyper|reqwest]`:
//!   `GET /api/validator/status` on the real router beside a bare axum handler, same client,
//!   same run; the ratio.
//!
//! - `loadgen fanout --rate R --duration-secs S`: event fan-out latency from a commit on one
//!   coordinator (PgStore) to delivery on another (its event hub), p50/p99.
//!
//! - `loadgen settle [--sizes 1,100,1000]`: one settlement transaction per epoch on
//!   starknet-devnet with our contracts — fee, L2 gas, time to acceptance, per epoch size.
//!
//! - `loadgen console [--nodes 1000 --jobs 100000]`: time to first byte of the web console's
//!   Overview and Nodes pages beside their JSON (`/api/summary`, `/api/nodes`), sequential
//!   and concurrent, on a seeded store.
//!
//! Prints a summary for people, then one JSON line (the last line of stdout).
//! Speed is measured here, never in tests.

mod console;
mod fanout;
mod heartbeats;
mod lean;
mod measure;
mod settle;
mod status;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// The coordinator's HTTP load generator.
#[derive(Debug, Parser)]
#[command(name = "loadgen", about)]
struct Cli {
    /// Worker threads of the server runtime (default: the number of cores, as
    /// `#[tokio::main]` in the coordinator binary).
    #[arg(long, global = true)]
    server_threads: Option<usize>,
    /// Worker threads of the client runtime (default: the number of cores).
    #[arg(long, global = true)]
    client_threads: Option<usize>,
    /// Also append the JSON line to this file.
    #[arg(long, global = true)]
    json_out: Option<PathBuf>,
    /// Write the in-process coordinators' log lines to stderr (filter `RUST_LOG`, default
    /// as the coordinator binary's), e.g. to see what the server did during a stall.
    #[arg(long, global = true)]
    log: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Simulated agents sending signed heartbeats to a coordinator.
    Heartbeats(heartbeats::HeartbeatArgs),
    /// `GET /api/validator/status` on our router vs a bare axum handler.
    Status(status::StatusArgs),
    /// Event fan-out latency from a commit on one coordinator to delivery on another
    /// (PostgreSQL `LISTEN/NOTIFY` + outbox).
    Fanout(fanout::FanoutArgs),
    /// What settling an epoch costs on starknet-devnet (fee, L2 gas, time), per epoch size.
    Settle(settle::SettleArgs),
    /// Time to first byte of the web console's Overview and Nodes pages (and their JSON) on
    /// a store with a fleet's nodes and jobs.
    Console(console::ConsoleArgs),
}

fn runtime(name: &str, threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("building the {name} runtime"))
}

/// mimalloc instead of glibc malloc: the coordinator it hosts, like the real binary: the request path allocates small, short-lived buffers on
/// every heartbeat (BENCHMARKS.md "Network scale").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = if cli.log {
        Some(bitsage_coordinator::telemetry::init(
            bitsage_coordinator::telemetry::LogFormat::Text,
            None,
        )?)
    } else {
        None
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server_threads = cli.server_threads.unwrap_or(cores);
    let server_rt = runtime("lg-server", server_threads)?;
    let client_rt = runtime("lg-client", cli.client_threads.unwrap_or(cores))?;
    let environment = measure::Environment::detect();
    let (human, json) = match &cli.scenario {
        Scenario::Heartbeats(args) => {
            let r = heartbeats::run(&server_rt, &client_rt, server_threads, args, environment)?;
            (r.human(), serde_json::to_string(&r)?)
        }
        Scenario::Fanout(args) => {
            let r = fanout::run(&client_rt, args, environment)?;
            (r.human(), serde_json::to_string(&r)?)
        }
        Scenario::Settle(args) => {
            let r = settle::run(&client_rt, args, environment)?;
            (r.human(), serde_json::to_string(&r)?)
        }
        Scenario::Status(args) => {
            let r = status::run(&server_rt, &client_rt, args, environment)?;
            (r.human(), serde_json::to_string(&r)?)
        }
        Scenario::Console(args) => {
            let r = console::run(&server_rt, &client_rt, args, environment)?;
            (r.human(), serde_json::to_string(&r)?)
        }
    };
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{human}")?;
    writeln!(stdout, "{json}")?;
    if let Some(path) = &cli.json_out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{json}")?;
    }
    // The runtimes' shutdown waits for blocking tasks; don't let a stuck one hang the exit.
    server_rt.shutdown_timeout(std::time::Duration::from_secs(5));
    client_rt.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(())
}
