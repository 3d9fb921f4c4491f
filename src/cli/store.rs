//! `switchyard store copy` and `store compact`: the store written afresh
//! into a new folder, with the daemon stopped. `copy` leaves the store as
//! it was; `compact` puts the copy in its place, so `daemon.state_dir` stays
//! as it is.
//!
//! Compaction is crash-safe by its order of steps: the copy is made beside
//! the store and proven (opened, its records counted) before anything is
//! renamed; the store stays locked until the copy is in place; and a crash
//! between the two renames, which leaves no store, is finished by the next
//! open of the store ([`CompactionDirs`]).
//!
//! The engine does not name its files only at open: it reads, writes and
//! removes large values' files (`blobs/`) by the store's path, and its
//! cleaning thread rewrites pages until the store is closed. A store still
//! open when the folders are renamed could write into, or remove from, the
//! copy that took its name. So the store is closed, and its lock, which the
//! engine holds until its last thread is done, taken over by this process
//! before the first rename and let go after the second.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::orders::store_failure;
use super::print::outln;
use super::{CliResult, EXIT_FAILED, Failure};
use crate::config::Config;
use crate::store::{
    CompactionDirs, Copied, CopyFailed, Removed, Store, StoreError, free_bytes, keeps_free,
    sync_parent, wait_let_go,
};

pub(crate) fn copy(config_path: &Path, to: &Path) -> CliResult {
    copy_with(config_path, to, &free_bytes)
}

/// [`copy`], with the disk's free bytes read by `free` ([`free_bytes`];
/// tests give figures of their own).
fn copy_with(config_path: &Path, to: &Path, free: &FreeProbe) -> CliResult {
    let config = load(config_path)?;
    let from = &config.daemon.state_dir;
    let store = open_stopped(&config, config_path, "copy")?;
    let copied = room_for_copy(&store, dir_bytes(from), to, Job::Copy, free)
        .and_then(|()| copy_proven(&store, to, &config, Job::Copy, free));
    let closed = store.close();
    let copied = copied?;
    closed.map_err(|e| {
        failed(format!(
            "{e}; the copy in {} is whole ({} records) and stays",
            to.display(),
            copied.records
        ))
    })?;
    outln!(
        "copied {} records ({} of keys and values) from {} ({}) to {} ({}); to run on the \
         copy, set daemon.state_dir = \"{}\" and start the daemon",
        copied.records,
        human(copied.bytes),
        from.display(),
        human(dir_bytes(from)),
        to.display(),
        human(dir_bytes(to)),
        to.display()
    );
    Ok(())
}

pub(crate) fn compact(config_path: &Path, keep_old: bool) -> CliResult {
    compact_with(config_path, keep_old, &free_bytes)
}

