//! `GET /metrics`: what the coordinator knows, as Prometheus metrics encoded by the maintained
//! [`prometheus_client`] crate, named by the Prometheus conventions (base units, `_total`
//! counters, `_seconds` durations, bounded label values).
//!
//! **Formats.** A scraper that asks for OpenMetrics (`Accept: application/openmetrics-text`,
//! as Prometheus does by default) gets OpenMetrics 1.0 text (`# EOF`, counter families named
//! without `_total`); every other request gets the Prometheus text format 0.0.4
//! (`text/plain; version=0.0.4`). Both carry the same families and series. The 0.0.4 body is
//! the one `promtool check metrics` lints (promtool 2.42 parses only the classic format: it
//! reads an OpenMetrics counter's `_total` samples as an untyped family without help) and it
//! passes it; see [`Format::negotiate`].
//!
//! **Families** (this table is a contract with the alert rules and dashboards built on it):
//!
//! | family | type | labels | source |
//! |---|---|---|---|
//! | `bitsage_build_info` | gauge (1) | `version`, `commit`, `target_cpu` | the build ([`BuildInfo`]) |
//! | `bitsage_process_start_time_seconds` | gauge | — | when this process built its state (Unix seconds) |
//! | `bitsage_dashboard_requests_total` | counter | `route`, `method`, `status` | every HTTP request of the router ([`crate::layers::RequestMetricsLayer`]) |
//! | `bitsage_dashboard_request_duration_seconds` | histogram | `route`, `method` | the same, time to the response head |
//! | `bitsage_worker_heartbeats_total` | counter | `outcome` = `accepted` \| `rejected` | the core's [`Telemetry`] |
//! | `bitsage_heartbeat_interval_seconds` | gauge | — | the interval the coordinator tells agents now ([`bitsage_core::service::Coordinator::advertised_heartbeat_interval`]) |
//! | `bitsage_nodes` | gauge | `status` (every node status) | the store, at scrape time |
//! | `bitsage_active_workers` | gauge | — | the store: nodes in status `active` |
//! | `bitsage_jobs` | gauge | `status` (every job status) | the store, at scrape time |
//! | `bitsage_proofs_verified_total` | counter | — | [`Telemetry`]: completions whose proof was accepted |
//! | `bitsage_proofs_rejected_total` | counter | `reason` = `invalid_proof` \| `receipt_mismatch` \| `bad_receipt_signature` | [`Telemetry`] |
//! | `bitsage_proof_verification_duration_seconds` | histogram (1 ms … 30 s) | — | [`Telemetry`]: every verification with a verdict |
//! | `bitsage_verification_outcomes_total` | counter | `node`, `outcome` = `verified` \| `rejected` | [`Telemetry`] (at most 100,000 nodes, then `node="other"`) |
//! | `bitsage_fraud_detected_total` | counter | `reason` = `invalid_proof` \| `bad_signature` | [`Telemetry`]: nodes quarantined as cheats |
//! | `bitsage_settlement_backlog_receipts` | gauge | — | the store: receipts not yet in an accepted (settled) epoch |
//! | `bitsage_settlement_epochs` | gauge | `state` = `pending` \| `sent` \| `accepted` \| `failed` | the store ([`settlement_epochs`]) |
//! | `bitsage_indexer_block_height` | gauge | — | the chain indexer's cursor (absent without a chain) |
//! | `bitsage_indexer_lag_blocks` | gauge | — | the indexer: head − cursor at its last step (absent without a chain) |
//! | `bitsage_chain_rpc_duration_seconds` | histogram (5 ms … 30 s) | `method` (JSON-RPC method, `batch`) | every Starknet JSON-RPC call of this process ([`bitsage_core::telemetry::chain_rpc`]; absent before the first) |
//! | `bitsage_websocket_subscribers` | gauge | `transport` = `ws` \| `sse` | open live connections ([`crate::live::EventHub::connections`]; the console's SSE included) |
//! | `bitsage_rate_limit_rejections_total` | counter | `scope` (rate-limit class, [`RouteClass::name`]) | every 429 the limiter answered |
//! | `bitsage_node_uptime_ratio` | gauge | `node` | the store's per-minute rollup, last hour ([`UPTIME_MAX_NODES`] nodes at most) |
//! | `bitsage_total_staked` | gauge | — | [`Telemetry::total_staked`], whole SAGE as a float (absent when unknown) |
//! | `bitsage_node_gpu_sample_age_seconds` | gauge | `node` | age of the newest GPU reading a node's heartbeats carried |
//! | `bitsage_gpu_*` | gauges, counters | `node`, `uuid`, … | [`bitsage_core::prometheus`]: per-GPU series and collector health |
//!
//! Per-GPU series: identity from each node's hardware report, readings from the latest samples
//! its heartbeats carried. Readings older than the stale threshold
//! ([`MetricsConfig::fresh_for`]) are **not** exported as current; their age is, in
//! `bitsage_node_gpu_sample_age_seconds`. A metric a device did not report has no series. The
//! collector health each agent's latest heartbeat reported
//! (`bitsage_gpu_collector_{up,last_sample_age_seconds,samples_total,sample_errors_total}`) is
//! exported while that heartbeat is fresh; a node registered without GPUs exports
//! `bitsage_gpu_collector_cpu_only{node} 1` instead (never `up 0`).
//!
//! Not exported: `bitsage_indexer_lag_seconds` — the indexer does not read the chain head's
//! timestamp, so the lag is only known in blocks.
//!
//! A store failure answers 503 in the API error shape (a scrape with made-up or partial
//! numbers would be worse than a failed scrape, which Prometheus records as `up == 0`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use bitsage_core::gpu::{GpuCollectorStatus, GpuInventory, GpuSample, ReportedCollector};
use bitsage_core::job::JobFilter;
use bitsage_core::node::NodeFilter;
use bitsage_core::prometheus::{FamilyKind, MetricFamily, NodeGpuMetrics, SampleValue};
use bitsage_core::settlement::EpochState;
use bitsage_core::store_prelude::*;
use bitsage_core::telemetry::{HistogramSnapshot, Telemetry};
use bitsage_core::{JobStatus, NodeStatus, Timestamp, TokenAmount};
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::error::ApiResult;
use crate::ratelimit::RouteClass;
use crate::AppState;

