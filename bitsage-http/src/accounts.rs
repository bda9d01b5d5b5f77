//! The account routes: sessions (`/api/auth/*`, `/api/users/me`), users, organisations and
//! their wallets, API keys and the audit log. Each extracts, calls
//! [`bitsage_core::service::accounts::Accounts`] and answers; who may call which is
//! [`crate::auth::ROUTES`].

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bitsage_core::access::{AuditEntry, AuditFilter, Organisation, Outcome, Role, Scope, User};
use bitsage_core::openapi::TimestampSchema;
use bitsage_core::page::Page;
use bitsage_core::service::accounts::{
    Actor, NewKeyInput, NewUserInput, Principal, Session, UserChanges,
};
use bitsage_core::{OrgId, Timestamp, UserId, WalletAddress};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::ErrorBody;
use crate::auth::{
    self, cookie, Caller, RequestContext, ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::openapi::responses::*;
use crate::AppState;
use bitsage_core::access::ApiKey;
use bitsage_core::service::accounts::CreatedKey;

/// `POST /api/auth/login`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

/// `POST /api/auth/refresh` and `POST /api/auth/logout`: the refresh token, in the body for
/// API clients (browsers send the cookie instead).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
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
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    operation_id = "login",
    summary = "Log in",
    description = "An access token (JWT, ~15 min), a single-use refresh token, and the browser \
        cookies: `bitsage_access` and `bitsage_refresh` (HttpOnly) and `bitsage_csrf` (echo it \
        in `X-CSRF-Token` on every change a cookie session makes).",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in.", body = Session),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The account is disabled (`forbidden`).", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    // Every attempt is audited; a failed one as `anonymous`, naming the username tried.
    let result = state
        .accounts
        .login(&req.username, &req.password, bitsage_core::time::now())
        .await;
    match result {
        Ok(session) => {
            let p = principal_of(&session.user);
            let name = session.user.username.clone();
            auth::record_session(
                &state,
                Some(&p),
                "session.login",
                &name,
                StatusCode::OK,
                &ctx,
            )
            .await;
            Ok(session_response(&state, session))
        }
        Err(e) => {
            let e = ApiError::from(e);
            let tried: String = req.username.chars().take(64).collect();
            auth::record_session(&state, None, "session.login", &tried, e.status, &ctx).await;
            Err(e)
        }
    }
}

/// The refresh token of a request (the body's, else the cookie's) and whether it came from
/// the cookie.
fn refresh_token(headers: &HeaderMap, body: Option<RefreshRequest>) -> ApiResult<(String, bool)> {
    if let Some(t) = body.and_then(|b| b.refresh_token).filter(|t| !t.is_empty()) {
        return Ok((t, false));
    }
    cookie(headers, REFRESH_COOKIE)
        .filter(|t| !t.is_empty())
        .map(|t| (t.to_string(), true))
        .ok_or_else(|| {
            ApiError::invalid(
                "refresh_token is required (in the body or the bitsage_refresh cookie)",
            )
        })
}

/// Browsers refresh and log out with the cookie: such a change needs the CSRF header too.
fn check_cookie_csrf(headers: &HeaderMap, from_cookie: bool) -> ApiResult<()> {
    if from_cookie && !auth::csrf_ok(headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_rejected",
            "a browser session must send the bitsage_csrf cookie's value in the x-csrf-token header",
        ));
    }
    Ok(())
}

