//! Operations a person asks for, whichever way they ask: the command line
//! with the store open (daemon stopped) or the admin API of the running
//! daemon (`src/http/admin.rs`, which the command line uses while the daemon
//! holds the store). Each operation is implemented once, here, so the two
//! ways cannot drift apart; rendering stays with the command line.
//!
//! Operations write and return what was written, with the store sequence to
//! wait on where there is one: the caller acknowledges only after the flush
//! (`Store::flush_blocking` in the command line, `Store::flushed` in the
//! daemon). They wake the outbox workers of the `Outbound` they are given;
//! the command line passes one whose wakers reach nobody, and the daemon
//! sends what was queued once it runs.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchyard_contract::{NormalizationNote, Order, OrderStatus, Priority, Shipment};

use crate::effects::Outbound;
use crate::effects::stock::{self, StockError, StockUpdate};
use crate::effects::tracking::{self, ShipError, ShipOutcome, ShipmentRequest};
use crate::ingest::{redecide, rule_input};
use crate::rules::{Evaluation, PersonHold, RuleInput, RuleSet, evaluate};
use crate::store::{
    DEFAULT_PAGE, DeliveredTo, DeliveryPart, HistoryEntry, OrderFilter, OrderWrite, OutboxPage,
    RouteFilter, RoutedLine, StockView, Store, StoreError, StoredOrder, WriteBatch,
};

/// Why an operation did not happen. The message names the offending thing
/// and says what to do; the admin API turns the variant into a status.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The order, outbox item or stock level named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The request does not fit the current state (an order not on hold,
    /// an order that kept changing); asking again later may work.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => OpError::NotFound(e.to_string()),
            StoreError::InvalidKey { .. } | StoreError::InvalidCursor { .. } => {
                OpError::Invalid(e.to_string())
            }
            StoreError::Conflict { .. } => OpError::Conflict(e.to_string()),
            e => OpError::Store(e),
        }
    }
}

impl From<ShipError> for OpError {
    fn from(e: ShipError) -> Self {
        match e {
            ShipError::UnknownOrder(_) => OpError::NotFound(e.to_string()),
            ShipError::Invalid(_) => OpError::Invalid(e.to_string()),
            ShipError::State(_) | ShipError::Contended(_) => OpError::Conflict(e.to_string()),
            ShipError::Store(e) => e.into(),
        }
    }
}

impl From<StockError> for OpError {
    fn from(e: StockError) -> Self {
        match e {
            StockError::Invalid(problems) => OpError::Invalid(problems.join("\n")),
            StockError::Store(e) => e.into(),
        }
    }
}

// --- orders ---------------------------------------------------------------------

/// The stored order with this id, or an error that says what ids look like.
pub fn find_order(store: &Store, id: &str) -> Result<StoredOrder, OpError> {
    store.get_order(id)?.ok_or_else(|| {
        OpError::NotFound(format!(
            "no order {id:?}; ids look like \"<account>:<channel order id>\" (see `switchyard orders list`)"
        ))
    })
}

/// The `--route` / `route=` filter: a destination id, or `none` for
/// unrouted orders.
pub fn route_filter(route: &str) -> RouteFilter {
    if route == "none" {
        RouteFilter::None
    } else {
        RouteFilter::Is(route.to_owned())
    }
}

/// One page of `orders list`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersPage {
    pub orders: Vec<ListedOrder>,
    /// The cursor of the next page (`--after`, `after=`), when more may match.
    pub next: Option<String>,
}

/// One order of `orders list`: the canonical order and who holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedOrder {
    pub order: Order,
    /// `person`, `rule:NAME`, or None when the order is not on hold (see
    /// [`Holds::by`]).
    pub hold_by: Option<String>,
}

impl ListedOrder {
    pub fn of(stored: &StoredOrder) -> ListedOrder {
        ListedOrder {
            order: stored.order.clone(),
            hold_by: Holds::of(stored).by(stored.order.hold.as_deref()),
        }
    }

    /// The `orders list --json` element: the canonical order with
    /// `hold_by` added.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.order).unwrap_or_else(|_| json!({}));
        v["hold_by"] = json!(self.hold_by);
        v
    }

    /// Reads the element `to_json` wrote.
    pub fn from_json(mut v: serde_json::Value) -> Result<ListedOrder, String> {
        let obj = v.as_object_mut().ok_or("an order must be a JSON object")?;
        let hold_by = obj.remove("hold_by").unwrap_or(serde_json::Value::Null);
        Ok(ListedOrder {
            hold_by: serde_json::from_value(hold_by).map_err(|e| format!("hold_by: {e}"))?,
            order: serde_json::from_value(v).map_err(|e| format!("order: {e}"))?,
        })
    }
}

/// `orders list`: one page of matching canonical orders, newest first
/// unless `filter.oldest`.
pub fn list_orders(store: &Store, filter: &OrderFilter) -> Result<OrdersPage, OpError> {
    let page = store.page_orders(filter)?;
    Ok(OrdersPage {
        orders: page.orders.iter().map(ListedOrder::of).collect(),
        next: page.next,
    })
}

/// What `orders show` renders: the canonical order, its normalization notes
/// and its history.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderDetail {
    pub order: Order,
    pub notes: Vec<NormalizationNote>,
    pub history: Vec<HistoryEntry>,
    pub holds: Holds,
    /// Where and when the order was last delivered.
    pub delivered: Option<DeliveredTo>,
    /// Lines a rule's `route_lines` sent elsewhere than the order's route.
    pub line_routes: Vec<RoutedLine>,
    /// The deliveries the order was queued in (one per destination of a
    /// split order) and the lines each carries.
    pub parts: Vec<DeliveryPart>,
    /// The tags of `order.tags` a person set (`orders tag`): the only ones
    /// a person can take off.
    pub manual_tags: Vec<String>,
}

