//! Proven wallets through the router: with a wallet verifier (a chain), a node registers only
//! with its wallet account's SNIP-12 signature over its key and a fresh challenge; forged,
//! foreign, stale or misdirected proofs are refused with 403 `wallet_rejected` and store
//! nothing. Without one, the wallet is stored `unverified`, never `proven`.

use crate::common;

use std::sync::Arc;

use axum::http::StatusCode;
use bitsage_chain::snip12::sign_node_wallet;
use bitsage_chain::PinnedKeyWalletVerifier;
use bitsage_core::attestation::AttestationChallenge;
use bitsage_core::crypto::PublicKey;
use bitsage_core::store_prelude::*;
use bitsage_core::wallet::{WalletClaim, WalletProof};
use bitsage_core::WalletAddress;
use bitsage_http::api::{RegisterRequest, RegisterResponse};
use common::*;
use ed25519_dalek::SigningKey;
use starknet::core::types::Felt;
use starknet::signers::SigningKey as StarkKey;

const CHAIN: &str = "SN_TEST";

fn wallet_key() -> Felt {
    Felt::from(0xfeed_u64)
}

fn verifier() -> PinnedKeyWalletVerifier {
    PinnedKeyWalletVerifier::new(CHAIN).with_key(
        wallet(),
        StarkKey::from_secret_scalar(wallet_key())
            .verifying_key()
            .scalar(),
    )
}

fn checked_app() -> TestApp {
    let mut t = app();
    t.state = t.state.clone().with_wallet_verifier(Arc::new(verifier()));
    t.app = common::as_user(bitsage_http::router(t.state.clone()), &t.admin_token);
    t
}

