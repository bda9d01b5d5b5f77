//! Who may call what: the one route × role table ([`ROUTES`]), the middleware that enforces
//! it on every route ([`authorize`], failing closed for a route without a row), the caller's
//! [`Principal`] (from `Authorization: Bearer` — an access token or an API key, the scheme in
//! any case — or, for browsers, the HttpOnly session cookie with a CSRF token on every
//! mutation), the audit entry every mutation by a user or key leaves, and the organisation
//! scoping operators get in handlers ([`ensure_wallet_visible`]).
//!
//! Node-signed routes keep their signatures (the body proves the node) and need no principal.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bitsage_core::access::{ActorKind, NewAuditEntry, Outcome, Role, Scope};
use bitsage_core::service::accounts::Principal;
use bitsage_core::WalletAddress;

use crate::error::{ApiError, ApiResult};
use crate::layers::RequestId;
use crate::AppState;

/// The session cookie holding the access token (HttpOnly, Secure, SameSite=Strict).
pub const ACCESS_COOKIE: &str = "bitsage_access";
/// The cookie holding the refresh token (HttpOnly, Secure, SameSite=Strict, path
/// `/api/auth`).
pub const REFRESH_COOKIE: &str = "bitsage_refresh";
/// The cookie holding the CSRF token (readable by the page, which echoes it in
/// [`CSRF_HEADER`] on every mutation).
pub const CSRF_COOKIE: &str = "bitsage_csrf";
/// The header a browser mutation must carry, equal to the [`CSRF_COOKIE`].
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Every role.
const ANY: &[Role] = &[Role::Admin, Role::Operator, Role::Viewer];
/// Admins and operators (operators scoped to their organisation by the handler).
const ORG: &[Role] = &[Role::Admin, Role::Operator];
/// Admins only.
const ADMIN: &[Role] = &[Role::Admin];

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// A node: the body carries the node's signature (checked by the use case).
    NodeSigned,
    /// The public network overview: anyone while the `allow_anonymous_overview` flag is on
    /// (configured, or set by an admin at runtime), otherwise
    /// any role (keys with `network:read`).
    Overview,
    /// One of `roles`; an API key also needs `scope` (`None`: users only, no key).
    Roles {
        /// The roles allowed.
        roles: &'static [Role],
        /// The scope a key needs.
        scope: Option<Scope>,
    },
}

/// One row of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    /// The method (`GET` rows also cover `HEAD`).
    pub method: &'static str,
    /// The route template, as the router names it (`/api/nodes/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn rule(method: &'static str, path: &'static str, access: Access) -> RouteRule {
    RouteRule {
        method,
        path,
        access,
    }
}

const fn roles(roles: &'static [Role], scope: Scope) -> Access {
    Access::Roles {
        roles,
        scope: Some(scope),
    }
}

const fn users(roles: &'static [Role]) -> Access {
    Access::Roles { roles, scope: None }
}

