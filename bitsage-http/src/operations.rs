//! What operators and admins run nodes with: the eligibility checklist ("why no work?"),
//! the reputation with its explanation (beside the chain's own score, labelled as the
//! chain's), drains, and the admin's quarantine and clearance. Handlers extract, call the
//! core service and answer; the access table decides who may call (operators only for their
//! organisation's nodes) and the audit middleware records every change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use bitsage_core::chain::ReputationInfo;
use bitsage_core::flags::{Flag, FlagValue};
use bitsage_core::incident::{Incident, IncidentFilter, IncidentStatus, Severity};
use bitsage_core::openapi::TimestampSchema;
use bitsage_core::reputation::Reputation;
use bitsage_core::service::accounts::{Actor, Principal};
use bitsage_core::service::availability::Eligibility;
use bitsage_core::service::incidents::{IncidentChange, NewIncident};
use bitsage_core::IncidentId;
use bitsage_core::NodeId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::NodeView;
use crate::auth::{self, Caller};
use crate::dashboard::{chain_read, Budget, ChainReading, Section};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::openapi::responses::*;
use crate::{service, AppState};

/// Who did it, as a change records it: the username, or `key <id>`.
fn actor_name(p: &Principal) -> String {
    match &p.actor {
        Actor::User { username, .. } => username.clone(),
        Actor::ApiKey { id, .. } => format!("key {id}"),
    }
}

fn is_admin(caller: &Caller) -> bool {
    caller.0.as_ref().is_some_and(Principal::is_admin)
}

/// Who changed something, as the public (overview) views show it: the coordinator and
/// configuration by name, people only as "an admin" (usernames are for admins).
fn public_author(by: &str) -> String {
    match by {
        bitsage_core::service::incidents::COORDINATOR_AUTHOR | "configuration" => by.to_string(),
        _ => "an admin".to_string(),
    }
}

/// The node `id` names, when the caller may see it (404 otherwise).
async fn visible_node(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<bitsage_core::node::NodeRecord> {
    auth::visible_node(state, caller, &service::parse_node_id(id)?).await
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
        .route("/api/nodes/{id}/gpu-minutes", get(gpu_minutes))
        .route("/api/nodes/{id}/reputation", get(reputation))
        .route("/api/nodes/{id}/quarantine", post(quarantine))
        .route("/api/nodes/{id}/clear", post(clear))
        .route("/api/nodes/{id}/drain", post(drain).delete(undrain))
        .route("/api/incidents", get(incidents).post(create_incident))
        .route("/api/incidents/{id}", patch(update_incident))
        .route("/api/flags", get(flags))
        .route("/api/flags/{flag}", put(set_flag))
        .route("/api/earnings/{node}/payouts", get(payouts))
        .route(
            "/api/earnings/{node}/payouts/{period}/ready",
            post(mark_payout_ready),
        )
}

// ---------------------------------------------------------------- incidents

/// Query of `GET /api/incidents`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    /// Only `open` or `resolved` incidents.
    pub status: Option<IncidentStatus>,
    /// Only incidents opened at or after this time.
    #[param(value_type = Option<TimestampSchema>)]
    pub from: Option<bitsage_core::Timestamp>,
    /// Page size (1 ..= 1000, default 100).
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

/// `GET /api/incidents`: a page of incidents, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentList {
    /// The open ones, newest first (the status banner's data), whatever the page.
    pub open: Vec<Incident>,
    /// The page asked for.
    pub incidents: bitsage_core::page::Page<Incident>,
}

