//! The Etsy connector: Open API v3 receipt sync, Standard Webhooks that name
//! receipts to fetch, listing-level stock push and tracking push, for one
//! shop (one switchyard account).
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`config`] | [`EtsyConfig`]: plain data, validated once |
//! | [`settings`] | the account's config keys, [`DESCRIPTOR`] for the daemon's registry |
//! | [`endpoints`] | every path called, by operationId |
//! | `client` | HTTP, OAuth refresh through the token keeper, limit headers, error classes |
//! | `wire` | Etsy's JSON shapes, lenient, crate-private |
//! | `money` | Money `{amount, divisor}` ↔ `Decimal`, exactly |
//! | [`normalize`] | pure receipt → canonical order, with notes; the state mapping table |
//! | [`cursor`] | the poll cursor: changed receipts with overlap, and resweeps |
//! | [`webhook`] | Standard Webhooks signature and the flat event body |
//! | `catalog` | SKU → listing, from orders or the shop's active listings |
//! | `push` | stock (read-modify-write of a listing) and tracking (never twice) |
//! | [`carrier`] | switchyard carrier codes ↔ Etsy carrier names |
//! | `sim` | (feature `sim`) a simulated Etsy shop for the demo and daemon tests |
//!
//! The connector never sleeps or stores anything: each call makes its few
//! requests, each after the daemon's pacer lets it go, and classifies what
//! went wrong. What it keeps in memory: the token keeper's current tokens
//! (saved through the daemon's token store the moment Etsy rotates them),
//! the SKU → listing map, and one lock per listing it writes.

pub mod carrier;
mod catalog;
mod client;
pub mod config;
pub mod cursor;
pub mod endpoints;
mod money;
pub mod normalize;
mod push;
pub mod settings;
#[cfg(feature = "sim")]
pub mod sim;
pub mod webhook;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_contract::{
    BoxFuture, Capabilities, Channel, ChannelDescriptor, ChannelHints, Connector, ConnectorError,
    Cursor, FetchedOrders, InventoryPush, InventoryResult, NormalizedOrder, Operation, OrderPage,
    Pacer, RateLimit, RejectedOrder, TokenStore, TrackingPush, TrackingResult, WebhookOutcome,
    WebhookRequest,
};

pub use config::{DEFAULT_TOKEN_PATH, EtsyConfig, MAX_PAGE_SIZE};
pub use cursor::{OVERLAP, PollCursor, RESWEEP_EVERY, RESWEEP_WINDOW};
pub use normalize::{normalize_receipt, sku_listings};
pub use push::listing_id;
pub use settings::{EtsySettings, read_settings, replay_settings};

use catalog::{Catalog, Found};
use client::{Call, EtsyClient};
use cursor::Plan;
use push::{ListingLocks, Pusher};
use wire::ReceiptsPage;

/// What an Etsy account can do, whatever its settings.
pub const CAPABILITIES: Capabilities = Capabilities {
    poll: true,
    webhooks: true,
    push_inventory: true,
    push_tracking: true,
};

/// The Etsy crate as the daemon's registry sees it.
pub const DESCRIPTOR: ChannelDescriptor = ChannelDescriptor {
    channel: Channel::Etsy,
    capabilities: CAPABILITIES,
    read_settings,
    replay_settings,
};

/// How many stock pushes one [`Connector::push_inventory_batch`] call takes.
pub const INVENTORY_BATCH_LIMIT: usize = 25;

/// The batch key of stock pushes whose listing is not known yet: they travel
/// together, so that one catalog read serves them all.
pub const CATALOG_BATCH_KEY: &str = "etsy-catalog-lookup";

/// One Etsy shop. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct EtsyConnector {
    config: EtsyConfig,
    client: EtsyClient,
    catalog: Catalog,
    locks: ListingLocks,
}

