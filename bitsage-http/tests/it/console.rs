//! The web console from the outside, without a browser: every page as admin, operator (own
//! and foreign organisation), viewer and anonymous; the login form (cookies, redirects, a
//! cross-site post refused); what an operator may see in the HTML; security headers and
//! assets. (The real-browser tests live in `console-tests/`.)

use crate::common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use common::{app, key, post_json, send, Reply, TestApp};
use serde_json::{json, Value};

const PASSWORD: &str = "a long enough password";

async fn admin_post(t: &TestApp, uri: &str, body: Value) -> Value {
    let r = send(&t.app, post_json(uri, &body)).await;
    assert!(r.status.is_success(), "{uri}: {} {}", r.status, text(&r));
    if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Logs in through the HTML form; the session cookies as one `Cookie` header value.
async fn form_login(app: &Router, username: &str, password: &str) -> Reply {
    let body = format!(
        "username={username}&password={}&next=%2Fnodes",
        password.replace(' ', "+")
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request");
    send(app, req).await
}

fn cookies_of(r: &Reply) -> String {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter(|kv| !kv.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn session(app: &Router, username: &str) -> String {
    let r = form_login(app, username, PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", text(&r));
    let c = cookies_of(&r);
    assert!(c.contains("bitsage_access="), "{c}");
    c
}

/// A wallet as pages show it.
fn wallet(w: &str) -> String {
    bitsage_core::WalletAddress::parse(w)
        .expect("wallet")
        .to_string()
}

async fn page(app: &Router, uri: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::builder()
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8080");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    send(app, req.body(Body::empty()).expect("request")).await
}

struct World {
    t: TestApp,
    admin: String,
    op_a: String,
    viewer: String,
}

/// Two organisations with one node each; an admin, an operator of org A and a viewer, each
/// with a browser session.
async fn world() -> World {
    let t = app();
    admin_post(
        &t,
        "/api/users",
        json!({ "username": "root", "password": PASSWORD, "role": "admin" }),
    )
    .await;
    let mut orgs = Vec::new();
    for (name, wallet) in [("Org A", "0xa11ce"), ("Org B", "0xb0b")] {
        let id = admin_post(&t, "/api/orgs", json!({ "name": name })).await["id"]
            .as_str()
            .expect("id")
            .to_string();
        admin_post(
            &t,
            &format!("/api/orgs/{id}/wallets"),
            json!({ "wallet": wallet }),
        )
        .await;
        orgs.push(id);
    }
    for (i, wallet) in ["0xa11ce", "0xb0b"].into_iter().enumerate() {
        let k = key(110 + i as u8);
        let base = common::register_request(&k, &format!("node-org-{}", ["a", "b"][i]));
        let req = bitsage_http::api::RegisterRequest::signed(
            &k,
            base.node_id,
            bitsage_core::WalletAddress::parse(wallet).expect("wallet"),
            base.hardware,
            base.agent_version,
            base.sent_at,
        );
        let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    }
    admin_post(
        &t,
        "/api/users",
        json!({ "username": "op-a", "password": PASSWORD, "role": "operator", "org": orgs[0] }),
    )
    .await;
    admin_post(
        &t,
        "/api/users",
        json!({ "username": "watcher", "password": PASSWORD, "role": "viewer" }),
    )
    .await;
    let admin = session(&t.bare, "root").await;
    let op_a = session(&t.bare, "op-a").await;
    let viewer = session(&t.bare, "watcher").await;
    World {
        t,
        admin,
        op_a,
        viewer,
    }
}

#[tokio::test]
async fn every_page_renders_for_an_admin_with_the_console_headers() {
    let w = world().await;
    for uri in [
        "/",
        "/nodes",
        "/nodes?status=pending&region=eu-west&runtime=native&reputation_min=0&reputation_max=100&mine=1",
        "/nodes/node-org-a",
        "/nodes/node-org-a?tab=receipts",
        "/nodes/node-org-a?tab=hardware",
        "/nodes/node-org-a?tab=earnings",
        "/receipts",
        "/earnings",
        "/run-node?platform=linux-cpu&since=2026-01-01T00:00:00Z",
        "/run-node?platform=macos&since=2026-01-01T00:00:00Z",
        "/docs",
    ] {
        let r = page(&w.t.bare, uri, Some(&w.admin)).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", text(&r));
        let html = text(&r);
        assert!(html.starts_with("<!DOCTYPE html>"), "{uri}");
        assert!(html.contains("<nav aria-label=\"Main\">"), "{uri}");
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().expect("csp");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store", "{uri}");
    }
    let nodes = text(&page(&w.t.bare, "/nodes", Some(&w.admin)).await);
    assert!(nodes.contains("node-org-a") && nodes.contains("node-org-b"));
    assert!(nodes.contains("data-status=\"pending\""), "status chips");
    let drawer = text(&page(&w.t.bare, "/nodes/node-org-a", Some(&w.admin)).await);
    assert!(drawer.contains("Eligibility for work"));
    assert!(
        drawer.contains("/api/nodes/node-org-a/quarantine"),
        "admin action"
    );
}

#[tokio::test]
async fn anonymous_visitors_see_the_public_overview_and_are_sent_to_login_elsewhere() {
    let w = world().await;
    let r = page(&w.t.bare, "/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(text(&r).contains("data-kpi=\"active_nodes\""));
    assert!(
        !text(&r).contains("href=\"/nodes\""),
        "no node navigation for anonymous"
    );
    for uri in [
        "/nodes",
        "/receipts",
        "/earnings",
        "/run-node",
        "/nodes/node-org-a",
    ] {
        let r = page(&w.t.bare, uri, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{uri}");
        let to = r.headers[header::LOCATION].to_str().expect("location");
        assert!(to.starts_with("/login?next=%2F"), "{uri} → {to}");
    }
    assert_eq!(page(&w.t.bare, "/docs", None).await.status, StatusCode::OK);
    assert_eq!(page(&w.t.bare, "/login", None).await.status, StatusCode::OK);
    // When the flag is off, the overview needs a login too.
    let r = send(
        &w.t.app,
        common::put_json(
            "/api/flags/allow_anonymous_overview",
            &json!({ "enabled": false }),
        ),
    )
    .await;
    assert!(r.status.is_success(), "{}", text(&r));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        page(&w.t.bare, "/", None).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        page(&w.t.bare, "/", Some(&w.viewer)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_operator_never_sees_another_organisations_nodes_or_earnings() {
    let w = world().await;
    let nodes = text(&page(&w.t.bare, "/nodes", Some(&w.op_a)).await);
    assert!(nodes.contains("node-org-a"));
    assert!(!nodes.contains("node-org-b"), "foreign node in the HTML");
    assert!(
        !nodes.contains("/quarantine"),
        "no admin action for an operator"
    );
    for uri in [
        "/nodes/node-org-b",
        "/nodes/node-org-b?tab=earnings",
        "/earnings?node=node-org-b",
    ] {
        let r = page(&w.t.bare, uri, Some(&w.op_a)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            !text(&r).contains("0xb0b"),
            "{uri} leaks the foreign wallet"
        );
    }
    let receipts = text(&page(&w.t.bare, "/receipts?node=node-org-b", Some(&w.op_a)).await);
    assert!(receipts.contains("not found"), "{receipts}");
    let earnings = text(&page(&w.t.bare, "/earnings", Some(&w.op_a)).await);
    assert!(earnings.contains("node-org-a") && !earnings.contains("node-org-b"));
    let own = text(&page(&w.t.bare, "/nodes/node-org-a", Some(&w.op_a)).await);
    assert!(
        own.contains("/api/nodes/node-org-a/drain"),
        "operator drains own node"
    );
    // The run-a-node page offers the organisation's own wallet only.
    let run = text(
        &page(
            &w.t.bare,
            "/run-node?since=2026-01-01T00:00:00Z",
            Some(&w.op_a),
        )
        .await,
    );
    assert!(run.contains(&wallet("0xa11ce")) && !run.contains(&wallet("0xb0b")));
    assert!(!nodes.contains(&wallet("0xb0b")));
    // A viewer gets the overview, not the nodes.
    let r = page(&w.t.bare, "/nodes", Some(&w.viewer)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_login_form_sets_the_session_and_refuses_cross_site_posts() {
    let w = world().await;
    let r = form_login(&w.t.bare, "root", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/nodes");
    let set: Vec<_> = r.headers.get_all(header::SET_COOKIE).iter().collect();
    assert!(set.iter().any(|c| {
        let c = c.to_str().unwrap_or("");
        c.starts_with("bitsage_access=") && c.contains("HttpOnly") && c.contains("SameSite=Strict")
    }));
    let bad = form_login(&w.t.bare, "root", "wrong password here").await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    assert!(bad.headers[header::LOCATION]
        .to_str()
        .expect("loc")
        .contains("failed=credentials"));
    assert!(
        cookies_of(&bad).is_empty(),
        "no session for a wrong password"
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "username=root&password={}",
            PASSWORD.replace(' ', "+")
        )))
        .expect("request");
    let r = send(&w.t.bare, req).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(cookies_of(&r).is_empty());
    // An open redirect is not possible through `next`.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "username=root&password={}&next=%2F%2Fevil.example",
            PASSWORD.replace(' ', "+")
        )))
        .expect("request");
    let r = send(&w.t.bare, req).await;
    assert_eq!(r.headers[header::LOCATION], "/");
    // A bearer token is not a browser session: the console treats it as anonymous.
    let req = Request::builder()
        .uri("/nodes")
        .header(header::AUTHORIZATION, format!("Bearer {}", w.t.admin_token))
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&w.t.bare, req).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn bad_filters_are_named_on_the_page_and_the_assets_are_served() {
    let w = world().await;
    let r = page(
        &w.t.bare,
        "/nodes?reputation_min=500&status=bogus",
        Some(&w.admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(text(&r).contains("status: unknown status"), "{}", text(&r));
    let r = page(&w.t.bare, "/receipts?from=yesterday", Some(&w.admin)).await;
    assert!(text(&r).contains("from must be a date"));
    let r = page(&w.t.bare, "/receipts?q=not-a-uuid", Some(&w.admin)).await;
    assert!(text(&r).contains("a receipt id or a job id"));
    let r = page(&w.t.bare, "/nodes/..%2F..%2Fetc", Some(&w.admin)).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    for (uri, ct) in [
        ("/console/assets/console.css", "text/css"),
        ("/console/assets/console.js", "text/javascript"),
    ] {
        let r = page(&w.t.bare, uri, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ct")
            .starts_with(ct));
        assert!(r.headers[header::CACHE_CONTROL]
            .to_str()
            .expect("cc")
            .contains("immutable"));
    }
    // The run-a-node page pins its start time, then names this coordinator in agent.yaml.
    let r = page(&w.t.bare, "/run-node", Some(&w.admin)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let to = r.headers[header::LOCATION]
        .to_str()
        .expect("loc")
        .to_string();
    let r = page(&w.t.bare, &to, Some(&w.admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{to}");
    let html = text(&r);
    assert!(
        html.contains("http://127.0.0.1:8080"),
        "coordinator URL in agent.yaml"
    );
    assert!(html.contains("data-step=\"registered\""));
}

/// A node's registration for `wallet`, with an enrolment token when given.
fn enrolled_registration(
    k: u8,
    id: &str,
    wallet: &str,
    token: Option<&str>,
) -> bitsage_http::api::RegisterRequest {
    let key = key(k);
    let base = common::register_request(&key, id);
    let req = bitsage_http::api::RegisterRequest::signed(
        &key,
        base.node_id,
        bitsage_core::WalletAddress::parse(wallet).expect("wallet"),
        base.hardware,
        base.agent_version,
        base.sent_at,
    );
    match token {
        Some(t) => req.with_enrolment_token(t, &key),
        None => req,
    }
}

async fn create_enrolment(app: &Router, cookie: &str, body: Value) -> Reply {
    let csrf = cookie
        .split("; ")
        .find_map(|kv| kv.strip_prefix("bitsage_csrf="))
        .expect("csrf cookie")
        .to_string();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/enrolments")
        .header(header::COOKIE, cookie)
        .header("x-csrf-token", csrf)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    send(app, req).await
}

#[tokio::test]
async fn an_enrolment_token_admits_one_new_node_for_its_wallet_once() {
    let w = world().await;
    let app = &w.t.bare;
    // An operator enrols for their organisation's wallet only; viewers and strangers not at all.
    let r = create_enrolment(app, &w.op_a, json!({ "wallet": "0xb0b" })).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let r = create_enrolment(app, &w.viewer, json!({ "wallet": "0xa11ce" })).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = create_enrolment(app, &w.op_a, json!({ "wallet": "0xa11ce", "ttl_secs": 10 })).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let r = create_enrolment(app, &w.op_a, json!({ "wallet": "0xa11ce" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let created = r.json();
    let token = created["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("bse_"), "{token}");
    assert!(
        created["enrolment"].get("hash").is_none(),
        "the hash is never sent"
    );
    assert_eq!(created["enrolment"]["created_by"], "op-a");

    // Another wallet than the token's: refused, nothing spent.
    let r = send(
        app,
        post_json(
            "/api/nodes/register",
            &enrolled_registration(120, "node-new-1", "0xb0b", Some(&token)),
        ),
    )
    .await;
    r.assert_error(StatusCode::FORBIDDEN, "enrolment_rejected");
    // Its wallet: admitted; the same node again is fine (an agent restarts with its file).
    for _ in 0..2 {
        let r = send(
            app,
            post_json(
                "/api/nodes/register",
                &enrolled_registration(121, "node-new-2", "0xa11ce", Some(&token)),
            ),
        )
        .await;
        assert!(r.status.is_success(), "{}", text(&r));
    }
    // Another node with the spent token: refused.
    let r = send(
        app,
        post_json(
            "/api/nodes/register",
            &enrolled_registration(122, "node-new-3", "0xa11ce", Some(&token)),
        ),
    )
    .await;
    let e = r.assert_error(StatusCode::FORBIDDEN, "enrolment_rejected");
    assert!(
        e.error.message.contains("used by another node"),
        "{}",
        e.error.message
    );
    // An unknown or malformed token: refused with the field named.
    let r = send(
        app,
        post_json(
            "/api/nodes/register",
            &enrolled_registration(123, "node-new-4", "0xa11ce", Some("bse_nope")),
        ),
    )
    .await;
    r.assert_error(StatusCode::FORBIDDEN, "enrolment_rejected");
    let r = send(
        app,
        post_json(
            "/api/nodes/register",
            &enrolled_registration(124, "node-new-5", "0xa11ce", Some("bad token!")),
        ),
    )
    .await;
    let e = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        e.error.message.contains("enrolment_token"),
        "{}",
        e.error.message
    );
    // The token is covered by the node's signature: swapping it breaks the signature.
    let mut swapped = enrolled_registration(125, "node-new-6", "0xa11ce", Some(&token));
    swapped.enrolment_token = Some("bse_000000000000_other".into());
    send(app, post_json("/api/nodes/register", &swapped))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_network_that_requires_enrolment_refuses_new_nodes_without_a_token() {
    let w = world().await;
    let policy = bitsage_core::service::CoordinatorPolicy {
        require_enrolment: true,
        ..Default::default()
    };
    let strict = bitsage_http::router(w.t.state.clone().with_policy(policy));
    let r = send(
        &strict,
        post_json(
            "/api/nodes/register",
            &enrolled_registration(130, "node-stranger", "0xa11ce", None),
        ),
    )
    .await;
    let e = r.assert_error(StatusCode::FORBIDDEN, "enrolment_rejected");
    assert!(
        e.error.message.contains("enrolment token"),
        "{}",
        e.error.message
    );
    // Known nodes re-register without one.
    let r = send(
        &strict,
        post_json(
            "/api/nodes/register",
            &enrolled_registration(110, "node-org-a", "0xa11ce", None),
        ),
    )
    .await;
    assert!(r.status.is_success(), "{}", text(&r));
    let token = create_enrolment(&w.t.bare, &w.op_a, json!({ "wallet": "0xa11ce" }))
        .await
        .json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = send(
        &strict,
        post_json(
            "/api/nodes/register",
            &enrolled_registration(131, "node-invited", "0xa11ce", Some(&token)),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
}
