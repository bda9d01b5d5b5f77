//! `GET /metrics`: Prometheus text exposition (format 0.0.4) of what the coordinator knows.
//!
//! - Per-GPU series of every registered node (`bitsage_gpu_*`, rendered by
//!   [`bitsage_core::prometheus`]): identity from the node's hardware report, readings from the
//!   latest samples its heartbeats carried. Readings older than the stale threshold
//!   ([`MetricsConfig::fresh_for`]) are **not** exported as current; their age is, in
//!   `bitsage_node_gpu_sample_age_seconds`. A metric a device did not report has no series.
//! - The collector health each agent's latest heartbeat reported
//!   (`bitsage_gpu_collector_{up,last_sample_age_seconds,samples_total,sample_errors_total}`),
//!   while that heartbeat is fresh; the sample age includes the time since the heartbeat.
//! - Coordinator series: `bitsage_nodes{status}`, `bitsage_jobs{status}` (gauges read from the
//!   store at scrape time).
//!
//! A store failure answers 503 in the API error shape (a scrape with made-up or partial
//! numbers would be worse than a failed scrape, which Prometheus records as `up == 0`).

use std::fmt::Write as _;
use std::time::Duration;

use bitsage_core::gpu::{GpuCollectorStatus, GpuInventory, GpuSample, ReportedCollector};
use bitsage_core::job::JobFilter;
use bitsage_core::node::NodeFilter;
use bitsage_core::prometheus::{escape_label_value, render_into, NodeGpuMetrics};
use bitsage_core::{JobStatus, JobStoreExt as _, NodeStatus, Timestamp};

use crate::error::ApiResult;
use crate::AppState;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How fresh a reading must be to be exported as current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Readings older than this are left out (default: three heartbeat intervals).
    pub fresh_for: Duration,
}

impl MetricsConfig {
    /// Three heartbeat intervals of `state`.
    pub fn of(state: &AppState) -> Self {
        Self {
            fresh_for: state.policy().heartbeat_interval.saturating_mul(3),
        }
    }
}

fn age_secs(now: Timestamp, at: Timestamp) -> f64 {
    (now - at).num_milliseconds().max(0) as f64 / 1e3
}

/// A node's reported collector status as of `now`, or `None` when the heartbeat that carried
/// it is older than `fresh_for` (the node went quiet: its collector's health is unknown, and
/// `bitsage_node_gpu_sample_age_seconds` and `bitsage_nodes` tell the rest). The sample age
/// grows by the time since that heartbeat.
fn current_collector(
    reported: ReportedCollector,
    now: Timestamp,
    fresh_for: Duration,
) -> Option<GpuCollectorStatus> {
    let since = (now - reported.at).to_std().unwrap_or(Duration::ZERO);
    if since > fresh_for {
        return None;
    }
    let mut status = reported.status;
    status.last_sample_age_seconds = status
        .last_sample_age_seconds
        .map(|a| a + since.as_secs_f64());
    Some(status)
}

/// Renders the exposition at `now`.
pub async fn render(state: &AppState, now: Timestamp) -> ApiResult<String> {
    let config = MetricsConfig::of(state);
    let nodes = state.store.all_nodes(&NodeFilter::default()).await?;
    let mut samples: Vec<Vec<GpuSample>> = Vec::with_capacity(nodes.len());
    let mut collectors: Vec<Option<GpuCollectorStatus>> = Vec::with_capacity(nodes.len());
    for n in &nodes {
        samples.push(state.store.latest_gpu_samples(&n.id).await?);
        collectors.push(
            state
                .store
                .gpu_collector(&n.id)
                .await?
                .and_then(|c| current_collector(c, now, config.fresh_for)),
        );
    }
    let fresh_for = chrono::TimeDelta::from_std(config.fresh_for).unwrap_or(chrono::TimeDelta::MAX);
    let inventories: Vec<GpuInventory> = nodes
        .iter()
        .map(|n| GpuInventory {
            devices: n.hardware.gpus.clone(),
            driver_version: n.hardware.driver_version.clone(),
            cuda_version: n.hardware.cuda_version.clone(),
        })
        .collect();
    let fresh: Vec<Vec<GpuSample>> = samples
        .iter()
        .map(|s| {
            s.iter()
                .filter(|x| now - x.at <= fresh_for)
                .cloned()
                .collect()
        })
        .collect();
    let gpu_nodes: Vec<NodeGpuMetrics<'_>> = nodes
        .iter()
        .zip(&inventories)
        .zip(&fresh)
        .zip(collectors)
        .map(|(((n, inv), s), collector)| NodeGpuMetrics {
            node: n.id.as_str(),
            inventory: Some(inv),
            samples: s,
            collector,
        })
        .collect();
    let mut out = String::new();
    render_into(&mut out, &gpu_nodes);

    // Age of each node's newest reading (nodes that never sent one have no series).
    let _ = writeln!(
        out,
        "# HELP bitsage_node_gpu_sample_age_seconds Age of the newest GPU reading a node's heartbeats carried."
    );
    let _ = writeln!(out, "# TYPE bitsage_node_gpu_sample_age_seconds gauge");
    for (n, s) in nodes.iter().zip(&samples) {
        if let Some(newest) = s.iter().map(|x| x.at).max() {
            out.push_str("bitsage_node_gpu_sample_age_seconds{node=\"");
            escape_label_value(&mut out, n.id.as_str());
            let _ = writeln!(out, "\"}} {}", age_secs(now, newest));
        }
    }

    let _ = writeln!(
        out,
        "# HELP bitsage_nodes Registered nodes by lifecycle status."
    );
    let _ = writeln!(out, "# TYPE bitsage_nodes gauge");
    for status in NodeStatus::ALL {
        let count = nodes.iter().filter(|n| n.status == status).count();
        let _ = writeln!(out, "bitsage_nodes{{status=\"{status}\"}} {count}");
    }
    let _ = writeln!(out, "# HELP bitsage_jobs Jobs by queue status.");
    let _ = writeln!(out, "# TYPE bitsage_jobs gauge");
    for status in JobStatus::ALL {
        let filter = JobFilter {
            status: Some(status),
            node: None,
        };
        let total = state.store.count_jobs(&filter).await?;
        let _ = writeln!(out, "bitsage_jobs{{status=\"{status}\"}} {total}");
    }
    Ok(out)
}