impl std::fmt::Debug for EtsyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtsyConnector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EtsyConnector {
    /// Validates the config; no I/O. `http` is the daemon's shared client
    /// (its timeouts apply), `tokens` where rotated tokens are saved, and
    /// every request waits on `pacer` first.
    pub fn new(
        config: EtsyConfig,
        http: reqwest::Client,
        tokens: Arc<dyn TokenStore>,
        pacer: Arc<dyn Pacer>,
    ) -> Result<Self, ConnectorError> {
        config.validate()?;
        Ok(EtsyConnector {
            client: EtsyClient::new(&config, http, tokens, pacer),
            catalog: Catalog::default(),
            locks: ListingLocks::default(),
            config,
        })
    }

    pub fn config(&self) -> &EtsyConfig {
        &self.config
    }

    fn pusher(&self) -> Pusher<'_> {
        Pusher {
            client: &self.client,
            shop_id: self.config.shop_id,
            catalog: &self.catalog,
            locks: &self.locks,
        }
    }

    async fn poll_page(
        &self,
        cursor: Option<&Cursor>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<OrderPage, ConnectorError> {
        let position = match cursor {
            Some(c) => PollCursor::decode(c)?,
            None => PollCursor::first(since, now),
        };
        let limit = self.config.page_size;
        let plan = position.plan(now);
        let call = Call::get(
            endpoints::GET_SHOP_RECEIPTS,
            Operation::Poll,
            endpoints::shop_receipts(self.config.shop_id),
        );
        let call = match plan {
            Plan::Changed {
                min_last_modified,
                offset,
            } => call
                .query("min_last_modified", min_last_modified)
                .query("sort_on", "updated")
                .query("sort_order", "asc")
                .query("limit", limit)
                .query("offset", offset),
            Plan::Resweep {
                min_created,
                offset,
            } => call
                .query("min_created", min_created)
                .query("sort_on", "created")
                .query("sort_order", "asc")
                .query("limit", limit)
                .query("offset", offset),
        };
        let page: ReceiptsPage = self.client.json(call).await?;
        let mut orders = Vec::with_capacity(page.results.len());
        let mut rejected = Vec::new();
        let mut newest: Option<DateTime<Utc>> = None;
        for raw in &page.results {
            // The cursor follows Etsy's own update time, read or not: one
            // unreadable receipt must not hold every later one back.
            let updated =
                normalize::etsy_update_timestamp(raw).and_then(|s| DateTime::from_timestamp(s, 0));
            newest = newest.max(updated);
            match normalize_receipt(&self.config.account, raw) {
                Ok(order) => orders.push(order),
                Err(e) => rejected.push(RejectedOrder {
                    channel_order_id: normalize::receipt_id(raw),
                    error: e.to_string(),
                }),
            }
        }
        let count = u32::try_from(page.results.len()).unwrap_or(u32::MAX);
        let (next, more) = match plan {
            Plan::Changed { .. } => position.after_changed(count, limit, newest),
            Plan::Resweep { .. } => position.after_resweep(count, limit, now),
        };
        Ok(OrderPage {
            orders,
            next: next.encode(),
            more,
            rejected,
        })
    }

    async fn fetch(&self, ids: &[String]) -> Result<FetchedOrders, ConnectorError> {
        let mut out = FetchedOrders::default();
        for id in ids {
            let Ok(receipt_id) = id.trim().parse::<u64>() else {
                out.rejected.push(RejectedOrder {
                    channel_order_id: Some(id.clone()),
                    error: format!("{id:?} is not an Etsy receipt id"),
                });
                continue;
            };
            let call = Call::get(
                endpoints::GET_SHOP_RECEIPT,
                Operation::Fetch,
                endpoints::shop_receipt(self.config.shop_id, receipt_id),
            );
            let answer = self.client.send(call).await?;
            if !answer.found() {
                out.missing.push(id.clone());
                continue;
            }
            let raw: serde_json::Value = self
                .client
                .decode(endpoints::GET_SHOP_RECEIPT, &answer.body)?;
            match normalize_receipt(&self.config.account, &raw) {
                Ok(order) => out.orders.push(order),
                Err(e) => out.rejected.push(RejectedOrder {
                    channel_order_id: Some(id.clone()),
                    error: e.to_string(),
                }),
            }
        }
        Ok(out)
    }

    /// One receipt read proves the token, its `transactions_r` scope, the
    /// `x-api-key` pair and the shop id at once.
    async fn check_shop(&self) -> Result<(), ConnectorError> {
        let call = Call::get(
            endpoints::GET_SHOP_RECEIPTS,
            Operation::Lookup,
            endpoints::shop_receipts(self.config.shop_id),
        )
        .query("limit", 1);
        let _: ReceiptsPage = self.client.json(call).await?;
        Ok(())
    }
}

