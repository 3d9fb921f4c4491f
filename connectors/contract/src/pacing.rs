//! What connectors and the daemon's pacer say to each other: which budget a
//! call counts against ([`Operation`]), the channel's published limits
//! ([`RateLimit`]), what the channel reported about them ([`RateHint`]), and
//! the [`Pacer`] a connector awaits before every request.
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
