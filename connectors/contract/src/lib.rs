//! The contract between the switchyard daemon and its channel connectors: the
//! canonical order model, the `Connector` trait, the error classes a connector
//! reports, the framework-free webhook request, and (feature `testkit`) the
//! fixture loader, loopback replay server and golden-file helpers that tests,
//! `switchyard replay` and the simulator share.

pub mod connector;
pub mod error;
pub mod model;
pub mod secret;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod webhook;

pub use connector::{
    Capabilities, Connector, Cursor, InventoryPush, InventoryResult, OrderPage, RateHint,
    RejectedOrder, TrackingPush, TrackingResult,
};
pub use error::ConnectorError;
pub use model::{
    Address, Channel, Currency, Customer, Line, NormalizationNote, NormalizedOrder, NoteKind,
    Order, OrderStatus, PaymentStatus, Presentment, Priority, Shipment, ShipmentLine, Totals,
};
pub use secret::Secret;
pub use webhook::{WebhookOutcome, WebhookRequest};
