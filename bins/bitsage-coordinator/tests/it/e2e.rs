//! End to end with real processes on loopback: the `bitsage-coordinator` server (SQLite and
//! PostgreSQL) and `bitsage-agent run`, talking HTTP.
//!
//! Covered: register → probe → active; N jobs proven, verified by the coordinator, receipted
//! and credited; an agent killed → stale → offline; a forged heartbeat → 401 and nothing
//! stored; a tampered proof → rejected and the node quarantined; the coordinator killed with
//! SIGKILL and restarted → nothing acknowledged lost, the agent reconnects and continues;
//! `dev` mode → a node active and receipts listed within 60 s.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use bitsage_core::crypto::{Hash32, PublicKey, SignatureBytes};
use bitsage_core::node::HardwareReport;
use bitsage_core::{JobId, JobKind, JobStatus, NodeId, NodeStatus, TokenAmount, WalletAddress};
use bitsage_http::api::{
    Assignment, CompleteRequest, HeartbeatRequest, LeaseRequest, ReceiptListQuery, RegisterRequest,
};
use bitsage_http::client::CoordinatorClient;
use bitsage_prover::StwoProver;
use ed25519_dalek::SigningKey;
use support::*;

const LONG: Duration = Duration::from_secs(120);

async fn submit_jobs(client: &CoordinatorClient, n: usize, payment: u128) -> Vec<JobId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let job = JobKind::Poseidon2Chain {
            seed: 1000 + i as u64,
            length: 64,
        };
        let job = client
            .submit_job(&submission(client, job, payment, Some(3)).await)
            .await
            .expect("submit");
        ids.push(job.id);
    }
    ids
}

