//! Shared by the replay tests: runs a fixture scenario's `calls.json` against
//! a strict replay server and collects what came out.
//!
//! `calls.json` says what the test does with a scenario (the scenario.toml
//! format only describes traffic), so adding a scenario stays adding a folder:
//!
//! ```json
//! { "config": { "listing_revisions_per_day": 2 },
//!   "calls": [ { "call": "poll_all", "since": "2026-11-26T00:00:00Z", "now": "2026-11-27T12:00:00Z" },
//!              { "call": "poll", "since": "…", "now": "…", "cursor": "previous" },
//!              { "call": "fetch_orders", "ids": ["12-34567-89012"] },
//!              { "call": "check" },
//!              { "call": "push_inventory", "push": { …InventoryPush… } },
//!              { "call": "push_inventory_batch", "pushes": [ { …InventoryPush… }, … ] },
//!              { "call": "push_tracking", "order_id": "…", "lines": [ …canonical lines… ],
//!                "idempotency_key": "…", "shipment": { …Shipment… } },
//!              { "call": "webhooks" } ] }
//! ```

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_contract::testkit::{HttpRequest, ReplayServer, Scenario, WebhookFixture};
use switchyard_contract::tokens::MemoryTokenStore;
use switchyard_contract::{
    BoxFuture, BuildContext, Channel, Connector, ConnectorError, Currency, Cursor, Fulfillment,
    InventoryPush, Line, NormalizedOrder, Operation, Order, OrderPage, OrderStatus, Pacer,
    PaymentStatus, Priority, RateHint, Shipment, Totals, TrackingPush, WebhookOutcome,
    WebhookRequest,
};
use switchyard_ebay::config::{
    REPLAY_CLIENT_ID, REPLAY_CLIENT_SECRET, REPLAY_REFRESH_TOKEN, REPLAY_VERIFICATION_TOKEN,
};
use switchyard_ebay::{EbayConnector, replay_ebay_settings};

pub const ACCOUNT: &str = "ebay-us";
pub const TOKEN_PATH: &str = "/identity/v1/oauth2/token";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ebay")
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// The access tokens the fixtures' token endpoint hands out.
pub fn fixture_access_tokens() -> Vec<String> {
    let mut out = Vec::new();
    for s in Scenario::load_all(&fixtures_dir()).unwrap() {
        for e in &s.exchanges {
            if e.path == TOKEN_PATH
                && let Ok(v) = serde_json::from_slice::<Value>(&e.response)
                && let Some(t) = v["access_token"].as_str()
            {
                out.push(t.to_owned());
            }
        }
    }
    out
}

