//! Token-bucket rate limits per route class ([`RouteClass`], the deployment guide's table
//! plus the PRD's per-node limits), keyed by the node (with its address) on node-signed
//! routes, by user or key when authenticated, by address otherwise. Every limited response
//! carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`; a refused
//! one is 429 `rate_limited` with `Retry-After`.
//!
//! Buckets are **per coordinator** (in this process's memory, built on the `governor` crate):
//! behind a load balancer with N coordinators a client may reach up to N times a class's
//! limit. They are protective, not an accounting of record, so they are not shared through
//! the store; stale keys are dropped as they refill, so memory follows the active clients.
//!
//! A signed route's node id is read from the body before its signature is checked, so a
//! client could name another node: the key is therefore the node id *and* the client's
//! address, and a spoofer only spends its own bucket.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// A class of routes sharing one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Health, readiness, the deployment's identity, the OpenAPI document (200/min).
    Status,
    /// Dashboard and analytics reads (120/min).
    Analytics,
    /// Node heartbeats and registration, per node (120/min).
    Heartbeat,
    /// Leases and attestation challenges, per node (10/s = 600/min, the PRD's `nodes.*`).
    NodeWork,
    /// Proof submissions and failures, per node (5/s = 300/min, the PRD's receipt posts).
    Receipts,
    /// Job submission (30/min).
    JobSubmit,
    /// Live streams: SSE and WebSocket connects (10/min).
    Live,
    /// Logins and refreshes, per address (10/min: slows password guessing).
    Auth,
    /// Everything else (60/min).
    Default,
}

impl RouteClass {
    /// Every class.
    pub const ALL: [RouteClass; 9] = [
        RouteClass::Status,
        RouteClass::Analytics,
        RouteClass::Heartbeat,
        RouteClass::NodeWork,
        RouteClass::Receipts,
        RouteClass::JobSubmit,
        RouteClass::Live,
        RouteClass::Auth,
        RouteClass::Default,
    ];

    /// The class's name (for logs and metrics).
    pub fn name(self) -> &'static str {
        match self {
            RouteClass::Status => "status",
            RouteClass::Analytics => "analytics",
            RouteClass::Heartbeat => "heartbeat",
            RouteClass::NodeWork => "node_work",
            RouteClass::Receipts => "receipts",
            RouteClass::JobSubmit => "job_submit",
            RouteClass::Live => "live",
            RouteClass::Auth => "auth",
            RouteClass::Default => "default",
        }
    }

    /// The class of a route template.
    pub fn of(method: &Method, path: &str) -> RouteClass {
        match (method.as_str(), path) {
            (_, "/livez" | "/readyz" | "/health" | "/health/live" | "/health/ready")
            | (_, "/api/coordinator" | "/.well-known/bitsage.json" | "/openapi.json") => {
                RouteClass::Status
            }
            ("POST", "/api/nodes/heartbeat" | "/api/worker/heartbeat" | "/api/nodes/register") => {
                RouteClass::Heartbeat
            }
            ("POST", "/api/jobs/lease") | ("GET", "/api/nodes/attestation-challenge") => {
                RouteClass::NodeWork
            }
            ("POST", "/api/jobs/complete" | "/api/jobs/fail") => RouteClass::Receipts,
            ("POST", "/api/jobs") => RouteClass::JobSubmit,
            ("POST", "/api/auth/login" | "/api/auth/refresh") => RouteClass::Auth,
            (_, "/api/events" | "/ws" | "/ws/jobs" | "/ws/workers" | "/ws/staking") => {
                RouteClass::Live
            }
            ("POST", "/api/worker/claim-reward") => RouteClass::Analytics,
            ("GET", p)
                if p.starts_with("/api/validator/")
                    || p == "/api/worker/status"
                    || p == "/api/worker/gpu-metrics"
                    || p == "/stats"
                    || p.starts_with("/api/network/")
                    || p.starts_with("/api/jobs/analytics")
                    || p.starts_with("/api/jobs/recent")
                    || p == "/api/summary"
                    || p == "/api/contracts"
                    || p == "/metrics" =>
            {
                RouteClass::Analytics
            }
            _ => RouteClass::Default,
        }
    }

    /// Whether the bucket is keyed by the node named in the body.
    fn per_node(self) -> bool {
        matches!(
            self,
            RouteClass::Heartbeat | RouteClass::NodeWork | RouteClass::Receipts
        )
    }
}

