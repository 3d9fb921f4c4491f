//! The eBay connector: Sell Fulfillment order sync, verified Notification
//! API pushes with the endpoint challenge, stock push through the Inventory
//! API and tracking push, for one eBay seller (one switchyard account).
//!
//! Module map:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`config`] | [`EbaySettings`]: the account's keys, read and checked; the replay settings |
//! | [`endpoints`] | every path and query this crate sends (checked against eBay's OpenAPI files in `spec/`) |
//! | `client` | HTTP, tokens (refresh-token and client-credentials grants), error classification |
//! | `budget` | eBay's daily call budgets and per-listing revision limit, counted here |
//! | `wire` | eBay's JSON shapes, lenient, crate-private |
//! | [`normalize`] | pure eBay order → canonical order, with notes; the state mapping table |
//! | [`cursor`] | the poll cursor: closed windows, offset paging that survives a changing set |
//! | [`webhook`] | the endpoint challenge, `X-EBAY-SIGNATURE`, what a notification means |
//! | `push` | stock (`bulkUpdatePriceQuantity`) and tracking (`createShippingFulfillment`) |
//! | [`carrier`] | switchyard carrier codes ↔ eBay's |
//! | [`signing`] | a stand-in for eBay's notification signer (tests, fixtures, simulator) |
//! | `sim` | (feature `sim`) the simulated seller: fulfilments created and read back, bulk stock updates |
//!
//! The connector never sleeps, retries or stores anything: each call makes
//! its few requests and classifies what went wrong. What it keeps in memory:
//! the access tokens (the refresh token's rotations go to the daemon's token
//! store), notification signing keys for an hour, and today's call and
//! listing-revision counts.

mod budget;
pub mod carrier;
mod client;
pub mod config;
pub mod cursor;
pub mod endpoints;
pub mod normalize;
mod push;
pub mod signing;
#[cfg(feature = "sim")]
pub mod sim;
pub mod webhook;
mod wire;

use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_contract::{
    BoxFuture, BuildContext, Capabilities, Channel, ChannelDescriptor, ChannelHints, Connector,
    ConnectorError, Cursor, FetchedOrders, InventoryPush, InventoryResult, NormalizedOrder,
    Operation, OrderPage, RateLimit, RejectedOrder, TrackingPush, TrackingResult, WebhookOutcome,
    WebhookRequest,
};

pub use budget::{next_pacific_midnight, pacific_day};
pub use config::{EbaySettings, read_settings, replay_ebay_settings, replay_settings};
pub use cursor::{OVERLAP, PollCursor};
pub use normalize::normalize_order;
pub use push::{OfferRef, batch_key, ebay_tracking_number, format_listing_ref, parse_listing_ref};

use client::{Call, Client};
use endpoints::Api;

/// What an eBay account can do, whatever its settings.
pub const CAPABILITIES: Capabilities = Capabilities {
    poll: true,
    webhooks: true,
    push_inventory: true,
    push_tracking: true,
};

/// The eBay crate as the daemon's registry sees it.
pub const DESCRIPTOR: ChannelDescriptor = ChannelDescriptor {
    channel: Channel::Ebay,
    capabilities: CAPABILITIES,
    read_settings,
    replay_settings,
};

/// One eBay seller. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct EbayConnector {
    account: String,
    settings: EbaySettings,
    /// The account is one of eBay's sandbox: its orders are test orders.
    sandbox: bool,
    client: Client,
    keys: webhook::Keys,
    revisions: budget::Revisions,
}

