//! The integration tests of `bitsage-store`, in one test binary (`cargo test -p bitsage-store --test it`;
//! one module per area, e.g. `cargo test -p bitsage-store --test it audit_append_only::`).

mod support;

mod audit_append_only;
mod conformance;
mod durability;
mod events;
mod shared_ports;
mod sqlite_queries;
