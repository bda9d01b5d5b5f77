#![doc = include_str!("../README.md")]

mod common;
mod events;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group_commit;
mod memory;
mod memory_access;
mod memory_ops;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
mod pg_access;
#[cfg(feature = "postgres")]
mod pg_events;
#[cfg(feature = "postgres")]
mod pg_heartbeats;
#[cfg(feature = "postgres")]
mod pg_ops;
mod proofs;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_access;
#[cfg(feature = "sqlite")]
mod sqlite_heartbeats;
#[cfg(feature = "sqlite")]
mod sqlite_ops;
#[cfg(feature = "test-utils")]
pub mod testing;

pub use events::LocalEventBus;
pub use memory::InMemoryStore;
#[cfg(feature = "postgres")]
pub use pg::{PgStore, ACQUIRE_TIMEOUT as PG_ACQUIRE_TIMEOUT};
#[cfg(feature = "postgres")]
pub use pg_events::{PgEventBus, PG_EVENT_CHANNEL};
pub use proofs::{FsProofStore, InMemoryProofStore};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
