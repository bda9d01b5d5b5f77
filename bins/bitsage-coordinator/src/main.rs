//! `bitsage-coordinator`: the coordinator binary. Thin: argument parsing, tracing, dispatch;
//! the composition lives in the `bitsage_coordinator` library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bitsage_chain::ContractAddresses;
use bitsage_coordinator::chain::ChainConfig;
use bitsage_coordinator::dev::{self, DevOptions};
use bitsage_coordinator::telemetry::{self, LogFormat};
use bitsage_coordinator::{serve, CoordinatorConfig, DeploymentKeySource, StoreConfig};
use bitsage_core::node::NodeFilter;
use bitsage_core::page::PageRequest;
use bitsage_core::WalletAddress;
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

/// The BitSage coordinator. Without a subcommand: the production server (SQLite in
/// `--data-dir`, or PostgreSQL with `--database-url`).
#[derive(Debug, Parser)]
#[command(
    name = "bitsage-coordinator",
    version,
    about,
    args_conflicts_with_subcommands = true,
    // A flag given twice takes the last value (wrappers and tests append overrides).
    args_override_self = true
)]
struct Cli {
    /// Log lines as `text` (the default) or `json` (one object per line, for collectors).
    #[arg(
        long,
        global = true,
        env = "BITSAGE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Export traces (a span per request and per store/chain call) over OTLP/HTTP to this
    /// endpoint, e.g. `http://collector:4318/v1/traces`.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One machine, one command: coordinator + an in-process agent for this host + a demo job
    /// feeder, on SQLite in `--data-dir`.
    Dev(DevArgs),
    /// Create a deployment key file (mode 0600) to share among the coordinators of a network
    /// (`--key-file`); prints its public key and key id.
    Keygen {
        /// Where to write the key; refused if the file exists.
        #[arg(long)]
        out: PathBuf,
    },
    /// Local credit of paying accounts (a coordinator without a chain): jobs are accepted only
    /// within it, signed with the account's Stark key.
    Credit {
        #[command(subcommand)]
        action: CreditAction,
    },
    /// Accounts: create the deployment's first admin (more users, organisations and API keys
    /// are then managed through the API as that admin).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Open the store (creating it if needed), apply migrations and report what it holds.
    Migrate {
        /// SQLite data directory (the embedded default).
        #[arg(long, default_value = ".bitsage", conflicts_with = "database_url")]
        data_dir: PathBuf,
        /// PostgreSQL URL (`postgres://…`); overrides `--data-dir`.
        #[arg(long, env = "BITSAGE_DATABASE_URL")]
        database_url: Option<String>,
    },
}

/// Which store a command works on.
#[derive(Debug, Args)]
struct StoreArgs {
    /// SQLite data directory (the embedded default).
    #[arg(long, default_value = ".bitsage", conflicts_with = "database_url")]
    data_dir: PathBuf,
    /// PostgreSQL URL (`postgres://…`); overrides `--data-dir`.
    #[arg(long, env = "BITSAGE_DATABASE_URL")]
    database_url: Option<String>,
}

