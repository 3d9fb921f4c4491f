//! Sending `push_stock` jobs: the level is read when the item is sent,
//! one push or a batch per call, and the channel's answer (set, not listed,
//! a compare-and-set conflict) is recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_contract::{
    Connector, ConnectorError, InventoryPush, InventoryResult, ReceiptStatus,
};

use super::{Listing, desired_level, listing, push_item};
use crate::effects::Outbound;
use crate::metrics;
use crate::outbox::{FollowUp, Job, ReceiptSku, Verdict};
use crate::store::{
    ListingState, NewOutboxItem, OutboxItem, StockChange, Store, StoreError, WriteBatch,
};

/// Sends one `push_stock` job: the level is read now, so a push that
/// waited sends the newest level.
pub async fn send_push(
    store: &Store,
    outbound: &Outbound,
    connector: &dyn Connector,
    account: &str,
    buffer: u32,
    item: &OutboxItem,
) -> Verdict {
    let mut verdicts = send_push_batch(
        store,
        outbound,
        connector,
        account,
        buffer,
        std::slice::from_ref(item),
    )
    .await;
    verdicts.pop().unwrap_or_else(|| {
        Verdict::Failed(switchyard_contract::ConnectorError::Transient(
            "no verdict for this push".into(),
        ))
    })
}

/// Pushes of one batch whose listing the daemon has not learned yet (the
/// connector looks each up first: a request per SKU on Shopify). Those past
/// this many wait for a later call (`Verdict::Deferred`), so that a first
/// push of a large catalog is many modest calls, each well inside the call
/// timeout and the channel's bucket, not one call of a hundred look-ups.
pub const UNKNOWN_LISTINGS_PER_CALL: usize = 20;

