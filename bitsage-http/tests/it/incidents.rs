//! Incidents and feature flags through the router: admins open, update and resolve
//! incidents; watched conditions open and resolve their own; anyone sees the banner while the
//! overview is public; flags change at runtime for every coordinator on the store.

use crate::common;

use axum::http::{Method, StatusCode};
use bitsage_core::incident::Condition;
use chrono::TimeDelta;
use common::*;
use serde_json::json;

#[tokio::test]
async fn admins_open_update_and_resolve_incidents() {
    let t = app();
    let r = send(
        &t.app,
        post_json(
            "/api/incidents",
            &json!({
                "title": "Degraded proving in eu-west",
                "severity": "warn",
                "region": "eu-west",
                "message": "p95 doubled since 14:00"
            }),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let id = r.json()["id"].as_str().expect("id").to_string();
    // The banner is public (the overview flag is on by default).
    let v = send(&t.bare, get("/api/incidents")).await.json();
    assert_eq!(v["open"][0]["title"], "Degraded proving in eu-west");
    assert_eq!(v["open"][0]["severity"], "warn");
    assert_eq!(
        v["open"][0]["updates"][0]["by"], "an admin",
        "usernames are for admins"
    );
    assert_eq!(v["incidents"]["total"], 1);
    let r = send(
        &t.app,
        json_request(
            Method::PATCH,
            &format!("/api/incidents/{id}"),
            &json!({"message": "fixed: a bad driver rollout", "status": "resolved", "severity": "info"}),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["status"], "resolved");
    assert!(v["resolved_at"].as_str().is_some());
    assert_eq!(v["updates"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["updates"][1]["by"], "admin");
    let v = send(&t.bare, get("/api/incidents?status=open"))
        .await
        .json();
    assert_eq!(v["incidents"]["total"], 0);
    assert!(v["open"].as_array().is_some_and(Vec::is_empty));
    // Bad input: named fields, 4xx; anonymous changes refused.
    for (body, field) in [
        (
            json!({"title": "", "severity": "warn", "message": "m"}),
            "title",
        ),
        (
            json!({"title": "x", "severity": "fatal", "message": "m"}),
            "severity",
        ),
        (
            json!({"title": "x", "severity": "info", "message": "m", "region": "EU WEST"}),
            "region",
        ),
        (
            json!({"title": "x", "severity": "info", "message": ""}),
            "message",
        ),
    ] {
        let r = send(&t.app, post_json("/api/incidents", &body)).await;
        let e = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(
            e.error.message.contains(field),
            "{field}: {}",
            e.error.message
        );
    }
    send(&t.bare, post_json("/api/incidents", &json!({})))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    send(
        &t.app,
        json_request(
            Method::PATCH,
            "/api/incidents/6f1c1f43-31b8-4c39-9a55-4b2a8b0e8b4e",
            &json!({"message": "x"}),
        ),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_watched_condition_opens_after_its_delay_and_resolves_when_it_clears() {
    let t = app();
    let c = &t.state.coordinator;
    let t0 = bitsage_core::time::now();
    c.watch(Condition::NoActiveWorkers, true, "no node is active", t0)
        .await
        .unwrap();
    let v = send(&t.bare, get("/api/incidents")).await.json();
    assert_eq!(v["incidents"]["total"], 0, "not before 10 minutes");
    c.watch(
        Condition::NoActiveWorkers,
        true,
        "no node is active",
        t0 + TimeDelta::minutes(11),
    )
    .await
    .unwrap();
    // Again: still one.
    c.watch(
        Condition::NoActiveWorkers,
        true,
        "no node is active",
        t0 + TimeDelta::minutes(12),
    )
    .await
    .unwrap();
    let v = send(&t.bare, get("/api/incidents")).await.json();
    assert_eq!(v["incidents"]["total"], 1);
    let open = &v["open"][0];
    assert_eq!(open["condition"], "no_active_workers");
    assert_eq!(open["severity"], "major");
    assert_eq!(open["updates"][0]["by"], "coordinator");
    c.watch(
        Condition::NoActiveWorkers,
        false,
        "",
        t0 + TimeDelta::minutes(13),
    )
    .await
    .unwrap();
    let v = send(&t.bare, get("/api/incidents")).await.json();
    assert!(v["open"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(v["incidents"]["items"][0]["status"], "resolved");
}

#[tokio::test]
async fn flags_are_listed_and_set_by_an_admin() {
    let t = app();
    let v = send(&t.bare, get("/api/flags")).await.json();
    let flags = v.as_array().expect("flags");
    assert_eq!(flags.len(), 4);
    for name in [
        "enable_private_pools",
        "show_reward_estimates",
        "allow_anonymous_overview",
        "enable_signature_verify",
    ] {
        let f = flags.iter().find(|f| f["flag"] == name).expect(name);
        assert_eq!(f["set_by"], "configuration");
    }
    let r = send(
        &t.app,
        put_json("/api/flags/enable_private_pools", &json!({"enabled": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = send(&t.app, get("/api/flags")).await.json();
    let f = v
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flag"] == "enable_private_pools")
        .cloned()
        .unwrap();
    assert_eq!(
        (f["enabled"].clone(), f["set_by"].clone()),
        (json!(true), json!("admin"))
    );
    send(
        &t.app,
        put_json("/api/flags/no_such_flag", &json!({"enabled": true})),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    send(
        &t.bare,
        put_json(
            "/api/flags/enable_private_pools",
            &json!({"enabled": false}),
        ),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}