/// Where an order's hold comes from (`orders show --json`: `holds`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holds {
    /// Set by a person; wins over the rules'.
    pub manual: Option<String>,
    /// What the rules decided when they last ran, in force or not.
    pub rule: Option<String>,
    /// A rule hold a person released: it stays released while the rules
    /// give this reason.
    pub released: Option<String>,
    /// The rule that gave `rule` (None for orders stored before it was kept).
    #[serde(default)]
    pub rule_name: Option<String>,
}

impl Holds {
    pub fn of(stored: &StoredOrder) -> Holds {
        Holds {
            manual: stored.manual_hold.clone(),
            rule: stored.rule_hold.clone(),
            released: stored.released_hold.clone(),
            rule_name: stored.hold_rule.clone(),
        }
    }

    /// Who put the order's hold in force (`hold`, the order's `hold`):
    /// `person` for a hold set by hand (it wins over the rules'),
    /// `rule:NAME` for a rule's (`rule` when the rule is not known), None
    /// when nothing holds it, `unknown` for a hold stored before holds were
    /// kept apart.
    pub fn by(&self, hold: Option<&str>) -> Option<String> {
        hold?;
        let person = PersonHold {
            manual: self.manual.clone(),
            released: self.released.clone(),
        };
        Some(match person.effective(self.rule.as_deref()) {
            (Some(_), Some("manual")) => "person".to_owned(),
            (Some(_), _) => match &self.rule_name {
                Some(name) => format!("rule:{name}"),
                None => "rule".to_owned(),
            },
            _ => "unknown".to_owned(),
        })
    }

    /// The hold in force and where it comes from, in words: `"address check
    /// (set by hand)"`, `"awaiting payment (by rule awaiting-payment)"`, or,
    /// for a rule hold a person released, `"none (the rules' hold \"...\"
    /// was released by hand)"`.
    pub fn describe(&self) -> String {
        let person = PersonHold {
            manual: self.manual.clone(),
            released: self.released.clone(),
        };
        match person.effective(self.rule.as_deref()) {
            (Some(h), Some("manual")) => format!("{h} (set by hand)"),
            (None, Some("released")) => format!(
                "none (the rules' hold {:?} was released by hand)",
                self.rule.as_deref().unwrap_or_default()
            ),
            (Some(h), _) => match &self.rule_name {
                Some(name) => format!("{h} (by rule {name})"),
                None => format!("{h} (by the rules)"),
            },
            _ => "none".to_owned(),
        }
    }
}

impl OrderDetail {
    /// The deliveries destinations took (each part of a split order).
    pub fn delivered_parts(&self) -> Vec<DeliveredTo> {
        crate::effects::deliveries::delivered_parts(&self.parts, self.delivered.as_ref())
    }

    /// The `orders show --json` document: the canonical order with `notes`
    /// and `history` added.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.order).unwrap_or_else(|_| json!({}));
        v["notes"] = json!(self.notes);
        // To the second: the store keeps nanoseconds, nobody reads them.
        let history: Vec<serde_json::Value> = self
            .history
            .iter()
            .map(|h| {
                json!({
                    "at": h.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "kind": h.kind,
                    "detail": h.detail,
                })
            })
            .collect();
        v["history"] = json!(history);
        v["holds"] = json!(self.holds);
        v["hold_by"] = json!(self.holds.by(self.order.hold.as_deref()));
        v["delivered"] = json!(self.delivered);
        v["line_routes"] = json!(self.line_routes);
        v["parts"] = json!(self.parts);
        v["manual_tags"] = json!(self.manual_tags);
        v
    }

    /// Reads the document `to_json` wrote.
    pub fn from_json(mut v: serde_json::Value) -> Result<OrderDetail, String> {
        let obj = v
            .as_object_mut()
            .ok_or("an order document must be a JSON object")?;
        let notes = obj.remove("notes").unwrap_or_else(|| json!([]));
        let history = obj.remove("history").unwrap_or_else(|| json!([]));
        let holds = obj.remove("holds").unwrap_or_else(|| json!({}));
        // Derived from `holds`.
        obj.remove("hold_by");
        let delivered = obj.remove("delivered").unwrap_or(serde_json::Value::Null);
        let line_routes = obj.remove("line_routes").unwrap_or_else(|| json!([]));
        let parts = obj.remove("parts").unwrap_or_else(|| json!([]));
        let manual_tags = obj.remove("manual_tags").unwrap_or_else(|| json!([]));
        Ok(OrderDetail {
            order: serde_json::from_value(v).map_err(|e| format!("order: {e}"))?,
            notes: serde_json::from_value(notes).map_err(|e| format!("notes: {e}"))?,
            history: serde_json::from_value(history).map_err(|e| format!("history: {e}"))?,
            holds: serde_json::from_value(holds).map_err(|e| format!("holds: {e}"))?,
            delivered: serde_json::from_value(delivered).map_err(|e| format!("delivered: {e}"))?,
            line_routes: serde_json::from_value(line_routes)
                .map_err(|e| format!("line_routes: {e}"))?,
            parts: serde_json::from_value(parts).map_err(|e| format!("parts: {e}"))?,
            manual_tags: serde_json::from_value(manual_tags)
                .map_err(|e| format!("manual_tags: {e}"))?,
        })
    }
}

