//! Shared by the Etsy replay tests: runs a fixture scenario's `calls.json`
//! against a strict replay server and collects what came out.
//!
//! `calls.json` says what the test does with a scenario (the scenario.toml
//! format only describes traffic), so adding a scenario stays adding a folder:
//!
//! ```json
//! { "config": { "page_size": 2, "access_token": true },
//!   "calls": [ { "call": "poll_all", "since": "…", "now": "…" },
//!              { "call": "poll", "since": "…", "now": "…", "cursor": "previous" },
//!              { "call": "poll", "since": "…", "now": "…", "cursor": { …a stored cursor… } },
//!              { "call": "fetch_orders", "ids": ["3001"] },
//!              { "call": "check" },
//!              { "call": "push_inventory_batch", "pushes": [ { …InventoryPush… } ] },
//!              { "call": "push_tracking", "order_id": "…", "idempotency_key": "…", "shipment": { …Shipment… } },
//!              { "call": "webhooks", "received_at": "…" } ] }
//! ```

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_contract::testkit::{HttpRequest, ReplayServer, Scenario, WebhookFixture};
use switchyard_contract::tokens::MemoryTokenStore;
use switchyard_contract::{
    BoxFuture, Channel, Connector, ConnectorError, Currency, Cursor, Fulfillment, InventoryPush,
    NormalizedOrder, Operation, Order, OrderStatus, Pacer, PaymentStatus, Priority, RateHint,
    Secret, Shipment, Totals, TrackingPush, WebhookOutcome, WebhookRequest,
};
use switchyard_etsy::settings::replay;
use switchyard_etsy::{EtsyConfig, EtsyConnector};

pub const ACCOUNT: &str = "etsy-main";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/etsy")
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Every credential of the fixtures, to prove none leaks into an output.
pub fn secrets() -> Vec<&'static str> {
    vec![
        replay::SHARED_SECRET,
        replay::ACCESS_TOKEN,
        replay::REFRESH_TOKEN,
        replay::WEBHOOK_SECRET,
        ROTATED_ACCESS_TOKEN,
        ROTATED_REFRESH_TOKEN,
    ]
}

/// What the token endpoint of the rotation fixtures answers.
pub const ROTATED_ACCESS_TOKEN: &str = "12345678.test-access-token-2";
pub const ROTATED_REFRESH_TOKEN: &str = "12345678.test-refresh-token-2";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    /// Receipts per page (default 100).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Whether the fixture's access token is configured (default true);
    /// without it the first call refreshes.
    #[serde(default = "yes")]
    pub access_token: bool,
}

fn yes() -> bool {
    true
}

