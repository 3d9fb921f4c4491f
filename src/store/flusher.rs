//! Group commit: one thread flushes the engine and fdatasyncs its files on
//! behalf of every writer waiting for durability. Concurrent engine flushes
//! can deadlock (sled issue 1308), and one flush covers many writes anyway.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use tokio::sync::oneshot;

use super::StoreError;

type FlushResult = Result<(), StoreError>;

pub(crate) enum Waiter {
    Async(oneshot::Sender<FlushResult>),
    Blocking(mpsc::SyncSender<FlushResult>),
}

impl Waiter {
    fn wake(self, result: FlushResult) {
        // A waiter that gave up (dropped its receiver) needs no answer.
        let _ = match self {
            Waiter::Async(tx) => tx.send(result).map_err(|_| ()),
            Waiter::Blocking(tx) => tx.send(result).map_err(|_| ()),
        };
    }
}

pub(crate) enum Msg {
    Wait(Waiter),
    Shutdown,
}

/// Write sequence numbers shared by writers and the flusher. A writer takes
/// its number after its transaction committed, so a flush that starts after
/// reading `written >= n` covers write `n`.
#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) written: AtomicU64,
    pub(crate) flushed: AtomicU64,
    /// The number of the newest write that queued an outbox item (or put
    /// one back in the queue).
    pub(crate) queued: AtomicU64,
    /// Writes that queue outbox items and have begun but are not numbered
    /// yet: their items may already be visible, and `queued` does not
    /// cover them.
    pub(crate) queueing: AtomicU64,
    /// Holds flushes back while a test asks it to (`Store::hold_flushes_for_tests`).
    pub(crate) gate: Gate,
}

impl Progress {
    pub(crate) fn next_seq(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Marks a write that queues outbox items as begun; call before its
    /// transaction, and `numbered` once it has its number.
    pub(crate) fn queueing(&self) -> Queueing<'_> {
        self.queueing.fetch_add(1, Ordering::SeqCst);
        Queueing(self)
    }

    /// A number whose flush covers every write that queued an item a reader
    /// has seen before calling this.
    pub(crate) fn queued_seq(&self) -> u64 {
        // With none in progress, every queueing write whose items are
        // visible was numbered (and recorded in `queued`) before its count
        // went back down. With one in progress, only a fresh number is
        // sure to cover it.
        if self.queueing.load(Ordering::SeqCst) == 0 {
            self.queued.load(Ordering::SeqCst)
        } else {
            self.next_seq()
        }
    }
}

/// A queueing write in progress (see `Progress::queueing`); ends when dropped.
pub(crate) struct Queueing<'a>(&'a Progress);

impl Queueing<'_> {
    pub(crate) fn numbered(self, seq: u64) {
        self.0.queued.fetch_max(seq, Ordering::SeqCst);
    }
}

impl Drop for Queueing<'_> {
    fn drop(&mut self) {
        self.0.queueing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lets a test hold every flush back, to show what waits for one.
#[derive(Default)]
pub(crate) struct Gate {
    state: parking_lot::Mutex<GateState>,
    opened: parking_lot::Condvar,
}

#[derive(Default)]
struct GateState {
    holds: usize,
    /// A flush was asked for while held.
    asked: bool,
}

impl Gate {
    pub(crate) fn hold(&self) {
        let mut s = self.state.lock();
        s.holds += 1;
        s.asked = false;
    }

    pub(crate) fn release(&self) {
        let mut s = self.state.lock();
        s.holds = s.holds.saturating_sub(1);
        self.opened.notify_all();
    }

    pub(crate) fn asked(&self) -> bool {
        self.state.lock().asked
    }

    /// Waits while a test holds flushes.
    fn pass(&self) {
        let mut s = self.state.lock();
        while s.holds > 0 {
            s.asked = true;
            self.opened.wait(&mut s);
        }
    }
}

pub(crate) struct Flusher {
    tx: mpsc::Sender<Msg>,
    handle: Option<JoinHandle<()>>,
}

impl Flusher {
    pub(crate) fn start(
        db: sled::Db,
        dir: &Path,
        progress: Arc<Progress>,
    ) -> Result<Flusher, StoreError> {
        let syncer = FileSyncer::new(dir).map_err(|e| StoreError::Open {
            dir: dir.to_owned(),
            detail: format!("cannot open the store's files for syncing: {e}"),
        })?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("store-flusher".to_owned())
            .spawn(move || run(db, syncer, progress, rx))
            .map_err(|e| StoreError::Open {
                dir: dir.to_owned(),
                detail: format!("cannot start the flusher thread: {e}"),
            })?;
        Ok(Flusher {
            tx,
            handle: Some(handle),
        })
    }

    pub(crate) fn request(&self, waiter: Waiter) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Wait(waiter))
            .map_err(|_| StoreError::Closed)
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(h) = self.handle.take() {
            // Joining releases the thread's engine handle before the store's
            // own, so the directory lock is free when the store is gone.
            let _ = h.join();
        }
    }
}

