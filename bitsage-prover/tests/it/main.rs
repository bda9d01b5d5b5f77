//! The integration tests of `bitsage-prover`, in one test binary (`cargo test -p bitsage-prover --test it`;
//! one module per area, e.g. `cargo test -p bitsage-prover --test it round_trip::`).

mod common;

mod round_trip;
mod tampering;