/// The content type of the Prometheus text format 0.0.4 answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The content type of the OpenMetrics 1.0 text answer.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Most nodes `bitsage_node_uptime_ratio` is computed for per scrape (the first by node id):
/// each costs two or three store reads (the per-minute rollup and maintenance windows), so a
/// large fleet's scrape stays bounded; nodes beyond have no series.
pub const UPTIME_MAX_NODES: usize = 1_000;

/// How many per-node store reads a scrape runs at once.
const SCRAPE_CONCURRENCY: usize = 16;

/// The route label of a request no route matched (never the raw path: bounded cardinality).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Most distinct route templates the request metrics keep (the router has about a hundred);
/// further ones are counted under `other`.
const MAX_ROUTES: usize = 512;

/// Upper bounds (seconds) of `bitsage_dashboard_request_duration_seconds`: 0.5 ms to 30 s.
pub const REQUEST_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How fresh a reading must be to be exported as current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Readings older than this are left out (default: three heartbeat intervals).
    pub fresh_for: Duration,
}

impl MetricsConfig {
    /// Three of the heartbeat intervals `state` currently tells agents (raised under load,
    /// so slower beats do not read as stale).
    pub fn of(state: &AppState) -> Self {
        Self {
            fresh_for: state
                .coordinator
                .advertised_heartbeat_interval()
                .saturating_mul(3),
        }
    }
}

/// Which text format an answer is encoded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (the default; what `promtool check metrics` lints).
    Prometheus,
    /// OpenMetrics 1.0 text (for scrapers that ask for it).
    OpenMetrics,
}

