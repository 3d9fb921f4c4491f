//! `StoreError`: everything the store can report, in words a merchant can act on.

use std::path::PathBuf;

/// What went wrong in the store. Keys and ids are named so the offending
/// record can be found; no variant carries an engine type, so callers never
/// depend on the storage engine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store at {} is in use by another process (is the daemon running? stop it or use the admin API)",
        dir.display()
    )]
    Locked { dir: PathBuf },

    #[error("cannot open store at {}: {detail}", dir.display())]
    Open { dir: PathBuf, detail: String },

    /// Raised by [`crate::store::Store::open_existing`] only: a command that
    /// reads would otherwise make an empty store and report it as empty.
    #[error("no store at {}: {why}", dir.display())]
    NoStore { dir: PathBuf, why: &'static str },

    /// A copy of the store stopped before it filled the disk
    /// ([`crate::store::Store::copy_to`]).
    #[error(
        "the copy in {} was stopped after {copied} records, with {free} bytes left free on its disk",
        dir.display()
    )]
    CopyStopped {
        dir: PathBuf,
        free: u64,
        copied: u64,
    },

    /// The engine failed while reading or writing; `context` says what was being done.
    #[error("store {context} failed: {detail}")]
    Engine { context: String, detail: String },

    #[error(
        "stored value {tree}/{key} has unknown format version {version}: it was written by a newer switchyard; upgrade switchyard or restore a backup"
    )]
    Format {
        tree: &'static str,
        key: String,
        version: u8,
    },

    #[error("stored value {tree}/{key} is unreadable: {detail}")]
    Corrupt {
        tree: &'static str,
        key: String,
        detail: String,
    },

    #[error("cannot encode {tree}/{key} for storage: {detail}")]
    Encode {
        tree: &'static str,
        key: String,
        detail: String,
    },

    /// The stored revision is not the one the writer read: re-read and retry.
    #[error("order {id} was changed by another writer; re-read it and retry")]
    Conflict { id: String },

    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },

    #[error("invalid {what} {key:?}: {reason}")]
    InvalidKey {
        what: &'static str,
        key: String,
        reason: &'static str,
    },

    #[error(
        "{cursor:?} is not a page cursor this store handed out; use the cursor the previous page ended with, or start again without one"
    )]
    InvalidCursor { cursor: String },

    /// Data is written but may not be durable; do not acknowledge it.
    #[error("store flush failed: {detail}; recent writes may not be durable")]
    Flush { detail: String },

    #[error("store is closed: its flusher has stopped")]
    Closed,

    /// Raised by `WriteBatch::fail_before_commit`, to prove atomicity in tests.
    #[doc(hidden)]
    #[error("write batch aborted on request (test hook)")]
    Injected,
}
