//! The event indexer against an in-memory fixture chain, with real stores (`InMemoryStore` and
//! `SqliteStore` in a temporary directory): pagination, idempotence, reorgs (shallow, deeper than
//! the stored history, while a batch is read), a crash between pages, confirmations, `run`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bitsage_chain::indexer::{
    canonical_hex, BlockRef, EventPage, EventSource, Indexer, IndexerConfig,
};
use bitsage_core::chain::{ChainEvent, IndexerCursor};
use bitsage_core::{DynJobStore, Error, Result};
use bitsage_store::{InMemoryStore, SqliteStore};

const A: &str = "0xa11ce";
const B: &str = "0xb0b";
/// A contract the indexer does not follow; its events still count in receipt positions.
const X: &str = "0xdead";

fn hex(s: &str) -> String {
    canonical_hex(s).expect("valid hex")
}

// ---------------------------------------------------------------------------------------------
// The fixture chain

/// One event as a fixture block holds it: (tx number in block, contract, payload).
type Emit = (u8, &'static str, u64);

#[derive(Debug, Clone)]
struct FixtureBlock {
    hash: String,
    /// Every event of the block, in chain order, with its receipt position filled in.
    events: Vec<ChainEvent>,
}

type ChainHook = Box<dyn FnOnce(&mut Vec<FixtureBlock>) + Send>;

#[derive(Default)]
struct FixtureState {
    blocks: Vec<FixtureBlock>,
    /// `(from, to, address)` of every `events` call.
    calls: Vec<(u64, u64, String)>,
    /// Fail the call with this (1-based) number.
    fail_call: Option<usize>,
    /// Change the chain just before answering the call with this number.
    hook: Option<(usize, ChainHook)>,
}

/// An in-memory chain: blocks with hashes derived from a fork tag, events with receipt
/// positions, offset-based continuation tokens, and fault/reorg injection.
#[derive(Default)]
struct FixtureChain {
    state: Mutex<FixtureState>,
}

impl std::fmt::Debug for FixtureChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixtureChain")
    }
}

fn block_hash(fork: u8, number: u64) -> String {
    hex(&format!("0x{fork:02x}b10c{number:08x}"))
}

fn tx_hash(fork: u8, number: u64, tx: u8) -> String {
    hex(&format!("0x{fork:02x}7{number:08x}{tx:02x}"))
}

fn make_block(fork: u8, number: u64, emits: &[Emit]) -> FixtureBlock {
    let hash = block_hash(fork, number);
    let mut events = Vec::new();
    let mut position_in_tx = std::collections::HashMap::new();
    for &(tx, contract, payload) in emits {
        let index = position_in_tx.entry(tx).or_insert(0u32);
        events.push(ChainEvent {
            block_number: number,
            block_hash: hash.clone(),
            tx_hash: tx_hash(fork, number, tx),
            event_index: *index,
            contract: hex(contract),
            keys: vec![hex("0x5e1ec7"), hex(&format!("{payload:#x}"))],
            data: vec![hex(&format!("{:#x}", payload * 10))],
        });
        *index += 1;
    }
    FixtureBlock { hash, events }
}

impl FixtureChain {
    /// A chain with an empty genesis block.
    fn new() -> Arc<Self> {
        let chain = Self::default();
        chain.lock().blocks.push(make_block(0, 0, &[]));
        Arc::new(chain)
    }

