//! Conformance suites: one module per port. Every implementation's tests call the module's
//! `run_all` (and may call single checks); a backend is done when its suite passes.
//!
//! Checks panic with a message naming what failed, like ordinary test assertions.

pub mod access;
pub mod chain;
pub mod events;
pub mod fleet;
pub mod gpu;
pub mod ops;
pub mod prover;
pub mod settlement;
pub mod shared;
pub mod store;
pub mod wallet;
