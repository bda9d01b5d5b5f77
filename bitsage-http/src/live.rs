//! Live events: the [`EventHub`] every WebSocket and SSE connection of this coordinator reads
//! from, and the two transports (`GET /ws`, `/ws/{jobs,workers,staking}`; `GET /api/events`).
//!
//! The store's outbox is the record: one pump task per coordinator follows it (woken by the
//! [`bitsage_core::EventBus`] — in-process for SQLite, `LISTEN/NOTIFY` on PostgreSQL — and
//! polling now and then in case a wake-up was lost) and broadcasts each event, in id order,
//! to this coordinator's connections. A client resuming from an id (`Last-Event-ID`, or
//! `after` in a WebSocket subscribe) first reads what it missed from the outbox, then follows
//! the broadcast; it misses nothing and sees nothing twice.
//!
//! Bounds: at most [`LiveSettings::max_connections`] live connections per coordinator (503
//! past it); each connection may fall at most [`LiveSettings::buffer`] events behind the
//! broadcast — a slower consumer is disconnected with a reason (an `error` event or frame) and
//! may resume from its last id; WebSocket frames from clients are limited to
//! [`LiveSettings::max_frame_bytes`].

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bitsage_core::event::{StoredEvent, Topic};
use bitsage_core::{DynEventBus, DynEventLog};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use utoipa::{IntoParams, ToSchema};

use crate::api::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::openapi::responses::*;
use crate::AppState;

/// Limits of the live surface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSettings {
    /// Live connections (WebSocket + SSE) one coordinator serves at once (default 256).
    pub max_connections: usize,
    /// Events a connection may fall behind before it is disconnected (default 1024).
    pub buffer: usize,
    /// Largest WebSocket frame a client may send, bytes (default 4 KiB).
    pub max_frame_bytes: usize,
    /// How often the outbox is read without a wake-up (default 1 s; a lost wake-up delays
    /// delivery by at most this).
    pub poll_interval: Duration,
    /// Events read from the outbox per query (default 500).
    pub page: u32,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            max_connections: 256,
            buffer: 1024,
            max_frame_bytes: 4096,
            poll_interval: Duration::from_secs(1),
            page: 500,
        }
    }
}

/// Follows the outbox and fans events out to this coordinator's live connections. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct EventHub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    log: DynEventLog,
    bus: Option<DynEventBus>,
    tx: broadcast::Sender<Arc<StoredEvent>>,
    /// The last id broadcast (`u64::MAX` until the pump started).
    cursor: AtomicU64,
    started: tokio::sync::OnceCell<()>,
    connections: Arc<Semaphore>,
    /// Turns true when the coordinator shuts down: every live stream ends.
    closing: tokio::sync::watch::Sender<bool>,
    settings: LiveSettings,
    /// Open connections by [`Transport`] (for `/metrics`).
    open: [AtomicU64; 2],
}

/// A live transport, as `/metrics` counts connections (`bitsage_websocket_subscribers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A WebSocket (`/ws`, `/ws/{topic}`).
    WebSocket,
    /// A Server-Sent Events stream (`/api/events`, the console's `/console/live`).
    Sse,
}

impl Transport {
    /// Both transports.
    pub const ALL: [Transport; 2] = [Transport::WebSocket, Transport::Sse];

    /// The label value: `ws` or `sse`.
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "ws",
            Transport::Sse => "sse",
        }
    }

    fn index(self) -> usize {
        match self {
            Transport::WebSocket => 0,
            Transport::Sse => 1,
        }
    }
}

/// One open live connection, counted in [`EventHub::connections`] until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    hub: Arc<HubInner>,
    transport: Transport,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.hub.open[self.transport.index()].fetch_sub(1, Ordering::Relaxed);
    }
}

const NOT_STARTED: u64 = u64::MAX;

impl EventHub {
    /// A hub over `log`, woken by `bus` (without one it polls every
    /// [`LiveSettings::poll_interval`]). The pump starts with the first subscriber (or
    /// [`EventHub::start`]).
    pub fn new(log: DynEventLog, bus: Option<DynEventBus>, settings: LiveSettings) -> Self {
        let (tx, _) = broadcast::channel(settings.buffer.max(1));
        Self {
            inner: Arc::new(HubInner {
                log,
                bus,
                tx,
                cursor: AtomicU64::new(NOT_STARTED),
                started: tokio::sync::OnceCell::new(),
                connections: Arc::new(Semaphore::new(settings.max_connections)),
                closing: tokio::sync::watch::channel(false).0,
                settings,
                open: Default::default(),
            }),
        }
    }

