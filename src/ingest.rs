//! The one ingest path. A polled page (orders + the cursor that covers them)
//! and a webhook event (orders + its dedupe key) go through the same steps:
//! merge with what is stored (hand-set tags and holds survive), run the rules,
//! then write orders, cursor, dedupe key and outbox items in one transaction.
//! Rule decisions are computed before the transaction (sled may re-run it);
//! if the stored order changed meanwhile, the whole batch is recomputed.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use parking_lot::RwLock;
use switchyard_contract::{Cursor, NormalizedOrder, OrderStatus};

use crate::metrics::{Ingested, Metrics};
use crate::rules::{RuleInput, RuleSet, decide};
use crate::store::{
    OrderWrite, Payload, RoutedLine, Store, StoreError, StoredOrder, WriteBatch, WriteOutcome,
};

/// How long a webhook dedupe key is remembered. Shopify retries for 4 hours,
/// Etsy for about 32: a week covers every channel's retry schedule.
pub const DEDUPE_TTL_DAYS: i64 = 7;

/// How many times a batch is recomputed when orders change underneath it.
const MAX_CONFLICT_RETRIES: usize = 8;

/// Where a batch of orders came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A polled page; the cursor is stored with the orders it covers.
    Poll { cursor: Cursor },
    /// A webhook delivery; the key (already namespaced by account) is
    /// remembered so a repeat delivery changes nothing.
    Webhook { dedupe_key: Option<String> },
    /// A one-off fetch (reconciliation, refetch after a webhook).
    Fetch,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub stale: usize,
    /// The webhook was a repeat of one already stored: nothing was written.
    pub duplicate: bool,
    /// The store write sequence to wait on for durability.
    pub seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "orders kept changing during ingest of account {account}; gave up after {MAX_CONFLICT_RETRIES} tries"
    )]
    Contended { account: String },
    #[error("order {id} belongs to account {found}, not {expected}")]
    WrongAccount {
        id: String,
        expected: String,
        found: String,
    },
}

/// The rules in force, swapped whole on reload.
#[derive(Clone, Default)]
pub struct LiveRules(Arc<RwLock<Arc<RuleSet>>>);

impl LiveRules {
    pub fn new(rules: RuleSet) -> Self {
        LiveRules(Arc::new(RwLock::new(Arc::new(rules))))
    }

    pub fn current(&self) -> Arc<RuleSet> {
        self.0.read().clone()
    }

    pub fn replace(&self, rules: RuleSet) {
        *self.0.write() = Arc::new(rules);
    }
}

#[derive(Clone)]
pub struct Ingest {
    store: Store,
    rules: LiveRules,
    /// Reservations, stock pushes and deliveries; None: orders only.
    outbound: Option<crate::effects::Outbound>,
    /// Where ingested orders are counted (`/metrics`).
    metrics: Metrics,
}

impl Ingest {
    pub fn new(store: Store, rules: LiveRules) -> Self {
        Ingest {
            store,
            rules,
            outbound: None,
            metrics: Metrics::default(),
        }
    }

