//! Whether a node gets work and why not: the eligibility checklist an operator reads when a
//! node is idle, and the drain (maintenance) an operator sets so the node takes no new lease
//! for a bounded time without its silence counting against its uptime.

use serde::{Deserialize, Serialize};

use crate::node::{Drain, NodeRecord};
use crate::time::Timestamp;
use crate::{Error, NodeId, NodeStatus};

use super::coordinator::{Coordinator, ServiceResult};
use super::stake::StakeVerdict;

/// One item of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EligibilityItem {
    /// What is checked (`registered`, `wallet_proven`, `stake_at_tier_minimum`,
    /// `probe_passed`, `heartbeat_fresh`, `not_quarantined`, `not_draining`,
    /// `job_kinds_supported`).
    pub check: String,
    /// Whether it holds.
    pub ok: bool,
    /// Why, in words (what to do when it does not hold).
    pub reason: String,
}

/// "Why is my node getting no work?": every condition for a lease, each with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Eligibility {
    /// The node.
    pub node_id: NodeId,
    /// Whether every item holds (the node gets jobs when there are any).
    pub eligible: bool,
    /// The items, in the order a node goes through them.
    pub items: Vec<EligibilityItem>,
    /// When it was checked.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub checked_at: Timestamp,
}

fn item(check: &str, ok: bool, reason: impl Into<String>) -> EligibilityItem {
    EligibilityItem {
        check: check.into(),
        ok,
        reason: reason.into(),
    }
}

impl Coordinator {
    /// The eligibility checklist of `node` at `now`.
    pub async fn eligibility(
        &self,
        node: &NodeRecord,
        now: Timestamp,
    ) -> ServiceResult<Eligibility> {
        let mut items = vec![item(
            "registered",
            true,
            format!("registered at {}", node.registered_at.to_rfc3339()),
        )];
        items.push(match (&self.wallets, node.wallet_proven_at) {
            (_, Some(at)) => item(
                "wallet_proven",
                true,
                format!("wallet {} proven at {}", node.wallet, at.to_rfc3339()),
            ),
            (None, None) => item(
                "wallet_proven",
                true,
                "this coordinator has no chain to check wallets on; none is required",
            ),
            (Some(_), None) => item(
                "wallet_proven",
                false,
                format!(
                    "wallet {} is not proven: register again with the wallet's signature \
                     (`bitsage-agent run --wallet-key FILE`)",
                    node.wallet
                ),
            ),
        });
        items.push(match self.stake_verdict(node).await {
            StakeVerdict::Eligible if self.stake_gate.is_none() => item(
                "stake_at_tier_minimum",
                true,
                "this coordinator has no chain; no stake is required",
            ),
            StakeVerdict::Eligible => item(
                "stake_at_tier_minimum",
                true,
                "the wallet's free stake meets its tier's minimum",
            ),
            StakeVerdict::Below(reason) => item("stake_at_tier_minimum", false, reason),
        });
        let probe = match node.status {
            NodeStatus::Active | NodeStatus::Stale => {
                item("probe_passed", true, "passed its probe")
            }
            NodeStatus::Pending => item(
                "probe_passed",
                false,
                "waiting for a probe: the agent gets one on its next lease request once the \
                 items above hold",
            ),
            NodeStatus::Offline => item(
                "probe_passed",
                false,
                "offline: a heartbeat brings it back to pending, then it is probed again",
            ),
            NodeStatus::Quarantined => item(
                "probe_passed",
                false,
                "quarantined: an admin's clearance sends it back through a probe",
            ),
        };
        items.push(probe);
        let last_seen = self.store.last_seen(&node.id).await?;
        let stale =
            chrono::TimeDelta::from_std(self.policy.stale_after).unwrap_or(chrono::TimeDelta::MAX);
        items.push(match last_seen {
            Some(at) if now - at <= stale => item(
                "heartbeat_fresh",
                true,
                format!("last heartbeat {} s ago", (now - at).num_seconds().max(0)),
            ),
            Some(at) => item(
                "heartbeat_fresh",
                false,
                format!(
                    "last heartbeat {} s ago (more than {} s): is the agent running and able \
                     to reach the coordinator?",
                    (now - at).num_seconds(),
                    self.policy.stale_after.as_secs()
                ),
            ),
            None => item("heartbeat_fresh", false, "no heartbeat yet"),
        });
        items.push(if node.status == NodeStatus::Quarantined {
            item(
                "not_quarantined",
                false,
                format!("quarantined: {}", node.status_reason),
            )
        } else {
            item("not_quarantined", true, "not quarantined")
        });
        items.push(match node.drain.as_ref().filter(|d| d.active_at(now)) {
            Some(d) => item(
                "not_draining",
                false,
                format!(
                    "drained by {} until {}: {}",
                    d.by,
                    d.until.to_rfc3339(),
                    d.reason
                ),
            ),
            None => item("not_draining", true, "not draining"),
        });
        items.push(item(
            "job_kinds_supported",
            true,
            "the agent proves every job kind this network queues (poseidon2-chain, \
             wide-fibonacci)",
        ));
        Ok(Eligibility {
            node_id: node.id.clone(),
            eligible: items.iter().all(|i| i.ok),
            items,
            checked_at: now,
        })
    }

    /// Drains `node` for `duration` (at most the policy's `max_drain`): no new lease, the
    /// current one finishes, silent minutes meanwhile do not count against uptime.
    pub async fn drain(
        &self,
        node: &NodeId,
        by: &str,
        reason: &str,
        duration: std::time::Duration,
        now: Timestamp,
    ) -> ServiceResult<NodeRecord> {
        super::reputation::check_reason(reason)?;
        if duration.is_zero() || duration > self.policy.max_drain {
            return Err(Error::invalid(
                "duration",
                format!(
                    "must be 1 s to {} s (the longest drain)",
                    self.policy.max_drain.as_secs()
                ),
            )
            .into());
        }
        let until = crate::time::after(now, duration)
            .ok_or_else(|| Error::invalid("duration", "out of range"))?;
        let drain = Drain {
            reason: reason.to_string(),
            by: by.to_string(),
            since: now,
            until,
        };
        let rec = self.store.set_drain(node, Some(&drain), now).await?;
        tracing::info!(node = %node, by, until = %until, "node drained");
        Ok(rec)
    }

    /// Ends `node`'s drain now.
    pub async fn undrain(&self, node: &NodeId, now: Timestamp) -> ServiceResult<NodeRecord> {
        let rec = self.store.set_drain(node, None, now).await?;
        tracing::info!(node = %node, "node drain ended");
        Ok(rec)
    }
}
