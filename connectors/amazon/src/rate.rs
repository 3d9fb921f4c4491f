//! What this account's Amazon budgets look like from here: each switchyard
//! class's pace (the slowest of its frequent operations, from Amazon's
//! published usage plans, replaced by what `x-amzn-RateLimit-Limit` says
//! once an answer carries it), and an estimate of how full Amazon's bucket
//! is, so that the hints the pacer gets are never rosier than the truth.
//!
//! Amazon reports only the rate, never what is left in the bucket. The
//! estimate is a token bucket of the plan's burst, refilled at the rate and
//! drained by every call sent; a 429 empties it, because that is the one
//! moment Amazon does say how full it is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_contract::{Operation, RateHint, RateLimit, RateWindow};
use tokio::time::Instant;

use crate::endpoints::AmazonOp;

#[derive(Debug, Default)]
struct ClassState {
    /// Rates Amazon reported, per operation.
    observed: HashMap<AmazonOp, f64>,
    /// The bucket estimate and when it was last brought up to date.
    bucket: Option<(f64, Instant)>,
}

#[derive(Debug, Default)]
pub(crate) struct RateBook {
    classes: Mutex<HashMap<Operation, ClassState>>,
}

/// `x-amzn-RateLimit-Limit`: requests per second as a decimal number.
pub(crate) fn parse_rate_header(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
}

fn rate_of(state: Option<&ClassState>, op: AmazonOp) -> f64 {
    state
        .and_then(|s| s.observed.get(&op).copied())
        .unwrap_or(op.usage_plan().per_second)
}

fn class_limit(state: Option<&ClassState>, class: Operation) -> RateLimit {
    let mut limit: Option<RateLimit> = None;
    for op in AmazonOp::ALL
        .into_iter()
        .filter(|op| op.class() == class && op.sets_the_pace())
    {
        let rate = rate_of(state, op);
        let burst = op.usage_plan().burst;
        limit = Some(match limit {
            None => RateLimit {
                per_second: rate,
                burst,
            },
            Some(l) => RateLimit {
                per_second: l.per_second.min(rate),
                burst: l.burst.min(burst),
            },
        });
    }
    limit.unwrap_or(RateLimit::CONSERVATIVE)
}

fn refill(state: &mut ClassState, limit: RateLimit, now: Instant) -> f64 {
    let capacity = f64::from(limit.burst);
    let tokens = match state.bucket {
        None => capacity,
        Some((tokens, at)) => {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            (tokens + elapsed * limit.per_second).min(capacity)
        }
    };
    state.bucket = Some((tokens, now));
    tokens
}

impl RateBook {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Operation, ClassState>) -> T) -> T {
        f(&mut self.classes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The class's current pace.
    pub fn limit(&self, class: Operation) -> RateLimit {
        self.with(|c| class_limit(c.get(&class), class))
    }

    /// A request of `op` is about to go.
    pub fn spend(&self, op: AmazonOp) {
        let class = op.class();
        self.with(|c| {
            let limit = class_limit(c.get(&class), class);
            let state = c.entry(class).or_default();
            let tokens = refill(state, limit, Instant::now());
            state.bucket = Some(((tokens - 1.0).max(0.0), Instant::now()));
        });
    }

    /// What an answer said: the rate header (if any) and whether it was a
    /// 429. Returns the hint for the pacer when the operation sets its
    /// class's pace.
    pub fn answered(
        &self,
        op: AmazonOp,
        header_rate: Option<f64>,
        throttled: bool,
        now: DateTime<Utc>,
    ) -> Option<RateHint> {
        if !op.sets_the_pace() {
            return None;
        }
        let class = op.class();
        self.with(|c| {
            let state = c.entry(class).or_default();
            if let Some(rate) = header_rate {
                state.observed.insert(op, rate);
            }
            let limit = class_limit(Some(state), class);
            let mut tokens = refill(state, limit, Instant::now());
            if throttled {
                tokens = 0.0;
                state.bucket = Some((0.0, Instant::now()));
            }
            Some(RateHint {
                capacity: limit.burst,
                remaining: whole(tokens),
                restore_per_second: limit.per_second,
                observed_at: now,
                window: RateWindow::Burst,
            })
        })
    }

    /// How long after a 429 one request of `op` is sure to be allowed again:
    /// the time its bucket takes to refill one request (Amazon sends no
    /// `Retry-After`).
    pub fn retry_after(&self, op: AmazonOp) -> Duration {
        let rate = self.with(|c| rate_of(c.get(&op.class()), op));
        Duration::from_secs_f64((1.0 / rate).clamp(0.001, 24.0 * 3600.0))
    }
}

/// Tokens left in a bucket as a whole number: the fraction dropped, negative
/// and NaN as 0.
#[expect(
    clippy::cast_possible_truncation,
    reason = "float-to-int `as` saturates (and turns NaN into 0), which is the point"
)]
fn whole(tokens: f64) -> u32 {
    tokens.max(0.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn classes_start_from_the_published_plans_and_follow_the_header() {
        let book = RateBook::default();
        let poll = book.limit(Operation::Poll);
        assert_eq!((poll.per_second, poll.burst), (0.0056, 20));
        // Lookup: getListingsItem 5/s burst 10, getFeed 2/s burst 15.
        let lookup = book.limit(Operation::Lookup);
        assert_eq!((lookup.per_second, lookup.burst), (2.0, 10));
        let hint = book
            .answered(AmazonOp::SearchOrders, Some(0.0167), false, t())
            .unwrap();
        assert_eq!(hint.restore_per_second, 0.0167);
        assert_eq!(hint.capacity, 20);
        assert_eq!(book.limit(Operation::Poll).per_second, 0.0167);
        // A feed step says nothing about its class's pace.
        assert!(
            book.answered(AmazonOp::CreateFeed, Some(0.1), false, t())
                .is_none()
        );
        assert_eq!(book.limit(Operation::PushInventory).per_second, 5.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_estimate_drains_with_calls_empties_on_429_and_refills() {
        let book = RateBook::default();
        for _ in 0..3 {
            book.spend(AmazonOp::SearchOrders);
        }
        let hint = book
            .answered(AmazonOp::SearchOrders, None, false, t())
            .unwrap();
        assert_eq!(hint.remaining, 17);
        let hint = book
            .answered(AmazonOp::SearchOrders, None, true, t())
            .unwrap();
        assert_eq!(hint.remaining, 0);
        // 0.0056 a second: one request back after ~179 s.
        tokio::time::advance(Duration::from_secs(180)).await;
        let hint = book
            .answered(AmazonOp::SearchOrders, None, false, t())
            .unwrap();
        assert_eq!(hint.remaining, 1);
        assert_eq!(
            book.retry_after(AmazonOp::SearchOrders).as_secs(),
            178,
            "1 / 0.0056 s"
        );
    }

    #[test]
    fn rate_headers_are_positive_decimals() {
        assert_eq!(parse_rate_header(" 0.0056 "), Some(0.0056));
        assert_eq!(parse_rate_header("5"), Some(5.0));
        for bad in ["", "fast", "0", "-1", "NaN", "inf"] {
            assert_eq!(parse_rate_header(bad), None, "{bad}");
        }
    }
}
