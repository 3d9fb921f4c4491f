//! The state store: the only module that names sled. It owns orders with
//! their history, poll cursors, webhook dedupe keys, the outbox, central
//! stock with the open reservations of each SKU, learned listing refs and the accounts' OAuth tokens, and makes
//! writes durable through one group-commit flusher. Nothing outside this module depends on the engine, so another one
//! could replace it behind the same API (and the same test suite).

mod apply;
mod codec;
mod compact;
mod error;
mod flusher;
mod index;
mod job;
mod listing;
mod migrate;
mod outbox;
mod reserved;
mod tx;
mod types;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use switchyard_contract::{Cursor, OrderStatus};
use tokio::sync::oneshot;

use codec::{check_key_part, decode, decode_order, encode, split_history, time_key};
use flusher::{Flusher, Progress, Waiter};
use index::{Plan, decode_cursor, encode_cursor};

pub use compact::{
    CompactionDirs, Copied, CopyFailed, Removed, free_bytes, keeps_free, sync_parent, wait_let_go,
};
pub use error::StoreError;
pub use job::{Delivery, Job, JobKind, Notice, ReceiptSku};
pub use listing::ListingState;
pub use reserved::reservation_marker;
pub use tx::{Tally, TreeTally};
pub(crate) use types::Payload;
pub use types::{
    ApplyReport, DEFAULT_PAGE, DeliveredTo, DeliveryPart, HistoryEntry, ListPage, MAX_PAGE,
    NewOutboxItem, OrderFilter, OrderWrite, OutboxItem, OutboxPage, OutboxState, OutboxSummary,
    PushedLevel, Reservation, RouteFilter, RoutedLine, SavedTokens, StockChange, StockChannelView,
    StockLevel, StockView, StoredOrder, WriteBatch, WriteOutcome,
};

// Tree names; they also name the tree in error messages.
pub(crate) const ORDERS: &str = "orders";
/// Order id → the raw channel payload, kept for audit and never read to list
/// or show orders.
pub(crate) const RAW: &str = "raw";
/// Order id → its history, every entry in one value (`codec::append_history`).
pub(crate) const HISTORY: &str = "order_history";
/// The order indexes and the dedupe keys kept for good, packed in buckets
/// (`index.rs`).
pub(crate) const ORDER_INDEX: &str = "order_postings";
pub(crate) const CURSORS: &str = "cursors";
pub(crate) const DEDUPE: &str = "dedupe";
/// (expiry time, dedupe key): what the purge reads, so it never walks the
/// keys that have not expired. Keys kept for good (delivery and reservation
/// markers, [`kept_for_good`]) are neither here nor in `dedupe`: they are
/// packed with the order indexes (`index::kept_entry`).
pub(crate) const DEDUPE_EXPIRY: &str = "dedupe_expiry";
pub(crate) const OUTBOX: &str = "outbox";
/// (account NUL coalesce key) → id of the pending item with that key.
pub(crate) const COALESCE: &str = "outbox_coalesce";
/// (account NUL next attempt NUL... id) of every pending item: what workers read.
pub(crate) const OUTBOX_DUE: &str = "outbox_due";
/// The id of every dead letter: what `outbox list --dead` and `outbox retry
/// --all-dead` read, so they never walk the pending items.
pub(crate) const OUTBOX_DEAD: &str = "outbox_dead";
/// (SKU, status rank, placed time, order id, units) of every open order
/// that reserves units of the SKU (`reserved.rs`).
pub(crate) const RESERVATIONS: &str = "reservations";
/// Counters kept as things change (outbox depth per account and state,
/// reserved units per SKU).
pub(crate) const COUNTS: &str = "counts";
pub(crate) const STOCK: &str = "stock";
/// (account NUL sku) → the channel's listing reference.
pub(crate) const LISTING_REFS: &str = "listing_refs";
/// The store's own bookkeeping: layout version, migration progress.
pub(crate) const META: &str = "meta";
/// account → the OAuth tokens last saved for it.
pub(crate) const TOKENS: &str = "tokens";

/// The expiry of a dedupe key kept for good: it never expires, so it is
/// never purged and has no entry in the expiry index.
pub(crate) fn kept_for_good() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The engine's page cache (a soft limit). sled's own default of 1 GiB is
    /// too much for a small VPS.
    pub cache_bytes: u64,
}

/// Index entries one page may look at before it stops and hands out a
/// cursor: bounds a page over filters that are each common but rarely hold
/// together (a few milliseconds of reading).
const PAGE_BUDGET: usize = 20_000;

