//! What the handlers do, as plain async functions over the store (no HTTP types), so each
//! flow can be tested and reused without a request.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bitsage_core::attestation::{AttestationChallenge, ATTESTATION_NONCE_LEN};
use bitsage_core::job::JobFilter;
use bitsage_core::node::{Heartbeat, NewNode, NodeFilter};
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::receipt::ReceiptFilter;
use bitsage_core::{
    Error, JobStatus, LifecycleEvent, NodeId, NodeStatus, ReceiptId, TimeWindow, Timestamp,
};
use chrono::{DateTime, Utc};

use crate::api::{
    AttestationEvidence, ChallengeQuery, ChallengeResponse, ComponentHealth, EarningsQuery,
    EarningsResponse, HealthComponents, HealthResponse, HealthStatus, HeartbeatRequest,
    HeartbeatResponse, NetworkStats, NodeDetail, NodeListQuery, NodeView, ReceiptBundle,
    ReceiptListQuery, ReceiptView, RegisterRequest, RegisterResponse, MAX_AGENT_VERSION_LEN,
};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, HttpConfig};

/// The single message for every refused heartbeat whose sender has not proven its key, so
/// the answer does not tell whether a node id exists.
pub const HEARTBEAT_REJECTED: &str = "heartbeat rejected: unknown node or bad signature";

