//! Funded jobs: a job is accepted only when its payer — a Starknet account that signed the
//! submission — can cover it, and the payment is then **reserved** until the job completes
//! (spent) or fails (released).
//!
//! Where the money is:
//! - with a chain, in the `JobEscrow` contract: the payer's spendable escrow (balance less
//!   requested withdrawals) must cover what is reserved and what was spent but is not yet
//!   settled on chain ([`FundingLimit::Escrow`]);
//! - without one, in a local credit an operator sets per account
//!   (`bitsage-coordinator credit set`), with the account's Stark public key to check its
//!   signatures ([`FundingLimit::LocalCredit`]).

use std::fmt::Debug;

use async_trait::async_trait;
use blake2::{Blake2s256, Digest};
use serde::{Deserialize, Serialize};

use crate::crypto::{CanonicalWriter, Hash32};
use crate::message::SubmitJobRequest;
use crate::wallet::FeltHex;
use crate::{Error, JobKind, Timestamp, TokenAmount, WalletAddress};

/// Domain tag of a job's digest (what a payer's signature names).
pub const JOB_DIGEST_DOMAIN: &[u8] = b"bitsage/job-kind/v1";
/// Domain tag of a payment claim's canonical bytes (its replay key).
pub const PAYMENT_DOMAIN: &str = "bitsage/payment/v1";

/// The digest of a job's statement: BLAKE2s-256(domain ‖ canonical JSON of the kind).
pub fn job_digest(kind: &JobKind) -> Hash32 {
    let mut h = Blake2s256::new();
    h.update(JOB_DIGEST_DOMAIN);
    // A job kind holds plain numbers and strings: serialisation cannot fail.
    h.update(serde_json::to_vec(kind).unwrap_or_default());
    Hash32(h.finalize().into())
}

/// What a paying account signs to submit a job (SNIP-12 `BitSageJob`): the job, what it
/// pays, its attempt limit, on which network, a nonce and when — accepted once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentClaim {
    /// The paying account.
    pub payer: WalletAddress,
    /// The deployment's network name.
    pub network: String,
    /// [`job_digest`] of the job.
    pub job_digest: Hash32,
    /// The payment, base units.
    pub payment: TokenAmount,
    /// The attempt limit.
    pub max_attempts: u32,
    /// The client's nonce (any value; a signed submission is accepted once).
    pub nonce: u64,
    /// When the client signed it.
    pub sent_at: Timestamp,
}

impl PaymentClaim {
    /// The claim a submission states on `network` (its attempt limit resolved to `max_attempts`).
    pub fn of(req: &SubmitJobRequest, network: &str, max_attempts: u32) -> Self {
        Self {
            payer: req.payer,
            network: network.to_string(),
            job_digest: job_digest(&req.job),
            payment: req.payment,
            max_attempts,
            nonce: req.nonce,
            sent_at: req.sent_at,
        }
    }

    /// Canonical bytes (the replay log's key).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = CanonicalWriter::new(PAYMENT_DOMAIN);
        w.field(self.payer.as_bytes())
            .field(self.network.as_bytes())
            .field(&self.job_digest.0)
            .field(self.payment.to_string().as_bytes())
            .field(&self.max_attempts.to_be_bytes())
            .field(&self.nonce.to_be_bytes())
            .field(&self.sent_at.timestamp_micros().to_be_bytes());
        w.finish()
    }
}

/// Where a payer's limit comes from.
///
/// # Contract
/// - `limit` answers for any account (a never-seen account has nothing to spend, not an
///   error); a source that cannot answer is [`Error::Unavailable`] — the submission is then
///   refused, never accepted unbacked.
#[async_trait]
pub trait FundingSource: Send + Sync + Debug {
    /// The limit `payer`'s new reservations are checked against.
    async fn limit(&self, payer: &WalletAddress) -> Result<FundingLimit, Error>;
}

