//! Pacing: when the next call to a channel or destination may go, and how
//! long to wait before a retry. This module depends on nothing else in the
//! crate; its clock is tokio's, so that tests can pause time.
//!
//! - Retry delays: exponential with jitter and a cap ([`Backoff`],
//!   [`item_delay`]). The only module that names the `backoff` crate
//!   (flagged unmaintained), so it can be swapped in one place.
//! - The account pacer ([`AccountPacer`], the contract's `Pacer`): one per
//!   account, shared by everything that calls the channel for it (poll
//!   loop, fetch jobs, outbox worker, `sync` backfills, start-up checks).
//!   Per [`Operation`] it keeps a token bucket seeded from the connector's
//!   published `rate_limit(operation)` (run at `rate_safety` × the rate and
//!   `burst_share` × the burst: the unused part of the channel's own bucket
//!   absorbs network jitter, which can make requests arrive closer together
//!   than they were sent, and leaves room for the account's other
//!   operations), re-seeded when the published limit changes (a Shopify
//!   shop on a bigger plan). On top, it follows what the channel reports
//!   ([`RateHint`]): in the burst window an operation waits while the
//!   channel's bucket is below its low-water mark (polls keep the channel's
//!   `poll_low_water`, leaving the rest to pushes); in the daily window
//!   pushes stop while less than `daily_reserve` of the day's allowance is
//!   left, so that orders keep coming in, and everything stops at zero. A
//!   report from a call that went out before the report in force arrived
//!   frees nothing (the contract's `SeenHint::overtaken_by`, the rule a
//!   connector keeping its own copy of the reports follows too): calls side
//!   by side are answered in one order and read in the other, and the older
//!   answer would give back spent allowance. A 429 holds the operation for
//!   its retry-after ([`AccountPacer::hold`]). The daily reserve is the
//!   operator's business (stock and tracking go out late): the pacer logs
//!   once when it starts holding pushes back and once when it stops, and
//!   answers whether it holds them now
//!   ([`AccountPacer::daily_reserve_holding`], for `/metrics`).
//!   A report that frees allowance (a daily window that reset) wakes
//!   whoever sleeps on a wait for that operation, in the pacer or in an
//!   outbox worker ([`AccountPacer::reported`]), to ask again at once
//!   rather than sleep out a wait computed from the older report.
//! - Call scopes ([`bounded`]): a call's time budget that does not count
//!   the pacer's waits. A channel that allows one call a minute is slow,
//!   not stalled: every wait in the pacer moves the scope's deadline and
//!   tells its keep-alive (the systemd watchdog heartbeat of the worker
//!   that made the call) how long the call may now take.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use backoff::backoff::Backoff as _;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, MutexGuard, RwLock};
use switchyard_contract::{
    BoxFuture, Connector, Operation, Pacer, RateHint, RateLimit, RateWindow, SeenHint,
};
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Instant;

/// Whole milliseconds of `d` for logs and clocks, saturating (a `u64` of
/// milliseconds outlasts any process).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A sequence of growing, jittered delays; `reset` after a success.
pub struct Backoff(backoff::ExponentialBackoff);

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff(backoff::ExponentialBackoff {
            initial_interval: initial,
            current_interval: initial,
            max_interval: max,
            multiplier: 2.0,
            randomization_factor: 0.3,
            // Never give up: the caller decides when to stop.
            max_elapsed_time: None,
            ..backoff::ExponentialBackoff::default()
        })
    }

    /// The next delay; a channel's retry-after wins when it asks for longer.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let computed = self.0.next_backoff().unwrap_or(self.0.max_interval);
        match retry_after {
            Some(ra) if ra > computed => ra,
            _ => computed,
        }
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }
}

/// The delay before retry number `attempts + 1` of one item: exponential
/// from `initial` with jitter, capped at `max`; a longer retry-after wins.
pub fn item_delay(
    initial: Duration,
    max: Duration,
    attempts: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let mut b = Backoff::new(initial, max);
    // Steps past ~30 are all at the cap.
    for _ in 0..attempts.min(32) {
        b.next_delay(None);
    }
    b.next_delay(retry_after)
}

// --- the account pacer -------------------------------------------------------

/// The longest wait one burst-window report can impose on its own (a bad
/// report must not stop an account for long).
const MAX_BURST_WAIT: Duration = Duration::from_secs(60);
/// The longest wait one daily-window report can impose.
const MAX_DAILY_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The longest hold a 429 can impose.
const MAX_HOLD: Duration = Duration::from_secs(3600);

/// How an account pacer runs against what the channel publishes and reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerOptions {
    /// The fraction of a published rate to use, in (0, 1].
    pub rate_safety: f64,
    /// The fraction of a published burst to use (at least one call), in (0, 1].
    pub burst_share: f64,
    /// Operations other than polls wait while the channel reports its
    /// bucket below this fraction (and below one unit).
    pub low_water: f64,
    /// Polls wait while the channel reports its bucket below this fraction
    /// (the connector's `ChannelHints::poll_low_water`).
    pub poll_low_water: f64,
    /// Pushes wait while less than this fraction of the channel's daily
    /// allowance is left; orders coming in may spend the rest.
    pub daily_reserve: f64,
}

impl Default for PacerOptions {
    fn default() -> Self {
        PacerOptions {
            rate_safety: 0.9,
            burst_share: 0.5,
            low_water: 0.1,
            poll_low_water: 0.0,
            daily_reserve: 0.1,
        }
    }
}

type Limits = Arc<dyn Fn(Operation) -> RateLimit + Send + Sync>;

