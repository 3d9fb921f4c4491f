//! Stock pushes end to end: the daemon (`daemon::run`, in-process, on
//! 127.0.0.1) against the simulator's stateful Shopify shop, driven through
//! the admin API (`PUT /api/v1/stock`, `GET /api/v1/outbox`) and signed
//! `orders/create` webhooks. What each channel shows is read back from the
//! simulator, which keeps Shopify's `available` per inventory item with its
//! compare-and-set, and charges every call against Shopify's query-cost bucket.
//!
//! - Rate limit: 300 changes over 40 SKUs, under a bucket cut down to the
//!   connector's published stock-push limit: no call throttled, every SKU at
//!   its last level less the account's buffer, far fewer calls than changes:
//!   pushes are batched (many SKUs per `inventorySetQuantities`), so a
//!   handful of calls, not one per SKU.
//! - A batch with stale quantities: Shopify refuses the whole mutation and
//!   names the stale ones; the others are set by one more call, the stale
//!   ones go by the conflict policy, nothing is written twice.
//! - Oversell guard: two Shopify accounts list the same SKU with one unit
//!   left; the sale on one makes the other show 0 at once, so its storefront
//!   refuses the next buyer.
//! - Compare-and-set conflicts: the channel sold units after our last push;
//!   the conflict policy of `src/effects/stock/push.rs` decides what it shows.

use crate::common::{self, eventually};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{ConfigBuilder, InProcess, REPO, ShopifyAccount, post, shopify_signed};
use common::sims::ShopifySimExt;
use serde_json::{Value, json};
use switchyard::sim::Simulator;
use switchyard_contract::Channel;
use switchyard_contract::{Operation, RateLimit};
use switchyard_shopify::sim::CostBucket;

const TOKEN: &str = "admin-token-for-shopify-outbound-tests";

/// Query cost of one stock push at most: `SwitchyardSetStock` (10 points)
/// plus, the first time a SKU is pushed, `SwitchyardVariantsBySku` (3).
const POINTS_PER_PUSH: f64 = 13.0;

fn webhook_secret(account: &str) -> String {
    format!("webhook-secret-of-{account}")
}

async fn simulator(skus: &[&str]) -> Simulator {
    let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
        .await
        .unwrap();
    sim.add_shopify_skus(skus);
    sim
}

/// One Shopify account of the daemon: its id, its shop, its stock buffer.
struct Account<'a> {
    id: &'a str,
    sim: &'a Simulator,
    buffer: Option<u32>,
}

fn write_config(dir: &Path, accounts: &[Account<'_>]) -> PathBuf {
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, "# no rules: orders stay unrouted\n").unwrap();
    let config = ConfigBuilder::new(dir)
        .rules(&rules)
        .shutdown_timeout("5s")
        .admin_token(TOKEN)
        .destinations(vec![]);
    accounts
        .iter()
        .fold(config, |config, a| {
            let account = ShopifyAccount::new(a.id, &a.sim.base_url(Channel::Shopify))
                .webhook_secret(&webhook_secret(a.id));
            config.account(match a.buffer {
                Some(units) => account.buffer(units),
                None => account,
            })
        })
        .write()
}

struct Daemon {
    daemon: InProcess,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts the daemon with these accounts and waits until each has
    /// caught up with its shop once.
    async fn start(accounts: &[Account<'_>]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let daemon = InProcess::start(&write_config(dir.path(), accounts)).await;
        let ids: Vec<&str> = accounts.iter().map(|a| a.id).collect();
        daemon.synced(&ids).await;
        Daemon {
            daemon,
            http: reqwest::Client::new(),
            dir,
        }
    }

    async fn stop(self) {
        let (_report, store) = tokio::time::timeout(Duration::from_secs(10), self.daemon.stop())
            .await
            .expect("the daemon did not stop within 10 s");
        store.close().unwrap();
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, self.daemon.url(&format!("/api/v1{path}")))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert!((200..300).contains(&status), "{path}: HTTP {status} {body}");
        body
    }

