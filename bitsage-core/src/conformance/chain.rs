//! Conformance suite for [`ChainSource`].

use crate::{ChainSource, Error, WalletAddress};

/// Runs every check. `staked` is a wallet the fixture has staked for; `fresh` one it has not.
pub async fn run_all(src: &dyn ChainSource, staked: &WalletAddress, fresh: &WalletAddress) {
    fresh_wallet_reads_defaults(src, fresh).await;
    staked_wallet_reads_its_stake(src, staked).await;
    answers_carry_provenance(src, staked).await;
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
