//! Upgrades a store written by an earlier layout when it is opened, once.
//! Layout 1 (the first release) kept each order's raw payload inline and had
//! no indexes; layout 2 moved the payload to its own tree and built the
//! order indexes (an entry per key), the outbox due index and counts, and
//! the dedupe expiry index; layout 3 packs the order indexes into buckets
//! (a new tree; the old one is dropped once the new one is complete) and
//! packs the dedupe keys kept for good there too; layout 4 keeps each
//! order's history in one value (a new tree, the old one dropped after);
//! layout 5 indexes the outbox's dead letters (a new tree); layout 7 keeps
//! the open reservations of each SKU (`reserved.rs`, a new tree and a
//! counter per SKU), built from the open orders, which it reads through the
//! status index. Layout 6, a development build's for an afternoon, kept
//! them packed in the order index tree: they are removed and built again.
//! Layout 8 writes fewer index buckets per new order: an order's markers
//! kept for good are packed side by side (order id, then kind; layout 7
//! packed them at their key bytes, each kind apart), and the index of
//! routed open orders is gone (the start-up catch-up reads the status
//! index): the markers are moved and that index's buckets removed.
//! Orders, dedupe keys and markers are converted in batches, each one
//! transaction together with the position it reached (or, for the
//! markers, leaving what is left to move as the position), so a migration
//! that is interrupted (a crash, a kill) goes on from there the next time
//! the store opens, and nothing is converted twice or lost. Progress goes
//! to the log.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::codec::{SEP, append_history, decode, decode_order, encode_order, encode_raw, time_key};
use super::index::{self, index_entries};
use super::outbox::{count_key, due_key};
use super::reserved;
use super::{
    DEDUPE, OUTBOX, OrderFilter, OutboxItem, OutboxState, StoreError, Trees, engine_err,
    kept_for_good,
};
use switchyard_contract::OrderStatus;

/// The layout this code writes.
pub(crate) const LAYOUT: u8 = 8;
/// The layout that kept open reservations per SKU, before the markers kept
/// for good were packed by order: the steps from earlier layouts bring a
/// store there, then [`pack_markers_by_order`] to [`LAYOUT`].
const RESERVATIONS_LAYOUT: u8 = 7;
/// Layout 7's index of routed open orders (routed, not held, ready or
/// partially shipped), under this first byte.
const ROUTED_OPEN: u8 = b'd';
/// The layout before open reservations were kept: the steps from earlier
/// layouts bring a store there, then [`reserve_open_orders`] to [`LAYOUT`].
const DEAD_LETTERS_LAYOUT: u8 = 5;
/// The layout that kept open reservations packed in the order index tree,
/// under this first byte, with the same counters.
const PACKED_RESERVATIONS_LAYOUT: u8 = 6;
const PACKED_RESERVATIONS: u8 = b'v';
const LAYOUT_KEY: &[u8] = b"layout";
/// Layout 2's order index, an entry per key; dropped once layout 3's packed
/// one is built.
const UNPACKED_INDEX: &str = "order_index";
/// Layouts 1 to 3's history, an entry per key (order id, NUL, sequence);
/// dropped once layout 4's is built.
const ENTRY_HISTORY: &str = "history";
/// The last history key moved, while the history is being packed.
const HISTORY_DONE: &[u8] = b"migrate.history";
/// The last order id indexed, while layout 2's orders are being indexed.
const REINDEX_DONE: &[u8] = b"migrate.reindex";
/// The last order id converted, while the orders are being converted.
const ORDERS_DONE: &[u8] = b"migrate.orders";
/// The last dedupe key indexed, while the dedupe keys are being indexed.
const DEDUPE_DONE: &[u8] = b"migrate.dedupe";
/// The status rank and index position of the last open order whose
/// reservations were built.
const RESERVE_DONE: &[u8] = b"migrate.reserve";
/// An expiry entry is the 8-byte time key, then the dedupe key.
const TIME_KEY_LEN: usize = 8;
/// Records converted per transaction.
const BATCH: usize = 500;
/// How often progress is logged.
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Brings the store at `dir` to [`LAYOUT`]; a store already there costs one
/// read. `stop_after` (tests) converts that many orders, one per batch, and
/// then fails as a crash would.
pub(crate) fn run(
    db: &sled::Db,
    trees: &Trees,
    dir: &Path,
    stop_after: Option<usize>,
    progress: &dyn Fn(&str),
) -> Result<(), StoreError> {
    let layout = trees
        .meta
        .get(LAYOUT_KEY)
        .map_err(|e| engine_err("read of the store layout", e))?;
    match layout.as_deref() {
        Some([v]) if *v == LAYOUT => return drop_old_trees(db, dir),
        Some([v]) if *v > LAYOUT => {
            return Err(StoreError::Open {
                dir: dir.to_owned(),
                detail: format!(
                    "the store has layout {v}, written by a newer switchyard (this one reads up to {LAYOUT}); upgrade switchyard or restore a backup"
                ),
            });
        }
        _ => {}
    }
    let fresh = trees.orders.is_empty() && trees.outbox.is_empty() && trees.dedupe.is_empty();
    let started = Instant::now();
    if !fresh {
        tracing::info!(store = %dir.display(), "store: upgrading to layout {LAYOUT} (packed order indexes and history, payloads apart, dead letters indexed, open reservations per SKU, markers packed by order); this runs once and goes on where it stopped if interrupted");
        progress("upgrading the store: building its indexes");
    }
    if layout.as_deref() == Some(&[PACKED_RESERVATIONS_LAYOUT]) {
        unpack_reservations(trees)?;
    }
    let (orders, keys, items, history) = match layout.as_deref() {
        Some([DEAD_LETTERS_LAYOUT | PACKED_RESERVATIONS_LAYOUT | RESERVATIONS_LAYOUT]) => {
            (0, 0, 0, 0)
        }
        Some([from @ (2..=4)]) => {
            let (orders, keys) = if *from == 2 {
                (
                    reindex_orders(trees, stop_after, progress)?,
                    pack_kept_keys(trees)?,
                )
            } else {
                (0, 0)
            };
            let history = pack_history(db, trees)?;
            let dead = dead_letters(trees)?;
            trees.transact("store upgrade to layout 5", |tx| {
                for id in &dead {
                    tx.outbox_dead().insert(id.as_slice(), &[])?;
                }
                tx.meta().remove(REINDEX_DONE)?;
                tx.meta().remove(HISTORY_DONE)?;
                tx.meta().insert(LAYOUT_KEY, &[DEAD_LETTERS_LAYOUT])?;
                Ok(())
            })?;
            (orders, keys, dead.len() as u64, history)
        }
        _ => {
            let orders = convert_orders(trees, stop_after, progress)?;
            let keys = index_dedupe(trees)?;
            let history = pack_history(db, trees)?;
            (orders, keys, index_outbox(trees)?, history)
        }
    };
    let reserving = if layout.as_deref() == Some(&[RESERVATIONS_LAYOUT]) {
        0
    } else {
        reserve_open_orders(trees, stop_after, progress)?
    };
    let markers = pack_markers_by_order(trees, stop_after, progress)?;
    db.flush()
        .map_err(|e| engine_err("flush after the store upgrade", e))?;
    drop_old_trees(db, dir)?;
    if !fresh {
        tracing::info!(
            orders,
            dedupe_keys = keys,
            outbox_items = items,
            history_entries = history,
            open_orders_reserving = reserving,
            markers_moved = markers,
            seconds = started.elapsed().as_secs_f64(),
            "store: upgraded to layout {LAYOUT}"
        );
    }
    Ok(())
}

