//! [`PgEventBus`]: wake-ups from PostgreSQL `LISTEN/NOTIFY` (feature `postgres`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bitsage_core::{Error, EventBus, Result};

use crate::events::LocalEventBus;

/// The PostgreSQL notification channel events are announced on.
pub const PG_EVENT_CHANNEL: &str = "bitsage_events";

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
