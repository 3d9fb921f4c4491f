//! `switchyard demo`: the whole loop on this machine with no credentials. The
//! simulator serves the recorded fixtures of every channel, the daemon runs
//! against it in a temporary state directory with the example config and
//! rules, the channels' recorded webhooks are delivered to it over HTTP, and
//! a summary says what happened.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::app::{RunOptions, RunReport, run};
use crate::cli::{CliResult, DemoArgs, EXIT_FAILED, Failure};
use crate::sim::Simulator;
use crate::store::{OrderFilter, StoredOrder};

/// The source tree, for running the demo from anywhere in a checkout.
const SOURCE_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// How long the accounts get to catch up before the demo reports anyway.
const SYNC_DEADLINE: Duration = Duration::from_secs(30);

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

/// What the demo did besides syncing.
struct WebhookResult {
    account: String,
    name: String,
    status: u16,
    answer: String,
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
        outln!("switchyard demo");
        outln!("  config    {}", config_path.display());
        outln!("  rules     {}", config.daemon.rules.display());
        outln!("  fixtures  {}", fixtures.display());
        outln!("  state     {} (temporary)", state.path().display());
        let probe = reqwest::Client::new();
        let mut running = Vec::new();
        for account in &mut config.accounts {
            account.base_url = sim.base_url(account.channel);
            if crate::connectors::build(account, &probe).is_ok() {
                running.push(account.clone());
            }
        }
        outln!(
            "  simulator {}",
            sim.base_url(switchyard_contract::Channel::Shopify)
                .rsplit_once('/')
                .map(|(a, _)| a)
                .unwrap_or("")
        );

        let (addr_tx, addr_rx) = oneshot::channel();
        let addr_tx = std::sync::Mutex::new(Some(addr_tx));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let options = RunOptions {
            once: false,
            shutdown_deadline: Some(Duration::from_secs(5)),
            on_ready: Some(Arc::new(move |addr| {
                if let Some(tx) = addr_tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    let _ = tx.send(addr);
                }
            })),
        };
        let daemon = tokio::spawn(run(config, options, async {
            let _ = stop_rx.await;
        }));
        let addr = match addr_rx.await {
            Ok(addr) => addr,
            Err(_) => {
                // The daemon ended before it was ready: its error says why.
                return match daemon.await {
                    Ok(Err(e)) => Err(Failure::from(e)),
                    _ => Err(fail("the daemon stopped before it was ready")),
                };
            }
        };
        let base = format!("http://{addr}");
        let synced = wait_for_first_sync(&probe, &base, &running).await;
        let mut hooks = Vec::new();
        for account in &running {
            for w in sim.demo_webhooks(account) {
                let mut req = probe
                    .post(format!("{base}/webhooks/{}", account.id))
                    .body(w.body);
                for (k, v) in &w.headers {
                    req = req.header(k, v);
                }
                let (status, answer) = match req.send().await {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                };
                hooks.push(WebhookResult {
                    account: account.id.clone(),
                    name: w.name,
                    status,
                    answer: answer.trim().to_owned(),
                });
            }
        }
        let _ = stop_tx.send(());
        let (report, store) = daemon
            .await
            .map_err(|e| fail(format!("the daemon task failed: {e}")))?
            .map_err(Failure::from)?;
        let orders = store.list_orders(&OrderFilter::default()).map_err(fail)?;
        print_summary(&report, synced, &hooks, &orders);
        drop(store);
        sim.stop().await;
        Ok(())
    })
}

/// Polls `/readyz` until every running account has caught up once (or failed).
async fn wait_for_first_sync(
    client: &reqwest::Client,
    base: &str,
    running: &[crate::config::AccountConfig],
) -> bool {
    let started = Instant::now();
    while started.elapsed() < SYNC_DEADLINE {
        if let Ok(resp) = client.get(format!("{base}/readyz")).send().await
            && let Ok(v) = resp.json::<serde_json::Value>().await
        {
            let done = running.iter().all(|a| {
                let h = &v["accounts"][&a.id];
                !h["last_success"].is_null() || h["consecutive_errors"].as_u64().unwrap_or(0) > 0
            });
            if done {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn print_summary(
    report: &RunReport,
    synced: bool,
    hooks: &[WebhookResult],
    orders: &[StoredOrder],
) {
    outln!();
    outln!("accounts:");
    for a in &report.accounts {
        match (&a.skipped, &a.health) {
            (Some(why), _) => outln!("  {:<12} {:<8} skipped: {why}", a.id, a.channel),
            (None, Some(h)) => match (&h.last_stats, &h.last_error) {
                (Some(s), _) => outln!(
                    "  {:<12} {:<8} synced {} orders in {} pages",
                    a.id,
                    a.channel,
                    s.orders,
                    s.pages
                ),
                (None, Some(e)) => outln!("  {:<12} {:<8} failed: {e}", a.id, a.channel),
                (None, None) => outln!("  {:<12} {:<8} did not finish", a.id, a.channel),
            },
            (None, None) => outln!("  {:<12} {:<8} did not finish", a.id, a.channel),
        }
    }
    if !synced {
        outln!(
            "  (not every account caught up within {} s)",
            SYNC_DEADLINE.as_secs()
        );
    }
    if !hooks.is_empty() {
        outln!();
        outln!("webhooks delivered to the daemon:");
        for h in hooks {
            outln!(
                "  {:<12} {:<16} HTTP {}  {}",
                h.account,
                h.name,
                h.status,
                h.answer
            );
        }
    }
    outln!();
    if orders.is_empty() {
        outln!("no orders: no channel connector ran, so there was nothing to sync.");
        return;
    }
    outln!("{} orders in the store:", orders.len());
    out!("{}", crate::cli::render_list(orders));
    let mut routes: std::collections::BTreeMap<String, usize> = Default::default();
    for o in orders {
        *routes
            .entry(o.order.route.clone().unwrap_or_else(|| "(unrouted)".into()))
            .or_default() += 1;
    }
    let held = orders.iter().filter(|o| o.order.hold.is_some()).count();
    let routes: Vec<String> = routes.iter().map(|(r, n)| format!("{r} {n}")).collect();
    outln!();
    outln!("routes: {}; on hold: {held}", routes.join(", "));
}
