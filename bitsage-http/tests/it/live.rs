//! Live events through a real socket: Server-Sent Events (`GET /api/events`) with
//! `Last-Event-ID` resume, the WebSocket protocol (`/ws`, `/ws/workers`), bad input answered in
//! the API's error shape, the connection cap and slow consumers cut off with a reason.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitsage_core::event::{StoredEvent, Topic};
use bitsage_core::{JobKind, JobQueue, TokenAmount};
use bitsage_http::live::LiveSettings;
use bitsage_http::{router, AppState, HttpConfig};
use bitsage_prover::StwoProver;
use bitsage_store::{InMemoryProofStore, InMemoryStore};
use common::{key, register_request, submission};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    store: Arc<InMemoryStore>,
    state: AppState,
}

async fn server(settings: LiveSettings) -> Server {
    let store = Arc::new(InMemoryStore::new());
    let bus = Arc::new(store.event_bus());
    let state = AppState::new(
        store.clone(),
        Arc::new(StwoProver::new()),
        Arc::new(InMemoryProofStore::new()),
        bitsage_core::deployment::DeploymentKey::new(key(42), "test").expect("key"),
        HttpConfig::default(),
    )
    .with_live_events(Some(bus), settings)
    .with_payer_verifier(Arc::new(bitsage_chain::StoredKeyVerifier::new(
        store.clone(),
    )));
    common::fund(&store, 1_000_000_000).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let token = common::admin_token(&state).await;
    let app = common::as_user(router(state.clone()), &token);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server { addr, store, state }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn submit(&self, seed: u64) -> String {
        let req = submission(JobKind::Poseidon2Chain { seed, length: 64 }, 1000, None);
        let r = reqwest::Client::new()
            .post(self.url("/api/jobs"))
            .json(&req)
            .send()
            .await
            .expect("submit");
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("json");
        v["id"].as_str().expect("id").to_string()
    }
}

