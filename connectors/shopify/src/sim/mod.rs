//! The simulated Shopify shop (feature `sim`), for `switchyard demo`,
//! `switchyard replay` and the daemon's tests: what recorded answers cannot
//! follow.
//!
//! - **Query cost.** Every GraphQL answer is charged against a leaky bucket
//!   of query-cost points the way Shopify does ([`CostBucket`]; Standard
//!   plan figures by default): the recorded `requestedQueryCost` must be
//!   available, the `actualQueryCost` is taken, the bucket refills at its
//!   restore rate, and a call the bucket cannot pay gets Shopify's
//!   `THROTTLED` answer with the bucket's real state in `throttleStatus`,
//!   before it runs (a throttled mutation changes nothing).
//! - **The shop's state** (`shop.rs`): fulfilments and inventory, answering
//!   tracking pushes and stock look-ups, pushes and re-reads with Shopify's
//!   compare-and-set; the shop's check query.
//! - **Webhooks** are signed for the account they are posted to, with its
//!   webhook secret.

mod shop;

use std::any::Any;
use std::time::Instant;

use serde_json::{Value, json};
use switchyard_contract::AccountSettings;
use switchyard_contract::testkit::{
    ChannelSim, HttpRequest, HttpResponse, Scenario, SimMode, WebhookFixture,
};

pub use shop::{LOCATION_GID, Shop};

use crate::settings::ShopifySettings;

/// The webhook signature header.
const HMAC_HEADER: &str = "x-shopify-hmac-sha256";

/// Shopify's GraphQL Admin limit: query-cost points in a bucket that refills
/// continuously (Standard plan figures by default).
#[derive(Debug, Clone)]
pub struct CostBucket {
    pub capacity: f64,
    pub restore_per_second: f64,
    available: f64,
    refilled_at: Instant,
}

impl CostBucket {
    pub fn new(capacity: f64, restore_per_second: f64) -> Self {
        CostBucket {
            capacity,
            restore_per_second,
            available: capacity,
            refilled_at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.available = (self.available + elapsed * self.restore_per_second).min(self.capacity);
        self.refilled_at = now;
    }

    fn status(&self) -> Value {
        json!({
            "maximumAvailable": self.capacity,
            "currentlyAvailable": self.available.floor(),
            "restoreRate": self.restore_per_second,
        })
    }
}

impl Default for CostBucket {
    fn default() -> Self {
        CostBucket::new(2000.0, 100.0)
    }
}

/// The simulated shop and its cost bucket.
#[derive(Debug, Default)]
pub struct ShopifySim {
    pub shop: Shop,
    bucket: CostBucket,
    throttled: usize,
}

/// The registry's simulator for Shopify: the same in both modes (the shop's
/// state answers what a recording of one scenario cannot either).
pub fn simulator(_mode: SimMode) -> Option<Box<dyn ChannelSim>> {
    Some(Box::new(ShopifySim::default()))
}

impl ShopifySim {
    /// Replaces the cost bucket (tests use a small one to force throttling).
    pub fn set_bucket(&mut self, bucket: CostBucket) {
        self.bucket = bucket;
    }

    /// Shopify's `THROTTLED` answer when the bucket (refilled now) holds
    /// less than `requested`; None when the call may run.
    fn throttle(&mut self, requested: f64) -> Option<HttpResponse> {
        self.bucket.refill();
        if self.bucket.available >= requested {
            return None;
        }
        self.throttled += 1;
        let throttled = json!({
            "errors": [{ "message": "Throttled", "extensions": { "code": "THROTTLED" } }],
            "extensions": { "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": null,
                "throttleStatus": self.bucket.status(),
            }},
        });
        Some(HttpResponse::json(200, &throttled))
    }

