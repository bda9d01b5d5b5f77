//! The earnings ledger: what each node earned, exactly.

use serde::{Deserialize, Serialize};

use crate::amount::TokenAmount;
use crate::ids::{EntryId, JobId, NodeId};
use crate::time::Timestamp;
use crate::Error;

/// One credit to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarningEntry {
    /// The entry's id (idempotency key: crediting it twice has no effect).
    pub id: EntryId,
    /// The node credited.
    pub node_id: NodeId,
    /// The job paid for.
    pub job_id: JobId,
    /// What the client paid.
    pub gross: TokenAmount,
    /// Network fee kept.
    pub fee: TokenAmount,
    /// `gross − fee`: what the node earned.
    pub net: TokenAmount,
    /// When credited.
    pub credited_at: Timestamp,
}

/// The payment arithmetic, in one place: the network's fee (`fee_bps` basis points of
/// `payment`, rounded down) and what the node earns (`payment − fee`), exactly.
pub fn split_payment(
    payment: TokenAmount,
    fee_bps: u16,
) -> Result<(TokenAmount, TokenAmount), Error> {
    if fee_bps > 10_000 {
        return Err(Error::invalid("network fee", "above 100 %"));
    }
    let fee = payment.mul_bps(fee_bps)?;
    Ok((fee, payment.checked_sub(fee)?))
}

impl EarningEntry {
    /// A credit of `gross` with a fee of `fee_bps` basis points ([`split_payment`]).
    pub fn with_fee_bps(
        node_id: NodeId,
        job_id: JobId,
        gross: TokenAmount,
        fee_bps: u16,
        credited_at: Timestamp,
    ) -> Result<Self, Error> {
        let (fee, net) = split_payment(gross, fee_bps)?;
        Ok(Self {
            id: EntryId::new(),
            node_id,
            job_id,
            gross,
            fee,
            net,
            credited_at,
        })
    }

    /// Checks `net = gross − fee`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.gross.checked_sub(self.fee)? != self.net {
            return Err(Error::invalid(
                "earning entry",
                "net is not gross minus fee",
            ));
        }
        Ok(())
    }
}

/// Sums over a set of entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarningsTotal {
    /// Entries summed.
    pub entries: u64,
    /// Sum of gross.
    pub gross: TokenAmount,
    /// Sum of fees.
    pub fee: TokenAmount,
    /// Sum of net.
    pub net: TokenAmount,
}

impl EarningsTotal {
    /// Adds one entry (checked).
    pub fn add(&mut self, e: &EarningEntry) -> Result<(), Error> {
        self.add_amounts(e.gross, e.fee, e.net)
    }

    /// Adds one entry's amounts (checked).
    pub fn add_amounts(
        &mut self,
        gross: TokenAmount,
        fee: TokenAmount,
        net: TokenAmount,
    ) -> Result<(), Error> {
        self.entries += 1;
        self.gross = self.gross.checked_add(gross)?;
        self.fee = self.fee.checked_add(fee)?;
        self.net = self.net.checked_add(net)?;
        Ok(())
    }
}

/// Earnings in one UTC calendar day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyEarnings {
    /// The day (`YYYY-MM-DD`, UTC).
    pub day: chrono::NaiveDate,
    /// The sums.
    pub total: EarningsTotal,
}

/// Groups entries by UTC day, oldest first, with exact sums.
pub fn daily_totals<'a, I>(entries: I) -> Result<Vec<DailyEarnings>, Error>
where
    I: IntoIterator<Item = &'a EarningEntry>,
{
    let mut by_day: std::collections::BTreeMap<chrono::NaiveDate, EarningsTotal> =
        Default::default();
    for e in entries {
        by_day
            .entry(e.credited_at.date_naive())
            .or_default()
            .add(e)?;
    }
    Ok(by_day
        .into_iter()
        .map(|(day, total)| DailyEarnings { day, total })
        .collect())
}
