//! `switchyard orders ...`: list, show, hold, release and redeliver canonical
//! orders.

use std::path::Path;

use chrono::Utc;
use clap::Args;
use clap::builder::TypedValueParser as _;
use serde_json::json;
use switchyard_contract::{Channel, Order, OrderStatus};

use super::print::{out, outln, table, time};
use super::{Backend, CliResult, EXIT_FAILED, Failure, OrdersCommand, print_json};
use crate::effects::Outbound;
use crate::ops::{self, OpError, OrderDetail};
use crate::store::{OrderFilter, StoredOrder};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this channel's orders.
    #[arg(long, value_parser = channel_values())]
    pub channel: Option<Channel>,
    /// Only this account's orders (an [[account]] id).
    #[arg(long)]
    pub account: Option<String>,
    /// Only orders with this tag (any case, as rules compare tags).
    #[arg(long)]
    pub tag: Option<String>,
    /// Only orders in this status.
    #[arg(long, value_parser = status_values())]
    pub status: Option<OrderStatus>,
    /// Only orders routed to this destination, or `none` for unrouted orders.
    #[arg(long, value_name = "DESTINATION|none")]
    pub route: Option<String>,
    /// Only orders on hold.
    #[arg(long)]
    pub held: bool,
    /// At most N orders per page (1 or more; default 100, at most 1000).
    #[arg(long, value_name = "N", value_parser = super::page_limit)]
    pub limit: Option<usize>,
    /// Oldest first (the default is newest first).
    #[arg(long)]
    pub oldest: bool,
    /// The next page: the cursor the previous page ended with.
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// Print the orders as a JSON array of canonical orders, each with hold_by.
    #[arg(long)]
    pub json: bool,
}

/// `--channel` values, listed in `--help` and refused with the list.
fn channel_values() -> impl clap::builder::TypedValueParser<Value = Channel> {
    clap::builder::PossibleValuesParser::new(Channel::ALL.map(Channel::as_str))
        .try_map(|s| s.parse::<Channel>())
}

/// `--status` values, listed in `--help` and refused with the list.
fn status_values() -> impl clap::builder::TypedValueParser<Value = OrderStatus> {
    clap::builder::PossibleValuesParser::new(OrderStatus::ALL.map(OrderStatus::as_str))
        .try_map(|s| s.parse::<OrderStatus>())
}

impl ListArgs {
    pub fn filter(&self) -> OrderFilter {
        OrderFilter {
            channel: self.channel,
            account: self.account.clone(),
            tag: self.tag.clone(),
            status: self.status,
            route: self.route.as_deref().map(ops::route_filter),
            held: self.held.then_some(true),
            limit: self.limit,
            after: self.after.clone(),
            oldest: self.oldest,
        }
    }

    /// The filter as the admin API's query parameters.
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(c) = self.channel {
            q.push(("channel", c.to_string()));
        }
        if let Some(a) = &self.account {
            q.push(("account", a.clone()));
        }
        if let Some(t) = &self.tag {
            q.push(("tag", t.clone()));
        }
        if let Some(s) = self.status {
            q.push(("status", s.to_string()));
        }
        if let Some(r) = &self.route {
            q.push(("route", r.clone()));
        }
        if self.held {
            q.push(("held", "true".to_owned()));
        }
        if let Some(n) = self.limit {
            q.push(("limit", n.to_string()));
        }
        if self.oldest {
            q.push(("oldest", "true".to_owned()));
        }
        if let Some(a) = &self.after {
            q.push(("after", a.clone()));
        }
        q
    }

    /// The command that shows the page after `cursor`: this one, with
    /// `--after` moved on.
    pub fn next_command(&self, cursor: &str) -> String {
        let mut words = vec!["switchyard orders list".to_owned()];
        for (key, value) in self.query() {
            match key {
                "after" => {}
                "held" | "oldest" => words.push(format!("--{key}")),
                _ => words.push(format!("--{key} {}", shell_word(&value))),
            }
        }
        if self.json {
            words.push("--json".to_owned());
        }
        words.push(format!("--after {cursor}"));
        words.join(" ")
    }
}

