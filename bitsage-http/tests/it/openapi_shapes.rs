//! The served shapes match the OpenAPI document: real answers of the router (a node registered
//! with attestation evidence, heartbeats with GPU samples, a probe and a job proven, completed,
//! failed and paid, accounts, keys and the audit log, and a set of refusals) are validated
//! against the schema `GET /openapi.json` declares for their operation and status.
//!
//! Validation is strict: besides types and required fields, every object of a served body may
//! only carry fields its schema declares — the document's object schemas are closed with
//! `unevaluatedProperties: false` for the check (see [`Spec::load`]), so a field the server
//! sends but the document forgets fails here.

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use bitsage_core::attestation::{
    Attestation, AttestationChallenge, DeviceAttestation, HostAttestation, RegistrationAttestation,
};
use bitsage_core::crypto::{Hash32, PublicKey};
use bitsage_core::gpu::{DeviceState, GpuCollectorStatus, GpuDevice, GpuSample, HostInfo};
use bitsage_core::node::HardwareReport;
use bitsage_core::proof::ProofEnvelope;
use bitsage_core::JobKind;
use bitsage_http::api::{
    Assignment, CompleteRequest, FailRequest, HeartbeatRequest, JobView, LeaseRequest,
    LeaseResponse, RegisterRequest,
};
use common::*;
use ed25519_dalek::SigningKey;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------- the document, closed

/// The served document, with its component schemas closed for strict validation.
struct Spec {
    doc: Value,
    /// `components` with every object schema closed (`unevaluatedProperties: false`) and a
    /// closed alias `X__closed` for each schema another one extends (`allOf: [$ref X, …]`).
    components: Value,
    /// The (method, route, status) answers validated so far.
    checked: Mutex<BTreeSet<(String, String, u16)>>,
}

impl Spec {
    /// Reads `GET /openapi.json` and closes its schemas.
    ///
    /// A schema that another extends with `allOf` (a `#[serde(flatten)]`ed struct) cannot be
    /// closed itself — the extension's own fields would be refused — so it gets a closed alias
    /// (`{"allOf":[{"$ref":X}],"unevaluatedProperties":false}`) that every other reference
    /// uses. Schemas that are combined with siblings (`allOf` members, `oneOf` branches next to
    /// properties) are left open: the enclosing schema closes them all at once, since
    /// `unevaluatedProperties` sees the fields its subschemas declare.
    async fn load(app: &Router) -> Self {
        let r = send(app, get("/openapi.json")).await;
        assert_eq!(r.status, StatusCode::OK);
        let doc = r.json();
        let mut schemas = doc["components"]["schemas"]
            .as_object()
            .expect("component schemas")
            .clone();
        let mut extended = BTreeSet::new();
        for s in schemas.values() {
            extended_refs(s, &mut extended);
        }
        for (name, s) in schemas.iter_mut() {
            // An extended schema stays open itself; its subschemas are closed as usual.
            close(s, extended.contains(name));
        }
        for name in &extended {
            schemas.insert(
                format!("{name}__closed"),
                json!({
                    "allOf": [{ "$ref": format!("#/components/schemas/{name}") }],
                    "unevaluatedProperties": false
                }),
            );
        }
        let mut schemas = Value::Object(schemas);
        use_closed_aliases(&mut schemas, &extended, false);
        let mut components = doc["components"].clone();
        components["schemas"] = schemas;
        Self {
            doc,
            components,
            checked: Mutex::new(BTreeSet::new()),
        }
    }

    /// The operation `method route`.
    fn operation(&self, method: &str, route: &str) -> &Value {
        let op = &self.doc["paths"][route][method.to_lowercase()];
        assert!(op.is_object(), "{method} {route} is not documented");
        op
    }

    /// The documented response of `method route` for `status` (a `$ref` to a shared response
    /// resolved).
    fn response(&self, method: &str, route: &str, status: u16) -> &Value {
        let r = &self.operation(method, route)["responses"][status.to_string()];
        assert!(
            r.is_object(),
            "{method} {route} answered {status}, which the document does not declare"
        );
        match r["$ref"].as_str() {
            Some(reference) => {
                let pointer = reference.trim_start_matches('#');
                self.doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling {reference}"))
            }
            None => r,
        }
    }

