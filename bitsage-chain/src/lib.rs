//! # bitsage-chain
//!
//! [`bitsage_core::ChainSource`] implementations and the chain event indexer:
//!
//! - [`StarknetChainSource`]: reads stake, rewards, reputation, balances and totals from our
//!   contracts (or a real BitSage deployment, by configuration) over Starknet JSON-RPC
//!   (`starknet` 0.17), with typed decoding, a cache of bounded staleness that reports its age,
//!   retries with backoff, a circuit breaker and per-call timeouts.
//! - [`StarknetWalletVerifier`] / [`PinnedKeyWalletVerifier`]: check a node's wallet claim
//!   (SNIP-12 typed data, [`snip12`]) with the account contract or a pinned key.
//! - [`escrow`]: the `JobEscrow` contract — payers' escrow as their funding limit
//!   ([`escrow::EscrowFunding`]) and epochs settled on chain ([`escrow::StarknetSettlement`]).
//! - [`indexer`]: follows our contracts' events into a [`bitsage_core::JobStore`], reorg-safe.
//! - [`rpc_timing`]: every JSON-RPC call of these clients is timed, by method, into
//!   [`bitsage_core::telemetry::chain_rpc`] (the coordinator's `/metrics`).
//! - [`InMemoryChain`] holds chain state in process memory — for embedding, demos and tests; it
//!   stands for a chain, it does not pretend to read one (its source name is `"memory"`).
//! - `devnet` (feature `devnet`): starts `starknet-devnet`, declares and deploys our contracts
//!   (`contracts/`), mints and stakes — for tests and `bitsage-coordinator dev`.

#[cfg(feature = "devnet")]
pub mod devnet;
pub mod escrow;
pub mod indexer;
mod memory;
pub mod rpc_timing;
mod settlement_memory;
pub mod snip12;
pub mod starknet_source;

pub use memory::InMemoryChain;
pub use settlement_memory::InMemorySettlement;
pub use starknet_source::{
    ContractAddresses, PinnedKeyWalletVerifier, StarknetChainSource, StarknetConfig,
    StarknetWalletVerifier, StoredKeyVerifier, LOCAL_CHAIN_ID,
};