/// A challenge from the app for `node`.
async fn challenge(t: &TestApp, node: &SigningKey) -> AttestationChallenge {
    let uri = format!(
        "/api/nodes/attestation-challenge?public_key={}",
        PublicKey::of(node).to_hex()
    );
    let r = send(&t.app, get(&uri)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.parse()
}

fn proof(c: &AttestationChallenge, wallet: WalletAddress, key: Felt, network: &str) -> WalletProof {
    let claim = WalletClaim::new(wallet, c, network).expect("claim");
    WalletProof {
        challenge: c.clone(),
        signature: sign_node_wallet(&key, &claim, CHAIN).expect("sign"),
    }
}

fn with_proof(node: &SigningKey, id: &str, p: WalletProof) -> RegisterRequest {
    register_request(node, id).with_wallet_proof(p, node)
}

#[tokio::test]
async fn a_proven_wallet_registers_and_is_shown_proven() {
    let t = checked_app();
    let info = send(&t.app, get("/api/coordinator")).await.json();
    assert_eq!(info["wallet_chain_id"], CHAIN);

    let node = key(1);
    let c = challenge(&t, &node).await;
    let req = with_proof(&node, "node-1", proof(&c, wallet(), wallet_key(), "test"));
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let body: RegisterResponse = r.parse();
    assert_eq!(r.json()["node"]["wallet_status"], "proven");
    assert!(body.node.wallet_proven_at.is_some());
    let stored = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();
    assert!(stored.wallet_proven_at.is_some());
    let detail = send(&t.app, get("/api/nodes/node-1")).await.json();
    assert_eq!(detail["wallet_status"], "proven");
    // The wallet's dashboard shows its nodes' proof status.
    let r = send(
        &t.app,
        axum::http::Request::get("/api/validator/status")
            .header("X-Wallet-Address", wallet().to_string())
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(r["workers"]["by_wallet_status"]["proven"], 1, "{r}");
    assert_eq!(r["workers"]["by_wallet_status"]["unverified"], 0, "{r}");
}

#[tokio::test]
async fn missing_forged_foreign_and_stale_proofs_are_refused_and_store_nothing() {
    let t = checked_app();
    let node = key(2);
    let refuse = |req: RegisterRequest, why: &'static str| {
        let app = t.app.clone();
        async move {
            let r = send(&app, post_json("/api/nodes/register", &req)).await;
            let e = r.assert_error(StatusCode::FORBIDDEN, "wallet_rejected");
            assert!(e.error.message.contains(why), "{why}: {}", e.error.message);
        }
    };
    // No proof at all.
    refuse(register_request(&node, "node-2"), "not proven").await;
    let c = challenge(&t, &node).await;
    // Signed by another key (a forger naming someone else's wallet).
    refuse(
        with_proof(
            &node,
            "node-2",
            proof(&c, wallet(), Felt::from(0xbad_u64), "test"),
        ),
        "does not verify",
    )
    .await;
    // The wallet's real signature, but over another network's claim.
    refuse(
        with_proof(
            &node,
            "node-2",
            proof(&c, wallet(), wallet_key(), "other-net"),
        ),
        "does not verify",
    )
    .await;
    // A proof for a wallet with no key pinned (a foreign wallet).
    let foreign = WalletAddress::parse("0xf0e1").expect("wallet");
    let mut req = register_request(&node, "node-2");
    req.wallet = foreign;
    let req = req.with_wallet_proof(proof(&c, foreign, wallet_key(), "test"), &node);
    refuse(req, "no key is pinned").await;
    // A challenge issued to another node key, replayed by this node.
    let other = challenge(&t, &key(3)).await;
    refuse(
        with_proof(
            &node,
            "node-2",
            proof(&other, wallet(), wallet_key(), "test"),
        ),
        "another node key",
    )
    .await;
    // A challenge this deployment did not issue (signed by another key), and an expired one.
    let foreign_challenge = AttestationChallenge::signed(
        &key(77),
        PublicKey::of(&node),
        [7; 32],
        bitsage_core::time::now() + chrono::Duration::minutes(5),
    );
    refuse(
        with_proof(
            &node,
            "node-2",
            proof(&foreign_challenge, wallet(), wallet_key(), "test"),
        ),
        "not issued by this coordinator",
    )
    .await;
    let expired = AttestationChallenge::signed(
        &key(42),
        PublicKey::of(&node),
        [8; 32],
        bitsage_core::time::now() - chrono::Duration::seconds(1),
    );
    refuse(
        with_proof(
            &node,
            "node-2",
            proof(&expired, wallet(), wallet_key(), "test"),
        ),
        "expired",
    )
    .await;
    assert!(t
        .store
        .get_node(&node_id("node-2"))
        .await
        .unwrap()
        .is_none());
    // Malformed signatures are a 400 naming the field.
    let mut bad = serde_json::to_value(with_proof(
        &node,
        "node-2",
        proof(&c, wallet(), wallet_key(), "test"),
    ))
    .unwrap();
    bad["wallet_proof"]["signature"] = serde_json::json!(["not-hex"]);
    send(&t.app, post_json("/api/nodes/register", &bad))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn a_node_registered_unverified_works_only_once_it_proves_its_wallet() {
    // Registered while the deployment had no chain: unverified.
    let unchecked = app();
    let node = key(5);
    register(&unchecked.app, &node, "node-5").await;
    // The deployment gets a chain (same store): no work until the wallet is proven.
    let mut t = unchecked;
    t.state = t.state.clone().with_wallet_verifier(Arc::new(verifier()));
    t.app = common::as_user(bitsage_http::router(t.state.clone()), &t.admin_token);
    let lease = bitsage_http::api::LeaseRequest::signed(
        &node,
        node_id("node-5"),
        1,
        bitsage_core::time::now(),
    );
    let r = send(&t.app, post_json("/api/jobs/lease", &lease)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert!(v["assignment"].is_null(), "{v}");
    assert!(
        v["waiting_reason"]
            .as_str()
            .unwrap()
            .contains("wallet not proven"),
        "{v}"
    );
    // "Why no work?": the wallet item says so.
    let e = send(&t.app, get("/api/nodes/node-5/eligibility"))
        .await
        .json();
    assert_eq!(e["eligible"], false);
    assert!(e["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["check"] == "wallet_proven"
            && i["ok"] == false
            && i["reason"].as_str().unwrap().contains("not proven")));
    // Re-registering with a proof upgrades it.
    let c = challenge(&t, &node).await;
    let req = with_proof(&node, "node-5", proof(&c, wallet(), wallet_key(), "test"));
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["node"]["wallet_status"], "proven");
    let lease = bitsage_http::api::LeaseRequest::signed(
        &node,
        node_id("node-5"),
        2,
        bitsage_core::time::now(),
    );
    let r = send(&t.app, post_json("/api/jobs/lease", &lease)).await;
    assert!(!r.json()["assignment"].is_null(), "a probe once proven");
}

#[tokio::test]
async fn without_a_chain_wallets_are_unverified_even_with_a_proof() {
    let t = app();
    let info = send(&t.app, get("/api/coordinator")).await.json();
    assert!(info.get("wallet_chain_id").is_none(), "{info}");
    let node = key(4);
    let c = challenge(&t, &node).await;
    let req = with_proof(&node, "node-4", proof(&c, wallet(), wallet_key(), "test"));
    let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["node"]["wallet_status"], "unverified");
    let stored = t.store.get_node(&node_id("node-4")).await.unwrap().unwrap();
    assert_eq!(stored.wallet_proven_at, None);
}