/// The principal of a session's user (for its audit entries).
fn principal_of(user: &bitsage_core::access::User) -> Principal {
    Principal {
        actor: Actor::User {
            id: user.id,
            username: user.username.clone(),
        },
        role: user.role,
        org: user.org,
        scopes: None,
    }
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
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    operation_id = "refresh",
    summary = "Exchange a refresh token for the next session",
    description = "The token comes in the body (API clients) or the `bitsage_refresh` cookie \
        (browsers, no body). It is spent: a second use revokes the whole login.",
    request_body(content = Option<RefreshRequest>, description = "Optional: browsers send the \
        cookie instead."),
    responses(
        (status = 200, description = "The next session.", body = Session),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The account is disabled (`forbidden`).", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let (token, from_cookie) = refresh_token(&headers, optional_body(&headers, body).await?)?;
    check_cookie_csrf(&headers, from_cookie)?;
    let session = state
        .accounts
        .refresh(&token, &ctx.0, bitsage_core::time::now())
        .await?;
    let p = principal_of(&session.user);
    let name = session.user.username.clone();
    auth::record_session(
        &state,
        Some(&p),
        "session.refresh",
        &name,
        StatusCode::OK,
        &ctx,
    )
    .await;
    Ok(session_response(&state, session))
}

/// `POST /api/auth/logout`: revokes the login and clears the cookies (204).
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    operation_id = "logout",
    summary = "Revoke a login and clear the cookies",
    description = "Revokes the login of the refresh token (body or cookie), if one is given.",
    request_body(content = Option<RefreshRequest>, description = "Optional: browsers send the \
        cookie instead."),
    responses(
        (status = 204, description = "Logged out; the cookies are cleared."),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    if let Ok((token, from_cookie)) = refresh_token(&headers, optional_body(&headers, body).await?)
    {
        check_cookie_csrf(&headers, from_cookie)?;
        state
            .accounts
            .logout(&token, bitsage_core::time::now())
            .await?;
        let status = StatusCode::NO_CONTENT;
        auth::record_session(
            &state,
            None,
            "session.logout",
            "refresh token",
            status,
            &ctx,
        )
        .await;
    }
    Ok(cleared_cookies(StatusCode::NO_CONTENT.into_response()))
}

/// `GET /api/users/me`.
#[derive(Debug, Clone, Serialize, ToSchema)]
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
#[utoipa::path(
    get,
    path = "/api/users/me",
    tag = "auth",
    operation_id = "me",
    summary = "Who the caller is",
    responses(
        (status = 200, description = "The caller.", body = MeResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size (1 ..= 1000, default 100).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u64>,
}

/// `GET /api/users`.
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "admin",
    operation_id = "listUsers",
    summary = "List users",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users.", body = Page<User>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn list_users(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<User>>> {
    let page = crate::service::page_of(q.limit, q.offset)?;
    Ok(Json(state.accounts.store().list_users(page).await?))
}

/// `POST /api/users`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
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
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "admin",
    operation_id = "createUser",
    summary = "Create a user",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created.", body = User),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// A new role.
    #[serde(default)]
    pub role: Option<Role>,
    /// A new organisation; `null` removes it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<OrgId>)]
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

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// `PATCH /api/users/{id}`.
#[utoipa::path(
    patch,
    path = "/api/users/{id}",
    tag = "admin",
    operation_id = "updateUser",
    summary = "Change a user's role, organisation, password or disabled flag",
    params(("id" = UserId, Path, description = "The user id (UUID).")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "Changed.", body = User),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgView {
    /// The organisation.
    #[serde(flatten)]
    pub org: Organisation,
    /// Its wallets.
    pub wallets: Vec<WalletAddress>,
}

/// `GET /api/orgs`.
#[utoipa::path(
    get,
    path = "/api/orgs",
    tag = "admin",
    operation_id = "listOrgs",
    summary = "Organisations with their wallets",
    responses(
        (status = 200, description = "The organisations.", body = Vec<OrgView>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    /// Its name.
    pub name: String,
}

/// `POST /api/orgs`: 201 with the organisation.
#[utoipa::path(
    post,
    path = "/api/orgs",
    tag = "admin",
    operation_id = "createOrg",
    summary = "Create an organisation",
    request_body = CreateOrgRequest,
    responses(
        (status = 201, description = "Created.", body = Organisation),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddWalletRequest {
    /// The wallet.
    pub wallet: WalletAddress,
}

/// `POST /api/orgs/{id}/wallets`: the wallet's nodes become the organisation's (204).
#[utoipa::path(
    post,
    path = "/api/orgs/{id}/wallets",
    tag = "admin",
    operation_id = "addOrgWallet",
    summary = "Give a wallet (and its nodes) to an organisation",
    params(("id" = OrgId, Path, description = "The organisation id (UUID).")),
    request_body = AddWalletRequest,
    responses(
        (status = 204, description = "Added."),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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
#[utoipa::path(
    delete,
    path = "/api/orgs/{id}/wallets/{wallet}",
    tag = "admin",
    operation_id = "removeOrgWallet",
    summary = "Take a wallet from an organisation",
    params(
        ("id" = OrgId, Path, description = "The organisation id (UUID)."),
        ("wallet" = WalletAddress, Path, description = "The wallet."),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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
#[derive(Debug, Clone, Deserialize, ToSchema)]
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
    #[schema(value_type = Option<TimestampSchema>)]
    pub expires_at: Option<Timestamp>,
    /// For admins: the organisation it acts for.
    #[serde(default)]
    pub org: Option<OrgId>,
}

/// `POST /api/keys`: 201 with the key and its secret (shown once).
#[utoipa::path(
    post,
    path = "/api/keys",
    tag = "auth",
    operation_id = "createKey",
    summary = "Create an API key",
    description = "Its secret (`bsa_…`, for `Authorization: Bearer`) is in this answer only.",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "Created.", body = CreatedKey),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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

/// `POST /api/enrolments`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrolmentRequest {
    /// The wallet the new node will register with (one of the organisation's).
    #[schema(value_type = String)]
    pub wallet: WalletAddress,
    /// For admins: the organisation (default: the wallet's).
    #[serde(default)]
    pub org: Option<OrgId>,
    /// How long the token may be used, seconds (60 ..= 604800; default 86400).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// `POST /api/enrolments`: 201 with a single-use enrolment token (shown once).
#[utoipa::path(
    post,
    path = "/api/enrolments",
    tag = "nodes",
    operation_id = "createEnrolment",
    summary = "Create an enrolment token for a new node",
    description = "The token (`bse_…`, the agent's `enrolment_token`) lets one new node register \
        for the given wallet of your organisation, once, before it expires; only its hash is \
        kept. A coordinator started with `--require-enrolment` admits new nodes with one only.",
    request_body = CreateEnrolmentRequest,
    responses(
        (status = 201, description = "Created.", body = bitsage_core::service::accounts::CreatedEnrolment),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn create_enrolment(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateEnrolmentRequest>,
) -> ApiResult<Response> {
    let created = state
        .accounts
        .create_enrolment(
            caller.required()?,
            bitsage_core::service::accounts::NewEnrolmentInput {
                wallet: req.wallet,
                org: req.org,
                ttl_secs: req.ttl_secs,
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
#[utoipa::path(
    get,
    path = "/api/keys",
    tag = "auth",
    operation_id = "listKeys",
    summary = "The API keys the caller may see (never their secrets)",
    description = "Admins: all; operators: their organisation's.",
    responses(
        (status = 200, description = "The keys.", body = Vec<ApiKey>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<bitsage_core::access::ApiKey>>> {
    Ok(Json(state.accounts.list_keys(caller.required()?).await?))
}

/// `DELETE /api/keys/{id}` (204).
#[utoipa::path(
    delete,
    path = "/api/keys/{id}",
    tag = "auth",
    operation_id = "revokeKey",
    summary = "Revoke an API key",
    params(("id" = String, Path, description = "The key id (`bsa_…`).")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this actor (user id, key id, `anonymous`, `system`).
    pub actor: Option<String>,
    /// Only actions starting with this (`POST /api/users`, `user.`).
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// From this time.
    #[param(value_type = Option<TimestampSchema>)]
    pub from: Option<Timestamp>,
    /// Before this time.
    #[param(value_type = Option<TimestampSchema>)]
    pub to: Option<Timestamp>,
    /// Page size (1 ..= 1000, default 100).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u64>,
}

/// `GET /api/audit`: newest first.
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "admin",
    operation_id = "audit",
    summary = "The audit log, newest first",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries.", body = Page<AuditEntry>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
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