    /// Counts ingested orders (and, in the HTTP layer, webhooks) in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn outbound(&self) -> Option<&crate::effects::Outbound> {
        self.outbound.as_ref()
    }

    /// Ingest also reserves stock, queues stock pushes and deliveries
    /// (in the same transaction as the orders) and wakes their workers.
    pub fn with_outbound(mut self, outbound: crate::effects::Outbound) -> Self {
        self.outbound = Some(outbound);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn rules(&self) -> &LiveRules {
        &self.rules
    }

    /// Takes one batch from a channel: merges each order with what is
    /// stored, runs the rules, plans the effects, writes it all in one
    /// transaction. Returns once written (not yet flushed: await
    /// `store.flushed(report.seq)` before acknowledging to anyone).
    pub fn receive(
        &self,
        account: &str,
        orders: Vec<NormalizedOrder>,
        source: Source,
        now: DateTime<Utc>,
    ) -> Result<IngestReport, IngestError> {
        for n in &orders {
            if n.order.account != account {
                return Err(IngestError::WrongAccount {
                    id: n.order.id.clone(),
                    expected: account.to_owned(),
                    found: n.order.account.clone(),
                });
            }
        }
        if let Source::Webhook {
            dedupe_key: Some(key),
        } = &source
            // Written below with an expiry, never kept for good.
            && self.store.expiring_key_seen(key, now)?
        {
            return Ok(IngestReport {
                duplicate: true,
                ..IngestReport::default()
            });
        }
        let mut orders = newest_per_order(orders);
        // The payloads go to the store apart, not copied with each order
        // `merge` builds, and stay here for another try; one the connector
        // kept as the text the channel sent is stored as that text.
        let raws: Vec<Payload> = orders
            .iter_mut()
            .map(|n| match n.raw_json.take() {
                Some(text) => Payload::Text(text),
                None => Payload::Value(std::mem::take(&mut n.raw)),
            })
            .collect();
        let rules = self.rules.current();
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut writes = Vec::with_capacity(orders.len());
            // Reservations, stock pushes and deliveries, decided before the transaction.
            let mut outbound = crate::effects::IngestPlan::default();
            // The outbox accounts to wake once written.
            let mut queued_for = std::collections::BTreeSet::new();
            for n in &orders {
                let existing = self.store.get_order(&n.order.id)?;
                let expected_revision = existing.as_ref().map(|e| e.revision);
                let mut order = merge(n, existing.as_ref(), &rules, now);
                let mut outbox = vec![];
                if let Some(o) = &self.outbound {
                    let plan = o.plan_ingest(&self.store, existing.as_ref(), &mut order, now)?;
                    queued_for.extend(crate::outbox::Wakers::accounts_of(&plan.outbox));
                    queued_for.extend(plan.wake);
                    outbound.stock.extend(plan.stock);
                    outbound.dedupe.extend(plan.dedupe);
                    outbox = plan.outbox;
                }
                writes.push(OrderWrite::FromChannel {
                    order,
                    expected_revision,
                    outbox,
                });
            }
            let mut batch = WriteBatch {
                now,
                orders: writes,
                stock: outbound.stock,
                dedupe: outbound.dedupe,
                ..WriteBatch::default()
            };
            match &source {
                Source::Poll { cursor } => {
                    batch.cursor = Some((account.to_owned(), cursor.clone()))
                }
                Source::Webhook {
                    dedupe_key: Some(k),
                } => batch
                    .dedupe
                    .push((k.clone(), now + Duration::days(DEDUPE_TTL_DAYS))),
                Source::Webhook { dedupe_key: None } | Source::Fetch => {}
            }
            match self.store.apply_with_payloads(batch, &raws) {
                Ok(report) => {
                    if let Some(o) = &self.outbound {
                        o.outbox.wakers.wake_accounts(&queued_for);
                    }
                    let mut out = IngestReport {
                        seq: report.seq,
                        ..IngestReport::default()
                    };
                    for (_, outcome) in &report.outcomes {
                        match outcome {
                            WriteOutcome::Created => out.created += 1,
                            WriteOutcome::Updated => out.updated += 1,
                            WriteOutcome::Unchanged => out.unchanged += 1,
                            WriteOutcome::Stale => out.stale += 1,
                        }
                    }
                    self.count(account, &orders, &source, &out);
                    return Ok(out);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IngestError::Contended {
            account: account.to_owned(),
        })
    }

    /// `switchyard_orders_ingested_total` for one written batch.
    fn count(
        &self,
        account: &str,
        orders: &[NormalizedOrder],
        source: &Source,
        out: &IngestReport,
    ) {
        let Some(first) = orders.first() else {
            return;
        };
        let channel = first.order.channel.as_str();
        let source = match source {
            Source::Poll { .. } => "poll",
            Source::Webhook { .. } => "webhook",
            Source::Fetch => "fetch",
        };
        for (outcome, n) in [
            ("created", out.created),
            ("updated", out.updated),
            ("unchanged", out.unchanged),
            ("stale", out.stale),
        ] {
            if n > 0 {
                let labels = Ingested {
                    channel: channel.to_owned(),
                    account: account.to_owned(),
                    source,
                    outcome,
                };
                self.metrics
                    .orders_ingested
                    .get_or_create(&labels)
                    .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
            }
        }
    }
}

/// One version per order: offset paging over a live result set can show an
/// order twice in one page, and two writes of one order in one transaction
/// would conflict with each other. The newest `updated_at` wins (the later
/// one on a tie); the first position is kept.
fn newest_per_order(orders: Vec<NormalizedOrder>) -> Vec<NormalizedOrder> {
    let mut out: Vec<NormalizedOrder> = Vec::with_capacity(orders.len());
    for n in orders {
        match out.iter_mut().find(|o| o.order.id == n.order.id) {
            Some(seen) if seen.order.updated_at <= n.order.updated_at => *seen = n,
            Some(_) => {}
            None => out.push(n),
        }
    }
    out
}

/// The stored form of a channel version: the channel's data, what a person set
/// by hand on the stored order, and the rules' decisions over both.
pub fn merge(
    incoming: &NormalizedOrder,
    existing: Option<&StoredOrder>,
    rules: &RuleSet,
    now: DateTime<Utc>,
) -> StoredOrder {
    let stored = StoredOrder {
        order: incoming.order.clone(),
        channel_tags: incoming.order.tags.clone(),
        rule_tags: Vec::new(),
        manual_tags: existing.map(|e| e.manual_tags.clone()).unwrap_or_default(),
        manual_hold: existing.and_then(|e| e.manual_hold.clone()),
        released_hold: existing.and_then(|e| e.released_hold.clone()),
        rule_hold: None,
        hold_rule: None,
        local_shipments: Vec::new(),
        delivered: existing.and_then(|e| e.delivered.clone()),
        line_routes: Vec::new(),
        parts: existing.map(|e| e.parts.clone()).unwrap_or_default(),
        notes: incoming.notes.clone(),
        raw: incoming.raw.clone(),
        revision: existing.map(|e| e.revision).unwrap_or(0),
    };
    let mut stored = stored;
    if let Some(e) = existing {
        keep_local_shipments(&mut stored, e);
    }
    redecide(stored, rules, now)
}

/// Shipments recorded here that the channel does not show yet (their
/// tracking push is queued or in flight) stay on the order, with the line
/// quantities and status they imply. Once the channel shows a tracking
/// number, the channel's version of that shipment is the one kept.
fn keep_local_shipments(next: &mut StoredOrder, existing: &StoredOrder) {
    let order = &mut next.order;
    let known = |tracking: &str| {
        order.shipments.iter().any(|s| {
            s.tracking_number
                .trim()
                .eq_ignore_ascii_case(tracking.trim())
        })
    };
    let pending: Vec<_> = existing
        .order
        .shipments
        .iter()
        .filter(|s| {
            existing.local_shipments.contains(&s.tracking_number) && !known(&s.tracking_number)
        })
        .cloned()
        .collect();
    if pending.is_empty() {
        return;
    }
    for shipment in &pending {
        for sl in &shipment.lines {
            if let Some(line) = order.lines.iter_mut().find(|l| l.line_id == sl.line_id) {
                // Saturating: the channel's figure may be anything up to
                // u32::MAX, and `+` overflowed (a panic in the ingest task).
                line.shipped_quantity = line
                    .shipped_quantity
                    .saturating_add(sl.quantity)
                    .min(line.quantity);
            }
        }
        next.local_shipments.push(shipment.tracking_number.clone());
    }
    order.shipments.extend(pending);
    if matches!(
        order.status,
        OrderStatus::Ready | OrderStatus::PartiallyShipped
    ) {
        order.status = if order.lines.iter().all(|l| l.shipped_quantity >= l.quantity) {
            OrderStatus::Shipped
        } else {
            OrderStatus::PartiallyShipped
        };
    }
}

/// What the rules look at in a stored order: its canonical data, the tags
/// its channel gave it and those a person set.
pub fn rule_input(stored: &StoredOrder) -> RuleInput<'_> {
    RuleInput {
        order: &stored.order,
        channel_tags: &stored.channel_tags,
        manual_tags: &stored.manual_tags,
    }
}

/// Re-decides tags, route, line routes, hold and priority of a stored order from its
/// channel data, its hand-set tags and hold, and `rules`. Pure.
pub fn redecide(mut stored: StoredOrder, rules: &RuleSet, now: DateTime<Utc>) -> StoredOrder {
    let eval = decide(rules, &rule_input(&stored), now);
    stored.order.tags = eval.tags;
    stored.order.route = eval.route;
    stored.rule_hold = eval.hold.clone();
    stored.hold_rule = eval.hold_rule;
    let rule_hold = eval
        .hold
        .filter(|h| stored.released_hold.as_ref() != Some(h));
    stored.order.hold = stored.manual_hold.clone().or(rule_hold);
    stored.order.priority = eval.priority;
    stored.rule_tags = eval.rule_tags;
    stored.line_routes = eval
        .line_routes
        .into_iter()
        .map(|l| RoutedLine {
            line_id: l.line_id,
            route: l.route,
            rule: l.rule,
        })
        .collect();
    stored
}
