//! The event indexer against our contracts on a real `starknet-devnet`: a reorg made with
//! `devnet_abortBlocks` (skipped with a printed reason when the binary is missing, failed under
//! `CI=true`).

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;

use bitsage_chain::devnet::{BlockId, Deployment, Devnet, Felt, Included, Outcome};
use bitsage_chain::indexer::{Indexer, IndexerConfig, StarknetEventSource};
use bitsage_core::chain::{ChainEvent, IndexerCursor};
use bitsage_core::gpu::GpuTier;
use bitsage_core::DynJobStore;
use bitsage_store::SqliteStore;
use starknet::core::types::ReceiptBlock;
use starknet::providers::Provider;
use support::{deployed_or_skip, sage, SERIAL};

fn hex(f: &Felt) -> String {
    format!("{f:#066x}")
}

/// (block number, block hash, tx hash, event index, contract, keys, data)
type Key = (u64, String, String, u32, String, Vec<String>, Vec<String>);

fn key(e: &ChainEvent) -> Key {
    (
        e.block_number,
        e.block_hash.clone(),
        e.tx_hash.clone(),
        e.event_index,
        e.contract.clone(),
        e.keys.clone(),
        e.data.clone(),
    )
}

/// What the indexer should store for `txs`, read independently from their receipts: every event
/// of our contracts, indexed by its position in the receipt.
async fn expected_from_receipts(
    devnet: &Devnet,
    dep: &Deployment,
    txs: &[Included],
) -> BTreeSet<Key> {
    let ours = [dep.token, dep.staking, dep.reputation];
    let provider = devnet.provider();
    let mut out = BTreeSet::new();
    for tx in txs {
        let r = provider
            .get_transaction_receipt(tx.tx_hash)
            .await
            .expect("receipt");
        let (number, hash) = match r.block {
            ReceiptBlock::Block {
                block_number,
                block_hash,
            } => (block_number, block_hash),
            ReceiptBlock::PreConfirmed { .. } => panic!("transaction still pre-confirmed"),
        };
        for (i, e) in r.receipt.events().iter().enumerate() {
            if ours.contains(&e.from_address) {
                out.insert((
                    number,
                    hex(&hash),
                    hex(&tx.tx_hash),
                    i as u32,
                    hex(&e.from_address),
                    e.keys.iter().map(hex).collect(),
                    e.data.iter().map(hex).collect(),
                ));
            }
        }
    }
    out
}

async fn stored(store: &DynJobStore, from: u64, to: u64) -> BTreeSet<Key> {
    store
        .chain_events(from, to)
        .await
        .expect("chain_events")
        .iter()
        .map(key)
        .collect()
}

async fn head_cursor(devnet: &Devnet) -> IndexerCursor {
    let (number, hash) = devnet.head().await.expect("head");
    IndexerCursor {
        block_number: number,
        block_hash: hex(&hash),
    }
}