    /// The closed schema of `schema` (a response or part of one), ready to validate with.
    fn closed(&self, schema: &Value) -> Value {
        let mut s = schema.clone();
        close(&mut s, false);
        let extended: BTreeSet<String> = self.components["schemas"]
            .as_object()
            .expect("schemas")
            .keys()
            .filter_map(|k| k.strip_suffix("__closed").map(str::to_string))
            .collect();
        use_closed_aliases(&mut s, &extended, false);
        let mut root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [s],
        });
        root["components"] = self.components.clone();
        root
    }

    /// Validates `body` against `schema` (closed); the errors, if any.
    fn errors(&self, schema: &Value, body: &Value) -> Vec<String> {
        let root = self.closed(schema);
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("the document's schema does not compile: {e}"));
        validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// The JSON schema documented for `method route` answering `status`.
    fn json_schema(&self, method: &str, route: &str, status: u16) -> &Value {
        let response = self.response(method, route, status);
        let schema = &response["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {route} {status}: no application/json schema documented: {response}"
        );
        schema
    }

    /// Asserts that `reply` (an answer to `method route`) is documented: its status, its
    /// content type and, for JSON, that its body validates against the declared schema.
    fn check(&self, method: &str, route: &str, reply: &Reply) {
        let status = reply.status.as_u16();
        let response = self.response(method, route, status);
        let content_type = reply
            .content_type
            .as_deref()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let content = response["content"].as_object();
        if reply.body.is_empty() && content_type.is_empty() {
            assert!(
                content.is_none_or(|c| c.is_empty()),
                "{method} {route} {status}: an empty answer, documented with content {response}"
            );
        } else {
            let documented = content
                .map(|c| {
                    c.keys()
                        .map(|k| k.split(';').next().unwrap_or_default().trim().to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            assert!(
                documented.contains(&content_type),
                "{method} {route} {status}: served as {content_type}, documented as {documented:?}"
            );
        }
        if content_type == "application/json" {
            let body = reply.json();
            let errors = self.errors(self.json_schema(method, route, status), &body);
            assert!(
                errors.is_empty(),
                "{method} {route} {status}: the served body does not match the document:\n  {}\nbody: {}",
                errors.join("\n  "),
                serde_json::to_string_pretty(&body).unwrap_or_default()
            );
        }
        self.checked
            .lock()
            .expect("lock")
            .insert((method.to_string(), route.to_string(), status));
    }
}

/// Names of schemas referenced as an `allOf` member (extended by another schema).
fn extended_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(members)) = m.get("allOf") {
                for member in members {
                    if let Some(r) = member.get("$ref").and_then(Value::as_str) {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            out.insert(name.to_string());
                        }
                    }
                }
            }
            m.values().for_each(|v| extended_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| extended_refs(v, out)),
        _ => {}
    }
}

/// Whether `s` is an object schema to close: it declares properties or combines schemas with
/// `allOf`/`oneOf`/`anyOf`, and says nothing of other properties itself.
fn closable(s: &Map<String, Value>) -> bool {
    let objectish = s.contains_key("properties")
        || s.contains_key("allOf")
        || (s.contains_key("oneOf") && !is_nullable_ref(s))
        || s.contains_key("anyOf");
    objectish && !s.contains_key("additionalProperties") && !s.contains_key("unevaluatedProperties")
}

/// `{"oneOf":[{"type":"null"},{"$ref":…}]}`: an `Option` of a named schema (closed by its alias
/// or its own definition).
fn is_nullable_ref(s: &Map<String, Value>) -> bool {
    s.get("oneOf").and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .all(|b| b.get("$ref").is_some() || b["type"] == "null")
    })
}

