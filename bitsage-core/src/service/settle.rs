//! Settlement rounds: verified work goes to the chain in epochs, each paid exactly once
//! ([`crate::settlement`]). A round takes the unfinished epoch (or assembles a new one when
//! one is due), asks the chain whether that epoch id is already settled (a crash after
//! sending, another coordinator), and otherwise follows its transaction or sends it. Safe to
//! run on every coordinator: the store hands one epoch at a time and the contract refuses a
//! seen epoch id.

use crate::node::NodeRecord;
use crate::settlement::{DynSettlement, EpochState, SlashItem, TxStatus};
use crate::{Error, JobId, Timestamp};

use super::coordinator::{Coordinator, ServiceResult};

/// What one settlement round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Nothing to settle (or no epoch due yet, or no settlement configured).
    Idle,
    /// The epoch's transaction was sent (or is still pending).
    Sent {
        /// The epoch.
        epoch: u64,
        /// Its transaction.
        tx_hash: String,
    },
    /// The epoch is settled on chain.
    Accepted {
        /// The epoch.
        epoch: u64,
        /// The block.
        block: u64,
    },
    /// The attempt failed; the epoch is retried under its id.
    Failed {
        /// The epoch.
        epoch: u64,
        /// Why.
        reason: String,
    },
}

impl Coordinator {
    /// The same use cases settling verified work on chain through `settlement` (see
    /// [`Coordinator::settle_round`]).
    pub fn with_settlement(mut self, settlement: DynSettlement) -> Self {
        self.settlement = Some(settlement);
        self
    }

    /// Records that `node` cheated on `job` (an invalid proof, a forged receipt): it is slashed
    /// on chain in the next epoch. A failure to record is logged, not raised: the node is
    /// quarantined either way.
    pub(crate) async fn record_slash(
        &self,
        node: &NodeRecord,
        job: JobId,
        reason: &str,
        now: Timestamp,
    ) {
        let slash = SlashItem {
            node_id: node.id.clone(),
            worker: node.wallet,
            job_id: job,
            reason: reason.to_string(),
            at: now,
        };
        if let Err(e) = self.store.record_slash(&slash).await {
            tracing::error!(node = %node.id, job = %job, error = %e, "could not record the slash");
        }
    }

    /// Whether a new epoch is due: enough receipts wait, or the oldest has waited long enough.
    async fn epoch_due(&self, now: Timestamp) -> Result<bool, Error> {
        let backlog = self.store.settlement_backlog().await?;
        if backlog.slashes > 0 || backlog.receipts >= u64::from(self.policy.epoch_max_jobs) {
            return Ok(true);
        }
        Ok(backlog.oldest.is_some_and(|at| {
            (now - at)
                .to_std()
                .is_ok_and(|age| age >= self.policy.epoch_every)
        }))
    }

    /// One settlement round (see the [module documentation](self)). Chain down: the epoch is
    /// marked failed with the reason and retried later; nothing is lost or paid twice.
    pub async fn settle_round(&self, now: Timestamp) -> ServiceResult<SettleOutcome> {
        let Some(settlement) = &self.settlement else {
            return Ok(SettleOutcome::Idle);
        };
        // An unfinished epoch is always worked on; a new one only when due. Slashes alone
        // also make an epoch due (they wait for nothing).
        let epoch = match self.store.unfinished_epoch().await? {
            Some(e) => e,
            None => {
                if !self.epoch_due(now).await? {
                    return Ok(SettleOutcome::Idle);
                }
                match self
                    .store
                    .next_epoch(self.policy.epoch_max_jobs, now)
                    .await?
                {
                    Some(e) => e,
                    None => return Ok(SettleOutcome::Idle),
                }
            }
        };
        let id = epoch.id;
        let failed = |reason: String| async move {
            tracing::warn!(epoch = id, %reason, "settlement attempt failed; will retry");
            self.store.epoch_failed(id, &reason, now).await?;
            Ok::<_, Error>(SettleOutcome::Failed { epoch: id, reason })
        };
        // Settled already (sent before a crash, or by another coordinator)?
        match settlement.settled(id).await {
            Ok(Some(block)) => {
                let tx = match &epoch.state {
                    EpochState::Sent { tx_hash } => tx_hash.clone(),
                    _ => String::new(),
                };
                self.store.epoch_accepted(id, &tx, block, now).await?;
                tracing::info!(epoch = id, block, "epoch found settled on chain");
                return Ok(SettleOutcome::Accepted { epoch: id, block });
            }
            Ok(None) => {}
            Err(e) => return Ok(failed(e.to_string()).await?),
        }
        if let EpochState::Sent { tx_hash } = &epoch.state {
            return match settlement.status(tx_hash).await {
                Ok(TxStatus::Pending) => Ok(SettleOutcome::Sent {
                    epoch: id,
                    tx_hash: tx_hash.clone(),
                }),
                Ok(TxStatus::Accepted { block }) => {
                    self.store.epoch_accepted(id, tx_hash, block, now).await?;
                    tracing::info!(epoch = id, block, tx = %tx_hash, jobs = epoch.items.len(), "epoch settled on chain");
                    Ok(SettleOutcome::Accepted { epoch: id, block })
                }
                Ok(TxStatus::Reverted { reason }) => Ok(failed(reason).await?),
                Err(e) => Ok(failed(e.to_string()).await?),
            };
        }
        let batch = epoch.batch()?;
        match settlement.send(&batch).await {
            Ok(tx_hash) => {
                self.store.epoch_sent(id, &tx_hash, now).await?;
                tracing::info!(epoch = id, tx = %tx_hash, jobs = batch.jobs, slashes = batch.slashes.len(), "epoch sent");
                Ok(SettleOutcome::Sent { epoch: id, tx_hash })
            }
            Err(e) => Ok(failed(e.to_string()).await?),
        }
    }
}
