//! State at scale: a store filled with realistic orders through the real
//! ingest path, then the real daemon (the `switchyard` binary) run on it and
//! measured from the outside, at each size asked for (default 10,000 and
//! 100,000; `SCALE_SIZES=10000,100000,1000000`).
//!
//! Filling: Shopify `orders/*` REST bodies generated from a seed (about
//! 6.7 KB each: three to five lines, customer, addresses, fulfilments),
//! normalized by the Shopify connector, relabelled for five accounts on
//! four channels, and written by `Ingest::ingest` in batches with the rules
//! (`config/rules.toml` with unrouted Alaska and Hawaii orders instead of a
//! default route), history and the outbox. A fifth of the orders arrive
//! twice (paid, then shipped); the deliveries queued meanwhile are
//! completed, as a warehouse would have taken them.
//!
//! Measured at each size: the store on disk per order and the raw payload's
//! share of it; the daemon's start to `READY=1` (over `$NOTIFY_SOCKET`); its
//! resident memory at start, after 5 s idle, during reads of every filter
//! and during a burst of webhooks while two accounts poll; the first and
//! next page of `GET /api/v1/orders` for every filter; `orders show` with
//! history; a `/metrics` scrape; `stock set` of three SKUs (`PUT
//! /api/v1/stock`, which also gives them central levels) and `stock show` of
//! one (`GET /api/v1/stock/SKU`), after the restart below so that the other
//! figures stay comparable with earlier runs; an outbox pass over 10 due items; webhook
//! intake (and how many deliveries the destination took meanwhile, and the
//! bytes the daemon wrote to storage per delivery, from `/proc/PID/io`). Baselines from the same run, so ratios can be compared between
//! runs on a noisy machine: the daemon on an empty store (start, memory,
//! `GET /healthz`), and the storage ceiling for intake (a bare server that
//! verifies the HMAC, parses the order, inserts it and answers after the
//! store's group-commit flush with `fdatasync`), measured at each size just
//! after the daemon's burst into an empty store, and again writing into the
//! measured store itself (what the engine can take in at that size; those
//! orders are removed after).
//!
//! Plain `Instant` timing; run with `nice cargo bench --bench scale`.
//! `SCALE_CACHE_MB` sets the daemon's `cache_mb` (default: its default).
//! `SCALE_DIR` keeps the stores (default: a temporary folder); the figures
//! are also written as JSON lines to `$SCALE_DIR/results.jsonl` when set.
//! `SCALE_REUSE=1` (with `SCALE_DIR`) measures a store kept by an earlier
//! run instead of filling a new one: a million orders take a quarter of an
//! hour to fill. Each run adds its burst's orders to a reused store.
//! `SCALE_BIN=PATH` runs another build's daemon for every figure (the
//! fill and the in-process figures stay this build's).
//! `SCALE_ONLY=stock` measures only the stock figures (and the first start
//! to READY, which upgrades a store of an earlier layout), on a reused
//! store; with `SCALE_BASELINE_BIN=PATH` (a `switchyard` binary of another
//! build, say the last release), that build's stock figures are measured
//! first on the same store, as found, and the ratios printed.
//! `SCALE_ONLY=census` counts, on a reused store (which it changes: give
//! it a copy), the keys and bytes the store's transactions write and read
//! per tree for a new order's webhook and for a delivery noted on an order
//! (`Store::tally`), in process.
//! `SCALE_WRAP` runs the daemon under a command, e.g. `heaptrack -o FILE`
//! (memory figures are then the wrapper's, not the daemon's); `{n}` in it
//! becomes the number of the daemon's start in this run (0: empty store).

#![recursion_limit = "256"]
// A benchmark that cannot set up panics: that is its failure report.
// Random picks and sizes cast freely.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use switchyard::effects::Outbound;
use switchyard::effects::stock::StockTargets;
use switchyard::ingest::{Ingest, LiveRules, Source};
use switchyard::store::{Job, NewOutboxItem, Store, StoreOptions};
use switchyard_contract::{Channel, NormalizedOrder, Order, Secret};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SECRET: &str = "bench-webhook-secret";
const ADMIN: &str = "bench-admin-token";
/// Orders per `Ingest::ingest` call while filling.
const FILL_BATCH: usize = 500;
/// Webhook deliveries per intake measurement, and concurrent senders.
const BURST: usize = 4_000;
const SENDERS: usize = 32;
/// Webhooks sent one at a time before the burst (single-delivery latency).
const SINGLES: usize = 100;
/// `SCALE_REUSE=1`: measure stores kept by an earlier run (`SCALE_DIR`).
fn reuse() -> bool {
    std::env::var("SCALE_REUSE").is_ok_and(|v| v == "1") && std::env::var_os("SCALE_DIR").is_some()
}

/// Repetitions of each timed read (`SCALE_REPS`, default 7); the median is reported.
fn reps() -> usize {
    std::env::var("SCALE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7usize)
        .max(1)
}

// --- generated orders -----------------------------------------------------------

/// xorshift64*: reproducible without a crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// True with probability `per_mille`/1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// (account, channel, share in per mille).
const ACCOUNTS: [(&str, Channel, u64); 5] = [
    ("shop-us", Channel::Shopify, 400),
    ("shop-ca", Channel::Shopify, 150),
    ("etsy-main", Channel::Etsy, 200),
    ("ebay-us", Channel::Ebay, 150),
    ("amazon-na", Channel::Amazon, 100),
];

const COMMON_TAGS: [&str; 10] = [
    "vip",
    "wholesale",
    "gift",
    "repeat",
    "promo-bf",
    "promo-cm",
    "newsletter",
    "influencer",
    "b2b",
    "staff",
];

const FIRST: [&str; 12] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "John",
    "Radia", "Leslie",
];
const LAST: [&str; 12] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen",
    "Backus", "Perlman", "Lamport",
];
/// (country code, country, region code, region, weight in per mille).
const PLACES: [(&str, &str, &str, &str, u64); 12] = [
    ("US", "United States", "IL", "Illinois", 180),
    ("US", "United States", "NY", "New York", 160),
    ("US", "United States", "TX", "Texas", 120),
    ("US", "United States", "CA", "California", 140),
    ("US", "United States", "WA", "Washington", 60),
    ("US", "United States", "FL", "Florida", 60),
    ("US", "United States", "AK", "Alaska", 10),
    ("US", "United States", "HI", "Hawaii", 10),
    ("CA", "Canada", "ON", "Ontario", 110),
    ("GB", "United Kingdom", "ENG", "England", 60),
    ("DE", "Germany", "BE", "Berlin", 50),
    ("AU", "Australia", "NSW", "New South Wales", 40),
];

/// What an order's final version says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    Shipped,
    PartiallyShipped,
    Ready,
    Pending,
    Cancelled,
}

/// The newest order placed in a filled store; older ones go back from here.
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn money_set(amount: &str, currency: &str) -> Value {
    json!({ "shop_money": { "amount": amount, "currency_code": currency },
            "presentment_money": { "amount": amount, "currency_code": currency } })
}

