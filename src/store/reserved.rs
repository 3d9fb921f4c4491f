//! Open stock reservations, kept per SKU as orders change. An order takes
//! part in reservations when its marker ([`reservation_marker`]) is kept
//! for good (packed beside the order's delivery marker, `index::kept_entry`,
//! so that a new order's markers rewrite one bucket), the marketplace does
//! not ship it from its own stock, and it is open; it then owes, for each
//! SKU of its lines, the units not shipped and not refunded
//! (`Line::open_quantity`, summed per SKU). What it owes is
//! written in the same transaction as the order (`apply.rs`), so it never
//! disagrees with the orders, and built once for a store of an earlier
//! layout (`migrate.rs`). `stock show` reads the entries of one SKU and
//! `stock set` one counter per SKU: neither reads an order.
//!
//! An entry is a key of its own in the `reservations` tree: the SKU (its
//! length, 2 bytes, then its bytes), then `status rank (1 byte), placed
//! time (8), order id, NUL, units (8)`. The entries of a SKU sort as the
//! open orders list, status by status, oldest first (an order id holds no
//! NUL, so it sorts as it does alone), and an entry carries its units, so
//! reading them reads no order. The SKU's total lives in the `counts` tree
//! under `reserved NUL sku`. A key per entry, not the packed buckets of the
//! order indexes: a bucket is looked up before the transaction (inside the
//! group commit's lead) and rewritten whole in it, so a new order wrote a
//! bucket per SKU rather than its entries; reservations are few (an entry
//! per SKU of each open order), so their keys cost the engine few pages.

use std::collections::{BTreeMap, BTreeSet};

use switchyard_contract::{Order, OrderStatus};

use super::codec::{SEP, time_key};
use super::index;
use super::tx::{Tx, TxResult, read_count};
use super::{RESERVATIONS, Reservation, Store, StoreError, engine_err};

const MARKER: &str = "outbound/reserve/";
/// The prefix of every SKU's counter of reserved units.
pub(crate) const TOTAL: &[u8] = b"reserved\0";
const TIME_LEN: usize = 8;
const UNITS_LEN: usize = 8;

/// The dedupe key, kept for good, that makes an order take part in
/// reservations: ingest records it with the order's first version, so an
/// order stored before reservations existed never reserves.
pub fn reservation_marker(order_id: &str) -> String {
    format!("{MARKER}{order_id}")
}

/// The order a dedupe key marks as taking part (None: another key).
pub(crate) fn marked_order(key: &[u8]) -> Option<&[u8]> {
    key.strip_prefix(MARKER.as_bytes())
}

/// Whether the order's marker is kept, as the order index tree holds it.
pub(crate) fn marked(order_index: &sled::Tree, order_id: &str) -> Result<bool, StoreError> {
    index::is_kept(order_index, reservation_marker(order_id).as_bytes())
}

/// The units `o` owes per SKU if it takes part (its marker is kept, which
/// the caller checks, and only when this is not empty): none unless it is
/// open and shipped by the merchant.
pub(crate) fn owed(o: &Order) -> BTreeMap<&str, i64> {
    let mut units = BTreeMap::new();
    if !o.status.is_open() || o.channel_fulfilled() {
        return units;
    }
    for l in &o.lines {
        let open = i64::from(l.open_quantity());
        if let Some(sku) = l.sku.as_deref()
            && open > 0
        {
            *units.entry(sku).or_insert(0) += open;
        }
    }
    units
}