/// `orders show`.
pub fn order_detail(store: &Store, id: &str) -> Result<OrderDetail, OpError> {
    let stored = find_order(store, id)?;
    let history = store.history(id)?;
    let holds = Holds::of(&stored);
    Ok(OrderDetail {
        order: stored.order,
        notes: stored.notes,
        history,
        holds,
        delivered: stored.delivered,
        line_routes: stored.line_routes,
        parts: stored.parts,
        manual_tags: stored.manual_tags,
    })
}

/// The raw payload of order `id`'s newest channel version as it is stored
/// (`orders show --raw`): the text the channel sent for a webhook body, the
/// JSON a polled payload was written as. An unknown id is the same error as
/// `orders show`'s; an order made here, never received from a channel, has
/// none, and says so.
pub fn raw_payload(store: &Store, id: &str) -> Result<Vec<u8>, OpError> {
    // A channel version whose connector kept nothing is stored as `null`.
    if let Some(text) = store.raw_payload_text(id)?
        && text.trim_ascii() != b"null"
    {
        return Ok(text);
    }
    find_order(store, id)?;
    Err(OpError::NotFound(format!(
        "order {id} has no raw payload: nothing a channel sent is kept for it (an order \
         made in switchyard has none); `switchyard orders show {id}` shows the order"
    )))
}

/// A local write that is done but maybe not yet durable.
#[derive(Debug, Clone)]
pub struct Written<T> {
    pub value: T,
    /// Wait for this store sequence before acknowledging.
    pub seq: u64,
}

/// Puts an order on hold by hand. A later rules run keeps the hold.
pub fn hold(
    store: &Store,
    outbound: &Outbound,
    id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Written<Order>, OpError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(OpError::Invalid(format!(
            "a hold of order {id} needs a reason that says why"
        )));
    }
    change(store, outbound, id, "hold", now, |o| {
        o.manual_hold = Some(reason.to_owned());
        o.order.hold = Some(reason.to_owned());
        Ok(format!("held by hand: {reason}"))
    })
}

/// Releases an order's hold, hand-set or a rule's. Releasing can make the
/// order deliverable: its delivery is queued in the same transaction.
pub fn release(
    store: &Store,
    outbound: &Outbound,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Written<Order>, OpError> {
    change(store, outbound, id, "release", now, |o| {
        let Some(was) = o.order.hold.take() else {
            return Err(OpError::Conflict(format!("order {id} is not on hold")));
        };
        o.manual_hold = None;
        // A rule's hold, in force or under the hand-set one, is released too:
        // remembered, so re-running the rules keeps it released.
        if let Some(rule) = o.rule_hold.clone() {
            o.released_hold = Some(rule);
        } else if o.released_hold.is_none() {
            // Stored before rule holds were kept apart: what was in force.
            o.released_hold = Some(was.clone());
        }
        Ok(format!("released by hand (was: {was})"))
    })
}

/// What `orders tag` did (`POST /api/v1/orders/{id}/tags`: `tagging`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tagging {
    /// Tags now set by hand, and hand-set tags taken off.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Tags asked for that changed nothing, each with why.
    pub unchanged: Vec<UnchangedTag>,
    /// What the rules, run again with the new tags, changed besides them
    /// (route, hold, priority, their own tags); None when nothing, or when
    /// the order is no longer open (its tags alone change).
    pub rules: Option<RuleChange>,
    /// False when the order is shipped or cancelled: the rules did not run.
    pub rules_ran: bool,
}

/// A tag `orders tag` was given that changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnchangedTag {
    pub tag: String,
    pub reason: String,
}

/// The answer of `orders tag`: the order as `orders show` has it, and what
/// the tagging did.
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged {
    pub detail: OrderDetail,
    pub tagging: Tagging,
}

impl Tagged {
    /// The `orders show --json` document with `tagging` added.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.detail.to_json();
        v["tagging"] = json!(self.tagging);
        v
    }

    /// Reads the document `to_json` wrote.
    pub fn from_json(mut v: serde_json::Value) -> Result<Tagged, String> {
        let tagging = v
            .as_object_mut()
            .and_then(|o| o.remove("tagging"))
            .ok_or("the answer has no `tagging`")?;
        Ok(Tagged {
            tagging: serde_json::from_value(tagging).map_err(|e| format!("tagging: {e}"))?,
            detail: OrderDetail::from_json(v)?,
        })
    }
}

/// Sets tags on an order by hand (`add`) and takes hand-set tags off
/// (`remove`); tags compare ignoring case, as the rules compare them. A
/// hand-set tag survives every rules run and every new version from the
/// channel. The rules then run again for the order, as `rules apply` runs
/// them, so that a rule's `tag` condition sees the change; a shipped or
/// cancelled order only has its tags changed. Nothing is written when no
/// tag changes.
pub fn tag(
    store: &Store,
    outbound: &Outbound,
    rules: &RuleSet,
    id: &str,
    add: &[String],
    remove: &[String],
    now: DateTime<Utc>,
) -> Result<Written<Tagged>, OpError> {
    check_tags(id, add, remove)?;
    let (planned, _) = plan_tags(&find_order(store, id)?, add, remove, rules, now);
    if planned.added.is_empty() && planned.removed.is_empty() {
        return Ok(Written {
            value: Tagged {
                detail: order_detail(store, id)?,
                tagging: planned,
            },
            seq: 0,
        });
    }
    // Planned again on the order as it is when written (it may have
    // changed meanwhile); the last plan is what was written.
    let last = std::cell::RefCell::new(planned);
    let written = change(store, outbound, id, "tags", now, |o| {
        let (tagging, next) = plan_tags(o, add, remove, rules, now);
        *o = next;
        let detail = describe_tagging(&tagging);
        *last.borrow_mut() = tagging;
        Ok(detail)
    })?;
    Ok(Written {
        value: Tagged {
            detail: order_detail(store, id)?,
            tagging: last.into_inner(),
        },
        seq: written.seq,
    })
}

