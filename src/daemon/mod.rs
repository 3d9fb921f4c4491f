//! The daemon's wiring: `build.rs` builds everything from the config,
//! `start.rs` starts it and runs it until shutdown, `shutdown.rs` stops it
//! within one deadline and flushes the store; `reload.rs` swaps the rules in
//! force; `logging.rs` is what an operator reads. The metrics and the
//! systemd heartbeats every worker reports to are leaves of their own
//! (`crate::metrics`, `crate::systemd`), so nothing the daemon wires imports
//! the daemon back.

mod build;
pub mod logging;
pub mod reload;
mod shutdown;
mod start;

pub use build::AccountReport;
pub use start::{RunOptions, RunReport, run};
