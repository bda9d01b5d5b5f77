//! [`StarknetEventSource`]: [`EventSource`] over Starknet JSON-RPC (`starknet` 0.17).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bitsage_core::chain::ChainEvent;
use bitsage_core::{Error, Result};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use starknet::core::types::{
    BlockId, EmittedEvent, EventFilter, Felt, MaybePreConfirmedBlockWithTxHashes, ReceiptBlock,
    StarknetError,
};
use starknet::providers::jsonrpc::HttpTransport;
use starknet::providers::{Provider, ProviderError};
use url::Url;

use crate::rpc_timing::{timed_client, TimedClient};

use super::source::{canonical_hex, BlockRef, EventPage, EventSource};

/// The backend name in errors.
const BACKEND: &str = "starknet-rpc";
/// Receipts fetched at once for one page.
const RECEIPT_CONCURRENCY: usize = 8;

/// [`EventSource`] over a Starknet JSON-RPC endpoint.
///
/// - `head`: `starknet_blockHashAndNumber` (the newest accepted block).
/// - `block_hash(n)`: `starknet_getBlockWithTxHashes`; a missing block (`BlockNotFound`) or a
///   pre-confirmed one is `None`.
/// - `events`: `starknet_getEvents` with `{ from_block, to_block, address }` and the node's
///   continuation tokens. Events without a block hash (pre-confirmed blocks) are left out.
///
/// **Event index.** `starknet_getEvents` (RPC 0.9) says which block and transaction an event is
/// in, but not its position in the transaction. This source reads each transaction's receipt
/// (`starknet_getTransactionReceipt`, a few at a time) and gives each event its position among
/// all the receipt's events: the k-th event of `address` in a transaction, in `getEvents` order,
/// is the k-th event from `address` in the receipt. The count of the last transaction's events
/// seen so far travels inside this source's continuation token, so a transaction whose events
/// are split across two pages keeps counting where it stopped. A receipt of another block than
/// the event's (the chain moved between the two calls) is an error: the caller retries.
#[derive(Debug)]
pub struct StarknetEventSource {
    provider: TimedClient,
    url: Url,
    timeout: Duration,
}

/// This source's continuation token: the node's token plus the transaction-event count carried
/// over the page boundary.
#[derive(Debug, Serialize, Deserialize)]
struct Token {
    /// The node's continuation token.
    node: String,
    /// The transaction of the page's last event.
    tx: Option<String>,
    /// How many events of `tx` from the address the previous pages held.
    seen: usize,
}

impl StarknetEventSource {
    /// A source for the JSON-RPC endpoint at `rpc_url` (e.g. `http://127.0.0.1:5050/rpc`), with a
    /// 10 s timeout per call.
    pub fn new(rpc_url: Url) -> Self {
        Self {
            provider: timed_client(HttpTransport::new(rpc_url.clone())),
            url: rpc_url,
            timeout: Duration::from_secs(10),
        }
    }

    /// Parses `rpc_url` and builds a source.
    pub fn from_url(rpc_url: &str) -> Result<Self> {
        let url = Url::parse(rpc_url)
            .map_err(|e| Error::invalid("RPC URL", format!("not a URL: {e}")))?;
        Ok(Self::new(url))
    }

    /// Sets the timeout of each JSON-RPC call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoint.
    pub fn url(&self) -> &Url {
        &self.url
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = std::result::Result<T, ProviderError>>,
    ) -> Result<std::result::Result<T, ProviderError>> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| Error::Unavailable {
                source_name: "starknet".into(),
                reason: format!(
                    "{operation}: no answer within {} ms",
                    self.timeout.as_millis()
                ),
            })
    }

    /// The positions (in the receipt) of `address`'s events in transaction `tx`, checking the
    /// receipt is in block `block_hash`.
    async fn receipt_positions(
        &self,
        tx: Felt,
        address: Felt,
        block_hash: Felt,
    ) -> Result<Vec<u32>> {
        let receipt = self
            .call(
                "starknet_getTransactionReceipt",
                self.provider.get_transaction_receipt(tx),
            )
            .await?
            .map_err(|e| rpc_error("starknet_getTransactionReceipt", e))?;
        match receipt.block {
            ReceiptBlock::Block {
                block_hash: in_block,
                ..
            } if in_block == block_hash => {}
            _ => {
                return Err(Error::Conflict(format!(
                    "the chain changed while reading events: transaction {} is no longer in \
                     block {}",
                    felt_hex(&tx),
                    felt_hex(&block_hash)
                )))
            }
        }
        receipt
            .receipt
            .events()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.from_address == address)
            .map(|(i, _)| {
                u32::try_from(i)
                    .map_err(|_| Error::invalid("transaction receipt", "more than 2^32 events"))
            })
            .collect()
    }
}

#[async_trait]
impl EventSource for StarknetEventSource {
    async fn head(&self) -> Result<BlockRef> {
        let head = self
            .call(
                "starknet_blockHashAndNumber",
                self.provider.block_hash_and_number(),
            )
            .await?
            .map_err(|e| rpc_error("starknet_blockHashAndNumber", e))?;
        Ok(BlockRef {
            number: head.block_number,
            hash: felt_hex(&head.block_hash),
        })
    }

    async fn block_hash(&self, number: u64) -> Result<Option<String>> {
        let answer = self
            .call(
                "starknet_getBlockWithTxHashes",
                self.provider
                    .get_block_with_tx_hashes(BlockId::Number(number)),
            )
            .await?;
        match answer {
            Ok(MaybePreConfirmedBlockWithTxHashes::Block(block)) => {
                if block.block_number != number {
                    return Err(Error::invalid(
                        "starknet_getBlockWithTxHashes answer",
                        format!("asked for block {number}, got {}", block.block_number),
                    ));
                }
                Ok(Some(felt_hex(&block.block_hash)))
            }
            Ok(MaybePreConfirmedBlockWithTxHashes::PreConfirmedBlock(_)) => Ok(None),
            Err(ProviderError::StarknetError(StarknetError::BlockNotFound)) => Ok(None),
            Err(e) => Err(rpc_error("starknet_getBlockWithTxHashes", e)),
        }
    }

