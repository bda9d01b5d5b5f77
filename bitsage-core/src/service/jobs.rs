//! Job use cases: submission by clients; leases, completions and failure reports by agents;
//! probes for pending nodes.
//!
//! A completion is accepted only after the coordinator verified the proof **itself** (its
//! verifier's own ≥ 96-bit policy, against the job spec it stored — never the envelope's
//! word) and checked every field of the node-signed receipt against the job, the proof and
//! its own fee. Then the proof is stored (by hash) and the completion settles in **one store
//! transaction** — the job's result, the countersigned receipt, the ledger credit and their
//! events. A retried completion of a job this node already completed with the same proof
//! settles again idempotently, so a coordinator killed half-way loses nothing once the agent
//! retries (through it or another coordinator of the deployment).

use rand::Rng;

use crate::job::{JobRecord, JobResult, LeaseRef, NewJob, VerifiedCompletion};
use crate::ledger::EarningEntry;
use crate::message::{
    Assignment, CompleteRequest, FailRequest, LeaseRequest, NodeSignedMessage, ProbeTicket,
    SubmitJobRequest, MAX_FAIL_REASON_LEN, MAX_JOB_ATTEMPTS,
};
use crate::node::NodeRecord;
use crate::proof::VerifiedProof;
use crate::receipt::{Receipt, ReceiptBody};
use crate::telemetry::{FraudKind, ProofRejection};
use crate::time::check_skew;
use crate::{
    EntryId, Error, JobId, JobKind, JobSpec, JobStatus, LifecycleEvent, NodeId, NodeStatus,
    ReceiptId, Timestamp, TokenAmount,
};

use super::coordinator::{Coordinator, ServiceError, ServiceResult};
use super::stake::StakeVerdict;
use crate::funding::{Funding, PaymentClaim};
use crate::wallet::{AccountMessage, WalletCheck, MAX_WALLET_SIGNATURE_FELTS};

/// Attempts a job gets when the client does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The one answer to a signed request whose sender has not proven its key (unknown node or
/// bad signature), so it does not tell whether a node id exists.
pub const REQUEST_REJECTED: &str = "request rejected: unknown node or bad signature";

/// Why an unverified node gets no work from a coordinator that checks wallets.
pub const WALLET_NOT_PROVEN: &str = "wallet not proven: register again with the wallet \
account's signature (bitsage-agent run --wallet-key FILE, or --wallet-proof FILE)";

/// What a lease request gets.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseOutcome {
    /// The work, or `None` when there is none for this node now.
    pub assignment: Option<Assignment>,
    /// The node's status.
    pub node_status: NodeStatus,
    /// Why a pending node gets no probe (its stake, with a chain), in words.
    pub waiting_reason: Option<String>,
}

/// What an accepted completion gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The countersigned receipt (`None` for a probe).
    pub receipt: Option<Receipt>,
    /// The node's status afterwards (`active` after a passed probe).
    pub node_status: NodeStatus,
    /// The security level the proof was verified at, bits.
    pub security_bits: u32,
}

fn forbidden_if_quarantined(node: &NodeRecord) -> ServiceResult<()> {
    if node.status == NodeStatus::Quarantined {
        return Err(ServiceError::Forbidden(format!(
            "node {} is quarantined: {}",
            node.id, node.status_reason
        )));
    }
    Ok(())
}

impl Coordinator {
    /// The fee and net of a payment under this deployment's fee
    /// ([`crate::ledger::split_payment`]).
    pub fn split_payment(&self, payment: TokenAmount) -> Result<(TokenAmount, TokenAmount), Error> {
        crate::ledger::split_payment(payment, self.policy.fee_bps)
    }

