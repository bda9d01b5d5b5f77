//! The OpenAPI 3.1 document of the whole API, served at `GET /openapi.json`.
//!
//! Generated with `utoipa` from the types the handlers send and receive: every wire type
//! derives `ToSchema` (the core's behind its `openapi` feature; types with their own JSON form,
//! such as amounts, addresses, keys and ids, have hand-written string schemas there), every
//! handler of [`crate::router`] carries a `#[utoipa::path]` with its parameters, body,
//! responses and security, and [`ApiDoc`] lists them. What the document cannot take from the
//! types is added here: the security schemes, the shared error responses ([`responses`]), the
//! aliases (`/health/live`, `/health/ready`, `/.well-known/bitsage.json`, the seed's
//! `/api/worker/heartbeat` and `/stats`) and, on
//! every operation, who may call it, read from [`crate::auth::ROUTES`].
//!
//! Tests check that every route is documented, that the security of each operation agrees
//! with the route table, and (`tests/it/openapi_shapes.rs`) that served bodies validate against
//! the schemas the document declares for them.

use std::sync::OnceLock;

use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{HttpMethod, PathItem};
use utoipa::{Modify, OpenApi};

use crate::auth::{Access, ROUTES};

/// The document's description.
const DESCRIPTION: &str = "A verifiable GPU compute network's coordinator: nodes, jobs, \
proofs, receipts, earnings, accounts and the validator dashboard.\n\n\
Conventions: JSON in snake_case; token amounts as base-unit decimal strings (`TokenAmount`) \
next to `*_formatted` strings for people; times RFC 3339 UTC; request bodies refuse unknown \
fields; every error is `{\"error\":{\"type\",\"message\"}}` (`ErrorBody`) with the matching \
status. Dashboard responses are split into field groups, each `status: ok` with its fields or \
`status: unavailable` with a reason.\n\n\
Who may call what: node routes are signed by the node in the body (no credential); the \
network overview is public unless the deployment turns anonymous access off; everything else \
needs a user session (`Authorization: Bearer <access token>`, or the `bitsage_access` cookie \
with `X-CSRF-Token` on changes) or an API key (`Authorization: Bearer bsa_…`) with the route's \
scope. Every route is rate limited per class (429 with `Retry-After`).";