/// `GET /api/incidents`: the status banner (every open incident) and the history.
#[utoipa::path(
    get,
    path = "/api/incidents",
    tag = "incidents",
    operation_id = "listIncidents",
    summary = "Incidents: the open ones (the status banner) and a page of the history",
    params(IncidentQuery),
    responses(
        (status = 200, description = "The incidents.", body = IncidentList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security((), ("bearer" = []), ("cookie" = []))
)]
pub async fn incidents(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> ApiResult<Json<IncidentList>> {
    let page = service::page_of(q.limit, q.offset)?;
    if let Some(from) = q.from {
        bitsage_core::time::check_range("from", from)?;
    }
    let filter = IncidentFilter {
        status: q.status,
        from: q.from,
    };
    let (mut open, mut incidents) = state.coordinator.incidents(&filter, page).await?;
    if !is_admin(&caller) {
        for i in open.iter_mut().chain(incidents.items.iter_mut()) {
            for u in &mut i.updates {
                u.by = public_author(&u.by);
            }
        }
    }
    Ok(Json(IncidentList { open, incidents }))
}

/// `POST /api/incidents`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIncidentRequest {
    /// A short title (1–200 characters).
    pub title: String,
    /// `info`, `warn` or `major`.
    pub severity: Severity,
    /// The region affected (omit for the whole network).
    #[serde(default)]
    pub region: Option<String>,
    /// The first message (1–2000 characters).
    pub message: String,
}

/// `POST /api/incidents`: an admin opens an incident (201).
#[utoipa::path(
    post,
    path = "/api/incidents",
    tag = "incidents",
    operation_id = "createIncident",
    summary = "Open an incident (admin)",
    request_body = CreateIncidentRequest,
    responses(
        (status = 201, description = "Opened.", body = Incident),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn create_incident(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateIncidentRequest>,
) -> ApiResult<Response> {
    let by = actor_name(caller.required()?);
    let incident = state
        .coordinator
        .open_incident(
            &by,
            NewIncident {
                title: req.title,
                severity: req.severity,
                region: req.region,
                message: req.message,
            },
            bitsage_core::time::now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(incident)).into_response())
}

/// `PATCH /api/incidents/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIncidentRequest {
    /// What changed or was learnt (1–2000 characters).
    pub message: String,
    /// A new severity.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// `resolved` resolves it; `open` reopens it.
    #[serde(default)]
    pub status: Option<IncidentStatus>,
}

/// `PATCH /api/incidents/{id}`: an admin adds an update (and changes severity or status).
#[utoipa::path(
    patch,
    path = "/api/incidents/{id}",
    tag = "incidents",
    operation_id = "updateIncident",
    summary = "Update or resolve an incident (admin)",
    params(("id" = String, Path, description = "The incident id (UUID).")),
    request_body = UpdateIncidentRequest,
    responses(
        (status = 200, description = "Updated.", body = Incident),
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
pub async fn update_incident(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateIncidentRequest>,
) -> ApiResult<Json<Incident>> {
    let by = actor_name(caller.required()?);
    let id = IncidentId::parse(&id)?;
    Ok(Json(
        state
            .coordinator
            .update_incident(
                &id,
                &by,
                IncidentChange {
                    message: req.message,
                    severity: req.severity,
                    status: req.status,
                },
                bitsage_core::time::now(),
            )
            .await?,
    ))
}

// ---------------------------------------------------------------- flags

/// `GET /api/flags`: every feature flag with who set it.
#[utoipa::path(
    get,
    path = "/api/flags",
    tag = "flags",
    operation_id = "listFlags",
    summary = "Feature flags and who set them",
    responses(
        (status = 200, description = "The flags.", body = Vec<FlagValue>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security((), ("bearer" = []), ("cookie" = []))
)]
pub async fn flags(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<FlagValue>>> {
    let mut flags = state.coordinator.flags().await?;
    if !is_admin(&caller) {
        for f in &mut flags {
            f.set_by = public_author(&f.set_by);
        }
    }
    Ok(Json(flags))
}

/// `PUT /api/flags/{flag}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFlagRequest {
    /// On or off.
    pub enabled: bool,
}

/// `PUT /api/flags/{flag}`: an admin turns a flag on or off for every coordinator.
#[utoipa::path(
    put,
    path = "/api/flags/{flag}",
    tag = "flags",
    operation_id = "setFlag",
    summary = "Turn a feature flag on or off (admin)",
    params(("flag" = Flag, Path, description = "The flag.")),
    request_body = SetFlagRequest,
    responses(
        (status = 200, description = "Set.", body = FlagValue),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn set_flag(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(flag): ApiPath<String>,
    ApiJson(req): ApiJson<SetFlagRequest>,
) -> ApiResult<Json<FlagValue>> {
    let by = actor_name(caller.required()?);
    let flag = Flag::parse(&flag)?;
    Ok(Json(
        state
            .coordinator
            .set_flag(flag, req.enabled, &by, bitsage_core::time::now())
            .await?,
    ))
}

// ---------------------------------------------------------------- payouts

/// Query of `GET /api/earnings/{node}/payouts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PayoutsQuery {
    /// How many months back, the current one included (1 ..= 36, default 12).
    pub months: Option<u32>,
}

/// A reward estimate from the chain: the node's wallet's stake at the staking contract's
/// rate. An estimate, never a payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RewardEstimate {
    /// Always `true`: this is an estimate.
    pub estimate: bool,
    /// How it is computed.
    pub basis: String,
    /// The wallet's stake, base units.
    pub staked: bitsage_core::TokenAmount,
    /// `ProverStaking.apy_bps`: basis points a year.
    pub apy_bps: u64,
    /// Estimated rewards over 30 days, base units.
    pub per_30_days: bitsage_core::TokenAmount,
    /// `per_30_days` for people.
    pub per_30_days_formatted: String,
    /// Estimated rewards over a year, base units.
    pub per_year: bitsage_core::TokenAmount,
    /// `per_year` for people.
    pub per_year_formatted: String,
}