/// One account's budget keeper. Cheap to share behind an `Arc`.
pub struct AccountPacer {
    account: String,
    options: RwLock<PacerOptions>,
    limits: RwLock<Limits>,
    state: Mutex<BTreeMap<Operation, OpState>>,
    /// Microseconds spent waiting, all operations together (`/metrics`).
    waited_us: AtomicU64,
    /// When the latest wait that has not ended yet ends, and for what
    /// (`/readyz`, `sync`'s progress).
    waiting: Mutex<Option<(Operation, DateTime<Utc>)>>,
    /// Whether the daily reserve held pushes back when last looked at, so
    /// that only its changes are logged. Changed under the state lock.
    reserve_holding: AtomicBool,
}

impl std::fmt::Debug for AccountPacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountPacer")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct OpState {
    /// The published limit the bucket was seeded from.
    limit: Option<RateLimit>,
    /// `None`: unlimited (a rate of zero or infinity means "no limit").
    bucket: Option<Bucket>,
    burst: Option<SeenHint>,
    daily: Option<SeenHint>,
    held_until: Option<Instant>,
    /// Told when a report frees allowance, so that sleepers ask again.
    freed: Arc<Notify>,
}

struct Bucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(limit: RateLimit, options: &PacerOptions) -> Option<Bucket> {
        let fraction = |f: f64| {
            if f.is_finite() && f > 0.0 {
                f.min(1.0)
            } else {
                1.0
            }
        };
        let per_second = limit.per_second * fraction(options.rate_safety);
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        let capacity = (f64::from(limit.burst) * fraction(options.burst_share))
            .floor()
            .max(1.0);
        Some(Bucket {
            per_second,
            capacity,
            tokens: capacity,
            at: Instant::now(),
        })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.at = now;
    }

    /// How long until `cost` may be taken (a cost above the capacity waits
    /// for a full bucket and leaves it in debt).
    fn wait(&self, cost: f64) -> Duration {
        let need = cost.min(self.capacity);
        if self.tokens >= need {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((need - self.tokens) / self.per_second)
            .max(Duration::from_millis(1))
    }
}

/// Whether a wait computed from `earlier` may be too long now that `seen`
/// replaces it: it shows more room, or the bucket itself changed (a
/// smaller one lowers the low-water mark), or `earlier` limited nothing.
/// A sleeper woken for nothing only asks again.
fn may_shorten_waits(seen: &SeenHint, earlier: &SeenHint, now: Instant) -> bool {
    seen.roomier_than(earlier, now)
        || seen.hint.capacity != earlier.hint.capacity
        || !earlier.limits()
}

/// The wait until the bucket `seen` reports holds `mark` (a fraction of its
/// capacity, at least `floor` units), refilled at the reported rate.
fn report_wait(seen: &SeenHint, mark: f64, floor: f64, cap: Duration, now: Instant) -> Duration {
    let h = &seen.hint;
    if !seen.limits() {
        return Duration::ZERO;
    }
    let capacity = f64::from(h.capacity);
    let remaining = seen.level(now);
    let mark = (capacity * mark).max(floor).min(capacity);
    if remaining >= mark {
        return Duration::ZERO;
    }
    Duration::from_secs_f64((mark - remaining) / h.restore_per_second).min(cap)
}

impl AccountPacer {
    /// A pacer that uses [`RateLimit::CONSERVATIVE`] until it is told whose
    /// published limits to follow ([`AccountPacer::follow`]).
    pub fn new(account: impl Into<String>, options: PacerOptions) -> Arc<AccountPacer> {
        AccountPacer::fixed(account, RateLimit::CONSERVATIVE, options)
    }

    /// A pacer with one published limit for every operation (a destination).
    pub fn fixed(
        account: impl Into<String>,
        limit: RateLimit,
        options: PacerOptions,
    ) -> Arc<AccountPacer> {
        Arc::new(AccountPacer {
            account: account.into(),
            options: RwLock::new(options),
            limits: RwLock::new(Arc::new(move |_| limit)),
            state: Mutex::new(BTreeMap::new()),
            waited_us: AtomicU64::new(0),
            waiting: Mutex::new(None),
            reserve_holding: AtomicBool::new(false),
        })
    }

    /// A pacer for a destination: its calls spread evenly at `rate`'s
    /// current figure (a burst of one), which follows what the destination
    /// answers ([`AdaptiveRate`]). Its limit is the operator's own setting,
    /// not a published one, so it is used whole.
    pub fn adaptive(account: impl Into<String>, rate: Arc<AdaptiveRate>) -> Arc<AccountPacer> {
        let pacer = AccountPacer::fixed(
            account,
            RateLimit::CONSERVATIVE,
            PacerOptions {
                rate_safety: 1.0,
                burst_share: 1.0,
                ..PacerOptions::default()
            },
        );
        let limits: Limits = Arc::new(move |_| RateLimit {
            per_second: rate.current(),
            burst: 1,
        });
        *pacer.limits.write() = limits;
        pacer
    }

