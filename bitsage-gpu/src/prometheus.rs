//! Prometheus text of GPU readings: the rendering lives in [`bitsage_core::prometheus`] (a pure
//! function over the domain's GPU types); this module adds the conversion from a
//! [`SamplerSnapshot`] for the agent's collector.

pub use bitsage_core::prometheus::*;

use crate::sampler::SamplerSnapshot;

/// One node's metrics from a [`SamplerSnapshot`]. Samples are rendered only while the
/// collector is up: a stale reading is not exported as current (its age is, in the collector
/// series).
pub fn from_snapshot<'a>(node: &'a str, snap: &'a SamplerSnapshot) -> NodeGpuMetrics<'a> {
    let samples = match (&snap.samples, snap.up) {
        (Some(s), true) => s.as_slice(),
        _ => &[],
    };
    NodeGpuMetrics {
        node,
        inventory: snap.inventory.as_deref(),
        samples,
        collector: Some(snap.collector_status()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitsage_core::gpu::GpuSample;
    use bitsage_core::time::now;

    fn sample() -> GpuSample {
        let mut s = GpuSample::empty("GPU-aaaa", now());
        s.power_watts = Some(312.5);
        s
    }

    #[test]
    fn a_down_collector_exports_health_only() {
        let snap = SamplerSnapshot {
            source: "nvml",
            inventory: None,
            samples: Some(std::sync::Arc::new(vec![sample()])),
            taken_at: None,
            age: Some(std::time::Duration::from_secs(90)),
            up: false,
            last_error: Some("timed out".into()),
            errors_total: 7,
            samples_total: 1,
            host: None,
            host_error: None,
        };
        let text = render(&[from_snapshot("n", &snap)]);
        assert!(!text.contains("bitsage_gpu_power_watts"), "{text}");
        assert!(text.contains("bitsage_gpu_collector_up{node=\"n\"} 0\n"));
        assert!(text.contains("bitsage_gpu_collector_last_sample_age_seconds{node=\"n\"} 90\n"));
        assert!(text.contains("bitsage_gpu_collector_sample_errors_total{node=\"n\"} 7\n"));
    }
}
