//! Central stock: one available quantity per SKU, what each channel is told
//! (`max(0, available − buffer)`, with the account's buffer or
//! `inventory.buffer`), reservations that keep a fast seller on one channel
//! from being oversold on another, coalesced pushes, and drift repair.
//!
//! - **Setting levels** ([`set_levels`], used by `stock set`, `stock import`
//!   and `PUT /api/v1/stock`) writes the levels and queues a `push_inventory`
//!   item for every account that takes stock pushes and may list the SKU, in
//!   one transaction. The caller waits for the flush before acknowledging.
//! - **Pushes are coalesced**: the item carries only the SKU (coalesce key
//!   `stock:<sku>`), and the worker computes the quantity when it sends, from
//!   the store. Ten changes queued while a channel is slow are one call, with
//!   the newest level.
//! - **Pushes are batched** where the connector allows
//!   (`inventory_batch_limit`, Shopify: 100 SKUs in one
//!   `inventorySetQuantities`): the worker sends the due pushes of an
//!   account together ([`send_push_batch`]); each is built and recorded
//!   exactly as a single one, with its own compare-and-set.
//! - **Reservations** ([`plan_reservation`], called by ingest): an order's
//!   line quantities are taken off central stock in the same transaction
//!   that stores the order, and pushes to every account listing the SKU are
//!   queued with it; a cancellation gives back the units not shipped, an
//!   edit adjusts them. Only SKUs that have a central level are touched,
//!   and only orders first seen by a daemon with reservations take part (marker
//!   `outbound/reserve/<order id>` in the store's dedupe keys). What is
//!   reserved is a function of the stored order (its status and lines), and
//!   each stored revision change applies the difference once, so nothing is
//!   reserved or released twice.
//! - **Listing**: an account lists a SKU unless its connector said
//!   `NotListed` (remembered for [`NOT_LISTED_TTL`], then asked again) and
//!   no order of that account has shown the SKU since. Pushes to accounts that
//!   do not list a SKU are skipped without error.
//! - **Compare-and-set**: each push says what the channel last confirmed.
//!   When the channel shows something else (`Conflict`), what it shows is
//!   recorded; if it shows no more than what we would push (most likely its
//!   own sale, whose order is on its way and will reserve), it is left alone;
//!   if it shows more, our level is pushed again at once against its value.
//! - **Drift repair** ([`run_drift_repair`]): a periodic, budgeted pass that
//!   queues pushes for (account, SKU) pairs never pushed, pushed a level that
//!   is not what the channel should show, or not re-asserted for a long time.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchyard_contract::{Connector, InventoryPush, InventoryResult, OrderStatus};
use tokio::sync::watch;

use crate::config::{AccountConfig, Config};
use crate::effects::{IngestPlan, Outbound};
use crate::outbox::{FollowUp, OutboxMetrics, PUSH_INVENTORY, Verdict};
use crate::store::{
    NewOutboxItem, OutboxItem, StockChange, StockView, Store, StoreError, StoredOrder, WriteBatch,
};

/// How long a channel's "not listed" answer is believed before asking again.
pub const NOT_LISTED_TTL: chrono::Duration = chrono::Duration::hours(24);

/// Markers in the store's dedupe keys live this long (for good).
pub(crate) fn forever() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Listing refs starting with this are the daemon's own markers, never a
/// channel's reference.
const MARK: &str = "!";
const LISTED: &str = "!listed";
const NOT_LISTED: &str = "!not-listed ";

/// One account that takes stock pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockTarget {
    pub account: String,
    /// Units held back from this account.
    pub buffer: u32,
}

/// The accounts whose connectors can push inventory, with their buffers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StockTargets(std::sync::Arc<Vec<StockTarget>>);

impl StockTargets {
    pub fn new(targets: Vec<StockTarget>) -> Self {
        StockTargets(std::sync::Arc::new(targets))
    }