/// Refuses tags a rule could not set, and a tag both added and removed.
fn check_tags(id: &str, add: &[String], remove: &[String]) -> Result<(), OpError> {
    if add.is_empty() && remove.is_empty() {
        return Err(OpError::Invalid(format!(
            "no tag to set or take off order {id}: give tags to add, or tags to remove"
        )));
    }
    let mut problems: Vec<String> = add
        .iter()
        .chain(remove)
        .filter_map(|t| crate::rules::tag_problem(t).map(|p| format!("tag {t:?}: {p}")))
        .collect();
    for t in add {
        if remove.iter().any(|r| crate::rules::eq_ci(r, t)) {
            problems.push(format!("tag {t:?} is both added and removed; give it once"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(OpError::Invalid(format!(
            "order {id} was not changed: {}",
            problems.join("; ")
        )))
    }
}

/// `stored` with its hand-set tags changed and, when it is open, the rules
/// run again; and what that did.
fn plan_tags(
    stored: &StoredOrder,
    add: &[String],
    remove: &[String],
    rules: &RuleSet,
    now: DateTime<Utc>,
) -> (Tagging, StoredOrder) {
    use crate::rules::eq_ci;
    let id = &stored.order.id;
    let has = |list: &[String], t: &str| list.iter().any(|x| eq_ci(x, t));
    let mut tagged = stored.clone();
    let mut tagging = Tagging::default();
    for t in add {
        if has(&tagged.manual_tags, t) {
            tagging.unchanged.push(UnchangedTag {
                tag: t.clone(),
                reason: format!("tag {t} is set by hand already"),
            });
        } else {
            tagged.manual_tags.push(t.clone());
            if !has(&tagged.order.tags, t) {
                tagged.order.tags.push(t.clone());
            }
            tagging.added.push(t.clone());
        }
    }
    for t in remove {
        if has(&tagged.manual_tags, t) {
            tagged.manual_tags.retain(|x| !eq_ci(x, t));
            // What the channel or a rule gives stays.
            if !has(&tagged.channel_tags, t) && !has(&tagged.rule_tags, t) {
                tagged.order.tags.retain(|x| !eq_ci(x, t));
            }
            tagging.removed.push(t.clone());
            continue;
        }
        let reason = if has(&stored.rule_tags, t) {
            format!(
                "tag {t} is not set by hand: a rule adds it, so only the rules can take it \
                 off (`switchyard rules explain --order {id}` shows which rule)"
            )
        } else if has(&stored.channel_tags, t) && has(&stored.order.tags, t) {
            format!(
                "tag {t} is not set by hand: it comes from {}, so take it off there (or \
                 `untag` it in a rule)",
                stored.order.channel
            )
        } else {
            format!("the order has no tag {t}")
        };
        tagging.unchanged.push(UnchangedTag {
            tag: t.clone(),
            reason,
        });
    }
    tagging.rules_ran = stored.order.status.is_open();
    let next = if tagging.rules_ran && tagging.added.len() + tagging.removed.len() > 0 {
        let next = redecide(tagged.clone(), rules, now);
        tagging.rules = RuleChange::between(&tagged, &next).filter(|c| !c.describe().is_empty());
        next
    } else {
        tagged
    };
    (tagging, next)
}

/// The history entry of a tagging: `by hand +vip -rush; rules: route a -> b`.
fn describe_tagging(t: &Tagging) -> String {
    let mut parts: Vec<String> = t.added.iter().map(|x| format!("+{x}")).collect();
    parts.extend(t.removed.iter().map(|x| format!("-{x}")));
    let mut s = format!("tags by hand: {}", parts.join(" "));
    if let Some(change) = &t.rules {
        s.push_str(&format!("; rules: {}", change.describe()));
    }
    s
}

/// Applies a local change, re-reading and retrying if the order changed
/// underneath; `edit` returns the history detail, or why it cannot apply.
fn change(
    store: &Store,
    outbound: &Outbound,
    id: &str,
    kind: &str,
    now: DateTime<Utc>,
    edit: impl Fn(&mut StoredOrder) -> Result<String, OpError>,
) -> Result<Written<Order>, OpError> {
    for _ in 0..5 {
        let current = find_order(store, id)?;
        let mut next = current.clone();
        let mut detail = edit(&mut next)?;
        let mut plan = crate::effects::deliveries::plan_local(store, &mut next, now)?;
        // A hold cannot recall a delivery that went out: the destination is
        // told instead, in the same write (each destination that took a part).
        if kind == "hold"
            && current.manual_hold.is_none()
            && let Some(reason) = &next.manual_hold
        {
            for delivered in
                crate::effects::deliveries::delivered_parts(&next.parts, next.delivered.as_ref())
            {
                plan.outbox.push(crate::effects::deliveries::notice_item(
                    id, &delivered, "hold", reason, now,
                ));
                detail.push_str(&format!(
                    "; already delivered to {} (delivery {}): hold notice queued",
                    delivered.destination, delivered.delivery_id
                ));
            }
        }
        let queued = crate::outbox::Wakers::accounts_of(&plan.outbox);
        let order = next.order.clone();
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
            Ok(report) => {
                outbound.outbox.wakers.wake_accounts(&queued);
                return Ok(Written {
                    value: order,
                    seq: report.seq,
                });
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OpError::Conflict(format!(
        "order {id} kept changing while it was being updated; try again"
    )))
}

// --- redelivery -------------------------------------------------------------------

/// What `orders redeliver` queued, or with `dry_run` would queue
/// (`POST /api/v1/orders/{id}/redeliver`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redelivery {
    pub order_id: String,
    /// False: only a preview, nothing was written.
    pub queued: bool,
    /// One delivery per destination the order's owed lines go to now.
    pub parts: Vec<RedeliveryPart>,
    /// Earlier deliveries that destinations took: each is sent a `withdraw`
    /// notice naming it, so a line that moved is not shipped twice.
    pub withdrawn: Vec<DeliveredTo>,
}

/// One delivery of a redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeliveryPart {
    pub destination: String,
    /// None in a preview.
    pub delivery_id: Option<String>,
    pub lines: Vec<RedeliveredLine>,
}

/// A line a delivery carries and the units it asks to ship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeliveredLine {
    pub line_id: String,
    pub sku: Option<String>,
    pub quantity: u32,
}

/// Why `stored` cannot be delivered now, saying what would make it so;
/// None when it can.
pub fn not_deliverable(stored: &StoredOrder) -> Option<String> {
    let o = &stored.order;
    let id = &o.id;
    if o.channel_fulfilled() {
        return Some(format!(
            "order {id} is fulfilled by {}: the marketplace ships it from its own stock, so it \
             is never delivered to a destination",
            o.channel
        ));
    }
    match o.status {
        OrderStatus::Pending => {
            return Some(format!(
                "order {id} is pending (not paid yet): it is delivered once its channel reports \
                 it ready"
            ));
        }
        OrderStatus::Shipped | OrderStatus::Cancelled => {
            return Some(format!(
                "order {id} is {}: there is nothing left to deliver",
                o.status
            ));
        }
        OrderStatus::Ready | OrderStatus::PartiallyShipped => {}
    }
    if o.open_units() == 0 {
        return Some(format!(
            "order {id} owes no units: every line is shipped or refunded"
        ));
    }
    if o.hold.is_some() {
        return Some(format!(
            "order {id} is on hold ({}): release it first with `switchyard orders release {id}` \
             (which delivers it if it was never delivered), then redeliver",
            Holds::of(stored).describe()
        ));
    }
    if o.route.is_none() {
        return Some(format!(
            "order {id} has no route: no rule routes it and the rules have no default_route; \
             change the rules, run `switchyard rules apply`, then redeliver"
        ));
    }
    crate::effects::deliveries::deliverable(o)
        .is_none()
        .then(|| format!("order {id} cannot be delivered now"))
}

fn redelivery_line(stored: &StoredOrder, line_id: &str) -> Option<RedeliveredLine> {
    let l = stored.order.lines.iter().find(|l| l.line_id == line_id)?;
    Some(RedeliveredLine {
        line_id: l.line_id.clone(),
        sku: l.sku.clone(),
        quantity: l.open_quantity(),
    })
}

fn redelivery_part(
    stored: &StoredOrder,
    destination: &str,
    delivery_id: Option<String>,
    lines: &[String],
) -> RedeliveryPart {
    RedeliveryPart {
        destination: destination.to_owned(),
        delivery_id,
        lines: lines
            .iter()
            .filter_map(|id| redelivery_line(stored, id))
            .filter(|l| l.quantity > 0)
            .collect(),
    }
}

/// Delivers an order again to where its owed lines go now (its current
/// route and line routes), one delivery per destination, after the rules
/// changed or a destination lost it; every destination that took an
/// earlier delivery is sent a `withdraw` notice for it. Refused, saying
/// why, when the order is not deliverable. With `dry_run`, only says what
/// it would queue. Not flushed: flush before acknowledging.
pub fn redeliver(
    store: &Store,
    outbound: &Outbound,
    id: &str,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Redelivery, OpError> {
    use crate::effects::deliveries;
    let stored = find_order(store, id)?;
    if let Some(why) = not_deliverable(&stored) {
        return Err(OpError::Conflict(why));
    }
    let withdrawn = deliveries::delivered_parts(&stored.parts, stored.delivered.as_ref());
    if dry_run {
        let route = stored.order.route.clone().unwrap_or_default();
        let parts = deliveries::part_groups(&stored, &route)
            .iter()
            .map(|(dest, lines)| redelivery_part(&stored, dest, None, lines))
            .collect();
        return Ok(Redelivery {
            order_id: stored.order.id,
            queued: false,
            parts,
            withdrawn,
        });
    }
    let Some(written) = deliveries::redeliver(store, outbound, id, now)? else {
        // It changed between the two reads.
        let now_stored = find_order(store, id)?;
        return Err(OpError::Conflict(
            not_deliverable(&now_stored).unwrap_or_else(|| {
                format!("order {id} changed while it was being redelivered; try again")
            }),
        ));
    };
    let parts = written
        .parts
        .iter()
        .map(|p| {
            redelivery_part(
                &written,
                &p.destination,
                Some(p.delivery_id.clone()),
                &p.lines,
            )
        })
        .collect();
    Ok(Redelivery {
        order_id: written.order.id.clone(),
        queued: true,
        parts,
        withdrawn,
    })
}

// --- shipments and stock ------------------------------------------------------------

/// The answer to a shipment report (`ship`, `POST /api/v1/shipments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipReceipt {
    pub order_id: String,
    /// False: a shipment with this tracking number was already recorded and
    /// nothing changed.
    pub recorded: bool,
    /// The order's status afterwards.
    pub status: OrderStatus,
    /// The tracking number as recorded (trimmed).
    pub tracking_number: String,
    /// The shipment recorded, when `recorded`.
    pub shipment: Option<Shipment>,
    /// What the person who shipped should know (an unpaid order that was
    /// held); the shipment is recorded all the same: the parcel has left.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Why no tracking push was queued (the account's connector cannot take
    /// tracking); absent when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_not_pushed: Option<String>,
}

/// Records a shipment and queues its tracking push.
pub fn ship(
    store: &Store,
    outbound: &Outbound,
    req: &ShipmentRequest,
    now: DateTime<Utc>,
) -> Result<Written<ShipReceipt>, OpError> {
    let tracking_number = req.tracking_number.trim().to_owned();
    let order_id = req.order_id.clone();
    let warnings = match store.get_order(&order_id)? {
        Some(stored) => ship_warnings(&stored),
        None => Vec::new(),
    };
    Ok(match tracking::record(store, outbound, req, now)? {
        ShipOutcome::Recorded {
            status,
            shipment,
            seq,
            tracking_skipped,
        } => Written {
            value: ShipReceipt {
                order_id,
                recorded: true,
                status,
                tracking_number,
                shipment: Some(shipment),
                warnings,
                tracking_not_pushed: tracking_skipped,
            },
            seq,
        },
        ShipOutcome::AlreadyRecorded { status } => Written {
            value: ShipReceipt {
                order_id,
                recorded: false,
                status,
                tracking_number,
                shipment: None,
                warnings: Vec::new(),
                tracking_not_pushed: None,
            },
            seq: 0,
        },
    })
}

/// An order shipped while its payment is still pending, after someone
/// released (or overrode) a hold: most often the hold was "awaiting
/// payment" and was released by mistake.
fn ship_warnings(stored: &StoredOrder) -> Vec<String> {
    let unpaid = stored.order.payment == switchyard_contract::PaymentStatus::Pending;
    let held = stored
        .released_hold
        .as_ref()
        .or(stored.manual_hold.as_ref())
        .or(stored.rule_hold.as_ref());
    match held {
        Some(reason) if unpaid => vec![format!(
            "order {} is not paid yet (payment pending) and was held ({reason}); \
             the shipment is recorded, but check that the payment arrives",
            stored.order.id
        )],
        _ => Vec::new(),
    }
}

/// The answer to setting stock levels (`stock set/import`, `PUT /api/v1/stock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReceipt {
    /// Levels written.
    pub skus: usize,
    /// Pushes queued (pending pushes of the same SKU fold into one).
    pub queued: usize,
    /// The accounts that take stock pushes.
    pub accounts: Vec<String>,
}

