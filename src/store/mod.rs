//! The state store: the only module that names sled. It owns orders with
//! their history, poll cursors, webhook dedupe keys, the outbox, central stock,
//! learned listing refs and the accounts' OAuth tokens, and makes writes
//! durable through one group-commit flusher. Nothing outside this module depends on the engine, so another one
//! could replace it behind the same API (and the same test suite).

mod apply;
mod codec;
mod error;
mod flusher;
mod job;
mod listing;
mod outbox;
mod tx;
mod types;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use switchyard_contract::Cursor;
use tokio::sync::oneshot;

use codec::{check_key_part, decode, encode, history_prefix};
use flusher::{Flusher, Progress, Waiter};

pub use error::StoreError;
pub use job::{Delivery, Job, JobKind, ReceiptSku};
pub use listing::ListingState;
pub use types::{
    ApplyReport, HistoryEntry, NewOutboxItem, OrderFilter, OrderWrite, OutboxItem, OutboxState,
    OutboxSummary, PushedLevel, RouteFilter, SavedTokens, StockChange, StockChannelView,
    StockLevel, StockView, StoredOrder, WriteBatch, WriteOutcome,
};

// Tree names; they also name the tree in error messages.
pub(crate) const ORDERS: &str = "orders";
pub(crate) const HISTORY: &str = "history";
pub(crate) const CURSORS: &str = "cursors";
pub(crate) const DEDUPE: &str = "dedupe";
pub(crate) const OUTBOX: &str = "outbox";
/// (account NUL coalesce key) → id of the pending item with that key.
pub(crate) const COALESCE: &str = "outbox_coalesce";
pub(crate) const STOCK: &str = "stock";
/// (account NUL sku) → the channel's listing reference.
pub(crate) const LISTING_REFS: &str = "listing_refs";
/// account → the OAuth tokens last saved for it.
pub(crate) const TOKENS: &str = "tokens";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The engine's page cache (a soft limit). sled's own default of 1 GiB is
    /// too much for a small VPS.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 64 * 1024 * 1024,
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
    pub(crate) history: sled::Tree,
    pub(crate) cursors: sled::Tree,
    pub(crate) dedupe: sled::Tree,
    pub(crate) outbox: sled::Tree,
    pub(crate) coalesce: sled::Tree,
    pub(crate) stock: sled::Tree,
    pub(crate) listing_refs: sled::Tree,
    pub(crate) tokens: sled::Tree,
}

struct Inner {
    // Declared first so it is dropped first: its thread holds an engine handle.
    flusher: Flusher,
    progress: Arc<Progress>,
    trees: Trees,
    db: sled::Db,
    dir: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
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
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            .open()
            .map_err(|e| open_err(dir, e))?;
        let tree = |name: &str| {
            db.open_tree(name).map_err(|e| StoreError::Open {
                dir: dir.to_owned(),
                detail: format!("cannot open tree {name}: {e}"),
            })
        };
        let trees = Trees {
            orders: tree(ORDERS)?,
            history: tree(HISTORY)?,
            cursors: tree(CURSORS)?,
            dedupe: tree(DEDUPE)?,
            outbox: tree(OUTBOX)?,
            coalesce: tree(COALESCE)?,
            stock: tree(STOCK)?,
            listing_refs: tree(LISTING_REFS)?,
            tokens: tree(TOKENS)?,
        };
        let progress = Arc::new(Progress::default());
        let flusher = Flusher::start(db.clone(), dir, progress.clone())?;
        Ok(Store {
            inner: Arc::new(Inner {
                flusher,
                progress,
                trees,
                db,
                dir: dir.to_owned(),
            }),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    pub(crate) fn trees(&self) -> &Trees {
        &self.inner.trees
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

    pub fn get_order(&self, id: &str) -> Result<Option<StoredOrder>, StoreError> {
        let t = &self.inner.trees.orders;
        match t
            .get(id.as_bytes())
            .map_err(|e| engine_err(format!("read of order {id}"), e))?
        {
            Some(v) => decode(ORDERS, id.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Matching orders, oldest first by (placed_at, id), at most `filter.limit`.
    pub fn list_orders(&self, filter: &OrderFilter) -> Result<Vec<StoredOrder>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.trees.orders.iter() {
            let (k, v) = kv.map_err(|e| engine_err("scan of orders", e))?;
            let o: StoredOrder = decode(ORDERS, &k, &v)?;
            if filter.matches(&o.order) {
                out.push(o);
            }
        }
        out.sort_by(|a, b| (a.order.placed_at, &a.order.id).cmp(&(b.order.placed_at, &b.order.id)));
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// The order's history, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        check_key_part("order id", id)?;
        self.inner
            .trees
            .history
            .scan_prefix(history_prefix(id))
            .map(|kv| {
                let (k, v) = kv.map_err(|e| engine_err(format!("read of history of {id}"), e))?;
                decode(HISTORY, &k, &v)
            })
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
        match self
            .inner
            .trees
            .dedupe
            .get(key.as_bytes())
            .map_err(|e| engine_err(format!("read of dedupe key {key}"), e))?
        {
            Some(v) => {
                let expires: DateTime<Utc> = decode(DEDUPE, key.as_bytes(), &v)?;
                Ok(expires > now)
            }
            None => Ok(false),
        }
    }

    /// Removes expired dedupe keys; returns how many.
    pub fn purge_expired_dedupe(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let t = &self.inner.trees.dedupe;
        let mut removed = 0;
        for kv in t.iter() {
            let (k, v) = kv.map_err(|e| engine_err("scan of dedupe keys", e))?;
            let expires: DateTime<Utc> = decode(DEDUPE, &k, &v)?;
            if expires <= now {
                // Only if unchanged: a concurrent batch may have renewed it.
                let swapped = t
                    .compare_and_swap(&k, Some(&v), None::<&[u8]>)
                    .map_err(|e| engine_err("purge of dedupe keys", e))?;
                if swapped.is_ok() {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            self.next_seq();
        }
        Ok(removed)
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

    /// Writes raw bytes under a key, bypassing the value format, so tests can
    /// plant values of unknown versions.
    #[doc(hidden)]
    pub fn raw_insert_for_tests(
        &self,
        tree: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let t = &self.inner.trees;
        let tree = match tree {
            ORDERS => &t.orders,
            HISTORY => &t.history,
            CURSORS => &t.cursors,
            DEDUPE => &t.dedupe,
            OUTBOX => &t.outbox,
            COALESCE => &t.coalesce,
            STOCK => &t.stock,
            LISTING_REFS => &t.listing_refs,
            TOKENS => &t.tokens,
            other => {
                return Err(StoreError::NotFound {
                    what: "tree",
                    id: other.to_owned(),
                });
            }
        };
        tree.insert(key, value)
            .map_err(|e| engine_err("raw insert", e))?;
        self.next_seq();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::codec::encode;
    use super::*;

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