    async fn events(
        &self,
        from_block: u64,
        to_block: u64,
        address: &str,
        continuation_token: Option<String>,
        chunk_size: u64,
    ) -> Result<EventPage> {
        let address = Felt::from_hex(&canonical_hex(address)?)
            .map_err(|_| Error::invalid("contract address", "not a field element"))?;
        let carried = continuation_token
            .map(|t| {
                serde_json::from_str::<Token>(&t).map_err(|_| {
                    Error::invalid("continuation token", "not one this event source issued")
                })
            })
            .transpose()?;
        let (node_token, carried_tx, carried_seen) = match carried {
            Some(t) => (Some(t.node), t.tx, t.seen),
            None => (None, None, 0),
        };
        let filter = EventFilter {
            from_block: Some(BlockId::Number(from_block)),
            to_block: Some(BlockId::Number(to_block)),
            address: Some(address),
            keys: None,
        };
        let page = self
            .call(
                "starknet_getEvents",
                self.provider
                    .get_events(filter, node_token, chunk_size.max(1)),
            )
            .await?
            .map_err(|e| rpc_error("starknet_getEvents", e))?;

        // Accepted blocks only; anything else is for a later step.
        let accepted: Vec<(EmittedEvent, Felt, u64)> = page
            .events
            .into_iter()
            .filter_map(|e| match (e.block_hash, e.block_number) {
                (Some(hash), Some(number)) => Some((e, hash, number)),
                _ => None,
            })
            .collect();

        // One receipt per transaction (a transaction is in one block).
        let mut txs: Vec<(Felt, Felt)> = Vec::new();
        for (e, hash, _) in &accepted {
            if !txs.iter().any(|(tx, _)| *tx == e.transaction_hash) {
                txs.push((e.transaction_hash, *hash));
            }
        }
        let positions: HashMap<Felt, Vec<u32>> = futures::stream::iter(txs)
            .map(|(tx, block_hash)| async move {
                self.receipt_positions(tx, address, block_hash)
                    .await
                    .map(|p| (tx, p))
            })
            .buffered(RECEIPT_CONCURRENCY)
            .try_collect()
            .await?;

        // Events of one transaction are consecutive; only the page's last transaction can
        // continue on the next page, so one carried count is enough.
        let mut last: Option<(Felt, usize)> = match carried_tx {
            Some(tx) => Some((
                Felt::from_hex(&tx)
                    .map_err(|_| Error::invalid("continuation token", "bad transaction hash"))?,
                carried_seen,
            )),
            None => None,
        };
        let mut events = Vec::with_capacity(accepted.len());
        for (e, hash, number) in accepted {
            let count = match last {
                Some((tx, seen)) if tx == e.transaction_hash => seen,
                _ => 0,
            };
            let index = positions
                .get(&e.transaction_hash)
                .and_then(|p| p.get(count))
                .copied()
                .ok_or_else(|| {
                    Error::Conflict(format!(
                        "the chain changed while reading events: transaction {} has fewer \
                         events from the contract than starknet_getEvents returned",
                        felt_hex(&e.transaction_hash)
                    ))
                })?;
            last = Some((e.transaction_hash, count + 1));
            events.push(ChainEvent {
                block_number: number,
                block_hash: felt_hex(&hash),
                tx_hash: felt_hex(&e.transaction_hash),
                event_index: index,
                contract: felt_hex(&e.from_address),
                keys: e.keys.iter().map(felt_hex).collect(),
                data: e.data.iter().map(felt_hex).collect(),
            });
        }

        let continuation_token = match page.continuation_token {
            None => None,
            Some(node) => {
                let token = Token {
                    node,
                    tx: last.map(|(tx, _)| felt_hex(&tx)),
                    seen: last.map(|(_, seen)| seen).unwrap_or(0),
                };
                Some(serde_json::to_string(&token).map_err(|e| Error::backend(BACKEND, e))?)
            }
        };
        Ok(EventPage {
            events,
            continuation_token,
        })
    }
}

/// `0x` + 64 lowercase hex digits.
fn felt_hex(felt: &Felt) -> String {
    format!("{felt:#066x}")
}

/// Maps a provider error: transport trouble is [`Error::Unavailable`] (with our words; the
/// provider's text goes to the log), anything else [`Error::Backend`] (text kept for logs only).
fn rpc_error(operation: &'static str, error: ProviderError) -> Error {
    match error {
        ProviderError::RateLimited => Error::Unavailable {
            source_name: "starknet".into(),
            reason: format!("{operation}: rate limited by the RPC endpoint"),
        },
        ProviderError::Other(_) => {
            tracing::debug!(operation, error = %crate::starknet_source::scrub_urls(&error.to_string()), "starknet JSON-RPC transport error");
            Error::Unavailable {
                source_name: "starknet".into(),
                reason: format!(
                    "{operation}: the RPC endpoint could not be reached or answered badly"
                ),
            }
        }
        other => Error::backend(BACKEND, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn felt_hex_is_canonical() {
        let f = Felt::from_hex("0xABC").unwrap_or_default();
        assert_eq!(felt_hex(&f), format!("0x{:0>64}", "abc"));
        assert_eq!(canonical_hex(&felt_hex(&f)).ok(), Some(felt_hex(&f)));
    }

    #[test]
    fn foreign_tokens_are_rejected() {
        assert!(serde_json::from_str::<Token>("17").is_err());
    }
}
