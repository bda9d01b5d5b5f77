//! Conformance suite for [`ChainSource`].

use crate::{ChainSource, Error, WalletAddress};

/// Runs every check. `staked` is a wallet the fixture has staked for; `fresh` one it has not.
pub async fn run_all(src: &dyn ChainSource, staked: &WalletAddress, fresh: &WalletAddress) {
    fresh_wallet_reads_defaults(src, fresh).await;
    staked_wallet_reads_its_stake(src, staked).await;
    answers_carry_provenance(src, staked).await;
    eligibility_follows_the_tier_minimum(src, staked, fresh).await;
}

/// `is_eligible` agrees with the stake and the minimum of the tier staked for; a fresh
/// wallet is not eligible; minimums rise with the tier.
pub async fn eligibility_follows_the_tier_minimum(
    src: &dyn ChainSource,
    staked: &WalletAddress,
    fresh: &WalletAddress,
) {
    assert!(
        !src.is_eligible(fresh).await.expect("eligibility").value,
        "a fresh wallet is eligible"
    );
    let stake = src.stake(staked).await.expect("stake").value;
    let min = src
        .min_stake(stake.gpu_tier)
        .await
        .expect("min stake")
        .value;
    let free = stake
        .amount
        .checked_sub(stake.locked_amount)
        .expect("locked ≤ staked");
    let eligible = src.is_eligible(staked).await.expect("eligibility").value;
    assert_eq!(
        eligible,
        stake.is_active && !free.is_zero() && free >= min,
        "is_eligible disagrees with stake {free} and minimum {min}"
    );
    let mut last = crate::TokenAmount::ZERO;
    for tier in crate::gpu::GpuTier::ALL {
        let m = src.min_stake(tier).await.expect("min stake").value;
        assert!(
            m >= last,
            "the {} minimum is below the tier under it",
            tier.label()
        );
        last = m;
    }
}

/// A wallet that never staked reads the contract's zero view, not an error.
pub async fn fresh_wallet_reads_defaults(src: &dyn ChainSource, fresh: &WalletAddress) {
    let stake = src.stake(fresh).await.expect("stake of a fresh wallet");
    assert!(stake.value.amount.is_zero(), "fresh wallet has stake");
    assert!(!stake.value.is_active, "fresh wallet is active");
    let rewards = src.rewards(fresh).await.expect("rewards of a fresh wallet");
    assert!(rewards.value.pending.is_zero());
    let rep = src
        .reputation(fresh)
        .await
        .expect("reputation of a fresh wallet");
    assert!(rep.value.score <= 1000 && (1..=5).contains(&rep.value.level));
}

/// A staked wallet reads a positive stake, included in the totals.
pub async fn staked_wallet_reads_its_stake(src: &dyn ChainSource, staked: &WalletAddress) {
    let stake = src.stake(staked).await.expect("stake");
    assert!(
        !stake.value.amount.is_zero(),
        "staked wallet reads zero stake"
    );
    let totals = src.totals().await.expect("totals");
    assert!(totals.value.total_staked >= stake.value.amount);
    // The reward rate reads (a rate above 1000 % a year would be a decoding mistake).
    let apy = src.apy_bps().await.expect("apy");
    assert!(apy.value <= 100_000, "apy_bps {}", apy.value);
    let rep = src.reputation(staked).await.expect("reputation");
    assert!(rep.value.score <= 1000 && (1..=5).contains(&rep.value.level));
    assert!(
        rep.value.successful_jobs + rep.value.failed_jobs <= rep.value.total_jobs_completed
            || rep.value.total_jobs_completed == 0
    );
}

/// Answers say when they were read, and not in the future.
pub async fn answers_carry_provenance(src: &dyn ChainSource, wallet: &WalletAddress) {
    let now = crate::time::now() + chrono::TimeDelta::seconds(1);
    let b = src.token_balance(wallet).await;
    match b {
        Ok(b) => assert!(b.at.read_at <= now, "read in the future"),
        Err(Error::Unavailable { reason, .. }) => assert!(!reason.is_empty()),
        Err(e) => panic!("token_balance: unexpected error {e}"),
    }
}