/// [`compact`], with the disk's free bytes read by `free`.
fn compact_with(config_path: &Path, keep_old: bool, free: &FreeProbe) -> CliResult {
    let config = load(config_path)?;
    let dirs = CompactionDirs::of(&config.daemon.state_dir).map_err(store_failure)?;
    if dirs.finish_interrupted().map_err(store_failure)? {
        outln!(
            "finished a compaction that stopped halfway: the store in {} is its compact copy; \
             the store as it was is in {}: remove it (rm -r {}) once the daemon runs well",
            dirs.store.display(),
            dirs.old.display(),
            dirs.old.display()
        );
        return Ok(());
    }
    let unchanged = "; nothing was changed";
    if !dirs.store.is_dir() {
        return Err(failed(format!(
            "there is no store in {} (daemon.state_dir) to compact",
            dirs.store.display()
        )));
    }
    if dirs.copy.exists() {
        return Err(failed(format!(
            "{} is left from a compaction that did not finish (the store in {} is whole and \
             was not changed by it): remove it (rm -r {}) and compact again{unchanged}",
            dirs.copy.display(),
            dirs.store.display(),
            dirs.copy.display()
        )));
    }
    if dirs.old.exists() {
        return Err(failed(format!(
            "{} holds the store as it was before an earlier compaction: remove it \
             (rm -r {}) or move it elsewhere once you no longer need it, and compact \
             again{unchanged}",
            dirs.old.display(),
            dirs.old.display()
        )));
    }
    let before = dir_bytes(&dirs.store);
    let store = open_stopped(&config, config_path, "compact")?;
    if let Err(e) = room_for_copy(&store, before, &dirs.copy, Job::Compact, free) {
        let _ = store.close();
        return Err(e);
    }

    let made = copy_proven(&store, &dirs.copy, &config, Job::Compact, free).and_then(|copied| {
        same_owner(&dirs).map_err(|e| failed(format!("{}; {}", e.message, remove_copy(&dirs))))?;
        Ok(copied)
    });
    let copied = match made {
        Ok(copied) => copied,
        Err(e) => {
            let _ = store.close();
            return Err(failed(format!("{}{unchanged}", e.message)));
        }
    };
    // The engine is let go of before anything is renamed, and the store
    // stays locked by this process until the copy is in place (module doc).
    let closed = store.close();
    let held = match hold_once_let_go(&dirs.store) {
        Ok(held) => held,
        Err(message) => {
            return Err(failed(format!(
                "{message}; {}{unchanged}",
                remove_copy(&dirs)
            )));
        }
    };
    let swapped = swap(&dirs);
    drop(held);
    swapped?;
    if let Err(e) = closed {
        tracing::warn!(error = %e, "the store as it was did not close cleanly after the compaction; the compact store is in place");
    }
    let after = dir_bytes(&dirs.store);
    let old = if keep_old {
        format!("the store as it was is kept in {}", dirs.old.display())
    } else {
        match std::fs::remove_dir_all(&dirs.old) {
            Ok(()) => "the store as it was is removed".to_owned(),
            Err(e) => format!(
                "the store as it was, in {}, could not be removed ({e}): remove it (rm -r {})",
                dirs.old.display(),
                dirs.old.display()
            ),
        }
    };
    outln!(
        "compacted the store in {}: {} before, {} after ({} records, {} of keys and \
         values); {old}",
        dirs.store.display(),
        human(before),
        human(after),
        copied.records,
        human(copied.bytes)
    );
    Ok(())
}

fn load(config_path: &Path) -> Result<Config, Failure> {
    crate::config::load(config_path).map_err(|errors| failed(errors.to_string()))
}

fn failed(message: String) -> Failure {
    Failure::new(EXIT_FAILED, message)
}

/// The store, opened by this process alone: refused while the daemon (or
/// any other process) has it open.
fn open_stopped(config: &Config, config_path: &Path, what: &str) -> Result<Store, Failure> {
    let store = Store::open_existing(&config.daemon.state_dir, config.daemon.store_options());
    store.map_err(|e| match e {
        StoreError::Locked { dir } => failed(format!(
            "the store at {} is open in another process (the daemon?): stop it first \
             (systemctl stop switchyard), then {what}",
            dir.display()
        )),
        e => super::no_store_failure(e, config_path),
    })
}

/// How the free bytes of the disk holding a folder are read: the folder
/// measured (the nearest that exists) and its free bytes.
type FreeProbe = dyn Fn(&Path) -> std::io::Result<(PathBuf, u64)>;

/// Copies `store` into `to` and proves the copy whole (it opens as any
/// store would and holds as many records as were copied); a copy that
/// fails removes what it wrote, and the message says so.
fn copy_proven(
    store: &Store,
    to: &Path,
    config: &Config,
    job: Job,
    free: &FreeProbe,
) -> Result<Copied, Failure> {
    let go_on = keeps_free(to, COPY_KEEPS_FREE, free);
    store
        .copy_whole(to, &config.daemon.store_options(), go_on)
        .map_err(|failure| copy_failed(failure, to, job, free))
}

