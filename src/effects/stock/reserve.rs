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
/// of what the order holds, for SKUs with a central level when the order is
/// written, and queue pushes of each changed SKU that has one now to every
/// account that may list it (the selling account too: it re-asserts the
/// level against what that channel recorded).
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
    // Whether a SKU has a central level is decided by the transaction
    // (`StockChange::Adjust` changes no SKU without one): read here, a SKU's
    // first `stock set` committed before this order would count the order
    // as reserved yet leave its units on sale. The pushes are still decided
    // from a read here (none with no account to push to): one missed that
    // way is made up by the pushes that `stock set` queued, which read the
    // level when they are sent, and by drift repair.
    let pushes = targets.iter().next().is_some();
    for sku in skus {
        let delta = after.get(sku).copied().unwrap_or(0) - before.get(sku).copied().unwrap_or(0);
        if delta == 0 {
            continue;
        }
        plan.stock.push(StockChange::Adjust {
            sku: sku.clone(),
            delta: -delta,
        });
        if pushes && store.stock_get(sku)?.is_some() {
            plan.outbox.extend(push_items(store, targets, sku, now)?);
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::super::levels::tests::{level, order};
    use super::super::{set_levels, show};
    use super::*;
    use crate::effects::Outbound;
    use crate::store::{OrderWrite, StoreOptions, WriteBatch};
    use switchyard_contract::OrderStatus;

    /// `new` over `existing` as ingest writes it: planned now, committed
    /// when the returned batch is applied.
    fn planned(store: &Store, existing: Option<&StoredOrder>, new: StoredOrder) -> WriteBatch {
        let now = Utc::now();
        let plan = plan_reservation(store, &StockTargets::default(), existing, &new, now).unwrap();
        WriteBatch {
            now,
            orders: vec![OrderWrite::FromChannel {
                expected_revision: existing.map(|e| e.revision),
                order: new,
                outbox: plan.outbox,
            }],
            stock: plan.stock,
            dedupe: plan.dedupe,
            ..WriteBatch::default()
        }
    }

    fn stored(n: u32, sku: &str, units: u32) -> StoredOrder {
        let mut o = crate::store::order_for_tests(&format!("a:{n}"));
        o.order = order(n, sku, units).order;
        o
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        (dir, store)
    }

    /// `stock set` of `sku`'s first level, committed at once.
    fn first_level(store: &Store, sku: &str, on_hand: i64) {
        assert!(store.stock_get(sku).unwrap().is_none(), "no level before");
        let now = Utc::now();
        set_levels(store, &Outbound::default(), &[level(sku, on_hand)], now).unwrap();
    }

    fn figures(store: &Store, sku: &str) -> (i64, i64, i64) {
        let v = show(store, sku).unwrap().unwrap();
        (v.on_hand, v.reserved, v.available)
    }

    /// Ingest plans an order's write, then waits for its turn to commit; a
    /// SKU's first `stock set` committed meanwhile counts the order as not
    /// yet reserved. The order, once written, reserves its units and takes
    /// them off what channels may sell, as if it had come after the level.
    #[test]
    fn an_order_planned_before_its_skus_first_level_is_taken_off_it() {
        let (_dir, store) = open();
        let write = planned(&store, None, stored(1, "MUG", 3));
        first_level(&store, "MUG", 10);
        store.apply(write).unwrap();
        assert_eq!(figures(&store, "MUG"), (10, 3, 7));
    }

    /// The same window for a cancellation: the units it gives back go back
    /// on sale when the level appeared between its plan and its write; a
    /// reservation of a SKU with no level, meanwhile, creates none.
    #[test]
    fn a_cancellation_planned_before_its_skus_first_level_gives_its_units_back() {
        let (_dir, store) = open();
        store
            .apply(planned(&store, None, stored(1, "MUG", 3)))
            .unwrap();
        let existing = store.get_order("a:1").unwrap().unwrap();
        let mut cancelled = existing.clone();
        cancelled.order.status = OrderStatus::Cancelled;
        let write = planned(&store, Some(&existing), cancelled);
        first_level(&store, "MUG", 10);
        assert_eq!(figures(&store, "MUG"), (10, 3, 7));
        store.apply(write).unwrap();
        assert_eq!(figures(&store, "MUG"), (10, 0, 10));
    }
}
