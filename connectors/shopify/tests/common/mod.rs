//! Shared by the replay tests: runs a fixture scenario's `calls.json` against
//! a strict replay server and collects what came out.
//!
//! `calls.json` says what the test does with a scenario (the scenario.toml
//! format only describes traffic), so adding a scenario stays adding a folder:
//!
//! ```json
//! { "config": { "location_id": "905684977" },
//!   "calls": [ { "call": "poll_all", "since": "2026-11-26T00:00:00Z" },
//!              { "call": "poll", "since": "…", "cursor": "previous" },
//!              { "call": "fetch_orders", "ids": ["5551234567"] },
//!              { "call": "check" },
//!              { "call": "push_inventory", "push": { …InventoryPush… } },
//!              { "call": "push_inventory_batch", "pushes": [ { …InventoryPush… }, … ] },
//!              { "call": "push_tracking", "order_id": "…", "idempotency_key": "…", "shipment": { …Shipment… } },
//!              { "call": "webhooks" } ] }
//! ```

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_contract::testkit::{HttpRequest, ReplayServer, Scenario};
use switchyard_contract::{
    Channel, Connector, ConnectorError, Currency, Cursor, Fulfillment, InventoryPush,
    NormalizedOrder, Order, OrderStatus, PaymentStatus, Priority, Secret, Shipment, Totals,
    TrackingPush, Unpaced, WebhookOutcome, WebhookRequest,
};
use switchyard_shopify::{ShopifyConfig, ShopifyConnector};

