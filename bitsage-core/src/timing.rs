//! How long jobs take: per completed job its queue wait, run time (last lease → completion)
//! and verification time, and exact percentiles over a set of them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, NodeId};
use crate::time::{TimeWindow, Timestamp};

/// Most timings one query returns (the newest ones).
pub const MAX_TIMINGS: u32 = 100_000;

/// The timings of one completed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTiming {
    /// The job.
    pub job_id: JobId,
    /// The node that completed it.
    pub node_id: NodeId,
    /// The job kind's name.
    pub kind: String,
    /// The node's region when it completed the job.
    pub region: Option<String>,
    /// When the coordinator accepted the result.
    pub completed_at: Timestamp,
    /// Submission → the lease that completed it (earlier failed attempts included).
    pub queue_wait: Duration,
    /// That lease → completion: the node's proving and hand-in time.
    pub run: Duration,
    /// The coordinator's verification of the proof.
    pub verify: Duration,
}

impl JobTiming {
    /// The timing of `job` (as it was while leased) completed at `completed_at` after a
    /// verification of `verify`, by a node in `region`. `None` when the job holds no lease.
    pub fn of(
        job: &crate::job::JobRecord,
        completed_at: Timestamp,
        verify: Duration,
        region: Option<String>,
    ) -> Option<Self> {
        let lease = job.lease.as_ref()?;
        let span = |from: Timestamp, to: Timestamp| (to - from).to_std().unwrap_or_default();
        Some(Self {
            job_id: job.spec.id,
            node_id: lease.node_id.clone(),
            kind: job.spec.kind.name().to_string(),
            region,
            completed_at,
            queue_wait: span(job.submitted_at, lease.leased_at),
            run: span(lease.leased_at, completed_at),
            verify,
        })
    }
}

/// Which timings to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimingFilter {
    /// Jobs completed in this window.
    pub window: TimeWindow,
    /// Only jobs completed by this node.
    pub node: Option<NodeId>,
    /// Only jobs completed in this region.
    pub region: Option<String>,
    /// At most this many (newest first), ≤ [`MAX_TIMINGS`].
    pub limit: u32,
}

impl TimingFilter {
    /// Every job completed in `window` (up to [`MAX_TIMINGS`]).
    pub fn window(window: TimeWindow) -> Self {
        Self {
            window,
            node: None,
            region: None,
            limit: MAX_TIMINGS,
        }
    }

    /// Whether `t` passes the filter (the in-memory store's rule).
    pub fn matches(&self, t: &JobTiming) -> bool {
        self.window.contains(t.completed_at)
            && self.node.as_ref().is_none_or(|n| *n == t.node_id)
            && self
                .region
                .as_ref()
                .is_none_or(|r| t.region.as_ref() == Some(r))
    }
}

/// p50 / p95 / p99 of a set of durations, milliseconds, by nearest rank (each is a value of
/// the set); `null` when the set is empty.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Percentiles {
    /// How many values.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
}

impl Percentiles {
    /// The percentiles of `values` (sorted here).
    pub fn of(mut values: Vec<Duration>) -> Self {
        values.sort_unstable();
        let at = |p: u64| -> Option<f64> {
            let n = values.len() as u64;
            if n == 0 {
                return None;
            }
            // Nearest rank: the smallest value with at least p % of the set at or below it.
            let rank = (p * n).div_ceil(100).max(1);
            values
                .get((rank - 1) as usize)
                .map(|d| d.as_secs_f64() * 1e3)
        };
        Self {
            count: values.len() as u64,
            p50_ms: at(50),
            p95_ms: at(95),
            p99_ms: at(99),
        }
    }
}

/// Percentiles of each phase of a set of jobs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Latency {
    /// Last lease → completion (what the node's speed decides): the latency shown.
    pub run: Percentiles,
    /// Submission → the lease that completed it.
    pub queue_wait: Percentiles,
    /// The coordinator's proof verification.
    pub verify: Percentiles,
}

impl Latency {
    /// The percentiles of `timings`.
    pub fn of<'a>(timings: impl IntoIterator<Item = &'a JobTiming> + Clone) -> Self {
        let phase = |f: fn(&JobTiming) -> Duration| {
            Percentiles::of(timings.clone().into_iter().map(f).collect())
        };
        Self {
            run: phase(|t| t.run),
            queue_wait: phase(|t| t.queue_wait),
            verify: phase(|t| t.verify),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |v: u64| Duration::from_millis(v);
        // 1..=100 ms: p50 = 50, p95 = 95, p99 = 99.
        let p = Percentiles::of((1..=100).rev().map(ms).collect());
        assert_eq!(p.count, 100);
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.p99_ms),
            (Some(50.0), Some(95.0), Some(99.0))
        );
        // Three values: p50 the 2nd, p95 and p99 the 3rd.
        let p = Percentiles::of(vec![ms(30), ms(10), ms(20)]);
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.p99_ms),
            (Some(20.0), Some(30.0), Some(30.0))
        );
        let empty = Percentiles::of(Vec::new());
        assert_eq!(
            (empty.count, empty.p50_ms, empty.p99_ms),
            (0, None, None),
            "no value is n/a, not 0"
        );
    }
}