/// Requests per minute of each class (also each bucket's burst); `None` turns limiting off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Whether requests are limited at all.
    pub enabled: bool,
    /// [`RouteClass::Status`].
    pub status_per_min: u32,
    /// [`RouteClass::Analytics`].
    pub analytics_per_min: u32,
    /// [`RouteClass::Heartbeat`].
    pub heartbeat_per_min: u32,
    /// [`RouteClass::NodeWork`].
    pub node_work_per_min: u32,
    /// [`RouteClass::Receipts`].
    pub receipts_per_min: u32,
    /// [`RouteClass::JobSubmit`].
    pub job_submit_per_min: u32,
    /// [`RouteClass::Live`].
    pub live_per_min: u32,
    /// [`RouteClass::Auth`].
    pub auth_per_min: u32,
    /// [`RouteClass::Default`].
    pub default_per_min: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            status_per_min: 200,
            analytics_per_min: 120,
            heartbeat_per_min: 120,
            node_work_per_min: 600,
            receipts_per_min: 300,
            job_submit_per_min: 30,
            live_per_min: 10,
            auth_per_min: 10,
            default_per_min: 60,
        }
    }
}

impl RateLimits {
    /// No limits (benchmarks and tests that are not about limits).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Every class multiplied by `factor` (at least 1 per minute).
    pub fn scaled(&self, factor: f64) -> Self {
        let s = |v: u32| ((f64::from(v) * factor).round() as u32).max(1);
        Self {
            enabled: self.enabled,
            status_per_min: s(self.status_per_min),
            analytics_per_min: s(self.analytics_per_min),
            heartbeat_per_min: s(self.heartbeat_per_min),
            node_work_per_min: s(self.node_work_per_min),
            receipts_per_min: s(self.receipts_per_min),
            job_submit_per_min: s(self.job_submit_per_min),
            live_per_min: s(self.live_per_min),
            auth_per_min: s(self.auth_per_min),
            default_per_min: s(self.default_per_min),
        }
    }

    /// The limit of `class`, per minute.
    pub fn per_min(&self, class: RouteClass) -> u32 {
        match class {
            RouteClass::Status => self.status_per_min,
            RouteClass::Analytics => self.analytics_per_min,
            RouteClass::Heartbeat => self.heartbeat_per_min,
            RouteClass::NodeWork => self.node_work_per_min,
            RouteClass::Receipts => self.receipts_per_min,
            RouteClass::JobSubmit => self.job_submit_per_min,
            RouteClass::Live => self.live_per_min,
            RouteClass::Auth => self.auth_per_min,
            RouteClass::Default => self.default_per_min,
        }
    }
}

type Keyed = RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// The buckets of one coordinator.
pub struct Limiter {
    limits: RateLimits,
    buckets: Vec<(RouteClass, u32, Keyed)>,
    checks: AtomicU64,
    /// Requests refused, by class (same order as [`RouteClass::ALL`]).
    rejected: Vec<AtomicU64>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A shared limiter.
pub type SharedLimiter = Arc<Limiter>;

impl Limiter {
    /// Buckets for `limits`.
    pub fn new(limits: RateLimits) -> Self {
        let buckets = RouteClass::ALL
            .iter()
            .map(|&class| {
                let per_min =
                    NonZeroU32::new(limits.per_min(class).max(1)).unwrap_or(NonZeroU32::MIN);
                let limiter = RateLimiter::keyed(Quota::per_minute(per_min))
                    .with_middleware::<StateInformationMiddleware>();
                (class, per_min.get(), limiter)
            })
            .collect();
        Self {
            limits,
            buckets,
            checks: AtomicU64::new(0),
            rejected: RouteClass::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Requests refused so far in `class`.
    pub fn rejected(&self, class: RouteClass) -> u64 {
        RouteClass::ALL
            .iter()
            .position(|c| *c == class)
            .map_or(0, |i| self.rejected[i].load(Ordering::Relaxed))
    }

    /// Takes one token of `class` for `key`: `Ok(headers)` or `Err(429 response)`.
    fn check(
        &self,
        class: RouteClass,
        key: &str,
    ) -> Result<[(&'static str, String); 3], Box<Response>> {
        let Some((_, limit, bucket)) = self.buckets.iter().find(|(c, ..)| *c == class) else {
            return Ok(Default::default());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            for (_, _, b) in &self.buckets {
                b.retain_recent();
                b.shrink_to_fit();
            }
        }
        let per_token = 60.0 / f64::from(*limit);
        match bucket.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = (f64::from(limit - remaining.min(*limit)) * per_token).ceil() as u64;
                Ok([
                    ("x-ratelimit-limit", limit.to_string()),
                    ("x-ratelimit-remaining", remaining.to_string()),
                    ("x-ratelimit-reset", reset.to_string()),
                ])
            }
            Err(not_until) => {
                if let Some(i) = RouteClass::ALL.iter().position(|c| *c == class) {
                    self.rejected[i].fetch_add(1, Ordering::Relaxed);
                }
                let wait = not_until
                    .wait_time_from(DefaultClock::default().now())
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64;
                let mut res = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "too many {} requests: at most {limit} a minute; retry in {wait} s",
                        class.name()
                    ),
                )
                .into_response();
                let h = res.headers_mut();
                for (name, value) in [
                    ("x-ratelimit-limit", limit.to_string()),
                    ("x-ratelimit-remaining", "0".to_string()),
                    ("x-ratelimit-reset", wait.to_string()),
                    ("retry-after", wait.to_string()),
                ] {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                }
                Err(Box::new(res))
            }
        }
    }
}