fn run(db: sled::Db, mut syncer: FileSyncer, progress: Arc<Progress>, rx: mpsc::Receiver<Msg>) {
    let mut pending: Vec<Waiter> = Vec::new();
    loop {
        let mut shutdown = false;
        match rx.recv() {
            Ok(Msg::Wait(w)) => pending.push(w),
            Ok(Msg::Shutdown) | Err(_) => shutdown = true,
        }
        // Everyone who asked while the previous flush ran shares this one.
        loop {
            match rx.try_recv() {
                Ok(Msg::Wait(w)) => pending.push(w),
                Ok(Msg::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => shutdown = true,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if !pending.is_empty() {
            progress.gate.pass();
        }
        // Read before flushing: every write numbered up to here has committed.
        let target = progress.written.load(Ordering::SeqCst);
        let result = if target > progress.flushed.load(Ordering::SeqCst) || shutdown {
            flush_once(&db, &mut syncer)
        } else {
            Ok(())
        };
        match &result {
            Ok(()) => {
                progress.flushed.fetch_max(target, Ordering::SeqCst);
            }
            Err(e) => tracing::error!(error = %e, "store flush failed"),
        }
        // Waiters' numbers were taken before they asked, so all are covered.
        for w in pending.drain(..) {
            w.wake(result.clone());
        }
        if shutdown {
            return;
        }
    }
}

fn flush_once(db: &sled::Db, syncer: &mut FileSyncer) -> Result<(), StoreError> {
    db.flush().map_err(|e| StoreError::Flush {
        detail: e.to_string(),
    })?;
    syncer.sync().map_err(|e| StoreError::Flush {
        detail: e.to_string(),
    })
}

/// sled's flush ends in `sync_file_range`, which survives a killed process but
/// not a power cut; fdatasync of its files makes the data reach the device.
/// Blob and snapshot files are synced when they are new or changed.
struct FileSyncer {
    dir: PathBuf,
    db_file: File,
    seen: HashMap<PathBuf, (u64, Option<SystemTime>)>,
}

impl FileSyncer {
    fn new(dir: &Path) -> io::Result<FileSyncer> {
        let db_file = File::open(dir.join("db"))?;
        let conf = dir.join("conf");
        if conf.exists() {
            File::open(&conf)?.sync_all()?;
        }
        File::open(dir)?.sync_all()?;
        let mut s = FileSyncer {
            dir: dir.to_owned(),
            db_file,
            seen: HashMap::new(),
        };
        s.sync()?;
        Ok(s)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.db_file.sync_data()?;
        let mut present = HashSet::new();
        let mut new_names = false;
        let blobs = self.dir.join("blobs");
        for (dir, only_snap) in [(self.dir.clone(), true), (blobs, false)] {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if only_snap && !entry.file_name().to_string_lossy().starts_with("snap.") {
                    continue;
                }
                let path = entry.path();
                // sled removes old blobs and snapshots concurrently.
                let meta = match entry.metadata() {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let sig = (meta.len(), meta.modified().ok());
                if self.seen.get(&path) != Some(&sig) {
                    match File::open(&path).and_then(|f| f.sync_data()) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                    new_names |= self.seen.insert(path.clone(), sig).is_none();
                }
                present.insert(path);
            }
        }
        if new_names {
            File::open(&self.dir)?.sync_all()?;
            let blobs = self.dir.join("blobs");
            if blobs.is_dir() {
                File::open(blobs)?.sync_all()?;
            }
        }
        if present.len() < self.seen.len() {
            self.seen.retain(|p, _| present.contains(p));
        }
        Ok(())
    }
}
