#![doc = include_str!("../README.md")]

pub mod chain;
pub mod dev;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bitsage_core::deployment::DeploymentKey;
use bitsage_core::service::CoordinatorPolicy;
use bitsage_core::{DynCoordinatorStore, DynEventBus, DynProofStore};
use bitsage_http::live::LiveSettings;
use bitsage_http::{router, AppState, HttpConfig};
use bitsage_prover::StwoProver;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the coordinator keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded default: `bitsage.db` (SQLite, WAL) in the data directory.
    Sqlite,
    /// PostgreSQL at this URL (scale-out: several coordinators may share it).
    Postgres(String),
}

/// Where the deployment's signing key comes from. Every coordinator of one network must load
/// the same key: receipts, probe tickets and attestation challenges are signed with it and
/// checked by whichever coordinator sees them next.
#[derive(Clone, PartialEq, Eq)]
pub enum DeploymentKeySource {
    /// `coordinator.key` in the data directory, created on first start (one coordinator).
    DataDir,
    /// A key file (64 hex digits, mode 0600) that must exist: shared by the coordinators of a
    /// network (`bitsage-coordinator keygen --out FILE` makes one).
    File(PathBuf),
    /// The 32-byte secret seed as 64 hex digits (e.g. from `BITSAGE_DEPLOYMENT_KEY`).
    Hex(String),
}

impl std::fmt::Debug for DeploymentKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DataDir => f.write_str("DataDir"),
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            // Never print the secret.
            Self::Hex(_) => f.write_str("Hex(<secret>)"),
        }
    }
}

/// The network name a coordinator reports when none is configured.
pub const DEFAULT_NETWORK: &str = "bitsage-local";

/// Loads the deployment key of `network` from `source` (`data_dir` for
/// [`DeploymentKeySource::DataDir`]).
pub fn load_deployment_key(
    source: &DeploymentKeySource,
    data_dir: &Path,
    network: &str,
) -> anyhow::Result<DeploymentKey> {
    use bitsage_agent::key::NodeKey;
    let key = match source {
        DeploymentKeySource::DataDir => NodeKey::load_or_create(coordinator_key_path(data_dir))
            .context("loading the coordinator key")?
            .signing_key()
            .clone(),
        DeploymentKeySource::File(path) => NodeKey::load(path)
            .with_context(|| format!("loading the deployment key {}", path.display()))?
            .signing_key()
            .clone(),
        DeploymentKeySource::Hex(hex_seed) => {
            let bytes = hex::decode(hex_seed.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .context("the deployment key must be 64 hex digits (a 32-byte ed25519 seed)")?;
            ed25519_dalek::SigningKey::from_bytes(&bytes)
        }
    };
    Ok(DeploymentKey::new(key, network)?)
}

/// Everything a coordinator needs to start.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Data directory: the SQLite database (when used), `coordinator.key`, `proofs/`.
    pub data_dir: PathBuf,
    /// The store.
    pub store: StoreConfig,
    /// The HTTP surface's settings.
    pub http: HttpConfig,
    /// The deployment's rules: fee, lease and probe lengths, heartbeat interval, when a silent
    /// node goes stale and offline, the clock-skew window, the submit token.
    pub policy: CoordinatorPolicy,
    /// How often the background services run (default 2 s).
    pub sweep_interval: Duration,
    /// The chain to read stake, rewards and reputation from (and index events of); `None`:
    /// those dashboard fields say `unavailable` with the reason.
    pub chain: Option<chain::ChainConfig>,
    /// Where the deployment key comes from (default: the data directory).
    pub deployment_key: DeploymentKeySource,
    /// The network's name, published with the key (default [`DEFAULT_NETWORK`]).
    pub network: String,
    /// Limits of the live event surface (WebSocket, SSE).
    pub live: LiveSettings,
    /// Events older than this are deleted from the outbox (default 7 days; clients resuming
    /// from an older id get what is left).
    pub event_retention: Duration,
    /// An admin (username, password) to create at start when the deployment has none (for
    /// unattended installs; `admin create` does the same by hand).
    pub bootstrap_admin: Option<(String, String)>,
}

