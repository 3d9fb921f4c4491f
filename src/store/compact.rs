//! Copying and compacting a store (`switchyard store copy`, `store
//! compact`): the copy written afresh into a new folder, the count of
//! records that proves it whole, the removal of what a copy that failed
//! wrote (and of nothing else), and the folders of a compaction beside
//! the store, with the finishing of one that stopped between its renames
//! (which every open of the store runs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Store, StoreError, StoreOptions, engine_err, once_free, open_err};

/// The folders of a compaction (`switchyard store compact`), beside the
/// store and named after it: the copy is made in `copy`; then the store is
/// renamed to `old` and the copy to the store's name. A crash between the
/// two renames leaves no store, a whole copy (it was opened and counted
/// before) and the old store: [`CompactionDirs::finish_interrupted`],
/// which every open runs, puts the copy in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionDirs {
    /// The store's folder, links followed (under systemd's `DynamicUser=`
    /// the state folder is a link, and the folder it names is renamed).
    pub store: PathBuf,
    pub copy: PathBuf,
    pub old: PathBuf,
}

impl CompactionDirs {
    pub fn of(dir: &Path) -> Result<CompactionDirs, StoreError> {
        let store = real_dir(dir);
        let Some(name) = store.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Err(StoreError::Open {
                dir: dir.to_owned(),
                detail: "the store's folder has no name of its own: give daemon.state_dir as a folder path such as /var/lib/switchyard".to_owned(),
            });
        };
        Ok(CompactionDirs {
            copy: store.with_file_name(format!("{name}.compact")),
            old: store.with_file_name(format!("{name}.old")),
            store,
        })
    }

    /// Puts the copy in place when a compaction stopped between its two
    /// renames; refuses to go on (rather than start an empty store) when
    /// the store is missing for any other reason and a compaction's folder
    /// is there, saying which folder is which and what to run. An empty
    /// store folder counts as missing: systemd makes the state folder
    /// afresh before a start when it is not there. Whether it put the copy
    /// in place.
    pub fn finish_interrupted(&self) -> Result<bool, StoreError> {
        let (store, copy, old) = (&self.store, &self.copy, &self.old);
        let empty = std::fs::read_dir(store).is_ok_and(|mut d| d.next().is_none());
        let missing = store.symlink_metadata().is_err();
        if !(missing || empty) || !(copy.exists() || old.exists()) {
            return Ok(false);
        }
        // What puts `from` in place of the store, by hand.
        let put_back = |from: &Path| {
            if missing {
                format!("mv {} {}", from.display(), store.display())
            } else {
                format!(
                    "rmdir {} && mv {} {}",
                    store.display(),
                    from.display(),
                    store.display()
                )
            }
        };
        let what = if missing { "missing" } else { "empty" };
        let refuse = |detail: String| {
            Err(StoreError::Open {
                dir: store.clone(),
                detail,
            })
        };
        if !old.exists() {
            return refuse(format!(
                "the store is {what} and {} holds the copy of a compaction that never put the store aside, so it may not be whole: put the store back from a backup, then remove {}",
                copy.display(),
                copy.display()
            ));
        }
        if !copy.exists() {
            // No copy left: the compaction that made `old` finished (a
            // crash between its renames leaves the copy), and its store,
            // newer than `old`, was in place until something removed or
            // emptied it. Neither an empty store nor `old` may quietly take
            // its place: both would deliver again what it had delivered.
            return refuse(format!(
                "the store is {what}, and {old} holds the store as it was before a compaction \
                 that finished (kept by store compact --keep-old); the compacted store that was \
                 in {store} is gone, and switchyard will not start an empty store while {old} \
                 is there. If the compacted store was moved or deleted by mistake, put it back \
                 into {store} (from a backup if need be). To start afresh with an empty store, \
                 move {old} out of the way or remove it (rm -r {old}). To run on the store as \
                 it was before that compaction, {put_back}: what was written since is lost, so \
                 orders delivered and stock pushed since then may be sent again",
                old = old.display(),
                store = store.display(),
                put_back = put_back(old),
            ));
        }
        match std::fs::rename(copy, store) {
            Ok(()) => {}
            // Another process finished it first.
            Err(_) if !copy.exists() && store.is_dir() => {}
            Err(e) => {
                return refuse(format!(
                    "a compaction stopped halfway: its copy, whole, is in {} and the store as it was in {}, and the copy could not be put in place ({e}): as root, run {} and start again",
                    copy.display(),
                    old.display(),
                    put_back(copy)
                ));
            }
        }
        sync_parent(store).map_err(|e| StoreError::Open {
            dir: store.clone(),
            detail: format!(
                "the compacted store was put in place but its folder could not be synced: {e}"
            ),
        })?;
        tracing::warn!(
            store = %store.display(),
            old = %old.display(),
            "finished a compaction that stopped halfway: the store is its compact copy; the store as it was is kept beside it, remove it once you no longer need it"
        );
        Ok(true)
    }
}