fn cents(c: u64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// The account and the REST body of order `n` of a store of `total`
/// orders, as it reads once `fate` has happened (`as_paid`: the earlier
/// version, paid and not yet shipped).
struct Generated {
    account: &'static str,
    channel: Channel,
    fate: Fate,
    /// Arrives twice: paid first, then in its final state.
    twice: bool,
    n: u64,
    total: u64,
}

impl Generated {
    fn new(n: u64, total: u64) -> Generated {
        let mut rng = Rng::new(n);
        let mut roll = rng.below(1000);
        let (account, channel) = ACCOUNTS
            .iter()
            .find(|(_, _, share)| {
                if roll < *share {
                    true
                } else {
                    roll -= share;
                    false
                }
            })
            .map(|(a, c, _)| (*a, *c))
            .unwrap_or(("shop-us", Channel::Shopify));
        // Open orders are the newest ones: a store is mostly history.
        let age = total.saturating_sub(n);
        let recent = age < (total / 20).max(50);
        let roll = rng.below(1000);
        let fate = if roll < 50 {
            Fate::Cancelled
        } else if recent && roll < 450 {
            Fate::Ready
        } else if recent && roll < 600 {
            Fate::Pending
        } else if recent && roll < 650 {
            Fate::PartiallyShipped
        } else {
            Fate::Shipped
        };
        let twice = fate == Fate::Shipped && rng.chance(200);
        Generated {
            account,
            channel,
            fate,
            twice,
            n,
            total,
        }
    }

    fn channel_order_id(&self) -> u64 {
        7_000_000_000 + self.n
    }

    fn placed_at(&self) -> DateTime<Utc> {
        // Three years of orders, oldest first, a few seconds apart at most.
        let span = 3 * 365 * 24 * 3600;
        let step = span / self.total.max(1);
        let back = self.total.saturating_sub(self.n) * step;
        epoch() - chrono::Duration::seconds(back as i64)
    }

    fn body(&self, as_paid: bool) -> Value {
        let mut rng = Rng::new(self.n ^ 0xA5A5_5A5A);
        let id = self.channel_order_id();
        let placed = self.placed_at();
        let updated = if as_paid {
            placed + chrono::Duration::minutes(2)
        } else {
            placed + chrono::Duration::hours(30)
        };
        let currency = match self.account {
            "shop-ca" => "CAD",
            _ => "USD",
        };
        let mut roll = rng.below(1000);
        let place = PLACES
            .iter()
            .find(|p| {
                if roll < p.4 {
                    true
                } else {
                    roll -= p.4;
                    false
                }
            })
            .unwrap_or(&PLACES[0]);
        let (first, last) = (rng.pick(&FIRST), rng.pick(&LAST));
        let email = format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            rng.below(10_000)
        );
        let mut tags: Vec<String> = Vec::new();
        for _ in 0..rng.below(3) {
            tags.push((*rng.pick(&COMMON_TAGS)).to_owned());
        }
        if rng.chance(300) {
            tags.push(format!("batch-{}", rng.below(500)));
        }
        let lines = 3 + rng.below(3);
        let mut subtotal = 0;
        let mut line_items = Vec::new();
        for l in 0..lines {
            let sku_n = rng.below(400);
            let sku = format!(
                "{}-{sku_n:03}",
                ["MUG", "TEE", "CAP", "BAG", "PIN", "CARD"][(sku_n % 6) as usize]
            );
            let qty = 1 + rng.below(3);
            // Now and then a large basket, which the rules hold for review.
            let price = if rng.chance(3) {
                40_000
            } else {
                500 + rng.below(4_500)
            };
            subtotal += price * qty;
            line_items.push(json!({
                "id": id * 10 + l, "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", id * 10 + l),
                "fulfillable_quantity": qty, "fulfillment_service": "manual", "gift_card": false,
                "grams": 100 + rng.below(900), "name": format!("Product {sku} - Variant {}", l + 1),
                "price": cents(price), "price_set": money_set(&cents(price), currency),
                "product_exists": true, "product_id": 9_000 + sku_n, "properties": [],
                "quantity": qty, "requires_shipping": true, "sku": sku, "taxable": true,
                "title": format!("Product {sku}"), "total_discount": "0.00",
                "variant_id": 42_000 + sku_n, "variant_inventory_management": "shopify",
                "variant_title": format!("Variant {}", l + 1), "vendor": "Switchyard Bench Goods",
                "tax_lines": [{ "price": cents(price * qty * 8 / 100), "rate": 0.08, "title": "State tax" }],
                "discount_allocations": []
            }));
        }
        let shipping = 500;
        let tax = subtotal * 8 / 100;
        let total = subtotal + shipping + tax;
        let status = if as_paid { Fate::Ready } else { self.fate };
        let (financial, fulfillment, cancelled_at) = match status {
            Fate::Shipped => ("paid", Some("fulfilled"), None),
            Fate::PartiallyShipped => ("paid", Some("partial"), None),
            Fate::Ready => ("paid", None, None),
            Fate::Pending => ("pending", None, None),
            Fate::Cancelled => ("refunded", None, Some(updated.to_rfc3339())),
        };
        let fulfillments: Vec<Value> = match status {
            Fate::Shipped | Fate::PartiallyShipped => {
                let take = if status == Fate::Shipped {
                    line_items.len()
                } else {
                    1
                };
                vec![json!({
                    "id": id * 3, "status": "success", "created_at": updated.to_rfc3339(),
                    "tracking_company": "UPS", "tracking_number": format!("1Z{id:016}"),
                    "tracking_numbers": [format!("1Z{id:016}")],
                    "tracking_url": format!("https://www.ups.com/track?tracknum=1Z{id:016}"),
                    "tracking_urls": [format!("https://www.ups.com/track?tracknum=1Z{id:016}")],
                    "line_items": line_items[..take].iter().map(|l| json!({ "id": l["id"], "quantity": l["quantity"] })).collect::<Vec<_>>()
                })]
            }
            _ => vec![],
        };
        let address = json!({
            "first_name": first, "last_name": last, "name": format!("{first} {last}"),
            "address1": format!("{} Main St", 1 + rng.below(999)), "address2": "", "company": null,
            "city": "Springfield", "zip": format!("{:05}", rng.below(99_999)),
            "province": place.3, "province_code": place.2, "country": place.1,
            "country_code": place.0, "phone": null, "latitude": null, "longitude": null
        });
        json!({
            "id": id, "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
            "app_id": 580_111, "browser_ip": "192.0.2.1", "buyer_accepts_marketing": false,
            "cancel_reason": cancelled_at.as_ref().map(|_| "customer"), "cancelled_at": cancelled_at,
            "checkout_id": id + 11, "checkout_token": format!("{id:x}checkout"),
            "confirmation_number": format!("C{id:X}"), "contact_email": email,
            "created_at": placed.to_rfc3339(), "currency": currency, "email": email,
            "financial_status": financial, "fulfillment_status": fulfillment,
            "landing_site": "/collections/all", "name": format!("#{}", 1000 + self.n),
            "note": null, "note_attributes": [], "order_number": 1000 + self.n, "phone": null,
            "presentment_currency": currency, "processed_at": placed.to_rfc3339(),
            "source_name": "web", "subtotal_price": cents(subtotal),
            "subtotal_price_set": money_set(&cents(subtotal), currency),
            "tags": tags.join(", "), "taxes_included": false, "test": false,
            "total_discounts": "0.00", "total_discounts_set": money_set("0.00", currency),
            "total_line_items_price": cents(subtotal),
            "total_line_items_price_set": money_set(&cents(subtotal), currency),
            "total_price": cents(total), "total_price_set": money_set(&cents(total), currency),
            "total_shipping_price_set": money_set(&cents(shipping), currency),
            "total_tax": cents(tax), "total_tax_set": money_set(&cents(tax), currency),
            "total_weight": 1200, "updated_at": updated.to_rfc3339(),
            "billing_address": address.clone(), "shipping_address": address,
            "customer": { "id": 7_000_000 + rng.below(1_000_000), "email": email,
                          "created_at": placed.to_rfc3339(), "updated_at": placed.to_rfc3339(),
                          "first_name": first, "last_name": last, "state": "enabled", "note": null,
                          "verified_email": true, "phone": null, "tags": "", "currency": currency },
            "line_items": line_items,
            "shipping_lines": [{ "id": id + 7, "code": "Standard", "price": cents(shipping),
                                 "price_set": money_set(&cents(shipping), currency), "source": "shopify",
                                 "title": "Standard", "discounted_price": cents(shipping),
                                 "tax_lines": [], "discount_allocations": [] }],
            "fulfillments": fulfillments, "refunds": []
        })
    }

    /// The canonical order of `body`, in this order's account and channel.
    fn normalize(&self, body: &Value) -> NormalizedOrder {
        let mut n = switchyard_shopify::normalize_rest_order(self.account, body)
            .expect("generated bodies are Shopify orders");
        n.order.channel = self.channel;
        n.order.id = Order::make_id(self.account, &n.order.channel_order_id);
        n
    }
}

