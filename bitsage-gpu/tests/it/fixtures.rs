//! The data path, with the synthetic fixture (feature `test-utils`): conformance, absent
//! metrics, replay, Prometheus rendering and the sampler.
#![cfg(feature = "test-utils")]

use std::sync::Arc;

use bitsage_core::conformance::gpu::run_all;
use bitsage_core::gpu::{DeviceState, GpuTier};
use bitsage_core::{Error, GpuSource};
use bitsage_gpu::prometheus::{render, NodeGpuMetrics};
use bitsage_gpu::{
    FixtureGpuSource, GpuReport, GpuSampler, GpuStatus, HostOnlySource, SamplerConfig,
};

#[tokio::test]
async fn the_synthetic_fixture_passes_the_conformance_suite() {
    let src = FixtureGpuSource::synthetic_2xh100().unwrap();
    run_all(&src).await;
    let inv = src.inventory().await.unwrap();
    assert_eq!(inv.devices.len(), 2);
    assert!(inv
        .devices
        .iter()
        .all(|d| d.tier == Some(GpuTier::Frontier) && d.state == DeviceState::Ok));
}

#[tokio::test]
async fn absent_metrics_stay_absent_through_replay_json_and_prometheus() {
    let src = FixtureGpuSource::synthetic_2xh100().unwrap();
    let samples = src.sample().await.unwrap();
    let idle = samples
        .iter()
        .find(|s| s.uuid.ends_with("000000000001"))
        .unwrap();
    assert_eq!(idle.energy_joules_total, None);
    assert_eq!(idle.pcie_tx_bytes_per_second, None);
    assert_eq!(idle.ecc_corrected_total, None);
    assert_eq!(idle.xid_events, None);
    // A measured zero is not an absence.
    assert_eq!(idle.gpu_utilization_ratio, Some(0.0));

    // `gpu --json` of a fixture: absent stays null, and the text reads back the same.
    let report = GpuReport::collect(&src).await;
    assert_eq!(report.status, GpuStatus::Ok);
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["samples"][1]["energy_joules_total"].is_null());
    let again = FixtureGpuSource::from_json(&json.to_string()).unwrap();
    run_all(&again).await;

    let inv = src.inventory().await.unwrap();
    let text = render(&[NodeGpuMetrics {
        node: "node-a",
        inventory: Some(&inv),
        samples: &samples,
        collector: None,
    }]);
    let idle_series = |family: &str| {
        text.lines()
            .any(|l| l.starts_with(family) && l.contains("000000000001\""))
    };
    assert!(idle_series("bitsage_gpu_power_watts{"));
    assert!(idle_series("bitsage_gpu_utilization_ratio{"));
    assert!(!idle_series("bitsage_gpu_energy_joules_total{"));
    assert!(!idle_series("bitsage_gpu_pcie_tx_bytes_per_second{"));
    assert!(!idle_series("bitsage_gpu_ecc_errors_total{"));
    assert!(!idle_series("bitsage_gpu_xid_events{"));
    assert!(!idle_series("bitsage_gpu_mig_enabled{"));
}

#[tokio::test]
async fn replay_cycles_frames_and_restamps_samples() {
    let base: GpuReport = serde_json::from_str(bitsage_gpu::SYNTHETIC_2XH100).unwrap();
    let mut second = base.clone();
    second.samples[0].power_watts = Some(100.0);
    // One report per line, as repeated `gpu --json` runs would record them.
    let lines = [&base, &second]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let src = FixtureGpuSource::from_json(&lines).unwrap();
    let watts = |s: &[bitsage_core::gpu::GpuSample]| s[0].power_watts;
    let a = src.sample().await.unwrap();
    let b = src.sample().await.unwrap();
    let c = src.sample().await.unwrap();
    assert_eq!(watts(&a), Some(512.37));
    assert_eq!(watts(&b), Some(100.0));
    assert_eq!(watts(&c), Some(512.37));
    assert!(
        a[0].at > base.samples[0].at,
        "samples are stamped with the replay time"
    );
}

#[tokio::test]
async fn a_recorded_unavailable_report_replays_as_unavailable() {
    let report =
        GpuReport::collect(&HostOnlySource::new("nvml", "libnvidia-ml.so.1: not found")).await;
    let src = FixtureGpuSource::from_json(&serde_json::to_string(&report).unwrap()).unwrap();
    run_all(&src).await;
    match src.sample().await {
        Err(Error::Unavailable { reason, .. }) => assert!(reason.contains("libnvidia-ml")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_fixtures_are_rejected() {
    assert!(matches!(
        FixtureGpuSource::from_json("[]"),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        FixtureGpuSource::from_json("{not json"),
        Err(Error::Invalid { .. })
    ));
    let mut r: GpuReport = serde_json::from_str(bitsage_gpu::SYNTHETIC_2XH100).unwrap();
    r.gpus.pop();
    assert!(matches!(
        FixtureGpuSource::from_reports(vec![r]),
        Err(Error::Invalid { .. })
    ));
    assert!(FixtureGpuSource::from_file("/nonexistent/fixture.json").is_err());
}

#[tokio::test]
async fn the_sampler_serves_fixture_readings_for_prometheus() {
    let src = Arc::new(FixtureGpuSource::synthetic_2xh100().unwrap());
    let sampler = GpuSampler::idle(src, SamplerConfig::default());
    sampler.refresh().await;
    let snap = sampler.snapshot();
    assert!(snap.up);
    assert_eq!(snap.samples.as_ref().map(|s| s.len()), Some(2));
    let text = render(&[bitsage_gpu::prometheus::from_snapshot("node-a", &snap)]);
    assert_eq!(text.matches("bitsage_gpu_info{").count(), 2);
    assert!(text.contains("bitsage_gpu_collector_up{node=\"node-a\"} 1\n"));
    assert!(text.contains("bitsage_gpu_collector_samples_total{node=\"node-a\"} 1\n"));
}
