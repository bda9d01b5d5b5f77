//! The OpenAPI 3.1 document of the whole API, served at `GET /openapi.json`.
//!
//! Written by hand (with `serde_json::json!`) next to the routes: every route of
//! [`crate::router`] is listed with its method, summary, parameters (the `X-Wallet-Address`
//! header, path and query parameters), request body schema and response codes. Every error
//! response refers to the shared `Error` schema (`{"error":{"type","message"}}`); every
//! dashboard field group to a `*Section` schema (`status: ok` plus the group's fields, or the
//! shared `Unavailable` schema). A test checks that every registered path appears here.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// The API's OpenAPI 3.1 document (built once, then shared).
pub fn document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build).clone()
}

// ---------------------------------------------------------------- small builders

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn arr(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn nullable(schema: Value) -> Value {
    json!({ "oneOf": [schema, { "type": "null" }] })
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn integer(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 0, "description": description })
}

fn number(description: &str) -> Value {
    json!({ "type": "number", "description": description })
}

fn boolean(description: &str) -> Value {
    json!({ "type": "boolean", "description": description })
}

/// A map from status name to count.
fn counts(description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "additionalProperties": { "type": "integer", "minimum": 0 }
    })
}

/// An object schema with these properties, all required unless listed in `optional`.
fn obj(description: &str, properties: Value, optional: &[&str]) -> Value {
    let required: Vec<&String> = properties
        .as_object()
        .map(|p| {
            p.keys()
                .filter(|k| !optional.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
    })
}

/// A request body that rejects unknown fields.
fn strict(description: &str, properties: Value, optional: &[&str]) -> Value {
    let mut o = obj(description, properties, optional);
    if let Some(m) = o.as_object_mut() {
        m.insert("additionalProperties".into(), Value::Bool(false));
    }
    o
}

/// A token amount plus its `*_formatted` twin.
fn money(props: &mut Map<String, Value>, name: &str, description: &str) {
    props.insert(
        name.to_string(),
        json!({ "allOf": [r("TokenAmount")], "description": description }),
    );
    props.insert(
        format!("{name}_formatted"),
        string(&format!("`{name}` for people, e.g. `1,234.5 SAGE`")),
    );
}

/// A dashboard field group: `status: ok` plus the fields of `data`, or `Unavailable`.
fn section(data: &str) -> Value {
    json!({
        "description": format!("`{data}` with `status: ok`, or `Unavailable`."),
        "oneOf": [
            { "allOf": [
                r(data),
                { "type": "object", "properties": { "status": { "const": "ok" } }, "required": ["status"] }
            ] },
            r("Unavailable")
        ]
    })
}

/// A chain reading: the value's fields plus block and age.
fn chain_reading(value: &str) -> Value {
    json!({
        "description": format!("`{value}` read from the chain, with the block and age of the read."),
        "allOf": [r(value), r("ChainReadAt")]
    })
}

fn page_of(item: &str) -> Value {
    obj(
        &format!("A page of `{item}`s."),
        json!({
            "items": arr(r(item)),
            "total": integer("Items matching the filter in all pages."),
            "next_offset": { "type": ["integer", "null"], "minimum": 0, "description": "Offset of the next page; null on the last page." }
        }),
        &[],
    )
}

// ---------------------------------------------------------------- parameters

fn param(name: &str, location: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({
        "name": name,
        "in": location,
        "required": required,
        "schema": schema,
        "description": description,
    })
}

fn wallet_header() -> Value {
    json!({ "$ref": "#/components/parameters/WalletAddress" })
}

fn path(name: &str, description: &str) -> Value {
    param(name, "path", true, json!({ "type": "string" }), description)
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    param(name, "query", false, schema, description)
}

fn limit(max: u32, default: u32) -> Value {
    query(
        "limit",
        json!({ "type": "integer", "minimum": 1, "maximum": max, "default": default }),
        "Page size.",
    )
}

fn offset() -> Value {
    query(
        "offset",
        json!({ "type": "integer", "minimum": 0, "default": 0 }),
        "Items to skip.",
    )
}

fn time_query(name: &str, description: &str) -> Value {
    query(name, r("Timestamp"), description)
}

// ---------------------------------------------------------------- operations

/// One operation. `responses`: (code, description, schema name or `None` for no JSON schema).
/// Error codes refer to the shared `Error` response.
fn op(
    tag: &str,
    operation_id: &str,
    summary: &str,
    parameters: Vec<Value>,
    body: Option<&str>,
    responses: &[(&str, &str, Option<&str>)],
) -> Value {
    let mut out = Map::new();
    for (code, description, schema) in responses {
        let is_error = code.starts_with('4') || code.starts_with('5');
        let response = match (is_error, schema) {
            (true, None) => json!({ "$ref": format!("#/components/responses/{code}") }),
            (_, Some(s)) => json!({
                "description": description,
                "content": { "application/json": { "schema": r(s) } }
            }),
            (false, None) => json!({ "description": description }),
        };
        out.insert((*code).to_string(), response);
    }
    // Every operation may fail internally; the body is the generic error.
    out.entry("500")
        .or_insert_with(|| json!({ "$ref": "#/components/responses/500" }));
    let mut o = json!({
        "tags": [tag],
        "operationId": operation_id,
        "summary": summary,
        "responses": out,
    });
    if let Some(m) = o.as_object_mut() {
        if !parameters.is_empty() {
            m.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(b) = body {
            m.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": { "application/json": { "schema": r(b) } }
                }),
            );
        }
    }
    o
}

