//! The validator dashboard and network views: wallet header, exact sums, field groups that
//! degrade on their own (no chain, failing chain, slow chain), GPU views scoped to the wallet,
//! job analytics and order, uptime, and the OpenAPI document's completeness.

use crate::common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use bitsage_chain::InMemoryChain;
use bitsage_core::chain::{NetworkTotals, Observed, ReputationInfo, RewardsInfo, StakeInfo};
use bitsage_core::crypto::Hash32;
use bitsage_core::gpu::{DeviceState, GpuDevice, GpuSample, GpuTier};
use bitsage_core::job::{JobResult, NewJob};
use bitsage_core::ledger::EarningEntry;
use bitsage_core::node::HardwareReport;
use bitsage_core::store_prelude::*;
use bitsage_core::{
    ChainSource, DynChainSource, JobId, JobKind, JobSpec, NodeStatus, Timestamp, TokenAmount,
    Transition, WalletAddress,
};
use bitsage_http::api::{HeartbeatRequest, RegisterRequest};
use bitsage_http::dashboard::{NetworkWorkers, Section, Summary, ValidatorStatus};
use bitsage_http::{router, AppState, HttpConfig};
use bitsage_prover::StwoProver;
use bitsage_store::InMemoryStore;
use chrono::TimeDelta;
use common::*;
use ed25519_dalek::SigningKey;
use serde_json::Value;

// ---------------------------------------------------------------- helpers

/// An app over an in-memory store, with an optional chain and a dashboard budget; validator
/// status answers are not reused (see `app_with_cache`).
fn app_with(chain: Option<DynChainSource>, budget: Duration) -> TestApp {
    app_with_cache(chain, budget, Duration::ZERO)
}

/// [`app_with`], reusing validator status answers for `status_cache_ttl`.
fn app_with_cache(
    chain: Option<DynChainSource>,
    budget: Duration,
    status_cache_ttl: Duration,
) -> TestApp {
    let store = Arc::new(InMemoryStore::new());
    let config = HttpConfig {
        dashboard_budget: budget,
        status_cache_ttl,
        rate_limits: bitsage_http::ratelimit::RateLimits::disabled(),
        ..HttpConfig::default()
    };
    let proofs = Arc::new(bitsage_store::InMemoryProofStore::new());
    let mut state = AppState::new(
        store.clone(),
        Arc::new(StwoProver::new()),
        proofs.clone(),
        bitsage_core::deployment::DeploymentKey::new(SigningKey::from_bytes(&[42; 32]), "test")
            .expect("deployment key"),
        config,
    );
    if let Some(chain) = chain {
        state = state.with_chain(chain);
    }
    let admin_token = futures::executor::block_on(common::admin_token(&state));
    let bare = router(state.clone());
    TestApp {
        store,
        proofs,
        app: common::as_user(bare.clone(), &admin_token),
        bare,
        admin_token,
        state,
    }
}

fn wallet_a() -> WalletAddress {
    WalletAddress::parse("0xa11ce").expect("wallet")
}

fn wallet_b() -> WalletAddress {
    WalletAddress::parse("0xb0b").expect("wallet")
}

fn gpu(index: u32, uuid: &str, name: &str) -> GpuDevice {
    GpuDevice {
        index,
        uuid: uuid.into(),
        name: name.into(),
        pci_bus_id: None,
        memory_total_bytes: Some(85_520_809_984),
        mig_enabled: Some(false),
        confidential_compute: None,
        tier: Some(GpuTier::Frontier),
        state: DeviceState::Ok,
    }
}

fn with_gpus(gpus: Vec<GpuDevice>) -> HardwareReport {
    HardwareReport {
        gpus,
        ..HardwareReport::default()
    }
}

fn gpu_less(reason: &str) -> HardwareReport {
    HardwareReport {
        gpu_unavailable_reason: Some(reason.into()),
        ..HardwareReport::default()
    }
}