/// `GET /api/earnings/{node}/payouts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PayoutsResponse {
    /// The node.
    pub node_id: NodeId,
    /// The deployment's payout threshold per month, base units.
    pub threshold: bitsage_core::TokenAmount,
    /// `threshold` for people.
    pub threshold_formatted: String,
    /// Months, newest first.
    pub periods: Vec<bitsage_core::payout::PayoutPeriod>,
    /// The chain-based reward estimate (`null` while the `show_reward_estimates` flag is
    /// off).
    pub reward_estimate: Option<Section<RewardEstimate>>,
}

/// `GET /api/earnings/{node}/payouts`: payout readiness per month and a labelled reward
/// estimate.
#[utoipa::path(
    get,
    path = "/api/earnings/{node}/payouts",
    tag = "earnings",
    operation_id = "nodePayouts",
    summary = "Payout readiness per month against the threshold, and a labelled reward estimate",
    params(("node" = NodeId, Path, description = "The node id."), PayoutsQuery),
    responses(
        (status = 200, description = "The payouts.", body = PayoutsResponse),
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
pub async fn payouts(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(node): ApiPath<String>,
    ApiQuery(q): ApiQuery<PayoutsQuery>,
) -> ApiResult<Json<PayoutsResponse>> {
    let node = visible_node(&state, &caller, &node).await?;
    let now = bitsage_core::time::now();
    let periods = state
        .coordinator
        .payouts(&node, q.months.unwrap_or(12), now)
        .await?;
    let reward_estimate = if state.coordinator.flag(Flag::ShowRewardEstimates).await {
        Some(estimate(&state, &node.wallet).await)
    } else {
        None
    };
    let threshold = state.policy().payout_threshold;
    Ok(Json(PayoutsResponse {
        node_id: node.id,
        threshold,
        threshold_formatted: threshold.format_sage(),
        periods,
        reward_estimate,
    }))
}

async fn estimate(
    state: &AppState,
    wallet: &bitsage_core::WalletAddress,
) -> Section<RewardEstimate> {
    let Some(chain) = &state.chain else {
        return Section::unavailable("no chain configured: no stake to estimate rewards from");
    };
    let budget = Budget::start(&state.config);
    let read = async {
        let (stake, apy) = tokio::try_join!(chain.stake(wallet), chain.apy_bps())?;
        let amount = stake.value.amount;
        let month = bitsage_core::payout::reward_estimate(amount, apy.value, 30 * 86_400)?;
        let year = bitsage_core::payout::reward_estimate(amount, apy.value, 365 * 86_400)?;
        Ok::<_, bitsage_core::Error>(RewardEstimate {
            estimate: true,
            basis: format!(
                "an estimate: the wallet's stake × ProverStaking.apy_bps ({} bps a year), read \
                 at block {}; not a payout",
                apy.value, stake.at.block_number
            ),
            staked: amount,
            apy_bps: apy.value,
            per_30_days: month,
            per_30_days_formatted: month.format_sage(),
            per_year: year,
            per_year_formatted: year.format_sage(),
        })
    };
    match tokio::time::timeout_at(budget.deadline, read).await {
        Ok(Ok(v)) => Section::Ok(v),
        Ok(Err(e)) => Section::unavailable(match e {
            bitsage_core::Error::Unavailable { .. } => e.to_string(),
            _ => "the reward estimate could not be computed".to_string(),
        }),
        Err(_) => Section::unavailable("the chain did not answer in time"),
    }
}

/// `POST /api/earnings/{node}/payouts/{period}/ready`: an admin marks a month ready to pay
/// (at or above the threshold, once).
#[utoipa::path(
    post,
    path = "/api/earnings/{node}/payouts/{period}/ready",
    tag = "admin",
    operation_id = "markPayoutReady",
    summary = "Mark a node's month ready for payout (admin)",
    params(
        ("node" = NodeId, Path, description = "The node id."),
        ("period" = String, Path, description = "The month, YYYY-MM (UTC)."),
    ),
    responses(
        (status = 200, description = "Marked.", body = bitsage_core::payout::PayoutPeriod),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn mark_payout_ready(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((node, period)): ApiPath<(String, String)>,
) -> ApiResult<Json<bitsage_core::payout::PayoutPeriod>> {
    let by = actor_name(caller.required()?);
    let node = service::parse_node_id(&node)?;
    Ok(Json(
        state
            .coordinator
            .mark_payout_ready(&node, &period, &by, bitsage_core::time::now())
            .await?,
    ))
}

// ---------------------------------------------------------------- GPU history

/// Longest window `GET /api/nodes/{id}/gpu-minutes` answers, days.
pub const MAX_GPU_MINUTES_DAYS: i64 = 7;

/// Query of `GET /api/nodes/{id}/gpu-minutes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GpuMinutesQuery {
    /// Start (default: 24 h before `to`).
    #[param(value_type = Option<TimestampSchema>)]
    pub from: Option<bitsage_core::Timestamp>,
    /// End (default: now). At most 7 days after `from`.
    #[param(value_type = Option<TimestampSchema>)]
    pub to: Option<bitsage_core::Timestamp>,
}

/// `GET /api/nodes/{id}/gpu-minutes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GpuMinutes {
    /// The node.
    pub node_id: NodeId,
    /// The window.
    pub window: bitsage_core::TimeWindow,
    /// Per device and minute, oldest first: samples rolled up and per metric min / max /
    /// sum / n (the mean is `sum / n`). Minutes still within raw retention are rolled up
    /// only once their raw samples expire: for recent readings see the node's samples.
    pub minutes: Vec<bitsage_core::retention::GpuMinute>,
}

