//! The typed client agents (and tools) use to talk to a coordinator.
//!
//! [`CoordinatorClient`] wraps one `reqwest` connection pool and has one method per route the
//! agent side needs. Every non-2xx answer is decoded from the API's error shape
//! (`{"error":{"type","message"}}`) into [`ClientError::Api`]; a coordinator that cannot be
//! reached (connection refused, reset, timed out) is [`ClientError::Transport`], which callers
//! retry with backoff.
//!
//! **Plain HTTP only.** This build of `reqwest` has no TLS backend, so `https://` URLs are
//! refused by [`CoordinatorClient::new`]; put a TLS-terminating proxy on the agent's host (or
//! run on a trusted network) when the coordinator is remote. Every node message is signed
//! with the node key, so the signatures do not depend on the transport.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitsage_core::crypto::PublicKey;
use bitsage_core::{JobId, NodeId, ReceiptId};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{
    AttestationEvidence, ChallengeQuery, ChallengeResponse, CompleteRequest, CompleteResponse,
    ErrorBody, FailRequest, HealthResponse, HeartbeatRequest, HeartbeatResponse, JobView,
    LeaseRequest, LeaseResponse, NetworkStats, NodeDetail, Page, ReceiptBundle, ReceiptListQuery,
    ReceiptQuery, ReceiptView, RegisterRequest, RegisterResponse, SubmitJobRequest,
};

/// `api/nodes/{id}{suffix}`. Node ids are limited to `A-Z a-z 0-9 . _ -`; only "." and ".."
/// would be special in a path, and `NodeId` allows them, so those are refused here.
fn node_path(id: &NodeId, suffix: &str) -> Result<String, ClientError> {
    if matches!(id.as_str(), "." | "..") {
        return Err(ClientError::InvalidUrl(format!(
            "node id {id:?} cannot be used in a path"
        )));
    }
    Ok(format!("api/nodes/{id}{suffix}"))
}

/// Default per-request timeout: a completion carries a proof of up to a few MiB and the
/// coordinator verifies it before answering.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long establishing a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest piece of a non-JSON error body quoted in [`ClientError::Api`].
const MAX_QUOTED_BODY: usize = 256;

