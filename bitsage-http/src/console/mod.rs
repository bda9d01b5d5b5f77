//! The web console: server-rendered pages at `/` (Overview, Nodes, Receipts, Earnings, Run a
//! Node, Docs, Login), compiled into the coordinator with their stylesheet and script.
//!
//! Why server-rendered HTML ([`maud`], checked at compile time, escaped by default) rather
//! than a single-page app: the coordinator stays one binary with nothing to install (no
//! Node toolchain to build or run it); every number on a page comes from the same functions
//! the JSON API answers with — the console calls the API's handlers and services in process,
//! with the same caller, so an operator sees in the HTML exactly what the API would let them
//! see, no more; pages work without JavaScript (filters are forms, the node drawer is a
//! link); the small script only adds what needs a browser: live refresh through the event
//! stream, actions (sent to the JSON API with the session's CSRF token), copy and download,
//! and an optional re-check of a receipt's signature with WebCrypto.
//!
//! Sessions are the API's HttpOnly cookies ([`crate::auth::ACCESS_COOKIE`]); a page resolves
//! its caller from that cookie only (never from the page's own data) and a page that needs a
//! role sends an anonymous visitor to `/login`. A source that did not answer is shown as
//! "n/a" with its reason, never as a healthy-looking zero.

mod docs;
mod earnings;
mod nodes;
mod onboard;
mod overview;
mod receipts;

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use bitsage_core::access::Role;
use bitsage_core::service::accounts::{Actor, Principal};
use bitsage_core::Timestamp;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::auth::{self, Caller, RequestContext, ACCESS_COOKIE};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::AppState;

/// The stylesheet, compiled in.
const CSS: &str = include_str!("assets/console.css");
/// The script, compiled in.
const JS: &str = include_str!("assets/console.js");

/// The console's Content-Security-Policy: only this origin's script and style, no inline
/// script, no framing, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A short version tag of the compiled assets (changes when they do), for cache busting.
fn asset_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        // FNV-1a: stable across builds and processes (every coordinator names the same file).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in CSS.bytes().chain(JS.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    })
}

/// The console's routes (merged into [`crate::router`] outside the API's access table: each
/// page checks its caller itself, and the data it shows comes through the API's own
/// visibility checks).
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(overview::index))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{id}", get(nodes::drawer))
        .route("/receipts", get(receipts::list))
        .route("/receipts/{id}", get(receipts::detail))
        .route("/earnings", get(earnings::index))
        .route("/run-node", get(onboard::index))
        .route("/docs", get(docs::index))
        .route("/login", get(login_page).post(login_form))
        .route("/console/live", get(live))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::ratelimit::limit,
        ))
        .route_layer(axum::middleware::from_fn_with_state(state, resolve))
}

/// Resolves the caller of a console request from the session cookie only (an API bearer
/// token is not a browser session); an expired or unknown session is anonymous.
async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let principal = match auth::cookie(req.headers(), ACCESS_COOKIE) {
        Some(token) if !token.is_empty() => state
            .accounts
            .authenticate(token, bitsage_core::time::now())
            .await
            .ok()
            // A console page is for people: an API key's token is not a session.
            .filter(|p| p.scopes.is_none()),
        _ => None,
    };
    req.extensions_mut().insert(Caller(principal));
    next.run(req).await
}

// ---------------------------------------------------------------- the Overview's summary

/// How long one computed summary serves every Overview viewer of this coordinator.
pub const OVERVIEW_MAX_AGE: Duration = Duration::from_secs(2);

/// A summary and when it was computed.
type Computed = (
    std::time::Instant,
    std::sync::Arc<crate::dashboard::Summary>,
);

/// The Overview's summary, computed at most once per [`OVERVIEW_MAX_AGE`] however many
/// viewers ask (they wait for the one computation in flight): with 1,000 nodes and 100,000
/// jobs a summary costs ~95 ms of CPU, and every open Overview re-renders on each live tick.
/// The page shows the summary's own time ("As of …"), so its age is never hidden.
#[derive(Debug, Clone, Default)]
pub struct OverviewCache(std::sync::Arc<tokio::sync::Mutex<Option<Computed>>>);

impl OverviewCache {
    /// The cached summary when fresh enough, else a new one.
    pub(crate) async fn get(&self, state: &AppState) -> std::sync::Arc<crate::dashboard::Summary> {
        let mut slot = self.0.lock().await;
        if let Some((at, s)) = slot.as_ref() {
            if at.elapsed() < OVERVIEW_MAX_AGE {
                return s.clone();
            }
        }
        let s = std::sync::Arc::new(crate::dashboard::summary_of(state).await);
        *slot = Some((std::time::Instant::now(), s.clone()));
        s
    }
}

