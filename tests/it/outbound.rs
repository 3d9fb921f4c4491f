//! The outbound half of the loop, driven against local test servers on
//! 127.0.0.1: outbox workers under a channel's rate limit, faults and dead
//! letters, the oversell guard, shipments and destination deliveries.

use crate::common::{self, Server, eventually, serve};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use switchyard::config::{DeliveryPace, DestinationConfig, DestinationKind, Secret};
use switchyard::effects::deliveries;
use switchyard::effects::stock::{self, DriftOptions, StockTarget, StockTargets, StockUpdate};
use switchyard::effects::tracking::{self, ShipError, ShipLine, ShipOutcome, ShipmentRequest};
use switchyard::effects::{self, ChannelSender, Outbound};
use switchyard::ingest::{Ingest, LiveRules, Source};
use switchyard::outbox::{Job, JobKind, OutboxOptions, Worker};
use switchyard::pacing::{AccountPacer, PacerOptions};
use switchyard::rules::{RuleSet, parse_rules};
use switchyard::store::{OrderWrite, OutboxState, Store, StoreOptions, WriteBatch};
use switchyard_contract::*;
use switchyard_contract::{Operation, RateLimit};
use tokio::sync::watch;

// --- a test channel: inventory and tracking over HTTP -------------------------

/// A token bucket like a channel's: `burst` requests, refilled at `rate`/s.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, burst: u32) -> Self {
        Bucket {
            rate,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: Instant::now(),
        }
    }

    /// Ok, or the seconds until a token is there.
    fn take(&mut self) -> Result<(), f64> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / self.rate)
        }
    }
}

#[derive(Clone, Debug)]
enum Fault {
    TooMany { retry_after: &'static str },
    Status(u16),
    Delay(Duration),
}

#[derive(Default)]
struct ChannelState {
    levels: HashMap<String, u32>,
    not_listed: HashSet<String>,
    /// SKUs answered with a permanent 400.
    reject: HashSet<String>,
    bucket: Option<Bucket>,
    /// By inventory request number (1-based).
    faults: HashMap<usize, Fault>,
    inventory_requests: usize,
    /// Requests that set a level.
    sets: usize,
    too_many: usize,
    keys: Vec<String>,
    tracking: Vec<Value>,
}

#[derive(Clone, Default)]
struct Channels(Arc<Mutex<HashMap<String, ChannelState>>>);

impl Channels {
    fn with<R>(&self, account: &str, f: impl FnOnce(&mut ChannelState) -> R) -> R {
        let mut map = self.0.lock().unwrap();
        f(map.entry(account.to_owned()).or_default())
    }

    fn level(&self, account: &str, sku: &str) -> Option<u32> {
        self.with(account, |c| c.levels.get(sku).copied())
    }
}

async fn inventory_route(
    State(ch): State<Channels>,
    UrlPath(account): UrlPath<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let sku = body["sku"].as_str().unwrap_or_default().to_owned();
    let quantity = body["quantity"].as_u64().unwrap_or_default() as u32;
    let last = body["last_confirmed"].as_u64().map(|v| v as u32);
    let (fault, answer) = ch.with(&account, |c| {
        c.inventory_requests += 1;
        if let Some(b) = &mut c.bucket
            && let Err(wait) = b.take()
        {
            c.too_many += 1;
            return (
                None,
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", format!("{wait:.3}"))],
                    "slow down".to_owned(),
                )
                    .into_response(),
            );
        }
        if let Some(f) = c.faults.get(&c.inventory_requests).cloned() {
            match f {
                Fault::TooMany { retry_after } => {
                    c.too_many += 1;
                    return (
                        None,
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", retry_after.to_owned())],
                            "slow down",
                        )
                            .into_response(),
                    );
                }
                Fault::Status(s) => {
                    return (
                        None,
                        (StatusCode::from_u16(s).unwrap(), "injected").into_response(),
                    );
                }
                Fault::Delay(d) => return (Some(d), StatusCode::OK.into_response()),
            }
        }
        if c.reject.contains(&sku) {
            return (
                None,
                (StatusCode::BAD_REQUEST, format!("sku {sku} is blocked")).into_response(),
            );
        }
        if c.not_listed.contains(&sku) {
            return (
                None,
                (StatusCode::NOT_FOUND, "no such listing").into_response(),
            );
        }
        if let (Some(last), Some(&current)) = (last, c.levels.get(&sku))
            && last != current
        {
            return (
                None,
                (
                    StatusCode::CONFLICT,
                    axum::Json(json!({ "current": current })),
                )
                    .into_response(),
            );
        }
        c.levels.insert(sku.clone(), quantity);
        c.sets += 1;
        c.keys
            .push(body["key"].as_str().unwrap_or_default().to_owned());
        (
            None,
            axum::Json(json!({ "quantity": quantity, "ref": format!("item-{sku}") }))
                .into_response(),
        )
    });
    if let Some(d) = fault {
        // Longer than the client waits: a timeout. Nothing is applied.
        tokio::time::sleep(d).await;
        return (StatusCode::SERVICE_UNAVAILABLE, "too late").into_response();
    }
    answer
}

async fn tracking_route(
    State(ch): State<Channels>,
    UrlPath(account): UrlPath<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    ch.with(&account, |c| c.tracking.push(body));
    axum::Json(json!({ "id": "F1" })).into_response()
}

async fn channel_server(ch: &Channels) -> Server {
    serve(
        axum::Router::new()
            .route("/{account}/inventory", post(inventory_route))
            .route("/{account}/tracking", post(tracking_route))
            .with_state(ch.clone()),
    )
    .await
}

/// The connector of the test channel; it awaits its pacer before each call,
/// as every connector does.
struct TestChannel {
    base: String,
    http: reqwest::Client,
    limit: RateLimit,
    pacer: Arc<AccountPacer>,
}

impl TestChannel {
    fn new(server: &Server, account: &str, limit: RateLimit, timeout: Duration) -> Self {
        TestChannel {
            base: format!("{}/{account}", server.url),
            http: reqwest::Client::builder().timeout(timeout).build().unwrap(),
            limit,
            pacer: AccountPacer::fixed(account, limit, PacerOptions::default()),
        }
    }

    async fn post(
        &self,
        operation: Operation,
        path: &str,
        body: Value,
    ) -> Result<(u16, Value), ConnectorError> {
        self.pacer.acquire(operation, 1).await;
        let resp = self
            .http
            .post(format!("{}/{path}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(switchyard_contract::error::parse_retry_after);
        let text = resp
            .text()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        match status {
            200 | 404 | 409 => Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null))),
            s => Err(ConnectorError::from_status(s, retry_after, text)),
        }
    }
}

impl TestChannel {
    async fn push(&self, push: &InventoryPush) -> Result<InventoryResult, ConnectorError> {
        let body = json!({ "sku": push.sku, "quantity": push.quantity, "last_confirmed": push.last_confirmed, "key": push.idempotency_key });
        let (status, v) = self
            .post(Operation::PushInventory, "inventory", body)
            .await?;
        Ok(match status {
            404 => InventoryResult::NotListed,
            409 => InventoryResult::Conflict {
                current: v["current"].as_u64().unwrap_or_default() as u32,
            },
            _ => InventoryResult::Set {
                quantity: v["quantity"].as_u64().unwrap_or_default() as u32,
                listing_ref: v["ref"].as_str().map(str::to_owned),
            },
        })
    }
}

