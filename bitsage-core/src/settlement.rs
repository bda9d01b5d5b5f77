//! Settlement on chain, in epochs: verified completions (their receipts) wait in the store
//! until a settler sends them — payouts, the network fee, `record_success`, reputation, slashes
//! and the Merkle root of the epoch's receipt hashes — in **one transaction per epoch**, and an
//! epoch is paid **exactly once** (the contract refuses a seen epoch id; the store keeps each
//! epoch's state). Anyone re-checks a receipt against the root anchored on chain with its
//! inclusion path ([`InclusionProof`]).

use std::fmt::Debug;

use async_trait::async_trait;
use blake2::{Blake2s256, Digest};
use serde::{Deserialize, Serialize};

use crate::crypto::Hash32;
use crate::receipt::Receipt;
use crate::{Error, JobId, NodeId, ReceiptId, Result, Timestamp, TokenAmount, WalletAddress};

/// Domain tag of a receipt's hash (a Merkle leaf).
pub const RECEIPT_HASH_DOMAIN: &[u8] = b"bitsage/receipt-hash/v1";
/// Domain tag of an inner Merkle node.
pub const MERKLE_NODE_DOMAIN: &[u8] = b"bitsage/merkle-node/v1";

/// The hash of a receipt: BLAKE2s-256(domain ‖ its JSON, signatures included).
pub fn receipt_hash(receipt: &Receipt) -> Hash32 {
    let mut h = Blake2s256::new();
    h.update(RECEIPT_HASH_DOMAIN);
    // A receipt holds plain values: serialisation cannot fail.
    h.update(serde_json::to_vec(receipt).unwrap_or_default());
    Hash32(h.finalize().into())
}

fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = Blake2s256::new();
    h.update(MERKLE_NODE_DOMAIN);
    h.update(left.0);
    h.update(right.0);
    Hash32(h.finalize().into())
}

/// A root as a Starknet field element: its top 6 bits cleared (below 2^250 < the modulus).
pub fn root_as_felt(root: &Hash32) -> Hash32 {
    let mut r = *root;
    r.0[0] &= 0x03;
    r
}

/// The level above `level`: pairs hashed, an odd last node carried up unchanged.
fn next_level(level: &[Hash32]) -> Vec<Hash32> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => node_hash(l, r),
            [one] => *one,
            _ => unreachable!("chunks of two"),
        })
        .collect()
}

/// The Merkle root of `leaves` (an odd node is carried up unchanged); `None` for no leaves.
pub fn merkle_root(leaves: &[Hash32]) -> Option<Hash32> {
    let mut level = leaves.to_vec();
    if level.is_empty() {
        return None;
    }
    while level.len() > 1 {
        level = next_level(&level);
    }
    level.pop()
}

/// One step of an inclusion path: the sibling hash and on which side it sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathStep {
    /// The sibling's hash.
    pub sibling: Hash32,
    /// `true`: the sibling is on the left.
    pub left: bool,
}

/// The inclusion path of leaf `index` in `leaves`.
pub fn merkle_path(leaves: &[Hash32], index: usize) -> Option<Vec<PathStep>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let mut level = leaves.to_vec();
    let mut i = index;
    while level.len() > 1 {
        let sibling = i ^ 1;
        if sibling < level.len() {
            path.push(PathStep {
                sibling: level[sibling],
                left: sibling < i,
            });
        }
        level = next_level(&level);
        i /= 2;
    }
    Some(path)
}

/// The root a leaf and its path lead to.
pub fn root_from_path(leaf: &Hash32, path: &[PathStep]) -> Hash32 {
    path.iter().fold(*leaf, |acc, step| {
        if step.left {
            node_hash(&step.sibling, &acc)
        } else {
            node_hash(&acc, &step.sibling)
        }
    })
}

/// A receipt waiting for (or included in) an epoch, with who pays and who is paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementItem {
    /// The receipt.
    pub receipt: Receipt,
    /// The account its job's payment was reserved from (`None`: an uncharged job).
    pub payer: Option<WalletAddress>,
    /// The node's wallet (paid the net amount).
    pub worker: WalletAddress,
}

