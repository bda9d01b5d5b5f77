//! Registration and heartbeats: signatures, idempotency, replay protection, lifecycle.

use crate::common;

use axum::http::StatusCode;
use bitsage_core::crypto::PublicKey;
use bitsage_core::gpu::GpuSample;
use bitsage_core::store_prelude::*;
use bitsage_core::{EventLog, NodeStatus, Transition, WalletAddress};
use bitsage_http::api::{
    HeartbeatRequest, HeartbeatResponse, NodeDetail, RegisterRequest, RegisterResponse,
};
use common::*;

#[tokio::test]
async fn register_creates_a_pending_node() {
    let t = app();
    let k = key(1);
    let r = send(
        &t.app,
        post_json("/api/nodes/register", &register_request(&k, "node-1")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let body: RegisterResponse = r.parse();
    assert_eq!(body.node.status, NodeStatus::Pending);
    assert_eq!(body.node.public_key, PublicKey::of(&k));
    assert_eq!(body.heartbeat_interval_secs, 10);
    assert_eq!(body.coordinator_public_key, PublicKey::of(&key(42)));
    let v = r.json();
    assert_eq!(v["node"]["status"], "pending");
    assert!(v["node"]["registered_at"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));
    let stored = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();
    assert_eq!(stored.status, NodeStatus::Pending);
    assert_eq!(stored.wallet, wallet());
}

#[tokio::test]
async fn re_registering_is_idempotent_and_another_key_conflicts() {
    let t = app();
    let k = key(1);
    register(&t.app, &k, "node-1").await;
    let first = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();

    let r = send(
        &t.app,
        post_json("/api/nodes/register", &register_request(&k, "node-1")),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let body: RegisterResponse = r.parse();
    assert_eq!(body.node.registered_at, first.registered_at);

    let r = send(
        &t.app,
        post_json("/api/nodes/register", &register_request(&key(2), "node-1")),
    )
    .await;
    r.assert_error(StatusCode::CONFLICT, "conflict");
    let after = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();
    assert_eq!(after, first, "a conflicting registration changes nothing");
}

#[tokio::test]
async fn forged_registration_is_401_and_stores_nothing() {
    let t = app();
    // Signed by key 1 but claiming key 2: no proof of possession.
    let mut forged = register_request(&key(1), "node-1");
    forged.public_key = PublicKey::of(&key(2));
    // A field changed after signing.
    let mut tampered = register_request(&key(1), "node-2");
    tampered.wallet = WalletAddress::parse("0x99").unwrap();
    // Validly signed but sent an hour ago (outside the 5-minute window).
    let mut old = register_request(&key(1), "node-3");
    old.sent_at -= chrono::TimeDelta::hours(1);
    let old = bitsage_http::api::RegisterRequest::signed(
        &key(1),
        old.node_id,
        old.wallet,
        old.hardware,
        old.agent_version,
        old.sent_at,
    );
    for req in [forged, tampered, old] {
        let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
        r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    for id in ["node-1", "node-2", "node-3"] {
        assert!(t.store.get_node(&node_id(id)).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn heartbeat_is_stored_with_samples_and_last_seen() {
    let t = app();
    let k = key(1);
    // Samples are accepted only for devices the node registered.
    let mut req = register_request(&k, "node-1");
    req.hardware.gpus = vec![bitsage_core::gpu::GpuDevice {
        index: 0,
        uuid: "GPU-0000".into(),
        name: "Test GPU".into(),
        pci_bus_id: None,
        memory_total_bytes: None,
        mig_enabled: None,
        confidential_compute: None,
        tier: None,
        state: bitsage_core::gpu::DeviceState::Ok,
    }];
    let req = RegisterRequest::signed(
        &k,
        req.node_id,
        req.wallet,
        req.hardware,
        req.agent_version,
        req.sent_at,
    );
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let mut sample = GpuSample::empty("GPU-0000", bitsage_core::time::now());
    sample.gpu_utilization_ratio = Some(0.25);
    let hb = HeartbeatRequest::signed(
        &k,
        node_id("node-1"),
        1,
        bitsage_core::time::now(),
        Some(1.5),
        "bitsage-agent/0.1.0",
        vec![sample.clone()],
    );
    let r = send(&t.app, post_json("/api/nodes/heartbeat", &hb)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let body: HeartbeatResponse = r.parse();
    assert_eq!(body.status, NodeStatus::Pending);
    assert_eq!(body.heartbeat_interval_secs, 10);

    let id = node_id("node-1");
    assert!(t.store.last_seen(&id).await.unwrap().is_some());
    assert_eq!(t.store.latest_gpu_samples(&id).await.unwrap(), vec![sample]);
    let detail: NodeDetail = send(&t.app, get("/api/nodes/node-1")).await.parse();
    assert!(detail.last_seen.is_some());
}

#[tokio::test]
async fn forged_or_unknown_heartbeat_is_401_and_stores_nothing() {
    let t = app();
    register(&t.app, &key(1), "node-1").await;
    let forged = heartbeat_request(&key(2), "node-1", 1);
    let r = send(&t.app, post_json("/api/nodes/heartbeat", &forged)).await;
    let forged_msg = r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let mut tampered = heartbeat_request(&key(1), "node-1", 1);
    tampered.load_average_1m = Some(99.0);
    let r = send(&t.app, post_json("/api/nodes/heartbeat", &tampered)).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let unknown = heartbeat_request(&key(1), "node-9", 1);
    let r = send(&t.app, post_json("/api/nodes/heartbeat", &unknown)).await;
    let unknown_msg = r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        forged_msg, unknown_msg,
        "an unknown node looks like a bad signature"
    );

    assert!(t
        .store
        .last_seen(&node_id("node-1"))
        .await
        .unwrap()
        .is_none());
    // The real key's first heartbeat (sequence 1) is still accepted: nothing was consumed.
    let ok = heartbeat_request(&key(1), "node-1", 1);
    assert_eq!(
        send(&t.app, post_json("/api/nodes/heartbeat", &ok))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn replayed_or_decreasing_sequence_is_401() {
    let t = app();
    let k = key(1);
    register(&t.app, &k, "node-1").await;
    let hb5 = heartbeat_request(&k, "node-1", 5);
    assert_eq!(
        send(&t.app, post_json("/api/nodes/heartbeat", &hb5))
            .await
            .status,
        StatusCode::OK
    );
    let seen = t.store.last_seen(&node_id("node-1")).await.unwrap();
    for replay in [
        hb5.clone(),
        heartbeat_request(&k, "node-1", 5),
        heartbeat_request(&k, "node-1", 4),
    ] {
        let r = send(&t.app, post_json("/api/nodes/heartbeat", &replay)).await;
        r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_eq!(t.store.last_seen(&node_id("node-1")).await.unwrap(), seen);
    let hb6 = heartbeat_request(&k, "node-1", 6);
    assert_eq!(
        send(&t.app, post_json("/api/nodes/heartbeat", &hb6))
            .await
            .status,
        StatusCode::OK
    );
}

async fn move_node(t: &TestApp, id: &str, from: NodeStatus, to: NodeStatus) {
    t.store
        .apply_transition(
            &node_id(id),
            &Transition {
                from,
                to,
                reason: "set by test".into(),
            },
            bitsage_core::time::now(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn heartbeat_brings_an_offline_node_back_to_pending() {
    let t = app();
    let k = key(1);
    register(&t.app, &k, "node-1").await;
    move_node(&t, "node-1", NodeStatus::Pending, NodeStatus::Offline).await;
    let r = send(
        &t.app,
        post_json("/api/nodes/heartbeat", &heartbeat_request(&k, "node-1", 1)),
    )
    .await;
    let body: HeartbeatResponse = r.parse();
    assert_eq!(body.status, NodeStatus::Pending);
    let node = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();
    assert_eq!(node.status, NodeStatus::Pending);
    let history = t.store.status_history(&node_id("node-1")).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.from, last.to),
        (NodeStatus::Offline, NodeStatus::Pending)
    );
    assert!(!last.reason.is_empty());
}

#[tokio::test]
async fn heartbeat_brings_a_stale_node_back_to_active_and_leaves_active_alone() {
    let t = app();
    let k = key(1);
    register(&t.app, &k, "node-1").await;
    move_node(&t, "node-1", NodeStatus::Pending, NodeStatus::Active).await;
    move_node(&t, "node-1", NodeStatus::Active, NodeStatus::Stale).await;
    let r = send(
        &t.app,
        post_json("/api/nodes/heartbeat", &heartbeat_request(&k, "node-1", 1)),
    )
    .await;
    assert_eq!(r.parse::<HeartbeatResponse>().status, NodeStatus::Active);
    let before = t
        .store
        .status_history(&node_id("node-1"))
        .await
        .unwrap()
        .len();
    let r = send(
        &t.app,
        post_json("/api/nodes/heartbeat", &heartbeat_request(&k, "node-1", 2)),
    )
    .await;
    assert_eq!(r.parse::<HeartbeatResponse>().status, NodeStatus::Active);
    let after = t
        .store
        .status_history(&node_id("node-1"))
        .await
        .unwrap()
        .len();
    assert_eq!(
        before, after,
        "a heartbeat while active records no transition"
    );
}

#[tokio::test]
async fn node_list_filters_and_paginates() {
    let t = app();
    for i in 0..3u8 {
        register(&t.app, &key(i + 1), &format!("node-{i}")).await;
    }
    move_node(&t, "node-1", NodeStatus::Pending, NodeStatus::Active).await;
    let v = send(&t.app, get("/api/nodes?limit=2")).await.json();
    assert_eq!(v["total"], 3);
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    assert_eq!(v["next_offset"], 2);
    let v = send(&t.app, get("/api/nodes?status=active")).await.json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["id"], "node-1");
    let v = send(&t.app, get(&format!("/api/nodes?wallet={}", wallet())))
        .await
        .json();
    assert_eq!(v["total"], 3);
    let v = send(&t.app, get("/api/nodes?wallet=0x77")).await.json();
    assert_eq!(v["total"], 0);

    let detail: NodeDetail = send(&t.app, get("/api/nodes/node-1")).await.parse();
    assert_eq!(detail.node.status, NodeStatus::Active);
    assert_eq!(detail.history.len(), 1);
    assert!(detail.last_seen.is_none());
    send(&t.app, get("/api/nodes/node-404"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

/// Heartbeats are summarised on the `workers` topic, never broadcast one by one: none leaves
/// an event; the sweep writes one summary per period for the heartbeats this coordinator
/// accepted, and none when there were none.
#[tokio::test]
async fn heartbeats_are_summarised_not_broadcast() {
    use bitsage_core::event::Topic;
    let t = app();
    register(&t.app, &key(1), "node-1").await;
    register(&t.app, &key(2), "node-2").await;
    let before = t.store.last_event_id().await.unwrap();
    for (k, id, seq) in [(1, "node-1", 1), (1, "node-1", 2), (2, "node-2", 1)] {
        let r = send(
            &t.app,
            post_json("/api/nodes/heartbeat", &heartbeat_request(&key(k), id, seq)),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let events = t.store.events_after(before, 100).await.unwrap();
    assert!(
        events.iter().all(|e| !e.kind.starts_with("heartbeat")),
        "a heartbeat leaves no event of its own: {events:?}"
    );
    let now = bitsage_core::time::now();
    let early = t.state.coordinator.sweep(now).await.unwrap();
    assert!(!early.heartbeat_summary, "not due before the period");
    let due = now + chrono::TimeDelta::seconds(31);
    assert!(
        t.state
            .coordinator
            .sweep(due)
            .await
            .unwrap()
            .heartbeat_summary
    );
    let events = t.store.events_after(before, 100).await.unwrap();
    let summaries: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "heartbeats_summary")
        .collect();
    assert_eq!(summaries.len(), 1, "{events:?}");
    let s = summaries[0];
    assert_eq!(s.topic, Topic::Workers);
    assert_eq!(s.data["heartbeats"], 3);
    assert_eq!(s.data["nodes"], 2);
    assert_eq!(s.data["nodes_by_status"]["pending"], 2);
    assert_eq!(
        s.data["coordinator_instance"],
        t.state.coordinator.instance()
    );
    // Nothing accepted since: no summary.
    let later = due + chrono::TimeDelta::seconds(31);
    assert!(
        !t.state
            .coordinator
            .sweep(later)
            .await
            .unwrap()
            .heartbeat_summary
    );
}

#[tokio::test]
async fn a_profile_registers_filters_and_updates_on_re_registration() {
    let t = app();
    let profile = bitsage_core::node::NodeProfile {
        region: Some("eu-west".into()),
        runtime: bitsage_core::node::Runtime::Vllm,
        labels: [("pool".to_string(), "a".to_string())].into(),
        energy_tag: Some("renewable".into()),
    };
    let k = key(1);
    let req = register_request(&k, "node-1").with_profile(profile.clone(), &k);
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["node"]["profile"]["region"], "eu-west");
    assert_eq!(r.json()["node"]["profile"]["runtime"], "vllm");
    register(&t.app, &key(2), "node-2").await;

    let ids = |v: serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|n| n["id"].as_str().expect("id").to_string())
            .collect()
    };
    for q in [
        "region=eu-west",
        "runtime=vllm",
        "label=pool%3Da",
        "energy_tag=renewable",
        "region=eu-west&status=pending",
    ] {
        let r = send(&t.app, get(&format!("/api/nodes?{q}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        assert_eq!(ids(r.json()), vec!["node-1"], "{q}");
    }
    let r = send(&t.app, get("/api/nodes?runtime=native")).await;
    assert_eq!(ids(r.json()), vec!["node-2"], "the default runtime");
    for bad in [
        "/api/nodes?region=EU%20West",
        "/api/nodes?runtime=docker",
        "/api/nodes?label=pool",
        "/api/nodes?label=Bad%20Key%3Dx",
        "/api/nodes?energy_tag=",
    ] {
        let r = send(&t.app, get(bad)).await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // A bad profile is refused at registration and stores nothing.
    let bad = bitsage_core::node::NodeProfile {
        region: Some("no spaces".into()),
        ..bitsage_core::node::NodeProfile::default()
    };
    let req = register_request(&key(3), "node-3").with_profile(bad, &key(3));
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(r.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("region")));
    assert!(t
        .store
        .get_node(&node_id("node-3"))
        .await
        .unwrap()
        .is_none());
    // Re-registering with another profile updates it; the rest stays.
    let moved = bitsage_core::node::NodeProfile {
        region: Some("us-east".into()),
        ..profile
    };
    let req = register_request(&k, "node-1").with_profile(moved.clone(), &k);
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(r.status, StatusCode::OK);
    let stored = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();
    assert_eq!(stored.profile, moved);
    // A profile is part of the signed bytes: changing it after signing is refused.
    let mut tampered = register_request(&k, "node-1").with_profile(moved, &k);
    tampered.profile.as_mut().expect("profile").region = Some("ap-south".into());
    let r = send(&t.app, post_json("/api/nodes/register", &tampered)).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn node_detail_shows_uptime_from_registration_and_latency() {
    let t = app();
    let k = key(1);
    register(&t.app, &k, "node-1").await;
    for seq in 1..=3 {
        let r = send(
            &t.app,
            post_json(
                "/api/nodes/heartbeat",
                &heartbeat_request(&k, "node-1", seq),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let v = send(&t.app, get("/api/nodes/node-1")).await.json();
    for w in ["uptime_24h", "uptime_7d", "uptime_30d"] {
        assert_eq!(v[w]["ratio"], 1.0, "{w}: {v}");
        assert_eq!(v[w]["heartbeats"], 3, "{w}");
    }
    assert_eq!(v["latency_24h"]["run"]["count"], 0);
    assert!(v["latency_24h"]["run"]["p95_ms"].is_null(), "n/a, not 0");
    let typed: NodeDetail = serde_json::from_value(v).expect("typed detail");
    assert_eq!(typed.operations.uptime_24h.ratio, Some(1.0));

    // The summary carries the KPI cards' data.
    let s = send(&t.bare, get("/api/summary")).await.json();
    let ops = &s["operations"];
    assert_eq!(ops["status"], "ok", "{s}");
    assert_eq!(ops["nodes_up"]["value"], 1.0);
    assert_eq!(ops["nodes_up"]["previous"], 0.0);
    assert_eq!(ops["jobs"]["value"], 0.0);
    assert!(ops["p95_ms"]["value"].is_null());
    assert_eq!(ops["trend"].as_array().map(Vec::len), Some(24));
}

#[tokio::test]
async fn heartbeat_interval_grows_while_ingest_is_behind_and_stays_below_stale() {
    let t = app();
    let policy = bitsage_core::service::CoordinatorPolicy {
        heartbeat_interval: std::time::Duration::from_secs(1),
        // Every commit counts as "behind".
        heartbeat_latency_target: std::time::Duration::ZERO,
        max_heartbeat_interval: std::time::Duration::from_secs(60),
        stale_after: std::time::Duration::from_secs(6),
        ..Default::default()
    };
    let app = as_user(
        bitsage_http::router(t.state.clone().with_policy(policy)),
        &t.admin_token,
    );
    let k = key(1);
    register(&app, &k, "node-1").await;
    let mut seen = Vec::new();
    for seq in 1..=4 {
        // The pacer re-decides at most once per base interval.
        tokio::time::sleep(std::time::Duration::from_millis(1_050)).await;
        let r = send(
            &app,
            post_json(
                "/api/nodes/heartbeat",
                &heartbeat_request(&k, "node-1", seq),
            ),
        )
        .await;
        seen.push(r.parse::<HeartbeatResponse>().heartbeat_interval_secs);
    }
    // 1 → 2 → 4, then capped at two thirds of stale_after (4 s): a paced node never looks
    // silent.
    assert_eq!(seen, vec![2, 4, 4, 4], "advertised intervals");
}
