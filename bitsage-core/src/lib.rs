#![doc = include_str!("../README.md")]

pub mod access;
pub mod address;
pub mod amount;
pub mod attestation;
pub mod build;
pub mod chain;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod crypto;
pub mod deployment;
pub mod error;
pub mod event;
pub mod flags;
pub mod funding;
pub mod gpu;
pub mod ids;
pub mod incident;
pub mod job;
pub mod ledger;
pub mod lifecycle;
pub mod message;
pub mod node;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod page;
pub mod payout;
pub mod ports;
pub mod prometheus;
pub mod proof;
pub mod receipt;
pub mod replay;
pub mod reputation;
pub mod retention;
pub mod service;
pub mod settlement;
pub mod telemetry;
pub mod time;
pub mod timing;
pub mod wallet;

pub use address::WalletAddress;
pub use amount::TokenAmount;
pub use error::{Error, Result};
pub use ids::{EntryId, IncidentId, JobId, LeaseId, NodeId, OrgId, ReceiptId, UserId};
pub use job::{JobKind, JobSpec, JobStatus};
pub use lifecycle::{LifecycleEvent, NodeStatus, Transition};
pub use ports::{
    ChainEventStore, ChainSource, CoordinatorStore, DynChainSource, DynCoordinatorStore,
    DynEventBus, DynEventLog, DynGpuSource, DynJobStore, DynProofStore, DynProver, DynReplayLog,
    EventBus, EventLog, FlagStore, GpuSource, IncidentStore, Inserted, JobQueue, JobStore,
    JobStoreExt, NodeStore, PayerLedger, PayoutStore, ProofStore, Prover, ReceiptLedger, ReplayLog,
    TelemetryStore,
};
pub use settlement::{Settlement, SettlementLedger};

/// The store ports' methods in scope at once (`use bitsage_core::store_prelude::*;`): a
/// [`DynJobStore`] is a bundle of focused ports, and calling a port's method needs the port's
/// trait in scope.
pub mod store_prelude {
    pub use crate::ports::{
        ChainEventStore as _, JobQueue as _, JobStore as _, JobStoreExt as _, NodeStore as _,
        PayerLedger as _, ReceiptLedger as _, TelemetryStore as _,
    };
    pub use crate::settlement::SettlementLedger as _;
}
pub use time::{TimeWindow, Timestamp};