/// The start of an open-ended time window (the Unix epoch).
fn window_start() -> Timestamp {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The end of an open-ended time window (year 9999, within every store's range).
fn window_end() -> Timestamp {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A window from optional bounds: `None` when neither is given.
pub fn window_of(
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Option<TimeWindow>, Error> {
    if from.is_none() && to.is_none() {
        return Ok(None);
    }
    TimeWindow::new(
        from.unwrap_or_else(window_start),
        to.unwrap_or_else(window_end),
    )
    .map(Some)
}

/// A page from optional `limit`/`offset` (defaults 100 and 0).
pub fn page_of(limit: Option<u32>, offset: Option<u64>) -> Result<PageRequest, Error> {
    let d = PageRequest::default();
    PageRequest::new(limit.unwrap_or(d.limit), offset.unwrap_or(d.offset))
}

/// Checks that a signed message's `sent_at` lies within `max_skew` of `now`.
pub fn check_skew(sent_at: Timestamp, now: Timestamp, max_skew: Duration) -> Result<(), Error> {
    let skew = now.signed_duration_since(sent_at).abs();
    let max = chrono::TimeDelta::from_std(max_skew).unwrap_or(chrono::TimeDelta::MAX);
    if skew > max {
        return Err(Error::Signature(format!(
            "sent_at is more than {} s away from the server's clock",
            max_skew.as_secs()
        )));
    }
    Ok(())
}

fn check_agent_version(v: &str) -> Result<(), Error> {
    if v.is_empty() || v.len() > MAX_AGENT_VERSION_LEN || v.chars().any(char::is_control) {
        return Err(Error::invalid(
            "agent version",
            format!("must be 1 to {MAX_AGENT_VERSION_LEN} printable characters"),
        ));
    }
    Ok(())
}

/// Most GPU samples one heartbeat may carry.
pub const MAX_SAMPLES_PER_HEARTBEAT: usize = 1024;

/// Checks a heartbeat's GPU samples: each valid ([`GpuSample::validate`]), taken within the
/// clock-skew window, and of a device the node registered (a node reports its own GPUs only).
fn check_samples(
    node: &bitsage_core::node::NodeRecord,
    samples: &[bitsage_core::gpu::GpuSample],
    now: Timestamp,
    max_skew: Duration,
) -> Result<(), Error> {
    if samples.len() > MAX_SAMPLES_PER_HEARTBEAT {
        return Err(Error::invalid(
            "heartbeat",
            format!("at most {MAX_SAMPLES_PER_HEARTBEAT} GPU samples per heartbeat"),
        ));
    }
    for s in samples {
        s.validate()?;
        if !node.hardware.gpus.iter().any(|g| g.uuid == s.uuid) {
            return Err(Error::invalid(
                "GPU sample",
                format!(
                    "device {:?} is not in the node's registered hardware",
                    s.uuid
                ),
            ));
        }
        check_skew(s.at, now, max_skew)
            .map_err(|_| Error::invalid("GPU sample", "`at` is outside the clock-skew window"))?;
    }
    Ok(())
}

fn interval_secs(config: &HttpConfig) -> u64 {
    config.heartbeat_interval.as_secs()
}

/// Registers a node. Returns the record and whether it was created (`false`: the same id and
/// key were already registered, nothing changed). Another key for a known id → 409; a bad
/// signature or a `sent_at` outside the skew window → 401; nothing is stored on failure.
pub async fn register(
    state: &AppState,
    req: RegisterRequest,
    now: Timestamp,
) -> ApiResult<(RegisterResponse, bool)> {
    req.verify()?;
    check_skew(req.sent_at, now, state.config.max_clock_skew)?;
    check_agent_version(&req.agent_version)?;
    if let Some(attestation) = &req.hardware.attestation {
        let uuids: Vec<&str> = req.hardware.gpus.iter().map(|g| g.uuid.as_str()).collect();
        attestation
            .check(&state.public_key(), &req.public_key, now, &uuids)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "attestation_rejected",
                    e.to_string(),
                )
            })?;
    }
    let response = |node: bitsage_core::node::NodeRecord| RegisterResponse {
        node: NodeView::from(node),
        heartbeat_interval_secs: interval_secs(&state.config),
        coordinator_public_key: state.public_key(),
    };
    let same_key = |existing: bitsage_core::node::NodeRecord| {
        if existing.public_key == req.public_key {
            Ok((response(existing), false))
        } else {
            Err(ApiError::conflict(format!(
                "node {} is already registered with another key",
                req.node_id
            )))
        }
    };
    if let Some(existing) = state.store.get_node(&req.node_id).await? {
        return same_key(existing);
    }
    let new = NewNode {
        id: req.node_id.clone(),
        public_key: req.public_key,
        wallet: req.wallet,
        hardware: req.hardware.clone(),
        agent_version: req.agent_version.clone(),
        registered_at: now,
    };
    match state.store.create_node(&new).await {
        Ok(node) => Ok((response(node), true)),
        // Lost a race with a concurrent registration of the same id: answer as a re-register.
        Err(Error::AlreadyExists { .. }) => match state.store.get_node(&req.node_id).await? {
            Some(existing) => same_key(existing),
            None => Err(ApiError::conflict("node registration raced; retry")),
        },
        Err(e) => Err(e.into()),
    }
}

/// Accepts a heartbeat signed with the node's stored key: stores it (received at `now`) with
/// its GPU samples and collector status in one store transaction, then applies the lifecycle's `Heartbeat` event. Unknown node, bad
/// signature, stale `sent_at` or a sequence not above the last one → 401, nothing stored.
pub async fn heartbeat(
    state: &AppState,
    req: HeartbeatRequest,
    now: Timestamp,
) -> ApiResult<HeartbeatResponse> {
    let node = state
        .store
        .get_node(&req.node_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized(HEARTBEAT_REJECTED))?;
    req.verify(&node.public_key)
        .map_err(|_| ApiError::unauthorized(HEARTBEAT_REJECTED))?;
    // From here on the sender holds the node key, so precise reasons reveal nothing.
    check_skew(req.sent_at, now, state.config.max_clock_skew)?;
    check_agent_version(&req.agent_version)?;
    check_samples(&node, &req.gpu_samples, now, state.config.max_clock_skew)?;
    if let Some(c) = &req.gpu_collector {
        c.validate()?;
    }
    let beat = Heartbeat {
        node_id: node.id.clone(),
        at: now,
        sequence: req.sequence,
        load_average_1m: req.load_average_1m,
        agent_version: req.agent_version.clone(),
        gpu_collector: req.gpu_collector.clone(),
        gpu_samples: req.gpu_samples,
    };
    match state.store.append_heartbeat(&beat).await {
        Ok(()) => {}
        Err(Error::Conflict(_)) => {
            return Err(ApiError::unauthorized(
                "heartbeat rejected: sequence is not above the last accepted one (replay)",
            ))
        }
        Err(Error::NotFound { .. }) => return Err(ApiError::unauthorized(HEARTBEAT_REJECTED)),
        Err(e) => return Err(e.into()),
    }
    let status = crate::jobs::apply_event(state, &node, &LifecycleEvent::Heartbeat, now).await?;
    Ok(HeartbeatResponse {
        status,
        heartbeat_interval_secs: interval_secs(&state.config),
    })
}

/// Parses a node id from a path segment.
pub fn parse_node_id(s: &str) -> ApiResult<NodeId> {
    NodeId::parse(s).map_err(ApiError::from)
}

/// `GET /api/nodes`.
pub async fn list_nodes(state: &AppState, q: NodeListQuery) -> ApiResult<Page<NodeView>> {
    let page = page_of(q.limit, q.offset)?;
    let filter = NodeFilter {
        status: q.status,
        wallet: q.wallet,
    };
    let p = state.store.list_nodes(&filter, page).await?;
    Ok(Page {
        items: p.items.into_iter().map(NodeView::from).collect(),
        total: p.total,
        next_offset: p.next_offset,
    })
}

/// `GET /api/nodes/{id}`.
pub async fn node_detail(state: &AppState, id: &NodeId) -> ApiResult<NodeDetail> {
    let node = state
        .store
        .get_node(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))?;
    let (last_seen, history, gpu_collector) = tokio::try_join!(
        state.store.last_seen(id),
        state.store.status_history(id),
        state.store.gpu_collector(id)
    )?;
    Ok(NodeDetail {
        node: node.into(),
        last_seen,
        gpu_collector,
        history,
    })
}

