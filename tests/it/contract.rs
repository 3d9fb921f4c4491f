//! The daemon's side of the connector contract, each feature against a small
//! in-memory connector that does what the test tells it: fetch jobs that a
//! webhook leaves survive a restart, stock pushes grouped by the
//! connector's batch key, pending stock results checked later, orders a
//! connector cannot read left out and counted on every path, and no
//! tracking push queued for a connector that cannot take one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use switchyard::channels::accounts::Connected;
use switchyard::channels::fetch::AccountSender;
use switchyard::channels::poll::{CatchUp, HealthBoard, catch_up};
use switchyard::effects::stock::{self, StockTarget, StockTargets};
use switchyard::effects::{ChannelSender, Outbound};
use switchyard::http::HttpState;
use switchyard::ingest::{Ingest, LiveRules};
use switchyard::metrics::{self, Metrics};
use switchyard::outbox::{Job, OutboxOptions, Worker};
use switchyard::store::{ListingState, StockChange, Store, StoreOptions, WriteBatch};
use switchyard_contract::*;
use tokio::sync::watch;

use crate::common::eventually::eventually;
use crate::common::{ACCOUNT, account, at, connected, normalized, order};

/// What the scripted channel holds and what it was asked.
#[derive(Default)]
struct Script {
    /// What a fetch finds by id: an order, or `None` for one it cannot read.
    fetchable: BTreeMap<String, Option<Order>>,
    fetches: usize,
    /// Left out of every poll page.
    poll_rejected: Vec<RejectedOrder>,
    /// The SKUs of each stock push call.
    push_calls: Vec<Vec<String>>,
    /// Stock pushes are taken for later under this receipt.
    pending: Option<String>,
    /// What a receipt check answers.
    receipt: Option<ReceiptStatus>,
    receipt_checks: usize,
}

#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<Script>>);

impl Scripted {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().unwrap()
    }
}

fn unreadable(id: &str) -> RejectedOrder {
    RejectedOrder {
        channel_order_id: Some(id.into()),
        error: "decode: total is not a number".into(),
    }
}

impl Connector for Scripted {
    fn channel(&self) -> Channel {
        Channel::Shopify
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            poll: true,
            webhooks: true,
            push_inventory: true,
            push_tracking: false,
        }
    }

    fn rate_limit(&self, _operation: Operation) -> RateLimit {
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
        _cursor: Option<&'a Cursor>,
        _since: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<OrderPage, ConnectorError>> {
        let rejected = self.script().poll_rejected.clone();
        Box::pin(async move {
            Ok(OrderPage {
                orders: vec![normalized(order(5, at(9, 0), "5.00"))],
                next: Cursor("c1".into()),
                more: false,
                rejected,
            })
        })
    }

    fn fetch_orders<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<FetchedOrders, ConnectorError>> {
        let mut script = self.script();
        script.fetches += 1;
        let mut found = FetchedOrders::default();
        for id in ids {
            match script.fetchable.get(id) {
                Some(Some(o)) => found.orders.push(normalized(o.clone())),
                Some(None) => found.rejected.push(unreadable(id)),
                None => found.missing.push(id.clone()),
            }
        }
        Box::pin(std::future::ready(Ok(found)))
    }

    /// `{ "event", "topic", "ids" }`: `orders/named` only names orders,
    /// `orders/inline` carries one the channel's data makes unreadable.
    fn handle_webhook<'a>(
        &'a self,
        req: &'a WebhookRequest,
    ) -> BoxFuture<'a, Result<WebhookOutcome, ConnectorError>> {
        let outcome = serde_json::from_slice::<serde_json::Value>(&req.body)
            .map_err(|e| ConnectorError::Decode(e.to_string()))
            .map(|v| {
                let dedupe_key = v["event"].as_str().map(str::to_owned);
                if v["topic"] == "orders/named" {
                    WebhookOutcome::Fetch {
                        dedupe_key,
                        channel_order_ids: v["ids"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|id| id.as_str().map(str::to_owned))
                            .collect(),
                    }
                } else {
                    WebhookOutcome::Orders {
                        dedupe_key,
                        orders: vec![],
                        rejected: vec![unreadable("77")],
                    }
                }
            });
        Box::pin(std::future::ready(outcome))
    }

    /// The listing, as Etsy's connector names it.
    fn inventory_batch_key(&self, push: &InventoryPush) -> Option<String> {
        push.listing_ref.clone()
    }

    fn push_inventory_batch<'a>(
        &'a self,
        pushes: &'a [InventoryPush],
    ) -> BoxFuture<'a, Vec<Result<InventoryResult, ConnectorError>>> {
        let mut script = self.script();
        script
            .push_calls
            .push(pushes.iter().map(|p| p.sku.clone()).collect());
        let pending = script.pending.clone();
        let results = pushes
            .iter()
            .map(|p| {
                Ok(match &pending {
                    Some(receipt) => InventoryResult::Pending {
                        receipt: receipt.clone(),
                        check_after: Utc::now(),
                    },
                    None => InventoryResult::Set {
                        quantity: p.quantity,
                        listing_ref: p.listing_ref.clone(),
                    },
                })
            })
            .collect();
        Box::pin(std::future::ready(results))
    }

    fn check_inventory_receipt<'a>(
        &'a self,
        _receipt: &'a str,
    ) -> BoxFuture<'a, Result<ReceiptStatus, ConnectorError>> {
        let mut script = self.script();
        script.receipt_checks += 1;
        let answer = script
            .receipt
            .clone()
            .ok_or_else(|| ConnectorError::Transient("no receipt answer scripted".into()));
        Box::pin(std::future::ready(answer))
    }

    fn push_tracking<'a>(
        &'a self,
        _push: &'a TrackingPush,
    ) -> BoxFuture<'a, Result<TrackingResult, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::Config("no tracking here".into())) })
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

