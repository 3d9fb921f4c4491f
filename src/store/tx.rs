//! What every sled transaction of the store shares: one transaction over
//! every tree (sled serializes transactions anyway, so naming fewer trees
//! buys nothing), its result type, the counters kept inside it, the
//! mapping of sled's transaction errors onto `StoreError`, and the group
//! commit that lets concurrent writers share one transaction. A leaf of the
//! store, so that `apply.rs`, `outbox.rs` and `migrate.rs` use it without
//! using each other.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::{IVec, Transactional};
use tracing::Level;

use super::{
    COALESCE, COUNTS, CURSORS, DEDUPE, DEDUPE_EXPIRY, HISTORY, LISTING_REFS, META, ORDER_INDEX,
    ORDERS, OUTBOX, OUTBOX_DEAD, OUTBOX_DUE, RAW, RESERVATIONS, STOCK, StoreError, Trees,
    engine_err,
};

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

pub(crate) fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

pub(crate) fn tx_err(context: &str, e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => engine_err(context, e),
    }
}

/// For each `prefix ++ position` a transaction may touch, the last key of
/// the order index at or below it within the prefix (its bucket), as
/// committed when the transaction began, and whether that bucket is the
/// prefix's last. Looked up before the transaction: inside one, a read of a
/// tree by range waits on the transaction's own lock. Transactions run one
/// at a time (the combiner's leader lock, or the store upgrade before
/// anything else runs), so nothing changes between.
pub(crate) type Lookups = HashMap<Vec<u8>, Lookup>;

/// For each order index prefix that recent transactions wrote, its last
/// bucket as committed (None: the prefix has none). Every write of the
/// order index goes through `Trees::transact_indexed`, which keeps this up
/// to date as it commits, so the look-ups before a transaction answer from
/// it instead of reading the tree by range: a new order's ten or so index
/// entries lie past their prefix's last bucket, and those range reads took
/// a fifth of the group commit leader's time at a million orders.
#[derive(Default)]
pub(crate) struct Lasts(HashMap<Vec<u8>, Option<Bucket>>);

/// A bucket's key and its value as committed.
type Bucket = (Vec<u8>, IVec);

/// Prefixes [`Lasts`] keeps at most (one per index value: tags are the
/// many); past it, it starts afresh.
const LASTS_MAX: usize = 4096;

impl Lasts {
    /// Notes what a committed transaction, which looked up `lookups` and
    /// wrote `written` (its own buckets: Some written, None removed), left
    /// as each of its prefixes' last bucket. A prefix whose last bucket
    /// cannot be told without a read (it was removed and no bucket written
    /// above the ones left) is forgotten.
    fn committed(&mut self, lookups: &Lookups, written: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        if self.0.len() > LASTS_MAX {
            self.0.clear();
        }
        // Each prefix's last bucket when the transaction began, when known.
        let mut before: HashMap<&[u8], Option<Option<Bucket>>> = HashMap::new();
        for (at, l) in lookups {
            let known = before.entry(&at[..l.prefix_len]).or_insert(None);
            if l.last {
                *known = Some(l.bucket.clone());
            }
        }
        for (prefix, known) in before {
            let Some(start) = known.or_else(|| self.0.get(prefix).cloned()) else {
                self.0.remove(prefix);
                continue;
            };
            let removed_last = start
                .as_ref()
                .is_some_and(|(k, _)| matches!(written.get(k), Some(None)));
            let mut best = start.clone().filter(|(k, _)| !written.contains_key(k));
            let own = written.range::<Vec<u8>, _>((
                Bound::Included(prefix.to_vec()),
                super::index::past(prefix),
            ));
            for (k, v) in own {
                if let Some(v) = v
                    && best.as_ref().is_none_or(|(b, _)| k > b)
                {
                    best = Some((k.clone(), IVec::from(v.as_slice())));
                }
            }
            // A removed last bucket leaves the one below it last, unread,
            // unless a bucket written in the transaction lies above it.
            let known = match (&start, &best) {
                (Some((s, _)), Some((b, _))) => !removed_last || b > s,
                (Some(_), None) => !removed_last,
                (None, _) => true,
            };
            if known {
                self.0.insert(prefix.to_vec(), best);
            } else {
                self.0.remove(prefix);
            }
        }
    }