impl Format {
    /// The format for a request's `Accept` header: OpenMetrics when it lists
    /// `application/openmetrics-text` with a quality above 0 and at least that of `text/plain`;
    /// the 0.0.4 text format otherwise (no header, `*/*`, `text/plain`, anything else).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let (mut openmetrics, mut text): (Option<f32>, Option<f32>) = (None, None);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = if media.eq_ignore_ascii_case("application/openmetrics-text") {
                &mut openmetrics
            } else if media.eq_ignore_ascii_case("text/plain") {
                &mut text
            } else {
                continue;
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        match openmetrics {
            Some(q) if q > 0.0 && q >= text.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// What `bitsage_build_info` says about this binary.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BuildInfo {
    /// The crate version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// The commit built (`git rev-parse --short HEAD` at build time, or the
    /// `BITSAGE_GIT_COMMIT` the build was given); `unknown` when neither was available.
    pub commit: &'static str,
    /// The CPU baseline the binary was compiled for: `x86-64-v4` (AVX-512), `x86-64-v3`
    /// (AVX2), `x86-64`, `aarch64`, or the architecture's name.
    pub target_cpu: &'static str,
}

impl BuildInfo {
    /// This binary's.
    pub const CURRENT: BuildInfo = BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: match option_env!("BITSAGE_GIT_COMMIT") {
            Some(c) => c,
            None => "unknown",
        },
        target_cpu: bitsage_core::build::target_level(),
    };
}

/// Labels of `bitsage_dashboard_requests_total`: all static strings and a number, so counting
/// a request allocates nothing once its series exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// Labels of `bitsage_dashboard_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

type DurationFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// The metrics this process keeps between scrapes: the request counters and histograms of
/// the HTTP layer (everything else is read at scrape time). One per [`AppState`], shared by
/// its clones.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: DurationFamily,
    /// Route templates seen, interned (bounded by the router's routes and [`MAX_ROUTES`]).
    routes: RwLock<HashSet<&'static str>>,
    /// The highest settlement epoch id seen, where the next scrape starts looking.
    epoch_hint: AtomicU64,
    /// When this state was built, Unix seconds.
    started_at: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty request metrics; the process start time is now.
    pub fn new() -> Self {
        let started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(request_histogram),
            routes: RwLock::new(HashSet::new()),
            epoch_hint: AtomicU64::new(0),
            started_at,
        }
    }

    /// The `route` label of a matched route template: the template itself, interned (a
    /// template is leaked once; at most 512 are kept, further ones are `other`).
    pub fn route_label(&self, template: &str) -> &'static str {
        {
            let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = routes.get(template) {
                return r;
            }
        }
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = routes.get(template) {
            return r;
        }
        if routes.len() >= MAX_ROUTES {
            return "other";
        }
        let leaked: &'static str = Box::leak(template.to_string().into_boxed_str());
        routes.insert(leaked);
        leaked
    }

    /// Counts one answered request and its duration (to the response head).
    pub fn record_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        took: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }
}

/// The `method` label: the standard methods by name, anything else `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

// ------------------------------------------------------------------ scrape-time metrics

type Labels = Vec<(&'static str, String)>;

/// A number as the encoder writes it (integers stay exact).
#[derive(Debug, Clone, Copy)]
enum Num {
    U(u64),
    F(f64),
}

impl From<SampleValue> for Num {
    fn from(v: SampleValue) -> Self {
        match v {
            SampleValue::Int(i) => Num::U(i),
            SampleValue::Float(f) => Num::F(f),
        }
    }
}

/// A gauge or counter family whose series were read at scrape time, in order.
#[derive(Debug)]
struct Snapshot {
    kind: MetricType,
    series: Vec<(Labels, Num)>,
}

impl Snapshot {
    fn gauges(series: impl IntoIterator<Item = (Labels, Num)>) -> Self {
        Self {
            kind: MetricType::Gauge,
            series: series.into_iter().collect(),
        }
    }

    fn counters(series: impl IntoIterator<Item = (Labels, Num)>) -> Self {
        Self {
            kind: MetricType::Counter,
            series: series.into_iter().collect(),
        }
    }

    fn gauge(value: Num) -> Self {
        Self::gauges([(Vec::new(), value)])
    }

    fn counter(value: Num) -> Self {
        Self::counters([(Vec::new(), value)])
    }
}

fn encode_value(
    encoder: &mut MetricEncoder<'_>,
    kind: MetricType,
    value: Num,
) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (MetricType::Counter, Num::U(v)) => encoder.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (MetricType::Counter, Num::F(v)) => encoder.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (_, Num::U(v)) => encoder.encode_gauge(&v),
        (_, Num::F(v)) => encoder.encode_gauge(&v),
    }
}

