//! Shared test support: a small JSON-pages test connector that speaks to the
//! replay server, orders to feed it, and an account config for it; the
//! daemon harness is in [`daemon`].

#![allow(dead_code)]

pub mod daemon;
pub mod eventually;
pub mod sims;

pub use eventually::eventually;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use switchyard::config::{AccountConfig, Secret};
use switchyard_contract::*;
use switchyard_shopify::ShopifySettings;

pub const ACCOUNT: &str = "shop-test";

pub const GOOD_SIGNATURE: &str = "good-signature";

pub fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).unwrap()
}

/// A canonical order as a connector would hand it over (channel tags only).
pub fn order(n: u32, updated_at: DateTime<Utc>, total: &str) -> Order {
    let total: Decimal = total.parse().unwrap();
    Order {
        id: Order::make_id(ACCOUNT, &n.to_string()),
        account: ACCOUNT.into(),
        channel: Channel::Shopify,
        channel_order_id: n.to_string(),
        number: Some(format!("#{n}")),
        status: OrderStatus::Ready,
        payment: PaymentStatus::Paid,
        placed_at: at(8, 0),
        updated_at,
        currency: Currency::new("USD").unwrap(),
        totals: Totals {
            subtotal: total,
            shipping: Decimal::ZERO,
            tax: Decimal::ZERO,
            discount: Decimal::ZERO,
            total,
            refunded: Decimal::ZERO,
        },
        presentment: None,
        customer: None,
        shipping_address: Some(Address {
            country: Some("US".into()),
            ..Address::default()
        }),
        shipping_method: Some("Standard".into()),
        lines: vec![Line {
            line_id: format!("{n}1"),
            sku: Some("MUG-RED".into()),
            title: "Red mug".into(),
            quantity: 1,
            unit_price: total,
            total,
            shipped_quantity: 0,
            discount: rust_decimal::Decimal::ZERO,
            tax: None,
            refunded_quantity: 0,
            options: vec![],
        }],
        shipments: vec![],
        tags: vec!["from-channel".into()],
        route: None,
        hold: None,
        priority: Priority::Normal,
        note: None,
        gift: None,
        fulfillment: switchyard_contract::Fulfillment::default(),
        test: false,
    }
}

pub fn normalized(o: Order) -> NormalizedOrder {
    let raw = serde_json::to_value(&o).unwrap();
    NormalizedOrder {
        order: o,
        notes: vec![],
        raw,
        raw_json: None,
    }
}

pub fn account(base_url: &str) -> AccountConfig {
    AccountConfig {
        id: ACCOUNT.into(),
        channel: Channel::Shopify,
        base_url: base_url.into(),
        poll_interval: Duration::from_secs(60),
        start_date: None,
        buffer: None,
        webhooks: true,
        settings: Some(Arc::new(ShopifySettings {
            access_token: Secret::new("test-token"),
            webhook_secret: Some(Secret::new("test-secret")),
            webhook_secret_previous: None,
            notify_customer: true,
            location_id: None,
            api_version: "2026-10".into(),
        })),
        refresh_token_id: None,
    }
}

/// A test channel: `GET /orders?cursor=C` answers
/// `{ "orders": [canonical orders], "next": "...", "more": bool }`; webhooks
/// carry `{ "event": "...", "topic": "...", "order": {...} }` and are
/// "signed" with the header `x-test-signature: good-signature`.
pub struct PageConnector {
    pub base_url: String,
    pub http: reqwest::Client,
}

impl PageConnector {
    pub fn new(base_url: &str) -> Self {
        PageConnector {
            base_url: base_url.into(),
            http: reqwest::Client::new(),
        }
    }
}

