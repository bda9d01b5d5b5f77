//! What operators watch a fleet with: a node's uptime over 24 h, 7 d and 30 d (counted from
//! its registration, from the per-minute heartbeat rollup) and its job latency percentiles;
//! the network's KPIs over the last 24 h against the 24 h before (active nodes, p95 latency
//! globally and by region, job kinds served, jobs), and hourly trends. Pure reads over the
//! store ports.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::node::{NodeRecord, Uptime};
use crate::ports::{JobStore, JobStoreExt as _};
use crate::time::{TimeWindow, Timestamp};
use crate::timing::{JobTiming, Latency, Percentiles, TimingFilter, MAX_TIMINGS};
use crate::{NodeStatus, Result};

/// The region name timings of nodes without a configured region are grouped under.
pub const UNASSIGNED_REGION: &str = "unassigned";

/// A node's uptime and latency, for its detail view and the operator's node list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeOperations {
    /// Uptime over the last 24 hours.
    pub uptime_24h: Uptime,
    /// Uptime over the last 7 days.
    pub uptime_7d: Uptime,
    /// Uptime over the last 30 days.
    pub uptime_30d: Uptime,
    /// Percentiles of the jobs it completed in the last 24 hours.
    pub latency_24h: Latency,
}

/// The window of `len` ending at `now`.
pub fn window_ending(now: Timestamp, len: TimeDelta) -> TimeWindow {
    TimeWindow {
        from: now.checked_sub_signed(len).unwrap_or(now),
        to: now,
    }
}

/// A node's [`NodeOperations`] at `now`.
pub async fn node_operations(
    store: &dyn JobStore,
    node: &NodeRecord,
    now: Timestamp,
) -> Result<NodeOperations> {
    let day = window_ending(now, TimeDelta::days(1));
    let timings = TimingFilter {
        node: Some(node.id.clone()),
        ..TimingFilter::window(day)
    };
    let (uptime_24h, uptime_7d, uptime_30d, timings) = futures::try_join!(
        store.uptime(node, day),
        store.uptime(node, window_ending(now, TimeDelta::days(7))),
        store.uptime(node, window_ending(now, TimeDelta::days(30))),
        store.job_timings(&timings),
    )?;
    Ok(NodeOperations {
        uptime_24h,
        uptime_7d,
        uptime_30d,
        latency_24h: Latency::of(&timings),
    })
}

/// A KPI over the last 24 h and the 24 h before.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kpi {
    /// Its value over the last 24 h (`null`: nothing to compute it from, e.g. no job).
    pub value: Option<f64>,
    /// Its value over the 24 h before.
    pub previous: Option<f64>,
    /// `value − previous` (`null` when either is).
    pub change: Option<f64>,
}

impl Kpi {
    fn of(value: Option<f64>, previous: Option<f64>) -> Self {
        Self {
            value,
            previous,
            change: value.zip(previous).map(|(v, p)| v - p),
        }
    }
}

/// Latency of the jobs completed in one region over the last 24 h.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegionLatency {
    /// The region ([`UNASSIGNED_REGION`] for nodes without one).
    pub region: String,
    /// Run-time percentiles (last lease → completion).
    pub run: Percentiles,
}

/// One hour of the 24-hour trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrendPoint {
    /// The hour's start.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub from: Timestamp,
    /// Jobs completed in it.
    pub jobs: u64,
    /// Their run-time p95, ms (`null` without jobs).
    pub p95_ms: Option<f64>,
    /// Nodes that heartbeated in it.
    pub nodes_up: u64,
}

/// The network's KPIs and trends (the console's Overview).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperationsSummary {
    /// The last 24 h.
    pub window: TimeWindow,
    /// Nodes in status `active` now.
    pub active_nodes: u64,
    /// Nodes that heartbeated in the window (and in the window before).
    pub nodes_up: Kpi,
    /// Run-time p95 of every job completed in the window, ms.
    pub p95_ms: Kpi,
    /// Distinct job kinds completed.
    pub job_kinds_served: Kpi,
    /// The kinds completed in the window.
    pub job_kinds: Vec<String>,
    /// Jobs completed.
    pub jobs: Kpi,
    /// Run-time percentiles by region over the window, by region name.
    pub by_region: Vec<RegionLatency>,
    /// Hour by hour over the window, oldest first.
    pub trend: Vec<TrendPoint>,
    /// `true` when a window held more than [`MAX_TIMINGS`] jobs and the figures are over
    /// its newest ones only.
    pub sampled: bool,
}

