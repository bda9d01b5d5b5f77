//! The coordinator's use cases as pure services over the ports: no transport, no I/O crate.
//! Transports (HTTP, WebSocket, CLI) extract, call one of these and answer; background tasks
//! call them on a timer.
//!
//! - [`coordinator`]: the [`Coordinator`] (its ports, its [`CoordinatorPolicy`], its typed
//!   [`ServiceError`]) and the periodic upkeep ([`Coordinator::sweep`]).
//! - [`nodes`]: register, heartbeat, the attestation challenge.
//! - [`jobs`]: submit, lease (a probe for a pending node), complete (verify → receipt →
//!   credit, one transaction), fail.
//! - [`stake`]: the stake gate (with a chain, a node works only while its stake meets its
//!   tier's minimum) and its periodic re-check.
//! - [`settle`]: settlement rounds — epochs of verified work sent on chain exactly once,
//!   slashes of nodes caught cheating.
//! - [`accounts`]: logins, refresh rotation, bearer authentication, organisations, users and
//!   API keys.
//! - [`fleet`]: what operators watch: uptime (from registration, per-minute rollup), job
//!   latency percentiles per node and region, the network's KPIs and hourly trends.
//! - [`reputation`]: the network's reputation R 0–100 of each node (recomputed, stored,
//!   quarantining under the threshold) and the admin's quarantine and clearance.
//! - [`availability`]: the eligibility checklist ("why no work?") and drains.
//! - [`incidents`]: incidents (admin and automatic, one open per watched condition) and
//!   feature flags.
//! - [`payouts`]: payout readiness per node and month, and the admin's mark.
//! - [`lifecycle`]: the one place a node's lifecycle event is applied, and the sweep that
//!   moves silent nodes to stale and offline.

pub mod accounts;
pub mod availability;
pub mod coordinator;
pub mod fleet;
pub mod incidents;
pub mod ingest;
pub mod jobs;
pub mod lifecycle;
pub mod nodes;
pub mod payouts;
pub mod reputation;
pub mod settle;
pub mod stake;

pub use coordinator::{Coordinator, CoordinatorPolicy, ServiceError, ServiceResult, SweepReport};
