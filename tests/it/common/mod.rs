//! Shared test support: a small JSON-pages test connector that speaks to the
//! replay server, orders to feed it, and an account config for it; the
//! daemon harness is in [`daemon`].

#![allow(dead_code)]

pub mod daemon;
pub mod eventually;

pub use eventually::eventually;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use switchyard::config::{AccountConfig, ChannelSettings, Secret, ShopifySettings};
use switchyard_contract::*;

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
        }],
        shipments: vec![],
        tags: vec!["from-channel".into()],
        route: None,
        hold: None,
        priority: Priority::Normal,
    }
}

pub fn normalized(o: Order) -> NormalizedOrder {
    let raw = serde_json::to_value(&o).unwrap();
    NormalizedOrder {
        order: o,
        notes: vec![],
        raw,
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
        settings: ChannelSettings::Shopify(ShopifySettings {
            access_token: Secret::new("test-token"),
            webhook_secret: Some(Secret::new("test-secret")),
            webhook_secret_previous: None,
            notify_customer: true,
            location_id: None,
            api_version: "2026-10".into(),
        }),
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

    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn poll_orders(
        &self,
        cursor: Option<&Cursor>,
        since: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> impl Future<Output = Result<OrderPage, ConnectorError>> + Send {
        let from = cursor
            .map(|c| c.0.clone())
            .unwrap_or_else(|| since.to_rfc3339());
        let url = format!("{}/orders", self.base_url);
        let http = self.http.clone();
        async move {
            let resp = http
                .get(url)
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
    }

    async fn fetch_orders(&self, _ids: &[String]) -> Result<Vec<NormalizedOrder>, ConnectorError> {
        Err(ConnectorError::Rejected {
            status: None,
            detail: "not in the test channel".into(),
        })
    }

    fn verify_webhook(&self, req: &WebhookRequest) -> Result<(), ConnectorError> {
        match req.header("x-test-signature") {
            Some(GOOD_SIGNATURE) => Ok(()),
            _ => Err(ConnectorError::Auth("bad signature".into())),
        }
    }

    fn parse_webhook(&self, req: &WebhookRequest) -> Result<WebhookOutcome, ConnectorError> {
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
        })
    }

    async fn push_inventory(
        &self,
        _push: &InventoryPush,
    ) -> Result<InventoryResult, ConnectorError> {
        Ok(InventoryResult::NotListed)
    }

    async fn push_tracking(&self, _push: &TrackingPush) -> Result<TrackingResult, ConnectorError> {
        Err(ConnectorError::Rejected {
            status: None,
            detail: "not in the test channel".into(),
        })
    }
}

pub fn page(orders: &[Order], next: &str, more: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({ "orders": orders, "next": next, "more": more })).unwrap()
}

pub fn webhook_body(event: &str, topic: &str, order: &Order) -> Vec<u8> {
    serde_json::to_vec(&json!({ "event": event, "topic": topic, "order": order })).unwrap()
}
