//! The Shopify connector: GraphQL Admin API order sync, verified `orders/*`
//! webhooks, stock and tracking push, for one shop (one switchyard account).
//!
//! Module map (the pattern the other channel crates follow):
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`settings`] | the account's keys in the daemon's config, read through `SettingsReader`; [`DESCRIPTOR`], the daemon's registry entry; the replay settings |
//! | [`config`] | [`ShopifyConfig`]: what the connector is built from, and the value checks the settings share |
//! | [`graphql`] | every document sent, as constants (validated against the schema in tests) |
//! | `client` | HTTP + GraphQL envelope, error classification, rate-limit hint |
//! | `wire` | Shopify's JSON shapes (GraphQL and REST), lenient, crate-private |
//! | [`normalize`] | pure wire → canonical order, with notes; the state mapping table |
//! | [`cursor`] | the poll cursor and its overlap window |
//! | [`webhook`] | HMAC check and `orders/*` bodies |
//! | `push` | stock (`inventorySetQuantities`) and tracking (`fulfillmentCreate`) |
//! | [`carrier`] | switchyard carrier codes ↔ Shopify company names |
//! | `sim` | (feature `sim`) the simulated shop: query cost charged and throttled as Shopify does, fulfilments and inventory kept, webhooks signed for the demo's accounts |
//!
//! The connector never sleeps, retries or stores anything: each call makes
//! its few requests and classifies what went wrong. The only state it keeps
//! is the last rate-limit report and the primary location id once looked up.

pub mod carrier;
mod client;
pub mod config;
pub mod cursor;
pub mod graphql;
pub mod normalize;
mod push;
pub mod settings;
#[cfg(feature = "sim")]
pub mod sim;
pub mod webhook;
mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use switchyard_contract::{
    BoxFuture, Capabilities, Channel, ChannelHints, Connector, ConnectorError, Cursor,
    FetchedOrders, InventoryPush, InventoryResult, NormalizedOrder, Operation, OrderPage, Pacer,
    RateHint, RateLimit, RejectedOrder, TrackingPush, TrackingResult, WebhookOutcome,
    WebhookRequest,
};

pub use config::{DEFAULT_API_VERSION, ShopifyConfig};
pub use cursor::{OVERLAP, PollCursor};
pub use normalize::{normalize_graphql_order, normalize_rest_order, sku_inventory_items};
pub use push::inventory_item_gid;
pub use settings::{DESCRIPTOR, ShopifySettings, read_settings, replay_settings};

use client::GraphqlClient;
use graphql::OrderLimits;
use wire::{OrderData, OrderLinesData, OrdersPageData, ShopData};

/// How full Shopify's cost bucket must be before a poll page is asked for.
/// Shopify refuses an orders page outright unless its ~940-point requested
/// cost is available, and a half-full bucket leaves the rest to pushes.
pub const POLL_LOW_WATER: f64 = 0.5;

/// One Shopify shop. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct ShopifyConnector {
    config: ShopifyConfig,
    client: GraphqlClient,
    /// The configured location GID, or the primary location once looked up.
    location: Mutex<Option<String>>,
}

impl std::fmt::Debug for ShopifyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyConnector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ShopifyConnector {
    /// Validates the config; no I/O. `http` is the daemon's shared client
    /// (its timeouts apply); every request waits on `pacer` first.
    pub fn new(
        config: ShopifyConfig,
        http: reqwest::Client,
        pacer: Arc<dyn Pacer>,
    ) -> Result<Self, ConnectorError> {
        config.validate()?;
        let location = match &config.location_id {
            Some(l) => Some(config::location_gid(l).map_err(ConnectorError::Config)?),
            None => None,
        };
        Ok(ShopifyConnector {
            client: GraphqlClient::new(
                http,
                config.graphql_url(),
                config.access_token.clone(),
                pacer,
            ),
            location: Mutex::new(location),
            config,
        })
    }

    pub fn config(&self) -> &ShopifyConfig {
        &self.config
    }

    /// The signature check alone (see [`webhook::verify`]).
    pub fn verify_webhook(&self, req: &WebhookRequest) -> Result<(), ConnectorError> {
        webhook::verify(req, &self.config.webhook_secrets)
    }

    /// A verified delivery's meaning, strictly: an unreadable order is an
    /// error here (see [`webhook::parse`]; the daemon goes through
    /// [`Connector::handle_webhook`], which leaves such an order out instead).
    pub fn parse_webhook(&self, req: &WebhookRequest) -> Result<WebhookOutcome, ConnectorError> {
        webhook::parse(&self.config.account, req)
    }

