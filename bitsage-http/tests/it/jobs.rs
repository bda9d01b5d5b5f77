//! Jobs through the router: submit, probe → active, lease → prove → complete with a
//! countersigned receipt and an exact ledger credit; every refusal path (forged, replayed,
//! tampered proof, wrong receipt, expired lease) answers 4xx and stores nothing.

use crate::common;

use axum::http::StatusCode;
use bitsage_core::crypto::SignatureBytes;
use bitsage_core::job::JobFilter;
use bitsage_core::page::PageRequest;
use bitsage_core::receipt::ReceiptFilter;
use bitsage_core::store_prelude::*;
use bitsage_core::{JobKind, JobSpec, JobStatus, NodeStatus, TokenAmount};
use bitsage_http::api::{Assignment, CompleteResponse, FailRequest, JobView, LeaseRequest};
use common::*;
use ed25519_dalek::SigningKey;

async fn submit(t: &TestApp, length: u32, payment: u128) -> JobView {
    let req = submission(
        JobKind::Poseidon2Chain { seed: 5, length },
        payment,
        Some(2),
    );
    let r = send(&t.app, post_json("/api/jobs", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.parse()
}

/// Registers a node and passes its probe: the node is active.
async fn active_node(t: &TestApp, k: &SigningKey, id: &str) {
    register(&t.app, k, id).await;
    let l = lease(t, k, id).await;
    assert_eq!(l.node_status, NodeStatus::Pending);
    let a = l.assignment.expect("a pending node gets a probe");
    let env = prove(a.spec());
    let r = send(
        &t.app,
        post_json("/api/jobs/complete", &probe_completion(k, id, &a, env)),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let c: CompleteResponse = r.parse();
    assert_eq!(c.node_status, NodeStatus::Active);
    assert!(c.receipt.is_none());
    assert!(c.security_bits >= 96);
}

#[tokio::test]
async fn probe_then_job_gives_a_countersigned_receipt_and_an_exact_credit() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    let history = t.store.status_history(&node_id("node-1")).await.unwrap();
    assert!(history
        .iter()
        .any(|c| c.to == NodeStatus::Active && c.reason.contains("probe")));

    // Above 2^64 base units: amounts stay exact end to end.
    let payment = (1u128 << 70) + 12_345;
    let job = submit(&t, 64, payment).await;
    assert_eq!(job.status, JobStatus::Queued);
    let l = lease(&t, &k, "node-1").await;
    let a = l.assignment.expect("a queued job");
    assert_eq!(a.spec().id, job.id);
    let env = prove(a.spec());
    let r = send(
        &t.app,
        post_json(
            "/api/jobs/complete",
            &job_completion(&k, "node-1", &a, env.clone(), |_| {}),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let c: CompleteResponse = r.parse();
    let receipt = c.receipt.expect("a receipt").receipt;
    receipt.verify().expect("both signatures verify");
    let fee = TokenAmount::from_u128(payment).mul_bps(250).unwrap();
    assert_eq!(receipt.body.fee, fee);
    assert_eq!(
        receipt.body.net,
        TokenAmount::from_u128(payment).checked_sub(fee).unwrap()
    );

    let stored = t.store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Completed);
    assert_eq!(stored.result.unwrap().proof_hash, env.proof_hash);
    let total = t
        .store
        .earnings_total(&node_id("node-1"), None)
        .await
        .unwrap();
    assert_eq!(total.entries, 1);
    assert_eq!(total.net, receipt.body.net);

    // Retrying the same completion (e.g. after a coordinator restart) changes nothing.
    let retry = job_completion(&k, "node-1", &a, env, |b| {
        b.completed_at = receipt.body.completed_at;
    });
    let r = send(&t.app, post_json("/api/jobs/complete", &retry)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let total = t
        .store
        .earnings_total(&node_id("node-1"), None)
        .await
        .unwrap();
    assert_eq!(total.entries, 1, "credited once");
    let receipts = t
        .store
        .list_receipts(&ReceiptFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(receipts.total, 1);

    // The receipt is served.
    let r = send(&t.app, get(&format!("/api/receipts/{}", receipt.body.id))).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["payment"], payment.to_string());
}

#[tokio::test]
async fn a_tampered_proof_is_rejected_and_the_node_quarantined() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    let job = submit(&t, 64, 1000).await;
    let a = lease(&t, &k, "node-1").await.assignment.unwrap();
    let mut env = prove(a.spec());
    let mid = env.proof.len() / 2;
    env.proof[mid] ^= 0x01;
    let r = send(
        &t.app,
        post_json(
            "/api/jobs/complete",
            &job_completion(&k, "node-1", &a, env, |_| {}),
        ),
    )
    .await;
    r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "proof_rejected");
    let node = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();
    assert_eq!(node.status, NodeStatus::Quarantined);
    assert!(
        node.status_reason.contains("invalid proof"),
        "{}",
        node.status_reason
    );
    let stored = t.store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        JobStatus::Queued,
        "the job goes back to the queue"
    );
    assert!(t
        .store
        .list_receipts(&ReceiptFilter::default(), PageRequest::default())
        .await
        .unwrap()
        .items
        .is_empty());
    // A quarantined node gets no more work.
    let req = LeaseRequest::signed(&k, node_id("node-1"), 99, bitsage_core::time::now());
    send(&t.app, post_json("/api/jobs/lease", &req))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn a_proof_of_another_job_is_rejected() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    submit(&t, 64, 1000).await;
    let a = lease(&t, &k, "node-1").await.assignment.unwrap();
    let other = JobSpec::new(
        bitsage_core::JobId::new(),
        JobKind::Poseidon2Chain {
            seed: 5,
            length: 64,
        },
    )
    .unwrap();
    let env = prove(&other);
    let r = send(
        &t.app,
        post_json(
            "/api/jobs/complete",
            &job_completion(&k, "node-1", &a, env, |_| {}),
        ),
    )
    .await;
    r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "proof_rejected");
}