    /// The last bucket of `prefix` as kept (None: not kept).
    #[cfg(test)]
    pub(crate) fn get(&self, prefix: &[u8]) -> Option<&Option<Bucket>> {
        self.0.get(prefix)
    }

    /// Forgets everything (a transaction failed: whatever the engine kept
    /// of it is read again).
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// One entry of [`Lookups`].
#[derive(Clone, Debug)]
pub(crate) struct Lookup {
    /// How much of the looked-up key is the index prefix.
    pub(crate) prefix_len: usize,
    /// The bucket at or below the position (None: none), with its value as
    /// committed: the transaction need not read it again.
    pub(crate) bucket: Option<(Vec<u8>, IVec)>,
    /// No bucket of the prefix lies above it.
    pub(crate) last: bool,
}

/// The trees a transaction spans, in the order of `Tx`'s views.
pub(crate) const TX_TREES: [&str; 16] = [
    ORDERS,
    RAW,
    HISTORY,
    ORDER_INDEX,
    CURSORS,
    DEDUPE,
    DEDUPE_EXPIRY,
    OUTBOX,
    COALESCE,
    OUTBOX_DUE,
    COUNTS,
    STOCK,
    META,
    OUTBOX_DEAD,
    RESERVATIONS,
    LISTING_REFS,
];

/// What transactions read and wrote in one tree: each key written costs
/// the engine a page update, so the number of keys a write stages is what
/// its share of the engine's work follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeTally {
    /// Reads of a key (`get`) in the transaction.
    pub reads: u64,
    /// Keys written (inserted or overwritten), each once however often the
    /// transaction wrote it: the engine applies the last.
    pub inserts: u64,
    /// Keys removed, each once.
    pub removes: u64,
    /// Bytes of the keys and values written, and of the keys removed.
    pub bytes: u64,
}

impl TreeTally {
    fn add(&mut self, o: &TreeTally) {
        self.reads += o.reads;
        self.inserts += o.inserts;
        self.removes += o.removes;
        self.bytes += o.bytes;
    }
}

/// [`TreeTally`] per tree of a transaction (named as in [`TX_TREES`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally(pub [TreeTally; TX_TREES.len()]);

impl Tally {
    /// Each tree's figures, by name.
    pub fn trees(&self) -> impl Iterator<Item = (&'static str, &TreeTally)> {
        TX_TREES.iter().copied().zip(&self.0)
    }

    /// Keys written (inserted or removed) in every tree together.
    pub fn keys_written(&self) -> u64 {
        self.0.iter().map(|t| t.inserts + t.removes).sum()
    }

    pub fn bytes_written(&self) -> u64 {
        self.0.iter().map(|t| t.bytes).sum()
    }

    pub fn keys_read(&self) -> u64 {
        self.0.iter().map(|t| t.reads).sum()
    }

    /// What happened between `before` and this tally.
    pub fn since(&self, before: &Tally) -> Tally {
        let mut out = self.clone();
        for (o, b) in out.0.iter_mut().zip(&before.0) {
            o.reads -= b.reads;
            o.inserts -= b.inserts;
            o.removes -= b.removes;
            o.bytes -= b.bytes;
        }
        out
    }

    fn add(&mut self, o: &Tally) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            a.add(b);
        }
    }

    /// `tree:keys` for each tree written, for the log.
    fn describe(&self) -> String {
        self.trees()
            .filter(|(_, t)| t.inserts + t.removes > 0)
            .map(|(name, t)| format!("{name}:{}", t.inserts + t.removes))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What one tree of a transaction has read and written so far: the keys
/// written with the length of their last value (None: removed).
#[derive(Default)]
struct Counted {
    reads: Cell<u64>,
    written: RefCell<HashMap<IVec, Option<usize>>>,
}

impl Counted {
    fn tally(&self) -> TreeTally {
        let written = self.written.borrow();
        let mut t = TreeTally {
            reads: self.reads.get(),
            ..TreeTally::default()
        };
        for (k, v) in written.iter() {
            match v {
                Some(_) => t.inserts += 1,
                None => t.removes += 1,
            }
            t.bytes += (k.len() + v.unwrap_or(0)) as u64;
        }
        t
    }
}

/// One tree of a transaction, counting what is read and written in it
/// when the store counts (`Store::count_writes`, or the debug log on).
#[derive(Clone, Copy)]
pub(crate) struct Staging<'a> {
    tree: &'a TransactionalTree,
    counted: Option<&'a Counted>,
}

