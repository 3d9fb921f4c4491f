//! Every integration test of the daemon, in one binary: each former test
//! file is a module here, so the crate is linked once instead of once per
//! file. Shared support (a test connector, orders, the daemon harness) is in
//! `common/`.

// Test support outside `#[test]` functions: a panic is the failure report,
// and test figures are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

mod admin;
mod cli;
mod config;
mod contract;
mod daemon;
mod destinations;
mod etsy;
mod indexes;
mod ingest;
mod logs;
mod metrics;
mod operator;
mod outbound;
mod outbound_cli;
mod owed;
mod pacing;
mod poll;
mod properties;
mod reload;
mod rules;
mod shopify_outbound;
mod split_orders;
mod store;
mod systemd;
mod tokens;
