//! Readiness and health with every configured dependency: the store decides readiness (503
//! when it is down); a chain that does not answer or an indexer that is behind degrades the
//! coordinator (200, `degraded`) without taking it out of service. `/health` in the seed's
//! shape: status, version, uptime, components with response times, metrics.

use crate::common;

use std::sync::Arc;

use axum::http::StatusCode;
use bitsage_chain::InMemoryChain;
use bitsage_http::contracts::{ChainInfo, IndexerHealth};
use common::*;

#[derive(Debug)]
struct StuckIndexer;

impl ChainInfo for StuckIndexer {
    fn network(&self) -> &str {
        "starknet"
    }
    fn contracts(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn indexer(&self) -> Option<serde_json::Value> {
        None
    }
    fn indexer_health(&self) -> Option<IndexerHealth> {
        Some(IndexerHealth {
            last_success_at: Some(bitsage_core::time::now() - chrono::TimeDelta::minutes(10)),
            started_at: bitsage_core::time::now() - chrono::TimeDelta::hours(1),
            lag_blocks: Some(3),
            consecutive_failures: 12,
            last_error: Some("starknet unavailable".into()),
        })
    }
}

#[tokio::test]
async fn everything_up_is_ok_and_health_has_the_seed_shape() {
    let t = app();
    let r = send(&t.bare, get("/readyz")).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert!(
        v["components"]["chain"].is_null(),
        "not configured: left out"
    );
    let r = send(&t.bare, get("/health")).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptime_seconds"].as_u64().is_some());
    let components = v["components"].as_array().expect("components[]");
    assert_eq!(components[0]["name"], "store");
    assert!(components[0]["response_time_ms"].as_f64().is_some());
    assert_eq!(v["metrics"]["nodes_total"], 0);
    assert_eq!(v["metrics"]["jobs_queued"], 0);
}

#[tokio::test]
async fn a_chain_down_or_an_indexer_behind_degrades_without_failing_readiness() {
    let t = app();
    let chain = Arc::new(InMemoryChain::new());
    chain
        .set_unavailable(Some("RPC down (test)".into()))
        .expect("fault");
    let state = t
        .state
        .clone()
        .with_chain(chain.clone())
        .with_chain_info(Arc::new(StuckIndexer));
    let app = bitsage_http::router(state);
    let r = send(&app, get("/readyz")).await;
    assert_eq!(r.status, StatusCode::OK, "degraded is still ready");
    let v = r.json();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["components"]["store"]["status"], "ok");
    assert_eq!(v["components"]["chain"]["status"], "unavailable");
    assert!(v["components"]["chain"]["error"]
        .as_str()
        .is_some_and(|e| e.contains("RPC down")));
    assert_eq!(v["components"]["indexer"]["status"], "degraded");
    assert!(v["components"]["indexer"]["error"]
        .as_str()
        .is_some_and(|e| e.contains("12 failures")));
    let h = send(&app, get("/health")).await.json();
    assert_eq!(h["status"], "degraded");
    let names: Vec<&str> = h["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["store", "chain", "indexer"]);
    // Back up: ok again.
    chain.set_unavailable(None).expect("recover");
    let state = t.state.clone().with_chain(chain);
    let v = send(&bitsage_http::router(state), get("/readyz"))
        .await
        .json();
    assert_eq!(v["status"], "ok");
}
