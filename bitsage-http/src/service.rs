//! The read side of the API (lists, details, earnings, statistics, readiness) as plain async
//! functions over the store, and the mapping of the core's use-case results
//! ([`bitsage_core::service::Coordinator`]) to the wire views. No HTTP types.

use std::fmt::Write as _;
use std::time::Instant;

use bitsage_core::job::JobFilter;
use bitsage_core::node::{NodeFilter, NodeRecord};
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::receipt::ReceiptFilter;
use bitsage_core::service::jobs::{Completion, LeaseOutcome};
use bitsage_core::service::nodes::Registered;
use bitsage_core::{
    Error, JobId, JobStatus, JobStoreExt as _, NodeId, NodeStatus, ReceiptId, TimeWindow, Timestamp,
};

use crate::api::{
    AttestationEvidence, CompleteResponse, ComponentHealth, EarningsQuery, EarningsResponse,
    HealthComponents, HealthMetrics, HealthReport, HealthResponse, HealthStatus, HeartbeatResponse,
    JobView, LeaseResponse, NamedComponent, NetworkStats, NodeDetail, NodeListQuery, NodeView,
    ReceiptBundle, ReceiptListQuery, ReceiptView, RegisterResponse,
};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// A window from optional bounds: `None` when neither is given.
pub fn window_of(
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Option<TimeWindow>, Error> {
    if from.is_none() && to.is_none() {
        return Ok(None);
    }
    TimeWindow::new(
        from.unwrap_or_else(bitsage_core::time::earliest),
        to.unwrap_or_else(bitsage_core::time::latest),
    )
    .map(Some)
}

/// A page from optional `limit`/`offset` (defaults 100 and 0).
pub fn page_of(limit: Option<u32>, offset: Option<u64>) -> Result<PageRequest, Error> {
    let d = PageRequest::default();
    PageRequest::new(limit.unwrap_or(d.limit), offset.unwrap_or(d.offset))
}

/// The answer to a registration.
pub fn register_response(state: &AppState, r: Registered) -> RegisterResponse {
    RegisterResponse {
        node: NodeView::from(r.node),
        heartbeat_interval_secs: state.coordinator.advertised_heartbeat_interval().as_secs(),
        coordinator_public_key: state.public_key(),
    }
}

/// The answer to an accepted heartbeat, with the interval the coordinator wants now (raised
/// while ingest is behind: [`bitsage_core::service::Coordinator::advertised_heartbeat_interval`]).
pub fn heartbeat_response(state: &AppState, status: NodeStatus) -> HeartbeatResponse {
    HeartbeatResponse {
        status,
        heartbeat_interval_secs: state.coordinator.advertised_heartbeat_interval().as_secs(),
    }
}

/// The answer to a lease request.
pub fn lease_response(state: &AppState, o: LeaseOutcome) -> LeaseResponse {
    LeaseResponse {
        assignment: o.assignment,
        retry_after_secs: state.policy().idle_retry.as_secs().max(1),
        node_status: o.node_status,
        waiting_reason: o.waiting_reason,
    }
}

/// The answer to an accepted completion.
pub fn complete_response(c: Completion) -> CompleteResponse {
    CompleteResponse {
        receipt: c.receipt.map(ReceiptView::from),
        node_status: c.node_status,
        security_bits: c.security_bits,
    }
}

/// `GET /api/jobs/{id}`.
pub async fn job(state: &AppState, id: &str) -> ApiResult<JobView> {
    let id = JobId::parse(id)?;
    state
        .store
        .get_job(&id)
        .await?
        .map(JobView::from)
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
}

/// Parses a node id from a path segment.
pub fn parse_node_id(s: &str) -> ApiResult<NodeId> {
    NodeId::parse(s).map_err(ApiError::from)
}

/// Most bytes of items one list page answers with; a page that would be larger ends early
/// and its `next_offset` points at the first item left out.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// `items` (from offset `page.offset`) cut to at most [`MAX_PAGE_BYTES`] of JSON, at least
/// one item.
pub fn byte_capped<T: serde::Serialize>(
    items: Vec<T>,
    page: PageRequest,
    total: u64,
    next_offset: Option<u64>,
) -> Page<T> {
    let mut used = 0usize;
    let mut keep = items.len();
    for (i, item) in items.iter().enumerate() {
        used += serde_json::to_vec(item).map_or(0, |v| v.len() + 1);
        if used > MAX_PAGE_BYTES && i > 0 {
            keep = i;
            break;
        }
    }
    let cut = keep < items.len();
    let mut items = items;
    items.truncate(keep);
    Page {
        next_offset: if cut {
            Some(page.offset + keep as u64)
        } else {
            next_offset
        },
        items,
        total,
    }
}

/// `GET /api/nodes`, limited to `wallets` when given (an operator's organisation: its few
/// wallets' nodes are gathered and paged here).
pub async fn list_nodes(
    state: &AppState,
    q: NodeListQuery,
    wallets: Option<Vec<bitsage_core::WalletAddress>>,
) -> ApiResult<Page<NodeView>> {
    let page = page_of(q.limit, q.offset)?;
    let filter = node_filter(&q)?;
    if let Some(wallets) = wallets {
        let mut nodes = Vec::new();
        for w in wallets.iter().filter(|w| q.wallet.is_none_or(|q| q == **w)) {
            let f = NodeFilter {
                wallet: Some(*w),
                ..filter.clone()
            };
            nodes.extend(state.store.all_nodes(&f).await?);
        }
        nodes.sort_by(|a, b| (a.registered_at, &a.id).cmp(&(b.registered_at, &b.id)));
        let total = nodes.len() as u64;
        let items: Vec<NodeView> = nodes
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(page.limit as usize)
            .map(NodeView::from)
            .collect();
        let end = page.offset + items.len() as u64;
        let next = (end < total).then_some(end);
        return Ok(byte_capped(items, page, total, next));
    }
    let p = state.store.list_nodes(&filter, page).await?;
    Ok(byte_capped(
        p.items.into_iter().map(NodeView::from).collect(),
        page,
        p.total,
        p.next_offset,
    ))
}

/// The store filter of a node list query: region and energy tag must be valid names, a
/// label `key=value`.
pub fn node_filter(q: &NodeListQuery) -> Result<NodeFilter, Error> {
    if let Some(r) = &q.region {
        bitsage_core::node::check_region(r)?;
    }
    if let Some(t) = &q.energy_tag {
        bitsage_core::node::check_energy_tag(t)?;
    }
    let label = match &q.label {
        None => None,
        Some(l) => {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| Error::invalid("label", "must be `key=value`"))?;
            bitsage_core::node::check_label_key(k)?;
            Some((k.to_string(), v.to_string()))
        }
    };
    for (what, v) in [
        ("reputation_min", q.reputation_min),
        ("reputation_max", q.reputation_max),
    ] {
        if v.is_some_and(|v| v > 100) {
            return Err(Error::invalid(what, "must be 0 ..= 100"));
        }
    }
    Ok(NodeFilter {
        status: q.status,
        wallet: q.wallet,
        region: q.region.clone(),
        runtime: q.runtime,
        label,
        energy_tag: q.energy_tag.clone(),
        reputation_min: q.reputation_min,
        reputation_max: q.reputation_max,
    })
}

