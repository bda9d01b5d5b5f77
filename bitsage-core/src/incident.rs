//! Incidents: what the network's status banner and history show. Admins open, update and
//! resolve them; the coordinator opens (and resolves) automatic ones when a watched condition
//! holds long enough — no active worker for 10 minutes, the indexer over 5 minutes behind,
//! settlement failing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::IncidentId;
use crate::time::Timestamp;
use crate::Error;

/// How bad an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information.
    Info,
    /// Degraded.
    Warn,
    /// A major outage.
    Major,
}

impl Severity {
    /// The lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Major => "major",
        }
    }

    /// Parses [`Severity::as_str`].
    pub fn parse(s: &str) -> crate::Result<Self> {
        [Severity::Info, Severity::Warn, Severity::Major]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Error::invalid("severity", "must be info, warn or major"))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    /// Ongoing.
    Open,
    /// Over.
    Resolved,
}

impl IncidentStatus {
    /// The lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Resolved => "resolved",
        }
    }

    /// Parses [`IncidentStatus::as_str`].
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "open" => Ok(IncidentStatus::Open),
            "resolved" => Ok(IncidentStatus::Resolved),
            _ => Err(Error::invalid(
                "incident status",
                "must be open or resolved",
            )),
        }
    }
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentUpdate {
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub at: Timestamp,
    /// Who (a username, or `coordinator` for automatic incidents).
    pub by: String,
    /// What changed or was learnt.
    pub message: String,
    /// The status after this update.
    pub status: IncidentStatus,
    /// The severity after this update.
    pub severity: Severity,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    /// Its id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: IncidentId,
    /// A short title.
    pub title: String,
    /// Its current severity.
    pub severity: Severity,
    /// The region affected (`null`: the whole network).
    pub region: Option<String>,
    /// Open or resolved.
    pub status: IncidentStatus,
    /// For an automatic incident, the condition it watches (e.g. `no_active_workers`);
    /// `null` for one an admin opened.
    pub condition: Option<String>,
    /// When it was opened.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub opened_at: Timestamp,
    /// When it was resolved.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::TimestampSchema>))]
    pub resolved_at: Option<Timestamp>,
    /// Its timeline, oldest first (the first entry opened it).
    pub updates: Vec<IncidentUpdate>,
}

/// Longest incident title, characters.
pub const MAX_TITLE_LEN: usize = 200;
/// Longest update message, characters.
pub const MAX_MESSAGE_LEN: usize = 2_000;
/// Most updates one incident keeps.
pub const MAX_UPDATES: usize = 200;

/// Checks a title.
pub fn check_title(title: &str) -> crate::Result<()> {
    if title.trim().is_empty() {
        return Err(Error::invalid("title", "must not be empty"));
    }
    crate::node::check_text("title", title, MAX_TITLE_LEN)
}

/// Checks an update message (line breaks allowed).
pub fn check_message(message: &str) -> crate::Result<()> {
    if message.trim().is_empty() {
        return Err(Error::invalid("message", "must not be empty"));
    }
    if message.chars().count() > MAX_MESSAGE_LEN {
        return Err(Error::invalid(
            "message",
            format!("is longer than {MAX_MESSAGE_LEN} characters"),
        ));
    }
    if message.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid("message", "contains control characters"));
    }
    Ok(())
}

/// Which incidents to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    /// Only in this status.
    pub status: Option<IncidentStatus>,
    /// Only opened at or after this time.
    pub from: Option<Timestamp>,
}

/// A condition the coordinator watches; an incident opens when it has held for
/// [`Condition::after`] and resolves when it no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// No node is active.
    NoActiveWorkers,
    /// The chain event indexer is failing or behind the chain's head.
    IndexerBehind,
    /// Verified work waits for settlement longer than it should.
    SettlementFailing,
}

impl Condition {
    /// Its key (stored on the incident).
    pub fn key(&self) -> &'static str {
        match self {
            Condition::NoActiveWorkers => "no_active_workers",
            Condition::IndexerBehind => "indexer_behind",
            Condition::SettlementFailing => "settlement_failing",
        }
    }

    /// The incident's title.
    pub fn title(&self) -> &'static str {
        match self {
            Condition::NoActiveWorkers => "No active workers for 10 minutes",
            Condition::IndexerBehind => "Chain indexer behind for over 5 minutes",
            Condition::SettlementFailing => "Settlement on chain failing",
        }
    }

    /// The incident's severity.
    pub fn severity(&self) -> Severity {
        match self {
            Condition::NoActiveWorkers => Severity::Major,
            Condition::IndexerBehind => Severity::Warn,
            Condition::SettlementFailing => Severity::Major,
        }
    }

    /// How long it must hold before the incident opens.
    pub fn after(&self) -> std::time::Duration {
        match self {
            Condition::NoActiveWorkers => std::time::Duration::from_secs(10 * 60),
            Condition::IndexerBehind => std::time::Duration::from_secs(5 * 60),
            Condition::SettlementFailing => std::time::Duration::from_secs(10 * 60),
        }
    }
}
