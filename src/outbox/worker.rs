//! One account's outbox worker: takes the account's due items oldest first,
//! waits for the account's pacer (noticing shutdown, keeping the watchdog
//! fed), sends them through its `Sender` (whose call acquires from the same
//! pacer), and records each item's outcome in the store (complete,
//! reschedule with backoff, or dead letter). Calls go one at a time, so the
//! account's limit is never exceeded by its own worker; other accounts have
//! their own workers and never wait for this one.
//!
//! A call carries one item, or, for a kind whose `Sender::batch_limit` is
//! above 1 (stock pushes to a channel that sets many SKUs in one request),
//! the oldest due item and the next due items of the same kind, up to the
//! limit and never two with the same coalesce key. A call takes one limiter
//! slot whatever it carries: the limit is the channel's request rate, and a
//! channel whose cost grows with a batch says so in its bucket reports,
//! which the limiter follows. Each item's verdict is recorded on its own, by
//! the same code as a single item's; a call that fails as a whole backs the
//! account off once, not once per item.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchyard_contract::{ConnectorError, Operation};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use super::policy::{Action, classify};
use super::{JobKind, Outbox, OutboxOptions};
use crate::daemon::metrics::{self, Metrics};
use crate::pacing::{AccountPacer, Backoff, Keepalive, bounded, item_delay};
use crate::store::{OutboxItem, Store, StoreError};

/// How many times in a row an item may ask to be sent again at once.
const AGAIN_AT_ONCE: u32 = 3;

/// Work to do after an item was completed (for stock: re-read the level in
/// case a newer change was folded into the item while it was in flight).
pub type FollowUp = Box<dyn FnOnce() -> Result<(), StoreError> + Send>;

/// What sending one item came to.
pub enum Verdict {
    /// Delivered (or nothing left to do): the item leaves the queue.
    Done(Option<FollowUp>),
    /// Not a failure, but send it again after `after` (a stock
    /// compare-and-set that found the channel changed).
    Again { after: Duration, note: String },
    /// The call failed; `policy::classify` decides.
    Failed(ConnectorError),
    /// Can never work (bad payload, the order is gone): dead letter now.
    Dead(String),
    /// Nothing to send any more (the order shipped or was cancelled before
    /// its delivery went out): the item leaves the queue, not a failure.
    Skipped(String),
    /// Not sent: the call it was taken into had no room for it (a batch's
    /// budget). Nothing is recorded; the item stays due and goes in a later
    /// call. A call never defers all of its items.
    Deferred,
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Done(_) => f.write_str("Done"),
            Verdict::Again { after, note } => write!(f, "Again({after:?}, {note})"),
            Verdict::Failed(e) => write!(f, "Failed({e})"),
            Verdict::Dead(r) => write!(f, "Dead({r})"),
            Verdict::Skipped(r) => write!(f, "Skipped({r})"),
            Verdict::Deferred => f.write_str("Deferred"),
        }
    }
}

/// Sends the items of one outbox account.
pub trait Sender: Send + Sync + 'static {
    /// The account's pacer and the operation class a call of `kind`
    /// spends: the worker waits there before the call, and the call
    /// acquires from it.
    fn pacing(&self, kind: JobKind) -> (&AccountPacer, Operation);

    /// How long one call may take once the pacer let it go (the far side's
    /// own figure; `OutboxOptions::call_timeout` overrides it).
    fn call_timeout(&self) -> Duration;

    fn send(&self, item: &OutboxItem) -> impl Future<Output = Verdict> + Send;

    /// How many items of `kind` without a batch key one call may carry; 1
    /// (the default): one item per call.
    fn batch_limit(&self, _kind: JobKind) -> usize {
        1
    }

    /// Items that must travel in one call because the far side writes them
    /// as one object share a key (Etsy: the listing whose inventory is
    /// replaced whole). A call carries every due item of its first item's
    /// key, however many; items without a key go `batch_limit` at a time.
    fn batch_key(&self, _item: &OutboxItem) -> Option<String> {
        None
    }

    /// Sends several items of one kind in one call (at most
    /// `batch_limit(kind)`, no two with the same coalesce key): one verdict
    /// per item, in order. The default sends them one after another.
    fn send_batch(&self, items: &[OutboxItem]) -> impl Future<Output = Vec<Verdict>> + Send {
        async move {
            let mut verdicts = Vec::with_capacity(items.len());
            for item in items {
                verdicts.push(self.send(item).await);
            }
            verdicts
        }
    }
}

