//! The [`Settlement`] conformance suite: an epoch is accepted once, and a second transaction
//! for a seen epoch id changes nothing. The caller provides valid batches for its chain.

use std::time::Duration;

use crate::settlement::{EpochBatch, Settlement, TxStatus};

/// Waits until `tx` is no longer pending (at most `limit`).
pub async fn wait_final(s: &dyn Settlement, tx: &str, limit: Duration) -> TxStatus {
    let start = std::time::Instant::now();
    loop {
        match s.status(tx).await.expect("status") {
            TxStatus::Pending if start.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => return other,
        }
    }
}

/// Runs every check with `batch` (an epoch the chain will accept, for an id it has not seen).
pub async fn run_all(s: &dyn Settlement, batch: &EpochBatch) {
    let id = batch.epoch_id;
    assert_eq!(s.settled(id).await.expect("settled"), None, "unseen epoch");
    let tx = s.send(batch).await.expect("send");
    let block = match wait_final(s, &tx, Duration::from_secs(60)).await {
        TxStatus::Accepted { block } => block,
        other => panic!("the epoch was not accepted: {other:?}"),
    };
    assert_eq!(s.settled(id).await.expect("settled"), Some(block));
    // The same epoch again: refused (an error, or a transaction that reverts); still settled
    // once, in the same block.
    if let Ok(again) = s.send(batch).await {
        match wait_final(s, &again, Duration::from_secs(60)).await {
            TxStatus::Reverted { reason } => assert!(!reason.is_empty()),
            other => panic!("a second settlement of epoch {id} was not refused: {other:?}"),
        }
    }
    assert_eq!(s.settled(id).await.expect("settled"), Some(block));
}
