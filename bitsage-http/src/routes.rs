//! The handlers: extract, call the core's [`bitsage_core::service::Coordinator`] (changes) or
//! [`crate::service`] (reads), answer. Nothing else happens here.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use axum::http::HeaderMap;

use crate::api::{
    AttestationEvidence, ChallengeResponse, CompleteResponse, EarningsResponse, ErrorBody,
    HealthReport, HealthResponse, HeartbeatResponse, LeaseResponse, NetworkStats, NodeDetail,
    NodeView, Page, ReceiptBundle, ReceiptView, RegisterResponse,
};
use crate::api::{
    ChallengeQuery, CompleteRequest, EarningsFormat, EarningsQuery, FailRequest, HealthStatus,
    HeartbeatRequest, JobView, LeaseRequest, LiveResponse, NodeListQuery, ReceiptListQuery,
    ReceiptQuery, RegisterRequest, SubmitJobRequest,
};
use crate::auth::{self, Caller};
use crate::contracts::ContractsResponse;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::openapi::responses::*;
use crate::{contracts, metrics, service, AppState};
use bitsage_core::deployment::DeploymentInfo;
use bitsage_core::settlement::InclusionProof;
use bitsage_core::{JobId, NodeId, ReceiptId};

/// `POST /api/nodes/register`: 201 when created, 200 when already registered with this key.
#[utoipa::path(
    post,
    path = "/api/nodes/register",
    tag = "nodes",
    operation_id = "registerNode",
    summary = "Register a node (signed with its key)",
    description = "A node introduces itself: id, ed25519 key, wallet, hardware report (with the \
        answer to an attestation challenge, when it has one) and, where the coordinator checks \
        wallets, the wallet account's proof. Signed with the node's key over the canonical \
        bytes (`bitsage/register/v1`). 201 when created, 200 when already registered with the \
        same key.",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered.", body = RegisterResponse),
        (status = 200, description = "Already registered with this key.", body = RegisterResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The wallet is not proven: no wallet proof where the \
            coordinator checks wallets, or the account refused the signature \
            (`wallet_rejected`).", body = ErrorBody),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "Attestation rejected (`attestation_rejected`): a foreign \
            or expired challenge, a report not over its nonce, an unknown GPU.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    let registered = state
        .coordinator
        .register(req, bitsage_core::time::now())
        .await?;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(service::register_response(&state, registered))).into_response())
}

/// `POST /api/nodes/heartbeat`.
#[utoipa::path(
    post,
    path = "/api/nodes/heartbeat",
    tag = "nodes",
    operation_id = "heartbeat",
    summary = "A signed heartbeat with GPU samples",
    description = "The node says it is alive (strictly increasing `sequence`), with its GPU \
        readings and collector health; signed with its registered key (`bitsage/heartbeat/v1`).",
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "Accepted.", body = HeartbeatResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> ApiResult<Response> {
    let status = state
        .coordinator
        .heartbeat(req, bitsage_core::time::now())
        .await?;
    Ok(Json(service::heartbeat_response(&state, status)).into_response())
}

