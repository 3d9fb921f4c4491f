//! The channel simulator used by `switchyard demo` and by daemon tests. It
//! serves every channel from one loopback server, under `/<channel>/...`, out
//! of the recorded fixtures in `fixtures/<channel>/<scenario>/`. Unlike the
//! strict replay server of tests, it answers the same request as often as it
//! is asked and records every request it saw. A channel whose connector needs
//! more than recorded answers (query cost, mutations) gets its own handler
//! here when its connector arrives.
//!
//! Shopify: every GraphQL answer is charged against a leaky bucket of query
//! cost the way Shopify does (the recorded `requestedQueryCost` must be
//! available, the `actualQueryCost` is taken, the bucket refills at its
//! restore rate), and a call the bucket cannot pay gets Shopify's `THROTTLED`
//! answer with the bucket's real state in `throttleStatus`. The shop's
//! fulfillment and inventory state (`shopify.rs`) answers the operations a
//! recorded answer cannot: tracking pushes, and stock look-ups, pushes and
//! re-reads, with Shopify's compare-and-set.
//!
//! eBay: tokens, orders, offers and notification signing keys come from the
//! recordings; the seller's state (`ebay.rs`) answers what follows earlier
//! calls: fulfilments created and read back, and bulk stock updates.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde_json::json;
use switchyard_contract::Channel;
use switchyard_contract::testkit::{
    Exchange, HttpRequest, HttpResponse, LoopbackServer, Scenario, WebhookFixture,
};

use crate::config::AccountConfig;

mod ebay;
mod shopify;

/// A request the simulator received, with the channel it was addressed to.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub channel: Channel,
    pub request: HttpRequest,
}

/// A recorded webhook, ready to post: the path under the daemon's address,
/// headers (signed for the account it is addressed to) and the raw body.
#[derive(Debug, Clone)]
pub struct PreparedWebhook {
    pub name: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

struct SimState {
    exchanges: BTreeMap<Channel, Vec<Exchange>>,
    requests: Vec<SimRequest>,
    shop: shopify::Shop,
    seller: ebay::Seller,
    shopify_bucket: CostBucket,
    throttled: usize,
}

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
}

impl Default for CostBucket {
    fn default() -> Self {
        CostBucket::new(2000.0, 100.0)
    }
}

pub struct Simulator {
    server: LoopbackServer,
    state: Arc<Mutex<SimState>>,
    scenarios: BTreeMap<Channel, Vec<String>>,
    webhooks: BTreeMap<Channel, Vec<WebhookFixture>>,
}

/// The scenario the demo plays for a channel; its exchanges are matched first.
pub const DEMO_SCENARIO: &str = "demo";

impl Simulator {
    /// Loads `fixtures_dir/<channel>/*/scenario.toml` for every channel and
    /// starts serving on 127.0.0.1 at a free port.
    pub async fn start(fixtures_dir: &Path) -> Result<Simulator, String> {
        let mut exchanges = BTreeMap::new();
        let mut scenarios = BTreeMap::new();
        let mut webhooks = BTreeMap::new();
        for channel in Channel::ALL {
            let mut loaded = Scenario::load_all(&fixtures_dir.join(channel.as_str()))?;
            loaded.sort_by_key(|s| s.name != DEMO_SCENARIO);
            scenarios.insert(channel, loaded.iter().map(|s| s.name.clone()).collect());
            webhooks.insert(
                channel,
                loaded
                    .iter()
                    .filter(|s| s.name == DEMO_SCENARIO)
                    .flat_map(|s| s.webhooks.clone())
                    .collect(),
            );
            exchanges.insert(
                channel,
                loaded
                    .into_iter()
                    .flat_map(|s| s.exchanges)
                    .collect::<Vec<_>>(),
            );
        }
        Simulator::serve(exchanges, scenarios, webhooks).await
    }

    /// Serves only the given scenarios of one channel (`switchyard replay`).
    pub async fn from_scenarios(
        channel: Channel,
        scenarios: Vec<Scenario>,
    ) -> Result<Simulator, String> {
        let names = scenarios.iter().map(|s| s.name.clone()).collect();
        let exchanges = BTreeMap::from([(
            channel,
            scenarios.into_iter().flat_map(|s| s.exchanges).collect(),
        )]);
        Simulator::serve(
            exchanges,
            BTreeMap::from([(channel, names)]),
            BTreeMap::new(),
        )
        .await
    }