    /// Seeds from `connector`'s published limits from now on, asking again
    /// before each call (they can change with what the channel reports),
    /// and keeps its polls' low-water mark. Holds the connector weakly: the
    /// connector holds this pacer.
    pub fn follow(&self, connector: &Arc<dyn Connector>) {
        self.options.write().poll_low_water = connector.hints().poll_low_water;
        let weak: Weak<dyn Connector> = Arc::downgrade(connector);
        let limits: Limits = Arc::new(move |op| {
            weak.upgrade()
                .map_or(RateLimit::CONSERVATIVE, |c| c.rate_limit(op))
        });
        *self.limits.write() = limits;
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn options(&self) -> PacerOptions {
        *self.options.read()
    }

    /// How long a call of `operation` costing `cost` would wait now.
    pub fn delay(&self, operation: Operation, cost: u32) -> Duration {
        let limit = self.limit(operation);
        let now = Instant::now();
        let mut state = self.lock();
        let op = self.op_state(&mut state, operation, limit);
        let wait = self.wait_of(op, operation, f64::from(cost), now);
        self.note_reserve(&state, now);
        wait
    }

    /// Waits until a call of `operation` costing `cost` could go, without
    /// spending anything (a worker waits here, where it can notice
    /// shutdown, before it calls the connector, which then acquires).
    pub async fn ready(&self, operation: Operation, cost: u32) {
        self.wait_for(operation, cost, false).await;
    }

    /// Takes a call of `operation` costing `cost` if it may go now (and
    /// returns zero), else returns how long it would wait, spending
    /// nothing. For a worker that starts several calls at once: it takes
    /// each call's place before starting it, so no call waits in the
    /// pacer while it holds a slot.
    pub fn take_now(&self, operation: Operation, cost: u32) -> Duration {
        let limit = self.limit(operation);
        let now = Instant::now();
        let mut state = self.lock();
        let op = self.op_state(&mut state, operation, limit);
        let wait = self.wait_of(op, operation, f64::from(cost), now);
        if wait.is_zero()
            && let Some(bucket) = op.bucket.as_mut()
        {
            bucket.tokens -= f64::from(cost);
        }
        self.note_reserve(&state, now);
        wait
    }

    /// The channel said to wait (a 429's retry-after): nothing of
    /// `operation` goes before then.
    pub fn hold(&self, operation: Operation, wait: Duration) {
        let until = Instant::now() + wait.min(MAX_HOLD);
        let mut state = self.lock();
        let op = state.entry(operation).or_default();
        op.held_until = Some(op.held_until.map_or(until, |u| u.max(until)));
    }

    /// Seconds spent waiting so far, every operation together.
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_us.load(Ordering::Relaxed))
    }

    /// The wait in progress, if one is: for what and until when.
    pub fn waiting(&self) -> Option<(Operation, DateTime<Utc>)> {
        let waiting = *self.waiting.lock();
        waiting.filter(|(_, until)| *until > Utc::now())
    }

    /// Whether the channel's daily allowance is so low that pushes wait for
    /// it to refill while orders keep coming in (logged when that changes).
    pub fn daily_reserve_holding(&self) -> bool {
        let state = self.lock();
        self.note_reserve(&state, Instant::now())
    }

    /// Looks at what the daily reserve holds back now and logs when that
    /// starts or stops: one line per change, however many calls ask. Looked
    /// at on every call and scrape rather than when a report arrives, as a
    /// channel tells each operation in turn and the allowance refills with
    /// no report at all.
    fn note_reserve(&self, state: &BTreeMap<Operation, OpState>, now: Instant) -> bool {
        let reserve = self.options().daily_reserve;
        let mut held = Vec::new();
        let mut longest = Duration::ZERO;
        for (operation, op) in state {
            let Some(seen) = op.daily.as_ref().filter(|_| !operation.is_ingest()) else {
                continue;
            };
            let wait = report_wait(seen, reserve, 1.0, MAX_DAILY_WAIT, now);
            if !wait.is_zero() {
                held.push(operation.as_str());
                longest = longest.max(wait);
            }
        }
        let holding = !held.is_empty();
        if self.reserve_holding.swap(holding, Ordering::Relaxed) != holding {
            if holding {
                let until = Utc::now() + chrono::Duration::from_std(longest).unwrap_or_default();
                tracing::warn!(
                    account = %self.account,
                    operations = %held.join(","),
                    until = %until.to_rfc3339(),
                    reserve = reserve,
                    "the channel's daily allowance is low: holding these pushes back until it refills, orders keep coming in"
                );
            } else {
                tracing::info!(account = %self.account, "the channel's daily allowance is above its reserve again: pushes go out");
            }
        }
        holding
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Operation, OpState>> {
        self.state.lock()
    }

    fn limit(&self, operation: Operation) -> RateLimit {
        // Read outside the state lock: it calls into the connector.
        let limits = self.limits.read().clone();
        limits(operation)
    }

    /// The operation's state, its bucket re-seeded if the limit changed.
    fn op_state<'s>(
        &self,
        state: &'s mut BTreeMap<Operation, OpState>,
        operation: Operation,
        limit: RateLimit,
    ) -> &'s mut OpState {
        let op = state.entry(operation).or_default();
        if op.limit != Some(limit) {
            let mut bucket = Bucket::new(limit, &self.options());
            // A new limit does not hand out a fresh burst on top of what
            // was just spent.
            if let (Some(new), Some(old)) = (bucket.as_mut(), op.bucket.as_ref()) {
                new.tokens = old.tokens.min(new.capacity);
                new.at = old.at;
            }
            op.bucket = bucket;
            op.limit = Some(limit);
        }
        op
    }

    fn wait_of(&self, op: &mut OpState, operation: Operation, cost: f64, now: Instant) -> Duration {
        let options = self.options();
        let mut wait = Duration::ZERO;
        if let Some(until) = op.held_until {
            if until > now {
                wait = until - now;
            } else {
                op.held_until = None;
            }
        }
        if let Some(bucket) = op.bucket.as_mut() {
            bucket.refill(now);
            wait = wait.max(bucket.wait(cost));
        }
        if let Some(seen) = &op.burst {
            let mark = if operation == Operation::Poll {
                options.poll_low_water.max(options.low_water)
            } else {
                options.low_water
            };
            wait = wait.max(report_wait(seen, mark, 1.0, MAX_BURST_WAIT, now));
        }
        if let Some(seen) = &op.daily {
            let mark = if operation.is_ingest() {
                0.0
            } else {
                options.daily_reserve
            };
            wait = wait.max(report_wait(seen, mark, 1.0, MAX_DAILY_WAIT, now));
        }
        wait
    }

    /// Sleeps `wait` on behalf of a call, or until `freed` (a report that
    /// frees allowance) if that comes first: the call's scope (if any) gets
    /// the time slept back, and the wait shows in [`AccountPacer::waiting`].
    /// `announced`: when the caller's wait was last said to end, so that a
    /// wait asked again after a report is logged only if it ends later.
    async fn pause(
        &self,
        operation: Operation,
        wait: Duration,
        freed: OwnedNotified,
        announced: &mut Option<DateTime<Utc>>,
    ) {
        let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        *self.waiting.lock() = Some((operation, until));
        if announced.is_none_or(|a| until > a) {
            *announced = Some(until);
            if wait >= Duration::from_secs(5) {
                tracing::info!(account = %self.account, operation = %operation, until = %until.to_rfc3339(), "waiting for the channel's rate limit");
            } else {
                tracing::debug!(account = %self.account, operation = %operation, wait_ms = millis(wait), "waiting for the channel's rate limit");
            }
        }
        let _ = CALL.try_with(|scope| scope.extend(wait));
        let started = Instant::now();
        let cut_short = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = freed => true,
        };
        let slept = started.elapsed().min(wait);
        if cut_short {
            let _ = CALL.try_with(|scope| scope.give_back(wait - slept));
            let mut waiting = self.waiting.lock();
            if *waiting == Some((operation, until)) {
                *waiting = None;
            }
        }
        let micros = u64::try_from(slept.as_micros()).unwrap_or(u64::MAX);
        self.waited_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// Resolves when a report on `operation` frees allowance (more left
    /// than the last report counted on). Whoever sleeps on a wait this
    /// pacer gave for `operation` also waits on this, made before the wait
    /// was asked so that a report in between is not missed, and asks again
    /// when it resolves.
    pub fn reported(&self, operation: Operation) -> OwnedNotified {
        let freed = self.lock().entry(operation).or_default().freed.clone();
        freed.notified_owned()
    }

    async fn take(&self, operation: Operation, cost: u32) {
        self.wait_for(operation, cost, true).await;
    }

    /// Waits until a call of `operation` costing `cost` could go, taking
    /// its place then if `take`; asks again whenever a report frees
    /// allowance meanwhile.
    async fn wait_for(&self, operation: Operation, cost: u32, take: bool) {
        let mut announced = None;
        loop {
            let freed = self.reported(operation);
            let wait = if take {
                self.take_now(operation, cost)
            } else {
                self.delay(operation, cost)
            };
            if wait.is_zero() {
                return;
            }
            self.pause(operation, wait, freed, &mut announced).await;
        }
    }
}