/// The rules the store is filled with: the example rules, with Alaska and
/// Hawaii left unrouted instead of a default route.
fn bench_rules(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(REPO).join("config/rules.toml")).unwrap();
    let mut text: String = text
        .lines()
        .filter(|l| !l.starts_with("default_route"))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(
        "\n[[rule]]\nname = \"rest-of-us\"\nwhen = { country = \"US\", not = { region = [\"AK\", \"HI\"] } }\nthen = { route = \"east-wh\" }\n",
    );
    let path = dir.join("rules.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn load_rules(path: &Path) -> switchyard::rules::RuleSet {
    let dests = ["east-wh".to_owned(), "west-3pl".to_owned()];
    switchyard::rules::load_rules(path, &dests)
        .map(|(r, _)| r)
        .unwrap_or_else(|e| panic!("bench rules: {e:?}"))
}

// --- filling --------------------------------------------------------------------

#[derive(Default, Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Filled {
    /// Bursts of webhooks a reused store has taken in earlier runs.
    #[serde(default)]
    bursts: u64,
    orders: u64,
    raw_bytes: u64,
    seconds: f64,
    /// An order with more than one history entry, for `orders show`.
    shown: String,
}

fn fill(state: &Path, rules: &Path, total: u64) -> Filled {
    let store = Store::open(state, StoreOptions::default()).unwrap();
    let outbound = Outbound::new(StockTargets::new(vec![]));
    let ingest =
        Ingest::new(store.clone(), LiveRules::new(load_rules(rules))).with_outbound(outbound);
    let started = Instant::now();
    let mut filled = Filled::default();
    let mut later: Vec<Generated> = Vec::new();
    let mut batch: BTreeMap<&'static str, Vec<NormalizedOrder>> = BTreeMap::new();
    let flush = |batch: &mut BTreeMap<&'static str, Vec<NormalizedOrder>>, now| {
        for (account, orders) in std::mem::take(batch) {
            ingest
                .receive(account, orders, Source::Fetch, now)
                .unwrap_or_else(|e| panic!("filling {account}: {e}"));
        }
    };
    let mut pending = 0;
    for n in 0..total {
        let g = Generated::new(n, total);
        let body = g.body(g.twice);
        let normalized = g.normalize(&body);
        if !g.twice {
            filled.raw_bytes += serde_json::to_vec(&body).unwrap().len() as u64;
        }
        batch.entry(g.account).or_default().push(normalized);
        pending += 1;
        if g.twice {
            later.push(g);
        }
        if pending >= FILL_BATCH {
            flush(&mut batch, Utc::now());
            pending = 0;
            // The shipped versions of orders that came in paid, a while later.
            if later.len() >= FILL_BATCH {
                for g in later.drain(..) {
                    let body = g.body(false);
                    filled.raw_bytes += serde_json::to_vec(&body).unwrap().len() as u64;
                    if filled.shown.is_empty() {
                        filled.shown = Order::make_id(g.account, &g.channel_order_id().to_string());
                    }
                    batch.entry(g.account).or_default().push(g.normalize(&body));
                }
                flush(&mut batch, Utc::now());
            }
            if n % 100_000 < FILL_BATCH as u64 && n > 0 {
                eprintln!(
                    "  filled {n} orders in {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    for g in later.drain(..) {
        let body = g.body(false);
        filled.raw_bytes += serde_json::to_vec(&body).unwrap().len() as u64;
        if filled.shown.is_empty() {
            filled.shown = Order::make_id(g.account, &g.channel_order_id().to_string());
        }
        batch.entry(g.account).or_default().push(g.normalize(&body));
    }
    flush(&mut batch, Utc::now());
    // A warehouse took every delivery queued meanwhile.
    let delivered = store.outbox_list(false).unwrap();
    for item in &delivered {
        store.outbox_complete(&item.id).unwrap();
    }
    store.flush_blocking().unwrap();
    filled.orders = total;
    filled.seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "  filled {total} orders in {:.0} s ({} deliveries completed)",
        filled.seconds,
        delivered.len()
    );
    drop(ingest);
    store.close().unwrap();
    filled
}

/// What `fill` reported for a store it filled before `filled.json` was
/// kept beside it (the fill time is unknown: 0).
fn filled_before(total: u64) -> Filled {
    let mut filled = Filled {
        orders: total,
        ..Filled::default()
    };
    for n in 0..total {
        let g = Generated::new(n, total);
        filled.raw_bytes += serde_json::to_vec(&g.body(false)).unwrap().len() as u64;
        if g.twice && filled.shown.is_empty() {
            filled.shown = Order::make_id(g.account, &g.channel_order_id().to_string());
        }
    }
    filled
}

/// (apparent bytes, bytes allocated on disk) of everything under `dir`.
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut sum = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let (a, b) = disk_usage(&entry.path());
            sum.0 += a;
            sum.1 += b;
        } else {
            sum.0 += meta.len();
            sum.1 += meta.blocks() * 512;
        }
    }
    sum
}

