//! Jobs: submission by clients; leases, completions and failure reports by agents; probes for
//! pending nodes. Plain async functions over [`AppState`] (no HTTP types), called by the
//! handlers in [`crate::routes`].
//!
//! A completion is accepted only after the coordinator verified the proof **itself**
//! (`state.verifier`, its own ≥ 96-bit policy, against the job spec it stored — never the
//! envelope's word) and checked every field of the node-signed receipt against the job, the
//! proof and its own fee. Then the proof is stored (by hash) and the completion settles in
//! **one store transaction** — the job's result, the countersigned receipt, the ledger credit
//! and their events. A retried completion of a job this node already completed with the same
//! proof settles again idempotently, so a coordinator killed half-way loses nothing once the
//! agent retries.

use bitsage_core::job::{JobResult, LeaseRef, NewJob, VerifiedCompletion};
use bitsage_core::ledger::EarningEntry;
use bitsage_core::node::NodeRecord;
use bitsage_core::proof::VerifiedProof;
use bitsage_core::receipt::{Receipt, ReceiptBody};
use bitsage_core::{
    EntryId, Error, JobId, JobKind, JobSpec, JobStatus, LifecycleEvent, NodeId, NodeStatus,
    ReceiptId, Timestamp, TokenAmount,
};
use rand::Rng;

use crate::api::{
    Assignment, CompleteRequest, CompleteResponse, FailRequest, JobView, LeaseRequest,
    LeaseResponse, ProbeTicket, ReceiptView, SubmitJobRequest, MAX_FAIL_REASON_LEN,
    MAX_JOB_ATTEMPTS,
};
use crate::error::{ApiError, ApiResult};
use crate::service::check_skew;
use crate::AppState;

/// Attempts a job gets when the client does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The one answer to a signed request whose sender has not proven its key (unknown node or
/// bad signature), so it does not tell whether a node id exists.
pub const REQUEST_REJECTED: &str = "request rejected: unknown node or bad signature";

