//! The agent: joins a coordinator and works for it until told to stop.
//!
//! [`Agent::run`] registers (retrying with exponential backoff and jitter while the
//! coordinator is unreachable), starts a heartbeat task at the interval the coordinator sets,
//! and loops: lease → prove → complete. A probe (for a `pending` node) is proven and handed
//! in like a job, without a receipt. A prover error gives the lease back with `fail`; no work
//! means waiting `retry_after_secs`; a coordinator that goes away (restart, network) is
//! retried with backoff and the agent carries on when it comes back — registering again if
//! it forgot the node. Only a registration the coordinator *refuses* (4xx: bad wallet, id
//! taken by another key, ...) ends the run with an error.
//!
//! On shutdown a proof in progress is finished and handed in within
//! [`AgentConfig::shutdown_grace`]; past it (or with no proof to finish) the lease is given
//! back (`fail` with [`SHUTDOWN_REASON`]) so the job is re-queued at once.
//!
//! Everything is a library: no process exit, no global state; several agents can run in one
//! process (the coordinator's `dev` mode does).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitsage_core::attestation::{AttestationChallenge, HostAttestation, RegistrationAttestation};
use bitsage_core::crypto::{Hash32, PublicKey, SignatureBytes};
use bitsage_core::proof::ProofEnvelope;
use bitsage_core::receipt::ReceiptBody;
use bitsage_core::time::{now, Timestamp};
use bitsage_core::wallet::WalletProof;
use bitsage_core::{DynGpuSource, DynProver, NodeId, ReceiptId, WalletAddress};
use bitsage_gpu::{GpuSampler, SamplerConfig};
use bitsage_http::api::{
    Assignment, CompleteRequest, FailRequest, HeartbeatRequest, LeaseRequest, RegisterRequest,
    MAX_AGENT_VERSION_LEN, MAX_FAIL_REASON_LEN,
};
use bitsage_http::client::{ClientError, CoordinatorClient, Registered, DEFAULT_REQUEST_TIMEOUT};
use ed25519_dalek::SigningKey;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::hardware::hardware_report;
use crate::key::{KeyError, NodeKey};
use crate::stats::{AgentHandle, AgentSnapshot, AgentStats, Counter};
use crate::wallet::WalletSigner;

/// The reason a lease is given back with when the agent stops before it could hand in a
/// proof.
pub const SHUTDOWN_REASON: &str = "released: agent shutting down";

/// This agent's version string, as registered and sent with heartbeats.
pub const AGENT_VERSION: &str = concat!("bitsage-agent/", env!("CARGO_PKG_VERSION"));

/// The longest a heartbeat interval set by the coordinator is honoured (a larger one is
/// capped, so a misconfigured coordinator cannot silence its nodes).
const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3600);

/// The longest "no work, ask again later" wait honoured.
const MAX_IDLE_WAIT: Duration = Duration::from_secs(300);

/// How long giving a lease back may take in all (it is best effort: the coordinator
/// re-queues the job anyway when the lease expires).
const RELEASE_BUDGET: Duration = Duration::from_secs(10);

/// How long the heartbeat task may take to stop.
const HEARTBEAT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the node key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A key file, created (mode `0600`) if it does not exist; see [`NodeKey::load_or_create`].
    File(PathBuf),
    /// A key already in memory (in-process agents, tests).
    Key(Box<NodeKey>),
}

impl From<SigningKey> for KeySource {
    fn from(key: SigningKey) -> Self {
        KeySource::Key(Box::new(NodeKey::from_signing_key(key)))
    }
}

/// How an [`Agent`] runs. Build with [`AgentConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentConfig {
    /// The coordinator's base URL (`http://host:port`; plain HTTP, see
    /// [`bitsage_http::client`]).
    pub coordinator_url: String,
    /// More coordinators of the same deployment to fail over to, in order (default none): a
    /// lease taken through one may be completed through another.
    pub failover_urls: Vec<String>,
    /// The node id; `None`: derived from the key ([`NodeKey::default_node_id`]).
    pub node_id: Option<NodeId>,
    /// The wallet the node earns for.
    pub wallet: WalletAddress,
    /// The node key.
    pub key: KeySource,
    /// The version string registered and sent with heartbeats (1 to 64 printable
    /// characters; default [`AGENT_VERSION`]).
    pub agent_version: String,
    /// Per-request timeout (default 30 s; completions carry proofs of a few MiB).
    pub request_timeout: Duration,
    /// First delay before retrying an unreachable coordinator (default 500 ms).
    pub initial_backoff: Duration,
    /// Largest delay between retries (default 30 s); also how long a node the coordinator
    /// refuses to lease to (403, e.g. quarantined) waits before asking again.
    pub max_backoff: Duration,
    /// How long a proof in progress at shutdown may take to finish and be handed in
    /// (default 30 s); past it the lease is given back.
    pub shutdown_grace: Duration,
    /// How often the GPU source is sampled in the background for heartbeats (default 5 s).
    pub sample_interval: Duration,
    /// How long reading the hardware for registration may take (default 30 s).
    pub hardware_timeout: Duration,
    /// How the wallet is proven at registration (default none: registered unverified,
    /// refused by a coordinator that checks wallets).
    pub wallet_signer: crate::wallet::WalletSigner,
    /// Region, runtime, labels and energy tag sent at registration (default: none sent;
    /// the coordinator then shows the default profile).
    pub profile: Option<bitsage_core::node::NodeProfile>,
    /// The operator's enrolment token, which ties the node to the operator's organisation
    /// when it registers (default none). Never logged: its `Debug` is redacted.
    pub enrolment_token: Option<crate::enrolment::EnrolmentToken>,
}

