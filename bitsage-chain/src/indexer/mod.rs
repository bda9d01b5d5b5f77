//! The reorg-safe event indexer: follows our contracts' events into a
//! [`JobStore`](bitsage_core::JobStore).
//!
//! An [`Indexer`] reads blocks and events from an [`EventSource`] (Starknet JSON-RPC:
//! [`StarknetEventSource`]) and writes them with the store's chain-event methods
//! ([`append_chain_events`](bitsage_core::ChainEventStore::append_chain_events),
//! [`rewind_chain`](bitsage_core::ChainEventStore::rewind_chain)). Each [`Indexer::step`]:
//!
//! 1. **Reorg check.** If the chain's hash at the stored cursor's block differs from the stored
//!    one (or the block is gone), walks back to the newest block whose stored hash the chain
//!    still has — the hashes the store holds are the cursor's and those of the blocks of stored
//!    events — and rewinds the store to it in one transaction. When no stored block is still on
//!    the chain it rewinds to `start_block − 1`.
//! 2. **Catch up.** Fetches the followed contracts' events from the cursor's next block up to
//!    the head (less `confirmations`) in batches of `blocks_per_batch` blocks, each batch paged
//!    with continuation tokens, and stores each batch with the cursor moved to the batch's last
//!    block in one transaction. Writes are idempotent by (block hash, tx hash, event index), so a
//!    crash between pages or batches loses nothing and duplicates nothing: the next step starts
//!    again after the last stored batch.
//! 3. **Lag.** Reports `head − cursor` ([`StepReport::lag_blocks`]), also kept in a shared
//!    [`IndexerStatusHandle`] for the HTTP layer.
//!
//! # Consistency of a batch
//! Starknet reads are by block number, not by a snapshot, so the chain can change while a batch
//! is read. A batch is stored only if the chain kept its shape while it was read: the hash of
//! the batch's last block is read *before* its events are fetched and again *after*, and the
//! previous cursor's hash is re-checked after too. If any differ, the batch is dropped (nothing is
//! written, [`StepReport::chain_moved`] is set) and the next step's reorg check deals with the
//! new chain. This keeps the invariant the reorg check relies on: every stored event belongs to
//! an ancestor of the cursor's block.
//!
//! # Hashes must commit to content
//! Reorgs are detected by block hash, which assumes a block's hash commits to its content, as
//! Starknet's does. starknet-devnet 0.10.1's does not (its hash comes from the block number and
//! transaction count): a devnet reorg that keeps every block's transaction count is invisible to
//! hash comparison, here and for any other hash-based check.
//!
//! # Store limitations
//! The store's event table is shared by every indexer and keyed by (block hash, tx hash, event
//! index) only: a rewind deletes **all** indexers' events above the fork, and a second indexer
//! following other contracts should use its own store. Events of block 0 cannot be removed by a
//! rewind (the cursor has no "before genesis"): when stored block-0 data is no longer on the
//! chain the step fails with [`Error::Conflict`] (another network behind the same RPC URL).

mod source;
mod starknet_rpc;

use std::collections::BTreeSet;
use std::time::Duration;

use bitsage_core::chain::{ChainEvent, IndexerCursor};
use bitsage_core::time::now;
use bitsage_core::{DynJobStore, Error, Result, Timestamp};
use serde::Serialize;
use tokio::sync::{watch, Mutex};

pub use source::{canonical_hex, BlockRef, DynEventSource, EventPage, EventSource};
pub use starknet_rpc::StarknetEventSource;

/// How many blocks of stored events the reorg walk reads from the store at a time.
const ANCESTOR_SCAN_BLOCKS: u64 = 1024;
/// How many times one step rewinds before it gives up and leaves the rest to the next step
/// (a chain that keeps reorganising while we look at it).
const MAX_REWINDS_PER_STEP: u32 = 3;

/// What an [`Indexer`] follows and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexerConfig {
    /// The indexer's name: the key of its cursor in the store.
    pub name: String,
    /// Contract addresses whose events are indexed (canonical hex, see [`canonical_hex`]).
    pub addresses: Vec<String>,
    /// The first block to index (e.g. the block the contracts were deployed in).
    pub start_block: u64,
    /// Events per `get_events` page.
    pub page_size: u64,
    /// Blocks per batch: the unit stored in one transaction together with the cursor.
    pub blocks_per_batch: u64,
    /// At most this many batches per step, so one step stays bounded while catching up.
    pub max_batches_per_step: u32,
    /// Blocks below the head left unindexed (0: index up to the head; reorgs are rolled back).
    pub confirmations: u64,
    /// Pause between steps when caught up.
    pub poll_interval: Duration,
    /// Longest pause after consecutive failed steps (the pause doubles from `poll_interval`).
    pub max_backoff: Duration,
}