/// The error `type` of a completion whose envelope was altered in transit (400; the agent
/// sends it again, the node is not blamed).
pub const TRANSPORT_ERROR: &str = "transport_error";

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /api/jobs`: queues a job. When the coordinator has a submit token, `bearer` must
/// equal it (401 otherwise).
pub async fn submit(
    state: &AppState,
    req: SubmitJobRequest,
    bearer: Option<&str>,
    now: Timestamp,
) -> ApiResult<JobView> {
    if let Some(token) = &state.config.submit_token {
        let ok = bearer.is_some_and(|b| constant_time_eq(b.as_bytes(), token.as_bytes()));
        if !ok {
            return Err(ApiError::unauthorized(
                "job submission needs `Authorization: Bearer <token>`",
            ));
        }
    }
    let max_attempts = req.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=MAX_JOB_ATTEMPTS).contains(&max_attempts) {
        return Err(ApiError::invalid(format!(
            "max_attempts must be 1 ..= {MAX_JOB_ATTEMPTS}"
        )));
    }
    let spec = JobSpec::new(JobId::new(), req.job)?;
    let record = state
        .store
        .enqueue_job(&NewJob {
            spec,
            payment: req.payment,
            max_attempts,
            submitted_at: now,
        })
        .await?;
    Ok(record.into())
}

/// `GET /api/jobs/{id}`.
pub async fn get(state: &AppState, id: &str) -> ApiResult<JobView> {
    let id = JobId::parse(id)?;
    state
        .store
        .get_job(&id)
        .await?
        .map(JobView::from)
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
}

/// Authenticates a signed agent request: the node exists, `verify` accepts the signature
/// with its stored key, `sent_at` is within the skew window and the message (its
/// `signed_bytes`) was not accepted before by any coordinator sharing the store. Returns the
/// node.
async fn authenticate(
    state: &AppState,
    node_id: &NodeId,
    sent_at: Timestamp,
    signed_bytes: &[u8],
    verify: impl FnOnce(&bitsage_core::crypto::PublicKey) -> Result<(), Error>,
    now: Timestamp,
) -> ApiResult<NodeRecord> {
    let node = state
        .store
        .get_node(node_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized(REQUEST_REJECTED))?;
    verify(&node.public_key).map_err(|_| ApiError::unauthorized(REQUEST_REJECTED))?;
    check_skew(sent_at, now, state.config.max_clock_skew)?;
    bitsage_core::replay::accept_once(
        &*state.replay,
        signed_bytes,
        sent_at,
        state.config.max_clock_skew,
    )
    .await?;
    Ok(node)
}

fn forbidden_if_quarantined(node: &NodeRecord) -> ApiResult<()> {
    if node.status == NodeStatus::Quarantined {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!("node {} is quarantined: {}", node.id, node.status_reason),
        ));
    }
    Ok(())
}

/// Applies a lifecycle event to `node` through [`bitsage_core::service::lifecycle::apply`]
/// (the one place lifecycle events are applied) and logs a move.
pub async fn apply_event(
    state: &AppState,
    node: &NodeRecord,
    event: &LifecycleEvent,
    now: Timestamp,
) -> ApiResult<NodeStatus> {
    let status = bitsage_core::service::lifecycle::apply(&*state.store, node, event, now).await?;
    if status != node.status {
        tracing::info!(node = %node.id, from = %node.status, to = %status, event = event.name(), "node status changed");
    }
    Ok(status)
}

/// The fee and net of a payment under the coordinator's fee.
pub fn split_payment(
    state: &AppState,
    payment: TokenAmount,
) -> ApiResult<(TokenAmount, TokenAmount)> {
    Ok(bitsage_core::ledger::split_payment(
        payment,
        state.config.fee_bps,
    )?)
}

/// `POST /api/jobs/lease`: a probe for a pending node, the oldest queued job for an active
/// one, nothing for a stale or offline one (it must heartbeat first); 403 for a quarantined
/// node.
pub async fn lease(
    state: &AppState,
    req: LeaseRequest,
    now: Timestamp,
) -> ApiResult<LeaseResponse> {
    let node = authenticate(
        state,
        &req.node_id,
        req.sent_at,
        &req.canonical_bytes(),
        |k| req.verify(k),
        now,
    )
    .await?;
    forbidden_if_quarantined(&node)?;
    let retry_after_secs = state.config.idle_retry.as_secs().max(1);
    let assignment = match node.status {
        NodeStatus::Pending => Some(Assignment::Probe {
            ticket: probe_ticket(state, &node.id, now)?,
        }),
        NodeStatus::Active => {
            match state
                .store
                .lease_job(&node.id, now, state.config.lease_duration)
                .await?
            {
                Some(lease) => {
                    let (fee, net) = split_payment(state, lease.payment)?;
                    tracing::info!(node = %node.id, job = %lease.spec.id, attempt = lease.attempt, "job leased");
                    Some(Assignment::Job { lease, fee, net })
                }
                None => None,
            }
        }
        NodeStatus::Stale | NodeStatus::Offline | NodeStatus::Quarantined => None,
    };
    Ok(LeaseResponse {
        assignment,
        retry_after_secs,
        node_status: node.status,
    })
}

fn probe_ticket(state: &AppState, node: &NodeId, now: Timestamp) -> ApiResult<ProbeTicket> {
    let spec = JobSpec::new(
        JobId::new(),
        JobKind::Poseidon2Chain {
            seed: rand::thread_rng().gen(),
            length: state.config.probe_chain_length,
        },
    )?;
    let expires_at = bitsage_core::time::after(now, state.config.probe_ttl)
        .ok_or_else(|| ApiError::internal(&"probe expiry out of range"))?;
    Ok(ProbeTicket::signed(
        state.signing_key(),
        node.clone(),
        spec,
        expires_at,
    ))
}

/// Verifies a proof with the coordinator's own verifier. A rejected proof quarantines the
/// node (and, for a leased job, fails the attempt) and answers 422.
async fn verify_or_quarantine(
    state: &AppState,
    node: &NodeRecord,
    spec: &JobSpec,
    req: &CompleteRequest,
    lease: Option<&LeaseRef>,
    now: Timestamp,
) -> ApiResult<VerifiedProof> {
    match state.verifier.verify(spec, &req.envelope).await {
        Ok(v) => Ok(v),
        Err(Error::ProofRejected(detail)) => {
            tracing::warn!(node = %node.id, job = %spec.id, %detail, "proof rejected; quarantining the node");
            if let Some(lease) = lease {
                if let Err(e) = state
                    .store
                    .fail_job(lease, &format!("proof rejected: {detail}"), now)
                    .await
                {
                    tracing::warn!(error = %e, job = %spec.id, "could not fail the job after a rejected proof");
                }
            }
            let event = LifecycleEvent::InvalidProof {
                job_id: spec.id.to_string(),
                detail: detail.clone(),
            };
            apply_event(state, node, &event, now).await?;
            Err(ApiError::from(Error::ProofRejected(detail)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/jobs/complete`.
