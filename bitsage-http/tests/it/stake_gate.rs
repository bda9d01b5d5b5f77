//! The stake gate through the router: with a chain, a pending node gets no probe while its
//! stake is below its GPU tier's minimum (the reason in words on the lease answer and the
//! node), a probe once it suffices, and an active node whose stake falls is moved back to
//! pending by the periodic re-check. A chain outage keeps pending nodes waiting and moves no
//! active node.

use crate::common;

use std::sync::Arc;

use axum::http::StatusCode;
use bitsage_chain::InMemoryChain;
use bitsage_core::chain::StakeInfo;
use bitsage_core::gpu::{DeviceState, GpuDevice, GpuTier};
use bitsage_core::node::HardwareReport;
use bitsage_core::store_prelude::*;
use bitsage_core::{NodeStatus, TokenAmount};
use bitsage_http::api::{Assignment, CompleteResponse, RegisterRequest};
use bitsage_prover::StwoProver;
use common::*;
use ed25519_dalek::SigningKey;

fn sage(n: u64) -> TokenAmount {
    TokenAmount::parse_units(&n.to_string(), 18).expect("amount")
}

fn stake(amount: TokenAmount) -> StakeInfo {
    StakeInfo {
        amount,
        locked_amount: TokenAmount::ZERO,
        staked_at: Some(bitsage_core::time::now()),
        last_claim_at: None,
        gpu_tier: GpuTier::DataCenter,
        is_active: true,
        consecutive_failures: 0,
        total_slashed: TokenAmount::ZERO,
        pending_rewards: TokenAmount::ZERO,
    }
}

fn gated_app(chain: Arc<InMemoryChain>) -> TestApp {
    let mut t = app();
    t.state = t.state.clone().with_stake_gate(chain);
    t.app = common::as_user(bitsage_http::router(t.state.clone()), &t.admin_token);
    t
}

/// A registration with one data-center GPU.
fn data_center_node(key: &SigningKey, id: &str) -> RegisterRequest {
    RegisterRequest::signed(
        key,
        node_id(id),
        wallet(),
        HardwareReport {
            gpus: vec![GpuDevice {
                index: 0,
                uuid: "GPU-0000".into(),
                name: "NVIDIA L40S".into(),
                pci_bus_id: None,
                memory_total_bytes: Some(48 << 30),
                mig_enabled: Some(false),
                confidential_compute: None,
                tier: Some(GpuTier::DataCenter),
                state: DeviceState::Ok,
            }],
            ..HardwareReport::default()
        },
        "bitsage-agent/0.1.0",
        bitsage_core::time::now(),
    )
}

