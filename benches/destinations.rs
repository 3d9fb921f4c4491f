//! Delivery latency under load: from a Shopify `orders/create` webhook being
//! sent to the daemon to the canonical order arriving at its destination, at
//! 10, 50 and 200 orders a second (open loop: each webhook leaves on
//! schedule, whatever the daemon is doing), against a destination on
//! 127.0.0.1 that answers in about 3 ms.
//!
//! Each rate runs twice: with the old fixed pace (20 deliveries a second,
//! one at a time: `rate = 20`, `concurrency = 1`) and with the defaults.
//! Baselines from the same run, so ratios can be compared on a noisy
//! machine: the destination's own answer time (POSTs straight to it), and
//! the webhook's acknowledgement (stored and flushed) in each run.
//!
//! Plain `Instant` timing (no criterion); run with
//! `cargo bench --bench destinations`.

// A benchmark that cannot set up panics: that is its failure report.
// Percentile indexes and counts cast freely.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

#[path = "../tests/it/common/eventually.rs"]
mod eventually;
#[path = "../tests/it/common/daemon.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use harness::{ConfigBuilder, Destination, InProcess, ShopifyAccount, paid_order_webhook};
use switchyard::sim::Simulator;

const SECRET: &str = "bench-webhook-secret";
/// How long a run waits for the last deliveries after its last webhook.
const DRAIN: Duration = Duration::from_secs(10);
/// What the destination takes to answer.
const ANSWER: Duration = Duration::from_millis(3);

/// (orders a second, orders): 10 s at 10 and 50 a second, 5 s at 200.
const LOADS: [(u32, u64); 3] = [(10, 100), (50, 500), (200, 1_000)];

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// The destination: answers 204 after [`ANSWER`], noting when each order
/// first arrived.
async fn destination() -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let a = arrivals.clone();
    let app = axum::Router::new().route(
        "/orders",
        post(move |body: String| {
            let a = a.clone();
            async move {
                let at = Instant::now();
                if let Ok(order) = serde_json::from_str::<serde_json::Value>(&body)
                    && let Some(id) = order["id"].as_str()
                {
                    a.lock().unwrap().entry(id.to_owned()).or_insert(at);
                }
                tokio::time::sleep(ANSWER).await;
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/orders", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, arrivals)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The baseline: the destination's own answer, POSTed straight to it.
async fn direct(url: &str) -> (Duration, Duration) {
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "id": "baseline" }).to_string();
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let resp = client.post(url).body(body.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 204);
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

struct Run {
    /// Webhook sent → order at the destination; `None`: not there within
    /// [`DRAIN`] of the last webhook.
    delivered: Vec<Option<Duration>>,
    acks: Vec<Duration>,
}

impl Run {
    /// p50 and p99 of the delivery latency; `None` where the percentile
    /// falls on an order still queued.
    fn delivery(&self) -> (Option<Duration>, Option<Duration>) {
        let mut d: Vec<Duration> = self.delivered.iter().flatten().copied().collect();
        d.sort();
        let at = |p: f64| {
            let rank = ((self.delivered.len() as f64 - 1.0) * p).round() as usize;
            (rank < d.len()).then(|| d[rank])
        };
        (at(0.5), at(0.99))
    }

    fn queued(&self) -> usize {
        self.delivered.iter().filter(|d| d.is_none()).count()
    }

    fn acks(&self) -> (Duration, Duration) {
        let mut a = self.acks.clone();
        a.sort();
        (percentile(&a, 0.5), percentile(&a, 0.99))
    }
}

/// One daemon (fresh store) taking `orders` webhooks at `per_second`,
/// delivering to a destination paced as `pace` gives (`None`: defaults).
async fn run(per_second: u32, orders: u64, pace: Option<(f64, u32)>, first: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let sim = Simulator::start(empty.path()).await.unwrap();
    let (url, arrivals) = destination().await;
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "default_route = \"east-wh\"\n").unwrap();
    let mut east = Destination::webhook("east-wh", &url).secret("bench-destination-secret");
    if let Some((rate, concurrency)) = pace {
        east = east.pace(rate, concurrency);
    }
    let config = ConfigBuilder::new(dir.path())
        .rules(&rules)
        .account(
            ShopifyAccount::new(
                "shop-us",
                &sim.base_url(switchyard_contract::Channel::Shopify),
            )
            .webhook_secret(SECRET),
        )
        .destinations(vec![east])
        .write();
    let daemon = InProcess::start(&config).await;
    let webhook = daemon.url("/webhooks/shop-us");
    let client = reqwest::Client::new();

    let webhooks: Vec<_> = (first..first + orders)
        .map(|n| (n, paid_order_webhook(n, SECRET)))
        .collect();
    let every = Duration::from_secs_f64(1.0 / f64::from(per_second));
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut senders = Vec::new();
    for (i, (n, (headers, body))) in webhooks.into_iter().enumerate() {
        let (client, webhook) = (client.clone(), webhook.clone());
        senders.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + every * i as u32).await;
            let sent = Instant::now();
            let mut req = client.post(&webhook).body(body);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            (format!("shop-us:{n}"), sent, sent.elapsed())
        }));
    }
    let mut sent = Vec::new();
    for s in senders {
        sent.push(s.await.unwrap());
    }
    let deadline = Instant::now() + DRAIN;
    while Instant::now() < deadline && arrivals.lock().unwrap().len() < sent.len() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let arrived = arrivals.lock().unwrap().clone();
    let delivered = sent
        .iter()
        .map(|(id, at, _)| arrived.get(id).map(|got| got.duration_since(*at)))
        .collect();
    let acks = sent.iter().map(|(_, _, ack)| *ack).collect();
    let _ = daemon.stop().await;
    sim.stop().await;
    Run { delivered, acks }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (url, _) = destination().await;
        let _ = direct(&url).await; // warm up
        let (d50, d99) = direct(&url).await;
        println!(
            "baseline: the destination's own answer (POST straight to it): p50 {}  p99 {}",
            ms(d50),
            ms(d99)
        );
        let setups = [
            ("before: rate 20, concurrency 1", Some((20.0, 1))),
            ("default: rate 400, concurrency 8", None),
        ];
        let mut first = 8_000_000_000u64;
        for (per_second, orders) in LOADS {
            for (name, pace) in setups {
                let r = run(per_second, orders, pace, first).await;
                first += orders;
                let (p50, p99) = r.delivery();
                let (a50, a99) = r.acks();
                let show = |d: Option<Duration>, ack: Duration| match d {
                    Some(d) => format!("{} ({:.2}x ack)", ms(d), d.as_secs_f64() / ack.as_secs_f64()),
                    None => format!("> {} s (still queued)", DRAIN.as_secs()),
                };
                println!(
                    "{per_second:>3} orders/s, {orders:>4} orders, {name}: delivery p50 {}  p99 {}  | webhook ack p50 {}  p99 {}  | {} still queued {} s after the last",
                    show(p50, a50),
                    show(p99, a99),
                    ms(a50),
                    ms(a99),
                    r.queued(),
                    DRAIN.as_secs(),
                );
            }
        }
    });
}
