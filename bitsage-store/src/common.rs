//! Rules shared by every store, so the three backends cannot drift apart on semantics.

use std::time::Duration;

use bitsage_core::job::{ExpirySweep, JobRecord, JobResult, LeaseInfo, LeaseRef, NewJob};
use bitsage_core::node::{NewNode, NodeRecord};
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::{Error, JobStatus, NodeStatus, Result, Timestamp};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use crate::sql::*;

/// The reason recorded for a node's first status.
pub(crate) const REGISTERED_REASON: &str = "registered; waiting for a probe proof";

/// The record of a newly registered node.
pub(crate) fn new_node_record(node: &NewNode) -> NodeRecord {
    NodeRecord {
        id: node.id.clone(),
        public_key: node.public_key,
        wallet: node.wallet,
        hardware: node.hardware.clone(),
        agent_version: node.agent_version.clone(),
        status: NodeStatus::Pending,
        status_reason: REGISTERED_REASON.to_string(),
        status_changed_at: node.registered_at,
        registered_at: node.registered_at,
        wallet_proven_at: node.wallet_proven_at,
        profile: node.profile.clone(),
        reputation: None,
        drain: None,
    }
}

/// The record of a newly queued job (validates the attempt limit).
pub(crate) fn new_job_record(job: &NewJob) -> Result<JobRecord> {
    if job.max_attempts == 0 {
        return Err(Error::invalid("job", "max_attempts must be at least 1"));
    }
    Ok(JobRecord {
        spec: job.spec.clone(),
        payment: job.payment,
        status: JobStatus::Queued,
        attempts: 0,
        max_attempts: job.max_attempts,
        lease: None,
        result: None,
        completed_by: None,
        last_error: None,
        submitted_at: job.submitted_at,
        updated_at: job.submitted_at,
        payer: job.funding.as_ref().map(|f| f.payer),
    })
}

/// Takes `payment` out of a payer's unsettled amount (an accepted epoch paid it).
pub(crate) fn settle_payer(
    account: &mut bitsage_core::funding::PayerAccount,
    payment: bitsage_core::TokenAmount,
    at: Timestamp,
) -> Result<()> {
    account.unsettled = account.unsettled.checked_sub(payment)?;
    account.updated_at = at;
    Ok(())
}

/// What a job's move does to its payer's books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayerEffect {
    /// Completed: the reserved payment is spent.
    Spend,
    /// Failed for good: the reserved payment is released.
    Release,
}

/// The payer effect of a job moving from `before` to `after` (none without a payer).
pub(crate) fn payer_effect(before: JobStatus, after: &JobRecord) -> Option<PayerEffect> {
    after.payer?;
    match (before, after.status) {
        (b, JobStatus::Completed) if b != JobStatus::Completed => Some(PayerEffect::Spend),
        (b, JobStatus::Failed) if b != JobStatus::Failed => Some(PayerEffect::Release),
        _ => None,
    }
}

/// Applies `effect` of `job` to `account`.
pub(crate) fn apply_payer_effect(
    account: &mut bitsage_core::funding::PayerAccount,
    effect: PayerEffect,
    job: &JobRecord,
    at: Timestamp,
) -> Result<()> {
    match effect {
        PayerEffect::Spend => account.spend(job.payment)?,
        PayerEffect::Release => account.release(job.payment)?,
    }
    account.updated_at = at;
    Ok(())
}

/// One page of an already filtered and ordered list.
pub(crate) fn paginate<T>(all: Vec<T>, page: PageRequest) -> Page<T> {
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(page.limit as usize)
        .collect();
    Page::new(items, page, total)
}

/// `now + duration`, refusing absurd durations.
pub(crate) fn lease_until(now: Timestamp, duration: Duration) -> Result<Timestamp> {
    bitsage_core::time::after(now, duration)
        .ok_or_else(|| Error::invalid("lease duration", "too long"))
}