/// Closes `v` and, recursively, its subschemas. A `combined` schema (an `allOf` member, or a
/// branch of a combined `oneOf`) is evaluated together with its siblings and stays open — the
/// enclosing schema's `unevaluatedProperties` sees the fields it declares — while its own
/// properties, items and map values are closed as usual.
fn close(v: &mut Value, combined: bool) {
    let Value::Object(m) = v else { return };
    if !combined && closable(m) && m.get("type").is_none_or(|t| t == "object" || t.is_array()) {
        m.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
    let has_own_fields = m.contains_key("properties") || m.contains_key("allOf");
    for (k, child) in m.iter_mut() {
        match (k.as_str(), child) {
            ("properties", Value::Object(props)) => {
                props.values_mut().for_each(|p| close(p, false))
            }
            ("items" | "additionalProperties", c @ Value::Object(_)) => close(c, false),
            ("allOf", Value::Array(members)) => members.iter_mut().for_each(|c| close(c, true)),
            ("oneOf" | "anyOf", Value::Array(branches)) => branches
                .iter_mut()
                .for_each(|b| close(b, combined || has_own_fields)),
            _ => {}
        }
    }
}

/// Points every reference to an extended schema at its closed alias, except `allOf` members.
fn use_closed_aliases(v: &mut Value, extended: &BTreeSet<String>, in_all_of: bool) {
    match v {
        Value::Object(m) => {
            if !in_all_of {
                if let Some(Value::String(r)) = m.get_mut("$ref") {
                    if let Some(name) = r.strip_prefix("#/components/schemas/") {
                        if extended.contains(name) {
                            *r = format!("#/components/schemas/{name}__closed");
                        }
                    }
                }
            }
            for (k, child) in m.iter_mut() {
                match (k.as_str(), child) {
                    ("allOf", Value::Array(members)) => {
                        for member in members {
                            use_closed_aliases(member, extended, true)
                        }
                    }
                    (_, child) => use_closed_aliases(child, extended, false),
                }
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|c| use_closed_aliases(c, extended, false)),
        _ => {}
    }
}

// ---------------------------------------------------------------- driving the router

fn request(method: Method, uri: &str, body: Option<Value>) -> Request<Body> {
    let b = Request::builder().method(method).uri(uri);
    match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&v).expect("json")))
            .expect("request"),
        None => b.body(Body::empty()).expect("request"),
    }
}

fn with_header(mut req: Request<Body>, name: &'static str, value: &str) -> Request<Body> {
    req.headers_mut()
        .insert(name, value.parse().expect("header value"));
    req
}

fn bearer(req: Request<Body>, token: &str) -> Request<Body> {
    with_header(req, "authorization", &format!("Bearer {token}"))
}

/// Sends `req` to `app` and checks the answer against the document as `method route`.
async fn call(spec: &Spec, app: &Router, route: &str, req: Request<Body>) -> Reply {
    let method = req.method().as_str().to_string();
    let r = send(app, req).await;
    spec.check(&method, route, &r);
    r
}

fn gpu(index: u32) -> GpuDevice {
    GpuDevice {
        index,
        uuid: format!("GPU-cc{index:04}"),
        name: "NVIDIA H100 80GB HBM3".into(),
        pci_bus_id: Some(format!("00000000:{index:02}:00.0")),
        memory_total_bytes: Some(85_520_809_984),
        mig_enabled: Some(false),
        confidential_compute: Some(true),
        tier: None,
        state: DeviceState::Ok,
    }
}

/// An NVIDIA-shaped report over `nonce` (the SPDM request, then stand-in response bytes).
fn report_over(nonce: &[u8; 32]) -> String {
    let mut r = vec![0x11, 0xE0, 0x01, 0xff];
    r.extend_from_slice(nonce);
    r.push(0);
    r.extend(std::iter::repeat_n(0x5a, 64));
    hex::encode(r)
}