    /// Queues a funded job: (with a submit token, `bearer` must equal it) the payer's
    /// signature over the [`PaymentClaim`] verifies with its account, the signed submission
    /// was not accepted before, and the payer's funds ([`crate::funding::FundingSource`])
    /// cover the payment, which is reserved in the same transaction as the job is queued —
    /// otherwise nothing is stored (`InsufficientFunds` → 402).
    pub async fn submit(
        &self,
        req: SubmitJobRequest,
        bearer: Option<&str>,
        now: Timestamp,
    ) -> ServiceResult<JobRecord> {
        if let Some(token) = &self.policy.submit_token {
            let ok = bearer
                .is_some_and(|b| crate::crypto::constant_time_eq(b.as_bytes(), token.as_bytes()));
            if !ok {
                return Err(ServiceError::Unauthorized(
                    "job submission needs `Authorization: Bearer <token>`".into(),
                ));
            }
        }
        let max_attempts = req.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_JOB_ATTEMPTS).contains(&max_attempts) {
            return Err(Error::invalid(
                "max_attempts",
                format!("must be 1 ..= {MAX_JOB_ATTEMPTS}"),
            )
            .into());
        }
        if req.payment > crate::message::MAX_JOB_PAYMENT {
            return Err(Error::invalid(
                "payment",
                format!(
                    "must be at most {} base units (2^128 - 1)",
                    crate::message::MAX_JOB_PAYMENT
                ),
            )
            .into());
        }
        // Refused here, not at every lease: the fee must be computable for this payment.
        self.split_payment(req.payment)
            .map_err(|_| Error::invalid("payment", "too large for the network fee arithmetic"))?;
        req.job.validate()?;
        check_skew(req.sent_at, now, self.policy.max_clock_skew)?;
        if req.signature.is_empty() || req.signature.len() > MAX_WALLET_SIGNATURE_FELTS {
            return Err(Error::invalid(
                "signature",
                format!("must have 1 to {MAX_WALLET_SIGNATURE_FELTS} elements"),
            )
            .into());
        }
        // The payer signed exactly this: the job, the payment, the attempt limit, the network.
        let claim = PaymentClaim::of(&req, self.deployment.network(), max_attempts);
        let Some(payers) = &self.payers else {
            return Err(Error::Unavailable {
                source_name: "payer verifier".into(),
                reason: "this coordinator cannot check payer signatures".into(),
            }
            .into());
        };
        match payers
            .check(&AccountMessage::JobPayment(claim.clone()), &req.signature)
            .await?
        {
            WalletCheck::Valid => {}
            WalletCheck::Refused(why) => {
                return Err(ServiceError::Unauthorized(format!(
                    "payment signature of account {} refused: {why}",
                    req.payer
                )))
            }
        }
        // Each signed submission is accepted once, by every coordinator of the deployment.
        crate::replay::accept_once(
            &*self.store,
            &claim.canonical_bytes(),
            req.sent_at,
            self.policy.max_clock_skew,
        )
        .await
        .map_err(|_| {
            ServiceError::Unauthorized(
                "this signed submission was already accepted (replay)".into(),
            )
        })?;
        let limit = self.funding.limit(&req.payer).await?;
        let spec = JobSpec::new(JobId::new(), req.job)?;
        let job = self
            .store
            .enqueue_job(&NewJob {
                spec,
                payment: req.payment,
                max_attempts,
                submitted_at: now,
                funding: Some(Funding {
                    payer: req.payer,
                    limit,
                }),
            })
            .await?;
        tracing::info!(job = %job.spec.id, payer = %req.payer, payment = %req.payment, "job accepted and its payment reserved");
        Ok(job)
    }

    /// Authenticates a signed agent request: the node exists, the signature verifies with its
    /// stored key, `sent_at` is within the skew window and the message (its signed bytes) was
    /// not accepted before by any coordinator sharing the store. Returns the node.
    async fn authenticate(
        &self,
        msg: &impl NodeSignedMessage,
        now: Timestamp,
    ) -> ServiceResult<NodeRecord> {
        let node = self.signed_sender(msg, REQUEST_REJECTED, now).await?;
        crate::replay::accept_once(
            &*self.store,
            &msg.signed_bytes(),
            msg.sent_at(),
            self.policy.max_clock_skew,
        )
        .await?;
        Ok(node)
    }

    /// A lease request: a probe for a pending node (with a chain, once its stake meets the
    /// gate, [`super::stake`]), the oldest queued job for an active one,
    /// nothing for a stale or offline one (it must heartbeat first); forbidden for a
    /// quarantined node.
    pub async fn lease(&self, req: LeaseRequest, now: Timestamp) -> ServiceResult<LeaseOutcome> {
        let node = self.authenticate(&req, now).await?;
        forbidden_if_quarantined(&node)?;
        // With a chain, only a proven wallet earns (a node registered before the chain was
        // configured proves it by registering again with the wallet's signature).
        if self.wallets.is_some() && node.wallet_proven_at.is_none() {
            self.store
                .set_status_reason(&node.id, node.status, WALLET_NOT_PROVEN)
                .await?;
            return Ok(LeaseOutcome {
                assignment: None,
                node_status: node.status,
                waiting_reason: Some(WALLET_NOT_PROVEN.into()),
            });
        }
        if let Some(d) = node.drain.as_ref().filter(|d| d.active_at(now)) {
            return Ok(LeaseOutcome {
                assignment: None,
                node_status: node.status,
                waiting_reason: Some(format!(
                    "draining until {} ({}): no new leases",
                    d.until.to_rfc3339(),
                    d.reason
                )),
            });
        }
        let mut waiting_reason = None;
        let assignment = match node.status {
            NodeStatus::Pending => match self.stake_verdict(&node).await {
                StakeVerdict::Eligible => Some(Assignment::Probe {
                    ticket: self.probe_ticket(&node.id, now)?,
                }),
                StakeVerdict::Below(reason) => {
                    // Shown as the node's status reason until its stake suffices.
                    self.store
                        .set_status_reason(&node.id, NodeStatus::Pending, &reason)
                        .await?;
                    waiting_reason = Some(reason);
                    None
                }
            },
            NodeStatus::Active => {
                match self
                    .store
                    .lease_job(&node.id, now, self.policy.lease_duration)
                    .await?
                {
                    Some(lease) => {
                        let (fee, net) = self.split_payment(lease.payment)?;
                        tracing::info!(node = %node.id, job = %lease.spec.id, attempt = lease.attempt, "job leased");
                        Some(Assignment::Job { lease, fee, net })
                    }
                    None => None,
                }
            }
            NodeStatus::Stale | NodeStatus::Offline | NodeStatus::Quarantined => None,
        };
        Ok(LeaseOutcome {
            assignment,
            node_status: node.status,
            waiting_reason,
        })
    }

    fn probe_ticket(&self, node: &NodeId, now: Timestamp) -> ServiceResult<ProbeTicket> {
        let spec = JobSpec::new(
            JobId::new(),
            JobKind::Poseidon2Chain {
                seed: rand::thread_rng().gen(),
                length: self.policy.probe_chain_length,
            },
        )?;
        let expires_at = crate::time::after(now, self.policy.probe_ttl)
            .ok_or_else(|| Error::invalid("probe ticket", "expiry out of range"))?;
        Ok(ProbeTicket::signed(
            self.deployment.signing_key(),
            node.clone(),
            spec,
            expires_at,
        ))
    }

    /// Verifies a proof with the coordinator's own verifier. A rejected proof quarantines the
    /// node (and, for a leased job, fails the attempt).
    async fn verify_or_quarantine(
        &self,
        node: &NodeRecord,
        spec: &JobSpec,
        req: &CompleteRequest,
        lease: Option<&LeaseRef>,
        now: Timestamp,
    ) -> ServiceResult<VerifiedProof> {
        let started = std::time::Instant::now();
        let verdict = self.verifier.verify(spec, &req.envelope).await;
        if matches!(verdict, Ok(_) | Err(Error::ProofRejected(_))) {
            // Only verifications that reached a verdict (not a verifier that could not run).
            self.telemetry.observe_verification(started.elapsed());
        }
        match verdict {
            Ok(v) => Ok(v),
            Err(Error::ProofRejected(detail)) => {
                tracing::warn!(node = %node.id, job = %spec.id, %detail, "proof rejected; quarantining the node");
                self.telemetry
                    .proof_rejected(&node.id, ProofRejection::InvalidProof);
                self.telemetry.fraud_detected(FraudKind::InvalidProof);
                self.note_fact(
                    &node.id,
                    crate::reputation::NodeFact::ProofRejected,
                    now,
                    &format!("job {}: {detail}", spec.id),
                )
                .await;
                if let Some(lease) = lease {
                    if let Err(e) = self
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
                self.apply_event(node, &event, now).await?;
                self.record_slash(node, spec.id, "invalid proof", now).await;
                Err(Error::ProofRejected(detail).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A completion: a probe's (a valid proof makes a pending node active) or a leased job's
    /// (verified, the receipt countersigned, the node credited, in one transaction).
    pub async fn complete(
        &self,
        req: CompleteRequest,
        now: Timestamp,
    ) -> ServiceResult<Completion> {
        let node = self.authenticate(&req, now).await?;
        // The node signed the digest of the envelope it sent: bytes that no longer hash to it
        // were altered on the way. That is no fault of the node's — refuse before verification
        // (which would quarantine it) and let it send again.
        if req.envelope.transport_digest() != req.envelope_digest {
            tracing::warn!(node = %node.id, job = %req.job_id, "proof envelope altered in transit");
            return Err(ServiceError::Transport(
                "the proof envelope does not match the digest the node signed: it was altered \
                 in transit; send it again"
                    .into(),
            ));
        }
        forbidden_if_quarantined(&node)?;
        match (&req.probe, &req.lease_id) {
            (Some(_), None) => self.complete_probe(node, req, now).await,
            (None, Some(_)) => self.complete_job(node, req, now).await,
            _ => Err(Error::invalid(
                "completion",
                "exactly one of `probe` (a probe) and `lease_id` (a leased job) must be given",
            )
            .into()),
        }
    }

    async fn complete_probe(
        &self,
        node: NodeRecord,
        req: CompleteRequest,
        now: Timestamp,
    ) -> ServiceResult<Completion> {
        let Some(ticket) = &req.probe else {
            return Err(Error::invalid("completion", "missing probe ticket").into());
        };
        if req.receipt.is_some() || req.receipt_signature.is_some() {
            return Err(Error::invalid("completion", "a probe has no receipt").into());
        }
        ticket.verify(&self.deployment.public_key()).map_err(|_| {
            ServiceError::Unauthorized("probe ticket was not issued by this deployment".into())
        })?;
        if ticket.node_id != node.id || ticket.spec.id != req.job_id {
            return Err(Error::invalid("probe ticket", "it is for another node or job").into());
        }
        if now > ticket.expires_at {
            return Err(Error::Conflict(format!(
                "probe expired at {}; lease again for a new one",
                ticket.expires_at
            ))
            .into());
        }
        let verified = self
            .verify_or_quarantine(&node, &ticket.spec, &req, None, now)
            .await?;
        self.telemetry.proof_verified(&node.id);
        let status = match node.status {
            NodeStatus::Pending => {
                let event = LifecycleEvent::ProbePassed {
                    job_id: ticket.spec.id.to_string(),
                };
                self.apply_event(&node, &event, now).await?
            }
            other => other,
        };
        Ok(Completion {
            receipt: None,
            node_status: status,
            security_bits: verified.security_bits,
        })
    }

    /// Checks the node-signed receipt body against what the coordinator knows.
    fn check_receipt_body(
        &self,
        node: &NodeRecord,
        job: &JobRecord,
        body: &ReceiptBody,
        now: Timestamp,
    ) -> ServiceResult<()> {
        let (fee, net) = self.split_payment(job.payment)?;
        let mismatch = |field: &str| -> ServiceResult<()> {
            Err(Error::invalid(
                "receipt",
                format!(
                    "field `{field}` does not match the job, the node or the coordinator's terms"
                ),
            )
            .into())
        };
        if body.id != ReceiptId(job.spec.id.0) {
            return Err(Error::invalid(
                "receipt",
                "its id must equal the job id (one receipt per job)",
            )
            .into());
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
        if body.coordinator_key != self.deployment.public_key() {
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
        check_skew(body.completed_at, now, self.policy.max_clock_skew).map_err(|_| {
            Error::invalid("receipt", "completed_at is outside the clock-skew window")
        })?;
        Ok(())
    }

    async fn complete_job(
        &self,
        node: NodeRecord,
        req: CompleteRequest,
        now: Timestamp,
    ) -> ServiceResult<Completion> {
        let (Some(lease_id), Some(body), Some(receipt_sig)) =
            (req.lease_id, &req.receipt, &req.receipt_signature)
        else {
            return Err(Error::invalid(
                "completion",
                "a leased job's completion needs `lease_id`, `receipt` and `receipt_signature`",
            )
            .into());
        };
        let job = self
            .store
            .get_job(&req.job_id)
            .await?
            .ok_or_else(|| Error::not_found("job", req.job_id))?;
        let lease = LeaseRef {
            job_id: job.spec.id,
            lease_id,
            node_id: node.id.clone(),
        };
        // A retry of a completion this node already got accepted (e.g. the coordinator
        // restarted before answering): redo only the idempotent steps below.
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
        self.check_receipt_body(&node, &job, body, now)?;
        if body
            .node_key
            .verify(&body.canonical_bytes(), receipt_sig)
            .is_err()
        {
            let detail = format!("receipt signature for job {} does not verify", job.spec.id);
            self.note_fact(
                &node.id,
                crate::reputation::NodeFact::SignatureViolation,
                now,
                &detail,
            )
            .await;
            self.telemetry
                .proof_rejected(&node.id, ProofRejection::BadReceiptSignature);
            self.telemetry.fraud_detected(FraudKind::BadSignature);
            let event = LifecycleEvent::BadSignature { detail };
            self.apply_event(&node, &event, now).await?;
            self.record_slash(&node, job.spec.id, "forged receipt", now)
                .await;
            return Err(ServiceError::Unauthorized(
                "receipt signature does not verify; node quarantined".into(),
            ));
        }
        let verify_started = std::time::Instant::now();
        let verified = if already_done {
            // Accepted before with this proof's hash; verifying again is cheap and keeps the
            // answer honest.
            self.verifier.verify(&job.spec, &req.envelope).await?
        } else {
            self.verify_or_quarantine(&node, &job.spec, &req, Some(&lease), now)
                .await?
        };
        let verify_time = verify_started.elapsed();
        if body.output != verified.output || body.proof_hash != verified.proof_hash {
            self.telemetry
                .proof_rejected(&node.id, ProofRejection::ReceiptMismatch);
            self.note_fact(
                &node.id,
                crate::reputation::NodeFact::ReceiptFault,
                now,
                &format!(
                    "receipt for job {} contradicts the verified proof",
                    job.spec.id
                ),
            )
            .await;
            return Err(Error::invalid(
                "receipt",
                "its output or proof_hash does not match the verified proof",
            )
            .into());
        }
        // The proof is content-addressed and stored first (an orphan copy after a failed
        // settlement is harmless); then the job's result, the receipt, the credit and their
        // events commit in one transaction.
        let proof_ref = self.proofs.put_proof(&req.envelope).await?;
        let receipt =
            Receipt::countersign(body.clone(), *receipt_sig, self.deployment.signing_key())?;
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
            verify_time,
        };
        // Also records the node's `lease_completed` fact, once, in the same transaction.
        self.store.settle_completion(&completion, now).await?;
        if !already_done {
            // A retry of an accepted completion is not a second verified proof.
            self.telemetry.proof_verified(&node.id);
        }
        tracing::info!(node = %node.id, job = %job.spec.id, net = %body.net, "job completed, receipt countersigned, node credited");
        Ok(Completion {
            receipt: Some(receipt),
            node_status: node.status,
            security_bits: verified.security_bits,
        })
    }

    /// A failure report: the node gives its lease back; the job is re-queued (or failed at
    /// its retry limit).
    pub async fn fail(&self, req: FailRequest, now: Timestamp) -> ServiceResult<JobRecord> {
        let node = self.authenticate(&req, now).await?;
        if req.reason.is_empty()
            || req.reason.len() > MAX_FAIL_REASON_LEN
            || req.reason.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "reason",
                format!("must be 1 to {MAX_FAIL_REASON_LEN} printable characters"),
            )
            .into());
        }
        let job = self
            .store
            .fail_job(
                &req.lease_ref(),
                &format!("{}: {}", node.id, req.reason),
                now,
            )
            .await?;
        tracing::info!(node = %node.id, job = %job.spec.id, status = %job.status, reason = %req.reason, "lease given back");
        self.note_fact(
            &node.id,
            crate::reputation::NodeFact::LeaseFailed,
            now,
            &format!("gave back job {}: {}", job.spec.id, req.reason),
        )
        .await;
        Ok(job)
    }
}