impl EncodeMetric for Snapshot {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.series {
            if labels.is_empty() {
                encode_value(&mut encoder, self.kind, *value)?;
            } else {
                encode_value(&mut encoder.encode_family(labels)?, self.kind, *value)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }

    fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Histograms read from the core's fixed-bucket histograms, one per label set.
#[derive(Debug)]
struct Histograms(Vec<(Labels, HistogramSnapshot)>);

impl EncodeMetric for Histograms {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (labels, h) in &self.0 {
            let write = |e: &mut MetricEncoder<'_>| {
                e.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)
            };
            if labels.is_empty() {
                write(&mut encoder)?;
            } else {
                write(&mut encoder.encode_family(labels)?)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The per-GPU families of [`bitsage_core::prometheus::families`], encoded as they are.
#[derive(Debug)]
struct GpuFamilies(Vec<MetricFamily>);

impl prometheus_client::collector::Collector for GpuFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let (name, kind) = match f.kind {
                // The encoder appends `_total` to a counter's family name.
                FamilyKind::Counter => (
                    f.name.strip_suffix("_total").unwrap_or(f.name),
                    MetricType::Counter,
                ),
                FamilyKind::Gauge => (f.name, MetricType::Gauge),
            };
            let mut family = encoder.encode_descriptor(name, f.help, None, kind)?;
            for s in &f.series {
                encode_value(&mut family.encode_family(&s.labels)?, kind, s.value.into())?;
            }
        }
        Ok(())
    }
}

fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
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

