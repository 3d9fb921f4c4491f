//! Shared by the replay tests: runs a fixture scenario's `calls.json`
//! against a strict replay server (Amazon) and a loopback storage server
//! (the pre-signed URLs feed documents go to), and collects what came out.
//!
//! `calls.json` says what the test does with a scenario (the scenario.toml
//! format only describes traffic), so adding a scenario is adding a folder:
//!
//! ```json
//! { "clock": "2026-11-27T12:00:00Z",
//!   "fresh_token": false,
//!   "calls": [ { "call": "poll", "since": "…", "now": "…", "cursor": "previous" },
//!              { "call": "poll_all", "since": "…", "now": "…" },
//!              { "call": "fetch_orders", "ids": ["…"] },
//!              { "call": "check" },
//!              { "call": "set_clock", "at": "…" },
//!              { "call": "push_inventory_batch", "pushes": [ { …InventoryPush… } ] },
//!              { "call": "check_receipts" },
//!              { "call": "push_tracking", "order_id": "…", "fulfillment": "merchant",
//!                "idempotency_key": "…", "shipment": { …Shipment… } },
//!              { "call": "webhooks" } ] }
//! ```
//!
//! `clock` is the connector's clock (token expiry, feed checks); the token
//! store starts with an access token valid for an hour from it, unless
//! `fresh_token` is true. `check_receipts` asks about every receipt the
//! previous pushes answered `Pending`, in order. In exchange responses,
//! `{{storage}}` stands for the storage server's URL.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_amazon::{AmazonConnector, Clock, fixture_settings};
use switchyard_contract::testkit::{
    HttpRequest, HttpResponse, LoopbackServer, ReplayServer, Scenario,
};
use switchyard_contract::tokens::MemoryTokenStore;
use switchyard_contract::{
    BuildContext, Channel, Connector, ConnectorError, Currency, Cursor, Fulfillment, InventoryPush,
    InventoryResult, NormalizedOrder, Order, OrderStatus, Pacer, PaymentStatus, Priority,
    ReceiptStatus, Secret, Shipment, TokenSet, TokenStore, Totals, TrackingPush, Unpaced,
    WebhookOutcome, WebhookRequest,
};