/// `GET /api/nodes`.
#[utoipa::path(
    get,
    path = "/api/nodes",
    tag = "nodes",
    operation_id = "listNodes",
    summary = "List nodes, optionally by status or wallet",
    description = "Operators see their organisation's wallets' nodes only.",
    params(NodeListQuery),
    responses(
        (status = 200, description = "A page of nodes, in registration order.", body = Page<NodeView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<NodeListQuery>,
) -> ApiResult<Response> {
    let wallets = auth::visible_wallets(&state, &caller).await?;
    Ok(Json(service::list_nodes(&state, q, wallets).await?).into_response())
}

/// `GET /api/nodes/{id}`.
#[utoipa::path(
    get,
    path = "/api/nodes/{id}",
    tag = "nodes",
    operation_id = "getNode",
    summary = "A node with its latest heartbeat time, GPU collector health and status history",
    params(("id" = NodeId, Path, description = "The node id.")),
    responses(
        (status = 200, description = "The node.", body = NodeDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn node_detail(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let node = auth::visible_node(&state, &caller, &service::parse_node_id(&id)?).await?;
    Ok(Json(service::node_detail(&state, node).await?).into_response())
}

/// `GET /api/nodes/attestation-challenge`.
#[utoipa::path(
    get,
    path = "/api/nodes/attestation-challenge",
    tag = "nodes",
    operation_id = "attestationChallenge",
    summary = "A fresh nonce for the node to attest its GPUs over before registering",
    description = "Signed by the coordinator for the node's key; register with the answer \
        before `expires_at`. The same challenge is what the wallet proof signs.",
    params(ChallengeQuery),
    responses(
        (status = 200, description = "The challenge.", body = ChallengeResponse),
        (status = 400, response = BadRequest),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    )
)]
pub async fn attestation_challenge(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ChallengeQuery>,
) -> ApiResult<Response> {
    let challenge = state
        .coordinator
        .attestation_challenge(q.public_key, bitsage_core::time::now())?;
    Ok(Json(challenge).into_response())
}

/// `GET /api/nodes/{id}/attestation`.
#[utoipa::path(
    get,
    path = "/api/nodes/{id}/attestation",
    tag = "nodes",
    operation_id = "attestationEvidence",
    summary = "The attestation evidence a node registered with",
    description = "The challenge and, per GPU, NVML's raw report in hex, for verification with \
        NVIDIA's tools. 404 when the node registered without answering a challenge.",
    params(("id" = NodeId, Path, description = "The node id.")),
    responses(
        (status = 200, description = "The evidence.", body = AttestationEvidence),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn attestation_evidence(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let node = auth::visible_node(&state, &caller, &service::parse_node_id(&id)?).await?;
    Ok(Json(service::attestation_evidence(node)?).into_response())
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 9110
/// §11.1), if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `POST /api/jobs`: 201 with the queued job.
#[utoipa::path(
    post,
    path = "/api/jobs",
    tag = "jobs",
    operation_id = "submitJob",
    summary = "Queue a funded job",
    description = "The payer account signs the submission (SNIP-12 revision 1, domain \
        `BitSage`/`1`/`payment_chain_id` of `GET /api/coordinator`, primary type \
        `BitSageJobPayment {network: string, job: u256 (BLAKE2s-256 of \"bitsage/job-kind/v1\" \
        ‖ the job's JSON), payment: u256, max_attempts: u128, nonce: u128, sent_at_micros: \
        u128}`), checked with its account contract (with a chain) or the key stored with its \
        local credit; each signed submission is accepted once. The payment is reserved from the \
        payer's escrow or local credit until the job completes or fails.",
    request_body = SubmitJobRequest,
    responses(
        (status = 201, description = "Queued.", body = JobView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 402, response = PaymentRequired),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn submit_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SubmitJobRequest>,
) -> ApiResult<Response> {
    let job = state
        .coordinator
        .submit(req, bearer(&headers), bitsage_core::time::now())
        .await?;
    Ok((StatusCode::CREATED, Json(JobView::from(job))).into_response())
}

/// `GET /api/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    tag = "jobs",
    operation_id = "getJob",
    summary = "A job",
    params(("id" = JobId, Path, description = "The job id (UUID).")),
    responses(
        (status = 200, description = "The job.", body = JobView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn get_job(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    Ok(Json(service::job(&state, &id).await?).into_response())
}

/// `POST /api/jobs/lease`.
#[utoipa::path(
    post,
    path = "/api/jobs/lease",
    tag = "jobs",
    operation_id = "leaseJob",
    summary = "A node asks for work (signed)",
    description = "A probe while the node is `pending` (with a chain, once its stake meets its \
        tier's minimum), the oldest queued job while `active`, or none (`assignment: null`, \
        ask again after `retry_after_secs`). Forbidden for a quarantined node.",
    request_body = LeaseRequest,
    responses(
        (status = 200, description = "Work or none.", body = LeaseResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn lease(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LeaseRequest>,
) -> ApiResult<Response> {
    let outcome = state
        .coordinator
        .lease(req, bitsage_core::time::now())
        .await?;
    Ok(Json(service::lease_response(&state, outcome)).into_response())
}

/// `POST /api/jobs/complete`.
#[utoipa::path(
    post,
    path = "/api/jobs/complete",
    tag = "jobs",
    operation_id = "completeJob",
    summary = "A node hands in a proof and its signed receipt",
    description = "The coordinator verifies the proof, checks and countersigns the receipt and \
        credits the node (a leased job), or activates the node (a probe).",
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "Accepted.", body = CompleteResponse),
        (status = 400, description = "Malformed request (`invalid_request`), or \
            `transport_error`: the envelope does not match the digest the node signed (send \
            it again).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "Proof rejected (`proof_rejected`).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> ApiResult<Response> {
    let completion = state
        .coordinator
        .complete(req, bitsage_core::time::now())
        .await?;
    Ok(Json(service::complete_response(completion)).into_response())
}

/// `POST /api/jobs/fail`.
#[utoipa::path(
    post,
    path = "/api/jobs/fail",
    tag = "jobs",
    operation_id = "failJob",
    summary = "A node gives a leased job back (signed)",
    description = "The job is re-queued, or failed at its retry limit.",
    request_body = FailRequest,
    responses(
        (status = 200, description = "The job after the report.", body = JobView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn fail(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<FailRequest>,
) -> ApiResult<Response> {
    let job = state
        .coordinator
        .fail(req, bitsage_core::time::now())
        .await?;
    Ok(Json(JobView::from(job)).into_response())
}

/// `GET /api/receipts`.
#[utoipa::path(
    get,
    path = "/api/receipts",
    tag = "receipts",
    operation_id = "listReceipts",
    summary = "Receipts, by node, job kind and completion time",
    description = "Operators list one node's receipts at a time (`node` is required for them).",
    params(ReceiptListQuery),
    responses(
        (status = 200, description = "A page of receipts.", body = Page<ReceiptView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn list_receipts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReceiptListQuery>,
) -> ApiResult<Response> {
    if !caller.required()?.is_admin() {
        let node = q.node.as_ref().ok_or_else(|| {
            ApiError::invalid("node is required: operators list receipts one node at a time")
        })?;
        auth::ensure_node_visible(&state, &caller, node).await?;
    }
    Ok(Json(service::list_receipts(&state, q).await?).into_response())
}

/// `GET /api/receipts/{id}` (`?with_proof=true` adds the proof envelope).
#[utoipa::path(
    get,
    path = "/api/receipts/{id}",
    tag = "receipts",
    operation_id = "getReceipt",
    summary = "A receipt, verifiable offline with its two keys",
    description = "`with_proof=true` adds the proof envelope (`envelope`), `with_inclusion=true` \
        the inclusion proof in its settlement epoch (`inclusion`, once it has one): check the \
        whole with `bitsage-agent verify-receipt FILE`.",
    params(("id" = ReceiptId, Path, description = "The receipt id (UUID)."), ReceiptQuery),
    responses(
        (status = 200, description = "The receipt.", body = ReceiptBundle),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn receipt(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReceiptQuery>,
) -> ApiResult<Response> {
    auth::ensure_receipt_visible(&state, &caller, &id).await?;
    let bundle = service::receipt(
        &state,
        &id,
        q.with_proof.unwrap_or(false),
        q.with_inclusion.unwrap_or(false),
    )
    .await?;
    Ok(Json(bundle).into_response())
}

/// `GET /api/receipts/{id}/inclusion`: where the receipt is anchored on chain.
#[utoipa::path(
    get,
    path = "/api/receipts/{id}/inclusion",
    tag = "receipts",
    operation_id = "getReceiptInclusion",
    summary = "Where a receipt is anchored on chain",
    description = "Its settlement epoch (state, transaction, block), its leaf and Merkle path to \
        the epoch's receipts root (BLAKE2s-256, root with its top 6 bits cleared, as \
        `JobEscrow.get_epoch(epoch_id).receipts_root`). Check it with `bitsage-agent \
        verify-receipt --rpc URL --escrow ADDRESS`.",
    params(("id" = ReceiptId, Path, description = "The receipt id (UUID).")),
    responses(
        (status = 200, description = "The inclusion proof.", body = InclusionProof),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "Pending settlement: not yet in an epoch (`conflict`).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn receipt_inclusion(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    auth::ensure_receipt_visible(&state, &caller, &id).await?;
    Ok(Json(service::receipt_inclusion(&state, &id).await?).into_response())
}

/// `GET /api/earnings/{node}` (`?format=csv` for CSV).
#[utoipa::path(
    get,
    path = "/api/earnings/{node}",
    tag = "receipts",
    operation_id = "nodeEarnings",
    summary = "A node's exact earnings, total and per UTC day",
    description = "JSON, or CSV with `format=csv` (`day,entries,gross,fee,net`, amounts in base \
        units, one row per UTC day).",
    params(("node" = NodeId, Path, description = "The node id."), EarningsQuery),
    responses(
        (status = 200, description = "The earnings.", content(
            (EarningsResponse = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn earnings(
    State(state): State<AppState>,
    ApiPath(node): ApiPath<String>,
    ApiQuery(q): ApiQuery<EarningsQuery>,
    caller: Caller,
) -> ApiResult<Response> {
    let node = service::parse_node_id(&node)?;
    auth::ensure_node_visible(&state, &caller, &node).await?;
    let e = service::earnings(&state, &node, &q).await?;
    Ok(match q.format.unwrap_or_default() {
        EarningsFormat::Json => Json(e).into_response(),
        EarningsFormat::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"earnings-{node}.csv\""),
                ),
            ],
            service::earnings_csv(&e),
        )
            .into_response(),
    })
}

/// `GET /api/network/stats`.
#[utoipa::path(
    get,
    path = "/api/network/stats",
    tag = "network",
    operation_id = "networkStats",
    summary = "Active and total workers, jobs processed",
    responses(
        (status = 200, description = "Counts from the store.", body = NetworkStats),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security((), ("bearer" = []), ("cookie" = []))
)]
pub async fn network_stats(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(service::network_stats(&state).await?).into_response())
}

/// `GET /api/contracts`: the contracts read and the indexer's status (`unavailable` without a
/// chain).
#[utoipa::path(
    get,
    path = "/api/contracts",
    tag = "dashboard",
    operation_id = "contracts",
    summary = "The contracts the coordinator reads and its event indexer's status",
    description = "Cursor, head and lag of the indexer; `status: unavailable` without a chain.",
    responses(
        (status = 200, description = "Contracts and indexer.", body = ContractsResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security((), ("bearer" = []), ("cookie" = []))
)]
pub async fn contracts(State(state): State<AppState>) -> Response {
    Json(contracts::response(state.chain_info.as_deref())).into_response()
}

/// `GET /api/coordinator` (and `/.well-known/bitsage.json`): the deployment key to pin.
#[utoipa::path(
    get,
    path = "/api/coordinator",
    tag = "deployment",
    operation_id = "coordinator",
    summary = "The deployment's network, public key and key id",
    description = "The same on every coordinator of the network: pin `public_key` before \
        trusting a receipt. Also served at `/.well-known/bitsage.json`.",
    responses(
        (status = 200, description = "The deployment.", body = DeploymentInfo),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    )
)]
pub async fn coordinator(State(state): State<AppState>) -> Response {
    Json(service::coordinator_info(&state).await).into_response()
}

/// `GET /metrics`: the Prometheus exposition ([`crate::metrics`]) — OpenMetrics text when the
/// scraper asks for it (`Accept: application/openmetrics-text`), else the text format 0.0.4;
/// 503 in the API error shape when the store cannot answer.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    summary = "Prometheus metrics (text format 0.0.4, or OpenMetrics when asked for)",
    description = "Build and process, HTTP requests by route template, heartbeats, nodes, jobs, \
        proof verification and fraud, settlement, the chain indexer and RPC latency, live \
        connections, rate-limit refusals, node uptime, stake, and per-GPU series of every node \
        (fresh readings only). Encoded by `prometheus-client`: OpenMetrics 1.0 when the \
        `Accept` header asks for `application/openmetrics-text` (as Prometheus does), else the \
        Prometheus text format 0.0.4.",
    responses(
        (status = 200, description = "The exposition, in the negotiated format.", content(
            (String = "text/plain; version=0.0.4; charset=utf-8"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, description = "The store did not answer (`unavailable`); no metrics \
            rendered.", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = metrics::Format::negotiate(accept);
    match metrics::render(&state, bitsage_core::time::now(), format).await {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(e) if e.status.is_server_error() => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store did not answer; no metrics rendered",
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /livez` (and `/health/live`): always 200.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "ops",
    operation_id = "livez",
    summary = "Liveness: the process answers",
    description = "Always 200. Also served at `/health/live`.",
    responses(
        (status = 200, description = "Alive.", body = LiveResponse),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn livez() -> Json<LiveResponse> {
    Json(LiveResponse {
        status: HealthStatus::Ok,
    })
}

/// 200 unless the store is unavailable (a degraded dependency keeps the process in
/// service: an orchestrator must not restart a healthy coordinator for a chain outage).
fn ready_status(status: HealthStatus) -> StatusCode {
    match status {
        HealthStatus::Ok | HealthStatus::Degraded => StatusCode::OK,
        HealthStatus::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// `GET /readyz` (and `/health/ready`): 200 when the store answers (`ok`, or `degraded`
/// when the chain, the indexer or settlement is failing), else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    operation_id = "readyz",
    summary = "Readiness: the store answers; the chain, indexer and settlement as configured",
    description = "With per-component detail. Also served at `/health/ready`. `degraded` \
                   (200): a dependency other than the store fails; `unavailable` (503): the \
                   store does not answer.",
    responses(
        (status = 200, description = "Ready (ok or degraded).", body = HealthResponse),
        (status = 429, response = TooManyRequests),
        (status = 503, description = "Not ready: the store did not answer in time.", body = HealthResponse),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let health = service::readiness(&state).await;
    (ready_status(health.status), Json(health)).into_response()
}

/// `GET /health`: status, version, uptime, components with response times, metrics.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    operation_id = "health",
    summary = "Health: status, version, uptime, components with response times, metrics",
    responses(
        (status = 200, description = "Ready (ok or degraded).", body = HealthReport),
        (status = 429, response = TooManyRequests),
        (status = 503, description = "Not ready: the store did not answer in time.", body = HealthReport),
    )
)]
pub async fn health(State(state): State<AppState>) -> Response {
    let report = service::health_report(&state).await;
    (ready_status(report.status), Json(report)).into_response()
}

/// Unknown routes: 404 in the API shape.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Known route, wrong method: 405 in the API shape.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept this method",
    )
}
