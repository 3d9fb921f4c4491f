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

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use switchyard_contract::OrderStatus;
use tokio::sync::oneshot;

use super::print::{out, outln, plural};
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

/// What the demo did, step by step, for the story it tells.
#[derive(Default)]
struct Story {
    started: Option<DateTime<Utc>>,
    synced: bool,
    synced_at: Option<DateTime<Utc>>,
    webhooks: Vec<(String, String, u16, String)>,
    webhooks_at: Option<DateTime<Utc>>,
    stock_set: Vec<String>,
    stock_at: Option<DateTime<Utc>>,
    /// (order, destination, tracking number, HTTP status, answer).
    shipments: Vec<(String, String, String, u16, String)>,
    shipments_at: Option<DateTime<Utc>>,
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
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("switchyard-demo"));
    prepare_state(&state)?;
    let config_file = write_config(&config_path, &config, &state)?;
    config.daemon.state_dir = state.join("store");
    config.daemon.listen = ([127, 0, 0, 1], 0).into();
    let destinations: Vec<String> = config.destinations.iter().map(|d| d.id.clone()).collect();
    let (rules, _) = crate::rules::load_rules(&config.daemon.rules, &destinations)
        .map_err(|e| fail(crate::rules::RuleErrors(e)))?;
    let runtime = super::runtime(true)?;
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
        outln!("switchyard demo: every channel with a connector, from a simulator of the channels through the rules to built-in warehouses and back; no credentials, no network");
        outln!("  config    {} (its channels and warehouses pointed at the simulator)", config_path.display());
        outln!("  rules     {}", config.daemon.rules.display());
        outln!("  fixtures  {} (recorded channel traffic the simulator serves)", fixtures.display());
        outln!("  store     {} (kept after the demo: try the commands at the end)", state.join("store").display());
        outln!("  times     UTC");
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
        print_story(&Told {
            report: &report,
            story: &story,
            orders: &orders,
            rules: &rules,
            sim: &sim,
            deliveries: &sink.received(),
            dead: &dead,
            pending: &pending,
        });
        print_next(&state, &config_file, &orders);
        drop(store);
        sink.stop().await;
        sim.stop().await;
        Ok(())
    })
}

/// The file that marks a folder as the demo's, so that a run replaces only
/// what an earlier demo left.
const MARK: &str = ".switchyard-demo";

/// Makes `dir` an empty demo folder: a new one, or one an earlier demo left
/// (its store is replaced); any other folder with files in it is refused.
fn prepare_state(dir: &Path) -> Result<(), Failure> {
    let used = dir
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if used && !dir.join(MARK).exists() {
        return Err(fail(format!(
            "{} is not empty and was not made by `switchyard demo`; give another folder with --state DIR",
            dir.display()
        )));
    }
    if dir.join("store").exists() {
        std::fs::remove_dir_all(dir.join("store")).map_err(|e| {
            fail(format!(
                "cannot remove the earlier demo's store in {}: {}",
                dir.display(),
                crate::io_text::reason(&e)
            ))
        })?;
    }
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join(MARK), "made by switchyard demo\n"))
        .map_err(|e| {
            fail(format!(
                "cannot make the demo folder {}: {}",
                dir.display(),
                crate::io_text::reason(&e)
            ))
        })
}

/// A copy of the demo's config whose store is the demo's and whose rules
/// path is absolute, so the commands at the end read what the demo left.
fn write_config(
    source: &Path,
    config: &crate::config::Config,
    dir: &Path,
) -> Result<PathBuf, Failure> {
    let text = std::fs::read_to_string(source).map_err(|e| {
        fail(format!(
            "cannot read {}: {}",
            source.display(),
            crate::io_text::reason(&e)
        ))
    })?;
    let rules =
        std::fs::canonicalize(&config.daemon.rules).unwrap_or_else(|_| config.daemon.rules.clone());
    let mut out = String::new();
    let mut in_daemon = false;
    let mut written = false;
    let settings = format!(
        "state_dir = \"store\"                     # written by switchyard demo\nrules = {:?}\n",
        rules.display().to_string()
    );
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_daemon = trimmed.starts_with("[daemon]");
        }
        if in_daemon && (trimmed.starts_with("state_dir") || trimmed.starts_with("rules")) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if in_daemon && !written && trimmed.starts_with("[daemon]") {
            out.push_str(&settings);
            written = true;
        }
    }
    if !written {
        out = format!("[daemon]\n{settings}\n{out}");
    }
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, out).map_err(|e| {
        fail(format!(
            "cannot write {}: {}",
            path.display(),
            crate::io_text::reason(&e)
        ))
    })?;
    Ok(path)
}

