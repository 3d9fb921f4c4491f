//! Outbox throughput: how fast one worker drains its queue when the far side
//! answers at once and sets no limit, beside a baseline from the same run
//! (queueing items into the store, one transaction each, no flush), so the
//! ratio is what to compare between runs on a noisy machine.
//!
//! - `deliver`: POSTs of a signed ~1.5 KB canonical order to a sink on
//!   127.0.0.1 that answers 204 (HTTP/1.1 keep-alive, one worker).
//! - `push_inventory`: stock pushes through an in-process connector that
//!   answers at once (no network): the worker's own cost per item — read the
//!   level, push, record what was pushed, complete, re-check.
//!
//! Plain `Instant` timing (no criterion); run with `cargo bench --bench outbox`.

// A benchmark that cannot set up panics: that is its failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use switchyard::config::{DeliveryPace, DestinationConfig, DestinationKind, Secret};
use switchyard::effects::deliveries;
use switchyard::effects::stock::{self, StockTarget, StockTargets};
use switchyard::effects::{self, ChannelSender, Outbound};
use switchyard::outbox::{OutboxOptions, Worker};
use switchyard::pacing::{AccountPacer, PacerOptions};
use switchyard::store::{NewOutboxItem, StockChange, Store, StoreOptions, WriteBatch};
use switchyard_contract::*;
use switchyard_contract::{Operation, RateLimit};
use tokio::sync::watch;

const ITEMS: usize = 5_000;

fn options() -> OutboxOptions {
    OutboxOptions {
        idle_rescan: Duration::from_millis(2),
        batch: 64,
        ..OutboxOptions::default()
    }
}

fn order(n: usize) -> Order {
    let t = Utc.with_ymd_and_hms(2026, 11, 27, 5, 1, 2).unwrap();
    let money = |s: &str| s.parse::<Decimal>().unwrap();
    Order {
        id: Order::make_id("shop-us", &format!("{}", 5_551_000_000 + n)),
        account: "shop-us".into(),
        channel: Channel::Shopify,
        channel_order_id: format!("{}", 5_551_000_000 + n),
        number: Some(format!("#{}", 1000 + n)),
        status: OrderStatus::Ready,
        payment: PaymentStatus::Paid,
        placed_at: t,
        updated_at: t,
        currency: Currency::new("USD").unwrap(),
        totals: Totals {
            subtotal: money("40.00"),
            shipping: money("5.00"),
            tax: money("3.60"),
            discount: money("4.00"),
            total: money("44.60"),
            refunded: money("0.00"),
        },
        presentment: None,
        customer: Some(Customer {
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            phone: None,
        }),
        shipping_address: Some(Address {
            name: Some("Ada Lovelace".into()),
            line1: Some("1 Main St".into()),
            city: Some("Springfield".into()),
            region: Some("IL".into()),
            postal_code: Some("62701".into()),
            country: Some("US".into()),
            ..Address::default()
        }),
        shipping_method: Some("Standard".into()),
        lines: (0..3)
            .map(|i| Line {
                line_id: format!("{n}{i}"),
                sku: Some(format!("MUG-{i}")),
                title: "Red mug, 350 ml, stoneware".into(),
                quantity: 2,
                unit_price: money("20.00"),
                total: money("40.00"),
                shipped_quantity: 0,
                discount: rust_decimal::Decimal::ZERO,
                tax: None,
                refunded_quantity: 0,
                options: vec![],
            })
            .collect(),
        shipments: vec![],
        tags: vec!["vip".into()],
        route: Some("east-wh".into()),
        hold: None,
        priority: Priority::Normal,
        note: None,
        gift: None,
        fulfillment: switchyard_contract::Fulfillment::default(),
        test: false,
    }
}

/// A connector that sets whatever it is asked at once.
struct Instantly;

impl Connector for Instantly {
    fn channel(&self) -> Channel {
        Channel::Shopify
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            push_inventory: true,
            ..Capabilities::default()
        }
    }
    fn rate_limit(&self, _op: Operation) -> RateLimit {
        RateLimit {
            per_second: f64::INFINITY,
            burst: 1,
        }
    }
    fn check(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }
    fn poll_orders<'a>(
        &'a self,
        _c: Option<&'a Cursor>,
        _s: DateTime<Utc>,
        _n: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<OrderPage, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::Config("none".into())) })
    }
    fn fetch_orders<'a>(
        &'a self,
        _ids: &'a [String],
    ) -> BoxFuture<'a, Result<FetchedOrders, ConnectorError>> {
        Box::pin(async { Ok(FetchedOrders::default()) })
    }
    fn handle_webhook<'a>(
        &'a self,
        _r: &'a WebhookRequest,
    ) -> BoxFuture<'a, Result<WebhookOutcome, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::Auth("none".into())) })
    }
    fn push_inventory_batch<'a>(
        &'a self,
        pushes: &'a [InventoryPush],
    ) -> BoxFuture<'a, Vec<Result<InventoryResult, ConnectorError>>> {
        Box::pin(std::future::ready(
            pushes
                .iter()
                .map(|p| {
                    Ok(InventoryResult::Set {
                        quantity: p.quantity,
                        listing_ref: None,
                    })
                })
                .collect(),
        ))
    }
    fn push_tracking<'a>(
        &'a self,
        _p: &'a TrackingPush,
    ) -> BoxFuture<'a, Result<TrackingResult, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::Config("none".into())) })
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    (dir, store)
}