impl StoreArgs {
    /// Opens the store these arguments name (applying migrations).
    async fn open(&self) -> anyhow::Result<bitsage_core::DynCoordinatorStore> {
        let mut config =
            CoordinatorConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), self.data_dir.clone());
        if let Some(url) = &self.database_url {
            config.store = StoreConfig::Postgres(url.clone());
        }
        bitsage_coordinator::open_store(&config).await
    }
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Create the first admin; refused when an admin exists. The password is read from
    /// `--password-file` or the `BITSAGE_ADMIN_PASSWORD` environment variable, never from
    /// the command line (which other users of the machine can see).
    Create {
        /// The admin's username.
        #[arg(long)]
        username: String,
        /// A file holding the password (12 to 128 characters; one trailing newline ignored).
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum CreditAction {
    /// Set an account's credit (replacing it; what its jobs reserved and spent is kept) and
    /// the Stark public key its submissions are checked with.
    Set {
        /// The paying account (`0x…`).
        #[arg(long)]
        account: String,
        /// The credit in SAGE (decimals allowed, e.g. `1,000.5`).
        #[arg(long)]
        sage: String,
        /// The account's Stark public key (`0x…`); without it the account cannot submit
        /// to a coordinator without a chain.
        #[arg(long)]
        public_key: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show an account's credit, reservations and spending.
    Show {
        /// The paying account (`0x…`).
        #[arg(long)]
        account: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Settings shared by the server and `dev`.
#[derive(Debug, Args)]
struct Tuning {
    /// Heartbeat interval told to agents, seconds.
    #[arg(long, default_value_t = 10)]
    heartbeat_interval_secs: u64,
    /// Silence after which an active node becomes stale, seconds.
    #[arg(long, default_value_t = 30)]
    stale_after_secs: u64,
    /// Silence after which a node becomes offline, seconds.
    #[arg(long, default_value_t = 300)]
    offline_after_secs: u64,
    /// How long a job lease lasts, seconds.
    #[arg(long, default_value_t = 600)]
    lease_secs: u64,
    /// Network fee, basis points of each payment.
    #[arg(long, default_value_t = 250)]
    fee_bps: u16,
    /// How often accepted heartbeats are summarised on the live `workers` topic, seconds.
    #[arg(long, default_value_t = 30)]
    heartbeat_summary_secs: u64,
    /// With a settler: send a settlement epoch once this many receipts wait…
    #[arg(long, default_value_t = 100)]
    epoch_max_jobs: u32,
    /// …or once the oldest has waited this long, seconds.
    #[arg(long, default_value_t = 60)]
    epoch_secs: u64,
    /// How often the background services run, milliseconds.
    #[arg(long, default_value_t = 2000)]
    sweep_interval_ms: u64,
    /// Quarantine a node whose reputation R (0–100) falls below this, once it has enough
    /// evidence (0 never quarantines on reputation).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(0..=100))]
    reputation_quarantine_below: u32,
    /// How often every node's reputation is recomputed, seconds.
    #[arg(long, default_value_t = 60)]
    reputation_every_secs: u64,
    /// The longest drain (maintenance) an operator may set, seconds.
    #[arg(long, default_value_t = 86_400)]
    max_drain_secs: u64,
    /// Days raw heartbeats and GPU samples are kept (GPU samples are rolled up per minute
    /// first; uptime reads the per-minute heartbeat rollup).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=3650))]
    raw_retention_days: u64,
    /// Days the per-minute rollups are kept (at least the 30 days uptime reads).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(30..=3650))]
    rollup_retention_days: u64,
    /// Hours proof envelopes are kept (default: as long as their receipts, which are kept;
    /// `dev` keeps them 1 hour). The receipt stays verifiable by its signatures without it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    proof_retention_hours: Option<u64>,
    /// A node's month is eligible for payout once its net earnings reach this, in SAGE
    /// (decimal, e.g. `100` or `0.5`).
    #[arg(long, default_value = "100", value_parser = parse_sage)]
    payout_threshold_sage: bitsage_core::TokenAmount,
    /// Admit new nodes only with an enrolment token an operator created (`POST
    /// /api/enrolments`, the console's Run a Node page).
    #[arg(long, env = "BITSAGE_REQUIRE_ENROLMENT")]
    require_enrolment: bool,
    /// A browser origin allowed to call the API (CORS), e.g. `https://console.example`;
    /// repeat for several. None: same origin only.
    #[arg(
        long = "cors-origin",
        env = "BITSAGE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Whether anonymous callers see the public network overview (`/api/network/stats`,
    /// `/api/summary`, `/api/contracts`, `/api/jobs/analytics`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    anonymous_overview: bool,
    /// Multiplies every rate limit (1 = the documented table; 0 turns limiting off).
    #[arg(long, default_value_t = 1.0)]
    rate_limit_scale: f64,
    /// Most connections open at once (also capped by the process's file limit).
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data directory (SQLite database, coordinator key, proofs).
    #[arg(long, default_value = ".bitsage")]
    data_dir: PathBuf,
    /// PostgreSQL URL (`postgres://…`); without it the store is SQLite in `--data-dir`.
    #[arg(long, env = "BITSAGE_DATABASE_URL")]
    database_url: Option<String>,
    /// Bearer token required to submit jobs (`POST /api/jobs`), on top of an API key with
    /// the `jobs:submit` scope.
    #[arg(long, env = "BITSAGE_SUBMIT_TOKEN")]
    submit_token: Option<String>,
    /// Create this admin at start when the deployment has none; the password comes from
    /// `BITSAGE_ADMIN_PASSWORD` (never a flag). `admin create` does the same by hand.
    #[arg(long, requires = "admin_password")]
    bootstrap_admin: Option<String>,
    /// The bootstrap admin's password (from the environment only).
    #[arg(
        long,
        env = "BITSAGE_ADMIN_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    admin_password: Option<String>,
    #[command(flatten)]
    deployment: DeploymentArgs,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    tuning: Tuning,
}

/// The deployment's identity: its signing key (shared by every coordinator of the network)
/// and its name.
#[derive(Debug, Args)]
struct DeploymentArgs {
    /// The deployment key file (made by `keygen`), the same on every coordinator of the
    /// network. Without it (and without `BITSAGE_DEPLOYMENT_KEY`) the key is
    /// `coordinator.key` in the data directory, created on first start.
    #[arg(long, env = "BITSAGE_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The network's name, published at `GET /api/coordinator` with the key.
    #[arg(long, env = "BITSAGE_NETWORK", default_value = bitsage_coordinator::DEFAULT_NETWORK)]
    network: String,
}

impl DeploymentArgs {
    fn source(&self) -> anyhow::Result<DeploymentKeySource> {
        // The secret itself comes from the environment only (never a flag: `ps` shows flags).
        let env = std::env::var("BITSAGE_DEPLOYMENT_KEY").ok();
        Ok(match (&self.key_file, env) {
            (Some(_), Some(_)) => anyhow::bail!(
                "give the deployment key once: --key-file/BITSAGE_KEY_FILE or BITSAGE_DEPLOYMENT_KEY"
            ),
            (Some(path), None) => DeploymentKeySource::File(path.clone()),
            (None, Some(hex)) => DeploymentKeySource::Hex(hex),
            (None, None) => DeploymentKeySource::DataDir,
        })
    }
}

/// The chain to read (all of `--starknet-rpc` and the three addresses, or none).
#[derive(Debug, Args)]
struct ChainArgs {
    /// Starknet JSON-RPC endpoint; without it stake, rewards and reputation say `unavailable`.
    #[arg(long, env = "BITSAGE_STARKNET_RPC", requires_all = ["token_address", "staking_address", "reputation_address"])]
    starknet_rpc: Option<String>,
    /// The SAGE token contract.
    #[arg(long, env = "BITSAGE_TOKEN_ADDRESS", requires = "starknet_rpc")]
    token_address: Option<String>,
    /// The ProverStaking contract.
    #[arg(long, env = "BITSAGE_STAKING_ADDRESS", requires = "starknet_rpc")]
    staking_address: Option<String>,
    /// The ReputationManager contract.
    #[arg(long, env = "BITSAGE_REPUTATION_ADDRESS", requires = "starknet_rpc")]
    reputation_address: Option<String>,
    /// First block to index (the contracts' deployment block).
    #[arg(long, default_value_t = 0)]
    chain_start_block: u64,
    /// The JobEscrow contract: payers' funds are their escrow; with a settler, verified work
    /// settles on chain in epochs.
    #[arg(long, env = "BITSAGE_ESCROW_ADDRESS", requires = "starknet_rpc")]
    escrow_address: Option<String>,
    /// The settler account (escrow settler, staking verifier, reputation updater).
    #[arg(long, env = "BITSAGE_SETTLER_ADDRESS", requires_all = ["escrow_address", "settler_key_file"])]
    settler_address: Option<String>,
    /// A file (mode 0600) holding the settler account owner's Stark private key (`0x…`).
    #[arg(long, requires = "settler_address")]
    settler_key_file: Option<std::path::PathBuf>,
}

impl ChainArgs {
    fn config(&self) -> anyhow::Result<Option<ChainConfig>> {
        let (Some(rpc), Some(t), Some(s), Some(r)) = (
            &self.starknet_rpc,
            &self.token_address,
            &self.staking_address,
            &self.reputation_address,
        ) else {
            return Ok(None);
        };
        let escrow = self
            .escrow_address
            .as_deref()
            .map(WalletAddress::parse)
            .transpose()
            .context("--escrow-address")?;
        let settler = match (&self.settler_address, &self.settler_key_file) {
            (Some(address), Some(file)) => Some(bitsage_coordinator::chain::Settler {
                address: WalletAddress::parse(address).context("--settler-address")?,
                key: bitsage_agent::wallet::load_private_key(file)?,
            }),
            _ => None,
        };
        Ok(Some(ChainConfig {
            rpc_url: rpc.clone(),
            contracts: ContractAddresses::parse(t, s, r)?,
            start_block: self.chain_start_block,
            escrow,
            settler,
        }))
    }
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Port to listen on (loopback).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Data directory (SQLite database, coordinator and node keys, proofs).
    #[arg(long, default_value = ".bitsage")]
    data_dir: PathBuf,
    /// The wallet the local agent earns for.
    #[arg(long, default_value = dev::DEV_WALLET)]
    wallet: String,
    /// Seconds between demo job submissions.
    #[arg(long, default_value_t = 5)]
    feed_every_secs: u64,
    /// Poseidon2 chain length of the demo jobs.
    #[arg(long, default_value_t = 1024)]
    chain_length: u32,
    /// Stop after this many seconds (runs until Ctrl-C when absent).
    #[arg(long)]
    run_for_secs: Option<u64>,
    #[command(flatten)]
    tuning: Tuning,
}

fn parse_sage(s: &str) -> Result<bitsage_core::TokenAmount, String> {
    bitsage_core::TokenAmount::parse_units(s, bitsage_core::amount::SAGE_DECIMALS)
        .map_err(|e| e.to_string())
}

fn config_from(
    listen: SocketAddr,
    data_dir: PathBuf,
    store: StoreConfig,
    t: &Tuning,
) -> CoordinatorConfig {
    let mut c = CoordinatorConfig::new(listen, data_dir);
    c.store = store;
    c.policy.heartbeat_interval = Duration::from_secs(t.heartbeat_interval_secs);
    c.policy.lease_duration = Duration::from_secs(t.lease_secs);
    c.policy.fee_bps = t.fee_bps;
    c.policy.stale_after = Duration::from_secs(t.stale_after_secs);
    c.policy.offline_after = Duration::from_secs(t.offline_after_secs);
    c.policy.heartbeat_summary_every = Duration::from_secs(t.heartbeat_summary_secs.max(1));
    c.policy.epoch_max_jobs = t.epoch_max_jobs;
    c.policy.epoch_every = Duration::from_secs(t.epoch_secs);
    c.sweep_interval = Duration::from_millis(t.sweep_interval_ms);
    c.policy.reputation.quarantine_below =
        (t.reputation_quarantine_below > 0).then_some(t.reputation_quarantine_below);
    c.policy.reputation_every = Duration::from_secs(t.reputation_every_secs.max(1));
    c.policy.max_drain = Duration::from_secs(t.max_drain_secs.max(1));
    c.policy.retention.raw_heartbeats = Duration::from_secs(t.raw_retention_days * 86_400);
    c.policy.retention.raw_gpu_samples = Duration::from_secs(t.raw_retention_days * 86_400);
    c.policy.retention.minute_rollups = Duration::from_secs(t.rollup_retention_days * 86_400);
    c.policy.payout_threshold = t.payout_threshold_sage;
    c.policy.require_enrolment = t.require_enrolment;
    c.policy.retention.proofs = t
        .proof_retention_hours
        .map(|h| Duration::from_secs(h * 3600));
    c.http.cors_origins = t.cors_origins.clone();
    c.policy.flags.insert(
        bitsage_core::flags::Flag::AllowAnonymousOverview,
        t.anonymous_overview,
    );
    c.http.rate_limits = if t.rate_limit_scale > 0.0 {
        bitsage_http::ratelimit::RateLimits::default().scaled(t.rate_limit_scale)
    } else {
        bitsage_http::ratelimit::RateLimits::disabled()
    };
    c.http.limits.max_connections = t.max_connections.max(1);
    c
}

/// Turns true on Ctrl-C or SIGTERM.
fn stop_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("stop signal received; shutting down");
        let _ = tx.send(true);
    });
    rx
}

/// mimalloc instead of glibc malloc: the request path allocates small, short-lived buffers on
/// every heartbeat (BENCHMARKS.md "Network scale").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before anything else of ours runs (the runtime included): a CPU without the features
    // this build uses would fail later with an illegal instruction.
    if let Err(e) = bitsage_prover::cpu::check() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    serve_main()
}

