//! Shared test helpers: an app over an `InMemoryStore`, request builders, response readers.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use bitsage_core::crypto::{Hash32, PublicKey, SignatureBytes};
use bitsage_core::node::HardwareReport;
use bitsage_core::proof::ProofEnvelope;
use bitsage_core::receipt::ReceiptBody;
use bitsage_core::{JobSpec, NodeId, ReceiptId, WalletAddress};
use bitsage_http::api::{Assignment, CompleteRequest, LeaseRequest, LeaseResponse};
use bitsage_http::api::{ErrorBody, HeartbeatRequest, RegisterRequest};
use bitsage_http::{router, AppState, HttpConfig};
use bitsage_prover::StwoProver;
use bitsage_store::InMemoryStore;
use ed25519_dalek::SigningKey;
use http_body_util::BodyExt;
use serde::Serialize;
use tower::ServiceExt;

/// An app and direct access to its store.
pub(crate) struct TestApp {
    pub store: Arc<InMemoryStore>,
    pub proofs: Arc<bitsage_store::InMemoryProofStore>,
    /// The router, signed in as the test admin: requests without `Authorization` get the
    /// admin's access token (tests of access control use `bare`).
    pub app: Router,
    /// The router as it is served: no credentials added.
    pub bare: Router,
    /// The test admin's access token.
    pub admin_token: String,
    /// The state behind `app` (its core coordinator service).
    pub state: AppState,
}

/// The test admin's username and password.
pub(crate) use bitsage_http::test_utils::TEST_ADMIN as ADMIN;
pub(crate) use bitsage_http::test_utils::{admin_token, signed_in as as_user};

impl TestApp {
    /// Another coordinator of the same deployment: its own router (and process state) over
    /// the same store, proof store and deployment key — as after a restart, or behind a load
    /// balancer. Signed in as the test admin, like `app`.
    pub(crate) fn sibling(&self) -> Router {
        as_user(
            router(state_over(self.store.clone(), self.proofs.clone())),
            &self.admin_token,
        )
    }
}

fn state_over(
    store: Arc<InMemoryStore>,
    proofs: Arc<bitsage_store::InMemoryProofStore>,
) -> AppState {
    AppState::new(
        store.clone(),
        Arc::new(StwoProver::new()),
        proofs,
        bitsage_core::deployment::DeploymentKey::new(SigningKey::from_bytes(&[42; 32]), "test")
            .expect("deployment key"),
        HttpConfig {
            // Tests that are not about limits send many requests from one address.
            rate_limits: bitsage_http::ratelimit::RateLimits::disabled(),
            ..HttpConfig::default()
        },
    )
    // No chain: payers sign with the key stored with their local credit.
    .with_payer_verifier(Arc::new(bitsage_chain::StoredKeyVerifier::new(store)))
}

/// The test payer's Stark private key.
pub(crate) fn payer_key() -> starknet::core::types::Felt {
    starknet::core::types::Felt::from(0xc0ffee_u64)
}

/// The test payer's account.
pub(crate) fn payer() -> WalletAddress {
    WalletAddress::parse("0x9a7e4").expect("payer")
}

/// Gives the test payer `credit` base units of local credit, with its public key.
pub(crate) async fn fund(store: &InMemoryStore, credit: u128) {
    use bitsage_core::PayerLedger;
    let public = starknet::signers::SigningKey::from_secret_scalar(payer_key())
        .verifying_key()
        .scalar();
    let key = bitsage_core::wallet::FeltHex::from_be_bytes(&public.to_bytes_be());
    store
        .set_payer(
            &payer(),
            Some(&key),
            bitsage_core::TokenAmount::from_u128(credit),
            bitsage_core::time::now(),
        )
        .await
        .expect("fund the payer");
}

/// A submission of `job` paying `payment`, signed by the test payer (network `test`, no chain).
pub(crate) fn submission(
    job: bitsage_core::JobKind,
    payment: u128,
    max_attempts: Option<u32>,
) -> bitsage_http::api::SubmitJobRequest {
    bitsage_chain::snip12::signed_submission(
        &payer_key(),
        payer(),
        job,
        bitsage_core::TokenAmount::from_u128(payment),
        max_attempts,
        "test",
        bitsage_chain::LOCAL_CHAIN_ID,
    )
    .expect("sign the submission")
}

pub(crate) fn app() -> TestApp {
    let store = Arc::new(InMemoryStore::new());
    // The test payer can pay for a great many jobs.
    futures::executor::block_on(fund(&store, 1_000_000_000_000_000_000_000_000));
    let proofs = Arc::new(bitsage_store::InMemoryProofStore::new());
    let state = state_over(store.clone(), proofs.clone());
    let admin_token = futures::executor::block_on(admin_token(&state));
    let bare = router(state.clone());
    TestApp {
        app: as_user(bare.clone(), &admin_token),
        bare,
        admin_token,
        state,
        store,
        proofs,
    }
}