    fn lock(&self) -> MutexGuard<'_, FixtureState> {
        self.state.lock().expect("fixture lock")
    }

    /// Appends a block of fork `fork` with `emits`.
    fn push(&self, fork: u8, emits: &[Emit]) {
        let mut s = self.lock();
        let number = s.blocks.len() as u64;
        s.blocks.push(make_block(fork, number, emits));
    }

    /// Appends `count` blocks, each with three events of A (two in tx 0, around one of X), one
    /// of B (tx 1) and one of X.
    fn push_standard(&self, fork: u8, count: u64) {
        for _ in 0..count {
            let payload = self.head_number() + 1 + u64::from(fork) * 1000;
            self.push(
                fork,
                &[
                    (0, A, payload),
                    (0, X, payload),
                    (0, A, payload + 1),
                    (1, B, payload),
                    (1, A, payload + 2),
                    (2, X, payload),
                ],
            );
        }
    }

    /// Removes blocks `from..` (what `devnet_abortBlocks` does).
    fn abort_from(&self, from: u64) {
        self.lock().blocks.truncate(from as usize);
    }

    fn head_number(&self) -> u64 {
        self.lock().blocks.len() as u64 - 1
    }

    fn head_ref(&self) -> IndexerCursor {
        let s = self.lock();
        let n = s.blocks.len() - 1;
        IndexerCursor {
            block_number: n as u64,
            block_hash: s.blocks[n].hash.clone(),
        }
    }

    /// The events of followed contracts in blocks `from..`, as the indexer should store them.
    fn expected(&self, from: u64, addresses: &[&str]) -> BTreeSet<EventKey> {
        let addresses: Vec<String> = addresses.iter().map(|a| hex(a)).collect();
        self.lock()
            .blocks
            .iter()
            .skip(from as usize)
            .flat_map(|b| b.events.iter())
            .filter(|e| addresses.contains(&e.contract))
            .map(key)
            .collect()
    }

    fn calls(&self) -> Vec<(u64, u64, String)> {
        self.lock().calls.clone()
    }

    fn fail_call(&self, n: usize) {
        let mut s = self.lock();
        s.fail_call = Some(s.calls.len() + n);
    }

    fn on_call(&self, n: usize, hook: impl FnOnce(&mut Vec<FixtureBlock>) + Send + 'static) {
        let mut s = self.lock();
        let at = s.calls.len() + n;
        s.hook = Some((at, Box::new(hook)));
    }
}

#[async_trait]
impl EventSource for FixtureChain {
    async fn head(&self) -> Result<BlockRef> {
        let head = self.head_ref();
        Ok(BlockRef {
            number: head.block_number,
            hash: head.block_hash,
        })
    }

    async fn block_hash(&self, number: u64) -> Result<Option<String>> {
        Ok(self
            .lock()
            .blocks
            .get(number as usize)
            .map(|b| b.hash.clone()))
    }

