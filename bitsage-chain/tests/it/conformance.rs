//! InMemoryChain passes the ChainSource conformance suite.

use bitsage_chain::InMemoryChain;
use bitsage_core::chain::{ReputationInfo, StakeInfo};
use bitsage_core::gpu::GpuTier;
use bitsage_core::{ChainSource, Error, TokenAmount, WalletAddress};

fn wallet(s: &str) -> WalletAddress {
    WalletAddress::parse(s).expect("wallet")
}

fn seeded() -> InMemoryChain {
    let chain = InMemoryChain::new();
    let staked = wallet("0x5a6e");
    chain
        .set_stake(
            staked,
            StakeInfo {
                amount: TokenAmount::parse_units("10,000", 18).expect("amount"),
                locked_amount: TokenAmount::ZERO,
                staked_at: Some(bitsage_core::time::now()),
                last_claim_at: None,
                gpu_tier: GpuTier::Enterprise,
                is_active: true,
                consecutive_failures: 0,
                total_slashed: TokenAmount::ZERO,
                pending_rewards: TokenAmount::from(12_345u64),
            },
        )
        .expect("stake");
    chain
        .set_reputation(
            staked,
            ReputationInfo {
                score: 720,
                level: 4,
                last_updated: None,
                total_jobs_completed: 10,
                successful_jobs: 9,
                failed_jobs: 1,
                dispute_count: 0,
                slash_count: 0,
            },
        )
        .expect("reputation");
    chain
}

#[tokio::test]
async fn conformance_memory_chain() {
    let chain = seeded();
    bitsage_core::conformance::chain::run_all(&chain, &wallet("0x5a6e"), &wallet("0xf00d")).await;
}

#[tokio::test]
async fn outage_is_unavailable_not_zero() {
    let chain = seeded();
    chain.set_unavailable(Some("rpc down".into())).expect("set");
    match chain.stake(&wallet("0x5a6e")).await {
        Err(Error::Unavailable { reason, .. }) => assert_eq!(reason, "rpc down"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    chain.set_unavailable(None).expect("set");
    let stake = chain.stake(&wallet("0x5a6e")).await.expect("recovered");
    assert!(stake.at.block_number > 0);
}

#[tokio::test]
async fn in_memory_settlement_conforms() {
    use bitsage_core::settlement::EpochBatch;
    let s = bitsage_chain::InMemorySettlement::new();
    let payer = wallet("0x9a1");
    let worker = wallet("0x3041");
    let batch = EpochBatch {
        epoch_id: 1,
        receipts_root: bitsage_core::crypto::Hash32([1; 32]),
        jobs: 1,
        debits: vec![(payer, TokenAmount::from(1_000u64))],
        payouts: vec![(worker, TokenAmount::from(975u64))],
        fee: TokenAmount::from(25u64),
        successes: vec![(worker, bitsage_core::JobId::new())],
        slashes: vec![],
    };
    bitsage_core::conformance::settlement::run_all(&s, &batch).await;
    assert_eq!(s.paid_to(&worker), TokenAmount::from(975u64), "paid once");
    assert_eq!(s.debited_from(&payer), TokenAmount::from(1_000u64));
    assert_eq!(s.fees(), TokenAmount::from(25u64));
}
