//! What connectors and the daemon's pacer say to each other: which budget a
//! call counts against ([`Operation`]), the channel's published limits
//! ([`RateLimit`]), what the channel reported about them ([`RateHint`]), the
//! rule for a report read after a later one ([`SeenHint`]), and the
//! [`Pacer`] a connector awaits before every request.
//!
//! The pacer is the daemon's (one per account, shared by its poll loop,
//! fetches, webhooks and pushes); connectors never sleep themselves.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::connector::BoxFuture;

/// Which of a channel's budgets a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A page of the incremental order listing (Amazon `searchOrders`:
    /// about one a minute).
    Poll,
    /// One order read by id (after a notification, or a re-read).
    Fetch,
    /// A secondary read a call needs: order items, a listing's inventory
    /// before it is replaced, a signing key, fulfilments read back.
    Lookup,
    PushInventory,
    PushTracking,
    /// The token endpoint (refresh grants).
    Auth,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::Poll,
        Operation::Fetch,
        Operation::Lookup,
        Operation::PushInventory,
        Operation::PushTracking,
        Operation::Auth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Poll => "poll",
            Operation::Fetch => "fetch",
            Operation::Lookup => "lookup",
            Operation::PushInventory => "push_inventory",
            Operation::PushTracking => "push_tracking",
            Operation::Auth => "auth",
        }
    }

    /// Whether the call keeps orders flowing in (polls, fetches, their
    /// look-ups and the tokens they need). When a channel's daily budget runs
    /// low these go first and pushes wait.
    pub fn is_ingest(self) -> bool {
        matches!(
            self,
            Operation::Poll | Operation::Fetch | Operation::Lookup | Operation::Auth
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A channel's published request rate for one operation class: a token
/// bucket of `burst` requests refilled at `per_second`. The daemon's pacer
/// is seeded from it and then follows the channel's [`RateHint`]s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained requests per second (may be below 1, e.g. 1/60 for once a minute).
    pub per_second: f64,
    /// Requests that may go back to back after a quiet spell; at least 1.
    pub burst: u32,
}

impl RateLimit {
    /// What a connector that publishes nothing gets: one request a second.
    pub const CONSERVATIVE: RateLimit = RateLimit {
        per_second: 1.0,
        burst: 1,
    };
}

/// Which window of the channel's limits a [`RateHint`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateWindow {
    /// The short-term bucket (per second, per minute, Shopify's cost bucket).
    #[default]
    Burst,
    /// A daily allowance (Etsy `x-limit-per-day`, eBay's daily call limits).
    Daily,
}

/// What the channel last said about its rate limit, so the pacer can follow
/// it (Shopify's `throttleStatus`, Amazon's `x-amzn-RateLimit-Limit`, Etsy's
/// `x-remaining-*` headers ...).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateHint {
    /// Bucket size, in the channel's unit (query-cost points, requests).
    pub capacity: u32,
    /// What is left in the bucket now.
    pub remaining: u32,
    /// Units restored per second.
    pub restore_per_second: f64,
    pub observed_at: DateTime<Utc>,
    #[serde(default)]
    pub window: RateWindow,
}

/// A [`RateHint`] as its reader holds it: with when it arrived (tokio's
/// clock, so that paused-time tests see it refill) and how old it already
/// was then. The pacer and a connector that keeps its own copy of the
/// channel's report (Shopify's look-up guard and plan scaling) both hold
/// reports this way, so both drop the same overtaken ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeenHint {
    pub hint: RateHint,
    pub seen_at: tokio::time::Instant,
    /// Seconds from the report's `observed_at` to when it arrived.
    age_at_seen: f64,
}

impl SeenHint {
    /// `hint` as it arrives at `seen_at`; its age is read off the wall
    /// clock against its `observed_at` (never negative).
    pub fn new(hint: RateHint, seen_at: tokio::time::Instant) -> SeenHint {
        let age_at_seen = (Utc::now() - hint.observed_at)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64();
        SeenHint {
            hint,
            seen_at,
            age_at_seen,
        }
    }

    /// Whether the report limits anything (no capacity or no refill rate
    /// means the channel told nothing usable).
    pub fn limits(&self) -> bool {
        let h = &self.hint;
        h.capacity > 0 && h.restore_per_second.is_finite() && h.restore_per_second > 0.0
    }

    /// What the reported bucket holds at `now`, refilled at the reported
    /// rate since the report was written.
    pub fn level(&self, now: tokio::time::Instant) -> f64 {
        let h = &self.hint;
        let elapsed = self.age_at_seen + now.saturating_duration_since(self.seen_at).as_secs_f64();
        (f64::from(h.remaining) + elapsed * h.restore_per_second).min(f64::from(h.capacity))
    }

    /// Whether this report shows more room than `other` at `now`: more left
    /// in the bucket, a bigger bucket or a faster refill (a report that
    /// limits nothing has the most room). A smaller bucket counts as more
    /// room only when it holds more or refills faster, never for its size.
    pub fn roomier_than(&self, other: &SeenHint, now: tokio::time::Instant) -> bool {
        if !self.limits() || !other.limits() {
            return !self.limits() && other.limits();
        }
        self.level(now) > other.level(now)
            || self.hint.capacity > other.hint.capacity
            || self.hint.restore_per_second > other.hint.restore_per_second
    }

