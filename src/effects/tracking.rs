//! Shipments: `switchyard ship` and `POST /api/v1/shipments` record that
//! (part of) an order left the warehouse, and the tracking push to the
//! order's channel is queued in the same transaction.
//!
//! - Without lines the shipment covers everything not yet shipped; with
//!   lines (`SKU=QTY`) each SKU's quantity is taken from the order's lines
//!   with that SKU, in order, up to what each has left.
//! - Only units still owed ship (ordered, less refunded, less shipped).
//! - An order split across destinations (`route_lines`) is shipped by each
//!   destination for its own lines: a shipment that names its
//!   `destination` takes only the lines delivered there.
//! - The order becomes `shipped` when every line is shipped or refunded,
//!   else `partially_shipped`; `shipped_quantity` and `shipments` follow.
//! - Idempotent on (order, tracking number): the same tracking number again
//!   changes nothing and queues nothing.
//! - An unknown order or SKU, a cancelled order, an order the marketplace
//!   fulfils itself (Amazon FBA), a quantity of zero or above what is left,
//!   or nothing left to ship is refused with a clear error, and nothing is
//!   written.
//! - An order of an account whose connector cannot take tracking (its
//!   capabilities lack `push_tracking`, [`NoTracking`]) has its shipment
//!   recorded but no push queued: it could only end as a dead letter. The
//!   shipment's history entry and the log say why.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_contract::{
    Capabilities, Channel, Connector, OrderStatus, Shipment, ShipmentLine, TrackingPush,
    TrackingResult,
};

use super::Outbound;
use crate::outbox::{Job, Verdict, Wakers};
use crate::store::{NewOutboxItem, OrderWrite, Store, StoreError, StoredOrder, WriteBatch};

/// A shipment as `POST /api/v1/shipments` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipmentRequest {
    pub order_id: String,
    pub carrier: String,
    pub tracking_number: String,
    #[serde(default)]
    pub tracking_url: Option<String>,
    #[serde(default)]
    pub shipped_at: Option<DateTime<Utc>>,
    /// None: the whole order (everything not yet shipped), or with
    /// `destination`, everything that destination has not shipped yet.
    #[serde(default)]
    pub lines: Option<Vec<ShipLine>>,
    /// The destination that shipped: the shipment takes only the lines
    /// delivered to it. Needed for an order split across destinations
    /// unless `lines` says what shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipLine {
    pub sku: String,
    pub quantity: u32,
}

/// Parses a `--line SKU=QTY` argument.
pub fn parse_line_arg(arg: &str) -> Result<ShipLine, String> {
    let Some((sku, qty)) = arg.rsplit_once('=') else {
        return Err(format!(
            "--line {arg:?}: expected SKU=QTY, e.g. --line MUG-RED=2"
        ));
    };
    let sku = sku.trim();
    if sku.is_empty() {
        return Err(format!(
            "--line {arg:?}: the SKU is empty; expected SKU=QTY"
        ));
    }
    let quantity = qty
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("--line {arg:?}: {qty:?} is not a whole number of units"))?;
    Ok(ShipLine {
        sku: sku.to_owned(),
        quantity,
    })
}

/// The accounts whose connector cannot take tracking pushes, with their
/// channel: a shipment of their orders queues no push. Empty (the default):
/// every account takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoTracking(Arc<Vec<(String, Channel)>>);

impl NoTracking {
    /// From each account's channel and its connector's capabilities: the
    /// accounts without `push_tracking`.
    pub fn new(accounts: impl IntoIterator<Item = (String, Channel, Capabilities)>) -> Self {
        NoTracking(Arc::new(
            accounts
                .into_iter()
                .filter(|(_, _, caps)| !caps.push_tracking)
                .map(|(account, channel, _)| (account, channel))
                .collect(),
        ))
    }