#[tokio::main]
async fn serve_main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = match telemetry::init(cli.log_format, cli.otlp_endpoint.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: setting up logs and traces: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        None => run_server(cli.serve).await,
        Some(Command::Dev(args)) => run_dev(args).await,
        Some(Command::Keygen { out }) => keygen(out),
        Some(Command::Migrate {
            data_dir,
            database_url,
        }) => migrate(data_dir, database_url).await,
        Some(Command::Credit { action }) => credit(action).await,
        Some(Command::Admin { action }) => admin(action).await,
    };
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run_server(args: ServeArgs) -> anyhow::Result<()> {
    let store = match args.database_url {
        Some(url) => StoreConfig::Postgres(url),
        None => StoreConfig::Sqlite,
    };
    let mut config = config_from(args.listen, args.data_dir, store, &args.tuning);
    config.policy.submit_token = args.submit_token;
    config.bootstrap_admin = args.bootstrap_admin.zip(args.admin_password);
    config.chain = args.chain.config()?;
    config.deployment_key = args.deployment.source()?;
    config.network = args.deployment.network.clone();
    let running = serve(config).await?;
    let d = &running.state.deployment;
    println!(
        "bitsage-coordinator listening on {} (network {}, deployment key {} = {}; pin it: {}/api/coordinator)",
        running.url(),
        d.network(),
        d.key_id(),
        d.public_key(),
        running.url()
    );
    running.run_until(stop_signal()).await
}

async fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    let wallet = WalletAddress::parse(&args.wallet).context("--wallet")?;
    let listen = SocketAddr::from(([127, 0, 0, 1], args.port));
    let mut config = config_from(listen, args.data_dir, StoreConfig::Sqlite, &args.tuning);
    // A demo feeds a job every few seconds: keep its data directory bounded (proofs an hour).
    if args.tuning.proof_retention_hours.is_none() {
        config.policy.retention.proofs = Some(Duration::from_secs(3600));
    }
    let options = DevOptions {
        coordinator: config,
        wallet,
        feed_every: Duration::from_secs(args.feed_every_secs.max(1)),
        chain_length: args.chain_length,
    };
    let stop = stop_signal();
    let stop = match args.run_for_secs {
        None => stop,
        Some(secs) => {
            let (tx, rx) = watch::channel(false);
            let mut outer = stop;
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                    _ = outer.wait_for(|s| *s) => {}
                }
                let _ = tx.send(true);
            });
            rx
        }
    };
    dev::run(options, stop).await
}

fn keygen(out: PathBuf) -> anyhow::Result<()> {
    // KeyError's message names the file and the cause already.
    let key = bitsage_agent::key::NodeKey::create(&out).map_err(|e| anyhow::anyhow!("{e}"))?;
    let public = key.public_key();
    println!(
        "deployment key written to {} (mode 0600)\npublic key {}\nkey id {}",
        out.display(),
        public,
        bitsage_core::deployment::key_id(&public)
    );
    Ok(())
}

