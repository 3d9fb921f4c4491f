//! Reservations: what an order holds of central stock, taken in the same
//! transaction that stores the order and given back when it is cancelled.
//! The open reservations of a SKU (units of open orders still owed: not
//! shipped, not refunded), which `stock set` counts against what is on hand
//! and `stock show` lists with their orders, the store keeps per SKU as
//! orders change (`Store::reservations`), for the orders this module marks
//! as taking part.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use switchyard_contract::OrderStatus;

use super::{Listing, StockTargets, listing, push_item, push_items_listed, sku_problem};
use crate::effects::{IngestPlan, forever};
use crate::store::{StockChange, Store, StoreError, StoredOrder, reservation_marker};

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
/// caller has checked that the store will write it): the selling account's
/// listing of each SKU it sold (a new order), the difference of what the
/// order holds, reserved for SKUs with a central level when the order is
/// written, and for each changed SKU the pushes to every account that may
/// list it (the selling account too: it re-asserts the level against what
/// that channel recorded), queued by that write only if the SKU has a level
/// then. All of it is written with the order or not at all.
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
    let account = new.order.account.as_str();
    let after = held(new);
    // The selling account lists every SKU it sold; the pushes below count
    // it as listing them, as it will once the order is written.
    let mut relisted = BTreeSet::new();
    if existing.is_none() {
        for sku in after.keys() {
            if matches!(
                listing(store, account, sku, now)?,
                Listing::NotListed { .. }
            ) {
                plan.stock.push(StockChange::Listed {
                    account: account.to_owned(),
                    sku: sku.clone(),
                });
                relisted.insert(sku.as_str());
            }
        }
    }
    if !takes_part {
        return Ok(plan);
    }
    let before = existing.map(held).unwrap_or_default();
    let mut skus: Vec<&String> = before.keys().chain(after.keys()).collect();
    skus.sort();
    skus.dedup();
    let pushes = targets.iter().next().is_some();
    for sku in skus {
        let delta = after.get(sku).copied().unwrap_or(0) - before.get(sku).copied().unwrap_or(0);
        if delta == 0 {
            continue;
        }
        // Whether the SKU has a central level, so whether the order
        // reserves and the channels are told, is decided by the
        // transaction: read here, a SKU's first `stock set` committed
        // before the order would count the order as reserved yet leave
        // every channel showing its units on sale.
        let mut items = Vec::new();
        let level_seen = pushes && store.stock_get(sku)?.is_some();
        if pushes {
            if level_seen {
                // There when the order is written (levels are never
                // removed): its pushes will be queued, so wake their
                // workers then.
                let listed = relisted.contains(sku.as_str()).then_some(account);
                items = push_items_listed(store, targets, sku, now, listed)?;
                plan.wake.extend(items.iter().map(|i| i.account.clone()));
            } else {
                // Queued only if a level appears before the order is
                // written, which is seldom: to every account, without
                // reading what each lists (one that does not is skipped
                // when the push is sent), and unwoken (they fold into the
                // pushes that level's `stock set` queued, or wait for the
                // worker's next look at its queue).
                items = targets
                    .iter()
                    .map(|t| push_item(&t.account, sku, now))
                    .collect();
            }
        }
        plan.stock.push(StockChange::Adjust {
            sku: sku.clone(),
            delta: -delta,
            pushes: items,
            level_seen,
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::super::levels::tests::{level, order};
    use super::super::{StockTarget, set_levels, show};
    use super::*;
    use crate::effects::Outbound;
    use crate::outbox::Job;
    use crate::store::{ListingState, OrderWrite, StoreOptions, WriteBatch};
    use switchyard_contract::OrderStatus;

    /// `new` over `existing` as ingest writes it: planned now, committed
    /// when the returned batch is applied.
    fn planned_for(
        store: &Store,
        targets: &StockTargets,
        existing: Option<&StoredOrder>,
        new: StoredOrder,
    ) -> WriteBatch {
        let now = Utc::now();
        let plan = plan_reservation(store, targets, existing, &new, now).unwrap();
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

    fn planned(store: &Store, existing: Option<&StoredOrder>, new: StoredOrder) -> WriteBatch {
        planned_for(store, &StockTargets::default(), existing, new)
    }

    /// The order's own account ("a") and two others, all taking pushes.
    fn three_accounts() -> Outbound {
        let targets = ["a", "b", "c"].map(|account| StockTarget {
            account: account.into(),
            buffer: 0,
        });
        Outbound::new(StockTargets::new(targets.into()))
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

    /// `stock set` of `sku`'s first level, committed at once, with the
    /// pushes it queues to `outbound`'s accounts.
    fn first_level_to(store: &Store, outbound: &Outbound, sku: &str, on_hand: i64) {
        assert!(store.stock_get(sku).unwrap().is_none(), "no level before");
        let now = Utc::now();
        set_levels(store, outbound, &[level(sku, on_hand)], now).unwrap();
    }

    fn first_level(store: &Store, sku: &str, on_hand: i64) {
        first_level_to(store, &Outbound::default(), sku, on_hand);
    }

    fn figures(store: &Store, sku: &str) -> (i64, i64, i64) {
        let v = show(store, sku).unwrap().unwrap();
        (v.on_hand, v.reserved, v.available)
    }

    /// The accounts with a pending push of `sku`, one entry per item.
    fn pushes_of(store: &Store, sku: &str) -> Vec<String> {
        let mut out: Vec<String> = store
            .outbox_list(false)
            .unwrap()
            .into_iter()
            .filter(|i| matches!(&i.job, Job::PushStock { sku: s } if s == sku))
            .map(|i| i.account)
            .collect();
        out.sort();
        out
    }

    /// Every pending item leaves the queue, as once its worker sent it.
    fn all_sent(store: &Store) {
        let mut batch = WriteBatch::new(Utc::now());
        batch.complete = store
            .outbox_list(false)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        store.apply(batch).unwrap();
        assert!(store.outbox_list(false).unwrap().is_empty());
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

    /// The same window, seen from the channels: `stock set`'s pushes went
    /// out before the order was written, telling every channel 10. The
    /// order takes 3 of them and queues a push to every account that may
    /// list the SKU, so no channel keeps selling units that are gone (one
    /// whose channel said it does not list it is skipped when sent).
    #[test]
    fn an_order_planned_before_its_skus_first_level_tells_every_channel() {
        let (_dir, store) = open();
        let outbound = three_accounts();
        let not_listed = ListingState::NotListed { since: Utc::now() };
        store.set_listing("c", "MUG", &not_listed).unwrap();
        let write = planned_for(&store, &outbound.stock, None, stored(1, "MUG", 3));
        first_level_to(&store, &outbound, "MUG", 10);
        assert_eq!(pushes_of(&store, "MUG"), ["a", "b"]);
        all_sent(&store);
        store.apply(write).unwrap();
        assert_eq!(figures(&store, "MUG"), (10, 3, 7));
        let queued = pushes_of(&store, "MUG");
        assert!(["a", "b"].iter().all(|a| queued.contains(&a.to_string())));
        assert!(queued.iter().all(|a| ["a", "b", "c"].contains(&a.as_str())));
        assert_eq!(queued.len(), queued.iter().collect::<BTreeSet<_>>().len());
    }

    /// Pushes still coalesce: an order written while `stock set`'s pushes
    /// wait folds into them (one push per account, sending the newest
    /// level), and so does a second order of the same SKU.
    #[test]
    fn pushes_of_an_order_written_after_the_first_level_fold_into_waiting_ones() {
        let (_dir, store) = open();
        let outbound = three_accounts();
        let first = planned_for(&store, &outbound.stock, None, stored(1, "MUG", 3));
        let second = planned_for(&store, &outbound.stock, None, stored(2, "MUG", 1));
        first_level_to(&store, &outbound, "MUG", 10);
        store.apply(first).unwrap();
        store.apply(second).unwrap();
        assert_eq!(figures(&store, "MUG"), (10, 4, 6));
        assert_eq!(pushes_of(&store, "MUG"), ["a", "b", "c"]);
    }

    /// The reverse: a SKU with no level when the order is written is
    /// neither reserved nor pushed (there is nothing to tell a channel);
    /// its first `stock set` later counts the order and queues the pushes.
    #[test]
    fn an_order_written_before_its_skus_first_level_queues_no_push() {
        let (_dir, store) = open();
        let outbound = three_accounts();
        let write = planned_for(&store, &outbound.stock, None, stored(1, "MUG", 3));
        store.apply(write).unwrap();
        assert_eq!(store.stock_get("MUG").unwrap(), None);
        assert!(pushes_of(&store, "MUG").is_empty());
        assert!(store.outbox_list(false).unwrap().is_empty());
        first_level_to(&store, &outbound, "MUG", 10);
        assert_eq!(figures(&store, "MUG"), (10, 3, 7));
        assert_eq!(pushes_of(&store, "MUG"), ["a", "b", "c"]);
    }

    /// An order of an account whose channel said it does not list the SKU
    /// shows that it does: the listing is written with the order, and the
    /// order's push goes to that account too. A write that is refused (the
    /// order was written by another writer meanwhile) leaves the listing as
    /// it was, and a reference learned meanwhile is kept.
    #[test]
    fn the_selling_accounts_listing_is_written_with_its_order_or_not_at_all() {
        let (_dir, store) = open();
        let outbound = three_accounts();
        first_level_to(&store, &Outbound::default(), "MUG", 10);
        // Stored to the second.
        let since = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let not_listed = ListingState::NotListed { since };
        store.set_listing("a", "MUG", &not_listed).unwrap();

        let refused = planned_for(&store, &outbound.stock, None, stored(1, "MUG", 3));
        let mut other = WriteBatch::new(Utc::now());
        other.orders = vec![OrderWrite::FromChannel {
            expected_revision: None,
            order: stored(1, "MUG", 3),
            outbox: vec![],
        }];
        store.apply(other).unwrap();
        assert!(matches!(
            store.apply(refused),
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(store.listing("a", "MUG").unwrap(), Some(not_listed.clone()));
        assert!(store.outbox_list(false).unwrap().is_empty());

        let write = planned_for(&store, &outbound.stock, None, stored(2, "MUG", 1));
        store.apply(write).unwrap();
        assert_eq!(
            store.listing("a", "MUG").unwrap(),
            Some(ListingState::Listed)
        );
        assert_eq!(pushes_of(&store, "MUG"), ["a", "b", "c"]);

        store.set_listing("a", "TEE", &not_listed).unwrap();
        let write = planned_for(&store, &outbound.stock, None, stored(3, "TEE", 1));
        let learned = ListingState::Ref("gid://shopify/InventoryItem/7".into());
        store.set_listing("a", "TEE", &learned).unwrap();
        store.apply(write).unwrap();
        assert_eq!(store.listing("a", "TEE").unwrap(), Some(learned));
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