impl Connector for TestChannel {
    fn channel(&self) -> Channel {
        Channel::Shopify
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            poll: false,
            webhooks: false,
            push_inventory: true,
            push_tracking: true,
        }
    }

    fn rate_limit(&self, _op: Operation) -> RateLimit {
        self.limit
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }

    fn poll_orders<'a>(
        &'a self,
        _cursor: Option<&'a Cursor>,
        _since: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<OrderPage, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::Config("no polling here".into())) })
    }

    fn fetch_orders<'a>(
        &'a self,
        _ids: &'a [String],
    ) -> BoxFuture<'a, Result<FetchedOrders, ConnectorError>> {
        Box::pin(async { Ok(FetchedOrders::default()) })
    }

    fn handle_webhook<'a>(
        &'a self,
        _req: &'a WebhookRequest,
    ) -> BoxFuture<'a, Result<WebhookOutcome, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::Auth("no webhooks here".into())) })
    }

    /// One call per push: the test channel sets one SKU a request.
    fn push_inventory_batch<'a>(
        &'a self,
        pushes: &'a [InventoryPush],
    ) -> BoxFuture<'a, Vec<Result<InventoryResult, ConnectorError>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(pushes.len());
            for p in pushes {
                results.push(self.push(p).await);
            }
            results
        })
    }

    fn push_tracking<'a>(
        &'a self,
        push: &'a TrackingPush,
    ) -> BoxFuture<'a, Result<TrackingResult, ConnectorError>> {
        let body = json!({ "order": push.order.id, "tracking": push.shipment.tracking_number, "carrier": push.shipment.carrier, "lines": push.shipment.lines, "key": push.idempotency_key });
        Box::pin(async move {
            self.post(Operation::PushTracking, "tracking", body).await?;
            Ok(TrackingResult::Created {
                channel_ref: Some("F1".into()),
            })
        })
    }
}

// --- helpers --------------------------------------------------------------------

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    (dir, store)
}

fn fast_options() -> OutboxOptions {
    OutboxOptions {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        call_timeout: Some(Duration::from_secs(5)),
        idle_rescan: Duration::from_millis(20),
        ..OutboxOptions::default()
    }
}

const UNLIMITED: RateLimit = RateLimit {
    per_second: f64::INFINITY,
    burst: 1,
};

fn targets(accounts: &[&str]) -> StockTargets {
    StockTargets::new(
        accounts
            .iter()
            .map(|a| StockTarget {
                account: a.to_string(),
                buffer: 0,
            })
            .collect(),
    )
}

/// Runs outbox workers until the returned sender is told to stop.
struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    fn start(
        store: &Store,
        outbound: &Outbound,
        channels: Vec<(&str, TestChannel)>,
        options: OutboxOptions,
    ) -> Workers {
        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for (account, connector) in channels {
            let pacer = connector.pacer.clone();
            let sender = ChannelSender {
                account: account.to_owned(),
                buffer: outbound.stock.buffer(account).unwrap_or(0),
                connector: Arc::new(connector),
                pacer,
                store: store.clone(),
                outbound: outbound.clone(),
            };
            let w = Worker::new(
                account.to_owned(),
                sender,
                store.clone(),
                &outbound.outbox,
                options.clone(),
                rx.clone(),
            );
            tasks.push(tokio::spawn(w.run()));
        }
        Workers { stop, tasks }
    }

    /// The worker of account `shop`, on the test channel at `server`, unlimited.
    fn shop(store: &Store, outbound: &Outbound, server: &Server) -> Workers {
        let channel = TestChannel::new(server, "shop", UNLIMITED, Duration::from_secs(5));
        Workers::start(store, outbound, vec![("shop", channel)], fast_options())
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("workers stop promptly")
                .unwrap();
        }
    }
}

fn set(store: &Store, outbound: &Outbound, sku: &str, available: i64) {
    stock::set_levels(
        store,
        outbound,
        &[StockUpdate {
            sku: sku.into(),
            available,
        }],
        Utc::now(),
    )
    .unwrap();
}

fn pending(store: &Store) -> Vec<switchyard::store::OutboxItem> {
    store.outbox_list(false).unwrap()
}

/// An order on `account` with the given (sku, quantity) lines.
fn order_on(
    account: &str,
    n: u32,
    lines: &[(&str, u32)],
    updated: DateTime<Utc>,
    total: &str,
) -> Order {
    let mut o = common::order(n, updated, total);
    o.id = Order::make_id(account, &n.to_string());
    o.account = account.into();
    o.lines = lines
        .iter()
        .enumerate()
        .map(|(i, (sku, qty))| Line {
            line_id: format!("{n}-{i}"),
            sku: Some(sku.to_string()),
            title: sku.to_string(),
            quantity: *qty,
            unit_price: "5.00".parse().unwrap(),
            total: "5.00".parse().unwrap(),
            shipped_quantity: 0,
            discount: rust_decimal::Decimal::ZERO,
            tax: None,
            refunded_quantity: 0,
            options: vec![],
        })
        .collect();
    o
}

fn ingest_order(ingest: &Ingest, o: &Order) {
    ingest
        .receive(
            &o.account.clone(),
            vec![common::normalized(o.clone())],
            Source::Fetch,
            Utc::now(),
        )
        .unwrap();
}