impl std::fmt::Debug for EbayConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EbayConnector")
            .field("account", &self.account)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EbayConnector {
    /// Checks the settings; no I/O.
    pub fn new(settings: EbaySettings, ctx: BuildContext) -> Result<Self, ConnectorError> {
        settings.validate()?;
        if !(ctx.base_url.starts_with("https://") || ctx.base_url.starts_with("http://")) {
            return Err(ConnectorError::Config(format!(
                "ebay account {:?}: base_url {:?} must start with https:// or http://",
                ctx.account, ctx.base_url
            )));
        }
        let client = Client::new(
            ctx.http,
            &ctx.base_url,
            settings.token_url(&ctx.base_url),
            settings.client_id.clone(),
            settings.client_secret.clone(),
            settings.refresh_token.clone(),
            ctx.tokens,
            ctx.pacer,
            budget::DailyBudget::new(
                settings.daily_calls_fulfillment,
                settings.daily_calls_inventory,
                settings.daily_calls_notification,
            ),
        );
        Ok(EbayConnector {
            sandbox: ctx.base_url.contains(".sandbox.ebay."),
            revisions: budget::Revisions::new(settings.listing_revisions_per_day),
            keys: webhook::Keys::default(),
            client,
            account: ctx.account,
            settings,
        })
    }

    pub fn settings(&self) -> &EbaySettings {
        &self.settings
    }

    /// An order's shipping fulfilments, when eBay links any.
    async fn fulfillments(
        &self,
        order: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, ConnectorError> {
        let has_any = order
            .get("fulfillmentHrefs")
            .and_then(|h| h.as_array())
            .is_some_and(|h| !h.is_empty());
        let Some(id) = normalize::order_id(order).filter(|_| has_any) else {
            return Ok(None);
        };
        let answer = self
            .client
            .call(Call::get(
                "getShippingFulfillments",
                Operation::Lookup,
                Api::Fulfillment,
                endpoints::fulfillments_path(&id),
            ))
            .await?;
        answer.json("getShippingFulfillments").map(Some)
    }

    /// Normalizes one order as eBay sent it, reading its fulfilments first.
    /// `Err` only for faults of the call; an unreadable order is `Ok(Err)`.
    async fn read_order(
        &self,
        order: &serde_json::Value,
    ) -> Result<Result<NormalizedOrder, RejectedOrder>, ConnectorError> {
        let fulfillments = self.fulfillments(order).await?;
        Ok(
            normalize_order(&self.account, order, fulfillments.as_ref(), self.sandbox).map_err(
                |e| RejectedOrder {
                    channel_order_id: normalize::order_id(order),
                    error: e.to_string(),
                },
            ),
        )
    }

    async fn poll_page(
        &self,
        cursor: Option<&Cursor>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<OrderPage, ConnectorError> {
        let position = match cursor {
            Some(c) => PollCursor::decode(c)?,
            None => PollCursor::first(since),
        };
        let Some(page) = position.page(now) else {
            return Ok(OrderPage {
                orders: vec![],
                next: position.encode(),
                more: false,
                rejected: vec![],
            });
        };
        let answer: wire::OrderPage = self
            .client
            .call(
                Call::get(
                    "getOrders",
                    Operation::Poll,
                    Api::Fulfillment,
                    endpoints::ORDERS.to_owned(),
                )
                .query(endpoints::orders_page_query(
                    page.start,
                    page.end,
                    page.offset,
                )),
            )
            .await?
            .json("getOrders")?;
        let mut orders = Vec::with_capacity(answer.orders.len());
        let mut rejected = Vec::new();
        for raw in &answer.orders {
            match self.read_order(raw).await? {
                Ok(o) => orders.push(o),
                Err(r) => rejected.push(r),
            }
        }
        let count = u32::try_from(answer.orders.len()).unwrap_or(u32::MAX);
        let total = answer
            .total
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or_else(|| page.offset.saturating_add(count));
        let (next, more) = position.advance(page, count, total, now);
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
            let id = id.trim();
            let answer = self
                .client
                .call(
                    Call::get(
                        "getOrder",
                        Operation::Fetch,
                        Api::Fulfillment,
                        endpoints::order_path(id),
                    )
                    .query(format!("fieldGroups={}", endpoints::TAX_BREAKDOWN))
                    .answering(&[404]),
                )
                .await?;
            if answer.status == 404 {
                out.missing.push(id.to_owned());
                continue;
            }
            let raw: serde_json::Value = match answer.json("getOrder") {
                Ok(v) => v,
                Err(e) => {
                    out.rejected.push(RejectedOrder {
                        channel_order_id: Some(id.to_owned()),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            match self.read_order(&raw).await? {
                Ok(o) => out.orders.push(o),
                Err(r) => out.rejected.push(r),
            }
        }
        Ok(out)
    }

    async fn check_account(&self) -> Result<(), ConnectorError> {
        self.client
            .call(
                Call::get(
                    "getOrders",
                    Operation::Lookup,
                    Api::Fulfillment,
                    endpoints::ORDERS.to_owned(),
                )
                .query("limit=1".to_owned()),
            )
            .await?
            .json::<wire::OrderPage>("getOrders")
            .map(|_| ())
    }
}

impl Connector for EbayConnector {
    fn channel(&self) -> Channel {
        Channel::Ebay
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// A poll page of 200 orders may read the fulfilments of each, so it is
    /// given longer than the default.
    fn hints(&self) -> ChannelHints {
        ChannelHints {
            call_timeout: Duration::from_secs(300),
            ..ChannelHints::default()
        }
    }

    /// eBay publishes daily call limits per API, no short-term rates: each
    /// operation is seeded with its API's daily budget spread over the day,
    /// with room for bursts, and the pacer then follows the daily counts
    /// reported after every call (see `budget`).
    fn rate_limit(&self, operation: Operation) -> RateLimit {
        let per_day = |api: Api| f64::from(self.client.budget.limit(api)) / 86_400.0;
        match operation {
            Operation::Poll | Operation::Fetch | Operation::Lookup | Operation::PushTracking => {
                RateLimit {
                    per_second: per_day(Api::Fulfillment),
                    burst: 20,
                }
            }
            Operation::PushInventory => RateLimit {
                per_second: per_day(Api::Inventory),
                burst: 25,
            },
            Operation::Auth => RateLimit::CONSERVATIVE,
        }
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(self.check_account())
    }

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
        Box::pin(webhook::handle(
            &self.client,
            &self.keys,
            self.settings.verification_token.as_ref(),
            self.settings.endpoint_url.as_deref(),
            req,
        ))
    }

    /// The pushes of one listing (a multi-variation listing's SKUs) travel
    /// together, so that the listing is revised once for all of them.
    fn inventory_batch_key(&self, push: &InventoryPush) -> Option<String> {
        batch_key(push)
    }

    fn inventory_batch_limit(&self) -> usize {
        endpoints::SKUS_PER_BULK_UPDATE
    }

    fn push_inventory_batch<'a>(
        &'a self,
        pushes: &'a [InventoryPush],
    ) -> BoxFuture<'a, Vec<Result<InventoryResult, ConnectorError>>> {
        Box::pin(push::push_inventory_batch(
            &self.client,
            &self.settings.marketplace_id,
            &self.revisions,
            pushes,
        ))
    }

    fn push_tracking<'a>(
        &'a self,
        push: &'a TrackingPush,
    ) -> BoxFuture<'a, Result<TrackingResult, ConnectorError>> {
        Box::pin(push::push_tracking(&self.client, push))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_contract::Unpaced;
    use switchyard_contract::tokens::MemoryTokenStore;

    fn build(base_url: &str, settings: EbaySettings) -> Result<EbayConnector, ConnectorError> {
        EbayConnector::new(
            settings,
            BuildContext {
                account: "ebay-us".into(),
                base_url: base_url.into(),
                http: reqwest::Client::new(),
                tokens: MemoryTokenStore::shared(),
                pacer: Unpaced::shared(),
            },
        )
    }

    #[test]
    fn sandbox_accounts_make_test_orders() {
        let settings = replay_ebay_settings("ebay-us");
        assert!(
            build("https://api.sandbox.ebay.com", settings.clone())
                .unwrap()
                .sandbox
        );
        assert!(
            !build("https://api.ebay.com", settings.clone())
                .unwrap()
                .sandbox
        );
        let err = build("api.ebay.com", settings).unwrap_err();
        assert_eq!(err.class(), "config");
    }

    #[test]
    fn rates_are_seeded_from_the_daily_budgets() {
        let mut settings = replay_ebay_settings("ebay-us");
        settings.daily_calls_fulfillment = 86_400;
        settings.daily_calls_inventory = 172_800;
        let c = build("https://api.ebay.com", settings).unwrap();
        for op in [
            Operation::Poll,
            Operation::Fetch,
            Operation::Lookup,
            Operation::PushTracking,
        ] {
            assert_eq!(c.rate_limit(op).per_second, 1.0, "{op}");
        }
        assert_eq!(c.rate_limit(Operation::PushInventory).per_second, 2.0);
        assert_eq!(c.rate_limit(Operation::Auth), RateLimit::CONSERVATIVE);
        assert_eq!(c.inventory_batch_limit(), 25);
    }
}
