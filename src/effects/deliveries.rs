//! Delivery of routed orders to destinations, through the outbox (what a
//! destination receives: `docs/http-api.md`).
//!
//! An order is deliverable when it has a route, no hold, and is `ready` or
//! `partially_shipped` (`pending` orders are not to be shipped yet;
//! cancelled and shipped ones have nothing left to do). It is delivered
//! once: the first time a write makes it deliverable, a `deliver` item is
//! queued in the same transaction, with a marker (`outbound/delivery/<id>`
//! in the store's dedupe keys) that keeps later changes, re-routes included,
//! from delivering it again. A person asks for a new delivery with
//! [`redeliver`] (`orders redeliver`): the order is split again by where
//! its owed lines go now, the new parts replace the old ones (a queued old
//! part is then skipped as superseded), and each destination that took an
//! old part is sent a `withdraw` notice naming it, so a line that moved is
//! not shipped twice.
//!
//! An order whose lines still owing units go to several destinations (a
//! rule's `route_lines`) is split: one `deliver` item per destination, all
//! queued in the same write, each carrying only its lines and
//! `"part": { "index", "of" }`, each with its own delivery id. The parts
//! are recorded on the stored order with their lines: from then on a line
//! belongs to its part's destination (its shipments come from there, and a
//! later rule that sends it elsewhere does not deliver it again). A hold
//! holds every part and a release sends every part, since both act on the
//! order; a hold or cancellation after delivery tells every destination
//! that took a part.
//!
//! An order that owes no units (its open units all refunded) is not
//! deliverable. The body is the canonical order JSON **as of routing time**
//! with only the lines that still owe units, stored in the item: every retry
//! of a delivery sends the same bytes under the same
//! `X-Switchyard-Delivery` id, so a destination that deduplicates by id never
//! drops a different body, and the signature of a retry is the same. Later
//! changes of the order are not re-sent by this path.
//!
//! A delivery leaves only once the write that queued it is on disk (the
//! outbox worker waits for it), and its id is derived, not random
//! ([`delivery_id`]): should the same delivery ever be queued twice from
//! the same state of the order (a write lost with the disk, a store rebuilt
//! by ingesting the same orders again), it has the same id both times, and
//! a destination that deduplicates by id ships it once. A `redeliver`, or a
//! delivery after the order changed, has a new id.
//!
//! Whether to send
//! at all is decided at send time: a queued delivery of an order that was
//! cancelled, shipped or refunded in full meanwhile is skipped (not sent,
//! noted in the order's history, not a dead letter), and one
//! that was put on hold waits for the release.
//!
//! The POST carries `X-Switchyard-Signature` (base64 HMAC-SHA256 of the raw
//! body with the destination's secret) and `X-Switchyard-Delivery`; 2xx
//! counts as delivered, 429/5xx/timeouts are retried, other answers (wrong
//! secret, refused body) become dead letters.
//!
//! Paths that release or re-route an order by hand (`orders release`, rules
//! apply, the admin API) call [`plan_local`] for their write; the daemon
//! also sweeps for deliverable orders without a delivery once at start
//! ([`queue_ready_orders`]), which catches releases made while it was down.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use switchyard_contract::error::parse_retry_after;
use switchyard_contract::{ConnectorError, Operation, Order, OrderStatus, Secret};

use super::Outbound;
use super::forever;
use super::notes::{Also, Note, NoteWriter};
use crate::config::{DestinationConfig, DestinationKind};
use crate::metrics::{self, DestinationLabel, Metrics};
use crate::outbox::{Delivery, Job, JobKind, Sender, Verdict, Wakers, destination_account};
use crate::pacing::{AccountPacer, AdaptiveRate};
use crate::store::{
    DeliveredTo, DeliveryPart, NewOutboxItem, OrderWrite, OutboxItem, Store, StoreError,
    StoredOrder, WriteBatch,
};

pub const SIGNATURE_HEADER: &str = "X-Switchyard-Signature";
pub const DELIVERY_HEADER: &str = "X-Switchyard-Delivery";

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 keyed with `secret`.
#[expect(
    clippy::expect_used,
    reason = "HMAC takes keys of any length: new_from_slice cannot fail"
)]
fn mac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// base64 of HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a signature in constant time (what a destination does).
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The destination an order is to be delivered to, if it is deliverable now.
/// An order that owes no units (every open unit refunded, or only lines that
/// need no shipping) gives a warehouse nothing to do, nor does one the
/// marketplace ships from its own stock (Amazon FBA).
pub fn deliverable(order: &Order) -> Option<&str> {
    if order.open_units() == 0 || order.channel_fulfilled() {
        return None;
    }
    match (&order.route, &order.hold, order.status) {
        (Some(route), None, OrderStatus::Ready | OrderStatus::PartiallyShipped) => Some(route),
        _ => None,
    }
}