type Staged = Result<Option<IVec>, UnabortableTransactionError>;

impl Staging<'_> {
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> Staged {
        if let Some(c) = self.counted {
            c.reads.set(c.reads.get() + 1);
        }
        self.tree.get(key)
    }

    pub(crate) fn insert(&self, key: impl Into<IVec>, value: impl Into<IVec>) -> Staged {
        let (key, value): (IVec, IVec) = (key.into(), value.into());
        if let Some(c) = self.counted {
            c.written
                .borrow_mut()
                .insert(key.clone(), Some(value.len()));
        }
        self.tree.insert(key, value)
    }

    pub(crate) fn remove(&self, key: impl Into<IVec>) -> Staged {
        let key: IVec = key.into();
        if let Some(c) = self.counted {
            c.written.borrow_mut().insert(key.clone(), None);
        }
        self.tree.remove(key)
    }
}

/// The trees as one transaction sees them, and what the packed order index
/// needs beside them (`index.rs`): the buckets looked up before it began
/// and those it has written (Some) or removed (None) so far.
pub(crate) struct Tx<'a> {
    view: &'a [TransactionalTree],
    /// What each tree read and wrote, when counting.
    counted: Option<[Counted; TX_TREES.len()]>,
    pub(crate) lookups: &'a Lookups,
    pub(crate) buckets: RefCell<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl Tx<'_> {
    fn tree(&self, i: usize) -> Staging<'_> {
        Staging {
            tree: &self.view[i],
            counted: self.counted.as_ref().map(|c| &c[i]),
        }
    }

    /// What the transaction has read and staged so far (None: not
    /// counting).
    fn tally(&self) -> Option<Tally> {
        let c = self.counted.as_ref()?;
        Some(Tally(std::array::from_fn(|i| c[i].tally())))
    }

    pub(crate) fn orders(&self) -> Staging<'_> {
        self.tree(0)
    }
    pub(crate) fn raw(&self) -> Staging<'_> {
        self.tree(1)
    }
    pub(crate) fn history(&self) -> Staging<'_> {
        self.tree(2)
    }
    pub(crate) fn order_index(&self) -> Staging<'_> {
        self.tree(3)
    }
    pub(crate) fn cursors(&self) -> Staging<'_> {
        self.tree(4)
    }
    pub(crate) fn dedupe(&self) -> Staging<'_> {
        self.tree(5)
    }
    pub(crate) fn dedupe_expiry(&self) -> Staging<'_> {
        self.tree(6)
    }
    pub(crate) fn outbox(&self) -> Staging<'_> {
        self.tree(7)
    }
    pub(crate) fn coalesce(&self) -> Staging<'_> {
        self.tree(8)
    }
    pub(crate) fn outbox_due(&self) -> Staging<'_> {
        self.tree(9)
    }
    pub(crate) fn counts(&self) -> Staging<'_> {
        self.tree(10)
    }
    pub(crate) fn stock(&self) -> Staging<'_> {
        self.tree(11)
    }
    pub(crate) fn meta(&self) -> Staging<'_> {
        self.tree(12)
    }
    pub(crate) fn outbox_dead(&self) -> Staging<'_> {
        self.tree(13)
    }
    pub(crate) fn reservations(&self) -> Staging<'_> {
        self.tree(14)
    }
    pub(crate) fn listing_refs(&self) -> Staging<'_> {
        self.tree(15)
    }

    /// A new id, unique in the store (`Store::generate_id` would wait on
    /// the transaction lock this transaction holds).
    pub(crate) fn generate_id(&self) -> TxResult<u64> {
        self.view[0]
            .generate_id()
            .map_err(|e| abort(engine_err("id generation", e)))
    }

    /// Adds `delta` to a counter (missing counts as 0; a counter that
    /// reaches 0 is removed).
    pub(crate) fn add_count(&self, key: &[u8], delta: i64) -> TxResult<()> {
        if delta == 0 {
            return Ok(());
        }
        let now = read_count(self.counts().get(key)?.as_deref());
        let next = now.saturating_add(delta).max(0);
        if next == 0 {
            self.counts().remove(key)?;
        } else {
            self.counts().insert(key, &next.to_be_bytes())?;
        }
        Ok(())
    }
}