    async fn events(
        &self,
        from_block: u64,
        to_block: u64,
        address: &str,
        continuation_token: Option<String>,
        chunk_size: u64,
    ) -> Result<EventPage> {
        let mut s = self.lock();
        s.calls.push((from_block, to_block, address.to_string()));
        let call = s.calls.len();
        if s.fail_call == Some(call) {
            s.fail_call = None;
            return Err(Error::Unavailable {
                source_name: "fixture".into(),
                reason: "injected failure".into(),
            });
        }
        if s.hook.as_ref().is_some_and(|(at, _)| *at == call) {
            if let Some((_, hook)) = s.hook.take() {
                hook(&mut s.blocks);
            }
        }
        let offset: usize = match continuation_token {
            None => 0,
            Some(t) => t
                .strip_prefix("fixture:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| Error::invalid("continuation token", "not a fixture token"))?,
        };
        let matching: Vec<ChainEvent> = s
            .blocks
            .iter()
            .skip(from_block as usize)
            .take((to_block.saturating_sub(from_block) + 1) as usize)
            .flat_map(|b| b.events.iter())
            .filter(|e| e.contract == address)
            .cloned()
            .collect();
        let end = (offset + chunk_size as usize).min(matching.len());
        Ok(EventPage {
            events: matching.get(offset..end).unwrap_or_default().to_vec(),
            continuation_token: (end < matching.len()).then(|| format!("fixture:{end}")),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Stores and helpers

/// (block hash, tx hash, event index, contract, keys, data)
type EventKey = (String, String, u32, String, Vec<String>, Vec<String>);

fn key(e: &ChainEvent) -> EventKey {
    (
        e.block_hash.clone(),
        e.tx_hash.clone(),
        e.event_index,
        e.contract.clone(),
        e.keys.clone(),
        e.data.clone(),
    )
}

/// Every store kind the indexer is tested with: (name, store, temp dir guard).
async fn stores() -> Vec<(&'static str, DynJobStore, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open_dir(dir.path())
        .await
        .expect("open sqlite");
    vec![
        ("memory", Arc::new(InMemoryStore::new()), None),
        ("sqlite", Arc::new(sqlite), Some(dir)),
    ]
}

async fn stored(store: &DynJobStore) -> Vec<ChainEvent> {
    store.chain_events(0, u64::MAX).await.expect("chain_events")
}

async fn stored_keys(store: &DynJobStore) -> BTreeSet<EventKey> {
    stored(store).await.iter().map(key).collect()
}

fn config() -> IndexerConfig {
    IndexerConfig::new("fixture", &[A, B])
        .expect("config")
        .with_page_size(2)
        .with_blocks_per_batch(3)
        .with_max_batches_per_step(1000)
}

fn indexer(chain: &Arc<FixtureChain>, store: &DynJobStore, config: IndexerConfig) -> Indexer {
    Indexer::new(config, chain.clone(), store.clone())
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn indexer_pages_with_continuation_tokens_and_stores_every_followed_event() {
    for (kind, store, _dir) in stores().await {
        let chain = FixtureChain::new();
        chain.push_standard(1, 10);
        let idx = indexer(&chain, &store, config());

        let report = idx.step().await.expect("step");

        let expected = chain.expected(0, &[A, B]);
        assert_eq!(expected.len(), 40, "{kind}: 3 of A and 1 of B per block");
        assert_eq!(report.new_events, 40, "{kind}");
        assert_eq!(stored_keys(&store).await, expected, "{kind}");
        assert_eq!(report.cursor, Some(chain.head_ref()), "{kind}");
        assert_eq!(report.head, 10, "{kind}");
        assert_eq!(report.lag_blocks, 0, "{kind}");
        assert_eq!(report.rolled_back_events, 0, "{kind}");
        assert_eq!(
            store.indexer_cursor("fixture").await.expect("cursor"),
            Some(chain.head_ref()),
            "{kind}: the cursor is persisted"
        );
        // Pages of 2 events: A has 9 events per 3-block batch (5 pages), B has 3 (2 pages).
        let calls = chain.calls();
        assert!(calls.len() > 2 * 4, "{kind}: paged ({} calls)", calls.len());
        // The event index is the position in the receipt, counting the unfollowed contract's
        // events too: tx 0 holds A, X, A → A's are 0 and 2.
        let first_tx: Vec<u32> = stored(&store)
            .await
            .into_iter()
            .filter(|e| e.contract == hex(A) && e.tx_hash == tx_hash(1, 1, 0))
            .map(|e| e.event_index)
            .collect();
        assert_eq!(first_tx, vec![0, 2], "{kind}");
        assert_eq!(idx.lag(), Some(0), "{kind}");
    }
}

#[tokio::test]
async fn indexer_step_twice_stores_nothing_new() {
    for (kind, store, _dir) in stores().await {
        let chain = FixtureChain::new();
        chain.push_standard(1, 5);
        let idx = indexer(&chain, &store, config());

        let first = idx.step().await.expect("step");
        let again = idx.step().await.expect("step again");
        assert_eq!(first.new_events, 20, "{kind}");
        assert_eq!(again.new_events, 0, "{kind}: nothing new");
        assert_eq!(again.rolled_back_events, 0, "{kind}");
        assert_eq!(again.cursor, first.cursor, "{kind}");
        assert_eq!(stored(&store).await.len(), 20, "{kind}");

        // A fresh indexer over the same store (a restart) picks up at the stored cursor.
        let calls_before = chain.calls().len();
        let restarted = indexer(&chain, &store, config());
        let after_restart = restarted.step().await.expect("step after restart");
        assert_eq!(after_restart.new_events, 0, "{kind}");
        assert_eq!(chain.calls().len(), calls_before, "{kind}: nothing re-read");

        chain.push_standard(1, 2);
        let more = restarted.step().await.expect("step with new blocks");
        assert_eq!(more.new_events, 8, "{kind}: only the new blocks");
        assert_eq!(
            stored_keys(&store).await,
            chain.expected(0, &[A, B]),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn indexer_reorg_replaces_events_above_the_fork() {
    for (kind, store, _dir) in stores().await {
        let chain = FixtureChain::new();
        chain.push_standard(1, 10);
        let idx = indexer(&chain, &store, config());
        idx.step().await.expect("index fork 1");
        let below_fork: Vec<ChainEvent> = store.chain_events(0, 6).await.expect("events");
        let old_above = store.chain_events(7, u64::MAX).await.expect("events").len() as u64;
        assert_eq!(old_above, 16, "{kind}");

        // Blocks 7..=10 are replaced by 7..=12 of fork 2, with other events.
        chain.abort_from(7);
        chain.push_standard(2, 6);
        let report = idx.step().await.expect("step after reorg");

        assert_eq!(report.rolled_back_events, old_above, "{kind}");
        assert_eq!(
            report.rewound_to,
            Some(IndexerCursor {
                block_number: 6,
                block_hash: block_hash(1, 6)
            }),
            "{kind}: back to the common ancestor"
        );
        assert_eq!(report.new_events, 24, "{kind}: fork 2's blocks 7..=12");
        assert_eq!(report.cursor, Some(chain.head_ref()), "{kind}");
        assert_eq!(
            store.chain_events(0, 6).await.expect("events"),
            below_fork,
            "{kind}: untouched below the fork"
        );
        let above = store.chain_events(7, u64::MAX).await.expect("events");
        assert!(
            above
                .iter()
                .all(|e| e.block_hash == block_hash(2, e.block_number)),
            "{kind}: only fork 2 above the fork"
        );
        assert_eq!(
            stored_keys(&store).await,
            chain.expected(0, &[A, B]),
            "{kind}"
        );
        let status = idx.status();
        assert_eq!(status.reorgs, 1, "{kind}");
        assert_eq!(status.events_rolled_back, old_above, "{kind}");
    }
}

#[tokio::test]
async fn indexer_reorg_rewinds_to_the_newest_stored_block_still_on_the_chain() {
    for (kind, store, _dir) in stores().await {
        let chain = FixtureChain::new();
        chain.push_standard(1, 4);
        // Blocks 5..=8 have no events of ours: the store holds no hash for them.
        for _ in 0..4 {
            chain.push(1, &[(0, X, 1)]);
        }
        chain.push_standard(1, 2);
        let idx = indexer(&chain, &store, config());
        idx.step().await.expect("index");

        chain.abort_from(7);
        chain.push_standard(2, 3);
        let report = idx.step().await.expect("step after reorg");

        // Block 4 is the newest block whose hash the store knows and the chain still has.
        assert_eq!(report.rewound_to.map(|c| c.block_number), Some(4), "{kind}");
        assert_eq!(report.rolled_back_events, 8, "{kind}: blocks 9 and 10");
        assert_eq!(
            stored_keys(&store).await,
            chain.expected(0, &[A, B]),
            "{kind}"
        );
        assert_eq!(report.cursor, Some(chain.head_ref()), "{kind}");
    }
}

#[tokio::test]
async fn indexer_reorg_deeper_than_the_stored_history_rewinds_before_the_start_block() {
    for (kind, store, _dir) in stores().await {
        let chain = FixtureChain::new();
        chain.push_standard(1, 8);
        let cfg = config().with_start_block(3);
        let idx = indexer(&chain, &store, cfg);
        let first = idx.step().await.expect("index");
        assert_eq!(first.new_events, 24, "{kind}: blocks 3..=8 only");

        // Everything from block 2 (below the start block) is replaced.
        chain.abort_from(2);
        chain.push_standard(3, 9);
        let report = idx.step().await.expect("step after deep reorg");

        assert_eq!(report.rolled_back_events, 24, "{kind}: all stored events");
        assert_eq!(
            report.rewound_to,
            Some(IndexerCursor {
                block_number: 2,
                block_hash: block_hash(3, 2)
            }),
            "{kind}: start block − 1"
        );
        assert_eq!(
            stored_keys(&store).await,
            chain.expected(3, &[A, B]),
            "{kind}"
        );
        assert_eq!(report.cursor, Some(chain.head_ref()), "{kind}");
        assert_eq!(report.new_events, 8 * 4, "{kind}: fork 3's blocks 3..=10");
    }
}

#[tokio::test]
async fn indexer_crash_between_pages_loses_nothing_and_duplicates_nothing() {
    for (kind, store, _dir) in stores().await {
        let chain = FixtureChain::new();
        chain.push_standard(1, 9);
        let idx = indexer(&chain, &store, config());

        // Batch 1 (blocks 0..=2) takes 3 pages of A and 1 of B; fail in the middle of batch 2.
        chain.fail_call(10);
        let failed = idx.step().await;
        assert!(failed.is_err(), "{kind}: the step reports the failure");
        let status = idx.status();
        assert_eq!(status.consecutive_failures, 1, "{kind}");
        assert!(status.last_error.is_some(), "{kind}");

        let cursor = store
            .indexer_cursor("fixture")
            .await
            .expect("cursor")
            .expect("batch 1 was stored");
        assert_eq!(cursor.block_number, 2, "{kind}: the completed batch");
        assert_eq!(stored(&store).await.len(), 8, "{kind}: blocks 1 and 2");

        let calls_before = chain.calls().len();
        let resumed = idx.step().await.expect("resume");
        assert_eq!(
            chain.calls()[calls_before].0,
            3,
            "{kind}: resumes after the stored cursor"
        );
        assert_eq!(resumed.new_events, 28, "{kind}: blocks 3..=9, each once");
        let all = stored(&store).await;
        assert_eq!(all.len(), 36, "{kind}: no duplicate");
        assert_eq!(
            all.iter().map(key).collect::<BTreeSet<_>>(),
            chain.expected(0, &[A, B]),
            "{kind}"
        );
        assert_eq!(
            idx.status().last_error,
            None,
            "{kind}: cleared by the success"
        );
    }
}

#[tokio::test]
async fn indexer_drops_a_batch_read_while_the_chain_reorganised() {
    for (kind, store, _dir) in stores().await {
        let chain = FixtureChain::new();
        chain.push_standard(1, 2);
        let idx = indexer(&chain, &store, config().with_blocks_per_batch(100));

        // The chain reorganises between the pages of the batch: the first pages come from fork
        // 1, the rest from fork 2.
        chain.on_call(2, |blocks| {
            blocks.truncate(1);
            for n in 1..=3 {
                blocks.push(make_block(2, n, &[(0, A, 700 + n), (1, B, 800 + n)]));
            }
        });
        let report = idx.step().await.expect("step");
        assert!(report.chain_moved, "{kind}");
        assert_eq!(report.new_events, 0, "{kind}: the mixed batch was dropped");
        assert!(stored(&store).await.is_empty(), "{kind}");

        let report = idx.step().await.expect("next step");
        assert!(!report.chain_moved, "{kind}");
        assert_eq!(
            stored_keys(&store).await,
            chain.expected(0, &[A, B]),
            "{kind}"
        );
        assert_eq!(report.cursor, Some(chain.head_ref()), "{kind}");
    }
}

#[tokio::test]
async fn indexer_leaves_unconfirmed_blocks_and_reports_lag() {
    for (kind, store, _dir) in stores().await {
        let chain = FixtureChain::new();
        chain.push_standard(1, 6);
        let idx = indexer(&chain, &store, config().with_confirmations(2));
        let report = idx.step().await.expect("step");
        assert_eq!(report.cursor.map(|c| c.block_number), Some(4), "{kind}");
        assert_eq!(report.lag_blocks, 2, "{kind}");
        assert_eq!(stored(&store).await.len(), 16, "{kind}: blocks 1..=4");

        // Bounded steps: one batch of 3 blocks per step.
        let store2: DynJobStore = Arc::new(InMemoryStore::new());
        let bounded = indexer(&chain, &store2, config().with_max_batches_per_step(1));
        let report = bounded.step().await.expect("bounded step");
        assert_eq!(report.cursor.map(|c| c.block_number), Some(2), "{kind}");
        assert_eq!(report.lag_blocks, 4, "{kind}");
        assert_eq!(bounded.lag(), Some(4), "{kind}");
    }
}

#[tokio::test]
async fn indexer_genesis_replaced_is_a_conflict() {
    let chain = FixtureChain::new();
    chain.abort_from(0);
    chain.push(1, &[(0, A, 1)]);
    chain.push_standard(1, 2);
    let store: DynJobStore = Arc::new(InMemoryStore::new());
    let idx = indexer(&chain, &store, config());
    idx.step().await.expect("index");

    chain.abort_from(0);
    chain.push(2, &[(0, A, 2)]);
    chain.push_standard(2, 3);
    let err = idx.step().await.expect_err("another chain");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(idx.status().last_error.is_some());
}

#[tokio::test]
async fn indexer_run_follows_new_blocks_until_stopped() {
    let chain = FixtureChain::new();
    chain.push_standard(1, 3);
    let store: DynJobStore = Arc::new(InMemoryStore::new());
    let idx = indexer(
        &chain,
        &store,
        config()
            .with_poll_interval(Duration::from_millis(10))
            .with_max_backoff(Duration::from_millis(40)),
    );
    let mut status = idx.status_handle();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(idx.run(stop_rx));

    // A failure on the way is retried.
    chain.fail_call(1);
    chain.push_standard(1, 4);
    let head = chain.head_ref();
    let caught_up = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let s = status.snapshot();
            if s.cursor.as_ref() == Some(&head) && s.lag_blocks == Some(0) {
                return s;
            }
            status.changed().await.expect("indexer alive");
        }
    })
    .await
    .expect("the running indexer catches up");
    assert_eq!(caught_up.last_error, None);
    assert_eq!(stored_keys(&store).await, chain.expected(0, &[A, B]));

    stop_tx.send(true).expect("send stop");
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("run returns after the stop signal")
        .expect("run task");
}