fn marker(order_id: &str) -> String {
    format!("outbound/delivery/{order_id}")
}

/// The id of one delivery (`dlv_` and 24 hex digits), derived from what
/// makes it that delivery: the order, the revision of the order written
/// with it (the order's state when it was queued: every write of an order
/// makes a new revision), the destination, and which part of the order it
/// is (its number, how many, its lines). Not random: the same delivery
/// queued again from the same state — the channel resending an order whose
/// write a crash took back before it reached the disk, or the same ingest
/// into a store rebuilt from the same state — gets the same id, so the
/// destination can recognise it. A delivery queued by another write (a
/// person's `redeliver`, a release or re-route after the order changed)
/// gets another.
pub fn delivery_id(
    order_id: &str,
    revision: u64,
    destination: &str,
    (index, of): (u32, u32),
    lines: &[String],
) -> String {
    let mut h = Sha256::new();
    // Every field with its length first, so that no two different sets of
    // fields feed the hash the same bytes.
    let mut field = |b: &[u8]| {
        h.update(u64::try_from(b.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(b);
    };
    field(b"switchyard delivery 1");
    field(order_id.as_bytes());
    field(&revision.to_be_bytes());
    field(destination.as_bytes());
    field(&index.to_be_bytes());
    field(&of.to_be_bytes());
    for line in lines {
        field(line.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("dlv_{hex}")
}

/// What a destination is sent of a whole order: the canonical order with
/// only the lines that still owe units (`quantity − refunded_quantity −
/// shipped_quantity`), each as stored, so a warehouse ships exactly that and
/// never a refunded unit.
fn delivery_body(order: &Order) -> Order {
    let mut body = order.clone();
    body.lines.retain(|l| l.open_quantity() > 0);
    body
}

/// The `deliver` item for a whole order to `destination`, with the body
/// frozen now, for the write that stores the order at `revision`.
pub fn delivery_item(
    order: &Order,
    revision: u64,
    destination: &str,
    now: DateTime<Utc>,
) -> NewOutboxItem {
    let lines: Vec<String> = order.lines.iter().map(|l| l.line_id.clone()).collect();
    let id = delivery_id(&order.id, revision, destination, (1, 1), &lines);
    part_item(order, destination, id, None, now)
}

/// The `deliver` item for an order to `destination`, with the body frozen
/// now: the whole order, or (`part` of a split order) only the lines that
/// part carries and `"part": { "index", "of" }`.
#[expect(
    clippy::expect_used,
    reason = "an order is plain data: serializing it cannot fail"
)]
fn part_item(
    order: &Order,
    destination: &str,
    delivery_id: String,
    part: Option<&DeliveryPart>,
    now: DateTime<Utc>,
) -> NewOutboxItem {
    let body = match part {
        Some(p) if p.of > 1 => {
            let mut only = order.clone();
            only.lines.retain(|l| p.lines.contains(&l.line_id));
            let mut v = serde_json::to_value(&only).expect("orders always serialize");
            v["part"] = serde_json::json!({ "index": p.index, "of": p.of });
            v.to_string()
        }
        _ => serde_json::to_string(&delivery_body(order)).expect("orders always serialize"),
    };
    NewOutboxItem {
        account: destination_account(destination),
        job: Job::Deliver(Delivery {
            order_id: order.id.clone(),
            destination: destination.to_owned(),
            delivery_id,
            body,
        }),
        coalesce_key: None,
        not_before: now,
    }
}

/// Which destination a line belongs to: the one whose delivery carries it
/// (the one it was delivered to before orders were split, for those), else
/// where the rules send it now.
pub fn line_owner<'a>(stored: &'a StoredOrder, line_id: &str) -> Option<&'a str> {
    if let Some(p) = stored
        .parts
        .iter()
        .find(|p| p.lines.iter().any(|l| l == line_id))
    {
        return Some(&p.destination);
    }
    match stored.delivered_whole() {
        Some(d) => Some(&d.destination),
        None => stored.line_destination(line_id),
    }
}