impl IndexerConfig {
    /// A configuration with defaults: start block 0, pages of 100 events, batches of 1000 blocks,
    /// 10 batches per step, no confirmations, a 2 s poll interval and a 60 s maximum backoff.
    /// Addresses are validated and normalised to canonical hex; duplicates are dropped.
    pub fn new(name: impl Into<String>, addresses: &[&str]) -> Result<Self> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(Error::invalid("indexer name", "must not be empty"));
        }
        if addresses.is_empty() {
            return Err(Error::invalid(
                "indexer addresses",
                "name at least one contract to follow",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut canonical = Vec::with_capacity(addresses.len());
        for address in addresses {
            let address = canonical_hex(address)?;
            if seen.insert(address.clone()) {
                canonical.push(address);
            }
        }
        Ok(Self {
            name,
            addresses: canonical,
            start_block: 0,
            page_size: 100,
            blocks_per_batch: 1000,
            max_batches_per_step: 10,
            confirmations: 0,
            poll_interval: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        })
    }

    /// Sets the first block to index.
    pub fn with_start_block(mut self, block: u64) -> Self {
        self.start_block = block;
        self
    }

    /// Sets the events per page (at least 1).
    pub fn with_page_size(mut self, events: u64) -> Self {
        self.page_size = events.max(1);
        self
    }

    /// Sets the blocks per batch (at least 1).
    pub fn with_blocks_per_batch(mut self, blocks: u64) -> Self {
        self.blocks_per_batch = blocks.max(1);
        self
    }

    /// Sets the most batches one step stores (at least 1).
    pub fn with_max_batches_per_step(mut self, batches: u32) -> Self {
        self.max_batches_per_step = batches.max(1);
        self
    }

    /// Sets how many blocks below the head are left unindexed.
    pub fn with_confirmations(mut self, blocks: u64) -> Self {
        self.confirmations = blocks;
        self
    }

    /// Sets the pause between steps when caught up.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the longest pause after failed steps.
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }
}

/// What one [`Indexer::step`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// Events stored by this step that were not stored before.
    pub new_events: u64,
    /// Events deleted by reorg rollbacks in this step.
    pub rolled_back_events: u64,
    /// Where the last rollback of this step left the cursor (the common ancestor), if any.
    pub rewound_to: Option<IndexerCursor>,
    /// The cursor after the step (`None` until the first batch is stored).
    pub cursor: Option<IndexerCursor>,
    /// The chain's head as read by this step.
    pub head: u64,
    /// Blocks between the cursor and the head.
    pub lag_blocks: u64,
    /// The chain changed while a batch was read: the batch was dropped and the next step checks
    /// for a reorg again.
    pub chain_moved: bool,
}

/// The indexer's state as the HTTP layer shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexerStatus {
    /// The indexer's name.
    pub name: String,
    /// When the last step ended (successfully or not).
    pub last_step_at: Option<Timestamp>,
    /// When the last successful step ended.
    pub last_success_at: Option<Timestamp>,
    /// The stored cursor after the last successful step.
    pub cursor: Option<IndexerCursor>,
    /// The chain's head at the last successful step.
    pub head: Option<u64>,
    /// Blocks between cursor and head at the last successful step.
    pub lag_blocks: Option<u64>,
    /// The last step's error, if it failed, in words safe to show (no backend error text).
    pub last_error: Option<String>,
    /// Failed steps in a row.
    pub consecutive_failures: u32,
    /// Events stored by this process.
    pub events_indexed: u64,
    /// Events rolled back by this process.
    pub events_rolled_back: u64,
    /// Reorgs detected by this process.
    pub reorgs: u64,
}

impl IndexerStatus {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            last_step_at: None,
            last_success_at: None,
            cursor: None,
            head: None,
            lag_blocks: None,
            last_error: None,
            consecutive_failures: 0,
            events_indexed: 0,
            events_rolled_back: 0,
            reorgs: 0,
        }
    }
}

/// A cheap, cloneable view of an [`Indexer`]'s status, valid after the indexer moved into
/// [`Indexer::run`].
#[derive(Debug, Clone)]
pub struct IndexerStatusHandle(watch::Receiver<IndexerStatus>);

