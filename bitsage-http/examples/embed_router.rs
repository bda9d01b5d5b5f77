//! Embed the coordinator's HTTP API in your own axum application.
//!
//! ```text
//! cargo run -p bitsage-http --example embed_router
//! ```
//!
//! It builds an [`AppState`] over in-process backends (`bitsage_store::InMemoryStore`,
//! `bitsage_store::InMemoryProofStore`), verifying with `bitsage_prover::StwoProver` and
//! signing with a [`DeploymentKey`], takes [`bitsage_http::router`] and serves it behind a
//! route of your own on 127.0.0.1 (a free port). Then it calls both as a client would: its
//! own `GET /`, BitSage's `GET /livez` and `GET /api/coordinator`, and an unknown API path to
//! show that BitSage's errors keep their `{"error":{"type","message"}}` shape. It prints what
//! it got and shuts the server down.
//!
//! # Your routes first, BitSage's router as the fallback
//! ```ignore
//! Router::new().route("/", get(home)).fallback_service(bitsage_http::router(state))
//! ```
//! Your router answers the paths it has; every other request goes to BitSage's router,
//! unchanged, with BitSage's own fallback (a JSON 404), layers (request ids, security headers,
//! metrics, deadlines, body limits) and access control. Your routes get none of those layers.
//!
//! The other ways to combine routers do not fit here:
//! - `nest("/bitsage", bitsage_http::router(state))` answers every BitSage route with 403
//!   "this route has no access rule": BitSage authorizes a request by looking its route
//!   template ([`axum::extract::MatchedPath`]) up in its route table
//!   (`bitsage_http::auth::ROUTES`), and under `nest` axum reports the template with the
//!   prefix (`/bitsage/livez`), which has no row. BitSage's API is meant to sit at the root of
//!   its origin anyway: agents call `/api/…`, the console links to `/nodes`, `/login`, ….
//! - `merge(bitsage_http::router(state))` works for paths BitSage does not use, but the
//!   console's pages sit at the root (`/`, `/login`, `/nodes`, `/docs`, …): a route of yours
//!   on one of them makes `merge` panic ("Overlapping method route"). With
//!   `fallback_service`, yours wins (here `GET /` replaces the console's overview page).
//!
//! In-memory backends lose everything when the process exits: fine for an example, a demo or
//! a test. A deployment uses `SqliteStore`/`FsProofStore` or `PgStore` and a deployment key
//! that persists (every receipt is countersigned with it) — see `bitsage-coordinator`.
//!
//! `cargo test -p bitsage-http --example embed_router` runs it as a test.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use bitsage_core::deployment::DeploymentKey;
use bitsage_http::{AppState, HttpConfig};
use serde_json::Value;

/// What the client saw (`check` asserts on it).
#[derive(Debug)]
struct Seen {
    /// Body of our own `GET /`.
    home: String,
    /// `GET /livez`: status and body.
    livez: (u16, Value),
    /// `GET /api/coordinator`: the deployment's network name.
    network: String,
    /// `GET /api/no-such-route`: status and body.
    unknown: (u16, Value),
}

/// Our own handler, next to BitSage's API.
async fn home() -> &'static str {
    "my application, with a BitSage coordinator API beside it\n"
}

/// Builds the app, serves it, queries it, shuts it down.
async fn run() -> Result<Seen, Box<dyn std::error::Error>> {
    // The backends. `InMemoryStore` implements every store port the coordinator needs.
    let store = Arc::new(bitsage_store::InMemoryStore::new());
    let proofs = Arc::new(bitsage_store::InMemoryProofStore::new());
    let verifier = Arc::new(bitsage_prover::StwoProver::new());
    // A throw-away key for this run (a deployment loads the same key on every start).
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let deployment = DeploymentKey::new(key, "embed-example")?;
    let state = AppState::new(store, verifier, proofs, deployment, HttpConfig::default());

    let app = Router::new()
        .route("/", get(home))
        .fallback_service(bitsage_http::router(state.clone()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let events = state.events.clone();
    let server = tokio::spawn(async move {
        // With the peer address, so BitSage's rate limits and audit log see each client's IP
        // (without it every caller shares one bucket). `bitsage_http::server::serve` adds the
        // coordinator's connection cap and timeouts on top of this.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
            // Live streams (/ws, /api/events) never end on their own: end them, so the
            // graceful shutdown can finish.
            events.close();
        })
        .await
    });
    println!("serving on http://{addr}");

    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");

    let home = client.get(url("/")).send().await?.text().await?;
    println!("GET /                    {}", home.trim_end());

    let res = client.get(url("/livez")).send().await?;
    let livez = (res.status().as_u16(), res.json::<Value>().await?);
    println!("GET /livez               {} {}", livez.0, livez.1);

    let coordinator: Value = client
        .get(url("/api/coordinator"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let network = coordinator["network"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!(
        "GET /api/coordinator     network {network}, key id {}",
        coordinator["key_id"]
    );

    let res = client.get(url("/api/no-such-route")).send().await?;
    let unknown = (res.status().as_u16(), res.json::<Value>().await?);
    println!("GET /api/no-such-route   {} {}", unknown.0, unknown.1);

    let _ = stop.send(());
    server.await??;
    Ok(Seen {
        home,
        livez,
        network,
        unknown,
    })
}

/// What the run must have seen (panics otherwise).
fn check(seen: &Seen) {
    assert!(seen.home.starts_with("my application"), "{}", seen.home);
    assert_eq!(seen.livez.0, 200);
    assert_eq!(seen.livez.1["status"], "ok");
    assert_eq!(seen.network, "embed-example");
    let (status, body) = &seen.unknown;
    assert_eq!(*status, 404);
    assert_eq!(body["error"]["type"], "not_found", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    check(&run().await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn runs() {
        super::check(&super::run().await.expect("serve and query"));
    }
}