/// The destinations the lines of `stored` that still owe units go to now,
/// each with those lines, in the order of their first line.
fn split(stored: &StoredOrder) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for line in stored.order.lines.iter().filter(|l| l.open_quantity() > 0) {
        let Some(dest) = stored.line_destination(&line.line_id) else {
            continue;
        };
        match groups.iter_mut().find(|(d, _)| d == dest) {
            Some((_, lines)) => lines.push(line.line_id.clone()),
            None => groups.push((dest.to_owned(), vec![line.line_id.clone()])),
        }
    }
    groups
}

/// The deliveries a deliverable order routed to `route` is split into now:
/// each destination with the ids of the lines it gets (one group of every
/// line when they all go one way).
pub fn part_groups(stored: &StoredOrder, route: &str) -> Vec<(String, Vec<String>)> {
    let mut groups = split(stored);
    if groups.len() < 2 {
        let dest = groups.pop().map_or_else(|| route.to_owned(), |(d, _)| d);
        let all = stored.order.lines.iter().map(|l| l.line_id.clone());
        groups = vec![(dest, all.collect())];
    }
    groups
}

/// Splits a deliverable order into its deliveries now, one per destination
/// its owed lines go to, records them on `stored` (replacing earlier ones)
/// and returns their items. An order whose lines all go one way is one
/// delivery of the whole order, to that destination.
fn queue_parts(stored: &mut StoredOrder, route: &str, now: DateTime<Utc>) -> Vec<NewOutboxItem> {
    let groups = part_groups(stored, route);
    let of = u32::try_from(groups.len()).unwrap_or(u32::MAX);
    // The revision the write queueing these parts stores the order at.
    let revision = stored.revision + 1;
    stored.parts = groups
        .into_iter()
        .zip(1..)
        .map(|((destination, lines), index)| DeliveryPart {
            delivery_id: delivery_id(
                &stored.order.id,
                revision,
                &destination,
                (index, of),
                &lines,
            ),
            destination,
            lines,
            index,
            of,
            delivered_at: None,
        })
        .collect();
    stored
        .parts
        .iter()
        .map(|p| {
            let part = (p.of > 1).then_some(p);
            part_item(
                &stored.order,
                &p.destination,
                p.delivery_id.clone(),
                part,
                now,
            )
        })
        .collect()
}

/// What the history says about queued parts: `east-wh (delivery dlv_1)`,
/// or for a split order `2 parts: east-wh (delivery dlv_1: MUG-RED x2),
/// west-3pl (delivery dlv_2: CUP-1 x3)`.
pub fn describe_parts(stored: &StoredOrder) -> String {
    let one = |p: &DeliveryPart| {
        if p.of < 2 {
            return format!("{} (delivery {})", p.destination, p.delivery_id);
        }
        let lines: Vec<String> = p
            .lines
            .iter()
            .filter_map(|id| stored.order.lines.iter().find(|l| &l.line_id == id))
            .map(|l| {
                format!(
                    "{} x{}",
                    l.sku.as_deref().unwrap_or(&l.line_id),
                    l.open_quantity()
                )
            })
            .collect();
        format!(
            "{} (delivery {}: {})",
            p.destination,
            p.delivery_id,
            lines.join(", ")
        )
    };
    let all: Vec<String> = stored.parts.iter().map(one).collect();
    match stored.parts.len() {
        0 | 1 => all.join(""),
        n => format!("{n} parts: {}", all.join(", ")),
    }
}

/// The deliveries of an order that destinations took: what a later hold or
/// cancellation tells them (each its own notice).
pub fn delivered_parts(
    parts: &[DeliveryPart],
    delivered: Option<&DeliveredTo>,
) -> Vec<DeliveredTo> {
    if parts.is_empty() {
        // Delivered before orders were split.
        return delivered.into_iter().cloned().collect();
    }
    parts
        .iter()
        .filter_map(|p| {
            p.delivered_at.map(|at| DeliveredTo {
                destination: p.destination.clone(),
                delivery_id: p.delivery_id.clone(),
                at,
            })
        })
        .collect()
}

/// Delivery items and the marker (dedupe key, expiry) that records them.
pub type Planned = (Vec<NewOutboxItem>, (String, DateTime<Utc>));

