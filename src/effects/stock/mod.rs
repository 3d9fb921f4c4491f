//! Central stock: one available quantity per SKU, what each channel is told
//! (`max(0, available − buffer)`, with the account's buffer or
//! `inventory.buffer`), reservations that keep a fast seller on one channel
//! from being oversold on another, coalesced pushes, and drift repair.
//!
//! - **Setting levels** ([`set_levels`] in `levels.rs`, used by `stock
//!   set`, `stock import` (`csv.rs`) and `PUT /api/v1/stock`) writes the levels and queues a `push_stock`
//!   item for every account that takes stock pushes and may list the SKU, in
//!   one transaction. The caller waits for the flush before acknowledging.
//! - **Pushes are coalesced**: the item carries only the SKU (coalesce key
//!   `stock:<sku>`), and the worker computes the quantity when it sends, from
//!   the store. Ten changes queued while a channel is slow are one call, with
//!   the newest level.
//! - **Pushes are batched** where the connector allows
//!   (`inventory_batch_limit`, Shopify: 100 SKUs in one
//!   `inventorySetQuantities`): the worker sends the due pushes of an
//!   account together ([`send_push_batch`]); each is built and recorded
//!   exactly as a single one, with its own compare-and-set (`push.rs`).
//! - **Reservations** ([`plan_reservation`], `reserve.rs`, called by ingest): an order's
//!   line quantities are taken off central stock in the same transaction
//!   that stores the order, and pushes to every account listing the SKU are
//!   queued with it; a cancellation gives back the units not shipped, an
//!   edit adjusts them. Only SKUs that have a central level when that
//!   transaction commits are touched (and pushed: the transaction decides
//!   both, so an order planned before a SKU's first `stock set` and written
//!   after it tells the channels too), and only orders first seen by a
//!   daemon with reservations take part (marker
//!   `outbound/reserve/<order id>` in the store's dedupe keys). What is
//!   reserved is a function of the stored order (its status and lines), and
//!   each stored revision change applies the difference once, so nothing is
//!   reserved or released twice. The open reservations (what open orders
//!   still owe) the store keeps per SKU as orders change
//!   (`Store::reservations`, `Store::reserved_units`): `stock show` and
//!   `stock set` read them, not the orders.
//! - **Listing**: an account lists a SKU unless its connector said
//!   `NotListed` (remembered for [`NOT_LISTED_TTL`], then asked again) and
//!   no order of that account has shown the SKU since (recorded in the
//!   transaction that stores the order: an order never stored records
//!   nothing). Pushes to accounts that do not list a SKU are skipped
//!   without error.
//! - **Compare-and-set**: each push says what the channel last confirmed.
//!   When the channel shows something else (`Conflict`), what it shows is
//!   recorded; if it shows no more than what we would push (most likely its
//!   own sale, whose order is on its way and will reserve), it is left alone;
//!   if it shows more, our level is pushed again at once against its value.
//! - **Drift repair** ([`run_drift_repair`], `drift.rs`): a periodic, budgeted pass that
//!   queues pushes for (account, SKU) pairs never pushed, pushed a level that
//!   is not what the channel should show, or not re-asserted for a long time.

mod csv;
mod drift;
mod levels;
mod push;
mod reserve;

use chrono::{DateTime, Utc};

use crate::config::{AccountConfig, Config};
use crate::outbox::Job;
use crate::store::{ListingState, NewOutboxItem, Store, StoreError};

pub use csv::{CsvProblem, parse_stock_csv};
pub use drift::{DriftOptions, drift_tick, run_drift_repair};
pub use levels::{StockError, StockUpdate, StockWrite, set_levels, show, sku_problem, validate};
pub use push::{UNKNOWN_LISTINGS_PER_CALL, send_push, send_push_batch, send_receipt_check};
pub use reserve::plan_reservation;

/// How long a channel's "not listed" answer is believed before asking again.
pub const NOT_LISTED_TTL: chrono::Duration = chrono::Duration::hours(24);