/// Every tree of `db`: its name, the name as text, the tree.
fn every_tree(
    db: &sled::Db,
) -> impl Iterator<Item = Result<(sled::IVec, String, sled::Tree), StoreError>> + '_ {
    db.tree_names().into_iter().map(move |name| {
        let what = String::from_utf8_lossy(&name).into_owned();
        let tree = db
            .open_tree(&name)
            .map_err(|e| engine_err(format!("open of tree {what}"), e))?;
        Ok((name, what, tree))
    })
}

/// `dir` with links followed, also when what a link names is missing (a
/// store between a compaction's two renames).
fn real_dir(dir: &Path) -> PathBuf {
    if let Ok(real) = dir.canonicalize() {
        return real;
    }
    let mut path = dir.to_owned();
    // As many links as the kernel follows in one path.
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) if target.is_absolute() => path = target,
            Ok(target) => path = path.parent().unwrap_or(Path::new("")).join(target),
            Err(_) => break,
        }
    }
    path
}

/// Makes a rename in the folder holding `path` durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::File::open(parent)?.sync_all(),
        _ => std::fs::File::open(".")?.sync_all(),
    }
}

impl Store {
    /// Copies everything the store holds into a new store at `to` (a
    /// folder that does not exist or is empty) and proves the copy whole:
    /// it opens as any store would and holds as many records as were
    /// copied; answers what was copied. The copy is written afresh, so without
    /// the space the engine's log keeps for values since replaced.
    /// `go_on` is asked after each batch written, with the records copied
    /// so far: an error from it stops the copy ([`keeps_free`] stops it
    /// before it fills the disk).
    ///
    /// A copy that fails once it began removes what it wrote, and only
    /// that: the folders it made, or, when `to` was there and empty, what
    /// it put in it (the folder stays). The answer says whether that
    /// worked. A copy killed before it could (or stopped by a crash)
    /// leaves its folder marked unfinished until every record was written,
    /// and no open takes a marked folder for a store
    /// (`refuse_unfinished_copy`).
    pub fn copy_whole(
        &self,
        to: &Path,
        opts: &StoreOptions,
        go_on: impl FnMut(u64) -> Result<(), StoreError>,
    ) -> Result<Copied, CopyFailed> {
        let target = CopyTarget::claim(to).map_err(|error| CopyFailed {
            error,
            removed: Removed::NothingWritten,
        })?;
        let copied = self
            .copy_to(to, go_on)
            .and_then(|copied| target.written().map(|()| copied))
            .and_then(|copied| prove(to, opts, copied.records).map(|_| copied));
        match copied {
            Ok(copied) => {
                target.keep();
                Ok(copied)
            }
            Err(error) => Err(CopyFailed {
                error,
                removed: match target.discard() {
                    Ok(()) => Removed::Yes,
                    Err(e) => Removed::Failed(e.to_string()),
                },
            }),
        }
    }

    /// The records of every tree written into a new store at `to` (which
    /// [`Store::copy_whole`] claimed); what was copied.
    fn copy_to(
        &self,
        to: &Path,
        mut go_on: impl FnMut(u64) -> Result<(), StoreError>,
    ) -> Result<Copied, StoreError> {
        let db = &self.inner.db;
        // New outbox items of the copy must come after (and never take the
        // id of) every item this store handed out an id to.
        let copy = new_db_with_ids_from(to, self.generate_id()?)?;
        let (mut copied, mut bytes) = (0, 0);
        for tree in every_tree(db) {
            let (name, what, from) = tree?;
            let into = copy
                .open_tree(&name)
                .map_err(|e| engine_err(format!("open of tree {what} in the copy"), e))?;
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for kv in from.iter() {
                let (k, v) = kv.map_err(|e| engine_err(format!("read of tree {what}"), e))?;
                bytes += (k.len() + v.len()) as u64;
                batch.insert(k, v);
                in_batch += 1;
                copied += 1;
                if in_batch == 1_000 {
                    into.apply_batch(std::mem::take(&mut batch))
                        .map_err(|e| engine_err(format!("write of tree {what} in the copy"), e))?;
                    in_batch = 0;
                    go_on(copied)?;
                }
            }
            into.apply_batch(batch)
                .map_err(|e| engine_err(format!("write of tree {what} in the copy"), e))?;
            go_on(copied)?;
        }
        copy.flush()
            .map_err(|e| engine_err("flush of the copy", e))?;
        Ok(Copied {
            records: copied,
            bytes,
        })
    }