impl Pacer for AccountPacer {
    fn acquire(&self, operation: Operation, cost: u32) -> BoxFuture<'_, ()> {
        Box::pin(self.take(operation, cost))
    }

    fn observe(&self, operation: Operation, hint: RateHint) {
        self.report(operation, hint, None);
    }

    fn observe_answer(&self, operation: Operation, hint: RateHint, sent: Instant) {
        self.report(operation, hint, Some(sent));
    }
}

impl AccountPacer {
    /// Takes the channel's report on `operation`'s limits, from the answer
    /// to a call that went out at `sent` when that is known. A report
    /// overtaken by the one in force ([`SeenHint::overtaken_by`]: sent
    /// before it arrived, showing more room, as a poll in flight while a
    /// fetch found the day nearly spent) is dropped.
    fn report(&self, operation: Operation, hint: RateHint, sent: Option<Instant>) {
        let seen = SeenHint::new(hint, Instant::now());
        let mut state = self.lock();
        let op = state.entry(operation).or_default();
        let slot = match hint.window {
            RateWindow::Burst => &mut op.burst,
            RateWindow::Daily => &mut op.daily,
        };
        if let (Some(sent), Some(current)) = (sent, slot.as_ref())
            && seen.overtaken_by(current, sent)
        {
            tracing::debug!(account = %self.account, operation = %operation, remaining = hint.remaining, in_force = current.hint.remaining, "a limit report overtaken by a later one: dropped");
            return;
        }
        let earlier = slot.replace(seen);
        // A first report only adds a limit; a later one may lift one.
        if earlier.is_some_and(|e| may_shorten_waits(&seen, &e, seen.seen_at)) {
            op.freed.notify_waiters();
        }
    }
}

// --- a destination's adaptive rate ------------------------------------------

/// The rate a slowdown never goes below (unless the configured rate is lower).
const MIN_ADAPTIVE_RATE: f64 = 0.1;
/// Calls a second each call that goes through gives back after a slowdown:
/// a far side taking calls as fast as they go gets 10% more every second.
const RECOVERY_PER_CALL: f64 = 0.1;
/// The window over which the rate the far side actually saw is counted.
const SEEN_WINDOW: Duration = Duration::from_secs(1);

/// A destination's rate, following what it answers: additive increase,
/// multiplicative decrease, as TCP does with its window.
///
/// - A 429 or 503 ([`AdaptiveRate::slow_down`]) halves the rate, from the
///   rate the destination actually saw in the second before the refused call
///   started when that was lower (a configured 400 a second means nothing to
///   a destination that refuses at 5). Calls that were already in flight
///   when the rate was halved answer from the same overload: their refusals
///   do not halve it again. Never below [`MIN_ADAPTIVE_RATE`].
/// - Each call that goes through ([`AdaptiveRate::went_through`]) adds
///   [`RECOVERY_PER_CALL`] calls a second, up to the configured rate: the
///   rate grows back by a tenth a second while the destination keeps up,
///   and not at all while nothing is sent.
///
/// How long to stop altogether (a `Retry-After`) is the outbox worker's and
/// the pacer's hold; this is the pace once sending resumes.
pub struct AdaptiveRate {
    configured: f64,
    state: Mutex<AdaptiveState>,
}

