//! Replay protection for signed agent requests that do not carry a stored sequence (lease,
//! complete, fail): a signature is accepted once within the clock-skew window; outside the
//! window the `sent_at` check refuses it anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitsage_core::crypto::SignatureBytes;
use bitsage_core::Error;

/// Most signatures remembered at once; past it, new requests are refused (503-like
/// `Unavailable`) rather than letting memory grow without bound.
pub const MAX_REMEMBERED: usize = 1_000_000;

/// Remembers signatures for twice the clock-skew window. Cheap to clone (shared).
///
/// One coordinator process: coordinators sharing a PostgreSQL store each keep their own
/// memory, so a request replayed to *another* instance is caught only by the store's own
/// checks (a completed job cannot complete twice, a lease id is single-use).
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    inner: Arc<Mutex<HashMap<[u8; 64], Instant>>>,
    keep_for: Duration,
}

impl ReplayGuard {
    /// A guard for messages whose `sent_at` may be `max_skew` off.
    pub fn new(max_skew: Duration) -> Self {
        Self {
            inner: Arc::default(),
            keep_for: max_skew.saturating_mul(2),
        }
    }

    /// Accepts `sig` the first time it is seen; `Signature` error on a replay.
    pub fn check(&self, sig: &SignatureBytes) -> Result<(), Error> {
        let now = Instant::now();
        let mut seen = self
            .inner
            .lock()
            .map_err(|_| Error::Conflict("replay guard poisoned".into()))?;
        if seen.len() >= MAX_REMEMBERED / 2 {
            seen.retain(|_, expiry| *expiry > now);
        }
        if let Some(expiry) = seen.get(&sig.0) {
            if *expiry > now {
                return Err(Error::Signature(
                    "this signed request was already used (replay)".into(),
                ));
            }
        }
        if seen.len() >= MAX_REMEMBERED {
            return Err(Error::Unavailable {
                source_name: "replay guard".into(),
                reason: "too many requests in the clock-skew window; retry later".into(),
            });
        }
        seen.insert(sig.0, now + self.keep_for);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_accepted_once() {
        let g = ReplayGuard::new(Duration::from_secs(60));
        let s = SignatureBytes([7; 64]);
        g.check(&s).unwrap();
        assert!(matches!(g.check(&s), Err(Error::Signature(_))));
        g.check(&SignatureBytes([8; 64])).unwrap();
    }
}