/// Sends several `push_stock` jobs of one account in one call of the
/// connector (`push_inventory_batch`): each item's push is built exactly as
/// [`send_push`] builds it, at send time, and each result is recorded
/// through the same code; one verdict per item, in order. Pushes without a
/// known listing past [`UNKNOWN_LISTINGS_PER_CALL`] are deferred.
pub async fn send_push_batch(
    store: &Store,
    outbound: &Outbound,
    connector: &dyn Connector,
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
    // The levels were read now, maybe from a change (an order's
    // reservation) that is not on disk yet; one a crash takes back must not
    // have reached the channel. That change queued a push too, so it is
    // what `outbox_flushed` waits for.
    if !pending.is_empty()
        && let Err(e) = store.outbox_flushed().await
    {
        for (i, _) in pending.drain(..) {
            verdicts[i] = Some(store_failure(e.clone()));
        }
    }
    if !pending.is_empty() {
        let pushes: Vec<InventoryPush> = pending.iter().map(|(_, p)| p.push.clone()).collect();
        let mut results = connector.push_inventory_batch(&pushes).await.into_iter();
        let mut receipts = Receipts::default();
        for (i, p) in pending {
            let result = results.next().unwrap_or_else(|| {
                Err(switchyard_contract::ConnectorError::Transient(
                    "the connector gave no result for this push".into(),
                ))
            });
            if let Ok(InventoryResult::Pending {
                receipt,
                check_after,
            }) = result
            {
                receipts.add(i, receipt, check_after, p);
                continue;
            }
            verdicts[i] = Some(target.record(p, result).unwrap_or_else(store_failure));
        }
        for (i, verdict) in receipts.queue(store, outbound, account) {
            verdicts[i] = Some(verdict);
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

/// Pushes the channel took for processing later, by receipt: one check job
/// per receipt (several pushes of one call may share one).
#[derive(Default)]
struct Receipts(BTreeMap<String, ReceiptPushes>);

/// When to check a receipt, and the pushes behind it by their index in the call.
type ReceiptPushes = (DateTime<Utc>, Vec<(usize, PendingPush)>);

impl Receipts {
    fn add(&mut self, index: usize, receipt: String, check_after: DateTime<Utc>, p: PendingPush) {
        let entry = self
            .0
            .entry(receipt)
            .or_insert_with(|| (check_after, Vec::new()));
        entry.0 = entry.0.max(check_after);
        entry.1.push((index, p));
    }

    /// Queues the check jobs; each push's verdict (done once its check is
    /// queued), by its index in the call.
    fn queue(self, store: &Store, outbound: &Outbound, account: &str) -> Vec<(usize, Verdict)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let now = Utc::now();
        let mut items = Vec::new();
        let mut indexes = Vec::new();
        for (receipt, (check_after, pushes)) in self.0 {
            let skus: Vec<ReceiptSku> = pushes
                .iter()
                .map(|(_, p)| ReceiptSku {
                    sku: p.sku.clone(),
                    quantity: p.desired,
                })
                .collect();
            tracing::info!(account, receipt = %receipt, skus = skus.len(), check_after = %check_after.to_rfc3339(), "the channel took the stock pushes for processing later; checked then");
            items.push(NewOutboxItem {
                account: account.to_owned(),
                job: Job::CheckStockReceipt { receipt, skus },
                coalesce_key: None,
                not_before: check_after.max(now),
            });
            indexes.extend(pushes.into_iter().map(|(i, _)| i));
        }
        match store.outbox_add(items, now) {
            Ok(_) => {
                outbound.outbox.wakers.wake(account);
                indexes
                    .into_iter()
                    .map(|i| (i, Verdict::Done(None)))
                    .collect()
            }
            Err(e) => indexes
                .into_iter()
                .map(|i| (i, store_failure(e.clone())))
                .collect(),
        }
    }
}

/// Sends a `check_inventory_receipt` item: asks the channel what became of
/// the pushes behind the receipt and records each SKU's outcome as a push's
/// would be recorded; a SKU whose push did not take is queued again (its
/// level is computed anew when it is sent).
pub async fn send_receipt_check(
    store: &Store,
    outbound: &Outbound,
    connector: &dyn Connector,
    account: &str,
    buffer: u32,
    receipt: &str,
    skus: &[ReceiptSku],
) -> Verdict {
    let status = match connector.check_inventory_receipt(receipt).await {
        Ok(s) => s,
        Err(e) => return Verdict::Failed(e),
    };
    let mut results = match status {
        ReceiptStatus::Pending { check_after } => {
            let after = (check_after - Utc::now()).to_std().unwrap_or_default();
            return Verdict::Again {
                after,
                note: format!("receipt {receipt} not processed yet"),
            };
        }
        ReceiptStatus::Done { results } => results,
    };
    let target = PushTarget {
        store,
        outbound,
        account,
        buffer,
    };
    let now = Utc::now();
    let mut again = Vec::new();
    for ReceiptSku { sku, quantity } in skus {
        let (sku, desired) = (sku.clone(), *quantity);
        // A SKU the channel's report does not mention counts as set.
        let result = match results.iter().position(|(s, _)| *s == sku) {
            Some(at) => results.swap_remove(at).1,
            None => Ok(InventoryResult::Set {
                quantity: desired,
                listing_ref: None,
            }),
        };
        let result = match result {
            Ok(InventoryResult::Pending { .. }) => Err(ConnectorError::Decode(format!(
                "receipt {receipt}: the channel answered \"pending\" for {sku} in a processed receipt"
            ))),
            other => other,
        };
        if let Err(e) = &result
            && !e.is_retryable()
        {
            tracing::warn!(account, receipt, sku = %sku, error = %e, "the channel refused this stock push; it is pushed again with the current level");
        }
        let pending = PendingPush {
            sku: sku.clone(),
            desired,
            push: InventoryPush {
                sku: sku.clone(),
                quantity: desired,
                last_confirmed: None,
                listing_ref: None,
                idempotency_key: String::new(),
            },
        };
        match target.record(pending, result) {
            Ok(Verdict::Done(follow_up)) => {
                if let Some(f) = follow_up
                    && let Err(e) = f()
                {
                    return store_failure(e);
                }
            }
            Ok(_) => again.push(push_item(account, &sku, now)),
            Err(e) => return store_failure(e),
        }
    }
    if !again.is_empty() {
        if let Err(e) = store.outbox_add(again, now) {
            return store_failure(e);
        }
        outbound.outbox.wakers.wake(account);
    }
    Verdict::Done(None)
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
        let Job::PushStock { sku } = &item.job else {
            return Ok(Prepared::Finished(Verdict::Dead(format!(
                "a {} job was taken for a stock push",
                item.job.kind()
            ))));
        };
        let sku = sku.clone();
        let now = Utc::now();
        let Some(level) = store.stock_get(&sku)? else {
            // No central level: nothing to assert.
            return Ok(Prepared::Finished(Verdict::Done(None)));
        };
        let listing_ref = match listing(store, account, &sku, now)? {
            Listing::NotListed { .. } => {
                metrics::count_push(&self.outbound.outbox.metrics, "not_listed");
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
                if let Some(r) = learned.filter(|r| !r.is_empty())
                    && listing_ref.as_deref() != Some(r.as_str())
                {
                    store.set_listing(account, &sku, &ListingState::Ref(r))?;
                }
                Verdict::Done(Some(recheck(
                    store, outbound, account, buffer, sku, desired,
                )))
            }
            InventoryResult::NotListed => {
                let state = ListingState::NotListed { since: recorded_at };
                store.set_listing(account, &sku, &state)?;
                metrics::count_push(&outbound.outbox.metrics, "not_listed");
                tracing::info!(account, sku = %sku, "channel does not list this sku; its pushes are skipped");
                Verdict::Done(None)
            }
            InventoryResult::Pending { receipt, .. } => Verdict::Failed(ConnectorError::Decode(
                format!("receipt {receipt}: a pending result where none can be checked"),
            )),
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