struct AdaptiveState {
    current: f64,
    /// When the rate was last halved.
    slowed_at: Option<Instant>,
    /// When recent calls started (the last [`SEEN_WINDOW`] and a little).
    starts: std::collections::VecDeque<Instant>,
}

impl std::fmt::Debug for AdaptiveRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveRate")
            .field("configured", &self.configured)
            .field("current", &self.current())
            .finish()
    }
}

impl AdaptiveRate {
    /// Starts at `configured` calls a second (infinity: unlimited, and
    /// it stays so: there is no figure to halve).
    pub fn new(configured: f64) -> Arc<AdaptiveRate> {
        Arc::new(AdaptiveRate {
            configured,
            state: Mutex::new(AdaptiveState {
                current: configured,
                slowed_at: None,
                starts: std::collections::VecDeque::new(),
            }),
        })
    }

    pub fn configured(&self) -> f64 {
        self.configured
    }

    /// Calls a second now.
    pub fn current(&self) -> f64 {
        self.state.lock().current
    }

    /// A call starts now (to know the rate the far side sees).
    pub fn started(&self) {
        let now = Instant::now();
        let mut state = self.state.lock();
        state.starts.push_back(now);
        // Kept a little longer than the window: a refused call's window
        // ends when it started, which may be some time ago.
        while state
            .starts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > SEEN_WINDOW * 4)
        {
            state.starts.pop_front();
        }
    }

    /// The far side refused a call that started at `started` because it is
    /// overloaded. Returns the new rate if this halved it (not when the call
    /// was in flight when an earlier refusal already did).
    pub fn slow_down(&self, started: Instant) -> Option<f64> {
        if !self.configured.is_finite() {
            return None;
        }
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.slowed_at.is_some_and(|at| started < at) {
            return None;
        }
        // Every start since `now` less the kept span is still there, so
        // the window is whole if the refused call started within the rest.
        let whole = now.saturating_duration_since(started) <= SEEN_WINDOW * 3;
        let seen = state
            .starts
            .iter()
            .filter(|t| started.saturating_duration_since(**t) < SEEN_WINDOW && **t <= started)
            .count();
        // Fewer than two calls in the window say nothing about a rate (the
        // first call after a pause).
        let base = if whole && seen >= 2 {
            state.current.min(seen as f64 / SEEN_WINDOW.as_secs_f64())
        } else {
            state.current
        };
        let floor = MIN_ADAPTIVE_RATE.min(self.configured);
        state.current = (base / 2.0).max(floor);
        state.slowed_at = Some(now);
        Some(state.current)
    }

    /// A call went through. Returns true when this brought the rate back to
    /// the configured one.
    pub fn went_through(&self) -> bool {
        let mut state = self.state.lock();
        if state.current >= self.configured {
            return false;
        }
        let next = state.current + RECOVERY_PER_CALL;
        // Within rounding of the configured rate is the configured rate
        // (0.5 and five tenths make 0.9999999999999999).
        state.current = if next >= self.configured - 1e-9 {
            self.configured
        } else {
            next
        };
        state.current >= self.configured
    }
}

// --- call scopes ---------------------------------------------------------------

/// Told how long the call in progress may now take (a worker's watchdog
/// heartbeat: "busy for this long").
pub type Keepalive = Arc<dyn Fn(Duration) + Send + Sync>;

struct CallScope {
    deadline: Mutex<Instant>,
    keepalive: Option<Keepalive>,
}

impl CallScope {
    fn extend(&self, by: Duration) {
        let mut deadline = self.deadline.lock();
        *deadline += by;
        self.tell(*deadline);
    }

    /// Takes back the part of an extension a wait did not use (a report
    /// cut it short): a call woken early has no more time than it waited.
    fn give_back(&self, unused: Duration) {
        let mut deadline = self.deadline.lock();
        *deadline = deadline.checked_sub(unused).unwrap_or(*deadline);
        self.tell(*deadline);
    }

    fn tell(&self, deadline: Instant) {
        if let Some(k) = &self.keepalive {
            k(deadline.saturating_duration_since(Instant::now()));
        }
    }

    fn deadline(&self) -> Instant {
        *self.deadline.lock()
    }
}

tokio::task_local! {
    static CALL: Arc<CallScope>;
}

/// A call that used up its time budget (pacer waits not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no answer within {} s", .0.as_secs_f64())]
pub struct TimedOut(pub Duration);