impl CoordinatorConfig {
    /// Defaults for a coordinator on `listen` with its data in `data_dir` (SQLite).
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            store: StoreConfig::Sqlite,
            http: HttpConfig::default(),
            policy: CoordinatorPolicy::default(),
            sweep_interval: Duration::from_secs(2),
            chain: None,
            deployment_key: DeploymentKeySource::DataDir,
            network: DEFAULT_NETWORK.to_string(),
            live: LiveSettings::default(),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            bootstrap_admin: None,
        }
    }

    /// Checks the settings make sense together.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.policy.validate()?;
        anyhow::ensure!(
            !self.sweep_interval.is_zero(),
            "sweep_interval must be positive"
        );
        bitsage_core::deployment::check_network_name(&self.network)?;
        Ok(())
    }
}

/// Opens the configured store (applying its migrations).
pub async fn open_store(config: &CoordinatorConfig) -> anyhow::Result<DynCoordinatorStore> {
    Ok(open_stores(config).await?.store)
}

/// The backends a coordinator runs on.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Nodes, jobs, receipts, ledger, replay log, event outbox.
    pub store: DynCoordinatorStore,
    /// Proof envelopes by hash.
    pub proofs: DynProofStore,
    /// Wake-ups when events were committed.
    pub bus: DynEventBus,
}

/// Opens the configured store with the proof store and event bus that go with it: SQLite
/// keeps proofs as files in `<data dir>/proofs` and wakes readers in-process; PostgreSQL keeps
/// proofs in the database and announces events with `LISTEN/NOTIFY`, so every coordinator
/// sharing it serves every proof and sees every event.
pub async fn open_stores(config: &CoordinatorConfig) -> anyhow::Result<Stores> {
    Ok(match &config.store {
        StoreConfig::Sqlite => {
            let store = bitsage_store::SqliteStore::open_dir(&config.data_dir)
                .await
                .with_context(|| format!("opening SQLite in {}", config.data_dir.display()))?;
            let proofs = bitsage_store::FsProofStore::open(config.data_dir.join("proofs"))
                .context("opening the proof directory")?;
            Stores {
                bus: Arc::new(store.event_bus()),
                store: Arc::new(store),
                proofs: Arc::new(proofs),
            }
        }
        StoreConfig::Postgres(url) => {
            let store = Arc::new(
                bitsage_store::PgStore::connect(url)
                    .await
                    .context("connecting to PostgreSQL")?,
            );
            let bus = bitsage_store::PgEventBus::listen(url)
                .await
                .context("listening for events on PostgreSQL")?;
            Stores {
                store: store.clone(),
                proofs: store,
                bus: Arc::new(bus),
            }
        }
    })
}

/// The coordinator's key file in `data_dir`.
pub fn coordinator_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("coordinator.key")
}

/// A coordinator that is serving.
#[derive(Debug)]
pub struct RunningCoordinator {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its shared state (store, key, settings).
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<anyhow::Result<()>>,
    sweeper: JoinHandle<()>,
}

impl RunningCoordinator {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish, stops the services.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let _ = self.sweeper.await;
        self.server.await.context("server task")?
    }

    /// Waits until the server stops on its own (an error) or `stop` turns true, then shuts
    /// down.
    pub async fn run_until(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        self.shutdown().await
    }
}

/// Starts a coordinator: store, key, state, HTTP server and background services.
pub async fn serve(config: CoordinatorConfig) -> anyhow::Result<RunningCoordinator> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let deployment =
        load_deployment_key(&config.deployment_key, &config.data_dir, &config.network)?;
    let stores = open_stores(&config).await?;
    // Without a chain, payers sign with the key stored with their local credit (a chain
    // replaces this with the account contracts, see `chain::attach`).
    let payers: Arc<dyn bitsage_core::PayerLedger> = stores.store.clone();
    let state = AppState::new(
        stores.store,
        Arc::new(StwoProver::new()),
        stores.proofs,
        deployment,
        config.http.clone(),
    )
    .with_payer_verifier(Arc::new(bitsage_chain::StoredKeyVerifier::new(payers)))
    .with_policy(config.policy.clone())
    .with_live_events(Some(stores.bus), config.live.clone());
    serve_state(config, state).await
}

/// Descriptors kept free for the store, proof files and the chain client.
const RESERVED_DESCRIPTORS: u64 = 256;

/// How many connections the process can hold: raises its soft file limit to the hard one
/// (once) and leaves [`RESERVED_DESCRIPTORS`] for everything else.
fn connection_budget() -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX)
}

