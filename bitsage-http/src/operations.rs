//! What operators and admins run nodes with: the eligibility checklist ("why no work?"),
//! the reputation with its explanation (beside the chain's own score, labelled as the
//! chain's), drains, and the admin's quarantine and clearance. Handlers extract, call the
//! core service and answer; the access table decides who may call (operators only for their
//! organisation's nodes) and the audit middleware records every change.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use bitsage_core::chain::ReputationInfo;
use bitsage_core::reputation::Reputation;
use bitsage_core::service::accounts::{Actor, Principal};
use bitsage_core::service::availability::Eligibility;
use bitsage_core::NodeId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::NodeView;
use crate::auth::{self, Caller};
use crate::dashboard::{chain_read, Budget, ChainReading, Section};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::openapi::responses::*;
use crate::{service, AppState};

/// Who did it, as a change records it: the username, or `key <id>`.
fn actor_name(p: &Principal) -> String {
    match &p.actor {
        Actor::User { username, .. } => username.clone(),
        Actor::ApiKey { id, .. } => format!("key {id}"),
    }
}

/// The node `id` names, when the caller may see it (404 otherwise).
async fn visible_node(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<bitsage_core::node::NodeRecord> {
    let id = service::parse_node_id(id)?;
    auth::ensure_node_visible(state, caller, &id).await?;
    state
        .store
        .get_node(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))
}