/// `GET /api/nodes/{id}/gpu-minutes`: long-range GPU history from the per-minute rollups.
#[utoipa::path(
    get,
    path = "/api/nodes/{id}/gpu-minutes",
    tag = "nodes",
    operation_id = "nodeGpuMinutes",
    summary = "A node's GPU history per device and minute (min/avg/max), from the rollups",
    params(("id" = NodeId, Path, description = "The node id."), GpuMinutesQuery),
    responses(
        (status = 200, description = "The rollups.", body = GpuMinutes),
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
pub async fn gpu_minutes(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<GpuMinutesQuery>,
) -> ApiResult<Json<GpuMinutes>> {
    let node = visible_node(&state, &caller, &id).await?;
    let to = q.to.unwrap_or_else(bitsage_core::time::now);
    let from = q.from.unwrap_or(to - chrono::TimeDelta::days(1));
    let window = bitsage_core::TimeWindow::new(from, to)?;
    if window.to - window.from > chrono::TimeDelta::days(MAX_GPU_MINUTES_DAYS) {
        return Err(ApiError::invalid(format!(
            "the window (from .. to) must be at most {MAX_GPU_MINUTES_DAYS} days"
        )));
    }
    let minutes = state.store.gpu_minutes(&node.id, window).await?;
    Ok(Json(GpuMinutes {
        node_id: node.id,
        window,
        minutes,
    }))
}
