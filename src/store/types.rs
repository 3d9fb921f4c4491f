//! The plain data that goes into and comes out of the store: stored orders,
//! history, write batches, outbox items and stock levels.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_contract::{Channel, Cursor, NormalizationNote, Order, OrderStatus};

use super::job::{Job, JobKind};

/// What the store keeps per order: the canonical order plus what must stay apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredOrder {
    /// `order.tags` is the union of the three tag sets below (computed by callers).
    pub order: Order,
    pub channel_tags: Vec<String>,
    pub rule_tags: Vec<String>,
    pub manual_tags: Vec<String>,
    /// A hold set by a person; the rules' hold lives in `order.hold`, which
    /// callers keep as the effective hold.
    pub manual_hold: Option<String>,
    pub notes: Vec<NormalizationNote>,
    /// The raw channel payload, for audit. The store keeps it in a tree of
    /// its own: orders read back from the store carry `Null` here (see
    /// `Store::raw_payload`), and a local write leaves the stored payload as
    /// it is.
    #[serde(default, skip_serializing)]
    pub raw: serde_json::Value,
    /// A rule's hold that a person released: the same rule hold does not
    /// come back when the rules run again (a new hold reason does).
    #[serde(default)]
    pub released_hold: Option<String>,
    /// The hold the rules decided last time they ran (whether or not it is
    /// in force), so a release can lift it even under a hand-set hold.
    #[serde(default)]
    pub rule_hold: Option<String>,
    /// The rule whose `hold` gave `rule_hold` (None for orders stored
    /// before it was kept): what `orders list` names as the holder.
    #[serde(default)]
    pub hold_rule: Option<String>,
    /// Where and when the order was delivered last (a destination answered
    /// 2xx): what a later hold or cancellation tells that destination.
    #[serde(default)]
    pub delivered: Option<DeliveredTo>,
    /// Tracking numbers of shipments recorded here (`ship`, the admin API)
    /// that the channel has not shown back yet: a channel version that
    /// predates our tracking push must not erase them.
    #[serde(default)]
    pub local_shipments: Vec<String>,
    /// Lines a rule's `route_lines` sent to a destination, in line order;
    /// every other line follows `order.route`.
    #[serde(default)]
    pub line_routes: Vec<RoutedLine>,
    /// The deliveries the order was queued in, one per destination its
    /// lines went to, and the lines each carries: a line belongs to the
    /// destination of its part from then on, whatever the rules say later.
    /// Empty until the order is first queued (and for orders queued before
    /// orders were split, which have only `delivered`).
    #[serde(default)]
    pub parts: Vec<DeliveryPart>,
    /// Set by the store on every write; 0 for an order not yet stored.
    pub revision: u64,
}

impl StoredOrder {
    /// Equal apart from the revision and the raw payload, which the store
    /// compares itself (orders read back carry none): what "nothing
    /// changed" means to everything the order causes.
    pub fn same_content(&self, other: &StoredOrder) -> bool {
        self.order == other.order
            && self.channel_tags == other.channel_tags
            && self.rule_tags == other.rule_tags
            && self.manual_tags == other.manual_tags
            && self.manual_hold == other.manual_hold
            && self.released_hold == other.released_hold
            && self.rule_hold == other.rule_hold
            && self.hold_rule == other.hold_rule
            && self.local_shipments == other.local_shipments
            && self.delivered == other.delivered
            && self.line_routes == other.line_routes
            && self.parts == other.parts
            && self.notes == other.notes
    }

    /// Where a line goes: its line route, else the order's route.
    pub fn line_destination(&self, line_id: &str) -> Option<&str> {
        self.line_routes
            .iter()
            .find(|l| l.line_id == line_id)
            .map(|l| l.route.as_str())
            .or(self.order.route.as_deref())
    }

    /// The one delivery of an order delivered before orders were split: it
    /// carried every line, and the order has no parts.
    pub fn delivered_whole(&self) -> Option<&DeliveredTo> {
        self.delivered.as_ref().filter(|_| self.parts.is_empty())
    }
}

/// A line that a rule's `route_lines` sent to a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutedLine {
    pub line_id: String,
    pub route: String,
    /// The rule whose `route_lines` took the line.
    pub rule: String,
}

