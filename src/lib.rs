//! switchyard: the order hub daemon. This crate is the only code that knows all
//! four channels; each channel's wire format lives in its own connector crate
//! under `connectors/`, behind the `switchyard_contract::Connector` trait.
//!
//! The modules follow the data: `channels` (connectors, polls, webhooks) →
//! `ingest` → `rules` → `store` → `effects` (stock, tracking, deliveries) →
//! `outbox` → a channel or a destination. `ops` is what a person asks for,
//! `http` and `cli` the two ways to ask, `daemon` the wiring. `pacing`,
//! `diag` and `io_text` depend on nothing else in the crate, `rules` only on
//! those two; `metrics` and `systemd` (heartbeats), which the workers report
//! to, only on `pacing`.

pub mod channels;
pub mod cli;
pub mod config;
pub mod daemon;
mod diag;
pub mod effects;
pub mod http;
pub mod ingest;
pub mod io_text;
pub mod metrics;
pub mod ops;
pub mod outbox;
pub mod pacing;
pub mod registry;
pub mod rules;
pub mod sim;
pub mod store;
pub mod systemd;