    /// Shopify's cost-bucket report in force, if any answer carried one:
    /// the latest, save that a late answer showing more room than it, from
    /// a call sent before it arrived, does not replace it.
    pub fn rate_hint(&self) -> Option<RateHint> {
        self.client.rate_hint()
    }

    fn limits(l: OrderLimits) -> serde_json::Value {
        json!({
            "lineItems": l.line_items,
            "fulfillments": l.fulfillments,
            "fulfillmentLineItems": l.fulfillment_line_items,
        })
    }

    /// One order by id, with the larger single-order limits; `Ok(None)` when
    /// the shop has no such order (deleted, or older than the app may read),
    /// `Ok(Some(Err))` when it has one that cannot be read.
    async fn fetch_one(
        &self,
        id: &str,
    ) -> Result<Option<Result<NormalizedOrder, ConnectorError>>, ConnectorError> {
        let gid = if id.starts_with("gid://") {
            id.to_owned()
        } else {
            format!("gid://shopify/Order/{id}")
        };
        let mut variables = Self::limits(graphql::SINGLE_ORDER);
        variables["id"] = json!(gid);
        let data: OrderData = self
            .client
            .execute(
                Operation::Fetch,
                "SwitchyardOrder",
                &graphql::with_order_fields(graphql::ORDER_QUERY),
                variables,
            )
            .await?;
        let Some(mut node) = data.order else {
            return Ok(None);
        };
        self.read_remaining_lines(&gid, &mut node).await?;
        Ok(Some(normalize_graphql_order(&self.config.account, &node)))
    }

    /// Reads the line items an order node did not carry, page by page, into
    /// the node, so that it is normalized (and kept as raw) whole. Stops
    /// when Shopify says there are no more, or when a page does not move
    /// on (then normalization notes the lines still missing).
    async fn read_remaining_lines(
        &self,
        gid: &str,
        node: &mut serde_json::Value,
    ) -> Result<(), ConnectorError> {
        loop {
            let info = &node["lineItems"]["pageInfo"];
            let after = match (info["hasNextPage"].as_bool(), info["endCursor"].as_str()) {
                (Some(true), Some(after)) => after.to_owned(),
                _ => return Ok(()),
            };
            let data: OrderLinesData = self
                .client
                .execute(
                    Operation::Fetch,
                    "SwitchyardOrderLines",
                    &graphql::order_lines_query(),
                    json!({ "id": gid, "after": after, "lineItems": graphql::LINES_PER_PAGE }),
                )
                .await?;
            let Some(page) = data.order.map(|o| o.line_items) else {
                return Ok(());
            };
            let moved_on = !page.nodes.is_empty()
                && page.page_info.end_cursor.as_deref() != Some(after.as_str());
            if let Some(nodes) = node["lineItems"]["nodes"].as_array_mut() {
                nodes.extend(page.nodes);
            }
            node["lineItems"]["pageInfo"] = json!({
                "hasNextPage": page.page_info.has_next_page,
                "endCursor": page.page_info.end_cursor,
            });
            if !moved_on {
                return Ok(());
            }
        }
    }

