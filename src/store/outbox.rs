//! The outbox in the store: durable outbound items, coalescing by key while
//! pending, and the dead-letter state. Beside the items it keeps a due
//! index, (account, next attempt, id) of every pending item, which is all a
//! worker reads, the ids of the dead letters, which is all `outbox list
//! --dead` and `outbox retry --all-dead` read, and per-account counts of
//! pending and dead items, which is all `/metrics` reads; all are written
//! in the same transaction as the item. `outbox list` reads a page at a
//! time, in queue order. The workers that send items live elsewhere; this is only their
//! queue.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use chrono::{DateTime, Utc};

use super::codec::{SEP, check_key_part, decode, encode, outbox_id, pair_key, time_key};
use super::tx::{Tx, TxResult, abort, read_count};
use super::{
    COALESCE, MAX_PAGE, NewOutboxItem, OUTBOX, OutboxItem, OutboxPage, OutboxState, PAGE_BUDGET,
    Store, StoreError, engine_err,
};

/// A new item with its id taken and its encodings done, ready for a transaction.
pub(crate) struct PreparedOutbox {
    item: OutboxItem,
    enc: Vec<u8>,
    /// (coalesce index key, encoded id).
    index: Option<(Vec<u8>, Vec<u8>)>,
}

/// `account NUL next-attempt id`: a pending item's place in the due index.
pub(crate) fn due_key(item: &OutboxItem) -> Vec<u8> {
    let mut k = Vec::with_capacity(item.account.len() + 9 + item.id.len());
    k.extend_from_slice(item.account.as_bytes());
    k.push(SEP);
    k.extend_from_slice(&time_key(item.next_attempt_at));
    k.extend_from_slice(item.id.as_bytes());
    k
}

const COUNT_PREFIX: &[u8] = b"outbox\0";

/// The counter of an account's items in one state.
pub(crate) fn count_key(state: OutboxState, account: &str) -> Vec<u8> {
    let mut k = COUNT_PREFIX.to_vec();
    k.extend_from_slice(state.as_str().as_bytes());
    k.push(SEP);
    k.extend_from_slice(account.as_bytes());
    k
}

/// Writes `new` over `old` (either may be absent) and keeps the due index,
/// the dead-letter index and the counts in step. The coalesce index is the caller's.
pub(crate) fn put_item(
    tx: &Tx<'_>,
    old: Option<&OutboxItem>,
    new: Option<(&OutboxItem, &[u8])>,
) -> TxResult<()> {
    if let Some(o) = old {
        match o.state {
            OutboxState::Pending => tx.outbox_due().remove(due_key(o))?,
            OutboxState::Dead => tx.outbox_dead().remove(o.id.as_bytes())?,
        };
        tx.add_count(&count_key(o.state, &o.account), -1)?;
    }
    match new {
        Some((n, enc)) => {
            match n.state {
                OutboxState::Pending => tx.outbox_due().insert(due_key(n), &[])?,
                OutboxState::Dead => tx.outbox_dead().insert(n.id.as_bytes(), &[])?,
            };
            tx.add_count(&count_key(n.state, &n.account), 1)?;
            tx.outbox().insert(n.id.as_bytes(), enc)?;
        }
        None => {
            if let Some(o) = old {
                tx.outbox().remove(o.id.as_bytes())?;
            }
        }
    }
    Ok(())
}

/// Adds an item, or folds it into the pending item with the same coalesce
/// key: that item keeps its id (its place in the queue) and attempts, and
/// takes the new job and the earlier of the two due times.
pub(crate) fn stage_outbox(tx: &Tx<'_>, p: &PreparedOutbox) -> TxResult<()> {
    if let Some((ikey, ival)) = &p.index {
        if let Some(v) = tx.coalesce().get(ikey.as_slice())? {
            let id: String = decode(COALESCE, ikey, &v).map_err(abort)?;
            if let Some(ev) = tx.outbox().get(id.as_bytes())? {
                let existing: OutboxItem = decode(OUTBOX, id.as_bytes(), &ev).map_err(abort)?;
                if existing.state == OutboxState::Pending {
                    let mut folded = existing.clone();
                    folded.job = p.item.job.clone();
                    folded.next_attempt_at = existing.next_attempt_at.min(p.item.next_attempt_at);
                    let enc = encode(OUTBOX, id.as_bytes(), &folded).map_err(abort)?;
                    return put_item(tx, Some(&existing), Some((&folded, &enc)));
                }
            }
        }
        tx.coalesce().insert(ikey.as_slice(), ival.as_slice())?;
    }
    put_item(tx, None, Some((&p.item, &p.enc)))
}

