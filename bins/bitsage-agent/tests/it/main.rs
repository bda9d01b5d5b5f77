//! The integration tests of `bitsage-agent`, in one test binary (`cargo test -p bitsage-agent --test it`;
//! one module per area, e.g. `cargo test -p bitsage-agent --test it agent_loop::`).

mod agent_loop;
mod gpu_cli;
mod key_file;
mod onboarding;
mod verify_receipt_cli;