    /// The limits.
    pub fn settings(&self) -> &LiveSettings {
        &self.inner.settings
    }

    /// Starts the pump (idempotent): from the outbox's newest id on.
    pub async fn start(&self) -> bitsage_core::Result<()> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .started
            .get_or_try_init(|| async move {
                let from = inner.log.last_event_id().await?;
                inner.cursor.store(from, Ordering::SeqCst);
                tokio::spawn(pump(Arc::downgrade(&inner), from));
                Ok::<(), bitsage_core::Error>(())
            })
            .await?;
        Ok(())
    }

    /// Ends every live stream (SSE ends, WebSockets get a close frame) and refuses new ones:
    /// a graceful shutdown then does not wait for clients that would never leave.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Counts a live connection of `transport` while the guard lives (a WebSocket from its
    /// upgrade until it closes, subscribed or not; an SSE stream while its body streams).
    pub fn connection(&self, transport: Transport) -> ConnectionGuard {
        self.inner.open[transport.index()].fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            hub: Arc::clone(&self.inner),
            transport,
        }
    }

    /// Live connections of `transport` open now.
    pub fn connections(&self, transport: Transport) -> u64 {
        self.inner.open[transport.index()].load(Ordering::Relaxed)
    }

    /// The last id broadcast.
    pub fn cursor(&self) -> u64 {
        self.inner.cursor.load(Ordering::SeqCst)
    }

    /// A subscription to `topics`, from `resume` (exclusive; events after it are replayed
    /// from the outbox) or from now. Errors: 503 when the connection cap is reached, 400 for
    /// a resume id beyond the newest event.
    pub async fn subscribe(
        &self,
        topics: BTreeSet<Topic>,
        resume: Option<u64>,
    ) -> ApiResult<Subscription> {
        let permit = Arc::clone(&self.inner.connections)
            .try_acquire_owned()
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!(
                        "this coordinator serves at most {} live connections; retry later or use another coordinator",
                        self.inner.settings.max_connections
                    ),
                )
            })?;
        if *self.inner.closing.borrow() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "this coordinator is shutting down; connect to another one",
            ));
        }
        self.start().await.map_err(ApiError::from)?;
        // Subscribe before reading the outbox: whatever is broadcast from here on is in `rx`,
        // whatever was broadcast before is in the outbox.
        let rx = self.inner.tx.subscribe();
        let newest = self
            .inner
            .log
            .last_event_id()
            .await
            .map_err(ApiError::from)?;
        let last_sent = match resume {
            Some(id) if id > newest => {
                return Err(ApiError::invalid(format!(
                    "resume id {id} is beyond the newest event ({newest}); resume from an id this deployment sent"
                )))
            }
            Some(id) => id,
            None => self.cursor(),
        };
        Ok(Subscription {
            hub: self.clone(),
            topics,
            rx,
            backlog: VecDeque::new(),
            catching_up: resume.is_some(),
            last_sent,
            closing: self.inner.closing.subscribe(),
            _permit: permit,
        })
    }
}

async fn pump(hub: std::sync::Weak<HubInner>, mut cursor: u64) {
    loop {
        let Some(inner) = hub.upgrade() else { return };
        let generation = inner.bus.as_ref().map(|b| b.generation());
        loop {
            match inner.log.events_after(cursor, inner.settings.page).await {
                Ok(page) if page.is_empty() => break,
                Ok(page) => {
                    for e in page {
                        cursor = e.id;
                        // No receiver is fine: nobody is listening right now.
                        let _ = inner.tx.send(Arc::new(e));
                    }
                    inner.cursor.store(cursor, Ordering::SeqCst);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live events: reading the outbox failed; retrying");
                    break;
                }
            }
        }
        let poll = inner.settings.poll_interval;
        let bus = inner.bus.clone();
        drop(inner);
        match (bus, generation) {
            (Some(bus), Some(seen)) => {
                let _ = tokio::time::timeout(poll, bus.wait_changed(seen)).await;
            }
            _ => tokio::time::sleep(poll.min(Duration::from_millis(250))).await,
        }
    }
}

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The consumer fell too far behind and was cut off.
    SlowConsumer(String),
    /// The coordinator is shutting down.
    Closed,
}