/// One delivery of an order: to one destination, with the lines it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPart {
    pub destination: String,
    pub delivery_id: String,
    /// The ids of the lines this delivery carries.
    pub lines: Vec<String>,
    /// 1-based; `of` is how many parts the order was split into (1: not split).
    pub index: u32,
    pub of: u32,
    /// When the destination took it (answered 2xx); None while queued.
    #[serde(default)]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery a destination took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredTo {
    pub destination: String,
    pub delivery_id: String,
    pub at: DateTime<Utc>,
}

/// One line of an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub detail: String,
}

/// One order to write in a batch.
#[derive(Debug, Clone)]
pub enum OrderWrite {
    /// A version from the channel (poll or webhook): an idempotent upsert. A
    /// version older than the stored one is ignored (and noted in history);
    /// one equal to it writes nothing. `expected_revision` is the revision
    /// the caller read (None: the order must not exist yet); on a mismatch
    /// the whole batch fails with `Conflict`.
    FromChannel {
        order: StoredOrder,
        expected_revision: Option<u64>,
        /// Written only if the order is created or updated.
        outbox: Vec<NewOutboxItem>,
    },
    /// A local change (hold, release, rules apply, shipment ...): always
    /// written, with a history entry of the given kind and detail.
    /// `expected_revision` 0 creates an order that does not exist yet.
    Local {
        order: StoredOrder,
        expected_revision: u64,
        kind: String,
        detail: String,
        outbox: Vec<NewOutboxItem>,
    },
}

impl OrderWrite {
    pub fn order_id(&self) -> &str {
        match self {
            OrderWrite::FromChannel { order, .. } | OrderWrite::Local { order, .. } => {
                &order.order.id
            }
        }
    }
}

/// A channel's payload on its way into the store, apart from its order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    /// Parsed (a polled page, a local write).
    Value(serde_json::Value),
    /// The JSON text the channel sent (`NormalizedOrder::raw_json`), stored
    /// as it is.
    Text(Vec<u8>),
}

impl Payload {
    pub(crate) const NONE: Payload = Payload::Value(serde_json::Value::Null);

    pub(crate) fn is_none(&self) -> bool {
        matches!(self, Payload::Value(serde_json::Value::Null))
    }
}

/// Everything one `Store::apply` writes, in one transaction: all of it or none.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    /// The time recorded in history and used for coalescing; the store reads
    /// no clock for decisions. (`Default` gives the epoch: always set it.)
    pub now: DateTime<Utc>,
    pub orders: Vec<OrderWrite>,
    /// (account, cursor): a poll cursor moves only with the orders it covers.
    pub cursor: Option<(String, Cursor)>,
    /// (namespaced key, expires at): webhook deliveries already taken.
    pub dedupe: Vec<(String, DateTime<Utc>)>,
    /// Outbox items written whatever the order outcomes.
    pub outbox: Vec<NewOutboxItem>,
    pub stock: Vec<StockChange>,
    /// Outbox items that leave the queue with this write (sent, or nothing
    /// left to send), by id; one already gone is passed over. A delivery
    /// noted on its order and its item completed in one write: a crash
    /// keeps both or neither, so the item is never left pending (sent
    /// again) behind a delivery the order already records.
    pub complete: Vec<String>,
    /// Aborts the transaction after everything was staged, so a test can
    /// prove that a failed batch leaves no trace.
    #[doc(hidden)]
    pub fail_before_commit: bool,
}

impl WriteBatch {
    pub fn new(now: DateTime<Utc>) -> Self {
        WriteBatch {
            now,
            ..WriteBatch::default()
        }
    }
}

/// What happened to one `OrderWrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    Created,
    Updated,
    /// Same as stored: nothing was written.
    Unchanged,
    /// Older than stored: only a `stale_ignored` history entry was written.
    Stale,
}

/// The result of a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// (order id, outcome), one per `OrderWrite`, in batch order.
    pub outcomes: Vec<(String, WriteOutcome)>,
    /// Pass to `Store::flushed` to wait until this batch is durable.
    pub seq: u64,
}