async fn only_node(client: &CoordinatorClient) -> NodeId {
    wait_for("a registered node", LONG, || {
        let c = client.clone();
        async move {
            let stats = c.network_stats().await.ok()?;
            (stats.total_workers == 1).then_some(())?;
            let r = c
                .receipts(&ReceiptListQuery::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()?;
            Some(r.receipt.body.node_id)
        }
    })
    .await
}

async fn node_status(client: &CoordinatorClient, id: &NodeId) -> Option<NodeStatus> {
    client.node(id).await.ok().map(|d| d.node.status)
}

/// Everything acknowledged: completed jobs with their proof hashes, receipts, ledger sums.
async fn acknowledged(
    client: &CoordinatorClient,
    ids: &[JobId],
) -> (BTreeMap<JobId, String>, usize) {
    let mut done = BTreeMap::new();
    for id in ids {
        let j = client.job(id).await.expect("job");
        if j.status == JobStatus::Completed {
            let r = j.result.expect("result");
            done.insert(*id, r.proof_hash.to_hex());
        }
    }
    let receipts = client
        .receipts(&ReceiptListQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("receipts");
    (done, receipts.total as usize)
}

async fn jobs_are_proven_verified_and_receipted(pg: Option<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let _coordinator = start_coordinator(dir.path(), port, pg.as_deref());
    let client = ready_client(port).await;
    let _agent = start_agent(client.base_url().as_ref(), &dir.path().join("node.key"));
    let payment = (1u128 << 66) + 7; // above 2^64: exact end to end
    let ids = submit_jobs(&client, 5, payment).await;
    wait_completed(&client, &ids, LONG).await;

    let node = only_node(&client).await;
    assert_eq!(node_status(&client, &node).await, Some(NodeStatus::Active));
    let detail = client.node(&node).await.expect("node");
    assert!(
        detail
            .history
            .iter()
            .any(|c| c.to == NodeStatus::Active && c.reason.contains("probe")),
        "active after its probe: {:?}",
        detail.history
    );
    // The real agent answered the coordinator's attestation challenge; without a GPU it
    // says why, and its heartbeats carry its collector's health.
    assert_ne!(detail.node.attestation.status, "not_requested");
    assert!(!detail.node.attestation.signature_verified);
    assert!(
        detail.gpu_collector.is_some(),
        "heartbeats carry the collector"
    );
    let evidence = client.attestation_evidence(&node).await.expect("evidence");
    assert_eq!(evidence.node_id, node);
    let receipts = client
        .receipts(&ReceiptListQuery {
            node: Some(node.clone()),
            ..Default::default()
        })
        .await
        .expect("receipts");
    assert_eq!(receipts.total, 5);
    for r in &receipts.items {
        r.receipt
            .verify()
            .expect("node signature and countersignature");
        assert_eq!(r.receipt.body.payment, TokenAmount::from_u128(payment));
        let job = client.job(&r.receipt.body.job_id).await.expect("job");
        assert_eq!(
            job.result.expect("result").proof_hash,
            r.receipt.body.proof_hash
        );
    }
    // Offline check of a downloaded receipt with its proof: `bitsage-agent verify-receipt`.
    let first = &receipts.items[0].receipt;
    let bundle = client
        .receipt_with_proof(&first.body.id)
        .await
        .expect("receipt with proof");
    assert!(bundle.envelope.is_some());
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, serde_json::to_vec(&bundle).expect("json")).expect("write");
    // The key is pinned from the coordinator's published identity, never from the receipt.
    let base = client.base_url().to_string();
    let out = std::process::Command::new(agent_bin())
        .arg("verify-receipt")
        .arg(&file)
        .args(["--coordinator", &base])
        .output()
        .expect("run verify-receipt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tampered = serde_json::to_value(&bundle).expect("json");
    tampered["net"] = serde_json::Value::String("1".into());
    std::fs::write(&file, serde_json::to_vec(&tampered).expect("json")).expect("write");
    let out = std::process::Command::new(agent_bin())
        .arg("verify-receipt")
        .arg(&file)
        .args(["--coordinator", &base])
        .output()
        .expect("run verify-receipt");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a tampered receipt must not verify"
    );

    // The ledger: 5 credits of payment − 2.5 %.
    let url = format!("{}api/earnings/{node}", client.base_url());
    let earnings: serde_json::Value = support::admin_get(&url).await;
    let fee = TokenAmount::from_u128(payment).mul_bps(250).expect("fee");
    let net = TokenAmount::from_u128(payment)
        .checked_sub(fee)
        .expect("net")
        .as_u256()
        * 5u32;
    assert_eq!(earnings["total"]["entries"], 5);
    assert_eq!(earnings["total"]["net"], net.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_sqlite_jobs_are_proven_verified_and_receipted() {
    jobs_are_proven_verified_and_receipted(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_postgres_jobs_are_proven_verified_and_receipted() {
    let Some(url) = pg_url_or_skip("e2e_postgres_jobs_are_proven_verified_and_receipted") else {
        return;
    };
    let db = fresh_pg_database(&url).await;
    jobs_are_proven_verified_and_receipted(Some(db)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_sqlite_killed_agent_goes_stale_then_offline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let _coordinator = start_coordinator(dir.path(), port, None);
    let client = ready_client(port).await;
    let mut agent = start_agent(client.base_url().as_ref(), &dir.path().join("node.key"));
    let ids = submit_jobs(&client, 1, 1000).await;
    wait_completed(&client, &ids, LONG).await;
    let node = only_node(&client).await;
    assert_eq!(node_status(&client, &node).await, Some(NodeStatus::Active));

    agent.kill9();
    wait_for("the node to go stale", LONG, || {
        let (c, n) = (client.clone(), node.clone());
        async move { (node_status(&c, &n).await == Some(NodeStatus::Stale)).then_some(()) }
    })
    .await;
    wait_for("the node to go offline", LONG, || {
        let (c, n) = (client.clone(), node.clone());
        async move { (node_status(&c, &n).await == Some(NodeStatus::Offline)).then_some(()) }
    })
    .await;
    let history = client.node(&node).await.expect("node").history;
    let moves: Vec<(NodeStatus, NodeStatus)> = history.iter().map(|c| (c.from, c.to)).collect();
    assert!(
        moves.contains(&(NodeStatus::Active, NodeStatus::Stale)),
        "{moves:?}"
    );
    assert!(
        moves.contains(&(NodeStatus::Stale, NodeStatus::Offline)),
        "{moves:?}"
    );
    assert!(
        history.iter().all(|c| !c.reason.is_empty()),
        "every transition has a reason"
    );

    // Back again: a new agent with the same key heartbeats → pending → probe → active.
    let _agent = start_agent(client.base_url().as_ref(), &dir.path().join("node.key"));
    wait_for("the node to be active again", LONG, || {
        let (c, n) = (client.clone(), node.clone());
        async move { (node_status(&c, &n).await == Some(NodeStatus::Active)).then_some(()) }
    })
    .await;
}

fn hardware() -> HardwareReport {
    HardwareReport {
        gpu_unavailable_reason: Some("test node without GPU".into()),
        ..HardwareReport::default()
    }
}

async fn register(client: &CoordinatorClient, key: &SigningKey, id: &NodeId) {
    let req = RegisterRequest::signed(
        key,
        id.clone(),
        WalletAddress::parse(WALLET).expect("wallet"),
        hardware(),
        "e2e-test/1",
        bitsage_core::time::now(),
    );
    let reg = client.register(&req).await.expect("register");
    assert!(reg.created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_forged_heartbeat_is_refused_and_nothing_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let _coordinator = start_coordinator(dir.path(), port, None);
    let client = ready_client(port).await;
    let key = SigningKey::from_bytes(&[7; 32]);
    let id = NodeId::parse("e2e-node").expect("id");
    register(&client, &key, &id).await;

    let forger = SigningKey::from_bytes(&[8; 32]);
    let forged = HeartbeatRequest::signed(
        &forger,
        id.clone(),
        1,
        bitsage_core::time::now(),
        None,
        "e2e-test/1",
        Vec::new(),
    );
    let err = client.heartbeat(&forged).await.expect_err("forged");
    assert!(err.is_unauthorized(), "{err}");
    let detail = client.node(&id).await.expect("node");
    assert_eq!(
        detail.last_seen, None,
        "the forged heartbeat was not stored"
    );

    // The real key works, and a replay of it is refused.
    let real = HeartbeatRequest::signed(
        &key,
        id.clone(),
        1,
        bitsage_core::time::now(),
        None,
        "e2e-test/1",
        Vec::new(),
    );
    client.heartbeat(&real).await.expect("real heartbeat");
    let seen = client.node(&id).await.expect("node").last_seen;
    assert!(seen.is_some());
    let err = client.heartbeat(&real).await.expect_err("replay");
    assert!(err.is_unauthorized(), "{err}");
    assert_eq!(client.node(&id).await.expect("node").last_seen, seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_tampered_proof_is_rejected_and_the_node_quarantined() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let _coordinator = start_coordinator(dir.path(), port, None);
    let client = ready_client(port).await;
    let key = SigningKey::from_bytes(&[9; 32]);
    let id = NodeId::parse("e2e-cheat").expect("id");
    register(&client, &key, &id).await;

    let lease = client
        .lease(&LeaseRequest::signed(
            &key,
            id.clone(),
            1,
            bitsage_core::time::now(),
        ))
        .await
        .expect("lease");
    let Some(Assignment::Probe { ticket }) = lease.assignment else {
        panic!("a pending node gets a probe")
    };
    let spec = ticket.spec.clone();
    let mut envelope = tokio::task::spawn_blocking(move || StwoProver::new().prove_sync(&spec))
        .await
        .expect("join")
        .expect("prove");
    let at = envelope.proof.len() / 3;
    envelope.proof[at] ^= 0x40;
    let req = CompleteRequest {
        node_id: id.clone(),
        job_id: ticket.spec.id,
        lease_id: None,
        probe: Some(ticket),
        envelope,
        receipt: None,
        receipt_signature: None,
        envelope_digest: Hash32([0; 32]),
        sent_at: bitsage_core::time::now(),
        signature: SignatureBytes([0; 64]),
    }
    .sign(&key);
    let err = client.complete(&req).await.expect_err("tampered");
    assert_eq!(err.status(), Some(422), "{err}");
    assert_eq!(err.kind(), Some("proof_rejected"), "{err}");
    let detail = client.node(&id).await.expect("node");
    assert_eq!(detail.node.status, NodeStatus::Quarantined);
    assert!(
        detail.node.status_reason.contains("invalid proof"),
        "{}",
        detail.node.status_reason
    );
    assert_eq!(detail.node.public_key, PublicKey::of(&key));
}

async fn coordinator_sigkill_restart_loses_nothing(pg: Option<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut coordinator = start_coordinator(dir.path(), port, pg.as_deref());
    let client = ready_client(port).await;
    let _agent = start_agent(client.base_url().as_ref(), &dir.path().join("node.key"));
    let first = submit_jobs(&client, 6, 5_000).await;
    // Wait for a few completions, then kill the coordinator mid-stream.
    wait_for("three completions", LONG, || {
        let c = client.clone();
        async move {
            let r = c.receipts(&ReceiptListQuery::default()).await.ok()?;
            (r.total >= 3).then_some(())
        }
    })
    .await;
    let (before, receipts_before) = acknowledged(&client, &first).await;
    coordinator.kill9();

    let _coordinator = start_coordinator(dir.path(), port, pg.as_deref());
    let client = ready_client(port).await;
    let (after, receipts_after) = acknowledged(&client, &first).await;
    for (job, hash) in &before {
        assert_eq!(after.get(job), Some(hash), "acknowledged job {job} lost");
    }
    assert!(receipts_after >= receipts_before, "receipts lost");

    // The agent reconnects on its own and finishes everything, old and new.
    let second = submit_jobs(&client, 2, 5_000).await;
    let all: Vec<JobId> = first.iter().chain(&second).copied().collect();
    wait_completed(&client, &all, LONG).await;
    let receipts = client
        .receipts(&ReceiptListQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("receipts");
    assert_eq!(receipts.total, all.len() as u64, "one receipt per job");
    let node = receipts.items[0].receipt.body.node_id.clone();
    let url = format!("{}api/earnings/{node}", client.base_url());
    let earnings: serde_json::Value = support::admin_get(&url).await;
    assert_eq!(
        earnings["total"]["entries"],
        all.len(),
        "one ledger credit per job, none twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_sqlite_coordinator_sigkill_restart_loses_nothing() {
    coordinator_sigkill_restart_loses_nothing(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_postgres_coordinator_sigkill_restart_loses_nothing() {
    let Some(url) = pg_url_or_skip("e2e_postgres_coordinator_sigkill_restart_loses_nothing") else {
        return;
    };
    let db = fresh_pg_database(&url).await;
    coordinator_sigkill_restart_loses_nothing(Some(db)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_dev_mode_has_an_active_node_and_receipts_within_60s() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_bitsage-coordinator"))
        .args(["dev", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path())
        .args(["--chain-length", "256", "--run-for-secs", "300"])
        .env("BITSAGE_ADMIN_PASSWORD", support::ADMIN.1)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn dev");
    let mut dev = Proc { child, name: "dev" };
    let client = ready_client(port).await;
    let limit = Duration::from_secs(60);
    wait_for("an active node and a receipt in dev mode", limit, || {
        let c = client.clone();
        async move {
            let stats = c.network_stats().await.ok()?;
            let receipts = c.receipts(&ReceiptListQuery::default()).await.ok()?;
            (stats.active_workers >= 1 && receipts.total >= 1).then_some(())
        }
    })
    .await;
    // With starknet-devnet installed, dev mode deploys our contracts and reads the chain.
    if bitsage_chain::devnet::Devnet::binary().is_some() {
        let url = format!("{}api/contracts", client.base_url());
        let contracts: serde_json::Value = reqwest::get(&url)
            .await
            .expect("contracts")
            .json()
            .await
            .expect("contracts JSON");
        assert_eq!(contracts["status"], "ok", "{contracts}");
        // token, staking, reputation and the escrow.
        assert_eq!(contracts["contracts"].as_array().map(Vec::len), Some(4));
        // The local agent proved its wallet with the predeployed account's signature.
        let nodes: serde_json::Value =
            support::admin_get(&format!("{}api/nodes", client.base_url())).await;
        assert_eq!(nodes["items"][0]["wallet_status"], "proven", "{nodes}");
        let info: serde_json::Value = reqwest::get(format!("{}api/coordinator", client.base_url()))
            .await
            .expect("coordinator")
            .json()
            .await
            .expect("coordinator JSON");
        assert_eq!(info["wallet_chain_id"], "SN_SEPOLIA", "{info}");
        // No orphans: SIGKILL the coordinator and its devnet child dies with it.
        let children = child_pids(dev.child.id());
        assert!(!children.is_empty(), "dev mode runs its devnet as a child");
        dev.kill9();
        wait_for(
            "the devnet child to die with dev",
            Duration::from_secs(10),
            || {
                let alive: Vec<u32> = children
                    .iter()
                    .copied()
                    .filter(|p| is_running(*p))
                    .collect();
                async move { alive.is_empty().then_some(()) }
            },
        )
        .await;
    }
}

/// The pids of `pid`'s children (Linux `/proc`).
fn child_pids(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