/// One connection's view of the event stream.
#[derive(Debug)]
pub struct Subscription {
    hub: EventHub,
    topics: BTreeSet<Topic>,
    rx: broadcast::Receiver<Arc<StoredEvent>>,
    backlog: VecDeque<Arc<StoredEvent>>,
    catching_up: bool,
    last_sent: u64,
    closing: tokio::sync::watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Subscription {
    /// The topics.
    pub fn topics(&self) -> &BTreeSet<Topic> {
        &self.topics
    }

    /// The id of the last event passed on (or skipped as another topic's).
    pub fn last_id(&self) -> u64 {
        self.last_sent
    }

    /// The next event of the subscribed topics, in id order; [`Ended::Closed`] when the
    /// coordinator shuts down.
    pub async fn next(&mut self) -> Result<Arc<StoredEvent>, Ended> {
        let mut closing = self.closing.clone();
        tokio::select! {
            next = self.next_inner() => next,
            _ = closing.wait_for(|c| *c) => Err(Ended::Closed),
        }
    }

    async fn next_inner(&mut self) -> Result<Arc<StoredEvent>, Ended> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                self.last_sent = e.id;
                if self.topics.contains(&e.topic) {
                    return Ok(e);
                }
                continue;
            }
            if self.catching_up {
                let page = self
                    .hub
                    .inner
                    .log
                    .events_after(self.last_sent, self.hub.inner.settings.page)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "live events: catching up from the outbox failed");
                        Ended::Closed
                    })?;
                if page.is_empty() {
                    self.catching_up = false;
                } else {
                    self.backlog.extend(page.into_iter().map(Arc::new));
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(e) if e.id <= self.last_sent => continue,
                Ok(e) => {
                    self.last_sent = e.id;
                    if self.topics.contains(&e.topic) {
                        return Ok(e);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Err(Ended::SlowConsumer(format!(
                        "slow consumer: fell {n} events behind (the limit is {}); reconnect and resume from event {}",
                        self.hub.inner.settings.buffer, self.last_sent
                    )))
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Ended::Closed),
            }
        }
    }
}

/// Parses a comma-separated topic list; empty or absent: every topic.
pub fn parse_topics(list: Option<&str>) -> ApiResult<BTreeSet<Topic>> {
    match list.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(Topic::ALL.into_iter().collect()),
        Some(s) => s
            .split(',')
            .map(|t| t.trim().parse::<Topic>().map_err(ApiError::from))
            .collect(),
    }
}

// ---------------------------------------------------------------- SSE

/// Query of `GET /api/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Comma-separated topics (`jobs,workers,receipts,staking,incidents`); default all.
    pub topics: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins when both are given).
    pub after: Option<u64>,
}

fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::invalid("Last-Event-ID must be an event id (a whole number)")),
    }
}

