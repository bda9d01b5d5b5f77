//! [`InMemorySettlement`]: a settlement contract's books in process memory — for embedding,
//! demos and tests. It stands for a chain (epochs refused once seen, one "block" per
//! accepted epoch, payouts and slashes recorded); it does not pretend to be one.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bitsage_core::settlement::{EpochBatch, Settlement, TxStatus};
use bitsage_core::{Error, JobId, Result, TokenAmount, WalletAddress};

#[derive(Debug, Default)]
struct Books {
    block: u64,
    /// Epoch id → the block it was accepted in.
    epochs: HashMap<u64, u64>,
    /// Transaction hash → its fate.
    txs: HashMap<String, TxStatus>,
    paid: HashMap<WalletAddress, TokenAmount>,
    debited: HashMap<WalletAddress, TokenAmount>,
    fees: TokenAmount,
    successes: Vec<(WalletAddress, JobId)>,
    slashes: Vec<(WalletAddress, JobId, String)>,
    roots: HashMap<u64, bitsage_core::crypto::Hash32>,
    unavailable: Option<String>,
}

/// Settlement books in memory: epochs refused once seen, one "block" per accepted epoch,
/// payouts, debits, fees, successes and slashes recorded — for embedding, demos and tests.
#[derive(Debug, Default)]
pub struct InMemorySettlement {
    books: Mutex<Books>,
}

impl InMemorySettlement {
    /// Empty books.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every call fail as `Unavailable` with `reason` (`None`: back).
    pub fn set_unavailable(&self, reason: Option<String>) {
        self.lock().unavailable = reason;
    }

    /// What `worker` was paid in all.
    pub fn paid_to(&self, worker: &WalletAddress) -> TokenAmount {
        self.lock().paid.get(worker).copied().unwrap_or_default()
    }

    /// What `payer`'s escrow paid in all.
    pub fn debited_from(&self, payer: &WalletAddress) -> TokenAmount {
        self.lock().debited.get(payer).copied().unwrap_or_default()
    }

    /// The network fee collected in all.
    pub fn fees(&self) -> TokenAmount {
        self.lock().fees
    }

    /// Jobs recorded as successes, in order.
    pub fn successes(&self) -> Vec<(WalletAddress, JobId)> {
        self.lock().successes.clone()
    }

    /// Slashes, in order.
    pub fn slashes(&self) -> Vec<(WalletAddress, JobId, String)> {
        self.lock().slashes.clone()
    }

    /// The receipts root anchored for `epoch`.
    pub fn root(&self, epoch: u64) -> Option<bitsage_core::crypto::Hash32> {
        self.lock().roots.get(&epoch).copied()
    }

    fn check(books: &Books) -> Result<()> {
        match &books.unavailable {
            Some(reason) => Err(Error::Unavailable {
                source_name: "memory-settlement".into(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Settlement for InMemorySettlement {
    async fn settled(&self, epoch_id: u64) -> Result<Option<u64>> {
        let books = self.lock();
        Self::check(&books)?;
        Ok(books.epochs.get(&epoch_id).copied())
    }

    async fn send(&self, batch: &EpochBatch) -> Result<String> {
        let mut b = self.lock();
        Self::check(&b)?;
        let tx = format!("0x{:x}", b.txs.len() + 1);
        if b.epochs.contains_key(&batch.epoch_id) {
            b.txs.insert(
                tx.clone(),
                TxStatus::Reverted {
                    reason: "epoch already settled".into(),
                },
            );
            return Ok(tx);
        }
        let debited = TokenAmount::checked_sum(batch.debits.iter().map(|(_, a)| *a))?;
        let paid = TokenAmount::checked_sum(batch.payouts.iter().map(|(_, a)| *a))?;
        if debited != paid.checked_add(batch.fee)? {
            b.txs.insert(
                tx.clone(),
                TxStatus::Reverted {
                    reason: "debits != payouts + fee".into(),
                },
            );
            return Ok(tx);
        }
        b.block += 1;
        let block = b.block;
        for (w, a) in &batch.payouts {
            let e = b.paid.entry(*w).or_default();
            *e = e.checked_add(*a)?;
        }
        for (p, a) in &batch.debits {
            let e = b.debited.entry(*p).or_default();
            *e = e.checked_add(*a)?;
        }
        b.fees = b.fees.checked_add(batch.fee)?;
        b.successes.extend(batch.successes.iter().cloned());
        b.slashes.extend(
            batch
                .slashes
                .iter()
                .map(|s| (s.worker, s.job_id, s.reason.clone())),
        );
        b.roots.insert(batch.epoch_id, batch.receipts_root);
        b.epochs.insert(batch.epoch_id, block);
        b.txs.insert(tx.clone(), TxStatus::Accepted { block });
        Ok(tx)
    }

    async fn status(&self, tx_hash: &str) -> Result<TxStatus> {
        let b = self.lock();
        Self::check(&b)?;
        b.txs
            .get(tx_hash)
            .cloned()
            .ok_or_else(|| Error::not_found("transaction", tx_hash))
    }
}
