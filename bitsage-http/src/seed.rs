//! The deployment guide's routes and seed 000's field names, for clients written against
//! them: `POST /api/worker/heartbeat` (the signed heartbeat, as `/api/nodes/heartbeat`),
//! `GET /api/worker/status` and `/api/worker/gpu-metrics` (the validator views with the
//! seed's names and units beside ours), `POST /api/worker/claim-reward` (what to sign: the
//! coordinator holds no wallet key) and `GET /stats` (as `/api/network/stats`). Same
//! signatures, roles and rate-limit classes as the routes they mirror; a value a source did
//! not give is `null`, never a zero.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use bitsage_core::{NodeId, TokenAmount, WalletAddress};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::ErrorBody;
use crate::dashboard::{
    chain_read, validator_gpus, Budget, ChainReading, RewardsView, Section, ValidatorGpus,
    ValidatorStatus, WalletHeader,
};
use crate::openapi::responses::*;
use crate::{routes, AppState};

/// `GET /api/worker/status`: the validator status plus seed 000's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerStatus {
    /// Our view (each group with its status).
    #[serde(flatten)]
    pub status: ValidatorStatus,
    /// Seed 000: the wallet's stake, base units (`null`: the chain did not say).
    pub staked_amount: Option<TokenAmount>,
    /// Seed 000: the chain's reputation score, 0–1000 (`null`: the chain did not say).
    pub reputation_score: Option<u32>,
    /// Seed 000: jobs the wallet's nodes completed (`null`: the store did not say).
    pub jobs_completed: Option<u64>,
    /// Seed 000: accrued, unclaimed rewards, base units (`null`: the chain did not say).
    pub pending_rewards: Option<TokenAmount>,
}

/// `GET /api/worker/status`.
#[utoipa::path(
    get,
    path = "/api/worker/status",
    tag = "seed",
    operation_id = "workerStatus",
    summary = "The validator status with seed 000's field names",
    params((
        "X-Wallet-Address" = WalletAddress, Header, description = "The validator's Starknet wallet \
            address (admins: any; operators: their organisation's)."
    )),
    responses(
        (status = 200, description = "The status.", body = WorkerStatus),
        (status = 400, description = "`X-Wallet-Address` missing or invalid.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "Not the caller's organisation's wallet.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn worker_status(
    State(state): State<AppState>,
    WalletHeader(wallet): WalletHeader,
) -> Json<WorkerStatus> {
    let status = crate::dashboard::compute_validator_status(&state, wallet).await;
    Json(WorkerStatus {
        staked_amount: status.stake.ok().map(|s| s.value.amount),
        reputation_score: status.reputation.ok().map(|r| r.value.score),
        jobs_completed: status.jobs.ok().map(|j| j.completed),
        pending_rewards: status.rewards.ok().map(|r| r.value.pending),
        status,
    })
}

/// One GPU with seed 000's names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeedGpu {
    /// The node it is in.
    pub node_id: NodeId,
    /// Its UUID.
    pub uuid: String,
    /// Seed 000: the model name.
    pub model: String,
    /// Seed 000: compute utilisation, percent (`null`: not reported).
    pub compute_utilization: Option<f64>,
    /// Memory utilisation, percent (`null`: not reported).
    pub memory_utilization: Option<f64>,
    /// Seed 000: temperature, °C (`null`: not reported).
    pub temperature_celsius: Option<f64>,
    /// Power draw, W (`null`: not reported).
    pub power_watts: Option<f64>,
    /// When the reading was taken (`null`: no reading yet).
    #[schema(value_type = Option<bitsage_core::openapi::TimestampSchema>)]
    pub sampled_at: Option<bitsage_core::Timestamp>,
}

/// `GET /api/worker/gpu-metrics`: the validator's GPUs plus a flat `gpus` list in the seed's
/// names and units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerGpuMetrics {
    /// Our view.
    #[serde(flatten)]
    pub validator: ValidatorGpus,
    /// Seed 000: every GPU of the wallet's nodes with its latest reading (`null` when the
    /// store did not answer; `workers` then says why).
    pub gpus: Option<Vec<SeedGpu>>,
}