/// `GET /api/nodes/{id}` of `node` (already read and checked visible).
pub async fn node_detail(state: &AppState, node: NodeRecord) -> ApiResult<NodeDetail> {
    let id = &node.id;
    let now = bitsage_core::time::now();
    let (last_seen, history, gpu_collector, operations) = tokio::try_join!(
        state.store.last_seen(id),
        state.store.status_history(id),
        state.store.gpu_collector(id),
        bitsage_core::service::fleet::node_operations(&*state.store, &node, now),
    )?;
    Ok(NodeDetail {
        node: node.into(),
        last_seen,
        gpu_collector,
        history,
        operations,
    })
}

/// `GET /api/nodes/{id}/attestation` of `node`: the evidence it registered with; 404 when it
/// registered without answering a challenge.
pub fn attestation_evidence(node: NodeRecord) -> ApiResult<AttestationEvidence> {
    let evidence = node.hardware.attestation.ok_or_else(|| {
        ApiError::not_found(format!(
            "node {} registered without answering an attestation challenge",
            node.id
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

/// `GET /api/coordinator`: the deployment's network, public key and key id, and the chain
/// wallet proofs are checked on (left out, with a log line, while the chain cannot say).
pub async fn coordinator_info(state: &AppState) -> bitsage_core::deployment::DeploymentInfo {
    let mut info = state.deployment.info(COORDINATOR_VERSION);
    match state.coordinator.wallet_chain_id().await {
        Ok(id) => info.wallet_chain_id = id,
        Err(e) => tracing::warn!(error = %e, "wallet chain id unavailable"),
    }
    match state.coordinator.payment_chain_id().await {
        Ok(id) => info.payment_chain_id = id,
        Err(e) => tracing::warn!(error = %e, "payment chain id unavailable"),
    }
    info
}

/// `GET /api/receipts`.
pub async fn list_receipts(state: &AppState, q: ReceiptListQuery) -> ApiResult<Page<ReceiptView>> {
    let page = page_of(q.limit, q.offset)?;
    let filter = ReceiptFilter {
        node: q.node,
        window: window_of(q.from, q.to)?,
        kind: q.kind,
        ..ReceiptFilter::default()
    };
    receipts_page(state, &filter, page).await
}

/// A page of the receipts matching `filter` (also the console's search, newest first).
pub async fn receipts_page(
    state: &AppState,
    filter: &ReceiptFilter,
    page: PageRequest,
) -> ApiResult<Page<ReceiptView>> {
    let p = state.store.list_receipts(filter, page).await?;
    Ok(byte_capped(
        p.items.into_iter().map(ReceiptView::from).collect(),
        page,
        p.total,
        p.next_offset,
    ))
}

/// `GET /api/receipts/{id}` (with the proof envelope when `with_proof`).
pub async fn receipt(
    state: &AppState,
    id: &str,
    with_proof: bool,
    with_inclusion: bool,
) -> ApiResult<ReceiptBundle> {
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
                "the proof of job {job} (hash {hash}) is not in the deployment's proof store \
                 (proofs may be deleted after the configured retention window; the receipt's \
                 signatures still verify without it)"
            ))
        })?;
        Some(envelope)
    } else {
        None
    };
    let inclusion = if with_inclusion {
        inclusion_of(state, &id).await?
    } else {
        None
    };
    Ok(ReceiptBundle {
        receipt: ReceiptView::from(receipt),
        envelope,
        inclusion,
    })
}