fn paths() -> Value {
    let bad = ("400", "Malformed request", None);
    let unauthorized = ("401", "Signature or token rejected", None);
    let not_found = ("404", "Not found", None);
    let conflict = ("409", "Conflict with the current state", None);
    let too_large = ("413", "Body too large", None);
    let media = ("415", "Body is not JSON", None);
    let unavailable = ("503", "The store did not answer", None);
    let wallet_missing = (
        "400",
        "`X-Wallet-Address` missing or not a Starknet address",
        None,
    );
    let mut m = Map::new();
    extend(
        &mut m,
        json!({
            "/api/nodes/register": { "post": op("nodes", "registerNode",
                "Register a node (signed with its key); 201 when created, 200 when already registered with the same key.",
                vec![], Some("RegisterRequest"),
                &[("201", "Registered", Some("RegisterResponse")), ("200", "Already registered with this key", Some("RegisterResponse")),
                  bad, unauthorized, conflict, too_large, media,
                  ("403", "Wallet not proven: no wallet proof where the coordinator checks wallets, or the account refused the signature (`wallet_rejected`)", None),
                  ("422", "Attestation rejected (foreign or expired challenge, a report not over its nonce, an unknown GPU)", None)]) },
            "/api/nodes/heartbeat": { "post": op("nodes", "heartbeat",
                "A signed heartbeat with GPU samples.",
                vec![], Some("HeartbeatRequest"),
                &[("200", "Accepted", Some("HeartbeatResponse")), bad, unauthorized, too_large, media]) },
            "/api/nodes": { "get": op("nodes", "listNodes",
                "List nodes, optionally by status or wallet.",
                vec![query("status", r("NodeStatus"), "Only nodes in this status."),
                     query("wallet", r("WalletAddress"), "Only nodes earning for this wallet."),
                     limit(1000, 100), offset()],
                None, &[("200", "A page of nodes", Some("NodePage")), bad]) },
            "/api/nodes/{id}": { "get": op("nodes", "getNode",
                "A node with its latest heartbeat time, GPU collector health and status history.",
                vec![path("id", "The node id.")], None,
                &[("200", "The node", Some("NodeDetail")), bad, not_found]) },
            "/api/nodes/attestation-challenge": { "get": op("nodes", "attestationChallenge",
                "A fresh nonce, signed by the coordinator for the node's key, for the node to attest its GPUs over before registering.",
                vec![param("public_key", "query", true, r("Hex"), "The key the node will register with.")], None,
                &[("200", "The challenge", Some("AttestationChallenge")), bad]) },
            "/api/nodes/{id}/attestation": { "get": op("nodes", "attestationEvidence",
                "The attestation evidence a node registered with (raw NVML reports, for NVIDIA's verifier).",
                vec![path("id", "The node id.")], None,
                &[("200", "The evidence", Some("AttestationEvidence")), bad, not_found]) },
            "/api/worker/uptime": { "get": op("nodes", "workerUptime",
                "A node's uptime from its heartbeats over a window ending now.",
                vec![param("node", "query", true, json!({ "type": "string" }), "The node id."),
                     query("window_secs", json!({ "type": "integer", "minimum": 1, "maximum": 2_592_000, "default": 86_400 }), "Window length, seconds (at most 30 days).")],
                None, &[("200", "Uptime", Some("WorkerUptime")), bad, not_found, unavailable]) }
        }),
    );
    extend(
        &mut m,
        json!({
            "/api/jobs": { "post": {
                "security": [{}, { "submitToken": [] }],
                "description": "The payer account signs the submission (SNIP-12 revision 1, domain `BitSage`/`1`/`payment_chain_id` of `GET /api/coordinator`, primary type `BitSageJobPayment {network: string, job: u256 (BLAKE2s-256 of \"bitsage/job-kind/v1\" ‖ the job's JSON), payment: u256, max_attempts: u128, nonce: u128, sent_at_micros: u128}`), checked with its account contract (with a chain) or the key stored with its local credit; each signed submission is accepted once. The payment is reserved from the payer's escrow or local credit until the job completes or fails. When the coordinator has a submit token, `Authorization: Bearer <token>` is required too.",
                "tags": ["jobs"], "operationId": "submitJob", "summary": "Queue a funded job.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": r("SubmitJobRequest") } } },
                "responses": {
                    "201": { "description": "Queued", "content": { "application/json": { "schema": r("JobView") } } },
                    "400": { "$ref": "#/components/responses/400" },
                    "401": { "$ref": "#/components/responses/401" },
                    "402": { "$ref": "#/components/responses/402" },
                    "413": { "$ref": "#/components/responses/413" },
                    "415": { "$ref": "#/components/responses/415" },
                    "500": { "$ref": "#/components/responses/500" },
                    "503": { "$ref": "#/components/responses/503" }
                }
            } },
            "/api/jobs/{id}": { "get": op("jobs", "getJob", "A job.",
                vec![path("id", "The job id (UUID).")], None,
                &[("200", "The job", Some("JobView")), bad, not_found]) },
            "/api/jobs/lease": { "post": op("jobs", "leaseJob",
                "A node asks for work (signed): a probe while pending, a leased job while active, or none.",
                vec![], Some("LeaseRequest"),
                &[("200", "Work or none", Some("LeaseResponse")), bad, unauthorized, conflict, too_large, media]) },
            "/api/jobs/complete": { "post": op("jobs", "completeJob",
                "A node hands in a proof and its signed receipt; the coordinator verifies, countersigns and credits.",
                vec![], Some("CompleteRequest"),
                &[("200", "Accepted", Some("CompleteResponse")), ("400", "Malformed request, or `transport_error`: the envelope does not match the digest the node signed", None), unauthorized, not_found, conflict, too_large, media,
                  ("422", "Proof rejected", None)]) },
            "/api/jobs/fail": { "post": op("jobs", "failJob",
                "A node gives a leased job back (signed); it is re-queued or failed at its retry limit.",
                vec![], Some("FailRequest"),
                &[("200", "The job after the report", Some("JobView")), bad, unauthorized, not_found, conflict, too_large, media]) },
            "/api/jobs/analytics": { "get": op("dashboard", "jobAnalytics",
                "Jobs per status, total and success rate.",
                vec![], None, &[("200", "Analytics", Some("JobAnalytics"))]) },
            "/api/jobs/recent": { "get": op("dashboard", "recentJobs",
                "The newest jobs, newest first.",
                vec![limit(100, 20)], None, &[("200", "Recent jobs", Some("RecentJobs")), bad]) }
        }),
    );
    extend(
        &mut m,
        json!({
            "/api/receipts": { "get": op("receipts", "listReceipts",
                "Receipts, by node, job kind and completion time.",
                vec![query("node", json!({ "type": "string" }), "Only this node's receipts."),
                     query("kind", json!({ "type": "string" }), "Only this job kind, e.g. `poseidon2-chain`."),
                     time_query("from", "Completed at or after."),
                     time_query("to", "Completed before."),
                     limit(1000, 100), offset()],
                None, &[("200", "A page of receipts", Some("ReceiptPage")), bad]) },
            "/api/receipts/{id}": { "get": op("receipts", "getReceipt",
                "A receipt, verifiable offline with its two keys; `with_proof=true` adds the proof envelope (`envelope`).",
                vec![path("id", "The receipt id (UUID)."),
                     query("with_proof", json!({ "type": "boolean", "default": false }), "Include the proof envelope."),
                     query("with_inclusion", json!({ "type": "boolean", "default": false }), "Include the inclusion proof in its settlement epoch (`inclusion`), once it has one.")], None,
                &[("200", "The receipt", Some("ReceiptView")), bad, not_found]) },
            "/api/receipts/{id}/inclusion": { "get": op("receipts", "getReceiptInclusion",
                "Where a receipt is anchored: its settlement epoch (state, transaction, block), its leaf and Merkle path to the epoch's receipts root (BLAKE2s-256, root with its top 6 bits cleared, as `JobEscrow.get_epoch(epoch_id).receipts_root`). Check it with `bitsage-agent verify-receipt --rpc URL --escrow ADDRESS`.",
                vec![path("id", "The receipt id (UUID).")], None,
                &[("200", "The inclusion proof", Some("InclusionProof")), bad, not_found,
                  ("409", "Pending settlement: not yet in an epoch", None)]) },
            "/api/earnings/{node}": { "get": {
                "tags": ["receipts"], "operationId": "nodeEarnings",
                "summary": "A node's exact earnings, total and per UTC day (JSON, or CSV with `format=csv`).",
                "parameters": [path("node", "The node id."), time_query("from", "Credited at or after."),
                               time_query("to", "Credited before."),
                               query("format", json!({ "type": "string", "enum": ["json", "csv"], "default": "json" }), "Response format.")],
                "responses": {
                    "200": { "description": "Earnings", "content": {
                        "application/json": { "schema": r("EarningsResponse") },
                        "text/csv": { "schema": { "type": "string", "description": "`day,entries,gross,fee,net`, base units." } }
                    } },
                    "400": { "$ref": "#/components/responses/400" },
                    "404": { "$ref": "#/components/responses/404" },
                    "500": { "$ref": "#/components/responses/500" }
                }
            } }
        }),
    );
    extend(
        &mut m,
        json!({
            "/api/network/stats": { "get": op("network", "networkStats",
                "Active and total workers, jobs processed.",
                vec![], None, &[("200", "Counts", Some("NetworkStats"))]) },
            "/api/network/workers": { "get": op("network", "networkWorkers",
                "Nodes with status, wallet, last heartbeat, GPUs and 24-hour uptime.",
                vec![query("status", r("NodeStatus"), "Only nodes in this status."), limit(200, 50), offset()],
                None, &[("200", "Workers", Some("NetworkWorkers")), bad]) }
        }),
    );
    extend(
        &mut m,
        json!({
            "/api/validator/status": { "get": op("dashboard", "validatorStatus",
                "A wallet's workers, jobs, ledger earnings, stake, rewards and reputation.",
                vec![wallet_header()], None,
                &[("200", "Status (each group ok or unavailable)", Some("ValidatorStatus")), wallet_missing]) },
            "/api/validator/gpus": { "get": op("dashboard", "validatorGpus",
                "The GPUs of a wallet's nodes (hardware reports and latest samples).",
                vec![wallet_header()], None,
                &[("200", "GPUs", Some("ValidatorGpus")), wallet_missing]) },
            "/api/validator/rewards": { "get": op("dashboard", "validatorRewards",
                "Ledger earnings of a wallet's nodes and its on-chain rewards.",
                vec![wallet_header()], None,
                &[("200", "Rewards", Some("ValidatorRewards")), wallet_missing]) },
            "/api/validator/history": { "get": op("dashboard", "validatorHistory",
                "Earnings per UTC day and status changes of a wallet's nodes (default: last 30 days, at most 366).",
                vec![wallet_header(), time_query("from", "Window start (default: `to` − 30 days)."),
                     time_query("to", "Window end, exclusive (default: now).")],
                None, &[("200", "History", Some("ValidatorHistory")), wallet_missing]) },
            "/api/summary": { "get": op("dashboard", "summary",
                "The dashboard's front page: workers, jobs, chain totals and store health.",
                vec![], None, &[("200", "Summary", Some("Summary"))]) }
        }),
    );
    extend(
        &mut m,
        json!({
            "/livez": { "get": op("ops", "livez", "Liveness: the process answers.",
                vec![], None, &[("200", "Alive", Some("LiveResponse"))]) },
            "/health/live": { "get": op("ops", "healthLive", "Alias of `/livez`.",
                vec![], None, &[("200", "Alive", Some("LiveResponse"))]) },
            "/readyz": { "get": op("ops", "readyz", "Readiness: the store answers in time.",
                vec![], None, &[("200", "Ready", Some("HealthResponse")), ("503", "Not ready", Some("HealthResponse"))]) },
            "/health": { "get": op("ops", "health", "Alias of `/readyz`, with component detail.",
                vec![], None, &[("200", "Ready", Some("HealthResponse")), ("503", "Not ready", Some("HealthResponse"))]) },
            "/health/ready": { "get": op("ops", "healthReady", "Alias of `/readyz`.",
                vec![], None, &[("200", "Ready", Some("HealthResponse")), ("503", "Not ready", Some("HealthResponse"))]) },
            "/api/coordinator": { "get": op("deployment", "coordinator",
                "The deployment's network, public key and key id (the same on every coordinator of the network).",
                vec![], None, &[("200", "The deployment", Some("DeploymentInfo"))]) },
            "/.well-known/bitsage.json": { "get": op("deployment", "wellKnown",
                "Alias of `/api/coordinator`.",
                vec![], None, &[("200", "The deployment", Some("DeploymentInfo"))]) },
            "/api/events": { "get": {
                "tags": ["live"], "operationId": "events",
                "summary": "Server-Sent Events: every domain event of the deployment, in id order (`id:` the event id, `event:` its type, `data:` the `StoredEvent` envelope). Resume with `Last-Event-ID` (or `?after=`): events after it are replayed from the outbox first. A consumer more than the buffer behind gets an `error` event (`slow_consumer`) and is disconnected.",
                "parameters": [
                    query("topics", json!({ "type": "string" }), "Comma-separated topics: jobs, workers, receipts, staking, incidents (default all)."),
                    query("after", json!({ "type": "integer", "minimum": 0 }), "Resume after this event id."),
                    param("Last-Event-ID", "header", false, json!({ "type": "integer", "minimum": 0 }), "Resume after this event id (wins over `after`).")
                ],
                "responses": {
                    "200": { "description": "An event stream", "content": { "text/event-stream": { "schema": r("StoredEvent") } } },
                    "400": { "$ref": "#/components/responses/400" },
                    "503": { "description": "The coordinator's live-connection cap is reached", "content": { "application/json": { "schema": r("Error") } } }
                }
            } },
            "/ws": { "get": {
                "tags": ["live"], "operationId": "websocket",
                "summary": "WebSocket. Send `{\"type\":\"subscribe\",\"topics\":[\"jobs\",…],\"after\":N}` (answered by `{\"type\":\"subscribed\",…}`) or `{\"type\":\"unsubscribe\"}`; events arrive as `StoredEvent` JSON. Bad requests get `{\"type\":\"error\",\"error\":{type,message}}` and the connection stays open; frames over 4 KiB close it (1009); a slow consumer gets an `error` frame and is closed (1008).",
                "responses": { "101": { "description": "Switching to WebSocket" } }
            } },
            "/ws/jobs": { "get": {
                "tags": ["live"], "operationId": "websocketJobs",
                "summary": "WebSocket subscribed to `jobs` from the start (same protocol as `/ws`).",
                "responses": { "101": { "description": "Switching to WebSocket" } }
            } },
            "/ws/workers": { "get": {
                "tags": ["live"], "operationId": "websocketWorkers",
                "summary": "WebSocket subscribed to `workers` from the start (same protocol as `/ws`).",
                "responses": { "101": { "description": "Switching to WebSocket" } }
            } },
            "/ws/staking": { "get": {
                "tags": ["live"], "operationId": "websocketStaking",
                "summary": "WebSocket subscribed to `staking` (indexed chain events) from the start (same protocol as `/ws`).",
                "responses": { "101": { "description": "Switching to WebSocket" } }
            } },
            "/api/contracts": { "get": {
                "tags": ["dashboard"], "operationId": "contracts",
                "summary": "The contracts the coordinator reads and its event indexer's status (cursor, head, lag); `status: unavailable` without a chain.",
                "responses": { "200": { "description": "Contracts and indexer", "content": { "application/json": { "schema": { "type": "object" } } } } }
            } },
            "/metrics": { "get": {
                "tags": ["ops"], "operationId": "metrics",
                "summary": "Prometheus text: per-GPU series of every node (fresh readings only), node and job counts.",
                "responses": {
                    "200": { "description": "Prometheus exposition format 0.0.4", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "503": { "description": "The store did not answer", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
                }
            } },
            "/openapi.json": { "get": {
                "tags": ["ops"], "operationId": "openapi", "summary": "This document.",
                "responses": { "200": { "description": "The OpenAPI 3.1 document", "content": { "application/json": { "schema": { "type": "object" } } } } }
            } }
        }),
    );
    let forbidden = (
        "403",
        "The caller's role or key scope may not do this",
        None,
    );
    extend(
        &mut m,
        json!({
            "/api/auth/login": { "post": op("auth", "login",
                "Log in: an access token (JWT, ~15 min), a refresh token, and HttpOnly cookies for browsers.",
                vec![], Some("LoginRequest"),
                &[("200", "Logged in", Some("Session")), bad, unauthorized, ("403", "The account is disabled", None)]) },
            "/api/auth/refresh": { "post": op("auth", "refresh",
                "Exchange a refresh token (body or cookie) for the next session; a reused token revokes the whole login.",
                vec![], None,
                &[("200", "The next session", Some("Session")), bad, unauthorized]) },
            "/api/auth/logout": { "post": op("auth", "logout",
                "Revoke the login of a refresh token (body or cookie) and clear the cookies.",
                vec![], None, &[("204", "Logged out", None), bad]) },
            "/api/users/me": { "get": op("auth", "me", "Who the caller is.",
                vec![], None, &[("200", "The caller", Some("Me")), unauthorized, forbidden]) },
            "/api/users": {
                "get": op("admin", "listUsers", "List users (admin).",
                    vec![limit(1000, 100), offset()], None, &[("200", "A page of users", Some("UserPage")), bad, unauthorized, forbidden]),
                "post": op("admin", "createUser", "Create a user (admin).",
                    vec![], Some("CreateUserRequest"), &[("201", "Created", Some("User")), bad, unauthorized, forbidden, conflict])
            },
            "/api/users/{id}": { "patch": op("admin", "updateUser", "Change a user's role, organisation, password or disabled flag (admin).",
                vec![path("id", "The user id.")], Some("UpdateUserRequest"),
                &[("200", "Changed", Some("User")), bad, unauthorized, forbidden, not_found, conflict]) },
            "/api/orgs": {
                "get": op("admin", "listOrgs", "Organisations with their wallets (admin).",
                    vec![], None, &[("200", "Organisations", Some("OrgList")), unauthorized, forbidden]),
                "post": op("admin", "createOrg", "Create an organisation (admin).",
                    vec![], Some("CreateOrgRequest"), &[("201", "Created", Some("Organisation")), bad, unauthorized, forbidden, conflict])
            },
            "/api/orgs/{id}/wallets": { "post": op("admin", "addOrgWallet", "Give a wallet (and its nodes) to an organisation (admin).",
                vec![path("id", "The organisation id.")], Some("AddWalletRequest"),
                &[("204", "Added", None), bad, unauthorized, forbidden, not_found, conflict]) },
            "/api/orgs/{id}/wallets/{wallet}": { "delete": op("admin", "removeOrgWallet", "Take a wallet from an organisation (admin).",
                vec![path("id", "The organisation id."), path("wallet", "The wallet.")], None,
                &[("204", "Removed", None), bad, unauthorized, forbidden, not_found]) },
            "/api/keys": {
                "get": op("auth", "listKeys", "API keys the caller may see (admin: all; operator: their organisation's).",
                    vec![], None, &[("200", "Keys (never their secrets)", Some("ApiKeyList")), unauthorized, forbidden]),
                "post": op("auth", "createKey", "Create an API key; its secret is in this answer only.",
                    vec![], Some("CreateKeyRequest"), &[("201", "Created", Some("CreatedKey")), bad, unauthorized, forbidden])
            },
            "/api/keys/{id}": { "delete": op("auth", "revokeKey", "Revoke an API key.",
                vec![path("id", "The key id (bsa_…).")], None, &[("204", "Revoked", None), unauthorized, forbidden, not_found]) },
            "/api/audit": { "get": op("admin", "audit", "The audit log, newest first (admin).",
                vec![query("actor", json!({ "type": "string" }), "Only this actor."),
                     query("action", json!({ "type": "string" }), "Only actions starting with this."),
                     query("outcome", json!({ "type": "string", "enum": ["success", "denied", "failed"] }), "Only this outcome."),
                     time_query("from", "From this time."), time_query("to", "Before this time."),
                     limit(1000, 100), offset()],
                None, &[("200", "A page of entries", Some("AuditPage")), bad, unauthorized, forbidden]) }
        }),
    );
    Value::Object(m)
}

fn account_schemas() -> Value {
    let role = json!({ "type": "string", "enum": ["admin", "operator", "viewer"] });
    let scope = json!({ "type": "string", "enum": ["jobs:submit", "jobs:read", "nodes:read", "network:read", "metrics:read"] });
    let user = obj(
        "A user account.",
        json!({
            "id": string("Its id (UUID)."), "username": string("The login name."), "role": role,
            "org": nullable(string("Its organisation's id.")), "disabled": boolean("A disabled user cannot log in."),
            "created_at": r("Timestamp"), "updated_at": r("Timestamp")
        }),
        &[],
    );
    let key = obj(
        "An API key (never its secret).",
        json!({
            "id": string("Its id (bsa_…)."), "name": string("Its name."), "created_by": string("The creating user's id."),
            "role": role, "org": nullable(string("The organisation it acts for.")), "scopes": arr(scope.clone()),
            "created_at": r("Timestamp"), "expires_at": nullable(r("Timestamp")),
            "last_used_at": nullable(r("Timestamp")), "revoked_at": nullable(r("Timestamp"))
        }),
        &[],
    );
    let org = obj(
        "An organisation.",
        json!({
            "id": string("Its id (UUID)."), "name": string("Its name."), "created_at": r("Timestamp")
        }),
        &[],
    );
    let audit = obj(
        "An audit entry.",
        json!({
            "id": integer("Its position in the log."), "at": r("Timestamp"), "actor": string("User id, key id, node id, `anonymous` or `system`."),
            "actor_kind": { "type": "string", "enum": ["user", "api_key", "node", "anonymous", "system"] },
            "role": nullable(role.clone()), "action": string("`METHOD /route` or a named action."),
            "target": nullable(string("What it was done to.")),
            "outcome": { "type": "string", "enum": ["success", "denied", "failed"] },
            "status": { "type": ["integer", "null"] }, "request_id": nullable(string("The request's id.")),
            "source": nullable(string("The client's address."))
        }),
        &[],
    );
    json!({
        "LoginRequest": strict("Credentials.", json!({ "username": string("The username."), "password": string("The password.") }), &[]),
        "Session": obj("A session.", json!({
            "access_token": string("JWT for `Authorization: Bearer`."), "token_type": { "const": "Bearer" },
            "access_expires_at": r("Timestamp"), "expires_in": integer("Seconds until the access token expires."),
            "refresh_token": string("Single-use refresh token."), "refresh_expires_at": r("Timestamp"), "user": user.clone()
        }), &[]),
        "Me": obj("The caller.", json!({
            "kind": { "type": "string", "enum": ["user", "api_key"] }, "id": string("User or key id."),
            "username": string("For a user."), "role": role.clone(), "org": nullable(string("Organisation id.")),
            "scopes": arr(scope.clone())
        }), &["username", "scopes"]),
        "User": user.clone(),
        "UserPage": obj("A page of users.", json!({ "items": arr(user), "total": integer("Users in all pages."), "next_offset": { "type": ["integer", "null"] } }), &[]),
        "CreateUserRequest": strict("A user to create.", json!({
            "username": string("3 to 64 of a-z, 0-9, '.', '_', '-', '@'."), "password": string("12 to 128 characters."),
            "role": role.clone(), "org": nullable(string("Organisation id (required for operators)."))
        }), &["org"]),
        "UpdateUserRequest": strict("Changes to a user.", json!({
            "role": role.clone(), "org": nullable(string("Organisation id; null removes it.")),
            "disabled": boolean("Disable or enable."), "password": string("A new password.")
        }), &["role", "org", "disabled", "password"]),
        "Organisation": org.clone(),
        "OrgList": arr(json!({ "allOf": [org, { "type": "object", "properties": { "wallets": arr(r("WalletAddress")) } }] })),
        "CreateOrgRequest": strict("An organisation to create.", json!({ "name": string("1 to 100 characters.") }), &[]),
        "AddWalletRequest": strict("A wallet to add.", json!({ "wallet": r("WalletAddress") }), &[]),
        "ApiKeyList": arr(key.clone()),
        "CreateKeyRequest": strict("A key to create.", json!({
            "name": string("A name."), "scopes": arr(scope), "role": role,
            "expires_at": r("Timestamp"), "org": string("For admins: the organisation it acts for.")
        }), &["role", "expires_at", "org"]),
        "CreatedKey": obj("A new key.", json!({ "secret": string("`Authorization: Bearer <secret>`; shown once."), "key": key }), &[]),
        "AuditPage": obj("A page of audit entries.", json!({ "items": arr(audit), "total": integer("Entries in all pages."), "next_offset": { "type": ["integer", "null"] } }), &[])
    })
}

// ---------------------------------------------------------------- schemas

fn earnings_total() -> Value {
    let mut p = Map::new();
    p.insert("entries".into(), integer("Entries summed."));
    money(&mut p, "gross", "Sum of what clients paid.");
    money(&mut p, "fee", "Sum of network fees.");
    money(&mut p, "net", "Sum of what the nodes earned.");
    obj("Exact sums of earnings.", Value::Object(p), &[])
}

fn stake_view() -> Value {
    let mut p = Map::new();
    money(&mut p, "amount", "Staked amount.");
    money(
        &mut p,
        "locked_amount",
        "Amount locked in a pending unstake.",
    );
    p.insert("staked_at".into(), nullable(r("Timestamp")));
    p.insert("last_claim_at".into(), nullable(r("Timestamp")));
    p.insert("gpu_tier".into(), r("GpuTier"));
    p.insert("is_active".into(), boolean("Whether the stake is active."));
    p.insert(
        "consecutive_failures".into(),
        integer("Consecutive failed jobs."),
    );
    money(&mut p, "total_slashed", "Total slashed so far.");
    money(
        &mut p,
        "pending_rewards",
        "Rewards accrued, not yet claimed.",
    );
    obj(
        "A wallet's stake as the staking contract reports it.",
        Value::Object(p),
        &[],
    )
}

fn rewards_view() -> Value {
    let mut p = Map::new();
    money(&mut p, "pending", "Accrued, unclaimed rewards.");
    p.insert("last_claim_at".into(), nullable(r("Timestamp")));
    obj("A wallet's on-chain rewards.", Value::Object(p), &[])
}

fn totals_view() -> Value {
    let mut p = Map::new();
    money(&mut p, "total_staked", "Total staked across workers.");
    obj("Network-wide chain totals.", Value::Object(p), &[])
}

fn job_view() -> Value {
    let mut p = Map::new();
    p.insert("id".into(), r("Uuid"));
    p.insert("job".into(), r("JobKind"));
    p.insert("status".into(), r("JobStatus"));
    money(&mut p, "payment", "Payment on completion.");
    p.insert("attempts".into(), integer("Leases granted so far."));
    p.insert("max_attempts".into(), integer("Lease limit."));
    p.insert(
        "lease".into(),
        nullable(json!({ "type": "object", "description": "The current lease while `leased`: lease_id, node_id, leased_at, expires_at." })),
    );
    p.insert(
        "result".into(),
        nullable(json!({ "type": "object", "description": "The result once `completed`: output, proof_hash, proof_ref, completed_at." })),
    );
    p.insert("completed_by".into(), nullable(r("NodeId")));
    p.insert(
        "last_error".into(),
        json!({ "type": ["string", "null"], "description": "Why the last attempt failed." }),
    );
    p.insert("submitted_at".into(), r("Timestamp"));
    p.insert("updated_at".into(), r("Timestamp"));
    obj("A job.", Value::Object(p), &[])
}

fn receipt_view() -> Value {
    let mut body = Map::new();
    body.insert("id".into(), r("Uuid"));
    body.insert("job_id".into(), r("Uuid"));
    body.insert("kind".into(), string("Job kind."));
    body.insert("node_id".into(), r("NodeId"));
    body.insert("node_key".into(), r("Hex"));
    body.insert("coordinator_key".into(), r("Hex"));
    body.insert("output".into(), string("Public output."));
    body.insert("proof_hash".into(), r("Hex"));
    body.insert("payment".into(), r("TokenAmount"));
    body.insert("fee".into(), r("TokenAmount"));
    body.insert("net".into(), r("TokenAmount"));
    body.insert("completed_at".into(), r("Timestamp"));
    obj(
        "A signed receipt (node signature and coordinator countersignature) plus formatted amounts.",
        json!({
            "body": obj("What the signatures cover.", Value::Object(body), &[]),
            "node_signature": r("Hex"),
            "coordinator_signature": r("Hex"),
            "payment_formatted": string("`body.payment` for people."),
            "fee_formatted": string("`body.fee` for people."),
            "net_formatted": string("`body.net` for people."),
        }),
        &[],
    )
}

fn schemas() -> Value {
    let unavailable = json!({
        "type": "object",
        "description": "A field group whose source could not answer (not configured, failed, or missed the time budget).",
        "properties": {
            "status": { "const": "unavailable" },
            "reason": { "type": "string", "description": "Why, safe to show." }
        },
        "required": ["status", "reason"]
    });
    let hardware = obj(
        "A node's hardware report.",
        json!({
            "gpus": arr(r("GpuDevice")),
            "host": nullable(r("HostInfo")),
            "gpu_unavailable_reason": { "type": ["string", "null"], "description": "Why GPU data is missing, when it is." },
            "hardware_hash": nullable(r("Hex")),
            "driver_version": { "type": ["string", "null"], "description": "GPU kernel driver version." },
            "cuda_version": { "type": ["string", "null"], "description": "CUDA driver API version." },
            "attestation": nullable(r("RegistrationAttestation"))
        }),
        &[
            "gpus",
            "host",
            "gpu_unavailable_reason",
            "hardware_hash",
            "driver_version",
            "cuda_version",
            "attestation",
        ],
    );
    let mut m = Map::new();
    extend(
        &mut m,
        json!({
            "Error": {
                "type": "object",
                "description": "Every error: a stable `type` and a message safe to show.",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "type": { "type": "string", "description": "e.g. invalid_request, unauthorized, not_found, conflict, unavailable, internal." },
                            "message": { "type": "string" }
                        },
                        "required": ["type", "message"],
                        "additionalProperties": false
                    }
                },
                "required": ["error"],
                "additionalProperties": false
            },
            "Unavailable": unavailable,
            "TokenAmount": { "type": "string", "pattern": "^(0|[1-9][0-9]*)$", "description": "Exact amount in base units (u256), decimal." },
            "Timestamp": { "type": "string", "format": "date-time", "description": "RFC 3339, UTC." },
            "WalletAddress": { "type": "string", "pattern": "^0[xX][0-9a-fA-F]{1,64}$", "description": "Starknet address; answers use the normalised 0x + 64 lowercase hex digits." },
            "NodeId": { "type": "string", "description": "A node id." },
            "Uuid": { "type": "string", "format": "uuid" },
            "Hex": { "type": "string", "pattern": "^[0-9a-f]*$", "description": "Lowercase hex bytes (keys, signatures, hashes)." },
            "NodeStatus": { "type": "string", "enum": ["pending", "active", "stale", "offline", "quarantined"] },
            "JobStatus": { "type": "string", "enum": ["queued", "leased", "completed", "failed"] },
            "GpuTier": { "type": "string", "enum": ["consumer", "workstation", "data_center", "enterprise", "frontier"] },
            "JobKind": { "oneOf": [
                strict("A chain of Poseidon2 permutations over M31.", json!({
                    "kind": { "const": "poseidon2-chain" },
                    "seed": { "type": "integer", "minimum": 0 },
                    "length": { "type": "integer", "minimum": 1, "maximum": 1_048_576 }
                }), &[]),
                strict("The wide-Fibonacci calibration AIR.", json!({
                    "kind": { "const": "wide-fibonacci" },
                    "columns": { "type": "integer", "minimum": 2, "maximum": 1024 },
                    "log_rows": { "type": "integer", "minimum": 4, "maximum": 22 },
                    "a": { "type": "integer", "minimum": 0, "maximum": 2_147_483_646 },
                    "b": { "type": "integer", "minimum": 0, "maximum": 2_147_483_646 }
                }), &[])
            ] },
            "GpuDevice": obj("One GPU's identity and static properties.", json!({
                "index": integer("NVML index."),
                "uuid": string("GPU UUID."),
                "name": string("Model name."),
                "pci_bus_id": { "type": ["string", "null"] },
                "memory_total_bytes": { "type": ["integer", "null"], "minimum": 0 },
                "mig_enabled": { "type": ["boolean", "null"] },
                "confidential_compute": { "type": ["boolean", "null"] },
                "tier": nullable(r("GpuTier")),
                "state": { "type": "string", "enum": ["ok", "lost", "no_permission"] }
            }), &["pci_bus_id", "memory_total_bytes", "mig_enabled", "confidential_compute", "tier", "state"]),
            "GpuSample": {
                "type": "object",
                "description": "One reading of one device; a metric the device does not support is null.",
                "properties": {
                    "uuid": string("The device's UUID."),
                    "at": r("Timestamp"),
                    "gpu_utilization_ratio": { "type": ["number", "null"] },
                    "memory_used_bytes": { "type": ["integer", "null"] },
                    "temperature_celsius": { "type": ["number", "null"] },
                    "power_watts": { "type": ["number", "null"] }
                },
                "required": ["uuid", "at"]
            },
            "HostInfo": obj("The host a worker runs on.", json!({
                "cpu_model": { "type": ["string", "null"] },
                "logical_cores": integer("Logical CPU cores."),
                "load_average_1m": { "type": ["number", "null"] },
                "memory_total_bytes": integer("Total memory, bytes."),
                "memory_available_bytes": { "type": ["integer", "null"] }
            }), &["cpu_model", "load_average_1m", "memory_available_bytes"]),
            "HardwareReport": hardware,
            "StatusChange": obj("One recorded status change.", json!({
                "node_id": r("NodeId"), "from": r("NodeStatus"), "to": r("NodeStatus"),
                "reason": string("Why."), "at": r("Timestamp")
            }), &[]),
            "ChainReadAt": obj("Where and when a chain value was read.", json!({
                "block_number": integer("The block the value was read at."),
                "block_hash": { "type": ["string", "null"], "description": "That block's hash (hex), when known." },
                "read_at": r("Timestamp"),
                "age_secs": integer("Age of the value when the response was built, seconds.")
            }), &[])
        }),
    );
    // ---- nodes
    extend(
        &mut m,
        json!({
            "RegisterRequest": strict("Signed with the node key over the canonical bytes (see the API docs).", json!({
                "node_id": r("NodeId"), "public_key": r("Hex"), "wallet": r("WalletAddress"),
                "hardware": r("HardwareReport"), "agent_version": string("1 to 64 printable characters."),
                "sent_at": r("Timestamp"),
                "wallet_proof": r("WalletProof"),
                "signature": r("Hex")
            }), &["wallet_proof"]),
            "WalletProof": strict("The wallet account's SNIP-12 signature (revision 1, domain `BitSage`/`1`/`wallet_chain_id`, primary type `BitSageNodeWallet {node_key: u256, network: string, nonce: u256, expires_at: timestamp}`) over the registering node key, the network and the nonce of a challenge from `GET /api/nodes/attestation-challenge`; checked with the account contract's `is_valid_signature`.", json!({
                "challenge": r("AttestationChallenge"),
                "signature": { "type": "array", "minItems": 1, "maxItems": 32, "items": { "type": "string", "pattern": "^0x[0-9a-fA-F]{1,64}$" } }
            }), &[]),
            "RegisterResponse": obj("A registered node.", json!({
                "node": r("NodeView"),
                "heartbeat_interval_secs": integer("How often to send a heartbeat."),
                "coordinator_public_key": r("Hex")
            }), &[]),
            "HeartbeatRequest": strict("Signed with the node's registered key.", json!({
                "node_id": r("NodeId"), "sequence": integer("Strictly increasing per node."),
                "sent_at": r("Timestamp"), "load_average_1m": { "type": ["number", "null"] },
                "agent_version": string("Agent version."), "gpu_samples": arr(r("GpuSample")),
                "gpu_collector": nullable(r("GpuCollectorStatus")),
                "signature": r("Hex")
            }), &["load_average_1m", "gpu_samples", "gpu_collector"]),
            "GpuCollectorStatus": obj("The health of the agent's GPU collector (background sampler).", json!({
                "source": string("The sampled source (nvml, host-only, fixture)."),
                "up": boolean("Whether the latest sampling attempt succeeded."),
                "last_error": { "type": ["string", "null"], "description": "Why it failed (at most 1 KiB)." },
                "samples_total": integer("Successful samples since the agent started."),
                "sample_errors_total": integer("Failed attempts since the agent started."),
                "last_sample_age_seconds": { "type": ["number", "null"], "minimum": 0, "description": "Age of the latest good sample when sent." }
            }), &["last_error", "last_sample_age_seconds"]),
            "AttestationChallenge": obj("A nonce chosen and signed by the coordinator for one node key; answer it before `expires_at`, in a registration signed by that key.", json!({
                "public_key": r("Hex"),
                "nonce_hex": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                "expires_at": r("Timestamp"),
                "coordinator_signature": r("Hex")
            }), &[]),
            "RegistrationAttestation": obj("The answer to an attestation challenge: per GPU, NVML's confidential-compute report over the nonce (hex; it must embed the nonce) or why there is none.", json!({
                "challenge": r("AttestationChallenge"),
                "result": { "type": "object", "description": "`status: devices` with `devices: [{uuid, attestation: {status: report, report_hex, cec_report_hex?} | {status: not_available, reason}}]`, or `status: not_available` with `reason`.",
                    "properties": { "status": { "type": "string", "enum": ["devices", "not_available"] } }, "required": ["status"] }
            }), &[]),
            "AttestationSummary": obj("What the coordinator checked of a node's attestation. `signature_verified` is always false: report signatures and certificate chains need NVIDIA's verifier.", json!({
                "status": { "type": "string", "enum": ["report", "not_available", "not_requested"] },
                "reason": { "type": ["string", "null"] },
                "devices": arr(obj("One device.", json!({
                    "uuid": string("GPU UUID."),
                    "status": { "type": "string", "enum": ["report", "not_available"] },
                    "reason": { "type": ["string", "null"] },
                    "report_bytes": { "type": ["integer", "null"] }
                }), &["reason", "report_bytes"])),
                "nonce_bound": boolean("Every report embeds the nonce of a challenge this coordinator issued."),
                "signature_verified": boolean("Always false (see the description).")
            }), &["reason"]),
            "AttestationEvidence": obj("The evidence a node registered with.", json!({
                "node_id": r("NodeId"),
                "summary": r("AttestationSummary"),
                "evidence": r("RegistrationAttestation")
            }), &[]),
            "ReportedCollector": obj("A collector status as the latest heartbeat carried it.", json!({
                "at": r("Timestamp"),
                "status": r("GpuCollectorStatus")
            }), &[]),
            "HeartbeatResponse": obj("An accepted heartbeat.", json!({
                "status": r("NodeStatus"), "heartbeat_interval_secs": integer("Interval, seconds.")
            }), &[]),
            "NodeView": obj("A node.", json!({
                "id": r("NodeId"), "public_key": r("Hex"), "wallet": r("WalletAddress"),
                "wallet_status": { "type": "string", "enum": ["proven", "unverified"], "description": "`proven`: the wallet account signed for this node key, checked on chain; `unverified`: named by the node only (no chain to check it on)." },
                "wallet_proven_at": r("Timestamp"),
                "hardware": r("HardwareReport"), "attestation": r("AttestationSummary"),
                "agent_version": string("Agent version at registration."),
                "status": r("NodeStatus"), "status_reason": string("Why it is in that status."),
                "status_changed_at": r("Timestamp"), "registered_at": r("Timestamp")
            }), &["wallet_proven_at"]),
            "NodeDetail": { "allOf": [r("NodeView"), obj("Latest heartbeat and history.", json!({
                "last_seen": nullable(r("Timestamp")),
                "gpu_collector": nullable(r("ReportedCollector")),
                "history": arr(r("StatusChange"))
            }), &[])] },
            "NodePage": page_of("NodeView"),
            "WorkerUptime": obj("Uptime from heartbeats over a window ending now.", json!({
                "node_id": r("NodeId"),
                "window_secs": integer("Window length, seconds."),
                "window": obj("The window.", json!({ "from": r("Timestamp"), "to": r("Timestamp") }), &[]),
                "heartbeats": integer("Heartbeats in the window."),
                "covered_seconds": number("Seconds covered (each heartbeat covers one interval)."),
                "ratio": number("covered_seconds / window, 0–1."),
                "heartbeat_interval_secs": integer("The expected interval."),
                "last_seen": nullable(r("Timestamp"))
            }), &[])
        }),
    );
    // ---- jobs
    extend(
        &mut m,
        json!({
            "SubmitJobRequest": strict("A job to queue, signed by the account that pays for it.", json!({
                "job": r("JobKind"),
                "payment": { "allOf": [r("TokenAmount")], "description": "At most 2^128 - 1 base units." },
                "max_attempts": { "type": ["integer", "null"], "minimum": 1, "maximum": 10, "default": 3 },
                "payer": r("WalletAddress"),
                "nonce": { "type": "integer", "minimum": 0, "description": "Any number; each signed submission is accepted once." },
                "sent_at": r("Timestamp"),
                "signature": { "type": "array", "minItems": 1, "maxItems": 32, "items": { "type": "string", "pattern": "^0x[0-9a-fA-F]{1,64}$" }, "description": "The payer account's signature (`[r, s]` for a standard account)." }
            }), &["max_attempts"]),
            "JobView": job_view(),
            "LeaseRequest": strict("Signed with the node's key.", json!({
                "node_id": r("NodeId"), "nonce": integer("Random; makes the request unique."),
                "sent_at": r("Timestamp"), "signature": r("Hex")
            }), &[]),
            "LeaseResponse": obj("Work for the node, or none.", json!({
                "assignment": { "oneOf": [
                    { "type": "null" },
                    { "type": "object", "description": "`type: job` with lease, fee and net; or `type: probe` with a coordinator-signed ticket.",
                      "properties": { "type": { "type": "string", "enum": ["job", "probe"] } }, "required": ["type"] }
                ] },
                "retry_after_secs": integer("When there is no work: wait this long."),
                "node_status": r("NodeStatus"),
                "waiting_reason": string("Why a pending node gets no probe yet (with a chain: its stake is below its tier's minimum).")
            }), &["waiting_reason"]),
            "ProofEnvelope": {
                "type": "object",
                "description": "A stwo proof with its job, public output, configuration, hash and commitments (`proof` is hex).",
                "properties": {
                    "format_version": integer("Envelope format version."),
                    "proof": r("Hex"),
                    "proof_hash": r("Hex")
                }
            },
            "CompleteRequest": strict("Signed with the node's key.", json!({
                "node_id": r("NodeId"), "job_id": r("Uuid"),
                "lease_id": nullable(r("Uuid")),
                "probe": { "type": ["object", "null"], "description": "The probe ticket, for a probe." },
                "envelope": r("ProofEnvelope"),
                "receipt": { "type": ["object", "null"], "description": "The receipt body the node signs (leased jobs)." },
                "receipt_signature": nullable(r("Hex")),
                "envelope_digest": { "allOf": [r("Hex")], "description": "The envelope's transport digest (BLAKE2s-256 over every field but the timings), signed: bytes altered in transit are refused with `transport_error`." },
                "sent_at": r("Timestamp"), "signature": r("Hex")
            }), &[]),
            "CompleteResponse": obj("An accepted completion.", json!({
                "receipt": nullable(r("ReceiptView")),
                "node_status": r("NodeStatus"),
                "security_bits": integer("Security level the proof was verified at.")
            }), &[]),
            "FailRequest": strict("Signed with the node's key.", json!({
                "node_id": r("NodeId"), "job_id": r("Uuid"), "lease_id": r("Uuid"),
                "reason": string("1 to 512 characters."), "sent_at": r("Timestamp"), "signature": r("Hex")
            }), &[])
        }),
    );
    // ---- receipts and earnings
    extend(
        &mut m,
        json!({
            "ReceiptView": receipt_view(),
            "ReceiptPage": page_of("ReceiptView"),
            "EarningsTotal": earnings_total(),
            "DailyEarnings": { "allOf": [
                obj("One UTC day.", json!({ "day": { "type": "string", "format": "date" } }), &[]),
                r("EarningsTotal")
            ] },
            "EarningsResponse": obj("A node's exact earnings.", json!({
                "node_id": r("NodeId"),
                "from": nullable(r("Timestamp")), "to": nullable(r("Timestamp")),
                "total": r("EarningsTotal"), "days": arr(r("DailyEarnings")),
                "settlement": obj("All-time net: settled on chain, and verified but pending settlement.", json!({
                    "settled_net": r("TokenAmount"), "settled_net_formatted": string("For people."),
                    "pending_net": r("TokenAmount"), "pending_net_formatted": string("For people."),
                    "pending_receipts": integer("Receipts not yet in an accepted epoch."),
                    "oldest_pending_at": nullable(r("Timestamp"))
                }), &[])
            }), &[])
        }),
    );
    // ---- network and health
    extend(
        &mut m,
        json!({
            "NetworkStats": obj("Counts from the store.", json!({
                "active_workers": integer("Nodes in status active."),
                "total_workers": integer("Registered nodes."),
                "total_jobs_processed": integer("Jobs completed.")
            }), &[]),
            "NetworkWorker": obj("A node in the network view.", json!({
                "node_id": r("NodeId"), "status": r("NodeStatus"), "wallet": r("WalletAddress"),
                "registered_at": r("Timestamp"), "last_seen": nullable(r("Timestamp")),
                "gpu_count": integer("GPUs in its hardware report."),
                "gpu_models": arr(json!({ "type": "string" })),
                "uptime_24h": number("Share of the last 24 h covered by heartbeats, 0–1.")
            }), &[]),
            "NetworkWorkerPage": page_of("NetworkWorker"),
            "NetworkWorkers": obj("The network view.", json!({
                "generated_at": r("Timestamp"), "workers": section("NetworkWorkerPage")
            }), &[]),
            "StoredEvent": obj("A domain event: the envelope every live client receives.", json!({
                "id": integer("Strictly increasing in commit order; resume after it."),
                "topic": { "type": "string", "enum": ["jobs", "workers", "receipts", "staking", "incidents"] },
                "type": string("The event's type, e.g. `job_completed`, `node_status_changed`, `receipt_issued`, `chain_event_indexed`."),
                "at": r("Timestamp"),
                "data": { "type": "object", "description": "The event's payload." }
            }), &[]),
            "InclusionProof": obj("A receipt's place in a settlement epoch.", json!({
                "epoch_id": integer("The epoch."),
                "state": { "type": "string", "enum": ["pending", "sent", "accepted", "failed"], "description": "The epoch's state; the root is anchored once `accepted`." },
                "tx_hash": string("The settlement transaction (sent, accepted)."),
                "block": integer("The block it was accepted in."),
                "reason": string("Why the last attempt failed (failed)."),
                "leaf_index": integer("The receipt's position among the epoch's leaves."),
                "leaf": r("Hex"),
                "path": arr(obj("A sibling on the way up.", json!({ "sibling": r("Hex"), "left": boolean("The sibling is on the left.") }), &[])),
                "receipts_root": r("Hex")
            }), &["tx_hash", "block", "reason"]),
            "DeploymentInfo": obj("The deployment's published identity: pin `public_key` before trusting a receipt.", json!({
                "network": string("The network's name."),
                "public_key": { "allOf": [r("Hex")], "description": "The deployment key every coordinator of the network countersigns receipts with (ed25519, hex)." },
                "key_id": string("`bsk_` + the first 16 hex digits of BLAKE2s-256(\"bitsage/deployment-key-id/v1\" ‖ key)."),
                "version": string("The coordinator's software version."),
                "wallet_chain_id": string("The chain (SNIP-12 `chainId`) node wallet proofs are checked on; absent: this coordinator checks none and stores wallets as unverified."),
                "payment_chain_id": string("The chain (SNIP-12 `chainId`) job payers sign submissions for (`BITSAGE_LOCAL` without a chain).")
            }), &["wallet_chain_id", "payment_chain_id"]),
            "LiveResponse": obj("The process answers.", json!({ "status": { "const": "ok" } }), &[]),
            "ComponentHealth": obj("One component's health.", json!({
                "status": { "type": "string", "enum": ["ok", "unavailable"] },
                "backend": string("sqlite, postgres or memory."),
                "latency_ms": number("Check latency (when it answered)."),
                "error": string("Why it is unavailable (when it is).")
            }), &["latency_ms", "error"]),
            "HealthResponse": obj("Readiness with component detail.", json!({
                "status": { "type": "string", "enum": ["ok", "unavailable"] },
                "components": obj("Components.", json!({ "store": r("ComponentHealth") }), &[])
            }), &[])
        }),
    );
    // ---- dashboard
    extend(
        &mut m,
        json!({
            "StakeView": stake_view(),
            "RewardsView": rewards_view(),
            "ReputationView": obj("A wallet's reputation.", json!({
                "score": integer("0–1000."), "level": integer("1–5."),
                "last_updated": nullable(r("Timestamp")),
                "total_jobs_completed": integer("Jobs completed."),
                "successful_jobs": integer("Successful jobs."), "failed_jobs": integer("Failed jobs."),
                "dispute_count": integer("Disputes."), "slash_count": integer("Slashes.")
            }), &[]),
            "NetworkTotalsView": totals_view(),
            "StakeReading": chain_reading("StakeView"),
            "RewardsReading": chain_reading("RewardsView"),
            "ReputationReading": chain_reading("ReputationView"),
            "NetworkTotalsReading": chain_reading("NetworkTotalsView"),
            "WorkerCounts": obj("Nodes by status.", json!({
                "total": integer("Nodes."), "by_status": counts("Per status; every status present."),
                "by_wallet_status": counts("A wallet's nodes by wallet proof (`proven`, `unverified`); wallet views only.")
            }), &["by_wallet_status"]),
            "WalletJobs": obj("Jobs of a wallet's nodes.", json!({
                "completed": integer("Completed by them."), "leased": integer("Leased to them now.")
            }), &[]),
            "ValidatorStatus": obj("A wallet at a glance.", json!({
                "wallet": r("WalletAddress"), "generated_at": r("Timestamp"),
                "workers": section("WorkerCounts"), "jobs": section("WalletJobs"),
                "earnings": section("EarningsTotal"), "stake": section("StakeReading"),
                "rewards": section("RewardsReading"), "reputation": section("ReputationReading")
            }), &[]),
            "NodeGpus": obj("One node's GPUs.", json!({
                "node_id": r("NodeId"), "status": r("NodeStatus"), "gpus": arr(r("GpuDevice")),
                "host": nullable(r("HostInfo")),
                "gpu_unavailable_reason": { "type": ["string", "null"] },
                "latest_samples": arr(r("GpuSample")),
                "gpu_collector": nullable(r("ReportedCollector")),
                "attestation": r("AttestationSummary")
            }), &[]),
            "WalletGpus": obj("A wallet's GPUs.", json!({
                "total_gpus": integer("GPUs over all nodes."), "nodes": arr(r("NodeGpus"))
            }), &[]),
            "ValidatorGpus": obj("The GPUs of a wallet's nodes.", json!({
                "wallet": r("WalletAddress"), "generated_at": r("Timestamp"), "workers": section("WalletGpus")
            }), &[]),
            "NodeEarnings": { "allOf": [obj("A node.", json!({ "node_id": r("NodeId") }), &[]), r("EarningsTotal")] },
            "LedgerEarnings": obj("Ledger earnings of a wallet's nodes.", json!({
                "total": r("EarningsTotal"), "nodes": arr(r("NodeEarnings"))
            }), &[]),
            "ValidatorRewards": obj("Ledger earnings and on-chain rewards.", json!({
                "wallet": r("WalletAddress"), "generated_at": r("Timestamp"),
                "earnings": section("LedgerEarnings"), "rewards": section("RewardsReading")
            }), &[]),
            "DailySeries": obj("Earnings per UTC day.", json!({ "days": arr(r("DailyEarnings")) }), &[]),
            "StatusChanges": obj("Status changes, newest first (at most 100).", json!({
                "total": integer("Changes in the window."), "items": arr(r("StatusChange"))
            }), &[]),
            "ValidatorHistory": obj("A wallet's history.", json!({
                "wallet": r("WalletAddress"), "from": r("Timestamp"), "to": r("Timestamp"),
                "generated_at": r("Timestamp"),
                "earnings": section("DailySeries"), "status_changes": section("StatusChanges")
            }), &[]),
            "JobCounts": obj("Jobs by status.", json!({
                "total": integer("Jobs."), "by_status": counts("Per status; every status present."),
                "success_rate": { "type": ["number", "null"], "description": "completed / (completed + failed); null before any job finished." }
            }), &[]),
            "JobAnalytics": obj("Job analytics.", json!({
                "generated_at": r("Timestamp"), "jobs": section("JobCounts")
            }), &[]),
            "RecentJobsList": obj("The newest jobs.", json!({
                "total": integer("Jobs in the store."), "items": arr(r("JobView"))
            }), &[]),
            "RecentJobs": obj("Recent jobs.", json!({
                "generated_at": r("Timestamp"), "jobs": section("RecentJobsList")
            }), &[]),
            "NetworkSummary": obj("Workers and jobs.", json!({
                "active_workers": integer("Nodes active."), "total_workers": integer("Nodes."),
                "workers_by_status": counts("Nodes per status."), "jobs": r("JobCounts")
            }), &[]),
            "Summary": obj("The dashboard's front page.", json!({
                "generated_at": r("Timestamp"), "network": section("NetworkSummary"),
                "chain": section("NetworkTotalsReading"), "store": r("ComponentHealth"),
                "settlement": section("SettlementSummary")
            }), &[]),
            "SettlementSummary": obj("Verified work waiting to be settled on chain.", json!({
                "pending_receipts": integer("Receipts not yet in an accepted epoch."),
                "pending_slashes": integer("Slashes not yet sent."),
                "oldest_pending_at": nullable(r("Timestamp")),
                "oldest_pending_age_secs": { "type": ["integer", "null"], "description": "Age of the oldest pending receipt, seconds." }
            }), &[])
        }),
    );
    extend(&mut m, account_schemas());
    Value::Object(m)
}