fn fast() -> OutboxOptions {
    OutboxOptions {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        idle_rescan: Duration::from_millis(20),
        ..OutboxOptions::default()
    }
}

fn outbound() -> Outbound {
    Outbound::new(StockTargets::new(vec![StockTarget {
        account: ACCOUNT.into(),
        buffer: 0,
    }]))
}

/// The account's outbox worker, as the daemon runs it, until dropped.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(connected: &Arc<Connected>, ingest: &Ingest, outbound: &Outbound) -> Running {
        let store = ingest.store().clone();
        let sender = AccountSender {
            connected: connected.clone(),
            ingest: ingest.clone(),
            effects: ChannelSender {
                account: ACCOUNT.into(),
                buffer: 0,
                connector: connected.connector.clone(),
                pacer: connected.pacer.clone(),
                store: store.clone(),
                outbound: outbound.clone(),
            },
        };
        let (stop, rx) = watch::channel(false);
        let worker = Worker::new(ACCOUNT.into(), sender, store, &outbound.outbox, fast(), rx);
        Running {
            stop,
            task: tokio::spawn(worker.run()),
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

/// The daemon's webhook route for one account, on a loopback port.
async fn serve(
    connected: Arc<Connected>,
    ingest: &Ingest,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let state = Arc::new(HttpState {
        ingest: ingest.clone(),
        webhook_accounts: BTreeMap::from([(ACCOUNT.to_string(), connected)]),
        health: HealthBoard::default(),
        tokens: Default::default(),
        pacers: Default::default(),
        skipped: Default::default(),
        connectors: Default::default(),
        accounts: vec![ACCOUNT.into()],
        ready: std::sync::atomic::AtomicBool::new(true),
        admin: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/{ACCOUNT}",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        switchyard::http::serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (url, tx, task)
}

async fn post(url: &str, body: serde_json::Value) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn orders_a_webhook_only_names_are_fetched_by_a_job_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let channel = Scripted::default();
    let named = json!({ "event": "e1", "topic": "orders/named", "ids": ["1", "2"] });
    {
        let store = open(dir.path());
        let ingest = Ingest::new(store.clone(), LiveRules::default());
        let connected = Arc::new(connected(channel.clone(), account("http://unused")));
        let (url, stop, task) = serve(connected, &ingest).await;
        // Answered at once, without asking the channel: the fetch is a job.
        let (status, text) = post(&url, named.clone()).await;
        assert_eq!(
            (status, text.trim()),
            (200, "queued: 2 orders to fetch from the channel")
        );
        let (status, text) = post(&url, named.clone()).await;
        assert_eq!((status, text.trim()), (200, "duplicate: already stored"));
        assert_eq!(channel.script().fetches, 0);
        let jobs: Vec<Job> = store
            .outbox_list(false)
            .unwrap()
            .into_iter()
            .map(|i| i.job)
            .collect();
        assert_eq!(
            jobs,
            [Job::FetchOrders {
                ids: vec!["1".into(), "2".into()]
            }]
        );
        let _ = stop.send(());
        task.await.unwrap();
        // The process ends here: the job is only in the store.
    }

    let store = crate::common::reopen(dir.path());
    let metrics = Metrics::new();
    let ingest = Ingest::new(store.clone(), LiveRules::default()).with_metrics(metrics.clone());
    let o1 = order(1, at(9, 0), "10.00");
    channel.script().fetchable =
        BTreeMap::from([("1".into(), Some(o1.clone())), ("2".into(), None)]);
    let connected = Arc::new(connected(channel.clone(), account("http://unused")));
    let worker = Running::start(&connected, &ingest, &outbound());
    eventually(
        "the fetched order stored",
        Duration::from_secs(10),
        async || store.get_order(&o1.id).unwrap().is_some(),
    )
    .await;
    eventually("the job done", Duration::from_secs(10), async || {
        store.outbox_list(false).unwrap().is_empty()
    })
    .await;
    worker.stop().await;
    assert_eq!(channel.script().fetches, 1);
    // The order the channel could not read is left out and counted.
    let rejected = metrics
        .orders_rejected
        .get_or_create(&metrics::account(ACCOUNT))
        .get();
    assert_eq!(rejected, 1);
    assert!(
        store.outbox_list(true).unwrap().is_empty(),
        "no dead letters"
    );
}

/// Seeds a level for each SKU and queues its push, in due order.
fn queue_pushes(store: &Store, skus: &[(&str, Option<&str>)]) {
    let now = Utc::now();
    let mut batch = WriteBatch::new(now);
    for (sku, listing) in skus {
        batch.stock.push(StockChange::Set {
            sku: (*sku).into(),
            on_hand: 7,
        });
        if let Some(l) = listing {
            store
                .set_listing(ACCOUNT, sku, &ListingState::Ref((*l).into()))
                .unwrap();
        }
    }
    store.apply(batch).unwrap();
    for (sku, _) in skus {
        store
            .outbox_add(vec![stock::push_item(ACCOUNT, sku, now)], now)
            .unwrap();
    }
}

#[tokio::test]
async fn a_listings_stock_pushes_go_in_one_call_and_the_rest_as_the_batch_limit_allows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    queue_pushes(
        &store,
        &[
            ("A1", Some("listing-A")),
            ("B1", Some("listing-B")),
            ("A2", Some("listing-A")),
            ("X", None),
            ("A3", Some("listing-A")),
            ("Y", None),
        ],
    );
    let channel = Scripted::default();
    let connected = Arc::new(connected(channel.clone(), account("http://unused")));
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let worker = Running::start(&connected, &ingest, &outbound());
    eventually("every push sent", Duration::from_secs(10), async || {
        store.outbox_list(false).unwrap().is_empty()
    })
    .await;
    worker.stop().await;
    // Listing A's three SKUs in one read-modify-write, though the
    // connector takes one push a call otherwise.
    assert_eq!(
        channel.script().push_calls,
        [vec!["A1", "A2", "A3"], vec!["B1"], vec!["X"], vec!["Y"]]
    );
}

#[tokio::test]
async fn pushes_the_channel_takes_for_later_are_checked_and_recorded_from_their_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    queue_pushes(&store, &[("A1", None), ("A2", None), ("A3", None)]);
    let channel = Scripted::default();
    channel.script().pending = Some("feed-1".into());
    // A1 set (to what the feed says), A2 not mentioned (counts as set at
    // what was sent), A3 refused for a reason that may pass.
    channel.script().receipt = Some(ReceiptStatus::Done {
        results: vec![
            (
                "A1".into(),
                Ok(InventoryResult::Set {
                    quantity: 6,
                    listing_ref: None,
                }),
            ),
            (
                "A3".into(),
                Err(ConnectorError::Transient("feed row failed".into())),
            ),
        ],
    });
    let connected = Arc::new(connected(channel.clone(), account("http://unused")));
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let worker = Running::start(&connected, &ingest, &outbound());
    let pushed = |sku: &str| {
        store
            .stock_get(sku)
            .unwrap()
            .and_then(|l| l.channels.get(ACCOUNT).map(|p| p.pushed))
    };
    eventually("the receipt checked", Duration::from_secs(10), async || {
        pushed("A1").is_some() && pushed("A2").is_some()
    })
    .await;
    assert_eq!((pushed("A1"), pushed("A2")), (Some(6), Some(7)));
    // A3 is pushed again (answered pending again, so a second receipt).
    eventually("A3 pushed again", Duration::from_secs(10), async || {
        channel.script().push_calls.len() >= 2
    })
    .await;
    worker.stop().await;
    let script = channel.script();
    assert_eq!(
        script.push_calls[0].len(),
        1,
        "no batch limit: one at a time"
    );
    assert!(
        script
            .push_calls
            .iter()
            .filter(|c| c == &&vec!["A3"])
            .count()
            >= 2,
        "{:?}",
        script.push_calls
    );
    assert!(script.receipt_checks >= 1);
}

