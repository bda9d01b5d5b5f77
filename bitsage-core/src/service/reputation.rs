//! The network's reputation of its nodes ([`crate::reputation`]): computed from the facts the
//! coordinator recorded, the per-minute uptime rollup and job timings; stored on the node
//! (so lists filter on it); a node under the threshold with enough evidence since its last
//! clearance is quarantined with the reason. Also the facts' recording points and the admin
//! actions on quarantine.

use std::collections::{BTreeMap, HashMap};

use crate::node::NodeRecord;
use crate::ports::{JobStore, JobStoreExt as _};
use crate::reputation::{self, NodeFact, Reputation, ReputationInputs};
use crate::time::{TimeWindow, Timestamp};
use crate::timing::{JobTiming, TimingFilter};
use crate::{Error, LifecycleEvent, NodeId, NodeStatus};

use super::coordinator::{Coordinator, ServiceResult};

/// What one reputation round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReputationRound {
    /// Nodes whose reputation was computed and stored.
    pub computed: u64,
    /// Nodes quarantined for a reputation under the threshold, with their R.
    pub quarantined: Vec<(NodeId, u32)>,
}

/// The peer medians of a round: per (GPU tier, job kind), the median run time in ms of
/// every job of the window.
#[derive(Debug, Default)]
struct Peers {
    medians: HashMap<(String, String), f64>,
    by_node: HashMap<NodeId, Vec<JobTiming>>,
}

/// The tier a node is compared within (the stake gate's tier of its hardware).
fn tier_of(node: &NodeRecord) -> String {
    format!("{:?}", super::stake::node_tier(&node.hardware))
}

impl Peers {
    fn of(timings: Vec<JobTiming>, tiers: &HashMap<NodeId, String>) -> Self {
        let mut groups: HashMap<(String, String), Vec<f64>> = HashMap::new();
        let mut by_node: HashMap<NodeId, Vec<JobTiming>> = HashMap::new();
        for t in timings {
            let Some(tier) = tiers.get(&t.node_id).cloned() else {
                continue;
            };
            groups
                .entry((tier, t.kind.clone()))
                .or_default()
                .push(t.run.as_secs_f64() * 1e3);
            by_node.entry(t.node_id.clone()).or_default().push(t);
        }
        Self {
            medians: groups
                .into_iter()
                .filter_map(|(k, v)| reputation::median(v).map(|m| (k, m)))
                .collect(),
            by_node,
        }
    }

    /// `(kind, node median, peer median, node jobs)` per kind the node ran.
    fn efficiency(&self, node: &NodeId, tier: &str) -> Vec<(String, f64, f64, u64)> {
        let mut kinds: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for t in self.by_node.get(node).into_iter().flatten() {
            kinds
                .entry(t.kind.clone())
                .or_default()
                .push(t.run.as_secs_f64() * 1e3);
        }
        kinds
            .into_iter()
            .filter_map(|(kind, runs)| {
                let n = runs.len() as u64;
                let mine = reputation::median(runs)?;
                let peers = *self.medians.get(&(tier.to_string(), kind.clone()))?;
                Some((kind, mine, peers, n))
            })
            .collect()
    }
}

/// When the node last passed a probe and when an admin last cleared it, from its history.
async fn history_marks(
    store: &dyn JobStore,
    id: &NodeId,
) -> crate::Result<(Option<Timestamp>, Option<Timestamp>)> {
    let history = store.status_history(id).await?;
    let probe = history
        .iter()
        .rev()
        .find(|h| h.from == NodeStatus::Pending && h.to == NodeStatus::Active)
        .map(|h| h.at);
    let cleared = history
        .iter()
        .rev()
        .find(|h| h.from == NodeStatus::Quarantined)
        .map(|h| h.at);
    Ok((probe, cleared))
}

impl Coordinator {
    /// Records a fact about `node` for its reputation; a failure is logged, never fatal to
    /// the request that caused it.
    pub(crate) async fn note_fact(
        &self,
        node: &NodeId,
        fact: NodeFact,
        now: Timestamp,
        detail: &str,
    ) {
        if let Err(e) = self.store.record_node_fact(node, fact, now, detail).await {
            tracing::warn!(node = %node, fact = %fact, error = %e, "could not record a reputation fact");
        }
    }

    /// The window reputation is computed over, ending at `now`.
    fn reputation_window(&self, now: Timestamp) -> TimeWindow {
        super::fleet::window_ending(
            now,
            chrono::TimeDelta::from_std(self.policy.reputation.window)
                .unwrap_or(chrono::TimeDelta::days(14)),
        )
    }

    /// The reputation of `node` at `now`, and the evidence it rests on. A node cleared by an
    /// admin is judged on what it did since (a clearance is a fresh start, not a reprieve
    /// until the old facts age out).
    async fn compute_reputation(
        &self,
        node: &NodeRecord,
        peers: &Peers,
        now: Timestamp,
    ) -> crate::Result<(Reputation, u64)> {
        let (last_probe_at, cleared_at) = history_marks(&*self.store, &node.id).await?;
        let mut window = self.reputation_window(now);
        if let Some(c) = cleared_at.filter(|c| *c > window.from && *c < now) {
            window.from = c;
        }
        let (facts, uptime) = futures::try_join!(
            self.store.node_facts(&node.id, window),
            self.store.uptime(node, window),
        )?;
        let evidence = reputation::evidence(&facts);
        let inputs = ReputationInputs {
            facts,
            uptime: uptime.ratio,
            efficiency: peers.efficiency(&node.id, &tier_of(node)),
            last_probe_at,
        };
        Ok((
            reputation::compute(&self.policy.reputation, &inputs, window.from, now),
            evidence,
        ))
    }

