//! Incidents and feature flags: admins open, update and resolve incidents; the coordinator
//! watches conditions (no active worker, the indexer behind, settlement failing) and opens an
//! incident when one has held long enough, resolving it when it clears — at most one open
//! incident per condition across every coordinator of the deployment. Flags: configured
//! values, overridden at runtime by an admin, shared through the store.

use crate::flags::{Flag, FlagValue};
use crate::incident::{
    check_message, check_title, Condition, Incident, IncidentStatus, IncidentUpdate, Severity,
    MAX_UPDATES,
};
use crate::node::NodeFilter;
use crate::time::Timestamp;
use crate::{Error, IncidentId, NodeStatus};

use super::coordinator::{Coordinator, ServiceResult};

/// How long a coordinator reuses the flags it read from the store.
pub const FLAG_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Flags as read from the store, and when.
#[derive(Debug, Clone)]
pub struct FlagCache {
    read_at: std::time::Instant,
    stored: std::collections::BTreeMap<Flag, FlagValue>,
}

/// Who automatic incidents are written by.
pub const COORDINATOR_AUTHOR: &str = "coordinator";

/// What waits for settlement, and whether it waits too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementHealth {
    /// Receipts not yet in an accepted epoch.
    pub pending_receipts: u64,
    /// When the oldest of them was completed.
    pub oldest_pending_at: Option<Timestamp>,
    /// Whether the oldest waited longer than an epoch's interval plus a minute.
    pub late: bool,
}

/// An incident an admin opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    /// A short title.
    pub title: String,
    /// How bad.
    pub severity: Severity,
    /// The region affected (`None`: the whole network).
    pub region: Option<String>,
    /// The first message.
    pub message: String,
}

/// A change to an incident: a message, optionally a new severity or status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentChange {
    /// What changed or was learnt.
    pub message: String,
    /// A new severity.
    pub severity: Option<Severity>,
    /// A new status (`resolved` resolves it; `open` reopens it).
    pub status: Option<IncidentStatus>,
}

impl Coordinator {
    /// An admin opens an incident.
    pub async fn open_incident(
        &self,
        by: &str,
        new: NewIncident,
        now: Timestamp,
    ) -> ServiceResult<Incident> {
        check_title(&new.title)?;
        check_message(&new.message)?;
        if let Some(r) = &new.region {
            crate::node::check_region(r)?;
        }
        let incident = Incident {
            id: IncidentId::new(),
            title: new.title,
            severity: new.severity,
            region: new.region,
            status: IncidentStatus::Open,
            condition: None,
            opened_at: now,
            resolved_at: None,
            updates: vec![IncidentUpdate {
                at: now,
                by: by.to_string(),
                message: new.message,
                status: IncidentStatus::Open,
                severity: new.severity,
            }],
        };
        self.store.create_incident(&incident).await?;
        tracing::warn!(incident = %incident.id, severity = %incident.severity, title = %incident.title, "incident opened");
        Ok(incident)
    }

    /// The open incidents (the status banner, newest first, at most 100) and a page of
    /// those matching `filter`.
    pub async fn incidents(
        &self,
        filter: &crate::incident::IncidentFilter,
        page: crate::page::PageRequest,
    ) -> ServiceResult<(Vec<Incident>, crate::page::Page<Incident>)> {
        let open = crate::incident::IncidentFilter {
            status: Some(IncidentStatus::Open),
            from: None,
        };
        let (open, listed) = futures::try_join!(
            self.store
                .list_incidents(&open, crate::page::PageRequest::new(100, 0)?),
            self.store.list_incidents(filter, page),
        )?;
        Ok((open.items, listed))
    }

    /// Adds an update to an incident (and changes its severity or status).
    pub async fn update_incident(
        &self,
        id: &IncidentId,
        by: &str,
        change: IncidentChange,
        now: Timestamp,
    ) -> ServiceResult<Incident> {
        check_message(&change.message)?;
        let mut incident = self
            .store
            .get_incident(id)
            .await?
            .ok_or_else(|| Error::not_found("incident", id))?;
        if incident.updates.len() >= MAX_UPDATES {
            return Err(Error::invalid(
                "incident",
                format!("has {MAX_UPDATES} updates already; open a new one"),
            )
            .into());
        }
        let reopens =
            change.status == Some(IncidentStatus::Open) && incident.status != IncidentStatus::Open;
        if let (true, Some(c)) = (reopens, &incident.condition) {
            if self.store.open_incident_for(c).await?.is_some() {
                return Err(Error::Conflict(format!(
                    "another incident for {c} is open; update that one"
                ))
                .into());
            }
        }
        apply_change(&mut incident, by, change, now);
        self.store.save_incident(&incident).await?;
        Ok(incident)
    }