/// `GET /api/nodes/attestation-challenge`: a fresh random nonce, signed by the coordinator,
/// valid for [`crate::HttpConfig::attestation_challenge_ttl`].
pub fn attestation_challenge(
    state: &AppState,
    q: &ChallengeQuery,
    now: Timestamp,
) -> ApiResult<ChallengeResponse> {
    let expires_at = bitsage_core::time::after(now, state.config.attestation_challenge_ttl)
        .ok_or_else(|| ApiError::internal(&"attestation challenge expiry out of range"))?;
    let nonce: [u8; ATTESTATION_NONCE_LEN] = rand::random();
    Ok(AttestationChallenge::signed(
        state.signing_key(),
        q.public_key,
        nonce,
        expires_at,
    ))
}

/// `GET /api/nodes/{id}/attestation`: the evidence the node registered with; 404 when it
/// registered without answering a challenge.
pub async fn attestation_evidence(state: &AppState, id: &NodeId) -> ApiResult<AttestationEvidence> {
    let node = state
        .store
        .get_node(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))?;
    let evidence = node.hardware.attestation.ok_or_else(|| {
        ApiError::not_found(format!(
            "node {id} registered without answering an attestation challenge"
        ))
    })?;
    Ok(AttestationEvidence {
        node_id: node.id,
        summary: evidence.summary(),
        evidence,
    })
}