async fn credit(action: CreditAction) -> anyhow::Result<()> {
    let (account, store_args) = match &action {
        CreditAction::Set { account, store, .. } | CreditAction::Show { account, store } => {
            (account, store)
        }
    };
    let account = WalletAddress::parse(account).context("--account")?;
    let store = store_args.open().await?;
    let books = match &action {
        CreditAction::Set {
            sage, public_key, ..
        } => {
            let credit = bitsage_core::TokenAmount::parse_units(sage, 18).context("--sage")?;
            let key = public_key
                .as_deref()
                .map(bitsage_core::wallet::FeltHex::parse)
                .transpose()
                .context("--public-key")?;
            store
                .set_payer(&account, key.as_ref(), credit, bitsage_core::time::now())
                .await?
        }
        CreditAction::Show { .. } => store
            .payer(&account)
            .await?
            .with_context(|| format!("account {account} has no credit and no jobs"))?,
    };
    let available = books.available(&bitsage_core::funding::FundingLimit::LocalCredit);
    println!(
        "account    {}
public key {}
credit     {}
reserved   {}
spent      {}
available  {}",
        books.account,
        books
            .public_key
            .as_ref()
            .map_or("none (cannot submit)".to_string(), |k| k.to_string()),
        books.credit.format_sage(),
        books.reserved.format_sage(),
        books.spent.format_sage(),
        available.format_sage()
    );
    Ok(())
}

async fn admin(action: AdminAction) -> anyhow::Result<()> {
    let AdminAction::Create {
        username,
        password_file,
        store: store_args,
    } = action;
    let password = match (&password_file, std::env::var("BITSAGE_ADMIN_PASSWORD")) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        (None, Ok(p)) => p,
        (None, Err(_)) => anyhow::bail!(
            "give the password with --password-file FILE or the BITSAGE_ADMIN_PASSWORD \
             environment variable"
        ),
    };
    let store = store_args.open().await?;
    let user = bitsage_core::service::accounts::bootstrap_admin(
        store.as_ref(),
        store.as_ref(),
        &username,
        &password,
        bitsage_core::time::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "admin {} created (id {}); log in with POST /api/auth/login",
        user.username, user.id
    );
    Ok(())
}

async fn migrate(data_dir: PathBuf, database_url: Option<String>) -> anyhow::Result<()> {
    let mut config = CoordinatorConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), data_dir);
    if let Some(url) = database_url {
        config.store = StoreConfig::Postgres(url);
    }
    let store = bitsage_coordinator::open_store(&config).await?;
    let nodes = store
        .list_nodes(&NodeFilter::default(), PageRequest::first(1)?)
        .await?;
    println!(
        "{} store ready (migrations applied): {} node(s) registered",
        store.backend(),
        nodes.total
    );
    Ok(())
}
