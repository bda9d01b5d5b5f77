//! `StarknetChainSource` against our contracts on a real `starknet-devnet` (skipped with a
//! printed reason when the binary is missing, failed under `CI=true`).

use crate::support;

use std::time::Duration;

use bitsage_chain::devnet::{BlockId, Felt, Outcome};
use bitsage_core::gpu::GpuTier;
use bitsage_core::{ChainSource, TokenAmount};
use support::{deployed_or_skip, fund_and_stake, sage, source, SERIAL};

/// A felt below 2^128, decoded by hand.
fn limb(f: &Felt) -> u128 {
    let b = f.to_bytes_be();
    assert!(b[..16].iter().all(|x| *x == 0), "limb {f:#x} ≥ 2^128");
    let mut low = [0u8; 16];
    low.copy_from_slice(&b[16..]);
    u128::from_be_bytes(low)
}

fn u256_at(felts: &[Felt], i: usize) -> TokenAmount {
    TokenAmount::from_limbs(limb(&felts[i]), limb(&felts[i + 1]))
}

fn ts(secs: u128) -> Option<i64> {
    (secs != 0).then(|| i64::try_from(secs).expect("timestamp"))
}

#[tokio::test]
async fn devnet_source_matches_raw_calls() {
    let _serial = SERIAL.lock().await;
    let Some((devnet, dep)) = deployed_or_skip("devnet_source_matches_raw_calls").await else {
        return;
    };
    let worker = dep.accounts[1].clone();
    dep.mint_sage(worker.address, sage(2_000))
        .await
        .expect("mint");
    dep.stake(&worker, sage(1_000), GpuTier::DataCenter)
        .await
        .expect("stake");
    dep.update_reputation(worker.address, Outcome::JobSucceeded, Felt::from(7u8))
        .await
        .expect("reputation");

    let src = source(&devnet, &dep, Duration::from_secs(10));
    let stake = src.stake(&worker.wallet).await.expect("stake");
    let rep = src.reputation(&worker.wallet).await.expect("reputation");
    let balance = src.token_balance(&worker.wallet).await.expect("balance");
    let totals = src.totals().await.expect("totals");

    // The same calls, raw, at the block the source says it read.
    let at = |hash: &Option<String>| {
        BlockId::Hash(Felt::from_hex(hash.as_deref().expect("block hash")).expect("hex"))
    };
    let raw = dep
        .call(
            dep.staking,
            "get_stake",
            vec![worker.address],
            at(&stake.at.block_hash),
        )
        .await
        .expect("raw get_stake");
    assert_eq!(raw.len(), 13, "WorkerStake is 13 felts");
    let s = &stake.value;
    assert_eq!(s.amount, u256_at(&raw, 0));
    assert_eq!(s.locked_amount, u256_at(&raw, 2));
    assert_eq!(s.staked_at.map(|t| t.timestamp()), ts(limb(&raw[4])));
    assert_eq!(s.last_claim_at.map(|t| t.timestamp()), ts(limb(&raw[5])));
    assert_eq!(u128::from(s.gpu_tier.index()), limb(&raw[6]));
    assert_eq!(u128::from(s.is_active), limb(&raw[7]));
    assert_eq!(u128::from(s.consecutive_failures), limb(&raw[8]));
    assert_eq!(s.total_slashed, u256_at(&raw, 9));
    assert_eq!(s.pending_rewards, u256_at(&raw, 11));
    // And what the transactions made of it.
    assert_eq!(s.amount, sage(1_000));
    assert_eq!(s.gpu_tier, GpuTier::DataCenter);
    assert!(s.is_active, "1000 SAGE meets the DataCenter minimum");
    assert!(s.staked_at.is_some());

    let raw = dep
        .call(
            dep.reputation,
            "get_reputation",
            vec![worker.address],
            at(&rep.at.block_hash),
        )
        .await
        .expect("raw get_reputation");
    assert_eq!(raw.len(), 8);
    let r = &rep.value;
    assert_eq!(u128::from(r.score), limb(&raw[0]));
    assert_eq!(u128::from(r.level), limb(&raw[1]));
    assert_eq!(r.last_updated.map(|t| t.timestamp()), ts(limb(&raw[2])));
    assert_eq!(u128::from(r.total_jobs_completed), limb(&raw[3]));
    assert_eq!(u128::from(r.successful_jobs), limb(&raw[4]));
    assert_eq!(u128::from(r.failed_jobs), limb(&raw[5]));
    assert_eq!(u128::from(r.dispute_count), limb(&raw[6]));
    assert_eq!(u128::from(r.slash_count), limb(&raw[7]));
    assert_eq!((r.score, r.level, r.successful_jobs), (510, 3, 1));

    let raw = dep
        .call(
            dep.token,
            "balance_of",
            vec![worker.address],
            at(&balance.at.block_hash),
        )
        .await
        .expect("raw balance_of");
    assert_eq!(raw.len(), 2);
    assert_eq!(balance.value, u256_at(&raw, 0));
    assert_eq!(balance.value, sage(1_000), "2000 minted − 1000 staked");

    let raw = dep
        .call(
            dep.staking,
            "total_staked",
            vec![],
            at(&totals.at.block_hash),
        )
        .await
        .expect("raw total_staked");
    assert_eq!(totals.value.total_staked, u256_at(&raw, 0));
    assert_eq!(totals.value.total_staked, sage(1_000));

    // Every answer names the block it was read at: the chain's head at the time.
    let (head, head_hash) = devnet.head().await.expect("head");
    assert_eq!(stake.at.block_number, head);
    assert_eq!(
        stake.at.block_hash.as_deref(),
        Some(bitsage_chain::starknet_source::decode::felt_hex(&head_hash).as_str())
    );
}