/// Registers `id` for `wallet` through the API (201).
async fn register_for(
    app: &Router,
    key: &SigningKey,
    id: &str,
    wallet: WalletAddress,
    hw: HardwareReport,
) {
    let req = RegisterRequest::signed(
        key,
        node_id(id),
        wallet,
        hw,
        "bitsage-agent/0.1.0",
        bitsage_core::time::now(),
    );
    let r = send(app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

/// Sends a signed heartbeat with `samples` through the API (200).
async fn beat(app: &Router, key: &SigningKey, id: &str, seq: u64, samples: Vec<GpuSample>) {
    let req = HeartbeatRequest::signed(
        key,
        node_id(id),
        seq,
        bitsage_core::time::now(),
        Some(0.5),
        "bitsage-agent/0.1.0",
        samples,
    );
    let r = send(app, post_json("/api/nodes/heartbeat", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

fn get_with_wallet(uri: &str, wallet: &str) -> Request<Body> {
    Request::get(uri)
        .header("X-Wallet-Address", wallet)
        .body(Body::empty())
        .expect("request")
}

async fn get_json(app: &Router, req: Request<Body>) -> Value {
    let r = send(app, req).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

fn amount(s: &str) -> TokenAmount {
    TokenAmount::from_base_units(s).expect("amount")
}

async fn credit(store: &InMemoryStore, node: &str, gross: &str, at: Timestamp) {
    let entry = EarningEntry::with_fee_bps(node_id(node), JobId::new(), amount(gross), 250, at)
        .expect("entry");
    store.credit_earning(&entry).await.expect("credit");
}

fn assert_unavailable(group: &Value, reason_contains: &str) {
    assert_eq!(group["status"], "unavailable", "{group}");
    let reason = group["reason"].as_str().expect("reason");
    assert!(
        reason.contains(reason_contains),
        "reason {reason:?} should mention {reason_contains:?}"
    );
    assert_eq!(
        group.as_object().map(|o| o.len()),
        Some(2),
        "an unavailable group carries no numbers: {group}"
    );
}

fn stake_of(amount_units: &str) -> StakeInfo {
    StakeInfo {
        amount: amount(amount_units),
        locked_amount: TokenAmount::ZERO,
        staked_at: Some(bitsage_core::time::now()),
        last_claim_at: None,
        gpu_tier: GpuTier::Frontier,
        is_active: true,
        consecutive_failures: 0,
        total_slashed: TokenAmount::ZERO,
        pending_rewards: amount("1500000000000000000"),
    }
}

async fn enqueue(store: &InMemoryStore, seed: u64, submitted_at: Timestamp) -> JobId {
    let spec =
        JobSpec::new(JobId::new(), JobKind::Poseidon2Chain { seed, length: 8 }).expect("spec");
    let id = spec.id;
    store
        .enqueue_job(&NewJob {
            spec,
            payment: TokenAmount::from(1_000u64),
            max_attempts: 1,
            submitted_at,
            funding: None,
        })
        .await
        .expect("enqueue");
    id
}

// ---------------------------------------------------------------- a chain that is too slow

type ChainFuture<'a, T> = Pin<Box<dyn Future<Output = bitsage_core::Result<T>> + Send + 'a>>;

/// A faulty chain: stake reads take `delay` (longer than any test budget), reputation reads
/// fail with a backend error whose text must stay in the logs; everything else is answered at
/// once by an [`InMemoryChain`].
#[derive(Debug)]
struct FaultyChain {
    inner: InMemoryChain,
    delay: Duration,
}

/// Text a backend error carries that no client may see.
const SECRET: &str = "provider at http://10.0.0.7:9545 returned -32603";

impl ChainSource for FaultyChain {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn stake<'a, 'b, 'c>(
        &'a self,
        wallet: &'b WalletAddress,
    ) -> ChainFuture<'c, Observed<StakeInfo>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.inner.stake(wallet).await
        })
    }

    fn rewards<'a, 'b, 'c>(
        &'a self,
        wallet: &'b WalletAddress,
    ) -> ChainFuture<'c, Observed<RewardsInfo>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.rewards(wallet)
    }

    fn reputation<'a, 'b, 'c>(
        &'a self,
        wallet: &'b WalletAddress,
    ) -> ChainFuture<'c, Observed<ReputationInfo>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        let _ = wallet;
        Box::pin(async { Err(bitsage_core::Error::backend("starknet", SECRET)) })
    }

    fn token_balance<'a, 'b, 'c>(
        &'a self,
        wallet: &'b WalletAddress,
    ) -> ChainFuture<'c, Observed<TokenAmount>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.token_balance(wallet)
    }

    fn totals<'a, 'c>(&'a self) -> ChainFuture<'c, Observed<NetworkTotals>>
    where
        'a: 'c,
        Self: 'c,
    {
        self.inner.totals()
    }

    fn min_stake<'a, 'c>(
        &'a self,
        tier: bitsage_core::gpu::GpuTier,
    ) -> ChainFuture<'c, Observed<TokenAmount>>
    where
        'a: 'c,
        Self: 'c,
    {
        self.inner.min_stake(tier)
    }

    fn is_eligible<'a, 'b, 'c>(
        &'a self,
        wallet: &'b WalletAddress,
    ) -> ChainFuture<'c, Observed<bool>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.is_eligible(wallet)
    }

    fn apy_bps<'a, 'c>(&'a self) -> ChainFuture<'c, Observed<u64>>
    where
        'a: 'c,
        Self: 'c,
    {
        self.inner.apy_bps()
    }
}

// ---------------------------------------------------------------- the wallet header

#[tokio::test]
async fn wallet_views_require_a_valid_wallet_header() {
    let t = app();
    for path in [
        "/api/validator/status",
        "/api/validator/gpus",
        "/api/validator/rewards",
        "/api/validator/history",
    ] {
        let r = send(&t.app, get(path)).await;
        let e = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(e.error.message, "X-Wallet-Address header is required");
        for bad in [
            "1234",
            "0x",
            "0xnothex",
            "0x0",
            &format!("0x{}", "f".repeat(64)),
        ] {
            let r = send(&t.app, get_with_wallet(path, bad)).await;
            let e = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
            assert!(
                e.error.message.contains("wallet address"),
                "{path} {bad}: {}",
                e.error.message
            );
        }
    }
}

// ---------------------------------------------------------------- status and rewards