/// Moves the entries of `from` (a JSON object) into `into`.
fn extend(into: &mut Map<String, Value>, from: Value) {
    if let Value::Object(o) = from {
        into.extend(o);
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": r("Error") } }
    })
}

fn build() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "BitSage coordinator API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A verifiable GPU compute network's coordinator: nodes, jobs, proofs, receipts, earnings and the validator dashboard. JSON in snake_case; token amounts as base-unit decimal strings next to `*_formatted` strings; times RFC 3339 UTC; every error is `{\"error\":{\"type\",\"message\"}}`. Dashboard responses are split into field groups, each `status: ok` with its fields or `status: unavailable` with a reason."
        },
        "tags": [
            { "name": "nodes" }, { "name": "jobs" }, { "name": "receipts" },
            { "name": "network" }, { "name": "dashboard" }, { "name": "ops" }, { "name": "deployment" }, { "name": "live" },
            { "name": "auth" }, { "name": "admin" }
        ],
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "parameters": {
                "WalletAddress": {
                    "name": "X-Wallet-Address",
                    "in": "header",
                    "required": true,
                    "schema": r("WalletAddress"),
                    "description": "The validator's Starknet wallet address."
                }
            },
            "responses": {
                "400": error_response("Malformed request (`invalid_request`)."),
                "401": error_response("Signature or token rejected (`unauthorized`)."),
                "403": error_response("Not allowed: a quarantined node (`forbidden`), a wallet not proven (`wallet_rejected`)."),
                "404": error_response("Not found (`not_found`)."),
                "402": error_response("The payer cannot cover the payment (`insufficient_funds`): its escrow or local credit, less what is reserved."),
                "409": error_response("Conflict with the current state (`conflict`)."),
                "413": error_response("Body too large (`payload_too_large`)."),
                "415": error_response("Body is not JSON (`unsupported_media_type`)."),
                "422": error_response("Proof or attestation rejected, or arithmetic overflow (`proof_rejected`, `attestation_rejected`, `overflow`)."),
                "500": error_response("Internal error (`internal`); details are logged, never sent."),
                "503": error_response("A source did not answer (`unavailable`).")
            },
            "securitySchemes": {
                "submitToken": { "type": "http", "scheme": "bearer", "description": "Required by `POST /api/jobs` when the coordinator has a submit token." }
            }
        }
    })
}