/// The deliveries that writing `order` causes, if any: it is deliverable
/// and was never delivered. Records the parts on `order`; the caller must
/// write it in the same batch (the marker goes in `batch.dedupe`, the items
/// with the order).
pub fn plan(
    store: &Store,
    order: &mut StoredOrder,
    now: DateTime<Utc>,
) -> Result<Option<Planned>, StoreError> {
    let Some(route) = deliverable(&order.order).map(str::to_owned) else {
        return Ok(None);
    };
    let key = marker(&order.order.id);
    if store.dedupe_seen(&key, now)? {
        return Ok(None);
    }
    Ok(Some((queue_parts(order, &route, now), (key, forever()))))
}

/// What a local write (release, rules apply, manual re-route) must add to its
/// batch so the order is delivered if the write makes it deliverable.
#[derive(Debug, Default)]
pub struct LocalPlan {
    /// Put these in the `OrderWrite::Local` outbox.
    pub outbox: Vec<NewOutboxItem>,
    /// Put these in `WriteBatch::dedupe`.
    pub dedupe: Vec<(String, DateTime<Utc>)>,
}

/// For a local write of `after` (the order as it will be stored; the parts
/// queued are recorded on it).
pub fn plan_local(
    store: &Store,
    after: &mut StoredOrder,
    now: DateTime<Utc>,
) -> Result<LocalPlan, StoreError> {
    Ok(match plan(store, after, now)? {
        Some((items, marker)) => LocalPlan {
            outbox: items,
            dedupe: vec![marker],
        },
        None => LocalPlan::default(),
    })
}