/// Secrets that must never show in what the connector produces.
pub fn secrets() -> Vec<String> {
    let mut s = vec![
        REPLAY_CLIENT_SECRET.to_owned(),
        REPLAY_REFRESH_TOKEN.to_owned(),
        REPLAY_VERIFICATION_TOKEN.to_owned(),
    ];
    s.extend(fixture_access_tokens());
    s
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    #[serde(default)]
    pub listing_revisions_per_day: Option<u32>,
    #[serde(default)]
    pub marketplace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calls {
    #[serde(default)]
    pub config: ConfigOverrides,
    /// Waits computed from the wall clock (time to Pacific midnight) are
    /// shown as such in the golden results, not as numbers.
    #[serde(default)]
    pub clock_dependent_waits: bool,
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
    /// Pages until caught up (`more == false`).
    PollAll {
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    FetchOrders {
        ids: Vec<String>,
    },
    Check,
    PushInventory {
        push: InventoryPush,
    },
    PushInventoryBatch {
        pushes: Vec<InventoryPush>,
    },
    PushTracking {
        order_id: String,
        #[serde(default)]
        lines: Vec<Line>,
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

/// A pacer that lets everything through and keeps what the connector told it.
#[derive(Default)]
pub struct RecordingPacer {
    pub acquired: Mutex<Vec<Operation>>,
    pub hints: Mutex<Vec<(Operation, RateHint)>>,
}

impl Pacer for RecordingPacer {
    fn acquire(&self, operation: Operation, _cost: u32) -> BoxFuture<'_, ()> {
        self.acquired.lock().unwrap().push(operation);
        Box::pin(std::future::ready(()))
    }
    fn observe(&self, operation: Operation, hint: RateHint) {
        self.hints.lock().unwrap().push((operation, hint));
    }
}

pub struct Built {
    pub connector: EbayConnector,
    pub tokens: Arc<MemoryTokenStore>,
    pub pacer: Arc<RecordingPacer>,
}

pub fn connector(base_url: &str, overrides: &ConfigOverrides) -> Built {
    let mut settings = replay_ebay_settings(ACCOUNT);
    if let Some(n) = overrides.listing_revisions_per_day {
        settings.listing_revisions_per_day = n;
    }
    if let Some(m) = &overrides.marketplace_id {
        settings.marketplace_id = m.clone();
    }
    let tokens = MemoryTokenStore::shared();
    let pacer = Arc::new(RecordingPacer::default());
    let connector = EbayConnector::new(
        settings,
        BuildContext {
            account: ACCOUNT.into(),
            base_url: base_url.into(),
            http: reqwest::Client::new(),
            tokens: tokens.clone(),
            pacer: pacer.clone(),
        },
    )
    .expect("fixture settings are valid");
    Built {
        connector,
        tokens,
        pacer,
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

/// The golden form of a normalized order: the canonical order and its notes
/// (`raw` is the input itself, already in the fixture).
pub fn order_json(o: &NormalizedOrder) -> Value {
    json!({ "order": o.order, "notes": o.notes })
}

pub fn webhook_request(w: &WebhookFixture) -> WebhookRequest {
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

/// A canonical order as the daemon would hand it to `push_tracking`.
pub fn order_stub(channel_order_id: &str, lines: Vec<Line>) -> Order {
    let t = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
    Order {
        id: Order::make_id(ACCOUNT, channel_order_id),
        account: ACCOUNT.into(),
        channel: Channel::Ebay,
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
        lines,
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

fn page_json(page: &OrderPage) -> Value {
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

/// What running a scenario produced.
pub struct Run {
    pub orders: Vec<NormalizedOrder>,
    /// One entry per call.
    pub results: Vec<Value>,
    pub requests: Vec<HttpRequest>,
    pub tokens: Arc<MemoryTokenStore>,
    pub pacer: Arc<RecordingPacer>,
}

pub async fn run(s: &Scenario) -> Run {
    let calls = load_calls(s);
    let server = ReplayServer::start(s).await;
    let built = connector(&server.url(), &calls.config);
    let c = &built.connector;
    let mut orders = Vec::new();
    let mut results = Vec::new();
    let mut last_cursor: Option<Cursor> = None;
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
            Call::PushInventory { push } => {
                let mut r = c.push_inventory_batch(std::slice::from_ref(push)).await;
                assert_eq!(r.len(), 1, "one result per push");
                match r.remove(0) {
                    Ok(r) => json!({ "call": "push_inventory", "sku": push.sku, "result": r }),
                    Err(e) => {
                        json!({ "call": "push_inventory", "sku": push.sku, "error": error_json(&e) })
                    }
                }
            }
            Call::PushInventoryBatch { pushes } => {
                let keys: Vec<Option<String>> =
                    pushes.iter().map(|p| c.inventory_batch_key(p)).collect();
                let r = c.push_inventory_batch(pushes).await;
                assert_eq!(r.len(), pushes.len(), "one result per push");
                let r: Vec<Value> = pushes
                    .iter()
                    .zip(r)
                    .zip(keys)
                    .map(|((push, r), key)| match r {
                        Ok(r) => json!({ "sku": push.sku, "batch_key": key, "result": r }),
                        Err(e) => {
                            json!({ "sku": push.sku, "batch_key": key, "error": error_json(&e) })
                        }
                    })
                    .collect();
                json!({ "call": "push_inventory_batch", "results": r })
            }
            Call::PushTracking {
                order_id,
                lines,
                idempotency_key,
                shipment,
            } => {
                let push = TrackingPush {
                    order: order_stub(order_id, lines.clone()),
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
                    let outcome = match c.handle_webhook(&req).await {
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
                        Err(e) => json!({ "kind": "error", "error": error_json(&e) }),
                    };
                    deliveries.push(json!({ "name": w.name, "outcome": outcome }));
                }
                json!({ "call": "webhooks", "deliveries": deliveries })
            }
        };
        results.push(result);
    }
    // Messages that name the token endpoint name the replay server's port.
    let url = server.url();
    let results = results
        .into_iter()
        .map(|r| {
            let mut r: Value =
                serde_json::from_str(&r.to_string().replace(&url, "http://replay-server"))
                    .expect("still JSON");
            if calls.clock_dependent_waits {
                mask_waits(&mut r);
            }
            r
        })
        .collect();
    let requests = server.finish().await;
    Run {
        orders,
        results,
        requests,
        tokens: built.tokens,
        pacer: built.pacer,
    }
}

/// Replaces every `retry_after_ms` number with a marker (asserted apart).
fn mask_waits(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if k == "retry_after_ms" && x.is_number() {
                    *x = json!("(until the clock says)");
                } else {
                    mask_waits(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_waits),
        Value::String(text) => {
            if let Some(start) = text.find("(retry after ")
                && let Some(len) = text[start..].find(" ms)")
            {
                text.replace_range(start..start + len + 4, "(retry after the clock says)");
            }
        }
        _ => {}
    }
}

/// The Basic credentials every token request must carry.
pub fn basic_credentials() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{REPLAY_CLIENT_ID}:{REPLAY_CLIENT_SECRET}"))
    )
}