/// A response, read whole.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body does not parse ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status and the error shape with this `type`.
    pub(crate) fn assert_error(&self, status: StatusCode, kind: &str) -> ErrorBody {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json")),
            "error content type {:?}",
            self.content_type
        );
        let v = self.json();
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 1, "only `error` at top level: {v}");
        let e = v["error"].as_object().expect("error object");
        assert_eq!(e.len(), 2, "error has type and message: {v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        let body: ErrorBody = self.parse();
        assert_eq!(body.error.kind, kind, "{v}");
        body
    }
}

pub(crate) async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app
        .clone()
        .oneshot(req)
        .await
        .expect("router is infallible");
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let headers = res.headers().clone();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

pub(crate) fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

pub(crate) fn post_raw(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

pub(crate) fn post_json(uri: &str, body: &impl Serialize) -> Request<Body> {
    post_raw(uri, serde_json::to_vec(body).expect("json"))
}

/// A JSON request with `method` (PUT, PATCH, ...).
pub(crate) fn json_request(method: Method, uri: &str, body: &impl Serialize) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("request")
}

pub(crate) fn put_json(uri: &str, body: &impl Serialize) -> Request<Body> {
    json_request(Method::PUT, uri, body)
}

pub(crate) fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

pub(crate) fn node_id(s: &str) -> NodeId {
    NodeId::parse(s).expect("node id")
}

pub(crate) fn wallet() -> WalletAddress {
    WalletAddress::parse("0x1234abcd").expect("wallet")
}

pub(crate) fn register_request(key: &SigningKey, id: &str) -> RegisterRequest {
    RegisterRequest::signed(
        key,
        node_id(id),
        wallet(),
        HardwareReport {
            gpu_unavailable_reason: Some("no GPU in tests".into()),
            ..HardwareReport::default()
        },
        "bitsage-agent/0.1.0",
        bitsage_core::time::now(),
    )
}

pub(crate) fn heartbeat_request(key: &SigningKey, id: &str, sequence: u64) -> HeartbeatRequest {
    HeartbeatRequest::signed(
        key,
        node_id(id),
        sequence,
        bitsage_core::time::now(),
        Some(0.5),
        "bitsage-agent/0.1.0",
        Vec::new(),
    )
}

/// Registers `id` with `key` and asserts 201.
pub(crate) async fn register(app: &Router, key: &SigningKey, id: &str) {
    let r = send(
        app,
        post_json("/api/nodes/register", &register_request(key, id)),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

/// A proof of `spec` by the real prover.
pub(crate) fn prove(spec: &JobSpec) -> ProofEnvelope {
    bitsage_prover::StwoProver::new()
        .prove_sync(spec)
        .expect("prove")
}

/// A signed lease request from node `id`, answered 200.
pub(crate) async fn lease(t: &TestApp, k: &SigningKey, id: &str) -> LeaseResponse {
    let req = LeaseRequest::signed(k, node_id(id), rand_nonce(), bitsage_core::time::now());
    let r = send(&t.app, post_json("/api/jobs/lease", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.parse()
}

/// A fresh nonce for a signed request.
pub(crate) fn rand_nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The test deployment's public key.
pub(crate) fn coordinator_key() -> PublicKey {
    PublicKey::of(&key(42))
}

/// Node `id`'s signed completion of the probe in `a` with `env`.
pub(crate) fn probe_completion(
    k: &SigningKey,
    id: &str,
    a: &Assignment,
    env: ProofEnvelope,
) -> CompleteRequest {
    let Assignment::Probe { ticket } = a else {
        panic!("expected a probe, got {a:?}")
    };
    CompleteRequest {
        node_id: node_id(id),
        job_id: ticket.spec.id,
        lease_id: None,
        probe: Some(ticket.clone()),
        envelope: env,
        receipt: None,
        receipt_signature: None,
        envelope_digest: Hash32([0; 32]),
        sent_at: bitsage_core::time::now(),
        signature: SignatureBytes([0; 64]),
    }
    .sign(k)
}

/// Node `id`'s signed completion of the job in `a` with `env`, its receipt changed by `edit`.
pub(crate) fn job_completion(
    k: &SigningKey,
    id: &str,
    a: &Assignment,
    env: ProofEnvelope,
    edit: impl FnOnce(&mut ReceiptBody),
) -> CompleteRequest {
    let Assignment::Job { lease, fee, net } = a else {
        panic!("expected a job, got {a:?}")
    };
    let mut body = ReceiptBody {
        id: ReceiptId(lease.spec.id.0),
        job_id: lease.spec.id,
        kind: lease.spec.kind.name().to_string(),
        node_id: node_id(id),
        node_key: PublicKey::of(k),
        coordinator_key: coordinator_key(),
        output: env.output.clone(),
        proof_hash: env.proof_hash,
        payment: lease.payment,
        fee: *fee,
        net: *net,
        completed_at: bitsage_core::time::now(),
    };
    edit(&mut body);
    let receipt_signature = body.sign_as_node(k).expect("node signs");
    CompleteRequest {
        node_id: node_id(id),
        job_id: lease.spec.id,
        lease_id: Some(lease.lease.lease_id),
        probe: None,
        envelope: env,
        receipt: Some(body),
        receipt_signature: Some(receipt_signature),
        envelope_digest: Hash32([0; 32]),
        sent_at: bitsage_core::time::now(),
        signature: SignatureBytes([0; 64]),
    }
    .sign(k)
}
