//! Pacing: when the next call to a channel may go. Two halves, both pure
//! timing decisions (the callers do the sleeping, on tokio's clock, so that
//! shutdown can interrupt them); this module depends on nothing else in the
//! crate.
//!
//! - Retry delays: exponential with jitter and a cap ([`Backoff`],
//!   [`item_delay`]). The only module that names the `backoff` crate
//!   (flagged unmaintained), so it can be swapped in one place.
//! - Rate limits ([`Limiter`]): one account's calls of one operation class,
//!   a `governor` GCRA limiter seeded from the channel's published rate (run
//!   at `safety` × the rate and `burst_share` × the burst: the unused part
//!   of the channel's bucket absorbs network and scheduling jitter, which can
//!   make requests arrive closer together than they were sent, and leaves
//!   room for the account's polls, which spend the same bucket), plus the
//!   channel's own bucket reports (`RateHint`): when the channel says its
//!   bucket is nearly empty, the limiter waits until it has refilled to the
//!   low-water mark ([`hint_wait`]).

use std::num::NonZeroU32;
use std::time::Duration;

use backoff::backoff::Backoff as _;
use chrono::{DateTime, Utc};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use switchyard_contract::RateHint;
use switchyard_contract::connector::RateLimit;

/// Whole milliseconds of `d` for logs and clocks, saturating (a `u64` of
/// milliseconds outlasts any process).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

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

/// The delay before retry number `attempts + 1` of one item: exponential
/// from `initial` with jitter, capped at `max`; a longer retry-after wins.
pub fn item_delay(
    initial: Duration,
    max: Duration,
    attempts: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let mut b = Backoff::new(initial, max);
    // Steps past ~30 are all at the cap.
    for _ in 0..attempts.min(32) {
        b.next_delay(None);
    }
    b.next_delay(retry_after)
}

/// The longest wait a channel's bucket report can impose on its own.
const MAX_HINT_WAIT: Duration = Duration::from_secs(60);

pub struct Limiter {
    /// None: unlimited (a rate of zero or infinity means "no limit").
    gcra: Option<DefaultDirectRateLimiter>,
    limit: RateLimit,
    low_water: f64,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// `safety` in (0, 1]: the fraction of the published rate to use;
    /// `burst_share` in (0, 1]: the fraction of the published burst (at least 1);
    /// `low_water`: the fraction of the channel's reported bucket to keep.
    pub fn new(limit: RateLimit, safety: f64, burst_share: f64, low_water: f64) -> Limiter {
        let fraction = |f: f64| {
            if f.is_finite() && f > 0.0 {
                f.min(1.0)
            } else {
                1.0
            }
        };
        let (safety, burst_share) = (fraction(safety), fraction(burst_share));
        let rate = limit.per_second * safety;
        let gcra = if rate.is_finite() && rate > 0.0 {
            let period = Duration::from_secs_f64(1.0 / rate);
            Quota::with_period(period).map(|q| {
                // `burst_share` is in (0, 1], so this is at most `limit.burst`.
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "a fraction of a u32, and float-to-int `as` saturates"
                )]
                let burst = (f64::from(limit.burst) * burst_share).floor() as u32;
                let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
                RateLimiter::direct(q.allow_burst(burst))
            })
        } else {
            None
        };
        Limiter {
            gcra,
            limit,
            low_water,
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a slot for one call now, or says how long until one is free.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        match &self.gcra {
            None => Ok(()),
            Some(g) => g.check().map_err(|not_until| {
                // At least a millisecond, so a caller never spins.
                not_until
                    .wait_time_from(g.clock().now())
                    .max(Duration::from_millis(1))
            }),
        }
    }

    /// How long to hold off because the channel reported its bucket nearly
    /// empty (refilled since `observed_at` at the reported restore rate).
    pub fn hint_wait(&self, hint: Option<RateHint>, now: DateTime<Utc>) -> Option<Duration> {
        hint_wait(hint?, self.low_water, now)
    }
}

/// The wait a bucket report imposes: none while the bucket holds at least
/// `low_water` × capacity (and at least one unit), else the time to refill to it.
pub fn hint_wait(hint: RateHint, low_water: f64, now: DateTime<Utc>) -> Option<Duration> {
    if hint.capacity == 0 || !(hint.restore_per_second.is_finite() && hint.restore_per_second > 0.0)
    {
        return None;
    }
    let elapsed = (now - hint.observed_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    let capacity = f64::from(hint.capacity);
    let remaining = (f64::from(hint.remaining) + elapsed * hint.restore_per_second).min(capacity);
    let mark = (capacity * low_water).max(1.0).min(capacity);
    if remaining >= mark {
        return None;
    }
    let wait = Duration::from_secs_f64((mark - remaining) / hint.restore_per_second);
    Some(wait.min(MAX_HINT_WAIT))
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

    #[test]
    fn item_delays_grow_with_attempts_up_to_the_cap() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(5));
        assert!(item_delay(i, m, 0, None) <= Duration::from_millis(130));
        assert!(item_delay(i, m, 3, None) >= Duration::from_millis(500));
        assert!(item_delay(i, m, 1000, None) <= Duration::from_millis(6500));
        assert_eq!(
            item_delay(i, m, 0, Some(Duration::from_secs(9))),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn the_burst_goes_at_once_then_the_rate_paces() {
        let l = Limiter::new(
            RateLimit {
                per_second: 10.0,
                burst: 3,
            },
            1.0,
            1.0,
            0.1,
        );
        for _ in 0..3 {
            assert!(l.try_acquire().is_ok());
        }
        let wait = l.try_acquire().unwrap_err();
        assert!(
            wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
    }

    #[test]
    fn half_the_burst_is_left_to_the_channel() {
        let limit = RateLimit {
            per_second: 10.0,
            burst: 10,
        };
        let l = Limiter::new(limit, 0.9, 0.5, 0.1);
        for _ in 0..5 {
            assert!(l.try_acquire().is_ok());
        }
        assert!(l.try_acquire().is_err());
        let one = Limiter::new(RateLimit { burst: 1, ..limit }, 0.9, 0.5, 0.1);
        assert!(one.try_acquire().is_ok());
    }

    #[test]
    fn zero_or_infinite_rates_mean_no_limit() {
        for r in [0.0, f64::INFINITY] {
            let l = Limiter::new(
                RateLimit {
                    per_second: r,
                    burst: 1,
                },
                0.9,
                0.5,
                0.1,
            );
            for _ in 0..1000 {
                assert!(l.try_acquire().is_ok());
            }
        }
    }

    #[test]
    fn a_nearly_empty_bucket_report_waits_for_the_refill() {
        let now = Utc::now();
        let hint = RateHint {
            capacity: 2000,
            remaining: 50,
            restore_per_second: 100.0,
            observed_at: now,
        };
        // Low water 10% = 200 points: 150 missing at 100/s.
        assert_eq!(hint_wait(hint, 0.1, now), Some(Duration::from_millis(1500)));
        // Two seconds later the bucket has refilled.
        assert_eq!(
            hint_wait(hint, 0.1, now + chrono::Duration::seconds(2)),
            None
        );
        let full = RateHint {
            remaining: 1500,
            ..hint
        };
        assert_eq!(hint_wait(full, 0.1, now), None);
    }
}