/// A stored counter's value (absent or malformed: 0).
pub(crate) fn read_count(v: Option<&[u8]>) -> i64 {
    v.and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_be_bytes)
        .unwrap_or(0)
}

impl Trees {
    /// Runs `f` as one transaction over every tree. sled may run `f` again,
    /// so it only reads, decides and stages writes.
    pub(crate) fn transact<A>(
        &self,
        context: &str,
        f: impl Fn(&Tx<'_>) -> TxResult<A>,
    ) -> Result<A, StoreError> {
        self.transact_indexed(context, [], f)
    }

    /// `transact` for a transaction that may add or remove `ops` in the
    /// order index.
    pub(crate) fn transact_indexed<'o, A>(
        &self,
        context: &str,
        ops: impl IntoIterator<Item = &'o (Vec<u8>, Vec<u8>)>,
        f: impl Fn(&Tx<'_>) -> TxResult<A>,
    ) -> Result<A, StoreError> {
        let lookups = self.lookups(ops)?;
        let trees = [
            &self.orders,
            &self.raw,
            &self.history,
            &self.order_index,
            &self.cursors,
            &self.dedupe,
            &self.dedupe_expiry,
            &self.outbox,
            &self.coalesce,
            &self.outbox_due,
            &self.counts,
            &self.stock,
            &self.meta,
            &self.outbox_dead,
            &self.reservations,
            &self.listing_refs,
        ];
        let counting = self.counting.load(Ordering::Relaxed) || tracing::enabled!(Level::DEBUG);
        // sled may run the closure more than once: what counts is the run
        // that committed, the last.
        let last = RefCell::new(None);
        let written = RefCell::new(BTreeMap::new());
        let out = trees[..]
            .transaction(|view| {
                let tx = Tx {
                    view,
                    counted: counting.then(Default::default),
                    lookups: &lookups,
                    buckets: RefCell::default(),
                };
                let out = f(&tx);
                *last.borrow_mut() = tx.tally();
                *written.borrow_mut() = tx.buckets.take();
                out
            })
            .map_err(|e| tx_err(context, e));
        match &out {
            Ok(_) => self.lasts.lock().committed(&lookups, &written.borrow()),
            Err(_) => self.lasts.lock().clear(),
        }
        let out = out?;
        if let Some(last) = last.into_inner() {
            tracing::debug!(
                context,
                keys_written = last.keys_written(),
                bytes_written = last.bytes_written(),
                keys_read = last.keys_read(),
                trees = %last.describe(),
                "store transaction committed"
            );
            self.tally.lock().add(&last);
        }
        Ok(out)
    }

    fn lookups<'o>(
        &self,
        ops: impl IntoIterator<Item = &'o (Vec<u8>, Vec<u8>)>,
    ) -> Result<Lookups, StoreError> {
        let mut out = Lookups::new();
        for (prefix, pos) in ops {
            let mut at = prefix.clone();
            at.extend_from_slice(pos);
            if out.contains_key(&at) {
                continue;
            }
            // A new order's positions are mostly past every entry of their
            // prefix (placed just now): the prefix's last bucket holds them,
            // and one look-up finds it and that it is the last.
            let err = |e| engine_err("read of order index", e);
            let cached = self.lasts.lock().0.get(prefix).cloned();
            let last = match cached {
                Some(last) => last,
                None => self
                    .order_index
                    .range::<Vec<u8>, _>((
                        Bound::Included(prefix.clone()),
                        super::index::past(prefix),
                    ))
                    .next_back()
                    .transpose()
                    .map_err(err)?
                    .map(|(k, v)| (k.to_vec(), v)),
            };
            let lookup = match last {
                Some((k, _)) if k > at => Lookup {
                    prefix_len: prefix.len(),
                    bucket: self
                        .order_index
                        .range(prefix.clone()..=at.clone())
                        .next_back()
                        .transpose()
                        .map_err(err)?
                        .map(|(k, v)| (k.to_vec(), v)),
                    last: false,
                },
                bucket => Lookup {
                    prefix_len: prefix.len(),
                    bucket,
                    last: true,
                },
            };
            out.insert(at, lookup);
        }
        Ok(out)
    }
}