/// The route × role table: every route of [`crate::router`], enforced by [`authorize`].
pub const ROUTES: &[RouteRule] = &[
    // Ops and the deployment's identity.
    rule("GET", "/livez", Access::Public),
    rule("GET", "/health/live", Access::Public),
    rule("GET", "/readyz", Access::Public),
    rule("GET", "/health", Access::Public),
    rule("GET", "/health/ready", Access::Public),
    rule("GET", "/api/coordinator", Access::Public),
    rule("GET", "/.well-known/bitsage.json", Access::Public),
    rule("GET", "/openapi.json", Access::Public),
    rule("GET", "/metrics", roles(ADMIN, Scope::MetricsRead)),
    // Sessions.
    rule("POST", "/api/auth/login", Access::Public),
    rule("POST", "/api/auth/refresh", Access::Public),
    rule("POST", "/api/auth/logout", Access::Public),
    rule("GET", "/api/users/me", roles(ANY, Scope::NetworkRead)),
    // Administration.
    rule("GET", "/api/users", users(ADMIN)),
    rule("POST", "/api/users", users(ADMIN)),
    rule("PATCH", "/api/users/{id}", users(ADMIN)),
    rule("GET", "/api/orgs", users(ADMIN)),
    rule("POST", "/api/orgs", users(ADMIN)),
    rule("POST", "/api/orgs/{id}/wallets", users(ADMIN)),
    rule("DELETE", "/api/orgs/{id}/wallets/{wallet}", users(ADMIN)),
    rule("GET", "/api/audit", users(ADMIN)),
    rule("GET", "/api/keys", users(ORG)),
    rule("POST", "/api/keys", users(ANY)),
    rule("DELETE", "/api/keys/{id}", users(ORG)),
    rule("POST", "/api/enrolments", users(ORG)),
    // Nodes (signed by the node).
    rule("POST", "/api/nodes/register", Access::NodeSigned),
    rule("POST", "/api/nodes/heartbeat", Access::NodeSigned),
    rule("POST", "/api/worker/heartbeat", Access::NodeSigned),
    rule(
        "GET",
        "/api/nodes/attestation-challenge",
        Access::NodeSigned,
    ),
    rule("POST", "/api/jobs/lease", Access::NodeSigned),
    rule("POST", "/api/jobs/complete", Access::NodeSigned),
    rule("POST", "/api/jobs/fail", Access::NodeSigned),
    // An organisation's nodes, receipts, earnings and wallets.
    rule("GET", "/api/nodes", roles(ORG, Scope::NodesRead)),
    rule("GET", "/api/nodes/{id}", roles(ORG, Scope::NodesRead)),
    rule(
        "GET",
        "/api/nodes/{id}/attestation",
        roles(ORG, Scope::NodesRead),
    ),
    rule(
        "GET",
        "/api/nodes/{id}/eligibility",
        roles(ORG, Scope::NodesRead),
    ),
    rule(
        "GET",
        "/api/nodes/{id}/gpu-minutes",
        roles(ORG, Scope::NodesRead),
    ),
    rule(
        "GET",
        "/api/nodes/{id}/reputation",
        roles(ORG, Scope::NodesRead),
    ),
    rule("POST", "/api/nodes/{id}/drain", users(ORG)),
    rule("DELETE", "/api/nodes/{id}/drain", users(ORG)),
    rule("POST", "/api/nodes/{id}/quarantine", users(ADMIN)),
    rule("POST", "/api/nodes/{id}/clear", users(ADMIN)),
    rule("GET", "/api/earnings/{node}", roles(ORG, Scope::NodesRead)),
    rule(
        "GET",
        "/api/earnings/{node}/payouts",
        roles(ORG, Scope::NodesRead),
    ),
    rule(
        "POST",
        "/api/earnings/{node}/payouts/{period}/ready",
        users(ADMIN),
    ),
    rule("GET", "/api/validator/status", roles(ORG, Scope::NodesRead)),
    rule("GET", "/api/validator/gpus", roles(ORG, Scope::NodesRead)),
    rule(
        "GET",
        "/api/validator/rewards",
        roles(ORG, Scope::NodesRead),
    ),
    rule(
        "GET",
        "/api/validator/history",
        roles(ORG, Scope::NodesRead),
    ),
    rule("GET", "/api/worker/uptime", roles(ORG, Scope::NodesRead)),
    rule("GET", "/api/worker/status", roles(ORG, Scope::NodesRead)),
    rule(
        "GET",
        "/api/worker/gpu-metrics",
        roles(ORG, Scope::NodesRead),
    ),
    rule(
        "POST",
        "/api/worker/claim-reward",
        roles(ORG, Scope::NodesRead),
    ),
    rule(
        "GET",
        "/api/network/workers",
        roles(ADMIN, Scope::NodesRead),
    ),
    rule("GET", "/api/receipts", roles(ORG, Scope::JobsRead)),
    rule("GET", "/api/receipts/{id}", roles(ORG, Scope::JobsRead)),
    rule(
        "GET",
        "/api/receipts/{id}/inclusion",
        roles(ORG, Scope::JobsRead),
    ),
    // Jobs: submitters hold keys with `jobs:submit` (the payer's signature still decides).
    rule("POST", "/api/jobs", roles(ANY, Scope::JobsSubmit)),
    rule("GET", "/api/jobs/{id}", roles(ANY, Scope::JobsRead)),
    rule("GET", "/api/jobs/recent", roles(ADMIN, Scope::JobsRead)),
    // The public network overview (aggregates only).
    rule("GET", "/api/network/stats", Access::Overview),
    rule("GET", "/stats", Access::Overview),
    rule("GET", "/api/summary", Access::Overview),
    rule("GET", "/api/contracts", Access::Overview),
    rule("GET", "/api/jobs/analytics", Access::Overview),
    rule("GET", "/api/incidents", Access::Overview),
    rule("GET", "/api/flags", Access::Overview),
    // Incidents and flags: admins change them.
    rule("POST", "/api/incidents", users(ADMIN)),
    rule("PATCH", "/api/incidents/{id}", users(ADMIN)),
    rule("PUT", "/api/flags/{flag}", users(ADMIN)),
    // Live events carry node ids and wallets: admins (operators get filtered streams later).
    rule("GET", "/api/events", roles(ADMIN, Scope::NetworkRead)),
    rule("GET", "/ws", roles(ADMIN, Scope::NetworkRead)),
    rule("GET", "/ws/jobs", roles(ADMIN, Scope::NetworkRead)),
    rule("GET", "/ws/workers", roles(ADMIN, Scope::NetworkRead)),
    rule("GET", "/ws/staking", roles(ADMIN, Scope::NetworkRead)),
];