// --- the daemon -----------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(
    dir: &Path,
    state: &Path,
    rules: &Path,
    port: u16,
    shop_url: &str,
    sink: &str,
) -> PathBuf {
    let mut text = format!(
        "[daemon]\nstate_dir = {state:?}\nlisten = \"127.0.0.1:{port}\"\nrules = {rules:?}\nadmin_token = \"{ADMIN}\"\n"
    );
    // `SCALE_CACHE_MB`: the daemon's page cache, to compare settings (unset:
    // the default).
    if let Ok(mb) = std::env::var("SCALE_CACHE_MB") {
        text.push_str(&format!("cache_mb = {}\n", mb.trim()));
    }
    for account in ["shop-us", "shop-ca"] {
        text.push_str(&format!(
            "\n[[account]]\nid = \"{account}\"\nchannel = \"shopify\"\nbase_url = \"{shop_url}\"\npoll_interval = \"2s\"\nwebhooks = true\naccess_token = \"bench-token\"\nwebhook_secret = \"{SECRET}\"\n"
        ));
    }
    for (id, secret) in [("east-wh", "bench-east"), ("west-3pl", "bench-west")] {
        text.push_str(&format!(
            "\n[[destination]]\nid = \"{id}\"\nkind = \"webhook\"\nurl = \"{sink}/{id}\"\nsecret = \"{secret}\"\n"
        ));
    }
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Daemon {
    child: Child,
    base: String,
    http: reqwest::Client,
    /// Spawn to `READY=1`.
    ready_after: Duration,
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user and system, all threads) a process has used so far, in
/// ms: what a burst costs whatever else the machine runs meanwhile.
fn cpu_ms(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    // USER_HZ, 100 on Linux.
    ticks * 10.0
}

/// Bytes a process has caused to be written to storage so far (its log
/// writes: the engine's write volume, including what its cleaning moves).
fn written_bytes(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

impl Daemon {
    /// Starts this build's daemon, or the one at `SCALE_BIN` (another
    /// build's, to compare every figure on copies of one kept store).
    fn start(config: &Path, dir: &Path) -> Daemon {
        let bin = std::env::var("SCALE_BIN").unwrap_or_else(|_| BIN.to_owned());
        Daemon::start_bin(&bin, config, dir)
    }

    /// `start`, with the `switchyard` binary at `bin`.
    fn start_bin(bin: &str, config: &Path, dir: &Path) -> Daemon {
        let sock_path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&sock_path);
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(600)))
            .unwrap();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        let started = Instant::now();
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let start = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wrap = std::env::var("SCALE_WRAP")
            .unwrap_or_default()
            .replace("{n}", &start.to_string());
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(wrapper) => {
                let mut c = Command::new(wrapper);
                c.args(words).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("NOTIFY_SOCKET", &sock_path)
            .env("RUST_LOG", "warn,switchyard=info")
            .env_remove("SWITCHYARD_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no READY=1 from the daemon: {e}"));
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                break;
            }
        }
        let ready_after = started.elapsed();
        let text = std::fs::read_to_string(config).unwrap();
        let port = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
            .and_then(|p| p.trim_end_matches('"').parse::<u16>().ok())
            .unwrap();
        Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            ready_after,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (resident now, peak since the last `reset_peak`), in MB.
    fn memory(&self) -> (f64, f64) {
        (
            proc_status_kb(self.pid(), "VmRSS:") as f64 / 1024.0,
            proc_status_kb(self.pid(), "VmHWM:") as f64 / 1024.0,
        )
    }

    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// One GET: (status, `X-Next-After`, body bytes, time).
    async fn get(&self, path: &str) -> (u16, Option<String>, usize, Duration) {
        let t = Instant::now();
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let next = resp
            .headers()
            .get("x-next-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.bytes().await.unwrap();
        (status, next, body.len(), t.elapsed())
    }

    /// The median time of `REPS` GETs of `path`, and the last answer.
    async fn timed(&self, path: &str) -> (Duration, u16, Option<String>, usize) {
        let mut times = Vec::new();
        let mut last = (0, None, 0);
        let reps = reps();
        for _ in 0..reps {
            let (status, next, len, t) = self.get(path).await;
            times.push(t);
            last = (status, next, len);
        }
        times.sort();
        (times[reps / 2], last.0, last.1, last.2)
    }

    /// SIGTERM, then wait for the exit.
    fn stop(mut self) -> Duration {
        let t = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        // A wrapper (`SCALE_WRAP`) waits for the daemon it started.
        let _ = Command::new("pkill")
            .args(["-TERM", "-P", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(
            status.success() || std::env::var_os("SCALE_WRAP").is_some(),
            "the daemon exited with {status}"
        );
        t.elapsed()
    }
}

/// Signed `orders/create` deliveries of new orders (`first..first+count`).
fn webhook_bodies(first: u64, count: usize, total: u64) -> Vec<(String, Vec<u8>)> {
    (0..count as u64)
        .map(|i| {
            let mut g = Generated::new(first + i, total);
            g.account = if i % 2 == 0 { "shop-us" } else { "shop-ca" };
            g.fate = Fate::Ready;
            (
                g.account.to_owned(),
                serde_json::to_vec(&g.body(false)).unwrap(),
            )
        })
        .collect()
}

/// Posts every body with `SENDERS` senders at once; answers deliveries per second.
async fn burst(base: &str, bodies: Vec<(String, Vec<u8>)>, first: u64) -> f64 {
    burst_timed(base, bodies, first, SENDERS).await.0
}

/// `burst` with `senders` senders; also answers each request's time from
/// send to answer, sorted.
async fn burst_timed(
    base: &str,
    bodies: Vec<(String, Vec<u8>)>,
    first: u64,
    senders_n: usize,
) -> (f64, Vec<Duration>) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SENDERS)
        .build()
        .unwrap();
    let secret = Secret::new(SECRET);
    let count = bodies.len();
    let work = Arc::new(Mutex::new(
        bodies.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..senders_n {
        let (work, client, base, secret) = (
            work.clone(),
            client.clone(),
            base.to_owned(),
            secret.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let Some((i, (account, body))) = work.lock().unwrap().pop() else {
                    break;
                };
                let sig = switchyard_shopify::webhook::sign(&body, &secret);
                let sent = Instant::now();
                let resp = client
                    .post(format!("{base}/webhooks/{account}"))
                    .header("x-shopify-topic", "orders/create")
                    .header(
                        "x-shopify-event-id",
                        format!("bench-{}-{}", first + i as u64, body.len()),
                    )
                    .header("x-shopify-hmac-sha256", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    resp.status(),
                    200,
                    "{}",
                    resp.text().await.unwrap_or_default()
                );
                times.push(sent.elapsed());
            }
            times
        }));
    }
    let mut times = Vec::new();
    for s in senders {
        times.extend(s.await.unwrap());
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    times.sort();
    (rate, times)
}

/// The `q` quantile of sorted times, in ms.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    ms(sorted[i])
}

/// Per thread of a process (by name, digits dropped: `tokio-runtime-w`,
/// `sled-io`, ...): threads, context switches (voluntary, involuntary)
/// and CPU ticks so far.
fn thread_stats(pid: u32) -> BTreeMap<String, [u64; 4]> {
    let mut out: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name: String = std::fs::read_to_string(dir.join("comm"))
            .unwrap_or_default()
            .trim()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let field = |f: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(f))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let ticks: u64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse::<u64>().ok())
            .sum();
        let e = out.entry(name).or_default();
        e[0] += 1;
        e[1] += field("voluntary_ctxt_switches:");
        e[2] += field("nonvoluntary_ctxt_switches:");
        e[3] += ticks;
    }
    out
}

/// Threads (by name) whose counts moved between two `thread_stats`:
/// (name, threads after, voluntary and involuntary switches, CPU ms). A
/// thread that ended meanwhile takes its counts with it, so these are
/// lower bounds for threads that come and go (tokio's blocking threads).
fn thread_deltas(
    before: &BTreeMap<String, [u64; 4]>,
    after: &BTreeMap<String, [u64; 4]>,
) -> Vec<(String, u64, i64, i64, i64)> {
    after
        .iter()
        .map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            let d = |i: usize| a[i] as i64 - b[i] as i64;
            (name.clone(), a[0], d(1), d(2), d(3) * 10)
        })
        .filter(|(_, _, v, n, c)| *v != 0 || *n != 0 || *c != 0)
        .collect()
}

/// What a run of the ceiling measured: deliveries per second, this
/// process's CPU (µs) and bytes written to storage (KB) per delivery, and
/// the keys it wrote.
struct Ceiling {
    rate: f64,
    cpu_us: f64,
    written_kb: f64,
    keys: Vec<Vec<u8>>,
}