/// The API's OpenAPI document: every route of [`crate::router`] and the schemas they use.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "BitSage coordinator API",
        version = env!("CARGO_PKG_VERSION"),
        description = DESCRIPTION
    ),
    paths(
        crate::routes::register,
        crate::routes::attestation_challenge,
        crate::routes::heartbeat,
        crate::routes::list_nodes,
        crate::routes::node_detail,
        crate::routes::attestation_evidence,
        crate::dashboard::worker_uptime,
        crate::operations::eligibility,
        crate::operations::gpu_minutes,
        crate::operations::reputation,
        crate::operations::quarantine,
        crate::operations::clear,
        crate::operations::drain,
        crate::operations::undrain,
        crate::operations::incidents,
        crate::operations::create_incident,
        crate::operations::update_incident,
        crate::operations::flags,
        crate::operations::set_flag,
        crate::operations::payouts,
        crate::operations::mark_payout_ready,
        crate::seed::worker_status,
        crate::seed::worker_gpu_metrics,
        crate::seed::claim_reward,
        crate::routes::submit_job,
        crate::routes::get_job,
        crate::routes::lease,
        crate::routes::complete,
        crate::routes::fail,
        crate::dashboard::jobs_analytics,
        crate::dashboard::jobs_recent,
        crate::routes::list_receipts,
        crate::routes::receipt,
        crate::routes::receipt_inclusion,
        crate::routes::earnings,
        crate::routes::network_stats,
        crate::dashboard::network_workers,
        crate::dashboard::validator_status,
        crate::dashboard::validator_gpus,
        crate::dashboard::validator_rewards,
        crate::dashboard::validator_history,
        crate::dashboard::summary,
        crate::routes::contracts,
        crate::routes::coordinator,
        crate::live::sse,
        crate::live::ws_all,
        crate::live::ws_jobs,
        crate::live::ws_workers,
        crate::live::ws_staking,
        crate::routes::livez,
        crate::routes::readyz,
        crate::routes::health,
        crate::routes::metrics,
        crate::dashboard::openapi_json,
        crate::accounts::login,
        crate::accounts::refresh,
        crate::accounts::logout,
        crate::accounts::me,
        crate::accounts::list_users,
        crate::accounts::create_user,
        crate::accounts::update_user,
        crate::accounts::list_orgs,
        crate::accounts::create_org,
        crate::accounts::add_org_wallet,
        crate::accounts::remove_org_wallet,
        crate::accounts::list_keys,
        crate::accounts::create_key,
        crate::accounts::revoke_key,
        crate::accounts::create_enrolment,
        crate::accounts::audit,
    ),
    components(
        // What no operation's body names: the WebSocket protocol's messages, and the types
        // of parameters (query structs and path parameters do not register theirs).
        schemas(
            crate::api::ErrorBody,
            crate::live::ClientMessage,
            crate::live::ServerMessage,
            crate::api::EarningsFormat,
            bitsage_core::NodeStatus,
            bitsage_core::access::Outcome,
            bitsage_core::openapi::TimestampSchema,
            bitsage_core::crypto::PublicKey,
            bitsage_core::WalletAddress,
            bitsage_core::NodeId,
            bitsage_core::JobId,
            bitsage_core::ReceiptId,
            bitsage_core::UserId,
            bitsage_core::OrgId,
        ),
        responses(
            responses::BadRequest,
            responses::Unauthorized,
            responses::PaymentRequired,
            responses::Forbidden,
            responses::NotFound,
            responses::Conflict,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
            responses::UpgradeRequired,
            responses::TooManyRequests,
            responses::InternalError,
            responses::ServiceUnavailable,
        ),
    ),
    modifiers(&SecuritySchemes, &Aliases, &AccessNotes),
    tags(
        (name = "nodes", description = "Node registration, heartbeats and views (node routes are signed by the node)."),
        (name = "jobs", description = "Job submission, leases, proofs and failures."),
        (name = "receipts", description = "Countersigned receipts, their settlement and earnings."),
        (name = "network", description = "The network overview."),
        (name = "dashboard", description = "The validator dashboard (field groups `ok` or `unavailable`)."),
        (name = "deployment", description = "The deployment's published identity."),
        (name = "live", description = "Live events: Server-Sent Events and WebSockets."),
        (name = "ops", description = "Health, readiness, metrics and this document."),
        (name = "auth", description = "Sessions, the caller and API keys."),
        (name = "admin", description = "Users, organisations and the audit log (admins)."),
    ),
)]
pub struct ApiDoc;

/// The API's OpenAPI 3.1 document as JSON (built once, then shared).
pub fn document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
            // Serialising plain data cannot fail; say so loudly if it ever does.
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            Value::Null
        });
        tidy_doc_links(&mut doc);
        doc
    })
    .clone()
}

/// The shared error responses, each with the [`crate::api::ErrorBody`] shape, referred to by
/// the operations as `#/components/responses/<name>`.
pub mod responses {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
    use utoipa::ToResponse;

    /// An error response: `description` and the shared error body.
    fn error(description: &str) -> ResponseBuilder {
        ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
    }