/// `GET /api/nodes/{id}/eligibility`: every condition for getting work, each with its
/// reason.
#[utoipa::path(
    get,
    path = "/api/nodes/{id}/eligibility",
    tag = "nodes",
    operation_id = "nodeEligibility",
    summary = "Why a node gets no work: the eligibility checklist",
    params(("id" = NodeId, Path, description = "The node id.")),
    responses(
        (status = 200, description = "The checklist.", body = Eligibility),
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
pub async fn eligibility(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Eligibility>> {
    let node = visible_node(&state, &caller, &id).await?;
    Ok(Json(
        state
            .coordinator
            .eligibility(&node, bitsage_core::time::now())
            .await?,
    ))
}

/// `GET /api/nodes/{id}/reputation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeReputation {
    /// The node.
    pub node_id: NodeId,
    /// The network's reputation R 0–100, computed now from the rolling window, with its
    /// sub-scores, their inputs and weights.
    pub network: Reputation,
    /// The quarantine threshold R is held against (`null`: reputation never quarantines).
    pub quarantine_below: Option<u32>,
    /// The chain's own score of the node's wallet (the reputation contract's 0–1000 and
    /// level) — a different measure, shown beside R.
    pub chain: Section<ChainReading<ReputationInfo>>,
}

/// `GET /api/nodes/{id}/reputation`: R with its explanation, and the chain's score.
#[utoipa::path(
    get,
    path = "/api/nodes/{id}/reputation",
    tag = "nodes",
    operation_id = "nodeReputation",
    summary = "A node's reputation R 0–100 with sub-scores and inputs, and the chain's score",
    params(("id" = NodeId, Path, description = "The node id.")),
    responses(
        (status = 200, description = "The reputation.", body = NodeReputation),
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
pub async fn reputation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<NodeReputation>> {
    let node = visible_node(&state, &caller, &id).await?;
    let budget = Budget::start(&state.config);
    let chain = chain_read(
        &budget,
        state.chain.as_ref().map(|c| c.reputation(&node.wallet)),
        |r| r,
    );
    let (network, chain) = tokio::join!(
        state
            .coordinator
            .reputation_of(&node, bitsage_core::time::now()),
        chain
    );
    Ok(Json(NodeReputation {
        node_id: node.id,
        network: network?,
        quarantine_below: state.policy().reputation.quarantine_below,
        chain,
    }))
}

/// `POST /api/nodes/{id}/quarantine` and `/clear`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why (1–500 printable characters; kept in the node's status history).
    pub reason: String,
}

/// `POST /api/nodes/{id}/quarantine`: an admin excludes a node from work.
#[utoipa::path(
    post,
    path = "/api/nodes/{id}/quarantine",
    tag = "admin",
    operation_id = "quarantineNode",
    summary = "Quarantine a node (admin)",
    params(("id" = NodeId, Path, description = "The node id.")),
    request_body = ReasonRequest,
    responses(
        (status = 200, description = "The node, quarantined.", body = NodeView),
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
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn quarantine(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ReasonRequest>,
) -> ApiResult<Json<NodeView>> {
    let by = actor_name(caller.required()?);
    let id = service::parse_node_id(&id)?;
    let node = state
        .coordinator
        .quarantine(&id, &by, &req.reason, bitsage_core::time::now())
        .await?;
    Ok(Json(node.into()))
}

/// `POST /api/nodes/{id}/clear`: an admin clears a quarantine; the node goes back to
/// pending and is probed again.
#[utoipa::path(
    post,
    path = "/api/nodes/{id}/clear",
    tag = "admin",
    operation_id = "clearNode",
    summary = "Clear a node's quarantine (admin); it is probed again",
    params(("id" = NodeId, Path, description = "The node id.")),
    request_body = ReasonRequest,
    responses(
        (status = 200, description = "The node, pending a probe.", body = NodeView),
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
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ReasonRequest>,
) -> ApiResult<Json<NodeView>> {
    let by = actor_name(caller.required()?);
    let id = service::parse_node_id(&id)?;
    let node = state
        .coordinator
        .clear_quarantine(&id, &by, &req.reason, bitsage_core::time::now())
        .await?;
    Ok(Json(node.into()))
}

/// `POST /api/nodes/{id}/drain`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Why (1–500 printable characters).
    pub reason: String,
    /// For how long, seconds (1 up to the deployment's longest drain, 24 h by default).
    pub duration_secs: u64,
}

/// `POST /api/nodes/{id}/drain`: the node takes no new lease until the drain ends (the
/// current one finishes); its silent minutes meanwhile are not counted against its uptime.
#[utoipa::path(
    post,
    path = "/api/nodes/{id}/drain",
    tag = "nodes",
    operation_id = "drainNode",
    summary = "Drain a node for maintenance (its operator or an admin)",
    params(("id" = NodeId, Path, description = "The node id.")),
    request_body = DrainRequest,
    responses(
        (status = 200, description = "The node, draining.", body = NodeView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn drain(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<DrainRequest>,
) -> ApiResult<Json<NodeView>> {
    let node = visible_node(&state, &caller, &id).await?;
    let by = actor_name(caller.required()?);
    let node = state
        .coordinator
        .drain(
            &node.id,
            &by,
            &req.reason,
            std::time::Duration::from_secs(req.duration_secs),
            bitsage_core::time::now(),
        )
        .await?;
    Ok(Json(node.into()))
}

/// `DELETE /api/nodes/{id}/drain`: the drain ends now.
#[utoipa::path(
    delete,
    path = "/api/nodes/{id}/drain",
    tag = "nodes",
    operation_id = "undrainNode",
    summary = "End a node's drain (its operator or an admin)",
    params(("id" = NodeId, Path, description = "The node id.")),
    responses(
        (status = 200, description = "The node, taking work again.", body = NodeView),
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
pub async fn undrain(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<NodeView>> {
    let node = visible_node(&state, &caller, &id).await?;
    let node = state
        .coordinator
        .undrain(&node.id, bitsage_core::time::now())
        .await?;
    Ok(Json(node.into()))
}

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/nodes/{id}/eligibility", get(eligibility))
        .route("/api/nodes/{id}/reputation", get(reputation))
        .route("/api/nodes/{id}/quarantine", post(quarantine))
        .route("/api/nodes/{id}/clear", post(clear))
        .route("/api/nodes/{id}/drain", post(drain).delete(undrain))
}
