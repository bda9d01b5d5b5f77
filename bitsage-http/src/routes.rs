//! The handlers: extract, call the core's [`bitsage_core::service::Coordinator`] (changes) or
//! [`crate::service`] (reads), answer. Nothing else happens here.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use axum::http::HeaderMap;

use crate::api::{
    ChallengeQuery, CompleteRequest, EarningsFormat, EarningsQuery, FailRequest, HealthStatus,
    HeartbeatRequest, JobView, LeaseRequest, LiveResponse, NodeListQuery, ReceiptListQuery,
    ReceiptQuery, RegisterRequest, SubmitJobRequest,
};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{contracts, metrics, service, AppState};

/// `POST /api/nodes/register`: 201 when created, 200 when already registered with this key.
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
pub async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<NodeListQuery>,
) -> ApiResult<Response> {
    let wallets = auth::visible_wallets(&state, &caller).await?;
    Ok(Json(service::list_nodes(&state, q, wallets).await?).into_response())
}

/// `GET /api/nodes/{id}`.
pub async fn node_detail(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let id = service::parse_node_id(&id)?;
    auth::ensure_node_visible(&state, &caller, &id).await?;
    Ok(Json(service::node_detail(&state, &id).await?).into_response())
}

/// `GET /api/nodes/attestation-challenge`.
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
pub async fn attestation_evidence(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let id = service::parse_node_id(&id)?;
    auth::ensure_node_visible(&state, &caller, &id).await?;
    Ok(Json(service::attestation_evidence(&state, &id).await?).into_response())
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
pub async fn get_job(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    Ok(Json(service::job(&state, &id).await?).into_response())
}

/// `POST /api/jobs/lease`.
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
pub async fn receipt_inclusion(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    auth::ensure_receipt_visible(&state, &caller, &id).await?;
    Ok(Json(service::receipt_inclusion(&state, &id).await?).into_response())
}

/// `GET /api/earnings/{node}` (`?format=csv` for CSV).
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
pub async fn network_stats(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(service::network_stats(&state).await?).into_response())
}

/// `GET /api/contracts`: the contracts read and the indexer's status (`unavailable` without a
/// chain).
pub async fn contracts(State(state): State<AppState>) -> Response {
    Json(contracts::response(state.chain_info.as_deref())).into_response()
}

/// `GET /api/coordinator` (and `/.well-known/bitsage.json`): the deployment key to pin.
pub async fn coordinator(State(state): State<AppState>) -> Response {
    Json(service::coordinator_info(&state).await).into_response()
}

/// `GET /metrics`: Prometheus text; 503 in the API error shape when the store cannot answer.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match metrics::render(&state, bitsage_core::time::now()).await {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
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
pub async fn livez() -> Json<LiveResponse> {
    Json(LiveResponse {
        status: HealthStatus::Ok,
    })
}

/// `GET /readyz` (and `/health`, `/health/ready`): 200 when the store answers, else 503.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let health = service::readiness(&state).await;
    let status = match health.status {
        HealthStatus::Ok => StatusCode::OK,
        HealthStatus::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(health)).into_response()
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