/// A change to central stock, or to what is known of the channels selling
/// it, applied inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockChange {
    /// A new level on hand (stock set / import). What channels may sell is
    /// that less the SKU's reserved units as the writing transaction sees
    /// them: read any earlier, an order stored in between would have its
    /// units counted as still there to sell.
    Set { sku: String, on_hand: i64 },
    /// A relative change (reservations, returns); saturates rather than
    /// wraps. A SKU with no level when it is written is left without one,
    /// and `pushes` are queued only when it has one: whether the change
    /// reaches the channels is decided where the change itself is.
    /// `level_seen` says the SKU had a level when the change was planned
    /// (levels are never removed), so its pushes are prepared before the
    /// transaction; otherwise the transaction prepares them if it finds
    /// one. It decides only when they are prepared, never whether they go.
    Adjust {
        sku: String,
        delta: i64,
        pushes: Vec<NewOutboxItem>,
        level_seen: bool,
    },
    /// What was last pushed to an account's channel.
    Pushed {
        sku: String,
        account: String,
        pushed: u32,
        at: DateTime<Utc>,
    },
    /// An order of `account` showed `sku`: the account lists it
    /// (`ListingState::Listed`), written with that order. A reference the
    /// channel gave is kept: it says as much and more.
    Listed { account: String, sku: String },
}

/// Central stock of one SKU and what each account's channel was last told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub sku: String,
    pub available: i64,
    /// Keyed by account.
    pub channels: BTreeMap<String, PushedLevel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedLevel {
    pub pushed: u32,
    pub at: DateTime<Utc>,
}

/// The `stock show --json` shape: `{ "sku", "on_hand", "reserved",
/// "available", "reservations": [ { "order_id", "units" } ], "channels": [ {
/// "account", "pushed", "at" } ] }`. `available` = `on_hand` − `reserved`:
/// what channels may sell (less each account's buffer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockView {
    pub sku: String,
    #[serde(default)]
    pub on_hand: i64,
    #[serde(default)]
    pub reserved: i64,
    pub available: i64,
    #[serde(default)]
    pub reservations: Vec<Reservation>,
    pub channels: Vec<StockChannelView>,
}

/// One open order's units of a SKU that are reserved and not shipped yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub order_id: String,
    pub units: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChannelView {
    pub account: String,
    pub pushed: u32,
    pub at: DateTime<Utc>,
}

impl StockLevel {
    /// The view of this level with the SKU's open reservations.
    pub fn view(&self, reservations: Vec<Reservation>) -> StockView {
        let reserved = reservations.iter().map(|r| r.units).sum();
        StockView {
            sku: self.sku.clone(),
            on_hand: self.available + reserved,
            reserved,
            reservations,
            available: self.available,
            channels: self
                .channels
                .iter()
                .map(|(account, p)| StockChannelView {
                    account: account.clone(),
                    pushed: p.pushed,
                    at: p.at,
                })
                .collect(),
        }
    }
}

/// An outbound call to queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOutboxItem {
    pub account: String,
    pub job: Job,
    /// Items of one account with the same key coalesce while pending: only
    /// the newest job goes out (e.g. `stock:<sku>`).
    pub coalesce_key: Option<String>,
    pub not_before: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    Pending,
    /// Failed permanently; waits for a person to retry or drop it.
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Dead => "dead",
        }
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queued outbound call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Zero-padded decimal: lexical order is FIFO order.
    pub id: String,
    pub account: String,
    /// Stored as the item's `kind` and `payload` fields.
    #[serde(flatten)]
    pub job: Job,
    pub coalesce_key: Option<String>,
    pub state: OutboxState,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The `outbox list --json` shape: the item, what it is for (`order_id`,
/// `sku`, `destination`, `tracking_number` as they apply), and, for a
/// pending item, when it is tried next (null for a dead letter, which waits
/// for a person).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxSummary {
    pub id: String,
    pub account: String,
    pub kind: JobKind,
    pub state: OutboxState,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// For a notice: `hold`, `cancel` or `withdraw`.
    #[serde(default)]
    pub notice: Option<String>,
}

impl OutboxSummary {
    /// What the item is for, in words: `deliver order shop-us:1 to east-wh`.
    pub fn purpose(&self) -> String {
        let order = self.order_id.as_deref().unwrap_or("?");
        match (
            self.kind,
            &self.destination,
            &self.tracking_number,
            &self.sku,
        ) {
            (JobKind::Deliver, Some(d), _, _) => format!("deliver order {order} to {d}"),
            (JobKind::Notice, Some(d), _, _) => format!(
                "send {d} a {} notice for order {order}",
                self.notice.as_deref().unwrap_or("hold or cancel")
            ),
            (JobKind::PushTracking, _, Some(t), _) => {
                format!("push tracking {t} of order {order} to {}", self.account)
            }
            (JobKind::PushStock, _, _, Some(sku)) => {
                format!("push the stock of {sku} to {}", self.account)
            }
            (kind, ..) => match (&self.order_id, &self.sku) {
                (Some(o), _) => format!("{} (order {o})", kind.describe()),
                (None, Some(sku)) => format!("{} ({sku})", kind.describe()),
                (None, None) => kind.describe().to_owned(),
            },
        }
    }
}