    async fn serve(
        exchanges: BTreeMap<Channel, Vec<Exchange>>,
        scenarios: BTreeMap<Channel, Vec<String>>,
        webhooks: BTreeMap<Channel, Vec<WebhookFixture>>,
    ) -> Result<Simulator, String> {
        let mut shop = shopify::Shop::default();
        for e in exchanges.get(&Channel::Shopify).into_iter().flatten() {
            if let Ok(v) = serde_json::from_slice(&e.response) {
                shop.learn(&v);
            }
        }
        for w in webhooks.get(&Channel::Shopify).into_iter().flatten() {
            if let Ok(v) = serde_json::from_slice(&w.body) {
                shop.learn(&v);
            }
        }
        let state = Arc::new(Mutex::new(SimState {
            exchanges,
            requests: Vec::new(),
            shop,
            seller: ebay::Seller::default(),
            shopify_bucket: CostBucket::default(),
            throttled: 0,
        }));
        let s = state.clone();
        let server = LoopbackServer::start(Arc::new(move |req| s.lock().answer(req)))
            .await
            .map_err(|e| format!("simulator: cannot bind 127.0.0.1: {e}"))?;
        Ok(Simulator {
            server,
            state,
            scenarios,
            webhooks,
        })
    }

    /// The base URL an account of `channel` should use.
    pub fn base_url(&self, channel: Channel) -> String {
        format!("{}/{}", self.server.url(), channel)
    }

    /// The scenario names loaded for a channel.
    pub fn scenarios(&self, channel: Channel) -> &[String] {
        self.scenarios
            .get(&channel)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The demo scenario's webhooks for an account, signed the way its
    /// channel signs them with the account's configured secret.
    pub fn demo_webhooks(&self, account: &AccountConfig) -> Vec<PreparedWebhook> {
        let fixtures = self
            .webhooks
            .get(&account.channel)
            .cloned()
            .unwrap_or_default();
        fixtures
            .into_iter()
            .map(|w| {
                let mut headers: Vec<(String, String)> = w.headers.into_iter().collect();
                let shopify = account.settings.as_ref().and_then(|s| {
                    s.as_any()
                        .downcast_ref::<switchyard_shopify::ShopifySettings>()
                });
                if let Some(secret) = shopify.and_then(|s| s.webhook_secret.as_ref()) {
                    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("x-shopify-hmac-sha256"));
                    headers.push((
                        "x-shopify-hmac-sha256".into(),
                        switchyard_shopify::webhook::sign(&w.body, secret),
                    ));
                }
                PreparedWebhook {
                    name: w.name,
                    headers,
                    body: w.body,
                }
            })
            .collect()
    }

    /// Replaces Shopify's cost bucket (tests use a small one to force throttling).
    pub fn set_shopify_bucket(&self, bucket: CostBucket) {
        self.state.lock().shopify_bucket = bucket;
    }

    /// How many calls were answered as throttled (429 or `THROTTLED`).
    pub fn throttled(&self) -> usize {
        self.state.lock().throttled
    }