/// The page cache when the config does not say (`daemon.cache_mb`): sized
/// so that the daemon stays well inside a 1 GB VPS. Small on purpose: the
/// engine's log cleaning reads old pages through this cache and it holds
/// about four times its nominal size in memory (at a million orders, 16 MB
/// peaks 40 to 70 MB lower than 64 MB), while a page of orders reads in a
/// few milliseconds either way.
pub const DEFAULT_CACHE_MB: u32 = 16;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: u64::from(DEFAULT_CACHE_MB) * 1024 * 1024,
        }
    }
}

/// The store. Cheap to clone; all clones share one database and one flusher,
/// which stops when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

// Shared by the HTTP handlers, workers and the CLI.
const _: () = {
    const fn shareable<T: Send + Sync + Clone>() {}
    shareable::<Store>();
};

pub(crate) struct Trees {
    pub(crate) orders: sled::Tree,
    pub(crate) raw: sled::Tree,
    pub(crate) history: sled::Tree,
    pub(crate) order_index: sled::Tree,
    pub(crate) cursors: sled::Tree,
    pub(crate) dedupe: sled::Tree,
    pub(crate) dedupe_expiry: sled::Tree,
    pub(crate) outbox: sled::Tree,
    pub(crate) coalesce: sled::Tree,
    pub(crate) outbox_due: sled::Tree,
    pub(crate) outbox_dead: sled::Tree,
    pub(crate) counts: sled::Tree,
    pub(crate) stock: sled::Tree,
    pub(crate) listing_refs: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) tokens: sled::Tree,
    pub(crate) reservations: sled::Tree,
    /// What the committed transactions read and wrote since the store was
    /// opened, while counting (`Store::tally`).
    pub(crate) tally: parking_lot::Mutex<tx::Tally>,
    /// Count what transactions read and write (`Store::count_writes`).
    pub(crate) counting: std::sync::atomic::AtomicBool,
    /// The last bucket of each order index prefix that transactions wrote
    /// lately, as committed (`tx::Lasts`).
    pub(crate) lasts: parking_lot::Mutex<tx::Lasts>,
}

impl Trees {
    fn open(db: &sled::Db, dir: &Path) -> Result<Trees, StoreError> {
        let tree = |name: &str| {
            db.open_tree(name).map_err(|e| StoreError::Open {
                dir: dir.to_owned(),
                detail: format!("cannot open tree {name}: {e}"),
            })
        };
        Ok(Trees {
            orders: tree(ORDERS)?,
            raw: tree(RAW)?,
            history: tree(HISTORY)?,
            order_index: tree(ORDER_INDEX)?,
            cursors: tree(CURSORS)?,
            dedupe: tree(DEDUPE)?,
            dedupe_expiry: tree(DEDUPE_EXPIRY)?,
            outbox: tree(OUTBOX)?,
            coalesce: tree(COALESCE)?,
            outbox_due: tree(OUTBOX_DUE)?,
            outbox_dead: tree(OUTBOX_DEAD)?,
            counts: tree(COUNTS)?,
            stock: tree(STOCK)?,
            listing_refs: tree(LISTING_REFS)?,
            meta: tree(META)?,
            tokens: tree(TOKENS)?,
            reservations: tree(RESERVATIONS)?,
            tally: Default::default(),
            counting: Default::default(),
            lasts: Default::default(),
        })
    }

    fn by_name(&self, name: &str) -> Option<&sled::Tree> {
        Some(match name {
            ORDERS => &self.orders,
            RAW => &self.raw,
            HISTORY => &self.history,
            ORDER_INDEX => &self.order_index,
            CURSORS => &self.cursors,
            DEDUPE => &self.dedupe,
            DEDUPE_EXPIRY => &self.dedupe_expiry,
            OUTBOX => &self.outbox,
            COALESCE => &self.coalesce,
            OUTBOX_DUE => &self.outbox_due,
            OUTBOX_DEAD => &self.outbox_dead,
            COUNTS => &self.counts,
            STOCK => &self.stock,
            LISTING_REFS => &self.listing_refs,
            META => &self.meta,
            TOKENS => &self.tokens,
            RESERVATIONS => &self.reservations,
            _ => return None,
        })
    }
}

struct Inner {
    // Declared first so it is dropped first: its thread holds an engine handle.
    flusher: Flusher,
    progress: Arc<Progress>,
    combiner: tx::Combiner,
    trees: Trees,
    db: sled::Db,
    dir: PathBuf,
}

/// Flushes held back by `Store::hold_flushes_for_tests` until dropped.
#[doc(hidden)]
pub struct FlushHold {
    store: Store,
}

impl FlushHold {
    /// Whether a flush was asked for since the hold began.
    pub fn flush_asked(&self) -> bool {
        self.store.inner.progress.gate.asked()
    }
}

