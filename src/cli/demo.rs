//! `switchyard demo`: the whole loop on this machine with no credentials and
//! no network. The simulator serves the recorded fixtures of every channel,
//! a built-in destination stands in for the warehouses, and the daemon runs
//! against both in a temporary state directory with the example config and
//! rules. The demo then acts as the people around the daemon would, through
//! the same HTTP surface they use: the channels deliver their recorded
//! webhooks, the merchant sets stock levels, the warehouse reports shipments.
//! At the end a summary says what happened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_contract::{Channel, OrderStatus};
use tokio::sync::oneshot;

use super::print::{out, outln};
use super::{CliResult, DemoArgs, EXIT_FAILED, Failure};
use crate::config::DestinationKind;
use crate::daemon::{RunOptions, RunReport, run};
use crate::sim::{Delivery, DestinationSink, Simulator};
use crate::store::{OrderFilter, OutboxItem, StoredOrder};

/// The source tree, for running the demo from anywhere in a checkout.
const SOURCE_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// How long each step may wait for the daemon before the demo reports anyway.
const STEP_DEADLINE: Duration = Duration::from_secs(20);

/// The stock level the merchant sets for every SKU the orders mention.
const DEMO_STOCK: i64 = 20;

fn locate(explicit: Option<&Path>, relative: &str) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let here = PathBuf::from(relative);
    if here.exists() {
        here
    } else {
        Path::new(SOURCE_DIR).join(relative)
    }
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(EXIT_FAILED, e.to_string())
}

/// What the demo did besides syncing, for the summary.
#[derive(Default)]
struct Story {
    synced: bool,
    webhooks: Vec<(String, String, u16, String)>,
    stock_set: Vec<String>,
    shipments: Vec<(String, u16, String)>,
    settled: bool,
}

