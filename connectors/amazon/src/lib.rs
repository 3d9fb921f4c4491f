//! The Amazon connector: Selling Partner API order sync through the Orders
//! API 2026-01-01 (`searchOrders`, `getOrder`), `ORDER_CHANGE` notifications
//! forwarded by EventBridge, stock pushed to listings (`patchListingsItem`,
//! or a `JSON_LISTINGS_FEED` for many SKUs) and shipments confirmed
//! (`confirmShipment`), for one selling partner (one switchyard account).
//!
//! Module map (the pattern of the other channel crates):
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`config`] | [`AmazonSettings`]: the account's keys, read through `SettingsReader` |
//! | [`endpoints`] | every operation called: paths, datasets, published usage plans |
//! | `client` | LWA tokens, `x-amz-access-token`, pacing, error classification |
//! | `rate` | each budget's pace and the bucket estimate reported to the pacer |
//! | `wire` | Amazon's JSON shapes, lenient, crate-private |
//! | [`normalize`] | pure wire → canonical order, with notes; the state mapping table |
//! | [`cursor`] | the poll cursor: sweeps of `searchOrders` and page-token expiry |
//! | [`webhook`] | the shared-secret check and `ORDER_CHANGE` bodies |
//! | [`push`] | shipment confirmation, listing quantities, feeds and their receipts |
//! | [`carrier`] | switchyard carrier codes ↔ Amazon carrier codes |
//! | `sim` | (feature `sim`) the simulated seller: the account's secret on demo notifications, the demo's count of writes |
//!
//! The connector never sleeps, retries or stores anything: each call makes
//! its few requests (each after the daemon's pacer lets it go) and classifies
//! what went wrong. It keeps only Amazon's reported rates and the processing
//! reports of feeds whose receipts are still being asked about.

pub mod carrier;
mod client;
pub mod config;
pub mod cursor;
pub mod endpoints;
pub mod normalize;
pub mod push;
mod rate;
#[cfg(feature = "sim")]
pub mod sim;
pub mod webhook;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use switchyard_contract::{
    BoxFuture, BuildContext, Capabilities, Channel, ChannelDescriptor, ChannelHints, Connector,
    ConnectorError, Cursor, FetchedOrders, InventoryPush, InventoryResult, Operation, OrderPage,
    RateLimit, ReceiptStatus, RejectedOrder, TrackingPush, TrackingResult, WebhookOutcome,
    WebhookRequest,
};

pub use client::Clock;
pub use config::{AmazonSettings, fixture_settings, read_settings, replay_settings};
pub use cursor::PollCursor;
pub use normalize::normalize_order;

use client::{Credentials, SpClient};
use endpoints::{AmazonOp, GET_ORDER, INCLUDED_DATA, SEARCH_ORDERS, segment};
use wire::{GetOrderResponse, SearchOrdersResponse};

/// What an Amazon account can do, whatever its settings.
pub const CAPABILITIES: Capabilities = Capabilities {
    poll: true,
    webhooks: true,
    push_inventory: true,
    push_tracking: true,
};

/// How the daemon registers this crate.
pub const DESCRIPTOR: ChannelDescriptor = ChannelDescriptor {
    channel: Channel::Amazon,
    capabilities: CAPABILITIES,
    read_settings: config::read_settings,
    replay_settings: config::replay_settings,
};

/// An order id no order has: `check` asks for it to prove the credentials
/// and roles with the cheapest read there is.
const NO_SUCH_ORDER: &str = "000-0000000-0000000";

/// One selling partner. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct AmazonConnector {
    account: String,
    settings: AmazonSettings,
    client: SpClient,
    /// Orders read from Amazon's sandbox are test orders.
    sandbox: bool,
    feeds: push::FeedCache,
}

impl std::fmt::Debug for AmazonConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmazonConnector")
            .field("account", &self.account)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Whether `base_url` is one of Amazon's sandbox endpoints