#[tokio::test]
async fn validator_status_sums_the_wallets_nodes_exactly_and_has_no_chain_numbers() {
    let t = app();
    register_for(&t.app, &key(1), "node-a1", wallet_a(), gpu_less("none")).await;
    register_for(&t.app, &key(2), "node-a2", wallet_a(), gpu_less("none")).await;
    register_for(&t.app, &key(3), "node-b1", wallet_b(), gpu_less("none")).await;
    let now = bitsage_core::time::now();
    // Amounts above 2^64: a float or a 64-bit sum would show.
    credit(&t.store, "node-a1", "18446744073709551616000", now).await;
    credit(&t.store, "node-a1", "100000000000000000000000", now).await;
    credit(&t.store, "node-a2", "36893488147419103232", now).await;
    credit(&t.store, "node-b1", "999999999999999999999999", now).await; // another wallet

    // Another spelling of the same address names the same wallet.
    let v = get_json(
        &t.app,
        get_with_wallet("/api/validator/status", "0x00A11CE"),
    )
    .await;
    assert_eq!(v["wallet"], wallet_a().to_string());
    assert!(v["generated_at"].as_str().is_some_and(|s| s.ends_with('Z')));

    assert_eq!(v["workers"]["status"], "ok");
    assert_eq!(v["workers"]["total"], 2);
    assert_eq!(v["workers"]["by_status"]["pending"], 2);
    assert_eq!(v["workers"]["by_status"]["active"], 0);
    assert_eq!(v["jobs"]["status"], "ok");
    assert_eq!(v["jobs"]["completed"], 0);

    let e = &v["earnings"];
    assert_eq!(e["status"], "ok");
    assert_eq!(e["entries"], 3);
    assert_eq!(e["gross"], "118483637561856970719232");
    assert_eq!(e["fee"], "2962090939046424267980");
    assert_eq!(e["net"], "115521546622810546451252");
    assert_eq!(e["gross_formatted"], "118,483.637561856970719232 SAGE");

    for group in ["stake", "rewards", "reputation"] {
        assert_unavailable(&v[group], "no chain source configured");
    }
}

#[tokio::test]
async fn validator_status_reads_stake_rewards_and_reputation_from_the_chain() {
    let chain = Arc::new(InMemoryChain::new());
    chain
        .set_stake(wallet_a(), stake_of("250000000000000000000000"))
        .expect("seed");
    let t = app_with(
        Some(chain.clone() as DynChainSource),
        Duration::from_secs(2),
    );
    register_for(&t.app, &key(1), "node-a1", wallet_a(), gpu_less("none")).await;

    let v = get_json(&t.app, get_with_wallet("/api/validator/status", "0xa11ce")).await;
    let stake = &v["stake"];
    assert_eq!(stake["status"], "ok", "{stake}");
    assert_eq!(stake["amount"], "250000000000000000000000");
    assert_eq!(stake["amount_formatted"], "250,000 SAGE");
    assert_eq!(stake["is_active"], true);
    assert_eq!(stake["gpu_tier"], "frontier");
    assert_eq!(stake["block_number"], 1, "one write so far: block 1");
    assert!(stake["age_secs"].as_u64().is_some());
    assert!(stake["read_at"].as_str().is_some_and(|s| s.ends_with('Z')));

    assert_eq!(v["rewards"]["status"], "ok");
    assert_eq!(v["rewards"]["pending"], "1500000000000000000");
    assert_eq!(v["rewards"]["pending_formatted"], "1.5 SAGE");
    assert_eq!(v["reputation"]["status"], "ok");
    assert_eq!(v["reputation"]["score"], 500);
    assert_eq!(v["workers"]["total"], 1);
    // The wire shape reads back into the public types.
    let typed: ValidatorStatus = serde_json::from_value(v.clone()).expect("typed");
    let stake = typed.stake.ok().expect("stake group");
    assert_eq!(stake.value.amount, amount("250000000000000000000000"));
    assert_eq!(stake.block_number, 1);
    assert!(typed.earnings.ok().is_some_and(|e| e.gross.is_zero()));

    // A chain that cannot be reached: the chain groups say so, the store groups still answer.
    chain
        .set_unavailable(Some("rpc endpoint refused the connection".into()))
        .expect("outage");
    let v = get_json(&t.app, get_with_wallet("/api/validator/status", "0xa11ce")).await;
    for group in ["stake", "rewards", "reputation"] {
        assert_unavailable(&v[group], "unavailable");
    }
    assert_eq!(v["workers"]["status"], "ok");
    assert_eq!(v["earnings"]["status"], "ok");
}

#[tokio::test]
async fn a_slow_or_failing_chain_degrades_only_its_own_groups() {
    let inner = InMemoryChain::new();
    inner.set_stake(wallet_a(), stake_of("1000")).expect("seed");
    let chain = Arc::new(FaultyChain {
        inner,
        delay: Duration::from_secs(60),
    });
    let t = app_with(Some(chain as DynChainSource), Duration::from_millis(200));
    register_for(&t.app, &key(1), "node-a1", wallet_a(), gpu_less("none")).await;

    // The guard only keeps a broken implementation from hanging the test; it times nothing.
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        send(&t.app, get_with_wallet("/api/validator/status", "0xa11ce")),
    )
    .await
    .expect("the response arrives although the chain never answers");
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_unavailable(&v["stake"], "did not answer within 200 ms");
    assert_eq!(v["rewards"]["status"], "ok", "{}", v["rewards"]);
    assert_unavailable(&v["reputation"], "chain query failed");
    assert!(
        !String::from_utf8_lossy(&r.body).contains("10.0.0.7"),
        "backend error text reached the client"
    );
    assert_eq!(v["workers"]["status"], "ok");
    assert_eq!(v["workers"]["total"], 1);
}

