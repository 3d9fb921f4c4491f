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
    // What is given is on hand; open orders' unshipped units are already
    // promised, so what channels may sell is on hand less those.
    // The store keeps each SKU's reserved units: one read per SKU given.
    let mut batch = WriteBatch::new(now);
    for u in updates {
        let promised = store.reserved_units(&u.sku)?;
        batch.stock.push(StockChange::Set {
            sku: u.sku.clone(),
            available: u.available - promised,
        });
        batch
            .outbox
            .extend(push_items(store, &outbound.stock, &u.sku, now)?);
    }
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

/// `stock show`: on hand, the open reservations with their orders, what is
/// available, and what each channel was last told.
pub fn show(store: &Store, sku: &str) -> Result<Option<StockView>, StoreError> {
    let Some(level) = store.stock_get(sku)? else {
        return Ok(None);
    };
    Ok(Some(level.view(store.reservations(sku)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
