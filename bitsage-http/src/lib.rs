#![doc = include_str!("../README.md")]

pub mod accounts;
pub mod api;
pub mod auth;
pub mod client;
pub mod console;
pub mod contracts;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod layers;
pub mod live;
pub mod metrics;
pub mod onboarding;
pub mod openapi;
pub mod operations;
pub mod ratelimit;
pub mod routes;
pub mod seed;
pub mod server;
pub mod service;
#[cfg(feature = "test-utils")]
pub mod test_utils;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use bitsage_core::crypto::PublicKey;
use bitsage_core::deployment::DeploymentKey;
use bitsage_core::service::{Coordinator, CoordinatorPolicy};
use bitsage_core::{
    DynChainSource, DynCoordinatorStore, DynEventBus, DynEventLog, DynJobStore, DynProofStore,
    DynProver,
};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use error::{ApiError, ApiResult};
pub use extract::{ApiJson, ApiPath, ApiQuery};

/// Settings of the HTTP surface only; the deployment's rules (fee, lease, probe, timeouts)
/// are the [`CoordinatorPolicy`] of the [`Coordinator`] behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest accepted request body, bytes (default 64 KiB); larger → 413.
    pub body_limit_bytes: usize,
    /// Largest accepted proof submission (`POST /api/jobs/complete`), bytes (default 16 MiB).
    pub proof_body_limit_bytes: usize,
    /// Largest accepted registration (`POST /api/nodes/register`), bytes (default 1 MiB:
    /// attestation reports are up to 12 KiB per GPU, hex-encoded).
    pub register_body_limit_bytes: usize,
    /// How long the readiness check waits for the store (default 2 s).
    pub readiness_timeout: Duration,
    /// How long a dashboard response waits for its slowest source (default 2 s); a source
    /// that misses it is reported `unavailable` in its own field group.
    pub dashboard_budget: Duration,
    /// How long a `GET /api/validator/status` answer is reused for the same wallet (default
    /// 5 s, at most [`dashboard::MAX_STATUS_CACHE_TTL`]; zero: never). Its age is in the
    /// answer's `Age` header and `generated_at`.
    pub status_cache_ttl: Duration,
    /// Connection cap and timeouts ([`server::serve`] and the router's deadlines).
    pub limits: server::ServerLimits,
    /// Origins allowed to call the API from a browser (CORS); empty (the default): same
    /// origin only.
    pub cors_origins: Vec<String>,
    /// Requests per minute per route class ([`ratelimit`]).
    pub rate_limits: ratelimit::RateLimits,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 64 * 1024,
            proof_body_limit_bytes: 16 * 1024 * 1024,
            register_body_limit_bytes: 1024 * 1024,
            readiness_timeout: Duration::from_secs(2),
            dashboard_budget: Duration::from_secs(2),
            status_cache_ttl: Duration::from_secs(5),
            limits: server::ServerLimits::default(),
            cors_origins: Vec::new(),
            rate_limits: ratelimit::RateLimits::default(),
        }
    }
}

/// What every handler shares: one reference-counted handle on [`AppStateInner`], whose fields
/// it dereferences to (`state.coordinator`, `state.config`, …).
///
/// Cloning it is one atomic increment. axum clones the state for every middleware that takes
/// it and for every handler, on every request; cloning the fields themselves (some twenty
/// `Arc`s and the configuration's strings) cost about a fifth of the server's CPU per heartbeat
/// (measured with `perf`, BENCHMARKS.md "Network scale"). Changing a field through `&mut`
/// (the builder methods, tests) copies the fields first when the handle is shared
/// ([`Arc::make_mut`]): other holders keep what they had.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut AppStateInner {
        Arc::make_mut(&mut self.0)
    }
}

/// The fields of [`AppState`].
///
/// Nothing here is per-process state that coordinators of one deployment must agree on: the
/// store, the replay log and the proof store are shared backends, and the deployment key is
/// the same file or secret on every coordinator.
#[derive(Clone)]
pub struct AppStateInner {
    /// The use cases (register, heartbeat, submit, lease, complete, fail, sweep) over the
    /// ports, under the deployment's policy. Handlers that change anything call this.
    pub coordinator: Coordinator,
    /// The coordinator's store, for the read-only views.
    pub store: DynJobStore,
    /// The chain source for stake, rewards and reputation; `None` until one is configured
    /// (the dashboard then reports those fields `unavailable` with the reason).
    pub chain: Option<DynChainSource>,
    /// The contracts read and the indexer's status, for `GET /api/contracts` (`None`: no
    /// chain configured).
    pub chain_info: Option<Arc<dyn contracts::ChainInfo>>,
    /// Where accepted proof envelopes are kept, by hash.
    pub proofs: DynProofStore,
    /// The deployment's key (countersigns receipts, signs probe tickets and attestation
    /// challenges), the same on every coordinator of the network.
    pub deployment: Arc<DeploymentKey>,
    /// The store's outbox of domain events.
    pub outbox: DynEventLog,
    /// Live events for this coordinator's WebSocket and SSE clients.
    pub events: live::EventHub,
    /// Settings of the HTTP surface.
    pub config: HttpConfig,
    /// Users, sessions, API keys and the audit log ([`auth`] enforces who may call what).
    pub accounts: bitsage_core::service::accounts::Accounts,
    /// This coordinator's rate-limit buckets ([`ratelimit`]).
    pub limiter: ratelimit::SharedLimiter,
    /// When this process's state was built (`uptime_seconds` of `GET /health`).
    pub started: std::time::Instant,
    /// The console Overview's last summary, shared by concurrent viewers for a moment
    /// ([`console`]); a cache of a read, not state.
    pub(crate) overview: console::OverviewCache,
    /// `GET /api/validator/status` answers reused for a few seconds ([`dashboard::StatusCache`]).
    pub(crate) status_cache: dashboard::StatusCache,
    /// The request counters and histograms `/metrics` exports ([`metrics`]); this process's.
    pub metrics: Arc<metrics::Metrics>,
}