/// Commands to try on what the demo left.
fn print_next(dir: &Path, config: &Path, orders: &[StoredOrder]) {
    let held = orders
        .iter()
        .find(|o| o.order.hold.is_some())
        .or(orders.first())
        .map_or("shop-us:1", |o| o.order.id.as_str());
    let sku = orders
        .iter()
        .flat_map(|o| &o.order.lines)
        .find_map(|l| l.sku.as_deref())
        .unwrap_or("MUG-RED");
    // As this binary was called (`target/debug/switchyard` under cargo run),
    // so the commands work as printed.
    let program = std::env::args()
        .next()
        .filter(|p| p.contains('/'))
        .unwrap_or_else(|| "switchyard".to_owned());
    let c = config.display();
    outln!();
    outln!("The store is kept in {}. Try next:", dir.display());
    outln!("  # why {held} is held, rule by rule");
    outln!("  {program} --config {c} rules explain --order {held}");
    outln!("  # a person overrides the rule's hold; rules explain then says so");
    outln!("  {program} --config {c} orders release {held}");
    outln!("  # on hand, reserved (by which orders) and available");
    outln!("  {program} --config {c} stock show {sku}");
    // An order split between warehouses: its parts and who shipped what.
    if let Some(split) = orders.iter().find(|o| o.parts.len() > 1) {
        outln!("  # an order split between warehouses: each part, and who shipped what");
        outln!("  {program} --config {c} orders show {}", split.order.id);
    }
}

/// Plays the channels, the merchant and the warehouse against the daemon.
async fn act(
    daemon: &Daemon,
    sim: &Simulator,
    sink: &DestinationSink,
    running: &[crate::config::AccountConfig],
) -> Story {
    let mut story = Story {
        started: Some(Utc::now()),
        ..Story::default()
    };
    let ids: Vec<String> = running.iter().map(|a| a.id.clone()).collect();
    story.synced = daemon.wait_for_first_sync(&ids).await;
    story.synced_at = Some(Utc::now());
    story.webhooks_at = Some(Utc::now());

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
    story.stock_at = Some(Utc::now());
    let (status, _) = daemon
        .send_json(reqwest::Method::PUT, "/api/v1/stock", &Value::Array(levels))
        .await;
    if status == 202 {
        story.stock_set = skus;
    }
    daemon.wait_for_outbox().await;

    // Each warehouse ships what it received and was ready, and reports
    // back: its own lines of an order split between warehouses.
    let delivered: Vec<(String, String)> = sink
        .received()
        .into_iter()
        .filter(|d| d.signature_ok)
        .filter_map(|d| d.order.map(|o| (o, d.destination)))
        .filter(|(o, _)| o.status == OrderStatus::Ready)
        .map(|(o, dest)| (o.id, dest))
        .collect();
    story.shipments_at = Some(Utc::now());
    for (n, (id, dest)) in delivered.iter().enumerate() {
        let tracking = format!("1ZDEMO{:04}", n + 1);
        let body = json!({
            "order_id": id,
            "carrier": "ups",
            "tracking_number": tracking,
            "destination": dest,
        });
        let (status, answer) = daemon
            .send_json(reqwest::Method::POST, "/api/v1/shipments", &body)
            .await;
        story
            .shipments
            .push((id.clone(), dest.clone(), tracking, status, answer));
    }
    story.settled = daemon.wait_for_outbox().await;
    story
}