fn rank(s: OrderStatus) -> u8 {
    OrderStatus::ALL
        .iter()
        .position(|x| *x == s)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

/// Where a SKU's entries start: its length and its bytes (cut at 65,535
/// bytes, alike when writing and reading).
fn sku_prefix(sku: &str) -> Vec<u8> {
    let v = sku.as_bytes();
    let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
    let mut k = len.to_be_bytes().to_vec();
    k.extend_from_slice(&v[..usize::from(len)]);
    k
}

/// The entries of what `o` owes.
fn entries(o: &Order, owed: &BTreeMap<&str, i64>) -> BTreeSet<Vec<u8>> {
    let mut at = Vec::with_capacity(1 + TIME_LEN + o.id.len() + 1 + UNITS_LEN);
    at.push(rank(o.status));
    at.extend_from_slice(&time_key(o.placed_at));
    at.extend_from_slice(o.id.as_bytes());
    at.push(SEP);
    owed.iter()
        .map(|(sku, units)| {
            let mut key = sku_prefix(sku);
            key.extend_from_slice(&at);
            key.extend_from_slice(&units.to_be_bytes());
            key
        })
        .collect()
}

/// Whether two versions of an order owe the same and would have the same
/// entries: then writing the order changes nothing in its reservations,
/// whether it takes part or not.
pub(crate) fn same_entries(
    old: (&Order, &BTreeMap<&str, i64>),
    new: (&Order, &BTreeMap<&str, i64>),
) -> bool {
    old.1 == new.1
        && (old.1.is_empty()
            || (rank(old.0.status) == rank(new.0.status)
                && old.0.placed_at == new.0.placed_at
                && old.0.id == new.0.id))
}

/// The counter of a SKU's reserved units.
pub(crate) fn total_key(sku: &str) -> Vec<u8> {
    let mut k = TOTAL.to_vec();
    k.extend_from_slice(sku.as_bytes());
    k
}

/// What writing an order changes in its reservations.
#[derive(Default)]
pub(crate) struct Change {
    /// Keys of the `reservations` tree to remove and to add.
    pub(crate) remove: Vec<Vec<u8>>,
    pub(crate) add: Vec<Vec<u8>>,
    /// (counter key, units added).
    pub(crate) totals: Vec<(Vec<u8>, i64)>,
}

/// From what `old` owed (`old_owed`) to what `new` owes.
pub(crate) fn change(
    old: Option<(&Order, &BTreeMap<&str, i64>)>,
    new: (&Order, &BTreeMap<&str, i64>),
) -> Change {
    let empty = BTreeMap::new();
    let (old_entries, old_owed) = match old {
        Some((o, owed)) => (entries(o, owed), owed),
        None => (BTreeSet::new(), &empty),
    };
    let new_entries = entries(new.0, new.1);
    let skus: BTreeSet<&str> = old_owed.keys().chain(new.1.keys()).copied().collect();
    let totals = skus
        .into_iter()
        .filter_map(|sku| {
            let delta =
                new.1.get(sku).copied().unwrap_or(0) - old_owed.get(sku).copied().unwrap_or(0);
            (delta != 0).then(|| (total_key(sku), delta))
        })
        .collect();
    Change {
        remove: old_entries.difference(&new_entries).cloned().collect(),
        add: new_entries.difference(&old_entries).cloned().collect(),
        totals,
    }
}

/// The units of `sku` that open orders have reserved, as the transaction
/// sees them (with what it has written so far).
pub(crate) fn reserved_in(tx: &Tx<'_>, sku: &str) -> TxResult<i64> {
    Ok(read_count(tx.counts().get(total_key(sku))?.as_deref()))
}

/// Writes a change in the transaction.
pub(crate) fn stage(tx: &Tx<'_>, change: &Change) -> TxResult<()> {
    for k in &change.remove {
        tx.reservations().remove(k.as_slice())?;
    }
    for k in &change.add {
        tx.reservations().insert(k.as_slice(), &[])?;
    }
    for (key, delta) in &change.totals {
        tx.add_count(key, *delta)?;
    }
    Ok(())
}

/// An entry's order id and units.
fn decode_entry<'p>(sku: &str, pos: &'p [u8]) -> Result<(&'p str, i64), StoreError> {
    let bad = || StoreError::Corrupt {
        tree: RESERVATIONS,
        key: format!("reservations of {sku}"),
        detail: "a reservation entry is malformed; rebuild the store from a backup".to_owned(),
    };
    let rest = pos.get(1 + TIME_LEN..).ok_or_else(bad)?;
    let (id, units) = rest
        .split_at_checked(rest.len().checked_sub(UNITS_LEN + 1).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    let (sep, units) = units.split_first().ok_or_else(bad)?;
    let units = <[u8; UNITS_LEN]>::try_from(units).map_err(|_| bad())?;
    if *sep != SEP {
        return Err(bad());
    }
    let id = std::str::from_utf8(id).map_err(|_| bad())?;
    Ok((id, i64::from_be_bytes(units)))
}

impl Store {
    /// The open reservations of `sku`: each open order that takes part and
    /// owes units of it, with those units, listed status by status
    /// (pending, ready, partially shipped), oldest first. Reads the SKU's
    /// entries only.
    pub fn reservations(&self, sku: &str) -> Result<Vec<Reservation>, StoreError> {
        let prefix = sku_prefix(sku);
        self.trees()
            .reservations
            .scan_prefix(&prefix)
            .map(|kv| {
                let (key, _) =
                    kv.map_err(|e| engine_err(format!("read of the reservations of {sku}"), e))?;
                let (id, units) = decode_entry(sku, &key[prefix.len()..])?;
                Ok(Reservation {
                    order_id: id.to_owned(),
                    units,
                })
            })
            .collect()
    }

    /// The units of `sku` that open orders have reserved (the sum of
    /// [`Store::reservations`]), read from its counter.
    pub fn reserved_units(&self, sku: &str) -> Result<i64, StoreError> {
        let v = self
            .trees()
            .counts
            .get(total_key(sku))
            .map_err(|e| engine_err(format!("read of the reserved units of {sku}"), e))?;
        Ok(read_count(v.as_deref()))
    }

    /// Whether the order takes part in reservations (its marker is kept).
    pub(crate) fn marked_for_reservations(&self, order_id: &str) -> Result<bool, StoreError> {
        marked(&self.trees().order_index, order_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_its_order_and_units_and_sorts_by_status_time_and_id() {
        let order = |id: &str, status: OrderStatus, minute: i64| -> Order {
            let mut o = crate::store::order_for_tests(id).order;
            o.status = status;
            o.placed_at += chrono::Duration::minutes(minute);
            o
        };
        let owed = BTreeMap::from([("MUG", 3)]);
        let pos = |o: &Order| entries(o, &owed).into_iter().next().expect("an entry");
        let a = order("s:10", OrderStatus::Ready, 0);
        let prefix = sku_prefix("MUG").len();
        assert_eq!(
            decode_entry("MUG", &pos(&a)[prefix..]).unwrap(),
            ("s:10", 3)
        );
        // An id that is a prefix of another sorts first, as it does alone.
        let sorted = [
            pos(&order("s:9", OrderStatus::Pending, 5)),
            pos(&order("s:1", OrderStatus::Ready, 0)),
            pos(&order("s:10", OrderStatus::Ready, 0)),
            pos(&order("s:2", OrderStatus::Ready, 0)),
            pos(&order("s:0", OrderStatus::Ready, 1)),
            pos(&order("s:0", OrderStatus::PartiallyShipped, 0)),
        ];
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
        assert!(decode_entry("MUG", &pos(&a)[prefix..prefix + 12]).is_err());
    }
}
