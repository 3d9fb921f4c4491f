//! The `Connector` trait every channel crate implements, and the plain data
//! that crosses it. Connectors never sleep, retry, spawn or touch the store:
//! they make one call's worth of requests (each one after the daemon's
//! [`Pacer`](crate::pacing::Pacer) lets it go) and classify what went wrong.
//!
//! The trait is object-safe: the daemon keeps one `Arc<dyn Connector>` per
//! account, built once and shared by the poll loop, webhooks and the outbox,
//! so that two users of one account never hold two copies of its rotating
//! tokens.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::model::{Channel, NormalizedOrder, Order, Shipment};
use crate::pacing::{Operation, RateLimit};
use crate::webhook::{WebhookOutcome, WebhookRequest};

/// A boxed future, so that [`Connector`] can be used as `dyn Connector`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

/// What a fetch of named orders found.
#[derive(Debug, Clone, Default)]
pub struct FetchedOrders {
    pub orders: Vec<NormalizedOrder>,
    /// Orders the channel sent that could not be read: left out, named.
    pub rejected: Vec<RejectedOrder>,
    /// Ids the channel has no order for (deleted, or out of the app's reach).
    pub missing: Vec<String>,
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

/// How a channel wants the daemon to treat it, beyond its rate limits: the
/// numbers that used to be tuned for one channel inside the daemon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelHints {
    /// How full the channel's shared rate-limit bucket (as its
    /// [`RateHint`](crate::pacing::RateHint)s report it) must be before a
    /// poll page is asked for: polls are background work and leave the rest
    /// to pushes, which buyers and other channels wait on. 0 disables it.
    pub poll_low_water: f64,
    /// How long one request-bound piece of channel work (a poll page, a
    /// fetch, a push) may take once the pacer has let it go, before the
    /// daemon gives up on it and retries later. Waits on the pacer are not
    /// counted: a channel that allows one call a minute is not stalled.
    pub call_timeout: Duration,
    /// How often recently placed orders are read again in full although the
    /// channel did not report them changed (Etsy's modification time misses
    /// refunds and ship-date changes); `None` when the cursor sees everything.
    pub resweep_every: Option<Duration>,
    /// How far back such a re-read reaches.
    pub resweep_window: Duration,
}

impl Default for ChannelHints {
    fn default() -> Self {
        ChannelHints {
            poll_low_water: 0.0,
            call_timeout: Duration::from_secs(120),
            resweep_every: None,
            resweep_window: Duration::from_secs(30 * 24 * 3600),
        }
    }
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
    /// The channel took the change for processing later (Amazon's listings
    /// feeds): the daemon asks [`Connector::check_inventory_receipt`] about
    /// `receipt` from `check_after` on. Several pushes of one call may share
    /// a receipt.
    Pending {
        receipt: String,
        check_after: DateTime<Utc>,
    },
}

/// What the channel says about a [`InventoryResult::Pending`] receipt.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiptStatus {
    /// Not processed yet: ask again from `check_after` on.
    Pending { check_after: DateTime<Utc> },
    /// Processed: one result per SKU the receipt covered (`Pending` is not
    /// a valid answer here). A SKU the channel's report does not mention
    /// counts as set.
    Done {
        results: Vec<(String, Result<InventoryResult, ConnectorError>)>,
    },
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

/// One channel account. Built once per account from its settings, the
/// daemon's shared HTTP client, a [`TokenStore`](crate::tokens::TokenStore)
/// and a [`Pacer`](crate::pacing::Pacer), with no I/O at build time.
///
/// Every request a connector makes first awaits its pacer
/// (`pacer.acquire(operation, cost)`) and reports what the channel said
/// about its limits afterwards (`pacer.observe`): that is the only waiting
/// a connector does.
pub trait Connector: Send + Sync {
    fn channel(&self) -> Channel;

    /// Constant for the channel.
    fn capabilities(&self) -> Capabilities;

    fn hints(&self) -> ChannelHints {
        ChannelHints::default()
    }