/// What happened, in the order it happened, with the reasons.
struct Told<'a> {
    report: &'a RunReport,
    story: &'a Story,
    orders: &'a [StoredOrder],
    rules: &'a crate::rules::RuleSet,
    sim: &'a Simulator,
    deliveries: &'a [Delivery],
    dead: &'a [OutboxItem],
    pending: &'a [OutboxItem],
}

fn at(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn print_story(t: &Told) {
    let story = t.story;
    outln!();
    outln!(
        "1. The daemon starts and polls every account ({})",
        at(story.started)
    );
    for a in &t.report.accounts {
        match (&a.skipped, &a.health) {
            (Some(why), _) => outln!("   {:<12} {:<8} skipped: {why}", a.id, a.channel),
            (None, Some(h)) => match (&h.last_stats, &h.last_error) {
                (Some(s), _) => outln!(
                    "   {:<12} {:<8} {} in {}",
                    a.id,
                    a.channel,
                    plural(s.orders, "order", "orders"),
                    plural(s.pages, "page", "pages")
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
    outln!("2. The channels push webhooks ({})", at(story.webhooks_at));
    if story.webhooks.is_empty() {
        outln!("   none recorded");
    }
    for (account, name, status, answer) in &story.webhooks {
        outln!("   {account}: {name} -> HTTP {status} {answer}");
    }

    outln!();
    outln!(
        "3. The rules ({}) decide each of the {}:",
        plural(t.rules.len(), "rule", "rules"),
        plural(t.orders.len(), "order", "orders")
    );
    // As wide as the longest id: ids differ in length by channel (an
    // Amazon order id is 19 characters, an Etsy receipt id 10).
    let width = t
        .orders
        .iter()
        .map(|o| o.order.id.chars().count())
        .max()
        .unwrap_or(0);
    for o in t.orders {
        // As it arrived: a delivered order as the warehouse got it, before
        // the shipments of step 6.
        let arrived = t
            .deliveries
            .iter()
            .find_map(|d| d.order.as_ref().filter(|x| x.id == o.order.id))
            .map_or(o.order.status, |x| x.status);
        outln!(
            "   {:<width$} {}",
            o.order.id,
            decision(o, arrived, t.rules)
        );
    }

    outln!();
    let by_order: BTreeMap<&str, &str> = t
        .deliveries
        .iter()
        .filter_map(|d| {
            d.order
                .as_ref()
                .map(|o| (o.id.as_str(), d.destination.as_str()))
        })
        .collect();
    let verified = t.deliveries.iter().filter(|d| d.signature_ok).count();
    outln!(
        "4. Deliveries to the warehouses: {} ({verified} with a valid signature)",
        t.deliveries.len()
    );
    let mut per_dest: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for d in t.deliveries {
        let Some(o) = &d.order else { continue };
        let shown = match d.part {
            // One part of an order split between warehouses: its lines.
            Some((index, of)) => {
                let skus: Vec<&str> = o.lines.iter().filter_map(|l| l.sku.as_deref()).collect();
                format!("{} (part {index} of {of}: {})", o.id, skus.join(", "))
            }
            None => o.id.clone(),
        };
        per_dest.entry(&d.destination).or_default().push(shown);
    }
    for (dest, ids) in &per_dest {
        outln!("   {dest}: {}", ids.join(", "));
    }
    for o in t
        .orders
        .iter()
        .filter(|o| !by_order.contains_key(o.order.id.as_str()))
    {
        outln!(
            "   not delivered: {} ({})",
            o.order.id,
            why_not_delivered(o)
        );
    }

    outln!();
    outln!(
        "5. The merchant counts stock: {} SKUs, {DEMO_STOCK} on hand each ({}); open orders keep \
         what they reserved, the rest is pushed to the channels",
        story.stock_set.len(),
        at(story.stock_at)
    );

    outln!();
    outln!(
        "6. The warehouses ship what they received ready, and report tracking ({}):",
        at(story.shipments_at)
    );
    if story.shipments.is_empty() {
        outln!("   nothing");
    }
    for (id, dest, tracking, status, answer) in &story.shipments {
        if *status == 202 {
            outln!(
                "   {id} from {dest}: ups {tracking} recorded; the tracking push to its channel is queued"
            );
        } else {
            outln!("   {id} from {dest}: HTTP {status} {answer}");
        }
    }
    for o in t.orders.iter().filter(|o| {
        by_order.contains_key(o.order.id.as_str())
            && !story.shipments.iter().any(|(id, ..)| *id == o.order.id)
    }) {
        outln!(
            "   {} not shipped by the warehouse: it was {} when delivered (the warehouse ships ready orders in this demo)",
            o.order.id,
            t.deliveries
                .iter()
                .find_map(|d| d.order.as_ref().filter(|x| x.id == o.order.id))
                .map_or("?".to_owned(), |x| x.status.to_string())
        );
    }

    outln!();
    let pushes: Vec<String> = t
        .sim
        .writes()
        .iter()
        .map(|(label, n)| format!("{n} {label}"))
        .collect();
    outln!(
        "7. Pushed back to the channels: {}",
        if pushes.is_empty() {
            "nothing".into()
        } else {
            pushes.join(", ")
        }
    );
    if t.sim.throttled() > 0 {
        outln!(
            "   ({} throttled by the simulated channel, waited out and retried)",
            plural(t.sim.throttled(), "call was", "calls were")
        );
    }

    outln!();
    if t.dead.is_empty() && (story.settled || t.pending.is_empty()) {
        outln!("8. Failures: none");
    } else {
        outln!("8. Failures and unfinished work:");
        for i in t.dead {
            outln!(
                "   dead letter {} ({}): {}",
                i.id,
                i.summary().purpose(),
                i.last_error.as_deref().unwrap_or("?")
            );
        }
        for i in t.pending {
            outln!(
                "   still queued {} ({}), {}{}",
                i.id,
                i.summary().purpose(),
                plural(i.attempts as usize, "attempt", "attempts"),
                i.last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            );
        }
    }

    outln!();
    outln!("Where the orders stand now (times UTC):");
    if !t.orders.is_empty() {
        out!("{}", indent(&super::render_list(t.orders)));
    }
}

/// What the rules made of one order, and why, in a line.
fn decision(o: &StoredOrder, arrived: OrderStatus, rules: &crate::rules::RuleSet) -> String {
    let eval = crate::rules::evaluate(rules, &crate::ingest::rule_input(o), Utc::now());
    let mut route = match (&eval.route, &eval.route_rule) {
        (Some(r), Some(rule)) => format!("route {r} (rule {rule})"),
        (Some(r), None) => format!("route {r} (default_route)"),
        (None, _) => "no route".to_owned(),
    };
    for l in eval
        .line_routes
        .iter()
        .filter(|l| eval.route.as_ref() != Some(&l.route))
    {
        let sku = o
            .order
            .lines
            .iter()
            .find(|x| x.line_id == l.line_id)
            .and_then(|x| x.sku.as_deref())
            .unwrap_or(&l.line_id);
        route.push_str(&format!(", {sku} -> {} (rule {})", l.route, l.rule));
    }
    let hold = match (&o.order.hold, &eval.hold_rule) {
        (Some(h), Some(rule)) => format!(", held: {h} (rule {rule})"),
        (Some(h), None) => format!(", held: {h}"),
        (None, _) => String::new(),
    };
    let tags = if eval.rule_tags.is_empty() {
        String::new()
    } else {
        format!(", tagged {}", eval.rule_tags.join(", "))
    };
    format!("{arrived} -> {route}{hold}{tags}")
}

/// Why the daemon did not deliver an order.
fn why_not_delivered(o: &StoredOrder) -> String {
    if o.order.channel_fulfilled() {
        return format!(
            "fulfilled by {}: it ships from the marketplace's own stock",
            o.order.channel
        );
    }
    match (&o.order.hold, o.order.status, &o.order.route) {
        (Some(h), ..) => format!("on hold: {h}"),
        (None, OrderStatus::Shipped, _) => "already shipped on the channel".to_owned(),
        (None, OrderStatus::Cancelled, _) => "cancelled".to_owned(),
        (None, OrderStatus::Pending, _) => "not paid yet".to_owned(),
        (None, _, None) => "no route".to_owned(),
        (None, ..) => "delivered after the warehouse looked".to_owned(),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}
