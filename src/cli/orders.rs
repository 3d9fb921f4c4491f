//! `switchyard orders ...`: list, show, hold and release canonical orders.

use std::path::Path;

use chrono::Utc;
use clap::Args;
use serde_json::json;
use switchyard_contract::{Channel, Order, OrderStatus};

use super::{CliResult, EXIT_FAILED, Failure, OrdersCommand, print_json};
use crate::store::{HistoryEntry, OrderFilter, OrderWrite, RouteFilter, StoredOrder, WriteBatch};

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = parse_channel)]
    pub channel: Option<Channel>,
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long)]
    pub tag: Option<String>,
    #[arg(long, value_parser = parse_status)]
    pub status: Option<OrderStatus>,
    /// A destination id, or `none` for unrouted orders.
    #[arg(long)]
    pub route: Option<String>,
    /// Only orders on hold.
    #[arg(long)]
    pub held: bool,
    /// At most N orders (oldest first).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    s.parse()
}

fn parse_status(s: &str) -> Result<OrderStatus, String> {
    s.parse()
}

impl ListArgs {
    pub fn filter(&self) -> OrderFilter {
        OrderFilter {
            channel: self.channel,
            account: self.account.clone(),
            tag: self.tag.clone(),
            status: self.status,
            route: self.route.as_deref().map(|r| {
                if r == "none" {
                    RouteFilter::None
                } else {
                    RouteFilter::Is(r.to_owned())
                }
            }),
            held: self.held.then_some(true),
            limit: self.limit,
        }
    }
}

pub fn run(config_path: &Path, cmd: OrdersCommand) -> CliResult {
    let (_config, store) = super::open_store(config_path)?;
    match cmd {
        OrdersCommand::List(args) => {
            let orders = store.list_orders(&args.filter()).map_err(store_failure)?;
            if args.json {
                let list: Vec<&Order> = orders.iter().map(|o| &o.order).collect();
                print_json(&list)
            } else {
                out!("{}", render_list(&orders));
                Ok(())
            }
        }
        OrdersCommand::Show { id, json } => {
            let stored = find(&store, &id)?;
            let history = store.history(&id).map_err(store_failure)?;
            if json {
                print_json(&show_json(&stored, &history))
            } else {
                out!("{}", render_show(&stored, &history));
                Ok(())
            }
        }
        OrdersCommand::Hold { id, reason } => {
            if reason.trim().is_empty() {
                return Err(Failure::new(
                    EXIT_FAILED,
                    "a hold needs a reason: --reason \"...\"",
                ));
            }
            change(&store, &id, "hold", |o| {
                o.manual_hold = Some(reason.clone());
                o.order.hold = Some(reason.clone());
                format!("held by hand: {reason}")
            })?;
            outln!("{id}: on hold ({reason})");
            Ok(())
        }
        OrdersCommand::Release { id } => {
            let stored = find(&store, &id)?;
            if stored.order.hold.is_none() {
                return Err(Failure::new(
                    EXIT_FAILED,
                    format!("order {id} is not on hold"),
                ));
            }
            change(&store, &id, "release", |o| {
                let was = o.order.hold.take().unwrap_or_default();
                if o.manual_hold.take().is_none() {
                    // A rule's hold: remember it so re-running the rules keeps it released.
                    o.released_hold = Some(was.clone());
                }
                format!("released by hand (was: {was})")
            })?;
            outln!("{id}: released");
            Ok(())
        }
    }
}

fn find(store: &crate::store::Store, id: &str) -> Result<StoredOrder, Failure> {
    store.get_order(id).map_err(store_failure)?.ok_or_else(|| {
        Failure::new(
            EXIT_FAILED,
            format!("no order {id:?}; ids look like \"<account>:<channel order id>\" (see `switchyard orders list`)"),
        )
    })
}