impl IndexerStatusHandle {
    /// The current status.
    pub fn snapshot(&self) -> IndexerStatus {
        self.0.borrow().clone()
    }

    /// Waits until the status changes (after the next step); `Err` when the indexer is gone.
    pub async fn changed(&mut self) -> Result<()> {
        self.0.changed().await.map_err(|_| Error::Unavailable {
            source_name: "indexer".into(),
            reason: "the indexer has stopped".into(),
        })
    }
}

/// Follows contract events from an [`EventSource`] into a [`bitsage_core::JobStore`], reorg-safe.
/// See the [module documentation](self).
#[derive(Debug)]
pub struct Indexer {
    config: IndexerConfig,
    source: DynEventSource,
    store: DynJobStore,
    status: watch::Sender<IndexerStatus>,
    // One step at a time: two interleaved steps of one indexer would race on the cursor.
    step_lock: Mutex<()>,
}

impl Indexer {
    /// An indexer over `source` writing into `store`.
    pub fn new(config: IndexerConfig, source: DynEventSource, store: DynJobStore) -> Self {
        let (status, _) = watch::channel(IndexerStatus::new(&config.name));
        Self {
            config,
            source,
            store,
            status,
            step_lock: Mutex::new(()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IndexerConfig {
        &self.config
    }

    /// A handle on the status, for the HTTP layer.
    pub fn status_handle(&self) -> IndexerStatusHandle {
        IndexerStatusHandle(self.status.subscribe())
    }

    /// The current status.
    pub fn status(&self) -> IndexerStatus {
        self.status.borrow().clone()
    }

    /// Blocks between the cursor and the head at the last successful step (`None` before one).
    pub fn lag(&self) -> Option<u64> {
        self.status.borrow().lag_blocks
    }

    /// One round: reorg check and rollback, then catch up (bounded), then report the lag.
    pub async fn step(&self) -> Result<StepReport> {
        let _one_at_a_time = self.step_lock.lock().await;
        let result = self.step_inner().await;
        let at = now();
        self.status.send_modify(|s| {
            s.last_step_at = Some(at);
            match &result {
                Ok(report) => {
                    s.last_success_at = Some(at);
                    s.cursor = report.cursor.clone();
                    s.head = Some(report.head);
                    s.lag_blocks = Some(report.lag_blocks);
                    s.last_error = None;
                    s.consecutive_failures = 0;
                    s.events_indexed += report.new_events;
                    s.events_rolled_back += report.rolled_back_events;
                    if report.rewound_to.is_some() {
                        s.reorgs += 1;
                    }
                }
                Err(e) => {
                    s.last_error = Some(public_message(e));
                    s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                }
            }
        });
        result
    }

    /// Runs [`Indexer::step`] until `stop` turns `true` (or its sender is dropped): right away
    /// again while behind, every `poll_interval` when caught up, and after a failure with a pause
    /// that doubles up to `max_backoff`. Errors are logged and kept in the status.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            let pause = match self.step().await {
                Ok(report) => {
                    failures = 0;
                    if report.new_events > 0 || report.rolled_back_events > 0 {
                        tracing::debug!(
                            indexer = %self.config.name,
                            new = report.new_events,
                            rolled_back = report.rolled_back_events,
                            lag = report.lag_blocks,
                            "indexer step"
                        );
                    }
                    if report.chain_moved || self.caught_up(&report) {
                        self.config.poll_interval
                    } else {
                        Duration::ZERO
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause =
                        backoff(self.config.poll_interval, self.config.max_backoff, failures);
                    tracing::warn!(
                        indexer = %self.config.name,
                        error = %e,
                        failures,
                        retry_in_ms = pause.as_millis() as u64,
                        "indexer step failed"
                    );
                    pause
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
    }

    fn caught_up(&self, report: &StepReport) -> bool {
        report.lag_blocks <= self.config.confirmations
    }

    async fn step_inner(&self) -> Result<StepReport> {
        let name = self.config.name.as_str();
        let mut rolled_back_events = 0;
        let mut rewound_to = None;
        let mut rewinds = 0;

        // 1. Reorg check, repeated after each rewind in case the chain moved meanwhile.
        let (head, mut cursor) = loop {
            let cursor = self.store.indexer_cursor(name).await?;
            let head = self.source.head().await?;
            let Some(stored) = cursor.as_ref().filter(|c| self.guards_events(c)) else {
                break (head, cursor);
            };
            if self
                .source
                .block_hash(stored.block_number)
                .await?
                .as_deref()
                == Some(stored.block_hash.as_str())
            {
                break (head, cursor);
            }
            if rewinds == MAX_REWINDS_PER_STEP {
                let lag_blocks = self.lag_from(head.number, cursor.as_ref());
                return Ok(StepReport {
                    new_events: 0,
                    rolled_back_events,
                    rewound_to,
                    cursor,
                    head: head.number,
                    lag_blocks,
                    chain_moved: true,
                });
            }
            let ancestor = self.common_ancestor(stored).await?;
            let deleted = self.store.rewind_chain(name, &ancestor).await?;
            tracing::warn!(
                indexer = name,
                from_block = stored.block_number,
                from_hash = %stored.block_hash,
                to_block = ancestor.block_number,
                to_hash = %ancestor.block_hash,
                deleted,
                "chain reorganisation: rolled back to the common ancestor"
            );
            rolled_back_events += deleted;
            rewound_to = Some(ancestor);
            rewinds += 1;
        };

        // 2. Catch up, one batch (one store transaction) at a time.
        let mut new_events = 0;
        let mut chain_moved = false;
        if let Some(last) = head.number.checked_sub(self.config.confirmations) {
            for _ in 0..self.config.max_batches_per_step {
                let from = match &cursor {
                    Some(c) => (c.block_number + 1).max(self.config.start_block),
                    None => self.config.start_block,
                };
                if from > last {
                    break;
                }
                let to = last.min(from.saturating_add(self.config.blocks_per_batch - 1));
                match self.batch(cursor.as_ref(), from, to, &head).await? {
                    Some((stored, next_cursor)) => {
                        new_events += stored;
                        cursor = Some(next_cursor);
                    }
                    None => {
                        chain_moved = true;
                        break;
                    }
                }
            }
        }

        let lag_blocks = self.lag_from(head.number, cursor.as_ref());
        Ok(StepReport {
            new_events,
            rolled_back_events,
            rewound_to,
            cursor,
            head: head.number,
            lag_blocks,
            chain_moved,
        })
    }

    /// Whether a cursor stands for indexed blocks (one below `start_block` marks "nothing
    /// indexed yet" and guards no events).
    fn guards_events(&self, cursor: &IndexerCursor) -> bool {
        cursor.block_number >= self.config.start_block
    }

    fn lag_from(&self, head: u64, cursor: Option<&IndexerCursor>) -> u64 {
        match cursor {
            Some(c) => head.saturating_sub(c.block_number),
            None => (head + 1).saturating_sub(self.config.start_block),
        }
    }

    /// Reads and stores blocks `from ..= to`. `Ok(None)`: the chain changed while reading, nothing
    /// was stored.
    async fn batch(
        &self,
        previous: Option<&IndexerCursor>,
        from: u64,
        to: u64,
        head: &BlockRef,
    ) -> Result<Option<(u64, IndexerCursor)>> {
        // The last block's hash, read before the events (see "Consistency of a batch").
        let to_hash = if to == head.number {
            head.hash.clone()
        } else {
            match self.source.block_hash(to).await? {
                Some(hash) => hash,
                None => return Ok(None),
            }
        };

        let mut events: Vec<ChainEvent> = Vec::new();
        for address in &self.config.addresses {
            let mut token = None;
            loop {
                let page = self
                    .source
                    .events(from, to, address, token, self.config.page_size)
                    .await?;
                events.extend(page.events);
                token = page.continuation_token;
                if token.is_none() {
                    break;
                }
            }
        }

        // The chain kept its shape while we read: the previous cursor and the batch's last block
        // still have the hashes they had before the events were fetched.
        if let Some(previous) = previous.filter(|c| self.guards_events(c)) {
            if self
                .source
                .block_hash(previous.block_number)
                .await?
                .as_deref()
                != Some(previous.block_hash.as_str())
            {
                return Ok(None);
            }
        }
        if self.source.block_hash(to).await?.as_deref() != Some(to_hash.as_str()) {
            return Ok(None);
        }
        for event in &events {
            if event.block_number < from || event.block_number > to {
                return Err(Error::invalid(
                    "event source answer",
                    format!(
                        "an event of block {} in a page for blocks {from}..={to}",
                        event.block_number
                    ),
                ));
            }
            if event.block_number == to && event.block_hash != to_hash {
                return Ok(None);
            }
        }

        events.sort_by(|a, b| {
            (a.block_number, &a.tx_hash, a.event_index).cmp(&(
                b.block_number,
                &b.tx_hash,
                b.event_index,
            ))
        });
        let cursor = IndexerCursor {
            block_number: to,
            block_hash: to_hash,
        };
        let stored = self
            .store
            .append_chain_events(&self.config.name, &events, &cursor)
            .await?;
        Ok(Some((stored, cursor)))
    }

    /// The newest block below `stale` (the cursor, no longer on the chain) whose stored hash the
    /// chain still has; `start_block − 1` when there is none.
    async fn common_ancestor(&self, stale: &IndexerCursor) -> Result<IndexerCursor> {
        let start = self.config.start_block;
        // Blocks in `[start, upper)` are still to be looked at, newest window first.
        let mut upper = stale.block_number;
        let mut stale_genesis = stale.block_number == 0;
        while upper > start {
            let lower = upper.saturating_sub(ANCESTOR_SCAN_BLOCKS).max(start);
            let stored = self.store.chain_events(lower, upper - 1).await?;
            let blocks: Vec<BlockRef> = stored
                .into_iter()
                .map(|e| BlockRef {
                    number: e.block_number,
                    hash: e.block_hash,
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if let Some(oldest) = blocks.first() {
                // A block's hash commits to its parent's: if the window's oldest stored block is
                // no longer on the chain, none of the newer ones is either.
                if self.on_chain(oldest).await? {
                    // Binary search for the newest stored block still on the chain.
                    let (mut good, mut bad) = (0, blocks.len());
                    while bad - good > 1 {
                        let mid = good + (bad - good) / 2;
                        if self.on_chain(&blocks[mid]).await? {
                            good = mid;
                        } else {
                            bad = mid;
                        }
                    }
                    return Ok(IndexerCursor {
                        block_number: blocks[good].number,
                        block_hash: blocks[good].hash.clone(),
                    });
                }
                stale_genesis |= oldest.number == 0;
            }
            upper = lower;
        }

        if start > 0 {
            let number = start - 1;
            // The hash of a cursor below `start_block` is never checked (it guards no events);
            // keep the chain's when it has one.
            let hash = self.source.block_hash(number).await?.unwrap_or_default();
            return Ok(IndexerCursor {
                block_number: number,
                block_hash: hash,
            });
        }
        if stale_genesis {
            return Err(Error::Conflict(format!(
                "indexer {}: stored events or cursor of block 0 are not on this chain (a \
                 different network?); index into a fresh store",
                self.config.name
            )));
        }
        // Nothing stored for block 0: genesis is final, keep it and re-index from block 1.
        match self.source.block_hash(0).await? {
            Some(hash) => Ok(IndexerCursor {
                block_number: 0,
                block_hash: hash,
            }),
            None => Err(Error::Unavailable {
                source_name: "event source".into(),
                reason: "the chain has no block 0".into(),
            }),
        }
    }

    async fn on_chain(&self, block: &BlockRef) -> Result<bool> {
        Ok(self.source.block_hash(block.number).await?.as_deref() == Some(block.hash.as_str()))
    }
}

/// The pause after `failures` consecutive failures: `base` doubled per failure, at most `max`.
fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(max).max(base.min(max))
}

/// An error's message for the status: backend error text (provider, database) stays in logs.
fn public_message(error: &Error) -> String {
    match error {
        Error::Backend { backend, .. } => format!("{backend} backend error"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert_eq!(backoff(base, max, 1), base);
        assert_eq!(backoff(base, max, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, max, 4), Duration::from_millis(800));
        assert_eq!(backoff(base, max, 5), max);
        assert_eq!(backoff(base, max, u32::MAX), max);
    }

    #[test]
    fn config_normalises_and_dedups_addresses() {
        let config = IndexerConfig::new("i", &["0xAB", "0x00ab", "0x1"]).map(|c| c.addresses);
        assert_eq!(
            config.ok(),
            Some(vec![format!("0x{:0>64}", "ab"), format!("0x{:0>64}", "1"),])
        );
        assert!(IndexerConfig::new("i", &[]).is_err());
        assert!(IndexerConfig::new("", &["0x1"]).is_err());
        assert!(IndexerConfig::new("i", &["nope"]).is_err());
    }

    #[test]
    fn backend_error_text_stays_out_of_the_status() {
        let e = Error::backend("starknet-rpc", "connection refused to 10.0.0.1");
        assert_eq!(public_message(&e), "starknet-rpc backend error");
    }
}
