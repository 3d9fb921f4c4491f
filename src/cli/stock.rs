//! `switchyard stock ...`: central stock levels (SPEC §2). `set` and
//! `import` write the levels and queue a push to every account that takes
//! stock pushes, in one transaction, and return once it is flushed; the
//! daemon's workers send the pushes when it runs.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::orders::store_failure;
use super::{CliResult, EXIT_FAILED, Failure, StockCommand, print_json};
use crate::config::Config;
use crate::inventory::{self, StockError, StockUpdate};
use crate::outbox::Outbound;
use crate::store::Store;

pub fn run(config_path: &Path, cmd: StockCommand) -> CliResult {
    let (config, store) = super::open_store(config_path)?;
    match cmd {
        StockCommand::Set { sku, qty } => {
            let updates = [StockUpdate {
                sku,
                available: qty,
            }];
            set(&config, &store, &updates)
        }
        StockCommand::Import { file } => import(&config, &store, &file),
        StockCommand::Show { sku, json } => show(&store, &sku, json),
    }
}

fn set(config: &Config, store: &Store, updates: &[StockUpdate]) -> CliResult {
    let outbound = Outbound::new(crate::outbox::stock_targets(
        config,
        &reqwest::Client::new(),
    ));
    let written =
        inventory::set_levels(store, &outbound, updates, Utc::now()).map_err(|e| match e {
            StockError::Invalid(problems) => Failure::new(EXIT_FAILED, problems.join("\n")),
            StockError::Store(e) => store_failure(e),
        })?;
    store.flush_blocking().map_err(store_failure)?;
    let accounts: Vec<&str> = outbound.stock.iter().map(|t| t.account.as_str()).collect();
    if let [one] = updates {
        println!("{}: available {}", one.sku, one.available);
    } else {
        println!("{} stock levels set", written.skus);
    }
    if accounts.is_empty() {
        println!(
            "no account takes stock pushes (no connector in this build can push inventory); nothing queued"
        );
    } else {
        println!(
            "{} push{} queued for {} (sent by the daemon)",
            written.queued,
            if written.queued == 1 { "" } else { "es" },
            accounts.join(", ")
        );
    }
    Ok(())
}

fn import(config: &Config, store: &Store, file: &PathBuf) -> CliResult {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot read {}: {e}", file.display())))?;
    let updates = inventory::parse_stock_csv(&text).map_err(|problems| {
        let mut lines: Vec<String> = problems
            .iter()
            .map(|p| format!("{}:{}: {}", file.display(), p.line, p.message))
            .collect();
        lines.push(format!(
            "nothing imported: fix the {} bad row{} and run the import again",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ));
        Failure::new(EXIT_FAILED, lines.join("\n"))
    })?;
    set(config, store, &updates)
}

fn show(store: &Store, sku: &str, json: bool) -> CliResult {
    let view = inventory::show(store, sku)
        .map_err(store_failure)?
        .ok_or_else(|| {
            Failure::new(
                EXIT_FAILED,
                format!(
                    "no stock level for sku {sku:?}; set one with `switchyard stock set {sku} QTY`"
                ),
            )
        })?;
    if json {
        return print_json(&view);
    }
    println!("{}  available {}", view.sku, view.available);
    if view.channels.is_empty() {
        println!("  not pushed to any channel yet");
    }
    for c in &view.channels {
        println!(
            "  {}  pushed {}  at {}",
            c.account,
            c.pushed,
            c.at.to_rfc3339()
        );
    }
    Ok(())
}