impl AppState {
    /// State over `store` (also the replay log and the outbox), verifying with `verifier`,
    /// keeping proofs in `proofs`, signing with `deployment`, under the default
    /// [`CoordinatorPolicy`] (another with [`AppState::with_policy`]). No chain source: add
    /// one with [`AppState::with_chain`].
    pub fn new(
        store: DynCoordinatorStore,
        verifier: DynProver,
        proofs: DynProofStore,
        deployment: DeploymentKey,
        config: HttpConfig,
    ) -> Self {
        let accounts = bitsage_core::service::accounts::Accounts::new(
            store.clone(),
            store.clone(),
            &deployment,
        );
        let deployment = Arc::new(deployment);
        let events = live::EventHub::new(store.clone(), None, live::LiveSettings::default());
        let coordinator = Coordinator::new(
            store.clone(),
            verifier,
            proofs.clone(),
            deployment.clone(),
            CoordinatorPolicy::default(),
        );
        Self(Arc::new(AppStateInner {
            coordinator,
            store: store.clone(),
            outbox: store,
            events,
            chain: None,
            chain_info: None,
            proofs,
            deployment,
            limiter: Arc::new(ratelimit::Limiter::new(config.rate_limits.clone())),
            config,
            accounts,
            started: std::time::Instant::now(),
            overview: console::OverviewCache::default(),
            status_cache: dashboard::StatusCache::default(),
            metrics: Arc::new(metrics::Metrics::new()),
        }))
    }

    /// The same state under `policy`.
    pub fn with_policy(mut self, policy: CoordinatorPolicy) -> Self {
        self.coordinator = self.coordinator.clone().with_policy(policy);
        self
    }

    /// The same state checking node wallets with `wallets` (a chain): nodes then register
    /// only with a proven wallet ([`bitsage_core::wallet`]).
    pub fn with_wallet_verifier(
        mut self,
        wallets: bitsage_core::wallet::DynWalletVerifier,
    ) -> Self {
        self.coordinator = self.coordinator.clone().with_wallet_verifier(wallets);
        self
    }

    /// The same state gating work on stake read from `chain` ([`bitsage_core::service::stake`]).
    pub fn with_stake_gate(mut self, chain: bitsage_core::DynChainSource) -> Self {
        self.coordinator = self.coordinator.clone().with_stake_gate(chain);
        self
    }

    /// The same state checking job payers' signatures with `payers` (with a chain, the
    /// account contracts; without, the keys stored with local credit). Without one, job
    /// submissions are refused (503): a payment is never accepted unsigned.
    pub fn with_payer_verifier(mut self, payers: bitsage_core::wallet::DynWalletVerifier) -> Self {
        self.coordinator = self.coordinator.clone().with_payer_verifier(payers);
        self
    }

    /// The same state reading payers' limits from `funding` (default: local credit).
    pub fn with_funding(mut self, funding: bitsage_core::funding::DynFundingSource) -> Self {
        self.coordinator = self.coordinator.clone().with_funding(funding);
        self
    }

    /// The same state settling verified work through `settlement`
    /// ([`bitsage_core::service::settle`]).
    pub fn with_settlement(mut self, settlement: bitsage_core::settlement::DynSettlement) -> Self {
        self.coordinator = self.coordinator.clone().with_settlement(settlement);
        self
    }

    /// The deployment's policy.
    pub fn policy(&self) -> &CoordinatorPolicy {
        self.coordinator.policy()
    }

    /// The same state with live events woken by `bus` (without one the hub polls the outbox)
    /// and limited by `settings`.
    pub fn with_live_events(
        mut self,
        bus: Option<DynEventBus>,
        settings: live::LiveSettings,
    ) -> Self {
        self.events = live::EventHub::new(self.outbox.clone(), bus, settings);
        self
    }