    /// Every configured account for which `can_push` says its connector can
    /// push inventory.
    pub fn from_config(config: &Config, can_push: impl Fn(&AccountConfig) -> bool) -> Self {
        StockTargets::new(
            config
                .accounts
                .iter()
                .filter(|a| can_push(a))
                .map(|a| StockTarget {
                    account: a.id.clone(),
                    buffer: a.stock_buffer(&config.inventory),
                })
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &StockTarget> {
        self.0.iter()
    }

    pub fn buffer(&self, account: &str) -> Option<u32> {
        self.0
            .iter()
            .find(|t| t.account == account)
            .map(|t| t.buffer)
    }
}

/// What a channel should show: `max(0, available − buffer)`.
pub fn desired_level(available: i64, buffer: u32) -> u32 {
    let v = available.saturating_sub(i64::from(buffer));
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// What the daemon knows about an account listing a SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Never asked: push, and let the connector look it up.
    Unknown,
    /// Listed; with the channel's reference once learned.
    Listed(Option<String>),
    /// The channel said it does not list the SKU, at `since`.
    NotListed { since: DateTime<Utc> },
}

pub fn listing(
    store: &Store,
    account: &str,
    sku: &str,
    now: DateTime<Utc>,
) -> Result<Listing, StoreError> {
    let Some(v) = store.listing_ref(account, sku)? else {
        return Ok(Listing::Unknown);
    };
    if v == LISTED {
        return Ok(Listing::Listed(None));
    }
    if let Some(at) = v.strip_prefix(NOT_LISTED) {
        return Ok(match DateTime::parse_from_rfc3339(at) {
            Ok(since) if now - since.with_timezone(&Utc) < NOT_LISTED_TTL => Listing::NotListed {
                since: since.with_timezone(&Utc),
            },
            _ => Listing::Unknown,
        });
    }
    if v.starts_with(MARK) {
        return Ok(Listing::Unknown);
    }
    Ok(Listing::Listed(Some(v)))
}

fn mark_not_listed(
    store: &Store,
    account: &str,
    sku: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    store.set_listing_ref(account, sku, &format!("{NOT_LISTED}{at}"))
}

/// The pushes that a change of `sku` causes: one per target that may list it.
pub fn push_items(
    store: &Store,
    targets: &StockTargets,
    sku: &str,
    now: DateTime<Utc>,
) -> Result<Vec<NewOutboxItem>, StoreError> {
    let mut out = Vec::new();
    for t in targets.iter() {
        if matches!(
            listing(store, &t.account, sku, now)?,
            Listing::NotListed { .. }
        ) {
            continue;
        }
        out.push(push_item(&t.account, sku, now));
    }
    Ok(out)
}

pub fn push_item(account: &str, sku: &str, now: DateTime<Utc>) -> NewOutboxItem {
    NewOutboxItem {
        account: account.to_owned(),
        kind: PUSH_INVENTORY.to_owned(),
        coalesce_key: Some(format!("stock:{sku}")),
        payload: json!({ "sku": sku }),
        not_before: now,
    }
}

// --- setting levels -----------------------------------------------------------

/// One level, as `PUT /api/v1/stock` takes them: `[{ "sku", "available" }]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockUpdate {
    pub sku: String,
    pub available: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StockError {
    /// Every problem of the input; nothing was written.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `set_levels` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockWrite {
    pub skus: usize,
    /// Push items queued (after folding into pending ones, fewer calls).
    pub queued: usize,
    /// Await `store.flushed(seq)` (or `flush_blocking`) before acknowledging.
    pub seq: u64,
}

/// Why a SKU cannot be used, if it cannot.
pub fn sku_problem(sku: &str) -> Option<String> {
    if sku.is_empty() {
        Some("sku is empty".to_owned())
    } else if sku.chars().any(char::is_control) {
        Some(format!("sku {sku:?} contains a control character"))
    } else if sku.trim() != sku {
        Some(format!("sku {sku:?} has leading or trailing spaces"))
    } else if sku.len() > 255 {
        let head: String = sku.chars().take(40).collect();
        Some(format!("sku {head:?}... is longer than 255 bytes"))
    } else if sku.starts_with(MARK) {
        Some(format!("sku {sku:?} must not start with {MARK:?}"))
    } else {
        None
    }
}

/// Checks levels: every SKU usable and given once, every quantity ≥ 0.
pub fn validate(updates: &[StockUpdate]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, u) in updates.iter().enumerate() {
        if let Some(p) = sku_problem(&u.sku) {
            problems.push(format!("entry {}: {p}", i + 1));
        }
        if u.available < 0 {
            problems.push(format!(
                "entry {}: available for {} must not be negative (got {})",
                i + 1,
                u.sku,
                u.available
            ));
        }
        if let Some(first) = seen.insert(&u.sku, i + 1) {
            problems.push(format!(
                "entry {}: sku {} is already given in entry {first}",
                i + 1,
                u.sku
            ));
        }
    }
    if updates.is_empty() {
        problems.push("no stock levels given".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Sets central levels and queues a push of each to every account that may
/// list it, in one transaction; all or nothing. Wakes the workers of this
/// process. Returns before the flush: await `store.flushed(write.seq)`.
pub fn set_levels(
    store: &Store,
    outbound: &Outbound,
    updates: &[StockUpdate],
    now: DateTime<Utc>,
) -> Result<StockWrite, StockError> {
    validate(updates).map_err(StockError::Invalid)?;
    let mut batch = WriteBatch::new(now);
    for u in updates {
        batch.stock.push(StockChange::Set {
            sku: u.sku.clone(),
            available: u.available,
        });
        batch
            .outbox
            .extend(push_items(store, &outbound.stock, &u.sku, now)?);
    }
    let queued = batch.outbox.len();
    let items = batch.outbox.clone();
    let report = store.apply(batch)?;
    outbound.outbox.wakers.wake_items(&items);
    Ok(StockWrite {
        skus: updates.len(),
        queued,
        seq: report.seq,
    })
}

/// `stock show`: the level and what each channel was last told.
pub fn show(store: &Store, sku: &str) -> Result<Option<StockView>, StoreError> {
    Ok(store.stock_get(sku)?.map(|l| l.view()))
}

/// A bad row of a stock CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvProblem {
    /// 1-based line number in the file.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for CsvProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses a stock CSV (`sku,available` header, one SKU a row, RFC 4180
/// quoting). Every bad row is reported with its line number; any problem
/// means nothing is to be applied.
pub fn parse_stock_csv(text: &str) -> Result<Vec<StockUpdate>, Vec<CsvProblem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut problems = Vec::new();
    let mut out: Vec<StockUpdate> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut header_seen = false;
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let fields = match split_csv_line(line) {
            Ok(f) => f,
            Err(m) => {
                problems.push(CsvProblem {
                    line: n,
                    message: m,
                });
                if !header_seen {
                    header_seen = true;
                }
                continue;
            }
        };
        if !header_seen {
            header_seen = true;
            let names: Vec<String> = fields
                .iter()
                .map(|f| f.trim().to_ascii_lowercase())
                .collect();
            if names != ["sku", "available"] {
                problems.push(CsvProblem {
                    line: n,
                    message: format!("the header must be `sku,available`, found `{line}`"),
                });
            }
            continue;
        }
        if fields.len() != 2 {
            problems.push(CsvProblem {
                line: n,
                message: format!("expected 2 fields (sku,available), found {}", fields.len()),
            });
            continue;
        }
        let sku = fields[0].trim();
        let qty = fields[1].trim();
        let mut bad = false;
        if let Some(p) = sku_problem(sku) {
            problems.push(CsvProblem {
                line: n,
                message: p,
            });
            bad = true;
        }
        let available = match qty.parse::<i64>() {
            Ok(v) if v >= 0 => v,
            Ok(v) => {
                problems.push(CsvProblem {
                    line: n,
                    message: format!("available must not be negative (got {v})"),
                });
                bad = true;
                0
            }
            Err(_) => {
                problems.push(CsvProblem {
                    line: n,
                    message: format!("available {qty:?} is not a whole number"),
                });
                bad = true;
                0
            }
        };
        if bad {
            continue;
        }
        if let Some(first) = seen.insert(sku.to_owned(), n) {
            problems.push(CsvProblem {
                line: n,
                message: format!("sku {sku} is already set on line {first}"),
            });
            continue;
        }
        out.push(StockUpdate {
            sku: sku.to_owned(),
            available,
        });
    }
    if !header_seen {
        problems.push(CsvProblem {
            line: 1,
            message: "the file is empty: expected the header `sku,available`".to_owned(),
        });
    } else if out.is_empty() && problems.is_empty() {
        problems.push(CsvProblem {
            line: 1,
            message: "the file has a header but no rows".to_owned(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Splits one CSV line into fields; `"..."` quotes, `""` inside quotes is a quote.
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            '"' if at_start && cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            _ => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("a quoted field is not closed".to_owned());
    }
    fields.push(cur);
    Ok(fields)
}

// --- reservations ---------------------------------------------------------------

fn reserve_marker(order_id: &str) -> String {
    format!("outbound/reserve/{order_id}")
}

/// Units an order holds per SKU: its line quantities; once cancelled, only
/// what was shipped before the cancellation.
fn held(order: &StoredOrder) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let cancelled = order.order.status == OrderStatus::Cancelled;
    for l in &order.order.lines {
        // A cancellation gives back the units still on the shelf; units that
        // already shipped (a partly shipped order cancelled) left the
        // warehouse, and giving them back would oversell them.
        let units = if cancelled {
            l.shipped_quantity.min(l.quantity)
        } else {
            l.quantity
        };
        if units == 0 {
            continue;
        }
        if let Some(sku) = l.sku.as_deref().filter(|s| sku_problem(s).is_none()) {
            *out.entry(sku.to_owned()).or_insert(0) += i64::from(units);
        }
    }
    out
}

/// The stock side of storing `new` over `existing` from a channel (the
/// caller has checked that the store will write it): reserve the difference
/// of what the order holds, for SKUs with a central level, and queue pushes of
/// each changed SKU to every account that may list it (the selling account
/// too: it re-asserts the level against what that channel recorded).
pub fn plan_reservation(
    store: &Store,
    targets: &StockTargets,
    existing: Option<&StoredOrder>,
    new: &StoredOrder,
    now: DateTime<Utc>,
) -> Result<IngestPlan, StoreError> {
    let mut plan = IngestPlan::default();
    let marker = reserve_marker(&new.order.id);
    let takes_part = match existing {
        None => {
            plan.dedupe.push((marker, forever()));
            true
        }
        Some(_) => store.dedupe_seen(&marker, now)?,
    };
    // The selling account lists every SKU it sold.
    if existing.is_none() {
        for sku in held(new).keys() {
            if matches!(
                listing(store, &new.order.account, sku, now)?,
                Listing::NotListed { .. }
            ) {
                store.set_listing_ref(&new.order.account, sku, LISTED)?;
            }
        }
    }
    if !takes_part {
        return Ok(plan);
    }
    let before = existing.map(held).unwrap_or_default();
    let after = held(new);
    let mut skus: Vec<&String> = before.keys().chain(after.keys()).collect();
    skus.sort();
    skus.dedup();
    for sku in skus {
        let delta = after.get(sku).copied().unwrap_or(0) - before.get(sku).copied().unwrap_or(0);
        if delta == 0 || store.stock_get(sku)?.is_none() {
            continue;
        }
        plan.stock.push(StockChange::Adjust {
            sku: sku.clone(),
            delta: -delta,
        });
        plan.outbox.extend(push_items(store, targets, sku, now)?);
    }
    Ok(plan)
}

// --- sending ---------------------------------------------------------------------

/// Sends one `push_inventory` item: the level is read now, so a push that
/// waited sends the newest level.
pub async fn send_push<C: Connector>(
    store: &Store,
    outbound: &Outbound,
    connector: &C,
    account: &str,
    buffer: u32,
    item: &OutboxItem,
) -> Verdict {
    let target = PushTarget {
        store,
        outbound,
        account,
        buffer,
    };
    let pending = match target.prepare(item) {
        Ok(Prepared::Push(p)) => p,
        Ok(Prepared::Finished(v)) => return v,
        Err(e) => return store_failure(e),
    };
    let result = connector.push_inventory(&pending.push).await;
    target.record(pending, result).unwrap_or_else(store_failure)
}

/// Pushes of one batch whose listing the daemon has not learned yet (the
/// connector looks each up first: a request per SKU on Shopify). Those past
/// this many wait for a later call (`Verdict::Deferred`), so that a first
/// push of a large catalog is many modest calls, each well inside the call
/// timeout and the channel's bucket, not one call of a hundred look-ups.
pub const UNKNOWN_LISTINGS_PER_CALL: usize = 20;

/// Sends several `push_inventory` items of one account in one call of the
/// connector (`push_inventory_batch`): each item's push is built exactly as
/// [`send_push`] builds it, at send time, and each result is recorded
/// through the same code; one verdict per item, in order. Pushes without a
/// known listing past [`UNKNOWN_LISTINGS_PER_CALL`] are deferred.
pub async fn send_push_batch<C: Connector>(
    store: &Store,
    outbound: &Outbound,
    connector: &C,
    account: &str,
    buffer: u32,
    items: &[OutboxItem],
) -> Vec<Verdict> {
    let target = PushTarget {
        store,
        outbound,
        account,
        buffer,
    };
    let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(items.len());
    let mut pending = Vec::new();
    let mut unknown = 0;
    for (i, item) in items.iter().enumerate() {
        match target.prepare(item) {
            Ok(Prepared::Push(p)) if p.push.listing_ref.is_none() => {
                unknown += 1;
                if unknown > UNKNOWN_LISTINGS_PER_CALL {
                    verdicts.push(Some(Verdict::Deferred));
                } else {
                    verdicts.push(None);
                    pending.push((i, p));
                }
            }
            Ok(Prepared::Push(p)) => {
                verdicts.push(None);
                pending.push((i, p));
            }
            Ok(Prepared::Finished(v)) => verdicts.push(Some(v)),
            Err(e) => verdicts.push(Some(store_failure(e))),
        }
    }
    if !pending.is_empty() {
        let pushes: Vec<InventoryPush> = pending.iter().map(|(_, p)| p.push.clone()).collect();
        let mut results = connector.push_inventory_batch(&pushes).await.into_iter();
        for (i, p) in pending {
            let result = results.next().unwrap_or_else(|| {
                Err(switchyard_contract::ConnectorError::Transient(
                    "the connector gave no result for this push".into(),
                ))
            });
            verdicts[i] = Some(target.record(p, result).unwrap_or_else(store_failure));
        }
    }
    verdicts
        .into_iter()
        .map(|v| {
            v.unwrap_or_else(|| {
                Verdict::Failed(switchyard_contract::ConnectorError::Transient(
                    "no verdict for this push".into(),
                ))
            })
        })
        .collect()
}

fn store_failure(e: StoreError) -> Verdict {
    Verdict::Failed(switchyard_contract::ConnectorError::Transient(format!(
        "store: {e}"
    )))
}

/// The account a push goes to, and the store it is recorded in.
struct PushTarget<'a> {
    store: &'a Store,
    outbound: &'a Outbound,
    account: &'a str,
    buffer: u32,
}

/// A push built from the store, waiting for the channel's answer.
struct PendingPush {
    sku: String,
    desired: u32,
    push: InventoryPush,
}

enum Prepared {
    /// Nothing to send (no central level, not listed, a bad payload).
    Finished(Verdict),
    Push(PendingPush),
}

impl PushTarget<'_> {
    /// Reads the item's level and listing now and builds the push.
    fn prepare(&self, item: &OutboxItem) -> Result<Prepared, StoreError> {
        let (store, account) = (self.store, self.account);
        let Some(sku) = item
            .payload
            .get("sku")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
        else {
            return Ok(Prepared::Finished(Verdict::Dead(format!(
                "payload has no sku: {}",
                item.payload
            ))));
        };
        let now = Utc::now();
        let Some(level) = store.stock_get(&sku)? else {
            // No central level: nothing to assert.
            return Ok(Prepared::Finished(Verdict::Done(None)));
        };
        let listing_ref = match listing(store, account, &sku, now)? {
            Listing::NotListed { .. } => {
                OutboxMetrics::add(&self.outbound.outbox.metrics.not_listed);
                return Ok(Prepared::Finished(Verdict::Done(None)));
            }
            Listing::Listed(r) => r,
            Listing::Unknown => None,
        };
        let desired = desired_level(level.available, self.buffer);
        let last_confirmed = level.channels.get(account).map(|p| p.pushed);
        let push = InventoryPush {
            sku: sku.clone(),
            quantity: desired,
            last_confirmed,
            listing_ref,
            idempotency_key: format!(
                "switchyard:{account}:{}:{desired}:{}",
                item.id,
                last_confirmed
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "-".into())
            ),
        };
        Ok(Prepared::Push(PendingPush { sku, desired, push }))
    }

    /// Records what the channel answered and decides what becomes of the item.
    fn record(
        &self,
        pending: PendingPush,
        result: Result<InventoryResult, switchyard_contract::ConnectorError>,
    ) -> Result<Verdict, StoreError> {
        let (store, outbound, account, buffer) =
            (self.store, self.outbound, self.account, self.buffer);
        let PendingPush { sku, desired, push } = pending;
        let (listing_ref, last_confirmed) = (push.listing_ref, push.last_confirmed);
        let result = match result {
            Ok(r) => r,
            Err(e) => return Ok(Verdict::Failed(e)),
        };
        let recorded_at = Utc::now();
        let record = |pushed: u32| -> Result<(), StoreError> {
            let mut batch = WriteBatch::new(recorded_at);
            batch.stock.push(StockChange::Pushed {
                sku: sku.clone(),
                account: account.to_owned(),
                pushed,
                at: recorded_at,
            });
            store.apply(batch).map(drop)
        };
        Ok(match result {
            InventoryResult::Set {
                quantity,
                listing_ref: learned,
            } => {
                record(quantity)?;
                if let Some(r) = learned.filter(|r| !r.is_empty() && !r.starts_with(MARK))
                    && listing_ref.as_deref() != Some(r.as_str())
                {
                    store.set_listing_ref(account, &sku, &r)?;
                }
                Verdict::Done(Some(recheck(
                    store, outbound, account, buffer, sku, desired,
                )))
            }
            InventoryResult::NotListed => {
                mark_not_listed(store, account, &sku, recorded_at)?;
                OutboxMetrics::add(&outbound.outbox.metrics.not_listed);
                tracing::info!(account, sku = %sku, "channel does not list this sku; its pushes are skipped");
                Verdict::Done(None)
            }
            InventoryResult::Conflict { current } => {
                record(current)?;
                if current <= desired {
                    tracing::info!(account, sku = %sku, current, desired, "channel changed the level itself (a sale?); left as the channel shows it");
                    Verdict::Done(Some(recheck(
                        store, outbound, account, buffer, sku, desired,
                    )))
                } else {
                    Verdict::Again {
                        after: Duration::ZERO,
                        note: format!(
                            "channel showed {current}, not {} as last confirmed; pushing {desired} against it",
                            last_confirmed
                                .map(|q| q.to_string())
                                .unwrap_or_else(|| "unknown".into())
                        ),
                    }
                }
            }
        })
    }
}

/// After the item is completed: if the level changed while the push was in
/// flight (a change folded into the item and was completed with it), queue
/// another push. The level and its push are written in one transaction, so
/// reading the level after completing the item cannot miss one.
fn recheck(
    store: &Store,
    outbound: &Outbound,
    account: &str,
    buffer: u32,
    sku: String,
    sent: u32,
) -> FollowUp {
    let (store, outbound, account) = (store.clone(), outbound.clone(), account.to_owned());
    Box::new(move || {
        let now = Utc::now();
        if let Some(level) = store.stock_get(&sku)?
            && desired_level(level.available, buffer) != sent
        {
            let item = push_item(&account, &sku, now);
            store.outbox_add(vec![item], now)?;
            outbound.outbox.wakers.wake(&account);
        }
        Ok(())
    })
}

// --- drift repair ----------------------------------------------------------------

/// Budget of the drift repair.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    /// Time between passes.
    pub interval: Duration,
    /// SKUs looked at per pass (the pass resumes after the last one).
    pub skus_per_tick: usize,
    /// Pushes queued per pass at most.
    pub max_queued_per_tick: usize,
    /// An account with this many pending items gets no drift pushes this pass.
    pub max_backlog: usize,
    /// A level confirmed this long ago is pushed again even if it matches.
    pub reassert_after: chrono::Duration,
    /// A mismatch younger than this is left alone (a sale on its way in, a
    /// push in flight).
    pub settle: chrono::Duration,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            interval: Duration::from_secs(60),
            skus_per_tick: 500,
            max_queued_per_tick: 50,
            max_backlog: 100,
            reassert_after: chrono::Duration::hours(24),
            settle: chrono::Duration::minutes(2),
        }
    }
}

