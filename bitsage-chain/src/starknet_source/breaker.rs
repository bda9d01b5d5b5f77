//! A circuit breaker for the RPC endpoint.
//!
//! - **Closed**: calls go through; `failures` consecutive failed reads open it.
//! - **Open**: calls are refused at once (the caller serves a stale value or says why it is
//!   unavailable) until the cooldown has passed.
//! - **Half-open**: after the cooldown, exactly one trial call goes through; its success closes
//!   the breaker, its failure opens it for another cooldown. Other calls meanwhile are refused
//!   as if open.
//!
//! Time is passed in (`now`), so the state machine is tested without sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// The cooldown ended: the next call is a trial.
    HalfOpen,
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// A call the breaker refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused {
    /// How many consecutive failures opened the breaker.
    pub failures: u32,
    /// How long until a trial call is allowed (zero while a trial is in flight).
    pub retry_in: Duration,
}

/// What kind of call the breaker admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// An ordinary call (breaker closed): retries allowed.
    Normal,
    /// The one trial call of a half-open breaker: no retries.
    Trial,
}

/// The breaker. Cheap to consult; one per endpoint.
#[derive(Debug)]
pub(super) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures (at least 1) for
    /// `cooldown`.
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a plain value: a panic elsewhere cannot leave it half-written.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state at `now` (an open breaker whose cooldown has passed reads as half-open).
    pub(super) fn state(&self, now: Instant) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call at `now`.
    pub(super) fn admit(&self, now: Instant) -> Result<Admission, Refused> {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => Ok(Admission::Normal),
            Inner::Open { until } if now < until => Err(Refused {
                failures: self.threshold,
                retry_in: until - now,
            }),
            Inner::Open { .. }
            | Inner::HalfOpen {
                trial_in_flight: false,
            } => {
                *inner = Inner::HalfOpen {
                    trial_in_flight: true,
                };
                Ok(Admission::Trial)
            }
            Inner::HalfOpen {
                trial_in_flight: true,
            } => Err(Refused {
                failures: self.threshold,
                retry_in: Duration::ZERO,
            }),
        }
    }

    /// Records that an admitted call reached the endpoint.
    pub(super) fn success(&self, admission: Admission) {
        let mut inner = self.lock();
        match (*inner, admission) {
            // A late normal call finishing after the breaker opened says nothing about now.
            (Inner::Open { .. }, Admission::Normal)
            | (
                Inner::HalfOpen {
                    trial_in_flight: true,
                },
                Admission::Normal,
            ) => {}
            _ => *inner = Inner::Closed { failures: 0 },
        }
    }

    /// Records that an admitted call could not reach the endpoint, at `now`.
    pub(super) fn failure(&self, admission: Admission, now: Instant) {
        let mut inner = self.lock();
        let open = Inner::Open {
            until: now + self.cooldown,
        };
        match (*inner, admission) {
            (_, Admission::Trial) => *inner = open,
            (Inner::Closed { failures }, Admission::Normal) => {
                let failures = failures.saturating_add(1);
                *inner = if failures >= self.threshold {
                    open
                } else {
                    Inner::Closed { failures }
                };
            }
            // Already open or trying: a late failure changes nothing.
            (_, Admission::Normal) => {}
        }
    }

    /// Gives an admitted trial back without an outcome (its caller gave up, e.g. was
    /// cancelled), so the next caller may try.
    pub(super) fn abandon(&self, admission: Admission) {
        if admission == Admission::Trial {
            let mut inner = self.lock();
            if let Inner::HalfOpen {
                trial_in_flight: true,
            } = *inner
            {
                *inner = Inner::HalfOpen {
                    trial_in_flight: false,
                };
            }
        }
    }
}

/// An admitted call; dropping it without [`Permit::success`] or [`Permit::failure`] abandons
/// it (a cancelled trial frees the half-open slot).
#[derive(Debug)]
pub(super) struct Permit<'a> {
    breaker: &'a Breaker,
    admission: Admission,
    done: bool,
}

impl<'a> Permit<'a> {
    /// Asks `breaker` to make a call at `now`.
    pub(super) fn acquire(breaker: &'a Breaker, now: Instant) -> Result<Self, Refused> {
        breaker.admit(now).map(|admission| Self {
            breaker,
            admission,
            done: false,
        })
    }

    /// The kind of call admitted.
    pub(super) fn admission(&self) -> Admission {
        self.admission
    }

    /// The call reached the endpoint.
    pub(super) fn success(mut self) {
        self.done = true;
        self.breaker.success(self.admission);
    }

    /// The call could not reach the endpoint.
    pub(super) fn failure(mut self, now: Instant) {
        self.done = true;
        self.breaker.failure(self.admission, now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.abandon(self.admission);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(10);

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = Breaker::new(3, COOLDOWN);
        let t0 = Instant::now();
        for _ in 0..2 {
            let a = b.admit(t0).expect("closed");
            b.failure(a, t0);
            assert_eq!(b.state(t0), BreakerState::Closed);
        }
        let a = b.admit(t0).expect("closed");
        b.failure(a, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        let refused = b.admit(t0 + Duration::from_secs(3)).expect_err("open");
        assert_eq!(refused.failures, 3);
        assert_eq!(refused.retry_in, Duration::from_secs(7));
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, COOLDOWN);
        let t0 = Instant::now();
        let a = b.admit(t0).expect("closed");
        b.failure(a, t0);
        let a = b.admit(t0).expect("closed");
        b.success(a);
        let a = b.admit(t0).expect("closed");
        b.failure(a, t0);
        assert_eq!(
            b.state(t0),
            BreakerState::Closed,
            "failures were not consecutive"
        );
    }

    #[test]
    fn half_open_admits_one_trial_whose_outcome_decides() {
        let b = Breaker::new(1, COOLDOWN);
        let t0 = Instant::now();
        let a = b.admit(t0).expect("closed");
        b.failure(a, t0);
        let later = t0 + COOLDOWN;
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        let trial = b.admit(later).expect("trial");
        assert_eq!(trial, Admission::Trial);
        let refused = b.admit(later).expect_err("only one trial");
        assert_eq!(refused.retry_in, Duration::ZERO);
        // The trial fails: open for another cooldown.
        b.failure(trial, later);
        assert_eq!(b.state(later), BreakerState::Open);
        assert!(b.admit(later + Duration::from_secs(9)).is_err());
        // The next trial succeeds: closed.
        let again = later + COOLDOWN;
        let trial = b.admit(again).expect("trial");
        b.success(trial);
        assert_eq!(b.state(again), BreakerState::Closed);
        assert_eq!(b.admit(again), Ok(Admission::Normal));
    }

    #[test]
    fn an_abandoned_trial_frees_the_slot() {
        let b = Breaker::new(1, COOLDOWN);
        let t0 = Instant::now();
        let a = b.admit(t0).expect("closed");
        b.failure(a, t0);
        let later = t0 + COOLDOWN;
        {
            let permit = Permit::acquire(&b, later).expect("trial");
            assert_eq!(permit.admission(), Admission::Trial);
            // dropped without an outcome
        }
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        let permit = Permit::acquire(&b, later).expect("a new trial");
        permit.success();
        assert_eq!(b.state(later), BreakerState::Closed);
    }

    #[test]
    fn late_normal_outcomes_do_not_override_an_open_breaker() {
        let b = Breaker::new(1, COOLDOWN);
        let t0 = Instant::now();
        let slow = b.admit(t0).expect("closed");
        let fast = b.admit(t0).expect("closed");
        b.failure(fast, t0);
        b.success(slow);
        assert_eq!(b.state(t0), BreakerState::Open);
    }
}