#[tokio::test]
async fn forged_and_replayed_requests_are_refused() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    submit(&t, 64, 1000).await;
    // Signed by another key.
    let forged = LeaseRequest::signed(&key(9), node_id("node-1"), 1, bitsage_core::time::now());
    send(&t.app, post_json("/api/jobs/lease", &forged))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Unknown node: the same answer.
    let unknown = LeaseRequest::signed(&k, node_id("nobody"), 1, bitsage_core::time::now());
    send(&t.app, post_json("/api/jobs/lease", &unknown))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // The same signed request twice.
    let once = LeaseRequest::signed(&k, node_id("node-1"), 7, bitsage_core::time::now());
    let r = send(&t.app, post_json("/api/jobs/lease", &once)).await;
    assert_eq!(r.status, StatusCode::OK);
    send(&t.app, post_json("/api/jobs/lease", &once))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Nothing was leased by the refused requests: exactly one lease.
    let leased = t
        .store
        .list_jobs(
            &JobFilter {
                status: Some(JobStatus::Leased),
                node: None,
            },
            PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(leased.total, 1);
    assert_eq!(leased.items[0].attempts, 1);
}

#[tokio::test]
async fn a_receipt_that_does_not_match_the_terms_is_refused_and_nothing_is_credited() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    let job = submit(&t, 64, 10_000).await;
    let a = lease(&t, &k, "node-1").await.assignment.unwrap();
    let env = prove(a.spec());
    let greedy = job_completion(&k, "node-1", &a, env.clone(), |b| {
        b.fee = TokenAmount::from_u128(0);
        b.net = b.payment;
    });
    send(&t.app, post_json("/api/jobs/complete", &greedy))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let stored = t.store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        JobStatus::Leased,
        "still leased, still completable"
    );
    assert_eq!(
        t.store
            .earnings_total(&node_id("node-1"), None)
            .await
            .unwrap()
            .entries,
        0
    );
    // The honest completion still goes through.
    let ok = job_completion(&k, "node-1", &a, env, |_| {});
    let r = send(&t.app, post_json("/api/jobs/complete", &ok)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[tokio::test]
async fn a_bad_receipt_signature_quarantines_the_node() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    submit(&t, 64, 10_000).await;
    let a = lease(&t, &k, "node-1").await.assignment.unwrap();
    let env = prove(a.spec());
    let mut req = job_completion(&k, "node-1", &a, env, |_| {});
    req.receipt_signature = Some(SignatureBytes([3; 64]));
    let req = req.sign(&k);
    send(&t.app, post_json("/api/jobs/complete", &req))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let node = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();
    assert_eq!(node.status, NodeStatus::Quarantined);
}