fn has_tree(db: &sled::Db, name: &str) -> bool {
    db.tree_names().iter().any(|n| n == name.as_bytes())
}

/// Drops the trees earlier layouts kept and this one replaced, once their
/// content is converted (again at the next open if a crash came between).
fn drop_old_trees(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    for old in [UNPACKED_INDEX, ENTRY_HISTORY] {
        if !has_tree(db, old) {
            continue;
        }
        tracing::info!(store = %dir.display(), tree = old, "store: dropping a tree of an earlier layout");
        let err = |e| engine_err(format!("drop of the old tree {old}"), e);
        // Emptied in batches first: the engine's drop reads every page of
        // a tree into memory at once (a heap profile of the upgrade of
        // 100,000 orders: 150 MB of its 295 MB peak), where removals go
        // through the page cache and stay within it.
        let tree = db.open_tree(old).map_err(err)?;
        loop {
            let keys = tree
                .iter()
                .keys()
                .take(10 * BATCH)
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            if keys.is_empty() {
                break;
            }
            let mut batch = sled::Batch::default();
            for k in keys {
                batch.remove(k);
            }
            tree.apply_batch(batch).map_err(err)?;
        }
        drop(tree);
        db.drop_tree(old).map_err(err)?;
    }
    Ok(())
}

/// History of layouts 1 to 3 (a key per entry, in order within each order)
/// into one value per order, in batches that resume where they stopped.
fn pack_history(db: &sled::Db, trees: &Trees) -> Result<u64, StoreError> {
    if !has_tree(db, ENTRY_HISTORY) {
        return Ok(0);
    }
    let old = db
        .open_tree(ENTRY_HISTORY)
        .map_err(|e| engine_err("open of the old history", e))?;
    let mut done = trees
        .meta
        .get(HISTORY_DONE)
        .map_err(|e| engine_err("read of the upgrade position", e))?
        .map(|v| v.to_vec());
    let mut count = 0u64;
    loop {
        let batch = next_batch(&old, done.as_deref(), "history", BATCH)?;
        let Some((last, _)) = batch.last() else {
            return Ok(count);
        };
        let last = last.to_vec();
        trees.transact("store upgrade of the history", |tx| {
            // Entries of one order are adjacent and in order; a batch may
            // end inside an order's, and the next one appends the rest.
            let mut packed: Vec<(&[u8], Vec<u8>)> = Vec::new();
            for (k, v) in &batch {
                let id = k.split(|b| *b == SEP).next().unwrap_or(k);
                if packed.last().is_none_or(|(last, _)| *last != id) {
                    let all = tx
                        .history()
                        .get(id)?
                        .map(|v| v.to_vec())
                        .unwrap_or_default();
                    packed.push((id, all));
                }
                if let Some((_, all)) = packed.last_mut() {
                    append_history(all, v);
                }
            }
            for (id, all) in &packed {
                tx.history().insert(*id, all.as_slice())?;
            }
            tx.meta().insert(HISTORY_DONE, last.as_slice())?;
            Ok(())
        })?;
        count += batch.len() as u64;
        done = Some(last);
    }
}