/// Starts serving an already built state (an embedding application's own chain source or
/// verifiers; tests use it with other stores): creates `config.bootstrap_admin` when the
/// deployment has no admin, binds, attaches the chain and runs the background services.
pub async fn serve_state(
    config: CoordinatorConfig,
    state: AppState,
) -> anyhow::Result<RunningCoordinator> {
    config.validate()?;
    if let Some((username, password)) = &config.bootstrap_admin {
        match state
            .accounts
            .bootstrap_admin(username, password, bitsage_core::time::now())
            .await
        {
            Ok(user) => tracing::info!(username = %user.username, "first admin created"),
            // An admin exists, or another coordinator of the deployment created it just now.
            Err(bitsage_core::service::ServiceError::Domain(
                bitsage_core::Error::Conflict(_) | bitsage_core::Error::AlreadyExists { .. },
            )) => {}
            Err(e) => anyhow::bail!("creating the first admin: {e}"),
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let (state, indexer) = match &config.chain {
        Some(chain) => {
            let (state, indexer) = chain::attach(state, chain).await?;
            (state, Some(indexer))
        }
        None => (state, None),
    };
    let indexer = indexer.map(|i| tokio::spawn(i.run(rx.clone())));
    let app = router(state.clone());
    let mut server_rx = rx.clone();
    let live = state.events.clone();
    let mut limits = state.config.limits.clone();
    limits.max_connections = limits.max_connections.min(connection_budget());
    let server = tokio::spawn(async move {
        bitsage_http::server::serve(listener, app, limits, Default::default(), async move {
            let _ = server_rx.wait_for(|s| *s).await;
            // Live streams never end on their own: end them so the shutdown can finish.
            live.close();
        })
        .await
        .context("HTTP server")
    });
    state
        .events
        .start()
        .await
        .context("starting the live event hub")?;
    let services = run_services(state.clone(), config.clone(), rx.clone());
    // Settlement waits on the chain: its own task, so an outage cannot delay the sweeps.
    let settler = tokio::spawn(run_settlement(state.clone(), config.sweep_interval, rx));
    let sweeper = tokio::spawn(async move {
        services.await;
        let _ = settler.await;
        if let Some(indexer) = indexer {
            let _ = indexer.await;
        }
    });
    tracing::info!(
        %addr,
        backend = state.store.backend(),
        proofs = state.proofs.proof_backend(),
        network = state.deployment.network(),
        key_id = state.deployment.key_id(),
        public_key = %state.public_key(),
        "coordinator listening"
    );
    Ok(RunningCoordinator {
        addr,
        state,
        shutdown,
        server,
        sweeper,
    })
}

/// How often the retention pass runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Settlement rounds (with a settler): one per `every`; an epoch is sent when due.
async fn run_settlement(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = state
            .coordinator
            .settle_round(bitsage_core::time::now())
            .await
        {
            tracing::warn!(error = %e, "settlement round failed");
        }
    }
}

/// The background services, every `sweep_interval` until `stop`: the coordinator's sweep
/// ([`bitsage_core::service::Coordinator::sweep`]: lifecycle, lease expiry, heartbeat
/// summary, replay-log purge, reputation, incident conditions), the indexer's incident
/// condition, GPU-sample and outbox retention. A failing pass is logged and retried next
/// time.
async fn run_services(state: AppState, config: CoordinatorConfig, mut stop: watch::Receiver<bool>) {
    let mut last_retention: Option<std::time::Instant> = None;
    let mut tick = tokio::time::interval(config.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = bitsage_core::time::now();
        if let Err(e) = state.coordinator.sweep(now).await {
            tracing::warn!(error = %e, "coordinator sweep failed");
        }
        if let Some(h) = state.chain_info.as_ref().and_then(|c| c.indexer_health()) {
            let behind = h.behind(now);
            let watched = state
                .coordinator
                .watch(
                    bitsage_core::incident::Condition::IndexerBehind,
                    behind.is_some(),
                    behind.as_deref().unwrap_or(""),
                    now,
                )
                .await;
            if let Err(e) = watched {
                tracing::warn!(error = %e, "indexer incident condition could not be checked");
            }
        }
        // Retention once a minute (each pass is bounded).
        if last_retention.is_none_or(|at: std::time::Instant| at.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(std::time::Instant::now());
            if let Err(e) = state.coordinator.apply_retention(now).await {
                tracing::warn!(error = %e, "retention pass failed");
            }
        }
        if let Some(cutoff) = chrono::TimeDelta::from_std(config.event_retention)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        {
            if let Err(e) = state.outbox.purge_events(cutoff).await {
                tracing::warn!(error = %e, "event outbox retention failed");
            }
        }
    }
}