    /// The GraphQL mutations Shopify was asked to run, in order.
    pub fn shopify_mutations(&self) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.channel == Channel::Shopify)
            .filter_map(|r| r.request.body_json())
            .filter(|b| {
                b["query"]
                    .as_str()
                    .is_some_and(|q| q.trim_start().starts_with("mutation"))
            })
            .collect()
    }

    /// Adds variants for SKUs the simulated Shopify shop does not sell yet,
    /// each with its own inventory item stocked at the shop's location with
    /// 0 available. SKUs it already sells are left as they are.
    pub fn add_shopify_skus(&self, skus: &[&str]) {
        self.lock().shop.add_skus(skus);
    }

    /// What the simulated Shopify shop shows as `available` for a SKU at its
    /// location; None for a SKU it does not sell.
    pub fn shopify_available(&self, sku: &str) -> Option<i64> {
        self.lock().shop.available_of(sku)
    }

    /// The inventory item gid of a SKU the simulated Shopify shop sells.
    pub fn shopify_inventory_item(&self, sku: &str) -> Option<String> {
        self.lock().shop.inventory_item(sku)
    }

    /// A sale in the simulated shop's own storefront: `quantity` units leave
    /// `available` (no order is created). Refused, changing nothing, for a
    /// SKU the shop does not sell or more than it has available (Shopify's
    /// default policy). Returns what is left.
    pub fn shopify_sell(&self, sku: &str, quantity: i64) -> Result<i64, String> {
        self.lock().shop.sell(sku, quantity)
    }

    /// How many Shopify GraphQL requests named `operation` (e.g.
    /// `SwitchyardSetStock`) the simulator received, throttled ones included.
    pub fn shopify_calls(&self, operation: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.channel == Channel::Shopify)
            .filter(|r| {
                r.request
                    .body_json()
                    .is_some_and(|b| b["operationName"] == operation)
            })
            .count()
    }

    /// The quantity the simulated eBay seller was last given for a SKU.
    pub fn ebay_level(&self, sku: &str) -> Option<i64> {
        self.lock().seller.level(sku)
    }

    /// The fulfilments created on the simulated eBay seller, as
    /// `(order id, fulfilment)`.
    pub fn ebay_fulfillments(&self) -> Vec<(String, serde_json::Value)> {
        self.lock().seller.created()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, SimState> {
        self.state.lock()
    }

    pub fn requests(&self) -> Vec<SimRequest> {
        self.state.lock().requests.clone()
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

impl SimState {
    fn answer(&mut self, mut req: HttpRequest) -> HttpResponse {
        let Some((channel, rest)) = split_channel(&req.path) else {
            return HttpResponse::json(
                404,
                &json!({"error": format!("simulator: no channel in path {}; use /<channel>/...", req.path)}),
            );
        };
        req.path = rest;
        if channel == Channel::Shopify
            && let Ok(body) = serde_json::from_slice::<serde_json::Value>(&req.body)
            && let Some((requested, _)) = shopify::operation_cost(&body)
        {
            // Shopify refuses a call its bucket cannot pay before running
            // it: a throttled mutation changes nothing.
            let resp = match self.shopify_throttle(f64::from(requested)) {
                Some(throttled) => Some(throttled),
                None => self.shop.answer(&body).map(|answer| {
                    self.charge_shopify(
                        vec![("content-type".into(), "application/json".into())],
                        serde_json::to_vec(&answer).unwrap_or_default(),
                    )
                }),
            };
            if let Some(resp) = resp {
                self.requests.push(SimRequest {
                    channel,
                    request: req,
                });
                return resp;
            }
        }
        if channel == Channel::Ebay
            && let Some(resp) = self.seller.answer(&req)
        {
            self.requests.push(SimRequest {
                channel,
                request: req,
            });
            return resp;
        }
        let found = self.exchanges.get(&channel).and_then(|list| {
            list.iter()
                .find(|e| e.matches(&req.method, &req.path, &req.query, &req.body))
                .cloned()
        });
        let resp = match found {
            Some(e) if channel == Channel::Shopify && e.status == 200 => {
                self.charge_shopify(e.headers.into_iter().collect(), e.response)
            }
            Some(e) => HttpResponse {
                status: e.status,
                headers: e.headers.into_iter().collect(),
                body: e.response,
            },
            None => HttpResponse::json(
                404,
                &json!({"error": format!("simulator: no recorded {channel} response for {} {}", req.method, req.path)}),
            ),
        };
        self.requests.push(SimRequest {
            channel,
            request: req,
        });
        resp
    }
}

impl SimState {
    fn bucket_status(&self) -> serde_json::Value {
        let bucket = &self.shopify_bucket;
        json!({
            "maximumAvailable": bucket.capacity,
            "currentlyAvailable": bucket.available.floor(),
            "restoreRate": bucket.restore_per_second,
        })
    }

    /// Shopify's `THROTTLED` answer when the bucket (refilled now) holds
    /// less than `requested`; None when the call may run.
    fn shopify_throttle(&mut self, requested: f64) -> Option<HttpResponse> {
        self.shopify_bucket.refill();
        if self.shopify_bucket.available >= requested {
            return None;
        }
        self.throttled += 1;
        let throttled = json!({
            "errors": [{ "message": "Throttled", "extensions": { "code": "THROTTLED" } }],
            "extensions": { "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": null,
                "throttleStatus": self.bucket_status(),
            }},
        });
        Some(HttpResponse::json(200, &throttled))
    }

    fn charge_shopify(&mut self, headers: Vec<(String, String)>, body: Vec<u8>) -> HttpResponse {
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return HttpResponse {
                status: 200,
                headers,
                body,
            };
        };
        let cost = &value["extensions"]["cost"];
        let requested = cost["requestedQueryCost"].as_f64().unwrap_or(1.0);
        let actual = cost["actualQueryCost"].as_f64().unwrap_or(requested);
        if let Some(throttled) = self.shopify_throttle(requested) {
            return throttled;
        }
        self.shopify_bucket.available -= actual;
        if value["extensions"]["cost"].is_object() {
            value["extensions"]["cost"]["throttleStatus"] = self.bucket_status();
        }
        HttpResponse {
            status: 200,
            headers,
            body: serde_json::to_vec(&value).unwrap_or(body),
        }
    }
}

