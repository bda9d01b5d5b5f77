//! The event seam's backends: [`LocalEventBus`] (in-process wake-ups for the SQLite and
//! in-memory stores, which have one writer process) and `PgEventBus` (feature `postgres`, in `pg_events`: PostgreSQL
//! `LISTEN/NOTIFY`: every store write that appends events also issues `pg_notify`, delivered
//! at commit to every coordinator listening). The outbox itself is each store's
//! [`bitsage_core::EventLog`].

use std::sync::Arc;

use async_trait::async_trait;
use bitsage_core::{Error, EventBus, Result};
use tokio::sync::watch;

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