// ---------------------------------------------------------------- who is looking

/// Who is looking at a page.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The signed-in user (`None`: anonymous).
    pub principal: Option<Principal>,
    /// The request path with its query (for `/login?next=`).
    pub here: String,
}

impl Viewer {
    fn of(caller: &Caller, here: &str) -> Self {
        Self {
            principal: caller.0.clone(),
            here: here.to_string(),
        }
    }

    /// The role, when signed in.
    pub(crate) fn role(&self) -> Option<Role> {
        self.principal.as_ref().map(|p| p.role)
    }

    /// Whether the viewer is an admin.
    pub(crate) fn is_admin(&self) -> bool {
        self.role() == Some(Role::Admin)
    }

    /// Whether the viewer may see nodes, receipts and earnings (admins and operators).
    pub(crate) fn sees_nodes(&self) -> bool {
        matches!(self.role(), Some(Role::Admin | Role::Operator))
    }

    fn username(&self) -> Option<&str> {
        match &self.principal.as_ref()?.actor {
            Actor::User { username, .. } => Some(username),
            _ => None,
        }
    }

    /// The caller as the API's handlers take it.
    pub(crate) fn caller(&self) -> Caller {
        Caller(self.principal.clone())
    }

    /// A page for admins and operators: the answer instead of the page for anyone else
    /// (anonymous → the login page; a viewer → 403), `None` to go on.
    pub(crate) fn refusal(&self) -> Option<Response> {
        if self.principal.is_none() {
            return Some(to_login(&self.here));
        }
        if !self.sees_nodes() {
            return Some(error_page(
                self,
                StatusCode::FORBIDDEN,
                "Not for this role",
                "Nodes, receipts and earnings are shown to operators (their organisation's) \
                 and admins. Ask an admin for the operator role.",
            ));
        }
        None
    }
}

/// The page's caller, from the request.
pub(crate) fn viewer(caller: &Caller, uri: &axum::http::Uri) -> Viewer {
    Viewer::of(caller, uri.path_and_query().map_or("/", |p| p.as_str()))
}

