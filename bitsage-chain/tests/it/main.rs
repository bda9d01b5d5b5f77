//! The integration tests of `bitsage-chain`, in one test binary (`cargo test -p bitsage-chain --test it`;
//! one module per area, e.g. `cargo test -p bitsage-chain --test it conformance::`).

mod support;

mod conformance;
mod devnet_chain_source;
mod devnet_dashboard;
mod devnet_outage;
mod indexer_devnet;
mod indexer_fixture_chain;
mod settlement_devnet;
mod wallet_verifier;
