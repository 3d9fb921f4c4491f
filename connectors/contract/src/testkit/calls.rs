//! What a connector's replay tests do with a fixture scenario: its
//! `calls.json` (the scenario.toml format only describes traffic), run
//! against the connector, each result in one golden form whatever the
//! channel. A channel crate keeps only what is its own: the settings a
//! scenario may override, building the connector, and the checks of what it
//! sent.
//!
//! ```json
//! { "config": { …the channel's overrides… },
//!   "clock": "2026-11-27T12:00:00Z",
//!   "clock_dependent_waits": false,
//!   "calls": [ { "call": "poll_all", "since": "2026-11-26T00:00:00Z", "now": "…" },
//!              { "call": "poll", "since": "…", "now": "…", "cursor": "previous" },
//!              { "call": "poll", "since": "…", "cursor": { …a stored cursor… } },
//!              { "call": "fetch_orders", "ids": ["…"] },
//!              { "call": "check" },
//!              { "call": "set_clock", "at": "…" },
//!              { "call": "push_inventory", "push": { …InventoryPush… } },
//!              { "call": "push_inventory_batch", "pushes": [ { …InventoryPush… }, … ] },
//!              { "call": "check_receipts" },
//!              { "call": "push_tracking", "order_id": "…", "lines": [ …canonical lines… ],
//!                "fulfillment": "merchant", "idempotency_key": "…", "shipment": { …Shipment… } },
//!              { "call": "webhooks", "received_at": "…" } ] }
//! ```
//!
//! `now` defaults to `since`, `received_at` to 2026-11-27T12:00:00Z.
//! `clock` is where the connector's own clock starts (token expiry, feed
//! checks), for a channel whose tests give it a [`TestClock`]; `set_clock`
//! moves that clock between calls. `check_receipts` asks about the receipt
//! of every push the previous push call answered `Pending`, in order.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Scenario, assert_golden_json};
use crate::{
    BoxFuture, Channel, Connector, ConnectorError, Currency, Cursor, Fulfillment, InventoryPush,
    InventoryResult, Line, NormalizedOrder, Operation, Order, OrderPage, OrderStatus, Pacer,
    PaymentStatus, Priority, RateHint, ReceiptStatus, Shipment, Totals, TrackingPush,
    WebhookOutcome,
};

/// A scenario's `calls.json`; `C` is the channel's settings overrides.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calls<C> {
    #[serde(default)]
    pub config: C,
    /// Where the connector's clock starts, for a channel whose tests give
    /// it one.
    #[serde(default)]
    pub clock: Option<DateTime<Utc>>,
    /// Waits computed from the wall clock (a channel's quota reset time) are
    /// shown as such in the golden results, not as numbers.
    #[serde(default)]
    pub clock_dependent_waits: bool,
    #[serde(default)]
    pub calls: Vec<Call>,
}

