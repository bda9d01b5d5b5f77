//! The stake gate: with a chain, a node works only while its wallet is eligible on
//! `ProverStaking` and its free stake meets the minimum of the GPU tier it registered. A
//! pending node is given no probe until then (its status reason says why); an active node
//! whose stake falls below is moved back to pending by the periodic re-check.

use crate::gpu::GpuTier;
use crate::lifecycle::transition;
use crate::node::{HardwareReport, NodeFilter, NodeRecord};
use crate::{
    ChainSource, Error, JobStoreExt as _, LifecycleEvent, NodeStatus, Timestamp, Transition,
    WalletAddress,
};

use super::coordinator::{Coordinator, ServiceResult};

/// The tier a node registers: the highest tier among its GPUs ([`GpuTier::Consumer`] for a
/// node without GPUs or without tier information).
pub fn node_tier(hardware: &HardwareReport) -> GpuTier {
    hardware
        .gpus
        .iter()
        .filter_map(|g| g.tier)
        .max_by_key(|t| t.index())
        .unwrap_or(GpuTier::Consumer)
}

/// The gate's verdict on a wallet for a tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StakeVerdict {
    /// Eligible and at or above the tier's minimum.
    Eligible,
    /// Not allowed to work; the reason in words.
    Below(String),
}

/// Checks `wallet`'s stake for `tier` on `chain`: eligible on chain (`is_eligible`) and free
/// stake (staked − locked for unstaking) at or above `get_min_stake(tier)`.
pub async fn check_stake(
    chain: &dyn ChainSource,
    wallet: &WalletAddress,
    tier: GpuTier,
) -> Result<StakeVerdict, Error> {
    Ok(check_stake_reading(chain, wallet, tier).await?.0)
}

/// [`check_stake`], with the wallet's staked amount it read.
async fn check_stake_reading(
    chain: &dyn ChainSource,
    wallet: &WalletAddress,
    tier: GpuTier,
) -> Result<(StakeVerdict, crate::TokenAmount), Error> {
    let stake = chain.stake(wallet).await?.value;
    let min = chain.min_stake(tier).await?.value;
    let eligible = chain.is_eligible(wallet).await?.value;
    let free = stake
        .amount
        .checked_sub(stake.locked_amount)
        .unwrap_or(crate::TokenAmount::ZERO);
    if free < min {
        let locked = if stake.locked_amount > crate::TokenAmount::ZERO {
            format!(
                " ({} locked for unstaking)",
                stake.locked_amount.format_sage()
            )
        } else {
            String::new()
        };
        let verdict = StakeVerdict::Below(format!(
            "stake {}{locked} is below the {} minimum of {}",
            free.format_sage(),
            tier.label(),
            min.format_sage()
        ));
        return Ok((verdict, stake.amount));
    }
    if !eligible {
        let verdict = StakeVerdict::Below(format!(
            "wallet {wallet} is not eligible on ProverStaking (stake {} for the {} tier is inactive)",
            free.format_sage(),
            stake.gpu_tier.label()
        ));
        return Ok((verdict, stake.amount));
    }
    Ok((StakeVerdict::Eligible, stake.amount))
}

impl Coordinator {
    /// The stake gate's verdict for `node`; `Eligible` when this coordinator has no chain.
    /// A chain that cannot answer keeps the node out (pending) with that reason.
    pub(crate) async fn stake_verdict(&self, node: &NodeRecord) -> StakeVerdict {
        let Some(chain) = &self.stake_gate else {
            return StakeVerdict::Eligible;
        };
        match check_stake(&**chain, &node.wallet, node_tier(&node.hardware)).await {
            Ok(v) => v,
            Err(e) => StakeVerdict::Below(format!("stake cannot be checked: {e}")),
        }
    }

    /// Re-checks the stake of every active and stale node; those below the gate move back to
    /// pending with the reason. A chain that cannot answer moves nobody (an outage is not a
    /// stake change). Returns the moves.
    pub(crate) async fn recheck_stakes(
        &self,
        now: Timestamp,
    ) -> ServiceResult<Vec<(crate::NodeId, Transition)>> {
        let Some(chain) = &self.stake_gate else {
            return Ok(Vec::new());
        };
        let mut moves = Vec::new();
        // The stake of the distinct wallets read, for `Telemetry::total_staked` (kept only
        // when every wallet could be read: a partial sum would look like a drop).
        let mut staked = std::collections::BTreeMap::new();
        let mut all_read = true;
        for status in [NodeStatus::Active, NodeStatus::Stale] {
            let filter = NodeFilter::status(status);
            // Collect first: moving nodes changes the filtered list under the pages.
            for node in self.store.all_nodes(&filter).await? {
                let reading =
                    check_stake_reading(&**chain, &node.wallet, node_tier(&node.hardware)).await;
                if let Ok((_, amount)) = &reading {
                    staked.insert(node.wallet, *amount);
                }
                let reason = match reading {
                    Ok((StakeVerdict::Below(reason), _)) => reason,
                    Ok((StakeVerdict::Eligible, _)) => continue,
                    Err(e) => {
                        all_read = false;
                        tracing::warn!(node = %node.id, error = %e, "stake re-check: chain unavailable; status kept");
                        continue;
                    }
                };
                let event = LifecycleEvent::StakeBelowMinimum { reason };
                let Some(t) = transition(node.status, &event)? else {
                    continue;
                };
                match self.store.apply_transition(&node.id, &t, now).await {
                    Ok(_) => {
                        tracing::info!(node = %node.id, reason = %t.reason, "node taken out of active: stake");
                        moves.push((node.id, t));
                    }
                    Err(Error::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if all_read {
            match crate::TokenAmount::checked_sum(staked.into_values()) {
                Ok(total) => self.telemetry.set_total_staked(total),
                Err(e) => tracing::warn!(error = %e, "total stake out of range; not recorded"),
            }
        }
        Ok(moves)
    }
}