/// What to say of a copy into `to` that failed, and of what it wrote.
fn copy_failed(
    CopyFailed { error, removed }: CopyFailed,
    to: &Path,
    job: Job,
    free: &FreeProbe,
) -> Failure {
    let what = match error {
        StoreError::CopyStopped { free: left, .. } => format!(
            "the copy was stopped before it filled the disk: {} was left free in {} (a copy \
             never leaves less than {}), so it needs more room than the estimate: free more \
             disk there, or {}",
            human(left),
            free(to)
                .map_or_else(|_| to.to_owned(), |(at, _)| at)
                .display(),
            human(COPY_KEEPS_FREE),
            job.elsewhere()
        ),
        e => e.to_string(),
    };
    let removed = match removed {
        Removed::NothingWritten => "nothing was written".to_owned(),
        Removed::Yes => format!("what the copy wrote in {} was removed", to.display()),
        Removed::Failed(e) => format!(
            "what the copy wrote in {} could not be removed ({e}): it is not a whole store, \
             remove it (rm -r {})",
            to.display(),
            to.display()
        ),
    };
    failed(format!("{what}; {removed}"))
}

/// Removes the proven copy of a compaction that cannot go on; what to
/// say about it.
fn remove_copy(dirs: &CompactionDirs) -> String {
    match std::fs::remove_dir_all(&dirs.copy) {
        Ok(()) => format!("the copy in {} was removed", dirs.copy.display()),
        Err(e) => format!(
            "the copy in {} could not be removed ({e}): remove it (rm -r {})",
            dirs.copy.display(),
            dirs.copy.display()
        ),
    }
}

/// Which command makes the copy: the advice differs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Job {
    Copy,
    Compact,
}

impl Job {
    fn verb(self) -> &'static str {
        match self {
            Job::Copy => "copy the store",
            Job::Compact => "compact",
        }
    }

    /// Where else the copy can go.
    fn elsewhere(self) -> &'static str {
        match self {
            Job::Copy => "copy to a folder on another disk",
            Job::Compact => {
                "copy the store to another disk (switchyard store copy --to DIR) and set \
                 daemon.state_dir to it"
            }
        }
    }
}

/// The free disk a copy never goes below: it stops first (other programs
/// on the machine need some room too).
const COPY_KEEPS_FREE: u64 = 32 << 20;

/// Free disk a copy is refused without, on top of its estimated size.
const ROOM_MARGIN: u64 = 2 * COPY_KEEPS_FREE;

/// The disk a copy of a store of `store_bytes`, holding `records` bytes of
/// keys and values, is estimated to take. A copy takes about 1.5 times
/// its records' bytes (the engine's pages and log) and some megabytes
/// more: 305 MB of records in a store of 100,000 orders made a copy of 478
/// MB (1.57), and its copy 451 MB (1.48); 2.7 GB in a store of 1,000,000
/// orders (6.6 GB) a copy of 4.0 GB (1.5); 44.7 MB in one of 10,000
/// orders (190 MB) a copy of 79.2 MB (1.77). Seven quarters is the
/// estimate, and the 64 MB kept on top of it covers the small stores' part
/// above that; the copy stops by itself (and removes what it wrote) if it
/// would fill the disk anyway. No copy took more than the store.
fn copy_estimate(records: u64, store_bytes: u64) -> u64 {
    (records.saturating_mul(7) / 4).min(store_bytes)
}

/// Refuses, before anything is written, when the disk that will hold the
/// copy (`into`) has too little free space. A copy never took more than
/// the store (`store_bytes`), so a disk with that much free (and a margin)
/// is not looked into further; short of that, the bytes of the store's
/// records are counted (a read of the whole store, about a quarter of the
/// copy's time) and the copy's size estimated from them.
fn room_for_copy(
    store: &Store,
    store_bytes: u64,
    into: &Path,
    job: Job,
    free: &FreeProbe,
) -> Result<(), Failure> {
    let (at, free) = free(into).map_err(|e| {
        failed(format!(
            "cannot tell how much disk is free for the copy in {} ({e}); nothing was changed",
            into.display()
        ))
    })?;
    if free >= store_bytes.saturating_add(ROOM_MARGIN) {
        return Ok(());
    }
    let records = store.live_bytes().map_err(store_failure)?;
    let copy = copy_estimate(records, store_bytes);
    room_message(copy, records, free, &at, job).map_or(Ok(()), |m| Err(failed(m)))
}

