//! switchyard: the order hub daemon. This crate is the only code that knows all
//! four channels; each channel's wire format lives in its own connector crate
//! under `connectors/`, behind the `switchyard_contract::Connector` trait.

pub mod app;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod demo;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod poll;
pub mod retry;
pub mod rules;
pub mod sim;
pub mod store;