pub const ACCOUNT: &str = "amz-us";
pub const ACCESS_TOKEN: &str = "Atza|fixture-access-token";
pub const REFRESHED_TOKEN: &str = "Atza|fixture-refreshed-token";
pub const TOKEN_PATH: &str = "/auth/o2/token";
pub use switchyard_amazon::config::replay::*;

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/amazon")
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calls {
    pub clock: DateTime<Utc>,
    #[serde(default)]
    pub fresh_token: bool,
    #[serde(default)]
    pub calls: Vec<Call>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
pub enum Call {
    /// One page; `cursor: "previous"` continues from the last poll's cursor.
    Poll {
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        #[serde(default)]
        cursor: Option<String>,
    },
    /// Pages until caught up (`more == false`), all at `now`.
    PollAll {
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    FetchOrders {
        ids: Vec<String>,
    },
    Check,
    SetClock {
        at: DateTime<Utc>,
    },
    PushInventoryBatch {
        pushes: Vec<InventoryPush>,
    },
    CheckReceipts,
    PushTracking {
        order_id: String,
        #[serde(default)]
        fulfillment: Fulfillment,
        idempotency_key: String,
        shipment: Shipment,
    },
    Webhooks,
}

pub fn load_calls(s: &Scenario) -> Calls {
    let path = s.dir.join("calls.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub struct TestClock(pub Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        TestClock(Arc::new(Mutex::new(at)))
    }

    pub fn clock(&self) -> Clock {
        let t = self.0.clone();
        Arc::new(move || *t.lock().unwrap())
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }
}

/// A connector on `base_url` with the fixture settings; the token store
/// holds an access token valid for an hour from `clock` unless `fresh`.
pub fn connector(
    base_url: &str,
    clock: &TestClock,
    fresh: bool,
) -> (AmazonConnector, Arc<MemoryTokenStore>) {
    connector_paced(base_url, clock, fresh, Unpaced::shared())
}

/// [`connector`] with the given pacer.
pub fn connector_paced(
    base_url: &str,
    clock: &TestClock,
    fresh: bool,
    pacer: Arc<dyn Pacer>,
) -> (AmazonConnector, Arc<MemoryTokenStore>) {
    let store = MemoryTokenStore::shared();
    if !fresh {
        let now = *clock.0.lock().unwrap();
        let seeded = TokenSet {
            access_token: Some(Secret::new(ACCESS_TOKEN)),
            access_expires_at: Some(now + Duration::hours(1)),
            refresh_token: Some(Secret::new(REFRESH_TOKEN)),
        };
        futures_ready(store.save(&seeded)).expect("the memory store saves");
    }
    let ctx = BuildContext {
        account: ACCOUNT.into(),
        base_url: base_url.into(),
        http: reqwest::Client::new(),
        tokens: store.clone(),
        pacer,
    };
    let c = AmazonConnector::with_clock(fixture_settings(), ctx, clock.clock())
        .expect("fixture settings are valid");
    (c, store)
}

/// The memory store saves at once; its future is ready on first poll.
fn futures_ready<T>(f: switchyard_contract::BoxFuture<'_, T>) -> T {
    let mut f = f;
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the memory token store never waits"),
    }
}

pub fn error_json(e: &ConnectorError) -> Value {
    let mut v = json!({ "class": e.class(), "message": e.to_string() });
    if let ConnectorError::RateLimited { retry_after, .. } = e {
        v["retry_after_ms"] =
            json!(retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
    }
    v
}

/// The golden form of a normalized order: the canonical order and its notes.
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

/// A canonical order as the daemon hands it to `push_tracking`; the
/// connector reads its channel order id and who fulfils it.
pub fn order_stub(channel_order_id: &str, fulfillment: Fulfillment) -> Order {
    let t = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
    Order {
        id: Order::make_id(ACCOUNT, channel_order_id),
        account: ACCOUNT.into(),
        channel: Channel::Amazon,
        channel_order_id: channel_order_id.into(),
        number: Some(channel_order_id.into()),
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
        fulfillment,
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

/// The storage behind pre-signed URLs: takes uploads, serves the scenario's
/// `storage/` files.
pub struct Storage {
    pub server: LoopbackServer,
    pub uploads: Arc<Mutex<Vec<HttpRequest>>>,
}

impl Storage {
    pub async fn start(dir: &Path) -> Storage {
        let uploads = Arc::new(Mutex::new(Vec::new()));
        let seen = uploads.clone();
        let root = dir.join("storage");
        let server = LoopbackServer::start(Arc::new(move |req: HttpRequest| {
            if req.method == "PUT" {
                seen.lock().unwrap().push(req);
                return HttpResponse::new(200, "");
            }
            let file = root.join(req.path.trim_start_matches('/'));
            match std::fs::read(&file) {
                Ok(bytes) => HttpResponse::new(200, bytes),
                Err(_) => HttpResponse::new(404, "<Error><Code>NoSuchKey</Code></Error>"),
            }
        }))
        .await
        .expect("bind the storage server");
        Storage { server, uploads }
    }
}

/// What running a scenario produced.
pub struct Run {
    pub orders: Vec<NormalizedOrder>,
    pub results: Vec<Value>,
    pub requests: Vec<HttpRequest>,
    pub uploads: Vec<HttpRequest>,
    pub tokens: Arc<MemoryTokenStore>,
}

pub async fn run(s: &Scenario) -> Run {
    run_paced(s, Unpaced::shared()).await
}

/// [`run`] with the given pacer.
pub async fn run_paced(s: &Scenario, pacer: Arc<dyn Pacer>) -> Run {
    let calls = load_calls(s);
    let storage = Storage::start(&s.dir).await;
    let mut exchanges = s.exchanges.clone();
    for e in &mut exchanges {
        let text =
            String::from_utf8_lossy(&e.response).replace("{{storage}}", &storage.server.url());
        e.response = text.into_bytes();
    }
    let server = ReplayServer::from_exchanges(exchanges, s.ordered).await;
    let clock = TestClock::new(calls.clock);
    let (c, tokens) = connector_paced(&server.url(), &clock, calls.fresh_token, pacer);
    let mut orders = Vec::new();
    let mut results = Vec::new();
    let mut last_cursor: Option<Cursor> = None;
    let mut receipts: Vec<String> = Vec::new();
    for call in &calls.calls {
        let result = match call {
            Call::Poll { since, now, cursor } => {
                let cursor = match cursor.as_deref() {
                    None => None,
                    Some("previous") => Some(last_cursor.clone().expect("a previous poll")),
                    Some(other) => Some(Cursor(other.to_owned())),
                };
                match c.poll_orders(cursor.as_ref(), *since, *now).await {
                    Ok(page) => {
                        let v = page_json(&page);
                        last_cursor = Some(page.next.clone());
                        orders.extend(page.orders);
                        json!({ "call": "poll", "now": now, "page": v })
                    }
                    Err(e) => json!({ "call": "poll", "now": now, "error": error_json(&e) }),
                }
            }
            Call::PollAll { since, now } => {
                let mut pages = Vec::new();
                let mut cursor: Option<Cursor> = None;
                let mut error = None;
                for _ in 0..50 {
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
                    json!({ "call": "fetch_orders", "orders": ids,
                            "missing": found.missing, "rejected": found.rejected })
                }
                Err(e) => json!({ "call": "fetch_orders", "error": error_json(&e) }),
            },
            Call::Check => match c.check().await {
                Ok(()) => json!({ "call": "check", "ok": true }),
                Err(e) => json!({ "call": "check", "error": error_json(&e) }),
            },
            Call::SetClock { at } => {
                clock.set(*at);
                json!({ "call": "set_clock", "at": at })
            }
            Call::PushInventoryBatch { pushes } => {
                let out = c.push_inventory_batch(pushes).await;
                assert_eq!(out.len(), pushes.len(), "one result per push");
                receipts.clear();
                let results: Vec<Value> = pushes
                    .iter()
                    .zip(out)
                    .map(|(push, r)| match r {
                        Ok(r) => {
                            if let InventoryResult::Pending { receipt, .. } = &r {
                                receipts.push(receipt.clone());
                            }
                            json!({ "sku": push.sku, "result": r })
                        }
                        Err(e) => json!({ "sku": push.sku, "error": error_json(&e) }),
                    })
                    .collect();
                json!({ "call": "push_inventory_batch", "results": results })
            }
            Call::CheckReceipts => {
                let mut answers = Vec::new();
                for receipt in &receipts {
                    let a = match c.check_inventory_receipt(receipt).await {
                        Ok(ReceiptStatus::Pending { check_after }) => {
                            json!({ "pending": { "check_after": check_after } })
                        }
                        Ok(ReceiptStatus::Done { results }) => json!({ "done": results
                            .into_iter()
                            .map(|(sku, r)| match r {
                                Ok(r) => json!({ "sku": sku, "result": r }),
                                Err(e) => json!({ "sku": sku, "error": error_json(&e) }),
                            })
                            .collect::<Vec<_>>() }),
                        Err(e) => json!({ "error": error_json(&e) }),
                    };
                    answers.push(a);
                }
                json!({ "call": "check_receipts", "answers": answers })
            }
            Call::PushTracking {
                order_id,
                fulfillment,
                idempotency_key,
                shipment,
            } => {
                let push = TrackingPush {
                    order: order_stub(order_id, *fulfillment),
                    shipment: shipment.clone(),
                    idempotency_key: idempotency_key.clone(),
                };
                match c.push_tracking(&push).await {
                    Ok(r) => json!({ "call": "push_tracking", "order_id": order_id, "result": r }),
                    Err(e) => {
                        json!({ "call": "push_tracking", "order_id": order_id, "error": error_json(&e) })
                    }
                }
            }
            Call::Webhooks => {
                let mut deliveries = Vec::new();
                for w in &s.webhooks {
                    let outcome = match c.handle_webhook(&webhook_request(w)).await {
                        Ok(WebhookOutcome::Fetch {
                            dedupe_key,
                            channel_order_ids,
                        }) => json!({ "kind": "fetch", "dedupe_key": dedupe_key,
                                      "channel_order_ids": channel_order_ids }),
                        Ok(WebhookOutcome::Ignored { dedupe_key, reason }) => {
                            json!({ "kind": "ignored", "dedupe_key": dedupe_key, "reason": reason })
                        }
                        Ok(other) => panic!("unexpected outcome {other:?}"),
                        Err(e) => json!({ "error": error_json(&e) }),
                    };
                    deliveries.push(json!({ "name": w.name, "outcome": outcome }));
                }
                json!({ "call": "webhooks", "deliveries": deliveries })
            }
        };
        results.push(result);
    }
    let mut rates = serde_json::Map::new();
    for op in switchyard_contract::Operation::ALL {
        let l = c.rate_limit(op);
        rates.insert(op.to_string(), json!([l.per_second, l.burst]));
    }
    results.push(json!({ "rate_limits": rates }));
    let requests = server.finish().await;
    let uploads = storage.uploads.lock().unwrap().clone();
    Run {
        orders,
        results,
        requests,
        uploads,
        tokens,
    }
}
