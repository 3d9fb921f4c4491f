//! One account's outbox worker: takes the account's due items oldest first,
//! once the writes that queued them are on disk (`Store::outbox_flushed`),
//! waits for the account's pacer (noticing shutdown, keeping the watchdog
//! fed, asking again when the pacer hears that allowance was freed), sends
//! them through its `Sender` (whose call acquires from the same pacer, or
//! whose place the worker takes for it), and records each item's outcome in
//! the store (complete, reschedule with backoff, or dead letter).
//! Other accounts have their own workers and never wait for this one.
//!
//! Calls go one at a time unless the sender allows several in flight
//! (`Sender::concurrency`: a destination's `concurrency`); the pacer spaces
//! their starts either way, so the account's limit is never exceeded by its
//! own worker. Items that share a `Sender::sequence_key` (a destination: the
//! order a delivery or notice is about) are never in flight together and
//! keep their order: one that must be sent again goes before the later ones
//! of its key.
//!
//! A call carries one item, or, for a kind whose `Sender::batch_limit` is
//! above 1 (stock pushes to a channel that sets many SKUs in one request),
//! the oldest due item and the next due items of the same kind, up to the
//! limit and never two with the same coalesce key. A call takes one limiter
//! slot whatever it carries: the limit is the channel's request rate, and a
//! channel whose cost grows with a batch says so in its bucket reports,
//! which the limiter follows. Each item's verdict is recorded on its own, by
//! the same code as a single item's; a call that fails as a whole backs the
//! account off once, not once per item, and so do calls that were in flight
//! together when the far side started failing.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchyard_contract::{ConnectorError, Operation};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::policy::{Action, classify};
use super::{JobKind, Outbox, OutboxOptions};
use crate::metrics::{self, Metrics};
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
    /// Sent (`skipped` None), or nothing left to send (`skipped`: why, e.g.
    /// the order shipped or was cancelled before its delivery went out; not
    /// a failure), and the sender already took the item off the queue, in
    /// the same write as what it noted on the order: the worker writes
    /// nothing more.
    Noted { skipped: Option<String> },
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
            Verdict::Noted { skipped: None } => f.write_str("Noted"),
            Verdict::Noted { skipped: Some(r) } => write!(f, "Noted(skipped: {r})"),
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

    /// How many calls may be in flight at once; 1 (the default): one after
    /// another.
    fn concurrency(&self) -> usize {
        1
    }

    /// Items that must reach the far side in the order they were queued
    /// share a key: they are never in flight together, and one that must be
    /// sent again (a retry, a held delivery) goes before the later ones of
    /// its key. `None` (the default): no order between items.
    fn sequence_key(&self, _item: &OutboxItem) -> Option<String> {
        None
    }

    /// Whether the worker takes each call's place in the pacer before it
    /// starts the call (true), or only waits until there is one and the
    /// call acquires it itself (false, the default: connectors acquire from
    /// their account's pacer). A sender with several calls in flight lets
    /// the worker take them, so that no call holds a slot while it waits.
    fn worker_takes_pace(&self) -> bool {
        false
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

/// Takes the next call off `due`: the oldest item that is not `blocked`
/// and the following unblocked items of the same kind that go with it.
/// With a batch key (`key`), every such item of that kind and key, however
/// many: the far side writes them as one object. Without one, the items
/// without a key, up to `limit(kind)`. Either way never two with the same
/// coalesce key (they address the same thing; the later goes in a later
/// call). Due order is kept within the call and among the items left.
pub(crate) fn take_call(
    due: &mut Vec<OutboxItem>,
    limit: impl Fn(JobKind) -> usize,
    key: impl Fn(&OutboxItem) -> Option<String>,
    blocked: impl Fn(&OutboxItem) -> bool,
) -> Vec<OutboxItem> {
    let Some(at) = due.iter().position(|i| !blocked(i)) else {
        return Vec::new();
    };
    let first = due.remove(at);
    let kind = first.job.kind();
    let batch = key(&first);
    let max = if batch.is_some() {
        usize::MAX
    } else {
        limit(kind).max(1)
    };
    let mut keys: HashSet<String> = first.coalesce_key.iter().cloned().collect();
    let mut call = vec![first];
    let mut i = at;
    while call.len() < max && i < due.len() {
        let item = &due[i];
        let same_key = item.coalesce_key.as_ref().is_some_and(|k| keys.contains(k));
        if item.job.kind() == kind && !same_key && !blocked(item) && key(item) == batch {
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
struct CallRecord {
    /// When the call started: a failure of a call that was already in
    /// flight when the account was backed off belongs to that backoff.
    started: Instant,
    account_delay: Option<Duration>,
}

/// A call that ended: its items, what became of each, and when it started.
struct Finished {
    items: Vec<OutboxItem>,
    /// `None`: no answer within `timeout`.
    verdicts: Option<Vec<Verdict>>,
    started: Instant,
    timeout: Duration,
    span: tracing::Span,
}

/// Why a worker's wait ended.
enum Woke {
    /// A call ended and was recorded.
    CallEnded,
    /// An item was queued for this account in this process.
    Queued,
    /// The wait's time was up, or the pacer heard that allowance was
    /// freed before it was (ask it again).
    Timer,
    Stop,
}

pub struct Worker<S> {
    account: String,
    sender: Arc<S>,
    store: Store,
    notify: Arc<Notify>,
    metrics: Metrics,
    options: OutboxOptions,
    stop: watch::Receiver<bool>,
    /// Grows while calls of this account keep failing; reset by a success.
    account_backoff: Backoff,
    /// Nothing is sent before this (a 429's retry-after, an empty bucket).
    paused_until: Option<Instant>,
    /// When the latest backoff of the account began.
    paused_at: Option<Instant>,
    /// Shows the watchdog this worker is alive (`crate::systemd`).
    heartbeat: Arc<crate::systemd::Heartbeat>,
    /// The calls in flight.
    calls: JoinSet<Finished>,
    /// Ids of the items in flight.
    flying: HashSet<String>,
    /// Sequence keys of the items in flight.
    flying_keys: HashSet<String>,
    /// Sequence key → the item of it that must go before its later ones
    /// (it failed, or was put off, and waits for its next attempt).
    first_in_line: HashMap<String, String>,
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
            sender: Arc::new(sender),
            store,
            options,
            stop,
            paused_until: None,
            paused_at: None,
            calls: JoinSet::new(),
            flying: HashSet::new(),
            flying_keys: HashSet::new(),
            first_in_line: HashMap::new(),
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Runs until shutdown. The calls in flight when shutdown comes are
    /// finished and recorded; nothing new starts.
    pub async fn run(self) {
        let span = tracing::info_span!("outbox", account = %self.account);
        self.run_loop().instrument(span).await
    }

    async fn run_loop(mut self) {
        tracing::debug!(account = %self.account, "outbox worker started");
        let width = self.sender.concurrency().max(1);
        // Read enough due items to fill the widest call, past the ones in
        // flight (which are still pending, so the read returns them too).
        let read = JobKind::ALL
            .iter()
            .map(|k| self.sender.batch_limit(*k))
            .fold(self.options.batch, usize::max)
            .max(1)
            + width;
        let mut due: Vec<OutboxItem> = Vec::new();
        // Whether `due` is a read still worth starting calls from.
        let mut fresh = false;
        while !self.stopped() {
            if self.calls.is_empty() {
                self.heartbeat.beat();
            }
            if self.calls.len() < width {
                if !fresh {
                    match self.read_due(read).await {
                        Ok(items) => {
                            due = items;
                            fresh = true;
                        }
                        Err(e) => {
                            tracing::warn!(account = %self.account, error = %e, "reading the outbox failed");
                            if let Woke::Stop =
                                self.wait(self.options.idle_rescan, false, None).await
                            {
                                break;
                            }
                            continue;
                        }
                    }
                }
                if let Some(kind) = due.iter().find(|i| !self.blocked(i)).map(|i| i.job.kind()) {
                    let freed = self.pace_freed(kind);
                    let wait = self.pace_wait(kind);
                    if wait.is_zero() {
                        let call = take_call(
                            &mut due,
                            |kind| self.sender.batch_limit(kind),
                            |item| self.sender.batch_key(item),
                            |item| self.blocked(item),
                        );
                        self.start(call);
                        continue;
                    }
                    let waiting = Instant::now();
                    let woke = self.wait(wait, false, Some(freed)).await;
                    self.metrics
                        .limiter_wait
                        .get_or_create(&metrics::account(&self.account))
                        .inc_by(metrics::seconds(waiting.elapsed()));
                    match woke {
                        Woke::Stop => break,
                        Woke::CallEnded if self.paused_until.is_some() => fresh = false,
                        Woke::CallEnded | Woke::Queued | Woke::Timer => {}
                    }
                    continue;
                }
            }
            // Nothing to start now: wait for a call to end, an item to be
            // queued, the rescan or shutdown.
            match self.wait(self.options.idle_rescan, true, None).await {
                Woke::Stop => break,
                Woke::Queued | Woke::Timer => fresh = false,
                // After a pause, read the due list again: items may have
                // moved. A read used up may have left more behind.
                Woke::CallEnded => {
                    if self.paused_until.is_some() || due.is_empty() {
                        fresh = false;
                    }
                }
            }
        }
        while let Some(done) = self.calls.join_next().await {
            self.ended(done);
        }
        tracing::debug!(account = %self.account, "outbox worker stopped");
    }

    /// The account's due items, without the ones in flight, once the
    /// writes that queued them are on disk. A key whose first item is no
    /// longer pending (sent, or dropped by a person) stops holding its later
    /// items back.
    async fn read_due(&mut self, read: usize) -> Result<Vec<OutboxItem>, StoreError> {
        // A store read: on a blocking thread, never the async runtime's.
        let (store, account) = (self.store.clone(), self.account.clone());
        let due = tokio::task::spawn_blocking(move || store.outbox_due(&account, Utc::now(), read))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Engine {
                    context: "the outbox read task".to_owned(),
                    detail: e.to_string(),
                })
            })?;
        // An item is visible as soon as its transaction commits, before the
        // flush. Sent then, a crash could take back the write that queued
        // it while the far side acts on it (a warehouse ships an order the
        // store no longer has, and ships it again when the channel resends
        // it). Usually already flushed: then this does not wait or yield.
        if !due.is_empty() {
            self.store.outbox_flushed().await?;
        }
        let due: Vec<OutboxItem> = due
            .into_iter()
            .filter(|i| !self.flying.contains(&i.id))
            .collect();
        if !self.first_in_line.is_empty() {
            let waiting: HashSet<&str> = due.iter().map(|i| i.id.as_str()).collect();
            let mut gone = Vec::new();
            for (key, id) in &self.first_in_line {
                if waiting.contains(id.as_str()) {
                    continue;
                }
                let pending = self
                    .store
                    .outbox_get(id)?
                    .is_some_and(|i| i.state == crate::store::OutboxState::Pending);
                if !pending {
                    gone.push(key.clone());
                }
            }
            for key in gone {
                self.first_in_line.remove(&key);
            }
        }
        Ok(due)
    }

    /// Whether `item` may not start now: it is in flight, an item of its
    /// sequence key is, or an earlier one of its key waits to go first.
    fn blocked(&self, item: &OutboxItem) -> bool {
        if self.flying.contains(&item.id) {
            return true;
        }
        match self.sender.sequence_key(item) {
            Some(key) => {
                self.flying_keys.contains(&key)
                    || self
                        .first_in_line
                        .get(&key)
                        .is_some_and(|first| *first != item.id)
            }
            None => false,
        }
    }

    /// How long a call of `kind` must wait before it may start: the
    /// account's pause, then the pacer (whose place is taken now if the
    /// sender lets the worker take it and the wait is zero).
    fn pace_wait(&mut self, kind: JobKind) -> Duration {
        if let Some(until) = self.paused_until {
            let now = Instant::now();
            if until > now {
                return until - now;
            }
            self.paused_until = None;
        }
        let (pacer, operation) = self.sender.pacing(kind);
        if self.sender.worker_takes_pace() {
            pacer.take_now(operation, 1)
        } else {
            pacer.delay(operation, 1)
        }
    }

    /// Resolves when the pacer hears of allowance freed for calls of
    /// `kind`; made before the pacer is asked for the wait, so that a report
    /// in between is not missed.
    fn pace_freed(&self, kind: JobKind) -> OwnedNotified {
        let (pacer, operation) = self.sender.pacing(kind);
        pacer.reported(operation)
    }

    /// Waits up to `d` (for new items too when `queued`, less if `freed`
    /// resolves first), recording a call that ends meanwhile. While no call
    /// is in flight the wait keeps the watchdog fed; while some are, their
    /// own budgets do.
    async fn wait(&mut self, d: Duration, queued: bool, freed: Option<OwnedNotified>) -> Woke {
        let freed = async move {
            match freed {
                Some(freed) => freed.await,
                None => std::future::pending().await,
            }
        };
        let notify = self.notify.clone();
        let heartbeat = self.heartbeat.clone();
        let idle = self.calls.is_empty();
        let timer = async {
            if idle {
                heartbeat.pause(d).await;
            } else {
                tokio::time::sleep(d).await;
            }
        };
        let woke = tokio::select! {
            Some(done) = self.calls.join_next(), if !idle => Ok(done),
            _ = notify.notified(), if queued => Err(Woke::Queued),
            _ = timer => Err(Woke::Timer),
            _ = freed => Err(Woke::Timer),
            _ = self.stop.wait_for(|s| *s) => Err(Woke::Stop),
        };
        match woke {
            Ok(done) => {
                self.ended(done);
                Woke::CallEnded
            }
            Err(woke) => woke,
        }
    }

    /// Starts one call (one item, or a batch of one kind) in flight.
    fn start(&mut self, items: Vec<OutboxItem>) {
        let Some(first) = items.first() else {
            return;
        };
        let kind = first.job.kind();
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
        for item in &items {
            self.flying.insert(item.id.clone());
            if let Some(key) = self.sender.sequence_key(item) {
                self.flying_keys.insert(key);
            }
        }
        let timeout = self
            .options
            .call_timeout
            .unwrap_or_else(|| self.sender.call_timeout());
        let beat = self.heartbeat.clone();
        let keepalive: Keepalive = Arc::new(move |d| beat.busy(d));
        let sender = self.sender.clone();
        let started = Instant::now();
        self.calls.spawn(async move {
            let verdicts = {
                let send = async {
                    match items.as_slice() {
                        [item] => vec![sender.send(item).await],
                        batch => sender.send_batch(batch).await,
                    }
                };
                bounded(timeout, Some(keepalive), send)
                    .instrument(span.clone())
                    .await
                    .ok()
            };
            Finished {
                items,
                verdicts,
                started,
                timeout,
                span,
            }
        });
    }

    /// Records the outcome of a call that ended.
    fn ended(&mut self, done: Result<Finished, tokio::task::JoinError>) {
        let done = match done {
            Ok(done) => done,
            // A call that panicked is a bug: the worker dies with it, as it
            // did when calls ran inside it, and the watchdog sees it.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime that is shutting down cancels a call.
            Err(_) => return,
        };
        for item in &done.items {
            self.flying.remove(&item.id);
            if let Some(key) = self.sender.sequence_key(item) {
                self.flying_keys.remove(&key);
            }
        }
        let Some(first) = done.items.first() else {
            return;
        };
        let pushed = metrics::AccountKind {
            account: self.account.clone(),
            kind: first.job.kind().as_str(),
        };
        self.metrics
            .push
            .get_or_create(&pushed)
            .observe(metrics::seconds(done.started.elapsed()));
        let _entered = done.span.enter();
        let mut verdicts = done.verdicts.unwrap_or_default().into_iter();
        let mut record = CallRecord {
            started: done.started,
            account_delay: None,
        };
        for item in &done.items {
            let verdict = verdicts.next().unwrap_or_else(|| {
                Verdict::Failed(ConnectorError::Transient(format!(
                    "no answer within {} s",
                    done.timeout.as_secs_f64()
                )))
            });
            if let Err(e) = self.record(item, verdict, &mut record) {
                // The item stays pending and is sent again: every push carries an
                // idempotency key, and deliveries a stable delivery id.
                tracing::warn!(account = %self.account, item = %item.id, error = %e, "recording an outbox outcome failed");
            }
        }
    }

    /// Whether a call that started at `started` began after the account's
    /// latest backoff (so its success says the far side recovered, and its
    /// failure is news).
    fn after_backoff(&self, started: Instant) -> bool {
        self.paused_at.is_none_or(|at| started >= at)
    }

    /// The item's key no longer waits for it.
    fn left_queue(&mut self, item: &OutboxItem) {
        if let Some(key) = self.sender.sequence_key(item)
            && self.first_in_line.get(&key) == Some(&item.id)
        {
            self.first_in_line.remove(&key);
        }
    }

    /// The item left the queue (sent, or nothing left to send): a call
    /// that went through after the account's backoff ends it.
    fn went_through(&mut self, item: &OutboxItem, call: &CallRecord) {
        if self.after_backoff(call.started) {
            self.account_backoff.reset();
        }
        self.left_queue(item);
    }

    /// Counts and logs an item that left the queue (`skipped`: why it was
    /// not sent).
    fn sent(&self, item: &OutboxItem, skipped: Option<&str>) {
        match skipped {
            None => {
                self.count("sent");
                tracing::debug!(account = %self.account, item = %item.id, kind = %item.job.kind(), "sent");
            }
            Some(reason) => {
                self.count("skipped");
                tracing::info!(account = %self.account, item = %item.id, %reason, "not sent: nothing left to do");
            }
        }
    }

    /// The item goes again later, before the later items of its key.
    fn goes_again(&mut self, item: &OutboxItem) {
        if let Some(key) = self.sender.sequence_key(item) {
            self.first_in_line.insert(key, item.id.clone());
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
                self.went_through(item, call);
                self.store.outbox_complete(&item.id)?;
                self.sent(item, None);
                if let Some(f) = follow_up {
                    f()?;
                }
            }
            Verdict::Again { after, note } => {
                if self.after_backoff(call.started) {
                    self.account_backoff.reset();
                }
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
                self.goes_again(item);
                self.store.outbox_reschedule(&item.id, at, &note)?;
                tracing::debug!(account = %self.account, item = %item.id, %note, "sending again");
            }
            Verdict::Dead(reason) => self.kill(item, &reason)?,
            Verdict::Noted { skipped } => {
                self.went_through(item, call);
                self.sent(item, skipped.as_deref());
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
                    // so a far side that is down is not hit once per item,
                    // nor backed off once per call that was in flight when
                    // it started failing.
                    let account = match call.account_delay {
                        Some(d) => d,
                        None => {
                            let d = self.account_delay(call.started, retry_after);
                            call.account_delay = Some(d);
                            d
                        }
                    };
                    let delay = own.max(account);
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
                    self.goes_again(item);
                    self.store
                        .outbox_reschedule(&item.id, at, &error.to_string())?;
                    tracing::info!(account = %self.account, item = %item.id, kind = %item.job.kind(), class = error.class(), retry_in_ms = crate::pacing::millis(delay), error = %error, "outbound call failed; will retry");
                }
            },
        }
        Ok(())
    }

    /// The pause of the whole account after a failed call that started at
    /// `started`: the next step of its backoff (a longer retry-after wins),
    /// unless the call was in flight when the current backoff began, which
    /// it then only lengthens to a retry-after.
    fn account_delay(&mut self, started: Instant, retry_after: Option<Duration>) -> Duration {
        let now = Instant::now();
        if self.after_backoff(started) {
            let d = self.account_backoff.next_delay(retry_after);
            self.paused_until = Some(now + d);
            self.paused_at = Some(now);
            return d;
        }
        let left = self
            .paused_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        let d = left.max(retry_after.unwrap_or_default());
        self.paused_until = Some(now + d);
        d
    }

    /// One outbound call's outcome, for `switchyard_outbox_pushes_total`.
    fn count(&self, outcome: &'static str) {
        metrics::count_push(&self.metrics, outcome);
    }

    fn kill(&mut self, item: &OutboxItem, reason: &str) -> Result<(), StoreError> {
        self.left_queue(item);
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

    fn free(_: &OutboxItem) -> bool {
        false
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
        let call = take_call(&mut due, limit, no_key, free);
        assert_eq!(ids(&call), ["1", "3", "5", "6"]);
        assert_eq!(ids(&due), ["2", "4", "7"]);
        assert_eq!(ids(&take_call(&mut due, limit, no_key, free)), ["2"]);
        assert_eq!(ids(&take_call(&mut due, limit, no_key, free)), ["4", "7"]);
        assert!(due.is_empty());
        assert!(take_call(&mut due, limit, no_key, free).is_empty());
    }

    #[test]
    fn without_a_batch_limit_every_call_is_one_item_in_due_order() {
        let mut due = vec![
            item("1", "stock", Some("stock:A")),
            item("2", "stock", Some("stock:B")),
        ];
        assert_eq!(ids(&take_call(&mut due, |_| 1, no_key, free)), ["1"]);
        assert_eq!(ids(&take_call(&mut due, |_| 0, no_key, free)), ["2"]);
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
            ids(&take_call(&mut due, limit, listing, free)),
            ["A1", "A2", "A3"]
        );
        assert_eq!(ids(&take_call(&mut due, limit, listing, free)), ["B1"]);
        assert_eq!(ids(&take_call(&mut due, limit, listing, free)), ["X", "Y"]);
        assert!(due.is_empty());
    }
    /// A far side that takes `took` per call, refuses the first with a 429
    /// and `refuse_first` as its Retry-After when given, and logs when each
    /// call started and ended (paused time).
    struct Timed {
        pacer: Arc<AccountPacer>,
        width: usize,
        took: Duration,
        refuse_first: Option<Duration>,
        log: Arc<parking_lot::Mutex<Vec<(String, Instant, Instant)>>>,
        in_flight: std::sync::atomic::AtomicUsize,
        most: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Sender for Timed {
        fn pacing(&self, _kind: JobKind) -> (&AccountPacer, Operation) {
            (&self.pacer, Operation::PushTracking)
        }
        fn call_timeout(&self) -> Duration {
            Duration::from_secs(60)
        }
        fn concurrency(&self) -> usize {
            self.width
        }
        fn sequence_key(&self, item: &OutboxItem) -> Option<String> {
            item.job.order_id().map(str::to_owned)
        }
        fn worker_takes_pace(&self) -> bool {
            true
        }
        fn send(&self, item: &OutboxItem) -> impl Future<Output = Verdict> + Send {
            use std::sync::atomic::Ordering::SeqCst;
            async move {
                let start = Instant::now();
                let now = self.in_flight.fetch_add(1, SeqCst) + 1;
                self.most.fetch_max(now, SeqCst);
                tokio::time::sleep(self.took).await;
                self.in_flight.fetch_sub(1, SeqCst);
                let first = {
                    let mut log = self.log.lock();
                    log.push((item.id.clone(), start, Instant::now()));
                    log.len() == 1
                };
                match self.refuse_first {
                    Some(wait) if first => Verdict::Failed(ConnectorError::RateLimited {
                        retry_after: Some(wait),
                        detail: "HTTP 429: slow down".to_owned(),
                    }),
                    _ => Verdict::Done(None),
                }
            }
        }
    }

    /// A store holding `n` deliveries-like items (one order each) for
    /// account `dest`.
    async fn store_with(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::store::StoreOptions::default()).unwrap();
        let now = Utc::now();
        let items = (0..n)
            .map(|i| crate::store::NewOutboxItem {
                account: "dest".to_owned(),
                job: Job::PushTracking {
                    order_id: format!("order-{i}"),
                    tracking_number: "1Z".to_owned(),
                },
                coalesce_key: None,
                not_before: now,
            })
            .collect();
        store.outbox_add(items, now).unwrap();
        // On disk before the worker starts, as the webhook that queued them
        // would have made them: the worker then never waits for the flusher
        // thread, whose real time would let paused time jump ahead.
        store.flush().await.unwrap();
        (dir, store)
    }

    /// `sender` over `pacer`, one call at a time, each taking `took`.
    fn timed(pacer: Arc<AccountPacer>, width: usize, took: Duration) -> Timed {
        Timed {
            pacer,
            width,
            took,
            refuse_first: None,
            log: Arc::default(),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            most: Arc::default(),
        }
    }

    /// Runs a worker for account `dest` until told to stop.
    fn spawn_worker(
        sender: Timed,
        store: &Store,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let (stop, rx) = watch::channel(false);
        let outbox = Outbox::default();
        let worker = Worker::new(
            "dest".to_owned(),
            sender,
            store.clone(),
            &outbox,
            OutboxOptions::default(),
            rx,
        );
        (stop, tokio::spawn(worker.run()))
    }

    /// Queues `n` deliveries-like items (one order each) and runs a worker
    /// over them at `rate` a second, `width` at once, until `done` calls
    /// ended: answers the log of calls and the most in flight at once.
    async fn run_timed(
        n: usize,
        rate: f64,
        width: usize,
        took: Duration,
        refuse_first: Option<Duration>,
        done: usize,
    ) -> (Vec<(String, Instant, Instant)>, usize, Store) {
        let (dir, store) = store_with(n).await;
        let pacer = AccountPacer::adaptive("dest", crate::pacing::AdaptiveRate::new(rate));
        let sender = Timed {
            refuse_first,
            ..timed(pacer, width, took)
        };
        let (log, most) = (sender.log.clone(), sender.most.clone());
        let (stop, task) = spawn_worker(sender, &store);
        for _ in 0..6000 {
            if log.lock().len() >= done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(true);
        task.await.unwrap();
        drop(dir);
        let log = log.lock().clone();
        (log, most.load(std::sync::atomic::Ordering::SeqCst), store)
    }

    #[tokio::test(start_paused = true)]
    async fn calls_start_at_the_rate_and_never_more_than_concurrency_at_once() {
        let (log, most, _store) = run_timed(6, 10.0, 2, Duration::from_millis(250), None, 6).await;
        assert_eq!(log.len(), 6);
        assert_eq!(most, 2, "two in flight together, never three");
        let mut starts: Vec<Instant> = log.iter().map(|(_, s, _)| *s).collect();
        starts.sort();
        for pair in starts.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::from_millis(99), "10 a second: {gap:?}");
        }
        // Two at once and 10 a second: the sixth starts at 0.6 s (one at a
        // time, 250 ms each, would be 1.25 s).
        let span = starts[5] - starts[0];
        assert!(span < Duration::from_millis(700), "{span:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_holds_every_later_call_of_the_account() {
        let wait = Duration::from_secs(30);
        let (log, _most, store) =
            run_timed(4, 100.0, 2, Duration::from_millis(50), Some(wait), 4).await;
        // The refused call, the one already in flight beside it, then the
        // others no sooner than the Retry-After.
        assert_eq!(log.len(), 4, "{log:?}");
        let refused_at = log[0].2;
        assert!(log[1].1 < refused_at);
        for (id, start, _) in &log[2..] {
            assert!(*start - refused_at >= wait, "{id} went early");
        }
        // The refused item waits for its own next attempt, with the reason.
        let pending = store.outbox_list(false).unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].id, log[0].0);
        let error = pending[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("429"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_push_held_for_the_daily_allowance_goes_when_a_report_says_it_refilled() {
        use switchyard_contract::{Pacer as _, RateHint, RateLimit, RateWindow};
        let (dir, store) = store_with(1).await;
        let unlimited = RateLimit {
            per_second: f64::INFINITY,
            burst: 1,
        };
        let pacer = AccountPacer::fixed("dest", unlimited, crate::pacing::PacerOptions::default());
        // 1% of the day's allowance left: pushes wait about two hours for
        // the 10% reserve.
        let daily = RateHint {
            capacity: 10_000,
            remaining: 100,
            restore_per_second: 10_000.0 / 86_400.0,
            observed_at: Utc::now(),
            window: RateWindow::Daily,
        };
        pacer.observe(Operation::PushTracking, daily);
        assert!(pacer.delay(Operation::PushTracking, 1) > Duration::from_secs(3600));
        let sender = timed(pacer.clone(), 1, Duration::from_millis(10));
        let log = sender.log.clone();
        let started = Instant::now();
        let (stop, task) = spawn_worker(sender, &store);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(log.lock().is_empty(), "held back by the daily reserve");
        // The channel's day started over: a reply reports it full again.
        pacer.observe(
            Operation::PushTracking,
            RateHint {
                remaining: 10_000,
                observed_at: Utc::now(),
                ..daily
            },
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let log = log.lock().clone();
        assert_eq!(log.len(), 1, "the push went once the refill was reported");
        assert_eq!(log[0].1 - started, Duration::from_secs(60), "and at once");
        let _ = stop.send(true);
        task.await.unwrap();
        drop(dir);
    }
}