/// `Store::prepare_outbox` with the item's id taken (`n`): inside a
/// transaction, from `Tx::generate_id`.
pub(crate) fn prepare_with_id(
    new: NewOutboxItem,
    n: u64,
    now: DateTime<Utc>,
) -> Result<PreparedOutbox, StoreError> {
    let id = outbox_id(n);
    let item = OutboxItem {
        id,
        account: new.account,
        job: new.job,
        coalesce_key: new.coalesce_key,
        state: OutboxState::Pending,
        attempts: 0,
        next_attempt_at: new.not_before,
        last_error: None,
        created_at: now,
    };
    let enc = encode(OUTBOX, item.id.as_bytes(), &item)?;
    let index = match index_key(&item) {
        Some(k) => {
            let v = encode(COALESCE, &k, &item.id)?;
            Some((k, v))
        }
        None => None,
    };
    Ok(PreparedOutbox { item, enc, index })
}

fn index_key(item: &OutboxItem) -> Option<Vec<u8>> {
    item.coalesce_key
        .as_ref()
        .map(|k| pair_key(&item.account, k))
}

/// Removes the coalesce entry if it still points at this item.
fn unindex(tx: &Tx<'_>, item: &OutboxItem) -> TxResult<()> {
    if let Some(ikey) = index_key(item)
        && let Some(v) = tx.coalesce().get(ikey.as_slice())?
    {
        let id: String = decode(COALESCE, &ikey, &v).map_err(abort)?;
        if id == item.id {
            tx.coalesce().remove(ikey.as_slice())?;
        }
    }
    Ok(())
}

/// Whether an operation puts items back in the queue (a person's retry)
/// or not (the worker's own bookkeeping, a removal).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Requeue {
    No,
    Yes,
}

/// What an operation does to one item.
enum Change {
    Put(Box<OutboxItem>),
    Remove,
    Keep,
}

impl Store {
    pub(crate) fn prepare_outbox(
        &self,
        new: NewOutboxItem,
        now: DateTime<Utc>,
    ) -> Result<PreparedOutbox, StoreError> {
        check_key_part("account", &new.account)?;
        prepare_with_id(new, self.generate_id()?, now)
    }

    /// Queues items outside any order write (stock set, manual pushes).
    pub fn outbox_add(
        &self,
        items: Vec<NewOutboxItem>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut batch = super::WriteBatch::new(now);
        batch.outbox = items;
        self.apply(batch).map(|r| r.seq)
    }