#[tokio::test]
async fn unreadable_orders_are_left_out_and_counted_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let metrics = Metrics::new();
    let ingest = Ingest::new(store.clone(), LiveRules::default()).with_metrics(metrics.clone());
    let channel = Scripted::default();
    channel.script().poll_rejected = vec![unreadable("91")];
    channel.script().fetchable = BTreeMap::from([("92".into(), None)]);
    let connected = Arc::new(connected(channel.clone(), account("http://unused")));
    // Read each time: the family's guard must not be held across awaits.
    let rejected = || {
        metrics
            .orders_rejected
            .get_or_create(&metrics::account(ACCOUNT))
            .get()
    };

    // A poll page: the readable order is stored, the other counted.
    let stats = catch_up(&connected, &ingest, CatchUp::from_cursor(), |_| {})
        .await
        .unwrap();
    assert_eq!((stats.orders, stats.rejected), (1, 1));
    assert_eq!(rejected(), 1);

    // A webhook carrying an unreadable order: the delivery is stored (so
    // it is not sent again forever), the order counted.
    let (url, stop, task) = serve(connected.clone(), &ingest).await;
    let (status, _) = post(&url, json!({ "event": "e2", "topic": "orders/inline" })).await;
    assert_eq!(status, 200);
    assert_eq!(rejected(), 2);
    // A fetch that finds an unreadable order.
    let (status, _) = post(
        &url,
        json!({ "event": "e3", "topic": "orders/named", "ids": ["92"] }),
    )
    .await;
    assert_eq!(status, 200);
    let _ = stop.send(());
    task.await.unwrap();
    let worker = Running::start(&connected, &ingest, &outbound());
    eventually("the fetch done", Duration::from_secs(10), async || {
        store.outbox_list(false).unwrap().is_empty()
    })
    .await;
    worker.stop().await;
    assert_eq!(rejected(), 3);
}