/// A receipt's inclusion proof, once it is in an epoch.
async fn inclusion_of(
    state: &AppState,
    id: &ReceiptId,
) -> ApiResult<Option<bitsage_core::settlement::InclusionProof>> {
    let Some(epoch_id) = state.store.receipt_epoch(id).await? else {
        return Ok(None);
    };
    let epoch = state.store.epoch(epoch_id).await?.ok_or_else(|| {
        ApiError::internal(&format!("epoch {epoch_id} of receipt {id} is missing"))
    })?;
    Ok(epoch.inclusion(id))
}

/// `GET /api/receipts/{id}/inclusion`: the epoch, Merkle path and settlement transaction of
/// a receipt; 409 while it waits for an epoch.
pub async fn receipt_inclusion(
    state: &AppState,
    id: &str,
) -> ApiResult<bitsage_core::settlement::InclusionProof> {
    let id = ReceiptId::parse(id)?;
    let receipt = state
        .store
        .get_receipt(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("receipt {id} not found")))?;
    inclusion_of(state, &id).await?.ok_or_else(|| {
        ApiError::conflict(format!(
            "receipt {id} is pending settlement (completed {}, not yet in an epoch)",
            receipt.body.completed_at.to_rfc3339()
        ))
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
        from: bitsage_core::time::earliest(),
        to: bitsage_core::time::latest(),
    };
    let (total, days, all_time, pending) = tokio::try_join!(
        state.store.earnings_total(node, window),
        state.store.earnings_by_day(node, window.unwrap_or(all)),
        state.store.earnings_total(node, None),
        state.store.pending_settlement(node),
    )?;
    let settled = all_time.net.checked_sub(pending.net).unwrap_or_default();
    let mut periods: Vec<String> = days
        .iter()
        .filter_map(|d| d.day.and_hms_opt(0, 0, 0))
        .map(|d| bitsage_core::payout::period_of(d.and_utc()))
        .collect();
    periods.sort_unstable_by(|a, b| b.cmp(a));
    periods.dedup();
    let payouts = state.coordinator.payout_periods(node, &periods).await?;
    Ok(EarningsResponse {
        node_id: node.clone(),
        from: q.from,
        to: q.to,
        total: total.into(),
        days: days.into_iter().map(Into::into).collect(),
        settlement: crate::api::SettlementSplitView {
            settled_net: settled,
            settled_net_formatted: settled.format_sage(),
            pending_net: pending.net,
            pending_net_formatted: pending.net.format_sage(),
            pending_receipts: pending.receipts,
            oldest_pending_at: pending.oldest,
        },
        payouts,
    })
}

