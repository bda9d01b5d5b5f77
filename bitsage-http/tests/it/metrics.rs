//! `/metrics` and the GPU samples heartbeats carry: per-GPU series from real reports only,
//! stale readings not exported as current, invalid or foreign samples refused; the
//! coordinator's own families after real traffic (requests by route template, heartbeats,
//! verified and rejected proofs, fraud, live connections, 429s, CPU-only nodes), both formats,
//! and the 0.0.4 body through `promtool check metrics` (skipped without promtool, except under
//! `CI=true`).

use crate::common;

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

// ------------------------------------------------------------ the coordinator's own families

/// Pipes a `/metrics` body through `promtool check metrics` (Prometheus 2.42's linter). Without
/// promtool the check is skipped with the reason — except under `CI=true`, where it fails.
fn promtool_check(body: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("promtool check metrics skipped: cannot run `{promtool}`: {e}");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{reason} (CI=true: the check must run; install the `prometheus` package)"
            );
            eprintln!("{reason}");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- body ---\n{body}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The body of `GET /metrics` (admin), asserting 200 and the 0.0.4 content type.
async fn scrape(app: &axum::Router) -> String {
    let r = send(app, get("/metrics")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    String::from_utf8(r.body).expect("utf-8")
}

/// The value of `series` (a name and its exact label set) in `text`.
fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn the_coordinator_families_follow_real_traffic_and_pass_promtool() {
    let t = app();
    // A GPU node that heartbeats, a CPU-only node whose agent reports a host-only collector,
    // and a worker that passes its probe, then submits a tampered proof.
    let gk = key(1);
    register_with(&t, &gk, "gpu-node", vec![h100("GPU-7777")]).await;
    let beat = beat_with(&gk, "gpu-node", 1, vec![reading("GPU-7777")])
        .with_gpu_collector(collector(true, Some(0.5)))
        .sign(&gk);
    assert_eq!(
        send(&t.app, post_json("/api/nodes/heartbeat", &beat))
            .await
            .status,
        StatusCode::OK
    );
    let ck = key(2);
    register_with(&t, &ck, "cpu-node", vec![]).await;
    let host_only = GpuCollectorStatus {
        source: bitsage_core::gpu::HOST_ONLY_SOURCE.into(),
        up: false,
        last_error: None,
        samples_total: 0,
        sample_errors_total: 0,
        last_sample_age_seconds: None,
    };
    let beat = beat_with(&ck, "cpu-node", 1, vec![])
        .with_gpu_collector(host_only)
        .sign(&ck);
    assert_eq!(
        send(&t.app, post_json("/api/nodes/heartbeat", &beat))
            .await
            .status,
        StatusCode::OK
    );

    let wk = key(3);
    register(&t.app, &wk, "worker").await;
    let probe = lease(&t, &wk, "worker")
        .await
        .assignment
        .expect("an assignment");
    let env = prove(probe.spec());
    let r = send(
        &t.app,
        post_json(
            "/api/jobs/complete",
            &probe_completion(&wk, "worker", &probe, env),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let job = submission(
        bitsage_core::JobKind::Poseidon2Chain {
            seed: 9,
            length: 64,
        },
        1000,
        Some(2),
    );
    assert_eq!(
        send(&t.app, post_json("/api/jobs", &job)).await.status,
        StatusCode::CREATED
    );
    let work = lease(&t, &wk, "worker")
        .await
        .assignment
        .expect("an assignment");
    let mut env = prove(work.spec());
    let mid = env.proof.len() / 2;
    env.proof[mid] ^= 0x01;
    send(
        &t.app,
        post_json(
            "/api/jobs/complete",
            &job_completion(&wk, "worker", &work, env, |_| {}),
        ),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "proof_rejected");

    // A templated route and a path no route matches.
    assert_eq!(
        send(&t.app, get("/api/nodes/gpu-node")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&t.app, get("/no/such/route")).await.status,
        StatusCode::NOT_FOUND
    );
    // A live stream is open while its body is.
    let sse = tower::ServiceExt::oneshot(t.app.clone(), get("/api/events"))
        .await
        .expect("infallible");
    assert_eq!(sse.status(), StatusCode::OK);

    let text = scrape(&t.app).await;
    let has = |line: &str| text.lines().any(|l| l == line);
    let value = |series: &str| value_of(&text, series);

    // The build and the process.
    let build = text
        .lines()
        .find(|l| l.starts_with("bitsage_build_info{"))
        .expect("build info");
    assert!(
        build.starts_with(&format!(
            "bitsage_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )) && build.contains(",target_cpu=\"")
            && build.ends_with("} 1"),
        "{build}"
    );
    assert!(has("# TYPE bitsage_build_info gauge"));
    assert!(value("bitsage_process_start_time_seconds").is_some_and(|v| v > 1.6e9));

    // Every request, by route template (never the raw path), method and status.
    assert!(
        has("# TYPE bitsage_dashboard_requests_total counter"),
        "{text}"
    );
    assert!(
        value("bitsage_dashboard_requests_total{route=\"/api/nodes/{id}\",method=\"GET\",status=\"200\"}")
            == Some(1.0),
        "{text}"
    );
    assert!(
        value("bitsage_dashboard_requests_total{route=\"/api/nodes/heartbeat\",method=\"POST\",status=\"200\"}")
            == Some(2.0),
        "{text}"
    );
    assert!(
        value("bitsage_dashboard_requests_total{route=\"/api/jobs/complete\",method=\"POST\",status=\"422\"}")
            == Some(1.0),
        "{text}"
    );
    assert!(
        value(
            "bitsage_dashboard_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
        ) == Some(1.0),
        "{text}"
    );
    assert!(!text.contains("route=\"/api/nodes/gpu-node\""), "{text}");
    assert!(!text.contains("/no/such/route"), "{text}");
    assert!(has(
        "# TYPE bitsage_dashboard_request_duration_seconds histogram"
    ));
    assert!(
        value("bitsage_dashboard_request_duration_seconds_count{route=\"/api/nodes/{id}\",method=\"GET\"}")
            == Some(1.0),
        "{text}"
    );
    assert!(text.contains(
        "bitsage_dashboard_request_duration_seconds_bucket{route=\"/api/nodes/{id}\",method=\"GET\",le=\"+Inf\"} 1"
    ));

    // Heartbeats (counted by the heartbeat use case) and the interval agents are told.
    assert!(has("# TYPE bitsage_worker_heartbeats_total counter"));
    assert_eq!(
        value("bitsage_worker_heartbeats_total{outcome=\"accepted\"}"),
        Some(2.0)
    );
    assert_eq!(
        value("bitsage_worker_heartbeats_total{outcome=\"rejected\"}"),
        Some(0.0)
    );
    assert_eq!(value("bitsage_heartbeat_interval_seconds"), Some(10.0));

    // Nodes and jobs from the store.
    assert_eq!(
        value("bitsage_nodes{status=\"quarantined\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value("bitsage_nodes{status=\"pending\"}"), Some(2.0));
    assert_eq!(value("bitsage_active_workers"), Some(0.0));
    assert_eq!(
        value("bitsage_jobs{status=\"queued\"}"),
        Some(1.0),
        "{text}"
    );

    // Verification: the probe verified, the tampered proof rejected and the node caught.
    assert_eq!(value("bitsage_proofs_verified_total"), Some(1.0), "{text}");
    assert_eq!(
        value("bitsage_proofs_rejected_total{reason=\"invalid_proof\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("bitsage_proofs_rejected_total{reason=\"receipt_mismatch\"}"),
        Some(0.0)
    );
    assert_eq!(
        value("bitsage_proof_verification_duration_seconds_count"),
        Some(2.0)
    );
    assert!(has(
        "# TYPE bitsage_proof_verification_duration_seconds histogram"
    ));
    assert!(text.contains("bitsage_proof_verification_duration_seconds_bucket{le=\"0.001\"} "));
    assert!(
        text.contains("bitsage_proof_verification_duration_seconds_bucket{le=\"30\"} 2"),
        "{text}"
    );
    assert_eq!(
        value("bitsage_verification_outcomes_total{node=\"worker\",outcome=\"verified\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("bitsage_verification_outcomes_total{node=\"worker\",outcome=\"rejected\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("bitsage_fraud_detected_total{reason=\"invalid_proof\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("bitsage_fraud_detected_total{reason=\"bad_signature\"}"),
        Some(0.0)
    );

    // Settlement: nothing completed, nothing settled.
    assert_eq!(value("bitsage_settlement_backlog_receipts"), Some(0.0));
    assert_eq!(
        value("bitsage_settlement_epochs{state=\"accepted\"}"),
        Some(0.0)
    );
    assert_eq!(
        value("bitsage_settlement_epochs{state=\"pending\"}"),
        Some(0.0)
    );

    // No chain here: the chain's series are absent, never 0.
    for absent in [
        "bitsage_indexer_block_height",
        "bitsage_indexer_lag_blocks",
        "bitsage_total_staked",
    ] {
        assert!(!text.contains(absent), "{absent}:\n{text}");
    }

    // Live connections, rate limiting (off in this app), uptime.
    assert_eq!(
        value("bitsage_websocket_subscribers{transport=\"sse\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("bitsage_websocket_subscribers{transport=\"ws\"}"),
        Some(0.0)
    );
    assert_eq!(
        value("bitsage_rate_limit_rejections_total{scope=\"status\"}"),
        Some(0.0)
    );
    assert_eq!(
        value("bitsage_node_uptime_ratio{node=\"gpu-node\"}"),
        Some(1.0),
        "{text}"
    );

    // The CPU-only node: `cpu_only`, and no `up`/error series an alert could fire on.
    assert_eq!(
        value("bitsage_gpu_collector_cpu_only{node=\"cpu-node\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("collector_up{node=\"cpu-node\"}"), "{text}");
    assert!(
        !text.contains("sample_errors_total{node=\"cpu-node\"}"),
        "{text}"
    );
    assert_eq!(
        value("bitsage_gpu_collector_up{node=\"gpu-node\"}"),
        Some(1.0)
    );
    assert!(!text.contains("cpu_only{node=\"gpu-node\"}"));

    promtool_check(&text);

    // The stream closed: no longer counted.
    drop(sse);
    let text = scrape(&t.app).await;
    assert_eq!(
        value_of(&text, "bitsage_websocket_subscribers{transport=\"sse\"}"),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_scraper_that_asks_for_openmetrics_gets_it() {
    let t = app();
    register_with(&t, &key(1), "gpu-node", vec![h100("GPU-8888")]).await;
    let req = axum::http::Request::get("/metrics")
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let r = send(&t.app, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    // OpenMetrics names a counter family without `_total`; its samples keep it.
    assert!(
        text.contains("# TYPE bitsage_dashboard_requests counter\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE bitsage_proofs_verified counter\n"));
    assert!(text.contains("\nbitsage_proofs_verified_total 0\n"));
    assert!(text.contains("bitsage_gpu_info{node=\"gpu-node\",uuid=\"GPU-8888\""));
    // Each family is declared once.
    let mut types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let n = types.len();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), n, "{text}");
}

#[tokio::test]
async fn every_429_is_counted_by_its_scope() {
    use bitsage_http::ratelimit::RateLimits;
    let store = std::sync::Arc::new(bitsage_store::InMemoryStore::new());
    let state = bitsage_http::AppState::new(
        store.clone(),
        std::sync::Arc::new(bitsage_prover::StwoProver::new()),
        std::sync::Arc::new(bitsage_store::InMemoryProofStore::new()),
        bitsage_core::deployment::DeploymentKey::new(SigningKey::from_bytes(&[42; 32]), "test")
            .expect("deployment key"),
        bitsage_http::HttpConfig {
            rate_limits: RateLimits {
                status_per_min: 2,
                ..RateLimits::default()
            },
            ..bitsage_http::HttpConfig::default()
        },
    );
    let token = admin_token(&state).await;
    let app = as_user(bitsage_http::router(state), &token);
    let mut refused = 0;
    for _ in 0..4 {
        if send(&app, get("/livez")).await.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert_eq!(refused, 2);
    let text = scrape(&app).await;
    assert_eq!(
        value_of(
            &text,
            "bitsage_rate_limit_rejections_total{scope=\"status\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            "bitsage_rate_limit_rejections_total{scope=\"analytics\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        value_of(
            &text,
            "bitsage_dashboard_requests_total{route=\"/livez\",method=\"GET\",status=\"429\"}"
        ),
        Some(2.0),
        "{text}"
    );
    promtool_check(&text);
}