/// The daemon's HTTP surface, as the demo's actors use it.
struct Daemon {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Daemon {
    fn admin(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn get_json(&self, path: &str) -> Option<Value> {
        let resp = self
            .admin(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    async fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, String) {
        let req = self.admin(
            self.http
                .request(method, format!("{}{path}", self.base))
                .json(body),
        );
        match req.send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// Waits until every running account caught up once (or failed).
    async fn wait_for_first_sync(&self, running: &[String]) -> bool {
        let started = Instant::now();
        while started.elapsed() < STEP_DEADLINE {
            if let Some(v) = self.get_json("/readyz").await {
                let done = running.iter().all(|a| {
                    let h = &v["accounts"][a];
                    !h["last_success"].is_null()
                        || h["consecutive_errors"].as_u64().unwrap_or(0) > 0
                });
                if done {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Waits until nothing in the outbox is due soon: every push and
    /// delivery went out, or is waiting on a retry far off or is dead.
    async fn wait_for_outbox(&self) -> bool {
        let started = Instant::now();
        while started.elapsed() < STEP_DEADLINE {
            if let Some(Value::Array(items)) = self.get_json("/api/v1/outbox").await {
                let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
                let busy = items.iter().any(|i| {
                    i["next_attempt_at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_some_and(|t| t.to_utc() < soon)
                });
                if !busy {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

pub fn run_demo(explicit_config: Option<&Path>, args: DemoArgs) -> CliResult {
    let config_path = locate(explicit_config, "config/switchyard.toml");
    let fixtures = locate(args.fixtures.as_deref(), "fixtures");
    let mut config = crate::config::load(&config_path).map_err(fail)?;
    let state = tempfile::Builder::new()
        .prefix("switchyard-demo-")
        .tempdir()
        .map_err(|e| fail(format!("cannot create a temporary state directory: {e}")))?;
    config.daemon.state_dir = state.path().to_path_buf();
    config.daemon.listen = ([127, 0, 0, 1], 0).into();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let sim = Simulator::start(&fixtures).await.map_err(fail)?;
        let secrets: BTreeMap<String, Vec<u8>> = config
            .destinations
            .iter()
            .map(|d| match &d.kind {
                DestinationKind::Webhook { secret, .. } => (d.id.clone(), secret.expose().as_bytes().to_vec()),
            })
            .collect();
        let sink = DestinationSink::start(secrets).await.map_err(fail)?;
        for d in &mut config.destinations {
            let DestinationKind::Webhook { url, .. } = &mut d.kind;
            *url = sink.url(&d.id);
        }
        outln!("switchyard demo: every channel with a connector, from the simulator through the rules to a built-in warehouse and back");
        outln!("  config    {}", config_path.display());
        outln!("  rules     {}", config.daemon.rules.display());
        outln!("  fixtures  {}", fixtures.display());
        outln!("  state     {} (temporary)", state.path().display());
        let probe = reqwest::Client::new();
        let mut running = Vec::new();
        for account in &mut config.accounts {
            account.base_url = sim.base_url(account.channel);
            if account.settings.is_some() {
                running.push(account.clone());
            }
        }
        let token = config.daemon.admin_token.as_ref().map(|t| t.expose().to_owned());

        let (addr_tx, addr_rx) = oneshot::channel();
        let addr_tx = parking_lot::Mutex::new(Some(addr_tx));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let options = RunOptions {
            shutdown_deadline: Some(Duration::from_secs(5)),
            on_ready: Some(Arc::new(move |addr| {
                if let Some(tx) = addr_tx.lock().take() {
                    let _ = tx.send(addr);
                }
            })),
            ..RunOptions::default()
        };
        let daemon_task = tokio::spawn(run(config, options, async {
            let _ = stop_rx.await;
        }));
        let Ok(addr) = addr_rx.await else {
            // The daemon ended before it was ready: its error says why.
            return match daemon_task.await {
                Ok(Err(e)) => Err(Failure::from(e)),
                _ => Err(fail("the daemon stopped before it was ready")),
            };
        };
        let daemon = Daemon {
            base: format!("http://{addr}"),
            token,
            http: probe.clone(),
        };
        let story = act(&daemon, &sim, &sink, &running).await;
        let _ = stop_tx.send(());
        let (report, store) = daemon_task
            .await
            .map_err(|e| fail(format!("the daemon task failed: {e}")))?
            .map_err(Failure::from)?;
        let orders = store.list_orders(&OrderFilter::default()).map_err(fail)?;
        let dead = store.outbox_list(true).map_err(fail)?;
        let pending = store.outbox_list(false).map_err(fail)?;
        print_summary(&report, &story, &orders, &sim, &sink.received(), &dead, &pending);
        drop(store);
        sink.stop().await;
        sim.stop().await;
        Ok(())
    })
}

/// Plays the channels, the merchant and the warehouse against the daemon.
async fn act(
    daemon: &Daemon,
    sim: &Simulator,
    sink: &DestinationSink,
    running: &[crate::config::AccountConfig],
) -> Story {
    let mut story = Story::default();
    let ids: Vec<String> = running.iter().map(|a| a.id.clone()).collect();
    story.synced = daemon.wait_for_first_sync(&ids).await;

    // The channels push their recorded webhooks.
    for account in running {
        for w in sim.demo_webhooks(account) {
            let mut req = daemon
                .http
                .post(format!("{}/webhooks/{}", daemon.base, account.id))
                .body(w.body);
            for (k, v) in &w.headers {
                req = req.header(k, v);
            }
            let (status, answer) = match req.send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) => (0, e.to_string()),
            };
            story
                .webhooks
                .push((account.id.clone(), w.name, status, answer.trim().to_owned()));
        }
    }

    // The merchant sets central stock for every SKU the orders mention; the
    // daemon pushes each channel's level.
    let orders = daemon
        .get_json("/api/v1/orders")
        .await
        .unwrap_or(Value::Null);
    let mut skus: Vec<String> = orders
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|o| o["lines"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["sku"].as_str().map(str::to_owned))
        .collect();
    skus.sort();
    skus.dedup();
    let levels: Vec<Value> = skus
        .iter()
        .map(|s| json!({ "sku": s, "available": DEMO_STOCK }))
        .collect();
    let (status, _) = daemon
        .send_json(reqwest::Method::PUT, "/api/v1/stock", &Value::Array(levels))
        .await;
    if status == 202 {
        story.stock_set = skus;
    }
    daemon.wait_for_outbox().await;

    // The warehouse ships what it received and was ready, and reports back.
    let delivered: Vec<String> = sink
        .received()
        .into_iter()
        .filter(|d| d.signature_ok)
        .filter_map(|d| d.order)
        .filter(|o| o.status == OrderStatus::Ready)
        .map(|o| o.id)
        .collect();
    for (n, id) in delivered.iter().enumerate() {
        let body = json!({
            "order_id": id,
            "carrier": "ups",
            "tracking_number": format!("1ZDEMO{:04}", n + 1),
        });
        let (status, answer) = daemon
            .send_json(reqwest::Method::POST, "/api/v1/shipments", &body)
            .await;
        story.shipments.push((id.clone(), status, answer));
    }
    story.settled = daemon.wait_for_outbox().await;
    story
}

fn print_summary(
    report: &RunReport,
    story: &Story,
    orders: &[StoredOrder],
    sim: &Simulator,
    deliveries: &[Delivery],
    dead: &[OutboxItem],
    pending: &[OutboxItem],
) {
    outln!();
    outln!("1. channels synced");
    for a in &report.accounts {
        match (&a.skipped, &a.health) {
            (Some(why), _) => outln!("   {:<12} {:<8} skipped: {why}", a.id, a.channel),
            (None, Some(h)) => match (&h.last_stats, &h.last_error) {
                (Some(s), _) => outln!(
                    "   {:<12} {:<8} {} orders in {} pages",
                    a.id,
                    a.channel,
                    s.orders,
                    s.pages
                ),
                (None, Some(e)) => outln!("   {:<12} {:<8} FAILED: {e}", a.id, a.channel),
                (None, None) => outln!("   {:<12} {:<8} did not finish", a.id, a.channel),
            },
            (None, None) => outln!("   {:<12} {:<8} did not finish", a.id, a.channel),
        }
    }
    if !story.synced {
        outln!(
            "   (not every account caught up within {} s)",
            STEP_DEADLINE.as_secs()
        );
    }
    outln!();
    outln!("2. webhooks the channels pushed");
    if story.webhooks.is_empty() {
        outln!("   none recorded");
    }
    for (account, name, status, answer) in &story.webhooks {
        outln!("   {account:<12} {name:<16} HTTP {status}  {answer}");
    }

    outln!();
    outln!("3. orders in the store: {}", orders.len());
    let mut per_channel: BTreeMap<Channel, usize> = BTreeMap::new();
    let mut routes: BTreeMap<String, usize> = BTreeMap::new();
    for o in orders {
        *per_channel.entry(o.order.channel).or_default() += 1;
        *routes
            .entry(o.order.route.clone().unwrap_or_else(|| "(unrouted)".into()))
            .or_default() += 1;
    }
    let per_channel: Vec<String> = per_channel
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let routes: Vec<String> = routes.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let held: Vec<String> = orders
        .iter()
        .filter_map(|o| {
            o.order
                .hold
                .as_ref()
                .map(|h| format!("{} ({h})", o.order.id))
        })
        .collect();
    outln!(
        "   per channel: {}",
        if per_channel.is_empty() {
            "-".into()
        } else {
            per_channel.join(", ")
        }
    );
    outln!(
        "   routes:      {}",
        if routes.is_empty() {
            "-".into()
        } else {
            routes.join(", ")
        }
    );
    outln!(
        "   on hold:     {}",
        if held.is_empty() {
            "none".into()
        } else {
            held.join(", ")
        }
    );
    if !orders.is_empty() {
        out!("{}", indent(&super::render_list(orders)));
    }

    outln!();
    let verified = deliveries.iter().filter(|d| d.signature_ok).count();
    let mut by_dest: BTreeMap<&str, usize> = BTreeMap::new();
    for d in deliveries {
        *by_dest.entry(d.destination.as_str()).or_default() += 1;
    }
    let by_dest: Vec<String> = by_dest.iter().map(|(d, n)| format!("{d} {n}")).collect();
    outln!(
        "4. deliveries to the warehouses: {} ({verified} with a valid signature){}",
        deliveries.len(),
        if by_dest.is_empty() {
            String::new()
        } else {
            format!(": {}", by_dest.join(", "))
        }
    );

    outln!();
    outln!(
        "5. the merchant set stock for {} SKUs to {DEMO_STOCK} each",
        story.stock_set.len()
    );
    outln!(
        "6. the warehouse reported {} shipments",
        story.shipments.len()
    );
    for (id, status, answer) in &story.shipments {
        if *status != 202 {
            outln!("   {id}: HTTP {status} {answer}");
        }
    }

    outln!();
    let mut pushes: BTreeMap<String, usize> = BTreeMap::new();
    for m in sim.shopify_mutations() {
        let name = m["operationName"].as_str().unwrap_or("mutation").to_owned();
        // One stock mutation sets many SKUs' levels: count the levels.
        let levels = m["variables"]["input"]["quantities"]
            .as_array()
            .filter(|_| name == "SwitchyardSetStock")
            .map_or(1, Vec::len);
        *pushes.entry(name).or_default() += levels;
    }
    let pushes: Vec<String> = pushes
        .iter()
        .map(|(n, c)| format!("{c} {}", push_label(n)))
        .collect();
    outln!(
        "7. pushes made to the channels: {}",
        if pushes.is_empty() {
            "none".into()
        } else {
            pushes.join(", ")
        }
    );
    if sim.throttled() > 0 {
        outln!(
            "   ({} calls were throttled by the simulated channel and retried)",
            sim.throttled()
        );
    }

    outln!();
    if dead.is_empty() && (story.settled || pending.is_empty()) {
        outln!("8. failures: none");
    } else {
        outln!("8. failures and unfinished work:");
        for i in dead {
            outln!(
                "   dead letter {} {} {}: {}",
                i.id,
                i.account,
                i.job.kind(),
                i.last_error.as_deref().unwrap_or("?")
            );
        }
        for i in pending {
            outln!(
                "   still queued {} {} {} (attempts {}{})",
                i.id,
                i.account,
                i.job.kind(),
                i.attempts,
                i.last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
}

fn push_label(operation: &str) -> &str {
    match operation {
        "SwitchyardSetStock" => "stock levels (Shopify inventorySetQuantities)",
        "SwitchyardFulfill" => "tracking numbers (Shopify fulfillmentCreate)",
        other => other,
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}