    macro_rules! error_response {
        ($(#[$doc:meta])* $name:ident, $description:literal) => {
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), error($description).build().into())
                }
            }
        };
    }

    error_response!(
        /// 400 `invalid_request`.
        BadRequest,
        "A malformed request (`invalid_request`): a body, query, path parameter or header that \
         does not parse or is out of range."
    );
    error_response!(
        /// 401 `unauthorized`.
        Unauthorized,
        "Not authenticated (`unauthorized`): no credential, an invalid or expired token or key, \
         or a node signature that does not verify."
    );
    error_response!(
        /// 402 `insufficient_funds`.
        PaymentRequired,
        "The payer cannot cover the payment (`insufficient_funds`): its escrow or local credit, \
         less what is reserved."
    );
    error_response!(
        /// 403 `forbidden` and friends.
        Forbidden,
        "Not allowed (`forbidden`): the caller's role or API key scope may not use this route, \
         a quarantined node; `csrf_rejected`: a cookie session's change without the CSRF token."
    );
    error_response!(
        /// 404 `not_found`.
        NotFound,
        "Not found (`not_found`), or not visible to the caller's organisation."
    );
    error_response!(
        /// 409 `conflict`.
        Conflict,
        "Conflicts with the current state (`conflict`): already exists, an expired or foreign \
         lease, a replayed message."
    );
    error_response!(
        /// 413 `payload_too_large`.
        PayloadTooLarge,
        "The body is larger than the server accepts (`payload_too_large`)."
    );
    error_response!(
        /// 415 `unsupported_media_type`.
        UnsupportedMediaType,
        "The body is not `Content-Type: application/json` (`unsupported_media_type`)."
    );
    error_response!(
        /// 426 `upgrade_required`.
        UpgradeRequired,
        "Not a WebSocket upgrade (`upgrade_required`): connect with a WebSocket client."
    );
    error_response!(
        /// 500 `internal`.
        InternalError,
        "Internal error (`internal`); details are logged, never sent."
    );
    error_response!(
        /// 503 `unavailable`.
        ServiceUnavailable,
        "A backend did not answer in time (`unavailable`): the store (within its 2 s acquire \
         timeout) or the chain."
    );

    /// 429 `rate_limited`, with the bucket's headers.
    #[derive(Debug, Clone, Copy)]
    pub struct TooManyRequests;

    impl<'r> ToResponse<'r> for TooManyRequests {
        fn response() -> (&'r str, RefOr<Response>) {
            let integer = |description: &str| {
                HeaderBuilder::new()
                    .schema(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::Integer)
                            .minimum(Some(0)),
                    )
                    .description(Some(description))
                    .build()
            };
            let response = error(
                "Too many requests in this route class (`rate_limited`); retry after \
                 `Retry-After` seconds.",
            )
            .header(
                "Retry-After",
                integer("Seconds until a request is allowed again."),
            )
            .header(
                "X-RateLimit-Limit",
                integer("Requests per minute of the class."),
            )
            .header(
                "X-RateLimit-Remaining",
                integer("Requests left in the bucket."),
            )
            .header(
                "X-RateLimit-Reset",
                integer("Seconds until the bucket is full again."),
            )
            .build();
            ("TooManyRequests", response.into())
        }
    }
}

/// Adds the security schemes the operations name: `bearer` and `cookie`.
#[derive(Debug, Clone, Copy)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT access token or API key (bsa_…)")
                    .description(Some(
                        "`Authorization: Bearer <token>`: an access token from \
                         `POST /api/auth/login` (JWT, ~15 min) or an API key (`bsa_…`) with \
                         the route's scope.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::ACCESS_COOKIE,
                "The browser session's access token (HttpOnly, set by `POST /api/auth/login`); \
                 every change also needs the `bitsage_csrf` cookie's value in `X-CSRF-Token`.",
            ))),
        );
    }
}

/// The routes served by another route's handler: (method, alias, original, operationId).
const ALIASES: &[(HttpMethod, &str, &str, &str)] = &[
    (HttpMethod::Get, "/health/live", "/livez", "healthLive"),
    (HttpMethod::Get, "/health/ready", "/readyz", "healthReady"),
    (
        HttpMethod::Get,
        "/.well-known/bitsage.json",
        "/api/coordinator",
        "wellKnown",
    ),
    // The deployment guide's names (seed routes).
    (
        HttpMethod::Post,
        "/api/worker/heartbeat",
        "/api/nodes/heartbeat",
        "workerHeartbeat",
    ),
    (HttpMethod::Get, "/stats", "/api/network/stats", "stats"),
];

/// Documents the aliases as copies of their originals' operations.
#[derive(Debug, Clone, Copy)]
struct Aliases;

impl Modify for Aliases {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (method, alias, original, operation_id) in ALIASES {
            let Some(op) = openapi
                .paths
                .paths
                .get(*original)
                .and_then(|item| match method {
                    HttpMethod::Post => item.post.clone(),
                    _ => item.get.clone(),
                })
            else {
                continue;
            };
            let mut op = op;
            op.operation_id = Some((*operation_id).to_string());
            let verb = if *method == HttpMethod::Post {
                "POST"
            } else {
                "GET"
            };
            op.summary = Some(format!("Alias of `{verb} {original}`"));
            openapi
                .paths
                .paths
                .insert((*alias).to_string(), PathItem::new(method.clone(), op));
        }
    }
}

/// Appends to each operation's description who may call it, from [`ROUTES`].
#[derive(Debug, Clone, Copy)]
struct AccessNotes;

