//! `/metrics` and the GPU samples heartbeats carry: per-GPU series from real reports only,
//! stale readings not exported as current, invalid or foreign samples refused.

mod common;

use axum::http::StatusCode;
use bitsage_core::gpu::{DeviceState, GpuCollectorStatus, GpuDevice, GpuSample, GpuTier};
use bitsage_core::node::{HardwareReport, Heartbeat};
use bitsage_core::store_prelude::*;
use bitsage_http::api::{HeartbeatRequest, NodeDetail, RegisterRequest};
use common::*;
use ed25519_dalek::SigningKey;

fn h100(uuid: &str) -> GpuDevice {
    GpuDevice {
        index: 0,
        uuid: uuid.into(),
        name: "NVIDIA H100 80GB HBM3".into(),
        pci_bus_id: Some("00000000:18:00.0".into()),
        memory_total_bytes: Some(85_520_809_984),
        mig_enabled: Some(false),
        confidential_compute: None,
        tier: Some(GpuTier::Frontier),
        state: DeviceState::Ok,
    }
}

async fn register_with(t: &TestApp, k: &SigningKey, id: &str, gpus: Vec<GpuDevice>) {
    let hw = HardwareReport {
        gpus,
        driver_version: Some("580.65.06".into()),
        cuda_version: Some("13.0".into()),
        ..HardwareReport::default()
    };
    let req = RegisterRequest::signed(
        k,
        node_id(id),
        wallet(),
        hw,
        "bitsage-agent/0.1.0",
        bitsage_core::time::now(),
    );
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(r.status, StatusCode::CREATED);
}

fn beat_with(k: &SigningKey, id: &str, seq: u64, samples: Vec<GpuSample>) -> HeartbeatRequest {
    HeartbeatRequest::signed(
        k,
        node_id(id),
        seq,
        bitsage_core::time::now(),
        None,
        "bitsage-agent/0.1.0",
        samples,
    )
}

fn reading(uuid: &str) -> GpuSample {
    let mut s = GpuSample::empty(uuid, bitsage_core::time::now());
    s.gpu_utilization_ratio = Some(0.75);
    s.power_watts = Some(312.5);
    s
}