/// The CSV form of earnings: a header row, then one row per UTC day, amounts in exact base
/// units, with the payout state of the day's month.
pub fn earnings_csv(e: &EarningsResponse) -> String {
    let mut out = String::from("day,entries,gross,fee,net,payout_state\n");
    for d in &e.days {
        let month = d
            .day
            .and_hms_opt(0, 0, 0)
            .map(|d| bitsage_core::payout::period_of(d.and_utc()))
            .unwrap_or_default();
        let state = e
            .payouts
            .iter()
            .find(|p| p.period == month)
            .map_or("", |p| p.state.as_str());
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{}",
            d.day, d.total.entries, d.total.gross, d.total.fee, d.total.net, state
        );
    }
    out
}

/// `GET /api/network/stats`: counts from the store.
pub async fn network_stats(state: &AppState) -> ApiResult<NetworkStats> {
    let active = NodeFilter {
        status: Some(NodeStatus::Active),
        wallet: None,
        ..Default::default()
    };
    let completed = JobFilter {
        status: Some(JobStatus::Completed),
        node: None,
    };
    let all = NodeFilter::default();
    let (a, t, j) = tokio::try_join!(
        state.store.count_nodes(&active),
        state.store.count_nodes(&all),
        state.store.count_jobs(&completed),
    )?;
    Ok(NetworkStats {
        active_workers: a,
        total_workers: t,
        total_jobs_processed: j,
    })
}

/// Readiness: whether the store answers a cheap query within the configured timeout.
pub async fn readiness(state: &AppState) -> HealthResponse {
    let now = bitsage_core::time::now();
    let (store, chain, settlement) = tokio::join!(
        store_health(state),
        chain_health(state),
        settlement_health(state, now)
    );
    let indexer = indexer_health(state, now);
    let components = HealthComponents {
        store,
        chain,
        indexer,
        settlement,
    };
    // Only the store decides readiness; a failing chain, indexer or settlement degrades
    // the coordinator without taking it out of service.
    let status = if components.store.status != HealthStatus::Ok {
        HealthStatus::Unavailable
    } else if components
        .named()
        .iter()
        .any(|(_, c)| c.status != HealthStatus::Ok)
    {
        HealthStatus::Degraded
    } else {
        HealthStatus::Ok
    };
    HealthResponse { status, components }
}

fn component(
    status: HealthStatus,
    backend: &str,
    started: Instant,
    error: Option<String>,
) -> ComponentHealth {
    ComponentHealth {
        status,
        backend: backend.to_string(),
        latency_ms: (status != HealthStatus::Unavailable)
            .then(|| started.elapsed().as_secs_f64() * 1e3),
        error,
    }
}

async fn store_health(state: &AppState) -> ComponentHealth {
    let backend = state.store.backend();
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
    match outcome {
        Ok(Ok(_)) => component(HealthStatus::Ok, backend, started, None),
        Ok(Err(e)) => {
            let error = match &e {
                Error::Unavailable { .. } => e.to_string(),
                _ => {
                    tracing::error!(error = %e, "readiness check: store query failed");
                    "store query failed".to_string()
                }
            };
            component(HealthStatus::Unavailable, backend, started, Some(error))
        }
        Err(_) => component(
            HealthStatus::Unavailable,
            backend,
            started,
            Some(format!(
                "no answer within {} ms",
                state.config.readiness_timeout.as_millis()
            )),
        ),
    }
}

