//! The account routes: sessions (`/api/auth/*`, `/api/users/me`), users, organisations and
//! their wallets, API keys and the audit log. Each extracts, calls
//! [`bitsage_core::service::accounts::Accounts`] and answers; who may call which is
//! [`crate::auth::ROUTES`].

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bitsage_core::access::{AuditEntry, AuditFilter, Organisation, Outcome, Role, Scope, User};
use bitsage_core::page::Page;
use bitsage_core::service::accounts::{NewKeyInput, NewUserInput, Session, UserChanges};
use bitsage_core::{OrgId, Timestamp, UserId, WalletAddress};
use serde::{Deserialize, Serialize};

use crate::auth::{cookie, Caller, ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;

/// `POST /api/auth/login`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

/// `POST /api/auth/refresh` and `POST /api/auth/logout`: the refresh token, in the body for
/// API clients (browsers send the cookie instead).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token (omit to use the `bitsage_refresh` cookie).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

fn set_cookie(res: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The session as JSON plus the browser cookies (access and refresh HttpOnly, the CSRF
/// token readable by the page; all Secure, SameSite=Strict).
fn session_response(state: &AppState, session: Session) -> Response {
    let access_age = state.accounts.policy().access_ttl.as_secs();
    let refresh_age = state.accounts.policy().refresh_ttl.as_secs();
    let csrf = uuid::Uuid::new_v4().simple().to_string();
    let access = session.access_token.clone();
    let refresh = session.refresh_token.clone();
    let mut res = Json(session).into_response();
    set_cookie(
        &mut res,
        format!(
            "{ACCESS_COOKIE}={access}; Path=/; Max-Age={access_age}; HttpOnly; Secure; SameSite=Strict"
        ),
    );
    set_cookie(
        &mut res,
        format!(
            "{REFRESH_COOKIE}={refresh}; Path=/api/auth; Max-Age={refresh_age}; HttpOnly; Secure; SameSite=Strict"
        ),
    );
    set_cookie(
        &mut res,
        format!("{CSRF_COOKIE}={csrf}; Path=/; Max-Age={refresh_age}; Secure; SameSite=Strict"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn cleared_cookies(mut res: Response) -> Response {
    for (name, path) in [
        (ACCESS_COOKIE, "/"),
        (REFRESH_COOKIE, "/api/auth"),
        (CSRF_COOKIE, "/"),
    ] {
        set_cookie(
            &mut res,
            format!("{name}=; Path={path}; Max-Age=0; HttpOnly; Secure; SameSite=Strict"),
        );
    }
    res
}

/// `POST /api/auth/login`: a session (access token ~15 min, refresh token) and cookies.
pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let session = state
        .accounts
        .login(&req.username, &req.password, bitsage_core::time::now())
        .await?;
    Ok(session_response(&state, session))
}

fn refresh_token(headers: &HeaderMap, body: Option<RefreshRequest>) -> ApiResult<String> {
    body.and_then(|b| b.refresh_token)
        .or_else(|| cookie(headers, REFRESH_COOKIE).map(str::to_string))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "refresh_token is required (in the body or the bitsage_refresh cookie)",
            )
        })
}

/// The optional JSON body of refresh/logout (browsers send none).
async fn optional_body(
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Option<RefreshRequest>> {
    if body.is_empty() {
        return Ok(None);
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a body with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| ApiError::invalid(crate::error::humanize(&e.to_string())))
}

/// `POST /api/auth/refresh`: the next session; the presented refresh token is spent (a
/// second use revokes the whole login).
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let token = refresh_token(&headers, optional_body(&headers, body).await?)?;
    let session = state
        .accounts
        .refresh(&token, bitsage_core::time::now())
        .await?;
    Ok(session_response(&state, session))
}

/// `POST /api/auth/logout`: revokes the login and clears the cookies (204).
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    if let Ok(token) = refresh_token(&headers, optional_body(&headers, body).await?) {
        state
            .accounts
            .logout(&token, bitsage_core::time::now())
            .await?;
    }
    Ok(cleared_cookies(StatusCode::NO_CONTENT.into_response()))
}

/// `GET /api/users/me`.
#[derive(Debug, Clone, Serialize)]
pub struct MeResponse {
    /// `user` or `api_key`.
    pub kind: &'static str,
    /// The user or key id.
    pub id: String,
    /// The username (for a user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The role.
    pub role: Role,
    /// The organisation.
    pub org: Option<OrgId>,
    /// For a key: its scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
}

/// `GET /api/users/me`: who the caller is.
pub async fn me(caller: Caller) -> ApiResult<Json<MeResponse>> {
    use bitsage_core::service::accounts::Actor;
    let p = caller.required()?;
    let (kind, username) = match &p.actor {
        Actor::User { username, .. } => ("user", Some(username.clone())),
        Actor::ApiKey { .. } => ("api_key", None),
    };
    Ok(Json(MeResponse {
        kind,
        id: p.actor_id(),
        username,
        role: p.role,
        org: p.org,
        scopes: p.scopes.clone(),
    }))
}

/// Paging of the admin lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size (1 ..= 1000, default 100).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u64>,
}

/// `GET /api/users`.
pub async fn list_users(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<User>>> {
    let page = crate::service::page_of(q.limit, q.offset)?;
    Ok(Json(state.accounts.store().list_users(page).await?))
}

/// `POST /api/users`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The login name.
    pub username: String,
    /// The password (12 to 128 characters).
    pub password: String,
    /// `admin`, `operator` or `viewer`.
    pub role: Role,
    /// The organisation (required for operators).
    #[serde(default)]
    pub org: Option<OrgId>,
}

