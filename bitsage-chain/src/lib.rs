//! # bitsage-chain
//!
//! [`bitsage_core::ChainSource`] implementations. [`InMemoryChain`] holds chain state in process
//! memory — for embedding, demos and tests; it stands for a chain, it does not pretend to read
//! one (its source name is `"memory"`). The Starknet JSON-RPC source and the event indexer
//! arrive with the chain work.

mod memory;

pub use memory::InMemoryChain;
