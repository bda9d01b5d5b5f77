//! The network's own reputation of a node, R 0–100, from what the coordinator saw it do over
//! a rolling window (default 14 days), as four weighted sub-scores:
//!
//! - **Reliability**: uptime over the window and leases completed against leases that
//!   expired or that the node gave up.
//! - **Correctness**: proofs verified against proofs rejected and receipt faults.
//! - **Efficiency**: the node's median proving time against the median of nodes of the same
//!   GPU tier on the same job kind (faster than its peers is 100).
//! - **Policy**: violations the node provably committed — a completion request signed by its
//!   key (and accepted once, replay-logged) carrying a receipt whose signature does not
//!   verify or whose contents contradict the verified proof. What an attacker could cause in
//!   a node's name without its key is *not* counted, or anyone could ruin any node's score:
//!   unsigned or badly signed requests, rate-limit rejections (counted before any signature
//!   is checked), replays of captured messages, and attestation answers (a captured
//!   registration replayed after its challenge expired would fail in the node's name).
//!
//! A sub-score without evidence is `null` and left out (its weight goes to the others); R is
//! `null` when none has evidence. Below the policy's threshold, with enough evidence since
//! the node's last clearance, the node is quarantined with the reason. The chain's own
//! 0–1000 score is a different thing and shown beside it, labelled as the chain's.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Something a node did that reputation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeFact {
    /// It completed a leased job with a verified proof.
    LeaseCompleted,
    /// A lease it held ran out.
    LeaseExpired,
    /// It reported a leased job as failed.
    LeaseFailed,
    /// A proof it handed in failed verification.
    ProofRejected,
    /// It handed in a receipt whose signature or contents were wrong.
    ReceiptFault,
    /// A request signed by its key carried a receipt whose signature does not verify.
    SignatureViolation,
}

impl NodeFact {
    /// Every fact.
    pub const ALL: [NodeFact; 6] = [
        NodeFact::LeaseCompleted,
        NodeFact::LeaseExpired,
        NodeFact::LeaseFailed,
        NodeFact::ProofRejected,
        NodeFact::ReceiptFault,
        NodeFact::SignatureViolation,
    ];

    /// The snake_case name used in JSON and storage.
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeFact::LeaseCompleted => "lease_completed",
            NodeFact::LeaseExpired => "lease_expired",
            NodeFact::LeaseFailed => "lease_failed",
            NodeFact::ProofRejected => "proof_rejected",
            NodeFact::ReceiptFault => "receipt_fault",
            NodeFact::SignatureViolation => "signature_violation",
        }
    }

    /// Parses [`NodeFact::as_str`].
    pub fn parse(s: &str) -> crate::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| crate::Error::invalid("node fact", format!("unknown fact {s:?}")))
    }
}

impl fmt::Display for NodeFact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many of each fact a node has in a window.
pub type FactCounts = BTreeMap<NodeFact, u64>;

/// The weights and thresholds of the reputation.
#[derive(Debug, Clone, PartialEq)]
pub struct ReputationPolicy {
    /// The rolling window (default 14 days).
    pub window: std::time::Duration,
    /// Weights of Reliability, Correctness, Efficiency, Policy (default 0.35, 0.35, 0.15,
    /// 0.15).
    pub weights: [f64; 4],
    /// A node whose R falls below this is quarantined (default 40; `None`: never).
    pub quarantine_below: Option<u32>,
    /// Leases (completed, expired, failed) and proof outcomes needed since the node's last
    /// clearance before R may quarantine it (default 5): a new or just-cleared node is not
    /// judged on nothing.
    pub min_evidence: u64,
    /// Points one policy violation costs (default 25).
    pub violation_cost: f64,
}

impl Default for ReputationPolicy {
    fn default() -> Self {
        Self {
            window: std::time::Duration::from_secs(14 * 86_400),
            weights: [0.35, 0.35, 0.15, 0.15],
            quarantine_below: Some(40),
            min_evidence: 5,
            violation_cost: 25.0,
        }
    }
}

