//! `switchyard store copy`: the store copied into a new folder, written
//! afresh, with the daemon stopped.

use std::path::Path;

use super::orders::store_failure;
use super::print::outln;
use super::{CliResult, EXIT_FAILED, Failure};
use crate::store::{Store, StoreError};

pub(crate) fn copy(config_path: &Path, to: &Path) -> CliResult {
    let config = crate::config::load(config_path)
        .map_err(|errors| Failure::new(EXIT_FAILED, errors.to_string()))?;
    let from = &config.daemon.state_dir;
    let store = Store::open(from, config.daemon.store_options()).map_err(|e| match e {
        StoreError::Locked { dir } => Failure::new(
            EXIT_FAILED,
            format!(
                "the store at {} is open in another process (the daemon?): stop it first \
                 (systemctl stop switchyard), then copy",
                dir.display()
            ),
        ),
        e => store_failure(e),
    })?;
    let copied = store.copy_to(to).map_err(store_failure)?;
    store.close().map_err(store_failure)?;
    // The copy opens as any store would: what was copied is whole.
    Store::open(to, config.daemon.store_options())
        .and_then(Store::close)
        .map_err(store_failure)?;
    outln!(
        "copied {copied} records from {} ({}) to {} ({}); to run on the copy, set \
         daemon.state_dir = \"{}\" and start the daemon",
        from.display(),
        size_on_disk(from),
        to.display(),
        size_on_disk(to),
        to.display()
    );
    Ok(())
}

/// The bytes a store's folder holds, for the operator to compare.
fn size_on_disk(dir: &Path) -> String {
    fn bytes(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    let b = bytes(dir);
    if b >= 1 << 30 {
        format!("{:.1} GB", b as f64 / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MB", b as f64 / f64::from(1u32 << 20))
    }
}