/// A destination (warehouse, 3PL) for the demo and tests: accepts the
/// daemon's signed order deliveries on `/<destination id>`, checks each
/// signature with that destination's secret, and remembers what came.
pub struct DestinationSink {
    server: LoopbackServer,
    received: Arc<Mutex<Vec<Delivery>>>,
}

/// One delivery the sink received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub destination: String,
    pub delivery_id: Option<String>,
    pub signature_ok: bool,
    pub order: Option<switchyard_contract::Order>,
}

impl DestinationSink {
    /// `secrets`: destination id → its signing secret.
    pub async fn start(secrets: BTreeMap<String, Vec<u8>>) -> Result<DestinationSink, String> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        let server = LoopbackServer::start(Arc::new(move |req: HttpRequest| {
            let destination = req.path.trim_start_matches('/').to_owned();
            let Some(secret) = secrets.get(&destination) else {
                return HttpResponse::new(404, format!("no destination {destination:?} here"));
            };
            let signature_ok = req
                .header(crate::effects::deliveries::SIGNATURE_HEADER)
                .is_some_and(|sig| crate::effects::deliveries::verify(secret, &req.body, sig));
            r.lock().push(Delivery {
                destination,
                delivery_id: req
                    .header(crate::effects::deliveries::DELIVERY_HEADER)
                    .map(str::to_owned),
                signature_ok,
                order: serde_json::from_slice(&req.body).ok(),
            });
            if signature_ok {
                HttpResponse::new(200, "received")
            } else {
                HttpResponse::new(401, "bad signature")
            }
        }))
        .await
        .map_err(|e| format!("destination sink: cannot bind 127.0.0.1: {e}"))?;
        Ok(DestinationSink { server, received })
    }

    /// The URL a destination should POST to.
    pub fn url(&self, destination: &str) -> String {
        format!("{}/{destination}", self.server.url())
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.received.lock().clone()
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

fn split_channel(path: &str) -> Option<(Channel, String)> {
    let trimmed = path.strip_prefix('/')?;
    let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let channel = first.parse().ok()?;
    Some((channel, format!("/{rest}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_recorded_answers_per_channel_repeatedly() {
        let dir = tempfile::tempdir().unwrap();
        let scen = dir.path().join("etsy/one");
        std::fs::create_dir_all(&scen).unwrap();
        std::fs::write(scen.join("r.json"), b"{\"count\":0}").unwrap();
        std::fs::write(
            scen.join("scenario.toml"),
            "description = \"x\"\n[[exchange]]\nmethod = \"GET\"\npath = \"/v3/ping\"\nresponse = \"r.json\"\n",
        )
        .unwrap();
        let sim = Simulator::start(dir.path()).await.unwrap();
        assert_eq!(sim.scenarios(Channel::Etsy), ["one".to_string()]);
        let url = format!("{}/v3/ping", sim.base_url(Channel::Etsy));
        for _ in 0..2 {
            let r = reqwest::get(&url).await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), "{\"count\":0}");
        }
        let miss = reqwest::get(format!("{}/v3/ping", sim.base_url(Channel::Ebay)))
            .await
            .unwrap();
        assert_eq!(miss.status(), 404);
        let reqs = sim.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0].channel, Channel::Etsy);
        assert_eq!(reqs[0].request.path, "/v3/ping");
        sim.stop().await;
    }
}