#[tokio::test]
async fn metrics_export_fresh_readings_of_registered_gpus_and_counts() {
    let t = app();
    let k = key(1);
    register_with(&t, &k, "gpu-node", vec![h100("GPU-1111")]).await;
    register_with(&t, &key(2), "cpu-node", vec![]).await;
    let r = send(
        &t.app,
        post_json(
            "/api/nodes/heartbeat",
            &beat_with(&k, "gpu-node", 1, vec![reading("GPU-1111")]),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let r = send(&t.app, get("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.contains("bitsage_gpu_info{"), "{text}");
    assert!(text.contains("uuid=\"GPU-1111\""), "{text}");
    assert!(text.contains("driver_version=\"580.65.06\""), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("bitsage_gpu_utilization_ratio{")
                && l.contains("GPU-1111")
                && l.ends_with(" 0.75")),
        "{text}"
    );
    // Not reported → no series (never a 0).
    assert!(!text
        .lines()
        .any(|l| l.starts_with("bitsage_gpu_temperature_celsius{")));
    assert!(
        text.contains("bitsage_nodes{status=\"pending\"} 2"),
        "{text}"
    );
    assert!(text.contains("bitsage_jobs{status=\"queued\"} 0"), "{text}");
    assert!(
        text.contains("bitsage_node_gpu_sample_age_seconds{node=\"gpu-node\"}"),
        "{text}"
    );
    // The GPU-less node has no GPU series.
    assert!(!text.contains("node=\"cpu-node\",uuid"), "{text}");
}

#[tokio::test]
async fn stale_readings_are_not_exported_as_current() {
    let t = app();
    let k = key(1);
    register_with(&t, &k, "gpu-node", vec![h100("GPU-2222")]).await;
    let mut old = reading("GPU-2222");
    old.at = bitsage_core::time::now() - chrono::TimeDelta::hours(1);
    t.store
        .append_gpu_samples(&node_id("gpu-node"), &[old])
        .await
        .unwrap();
    let text = String::from_utf8(send(&t.app, get("/metrics")).await.body).unwrap();
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("bitsage_gpu_utilization_ratio{")),
        "{text}"
    );
    let age: f64 = text
        .lines()
        .find(|l| l.starts_with("bitsage_node_gpu_sample_age_seconds{node=\"gpu-node\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("age series");
    assert!(age >= 3599.0, "{age}");
}

#[tokio::test]
async fn invalid_or_foreign_samples_are_refused_and_nothing_is_stored() {
    let t = app();
    let k = key(1);
    register_with(&t, &k, "gpu-node", vec![h100("GPU-3333")]).await;
    let mut too_busy = reading("GPU-3333");
    too_busy.gpu_utilization_ratio = Some(1.5);
    let mut nan_power = reading("GPU-3333");
    nan_power.power_watts = Some(-5.0);
    let foreign = reading("GPU-of-someone-else");
    let mut future = reading("GPU-3333");
    future.at = bitsage_core::time::now() + chrono::TimeDelta::days(1);
    for (seq, bad) in [too_busy, nan_power, foreign, future]
        .into_iter()
        .enumerate()
    {
        let req = beat_with(&k, "gpu-node", seq as u64 + 1, vec![bad]);
        send(&t.app, post_json("/api/nodes/heartbeat", &req))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert!(t
        .store
        .latest_gpu_samples(&node_id("gpu-node"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(t.store.last_seen(&node_id("gpu-node")).await.unwrap(), None);
}

fn collector(up: bool, age: Option<f64>) -> GpuCollectorStatus {
    GpuCollectorStatus {
        source: "nvml".into(),
        up,
        last_error: (!up).then(|| "the sample timed out after 5s".into()),
        samples_total: 41,
        sample_errors_total: 2,
        last_sample_age_seconds: age,
    }
}

fn series_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn collector_health_from_heartbeats_is_exported_and_shown_on_the_node() {
    let t = app();
    let k = key(1);
    register_with(&t, &k, "gpu-node", vec![h100("GPU-3333")]).await;
    register_with(&t, &key(2), "quiet-node", vec![]).await;
    let beat = beat_with(&k, "gpu-node", 1, vec![reading("GPU-3333")])
        .with_gpu_collector(collector(true, Some(0.25)))
        .sign(&k);
    let r = send(&t.app, post_json("/api/nodes/heartbeat", &beat)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let text = String::from_utf8(send(&t.app, get("/metrics")).await.body).unwrap();
    assert!(
        text.contains("bitsage_gpu_collector_up{node=\"gpu-node\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("bitsage_gpu_collector_samples_total{node=\"gpu-node\"} 41\n"));
    assert!(text.contains("bitsage_gpu_collector_sample_errors_total{node=\"gpu-node\"} 2\n"));
    assert!(text.contains("# TYPE bitsage_gpu_collector_samples_total counter"));
    let age = series_value(
        &text,
        "bitsage_gpu_collector_last_sample_age_seconds{node=\"gpu-node\"}",
    )
    .expect("age series");
    assert!((0.25..60.0).contains(&age), "{age}");
    // A node that never reported a collector has no collector series.
    assert!(
        !text.contains("collector_up{node=\"quiet-node\"}"),
        "{text}"
    );

    // The node detail shows what the latest heartbeat said.
    let detail: NodeDetail = send(&t.app, get("/api/nodes/gpu-node")).await.parse();
    let c = detail.gpu_collector.expect("collector on the node");
    assert_eq!(c.status, collector(true, Some(0.25)));

    // A failing collector: up 0, and its reason on the node.
    let beat = beat_with(&k, "gpu-node", 2, vec![])
        .with_gpu_collector(collector(false, Some(30.0)))
        .sign(&k);
    assert_eq!(
        send(&t.app, post_json("/api/nodes/heartbeat", &beat))
            .await
            .status,
        StatusCode::OK
    );
    let text = String::from_utf8(send(&t.app, get("/metrics")).await.body).unwrap();
    assert!(
        text.contains("bitsage_gpu_collector_up{node=\"gpu-node\"} 0\n"),
        "{text}"
    );
    let detail: NodeDetail = send(&t.app, get("/api/nodes/gpu-node")).await.parse();
    assert_eq!(
        detail.gpu_collector.unwrap().status.last_error.as_deref(),
        Some("the sample timed out after 5s")
    );
}

#[tokio::test]
async fn a_collector_report_from_a_quiet_node_is_not_exported_as_current() {
    let t = app();
    let k = key(1);
    register_with(&t, &k, "gpu-node", vec![h100("GPU-4444")]).await;
    // Stored directly with a receive time an hour ago (the node went quiet since).
    t.store
        .append_heartbeat(&Heartbeat {
            node_id: node_id("gpu-node"),
            at: bitsage_core::time::now() - chrono::TimeDelta::hours(1),
            sequence: 1,
            load_average_1m: None,
            agent_version: "bitsage-agent/0.1.0".into(),
            gpu_collector: Some(collector(true, Some(1.0))),
            gpu_samples: Vec::new(),
        })
        .await
        .unwrap();
    let text = String::from_utf8(send(&t.app, get("/metrics")).await.body).unwrap();
    assert!(!text.contains("bitsage_gpu_collector_up{"), "{text}");
}

#[tokio::test]
async fn an_invalid_collector_status_is_400_and_nothing_is_stored() {
    let t = app();
    let k = key(1);
    register_with(&t, &k, "gpu-node", vec![h100("GPU-5555")]).await;
    for bad in [
        collector(true, Some(-1.0)),
        GpuCollectorStatus {
            last_error: Some("x".repeat(4096)),
            ..collector(false, None)
        },
        GpuCollectorStatus {
            source: String::new(),
            ..collector(true, None)
        },
    ] {
        let beat = beat_with(&k, "gpu-node", 1, vec![])
            .with_gpu_collector(bad)
            .sign(&k);
        let body = serde_json::to_vec(&beat).unwrap();
        let r = send(&t.app, post_raw("/api/nodes/heartbeat", body)).await;
        assert!(
            r.status.is_client_error(),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert!(t
        .store
        .last_seen(&node_id("gpu-node"))
        .await
        .unwrap()
        .is_none());
}