/// Settlement epochs by state, from the store: `(state, count)` for `pending`, `sent`,
/// `accepted`, `failed`.
///
/// The store hands out one epoch at a time (ids 1, 2, … with no gaps; a new epoch is assembled
/// only when none is unfinished — [`bitsage_core::settlement::SettlementLedger`]'s contract),
/// so the epochs are the highest id, all accepted but the unfinished one when there is one.
/// The highest id is found from `hint` (the last scrape's) by galloping then bisecting over
/// `epoch(id)` reads: two reads per scrape when nothing changed, O(log n) after a restart.
pub async fn settlement_epochs(
    store: &bitsage_core::DynJobStore,
    hint: &AtomicU64,
) -> bitsage_core::Result<[(&'static str, u64); 4]> {
    let unfinished = store.unfinished_epoch().await?;
    let (highest, open) = match unfinished {
        Some(e) => (e.id, Some(e.state)),
        None => {
            // `lo` exists (or is 0), `hi` is unknown.
            let mut lo = hint.load(Ordering::Relaxed);
            if lo > 0 && store.epoch(lo).await?.is_none() {
                lo = 0;
            }
            let mut step = 1u64;
            let mut hi = lo.saturating_add(step);
            while store.epoch(hi).await?.is_some() {
                lo = hi;
                step = step.saturating_mul(2);
                hi = lo.saturating_add(step);
            }
            // `lo` exists (or is 0), `hi` does not.
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if store.epoch(mid).await?.is_some() {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            (lo, None)
        }
    };
    hint.store(highest, Ordering::Relaxed);
    let mut counts = [("pending", 0), ("sent", 0), ("accepted", 0), ("failed", 0)];
    let accepted = match &open {
        Some(_) => highest.saturating_sub(1),
        None => highest,
    };
    counts[2].1 = accepted;
    let open_slot = match open {
        Some(EpochState::Pending) => Some(0),
        Some(EpochState::Sent { .. }) => Some(1),
        Some(EpochState::Accepted { .. }) => Some(2),
        Some(EpochState::Failed { .. }) => Some(3),
        None => None,
    };
    if let Some(i) = open_slot {
        counts[i].1 += 1;
    }
    Ok(counts)
}

/// Whole tokens of an exact amount, as a float (an approximation of the u256 base units).
fn whole_tokens(amount: TokenAmount) -> f64 {
    let base: f64 = amount.to_string().parse().unwrap_or(f64::NAN);
    base / 10f64.powi(i32::from(bitsage_core::amount::SAGE_DECIMALS))
}

/// Renders the exposition at `now` in `format`.
pub async fn render(state: &AppState, now: Timestamp, format: Format) -> ApiResult<String> {
    let registry = registry(state, now).await?;
    let mut out = String::new();
    let encoded = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    encoded.map_err(|_| crate::ApiError::internal(&"the metrics could not be encoded"))?;
    Ok(out)
}

/// Everything `/metrics` exports at `now`, in a registry built for this scrape (the request
/// families are the long-lived ones of [`AppState::metrics`]).
async fn registry(state: &AppState, now: Timestamp) -> ApiResult<Registry> {
    let mut r = Registry::default();
    let telemetry: &Telemetry = state.coordinator.telemetry();

    // ---- the process
    let build = Family::<BuildInfo, prometheus_client::metrics::gauge::Gauge>::default();
    build.get_or_create(&BuildInfo::CURRENT).set(1);
    r.register(
        "bitsage_build_info",
        "The running build (value 1): version, commit and the CPU baseline it was compiled for",
        build,
    );
    r.register(
        "bitsage_process_start_time_seconds",
        "When this coordinator process started, seconds since the Unix epoch",
        Snapshot::gauge(Num::F(state.metrics.started_at)),
    );
    r.register(
        "bitsage_dashboard_requests",
        "HTTP requests answered, by route template, method and status code",
        state.metrics.requests.clone(),
    );
    r.register(
        "bitsage_dashboard_request_duration_seconds",
        "Time from a request's arrival to its response head, seconds, by route template and method",
        state.metrics.durations.clone(),
    );

    // ---- heartbeats
    let beats = telemetry.heartbeats();
    r.register(
        "bitsage_worker_heartbeats",
        "Worker heartbeats received by this coordinator, accepted or rejected",
        Snapshot::counters([
            (label("outcome", "accepted"), Num::U(beats.accepted)),
            (label("outcome", "rejected"), Num::U(beats.rejected)),
        ]),
    );
    // What agents are told now: the policy's interval, raised by the pacer under load.
    let interval = state.coordinator.advertised_heartbeat_interval();
    r.register(
        "bitsage_heartbeat_interval_seconds",
        "The heartbeat interval the coordinator currently tells agents, seconds",
        Snapshot::gauge(Num::F(interval.as_secs_f64())),
    );

    // ---- nodes and jobs (the store, now)
    let config = MetricsConfig::of(state);
    let nodes = state.store.all_nodes(&NodeFilter::default()).await?;
    let by_status = |status: NodeStatus| nodes.iter().filter(|n| n.status == status).count();
    r.register(
        "bitsage_nodes",
        "Registered nodes by lifecycle status",
        Snapshot::gauges(
            NodeStatus::ALL.map(|s| (label("status", s.to_string()), Num::U(by_status(s) as u64))),
        ),
    );
    r.register(
        "bitsage_active_workers",
        "Nodes in status active (eligible for work)",
        Snapshot::gauge(Num::U(by_status(NodeStatus::Active) as u64)),
    );
    let mut jobs = Vec::new();
    for status in JobStatus::ALL {
        let filter = JobFilter {
            status: Some(status),
            node: None,
        };
        let total = state.store.count_jobs(&filter).await?;
        jobs.push((label("status", status.to_string()), Num::U(total)));
    }
    r.register(
        "bitsage_jobs",
        "Jobs by queue status",
        Snapshot::gauges(jobs),
    );

    // ---- proofs, verification, fraud (the core's counters)
    r.register(
        "bitsage_proofs_verified",
        "Completions whose proof this coordinator verified and accepted (probes and jobs)",
        Snapshot::counter(Num::U(telemetry.proofs_verified())),
    );
    r.register(
        "bitsage_proofs_rejected",
        "Completions whose proof was not accepted, by reason",
        Snapshot::counters(
            telemetry
                .proofs_rejected()
                .map(|(why, n)| (label("reason", why.label()), Num::U(n))),
        ),
    );
    r.register(
        "bitsage_proof_verification_duration_seconds",
        "Time to verify a completion's proof, seconds",
        Histograms(vec![(Vec::new(), telemetry.verification())]),
    );
    let outcomes = telemetry.node_outcomes();
    r.register(
        "bitsage_verification_outcomes",
        "Verification outcomes of each node's completions (at most 100000 nodes, then node=\"other\")",
        Snapshot::counters(outcomes.into_iter().flat_map(|(node, o)| {
            [
                (
                    vec![("node", node.clone()), ("outcome", "verified".into())],
                    Num::U(o.verified),
                ),
                (
                    vec![("node", node), ("outcome", "rejected".into())],
                    Num::U(o.rejected),
                ),
            ]
        })),
    );
    r.register(
        "bitsage_fraud_detected",
        "Nodes quarantined for cheating, by reason",
        Snapshot::counters(
            telemetry
                .fraud()
                .map(|(kind, n)| (label("reason", kind.label()), Num::U(n))),
        ),
    );

    // ---- settlement (the store, now)
    let backlog = state.store.settlement_backlog().await?;
    r.register(
        "bitsage_settlement_backlog_receipts",
        "Verified receipts not yet in an epoch accepted on chain",
        Snapshot::gauge(Num::U(backlog.receipts)),
    );
    let epochs = settlement_epochs(&state.store, &state.metrics.epoch_hint).await?;
    r.register(
        "bitsage_settlement_epochs",
        "Settlement epochs by state",
        Snapshot::gauges(epochs.map(|(s, n)| (label("state", s), Num::U(n)))),
    );

    // ---- the chain (absent without one)
    if let Some(progress) = state.chain_info.as_ref().and_then(|c| c.indexer_progress()) {
        if let Some(height) = progress.block_height {
            r.register(
                "bitsage_indexer_block_height",
                "The last block the chain event indexer has processed",
                Snapshot::gauge(Num::U(height)),
            );
        }
        if let Some(lag) = progress.lag_blocks {
            r.register(
                "bitsage_indexer_lag_blocks",
                "Blocks between the indexer's cursor and the chain head at its last successful step",
                Snapshot::gauge(Num::U(lag)),
            );
        }
    }
    r.register(
        "bitsage_chain_rpc_duration_seconds",
        "Time of each Starknet JSON-RPC call this process made, seconds, by method",
        Histograms(
            bitsage_core::telemetry::chain_rpc()
                .snapshot()
                .into_iter()
                .map(|(method, h)| (label("method", method), h))
                .collect(),
        ),
    );
    if let Some(total) = telemetry.total_staked() {
        r.register(
            "bitsage_total_staked",
            "Total stake of the active and stale nodes' distinct wallets, whole SAGE, as of the \
             last stake re-check: a float approximation of the exact u256 base units",
            Snapshot::gauge(Num::F(whole_tokens(total))),
        );
    }

    // ---- the HTTP layer's own state
    let live = crate::live::Transport::ALL.map(|t| {
        (
            label("transport", t.label()),
            Num::U(state.events.connections(t)),
        )
    });
    r.register(
        "bitsage_websocket_subscribers",
        "Open live-event connections, by transport (WebSocket, Server-Sent Events)",
        Snapshot::gauges(live),
    );
    r.register(
        "bitsage_rate_limit_rejections",
        "Requests refused with 429 by the rate limiter, by rate-limit class",
        Snapshot::counters(
            RouteClass::ALL.map(|c| (label("scope", c.name()), Num::U(state.limiter.rejected(c)))),
        ),
    );

    // ---- per node: uptime, GPU readings and collector health (the store, now)
    let hour = bitsage_core::service::fleet::window_ending(now, chrono::TimeDelta::hours(1));
    let mut by_id: Vec<&bitsage_core::node::NodeRecord> = nodes.iter().collect();
    by_id.sort_by(|a, b| a.id.cmp(&b.id));
    let mut uptimes = Vec::new();
    for chunk in by_id[..by_id.len().min(UPTIME_MAX_NODES)].chunks(SCRAPE_CONCURRENCY) {
        let read = chunk.iter().map(|n| state.store.uptime(n, hour));
        let got = futures::future::try_join_all(read).await?;
        uptimes.extend(chunk.iter().copied().zip(got));
    }
    r.register(
        "bitsage_node_uptime_ratio",
        "Share of the last hour's minutes with a heartbeat, per node, 0-1 (maintenance excused)",
        Snapshot::gauges(uptimes.into_iter().filter_map(|(n, u)| {
            u.ratio
                .map(|ratio| (label("node", n.id.as_str()), Num::F(ratio)))
        })),
    );

    let mut readings: Vec<(Vec<GpuSample>, Option<ReportedCollector>)> =
        Vec::with_capacity(nodes.len());
    for chunk in nodes.chunks(SCRAPE_CONCURRENCY) {
        let samples = chunk.iter().map(|n| state.store.latest_gpu_samples(&n.id));
        let collectors = chunk.iter().map(|n| state.store.gpu_collector(&n.id));
        let (samples, collectors) = futures::try_join!(
            futures::future::try_join_all(samples),
            futures::future::try_join_all(collectors)
        )?;
        readings.extend(samples.into_iter().zip(collectors));
    }
    r.register(
        "bitsage_node_gpu_sample_age_seconds",
        "Age of the newest GPU reading a node's heartbeats carried, seconds",
        // Nodes that never sent one have no series.
        Snapshot::gauges(nodes.iter().zip(&readings).filter_map(|(n, (s, _))| {
            let newest = s.iter().map(|x| x.at).max()?;
            Some((label("node", n.id.as_str()), Num::F(age_secs(now, newest))))
        })),
    );
    let fresh_for = chrono::TimeDelta::from_std(config.fresh_for).unwrap_or(chrono::TimeDelta::MAX);
    let inventories: Vec<GpuInventory> = nodes
        .iter()
        .map(|n| GpuInventory {
            devices: n.hardware.gpus.clone(),
            driver_version: n.hardware.driver_version.clone(),
            cuda_version: n.hardware.cuda_version.clone(),
        })
        .collect();
    let fresh: Vec<Vec<GpuSample>> = readings
        .iter()
        .map(|(s, _)| {
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
        .zip(readings)
        .map(|(((n, inv), s), (_, collector))| NodeGpuMetrics {
            node: n.id.as_str(),
            inventory: Some(inv),
            samples: s,
            collector: collector.and_then(|c| current_collector(c, now, config.fresh_for)),
        })
        .collect();
    r.register_collector(Box::new(GpuFamilies(bitsage_core::prometheus::families(
        &gpu_nodes,
    ))));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_accept_header() {
        let prometheus_default = "application/openmetrics-text;version=1.0.0,\
            application/openmetrics-text;version=0.0.1;q=0.75,\
            text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(
            Format::negotiate(Some(prometheus_default)),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Prometheus
        );
    }

    #[test]
    fn build_info_names_the_build() {
        let b = BuildInfo::CURRENT;
        assert_eq!(b.version, env!("CARGO_PKG_VERSION"));
        assert!(!b.commit.is_empty());
        if cfg!(target_arch = "x86_64") {
            assert!(b.target_cpu.starts_with("x86-64"), "{}", b.target_cpu);
        }
    }

    #[test]
    fn route_labels_are_interned_and_bounded() {
        let m = Metrics::new();
        let a = m.route_label("/api/nodes/{id}");
        let b = m.route_label("/api/nodes/{id}");
        assert!(std::ptr::eq(a, b));
        for i in 0..MAX_ROUTES + 3 {
            m.route_label(&format!("/r{i}"));
        }
        assert_eq!(m.route_label("/one-too-many"), "other");
    }

    #[test]
    fn whole_tokens_are_an_approximation() {
        let t = TokenAmount::from_u128(1_500_000_000_000_000_000);
        assert!((whole_tokens(t) - 1.5).abs() < 1e-12);
    }
}