/// A write to run inside a transaction: it reads and checks first and
/// answers `Ok(Err(..))` (having staged nothing) when its checks fail, so a
/// transaction shared with other writes can still commit theirs. `Err`
/// (an abort) fails the shared transaction; each write then runs alone.
pub(crate) type Write = dyn Fn(&Tx<'_>) -> TxResult<Result<(), StoreError>> + Send + Sync;

struct Entry {
    write: Box<Write>,
    index: Vec<(Vec<u8>, Vec<u8>)>,
    slot: parking_lot::Mutex<Slot>,
    /// Wakes the writer when its slot changes.
    changed: parking_lot::Condvar,
    /// What the write panicked with, until the batch is answered.
    panic: parking_lot::Mutex<Option<Box<dyn Any + Send>>>,
}

/// Where a queued write stands.
enum Slot {
    Queued,
    /// Its writer leads the next transaction (handed over by a leader).
    Lead,
    Done(Result<(), StoreError>),
    /// The write panicked, on whichever thread ran it: its own writer
    /// panics with this; the others of its batch still get their results.
    Panicked(Box<dyn Any + Send>),
}

impl Entry {
    fn set(&self, slot: Slot) {
        *self.slot.lock() = slot;
        self.changed.notify_one();
    }
}

/// Most batches one leader commits in a row. Each later one delays the
/// leader's own writer by a transaction (a few ms during a burst).
const LEAD_ROUNDS: usize = 4;

/// Group commit of transactions. sled runs one transaction at a time (a
/// process-wide lock) and each commit writes out its log buffer, so
/// writers that arrive while one commits queue up, and the next of them
/// commits everything queued in one transaction.
///
/// The leader hands each writer its result directly, leads the batches
/// queued meanwhile itself (up to `LEAD_ROUNDS` in all), then hands the
/// lead to the first writer still queued. A leader lock that writers also
/// waited on for their results made every finished writer queue behind
/// the transactions led after its own, and wake one after another.
#[derive(Default)]
pub(crate) struct Combiner {
    state: parking_lot::Mutex<Leading>,
}

#[derive(Default)]
struct Leading {
    queue: Vec<Arc<Entry>>,
    /// A writer is leading (or has been handed the lead).
    busy: bool,
}

impl Combiner {
    /// Runs `write` in a transaction, alone or with others; returns once
    /// it is committed (or refused).
    pub(crate) fn run(
        &self,
        trees: &Trees,
        context: &str,
        write: Box<Write>,
        index: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let entry = Arc::new(Entry {
            write,
            index,
            slot: parking_lot::Mutex::new(Slot::Queued),
            changed: parking_lot::Condvar::new(),
            panic: parking_lot::Mutex::new(None),
        });
        let lead = {
            let mut st = self.state.lock();
            st.queue.push(entry.clone());
            !std::mem::replace(&mut st.busy, true)
        };
        if !lead {
            let mut slot = entry.slot.lock();
            loop {
                match std::mem::replace(&mut *slot, Slot::Queued) {
                    Slot::Queued => entry.changed.wait(&mut slot),
                    Slot::Lead => break,
                    Slot::Done(r) => return r,
                    Slot::Panicked(p) => {
                        drop(slot);
                        std::panic::resume_unwind(p)
                    }
                }
            }
        }
        // While writes queue up behind its batch, the leader commits them
        // too, up to `LEAD_ROUNDS` batches: handing the lead on first wakes
        // a waiting writer, and the engine's lock, which every writer and
        // reader waits for, stays idle until that thread runs.
        let kept = Cell::new(false);
        for round in 1..=LEAD_ROUNDS {
            kept.set(false);
            let batch = std::mem::take(&mut self.state.lock().queue);
            // Whatever happens to the batch (even a panic in a write), its
            // writers get an answer and the lead passes on (or stays).
            let mut leading = Lead {
                combiner: self,
                batch,
                context,
                keep: round < LEAD_ROUNDS,
                kept: &kept,
            };
            leading.commit(trees);
            drop(leading);
            if !kept.get() {
                break;
            }
        }
        let slot = std::mem::replace(&mut *entry.slot.lock(), Slot::Queued);
        match slot {
            Slot::Done(r) => r,
            // Only now, with the batch answered and the lead passed on.
            Slot::Panicked(p) => std::panic::resume_unwind(p),
            _ => Err(lost(context)),
        }
    }

    /// How many writes wait for a leader (tests).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.state.lock().queue.len()
    }
}