/// Layout 2's orders: their entries into the packed index.
fn reindex_orders(
    trees: &Trees,
    stop_after: Option<usize>,
    progress: &dyn Fn(&str),
) -> Result<u64, StoreError> {
    each_order_batch(trees, REINDEX_DONE, stop_after, progress, |batch, last| {
        let entries = batch
            .iter()
            .map(|(k, v)| decode_order(k, v).map(|o| index_entries(&o.order)))
            .collect::<Result<Vec<_>, _>>()?;
        let ops: Vec<_> = entries.into_iter().flatten().collect();
        trees.transact_indexed("store upgrade of the order indexes", &ops, |tx| {
            for (prefix, pos) in &ops {
                index::add(tx, prefix, pos)?;
            }
            tx.meta().insert(REINDEX_DONE, last)?;
            Ok(())
        })
    })
}

/// Walks the orders in batches from the position saved under `done_key`;
/// `convert` writes a batch and the position it reached (its last key) in
/// one transaction. `stop_after` (tests) converts that many orders, one per
/// batch, and then fails as a crash would.
fn each_order_batch(
    trees: &Trees,
    done_key: &[u8],
    stop_after: Option<usize>,
    progress: &dyn Fn(&str),
    convert: impl Fn(&[(sled::IVec, sled::IVec)], &[u8]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut done = trees
        .meta
        .get(done_key)
        .map_err(|e| engine_err("read of the upgrade position", e))?
        .map(|v| v.to_vec());
    let (mut count, mut last_report) = (0u64, Instant::now());
    loop {
        if stop_after.is_some_and(|n| count >= n as u64) {
            return Err(StoreError::Injected);
        }
        let size = if stop_after.is_some() { 1 } else { BATCH };
        let batch = next_batch(&trees.orders, done.as_deref(), "orders", size)?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        let last = last.to_vec();
        convert(&batch, &last)?;
        count += batch.len() as u64;
        done = Some(last);
        if last_report.elapsed() >= REPORT_EVERY {
            tracing::info!(orders = count, "store upgrade: orders converted so far");
            progress(&format!("upgrading the store: {count} orders indexed"));
            last_report = Instant::now();
        }
    }
    Ok(count)
}

/// Moves the dedupe keys kept for good (delivery and reservation markers,
/// one or two per order) out of the dedupe tree and the expiry index into
/// their packed set: the purge never reached them, and a key each cost
/// memory for nothing.
fn pack_kept_keys(trees: &Trees) -> Result<u64, StoreError> {
    let from = time_key(kept_for_good()).to_vec();
    let mut count = 0u64;
    loop {
        let batch = trees
            .dedupe_expiry
            .range(from.clone()..)
            .keys()
            .take(BATCH)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| engine_err("scan of dedupe expiries for the store upgrade", e))?;
        if batch.is_empty() {
            return Ok(count);
        }
        let ops: Vec<_> = batch
            .iter()
            .map(|e| index::kept_entry(&e[TIME_KEY_LEN..]))
            .collect();
        trees.transact_indexed("store upgrade of dedupe keys", &ops, |tx| {
            for (e, (prefix, pos)) in batch.iter().zip(&ops) {
                tx.dedupe_expiry().remove(e)?;
                tx.dedupe().remove(&e[TIME_KEY_LEN..])?;
                index::add(tx, prefix, pos)?;
            }
            Ok(())
        })?;
        count += batch.len() as u64;
    }
}

/// Layout 7: the open reservations of every open order that takes part,
/// read through the status index (the open orders, not the store), in
/// batches that each commit with the position they reached; then the
/// layout. Answers the orders that reserve.
fn reserve_open_orders(
    trees: &Trees,
    stop_after: Option<usize>,
    progress: &dyn Fn(&str),
) -> Result<u64, StoreError> {
    let done = trees
        .meta
        .get(RESERVE_DONE)
        .map_err(|e| engine_err("read of the upgrade position", e))?;
    let (mut rank, mut after) = match done.as_deref() {
        Some([rank, pos @ ..]) => (usize::from(*rank), Some(pos.to_vec())),
        _ => (0, None),
    };
    let size = if stop_after.is_some() { 1 } else { BATCH };
    let (mut read, mut reserving, mut last_report) = (0u64, 0u64, Instant::now());
    while let Some(status) = OrderStatus::ALL.get(rank).copied() {
        if !status.is_open() {
            (rank, after) = (rank + 1, None);
            continue;
        }
        if stop_after.is_some_and(|n| read >= n as u64) {
            return Err(StoreError::Injected);
        }
        let plan = index::Plan::of(&OrderFilter {
            status: Some(status),
            ..OrderFilter::default()
        });
        let walk = index::walk(
            &trees.order_index,
            &plan,
            after.as_deref(),
            true,
            size,
            usize::MAX,
        )?;
        let Some(last) = walk.positions.last() else {
            (rank, after) = (rank + 1, None);
            continue;
        };
        let mut keys = Vec::new();
        let mut totals: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for pos in &walk.positions {
            let Some(id) = index::key_id(pos, 0) else {
                continue;
            };
            let Some(v) = trees
                .orders
                .get(id.as_bytes())
                .map_err(|e| engine_err(format!("read of order {id} for the store upgrade"), e))?
            else {
                continue;
            };
            let o = decode_order(id.as_bytes(), &v)?;
            let owed = reserved::owed(&o.order);
            if owed.is_empty() || !marked_in_any_layout(trees, id)? {
                continue;
            }
            let change = reserved::change(None, (&o.order, &owed));
            keys.extend(change.add);
            for (k, d) in change.totals {
                *totals.entry(k).or_default() += d;
            }
            reserving += 1;
        }
        let mut at = vec![u8::try_from(rank).unwrap_or(u8::MAX)];
        at.extend_from_slice(last);
        trees.transact("store upgrade of open reservations", |tx| {
            for k in &keys {
                tx.reservations().insert(k.as_slice(), &[])?;
            }
            for (k, d) in &totals {
                tx.add_count(k, *d)?;
            }
            tx.meta().insert(RESERVE_DONE, at.as_slice())?;
            Ok(())
        })?;
        read += walk.positions.len() as u64;
        after = Some(last.clone());
        if last_report.elapsed() >= REPORT_EVERY {
            tracing::info!(
                open_orders = read,
                "store upgrade: open orders' reservations built so far"
            );
            progress(&format!(
                "upgrading the store: {read} open orders' reservations built"
            ));
            last_report = Instant::now();
        }
    }
    trees.transact("store upgrade to layout 7", |tx| {
        tx.meta().remove(RESERVE_DONE)?;
        tx.meta().insert(LAYOUT_KEY, &[RESERVATIONS_LAYOUT])?;
        Ok(())
    })?;
    Ok(reserving)
}

