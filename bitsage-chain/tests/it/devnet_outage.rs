//! The chain goes away: `StarknetChainSource` over a real `starknet-devnet` that is killed and
//! later restarted on the same port (skipped with a printed reason when the binary is
//! missing, failed under `CI=true`).

use crate::support;

use std::time::{Duration, Instant};

use bitsage_chain::devnet::deploy_contracts;
use bitsage_chain::starknet_source::BreakerState;
use bitsage_chain::StarknetChainSource;
use bitsage_core::gpu::GpuTier;
use bitsage_core::{ChainSource, Error};
use support::{config, deployed_or_skip, fund_and_stake, sage, SERIAL};

const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const COOLDOWN: Duration = Duration::from_secs(2);
const FAILURES: u32 = 3;
/// Slack for scheduling on a busy machine: a read returns within its budget plus this.
const SLACK: Duration = Duration::from_secs(2);

fn unavailable_reason<T: std::fmt::Debug>(r: bitsage_core::Result<T>) -> String {
    match r {
        Err(Error::Unavailable {
            source_name,
            reason,
        }) => {
            assert_eq!(source_name, "starknet");
            assert!(!reason.is_empty());
            // Provider text (URLs, hyper/reqwest wording) stays in the logs.
            for leak in [
                "127.0.0.1",
                "http",
                "error sending",
                "connection refused",
                "tcp",
            ] {
                assert!(
                    !reason.to_lowercase().contains(leak),
                    "reason leaks provider text: {reason}"
                );
            }
            reason
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn devnet_outage_serves_stale_with_age_then_unavailable_and_recovers() {
    let _serial = SERIAL.lock().await;
    let test = "devnet_outage_serves_stale_with_age_then_unavailable_and_recovers";
    let Some((mut devnet, dep)) = deployed_or_skip(test).await else {
        return;
    };
    let worker = dep.accounts[1].clone();
    let never_read = dep.accounts[2].clone();
    fund_and_stake(&dep, &worker, sage(1_000), GpuTier::DataCenter).await;

    let ttl = Duration::from_millis(500);
    let src = StarknetChainSource::new(
        config(&devnet, &dep, ttl)
            .with_stale_limit(Duration::from_secs(300))
            .with_call_timeout(CALL_TIMEOUT)
            .with_retries(1, Duration::from_millis(50))
            .with_breaker(FAILURES, COOLDOWN),
    )
    .expect("source");
    let before = src.stake(&worker.wallet).await.expect("stake while up");
    assert_eq!(before.value.amount, sage(1_000));
    assert_eq!(src.breaker_state(), BreakerState::Closed);

    // The chain goes away.
    devnet.kill().await;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;

    // A cached answer is served, past its TTL, with its original read time: its age shows.
    let t = Instant::now();
    let stale = src.stake(&worker.wallet).await.expect("stale answer");
    assert!(
        t.elapsed() <= CALL_TIMEOUT + SLACK,
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(stale.at, before.at, "same block, same read time");
    assert!(stale.age(bitsage_core::time::now()) > ttl);
    assert_eq!(stale.value, before.value);
    // Rewards come from the same cached get_stake answer.
    let rewards = src.rewards(&worker.wallet).await.expect("stale rewards");
    assert_eq!(rewards.at, before.at);

    // Nothing cached: unavailable, with a reason for operators.
    let t = Instant::now();
    let reason = unavailable_reason(src.reputation(&never_read.wallet).await);
    assert!(
        t.elapsed() <= CALL_TIMEOUT + SLACK,
        "took {:?}",
        t.elapsed()
    );
    assert!(
        reason == "cannot reach the Starknet RPC endpoint"
            || reason.starts_with("RPC did not answer"),
        "{reason}"
    );

    // Consecutive failures open the breaker; then calls are refused without trying.
    for _ in 0..FAILURES {
        if src.breaker_state() == BreakerState::Open {
            break;
        }
        let _ = src.totals().await;
    }
    assert_eq!(src.breaker_state(), BreakerState::Open);
    let reason = unavailable_reason(src.reputation(&never_read.wallet).await);
    assert!(
        reason.starts_with(&format!(
            "circuit open after {FAILURES} failures; retrying in "
        )),
        "{reason}"
    );
    let stale = src.stake(&worker.wallet).await.expect("stale while open");
    assert_eq!(stale.at, before.at);

    // A fresh devnet on the same port (a new chain), our contracts deployed again: the
    // deployment is deterministic, so they land at the same addresses.
    devnet
        .restart()
        .await
        .expect("restart devnet on the same port");
    let again = deploy_contracts(&devnet).await.expect("redeploy");
    assert_eq!(again.contract_addresses(), dep.contract_addresses());

    // After the cooldown one trial read goes through and closes the breaker.
    let waited = Instant::now();
    while src.breaker_state() == BreakerState::Open {
        assert!(
            waited.elapsed() < COOLDOWN + SLACK,
            "breaker never half-opened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(src.breaker_state(), BreakerState::HalfOpen);
    let rep = src
        .reputation(&never_read.wallet)
        .await
        .expect("the source answers again");
    assert_eq!((rep.value.score, rep.value.level), (500, 3));
    assert_eq!(src.breaker_state(), BreakerState::Closed);

    // Fresh reads come from the new chain, where the worker never staked.
    let after = src
        .stake(&worker.wallet)
        .await
        .expect("stake after recovery");
    assert!(after.at.read_at > before.at.read_at);
    assert_ne!(after.at.block_hash, before.at.block_hash);
    assert!(
        after.value.amount.is_zero(),
        "a restarted devnet is a new chain"
    );
}
