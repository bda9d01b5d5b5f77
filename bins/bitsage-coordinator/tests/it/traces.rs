//! Traces, checked with the OpenTelemetry SDK's in-memory exporter: each request is one
//! `request` span carrying its request id, and every store call it makes is a `store.*` span
//! beneath it (with `db.system`), exported through the same layer the coordinator installs
//! when an OTLP endpoint is configured.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bitsage_coordinator::telemetry::otel_layer;
use bitsage_http::{router, AppState, HttpConfig};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::ServiceExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[tokio::test]
async fn each_request_is_a_span_with_its_store_calls_beneath() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(otel_layer(&provider));
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        bitsage_store::SqliteStore::open_dir(dir.path())
            .await
            .expect("sqlite"),
    );
    let proofs = Arc::new(bitsage_store::InMemoryProofStore::new());
    let state = AppState::new(
        store,
        Arc::new(bitsage_prover::StwoProver::new()),
        proofs,
        bitsage_core::deployment::DeploymentKey::new(
            ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
            "test",
        )
        .expect("key"),
        HttpConfig::default(),
    );
    let token = bitsage_http::test_utils::admin_token(&state).await;
    let app = router(state);
    let req = Request::get("/api/nodes")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("x-request-id", "trace-me-1")
        .body(Body::empty())
        .expect("request");
    let res = app.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body");
    drop(body);

    // The request span ends when the last handle on it drops; on a loaded machine that may
    // come a moment after the body (seen once in CI under a parallel benchmark): wait for it.
    let mut spans = Vec::new();
    for _ in 0..100 {
        provider.force_flush().expect("flush");
        spans = exporter.get_finished_spans().expect("spans");
        if spans.iter().any(|s| {
            s.name == "request" && attr(s, "request_id").is_some_and(|v| v.as_str() == "trace-me-1")
        }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let request = spans
        .iter()
        .find(|s| {
            s.name == "request" && attr(s, "request_id").is_some_and(|v| v.as_str() == "trace-me-1")
        })
        .unwrap_or_else(|| {
            panic!(
                "no request span with the request id among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        attr(request, "path").map(|v| v.as_str().into_owned()),
        Some("/api/nodes".to_string())
    );
    let request_id = request.span_context.span_id();
    let store_calls: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name.starts_with("store.") && s.parent_span_id == request_id)
        .collect();
    let names: Vec<&str> = store_calls.iter().map(|s| s.name.as_ref()).collect();
    assert!(
        names.contains(&"store.list_nodes"),
        "store spans under the request: {names:?}"
    );
    // The caller's account is read too (the access token names a user).
    assert!(names.contains(&"store.user"), "{names:?}");
    for s in &store_calls {
        assert_eq!(
            attr(s, "db.system").map(|v| v.as_str().into_owned()),
            Some("sqlite".to_string()),
            "{}",
            s.name
        );
        assert_eq!(s.span_context.trace_id(), request.span_context.trace_id());
    }
    assert_ne!(request.parent_span_id, request_id);
}
