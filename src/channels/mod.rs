//! Where orders come in from the channels: the registry of the connectors
//! built into this daemon (`registry.rs`), the per-account poll loop
//! (`poll.rs`), and the framework-free half of webhook handling
//! (`webhook.rs`: verify, parse, fetch, ingest, flush; `crate::http` only
//! turns requests and answers into HTTP).

pub mod poll;
pub mod registry;
pub mod webhook;
