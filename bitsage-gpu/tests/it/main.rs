//! The integration tests of `bitsage-gpu`, in one test binary (`cargo test -p bitsage-gpu --test it`;
//! one module per area, e.g. `cargo test -p bitsage-gpu --test it fixtures::`).

mod fixtures;
mod local;
