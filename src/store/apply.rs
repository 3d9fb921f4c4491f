//! `Store::apply`: a batch of order writes, a cursor, dedupe keys, outbox
//! items and stock changes, committed in one transaction or not at all.
//! sled may re-run the closure, and runs one transaction at a time, so
//! everything that can be decided from a read before it (the stored order,
//! what changed, encodings, index entries, ids) is decided before it; the
//! closure only checks that each order's revision is still the one read and
//! stages the writes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::codec::{
    append_history, check_key_part, decode, decode_order, decode_raw, encode, encode_order,
    encode_raw, encode_raw_text, stored_revision, time_key,
};
use super::index::{self, Entry, index_entries};
use super::listing::stage_listed;
use super::outbox::{PreparedOutbox, prepare_with_id, stage_complete, stage_outbox};
use super::reserved;
use super::tx::{Tx, TxResult, abort};
use super::{
    ApplyReport, CURSORS, DEDUPE, HISTORY, HistoryEntry, NewOutboxItem, OrderWrite, Payload,
    PushedLevel, STOCK, StockChange, StockLevel, Store, StoreError, StoredOrder, WriteBatch,
    WriteOutcome, engine_err, kept_for_good,
};

/// One order write, decided.
struct PreparedOrder {
    id: String,
    /// The revision read while preparing (None: no such order); the
    /// transaction refuses the batch if the stored one is another.
    seen: Option<u64>,
    outcome: WriteOutcome,
    order: Option<Vec<u8>>,
    raw: Option<Vec<u8>>,
    /// An encoded entry to append to the order's history.
    history: Option<Vec<u8>>,
    unindex: Vec<Entry>,
    index: Vec<Entry>,
    /// What changes in the open reservations.
    reserved: reserved::Change,
    outbox: Vec<PreparedOutbox>,
}

impl Store {
    /// Writes a batch atomically; see `OrderWrite` for the upsert rules. On
    /// any error nothing of the batch is written. Await
    /// `flushed(report.seq)` before telling anyone the batch is safe.
    pub fn apply(&self, mut batch: WriteBatch) -> Result<ApplyReport, StoreError> {
        let raws: Vec<Payload> = batch
            .orders
            .iter_mut()
            .map(|w| {
                let (OrderWrite::FromChannel { order, .. } | OrderWrite::Local { order, .. }) = w;
                Payload::Value(std::mem::take(&mut order.raw))
            })
            .collect();
        self.apply_with_payloads(batch, &raws)
    }

