//! The coordinator's use cases as pure services over the ports: no transport, no I/O crate.
//! Transports (HTTP, WebSocket, CLI) extract, call one of these and answer; background tasks
//! call them on a timer.
//!
//! - [`lifecycle`]: the one place a node's lifecycle event is applied, and the sweep that
//!   moves silent nodes to stale and offline.

pub mod lifecycle;