/// One sub-score with what it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubScore {
    /// 0–100; `null` without evidence (left out of R).
    pub score: Option<f64>,
    /// Its weight in R.
    pub weight: f64,
    /// The inputs, by name (counts, ratios, milliseconds).
    pub inputs: BTreeMap<String, f64>,
    /// How it was computed, in words.
    pub explanation: String,
}

/// The network's reputation of a node and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reputation {
    /// R, 0–100 (`null` when no sub-score has evidence).
    pub score: Option<u32>,
    /// Uptime and leases completed against expired or failed.
    pub reliability: SubScore,
    /// Proofs verified against rejected, receipt faults.
    pub correctness: SubScore,
    /// Proving time against nodes of the same GPU tier on the same job kind.
    pub efficiency: SubScore,
    /// Violations the node provably committed.
    pub policy: SubScore,
    /// The window's start (its end is `computed_at`).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub window_from: Timestamp,
    /// When it was computed.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub computed_at: Timestamp,
    /// When the node last passed a probe (`null`: never).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::TimestampSchema>))]
    pub last_probe_at: Option<Timestamp>,
}

/// What reputation is computed from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReputationInputs {
    /// Fact counts in the window.
    pub facts: FactCounts,
    /// Uptime ratio over the window (`None`: nothing counted).
    pub uptime: Option<f64>,
    /// Median run time of the node and of its peers (same GPU tier, same job kind), per
    /// kind, milliseconds: `(kind, node_median, peer_median, node_jobs)`.
    pub efficiency: Vec<(String, f64, f64, u64)>,
    /// When the node last passed a probe.
    pub last_probe_at: Option<Timestamp>,
}

fn count(facts: &FactCounts, f: NodeFact) -> u64 {
    facts.get(&f).copied().unwrap_or(0)
}

/// Evidence for the quarantine rule: leases finished either way and proofs judged.
pub fn evidence(facts: &FactCounts) -> u64 {
    [
        NodeFact::LeaseCompleted,
        NodeFact::LeaseExpired,
        NodeFact::LeaseFailed,
        NodeFact::ProofRejected,
        NodeFact::ReceiptFault,
    ]
    .into_iter()
    .map(|f| count(facts, f))
    .sum()
}