    /// `apply`, with the orders' raw payloads apart: `raws[i]` is the
    /// payload of `batch.orders[i]` (whose `raw` must be null). They stay
    /// the caller's, so one that tries again after a conflict need not copy
    /// every payload for every try, and a payload can be the text the
    /// channel sent.
    pub(crate) fn apply_with_payloads(
        &self,
        batch: WriteBatch,
        raws: &[Payload],
    ) -> Result<ApplyReport, StoreError> {
        let WriteBatch {
            now,
            orders,
            cursor,
            dedupe,
            outbox,
            stock,
            complete,
            fail_before_commit,
        } = batch;
        let raws = raws.iter().chain(std::iter::repeat(&Payload::NONE));
        // Orders this batch marks as taking part in reservations.
        let marked: std::collections::HashSet<&[u8]> = dedupe
            .iter()
            .filter(|(_, expires_at)| *expires_at >= kept_for_good())
            .filter_map(|(k, _)| reserved::marked_order(k.as_bytes()))
            .collect();
        let prepared = orders
            .into_iter()
            .zip(raws)
            .map(|(w, raw)| self.prepare_order(w, raw, now, &marked))
            .collect::<Result<Vec<_>, _>>()?;
        let cursor = match cursor {
            Some((account, c)) => {
                check_key_part("account", &account)?;
                let enc = encode(CURSORS, account.as_bytes(), &c)?;
                Some((account.into_bytes(), enc))
            }
            None => None,
        };
        let dedupe = dedupe
            .into_iter()
            .map(|(k, expires_at)| {
                check_key_part("dedupe key", &k)?;
                if expires_at >= kept_for_good() {
                    return Ok((k.into_bytes(), None));
                }
                let enc = encode(DEDUPE, k.as_bytes(), &expires_at)?;
                let mut expiry = time_key(expires_at).to_vec();
                expiry.extend_from_slice(k.as_bytes());
                Ok((k.into_bytes(), Some((enc, expiry))))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let outbox = outbox
            .into_iter()
            .map(|i| self.prepare_outbox(i, now))
            .collect::<Result<Vec<_>, _>>()?;
        let stock = stock
            .into_iter()
            .map(|c| self.prepare_stock(c, now))
            .collect::<Result<Vec<_>, _>>()?;
        for id in &complete {
            check_key_part("outbox item id", id)?;
        }

        let outcomes: Vec<(String, WriteOutcome)> =
            prepared.iter().map(|p| (p.id.clone(), p.outcome)).collect();
        let mut ids = std::collections::HashSet::new();
        if let Some(p) = prepared.iter().find(|p| !ids.insert(p.id.as_str())) {
            // Two writes of one order in one batch: the second was decided
            // without the first.
            return Err(StoreError::Conflict { id: p.id.clone() });
        }
        // A worker may read these items the moment they commit; it waits
        // for this write's flush before sending them (`outbox_flushed`).
        let queues = !outbox.is_empty()
            || prepared.iter().any(|p| !p.outbox.is_empty())
            || stock
                .iter()
                .any(|s| !s.pushes.is_empty() || !s.later.is_empty());
        let queueing = queues.then(|| self.queueing());
        let staged = Staged {
            now,
            prepared,
            cursor,
            dedupe,
            outbox,
            stock,
            complete,
        };
        let ops: Vec<Entry> = staged
            .prepared
            .iter()
            .flat_map(|p| p.unindex.iter().chain(&p.index).cloned())
            .chain(
                staged
                    .dedupe
                    .iter()
                    .filter(|(_, expiring)| expiring.is_none())
                    .map(|(k, _)| index::kept_entry(k)),
            )
            .collect();
        if fail_before_commit {
            // Alone, staged in full and then aborted: nothing may remain.
            self.trees().transact_indexed("write batch", &ops, |tx| {
                staged.write(tx)?.map_err(abort)?;
                Err::<(), _>(abort(StoreError::Injected))
            })?;
        } else {
            self.commit_indexed("write batch", Box::new(move |tx| staged.write(tx)), ops)?;
        }
        // Numbered even when nothing changed: an unchanged repeat must still
        // wait for the flush of the earlier write it matched.
        let seq = self.next_seq();
        if let Some(q) = queueing {
            q.numbered(seq);
        }
        Ok(ApplyReport { outcomes, seq })
    }

    /// Reads the stored order and decides what the write does. `marked`:
    /// the orders whose reservation marker the batch writes.
    fn prepare_order(
        &self,
        w: OrderWrite,
        raw: &Payload,
        now: DateTime<Utc>,
        marked: &std::collections::HashSet<&[u8]>,
    ) -> Result<PreparedOrder, StoreError> {
        let id = w.order_id().to_owned();
        check_key_part("order id", &id)?;
        let key = id.as_bytes();
        // A channel's new order (its writer read no order) is not read
        // again: the transaction refuses it anyway if one was written
        // meanwhile, and a read here waits while another transaction runs.
        let new_from_channel = matches!(
            w,
            OrderWrite::FromChannel {
                expected_revision: None,
                ..
            }
        );
        let stored = if new_from_channel {
            None
        } else {
            match self
                .trees()
                .orders
                .get(key)
                .map_err(|e| engine_err(format!("read of order {id}"), e))?
            {
                Some(v) => Some(decode_order(key, &v)?),
                None => None,
            }
        };
        let seen = stored.as_ref().map(|s| s.revision);
        let entry = |kind: &str, detail: String| -> Result<Vec<u8>, StoreError> {
            let e = HistoryEntry {
                at: now,
                kind: kind.to_owned(),
                detail,
            };
            encode(HISTORY, id.as_bytes(), &e)
        };
        let conflict = || StoreError::Conflict { id: id.clone() };
        let mut p = PreparedOrder {
            id: id.clone(),
            seen,
            outcome: WriteOutcome::Unchanged,
            order: None,
            raw: None,
            history: None,
            unindex: Vec::new(),
            index: Vec::new(),
            reserved: reserved::Change::default(),
            outbox: Vec::new(),
        };
        let (mut new, outbox) = match w {
            OrderWrite::FromChannel {
                order,
                expected_revision,
                outbox,
            } => {
                if expected_revision != seen {
                    return Err(conflict());
                }
                let raw = encode_payload(key, raw)?;
                match &stored {
                    None => {
                        p.outcome = WriteOutcome::Created;
                        p.history =
                            Some(entry("created", format!("status {}", order.order.status))?);
                        p.raw = Some(raw);
                    }
                    Some(s) if s.order.updated_at > order.order.updated_at => {
                        p.outcome = WriteOutcome::Stale;
                        p.history = Some(entry(
                            "stale_ignored",
                            format!(
                                "ignored channel version updated at {}; stored version is newer (updated at {})",
                                rfc3339(order.order.updated_at),
                                rfc3339(s.order.updated_at)
                            ),
                        )?);
                        return Ok(p);
                    }
                    Some(s) => {
                        let same = s.same_content(&order);
                        let raw_changed = match self.stored_raw(&id, s)? {
                            Some(old) if old == raw => false,
                            // Kept as parsed once and as sent the next time:
                            // the same payload in other bytes is no change.
                            Some(old) if same => !same_payload(key, &old, &raw),
                            _ => true,
                        };
                        if same && !raw_changed {
                            return Ok(p);
                        }
                        p.outcome = WriteOutcome::Updated;
                        p.history = Some(entry("updated", changed_fields(s, &order, raw_changed))?);
                        if raw_changed {
                            p.raw = Some(raw);
                        }
                    }
                }
                (order, outbox)
            }
            OrderWrite::Local {
                order,
                expected_revision,
                kind,
                detail,
                outbox,
            } => {
                match seen {
                    None if expected_revision == 0 => {
                        p.outcome = WriteOutcome::Created;
                        if !raw.is_none() {
                            p.raw = Some(encode_payload(key, raw)?);
                        }
                    }
                    None => {
                        return Err(StoreError::NotFound {
                            what: "order",
                            id: id.clone(),
                        });
                    }
                    Some(r) if r != expected_revision => return Err(conflict()),
                    Some(_) => p.outcome = WriteOutcome::Updated,
                }
                p.history = Some(entry(&kind, detail)?);
                (order, outbox)
            }
        };
        new.revision = seen.unwrap_or(0) + 1;
        p.order = Some(encode_order(key, &new)?);
        let old_keys = stored
            .as_ref()
            .map(|s| index_entries(&s.order))
            .unwrap_or_default();
        let new_keys = index_entries(&new.order);
        p.unindex = old_keys.difference(&new_keys).cloned().collect();
        p.index = new_keys.difference(&old_keys).cloned().collect();
        let old = stored.as_ref().map(|s| &s.order);
        let mut old_owed = old.map(reserved::owed);
        let mut new_owed = reserved::owed(&new.order);
        // The marker is looked up only when a version could owe anything,
        // and the entries could change (a delivery noted on an order, a
        // tag: they cannot).
        let same = old
            .zip(old_owed.as_ref())
            .is_some_and(|(o, owed)| reserved::same_entries((o, owed), (&new.order, &new_owed)));
        if !same && (old_owed.as_ref().is_some_and(|o| !o.is_empty()) || !new_owed.is_empty()) {
            // A marker is written with the order's first version and never
            // removed, so what was read before the transaction holds in it.
            // A new order this batch marks needs no read.
            let in_batch = marked.contains(key);
            let kept = match old {
                None if in_batch => true,
                _ => self.marked_for_reservations(&id)?,
            };
            if !kept && let Some(owed) = old_owed.as_mut() {
                owed.clear();
            }
            if !(kept || in_batch) {
                new_owed.clear();
            }
            p.reserved = reserved::change(old.zip(old_owed.as_ref()), (&new.order, &new_owed));
        }
        p.outbox = outbox
            .into_iter()
            .map(|i| self.prepare_outbox(i, now))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(p)
    }

    /// Checks a stock change's keys and prepares the pushes it may queue:
    /// now for a SKU its plan saw with a level (it keeps it), in the
    /// transaction for one that had none (it seldom gets one before then,
    /// and most such SKUs never do). The plan's read is trusted rather than
    /// repeated: a level that appeared since only moves the preparing into
    /// the transaction.
    fn prepare_stock(
        &self,
        change: StockChange,
        now: DateTime<Utc>,
    ) -> Result<PreparedStock, StoreError> {
        let (StockChange::Set { sku, .. }
        | StockChange::Adjust { sku, .. }
        | StockChange::Pushed { sku, .. }
        | StockChange::Listed { sku, .. }) = &change;
        check_key_part("sku", sku)?;
        if let StockChange::Listed { account, .. } = &change {
            check_key_part("account", account)?;
        }
        let mut prepared = PreparedStock {
            change,
            pushes: Vec::new(),
            later: Vec::new(),
        };
        if let StockChange::Adjust {
            pushes, level_seen, ..
        } = &mut prepared.change
            && !pushes.is_empty()
        {
            let pushes = std::mem::take(pushes);
            if *level_seen {
                prepared.pushes = pushes
                    .into_iter()
                    .map(|i| self.prepare_outbox(i, now))
                    .collect::<Result<_, _>>()?;
            } else {
                for i in &pushes {
                    check_key_part("account", &i.account)?;
                }
                prepared.later = pushes;
            }
        }
        Ok(prepared)
    }

    /// The stored raw payload's bytes (an order of the first layout still
    /// carries it inline).
    fn stored_raw(&self, id: &str, stored: &StoredOrder) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .trees()
            .raw
            .get(id.as_bytes())
            .map_err(|e| engine_err(format!("read of raw payload of {id}"), e))?
        {
            Some(v) => Ok(Some(v.to_vec())),
            None if stored.raw.is_null() => Ok(None),
            None => encode_raw(id.as_bytes(), &stored.raw).map(Some),
        }
    }
}

/// A payload in its stored form.
fn encode_payload(key: &[u8], raw: &Payload) -> Result<Vec<u8>, StoreError> {
    match raw {
        Payload::Value(v) => encode_raw(key, v),
        Payload::Text(text) => encode_raw_text(key, text),
    }
}

/// Whether two stored payloads hold the same JSON (one that cannot be read
/// is another).
fn same_payload(key: &[u8], a: &[u8], b: &[u8]) -> bool {
    match (decode_raw(key, a), decode_raw(key, b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// A dedupe key with its encoded expiry and its entry in the expiry index,
/// or None for a key kept for good (packed with the order indexes).
type StagedDedupe = (Vec<u8>, Option<(Vec<u8>, Vec<u8>)>);

/// A stock change with the pushes of an `Adjust`, staged only if the SKU
/// has a level when the transaction runs: prepared, or (`later`) to be
/// prepared then.
struct PreparedStock {
    change: StockChange,
    pushes: Vec<PreparedOutbox>,
    later: Vec<NewOutboxItem>,
}

/// Everything a batch writes, decided and encoded.
struct Staged {
    /// The batch's time: the pushes a transaction prepares are due then.
    now: DateTime<Utc>,
    prepared: Vec<PreparedOrder>,
    cursor: Option<(Vec<u8>, Vec<u8>)>,
    dedupe: Vec<StagedDedupe>,
    outbox: Vec<PreparedOutbox>,
    stock: Vec<PreparedStock>,
    complete: Vec<String>,
}

impl Staged {
    /// Checks every order's revision, then stages everything; a failed
    /// check stages nothing (see `tx::Write`).
    fn write(&self, tx: &Tx<'_>) -> TxResult<Result<(), StoreError>> {
        for p in &self.prepared {
            let key = p.id.as_bytes();
            let now = match tx.orders().get(key)? {
                Some(v) => Some(stored_revision(key, &v).map_err(abort)?),
                None => None,
            };
            if now != p.seen {
                return Ok(Err(StoreError::Conflict { id: p.id.clone() }));
            }
        }
        for p in &self.prepared {
            stage_order(tx, p)?;
            if matches!(p.outcome, WriteOutcome::Created | WriteOutcome::Updated) {
                for o in &p.outbox {
                    stage_outbox(tx, o)?;
                }
            }
        }
        if let Some((k, v)) = &self.cursor {
            tx.cursors().insert(k.as_slice(), v.as_slice())?;
        }
        for (k, expiring) in &self.dedupe {
            match expiring {
                Some((v, expiry)) => {
                    tx.dedupe().insert(k.as_slice(), v.as_slice())?;
                    tx.dedupe_expiry().insert(expiry.as_slice(), &[])?;
                }
                None => {
                    let (prefix, pos) = index::kept_entry(k);
                    index::add(tx, &prefix, &pos)?
                }
            }
        }
        for o in &self.outbox {
            stage_outbox(tx, o)?;
        }
        for c in &self.stock {
            stage_stock(tx, c, self.now)?;
        }
        for id in &self.complete {
            stage_complete(tx, id)?;
        }
        Ok(Ok(()))
    }
}

/// Stages an order whose revision was checked.
fn stage_order(tx: &Tx<'_>, p: &PreparedOrder) -> TxResult<()> {
    let key = p.id.as_bytes();
    if let Some(v) = &p.order {
        tx.orders().insert(key, v.as_slice())?;
    }
    if let Some(v) = &p.raw {
        tx.raw().insert(key, v.as_slice())?;
    }
    if let Some(e) = &p.history {
        // One value per order: a key per entry cost the engine's memory a
        // page record for every dozen entries.
        let mut all = tx
            .history()
            .get(key)?
            .map(|v| v.to_vec())
            .unwrap_or_default();
        append_history(&mut all, e);
        tx.history().insert(key, all)?;
    }
    for (prefix, pos) in &p.unindex {
        index::remove(tx, prefix, pos)?;
    }
    for (prefix, pos) in &p.index {
        index::add(tx, prefix, pos)?;
    }
    reserved::stage(tx, &p.reserved)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// "status: ready -> shipped; payment; lines": the top-level fields that
/// differ, with short scalar values shown.
fn changed_fields(old: &StoredOrder, new: &StoredOrder, raw_changed: bool) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let (Ok(Value::Object(a)), Ok(Value::Object(b))) = (
        serde_json::to_value(&old.order),
        serde_json::to_value(&new.order),
    ) {
        for (k, nv) in &b {
            let ov = a.get(k).unwrap_or(&Value::Null);
            if ov != nv {
                parts.push(match (short(ov), short(nv)) {
                    (Some(o), Some(n)) => format!("{k}: {o} -> {n}"),
                    _ => k.clone(),
                });
            }
        }
    } else if old.order != new.order {
        parts.push("order".to_owned());
    }
    let mut other = |name: &str, changed: bool| {
        if changed {
            parts.push(name.to_owned());
        }
    };
    other("channel_tags", old.channel_tags != new.channel_tags);
    other("rule_tags", old.rule_tags != new.rule_tags);
    other("manual_tags", old.manual_tags != new.manual_tags);
    other("manual_hold", old.manual_hold != new.manual_hold);
    other(
        "rule_hold",
        old.rule_hold != new.rule_hold || old.hold_rule != new.hold_rule,
    );
    other("notes", old.notes != new.notes);
    other("raw", raw_changed);
    parts.join("; ")
}

fn short(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("none".to_owned()),
        Value::String(s) if s.chars().count() <= 40 => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn stage_stock(tx: &Tx<'_>, prepared: &PreparedStock, now: DateTime<Utc>) -> TxResult<()> {
    let PreparedStock {
        change,
        pushes,
        later,
    } = prepared;
    let stock = tx.stock();
    let sku = match change {
        StockChange::Set { sku, .. }
        | StockChange::Adjust { sku, .. }
        | StockChange::Pushed { sku, .. } => sku,
        StockChange::Listed { account, sku } => return stage_listed(tx, account, sku),
    };
    let key = sku.as_bytes();
    let mut level: StockLevel = match stock.get(key)? {
        Some(v) => decode(STOCK, key, &v).map_err(abort)?,
        // A reservation or its release touches only a SKU that has a
        // central level when it is written, and queues its pushes only
        // then, decided here rather than from a read before the
        // transaction: a SKU's first `stock set` committed in between
        // counts the order as reserved, so its units must come off, and
        // every channel be told.
        None if matches!(change, StockChange::Adjust { .. }) => return Ok(()),
        None => StockLevel {
            sku: sku.clone(),
            available: 0,
            channels: Default::default(),
        },
    };
    match change {
        StockChange::Set { on_hand, .. } => {
            level.available = on_hand.saturating_sub(reserved::reserved_in(tx, sku)?)
        }
        StockChange::Adjust { delta, .. } => {
            level.available = level.available.saturating_add(*delta)
        }
        StockChange::Pushed {
            account,
            pushed,
            at,
            ..
        } => {
            level.channels.insert(
                account.clone(),
                PushedLevel {
                    pushed: *pushed,
                    at: *at,
                },
            );
        }
        // Returned above: it reads and writes no level.
        StockChange::Listed { .. } => {}
    }
    let enc = encode(STOCK, key, &level).map_err(abort)?;
    stock.insert(key, enc)?;
    for p in pushes {
        stage_outbox(tx, p)?;
    }
    for i in later {
        let p = prepare_with_id(i.clone(), tx.generate_id()?, now).map_err(abort)?;
        stage_outbox(tx, &p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn channel_order(id: &str, raw: Value) -> StoredOrder {
        let mut order = crate::store::order_for_tests(id);
        order.raw = raw;
        order
    }

    /// A reservation's pushes of a SKU with no level when its write was
    /// prepared: none are queued if it still has none when the write's
    /// transaction runs; if a `stock set` committed meanwhile, that
    /// transaction prepares them (ids and all) and queues them with the
    /// reservation.
    #[test]
    fn pushes_of_a_sku_without_a_level_are_prepared_by_a_transaction_that_finds_one() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("a store");
        let now = Utc::now();
        let push = |account: &str| NewOutboxItem {
            account: account.into(),
            job: crate::outbox::Job::PushStock { sku: "MUG".into() },
            coalesce_key: Some("stock:MUG".into()),
            not_before: now,
        };
        let reserve = |level_seen| StockChange::Adjust {
            sku: "MUG".into(),
            delta: -3,
            pushes: vec![push("a"), push("b")],
            level_seen,
        };
        let stage = |p: &PreparedStock| {
            store
                .trees()
                .transact("test", |tx| stage_stock(tx, p, now))
                .expect("committed");
        };
        let prepared = store.prepare_stock(reserve(false), now).expect("prepared");
        assert!(prepared.pushes.is_empty() && prepared.later.len() == 2);
        stage(&prepared);
        assert_eq!(store.stock_get("MUG").expect("read"), None);
        assert!(store.outbox_list(false).expect("read").is_empty());

        let prepared = store.prepare_stock(reserve(false), now).expect("prepared");
        let mut set = WriteBatch::new(now);
        set.stock = vec![StockChange::Set {
            sku: "MUG".into(),
            on_hand: 10,
        }];
        store.apply(set).expect("level set");
        stage(&prepared);
        assert_eq!(
            store.stock_get("MUG").expect("read").map(|l| l.available),
            Some(7)
        );
        let queued: Vec<(String, String)> = store
            .outbox_list(false)
            .expect("read")
            .into_iter()
            .map(|i| (i.account, i.coalesce_key.unwrap_or_default()))
            .collect();
        assert_eq!(
            queued,
            [("a", "stock:MUG"), ("b", "stock:MUG")].map(|(a, k)| (a.to_owned(), k.to_owned()))
        );
        // A plan that saw the level has the next reservation's pushes
        // prepared before its transaction; they fold into those waiting.
        let prepared = store.prepare_stock(reserve(true), now).expect("prepared");
        assert!(prepared.later.is_empty() && prepared.pushes.len() == 2);
        stage(&prepared);
        assert_eq!(store.outbox_list(false).expect("read").len(), 2);
    }

    /// A payload kept as the text the channel sent is stored as it is and
    /// reads back as the same JSON; the same payload written parsed the
    /// next time is no change, and neither is the text again. Another
    /// payload is an update that says so.
    #[test]
    fn a_payload_sent_as_text_is_stored_as_it_is() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("a store");
        let now = Utc::now();
        let text = r#"{ "n": 1, "b": [true, null], "a": "été" }"#.as_bytes().to_vec();
        let parsed: Value = serde_json::from_slice(&text).expect("json");
        let write = |expected_revision| OrderWrite::FromChannel {
            order: channel_order("a:1", Value::Null),
            expected_revision,
            outbox: vec![],
        };
        let apply = |expected_revision, raw: Payload| {
            let mut batch = WriteBatch::new(now);
            batch.orders = vec![write(expected_revision)];
            store
                .apply_with_payloads(batch, &[raw])
                .expect("written")
                .outcomes[0]
                .1
        };
        assert_eq!(
            apply(None, Payload::Text(text.clone())),
            WriteOutcome::Created
        );
        assert_eq!(
            store.raw_payload("a:1").expect("read"),
            Some(parsed.clone())
        );
        let stored = store.trees().raw.get(b"a:1").expect("read").expect("there");
        assert_eq!(
            stored.to_vec(),
            encode_raw_text(b"a:1", &text).expect("encoded")
        );

        assert_eq!(
            apply(Some(1), Payload::Value(parsed.clone())),
            WriteOutcome::Unchanged
        );
        assert_eq!(apply(Some(1), Payload::Text(text)), WriteOutcome::Unchanged);
        let other = br#"{"n":2}"#.to_vec();
        assert_eq!(apply(Some(1), Payload::Text(other)), WriteOutcome::Updated);
        assert_eq!(
            store.raw_payload("a:1").expect("read"),
            Some(serde_json::json!({ "n": 2 }))
        );
        let history = store.history("a:1").expect("history");
        assert_eq!(history.last().map(|e| e.detail.as_str()), Some("raw"));
    }
}