/// Whether the order's reservation marker is kept, where this layout
/// packs it or where layouts 3 to 7 did: the reservations of a store of
/// those layouts are built before its markers move.
fn marked_in_any_layout(trees: &Trees, id: &str) -> Result<bool, StoreError> {
    let marker = reserved::reservation_marker(id);
    let (prefix, old) = index::layout_7_kept(marker.as_bytes());
    Ok(reserved::marked(&trees.order_index, id)?
        || index::contains(&trees.order_index, &prefix, &old)?)
}

/// Layout 8: the markers kept for good moved from layout 7's positions
/// (their key bytes) to their order's (`index::kept_entry`), in batches
/// taken in the order of the new positions, each a transaction that
/// removes the old entries and adds the new ones, so what is left to move
/// is where an interrupted upgrade goes on; then the buckets of the index
/// of routed open orders removed, and the layout. Answers the markers
/// moved.
fn pack_markers_by_order(
    trees: &Trees,
    stop_after: Option<usize>,
    progress: &dyn Fn(&str),
) -> Result<u64, StoreError> {
    let size = if stop_after.is_some() { 1 } else { BATCH };
    let (mut moved, mut last_report) = (0u64, Instant::now());
    loop {
        let batch = index::layout_7_markers(&trees.order_index, size)?;
        if batch.is_empty() {
            break;
        }
        if stop_after.is_some_and(|n| moved >= n as u64) {
            return Err(StoreError::Injected);
        }
        let (prefix, _) = index::layout_7_kept(&[]);
        let ops: Vec<_> = batch
            .iter()
            .flat_map(|(old, new)| [(prefix.clone(), old.clone()), (prefix.clone(), new.clone())])
            .collect();
        trees.transact_indexed("store upgrade of markers", &ops, |tx| {
            // Removed first, so that the buckets the batch empties go and
            // the moved markers, taken in order, fill theirs.
            for (old, _) in &batch {
                index::remove(tx, &prefix, old)?;
            }
            for (_, new) in &batch {
                index::add_in_order(tx, &prefix, new)?;
            }
            Ok(())
        })?;
        moved += batch.len() as u64;
        if last_report.elapsed() >= REPORT_EVERY {
            tracing::info!(markers = moved, "store upgrade: markers moved so far");
            progress(&format!("upgrading the store: {moved} markers moved"));
            last_report = Instant::now();
        }
    }
    // Buckets of the index no reader is left for: removed outside a
    // transaction, as many as a batch at a time (the catch-up does not
    // run before the upgrade is over, and a crash here leaves the rest to
    // the next open).
    remove_prefix(&trees.order_index, &[ROUTED_OPEN], "routed open orders")?;
    trees.transact("store upgrade to layout 8", |tx| {
        tx.meta().insert(LAYOUT_KEY, &[LAYOUT])?;
        Ok(())
    })?;
    Ok(moved)
}

/// Removes every key of `tree` starting with `prefix`, a batch at a time.
fn remove_prefix(tree: &sled::Tree, prefix: &[u8], what: &str) -> Result<(), StoreError> {
    loop {
        let batch = tree
            .scan_prefix(prefix)
            .keys()
            .take(BATCH)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| engine_err(format!("scan of {what} for the store upgrade"), e))?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut remove = sled::Batch::default();
        for k in batch {
            remove.remove(k);
        }
        tree.apply_batch(remove)
            .map_err(|e| engine_err(format!("removal of {what} for the store upgrade"), e))?;
    }
}