impl AgentConfig {
    /// A configuration with the defaults above.
    pub fn new(
        coordinator_url: impl Into<String>,
        wallet: WalletAddress,
        key: impl Into<KeySource>,
    ) -> Self {
        Self {
            coordinator_url: coordinator_url.into(),
            failover_urls: Vec::new(),
            node_id: None,
            wallet,
            key: key.into(),
            agent_version: AGENT_VERSION.to_string(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            sample_interval: Duration::from_secs(5),
            hardware_timeout: Duration::from_secs(30),
            wallet_signer: crate::wallet::WalletSigner::None,
            profile: None,
            enrolment_token: None,
        }
    }

    /// The same configuration with an explicit node id.
    pub fn with_node_id(mut self, node_id: NodeId) -> Self {
        self.node_id = Some(node_id);
        self
    }
}

impl From<NodeKey> for KeySource {
    fn from(key: NodeKey) -> Self {
        KeySource::Key(Box::new(key))
    }
}

impl From<PathBuf> for KeySource {
    fn from(path: PathBuf) -> Self {
        KeySource::File(path)
    }
}

/// Why an agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The node key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The configuration is unusable (e.g. an invalid coordinator URL).
    #[error("invalid agent configuration: {0}")]
    Config(String),
    /// The coordinator refused the registration (a 4xx: invalid wallet, node id registered
    /// with another key, clock too far off, ...). Retrying would not help.
    #[error("the coordinator refused to register this node: {0}")]
    Registration(#[source] ClientError),
}

/// What an agent did, returned when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReport {
    /// The node it ran as.
    pub node_id: NodeId,
    /// Its counters at the end.
    pub stats: AgentSnapshot,
}

/// A worker agent, ready to [`run`](Agent::run).
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    key: NodeKey,
    node_id: NodeId,
    client: CoordinatorClient,
    prover: DynProver,
    gpu: DynGpuSource,
    stats: Arc<AgentStats>,
}

impl Agent {
    /// An agent proving with `prover` and reporting the hardware of `gpu` (for a real worker,
    /// `bitsage_gpu::LocalGpu::detect().await.source()`). Loads (or creates) the key and
    /// checks the configuration; contacts nobody yet.
    pub fn new(
        config: AgentConfig,
        prover: DynProver,
        gpu: DynGpuSource,
    ) -> Result<Self, AgentError> {
        let key = match &config.key {
            KeySource::File(path) => NodeKey::load_or_create(path)?,
            KeySource::Key(key) => NodeKey::clone(key),
        };
        let v = &config.agent_version;
        if v.is_empty() || v.len() > MAX_AGENT_VERSION_LEN || v.chars().any(char::is_control) {
            return Err(AgentError::Config(format!(
                "agent version must be 1 to {MAX_AGENT_VERSION_LEN} printable characters"
            )));
        }
        let urls: Vec<&str> = std::iter::once(config.coordinator_url.as_str())
            .chain(config.failover_urls.iter().map(String::as_str))
            .collect();
        let client = CoordinatorClient::with_failover(&urls)
            .map_err(|e| AgentError::Config(e.to_string()))?
            .with_timeout(config.request_timeout);
        let node_id = config
            .node_id
            .clone()
            .unwrap_or_else(|| key.default_node_id());
        Ok(Self {
            config,
            key,
            node_id,
            client,
            prover,
            gpu,
            stats: Arc::new(AgentStats::default()),
        })
    }

    /// The node id the agent runs as.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The node's public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// A handle on the agent's counters, valid before, during and after the run.
    pub fn handle(&self) -> AgentHandle {
        AgentHandle::new(self.node_id.clone(), Arc::clone(&self.stats))
    }

