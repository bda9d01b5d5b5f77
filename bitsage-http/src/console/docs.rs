//! Docs (`/docs`): the API as the served OpenAPI document describes it (grouped by tag, with
//! who may call each route), the receipt's schema and how to verify a receipt offline, the
//! error types, and the runbooks (node offline, quarantined, no work).

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::Value;

use super::{page, viewer, Section};
use crate::auth::Caller;
use crate::AppState;

/// The error types every 4xx/5xx carries in `error.type`, with their status and meaning.
pub(super) const ERROR_TYPES: &[(&str, u16, &str)] = &[
    (
        "invalid_request",
        400,
        "A field is missing or wrong; the message names it.",
    ),
    (
        "unauthorized",
        401,
        "No valid credential: log in, or send a bearer token / API key.",
    ),
    (
        "insufficient_funds",
        402,
        "The payer's escrow or credit does not cover the payment.",
    ),
    (
        "forbidden",
        403,
        "Your role or key scope may not use this route.",
    ),
    (
        "csrf_rejected",
        403,
        "A browser change without the session's CSRF token.",
    ),
    (
        "wallet_rejected",
        403,
        "The node's wallet proof is missing, forged, foreign or stale.",
    ),
    (
        "enrolment_rejected",
        403,
        "The node's enrolment token is missing, unknown, expired, used or for another wallet.",
    ),
    (
        "attestation_rejected",
        422,
        "The GPU attestation evidence does not check out.",
    ),
    (
        "not_found",
        404,
        "No such item — or one you may not see (the answer does not tell).",
    ),
    (
        "method_not_allowed",
        405,
        "The route exists with other methods.",
    ),
    (
        "conflict",
        409,
        "The item exists differently, or is not in a state for this.",
    ),
    (
        "payload_too_large",
        413,
        "The body is over the route's limit.",
    ),
    (
        "unsupported_media_type",
        415,
        "Send JSON with Content-Type: application/json.",
    ),
    (
        "proof_rejected",
        422,
        "The proof does not verify under the coordinator's policy.",
    ),
    (
        "transport_error",
        400,
        "Bytes changed on the way (the signature does not cover them): send again.",
    ),
    (
        "upgrade_required",
        426,
        "A WebSocket route called without an upgrade.",
    ),
    (
        "rate_limited",
        429,
        "Too many requests: wait for Retry-After seconds.",
    ),
    (
        "internal",
        500,
        "A fault on our side; the details are in the coordinator's log under the request id.",
    ),
    (
        "unavailable",
        503,
        "A source (store, chain, live stream) did not answer; retry later.",
    ),
];

