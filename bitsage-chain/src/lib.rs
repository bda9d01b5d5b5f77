#![doc = include_str!("../README.md")]

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
