//! Scale-out with real processes on loopback: three coordinators share one PostgreSQL
//! database and one deployment key; three agents each start at a different coordinator and
//! fail over to the others.
//!
//! Covered: jobs submitted at A are leased and completed through B and C; every receipt is
//! countersigned with the one published key; `?with_proof=true` works on every coordinator;
//! a lease request or heartbeat replayed to another coordinator — or to the same one after a
//! SIGKILL and restart — is refused and nothing is stored; a coordinator SIGKILLed mid-run
//! loses nothing acknowledged and its agents fail over.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use bitsage_core::deployment::DeploymentInfo;
use bitsage_core::node::HardwareReport;
use bitsage_core::{JobId, JobKind, JobStatus, NodeId, ReceiptId, WalletAddress};
use bitsage_http::api::{HeartbeatRequest, LeaseRequest, RegisterRequest};
use bitsage_http::client::CoordinatorClient;
use ed25519_dalek::SigningKey;
use support::*;

const LONG: Duration = Duration::from_secs(180);

async fn submit(client: &CoordinatorClient, n: usize, seed: u64) -> Vec<JobId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let job = JobKind::Poseidon2Chain {
            seed: seed + i as u64,
            length: 64,
        };
        let job = client
            .submit_job(&submission(client, job, 1_000_000 + i as u128, Some(5)).await)
            .await
            .expect("submit");
        ids.push(job.id);
    }
    ids
}