pub const ACCOUNT: &str = "shop-us";
pub const TOKEN: &str = "test-token";
pub const WEBHOOK_SECRET: &str = "fixture-webhook-secret";
pub const GRAPHQL_PATH: &str = "/admin/api/2026-10/graphql.json";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/shopify")
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    #[serde(default)]
    pub location_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calls {
    #[serde(default)]
    pub config: ConfigOverrides,
    #[serde(default)]
    pub calls: Vec<Call>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
pub enum Call {
    /// One page; `cursor: "previous"` continues from the last poll's cursor.
    Poll {
        since: DateTime<Utc>,
        #[serde(default)]
        cursor: Option<String>,
    },
    /// Pages until caught up (`more == false`).
    PollAll {
        since: DateTime<Utc>,
    },
    FetchOrders {
        ids: Vec<String>,
    },
    Check,
    PushInventory {
        push: InventoryPush,
    },
    /// Several pushes in one `push_inventory_batch`; one result per push.
    PushInventoryBatch {
        pushes: Vec<InventoryPush>,
    },
    PushTracking {
        order_id: String,
        idempotency_key: String,
        shipment: Shipment,
    },
    /// Verifies and parses every webhook of the scenario, in order.
    Webhooks,
}

pub fn load_calls(s: &Scenario) -> Calls {
    let path = s.dir.join("calls.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn connector(base_url: &str, overrides: &ConfigOverrides) -> ShopifyConnector {
    let mut config = ShopifyConfig::new(ACCOUNT, base_url, Secret::new(TOKEN));
    config.webhook_secrets = vec![Secret::new(WEBHOOK_SECRET)];
    config.location_id = overrides.location_id.clone();
    ShopifyConnector::new(config, reqwest::Client::new(), Unpaced::shared())
        .expect("fixture config is valid")
}

pub fn error_json(e: &ConnectorError) -> Value {
    let mut v = json!({ "class": e.class(), "message": e.to_string() });
    if let ConnectorError::RateLimited { retry_after, .. } = e {
        v["retry_after_ms"] =
            json!(retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
    }
    v
}

/// The golden form of a normalized order: the canonical order and its notes
/// (`raw` is the input itself, already in the fixture).
pub fn order_json(o: &NormalizedOrder) -> Value {
    json!({ "order": o.order, "notes": o.notes })
}

pub fn webhook_request(w: &switchyard_contract::testkit::WebhookFixture) -> WebhookRequest {
    WebhookRequest {
        account: ACCOUNT.into(),
        method: "POST".into(),
        headers: w
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        query: None,
        body: w.body.clone(),
        received_at: Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap(),
    }
}

/// A canonical order as the daemon would hand it to `push_tracking`; the
/// connector only reads its channel order id.
pub fn order_stub(channel_order_id: &str) -> Order {
    let t = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
    Order {
        id: Order::make_id(ACCOUNT, channel_order_id),
        account: ACCOUNT.into(),
        channel: Channel::Shopify,
        channel_order_id: channel_order_id.into(),
        number: None,
        status: OrderStatus::Ready,
        payment: PaymentStatus::Paid,
        placed_at: t,
        updated_at: t,
        currency: Currency::new("USD").unwrap(),
        totals: Totals {
            subtotal: Decimal::ZERO,
            shipping: Decimal::ZERO,
            tax: Decimal::ZERO,
            discount: Decimal::ZERO,
            total: Decimal::ZERO,
            refunded: Decimal::ZERO,
        },
        presentment: None,
        customer: None,
        shipping_address: None,
        shipping_method: None,
        lines: vec![],
        note: None,
        gift: None,
        fulfillment: Fulfillment::Merchant,
        test: false,
        shipments: vec![],
        tags: vec![],
        route: None,
        hold: None,
        priority: Priority::Normal,
    }
}

fn page_json(page: &switchyard_contract::OrderPage) -> Value {
    json!({
        "orders": page.orders.iter().map(|o| o.order.id.clone()).collect::<Vec<_>>(),
        "next": serde_json::from_str::<Value>(&page.next.0).unwrap_or(Value::String(page.next.0.clone())),
        "more": page.more,
    })
}

/// What running a scenario produced.
pub struct Run {
    pub orders: Vec<NormalizedOrder>,
    /// Orders from webhooks only, in delivery order.
    pub webhook_orders: Vec<NormalizedOrder>,
    /// One entry per call.
    pub results: Vec<Value>,
    pub requests: Vec<HttpRequest>,
}

pub async fn run(s: &Scenario) -> Run {
    let calls = load_calls(s);
    let server = ReplayServer::start(s).await;
    let c = connector(&server.url(), &calls.config);
    let mut orders = Vec::new();
    let mut webhook_orders = Vec::new();
    let mut results = Vec::new();
    let mut last_cursor: Option<Cursor> = None;
    for call in &calls.calls {
        let result = match call {
            Call::Poll { since, cursor } => {
                let cursor = match cursor.as_deref() {
                    None => None,
                    Some("previous") => Some(last_cursor.clone().expect("a previous poll")),
                    Some(other) => Some(Cursor(other.to_owned())),
                };
                match c.poll_orders(cursor.as_ref(), *since, *since).await {
                    Ok(page) => {
                        let v = page_json(&page);
                        last_cursor = Some(page.next.clone());
                        orders.extend(page.orders);
                        json!({ "call": "poll", "page": v })
                    }
                    Err(e) => json!({ "call": "poll", "error": error_json(&e) }),
                }
            }
            Call::PollAll { since } => {
                let mut pages = Vec::new();
                let mut cursor: Option<Cursor> = None;
                let mut error = None;
                for _ in 0..20 {
                    match c.poll_orders(cursor.as_ref(), *since, *since).await {
                        Ok(page) => {
                            pages.push(page_json(&page));
                            cursor = Some(page.next.clone());
                            orders.extend(page.orders);
                            if !page.more {
                                break;
                            }
                        }
                        Err(e) => {
                            error = Some(error_json(&e));
                            break;
                        }
                    }
                }
                last_cursor = cursor;
                json!({ "call": "poll_all", "pages": pages, "error": error })
            }
            Call::FetchOrders { ids } => match c.fetch_orders(ids).await {
                Ok(found) => {
                    let ids: Vec<_> = found.orders.iter().map(|o| o.order.id.clone()).collect();
                    orders.extend(found.orders);
                    let mut v = json!({ "call": "fetch_orders", "orders": ids });
                    if !found.missing.is_empty() {
                        v["missing"] = json!(found.missing);
                    }
                    if !found.rejected.is_empty() {
                        v["rejected"] = json!(found.rejected);
                    }
                    v
                }
                Err(e) => json!({ "call": "fetch_orders", "error": error_json(&e) }),
            },
            Call::Check => match c.check().await {
                Ok(()) => json!({ "call": "check", "ok": true }),
                Err(e) => json!({ "call": "check", "error": error_json(&e) }),
            },
            Call::PushInventory { push } => {
                let mut results = c.push_inventory_batch(std::slice::from_ref(push)).await;
                assert_eq!(results.len(), 1, "one result per push");
                match results.remove(0) {
                    Ok(r) => json!({ "call": "push_inventory", "sku": push.sku, "result": r }),
                    Err(e) => {
                        json!({ "call": "push_inventory", "sku": push.sku, "error": error_json(&e) })
                    }
                }
            }
            Call::PushInventoryBatch { pushes } => {
                let results = c.push_inventory_batch(pushes).await;
                assert_eq!(results.len(), pushes.len(), "one result per push");
                let results: Vec<Value> = pushes
                    .iter()
                    .zip(results)
                    .map(|(push, r)| match r {
                        Ok(r) => json!({ "sku": push.sku, "result": r }),
                        Err(e) => json!({ "sku": push.sku, "error": error_json(&e) }),
                    })
                    .collect();
                json!({ "call": "push_inventory_batch", "results": results })
            }
            Call::PushTracking {
                order_id,
                idempotency_key,
                shipment,
            } => {
                let push = TrackingPush {
                    order: order_stub(order_id),
                    shipment: shipment.clone(),
                    idempotency_key: idempotency_key.clone(),
                };
                match c.push_tracking(&push).await {
                    Ok(r) => json!({ "call": "push_tracking", "result": r }),
                    Err(e) => json!({ "call": "push_tracking", "error": error_json(&e) }),
                }
            }
            Call::Webhooks => {
                let mut deliveries = Vec::new();
                for w in &s.webhooks {
                    let req = webhook_request(w);
                    let mut d = json!({ "name": w.name });
                    // The golden shape keeps the signature check apart from
                    // what the body meant: a refused signature is `verify`.
                    match c.handle_webhook(&req).await {
                        Err(e @ ConnectorError::Auth(_)) => d["verify"] = error_json(&e),
                        result => {
                            d["verify"] = json!("ok");
                            d["outcome"] = match result {
                                Ok(WebhookOutcome::Orders {
                                    dedupe_key,
                                    orders: found,
                                    rejected,
                                }) => {
                                    let mut v = json!({
                                        "kind": "orders",
                                        "dedupe_key": dedupe_key,
                                        "orders": found.iter().map(|o| json!({"id": o.order.id, "updated_at": o.order.updated_at})).collect::<Vec<_>>(),
                                    });
                                    if !rejected.is_empty() {
                                        v["rejected"] = json!(rejected);
                                    }
                                    webhook_orders.extend(found.iter().cloned());
                                    orders.extend(found);
                                    v
                                }
                                Ok(WebhookOutcome::Ignored { dedupe_key, reason }) => {
                                    json!({ "kind": "ignored", "dedupe_key": dedupe_key, "reason": reason })
                                }
                                Ok(other) => panic!("unexpected outcome {other:?}"),
                                Err(e) => error_json(&e),
                            };
                        }
                    }
                    deliveries.push(d);
                }
                json!({ "call": "webhooks", "deliveries": deliveries })
            }
        };
        results.push(result);
    }
    if let Some(h) = c.rate_hint() {
        results.push(json!({
            "rate_hint": { "capacity": h.capacity, "remaining": h.remaining, "restore_per_second": h.restore_per_second }
        }));
    }
    let requests = server.finish().await;
    Run {
        orders,
        webhook_orders,
        results,
        requests,
    }
}
