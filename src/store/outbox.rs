//! The outbox in the store: durable outbound items in FIFO order, coalescing
//! by key while pending, and the dead-letter state. The workers that send
//! items live elsewhere; this is only their queue.

use chrono::{DateTime, Utc};
use sled::Transactional;
use sled::transaction::TransactionalTree;

use super::codec::{check_key_part, decode, encode, outbox_id, pair_key};
use super::tx::{TxResult, abort, tx_err};
use super::{
    COALESCE, NewOutboxItem, OUTBOX, OutboxItem, OutboxState, Store, StoreError, engine_err,
};

/// A new item with its id taken and its encodings done, ready for a transaction.
pub(crate) struct PreparedOutbox {
    item: OutboxItem,
    enc: Vec<u8>,
    /// (coalesce index key, encoded id).
    index: Option<(Vec<u8>, Vec<u8>)>,
}

/// Adds an item, or folds it into the pending item with the same coalesce
/// key: that item keeps its id (its place in the queue) and attempts, and
/// takes the new job and the earlier of the two due times.
pub(crate) fn stage_outbox(
    outbox: &TransactionalTree,
    coalesce: &TransactionalTree,
    p: &PreparedOutbox,
) -> TxResult<()> {
    if let Some((ikey, ival)) = &p.index {
        if let Some(v) = coalesce.get(ikey.as_slice())? {
            let id: String = decode(COALESCE, ikey, &v).map_err(abort)?;
            if let Some(ev) = outbox.get(id.as_bytes())? {
                let mut existing: OutboxItem = decode(OUTBOX, id.as_bytes(), &ev).map_err(abort)?;
                if existing.state == OutboxState::Pending {
                    existing.job = p.item.job.clone();
                    existing.next_attempt_at = existing.next_attempt_at.min(p.item.next_attempt_at);
                    let enc = encode(OUTBOX, id.as_bytes(), &existing).map_err(abort)?;
                    outbox.insert(id.as_bytes(), enc)?;
                    return Ok(());
                }
            }
        }
        coalesce.insert(ikey.as_slice(), ival.as_slice())?;
    }
    outbox.insert(p.item.id.as_bytes(), p.enc.as_slice())?;
    Ok(())
}

fn index_key(item: &OutboxItem) -> Option<Vec<u8>> {
    item.coalesce_key
        .as_ref()
        .map(|k| pair_key(&item.account, k))
}

