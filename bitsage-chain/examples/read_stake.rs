//! Read a wallet's stake, reputation and eligibility from BitSage's Starknet contracts with
//! `bitsage-chain`, against a local `starknet-devnet`.
//!
//! ```text
//! cargo run -p bitsage-chain --features devnet --example read_stake
//! ```
//!
//! Needs the `starknet-devnet` binary (0.10.1): `$STARKNET_DEVNET`, `starknet-devnet` on
//! `PATH`, or `~/.cache/bitsage-tools/bin/starknet-devnet` (`scripts/install-devnet.sh`
//! installs it there). Without it the example prints `SKIPPED: …` and exits successfully —
//! except under `CI=true`, where a missing devnet is an error.
//!
//! Two parts:
//! 1. `local_chain` plays the network: it starts a devnet with the crate's harness
//!    (`bitsage_chain::devnet`, feature `devnet`), deploys our contracts, mints SAGE for a
//!    predeployed account, stakes 1,000 SAGE for the DataCenter tier and records one
//!    successful job with the reputation contract. A real network already has all this.
//! 2. `read_wallet` is what your program does: given an RPC URL and the three contract
//!    addresses (as you would read them from your configuration), it builds a
//!    [`StarknetChainSource`] and reads the wallet through the [`ChainSource`] port — stake,
//!    reputation, eligibility, the tier's minimum — each with the block it was read at.
//!
//! `cargo test -p bitsage-chain --features devnet --example read_stake` runs it as a test
//! (about half a minute: the harness compiles and declares the contracts).

use std::time::Duration;

use bitsage_chain::devnet::{deploy_contracts, Devnet, Felt, Outcome};
use bitsage_chain::{ContractAddresses, StarknetChainSource, StarknetConfig};
use bitsage_core::chain::{Observed, ReputationInfo, StakeInfo};
use bitsage_core::gpu::GpuTier;
use bitsage_core::{ChainSource, TokenAmount, WalletAddress};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What `read_wallet` read.
#[derive(Debug)]
struct Readings {
    stake: Observed<StakeInfo>,
    reputation: Observed<ReputationInfo>,
    eligible: Observed<bool>,
    min_stake: Observed<TokenAmount>,
}

/// Reads `wallet`'s standing from the contracts at `token`, `staking` and `reputation`
/// through the Starknet JSON-RPC endpoint `rpc_url`, and prints it.
async fn read_wallet(
    rpc_url: &str,
    token: &str,
    staking: &str,
    reputation: &str,
    wallet: &str,
) -> Result<Readings, BoxError> {
    let contracts = ContractAddresses::parse(token, staking, reputation)?;
    // The defaults: a short answer cache, retries with backoff, a circuit breaker. Answers
    // served from the cache keep the block and time they were read at.
    let config = StarknetConfig::new(rpc_url, contracts)?.with_call_timeout(Duration::from_secs(5));
    let source = StarknetChainSource::new(config)?;
    let wallet = WalletAddress::parse(wallet)?;

    let stake = source.stake(&wallet).await?;
    let reputation = source.reputation(&wallet).await?;
    let eligible = source.is_eligible(&wallet).await?;
    let min_stake = source.min_stake(stake.value.gpu_tier).await?;

    println!("wallet      {wallet}");
    println!(
        "stake       {} for the {} tier (locked {}, active: {})   [block {}, read {}]",
        stake.value.amount.format_sage(),
        stake.value.gpu_tier.label(),
        stake.value.locked_amount.format_sage(),
        stake.value.is_active,
        stake.at.block_number,
        stake.at.read_at
    );
    println!(
        "reputation  score {} (level {}), {} of {} jobs successful   [block {}]",
        reputation.value.score,
        reputation.value.level,
        reputation.value.successful_jobs,
        reputation.value.total_jobs_completed,
        reputation.at.block_number
    );
    println!(
        "eligible    {} (the {} minimum is {})   [block {}]",
        eligible.value,
        stake.value.gpu_tier.label(),
        min_stake.value.format_sage(),
        eligible.at.block_number
    );
    Ok(Readings {
        stake,
        reputation,
        eligible,
        min_stake,
    })
}

/// `n` whole SAGE.
fn sage(n: u64) -> TokenAmount {
    TokenAmount::parse_units(&n.to_string(), bitsage_core::amount::SAGE_DECIMALS)
        .expect("a valid amount")
}

/// The network's part: a devnet with our contracts, a staked worker with one rated job.
/// Returns the devnet (killed when dropped), the RPC URL, the contracts and the worker.
async fn local_chain() -> Result<(Devnet, String, ContractAddresses, WalletAddress), BoxError> {
    let devnet = Devnet::start().await?;
    let deployment = deploy_contracts(&devnet).await?;
    let worker = deployment.accounts[1].clone();
    deployment.mint_sage(worker.address, sage(2_000)).await?;
    let staked = deployment
        .stake(&worker, sage(1_000), GpuTier::DataCenter)
        .await?;
    deployment
        .update_reputation(worker.address, Outcome::JobSucceeded, Felt::from(1u8))
        .await?;
    println!(
        "devnet      {} (staked in block {})",
        devnet.rpc_url(),
        staked.block_number
    );
    let rpc_url = devnet.rpc_url().to_string();
    Ok((
        devnet,
        rpc_url,
        deployment.contract_addresses(),
        worker.wallet,
    ))
}

/// `None` when skipped (no devnet binary, outside CI).
async fn run() -> Result<Option<Readings>, BoxError> {
    // No devnet: skip with the reason printed (a failure under CI=true).
    if !Devnet::available_or_skip("read_stake") {
        return Ok(None);
    }
    let (_devnet, rpc_url, contracts, worker) = local_chain().await?;
    // From here on, only strings: what your configuration holds.
    let readings = read_wallet(
        &rpc_url,
        &contracts.token.to_string(),
        &contracts.staking.to_string(),
        &contracts.reputation.to_string(),
        &worker.to_string(),
    )
    .await?;
    Ok(Some(readings))
}

/// What the reads must show, given what `local_chain` did (panics otherwise).
fn check(r: &Readings) {
    assert_eq!(r.stake.value.amount, sage(1_000));
    assert_eq!(r.stake.value.gpu_tier, GpuTier::DataCenter);
    assert!(r.stake.value.is_active);
    assert_eq!(
        r.min_stake.value,
        sage(1_000),
        "the harness's DataCenter minimum"
    );
    assert!(r.eligible.value, "1,000 SAGE meets the DataCenter minimum");
    // One successful job from the starting 500 / level 3.
    assert_eq!(
        (r.reputation.value.score, r.reputation.value.successful_jobs),
        (510, 1)
    );
    // Every answer says where it was read.
    assert!(r.stake.at.block_number > 0 && r.stake.at.block_hash.is_some());
    assert!(r.reputation.at.block_number >= r.stake.at.block_number);
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if let Some(readings) = run().await? {
        check(&readings);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn runs() {
        // `None`: skipped, with the reason printed (never under CI=true).
        if let Some(readings) = super::run().await.expect("read stake") {
            super::check(&readings);
        }
    }
}