/// Sets central levels and queues their pushes, all or nothing.
pub fn set_stock(
    store: &Store,
    outbound: &Outbound,
    updates: &[StockUpdate],
    now: DateTime<Utc>,
) -> Result<Written<StockReceipt>, OpError> {
    let written = stock::set_levels(store, outbound, updates, now)?;
    Ok(Written {
        value: StockReceipt {
            skus: written.skus,
            queued: written.queued,
            accounts: outbound.stock.iter().map(|t| t.account.clone()).collect(),
        },
        seq: written.seq,
    })
}

/// `stock show`: the level and what each channel was last told.
pub fn stock_show(store: &Store, sku: &str) -> Result<StockView, OpError> {
    stock::show(store, sku)?.ok_or_else(|| {
        OpError::NotFound(format!(
            "no stock level for sku {sku:?}; set one with `switchyard stock set {sku} QTY`"
        ))
    })
}

// --- outbox ---------------------------------------------------------------------

/// A listing's page size as typed or sent: a whole number, 1 or more. A
/// page never holds more than [`crate::store::MAX_PAGE`], whatever is asked.
pub fn page_limit(text: &str) -> Option<usize> {
    text.trim().parse::<usize>().ok().filter(|n| *n >= 1)
}

/// One page of pending items, or of dead letters with `dead`, in queue
/// order after the item `after`; `limit` per page (default
/// [`DEFAULT_PAGE`], at most [`crate::store::MAX_PAGE`]).
pub fn outbox_list(
    store: &Store,
    dead: bool,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<OutboxPage, OpError> {
    Ok(store.outbox_page(dead, after, limit.unwrap_or(DEFAULT_PAGE))?)
}

/// Makes one item (pending or dead) due now and wakes its account's worker.
/// Not flushed: flush before acknowledging.
pub fn outbox_retry(
    store: &Store,
    outbound: &Outbound,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), OpError> {
    let item = store.outbox_get(id)?.ok_or_else(|| StoreError::NotFound {
        what: "outbox item",
        id: id.to_owned(),
    })?;
    store.outbox_retry(id, now)?;
    outbound.outbox.wakers.wake(&item.account);
    Ok(())
}

/// Retries every dead letter; returns how many. Not flushed.
pub fn outbox_retry_dead(
    store: &Store,
    outbound: &Outbound,
    now: DateTime<Utc>,
) -> Result<usize, OpError> {
    let (n, accounts) = store.outbox_retry_dead_of(now)?;
    outbound.outbox.wakers.wake_accounts(&accounts);
    Ok(n)
}

/// Removes one item, pending or dead. Not flushed.
pub fn outbox_drop(store: &Store, id: &str) -> Result<(), OpError> {
    Ok(store.outbox_drop(id)?)
}

// --- rules ----------------------------------------------------------------------

/// What a person did about a stored order's hold.
pub fn person_hold(stored: &StoredOrder) -> PersonHold {
    PersonHold {
        manual: stored.manual_hold.clone(),
        released: stored.released_hold.clone(),
    }
}

/// The rules' evaluation of a stored order, with its tags by origin, and
/// what a person did about its hold.
pub fn explain_stored(
    store: &Store,
    rules: &RuleSet,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(Order, Evaluation, PersonHold), OpError> {
    let stored = find_order(store, id)?;
    let eval = evaluate(rules, &rule_input(&stored), now);
    let person = person_hold(&stored);
    Ok((stored.order, eval, person))
}

/// The rules' evaluation of an order given whole (not necessarily stored):
/// its tags count as the channel's.
pub fn explain_given(rules: &RuleSet, order: &Order, now: DateTime<Utc>) -> Evaluation {
    evaluate(
        rules,
        &RuleInput {
            order,
            channel_tags: &order.tags,
            manual_tags: &[],
        },
        now,
    )
}

/// What the rules decide about an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    pub tags: Vec<String>,
    pub route: Option<String>,
    pub hold: Option<String>,
    pub priority: Priority,
    /// The lines a rule's `route_lines` sent somewhere; the others follow
    /// `route`.
    #[serde(default)]
    pub line_routes: Vec<LineRouteDecision>,
}

/// One line a rule's `route_lines` took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRouteDecision {
    pub line_id: String,
    pub sku: Option<String>,
    pub route: String,
}