    /// Watches `condition`: while it holds, the first time is remembered (in the store, so
    /// every coordinator agrees); once it has held for [`Condition::after`], an incident
    /// opens (one per condition). When it no longer holds, the open incident resolves.
    pub async fn watch(
        &self,
        condition: Condition,
        holds: bool,
        detail: &str,
        now: Timestamp,
    ) -> ServiceResult<()> {
        let key = condition.key();
        if !holds {
            self.store.clear_condition(key).await?;
            if let Some(mut open) = self.store.open_incident_for(key).await? {
                let change = IncidentChange {
                    message: "the condition no longer holds".into(),
                    severity: None,
                    status: Some(IncidentStatus::Resolved),
                };
                apply_change(&mut open, COORDINATOR_AUTHOR, change, now);
                self.store.save_incident(&open).await?;
                tracing::info!(incident = %open.id, condition = key, "incident resolved");
            }
            return Ok(());
        }
        let since = self.store.mark_condition(key, now).await?;
        let after =
            chrono::TimeDelta::from_std(condition.after()).unwrap_or(chrono::TimeDelta::MAX);
        if now - since < after || self.store.open_incident_for(key).await?.is_some() {
            return Ok(());
        }
        let incident = Incident {
            id: IncidentId::new(),
            title: condition.title().into(),
            severity: condition.severity(),
            region: None,
            status: IncidentStatus::Open,
            condition: Some(key.into()),
            opened_at: now,
            resolved_at: None,
            updates: vec![IncidentUpdate {
                at: now,
                by: COORDINATOR_AUTHOR.into(),
                message: format!("{detail} (since {})", since.to_rfc3339()),
                status: IncidentStatus::Open,
                severity: condition.severity(),
            }],
        };
        match self.store.create_incident(&incident).await {
            Ok(()) => {
                tracing::warn!(incident = %incident.id, condition = key, "incident opened automatically");
                Ok(())
            }
            // Another coordinator opened it first.
            Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The conditions the coordinator can see itself: no active worker, and (with a
    /// settler) settlement late ([`Coordinator::settlement_health`]).
    pub(crate) async fn watch_builtin(&self, now: Timestamp) -> ServiceResult<()> {
        let active = self
            .store
            .count_nodes(&NodeFilter::status(NodeStatus::Active))
            .await?;
        self.watch(
            Condition::NoActiveWorkers,
            active == 0,
            "no node is active",
            now,
        )
        .await?;
        if let Some(h) = self.settlement_health(now).await? {
            let detail = match h.oldest_pending_at {
                Some(o) if h.late => format!(
                    "{} receipts wait for settlement; the oldest since {}",
                    h.pending_receipts,
                    o.to_rfc3339()
                ),
                _ => String::new(),
            };
            self.watch(Condition::SettlementFailing, h.late, &detail, now)
                .await?;
        }
        Ok(())
    }

    /// With a settler: what waits for settlement and whether it is late (the oldest
    /// pending receipt waited longer than an epoch's interval plus a minute). `None` without
    /// a settler.
    pub async fn settlement_health(
        &self,
        now: Timestamp,
    ) -> ServiceResult<Option<SettlementHealth>> {
        if self.settlement.is_none() {
            return Ok(None);
        }
        let backlog = self.store.settlement_backlog().await?;
        let late_after = chrono::TimeDelta::from_std(self.policy.epoch_every)
            .unwrap_or(chrono::TimeDelta::MAX)
            .checked_add(&chrono::TimeDelta::minutes(1))
            .unwrap_or(chrono::TimeDelta::MAX);
        Ok(Some(SettlementHealth {
            pending_receipts: backlog.receipts,
            oldest_pending_at: backlog.oldest,
            late: backlog.oldest.is_some_and(|o| now - o > late_after),
        }))
    }

    /// Every flag's value: set at runtime by an admin, else configured, else its default.
    pub async fn flags(&self) -> ServiceResult<Vec<FlagValue>> {
        let stored = self.store.flags().await?;
        Ok(crate::flags::resolve(&self.policy.flags, &stored))
    }

    /// One flag's value, read from the store at most every [`FLAG_CACHE_TTL`] (it is asked
    /// on every anonymous overview request); when the store cannot answer, the configured
    /// value (logged).
    pub async fn flag(&self, flag: Flag) -> bool {
        let cached = self
            .flag_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|c| c.read_at.elapsed() < FLAG_CACHE_TTL)
            .map(|c| c.stored.clone());
        let stored = match cached {
            Some(s) => Ok(s),
            None => self.store.flags().await.inspect(|s| {
                *self.flag_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(FlagCache {
                    read_at: std::time::Instant::now(),
                    stored: s.clone(),
                });
            }),
        };
        match stored {
            Ok(stored) => crate::flags::resolve(&self.policy.flags, &stored)
                .into_iter()
                .find(|v| v.flag == flag)
                .is_some_and(|v| v.enabled),
            Err(e) => {
                tracing::warn!(flag = flag.as_str(), error = %e, "flag unreadable; using the configured value");
                self.policy
                    .flags
                    .get(&flag)
                    .copied()
                    .unwrap_or(flag.default_value())
            }
        }
    }

    /// An admin sets a flag.
    pub async fn set_flag(
        &self,
        flag: Flag,
        enabled: bool,
        by: &str,
        now: Timestamp,
    ) -> ServiceResult<FlagValue> {
        let value = FlagValue {
            flag,
            enabled,
            set_by: by.to_string(),
            set_at: Some(now),
        };
        self.store.set_flag(&value).await?;
        // This coordinator sees its own change at once; others within the cache's life.
        *self.flag_cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!(flag = flag.as_str(), enabled, by, "feature flag set");
        Ok(value)
    }
}

fn apply_change(incident: &mut Incident, by: &str, change: IncidentChange, now: Timestamp) {
    if let Some(s) = change.severity {
        incident.severity = s;
    }
    if let Some(status) = change.status {
        incident.status = status;
        incident.resolved_at = (status == IncidentStatus::Resolved).then_some(now);
    }
    incident.updates.push(IncidentUpdate {
        at: now,
        by: by.to_string(),
        message: change.message,
        status: incident.status,
        severity: incident.severity,
    });
}
