//! A simulated Etsy shop (feature `sim`), for `switchyard demo` and daemon
//! tests: it answers the calls whose answer depends on what happened before
//! (a recorded answer cannot), from state it learns from the recorded
//! fixtures. In the daemon's simulator ([`simulator`]) it holds the demo
//! scenario's receipts and listings, moved to the present; `switchyard
//! replay` gets none, so that a scenario replays as it was recorded.
//!
//! - The token endpoint rotates for real: each refresh spends the refresh
//!   token it is given (the first one it sees is taken as issued) and hands
//!   out a new pair; receipts and listings answer 401 to an access token it
//!   did not issue, unless it has issued none yet (the configured one).
//! - Receipts (`getShopReceipts` with Etsy's filters, sorting and paging,
//!   `getShopReceipt`) are the ones in the fixtures' answers; a tracking push
//!   (`createReceiptShipment`) adds a shipment and marks the receipt shipped,
//!   so the next read shows it.
//! - Listings (`getListingsByShop`, `getListingInventory`) are the recorded
//!   inventories; `updateListingInventory` *replaces* the inventory with the
//!   body, as Etsy does, so a write that leaves products out loses them here
//!   too, and it refuses read-only fields and Money prices, as the published
//!   description does.
//! - Every answer carries Etsy's limit headers, counting down a day's budget.

use std::any::Any;
use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchyard_contract::AccountSettings;
use switchyard_contract::testkit::{
    ChannelSim, HttpRequest, HttpResponse, Scenario, SimMode, WebhookFixture,
};

use crate::config::DEFAULT_TOKEN_PATH;
use crate::settings::EtsySettings;
use crate::webhook::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// The scenario whose receipts and listings the daemon's simulator holds.
const DEMO_SCENARIO: &str = "demo";

/// Etsy's default limits.
const PER_SECOND: u32 = 10;
const PER_DAY: u32 = 10_000;

/// The simulated shop.
#[derive(Debug, Default)]
pub struct Shop {
    receipts: BTreeMap<u64, Value>,
    inventories: BTreeMap<u64, Value>,
    /// The refresh token that works now; `None` until the first refresh.
    refresh_token: Option<String>,
    access_tokens: Vec<String>,
    issued: u64,
    next_id: u64,
    calls_today: u32,
    /// The time receipts changed here are stamped with (epoch seconds).
    clock: i64,
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_matches('/').split('/').collect()
}

/// Adds `delta` seconds to every epoch time in `v` (`*_timestamp`,
/// `expected_ship_date`), however deep.
fn shift_times(v: &mut Value, delta: i64) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let is_time = k.ends_with("_timestamp") || k == "expected_ship_date";
                match child.as_i64() {
                    Some(t) if is_time => *child = json!(t + delta),
                    _ => shift_times(child, delta),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| shift_times(i, delta)),
        _ => {}
    }
}

/// A float price Etsy's write takes, back in hundredths (0 for a price no
/// amount can hold).
fn cents(price: f64) -> i64 {
    rust_decimal::Decimal::try_from(price)
        .ok()
        .and_then(|d| d.checked_mul(rust_decimal::Decimal::ONE_HUNDRED))
        .and_then(|d| i64::try_from(d.round()).ok())
        .unwrap_or_default()
}

fn number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

impl Shop {
    /// Learns receipts and listing inventories from a recorded answer to
    /// `method path` (anything else is ignored).
    pub fn learn_answer(&mut self, method: &str, path: &str, body: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let parts = segments(path);
        match (method, parts.as_slice()) {
            ("GET", ["v3", "application", "shops", _, "receipts"]) => {
                for r in v["results"].as_array().into_iter().flatten() {
                    self.learn_receipt(r);
                }
            }
            ("GET", ["v3", "application", "shops", _, "receipts", _]) => self.learn_receipt(&v),
            ("GET", ["v3", "application", "listings", id, "inventory"]) => {
                if let (Ok(id), true) = (id.parse::<u64>(), v["products"].is_array()) {
                    self.inventories.entry(id).or_insert(v);
                }
            }
            _ => {}
        }
    }

    fn learn_receipt(&mut self, r: &Value) {
        if let Some(id) = number(&r["receipt_id"]) {
            let t = r["update_timestamp"].as_i64().unwrap_or_default();
            self.clock = self.clock.max(t);
            self.receipts.entry(id).or_insert_with(|| r.clone());
        }
    }

