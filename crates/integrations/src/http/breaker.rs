//! A circuit breaker per provider: after a run of failed calls the
//! provider is left alone for a cooldown, then one trial call decides. An
//! open circuit makes calls fail at once, so an outage costs no timeouts;
//! the work waits in orch's queue and nothing is lost.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cooldown passed and one trial call is out.
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: State,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: State::Closed { failures: 0 },
        }
    }

    /// May a call go out now? `Err(wait)`: the circuit is open for `wait` more.
    pub fn allow(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if until > now => Err(until - now),
            State::Open { .. } => {
                self.state = State::HalfOpen;
                Ok(())
            }
            // One trial at a time; the others wait a moment.
            State::HalfOpen => Err(Duration::from_millis(100).min(self.cooldown)),
        }
    }

    pub fn on_success(&mut self) {
        self.state = State::Closed { failures: 0 };
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.state = match self.state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: now + self.cooldown,
            },
        };
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_recovers_through_one_trial() {
        let t0 = Instant::now();
        let cd = Duration::from_secs(30);
        let mut b = Breaker::new(3, cd);
        b.on_failure(t0);
        b.on_failure(t0);
        assert!(b.allow(t0).is_ok());
        b.on_failure(t0);
        assert_eq!(
            b.allow(t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(20))
        );
        assert!(b.allow(t0 + cd).is_ok(), "the trial call");
        assert!(b.allow(t0 + cd).is_err(), "only one trial at a time");
        b.on_failure(t0 + cd);
        assert!(
            b.allow(t0 + cd + Duration::from_secs(1)).is_err(),
            "a failed trial reopens"
        );
        assert!(b.allow(t0 + cd * 2).is_ok());
        b.on_success();
        assert!(!b.is_open());
        // A success resets the count.
        b.on_failure(t0);
        b.on_failure(t0);
        b.on_success();
        b.on_failure(t0);
        assert!(b.allow(t0).is_ok());
    }
}