/// `GET /api/events`: Server-Sent Events, one per domain event (`id:` the event id, `event:`
/// its type, `data:` the `{id, topic, type, at, data}` envelope), resumable with
/// `Last-Event-ID`.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "live",
    operation_id = "events",
    summary = "Server-Sent Events: every domain event of the deployment, in id order",
    description = "One event per domain event: `id:` the event id, `event:` its type, `data:` \
        the `StoredEvent` envelope. Resume with `Last-Event-ID` (or `?after=`): events after it \
        are replayed from the outbox first. A consumer more than the buffer behind gets an \
        `error` event (`slow_consumer`, an `ErrorBody`) and is disconnected.",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id \
            (wins over `after`)."),
    ),
    responses(
        (status = 200, description = "An event stream; each `data:` is a `StoredEvent`.",
            body = StoredEvent, content_type = "text/event-stream"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, description = "The coordinator's live-connection cap is reached, or it \
            is shutting down (`unavailable`).", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn sse(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Response> {
    let topics = parse_topics(q.topics.as_deref())?;
    let resume = last_event_id(&headers)?.or(q.after);
    let sub = state.events.subscribe(topics, resume).await?;
    let open = state.events.connection(Transport::Sse);
    let stream = futures::stream::unfold((Some(sub), open), |(sub, open)| async move {
        let mut sub = sub?;
        match sub.next().await {
            Ok(e) => {
                let frame = Event::default()
                    .id(e.id.to_string())
                    .event(e.kind.clone())
                    .json_data(&*e)
                    .unwrap_or_else(|_| Event::default().comment("unserialisable event"));
                Some((Ok::<_, Infallible>(frame), (Some(sub), open)))
            }
            Err(Ended::SlowConsumer(reason)) => {
                let body = crate::api::ErrorBody {
                    error: crate::api::ErrorDetail {
                        kind: "slow_consumer".into(),
                        message: reason,
                    },
                };
                let frame = Event::default()
                    .event("error")
                    .json_data(&body)
                    .unwrap_or_else(|_| Event::default().comment("slow consumer"));
                Some((Ok(frame), (None, open)))
            }
            Err(Ended::Closed) => None,
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

// ---------------------------------------------------------------- WebSocket

/// A message a WebSocket client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Replace the subscription: these topics, optionally resuming after an event id.
    Subscribe {
        /// Topics (`jobs`, `workers`, `receipts`, `staking`, `incidents`).
        topics: Vec<String>,
        /// Resume after this event id (default: from now).
        #[serde(default)]
        after: Option<u64>,
    },
    /// Stop receiving events (the connection stays open).
    Unsubscribe,
}

/// A control frame the server sends (events themselves are sent as their envelope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The subscription in force.
    Subscribed {
        /// Its topics.
        topics: Vec<Topic>,
        /// Events after this id will follow.
        after: u64,
    },
    /// Events stopped.
    Unsubscribed,
    /// A request was refused (the connection stays open) or the connection is being closed.
    Error {
        /// `{type, message}` as in every API error.
        error: crate::api::ErrorDetail,
    },
}

fn error_frame(kind: &str, message: impl Into<String>) -> Message {
    let m = ServerMessage::Error {
        error: crate::api::ErrorDetail {
            kind: kind.to_string(),
            message: message.into(),
        },
    };
    Message::Text(serde_json::to_string(&m).unwrap_or_default().into())
}

/// The upgrade, or the reason there is none in the API's error shape (a plain GET gets 426).
type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

fn ws_response(state: AppState, ws: Upgrade, preset: Option<Topic>) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            // Whatever header is missing or wrong, the client is not speaking WebSocket.
            tracing::debug!(%rejection, "not a WebSocket upgrade");
            return ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                "this is a WebSocket endpoint: connect with a WebSocket client (HTTP/1.1 GET with `Connection: Upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`)",
            )
            .into_response();
        }
    };
    let max = state.events.settings().max_frame_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve_socket(state, socket, preset))
}

/// `GET /ws`: subscribe with `{"type":"subscribe","topics":[…],"after":N}`.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "live",
    operation_id = "websocket",
    summary = "WebSocket: subscribe to topics of the deployment's events",
    description = "Send `ClientMessage`s: `{\"type\":\"subscribe\",\"topics\":[\"jobs\",…],\
        \"after\":N}` (answered by `{\"type\":\"subscribed\",…}`) or `{\"type\":\"unsubscribe\"}`; \
        events arrive as `StoredEvent` JSON, control frames as `ServerMessage`s. Bad requests \
        get `{\"type\":\"error\",\"error\":{type,message}}` and the connection stays open; \
        frames over 4 KiB close it (1009); a slow consumer gets an `error` frame and is closed \
        (1008).",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 426, response = UpgradeRequired),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn ws_all(State(state): State<AppState>, ws: Upgrade) -> Response {
    ws_response(state, ws, None)
}

/// `GET /ws/jobs`: subscribed to `jobs` from the start.
#[utoipa::path(
    get,
    path = "/ws/jobs",
    tag = "live",
    operation_id = "websocketJobs",
    summary = "WebSocket subscribed to `jobs` from the start",
    description = "The same protocol as `/ws`.",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 426, response = UpgradeRequired),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn ws_jobs(State(state): State<AppState>, ws: Upgrade) -> Response {
    ws_response(state, ws, Some(Topic::Jobs))
}

/// `GET /ws/workers`: subscribed to `workers` from the start.
#[utoipa::path(
    get,
    path = "/ws/workers",
    tag = "live",
    operation_id = "websocketWorkers",
    summary = "WebSocket subscribed to `workers` from the start",
    description = "The same protocol as `/ws`.",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 426, response = UpgradeRequired),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn ws_workers(State(state): State<AppState>, ws: Upgrade) -> Response {
    ws_response(state, ws, Some(Topic::Workers))
}