/// Takes the next call off the front of `due`: the oldest item and the
/// following items of the same kind that go with it. With a batch key
/// (`key`), every due item of that kind and key, however many: the far side
/// writes them as one object. Without one, the items without a key, up to
/// `limit(kind)`. Either way never two with the same coalesce key (they
/// address the same thing; the later goes in a later call). Due order is
/// kept within the call and among the items left.
pub(crate) fn take_call(
    due: &mut Vec<OutboxItem>,
    limit: impl Fn(JobKind) -> usize,
    key: impl Fn(&OutboxItem) -> Option<String>,
) -> Vec<OutboxItem> {
    if due.is_empty() {
        return Vec::new();
    }
    let first = due.remove(0);
    let kind = first.job.kind();
    let batch = key(&first);
    let max = if batch.is_some() {
        usize::MAX
    } else {
        limit(kind).max(1)
    };
    let mut keys: HashSet<String> = first.coalesce_key.iter().cloned().collect();
    let mut call = vec![first];
    let mut i = 0;
    while call.len() < max && i < due.len() {
        let item = &due[i];
        let same_key = item.coalesce_key.as_ref().is_some_and(|k| keys.contains(k));
        if item.job.kind() == kind && !same_key && key(item) == batch {
            keys.extend(item.coalesce_key.iter().cloned());
            call.push(due.remove(i));
        } else {
            i += 1;
        }
    }
    call
}

/// What one call's failures did to the account, so that a batch that fails
/// as a whole backs the account off once, not once per item.
#[derive(Default)]
struct CallRecord {
    account_delay: Option<Duration>,
}

pub struct Worker<S> {
    account: String,
    sender: S,
    store: Store,
    notify: Arc<Notify>,
    metrics: Metrics,
    options: OutboxOptions,
    stop: watch::Receiver<bool>,
    /// Grows while calls of this account keep failing; reset by a success.
    account_backoff: Backoff,
    /// Nothing is sent before this (a 429's retry-after, an empty bucket).
    paused_until: Option<tokio::time::Instant>,
    /// Shows the watchdog this worker is alive (`crate::daemon::systemd`).
    heartbeat: Arc<crate::daemon::systemd::Heartbeat>,
}

