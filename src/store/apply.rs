//! `Store::apply`: a batch of order writes, a cursor, dedupe keys, outbox
//! items and stock changes, committed in one transaction or not at all.
//! sled may re-run the closure, so everything that does not depend on what is
//! stored (encodings, ids) is computed before it, and the closure only reads,
//! decides and stages writes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sled::Transactional;
use sled::transaction::TransactionalTree;

use super::codec::{check_key_part, decode, encode, history_key};
use super::outbox::{PreparedOutbox, stage_outbox};
use super::tx::{TxResult, abort, tx_err};
use super::{
    ApplyReport, CURSORS, DEDUPE, HISTORY, HistoryEntry, ORDERS, OrderWrite, PushedLevel, STOCK,
    StockChange, StockLevel, Store, StoreError, StoredOrder, WriteBatch, WriteOutcome,
};

struct PreparedOrder {
    id: String,
    /// Carries the revision it gets if written.
    new: StoredOrder,
    enc: Vec<u8>,
    history_key: Vec<u8>,
    mode: Mode,
    outbox: Vec<PreparedOutbox>,
}

enum Mode {
    Channel { expected: Option<u64> },
    Local { expected: u64, entry: Vec<u8> },
}

impl Store {
    /// Writes a batch atomically; see `OrderWrite` for the upsert rules. On
    /// any error nothing of the batch is written. Await
    /// `flushed(report.seq)` before telling anyone the batch is safe.
    pub fn apply(&self, batch: WriteBatch) -> Result<ApplyReport, StoreError> {
        let WriteBatch {
            now,
            orders,
            cursor,
            dedupe,
            outbox,
            stock,
            fail_before_commit,
        } = batch;
        let prepared = orders
            .into_iter()
            .map(|w| self.prepare_order(w, now))
            .collect::<Result<Vec<_>, _>>()?;
        let cursor = match cursor {
            Some((account, c)) => {
                check_key_part("account", &account)?;
                let enc = encode(CURSORS, account.as_bytes(), &c)?;
                Some((account.into_bytes(), enc))
            }
            None => None,
        };
        let dedupe = dedupe
            .into_iter()
            .map(|(k, expires_at)| {
                check_key_part("dedupe key", &k)?;
                let enc = encode(DEDUPE, k.as_bytes(), &expires_at)?;
                Ok((k.into_bytes(), enc))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let outbox = outbox
            .into_iter()
            .map(|i| self.prepare_outbox(i, now))
            .collect::<Result<Vec<_>, _>>()?;
        for c in &stock {
            let (StockChange::Set { sku, .. }
            | StockChange::Adjust { sku, .. }
            | StockChange::Pushed { sku, .. }) = c;
            check_key_part("sku", sku)?;
        }

        let t = self.trees();
        let outcomes = (
            &t.orders,
            &t.history,
            &t.cursors,
            &t.dedupe,
            &t.outbox,
            &t.coalesce,
            &t.stock,
        )
            .transaction(
                |(orders_t, history_t, cursors_t, dedupe_t, outbox_t, coalesce_t, stock_t)| {
                    let mut outcomes = Vec::with_capacity(prepared.len());
                    for p in &prepared {
                        let outcome = stage_order(orders_t, history_t, p, now)?;
                        if matches!(outcome, WriteOutcome::Created | WriteOutcome::Updated) {
                            for o in &p.outbox {
                                stage_outbox(outbox_t, coalesce_t, o)?;
                            }
                        }
                        outcomes.push((p.id.clone(), outcome));
                    }
                    if let Some((k, v)) = &cursor {
                        cursors_t.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &dedupe {
                        dedupe_t.insert(k.as_slice(), v.as_slice())?;
                    }
                    for o in &outbox {
                        stage_outbox(outbox_t, coalesce_t, o)?;
                    }
                    for c in &stock {
                        stage_stock(stock_t, c)?;
                    }
                    if fail_before_commit {
                        return Err(abort(StoreError::Injected));
                    }
                    Ok(outcomes)
                },
            )
            .map_err(|e| tx_err("write batch", e))?;
        // Numbered even when nothing changed: an unchanged repeat must still
        // wait for the flush of the earlier write it matched.
        let seq = self.next_seq();
        Ok(ApplyReport { outcomes, seq })
    }

    fn prepare_order(
        &self,
        w: OrderWrite,
        now: DateTime<Utc>,
    ) -> Result<PreparedOrder, StoreError> {
        let (mut new, outbox, mode) = match w {
            OrderWrite::FromChannel {
                order,
                expected_revision,
                outbox,
            } => (
                order,
                outbox,
                Mode::Channel {
                    expected: expected_revision,
                },
            ),
            OrderWrite::Local {
                order,
                expected_revision,
                kind,
                detail,
                outbox,
            } => {
                let entry = HistoryEntry {
                    at: now,
                    kind,
                    detail,
                };
                let enc = encode(HISTORY, order.order.id.as_bytes(), &entry)?;
                (
                    order,
                    outbox,
                    Mode::Local {
                        expected: expected_revision,
                        entry: enc,
                    },
                )
            }
        };
        let id = new.order.id.clone();
        check_key_part("order id", &id)?;
        // The transaction refuses the write unless the stored revision is the
        // expected one, so the new revision is known now.
        new.revision = match &mode {
            Mode::Channel { expected } => expected.unwrap_or(0) + 1,
            Mode::Local { expected, .. } => expected + 1,
        };
        let enc = encode(ORDERS, id.as_bytes(), &new)?;
        let history_key = history_key(&id, self.generate_id()?);
        let outbox = outbox
            .into_iter()
            .map(|i| self.prepare_outbox(i, now))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PreparedOrder {
            id,
            new,
            enc,
            history_key,
            mode,
            outbox,
        })
    }
}

fn stage_order(
    orders: &TransactionalTree,
    history: &TransactionalTree,
    p: &PreparedOrder,
    now: DateTime<Utc>,
) -> TxResult<WriteOutcome> {
    let key = p.id.as_bytes();
    let stored: Option<StoredOrder> = match orders.get(key)? {
        Some(v) => Some(decode(ORDERS, key, &v).map_err(abort)?),
        None => None,
    };
    let conflict = || abort(StoreError::Conflict { id: p.id.clone() });
    let put_history = |kind: &str, detail: String| -> TxResult<()> {
        let entry = HistoryEntry {
            at: now,
            kind: kind.to_owned(),
            detail,
        };
        let enc = encode(HISTORY, &p.history_key, &entry).map_err(abort)?;
        history.insert(p.history_key.as_slice(), enc)?;
        Ok(())
    };
    match &p.mode {
        Mode::Channel { expected } => {
            if *expected != stored.as_ref().map(|s| s.revision) {
                return Err(conflict());
            }
            let Some(stored) = stored else {
                orders.insert(key, p.enc.as_slice())?;
                put_history("created", format!("status {}", p.new.order.status))?;
                return Ok(WriteOutcome::Created);
            };
            let (old_at, new_at) = (stored.order.updated_at, p.new.order.updated_at);
            if old_at > new_at {
                put_history(
                    "stale_ignored",
                    format!(
                        "ignored channel version updated at {}; stored version is newer (updated at {})",
                        rfc3339(new_at),
                        rfc3339(old_at)
                    ),
                )?;
                return Ok(WriteOutcome::Stale);
            }
            if stored.same_content(&p.new) {
                return Ok(WriteOutcome::Unchanged);
            }
            orders.insert(key, p.enc.as_slice())?;
            put_history("updated", changed_fields(&stored, &p.new))?;
            Ok(WriteOutcome::Updated)
        }
        Mode::Local { expected, entry } => {
            let outcome = match &stored {
                None if *expected == 0 => WriteOutcome::Created,
                None => {
                    return Err(abort(StoreError::NotFound {
                        what: "order",
                        id: p.id.clone(),
                    }));
                }
                Some(s) if s.revision != *expected => return Err(conflict()),
                Some(_) => WriteOutcome::Updated,
            };
            orders.insert(key, p.enc.as_slice())?;
            history.insert(p.history_key.as_slice(), entry.as_slice())?;
            Ok(outcome)
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// "status: ready -> shipped; payment; lines": the top-level fields that
/// differ, with short scalar values shown.
fn changed_fields(old: &StoredOrder, new: &StoredOrder) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let (Ok(Value::Object(a)), Ok(Value::Object(b))) = (
        serde_json::to_value(&old.order),
        serde_json::to_value(&new.order),
    ) {
        for (k, nv) in &b {
            let ov = a.get(k).unwrap_or(&Value::Null);
            if ov != nv {
                parts.push(match (short(ov), short(nv)) {
                    (Some(o), Some(n)) => format!("{k}: {o} -> {n}"),
                    _ => k.clone(),
                });
            }
        }
    } else if old.order != new.order {
        parts.push("order".to_owned());
    }
    let mut other = |name: &str, changed: bool| {
        if changed {
            parts.push(name.to_owned());
        }
    };
    other("channel_tags", old.channel_tags != new.channel_tags);
    other("rule_tags", old.rule_tags != new.rule_tags);
    other("manual_tags", old.manual_tags != new.manual_tags);
    other("manual_hold", old.manual_hold != new.manual_hold);
    other("notes", old.notes != new.notes);
    other("raw", old.raw != new.raw);
    parts.join("; ")
}

fn short(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("none".to_owned()),
        Value::String(s) if s.chars().count() <= 40 => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn stage_stock(stock: &TransactionalTree, change: &StockChange) -> TxResult<()> {
    let sku = match change {
        StockChange::Set { sku, .. }
        | StockChange::Adjust { sku, .. }
        | StockChange::Pushed { sku, .. } => sku,
    };
    let key = sku.as_bytes();
    let mut level: StockLevel = match stock.get(key)? {
        Some(v) => decode(STOCK, key, &v).map_err(abort)?,
        None => StockLevel {
            sku: sku.clone(),
            available: 0,
            channels: Default::default(),
        },
    };
    match change {
        StockChange::Set { available, .. } => level.available = *available,
        StockChange::Adjust { delta, .. } => {
            level.available = level.available.saturating_add(*delta)
        }
        StockChange::Pushed {
            account,
            pushed,
            at,
            ..
        } => {
            level.channels.insert(
                account.clone(),
                PushedLevel {
                    pushed: *pushed,
                    at: *at,
                },
            );
        }
    }
    let enc = encode(STOCK, key, &level).map_err(abort)?;
    stock.insert(key, enc)?;
    Ok(())
}
