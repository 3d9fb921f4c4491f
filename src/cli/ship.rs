//! `switchyard ship ID --carrier C --tracking N [--line SKU=QTY ...]
//! [--destination ID]`:
//! records a shipment (the whole order without `--line`) and queues the
//! tracking push in the same transaction; returns once it is flushed.

use std::path::Path;

use chrono::Utc;

use super::orders::{op_failure, store_failure};
use super::print::outln;
use super::{Backend, CliResult, EXIT_FAILED, Failure, print_json};
use crate::effects::tracking::{self, ShipmentRequest};
use crate::ops::{self, ShipReceipt};

pub fn run(
    config_path: &Path,
    id: String,
    carrier: String,
    tracking: String,
    lines: Vec<String>,
    destination: Option<String>,
    json: bool,
) -> CliResult {
    let lines = if lines.is_empty() {
        None
    } else {
        let parsed: Result<Vec<_>, _> = lines.iter().map(|l| tracking::parse_line_arg(l)).collect();
        Some(parsed.map_err(|e| Failure::new(EXIT_FAILED, e))?)
    };
    let req = ShipmentRequest {
        order_id: id,
        carrier,
        tracking_number: tracking,
        tracking_url: None,
        shipped_at: None,
        lines,
        destination,
    };
    let receipt = match super::open_backend(config_path, super::Open::Existing)? {
        Backend::Local { store, config } => {
            let outbound = crate::channels::accounts::outbound(&config);
            let written = ops::ship(&store, &outbound, &req, Utc::now()).map_err(op_failure)?;
            store.flush_blocking().map_err(store_failure)?;
            written.value
        }
        Backend::Remote(api) => {
            let body = serde_json::to_value(&req).map_err(|e| {
                Failure::new(EXIT_FAILED, format!("cannot encode the shipment: {e}"))
            })?;
            api.post(&["shipments"], &[], Some(body))?
        }
    };
    for w in &receipt.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        return print_json(&receipt);
    }
    outln!("{}", render(&receipt));
    Ok(())
}

fn render(r: &ShipReceipt) -> String {
    let id = &r.order_id;
    match &r.shipment {
        Some(shipment) if r.recorded => {
            let what: Vec<String> = shipment
                .lines
                .iter()
                .map(|l| format!("{} x{}", l.sku.as_deref().unwrap_or(&l.line_id), l.quantity))
                .collect();
            let push = match &r.tracking_not_pushed {
                Some(why) => format!("tracking push not queued: {why}"),
                None => "tracking push queued".to_owned(),
            };
            format!(
                "{id}: shipment {} {} recorded ({}); order {}; {push}",
                shipment.carrier,
                shipment.tracking_number,
                what.join(", "),
                r.status
            )
        }
        _ => format!(
            "{id}: a shipment with tracking number {} is already recorded (order {}); nothing changed",
            r.tracking_number, r.status
        ),
    }
}
