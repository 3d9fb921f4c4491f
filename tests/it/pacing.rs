//! The account pacer with the real Shopify and Amazon connectors, against a
//! channel on 127.0.0.1 that answers two calls in the other order than they
//! went out: the report in the answer read last, written before the other
//! one, must not give back allowance the fresher report showed spent. eBay's
//! answers carry no report (the connector counts its calls): there, two
//! counts reach the pacer in the other order than they were taken, and a
//! count reaches every operation that spends the same daily budget.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use switchyard::pacing::{AccountPacer, PacerOptions};
use switchyard_contract::tokens::MemoryTokenStore;
use switchyard_contract::{
    BoxFuture, BuildContext, Connector, ConnectorError, InventoryPush, InventoryResult, Operation,
    OrderPage, Pacer, RateHint, RateLimit, Secret, TokenSet, TokenStore, Unpaced,
};
use tokio::sync::Notify;

/// One answer of the channel: status, headers, body.
type Answer = (StatusCode, Vec<(&'static str, String)>, String);

/// A channel whose first request is answered only once the second has
/// been.
struct Overtaken {
    requests: AtomicUsize,
    first_arrived: Notify,
    release_first: Notify,
}

impl Overtaken {
    /// `stale` (written first, read last) for the first request, `fresh`
    /// for every later one.
    async fn serve(stale: Answer, fresh: Answer) -> (Arc<Overtaken>, common::Server) {
        Overtaken::serve_by(move |n, _| if n == 0 { stale.clone() } else { fresh.clone() }).await
    }

    /// `answer(n, body)` for the `n`th request (from 0), whose body is
    /// `body`; the answer to the first is written at once and held back.
    async fn serve_by(
        answer: impl Fn(usize, &str) -> Answer + Clone + Send + Sync + 'static,
    ) -> (Arc<Overtaken>, common::Server) {
        let gate = Arc::new(Overtaken {
            requests: AtomicUsize::new(0),
            first_arrived: Notify::new(),
            release_first: Notify::new(),
        });
        let g = gate.clone();
        let router = Router::new().fallback(move |request: String| {
            let (gate, answer) = (g.clone(), answer.clone());
            async move {
                let n = gate.requests.fetch_add(1, Ordering::SeqCst);
                let (status, headers, body) = answer(n, &request);
                if n == 0 {
                    gate.first_arrived.notify_one();
                    gate.release_first.notified().await;
                }
                let headers: Vec<(HeaderName, String)> = headers
                    .into_iter()
                    .map(|(k, v)| (HeaderName::from_static(k), v))
                    .collect();
                let mut response = (status, body).into_response();
                for (k, v) in headers {
                    response.headers_mut().insert(k, v.parse().unwrap());
                }
                response
            }
        });
        (gate, common::serve(router).await)
    }

    /// Polls twice side by side: the first poll goes out, the second goes
    /// out after it and is answered first; `between` runs then, before the
    /// first poll's answer is read. The second poll's result, once the
    /// first succeeded.
    async fn poll_twice(
        &self,
        connector: Arc<dyn Connector>,
        between: impl FnOnce(),
    ) -> Result<OrderPage, ConnectorError> {
        let second = poll_twice(connector, &self.first_arrived, || {
            between();
            self.release_first.notify_one();
        })
        .await;
        assert_eq!(self.requests.load(Ordering::SeqCst), 2);
        second
    }
}

/// Polls twice side by side: the first poll goes out and, once `held` says
/// it is held up, the second goes and is answered; then `release` lets the
/// first go on. The second poll's result, once the first succeeded.
async fn poll_twice(
    connector: Arc<dyn Connector>,
    held: &Notify,
    release: impl FnOnce(),
) -> Result<OrderPage, ConnectorError> {
    let (since, now) = (Utc::now() - chrono::Duration::hours(1), Utc::now());
    let c = connector.clone();
    let first = tokio::spawn(async move { c.poll_orders(None, since, now).await });
    tokio::time::timeout(Duration::from_secs(10), held.notified())
        .await
        .expect("the first poll was held up");
    let second = connector.poll_orders(None, since, now).await;
    release();
    tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first poll was answered")
        .unwrap()?;
    second
}

/// A pacer whose own published limits never hold a call: only what the
/// channel reports does.
fn pacer(account: &str) -> Arc<AccountPacer> {
    AccountPacer::fixed(
        account,
        RateLimit {
            per_second: 1000.0,
            burst: 1000,
        },
        PacerOptions::default(),
    )
}

/// A token store holding an access token good for an hour, so that no
/// refresh goes to the channel.
async fn access_token_for_an_hour(token: &str) -> Arc<MemoryTokenStore> {
    let tokens = MemoryTokenStore::shared();
    tokens
        .save(&TokenSet {
            access_token: Some(Secret::new(token)),
            access_expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
            refresh_token: None,
        })
        .await
        .unwrap();
    tokens
}

/// An empty page of Shopify orders with its cost report: a bucket of
/// `maximum` points holding `available`, refilled at 1 a second.
fn shopify_empty_page(maximum: u32, available: u32) -> Answer {
    (
        StatusCode::OK,
        vec![("content-type", "application/json".to_owned())],
        serde_json::json!({
            "data": { "orders": { "nodes": [], "pageInfo": { "hasNextPage": false, "endCursor": null } } },
            "extensions": { "cost": {
                "requestedQueryCost": 10, "actualQueryCost": 10,
                "throttleStatus": { "maximumAvailable": maximum, "currentlyAvailable": available, "restoreRate": 1.0 }
            } }
        })
        .to_string(),
    )
}

/// The Shopify connector of `shop-us` at `server`, awaiting `pacer`.
fn shopify(
    server: &common::Server,
    pacer: Arc<dyn Pacer>,
) -> Arc<switchyard_shopify::ShopifyConnector> {
    Arc::new(
        switchyard_shopify::ShopifyConnector::new(
            switchyard_shopify::ShopifyConfig::new(
                "shop-us",
                &server.url,
                Secret::new("test-token"),
            ),
            reqwest::Client::new(),
            pacer,
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_a_cost_report_read_after_a_later_one_does_not_refill_the_bucket() {
    // Written while the bucket was nearly full; the later call found it
    // nearly empty (other apps of the shop spent it).
    let (gate, server) =
        Overtaken::serve(shopify_empty_page(1000, 900), shopify_empty_page(1000, 10)).await;
    let pacer = pacer("shop-us");
    let connector = shopify(&server, pacer.clone());
    // Pushes wait until a tenth of the bucket is back: 90 points, capped
    // at a minute's wait for one report.
    let push_wait = || pacer.delay(Operation::PushInventory, 1);
    let mut after_fresh = Duration::ZERO;
    gate.poll_twice(connector, || after_fresh = push_wait())
        .await
        .unwrap();
    assert!(after_fresh > Duration::from_secs(30), "{after_fresh:?}");
    assert!(
        push_wait() > Duration::from_secs(30),
        "the stale report of 900 points was taken: {:?}",
        push_wait()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_a_late_cost_report_of_a_smaller_bucket_is_taken_by_the_pacer_and_the_connector() {
    // The shop's plan changed while both polls were in flight: the answer
    // read last shows a bucket half the size, nearly empty. Whether it was
    // written before an upgrade or after a downgrade, it is less room, and
    // both the pacer and the connector's own copy take it.
    let (gate, server) =
        Overtaken::serve(shopify_empty_page(1000, 50), shopify_empty_page(2000, 1500)).await;
    let pacer = pacer("shop-us");
    let connector = shopify(&server, pacer.clone());
    let push_wait = || pacer.delay(Operation::PushInventory, 1);
    let mut after_fresh = None;
    gate.poll_twice(connector.clone(), || after_fresh = Some(push_wait()))
        .await
        .unwrap();
    assert_eq!(after_fresh, Some(Duration::ZERO));
    // Pushes wait for a tenth of the smaller bucket: 50 points at 1 a second.
    assert!(
        push_wait() > Duration::from_secs(30),
        "the pacer dropped the smaller bucket: {:?}",
        push_wait()
    );
    let in_force = connector.rate_hint().unwrap();
    assert_eq!((in_force.capacity, in_force.remaining), (1000, 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_a_late_cost_report_does_not_send_sku_look_ups_into_a_low_bucket() {
    // Every answer by the operation it names, with Shopify's bucket (1000
    // points, 1 a second): the first request, the first SKU look-up of a
    // stock push, was answered while the bucket was nearly full; every
    // later one finds it nearly empty (other apps of the shop spent it).
    let look_ups = Arc::new(AtomicUsize::new(0));
    let counted = look_ups.clone();
    let (gate, server) = Overtaken::serve_by(move |n, request| {
        let data = if request.contains("SwitchyardVariantsBySku") {
            counted.fetch_add(1, Ordering::SeqCst);
            serde_json::json!({ "productVariants": { "nodes": [
                { "id": "gid://shopify/ProductVariant/71", "sku": "TEE-1", "inventoryItem": { "id": "gid://shopify/InventoryItem/81" } },
                { "id": "gid://shopify/ProductVariant/72", "sku": "HAT-2", "inventoryItem": { "id": "gid://shopify/InventoryItem/82" } }
            ] } })
        } else if request.contains("SwitchyardPrimaryLocation") {
            serde_json::json!({ "location": { "id": "gid://shopify/Location/91" } })
        } else if request.contains("SwitchyardSetStock") {
            serde_json::json!({ "inventorySetQuantities": {
                "inventoryAdjustmentGroup": { "id": "gid://shopify/InventoryAdjustmentGroup/1" },
                "userErrors": []
            } })
        } else {
            serde_json::json!({ "orders": { "nodes": [], "pageInfo": { "hasNextPage": false, "endCursor": null } } })
        };
        let available = if n == 0 { 900 } else { 10 };
        (
            StatusCode::OK,
            vec![("content-type", "application/json".to_owned())],
            serde_json::json!({
                "data": data,
                "extensions": { "cost": {
                    "requestedQueryCost": 6, "actualQueryCost": 6,
                    "throttleStatus": { "maximumAvailable": 1000.0, "currentlyAvailable": available, "restoreRate": 1.0 }
                } }
            })
            .to_string(),
        )
    })
    .await;
    // The connector's own guard is under test, not the pacer's waits.
    let connector = shopify(&server, Unpaced::shared());
    let push = |sku: &str| InventoryPush {
        sku: sku.to_owned(),
        quantity: 3,
        last_confirmed: None,
        listing_ref: None,
        idempotency_key: format!("stock-{sku}-1"),
    };
    let pushes = vec![push("TEE-1"), push("HAT-2")];
    let c = connector.clone();
    let batch = tokio::spawn(async move { c.push_inventory_batch(&pushes).await });
    tokio::time::timeout(Duration::from_secs(10), gate.first_arrived.notified())
        .await
        .expect("the first look-up reached the shop");
    // A poll goes out after the look-up and is answered first: 10 points.
    let (since, now) = (Utc::now() - chrono::Duration::hours(1), Utc::now());
    connector.poll_orders(None, since, now).await.unwrap();
    gate.release_first.notify_one();
    let results = tokio::time::timeout(Duration::from_secs(10), batch)
        .await
        .expect("the push was answered")
        .unwrap();
    // The look-up's answer says 900 points but was written before the
    // poll's: the second SKU must wait for the bucket (a look-up and the
    // mutation need 18 points), not go out and come back throttled.
    assert!(
        matches!(&results[0], Ok(InventoryResult::Set { quantity: 3, .. })),
        "{:?}",
        results[0]
    );
    match &results[1] {
        Err(ConnectorError::RateLimited { detail, .. }) => {
            assert!(detail.contains("down to 10 of 1000 points"), "{detail}");
        }
        other => panic!("the stale report of 900 points was taken: {other:?}"),
    }
    assert_eq!(look_ups.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amazon_a_rate_report_read_after_a_later_one_does_not_refill_the_bucket() {
    let answer = |status: StatusCode, rate: &str, body: &str| {
        (
            status,
            vec![
                ("content-type", "application/json".to_owned()),
                ("x-amzn-ratelimit-limit", rate.to_owned()),
            ],
            body.to_owned(),
        )
    };
    // The first poll's answer says the old, faster rate; the later one is
    // a 429 under the slower rate now in force (the bucket is empty).
    let (gate, server) = Overtaken::serve(
        answer(StatusCode::OK, "1.0", r#"{"orders": []}"#),
        answer(
            StatusCode::TOO_MANY_REQUESTS,
            "0.05",
            r#"{"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota for the requested resource."}]}"#,
        ),
    )
    .await;
    let pacer = pacer("amz-us");
    let tokens = access_token_for_an_hour("Atza|test-access-token").await;
    let connector = switchyard_amazon::AmazonConnector::new(
        switchyard_amazon::fixture_settings(),
        BuildContext {
            account: "amz-us".into(),
            base_url: server.url.clone(),
            http: reqwest::Client::new(),
            tokens,
            pacer: pacer.clone(),
        },
    )
    .unwrap();
    // Polls wait until a tenth of the 20-call burst is back: 2 calls, 40 s
    // at 0.05 a second, 2 s at the stale 1.0.
    let poll_wait = || pacer.delay(Operation::Poll, 1);
    let mut after_fresh = Duration::ZERO;
    let second = gate
        .poll_twice(Arc::new(connector), || after_fresh = poll_wait())
        .await;
    assert!(
        matches!(second, Err(ConnectorError::RateLimited { .. })),
        "{second:?}"
    );
    assert!(after_fresh > Duration::from_secs(20), "{after_fresh:?}");
    assert!(
        poll_wait() > Duration::from_secs(20),
        "the stale report of the faster rate was taken: {:?}",
        poll_wait()
    );
}

/// A pacer that hands the first report on polls it gets on to `inner` only
/// once a second one has been handed on: the thread that counted the first
/// call is held between its count and its report, as a busy machine may.
/// Reports on other operations go straight on.
struct FirstReportHeld {
    inner: Arc<AccountPacer>,
    reports: AtomicUsize,
    first_held: Notify,
    second_passed: Mutex<mpsc::Receiver<()>>,
    pass_second: mpsc::Sender<()>,
}

impl FirstReportHeld {
    fn new(inner: Arc<AccountPacer>) -> Arc<FirstReportHeld> {
        let (pass_second, second_passed) = mpsc::channel();
        Arc::new(FirstReportHeld {
            inner,
            reports: AtomicUsize::new(0),
            first_held: Notify::new(),
            second_passed: Mutex::new(second_passed),
            pass_second,
        })
    }

    fn pass(&self, operation: Operation, hint: RateHint, sent: Option<tokio::time::Instant>) {
        let n = if operation == Operation::Poll {
            self.reports.fetch_add(1, Ordering::SeqCst)
        } else {
            usize::MAX
        };
        if n == 0 {
            self.first_held.notify_one();
            // Off the worker, so the second call runs meanwhile.
            tokio::task::block_in_place(|| {
                let passed = self.second_passed.lock().unwrap();
                passed
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a second report came");
            });
        }
        match sent {
            Some(sent) => self.inner.observe_answer(operation, hint, sent),
            None => self.inner.observe(operation, hint),
        }
        if n == 1 {
            self.pass_second.send(()).unwrap();
        }
    }
}

impl Pacer for FirstReportHeld {
    fn acquire(&self, operation: Operation, cost: u32) -> BoxFuture<'_, ()> {
        self.inner.acquire(operation, cost)
    }

    fn observe(&self, operation: Operation, hint: RateHint) {
        self.pass(operation, hint, None);
    }

    fn observe_answer(&self, operation: Operation, hint: RateHint, sent: tokio::time::Instant) {
        self.pass(operation, hint, Some(sent));
    }
}

/// The eBay connector for a channel whose every answer is an empty page of
/// orders, with a day's budget of `fulfillment_calls` Fulfillment API calls
/// and its reports going to `pacer`.
async fn ebay_with_empty_orders(
    fulfillment_calls: u32,
    pacer: Arc<dyn Pacer>,
) -> (switchyard_ebay::EbayConnector, common::Server) {
    let server = common::serve(Router::new().fallback(|| async {
        (
            [("content-type", "application/json")],
            r#"{"href": "", "total": 0, "limit": 200, "offset": 0, "orders": []}"#,
        )
    }))
    .await;
    let tokens = access_token_for_an_hour("v^1.1#test-user-token").await;
    let mut settings = switchyard_ebay::replay_ebay_settings("ebay-us");
    settings.daily_calls_fulfillment = fulfillment_calls;
    let connector = switchyard_ebay::EbayConnector::new(
        settings,
        BuildContext {
            account: "ebay-us".into(),
            base_url: server.url.clone(),
            http: reqwest::Client::new(),
            tokens,
            pacer,
        },
    )
    .unwrap();
    (connector, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_a_call_count_that_reaches_the_pacer_late_does_not_give_a_call_back() {
    let pacer = pacer("ebay-us");
    let held = FirstReportHeld::new(pacer.clone());
    // A day's budget of two Fulfillment API calls: both polls spend it.
    let (connector, _server) = ebay_with_empty_orders(2, held.clone()).await;
    // The first poll is counted (one call left) and held before its report;
    // the second is counted (none left) and reported; then the first
    // poll's count reaches the pacer.
    poll_twice(Arc::new(connector), &held.first_held, || {})
        .await
        .unwrap();
    assert_eq!(held.reports.load(Ordering::SeqCst), 2);
    let wait = pacer.delay(Operation::Poll, 1);
    assert!(
        wait > Duration::from_secs(3600),
        "the first count, one call left, was taken after the second: polls wait {wait:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_polls_spending_the_fulfillment_budget_hold_tracking_pushes_before_one_is_made() {
    let pacer = pacer("ebay-us");
    let (connector, _server) = ebay_with_empty_orders(20, pacer.clone()).await;
    let (since, now) = (Utc::now() - chrono::Duration::hours(1), Utc::now());
    // 19 polls leave 1 call of 20: under the 10% kept for pushes.
    for _ in 0..19 {
        connector.poll_orders(None, since, now).await.unwrap();
    }
    assert_eq!(pacer.delay(Operation::Poll, 1), Duration::ZERO);
    // The reserve refills at 20 calls a day: one more call is 4320 s off.
    let push = pacer.delay(Operation::PushTracking, 1);
    assert!(
        push > Duration::from_secs(3600),
        "no tracking push has been made, and the polls' count did not reach it: pushes wait {push:?}"
    );
}
