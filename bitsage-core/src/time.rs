//! Timestamps. All times are UTC with microsecond precision, the precision every store keeps,
//! so a value read back equals the value written.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// A point in time (UTC, microsecond precision by convention; see [`now`]).
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to whole microseconds.
pub fn now() -> Timestamp {
    truncate_micros(Utc::now())
}

/// `t` truncated to whole microseconds.
pub fn truncate_micros(t: Timestamp) -> Timestamp {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// Microseconds since the Unix epoch (the SQLite encoding).
pub fn to_micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

/// The inverse of [`to_micros`]; `None` when out of chrono's range.
pub fn from_micros(us: i64) -> Option<Timestamp> {
    DateTime::from_timestamp_micros(us)
}

/// `t` plus `d`; `None` when the sum leaves chrono's range (or `d` exceeds `TimeDelta`'s).
pub fn after(t: Timestamp, d: std::time::Duration) -> Option<Timestamp> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
}

/// Checks that a signed message's `sent_at` lies within `max_skew` of `now` (a
/// [`crate::Error::Signature`] otherwise).
pub fn check_skew(
    sent_at: Timestamp,
    now: Timestamp,
    max_skew: std::time::Duration,
) -> crate::Result<()> {
    let skew = now.signed_duration_since(sent_at).abs();
    let max = TimeDelta::from_std(max_skew).unwrap_or(TimeDelta::MAX);
    if skew > max {
        return Err(crate::Error::Signature(format!(
            "sent_at is more than {} s away from the server's clock",
            max_skew.as_secs()
        )));
    }
    Ok(())
}

/// A half-open time interval `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimeWindow {
    /// Inclusive start.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub from: Timestamp,
    /// Exclusive end.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub to: Timestamp,
}

/// The earliest time a window may name: the Unix epoch.
pub fn earliest() -> Timestamp {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The latest time a window may name: the end of year 9999 (within every store's range).
pub fn latest() -> Timestamp {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Checks that `t` lies between [`earliest`] and [`latest`] (what every store can hold), so an
/// extreme value is a 400 naming `what` rather than an error deep in a database.
pub fn check_range(what: &'static str, t: Timestamp) -> crate::Result<()> {
    if t < earliest() || t > latest() {
        return Err(crate::Error::invalid(
            what,
            format!(
                "{} is outside 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z",
                t.to_rfc3339()
            ),
        ));
    }
    Ok(())
}

impl TimeWindow {
    /// A window; `from` must not be after `to`, both within [`earliest`] ..= [`latest`].
    pub fn new(from: Timestamp, to: Timestamp) -> crate::Result<Self> {
        check_range("start of the time window (from)", from)?;
        check_range("end of the time window (to)", to)?;
        if from > to {
            return Err(crate::Error::invalid(
                "time window",
                format!("start {from} is after end {to}"),
            ));
        }
        Ok(Self { from, to })
    }

    /// Whether `t` lies in `[from, to)`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }
}