/// Applies a local change, retrying if the order changed underneath, and waits
/// until the change is flushed.
fn change(
    store: &crate::store::Store,
    id: &str,
    kind: &str,
    edit: impl Fn(&mut StoredOrder) -> String,
) -> CliResult {
    for _ in 0..5 {
        let current = find(store, id)?;
        let mut next = current.clone();
        let detail = edit(&mut next);
        let now = Utc::now();
        // A release can make the order deliverable: its delivery is queued
        // in the same transaction.
        let plan = crate::deliver::plan_local(store, &next, now).map_err(store_failure)?;
        let batch = WriteBatch {
            now,
            orders: vec![OrderWrite::Local {
                order: next,
                expected_revision: current.revision,
                kind: kind.to_owned(),
                detail,
                outbox: plan.outbox,
            }],
            dedupe: plan.dedupe,
            ..WriteBatch::default()
        };
        match store.apply(batch) {
            Ok(_) => {
                store.flush_blocking().map_err(store_failure)?;
                return Ok(());
            }
            Err(crate::store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(store_failure(e)),
        }
    }
    Err(Failure::new(
        EXIT_FAILED,
        format!("order {id} kept changing while it was being updated; try again"),
    ))
}

pub(super) fn store_failure(e: crate::store::StoreError) -> Failure {
    Failure::new(EXIT_FAILED, e.to_string())
}

pub fn show_json(stored: &StoredOrder, history: &[HistoryEntry]) -> serde_json::Value {
    let mut v = serde_json::to_value(&stored.order).expect("orders always serialize");
    v["notes"] = json!(stored.notes);
    v["history"] = json!(history);
    v
}

fn dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

pub fn render_list(orders: &[StoredOrder]) -> String {
    if orders.is_empty() {
        return "no orders\n".to_owned();
    }
    let header = [
        "ID", "PLACED", "STATUS", "PAYMENT", "TOTAL", "ROUTE", "HOLD", "TAGS",
    ];
    let rows: Vec<[String; 8]> = orders
        .iter()
        .map(|s| {
            let o = &s.order;
            [
                o.id.clone(),
                o.placed_at.format("%Y-%m-%d %H:%M").to_string(),
                o.status.to_string(),
                serde_json::to_value(o.payment)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                format!("{} {}", o.totals.total, o.currency),
                dash(o.route.as_deref()).to_owned(),
                dash(o.hold.as_deref()).to_owned(),
                if o.tags.is_empty() {
                    "-".to_owned()
                } else {
                    o.tags.join(",")
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push_row(header.to_vec());
    for r in &rows {
        push_row(r.iter().map(String::as_str).collect());
    }
    out
}

pub fn render_show(stored: &StoredOrder, history: &[HistoryEntry]) -> String {
    use std::fmt::Write;
    let o = &stored.order;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}  {}  ({} account {})",
        o.id,
        dash(o.number.as_deref()),
        o.channel,
        o.account
    );
    let payment = serde_json::to_value(o.payment).unwrap_or_default();
    let priority = serde_json::to_value(o.priority).unwrap_or_default();
    let _ = writeln!(
        s,
        "status {}  payment {}  priority {}",
        o.status,
        payment.as_str().unwrap_or("?"),
        priority.as_str().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "placed {}  updated {}",
        o.placed_at.to_rfc3339(),
        o.updated_at.to_rfc3339()
    );
    let t = &o.totals;
    let _ = writeln!(
        s,
        "total {} {} (subtotal {}, shipping {}, tax {}, discount {}, refunded {})",
        t.total, o.currency, t.subtotal, t.shipping, t.tax, t.discount, t.refunded
    );
    if let Some(p) = &o.presentment {
        let _ = writeln!(s, "buyer paid {} {}", p.total, p.currency);
    }
    if let Some(c) = &o.customer {
        let _ = writeln!(
            s,
            "customer {} <{}>",
            dash(c.name.as_deref()),
            dash(c.email.as_deref())
        );
    }
    if let Some(a) = &o.shipping_address {
        let parts: Vec<&str> = [
            &a.name,
            &a.company,
            &a.line1,
            &a.line2,
            &a.city,
            &a.region,
            &a.postal_code,
            &a.country,
        ]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect();
        let _ = writeln!(s, "ship to {}", parts.join(", "));
    }
    let _ = writeln!(s, "shipping method {}", dash(o.shipping_method.as_deref()));
    let _ = writeln!(
        s,
        "route {}  hold {}  tags {}",
        dash(o.route.as_deref()),
        dash(o.hold.as_deref()),
        if o.tags.is_empty() {
            "-".to_owned()
        } else {
            o.tags.join(", ")
        }
    );
    let _ = writeln!(s, "lines:");
    for l in &o.lines {
        let _ = writeln!(
            s,
            "  {}  {}  {}  {} x {} = {}  shipped {}",
            l.line_id,
            dash(l.sku.as_deref()),
            l.title,
            l.quantity,
            l.unit_price,
            l.total,
            l.shipped_quantity
        );
    }
    if !o.shipments.is_empty() {
        let _ = writeln!(s, "shipments:");
        for sh in &o.shipments {
            let lines: Vec<String> = sh
                .lines
                .iter()
                .map(|l| format!("{} x{}", l.sku.as_deref().unwrap_or(&l.line_id), l.quantity))
                .collect();
            let _ = writeln!(
                s,
                "  {} {}  {}  {}",
                sh.carrier,
                sh.tracking_number,
                sh.shipped_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "-".into()),
                lines.join(", ")
            );
        }
    }
    if !stored.notes.is_empty() {
        let _ = writeln!(s, "normalization notes:");
        for n in &stored.notes {
            let kind = serde_json::to_value(n.kind).unwrap_or_default();
            let _ = writeln!(
                s,
                "  {} ({}): {}",
                n.field,
                kind.as_str().unwrap_or("?"),
                n.detail
            );
        }
    }
    let _ = writeln!(s, "history:");
    for h in history {
        let _ = writeln!(s, "  {}  {}  {}", h.at.to_rfc3339(), h.kind, h.detail);
    }
    s
}