    /// Moves every receipt's times by one amount so that the newest change
    /// is `now` (epoch seconds): the recorded receipts are then recent
    /// whenever the demo runs, and a first sync of the last days finds them.
    pub fn rebase(&mut self, now: i64) {
        let newest = self
            .receipts
            .values()
            .filter_map(|r| r["update_timestamp"].as_i64())
            .max();
        let Some(delta) = newest.map(|n| now - n) else {
            return;
        };
        for r in self.receipts.values_mut() {
            shift_times(r, delta);
        }
        self.clock += delta;
    }

    /// Sets the calls the app has made today (from 0 up to the daily
    /// limit): what `x-remaining-today` counts down from.
    pub fn set_calls_today(&mut self, calls: u32) {
        self.calls_today = calls.min(PER_DAY);
    }

    /// What the shop shows as the quantity of `sku` (its first offering).
    pub fn available(&self, sku: &str) -> Option<i64> {
        self.inventories.values().find_map(|inv| {
            inv["products"]
                .as_array()?
                .iter()
                .find(|p| p["sku"] == sku)
                .and_then(|p| p["offerings"][0]["quantity"].as_i64())
        })
    }

    /// Tracking codes the receipt shows, oldest first.
    pub fn tracking_codes(&self, receipt_id: u64) -> Vec<String> {
        self.receipts
            .get(&receipt_id)
            .and_then(|r| r["shipments"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s["tracking_code"].as_str().map(str::to_owned))
            .collect()
    }

    /// Answers a request under the account's base URL; `None` for one this
    /// shop does not simulate (the recorded answers then apply).
    pub fn answer(&mut self, req: &HttpRequest) -> Option<HttpResponse> {
        let parts = segments(&req.path);
        if req.path == DEFAULT_TOKEN_PATH && req.method == "POST" {
            return Some(self.refresh(req));
        }
        let known = matches!(
            parts.as_slice(),
            ["v3", "application", "shops", _, "receipts", ..]
                | ["v3", "application", "shops", _, "listings"]
                | ["v3", "application", "listings", _, "inventory"]
        );
        if !known {
            return None;
        }
        if !self.authorized(req) {
            return Some(self.reply(401, json!({"error": "invalid_token"})));
        }
        let (status, body) = match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["v3", "application", "shops", _, "receipts"]) => {
                (200, self.receipts_page(req))
            }
            ("GET", ["v3", "application", "shops", _, "receipts", id]) => {
                match id.parse().ok().and_then(|id: u64| self.receipts.get(&id)) {
                    Some(r) => (200, r.clone()),
                    None => (404, json!({"error": format!("Receipt {id} not found")})),
                }
            }
            ("POST", ["v3", "application", "shops", _, "receipts", id, "tracking"]) => {
                self.ship(id, req)
            }
            ("GET", ["v3", "application", "shops", _, "listings"]) => (200, self.listings(req)),
            ("GET", ["v3", "application", "listings", id, "inventory"]) => {
                match id
                    .parse()
                    .ok()
                    .and_then(|id: u64| self.inventories.get(&id))
                {
                    Some(inv) => (200, inv.clone()),
                    None => (
                        404,
                        json!({"error": format!("Could not find a Listing with listing_id = {id}")}),
                    ),
                }
            }
            ("PUT", ["v3", "application", "listings", id, "inventory"]) => self.replace(id, req),
            _ => return None,
        };
        Some(self.reply(status, body))
    }

    fn reply(&mut self, status: u16, body: Value) -> HttpResponse {
        self.calls_today = self.calls_today.saturating_add(1);
        HttpResponse::json(status, &body)
            .with_header("x-limit-per-second", &PER_SECOND.to_string())
            .with_header("x-remaining-this-second", &(PER_SECOND - 1).to_string())
            .with_header("x-limit-per-day", &PER_DAY.to_string())
            .with_header(
                "x-remaining-today",
                &PER_DAY.saturating_sub(self.calls_today).to_string(),
            )
    }

    fn authorized(&self, req: &HttpRequest) -> bool {
        let bearer = req
            .header("authorization")
            .and_then(|b| b.strip_prefix("Bearer "));
        match bearer {
            None => false,
            Some(_) if self.access_tokens.is_empty() => true,
            Some(t) => self.access_tokens.iter().any(|a| a == t),
        }
    }

    fn refresh(&mut self, req: &HttpRequest) -> HttpResponse {
        let form = req.body_form();
        let given = form
            .iter()
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v.clone());
        let grant = form
            .iter()
            .any(|(k, v)| k == "grant_type" && v == "refresh_token");
        let fits = match (&self.refresh_token, &given) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(current), Some(g)) => current == g,
        };
        if !grant || !fits {
            return self.reply(
                400,
                json!({"error": "invalid_grant", "error_description": "refresh token is invalid, expired or already used"}),
            );
        }
        self.issued += 1;
        let access = format!("sim-access-{}", self.issued);
        let refresh = format!("sim-refresh-{}", self.issued);
        self.access_tokens.push(access.clone());
        self.refresh_token = Some(refresh.clone());
        self.reply(
            200,
            json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": refresh}),
        )
    }

    fn receipts_page(&self, req: &HttpRequest) -> Value {
        let q = |name: &str| req.query_param(name).and_then(|v| v.parse::<i64>().ok());
        let by_created = req.query_param("sort_on") == Some("created");
        let key = |r: &Value| {
            let field = if by_created {
                "create_timestamp"
            } else {
                "update_timestamp"
            };
            r[field].as_i64().unwrap_or_default()
        };
        let mut matching: Vec<&Value> = self
            .receipts
            .values()
            .filter(|r| {
                q("min_last_modified").is_none_or(|m| r["update_timestamp"].as_i64() >= Some(m))
            })
            .filter(|r| q("min_created").is_none_or(|m| r["create_timestamp"].as_i64() >= Some(m)))
            .collect();
        matching.sort_by_key(|r| (key(r), number(&r["receipt_id"])));
        if matches!(
            req.query_param("sort_order"),
            None | Some("desc" | "descending" | "down")
        ) {
            matching.reverse();
        }
        let offset = usize::try_from(q("offset").unwrap_or(0)).unwrap_or(0);
        let limit = usize::try_from(q("limit").unwrap_or(25).clamp(1, 100)).unwrap_or(25);
        let results: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|r| (*r).clone())
            .collect();
        json!({ "count": matching.len(), "results": results })
    }

    fn ship(&mut self, id: &str, req: &HttpRequest) -> (u16, Value) {
        let Some(receipt) = id
            .parse()
            .ok()
            .and_then(|id: u64| self.receipts.get_mut(&id))
        else {
            return (404, json!({"error": format!("Receipt {id} not found")}));
        };
        let form = req.body_form();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        self.clock += 60;
        self.next_id += 1;
        let shipment = json!({
            "receipt_shipping_id": 880_000 + self.next_id,
            "shipment_notification_timestamp": self.clock,
            "carrier_name": field("carrier_name").unwrap_or_else(|| "other".into()),
            "tracking_code": field("tracking_code"),
        });
        if !receipt["shipments"].is_array() {
            receipt["shipments"] = json!([]);
        }
        if let Some(list) = receipt["shipments"].as_array_mut() {
            list.push(shipment);
        }
        receipt["is_shipped"] = json!(true);
        receipt["status"] = json!("Completed");
        // Real Etsy may not move it (the connector's resweeps cover that);
        // here it does, so the next poll shows the shipment at once.
        receipt["update_timestamp"] = json!(self.clock);
        receipt["updated_timestamp"] = json!(self.clock);
        for t in receipt["transactions"].as_array_mut().into_iter().flatten() {
            t["shipped_timestamp"] = json!(self.clock);
        }
        (200, receipt.clone())
    }

    fn listings(&self, req: &HttpRequest) -> Value {
        let offset = req
            .query_param("offset")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let limit = req
            .query_param("limit")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(25)
            .clamp(1, 100);
        let active: Vec<Value> = self
            .inventories
            .iter()
            .filter(|(_, inv)| {
                inv["listing"]["state"]
                    .as_str()
                    .is_none_or(|s| s == "active")
            })
            .map(|(id, inv)| {
                let skus: Vec<&Value> = inv["products"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| &p["sku"])
                    .filter(|s| s.is_string())
                    .collect();
                json!({"listing_id": id, "state": "active", "skus": skus})
            })
            .collect();
        let page: Vec<Value> = active.iter().skip(offset).take(limit).cloned().collect();
        json!({"count": active.len(), "results": page})
    }

    /// Etsy's full replace: the body becomes the inventory.
    fn replace(&mut self, id: &str, req: &HttpRequest) -> (u16, Value) {
        let Some(id) = id
            .parse::<u64>()
            .ok()
            .filter(|id| self.inventories.contains_key(id))
        else {
            return (
                404,
                json!({"error": format!("Could not find a Listing with listing_id = {id}")}),
            );
        };
        let Some(body) = req.body_json() else {
            return (400, json!({"error": "products is required"}));
        };
        let Some(products) = body["products"].as_array() else {
            return (400, json!({"error": "products is required"}));
        };
        let currency =
            self.inventories[&id]["products"][0]["offerings"][0]["price"]["currency_code"]
                .as_str()
                .unwrap_or("USD")
                .to_owned();
        let mut stored = Vec::with_capacity(products.len());
        for p in products {
            if p.get("product_id").is_some() || p.get("is_deleted").is_some() {
                return (
                    400,
                    json!({"error": "product_id and is_deleted are read-only"}),
                );
            }
            let mut offerings = Vec::new();
            for o in p["offerings"].as_array().into_iter().flatten() {
                let (Some(price), Some(quantity)) = (o["price"].as_f64(), o["quantity"].as_i64())
                else {
                    return (
                        400,
                        json!({"error": "each offering needs a numeric price and quantity"}),
                    );
                };
                self.next_id += 1;
                offerings.push(json!({
                    "offering_id": 990_000 + self.next_id,
                    "quantity": quantity,
                    "is_enabled": o["is_enabled"].as_bool().unwrap_or(true),
                    "is_deleted": false,
                    "price": {"amount": cents(price), "divisor": 100, "currency_code": currency},
                    "readiness_state_id": o["readiness_state_id"],
                }));
            }
            self.next_id += 1;
            stored.push(json!({
                "product_id": 970_000 + self.next_id,
                "sku": p["sku"],
                "is_deleted": false,
                "offerings": offerings,
                "property_values": p["property_values"],
            }));
        }
        let listing = self.inventories[&id]["listing"].clone();
        let mut inventory = body.clone();
        inventory["products"] = Value::Array(stored);
        let answer = inventory.clone();
        if !listing.is_null() {
            inventory["listing"] = listing;
        }
        self.inventories.insert(id, inventory);
        (200, answer)
    }
}