#[tokio::test]
async fn validator_rewards_lists_ledger_earnings_per_node_and_the_chain_group() {
    let t = app();
    register_for(&t.app, &key(1), "node-a1", wallet_a(), gpu_less("none")).await;
    register_for(&t.app, &key(2), "node-a2", wallet_a(), gpu_less("none")).await;
    register_for(&t.app, &key(3), "node-b1", wallet_b(), gpu_less("none")).await;
    let now = bitsage_core::time::now();
    credit(&t.store, "node-a1", "18446744073709551616000", now).await;
    credit(&t.store, "node-a1", "100000000000000000000000", now).await;
    credit(&t.store, "node-a2", "36893488147419103232", now).await;
    credit(&t.store, "node-b1", "5", now).await;

    let v = get_json(&t.app, get_with_wallet("/api/validator/rewards", "0xa11ce")).await;
    let e = &v["earnings"];
    assert_eq!(e["status"], "ok");
    assert_eq!(e["total"]["gross"], "118483637561856970719232");
    assert_eq!(e["total"]["net"], "115521546622810546451252");
    let nodes = e["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "only the wallet's nodes: {e}");
    assert_eq!(nodes[0]["node_id"], "node-a1");
    assert_eq!(nodes[0]["gross"], "118446744073709551616000");
    assert_eq!(nodes[0]["fee"], "2961168601842738790400");
    assert_eq!(nodes[0]["entries"], 2);
    assert_eq!(nodes[1]["node_id"], "node-a2");
    assert_eq!(nodes[1]["net"], "35971150943733625652");
    assert_unavailable(&v["rewards"], "no chain source configured");

    // A wallet without nodes: zero sums, not an error.
    let v = get_json(
        &t.app,
        get_with_wallet("/api/validator/rewards", "0xc0ffee"),
    )
    .await;
    assert_eq!(v["earnings"]["total"]["gross"], "0");
    assert_eq!(v["earnings"]["nodes"], serde_json::json!([]));
}

// ---------------------------------------------------------------- GPUs

#[tokio::test]
async fn validator_gpus_shows_only_the_wallets_nodes() {
    let t = app();
    let ka = key(1);
    register_for(
        &t.app,
        &ka,
        "node-a1",
        wallet_a(),
        with_gpus(vec![
            gpu(0, "GPU-aaaa-0", "NVIDIA H100 80GB HBM3"),
            gpu(1, "GPU-aaaa-1", "NVIDIA H100 80GB HBM3"),
        ]),
    )
    .await;
    register_for(
        &t.app,
        &key(2),
        "node-a2",
        wallet_a(),
        gpu_less("NVML library not found"),
    )
    .await;
    register_for(
        &t.app,
        &key(3),
        "node-b1",
        wallet_b(),
        with_gpus(vec![gpu(0, "GPU-bbbb-0", "NVIDIA A100-SXM4-40GB")]),
    )
    .await;
    let mut sample = GpuSample::empty("GPU-aaaa-1", bitsage_core::time::now());
    sample.gpu_utilization_ratio = Some(0.75);
    sample.temperature_celsius = Some(61.0);
    beat(&t.app, &ka, "node-a1", 1, vec![sample]).await;

    let r = send(&t.app, get_with_wallet("/api/validator/gpus", "0xa11ce")).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        !text.contains("GPU-bbbb"),
        "another wallet's GPU leaked: {text}"
    );
    let v = r.json();
    let w = &v["workers"];
    assert_eq!(w["status"], "ok");
    assert_eq!(w["total_gpus"], 2);
    let nodes = w["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["node_id"], "node-a1");
    assert_eq!(nodes[0]["gpus"].as_array().map(Vec::len), Some(2));
    assert_eq!(nodes[0]["gpus"][1]["uuid"], "GPU-aaaa-1");
    let samples = nodes[0]["latest_samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0]["uuid"], "GPU-aaaa-1");
    assert_eq!(samples[0]["gpu_utilization_ratio"], 0.75);
    assert!(
        samples[0]["power_watts"].is_null(),
        "unsupported stays null"
    );
    assert_eq!(nodes[1]["node_id"], "node-a2");
    assert_eq!(nodes[1]["gpus"], serde_json::json!([]));
    assert_eq!(nodes[1]["latest_samples"], serde_json::json!([]));
    assert_eq!(nodes[1]["gpu_unavailable_reason"], "NVML library not found");
    // No collector reported, no attestation answered: said as such, not filled in.
    assert!(nodes[1]["gpu_collector"].is_null());
    assert_eq!(nodes[1]["attestation"]["status"], "not_requested");
    assert_eq!(nodes[1]["attestation"]["signature_verified"], false);
}

// ---------------------------------------------------------------- history

#[tokio::test]
async fn validator_history_sums_per_day_and_lists_status_changes() {
    let t = app();
    register_for(&t.app, &key(1), "node-a1", wallet_a(), gpu_less("none")).await;
    register_for(&t.app, &key(2), "node-a2", wallet_a(), gpu_less("none")).await;
    register_for(&t.app, &key(3), "node-b1", wallet_b(), gpu_less("none")).await;
    let now = bitsage_core::time::now();
    let two_days_ago = now - TimeDelta::days(2);
    let long_ago = now - TimeDelta::days(40);
    credit(&t.store, "node-a1", "18446744073709551616000", two_days_ago).await;
    credit(
        &t.store,
        "node-a2",
        "100000000000000000000000",
        two_days_ago,
    )
    .await;
    credit(&t.store, "node-a2", "7", now).await;
    credit(&t.store, "node-a1", "1000", long_ago).await; // outside the default 30 days
    credit(&t.store, "node-b1", "3", now).await; // another wallet
    t.store
        .apply_transition(
            &node_id("node-a2"),
            &Transition {
                from: NodeStatus::Pending,
                to: NodeStatus::Active,
                reason: "probe passed".into(),
            },
            now,
        )
        .await
        .expect("transition");

    let v = get_json(&t.app, get_with_wallet("/api/validator/history", "0xa11ce")).await;
    let days = v["earnings"]["days"].as_array().expect("days");
    assert_eq!(days.len(), 2, "{}", v["earnings"]);
    assert_eq!(days[0]["day"], two_days_ago.date_naive().to_string());
    assert_eq!(days[0]["gross"], "118446744073709551616000");
    assert_eq!(days[0]["entries"], 2);
    assert_eq!(days[1]["day"], now.date_naive().to_string());
    assert_eq!(days[1]["gross"], "7");
    let changes = &v["status_changes"];
    assert_eq!(changes["status"], "ok");
    assert_eq!(changes["total"], 1);
    assert_eq!(changes["items"][0]["node_id"], "node-a2");
    assert_eq!(changes["items"][0]["to"], "active");

    // An explicit window reaching back 45 days includes the old entry.
    let from = (now - TimeDelta::days(45)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let v = get_json(
        &t.app,
        get_with_wallet(&format!("/api/validator/history?from={from}"), "0xa11ce"),
    )
    .await;
    assert_eq!(v["earnings"]["days"].as_array().map(Vec::len), Some(3));

    for bad in [
        "/api/validator/history?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "/api/validator/history?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "/api/validator/history?from=yesterday",
        "/api/validator/history?unknown=1",
    ] {
        let r = send(&t.app, get_with_wallet(bad, "0xa11ce")).await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

// ---------------------------------------------------------------- jobs

#[tokio::test]
async fn jobs_analytics_counts_every_status_and_the_success_rate() {
    let t = app();
    let v = get_json(&t.app, get("/api/jobs/analytics")).await;
    assert_eq!(v["jobs"]["status"], "ok");
    assert_eq!(v["jobs"]["total"], 0);
    assert!(v["jobs"]["success_rate"].is_null(), "no finished job: null");
    for s in ["queued", "leased", "completed", "failed"] {
        assert_eq!(v["jobs"]["by_status"][s], 0);
    }

    register(&t.app, &key(1), "node-1").await;
    let node = node_id("node-1");
    let t0 = bitsage_core::time::now() - TimeDelta::minutes(10);
    for i in 0..6 {
        enqueue(&t.store, i, t0 + TimeDelta::seconds(i as i64)).await;
    }
    let now = bitsage_core::time::now();
    // Three completed, one failed, one leased, one queued.
    for _ in 0..3 {
        let lease = t
            .store
            .lease_job(&node, now, Duration::from_secs(600))
            .await
            .expect("lease")
            .expect("a job");
        let result = JobResult {
            output: "00".into(),
            proof_hash: Hash32([7; 32]),
            proof_ref: "memory".into(),
            completed_at: now,
        };
        t.store
            .complete_job(&lease.reference(), &result, now)
            .await
            .expect("complete");
    }
    let lease = t
        .store
        .lease_job(&node, now, Duration::from_secs(600))
        .await
        .expect("lease")
        .expect("a job");
    t.store
        .fail_job(&lease.reference(), "out of memory", now)
        .await
        .expect("fail");
    t.store
        .lease_job(&node, now, Duration::from_secs(600))
        .await
        .expect("lease")
        .expect("a job");

    let v = get_json(&t.app, get("/api/jobs/analytics")).await;
    let jobs = &v["jobs"];
    assert_eq!(jobs["total"], 6);
    assert_eq!(jobs["by_status"]["completed"], 3);
    assert_eq!(jobs["by_status"]["failed"], 1);
    assert_eq!(jobs["by_status"]["leased"], 1);
    assert_eq!(jobs["by_status"]["queued"], 1);
    assert_eq!(jobs["success_rate"], 0.75);

    // The node's wallet view counts what it completed and holds.
    let v = get_json(
        &t.app,
        get_with_wallet("/api/validator/status", &wallet().to_string()),
    )
    .await;
    assert_eq!(v["jobs"]["completed"], 3);
    assert_eq!(v["jobs"]["leased"], 1);

    // The summary agrees.
    let v = get_json(&t.app, get("/api/summary")).await;
    assert_eq!(v["network"]["status"], "ok");
    assert_eq!(v["network"]["jobs"]["total"], 6);
    assert_eq!(v["network"]["total_workers"], 1);
    assert_eq!(v["network"]["active_workers"], 0);
    assert_eq!(v["network"]["workers_by_status"]["pending"], 1);
    assert_unavailable(&v["chain"], "no chain source configured");
    assert_eq!(v["store"]["status"], "ok");
    assert_eq!(v["store"]["backend"], "memory");
}

#[tokio::test]
async fn jobs_recent_lists_the_newest_first() {
    let t = app();
    let t0 = bitsage_core::time::now() - TimeDelta::hours(1);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(enqueue(&t.store, i, t0 + TimeDelta::seconds(i as i64)).await);
    }
    let v = get_json(&t.app, get("/api/jobs/recent?limit=3")).await;
    let jobs = &v["jobs"];
    assert_eq!(jobs["status"], "ok");
    assert_eq!(jobs["total"], 5);
    let got: Vec<String> = jobs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|j| j["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let want: Vec<String> = ids.iter().rev().take(3).map(|id| id.to_string()).collect();
    assert_eq!(got, want, "newest submission first");
    assert_eq!(jobs["items"][0]["payment"], "1000");
    assert_eq!(jobs["items"][0]["status"], "queued");

    // Default limit (20) over 5 jobs: all of them, newest first.
    let v = get_json(&t.app, get("/api/jobs/recent")).await;
    assert_eq!(v["jobs"]["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["jobs"]["items"][4]["id"], ids[0].to_string());

    for bad in [
        "/api/jobs/recent?limit=0",
        "/api/jobs/recent?limit=101",
        "/api/jobs/recent?limit=x",
    ] {
        send(&t.app, get(bad))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

// ---------------------------------------------------------------- uptime and network

#[tokio::test]
async fn worker_uptime_is_404_for_an_unknown_node_and_counts_heartbeats() {
    let t = app();
    send(&t.app, get("/api/worker/uptime?node=ghost"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    for bad in [
        "/api/worker/uptime",
        "/api/worker/uptime?node=node-1&window_secs=0",
        "/api/worker/uptime?node=node-1&window_secs=2592001",
    ] {
        send(&t.app, get(bad))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }

    let k = key(1);
    register(&t.app, &k, "node-1").await;
    let v = get_json(&t.app, get("/api/worker/uptime?node=node-1")).await;
    assert_eq!(v["heartbeats"], 0);
    // Registered this minute, no heartbeat yet: nothing to judge (n/a), not 0 and not 1.
    assert!(v["ratio"].is_null() || v["ratio"] == 0.0, "{v}");
    assert!(v["minutes_counted"].as_u64().is_some_and(|m| m <= 1));
    assert!(v["last_seen"].is_null());

    beat(&t.app, &k, "node-1", 1, Vec::new()).await;
    beat(&t.app, &k, "node-1", 2, Vec::new()).await;
    let v = get_json(
        &t.app,
        get("/api/worker/uptime?node=node-1&window_secs=3600"),
    )
    .await;
    assert_eq!(v["node_id"], "node-1");
    assert_eq!(v["window_secs"], 3600);
    assert_eq!(v["heartbeats"], 2);
    assert_eq!(v["heartbeat_interval_secs"], 10);
    assert_eq!(
        v["ratio"], 1.0,
        "a node registered seconds ago that heartbeated is up, not 0.0004"
    );
    assert_eq!(v["minutes_up"], v["minutes_counted"]);
    assert!(v["window"]["from"].as_str().is_some());
    assert!(v["last_seen"].as_str().is_some_and(|s| s.ends_with('Z')));
}

#[tokio::test]
async fn network_workers_show_status_gpus_last_seen_and_uptime() {
    let t = app();
    let ka = key(1);
    register_for(
        &t.app,
        &ka,
        "node-a1",
        wallet_a(),
        with_gpus(vec![
            gpu(0, "GPU-aaaa-0", "NVIDIA H100 80GB HBM3"),
            gpu(1, "GPU-aaaa-1", "NVIDIA H100 80GB HBM3"),
        ]),
    )
    .await;
    register_for(&t.app, &key(2), "node-b1", wallet_b(), gpu_less("none")).await;
    beat(&t.app, &ka, "node-a1", 1, Vec::new()).await;

    let v = get_json(&t.app, get("/api/network/workers")).await;
    let w = &v["workers"];
    assert_eq!(w["status"], "ok");
    assert_eq!(w["total"], 2);
    let items = w["items"].as_array().expect("items");
    assert_eq!(items[0]["node_id"], "node-a1");
    assert_eq!(items[0]["status"], "pending");
    assert_eq!(items[0]["wallet"], wallet_a().to_string());
    assert_eq!(items[0]["gpu_count"], 2);
    assert_eq!(
        items[0]["gpu_models"],
        serde_json::json!(["NVIDIA H100 80GB HBM3"])
    );
    assert!(items[0]["last_seen"].as_str().is_some());
    assert_eq!(items[0]["uptime_24h"], 1.0, "counted from its registration");
    assert_eq!(items[1]["gpu_count"], 0);
    assert!(items[1]["last_seen"].is_null());
    assert!(
        items[1]["uptime_24h"].is_null() || items[1]["uptime_24h"] == 0.0,
        "silent since registering this minute: n/a (or 0 once a minute has passed)"
    );

    let typed: NetworkWorkers = serde_json::from_value(v.clone()).expect("typed");
    assert!(matches!(&typed.workers, Section::Ok(p) if p.items[0].gpu_count == 2));

    let v = get_json(&t.app, get("/api/network/workers?limit=1&offset=1")).await;
    assert_eq!(v["workers"]["items"][0]["node_id"], "node-b1");
    assert!(v["workers"]["next_offset"].is_null());
    let v = get_json(&t.app, get("/api/network/workers?status=active")).await;
    assert_eq!(v["workers"]["total"], 0);
    for bad in [
        "/api/network/workers?status=sleeping",
        "/api/network/workers?limit=0",
        "/api/network/workers?limit=201",
    ] {
        send(&t.app, get(bad))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn summary_reads_chain_totals_when_a_chain_is_configured() {
    let chain = Arc::new(InMemoryChain::new());
    chain
        .set_stake(wallet_a(), stake_of("18446744073709551616000"))
        .expect("seed");
    chain.set_stake(wallet_b(), stake_of("1")).expect("seed");
    let t = app_with(Some(chain as DynChainSource), Duration::from_secs(2));
    let v = get_json(&t.app, get("/api/summary")).await;
    assert_eq!(v["chain"]["status"], "ok", "{}", v["chain"]);
    assert_eq!(v["chain"]["total_staked"], "18446744073709551616001");
    assert_eq!(v["chain"]["block_number"], 2);
    assert!(v["chain"]["total_staked_formatted"]
        .as_str()
        .is_some_and(|s| s.ends_with(" SAGE")));
    assert_eq!(v["network"]["total_workers"], 0);
    assert!(v["network"]["jobs"]["success_rate"].is_null());
    let typed: Summary = serde_json::from_value(v).expect("typed");
    assert_eq!(
        typed.chain.ok().map(|c| c.value.total_staked),
        Some(amount("18446744073709551616001"))
    );
}

// ---------------------------------------------------------------- OpenAPI

/// Every route `bitsage_http::router()` registers, with its methods: the access table.
fn routes() -> Vec<(&'static str, &'static str)> {
    bitsage_http::auth::ROUTES
        .iter()
        .map(|r| (r.method, r.path))
        .collect()
}

/// Whether the router has a handler for `method path` (not the unknown-route fallback, not
/// "method not allowed"). Path parameters are filled with a placeholder.
async fn is_routed(app: &Router, method: &str, path: &str) -> bool {
    let uri = path
        .replace("{id}", "placeholder")
        .replace("{node}", "placeholder")
        .replace("{wallet}", "placeholder");
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("request");
    // Only the status and, for a 404, the body: a live route's body never ends.
    let r = tower::ServiceExt::oneshot(app.clone(), req)
        .await
        .expect("infallible");
    if r.status() == StatusCode::METHOD_NOT_ALLOWED {
        return false;
    }
    if r.status() == StatusCode::NOT_FOUND {
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .expect("body")
            .to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("json");
        return v["error"]["message"] != "no such route";
    }
    true
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_resolves_its_references() {
    let t = app();
    let r = send(&t.app, get("/openapi.json")).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].as_str().is_some());
    let paths = doc["paths"].as_object().expect("paths");

    let routes = routes();
    for (method, path) in &routes {
        assert!(
            is_routed(&t.app, method, path).await,
            "{method} {path} is not routed"
        );
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from the document"))[method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} missing from the document");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path}"
        );
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
    }
    // And the document names nothing the router does not serve.
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            let m = method.to_uppercase();
            assert!(
                routes.contains(&(m.as_str(), path.as_str())),
                "{m} {path} is documented but not in the route list"
            );
        }
    }

    // The wallet header (on every validator route) and path parameters are declared.
    for (method, path) in &routes {
        if !path.starts_with("/api/validator/") {
            continue;
        }
        let params = paths[*path][method.to_lowercase()]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let header = params
            .iter()
            .find(|p| p["in"] == "header" && p["name"] == "X-Wallet-Address")
            .unwrap_or_else(|| panic!("{method} {path} does not declare X-Wallet-Address"));
        assert_eq!(header["required"], true);
        assert_eq!(
            header["schema"]["$ref"],
            "#/components/schemas/WalletAddress"
        );
    }
    let node_params = paths["/api/nodes/{id}"]["get"]["parameters"][0].clone();
    assert_eq!(node_params["in"], "path");
    assert_eq!(node_params["name"], "id");
    assert_eq!(node_params["required"], true);
    assert_eq!(
        paths["/api/nodes/register"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/RegisterRequest"
    );

    // The shared error shape, and every error response of every operation uses it.
    let schemas = &doc["components"]["schemas"];
    let error = &schemas["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    assert_eq!(
        error["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    assert_eq!(
        schemas["ErrorDetail"]["required"],
        serde_json::json!(["type", "message"])
    );
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            for (code, response) in op["responses"].as_object().expect("responses") {
                if !(code.starts_with('4') || code.starts_with('5')) {
                    continue;
                }
                let response = match response["$ref"].as_str() {
                    Some(r) => doc
                        .pointer(r.trim_start_matches('#'))
                        .unwrap_or_else(|| panic!("dangling {r}")),
                    None => response,
                };
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                // Readiness answers 503 with its own health report.
                let want = if code == "503" && path == "/health" {
                    "#/components/schemas/HealthReport"
                } else if code == "503" && (path == "/readyz" || path == "/health/ready") {
                    "#/components/schemas/HealthResponse"
                } else {
                    "#/components/schemas/ErrorBody"
                };
                assert_eq!(schema, want, "{method} {path} {code}");
            }
        }
    }

    // Every reference points at something defined.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50);
    for reference in refs {
        let pointer = reference.trim_start_matches('#');
        assert!(
            doc.pointer(pointer).is_some(),
            "dangling reference {reference}"
        );
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.push(v.as_str().unwrap_or_default().to_string());
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------- the seed's surface

#[tokio::test]
async fn the_seed_routes_answer_with_the_seeds_names_and_units() {
    let chain = Arc::new(InMemoryChain::new());
    chain
        .set_stake(wallet_a(), stake_of("250000000000000000000000"))
        .expect("seed");
    let t = app_with(
        Some(chain.clone() as DynChainSource),
        Duration::from_secs(2),
    );
    let k = key(1);
    register_for(
        &t.app,
        &k,
        "node-a1",
        wallet_a(),
        with_gpus(vec![gpu(0, "GPU-aaaa-0", "NVIDIA H100 80GB HBM3")]),
    )
    .await;
    // The deployment guide's heartbeat route takes the same signed heartbeat.
    let mut s = GpuSample::empty("GPU-aaaa-0", bitsage_core::time::now());
    s.gpu_utilization_ratio = Some(0.5);
    s.temperature_celsius = Some(61.0);
    let req = HeartbeatRequest::signed(
        &k,
        node_id("node-a1"),
        1,
        bitsage_core::time::now(),
        Some(0.5),
        "bitsage-agent/0.1.0",
        vec![s],
    );
    let r = send(&t.app, post_json("/api/worker/heartbeat", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // A replay through the alias is refused like through the original.
    let r = send(&t.app, post_json("/api/nodes/heartbeat", &req)).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let v = get_json(&t.app, get_with_wallet("/api/worker/status", "0xa11ce")).await;
    assert_eq!(v["staked_amount"], "250000000000000000000000");
    assert_eq!(v["pending_rewards"], "1500000000000000000");
    assert!(v["reputation_score"].as_u64().is_some());
    assert_eq!(v["jobs_completed"], 0);
    assert_eq!(v["stake"]["status"], "ok", "our view is there too");

    let v = get_json(
        &t.app,
        get_with_wallet("/api/worker/gpu-metrics", "0xa11ce"),
    )
    .await;
    let g = &v["gpus"][0];
    assert_eq!(g["model"], "NVIDIA H100 80GB HBM3");
    assert_eq!(g["compute_utilization"], 50.0, "percent, as the seed");
    assert_eq!(g["temperature_celsius"], 61.0);
    assert!(g["power_watts"].is_null(), "not reported: null, not 0");

    let stats = get_json(&t.bare, get("/stats")).await;
    let original = get_json(&t.bare, get("/api/network/stats")).await;
    assert_eq!(stats["workers"], original["workers"]);

    let r = send(
        &t.app,
        Request::post("/api/worker/claim-reward")
            .header("X-Wallet-Address", "0xa11ce")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["rewards"]["pending"], "1500000000000000000");
    assert!(v["call"].is_null(), "no staking contract known here: {v}");

    // Past raw retention the samples live on as per-minute rollups.
    let later = bitsage_core::time::now() + chrono::TimeDelta::seconds(1);
    let keep = bitsage_core::time::earliest();
    t.store
        .apply_retention(&bitsage_core::retention::RetentionCutoffs {
            raw_heartbeats: keep,
            raw_gpu_samples: later,
            minute_rollups: keep,
            job_timings: keep,
            node_facts: keep,
        })
        .await
        .expect("retention");
    let v = get_json(&t.app, get("/api/nodes/node-a1/gpu-minutes")).await;
    let m = &v["minutes"][0];
    assert_eq!(m["uuid"], "GPU-aaaa-0");
    assert_eq!(m["metrics"]["temperature_celsius"]["max"], 61.0);
    send(
        &t.app,
        get("/api/nodes/node-a1/gpu-minutes?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // Without a chain, the chain's fields are null, never 0.
    let bare = app();
    register_for(&bare.app, &key(2), "node-b1", wallet_b(), gpu_less("none")).await;
    let v = get_json(&bare.app, get_with_wallet("/api/worker/status", "0xb0b")).await;
    assert!(v["staked_amount"].is_null());
    assert!(v["pending_rewards"].is_null());
    assert!(v["reputation_score"].is_null());
}

#[tokio::test]
async fn validator_status_is_reused_for_its_ttl_and_says_its_age() {
    let t = app_with_cache(None, Duration::from_secs(2), Duration::from_secs(2));
    register_for(&t.app, &key(1), "node-a1", wallet_a(), gpu_less("none")).await;
    let first = send(&t.app, get_with_wallet("/api/validator/status", "0xa11ce")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["age"], "0");
    assert!(first.headers["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("private, max-age="));
    let v = first.json();
    assert_eq!(v["workers"]["total"], 1);

    // A second node within the TTL: the same answer (same generated_at), its age growing.
    register_for(&t.app, &key(2), "node-a2", wallet_a(), gpu_less("none")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = send(&t.app, get_with_wallet("/api/validator/status", "0xa11ce")).await;
    assert_eq!(again.headers["age"], "1");
    let w = again.json();
    assert_eq!(w["generated_at"], v["generated_at"], "the reused answer");
    assert_eq!(w["workers"]["total"], 1);

    // Past the TTL: read again.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let fresh = get_json(&t.app, get_with_wallet("/api/validator/status", "0xa11ce")).await;
    assert_eq!(fresh["workers"]["total"], 2);
    assert_ne!(fresh["generated_at"], v["generated_at"]);
}