/// A redirect to the login page that comes back to `here`.
fn to_login(here: &str) -> Response {
    let next = encode(here);
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------- form fields

/// A form field's value, when it was filled in (trimmed; an empty field is "any").
pub(crate) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The filled-in fields as a query string (`k=v&…`, values percent-encoded).
pub(crate) fn query_string(fields: &[(&str, &Option<String>)]) -> String {
    fields
        .iter()
        .filter_map(|(k, v)| given(v).map(|v| format!("{k}={}", encode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// The `page` field: 1 when empty, else a whole number 1 ..= 100,000.
pub(crate) fn page_number(v: &Option<String>) -> Result<u64, ApiError> {
    given(v)
        .map(|s| {
            s.parse::<u64>()
                .ok()
                .filter(|p| (1..=100_000).contains(p))
                .ok_or_else(|| ApiError::invalid("page must be a whole number from 1"))
        })
        .transpose()
        .map(|p| p.unwrap_or(1))
}

/// The nodes a viewer may pick from in a form (the first 500 they may see); a failed list
/// reads as none.
pub(crate) async fn picker_nodes(
    state: &AppState,
    v: &Viewer,
) -> Result<Vec<crate::api::NodeView>, ApiError> {
    let wallets = auth::visible_wallets(state, &v.caller()).await?;
    let q = crate::api::NodeListQuery {
        limit: Some(500),
        ..Default::default()
    };
    Ok(crate::service::list_nodes(state, q, wallets)
        .await
        .map(|p| p.items)
        .unwrap_or_default())
}

// ---------------------------------------------------------------- page shell

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Nodes,
    Receipts,
    Earnings,
    RunNode,
    Docs,
    Login,
}

/// A whole page: the shell (skip link, navigation by role, the incidents banner) around
/// `body`, answered with the console's security headers and `no-store` (pages carry an
/// organisation's data).
pub(crate) async fn page(
    state: &AppState,
    viewer: &Viewer,
    section: Section,
    title: &str,
    live: Option<&str>,
    body: Markup,
) -> Response {
    let banner = incidents_banner(state, viewer).await;
    let markup = shell(viewer, section, title, live, banner, body);
    respond(StatusCode::OK, markup)
}

fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut res = (status, axum::response::Html(markup.into_string())).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Same-origin referrers: with `no-referrer` a browser posts the login form with
    // `Origin: null`, which the cross-site check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

fn shell(
    viewer: &Viewer,
    section: Section,
    title: &str,
    live: Option<&str>,
    banner: Markup,
    body: Markup,
) -> Markup {
    let v = asset_version();
    let mut links: Vec<(Section, &str, &str)> = vec![(Section::Overview, "/", "Overview")];
    if viewer.sees_nodes() {
        links.extend([
            (Section::Nodes, "/nodes", "Nodes"),
            (Section::Receipts, "/receipts", "Receipts"),
            (Section::Earnings, "/earnings", "Earnings"),
            (Section::RunNode, "/run-node", "Run a Node"),
        ]);
    }
    links.push((Section::Docs, "/docs", "Docs"));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="description" content="BitSage coordinator console: nodes, receipts, earnings and onboarding of a verifiable GPU compute network.";
                meta name="color-scheme" content="dark";
                link rel="icon" href="data:,";
                title { (title) " · BitSage" }
                link rel="stylesheet" href={ "/console/assets/console.css?v=" (v) };
                script src={ "/console/assets/console.js?v=" (v) } defer {}
            }
            body data-live=[live] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" aria-label="BitSage console, overview" {
                        span.logo aria-hidden="true" { "◆" } " BitSage"
                    }
                    nav aria-label="Main" {
                        ul {
                            @for (s, href, label) in &links {
                                li {
                                    a href=(href) aria-current=[(*s == section).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                    div.who {
                        @if let Some(name) = viewer.username() {
                            span { (name) " · " span.role { (viewer.role().map_or("", |r| r.as_str())) } }
                            button.btn.ghost type="button" data-logout { "Log out" }
                        } @else if section != Section::Login {
                            a.btn href={ "/login?next=" (encode(&viewer.here)) } { "Log in" }
                        }
                    }
                }
                (banner)
                main #main tabindex="-1" {
                    (body)
                }
                div #toast role="status" aria-live="polite" {}
                footer.foot {
                    "BitSage coordinator " (env!("CARGO_PKG_VERSION")) " · "
                    a href="/openapi.json" { "OpenAPI" } " · "
                    a href="/docs" { "Docs" }
                }
            }
        }
    }
}

/// The open incidents, as a banner coloured by severity (nothing when none is open or the
/// viewer may not see the overview).
async fn incidents_banner(state: &AppState, viewer: &Viewer) -> Markup {
    if viewer.principal.is_none()
        && !state
            .coordinator
            .flag(bitsage_core::flags::Flag::AllowAnonymousOverview)
            .await
    {
        return html! {};
    }
    let filter = bitsage_core::incident::IncidentFilter::default();
    let page = bitsage_core::page::PageRequest {
        limit: 1,
        offset: 0,
    };
    let open = match state.coordinator.incidents(&filter, page).await {
        Ok((open, _)) => open,
        Err(e) => {
            tracing::warn!(error = %e, "incidents unavailable for the banner");
            return html! {
                div.banner.sev-warn role="status" { "Incidents: n/a (the store did not answer)" }
            };
        }
    };
    html! {
        @if !open.is_empty() {
            section.banners aria-label="Open incidents" {
                @for i in &open {
                    div class={ "banner sev-" (i.severity.as_str()) } role="alert" {
                        strong { (i.severity.as_str()) } " · " (i.title)
                        @if let Some(r) = &i.region { " · region " (r) }
                        " · since " (ago(i.opened_at))
                        @if let Some(u) = i.updates.last() { " — " (u.message) }
                    }
                }
            }
        }
    }
}

/// An error page in the shell.
pub(crate) fn error_page(viewer: &Viewer, status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p.muted { (text) }
        p { a href="/" { "Back to the overview" } }
    };
    respond(
        status,
        shell(viewer, Section::Overview, title, None, html! {}, body),
    )
}

/// An API error shown on a page: the same type and message the JSON API would answer.
pub(crate) fn api_error_page(viewer: &Viewer, e: ApiError) -> Response {
    if e.status == StatusCode::UNAUTHORIZED {
        return to_login(&viewer.here);
    }
    let title = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_client_error() => "That did not work",
        _ => "Unavailable",
    };
    error_page(viewer, e.status, title, &e.message)
}

// ---------------------------------------------------------------- small views

/// "n/a" for a value a source did not report.
pub(crate) fn na() -> Markup {
    html! { span.na title="not reported" { "n/a" } }
}