    pub fn outbox_get(&self, id: &str) -> Result<Option<OutboxItem>, StoreError> {
        match self
            .trees()
            .outbox
            .get(id.as_bytes())
            .map_err(|e| engine_err(format!("read of outbox item {id}"), e))?
        {
            Some(v) => decode(OUTBOX, id.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Every pending item (or dead letter, with `dead`), in queue order:
    /// for small queues, tests and tools. `outbox list` reads pages.
    pub fn outbox_list(&self, dead: bool) -> Result<Vec<OutboxItem>, StoreError> {
        let mut out = Vec::new();
        self.outbox_each(dead, |item| {
            out.push(item);
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands each pending item (or dead letter, with `dead`) to `each`, one
    /// at a time: a delivery carries the order's body, and a destination
    /// down for a day leaves tens of thousands of them, too many to hold.
    pub fn outbox_each(
        &self,
        dead: bool,
        each: impl FnMut(OutboxItem) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.outbox_walk(dead, None, usize::MAX, usize::MAX, each)
            .map(drop)
    }

    /// One page of `outbox list`: up to `limit` (1 to [`MAX_PAGE`]) pending
    /// items, or dead letters with `dead`, in queue order (by id, oldest
    /// first) after the item `after` (a page's `next`). Ids never change and
    /// new items take larger ones, so a walk page by page shows each item at
    /// most once, and every item that stays in the queue (rescheduled or
    /// not) exactly once. Reads the page's items and the id after them,
    /// whatever the queue holds.
    pub fn outbox_page(
        &self,
        dead: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<OutboxPage, StoreError> {
        let after = after.map(checked_cursor).transpose()?;
        let mut items = Vec::new();
        let next =
            self.outbox_walk(dead, after, limit.clamp(1, MAX_PAGE), PAGE_BUDGET, |item| {
                items.push(item.summary());
                Ok(())
            })?;
        Ok(OutboxPage { items, next })
    }

    /// Hands up to `limit` items (pending, or dead with `dead`) after the id
    /// `after` to `each`, in id order; returns the id to go on after when
    /// more may match. Dead letters are read through their index. Pending
    /// items are the rest of the queue: the walk steps over the dead letters
    /// among them without decoding them, and stops after stepping over
    /// `budget` of them, handing back where it got to.
    fn outbox_walk(
        &self,
        dead: bool,
        after: Option<&str>,
        limit: usize,
        budget: usize,
        mut each: impl FnMut(OutboxItem) -> Result<(), StoreError>,
    ) -> Result<Option<String>, StoreError> {
        let t = self.trees();
        let range: (Bound<&[u8]>, Bound<&[u8]>) = (
            after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_bytes())),
            Bound::Unbounded,
        );
        let (want, what) = if dead {
            (OutboxState::Dead, "read of the dead-letter index")
        } else {
            (OutboxState::Pending, "read of the outbox")
        };
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, Option<sled::IVec>)>>> =
            if dead {
                Box::new(
                    t.outbox_dead
                        .range::<&[u8], _>(range)
                        .keys()
                        .map(|k| k.map(|k| (k, None))),
                )
            } else {
                Box::new(
                    t.outbox
                        .range::<&[u8], _>(range)
                        .map(|kv| kv.map(|(k, v)| (k, Some(v)))),
                )
            };
        let id_of = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        let (mut shown, mut stepped, mut last) = (0, 0, None);
        for entry in entries {
            let (key, value) = entry.map_err(|e| engine_err(what, e))?;
            let other = !dead
                && t.outbox_dead
                    .contains_key(&key)
                    .map_err(|e| engine_err("read of the dead-letter index", e))?;
            if !other && shown >= limit {
                // One more matches: the next page starts after the last seen.
                return Ok(last);
            }
            last = Some(id_of(&key));
            if other {
                stepped += 1;
                if stepped >= budget {
                    return Ok(last);
                }
                continue;
            }
            // Read apart from the index: an item gone or changed since is
            // left out.
            let item: OutboxItem =
                match value {
                    Some(v) => decode(OUTBOX, &key, &v)?,
                    None => match t.outbox.get(&key).map_err(|e| {
                        engine_err(format!("read of outbox item {}", id_of(&key)), e)
                    })? {
                        Some(v) => decode(OUTBOX, &key, &v)?,
                        None => continue,
                    },
                };
            if item.state == want {
                each(item)?;
                shown += 1;
            }
        }
        Ok(None)
    }

    /// Up to `limit` pending items of `account` due at `now`, in due order
    /// (then oldest first). Reads the due index: costs what it returns.
    pub fn outbox_due(
        &self,
        account: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut start = account.as_bytes().to_vec();
        start.push(SEP);
        let mut end = start.clone();
        end.extend_from_slice(&time_key(now));
        end.push(u8::MAX);
        let mut out = Vec::new();
        for kv in self.trees().outbox_due.range(start.clone()..end) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = kv.map_err(|e| engine_err("read of the outbox due index", e))?;
            let id = String::from_utf8_lossy(&k[start.len() + 8..]).into_owned();
            // Read apart from the index: an item completed meanwhile is gone.
            if let Some(item) = self.outbox_get(&id)?
                && item.state == OutboxState::Pending
            {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// When `account`'s earliest pending item is due, if it has one.
    pub fn outbox_next_due(&self, account: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut start = account.as_bytes().to_vec();
        start.push(SEP);
        match self.trees().outbox_due.scan_prefix(&start).next() {
            None => Ok(None),
            Some(kv) => {
                let (k, _) = kv.map_err(|e| engine_err("read of the outbox due index", e))?;
                let id = String::from_utf8_lossy(&k[start.len() + 8..]).into_owned();
                Ok(self.outbox_get(&id)?.map(|i| i.next_attempt_at))
            }
        }
    }

    /// (pending, dead), from the counts kept as items change.
    pub fn outbox_counts(&self) -> Result<(usize, usize), StoreError> {
        let (mut pending, mut dead) = (0, 0);
        for (p, d) in self.outbox_depths()?.values() {
            pending += p;
            dead += d;
        }
        Ok((pending, dead))
    }

    /// Per outbox account: (pending, dead). Reads only the counts.
    pub fn outbox_depths(&self) -> Result<BTreeMap<String, (usize, usize)>, StoreError> {
        let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for kv in self.trees().counts.scan_prefix(COUNT_PREFIX) {
            let (k, v) = kv.map_err(|e| engine_err("read of the outbox counts", e))?;
            let rest = &k[COUNT_PREFIX.len()..];
            let Some(sep) = rest.iter().position(|b| *b == SEP) else {
                continue;
            };
            let account = String::from_utf8_lossy(&rest[sep + 1..]).into_owned();
            let n = usize::try_from(read_count(Some(&v))).unwrap_or(0);
            let e = out.entry(account).or_default();
            match &rest[..sep] {
                b"pending" => e.0 += n,
                b"dead" => e.1 += n,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The item was delivered: it leaves the queue.
    pub fn outbox_complete(&self, id: &str) -> Result<(), StoreError> {
        self.outbox_change(&[id.to_owned()], true, Requeue::No, |_| Change::Remove)
            .map(drop)
    }

    /// A temporary failure: try again at `next_attempt_at`.
    pub fn outbox_reschedule(
        &self,
        id: &str,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.outbox_change(&[id.to_owned()], true, Requeue::No, move |item| {
            let mut item = item.clone();
            item.attempts = item.attempts.saturating_add(1);
            item.next_attempt_at = next_attempt_at;
            item.last_error = Some(error.clone());
            Change::Put(Box::new(item))
        })
        .map(drop)
    }

    /// A permanent failure: the item becomes a dead letter, keeping the reason.
    pub fn outbox_kill(&self, id: &str, error: &str) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.outbox_change(&[id.to_owned()], true, Requeue::No, move |item| {
            let mut item = item.clone();
            item.attempts = item.attempts.saturating_add(1);
            item.state = OutboxState::Dead;
            item.last_error = Some(error.clone());
            Change::Put(Box::new(item))
        })
        .map(drop)
    }

    /// Makes an item due at `now`. A dead item becomes pending again with its
    /// attempts reset (a fresh retry budget); its last error stays visible.
    pub fn outbox_retry(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.outbox_change(&[id.to_owned()], true, Requeue::Yes, move |item| {
            Change::Put(Box::new(retried(item, now)))
        })
        .map(drop)
    }

    /// Retries every dead item; returns how many.
    pub fn outbox_retry_all_dead(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.outbox_retry_dead_of(now).map(|(n, _)| n)
    }

    /// `outbox_retry_all_dead`, also naming the accounts of the items
    /// found dead, to wake their workers: one walk of the dead letters (their
    /// index, not the pending items) for both.
    pub fn outbox_retry_dead_of(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(usize, BTreeSet<String>), StoreError> {
        let (mut ids, mut accounts) = (Vec::new(), BTreeSet::new());
        self.outbox_each(true, |item| {
            ids.push(item.id);
            accounts.insert(item.account);
            Ok(())
        })?;
        if ids.is_empty() {
            return Ok((0, accounts));
        }
        // Items completed or retried since the scan are left alone.
        let n = self.outbox_change(&ids, false, Requeue::Yes, move |item| match item.state {
            OutboxState::Dead => Change::Put(Box::new(retried(item, now))),
            OutboxState::Pending => Change::Keep,
        })?;
        Ok((n, accounts))
    }

    /// Removes an item, pending or dead.
    pub fn outbox_drop(&self, id: &str) -> Result<(), StoreError> {
        self.outbox_change(&[id.to_owned()], true, Requeue::No, |_| Change::Remove)
            .map(drop)
    }

    /// Applies `op` to each item in one transaction, keeping the coalesce
    /// index pointing only at pending items. Returns how many items changed.
    fn outbox_change(
        &self,
        ids: &[String],
        must_exist: bool,
        requeue: Requeue,
        op: impl Fn(&OutboxItem) -> Change + Send + Sync + 'static,
    ) -> Result<usize, StoreError> {
        for id in ids {
            check_key_part("outbox item id", id)?;
        }
        // A person's retry puts items back in the queue: like a new item,
        // not sent before the write is on disk. The worker's own
        // reschedules are not: losing one only sends the item sooner.
        let queueing = (requeue == Requeue::Yes).then(|| self.queueing());
        let ids = ids.to_vec();
        let changed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = changed.clone();
        self.commit(
            "outbox update",
            Box::new(move |tx| {
                // Every item is read and decided before anything is staged,
                // so a missing one leaves the transaction untouched.
                let mut plan = Vec::with_capacity(ids.len());
                for id in &ids {
                    let key = id.as_bytes();
                    let Some(v) = tx.outbox().get(key)? else {
                        if must_exist {
                            return Ok(Err(StoreError::NotFound {
                                what: "outbox item",
                                id: id.clone(),
                            }));
                        }
                        continue;
                    };
                    let old: OutboxItem = decode(OUTBOX, key, &v).map_err(abort)?;
                    match op(&old) {
                        Change::Keep => {}
                        change => plan.push((old, change)),
                    }
                }
                for (old, change) in &plan {
                    stage_change(tx, old, change)?;
                }
                counted.store(plan.len(), std::sync::atomic::Ordering::SeqCst);
                Ok(Ok(()))
            }),
        )?;
        let changed = changed.load(std::sync::atomic::Ordering::SeqCst);
        if changed > 0 {
            let seq = self.next_seq();
            if let Some(q) = queueing {
                q.numbered(seq);
            }
        }
        Ok(changed)
    }
}

/// Removes a pending or dead item from the queue, if it is still there
/// (`WriteBatch::complete`).
pub(crate) fn stage_complete(tx: &Tx<'_>, id: &str) -> TxResult<()> {
    let key = id.as_bytes();
    if let Some(v) = tx.outbox().get(key)? {
        let old: OutboxItem = decode(OUTBOX, key, &v).map_err(abort)?;
        stage_change(tx, &old, &Change::Remove)?;
    }
    Ok(())
}

/// Writes one decided change of an item.
fn stage_change(tx: &Tx<'_>, old: &OutboxItem, change: &Change) -> TxResult<()> {
    let key = old.id.as_bytes();
    match change {
        Change::Keep => {}
        Change::Remove => {
            put_item(tx, Some(old), None)?;
            unindex(tx, old)?;
        }
        Change::Put(new) => {
            if new.state == OutboxState::Dead {
                unindex(tx, old)?;
            } else if old.state == OutboxState::Dead
                && let Some(ikey) = index_key(new)
                && tx.coalesce().get(ikey.as_slice())?.is_none()
            {
                // Back in the queue: newer items with its key fold into it.
                // If a newer pending item already owns the key, both stay
                // (FIFO still sends the newest payload last).
                let enc = encode(COALESCE, &ikey, &new.id).map_err(abort)?;
                tx.coalesce().insert(ikey.as_slice(), enc)?;
            }
            let enc = encode(OUTBOX, key, new.as_ref()).map_err(abort)?;
            put_item(tx, Some(old), Some((new, &enc)))?;
        }
    }
    Ok(())
}

/// An `outbox list` cursor is the id of the last item a page showed (an
/// id as `outbox_id` writes it).
fn checked_cursor(after: &str) -> Result<&str, StoreError> {
    let id = after.trim();
    if id.len() == outbox_id(0).len() && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(StoreError::InvalidCursor {
            cursor: after.chars().take(80).collect(),
        })
    }
}

fn retried(item: &OutboxItem, now: DateTime<Utc>) -> OutboxItem {
    let mut item = item.clone();
    if item.state == OutboxState::Dead {
        item.attempts = 0;
    }
    item.state = OutboxState::Pending;
    item.next_attempt_at = now;
    item
}

/// Queues `n` stock pushes of `shop-us` (SKUs `MUG-0`...) due at `now`
/// and returns their ids, in queue order: a queue for store tests.
#[cfg(test)]
pub(crate) fn queue_for_tests(store: &Store, n: usize, now: DateTime<Utc>) -> Vec<String> {
    let item = |n: usize| NewOutboxItem {
        account: "shop-us".into(),
        job: super::Job::PushStock {
            sku: format!("MUG-{n}"),
        },
        coalesce_key: None,
        not_before: now,
    };
    store.outbox_add((0..n).map(item).collect(), now).unwrap();
    ids_for_tests(store, false)
}

/// The ids of the pending items (or dead letters), in queue order.
#[cfg(test)]
pub(crate) fn ids_for_tests(store: &Store, dead: bool) -> Vec<String> {
    store
        .outbox_list(dead)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    /// A page of pending items steps over dead letters up to its budget,
    /// then ends early with a cursor; the walk goes on from there and
    /// still shows every pending item once.
    #[test]
    fn a_pending_page_ends_early_after_stepping_over_its_share_of_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let ids = queue_for_tests(&store, 6, Utc::now());
        // Pending, dead, dead, dead, pending, pending.
        for id in &ids[1..4] {
            store.outbox_kill(id, "400").unwrap();
        }
        let page = |after: Option<&str>| {
            let mut shown = Vec::new();
            let next = store
                .outbox_walk(false, after, 3, 2, |i| {
                    shown.push(i.id);
                    Ok(())
                })
                .unwrap();
            (shown, next)
        };
        let (shown, next) = page(None);
        assert_eq!(shown, [ids[0].clone()]);
        assert_eq!(next.as_deref(), Some(ids[2].as_str()), "stopped after two");
        let (shown, next) = page(next.as_deref());
        assert_eq!(shown, [ids[4].clone(), ids[5].clone()]);
        assert_eq!(next, None);
    }
}
