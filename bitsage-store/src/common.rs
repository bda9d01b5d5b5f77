//! Rules shared by every store, so the three backends cannot drift apart on semantics.

use std::time::Duration;

use bitsage_core::job::{ExpirySweep, JobRecord, JobResult, LeaseInfo, LeaseRef, NewJob};
use bitsage_core::node::{NewNode, NodeRecord};
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::{Error, JobStatus, NodeId, NodeStatus, Result, Timestamp};

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

/// An epoch's state from its columns (`state`, `tx_hash`, `block`, `reason`).
pub(crate) fn epoch_state(
    state: &str,
    tx_hash: Option<String>,
    block: Option<i64>,
    reason: Option<String>,
) -> Result<bitsage_core::settlement::EpochState> {
    use bitsage_core::settlement::EpochState;
    let bad = || {
        Error::backend(
            "store",
            format!("epoch in state {state:?} lacks its details"),
        )
    };
    Ok(match state {
        "pending" => EpochState::Pending,
        "sent" => EpochState::Sent {
            tx_hash: tx_hash.ok_or_else(bad)?,
        },
        "accepted" => EpochState::Accepted {
            tx_hash: tx_hash.ok_or_else(bad)?,
            block: block.and_then(|b| u64::try_from(b).ok()).ok_or_else(bad)?,
        },
        "failed" => EpochState::Failed {
            reason: reason.unwrap_or_default(),
        },
        other => {
            return Err(Error::backend(
                "store",
                format!("unknown epoch state {other:?}"),
            ))
        }
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

/// Why a heartbeat was not stored: the node is unknown (`last` is `None`), or `seq` is not
/// above the node's last accepted sequence (a replay).
pub(crate) fn replay_or_missing(node: &NodeId, seq: i64, last: Option<Option<i64>>) -> Error {
    match last {
        None => Error::not_found("node", node),
        Some(last) => Error::Conflict(format!(
            "heartbeat sequence {seq} replayed (last {})",
            last.map_or_else(|| "none".to_string(), |l| l.to_string())
        )),
    }
}

/// A heartbeat's collector status as stored JSON (`None`: the column is cleared).
pub(crate) fn collector_json(
    hb: &bitsage_core::node::Heartbeat,
    backend: &'static str,
) -> Result<Option<String>> {
    hb.gpu_collector
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::backend(backend, e))
}

/// A stored collector status (JSON and the heartbeat's time) back as a value; `None` when
/// either column is empty.
pub(crate) fn reported_collector(
    json: Option<String>,
    at: Option<Timestamp>,
    backend: &'static str,
) -> Result<Option<bitsage_core::gpu::ReportedCollector>> {
    let (Some(json), Some(at)) = (json, at) else {
        return Ok(None);
    };
    let status = serde_json::from_str(&json).map_err(|e| Error::backend(backend, e))?;
    Ok(Some(bitsage_core::gpu::ReportedCollector { at, status }))
}

/// The `WHERE` clause of a job listing and its bind values, in order. Only the filters that are
/// set appear (no `? IS NULL OR …` terms, which no index can serve). A node filter ("completed
/// by or leased to the node") becomes `id IN (… completed_by = ? UNION … lease_node = ?)`, each
/// branch served by its `(node column, status)` index with the status filter inside, so a
/// per-node count reads that node's jobs only, however long the history of others. `param(n)`
/// spells the n-th placeholder (1-based) in the dialect.
pub(crate) fn job_filter_sql(
    filter: &bitsage_core::job::JobFilter,
    param: fn(usize) -> String,
) -> (String, Vec<String>) {
    let mut binds = Vec::new();
    let status = filter.status.map(|s| {
        binds.push(s.as_str().to_owned());
        param(binds.len())
    });
    let Some(node) = &filter.node else {
        return match status {
            Some(p) => (format!("WHERE status = {p}"), binds),
            None => (String::new(), binds),
        };
    };
    binds.push(node.to_string());
    let n = param(binds.len());
    let and_status = status.map_or(String::new(), |p| format!(" AND status = {p}"));
    (
        format!(
            "WHERE id IN (SELECT id FROM jobs WHERE completed_by = {n}{and_status} \
             UNION SELECT id FROM jobs WHERE lease_node = {n}{and_status})"
        ),
        binds,
    )
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

/// An API key's scopes as stored (a JSON array of wire names).
pub(crate) fn scopes_json(
    scopes: &[bitsage_core::access::Scope],
    backend: &'static str,
) -> Result<String> {
    serde_json::to_string(scopes).map_err(|e| Error::backend(backend, e))
}

/// Stored scopes back as values.
pub(crate) fn parse_scopes(
    json: &str,
    backend: &'static str,
) -> Result<Vec<bitsage_core::access::Scope>> {
    serde_json::from_str(json).map_err(|e| Error::backend(backend, e))
}

/// The stored name of an actor kind.
pub(crate) fn actor_kind_str(k: bitsage_core::access::ActorKind) -> &'static str {
    use bitsage_core::access::ActorKind;
    match k {
        ActorKind::User => "user",
        ActorKind::ApiKey => "api_key",
        ActorKind::Node => "node",
        ActorKind::Anonymous => "anonymous",
        ActorKind::System => "system",
    }
}

/// Parses [`actor_kind_str`].
pub(crate) fn parse_actor_kind(
    s: &str,
    backend: &'static str,
) -> Result<bitsage_core::access::ActorKind> {
    use bitsage_core::access::ActorKind;
    Ok(match s {
        "user" => ActorKind::User,
        "api_key" => ActorKind::ApiKey,
        "node" => ActorKind::Node,
        "anonymous" => ActorKind::Anonymous,
        "system" => ActorKind::System,
        other => {
            return Err(Error::backend(
                backend,
                format!("unknown actor kind {other:?}"),
            ))
        }
    })
}

/// Parses [`bitsage_core::access::Outcome::as_str`].
pub(crate) fn parse_outcome(
    s: &str,
    backend: &'static str,
) -> Result<bitsage_core::access::Outcome> {
    use bitsage_core::access::Outcome;
    Ok(match s {
        "success" => Outcome::Success,
        "denied" => Outcome::Denied,
        "failed" => Outcome::Failed,
        other => {
            return Err(Error::backend(
                backend,
                format!("unknown outcome {other:?}"),
            ))
        }
    })
}

/// A stored role back as a value (a bad one is the store's fault, not the caller's).
pub(crate) fn parse_role(s: &str, backend: &'static str) -> Result<bitsage_core::access::Role> {
    bitsage_core::access::Role::parse(s)
        .map_err(|_| Error::backend(backend, format!("unknown role {s:?}")))
}

/// A value to bind in an audit query.
#[derive(Debug, Clone)]
pub(crate) enum AuditBind {
    /// Text (actor, pattern, outcome).
    Text(String),
    /// A time (the window's ends).
    Time(Timestamp),
}

/// The SQL dialects of [`audit_filter_sql`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `?n` placeholders; prefixes as `GLOB` patterns (case-sensitive, unlike SQLite's LIKE).
    Sqlite,
    /// `$n` placeholders; prefixes as `LIKE` patterns (backslash escapes).
    Postgres,
}

/// The `WHERE` clause of an audit listing and its bind values, in order (only the filters
/// that are set appear, so each can use its index). Prefixes are escaped: pattern characters
/// in them match themselves.
pub(crate) fn audit_filter_sql(
    filter: &bitsage_core::access::AuditFilter,
    dialect: Dialect,
) -> (String, Vec<AuditBind>) {
    let mut terms = Vec::new();
    let mut binds = Vec::new();
    let mut push = |term: &str, bind: AuditBind| {
        binds.push(bind);
        let p = match dialect {
            Dialect::Sqlite => format!("?{}", binds.len()),
            Dialect::Postgres => format!("${}", binds.len()),
        };
        terms.push(term.replace('#', &p));
    };
    if let Some(actor) = &filter.actor {
        push("actor = #", AuditBind::Text(actor.clone()));
    }
    if let Some(prefix) = &filter.action_prefix {
        match dialect {
            Dialect::Sqlite => push("action GLOB #", AuditBind::Text(glob_prefix(prefix))),
            Dialect::Postgres => push("action LIKE #", AuditBind::Text(like_prefix(prefix))),
        }
    }
    if let Some(outcome) = filter.outcome {
        push("outcome = #", AuditBind::Text(outcome.as_str().to_string()));
    }
    if let Some(w) = filter.window {
        push("at >= #", AuditBind::Time(w.from));
        push("at < #", AuditBind::Time(w.to));
    }
    if terms.is_empty() {
        (String::new(), binds)
    } else {
        (format!("WHERE {}", terms.join(" AND ")), binds)
    }
}

/// A SQLite `GLOB` pattern matching text that starts with `prefix` (`*`, `?` and `[` are
/// wrapped in brackets to match themselves).
fn glob_prefix(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        match c {
            '*' | '?' | '[' => {
                p.push('[');
                p.push(c);
                p.push(']');
            }
            c => p.push(c),
        }
    }
    p.push('*');
    p
}

