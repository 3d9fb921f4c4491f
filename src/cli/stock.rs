//! `switchyard stock ...`: central stock levels. `set` and
//! `import` write the levels and queue a push to every account that takes
//! stock pushes, in one transaction, and return once it is flushed; the
//! daemon's workers send the pushes when it runs.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::orders::{op_failure, store_failure};
use super::print::{out, time};
use super::{Backend, CliResult, EXIT_FAILED, Failure, StockCommand, print_json};
use crate::effects::stock::{self, StockUpdate};
use crate::ops::{self, StockReceipt};
use crate::store::StockView;

pub fn run(config_path: &Path, cmd: StockCommand) -> CliResult {
    match cmd {
        StockCommand::Set { sku, qty, json } => {
            let updates = [StockUpdate {
                sku,
                available: qty,
            }];
            set(config_path, &updates, json)
        }
        StockCommand::Import { file, json } => import(config_path, &file, json),
        StockCommand::Show { sku, json } => show(config_path, &sku, json),
    }
}

fn set(config_path: &Path, updates: &[StockUpdate], json: bool) -> CliResult {
    let receipt: StockReceipt = match super::open_backend(config_path, super::Open::OrCreate)? {
        Backend::Local { config, store } => {
            let outbound = crate::channels::accounts::outbound(&config);
            let written =
                ops::set_stock(&store, &outbound, updates, Utc::now()).map_err(op_failure)?;
            store.flush_blocking().map_err(store_failure)?;
            written.value
        }
        Backend::Remote(api) => {
            let body = serde_json::to_value(updates).map_err(|e| {
                Failure::new(EXIT_FAILED, format!("cannot encode the stock levels: {e}"))
            })?;
            api.put(&["stock"], body)?
        }
    };
    if json {
        return print_json(&receipt);
    }
    out!("{}", render_set(updates, &receipt));
    Ok(())
}

fn render_set(updates: &[StockUpdate], r: &StockReceipt) -> String {
    let mut s = match updates {
        [one] => format!("{}: on hand {}\n", one.sku, one.available),
        _ => format!("{} stock levels set\n", r.skus),
    };
    if r.accounts.is_empty() {
        s.push_str(
            "no account takes stock pushes (no connector in this build can push inventory); nothing queued\n",
        );
    } else {
        s.push_str(&format!(
            "{} push{} queued for {} (sent by the daemon)\n",
            r.queued,
            if r.queued == 1 { "" } else { "es" },
            r.accounts.join(", ")
        ));
    }
    s
}

fn import(config_path: &Path, file: &PathBuf, json: bool) -> CliResult {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot read {}: {e}", file.display())))?;
    let updates = stock::parse_stock_csv(&text).map_err(|problems| {
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
    set(config_path, &updates, json)
}

fn show(config_path: &Path, sku: &str, json: bool) -> CliResult {
    let view: StockView = match super::open_backend(config_path, super::Open::Existing)? {
        Backend::Local { store, .. } => ops::stock_show(&store, sku).map_err(op_failure)?,
        Backend::Remote(api) => api.get(&["stock", sku], &[])?,
    };
    if json {
        return print_json(&view);
    }
    out!("{}", render_show(&view));
    Ok(())
}

fn render_show(view: &StockView) -> String {
    let mut s = format!(
        "{}  on hand {}  reserved {}  available {}\n",
        view.sku, view.on_hand, view.reserved, view.available
    );
    if !view.reservations.is_empty() {
        let orders: Vec<String> = view
            .reservations
            .iter()
            .map(|r| format!("{} ({})", r.order_id, r.units))
            .collect();
        s.push_str(&format!("  reserved by {}\n", orders.join(", ")));
    }
    if view.channels.is_empty() {
        s.push_str("  not pushed to any channel yet\n");
    }
    for c in &view.channels {
        s.push_str(&format!(
            "  {}  told {}  at {}\n",
            c.account,
            c.pushed,
            time(c.at)
        ));
    }
    s
}