/// The whole minutes of `w` for counting nodes up: from the first minute starting in it
/// through the minute of its last instant, so adjacent windows never share a minute (the
/// boundary minute belongs to the earlier one).
fn minutes_of(w: TimeWindow) -> crate::node::MinuteRange {
    use crate::node::minute_of;
    let aligned = w.from.timestamp().rem_euclid(60) == 0 && w.from.timestamp_subsec_nanos() == 0;
    let first = minute_of(w.from) + i64::from(!aligned);
    if w.to <= w.from {
        return crate::node::MinuteRange {
            first,
            last: first - 1,
        };
    }
    crate::node::MinuteRange {
        first,
        last: minute_of(w.to - TimeDelta::microseconds(1)),
    }
}

/// The [`OperationsSummary`] at `now`.
pub async fn summary(store: &dyn JobStore, now: Timestamp) -> Result<OperationsSummary> {
    let day = window_ending(now, TimeDelta::days(1));
    let before = window_ending(day.from, TimeDelta::days(1));
    let minutes = minutes_of;
    let active_filter = crate::node::NodeFilter::status(NodeStatus::Active);
    let (recent_filter, earlier_filter) = (TimingFilter::window(day), TimingFilter::window(before));
    let hours: Vec<TimeWindow> = (0..24)
        .map(|h| {
            let from = day.from + TimeDelta::hours(h);
            TimeWindow {
                from,
                to: (from + TimeDelta::hours(1)).min(day.to),
            }
        })
        .collect();
    let (active, up_now, up_before, recent, earlier, up_by_hour) = futures::try_join!(
        store.count_nodes(&active_filter),
        store.nodes_heartbeating(minutes(day)),
        store.nodes_heartbeating(minutes(before)),
        store.job_timings(&recent_filter),
        store.job_timings(&earlier_filter),
        futures::future::try_join_all(hours.iter().map(|h| store.nodes_heartbeating(minutes(*h)))),
    )?;
    let sampled = recent.len() as u32 >= MAX_TIMINGS || earlier.len() as u32 >= MAX_TIMINGS;
    let p95 = |t: &[JobTiming]| Percentiles::of(t.iter().map(|t| t.run).collect()).p95_ms;
    let kinds = |t: &[JobTiming]| t.iter().map(|t| t.kind.clone()).collect::<BTreeSet<_>>();
    let (kinds_now, kinds_before) = (kinds(&recent), kinds(&earlier));
    let mut regions: BTreeMap<String, Vec<std::time::Duration>> = BTreeMap::new();
    for t in &recent {
        let r = t.region.clone().unwrap_or_else(|| UNASSIGNED_REGION.into());
        regions.entry(r).or_default().push(t.run);
    }
    let trend = hours
        .iter()
        .zip(up_by_hour)
        .map(|(hour, nodes_up)| {
            let runs: Vec<_> = recent
                .iter()
                .filter(|t| hour.contains(t.completed_at))
                .map(|t| t.run)
                .collect();
            TrendPoint {
                from: hour.from,
                jobs: runs.len() as u64,
                p95_ms: Percentiles::of(runs).p95_ms,
                nodes_up,
            }
        })
        .collect();
    Ok(OperationsSummary {
        window: day,
        active_nodes: active,
        nodes_up: Kpi::of(Some(up_now as f64), Some(up_before as f64)),
        p95_ms: Kpi::of(p95(&recent), p95(&earlier)),
        job_kinds_served: Kpi::of(
            Some(kinds_now.len() as f64),
            Some(kinds_before.len() as f64),
        ),
        job_kinds: kinds_now.into_iter().collect(),
        jobs: Kpi::of(Some(recent.len() as f64), Some(earlier.len() as f64)),
        by_region: regions
            .into_iter()
            .map(|(region, runs)| RegionLatency {
                region,
                run: Percentiles::of(runs),
            })
            .collect(),
        trend,
        sampled,
    })
}