/// The row for `method` on `path` (a route template).
pub fn rule_for(method: &Method, path: &str) -> Option<&'static RouteRule> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

/// The cookie `name` of a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Bearer,
    Cookie,
}

/// The credential a request presents, if any.
fn credential(headers: &HeaderMap) -> Option<(Via, &str)> {
    if let Some(token) = crate::routes::bearer(headers) {
        return Some((Via::Bearer, token));
    }
    cookie(headers, ACCESS_COOKIE).map(|t| (Via::Cookie, t))
}

fn is_mutation(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The authenticated caller of a request (`None`: anonymous), set by [`authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller(None)))
    }
}

impl Caller {
    /// The principal, or 401 when anonymous.
    pub fn required(&self) -> ApiResult<&Principal> {
        self.0
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("sign in (Authorization: Bearer <token>)"))
    }
}

/// Enforces [`ROUTES`] (as a route layer, so the matched route is known): resolves the
/// caller, checks the row (no row: 403 for everyone, logged — a route must be in the table),
/// checks CSRF for cookie-authenticated mutations, and audits every mutation by a user or
/// key and every refused one.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let target = req.uri().path().to_string();
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let source = crate::server::client_ip(req.extensions());
    let Some(rule) = rule_for(&method, &path) else {
        tracing::error!(%method, route = %path, "route has no row in the access table: refused");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route has no access rule",
        )
        .into_response();
    };
    let (principal, refused) = decide(&state, rule.access, &method, req.headers()).await;
    let audit = is_mutation(&method) && !matches!(rule.access, Access::NodeSigned);
    let action = format!("{method} {path}");
    let p = principal;
    match refused {
        Some(e) => {
            if audit || (p.is_some() && e.status == StatusCode::FORBIDDEN) {
                record(
                    &state,
                    p.as_ref(),
                    &action,
                    &target,
                    e.status,
                    request_id,
                    source,
                )
                .await;
            }
            e.into_response()
        }
        None => {
            let audited = audit && p.is_some() && rule.access != Access::Public;
            req.extensions_mut().insert(Caller(p.clone()));
            let res = next.run(req).await;
            if audited {
                record(
                    &state,
                    p.as_ref(),
                    &action,
                    &target,
                    res.status(),
                    request_id,
                    source,
                )
                .await;
            }
            res
        }
    }
}

/// The caller of a request to a route with `access` and, when it is refused, why.
async fn decide(
    state: &AppState,
    access: Access,
    method: &Method,
    headers: &HeaderMap,
) -> (Option<Principal>, Option<ApiError>) {
    let principal = match credential(headers) {
        None => None,
        // A node-signed or public route ignores a session it does not need.
        Some(_) if matches!(access, Access::NodeSigned | Access::Public) => None,
        Some((via, token)) => {
            match state
                .accounts
                .authenticate(token, bitsage_core::time::now())
                .await
            {
                Ok(p) if via == Via::Cookie && is_mutation(method) && !csrf_ok(headers) => {
                    let e = ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_rejected",
                        format!(
                            "a browser session must send the {CSRF_COOKIE} cookie's value in the \
                             {CSRF_HEADER} header on every change"
                        ),
                    );
                    return (Some(p), Some(e));
                }
                Ok(p) => Some(p),
                Err(e) => return (None, Some(ApiError::from(e))),
            }
        }
    };
    // The overview's flag is read only for an anonymous caller (the store, so an admin's
    // change reaches every coordinator).
    let anonymous_overview = access == Access::Overview
        && principal.is_none()
        && state
            .coordinator
            .flag(bitsage_core::flags::Flag::AllowAnonymousOverview)
            .await;
    let refused = allowed(access, principal.as_ref(), anonymous_overview).err();
    (principal, refused)
}

/// Whether the double-submit CSRF token matches.
pub(crate) fn csrf_ok(headers: &HeaderMap) -> bool {
    let cookie = cookie(headers, CSRF_COOKIE);
    let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match (cookie, header) {
        (Some(c), Some(h)) if !c.is_empty() => {
            bitsage_core::crypto::constant_time_eq(c.as_bytes(), h.as_bytes())
        }
        _ => false,
    }
}

/// Whether `principal` may use a route with `access`.
fn allowed(
    access: Access,
    principal: Option<&Principal>,
    anonymous_overview: bool,
) -> ApiResult<()> {
    let sign_in = || ApiError::unauthorized("sign in (Authorization: Bearer <token>)");
    match access {
        Access::Public | Access::NodeSigned => Ok(()),
        Access::Overview if anonymous_overview => Ok(()),
        Access::Overview => {
            let p = principal.ok_or_else(sign_in)?;
            scope_ok(p, Some(Scope::NetworkRead))
        }
        Access::Roles { roles, scope } => {
            let p = principal.ok_or_else(sign_in)?;
            if !roles.contains(&p.role) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("the {} role may not use this route", p.role),
                ));
            }
            scope_ok(p, scope)
        }
    }
}

fn scope_ok(p: &Principal, scope: Option<Scope>) -> ApiResult<()> {
    match (&p.scopes, scope) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "API keys may not use this route; sign in as a user",
        )),
        (Some(_), Some(s)) if p.has_scope(s) => Ok(()),
        (Some(_), Some(s)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this API key lacks the {} scope", s.as_str()),
        )),
    }
}

/// Where a request came from (its id and the client's address), for audit entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext(pub bitsage_core::service::accounts::AuditContext);

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(bitsage_core::service::accounts::AuditContext {
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
            source: crate::server::client_ip(&parts.extensions),
        }))
    }
}

/// Audits a session event (login, refresh, logout) by `p` (`None`: not known).
pub(crate) async fn record_session(
    state: &AppState,
    p: Option<&Principal>,
    action: &str,
    target: &str,
    status: StatusCode,
    ctx: &RequestContext,
) {
    record(
        state,
        p,
        action,
        target,
        status,
        ctx.0.request_id.clone(),
        ctx.0.source.clone(),
    )
    .await;
}

/// Appends an audit entry (a failure to write it is logged, not sent to the client).
async fn record(
    state: &AppState,
    p: Option<&Principal>,
    action: &str,
    target: &str,
    status: StatusCode,
    request_id: Option<String>,
    source: Option<String>,
) {
    let outcome = match status.as_u16() {
        200..=399 => Outcome::Success,
        401 | 403 => Outcome::Denied,
        _ => Outcome::Failed,
    };
    let entry = NewAuditEntry {
        at: bitsage_core::time::now(),
        actor: p.map_or_else(|| "anonymous".to_string(), Principal::actor_id),
        actor_kind: p.map_or(ActorKind::Anonymous, Principal::actor_kind),
        role: p.map(|p| p.role),
        action: action.to_string(),
        target: Some(target.to_string()),
        outcome,
        status: Some(status.as_u16()),
        request_id,
        source,
    };
    if let Err(e) = state.accounts.audit().append_audit(&entry).await {
        tracing::error!(error = %e, action, "could not write the audit entry");
    }
}

/// 404 unless `caller` may see data of `wallet` (admins all; operators their organisation's
/// wallets). The answer does not tell whether the wallet exists.
pub async fn ensure_wallet_visible(
    state: &AppState,
    caller: &Caller,
    wallet: &WalletAddress,
    what: &str,
) -> ApiResult<()> {
    let p = caller.required()?;
    if state.accounts.may_see_wallet(p, wallet).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("{what} not found")))
    }
}

/// 404 unless `caller` may see node `id` (admins: any; operators: nodes of their
/// organisation's wallets). Admins are not read for: a handler that needs the node uses
/// [`visible_node`].
pub async fn ensure_node_visible(
    state: &AppState,
    caller: &Caller,
    id: &bitsage_core::NodeId,
) -> ApiResult<()> {
    if caller.required()?.is_admin() {
        return Ok(());
    }
    visible_node(state, caller, id).await.map(|_| ())
}

/// The node `id`, read once, when `caller` may see it; 404 when it is unknown or another
/// organisation's.
pub async fn visible_node(
    state: &AppState,
    caller: &Caller,
    id: &bitsage_core::NodeId,
) -> ApiResult<bitsage_core::node::NodeRecord> {
    let p = caller.required()?;
    let hidden = || ApiError::not_found(format!("node {id} not found"));
    let node = state.store.get_node(id).await?.ok_or_else(hidden)?;
    if p.is_admin() || state.accounts.may_see_wallet(p, &node.wallet).await? {
        Ok(node)
    } else {
        Err(hidden())
    }
}

/// 404 unless `caller` may see receipt `id` (that of a node it may see).
pub async fn ensure_receipt_visible(state: &AppState, caller: &Caller, id: &str) -> ApiResult<()> {
    if caller.required()?.is_admin() {
        return Ok(());
    }
    let rid = bitsage_core::ReceiptId::parse(id)?;
    let hidden = || ApiError::not_found(format!("receipt {rid} not found"));
    let receipt = state.store.get_receipt(&rid).await?.ok_or_else(hidden)?;
    ensure_node_visible(state, caller, &receipt.body.node_id)
        .await
        .map_err(|_| hidden())
}

/// For `GET /api/nodes`: the wallets an operator's list is limited to (`None`: no limit).
pub async fn visible_wallets(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<Option<Vec<WalletAddress>>> {
    Ok(state.accounts.visible_wallets(caller.required()?).await?)
}
