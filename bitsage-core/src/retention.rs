//! Retention and downsampling: how long each kind of data is kept. Raw heartbeats and GPU
//! samples are kept for days; before raw GPU samples go, they are rolled up into one row per
//! device and minute (min / avg / max of each metric), kept for a year beside the per-minute
//! heartbeat rollup uptime is computed from. Job timings and reputation facts are kept past
//! the windows that read them; proofs as long as configured (by default as long as their
//! receipts, which are never deleted).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gpu::GpuSample;
use crate::ids::NodeId;
use crate::time::Timestamp;

const DAY: u64 = 86_400;

/// How long each kind of data is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Raw heartbeats (default 7 days); the per-minute rollup stays.
    pub raw_heartbeats: Duration,
    /// Raw GPU samples (default 7 days); rolled up per minute before they go.
    pub raw_gpu_samples: Duration,
    /// Per-minute rollups of heartbeats and GPU samples (default 365 days).
    pub minute_rollups: Duration,
    /// Job timings (default 30 days; latency reads 48 h, reputation 14 days).
    pub job_timings: Duration,
    /// Reputation facts (default 30 days; reputation reads 14).
    pub node_facts: Duration,
    /// Proof envelopes (`None`, the default: as long as their receipts, i.e. kept).
    pub proofs: Option<Duration>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            raw_heartbeats: Duration::from_secs(7 * DAY),
            raw_gpu_samples: Duration::from_secs(7 * DAY),
            minute_rollups: Duration::from_secs(365 * DAY),
            job_timings: Duration::from_secs(30 * DAY),
            node_facts: Duration::from_secs(30 * DAY),
            proofs: None,
        }
    }
}

impl RetentionPolicy {
    /// The cutoffs at `now`: everything before a cutoff goes.
    pub fn cutoffs(&self, now: Timestamp) -> RetentionCutoffs {
        let before = |d: Duration| {
            chrono::TimeDelta::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or_else(crate::time::earliest)
        };
        RetentionCutoffs {
            raw_heartbeats: before(self.raw_heartbeats),
            raw_gpu_samples: before(self.raw_gpu_samples),
            minute_rollups: before(self.minute_rollups),
            job_timings: before(self.job_timings),
            node_facts: before(self.node_facts),
        }
    }
}

/// Times before which each kind of telemetry is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// Raw heartbeats.
    pub raw_heartbeats: Timestamp,
    /// Raw GPU samples (rolled up first).
    pub raw_gpu_samples: Timestamp,
    /// Per-minute rollups (by the minute's start).
    pub minute_rollups: Timestamp,
    /// Job timings (by completion).
    pub job_timings: Timestamp,
    /// Reputation facts.
    pub node_facts: Timestamp,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// Raw heartbeats deleted.
    pub heartbeats: u64,
    /// Raw GPU samples rolled up and deleted.
    pub gpu_samples: u64,
    /// Per-minute rollup rows deleted.
    pub rollups: u64,
    /// Job timings deleted.
    pub job_timings: u64,
    /// Reputation facts deleted.
    pub node_facts: u64,
    /// Proof envelopes deleted.
    pub proofs: u64,
}

/// Min, max, sum and count of one metric over a minute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stat {
    /// Smallest reading.
    pub min: f64,
    /// Largest reading.
    pub max: f64,
    /// Sum of the readings.
    pub sum: f64,
    /// How many readings.
    pub n: u64,
}

impl Stat {
    fn of(v: f64) -> Self {
        Self {
            min: v,
            max: v,
            sum: v,
            n: 1,
        }
    }

    fn merge(&mut self, o: &Stat) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.n += o.n;
    }

    /// The mean.
    pub fn avg(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
}

/// One device's readings over one UTC minute, downsampled: per metric min / avg / max
/// (a metric the device never reported is absent, not zero).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuMinute {
    /// The node.
    pub node_id: NodeId,
    /// The device.
    pub uuid: String,
    /// The minute ([`crate::node::minute_of`]).
    pub minute: i64,
    /// Samples rolled up.
    pub samples: u64,
    /// Per metric (`gpu_utilization_ratio`, `memory_utilization_ratio`,
    /// `memory_used_bytes`, `temperature_celsius`, `power_watts`, `sm_clock_hz`).
    pub metrics: BTreeMap<String, Stat>,
}

impl GpuMinute {
    /// Adds `other` (same node, device and minute) into this one.
    pub fn merge(&mut self, other: &GpuMinute) {
        self.samples += other.samples;
        for (k, s) in &other.metrics {
            self.metrics
                .entry(k.clone())
                .and_modify(|m| m.merge(s))
                .or_insert(*s);
        }
    }
}

/// The metrics rolled up, read from a sample (absent ones skipped).
fn metrics_of(s: &GpuSample) -> impl Iterator<Item = (&'static str, f64)> {
    [
        ("gpu_utilization_ratio", s.gpu_utilization_ratio),
        ("memory_utilization_ratio", s.memory_utilization_ratio),
        ("memory_used_bytes", s.memory_used_bytes.map(|v| v as f64)),
        ("temperature_celsius", s.temperature_celsius),
        ("power_watts", s.power_watts),
        ("sm_clock_hz", s.sm_clock_hz.map(|v| v as f64)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.filter(|v| v.is_finite()).map(|v| (k, v)))
}

/// Rolls `samples` up into one [`GpuMinute`] per node, device and minute.
pub fn roll_up<'a>(
    samples: impl IntoIterator<Item = (&'a NodeId, &'a GpuSample)>,
) -> Vec<GpuMinute> {
    let mut out: BTreeMap<(NodeId, String, i64), GpuMinute> = BTreeMap::new();
    for (node, s) in samples {
        let minute = crate::node::minute_of(s.at);
        let m = out
            .entry((node.clone(), s.uuid.clone(), minute))
            .or_insert_with(|| GpuMinute {
                node_id: node.clone(),
                uuid: s.uuid.clone(),
                minute,
                samples: 0,
                metrics: BTreeMap::new(),
            });
        m.samples += 1;
        for (k, v) in metrics_of(s) {
            m.metrics
                .entry(k.to_string())
                .and_modify(|st| st.merge(&Stat::of(v)))
                .or_insert_with(|| Stat::of(v));
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn samples_roll_up_per_device_and_minute_with_min_avg_max() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let node = NodeId::parse("n1").unwrap();
        let sample = |secs: i64, util: Option<f64>| {
            let mut s = GpuSample::empty("GPU-0", t0 + chrono::TimeDelta::seconds(secs));
            s.gpu_utilization_ratio = util;
            s
        };
        let samples = [
            sample(0, Some(0.2)),
            sample(30, Some(0.6)),
            sample(59, None),
            sample(60, Some(1.0)),
        ];
        let r = roll_up(samples.iter().map(|s| (&node, s)));
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].samples, 3);
        let u = r[0].metrics["gpu_utilization_ratio"];
        assert_eq!((u.min, u.max, u.n), (0.2, 0.6, 2));
        assert!((u.avg() - 0.4).abs() < 1e-12);
        assert!(
            !r[0].metrics.contains_key("power_watts"),
            "never reported: absent"
        );
        let mut a = r[0].clone();
        a.merge(&r[0]);
        assert_eq!(a.samples, 6);
        assert_eq!(a.metrics["gpu_utilization_ratio"].n, 4);
    }
}