    /// The bytes of every key and value the store holds, all trees
    /// together: what a copy writes, before the engine's own overhead.
    pub fn live_bytes(&self) -> Result<u64, StoreError> {
        let mut bytes = 0;
        for tree in every_tree(&self.inner.db) {
            let (_, what, tree) = tree?;
            for kv in tree.iter() {
                let (k, v) = kv.map_err(|e| engine_err(format!("read of tree {what}"), e))?;
                bytes += (k.len() + v.len()) as u64;
            }
        }
        Ok(bytes)
    }

    /// How many records the store holds, all trees together: what a copy
    /// must hold too.
    pub fn count_records(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        for tree in every_tree(&self.inner.db) {
            let (_, what, tree) = tree?;
            for key in tree.iter().keys() {
                key.map_err(|e| engine_err(format!("read of tree {what}"), e))?;
                count += 1;
            }
        }
        Ok(count)
    }
}

/// Free bytes on the file system holding `dir`, or the nearest folder
/// above it that exists (a copy's folder may not exist yet), and that
/// folder.
pub fn free_bytes(dir: &Path) -> std::io::Result<(PathBuf, u64)> {
    let mut at = dir;
    while !at.exists() {
        at = match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    let vfs = rustix::fs::statvfs(at)?;
    Ok((at.to_owned(), vfs.f_bavail.saturating_mul(vfs.f_frsize)))
}

/// What [`Store::copy_whole`] asks after each batch to stop before it
/// leaves less than `keep_free` bytes free on the disk holding `to`,
/// whatever was estimated before: other programs on the machine need some
/// room too. `free` reads the free bytes of a disk ([`free_bytes`]).
pub fn keeps_free(
    to: &Path,
    keep_free: u64,
    free: impl Fn(&Path) -> std::io::Result<(PathBuf, u64)>,
) -> impl FnMut(u64) -> Result<(), StoreError> {
    move |copied| match free(to) {
        Ok((_, free)) if free < keep_free => Err(StoreError::CopyStopped {
            dir: to.to_owned(),
            free,
            copied,
        }),
        // Unknown: the engine's own write errors still stop the copy.
        _ => Ok(()),
    }
}

/// Proves the copy in `to` whole: it opens as any store would and holds
/// the `copied` records written into it.
fn prove(to: &Path, opts: &StoreOptions, copied: u64) -> Result<u64, StoreError> {
    // The copy was just let go by this process: an open before its engine
    // is done would be refused as if another process had it.
    let_go(to).map_err(|e| StoreError::Open {
        dir: to.to_owned(),
        detail: format!("the copy could not be opened again to count its records ({e})"),
    })?;
    let copy = Store::open_once_free(to, opts.clone())?;
    let held = copy.count_records();
    copy.close()?;
    let held = held?;
    if held != copied {
        return Err(StoreError::Open {
            dir: to.to_owned(),
            detail: format!(
                "the copy holds {held} records where {copied} were copied: it is not whole"
            ),
        });
    }
    Ok(copied)
}

/// What [`Store::copy_whole`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub records: u64,
    /// The bytes of their keys and values, before the engine's overhead.
    pub bytes: u64,
}

/// Why [`Store::copy_whole`] failed, and what became of what it wrote.
#[derive(Debug)]
pub struct CopyFailed {
    pub error: StoreError,
    pub removed: Removed,
}

/// What a failed copy did with what it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// It failed before it wrote anything.
    NothingWritten,
    /// Removed.
    Yes,
    /// Could not be removed: why.
    Failed(String),
}

/// The folder a copy is written into, claimed before anything is written,
/// so that a copy that fails removes what it wrote there and nothing that
/// was there before. Dropped unkept (a panic), it removes it as well.
struct CopyTarget {
    dir: PathBuf,
    /// The highest folder the claim made: `dir` or a missing folder above
    /// it; none when `dir` was there, empty.
    made: Option<PathBuf>,
    settled: bool,
}

