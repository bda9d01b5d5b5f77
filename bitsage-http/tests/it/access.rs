//! Accounts and access control from the outside: every route of the table called as admin,
//! operator (own and foreign organisation), viewer, API key and anonymous; logins, refresh
//! rotation with reuse detection, expiry, logout, CSRF, disabled users; API keys; the audit
//! log.

use crate::common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use bitsage_core::access::Role;
use bitsage_http::auth::{Access, ROUTES};
use common::{app, get, key, post_json, send, TestApp};
use serde_json::{json, Value};
use tower::ServiceExt;

const PASSWORD: &str = "a long enough password";

/// The status of a request, without reading the body (live routes never end theirs).
async fn status(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .expect("body")
            .to_bytes();
        return (status, String::from_utf8_lossy(&body).into_owned());
    }
    (status, String::new())
}

fn with_token(mut req: Request<Body>, token: Option<&str>) -> Request<Body> {
    if let Some(t) = token {
        req.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    req
}

async fn admin_post(t: &TestApp, uri: &str, body: Value) -> Value {
    let r = send(&t.app, post_json(uri, &body)).await;
    assert!(
        r.status.is_success(),
        "{uri}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

async fn login(app: &Router, username: &str, password: &str) -> Value {
    let r = send(
        app,
        post_json(
            "/api/auth/login",
            &json!({ "username": username, "password": password }),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// A user with `role` (in `org` when given) and its access token.
async fn user(t: &TestApp, name: &str, role: Role, org: Option<&str>) -> String {
    admin_post(
        t,
        "/api/users",
        json!({ "username": name, "password": PASSWORD, "role": role.as_str(), "org": org }),
    )
    .await;
    login(&t.bare, name, PASSWORD).await["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// Two organisations, each owning one wallet with one registered node.
struct World {
    t: TestApp,
    admin: String,
    op_a: String,
    viewer: String,
    node_a: String,
    node_b: String,
    wallet_a: String,
}

async fn world() -> World {
    let t = app();
    let org_a = admin_post(&t, "/api/orgs", json!({ "name": "Org A" })).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let org_b = admin_post(&t, "/api/orgs", json!({ "name": "Org B" })).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let wallet_a = "0xa11ce";
    let wallet_b = "0xb0b";
    for (org, wallet) in [(&org_a, wallet_a), (&org_b, wallet_b)] {
        let r = send(
            &t.app,
            post_json(
                &format!("/api/orgs/{org}/wallets"),
                &json!({ "wallet": wallet }),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let mut ids = Vec::new();
    for (i, wallet) in [wallet_a, wallet_b].into_iter().enumerate() {
        let k = key(100 + i as u8);
        let id = format!("node-{i}");
        let mut req = common::register_request(&k, &id);
        req.wallet = bitsage_core::WalletAddress::parse(wallet).expect("wallet");
        req = bitsage_http::api::RegisterRequest::signed(
            &k,
            req.node_id,
            req.wallet,
            req.hardware,
            req.agent_version,
            req.sent_at,
        );
        let r = send(&t.app, post_json("/api/nodes/register", &req)).await;
        assert_eq!(r.status, StatusCode::CREATED);
        ids.push(id);
    }
    let op_a = user(&t, "operator-a", Role::Operator, Some(&org_a)).await;
    let _op_b = user(&t, "operator-b", Role::Operator, Some(&org_b)).await;
    let viewer = user(&t, "viewer", Role::Viewer, None).await;
    World {
        admin: t.admin_token.clone(),
        t,
        op_a,
        viewer,
        node_a: ids[0].clone(),
        node_b: ids[1].clone(),
        wallet_a: wallet_a.to_string(),
    }
}

fn request(method: &str, path: &str) -> Request<Body> {
    let uri = path
        .replace("{id}", "00000000-0000-4000-8000-000000000000")
        .replace("{node}", "node-0")
        .replace("{wallet}", "0x1");
    let uri = match uri.as_str() {
        "/api/worker/uptime" => "/api/worker/uptime?node=node-0".to_string(),
        "/api/receipts" => "/api/receipts?node=node-0".to_string(),
        _ => uri,
    };
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-wallet-address", "0xa11ce");
    if method != "GET" {
        req = req.header(header::CONTENT_LENGTH, 2);
    }
    req.body(Body::from(if method == "GET" { "" } else { "{}" }))
        .expect("request")
}

fn is_denied(s: StatusCode, body: &str) -> bool {
    (s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN)
        && !body.contains("wallet_rejected")
        && !body.contains("signature")
}

/// Every route × every role gets exactly what the table says.
#[tokio::test]
async fn every_route_answers_each_role_as_the_table_says() {
    let w = world().await;
    let app = &w.t.bare;
    let callers: [(&str, Option<&str>, Option<Role>); 4] = [
        ("admin", Some(&w.admin), Some(Role::Admin)),
        ("operator", Some(&w.op_a), Some(Role::Operator)),
        ("viewer", Some(&w.viewer), Some(Role::Viewer)),
        ("anonymous", None, None),
    ];
    for row in ROUTES {
        for (who, token, role) in &callers {
            let (s, body) = status(app, with_token(request(row.method, row.path), *token)).await;
            assert!(
                !body.contains("no access rule"),
                "{} {}: missing from the table",
                row.method,
                row.path
            );
            let allowed = match row.access {
                Access::Public | Access::NodeSigned | Access::Overview => true,
                Access::Roles { roles, .. } => role.is_some_and(|r| roles.contains(&r)),
            };
            if allowed {
                assert!(
                    !is_denied(s, &body) || row.access == Access::NodeSigned,
                    "{} {} as {who}: allowed by the table, got {s} {body}",
                    row.method,
                    row.path
                );
            } else {
                let want = if token.is_none() {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(
                    s, want,
                    "{} {} as {who}: refused by the table, got {s} {body}",
                    row.method, row.path
                );
            }
        }
    }
}

#[tokio::test]
async fn operators_see_only_their_organisations_nodes() {
    let w = world().await;
    let app = &w.t.bare;
    let nodes = send(app, with_token(get("/api/nodes"), Some(&w.op_a))).await;
    assert_eq!(nodes.status, StatusCode::OK);
    let ids: Vec<String> = nodes.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids, vec![w.node_a.clone()]);
    let all = send(app, with_token(get("/api/nodes"), Some(&w.admin))).await;
    assert_eq!(all.json()["total"], 2);
    for path in [
        format!("/api/nodes/{}", w.node_b),
        format!("/api/earnings/{}", w.node_b),
        format!("/api/worker/uptime?node={}", w.node_b),
        format!("/api/receipts?node={}", w.node_b),
    ] {
        let r = send(app, with_token(get(&path), Some(&w.op_a))).await;
        r.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    for path in [
        format!("/api/nodes/{}", w.node_a),
        format!("/api/earnings/{}", w.node_a),
        format!("/api/receipts?node={}", w.node_a),
    ] {
        let r = send(app, with_token(get(&path), Some(&w.op_a))).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    // The dashboard's wallet views: own wallet yes, another no.
    let mut own = with_token(get("/api/validator/status"), Some(&w.op_a));
    own.headers_mut()
        .insert("x-wallet-address", w.wallet_a.parse().expect("header"));
    assert_eq!(send(app, own).await.status, StatusCode::OK);
    let mut foreign = with_token(get("/api/validator/status"), Some(&w.op_a));
    foreign
        .headers_mut()
        .insert("x-wallet-address", "0xb0b".parse().expect("header"));
    send(app, foreign)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    // Operators list receipts one node at a time.
    send(app, with_token(get("/api/receipts"), Some(&w.op_a)))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn the_anonymous_overview_follows_its_flag() {
    let t = app();
    assert_eq!(
        send(&t.bare, get("/api/network/stats")).await.status,
        StatusCode::OK
    );
    // An admin turns the flag off at runtime: every coordinator on the store follows.
    let r = send(
        &t.app,
        common::put_json(
            "/api/flags/allow_anonymous_overview",
            &json!({ "enabled": false }),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["set_by"], "admin");
    let closed = t.bare.clone();
    send(&closed, get("/api/network/stats"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let ok = send(
        &closed,
        with_token(get("/api/network/stats"), Some(&t.admin_token)),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_login() {
    let t = app();
    let s1 = login(&t.bare, common::ADMIN.0, common::ADMIN.1).await;
    let r1 = s1["refresh_token"].as_str().expect("refresh").to_string();
    let refresh = |token: &str| post_json("/api/auth/refresh", &json!({ "refresh_token": token }));
    let s2 = send(&t.bare, refresh(&r1)).await;
    assert_eq!(s2.status, StatusCode::OK);
    let r2 = s2.json()["refresh_token"].as_str().expect("r2").to_string();
    assert_ne!(r1, r2);
    // r1 again: reuse → refused, and the whole family (r2 too) is revoked.
    let reused = send(&t.bare, refresh(&r1)).await;
    let e = reused.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        e.error.message.contains("already used"),
        "{}",
        e.error.message
    );
    send(&t.bare, refresh(&r2))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Logout revokes a fresh login's family.
    let s3 = login(&t.bare, common::ADMIN.0, common::ADMIN.1).await;
    let r3 = s3["refresh_token"].as_str().expect("r3").to_string();
    let out = send(
        &t.bare,
        post_json("/api/auth/logout", &json!({ "refresh_token": r3 })),
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    send(&t.bare, refresh(&r3))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // A wrong password and an unknown user get the same answer.
    for (u, p) in [(common::ADMIN.0, "wrong password!!"), ("nobody", PASSWORD)] {
        let r = send(
            &t.bare,
            post_json("/api/auth/login", &json!({ "username": u, "password": p })),
        )
        .await;
        let e = r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(e.error.message, "wrong username or password");
    }
}

#[tokio::test]
async fn access_tokens_expire_and_the_scheme_is_case_insensitive() {
    let t = app();
    let s = login(&t.bare, common::ADMIN.0, common::ADMIN.1).await;
    let token = s["access_token"].as_str().expect("token");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let mut req = get("/api/users/me");
        req.headers_mut().insert(
            header::AUTHORIZATION,
            format!("{scheme} {token}").parse().expect("header"),
        );
        let r = send(&t.bare, req).await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}");
        assert_eq!(r.json()["role"], "admin");
    }
    let now = bitsage_core::time::now();
    assert!(t.state.accounts.authenticate(token, now).await.is_ok());
    let later = now + chrono::TimeDelta::minutes(16);
    assert!(t.state.accounts.authenticate(token, later).await.is_err());
    let tampered = format!("{}x", &token[..token.len() - 1]);
    send(&t.bare, with_token(get("/api/users/me"), Some(&tampered)))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn browser_sessions_need_the_csrf_token_on_changes() {
    let t = app();
    let r = t
        .bare
        .clone()
        .oneshot(post_json(
            "/api/auth/login",
            &json!({ "username": common::ADMIN.0, "password": common::ADMIN.1 }),
        ))
        .await
        .expect("login");
    let cookies: Vec<String> = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("cookie").to_string())
        .collect();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("bitsage_access="))
        .expect("access cookie");
    assert!(access.contains("HttpOnly") && access.contains("Secure"));
    assert!(access.contains("SameSite=Strict"));
    let pair = |c: &String| c.split(';').next().expect("pair").to_string();
    let csrf_pair = pair(
        cookies
            .iter()
            .find(|c| c.starts_with("bitsage_csrf="))
            .expect("csrf cookie"),
    );
    let csrf = csrf_pair.split_once('=').expect("=").1.to_string();
    let cookie_header = format!("{}; {}", pair(access), csrf_pair);
    // A read with the cookie alone works.
    let mut read = get("/api/users/me");
    read.headers_mut()
        .insert(header::COOKIE, cookie_header.parse().expect("cookie"));
    assert_eq!(send(&t.bare, read).await.status, StatusCode::OK);
    // A change without the header is refused and audited; with it, it goes through.
    let change = |with_csrf: bool| {
        let mut req = post_json("/api/orgs", &json!({ "name": format!("Org {with_csrf}") }));
        req.headers_mut()
            .insert(header::COOKIE, cookie_header.parse().expect("cookie"));
        if with_csrf {
            req.headers_mut()
                .insert("x-csrf-token", csrf.parse().expect("csrf"));
        }
        req
    };
    send(&t.bare, change(false))
        .await
        .assert_error(StatusCode::FORBIDDEN, "csrf_rejected");
    assert_eq!(
        send(&t.bare, change(true)).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_disabled_user_can_neither_log_in_nor_use_its_tokens() {
    let t = app();
    let created = admin_post(
        &t,
        "/api/users",
        json!({ "username": "vera", "password": PASSWORD, "role": "viewer" }),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_string();
    let session = login(&t.bare, "vera", PASSWORD).await;
    let token = session["access_token"].as_str().expect("token").to_string();
    let refresh = session["refresh_token"].as_str().expect("r").to_string();
    let mut patch = post_json(&format!("/api/users/{id}"), &json!({ "disabled": true }));
    *patch.method_mut() = Method::PATCH;
    let r = send(&t.app, patch).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["disabled"], true);
    send(&t.bare, with_token(get("/api/users/me"), Some(&token)))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    send(
        &t.bare,
        post_json(
            "/api/auth/login",
            &json!({ "username": "vera", "password": PASSWORD }),
        ),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    send(
        &t.bare,
        post_json("/api/auth/refresh", &json!({ "refresh_token": refresh })),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn api_keys_are_scoped_shown_once_and_revocable() {
    let t = app();
    let created = admin_post(
        &t,
        "/api/keys",
        json!({ "name": "submitter", "scopes": ["jobs:submit"], "role": "viewer" }),
    )
    .await;
    let secret = created["secret"].as_str().expect("secret").to_string();
    let id = created["key"]["id"].as_str().expect("id").to_string();
    assert!(created["key"].get("hash").is_none());
    // Its scope: job submission (the payer's signature still decides).
    let submit = with_token(
        post_json(
            "/api/jobs",
            &common::submission(
                bitsage_core::JobKind::Poseidon2Chain { seed: 1, length: 4 },
                1000,
                None,
            ),
        ),
        Some(&secret),
    );
    assert_eq!(send(&t.bare, submit).await.status, StatusCode::CREATED);
    // Not its scope or role.
    let r = send(&t.bare, with_token(get("/api/nodes"), Some(&secret))).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = send(&t.bare, with_token(get("/api/users/me"), Some(&secret))).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    // Listed without its secret, with its last use.
    let list = send(&t.app, get("/api/keys")).await.json();
    let listed = list
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("listed")
        .clone();
    assert!(!listed.to_string().contains(&secret[20..]));
    assert!(listed["last_used_at"].is_string());
    // Revoked: refused.
    let mut del = get(&format!("/api/keys/{id}"));
    *del.method_mut() = Method::DELETE;
    assert_eq!(send(&t.app, del).await.status, StatusCode::NO_CONTENT);
    let submit = with_token(
        post_json(
            "/api/jobs",
            &common::submission(
                bitsage_core::JobKind::Poseidon2Chain { seed: 1, length: 4 },
                1000,
                None,
            ),
        ),
        Some(&secret),
    );
    send(&t.bare, submit)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // A viewer cannot mint an admin key.
    let viewer = user(&t, "vic", Role::Viewer, None).await;
    let r = send(
        &t.bare,
        with_token(
            post_json(
                "/api/keys",
                &json!({ "name": "escalate", "scopes": ["metrics:read"], "role": "admin" }),
            ),
            Some(&viewer),
        ),
    )
    .await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn every_admin_action_and_every_refusal_is_audited() {
    let t = app();
    let mut req = post_json("/api/orgs", &json!({ "name": "Audited" }));
    req.headers_mut()
        .insert("x-request-id", "req-audit-1".parse().expect("id"));
    assert_eq!(send(&t.app, req).await.status, StatusCode::CREATED);
    let viewer = user(&t, "snoop", Role::Viewer, None).await;
    let r = send(
        &t.bare,
        with_token(
            post_json("/api/orgs", &json!({ "name": "Nope" })),
            Some(&viewer),
        ),
    )
    .await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let log = send(&t.app, get("/api/audit?action=POST%20/api/orgs")).await;
    assert_eq!(log.status, StatusCode::OK);
    let items = log.json()["items"].as_array().expect("items").clone();
    let ok = items
        .iter()
        .find(|e| e["request_id"] == "req-audit-1")
        .expect("the admin's entry");
    assert_eq!(ok["outcome"], "success");
    assert_eq!(ok["role"], "admin");
    assert_eq!(ok["actor_kind"], "user");
    assert_eq!(ok["status"], 201);
    let denied = items
        .iter()
        .find(|e| e["outcome"] == "denied")
        .expect("the viewer's refusal");
    assert_eq!(denied["role"], "viewer");
    // Filters: outcome.
    let only_denied = send(&t.app, get("/api/audit?outcome=denied")).await.json();
    assert!(only_denied["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|e| e["outcome"] == "denied"));
    // The audit log is admin-only.
    send(&t.bare, with_token(get("/api/audit"), Some(&viewer)))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn a_key_acts_with_at_most_its_creators_current_role() {
    let t = app();
    // A second admin mints an admin key, then is demoted to viewer.
    let created = admin_post(
        &t,
        "/api/users",
        json!({ "username": "ada", "password": PASSWORD, "role": "admin" }),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_string();
    let ada = login(&t.bare, "ada", PASSWORD).await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let key = send(
        &t.bare,
        with_token(
            post_json(
                "/api/keys",
                &json!({ "name": "scraper", "scopes": ["metrics:read"] }),
            ),
            Some(&ada),
        ),
    )
    .await;
    assert_eq!(key.status, StatusCode::CREATED);
    let secret = key.json()["secret"].as_str().expect("secret").to_string();
    assert_eq!(
        send(&t.bare, with_token(get("/metrics"), Some(&secret)))
            .await
            .status,
        StatusCode::OK
    );
    let mut demote = post_json(&format!("/api/users/{id}"), &json!({ "role": "viewer" }));
    *demote.method_mut() = Method::PATCH;
    assert_eq!(send(&t.app, demote).await.status, StatusCode::OK);
    send(&t.bare, with_token(get("/metrics"), Some(&secret)))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn logins_are_audited_and_cookie_refreshes_need_the_csrf_header() {
    let t = app();
    let r = send(
        &t.bare,
        post_json(
            "/api/auth/login",
            &json!({ "username": "admin", "password": "not the password" }),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let log = send(&t.app, get("/api/audit?action=session.login"))
        .await
        .json();
    let entries = log["items"].as_array().expect("items");
    assert!(entries
        .iter()
        .any(|e| e["outcome"] == "denied" && e["actor"] == "anonymous" && e["target"] == "admin"));
    // The refresh cookie alone (no body) needs the CSRF header.
    let res = t
        .bare
        .clone()
        .oneshot(post_json(
            "/api/auth/login",
            &json!({ "username": common::ADMIN.0, "password": common::ADMIN.1 }),
        ))
        .await
        .expect("login");
    let cookies: Vec<String> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| {
            v.to_str()
                .expect("cookie")
                .split(';')
                .next()
                .expect("pair")
                .to_string()
        })
        .collect();
    let csrf = cookies
        .iter()
        .find_map(|c| c.strip_prefix("bitsage_csrf="))
        .expect("csrf")
        .to_string();
    let refresh = |with_csrf: bool| {
        let mut req = Request::post("/api/auth/refresh")
            .header(header::COOKIE, cookies.join("; "))
            .body(Body::empty())
            .expect("request");
        if with_csrf {
            req.headers_mut()
                .insert("x-csrf-token", csrf.parse().expect("csrf"));
        }
        req
    };
    send(&t.bare, refresh(false))
        .await
        .assert_error(StatusCode::FORBIDDEN, "csrf_rejected");
    assert_eq!(send(&t.bare, refresh(true)).await.status, StatusCode::OK);
    let log = send(&t.app, get("/api/audit?action=session.")).await.json();
    let actions: Vec<(String, String)> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for want in [("session.login", "success"), ("session.refresh", "success")] {
        assert!(
            actions.contains(&(want.0.to_string(), want.1.to_string())),
            "{actions:?}"
        );
    }
}

#[tokio::test]
async fn a_key_revoked_through_another_coordinator_is_refused_within_the_auth_cache_ttl() {
    use bitsage_core::access::AccountStore as _;
    let t = app();
    let created = admin_post(
        &t,
        "/api/keys",
        json!({ "name": "scraper", "scopes": ["metrics:read"] }),
    )
    .await;
    let secret = created["secret"].as_str().expect("secret").to_string();
    let id = created["key"]["id"].as_str().expect("id").to_string();
    let accounts = &t.state.accounts;
    let ttl = accounts.policy().auth_cache_ttl;
    assert!(!ttl.is_zero(), "the default policy reuses authentications");
    let now = bitsage_core::time::now();
    assert!(accounts.authenticate(&secret, now).await.is_ok());
    // Another coordinator of the deployment revokes it: only the shared store changes.
    t.store.revoke_api_key(&id, now).await.expect("revoke");
    // This coordinator believed it a moment ago, and keeps believing it until the TTL ends...
    assert!(accounts.authenticate(&secret, now).await.is_ok());
    // ...not one moment longer.
    let later = now + chrono::TimeDelta::from_std(ttl).expect("ttl");
    let refused = accounts.authenticate(&secret, later).await;
    assert!(refused.is_err(), "{refused:?}");
    // The fresher refusal wins over the older entry, even asked at the earlier instant.
    assert!(accounts.authenticate(&secret, now).await.is_err());
    // Revoked through this coordinator (the HTTP route): refused at once, although used a
    // moment before.
    let second = admin_post(
        &t,
        "/api/keys",
        json!({ "name": "scraper 2", "scopes": ["metrics:read"] }),
    )
    .await;
    let secret = second["secret"].as_str().expect("secret").to_string();
    let id = second["key"]["id"].as_str().expect("id").to_string();
    assert_eq!(
        send(&t.bare, with_token(get("/metrics"), Some(&secret)))
            .await
            .status,
        StatusCode::OK
    );
    let mut revoke = get(&format!("/api/keys/{id}"));
    *revoke.method_mut() = Method::DELETE;
    assert!(send(&t.app, revoke).await.status.is_success());
    send(&t.bare, with_token(get("/metrics"), Some(&secret)))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}