/// The version this coordinator reports in `GET /api/coordinator`.
pub const COORDINATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /api/coordinator`: the deployment's network, public key and key id.
pub fn coordinator_info(state: &AppState) -> bitsage_core::deployment::DeploymentInfo {
    state.deployment.info(COORDINATOR_VERSION)
}

/// `GET /api/receipts`.
pub async fn list_receipts(state: &AppState, q: ReceiptListQuery) -> ApiResult<Page<ReceiptView>> {
    let page = page_of(q.limit, q.offset)?;
    let filter = ReceiptFilter {
        node: q.node,
        window: window_of(q.from, q.to)?,
        kind: q.kind,
    };
    let p = state.store.list_receipts(&filter, page).await?;
    Ok(Page {
        items: p.items.into_iter().map(ReceiptView::from).collect(),
        total: p.total,
        next_offset: p.next_offset,
    })
}

/// `GET /api/receipts/{id}` (with the proof envelope when `with_proof`).
pub async fn receipt(state: &AppState, id: &str, with_proof: bool) -> ApiResult<ReceiptBundle> {
    let id = ReceiptId::parse(id)?;
    let receipt = state
        .store
        .get_receipt(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("receipt {id} not found")))?;
    let envelope = if with_proof {
        let (job, hash) = (receipt.body.job_id, receipt.body.proof_hash);
        let envelope = state.proofs.get_proof(&hash).await?.ok_or_else(|| {
            ApiError::not_found(format!(
                "the proof of job {job} (hash {hash}) is not in the deployment's proof store"
            ))
        })?;
        Some(envelope)
    } else {
        None
    };
    Ok(ReceiptBundle {
        receipt: ReceiptView::from(receipt),
        envelope,
    })
}

/// `GET /api/earnings/{node}` as JSON (the CSV form is [`earnings_csv`] of this).
pub async fn earnings(
    state: &AppState,
    node: &NodeId,
    q: &EarningsQuery,
) -> ApiResult<EarningsResponse> {
    let window = window_of(q.from, q.to)?;
    if state.store.get_node(node).await?.is_none() {
        return Err(ApiError::not_found(format!("node {node} not found")));
    }
    let all = TimeWindow {
        from: window_start(),
        to: window_end(),
    };
    let (total, days) = tokio::try_join!(
        state.store.earnings_total(node, window),
        state.store.earnings_by_day(node, window.unwrap_or(all)),
    )?;
    Ok(EarningsResponse {
        node_id: node.clone(),
        from: q.from,
        to: q.to,
        total: total.into(),
        days: days.into_iter().map(Into::into).collect(),
    })
}

/// The CSV form of earnings: a header row, then one row per UTC day, amounts in exact base
/// units.
pub fn earnings_csv(e: &EarningsResponse) -> String {
    let mut out = String::from("day,entries,gross,fee,net\n");
    for d in &e.days {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            d.day, d.total.entries, d.total.gross, d.total.fee, d.total.net
        );
    }
    out
}

/// `GET /api/network/stats`: counts from the store.
pub async fn network_stats(state: &AppState) -> ApiResult<NetworkStats> {
    // Only the totals are needed: ask for the smallest page.
    let one = PageRequest {
        limit: 1,
        offset: 0,
    };
    let active = NodeFilter {
        status: Some(NodeStatus::Active),
        wallet: None,
    };
    let completed = JobFilter {
        status: Some(JobStatus::Completed),
        node: None,
    };
    let all = NodeFilter::default();
    let (a, t, j) = tokio::try_join!(
        state.store.list_nodes(&active, one),
        state.store.list_nodes(&all, one),
        state.store.count_jobs(&completed),
    )?;
    Ok(NetworkStats {
        active_workers: a.total,
        total_workers: t.total,
        total_jobs_processed: j,
    })
}

/// Readiness: whether the store answers a cheap query within the configured timeout.
pub async fn readiness(state: &AppState) -> HealthResponse {
    let backend = state.store.backend().to_string();
    let one = PageRequest {
        limit: 1,
        offset: 0,
    };
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        state.config.readiness_timeout,
        state.store.list_nodes(&NodeFilter::default(), one),
    )
    .await;
    let store = match outcome {
        Ok(Ok(_)) => ComponentHealth {
            status: HealthStatus::Ok,
            backend,
            latency_ms: Some(started.elapsed().as_secs_f64() * 1e3),
            error: None,
        },
        Ok(Err(e)) => {
            let error = match &e {
                Error::Unavailable { .. } => e.to_string(),
                _ => {
                    tracing::error!(error = %e, "readiness check: store query failed");
                    "store query failed".to_string()
                }
            };
            ComponentHealth {
                status: HealthStatus::Unavailable,
                backend,
                latency_ms: None,
                error: Some(error),
            }
        }
        Err(_) => ComponentHealth {
            status: HealthStatus::Unavailable,
            backend,
            latency_ms: None,
            error: Some(format!(
                "no answer within {} ms",
                state.config.readiness_timeout.as_millis()
            )),
        },
    };
    HealthResponse {
        status: store.status,
        components: HealthComponents { store },
    }
}