impl<C: DeserializeOwned + Default> Calls<C> {
    /// Reads the scenario's `calls.json`; a scenario without one makes no
    /// calls.
    pub fn load(s: &Scenario) -> Self {
        let path = s.dir.join("calls.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
pub enum Call {
    /// One page; `cursor` is `"previous"` (the last poll's), a stored cursor
    /// string, or a stored cursor that is JSON.
    Poll {
        since: DateTime<Utc>,
        #[serde(default)]
        now: Option<DateTime<Utc>>,
        #[serde(default)]
        cursor: Option<Value>,
    },
    /// Pages until caught up (`more == false`), twenty at the most.
    PollAll {
        since: DateTime<Utc>,
        #[serde(default)]
        now: Option<DateTime<Utc>>,
    },
    FetchOrders {
        ids: Vec<String>,
    },
    Check,
    /// Moves the connector's clock (the [`TestClock`] the run was given).
    SetClock {
        at: DateTime<Utc>,
    },
    PushInventory {
        push: InventoryPush,
    },
    /// Several pushes in one `push_inventory_batch`; one result per push.
    PushInventoryBatch {
        pushes: Vec<InventoryPush>,
    },
    /// Asks about the receipt of every push the previous push call
    /// answered `Pending`, in order.
    CheckReceipts,
    /// `fulfillment`: who ships the order (a channel refuses tracking for
    /// the orders it fulfils itself).
    PushTracking {
        order_id: String,
        #[serde(default)]
        lines: Vec<Line>,
        #[serde(default)]
        fulfillment: Fulfillment,
        idempotency_key: String,
        shipment: Shipment,
    },
    /// Verifies and parses every webhook of the scenario, in order.
    Webhooks {
        #[serde(default)]
        received_at: Option<DateTime<Utc>>,
    },
}

/// What running a scenario's calls produced.
#[derive(Debug, Default)]
pub struct CallsRun {
    /// Every order read, by poll, fetch or webhook, in that order.
    pub orders: Vec<NormalizedOrder>,
    /// The orders webhooks carried, in delivery order.
    pub webhook_orders: Vec<NormalizedOrder>,
    /// One golden value per call.
    pub results: Vec<Value>,
}

/// A connector's clock that a test sets: `set_clock` calls move it.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        TestClock(Arc::new(Mutex::new(at)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }

    /// The clock as a connector reads it.
    pub fn reader(&self) -> Arc<dyn Fn() -> DateTime<Utc> + Send + Sync> {
        let t = self.0.clone();
        Arc::new(move || *t.lock().unwrap())
    }
}

/// Runs `calls` against connector `c` of account `account`, which talks to
/// the replay server at `server_url`; `set_clock` calls move `clock`, the
/// connector's clock if its tests give it one. Messages that name the
/// server name `http://replay-server` in the results, so they do not depend
/// on its port.
pub async fn run_calls<C>(
    c: &dyn Connector,
    account: &str,
    scenario: &Scenario,
    calls: &Calls<C>,
    server_url: &str,
    clock: Option<&TestClock>,
) -> CallsRun {
    let mut run = CallsRun::default();
    let mut last_cursor: Option<Cursor> = None;
    // The receipts of the last push call's pending pushes, one per push.
    let mut receipts: Vec<String> = Vec::new();
    for call in &calls.calls {
        let result = match call {
            Call::Poll { since, now, cursor } => {
                let cursor = match cursor {
                    None => None,
                    Some(Value::String(p)) if p == "previous" => {
                        Some(last_cursor.clone().expect("a previous poll"))
                    }
                    Some(Value::String(stored)) => Some(Cursor(stored.clone())),
                    Some(stored) => Some(Cursor(stored.to_string())),
                };
                match c
                    .poll_orders(cursor.as_ref(), *since, now.unwrap_or(*since))
                    .await
                {
                    Ok(page) => {
                        let v = page_json(&page);
                        last_cursor = Some(page.next.clone());
                        run.orders.extend(page.orders);
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
                    match c
                        .poll_orders(cursor.as_ref(), *since, now.unwrap_or(*since))
                        .await
                    {
                        Ok(page) => {
                            pages.push(page_json(&page));
                            cursor = Some(page.next.clone());
                            run.orders.extend(page.orders);
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
                    run.orders.extend(found.orders);
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
            Call::SetClock { at } => {
                clock
                    .expect("set_clock: the run was given no clock to set")
                    .set(*at);
                json!({ "call": "set_clock", "at": at })
            }
            Call::PushInventory { push } => {
                let mut r = c.push_inventory_batch(std::slice::from_ref(push)).await;
                assert_eq!(r.len(), 1, "one result per push");
                receipts = pending_receipts(&r);
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
                receipts = pending_receipts(&r);
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
            Call::CheckReceipts => {
                let mut answers = Vec::new();
                for receipt in &receipts {
                    answers.push(match c.check_inventory_receipt(receipt).await {
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
                    });
                }
                json!({ "call": "check_receipts", "answers": answers })
            }
            Call::PushTracking {
                order_id,
                lines,
                fulfillment,
                idempotency_key,
                shipment,
            } => {
                let push = TrackingPush {
                    order: Order {
                        fulfillment: *fulfillment,
                        ..order_stub(account, c.channel(), order_id, lines.clone())
                    },
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
                for w in &scenario.webhooks {
                    let req = w.request(account, received_at.unwrap_or_else(default_received_at));
                    let outcome = match c.handle_webhook(&req).await {
                        Ok(WebhookOutcome::Orders {
                            dedupe_key,
                            orders,
                            rejected,
                        }) => {
                            let mut v = json!({
                                "kind": "orders",
                                "dedupe_key": dedupe_key,
                                "orders": orders.iter().map(|o| json!({ "id": o.order.id, "updated_at": o.order.updated_at })).collect::<Vec<_>>(),
                            });
                            if !rejected.is_empty() {
                                v["rejected"] = json!(rejected);
                            }
                            run.webhook_orders.extend(orders.iter().cloned());
                            run.orders.extend(orders);
                            v
                        }
                        Ok(WebhookOutcome::Fetch {
                            dedupe_key,
                            channel_order_ids,
                        }) => {
                            json!({ "kind": "fetch", "dedupe_key": dedupe_key, "ids": channel_order_ids })
                        }
                        Ok(WebhookOutcome::Ignored { dedupe_key, reason }) => {
                            json!({ "kind": "ignored", "dedupe_key": dedupe_key, "reason": reason })
                        }
                        Ok(WebhookOutcome::Respond {
                            status,
                            content_type,
                            body,
                        }) => json!({
                            "kind": "respond",
                            "status": status,
                            "content_type": content_type,
                            "body": String::from_utf8_lossy(&body),
                        }),
                        Err(e) => json!({ "kind": "error", "error": error_json(&e) }),
                    };
                    deliveries.push(json!({ "name": w.name, "outcome": outcome }));
                }
                json!({ "call": "webhooks", "deliveries": deliveries })
            }
        };
        let mut result: Value = serde_json::from_str(
            &result
                .to_string()
                .replace(server_url, "http://replay-server"),
        )
        .expect("still JSON");
        if calls.clock_dependent_waits {
            mask_waits(&mut result);
        }
        run.results.push(result);
    }
    run
}

/// The receipt of every push answered `Pending`, in push order.
fn pending_receipts(results: &[Result<InventoryResult, ConnectorError>]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| match r {
            Ok(InventoryResult::Pending { receipt, .. }) => Some(receipt.clone()),
            _ => None,
        })
        .collect()
}

/// Checks a scenario's run against its golden files (`expected/orders.json`,
/// `results.json`, `requests.json`: regenerate with `SWITCHYARD_BLESS=1`),
/// after checking that none of `secrets` shows in any of them.
pub fn assert_goldens(
    s: &Scenario,
    secrets: &[&str],
    orders: &[NormalizedOrder],
    results: &[Value],
    requests: Value,
) {
    let orders = Value::Array(orders.iter().map(order_json).collect());
    let results = Value::Array(results.to_vec());
    for (what, v) in [
        ("orders", &orders),
        ("results", &results),
        ("requests", &requests),
    ] {
        assert_no_secrets(s, secrets, what, v);
    }
    assert_golden_json(&s.expected("orders.json"), &orders);
    assert_golden_json(&s.expected("results.json"), &results);
    assert_golden_json(&s.expected("requests.json"), &requests);
}

/// Checks that none of `secrets` shows in `v`, what scenario `s` produced
/// as `what` (a golden file of a channel's own).
pub fn assert_no_secrets(s: &Scenario, secrets: &[&str], what: &str, v: &Value) {
    let text = v.to_string();
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{}: a secret leaked into {what}",
            s.name
        );
    }
}

/// The golden form of a connector error: its class and message, and the
/// wait a rate limit asked for.
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

/// When a call does not say: the fixtures' webhooks are signed for it.
pub fn default_received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

/// A canonical order as the daemon hands it to `push_tracking`: its ids and
/// the lines shipped; connectors read nothing else of it.
pub fn order_stub(
    account: &str,
    channel: Channel,
    channel_order_id: &str,
    lines: Vec<Line>,
) -> Order {
    let t = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
    Order {
        id: Order::make_id(account, channel_order_id),
        account: account.into(),
        channel,
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

/// Replaces every `retry_after_ms` number, and the wait a message names,
/// with a marker (tests assert the real figure apart).
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

/// A pacer that lets everything through and keeps what the connector asked
/// of it and told it.
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
