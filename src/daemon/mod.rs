//! The daemon's wiring: `build.rs` builds everything from the config,
//! `start.rs` starts it and runs it until shutdown, `shutdown.rs` stops it
//! within one deadline and flushes the store; `reload.rs` swaps the rules in force;
//! `systemd.rs` speaks the notify protocol and keeps the watchdog fed only
//! while every worker's heartbeat is on time; `metrics.rs` and `logging.rs`
//! are what an operator sees.

mod build;
pub mod logging;
pub mod metrics;
pub mod reload;
mod shutdown;
mod start;
pub mod systemd;

pub use build::AccountReport;
pub use start::{RunOptions, RunReport, run};
