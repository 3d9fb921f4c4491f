//! Fetch jobs: orders a webhook only named, fetched by the account's outbox
//! worker instead of inside the webhook request. The job is an outbox item
//! (kind `fetch_orders`) written in the same transaction as the delivery's
//! dedupe key, so an acknowledged delivery is never lost (a restart finds
//! the job where it was left) and a repeat changes nothing. The worker
//! waits for the account's fetch budget in its pacer, retries what the
//! channel could not answer with the outbox's backoff, and ingests what it
//! fetched; orders the channel could not read are left out, logged and
//! counted, missing ones logged.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_contract::Operation;

use super::accounts::Connected;
use crate::effects::ChannelSender;
use crate::ingest::{DEDUPE_TTL_DAYS, Ingest, IngestError, IngestReport, Source};
use crate::outbox::{Job, JobKind, Sender, Verdict};
use crate::pacing::AccountPacer;
use crate::store::{NewOutboxItem, OutboxItem, WriteBatch};

/// Stores a fetch of `ids` for `account`, with the webhook's dedupe key
/// (already namespaced by account), in one transaction, and wakes the
/// account's worker. A key seen before writes nothing (`duplicate`). Await
/// `flushed(report.seq)` before acknowledging.
pub fn queue(
    ingest: &Ingest,
    account: &str,
    ids: Vec<String>,
    dedupe_key: Option<String>,
    now: DateTime<Utc>,
) -> Result<IngestReport, IngestError> {
    let store = ingest.store();
    if let Some(key) = &dedupe_key
        && store.expiring_key_seen(key, now)?
    {
        return Ok(IngestReport {
            duplicate: true,
            ..IngestReport::default()
        });
    }
    let mut batch = WriteBatch::new(now);
    batch.outbox.push(NewOutboxItem {
        account: account.to_owned(),
        job: Job::FetchOrders { ids },
        coalesce_key: None,
        not_before: now,
    });
    if let Some(key) = dedupe_key {
        batch
            .dedupe
            .push((key, now + chrono::Duration::days(DEDUPE_TTL_DAYS)));
    }
    let report = store.apply(batch)?;
    if let Some(outbound) = ingest.outbound() {
        outbound.outbox.wakers.wake(account);
    }
    Ok(IngestReport {
        seq: report.seq,
        ..IngestReport::default()
    })
}

/// Runs one fetch job.
async fn run(connected: &Connected, ingest: &Ingest, ids: &[String]) -> Verdict {
    if ids.is_empty() {
        return Verdict::Dead("a fetch of no orders".into());
    }
    let account = &connected.account.id;
    let fetched = match connected.connector.fetch_orders(ids).await {
        Ok(f) => f,
        Err(e) => return Verdict::Failed(e),
    };
    super::report_rejected(ingest, account, "fetch", &fetched.rejected);
    for id in &fetched.missing {
        tracing::warn!(account = %account, order = %id, "a webhook named an order the channel does not have (deleted, or out of the app's reach); nothing stored for it");
    }
    let ingesting = ingest.clone();
    let acct = account.clone();
    let orders = fetched.orders;
    let stored = tokio::task::spawn_blocking(move || {
        ingesting.receive(&acct, orders, Source::Fetch, Utc::now())
    })
    .await;
    match stored {
        Ok(Ok(report)) => {
            tracing::debug!(account = %account, created = report.created, updated = report.updated, "fetched orders stored");
            Verdict::Done(None)
        }
        Ok(Err(e)) => Verdict::Failed(switchyard_contract::ConnectorError::Transient(format!(
            "store: {e}"
        ))),
        Err(e) => Verdict::Failed(switchyard_contract::ConnectorError::Transient(format!(
            "ingest task: {e}"
        ))),
    }
}

/// The sender of a channel account's outbox: fetch jobs here, stock and
/// tracking pushes in `crate::effects`.
pub struct AccountSender {
    pub connected: Arc<Connected>,
    pub ingest: Ingest,
    pub effects: ChannelSender,
}

impl Sender for AccountSender {
    fn pacing(&self, kind: JobKind) -> (&AccountPacer, Operation) {
        self.effects.pacing(kind)
    }

    fn call_timeout(&self) -> Duration {
        self.connected.hints.call_timeout
    }

    fn batch_limit(&self, kind: JobKind) -> usize {
        self.effects.batch_limit(kind)
    }

    fn batch_key(&self, item: &OutboxItem) -> Option<String> {
        self.effects.batch_key(item)
    }

    async fn send_batch(&self, items: &[OutboxItem]) -> Vec<Verdict> {
        if items.iter().any(|i| i.job.kind() == JobKind::FetchOrders) {
            let mut verdicts = Vec::with_capacity(items.len());
            for item in items {
                verdicts.push(self.send(item).await);
            }
            return verdicts;
        }
        self.effects.send_batch(items).await
    }

    async fn send(&self, item: &OutboxItem) -> Verdict {
        if let Job::FetchOrders { ids } = &item.job {
            return run(&self.connected, &self.ingest, ids).await;
        }
        self.effects.send(item).await
    }
}