    /// Starts [`Agent::run`] on the current tokio runtime; returns the handle and the task.
    pub fn spawn(
        self,
        shutdown: watch::Receiver<bool>,
    ) -> (
        AgentHandle,
        tokio::task::JoinHandle<Result<AgentReport, AgentError>>,
    ) {
        let handle = self.handle();
        (handle, tokio::spawn(self.run(shutdown)))
    }

    /// Runs until `shutdown` becomes `true` (or its sender is dropped): register, heartbeat,
    /// lease → prove → complete. Returns the counters when it stopped; an error only when the
    /// coordinator refused the registration.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<AgentReport, AgentError> {
        let span = tracing::info_span!("agent", node = %self.node_id);
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(
        self,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<AgentReport, AgentError> {
        let hardware = hardware_report(self.gpu.as_ref(), self.config.hardware_timeout).await;
        tracing::info!(
            coordinator = %self.client.base_url(),
            public_key = %self.key.public_key(),
            gpus = hardware.gpus.len(),
            gpu_unavailable_reason = hardware.gpu_unavailable_reason.as_deref().unwrap_or(""),
            prover = self.prover.name(),
            prover_simd = bitsage_prover::cpu::simd_backend(),
            built_for = bitsage_prover::cpu::build_level(),
            "agent starting"
        );
        let sampler = GpuSampler::spawn(
            Arc::clone(&self.gpu),
            SamplerConfig {
                interval: self.config.sample_interval,
                ..SamplerConfig::default()
            },
        );
        let report_of = |stats: &AgentStats, node_id: &NodeId| AgentReport {
            node_id: node_id.clone(),
            stats: stats.snapshot(),
        };
        let ctx = Arc::new(Ctx {
            signing_key: self.key.signing_key().clone(),
            node_id: self.node_id,
            wallet: self.config.wallet,
            hardware,
            gpu: Arc::clone(&self.gpu),
            client: self.client,
            prover: self.prover,
            stats: self.stats,
            sampler,
            session: Mutex::new(None),
            session_stale: AtomicBool::new(false),
            unreachable: AtomicBool::new(false),
            last_sequence: AtomicU64::new(0),
            waiting: Mutex::new(None),
            config: self.config,
        });

        if !ctx.register_until_ok(&mut shutdown).await? {
            tracing::info!("agent stopped before it could register");
            return Ok(report_of(&ctx.stats, &ctx.node_id));
        }

        let (stop_heartbeats, heartbeats_stopped) = watch::channel(false);
        let heartbeat =
            tokio::spawn(heartbeat_loop(Arc::clone(&ctx), heartbeats_stopped).in_current_span());
        let result = ctx.work_loop(&mut shutdown).await;
        let _ = stop_heartbeats.send(true);
        let abort = heartbeat.abort_handle();
        if tokio::time::timeout(HEARTBEAT_STOP_TIMEOUT, heartbeat)
            .await
            .is_err()
        {
            abort.abort();
        }
        result?;
        let report = report_of(&ctx.stats, &ctx.node_id);
        tracing::info!(
            jobs_completed = report.stats.jobs_completed,
            probes_passed = report.stats.probes_passed,
            failures = report.stats.failures,
            "agent stopped"
        );
        Ok(report)
    }
}

/// What the coordinator told the node at registration.
#[derive(Debug, Clone, Copy)]
struct Session {
    coordinator_key: PublicKey,
    heartbeat_interval: Duration,
}

/// Everything the work loop and the heartbeat task share.
struct Ctx {
    config: AgentConfig,
    signing_key: SigningKey,
    node_id: NodeId,
    wallet: WalletAddress,
    hardware: bitsage_core::node::HardwareReport,
    /// The hardware source (attestation at each registration).
    gpu: DynGpuSource,
    client: CoordinatorClient,
    prover: DynProver,
    stats: Arc<AgentStats>,
    sampler: GpuSampler,
    session: Mutex<Option<Session>>,
    /// Set when the registration must be renewed before the next lease (the coordinator
    /// forgot the node, or its key changed).
    session_stale: AtomicBool,
    /// Whether the coordinator was unreachable at the last attempt (for reconnect counting).
    unreachable: AtomicBool,
    last_sequence: AtomicU64,
    /// The last reason the coordinator gave for giving no probe.
    waiting: Mutex<Option<String>>,
}

impl Ctx {
    fn backoff(&self) -> Backoff {
        Backoff::new(self.config.initial_backoff, self.config.max_backoff)
    }