/// A node caught cheating, to be slashed on chain in the next epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashItem {
    /// The node.
    pub node_id: NodeId,
    /// Its wallet (the staker).
    pub worker: WalletAddress,
    /// The job it cheated on.
    pub job_id: JobId,
    /// Why (e.g. `invalid proof`), in words.
    pub reason: String,
    /// When it was caught.
    pub at: Timestamp,
}

/// Where an epoch is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EpochState {
    /// Assembled, not sent yet.
    Pending,
    /// Sent in transaction `tx_hash`, not yet accepted.
    Sent {
        /// The transaction.
        tx_hash: String,
    },
    /// Accepted on chain.
    Accepted {
        /// The transaction.
        tx_hash: String,
        /// The block it was included in.
        block: u64,
    },
    /// The last attempt failed (it is retried under the same epoch id).
    Failed {
        /// Why.
        reason: String,
    },
}

impl EpochState {
    /// `pending`, `sent`, `accepted`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            EpochState::Pending => "pending",
            EpochState::Sent { .. } => "sent",
            EpochState::Accepted { .. } => "accepted",
            EpochState::Failed { .. } => "failed",
        }
    }
}

/// An epoch as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// The epoch id (1, 2, …; the contract refuses a seen one).
    pub id: u64,
    /// Where it is.
    pub state: EpochState,
    /// Its receipts, in completion order (the Merkle leaves' order).
    pub items: Vec<SettlementItem>,
    /// Its slashes.
    pub slashes: Vec<SlashItem>,
    /// When it was assembled.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Epoch {
    /// The receipt hashes (Merkle leaves), in order.
    pub fn leaves(&self) -> Vec<Hash32> {
        self.items
            .iter()
            .map(|i| receipt_hash(&i.receipt))
            .collect()
    }

    /// The Merkle root of the receipt hashes as anchored on chain ([`root_as_felt`]); zero
    /// for an epoch of slashes only.
    pub fn receipts_root(&self) -> Hash32 {
        merkle_root(&self.leaves())
            .map(|r| root_as_felt(&r))
            .unwrap_or(Hash32([0; 32]))
    }

    /// The inclusion proof of `receipt` in this epoch.
    pub fn inclusion(&self, receipt: &ReceiptId) -> Option<InclusionProof> {
        let index = self
            .items
            .iter()
            .position(|i| i.receipt.body.id == *receipt)?;
        let leaves = self.leaves();
        Some(InclusionProof {
            epoch_id: self.id,
            state: self.state.clone(),
            leaf_index: index as u64,
            leaf: leaves[index],
            path: merkle_path(&leaves, index)?,
            receipts_root: self.receipts_root(),
        })
    }

    /// What the settlement transaction does: debits per payer, payouts per worker, the fee,
    /// and the per-job successes (aggregated, in a stable order).
    pub fn batch(&self) -> Result<EpochBatch> {
        let mut debits: Vec<(WalletAddress, TokenAmount)> = Vec::new();
        let mut payouts: Vec<(WalletAddress, TokenAmount)> = Vec::new();
        let mut fee = TokenAmount::ZERO;
        let add = |list: &mut Vec<(WalletAddress, TokenAmount)>, who, amount| -> Result<()> {
            match list.iter_mut().find(|(w, _)| *w == who) {
                Some((_, total)) => *total = total.checked_add(amount)?,
                None => list.push((who, amount)),
            }
            Ok(())
        };
        let mut successes = Vec::new();
        for item in &self.items {
            let b = &item.receipt.body;
            // An uncharged job pays nobody from escrow.
            let Some(payer) = item.payer else { continue };
            add(&mut debits, payer, b.payment)?;
            add(&mut payouts, item.worker, b.net)?;
            fee = fee.checked_add(b.fee)?;
            successes.push((item.worker, b.job_id));
        }
        Ok(EpochBatch {
            epoch_id: self.id,
            receipts_root: self.receipts_root(),
            jobs: u32::try_from(self.items.len())
                .map_err(|_| Error::invalid("epoch", "too many receipts"))?,
            debits,
            payouts,
            fee,
            successes,
            slashes: self.slashes.clone(),
        })
    }
}