/// Removes the coalesce entry if it still points at this item.
fn unindex(coalesce: &TransactionalTree, item: &OutboxItem) -> TxResult<()> {
    if let Some(ikey) = index_key(item)
        && let Some(v) = coalesce.get(ikey.as_slice())?
    {
        let id: String = decode(COALESCE, &ikey, &v).map_err(abort)?;
        if id == item.id {
            coalesce.remove(ikey.as_slice())?;
        }
    }
    Ok(())
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
        let id = outbox_id(self.generate_id()?);
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

    fn outbox_scan(&self) -> impl Iterator<Item = Result<OutboxItem, StoreError>> + '_ {
        self.trees().outbox.iter().map(|kv| {
            let (k, v) = kv.map_err(|e| engine_err("scan of outbox", e))?;
            decode(OUTBOX, &k, &v)
        })
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

    /// Pending items (or dead ones), oldest first.
    pub fn outbox_list(&self, dead: bool) -> Result<Vec<OutboxItem>, StoreError> {
        let want = if dead {
            OutboxState::Dead
        } else {
            OutboxState::Pending
        };
        let mut out = Vec::new();
        for item in self.outbox_scan() {
            let item = item?;
            if item.state == want {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Up to `limit` pending items of `account` due at `now`, oldest first.
    pub fn outbox_due(
        &self,
        account: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut out = Vec::new();
        for item in self.outbox_scan() {
            if out.len() >= limit {
                break;
            }
            let item = item?;
            if item.state == OutboxState::Pending
                && item.account == account
                && item.next_attempt_at <= now
            {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// (pending, dead).
    pub fn outbox_counts(&self) -> Result<(usize, usize), StoreError> {
        let (mut pending, mut dead) = (0, 0);
        for item in self.outbox_scan() {
            match item?.state {
                OutboxState::Pending => pending += 1,
                OutboxState::Dead => dead += 1,
            }
        }
        Ok((pending, dead))
    }

    /// The item was delivered: it leaves the queue.
    pub fn outbox_complete(&self, id: &str) -> Result<(), StoreError> {
        self.outbox_change(&[id.to_owned()], true, |_| Change::Remove)
            .map(drop)
    }

    /// A temporary failure: try again at `next_attempt_at`.
    pub fn outbox_reschedule(
        &self,
        id: &str,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.outbox_change(&[id.to_owned()], true, |item| {
            let mut item = item.clone();
            item.attempts = item.attempts.saturating_add(1);
            item.next_attempt_at = next_attempt_at;
            item.last_error = Some(error.to_owned());
            Change::Put(Box::new(item))
        })
        .map(drop)
    }

    /// A permanent failure: the item becomes a dead letter, keeping the reason.
    pub fn outbox_kill(&self, id: &str, error: &str) -> Result<(), StoreError> {
        self.outbox_change(&[id.to_owned()], true, |item| {
            let mut item = item.clone();
            item.attempts = item.attempts.saturating_add(1);
            item.state = OutboxState::Dead;
            item.last_error = Some(error.to_owned());
            Change::Put(Box::new(item))
        })
        .map(drop)
    }

    /// Makes an item due at `now`. A dead item becomes pending again with its
    /// attempts reset (a fresh retry budget); its last error stays visible.
    pub fn outbox_retry(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.outbox_change(&[id.to_owned()], true, |item| {
            Change::Put(Box::new(retried(item, now)))
        })
        .map(drop)
    }

    /// Retries every dead item; returns how many.
    pub fn outbox_retry_all_dead(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let ids = self
            .outbox_list(true)?
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>();
        if ids.is_empty() {
            return Ok(0);
        }
        // Items completed or retried since the scan are left alone.
        self.outbox_change(&ids, false, |item| match item.state {
            OutboxState::Dead => Change::Put(Box::new(retried(item, now))),
            OutboxState::Pending => Change::Keep,
        })
    }

    /// Removes an item, pending or dead.
    pub fn outbox_drop(&self, id: &str) -> Result<(), StoreError> {
        self.outbox_change(&[id.to_owned()], true, |_| Change::Remove)
            .map(drop)
    }

    /// Applies `op` to each item in one transaction, keeping the coalesce
    /// index pointing only at pending items. Returns how many items changed.
    fn outbox_change(
        &self,
        ids: &[String],
        must_exist: bool,
        op: impl Fn(&OutboxItem) -> Change,
    ) -> Result<usize, StoreError> {
        for id in ids {
            check_key_part("outbox item id", id)?;
        }
        let t = self.trees();
        let changed = (&t.outbox, &t.coalesce)
            .transaction(|(outbox, coalesce)| {
                let mut changed = 0;
                for id in ids {
                    let key = id.as_bytes();
                    let Some(v) = outbox.get(key)? else {
                        if must_exist {
                            return Err(abort(StoreError::NotFound {
                                what: "outbox item",
                                id: id.clone(),
                            }));
                        }
                        continue;
                    };
                    let old: OutboxItem = decode(OUTBOX, key, &v).map_err(abort)?;
                    match op(&old) {
                        Change::Keep => continue,
                        Change::Remove => {
                            outbox.remove(key)?;
                            unindex(coalesce, &old)?;
                        }
                        Change::Put(new) => {
                            if new.state == OutboxState::Dead {
                                unindex(coalesce, &old)?;
                            } else if old.state == OutboxState::Dead
                                && let Some(ikey) = index_key(&new)
                                && coalesce.get(ikey.as_slice())?.is_none()
                            {
                                // Back in the queue: newer items with its key fold into it.
                                // If a newer pending item already owns the key, both stay
                                // (FIFO still sends the newest payload last).
                                let enc = encode(COALESCE, &ikey, &new.id).map_err(abort)?;
                                coalesce.insert(ikey.as_slice(), enc)?;
                            }
                            let enc = encode(OUTBOX, key, &new).map_err(abort)?;
                            outbox.insert(key, enc)?;
                        }
                    }
                    changed += 1;
                }
                Ok(changed)
            })
            .map_err(|e| tx_err("outbox update", e))?;
        if changed > 0 {
            self.next_seq();
        }
        Ok(changed)
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
