//! The event seam's backends: [`LocalEventBus`] (in-process wake-ups for the SQLite and
//! in-memory stores, which have one writer process) and [`PgEventBus`] (PostgreSQL
//! `LISTEN/NOTIFY`: every store write that appends events also issues `pg_notify`, delivered
//! at commit to every coordinator listening). The outbox itself is each store's
//! [`bitsage_core::EventLog`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bitsage_core::{Error, EventBus, Result};
use tokio::sync::watch;

/// The PostgreSQL notification channel events are announced on.
pub const PG_EVENT_CHANNEL: &str = "bitsage_events";

/// An in-process wake-up counter: the store bumps it after each commit that appended events.
#[derive(Debug, Clone)]
pub struct LocalEventBus {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for LocalEventBus {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(0).0),
        }
    }
}

impl LocalEventBus {
    /// A bus at generation 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces that events were committed.
    pub fn notify(&self) {
        self.tx.send_modify(|g| *g = g.wrapping_add(1));
    }
}

async fn wait_above(rx: &mut watch::Receiver<u64>, seen: u64) -> Result<u64> {
    let g = rx
        .wait_for(|g| *g != seen)
        .await
        .map_err(|_| Error::Unavailable {
            source_name: "event bus".into(),
            reason: "the bus was shut down".into(),
        })?;
    Ok(*g)
}

#[async_trait]
impl EventBus for LocalEventBus {
    fn bus_name(&self) -> &'static str {
        "in-process"
    }

    fn generation(&self) -> u64 {
        *self.tx.borrow()
    }

    async fn wait_changed(&self, seen: u64) -> Result<u64> {
        wait_above(&mut self.tx.subscribe(), seen).await
    }
}

/// Wake-ups from PostgreSQL `LISTEN bitsage_events`, shared by every coordinator on the
/// database. A background task holds the listening connection; when it is lost the task
/// reconnects (with backoff) and reports a wake-up, since notifications may have been missed
/// meanwhile.
#[derive(Debug, Clone)]
pub struct PgEventBus {
    local: LocalEventBus,
    _task: Arc<tokio::task::JoinHandle<()>>,
}

impl PgEventBus {
    /// Starts listening on the database at `url`. Fails when the first connection fails.
    pub async fn listen(url: &str) -> Result<Self> {
        let first = sqlx::postgres::PgListener::connect(url)
            .await
            .map_err(|e| Error::backend("postgres", e))?;
        let local = LocalEventBus::new();
        let task = tokio::spawn(run_listener(url.to_string(), first, local.clone()));
        Ok(Self {
            local,
            _task: Arc::new(task),
        })
    }
}

impl Drop for PgEventBus {
    fn drop(&mut self) {
        // The last handle stops the listener.
        if Arc::strong_count(&self._task) == 1 {
            self._task.abort();
        }
    }
}

async fn run_listener(url: String, first: sqlx::postgres::PgListener, bus: LocalEventBus) {
    let mut listener = Some(first);
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut l = match listener.take() {
            Some(l) => l,
            None => match sqlx::postgres::PgListener::connect(&url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "event listener: cannot connect; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        if let Err(e) = l.listen(PG_EVENT_CHANNEL).await {
            tracing::warn!(error = %e, "event listener: LISTEN failed; retrying");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(200);
        // Anything committed while we were not listening: wake readers up.
        bus.notify();
        loop {
            match l.try_recv().await {
                Ok(Some(_)) => bus.notify(),
                Ok(None) => {
                    // The connection was lost; sqlx reconnects on the next call.
                    bus.notify();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event listener lost its connection");
                    bus.notify();
                    break;
                }
            }
        }
    }
}

#[async_trait]
impl EventBus for PgEventBus {
    fn bus_name(&self) -> &'static str {
        "postgres-listen"
    }

    fn generation(&self) -> u64 {
        self.local.generation()
    }

    async fn wait_changed(&self, seen: u64) -> Result<u64> {
        self.local.wait_changed(seen).await
    }
}
