//! Node lifecycle use cases. Every status change of a node — a heartbeat, a passed probe, an
//! invalid proof, a bad signature, silence — goes through [`apply`], so the rule "a move
//! happens only along the state machine's edges, from the status the node is in, recorded with
//! its reason, with its event in the outbox" lives here once.

use std::time::Duration;

use crate::lifecycle::transition;
use crate::node::NodeRecord;
use crate::{Error, JobStore, LifecycleEvent, NodeId, NodeStatus, Result, Timestamp, Transition};

/// Applies `event` to `node` (as the caller last read it) and returns the node's status
/// afterwards. A move made concurrently by someone else (another request, another
/// coordinator, the sweeper) is not an error: the node's current status is returned.
pub async fn apply(
    store: &dyn JobStore,
    node: &NodeRecord,
    event: &LifecycleEvent,
    at: Timestamp,
) -> Result<NodeStatus> {
    apply_from(store, &node.id, node.status, event, at).await
}

/// [`apply`] for a node known by id and its current `status` (e.g. as a heartbeat's commit
/// returned it), without reading the node.
pub async fn apply_from(
    store: &dyn JobStore,
    id: &NodeId,
    status: NodeStatus,
    event: &LifecycleEvent,
    at: Timestamp,
) -> Result<NodeStatus> {
    let Some(t) = transition(status, event)? else {
        return Ok(status);
    };
    match store.apply_transition(id, &t, at).await {
        Ok(moved) => Ok(moved.status),
        Err(Error::Conflict(_)) => Ok(store.get_node(id).await?.map_or(status, |n| n.status)),
        Err(e) => Err(e),
    }
}

/// One pass of the lifecycle engine over pending, active and stale nodes: a node silent (no
/// heartbeat; before its first one, since registration) for `offline_after` goes offline, an
/// active one silent for `stale_after` goes stale. Returns the transitions applied; a node
/// moved concurrently by someone else is skipped. Safe to run on every coordinator at once.
pub async fn sweep(
    store: &dyn JobStore,
    now: Timestamp,
    stale_after: Duration,
    offline_after: Duration,
) -> Result<Vec<(NodeId, Transition)>> {
    let mut applied = Vec::new();
    for status in [NodeStatus::Pending, NodeStatus::Active, NodeStatus::Stale] {
        // Only nodes silent for at least `stale_after` can move.
        let Some(before) = chrono::TimeDelta::from_std(stale_after)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        else {
            continue;
        };
        for (node, last) in store.silent_nodes(status, before).await? {
            let silent = (now - last).to_std().unwrap_or(Duration::ZERO);
            let event = if silent >= offline_after {
                LifecycleEvent::OfflineTimeout {
                    silent_secs: silent.as_secs(),
                }
            } else if silent >= stale_after {
                LifecycleEvent::HeartbeatOverdue {
                    silent_secs: silent.as_secs(),
                }
            } else {
                continue;
            };
            let Some(t) = transition(node.status, &event)? else {
                continue;
            };
            match store.apply_transition(&node.id, &t, now).await {
                Ok(_) => applied.push((node.id, t)),
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(applied)
}