    async fn poll_page(
        &self,
        cursor: Option<&Cursor>,
        since: DateTime<Utc>,
    ) -> Result<OrderPage, ConnectorError> {
        let position = match cursor {
            Some(c) => PollCursor::decode(c)?,
            None => PollCursor::first(since),
        };
        let mut variables = Self::limits(graphql::PAGE_ORDER);
        variables["first"] = json!(graphql::ORDERS_PER_PAGE);
        variables["after"] = json!(position.after);
        variables["query"] = json!(position.search_query());
        let data: OrdersPageData = self
            .client
            .execute(
                Operation::Poll,
                "SwitchyardOrders",
                &graphql::with_order_fields(graphql::ORDERS_PAGE_QUERY),
                variables,
            )
            .await?;
        let mut orders = Vec::with_capacity(data.orders.nodes.len());
        let mut rejected = Vec::new();
        let mut newest: Option<DateTime<Utc>> = None;
        for node in &data.orders.nodes {
            let mut order = match normalize_graphql_order(&self.config.account, node) {
                Ok(order) => order,
                Err(e) => {
                    // Left out and reported, not fatal: failing the page would
                    // stop every later order of the account from syncing.
                    let updated = node["updatedAt"]
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.to_utc());
                    newest = newest.max(updated);
                    rejected.push(RejectedOrder {
                        channel_order_id: node["id"]
                            .as_str()
                            .map(|id| normalize::numeric_id(id).to_owned()),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            if truncated(node) {
                match self.fetch_one(&order.order.channel_order_id).await? {
                    Some(Ok(whole)) => order = whole,
                    Some(Err(e)) => {
                        rejected.push(RejectedOrder {
                            channel_order_id: Some(order.order.channel_order_id.clone()),
                            error: e.to_string(),
                        });
                        newest = newest.max(Some(order.order.updated_at));
                        continue;
                    }
                    None => {}
                }
            }
            newest = newest.max(Some(order.order.updated_at));
            orders.push(order);
        }
        let page = &data.orders.page_info;
        let count = u32::try_from(data.orders.nodes.len()).unwrap_or(u32::MAX);
        let next = position.advance(newest, page.has_next_page, page.end_cursor.clone(), count);
        Ok(OrderPage {
            orders,
            // A sweep cut short at the pagination limit goes straight on.
            more: page.has_next_page,
            next: next.encode(),
            rejected,
        })
    }

    async fn fetch(&self, channel_order_ids: &[String]) -> Result<FetchedOrders, ConnectorError> {
        let mut out = FetchedOrders::default();
        for id in channel_order_ids {
            match self.fetch_one(id).await? {
                Some(Ok(order)) => out.orders.push(order),
                Some(Err(e)) => out.rejected.push(RejectedOrder {
                    channel_order_id: Some(normalize::numeric_id(id).to_owned()),
                    error: e.to_string(),
                }),
                None => out.missing.push(id.clone()),
            }
        }
        Ok(out)
    }

    async fn check_shop(&self) -> Result<(), ConnectorError> {
        let data: ShopData = self
            .client
            .execute(
                Operation::Lookup,
                "SwitchyardCheck",
                graphql::CHECK_QUERY,
                json!({}),
            )
            .await?;
        data.shop
            .map(|_| ())
            .ok_or_else(|| ConnectorError::Decode("SwitchyardCheck: no shop in the answer".into()))
    }
}

/// Whether a page node was cut short by the page's nested limits, so that
/// the order must be read again on its own.
fn truncated(node: &serde_json::Value) -> bool {
    let more = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_bool()).unwrap_or(false);
    let fulfillments = node.get("fulfillments").and_then(|f| f.as_array());
    let read = fulfillments.map_or(0, |f| f.len() as u64);
    let count = node
        .pointer("/fulfillmentsCount/count")
        .and_then(|c| c.as_u64())
        .unwrap_or(0);
    more(node.pointer("/lineItems/pageInfo/hasNextPage"))
        || count > read
        || fulfillments
            .into_iter()
            .flatten()
            .any(|f| more(f.pointer("/fulfillmentLineItems/pageInfo/hasNextPage")))
}

impl Connector for ShopifyConnector {
    fn channel(&self) -> Channel {
        Channel::Shopify
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// A page asks for ~940 query-cost points up front; see [`POLL_LOW_WATER`].
    fn hints(&self) -> ChannelHints {
        ChannelHints {
            poll_low_water: POLL_LOW_WATER,
            call_timeout: Duration::from_secs(120),
            ..ChannelHints::default()
        }
    }

    /// Polled orders carry each line's inventory item; webhook bodies do not.
    fn listing_refs(&self, order: &NormalizedOrder) -> Vec<(String, String)> {
        sku_inventory_items(order)
    }

    /// Seeds from the lowest plan (Standard: 100 query-cost points a second,
    /// a bucket that holds a few requests' worth) and scales with the restore
    /// rate the shop's `throttleStatus` reports once a response has shown it
    /// (Advanced 200, Plus 1,000, Enterprise 2,000 points a second). A stock
    /// push is one ~12-point mutation after look-ups that are usually
    /// skipped, and so is a batch of up to 100 of them (one slot per call:
    /// the mutation's cost does not grow with its quantities); a tracking
    /// push asks for ~656 points up front (Shopify refunds all but the ~25 it
    /// really costs), so only a few fit in the bucket at once. Polls and
    /// fetches are paced by the bucket itself ([`POLL_LOW_WATER`]); the
    /// look-ups a push or a page needs are cheap and go faster.
    fn rate_limit(&self, operation: Operation) -> RateLimit {
        let standard = match operation {
            Operation::PushInventory => RateLimit {
                per_second: 5.0,
                burst: 20,
            },
            Operation::PushTracking => RateLimit {
                per_second: 2.0,
                burst: 2,
            },
            Operation::Poll | Operation::Fetch => RateLimit {
                per_second: 2.0,
                burst: 10,
            },
            // A look-up (variants by SKU, a location, fulfilment orders) asks
            // for ~6 to ~20 points: ten a second is well inside Standard's
            // 100, and a first push of a new catalog is not held to a poll's pace.
            Operation::Lookup => RateLimit {
                per_second: 10.0,
                burst: 40,
            },
            Operation::Auth => RateLimit::CONSERVATIVE,
        };
        scaled_to_plan(standard, self.client.rate_hint())
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(self.check_shop())
    }

    /// `now` is not needed: Shopify's filter is open-ended (`updated_at >=`),
    /// and the overlap window absorbs clock skew.
    fn poll_orders<'a>(
        &'a self,
        cursor: Option<&'a Cursor>,
        since: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<OrderPage, ConnectorError>> {
        Box::pin(self.poll_page(cursor, since))
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
            &self.config.account,
            req,
            &self.config.webhook_secrets,
        )))
    }