pub async fn complete(
    state: &AppState,
    req: CompleteRequest,
    now: Timestamp,
) -> ApiResult<CompleteResponse> {
    let node = authenticate(
        state,
        &req.node_id,
        req.sent_at,
        &req.canonical_bytes(),
        |k| req.verify(k),
        now,
    )
    .await?;
    // The node signed the digest of the envelope it sent: bytes that no longer hash to it
    // were altered on the way. That is no fault of the node's — refuse before verification
    // (which would quarantine it) and let it send again.
    if req.envelope.transport_digest() != req.envelope_digest {
        tracing::warn!(node = %node.id, job = %req.job_id, "proof envelope altered in transit");
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            TRANSPORT_ERROR,
            "the proof envelope does not match the digest the node signed: it was altered in \
             transit; send it again",
        ));
    }
    forbidden_if_quarantined(&node)?;
    match (&req.probe, &req.lease_id) {
        (Some(_), None) => complete_probe(state, node, req, now).await,
        (None, Some(_)) => complete_job(state, node, req, now).await,
        _ => Err(ApiError::invalid(
            "exactly one of `probe` (a probe) and `lease_id` (a leased job) must be given",
        )),
    }
}

async fn complete_probe(
    state: &AppState,
    node: NodeRecord,
    req: CompleteRequest,
    now: Timestamp,
) -> ApiResult<CompleteResponse> {
    let Some(ticket) = &req.probe else {
        return Err(ApiError::invalid("missing probe ticket"));
    };
    if req.receipt.is_some() || req.receipt_signature.is_some() {
        return Err(ApiError::invalid("a probe has no receipt"));
    }
    ticket
        .verify(&state.public_key())
        .map_err(|_| ApiError::unauthorized("probe ticket was not issued by this coordinator"))?;
    if ticket.node_id != node.id || ticket.spec.id != req.job_id {
        return Err(ApiError::invalid("probe ticket is for another node or job"));
    }
    if now > ticket.expires_at {
        return Err(ApiError::conflict(format!(
            "probe expired at {}; lease again for a new one",
            ticket.expires_at
        )));
    }
    let verified = verify_or_quarantine(state, &node, &ticket.spec, &req, None, now).await?;
    let status = match node.status {
        NodeStatus::Pending => {
            let event = LifecycleEvent::ProbePassed {
                job_id: ticket.spec.id.to_string(),
            };
            apply_event(state, &node, &event, now).await?
        }
        other => other,
    };
    Ok(CompleteResponse {
        receipt: None,
        node_status: status,
        security_bits: verified.security_bits,
    })
}

/// Checks the node-signed receipt body against what the coordinator knows.
fn check_receipt_body(
    state: &AppState,
    node: &NodeRecord,
    job: &bitsage_core::job::JobRecord,
    body: &ReceiptBody,
    now: Timestamp,
) -> ApiResult<()> {
    let (fee, net) = split_payment(state, job.payment)?;
    let mismatch = |field: &str| {
        Err(ApiError::invalid(format!(
            "receipt field `{field}` does not match the job, the node or the coordinator's terms"
        )))
    };
    if body.id != ReceiptId(job.spec.id.0) {
        return Err(ApiError::invalid(
            "receipt id must equal the job id (one receipt per job)",
        ));
    }
    if body.job_id != job.spec.id {
        return mismatch("job_id");
    }
    if body.kind != job.spec.kind.name() {
        return mismatch("kind");
    }
    if body.node_id != node.id {
        return mismatch("node_id");
    }
    if body.node_key != node.public_key {
        return mismatch("node_key");
    }
    if body.coordinator_key != state.public_key() {
        return mismatch("coordinator_key");
    }
    if body.payment != job.payment {
        return mismatch("payment");
    }
    if body.fee != fee {
        return mismatch("fee");
    }
    if body.net != net {
        return mismatch("net");
    }
    check_skew(body.completed_at, now, state.config.max_clock_skew)
        .map_err(|_| ApiError::invalid("receipt completed_at is outside the clock-skew window"))?;
    Ok(())
}