impl CopyTarget {
    /// Claims `dir`, which must be missing or empty: makes it, and the
    /// folders above it that are missing.
    fn claim(dir: &Path) -> Result<CopyTarget, StoreError> {
        let refuse = |detail: String| StoreError::Open {
            dir: dir.to_owned(),
            detail,
        };
        let target = match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(refuse(if dir.join(UNFINISHED).exists() {
                        format!(
                            "the folder holds a copy that was stopped before it finished: \
                             remove it (rm -r {}) and copy again",
                            dir.display()
                        )
                    } else {
                        "the folder is not empty: give a new folder to copy the store into"
                            .to_owned()
                    }));
                }
                CopyTarget {
                    dir: dir.to_owned(),
                    made: None,
                    settled: false,
                }
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(refuse(format!("cannot read the folder ({e})")));
            }
            Err(_) => {
                let mut made = dir;
                while let Some(parent) = made.parent().filter(|p| !p.as_os_str().is_empty()) {
                    if parent.exists() {
                        break;
                    }
                    made = parent;
                }
                let made = made.to_owned();
                std::fs::create_dir_all(dir)
                    .map_err(|e| refuse(format!("cannot make the folder ({e})")))?;
                CopyTarget {
                    dir: dir.to_owned(),
                    made: Some(made),
                    settled: false,
                }
            }
        };
        // Dropped on failure, `target` removes what the claim made. The
        // mark is durable before the engine writes its first file.
        std::fs::write(dir.join(UNFINISHED), UNFINISHED_TEXT)
            .and_then(|()| std::fs::File::open(dir)?.sync_all())
            .map_err(|e| refuse(format!("cannot write in the folder ({e})")))?;
        Ok(target)
    }

    /// Every record is written and on disk: the copy is no longer marked
    /// unfinished, durably, before it is opened to prove it.
    fn written(&self) -> Result<(), StoreError> {
        std::fs::remove_file(self.dir.join(UNFINISHED))
            .and_then(|()| std::fs::File::open(&self.dir)?.sync_all())
            .map_err(|e| StoreError::Open {
                dir: self.dir.clone(),
                detail: format!("the copy could not be marked finished ({e})"),
            })
    }

    /// The copy is whole: it stays.
    fn keep(mut self) {
        self.settled = true;
    }

    /// Removes what the copy wrote, once the engine that wrote it let go
    /// (its threads may still write for a moment after it is dropped).
    fn discard(mut self) -> std::io::Result<()> {
        self.settled = true;
        self.remove_written()
    }

    fn remove_written(&self) -> std::io::Result<()> {
        let_go(&self.dir)?;
        match &self.made {
            Some(made) => match std::fs::remove_dir_all(made) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                removed => removed,
            },
            None => {
                for entry in std::fs::read_dir(&self.dir)? {
                    let path = entry?.path();
                    if path.symlink_metadata()?.is_dir() {
                        std::fs::remove_dir_all(&path)?;
                    } else {
                        std::fs::remove_file(&path)?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Drop for CopyTarget {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.remove_written();
        }
    }
}

/// The file a copy keeps in its folder until every record is written: a
/// copy killed before then (or stopped by a crash), which cannot remove
/// what it wrote, leaves a folder the engine would open as a store, with
/// part of the records.
const UNFINISHED: &str = "UNFINISHED-COPY";
const UNFINISHED_TEXT: &str = "switchyard store copy (or store compact) was writing a copy of a \
    store here and was stopped before it finished: this is not a whole store. Remove this \
    folder and copy again.\n";

/// Refuses to open as a store a folder that holds a copy stopped before it
/// finished ([`UNFINISHED`]): it would run on part of the records.
pub(super) fn refuse_unfinished_copy(dir: &Path) -> Result<(), StoreError> {
    if !dir.join(UNFINISHED).exists() {
        return Ok(());
    }
    Err(StoreError::Open {
        dir: dir.to_owned(),
        detail: format!(
            "the folder holds a copy of a store that was stopped before it finished ({} is \
             there), so it is not a whole store: remove the folder (rm -r {}) and copy the \
             store again",
            UNFINISHED,
            dir.display()
        ),
    })
}

/// Takes the engine's lock on a store's `db` file (opened as `file`) as
/// soon as whoever holds it lets go: the engine holds it until its last
/// thread is done, which a slow disk can make seconds. Waits `wait` at the
/// most; whether it got it.
pub fn wait_let_go(file: &std::fs::File, wait: Duration) -> std::io::Result<bool> {
    let since = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) if since.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// How long a copy waits for the engine of this process to let go of the
/// copy it wrote: it does, once its threads are done (a flush to a disk
/// busy with others' writes can take seconds).
const COPY_LET_GO: Duration = Duration::from_secs(120);

/// Waits until no engine holds the store in `dir` (a copy this process
/// just wrote and dropped); a folder without the engine's file is let go.
fn let_go(dir: &Path) -> std::io::Result<()> {
    let file = match std::fs::File::open(dir.join("db")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        file => file?,
    };
    if wait_let_go(&file, COPY_LET_GO)? {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "the copy is still held by the engine after {} s",
            COPY_LET_GO.as_secs()
        )))
    }
}