#[tokio::test]
async fn indexer_devnet_reorg_replaces_events_above_the_fork() {
    const TEST: &str = "indexer_devnet_reorg_replaces_events_above_the_fork";
    let _serial = SERIAL.lock().await;
    let Some((devnet, dep)) = deployed_or_skip(TEST).await else {
        return;
    };
    let (deployed_at, _) = devnet.head().await.expect("head");
    let w1 = dep.accounts[1].clone();
    let w2 = dep.accounts[2].clone();

    let dir = tempfile::tempdir().expect("temp dir");
    let store: DynJobStore = Arc::new(SqliteStore::open_dir(dir.path()).await.expect("sqlite"));
    let source = StarknetEventSource::new(devnet.rpc_url());
    let config = IndexerConfig::new(
        "devnet",
        &[&hex(&dep.token), &hex(&dep.staking), &hex(&dep.reputation)],
    )
    .expect("config")
    .with_start_block(deployed_at + 1)
    // Small pages and batches: continuation tokens and several batches on a short chain.
    .with_page_size(2)
    .with_blocks_per_batch(2);
    let indexer = Indexer::new(config, Arc::new(source), store.clone());

    // Events over several blocks (devnet closes a block per transaction).
    let mut before_fork = vec![
        dep.mint_sage(w1.address, sage(3_000))
            .await
            .expect("mint w1"),
        dep.stake(&w1, sage(1_000), GpuTier::DataCenter)
            .await
            .expect("stake w1"),
    ];
    let first = indexer.step().await.expect("first step");
    assert_eq!(first.cursor, Some(head_cursor(&devnet).await));

    devnet.create_block().await.expect("empty block");
    before_fork.push(
        dep.update_reputation(w1.address, Outcome::JobSucceeded, Felt::from(1u8))
            .await
            .expect("reputation w1"),
    );
    let fork_block = before_fork.last().map(|t| t.block_number).expect("a block");
    let above_fork_old = vec![
        dep.mint_sage(w2.address, sage(2_000))
            .await
            .expect("mint w2"),
        dep.stake(&w1, sage(500), GpuTier::DataCenter)
            .await
            .expect("stake w1 again"),
        dep.update_reputation(w2.address, Outcome::JobFailed, Felt::from(2u8))
            .await
            .expect("reputation w2"),
    ];
    let second = indexer.step().await.expect("second step");
    assert_eq!(second.rolled_back_events, 0);
    assert!(second.new_events > 0);

    let expected_below = expected_from_receipts(&devnet, &dep, &before_fork).await;
    let expected_old_above = expected_from_receipts(&devnet, &dep, &above_fork_old).await;
    assert_eq!(
        stored(&store, 0, fork_block).await,
        expected_below,
        "indexed before the reorg: below the fork"
    );
    assert_eq!(
        stored(&store, fork_block + 1, u64::MAX).await,
        expected_old_above,
        "indexed before the reorg: above the fork"
    );
    assert!(
        expected_below.iter().any(|k| k.0 == fork_block),
        "the fork block has events"
    );
    // Transfer + Approval + Staked in one stake transaction: several events share a tx.
    let stake_tx = hex(&before_fork[1].tx_hash);
    assert!(expected_below.iter().filter(|k| k.2 == stake_tx).count() >= 2);

    // A real reorg: blocks above the fork are aborted, and different transactions build a
    // different chain on top of the fork block.
    let aborted = devnet
        .abort_blocks(BlockId::Number(fork_block + 1))
        .await
        .expect("abort blocks");
    assert!(!aborted.is_empty());
    let (after_abort, _) = devnet.head().await.expect("head");
    assert_eq!(
        after_abort, fork_block,
        "the chain now ends at the fork block"
    );
    // starknet-devnet 0.10.1's block hash does not commit to the block's transactions: it is
    // computed from the number and the transaction count (its `generate_hash`), and in practice a
    // new block with one other transaction, even on another parent, gets the aborted block's
    // hash. On a real network a block with other content has another hash; here the new chain
    // first gets empty blocks at the aborted heights, so every block that held indexed events
    // differs by hash, and the new events follow above them.
    for _ in 0..aborted.len() {
        devnet
            .create_block()
            .await
            .expect("empty block on the new chain");
    }
    let above_fork_new = vec![
        dep.mint_sage(w2.address, sage(777))
            .await
            .expect("mint w2 (new)"),
        dep.update_reputation(w1.address, Outcome::Dispute, Felt::from(3u8))
            .await
            .expect("reputation w1 (new)"),
        dep.stake(&w2, sage(500), GpuTier::DataCenter)
            .await
            .expect("stake w2 (new)"),
        dep.update_reputation(w2.address, Outcome::JobSucceeded, Felt::from(4u8))
            .await
            .expect("reputation w2 (new)"),
    ];
    devnet.create_block().await.expect("empty block");

    let report = indexer.step().await.expect("step after the reorg");
    let expected_new_above = expected_from_receipts(&devnet, &dep, &above_fork_new).await;
    assert_eq!(
        stored(&store, 0, fork_block).await,
        expected_below,
        "untouched below the fork"
    );
    assert_eq!(
        stored(&store, fork_block + 1, u64::MAX).await,
        expected_new_above,
        "the new chain's events above the fork"
    );
    let aborted: BTreeSet<String> = aborted.iter().map(hex).collect();
    assert!(
        store
            .chain_events(0, u64::MAX)
            .await
            .expect("events")
            .iter()
            .all(|e| !aborted.contains(&e.block_hash)),
        "no event of an aborted block is left"
    );
    let head = head_cursor(&devnet).await;
    assert_eq!(
        report.cursor,
        Some(head.clone()),
        "the cursor is on the new chain"
    );
    assert_eq!(
        store.indexer_cursor("devnet").await.expect("cursor"),
        Some(head),
        "and persisted"
    );
    assert_eq!(report.lag_blocks, 0);

    let again = indexer.step().await.expect("idle step");
    assert_eq!((again.new_events, again.rolled_back_events), (0, 0));
    assert_eq!(indexer.status().reorgs, 1);
}