/// What went wrong talking to a coordinator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The coordinator answered with an error status; `kind` and `message` come from its
    /// error body (`{"error":{"type","message"}}`).
    #[error("coordinator answered {status} {kind}: {message}")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The error's `type` (`invalid_request`, `unauthorized`, `proof_rejected`, ...);
        /// `http_error` when the body was not in the API's error shape (e.g. a proxy's page).
        kind: String,
        /// The error's `message`.
        message: String,
    },
    /// The coordinator could not be reached, or the exchange broke off (connection refused or
    /// reset, timeout). Transient: retry with backoff.
    #[error("cannot reach the coordinator: {}", error_chain(.0))]
    Transport(#[source] reqwest::Error),
    /// A success answer whose body is not the expected JSON.
    #[error("unexpected answer from the coordinator: {0}")]
    Decode(#[source] serde_json::Error),
    /// The coordinator URL is not usable.
    #[error("invalid coordinator URL: {0}")]
    InvalidUrl(String),
}

impl ClientError {
    /// Whether the coordinator could not be reached (retry with backoff).
    pub fn is_transport(&self) -> bool {
        matches!(self, ClientError::Transport(_))
    }

    /// The HTTP status of an [`ClientError::Api`] answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error `type` of an [`ClientError::Api`] answer.
    pub fn kind(&self) -> Option<&str> {
        match self {
            ClientError::Api { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// A 401: unknown node, bad signature, replayed request or clock skew.
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// A 403: the node may not do this now (e.g. it is quarantined).
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }

    /// A 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// A 4xx answer: the request itself was refused; sending it again will not help.
    pub fn is_client_error(&self) -> bool {
        self.status().is_some_and(|s| (400..500).contains(&s))
    }

    /// A 5xx answer: the coordinator failed (or is not ready); may be retried later.
    pub fn is_server_error(&self) -> bool {
        self.status().is_some_and(|s| s >= 500)
    }

    /// Whether retrying the same call later may succeed: transport failures, 5xx, the 4xx
    /// that mean "not now" (408 request timeout, 429 too many requests), and a body that was
    /// altered on the way (`transport_error`: send it again).
    pub fn is_retryable(&self) -> bool {
        self.is_transport()
            || self.is_server_error()
            || matches!(self.status(), Some(408) | Some(429))
            || self.kind() == Some("transport_error")
    }
}

/// `reqwest::Error`'s own text omits its causes ("error sending request"); add them.
fn error_chain(err: &reqwest::Error) -> String {
    let mut out = err.to_string();
    let mut next = std::error::Error::source(err);
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// What the coordinator answered.
    pub response: RegisterResponse,
    /// `true` when the node was created (201), `false` when it was already registered with
    /// this key (200).
    pub created: bool,
}

/// A typed HTTP client for one coordinator, or for several coordinators of one deployment
/// with failover ([`CoordinatorClient::with_failover`]). Cheap to clone (the connection pool
/// and the choice of coordinator are shared).
///
/// Failover: requests go to the current coordinator. When it cannot be connected to, the
/// same request goes to the next one at once (it was never sent, so nothing is done twice);
/// when the exchange broke off after sending (a timeout, a reset), the error is returned —
/// the caller re-signs and retries — and the next request goes to the next coordinator.
///
/// Plain HTTP only (no TLS in this build; see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct CoordinatorClient {
    http: reqwest::Client,
    bases: Arc<Vec<Url>>,
    current: Arc<AtomicUsize>,
    timeout: Duration,
    bearer_token: Option<String>,
}

/// Checks and normalises one coordinator base URL.
fn parse_base(base_url: &str) -> Result<Url, ClientError> {
    let mut base = Url::parse(base_url.trim())
        .map_err(|e| ClientError::InvalidUrl(format!("{base_url:?}: {e}")))?;
    match base.scheme() {
        "http" => {}
        "https" => {
            return Err(ClientError::InvalidUrl(format!(
                "{base_url:?}: https is not supported by this build (plain HTTP only); \
                     use a TLS-terminating proxy on this host"
            )))
        }
        other => {
            return Err(ClientError::InvalidUrl(format!(
                "{base_url:?}: scheme {other:?} is not http"
            )))
        }
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(ClientError::InvalidUrl(format!("{base_url:?}: no host")));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(ClientError::InvalidUrl(format!(
            "{base_url:?}: must not have a query or fragment"
        )));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(ClientError::InvalidUrl(format!(
            "{base_url:?}: must not carry credentials"
        )));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

impl CoordinatorClient {
    /// A client for the coordinator at `base_url` (e.g. `http://127.0.0.1:8080`; a path
    /// prefix such as `http://host/bitsage/` is kept). Refuses URLs that are not `http://`
    /// with a host, or that carry a query, fragment or credentials.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_failover(&[base_url])
    }

    /// A client for several coordinators of one deployment (same store, same deployment key),
    /// tried in this order (see the type's docs for when it moves on). At least one URL; each
    /// is checked as by [`CoordinatorClient::new`]; duplicates are dropped.
    pub fn with_failover<S: AsRef<str>>(base_urls: &[S]) -> Result<Self, ClientError> {
        let mut bases: Vec<Url> = Vec::with_capacity(base_urls.len());
        for u in base_urls {
            let base = parse_base(u.as_ref())?;
            if !bases.contains(&base) {
                bases.push(base);
            }
        }
        if bases.is_empty() {
            return Err(ClientError::InvalidUrl("no coordinator URL given".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("bitsage-http-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::InvalidUrl(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            bases: Arc::new(bases),
            current: Arc::new(AtomicUsize::new(0)),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            bearer_token: None,
        })
    }

    /// The same client with another per-request timeout (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]); a request that takes longer fails with
    /// [`ClientError::Transport`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same client sending `Authorization: Bearer <token>` (an access token or an API
    /// key) with every request.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// The base URL of the coordinator requests go to now (always ending in `/`).
    pub fn base_url(&self) -> &Url {
        &self.bases[self.current_index()]
    }

    /// Every coordinator this client may use, in failover order.
    pub fn base_urls(&self) -> &[Url] {
        &self.bases
    }

    fn current_index(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.bases.len()
    }

    /// Moves on from coordinator `from` (unless another request already did).
    fn fail_over(&self, from: usize, error: &reqwest::Error) {
        let next = (from + 1) % self.bases.len();
        if self
            .current
            .compare_exchange(from, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                from = %self.bases[from],
                to = %self.bases[next],
                error = %error_chain(error),
                "coordinator unreachable; failing over"
            );
        }
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request and returns the status and the body of a 2xx answer; any other
    /// status becomes [`ClientError::Api`]. Fails over as the type's docs say.
    async fn send<B: Serialize + ?Sized, Q: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let n = self.bases.len();
        let start = self.current_index();
        let mut tried = 0;
        loop {
            let idx = (start + tried) % n;
            tried += 1;
            match self.send_to(idx, method.clone(), path, query, body).await {
                Err(ClientError::Transport(e)) if n > 1 => {
                    self.fail_over(idx, &e);
                    // Not connected: the request was never sent; try the next one now.
                    if e.is_connect() && tried < n {
                        continue;
                    }
                    return Err(ClientError::Transport(e));
                }
                other => return other,
            }
        }
    }

    async fn send_to<B: Serialize + ?Sized, Q: Serialize + ?Sized>(
        &self,
        idx: usize,
        method: Method,
        path: &str,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let url = self.bases[idx]
            .join(path)
            .map_err(|e| ClientError::InvalidUrl(format!("{path}: {e}")))?;
        let mut req = self.http.request(method, url).timeout(self.timeout);
        if let Some(q) = query {
            req = req.query(q);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        // Node-signed routes ignore it; every other route needs it (see `auth::ROUTES`).
        if let Some(token) = &self.bearer_token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(ClientError::Transport)?;
        let status = resp.status();
        // Answers are small (the proof travels only in requests), so copying is fine.
        let bytes = resp.bytes().await.map_err(ClientError::Transport)?.to_vec();
        if status.is_success() {
            Ok((status, bytes))
        } else {
            Err(api_error(status, &bytes))
        }
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (_, bytes) = self.send::<B, ()>(method, path, None, body).await?;
        decode(&bytes)
    }

    /// `POST /api/nodes/register`.
    pub async fn register(&self, req: &RegisterRequest) -> Result<Registered, ClientError> {
        let (status, bytes) = self
            .send::<_, ()>(Method::POST, "api/nodes/register", None, Some(req))
            .await?;
        Ok(Registered {
            response: decode(&bytes)?,
            created: status == StatusCode::CREATED,
        })
    }

    /// `GET /api/coordinator`: the deployment's network, public key and key id.
    pub async fn coordinator_info(
        &self,
    ) -> Result<bitsage_core::deployment::DeploymentInfo, ClientError> {
        self.call::<(), _>(Method::GET, "api/coordinator", None)
            .await
    }

    /// `GET /api/nodes/attestation-challenge`: a fresh nonce to attest over before
    /// registering (404 from a coordinator that predates attestation).
    pub async fn attestation_challenge(
        &self,
        public_key: PublicKey,
    ) -> Result<ChallengeResponse, ClientError> {
        let (_, bytes) = self
            .send::<(), _>(
                Method::GET,
                "api/nodes/attestation-challenge",
                Some(&ChallengeQuery { public_key }),
                None,
            )
            .await?;
        decode(&bytes)
    }

    /// `GET /api/nodes/{id}/attestation`: the attestation evidence a node registered with.
    pub async fn attestation_evidence(
        &self,
        id: &NodeId,
    ) -> Result<AttestationEvidence, ClientError> {
        self.call::<(), _>(Method::GET, &node_path(id, "/attestation")?, None)
            .await
    }

    /// `POST /api/nodes/heartbeat`. A 401 means the coordinator does not know the node (or
    /// the signature, sequence or clock is off): register again.
    pub async fn heartbeat(
        &self,
        req: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.call(Method::POST, "api/nodes/heartbeat", Some(req))
            .await
    }

    /// `POST /api/jobs/lease`: a job, a probe, or nothing (with how long to wait).
    pub async fn lease(&self, req: &LeaseRequest) -> Result<LeaseResponse, ClientError> {
        self.call(Method::POST, "api/jobs/lease", Some(req)).await
    }

    /// `POST /api/jobs/complete`: hands in a proof (and the node-signed receipt of a leased
    /// job). 422 `proof_rejected` when the coordinator's verifier refuses the proof.
    pub async fn complete(&self, req: &CompleteRequest) -> Result<CompleteResponse, ClientError> {
        self.call(Method::POST, "api/jobs/complete", Some(req))
            .await
    }

    /// `POST /api/jobs/fail`: gives a leased job back; answers the job as it now stands.
    pub async fn fail(&self, req: &FailRequest) -> Result<JobView, ClientError> {
        self.call(Method::POST, "api/jobs/fail", Some(req)).await
    }

    /// `POST /api/jobs`: submits a job (with the bearer token, when the client has one).
    pub async fn submit_job(&self, req: &SubmitJobRequest) -> Result<JobView, ClientError> {
        let (_, bytes) = self
            .send::<_, ()>(Method::POST, "api/jobs", None, Some(req))
            .await?;
        decode(&bytes)
    }

    /// `GET /api/jobs/{id}`.
    pub async fn job(&self, id: &JobId) -> Result<JobView, ClientError> {
        self.call::<(), _>(Method::GET, &format!("api/jobs/{id}"), None)
            .await
    }

    /// `GET /api/receipts` with filters and paging.
    pub async fn receipts(
        &self,
        query: &ReceiptListQuery,
    ) -> Result<Page<ReceiptView>, ClientError> {
        let (_, bytes) = self
            .send::<(), _>(Method::GET, "api/receipts", Some(query), None)
            .await?;
        decode(&bytes)
    }

    /// `GET /api/receipts/{id}`.
    pub async fn receipt(&self, id: &ReceiptId) -> Result<ReceiptView, ClientError> {
        self.call::<(), _>(Method::GET, &format!("api/receipts/{id}"), None)
            .await
    }

    /// `GET /api/receipts/{id}?with_proof=true&with_inclusion=true`: the receipt, the proof
    /// envelope it names and (once it is in a settlement epoch) its inclusion proof.
    pub async fn receipt_with_proof(&self, id: &ReceiptId) -> Result<ReceiptBundle, ClientError> {
        let query = ReceiptQuery {
            with_proof: Some(true),
            with_inclusion: Some(true),
        };
        let (_, bytes) = self
            .send::<(), _>(
                Method::GET,
                &format!("api/receipts/{id}"),
                Some(&query),
                None,
            )
            .await?;
        decode(&bytes)
    }

    /// `GET /api/receipts/{id}/inclusion`: the receipt's epoch, Merkle path and settlement
    /// transaction (409 `conflict` while it is pending settlement).
    pub async fn receipt_inclusion(
        &self,
        id: &ReceiptId,
    ) -> Result<bitsage_core::settlement::InclusionProof, ClientError> {
        self.call::<(), _>(Method::GET, &format!("api/receipts/{id}/inclusion"), None)
            .await
    }

    /// `GET /api/nodes/{id}`.
    pub async fn node(&self, id: &NodeId) -> Result<NodeDetail, ClientError> {
        self.call::<(), _>(Method::GET, &node_path(id, "")?, None)
            .await
    }

    /// `GET /api/network/stats`.
    pub async fn network_stats(&self) -> Result<NetworkStats, ClientError> {
        self.call::<(), _>(Method::GET, "api/network/stats", None)
            .await
    }

    /// `GET /readyz`: the readiness report, whether the coordinator is ready (200) or not
    /// (503 with the same body).
    pub async fn ready(&self) -> Result<HealthResponse, ClientError> {
        let resp = self
            .http
            .get(
                self.base_url()
                    .join("readyz")
                    .map_err(|e| ClientError::InvalidUrl(format!("readyz: {e}")))?,
            )
            .timeout(self.timeout)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(ClientError::Transport)?;
        if status.is_success() || status == StatusCode::SERVICE_UNAVAILABLE {
            if let Ok(health) = serde_json::from_slice::<HealthResponse>(&bytes) {
                return Ok(health);
            }
        }
        if status.is_success() {
            decode(&bytes)
        } else {
            Err(api_error(status, &bytes))
        }
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(ClientError::Decode)
}

/// An error answer as [`ClientError::Api`]: from the API's error body when it is one,
/// otherwise the status and the start of the body.
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => ClientError::Api {
            status: status.as_u16(),
            kind: b.error.kind,
            message: b.error.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let mut quoted: String = text
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_QUOTED_BODY)
                .collect();
            if quoted.trim().is_empty() {
                quoted = status
                    .canonical_reason()
                    .unwrap_or("no error body")
                    .to_string();
            }
            ClientError::Api {
                status: status.as_u16(),
                kind: "http_error".into(),
                message: quoted,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ErrorDetail, NetworkStats};
    use axum::http::HeaderMap;
    use axum::routing::{get, post};
    use axum::{Json, Router};

    /// Serves `app` on an ephemeral local port; returns its base URL.
    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    fn error(status: StatusCode, kind: &str, message: &str) -> (StatusCode, Json<ErrorBody>) {
        (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    kind: kind.into(),
                    message: message.into(),
                },
            }),
        )
    }

    #[tokio::test]
    async fn an_error_body_becomes_an_api_error() {
        let app = Router::new()
            .route(
                "/api/nodes/heartbeat",
                post(|| async {
                    error(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "request rejected: unknown node or bad signature",
                    )
                }),
            )
            .route(
                "/api/network/stats",
                get(|| async { (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>") }),
            );
        let client = CoordinatorClient::new(&serve(app).await).expect("client");
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let hb = HeartbeatRequest::signed(
            &key,
            NodeId::parse("node-1").expect("id"),
            1,
            bitsage_core::time::now(),
            None,
            "test",
            Vec::new(),
        );
        let err = client.heartbeat(&hb).await.expect_err("401");
        match &err {
            ClientError::Api {
                status,
                kind,
                message,
            } => {
                assert_eq!(*status, 401);
                assert_eq!(kind, "unauthorized");
                assert_eq!(message, "request rejected: unknown node or bad signature");
            }
            other => panic!("expected an API error, got {other:?}"),
        }
        assert!(err.is_unauthorized() && err.is_client_error() && !err.is_transport());
        assert!(!err.is_retryable());

        // Not the API's error shape (a proxy's page): still an API error, with the status.
        let err = client.network_stats().await.expect_err("502");
        assert_eq!(err.status(), Some(502));
        assert_eq!(err.kind(), Some("http_error"));
        assert!(err.is_server_error() && err.is_retryable());
        assert!(err.to_string().contains("bad gateway"), "{err}");
    }

    #[tokio::test]
    async fn success_bodies_decode_and_the_bearer_token_is_sent() {
        let app = Router::new()
            .route(
                "/prefix/api/network/stats",
                get(|| async {
                    Json(NetworkStats {
                        active_workers: 2,
                        total_workers: 3,
                        total_jobs_processed: 4,
                    })
                }),
            )
            .route(
                "/prefix/api/jobs",
                post(|headers: HeaderMap| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    error(StatusCode::UNAUTHORIZED, "unauthorized", &auth)
                }),
            )
            .route("/prefix/readyz", get(|| async { "not json" }));
        let base = format!("{}/prefix", serve(app).await);
        let client = CoordinatorClient::new(&base)
            .expect("client")
            .with_bearer_token("s3cret");
        assert!(client.base_url().as_str().ends_with("/prefix/"));
        let stats = client.network_stats().await.expect("stats");
        assert_eq!(stats.total_workers, 3);

        let req = SubmitJobRequest {
            job: bitsage_core::JobKind::Poseidon2Chain { seed: 1, length: 8 },
            payment: bitsage_core::TokenAmount::from(10u64),
            max_attempts: None,
            payer: bitsage_core::WalletAddress::parse("0x1").expect("payer"),
            nonce: 1,
            sent_at: bitsage_core::time::now(),
            signature: vec![bitsage_core::wallet::FeltHex::parse("0x1").expect("felt")],
        };
        let err = client.submit_job(&req).await.expect_err("echoed 401");
        assert_eq!(err.kind(), Some("unauthorized"));
        assert!(err.to_string().contains("Bearer s3cret"), "{err}");

        // A 200 whose body is not the expected JSON is a decode error.
        assert!(matches!(client.ready().await, Err(ClientError::Decode(_))));
    }

    #[tokio::test]
    async fn connection_refused_is_a_transport_error() {
        // Bind, note the port, close: nothing listens there any more.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client = CoordinatorClient::new(&format!("http://{addr}"))
            .expect("client")
            .with_timeout(Duration::from_secs(5));
        let err = client.network_stats().await.expect_err("refused");
        assert!(err.is_transport(), "{err:?}");
        assert!(err.is_retryable());
        assert_eq!(err.status(), None);
        assert!(
            err.to_string().starts_with("cannot reach the coordinator"),
            "{err}"
        );
    }

    #[test]
    fn urls_are_validated() {
        for bad in [
            "",
            "not a url",
            "ftp://host",
            "https://host",
            "http://host/?q=1",
            "http://user:pw@host",
        ] {
            assert!(
                matches!(CoordinatorClient::new(bad), Err(ClientError::InvalidUrl(_))),
                "{bad:?} was accepted"
            );
        }
        let c = CoordinatorClient::new(" http://127.0.0.1:8080 ").expect("valid");
        assert_eq!(c.base_url().as_str(), "http://127.0.0.1:8080/");
        assert_eq!(c.timeout(), DEFAULT_REQUEST_TIMEOUT);
    }
}