/// Layout 6's reservations (packed buckets in the order index, and their
/// counters) removed in batches, then the store marked as layout 5, in one
/// transaction, so that [`reserve_open_orders`] builds them afresh, and a
/// crash before that mark removes what is left the next time.
fn unpack_reservations(trees: &Trees) -> Result<(), StoreError> {
    for (tree, prefix) in [
        (&trees.order_index, &[PACKED_RESERVATIONS][..]),
        (&trees.counts, reserved::TOTAL),
    ] {
        remove_prefix(tree, prefix, "layout 6 reservations")?;
    }
    trees.transact("store upgrade from layout 6", |tx| {
        tx.meta().remove(RESERVE_DONE)?;
        tx.meta().insert(LAYOUT_KEY, &[DEAD_LETTERS_LAYOUT])?;
        Ok(())
    })
}

/// Reads the next batch (at most `size`) of a tree after `done` (exclusive).
fn next_batch(
    tree: &sled::Tree,
    done: Option<&[u8]>,
    what: &str,
    size: usize,
) -> Result<Vec<(sled::IVec, sled::IVec)>, StoreError> {
    let iter = match done {
        Some(k) => {
            tree.range::<&[u8], _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))
        }
        None => tree.iter(),
    };
    iter.take(size)
        .map(|kv| kv.map_err(|e| engine_err(format!("scan of {what} for the store upgrade"), e)))
        .collect()
}

/// Orders: payload to its own tree, the revision in the header, index entries.
fn convert_orders(
    trees: &Trees,
    stop_after: Option<usize>,
    progress: &dyn Fn(&str),
) -> Result<u64, StoreError> {
    each_order_batch(trees, ORDERS_DONE, stop_after, progress, |batch, last| {
        let mut staged = Vec::with_capacity(batch.len());
        for (k, v) in batch {
            let mut o = decode_order(k, v)?;
            let raw = std::mem::take(&mut o.raw);
            let raw = if raw.is_null() {
                None
            } else {
                Some(encode_raw(k, &raw)?)
            };
            staged.push((
                k.to_vec(),
                encode_order(k, &o)?,
                raw,
                index_entries(&o.order),
            ));
        }
        let ops: Vec<_> = staged.iter().flat_map(|s| s.3.iter().cloned()).collect();
        trees.transact_indexed("store upgrade of orders", &ops, |tx| {
            for (k, order, raw, entries) in &staged {
                tx.orders().insert(k.as_slice(), order.as_slice())?;
                if let Some(raw) = raw {
                    tx.raw().insert(k.as_slice(), raw.as_slice())?;
                }
                for (prefix, pos) in entries {
                    index::add(tx, prefix, pos)?;
                }
            }
            tx.meta().insert(ORDERS_DONE, last)?;
            Ok(())
        })
    })
}

/// Dedupe keys: an entry per expiring key in the expiry index; the keys kept
/// for good packed.
fn index_dedupe(trees: &Trees) -> Result<u64, StoreError> {
    let mut done = trees
        .meta
        .get(DEDUPE_DONE)
        .map_err(|e| engine_err("read of the upgrade position", e))?
        .map(|v| v.to_vec());
    let mut count = 0u64;
    loop {
        let batch = next_batch(&trees.dedupe, done.as_deref(), "dedupe keys", BATCH)?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        let last = last.to_vec();
        let (mut expiring, mut kept) = (Vec::new(), Vec::new());
        for (k, v) in &batch {
            let expires: chrono::DateTime<chrono::Utc> = decode(DEDUPE, k, v)?;
            if expires >= kept_for_good() {
                kept.push((k.to_vec(), index::kept_entry(k)));
            } else {
                let mut e = time_key(expires).to_vec();
                e.extend_from_slice(k);
                expiring.push(e);
            }
        }
        let ops: Vec<_> = kept.iter().map(|(_, e)| e.clone()).collect();
        trees.transact_indexed("store upgrade of dedupe keys", &ops, |tx| {
            for e in &expiring {
                tx.dedupe_expiry().insert(e.as_slice(), &[])?;
            }
            // Kept for good: packed (see `pack_kept_keys`).
            for (k, (prefix, pos)) in &kept {
                tx.dedupe().remove(k.as_slice())?;
                index::add(tx, prefix, pos)?;
            }
            tx.meta().insert(DEDUPE_DONE, last.as_slice())?;
            Ok(())
        })?;
        count += batch.len() as u64;
        done = Some(last);
    }
    Ok(count)
}

/// The ids of the outbox's dead letters, for their index. One walk of the
/// outbox, once: what has not gone out yet, usually small.
fn dead_letters(trees: &Trees) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut dead = Vec::new();
    for kv in trees.outbox.iter() {
        let (k, v) = kv.map_err(|e| engine_err("scan of outbox for the store upgrade", e))?;
        let item: OutboxItem = decode(OUTBOX, &k, &v)?;
        if item.state == OutboxState::Dead {
            dead.push(k.to_vec());
        }
    }
    Ok(dead)
}