    async fn peers(&self, nodes: &[NodeRecord], now: Timestamp) -> crate::Result<Peers> {
        let timings = self
            .store
            .job_timings(&TimingFilter::window(self.reputation_window(now)))
            .await?;
        let tiers = nodes.iter().map(|n| (n.id.clone(), tier_of(n))).collect();
        Ok(Peers::of(timings, &tiers))
    }

    /// One node's reputation now, computed (not stored): the explanation an operator reads.
    pub async fn reputation_of(
        &self,
        node: &NodeRecord,
        now: Timestamp,
    ) -> ServiceResult<Reputation> {
        let nodes = self.store.all_nodes(&Default::default()).await?;
        let peers = self.peers(&nodes, now).await?;
        Ok(self.compute_reputation(node, &peers, now).await?.0)
    }

    /// Recomputes and stores every node's reputation; quarantines a node under the policy's
    /// threshold that has enough evidence since its last clearance. A node whose reputation
    /// cannot be computed or stored is logged and skipped.
    pub async fn update_reputations(&self, now: Timestamp) -> ServiceResult<ReputationRound> {
        let nodes = self.store.all_nodes(&Default::default()).await?;
        let peers = self.peers(&nodes, now).await?;
        let mut round = ReputationRound::default();
        for node in &nodes {
            // One node's failure does not stop the round for the others.
            let computed = match self.compute_reputation(node, &peers, now).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(node = %node.id, error = %e, "reputation not computed");
                    continue;
                }
            };
            let (rep, evidence) = computed;
            if let Err(e) = self.store.set_reputation(&node.id, &rep).await {
                tracing::warn!(node = %node.id, error = %e, "reputation not stored");
                continue;
            }
            round.computed += 1;
            let (Some(score), Some(threshold)) =
                (rep.score, self.policy.reputation.quarantine_below)
            else {
                continue;
            };
            if score < threshold
                && evidence >= self.policy.reputation.min_evidence
                && node.status != NodeStatus::Quarantined
            {
                let event = LifecycleEvent::ReputationBelowThreshold { score, threshold };
                match self.apply_event(node, &event, now).await {
                    Ok(_) => round.quarantined.push((node.id.clone(), score)),
                    // Moved meanwhile (another coordinator): the next round sees it again.
                    Err(Error::Conflict(_)) => {}
                    Err(e) => {
                        tracing::warn!(node = %node.id, error = %e, "low-reputation quarantine failed");
                    }
                }
            }
        }
        Ok(round)
    }

    /// An admin quarantines `node` with a reason (it takes no work until cleared).
    pub async fn quarantine(
        &self,
        node: &NodeId,
        admin: &str,
        reason: &str,
        now: Timestamp,
    ) -> ServiceResult<NodeRecord> {
        check_reason(reason)?;
        let rec = self
            .store
            .get_node(node)
            .await?
            .ok_or_else(|| Error::not_found("node", node))?;
        let event = LifecycleEvent::AdminQuarantined {
            admin: admin.to_string(),
            reason: reason.to_string(),
        };
        if crate::lifecycle::transition(rec.status, &event)?.is_none() {
            return Err(Error::Conflict(format!("node {node} is already quarantined")).into());
        }
        self.apply_event(&rec, &event, now).await?;
        Ok(self
            .store
            .get_node(node)
            .await?
            .ok_or_else(|| Error::not_found("node", node))?)
    }

    /// An admin clears a quarantined `node`: it goes back to pending and must pass a probe
    /// again; reputation judges it on evidence after this moment.
    pub async fn clear_quarantine(
        &self,
        node: &NodeId,
        admin: &str,
        note: &str,
        now: Timestamp,
    ) -> ServiceResult<NodeRecord> {
        check_reason(note)?;
        let rec = self
            .store
            .get_node(node)
            .await?
            .ok_or_else(|| Error::not_found("node", node))?;
        if rec.status != NodeStatus::Quarantined {
            return Err(
                Error::Conflict(format!("node {node} is {}, not quarantined", rec.status)).into(),
            );
        }
        let event = LifecycleEvent::AdminCleared {
            admin: admin.to_string(),
            note: note.to_string(),
        };
        self.apply_event(&rec, &event, now).await?;
        Ok(self
            .store
            .get_node(node)
            .await?
            .ok_or_else(|| Error::not_found("node", node))?)
    }
}

/// Longest reason or note an admin or operator may give, characters.
pub const MAX_REASON_LEN: usize = 500;

/// A reason must be 1 ..= [`MAX_REASON_LEN`] printable characters.
pub fn check_reason(reason: &str) -> crate::Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::invalid("reason", "must not be empty"));
    }
    crate::node::check_text("reason", reason, MAX_REASON_LEN)
}
