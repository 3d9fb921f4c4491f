//! Webhook intake: how many signed Shopify `orders/create` deliveries per
//! second the daemon acknowledges (verified, normalized, ruled, stored and
//! flushed before the 200), and the latency each sender sees, with 32
//! senders at once. Baselines from the same run, so ratios can be compared
//! on a noisy machine: the same orders written straight into the store
//! (one transaction each, no HTTP, no flush), and with one flush per order.
//!
//! Plain `Instant` timing (no criterion); run with `cargo bench --bench webhooks`.

// A benchmark that cannot set up panics: that is its failure report.
// Random picks and percentile indexes cast freely.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

#[path = "../tests/it/common/eventually.rs"]
mod eventually;
#[path = "../tests/it/common/daemon.rs"]
mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{ConfigBuilder, InProcess, ShopifyAccount, orders_create};
use switchyard::ingest::{Ingest, LiveRules, Source};
use switchyard::sim::Simulator;
use switchyard::store::{Store, StoreOptions};
use switchyard_contract::{Secret, WebhookOutcome, WebhookRequest};

const SECRET: &str = "bench-webhook-secret";
const ORDERS: usize = 4_000;
const SENDERS: usize = 32;

fn bodies() -> Vec<Vec<u8>> {
    let template = orders_create();
    (0..ORDERS)
        .map(|i| {
            let mut v = template.clone();
            let id = 7_000_000_000u64 + i as u64;
            v["id"] = id.into();
            v["admin_graphql_api_id"] = format!("gid://shopify/Order/{id}").into();
            v["name"] = format!("#B{i}").into();
            serde_json::to_vec(&v).unwrap()
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The baselines: the same deliveries parsed by the connector and written
/// through the ingest path directly, without and with a flush per order.
fn baseline(bodies: &[Vec<u8>], flush_each: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let mut config =
        switchyard_shopify::ShopifyConfig::new("shop-us", "http://127.0.0.1:9", Secret::new("x"));
    config.webhook_secrets = vec![Secret::new(SECRET)];
    let connector = switchyard_shopify::ShopifyConnector::new(
        config,
        reqwest::Client::new(),
        switchyard_contract::Unpaced::shared(),
    )
    .unwrap();
    let started = Instant::now();
    for (i, body) in bodies.iter().enumerate() {
        let req = WebhookRequest {
            account: "shop-us".into(),
            method: "POST".into(),
            headers: vec![
                ("x-shopify-topic".into(), "orders/create".into()),
                ("x-shopify-event-id".into(), format!("bench-{i}")),
            ],
            query: None,
            body: body.clone(),
            received_at: chrono::Utc::now(),
        };
        let WebhookOutcome::Orders { orders, .. } = connector.parse_webhook(&req).unwrap() else {
            panic!("not an order")
        };
        ingest
            .receive(
                "shop-us",
                orders,
                Source::Webhook {
                    dedupe_key: Some(format!("shop-us:bench-{i}")),
                },
                chrono::Utc::now(),
            )
            .unwrap();
        if flush_each {
            store.flush_blocking().unwrap();
        }
    }
    bodies.len() as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let bodies = bodies();
    let no_flush = baseline(&bodies, false);
    let flush_each = baseline(&bodies[..ORDERS / 4], true);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (rate, latencies) = runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let empty = tempfile::tempdir().unwrap();
        let sim = Simulator::start(empty.path()).await.unwrap();
        let config = ConfigBuilder::new(dir.path())
            .account(
                ShopifyAccount::new(
                    "shop-us",
                    &sim.base_url(switchyard_contract::Channel::Shopify),
                )
                .webhook_secret(SECRET),
            )
            .write();
        let daemon = InProcess::start(&config).await;
        let url = daemon.url("/webhooks/shop-us");
        let client = reqwest::Client::new();
        let secret = Secret::new(SECRET);
        let work = Arc::new(std::sync::Mutex::new(
            bodies.into_iter().enumerate().collect::<Vec<_>>(),
        ));
        let started = Instant::now();
        let mut senders = Vec::new();
        for _ in 0..SENDERS {
            let (work, client, url, secret) =
                (work.clone(), client.clone(), url.clone(), secret.clone());
            senders.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let Some((i, body)) = work.lock().unwrap().pop() else {
                        break;
                    };
                    let sig = switchyard_shopify::webhook::sign(&body, &secret);
                    let t = Instant::now();
                    let resp = client
                        .post(&url)
                        .header("x-shopify-topic", "orders/create")
                        .header("x-shopify-event-id", format!("bench-{i}"))
                        .header("x-shopify-hmac-sha256", sig)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for s in senders {
            latencies.extend(s.await.unwrap());
        }
        let rate = ORDERS as f64 / started.elapsed().as_secs_f64();
        let (_, store) = daemon.stop().await;
        assert_eq!(
            store.list_orders(&Default::default()).unwrap().len(),
            ORDERS
        );
        drop(store);
        sim.stop().await;
        latencies.sort();
        (rate, latencies)
    });
    println!("webhook intake, {ORDERS} signed orders/create deliveries, {SENDERS} senders");
    println!("  baseline: ingest without HTTP, no flush   {no_flush:>9.0} orders/s");
    println!("  baseline: ingest without HTTP, flush each {flush_each:>9.0} orders/s");
    println!(
        "  daemon: verified, stored and flushed      {rate:>9.0} orders/s  ({:.2}x no-flush baseline, {:.1}x flush-each)",
        rate / no_flush,
        rate / flush_each
    );
    println!(
        "  latency per delivery: p50 {:?}  p99 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
}
