//! The generic durable queue's workers: everything that leaves the daemon
//! (stock and tracking pushes to channels, order deliveries to
//! destinations) is an item in the store's outbox, written in the same
//! transaction as the change that caused it, and sent from here once that
//! transaction is on disk (never on the strength of a write a crash could
//! take back). What an item means and how it is sent belongs to
//! `crate::effects`; this module knows only accounts, kinds, pacing,
//! retries and dead letters.
//!
//! - One worker task per outbox account (`worker.rs`), so one slow or
//!   failing account never delays another.
//! - A `Sender` may take several items of one kind in one call
//!   (`Sender::batch_limit`): one call, each item's result recorded on its
//!   own.
//! - Each call waits first for the account's pacer (`crate::pacing`, the
//!   one the account's connector acquires from), seeded from the far
//!   side's published rates and following its own bucket reports, and then
//!   has the far side's call timeout (the pacer's waits not counted).
//! - Failures are classified once (`policy.rs`): rate-limited, transient and
//!   undecodable answers are retried with exponential, jittered, capped
//!   backoff that honours a retry-after; rejected, config and auth failures
//!   become dead letters with the reason.
//! - Workers wake on a `Notify` per account when an item is queued in this
//!   process ([`Wakers`]), and rescan the due list every
//!   `OutboxOptions::idle_rescan` for items whose retry time came.
//!
//! Jobs ([`Job`], stored as the item's `kind` and `payload`):
//!
//! | kind | account | payload | coalesce key |
//! | --- | --- | --- | --- |
//! | `push_stock` (stored as `push_inventory` before) | channel account | `{ "sku" }`: the level is computed when sent | `stock:<sku>` |
//! | `push_tracking` | the order's account | `{ "order_id", "tracking_number" }` | none |
//! | `deliver` | `destination:<id>` | `{ "order_id", "destination", "delivery_id", "body" }` | none |
//! | `fetch_orders` | channel account | `{ "ids" }`: orders a webhook only named | none |
//! | `check_stock_receipt` | channel account | `{ "receipt", "skus": [{ "sku", "quantity" }] }`: stock pushes the channel took for later, due at its `check_after` | none |

pub mod policy;
mod worker;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::store::{NewOutboxItem, Store};

pub use crate::store::{Delivery, Job, JobKind, Notice, ReceiptSku};
pub use worker::{FollowUp, Sender, Verdict, Worker};

/// The outbox account of a destination. Account ids cannot contain `:`, so
/// these never collide with channel accounts.
pub fn destination_account(id: &str) -> String {
    format!("destination:{id}")
}

/// Tuning of the workers; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// First retry delay after a failure.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// A retryable failure this many times in a row becomes a dead letter.
    pub max_attempts: u32,
    /// A call that has not answered after this long (not counting waits
    /// for its pacer) counts as a transient failure. `None`: the far side's
    /// own figure (a channel's `ChannelHints::call_timeout`).
    pub call_timeout: Option<Duration>,
    /// How often an idle worker looks for items whose retry time came.
    pub idle_rescan: Duration,
    /// Items read from the store per pass.
    pub batch: usize,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(15 * 60),
            max_attempts: 100,
            call_timeout: None,
            idle_rescan: Duration::from_secs(1),
            batch: 32,
        }
    }
}

/// One `Notify` per outbox account: whoever queues an item in this process
/// wakes the account's worker instead of letting it wait for its next rescan.
#[derive(Clone, Default)]
pub struct Wakers(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl Wakers {
    pub fn get(&self, account: &str) -> Arc<Notify> {
        let mut map = self.0.lock();
        map.entry(account.to_owned()).or_default().clone()
    }

    pub fn wake(&self, account: &str) {
        self.get(account).notify_one();
    }

    /// The accounts `items` are queued for: what to wake once they are
    /// written, kept instead of a copy of the items (a delivery carries the
    /// order's body).
    pub fn accounts_of(items: &[NewOutboxItem]) -> BTreeSet<String> {
        items.iter().map(|i| i.account.clone()).collect()
    }

    /// Wakes the worker of each of `accounts` (`accounts_of`).
    pub fn wake_accounts(&self, accounts: &BTreeSet<String>) {
        for a in accounts {
            self.wake(a);
        }
    }
}

impl std::fmt::Debug for Wakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wakers")
    }
}

/// This process's side of the queue, shared by whoever queues items and by
/// the workers: the wakers, the counters, the per-account figures for
/// `/metrics` and the heartbeats the systemd watchdog reads. Cheap to clone.
#[derive(Clone, Default, Debug)]
pub struct Outbox {
    pub wakers: Wakers,
    /// Where workers count calls, waits and 429s (`/metrics`).
    pub metrics: crate::metrics::Metrics,
    /// Each worker registers here; the systemd watchdog reads them.
    pub heartbeats: crate::systemd::Heartbeats,
}

/// Waits until none of `accounts` has a pending item due within `horizon`
/// (the demo and `once` runs: let the pushes go out before stopping), or
/// until `timeout`. Returns whether the outbox went quiet.
pub async fn wait_idle(
    store: &Store,
    accounts: &[String],
    horizon: Duration,
    timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let limit = Utc::now() + chrono::Duration::from_std(horizon).unwrap_or_default();
        let busy = accounts.iter().any(|a| {
            store
                .outbox_next_due(a)
                .ok()
                .flatten()
                .is_some_and(|at| at <= limit)
        });
        if !busy {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