    /// The same state reading the chain through `chain`.
    pub fn with_chain(mut self, chain: DynChainSource) -> Self {
        self.chain = Some(chain);
        self
    }

    /// The same state answering `GET /api/contracts` from `info`.
    pub fn with_chain_info(mut self, info: Arc<dyn contracts::ChainInfo>) -> Self {
        self.chain_info = Some(info);
        self
    }

    /// The deployment's public key.
    pub fn public_key(&self) -> PublicKey {
        self.deployment.public_key()
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for AppStateInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `DeploymentKey`'s Debug never prints the secret key.
        f.debug_struct("AppState")
            .field("coordinator", &self.coordinator)
            .field("chain", &self.chain)
            .field("chain_info", &self.chain_info)
            .field("config", &self.config)
            .field("accounts", &self.accounts)
            .finish()
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal(&"a request handler panicked").into_response()
}

/// The whole API over `state`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let proof_limit = state.config.proof_body_limit_bytes;
    let register_limit = state.config.register_body_limit_bytes;
    let request_timeout = state.config.limits.request_timeout;
    let body_timeout = state.config.limits.body_read_timeout;
    let cors_origins = state.config.cors_origins.clone();
    let mut app = Router::new()
        .route(
            "/api/nodes/register",
            post(routes::register).layer(DefaultBodyLimit::max(register_limit)),
        )
        .route(
            "/api/nodes/attestation-challenge",
            get(routes::attestation_challenge),
        )
        .route("/api/nodes/heartbeat", post(routes::heartbeat))
        .route("/api/nodes", get(routes::list_nodes))
        .route("/api/nodes/{id}", get(routes::node_detail))
        .route(
            "/api/nodes/{id}/attestation",
            get(routes::attestation_evidence),
        )
        .route("/api/jobs", post(routes::submit_job))
        .route("/api/jobs/{id}", get(routes::get_job))
        .route("/api/jobs/lease", post(routes::lease))
        .route(
            "/api/jobs/complete",
            post(routes::complete).layer(DefaultBodyLimit::max(proof_limit)),
        )
        .route("/api/jobs/fail", post(routes::fail))
        .route("/api/receipts", get(routes::list_receipts))
        .route("/api/receipts/{id}", get(routes::receipt))
        .route(
            "/api/receipts/{id}/inclusion",
            get(routes::receipt_inclusion),
        )
        .route("/api/earnings/{node}", get(routes::earnings))
        .route("/api/network/stats", get(routes::network_stats))
        .route("/api/contracts", get(routes::contracts))
        .route("/api/coordinator", get(routes::coordinator))
        .route("/api/events", get(live::sse))
        .route("/ws", get(live::ws_all))
        .route("/ws/jobs", get(live::ws_jobs))
        .route("/ws/workers", get(live::ws_workers))
        .route("/ws/staking", get(live::ws_staking))
        .route("/.well-known/bitsage.json", get(routes::coordinator))
        .route("/metrics", get(routes::metrics))
        .route("/livez", get(routes::livez))
        .route("/health/live", get(routes::livez))
        .route("/readyz", get(routes::readyz))
        .route("/health", get(routes::health))
        .route("/health/ready", get(routes::readyz))
        .route("/api/auth/login", post(accounts::login))
        .route("/api/auth/refresh", post(accounts::refresh))
        .route("/api/auth/logout", post(accounts::logout))
        .route("/api/users/me", get(accounts::me))
        .route(
            "/api/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route("/api/users/{id}", patch(accounts::update_user))
        .route(
            "/api/orgs",
            get(accounts::list_orgs).post(accounts::create_org),
        )
        .route("/api/orgs/{id}/wallets", post(accounts::add_org_wallet))
        .route(
            "/api/orgs/{id}/wallets/{wallet}",
            delete(accounts::remove_org_wallet),
        )
        .route(
            "/api/keys",
            get(accounts::list_keys).post(accounts::create_key),
        )
        .route("/api/keys/{id}", delete(accounts::revoke_key))
        .route("/api/enrolments", post(accounts::create_enrolment))
        .route("/api/audit", get(accounts::audit))
        .merge(dashboard::routes())
        .merge(operations::routes())
        .merge(seed::routes())
        // Inner: the limit (keyed by the caller `authorize` found); outer: `authorize`.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        // The console's pages check their caller themselves (outside the API's table).
        .merge(console::routes(state.clone()))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(move |req, next| {
            layers::deadline(request_timeout, req, next)
        }))
        .layer(RequestBodyTimeoutLayer::new(body_timeout));
    for (name, value) in layers::security_headers() {
        app = app.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    if let Some(cors) = layers::cors(&cors_origins) {
        app = app.layer(cors);
    }
    let request_metrics = layers::RequestMetricsLayer::new(state.metrics.clone());
    app.layer(axum::middleware::from_fn(layers::request_id))
        // Outermost: every answer is counted, whatever layer produced it.
        .layer(request_metrics)
        .with_state(state)
}