/// The registry's simulator for Etsy: the shop for the demo and the
/// daemon's tests; none for `switchyard replay`, whose scenarios replay
/// from their recorded answers alone (a 429 stays a 429).
pub fn simulator(mode: SimMode) -> Option<Box<dyn ChannelSim>> {
    match mode {
        SimMode::Demo => Some(Box::new(Shop::default())),
        SimMode::Replay => None,
    }
}

impl ChannelSim for Shop {
    /// The demo scenario's receipts and listings only: the others record
    /// failures and edge cases the demo is not about.
    fn learn(&mut self, scenario: &Scenario) {
        if scenario.name != DEMO_SCENARIO {
            return;
        }
        for e in scenario.exchanges.iter().filter(|e| e.status == 200) {
            self.learn_answer(&e.method, &e.path, &e.response);
        }
    }

    /// The receipts are moved to now, so a first sync of the last days
    /// finds them whenever the demo runs.
    fn ready(&mut self) {
        self.rebase(chrono::Utc::now().timestamp());
    }

    fn answer(&mut self, req: &HttpRequest) -> Option<HttpResponse> {
        Shop::answer(self, req)
    }

    /// Signed now with the account's secret, so the delivery is within
    /// Etsy's five minutes; the recorded `webhook-id` is kept.
    fn sign_webhook(&self, settings: &dyn AccountSettings, webhook: &mut WebhookFixture) {
        let etsy = settings.as_any().downcast_ref::<EtsySettings>();
        let Some(secret) = etsy.and_then(|s| s.webhook_secret.as_ref()) else {
            return;
        };
        let id = webhook
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(ID_HEADER))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("msg_demo_{}", webhook.name));
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = crate::webhook::sign(secret, &id, &timestamp, &webhook.body);
        webhook.headers.retain(|k, _| {
            ![ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER]
                .iter()
                .any(|h| k.eq_ignore_ascii_case(h))
        });
        webhook.headers.insert(ID_HEADER.into(), id);
        webhook.headers.insert(TIMESTAMP_HEADER.into(), timestamp);
        webhook.headers.insert(SIGNATURE_HEADER.into(), signature);
    }

    fn writes(&self, requests: &[HttpRequest]) -> Vec<(String, usize)> {
        let inventories = requests
            .iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with("/inventory"))
            .count();
        let shipments = requests
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/tracking"))
            .count();
        [
            (
                "listing inventories (Etsy updateListingInventory)",
                inventories,
            ),
            ("tracking numbers (Etsy createReceiptShipment)", shipments),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(label, n)| (label.to_owned(), n))
        .collect()
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}
