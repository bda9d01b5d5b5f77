//! The node lifecycle: a pure state machine, `(state, event) → (state, reason)`.
//!
//! ```text
//!   pending ──probe passed──▶ active ──heartbeat overdue──▶ stale ──offline timeout──▶ offline
//!      ▲                        ▲  └────────offline timeout──────────────────────────────▶ │
//!      │                        └────────────heartbeat─────── stale                        │
//!      ├───────────────────────────────heartbeat again─────────────────────────────────────┘
//!      └──admin cleared── quarantined ◀── invalid proof / bad signature / low reputation (any state)
//! ```
//! With a chain, an active or stale node whose stake falls below its tier's minimum goes back
//! to pending (`stake_below_minimum`); it gets a probe again once its stake suffices.
//! Every move carries a reason; events that do not apply in a state either leave it unchanged
//! (`Ok(None)`, e.g. a heartbeat while active) or are illegal (`Err`, e.g. clearing a node that
//! is not quarantined).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Where a node is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Registered (or back from offline); waiting for a valid probe proof.
    Pending,
    /// Proved itself and heartbeats on time; eligible for jobs.
    Active,
    /// Heartbeat overdue, inside the grace period before offline.
    Stale,
    /// No heartbeat for the offline timeout.
    Offline,
    /// Excluded after misbehaviour; only an admin clears it.
    Quarantined,
}

impl NodeStatus {
    /// Every status.
    pub const ALL: [NodeStatus; 5] = [
        NodeStatus::Pending,
        NodeStatus::Active,
        NodeStatus::Stale,
        NodeStatus::Offline,
        NodeStatus::Quarantined,
    ];

    /// The snake_case name used in JSON and storage.
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Active => "active",
            NodeStatus::Stale => "stale",
            NodeStatus::Offline => "offline",
            NodeStatus::Quarantined => "quarantined",
        }
    }

    /// Parses [`NodeStatus::as_str`].
    pub fn parse(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::invalid("node status", format!("unknown status {s:?}")))
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LifecycleEvent {
    /// The node's probe job was proven and the proof verified.
    ProbePassed {
        /// The probe job.
        job_id: String,
    },
    /// A heartbeat with a valid signature arrived.
    Heartbeat,
    /// No heartbeat for longer than the stale threshold.
    HeartbeatOverdue {
        /// Seconds since the last heartbeat.
        silent_secs: u64,
    },
    /// No heartbeat for the offline timeout.
    OfflineTimeout {
        /// Seconds since the last heartbeat.
        silent_secs: u64,
    },
    /// The node submitted a proof that failed verification.
    InvalidProof {
        /// The job whose proof was rejected.
        job_id: String,
        /// The verifier's reason.
        detail: String,
    },
    /// The node sent a message with a bad signature.
    BadSignature {
        /// What was wrong.
        detail: String,
    },
    /// The network's reputation R of the node fell under the threshold.
    ReputationBelowThreshold {
        /// The score read.
        score: u32,
        /// The threshold.
        threshold: u32,
    },
    /// With a chain: the node's stake no longer meets its tier's minimum (or its wallet is no
    /// longer eligible on `ProverStaking`).
    StakeBelowMinimum {
        /// Why, in words (amounts, tier, minimum).
        reason: String,
    },
    /// An admin quarantined the node.
    AdminQuarantined {
        /// Who.
        admin: String,
        /// Why.
        reason: String,
    },
    /// An admin cleared the quarantine.
    AdminCleared {
        /// Who cleared it.
        admin: String,
        /// Why.
        note: String,
    },
}

impl LifecycleEvent {
    /// The event's snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            LifecycleEvent::ProbePassed { .. } => "probe_passed",
            LifecycleEvent::Heartbeat => "heartbeat",
            LifecycleEvent::HeartbeatOverdue { .. } => "heartbeat_overdue",
            LifecycleEvent::OfflineTimeout { .. } => "offline_timeout",
            LifecycleEvent::InvalidProof { .. } => "invalid_proof",
            LifecycleEvent::BadSignature { .. } => "bad_signature",
            LifecycleEvent::ReputationBelowThreshold { .. } => "reputation_below_threshold",
            LifecycleEvent::StakeBelowMinimum { .. } => "stake_below_minimum",
            LifecycleEvent::AdminQuarantined { .. } => "admin_quarantined",
            LifecycleEvent::AdminCleared { .. } => "admin_cleared",
        }
    }

    fn reason(&self) -> String {
        match self {
            LifecycleEvent::ProbePassed { job_id } => {
                format!("probe job {job_id} proven and verified")
            }
            LifecycleEvent::Heartbeat => "heartbeat received".to_string(),
            LifecycleEvent::HeartbeatOverdue { silent_secs } => {
                format!("no heartbeat for {silent_secs} s")
            }
            LifecycleEvent::OfflineTimeout { silent_secs } => {
                format!("no heartbeat for {silent_secs} s (offline timeout)")
            }
            LifecycleEvent::InvalidProof { job_id, detail } => {
                format!("invalid proof for job {job_id}: {detail}")
            }
            LifecycleEvent::BadSignature { detail } => format!("bad signature: {detail}"),
            LifecycleEvent::ReputationBelowThreshold { score, threshold } => {
                format!("reputation {score} below threshold {threshold}")
            }
            LifecycleEvent::AdminQuarantined { admin, reason } => {
                format!("quarantined by {admin}: {reason}")
            }
            // Never empty, whatever the caller passed.
            LifecycleEvent::StakeBelowMinimum { reason } if reason.trim().is_empty() => {
                "stake below the tier's minimum".to_string()
            }
            LifecycleEvent::StakeBelowMinimum { reason } => reason.clone(),
            LifecycleEvent::AdminCleared { admin, note } => {
                format!("quarantine cleared by {admin}: {note}")
            }
        }
    }
}

