//! The integration tests of `bitsage-http`, in one test binary (`cargo test -p bitsage-http --test it`;
//! one module per area, e.g. `cargo test -p bitsage-http --test it access::`).

mod common;

mod access;
mod attestation;
mod bad_input;
mod console;
mod dashboard;
mod health;
mod incidents;
mod jobs;
mod limits;
mod live;
mod metrics;
mod nodes;
mod openapi_shapes;
mod outage;
mod stake_gate;
mod wallet_proof;
