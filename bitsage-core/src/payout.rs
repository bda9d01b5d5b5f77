//! Payout readiness: per node and calendar month (UTC), the net earned against the
//! deployment's payout threshold, and an admin's mark that the period is ready to pay; and
//! the chain-based reward estimate (stake × the staking contract's APY), always labelled as
//! an estimate.

use serde::{Deserialize, Serialize};

use crate::amount::TokenAmount;
use crate::ids::NodeId;
use crate::time::{TimeWindow, Timestamp};
use crate::Error;

/// An admin's mark that a node's period is ready to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutMark {
    /// The node.
    pub node_id: NodeId,
    /// The period, `YYYY-MM` (UTC).
    pub period: String,
    /// Who marked it.
    pub marked_by: String,
    /// When.
    pub marked_at: Timestamp,
    /// The net earned in the period when it was marked.
    pub net: TokenAmount,
}

/// Where a period stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PayoutState {
    /// Earned less than the threshold.
    BelowThreshold,
    /// At or above the threshold, not yet marked.
    Eligible,
    /// Marked ready by an admin.
    MarkedReady,
}

impl PayoutState {
    /// The snake_case name (CSV).
    pub fn as_str(&self) -> &'static str {
        match self {
            PayoutState::BelowThreshold => "below_threshold",
            PayoutState::Eligible => "eligible",
            PayoutState::MarkedReady => "marked_ready",
        }
    }
}

/// One node's month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PayoutPeriod {
    /// `YYYY-MM` (UTC).
    pub period: String,
    /// Net earned in it (ledger), base units.
    pub net: TokenAmount,
    /// The threshold it is held against, base units.
    pub threshold: TokenAmount,
    /// Below threshold, eligible, or marked ready.
    pub state: PayoutState,
    /// Who marked it ready.
    pub marked_by: Option<String>,
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::TimestampSchema>))]
    pub marked_at: Option<Timestamp>,
}

/// The period `t` falls in, `YYYY-MM`.
pub fn period_of(t: Timestamp) -> String {
    t.format("%Y-%m").to_string()
}

/// The window of a `YYYY-MM` period.
pub fn period_window(period: &str) -> crate::Result<TimeWindow> {
    let bad = || Error::invalid("period", "must be YYYY-MM (a UTC month)");
    let (y, m) = period.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let start = |y: i32, m: u32| {
        chrono::NaiveDate::from_ymd_opt(y, m, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc())
    };
    let from = start(y, m).ok_or_else(bad)?;
    let to = if m == 12 {
        start(y + 1, 1)
    } else {
        start(y, m + 1)
    }
    .ok_or_else(bad)?;
    crate::time::check_range("period", from)?;
    TimeWindow::new(from, to)
}

/// The `n` periods ending with the one `now` is in, newest first.
pub fn recent_periods(now: Timestamp, n: u32) -> Vec<String> {
    use chrono::Datelike;
    let (mut y, mut m) = (now.year(), now.month());
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push(format!("{y:04}-{m:02}"));
        if m == 1 {
            y -= 1;
            m = 12;
        } else {
            m -= 1;
        }
    }
    out
}

/// What `amount` staked at `apy_bps` (basis points a year) accrues over `secs` seconds, as
/// the staking contract computes it: `amount × apy_bps × secs / (10 000 × 365 days)`.
pub fn reward_estimate(amount: TokenAmount, apy_bps: u64, secs: u64) -> crate::Result<TokenAmount> {
    use primitive_types::U256;
    let year = U256::from(365u64 * 86_400);
    let num = amount
        .as_u256()
        .checked_mul(U256::from(apy_bps))
        .and_then(|v| v.checked_mul(U256::from(secs)))
        .ok_or_else(|| Error::Overflow("reward estimate"))?;
    Ok(TokenAmount::from_u256(num / (U256::from(10_000u64) * year)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn periods_and_estimates() {
        let w = period_window("2026-12").unwrap();
        assert_eq!(w.from, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(w.to, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        for bad in [
            "2026-13", "26-01", "2026/01", "2026-1", "", "2026-+1", "+026-01",
        ] {
            assert!(period_window(bad).is_err(), "{bad}");
        }
        let now = Utc.with_ymd_and_hms(2026, 2, 10, 0, 0, 0).unwrap();
        assert_eq!(recent_periods(now, 3), ["2026-02", "2026-01", "2025-12"]);
        assert_eq!(period_of(now), "2026-02");
        // 1000 SAGE at 10 % for a year: 100 SAGE.
        let sage = TokenAmount::parse_units("1000", 18).unwrap();
        let est = reward_estimate(sage, 1_000, 365 * 86_400).unwrap();
        assert_eq!(est, TokenAmount::parse_units("100", 18).unwrap());
    }
}