impl PageConnector {
    async fn page(
        &self,
        cursor: Option<&Cursor>,
        since: DateTime<Utc>,
    ) -> Result<OrderPage, ConnectorError> {
        let from = cursor
            .map(|c| c.0.clone())
            .unwrap_or_else(|| since.to_rfc3339());
        let resp = self
            .http
            .get(format!("{}/orders", self.base_url))
            .query(&[("cursor", from)])
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ConnectorError::from_status(status, None, "page"));
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let orders: Vec<Order> = serde_json::from_value(v["orders"].clone())
            .map_err(|e| ConnectorError::Decode(e.to_string()))?;
        Ok(OrderPage {
            orders: orders.into_iter().map(normalized).collect(),
            next: Cursor(v["next"].as_str().unwrap_or_default().to_owned()),
            more: v["more"].as_bool().unwrap_or(false),
            rejected: vec![],
        })
    }

    fn webhook(req: &WebhookRequest) -> Result<WebhookOutcome, ConnectorError> {
        match req.header("x-test-signature") {
            Some(GOOD_SIGNATURE) => {}
            _ => return Err(ConnectorError::Auth("bad signature".into())),
        }
        let v: serde_json::Value =
            serde_json::from_slice(&req.body).map_err(|e| ConnectorError::Decode(e.to_string()))?;
        let dedupe_key = v["event"].as_str().map(str::to_owned);
        if v["topic"] != "orders/updated" {
            return Ok(WebhookOutcome::Ignored {
                dedupe_key,
                reason: "topic".into(),
            });
        }
        let order: Order = serde_json::from_value(v["order"].clone())
            .map_err(|e| ConnectorError::Decode(e.to_string()))?;
        Ok(WebhookOutcome::Orders {
            dedupe_key,
            orders: vec![normalized(order)],
            rejected: vec![],
        })
    }
}

impl Connector for PageConnector {
    fn channel(&self) -> Channel {
        Channel::Shopify
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            poll: true,
            webhooks: true,
            push_inventory: false,
            push_tracking: false,
        }
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }

    fn poll_orders<'a>(
        &'a self,
        cursor: Option<&'a Cursor>,
        since: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<OrderPage, ConnectorError>> {
        Box::pin(self.page(cursor, since))
    }

    fn fetch_orders<'a>(
        &'a self,
        _ids: &'a [String],
    ) -> BoxFuture<'a, Result<FetchedOrders, ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::Rejected {
                status: None,
                detail: "not in the test channel".into(),
            })
        })
    }

    fn handle_webhook<'a>(
        &'a self,
        req: &'a WebhookRequest,
    ) -> BoxFuture<'a, Result<WebhookOutcome, ConnectorError>> {
        Box::pin(std::future::ready(PageConnector::webhook(req)))
    }

    fn push_inventory_batch<'a>(
        &'a self,
        pushes: &'a [InventoryPush],
    ) -> BoxFuture<'a, Vec<Result<InventoryResult, ConnectorError>>> {
        Box::pin(std::future::ready(
            pushes
                .iter()
                .map(|_| Ok(InventoryResult::NotListed))
                .collect(),
        ))
    }

    fn push_tracking<'a>(
        &'a self,
        _push: &'a TrackingPush,
    ) -> BoxFuture<'a, Result<TrackingResult, ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::Rejected {
                status: None,
                detail: "not in the test channel".into(),
            })
        })
    }
}

/// `connector` as a built account of its own, with a pacer that follows
/// its published limits (the daemon's `Connected`).
pub fn connected(
    connector: impl Connector + 'static,
    account: AccountConfig,
) -> switchyard::channels::accounts::Connected {
    let connector: Arc<dyn Connector> = Arc::new(connector);
    let pacer = switchyard::pacing::AccountPacer::new(&account.id, Default::default());
    pacer.follow(&connector);
    switchyard::channels::accounts::Connected {
        hints: connector.hints(),
        account,
        connector,
        pacer,
    }
}

pub fn page(orders: &[Order], next: &str, more: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({ "orders": orders, "next": next, "more": more })).unwrap()
}

pub fn webhook_body(event: &str, topic: &str, order: &Order) -> Vec<u8> {
    serde_json::to_vec(&json!({ "event": event, "topic": topic, "order": order })).unwrap()
}

/// Opens the store in `dir` again after an earlier handle in this process
/// was closed or dropped: the engine's threads let go of the directory's
/// lock a moment later, so only a `Locked` answer is waited out, a few
/// seconds at the most; any other error fails the test.
pub fn reopen(dir: &std::path::Path) -> switchyard::store::Store {
    reopen_with(dir, switchyard::store::StoreOptions::default())
}

/// [`reopen`] with options of the test's own.
pub fn reopen_with(
    dir: &std::path::Path,
    opts: switchyard::store::StoreOptions,
) -> switchyard::store::Store {
    switchyard::store::Store::open_once_free(dir, opts)
        .unwrap_or_else(|e| panic!("reopen the store in {}: {e}", dir.display()))
}

/// A loopback HTTP server that stops when dropped.
pub struct Server {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn serve(router: axum::Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Server {
        url,
        stop: Some(tx),
    }
}
