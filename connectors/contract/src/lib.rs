//! The contract between the switchyard daemon and its channel connectors: the
//! canonical order model, the `Connector` trait, the error classes a connector
//! reports, the framework-free webhook request, the pacer and token store the
//! daemon hands every connector, and (feature `testkit`) the
//! fixture loader, loopback replay server and golden-file helpers that tests,
//! `switchyard replay` and the simulator share.

pub mod connector;
pub mod error;
pub mod model;
pub mod pacing;
pub mod secret;
pub mod settings;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tokens;
pub mod webhook;

pub use connector::{
    BoxFuture, Capabilities, ChannelHints, Connector, Cursor, FetchedOrders, InventoryPush,
    InventoryResult, OrderPage, ReceiptStatus, RejectedOrder, TrackingPush, TrackingResult,
};
pub use error::ConnectorError;
pub use model::{
    Address, Channel, Currency, Customer, Fulfillment, Gift, Line, LineOption, NormalizationNote,
    NormalizedOrder, NoteKind, Notes, Order, OrderStatus, PaymentStatus, Presentment, Priority,
    RawOrderErrors, Shipment, ShipmentLine, Totals, non_blank,
};
pub use pacing::{Operation, Pacer, RateHint, RateLimit, RateWindow, SeenHint, Unpaced};
pub use secret::Secret;
pub use settings::{AccountSettings, BuildContext, ChannelDescriptor, Need, SettingsReader};
pub use tokens::{TokenGrant, TokenKeeper, TokenSet, TokenState, TokenStore};
pub use webhook::{WebhookOutcome, WebhookRequest};