/// Runs `call` with `budget` of time, not counting the time it waits in an
/// account pacer: each such wait moves the deadline on and tells
/// `keepalive` how long the call may now take. `keepalive` is told the
/// budget first.
pub async fn bounded<F: Future>(
    budget: Duration,
    keepalive: Option<Keepalive>,
    call: F,
) -> Result<F::Output, TimedOut> {
    if let Some(k) = &keepalive {
        k(budget);
    }
    let scope = Arc::new(CallScope {
        deadline: Mutex::new(Instant::now() + budget),
        keepalive,
    });
    let watch = scope.clone();
    CALL.scope(scope, async move {
        tokio::pin!(call);
        loop {
            let deadline = watch.deadline();
            tokio::select! {
                out = &mut call => return Ok(out),
                _ = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= watch.deadline() {
                        return Err(TimedOut(budget));
                    }
                }
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_up_to_the_cap_and_honour_retry_after() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay(None);
        assert!(
            first >= Duration::from_millis(70) && first <= Duration::from_millis(130),
            "{first:?}"
        );
        for _ in 0..20 {
            assert!(b.next_delay(None) <= Duration::from_millis(2600));
        }
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        b.reset();
        assert!(b.next_delay(None) <= Duration::from_millis(130));
    }

    #[test]
    fn item_delays_grow_with_attempts_up_to_the_cap() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(5));
        assert!(item_delay(i, m, 0, None) <= Duration::from_millis(130));
        assert!(item_delay(i, m, 3, None) >= Duration::from_millis(500));
        assert!(item_delay(i, m, 1000, None) <= Duration::from_millis(6500));
        assert_eq!(
            item_delay(i, m, 0, Some(Duration::from_secs(9))),
            Duration::from_secs(9)
        );
    }

    fn exact() -> PacerOptions {
        PacerOptions {
            rate_safety: 1.0,
            burst_share: 1.0,
            ..PacerOptions::default()
        }
    }

    fn limit(per_second: f64, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }

    #[tokio::test(start_paused = true)]
    async fn the_burst_goes_at_once_then_the_rate_paces() {
        let p = AccountPacer::fixed("shop", limit(10.0, 3), exact());
        let start = Instant::now();
        for _ in 0..3 {
            p.acquire(Operation::PushInventory, 1).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        p.acquire(Operation::PushInventory, 1).await;
        let first = start.elapsed();
        assert!(
            first >= Duration::from_millis(99) && first <= Duration::from_millis(101),
            "{first:?}"
        );
        // Other operations have budgets of their own.
        p.acquire(Operation::Poll, 1).await;
        assert_eq!(start.elapsed(), first);
        assert!(p.waited() >= Duration::from_millis(99));
    }

    #[tokio::test(start_paused = true)]
    async fn half_the_burst_is_left_to_the_channel_by_default() {
        let p = AccountPacer::fixed("shop", limit(10.0, 10), PacerOptions::default());
        for _ in 0..5 {
            assert_eq!(p.delay(Operation::PushInventory, 1), Duration::ZERO);
            p.acquire(Operation::PushInventory, 1).await;
        }
        assert!(p.delay(Operation::PushInventory, 1) > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_or_infinite_rates_mean_no_limit() {
        for r in [0.0, f64::INFINITY] {
            let p = AccountPacer::fixed("shop", limit(r, 1), exact());
            let start = Instant::now();
            for _ in 0..1000 {
                p.acquire(Operation::PushTracking, 1).await;
            }
            assert_eq!(start.elapsed(), Duration::ZERO);
        }
    }

    fn hint(remaining: u32, window: RateWindow) -> RateHint {
        RateHint {
            capacity: 2000,
            remaining,
            restore_per_second: 100.0,
            observed_at: Utc::now(),
            window,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_nearly_empty_bucket_report_waits_for_the_refill() {
        let unlimited = limit(f64::INFINITY, 1);
        let p = AccountPacer::fixed(
            "shop",
            unlimited,
            PacerOptions {
                poll_low_water: 0.5,
                ..exact()
            },
        );
        for op in [Operation::Poll, Operation::PushInventory] {
            p.observe(op, hint(50, RateWindow::Burst));
        }
        // Pushes keep 10% (200 points): 150 missing at 100 a second.
        let push = p.delay(Operation::PushInventory, 1);
        assert!((1.49..=1.51).contains(&push.as_secs_f64()), "{push:?}");
        // Polls keep half the bucket for pushes: 950 missing.
        let poll = p.delay(Operation::Poll, 1);
        assert!((9.49..=9.51).contains(&poll.as_secs_f64()), "{poll:?}");
        let start = Instant::now();
        p.acquire(Operation::PushInventory, 1).await;
        assert!(start.elapsed() >= Duration::from_millis(1490));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(p.delay(Operation::Poll, 1), Duration::ZERO);
        // A report of a full bucket lifts the wait at once.
        p.observe(Operation::PushInventory, hint(1500, RateWindow::Burst));
        assert_eq!(p.delay(Operation::PushInventory, 1), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_low_daily_allowance_holds_pushes_before_orders() {
        let p = AccountPacer::fixed("shop", limit(f64::INFINITY, 1), exact());
        let daily = RateHint {
            capacity: 10_000,
            remaining: 500,
            restore_per_second: 10_000.0 / 86_400.0,
            observed_at: Utc::now(),
            window: RateWindow::Daily,
        };
        for op in Operation::ALL {
            p.observe(op, daily);
        }
        // 5% left: pushes wait for 10% again, fetches and polls go on.
        assert!(p.delay(Operation::PushInventory, 1) > Duration::from_secs(3600));
        assert_eq!(p.delay(Operation::Fetch, 1), Duration::ZERO);
        assert_eq!(p.delay(Operation::Poll, 1), Duration::ZERO);
        p.observe(
            Operation::Poll,
            RateHint {
                remaining: 0,
                ..daily
            },
        );
        assert!(p.delay(Operation::Poll, 1) > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_read_after_a_later_one_does_not_bring_spent_allowance_back() {
        let p = AccountPacer::fixed("etsy-main", limit(f64::INFINITY, 1), exact());
        let daily = RateHint {
            capacity: 10_000,
            remaining: 9_990,
            restore_per_second: 10_000.0 / 86_400.0,
            observed_at: Utc::now(),
            window: RateWindow::Daily,
        };
        let tell = |remaining: u32, sent: Instant| {
            for op in Operation::ALL {
                p.observe_answer(
                    op,
                    RateHint {
                        remaining,
                        observed_at: Utc::now(),
                        ..daily
                    },
                    sent,
                );
            }
        };
        tell(9_990, Instant::now());
        // A poll goes out; meanwhile the day's allowance is spent elsewhere
        // (another process on the same app), and a fetch sent after the
        // poll is answered first: 50 left, under the 10% reserve.
        let poll_sent = Instant::now();
        tokio::time::advance(Duration::from_millis(100)).await;
        tell(50, Instant::now());
        assert!(p.daily_reserve_holding());
        // The poll's answer, written before the spending, is read last.
        tokio::time::advance(Duration::from_millis(100)).await;
        tell(9_989, poll_sent);
        assert!(p.daily_reserve_holding());
        assert!(p.delay(Operation::PushInventory, 1) > Duration::from_secs(3600));
        // An answer read late that shows less is taken: it spends more.
        tell(40, poll_sent);
        let wait = p.delay(Operation::PushInventory, 1).as_secs_f64();
        assert!(wait > 960.0 / daily.restore_per_second - 2.0, "{wait}");
        // The channel's day rolls over: a call sent after the low report
        // arrived says so, and pushes go again.
        tokio::time::advance(Duration::from_millis(100)).await;
        tell(10_000, Instant::now());
        assert!(!p.daily_reserve_holding());
        assert_eq!(p.delay(Operation::PushInventory, 1), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waiting_for_the_daily_allowance_goes_when_a_report_says_it_refilled() {
        let p = AccountPacer::fixed("etsy-main", limit(f64::INFINITY, 1), exact());
        // 1% of the day's allowance left: a push waits over two hours for
        // the 10% reserve.
        let daily = RateHint {
            capacity: 10_000,
            remaining: 100,
            restore_per_second: 10_000.0 / 86_400.0,
            observed_at: Utc::now(),
            window: RateWindow::Daily,
        };
        p.observe(Operation::PushInventory, daily);
        assert!(p.delay(Operation::PushInventory, 1) > Duration::from_secs(7000));
        let told = Arc::new(Mutex::new(Vec::<Duration>::new()));
        let keepalive: Keepalive = {
            let told = told.clone();
            Arc::new(move |d| told.lock().push(d))
        };
        let start = Instant::now();
        let push = {
            let p = p.clone();
            tokio::spawn(async move {
                bounded(
                    Duration::from_secs(10),
                    Some(keepalive),
                    p.acquire(Operation::PushInventory, 1),
                )
                .await
                .map(|()| Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!push.is_finished());
        assert!(p.waiting().is_some());
        // A report that spends more changes nothing.
        p.observe(
            Operation::PushInventory,
            RateHint {
                remaining: 50,
                observed_at: Utc::now(),
                ..daily
            },
        );
        tokio::task::yield_now().await;
        assert!(!push.is_finished());
        // The channel's day started over: a reply reports it full again.
        p.observe(
            Operation::PushInventory,
            RateHint {
                remaining: 10_000,
                observed_at: Utc::now(),
                ..daily
            },
        );
        let went = tokio::time::timeout(Duration::from_secs(1), push)
            .await
            .expect("the push goes as soon as the refill is reported")
            .unwrap()
            .expect("within its call budget");
        assert_eq!(went - start, Duration::from_secs(60));
        // What it waited is what it slept, and it waits no more; its call
        // keeps the budget it had, not the two hours it did not wait.
        assert_eq!(p.waited(), Duration::from_secs(60));
        assert_eq!(p.waiting(), None);
        assert_eq!(told.lock().last(), Some(&Duration::from_secs(10)));
    }

    /// The log lines written while it lives (this thread's, plain text).
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Logs {
        fn lines(&self, containing: &str) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock())
                .lines()
                .filter(|l| l.contains(containing))
                .map(str::to_owned)
                .collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_daily_reserve_logs_once_when_it_starts_and_stops_holding_pushes() {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let p = AccountPacer::fixed("etsy-main", limit(f64::INFINITY, 1), exact());
        let daily = RateHint {
            capacity: 10_000,
            remaining: 5_000,
            restore_per_second: 1.0,
            observed_at: Utc::now(),
            window: RateWindow::Daily,
        };
        for op in Operation::ALL {
            p.observe(op, daily);
        }
        assert_eq!(p.delay(Operation::PushInventory, 1), Duration::ZERO);
        assert!(!p.daily_reserve_holding());
        assert!(logs.lines("daily allowance").is_empty());

        // 900 left of 10 000: pushes wait 100 s for the 10% reserve.
        for op in Operation::ALL {
            p.observe(
                op,
                RateHint {
                    remaining: 900,
                    ..daily
                },
            );
        }
        for _ in 0..3 {
            let wait = p.delay(Operation::PushTracking, 1).as_secs_f64();
            assert!((99.0..=100.0).contains(&wait), "{wait}");
            assert_eq!(p.take_now(Operation::Fetch, 1), Duration::ZERO);
        }
        assert!(p.daily_reserve_holding());
        let started = logs.lines("daily allowance is low");
        assert_eq!(started.len(), 1, "{started:?}");
        let line = &started[0];
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("account=etsy-main"), "{line}");
        assert!(
            line.contains("operations=push_inventory,push_tracking"),
            "{line}"
        );
        let until = line
            .split_once("until=")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .unwrap_or_else(|| panic!("an until time in {line}"));
        let ahead = (until.with_timezone(&Utc) - Utc::now()).num_seconds();
        assert!((98..=100).contains(&ahead), "{line}");

        // Refilled past the reserve with no new report: one line, once.
        tokio::time::advance(Duration::from_secs(100)).await;
        p.ready(Operation::PushInventory, 1).await;
        assert!(!p.daily_reserve_holding());
        assert_eq!(p.delay(Operation::PushTracking, 1), Duration::ZERO);
        let stopped = logs.lines("above its reserve again");
        assert_eq!(stopped.len(), 1, "{stopped:?}");
        assert!(stopped[0].contains("account=etsy-main"), "{}", stopped[0]);

        // A later low report starts another hold, logged again.
        for op in Operation::ALL {
            p.observe(
                op,
                RateHint {
                    remaining: 10,
                    observed_at: Utc::now(),
                    ..daily
                },
            );
        }
        assert!(p.daily_reserve_holding());
        assert_eq!(logs.lines("daily allowance is low").len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_published_limit_reseeds_without_a_fresh_burst() {
        let rate = Arc::new(std::sync::atomic::AtomicU32::new(1));
        let r = rate.clone();
        let p = AccountPacer::new("shop", exact());
        *p.limits.write() = Arc::new(move |_| limit(f64::from(r.load(Ordering::SeqCst)), 2));
        p.acquire(Operation::Fetch, 1).await;
        p.acquire(Operation::Fetch, 1).await;
        assert_eq!(p.delay(Operation::Fetch, 1), Duration::from_secs(1));
        rate.store(10, Ordering::SeqCst);
        assert_eq!(p.delay(Operation::Fetch, 1), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_stops_the_operation_until_it_ends() {
        let p = AccountPacer::fixed("shop", limit(f64::INFINITY, 1), exact());
        p.hold(Operation::Poll, Duration::from_secs(30));
        assert_eq!(p.delay(Operation::Poll, 1), Duration::from_secs(30));
        assert_eq!(p.delay(Operation::PushTracking, 1), Duration::ZERO);
        let start = Instant::now();
        p.ready(Operation::Poll, 1).await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_in_the_pacer_do_not_count_against_a_calls_budget() {
        let p = AccountPacer::fixed("amazon", limit(1.0 / 60.0, 1), exact());
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = told.clone();
        let keepalive: Keepalive = Arc::new(move |d| t.lock().push(d));
        let call = async {
            p.acquire(Operation::Poll, 1).await;
            p.acquire(Operation::Poll, 1).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        // A minute's wait for the second search, then 5 s of work: inside
        // a 10 s budget, because the wait is the pacer's.
        assert_eq!(
            bounded(Duration::from_secs(10), Some(keepalive), call).await,
            Ok(())
        );
        let told = told.lock().clone();
        assert_eq!(told[0], Duration::from_secs(10));
        assert!(told[1] >= Duration::from_secs(69), "{told:?}");
        // Work alone past the budget times out.
        let slow = tokio::time::sleep(Duration::from_secs(11));
        assert_eq!(
            bounded(Duration::from_secs(10), None, slow).await,
            Err(TimedOut(Duration::from_secs(10)))
        );
    }
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_halves_the_rate_the_destination_saw_once_per_overload() {
        let rate = AdaptiveRate::new(400.0);
        // Ten calls in the last second: the destination saw 10 a second,
        // not the configured 400, and refused.
        for _ in 0..10 {
            rate.started();
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        let in_flight = Instant::now() - Duration::from_millis(50);
        rate.started();
        let refused = Instant::now();
        assert_eq!(rate.slow_down(refused), Some(5.0));
        // A call already in flight when the rate was halved answers from
        // the same overload: no second halving.
        assert_eq!(rate.slow_down(in_flight), None);
        assert!(close(rate.current(), 5.0));
        // A call started after it and refused again halves again.
        tokio::time::advance(Duration::from_secs(2)).await;
        rate.started();
        assert_eq!(rate.slow_down(Instant::now()), Some(2.5));
        // Each call that goes through gives back a tenth of a call a second.
        for _ in 0..10 {
            assert!(!rate.went_through());
        }
        assert!(close(rate.current(), 3.5), "{}", rate.current());
        assert!(close(rate.configured(), 400.0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_grows_back_to_the_configured_one_and_never_falls_below_the_floor() {
        let rate = AdaptiveRate::new(1.0);
        assert_eq!(rate.slow_down(Instant::now()), Some(0.5));
        let back: Vec<bool> = (0..6).map(|_| rate.went_through()).collect();
        assert_eq!(back, [false, false, false, false, true, false]);
        assert!(close(rate.current(), 1.0));
        for _ in 0..20 {
            tokio::time::advance(Duration::from_secs(5)).await;
            rate.slow_down(Instant::now());
        }
        assert!(close(rate.current(), MIN_ADAPTIVE_RATE));
        // An unlimited rate has nothing to halve.
        let unlimited = AdaptiveRate::new(f64::INFINITY);
        assert_eq!(unlimited.slow_down(Instant::now()), None);
        assert_eq!(unlimited.current(), f64::INFINITY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_destinations_pacer_spaces_calls_at_the_rate_in_force() {
        let rate = AdaptiveRate::new(10.0);
        let p = AccountPacer::adaptive("destination:east-wh", rate.clone());
        assert_eq!(p.take_now(Operation::PushTracking, 1), Duration::ZERO);
        // Taken: the next call waits a tenth of a second, and taking spends
        // nothing while it must wait.
        let wait = p.take_now(Operation::PushTracking, 1);
        assert!(
            wait >= Duration::from_millis(99) && wait <= Duration::from_millis(101),
            "{wait:?}"
        );
        assert_eq!(p.take_now(Operation::PushTracking, 1), wait);
        tokio::time::advance(wait).await;
        assert_eq!(p.take_now(Operation::PushTracking, 1), Duration::ZERO);
        // Halved to 5 a second: two tenths between calls.
        rate.slow_down(Instant::now());
        let wait = p.take_now(Operation::PushTracking, 1);
        assert!(
            wait >= Duration::from_millis(199) && wait <= Duration::from_millis(201),
            "{wait:?}"
        );
    }
}