/// One pass; `cursor` is the last SKU looked at (the next pass goes on after
/// it, wrapping around). Returns the pushes queued.
pub fn drift_tick(
    store: &Store,
    outbound: &Outbound,
    options: &DriftOptions,
    cursor: &mut Option<String>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let levels = store.stock_list()?;
    if levels.is_empty() || outbound.stock.iter().next().is_none() {
        return Ok(0);
    }
    let mut backlog: HashMap<String, usize> = HashMap::new();
    for i in store.outbox_list(false)? {
        *backlog.entry(i.account).or_default() += 1;
    }
    let start = match cursor.as_deref() {
        Some(c) => levels.iter().position(|l| l.sku.as_str() > c).unwrap_or(0),
        None => 0,
    };
    let mut items = Vec::new();
    let n = levels.len().min(options.skus_per_tick.max(1));
    for k in 0..n {
        let level = &levels[(start + k) % levels.len()];
        *cursor = Some(level.sku.clone());
        for t in outbound.stock.iter() {
            if items.len() >= options.max_queued_per_tick {
                break;
            }
            let queued = backlog.entry(t.account.clone()).or_default();
            if *queued >= options.max_backlog {
                continue;
            }
            let should = desired_level(level.available, t.buffer);
            let stale = match level.channels.get(&t.account) {
                None => true,
                Some(p) => {
                    let age = now - p.at;
                    (p.pushed != should && age >= options.settle) || age >= options.reassert_after
                }
            };
            if stale
                && !matches!(
                    listing(store, &t.account, &level.sku, now)?,
                    Listing::NotListed { .. }
                )
            {
                items.push(push_item(&t.account, &level.sku, now));
                *queued += 1;
            }
        }
        if items.len() >= options.max_queued_per_tick {
            break;
        }
    }
    let count = items.len();
    if count > 0 {
        store.outbox_add(items.clone(), now)?;
        outbound.outbox.wakers.wake_items(&items);
    }
    Ok(count)
}