/// `GET /ws/staking`: subscribed to `staking` from the start.
#[utoipa::path(
    get,
    path = "/ws/staking",
    tag = "live",
    operation_id = "websocketStaking",
    summary = "WebSocket subscribed to `staking` (indexed chain events) from the start",
    description = "The same protocol as `/ws`.",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 426, response = UpgradeRequired),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn ws_staking(State(state): State<AppState>, ws: Upgrade) -> Response {
    ws_response(state, ws, Some(Topic::Staking))
}

async fn send_subscribed(socket: &mut WebSocket, sub: &Subscription) {
    let m = ServerMessage::Subscribed {
        topics: sub.topics().iter().copied().collect(),
        after: sub.last_id(),
    };
    let text = serde_json::to_string(&m).unwrap_or_default();
    let _ = socket.send(Message::Text(text.into())).await;
}

/// Replaces `current` with a subscription to `topics` (from `after`) and confirms it; on a
/// refusal the client gets an error frame and keeps its current subscription. When the
/// connection cap is what refuses, the current subscription's slot is given up for the new one.
async fn resubscribe(
    state: &AppState,
    socket: &mut WebSocket,
    current: &mut Option<Subscription>,
    topics: BTreeSet<Topic>,
    after: Option<u64>,
) {
    let mut outcome = state.events.subscribe(topics.clone(), after).await;
    if matches!(&outcome, Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE)
        && current.is_some()
    {
        drop(current.take());
        outcome = state.events.subscribe(topics, after).await;
    }
    match outcome {
        Ok(sub) => {
            send_subscribed(socket, &sub).await;
            *current = Some(sub);
        }
        Err(e) => {
            let _ = socket.send(error_frame(e.kind, e.message)).await;
        }
    }
}

async fn next_event(sub: &mut Option<Subscription>) -> Result<Arc<StoredEvent>, Ended> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn serve_socket(state: AppState, mut socket: WebSocket, preset: Option<Topic>) {
    let _open = state.events.connection(Transport::WebSocket);
    let mut sub = None;
    if let Some(t) = preset {
        resubscribe(
            &state,
            &mut socket,
            &mut sub,
            [t].into_iter().collect(),
            None,
        )
        .await;
    }
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let msg = match incoming {
                    None => return,
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        // Oversized or malformed frames end here; say why if we still can.
                        let reason = format!("frame refused: {e}");
                        let _ = socket.send(error_frame("invalid_request", reason.clone())).await;
                        let _ = socket.send(Message::Close(Some(CloseFrame {
                            code: 1009,
                            reason: reason.chars().take(100).collect::<String>().into(),
                        }))).await;
                        return;
                    }
                };
                match msg {
                    Message::Text(text) => match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(ClientMessage::Subscribe { topics, after }) => {
                            let parsed: Result<BTreeSet<Topic>, _> =
                                topics.iter().map(|t| t.parse::<Topic>()).collect();
                            match parsed {
                                Ok(set) if set.is_empty() => {
                                    let _ = socket.send(error_frame("invalid_request", "topics must name at least one topic")).await;
                                }
                                Ok(set) => resubscribe(&state, &mut socket, &mut sub, set, after).await,
                                Err(e) => {
                                    let _ = socket.send(error_frame("invalid_request", e.to_string())).await;
                                }
                            }
                        }
                        Ok(ClientMessage::Unsubscribe) => {
                            sub = None;
                            let text = serde_json::to_string(&ServerMessage::Unsubscribed).unwrap_or_default();
                            let _ = socket.send(Message::Text(text.into())).await;
                        }
                        Err(_) => {
                            let _ = socket.send(error_frame(
                                "invalid_request",
                                "expected {\"type\":\"subscribe\",\"topics\":[…],\"after\":N} or {\"type\":\"unsubscribe\"}",
                            )).await;
                        }
                    },
                    Message::Binary(_) => {
                        let _ = socket.send(error_frame("invalid_request", "binary frames are not accepted; send JSON text")).await;
                    }
                    Message::Close(_) => return,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            event = next_event(&mut sub) => match event {
                Ok(e) => {
                    let text = serde_json::to_string(&*e).unwrap_or_default();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(Ended::SlowConsumer(reason)) => {
                    let _ = socket.send(error_frame("slow_consumer", reason)).await;
                    let _ = socket.send(Message::Close(Some(CloseFrame {
                        code: 1008,
                        reason: "slow consumer".into(),
                    }))).await;
                    return;
                }
                Err(Ended::Closed) => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
        }
    }
}