async fn complete_job(
    state: &AppState,
    node: NodeRecord,
    req: CompleteRequest,
    now: Timestamp,
) -> ApiResult<CompleteResponse> {
    let (Some(lease_id), Some(body), Some(receipt_sig)) =
        (req.lease_id, &req.receipt, &req.receipt_signature)
    else {
        return Err(ApiError::invalid(
            "a leased job's completion needs `lease_id`, `receipt` and `receipt_signature`",
        ));
    };
    let job = state
        .store
        .get_job(&req.job_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {} not found", req.job_id)))?;
    let lease = LeaseRef {
        job_id: job.spec.id,
        lease_id,
        node_id: node.id.clone(),
    };
    // A retry of a completion this node already got accepted (e.g. the coordinator restarted
    // before answering): redo only the idempotent steps below.
    let already_done = job.status == JobStatus::Completed
        && job.completed_by.as_ref() == Some(&node.id)
        && job
            .result
            .as_ref()
            .is_some_and(|r| r.proof_hash == req.envelope.proof_hash);
    if !already_done {
        // The lease check comes before the (expensive) verification.
        job.check_lease(&lease, now)?;
    }
    check_receipt_body(state, &node, &job, body, now)?;
    if body
        .node_key
        .verify(&body.canonical_bytes(), receipt_sig)
        .is_err()
    {
        let event = LifecycleEvent::BadSignature {
            detail: format!("receipt signature for job {} does not verify", job.spec.id),
        };
        apply_event(state, &node, &event, now).await?;
        return Err(ApiError::unauthorized(
            "receipt signature does not verify; node quarantined",
        ));
    }
    let verified = if already_done {
        // Accepted before with this proof's hash; verifying again is cheap and keeps the
        // answer honest.
        state.verifier.verify(&job.spec, &req.envelope).await?
    } else {
        verify_or_quarantine(state, &node, &job.spec, &req, Some(&lease), now).await?
    };
    if body.output != verified.output || body.proof_hash != verified.proof_hash {
        return Err(ApiError::invalid(
            "receipt output or proof_hash does not match the verified proof",
        ));
    }
    // The proof is content-addressed and stored first (an orphan copy after a failed
    // settlement is harmless); then the job's result, the receipt, the credit and their events
    // commit in one transaction.
    let proof_ref = state.proofs.put_proof(&req.envelope).await?;
    let receipt = Receipt::countersign(body.clone(), *receipt_sig, state.signing_key())?;
    let completion = VerifiedCompletion {
        lease,
        result: JobResult {
            output: verified.output.clone(),
            proof_hash: verified.proof_hash,
            proof_ref,
            completed_at: now,
        },
        receipt: receipt.clone(),
        entry: EarningEntry {
            id: EntryId(job.spec.id.0),
            node_id: node.id.clone(),
            job_id: job.spec.id,
            gross: body.payment,
            fee: body.fee,
            net: body.net,
            credited_at: body.completed_at,
        },
    };
    state.store.settle_completion(&completion, now).await?;
    tracing::info!(node = %node.id, job = %job.spec.id, net = %body.net, "job completed, receipt countersigned, node credited");
    Ok(CompleteResponse {
        receipt: Some(ReceiptView::from(receipt)),
        node_status: node.status,
        security_bits: verified.security_bits,
    })
}

/// `POST /api/jobs/fail`: the node gives its lease back; the job is re-queued (or failed at
/// its retry limit).
pub async fn fail(state: &AppState, req: FailRequest, now: Timestamp) -> ApiResult<JobView> {
    let node = authenticate(
        state,
        &req.node_id,
        req.sent_at,
        &req.canonical_bytes(),
        |k| req.verify(k),
        now,
    )
    .await?;
    if req.reason.is_empty()
        || req.reason.len() > MAX_FAIL_REASON_LEN
        || req.reason.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!(
            "reason must be 1 to {MAX_FAIL_REASON_LEN} printable characters"
        )));
    }
    let job = state
        .store
        .fail_job(
            &req.lease_ref(),
            &format!("{}: {}", node.id, req.reason),
            now,
        )
        .await?;
    tracing::info!(node = %node.id, job = %job.spec.id, status = %job.status, reason = %req.reason, "lease given back");
    Ok(job.into())
}
