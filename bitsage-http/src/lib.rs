//! # bitsage-http
//!
//! The coordinator's HTTP surface (axum on hyper 1: routes, auth, WebSocket, metrics, OpenAPI)
//! and the typed client agents use. This crate is empty until the coordinator work lands; the
//! crate exists now so the workspace layout is the one the design names.
