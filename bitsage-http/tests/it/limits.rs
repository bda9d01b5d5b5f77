//! Bounded resources and hygiene from the outside: idle connections cannot starve the server,
//! oversized or unknown registration fields are refused, extreme timestamps are a 400, error
//! messages name fields in words (never Rust types), every response carries a request id and
//! the security headers, and CORS answers only configured origins.

use crate::common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, Method, Request, StatusCode};
use bitsage_http::server::{serve, ServerLimits, ServerStats};
use common::{app, get, key, post_json, send};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(limits: ServerLimits) -> (std::net::SocketAddr, Arc<ServerStats>) {
    let t = app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stats = Arc::new(ServerStats::default());
    let s = stats.clone();
    tokio::spawn(async move { serve(listener, t.bare, limits, s, std::future::pending()).await });
    (addr, stats)
}

/// A raw `GET /livez` on a new connection; the status line.
async fn livez(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_do_not_starve_livez() {
    let (addr, _) = start(ServerLimits::default()).await;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let line = tokio::time::timeout(Duration::from_secs(1), livez(addr))
        .await
        .expect("/livez answered within 1 s")
        .expect("io");
    assert!(line.contains("200"), "{line}");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_idle_ones_time_out() {
    let limits = ServerLimits {
        max_connections: 8,
        idle_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let (addr, stats) = start(limits).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut extra = TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "a connection over the cap is closed");
    assert!(stats.connections_shed.load(Ordering::Relaxed) >= 1);
    // Idle connections are closed after the header timeout, freeing their slots.
    for mut c in idle {
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("idle connection closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let line = tokio::time::timeout(Duration::from_secs(5), livez(addr))
        .await
        .expect("answered")
        .expect("io");
    assert!(line.contains("200"), "{line}");
}

/// A registration carrying `hardware`, signed when the hardware parses (so only the bounds
/// can refuse it), as sent otherwise.
fn registration(hardware: Value) -> Value {
    let base = common::register_request(&key(7), "big-node");
    match serde_json::from_value::<bitsage_core::node::HardwareReport>(hardware.clone()) {
        Ok(h) => serde_json::to_value(bitsage_http::api::RegisterRequest::signed(
            &key(7),
            base.node_id,
            base.wallet,
            h,
            base.agent_version,
            base.sent_at,
        ))
        .expect("json"),
        Err(_) => {
            let mut v = serde_json::to_value(base).expect("json");
            v["hardware"] = hardware;
            v
        }
    }
}

#[tokio::test]
async fn registration_fields_are_bounded_and_unknown_ones_refused() {
    let t = app();
    let huge = "x".repeat(300_000);
    let cases = [
        (
            json!({ "gpus": [{ "index": 0, "uuid": "GPU-1", "name": huge }] }),
            "GPU name",
        ),
        (
            json!({ "gpu_unavailable_reason": "x".repeat(5000) }),
            "GPU unavailable reason",
        ),
        (json!({ "padding": "x" }), "unknown field `padding`"),
        (
            json!({ "gpus": [{ "index": 0, "uuid": "GPU-1", "name": "H100", "extra": 1 }] }),
            "unknown field `extra`",
        ),
    ];
    for (hardware, names) in cases {
        let r = send(
            &t.app,
            post_json("/api/nodes/register", &registration(hardware)),
        )
        .await;
        let e = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(e.error.message.contains(names), "{}", e.error.message);
    }
    let many: Vec<Value> = (0..65)
        .map(|i| json!({ "index": i, "uuid": format!("GPU-{i}"), "name": "H100" }))
        .collect();
    let r = send(
        &t.app,
        post_json(
            "/api/nodes/register",
            &registration(json!({ "gpus": many })),
        ),
    )
    .await;
    let e = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        e.error.message.contains("at most 64"),
        "{}",
        e.error.message
    );
    // Nothing was stored.
    let nodes = send(&t.app, get("/api/nodes")).await.json();
    assert_eq!(nodes["total"], 0);
}

#[tokio::test]
async fn extreme_timestamps_are_a_400_naming_the_bound() {
    let t = app();
    for q in [
        "from=-262143-01-01T00:00:00Z",
        "to=%2B262142-12-31T23:59:59Z",
        "from=1969-12-31T23:59:59Z",
    ] {
        let r = send(&t.app, get(&format!("/api/receipts?{q}"))).await;
        let e = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(
            e.error.message.contains("time window"),
            "{}",
            e.error.message
        );
    }
}

/// Words that give away Rust types in a message.
fn names_a_rust_type(message: &str) -> bool {
    let types = [
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64",
    ];
    message
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .any(|w| types.contains(&w))
        || message.contains("struct ")
        || message.contains("enum ")
        || message.contains("::")
        || message.contains("Option<")
        || message.contains("Vec<")
}

#[tokio::test]
async fn error_messages_name_fields_in_words() {
    let t = app();
    let bodies = [
        json!("x"),
        json!([]),
        json!(1),
        json!({ "kind": 1 }),
        json!({ "node_id": [] }),
        json!({ "sequence": -1 }),
        json!({ "sequence": 1.5 }),
        json!({ "limit": "x" }),
    ];
    let routes = [
        "/api/nodes/register",
        "/api/nodes/heartbeat",
        "/api/jobs",
        "/api/jobs/lease",
        "/api/jobs/complete",
        "/api/jobs/fail",
        "/api/auth/login",
        "/api/users",
        "/api/keys",
        "/api/orgs",
    ];
    let mut seen = 0;
    for route in routes {
        for body in &bodies {
            let r = send(&t.app, post_json(route, body)).await;
            assert!(r.status.is_client_error(), "{route} {body}: {}", r.status);
            let v = r.json();
            let m = v["error"]["message"].as_str().expect("message");
            assert!(!names_a_rust_type(m), "{route} {body}: {m}");
            seen += 1;
        }
    }
    // Query strings and paths too.
    for uri in [
        "/api/nodes?limit=x",
        "/api/nodes?limit=-1",
        "/api/receipts?offset=1.5",
        "/api/jobs/recent?limit=99999999999",
        "/api/worker/uptime?node=n&window_secs=x",
    ] {
        let r = send(&t.app, get(uri)).await;
        assert!(r.status.is_client_error(), "{uri}");
        let m = r.json()["error"]["message"]
            .as_str()
            .expect("message")
            .to_string();
        assert!(!names_a_rust_type(&m), "{uri}: {m}");
        seen += 1;
    }
    assert!(seen > 80);
}

#[tokio::test]
async fn responses_carry_a_request_id_and_the_security_headers() {
    let t = app();
    let mut req = get("/livez");
    req.headers_mut()
        .insert("x-request-id", "client-id-1".parse().expect("id"));
    let res = tower::ServiceExt::oneshot(t.app.clone(), req)
        .await
        .expect("infallible");
    assert_eq!(res.headers()["x-request-id"], "client-id-1");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert!(res.headers().contains_key("content-security-policy"));
    assert!(!res.headers().contains_key("access-control-allow-origin"));
    // A malformed id is replaced by a generated one.
    let mut req = get("/api/nope");
    req.headers_mut()
        .insert("x-request-id", "bad id with spaces".parse().expect("id"));
    let res = tower::ServiceExt::oneshot(t.app.clone(), req)
        .await
        .expect("infallible");
    let id = res.headers()["x-request-id"].to_str().expect("id");
    assert_ne!(id, "bad id with spaces");
    assert_eq!(id.len(), 36);
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let t = app();
    let mut state = t.state.clone();
    state.config.cors_origins = vec!["https://console.example".into()];
    let app = bitsage_http::router(state);
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/network/stats")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .body(axum::body::Body::empty())
            .expect("request")
    };
    let ok = tower::ServiceExt::oneshot(app.clone(), preflight("https://console.example"))
        .await
        .expect("infallible");
    assert_eq!(
        ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://console.example"
    );
    let other = tower::ServiceExt::oneshot(app, preflight("https://evil.example"))
        .await
        .expect("infallible");
    assert!(!other
        .headers()
        .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test]
async fn limited_answers_carry_the_headers_and_a_429_says_when_to_retry() {
    let t = app();
    let mut state = t.state.clone();
    let limits = bitsage_http::ratelimit::RateLimits {
        default_per_min: 3,
        heartbeat_per_min: 2,
        ..bitsage_http::ratelimit::RateLimits::default()
    };
    state.limiter = Arc::new(bitsage_http::ratelimit::Limiter::new(limits.clone()));
    state.config.rate_limits = limits;
    let limited = common::as_user(bitsage_http::router(state), &t.admin_token);
    for left in (0..3).rev() {
        let res = tower::ServiceExt::oneshot(limited.clone(), get("/api/nodes"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            res.headers()["x-ratelimit-remaining"],
            left.to_string().as_str()
        );
        assert!(res.headers().contains_key("x-ratelimit-reset"));
    }
    let res = tower::ServiceExt::oneshot(limited.clone(), get("/api/nodes"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()[header::RETRY_AFTER]
        .to_str()
        .expect("retry-after")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "rate_limited");
    // Another class has its own bucket.
    let res = tower::ServiceExt::oneshot(limited.clone(), get("/livez"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    // Signed routes are limited per node: a third heartbeat of one node is refused, another
    // node's first is not.
    for (node, key_byte, want) in [
        ("hb-a", 1u8, StatusCode::OK),
        ("hb-a", 1, StatusCode::OK),
        ("hb-a", 1, StatusCode::TOO_MANY_REQUESTS),
        ("hb-b", 2, StatusCode::OK),
    ] {
        let k = key(key_byte);
        let _ = send(
            &t.app,
            post_json("/api/nodes/register", &common::register_request(&k, node)),
        )
        .await;
        let seq = bitsage_core::time::now().timestamp_micros() as u64;
        let r = send(
            &limited,
            post_json(
                "/api/nodes/heartbeat",
                &common::heartbeat_request(&k, node, seq),
            ),
        )
        .await;
        assert_eq!(
            r.status,
            want,
            "{node}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}