    /// Charges an answer's cost (or throttles the call instead) and shows
    /// the bucket's state in it.
    fn charge(&mut self, headers: Vec<(String, String)>, body: Vec<u8>) -> HttpResponse {
        let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
            return HttpResponse {
                status: 200,
                headers,
                body,
            };
        };
        let cost = &value["extensions"]["cost"];
        let requested = cost["requestedQueryCost"].as_f64().unwrap_or(1.0);
        let actual = cost["actualQueryCost"].as_f64().unwrap_or(requested);
        if let Some(throttled) = self.throttle(requested) {
            return throttled;
        }
        self.bucket.available -= actual;
        if value["extensions"]["cost"].is_object() {
            value["extensions"]["cost"]["throttleStatus"] = self.bucket.status();
        }
        HttpResponse {
            status: 200,
            headers,
            body: serde_json::to_vec(&value).unwrap_or(body),
        }
    }
}

/// What a person calls a mutation's writes, for the demo's summary.
fn label(operation: &str) -> String {
    match operation {
        "SwitchyardSetStock" => "stock levels (Shopify inventorySetQuantities)".into(),
        "SwitchyardFulfill" => "tracking numbers (Shopify fulfillmentCreate)".into(),
        other => format!("Shopify {other}"),
    }
}

impl ChannelSim for ShopifySim {
    fn learn(&mut self, scenario: &Scenario) {
        let recorded = scenario.exchanges.iter().map(|e| &e.response);
        // Only the demo's webhooks are posted, so only theirs are learned.
        let posted = scenario
            .webhooks
            .iter()
            .filter(|_| scenario.name == "demo")
            .map(|w| &w.body);
        for bytes in recorded.chain(posted) {
            if let Ok(v) = serde_json::from_slice(bytes) {
                self.shop.learn(&v);
            }
        }
    }

    fn answer(&mut self, req: &HttpRequest) -> Option<HttpResponse> {
        let body = serde_json::from_slice::<Value>(&req.body).ok()?;
        let (requested, _) = shop::operation_cost(&body)?;
        // Shopify refuses a call its bucket cannot pay before running it.
        if let Some(throttled) = self.throttle(f64::from(requested)) {
            return Some(throttled);
        }
        let answer = self.shop.answer(&body)?;
        Some(self.charge(
            vec![("content-type".into(), "application/json".into())],
            serde_json::to_vec(&answer).unwrap_or_default(),
        ))
    }

    fn recorded(&mut self, _req: &HttpRequest, resp: HttpResponse) -> HttpResponse {
        if resp.status == 200 {
            self.charge(resp.headers, resp.body)
        } else {
            resp
        }
    }

    fn sign_webhook(&self, settings: &dyn AccountSettings, webhook: &mut WebhookFixture) {
        let shopify = settings.as_any().downcast_ref::<ShopifySettings>();
        let Some(secret) = shopify.and_then(|s| s.webhook_secret.as_ref()) else {
            return;
        };
        webhook
            .headers
            .retain(|k, _| !k.eq_ignore_ascii_case(HMAC_HEADER));
        webhook.headers.insert(
            HMAC_HEADER.into(),
            crate::webhook::sign(&webhook.body, secret),
        );
    }

    fn writes(&self, requests: &[HttpRequest]) -> Vec<(String, usize)> {
        let mut counted: Vec<(String, usize)> = Vec::new();
        for body in requests.iter().filter_map(HttpRequest::body_json) {
            let mutation = body["query"]
                .as_str()
                .is_some_and(|q| q.trim_start().starts_with("mutation"));
            if !mutation {
                continue;
            }
            let name = body["operationName"].as_str().unwrap_or("mutation");
            // One stock mutation sets many SKUs' levels: count the levels.
            let levels = body["variables"]["input"]["quantities"]
                .as_array()
                .filter(|_| name == "SwitchyardSetStock")
                .map_or(1, Vec::len);
            let label = label(name);
            match counted.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += levels,
                None => counted.push((label, levels)),
            }
        }
        counted
    }

    fn throttled(&self) -> usize {
        self.throttled
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}