/// The storage ceiling: verify the HMAC, parse the order, insert it into
/// `store`'s orders under `CEILING_KEY` and its id, answer after the
/// group-commit flush. Nothing else.
async fn ceiling(store: &Store, bodies: Vec<(String, Vec<u8>)>) -> Ceiling {
    let me = std::process::id();
    let (cpu_before, written_before) = (cpu_ms(me), written_bytes(me));
    let count = bodies.len() as f64;
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode};
    type Written = Arc<Mutex<Vec<Vec<u8>>>>;
    async fn handle(
        State((store, written)): State<(Store, Written)>,
        UrlPath(account): UrlPath<String>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let Some(sig) = headers
            .get("x-shopify-hmac-sha256")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        else {
            return StatusCode::UNAUTHORIZED;
        };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&body);
        if mac.verify_slice(&sig).is_err() {
            return StatusCode::UNAUTHORIZED;
        }
        let Ok(value) = serde_json::from_slice::<Value>(&body) else {
            return StatusCode::BAD_REQUEST;
        };
        let Ok(order) = switchyard_shopify::normalize_rest_order(&account, &value) else {
            return StatusCode::BAD_REQUEST;
        };
        let bytes = serde_json::to_vec(&order).unwrap();
        let key = [CEILING_KEY, order.order.id.as_bytes()].concat();
        store.raw_insert_for_tests("orders", &key, &bytes).unwrap();
        written.lock().unwrap().push(key);
        store.flush().await.unwrap();
        StatusCode::OK
    }
    let written = Written::default();
    let app = axum::Router::new()
        .route("/webhooks/{account}", axum::routing::post(handle))
        .with_state((store.clone(), written.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let rate = burst(&base, bodies, 0).await;
    server.abort();
    let keys = std::mem::take(&mut *written.lock().unwrap());
    Ceiling {
        rate,
        cpu_us: (cpu_ms(me) - cpu_before) * 1000.0 / count,
        written_kb: (written_bytes(me) - written_before) as f64 / 1024.0 / count,
        keys,
    }
}

/// Webhooks (and deliveries noted) the census takes the mean of.
const CENSUS: usize = 200;

/// `SCALE_ONLY=census`: what the store's transactions read and write, per
/// tree, for a new order's webhook (its ingest, in process, as the daemon's
/// webhook route calls it) and for a delivery noted on its order (the
/// outbox item completed and the order's delivery and history written in
/// one batch, as a destination's worker does). Means over [`CENSUS`] of
/// each, on a kept store, which it changes: measure a copy.
fn census(dir: &Path, rules: &Path, size: u64) -> Report {
    use switchyard::store::{Job, OrderWrite, Tally, WriteBatch};
    let mut r = Report::default();
    let state = dir.join("state");
    assert!(
        state.exists(),
        "SCALE_ONLY=census measures a kept store: none in {}",
        dir.display()
    );
    let store = Store::open(&state, StoreOptions::default()).unwrap();
    store.count_writes();
    let outbound = Outbound::new(StockTargets::new(vec![]));
    let ingest =
        Ingest::new(store.clone(), LiveRules::new(load_rules(rules))).with_outbound(outbound);
    let show = |r: &mut Report, what: &str, t: &Tally, n: usize| {
        let n = n.max(1) as f64;
        let per = |v: u64| v as f64 / n;
        let trees: Vec<String> = t
            .trees()
            .filter(|(_, x)| x.inserts + x.removes + x.reads > 0)
            .map(|(name, x)| {
                format!(
                    "{name} {:.2}+{:.2}-{:.2}r ({:.0} B)",
                    per(x.inserts),
                    per(x.removes),
                    per(x.reads),
                    per(x.bytes)
                )
            })
            .collect();
        r.add(
            &format!("census: {what}, keys written / read"),
            format!(
                "{:.2} / {:.2}, {:.0} bytes",
                per(t.keys_written()),
                per(t.keys_read()),
                per(t.bytes_written())
            ),
            json!({ "keys_written": per(t.keys_written()), "keys_read": per(t.keys_read()),
                    "bytes_written": per(t.bytes_written()) }),
        );
        println!("    (per tree: inserts+removes-reads) {}", trees.join("; "));
    };
    let first = size + 70_000_000 + (std::process::id() as u64 % 1000) * 10_000;
    let mut ids = std::collections::BTreeSet::new();
    let before = store.tally();
    for (account, body) in webhook_bodies(first, CENSUS, size) {
        let value: Value = serde_json::from_slice(&body).unwrap();
        let mut n = switchyard_shopify::normalize_rest_order(&account, &value).unwrap();
        n.raw = Value::Null;
        n.raw_json = Some(body);
        ids.insert(n.order.id.clone());
        let key = format!("census:{account}:{}", n.order.id);
        ingest
            .receive(
                &account,
                vec![n],
                Source::Webhook {
                    dedupe_key: Some(key),
                },
                Utc::now(),
            )
            .unwrap();
    }
    show(
        &mut r,
        "a new order's webhook",
        &store.tally().since(&before),
        CENSUS,
    );
    let items: Vec<_> = store
        .outbox_list(false)
        .unwrap()
        .into_iter()
        .filter_map(|item| match &item.job {
            Job::Deliver(p) if ids.contains(&p.order_id) => {
                Some((item.id.clone(), p.order_id.clone(), p.delivery_id.clone()))
            }
            _ => None,
        })
        .collect();
    let before = store.tally();
    for (item, order_id, delivery_id) in &items {
        let mut o = store.get_order(order_id).unwrap().unwrap();
        let at = Utc::now();
        o.delivered = Some(switchyard::store::DeliveredTo {
            destination: "east-wh".to_owned(),
            delivery_id: delivery_id.clone(),
            at,
        });
        if let Some(part) = o.parts.iter_mut().find(|x| x.delivery_id == *delivery_id) {
            part.delivered_at = Some(at);
        }
        let mut batch = WriteBatch::new(at);
        batch.complete.push(item.clone());
        batch.orders.push(OrderWrite::Local {
            expected_revision: o.revision,
            order: o,
            kind: "delivered".to_owned(),
            detail: format!("delivered to east-wh (delivery {delivery_id})"),
            outbox: vec![],
        });
        store.apply(batch).unwrap();
    }
    show(
        &mut r,
        &format!(
            "a delivery noted ({} of {CENSUS} orders queued one)",
            items.len()
        ),
        &store.tally().since(&before),
        items.len(),
    );
    store.flush_blocking().unwrap();
    drop(ingest);
    store.close().unwrap();
    r
}

/// Where the ceiling's orders go: after every order id (ids start with a
/// channel name), so in a measured store they sit apart and are removed
/// after.
const CEILING_KEY: &[u8] = b"~bench-ceiling:";

// --- one size -------------------------------------------------------------------

/// The SKUs `stock set` gives levels to (the first is shown): each of the
/// 400 SKUs is on about one line in a hundred.
const STOCK_SKUS: [&str; 3] = ["MUG-000", "TEE-001", "CAP-002"];

/// Median times of `stock set` of [`STOCK_SKUS`] and `stock show` of the
/// first, through the admin API, and the reservations shown.
struct StockFigures {
    set: Duration,
    show: Duration,
    /// The reservations shown, as JSON.
    reservations: Value,
}

async fn stock_figures(daemon: &Daemon) -> StockFigures {
    let levels: Vec<Value> = STOCK_SKUS
        .iter()
        .map(|sku| json!({ "sku": sku, "available": 100_000 }))
        .collect();
    let body = serde_json::to_vec(&levels).unwrap();
    let mut times = Vec::new();
    for _ in 0..reps() {
        let t = Instant::now();
        let resp = daemon
            .http
            .put(format!("{}/api/v1/stock", daemon.base))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        times.push(t.elapsed());
        assert!(status.is_success(), "PUT /api/v1/stock: {status} {text}");
    }
    times.sort();
    let set = times[times.len() / 2];
    let path = format!("/api/v1/stock/{}", STOCK_SKUS[0]);
    let (show, status, _, _) = daemon.timed(&path).await;
    assert_eq!(status, 200, "GET {path}");
    let view: Value = daemon
        .http
        .get(format!("{}{path}", daemon.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    StockFigures {
        set,
        show,
        reservations: view["reservations"].clone(),
    }
}

fn add_stock_figures(r: &mut Report, label: &str, f: &StockFigures, before: Option<&StockFigures>) {
    let ratio = |now: Duration, then: Option<Duration>| {
        then.map_or(String::new(), |t| {
            format!(" ({:.4}x the baseline's {:.1} ms)", ms(now) / ms(t), ms(t))
        })
    };
    r.add(
        &format!("stock set, 3 SKUs{label}"),
        format!("{:.1} ms{}", ms(f.set), ratio(f.set, before.map(|b| b.set))),
        json!({ "ms": ms(f.set), "baseline_ms": before.map(|b| ms(b.set)) }),
    );
    r.add(
        &format!(
            "stock show, {} reservations{label}",
            f.reservations.as_array().map_or(0, Vec::len)
        ),
        format!("{:.1} ms{}", ms(f.show), ratio(f.show, before.map(|b| b.show))),
        json!({ "ms": ms(f.show), "reservations": f.reservations.as_array().map_or(0, Vec::len), "baseline_ms": before.map(|b| ms(b.show)) }),
    );
}

/// `SCALE_ONLY=stock`: the stock figures of a reused store, with the
/// baseline build's first (`SCALE_BASELINE_BIN`); this build's first start
/// upgrades a store of an earlier layout.
async fn measure_stock(dir: &Path, rules: &Path, shop: &str, sink: &str) -> Report {
    let mut r = Report::default();
    let state = dir.join("state");
    assert!(
        state.exists(),
        "SCALE_ONLY=stock measures a kept store: none in {}",
        dir.display()
    );
    let config = write_config(dir, &state, rules, free_port(), shop, sink);
    let before = match std::env::var("SCALE_BASELINE_BIN") {
        Ok(bin) => {
            let daemon = Daemon::start_bin(&bin, &config, dir);
            let f = stock_figures(&daemon).await;
            daemon.stop();
            add_stock_figures(&mut r, " (baseline build)", &f, None);
            Some(f)
        }
        Err(_) => None,
    };
    let daemon = Daemon::start(&config, dir);
    let upgraded = std::fs::read_to_string(dir.join("daemon.log"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains("store: upgraded to layout"))
        .and_then(|l| l.split("seconds=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    let (_, peak) = daemon.memory();
    r.add(
        "first start to READY=1 (upgrade of an earlier layout included)",
        format!(
            "{:.0} ms{}, peak {peak:.0} MB resident",
            ms(daemon.ready_after),
            upgraded.map_or(String::new(), |s| format!(" (the upgrade: {s:.1} s)"))
        ),
        json!({ "ready_ms": ms(daemon.ready_after), "upgrade_s": upgraded, "peak_mb": peak }),
    );
    let f = stock_figures(&daemon).await;
    daemon.stop();
    if let Some(before) = &before {
        assert_eq!(
            f.reservations, before.reservations,
            "this build shows other reservations than the baseline build"
        );
    }
    add_stock_figures(&mut r, "", &f, before.as_ref());
    r
}

/// (name, query) of every filter, each first page and next page.
const FILTERS: [(&str, &str); 12] = [
    ("all", ""),
    ("status=ready", "status=ready"),
    ("status=shipped", "status=shipped"),
    ("account=shop-ca", "account=shop-ca"),
    ("channel=etsy", "channel=etsy"),
    ("route=west-3pl", "route=west-3pl"),
    ("route=none", "route=none"),
    ("held=true", "held=true"),
    ("tag=vip", "tag=vip"),
    ("tag=batch-7", "tag=batch-7"),
    ("status=ready&channel=ebay", "status=ready&channel=ebay"),
    ("tag=nobody-has-this", "tag=nobody-has-this"),
];

const PAGE: usize = 50;

#[derive(Default)]
struct Report {
    lines: Vec<(String, String)>,
    json: serde_json::Map<String, Value>,
}

impl Report {
    fn add(&mut self, key: &str, shown: String, value: Value) {
        println!("  {key:<42} {shown}");
        self.lines.push((key.to_owned(), shown));
        self.json.insert(key.to_owned(), value);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Baseline {
    ready_ms: f64,
    rss_mb: f64,
    healthz_ms: f64,
}

async fn empty_baseline(dir: &Path, rules: &Path, shop: &str, sink: &str) -> Baseline {
    let state = dir.join("state");
    let config = write_config(dir, &state, rules, free_port(), shop, sink);
    let daemon = Daemon::start(&config, dir);
    let rss = daemon.memory().0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (healthz, ..) = daemon.timed("/healthz").await;
    let b = Baseline {
        ready_ms: ms(daemon.ready_after),
        rss_mb: rss,
        healthz_ms: ms(healthz),
    };
    daemon.stop();
    b
}

async fn measure(
    size: u64,
    dir: &Path,
    rules: &Path,
    shop: &str,
    (sink, destination): (&str, &switchyard::sim::DestinationSink),
    base: &Baseline,
) -> Report {
    let mut r = Report::default();
    let state = dir.join("state");
    println!("\n== {size} orders");
    let kept = dir.join("filled.json");
    if reuse() && state.exists() && !kept.exists() {
        std::fs::write(&kept, serde_json::to_vec(&filled_before(size)).unwrap()).unwrap();
    }
    let filled = if reuse() && kept.exists() {
        let f: Filled = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
        println!(
            "  reusing the store of {} orders kept in {}",
            f.orders,
            state.display()
        );
        f
    } else {
        let f = fill(&state, rules, size);
        std::fs::write(&kept, serde_json::to_vec(&f).unwrap()).unwrap();
        f
    };
    r.add(
        "fill: orders/s through Ingest::ingest",
        format!("{:.0}", filled.orders as f64 / filled.seconds),
        json!(filled.orders as f64 / filled.seconds),
    );
    let (apparent, allocated) = disk_usage(&state);
    let per_order = allocated as f64 / size as f64;
    let raw_per_order = filled.raw_bytes as f64 / size as f64;
    r.add(
        "disk: bytes per order (allocated)",
        format!(
            "{per_order:.0} B ({:.2}x the raw payload of {raw_per_order:.0} B; apparent {:.0} B)",
            per_order / raw_per_order,
            apparent as f64 / size as f64
        ),
        json!({ "per_order": per_order, "raw_per_order": raw_per_order, "apparent_per_order": apparent as f64 / size as f64, "ratio_to_raw": per_order / raw_per_order }),
    );

    let config = write_config(dir, &state, rules, free_port(), shop, sink);
    let daemon = Daemon::start(&config, dir);
    let (rss_start, _) = daemon.memory();
    r.add(
        "first start to READY=1 (replays the whole fill)",
        format!(
            "{:.0} ms ({:.1}x empty store)",
            ms(daemon.ready_after),
            ms(daemon.ready_after) / base.ready_ms
        ),
        json!(ms(daemon.ready_after)),
    );
    r.add(
        "memory: at READY",
        format!(
            "{rss_start:.0} MB ({:.1}x empty store)",
            rss_start / base.rss_mb
        ),
        json!(rss_start),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle, idle_peak) = daemon.memory();
    r.add(
        "memory: idle 5 s (now, peak since start)",
        format!("{idle:.0} MB, peak {idle_peak:.0} MB"),
        json!({ "rss": idle, "peak": idle_peak }),
    );

    daemon.reset_peak();
    let (healthz, ..) = daemon.timed("/healthz").await;
    r.add(
        "GET /healthz (same run)",
        format!(
            "{:.2} ms (empty store {:.2} ms)",
            ms(healthz),
            base.healthz_ms
        ),
        json!(ms(healthz)),
    );
    for (name, query) in FILTERS {
        let sep = if query.is_empty() { "" } else { "&" };
        let first = format!("/api/v1/orders?limit={PAGE}{sep}{query}");
        let (t1, status, next, len) = daemon.timed(&first).await;
        assert_eq!(status, 200, "GET {first}");
        let next_page = match &next {
            Some(cursor) => {
                let path = format!("{first}&after={cursor}");
                let (t2, status, _, _) = daemon.timed(&path).await;
                assert_eq!(status, 200, "GET {path}");
                Some(t2)
            }
            None => None,
        };
        r.add(
            &format!("orders list {name}"),
            format!(
                "first {:.1} ms, next {} ({} KB)",
                ms(t1),
                next_page.map_or("-".to_owned(), |t| format!("{:.1} ms", ms(t))),
                len / 1024
            ),
            json!({ "first_ms": ms(t1), "next_ms": next_page.map(ms), "bytes": len }),
        );
    }
    let (reads_rss, reads_peak) = daemon.memory();
    r.add(
        "memory: during reads (now, peak)",
        format!("{reads_rss:.0} MB, peak {reads_peak:.0} MB"),
        json!({ "rss": reads_rss, "peak": reads_peak }),
    );
    let show = format!("/api/v1/orders/{}", filled.shown);
    let (t, status, _, len) = daemon.timed(&show).await;
    assert_eq!(status, 200, "GET {show}");
    r.add(
        "orders show (with history)",
        format!("{:.2} ms ({len} B)", ms(t)),
        json!(ms(t)),
    );
    let (t, status, _, _) = daemon.timed("/metrics").await;
    assert_eq!(status, 200);
    r.add("GET /metrics", format!("{:.2} ms", ms(t)), json!(ms(t)));

    // One webhook at a time (a quiet shop): what a single delivery waits.
    // New orders numbered apart from the bursts'.
    let single_first = size + 30_000_000 + filled.bursts * SINGLES as u64;
    let (_, single) = burst_timed(
        &daemon.base,
        webhook_bodies(single_first, SINGLES, size),
        single_first,
        1,
    )
    .await;
    r.add(
        "webhook intake: one at a time, answer time p50, p90",
        format!(
            "{:.2} ms, {:.2} ms",
            quantile_ms(&single, 0.5),
            quantile_ms(&single, 0.9)
        ),
        json!({ "p50_ms": quantile_ms(&single, 0.5), "p90_ms": quantile_ms(&single, 0.9) }),
    );
    // Their deliveries go out before the burst starts.
    tokio::time::sleep(Duration::from_secs(1)).await;

    daemon.reset_peak();
    // A kept store has seen the bursts of earlier runs, the fill's run's
    // included: new orders each time, or a later run measures duplicates.
    let first = size + 10_000_000 + filled.bursts * BURST as u64;
    {
        let kept = Filled {
            bursts: filled.bursts + 1,
            ..filled.clone()
        };
        std::fs::write(dir.join("filled.json"), serde_json::to_vec(&kept).unwrap()).unwrap();
    }
    let bodies = webhook_bodies(first, BURST, size);
    // `SCALE_PROFILE=DIR`: a perf profile of the daemon during the burst.
    let perf = std::env::var_os("SCALE_PROFILE").map(|dir| {
        Command::new("perf")
            .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-p"])
            .arg(daemon.pid().to_string())
            .arg("-o")
            .arg(PathBuf::from(dir).join(format!("intake-{size}.data")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    let me = std::process::id();
    // Threads alive, sampled every 5 ms while the burst runs.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (pid, sampling) = (daemon.pid(), sampling.clone());
        std::thread::spawn(move || {
            let mut most = 0u64;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(proc_status_kb(pid, "Threads:"));
                std::thread::sleep(Duration::from_millis(5));
            }
            most
        })
    };
    let threads_before = thread_stats(daemon.pid());
    let delivered_before = destination.received_count();
    let cpu_before = (cpu_ms(daemon.pid()), cpu_ms(me));
    let written_before = written_bytes(daemon.pid());
    let (rate, times) = burst_timed(&daemon.base, bodies, first, SENDERS).await;
    let cpu = (
        cpu_ms(daemon.pid()) - cpu_before.0,
        cpu_ms(me) - cpu_before.1,
    );
    let written = written_bytes(daemon.pid()) - written_before;
    let threads_after = thread_stats(daemon.pid());
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let most_threads = sampler.join().unwrap();
    // The daemon delivers the new orders while it takes them in: its CPU
    // over the burst covers both, in a mix that moves with how fast each
    // goes.
    let delivered = destination.received_count() - delivered_before;
    if let Some(mut perf) = perf {
        let _ = Command::new("kill")
            .args(["-INT", &perf.id().to_string()])
            .status();
        let _ = perf.wait();
    }
    let (burst_rss, burst_peak) = daemon.memory();
    r.add(
        "webhook intake: daemon",
        format!("{rate:.0} deliveries/s"),
        json!(rate),
    );
    let per = |ms: f64| ms * 1000.0 / BURST as f64;
    r.add(
        "webhook intake: CPU per delivery (daemon, bench)",
        format!("{:.0} us, {:.0} us", per(cpu.0), per(cpu.1)),
        json!({ "daemon_us": per(cpu.0), "bench_us": per(cpu.1) }),
    );
    let kb = |bytes: u64| bytes as f64 / 1024.0 / BURST as f64;
    r.add(
        "webhook intake: written to disk per delivery (daemon)",
        format!("{:.1} KB", kb(written)),
        json!(kb(written)),
    );
    r.add(
        "webhook intake: deliveries to the destination during the burst",
        format!("{delivered}"),
        json!(delivered),
    );
    r.add(
        "webhook intake: answer time p50, p90, p99",
        format!(
            "{:.1} ms, {:.1} ms, {:.1} ms",
            quantile_ms(&times, 0.5),
            quantile_ms(&times, 0.9),
            quantile_ms(&times, 0.99)
        ),
        json!({ "p50_ms": quantile_ms(&times, 0.5), "p90_ms": quantile_ms(&times, 0.9), "p99_ms": quantile_ms(&times, 0.99) }),
    );
    let deltas = thread_deltas(&threads_before, &threads_after);
    let (vol, invol): (i64, i64) = deltas.iter().fold((0, 0), |(v, n), d| (v + d.2, n + d.3));
    r.add(
        "webhook intake: threads (most alive), switches per delivery (voluntary, involuntary)",
        format!(
            "{most_threads}, {:.1}, {:.1}",
            vol as f64 / BURST as f64,
            invol as f64 / BURST as f64
        ),
        json!({ "most_threads": most_threads, "voluntary": vol as f64 / BURST as f64, "involuntary": invol as f64 / BURST as f64 }),
    );
    let mut by_thread = serde_json::Map::new();
    for (name, n, v, i, c) in &deltas {
        println!(
            "    {name:<20} {n:>3} threads: {:>6.2} + {:>5.2} switches, {:>5.0} us CPU per delivery",
            *v as f64 / BURST as f64,
            *i as f64 / BURST as f64,
            *c as f64 * 1000.0 / BURST as f64
        );
        by_thread.insert(
            name.clone(),
            json!({ "threads": n, "voluntary": *v as f64 / BURST as f64, "involuntary": *i as f64 / BURST as f64, "cpu_us": *c as f64 * 1000.0 / BURST as f64 }),
        );
    }
    r.json.insert(
        "webhook intake: by thread".to_owned(),
        Value::Object(by_thread),
    );
    r.add(
        "memory: webhook burst and polls (now, peak)",
        format!("{burst_rss:.0} MB, peak {burst_peak:.0} MB"),
        json!({ "rss": burst_rss, "peak": burst_peak }),
    );
    let stop = daemon.stop();
    r.add(
        "stop (SIGTERM to exit)",
        format!("{:.0} ms", ms(stop)),
        json!(ms(stop)),
    );
    // The ceiling right after the daemon's burst, so both see the same
    // machine: others' builds come and go within a run.
    let ceiling_dir = dir.join("ceiling");
    let _ = std::fs::remove_dir_all(&ceiling_dir);
    std::fs::create_dir_all(&ceiling_dir).unwrap();
    let empty = {
        let store = Store::open(&ceiling_dir.join("ceiling"), StoreOptions::default()).unwrap();
        ceiling(&store, webhook_bodies(size + 50_000_000, BURST, size)).await
    };
    let ceiling_rate = empty.rate;
    let _ = std::fs::remove_dir_all(&ceiling_dir);
    r.add(
        "webhook intake: storage ceiling (just after)",
        format!(
            "{ceiling_rate:.0} deliveries/s, {:.1} KB written per delivery",
            empty.written_kb
        ),
        json!({ "rate": ceiling_rate, "written_kb": empty.written_kb }),
    );
    r.add(
        "webhook intake: ceiling CPU per delivery (server and senders)",
        format!("{:.0} us", empty.cpu_us),
        json!(empty.cpu_us),
    );
    r.add(
        "webhook intake: share of the ceiling",
        format!("{:.2}", rate / ceiling_rate),
        json!(rate / ceiling_rate),
    );
    // The engine replays its log since the store was last opened: the first
    // start above replayed the whole fill, a restart only the last run.
    let daemon = Daemon::start(&config, dir);
    let (rss, _) = daemon.memory();
    r.add(
        "restart to READY=1 (after the run above)",
        format!(
            "{:.0} ms ({:.1}x empty store), {rss:.0} MB resident",
            ms(daemon.ready_after),
            ms(daemon.ready_after) / base.ready_ms
        ),
        json!({ "ready_ms": ms(daemon.ready_after), "rss": rss }),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stock = stock_figures(&daemon).await;
    add_stock_figures(&mut r, "", &stock, None);
    daemon.stop();

    // An outbox pass: 10 due items among everything the store holds.
    let store = Store::open(&state, StoreOptions::default()).unwrap();
    let now = Utc::now();
    let items: Vec<NewOutboxItem> = (0..10)
        .map(|i| NewOutboxItem {
            account: "destination:bench-sink".into(),
            job: Job::PushStock {
                sku: format!("BENCH-{i}"),
            },
            coalesce_key: None,
            not_before: now,
        })
        .collect();
    store.outbox_add(items, now).unwrap();
    let t = Instant::now();
    let due = store
        .outbox_due("destination:bench-sink", Utc::now(), 32)
        .unwrap();
    for item in &due {
        store.outbox_complete(&item.id).unwrap();
    }
    let pass = t.elapsed();
    assert_eq!(due.len(), 10);
    r.add(
        "outbox pass: read 10 due items, complete them",
        format!("{:.2} ms", ms(pass)),
        json!(ms(pass)),
    );
    // The same ceiling once more, writing into this store: what the engine
    // itself can take in at this size (its log, its cleaning, its page
    // table and a deeper orders tree), as opposed to an empty store. Its
    // orders are removed after.
    let same = ceiling(&store, webhook_bodies(size + 60_000_000, BURST, size)).await;
    let same_rate = same.rate;
    for key in &same.keys {
        store.raw_remove_for_tests("orders", key).unwrap();
    }
    store.flush().await.unwrap();
    r.add(
        "webhook intake: storage ceiling on this store (after the restart)",
        format!(
            "{same_rate:.0} deliveries/s ({:.2}x the empty store's), {:.0} us CPU and {:.1} KB written per delivery",
            same_rate / ceiling_rate,
            same.cpu_us,
            same.written_kb
        ),
        json!({ "rate": same_rate, "vs_empty": same_rate / ceiling_rate, "cpu_us": same.cpu_us, "written_kb": same.written_kb }),
    );
    r.add(
        "webhook intake: share of the ceiling on this store",
        format!("{:.2}", rate / same_rate),
        json!(rate / same_rate),
    );
    store.close().unwrap();
    r
}

fn main() {
    let sizes: Vec<u64> = std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| "10000,100000".to_owned())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("SCALE_SIZES: numbers separated by commas")
        })
        .collect();
    let keep = std::env::var_os("SCALE_DIR").map(PathBuf::from);
    let temp = tempfile::tempdir().unwrap();
    let root = keep.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&root).unwrap();
    let rules = bench_rules(&root);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let commit = Command::new("git")
        .args(["-C", REPO, "rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("state at scale, commit {commit}, sizes {sizes:?}");
    rt.block_on(async {
        let empty = tempfile::tempdir().unwrap();
        let sim = switchyard::sim::Simulator::start(empty.path())
            .await
            .unwrap();
        let shop = sim.base_url(Channel::Shopify);
        let secrets = BTreeMap::from([
            ("east-wh".to_owned(), b"bench-east".to_vec()),
            ("west-3pl".to_owned(), b"bench-west".to_vec()),
        ]);
        let sink = switchyard::sim::DestinationSink::start(secrets)
            .await
            .unwrap();
        let sink_url = sink.url("x");
        let sink_base = sink_url.trim_end_matches("/x").to_owned();

        let base_dir = root.join("empty");
        let _ = std::fs::remove_dir_all(&base_dir);
        std::fs::create_dir_all(&base_dir).unwrap();
        let base = empty_baseline(&base_dir, &rules, &shop, &sink_base).await;
        println!(
            "baseline, empty store: READY after {:.0} ms, {:.0} MB resident, GET /healthz {:.2} ms",
            base.ready_ms, base.rss_mb, base.healthz_ms
        );

        let mut results = Vec::new();
        for size in &sizes {
            let dir = root.join(format!("n{size}"));
            if !(reuse() && dir.join("state").exists()) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            std::fs::create_dir_all(&dir).unwrap();
            let only = std::env::var("SCALE_ONLY").unwrap_or_default();
            let r = if only == "stock" {
                println!("\n== {size} orders: stock figures only");
                measure_stock(&dir, &rules, &shop, &sink_base).await
            } else if only == "census" {
                println!("\n== {size} orders: keys written per webhook and per delivery noted");
                census(&dir, &rules, *size)
            } else {
                measure(*size, &dir, &rules, &shop, (&sink_base, &sink), &base).await
            };
            results.push((*size, r));
            if keep.is_none() {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        if let Some(root) = &keep {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(root.join("results.jsonl"))
                .unwrap();
            for (size, r) in &results {
                let line = json!({
                    "commit": commit, "size": size, "at": Utc::now().to_rfc3339(),
                    "baseline": { "ready_ms": base.ready_ms, "rss_mb": base.rss_mb,
                                  "healthz_ms": base.healthz_ms },
                    "figures": r.json,
                });
                writeln!(f, "{line}").unwrap();
            }
        }
        sink.stop().await;
        sim.stop().await;
    });
}