    /// Records why the node waits; `true` when the reason changed (worth saying).
    fn note_waiting(&self, reason: &str) -> bool {
        let mut last = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() == Some(reason) {
            return false;
        }
        *last = Some(reason.to_string());
        true
    }

    fn session(&self) -> Option<Session> {
        *self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_heartbeat_interval(&self, secs: u64) {
        let interval = Duration::from_secs(secs.max(1)).min(MAX_HEARTBEAT_INTERVAL);
        if let Some(s) = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            s.heartbeat_interval = interval;
        }
    }

    fn heartbeat_interval(&self) -> Duration {
        self.session()
            .map_or(Duration::from_secs(10), |s| s.heartbeat_interval)
    }

    /// A heartbeat sequence: the Unix time in microseconds, or one more than the last one
    /// sent if the clock has not moved past it, so it grows across restarts too.
    fn next_sequence(&self) -> u64 {
        let clock = u64::try_from(now().timestamp_micros()).unwrap_or(0);
        let prev = self
            .last_sequence
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(clock.max(last.saturating_add(1)))
            })
            .unwrap_or_else(|v| v);
        clock.max(prev.saturating_add(1))
    }

    fn mark_reachable(&self) {
        if self.unreachable.swap(false, Ordering::SeqCst) {
            self.stats.bump(Counter::Reconnects);
            tracing::info!("coordinator reachable again");
        }
    }

    fn mark_unreachable(&self, err: &ClientError) {
        if !self.unreachable.swap(true, Ordering::SeqCst) {
            tracing::warn!(error = %err, "lost the coordinator; retrying with backoff");
        }
    }

    /// A fresh registration challenge of the coordinator (its nonce is answered by the GPU
    /// attestation and the wallet proof). `None` when the coordinator offers none (or sent
    /// one that cannot be read).
    async fn challenge(&self) -> Result<Option<AttestationChallenge>, ClientError> {
        let challenge = match self
            .client
            .attestation_challenge(PublicKey::of(&self.signing_key))
            .await
        {
            Ok(c) => c,
            Err(e) if e.is_not_found() => {
                tracing::info!("the coordinator offers no registration challenge");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = challenge.nonce() {
            tracing::warn!(error = %e, "unreadable registration challenge; registering without");
            return Ok(None);
        }
        Ok(Some(challenge))
    }

    /// Answers the challenge with NVML's report per GPU over its nonce, or `not_available`
    /// with the reason.
    async fn attestation(&self, challenge: AttestationChallenge) -> RegistrationAttestation {
        let timeout = self.config.hardware_timeout;
        let result = match challenge.nonce() {
            Ok(nonce) => tokio::time::timeout(timeout, self.gpu.attest(nonce))
                .await
                .unwrap_or_else(|_| {
                    HostAttestation::unavailable(format_args!("it timed out after {timeout:?}"))
                }),
            Err(e) => HostAttestation::unavailable(e),
        };
        RegistrationAttestation { challenge, result }
    }

    /// The wallet proof for this registration: a prepared one, or one signed now over the
    /// challenge for the chain the coordinator checks wallets on. `None` when there is no
    /// signer, no challenge, or the coordinator checks no wallets (it then stores the
    /// wallet unverified).
    async fn wallet_proof(
        &self,
        challenge: Option<&AttestationChallenge>,
    ) -> Result<Option<WalletProof>, ClientError> {
        let key = match &self.config.wallet_signer {
            WalletSigner::None => return Ok(None),
            WalletSigner::Prepared(p) => return Ok(Some((**p).clone())),
            WalletSigner::Key(k) => *k,
        };
        let Some(challenge) = challenge else {
            tracing::warn!("no challenge to sign the wallet proof over; registering unverified");
            return Ok(None);
        };
        let info = self.client.coordinator_info().await?;
        let Some(chain_id) = info.wallet_chain_id else {
            tracing::info!(
                "the coordinator checks no wallets (no chain): the wallet stays unverified"
            );
            return Ok(None);
        };
        match crate::wallet::sign_proof(&key, self.wallet, challenge, &info.network, &chain_id) {
            Ok(proof) => Ok(Some(proof)),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the wallet proof; registering without");
                Ok(None)
            }
        }
    }

    /// Registers once and records what the coordinator answered.
    async fn register_once(&self) -> Result<Registered, ClientError> {
        let mut hardware = self.hardware.clone();
        let challenge = self.challenge().await?;
        if let Some(c) = &challenge {
            hardware.attestation = Some(self.attestation(c.clone()).await);
        }
        let proof = self.wallet_proof(challenge.as_ref()).await?;
        let mut req = RegisterRequest::signed(
            &self.signing_key,
            self.node_id.clone(),
            self.wallet,
            hardware,
            self.config.agent_version.clone(),
            now(),
        );
        if let Some(proof) = proof {
            req = req.with_wallet_proof(proof, &self.signing_key);
        }
        if let Some(profile) = &self.config.profile {
            req = req.with_profile(profile.clone(), &self.signing_key);
        }
        if let Some(token) = &self.config.enrolment_token {
            req = req.with_enrolment_token(token.expose(), &self.signing_key);
        }
        let registered = self.client.register(&req).await?;
        let r = &registered.response;
        let interval =
            Duration::from_secs(r.heartbeat_interval_secs.max(1)).min(MAX_HEARTBEAT_INTERVAL);
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(Session {
            coordinator_key: r.coordinator_public_key,
            heartbeat_interval: interval,
        });
        self.mark_reachable();
        self.stats.bump(Counter::Registrations);
        self.stats.set_status(r.node.status);
        tracing::info!(
            created = registered.created,
            status = %r.node.status,
            heartbeat_interval_secs = r.heartbeat_interval_secs,
            coordinator_key = %r.coordinator_public_key,
            "registered with the coordinator"
        );
        Ok(registered)
    }

    /// Registers, retrying while the coordinator is unreachable or failing (5xx). `Ok(false)`
    /// when shutdown was asked for first; an error when the coordinator refused (4xx).
    async fn register_until_ok(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, AgentError> {
        let mut backoff = self.backoff();
        loop {
            if is_shutdown(shutdown) {
                return Ok(false);
            }
            match self.register_once().await {
                Ok(_) => return Ok(true),
                Err(e) if e.is_retryable() => {
                    if e.is_transport() {
                        self.mark_unreachable(&e);
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot register yet");
                    if sleep_or_shutdown(delay, shutdown).await {
                        return Ok(false);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "the coordinator refused the registration");
                    return Err(AgentError::Registration(e));
                }
            }
        }
    }

    /// Lease → prove → complete, until shutdown.
    async fn work_loop(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), AgentError> {
        let mut backoff = self.backoff();
        loop {
            if is_shutdown(shutdown) {
                return Ok(());
            }
            if self.session_stale.swap(false, Ordering::SeqCst)
                && !self.register_until_ok(shutdown).await?
            {
                return Ok(());
            }
            let req = LeaseRequest::signed(
                &self.signing_key,
                self.node_id.clone(),
                rand::random(),
                now(),
            );
            // Not raced against shutdown: a lease granted while we stopped listening would
            // sit with us until it expires. The answer comes within the request timeout.
            match self.client.lease(&req).await {
                Ok(resp) => {
                    self.mark_reachable();
                    backoff.reset();
                    self.stats.set_status(resp.node_status);
                    match resp.assignment {
                        Some(assignment) => self.work(assignment, shutdown).await,
                        None => {
                            let wait = Duration::from_secs(resp.retry_after_secs)
                                .clamp(Duration::from_millis(100), MAX_IDLE_WAIT);
                            match &resp.waiting_reason {
                                // Said once per change, not at every poll.
                                Some(reason) if self.note_waiting(reason) => {
                                    tracing::warn!(status = %resp.node_status, %reason, "no probe yet")
                                }
                                _ => tracing::debug!(status = %resp.node_status, ?wait, "no work"),
                            }
                            if sleep_or_shutdown(wait, shutdown).await {
                                return Ok(());
                            }
                        }
                    }
                }
                Err(e) if e.is_unauthorized() => {
                    // The coordinator does not know us (it lost its state) or our key.
                    self.mark_reachable();
                    tracing::warn!(error = %e, "lease refused; registering again");
                    if !self.register_until_ok(shutdown).await? {
                        return Ok(());
                    }
                    // A 401 that registering does not cure (clock skew) must not spin.
                    if sleep_or_shutdown(backoff.next_delay(), shutdown).await {
                        return Ok(());
                    }
                }
                Err(e) if e.is_forbidden() => {
                    self.mark_reachable();
                    let wait = self.config.max_backoff;
                    tracing::warn!(error = %e, ?wait, "the coordinator does not lease to this node now");
                    if sleep_or_shutdown(wait, shutdown).await {
                        return Ok(());
                    }
                }
                Err(e) => {
                    if e.is_transport() {
                        self.mark_unreachable(&e);
                    } else {
                        self.mark_reachable();
                        tracing::warn!(error = %e, "lease failed");
                    }
                    if sleep_or_shutdown(backoff.next_delay(), shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Checks an assignment is for this node (and a probe ticket is the coordinator's).
    fn accept(&self, assignment: &Assignment) -> bool {
        match assignment {
            Assignment::Job { lease, .. } => {
                if lease.lease.node_id != self.node_id {
                    tracing::warn!(job = %lease.spec.id, holder = %lease.lease.node_id, "lease is for another node; ignoring it");
                    return false;
                }
            }
            Assignment::Probe { ticket } => {
                if ticket.node_id != self.node_id {
                    tracing::warn!(job = %ticket.spec.id, "probe is for another node; ignoring it");
                    return false;
                }
                let signed_by_coordinator = self
                    .session()
                    .is_some_and(|s| ticket.verify(&s.coordinator_key).is_ok());
                if !signed_by_coordinator {
                    // The coordinator may have a new key: registering again tells us.
                    tracing::warn!(job = %ticket.spec.id, "probe ticket not signed by the registered coordinator key; registering again");
                    self.session_stale.store(true, Ordering::SeqCst);
                    return false;
                }
            }
        }
        true
    }

    /// Proves one assignment and hands it in (or gives it back).
    async fn work(&self, assignment: Assignment, shutdown: &mut watch::Receiver<bool>) {
        if !self.accept(&assignment) {
            self.stats.bump(Counter::Failures);
            return;
        }
        if is_shutdown(shutdown) {
            self.release(&assignment, SHUTDOWN_REASON).await;
            return;
        }
        let spec = assignment.spec().clone();
        let what = match &assignment {
            Assignment::Job { .. } => "job",
            Assignment::Probe { .. } => "probe",
        };
        tracing::info!(job = %spec.id, kind = spec.kind.name(), what, "proving");
        self.stats.set_proving(true);
        let prover = Arc::clone(&self.prover);
        let mut task = tokio::spawn(async move { prover.prove(&spec).await });
        let mut deadline = None;
        let joined = tokio::select! {
            r = &mut task => Some(r),
            _ = shutdown_signal(shutdown) => {
                let grace = self.config.shutdown_grace;
                tracing::info!(?grace, "shutdown asked while proving; finishing the proof");
                let d = Instant::now() + grace;
                deadline = Some(d);
                match tokio::time::timeout_at(d, &mut task).await {
                    Ok(r) => Some(r),
                    Err(_) => {
                        task.abort();
                        None
                    }
                }
            }
        };
        self.stats.set_proving(false);
        let envelope = match joined {
            None => {
                tracing::warn!("the proof did not finish within the shutdown grace period");
                self.release(&assignment, SHUTDOWN_REASON).await;
                return;
            }
            Some(Ok(Ok(envelope))) => envelope,
            Some(Ok(Err(e))) => {
                tracing::warn!(job = %assignment.spec().id, error = %e, "prover failed");
                self.stats.bump(Counter::Failures);
                self.release(&assignment, &format!("prover failed: {e}"))
                    .await;
                return;
            }
            Some(Err(join)) => {
                tracing::error!(job = %assignment.spec().id, error = %join, "the proving task failed");
                self.stats.bump(Counter::Failures);
                self.release(&assignment, "prover failed: the proving task panicked")
                    .await;
                return;
            }
        };
        self.submit(&assignment, envelope, deadline, shutdown).await;
    }

    /// The completion of `assignment` with `envelope` (signature left to the caller).
    fn completion(
        &self,
        assignment: &Assignment,
        envelope: ProofEnvelope,
    ) -> Result<CompleteRequest, bitsage_core::Error> {
        let sent_at = now();
        let (job_id, lease_id, probe, receipt, receipt_signature) = match assignment {
            Assignment::Job { lease, fee, net } => {
                let coordinator_key = self
                    .session()
                    .map(|s| s.coordinator_key)
                    .ok_or_else(|| bitsage_core::Error::Conflict("not registered".into()))?;
                let body = ReceiptBody {
                    // One receipt per job: the coordinator requires its id to be the job's.
                    id: ReceiptId(lease.spec.id.0),
                    job_id: lease.spec.id,
                    kind: lease.spec.kind.name().into(),
                    node_id: self.node_id.clone(),
                    node_key: PublicKey::of(&self.signing_key),
                    coordinator_key,
                    output: envelope.output.clone(),
                    proof_hash: envelope.proof_hash,
                    payment: lease.payment,
                    fee: *fee,
                    net: *net,
                    completed_at: sent_at,
                };
                body.check_amounts()?;
                let sig = body.sign_as_node(&self.signing_key)?;
                (
                    lease.spec.id,
                    Some(lease.lease.lease_id),
                    None,
                    Some(body),
                    Some(sig),
                )
            }
            Assignment::Probe { ticket } => {
                (ticket.spec.id, None, Some(ticket.clone()), None, None)
            }
        };
        Ok(CompleteRequest {
            node_id: self.node_id.clone(),
            job_id,
            lease_id,
            probe,
            envelope,
            receipt,
            receipt_signature,
            envelope_digest: Hash32([0; 32]),
            sent_at,
            signature: SignatureBytes([0; 64]),
        })
    }

    /// Hands in a proof, retrying while the coordinator is unreachable, until it is accepted
    /// or refused. Past a shutdown grace deadline the lease is given back instead.
    async fn submit(
        &self,
        assignment: &Assignment,
        envelope: ProofEnvelope,
        mut deadline: Option<Instant>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let job_id = assignment.spec().id;
        let mut req = match self.completion(assignment, envelope) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(job = %job_id, error = %e, "cannot build the completion");
                self.stats.bump(Counter::Failures);
                self.release(assignment, &format!("agent error: {e}")).await;
                return;
            }
        };
        let mut backoff = self.backoff();
        loop {
            // A fresh `sent_at` and signature per attempt: the coordinator refuses a signed
            // request it has seen (replay protection), and a retry must still get through
            // when the first attempt was processed but its answer lost. The receipt and its
            // signature stay the same.
            req.sent_at = now();
            req = req.sign(&self.signing_key);
            let attempt = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.client.complete(&req)).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::warn!(job = %job_id, "could not hand in the proof within the shutdown grace period");
                        self.release(assignment, SHUTDOWN_REASON).await;
                        return;
                    }
                },
                None => self.client.complete(&req).await,
            };
            match attempt {
                Ok(resp) => {
                    self.mark_reachable();
                    self.stats.set_status(resp.node_status);
                    match (&assignment, &resp.receipt) {
                        (Assignment::Probe { .. }, _) => {
                            self.stats.bump(Counter::ProbesPassed);
                            tracing::info!(job = %job_id, status = %resp.node_status, security_bits = resp.security_bits, "probe accepted");
                        }
                        (Assignment::Job { .. }, receipt) => {
                            self.stats.bump(Counter::JobsCompleted);
                            tracing::info!(
                                job = %job_id,
                                security_bits = resp.security_bits,
                                net = receipt.as_ref().map(|r| r.net_formatted.as_str()).unwrap_or("-"),
                                "job completed; receipt countersigned"
                            );
                        }
                    }
                    return;
                }
                Err(e) if e.is_retryable() => {
                    if e.is_transport() {
                        self.mark_unreachable(&e);
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(job = %job_id, error = %e, retry_in = ?delay, "proof not handed in yet; retrying");
                    if deadline.is_none() && is_shutdown(shutdown) {
                        deadline = Some(Instant::now() + self.config.shutdown_grace);
                    }
                    match deadline {
                        Some(d) => {
                            if Instant::now() + delay >= d {
                                tracing::warn!(job = %job_id, "shutdown grace period over before the proof was handed in");
                                self.release(assignment, SHUTDOWN_REASON).await;
                                return;
                            }
                            tokio::time::sleep(delay).await;
                        }
                        None => {
                            if sleep_or_shutdown(delay, shutdown).await {
                                deadline = Some(Instant::now() + self.config.shutdown_grace);
                            }
                        }
                    }
                }
                Err(e) => {
                    self.mark_reachable();
                    self.stats.bump(Counter::Failures);
                    if e.kind() == Some("proof_rejected") {
                        tracing::error!(job = %job_id, error = %e, "the coordinator rejected the proof");
                        return;
                    }
                    tracing::warn!(job = %job_id, error = %e, "the coordinator refused the completion");
                    if e.is_unauthorized() || e.status() == Some(400) {
                        // It forgot us, or our view of it (its key) is out of date.
                        self.session_stale.store(true, Ordering::SeqCst);
                    }
                    if e.status() == Some(400) {
                        self.release(assignment, "completion refused by the coordinator")
                            .await;
                    }
                    return;
                }
            }
        }
    }

    /// Gives a leased job back (best effort, within [`RELEASE_BUDGET`]); nothing to do for
    /// a probe.
    async fn release(&self, assignment: &Assignment, reason: &str) {
        let Assignment::Job { lease, .. } = assignment else {
            return;
        };
        let reason = fail_reason(reason);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let until = Instant::now() + RELEASE_BUDGET;
        loop {
            let req = FailRequest::signed(&self.signing_key, &lease.reference(), &reason, now());
            match tokio::time::timeout_at(until, self.client.fail(&req)).await {
                Ok(Ok(job)) => {
                    self.stats.bump(Counter::LeasesReleased);
                    tracing::info!(job = %lease.spec.id, %reason, status = %job.status, "lease given back");
                    return;
                }
                Ok(Err(e)) if e.is_retryable() && Instant::now() < until => {
                    let delay = backoff.next_delay();
                    if Instant::now() + delay >= until {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(job = %lease.spec.id, error = %e, "could not give the lease back");
                    return;
                }
                Err(_) => break,
            }
        }
        tracing::warn!(
            job = %lease.spec.id,
            expires_at = %lease.lease.expires_at,
            "could not give the lease back in time; the coordinator re-queues the job when the lease expires"
        );
    }
}

/// The heartbeat task: one heartbeat now, then one per interval (as the coordinator last
/// set it) until `stop`.
async fn heartbeat_loop(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut last_sample_at: Option<Timestamp> = None;
    // At most one immediate retry after registering again, so a heartbeat that registering
    // does not cure cannot spin.
    let mut just_registered = false;
    loop {
        let snap = ctx.sampler.snapshot();
        let collector = snap.collector_status();
        // Only a reading that is current and not sent before; a GPU-less host sends none.
        let gpu_samples = match (snap.up, snap.samples, snap.taken_at) {
            (true, Some(samples), Some(taken)) if last_sample_at != Some(taken) => {
                last_sample_at = Some(taken);
                samples.as_ref().clone()
            }
            _ => Vec::new(),
        };
        let load = snap.host.and_then(|h| h.load_average_1m);
        let req = HeartbeatRequest::unsigned(
            ctx.node_id.clone(),
            ctx.next_sequence(),
            now(),
            load,
            ctx.config.agent_version.clone(),
            gpu_samples,
        )
        .with_gpu_collector(collector)
        .sign(&ctx.signing_key);
        let mut again_now = false;
        match ctx.client.heartbeat(&req).await {
            Ok(resp) => {
                ctx.mark_reachable();
                ctx.stats.bump(Counter::HeartbeatsSent);
                ctx.stats.set_status(resp.status);
                ctx.set_heartbeat_interval(resp.heartbeat_interval_secs);
            }
            Err(e) if e.is_unauthorized() => {
                ctx.mark_reachable();
                ctx.stats.bump(Counter::HeartbeatsFailed);
                tracing::warn!(error = %e, "heartbeat refused; registering again");
                match ctx.register_once().await {
                    Ok(_) => again_now = !just_registered,
                    Err(e) => tracing::warn!(error = %e, "registering again failed"),
                }
            }
            Err(e) => {
                ctx.stats.bump(Counter::HeartbeatsFailed);
                if e.is_transport() {
                    ctx.mark_unreachable(&e);
                } else {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }
        just_registered = again_now;
        if again_now {
            continue;
        }
        if sleep_or_shutdown(ctx.heartbeat_interval(), &mut stop).await {
            return;
        }
    }
}

/// A failure reason the coordinator accepts: printable, 1 to [`MAX_FAIL_REASON_LEN`] bytes.
fn fail_reason(reason: &str) -> String {
    let mut out = String::new();
    for c in reason.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if out.len() + c.len_utf8() > MAX_FAIL_REASON_LEN {
            break;
        }
        out.push(c);
    }
    if out.trim().is_empty() {
        "failed".into()
    } else {
        out
    }
}

/// Whether shutdown was asked for (the value is `true` or the sender is gone).
fn is_shutdown(rx: &watch::Receiver<bool>) -> bool {
    *rx.borrow() || rx.has_changed().is_err()
}

/// Completes when shutdown is asked for.
async fn shutdown_signal(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Sleeps `d`; `true` when shutdown was asked for first.
async fn sleep_or_shutdown(d: Duration, rx: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => is_shutdown(rx),
        _ = shutdown_signal(rx) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_reasons_are_made_acceptable() {
        assert_eq!(fail_reason("bad\nthing"), "bad thing");
        assert_eq!(fail_reason(""), "failed");
        let long = "é".repeat(MAX_FAIL_REASON_LEN);
        let r = fail_reason(&long);
        assert!(r.len() <= MAX_FAIL_REASON_LEN && !r.is_empty());
    }

    #[tokio::test]
    async fn shutdown_is_seen_when_set_or_when_the_sender_is_dropped() {
        let (tx, mut rx) = watch::channel(false);
        assert!(!is_shutdown(&rx));
        assert!(!sleep_or_shutdown(Duration::from_millis(1), &mut rx).await);
        tx.send_replace(true);
        assert!(is_shutdown(&rx));
        assert!(sleep_or_shutdown(Duration::from_secs(3600), &mut rx).await);
        let (tx, mut rx) = watch::channel(false);
        drop(tx);
        assert!(is_shutdown(&rx));
        assert!(sleep_or_shutdown(Duration::from_secs(3600), &mut rx).await);
    }
}