/// The outbox (what has not gone out yet: small): due index, dead-letter
/// index and counts, and the new layout recorded, in one transaction.
fn index_outbox(trees: &Trees) -> Result<u64, StoreError> {
    let (mut due, mut dead) = (Vec::new(), Vec::new());
    let mut counts: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for kv in trees.outbox.iter() {
        let (k, v) = kv.map_err(|e| engine_err("scan of outbox for the store upgrade", e))?;
        let item: OutboxItem = decode(OUTBOX, &k, &v)?;
        match item.state {
            OutboxState::Pending => due.push(due_key(&item)),
            OutboxState::Dead => dead.push(k.to_vec()),
        }
        *counts
            .entry(count_key(item.state, &item.account))
            .or_default() += 1;
    }
    let items = counts.values().sum::<i64>() as u64;
    trees.transact("store upgrade of the outbox", |tx| {
        for k in &due {
            tx.outbox_due().insert(k.as_slice(), &[])?;
        }
        for id in &dead {
            tx.outbox_dead().insert(id.as_slice(), &[])?;
        }
        for (k, n) in &counts {
            // Set, not added: the counts start here.
            tx.counts().insert(k.as_slice(), &n.to_be_bytes())?;
        }
        tx.meta().remove(ORDERS_DONE)?;
        tx.meta().remove(DEDUPE_DONE)?;
        tx.meta().remove(HISTORY_DONE)?;
        tx.meta().insert(LAYOUT_KEY, &[DEAD_LETTERS_LAYOUT])?;
        Ok(())
    })?;
    Ok(items)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::outbox::{ids_for_tests, queue_for_tests};
    use crate::store::{Store, StoreOptions};

    fn reopen(dir: &Path) -> Store {
        // The engine's own threads may hold the directory a moment after
        // the last close.
        Store::open_once_free(dir, StoreOptions::default()).unwrap()
    }

    /// A store of layout 4 had no dead-letter index: opened by this build,
    /// its dead letters are indexed once, and listing them, retrying them
    /// all and the pending items work as before.
    #[test]
    fn a_store_of_layout_4_gets_its_dead_letters_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let now = Utc::now();
        let all = queue_for_tests(&store, 4, now);
        store.outbox_kill(&all[0], "400 gone").unwrap();
        store.outbox_kill(&all[2], "400 gone").unwrap();
        assert_eq!(
            ids_for_tests(&store, true),
            [all[0].clone(), all[2].clone()]
        );
        // As layout 4 left it.
        store.trees().outbox_dead.clear().unwrap();
        store.trees().meta.insert(LAYOUT_KEY, &[4]).unwrap();
        assert!(ids_for_tests(&store, true).is_empty());
        store.close().unwrap();

        let store = reopen(dir.path());
        let layout = store.trees().meta.get(LAYOUT_KEY).unwrap();
        assert_eq!(layout.as_deref(), Some(&[LAYOUT][..]));
        assert_eq!(
            ids_for_tests(&store, true),
            [all[0].clone(), all[2].clone()]
        );
        assert_eq!(
            ids_for_tests(&store, false),
            [all[1].clone(), all[3].clone()]
        );
        assert_eq!(store.outbox_counts().unwrap(), (2, 2));
        assert_eq!(store.outbox_retry_all_dead(now).unwrap(), 2);
        assert!(ids_for_tests(&store, true).is_empty());
        assert_eq!(ids_for_tests(&store, false), all);
    }

    /// A store of layout 6 kept its reservations packed in the order index
    /// tree: opened by this build, they are gone from there and built again
    /// in their own tree, with totals counted once.
    #[test]
    fn a_store_of_layout_6_gets_its_reservations_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let mut order = crate::store::order_for_tests("a:1");
        order.order.lines = vec![
            serde_json::from_value(serde_json::json!({
                "line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 3,
                "unit_price": "1.00", "total": "3.00", "shipped_quantity": 1
            }))
            .unwrap(),
        ];
        let mut batch = crate::store::WriteBatch::new(Utc::now());
        batch.orders = vec![crate::store::OrderWrite::FromChannel {
            order,
            expected_revision: None,
            outbox: vec![],
        }];
        batch.dedupe = vec![(reserved::reservation_marker("a:1"), kept_for_good())];
        store.apply(batch).unwrap();
        assert_eq!(store.reserved_units("MUG").unwrap(), 2);
        // As layout 6 left it: packed entries (one stands for them), the
        // same counter, no tree of their own.
        let packed = [&[PACKED_RESERVATIONS][..], b"\0\x03MUG-packed"].concat();
        store.trees().order_index.insert(&packed, b"x").unwrap();
        store.trees().reservations.clear().unwrap();
        store.trees().meta.insert(LAYOUT_KEY, &[6]).unwrap();
        store.close().unwrap();

        let store = reopen(dir.path());
        let layout = store.trees().meta.get(LAYOUT_KEY).unwrap();
        assert_eq!(layout.as_deref(), Some(&[LAYOUT][..]));
        assert!(store.trees().order_index.get(&packed).unwrap().is_none());
        assert_eq!(store.reserved_units("MUG").unwrap(), 2, "counted once");
        let found = store.reservations("MUG").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].order_id.as_str(), found[0].units), ("a:1", 2));
    }

    /// Orders of every kind a filter tells apart, with their markers kept
    /// for good as ingest writes them: a reservation marker on most, a
    /// delivery marker on most routed ones (some routed open orders have
    /// none: released while the daemon was down, say), and two other keys
    /// kept for good.
    fn layout_7_orders(store: &Store) -> Vec<String> {
        use crate::store::{OrderWrite, WriteBatch};
        use switchyard_contract::Channel;
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-27T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let accounts = [
            ("shop-a", Channel::Shopify),
            ("etsy-b", Channel::Etsy),
            ("ebay-c", Channel::Ebay),
        ];
        let statuses = [
            OrderStatus::Ready,
            OrderStatus::Ready,
            OrderStatus::PartiallyShipped,
            OrderStatus::Pending,
            OrderStatus::Shipped,
            OrderStatus::Cancelled,
        ];
        let mut ids = Vec::new();
        for n in 0..90usize {
            let (account, channel) = accounts[n % 3];
            let id = format!("{account}:{n}");
            let mut o = crate::store::order_for_tests(&id);
            o.order.account = account.to_owned();
            o.order.channel = channel;
            o.order.status = statuses[n % statuses.len()];
            // Placed out of id order, some at the same time.
            o.order.placed_at = t0 + chrono::Duration::minutes(((n * 37) % 60) as i64);
            o.order.route = (n % 5 != 0).then(|| ["east", "west"][n % 2].to_owned());
            o.order.hold = (n % 7 == 0).then(|| "check".to_owned());
            o.order.tags = if n % 3 == 0 {
                vec!["vip".to_owned()]
            } else {
                vec![]
            };
            let shipped = u32::from(o.order.status == OrderStatus::PartiallyShipped);
            o.order.lines = vec![
                serde_json::from_value(serde_json::json!({
                    "line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 3,
                    "unit_price": "1.00", "total": "3.00", "shipped_quantity": shipped
                }))
                .unwrap(),
            ];
            let mut batch = WriteBatch::new(Utc::now());
            batch.orders = vec![OrderWrite::FromChannel {
                order: o,
                expected_revision: None,
                outbox: vec![],
            }];
            if n % 4 != 3 {
                batch
                    .dedupe
                    .push((reserved::reservation_marker(&id), kept_for_good()));
            }
            if n % 3 != 2 {
                batch
                    .dedupe
                    .push((format!("outbound/delivery/{id}"), kept_for_good()));
            }
            store.apply(batch).unwrap();
            ids.push(id);
        }
        let mut batch = WriteBatch::new(Utc::now());
        batch.dedupe = vec![
            ("shop-a:kept-event".to_owned(), kept_for_good()),
            ("outbound/no-order".to_owned(), kept_for_good()),
        ];
        store.apply(batch).unwrap();
        ids
    }

    /// What the store answers: every filter, the catch-up's orders, every
    /// marker and key kept for good, the reservations.
    fn answers(store: &Store, ids: &[String]) -> Vec<String> {
        let mut filters = vec![OrderFilter::default()];
        for s in OrderStatus::ALL {
            filters.push(OrderFilter {
                status: Some(s),
                ..OrderFilter::default()
            });
        }
        for a in ["shop-a", "etsy-b", "ebay-c"] {
            filters.push(OrderFilter {
                account: Some(a.to_owned()),
                held: Some(false),
                ..OrderFilter::default()
            });
        }
        filters.push(OrderFilter {
            channel: Some(switchyard_contract::Channel::Etsy),
            ..OrderFilter::default()
        });
        for r in ["east", "west"] {
            filters.push(OrderFilter {
                route: Some(crate::store::RouteFilter::Is(r.to_owned())),
                ..OrderFilter::default()
            });
        }
        filters.push(OrderFilter {
            route: Some(crate::store::RouteFilter::None),
            ..OrderFilter::default()
        });
        filters.push(OrderFilter {
            held: Some(true),
            ..OrderFilter::default()
        });
        filters.push(OrderFilter {
            tag: Some("VIP".to_owned()),
            status: Some(OrderStatus::Ready),
            ..OrderFilter::default()
        });
        let mut out: Vec<String> = filters
            .iter()
            .map(|f| {
                let found: Vec<String> = store
                    .list_orders(f)
                    .unwrap()
                    .into_iter()
                    .map(|o| o.order.id)
                    .collect();
                format!("{f:?}: {found:?}")
            })
            .collect();
        let mut open = std::collections::BTreeSet::new();
        let mut after = None;
        loop {
            let page = store.routed_open_orders(after.as_deref(), 4).unwrap();
            open.extend(page.orders.into_iter().map(|o| o.order.id));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        out.push(format!("catch-up: {open:?}"));
        let now = Utc::now();
        for id in ids {
            out.push(format!(
                "{id}: delivery {}, reserve {} ({})",
                store
                    .dedupe_seen(&format!("outbound/delivery/{id}"), now)
                    .unwrap(),
                store
                    .dedupe_seen(&reserved::reservation_marker(id), now)
                    .unwrap(),
                store.marked_for_reservations(id).unwrap(),
            ));
        }
        for key in ["shop-a:kept-event", "outbound/no-order", "shop-a:never"] {
            out.push(format!("{key}: {}", store.dedupe_seen(key, now).unwrap()));
        }
        out.push(format!(
            "MUG: {:?} {}",
            store.reservations("MUG").unwrap(),
            store.reserved_units("MUG").unwrap()
        ));
        out
    }

    /// Every entry kept for good, in order.
    fn kept_positions(store: &Store) -> Vec<Vec<u8>> {
        let plan = index::Plan {
            all_of: vec![index::layout_7_kept(&[]).0],
            none_of: None,
        };
        index::walk(
            &store.trees().order_index,
            &plan,
            None,
            true,
            usize::MAX,
            usize::MAX,
        )
        .unwrap()
        .positions
    }

    /// Lays the store out as layout 7 did: markers at their key bytes, and
    /// an index of routed open orders (routed, not held, ready or
    /// partially shipped).
    fn as_layout_7(store: &Store, ids: &[String]) {
        let (kept, _) = index::layout_7_kept(&[]);
        let mut moves = Vec::new();
        for pos in kept_positions(store) {
            if let Some(nul) = pos.iter().position(|b| *b == SEP) {
                let (id, kind) = (&pos[..nul], &pos[nul + 1..]);
                let old = [b"outbound/", kind, b"/", id].concat();
                moves.push((pos.clone(), old));
            }
        }
        let routed_open = index::prefix(ROUTED_OPEN, "");
        let mut open = Vec::new();
        for id in ids {
            let o = store.get_order(id).unwrap().unwrap().order;
            if o.route.is_some()
                && o.hold.is_none()
                && matches!(o.status, OrderStatus::Ready | OrderStatus::PartiallyShipped)
            {
                open.push(index::position(o.placed_at, id));
            }
        }
        assert!(!moves.is_empty() && !open.is_empty());
        let ops: Vec<_> = moves
            .iter()
            .flat_map(|(new, old)| [(kept.clone(), new.clone()), (kept.clone(), old.clone())])
            .chain(open.iter().map(|p| (routed_open.clone(), p.clone())))
            .collect();
        store
            .trees()
            .transact_indexed("as layout 7", &ops, |tx| {
                for (new, old) in &moves {
                    index::remove(tx, &kept, new)?;
                    index::add(tx, &kept, old)?;
                }
                for p in &open {
                    index::add(tx, &routed_open, p)?;
                }
                tx.meta().insert(LAYOUT_KEY, &[7])?;
                Ok(())
            })
            .unwrap();
    }

    fn routed_open_indexed(store: &Store) -> bool {
        let index = &store.trees().order_index;
        index.scan_prefix([ROUTED_OPEN]).next().is_some()
    }

    /// A store of layout 7 kept its markers at their key bytes (a new
    /// order's two markers two buckets apart) and an index of routed open
    /// orders: opened by this build, also after upgrades cut short, every
    /// filter, the catch-up, every marker and the reservations answer as
    /// they did; the markers sit by order, that index is gone, and the
    /// catch-up delivers the routed open orders never delivered, once.
    #[test]
    fn a_store_of_layout_7_gets_its_markers_packed_by_order_and_answers_as_before() {
        for interrupted in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let ids = layout_7_orders(&store);
            let before = answers(&store, &ids);
            let by_order = kept_positions(&store);
            as_layout_7(&store, &ids);
            assert!(routed_open_indexed(&store));
            assert_eq!(
                index::layout_7_markers(&store.trees().order_index, usize::MAX)
                    .unwrap()
                    .len(),
                by_order.len() - 2
            );
            store.close().unwrap();
            if interrupted {
                for _ in 0..3 {
                    let err =
                        Store::open_interrupted_for_tests(dir.path(), StoreOptions::default(), 7)
                            .unwrap_err();
                    assert!(matches!(err, StoreError::Injected), "{err}");
                }
            }

            let store = reopen(dir.path());
            let layout = store.trees().meta.get(LAYOUT_KEY).unwrap();
            assert_eq!(layout.as_deref(), Some(&[LAYOUT][..]));
            assert_eq!(answers(&store, &ids), before);
            assert_eq!(kept_positions(&store), by_order);
            assert!(!routed_open_indexed(&store));
            // Moved in order: the buckets they went to fill up (split in
            // halves, none would).
            let (kept, _) = index::layout_7_kept(&[]);
            let sizes: Vec<usize> = store
                .trees()
                .order_index
                .scan_prefix(&kept)
                .map(|kv| {
                    let (k, v) = kv.unwrap();
                    index::bucket_len(&k, &v).unwrap()
                })
                .collect();
            assert!(sizes.iter().all(|s| *s <= index::BUCKET_MAX), "{sizes:?}");
            assert!(
                sizes.iter().filter(|s| **s == index::BUCKET_MAX).count() >= 2,
                "{sizes:?}"
            );

            // The catch-up: the routed open orders without a delivery
            // marker, once.
            let outbound =
                crate::effects::Outbound::new(crate::effects::stock::StockTargets::new(vec![]));
            let undelivered = ids
                .iter()
                .filter(|id| {
                    let o = store.get_order(id).unwrap().unwrap().order;
                    crate::effects::deliveries::deliverable(&o).is_some()
                        && !store
                            .dedupe_seen(&format!("outbound/delivery/{id}"), Utc::now())
                            .unwrap()
                })
                .count();
            assert!(undelivered > 0);
            let queue = || {
                crate::effects::deliveries::queue_ready_orders(&store, &outbound, Utc::now())
                    .unwrap()
            };
            assert_eq!(queue(), undelivered);
            assert_eq!(queue(), 0);

            // A new order's markers sit side by side.
            let mut batch = crate::store::WriteBatch::new(Utc::now());
            batch.orders = vec![crate::store::OrderWrite::FromChannel {
                order: crate::store::order_for_tests("shop-a:new"),
                expected_revision: None,
                outbox: vec![],
            }];
            batch.dedupe = vec![
                ("outbound/delivery/shop-a:new".to_owned(), kept_for_good()),
                (reserved::reservation_marker("shop-a:new"), kept_for_good()),
            ];
            store.apply(batch).unwrap();
            let all = kept_positions(&store);
            let at = all
                .iter()
                .position(|p| p.as_slice() == b"shop-a:new\0delivery")
                .unwrap();
            assert_eq!(all[at + 1], b"shop-a:new\0reserve");
        }
    }
}
