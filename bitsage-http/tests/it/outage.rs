//! A database outage from the outside: the coordinator's PostgreSQL connection goes through a
//! TCP proxy this test can cut. While it is cut, requests are answered promptly with 503
//! `unavailable` (within the pool's acquire timeout, not after a hang) and never a 500; when
//! it is restored, the same coordinator answers again without a restart.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bitsage_http::{router, AppState, HttpConfig};
use bitsage_store::testing::{create_database, pg_url_or_skip};
use bitsage_store::PgStore;
use common::{get, key, send};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to `upstream` that can be cut (every connection closed, new ones refused) and
/// restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (u, c) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the database is "down"
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                c.lock().expect("lock").push(task);
            }
        });
        Self { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for t in self.conns.lock().expect("lock").drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `url` with its host:port replaced by `127.0.0.1:<port>`; also the original host:port.
fn via_port(url: &str, port: u16) -> (String, String) {
    let start = url
        .find('@')
        .map_or_else(|| url.find("://").map_or(0, |i| i + 3), |i| i + 1);
    let end = start + url[start..].find('/').unwrap_or(url.len() - start);
    let authority = url[start..end].to_string();
    (
        format!("{}127.0.0.1:{port}{}", &url[..start], &url[end..]),
        authority,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_prompt_503_and_recovers() {
    let Some(server) = pg_url_or_skip("a_database_outage_is_a_prompt_503_and_recovers") else {
        return;
    };
    let db = create_database(&server, "bitsage_outage")
        .await
        .expect("database");
    let (_, upstream) = via_port(&db.url, 0);
    let proxy = Proxy::start(upstream).await;
    let (url, _) = via_port(&db.url, proxy.port);
    let store = Arc::new(PgStore::connect(&url).await.expect("connect via the proxy"));
    let state = AppState::new(
        store.clone(),
        Arc::new(bitsage_prover::StwoProver::new()),
        store.clone(),
        bitsage_core::deployment::DeploymentKey::new(key(42), "test").expect("key"),
        HttpConfig {
            rate_limits: bitsage_http::ratelimit::RateLimits::disabled(),
            ..HttpConfig::default()
        },
    );
    let token = common::admin_token(&state).await;
    let app = common::as_user(router(state), &token);
    assert_eq!(send(&app, get("/api/nodes")).await.status, StatusCode::OK);

    proxy.cut();
    for path in ["/api/nodes", "/api/receipts", "/readyz"] {
        let started = Instant::now();
        let r = send(&app, get(path)).await;
        let took = started.elapsed();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        if path != "/readyz" {
            r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        }
        // The pool waits 2 s for a connection; a hang would be the 10 s of old.
        assert!(
            took < bitsage_store::PG_ACQUIRE_TIMEOUT + Duration::from_secs(2),
            "{path} took {took:?}"
        );
    }

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if send(&app, get("/api/nodes")).await.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    store.close().await;
    let _ = bitsage_store::testing::drop_database(&server, &db.name).await;
}