    /// The channel's published default limit for one operation class. The
    /// default is deliberately slow (`RateLimit::CONSERVATIVE`): connectors
    /// override it with their channel's documented numbers. The daemon
    /// seeds its pacer from these and then follows what the channel reports.
    fn rate_limit(&self, _operation: Operation) -> RateLimit {
        RateLimit::CONSERVATIVE
    }

    /// The channel's own references for SKUs that an order shows (Shopify:
    /// SKU → inventory item id; Etsy: SKU → listing), so that stock pushes
    /// need no look-up. Pure.
    fn listing_refs(&self, _order: &NormalizedOrder) -> Vec<(String, String)> {
        Vec::new()
    }

    /// A cheap read-only call that proves the credentials and base URL work.
    fn check(&self) -> BoxFuture<'_, Result<(), ConnectorError>>;

    /// One page of orders changed since `cursor` (or since `since` on the first
    /// run, when there is no cursor). `now` bounds windows; connectors read no
    /// clock for their cursors.
    fn poll_orders<'a>(
        &'a self,
        cursor: Option<&'a Cursor>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<OrderPage, ConnectorError>>;

    /// Fetches orders by channel id (after a notification that only names
    /// them, or for a re-read). An order that cannot be read is left out and
    /// named in `rejected`; it never fails the others.
    fn fetch_orders<'a>(
        &'a self,
        channel_order_ids: &'a [String],
    ) -> BoxFuture<'a, Result<FetchedOrders, ConnectorError>>;

    /// Verifies a webhook over its raw bytes (in constant time, before any
    /// parsing) or answers the channel's endpoint challenge, then says what
    /// it means. A bad or missing signature is `Err(Auth)`; a body that is
    /// not the channel's format is `Err(Decode)`. May call the channel (eBay's
    /// public signing keys, fetched by key id and cached).
    fn handle_webhook<'a>(
        &'a self,
        req: &'a WebhookRequest,
    ) -> BoxFuture<'a, Result<WebhookOutcome, ConnectorError>>;

    /// Stock pushes that must travel in one call because the channel writes
    /// them as one object (Etsy replaces a listing's whole inventory, so two
    /// SKUs of one listing go in one read-modify-write). The daemon puts all
    /// due pushes that share a key into one [`push_inventory_batch`] call.
    /// `None`: no such constraint.
    ///
    /// [`push_inventory_batch`]: Connector::push_inventory_batch
    fn inventory_batch_key(&self, _push: &InventoryPush) -> Option<String> {
        None
    }

    /// How many pushes without a batch key one
    /// [`Connector::push_inventory_batch`] call may carry. 1 (the default):
    /// one at a time.
    fn inventory_batch_limit(&self) -> usize {
        1
    }

    /// Several pushes (never two for the same SKU) in as few calls as the
    /// channel allows: one result per push, in the order given. Each result
    /// means for its push exactly what it says (`Conflict`: nothing written
    /// for it; `Err`: the push may be sent again, under its idempotency
    /// key). A fault of the whole call is that error for every push it
    /// leaves unanswered.
    fn push_inventory_batch<'a>(
        &'a self,
        pushes: &'a [InventoryPush],
    ) -> BoxFuture<'a, Vec<Result<InventoryResult, ConnectorError>>>;

    /// What became of pushes answered [`InventoryResult::Pending`].
    fn check_inventory_receipt<'a>(
        &'a self,
        receipt: &'a str,
    ) -> BoxFuture<'a, Result<ReceiptStatus, ConnectorError>> {
        let channel = self.channel();
        Box::pin(async move {
            Err(ConnectorError::Config(format!(
                "{channel} gives no pending stock results, so receipt {receipt:?} cannot be checked"
            )))
        })
    }

    fn push_tracking<'a>(
        &'a self,
        push: &'a TrackingPush,
    ) -> BoxFuture<'a, Result<TrackingResult, ConnectorError>>;
}
