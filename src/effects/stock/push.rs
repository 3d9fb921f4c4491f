//! Sending `push_stock` jobs: the level is read when the item is sent,
//! one push or a batch per call, and the channel's answer (set, not listed,
//! a compare-and-set conflict) is recorded.

use std::time::Duration;

use chrono::Utc;
use switchyard_contract::{Connector, InventoryPush, InventoryResult};

use super::{Listing, desired_level, listing, push_item};
use crate::daemon::metrics;
use crate::effects::Outbound;
use crate::outbox::{FollowUp, Job, Verdict};
use crate::store::{ListingState, OutboxItem, StockChange, Store, StoreError, WriteBatch};

/// Sends one `push_stock` job: the level is read now, so a push that
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

/// Sends several `push_stock` jobs of one account in one call of the
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