/// Checks that `lease` is the job's current, unexpired lease.
pub(crate) fn check_lease(job: &JobRecord, lease: &LeaseRef, now: Timestamp) -> Result<()> {
    job.check_lease(lease, now)
}

/// The error recorded when a lease runs out.
pub(crate) fn expiry_error(lease: Option<&LeaseInfo>) -> String {
    match lease {
        Some(l) => format!("lease held by {} expired at {}", l.node_id, l.expires_at),
        None => "lease expired".to_string(),
    }
}

/// Ends a failed attempt: back to the queue, or failed at the retry limit.
pub(crate) fn settle_failure(
    job: &mut JobRecord,
    reason: String,
    now: Timestamp,
    sweep: &mut ExpirySweep,
) {
    if let Some(l) = job.lease.take() {
        sweep.holders.push((job.spec.id, l.node_id));
    }
    job.last_error = Some(reason);
    job.updated_at = now;
    if job.attempts >= job.max_attempts {
        job.status = JobStatus::Failed;
        sweep.failed.push(job.spec.id);
    } else {
        job.status = JobStatus::Queued;
        sweep.requeued.push(job.spec.id);
    }
}

/// Completes `job` under `lease` (checked first) with `result`.
pub(crate) fn complete(
    job: &mut JobRecord,
    lease: &LeaseRef,
    result: &JobResult,
    now: Timestamp,
) -> Result<()> {
    check_lease(job, lease, now)?;
    job.status = JobStatus::Completed;
    job.result = Some(result.clone());
    job.completed_by = Some(lease.node_id.clone());
    job.lease = None;
    job.updated_at = now;
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Accounts and the audit log (bitsage_core::access)

/// A refresh token's state at `now`, from its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenState {
    /// Unspent, unrevoked, unexpired: it may rotate.
    Live,
    /// Spent by an earlier rotation (and neither revoked nor expired): presenting it again is
    /// reuse.
    Spent,
    /// Revoked or expired: presenting it changes nothing.
    Dead,
}

/// Classifies a refresh token. Revocation and expiry come first: a spent token of an already
/// revoked family is `Dead` (the family has nothing left to revoke), and an expired token is
/// `Dead` whether or not it was spent ("changing nothing").
pub(crate) fn token_state(
    used_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
    expires_at: Timestamp,
    now: Timestamp,
) -> TokenState {
    if revoked_at.is_some() || expires_at <= now {
        TokenState::Dead
    } else if used_at.is_some() {
        TokenState::Spent
    } else {
        TokenState::Live
    }
}

/// How long a recorded API key use stands before another use is recorded.
pub(crate) const KEY_TOUCH_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Whether a use of a key at `now` updates its `last_used_at`.
pub(crate) fn touch_due(last_used_at: Option<Timestamp>, now: Timestamp) -> bool {
    last_used_at.is_none_or(|t| t < now - KEY_TOUCH_INTERVAL)
}

/// Applies `update` to `rec` at `now` (the caller checked that a new organisation exists).
pub(crate) fn apply_user_update(
    rec: &mut bitsage_core::access::UserRecord,
    update: &bitsage_core::access::UserUpdate,
    now: Timestamp,
) {
    let u = &mut rec.user;
    if let Some(role) = update.role {
        u.role = role;
    }
    if let Some(org) = update.org {
        u.org = org;
    }
    if let Some(disabled) = update.disabled {
        u.disabled = disabled;
    }
    if let Some(hash) = &update.password_hash {
        rec.password_hash.clone_from(hash);
    }
    u.updated_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_interval_is_strict() {
        let t = bitsage_core::time::now();
        assert!(touch_due(None, t));
        assert!(!touch_due(Some(t - KEY_TOUCH_INTERVAL), t));
        assert!(touch_due(
            Some(t - KEY_TOUCH_INTERVAL - chrono::TimeDelta::microseconds(1)),
            t
        ));
    }
}
