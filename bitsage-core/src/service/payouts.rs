//! Payout readiness per node and month: the net earned (ledger) against the deployment's
//! threshold, and an admin's mark that the period is ready to pay (only once, only at or
//! above the threshold).

use crate::node::NodeRecord;
use crate::payout::{period_window, recent_periods, PayoutMark, PayoutPeriod, PayoutState};
use crate::time::Timestamp;
use crate::{Error, NodeId};

use super::coordinator::{Coordinator, ServiceResult};

/// Most months one payouts view lists.
pub const MAX_PAYOUT_MONTHS: u32 = 36;

impl Coordinator {
    /// A node's `period` (`YYYY-MM`) against the threshold, with its mark if any.
    pub async fn payout_period(&self, node: &NodeId, period: &str) -> ServiceResult<PayoutPeriod> {
        let marks = self.store.payout_marks(node).await?;
        self.period_with(node, period, &marks).await
    }

    /// Several periods of a node (its marks read once).
    pub async fn payout_periods(
        &self,
        node: &NodeId,
        periods: &[String],
    ) -> ServiceResult<Vec<PayoutPeriod>> {
        let marks = self.store.payout_marks(node).await?;
        let mut out = Vec::with_capacity(periods.len());
        for p in periods {
            out.push(self.period_with(node, p, &marks).await?);
        }
        Ok(out)
    }

    /// [`Coordinator::payout_period`] with the node's marks already read.
    async fn period_with(
        &self,
        node: &NodeId,
        period: &str,
        marks: &[PayoutMark],
    ) -> ServiceResult<PayoutPeriod> {
        let window = period_window(period)?;
        let total = self.store.earnings_total(node, Some(window)).await?;
        let mark = marks.iter().find(|m| m.period == period);
        let threshold = self.policy.payout_threshold;
        let state = match mark {
            Some(_) => PayoutState::MarkedReady,
            None if total.net >= threshold => PayoutState::Eligible,
            None => PayoutState::BelowThreshold,
        };
        Ok(PayoutPeriod {
            period: period.to_string(),
            net: total.net,
            threshold,
            state,
            marked_by: mark.map(|m| m.marked_by.clone()),
            marked_at: mark.map(|m| m.marked_at),
        })
    }

    /// The last `months` periods of `node` (newest first, the current one included).
    pub async fn payouts(
        &self,
        node: &NodeRecord,
        months: u32,
        now: Timestamp,
    ) -> ServiceResult<Vec<PayoutPeriod>> {
        if !(1..=MAX_PAYOUT_MONTHS).contains(&months) {
            return Err(
                Error::invalid("months", format!("must be 1 ..= {MAX_PAYOUT_MONTHS}")).into(),
            );
        }
        let mut periods = Vec::new();
        for p in recent_periods(now, months) {
            // Months before the node existed have nothing to pay.
            if period_window(&p)?.to <= node.registered_at {
                break;
            }
            periods.push(p);
        }
        self.payout_periods(&node.id, &periods).await
    }

    /// An admin marks `node`'s `period` ready to pay: only once it has ended, at or above the
    /// threshold, once.
    pub async fn mark_payout_ready(
        &self,
        node: &NodeId,
        period: &str,
        by: &str,
        now: Timestamp,
    ) -> ServiceResult<PayoutPeriod> {
        if self.store.get_node(node).await?.is_none() {
            return Err(Error::not_found("node", node).into());
        }
        if crate::payout::period_window(period)?.to > now {
            return Err(Error::Conflict(format!(
                "{period} is not over yet: a month is marked ready once it has ended"
            ))
            .into());
        }
        let current = self.payout_period(node, period).await?;
        match current.state {
            PayoutState::MarkedReady => {
                return Err(Error::Conflict(format!(
                    "{period} of node {node} is already marked ready"
                ))
                .into())
            }
            PayoutState::BelowThreshold => {
                return Err(Error::Conflict(format!(
                    "{period} of node {node} earned {} base units, below the payout threshold \
                     of {}",
                    current.net, current.threshold
                ))
                .into())
            }
            PayoutState::Eligible => {}
        }
        let mark = PayoutMark {
            node_id: node.clone(),
            period: period.to_string(),
            marked_by: by.to_string(),
            marked_at: now,
            net: current.net,
        };
        match self.store.mark_payout(&mark).await {
            Ok(()) => {}
            Err(Error::AlreadyExists { .. }) => {
                return Err(Error::Conflict(format!(
                    "{period} of node {node} is already marked ready"
                ))
                .into())
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(node = %node, period, by, "payout marked ready");
        self.payout_period(node, period).await
    }
}