/// The content of one settlement transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochBatch {
    /// The epoch id.
    pub epoch_id: u64,
    /// The receipts' Merkle root (a field element).
    pub receipts_root: Hash32,
    /// How many receipts.
    pub jobs: u32,
    /// Per payer: what its escrow pays.
    pub debits: Vec<(WalletAddress, TokenAmount)>,
    /// Per worker: what it is paid.
    pub payouts: Vec<(WalletAddress, TokenAmount)>,
    /// The network fee.
    pub fee: TokenAmount,
    /// Per job: the worker credited with a success (and a reputation update).
    pub successes: Vec<(WalletAddress, JobId)>,
    /// Workers to slash.
    pub slashes: Vec<SlashItem>,
}

/// A receipt's place in an anchored epoch (`GET /api/receipts/{id}/inclusion`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    /// The epoch.
    pub epoch_id: u64,
    /// The epoch's state (the root is anchored once `accepted`).
    #[serde(flatten)]
    pub state: EpochState,
    /// The receipt's position among the epoch's leaves.
    pub leaf_index: u64,
    /// [`receipt_hash`] of the receipt.
    pub leaf: Hash32,
    /// Siblings from the leaf up.
    pub path: Vec<PathStep>,
    /// The root as anchored ([`root_as_felt`]).
    pub receipts_root: Hash32,
}

impl InclusionProof {
    /// Checks that `receipt` is the leaf and the path leads to `anchored_root` (as read from
    /// the chain).
    pub fn check(&self, receipt: &Receipt, anchored_root: &Hash32) -> Result<()> {
        if receipt_hash(receipt) != self.leaf {
            return Err(Error::invalid(
                "inclusion proof",
                "its leaf is not this receipt's hash",
            ));
        }
        let root = root_as_felt(&root_from_path(&self.leaf, &self.path));
        if root != self.receipts_root || root != *anchored_root {
            return Err(Error::invalid(
                "inclusion proof",
                "its path does not lead to the root anchored on chain",
            ));
        }
        Ok(())
    }
}

/// How a sent settlement transaction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// Not yet in a block.
    Pending,
    /// Included and succeeded.
    Accepted {
        /// The block.
        block: u64,
    },
    /// Included and reverted, or rejected.
    Reverted {
        /// Why.
        reason: String,
    },
}

/// Sends epochs to the chain.
///
/// # Contract
/// - `settled(epoch_id)` is `Some(block)` once an epoch with that id was accepted on chain
///   (by anyone), `None` before.
/// - `send` submits the whole batch as **one** transaction and returns its hash; the chain
///   refuses a second transaction for an epoch id it has seen (the caller then finds it
///   `settled`). Chain down: [`Error::Unavailable`], nothing sent.
/// - `status` tells a sent transaction's fate.
#[async_trait]
pub trait Settlement: Send + Sync + Debug {
    /// Whether epoch `epoch_id` is settled on chain (the block it was accepted in).
    async fn settled(&self, epoch_id: u64) -> Result<Option<u64>>;
    /// Sends the batch; the transaction hash.
    async fn send(&self, batch: &EpochBatch) -> Result<String>;
    /// The fate of a sent transaction.
    async fn status(&self, tx_hash: &str) -> Result<TxStatus>;
}

/// A shared [`Settlement`].
pub type DynSettlement = std::sync::Arc<dyn Settlement>;