/// (`https://sandbox.sellingpartnerapi-na.amazon.com` ...).
pub fn is_sandbox(base_url: &str) -> bool {
    let host = base_url
        .split("://")
        .nth(1)
        .unwrap_or(base_url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host.starts_with("sandbox.sellingpartnerapi")
}

impl AmazonConnector {
    /// Validates the settings; no I/O.
    pub fn new(settings: AmazonSettings, ctx: BuildContext) -> Result<Self, ConnectorError> {
        Self::with_clock(settings, ctx, Arc::new(Utc::now))
    }

    /// [`AmazonConnector::new`] with a time source for token expiry and feed
    /// checks (tests fix it; cursors take `now` from the daemon).
    pub fn with_clock(
        settings: AmazonSettings,
        ctx: BuildContext,
        clock: Clock,
    ) -> Result<Self, ConnectorError> {
        settings.validate().map_err(|problems| {
            ConnectorError::Config(format!("amazon account {:?}: {problems}", ctx.account))
        })?;
        let base = ctx.base_url.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ConnectorError::Config(format!(
                "amazon account {:?}: base_url {:?} must start with https:// or http:// \
                 (e.g. https://sellingpartnerapi-na.amazon.com)",
                ctx.account, ctx.base_url
            )));
        }
        let token_url = config::token_url(settings.token_url.as_deref(), base);
        let client = SpClient::new(
            ctx.http,
            base,
            Credentials {
                client_id: settings.client_id.clone(),
                client_secret: settings.client_secret.clone(),
                refresh_token: settings.refresh_token.clone(),
                token_url,
            },
            ctx.tokens,
            ctx.pacer,
            clock,
        );
        Ok(AmazonConnector {
            sandbox: is_sandbox(base),
            account: ctx.account,
            settings,
            client,
            feeds: push::FeedCache::default(),
        })
    }

    pub fn settings(&self) -> &AmazonSettings {
        &self.settings
    }

    fn marketplaces(&self) -> String {
        self.settings.marketplace_ids.join(",")
    }

    async fn poll_page(
        &self,
        cursor: Option<&Cursor>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<OrderPage, ConnectorError> {
        let mut position = match cursor {
            Some(c) => PollCursor::decode(c)?,
            None => PollCursor::first(since),
        };
        if position.token_expired(now) {
            position = position.restarted();
        }
        let Some(request) = position.request(now) else {
            return Ok(OrderPage {
                orders: Vec::new(),
                next: position.encode(),
                more: false,
                rejected: Vec::new(),
            });
        };
        // A 400 on a follow-up page is Amazon refusing the page token (it
        // lives 24 hours by Amazon's clock): the sweep starts again, whole.
        let refused_token: &[u16] = if request.token.is_some() { &[400] } else { &[] };
        let reply = self
            .client
            .call(
                AmazonOp::SearchOrders,
                Method::GET,
                SEARCH_ORDERS,
                &request.query(&self.marketplaces()),
                None,
                refused_token,
            )
            .await
            .map_err(|e| match e {
                ConnectorError::Rejected {
                    status: Some(400),
                    detail,
                } => ConnectorError::Rejected {
                    status: Some(400),
                    detail: format!(
                        "{detail}; the window ended at {} ({} before this host's clock): Amazon \
                         refuses an end less than two minutes before its own, so a host clock \
                         running ahead of Amazon's by more than that needs fixing",
                        cursor::rfc3339(request.before),
                        "five minutes"
                    ),
                },
                other => other,
            })?;
        if reply.status == 400 {
            return Ok(OrderPage {
                orders: Vec::new(),
                next: position.restarted().encode(),
                more: true,
                rejected: Vec::new(),
            });
        }
        let page: SearchOrdersResponse = self.client.decode(AmazonOp::SearchOrders, &reply.body)?;
        let mut orders = Vec::with_capacity(page.orders.len());
        let mut rejected = Vec::new();
        for raw in &page.orders {
            match normalize_order(&self.account, self.sandbox, raw) {
                Ok(o) => orders.push(o),
                // Left out and named, not fatal: failing the page would stop
                // every later order of the account from syncing.
                Err(e) => rejected.push(RejectedOrder {
                    channel_order_id: normalize::order_id(raw),
                    error: e.to_string(),
                }),
            }
        }
        let next_token = page
            .pagination
            .and_then(|p| p.next_token)
            .filter(|t| !t.trim().is_empty());
        let (next, more) = position.advance(&request, next_token, now);
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
            let reply = self
                .client
                .call(
                    AmazonOp::GetOrder,
                    Method::GET,
                    &format!("{GET_ORDER}/{}", segment(id.trim())),
                    &[("includedData", INCLUDED_DATA.to_owned())],
                    None,
                    // An id Amazon cannot read is an order it does not have.
                    &[400, 404],
                )
                .await?;
            if matches!(reply.status, 400 | 404) {
                out.missing.push(id.clone());
                continue;
            }
            let answer: Result<GetOrderResponse, _> =
                self.client.decode(AmazonOp::GetOrder, &reply.body);
            match answer.and_then(|a| normalize_order(&self.account, self.sandbox, &a.order)) {
                Ok(order) => out.orders.push(order),
                Err(e) => out.rejected.push(RejectedOrder {
                    channel_order_id: Some(id.clone()),
                    error: e.to_string(),
                }),
            }
        }
        Ok(out)
    }

    async fn check_account(&self) -> Result<(), ConnectorError> {
        self.client
            .call(
                AmazonOp::GetOrder,
                Method::GET,
                &format!("{GET_ORDER}/{NO_SUCH_ORDER}"),
                &[],
                None,
                &[400, 404],
            )
            .await
            .map(|_| ())
    }
}

