//! Shared helpers of the devnet tests: a devnet with our contracts deployed (or a skip with
//! the reason outside CI), a source over it, amounts.

#![allow(dead_code)]

use std::time::Duration;

use bitsage_chain::devnet::{deploy_contracts, Deployment, Devnet, PredeployedAccount};
use bitsage_chain::{StarknetChainSource, StarknetConfig};
use bitsage_core::gpu::GpuTier;
use bitsage_core::TokenAmount;

/// Devnet tests in one test binary run one at a time: each starts its own devnet (~210 MB,
/// busy while declaring), and the machines have two cores.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh devnet with our contracts deployed, or `None` when the test should skip.
pub(crate) async fn deployed_or_skip(test: &str) -> Option<(Devnet, Deployment)> {
    if !Devnet::available_or_skip(test) {
        return None;
    }
    let devnet = Devnet::start().await.expect("start starknet-devnet");
    let deployment = deploy_contracts(&devnet)
        .await
        .expect("deploy our contracts");
    Some((devnet, deployment))
}

/// `n` whole SAGE.
pub(crate) fn sage(n: u64) -> TokenAmount {
    TokenAmount::parse_units(&n.to_string(), 18).expect("amount")
}

/// Mints `amount` to `worker` and stakes it all for `tier`.
pub(crate) async fn fund_and_stake(
    deployment: &Deployment,
    worker: &PredeployedAccount,
    amount: TokenAmount,
    tier: GpuTier,
) {
    deployment
        .mint_sage(worker.address, amount)
        .await
        .expect("mint SAGE");
    deployment.stake(worker, amount, tier).await.expect("stake");
}

/// The source's configuration over `devnet` with a cache TTL of `ttl`.
pub(crate) fn config(devnet: &Devnet, deployment: &Deployment, ttl: Duration) -> StarknetConfig {
    StarknetConfig::new(devnet.rpc_url().as_str(), deployment.contract_addresses())
        .expect("config")
        .with_cache_ttl(ttl)
}

/// A source over `devnet` with a cache TTL of `ttl`.
pub(crate) fn source(
    devnet: &Devnet,
    deployment: &Deployment,
    ttl: Duration,
) -> StarknetChainSource {
    StarknetChainSource::new(config(devnet, deployment, ttl)).expect("source")
}
