//! Replay protection for signed node messages that carry no stored sequence (lease, complete,
//! fail): each is accepted **once** across every coordinator sharing the [`ReplayLog`] and
//! across restarts. A message is keyed by a digest of its signed, domain-tagged canonical
//! bytes and kept until its `sent_at` could no longer pass the clock-skew check (plus a
//! margin); past that the skew check refuses it on its own, so the entry can go.

use std::time::Duration;

use blake2::{Blake2s256, Digest};

use crate::crypto::Hash32;
use crate::{Error, ReplayLog, Result, Timestamp};

/// Extra time an entry is kept beyond the skew window (clocks of coordinators differ a little).
pub const KEEP_MARGIN: Duration = Duration::from_secs(60);

/// BLAKE2s-256 of a message's signed bytes.
pub fn message_digest(signed_bytes: &[u8]) -> Hash32 {
    Hash32(Blake2s256::digest(signed_bytes).into())
}

/// How long the entry of a message sent at `sent_at` is kept.
pub fn keep_until(sent_at: Timestamp, max_skew: Duration) -> Timestamp {
    crate::time::after(sent_at, max_skew.saturating_add(KEEP_MARGIN))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// Accepts the message with these signed bytes the first time; a [`Error::Signature`] replay
/// error afterwards. Call it after the signature and the skew check passed.
pub async fn accept_once(
    log: &dyn ReplayLog,
    signed_bytes: &[u8],
    sent_at: Timestamp,
    max_skew: Duration,
) -> Result<()> {
    let digest = message_digest(signed_bytes);
    if log
        .remember_message(&digest, keep_until(sent_at, max_skew))
        .await?
    {
        Ok(())
    } else {
        Err(Error::Signature(
            "this signed request was already used (replay)".into(),
        ))
    }
}