/// A shared [`FundingSource`].
pub type DynFundingSource = std::sync::Arc<dyn FundingSource>;

/// Local credit only (no chain): the store's credit, set by an operator, is the limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalCredit;

#[async_trait]
impl FundingSource for LocalCredit {
    async fn limit(&self, _payer: &WalletAddress) -> Result<FundingLimit, Error> {
        Ok(FundingLimit::LocalCredit)
    }
}

/// A paying account's books in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerAccount {
    /// The account.
    pub account: WalletAddress,
    /// The account's Stark public key (local credit: its submissions are checked with it).
    pub public_key: Option<FeltHex>,
    /// The local credit an operator granted (without a chain).
    pub credit: TokenAmount,
    /// Payments of queued and leased jobs.
    pub reserved: TokenAmount,
    /// Payments of completed jobs not yet settled on chain.
    pub unsettled: TokenAmount,
    /// Payments of completed jobs, all time.
    pub spent: TokenAmount,
    /// Last change.
    pub updated_at: Timestamp,
}

impl PayerAccount {
    /// A fresh account with nothing granted, reserved or spent.
    pub fn empty(account: WalletAddress, at: Timestamp) -> Self {
        Self {
            account,
            public_key: None,
            credit: TokenAmount::ZERO,
            reserved: TokenAmount::ZERO,
            unsettled: TokenAmount::ZERO,
            spent: TokenAmount::ZERO,
            updated_at: at,
        }
    }

    /// What may still be reserved under `limit`.
    pub fn available(&self, limit: &FundingLimit) -> TokenAmount {
        let (cap, used) = match limit {
            FundingLimit::LocalCredit => (self.credit, self.reserved.checked_add(self.spent)),
            FundingLimit::Escrow { spendable } => {
                (*spendable, self.reserved.checked_add(self.unsettled))
            }
        };
        match used {
            Ok(used) => cap.checked_sub(used).unwrap_or(TokenAmount::ZERO),
            Err(_) => TokenAmount::ZERO,
        }
    }

    /// Reserves `payment` under `limit`, or refuses with [`Error::InsufficientFunds`].
    pub fn reserve(&mut self, payment: TokenAmount, limit: &FundingLimit) -> Result<(), Error> {
        let available = self.available(limit);
        if payment > available {
            return Err(Error::InsufficientFunds(format!(
                "account {} can cover {} ({}) but the job pays {} ({}); {}",
                self.account,
                available,
                available.format_sage(),
                payment,
                payment.format_sage(),
                match limit {
                    FundingLimit::LocalCredit =>
                        "ask the operator for more credit (`bitsage-coordinator credit set`)",
                    FundingLimit::Escrow { .. } => "deposit more SAGE into the JobEscrow contract",
                }
            )));
        }
        self.reserved = self.reserved.checked_add(payment)?;
        Ok(())
    }

    /// A reserved job completed: its payment is spent (and unsettled until an epoch settles it).
    pub fn spend(&mut self, payment: TokenAmount) -> Result<(), Error> {
        self.reserved = self.reserved.checked_sub(payment)?;
        self.spent = self.spent.checked_add(payment)?;
        self.unsettled = self.unsettled.checked_add(payment)?;
        Ok(())
    }

    /// A reserved job failed for good: its payment is free again.
    pub fn release(&mut self, payment: TokenAmount) -> Result<(), Error> {
        self.reserved = self.reserved.checked_sub(payment)?;
        Ok(())
    }
}

/// How much a payer may reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FundingLimit {
    /// The store's local credit (no chain).
    LocalCredit,
    /// The payer's spendable escrow on chain (balance less requested withdrawals), as read.
    Escrow {
        /// What the escrow holds for new work.
        spendable: TokenAmount,
    },
}

/// A job's payer and the limit it was accepted under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funding {
    /// The paying account.
    pub payer: WalletAddress,
    /// The limit checked at submission.
    pub limit: FundingLimit,
}