/// A PostgreSQL `LIKE` pattern matching text that starts with `prefix` (`%`, `_` and the
/// escape character `\` are escaped).
fn like_prefix(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A database error as the domain sees it: the database not answering (no connection within
/// the pool's wait, a closed pool, a broken socket, the server shutting down or refusing
/// connections) is [`Error::Unavailable`] — the caller answers 503 at once — and anything
/// else a backend error (its text stays in the logs).
pub(crate) fn unavailable_or(backend: &'static str, e: sqlx::Error) -> Error {
    let reason = match &e {
        sqlx::Error::PoolTimedOut => Some("no database connection became free in time".into()),
        sqlx::Error::PoolClosed => Some("the connection pool is closed".into()),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            Some("the database connection failed".to_string())
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // Class 08 (connection exception), 57P01..57P03 (shutdown, cannot connect now).
            Some(code) if code.starts_with("08") || code.starts_with("57P") => {
                Some(format!("the database refused the connection ({code})"))
            }
            _ => None,
        },
        _ => None,
    };
    match reason {
        Some(reason) => {
            tracing::warn!(backend, error = %e, "database unavailable");
            Error::Unavailable {
                source_name: backend.to_string(),
                reason,
            }
        }
        None => Error::backend(backend, e),
    }
}

/// A heartbeat of a group-commit batch, checked and encoded for the multi-row statements.
pub(crate) struct EncodedBeat {
    /// Index in the batch.
    pub(crate) at: usize,
    pub(crate) seq: i64,
    pub(crate) collector: Option<String>,
}

/// Encodes a batch of heartbeats: those that can be stored, and an answer already for each
/// that cannot (a sequence beyond `i64`, a collector status that does not encode).
pub(crate) fn encode_beats(
    beats: &[bitsage_core::node::Heartbeat],
    backend: &'static str,
) -> (
    Vec<EncodedBeat>,
    Vec<Option<Result<bitsage_core::NodeStatus>>>,
) {
    let mut answers: Vec<Option<Result<bitsage_core::NodeStatus>>> =
        (0..beats.len()).map(|_| None).collect();
    let mut rows = Vec::with_capacity(beats.len());
    for (i, hb) in beats.iter().enumerate() {
        let seq = i64::try_from(hb.sequence)
            .map_err(|_| Error::invalid("heartbeat sequence", "exceeds 2^63 - 1"));
        match seq.and_then(|seq| Ok((seq, collector_json(hb, backend)?))) {
            Ok((seq, collector)) => rows.push(EncodedBeat {
                at: i,
                seq,
                collector,
            }),
            Err(e) => answers[i] = Some(Err(e)),
        }
    }
    (rows, answers)
}

/// A batch's answers, in order (one left unanswered would be a bug: a backend error).
pub(crate) fn batch_answers(
    answers: Vec<Option<Result<bitsage_core::NodeStatus>>>,
    backend: &'static str,
) -> Vec<Result<bitsage_core::NodeStatus>> {
    answers
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::backend(backend, "heartbeat left unanswered"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_escape_pattern_characters() {
        assert_eq!(glob_prefix("a*b?c[d]e%_"), "a[*]b[?]c[[]d]e%_*");
        assert_eq!(like_prefix(r"a%b_c\d*"), r"a\%b\_c\\d*%");
    }

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
