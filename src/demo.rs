//! `switchyard demo`: the whole loop on this machine with no credentials. The
//! simulator serves the recorded fixtures of every channel, the daemon runs
//! against it in a temporary state directory with the example config and
//! rules, and a summary says what happened.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::{RunOptions, run};
use crate::cli::{CliResult, DemoArgs, EXIT_FAILED, Failure};
use crate::sim::Simulator;
use crate::store::OrderFilter;

/// The source tree, for running the demo from anywhere in a checkout.
const SOURCE_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// How long the demo may take before it gives up.
const DEMO_DEADLINE: Duration = Duration::from_secs(60);

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

pub fn run_demo(explicit_config: Option<&Path>, args: DemoArgs) -> CliResult {
    let config_path = locate(explicit_config, "config/switchyard.toml");
    let fixtures = locate(args.fixtures.as_deref(), "fixtures");
    let mut config = crate::config::load(&config_path)
        .map_err(|errors| Failure::new(EXIT_FAILED, errors.to_string()))?;
    let state = tempfile::Builder::new()
        .prefix("switchyard-demo-")
        .tempdir()
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot create a temporary state directory: {e}")))?;
    config.daemon.state_dir = state.path().to_path_buf();
    config.daemon.listen = ([127, 0, 0, 1], 0).into();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let sim = Simulator::start(&fixtures)
            .await
            .map_err(|e| Failure::new(EXIT_FAILED, e))?;
        println!("switchyard demo");
        println!("  config    {}", config_path.display());
        println!("  rules     {}", config.daemon.rules.display());
        println!("  fixtures  {}", fixtures.display());
        println!("  state     {} (temporary)", state.path().display());
        for account in &mut config.accounts {
            account.base_url = sim.base_url(account.channel);
            println!(
                "  simulator {} for {} ({} recorded scenarios)",
                account.base_url,
                account.id,
                sim.scenarios(account.channel).len()
            );
        }
        let options = RunOptions {
            once: true,
            shutdown_deadline: Some(Duration::from_secs(5)),
            on_ready: None,
        };
        let (report, store) = run(config, options, tokio::time::sleep(DEMO_DEADLINE))
            .await
            .map_err(Failure::from)?;
        println!();
        println!("accounts:");
        let mut ran = 0;
        for a in &report.accounts {
            match (&a.skipped, &a.health) {
                (Some(why), _) => println!("  {:<12} {:<8} skipped: {why}", a.id, a.channel),
                (None, Some(h)) => {
                    ran += 1;
                    match (&h.last_stats, &h.last_error) {
                        (Some(s), _) => println!(
                            "  {:<12} {:<8} {} orders in {} pages ({} new, {} updated)",
                            a.id, a.channel, s.orders, s.pages, s.created, s.updated
                        ),
                        (None, Some(e)) => println!("  {:<12} {:<8} failed: {e}", a.id, a.channel),
                        (None, None) => println!("  {:<12} {:<8} did not finish in time", a.id, a.channel),
                    }
                }
                (None, None) => println!("  {:<12} {:<8} did not start", a.id, a.channel),
            }
        }
        let orders = store
            .list_orders(&OrderFilter::default())
            .map_err(|e| Failure::new(EXIT_FAILED, e.to_string()))?;
        println!();
        if orders.is_empty() {
            if ran == 0 {
                println!("ingested 0 orders: no channel connector is built in yet, so there was nothing to sync.");
            } else {
                println!("ingested 0 orders.");
            }
        } else {
            println!("ingested {} orders:", orders.len());
            print!("{}", crate::cli::render_list(&orders));
        }
        store.flush().await.map_err(|e| Failure::new(EXIT_FAILED, e.to_string()))?;
        drop(store);
        sim.stop().await;
        Ok(())
    })
}