/// What to say when `free` bytes in `at` cannot hold a copy of about
/// `copy` bytes, of `records` bytes of records.
fn room_message(copy: u64, records: u64, free: u64, at: &Path, job: Job) -> Option<String> {
    let needed = copy.saturating_add(ROOM_MARGIN);
    (free < needed).then(|| {
        format!(
            "not enough free disk to {}: the copy needs about {} in {} (the store holds {} of \
             records, which take more on disk, and {} is kept free), and {} is free there: \
             free {} more, or {}; nothing was changed",
            job.verb(),
            human(needed),
            at.display(),
            human(records),
            human(ROOM_MARGIN),
            human(free),
            human(needed - free),
            job.elsewhere()
        )
    })
}

/// Gives the copy the store folder's owner and mode (compaction run as
/// root, of a store the daemon's user owns), so that the daemon can open
/// it once it is in place.
fn same_owner(dirs: &CompactionDirs) -> Result<(), Failure> {
    let io = |e: std::io::Error| {
        failed(format!(
            "cannot give the copy in {} the owner and mode of the store in {} ({e}): \
             compact as the user that owns the store, or as root",
            dirs.copy.display(),
            dirs.store.display()
        ))
    };
    let store = std::fs::metadata(&dirs.store).map_err(io)?;
    let copy = std::fs::metadata(&dirs.copy).map_err(io)?;
    if (copy.uid(), copy.gid()) != (store.uid(), store.gid()) {
        chown_all(&dirs.copy, store.uid(), store.gid()).map_err(io)?;
    }
    std::fs::set_permissions(
        &dirs.copy,
        std::fs::Permissions::from_mode(store.mode() & 0o7777),
    )
    .map_err(io)?;
    std::fs::File::open(&dirs.copy)
        .and_then(|f| f.sync_all())
        .map_err(io)
}

