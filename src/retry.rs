//! Retry delays: exponential with jitter and a cap. The only module that names
//! the `backoff` crate (flagged unmaintained), so it can be swapped in one place.

use std::time::Duration;

use backoff::backoff::Backoff as _;

/// A sequence of growing, jittered delays; `reset` after a success.
pub struct Backoff(backoff::ExponentialBackoff);

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff(backoff::ExponentialBackoff {
            initial_interval: initial,
            current_interval: initial,
            max_interval: max,
            multiplier: 2.0,
            randomization_factor: 0.3,
            // Never give up: the caller decides when to stop.
            max_elapsed_time: None,
            ..backoff::ExponentialBackoff::default()
        })
    }

    /// The next delay; a channel's retry-after wins when it asks for longer.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let computed = self.0.next_backoff().unwrap_or(self.0.max_interval);
        match retry_after {
            Some(ra) if ra > computed => ra,
            _ => computed,
        }
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_up_to_the_cap_and_honour_retry_after() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay(None);
        assert!(
            first >= Duration::from_millis(70) && first <= Duration::from_millis(130),
            "{first:?}"
        );
        for _ in 0..20 {
            assert!(b.next_delay(None) <= Duration::from_millis(2600));
        }
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        b.reset();
        assert!(b.next_delay(None) <= Duration::from_millis(130));
    }
}