/// Epochs and slashes in the store.
///
/// # Contract
/// - A verified completion's receipt waits for an epoch from the moment it is stored (same
///   transaction); `next_epoch` returns the oldest unfinished epoch (pending, sent or failed)
///   if there is one, else assigns up to `max_items` waiting receipts (completion order) and
///   every waiting slash to a new epoch with the next id — or `None` when nothing waits. Each
///   receipt and slash belongs to at most one epoch, also under concurrent callers.
/// - `epoch_sent` / `epoch_failed` record an attempt; `epoch_accepted` is final: the epoch's
///   payments leave the payers' unsettled amounts, in the same transaction.
#[async_trait]
pub trait SettlementLedger: Send + Sync + Debug {
    /// The epoch to work on (see the contract).
    async fn next_epoch(&self, max_items: u32, now: Timestamp) -> Result<Option<Epoch>>;
    /// The oldest unfinished epoch (pending, sent or failed), without assembling a new one.
    async fn unfinished_epoch(&self) -> Result<Option<Epoch>>;
    /// Records that epoch `id` was sent in `tx_hash`.
    async fn epoch_sent(&self, id: u64, tx_hash: &str, now: Timestamp) -> Result<()>;
    /// Records that epoch `id` was accepted in `block` (final).
    async fn epoch_accepted(
        &self,
        id: u64,
        tx_hash: &str,
        block: u64,
        now: Timestamp,
    ) -> Result<()>;
    /// Records a failed attempt (retried under the same id).
    async fn epoch_failed(&self, id: u64, reason: &str, now: Timestamp) -> Result<()>;
    /// One epoch.
    async fn epoch(&self, id: u64) -> Result<Option<Epoch>>;
    /// The epoch a receipt was assigned to.
    async fn receipt_epoch(&self, receipt: &ReceiptId) -> Result<Option<u64>>;
    /// Records a slash for the next epoch.
    async fn record_slash(&self, slash: &SlashItem) -> Result<()>;
    /// What waits for settlement (receipts not in an accepted epoch, slashes not in any).
    async fn settlement_backlog(&self) -> Result<Backlog>;
    /// A node's receipts not yet in an accepted epoch: how many, their net, the oldest.
    async fn pending_settlement(&self, node: &NodeId) -> Result<PendingSettlement>;
}

/// A node's earnings that are verified but not yet settled on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PendingSettlement {
    /// Receipts waiting.
    pub receipts: u64,
    /// Their net amounts, summed exactly.
    pub net: TokenAmount,
    /// When the oldest was completed.
    pub oldest: Option<Timestamp>,
}

impl PendingSettlement {
    /// The sums of `receipts`.
    pub fn of<'a>(receipts: impl IntoIterator<Item = &'a Receipt>) -> Result<Self> {
        let mut p = Self::default();
        for r in receipts {
            p.receipts += 1;
            p.net = p.net.checked_add(r.body.net)?;
            p.oldest = Some(
                p.oldest
                    .map_or(r.body.completed_at, |o| o.min(r.body.completed_at)),
            );
        }
        Ok(p)
    }
}

/// What waits for settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Backlog {
    /// Receipts not yet in an accepted epoch.
    pub receipts: u64,
    /// When the oldest of them was completed.
    pub oldest: Option<Timestamp>,
    /// Slashes not yet in an epoch.
    pub slashes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> Hash32 {
        Hash32([i; 32])
    }

    #[test]
    fn every_leaf_proves_its_inclusion_and_nothing_else_does() {
        for n in 1..=9u8 {
            let leaves: Vec<Hash32> = (0..n).map(leaf).collect();
            let root = merkle_root(&leaves).expect("root");
            for i in 0..n as usize {
                let path = merkle_path(&leaves, i).expect("path");
                assert_eq!(root_from_path(&leaves[i], &path), root, "n={n} i={i}");
                assert_ne!(root_from_path(&leaf(200), &path), root);
            }
            assert!(merkle_path(&leaves, n as usize).is_none());
        }
        assert!(merkle_root(&[]).is_none());
        let r = root_as_felt(&Hash32([0xff; 32]));
        assert_eq!(r.0[0], 0x03);
    }
}