/// Queues deliveries of every deliverable order that has none (orders
/// released while the daemon was down). Each is a local write with a history
/// entry. Reads the routed open orders a page at a time
/// (`Store::routed_open_orders`, through the status index), so it costs
/// what is open, not what is stored. Returns how many were queued.
pub fn queue_ready_orders(
    store: &Store,
    outbound: &Outbound,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    let mut after = None;
    loop {
        let page = store.routed_open_orders(after.as_deref(), 500)?;
        for stored in &page.orders {
            let id = &stored.order.id;
            if deliverable(&stored.order).is_some()
                && !store.dedupe_seen(&marker(id), now)?
                && queue_one(store, outbound, id, false, now)?.is_some()
            {
                queued += 1;
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(queued),
        }
    }
}

/// Delivers an order again on a person's request (even if it was delivered
/// before), to where its owed lines go now: new parts replace the old ones,
/// and each destination that took an old part is sent a `withdraw` notice
/// for it. Returns the order as written (its new `parts`), or None when the
/// order is not deliverable now (no route, held, not open, nothing owed).
pub fn redeliver(
    store: &Store,
    outbound: &Outbound,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<StoredOrder>, StoreError> {
    queue_one(store, outbound, order_id, true, now)
}

/// Whether `delivery_id` is no longer one of the order's deliveries: a
/// redelivery replaced it.
fn superseded(o: &StoredOrder, delivery_id: &str) -> bool {
    !o.parts.is_empty() && !o.parts.iter().any(|p| p.delivery_id == delivery_id)
}

/// The `withdraw` notices of a redelivery: one to each destination that
/// took an earlier delivery of the order, naming it, with the history words.
fn withdrawals(before: &StoredOrder, after: &StoredOrder, now: DateTime<Utc>) -> Also {
    let mut items = Vec::new();
    let mut words = String::new();
    for old in delivered_parts(&before.parts, before.delivered.as_ref()) {
        let reason = format!("replaced by a redelivery: {}", describe_parts(after));
        items.push(notice_item(
            &before.order.id,
            &old,
            "withdraw",
            &reason,
            now,
        ));
        words.push_str(&format!(
            "; {} took delivery {} before: withdraw notice queued",
            old.destination, old.delivery_id
        ));
    }
    (items, words)
}

fn queue_one(
    store: &Store,
    outbound: &Outbound,
    id: &str,
    again: bool,
    now: DateTime<Utc>,
) -> Result<Option<StoredOrder>, StoreError> {
    for _ in 0..8 {
        let Some(stored) = store.get_order(id)? else {
            return Err(StoreError::NotFound {
                what: "order",
                id: id.to_owned(),
            });
        };
        let Some(route) = deliverable(&stored.order).map(str::to_owned) else {
            return Ok(None);
        };
        let key = marker(id);
        if !again && store.dedupe_seen(&key, now)? {
            return Ok(None);
        }
        let mut next = stored.clone();
        let delivered = queue_parts(&mut next, &route, now);
        // A destination hears of one order in the order it was queued: the
        // withdrawal of an old delivery before the new one.
        let (mut items, withdrawn) = if again {
            withdrawals(&stored, &next, now)
        } else {
            Also::default()
        };
        items.extend(delivered);
        let verb = if again {
            "delivering again to"
        } else {
            "queued for"
        };
        let accounts = Wakers::accounts_of(&items);
        let mut batch = WriteBatch::new(now);
        batch.dedupe.push((key, forever()));
        batch.orders.push(OrderWrite::Local {
            expected_revision: stored.revision,
            kind: "delivery".to_owned(),
            detail: format!("{verb} {}{withdrawn}", describe_parts(&next)),
            outbox: items,
            order: next.clone(),
        });
        match store.apply(batch) {
            Ok(_) => {
                outbound.outbox.wakers.wake_accounts(&accounts);
                return Ok(Some(next));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict { id: id.to_owned() })
}

/// POSTs `deliver` items to one webhook destination, up to its
/// `concurrency` at once, at its `rate`, which halves when the destination
/// answers 429 or 503 and grows back while deliveries go through
/// ([`AdaptiveRate`]); a `Retry-After` holds it for that long.
pub struct DestinationSender {
    id: String,
    url: String,
    secret: Secret,
    http: reqwest::Client,
    /// The destination's one budget: its `rate`, as adapted.
    pacer: Arc<AccountPacer>,
    rate: Arc<AdaptiveRate>,
    concurrency: usize,
    /// Read at send time: a queued delivery of an order that was cancelled,
    /// shipped or held since is not sent.
    store: Store,
    /// Where the time from an order's creation to its delivery goes.
    metrics: Metrics,
    /// Writes what the sent items note on their orders.
    notes: NoteWriter,
}

impl DestinationSender {
    pub fn new(
        d: &DestinationConfig,
        http: reqwest::Client,
        store: Store,
        metrics: Metrics,
    ) -> Self {
        let DestinationKind::Webhook { url, secret } = &d.kind;
        let rate = AdaptiveRate::new(d.pace.rate);
        metrics
            .destination_rate
            .get_or_create(&DestinationLabel {
                destination: d.id.clone(),
            })
            .set(d.pace.rate);
        DestinationSender {
            id: d.id.clone(),
            url: url.clone(),
            secret: secret.clone(),
            http,
            pacer: AccountPacer::adaptive(destination_account(&d.id), rate.clone()),
            rate,
            concurrency: usize::try_from(d.pace.concurrency).unwrap_or(1).max(1),
            notes: NoteWriter::start(&d.id),
            store,
            metrics,
        }
    }

    /// Shows the destination's rate now in `/metrics`.
    fn show_rate(&self) {
        let label = DestinationLabel {
            destination: self.id.clone(),
        };
        self.metrics
            .destination_rate
            .get_or_create(&label)
            .set(self.rate.current());
    }
}

/// Deliveries and notices spend the destination's one budget under this
/// operation class (the class is a channel's notion; a destination has one
/// limit).
const PACED_AS: Operation = Operation::PushTracking;

/// How long one delivery may take before it counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a delivery of an order put on hold after it was queued waits
/// before it looks at the order again (the worker backs off further).
const HELD_RECHECK: Duration = Duration::from_secs(60);

impl Sender for DestinationSender {
    fn pacing(&self, _kind: JobKind) -> (&AccountPacer, Operation) {
        (&self.pacer, PACED_AS)
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// A destination hears about one order in the order things happened
    /// to it: a hold or cancel notice never overtakes a delivery.
    fn sequence_key(&self, item: &OutboxItem) -> Option<String> {
        item.job.order_id().map(str::to_owned)
    }

    fn worker_takes_pace(&self) -> bool {
        true
    }

    fn call_timeout(&self) -> Duration {
        DELIVERY_TIMEOUT
    }

    async fn send(&self, item: &OutboxItem) -> Verdict {
        match &item.job {
            Job::Deliver(p) => self.deliver(&item.id, p).await,
            Job::Notice(n) => self.notify(&item.id, n).await,
            other => Verdict::Dead(format!(
                "a {} job was queued for destination {}; destinations take deliveries and notices",
                other.kind(),
                self.id
            )),
        }
    }
}

/// What a destination is told when an order it has was put on hold or
/// cancelled: the body of a notice.
pub const NOTICE_HEADER: &str = "X-Switchyard-Notice";

/// Whether every line of `part` is shipped or refunded in `order`.
fn nothing_owed(order: &Order, part: &DeliveryPart) -> bool {
    order
        .lines
        .iter()
        .filter(|l| part.lines.contains(&l.line_id))
        .all(|l| l.open_quantity() == 0)
}

/// A hold by hand or a cancellation that came while the delivery was on its
/// way found nothing delivered to tell the destination about: it is told
/// now, after the delivery, in the write that records it.
fn after_delivery(o: &StoredOrder, delivered: &crate::store::DeliveredTo) -> Also {
    let id = &o.order.id;
    let (notice, reason) = if o.order.status == OrderStatus::Cancelled {
        ("cancel", "cancelled on the channel")
    } else if let Some(reason) = &o.manual_hold {
        ("hold", reason.as_str())
    } else {
        return Also::default();
    };
    let item = notice_item(id, delivered, notice, reason, delivered.at);
    let more = format!("; {notice} came while it was on its way: {notice} notice queued");
    (vec![item], more)
}

/// The `notice` item telling `delivered.destination` that order `order_id`
/// was put on hold (`"hold"`), cancelled (`"cancel"`), or delivered again
/// in a new delivery that replaces this one (`"withdraw"`).
pub fn notice_item(
    order_id: &str,
    delivered: &crate::store::DeliveredTo,
    notice: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> NewOutboxItem {
    NewOutboxItem {
        account: destination_account(&delivered.destination),
        job: Job::Notice(crate::outbox::Notice {
            notice: notice.to_owned(),
            order_id: order_id.to_owned(),
            destination: delivered.destination.clone(),
            delivery_id: delivered.delivery_id.clone(),
            reason: reason.to_owned(),
            at: now,
        }),
        coalesce_key: None,
        not_before: now,
    }
}

impl DestinationSender {
    async fn deliver(&self, item: &str, p: &Delivery) -> Verdict {
        // The item was queued when the order became deliverable, but it may
        // wait (a destination that is down, backoff, a restart) while the
        // order changes. A warehouse must not ship an order that was
        // cancelled (or already shipped) meanwhile, nor one a person put on
        // hold: check the order as it is now. The body stays the one frozen
        // at routing time.
        let stored = match self.store.get_order(&p.order_id) {
            Ok(stored) => stored,
            Err(e) => return Verdict::Failed(ConnectorError::Transient(format!("store: {e}"))),
        };
        let (placed_at, part_of) = match &stored {
            Some(stored) => {
                let o = &stored.order;
                // Nothing left for a warehouse to do: not a failure, and not
                // a dead letter for a person to look at. The order's history
                // says so (the delivery marker keeps ingest from queueing
                // another; `orders release` or a re-route can).
                let part = stored.parts.iter().find(|x| x.delivery_id == p.delivery_id);
                let why = if superseded(stored, &p.delivery_id) {
                    Some(format!(
                        "delivery {} to {} not sent: a redelivery replaced it ({})",
                        p.delivery_id,
                        self.id,
                        describe_parts(stored)
                    ))
                } else if matches!(o.status, OrderStatus::Cancelled | OrderStatus::Shipped) {
                    Some(format!(
                        "delivery {} to {} not sent: the order is {} since it was queued",
                        p.delivery_id, self.id, o.status
                    ))
                } else if o.open_units() == 0 {
                    Some(format!(
                        "delivery {} to {} not sent: the order owes no units since it was queued (the rest was refunded)",
                        p.delivery_id, self.id
                    ))
                } else {
                    // One part of a split order: its own lines were shipped
                    // or refunded meanwhile, whatever the others do.
                    part.filter(|x| x.of > 1 && nothing_owed(o, x)).map(|part| {
                        format!(
                            "delivery {} to {} (part {} of {}) not sent: its lines were shipped or refunded since it was queued",
                            p.delivery_id, self.id, part.index, part.of
                        )
                    })
                };
                if let Some(why) = why {
                    let noted = Note {
                        order_id: p.order_id.clone(),
                        item: item.to_owned(),
                        kind: "delivery_skipped",
                        detail: why.clone(),
                        read: None,
                        edit: Box::new(|_| Also::default()),
                    };
                    if let Err(e) = self.notes.write(&self.store, noted).await {
                        return Verdict::Failed(ConnectorError::Transient(format!("store: {e}")));
                    }
                    return Verdict::Noted { skipped: Some(why) };
                }
                if let Some(hold) = &o.hold {
                    return Verdict::Again {
                        after: HELD_RECHECK,
                        note: format!(
                            "order {} was put on hold before its delivery went out ({hold}); sent once released",
                            p.order_id
                        ),
                    };
                }
                let part_of = part.filter(|x| x.of > 1).map(|x| (x.index, x.of));
                (Some(o.placed_at), part_of)
            }
            // Orders are never removed; if one is missing, deliver as queued.
            None => (None, None),
        };
        let verdict = self.post(p.body.clone(), &p.delivery_id, None).await;
        if matches!(verdict, Verdict::Done(_)) {
            tracing::info!(destination = %self.id, order = %p.order_id, delivery = %p.delivery_id, "order delivered");
            if let Some(placed) = placed_at {
                let waited = (Utc::now() - placed).to_std().unwrap_or_default();
                let label = DestinationLabel {
                    destination: self.id.clone(),
                };
                self.metrics
                    .order_to_delivery
                    .get_or_create(&label)
                    .observe(metrics::seconds(waited));
            }
            let delivered = crate::store::DeliveredTo {
                destination: self.id.clone(),
                delivery_id: p.delivery_id.clone(),
                at: Utc::now(),
            };
            let detail = format!(
                "delivered to {} (delivery {}{})",
                self.id,
                p.delivery_id,
                part_of.map_or_else(String::new, |(i, of)| format!(", part {i} of {of}"))
            );
            let (order_id, delivery_id) = (p.order_id.clone(), p.delivery_id.clone());
            let edit = move |o: &mut StoredOrder| {
                if superseded(o, &delivery_id) {
                    // Redelivered while this one was on its way: what it
                    // carried is withdrawn like any earlier delivery.
                    let reason = format!("replaced by a redelivery: {}", describe_parts(o));
                    let item =
                        notice_item(&order_id, &delivered, "withdraw", &reason, delivered.at);
                    let more = "; a redelivery replaced it while it was on its way: withdraw notice queued";
                    return (vec![item], more.to_owned());
                }
                o.delivered = Some(delivered.clone());
                if let Some(part) = o.parts.iter_mut().find(|x| x.delivery_id == delivery_id) {
                    part.delivered_at = Some(delivered.at);
                }
                after_delivery(o, &delivered)
            };
            let noted = Note {
                order_id: p.order_id.clone(),
                item: item.to_owned(),
                kind: "delivered",
                detail,
                read: stored,
                edit: Box::new(edit),
            };
            // Delivered is delivered: a failure to note it is logged, not
            // retried (a retry would deliver again); the worker completes
            // the item on its own.
            if let Err(e) = self.notes.write(&self.store, noted).await {
                tracing::warn!(order = %p.order_id, error = %e, "the delivery went out but could not be noted in the order's history");
                return verdict;
            }
            return Verdict::Noted { skipped: None };
        }
        verdict
    }

    async fn notify(&self, item: &str, n: &crate::outbox::Notice) -> Verdict {
        let body = serde_json::json!({
            "notice": n.notice,
            "order_id": n.order_id,
            "reason": n.reason,
            "delivery_id": n.delivery_id,
            "at": n.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .to_string();
        let verdict = self.post(body, &n.delivery_id, Some(&n.notice)).await;
        if matches!(verdict, Verdict::Done(_)) {
            let detail = format!(
                "{} notice sent to {} about delivery {} ({})",
                n.notice, self.id, n.delivery_id, n.reason
            );
            let noted = Note {
                order_id: n.order_id.clone(),
                item: item.to_owned(),
                kind: "notice",
                detail,
                read: None,
                edit: Box::new(|_| Also::default()),
            };
            if let Err(e) = self.notes.write(&self.store, noted).await {
                tracing::warn!(order = %n.order_id, error = %e, "the notice went out but could not be noted in the order's history");
                return verdict;
            }
            return Verdict::Noted { skipped: None };
        }
        verdict
    }

    /// POSTs a signed body; 2xx is done, anything else a classified
    /// failure. The worker took the call's place in the pacer. 429 and 503
    /// say the destination is overloaded: both slow it down and are retried
    /// after their `Retry-After` (seconds or an HTTP date) when they give one.
    async fn post(&self, body: String, delivery_id: &str, notice: Option<&str>) -> Verdict {
        let started = tokio::time::Instant::now();
        self.rate.started();
        let signature = sign(self.secret.expose().as_bytes(), body.as_bytes());
        let mut request = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, delivery_id);
        if let Some(notice) = notice {
            request = request.header(NOTICE_HEADER, notice);
        }
        let resp = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => return Verdict::Failed(ConnectorError::from_reqwest(&e)),
        };
        let status = resp.status();
        if status.is_success() {
            if self.rate.current() < self.rate.configured() {
                if self.rate.went_through() {
                    tracing::info!(destination = %self.id, rate = self.rate.current(), "destination back at its configured rate");
                }
                self.show_rate();
            }
            return Verdict::Done(None);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, Utc::now()));
        let text = resp.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(300).collect();
        let detail = format!("destination {}: {}", self.id, excerpt.trim());
        let overloaded = matches!(status.as_u16(), 429 | 503);
        if overloaded && let Some(rate) = self.rate.slow_down(started) {
            tracing::warn!(destination = %self.id, status = status.as_u16(), retry_after_ms = retry_after.map(crate::pacing::millis), rate, "destination overloaded: slowing down");
            self.show_rate();
        }
        if status.as_u16() == 503 {
            // Overloaded, not broken: retried like a 429, after its Retry-After.
            return Verdict::Failed(ConnectorError::RateLimited {
                retry_after,
                detail: format!("HTTP 503: {detail}"),
            });
        }
        Verdict::Failed(ConnectorError::from_status(
            status.as_u16(),
            retry_after,
            detail,
        ))
    }
}

/// A `Retry-After` value: whole (or decimal) seconds, or an HTTP date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`), which counts from `now` (a date
/// already past: at once).
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Some(d) = parse_retry_after(value) {
        return Some(d);
    }
    let at = DateTime::parse_from_rfc2822(value.trim()).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let sig = sign(b"s3cret", b"{\"a\":1}");
        assert!(verify(b"s3cret", b"{\"a\":1}", &sig));
        assert!(!verify(b"s3cret", b"{\"a\":2}", &sig));
        assert!(!verify(b"other", b"{\"a\":1}", &sig));
        assert!(!verify(b"s3cret", b"{\"a\":1}", "not base64!"));
        // RFC 4231 test case 2.
        let expected = base64::engine::general_purpose::STANDARD.encode([
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
            0x64, 0xec, 0x38, 0x43,
        ]);
        assert_eq!(sign(b"Jefe", b"what do ya want for nothing?"), expected);
    }

    /// The same delivery has the same id wherever and whenever it is
    /// queued; anything that makes it another delivery changes the id.
    #[test]
    fn a_delivery_id_is_derived_from_what_makes_the_delivery() {
        let lines = ["1-0".to_owned(), "1-1".to_owned()];
        let id = |order: &str, rev: u64, dest: &str, part: (u32, u32), lines: &[String]| {
            delivery_id(order, rev, dest, part, lines)
        };
        let a = id("shop:1", 1, "east-wh", (1, 1), &lines);
        assert!(
            a.len() == 28 && a.starts_with("dlv_") && a[4..].chars().all(|c| c.is_ascii_hexdigit()),
            "{a}"
        );
        assert_eq!(a, id("shop:1", 1, "east-wh", (1, 1), &lines));
        let others = [
            id("shop:2", 1, "east-wh", (1, 1), &lines),
            id("shop:1", 2, "east-wh", (1, 1), &lines),
            id("shop:1", 1, "west-3pl", (1, 1), &lines),
            id("shop:1", 1, "east-wh", (1, 2), &lines),
            id("shop:1", 1, "east-wh", (2, 2), &lines),
            id("shop:1", 1, "east-wh", (1, 1), &lines[..1]),
            // Fields are kept apart: moving bytes from one to the next is
            // another delivery.
            id("shop:1", 1, "east-wh", (1, 1), &["1-01-1".to_owned()]),
        ];
        let mut all: std::collections::HashSet<&String> = others.iter().collect();
        all.insert(&a);
        assert_eq!(all.len(), others.len() + 1, "{a} {others:?}");
    }
    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-10-21T07:27:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 1.5 ", now), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date already past: at once.
        assert_eq!(
            retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }
}