    /// `inventorySetQuantities` takes many quantities in one call at the
    /// cost of one (see [`graphql::STOCK_QUANTITIES_PER_CALL`]).
    fn inventory_batch_limit(&self) -> usize {
        graphql::STOCK_QUANTITIES_PER_CALL
    }

    fn push_inventory_batch<'a>(
        &'a self,
        pushes: &'a [InventoryPush],
    ) -> BoxFuture<'a, Vec<Result<InventoryResult, ConnectorError>>> {
        Box::pin(async move {
            match pushes {
                // One SKU: the single push (its own look-ups, no batching cost).
                [one] => vec![push::push_inventory(&self.client, &self.location, one).await],
                _ => push::push_inventory_batch(&self.client, &self.location, pushes).await,
            }
        })
    }

    fn push_tracking<'a>(
        &'a self,
        push: &'a TrackingPush,
    ) -> BoxFuture<'a, Result<TrackingResult, ConnectorError>> {
        Box::pin(push::push_tracking(
            &self.client,
            self.config.notify_customer,
            push,
        ))
    }
}

/// What a Shopify account can do, whatever its settings.
pub const CAPABILITIES: Capabilities = Capabilities {
    poll: true,
    webhooks: true,
    push_inventory: true,
    push_tracking: true,
};

/// The restore rate of Shopify's Standard plan, which the published push
/// rates above assume.
const STANDARD_RESTORE_PER_SECOND: f64 = 100.0;

/// Scales a Standard-plan rate to the restore rate the shop reports. Never
/// below Standard (a report of less is a throttled moment, not a plan), and
/// never past Enterprise's 20× (a bad report must not unleash the outbox).
pub fn scaled_to_plan(standard: RateLimit, hint: Option<RateHint>) -> RateLimit {
    let Some(hint) = hint else { return standard };
    if !hint.restore_per_second.is_finite() {
        return standard;
    }
    let factor = (hint.restore_per_second / STANDARD_RESTORE_PER_SECOND).clamp(1.0, 20.0);
    RateLimit {
        per_second: standard.per_second * factor,
        burst: client::whole((f64::from(standard.burst) * factor).round()).max(1),
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn hint(restore: f64) -> Option<RateHint> {
        Some(RateHint {
            capacity: 20_000,
            remaining: 20_000,
            restore_per_second: restore,
            observed_at: chrono::Utc::now(),
            window: switchyard_contract::RateWindow::Burst,
        })
    }

    #[test]
    fn push_rates_follow_the_shops_plan() {
        let standard = RateLimit {
            per_second: 5.0,
            burst: 20,
        };
        assert_eq!(scaled_to_plan(standard, None), standard);
        assert_eq!(scaled_to_plan(standard, hint(100.0)), standard);
        let plus = scaled_to_plan(standard, hint(1000.0));
        assert_eq!((plus.per_second, plus.burst), (50.0, 200));
        assert_eq!(
            scaled_to_plan(standard, hint(20.0)),
            standard,
            "never below Standard"
        );
        assert_eq!(
            scaled_to_plan(standard, hint(1e9)).per_second,
            100.0,
            "capped at 20x"
        );
        assert_eq!(scaled_to_plan(standard, hint(f64::NAN)), standard);
    }
}
