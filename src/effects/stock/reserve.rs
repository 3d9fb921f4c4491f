//! Reservations: what an order holds of central stock, taken in the same
//! transaction that stores the order and given back when it is cancelled.
//! The open reservations of a SKU (units of open orders still owed: not
//! shipped, not refunded), which `stock set` counts against what is on hand
//! and `stock show` lists with their orders, the store keeps per SKU as
//! orders change (`Store::reservations`), for the orders this module marks
//! as taking part.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use switchyard_contract::OrderStatus;

use super::{Listing, StockTargets, listing, push_items, sku_problem};
use crate::effects::{IngestPlan, forever};
use crate::store::{ListingState, StockChange, Store, StoreError, StoredOrder, reservation_marker};

/// Units an order holds per SKU: its line quantities less refunded units
/// (never shipped, so still on the shelf); once cancelled, only what was
/// shipped before the cancellation. An order the marketplace ships from its
/// own stock (Amazon FBA) holds none of ours.
fn held(order: &StoredOrder) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    if order.order.channel_fulfilled() {
        return out;
    }
    let cancelled = order.order.status == OrderStatus::Cancelled;
    for l in &order.order.lines {
        // A cancellation gives back the units still on the shelf; units that
        // already shipped (a partly shipped order cancelled) left the
        // warehouse, and giving them back would oversell them.
        let units = if cancelled {
            l.shipped_quantity.min(l.quantity)
        } else {
            l.quantity.saturating_sub(l.refunded_quantity)
        };
        if units == 0 {
            continue;
        }
        if let Some(sku) = l.sku.as_deref().filter(|s| sku_problem(s).is_none()) {
            *out.entry(sku.to_owned()).or_insert(0) += i64::from(units);
        }
    }
    out
}

/// The stock side of storing `new` over `existing` from a channel (the
/// caller has checked that the store will write it): reserve the difference
/// of what the order holds, for SKUs with a central level, and queue pushes of
/// each changed SKU to every account that may list it (the selling account
/// too: it re-asserts the level against what that channel recorded).
pub fn plan_reservation(
    store: &Store,
    targets: &StockTargets,
    existing: Option<&StoredOrder>,
    new: &StoredOrder,
    now: DateTime<Utc>,
) -> Result<IngestPlan, StoreError> {
    let mut plan = IngestPlan::default();
    let marker = reservation_marker(&new.order.id);
    let takes_part = match existing {
        None => {
            plan.dedupe.push((marker, forever()));
            true
        }
        Some(_) => store.dedupe_seen(&marker, now)?,
    };
    // The selling account lists every SKU it sold.
    if existing.is_none() {
        for sku in held(new).keys() {
            if matches!(
                listing(store, &new.order.account, sku, now)?,
                Listing::NotListed { .. }
            ) {
                store.set_listing(&new.order.account, sku, &ListingState::Listed)?;
            }
        }
    }
    if !takes_part {
        return Ok(plan);
    }
    let before = existing.map(held).unwrap_or_default();
    let after = held(new);
    let mut skus: Vec<&String> = before.keys().chain(after.keys()).collect();
    skus.sort();
    skus.dedup();
    for sku in skus {
        let delta = after.get(sku).copied().unwrap_or(0) - before.get(sku).copied().unwrap_or(0);
        if delta == 0 || store.stock_get(sku)?.is_none() {
            continue;
        }
        plan.stock.push(StockChange::Adjust {
            sku: sku.clone(),
            delta: -delta,
        });
        plan.outbox.extend(push_items(store, targets, sku, now)?);
    }
    Ok(plan)
}