#[tokio::test]
async fn devnet_conformance() {
    let _serial = SERIAL.lock().await;
    let Some((devnet, dep)) = deployed_or_skip("devnet_conformance").await else {
        return;
    };
    let staked = dep.accounts[1].clone();
    let fresh = dep.accounts[2].clone();
    fund_and_stake(&dep, &staked, sage(5_000), GpuTier::Enterprise).await;
    let src = source(&devnet, &dep, Duration::from_secs(10));
    bitsage_core::conformance::chain::run_all(&src, &staked.wallet, &fresh.wallet).await;
}

#[tokio::test]
async fn devnet_stake_shows_in_source() {
    let _serial = SERIAL.lock().await;
    let Some((devnet, dep)) = deployed_or_skip("devnet_stake_shows_in_source").await else {
        return;
    };
    let worker = dep.accounts[1].clone();
    let ttl = Duration::from_secs(1);
    let src = source(&devnet, &dep, ttl);

    let before = src.stake(&worker.wallet).await.expect("before");
    assert!(before.value.amount.is_zero());
    assert!(!before.value.is_active);

    fund_and_stake(&dep, &worker, sage(500), GpuTier::Workstation).await;

    // Within the TTL the cached answer is served, with the block and time it was read at.
    let cached = src.stake(&worker.wallet).await.expect("cached");
    if cached.age(bitsage_core::time::now()) < ttl {
        assert_eq!(cached.at, before.at, "a cached answer keeps its provenance");
        assert!(cached.value.amount.is_zero());
    }

    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let after = src.stake(&worker.wallet).await.expect("after the TTL");
    assert_eq!(after.value.amount, sage(500));
    assert_eq!(after.value.gpu_tier, GpuTier::Workstation);
    assert!(after.value.is_active);
    assert!(after.at.block_number > before.at.block_number);
    let totals = src.totals().await.expect("totals");
    assert_eq!(totals.value.total_staked, sage(500));
}

#[tokio::test]
async fn devnet_rewards_grow_after_increase_time() {
    let _serial = SERIAL.lock().await;
    let Some((devnet, dep)) = deployed_or_skip("devnet_rewards_grow_after_increase_time").await
    else {
        return;
    };
    let worker = dep.accounts[1].clone();
    let amount = sage(1_000);
    fund_and_stake(&dep, &worker, amount, GpuTier::DataCenter).await;
    let src = source(&devnet, &dep, Duration::ZERO);
    let r0 = src.rewards(&worker.wallet).await.expect("rewards before");

    const THIRTY_DAYS: u64 = 30 * 86_400;
    devnet
        .increase_time(THIRTY_DAYS)
        .await
        .expect("increase time");
    devnet.create_block().await.expect("new block");

    let r1 = src.rewards(&worker.wallet).await.expect("rewards after");
    assert!(r1.at.block_number > r0.at.block_number);
    assert!(
        r1.value.pending > r0.value.pending,
        "{} → {}",
        r0.value.pending,
        r1.value.pending
    );
    // 10 % APY on 1000 SAGE for at least 30 days, at most a day more.
    let accrued = r1
        .value
        .pending
        .checked_sub(r0.value.pending)
        .expect("grew");
    let for_secs = |secs: u64| {
        let yearly = amount.mul_bps(1000).expect("apy").as_u256();
        TokenAmount::from_u256(yearly * secs / 31_536_000u64)
    };
    assert!(accrued >= for_secs(THIRTY_DAYS), "accrued {accrued}");
    assert!(
        accrued <= for_secs(THIRTY_DAYS + 86_400),
        "accrued {accrued}"
    );
    assert!(r1.value.last_claim_at.is_none(), "never claimed");
}