/// Runs one write, catching a panic in it so that the transaction, the
/// other writes sharing it and the lead survive; the panic goes to the
/// write's own writer.
fn run_write(tx: &Tx<'_>, e: &Entry) -> TxResult<Result<(), StoreError>> {
    std::panic::catch_unwind(AssertUnwindSafe(|| (e.write)(tx))).unwrap_or_else(|p| {
        // Nothing of the transaction it ran in commits (the abort below),
        // so no half-staged write is left; its writer is answered with the
        // rest of the batch (`Lead::drop`).
        *e.panic.lock() = Some(p);
        Err(abort(StoreError::Engine {
            context: "a write panicked".to_owned(),
            detail: "its writer is told".to_owned(),
        }))
    })
}

fn lost(context: &str) -> StoreError {
    StoreError::Engine {
        context: context.to_owned(),
        detail: "the write was lost by a failed writer; retry".to_owned(),
    }
}

/// A leader with its batch; dropping it answers every writer of the batch
/// not yet answered (a write that panicked with its panic) and hands the
/// lead on, unless it may `keep` it and writes are queued: then it sets
/// `kept` and leads their batch next.
struct Lead<'a> {
    combiner: &'a Combiner,
    batch: Vec<Arc<Entry>>,
    context: &'a str,
    keep: bool,
    kept: &'a Cell<bool>,
}

impl Lead<'_> {
    fn commit(&mut self, trees: &Trees) {
        let context = self.context;
        let batch = &self.batch;
        let ops = batch.iter().flat_map(|e| &e.index);
        let together = trees.transact_indexed(context, ops, |tx| {
            let mut results = Vec::with_capacity(batch.len());
            for e in batch {
                results.push(run_write(tx, e)?);
            }
            Ok(results)
        });
        match together {
            Ok(results) => {
                for (e, r) in batch.iter().zip(results) {
                    e.set(Slot::Done(r));
                }
            }
            // One of them aborted (or panicked): each on its own, so only
            // that one fails.
            Err(_) => {
                for e in batch {
                    if e.panic.lock().is_some() {
                        continue;
                    }
                    // Looked up again: the ones before it have committed.
                    let r = trees
                        .transact_indexed(context, &e.index, |tx| run_write(tx, e))
                        .and_then(|r| r);
                    if e.panic.lock().is_none() {
                        e.set(Slot::Done(r));
                    }
                }
            }
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        for e in &self.batch {
            let mut slot = e.slot.lock();
            if !matches!(*slot, Slot::Done(_)) {
                *slot = match e.panic.lock().take() {
                    Some(p) => Slot::Panicked(p),
                    None => Slot::Done(Err(lost(self.context))),
                };
                e.changed.notify_one();
            }
        }
        let mut st = self.combiner.state.lock();
        if self.keep && !st.queue.is_empty() && !std::thread::panicking() {
            self.kept.set(true);
            return;
        }
        match st.queue.first() {
            Some(next) => next.set(Slot::Lead),
            None => st.busy = false,
        }
    }
}