/// Runs drift passes every `options.interval` until shutdown.
pub async fn run_drift_repair(
    store: Store,
    outbound: Outbound,
    options: DriftOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(options.interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // Scans of the store: off the async threads.
        let (s, o, opts, mut c) = (
            store.clone(),
            outbound.clone(),
            options.clone(),
            cursor.take(),
        );
        let pass = tokio::task::spawn_blocking(move || {
            let r = drift_tick(&s, &o, &opts, &mut c, Utc::now());
            (r, c)
        })
        .await;
        let result = match pass {
            Ok((r, c)) => {
                cursor = c;
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "drift repair pass panicked");
                continue;
            }
        };
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(pushes = n, "drift repair queued stock pushes"),
            Err(e) => tracing::warn!(error = %e, "drift repair pass failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_levels_hold_back_the_buffer_and_never_go_negative() {
        assert_eq!(desired_level(10, 2), 8);
        assert_eq!(desired_level(1, 2), 0);
        assert_eq!(desired_level(-5, 0), 0);
        assert_eq!(desired_level(i64::MAX, 0), u32::MAX);
    }

    #[test]
    fn csv_reports_every_bad_row_with_its_line() {
        let ok =
            parse_stock_csv("\u{feff}sku,available\r\nMUG-RED,3\r\n\"TEE, BLUE\",0\n\n").unwrap();
        assert_eq!(
            ok,
            vec![
                StockUpdate {
                    sku: "MUG-RED".into(),
                    available: 3
                },
                StockUpdate {
                    sku: "TEE, BLUE".into(),
                    available: 0
                },
            ]
        );
        let bad =
            parse_stock_csv("sku,available\nA,1\nB,-2\n,4\nC,x\nA,5\nD,1,2\n\"E,1\n").unwrap_err();
        let lines: Vec<usize> = bad.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7, 8], "{bad:?}");
        assert!(bad[0].message.contains("negative"));
        assert!(bad[1].message.contains("empty"));
        assert!(bad[2].message.contains("not a whole number"));
        assert!(bad[3].message.contains("already set on line 2"));
        let header = parse_stock_csv("sku;available\nA;1\n").unwrap_err();
        assert_eq!(header[0].line, 1);
        assert!(parse_stock_csv("").is_err());
    }

    #[test]
    fn validation_lists_every_problem() {
        let e = validate(&[
            StockUpdate {
                sku: "A".into(),
                available: -1,
            },
            StockUpdate {
                sku: " B".into(),
                available: 1,
            },
            StockUpdate {
                sku: "A".into(),
                available: 2,
            },
        ])
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