fn chown_all(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_all(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The store's own lock (the one the engine takes on its `db` file, so a
/// daemon starting meanwhile is refused as by an open store), taken as soon
/// as this process's engine has let go of it: it holds the lock until every
/// thread of it is done. Waits a few seconds at the most.
fn hold_once_let_go(store: &Path) -> Result<std::fs::File, String> {
    let db = store.join("db");
    let file = std::fs::File::open(&db)
        .map_err(|e| format!("cannot open {} to lock the store ({e})", db.display()))?;
    match wait_let_go(&file, std::time::Duration::from_secs(5)) {
        Ok(true) => Ok(file),
        Ok(false) => Err(format!(
            "the store in {} was opened by another process (the daemon?) before the copy could \
             be put in its place: stop it (systemctl stop switchyard) and compact again",
            store.display()
        )),
        Err(e) => Err(format!(
            "cannot lock the store in {} ({e})",
            store.display()
        )),
    }
}

/// The store to `old`, the copy to the store's name, each rename made
/// durable before the next. A crash in between leaves no store: the next
/// open puts the copy in place.
fn swap(dirs: &CompactionDirs) -> Result<(), Failure> {
    let (store, copy, old) = (&dirs.store, &dirs.copy, &dirs.old);
    if let Err(e) = std::fs::rename(store, old) {
        return Err(failed(format!(
            "cannot put the store in {} aside as {} ({e}); {}; the store was not changed",
            store.display(),
            old.display(),
            remove_copy(dirs)
        )));
    }
    // Renamed: from here the copy is needed (the next open puts it in
    // place if this process stops), so it is never removed.
    sync_parent(store).map_err(|e| {
        failed(format!(
            "the store in {} was put aside as {} but the rename could not be made durable \
             ({e}): run store compact again, which finishes it",
            store.display(),
            old.display()
        ))
    })?;
    match std::fs::rename(copy, store).and_then(|()| sync_parent(store)) {
        Ok(()) => Ok(()),
        // Another process's open of the store finished the swap first.
        Err(_) if store.is_dir() && !copy.exists() => Ok(()),
        Err(e) => {
            // Back as it was, if that can be done; else the next open
            // finishes the swap.
            let undone = std::fs::rename(old, store).and_then(|()| sync_parent(store));
            Err(failed(if undone.is_ok() {
                format!(
                    "cannot put the copy in place of the store in {} ({e}); {}; the store is \
                     as it was",
                    store.display(),
                    remove_copy(dirs)
                )
            } else {
                format!(
                    "cannot put the copy {} in place of the store in {} ({e}): move it there \
                     (mv {} {}); the next start does so too. The store as it was is in {}",
                    copy.display(),
                    store.display(),
                    copy.display(),
                    store.display(),
                    old.display()
                )
            }))
        }
    }
}

/// The bytes a folder holds, its subfolders included.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GB", bytes as f64 / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MB", bytes as f64 / f64::from(1u32 << 20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once the engine of a closed store has let go, the compaction holds
    /// the store: a daemon starting then is refused as by an open store.
    #[test]
    fn a_closed_store_is_held_against_other_opens_until_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let options = crate::store::StoreOptions::default();
        Store::open(&state, options.clone())
            .unwrap()
            .close()
            .unwrap();
        let held = hold_once_let_go(&state).unwrap();
        assert!(
            matches!(
                Store::open(&state, options.clone()),
                Err(StoreError::Locked { .. })
            ),
            "opened while held"
        );
        drop(held);
        Store::open_once_free(&state, options)
            .unwrap()
            .close()
            .unwrap();
    }

    /// A config whose store, in `dir`/state, holds `n` records in one
    /// tree (enough for a few of the copy's batches); its path and the
    /// bytes of those records.
    fn store_of(dir: &Path, n: u32) -> (PathBuf, u64) {
        let state = dir.join("state");
        let config = dir.join("switchyard.toml");
        std::fs::write(
            &config,
            format!("[daemon]\nstate_dir = {:?}\n", state.display().to_string()),
        )
        .unwrap();
        let store = Store::open(&state, crate::store::StoreOptions::default()).unwrap();
        for i in 0..n {
            store
                .raw_insert_for_tests("tokens", &i.to_be_bytes(), &[7; 100])
                .unwrap();
        }
        let records = store.live_bytes().unwrap();
        store.close().unwrap();
        (config, records)
    }

    /// What the store in `dir`/state holds, record by record.
    fn records_in(state: &Path) -> u64 {
        let store = Store::open_once_free(state, crate::store::StoreOptions::default()).unwrap();
        let n = store.count_records().unwrap();
        store.close().unwrap();
        n
    }

    /// A disk with `free` bytes free, all of it in `dir`.
    fn disk(dir: &Path, free: u64) -> impl Fn(&Path) -> std::io::Result<(PathBuf, u64)> + use<> {
        let dir = dir.to_owned();
        move |_| Ok((dir.clone(), free))
    }

    /// A disk that fills up as the copy writes: `free` for the first
    /// `reads` reads of it, then 1 MB.
    fn filling_disk(
        dir: &Path,
        free: u64,
        reads: u32,
    ) -> impl Fn(&Path) -> std::io::Result<(PathBuf, u64)> + use<> {
        let (dir, read) = (dir.to_owned(), std::cell::Cell::new(0));
        move |_| {
            read.set(read.get() + 1);
            Ok((dir.clone(), if read.get() > reads { 1 << 20 } else { free }))
        }
    }

    /// The refusal on a disk too full for the copy, through the whole
    /// decision (the store's size, then its records' bytes counted): a
    /// disk that holds the estimate and the margin is enough, a byte less
    /// is refused, and then nothing is written and the store is left as
    /// it was, for `copy` and `compact` alike.
    #[test]
    fn a_disk_too_full_for_the_copy_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (config, records) = store_of(dir.path(), 3_500);
        let state = dir.path().join("state");
        let store_bytes = dir_bytes(&state);
        // The records' estimate is below the store's size here, so the
        // store's size alone does not settle it and the records are read.
        assert!(copy_estimate(records, store_bytes) < store_bytes);
        let needed = copy_estimate(records, store_bytes) + ROOM_MARGIN;

        let before = records_in(&state);
        let to = dir.path().join("copy");
        let refused = copy_with(&config, &to, &disk(dir.path(), needed - 1)).unwrap_err();
        assert!(
            refused
                .message
                .starts_with("not enough free disk to copy the store: the copy needs about "),
            "{}",
            refused.message
        );
        assert!(
            refused.message.ends_with("nothing was changed"),
            "{}",
            refused.message
        );
        assert!(!to.exists(), "nothing written");

        let refused = compact_with(&config, false, &disk(dir.path(), needed - 1)).unwrap_err();
        assert!(
            refused
                .message
                .starts_with("not enough free disk to compact: "),
            "{}",
            refused.message
        );
        assert!(
            !dir.path().join("state.compact").exists(),
            "nothing written"
        );
        assert_eq!(records_in(&state), before, "the store as it was");

        copy_with(&config, &to, &disk(dir.path(), needed)).unwrap();
        assert_eq!(records_in(&to), before);
        compact_with(&config, false, &disk(dir.path(), needed)).unwrap();
        assert_eq!(records_in(&state), before);
    }

    /// A disk that fills up while the copy writes, though the estimate
    /// said it would do: the copy stops, removes what it wrote (and only
    /// that: a folder given to `copy` stays, empty) and says so; the
    /// store is left as it was.
    #[test]
    fn a_copy_that_runs_out_of_disk_midway_removes_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let (config, _) = store_of(dir.path(), 3_500);
        let state = dir.path().join("state");
        let before = records_in(&state);
        let plenty = 1 << 40;

        let to = dir.path().join("empty");
        std::fs::create_dir(&to).unwrap();
        // Read once for the estimate, once after the first batch.
        let stopped = copy_with(&config, &to, &filling_disk(dir.path(), plenty, 2)).unwrap_err();
        assert!(
            stopped.message.starts_with(
                "the copy was stopped before it filled the disk: 1.0 MB was left free in "
            ) && stopped.message.ends_with(&format!(
                "; what the copy wrote in {} was removed",
                to.display()
            )),
            "{}",
            stopped.message
        );
        assert!(to.is_dir(), "the folder given stays");
        assert_eq!(std::fs::read_dir(&to).unwrap().count(), 0);

        let stopped =
            compact_with(&config, false, &filling_disk(dir.path(), plenty, 2)).unwrap_err();
        let copy = dir.path().join("state.compact");
        assert!(
            stopped.message.ends_with(&format!(
                "; what the copy wrote in {} was removed; nothing was changed",
                copy.display()
            )),
            "{}",
            stopped.message
        );
        assert!(!copy.exists());
        assert_eq!(records_in(&state), before, "the store as it was");
    }

    #[test]
    fn too_little_free_disk_says_how_much_is_needed_and_where() {
        let at = Path::new("/var/lib/private");
        let (copy, records) = (10 << 30, 6 << 30);
        let needed = copy + ROOM_MARGIN;
        assert_eq!(room_message(copy, records, needed, at, Job::Compact), None);
        let message = room_message(copy, records, 6 << 30, at, Job::Compact).unwrap();
        assert!(
            message.starts_with(
                "not enough free disk to compact: the copy needs about 10.1 GB in \
                 /var/lib/private (the store holds 6.0 GB of records, which take more on disk, \
                 and 64.0 MB is kept free), and 6.0 GB is free there: free 4.1 GB more, or \
                 copy the store to another disk (switchyard store copy --to DIR)"
            ),
            "{message}"
        );
        assert!(message.ends_with("nothing was changed"), "{message}");
        let message = room_message(copy, records, 0, at, Job::Copy).unwrap();
        assert!(
            message.starts_with("not enough free disk to copy the store: ")
                && message.contains("or copy to a folder on another disk; nothing was changed"),
            "{message}"
        );
    }
}
