//! [`IncidentStore`] and [`FlagStore`] of the [`PgStore`], shared by every coordinator on the
//! database: incidents kept whole as JSON
//! beside the columns lists filter on; a partial unique index keeps one open incident per
//! watched condition.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bitsage_core::flags::{Flag, FlagValue};
use bitsage_core::incident::{Incident, IncidentFilter};
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::payout::PayoutMark;
use bitsage_core::{
    Error, FlagStore, IncidentId, IncidentStore, NodeId, PayoutStore, Result, Timestamp,
    TokenAmount,
};

use crate::pg::{db_err, finish, json_err, to_i64, PgStore, BACKEND};

/// An open incident saved while another is open for its condition breaks the partial
/// unique index: a `Conflict`, like in every store.
fn unique_is_conflict(e: sqlx::Error, incident: &Incident) -> Error {
    if e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
    {
        return Error::Conflict(format!(
            "an incident for {} is already open",
            incident.condition.as_deref().unwrap_or("this condition")
        ));
    }
    db_err(e)
}

fn incident_of(json: &str) -> Result<Incident> {
    serde_json::from_str(json).map_err(json_err)
}

#[async_trait]
impl IncidentStore for PgStore {
    async fn create_incident(&self, incident: &Incident) -> Result<()> {
        let json = serde_json::to_string(incident).map_err(json_err)?;
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            let done = sqlx::query(
                "INSERT INTO incidents (id, status, condition, opened_at, incident) \
                 VALUES ($1::uuid, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING",
            )
            .bind(incident.id.to_string())
            .bind(incident.status.as_str())
            .bind(incident.condition.as_deref())
            .bind(incident.opened_at)
            .bind(&json)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 1 {
                return Ok(());
            }
            let known: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM incidents WHERE id = $1::uuid")
                    .bind(incident.id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            Err(match known {
                Some(_) => Error::AlreadyExists {
                    what: "incident",
                    id: incident.id.to_string(),
                },
                None => Error::Conflict(format!(
                    "an incident for {} is already open",
                    incident.condition.as_deref().unwrap_or("this condition")
                )),
            })
        }
        .await;
        finish(tx, result).await
    }

    async fn save_incident(&self, incident: &Incident) -> Result<()> {
        let json = serde_json::to_string(incident).map_err(json_err)?;
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            let done = sqlx::query(
                "UPDATE incidents SET status = $1, incident = $2::jsonb WHERE id = $3::uuid",
            )
            .bind(incident.status.as_str())
            .bind(&json)
            .bind(incident.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_is_conflict(e, incident))?;
            if done.rows_affected() == 0 {
                return Err(Error::not_found("incident", incident.id));
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn get_incident(&self, id: &IncidentId) -> Result<Option<Incident>> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT incident::text FROM incidents WHERE id = $1::uuid")
                .bind(id.to_string())
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
        json.as_deref().map(incident_of).transpose()
    }

    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        let status = filter.status.map(|s| s.as_str());
        let from = filter.from;
        const WHERE: &str = "WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::timestamptz IS NULL OR opened_at >= $2)";
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM incidents {WHERE} AND $3::bigint IS NULL AND $4::bigint IS NULL"
        ))
        .bind(status)
        .bind(from)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .fetch_one(self.pool())
        .await
        .map_err(db_err)?;
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT incident::text FROM incidents {WHERE} ORDER BY opened_at DESC, id DESC \
             LIMIT $3 OFFSET $4"
        ))
        .bind(status)
        .bind(from)
        .bind(i64::from(page.limit))
        .bind(to_i64(page.offset, "page offset")?)
        .fetch_all(self.pool())
        .await
        .map_err(db_err)?;
        let items = rows.iter().map(|j| incident_of(j)).collect::<Result<_>>()?;
        Ok(Page::new(items, page, total as u64))
    }

    async fn open_incident_for(&self, condition: &str) -> Result<Option<Incident>> {
        let json: Option<String> = sqlx::query_scalar(
            "SELECT incident::text FROM incidents WHERE status = 'open' AND condition = $1",
        )
        .bind(condition)
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?;
        json.as_deref().map(incident_of).transpose()
    }

    async fn mark_condition(&self, condition: &str, at: Timestamp) -> Result<Timestamp> {
        let mut tx = self.begin().await?;
        let result: Result<Timestamp> = async {
            sqlx::query(
                "INSERT INTO incident_conditions (condition, since) VALUES ($1, $2) \
                 ON CONFLICT (condition) DO NOTHING",
            )
            .bind(condition)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            let since: Timestamp =
                sqlx::query_scalar("SELECT since FROM incident_conditions WHERE condition = $1")
                    .bind(condition)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            Ok(since)
        }
        .await;
        finish(tx, result).await
    }

    async fn clear_condition(&self, condition: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            sqlx::query("DELETE FROM incident_conditions WHERE condition = $1")
                .bind(condition)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }
}

#[async_trait]
impl FlagStore for PgStore {
    async fn flags(&self) -> Result<BTreeMap<Flag, FlagValue>> {
        let rows: Vec<(String, bool, String, Timestamp)> =
            sqlx::query_as("SELECT flag, enabled, set_by, set_at FROM feature_flags")
                .fetch_all(self.pool())
                .await
                .map_err(db_err)?;
        rows.into_iter()
            .map(|(flag, enabled, set_by, at)| {
                let flag = Flag::parse(&flag)?;
                Ok((
                    flag,
                    FlagValue {
                        flag,
                        enabled,
                        set_by,
                        set_at: Some(at),
                    },
                ))
            })
            .collect()
    }

    async fn set_flag(&self, v: &FlagValue) -> Result<()> {
        let at = v
            .set_at
            .ok_or_else(|| Error::invalid("flag", "a stored flag needs the time it was set"))?;
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            sqlx::query(
                "INSERT INTO feature_flags (flag, enabled, set_by, set_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (flag) DO UPDATE SET enabled = excluded.enabled, \
                 set_by = excluded.set_by, set_at = excluded.set_at",
            )
            .bind(v.flag.as_str())
            .bind(v.enabled)
            .bind(&v.set_by)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }
}

#[async_trait]
impl PayoutStore for PgStore {
    async fn mark_payout(&self, mark: &PayoutMark) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO payout_marks (node_id, period, marked_by, marked_at, net) \
             VALUES ($1, $2, $3, $4, $5::numeric) ON CONFLICT (node_id, period) DO NOTHING",
        )
        .bind(mark.node_id.as_str())
        .bind(&mark.period)
        .bind(&mark.marked_by)
        .bind(mark.marked_at)
        .bind(mark.net.to_string())
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::AlreadyExists {
                what: "payout mark",
                id: format!("{} {}", mark.node_id, mark.period),
            });
        }
        Ok(())
    }

    async fn payout_marks(&self, node: &NodeId) -> Result<Vec<PayoutMark>> {
        let rows: Vec<(String, String, Timestamp, String)> = sqlx::query_as(
            "SELECT period, marked_by, marked_at, net::text FROM payout_marks \
             WHERE node_id = $1 ORDER BY period DESC",
        )
        .bind(node.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(period, marked_by, marked_at, net)| {
                Ok(PayoutMark {
                    node_id: node.clone(),
                    period,
                    marked_by,
                    marked_at,
                    net: TokenAmount::from_base_units(&net)
                        .map_err(|e| Error::backend(BACKEND, e.to_string()))?,
                })
            })
            .collect()
    }
}