/// Computes the reputation of `inputs` under `policy` at `now` over the window starting at
/// `window_from`.
pub fn compute(
    policy: &ReputationPolicy,
    inputs: &ReputationInputs,
    window_from: Timestamp,
    now: Timestamp,
) -> Reputation {
    let f = &inputs.facts;
    let [w_rel, w_cor, w_eff, w_pol] = policy.weights;
    let completed = count(f, NodeFact::LeaseCompleted) as f64;
    let unfinished = (count(f, NodeFact::LeaseExpired) + count(f, NodeFact::LeaseFailed)) as f64;
    let mut rel_inputs = BTreeMap::from([
        ("leases_completed".to_string(), completed),
        ("leases_expired_or_failed".to_string(), unfinished),
    ]);
    let lease_ratio = (completed + unfinished > 0.0).then(|| completed / (completed + unfinished));
    if let Some(u) = inputs.uptime {
        rel_inputs.insert("uptime".into(), u);
    }
    let reliability = SubScore {
        score: match (inputs.uptime, lease_ratio) {
            (Some(u), Some(l)) => Some(100.0 * (u + l) / 2.0),
            (Some(u), None) => Some(100.0 * u),
            (None, Some(l)) => Some(100.0 * l),
            (None, None) => None,
        },
        weight: w_rel,
        inputs: rel_inputs,
        explanation: "100 × the mean of uptime over the window and leases completed / \
                      (completed + expired + failed); either alone when the other has no data"
            .into(),
    };
    let rejected = count(f, NodeFact::ProofRejected) as f64;
    let faults = count(f, NodeFact::ReceiptFault) as f64;
    let judged = completed + rejected + faults;
    let correctness = SubScore {
        score: (judged > 0.0).then(|| 100.0 * completed / judged),
        weight: w_cor,
        inputs: BTreeMap::from([
            ("proofs_verified".to_string(), completed),
            ("proofs_rejected".to_string(), rejected),
            ("receipt_faults".to_string(), faults),
        ]),
        explanation: "100 × proofs verified / (verified + rejected + receipt faults)".into(),
    };
    let mut eff_inputs = BTreeMap::new();
    let mut weighted = 0.0;
    let mut jobs = 0u64;
    for (kind, mine, peers, n) in &inputs.efficiency {
        if *mine > 0.0 && *peers > 0.0 {
            let s = (100.0 * peers / mine).min(100.0);
            weighted += s * *n as f64;
            jobs += n;
            eff_inputs.insert(format!("{kind}.node_median_ms"), *mine);
            eff_inputs.insert(format!("{kind}.peer_median_ms"), *peers);
        }
    }
    let efficiency = SubScore {
        score: (jobs > 0).then(|| weighted / jobs as f64),
        weight: w_eff,
        inputs: eff_inputs,
        explanation: "per job kind, 100 × the median run time of nodes of the same GPU tier / \
                      this node's (capped at 100), weighted by the node's jobs of each kind"
            .into(),
    };
    const VIOLATIONS: [NodeFact; 2] = [NodeFact::SignatureViolation, NodeFact::ReceiptFault];
    let violations: u64 = VIOLATIONS.into_iter().map(|v| count(f, v)).sum();
    let policy_score = SubScore {
        score: Some((100.0 - policy.violation_cost * violations as f64).max(0.0)),
        weight: w_pol,
        inputs: VIOLATIONS
            .into_iter()
            .map(|v| (v.as_str().to_string(), count(f, v) as f64))
            .collect(),
        explanation: format!(
            "100 − {} per violation signed by the node's key (receipts with a bad signature \
             or contents); requests an attacker could send in its name are not counted",
            policy.violation_cost
        ),
    };
    // The policy score alone says nothing (it is 100 by default): R needs other evidence.
    let parts = [&reliability, &correctness, &efficiency];
    let score = if parts.iter().all(|p| p.score.is_none()) {
        None
    } else {
        let (mut sum, mut weights) = (0.0, 0.0);
        for p in parts.into_iter().chain([&policy_score]) {
            if let Some(s) = p.score {
                sum += s * p.weight;
                weights += p.weight;
            }
        }
        (weights > 0.0).then(|| (sum / weights).round().clamp(0.0, 100.0) as u32)
    };
    Reputation {
        score,
        reliability,
        correctness,
        efficiency,
        policy: policy_score,
        window_from,
        computed_at: now,
        last_probe_at: inputs.last_probe_at,
    }
}

/// The median of `values` (the lower middle for an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len().saturating_sub(1) / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap()
    }

    #[test]
    fn a_clean_node_scores_high_and_failing_proofs_drop_correctness() {
        let p = ReputationPolicy::default();
        let clean = ReputationInputs {
            facts: BTreeMap::from([(NodeFact::LeaseCompleted, 20)]),
            uptime: Some(1.0),
            efficiency: vec![("poseidon2-chain".into(), 100.0, 100.0, 20)],
            last_probe_at: Some(at()),
        };
        let r = compute(&p, &clean, at(), at());
        assert_eq!(r.score, Some(100));
        assert_eq!(r.correctness.score, Some(100.0));
        let mut bad = clean.clone();
        bad.facts.insert(NodeFact::ProofRejected, 20);
        let r = compute(&p, &bad, at(), at());
        assert_eq!(r.correctness.score, Some(50.0));
        assert!(r.score.is_some_and(|s| s < 100));
        // Slow against peers: efficiency is their median over its own.
        let mut slow = clean.clone();
        slow.efficiency = vec![("poseidon2-chain".into(), 400.0, 100.0, 20)];
        assert_eq!(compute(&p, &slow, at(), at()).efficiency.score, Some(25.0));
        // Nothing known: no R, not a made-up one.
        let none = compute(&p, &ReputationInputs::default(), at(), at());
        assert_eq!(none.score, None);
        assert_eq!(none.policy.score, Some(100.0));
        // Violations cost points, down to zero.
        let mut cheat = clean;
        cheat.facts.insert(NodeFact::SignatureViolation, 5);
        assert_eq!(compute(&p, &cheat, at(), at()).policy.score, Some(0.0));
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.0));
    }
}
