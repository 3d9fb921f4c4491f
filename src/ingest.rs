//! The one ingest path. A polled page (orders + the cursor that covers them)
//! and a webhook event (orders + its dedupe key) go through the same steps:
//! merge with what is stored (hand-set tags and holds survive), run the rules,
//! then write orders, cursor, dedupe key and outbox items in one transaction.
//! Rule decisions are computed before the transaction (sled may re-run it);
//! if the stored order changed meanwhile, the whole batch is recomputed.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use switchyard_contract::{Cursor, NormalizedOrder};

use crate::rules::{RuleInput, RuleSet, evaluate};
use crate::store::{OrderWrite, Store, StoreError, StoredOrder, WriteBatch, WriteOutcome};

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
    #[error("orders kept changing during ingest of account {account}; gave up after {MAX_CONFLICT_RETRIES} tries")]
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
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, rules: RuleSet) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
    }
}

#[derive(Clone)]
pub struct Ingest {
    store: Store,
    rules: LiveRules,
}

impl Ingest {
    pub fn new(store: Store, rules: LiveRules) -> Self {
        Ingest { store, rules }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn rules(&self) -> &LiveRules {
        &self.rules
    }

    /// Ingests one batch. Returns once written (not yet flushed: await
    /// `store.flushed(report.seq)` before acknowledging to anyone).
    pub fn ingest(
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
            && self.store.dedupe_seen(key, now)?
        {
            return Ok(IngestReport {
                duplicate: true,
                ..IngestReport::default()
            });
        }
        let rules = self.rules.current();
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut writes = Vec::with_capacity(orders.len());
            for n in &orders {
                let existing = self.store.get_order(&n.order.id)?;
                let expected_revision = existing.as_ref().map(|e| e.revision);
                let order = merge(n, existing.as_ref(), &rules, now);
                writes.push(OrderWrite::FromChannel {
                    order,
                    expected_revision,
                    outbox: vec![],
                });
            }
            let mut batch = WriteBatch {
                now,
                orders: writes,
                ..WriteBatch::default()
            };
            match &source {
                Source::Poll { cursor } => batch.cursor = Some((account.to_owned(), cursor.clone())),
                Source::Webhook { dedupe_key: Some(k) } => {
                    batch.dedupe = vec![(k.clone(), now + Duration::days(DEDUPE_TTL_DAYS))]
                }
                Source::Webhook { dedupe_key: None } | Source::Fetch => {}
            }
            match self.store.apply(batch) {
                Ok(report) => {
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
}

/// The stored form of a channel version: the channel's data, what a person set
/// by hand on the stored order, and the rules' decisions over both.
pub fn merge(
    incoming: &NormalizedOrder,
    existing: Option<&StoredOrder>,
    rules: &RuleSet,
    now: DateTime<Utc>,
) -> StoredOrder {
    let channel_tags = incoming.order.tags.clone();
    let manual_tags = existing.map(|e| e.manual_tags.clone()).unwrap_or_default();
    let manual_hold = existing.and_then(|e| e.manual_hold.clone());
    let mut order = incoming.order.clone();
    let eval = evaluate(
        rules,
        &RuleInput {
            order: &order,
            channel_tags: &channel_tags,
            manual_tags: &manual_tags,
        },
        now,
    );
    order.tags = eval.tags;
    order.route = eval.route;
    order.hold = manual_hold.clone().or(eval.hold);
    order.priority = eval.priority;
    StoredOrder {
        order,
        channel_tags,
        rule_tags: eval.rule_tags,
        manual_tags,
        manual_hold,
        notes: incoming.notes.clone(),
        raw: incoming.raw.clone(),
        revision: existing.map(|e| e.revision).unwrap_or(0),
    }
}