impl Decisions {
    pub fn of(stored: &StoredOrder) -> Self {
        let o = &stored.order;
        Decisions {
            tags: o.tags.clone(),
            route: o.route.clone(),
            hold: o.hold.clone(),
            priority: o.priority,
            line_routes: stored
                .line_routes
                .iter()
                .map(|l| LineRouteDecision {
                    line_id: l.line_id.clone(),
                    sku: o
                        .lines
                        .iter()
                        .find(|x| x.line_id == l.line_id)
                        .and_then(|x| x.sku.clone()),
                    route: l.route.clone(),
                })
                .collect(),
        }
    }
}

/// Where a line goes by `d`: its line route, else the order's route.
fn line_goes<'a>(d: &'a Decisions, line_id: &str) -> Option<&'a str> {
    let routed = d.line_routes.iter().find(|l| l.line_id == line_id);
    routed.map_or(d.route.as_deref(), |l| Some(l.route.as_str()))
}

/// One order whose decisions a rules run changes (the `rules apply --json`
/// element).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleChange {
    pub id: String,
    pub before: Decisions,
    pub after: Decisions,
    /// Lines the new decisions send elsewhere than the delivery that
    /// already carries them: they stay with it and are not delivered again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<KeptLine>,
}

/// A line that stays with the destination it was queued for or delivered
/// to, although the rules now send it elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptLine {
    pub line_id: String,
    pub sku: Option<String>,
    /// Where its delivery went, and where the rules now send it.
    pub destination: String,
    pub now_to: Option<String>,
    pub delivery_id: String,
    /// Whether the destination took it already (false: still queued).
    pub delivered: bool,
}

