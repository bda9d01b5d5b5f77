//! # bitsage-store
//!
//! [`bitsage_core::JobStore`] implementations:
//! - [`SqliteStore`] — the embedded default: one file in a data directory, WAL journal,
//!   `synchronous = FULL` (a write acknowledged is on disk).
//! - [`PgStore`] — the scale-out store: several coordinators share one PostgreSQL database;
//!   jobs are leased with `FOR UPDATE SKIP LOCKED`; money is `NUMERIC(78,0)`.
//! - [`InMemoryStore`] — process memory, for embedding, demos and tests.
//!
//! - [`FsProofStore`] / [`InMemoryProofStore`] — proof envelopes by hash (`PgStore` is the
//!   shared proof store of PostgreSQL deployments).
//!
//! Every store is also a [`bitsage_core::ReplayLog`] (signed node messages accepted once across
//! coordinators and restarts), a [`bitsage_core::access::AccountStore`] (organisations, users,
//! refresh tokens, API keys) and a [`bitsage_core::access::AuditLog`] (append-only: the SQL
//! stores' triggers refuse to change or delete an entry), an [`bitsage_core::IncidentStore`] and
//! a [`bitsage_core::FlagStore`]. All three pass the same conformance
//! suites (`bitsage_core::conformance::store`, `bitsage_core::conformance::access`). Each SQL store
//! owns its schema: migrations live in `migrations/<dialect>/` and are applied on connect.

mod common;
mod events;
mod group_commit;
mod memory;
mod memory_access;
mod memory_ops;
mod pg;
mod pg_access;
mod pg_heartbeats;
mod pg_ops;
mod proofs;
mod sqlite;
mod sqlite_access;
mod sqlite_heartbeats;
mod sqlite_ops;
pub mod testing;

pub use events::{LocalEventBus, PgEventBus, PG_EVENT_CHANNEL};
pub use memory::InMemoryStore;
pub use pg::{PgStore, ACQUIRE_TIMEOUT as PG_ACQUIRE_TIMEOUT};
pub use proofs::{FsProofStore, InMemoryProofStore};
pub use sqlite::SqliteStore;
