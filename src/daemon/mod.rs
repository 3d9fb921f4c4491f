//! The daemon's wiring: `start.rs` builds everything from the config and
//! runs it until shutdown; `reload.rs` swaps the rules in force;
//! `systemd.rs` speaks the notify protocol and keeps the watchdog fed only
//! while every worker's heartbeat is on time; `metrics.rs` and `logging.rs`
//! are what an operator sees.

pub mod logging;
pub mod metrics;
pub mod reload;
mod start;
pub mod systemd;

pub use start::{AccountReport, RunOptions, RunReport, run};