    /// `PUT /api/v1/stock`; acknowledged once durable.
    async fn set_stock(&self, levels: &[(&str, i64)]) {
        let body: Vec<Value> = levels
            .iter()
            .map(|(sku, n)| json!({ "sku": sku, "available": n }))
            .collect();
        let receipt = self
            .admin(reqwest::Method::PUT, "/stock", Some(Value::Array(body)))
            .await;
        assert_eq!(receipt["skus"], levels.len(), "{receipt}");
    }

    async fn stock(&self, sku: &str) -> Value {
        self.admin(reqwest::Method::GET, &format!("/stock/{sku}"), None)
            .await
    }

    /// What the daemon last had confirmed by `account` for `sku`.
    async fn pushed(&self, sku: &str, account: &str) -> Option<u64> {
        let view = self.stock(sku).await;
        view["channels"]
            .as_array()?
            .iter()
            .find(|c| c["account"] == account)?["pushed"]
            .as_u64()
    }

    async fn outbox(&self, dead: bool) -> Vec<Value> {
        let path = if dead { "/outbox?dead=true" } else { "/outbox" };
        let list = self.admin(reqwest::Method::GET, path, None).await;
        list.as_array().unwrap().clone()
    }

    async fn wait_outbox_idle(&self, timeout: Duration) {
        eventually("the outbox to drain", timeout, async || {
            self.outbox(false).await.is_empty()
        })
        .await
    }

    /// Posts a signed `orders/create` webhook for `account`, as Shopify
    /// sends it after a sale in that shop.
    async fn order_webhook(&self, account: &str, order: u64, lines: &[(&str, u32)]) {
        let url = self.daemon.url(&format!("/webhooks/{account}"));
        let body = order_body(order, lines);
        let text = post_order_created(
            &self.http,
            &url,
            account,
            &webhook_secret(account),
            order,
            body,
        )
        .await;
        assert!(text.contains("1 new"), "{text}");
    }
}

/// Posts `body` to `url` as Shopify's signed `orders/create` webhook of
/// `account` for `order`; asserts a 200 and answers its text.
pub(crate) async fn post_order_created(
    http: &reqwest::Client,
    url: &str,
    account: &str,
    secret: &str,
    order: u64,
    body: Vec<u8>,
) -> String {
    let headers = shopify_signed(
        &body,
        secret,
        [
            ("content-type", "application/json"),
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-shop-domain", &format!("{account}.myshopify.com")),
            ("x-shopify-api-version", "2026-10"),
            ("x-shopify-event-id", &format!("evt-{order}")),
            ("x-shopify-webhook-id", &format!("wh-{order}")),
        ],
    );
    let (status, text) = post(http, url, &headers, body).await;
    assert_eq!(status, 200, "{text}");
    text
}

/// A REST `orders/create` body (the recorded demo webhook's shape) for a
/// new order with these lines.
fn order_body(order: u64, lines: &[(&str, u32)]) -> Vec<u8> {
    let lines: Vec<(&str, u32, u32)> = lines.iter().map(|&(sku, q)| (sku, q, 0)).collect();
    order_body_refunded(order, &lines)
}

/// [`order_body`] with lines `(sku, ordered, refunded)`: Shopify's
/// `current_quantity` is what is left of a line after refunds.
pub(crate) fn order_body_refunded(order: u64, lines: &[(&str, u32, u32)]) -> Vec<u8> {
    let recorded = Path::new(REPO).join("fixtures/shopify/demo/webhooks/01-orders-create.json");
    let mut body: Value = serde_json::from_slice(&std::fs::read(recorded).unwrap()).unwrap();
    body["id"] = json!(order);
    body["admin_graphql_api_id"] = json!(format!("gid://shopify/Order/{order}"));
    body["name"] = json!(format!("#{order}"));
    let template = body["line_items"][0].clone();
    body["line_items"] = lines
        .iter()
        .enumerate()
        .map(|(i, (sku, quantity, refunded))| {
            let id = order * 100 + i as u64;
            let mut line = template.clone();
            line["id"] = json!(id);
            line["admin_graphql_api_id"] = json!(format!("gid://shopify/LineItem/{id}"));
            line["sku"] = json!(sku);
            line["quantity"] = json!(quantity);
            line["current_quantity"] = json!(quantity - refunded);
            line["fulfillable_quantity"] = json!(quantity - refunded);
            line["variant_id"] = Value::Null;
            line
        })
        .collect();
    serde_json::to_vec(&body).unwrap()
}

