//! Exponential backoff with jitter, for reconnecting to a coordinator that is down or
//! restarting.

use std::time::Duration;

use rand::Rng;

/// Doubles a delay from `initial` up to `max` on every failure; each returned delay is drawn
/// uniformly from the upper half of the current step ("equal jitter"), so agents that lost
/// the same coordinator at the same moment do not come back in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` (at least 1 ms) and never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The delay before the next attempt; doubles the step for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        let half = step / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::thread_rng().gen_range(0..=jitter_nanos))
    }

    /// Back to the initial step (after a success).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays[9] >= Duration::from_millis(500), "{delays:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
