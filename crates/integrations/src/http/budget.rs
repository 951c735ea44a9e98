//! The call budget of one API key (Plane: 60 calls per minute by default) and
//! the pauses a server asks for (429 `Retry-After`, `X-RateLimit-Reset`).
//! Pure: the caller passes the time in and sleeps for what it gets back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct RateBudget {
    per_minute: Option<u32>,
    /// Start times of the calls inside the last minute.
    recent: VecDeque<Instant>,
    /// No call before this (the server said so).
    paused_until: Option<Instant>,
}

impl RateBudget {
    pub fn new(per_minute: Option<u32>) -> RateBudget {
        RateBudget {
            per_minute: per_minute.filter(|n| *n > 0),
            recent: VecDeque::new(),
            paused_until: None,
        }
    }

    /// Take one call now, or learn how long to wait before asking again.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.paused_until {
            if until > now {
                return Err(until - now);
            }
            self.paused_until = None;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        if let Some(limit) = self.per_minute
            && self.recent.len() >= limit as usize
        {
            let oldest = self.recent.front().copied().unwrap_or(now);
            return Err((oldest + WINDOW)
                .saturating_duration_since(now)
                .max(Duration::from_millis(1)));
        }
        self.recent.push_back(now);
        Ok(())
    }

    /// The server asked for a pause (429 or an exhausted window).
    pub fn pause_for(&mut self, now: Instant, wait: Duration) {
        let until = now + wait;
        if self.paused_until.is_none_or(|u| u < until) {
            self.paused_until = Some(until);
        }
    }

    /// Calls taken in the current minute (for tests and doctor).
    pub fn used(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_a_minute_then_wait_for_the_oldest_to_age_out() {
        let t0 = Instant::now();
        let mut b = RateBudget::new(Some(60));
        for i in 0..60 {
            assert!(b.try_take(t0 + Duration::from_millis(i * 10)).is_ok());
        }
        let wait = b.try_take(t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(59));
        assert!(b.try_take(t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_server_pause_holds_every_call() {
        let t0 = Instant::now();
        let mut b = RateBudget::new(None);
        b.pause_for(t0, Duration::from_secs(5));
        assert_eq!(
            b.try_take(t0 + Duration::from_secs(1)),
            Err(Duration::from_secs(4))
        );
        // A shorter pause never shortens a longer one.
        b.pause_for(t0, Duration::from_secs(1));
        assert!(b.try_take(t0 + Duration::from_secs(2)).is_err());
        assert!(b.try_take(t0 + Duration::from_secs(5)).is_ok());
    }
}
