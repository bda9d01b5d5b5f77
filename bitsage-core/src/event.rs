//! Domain events: what changed, written to an **outbox** by the store in the same transaction
//! as the change (see [`crate::EventLog`]), each with a monotonically increasing id, and
//! delivered to every coordinator by an [`crate::EventBus`] wake-up plus the outbox as the
//! record. Live clients (WebSocket, SSE) get them as one JSON envelope
//! `{id, topic, type, at, data}`, snake_case.
//!
//! The constructors here are the one place events are made from records, so every backend
//! emits the same events for the same change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::chain::ChainEvent;
use crate::job::JobRecord;
use crate::lifecycle::Transition;
use crate::node::NodeRecord;
use crate::receipt::Receipt;
use crate::{Error, JobStatus, NodeId, Timestamp};

/// What an event is about; clients subscribe by topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Jobs queued, leased, completed, failed, re-queued.
    Jobs,
    /// Nodes registered and their status changes.
    Workers,
    /// Receipts issued.
    Receipts,
    /// Chain events indexed (stake, reputation, token) and reorg rewinds.
    Staking,
    /// Incidents (none are raised yet; the topic exists so clients can subscribe).
    Incidents,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 5] = [
        Topic::Jobs,
        Topic::Workers,
        Topic::Receipts,
        Topic::Staking,
        Topic::Incidents,
    ];

    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Topic::Jobs => "jobs",
            Topic::Workers => "workers",
            Topic::Receipts => "receipts",
            Topic::Staking => "staking",
            Topic::Incidents => "incidents",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Topic {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Topic::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "topic",
                    format!(
                        "unknown topic {:?}; topics are jobs, workers, receipts, staking, incidents",
                        s.chars().take(32).collect::<String>()
                    ),
                )
            })
    }
}

/// An event a write produces, before the outbox gives it an id and a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Its topic.
    pub topic: Topic,
    /// Its type, snake_case (`job_completed`, `node_status_changed`, ...).
    pub kind: String,
    /// Its payload (a JSON object).
    pub data: Value,
}

/// An event as the outbox keeps it and clients receive it: `{id, topic, type, at, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEvent {
    /// Strictly increasing in commit order; resume from it.
    pub id: u64,
    /// Its topic.
    pub topic: Topic,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was written.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub at: Timestamp,
    /// Its payload.
    pub data: Value,
}

fn event(topic: Topic, kind: &str, data: Value) -> NewEvent {
    NewEvent {
        topic,
        kind: kind.to_string(),
        data,
    }
}

/// `workers/node_registered`.
pub fn node_registered(n: &NodeRecord) -> NewEvent {
    event(
        Topic::Workers,
        "node_registered",
        json!({
            "node_id": n.id,
            "wallet": n.wallet,
            "status": n.status,
            "gpus": n.hardware.gpus.len(),
            "agent_version": n.agent_version,
        }),
    )
}

/// `workers/node_status_changed`.
pub fn node_status_changed(id: &NodeId, t: &Transition) -> NewEvent {
    event(
        Topic::Workers,
        "node_status_changed",
        json!({ "node_id": id, "from": t.from, "to": t.to, "reason": t.reason }),
    )
}

fn job_data(j: &JobRecord) -> Value {
    json!({
        "job_id": j.spec.id,
        "kind": j.spec.kind.name(),
        "status": j.status,
        "payment": j.payment,
        "attempts": j.attempts,
        "max_attempts": j.max_attempts,
    })
}

/// `jobs/job_queued`.
pub fn job_queued(j: &JobRecord) -> NewEvent {
    event(Topic::Jobs, "job_queued", job_data(j))
}

/// `jobs/job_leased` (with the node and the lease's expiry).
pub fn job_leased(j: &JobRecord) -> NewEvent {
    let mut data = job_data(j);
    if let (Some(lease), Some(m)) = (&j.lease, data.as_object_mut()) {
        m.insert("node_id".into(), json!(lease.node_id));
        m.insert("lease_expires_at".into(), json!(lease.expires_at));
    }
    event(Topic::Jobs, "job_leased", data)
}

/// `jobs/job_completed` (with the node and the proof hash).
pub fn job_completed(j: &JobRecord) -> NewEvent {
    let mut data = job_data(j);
    if let Some(m) = data.as_object_mut() {
        m.insert("node_id".into(), json!(j.completed_by));
        m.insert(
            "proof_hash".into(),
            json!(j.result.as_ref().map(|r| r.proof_hash)),
        );
    }
    event(Topic::Jobs, "job_completed", data)
}

/// `jobs/job_requeued` or `jobs/job_failed` after a failed attempt (a refused proof, a lease
/// given back or expired), by the job's new status.
pub fn job_attempt_failed(j: &JobRecord) -> NewEvent {
    let kind = if j.status == JobStatus::Failed {
        "job_failed"
    } else {
        "job_requeued"
    };
    let mut data = job_data(j);
    if let Some(m) = data.as_object_mut() {
        m.insert("reason".into(), json!(j.last_error));
    }
    event(Topic::Jobs, kind, data)
}

/// `receipts/receipt_issued`.
pub fn receipt_issued(r: &Receipt) -> NewEvent {
    let b = &r.body;
    event(
        Topic::Receipts,
        "receipt_issued",
        json!({
            "receipt_id": b.id,
            "job_id": b.job_id,
            "node_id": b.node_id,
            "kind": b.kind,
            "payment": b.payment,
            "fee": b.fee,
            "net": b.net,
            "proof_hash": b.proof_hash,
            "coordinator_key": b.coordinator_key,
            "completed_at": b.completed_at,
        }),
    )
}

/// `staking/chain_event_indexed`.
pub fn chain_event_indexed(e: &ChainEvent) -> NewEvent {
    event(
        Topic::Staking,
        "chain_event_indexed",
        json!({
            "block_number": e.block_number,
            "block_hash": e.block_hash,
            "tx_hash": e.tx_hash,
            "event_index": e.event_index,
            "contract": e.contract,
            "keys": e.keys,
            "data": e.data,
        }),
    )
}

/// `staking/chain_rewound` (a reorg rolled the index back).
pub fn chain_rewound(indexer: &str, to_block: u64, deleted: u64) -> NewEvent {
    event(
        Topic::Staking,
        "chain_rewound",
        json!({ "indexer": indexer, "to_block": to_block, "deleted_events": deleted }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_unknown_ones_are_named() {
        for t in Topic::ALL {
            assert_eq!(t.as_str().parse::<Topic>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        let e = "gossip".parse::<Topic>().unwrap_err().to_string();
        assert!(e.contains("unknown topic \"gossip\""), "{e}");
    }

    #[test]
    fn the_envelope_is_id_topic_type_at_data() {
        let e = StoredEvent {
            id: 7,
            topic: Topic::Jobs,
            kind: "job_queued".into(),
            at: crate::time::now(),
            data: json!({"job_id": "x"}),
        };
        let v = serde_json::to_value(&e).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["at", "data", "id", "topic", "type"]);
    }
}
