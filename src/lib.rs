//! switchyard: the order hub daemon. This crate is the only code that knows all
//! four channels; each channel's wire format lives in its own connector crate
//! under `connectors/`, behind the `switchyard_contract::Connector` trait.

pub mod app;
#[macro_use]
pub mod cli;
pub mod config;
pub mod connectors;
pub mod deliver;
pub mod demo;
pub mod http;
pub mod ingest;
pub mod inventory;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod outbox;
pub mod poll;
pub mod reload;
pub mod retry;
pub mod rules;
pub mod shipments;
pub mod sim;
pub mod store;