// --- tests ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stock_changes_stay_under_the_rate_limit_and_coalesce() {
    let (_dir, store) = store();
    let ch = Channels::default();
    // The channel's published limit, enforced by the server as a token bucket.
    let limit = RateLimit {
        per_second: 100.0,
        burst: 10,
    };
    ch.with("shop", |c| {
        c.bucket = Some(Bucket::new(limit.per_second, limit.burst))
    });
    let server = channel_server(&ch).await;
    let outbound = Outbound::new(targets(&["shop"]));
    let workers = Workers::start(
        &store,
        &outbound,
        vec![(
            "shop",
            TestChannel::new(&server, "shop", limit, Duration::from_secs(5)),
        )],
        OutboxOptions {
            idle_rescan: Duration::from_millis(20),
            ..OutboxOptions::default()
        },
    );

    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let started = Instant::now();
    for i in 0..1000u32 {
        let sku = format!("SKU-{:03}", i % 200);
        let value = i64::from((i * 7919) % 97);
        set(&store, &outbound, &sku, value);
        last.insert(sku, value);
        if i % 5 == 4 {
            // Spread the changes over a while, as a merchant's edits would be.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let spread = started.elapsed();
    store.flush().await.unwrap();
    eventually(
        "every SKU at its last value",
        Duration::from_secs(60),
        async || {
            last.iter()
                .all(|(sku, v)| ch.level("shop", sku) == Some(*v as u32))
        },
    )
    .await;
    eventually("the outbox to drain", Duration::from_secs(10), async || {
        pending(&store).is_empty()
    })
    .await;
    workers.stop().await;

    let (sets, requests, too_many) =
        ch.with("shop", |c| (c.sets, c.inventory_requests, c.too_many));
    println!(
        "1000 changes over 200 SKUs: {requests} requests, {sets} sets, {too_many} answered 429"
    );
    assert_eq!(too_many, 0, "no request above the channel's limit");
    // Coalescing: one call per SKU for its newest level, plus at most what
    // the limit allowed while the changes were still coming in.
    let bound = 200 + (spread.as_secs_f64() * limit.per_second).ceil() as usize + 10;
    assert!(
        requests <= bound.min(999),
        "coalescing: {requests} calls for 1000 changes made over {spread:?}"
    );
    for (sku, v) in &last {
        let level = store.stock_get(sku).unwrap().unwrap();
        assert_eq!(level.available, *v);
        assert_eq!(level.channels["shop"].pushed, *v as u32, "{sku}");
    }
    // What the channel told us about its listing is remembered.
    assert_eq!(
        store.listing("shop", "SKU-000").unwrap(),
        Some(switchyard::store::ListingState::Ref("item-SKU-000".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_and_a_permanent_400_is_a_dead_letter_until_retried() {
    let (_dir, store) = store();
    let ch = Channels::default();
    ch.with("shop", |c| {
        c.faults = HashMap::from([
            (
                1,
                Fault::TooMany {
                    retry_after: "0.05",
                },
            ),
            (3, Fault::Status(500)),
            (5, Fault::Delay(Duration::from_millis(800))),
            (7, Fault::Status(503)),
            (9, Fault::TooMany { retry_after: "0" }),
            (12, Fault::Status(502)),
        ]);
        c.reject.insert("BAD-1".into());
        c.not_listed.insert("ELSEWHERE".into());
    });
    let server = channel_server(&ch).await;
    let outbound = Outbound::new(targets(&["shop"]));
    let workers = Workers::start(
        &store,
        &outbound,
        // Times out the delayed request.
        vec![(
            "shop",
            TestChannel::new(&server, "shop", UNLIMITED, Duration::from_millis(300)),
        )],
        fast_options(),
    );
    let mut updates: Vec<StockUpdate> = (0..20)
        .map(|i| StockUpdate {
            sku: format!("OK-{i:02}"),
            available: i,
        })
        .collect();
    updates.push(StockUpdate {
        sku: "BAD-1".into(),
        available: 4,
    });
    updates.push(StockUpdate {
        sku: "ELSEWHERE".into(),
        available: 9,
    });
    let w = stock::set_levels(&store, &outbound, &updates, Utc::now()).unwrap();
    store.flushed(w.seq).await.unwrap();

    eventually(
        "the transient failures to be overcome",
        Duration::from_secs(20),
        async || (0..20).all(|i| ch.level("shop", &format!("OK-{i:02}")) == Some(i as u32)),
    )
    .await;
    eventually(
        "the 400 to be a dead letter",
        Duration::from_secs(10),
        async || store.outbox_list(true).unwrap().len() == 1,
    )
    .await;
    eventually(
        "nothing else pending",
        Duration::from_secs(10),
        async || pending(&store).is_empty(),
    )
    .await;
    let dead = store.outbox_list(true).unwrap().remove(0);
    assert_eq!(dead.state, OutboxState::Dead);
    assert_eq!(dead.job.sku(), Some("BAD-1"));
    let reason = dead.last_error.clone().unwrap();
    assert!(
        reason.contains("HTTP 400") && reason.contains("sku BAD-1 is blocked"),
        "{reason}"
    );
    assert_eq!(ch.level("shop", "BAD-1"), None);
    // The SKU the channel does not list is skipped, and remembered as such.
    assert_eq!(ch.level("shop", "ELSEWHERE"), None);
    assert!(matches!(
        stock::listing(&store, "shop", "ELSEWHERE", Utc::now()).unwrap(),
        stock::Listing::NotListed { .. }
    ));
    let too_many = ch.with("shop", |c| c.too_many);
    assert_eq!(too_many, 2, "only the injected 429s");

    // The channel is fixed; a person retries the dead letter.
    ch.with("shop", |c| c.reject.clear());
    store.outbox_retry(&dead.id, Utc::now()).unwrap();
    outbound.outbox.wakers.wake("shop");
    eventually(
        "the retried push to arrive",
        Duration::from_secs(10),
        async || ch.level("shop", "BAD-1") == Some(4),
    )
    .await;
    eventually(
        "the retried item to complete",
        Duration::from_secs(10),
        async || store.outbox_list(true).unwrap().is_empty() && pending(&store).is_empty(),
    )
    .await;
    workers.stop().await;
    // A later change of the unlisted SKU queues nothing for that account.
    set(&store, &outbound, "ELSEWHERE", 3);
    assert!(pending(&store).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_for_the_last_unit_on_one_channel_zeroes_the_others() {
    let (_dir, store) = store();
    let ch = Channels::default();
    let server = channel_server(&ch).await;
    let outbound = Outbound::new(targets(&["shop-a", "shop-b"]));
    let ingest = Ingest::new(store.clone(), LiveRules::default()).with_outbound(outbound.clone());
    let connectors = || {
        vec![
            (
                "shop-a",
                TestChannel::new(&server, "shop-a", UNLIMITED, Duration::from_secs(5)),
            ),
            (
                "shop-b",
                TestChannel::new(&server, "shop-b", UNLIMITED, Duration::from_secs(5)),
            ),
        ]
    };
    let workers = Workers::start(&store, &outbound, connectors(), fast_options());
    set(&store, &outbound, "LAST", 1);
    set(&store, &outbound, "PLENTY", 10);
    eventually("both channels at 1", Duration::from_secs(10), async || {
        ch.level("shop-a", "LAST") == Some(1) && ch.level("shop-b", "LAST") == Some(1)
    })
    .await;
    eventually("the outbox to drain", Duration::from_secs(10), async || {
        pending(&store).is_empty()
    })
    .await;
    workers.stop().await;

    // Channel A sells the last unit (and lowers its own count).
    ch.with("shop-a", |c| c.levels.insert("LAST".into(), 0));
    let sale = order_on(
        "shop-a",
        1,
        &[("LAST", 1), ("PLENTY", 2), ("UNTRACKED", 1)],
        common::at(9, 0),
        "15.00",
    );
    ingest_order(&ingest, &sale);

    // In the transaction that stored the order: the unit is reserved and the
    // push to B is queued, before any worker runs.
    assert_eq!(store.stock_get("LAST").unwrap().unwrap().available, 0);
    assert_eq!(store.stock_get("PLENTY").unwrap().unwrap().available, 8);
    assert!(
        store.stock_get("UNTRACKED").unwrap().is_none(),
        "SKUs without a central level are left alone"
    );
    let queued: Vec<(String, String)> = pending(&store)
        .iter()
        .map(|i| (i.account.clone(), i.job.sku().unwrap().to_owned()))
        .collect();
    assert!(
        queued.contains(&("shop-b".into(), "LAST".into())),
        "{queued:?}"
    );
    assert!(
        queued.contains(&("shop-a".into(), "LAST".into())),
        "{queued:?}"
    );

    let workers = Workers::start(&store, &outbound, connectors(), fast_options());
    eventually("B at 0", Duration::from_secs(10), async || {
        ch.level("shop-b", "LAST") == Some(0)
    })
    .await;
    eventually("the outbox to drain", Duration::from_secs(10), async || {
        pending(&store).is_empty()
    })
    .await;
    let level = store.stock_get("LAST").unwrap().unwrap();
    assert_eq!(level.channels["shop-b"].pushed, 0);
    // A had already counted its own sale: the compare-and-set saw it and kept it.
    assert_eq!(ch.level("shop-a", "LAST"), Some(0));
    assert_eq!(level.channels["shop-a"].pushed, 0);
    assert_eq!(ch.level("shop-b", "PLENTY"), Some(8));

    // A cancellation gives the units back, once.
    let mut cancelled = sale.clone();
    cancelled.status = OrderStatus::Cancelled;
    cancelled.updated_at = common::at(9, 30);
    ingest_order(&ingest, &cancelled);
    ingest_order(&ingest, &cancelled);
    let mut again = cancelled.clone();
    again.updated_at = common::at(9, 45);
    again.tags.push("refunded".into());
    ingest_order(&ingest, &again);
    assert_eq!(store.stock_get("LAST").unwrap().unwrap().available, 1);
    assert_eq!(store.stock_get("PLENTY").unwrap().unwrap().available, 10);
    eventually("B back at 1", Duration::from_secs(10), async || {
        ch.level("shop-b", "LAST") == Some(1)
    })
    .await;
    // The same order arriving again reserves nothing more.
    let stale = sale.clone();
    ingest_order(&ingest, &stale);
    assert_eq!(store.stock_get("LAST").unwrap().unwrap().available, 1);
    workers.stop().await;
}

#[tokio::test]
async fn buffers_hold_back_units_and_drift_repair_reasserts_levels() {
    let (_dir, store) = store();
    let outbound = Outbound::new(StockTargets::new(vec![
        StockTarget {
            account: "shop-a".into(),
            buffer: 2,
        },
        StockTarget {
            account: "shop-b".into(),
            buffer: 0,
        },
    ]));
    set(&store, &outbound, "MUG", 3);
    set(&store, &outbound, "TEE", 1);
    // Nothing was pushed yet: drift repair folds into the pending pushes.
    let mut cursor = None;
    let opts = DriftOptions {
        max_queued_per_tick: 3,
        ..DriftOptions::default()
    };
    assert_eq!(
        stock::drift_tick(&store, &outbound, &opts, &mut cursor, Utc::now()).unwrap(),
        3
    );
    assert_eq!(pending(&store).len(), 4, "coalesced into the queued pushes");
    for i in pending(&store) {
        store.outbox_complete(&i.id).unwrap();
    }
    let now = Utc::now();
    let pushed = |sku: &str, account: &str, pushed: u32, at: DateTime<Utc>| {
        let mut b = WriteBatch::new(now);
        b.stock.push(switchyard::store::StockChange::Pushed {
            sku: sku.into(),
            account: account.into(),
            pushed,
            at,
        });
        store.apply(b).unwrap();
    };
    // What each channel should show: A holds back 2 units.
    assert_eq!(stock::desired_level(3, 2), 1);
    pushed("MUG", "shop-a", 1, now);
    pushed("MUG", "shop-b", 3, now);
    pushed("TEE", "shop-a", 0, now);
    // B shows a wrong level, confirmed long ago.
    pushed("TEE", "shop-b", 5, now - chrono::Duration::hours(1));
    let opts = DriftOptions::default();
    assert_eq!(
        stock::drift_tick(&store, &outbound, &opts, &mut cursor, now).unwrap(),
        1
    );
    let queued = pending(&store);
    assert_eq!(
        (queued[0].account.as_str(), queued[0].job.sku()),
        ("shop-b", Some("TEE"))
    );
    store.outbox_complete(&queued[0].id).unwrap();
    // Everything right and fresh: nothing to do; a day later everything is re-asserted.
    pushed("TEE", "shop-b", 1, now);
    assert_eq!(
        stock::drift_tick(&store, &outbound, &opts, &mut cursor, now).unwrap(),
        0
    );
    let later = now + chrono::Duration::hours(25);
    assert_eq!(
        stock::drift_tick(&store, &outbound, &opts, &mut cursor, later).unwrap(),
        4
    );
}

fn two_line_order(store: &Store) -> Order {
    let o = order_on(
        "shop",
        7,
        &[("MUG-RED", 2), ("TEE", 1)],
        common::at(9, 0),
        "15.00",
    );
    let mut b = WriteBatch::new(Utc::now());
    b.orders.push(OrderWrite::FromChannel {
        order: switchyard::ingest::merge(
            &common::normalized(o.clone()),
            None,
            &RuleSet::default(),
            Utc::now(),
        ),
        expected_revision: None,
        outbox: vec![],
    });
    store.apply(b).unwrap();
    o
}

fn ship_req(id: &str, tracking: &str, lines: Option<&[(&str, u32)]>) -> ShipmentRequest {
    ShipmentRequest {
        order_id: id.into(),
        carrier: "ups".into(),
        tracking_number: tracking.into(),
        tracking_url: None,
        shipped_at: None,
        lines: lines.map(|ls| {
            ls.iter()
                .map(|(sku, q)| ShipLine {
                    sku: sku.to_string(),
                    quantity: *q,
                })
                .collect()
        }),
        destination: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipments_partial_whole_idempotent_and_refused_and_their_tracking_is_pushed() {
    let (_dir, store) = store();
    let outbound = Outbound::default();
    let o = two_line_order(&store);
    let id = o.id.as_str();
    let now = Utc::now();

    let partial = tracking::record(
        &store,
        &outbound,
        &ship_req(id, "1Z-A", Some(&[("MUG-RED", 1)])),
        now,
    )
    .unwrap();
    assert!(
        matches!(
            partial,
            ShipOutcome::Recorded {
                status: OrderStatus::PartiallyShipped,
                ..
            }
        ),
        "{partial:?}"
    );
    let after_partial = store.get_order(id).unwrap().unwrap();
    assert_eq!(after_partial.order.status, OrderStatus::PartiallyShipped);
    assert_eq!(after_partial.order.lines[0].shipped_quantity, 1);
    assert_eq!(after_partial.order.lines[1].shipped_quantity, 0);
    assert_eq!(after_partial.order.shipments.len(), 1);
    assert_eq!(after_partial.order.shipments[0].lines[0].quantity, 1);
    let queued = pending(&store);
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].job.kind(), queued[0].account.as_str()),
        (JobKind::PushTracking, "shop")
    );
    assert_eq!(
        queued[0].job,
        Job::PushTracking {
            order_id: id.to_owned(),
            tracking_number: "1Z-A".into()
        }
    );

    // The same tracking number again: nothing changes, nothing is queued.
    let again = tracking::record(&store, &outbound, &ship_req(id, "1Z-A", None), now).unwrap();
    assert_eq!(
        again,
        ShipOutcome::AlreadyRecorded {
            status: OrderStatus::PartiallyShipped
        }
    );

    // Refused, each with a clear error and no change.
    let refused: Vec<(ShipmentRequest, &str)> = vec![
        (ship_req("shop:404", "1Z-X", None), "no order \"shop:404\""),
        (
            ship_req(id, "1Z-X", Some(&[("NOPE", 1)])),
            "has no line with sku NOPE",
        ),
        (
            ship_req(id, "1Z-X", Some(&[("MUG-RED", 2)])),
            "MUG-RED: 2 to ship but only 1 left",
        ),
        (
            ship_req(id, "1Z-X", Some(&[("MUG-RED", 1), ("MUG-RED", 1)])),
            "only 1 left",
        ),
        (
            ship_req(id, "1Z-X", Some(&[("TEE", 0)])),
            "quantity must be at least 1",
        ),
        (ship_req(id, " ", None), "tracking number is empty"),
    ];
    for (req, message) in refused {
        let e = tracking::record(&store, &outbound, &req, now).unwrap_err();
        assert!(
            matches!(
                e,
                ShipError::UnknownOrder(_) | ShipError::Invalid(_) | ShipError::State(_)
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains(message),
            "{e} should say {message:?}"
        );
    }
    assert!(
        store
            .get_order(id)
            .unwrap()
            .unwrap()
            .same_content(&after_partial)
    );
    assert_eq!(
        store.get_order(id).unwrap().unwrap().revision,
        after_partial.revision
    );
    assert_eq!(pending(&store).len(), 1);

    // The rest, as a whole-order shipment.
    let whole = tracking::record(&store, &outbound, &ship_req(id, "1Z-B", None), now).unwrap();
    let ShipOutcome::Recorded {
        status, shipment, ..
    } = whole
    else {
        panic!("{whole:?}")
    };
    assert_eq!(status, OrderStatus::Shipped);
    let got: Vec<(Option<&str>, u32)> = shipment
        .lines
        .iter()
        .map(|l| (l.sku.as_deref(), l.quantity))
        .collect();
    assert_eq!(got, vec![(Some("MUG-RED"), 1), (Some("TEE"), 1)]);
    let shipped = store.get_order(id).unwrap().unwrap();
    assert!(
        shipped
            .order
            .lines
            .iter()
            .all(|l| l.shipped_quantity == l.quantity)
    );
    assert_eq!(shipped.order.shipments.len(), 2);
    let e = tracking::record(&store, &outbound, &ship_req(id, "1Z-C", None), now).unwrap_err();
    assert!(
        matches!(e, ShipError::State(ref m) if m.contains("already fully shipped")),
        "{e}"
    );
    let history = store.history(id).unwrap();
    assert_eq!(history.iter().filter(|h| h.kind == "shipment").count(), 2);

    // The tracking pushes go to the order's channel.
    let ch = Channels::default();
    let server = channel_server(&ch).await;
    let workers = Workers::shop(&store, &outbound, &server);
    eventually(
        "both tracking pushes",
        Duration::from_secs(10),
        async || ch.with("shop", |c| c.tracking.len()) == 2 && pending(&store).is_empty(),
    )
    .await;
    workers.stop().await;
    let tracking = ch.with("shop", |c| c.tracking.clone());
    assert_eq!(tracking[0]["tracking"], "1Z-A");
    assert_eq!(tracking[0]["lines"][0]["quantity"], 1);
    assert_eq!(tracking[1]["tracking"], "1Z-B");
    assert_eq!(tracking[1]["key"], format!("switchyard:{id}:1Z-B"));
}

#[test]
fn ship_line_arguments_are_parsed_with_clear_errors() {
    assert_eq!(
        tracking::parse_line_arg("MUG-RED=2").unwrap(),
        ShipLine {
            sku: "MUG-RED".into(),
            quantity: 2
        }
    );
    assert!(
        tracking::parse_line_arg("MUG-RED")
            .unwrap_err()
            .contains("expected SKU=QTY")
    );
    assert!(
        tracking::parse_line_arg("MUG-RED=two")
            .unwrap_err()
            .contains("not a whole number")
    );
    assert!(
        tracking::parse_line_arg("=2")
            .unwrap_err()
            .contains("SKU is empty")
    );
}

// --- delivery to destinations --------------------------------------------------

/// A request the sink received: headers and raw body.
type Received = (HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Received>>>);

async fn sink_route(
    State(sink): State<Sink>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut seen = sink.0.lock().unwrap();
    seen.push((headers, body.to_vec()));
    // The first delivery attempt fails.
    if seen.len() == 1 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

fn rules(text: &str) -> RuleSet {
    parse_rules(Path::new("rules.toml"), text, &["east-wh".to_string()])
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_orders_are_delivered_signed_and_held_ones_wait_for_release() {
    let secret = "wh-secret";
    let w = Warehouse::start(
        post(sink_route),
        r#"
default_route = "east-wh"

[[rule]]
name = "review-large"
when = { total = { gte = "500.00" } }
then = { hold = "manual review" }
"#,
    )
    .await;
    let (store, sink, outbound, ingest) = w.parts();
    let (account, worker) = w.start_worker();
    assert_eq!(account, "destination:east-wh");

    let small = order_on("shop", 1, &[("MUG", 1)], common::at(9, 0), "10.00");
    let large = order_on("shop", 2, &[("MUG", 1)], common::at(9, 0), "600.00");
    ingest_order(&ingest, &small);
    ingest_order(&ingest, &large);
    eventually(
        "the delivery to succeed after a 500",
        Duration::from_secs(10),
        async || sink.0.lock().unwrap().len() == 2 && pending(&store).is_empty(),
    )
    .await;
    let seen = sink.0.lock().unwrap().clone();
    let (h1, b1) = &seen[0];
    let (h2, b2) = &seen[1];
    let delivery = h1["x-switchyard-delivery"].to_str().unwrap().to_owned();
    assert_eq!(
        h2["x-switchyard-delivery"].to_str().unwrap(),
        delivery,
        "stable across retries"
    );
    assert_eq!(b1, b2, "the same bytes on every retry");
    assert!(deliveries::verify(
        secret.as_bytes(),
        b2,
        h2["x-switchyard-signature"].to_str().unwrap()
    ));
    assert!(!deliveries::verify(
        b"wrong",
        b2,
        h2["x-switchyard-signature"].to_str().unwrap()
    ));
    assert_eq!(h2["content-type"], "application/json");
    let body: Order = serde_json::from_slice(b2).unwrap();
    assert_eq!(body.id, small.id);
    assert_eq!(body.route.as_deref(), Some("east-wh"));

    // The held order is not delivered, and a change to the small one does not deliver it twice.
    let mut changed = small.clone();
    changed.updated_at = common::at(10, 0);
    changed.tags.push("gift".into());
    ingest_order(&ingest, &changed);
    // The write queued nothing (a delivery stays in the outbox until the
    // warehouse took it), because the order's one delivery is on record; the
    // next delivery the sink sees is the large order's (below).
    assert!(pending(&store).is_empty());
    let mut stored = store.get_order(&small.id).unwrap().unwrap();
    assert!(
        deliveries::plan(&store, &mut stored, Utc::now())
            .unwrap()
            .is_none()
    );

    // A person releases it: the release write queues the delivery.
    let held = store.get_order(&large.id).unwrap().unwrap();
    assert_eq!(held.order.hold.as_deref(), Some("manual review"));
    let mut released = held.clone();
    released.order.hold = None;
    let now = Utc::now();
    let plan = deliveries::plan_local(&store, &mut released, now).unwrap();
    assert_eq!(plan.outbox.len(), 1);
    let mut b = WriteBatch::new(now);
    b.dedupe = plan.dedupe;
    b.orders.push(OrderWrite::Local {
        order: released,
        expected_revision: held.revision,
        kind: "release".into(),
        detail: "released by hand".into(),
        outbox: plan.outbox,
    });
    store.apply(b).unwrap();
    outbound.outbox.wakers.wake(&account);
    eventually(
        "the released order to be delivered",
        Duration::from_secs(10),
        async || sink.0.lock().unwrap().len() == 3 && pending(&store).is_empty(),
    )
    .await;
    // Each delivery's time from the sale and each call's time are measured
    // (the 500 that was retried counts as a call too). A call's time is
    // observed once the call returns, which is after its delivery was
    // noted and left the outbox: waited for, not read at once.
    for sample in [
        r#"switchyard_order_to_delivery_seconds_count{destination="east-wh"} 2"#,
        r#"switchyard_push_seconds_count{account="destination:east-wh",kind="deliver"} 3"#,
    ] {
        eventually(sample, Duration::from_secs(10), async || {
            let text = outbound.outbox.metrics.render();
            if text.contains(sample) {
                Ok(())
            } else {
                Err(text)
            }
        })
        .await;
    }
    let (h3, b3) = sink.0.lock().unwrap()[2].clone();
    assert_ne!(
        h3["x-switchyard-delivery"].to_str().unwrap(),
        delivery,
        "unique per delivery"
    );
    let body: Order = serde_json::from_slice(&b3).unwrap();
    assert_eq!(body.id, large.id);
    assert!(deliveries::verify(
        secret.as_bytes(),
        &b3,
        h3["x-switchyard-signature"].to_str().unwrap()
    ));

    // The start-up sweep finds nothing left to deliver; a person may ask again.
    assert_eq!(
        deliveries::queue_ready_orders(&store, &outbound, Utc::now()).unwrap(),
        0
    );
    assert!(
        deliveries::redeliver(&store, &outbound, &small.id, Utc::now())
            .unwrap()
            .is_some()
    );
    // The destination is told to withdraw the delivery it took, then gets
    // the new one.
    eventually("the redelivery", Duration::from_secs(10), async || {
        sink.0.lock().unwrap().len() == 5
    })
    .await;
    let got = sink.0.lock().unwrap().clone();
    assert_eq!(got[3].0["x-switchyard-notice"], "withdraw");
    let again: Order = serde_json::from_slice(&got[4].1).unwrap();
    assert_eq!(again.id, small.id);
    assert_ne!(
        got[4].0["x-switchyard-delivery"], got[3].0["x-switchyard-delivery"],
        "a new delivery id"
    );
    worker.stop().await;
}

/// A sink that accepts every delivery at once.
async fn accepting_sink(
    State(sink): State<Sink>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    sink.0.lock().unwrap().push((headers, body.to_vec()));
    StatusCode::NO_CONTENT.into_response()
}

/// A warehouse (`east-wh`, secret `wh-secret`) answering with `route`, a
/// store, and an ingest path with the given rules.
struct Warehouse {
    _dir: tempfile::TempDir,
    _server: Server,
    store: Store,
    sink: Sink,
    dest: DestinationConfig,
    outbound: Outbound,
    ingest: Ingest,
}

impl Warehouse {
    /// Starts the warehouse's outbox worker: its account and the worker.
    fn start_worker(&self) -> (String, Workers) {
        let (stop, rx) = watch::channel(false);
        let (worker, account) = effects::destination_worker(
            &self.dest,
            &self.store,
            &reqwest::Client::new(),
            &self.outbound,
            &fast_options(),
            rx,
        );
        let tasks = vec![tokio::spawn(worker.run())];
        (account, Workers { stop, tasks })
    }

    fn parts(&self) -> (Store, Sink, Outbound, Ingest) {
        (
            self.store.clone(),
            self.sink.clone(),
            self.outbound.clone(),
            self.ingest.clone(),
        )
    }

    async fn start(route: axum::routing::MethodRouter<Sink>, rules_text: &str) -> Warehouse {
        let (dir, store) = store();
        let sink = Sink::default();
        let server = serve(
            axum::Router::new()
                .route("/orders", route)
                .with_state(sink.clone()),
        )
        .await;
        let dest = DestinationConfig {
            id: "east-wh".into(),
            kind: DestinationKind::Webhook {
                url: format!("{}/orders", server.url),
                secret: Secret::new("wh-secret"),
            },
            pace: DeliveryPace::default(),
        };
        let outbound = Outbound::default();
        let ingest = Ingest::new(store.clone(), LiveRules::new(rules(rules_text)))
            .with_outbound(outbound.clone());
        Warehouse {
            _dir: dir,
            _server: server,
            store,
            sink,
            dest,
            outbound,
            ingest,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_delivery_is_not_sent_once_the_order_is_cancelled_or_held() {
    let w = Warehouse::start(post(accepting_sink), "default_route = \"east-wh\"\n").await;
    let (store, sink, outbound, ingest) = w.parts();

    // Both deliveries are queued while the destination's worker is not
    // running (a warehouse that is down, a daemon restarting) ...
    let cancelled = order_on("shop", 1, &[("MUG", 1)], common::at(9, 0), "10.00");
    let held = order_on("shop", 2, &[("MUG", 1)], common::at(9, 0), "10.00");
    ingest_order(&ingest, &cancelled);
    ingest_order(&ingest, &held);
    assert_eq!(pending(&store).len(), 2);
    // ... and then the customer cancels one, and a person holds the other.
    let mut c = cancelled.clone();
    c.status = OrderStatus::Cancelled;
    c.updated_at = common::at(9, 5);
    ingest_order(&ingest, &c);
    switchyard::ops::hold(&store, &outbound, &held.id, "fraud check", Utc::now()).unwrap();

    let (account, worker) = w.start_worker();
    // Nothing left to deliver: skipped, recorded in the order's history, and
    // not a dead letter (nobody has anything to fix).
    let history = eventually(
        "the cancelled order's delivery to be skipped",
        Duration::from_secs(10),
        async || {
            let history = store.history(&cancelled.id).unwrap();
            history
                .iter()
                .any(|h| h.kind == "delivery_skipped")
                .then_some(history)
        },
    )
    .await;
    let skipped = history
        .iter()
        .find(|h| h.kind == "delivery_skipped")
        .unwrap();
    assert!(
        skipped
            .detail
            .contains("not sent: the order is cancelled since it was queued"),
        "{}",
        skipped.detail
    );
    assert!(
        store.outbox_list(true).unwrap().is_empty(),
        "no dead letter"
    );
    let pushes = |o: &'static str| {
        outbound
            .outbox
            .metrics
            .outbox_pushes
            .get_or_create(&switchyard::metrics::outcome(o))
            .get()
    };
    // The history is written before the worker counts the outcome.
    eventually(
        "the skipped delivery to be counted",
        Duration::from_secs(10),
        async || pushes("skipped") == 1,
    )
    .await;
    assert_eq!(pushes("dead"), 0, "the dead-letter count stays as it was");
    // The held order's delivery was looked at and put off, not sent.
    let waiting = eventually(
        "the held order's delivery to be put off",
        Duration::from_secs(10),
        async || {
            let waiting = pending(&store);
            let put_off = waiting.len() == 1
                && waiting[0]
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("on hold"));
            put_off.then_some(waiting)
        },
    )
    .await;
    assert!(
        sink.0.lock().unwrap().is_empty(),
        "neither a cancelled nor a held order goes to the warehouse"
    );
    assert_eq!(waiting[0].job.order_id(), Some(held.id.as_str()));

    // Released: the waiting delivery goes out (made due here rather than
    // waiting for its next look).
    switchyard::ops::release(&store, &outbound, &held.id, Utc::now()).unwrap();
    store.outbox_retry(&waiting[0].id, Utc::now()).unwrap();
    outbound.outbox.wakers.wake(&account);
    eventually(
        "the released order's delivery",
        Duration::from_secs(10),
        async || sink.0.lock().unwrap().len() == 1 && pending(&store).is_empty(),
    )
    .await;
    assert!(store.outbox_list(true).unwrap().is_empty());
    let body: Order = serde_json::from_slice(&sink.0.lock().unwrap()[0].1).unwrap();
    assert_eq!(body.id, held.id);
    worker.stop().await;
}

/// A delivery never leaves before the write that queued it is on disk.
/// Sent earlier, a crash could take the order back while the warehouse
/// ships it, and the channel's resend of the order would be delivered
/// again: two shipments. Here every flush is held back: the worker has the
/// item and asks for the flush, and the warehouse hears nothing until the
/// flush goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_waits_until_the_write_that_queued_it_is_on_disk() {
    let w = Warehouse::start(post(accepting_sink), "default_route = \"east-wh\"\n").await;
    let (store, sink, _, ingest) = w.parts();
    let (_, worker) = w.start_worker();

    let hold = store.hold_flushes_for_tests();
    let o = order_on("shop", 1, &[("MUG", 1)], common::at(9, 0), "10.00");
    // Written (and visible to the worker), not flushed: what a webhook's
    // ingest leaves behind before its own wait for the flush.
    ingest_order(&ingest, &o);
    assert_eq!(pending(&store).len(), 1);
    eventually(
        "the worker to take the delivery",
        Duration::from_secs(10),
        async || hold.flush_asked() || !sink.0.lock().unwrap().is_empty(),
    )
    .await;
    // Given time to go wrong: nothing may arrive while the flush is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sink.0.lock().unwrap().is_empty(),
        "the warehouse got the order before the write that queued it was on disk"
    );
    assert_eq!(pending(&store).len(), 1, "still queued");

    drop(hold);
    eventually(
        "the delivery once the flush went through",
        Duration::from_secs(10),
        async || sink.0.lock().unwrap().len() == 1 && pending(&store).is_empty(),
    )
    .await;
    let body: Order = serde_json::from_slice(&sink.0.lock().unwrap()[0].1).unwrap();
    assert_eq!(body.id, o.id);
    worker.stop().await;
}

/// Stock pushes wait for the disk like deliveries: a level a crash could
/// take back (here a reservation by an order) never reaches the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_push_waits_until_the_change_behind_it_is_on_disk() {
    let (_dir, store) = store();
    let channels = Channels::default();
    let server = channel_server(&channels).await;
    let outbound = Outbound::new(targets(&["shop"]));
    set(&store, &outbound, "MUG", 5);
    store.flush().await.unwrap();
    let hold = store.hold_flushes_for_tests();
    let ingest = Ingest::new(store.clone(), LiveRules::default()).with_outbound(outbound.clone());
    ingest_order(
        &ingest,
        &order_on("shop", 1, &[("MUG", 2)], common::at(9, 0), "10.00"),
    );
    assert_eq!(store.stock_get("MUG").unwrap().unwrap().available, 3);
    let workers = Workers::shop(&store, &outbound, &server);
    eventually(
        "the worker to take the push",
        Duration::from_secs(10),
        async || hold.flush_asked() || channels.level("shop", "MUG").is_some(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        channels.level("shop", "MUG"),
        None,
        "the channel got a level before the change behind it was on disk"
    );
    drop(hold);
    eventually(
        "the push once the flush went through",
        Duration::from_secs(10),
        async || channels.level("shop", "MUG") == Some(3),
    )
    .await;
    workers.stop().await;
}

/// A delivery id names the delivery, not the moment it was queued: the same
/// order ingested from the same state into two stores (a write the disk
/// lost, then the channel's resend of the order) is queued under the same
/// ids, so a warehouse that already has it can tell; each part of a split
/// order has its own. A person's redelivery, and a delivery queued from
/// another state of the order, have new ones.
#[test]
fn the_same_delivery_queued_twice_from_the_same_state_has_the_same_id() {
    let text = r#"default_route = "east-wh"
[[rule]]
name = "cups-from-3pl"
when = { sku = "CUP-*" }
then = { route_lines = { sku = "CUP-*", route = "west-3pl" } }
"#;
    let dests = ["east-wh".to_owned(), "west-3pl".to_owned()];
    let split = parse_rules(Path::new("rules.toml"), text, &dests)
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .0;
    let order = order_on(
        "shop",
        7,
        &[("MUG", 1), ("CUP-1", 3)],
        common::at(9, 0),
        "20.00",
    );
    // An earlier version, not to be shipped yet.
    let mut unpaid = order.clone();
    unpaid.status = OrderStatus::Pending;
    unpaid.updated_at = common::at(8, 0);
    // Ingests `versions` into a fresh store: the deliveries queued, as
    // (destination, delivery id), and the store.
    let queued = |versions: &[&Order]| {
        let (dir, store) = store();
        let outbound = Outbound::default();
        let ingest = Ingest::new(store.clone(), LiveRules::new(split.clone()))
            .with_outbound(outbound.clone());
        for v in versions {
            ingest_order(&ingest, v);
        }
        let ids = deliveries_queued(&store);
        (dir, store, outbound, ids)
    };

    let (_a, first, outbound, ids) = queued(&[&unpaid, &order]);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0].0, "east-wh");
    assert_eq!(ids[1].0, "west-3pl");
    assert_ne!(ids[0].1, ids[1].1, "each part its own id");
    for (_, id) in &ids {
        assert!(
            id.len() == 28
                && id.starts_with("dlv_")
                && id[4..].chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
    let stored = first.get_order(&order.id).unwrap().unwrap();
    let recorded: Vec<(String, String)> = stored
        .parts
        .iter()
        .map(|p| (p.destination.clone(), p.delivery_id.clone()))
        .collect();
    assert_eq!(
        recorded, ids,
        "the order records the ids it was queued under"
    );

    // The same versions into a fresh store, later: the same deliveries.
    let (_b, _, _, again) = queued(&[&unpaid, &order]);
    assert_eq!(again, ids, "the same delivery, the same ids");

    // From another state (the order arrived ready at once): other deliveries.
    let (_c, _, _, other) = queued(&[&order]);
    assert_eq!(other.len(), 2);
    assert!(
        other.iter().all(|o| !ids.contains(o)),
        "{other:?} against {ids:?}"
    );

    // A person asks for it again: new ids, and again for a second ask.
    let queued_before: HashSet<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    assert!(
        deliveries::redeliver(&first, &outbound, &order.id, Utc::now())
            .unwrap()
            .is_some()
    );
    let redelivered: Vec<(String, String)> = deliveries_queued(&first)
        .into_iter()
        .filter(|(_, id)| !queued_before.contains(id))
        .collect();
    assert_eq!(redelivered.len(), 2, "{redelivered:?}");
    assert!(
        deliveries::redeliver(&first, &outbound, &order.id, Utc::now())
            .unwrap()
            .is_some()
    );
    let all: HashSet<String> = deliveries_queued(&first)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(
        all.len(),
        6,
        "three deliveries of two parts, six ids: {all:?}"
    );
}

/// The deliveries waiting in the outbox, as (destination, delivery id), in
/// queue order.
fn deliveries_queued(store: &Store) -> Vec<(String, String)> {
    pending(store)
        .into_iter()
        .filter_map(|i| match i.job {
            Job::Deliver(d) => Some((d.destination, d.delivery_id)),
            _ => None,
        })
        .collect()
}

/// Holding or cancelling an order a destination already took cannot recall
/// it: the destination gets a signed notice, and the history says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_order_held_or_cancelled_sends_the_destination_a_notice() {
    let w = Warehouse::start(post(accepting_sink), "default_route = \"east-wh\"\n").await;
    let (store, sink, outbound, ingest) = w.parts();
    let (_, worker) = w.start_worker();
    let first = order_on("shop", 1, &[("MUG", 1)], common::at(9, 0), "10.00");
    let second = order_on("shop", 2, &[("MUG", 1)], common::at(9, 0), "10.00");
    ingest_order(&ingest, &first);
    ingest_order(&ingest, &second);
    outbound.outbox.wakers.wake("destination:east-wh");
    let delivered = eventually(
        "both deliveries, noted on the orders",
        Duration::from_secs(10),
        async || {
            let a = store.get_order(&first.id).unwrap()?.delivered?;
            let b = store.get_order(&second.id).unwrap()?.delivered?;
            Some((a, b))
        },
    )
    .await;
    assert_eq!(delivered.0.destination, "east-wh");

    // A person holds the first: a hold notice goes to the warehouse.
    switchyard::ops::hold(&store, &outbound, &first.id, "address check", Utc::now()).unwrap();
    // The channel cancels the second: a cancel notice.
    let mut cancelled = second.clone();
    cancelled.status = OrderStatus::Cancelled;
    cancelled.updated_at = common::at(10, 0);
    ingest_order(&ingest, &cancelled);
    let seen = eventually(
        "two notices after the two deliveries",
        Duration::from_secs(10),
        async || {
            let seen = sink.0.lock().unwrap().clone();
            (seen.len() == 4).then_some(seen)
        },
    )
    .await;
    let notices: Vec<(String, serde_json::Value)> = seen[2..]
        .iter()
        .map(|(headers, body)| {
            let kind = headers["x-switchyard-notice"].to_str().unwrap().to_owned();
            let signature = headers["x-switchyard-signature"].to_str().unwrap();
            assert!(
                switchyard::effects::deliveries::verify(b"wh-secret", body, signature),
                "notices are signed like deliveries"
            );
            (kind, serde_json::from_slice(body).unwrap())
        })
        .collect();
    let hold = notices
        .iter()
        .find(|(k, _)| k == "hold")
        .expect("a hold notice");
    assert_eq!(hold.1["order_id"], first.id.as_str());
    assert_eq!(hold.1["reason"], "address check");
    assert_eq!(hold.1["delivery_id"], delivered.0.delivery_id.as_str());
    let cancel = notices
        .iter()
        .find(|(k, _)| k == "cancel")
        .expect("a cancel notice");
    assert_eq!(cancel.1["order_id"], second.id.as_str());
    assert_eq!(cancel.1["reason"], "cancelled on the channel");
    let history = eventually(
        "the notices in the orders' history",
        Duration::from_secs(10),
        async || {
            let h = store.history(&first.id).unwrap();
            h.iter().any(|e| e.kind == "notice").then_some(h)
        },
    )
    .await;
    let kinds: Vec<&str> = history.iter().map(|h| h.kind.as_str()).collect();
    assert!(
        kinds.contains(&"delivered") && kinds.contains(&"hold"),
        "{kinds:?}"
    );
    let held = history.iter().find(|h| h.kind == "hold").unwrap();
    assert!(
        held.detail.contains("already delivered to east-wh"),
        "{}",
        held.detail
    );
    worker.stop().await;
}

#[test]
fn cancelling_a_partly_shipped_order_gives_back_only_the_units_not_shipped() {
    let (_dir, store) = store();
    let outbound = Outbound::new(targets(&["shop"]));
    let ingest = Ingest::new(store.clone(), LiveRules::default()).with_outbound(outbound.clone());
    set(&store, &outbound, "MUG", 10);
    let available = || store.stock_get("MUG").unwrap().unwrap().available;

    let sale = order_on("shop", 1, &[("MUG", 3)], common::at(9, 0), "15.00");
    ingest_order(&ingest, &sale);
    assert_eq!(available(), 7);
    // One unit leaves the warehouse ...
    let mut part = sale.clone();
    part.status = OrderStatus::PartiallyShipped;
    part.lines[0].shipped_quantity = 1;
    part.updated_at = common::at(10, 0);
    ingest_order(&ingest, &part);
    assert_eq!(available(), 7);
    // ... then the rest of the order is cancelled: two units come back, the
    // shipped one is gone for good.
    let mut cancelled = part.clone();
    cancelled.status = OrderStatus::Cancelled;
    cancelled.updated_at = common::at(11, 0);
    ingest_order(&ingest, &cancelled);
    assert_eq!(available(), 9, "the shipped unit must not come back");
    // Revived: the two units are taken again.
    let mut revived = part.clone();
    revived.updated_at = common::at(12, 0);
    ingest_order(&ingest, &revived);
    assert_eq!(available(), 7);

    // First seen cancelled after a unit shipped: nothing reserved, nothing given back.
    let mut late = order_on("shop", 2, &[("MUG", 2)], common::at(9, 0), "10.00");
    late.status = OrderStatus::Cancelled;
    late.lines[0].shipped_quantity = 1;
    ingest_order(&ingest, &late);
    assert_eq!(available(), 6, "its shipped unit is taken off the shelf");

    // Its state refuses a shipment (HTTP 409), not the request's shape.
    let e = tracking::record(
        &store,
        &outbound,
        &ship_req(&late.id, "1Z-X", None),
        Utc::now(),
    )
    .unwrap_err();
    assert!(
        matches!(e, ShipError::State(ref m) if m.contains("is cancelled; nothing to ship")),
        "{e}"
    );
}

/// An order the marketplace ships from its own stock (Amazon FBA) is stored
/// and routed like any other, but no warehouse is asked for it, it takes
/// nothing of central stock, and no shipment can be recorded for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_the_marketplace_fulfils_is_stored_but_never_delivered_reserved_or_shipped() {
    let w = Warehouse::start(post(sink_route), "default_route = \"east-wh\"\n").await;
    let (store, _sink, outbound, ingest) = w.parts();
    set(&store, &outbound, "MUG", 10);
    let available = || store.stock_get("MUG").unwrap().unwrap().available;

    let mut fba = order_on("shop", 1, &[("MUG", 3)], common::at(9, 0), "15.00");
    fba.fulfillment = Fulfillment::Channel;
    ingest_order(&ingest, &fba);
    let stored = store.get_order(&fba.id).unwrap().expect("stored");
    assert_eq!(stored.order.route.as_deref(), Some("east-wh"));
    assert_eq!(deliveries::deliverable(&stored.order), None);
    assert!(
        pending(&store)
            .iter()
            .all(|i| !matches!(i.job, Job::Deliver(_))),
        "{:?}",
        pending(&store)
    );
    assert_eq!(available(), 10, "Amazon's stock is not ours");

    let err = tracking::record(
        &store,
        &outbound,
        &ship_req(&fba.id, "1Z-FBA", None),
        Utc::now(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ShipError::State(ref m) if m.contains("fulfilled by")),
        "{err}"
    );

    // The same order shipped by the merchant is delivered and reserves stock.
    let own = order_on("shop", 2, &[("MUG", 3)], common::at(9, 0), "15.00");
    ingest_order(&ingest, &own);
    assert_eq!(available(), 7);
    assert!(
        pending(&store)
            .iter()
            .any(|i| matches!(&i.job, Job::Deliver(d) if d.order_id == own.id))
    );
}