/// Registers `id` with `k`: GPUs, host, and the answer to a fresh attestation challenge.
async fn register_attested(spec: &Spec, t: &TestApp, k: &SigningKey, id: &str) {
    let uri = format!(
        "/api/nodes/attestation-challenge?public_key={}",
        PublicKey::of(k)
    );
    let r = call(spec, &t.app, "/api/nodes/attestation-challenge", get(&uri)).await;
    let challenge: AttestationChallenge = r.parse();
    let nonce = challenge.nonce().expect("nonce");
    let gpus = vec![gpu(0), gpu(1)];
    let result = HostAttestation::Devices {
        devices: vec![
            DeviceAttestation {
                uuid: gpus[0].uuid.clone(),
                attestation: Attestation::Report {
                    report_hex: report_over(&nonce),
                    cec_report_hex: Some(hex::encode([7u8; 16])),
                },
            },
            DeviceAttestation {
                uuid: gpus[1].uuid.clone(),
                attestation: Attestation::not_available("confidential compute is off"),
            },
        ],
    };
    let req = RegisterRequest::signed(
        k,
        node_id(id),
        wallet(),
        HardwareReport {
            gpus,
            host: Some(HostInfo {
                cpu_model: Some("AMD EPYC 9654".into()),
                logical_cores: 192,
                load_average_1m: Some(0.25),
                memory_total_bytes: 1 << 40,
                memory_available_bytes: Some(1 << 39),
            }),
            gpu_unavailable_reason: None,
            driver_version: Some("580.65.06".into()),
            cuda_version: Some("13.0".into()),
            hardware_hash: Some(Hash32([3; 32])),
            attestation: Some(RegistrationAttestation { challenge, result }),
        },
        "bitsage-agent/0.1.0",
        bitsage_core::time::now(),
    );
    let r = call(
        spec,
        &t.app,
        "/api/nodes/register",
        post_json("/api/nodes/register", &req),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    // Registering again with the same key: 200 and the same shape.
    let r = call(
        spec,
        &t.app,
        "/api/nodes/register",
        post_json("/api/nodes/register", &req),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
}

/// A heartbeat carrying a full GPU sample and the collector's health.
async fn heartbeat(spec: &Spec, t: &TestApp, k: &SigningKey, id: &str, sequence: u64) {
    let now = bitsage_core::time::now();
    let mut sample = GpuSample::empty("GPU-cc0000", now);
    sample.gpu_utilization_ratio = Some(0.5);
    sample.memory_used_bytes = Some(1 << 30);
    sample.temperature_celsius = Some(61.0);
    sample.power_watts = Some(300.5);
    let req = HeartbeatRequest::unsigned(
        node_id(id),
        sequence,
        now,
        Some(0.5),
        "bitsage-agent/0.1.0",
        vec![sample],
    )
    .with_gpu_collector(GpuCollectorStatus {
        source: "nvml".into(),
        up: true,
        last_error: None,
        samples_total: 10,
        sample_errors_total: 0,
        last_sample_age_seconds: Some(0.5),
    })
    .sign(k);
    let r = call(
        spec,
        &t.app,
        "/api/nodes/heartbeat",
        post_json("/api/nodes/heartbeat", &req),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
}

async fn lease(spec: &Spec, t: &TestApp, k: &SigningKey, id: &str) -> LeaseResponse {
    let req = LeaseRequest::signed(k, node_id(id), rand_nonce(), bitsage_core::time::now());
    let r = call(
        spec,
        &t.app,
        "/api/jobs/lease",
        post_json("/api/jobs/lease", &req),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    r.parse()
}

async fn submit(spec: &Spec, t: &TestApp, seed: u64) -> JobView {
    let req = submission(
        JobKind::Poseidon2Chain { seed, length: 64 },
        10_000,
        Some(2),
    );
    let r = call(spec, &t.app, "/api/jobs", post_json("/api/jobs", &req)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    r.parse()
}

fn completion(k: &SigningKey, id: &str, a: &Assignment, env: ProofEnvelope) -> CompleteRequest {
    match a {
        Assignment::Probe { .. } => probe_completion(k, id, a, env),
        Assignment::Job { .. } => job_completion(k, id, a, env, |_| {}),
    }
}

async fn complete(spec: &Spec, t: &TestApp, k: &SigningKey, id: &str, a: &Assignment) -> Reply {
    let req = completion(k, id, a, prove(a.spec()));
    let r = call(
        spec,
        &t.app,
        "/api/jobs/complete",
        post_json("/api/jobs/complete", &req),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    r
}

// ---------------------------------------------------------------- the tests

/// The node and job lifecycle, the receipts, earnings, dashboard and network views.
#[tokio::test]
async fn node_job_receipt_and_dashboard_answers_match_the_document() {
    let t = app();
    let spec = Spec::load(&t.app).await;
    let k = key(1);
    let id = "gpu-node-1";

    register_attested(&spec, &t, &k, id).await;
    heartbeat(&spec, &t, &k, id, 1).await;

    // Probe → active.
    let l = lease(&spec, &t, &k, id).await;
    let probe = l.assignment.expect("a probe for a pending node");
    let r = complete(&spec, &t, &k, id, &probe).await;
    assert!(r.json()["receipt"].is_null());

    // A job leased, proven and paid; another leased and given back; then no work.
    let paid = submit(&spec, &t, 1).await;
    let a = lease(&spec, &t, &k, id).await.assignment.expect("a job");
    let r = complete(&spec, &t, &k, id, &a).await;
    let receipt_id = r.json()["receipt"]["id"]
        .as_str()
        .expect("receipt id")
        .to_string();
    let returned = submit(&spec, &t, 2).await;
    let a = lease(&spec, &t, &k, id).await.assignment.expect("a job");
    let Assignment::Job { lease: l, .. } = &a else {
        panic!("expected a job")
    };
    assert_eq!(l.spec.id, returned.id);
    let fail = FailRequest::signed(
        &k,
        &l.reference(),
        "out of memory",
        bitsage_core::time::now(),
    );
    let r = call(
        &spec,
        &t.app,
        "/api/jobs/fail",
        post_json("/api/jobs/fail", &fail),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    heartbeat(&spec, &t, &k, id, 2).await;

    let views: &[(&str, String)] = &[
        ("/api/jobs/{id}", format!("/api/jobs/{}", paid.id)),
        ("/api/jobs/{id}", format!("/api/jobs/{}", returned.id)),
        ("/api/nodes", "/api/nodes".into()),
        ("/api/nodes", "/api/nodes?status=active&limit=1".into()),
        ("/api/nodes/{id}", format!("/api/nodes/{id}")),
        (
            "/api/nodes/{id}/attestation",
            format!("/api/nodes/{id}/attestation"),
        ),
        (
            "/api/worker/uptime",
            format!("/api/worker/uptime?node={id}"),
        ),
        ("/api/receipts", "/api/receipts".into()),
        (
            "/api/receipts",
            format!("/api/receipts?node={id}&kind=poseidon2-chain"),
        ),
        ("/api/receipts/{id}", format!("/api/receipts/{receipt_id}")),
        (
            "/api/receipts/{id}",
            format!("/api/receipts/{receipt_id}?with_proof=true&with_inclusion=true"),
        ),
        (
            "/api/receipts/{id}/inclusion",
            format!("/api/receipts/{receipt_id}/inclusion"),
        ),
        ("/api/earnings/{node}", format!("/api/earnings/{id}")),
        (
            "/api/earnings/{node}",
            format!("/api/earnings/{id}?format=csv"),
        ),
        ("/api/network/stats", "/api/network/stats".into()),
        ("/api/network/workers", "/api/network/workers".into()),
        ("/api/summary", "/api/summary".into()),
        ("/api/contracts", "/api/contracts".into()),
        ("/api/jobs/analytics", "/api/jobs/analytics".into()),
        ("/api/jobs/recent", "/api/jobs/recent".into()),
        ("/api/coordinator", "/api/coordinator".into()),
        (
            "/.well-known/bitsage.json",
            "/.well-known/bitsage.json".into(),
        ),
        ("/livez", "/livez".into()),
        ("/health/live", "/health/live".into()),
        ("/readyz", "/readyz".into()),
        ("/health", "/health".into()),
        ("/health/ready", "/health/ready".into()),
        ("/metrics", "/metrics".into()),
        ("/openapi.json", "/openapi.json".into()),
    ];
    for (route, uri) in views {
        let r = call(&spec, &t.app, route, get(uri)).await;
        assert!(
            r.status.is_success() || *route == "/api/receipts/{id}/inclusion",
            "{uri}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let detail = send(
        &t.app,
        get(&format!("/api/receipts/{receipt_id}?with_proof=true")),
    )
    .await;
    assert!(
        detail.json()["envelope"].is_object(),
        "the envelope is served"
    );

    for route in [
        "/api/validator/status",
        "/api/validator/gpus",
        "/api/validator/rewards",
        "/api/validator/history",
    ] {
        let req = with_header(get(route), "x-wallet-address", &wallet().to_string());
        let r = call(&spec, &t.app, route, req).await;
        assert_eq!(r.status, StatusCode::OK, "{route}: {}", r.json());
    }

    // Live: the stream's headers (its body never ends), and a plain GET of a WebSocket route.
    let res = tower::ServiceExt::oneshot(t.app.clone(), get("/api/events"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers()[header::CONTENT_TYPE].to_str().expect("ascii");
    let documented = &spec.response("GET", "/api/events", 200)["content"];
    assert!(documented.get(ct).is_some(), "{ct}: {documented}");
    drop(res);
    for route in ["/ws", "/ws/jobs", "/ws/workers", "/ws/staking"] {
        let r = call(&spec, &t.app, route, get(route)).await;
        assert_eq!(r.status, StatusCode::UPGRADE_REQUIRED);
    }

    // Every operation of these groups was checked with its success answer.
    let checked = spec.checked.lock().expect("lock").clone();
    for (method, route, status) in [
        ("POST", "/api/nodes/register", 201),
        ("POST", "/api/nodes/register", 200),
        ("GET", "/api/nodes/attestation-challenge", 200),
        ("POST", "/api/nodes/heartbeat", 200),
        ("POST", "/api/jobs", 201),
        ("POST", "/api/jobs/lease", 200),
        ("POST", "/api/jobs/complete", 200),
        ("POST", "/api/jobs/fail", 200),
        ("GET", "/api/receipts/{id}/inclusion", 409),
        ("GET", "/api/validator/history", 200),
    ] {
        assert!(
            checked.contains(&(method.into(), route.into(), status)),
            "{method} {route} {status} was not checked"
        );
    }
}

/// Sessions, users, organisations, API keys and the audit log.
#[tokio::test]
async fn account_answers_match_the_document() {
    let t = app();
    let spec = Spec::load(&t.app).await;

    let r = call(
        &spec,
        &t.bare,
        "/api/auth/login",
        request(
            Method::POST,
            "/api/auth/login",
            Some(json!({ "username": ADMIN.0, "password": ADMIN.1 })),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let refresh_token = r.json()["refresh_token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = call(
        &spec,
        &t.bare,
        "/api/auth/refresh",
        request(
            Method::POST,
            "/api/auth/refresh",
            Some(json!({ "refresh_token": refresh_token })),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let next = r.json()["refresh_token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = call(
        &spec,
        &t.bare,
        "/api/auth/logout",
        request(
            Method::POST,
            "/api/auth/logout",
            Some(json!({ "refresh_token": next })),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    call(&spec, &t.app, "/api/users/me", get("/api/users/me")).await;

    // Organisations and their wallets.
    let r = call(
        &spec,
        &t.app,
        "/api/orgs",
        request(Method::POST, "/api/orgs", Some(json!({ "name": "Org A" }))),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let org = r.json()["id"].as_str().expect("org id").to_string();
    let wallets = format!("/api/orgs/{org}/wallets");
    let r = call(
        &spec,
        &t.app,
        "/api/orgs/{id}/wallets",
        request(
            Method::POST,
            &wallets,
            Some(json!({ "wallet": wallet().to_string() })),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    call(&spec, &t.app, "/api/orgs", get("/api/orgs")).await;

    // Users.
    let r = call(
        &spec,
        &t.app,
        "/api/users",
        request(
            Method::POST,
            "/api/users",
            Some(json!({
                "username": "op-a", "password": "operator password 1",
                "role": "operator", "org": org
            })),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let user = r.json()["id"].as_str().expect("user id").to_string();
    let r = call(
        &spec,
        &t.app,
        "/api/users/{id}",
        request(
            Method::PATCH,
            &format!("/api/users/{user}"),
            Some(json!({ "role": "viewer", "org": null })),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    call(&spec, &t.app, "/api/users", get("/api/users?limit=10")).await;

    // API keys: created (secret shown once), used, listed, revoked.
    let r = call(
        &spec,
        &t.app,
        "/api/keys",
        request(
            Method::POST,
            "/api/keys",
            Some(json!({
                "name": "ci", "scopes": ["jobs:read", "network:read"],
                "expires_at": "2999-01-01T00:00:00Z"
            })),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let created = r.json();
    let secret = created["secret"].as_str().expect("secret").to_string();
    let key_id = created["key"]["id"].as_str().expect("key id").to_string();
    let r = call(
        &spec,
        &t.bare,
        "/api/users/me",
        bearer(get("/api/users/me"), &secret),
    )
    .await;
    assert_eq!(r.json()["kind"], "api_key");
    // A key without `nodes:read`: 403.
    let r = call(
        &spec,
        &t.bare,
        "/api/nodes",
        bearer(get("/api/nodes"), &secret),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    call(&spec, &t.app, "/api/keys", get("/api/keys")).await;
    let r = call(
        &spec,
        &t.app,
        "/api/keys/{id}",
        request(Method::DELETE, &format!("/api/keys/{key_id}"), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        &spec,
        &t.app,
        "/api/orgs/{id}/wallets/{wallet}",
        request(Method::DELETE, &format!("{wallets}/{}", wallet()), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let r = call(&spec, &t.app, "/api/audit", get("/api/audit")).await;
    assert!(
        r.json()["total"].as_u64().unwrap_or(0) > 0,
        "mutations were audited"
    );
    call(
        &spec,
        &t.app,
        "/api/audit",
        get("/api/audit?outcome=success&limit=5"),
    )
    .await;
}

/// Refusals answer the shared error shape under a status the operation documents.
#[tokio::test]
async fn error_answers_match_the_document() {
    let t = app();
    let spec = Spec::load(&t.app).await;
    let cases: Vec<(&str, Request<Body>, &Router, StatusCode)> = vec![
        // 400: a query that does not parse, a missing header, a malformed body.
        (
            "/api/nodes",
            get("/api/nodes?limit=many"),
            &t.app,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/validator/status",
            get("/api/validator/status"),
            &t.app,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/jobs",
            post_raw("/api/jobs", "{\"job\":"),
            &t.app,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/nodes/register",
            request(
                Method::POST,
                "/api/nodes/register",
                Some(json!({ "node_id": "x" })),
            ),
            &t.app,
            StatusCode::BAD_REQUEST,
        ),
        // 401: no credential; a bad signature.
        (
            "/api/nodes",
            get("/api/nodes"),
            &t.bare,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/audit",
            bearer(get("/api/audit"), "not-a-token"),
            &t.bare,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/jobs/lease",
            post_json(
                "/api/jobs/lease",
                &LeaseRequest::signed(&key(9), node_id("nobody"), 1, bitsage_core::time::now()),
            ),
            &t.app,
            StatusCode::UNAUTHORIZED,
        ),
        // 404: unknown ids.
        (
            "/api/jobs/{id}",
            get("/api/jobs/00000000-0000-4000-8000-000000000000"),
            &t.app,
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/nodes/{id}",
            get("/api/nodes/nobody"),
            &t.app,
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/worker/uptime",
            get("/api/worker/uptime?node=nobody"),
            &t.app,
            StatusCode::NOT_FOUND,
        ),
        // 413 and 415.
        (
            "/api/jobs",
            post_raw("/api/jobs", vec![b' '; 128 * 1024]),
            &t.app,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/api/auth/login",
            Request::post("/api/auth/login")
                .body(Body::from("{}"))
                .expect("request"),
            &t.bare,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (route, req, app, status) in cases {
        let uri = req.uri().to_string();
        let r = call(&spec, app, route, req).await;
        assert_eq!(
            r.status,
            status,
            "{uri}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    // 403: a viewer on an admin route.
    let r = send(
        &t.app,
        request(
            Method::POST,
            "/api/users",
            Some(json!({ "username": "viewer-1", "password": "viewer password 1", "role": "viewer" })),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = send(
        &t.bare,
        request(
            Method::POST,
            "/api/auth/login",
            Some(json!({ "username": "viewer-1", "password": "viewer password 1" })),
        ),
    )
    .await;
    let viewer = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = call(
        &spec,
        &t.bare,
        "/api/users",
        bearer(get("/api/users"), &viewer),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // 429: past a class's limit.
    let mut state = t.state.clone();
    state.limiter = Arc::new(bitsage_http::ratelimit::Limiter::new(
        bitsage_http::ratelimit::RateLimits {
            auth_per_min: 1,
            ..bitsage_http::ratelimit::RateLimits::default()
        },
    ));
    let limited = bitsage_http::router(state);
    let login = || {
        request(
            Method::POST,
            "/api/auth/login",
            Some(json!({ "username": ADMIN.0, "password": "wrong password" })),
        )
    };
    let first = call(&spec, &limited, "/api/auth/login", login()).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    let r = call(&spec, &limited, "/api/auth/login", login()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

/// The strict check catches what it is for: an undeclared field (also inside a flattened
/// struct and a nested object), a missing required field, a wrong type.
#[tokio::test]
async fn the_check_refuses_undeclared_missing_and_mistyped_fields() {
    let t = app();
    let spec = Spec::load(&t.app).await;
    register(&t.app, &key(1), "node-1").await;
    let r = send(&t.app, get("/api/nodes/node-1")).await;
    let body = r.json();
    let schema = spec.json_schema("GET", "/api/nodes/{id}", 200).clone();
    assert!(
        spec.errors(&schema, &body).is_empty(),
        "the served body is valid"
    );

    let mut mutations: HashMap<&str, Value> = HashMap::new();
    let mut extra = body.clone();
    extra["surprise"] = json!(1);
    mutations.insert("an undeclared top-level field", extra);
    let mut nested = body.clone();
    nested["hardware"]["surprise"] = json!(1);
    mutations.insert("an undeclared field of a nested object", nested);
    let mut in_group = body.clone();
    in_group["attestation"]["surprise"] = json!(true);
    mutations.insert("an undeclared field of a referenced schema", in_group);
    let mut missing = body.clone();
    missing.as_object_mut().expect("object").remove("wallet");
    mutations.insert("a missing required field (of the flattened part)", missing);
    let mut missing_own = body.clone();
    missing_own
        .as_object_mut()
        .expect("object")
        .remove("history");
    mutations.insert("a missing required field (of the extension)", missing_own);
    let mut mistyped = body.clone();
    mistyped["registered_at"] = json!(12);
    mutations.insert("a mistyped field", mistyped);
    for (what, v) in mutations {
        assert!(
            !spec.errors(&schema, &v).is_empty(),
            "{what} passed the check"
        );
    }

    // And in a dashboard field group (`Section` of a flattened chain reading or store group).
    let req = with_header(
        get("/api/validator/status"),
        "x-wallet-address",
        &wallet().to_string(),
    );
    let mut status = send(&t.app, req).await.json();
    let schema = spec
        .json_schema("GET", "/api/validator/status", 200)
        .clone();
    assert!(spec.errors(&schema, &status).is_empty());
    status["workers"]["surprise"] = json!(1);
    assert!(
        !spec.errors(&schema, &status).is_empty(),
        "an undeclared field in a group passed"
    );
}