/// The engine's default `idgen_persist_interval`, which every open of a
/// store uses.
const ID_PERSIST_INTERVAL: u64 = 1_000_000;

/// A new, empty engine database in `to` whose generated ids are `next` or
/// more, whatever `next` is, in the time of two opens of an empty database.
///
/// The engine's id generator is not in a tree, so copying the trees does not
/// carry it, and the engine has no call to set it (counting up to `next`
/// took a second per 40 million ids, and each open of a store skips 2
/// million). What it does have is its rule for an open: the generator goes
/// on from the last counter it persisted plus twice its persist interval,
/// and it persists the counter when an id reaches a multiple of the
/// interval. So the empty database is opened again with an interval of
/// half `next` and one id is generated: that persists `next` (or more)
/// as the counter, which later opens go on from. The counter must be a
/// multiple of the interval the later opens use (the engine asserts so
/// when it next persists), hence the rounding.
fn new_db_with_ids_from(to: &Path, next: u64) -> Result<sled::Db, StoreError> {
    let config = || {
        sled::Config::new()
            .path(to)
            .cache_capacity(StoreOptions::default().cache_bytes)
    };
    drop(
        config()
            .flush_every_ms(None)
            .open()
            .map_err(|e| open_err(to, e))?,
    );
    let half = ID_PERSIST_INTERVAL / 2;
    let interval = next.div_ceil(2).div_ceil(half).max(1).saturating_mul(half);
    let db = once_free(|| {
        config()
            .idgen_persist_interval(interval)
            .open()
            .map_err(|e| open_err(to, e))
    })?;
    let first = db
        .generate_id()
        .map_err(|e| engine_err("id generation in the copy", e))?;
    if first < next || first % ID_PERSIST_INTERVAL != 0 {
        return Err(StoreError::Open {
            dir: to.to_owned(),
            detail: format!(
                "the copy's ids could not be set to go on after the store's ({first} where at \
                 least {next} was wanted): remove the folder; the store was not changed"
            ),
        });
    }
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of `n` records in one tree, enough for a few batches.
    fn store_of(dir: &Path, n: u32) -> Store {
        let store = Store::open(&dir.join("store"), StoreOptions::default()).unwrap();
        for i in 0..n {
            store
                .raw_insert_for_tests(super::super::TOKENS, &i.to_be_bytes(), b"x")
                .unwrap();
        }
        store
    }

    /// A copy that would leave less free disk than asked stops, whatever
    /// the estimate before it said, says how far it got, and removes what
    /// it wrote.
    #[test]
    fn a_copy_stops_before_it_leaves_less_free_disk_than_asked() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(dir.path(), 3_500);
        let to = dir.path().join("copy");
        let opts = StoreOptions::default();
        let failed = store
            .copy_whole(&to, &opts, keeps_free(&to, u64::MAX, free_bytes))
            .unwrap_err();
        match failed.error {
            StoreError::CopyStopped { dir, .. } => assert_eq!(dir, to),
            other => panic!("not stopped: {other:?}"),
        }
        assert_eq!(failed.removed, Removed::Yes);
        assert!(!to.exists());
        let copied = store
            .copy_whole(&to, &opts, keeps_free(&to, 0, free_bytes))
            .unwrap();
        assert_eq!(
            (copied.records, copied.bytes),
            (store.count_records().unwrap(), store.live_bytes().unwrap())
        );
        store.close().unwrap();
    }

    /// A copy that fails halfway (here by a failure injected after its
    /// second batch) removes what it wrote, and nothing else: the folders
    /// it made, or what it put in an empty folder that was there, which
    /// stays. The same folder then takes a whole copy.
    #[test]
    fn a_copy_that_fails_halfway_removes_what_it_wrote_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(dir.path(), 3_500);
        let opts = StoreOptions::default();
        let fail_at_2000 = |copied| match copied {
            2_000.. => Err(StoreError::Injected),
            _ => Ok(()),
        };
        let made = dir.path().join("new").join("copy");
        let there = dir.path().join("empty");
        std::fs::create_dir(&there).unwrap();
        for to in [&made, &there] {
            let failed = store.copy_whole(to, &opts, fail_at_2000).unwrap_err();
            assert!(matches!(failed.error, StoreError::Injected), "{failed:?}");
            assert_eq!(failed.removed, Removed::Yes);
        }
        assert!(!dir.path().join("new").exists(), "folders made are removed");
        assert_eq!(std::fs::read_dir(&there).unwrap().count(), 0, "emptied");
        let whole = store.count_records().unwrap();
        let copied = store.copy_whole(&there, &opts, |_| Ok(())).unwrap();
        assert_eq!(copied.records, whole);
        store.close().unwrap();
        let copy = Store::open_once_free(&there, opts).unwrap();
        assert_eq!(copy.count_records().unwrap(), whole);
        copy.close().unwrap();
    }

    /// A copy killed before it finished (here: its clean-up skipped, as a
    /// kill skips it) leaves a folder the engine would open with part of
    /// the records: it is refused as a store, and as the folder of another
    /// copy, naming what to remove. A finished copy is not marked.
    #[test]
    fn a_copy_killed_before_it_finished_is_refused_as_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(dir.path(), 3_500);
        let to = dir.path().join("copy");
        let target = CopyTarget::claim(&to).unwrap();
        let stop_at_2000 = |copied| match copied {
            2_000.. => Err(StoreError::Injected),
            _ => Ok(()),
        };
        assert!(store.copy_to(&to, stop_at_2000).is_err());
        std::mem::forget(target);
        let_go(&to).unwrap();

        let refused = Store::open(&to, StoreOptions::default()).unwrap_err();
        assert!(
            refused.to_string().contains(&format!(
                "stopped before it finished (UNFINISHED-COPY is there), so it is not a whole \
                 store: remove the folder (rm -r {})",
                to.display()
            )),
            "{refused}"
        );
        let failed = store
            .copy_whole(&to, &StoreOptions::default(), |_| Ok(()))
            .unwrap_err();
        assert!(
            failed
                .error
                .to_string()
                .contains("a copy that was stopped before it finished"),
            "{failed:?}"
        );
        assert_eq!(failed.removed, Removed::NothingWritten);

        std::fs::remove_dir_all(&to).unwrap();
        store
            .copy_whole(&to, &StoreOptions::default(), |_| Ok(()))
            .unwrap();
        assert!(!to.join(UNFINISHED).exists());
        Store::open_once_free(&to, StoreOptions::default())
            .unwrap()
            .close()
            .unwrap();
        store.close().unwrap();
    }

    /// A folder that holds anything is refused before anything is written,
    /// and left as it was.
    #[test]
    fn a_copy_into_a_folder_that_holds_something_is_refused_and_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(dir.path(), 1);
        let to = dir.path().join("full");
        std::fs::create_dir(&to).unwrap();
        std::fs::write(to.join("notes"), "mine").unwrap();
        let failed = store
            .copy_whole(&to, &StoreOptions::default(), |_| Ok(()))
            .unwrap_err();
        assert!(failed.error.to_string().contains("not empty"), "{failed:?}");
        assert_eq!(failed.removed, Removed::NothingWritten);
        assert_eq!(std::fs::read_to_string(to.join("notes")).unwrap(), "mine");
        assert_eq!(std::fs::read_dir(&to).unwrap().count(), 1);
        store.close().unwrap();
    }

    /// Whatever id the store was at, a copy's ids go on after it, also
    /// across later opens (each persists the counter again, which the
    /// engine checks against what it recovered).
    #[test]
    fn a_new_database_generates_ids_from_the_one_asked_for_across_opens() {
        for next in [0, 1, 999_999, 2_000_001, 123_456_789_012_345] {
            let dir = tempfile::tempdir().unwrap();
            let db = new_db_with_ids_from(dir.path(), next).unwrap();
            let mut last = db.generate_id().unwrap();
            assert!(last >= next, "{last} < {next}");
            drop(db);
            for _ in 0..2 {
                let store = Store::open_once_free(dir.path(), StoreOptions::default()).unwrap();
                let id = store.generate_id().unwrap();
                assert!(id > last, "{id} after {last} (asked for {next})");
                last = store.generate_id().unwrap();
                store.close().unwrap();
            }
        }
    }
}