impl Connector for AmazonConnector {
    fn channel(&self) -> Channel {
        Channel::Amazon
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// `searchOrders` has a bucket of its own that no push spends, so a poll
    /// need not leave room for anything.
    fn hints(&self) -> ChannelHints {
        ChannelHints {
            poll_low_water: 0.0,
            call_timeout: Duration::from_secs(120),
            ..ChannelHints::default()
        }
    }

    /// Amazon's published usage plans, each class at the slowest of its
    /// frequent operations (`searchOrders` 0.0056/s burst 20, `getOrder`
    /// 0.5/s burst 30, look-ups 2/s burst 10, `patchListingsItem` 5/s burst
    /// 5, `confirmShipment` 2/s burst 10), following `x-amzn-RateLimit-Limit`
    /// once Amazon has sent it.
    fn rate_limit(&self, operation: Operation) -> RateLimit {
        self.client.rates.limit(operation)
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
        Box::pin(std::future::ready(webhook::handle(
            req,
            self.settings.webhook_secret.as_ref(),
            &self.settings.seller_id,
        )))
    }

    fn inventory_batch_limit(&self) -> usize {
        push::BATCH_LIMIT
    }

    fn push_inventory_batch<'a>(
        &'a self,
        pushes: &'a [InventoryPush],
    ) -> BoxFuture<'a, Vec<Result<InventoryResult, ConnectorError>>> {
        Box::pin(push::push_inventory_batch(
            &self.client,
            &self.settings,
            pushes,
        ))
    }

    fn check_inventory_receipt<'a>(
        &'a self,
        receipt: &'a str,
    ) -> BoxFuture<'a, Result<ReceiptStatus, ConnectorError>> {
        Box::pin(push::check_receipt(&self.client, &self.feeds, receipt))
    }

    fn push_tracking<'a>(
        &'a self,
        push: &'a TrackingPush,
    ) -> BoxFuture<'a, Result<TrackingResult, ConnectorError>> {
        Box::pin(push::push_tracking(&self.client, &self.settings, push))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_endpoints_are_recognised_by_host() {
        assert!(is_sandbox(
            "https://sandbox.sellingpartnerapi-na.amazon.com"
        ));
        assert!(is_sandbox(
            "https://sandbox.sellingpartnerapi-eu.amazon.com/"
        ));
        assert!(!is_sandbox("https://sellingpartnerapi-na.amazon.com"));
        assert!(!is_sandbox(
            "http://127.0.0.1:4000/sandbox.sellingpartnerapi"
        ));
    }
}