/// A number of milliseconds, or n/a.
pub(crate) fn ms(v: Option<f64>) -> Markup {
    match v {
        Some(v) if v >= 10_000.0 => html! { (format!("{:.1} s", v / 1000.0)) },
        Some(v) => html! { (format!("{v:.0} ms")) },
        None => na(),
    }
}

/// A 0–1 ratio as a percentage, or n/a.
pub(crate) fn pct(v: Option<f64>) -> Markup {
    match v {
        Some(v) => html! { (format!("{:.1} %", v * 100.0)) },
        None => na(),
    }
}

/// A status chip (pending gray, active green, quarantine amber, offline red).
pub(crate) fn chip(status: &str) -> Markup {
    html! { span class={ "chip chip-" (status) } data-status=(status) { (status.replace('_', " ")) } }
}

/// How long ago `t` was, for people ("3 min ago"), with the exact time as a tooltip.
pub(crate) fn ago(t: Timestamp) -> Markup {
    let secs = (bitsage_core::time::now() - t).num_seconds();
    let text = match secs {
        s if s < 0 => "just now".to_string(),
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    };
    html! { time datetime=(t.to_rfc3339()) title=(t.to_rfc3339()) { (text) } }
}

/// An exact UTC time.
pub(crate) fn utc(t: Timestamp) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC").to_string()) } }
}

/// A value that came back `unavailable` from its source.
pub(crate) fn unavailable(reason: &str) -> Markup {
    html! { span.na { "n/a" } " " span.muted.small { "(" (reason) ")" } }
}

/// A short, copyable form of a long id.
pub(crate) fn short(id: &str) -> String {
    if id.chars().count() > 14 {
        let head: String = id.chars().take(10).collect();
        let tail: String = id
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{head}…{tail}")
    } else {
        id.to_string()
    }
}

/// A bar chart of labelled values as an accessible list: each bar carries its number as
/// text; `href` makes a bar a link.
pub(crate) fn bars(
    label: &str,
    items: &[(String, Option<f64>, Option<String>)],
    unit: &str,
) -> Markup {
    let max = items
        .iter()
        .filter_map(|(_, v, _)| *v)
        .fold(0.0_f64, f64::max);
    html! {
        ul.bars aria-label=(label) {
            @for (name, value, href) in items {
                @let width = value.filter(|_| max > 0.0).map_or(0.0, |v| (v / max * 100.0).clamp(1.0, 100.0));
                li {
                    @let text = html! {
                        span.bar-label { (name) }
                        svg.bar-track aria-hidden="true" viewBox="0 0 100 10" preserveAspectRatio="none" { rect.bar-fill width=(format!("{width:.1}")) height="10" rx="5" {} }
                        span.bar-value { @match value { Some(v) => { (format!("{v:.0}")) " " (unit) }, None => (na()) } }
                    };
                    @if let Some(h) = href { a.bar-row href=(h) { (text) } } @else { div.bar-row { (text) } }
                }
            }
        }
    }
}