impl RuleChange {
    /// The change from `stored` to `next` (the same order re-decided), or
    /// None when the decisions are the same.
    pub fn between(stored: &StoredOrder, next: &StoredOrder) -> Option<RuleChange> {
        let (before, after) = (Decisions::of(stored), Decisions::of(next));
        if before == after {
            return None;
        }
        // An order delivered before orders were split has no parts: its one
        // delivery carried every line.
        let whole: Vec<DeliveryPart> = match stored.delivered_whole() {
            Some(d) => vec![DeliveryPart {
                destination: d.destination.clone(),
                delivery_id: d.delivery_id.clone(),
                lines: stored
                    .order
                    .lines
                    .iter()
                    .map(|l| l.line_id.clone())
                    .collect(),
                index: 1,
                of: 1,
                delivered_at: Some(d.at),
            }],
            None => Vec::new(),
        };
        let kept = stored
            .parts
            .iter()
            .chain(&whole)
            .flat_map(|p| p.lines.iter().map(move |l| (p, l)))
            .filter_map(|(p, line_id)| {
                let now_to = next.line_destination(line_id);
                let moves = now_to != stored.line_destination(line_id);
                (moves && now_to != Some(p.destination.as_str())).then(|| KeptLine {
                    line_id: line_id.clone(),
                    sku: next
                        .order
                        .lines
                        .iter()
                        .find(|l| &l.line_id == line_id)
                        .and_then(|l| l.sku.clone()),
                    destination: p.destination.clone(),
                    now_to: now_to.map(str::to_owned),
                    delivery_id: p.delivery_id.clone(),
                    delivered: p.delivered_at.is_some(),
                })
            })
            .collect();
        Some(RuleChange {
            id: stored.order.id.clone(),
            before,
            after,
            kept,
        })
    }

