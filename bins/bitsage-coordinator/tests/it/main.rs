//! The integration tests of `bitsage-coordinator`, in one test binary (`cargo test -p bitsage-coordinator --test it`;
//! one module per area, e.g. `cargo test -p bitsage-coordinator --test it api_fuzz::`).

mod support;

mod api_fuzz;
mod deploy;
mod e2e;
mod lean_build;
mod scale_out;
mod traces;
mod trust_loop;
