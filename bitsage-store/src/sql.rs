//! Rules shared by the SQL stores (SQLite and PostgreSQL): column decoding, filter SQL, batch
//! encodings and database errors. Re-exported through `common`, next to the rules every
//! store shares.

use bitsage_core::{Error, NodeId, Result, Timestamp};

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
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    /// `$n` placeholders; prefixes as `LIKE` patterns (backslash escapes).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
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
}