    /// `+tag a; -tag b; route x -> y; line 2 (CUP-1) x -> z; hold none -> why;
    /// priority normal -> high`.
    pub fn describe(&self) -> String {
        let (before, after) = (&self.before, &self.after);
        let mut parts = Vec::new();
        for t in after.tags.iter().filter(|t| !before.tags.contains(t)) {
            parts.push(format!("+tag {t}"));
        }
        for t in before.tags.iter().filter(|t| !after.tags.contains(t)) {
            parts.push(format!("-tag {t}"));
        }
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        if before.route != after.route {
            parts.push(format!(
                "route {} -> {}",
                show(&before.route),
                show(&after.route)
            ));
        }
        // Lines that follow the order's route move with it (said above);
        // a line a `route_lines` takes or lets go is named.
        let mut lines: Vec<(&str, Option<&str>)> = Vec::new();
        for l in before.line_routes.iter().chain(&after.line_routes) {
            if !lines.iter().any(|(id, _)| *id == l.line_id) {
                lines.push((&l.line_id, l.sku.as_deref()));
            }
        }
        for (id, sku) in lines {
            let (was, now) = (line_goes(before, id), line_goes(after, id));
            if was != now {
                parts.push(format!(
                    "line {id} ({}) {} -> {}",
                    sku.unwrap_or("no sku"),
                    was.unwrap_or("none"),
                    now.unwrap_or("none")
                ));
            }
        }
        if before.hold != after.hold {
            parts.push(format!(
                "hold {} -> {}",
                show(&before.hold),
                show(&after.hold)
            ));
        }
        if before.priority != after.priority {
            parts.push(
                format!("priority {:?} -> {:?}", before.priority, after.priority).to_lowercase(),
            );
        }
        // Per delivery: the lines it carries that the rules now send
        // elsewhere stay with it.
        let mut by_delivery: Vec<(&KeptLine, Vec<String>)> = Vec::new();
        for k in &self.kept {
            let name = format!(
                "line {} ({})",
                k.line_id,
                k.sku.as_deref().unwrap_or("no sku")
            );
            match by_delivery
                .iter_mut()
                .find(|(d, _)| d.delivery_id == k.delivery_id)
            {
                Some((_, names)) => names.push(name),
                None => by_delivery.push((k, vec![name])),
            }
        }
        for (k, names) in by_delivery {
            parts.push(format!(
                "{} already {} {} (delivery {}): not delivered again",
                names.join(", "),
                if k.delivered {
                    "delivered to"
                } else {
                    "queued for"
                },
                k.destination,
                k.delivery_id
            ));
        }
        parts.join("; ")
    }
}

/// Re-runs `rules` over every stored open order (oldest first per status); unless `dry_run`, writes
/// the changed ones (all in one transaction, queueing the deliveries that a
/// new route or a lifted hold makes due). `seq` is 0 when nothing was written.
pub fn apply_rules(
    store: &Store,
    outbound: &Outbound,
    rules: &RuleSet,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Written<Vec<RuleChange>>, OpError> {
    let mut changes = Vec::new();
    let mut writes: Vec<(StoredOrder, StoredOrder)> = Vec::new();
    // Open orders only, each status read through its index: what is
    // shipped or cancelled is never read.
    // A page at a time: only the orders that change are kept.
    for status in OrderStatus::ALL.into_iter().filter(|s| s.is_open()) {
        let filter = OrderFilter {
            status: Some(status),
            ..OrderFilter::default()
        };
        store.for_each_order(&filter, |stored| {
            let next = redecide(stored.clone(), rules, now);
            if let Some(change) = RuleChange::between(&stored, &next) {
                changes.push(change);
                writes.push((stored, next));
            }
            Ok(())
        })?;
    }
    if dry_run || writes.is_empty() {
        return Ok(Written {
            value: changes,
            seq: 0,
        });
    }
    let mut batch = WriteBatch::new(now);
    for ((stored, mut next), change) in writes.into_iter().zip(&changes) {
        let plan = crate::effects::deliveries::plan_local(store, &mut next, now)?;
        batch.dedupe.extend(plan.dedupe);
        batch.orders.push(OrderWrite::Local {
            expected_revision: stored.revision,
            order: next,
            kind: "rules_apply".into(),
            detail: change.describe(),
            outbox: plan.outbox,
        });
    }
    let queued: BTreeSet<String> = batch
        .orders
        .iter()
        .flat_map(|w| match w {
            OrderWrite::Local { outbox, .. } | OrderWrite::FromChannel { outbox, .. } => {
                crate::outbox::Wakers::accounts_of(outbox)
            }
        })
        .collect();
    let report = store.apply(batch).map_err(|e| match e {
        StoreError::Conflict { id } => OpError::Conflict(format!(
            "order {id} changed while the rules were applied; nothing was written, run it again"
        )),
        e => e.into(),
    })?;
    outbound.outbox.wakers.wake_accounts(&queued);
    Ok(Written {
        value: changes,
        seq: report.seq,
    })
}

// --- input ------------------------------------------------------------------------

/// A point in time as a person gives it: RFC 3339 (`2026-11-01T08:00:00Z`,
/// `2026-11-01T08:00:00+02:00`), or a date (`2026-11-01`), which means
/// midnight UTC at its start.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.to_utc());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "{text:?} is neither a date (2026-11-01, midnight UTC) nor an RFC 3339 time \
         (2026-11-01T08:00:00Z)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_date_at_midnight_utc_or_an_rfc3339_time() {
        let day = parse_since("2026-11-01").unwrap();
        assert_eq!(day.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        let time = parse_since("2026-11-01T08:00:00+02:00").unwrap();
        assert_eq!(time.to_rfc3339(), "2026-11-01T06:00:00+00:00");
        assert!(parse_since("2026-13-01").is_err());
        assert!(parse_since("yesterday").is_err());
    }
}
