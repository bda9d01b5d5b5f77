//! [`InMemoryChain`]: a chain's state in memory, with a block counter.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bitsage_core::chain::{
    ChainReadAt, NetworkTotals, Observed, ReputationInfo, RewardsInfo, StakeInfo,
};
use bitsage_core::gpu::GpuTier;
use bitsage_core::{ChainSource, Error, Result, TokenAmount, WalletAddress};

#[derive(Debug, Default)]
struct State {
    block: u64,
    stakes: HashMap<WalletAddress, StakeInfo>,
    reputations: HashMap<WalletAddress, ReputationInfo>,
    balances: HashMap<WalletAddress, TokenAmount>,
    min_stakes: HashMap<GpuTier, TokenAmount>,
    apy_bps: u64,
    unavailable: Option<String>,
}

/// Chain state in memory. Seed it with [`InMemoryChain::set_stake`] and friends; every write
/// advances the block number, so reads carry a meaningful block.
#[derive(Debug, Default)]
pub struct InMemoryChain {
    state: Mutex<State>,
}

impl InMemoryChain {
    /// An empty chain at block 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn write<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| Error::backend("memory-chain", "lock poisoned"))?;
        s.block += 1;
        Ok(f(&mut s))
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<Observed<T>> {
        let s = self
            .state
            .lock()
            .map_err(|_| Error::backend("memory-chain", "lock poisoned"))?;
        if let Some(reason) = &s.unavailable {
            return Err(Error::Unavailable {
                source_name: "memory-chain".into(),
                reason: reason.clone(),
            });
        }
        Ok(Observed {
            value: f(&s),
            at: ChainReadAt {
                block_number: s.block,
                block_hash: None,
                read_at: bitsage_core::time::now(),
            },
        })
    }

    /// Sets a wallet's stake.
    pub fn set_stake(&self, wallet: WalletAddress, stake: StakeInfo) -> Result<()> {
        self.write(|s| {
            s.stakes.insert(wallet, stake);
        })
    }

    /// Sets a wallet's reputation (score must be 0–1000, level 1–5).
    pub fn set_reputation(&self, wallet: WalletAddress, rep: ReputationInfo) -> Result<()> {
        if rep.score > 1000 || !(1..=5).contains(&rep.level) {
            return Err(Error::invalid(
                "reputation",
                "score 0..=1000 and level 1..=5",
            ));
        }
        self.write(|s| {
            s.reputations.insert(wallet, rep);
        })
    }

    /// Sets a wallet's token balance.
    pub fn set_balance(&self, wallet: WalletAddress, balance: TokenAmount) -> Result<()> {
        self.write(|s| {
            s.balances.insert(wallet, balance);
        })
    }

    /// Sets the minimum free stake of `tier` (default zero).
    pub fn set_min_stake(&self, tier: GpuTier, amount: TokenAmount) -> Result<()> {
        self.write(|s| {
            s.min_stakes.insert(tier, amount);
        })
    }

    /// Sets the staking reward rate, basis points a year (default 0).
    pub fn set_apy_bps(&self, bps: u64) -> Result<()> {
        self.write(|s| s.apy_bps = bps)
    }

    /// Makes every read fail as `Unavailable` with `reason` (or recover with `None`), to
    /// exercise outage handling.
    pub fn set_unavailable(&self, reason: Option<String>) -> Result<()> {
        self.write(|s| s.unavailable = reason)
    }
}

#[async_trait]
impl ChainSource for InMemoryChain {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn stake(&self, wallet: &WalletAddress) -> Result<Observed<StakeInfo>> {
        self.read(|s| {
            s.stakes
                .get(wallet)
                .cloned()
                .unwrap_or_else(StakeInfo::never_staked)
        })
    }

    async fn rewards(&self, wallet: &WalletAddress) -> Result<Observed<RewardsInfo>> {
        self.read(|s| {
            let stake = s
                .stakes
                .get(wallet)
                .cloned()
                .unwrap_or_else(StakeInfo::never_staked);
            RewardsInfo {
                pending: stake.pending_rewards,
                last_claim_at: stake.last_claim_at,
            }
        })
    }

    async fn reputation(&self, wallet: &WalletAddress) -> Result<Observed<ReputationInfo>> {
        self.read(|s| {
            s.reputations
                .get(wallet)
                .cloned()
                .unwrap_or_else(ReputationInfo::starting)
        })
    }

    async fn token_balance(&self, wallet: &WalletAddress) -> Result<Observed<TokenAmount>> {
        self.read(|s| s.balances.get(wallet).copied().unwrap_or_default())
    }

    async fn min_stake(&self, tier: GpuTier) -> Result<Observed<TokenAmount>> {
        self.read(|s| s.min_stakes.get(&tier).copied().unwrap_or_default())
    }

    /// As `ProverStaking.is_eligible`: an active stake whose free part is positive and meets
    /// the minimum of the tier staked for.
    async fn is_eligible(&self, wallet: &WalletAddress) -> Result<Observed<bool>> {
        self.read(|s| {
            let stake = s
                .stakes
                .get(wallet)
                .cloned()
                .unwrap_or_else(StakeInfo::never_staked);
            let free = stake
                .amount
                .checked_sub(stake.locked_amount)
                .unwrap_or_default();
            let min = s
                .min_stakes
                .get(&stake.gpu_tier)
                .copied()
                .unwrap_or_default();
            stake.is_active && !free.is_zero() && free >= min
        })
    }

    async fn apy_bps(&self) -> Result<Observed<u64>> {
        self.read(|s| s.apy_bps)
    }

    async fn totals(&self) -> Result<Observed<NetworkTotals>> {
        let observed =
            self.read(|s| TokenAmount::checked_sum(s.stakes.values().map(|v| v.amount)))?;
        Ok(Observed {
            value: NetworkTotals {
                total_staked: observed.value?,
            },
            at: observed.at,
        })
    }
}
