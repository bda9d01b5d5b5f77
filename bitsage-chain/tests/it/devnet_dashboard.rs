//! The validator dashboard (`bitsage-http`) over `StarknetChainSource` over a real
//! `starknet-devnet`: a `stake` transaction shows up in `/api/validator/status` (skipped with a
//! printed reason when the binary is missing, failed under `CI=true`).

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use bitsage_core::gpu::GpuTier;
use bitsage_core::proof::{ProofEnvelope, VerifiedProof};
use bitsage_core::{DynChainSource, Error, JobSpec, Prover, Result, WalletAddress};
use bitsage_http::{router, AppState, HttpConfig};
use bitsage_store::InMemoryStore;
use http_body_util::BodyExt;
use serde_json::Value;
use support::{deployed_or_skip, fund_and_stake, sage, source, SERIAL};
use tower::ServiceExt;

/// The dashboard never proves or verifies here.
#[derive(Debug)]
struct NoProver;

#[async_trait]
impl Prover for NoProver {
    fn name(&self) -> &'static str {
        "none"
    }
    async fn prove(&self, _: &JobSpec) -> Result<ProofEnvelope> {
        Err(Error::Unavailable {
            source_name: "prover".into(),
            reason: "no prover in this test".into(),
        })
    }
    async fn verify(&self, _: &JobSpec, _: &ProofEnvelope) -> Result<VerifiedProof> {
        Err(Error::Unavailable {
            source_name: "prover".into(),
            reason: "no prover in this test".into(),
        })
    }
}

/// The router with `x-wallet-address` reads signed in as the deployment's admin.
async fn app(chain: DynChainSource) -> Router {
    let state = AppState::new(
        Arc::new(InMemoryStore::new()),
        Arc::new(NoProver),
        Arc::new(bitsage_store::InMemoryProofStore::new()),
        bitsage_core::deployment::DeploymentKey::new(
            ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
            "test",
        )
        .expect("deployment key"),
        // Every request reads the chain: no status answer is reused.
        HttpConfig {
            status_cache_ttl: Duration::ZERO,
            ..HttpConfig::default()
        },
    )
    .with_chain(chain);
    let token = bitsage_http::test_utils::admin_token(&state).await;
    bitsage_http::test_utils::signed_in(router(state), &token)
}

async fn status(app: &Router, wallet: &WalletAddress) -> Value {
    let request = Request::get("/api/validator/status")
        .header("x-wallet-address", wallet.to_string())
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&body).expect("JSON")
}

#[tokio::test]
async fn devnet_dashboard_shows_stake() {
    let _serial = SERIAL.lock().await;
    let Some((devnet, dep)) = deployed_or_skip("devnet_dashboard_shows_stake").await else {
        return;
    };
    let worker = dep.accounts[1].clone();
    // No cache hits: each request reads the chain.
    let chain: DynChainSource = Arc::new(source(&devnet, &dep, Duration::ZERO));
    let app = app(chain).await;

    let before = status(&app, &worker.wallet).await;
    assert_eq!(before["stake"]["status"], "ok", "{before}");
    assert_eq!(before["stake"]["amount"], "0");
    assert_eq!(before["stake"]["is_active"], false);

    fund_and_stake(&dep, &worker, sage(10_000), GpuTier::Frontier).await;

    let after = status(&app, &worker.wallet).await;
    let stake = &after["stake"];
    assert_eq!(stake["status"], "ok", "{after}");
    assert_eq!(stake["amount"], sage(10_000).to_string());
    assert_eq!(stake["amount_formatted"], "10,000 SAGE");
    assert_eq!(stake["gpu_tier"], "frontier");
    assert_eq!(stake["is_active"], true);
    let (head, _) = devnet.head().await.expect("head");
    let read_at_block = stake["block_number"].as_u64().expect("block number");
    assert!(read_at_block > before["stake"]["block_number"].as_u64().expect("block"));
    assert!(read_at_block <= head);
    assert!(stake["block_hash"]
        .as_str()
        .is_some_and(|h| h.starts_with("0x")));
    assert_eq!(after["rewards"]["status"], "ok", "{after}");
    assert_eq!(after["reputation"]["status"], "ok", "{after}");
    assert_eq!(after["reputation"]["score"], 500);
}