/// `GET /docs`.
pub(crate) async fn index(State(state): State<AppState>, caller: Caller, uri: Uri) -> Response {
    let v = viewer(&caller, &uri);
    let doc = crate::openapi::document();
    let info = crate::service::coordinator_info(&state).await;
    let body = html! {
        h1 { "Docs" }
        nav aria-label="On this page" {
            ul.toc {
                li { a href="#api" { "The API" } }
                li { a href="#receipts" { "Receipts and how to verify one offline" } }
                li { a href="#errors" { "Error types" } }
                li { a href="#runbooks" { "Runbooks" } }
            }
        }
        section aria-labelledby="api" {
            h2 #api { "The API" }
            p { "Every route below is in the OpenAPI 3.1 document this coordinator serves: " a href="/openapi.json" { "/openapi.json" } ". Errors are " code { "{\"error\":{\"type\",\"message\"}}" } "; amounts are decimal strings of base units; times RFC 3339 UTC." }
            (api(&doc))
        }
        section aria-labelledby="receipts" {
            h2 #receipts { "Receipts and how to verify one offline" }
            p { "A receipt is signed by the node that did the work and countersigned by the deployment. Its own keys prove nothing: check it against the deployment key you pinned. This coordinator's key id is " code { (info.key_id) } " (network " (info.network) "), public key:" }
            pre { (info.public_key) }
            pre { "curl -s 'COORDINATOR/api/receipts/RECEIPT_ID?with_proof=true&with_inclusion=true' -H 'Authorization: Bearer …' > receipt.json\nbitsage-agent verify-receipt receipt.json --coordinator-key " (info.public_key) "\n# or: key and anchored root from the chain\nbitsage-agent verify-receipt receipt.json --rpc http://RPC --escrow 0xESCROW" }
            p { "It checks the pinned key, both signatures, that payment = fee + net, and — with the proof in the file — that the proof verifies under the 96-bit policy. Exit 0 VALID, 1 INVALID, 2 usage error." }
            h3 { "Schema" }
            (schema(&doc, "Receipt"))
            (schema(&doc, "ReceiptBody"))
        }
        section aria-labelledby="errors" {
            h2 #errors { "Error types" }
            table {
                thead { tr { th scope="col" { "type" } th.num scope="col" { "status" } th scope="col" { "meaning" } } }
                tbody {
                    @for (kind, status, meaning) in ERROR_TYPES {
                        tr { td { code { (kind) } } td.num { (status) } td { (meaning) } }
                    }
                }
            }
        }
        section aria-labelledby="runbooks" {
            h2 #runbooks { "Runbooks" }
            h3 #node-offline { "A node is offline" }
            ol {
                li { "Open the node in " a href="/nodes?status=offline" { "Nodes" } ": the drawer's Metrics tab shows its last heartbeat and uptime." }
                li { "On the machine: " code { "systemctl status bitsage-agent" } " and " code { "journalctl -u bitsage-agent -n 100" } "; is the coordinator URL reachable (" code { "curl COORDINATOR/livez" } ")?" }
                li { "Clock skew refuses heartbeats: check " code { "timedatectl" } " (NTP on)." }
                li { "Once heartbeats arrive the node goes back to pending, is probed again and turns active." }
            }
            h3 #node-quarantined { "A node is quarantined" }
            ol {
                li { "The drawer shows the reason: a proof that did not verify, a bad signature, or reputation under the threshold (Metrics and the reputation inputs)." }
                li { "Fix the cause (agent version, hardware faults, a changed node key) before asking an admin to clear it." }
                li { "An admin clears it in the drawer (Clear quarantine, with a reason). The node is probed again; it is judged on what it does afterwards." }
            }
            h3 #no-work { "A node gets no work" }
            ol {
                li { "The drawer's eligibility checklist names each condition: registered, wallet proven, stake at the tier minimum, probe passed, heartbeat fresh, not quarantined, not draining, job kinds supported." }
                li { "Draining? End the drain in the drawer. No stake? Stake at least the tier minimum with the node's wallet." }
                li { "Everything passes but no job arrives: the queue may be empty — see Jobs completed on the " a href="/" { "Overview" } "." }
            }
        }
    };
    page(&state, &v, Section::Docs, "Docs", None, body).await
}

/// Every operation of the document, grouped by its first tag.
fn api(doc: &Value) -> Markup {
    let mut ops: Vec<(String, String, String, String, String)> = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let tag = op["tags"][0].as_str().unwrap_or("other").to_string();
                let summary = op["summary"].as_str().unwrap_or("").to_string();
                let description = op["description"].as_str().unwrap_or("");
                let access = description
                    .split("**Access:**")
                    .nth(1)
                    .map(|a| a.trim().trim_end_matches('.').replace('`', ""))
                    .unwrap_or_default();
                ops.push((tag, path.clone(), method.to_uppercase(), summary, access));
            }
        }
    }
    ops.sort();
    let mut tags: Vec<&str> = ops.iter().map(|o| o.0.as_str()).collect();
    tags.dedup();
    html! {
        @for tag in &tags {
            details {
                summary { strong { (tag) } " — " (ops.iter().filter(|o| o.0 == *tag).count()) " routes" }
                table {
                    thead { tr { th scope="col" { "Route" } th scope="col" { "What" } th scope="col" { "Who" } } }
                    tbody {
                        @for (_, path, method, summary, access) in ops.iter().filter(|o| o.0 == *tag) {
                            tr { td { code { (method) " " (path) } } td { (summary) } td.small { (access) } }
                        }
                    }
                }
            }
        }
    }
}

/// The properties of one schema of the document, with their descriptions.
fn schema(doc: &Value, name: &str) -> Markup {
    let s = &doc["components"]["schemas"][name];
    let required: Vec<&str> = s["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html! {
        @if let Some(props) = s["properties"].as_object() {
            table {
                caption { code { (name) } }
                thead { tr { th scope="col" { "field" } th scope="col" { "type" } th scope="col" { "meaning" } } }
                tbody {
                    @for (field, p) in props {
                        tr {
                            td { code { (field) } @if required.contains(&field.as_str()) { span.sr-only { " (required)" } } }
                            td.small { (type_of(p)) }
                            td.small { (p["description"].as_str().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

fn type_of(p: &Value) -> String {
    if let Some(r) = p["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    match &p["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => p["allOf"][0]["$ref"]
            .as_str()
            .or_else(|| p["oneOf"][0]["$ref"].as_str())
            .map(|r| r.rsplit('/').next().unwrap_or(r).to_string())
            .unwrap_or_else(|| "object".to_string()),
    }
}