/// The chain RPC, when configured: one (cached) totals read within the readiness timeout.
async fn chain_health(state: &AppState) -> Option<ComponentHealth> {
    let chain = state.chain.as_ref()?;
    let started = Instant::now();
    let outcome = tokio::time::timeout(state.config.readiness_timeout, chain.totals()).await;
    Some(match outcome {
        Ok(Ok(_)) => component(HealthStatus::Ok, chain.name(), started, None),
        Ok(Err(e)) => component(
            HealthStatus::Unavailable,
            chain.name(),
            started,
            Some(match e {
                Error::Unavailable { .. } => e.to_string(),
                _ => "chain read failed".to_string(),
            }),
        ),
        Err(_) => component(
            HealthStatus::Unavailable,
            chain.name(),
            started,
            Some(format!(
                "no answer within {} ms",
                state.config.readiness_timeout.as_millis()
            )),
        ),
    })
}

/// The event indexer, when one runs: `degraded` when it is behind.
fn indexer_health(state: &AppState, now: Timestamp) -> Option<ComponentHealth> {
    let health = state.chain_info.as_ref()?.indexer_health()?;
    let started = Instant::now();
    Some(match health.behind(now) {
        None => component(HealthStatus::Ok, "indexer", started, None),
        Some(why) => component(HealthStatus::Degraded, "indexer", started, Some(why)),
    })
}

/// Settlement, when a settler is configured: `degraded` when verified work waits too long.
async fn settlement_health(state: &AppState, now: Timestamp) -> Option<ComponentHealth> {
    let started = Instant::now();
    match tokio::time::timeout(
        state.config.readiness_timeout,
        state.coordinator.settlement_health(now),
    )
    .await
    {
        Ok(Ok(None)) => None,
        Ok(Ok(Some(h))) if !h.late => {
            Some(component(HealthStatus::Ok, "settlement", started, None))
        }
        Ok(Ok(Some(h))) => Some(component(
            HealthStatus::Degraded,
            "settlement",
            started,
            Some(format!(
                "{} receipts wait; the oldest since {}",
                h.pending_receipts,
                h.oldest_pending_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            )),
        )),
        // The store itself is reported by its own component.
        Ok(Err(_)) | Err(_) => Some(component(
            HealthStatus::Degraded,
            "settlement",
            started,
            Some("the settlement backlog could not be read".into()),
        )),
    }
}

/// `GET /health`: the seed's health document.
pub async fn health_report(state: &AppState) -> HealthReport {
    let ready = readiness(state).await;
    let all = NodeFilter::default();
    let counts = async {
        let active = NodeFilter::status(NodeStatus::Active);
        let queued = bitsage_core::job::JobFilter {
            status: Some(JobStatus::Queued),
            node: None,
        };
        let leased = bitsage_core::job::JobFilter {
            status: Some(JobStatus::Leased),
            node: None,
        };
        tokio::try_join!(
            state.store.count_nodes(&all),
            state.store.count_nodes(&active),
            state.store.count_jobs(&queued),
            state.store.count_jobs(&leased),
        )
    };
    let counts = tokio::time::timeout(state.config.readiness_timeout, counts)
        .await
        .ok()
        .and_then(Result::ok);
    HealthReport {
        status: ready.status,
        version: COORDINATOR_VERSION.to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        components: ready
            .components
            .named()
            .into_iter()
            .map(|(name, c)| NamedComponent {
                name: name.to_string(),
                status: c.status,
                response_time_ms: c.latency_ms,
                error: c.error.clone(),
            })
            .collect(),
        metrics: HealthMetrics {
            nodes_total: counts.map(|c| c.0),
            nodes_active: counts.map(|c| c.1),
            jobs_queued: counts.map(|c| c.2),
            jobs_leased: counts.map(|c| c.3),
        },
    }
}