async fn pass_probe(t: &TestApp, k: &SigningKey, id: &str, a: &Assignment) {
    let env = prove(a.spec());
    let req = probe_completion(k, id, a, env);
    let r = send(&t.app, post_json("/api/jobs/complete", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let c: CompleteResponse = r.parse();
    assert_eq!(c.node_status, NodeStatus::Active);
}

const BELOW: &str = "stake 500 SAGE is below the DataCenter minimum of 1,000 SAGE";

#[tokio::test]
async fn a_node_works_only_while_its_stake_meets_its_tier_minimum() {
    let chain = Arc::new(InMemoryChain::new());
    chain.set_min_stake(GpuTier::Consumer, sage(100)).unwrap();
    chain
        .set_min_stake(GpuTier::DataCenter, sage(1_000))
        .unwrap();
    chain.set_stake(wallet(), stake(sage(500))).unwrap();
    let t = gated_app(chain.clone());
    let k = key(1);
    let r = send(
        &t.app,
        post_json("/api/nodes/register", &data_center_node(&k, "node-1")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);

    // Below the minimum: no probe, the reason in words, on the answer and on the node.
    let l = lease(&t, &k, "node-1").await;
    assert!(l.assignment.is_none());
    assert_eq!(l.node_status, NodeStatus::Pending);
    assert_eq!(l.waiting_reason.as_deref(), Some(BELOW));
    let node = send(&t.app, get("/api/nodes/node-1")).await.json();
    assert_eq!(node["status"], "pending");
    assert_eq!(node["status_reason"], BELOW);
    // "Why no work?": the stake item says so.
    let e = send(&t.app, get("/api/nodes/node-1/eligibility"))
        .await
        .json();
    assert_eq!(e["eligible"], false);
    let stake_item = e["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["check"] == "stake_at_tier_minimum")
        .cloned()
        .unwrap();
    assert_eq!(stake_item["ok"], false);
    assert_eq!(stake_item["reason"], BELOW);

    // Staked to the minimum: a probe, and active once it passes.
    chain.set_stake(wallet(), stake(sage(1_000))).unwrap();
    let l = lease(&t, &k, "node-1").await;
    let probe = l.assignment.expect("a probe once the stake suffices");
    pass_probe(&t, &k, "node-1", &probe).await;

    // A chain outage moves nobody.
    chain.set_unavailable(Some("RPC down".into())).unwrap();
    let report = t
        .state
        .coordinator
        .sweep(bitsage_core::time::now())
        .await
        .unwrap();
    assert!(report.transitions.is_empty(), "{:?}", report.transitions);
    // Nor does it record a partial total stake: `bitsage_total_staked` stays absent.
    assert_eq!(t.state.coordinator.telemetry().total_staked(), None);
    let metrics = send(&t.app, get("/metrics")).await;
    assert!(!String::from_utf8_lossy(&metrics.body).contains("bitsage_total_staked"));
    chain.set_unavailable(None).unwrap();

    // Unstaking below the minimum takes the node out of active, with the reason. (The
    // re-check is due again only after its period: a fresh service instance stands for it.)
    let mut locked = stake(sage(1_000));
    locked.locked_amount = sage(500);
    chain.set_stake(wallet(), locked).unwrap();
    let sweeper = bitsage_core::service::Coordinator::new(
        t.store.clone(),
        Arc::new(StwoProver::new()),
        t.proofs.clone(),
        Arc::new(
            bitsage_core::deployment::DeploymentKey::new(SigningKey::from_bytes(&[42; 32]), "test")
                .unwrap(),
        ),
        Default::default(),
    )
    .with_stake_gate(chain.clone());
    let report = sweeper.sweep(bitsage_core::time::now()).await.unwrap();
    assert_eq!(report.transitions.len(), 1, "{:?}", report.transitions);
    // The re-check read every wallet: the total stake is known (staked, locked part included).
    assert_eq!(sweeper.telemetry().total_staked(), Some(sage(1_000)));
    let (_, moved) = &report.transitions[0];
    assert_eq!(
        (moved.from, moved.to),
        (NodeStatus::Active, NodeStatus::Pending)
    );
    let reason = "stake 500 SAGE (500 SAGE locked for unstaking) is below the DataCenter minimum of 1,000 SAGE";
    assert_eq!(moved.reason, reason);
    let stored = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();
    assert_eq!(stored.status, NodeStatus::Pending);
    assert_eq!(stored.status_reason, reason);
    // And it gets no probe until it stakes again.
    let l = lease(&t, &k, "node-1").await;
    assert!(l.assignment.is_none());
    assert_eq!(l.waiting_reason.as_deref(), Some(reason));
}

#[tokio::test]
async fn an_unreachable_chain_keeps_a_pending_node_waiting_with_the_reason() {
    let chain = Arc::new(InMemoryChain::new());
    chain
        .set_unavailable(Some("RPC did not answer within 3 s".into()))
        .unwrap();
    let t = gated_app(chain);
    let k = key(2);
    let r = send(
        &t.app,
        post_json("/api/nodes/register", &data_center_node(&k, "node-2")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let l = lease(&t, &k, "node-2").await;
    assert!(l.assignment.is_none());
    let reason = l.waiting_reason.expect("a reason");
    assert!(reason.starts_with("stake cannot be checked"), "{reason}");
    assert!(reason.contains("RPC did not answer"), "{reason}");
}