    /// Whether this report, from the answer to a call that went out at
    /// `sent`, was overtaken by `in_force` and must be dropped: the call
    /// went out before `in_force` arrived and this report shows more room.
    /// Calls side by side are answered in one order and read in the other,
    /// and within a window what is left only goes down, so such an answer
    /// was written before the one in force; taking it would hand out
    /// allowance the channel no longer has. A refill or a reset shows in
    /// the answer to the next call, which went out after.
    ///
    /// A smaller bucket is taken even then. A shop's plan can change either
    /// way while calls are in flight, and the report alone cannot tell a
    /// bucket from before an upgrade, read late, from one after a downgrade:
    /// taking the smaller one costs a slower pace until the next answer;
    /// dropping it would send calls the channel throttles.
    pub fn overtaken_by(&self, in_force: &SeenHint, sent: tokio::time::Instant) -> bool {
        sent < in_force.seen_at && self.roomier_than(in_force, self.seen_at)
    }
}

/// The daemon's per-account budget keeper. A connector awaits
/// [`Pacer::acquire`] before every request and reports the channel's limit
/// headers with [`Pacer::observe_answer`] (or [`Pacer::observe`]) after it.
pub trait Pacer: Send + Sync {
    /// Resolves once `cost` units of `operation`'s budget may be spent (and
    /// spends them). Waiting is the daemon's business: it may hold pushes
    /// back while a daily budget runs low, and it keeps the watchdog fed.
    fn acquire(&self, operation: Operation, cost: u32) -> BoxFuture<'_, ()>;

    /// What the channel just reported about its limits for `operation`.
    fn observe(&self, operation: Operation, hint: RateHint);

    /// What the channel reported about its limits for `operation` in its
    /// answer to a call sent at `sent` (tokio's clock, read just before the
    /// request went out). Calls made side by side can be answered in one
    /// order and read in the other; knowing when the call went out lets
    /// the pacer tell a report that a later one already overtook. A pacer
    /// that keeps no such order takes it as [`Pacer::observe`].
    fn observe_answer(&self, operation: Operation, hint: RateHint, sent: tokio::time::Instant) {
        let _ = sent;
        self.observe(operation, hint);
    }
}

/// A pacer that never waits: for replaying fixtures, where the recorded
/// answers decide everything and time does not matter.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unpaced;

impl Pacer for Unpaced {
    fn acquire(&self, _operation: Operation, _cost: u32) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn observe(&self, _operation: Operation, _hint: RateHint) {}
}

impl Unpaced {
    pub fn shared() -> Arc<dyn Pacer> {
        Arc::new(Unpaced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::Instant;

    fn bucket(capacity: u32, remaining: u32, restore_per_second: f64) -> RateHint {
        RateHint {
            capacity,
            remaining,
            restore_per_second,
            observed_at: Utc::now(),
            window: RateWindow::Burst,
        }
    }

    #[test]
    fn a_late_report_is_dropped_only_when_it_shows_more_room() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // In force: 1500 of 2000 points, from a fetch read at 100 ms.
        let in_force = SeenHint::new(bucket(2000, 1500, 100.0), at(100));
        let late = |hint: RateHint| SeenHint::new(hint, at(200));
        // A poll sent at 0 is read after it.
        assert!(late(bucket(2000, 1900, 100.0)).overtaken_by(&in_force, at(0)));
        assert!(late(bucket(2000, 1000, 200.0)).overtaken_by(&in_force, at(0)));
        assert!(late(bucket(4000, 1000, 100.0)).overtaken_by(&in_force, at(0)));
        assert!(!late(bucket(2000, 1000, 100.0)).overtaken_by(&in_force, at(0)));
        // A call sent after the report in force arrived says what is there
        // now, whatever it shows.
        assert!(!late(bucket(4000, 4000, 200.0)).overtaken_by(&in_force, at(150)));
        // The report in force refills: a minute on it counts a full bucket,
        // and a late full one shows no more than that.
        let minute_on = SeenHint::new(bucket(2000, 2000, 100.0), at(60_100));
        assert!(!minute_on.overtaken_by(&in_force, at(0)));
    }

    #[test]
    fn a_late_report_of_a_smaller_bucket_is_taken_whatever_it_holds() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let in_force = SeenHint::new(bucket(2000, 1500, 100.0), at(100));
        // The shop's plan changed while a call sent at 0 was in flight; its
        // answer, read after the report in force, shows the smaller plan's
        // bucket. Before an upgrade or after a downgrade: a smaller bucket
        // is less room either way.
        let nearly_empty = SeenHint::new(bucket(1000, 50, 50.0), at(200));
        assert!(!nearly_empty.roomier_than(&in_force, at(200)));
        assert!(!nearly_empty.overtaken_by(&in_force, at(0)));
        let full = SeenHint::new(bucket(1000, 1000, 100.0), at(200));
        assert!(!full.overtaken_by(&in_force, at(0)));
        // Full and faster is more room, smaller or not.
        let faster = SeenHint::new(bucket(1000, 1000, 150.0), at(200));
        assert!(faster.overtaken_by(&in_force, at(0)));
    }

    #[test]
    fn a_report_that_limits_nothing_has_the_most_room() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let limiting = SeenHint::new(bucket(2000, 10, 100.0), at(100));
        let nothing = SeenHint::new(bucket(0, 0, 0.0), at(100));
        assert!(SeenHint::new(bucket(0, 0, 0.0), at(200)).overtaken_by(&limiting, at(0)));
        assert!(!SeenHint::new(bucket(2000, 10, 100.0), at(200)).overtaken_by(&nothing, at(0)));
        assert!(!SeenHint::new(bucket(0, 0, 0.0), at(200)).overtaken_by(&nothing, at(0)));
    }
}