/// `POST /api/users`: 201 with the user.
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<Response> {
    let user = state
        .accounts
        .create_user(
            caller.required()?,
            NewUserInput {
                username: req.username,
                password: req.password,
                role: req.role,
                org: req.org,
            },
            bitsage_core::time::now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// `PATCH /api/users/{id}`: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// A new role.
    #[serde(default)]
    pub role: Option<Role>,
    /// A new organisation; `null` removes it.
    #[serde(default, with = "double_option")]
    pub org: Option<Option<OrgId>>,
    /// Disable or enable.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new password.
    #[serde(default)]
    pub password: Option<String>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// `PATCH /api/users/{id}`.
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<User>> {
    let id = UserId::parse(&id)?;
    Ok(Json(
        state
            .accounts
            .update_user(
                caller.required()?,
                &id,
                UserChanges {
                    role: req.role,
                    org: req.org,
                    disabled: req.disabled,
                    password: req.password,
                },
                bitsage_core::time::now(),
            )
            .await?,
    ))
}

/// An organisation with its wallets.
#[derive(Debug, Clone, Serialize)]
pub struct OrgView {
    /// The organisation.
    #[serde(flatten)]
    pub org: Organisation,
    /// Its wallets.
    pub wallets: Vec<WalletAddress>,
}

/// `GET /api/orgs`.
pub async fn list_orgs(State(state): State<AppState>) -> ApiResult<Json<Vec<OrgView>>> {
    let store = state.accounts.store();
    let mut out = Vec::new();
    for org in store.list_orgs().await? {
        let wallets = store.org_wallets(&org.id).await?;
        out.push(OrgView { org, wallets });
    }
    Ok(Json(out))
}

/// `POST /api/orgs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    /// Its name.
    pub name: String,
}

/// `POST /api/orgs`: 201 with the organisation.
pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateOrgRequest>,
) -> ApiResult<Response> {
    let org = state
        .accounts
        .create_org(caller.required()?, &req.name, bitsage_core::time::now())
        .await?;
    Ok((StatusCode::CREATED, Json(org)).into_response())
}

/// `POST /api/orgs/{id}/wallets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddWalletRequest {
    /// The wallet.
    pub wallet: WalletAddress,
}

/// `POST /api/orgs/{id}/wallets`: the wallet's nodes become the organisation's (204).
pub async fn add_org_wallet(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<AddWalletRequest>,
) -> ApiResult<StatusCode> {
    let org = OrgId::parse(&id)?;
    state
        .accounts
        .add_org_wallet(
            caller.required()?,
            &org,
            &req.wallet,
            bitsage_core::time::now(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/orgs/{id}/wallets/{wallet}` (204).
pub async fn remove_org_wallet(
    State(state): State<AppState>,
    ApiPath((id, wallet)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = OrgId::parse(&id)?;
    let wallet = WalletAddress::parse(&wallet)?;
    state
        .accounts
        .store()
        .remove_org_wallet(&org, &wallet)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/keys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A name to recognise it by.
    pub name: String,
    /// Its scopes (`jobs:submit`, `jobs:read`, `nodes:read`, `network:read`, `metrics:read`).
    pub scopes: Vec<Scope>,
    /// Its role (at most yours; default yours).
    #[serde(default)]
    pub role: Option<Role>,
    /// When it expires.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// For admins: the organisation it acts for.
    #[serde(default)]
    pub org: Option<OrgId>,
}

/// `POST /api/keys`: 201 with the key and its secret (shown once).
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<Response> {
    if let Some(t) = req.expires_at {
        bitsage_core::time::check_range("expires_at", t)?;
    }
    let created = state
        .accounts
        .create_key(
            caller.required()?,
            NewKeyInput {
                name: req.name,
                role: req.role,
                scopes: req.scopes,
                expires_at: req.expires_at,
                org: req.org,
            },
            bitsage_core::time::now(),
        )
        .await?;
    let mut res = (StatusCode::CREATED, Json(created)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /api/keys`: the keys the caller may see (never their secrets).
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<bitsage_core::access::ApiKey>>> {
    Ok(Json(state.accounts.list_keys(caller.required()?).await?))
}

/// `DELETE /api/keys/{id}` (204).
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state
        .accounts
        .revoke_key(caller.required()?, &id, bitsage_core::time::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /api/audit`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this actor (user id, key id, `anonymous`, `system`).
    pub actor: Option<String>,
    /// Only actions starting with this (`POST /api/users`, `user.`).
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// From this time.
    pub from: Option<Timestamp>,
    /// Before this time.
    pub to: Option<Timestamp>,
    /// Page size (1 ..= 1000, default 100).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u64>,
}

/// `GET /api/audit`: newest first.
pub async fn audit(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let page = crate::service::page_of(q.limit, q.offset)?;
    for (what, v) in [("actor", &q.actor), ("action", &q.action)] {
        if v.as_ref().is_some_and(|v| v.len() > 200) {
            return Err(ApiError::invalid(format!(
                "{what} is longer than 200 characters"
            )));
        }
    }
    let filter = AuditFilter {
        actor: q.actor,
        action_prefix: q.action,
        outcome: q.outcome,
        window: crate::service::window_of(q.from, q.to)?,
    };
    let p = state.accounts.audit().list_audit(&filter, page).await?;
    Ok(Json(crate::service::byte_capped(
        p.items,
        page,
        p.total,
        p.next_offset,
    )))
}