impl Drop for FlushHold {
    fn drop(&mut self) {
        self.store.inner.progress.gate.release();
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// Runs `open` again while it answers `Locked`, for a few seconds at the
/// most; any other answer is returned as it is.
fn once_free<T>(mut open: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut tries = 0;
    loop {
        match open() {
            Err(StoreError::Locked { .. }) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            opened => return opened,
        }
    }
}

pub(crate) fn engine_err(context: impl Into<String>, e: sled::Error) -> StoreError {
    StoreError::Engine {
        context: context.into(),
        detail: e.to_string(),
    }
}

fn open_err(dir: &Path, e: sled::Error) -> StoreError {
    // sled reports a held lock only as an I/O error with this text.
    if let sled::Error::Io(io) = &e
        && io.to_string().contains("could not acquire lock")
    {
        return StoreError::Locked {
            dir: dir.to_owned(),
        };
    }
    StoreError::Open {
        dir: dir.to_owned(),
        detail: e.to_string(),
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`. Only one process may have it open.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        Store::open_inner(dir, opts, None, &|_| {})
    }

    /// `open`, refusing ([`StoreError::NoStore`]) where there is no store
    /// rather than making an empty one: a command that only reads, pointed
    /// at the wrong folder, would report no orders where they are elsewhere.
    /// A missing or empty folder (systemd makes the state folder empty
    /// before the first start) or one without the engine's files is no
    /// store; a compaction stopped between its renames is finished first.
    pub fn open_existing(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        if let Ok(dirs) = CompactionDirs::of(dir) {
            dirs.finish_interrupted()?;
        }
        let why = match std::fs::read_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("the folder does not exist"),
            // Anything else (no permission, not a folder) the open reports.
            Err(_) => None,
            Ok(entries) => {
                let names: Vec<_> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name())
                    .collect();
                if names.is_empty() {
                    Some("the folder is empty")
                } else if !names.iter().any(|n| n == "db" || n == "conf") {
                    Some("the folder holds other files but not a store's (`db`, `conf`)")
                } else {
                    None
                }
            }
        };
        match why {
            Some(why) => Err(StoreError::NoStore {
                dir: dir.to_owned(),
                why,
            }),
            None => Store::open(dir, opts),
        }
    }

    /// `open`, telling `progress` how an upgrade of an earlier layout goes
    /// (every few seconds while one runs), so a supervisor can be told the
    /// start is still moving.
    pub fn open_with_progress(
        dir: &Path,
        opts: StoreOptions,
        progress: &dyn Fn(&str),
    ) -> Result<Store, StoreError> {
        Store::open_inner(dir, opts, None, progress)
    }

    /// Opens a store of an earlier layout, converts `orders` of its orders
    /// and stops as a crash would (`StoreError::Injected`), so a test can
    /// show that the next open goes on from there.
    #[doc(hidden)]
    pub fn open_interrupted_for_tests(
        dir: &Path,
        opts: StoreOptions,
        orders: usize,
    ) -> Result<Store, StoreError> {
        // Each interruption is opened right after the last one let go.
        once_free(|| Store::open_inner(dir, opts.clone(), Some(orders), &|_| {}))
    }

    fn open_inner(
        dir: &Path,
        opts: StoreOptions,
        stop_after: Option<usize>,
        progress: &dyn Fn(&str),
    ) -> Result<Store, StoreError> {
        // Before the engine would make an empty store where a compaction
        // left none (a folder with no name of its own was never compacted).
        if let Ok(dirs) = CompactionDirs::of(dir) {
            dirs.finish_interrupted()?;
        }
        compact::refuse_unfinished_copy(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            .open()
            .map_err(|e| open_err(dir, e))?;
        let trees = Trees::open(&db, dir)?;
        // A store written by an earlier layout gets its indexes here, once.
        migrate::run(&db, &trees, dir, stop_after, progress)?;
        let progress = Arc::new(Progress::default());
        let flusher = Flusher::start(db.clone(), dir, progress.clone())?;
        Ok(Store {
            inner: Arc::new(Inner {
                flusher,
                progress,
                combiner: tx::Combiner::default(),
                trees,
                db,
                dir: dir.to_owned(),
            }),
        })
    }

    /// Opens the store in `dir` and closes it again, once the process that
    /// had it open has let go (waiting a few seconds for its lock). The
    /// engine replays its log from the last open on every open and only
    /// then writes a snapshot; doing that right after a clean stop, rather
    /// than at the next start, keeps the next start fast however long the
    /// last run was.
    pub fn checkpoint(dir: &Path, opts: StoreOptions) -> Result<(), StoreError> {
        Store::open_once_free(dir, opts)?.close()
    }

    /// Opens the store in `dir` once the process or handle that had it
    /// open has let go: the engine's threads may hold its lock for a moment
    /// after. Waits a few seconds at the most, then answers `Locked`.
    pub fn open_once_free(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        once_free(|| Store::open(dir, opts.clone()))
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    pub(crate) fn trees(&self) -> &Trees {
        &self.inner.trees
    }

    /// The keys and bytes the transactions committed while counting (see
    /// [`Store::count_writes`]) read and wrote, per tree: what writes cost
    /// the engine. `Tally::since` gives one operation's.
    pub fn tally(&self) -> Tally {
        self.inner.trees.tally.lock().clone()
    }

    /// Counts from now on what each transaction reads and writes, for
    /// [`Store::tally`] (benchmarks, tests). Off by default: a few hundred
    /// nanoseconds per key. With the debug log on, every transaction is
    /// counted and logged.
    pub fn count_writes(&self) {
        self.inner.trees.counting.store(true, Ordering::Relaxed);
    }

    /// Commits `write`, sharing a transaction with writes that arrive
    /// meanwhile (`tx::Combiner`).
    pub(crate) fn commit(&self, context: &str, write: Box<tx::Write>) -> Result<(), StoreError> {
        self.commit_indexed(context, write, Vec::new())
    }

    /// `commit` for a write that may add or remove `index` (prefix,
    /// position) entries of the order index.
    pub(crate) fn commit_indexed(
        &self,
        context: &str,
        write: Box<tx::Write>,
        index: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        self.inner
            .combiner
            .run(&self.inner.trees, context, write, index)
    }

    /// Numbers a committed write for `flushed`.
    pub(crate) fn next_seq(&self) -> u64 {
        self.inner.progress.next_seq()
    }

    pub(crate) fn generate_id(&self) -> Result<u64, StoreError> {
        self.inner
            .db
            .generate_id()
            .map_err(|e| engine_err("id generation", e))
    }

    // --- durability ---------------------------------------------------------

    /// Waits until write `seq` (from `ApplyReport::seq`) is on disk. Many
    /// waiters share one flush.
    pub async fn flushed(&self, seq: u64) -> Result<(), StoreError> {
        if seq <= self.inner.progress.flushed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.inner.flusher.request(Waiter::Async(tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until everything written so far is on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        // A fresh number, not `written`: a writer numbers its write just
        // after committing it, so a write this caller has already seen (a
        // duplicate webhook's first delivery) may not be counted in
        // `written` yet, and waiting for `written` could return at once.
        let seq = self.next_seq();
        self.flushed(seq).await
    }

    /// Waits until every write that queued an outbox item this caller can
    /// see (or put one back in the queue) is on disk: what a worker awaits
    /// between reading items and sending them, so nothing leaves for the
    /// outside on the strength of a write a crash could still take back.
    /// Returns at once, without yielding, when those writes are flushed
    /// already (the usual case: the webhook that queued them waited for
    /// the same flush); otherwise shares the next flush.
    pub async fn outbox_flushed(&self) -> Result<(), StoreError> {
        let seq = self.inner.progress.queued_seq();
        self.flushed(seq).await
    }

    /// Marks a write that queues outbox items as begun (before its
    /// transaction); `numbered` it once it has its number.
    pub(crate) fn queueing(&self) -> flusher::Queueing<'_> {
        self.inner.progress.queueing()
    }

    /// Holds every flush back until the answer is dropped: writes still
    /// commit, but `flushed`, `flush` and `outbox_flushed` wait. For tests
    /// that show what waits for durability.
    #[doc(hidden)]
    pub fn hold_flushes_for_tests(&self) -> FlushHold {
        self.inner.progress.gate.hold();
        FlushHold {
            store: self.clone(),
        }
    }

    /// `flush` for code outside an async runtime (the CLI). Blocks the thread.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        // A fresh number, as in `flush`.
        let seq = self.next_seq();
        if seq <= self.inner.progress.flushed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.flusher.request(Waiter::Blocking(tx))?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Flushes and lets go of this handle; the flusher stops and the directory
    /// is unlocked once no other clone is left.
    pub fn close(self) -> Result<(), StoreError> {
        self.flush_blocking()
    }

    // --- orders -------------------------------------------------------------

    /// The stored order, without its raw payload (`raw` is `Null`).
    pub fn get_order(&self, id: &str) -> Result<Option<StoredOrder>, StoreError> {
        let t = &self.inner.trees.orders;
        match t
            .get(id.as_bytes())
            .map_err(|e| engine_err(format!("read of order {id}"), e))?
        {
            Some(v) => {
                let mut o = decode_order(id.as_bytes(), &v)?;
                o.raw = serde_json::Value::Null;
                Ok(Some(o))
            }
            None => Ok(None),
        }
    }

    /// The raw channel payload of an order's newest channel version.
    pub fn raw_payload(&self, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.stored_payload(id)?
            .map(|v| codec::decode_raw(id.as_bytes(), &v))
            .transpose()
    }

    /// [`Store::raw_payload`] as the JSON text stored, not parsed: a
    /// webhook body byte for byte as the channel sent it, a parsed payload
    /// as the JSON it was written as (`orders show --raw`).
    pub fn raw_payload_text(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.stored_payload(id)?
            .map(|v| codec::decode_raw_text(id.as_bytes(), &v))
            .transpose()
    }

    fn stored_payload(&self, id: &str) -> Result<Option<sled::IVec>, StoreError> {
        self.inner
            .trees
            .raw
            .get(id.as_bytes())
            .map_err(|e| engine_err(format!("read of raw payload of {id}"), e))
    }

    /// One page of matching orders, newest first by (placed_at, id) unless
    /// `filter.oldest`, starting after `filter.after`. Costs what the page
    /// holds, whatever the store holds.
    pub fn page_orders(&self, filter: &OrderFilter) -> Result<ListPage, StoreError> {
        let limit = filter.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        self.page(&Plan::of(filter), filter, limit, PAGE_BUDGET)
    }

    /// Every matching order (at most `filter.limit`), oldest first: for
    /// small stores, tests and tools. The daemon reads pages.
    pub fn list_orders(&self, filter: &OrderFilter) -> Result<Vec<StoredOrder>, StoreError> {
        let mut out = Vec::new();
        self.walk_orders(filter, filter.limit.unwrap_or(usize::MAX), |page| {
            out.extend(page);
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands every matching order to `each`, oldest first, a page at a time:
    /// memory stays that of one page however many orders match (`stock set`
    /// over tens of thousands of open orders held them all at once).
    pub fn for_each_order(
        &self,
        filter: &OrderFilter,
        mut each: impl FnMut(StoredOrder) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.walk_orders(filter, usize::MAX, |page| {
            page.into_iter().try_for_each(&mut each)
        })
    }

    /// Up to `want` matching orders, oldest first, handed to `each_page` a
    /// page of at most `MAX_PAGE` at a time.
    fn walk_orders(
        &self,
        filter: &OrderFilter,
        want: usize,
        mut each_page: impl FnMut(Vec<StoredOrder>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut f = filter.clone();
        f.oldest = true;
        let mut left = want;
        while left > 0 {
            let page = self.page(&Plan::of(&f), &f, left.min(MAX_PAGE), usize::MAX)?;
            left -= page.orders.len();
            each_page(page.orders)?;
            match page.next {
                Some(next) => f.after = Some(next),
                None => break,
            }
        }
        Ok(())
    }

    /// A page of orders a destination may have work for (routed, not held,
    /// ready or partially shipped): the start-up catch-up of deliveries
    /// reads this, never every order. Read through the status index, ready
    /// orders first, then partially shipped ones (the way an order moves,
    /// so one that moves meanwhile is still met), oldest first within each;
    /// unrouted or held ones, a few in a hundred, are read and left out, so
    /// a page may hold fewer than `limit`. `next`: where the next page
    /// starts (None: nothing further).
    pub fn routed_open_orders(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        const STAGES: [OrderStatus; 2] = [OrderStatus::Ready, OrderStatus::PartiallyShipped];
        // The cursor: the stage, then (when within it) the position.
        let (stage, from) = match after {
            None => (0, None),
            Some(c) => {
                let bytes = index::decode_stage_cursor(c)?;
                let (stage, pos) = bytes.split_first().unwrap_or((&0, &[]));
                let stage = usize::from(*stage);
                if stage >= STAGES.len() {
                    return Err(StoreError::InvalidCursor {
                        cursor: c.chars().take(80).collect(),
                    });
                }
                (stage, (!pos.is_empty()).then(|| encode_cursor(pos)))
            }
        };
        let f = OrderFilter {
            status: Some(STAGES[stage]),
            after: from,
            oldest: true,
            ..OrderFilter::default()
        };
        let page = self.page(&Plan::of(&f), &f, limit.max(1), usize::MAX)?;
        let next = match page.next {
            Some(next) => Some(index::stage_cursor(stage, Some(&decode_cursor(&next)?))),
            None if stage + 1 < STAGES.len() => Some(index::stage_cursor(stage + 1, None)),
            None => None,
        };
        Ok(ListPage {
            orders: page
                .orders
                .into_iter()
                .filter(|o| o.order.route.is_some() && o.order.hold.is_none())
                .collect(),
            next,
        })
    }

    fn page(
        &self,
        plan: &Plan,
        filter: &OrderFilter,
        limit: usize,
        budget: usize,
    ) -> Result<ListPage, StoreError> {
        let from = filter.after.as_deref().map(decode_cursor).transpose()?;
        let walk = index::walk(
            &self.inner.trees.order_index,
            plan,
            from.as_deref(),
            filter.oldest,
            limit,
            budget,
        )?;
        let mut orders = Vec::with_capacity(walk.positions.len());
        for pos in &walk.positions {
            let Some(id) = index::key_id(pos, 0) else {
                continue;
            };
            // Read after the index: an order changed since no longer
            // matching is left out rather than shown wrongly.
            if let Some(o) = self.get_order(id)?
                && filter.matches(&o.order)
            {
                orders.push(o);
            }
        }
        Ok(ListPage {
            orders,
            next: walk.resume.as_deref().map(encode_cursor),
        })
    }

    /// The order's history, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        check_key_part("order id", id)?;
        let key = id.as_bytes();
        let Some(all) = self
            .inner
            .trees
            .history
            .get(key)
            .map_err(|e| engine_err(format!("read of history of {id}"), e))?
        else {
            return Ok(Vec::new());
        };
        split_history(key, &all)?
            .into_iter()
            .map(|e| decode(HISTORY, key, e))
            .collect()
    }

    // --- cursors and dedupe -------------------------------------------------

    pub fn cursor(&self, account: &str) -> Result<Option<Cursor>, StoreError> {
        match self
            .inner
            .trees
            .cursors
            .get(account.as_bytes())
            .map_err(|e| engine_err(format!("read of cursor of {account}"), e))?
        {
            Some(v) => decode(CURSORS, account.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `key` was recorded (through `WriteBatch::dedupe`) and has not expired.
    pub fn dedupe_seen(&self, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        if self.expiring_key_seen(key, now)? {
            return Ok(true);
        }
        // Kept for good: packed with the order indexes.
        index::is_kept(&self.inner.trees.order_index, key.as_bytes())
    }

    /// `dedupe_seen` for a key that is always recorded with an expiry, as a
    /// webhook's event key is: only the keys that expire are read, not
    /// the packed keys kept for good, which a new delivery would look up
    /// in vain every time.
    pub fn expiring_key_seen(&self, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        match self
            .inner
            .trees
            .dedupe
            .get(key.as_bytes())
            .map_err(|e| engine_err(format!("read of dedupe key {key}"), e))?
        {
            Some(v) => Ok(decode::<DateTime<Utc>>(DEDUPE, key.as_bytes(), &v)? > now),
            None => Ok(false),
        }
    }

    /// Removes expired dedupe keys; returns how many. Reads only the expiry
    /// index up to `now`: keys kept for good are never walked.
    pub fn purge_expired_dedupe(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let t = &self.inner.trees;
        let mut end = time_key(now).to_vec();
        end.push(u8::MAX);
        let mut removed = 0;
        for kv in t.dedupe_expiry.range(..end) {
            let (ik, _) = kv.map_err(|e| engine_err("scan of dedupe expiries", e))?;
            let key = &ik[8..];
            if let Some(v) = t
                .dedupe
                .get(key)
                .map_err(|e| engine_err("read of dedupe key", e))?
            {
                let expires: DateTime<Utc> = decode(DEDUPE, key, &v)?;
                // Only if unchanged: a concurrent batch may have renewed it
                // (its new expiry has an entry of its own).
                if expires <= now
                    && t.dedupe
                        .compare_and_swap(key, Some(&v), None::<&[u8]>)
                        .map_err(|e| engine_err("purge of dedupe keys", e))?
                        .is_ok()
                {
                    removed += 1;
                }
            }
            t.dedupe_expiry
                .remove(&ik)
                .map_err(|e| engine_err("purge of dedupe expiries", e))?;
        }
        if removed > 0 {
            self.next_seq();
        }
        Ok(removed)
    }

    // --- tokens ---------------------------------------------------------------

    /// The tokens last saved for an account.
    pub fn tokens(&self, account: &str) -> Result<Option<SavedTokens>, StoreError> {
        check_key_part("account", account)?;
        match self
            .inner
            .trees
            .tokens
            .get(account.as_bytes())
            .map_err(|e| engine_err(format!("read of tokens of {account}"), e))?
        {
            Some(v) => decode(TOKENS, account.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Saves an account's tokens over the previous ones. Await
    /// `flushed(seq)` before using them: a rotated refresh token that is
    /// not on disk is lost with the process.
    pub fn save_tokens(&self, account: &str, tokens: &SavedTokens) -> Result<u64, StoreError> {
        check_key_part("account", account)?;
        let enc = encode(TOKENS, account.as_bytes(), tokens)?;
        self.inner
            .trees
            .tokens
            .insert(account.as_bytes(), enc)
            .map_err(|e| engine_err(format!("write of tokens of {account}"), e))?;
        Ok(self.next_seq())
    }

    // --- stock and listing refs ---------------------------------------------

    pub fn stock_get(&self, sku: &str) -> Result<Option<StockLevel>, StoreError> {
        match self
            .inner
            .trees
            .stock
            .get(sku.as_bytes())
            .map_err(|e| engine_err(format!("read of stock of {sku}"), e))?
        {
            Some(v) => decode(STOCK, sku.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Up to `limit` levels after `after` (by SKU), so that a pass over the
    /// catalog can go on where the last one stopped.
    pub fn stock_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StockLevel>, StoreError> {
        let t = &self.inner.trees.stock;
        let iter = match after {
            Some(sku) => t.range::<&[u8], _>((
                std::ops::Bound::Excluded(sku.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => t.iter(),
        };
        iter.take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(|e| engine_err("scan of stock", e))?;
                decode(STOCK, &k, &v)
            })
            .collect()
    }

    /// Every SKU's level, by SKU.
    pub fn stock_list(&self) -> Result<Vec<StockLevel>, StoreError> {
        self.inner
            .trees
            .stock
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(|e| engine_err("scan of stock", e))?;
                decode(STOCK, &k, &v)
            })
            .collect()
    }

    /// Writes raw bytes under a key, bypassing the value format, so tests can
    /// plant values of unknown versions.
    #[doc(hidden)]
    pub fn raw_insert_for_tests(
        &self,
        tree: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let tree = self.tree_for_tests(tree)?;
        tree.insert(key, value)
            .map_err(|e| engine_err("raw insert", e))?;
        self.next_seq();
        Ok(())
    }

    fn tree_for_tests(&self, name: &str) -> Result<&sled::Tree, StoreError> {
        self.inner
            .trees
            .by_name(name)
            .ok_or_else(|| StoreError::NotFound {
                what: "tree",
                id: name.to_owned(),
            })
    }

    /// Removes a key written by [`Store::raw_insert_for_tests`].
    #[doc(hidden)]
    pub fn raw_remove_for_tests(&self, tree: &str, key: &[u8]) -> Result<(), StoreError> {
        let tree = self.tree_for_tests(tree)?;
        tree.remove(key).map_err(|e| engine_err("raw remove", e))?;
        self.next_seq();
        Ok(())
    }
}

/// A ready order of one account, without lines, for the store's own tests.
#[cfg(test)]
pub(crate) fn order_for_tests(id: &str) -> StoredOrder {
    serde_json::from_value(serde_json::json!({
        "order": {
            "id": id, "account": "a", "channel": "shopify", "channel_order_id": "1",
            "number": null, "status": "ready", "payment": "paid",
            "placed_at": "2026-11-27T05:01:02Z", "updated_at": "2026-11-27T05:01:02Z",
            "currency": "USD",
            "totals": { "subtotal": "1.00", "shipping": "0", "tax": "0", "discount": "0", "total": "1.00", "refunded": "0" },
            "presentment": null, "customer": null, "shipping_address": null, "shipping_method": null,
            "lines": [], "shipments": [], "tags": [], "route": null, "hold": null, "priority": "normal"
        },
        "channel_tags": [], "rule_tags": [], "manual_tags": [], "manual_hold": null,
        "notes": [], "revision": 0
    }))
    .expect("an order")
}

#[cfg(test)]
mod tests {
    use super::codec::encode;
    use super::*;

    /// A write that queues outbox items is visible as soon as it commits,
    /// before it is numbered: a worker that reads its items then must still
    /// wait for a flush that covers it.
    #[tokio::test]
    async fn outbox_flushed_covers_a_queueing_write_not_yet_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.flush().await.unwrap();
        let p = &store.inner.progress;
        let before = p.flushed.load(Ordering::SeqCst);
        // As `apply` does: marked before the transaction, numbered after.
        let queueing = store.queueing();
        store.trees().outbox.insert(b"item", b"x").unwrap();
        store.outbox_flushed().await.unwrap();
        assert!(
            p.flushed.load(Ordering::SeqCst) > before,
            "outbox_flushed returned without flushing"
        );
        queueing.numbered(store.next_seq());
        // Numbered and flushed since: no flush is needed.
        store.flush().await.unwrap();
        let before = p.flushed.load(Ordering::SeqCst);
        store.outbox_flushed().await.unwrap();
        assert_eq!(p.flushed.load(Ordering::SeqCst), before);
        assert_eq!(p.written.load(Ordering::SeqCst), before, "no new number");
    }

    /// A write that panics inside the group commit, whoever leads the
    /// transaction it shares: its own writer panics with its panic, the
    /// other writers of the batch get their results (committed), and
    /// later writes go through.
    #[test]
    fn a_panicking_write_wedges_nothing_and_only_its_writer_sees_it() {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Condvar, Mutex};
        use std::thread::JoinHandle;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let key = |name: &str| format!("test.{name}").into_bytes();
        // A write that stores a key, or panics with its name.
        let spawn = |name: &'static str, panics: bool| -> JoinHandle<Result<(), StoreError>> {
            let store = store.clone();
            let k = key(name);
            std::thread::spawn(move || {
                store.commit(
                    name,
                    Box::new(move |tx| {
                        if panics {
                            panic!("injected panic in write {name}");
                        }
                        tx.meta().insert(k.as_slice(), b"1")?;
                        Ok(Ok(()))
                    }),
                )
            })
        };
        let queued = |n: usize| {
            while store.inner.combiner.queued() < n {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        let panic_of = |h: JoinHandle<Result<(), StoreError>>| -> String {
            let p = h.join().expect_err("its writer panics");
            p.downcast_ref::<String>().cloned().unwrap_or_default()
        };

        // Two rounds: a batch led by a write that panics, with a panicking
        // write among those it carries; then a batch led by a sound write
        // carrying one that panics.
        for round in [
            [("p1", true), ("w1", false), ("p2", true), ("w2", false)],
            [("w3", false), ("p3", true), ("w4", false), ("w5", false)],
        ] {
            // A leader holds the combiner until every write of the round
            // waits behind it, so they all share the next transaction.
            let gate = Arc::new((Mutex::new(false), Condvar::new()));
            let entered = Arc::new(AtomicBool::new(false));
            let (g, e) = (gate.clone(), entered.clone());
            let blocker = {
                let store = store.clone();
                std::thread::spawn(move || {
                    store.commit(
                        "holds the lead",
                        Box::new(move |_tx| {
                            e.store(true, Ordering::SeqCst);
                            let (open, cv) = &*g;
                            let mut open = open.lock().unwrap();
                            while !*open {
                                open = cv.wait(open).unwrap();
                            }
                            Ok(Ok(()))
                        }),
                    )
                })
            };
            while !entered.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let mut writers = Vec::new();
            for (n, (name, panics)) in round.into_iter().enumerate() {
                writers.push((name, panics, spawn(name, panics)));
                queued(n + 1);
            }
            *gate.0.lock().unwrap() = true;
            gate.1.notify_all();
            blocker.join().unwrap().unwrap();
            for (name, panics, h) in writers {
                if panics {
                    assert_eq!(panic_of(h), format!("injected panic in write {name}"));
                    assert!(store.trees().meta.get(key(name)).unwrap().is_none());
                } else {
                    h.join().expect("a sound writer does not panic").unwrap();
                    assert!(
                        store.trees().meta.get(key(name)).unwrap().is_some(),
                        "{name}"
                    );
                }
            }
        }
        // The combiner is free again: a later write goes through at once.
        spawn("after", false).join().unwrap().unwrap();
        assert!(store.trees().meta.get(key("after")).unwrap().is_some());
    }

    /// A write that another thread has committed but not yet numbered (its
    /// `next_seq` comes just after the commit) is visible to readers: the
    /// duplicate-webhook path sees the first delivery's dedupe key and then
    /// calls `flush` to make that delivery durable before answering 200.
    /// `flush` must cover it, so it must really flush.
    #[tokio::test]
    async fn flush_covers_a_committed_write_not_yet_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.flush().await.unwrap();
        let p = &store.inner.progress;
        let before = p.written.load(Ordering::SeqCst);
        assert_eq!(p.flushed.load(Ordering::SeqCst), before);
        // Committed, visible, and not numbered yet.
        store
            .trees()
            .dedupe
            .insert(b"shop:e1", encode(DEDUPE, b"shop:e1", &Utc::now()).unwrap())
            .unwrap();
        store.flush().await.unwrap();
        assert!(
            p.flushed.load(Ordering::SeqCst) > before,
            "flush returned without flushing"
        );
        let before = p.flushed.load(Ordering::SeqCst);
        store.trees().dedupe.insert(b"shop:e2", b"x").unwrap();
        store.flush_blocking().unwrap();
        assert!(p.flushed.load(Ordering::SeqCst) > before);
    }
}