/// A Server-Sent Events reader over a reqwest response.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(url: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut req = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        req.send().await.expect("connect")
    }

    fn new(resp: reqwest::Response) -> Self {
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// The next frame's (event name, data), skipping keep-alive comments.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return (event, serde_json::from_str(&data).expect("json data"));
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk())
                .await
                .expect("an SSE frame in time")
                .expect("chunk")
                .expect("stream open");
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    async fn event(&mut self) -> StoredEvent {
        let (_, data) = self.next().await;
        serde_json::from_value(data).expect("an event envelope")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_events_in_order_and_resumes_from_last_event_id() {
    let s = server(LiveSettings::default()).await;
    let mut sse = Sse::new(Sse::open(&s.url("/api/events?topics=jobs"), None).await);
    let mut ids = Vec::new();
    for seed in 0..3 {
        ids.push(s.submit(seed).await);
    }
    let mut got = Vec::new();
    for job in &ids {
        let e = sse.event().await;
        assert_eq!((e.topic, e.kind.as_str()), (Topic::Jobs, "job_queued"));
        assert_eq!(e.data["job_id"], json!(job));
        got.push(e.id);
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    // A node registering is a `workers` event: not on this stream.
    // Reconnect after the first: the two missed events come from the outbox, then live ones.
    let mut resumed =
        Sse::new(Sse::open(&s.url("/api/events?topics=jobs"), Some(&got[0].to_string())).await);
    assert_eq!(resumed.event().await.id, got[1]);
    assert_eq!(resumed.event().await.id, got[2]);
    let fourth = s.submit(9).await;
    let e = resumed.event().await;
    assert_eq!(e.data["job_id"], json!(fourth));
    assert!(e.id > got[2]);
    // `?after=` works the same.
    let mut after =
        Sse::new(Sse::open(&s.url(&format!("/api/events?after={}", got[1])), None).await);
    assert_eq!(after.event().await.id, got[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_bad_input_is_refused_in_the_error_shape() {
    let s = server(LiveSettings::default()).await;
    s.submit(1).await;
    for (path, id, needle) in [
        (
            "/api/events?topics=jobs,gossip",
            None,
            "unknown topic \"gossip\"",
        ),
        ("/api/events", Some("abc"), "Last-Event-ID"),
        ("/api/events", Some("999999999"), "beyond the newest event"),
        ("/api/events?after=-1", None, "after"),
        ("/api/events?bogus=1", None, "bogus"),
    ] {
        let r = Sse::open(&s.url(path), id).await;
        assert_eq!(r.status(), 400, "{path} {id:?}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"]["type"], "invalid_request");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains(needle), "{path}: {m}");
    }
    // A plain GET on a WebSocket route: 426 in the usual shape.
    let r = reqwest::get(s.url("/ws")).await.expect("get");
    assert_eq!(r.status(), 426);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["type"], "upgrade_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_answers_503() {
    let s = server(LiveSettings {
        max_connections: 1,
        ..LiveSettings::default()
    })
    .await;
    let _first = Sse::new(Sse::open(&s.url("/api/events"), None).await);
    let second = Sse::open(&s.url("/api/events"), None).await;
    assert_eq!(second.status(), 503);
    let v: Value = second.json().await.expect("json");
    assert_eq!(v["error"]["type"], "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_with_a_reason() {
    let s = server(LiveSettings {
        buffer: 4,
        ..LiveSettings::default()
    })
    .await;
    let topics: BTreeSet<Topic> = Topic::ALL.into_iter().collect();
    let mut sub = s
        .state
        .events
        .subscribe(topics, None)
        .await
        .expect("subscribe");
    for i in 0..20 {
        let spec = bitsage_core::JobSpec::new(
            bitsage_core::JobId::new(),
            JobKind::Poseidon2Chain {
                seed: i,
                length: 64,
            },
        )
        .expect("spec");
        s.store
            .enqueue_job(&bitsage_core::job::NewJob {
                spec,
                payment: TokenAmount::from_u128(1),
                max_attempts: 1,
                submitted_at: bitsage_core::time::now(),
                funding: None,
            })
            .await
            .expect("enqueue");
    }
    let newest = bitsage_core::EventLog::last_event_id(&*s.store)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while s.state.events.cursor() < newest {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the hub caught up");
    match sub.next().await {
        Err(bitsage_http::live::Ended::SlowConsumer(reason)) => {
            assert!(reason.contains("resume from event"), "{reason}")
        }
        other => panic!("expected a slow-consumer cut-off, got {other:?}"),
    }
}

async fn ws(
    s: &Server,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", s.addr))
        .await
        .expect("websocket");
    socket
}

async fn frame<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let m = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        match m {
            Message::Text(t) => return serde_json::from_str(&t).expect("json frame"),
            Message::Close(c) => {
                return json!({ "type": "closed", "code": c.map(|c| u16::from(c.code)) })
            }
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscribes_delivers_and_refuses_bad_frames() {
    let s = server(LiveSettings::default()).await;
    let mut socket = ws(&s, "/ws").await;
    socket
        .send(Message::Text(
            r#"{"type":"subscribe","topics":["jobs"]}"#.into(),
        ))
        .await
        .unwrap();
    let f = frame(&mut socket).await;
    assert_eq!(f["type"], "subscribed");
    assert_eq!(f["topics"], json!(["jobs"]));
    let job = s.submit(1).await;
    let e = frame(&mut socket).await;
    assert_eq!(
        (e["topic"].as_str(), e["type"].as_str()),
        (Some("jobs"), Some("job_queued"))
    );
    assert_eq!(e["data"]["job_id"], json!(job));
    for (bad, needle) in [
        (
            r#"{"type":"subscribe","topics":["gossip"]}"#,
            "unknown topic",
        ),
        (r#"{"type":"subscribe","topics":[]}"#, "at least one topic"),
        (
            r#"{"type":"subscribe","topics":["jobs"],"after":999999}"#,
            "beyond the newest",
        ),
        ("not json", "expected"),
        (r#"{"type":"dance"}"#, "expected"),
    ] {
        socket.send(Message::Text(bad.into())).await.unwrap();
        let f = frame(&mut socket).await;
        assert_eq!(f["type"], "error", "{bad}");
        assert!(
            f["error"]["message"].as_str().unwrap().contains(needle),
            "{bad}: {f}"
        );
    }
    // Still subscribed and delivering after the refusals.
    let job = s.submit(2).await;
    let e = frame(&mut socket).await;
    assert_eq!(e["data"]["job_id"], json!(job));
    // An oversized frame closes the connection with a reason.
    socket
        .send(Message::Text("x".repeat(10_000).into()))
        .await
        .unwrap();
    let mut closed = false;
    for _ in 0..3 {
        let f = frame(&mut socket).await;
        if f["type"] == "closed" {
            assert_eq!(f["code"], 1009);
            closed = true;
            break;
        }
        assert_eq!(f["type"], "error");
    }
    assert!(closed, "an oversized frame closes the socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_channels_are_subscribed_from_the_start() {
    let s = server(LiveSettings::default()).await;
    let mut workers = ws(&s, "/ws/workers").await;
    assert_eq!(frame(&mut workers).await["type"], "subscribed");
    let mut jobs = ws(&s, "/ws/jobs").await;
    assert_eq!(frame(&mut jobs).await["topics"], json!(["jobs"]));
    let r = reqwest::Client::new()
        .post(s.url("/api/nodes/register"))
        .json(&register_request(&key(3), "node-3"))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 201);
    let e = frame(&mut workers).await;
    assert_eq!(e["type"], "node_registered");
    assert_eq!(e["data"]["node_id"], "node-3");
    let job = s.submit(5).await;
    assert_eq!(
        frame(&mut jobs).await["data"]["job_id"],
        json!(job),
        "jobs only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_hub_ends_live_streams_so_shutdown_can_finish() {
    let s = server(LiveSettings::default()).await;
    let mut sse = Sse::new(Sse::open(&s.url("/api/events"), None).await);
    let mut socket = ws(&s, "/ws/jobs").await;
    assert_eq!(frame(&mut socket).await["type"], "subscribed");
    s.state.events.close();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match sse.resp.chunk().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the SSE stream ends");
    assert_eq!(
        frame(&mut socket).await["type"],
        "closed",
        "the socket is closed"
    );
    let r = Sse::open(&s.url("/api/events"), None).await;
    assert_eq!(
        r.status(),
        503,
        "no new live connection while shutting down"
    );
}