fn keygen(path: &std::path::Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitsage-coordinator"))
        .arg("keygen")
        .arg("--out")
        .arg(path)
        .output()
        .expect("run keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_three_coordinators_on_one_postgres() {
    let Some(url) = pg_url_or_skip("e2e_three_coordinators_on_one_postgres") else {
        return;
    };
    let db = fresh_pg_database(&url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("deployment.key");
    keygen(&key_file);
    let key_arg = key_file.to_str().expect("utf-8 path").to_string();
    let args = ["--key-file", key_arg.as_str(), "--network", "e2e-net"];
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let data: Vec<std::path::PathBuf> = (0..3).map(|i| dir.path().join(format!("c{i}"))).collect();
    let mut coordinators: Vec<Proc> = (0..3)
        .map(|i| start_coordinator_with(&data[i], ports[i], Some(&db), &args))
        .collect();
    let mut clients = Vec::new();
    for p in &ports {
        clients.push(ready_client(*p).await);
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();

    // One published key, the same everywhere.
    let mut infos = Vec::new();
    for c in &clients {
        let info: DeploymentInfo = c.coordinator_info().await.expect("coordinator info");
        info.check().expect("consistent key id");
        assert_eq!(info.network, "e2e-net");
        infos.push(info);
    }
    assert!(infos.windows(2).all(|w| w[0] == w[1]), "{infos:?}");
    let published = infos[0].public_key;

    // Live clients: a WebSocket on C and an SSE stream on A, both following `jobs`.
    let mut ws_c = LiveWs::connect(ports[2], &["jobs"]).await;
    let mut sse_a = LiveSse::open(ports[0], None).await;

    // Agent i starts at coordinator i and fails over to the others.
    let _agents: Vec<Proc> = (0..3)
        .map(|i| {
            let order: Vec<&str> = (0..3).map(|k| urls[(i + k) % 3].as_str()).collect();
            start_agent(&order.join(","), &dir.path().join(format!("node{i}.key")))
        })
        .collect();

    // Jobs submitted at A are completed through whichever coordinator each agent talks to.
    let first = submit(&clients[0], 9, 100).await;
    wait_completed(&clients[0], &first, LONG).await;
    let mut nodes = BTreeSet::new();
    for id in &first {
        for c in &clients {
            let bundle = c
                .receipt_with_proof(&ReceiptId(id.0))
                .await
                .expect("receipt with proof from every coordinator");
            let r = &bundle.receipt.receipt;
            r.verify().expect("signatures");
            assert_eq!(r.body.coordinator_key, published, "one deployment key");
            let env = bundle.envelope.expect("the proof");
            assert_eq!(env.proof_hash, r.body.proof_hash);
            nodes.insert(r.body.node_id.clone());
        }
    }
    assert!(
        nodes.len() >= 2,
        "agents starting at B and C completed jobs too: {nodes:?}"
    );

    // Both live clients saw every job's events, in one order, whichever coordinator produced
    // them: queued (through A) ... completed (through whichever coordinator the agent used).
    let from_ws = collect_until_completed(&mut ws_c, &first).await;
    let from_sse = collect_until_completed(&mut sse_a, &first).await;
    assert_eq!(
        from_ws.iter().map(|e| e.0).collect::<Vec<_>>(),
        from_sse.iter().map(|e| e.0).collect::<Vec<_>>(),
        "the WebSocket on C and the SSE stream on A see the same events in the same order"
    );
    assert!(from_ws.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    for id in &first {
        let kinds: Vec<&str> = from_ws
            .iter()
            .filter(|e| e.2 == id.to_string())
            .map(|e| e.1.as_str())
            .collect();
        assert_eq!(kinds.first(), Some(&"job_queued"), "{id}: {kinds:?}");
        assert_eq!(kinds.last(), Some(&"job_completed"), "{id}: {kinds:?}");
        assert!(kinds.contains(&"job_leased"), "{id}: {kinds:?}");
    }
    // An SSE client reconnecting (to B) from the middle with Last-Event-ID misses none.
    let middle = from_sse[from_sse.len() / 2].0;
    let mut resumed = LiveSse::open(ports[1], Some(middle)).await;
    let rest: Vec<u64> = from_sse
        .iter()
        .map(|e| e.0)
        .filter(|i| *i > middle)
        .collect();
    let mut got = Vec::new();
    while got.len() < rest.len() {
        got.push(resumed.next().await.0);
    }
    assert_eq!(
        got, rest,
        "resumed from {middle}: every later event, in order"
    );
    drop((ws_c, sse_a, resumed));

    // Replays: a node of our own, registered through A.
    let k = SigningKey::from_bytes(&[77; 32]);
    let id = NodeId::parse("e2e-replayer").expect("id");
    let reg = RegisterRequest::signed(
        &k,
        id.clone(),
        WalletAddress::parse(WALLET).expect("wallet"),
        HardwareReport::default(),
        "e2e",
        bitsage_core::time::now(),
    );
    clients[0].register(&reg).await.expect("register");
    let lease = LeaseRequest::signed(&k, id.clone(), 1, bitsage_core::time::now());
    clients[0].lease(&lease).await.expect("lease through A");
    let err = clients[1].lease(&lease).await.expect_err("replay to B");
    assert!(err.is_unauthorized(), "{err}");
    let hb = HeartbeatRequest::signed(
        &k,
        id.clone(),
        5,
        bitsage_core::time::now(),
        None,
        "e2e",
        vec![],
    );
    clients[1]
        .heartbeat(&hb)
        .await
        .expect("heartbeat through B");
    let seen = clients[0].node(&id).await.expect("node").last_seen;
    let err = clients[2].heartbeat(&hb).await.expect_err("replay to C");
    assert!(err.is_unauthorized(), "{err}");
    assert_eq!(
        clients[0].node(&id).await.expect("node").last_seen,
        seen,
        "nothing stored"
    );
    // The same lease request to A after A was SIGKILLed and restarted.
    coordinators[0].kill9();
    coordinators[0] = start_coordinator_with(&data[0], ports[0], Some(&db), &args);
    let a = ready_client(ports[0]).await;
    let err = a.lease(&lease).await.expect_err("replay after restart");
    assert!(err.is_unauthorized(), "{err}");

    // B dies mid-run: nothing acknowledged is lost, its agent fails over.
    let second = submit(&clients[2], 6, 500).await;
    coordinators[1].kill9();
    wait_completed(&clients[2], &second, LONG).await;
    for id in first.iter().chain(&second) {
        let job = clients[2].job(id).await.expect("job");
        assert_eq!(job.status, JobStatus::Completed);
        let r = a.receipt(&ReceiptId(id.0)).await.expect("receipt");
        assert_eq!(
            r.receipt.body.proof_hash,
            job.result.expect("result").proof_hash
        );
    }
    let all = clients[2]
        .receipts(&bitsage_http::api::ReceiptListQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("receipts");
    assert_eq!(
        all.total as usize,
        first.len() + second.len(),
        "one receipt per job"
    );
}

/// (id, type, job id) of a `jobs` event.
type JobEvent = (u64, String, String);

fn job_event(v: &serde_json::Value) -> JobEvent {
    (
        v["id"].as_u64().expect("id"),
        v["type"].as_str().expect("type").to_string(),
        v["data"]["job_id"].as_str().unwrap_or_default().to_string(),
    )
}

/// Reads events until every job of `ids` has its `job_completed`.
async fn collect_until_completed<L: Live>(live: &mut L, ids: &[JobId]) -> Vec<JobEvent> {
    let mut out: Vec<JobEvent> = Vec::new();
    let wanted: BTreeSet<String> = ids.iter().map(|i| i.to_string()).collect();
    loop {
        let done: BTreeSet<String> = out
            .iter()
            .filter(|e| e.1 == "job_completed")
            .map(|e| e.2.clone())
            .collect();
        if wanted.is_subset(&done) {
            return out;
        }
        out.push(live.next().await);
    }
}

/// A live event client.
trait Live {
    /// The next `jobs` event.
    async fn next(&mut self) -> JobEvent;
}

impl Live for LiveWs {
    async fn next(&mut self) -> JobEvent {
        LiveWs::next(self).await
    }
}

impl Live for LiveSse {
    async fn next(&mut self) -> JobEvent {
        LiveSse::next(self).await
    }
}

/// A WebSocket client of `/ws`.
struct LiveWs {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl LiveWs {
    async fn connect(port: u16, topics: &[&str]) -> Self {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let token = support::admin_token(&format!("http://127.0.0.1:{port}")).await;
        let mut req = format!("ws://127.0.0.1:{port}/ws")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket");
        let sub = serde_json::json!({ "type": "subscribe", "topics": topics });
        socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                sub.to_string().into(),
            ))
            .await
            .expect("subscribe");
        let mut me = Self { socket };
        let first = me.frame().await;
        assert_eq!(first["type"], "subscribed", "{first}");
        me
    }

    async fn frame(&mut self) -> serde_json::Value {
        use futures::StreamExt;
        loop {
            let m = tokio::time::timeout(LONG, self.socket.next())
                .await
                .expect("a frame in time")
                .expect("open")
                .expect("frame");
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                return serde_json::from_str(&t).expect("json");
            }
        }
    }

    async fn next(&mut self) -> JobEvent {
        let v = self.frame().await;
        assert!(v["id"].is_u64(), "an event, not {v}");
        job_event(&v)
    }
}

/// An SSE client of `/api/events?topics=jobs`.
struct LiveSse {
    resp: reqwest::Response,
    buf: String,
}

impl LiveSse {
    async fn open(port: u16, last_event_id: Option<u64>) -> Self {
        let token = support::admin_token(&format!("http://127.0.0.1:{port}")).await;
        let mut req = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/events?topics=jobs"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.expect("sse");
        assert_eq!(resp.status(), 200);
        Self {
            resp,
            buf: String::new(),
        }
    }

    async fn next(&mut self) -> JobEvent {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let data: String = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue;
                }
                return job_event(&serde_json::from_str(&data).expect("json"));
            }
            let chunk = tokio::time::timeout(LONG, self.resp.chunk())
                .await
                .expect("an SSE frame in time")
                .expect("chunk")
                .expect("open");
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }
}
