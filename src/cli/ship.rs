//! `switchyard ship ID --carrier C --tracking N [--line SKU=QTY ...]`:
//! records a shipment (the whole order without `--line`) and queues the
//! tracking push in the same transaction; returns once it is flushed.

use std::path::Path;

use chrono::Utc;

use super::orders::store_failure;
use super::{CliResult, EXIT_FAILED, Failure};
use crate::outbox::Outbound;
use crate::shipments::{self, ShipError, ShipOutcome, ShipmentRequest};

pub fn run(
    config_path: &Path,
    id: String,
    carrier: String,
    tracking: String,
    lines: Vec<String>,
) -> CliResult {
    let lines = if lines.is_empty() {
        None
    } else {
        let parsed: Result<Vec<_>, _> =
            lines.iter().map(|l| shipments::parse_line_arg(l)).collect();
        Some(parsed.map_err(|e| Failure::new(EXIT_FAILED, e))?)
    };
    let (_config, store) = super::open_store(config_path)?;
    let req = ShipmentRequest {
        order_id: id.clone(),
        carrier,
        tracking_number: tracking,
        tracking_url: None,
        shipped_at: None,
        lines,
    };
    let outcome =
        shipments::record(&store, &Outbound::default(), &req, Utc::now()).map_err(|e| match e {
            ShipError::Store(e) => store_failure(e),
            other => Failure::new(EXIT_FAILED, other.to_string()),
        })?;
    match outcome {
        ShipOutcome::Recorded {
            status, shipment, ..
        } => {
            store.flush_blocking().map_err(store_failure)?;
            let what: Vec<String> = shipment
                .lines
                .iter()
                .map(|l| format!("{} x{}", l.sku.as_deref().unwrap_or(&l.line_id), l.quantity))
                .collect();
            println!(
                "{id}: shipment {} {} recorded ({}); order {status}; tracking push queued",
                shipment.carrier,
                shipment.tracking_number,
                what.join(", ")
            );
        }
        ShipOutcome::AlreadyRecorded { status } => {
            println!(
                "{id}: a shipment with tracking number {} is already recorded (order {status}); nothing changed",
                req.tracking_number.trim()
            );
        }
    }
    Ok(())
}