/// Baseline: queue `ITEMS` delivery items, one transaction each, no flush.
fn baseline() -> f64 {
    let (_dir, store) = open();
    let now = Utc::now();
    let items: Vec<NewOutboxItem> = (0..ITEMS)
        .map(|n| deliveries::delivery_item(&order(n), 1, "east-wh", now))
        .collect();
    let t = Instant::now();
    for item in items {
        store.outbox_add(vec![item], now).unwrap();
    }
    ITEMS as f64 / t.elapsed().as_secs_f64()
}

async fn drain(
    store: &Store,
    start: impl FnOnce(watch::Receiver<bool>) -> tokio::task::JoinHandle<()>,
) -> f64 {
    let (stop, rx) = watch::channel(false);
    let t = Instant::now();
    let task = start(rx);
    loop {
        if store.outbox_counts().unwrap() == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t.elapsed();
    let _ = stop.send(true);
    task.await.unwrap();
    ITEMS as f64 / elapsed.as_secs_f64()
}

async fn deliveries() -> (f64, usize) {
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/orders",
        post(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/orders", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    let (_dir, store) = open();
    let now = Utc::now();
    let bytes = serde_json::to_string(&order(0)).unwrap().len();
    let items: Vec<NewOutboxItem> = (0..ITEMS)
        .map(|n| deliveries::delivery_item(&order(n), 1, "east-wh", now))
        .collect();
    for chunk in items.chunks(500) {
        store.outbox_add(chunk.to_vec(), now).unwrap();
    }
    let dest = DestinationConfig {
        id: "east-wh".into(),
        kind: DestinationKind::Webhook {
            url,
            secret: Secret::new("bench-secret"),
        },
        // One call at a time, unpaced: the worker's own cost per item.
        pace: DeliveryPace {
            rate: f64::INFINITY,
            concurrency: 1,
        },
    };
    let outbound = Outbound::default();
    let http = reqwest::Client::new();
    let rate = drain(&store, |stop| {
        let (w, _) = effects::destination_worker(&dest, &store, &http, &outbound, &options(), stop);
        tokio::spawn(w.run())
    })
    .await;
    assert_eq!(hits.load(Ordering::Relaxed), ITEMS as u64);
    let _ = tx.send(());
    let _ = server.await;
    (rate, bytes)
}

async fn pushes() -> f64 {
    let (_dir, store) = open();
    let outbound = Outbound::new(StockTargets::new(vec![StockTarget {
        account: "shop-us".into(),
        buffer: 0,
    }]));
    let now = Utc::now();
    let mut batch = WriteBatch::new(now);
    for n in 0..ITEMS {
        batch.stock.push(StockChange::Set {
            sku: format!("SKU-{n:05}"),
            on_hand: 10,
        });
    }
    store.apply(batch).unwrap();
    let items: Vec<NewOutboxItem> = (0..ITEMS)
        .map(|n| stock::push_item("shop-us", &format!("SKU-{n:05}"), now))
        .collect();
    for chunk in items.chunks(500) {
        store.outbox_add(chunk.to_vec(), now).unwrap();
    }
    drain(&store, |stop| {
        let connector: Arc<dyn Connector> = Arc::new(Instantly);
        let pacer = AccountPacer::new("shop-us", PacerOptions::default());
        pacer.follow(&connector);
        let sender = ChannelSender {
            account: "shop-us".into(),
            buffer: 0,
            connector,
            pacer,
            store: store.clone(),
            outbound: outbound.clone(),
        };
        let w = Worker::new(
            "shop-us".into(),
            sender,
            store.clone(),
            &outbound.outbox,
            options(),
            stop,
        );
        tokio::spawn(w.run())
    })
    .await
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Warm up the allocator, the file system and the runtime once.
    let _ = baseline();
    let base = baseline();
    let (deliver_rate, bytes) = rt.block_on(deliveries());
    let push_rate = rt.block_on(pushes());
    println!("outbox throughput, {ITEMS} items, one worker, unlimited far side");
    println!("baseline: queue one item per store transaction: {base:>8.0} items/s");
    println!(
        "deliver to a 127.0.0.1 sink ({bytes} B bodies, signed): {deliver_rate:>8.0} items/s ({:.2}x baseline)",
        deliver_rate / base
    );
    println!(
        "push_inventory, in-process connector:           {push_rate:>8.0} items/s ({:.2}x baseline)",
        push_rate / base
    );
}