    /// Why no tracking push is queued for `account`, if none is.
    pub fn why_not(&self, account: &str) -> Option<String> {
        let (_, channel) = self.0.iter().find(|(a, _)| a == account)?;
        Some(format!(
            "the {channel} connector of account {account} cannot take tracking pushes"
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipOutcome {
    Recorded {
        status: OrderStatus,
        shipment: Shipment,
        /// Await `store.flushed(seq)` (or `flush_blocking`) before acknowledging.
        seq: u64,
        /// Why no tracking push was queued (the account's connector cannot
        /// take one); None when it was.
        tracking_skipped: Option<String>,
    },
    /// The order already has a shipment with this tracking number: nothing changed.
    AlreadyRecorded { status: OrderStatus },
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(
        "no order {0:?}; ids look like \"<account>:<channel order id>\" (see `switchyard orders list`)"
    )]
    UnknownOrder(String),
    /// The shipment does not fit the order; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// The order's state refuses the shipment (cancelled, fulfilled by the
    /// marketplace, its units shipped already), however it is asked.
    #[error("{0}")]
    State(String),
    #[error("order {0} kept changing while the shipment was recorded; try again")]
    Contended(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tracking push of one shipment.
pub fn tracking_item(
    order: &StoredOrder,
    tracking_number: &str,
    now: DateTime<Utc>,
) -> NewOutboxItem {
    NewOutboxItem {
        account: order.order.account.clone(),
        job: Job::PushTracking {
            order_id: order.order.id.clone(),
            tracking_number: tracking_number.to_owned(),
        },
        coalesce_key: None,
        not_before: now,
    }
}

/// Applies a shipment to a copy of the order: the new stored order and the
/// shipment, or why it does not fit. Pure.
pub fn apply_shipment(
    stored: &StoredOrder,
    req: &ShipmentRequest,
    now: DateTime<Utc>,
) -> Result<(StoredOrder, Shipment), ShipError> {
    let id = &stored.order.id;
    let carrier = req.carrier.trim();
    let tracking = req.tracking_number.trim();
    if carrier.is_empty() {
        return Err(ShipError::Invalid(
            "the carrier is empty; give --carrier (e.g. ups)".into(),
        ));
    }
    if tracking.is_empty() {
        return Err(ShipError::Invalid(
            "the tracking number is empty; give --tracking".into(),
        ));
    }
    if stored.order.status == OrderStatus::Cancelled {
        return Err(ShipError::State(format!(
            "order {id} is cancelled; nothing to ship"
        )));
    }
    if stored.order.channel_fulfilled() {
        return Err(ShipError::State(format!(
            "order {id} is fulfilled by {}: it ships from the marketplace's own stock and \
             the marketplace reports its tracking; nothing to record here",
            stored.order.channel
        )));
    }
    let order = &stored.order;
    let dest = req
        .destination
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    // Each destination ships the lines delivered to it.
    let owner = |i: usize| super::deliveries::line_owner(stored, &order.lines[i].line_id);
    let mine = |i: usize| dest.is_none_or(|d| owner(i) == Some(d));
    let left = |i: usize| {
        if mine(i) {
            order.lines[i].open_quantity()
        } else {
            0
        }
    };
    let mut owners: Vec<&str> = (0..order.lines.len())
        .filter(|&i| order.lines[i].open_quantity() > 0)
        .filter_map(owner)
        .collect();
    owners.sort_unstable();
    owners.dedup();
    if let Some(d) = dest
        && !(0..order.lines.len()).any(|i| owner(i) == Some(d))
    {
        return Err(ShipError::Invalid(format!(
            "order {id} has no lines for destination {d} (its lines go to {})",
            if owners.is_empty() {
                "no destination".to_owned()
            } else {
                owners.join(", ")
            }
        )));
    }
    if dest.is_none() && req.lines.is_none() && owners.len() > 1 {
        return Err(ShipError::Invalid(format!(
            "order {id} is split across {}: say which destination shipped (destination, \
             --destination) or list the lines that shipped",
            owners.join(" and ")
        )));
    }
    // (line index, quantity) to ship.
    let mut take: Vec<(usize, u32)> = Vec::new();
    match &req.lines {
        None => {
            for i in 0..order.lines.len() {
                if left(i) > 0 {
                    take.push((i, left(i)));
                }
            }
            if take.is_empty() {
                return Err(ShipError::State(match dest {
                    Some(d) => {
                        format!("order {id}: everything delivered to {d} is already shipped")
                    }
                    None => format!("order {id} is already fully shipped"),
                }));
            }
        }
        Some(lines) => {
            if lines.is_empty() {
                return Err(ShipError::Invalid(
                    "no lines given; leave lines out to ship the whole order".into(),
                ));
            }
            let mut wanted: BTreeMap<&str, u64> = BTreeMap::new();
            let mut problems = Vec::new();
            // Whether every problem is units shipped or refunded already
            // (the order's state), not a request that could never fit.
            let mut only_state = true;
            for l in lines {
                if l.quantity == 0 {
                    problems.push(format!("{}: quantity must be at least 1", l.sku));
                    only_state = false;
                }
                *wanted.entry(l.sku.trim()).or_insert(0) += u64::from(l.quantity);
            }
            for (sku, &qty) in &wanted {
                let idx: Vec<usize> = (0..order.lines.len())
                    .filter(|&i| order.lines[i].sku.as_deref() == Some(*sku) && mine(i))
                    .collect();
                if idx.is_empty() {
                    only_state = false;
                    if let Some(d) = dest {
                        problems.push(format!(
                            "order {id} has no line with sku {sku} delivered to {d}"
                        ));
                        continue;
                    }
                    let known: Vec<&str> = order
                        .lines
                        .iter()
                        .filter_map(|l| l.sku.as_deref())
                        .collect();
                    problems.push(format!(
                        "order {id} has no line with sku {sku} (its skus: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ));
                    continue;
                }
                let remaining: u64 = idx.iter().map(|&i| u64::from(left(i))).sum();
                if qty > remaining {
                    let ordered: u64 = idx
                        .iter()
                        .map(|&i| u64::from(order.lines[i].quantity))
                        .sum();
                    only_state &= qty <= ordered;
                    problems.push(format!(
                        "{sku}: {qty} to ship but only {remaining} left to ship on order {id}"
                    ));
                    continue;
                }
                let mut rest = qty;
                for &i in &idx {
                    if rest == 0 {
                        break;
                    }
                    let n = u64::from(left(i)).min(rest);
                    if n > 0 {
                        // At most `left(i)`, a u32.
                        take.push((i, u32::try_from(n).unwrap_or(u32::MAX)));
                        rest -= n;
                    }
                }
            }
            if !problems.is_empty() {
                let why = problems.join("; ");
                return Err(if only_state {
                    ShipError::State(why)
                } else {
                    ShipError::Invalid(why)
                });
            }
            take.sort_unstable();
        }
    }
    let mut next = stored.clone();
    let mut ship_lines = Vec::with_capacity(take.len());
    for (i, n) in take {
        let line = &mut next.order.lines[i];
        line.shipped_quantity += n;
        ship_lines.push(ShipmentLine {
            line_id: line.line_id.clone(),
            sku: line.sku.clone(),
            quantity: n,
        });
    }
    let shipment = Shipment {
        carrier: carrier.to_owned(),
        tracking_number: tracking.to_owned(),
        tracking_url: req.tracking_url.clone().filter(|u| !u.trim().is_empty()),
        shipped_at: Some(req.shipped_at.unwrap_or(now)),
        lines: ship_lines,
    };
    next.order.shipments.push(shipment.clone());
    next.local_shipments.push(shipment.tracking_number.clone());
    // Refunded units are owed to nobody: shipped is everything else shipped.
    next.order.status = if next.order.lines.iter().all(|l| l.open_quantity() == 0) {
        OrderStatus::Shipped
    } else {
        OrderStatus::PartiallyShipped
    };
    Ok((next, shipment))
}

/// Records a shipment and queues its tracking push, in one transaction.
/// Returns once written (not yet flushed: see `ShipOutcome::Recorded::seq`).
pub fn record(
    store: &Store,
    outbound: &Outbound,
    req: &ShipmentRequest,
    now: DateTime<Utc>,
) -> Result<ShipOutcome, ShipError> {
    let tracking = req.tracking_number.trim();
    for _ in 0..8 {
        let stored = store
            .get_order(&req.order_id)?
            .ok_or_else(|| ShipError::UnknownOrder(req.order_id.clone()))?;
        if !tracking.is_empty()
            && stored
                .order
                .shipments
                .iter()
                .any(|s| s.tracking_number.trim() == tracking)
        {
            return Ok(ShipOutcome::AlreadyRecorded {
                status: stored.order.status,
            });
        }
        let (next, shipment) = apply_shipment(&stored, req, now)?;
        let status = next.order.status;
        let skipped = outbound.no_tracking.why_not(&stored.order.account);
        let items = match skipped {
            Some(_) => Vec::new(),
            None => vec![tracking_item(&stored, &shipment.tracking_number, now)],
        };
        let mut detail = format!(
            "{} {}: {} ({})",
            shipment.carrier,
            shipment.tracking_number,
            shipment
                .lines
                .iter()
                .map(|l| format!("{} x{}", l.sku.as_deref().unwrap_or(&l.line_id), l.quantity))
                .collect::<Vec<_>>()
                .join(", "),
            status
        );
        if let Some(why) = &skipped {
            detail.push_str(&format!("; tracking not pushed: {why}"));
        }
        let accounts = Wakers::accounts_of(&items);
        let mut batch = WriteBatch::new(now);
        batch.orders.push(OrderWrite::Local {
            order: next,
            expected_revision: stored.revision,
            kind: "shipment".to_owned(),
            detail,
            outbox: items,
        });
        match store.apply(batch) {
            Ok(report) => {
                outbound.outbox.wakers.wake_accounts(&accounts);
                if let Some(why) = &skipped {
                    tracing::info!(order = %req.order_id, tracking = %shipment.tracking_number, "shipment recorded, tracking push not queued: {why}");
                }
                return Ok(ShipOutcome::Recorded {
                    status,
                    shipment,
                    seq: report.seq,
                    tracking_skipped: skipped,
                });
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ShipError::Contended(req.order_id.clone()))
}

/// Sends one `push_tracking` job: the order and its shipment are read now.
pub async fn send_tracking(
    store: &Store,
    connector: &dyn Connector,
    order_id: &str,
    tracking: &str,
) -> Verdict {
    let stored = match store.get_order(order_id) {
        Ok(Some(s)) => s,
        Ok(None) => return Verdict::Dead(format!("order {order_id} is no longer in the store")),
        Err(e) => {
            return Verdict::Failed(switchyard_contract::ConnectorError::Transient(format!(
                "store: {e}"
            )));
        }
    };
    let Some(shipment) = stored
        .order
        .shipments
        .iter()
        .find(|s| s.tracking_number == tracking)
        .cloned()
    else {
        return Verdict::Dead(format!(
            "order {order_id} has no shipment with tracking number {tracking}"
        ));
    };
    let push = TrackingPush {
        idempotency_key: format!("switchyard:{order_id}:{tracking}"),
        order: stored.order,
        shipment,
    };
    match connector.push_tracking(&push).await {
        Ok(TrackingResult::Created { channel_ref })
        | Ok(TrackingResult::AlreadyThere { channel_ref }) => {
            tracing::info!(order = %order_id, tracking = %tracking, channel_ref = channel_ref.as_deref().unwrap_or("-"), "tracking pushed");
            Verdict::Done(None)
        }
        Err(e) => Verdict::Failed(e),
    }
}