/// A move from one status to another, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The status before.
    pub from: NodeStatus,
    /// The status after (always different from `from`).
    pub to: NodeStatus,
    /// Why, in words for the operator; never empty.
    pub reason: String,
}

/// The edges of the lifecycle graph; every [`transition`] result lies on one of them.
pub const ALLOWED_EDGES: &[(NodeStatus, NodeStatus)] = {
    use NodeStatus::*;
    &[
        (Pending, Active),
        (Pending, Offline),
        (Pending, Quarantined),
        (Active, Pending),
        (Active, Stale),
        (Active, Offline),
        (Active, Quarantined),
        (Stale, Pending),
        (Stale, Active),
        (Stale, Offline),
        (Stale, Quarantined),
        (Offline, Pending),
        (Offline, Quarantined),
        (Quarantined, Pending),
    ]
};

/// Applies `event` to a node in `state`.
///
/// `Ok(Some(t))`: the node moves (`t.to != state`, `t.reason` non-empty). `Ok(None)`: the
/// event is recorded elsewhere (e.g. the heartbeat) but the status stays. `Err`: the event is
/// illegal in this state.
pub fn transition(state: NodeStatus, event: &LifecycleEvent) -> Result<Option<Transition>, Error> {
    use LifecycleEvent as E;
    use NodeStatus::*;
    let to = match (state, event) {
        // Misbehaviour quarantines from anywhere; repeated misbehaviour changes nothing more.
        (Quarantined, E::InvalidProof { .. } | E::BadSignature { .. })
        | (Quarantined, E::ReputationBelowThreshold { .. } | E::AdminQuarantined { .. }) => None,
        (_, E::InvalidProof { .. } | E::BadSignature { .. })
        | (_, E::ReputationBelowThreshold { .. } | E::AdminQuarantined { .. }) => Some(Quarantined),

        (Quarantined, E::AdminCleared { .. }) => Some(Pending),
        (_, E::AdminCleared { .. }) => return Err(illegal(state, event)),

        (Pending, E::ProbePassed { .. }) => Some(Active),
        (Active | Stale, E::ProbePassed { .. }) => None,
        (Offline | Quarantined, E::ProbePassed { .. }) => return Err(illegal(state, event)),

        (Stale, E::Heartbeat) => Some(Active),
        (Offline, E::Heartbeat) => Some(Pending),
        (Pending | Active | Quarantined, E::Heartbeat) => None,

        (Active, E::HeartbeatOverdue { .. }) => Some(Stale),
        (Pending | Stale | Offline | Quarantined, E::HeartbeatOverdue { .. }) => None,

        (Pending | Active | Stale, E::OfflineTimeout { .. }) => Some(Offline),
        (Offline | Quarantined, E::OfflineTimeout { .. }) => None,

        (Active | Stale, E::StakeBelowMinimum { .. }) => Some(Pending),
        (Pending | Offline | Quarantined, E::StakeBelowMinimum { .. }) => None,
    };
    Ok(to.map(|to| Transition {
        from: state,
        to,
        reason: event.reason(),
    }))
}