impl OutboxItem {
    pub fn summary(&self) -> OutboxSummary {
        let (destination, tracking_number) = match &self.job {
            Job::Deliver(d) => (Some(d.destination.clone()), None),
            Job::Notice(n) => (Some(n.destination.clone()), None),
            Job::PushTracking {
                tracking_number, ..
            } => (None, Some(tracking_number.clone())),
            _ => (None, None),
        };
        OutboxSummary {
            id: self.id.clone(),
            account: self.account.clone(),
            kind: self.job.kind(),
            state: self.state,
            attempts: self.attempts,
            next_attempt_at: (self.state == OutboxState::Pending).then_some(self.next_attempt_at),
            last_error: self.last_error.clone(),
            order_id: self.job.order_id().map(str::to_owned),
            sku: self.job.sku().map(str::to_owned),
            destination,
            tracking_number,
            created_at: Some(self.created_at),
            notice: match &self.job {
                Job::Notice(n) => Some(n.notice.clone()),
                _ => None,
            },
        }
    }
}

/// Which orders `Store::page_orders` and `Store::list_orders` return.
/// Every set field must match; tags match ignoring case, as the rules
/// compare them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub channel: Option<Channel>,
    pub account: Option<String>,
    pub tag: Option<String>,
    pub status: Option<OrderStatus>,
    pub route: Option<RouteFilter>,
    /// Whether the effective hold (`order.hold`) is set.
    pub held: Option<bool>,
    /// Orders per page (`page_orders`: default [`DEFAULT_PAGE`], at most
    /// [`MAX_PAGE`]); `list_orders`: at most this many, None for all.
    pub limit: Option<usize>,
    /// Go on after this cursor (a `ListPage::next` of an earlier page).
    pub after: Option<String>,
    /// Oldest first instead of newest first.
    pub oldest: bool,
}

/// Orders per page when the caller does not say.
pub const DEFAULT_PAGE: usize = 100;
/// The largest page: what one read may cost stays bounded.
pub const MAX_PAGE: usize = 1_000;

/// One page of `orders list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub orders: Vec<StoredOrder>,
    /// Pass as `OrderFilter::after` for the next page; None when nothing
    /// further matches. A page can hold fewer orders than asked and still
    /// have a next one, when its walk looked at its share of index entries
    /// (filters that are each common but rarely hold together).
    pub next: Option<String>,
}

/// One page of `outbox list`: pending items or dead letters in queue
/// order (by id, oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxPage {
    pub items: Vec<OutboxSummary>,
    /// The id of the page's last item, to pass as `after` for the next
    /// page; None when nothing further matches. A page of pending items can
    /// hold fewer than asked and still have a next one, when it stepped over
    /// its share of dead letters.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteFilter {
    /// Unrouted orders (`--route none`).
    None,
    Is(String),
}

impl OrderFilter {
    pub fn matches(&self, o: &Order) -> bool {
        self.channel.is_none_or(|c| o.channel == c)
            && self.account.as_ref().is_none_or(|a| &o.account == a)
            && self
                .tag
                .as_ref()
                .is_none_or(|t| o.tags.iter().any(|x| x.to_lowercase() == t.to_lowercase()))
            && self.status.is_none_or(|s| o.status == s)
            && self.route.as_ref().is_none_or(|r| match r {
                RouteFilter::None => o.route.is_none(),
                RouteFilter::Is(d) => o.route.as_ref() == Some(d),
            })
            && self.held.is_none_or(|h| o.hold.is_some() == h)
    }
}

/// One account's OAuth tokens as saved. `Debug` shows no token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTokens {
    /// A fingerprint of the refresh token configured when these were saved:
    /// tokens saved under another one are older than the configured one.
    pub configured: Option<String>,
    pub access_token: Option<String>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<String>,
    pub saved_at: DateTime<Utc>,
}

impl std::fmt::Debug for SavedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedTokens")
            .field("configured", &self.configured)
            .field("access_expires_at", &self.access_expires_at)
            .field("saved_at", &self.saved_at)
            .finish_non_exhaustive()
    }
}