impl Default for ConfigOverrides {
    fn default() -> Self {
        ConfigOverrides {
            page_size: None,
            access_token: true,
        }
    }
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
    /// One page; `cursor` is `"previous"` (the last poll's) or a stored cursor.
    Poll {
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        #[serde(default)]
        cursor: Option<Value>,
    },
    /// Pages until caught up (`more == false`).
    PollAll {
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    FetchOrders {
        ids: Vec<String>,
    },
    Check,
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
    Webhooks {
        received_at: DateTime<Utc>,
    },
}

pub fn load_calls(s: &Scenario) -> Calls {
    let path = s.dir.join("calls.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The pacer of a test: lets everything go and remembers what it was asked
/// and told.
#[derive(Debug, Default)]
pub struct RecordingPacer {
    pub acquired: Mutex<Vec<Operation>>,
    pub observed: Mutex<Vec<(Operation, RateHint)>>,
}

impl Pacer for RecordingPacer {
    fn acquire(&self, operation: Operation, _cost: u32) -> BoxFuture<'_, ()> {
        self.acquired.lock().unwrap().push(operation);
        Box::pin(std::future::ready(()))
    }

    fn observe(&self, operation: Operation, hint: RateHint) {
        self.observed.lock().unwrap().push((operation, hint));
    }
}

pub fn config(base_url: &str, overrides: &ConfigOverrides) -> EtsyConfig {
    let mut c = EtsyConfig::new(
        ACCOUNT,
        base_url,
        replay::SHOP_ID,
        replay::KEYSTRING,
        Secret::new(replay::SHARED_SECRET),
        Secret::new(replay::REFRESH_TOKEN),
    );
    c.webhook_secret = Some(Secret::new(replay::WEBHOOK_SECRET));
    c.access_token = overrides
        .access_token
        .then(|| Secret::new(replay::ACCESS_TOKEN));
    if let Some(p) = overrides.page_size {
        c.page_size = p;
    }
    c
}

/// A connector with no configured access token, so its first call
/// refreshes, and the store and pacer it was built with.
pub fn refreshing_connector(
    base_url: &str,
) -> (EtsyConnector, Arc<MemoryTokenStore>, Arc<RecordingPacer>) {
    let overrides = ConfigOverrides {
        page_size: None,
        access_token: false,
    };
    let tokens = MemoryTokenStore::shared();
    let pacer = Arc::new(RecordingPacer::default());
    let c = connector(base_url, &overrides, tokens.clone(), pacer.clone());
    (c, tokens, pacer)
}

pub fn connector(
    base_url: &str,
    overrides: &ConfigOverrides,
    tokens: Arc<MemoryTokenStore>,
    pacer: Arc<RecordingPacer>,
) -> EtsyConnector {
    EtsyConnector::new(
        config(base_url, overrides),
        reqwest::Client::new(),
        tokens,
        pacer,
    )
    .expect("fixture config is valid")
}

pub fn error_json(e: &ConnectorError) -> Value {
    let mut v = json!({ "class": e.class(), "message": e.to_string() });
    if let ConnectorError::RateLimited { retry_after, .. } = e {
        v["retry_after_ms"] = json!(retry_after.map(|d| d.as_millis() as u64));
    }
    v
}

/// The golden form of a normalized order: the canonical order and its notes
/// (`raw` is the input itself, already in the fixture).
pub fn order_json(o: &NormalizedOrder) -> Value {
    json!({ "order": o.order, "notes": o.notes })
}

pub fn webhook_request(w: &WebhookFixture, received_at: DateTime<Utc>) -> WebhookRequest {
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
        received_at,
    }
}

/// A canonical order as the daemon would hand it to `push_tracking`; the
/// connector only reads its channel order id.
pub fn order_stub(channel_order_id: &str) -> Order {
    let t = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
    Order {
        id: Order::make_id(ACCOUNT, channel_order_id),
        account: ACCOUNT.into(),
        channel: Channel::Etsy,
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
    let mut v = json!({
        "orders": page.orders.iter().map(|o| o.order.id.clone()).collect::<Vec<_>>(),
        "next": serde_json::from_str::<Value>(&page.next.0).unwrap_or(Value::String(page.next.0.clone())),
        "more": page.more,
    });
    if !page.rejected.is_empty() {
        v["rejected"] = json!(page.rejected);
    }
    v
}

/// A request as the golden `requests.json` shows it: method, path, query,
/// and the body (JSON, or form fields), with the refresh token hidden.
pub fn request_json(r: &HttpRequest) -> Value {
    let mut v = json!({ "method": r.method, "path": r.path });
    if !r.query.is_empty() {
        v["query"] = json!(
            r.query
                .iter()
                .map(|(k, q)| format!("{k}={q}"))
                .collect::<Vec<_>>()
        );
    }
    let ct = r.header("content-type").unwrap_or_default();
    if ct.starts_with("application/json") {
        v["json"] = r.body_json().expect("a JSON body");
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        let fields: Vec<Value> = r
            .body_form()
            .into_iter()
            .map(|(k, val)| {
                let shown = if k == "refresh_token" {
                    "***".into()
                } else {
                    val
                };
                json!([k, shown])
            })
            .collect();
        v["form"] = Value::Array(fields);
    } else {
        assert!(
            r.body.is_empty(),
            "{} {}: a body of type {ct:?}",
            r.method,
            r.path
        );
    }
    v
}

/// What running a scenario produced.
pub struct Run {
    pub orders: Vec<NormalizedOrder>,
    /// One entry per call.
    pub results: Vec<Value>,
    pub requests: Vec<HttpRequest>,
    pub pacer: Arc<RecordingPacer>,
    pub tokens: Arc<MemoryTokenStore>,
    pub connector: EtsyConnector,
}

pub async fn run(s: &Scenario) -> Run {
    let calls = load_calls(s);
    let server = ReplayServer::start(s).await;
    let tokens = MemoryTokenStore::shared();
    let pacer = Arc::new(RecordingPacer::default());
    let c = connector(&server.url(), &calls.config, tokens.clone(), pacer.clone());
    let mut orders = Vec::new();
    let mut results = Vec::new();
    let mut last_cursor: Option<Cursor> = None;
    for call in &calls.calls {
        let result = match call {
            Call::Poll { since, now, cursor } => {
                let cursor = match cursor {
                    None => None,
                    Some(Value::String(p)) if p == "previous" => {
                        Some(last_cursor.clone().expect("a previous poll"))
                    }
                    Some(stored) => Some(Cursor(stored.to_string())),
                };
                match c.poll_orders(cursor.as_ref(), *since, *now).await {
                    Ok(page) => {
                        let v = page_json(&page);
                        last_cursor = Some(page.next.clone());
                        orders.extend(page.orders);
                        json!({ "call": "poll", "page": v })
                    }
                    Err(e) => json!({ "call": "poll", "error": error_json(&e) }),
                }
            }
            Call::PollAll { since, now } => {
                let mut pages = Vec::new();
                let mut cursor: Option<Cursor> = None;
                let mut error = None;
                for _ in 0..20 {
                    match c.poll_orders(cursor.as_ref(), *since, *now).await {
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
            Call::PushInventoryBatch { pushes } => {
                let keys: Vec<Option<String>> =
                    pushes.iter().map(|p| c.inventory_batch_key(p)).collect();
                let results = c.push_inventory_batch(pushes).await;
                assert_eq!(results.len(), pushes.len(), "one result per push");
                let results: Vec<Value> = pushes
                    .iter()
                    .zip(results)
                    .zip(keys)
                    .map(|((push, r), key)| match r {
                        Ok(r) => json!({ "sku": push.sku, "batch_key": key, "result": r }),
                        Err(e) => {
                            json!({ "sku": push.sku, "batch_key": key, "error": error_json(&e) })
                        }
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
            Call::Webhooks { received_at } => {
                let mut deliveries = Vec::new();
                for w in &s.webhooks {
                    let req = webhook_request(w, *received_at);
                    let mut d = json!({ "name": w.name });
                    d["outcome"] = match c.handle_webhook(&req).await {
                        Ok(WebhookOutcome::Fetch {
                            dedupe_key,
                            channel_order_ids,
                        }) => {
                            json!({ "kind": "fetch", "dedupe_key": dedupe_key, "ids": channel_order_ids })
                        }
                        Ok(WebhookOutcome::Ignored { dedupe_key, reason }) => {
                            json!({ "kind": "ignored", "dedupe_key": dedupe_key, "reason": reason })
                        }
                        Ok(other) => panic!("unexpected outcome {other:?}"),
                        Err(e) => error_json(&e),
                    };
                    deliveries.push(d);
                }
                json!({ "call": "webhooks", "deliveries": deliveries })
            }
        };
        results.push(result);
    }
    let acquired: Vec<&str> = pacer
        .acquired
        .lock()
        .unwrap()
        .iter()
        .map(|o| o.as_str())
        .collect();
    // One entry per hint, with the operations it was told to.
    let mut observed: Vec<Value> = Vec::new();
    for (op, h) in pacer.observed.lock().unwrap().iter() {
        let hint = json!({ "window": h.window, "capacity": h.capacity, "remaining": h.remaining });
        match observed.last_mut() {
            Some(last)
                if last["hint"] == hint
                    && !last["operations"]
                        .as_array()
                        .is_some_and(|o| o.contains(&json!(op.as_str()))) =>
            {
                if let Some(ops) = last["operations"].as_array_mut() {
                    ops.push(json!(op.as_str()));
                }
            }
            _ => observed.push(json!({ "hint": hint, "operations": [op.as_str()] })),
        }
    }
    results.push(json!({ "pacer": { "acquired": acquired, "observed": observed } }));
    let requests = server.finish().await;
    Run {
        orders,
        results,
        requests,
        pacer,
        tokens,
        connector: c,
    }
}