/// A connector whose capabilities lack tracking: a shipment of its orders is
/// recorded and no push is queued (it could only end as a dead letter
/// without calling the channel); the receipt and the shipment's history say
/// why. The same shipment for a connector that takes tracking queues it.
#[test]
fn a_shipment_for_a_connector_that_cannot_take_tracking_queues_no_push() {
    use switchyard::effects::tracking::{NoTracking, ShipmentRequest};
    use switchyard::ingest::Source;
    let connector = Scripted::default();
    assert!(!connector.capabilities().push_tracking);
    let ship = |outbound: &Outbound| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        Ingest::new(store.clone(), LiveRules::default())
            .with_outbound(outbound.clone())
            .receive(
                ACCOUNT,
                vec![normalized(order(1, at(9, 0), "5.00"))],
                Source::Fetch,
                Utc::now(),
            )
            .unwrap();
        let req = ShipmentRequest {
            order_id: format!("{ACCOUNT}:1"),
            carrier: "ups".into(),
            tracking_number: "1ZNOPUSH".into(),
            tracking_url: None,
            shipped_at: None,
            lines: None,
            destination: None,
        };
        let receipt = switchyard::ops::ship(&store, outbound, &req, Utc::now())
            .unwrap()
            .value;
        let pushes: Vec<Job> = [false, true]
            .into_iter()
            .flat_map(|dead| store.outbox_list(dead).unwrap())
            .map(|i| i.job)
            .filter(|j| matches!(j, Job::PushTracking { .. }))
            .collect();
        let history = store.history(&req.order_id).unwrap();
        (receipt, pushes, history.last().unwrap().clone(), dir)
    };

    let without = Outbound::default().with_no_tracking(NoTracking::new([(
        ACCOUNT.to_owned(),
        connector.channel(),
        connector.capabilities(),
    )]));
    let (receipt, pushes, last, _dir) = ship(&without);
    assert!(receipt.recorded);
    assert_eq!(receipt.status, OrderStatus::Shipped);
    let why = "the shopify connector of account shop-test cannot take tracking pushes";
    assert_eq!(receipt.tracking_not_pushed.as_deref(), Some(why));
    assert!(pushes.is_empty(), "{pushes:?}");
    assert_eq!(last.kind, "shipment");
    assert!(
        last.detail
            .ends_with(&format!("(shipped); tracking not pushed: {why}")),
        "{}",
        last.detail
    );

    let takes = Outbound::default().with_no_tracking(NoTracking::new([(
        ACCOUNT.to_owned(),
        connector.channel(),
        Capabilities {
            push_tracking: true,
            ..connector.capabilities()
        },
    )]));
    let (receipt, pushes, last, _dir) = ship(&takes);
    assert_eq!(receipt.tracking_not_pushed, None);
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert!(!last.detail.contains("not pushed"), "{}", last.detail);
}
