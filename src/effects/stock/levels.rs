//! Setting central levels by hand (`stock set`, `PUT /api/v1/stock`, a CSV
//! import): validate every entry, then write the levels and their pushes in
//! one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::push_items;
use crate::effects::Outbound;
use crate::store::{StockChange, StockView, Store, StoreError, WriteBatch};

/// One level, as `PUT /api/v1/stock` takes them: `[{ "sku", "available" }]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockUpdate {
    pub sku: String,
    pub available: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StockError {
    /// Every problem of the input; nothing was written.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `set_levels` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockWrite {
    pub skus: usize,
    /// Push items queued (after folding into pending ones, fewer calls).
    pub queued: usize,
    /// Await `store.flushed(seq)` (or `flush_blocking`) before acknowledging.
    pub seq: u64,
}

/// SKUs starting with this are refused: the prefix is kept for the daemon's
/// own markers.
const RESERVED: &str = "!";

/// Why a SKU cannot be used, if it cannot.
pub fn sku_problem(sku: &str) -> Option<String> {
    if sku.is_empty() {
        Some("sku is empty".to_owned())
    } else if sku.chars().any(char::is_control) {
        Some(format!("sku {sku:?} contains a control character"))
    } else if sku.trim() != sku {
        Some(format!("sku {sku:?} has leading or trailing spaces"))
    } else if sku.len() > 255 {
        let head: String = sku.chars().take(40).collect();
        Some(format!("sku {head:?}... is longer than 255 bytes"))
    } else if sku.starts_with(RESERVED) {
        Some(format!("sku {sku:?} must not start with {RESERVED:?}"))
    } else {
        None
    }
}

/// Checks levels: every SKU usable and given once, every quantity ≥ 0.
/// Problems name the entry only when there are several.
pub fn validate(updates: &[StockUpdate]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let several = updates.len() > 1;
    for (i, u) in updates.iter().enumerate() {
        let entry = if several {
            format!("entry {}: ", i + 1)
        } else {
            String::new()
        };
        if let Some(p) = sku_problem(&u.sku) {
            problems.push(format!("{entry}{p}"));
        }
        if u.available < 0 {
            problems.push(format!(
                "{entry}the level of {} must not be negative (got {}); 0 means none to sell",
                u.sku, u.available
            ));
        }
        if let Some(first) = seen.insert(&u.sku, i + 1) {
            problems.push(format!(
                "{entry}sku {} is already given in entry {first}",
                u.sku
            ));
        }
    }
    if updates.is_empty() {
        problems.push("no stock levels given".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Sets central levels and queues a push of each to every account that may
/// list it, in one transaction; all or nothing. Wakes the workers of this
/// process. Returns before the flush: await `store.flushed(write.seq)`.
pub fn set_levels(
    store: &Store,
    outbound: &Outbound,
    updates: &[StockUpdate],
    now: DateTime<Utc>,
) -> Result<StockWrite, StockError> {
    validate(updates).map_err(StockError::Invalid)?;
    let batch = levels_write(store, outbound, updates, now)?;
    let queued = batch.outbox.len();
    let accounts = crate::outbox::Wakers::accounts_of(&batch.outbox);
    let report = store.apply(batch)?;
    outbound.outbox.wakers.wake_accounts(&accounts);
    Ok(StockWrite {
        skus: updates.len(),
        queued,
        seq: report.seq,
    })
}

/// The write of `updates` and their pushes. What is given is on hand; open
/// orders' unshipped units are already promised, so what channels may sell
/// is on hand less those, which the store works out in the transaction that
/// writes the level (`StockChange::Set`): an order stored while this write
/// waits for its turn is counted. A push carries only the SKU; the worker
/// reads the quantity from the stored level when it sends.
fn levels_write(
    store: &Store,
    outbound: &Outbound,
    updates: &[StockUpdate],
    now: DateTime<Utc>,
) -> Result<WriteBatch, StoreError> {
    let mut batch = WriteBatch::new(now);
    for u in updates {
        batch.stock.push(StockChange::Set {
            sku: u.sku.clone(),
            on_hand: u.available,
        });
        batch
            .outbox
            .extend(push_items(store, &outbound.stock, &u.sku, now)?);
    }
    Ok(batch)
}

/// `stock show`: on hand, the open reservations with their orders, what is
/// available, and what each channel was last told.
pub fn show(store: &Store, sku: &str) -> Result<Option<StockView>, StoreError> {
    let Some(level) = store.stock_get(sku)? else {
        return Ok(None);
    };
    Ok(Some(level.view(store.reservations(sku)?)))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ingest::{Ingest, LiveRules, Source};
    use crate::store::StoreOptions;
    use rust_decimal::Decimal;
    use switchyard_contract::{Line, NormalizedOrder};

    pub(in crate::effects::stock) fn level(sku: &str, available: i64) -> StockUpdate {
        StockUpdate {
            sku: sku.into(),
            available,
        }
    }

    /// An open order of `units` of `sku`, first seen now.
    pub(in crate::effects::stock) fn order(n: u32, sku: &str, units: u32) -> NormalizedOrder {
        let mut order = crate::store::order_for_tests(&format!("a:{n}")).order;
        order.channel_order_id = n.to_string();
        order.lines = vec![Line {
            line_id: format!("{n}-1"),
            sku: Some(sku.into()),
            title: sku.into(),
            quantity: units,
            unit_price: Decimal::ONE,
            total: Decimal::from(units),
            discount: Decimal::ZERO,
            tax: None,
            refunded_quantity: 0,
            shipped_quantity: 0,
            options: vec![],
        }];
        let raw = serde_json::to_value(&order).unwrap();
        NormalizedOrder {
            order,
            notes: vec![],
            raw,
            raw_json: None,
        }
    }

    /// `stock set` builds its write, then waits for its turn to commit; an
    /// order stored meanwhile reserves units (and takes them off what was
    /// available). The level written still counts that order: what
    /// channels may sell is on hand less what open orders hold when the
    /// level is committed, not when the write was built.
    #[test]
    fn an_order_stored_while_a_level_waits_to_be_written_is_not_sold_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let outbound = Outbound::default();
        let ingest =
            Ingest::new(store.clone(), LiveRules::default()).with_outbound(outbound.clone());
        let now = Utc::now();
        let receive = |o: NormalizedOrder| {
            ingest.receive("a", vec![o], Source::Fetch, now).unwrap();
        };
        set_levels(&store, &outbound, &[level("MUG", 10)], now).unwrap();
        receive(order(1, "MUG", 2));
        let view = show(&store, "MUG").unwrap().unwrap();
        assert_eq!((view.on_hand, view.reserved, view.available), (10, 2, 8));

        let write = levels_write(&store, &outbound, &[level("MUG", 20)], now).unwrap();
        receive(order(2, "MUG", 3));
        store.apply(write).unwrap();
        let view = show(&store, "MUG").unwrap().unwrap();
        assert_eq!((view.on_hand, view.reserved, view.available), (20, 5, 15));
    }

    #[test]
    fn validation_lists_every_problem() {
        let e = validate(&[
            StockUpdate {
                sku: "A".into(),
                available: -1,
            },
            StockUpdate {
                sku: " B".into(),
                available: 1,
            },
            StockUpdate {
                sku: "A".into(),
                available: 2,
            },
        ])
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