impl<S: Sender> Worker<S> {
    pub fn new(
        account: String,
        sender: S,
        store: Store,
        outbox: &Outbox,
        options: OutboxOptions,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Worker {
            notify: outbox.wakers.get(&account),
            metrics: outbox.metrics.clone(),
            heartbeat: Arc::new(outbox.heartbeats.register(format!("outbox {account}"))),
            account_backoff: Backoff::new(options.initial_backoff, options.max_backoff),
            account,
            sender,
            store,
            options,
            stop,
            paused_until: None,
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps, unless shutdown comes first; false on shutdown.
    async fn sleep(&mut self, d: Duration) -> bool {
        if d.is_zero() {
            return !self.stopped();
        }
        let slept = tokio::select! {
            _ = self.heartbeat.pause(d) => true,
            _ = self.stop.wait_for(|s| *s) => false,
        };
        slept && !self.stopped()
    }

    /// Runs until shutdown. The call in flight when shutdown comes is
    /// finished and recorded; nothing new starts.
    pub async fn run(self) {
        let span = tracing::info_span!("outbox", account = %self.account);
        self.run_loop().instrument(span).await
    }

    async fn run_loop(mut self) {
        tracing::debug!(account = %self.account, "outbox worker started");
        // Read enough due items to fill the widest call.
        let read = JobKind::ALL
            .iter()
            .map(|k| self.sender.batch_limit(*k))
            .fold(self.options.batch, usize::max)
            .max(1);
        while !self.stopped() {
            self.heartbeat.beat();
            // A store read: on a blocking thread, never the async runtime's.
            let (store, account) = (self.store.clone(), self.account.clone());
            let due =
                tokio::task::spawn_blocking(move || store.outbox_due(&account, Utc::now(), read))
                    .await
                    .unwrap_or_else(|e| {
                        Err(crate::store::StoreError::Engine {
                            context: "the outbox read task".to_owned(),
                            detail: e.to_string(),
                        })
                    });
            let mut due = match due {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(account = %self.account, error = %e, "reading the outbox failed");
                    if !self.sleep(self.options.idle_rescan).await {
                        break;
                    }
                    continue;
                }
            };
            if due.is_empty() {
                let notify = self.notify.clone();
                tokio::select! {
                    _ = notify.notified() => {}
                    _ = self.heartbeat.pause(self.options.idle_rescan) => {}
                    _ = self.stop.wait_for(|s| *s) => break,
                }
                continue;
            }
            while !due.is_empty() {
                let call = take_call(
                    &mut due,
                    |kind| self.sender.batch_limit(kind),
                    |item| self.sender.batch_key(item),
                );
                if !self.process(call).await {
                    break;
                }
                // After a pause, read the due list again: items may have moved.
                if self.paused_until.is_some() {
                    break;
                }
            }
        }
        tracing::debug!(account = %self.account, "outbox worker stopped");
    }

    /// Waits for the pause and the pacer, sends one call (one item, or a
    /// batch of one kind) and records each item's outcome. False on shutdown.
    async fn process(&mut self, items: Vec<OutboxItem>) -> bool {
        let Some(first) = items.first() else {
            return true;
        };
        let kind = first.job.kind();
        let mut waited = Duration::ZERO;
        let paced = self.pace(kind, &mut waited).await;
        if !waited.is_zero() {
            self.metrics
                .limiter_wait
                .get_or_create(&metrics::account(&self.account))
                .inc_by(metrics::seconds(waited));
        }
        if !paced {
            return false;
        }
        let span = tracing::info_span!(
            "send",
            kind = %kind,
            item = %first.id,
            items = tracing::field::Empty,
            order = tracing::field::Empty,
            sku = tracing::field::Empty,
        );
        if let [item] = items.as_slice() {
            if let Some(order) = item.job.order_id() {
                span.record("order", tracing::field::display(order));
            }
            if let Some(sku) = item.job.sku() {
                span.record("sku", tracing::field::display(sku));
            }
        } else {
            span.record("items", items.len());
        }
        let timeout = self
            .options
            .call_timeout
            .unwrap_or_else(|| self.sender.call_timeout());
        let beat = self.heartbeat.clone();
        let keepalive: Keepalive = Arc::new(move |d| beat.busy(d));
        let sender = &self.sender;
        let send = async {
            match items.as_slice() {
                [item] => vec![sender.send(item).await],
                batch => sender.send_batch(batch).await,
            }
        };
        let call = bounded(timeout, Some(keepalive), send);
        let started = tokio::time::Instant::now();
        let mut verdicts = match call.instrument(span.clone()).await {
            Ok(v) => v.into_iter(),
            Err(_) => Vec::new().into_iter(),
        };
        let pushed = metrics::AccountKind {
            account: self.account.clone(),
            kind: kind.as_str(),
        };
        self.metrics
            .push
            .get_or_create(&pushed)
            .observe(metrics::seconds(started.elapsed()));
        self.heartbeat.beat();
        let _entered = span.enter();
        let mut record = CallRecord::default();
        for item in &items {
            let verdict = verdicts.next().unwrap_or_else(|| {
                Verdict::Failed(ConnectorError::Transient(format!(
                    "no answer within {} s",
                    timeout.as_secs_f64()
                )))
            });
            if let Err(e) = self.record(item, verdict, &mut record) {
                // The item stays pending and is sent again: every push carries an
                // idempotency key, and deliveries a stable delivery id.
                tracing::warn!(account = %self.account, item = %item.id, error = %e, "recording an outbox outcome failed");
            }
        }
        true
    }

    /// Waits for the pause and the account's pacer, adding the time to
    /// `waited`. False on shutdown.
    async fn pace(&mut self, kind: JobKind, waited: &mut Duration) -> bool {
        if let Some(until) = self.paused_until.take() {
            let now = tokio::time::Instant::now();
            if until > now {
                *waited += until - now;
                if !self.sleep(until - now).await {
                    return false;
                }
            }
        }
        loop {
            let wait = {
                let (pacer, operation) = self.sender.pacing(kind);
                pacer.delay(operation, 1)
            };
            if wait.is_zero() {
                return true;
            }
            *waited += wait;
            if !self.sleep(wait).await {
                return false;
            }
        }
    }

    fn record(
        &mut self,
        item: &OutboxItem,
        verdict: Verdict,
        call: &mut CallRecord,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        match verdict {
            Verdict::Done(follow_up) => {
                self.account_backoff.reset();
                self.store.outbox_complete(&item.id)?;
                self.count("sent");
                tracing::debug!(account = %self.account, item = %item.id, kind = %item.job.kind(), "sent");
                if let Some(f) = follow_up {
                    f()?;
                }
            }
            Verdict::Again { after, note } => {
                self.account_backoff.reset();
                // A channel whose level keeps moving under us is not raced
                // at full speed: after a few tries the item backs off.
                let after = if item.attempts < AGAIN_AT_ONCE {
                    after
                } else {
                    let o = &self.options;
                    after.max(item_delay(
                        o.initial_backoff,
                        o.max_backoff,
                        item.attempts - AGAIN_AT_ONCE,
                        None,
                    ))
                };
                let at = now + chrono::Duration::from_std(after).unwrap_or_default();
                self.store.outbox_reschedule(&item.id, at, &note)?;
                tracing::debug!(account = %self.account, item = %item.id, %note, "sending again");
            }
            Verdict::Dead(reason) => self.kill(item, &reason)?,
            Verdict::Skipped(reason) => {
                self.account_backoff.reset();
                self.store.outbox_complete(&item.id)?;
                self.count("skipped");
                tracing::info!(account = %self.account, item = %item.id, %reason, "not sent: nothing left to do");
            }
            Verdict::Deferred => {
                tracing::debug!(account = %self.account, item = %item.id, "no room in this call; sent in a later one");
            }
            Verdict::Failed(error) => match classify(&error) {
                Action::Dead(reason) => self.kill(item, &reason)?,
                Action::Retry { .. }
                    if item.attempts.saturating_add(1) >= self.options.max_attempts =>
                {
                    let reason = format!("gave up after {} attempts: {error}", item.attempts + 1);
                    self.kill(item, &reason)?;
                }
                Action::Retry {
                    retry_after,
                    rate_limited,
                } => {
                    let own = item_delay(
                        self.options.initial_backoff,
                        self.options.max_backoff,
                        item.attempts,
                        retry_after,
                    );
                    // The account as a whole slows down while its calls fail,
                    // so a channel that is down is not hit once per item.
                    let account = *call
                        .account_delay
                        .get_or_insert_with(|| self.account_backoff.next_delay(retry_after));
                    let delay = own.max(account);
                    self.paused_until = Some(tokio::time::Instant::now() + account);
                    self.count("retried");
                    if rate_limited {
                        let (pacer, operation) = self.sender.pacing(item.job.kind());
                        pacer.hold(operation, account);
                        self.count("rate_limited");
                        let limited = metrics::AccountSource {
                            account: self.account.clone(),
                            source: "outbox",
                        };
                        self.metrics.rate_limited.get_or_create(&limited).inc();
                    }
                    let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
                    self.store
                        .outbox_reschedule(&item.id, at, &error.to_string())?;
                    tracing::info!(account = %self.account, item = %item.id, kind = %item.job.kind(), class = error.class(), retry_in_ms = crate::pacing::millis(delay), error = %error, "outbound call failed; will retry");
                }
            },
        }
        Ok(())
    }

    /// One outbound call's outcome, for `switchyard_outbox_pushes_total`.
    fn count(&self, outcome: &'static str) {
        metrics::count_push(&self.metrics, outcome);
    }

    fn kill(&self, item: &OutboxItem, reason: &str) -> Result<(), StoreError> {
        self.store.outbox_kill(&item.id, reason)?;
        self.count("dead");
        tracing::warn!(account = %self.account, item = %item.id, kind = %item.job.kind(), reason, "outbound item is a dead letter");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Job, OutboxState};

    fn item(id: &str, kind: &str, key: Option<&str>) -> OutboxItem {
        let job = match kind {
            "stock" => Job::PushStock { sku: id.to_owned() },
            _ => Job::PushTracking {
                order_id: id.to_owned(),
                tracking_number: "1Z".to_owned(),
            },
        };
        OutboxItem {
            id: id.to_owned(),
            account: "shop".to_owned(),
            job,
            coalesce_key: key.map(str::to_owned),
            state: OutboxState::Pending,
            attempts: 0,
            next_attempt_at: Utc::now(),
            last_error: None,
            created_at: Utc::now(),
        }
    }

    fn ids(items: &[OutboxItem]) -> Vec<&str> {
        items.iter().map(|i| i.id.as_str()).collect()
    }

    fn no_key(_: &OutboxItem) -> Option<String> {
        None
    }

    #[test]
    fn a_call_batches_one_kind_up_to_its_limit_without_repeating_a_key() {
        let mut due = vec![
            item("1", "stock", Some("stock:A")),
            item("2", "track", None),
            item("3", "stock", Some("stock:B")),
            item("4", "stock", Some("stock:A")),
            item("5", "stock", Some("stock:C")),
            item("6", "stock", None),
            item("7", "stock", Some("stock:D")),
        ];
        let limit = |kind: JobKind| if kind == JobKind::PushStock { 4 } else { 1 };
        let call = take_call(&mut due, limit, no_key);
        assert_eq!(ids(&call), ["1", "3", "5", "6"]);
        assert_eq!(ids(&due), ["2", "4", "7"]);
        assert_eq!(ids(&take_call(&mut due, limit, no_key)), ["2"]);
        assert_eq!(ids(&take_call(&mut due, limit, no_key)), ["4", "7"]);
        assert!(due.is_empty());
        assert!(take_call(&mut due, limit, no_key).is_empty());
    }

    #[test]
    fn without_a_batch_limit_every_call_is_one_item_in_due_order() {
        let mut due = vec![
            item("1", "stock", Some("stock:A")),
            item("2", "stock", Some("stock:B")),
        ];
        assert_eq!(ids(&take_call(&mut due, |_| 1, no_key)), ["1"]);
        assert_eq!(ids(&take_call(&mut due, |_| 0, no_key)), ["2"]);
    }

    /// Etsy replaces a listing's whole inventory: the SKUs of one listing
    /// go in one call however many there are, and never with another
    /// listing's or with SKUs whose listing is not known.
    #[test]
    fn a_batch_key_puts_all_of_its_items_in_one_call_past_the_limit() {
        let mut due = vec![
            item("A1", "stock", Some("stock:A1")),
            item("B1", "stock", Some("stock:B1")),
            item("A2", "stock", Some("stock:A2")),
            item("X", "stock", Some("stock:X")),
            item("A3", "stock", Some("stock:A3")),
            item("Y", "stock", Some("stock:Y")),
        ];
        let listing = |i: &OutboxItem| match i.id.chars().next() {
            Some(c @ ('A' | 'B')) => Some(c.to_string()),
            _ => None,
        };
        let limit = |_| 2;
        assert_eq!(
            ids(&take_call(&mut due, limit, listing)),
            ["A1", "A2", "A3"]
        );
        assert_eq!(ids(&take_call(&mut due, limit, listing)), ["B1"]);
        assert_eq!(ids(&take_call(&mut due, limit, listing)), ["X", "Y"]);
        assert!(due.is_empty());
    }
}