/// `value` as one shell word.
fn shell_word(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.:/@+=,".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

pub fn run(config_path: &Path, cmd: OrdersCommand) -> CliResult {
    let backend = super::open_backend(config_path, super::Open::Existing)?;
    match cmd {
        OrdersCommand::List(args) => {
            if let Some(route) = &args.route {
                check_route(route, &backend.destinations())?;
            }
            let page = match &backend {
                Backend::Local { store, .. } => {
                    ops::list_orders(store, &args.filter()).map_err(op_failure)?
                }
                Backend::Remote(api) => {
                    let (orders, next): (Vec<serde_json::Value>, _) =
                        api.get_page(&["orders"], &args.query(), "x-next-after")?;
                    let orders = orders
                        .into_iter()
                        .map(ops::ListedOrder::from_json)
                        .collect::<Result<_, _>>()
                        .map_err(|e| {
                            Failure::new(
                                EXIT_FAILED,
                                format!("the daemon's answer is not a list of orders: {e}"),
                            )
                        })?;
                    ops::OrdersPage { orders, next }
                }
            };
            if args.json {
                let docs: Vec<serde_json::Value> =
                    page.orders.iter().map(ops::ListedOrder::to_json).collect();
                print_json(&docs)?;
                // stdout stays one JSON document; the hint goes beside it.
                if let Some(next) = &page.next {
                    eprintln!("more orders may match: {}", args.next_command(next));
                }
                Ok(())
            } else {
                out!("{}", render_orders(&page.orders));
                if let Some(next) = &page.next {
                    outln!("more orders may match: {}", args.next_command(next));
                }
                Ok(())
            }
        }
        OrdersCommand::Show { id, raw: true, .. } => {
            let text = match &backend {
                Backend::Local { store, .. } => ops::raw_payload(store, &id).map_err(op_failure)?,
                Backend::Remote(api) => api.get_bytes(&["orders", &id, "raw"])?,
            };
            print_raw(&text);
            Ok(())
        }
        OrdersCommand::Show { id, json, .. } => {
            let detail = match &backend {
                Backend::Local { store, .. } => {
                    ops::order_detail(store, &id).map_err(op_failure)?
                }
                Backend::Remote(api) => {
                    let doc: serde_json::Value = api.get(&["orders", &id], &[])?;
                    OrderDetail::from_json(doc).map_err(|e| {
                        Failure::new(
                            EXIT_FAILED,
                            format!(
                                "the daemon's answer for order {id} is not an order document: {e}"
                            ),
                        )
                    })?
                }
            };
            if json {
                print_json(&detail.to_json())
            } else {
                out!("{}", render_show(&detail));
                Ok(())
            }
        }
        OrdersCommand::Hold { id, reason, json } => {
            if reason.trim().is_empty() {
                return Err(Failure::new(
                    EXIT_FAILED,
                    "a hold needs a reason: --reason \"...\"",
                ));
            }
            // Where it went, and whether a person held it already (then the
            // destination was told with that hold: no new notice is queued).
            let before = detail_before(&backend, &id)?;
            let order: Order = match &backend {
                Backend::Local { store, .. } => {
                    let written = ops::hold(store, &Outbound::default(), &id, &reason, Utc::now())
                        .map_err(op_failure)?;
                    store.flush_blocking().map_err(store_failure)?;
                    written.value
                }
                Backend::Remote(api) => api.post(
                    &["orders", &id, "hold"],
                    &[],
                    Some(json!({ "reason": reason })),
                )?,
            };
            if json {
                return print_json(&order);
            }
            outln!("{id}: on hold ({})", reason.trim());
            // Deliveries still queued wait for the release; one that went
            // out cannot be recalled, so say where it went and what was done.
            let held_by_hand = before.as_ref().is_some_and(|d| d.holds.manual.is_some());
            for d in before.iter().flat_map(OrderDetail::delivered_parts) {
                let told = if held_by_hand {
                    "it was on hold by hand already, so no new hold notice is queued".to_owned()
                } else {
                    format!(
                        "a hold notice is queued for {}: whether the parcel can still be \
                         stopped is up to the warehouse",
                        d.destination
                    )
                };
                outln!(
                    "{id}: it was already delivered to {} at {} (delivery {}); {told}",
                    d.destination,
                    time(d.at),
                    d.delivery_id,
                );
            }
            Ok(())
        }
        OrdersCommand::Redeliver { id, yes, json } => {
            let done: ops::Redelivery = match &backend {
                Backend::Local { store, .. } => {
                    let done = ops::redeliver(store, &Outbound::default(), &id, !yes, Utc::now())
                        .map_err(op_failure)?;
                    if done.queued {
                        store.flush_blocking().map_err(store_failure)?;
                    }
                    done
                }
                Backend::Remote(api) => {
                    let query = [("dry_run", (!yes).to_string())];
                    api.post(&["orders", &id, "redeliver"], &query, None)?
                }
            };
            if json {
                return print_json(&done);
            }
            out!("{}", render_redelivery(&done));
            Ok(())
        }
        OrdersCommand::Tag {
            id,
            tags,
            remove,
            json,
        } => {
            let tagged = match &backend {
                Backend::Local { config, store } => {
                    let rules = super::rules::load_configured_rules(config, None)?;
                    let written = ops::tag(
                        store,
                        &Outbound::default(),
                        &rules,
                        &id,
                        &tags,
                        &remove,
                        Utc::now(),
                    )
                    .map_err(op_failure)?;
                    if written.seq != 0 {
                        store.flush_blocking().map_err(store_failure)?;
                    }
                    written.value
                }
                Backend::Remote(api) => {
                    let doc: serde_json::Value = api.post(
                        &["orders", &id, "tags"],
                        &[],
                        Some(json!({ "add": tags, "remove": remove })),
                    )?;
                    ops::Tagged::from_json(doc).map_err(|e| {
                        Failure::new(
                            EXIT_FAILED,
                            format!(
                                "the daemon's answer for order {id} is not a tagged order: {e}"
                            ),
                        )
                    })?
                }
            };
            if json {
                return print_json(&tagged.to_json());
            }
            out!("{}", render_tagging(&id, &tagged));
            Ok(())
        }
        OrdersCommand::Release { id, json } => {
            // What held it, to say what the release did.
            let before = detail_before(&backend, &id)?
                .map(|d| d.holds)
                .unwrap_or_default();
            let order: Order = match &backend {
                Backend::Local { store, .. } => {
                    let written = ops::release(store, &Outbound::default(), &id, Utc::now())
                        .map_err(op_failure)?;
                    store.flush_blocking().map_err(store_failure)?;
                    written.value
                }
                Backend::Remote(api) => api.post(&["orders", &id, "release"], &[], None)?,
            };
            if json {
                return print_json(&order);
            }
            outln!("{id}: released; {}", released_what(&before));
            Ok(())
        }
    }
}

/// The order as it stands before a hold or release, to say afterwards what
/// it did; None when the daemon's answer does not read as an order.
fn detail_before(backend: &Backend, id: &str) -> Result<Option<OrderDetail>, Failure> {
    match backend {
        Backend::Local { store, .. } => Ok(Some(ops::order_detail(store, id).map_err(op_failure)?)),
        Backend::Remote(api) => {
            let doc: serde_json::Value = api.get(&["orders", id], &[])?;
            Ok(OrderDetail::from_json(doc).ok())
        }
    }
}

/// What `orders redeliver` did, or would do without `--yes`.
pub fn render_redelivery(r: &ops::Redelivery) -> String {
    use std::fmt::Write;
    let id = &r.order_id;
    let parts: Vec<String> = r
        .parts
        .iter()
        .map(|p| {
            let lines: Vec<String> = p
                .lines
                .iter()
                .map(|l| format!("{} x{}", l.sku.as_deref().unwrap_or(&l.line_id), l.quantity))
                .collect();
            match &p.delivery_id {
                Some(d) => format!("{} (delivery {d}: {})", p.destination, lines.join(", ")),
                None => format!("{} ({})", p.destination, lines.join(", ")),
            }
        })
        .collect();
    let mut s = String::new();
    let verb = if r.queued {
        "delivering again to"
    } else {
        "would deliver again to"
    };
    let _ = writeln!(s, "{id}: {verb} {}", parts.join("; "));
    for w in &r.withdrawn {
        let _ = writeln!(
            s,
            "{id}: {} took delivery {} at {}: {} a withdraw notice for it",
            w.destination,
            w.delivery_id,
            time(w.at),
            if r.queued {
                "queued"
            } else {
                "it would be sent"
            }
        );
    }
    if !r.queued {
        let _ = writeln!(
            s,
            "nothing was queued: `switchyard orders redeliver {id} --yes` delivers it"
        );
    }
    s
}

/// What `orders tag` did: the tags, then what the rules changed.
fn render_tagging(id: &str, tagged: &ops::Tagged) -> String {
    use std::fmt::Write;
    let t = &tagged.tagging;
    let mut s = String::new();
    if !t.added.is_empty() {
        let _ = writeln!(s, "{id}: tagged {} by hand", t.added.join(", "));
    }
    if !t.removed.is_empty() {
        let _ = writeln!(s, "{id}: took off {} (set by hand)", t.removed.join(", "));
    }
    for u in &t.unchanged {
        let _ = writeln!(s, "{id}: unchanged: {}", u.reason);
    }
    if t.added.is_empty() && t.removed.is_empty() {
        return s;
    }
    let tags = &tagged.detail.order.tags;
    let _ = writeln!(
        s,
        "{id}: tags now {} (by hand: {})",
        if tags.is_empty() {
            "-".to_owned()
        } else {
            tags.join(", ")
        },
        if tagged.detail.manual_tags.is_empty() {
            "-".to_owned()
        } else {
            tagged.detail.manual_tags.join(", ")
        }
    );
    match (&t.rules, t.rules_ran) {
        (_, false) => {
            let _ = writeln!(
                s,
                "{id}: the order is {}: the rules were not run again (only its tags changed)",
                tagged.detail.order.status
            );
        }
        (None, true) => {
            let _ = writeln!(s, "{id}: the rules, run again, change nothing else");
        }
        (Some(change), true) => {
            let _ = writeln!(s, "{id}: the rules, run again: {}", change.describe());
            if !change.kept.is_empty() {
                let _ = writeln!(
                    s,
                    "{id}: a delivery is never sent again by itself; to deliver it where the \
                     rules send it now: switchyard orders redeliver {id} --yes"
                );
            }
        }
    }
    s
}

/// What a release lifted, given the holds before it.
fn released_what(before: &ops::Holds) -> String {
    let rule = before
        .rule
        .as_ref()
        .filter(|r| before.released.as_ref() != Some(*r));
    match (&before.manual, rule) {
        (Some(m), Some(r)) => format!(
            "lifted the hold set by hand ({m}) and the rules' hold ({r}); the rules' hold \
             stays released while they give this reason"
        ),
        (Some(m), None) => format!("lifted the hold set by hand ({m})"),
        (None, Some(r)) => format!(
            "overrode the rules' hold ({r}): it stays released while the rules give this \
             reason (`rules explain` shows it)"
        ),
        (None, None) => "lifted its hold".to_owned(),
    }
}

/// `--route` must name a destination of the config (or `none`), refused
/// like a bad `--status`: a typo must not read as "no orders".
fn check_route(route: &str, destinations: &[String]) -> CliResult {
    if route == "none" || destinations.iter().any(|d| d == route) {
        return Ok(());
    }
    let mut valid: Vec<&str> = destinations.iter().map(String::as_str).collect();
    valid.push("none");
    Err(Failure::new(
        super::EXIT_UNAVAILABLE,
        format!(
            "error: invalid value '{route}' for '--route <DESTINATION|none>': no such destination in the config\n  [possible values: {}]",
            valid.join(", ")
        ),
    ))
}

pub(super) fn store_failure(e: crate::store::StoreError) -> Failure {
    Failure::new(EXIT_FAILED, e.to_string())
}

/// A payload as stored, byte for byte, so that it can be compared with
/// what the channel sent or piped on; on a terminal, a line end after it if
/// it has none, so that the prompt does not follow on its last line.
fn print_raw(text: &[u8]) {
    use std::io::{IsTerminal as _, Write as _};
    let mut stdout = std::io::stdout().lock();
    // Like `out!`: a reader that went away (`| head`) is no failure.
    let _ = stdout.write_all(text);
    if stdout.is_terminal() && !text.ends_with(b"\n") {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
}

pub(super) fn op_failure(e: OpError) -> Failure {
    Failure::new(EXIT_FAILED, e.to_string())
}

fn dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

/// The `orders list` table of stored orders (`demo`, `replay`).
pub fn render_list(orders: &[StoredOrder]) -> String {
    let listed: Vec<ops::ListedOrder> = orders.iter().map(ops::ListedOrder::of).collect();
    render_orders(&listed)
}

/// The `orders list` table: one row per order, columns as wide as their
/// widest cell. `HELD BY` says who put the hold in force: `person` or
/// `rule:NAME`.
pub fn render_orders(orders: &[ops::ListedOrder]) -> String {
    if orders.is_empty() {
        return "no orders\n".to_owned();
    }
    let header = [
        "ID",
        "PLACED (UTC)",
        "STATUS",
        "PAYMENT",
        "TOTAL",
        "ROUTE",
        "HOLD",
        "HELD BY",
        "TAGS",
    ];
    let rows: Vec<[String; 9]> = orders
        .iter()
        .map(|listed| {
            let o = &listed.order;
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
                dash(listed.hold_by.as_deref()).to_owned(),
                if o.tags.is_empty() {
                    "-".to_owned()
                } else {
                    o.tags.join(",")
                },
            ]
        })
        .collect();
    table(header, &rows)
}

/// The `orders show` text.
pub fn render_show(detail: &OrderDetail) -> String {
    use std::fmt::Write;
    let o = &detail.order;
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
        time(o.placed_at),
        time(o.updated_at)
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
    // A split order's deliveries are listed below, part by part.
    if let Some(d) = detail.delivered.as_ref().filter(|_| detail.parts.len() < 2) {
        let _ = writeln!(
            s,
            "delivered to {} at {} (delivery {})",
            d.destination,
            time(d.at),
            d.delivery_id
        );
    }
    let hold = if detail.holds == ops::Holds::default() {
        dash(o.hold.as_deref()).to_owned()
    } else {
        detail.holds.describe()
    };
    let by_hand = if detail.manual_tags.is_empty() {
        String::new()
    } else {
        format!(" (by hand: {})", detail.manual_tags.join(", "))
    };
    let _ = writeln!(
        s,
        "route {}  hold {hold}  tags {}{by_hand}",
        dash(o.route.as_deref()),
        if o.tags.is_empty() {
            "-".to_owned()
        } else {
            o.tags.join(", ")
        }
    );
    let _ = writeln!(s, "lines:");
    for l in &o.lines {
        let routed = detail
            .line_routes
            .iter()
            .find(|r| r.line_id == l.line_id)
            .map(|r| format!("  -> {} (route_lines of rule {})", r.route, r.rule))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {}  {}  {}  {} x {} = {}  shipped {}{routed}",
            l.line_id,
            dash(l.sku.as_deref()),
            l.title,
            l.quantity,
            l.unit_price,
            l.total,
            l.shipped_quantity
        );
    }
    if detail.parts.len() > 1 {
        let _ = writeln!(s, "deliveries (split by route_lines):");
        for p in &detail.parts {
            let lines: Vec<String> = p
                .lines
                .iter()
                .map(|id| {
                    let line = o.lines.iter().find(|l| &l.line_id == id);
                    match line.and_then(|l| l.sku.as_deref()) {
                        Some(sku) => format!("{id} ({sku})"),
                        None => id.clone(),
                    }
                })
                .collect();
            let _ = writeln!(
                s,
                "  part {} of {}  {}  {}  {}  lines {}",
                p.index,
                p.of,
                p.destination,
                p.delivery_id,
                p.delivered_at.map_or_else(
                    || "queued".to_owned(),
                    |at| format!("delivered {}", time(at))
                ),
                lines.join(", ")
            );
        }
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
                sh.shipped_at.map(time).unwrap_or_else(|| "-".into()),
                lines.join(", ")
            );
        }
    }
    if !detail.notes.is_empty() {
        let _ = writeln!(s, "normalization notes:");
        for n in &detail.notes {
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
    for h in &detail.history {
        let _ = writeln!(s, "  {}  {}  {}", time(h.at), h.kind, h.detail);
    }
    s
}