/// The `node_id` a signed body names (`None` when it names none).
fn node_in_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct NodeField {
        node_id: Option<String>,
        public_key: Option<String>,
    }
    let f: NodeField = serde_json::from_slice(body).ok()?;
    f.node_id.or(f.public_key).filter(|s| s.len() <= 128)
}

fn insert_headers(h: &mut HeaderMap, headers: [(&'static str, String); 3]) {
    for (name, value) in headers {
        if name.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// The rate-limit middleware (a route layer, after [`crate::auth::authorize`]).
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limiter = state.limiter.clone();
    if !limiter.limits.enabled {
        return next.run(req).await;
    }
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let class = RouteClass::of(req.method(), &path);
    let addr = crate::server::client_ip(req.extensions()).unwrap_or_else(|| "unknown".into());
    let caller = req
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.0.as_ref())
        .map(|p| p.actor_id());
    let (req, key) = if class.per_node() {
        let (parts, body) = req.into_parts();
        let node = if parts.method == Method::GET {
            parts.uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("public_key="))
                    .map(str::to_string)
            })
        } else {
            None
        };
        let (body, node) = if parts.method == Method::GET {
            (axum::body::Body::empty(), node)
        } else {
            let limit = state.config.proof_body_limit_bytes;
            match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => {
                    let node = node_in_body(&bytes);
                    (axum::body::Body::from(bytes), node)
                }
                Err(_) => {
                    return ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body is larger than the server accepts",
                    )
                    .into_response()
                }
            }
        };
        let key = match node {
            Some(n) => format!("node:{n}@{addr}"),
            None => format!("addr:{addr}"),
        };
        (Request::from_parts(parts, body), key)
    } else {
        let key = match (class, caller) {
            (RouteClass::Auth, _) | (_, None) => format!("addr:{addr}"),
            (_, Some(who)) => format!("who:{who}"),
        };
        (req, key)
    };
    match limiter.check(class, &key) {
        Ok(headers) => {
            let mut res = next.run(req).await;
            insert_headers(res.headers_mut(), headers);
            res
        }
        Err(res) => {
            tracing::debug!(class = class.name(), %key, "rate limited");
            *res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_in_their_classes() {
        assert_eq!(RouteClass::of(&Method::GET, "/livez"), RouteClass::Status);
        assert_eq!(
            RouteClass::of(&Method::POST, "/api/nodes/heartbeat"),
            RouteClass::Heartbeat
        );
        assert_eq!(
            RouteClass::of(&Method::GET, "/api/validator/status"),
            RouteClass::Analytics
        );
        assert_eq!(
            RouteClass::of(&Method::POST, "/api/jobs"),
            RouteClass::JobSubmit
        );
        assert_eq!(RouteClass::of(&Method::GET, "/ws"), RouteClass::Live);
        assert_eq!(
            RouteClass::of(&Method::GET, "/api/nodes"),
            RouteClass::Default
        );
    }

    #[test]
    fn a_bucket_refuses_past_its_limit_with_retry_after() {
        let l = Limiter::new(RateLimits {
            default_per_min: 3,
            ..RateLimits::default()
        });
        for left in (0..3).rev() {
            let h = l.check(RouteClass::Default, "k").expect("allowed");
            assert_eq!(h[1].1, left.to_string());
        }
        let refused = l.check(RouteClass::Default, "k").expect_err("refused");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key("retry-after"));
        assert!(l.check(RouteClass::Default, "other").is_ok());
        assert_eq!(l.rejected(RouteClass::Default), 1);
    }
}