/// What `access` means, in words.
fn access_note(access: Access) -> String {
    match access {
        Access::Public => "**Access:** anyone.".to_string(),
        Access::NodeSigned => {
            "**Access:** a node, by its ed25519 signature in the body (no credential).".to_string()
        }
        Access::Overview => "**Access:** anyone while the deployment allows anonymous overview \
                             reads (the default); otherwise any signed-in role (API keys need \
                             `network:read`)."
            .to_string(),
        Access::Roles { roles, scope } => {
            let roles: Vec<String> = roles.iter().map(|r| format!("`{r}`")).collect();
            let keys = match scope {
                Some(s) => format!("API keys need the `{}` scope", s.as_str()),
                None => "users only, not API keys".to_string(),
            };
            format!("**Access:** roles {}; {keys}.", roles.join(", "))
        }
    }
}

impl Modify for AccessNotes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for rule in ROUTES {
            let Some(item) = openapi.paths.paths.get_mut(rule.path) else {
                continue;
            };
            let op = match rule.method {
                "GET" => item.get.as_mut(),
                "POST" => item.post.as_mut(),
                "PATCH" => item.patch.as_mut(),
                "DELETE" => item.delete.as_mut(),
                "PUT" => item.put.as_mut(),
                _ => None,
            };
            if let Some(op) = op {
                let note = access_note(rule.access);
                op.description = Some(match op.description.take() {
                    Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
                    _ => note,
                });
            }
        }
    }
}

/// Rewrites rustdoc links in descriptions taken from doc comments (`` [`Foo`] `` →
/// `` `Foo` ``): the document's readers have no Rust docs to follow them to.
fn tidy_doc_links(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match v {
                    Value::String(s) if k == "description" || k == "summary" => {
                        *s = unlink(s);
                    }
                    _ => tidy_doc_links(v),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(tidy_doc_links),
        _ => {}
    }
}

/// `` [`x`] `` → `` `x` `` where no link target follows.
fn unlink(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("[`") {
        let after = &rest[start + 1..];
        let Some(end) = after.find("`]") else { break };
        let code = &after[..end + 1];
        let tail = &after[end + 2..];
        out.push_str(&rest[..start]);
        if tail.starts_with('(') || tail.starts_with('[') {
            // A link with an explicit target: keep it as written.
            out.push('[');
            out.push_str(code);
            out.push(']');
        } else {
            out.push_str(code);
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_links_become_code() {
        assert_eq!(
            unlink("1 ..= [`MAX_CHAIN_LENGTH`], see [`crate::x`]."),
            "1 ..= `MAX_CHAIN_LENGTH`, see `crate::x`."
        );
        assert_eq!(unlink("[`a`](http://x) and [b]"), "[`a`](http://x) and [b]");
        assert_eq!(unlink("no links"), "no links");
    }

    /// Each operation's security is what the route table says: none for public and
    /// node-signed routes, optional for the overview, `bearer` or `cookie` otherwise; and a
    /// route that needs a credential documents 401 and 403.
    #[test]
    fn security_follows_the_route_table() {
        let doc = document();
        for rule in ROUTES {
            let op = &doc["paths"][rule.path][rule.method.to_lowercase()];
            assert!(op.is_object(), "{} {} undocumented", rule.method, rule.path);
            let security = op.get("security").cloned().unwrap_or(Value::Null);
            let signed_in = serde_json::json!([{ "bearer": [] }, { "cookie": [] }]);
            let optional = serde_json::json!([{}, { "bearer": [] }, { "cookie": [] }]);
            match rule.access {
                Access::Public | Access::NodeSigned => {
                    assert!(
                        security.is_null(),
                        "{} {}: {security}",
                        rule.method,
                        rule.path
                    )
                }
                Access::Overview => {
                    assert_eq!(security, optional, "{} {}", rule.method, rule.path)
                }
                Access::Roles { .. } => {
                    assert_eq!(security, signed_in, "{} {}", rule.method, rule.path);
                    for code in ["401", "403"] {
                        assert!(
                            op["responses"][code].is_object(),
                            "{} {} does not document {code}",
                            rule.method,
                            rule.path
                        );
                    }
                }
            }
            let description = op["description"].as_str().unwrap_or_default();
            assert!(description.contains("**Access:**"), "{}", rule.path);
        }
    }
}
