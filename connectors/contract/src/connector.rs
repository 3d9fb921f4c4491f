//! The `Connector` trait every channel crate implements, and the plain data
//! that crosses it. Connectors never sleep, retry, spawn or touch the store:
//! they make one call's worth of requests and classify what went wrong.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::model::{Channel, NormalizedOrder, Order, Shipment};
use crate::webhook::{WebhookOutcome, WebhookRequest};

/// An account's poll position, opaque to the daemon: each connector encodes
/// what it needs (a timestamp watermark, a page token ...). Stored as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// One page of a poll: the orders on it and where the next call starts.
#[derive(Debug, Clone)]
pub struct OrderPage {
    pub orders: Vec<NormalizedOrder>,
    /// The cursor to store with these orders (in the same transaction).
    pub next: Cursor,
    /// More pages are ready now; `false` means caught up until the next interval.
    pub more: bool,
    /// Orders on this page the connector could not read. They are left out
    /// (one bad order must not stop every later one) and the daemon reports
    /// each loudly; the cursor still moves past them.
    pub rejected: Vec<RejectedOrder>,
}

/// An order a connector had to leave out of a page, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedOrder {
    /// The channel's id, when even that could be read.
    pub channel_order_id: Option<String>,
    pub error: String,
}

/// What a connector can do, so that config asking for more is refused at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub poll: bool,
    pub webhooks: bool,
    pub push_inventory: bool,
    pub push_tracking: bool,
}

/// Set the channel's sellable quantity of one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryPush {
    pub sku: String,
    /// What the channel should show (already `max(0, available − buffer)`).
    pub quantity: u32,
    /// The last quantity the channel confirmed, for compare-and-set where the
    /// channel supports it.
    pub last_confirmed: Option<u32>,
    /// The channel's own reference for this SKU learned earlier (an inventory
    /// item id, a listing id ...), or none to look it up.
    pub listing_ref: Option<String>,
    /// Stable across retries of the same push.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryResult {
    /// The channel now shows `quantity`; `listing_ref` is worth remembering.
    Set {
        quantity: u32,
        listing_ref: Option<String>,
    },
    /// The channel does not list this SKU: nothing to push, not an error.
    NotListed,
    /// The channel's quantity is not `last_confirmed` any more (a sale or an
    /// edit on the channel): nothing was written. `current` is what the
    /// channel shows now; the daemon decides what to push after reconciling.
    Conflict { current: u32 },
}

/// Tell the channel about one shipment of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackingPush {
    pub order: Order,
    pub shipment: Shipment,
    /// Stable across retries of the same shipment.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackingResult {
    /// Created now; the channel's id for it.
    Created { channel_ref: Option<String> },
    /// The channel already had it (a retry after a timeout read it back).
    AlreadyThere { channel_ref: Option<String> },
}

/// What the channel last said about its rate limit, so the daemon's limiter
/// can follow it (Shopify's `throttleStatus`, Amazon's
/// `x-amzn-RateLimit-Limit`, Etsy's `x-remaining-*` headers ...).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateHint {
    /// Bucket size, in the channel's unit (query-cost points, requests).
    pub capacity: u32,
    /// What is left in the bucket now.
    pub remaining: u32,
    /// Units restored per second.
    pub restore_per_second: f64,
    pub observed_at: DateTime<Utc>,
}

/// Which of a channel's published limits an outbound call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    PushInventory,
    PushTracking,
}

/// A channel's published request rate for one operation class: a token
/// bucket of `burst` requests refilled at `per_second`. The daemon's limiter
/// is seeded from it and then follows the channel's `RateHint`s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained requests per second (may be below 1, e.g. 1/60 for once a minute).
    pub per_second: f64,
    /// Requests that may go back to back after a quiet spell; at least 1.
    pub burst: u32,
}

impl RateLimit {
    /// What a connector that publishes nothing gets: one request a second.
    pub const CONSERVATIVE: RateLimit = RateLimit {
        per_second: 1.0,
        burst: 1,
    };
}

/// One channel account. Built from its config and a shared HTTP client with
/// no I/O at build time.
pub trait Connector: Send + Sync {
    fn channel(&self) -> Channel;

    fn capabilities(&self) -> Capabilities;

    /// The channel's latest rate-limit report, if it gives one.
    fn rate_hint(&self) -> Option<RateHint> {
        None
    }

    /// The channel's own references for SKUs that an order shows (Shopify:
    /// SKU → inventory item id), so that stock pushes need no look-up. Pure.
    fn listing_refs(&self, _order: &NormalizedOrder) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The channel's published default limit for one operation class. The
    /// default is deliberately slow (`RateLimit::CONSERVATIVE`): connectors
    /// override it with their channel's documented numbers.
    fn rate_limit(&self, _operation: Operation) -> RateLimit {
        RateLimit::CONSERVATIVE
    }

    /// A cheap read-only call that proves the credentials and base URL work.
    fn check(&self) -> impl Future<Output = Result<(), ConnectorError>> + Send;

    /// One page of orders changed since `cursor` (or since `since` on the first
    /// run, when there is no cursor). `now` bounds windows; connectors read no clock.
    fn poll_orders(
        &self,
        cursor: Option<&Cursor>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<OrderPage, ConnectorError>> + Send;

    /// Fetches orders by channel id (after a webhook that only names them).
    fn fetch_orders(
        &self,
        channel_order_ids: &[String],
    ) -> impl Future<Output = Result<Vec<NormalizedOrder>, ConnectorError>> + Send;

    /// Checks the signature over the raw bytes, in constant time, before any parsing.
    fn verify_webhook(&self, req: &WebhookRequest) -> Result<(), ConnectorError>;

    /// Parses a webhook that `verify_webhook` accepted.
    fn parse_webhook(&self, req: &WebhookRequest) -> Result<WebhookOutcome, ConnectorError>;

    fn push_inventory(
        &self,
        push: &InventoryPush,
    ) -> impl Future<Output = Result<InventoryResult, ConnectorError>> + Send;

    /// How many pushes one [`Connector::push_inventory_batch`] call may
    /// carry. 1 (the default): the daemon sends stock pushes one at a time.
    fn inventory_batch_limit(&self) -> usize {
        1
    }

    /// Several pushes (at most `inventory_batch_limit()`, never two for the
    /// same SKU) in as few calls as the channel allows: one result per push,
    /// in the order given. Each result means for its push exactly what
    /// `push_inventory` would have answered (`Conflict`: nothing written for
    /// it; `Err`: the push may be sent again, under its idempotency key). A
    /// fault of the whole call is that error for every push it leaves
    /// unanswered. The default sends them one after another through
    /// `push_inventory`, so connectors without a batched write need nothing.
    fn push_inventory_batch(
        &self,
        pushes: &[InventoryPush],
    ) -> impl Future<Output = Vec<Result<InventoryResult, ConnectorError>>> + Send {
        async move {
            let mut results = Vec::with_capacity(pushes.len());
            for push in pushes {
                results.push(self.push_inventory(push).await);
            }
            results
        }
    }

    fn push_tracking(
        &self,
        push: &TrackingPush,
    ) -> impl Future<Output = Result<TrackingResult, ConnectorError>> + Send;
}