/// One account that takes stock pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockTarget {
    pub account: String,
    /// Units held back from this account.
    pub buffer: u32,
}

/// The accounts whose connectors can push inventory, with their buffers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StockTargets(std::sync::Arc<Vec<StockTarget>>);

impl StockTargets {
    pub fn new(targets: Vec<StockTarget>) -> Self {
        StockTargets(std::sync::Arc::new(targets))
    }

    /// Every configured account for which `can_push` says its connector can
    /// push inventory.
    pub fn from_config(config: &Config, can_push: impl Fn(&AccountConfig) -> bool) -> Self {
        StockTargets::new(
            config
                .accounts
                .iter()
                .filter(|a| can_push(a))
                .map(|a| StockTarget {
                    account: a.id.clone(),
                    buffer: a.stock_buffer(&config.inventory),
                })
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &StockTarget> {
        self.0.iter()
    }

    pub fn buffer(&self, account: &str) -> Option<u32> {
        self.0
            .iter()
            .find(|t| t.account == account)
            .map(|t| t.buffer)
    }
}

/// What a channel should show: `max(0, available − buffer)`.
pub fn desired_level(available: i64, buffer: u32) -> u32 {
    let v = available.saturating_sub(i64::from(buffer));
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// What the daemon knows about an account listing a SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Never asked: push, and let the connector look it up.
    Unknown,
    /// Listed; with the channel's reference once learned.
    Listed(Option<String>),
    /// The channel said it does not list the SKU, at `since`.
    NotListed { since: DateTime<Utc> },
}

pub fn listing(
    store: &Store,
    account: &str,
    sku: &str,
    now: DateTime<Utc>,
) -> Result<Listing, StoreError> {
    Ok(match store.listing(account, sku)? {
        None => Listing::Unknown,
        Some(ListingState::Listed) => Listing::Listed(None),
        Some(ListingState::Ref(r)) => Listing::Listed(Some(r)),
        Some(ListingState::NotListed { since }) if now - since < NOT_LISTED_TTL => {
            Listing::NotListed { since }
        }
        // Asked long enough ago: ask again.
        Some(ListingState::NotListed { .. }) => Listing::Unknown,
    })
}

/// The pushes that a change of `sku` causes: one per target that may list it.
pub fn push_items(
    store: &Store,
    targets: &StockTargets,
    sku: &str,
    now: DateTime<Utc>,
) -> Result<Vec<NewOutboxItem>, StoreError> {
    push_items_listed(store, targets, sku, now, None)
}

/// [`push_items`], where `listed` lists `sku` whatever the store says yet:
/// the selling account of an order whose listing is written with it.
fn push_items_listed(
    store: &Store,
    targets: &StockTargets,
    sku: &str,
    now: DateTime<Utc>,
    listed: Option<&str>,
) -> Result<Vec<NewOutboxItem>, StoreError> {
    let mut out = Vec::new();
    for t in targets.iter() {
        if listed != Some(t.account.as_str())
            && matches!(
                listing(store, &t.account, sku, now)?,
                Listing::NotListed { .. }
            )
        {
            continue;
        }
        out.push(push_item(&t.account, sku, now));
    }
    Ok(out)
}

pub fn push_item(account: &str, sku: &str, now: DateTime<Utc>) -> NewOutboxItem {
    NewOutboxItem {
        account: account.to_owned(),
        job: Job::PushStock {
            sku: sku.to_owned(),
        },
        coalesce_key: Some(format!("stock:{sku}")),
        not_before: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_levels_hold_back_the_buffer_and_never_go_negative() {
        assert_eq!(desired_level(10, 2), 8);
        assert_eq!(desired_level(1, 2), 0);
        assert_eq!(desired_level(-5, 0), 0);
        assert_eq!(desired_level(i64::MAX, 0), u32::MAX);
    }
}