impl Connector for EtsyConnector {
    fn channel(&self) -> Channel {
        Channel::Etsy
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// No `resweep_every`: the cursor schedules Etsy's resweeps itself (see
    /// [`cursor`]), a hundred receipts a call instead of one a call.
    fn hints(&self) -> ChannelHints {
        ChannelHints {
            poll_low_water: 0.0,
            call_timeout: Duration::from_secs(180),
            ..ChannelHints::default()
        }
    }

    /// Etsy's default is 10 requests a second and 10,000 a day per app,
    /// shared by every call; the classes below add up to 10 a second. The
    /// pacer then follows `x-remaining-this-second` and `x-remaining-today`.
    fn rate_limit(&self, operation: Operation) -> RateLimit {
        let per_second: u32 = match operation {
            Operation::Poll => 3,
            Operation::Fetch | Operation::Lookup => 2,
            Operation::PushInventory | Operation::PushTracking | Operation::Auth => 1,
        };
        RateLimit {
            per_second: f64::from(per_second),
            burst: per_second,
        }
    }

    fn listing_refs(&self, order: &NormalizedOrder) -> Vec<(String, String)> {
        sku_listings(order)
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(self.check_shop())
    }

    /// `now` schedules and bounds resweeps; the changed-receipt window is
    /// open-ended.
    fn poll_orders<'a>(
        &'a self,
        cursor: Option<&'a Cursor>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<OrderPage, ConnectorError>> {
        Box::pin(self.poll_page(cursor, since, now))
    }

    fn fetch_orders<'a>(
        &'a self,
        channel_order_ids: &'a [String],
    ) -> BoxFuture<'a, Result<FetchedOrders, ConnectorError>> {
        Box::pin(self.fetch(channel_order_ids))
    }

    fn handle_webhook<'a>(
        &'a self,
        req: &'a WebhookRequest,
    ) -> BoxFuture<'a, Result<WebhookOutcome, ConnectorError>> {
        Box::pin(std::future::ready(webhook::handle(
            req,
            self.config.webhook_secret.as_ref(),
            self.config.shop_id,
        )))
    }

    /// The listing: Etsy writes a listing's inventory as one object. Pushes
    /// whose listing is not known yet share [`CATALOG_BATCH_KEY`].
    fn inventory_batch_key(&self, push: &InventoryPush) -> Option<String> {
        let known = match push.listing_ref.as_deref().map(listing_id) {
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => None,
            None => match self.catalog.lookup(&push.sku) {
                Found::One(id) => Some(id),
                Found::Several(_) | Found::None => None,
            },
        };
        Some(match known {
            Some(id) => format!("listing:{id}"),
            None => CATALOG_BATCH_KEY.to_owned(),
        })
    }

    /// Pushes without a shared key may travel together too: the call groups
    /// them by listing and reads and writes each listing once, so a daemon
    /// that batches by count alone still sends two SKUs of one listing in
    /// one write. 25 keeps a call to at most 25 listings (50 requests).
    fn inventory_batch_limit(&self) -> usize {
        INVENTORY_BATCH_LIMIT
    }

    fn push_inventory_batch<'a>(
        &'a self,
        pushes: &'a [InventoryPush],
    ) -> BoxFuture<'a, Vec<Result<InventoryResult, ConnectorError>>> {
        Box::pin(async move { self.pusher().push_inventory_batch(pushes).await })
    }

    fn push_tracking<'a>(
        &'a self,
        push: &'a TrackingPush,
    ) -> BoxFuture<'a, Result<TrackingResult, ConnectorError>> {
        Box::pin(async move { self.pusher().push_tracking(push).await })
    }
}
