//! [`EventSource`]: what the indexer needs from a chain.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bitsage_core::chain::ChainEvent;
use bitsage_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// One block's identity: its number and hash (canonical hex, see [`canonical_hex`]).
/// Ordered by number, then hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    /// Block number (height).
    pub number: u64,
    /// Block hash, `0x` + 64 lowercase hex digits.
    pub hash: String,
}

/// One page of events, as [`EventSource::events`] returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPage {
    /// The page's events, in chain order: block, then transaction position, then index within
    /// the transaction.
    pub events: Vec<ChainEvent>,
    /// Pass this back to get the next page; `None` on the last page.
    pub continuation_token: Option<String>,
}

/// A chain's blocks and contract events, as the event indexer reads them.
///
/// Implementations: [`super::StarknetEventSource`] (Starknet JSON-RPC); tests use in-memory
/// fixtures.
///
/// # Contract
/// - **Accepted blocks only.** `head` is the newest block that has a hash (never a pending or
///   pre-confirmed block); `block_hash(n)` is `Ok(None)` when the chain has no accepted block `n`
///   (beyond the head, or removed by a reorg); `events` leaves out events of blocks without a hash.
///   A block not yet accepted is indexed once it is.
/// - **Canonical hex.** Block hashes, transaction hashes, contract addresses, keys and data are
///   `0x` followed by 64 lowercase hex digits ([`canonical_hex`]), so one value has one spelling
///   and stored hashes compare with fresh ones by string equality.
/// - **Events.** `events(from, to, address, token, chunk)` returns the events emitted by
///   `address` in blocks `from ..= to`, in chain order, at most `chunk_size` per page, with every
///   field of [`ChainEvent`] filled: `block_hash` is the hash of the block the event is in, and
///   `event_index` is the event's position among **all** events of its transaction's receipt
///   (every contract's), so (block hash, tx hash, event index) names one event even when several
///   followed contracts emit in one transaction. `to` beyond the head returns what exists.
/// - **Continuation tokens** are opaque: pass back exactly what the previous page returned, with
///   the same `from`, `to`, `address` and `chunk_size`; `None` starts at the first page. A token
///   may stop being valid after a reorg (an error, or a page of another chain: the indexer
///   detects the latter by block hash).
/// - **Errors.** A chain that cannot be reached is [`Error::Unavailable`]; a malformed answer is
///   [`Error::Invalid`]; a backend's own error text stays in an error's `source` (for logs) and
///   never in its message. No answer is ever made up.
#[async_trait]
pub trait EventSource: Send + Sync + Debug {
    /// The newest accepted block.
    async fn head(&self) -> Result<BlockRef>;

    /// The hash of accepted block `number`, or `None` if the chain has no such block.
    async fn block_hash(&self, number: u64) -> Result<Option<String>>;

    /// One page of `address`'s events in blocks `from_block ..= to_block`.
    async fn events(
        &self,
        from_block: u64,
        to_block: u64,
        address: &str,
        continuation_token: Option<String>,
        chunk_size: u64,
    ) -> Result<EventPage>;
}

/// A shared event source.
pub type DynEventSource = Arc<dyn EventSource>;

/// Normalises a hex field element (`0x` prefix, 1 to 64 hex digits, any case) to `0x` followed by
/// 64 lowercase hex digits.
pub fn canonical_hex(value: &str) -> Result<String> {
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .ok_or_else(|| Error::invalid("hex field element", "must start with 0x"))?;
    if digits.is_empty() || digits.len() > 64 {
        return Err(Error::invalid(
            "hex field element",
            "must have 1 to 64 hex digits after 0x",
        ));
    }
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(
            "hex field element",
            "contains a character that is not a hex digit",
        ));
    }
    Ok(format!("0x{:0>64}", digits.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::canonical_hex;

    #[test]
    fn canonical_hex_pads_and_lowercases() {
        assert_eq!(
            canonical_hex("0xABc").ok().as_deref(),
            Some("0x0000000000000000000000000000000000000000000000000000000000000abc")
        );
        assert!(canonical_hex("abc").is_err());
        assert!(canonical_hex("0x").is_err());
        assert!(canonical_hex("0xzz").is_err());
        assert!(canonical_hex(&format!("0x{}", "1".repeat(65))).is_err());
    }
}