/// The `(quantity, changeFromQuantity)` of every `SwitchyardSetStock` the
/// shop received for `sku` (whichever position of the call's quantities it
/// had), and `"read"` for each conflict re-read, in order.
fn stock_calls(sim: &Simulator, sku: &str) -> Vec<String> {
    let item = sim.shopify_inventory_item(sku).unwrap();
    sim.requests()
        .iter()
        .filter_map(|r| r.request.body_json())
        .filter_map(|b| match b["operationName"].as_str()? {
            "SwitchyardSetStock" => b["variables"]["input"]["quantities"]
                .as_array()?
                .iter()
                .find(|q| q["inventoryItemId"] == item.as_str())
                .map(|q| format!("set {} from {}", q["quantity"], q["changeFromQuantity"])),
            "SwitchyardAvailable" => {
                (b["variables"]["item"] == item.as_str()).then(|| "read".to_owned())
            }
            _ => None,
        })
        .collect()
}

/// Every `SwitchyardSetStock` the shop received: its `@idempotent` key and
/// its quantities as `"SKU set Q from F"` (SKUs among `skus`), in the order
/// sent.
fn set_calls(sim: &Simulator, skus: &[&str]) -> Vec<(String, Vec<String>)> {
    let items: BTreeMap<String, &str> = skus
        .iter()
        .map(|s| (sim.shopify_inventory_item(s).unwrap(), *s))
        .collect();
    sim.requests()
        .iter()
        .filter_map(|r| r.request.body_json())
        .filter(|b| b["operationName"] == "SwitchyardSetStock")
        .map(|b| {
            let query = b["query"].as_str().unwrap();
            let key = query
                .split_once("@idempotent(key: \"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(key, _)| key.to_owned())
                .unwrap();
            let quantities = b["variables"]["input"]["quantities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| {
                    let sku = items
                        .get(q["inventoryItemId"].as_str().unwrap())
                        .copied()
                        .unwrap_or("?");
                    format!(
                        "{sku} set {} from {}",
                        q["quantity"], q["changeFromQuantity"]
                    )
                })
                .collect();
            (key, quantities)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_changes_stay_under_shopifys_limit_and_coalesce() {
    const SKUS: usize = 40;
    const REQUESTS: usize = 10;
    const PER_REQUEST: usize = 30;
    const BUFFER: i64 = 2;
    let skus: Vec<String> = (0..SKUS).map(|i| format!("RL-{i:02}")).collect();
    let sku_refs: Vec<&str> = skus.iter().map(String::as_str).collect();
    let sim = simulator(&sku_refs).await;
    let daemon = Daemon::start(&[Account {
        id: "shop-us",
        sim: &sim,
        buffer: Some(BUFFER as u32),
    }])
    .await;

    // Shopify's bucket, cut down to exactly the connector's published
    // stock-push limit in query-cost points: a burst of `burst` pushes and
    // `per_second` pushes a second refilled, at the most a push can cost.
    // (A real Standard-plan bucket, 2,000 points at 100 a second, would
    // absorb a daemon that ignored the limit for a long time.)
    let config = switchyard::config::load(&daemon.dir.path().join("switchyard.toml")).unwrap();
    let connector = config.accounts[0]
        .settings
        .as_ref()
        .unwrap()
        .build(switchyard_contract::BuildContext {
            account: config.accounts[0].id.clone(),
            base_url: config.accounts[0].base_url.clone(),
            http: reqwest::Client::new(),
            tokens: switchyard_contract::tokens::MemoryTokenStore::shared(),
            pacer: switchyard_contract::Unpaced::shared(),
        })
        .unwrap();
    let RateLimit { per_second, burst } = connector.rate_limit(Operation::PushInventory);
    sim.set_shopify_bucket(CostBucket::new(
        f64::from(burst) * POINTS_PER_PUSH,
        per_second * POINTS_PER_PUSH,
    ));
    let throttled_at_start = sim.throttled();

    // 300 changes over 40 SKUs in 10 requests of 30, each request going on
    // where the last stopped, so every SKU changes 7 or 8 times.
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let started = Instant::now();
    for r in 0..REQUESTS {
        let levels: Vec<(&str, i64)> = (0..PER_REQUEST)
            .map(|j| {
                let n = r * PER_REQUEST + j;
                let value = ((n * 7919 + 13) % 41) as i64;
                (skus[n % SKUS].as_str(), value)
            })
            .collect();
        for (sku, v) in &levels {
            last.insert(sku.to_string(), *v);
        }
        daemon.set_stock(&levels).await;
    }
    let spread = started.elapsed();
    let expected = |sku: &str| (last[sku] - BUFFER).max(0);
    eventually(
        "every SKU at its last level less the buffer",
        Duration::from_secs(30),
        async || {
            skus.iter()
                .all(|s| sim.shopify_available(s) == Some(expected(s)))
        },
    )
    .await;
    daemon.wait_outbox_idle(Duration::from_secs(10)).await;
    let took = started.elapsed();
    // (How long it took is printed for a reader, never asserted: the
    // figures against a baseline are in BENCHMARKS.md.)

    let sets = sim.shopify_calls("SwitchyardSetStock");
    let lookups = sim.shopify_calls("SwitchyardVariantsBySku");
    let throttled = sim.throttled();
    let calls = set_calls(&sim, &sku_refs);
    let widest = calls.iter().map(|(_, q)| q.len()).max().unwrap_or(0);
    let quantities: usize = calls.iter().map(|(_, q)| q.len()).sum();
    println!(
        "{} changes over {SKUS} SKUs in {REQUESTS} requests (sent in {spread:?}): \
         {sets} SwitchyardSetStock calls ({quantities} quantities, up to {widest} a call), \
         {lookups} SKU look-ups, {throttled} throttled, \
         all levels right after {took:?}; limit {per_second}/s burst {burst}",
        REQUESTS * PER_REQUEST
    );
    assert_eq!(throttled, 0, "no call above the published limit");
    assert_eq!(throttled_at_start, 0, "the first sync was not throttled");
    assert!(daemon.outbox(true).await.is_empty(), "no dead letters");
    // Each SKU was looked up once: the inventory item learned is kept.
    assert_eq!(lookups, SKUS);
    assert_eq!(sim.shopify_calls("SwitchyardPrimaryLocation"), 1);
    // Batching: a call carries every push that is due (up to 100 SKUs), so
    // there is at most one call per admin request, plus one per request for
    // SKUs whose level changed again while their push was in flight (the
    // re-check after each push). One at a time it took a call per SKU, 40
    // at the very least.
    assert!(widest > 1, "pushes went one SKU per call");
    assert!(quantities >= SKUS, "every SKU pushed");
    // New SKUs are looked up a call's budget at a time (the first request
    // alone brings 30), the rest left to the next call.
    let mut lookups_per_call = vec![0];
    for b in sim.requests().iter().filter_map(|r| r.request.body_json()) {
        match b["operationName"].as_str() {
            Some("SwitchyardVariantsBySku") => *lookups_per_call.last_mut().unwrap() += 1,
            Some("SwitchyardSetStock") => lookups_per_call.push(0),
            _ => {}
        }
    }
    let budget = switchyard::effects::stock::UNKNOWN_LISTINGS_PER_CALL;
    assert_eq!(lookups_per_call[0], budget, "{lookups_per_call:?}");
    assert!(
        lookups_per_call.iter().all(|&n| n <= budget),
        "{lookups_per_call:?}"
    );
    let bound = 2 * REQUESTS;
    assert!(
        (1..=bound).contains(&sets),
        "{sets} calls for {} changes over {SKUS} SKUs made in {spread:?} (bound {bound})",
        REQUESTS * PER_REQUEST
    );
    // The calls were paced, not bunched: the shop's bucket, cut to the
    // published limit, throttled none of them (above). And far fewer calls
    // than one per SKU: batching, not speed, is what the bound shows.
    assert!(sets < SKUS, "{sets} calls for {SKUS} SKUs");
    // What the daemon records as confirmed is what the shop shows.
    for sku in ["RL-00", "RL-17", "RL-39"] {
        assert_eq!(
            daemon.pushed(sku, "shop-us").await,
            Some(expected(sku) as u64),
            "{sku}"
        );
    }
    daemon.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_unit_sold_on_one_shop_is_gone_from_the_other_at_once() {
    const SKU: &str = "LAST-ONE";
    let (sim_a, sim_b) = (simulator(&[SKU]).await, simulator(&[SKU]).await);
    let daemon = Daemon::start(&[
        Account {
            id: "shop-a",
            sim: &sim_a,
            buffer: None,
        },
        Account {
            id: "shop-b",
            sim: &sim_b,
            buffer: None,
        },
    ])
    .await;
    daemon.set_stock(&[(SKU, 1)]).await;
    eventually("both shops at 1", Duration::from_secs(10), async || {
        sim_a.shopify_available(SKU) == Some(1) && sim_b.shopify_available(SKU) == Some(1)
    })
    .await;
    daemon.wait_outbox_idle(Duration::from_secs(10)).await;

    // A buyer takes the last unit in shop A's storefront; Shopify counts it
    // there and sends the order.
    assert_eq!(sim_a.shopify_sell(SKU, 1), Ok(0));
    daemon.order_webhook("shop-a", 6_100_001, &[(SKU, 1)]).await;
    // At once: by the time the webhook is acknowledged, B's push is queued
    // (written with the order) or already made, not left to a later drift
    // repair or poll. An item leaves the queue only after the shop took it.
    let queued_for_b = daemon
        .outbox(false)
        .await
        .iter()
        .any(|i| i["account"] == "shop-b" && i["kind"] == "push_stock");
    assert!(
        queued_for_b || sim_b.shopify_available(SKU) == Some(0),
        "the sale on A queued nothing for B"
    );
    eventually("shop B at 0", Duration::from_secs(5), async || {
        sim_b.shopify_available(SKU) == Some(0)
    })
    .await;
    // B's next buyer is refused: B no longer has anything to sell.
    assert!(sim_b.shopify_sell(SKU, 1).is_err());

    daemon.wait_outbox_idle(Duration::from_secs(10)).await;
    assert!(daemon.outbox(true).await.is_empty(), "no dead letters");
    assert_eq!(sim_a.shopify_available(SKU), Some(0));
    assert_eq!(daemon.stock(SKU).await["available"], 0);
    assert_eq!(daemon.pushed(SKU, "shop-a").await, Some(0));
    assert_eq!(daemon.pushed(SKU, "shop-b").await, Some(0));
    // B was set against the 1 it had confirmed; A had already counted its
    // own sale, so its compare-and-set failed, the level was read (0, what
    // we wanted) and left alone.
    assert_eq!(
        stock_calls(&sim_b, SKU),
        ["set 1 from null", "set 0 from 1"]
    );
    assert_eq!(
        stock_calls(&sim_a, SKU),
        ["set 1 from null", "set 0 from 1", "read"]
    );
    assert_eq!(sim_a.throttled() + sim_b.throttled(), 0);
    daemon.stop().await;
    sim_a.stop().await;
    sim_b.stop().await;
}

/// The conflict policy (`src/effects/stock/push.rs`, "Compare-and-set"): when the
/// channel shows something other than what it last confirmed, what it
/// shows is recorded; if that is more than the daemon's level, the level is
/// pushed again against it at once (the channel must not offer units we do
/// not have); if it is no more (most likely its own sale, whose order is on
/// its way), it is left alone until that order arrives and reserves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_sold_since_the_last_push_is_resolved_by_the_conflict_policy() {
    // ABOVE: the channel is left above the new level; BELOW: below it.
    const ABOVE: &str = "CAS-ABOVE";
    const BELOW: &str = "CAS-BELOW";
    let sim = simulator(&[ABOVE, BELOW]).await;
    let daemon = Daemon::start(&[Account {
        id: "shop-us",
        sim: &sim,
        buffer: None,
    }])
    .await;
    daemon.set_stock(&[(ABOVE, 10), (BELOW, 10)]).await;
    eventually("both at 10", Duration::from_secs(10), async || {
        sim.shopify_available(ABOVE) == Some(10) && sim.shopify_available(BELOW) == Some(10)
    })
    .await;
    daemon.wait_outbox_idle(Duration::from_secs(10)).await;

    // Three of each sell in the shop itself; the daemon does not know yet.
    assert_eq!(sim.shopify_sell(ABOVE, 3), Ok(7));
    assert_eq!(sim.shopify_sell(BELOW, 3), Ok(7));
    // The merchant counts the shelf: 5 of one, 8 of the other.
    daemon.set_stock(&[(ABOVE, 5), (BELOW, 8)]).await;
    eventually(
        "the conflicts resolved",
        Duration::from_secs(10),
        async || sim.shopify_available(ABOVE) == Some(5) && daemon.outbox(false).await.is_empty(),
    )
    .await;

    // 7 > 5: the push against 10 is refused as stale, 7 is read, and 5 is
    // pushed against 7 at once. The shop shows the central level.
    assert_eq!(
        stock_calls(&sim, ABOVE),
        ["set 10 from null", "set 5 from 10", "read", "set 5 from 7"]
    );
    assert_eq!(sim.shopify_available(ABOVE), Some(5));
    assert_eq!(daemon.pushed(ABOVE, "shop-us").await, Some(5));

    // 7 <= 8: left as the shop shows it, and 7 recorded as confirmed.
    assert_eq!(
        stock_calls(&sim, BELOW),
        ["set 10 from null", "set 8 from 10", "read"]
    );
    assert_eq!(sim.shopify_available(BELOW), Some(7));
    assert_eq!(daemon.pushed(BELOW, "shop-us").await, Some(7));

    // The shop's order for the three arrives: they are reserved (8 - 3 = 5)
    // and 5 is pushed against the 7 recorded, which now matches.
    daemon
        .order_webhook("shop-us", 6_200_001, &[(BELOW, 3)])
        .await;
    eventually(
        "the sale's order to settle",
        Duration::from_secs(10),
        async || sim.shopify_available(BELOW) == Some(5) && daemon.outbox(false).await.is_empty(),
    )
    .await;
    assert_eq!(daemon.stock(BELOW).await["available"], 5);
    assert_eq!(daemon.pushed(BELOW, "shop-us").await, Some(5));
    assert_eq!(
        stock_calls(&sim, BELOW),
        ["set 10 from null", "set 8 from 10", "read", "set 5 from 7"]
    );
    assert!(daemon.outbox(true).await.is_empty(), "no dead letters");
    assert_eq!(sim.throttled(), 0);
    daemon.stop().await;
    sim.stop().await;
}

/// One `inventorySetQuantities` carries many SKUs, each with its own
/// compare-and-set. Shopify applies it all or nothing: when some quantities
/// are stale it refuses the whole mutation and names each stale one by
/// position. The stale ones are read back and go by the conflict policy
/// (above the new level: pushed again against what the shop shows; at or
/// below it: left alone); the others are set by one more mutation of their
/// own. No quantity is written blindly, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_stale_quantities_sets_the_others_and_resolves_the_stale_ones() {
    const SKUS: [&str; 5] = ["BATCH-0", "BATCH-1", "BATCH-2", "BATCH-3", "BATCH-4"];
    let sim = simulator(&SKUS).await;
    let daemon = Daemon::start(&[Account {
        id: "shop-us",
        sim: &sim,
        buffer: None,
    }])
    .await;
    let all_at = |n: i64| SKUS.map(|s| (s, n));
    daemon.set_stock(&all_at(10)).await;
    eventually("every SKU at 10", Duration::from_secs(10), async || {
        SKUS.iter().all(|s| sim.shopify_available(s) == Some(10))
    })
    .await;
    daemon.wait_outbox_idle(Duration::from_secs(10)).await;
    let first = set_calls(&sim, &SKUS);
    assert_eq!(first.len(), 1, "one call for the five SKUs: {first:?}");
    assert_eq!(first[0].1.len(), 5);

    // The shop sells 2 of BATCH-1 (8 left: above the new level) and 5 of
    // BATCH-3 (5 left: below it) before the daemon hears of either.
    assert_eq!(sim.shopify_sell("BATCH-1", 2), Ok(8));
    assert_eq!(sim.shopify_sell("BATCH-3", 5), Ok(5));
    daemon.set_stock(&all_at(6)).await;
    eventually("the batch resolved", Duration::from_secs(10), async || {
        sim.shopify_available("BATCH-1") == Some(6) && daemon.outbox(false).await.is_empty()
    })
    .await;

    let calls = set_calls(&sim, &SKUS);
    let after: Vec<Vec<String>> = calls[1..]
        .iter()
        .map(|(_, q)| {
            let mut q = q.clone();
            q.sort();
            q
        })
        .collect();
    assert_eq!(
        after,
        [
            // Refused whole: positions of BATCH-1 and BATCH-3 named stale.
            vec![
                "BATCH-0 set 6 from 10",
                "BATCH-1 set 6 from 10",
                "BATCH-2 set 6 from 10",
                "BATCH-3 set 6 from 10",
                "BATCH-4 set 6 from 10",
            ],
            // The rest, at once, in a mutation of their own.
            vec![
                "BATCH-0 set 6 from 10",
                "BATCH-2 set 6 from 10",
                "BATCH-4 set 6 from 10",
            ],
            // BATCH-1 showed 8 > 6: pushed again against the 8 read back.
            vec!["BATCH-1 set 6 from 8"],
        ]
    );
    // Each mutation has its own idempotency key (a retry of the same pushes
    // would reuse it); a single push keeps its own item's key.
    let keys: Vec<&str> = calls.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys[..3].iter().all(|k| k.starts_with("switchyard-batch-")),
        "{keys:?}"
    );
    assert!(keys[3].starts_with("switchyard:shop-us:"), "{keys:?}");
    let distinct: std::collections::BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(distinct.len(), keys.len(), "{keys:?}");

    for sku in ["BATCH-1", "BATCH-3"] {
        assert_eq!(
            stock_calls(&sim, sku)
                .iter()
                .filter(|c| *c == "read")
                .count(),
            1
        );
    }
    for sku in ["BATCH-0", "BATCH-2", "BATCH-4"] {
        assert!(!stock_calls(&sim, sku).contains(&"read".to_owned()));
    }
    // What the shop shows, and what the daemon recorded as confirmed.
    for (sku, shows) in [
        ("BATCH-0", 6),
        ("BATCH-1", 6),
        ("BATCH-2", 6),
        ("BATCH-3", 5),
        ("BATCH-4", 6),
    ] {
        assert_eq!(sim.shopify_available(sku), Some(shows), "{sku}");
        assert_eq!(
            daemon.pushed(sku, "shop-us").await,
            Some(shows as u64),
            "{sku}"
        );
    }
    assert!(daemon.outbox(true).await.is_empty(), "no dead letters");
    assert_eq!(sim.throttled(), 0);
    daemon.stop().await;
    sim.stop().await;
}