#[tokio::test]
async fn a_node_can_give_a_lease_back() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    let job = submit(&t, 64, 1000).await;
    let Assignment::Job { lease: l, .. } = lease(&t, &k, "node-1").await.assignment.unwrap() else {
        panic!("a job")
    };
    let req = FailRequest::signed(
        &k,
        &l.reference(),
        "released: agent shutting down",
        bitsage_core::time::now(),
    );
    let r = send(&t.app, post_json("/api/jobs/fail", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v: JobView = r.parse();
    assert_eq!(v.status, JobStatus::Queued);
    assert_eq!(v.id, job.id);
    // The same lease cannot be given back twice.
    let again = FailRequest::signed(&k, &l.reference(), "again", bitsage_core::time::now());
    send(&t.app, post_json("/api/jobs/fail", &again))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn bad_job_submissions_are_refused() {
    let t = app();
    for body in [
        r#"{"job":{"kind":"poseidon2-chain","seed":1,"length":0},"payment":"1"}"#,
        r#"{"job":{"kind":"poseidon2-chain","seed":1,"length":8},"payment":"-1"}"#,
        r#"{"job":{"kind":"poseidon2-chain","seed":1,"length":8},"payment":"1","max_attempts":0}"#,
        r#"{"job":{"kind":"nope"},"payment":"1"}"#,
        r#"{"job":{"kind":"poseidon2-chain","seed":1,"length":8},"payment":"1","extra":1}"#,
        r#"{"job":{"kind":"poseidon2-chain","seed":1,"length":8},"payment":1.5}"#,
        // 2^256 - 1 and 2^128: the fee arithmetic cannot hold them; refused now, not at lease.
        r#"{"job":{"kind":"poseidon2-chain","seed":1,"length":8},"payment":"115792089237316195423570985008687907853269984665640564039457584007913129639935"}"#,
        r#"{"job":{"kind":"poseidon2-chain","seed":1,"length":8},"payment":"340282366920938463463374607431768211456"}"#,
        "not json",
    ] {
        send(&t.app, post_raw("/api/jobs", body))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let page = t
        .store
        .list_jobs(&JobFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.total, 0, "nothing stored");
    send(&t.app, get("/api/jobs/not-a-uuid"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    send(
        &t.app,
        get(&format!("/api/jobs/{}", bitsage_core::JobId::new())),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn only_funded_signed_submissions_are_queued_and_their_payments_reserved() {
    use bitsage_core::PayerLedger;
    let t = app();
    fund(&t.store, 1_000).await;
    let job = || JobKind::Poseidon2Chain { seed: 9, length: 8 };
    let jobs_stored = || async {
        t.store
            .list_jobs(&JobFilter::default(), PageRequest::default())
            .await
            .unwrap()
            .total
    };

    // Within the credit: queued, the payment reserved.
    let ok = submission(job(), 600, None);
    let r = send(&t.app, post_json("/api/jobs", &ok)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let books = t.store.payer(&payer()).await.unwrap().unwrap();
    assert_eq!(books.reserved, TokenAmount::from(600u64));

    // The same signed submission again: a replay.
    send(&t.app, post_json("/api/jobs", &ok))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Beyond what is left (1,000 - 600): 402, nothing stored.
    let e = send(
        &t.app,
        post_json("/api/jobs", &submission(job(), 401, None)),
    )
    .await
    .assert_error(StatusCode::PAYMENT_REQUIRED, "insufficient_funds");
    assert!(
        e.error.message.contains("can cover 400"),
        "{}",
        e.error.message
    );
    // The payment changed after signing: the signature no longer covers it.
    let mut tampered = submission(job(), 10, None);
    tampered.payment = TokenAmount::from(1u64);
    send(&t.app, post_json("/api/jobs", &tampered))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Signed by someone else for the payer, and an account with no stored key.
    let mut forged = bitsage_chain::snip12::signed_submission(
        &starknet::core::types::Felt::from(0xbad_u64),
        payer(),
        job(),
        TokenAmount::from(10u64),
        None,
        "test",
        bitsage_chain::LOCAL_CHAIN_ID,
    )
    .unwrap();
    send(&t.app, post_json("/api/jobs", &forged))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    forged.payer = bitsage_core::WalletAddress::parse("0x5eed").unwrap();
    let e = send(&t.app, post_json("/api/jobs", &forged))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        e.error.message.contains("no public key"),
        "{}",
        e.error.message
    );
    // Sent too long ago.
    let mut stale = submission(job(), 10, None);
    stale.sent_at = bitsage_core::time::now() - chrono::Duration::hours(1);
    send(&t.app, post_json("/api/jobs", &stale))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(jobs_stored().await, 1, "only the funded job is stored");
    let books = t.store.payer(&payer()).await.unwrap().unwrap();
    assert_eq!(
        books.reserved,
        TokenAmount::from(600u64),
        "refusals reserve nothing"
    );
}

#[tokio::test]
async fn a_proof_altered_in_transit_is_refused_without_blaming_the_node() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    let job = submit(&t, 64, 1000).await;
    let a = lease(&t, &k, "node-1").await.assignment.unwrap();
    let env = prove(a.spec());
    // The node signs the envelope it sends; a byte flips on the way.
    let mut req = job_completion(&k, "node-1", &a, env.clone(), |_| {});
    let mid = req.envelope.proof.len() / 2;
    req.envelope.proof[mid] ^= 0x01;
    send(&t.app, post_json("/api/jobs/complete", &req))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "transport_error");
    let node = t.store.get_node(&node_id("node-1")).await.unwrap().unwrap();
    assert_eq!(
        node.status,
        NodeStatus::Active,
        "an honest node is not blamed"
    );
    let stored = t.store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Leased, "the lease is kept");
    // Other fields the verifier reads are covered too (a commitment altered).
    let mut req = job_completion(&k, "node-1", &a, env.clone(), |_| {});
    req.envelope.commitments[0].0[0] ^= 0x80;
    send(&t.app, post_json("/api/jobs/complete", &req))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "transport_error");
    // Sent again intact, it is accepted.
    let req = job_completion(&k, "node-1", &a, env, |_| {});
    let r = send(&t.app, post_json("/api/jobs/complete", &req)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[tokio::test]
async fn signed_requests_are_accepted_once_across_coordinators_and_restarts() {
    let t = app();
    let other = t.sibling();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    // A lease request captured on its way to one coordinator and replayed to another (or to
    // the same one after a restart: a fresh router over the same store).
    let req = LeaseRequest::signed(
        &k,
        node_id("node-1"),
        rand_nonce(),
        bitsage_core::time::now(),
    );
    let r = send(&t.app, post_json("/api/jobs/lease", &req)).await;
    assert_eq!(r.status, StatusCode::OK);
    send(&other, post_json("/api/jobs/lease", &req))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    send(&t.sibling(), post_json("/api/jobs/lease", &req))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // A heartbeat replayed to another coordinator: refused, nothing stored.
    let hb = heartbeat_request(&k, "node-1", 7);
    let r = send(&t.app, post_json("/api/nodes/heartbeat", &hb)).await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = t.store.last_seen(&node_id("node-1")).await.unwrap();
    send(&other, post_json("/api/nodes/heartbeat", &hb))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(t.store.last_seen(&node_id("node-1")).await.unwrap(), seen);
}

#[tokio::test]
async fn a_job_leased_on_one_coordinator_completes_on_another_with_one_deployment_key() {
    let t = app();
    let other = t.sibling();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    let job = submit(&t, 64, 5000).await;
    let a = lease(&t, &k, "node-1").await.assignment.unwrap();
    let env = prove(a.spec());
    let r = send(
        &other,
        post_json(
            "/api/jobs/complete",
            &job_completion(&k, "node-1", &a, env.clone(), |_| {}),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let receipt = r.parse::<CompleteResponse>().receipt.unwrap().receipt;
    // Both coordinators publish the one deployment key the receipt is countersigned with.
    for app in [&t.app, &other] {
        for path in ["/api/coordinator", "/.well-known/bitsage.json"] {
            let r = send(app, get(path)).await;
            assert_eq!(r.status, StatusCode::OK);
            let info: bitsage_core::deployment::DeploymentInfo = r.parse();
            info.check().expect("key id matches the key");
            assert_eq!(info.public_key, receipt.body.coordinator_key);
            assert_eq!(info.network, "test");
        }
    }
    receipt.verify().expect("signatures verify");
    // The proof is served by either coordinator.
    for app in [&t.app, &other] {
        let r = send(
            app,
            get(&format!("/api/receipts/{}?with_proof=true", job.id)),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        assert_eq!(
            v["envelope"]["proof_hash"],
            serde_json::json!(env.proof_hash)
        );
    }
}

/// An app settling through an in-memory chain, an epoch per `epoch_max_jobs` receipts.
fn settling_app(
    epoch_max_jobs: u32,
) -> (TestApp, std::sync::Arc<bitsage_chain::InMemorySettlement>) {
    let chain = std::sync::Arc::new(bitsage_chain::InMemorySettlement::new());
    let mut t = app();
    let policy = bitsage_core::service::CoordinatorPolicy {
        epoch_max_jobs,
        ..Default::default()
    };
    t.state = t
        .state
        .clone()
        .with_policy(policy)
        .with_settlement(chain.clone());
    t.app = common::as_user(bitsage_http::router(t.state.clone()), &t.admin_token);
    (t, chain)
}

/// Proves and completes the next job leased to `id`; returns its receipt.
async fn work_one(t: &TestApp, k: &SigningKey, id: &str) -> bitsage_core::receipt::Receipt {
    let l = lease(t, k, id).await;
    let a = l.assignment.expect("a queued job");
    let env = prove(a.spec());
    let r = send(
        &t.app,
        post_json(
            "/api/jobs/complete",
            &job_completion(k, id, &a, env, |_| {}),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let c: CompleteResponse = r.parse();
    c.receipt.expect("a receipt").receipt
}

#[tokio::test]
async fn verified_work_settles_in_epochs_exactly_once_with_inclusion_proofs() {
    use bitsage_core::service::settle::SettleOutcome;
    use bitsage_core::settlement::InclusionProof;
    use bitsage_core::PayerLedger;
    let (t, chain) = settling_app(2);
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    let now = bitsage_core::time::now;

    // One receipt: not due yet (2 per epoch, the oldest not 60 s old); it is pending.
    submit(&t, 64, 1_000_000).await;
    let r1 = work_one(&t, &k, "node-1").await;
    assert_eq!(
        t.state.coordinator.settle_round(now()).await.unwrap(),
        SettleOutcome::Idle
    );
    send(
        &t.app,
        get(&format!("/api/receipts/{}/inclusion", r1.body.id)),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");
    let earnings = send(&t.app, get("/api/earnings/node-1")).await.json();
    assert_eq!(earnings["settlement"]["pending_receipts"], 1);
    assert_eq!(
        earnings["settlement"]["pending_net"],
        r1.body.net.to_string()
    );
    assert_eq!(earnings["settlement"]["settled_net"], "0");
    // A second: an epoch is due, sent, then accepted.
    submit(&t, 64, 2_000_000).await;
    let r2 = work_one(&t, &k, "node-1").await;
    let sent = t.state.coordinator.settle_round(now()).await.unwrap();
    assert!(
        matches!(sent, SettleOutcome::Sent { epoch: 1, .. }),
        "{sent:?}"
    );
    let accepted = t.state.coordinator.settle_round(now()).await.unwrap();
    assert!(
        matches!(accepted, SettleOutcome::Accepted { epoch: 1, .. }),
        "{accepted:?}"
    );
    assert_eq!(
        t.state.coordinator.settle_round(now()).await.unwrap(),
        SettleOutcome::Idle
    );

    // Paid exactly once: the worker got both nets, the payer's escrow both payments.
    let net = r1.body.net.checked_add(r2.body.net).unwrap();
    assert_eq!(chain.paid_to(&wallet()), net);
    assert_eq!(
        chain.debited_from(&payer()),
        TokenAmount::from(3_000_000u64)
    );
    assert_eq!(chain.successes().len(), 2);
    let books = t.store.payer(&payer()).await.unwrap().unwrap();
    assert_eq!(books.unsettled, TokenAmount::ZERO, "settled on chain");
    let earnings = send(&t.app, get("/api/earnings/node-1")).await.json();
    assert_eq!(earnings["settlement"]["pending_receipts"], 0);
    assert_eq!(earnings["settlement"]["settled_net"], net.to_string());

    // Anyone re-checks a receipt against the root anchored on chain.
    for r in [&r1, &r2] {
        let reply = send(
            &t.app,
            get(&format!("/api/receipts/{}/inclusion", r.body.id)),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["state"], "accepted");
        let proof: InclusionProof = reply.parse();
        proof
            .check(r, &chain.root(1).expect("anchored"))
            .expect("included");
        assert!(proof.check(&r1_other(r), &chain.root(1).unwrap()).is_err());
    }

    // A node caught with a forged proof is slashed in the next epoch.
    let cheat = key(9);
    active_node(&t, &cheat, "node-9").await;
    submit(&t, 64, 5).await;
    let l = lease(&t, &cheat, "node-9").await;
    let a = l.assignment.expect("a job");
    let mut env = prove(a.spec());
    env.proof[10] ^= 1;
    let req = job_completion(&cheat, "node-9", &a, env, |_| {});
    let r = send(&t.app, post_json("/api/jobs/complete", &req)).await;
    assert!(r.status.is_client_error());
    let _ = t.state.coordinator.settle_round(now()).await.unwrap();
    let _ = t.state.coordinator.settle_round(now()).await.unwrap();
    let slashes = chain.slashes();
    assert_eq!(slashes.len(), 1, "{slashes:?}");
    assert_eq!(slashes[0].2, "invalid proof");
}

/// The same receipt with its output changed (a different leaf).
fn r1_other(r: &bitsage_core::receipt::Receipt) -> bitsage_core::receipt::Receipt {
    let mut other = r.clone();
    other.body.output.push('0');
    other
}

#[tokio::test]
async fn a_settlement_outage_queues_epochs_and_pays_them_once_when_back() {
    use bitsage_core::service::settle::SettleOutcome;
    let (t, chain) = settling_app(1);
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    submit(&t, 64, 1_000).await;
    let r = work_one(&t, &k, "node-1").await;
    chain.set_unavailable(Some("RPC down".into()));
    let out = t
        .state
        .coordinator
        .settle_round(bitsage_core::time::now())
        .await
        .unwrap();
    assert!(
        matches!(&out, SettleOutcome::Failed { epoch: 1, reason } if reason.contains("RPC down")),
        "{out:?}"
    );
    let backlog = t.store.settlement_backlog().await.unwrap();
    assert_eq!(backlog.receipts, 1, "nothing lost");
    // The dashboard says so, with the age.
    let summary = send(&t.app, get("/api/summary")).await.json();
    assert_eq!(summary["settlement"]["status"], "ok");
    assert_eq!(summary["settlement"]["pending_receipts"], 1);
    assert!(summary["settlement"]["oldest_pending_age_secs"].is_i64());
    chain.set_unavailable(None);
    for _ in 0..3 {
        t.state
            .coordinator
            .settle_round(bitsage_core::time::now())
            .await
            .unwrap();
    }
    assert_eq!(chain.paid_to(&wallet()), r.body.net, "paid once");
    assert_eq!(t.store.settlement_backlog().await.unwrap().receipts, 0);
}

#[tokio::test]
async fn low_reputation_quarantines_and_a_clearance_sends_the_node_back_through_a_probe() {
    use bitsage_core::reputation::NodeFact;
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    let id = node_id("node-1");
    let now = bitsage_core::time::now() - chrono::TimeDelta::seconds(1);
    // A scripted history: one lease completed, three expired, nine proofs rejected.
    t.store
        .record_node_fact(&id, NodeFact::LeaseCompleted, now, "job a")
        .await
        .unwrap();
    for i in 0..3 {
        t.store
            .record_node_fact(&id, NodeFact::LeaseExpired, now, &format!("job e{i}"))
            .await
            .unwrap();
    }
    for i in 0..9 {
        t.store
            .record_node_fact(&id, NodeFact::ProofRejected, now, &format!("job {i}"))
            .await
            .unwrap();
    }
    let round = t
        .state
        .coordinator
        .update_reputations(bitsage_core::time::now())
        .await
        .unwrap();
    assert_eq!(round.computed, 1);
    assert_eq!(round.quarantined.len(), 1, "{round:?}");
    let node = t.store.get_node(&id).await.unwrap().unwrap();
    assert_eq!(node.status, NodeStatus::Quarantined);
    assert!(
        node.status_reason.contains("below threshold 40"),
        "{}",
        node.status_reason
    );
    let rep = node.reputation.expect("stored");
    assert_eq!(rep.correctness.score, Some(10.0), "1 verified of 10");
    assert!(rep.score.is_some_and(|s| s < 40));

    // The explanation: sub-scores with inputs and weights, the chain's score beside it.
    let v = send(&t.app, get("/api/nodes/node-1/reputation"))
        .await
        .json();
    assert_eq!(
        v["network"]["correctness"]["inputs"]["proofs_rejected"],
        9.0
    );
    assert_eq!(v["network"]["correctness"]["weight"], 0.35);
    assert!(v["network"]["last_probe_at"].as_str().is_some());
    assert_eq!(v["quarantine_below"], 40);
    assert_eq!(v["chain"]["status"], "unavailable", "no chain here: {v}");
    // Filter by reputation range.
    let low = send(&t.app, get("/api/nodes?reputation_max=39"))
        .await
        .json();
    assert_eq!(low["total"], 1);
    let high = send(&t.app, get("/api/nodes?reputation_min=40"))
        .await
        .json();
    assert_eq!(high["total"], 0);
    send(&t.app, get("/api/nodes?reputation_min=101"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // A quarantined node gets no work; the checklist says why.
    let e = send(&t.app, get("/api/nodes/node-1/eligibility"))
        .await
        .json();
    assert_eq!(e["eligible"], false);
    let item = |e: &serde_json::Value, c: &str| {
        e["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["check"] == c)
            .cloned()
            .unwrap()
    };
    assert_eq!(item(&e, "not_quarantined")["ok"], false);
    assert!(item(&e, "not_quarantined")["reason"]
        .as_str()
        .unwrap()
        .contains("reputation"));

    // Clearing: back to pending, and the next lease is a probe; passing it makes it active.
    // The next round does not quarantine it again on evidence from before the clearance.
    let r = send(
        &t.app,
        post_json(
            "/api/nodes/node-1/clear",
            &serde_json::json!({"reason": "operator replaced the GPU"}),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["status"], "pending");
    let round = t
        .state
        .coordinator
        .update_reputations(bitsage_core::time::now())
        .await
        .unwrap();
    assert!(round.quarantined.is_empty(), "{round:?}");
    let l = lease(&t, &k, "node-1").await;
    let a = l.assignment.expect("a probe after clearance");
    assert!(matches!(a, Assignment::Probe { .. }));
    let env = prove(a.spec());
    let r = send(
        &t.app,
        post_json(
            "/api/jobs/complete",
            &probe_completion(&k, "node-1", &a, env),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        t.store.get_node(&id).await.unwrap().unwrap().status,
        NodeStatus::Active
    );
    // Clearing a node that is not quarantined is a conflict; the admin can quarantine.
    send(
        &t.app,
        post_json(
            "/api/nodes/node-1/clear",
            &serde_json::json!({"reason": "x"}),
        ),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");
    let r = send(
        &t.app,
        post_json(
            "/api/nodes/node-1/quarantine",
            &serde_json::json!({"reason": "suspected key leak"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let node = t.store.get_node(&id).await.unwrap().unwrap();
    assert!(node.status_reason.contains("suspected key leak"));
    send(
        &t.app,
        post_json(
            "/api/nodes/node-1/quarantine",
            &serde_json::json!({"reason": ""}),
        ),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn a_drain_stops_new_leases_until_it_ends() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    submit(&t, 64, 1_000).await;
    let r = send(
        &t.app,
        post_json(
            "/api/nodes/node-1/drain",
            &serde_json::json!({"reason": "driver upgrade", "duration_secs": 3600}),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["drain"]["reason"], "driver upgrade");
    let l = lease(&t, &k, "node-1").await;
    assert!(l.assignment.is_none(), "no new lease while draining");
    assert!(l
        .waiting_reason
        .as_deref()
        .is_some_and(|w| w.contains("draining")));
    let e = send(&t.app, get("/api/nodes/node-1/eligibility"))
        .await
        .json();
    assert_eq!(e["eligible"], false);
    for bad in [
        serde_json::json!({"reason": "x", "duration_secs": 0}),
        serde_json::json!({"reason": "x", "duration_secs": 90000}),
        serde_json::json!({"reason": "", "duration_secs": 60}),
    ] {
        send(&t.app, post_json("/api/nodes/node-1/drain", &bad))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let r = send(
        &t.app,
        axum::http::Request::builder()
            .method("DELETE")
            .uri("/api/nodes/node-1/drain")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["drain"].is_null());
    let l = lease(&t, &k, "node-1").await;
    assert!(l.assignment.is_some(), "work again after the drain");
    let windows = t
        .store
        .maintenance_windows(
            &node_id("node-1"),
            bitsage_core::TimeWindow::new(
                bitsage_core::time::now() - chrono::TimeDelta::hours(1),
                bitsage_core::time::now() + chrono::TimeDelta::hours(2),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(windows.len(), 1);
    assert!(
        windows[0].to <= bitsage_core::time::now(),
        "ended early: the window is cut at the undrain"
    );
}

#[tokio::test]
async fn payout_readiness_follows_the_threshold_and_an_admin_marks_it_once() {
    let t = app();
    let k = key(1);
    active_node(&t, &k, "node-1").await;
    let period = bitsage_core::payout::period_of(bitsage_core::time::now());
    // Nothing earned yet: below the threshold (100 SAGE), and it cannot be marked.
    let v = send(&t.app, get("/api/earnings/node-1/payouts?months=2"))
        .await
        .json();
    assert_eq!(v["periods"][0]["period"], period.as_str());
    assert_eq!(v["periods"][0]["state"], "below_threshold");
    assert_eq!(v["threshold"], "100000000000000000000");
    assert_eq!(
        v["reward_estimate"]["status"], "unavailable",
        "no chain: said so, not a made-up estimate: {v}"
    );
    let mark = format!("/api/earnings/node-1/payouts/{period}/ready");
    send(&t.app, post_json(&mark, &serde_json::json!({})))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");

    // 250 SAGE paid: 243.75 net after the 2.5 % fee, over the threshold.
    submit(&t, 64, 250 * 10u128.pow(18)).await;
    let l = lease(&t, &k, "node-1").await;
    let a = l.assignment.expect("the job");
    let env = prove(a.spec());
    let r = send(
        &t.app,
        post_json(
            "/api/jobs/complete",
            &job_completion(&k, "node-1", &a, env, |_| {}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = send(&t.app, get("/api/earnings/node-1/payouts"))
        .await
        .json();
    assert_eq!(v["periods"][0]["state"], "eligible");
    assert_eq!(v["periods"][0]["net"], "243750000000000000000");
    let r = send(&t.app, post_json(&mark, &serde_json::json!({}))).await;
    let e = r.assert_error(StatusCode::CONFLICT, "conflict");
    assert!(e.error.message.contains("not over"), "{}", e.error.message);
    // Last month (credited directly, as a past month's ledger holds it) can be marked.
    let last = bitsage_core::time::now() - chrono::TimeDelta::days(40);
    let last_period = bitsage_core::payout::period_of(last);
    t.store
        .credit_earning(&bitsage_core::ledger::EarningEntry {
            id: bitsage_core::EntryId::new(),
            node_id: node_id("node-1"),
            job_id: bitsage_core::JobId::new(),
            gross: TokenAmount::from_u128(200 * 10u128.pow(18)),
            fee: TokenAmount::from_u128(5 * 10u128.pow(18)),
            net: TokenAmount::from_u128(195 * 10u128.pow(18)),
            credited_at: last,
        })
        .await
        .unwrap();
    let mark = format!("/api/earnings/node-1/payouts/{last_period}/ready");
    let r = send(&t.app, post_json(&mark, &serde_json::json!({}))).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["state"], "marked_ready");
    assert_eq!(r.json()["marked_by"], "admin");
    send(&t.app, post_json(&mark, &serde_json::json!({})))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    // The CSV export carries each day's month state.
    let csv = send(&t.app, get("/api/earnings/node-1?format=csv")).await;
    let text = String::from_utf8_lossy(&csv.body);
    assert!(
        text.starts_with("day,entries,gross,fee,net,payout_state\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.ends_with(",marked_ready")),
        "{text}"
    );
    assert!(
        text.lines()
            .nth(2)
            .is_some_and(|l| l.ends_with(",eligible")),
        "{text}"
    );
    // Bad input.
    for bad in [
        "/api/earnings/node-1/payouts/2026-13/ready",
        "/api/earnings/node-1/payouts/last-month/ready",
    ] {
        send(&t.app, post_json(bad, &serde_json::json!({})))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    send(&t.app, get("/api/earnings/node-1/payouts?months=0"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // With the estimates flag off, no estimate at all.
    t.state
        .coordinator
        .set_flag(
            bitsage_core::flags::Flag::ShowRewardEstimates,
            false,
            "admin",
            bitsage_core::time::now(),
        )
        .await
        .unwrap();
    let v = send(&t.app, get("/api/earnings/node-1/payouts"))
        .await
        .json();
    assert!(v["reward_estimate"].is_null());
}
