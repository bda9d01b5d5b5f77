//! Property tests: random bodies, paths, queries and headers driven through the whole router
//! never produce a 5xx or a panic, and every refusal is a 4xx in the API's error shape.

use crate::common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::*;
use proptest::prelude::*;

const POST_ROUTES: &[&str] = &[
    "/api/nodes/register",
    "/api/nodes/heartbeat",
    "/api/jobs",
    "/api/jobs/lease",
    "/api/jobs/complete",
    "/api/jobs/fail",
];

const GET_ROUTES: &[&str] = &[
    "/api/nodes",
    "/api/nodes/",
    "/api/jobs/",
    "/api/receipts",
    "/api/receipts/",
    "/api/earnings/",
    "/api/network/stats",
    "/api/network/workers",
    "/api/worker/uptime",
    "/api/jobs/analytics",
    "/api/jobs/recent",
    "/api/validator/status",
    "/api/validator/gpus",
    "/api/validator/rewards",
    "/api/validator/history",
    "/api/summary",
];

/// JSON-looking bodies: fragments of real request shapes with random values, plus raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just("node_id"),
        Just("public_key"),
        Just("wallet"),
        Just("signature"),
        Just("sequence"),
        Just("sent_at"),
        Just("job"),
        Just("payment"),
        Just("max_attempts"),
        Just("lease_id"),
        Just("job_id"),
        Just("envelope"),
        Just("receipt"),
        Just("reason"),
        Just("hardware"),
        Just("agent_version"),
        Just("nonce"),
        Just("kind"),
    ];
    let value = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("18446744073709551616".to_string()),
        Just("\"0x0\"".to_string()),
        Just("\"node-1\"".to_string()),
        Just("\"2026-01-01T00:00:00Z\"".to_string()),
        Just("{\"kind\":\"poseidon2-chain\",\"seed\":1,\"length\":4294967295}".to_string()),
        Just("[]".to_string()),
        "[a-f0-9]{0,130}".prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
        "\\PC{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ];
    prop_oneof![
        proptest::collection::vec((field, value), 0..8).prop_map(|kv| {
            let inner: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", inner.join(",")).into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._-]{0,70}",
        Just("00000000-0000-0000-0000-000000000000".to_string()),
        Just("%00".to_string()),
        Just("%ZZ".to_string()),
        Just("..".to_string()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("limit"),
        Just("offset"),
        Just("status"),
        Just("wallet"),
        Just("node"),
        Just("from"),
        Just("to"),
        Just("format"),
        Just("kind"),
        Just("window_secs"),
        Just("zzz"),
    ];
    let val = prop_oneof![
        Just("0".to_string()),
        Just("-5".to_string()),
        Just("99999999999999999999".to_string()),
        Just("csv".to_string()),
        Just("active".to_string()),
        Just("2026-01-01T00:00:00Z".to_string()),
        "[a-zA-Z0-9%]{0,12}",
    ];
    proptest::collection::vec((key, val), 0..4).prop_map(|kv| {
        kv.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn wallet_header() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("0x1234abcd".to_string())),
        "[ -~]{0,70}".prop_map(Some),
    ]
}

fn check(reply: &Reply, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !reply.status.is_server_error(),
        "{what}: {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    if reply.status.is_client_error() {
        let v: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|e| TestCaseError::fail(format!("{what}: error body is not JSON: {e}")))?;
        prop_assert!(v["error"]["type"].is_string(), "{what}: {v}");
        prop_assert!(v["error"]["message"].is_string(), "{what}: {v}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bodies_never_cause_a_5xx(route in proptest::sample::select(POST_ROUTES), body in body(), json_type in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let t = app();
        let mut req = Request::builder().method(Method::POST).uri(route);
        if json_type {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Body::from(body)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let reply = rt.block_on(send(&t.app, req));
        check(&reply, route)?;
    }

    #[test]
    fn random_paths_queries_and_headers_never_cause_a_5xx(
        route in proptest::sample::select(GET_ROUTES),
        seg in segment(),
        q in query(),
        wallet in wallet_header(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let t = app();
        let path = if route.ends_with('/') { format!("{route}{seg}") } else { route.to_string() };
        let uri = if q.is_empty() { path } else { format!("{path}?{q}") };
        let mut req = Request::builder().method(Method::GET).uri(&uri);
        if let Some(w) = wallet {
            if let Ok(v) = header::HeaderValue::from_str(&w) {
                req = req.header("x-wallet-address", v);
            }
        }
        // A URI the HTTP layer itself refuses never reaches the router.
        let Ok(req) = req.body(Body::empty()) else { return Ok(()); };
        let reply = rt.block_on(send(&t.app, req));
        check(&reply, &uri)?;
    }
}

#[tokio::test]
async fn an_oversized_body_is_413_in_the_error_shape_and_nothing_is_stored() {
    let t = app();
    // Registrations may carry attestation reports: 1 MiB; other node messages: 64 KiB.
    let big = vec![b' '; 1024 * 1024 + 1];
    send(&t.app, post_raw("/api/nodes/register", big))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    send(
        &t.app,
        post_raw("/api/nodes/heartbeat", vec![b' '; 70 * 1024]),
    )
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = send(&t.app, get("/api/nodes")).await;
    assert_eq!(r.json()["total"], 0);
}