/// `GET /api/worker/gpu-metrics`.
#[utoipa::path(
    get,
    path = "/api/worker/gpu-metrics",
    tag = "seed",
    operation_id = "workerGpuMetrics",
    summary = "The validator's GPUs with seed 000's field names and units",
    params((
        "X-Wallet-Address" = WalletAddress, Header, description = "The validator's Starknet wallet \
            address (admins: any; operators: their organisation's)."
    )),
    responses(
        (status = 200, description = "The GPUs.", body = WorkerGpuMetrics),
        (status = 400, description = "`X-Wallet-Address` missing or invalid.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "Not the caller's organisation's wallet.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn worker_gpu_metrics(
    state: State<AppState>,
    wallet: WalletHeader,
) -> Json<WorkerGpuMetrics> {
    let Json(validator) = validator_gpus(state, wallet).await;
    let pct = |r: Option<f64>| r.map(|v| v * 100.0);
    let gpus = validator.workers.ok().map(|w| {
        w.nodes
            .iter()
            .flat_map(|n| {
                n.gpus.iter().map(move |g| {
                    let s = n.latest_samples.iter().find(|s| s.uuid == g.uuid);
                    SeedGpu {
                        node_id: n.node_id.clone(),
                        uuid: g.uuid.clone(),
                        model: g.name.clone(),
                        compute_utilization: pct(s.and_then(|s| s.gpu_utilization_ratio)),
                        memory_utilization: pct(s.and_then(|s| s.memory_utilization_ratio)),
                        temperature_celsius: s.and_then(|s| s.temperature_celsius),
                        power_watts: s.and_then(|s| s.power_watts),
                        sampled_at: s.map(|s| s.at),
                    }
                })
            })
            .collect()
    });
    Json(WorkerGpuMetrics { validator, gpus })
}

/// The contract call a wallet signs to claim its rewards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimCall {
    /// The staking contract.
    pub contract_address: String,
    /// The entrypoint.
    pub entrypoint: String,
    /// Its calldata (none: the caller's own rewards).
    pub calldata: Vec<String>,
}

/// `POST /api/worker/claim-reward`: what the wallet claims and the call to sign — the
/// coordinator never holds a wallet's key, so it cannot claim on its behalf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimReward {
    /// The wallet.
    pub wallet: WalletAddress,
    /// Its accrued rewards (chain).
    pub rewards: Section<ChainReading<RewardsView>>,
    /// The call to sign and send from the wallet (`null` without a chain).
    pub call: Option<ClaimCall>,
    /// What to do, in words.
    pub instructions: String,
}

/// `POST /api/worker/claim-reward`.
#[utoipa::path(
    post,
    path = "/api/worker/claim-reward",
    tag = "seed",
    operation_id = "workerClaimReward",
    summary = "The rewards a wallet can claim and the staking call its owner signs to claim them",
    params((
        "X-Wallet-Address" = WalletAddress, Header, description = "The validator's Starknet wallet \
            address (admins: any; operators: their organisation's)."
    )),
    responses(
        (status = 200, description = "What to claim and how.", body = ClaimReward),
        (status = 400, description = "`X-Wallet-Address` missing or invalid.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "Not the caller's organisation's wallet.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn claim_reward(
    State(state): State<AppState>,
    WalletHeader(wallet): WalletHeader,
) -> Json<ClaimReward> {
    let budget = Budget::start(&state.config);
    let rewards = chain_read(
        &budget,
        state.chain.as_ref().map(|c| c.rewards(&wallet)),
        RewardsView::from,
    )
    .await;
    let staking = state.chain_info.as_ref().and_then(|c| {
        c.contracts()
            .into_iter()
            .find(|(name, _)| name == "staking")
            .map(|(_, address)| address)
    });
    let call = staking.map(|contract_address| ClaimCall {
        contract_address,
        entrypoint: "claim_rewards".into(),
        calldata: Vec::new(),
    });
    let instructions = match &call {
        Some(c) => format!(
            "sign and send `{}` on {} from wallet {wallet}; the coordinator holds no wallet key \
             and cannot claim for you",
            c.entrypoint, c.contract_address
        ),
        None => {
            "this coordinator has no chain configured: there is nothing to claim through it".into()
        }
    };
    Json(ClaimReward {
        wallet,
        rewards,
        call,
        instructions,
    })
}

/// The routes of this module (the heartbeat and `/stats` reuse their originals' handlers).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/worker/heartbeat", post(routes::heartbeat))
        .route("/api/worker/status", get(worker_status))
        .route("/api/worker/gpu-metrics", get(worker_gpu_metrics))
        .route("/api/worker/claim-reward", post(claim_reward))
        .route("/stats", get(routes::network_stats))
}
