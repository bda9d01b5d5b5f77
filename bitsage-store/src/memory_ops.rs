//! [`IncidentStore`], [`FlagStore`] and [`PayoutStore`] of the [`InMemoryStore`]: one mutex
//! over them.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bitsage_core::flags::{Flag, FlagValue};
use bitsage_core::incident::{Incident, IncidentFilter, IncidentStatus};
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::payout::PayoutMark;
use bitsage_core::{
    Error, FlagStore, IncidentId, IncidentStore, NodeId, PayoutStore, Result, Timestamp,
};

use crate::common::paginate;
use crate::memory::InMemoryStore;

/// Incidents, watched conditions and flags of an [`InMemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct OpsState {
    incidents: Vec<Incident>,
    conditions: HashMap<String, Timestamp>,
    flags: BTreeMap<Flag, FlagValue>,
    payouts: Vec<PayoutMark>,
}

impl InMemoryStore {
    fn ops<T>(&self, f: impl FnOnce(&mut OpsState) -> Result<T>) -> Result<T> {
        let mut guard = self
            .ops
            .lock()
            .map_err(|_| Error::backend("memory", "ops lock poisoned by an earlier panic"))?;
        f(&mut guard)
    }
}

#[async_trait]
impl IncidentStore for InMemoryStore {
    async fn create_incident(&self, incident: &Incident) -> Result<()> {
        self.ops(|s| {
            if s.incidents.iter().any(|i| i.id == incident.id) {
                return Err(Error::AlreadyExists {
                    what: "incident",
                    id: incident.id.to_string(),
                });
            }
            if let Some(c) = &incident.condition {
                if incident.status == IncidentStatus::Open
                    && s.incidents.iter().any(|i| {
                        i.status == IncidentStatus::Open && i.condition.as_ref() == Some(c)
                    })
                {
                    return Err(Error::Conflict(format!(
                        "an incident for {c} is already open"
                    )));
                }
            }
            s.incidents.push(incident.clone());
            Ok(())
        })
    }

    async fn save_incident(&self, incident: &Incident) -> Result<()> {
        self.ops(|s| {
            if let (IncidentStatus::Open, Some(c)) = (incident.status, &incident.condition) {
                if s.incidents.iter().any(|i| {
                    i.id != incident.id
                        && i.status == IncidentStatus::Open
                        && i.condition.as_ref() == Some(c)
                }) {
                    return Err(Error::Conflict(format!(
                        "an incident for {c} is already open"
                    )));
                }
            }
            let slot = s
                .incidents
                .iter_mut()
                .find(|i| i.id == incident.id)
                .ok_or_else(|| Error::not_found("incident", incident.id))?;
            *slot = incident.clone();
            Ok(())
        })
    }

    async fn get_incident(&self, id: &IncidentId) -> Result<Option<Incident>> {
        self.ops(|s| Ok(s.incidents.iter().find(|i| i.id == *id).cloned()))
    }

    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        self.ops(|s| {
            let mut all: Vec<Incident> = s
                .incidents
                .iter()
                .filter(|i| filter.status.is_none_or(|st| i.status == st))
                .filter(|i| filter.from.is_none_or(|f| i.opened_at >= f))
                .cloned()
                .collect();
            all.sort_by_key(|i| std::cmp::Reverse((i.opened_at, i.id)));
            Ok(paginate(all, page))
        })
    }

    async fn open_incident_for(&self, condition: &str) -> Result<Option<Incident>> {
        self.ops(|s| {
            Ok(s.incidents
                .iter()
                .find(|i| {
                    i.status == IncidentStatus::Open && i.condition.as_deref() == Some(condition)
                })
                .cloned())
        })
    }

    async fn mark_condition(&self, condition: &str, at: Timestamp) -> Result<Timestamp> {
        self.ops(|s| Ok(*s.conditions.entry(condition.to_string()).or_insert(at)))
    }

    async fn clear_condition(&self, condition: &str) -> Result<()> {
        self.ops(|s| {
            s.conditions.remove(condition);
            Ok(())
        })
    }
}

#[async_trait]
impl FlagStore for InMemoryStore {
    async fn flags(&self) -> Result<BTreeMap<Flag, FlagValue>> {
        self.ops(|s| Ok(s.flags.clone()))
    }

    async fn set_flag(&self, value: &FlagValue) -> Result<()> {
        self.ops(|s| {
            s.flags.insert(value.flag, value.clone());
            Ok(())
        })
    }
}

#[async_trait]
impl PayoutStore for InMemoryStore {
    async fn mark_payout(&self, mark: &PayoutMark) -> Result<()> {
        self.ops(|s| {
            if s.payouts
                .iter()
                .any(|m| m.node_id == mark.node_id && m.period == mark.period)
            {
                return Err(Error::AlreadyExists {
                    what: "payout mark",
                    id: format!("{} {}", mark.node_id, mark.period),
                });
            }
            s.payouts.push(mark.clone());
            Ok(())
        })
    }

    async fn payout_marks(&self, node: &NodeId) -> Result<Vec<PayoutMark>> {
        self.ops(|s| {
            let mut out: Vec<PayoutMark> = s
                .payouts
                .iter()
                .filter(|m| m.node_id == *node)
                .cloned()
                .collect();
            out.sort_by(|a, b| b.period.cmp(&a.period));
            Ok(out)
        })
    }
}
