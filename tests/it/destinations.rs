//! Deliveries to a destination under load, through the daemon: orders taken
//! by webhook and delivered to a sink on 127.0.0.1 that counts the calls in
//! flight and answers 429 or 503 when told to. A destination's
//! `concurrency` caps the calls in flight; its 429 and 503 slow it down
//! (`switchyard_destination_rate`), are retried no sooner than their
//! `Retry-After`, and show in the outbox list while they wait. The pace
//! itself (spacing, halving, recovery) is timed under paused time in the
//! outbox worker's and the pacer's own tests. Deliveries that end together
//! are each noted on their order once. A hold that comes while a delivery
//! is in flight sends its notice after the delivery.

use crate::common::{Server, eventually, serve};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use switchyard::sim::Simulator;
use switchyard_contract::Channel;

use crate::common::daemon::{
    ConfigBuilder, Destination, InProcess, ShopifyAccount, paid_order_webhook, post as send,
};

const WEBHOOK_SECRET: &str = "dest-test-webhook-secret";
const ADMIN_TOKEN: &str = "dest-test-admin-token";

/// One call the sink answered: the order it carried, when it came, and
/// the status it got.
#[derive(Clone, Debug)]
struct Call {
    order: String,
    at: Instant,
    status: u16,
}

/// A destination: holds each call until `hold_until` calls are in flight
/// together (once; 2 s at the most), answers the scripted statuses first
/// (with their `Retry-After`), then 204.
#[derive(Default)]
struct Sink {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    hold_until: usize,
    opened: AtomicBool,
    script: Mutex<VecDeque<(u16, &'static str)>>,
    calls: Mutex<Vec<Call>>,
}

impl Sink {
    fn new(hold_until: usize, script: &[(u16, &'static str)]) -> Arc<Sink> {
        Arc::new(Sink {
            hold_until,
            script: Mutex::new(script.iter().copied().collect()),
            ..Sink::default()
        })
    }

    async fn take(self: Arc<Sink>, headers: HeaderMap, body: String) -> Response {
        let at = Instant::now();
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        if now >= self.hold_until {
            self.opened.store(true, Ordering::SeqCst);
        }
        // The first calls wait for each other, so a cap above one shows as
        // calls in flight together, however slow the machine.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.opened.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let order: Value = serde_json::from_str(&body).unwrap();
        let order = order["id"].as_str().unwrap().to_owned();
        assert!(headers.contains_key("x-switchyard-signature"));
        let answer = self.script.lock().unwrap().pop_front();
        let status = answer.map_or(204, |(status, _)| status);
        self.calls.lock().unwrap().push(Call { order, at, status });
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match answer {
            Some((status, retry_after)) => (
                StatusCode::from_u16(status).unwrap(),
                [("retry-after", retry_after)],
                "busy, come back later",
            )
                .into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Orders that got a 2xx.
    fn delivered(&self) -> Vec<String> {
        let mut orders: Vec<String> = self
            .calls()
            .into_iter()
            .filter(|c| c.status < 300)
            .map(|c| c.order)
            .collect();
        orders.sort();
        orders
    }
}

async fn sink_server(sink: &Arc<Sink>) -> Server {
    let s = sink.clone();
    serve(axum::Router::new().route(
        "/orders",
        post(move |headers: HeaderMap, body: String| s.clone().take(headers, body)),
    ))
    .await
}

/// The daemon with one Shopify account taking webhooks and every order
/// routed to `destination`.
struct Hub {
    _dir: tempfile::TempDir,
    _sim: Simulator,
    daemon: InProcess,
    http: reqwest::Client,
}

impl Hub {
    async fn start(destination: Destination) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("no-fixtures");
        std::fs::create_dir(&empty).unwrap();
        let sim = Simulator::start(&empty).await.unwrap();
        let rules = dir.path().join("rules.toml");
        std::fs::write(&rules, "default_route = \"east-wh\"\n").unwrap();
        let config = ConfigBuilder::new(dir.path())
            .rules(&rules)
            .admin_token(ADMIN_TOKEN)
            .shutdown_timeout("5s")
            .account(
                ShopifyAccount::new("shop-us", &sim.base_url(Channel::Shopify))
                    .webhook_secret(WEBHOOK_SECRET),
            )
            .destinations(vec![destination])
            .write();
        let daemon = InProcess::start(&config).await;
        Hub {
            _dir: dir,
            _sim: sim,
            daemon,
            http: reqwest::Client::new(),
        }
    }

    /// Takes paid order `n` by webhook; answers its canonical id.
    async fn order(&self, n: u64) -> String {
        let (headers, body) = paid_order_webhook(n, WEBHOOK_SECRET);
        let url = self.daemon.url("/webhooks/shop-us");
        let (status, text) = send(&self.http, &url, &headers, body).await;
        assert_eq!(status, 200, "{text}");
        format!("shop-us:{n}")
    }

    /// An admin `GET` of `path`, read as JSON.
    async fn admin_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.daemon.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /api/v1/orders/ID`: the order with its history.
    async fn shown(&self, order: &str) -> Value {
        self.admin_get(&format!("/api/v1/orders/{order}")).await
    }

    /// The value of one series of `/metrics`, e.g.
    /// `switchyard_destination_rate{destination="east-wh"}`.
    async fn metric(&self, series: &str) -> Option<f64> {
        crate::common::daemon::metric(&self.http, &self.daemon.url("/metrics"), series).await
    }

    /// `outbox list --json`: what waits to be sent.
    async fn outbox(&self) -> Vec<Value> {
        self.admin_get("/api/v1/outbox").await
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn a_destinations_concurrency_caps_the_deliveries_in_flight() {
    let sink = Sink::new(3, &[]);
    let server = sink_server(&sink).await;
    let hub = Hub::start(
        Destination::webhook("east-wh", &format!("{}/orders", server.url))
            .secret("s")
            .pace(1000.0, 3),
    )
    .await;
    let mut orders = Vec::new();
    for n in 0..15 {
        orders.push(hub.order(9_100 + n).await);
    }
    let orders = sorted(orders);
    eventually(
        "every order delivered",
        Duration::from_secs(20),
        async || sink.delivered() == orders,
    )
    .await;
    // Three went together (the sink held them until they did), never four.
    assert_eq!(sink.most.load(Ordering::SeqCst), 3);
    assert_eq!(sink.calls().len(), 15, "each order delivered once");
    // Deliveries that ended together were noted together: each order says
    // it was delivered, once, and no item is left to send again.
    eventually(
        "every delivery noted",
        Duration::from_secs(20),
        async || hub.outbox().await.is_empty(),
    )
    .await;
    for order in &orders {
        let shown = hub.shown(order).await;
        let delivered = shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "delivered")
            .count();
        assert_eq!(delivered, 1, "{order}: {}", shown["history"]);
    }
    let _ = hub.daemon.stop().await;
}

#[tokio::test]
async fn one_at_a_time_unless_the_destination_says_more() {
    // `concurrency = 1`: the sink never sees two together, even though it
    // would hold the first until a second came (2 s at the most).
    let sink = Sink::new(2, &[]);
    let server = sink_server(&sink).await;
    let hub = Hub::start(
        Destination::webhook("east-wh", &format!("{}/orders", server.url))
            .secret("s")
            .pace(1000.0, 1),
    )
    .await;
    let mut orders = Vec::new();
    for n in 0..4 {
        orders.push(hub.order(9_200 + n).await);
    }
    let orders = sorted(orders);
    eventually(
        "every order delivered",
        Duration::from_secs(20),
        async || sink.delivered() == orders,
    )
    .await;
    assert_eq!(sink.most.load(Ordering::SeqCst), 1);
    let _ = hub.daemon.stop().await;
}

#[tokio::test]
async fn a_429_or_503_slows_the_destination_and_waits_out_its_retry_after() {
    // The first call is refused with 429 (come back in 2 s), the next with
    // 503 (in 1 s); then everything goes through.
    let sink = Sink::new(1, &[(429, "2"), (503, "1")]);
    let server = sink_server(&sink).await;
    let hub = Hub::start(
        Destination::webhook("east-wh", &format!("{}/orders", server.url))
            .secret("s")
            .pace(40.0, 1),
    )
    .await;
    let rate = r#"switchyard_destination_rate{destination="east-wh"}"#;
    assert_eq!(hub.metric(rate).await, Some(40.0));
    let first = hub.order(9_300).await;

    // While it waits, the outbox says why and when it goes again.
    let waiting = eventually(
        "the refused delivery in the outbox list",
        Duration::from_secs(10),
        async || {
            let items = hub.outbox().await;
            items
                .into_iter()
                .find(|i| i["last_error"].as_str().is_some_and(|e| e.contains("429")))
                .ok_or("no item with a 429 yet")
        },
    )
    .await;
    assert_eq!(waiting["account"], "destination:east-wh", "{waiting}");
    assert_eq!(waiting["state"], "pending", "{waiting}");
    assert!(waiting["next_attempt_at"].is_string(), "{waiting}");
    let slowed = hub.metric(rate).await.unwrap();
    assert!(slowed <= 20.0, "halved from 40: {slowed}");

    let mut orders = vec![first];
    for n in 1..4 {
        orders.push(hub.order(9_300 + n).await);
    }
    let orders = sorted(orders);
    eventually(
        "every order delivered",
        Duration::from_secs(20),
        async || sink.delivered() == orders,
    )
    .await;

    let calls = sink.calls();
    assert_eq!(calls[0].status, 429);
    assert_eq!(calls[1].status, 503);
    // Nothing went before a refusal's Retry-After was over.
    assert!(
        calls[1].at - calls[0].at >= Duration::from_secs(2),
        "{calls:?}"
    );
    assert!(
        calls[2].at - calls[1].at >= Duration::from_secs(1),
        "{calls:?}"
    );
    assert_eq!(
        calls.len(),
        6,
        "four deliveries and two refusals: {calls:?}"
    );
    // Halved twice, and growing back a little with each delivery.
    let now = hub.metric(rate).await.unwrap();
    assert!(now < slowed && now > 0.0, "{now} after {slowed}");
    let limited = r#"switchyard_rate_limited_total{account="destination:east-wh",source="outbox"}"#;
    assert_eq!(hub.metric(limited).await, Some(2.0));
    // The sink counts a delivery before it answers; the daemon marks it done
    // once it has read the answer.
    eventually("the outbox to drain", Duration::from_secs(20), async || {
        hub.outbox().await.is_empty()
    })
    .await;
    let _ = hub.daemon.stop().await;
}

/// With several deliveries in flight, a person can hold an order while its
/// delivery is on its way: the hold found nothing delivered to tell the
/// destination about, so the notice goes once the delivery is through, and
/// never before it.
#[tokio::test]
async fn a_hold_while_the_delivery_is_in_flight_sends_its_notice_after_it() {
    type Seen = Arc<Mutex<Vec<(String, String)>>>;
    let seen: Seen = Arc::default();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (s, g) = (seen.clone(), gate.clone());
    let server = serve(axum::Router::new().route(
        "/orders",
        post(move |headers: HeaderMap, body: String| {
            let (s, g) = (s.clone(), g.clone());
            async move {
                let what = headers
                    .get("x-switchyard-notice")
                    .map_or("delivery".to_owned(), |v| v.to_str().unwrap().to_owned());
                let body: Value = serde_json::from_str(&body).unwrap();
                let order = body["id"].as_str().or(body["order_id"].as_str()).unwrap();
                s.lock().unwrap().push((what.clone(), order.to_owned()));
                if what == "delivery" {
                    // Held until the test has put the order on hold.
                    g.acquire().await.unwrap().forget();
                }
                StatusCode::NO_CONTENT
            }
        }),
    ))
    .await;
    let hub = Hub::start(
        Destination::webhook("east-wh", &format!("{}/orders", server.url))
            .secret("s")
            .pace(100.0, 4),
    )
    .await;
    let order = hub.order(9_400).await;
    eventually(
        "the delivery on its way",
        Duration::from_secs(10),
        async || !seen.lock().unwrap().is_empty(),
    )
    .await;
    let resp = hub
        .http
        .post(hub.daemon.url(&format!("/api/v1/orders/{order}/hold")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "reason": "address check" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    gate.add_permits(1);
    eventually("the hold notice", Duration::from_secs(10), async || {
        seen.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("delivery".to_owned(), order.clone()),
            ("hold".to_owned(), order.clone())
        ]
    );
    let shown = hub.shown(&order).await;
    let history = shown["history"].to_string();
    assert!(
        history.contains("hold came while it was on its way: hold notice queued"),
        "{history}"
    );
    let _ = hub.daemon.stop().await;
}