/// A line chart (SVG) of a series, with its numbers in a table for screen readers.
pub(crate) fn sparkline(label: &str, points: &[(String, Option<f64>)], unit: &str) -> Markup {
    let (w, h) = (480.0_f64, 96.0_f64);
    let max = points
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(0.0_f64, f64::max);
    let n = points.len().max(2) as f64 - 1.0;
    let mut path = String::new();
    let mut dots = Vec::new();
    let mut pen_up = true;
    for (i, (_, v)) in points.iter().enumerate() {
        match v {
            Some(v) => {
                let x = i as f64 / n * w;
                let y = if max > 0.0 {
                    h - v / max * (h - 8.0) - 4.0
                } else {
                    h - 4.0
                };
                path.push_str(&format!("{}{x:.1},{y:.1} ", if pen_up { "M" } else { "L" }));
                pen_up = false;
                dots.push((x, y));
            }
            None => pen_up = true,
        }
    }
    let reported = points.iter().filter(|(_, v)| v.is_some()).count();
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (w) " " (h) } role="img" aria-label={ (label) ": " (reported) " of " (points.len()) " points reported, highest " (format!("{max:.0}")) " " (unit) } preserveAspectRatio="none" {
                path d=(path) fill="none" stroke="currentColor" stroke-width="2" {}
                @for (x, y) in &dots { circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" {} }
            }
            details {
                summary { "Numbers: " (label) }
                table.sr-table {
                    thead { tr { th scope="col" { "When" } th scope="col" { (unit) } } }
                    tbody {
                        @for (when, v) in points {
                            tr { td { (when) } td { @match v { Some(v) => (format!("{v:.1}")), None => (na()) } } }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- assets

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The URL names the version (`?v=`): a year is safe.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    res
}

// ---------------------------------------------------------------- login

/// `GET /login?next=`.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    failed: Option<String>,
}

/// Only a path on this site: never another origin (`//host`, `/\host`, a scheme).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.contains(['\r', '\n'])
                && n.len() <= 512 =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

async fn login_page(
    State(state): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
    ApiQuery(q): ApiQuery<LoginQuery>,
) -> Response {
    let v = Viewer::of(&caller, uri.path());
    let next = safe_next(q.next.as_deref());
    if v.principal.is_some() {
        return Redirect::to(&next).into_response();
    }
    let body = html! {
        section.login-card aria-labelledby="login-title" {
            h1 #login-title { "Log in" }
            p.muted { "Operators and admins sign in to see their nodes, receipts and earnings." }
            @if let Some(why) = &q.failed {
                p.error role="alert" #login-error { (login_failure(why)) }
            }
            form method="post" action="/login" data-login {
                input type="hidden" name="next" value=(next);
                label for="username" { "Username" }
                input #username name="username" autocomplete="username" required maxlength="64" autofocus;
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="current-password" required maxlength="256";
                button.btn.primary type="submit" { "Log in" }
            }
        }
    };
    page(&state, &v, Section::Login, "Log in", None, body).await
}

fn login_failure(code: &str) -> &'static str {
    match code {
        "disabled" => "This account is disabled.",
        "limited" => "Too many attempts; wait a minute and try again.",
        "unavailable" => "The coordinator cannot check logins right now; try again shortly.",
        _ => "Wrong username or password.",
    }
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

/// `POST /login`: the API's login, answered with its cookies and a redirect. A form posted
/// from another origin is refused (no one can log a browser into their account).
async fn login_form(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the login form must be posted from this site",
        )
        .into_response();
    }
    let Ok(Form(form)) = form else {
        return Redirect::to("/login?failed=credentials").into_response();
    };
    let next = safe_next(form.next.as_deref());
    let req = crate::accounts::LoginRequest {
        username: form.username,
        password: form.password,
    };
    match crate::accounts::login(State(state), ctx, crate::ApiJson(req)).await {
        Ok(session) => {
            let mut res = Redirect::to(&next).into_response();
            for c in session.headers().get_all(header::SET_COOKIE) {
                res.headers_mut().append(header::SET_COOKIE, c.clone());
            }
            res
        }
        Err(e) => {
            let why = match e.status {
                StatusCode::FORBIDDEN => "disabled",
                StatusCode::TOO_MANY_REQUESTS => "limited",
                s if s.is_server_error() => "unavailable",
                _ => "credentials",
            };
            Redirect::to(&format!("/login?failed={why}&next={}", encode(&next))).into_response()
        }
    }
}

/// Whether a form post comes from this origin (`Origin`, else `Referer`, must name the
/// `Host`; browsers always send one of them on a cross-site post).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match from {
        None => true,
        Some(o) => {
            let rest = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .unwrap_or("");
            rest.split('/').next() == Some(host)
        }
    }
}

// ---------------------------------------------------------------- live

/// `GET /console/live?topics=`.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    topics: Option<String>,
}

/// `GET /console/live`: a tick per change on the page's topics — the topic's name only, no
/// data (the page then fetches itself again, through the same checks as any page load).
/// Anyone who may see the overview may listen; it shares the live-connection cap.
async fn live(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<LiveQuery>,
) -> Response {
    if caller.0.is_none()
        && !state
            .coordinator
            .flag(bitsage_core::flags::Flag::AllowAnonymousOverview)
            .await
    {
        return ApiError::unauthorized("log in to follow live changes").into_response();
    }
    let topics = match crate::live::parse_topics(q.topics.as_deref()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let sub = match state.events.subscribe(topics, None).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let open = state.events.connection(crate::live::Transport::Sse);
    let stream = futures::stream::unfold((sub, open), |(mut sub, open)| async move {
        match sub.next().await {
            Ok(e) => {
                let frame = Event::default().event("changed").data(e.topic.as_str());
                Some((Ok::<_, Infallible>(frame), (sub, open)))
            }
            Err(_) => None,
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/nodes?x=1")), "/nodes?x=1");
        for bad in [
            "//evil.example",
            "/\\evil",
            "https://evil",
            "nodes",
            "/a\r\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn origins_are_compared_with_the_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn encoding_keeps_only_safe_bytes() {
        assert_eq!(encode("/nodes?a=b c"), "%2Fnodes%3Fa%3Db%20c");
    }
}