fn illegal(from: NodeStatus, event: &LifecycleEvent) -> Error {
    Error::IllegalTransition {
        from,
        event: event.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_event() -> impl Strategy<Value = LifecycleEvent> {
        prop_oneof![
            "[a-z0-9]{1,8}".prop_map(|job_id| LifecycleEvent::ProbePassed { job_id }),
            Just(LifecycleEvent::Heartbeat),
            (0u64..10_000).prop_map(|s| LifecycleEvent::HeartbeatOverdue { silent_secs: s }),
            (0u64..10_000).prop_map(|s| LifecycleEvent::OfflineTimeout { silent_secs: s }),
            ("[a-z0-9]{1,8}", ".{0,20}")
                .prop_map(|(job_id, detail)| LifecycleEvent::InvalidProof { job_id, detail }),
            ".{0,20}".prop_map(|detail| LifecycleEvent::BadSignature { detail }),
            (0u32..1000, 0u32..1000).prop_map(|(score, threshold)| {
                LifecycleEvent::ReputationBelowThreshold { score, threshold }
            }),
            ("[a-z]{1,8}", ".{0,20}")
                .prop_map(|(admin, note)| LifecycleEvent::AdminCleared { admin, note }),
            ("[a-z]{1,8}", ".{1,20}")
                .prop_map(|(admin, reason)| LifecycleEvent::AdminQuarantined { admin, reason }),
            ".{1,20}".prop_map(|reason| LifecycleEvent::StakeBelowMinimum { reason }),
        ]
    }

    #[test]
    fn happy_path() {
        let t = transition(
            NodeStatus::Pending,
            &LifecycleEvent::ProbePassed {
                job_id: "j1".into(),
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.to, NodeStatus::Active);
        assert!(t.reason.contains("j1"));
        let t = transition(
            NodeStatus::Active,
            &LifecycleEvent::HeartbeatOverdue { silent_secs: 30 },
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.to, NodeStatus::Stale);
        let t = transition(
            NodeStatus::Stale,
            &LifecycleEvent::OfflineTimeout { silent_secs: 300 },
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.to, NodeStatus::Offline);
        let t = transition(NodeStatus::Offline, &LifecycleEvent::Heartbeat)
            .unwrap()
            .unwrap();
        assert_eq!(t.to, NodeStatus::Pending);
    }

    #[test]
    fn quarantine_is_left_only_by_admin() {
        let q = NodeStatus::Quarantined;
        assert!(transition(q, &LifecycleEvent::ProbePassed { job_id: "x".into() }).is_err());
        assert_eq!(transition(q, &LifecycleEvent::Heartbeat).unwrap(), None);
        let t = transition(
            q,
            &LifecycleEvent::AdminCleared {
                admin: "ops".into(),
                note: "key rotated".into(),
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.to, NodeStatus::Pending);
        assert!(transition(
            NodeStatus::Active,
            &LifecycleEvent::AdminCleared {
                admin: "ops".into(),
                note: String::new()
            }
        )
        .is_err());
    }

    #[test]
    fn status_names_round_trip() {
        for s in NodeStatus::ALL {
            assert_eq!(NodeStatus::parse(s.as_str()).unwrap(), s);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert!(NodeStatus::parse("running").is_err());
    }

    proptest! {
        /// No sequence of events reaches an edge outside the graph; every move has a reason;
        /// quarantine is left only by an admin; offline is left only by a heartbeat (or quarantine).
        #[test]
        fn no_illegal_transition_is_reachable(events in proptest::collection::vec(any_event(), 0..64)) {
            let mut state = NodeStatus::Pending;
            for event in &events {
                match transition(state, event) {
                    Ok(Some(t)) => {
                        prop_assert_eq!(t.from, state);
                        prop_assert_ne!(t.to, state);
                        prop_assert!(ALLOWED_EDGES.contains(&(t.from, t.to)), "edge {:?}", (t.from, t.to));
                        prop_assert!(!t.reason.trim().is_empty());
                        if state == NodeStatus::Quarantined {
                            let cleared = matches!(event, LifecycleEvent::AdminCleared { .. });
                            prop_assert!(cleared, "quarantine left by {}", event.name());
                        }
                        if state == NodeStatus::Offline && t.to != NodeStatus::Quarantined {
                            prop_assert_eq!(event, &LifecycleEvent::Heartbeat);
                        }
                        if t.to == NodeStatus::Active {
                            let ok = matches!(
                                (state, event),
                                (NodeStatus::Pending, LifecycleEvent::ProbePassed { .. })
                                    | (NodeStatus::Stale, LifecycleEvent::Heartbeat)
                            );
                            prop_assert!(ok, "active reached from {} by {}", state, event.name());
                        }
                        state = t.to;
                    }
                    Ok(None) => {}
                    Err(Error::IllegalTransition { from, .. }) => prop_assert_eq!(from, state),
                    Err(other) => prop_assert!(false, "unexpected error {other}"),
                }
            }
        }

        /// The function is total: every (state, event) pair answers without panicking.
        #[test]
        fn transition_is_total(event in any_event()) {
            for s in NodeStatus::ALL {
                let _ = transition(s, &event);
            }
        }
    }
}
