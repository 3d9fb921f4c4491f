//! The per-account poll loop: page through everything changed since the
//! stored cursor, ingesting each page with the cursor that covers it, then
//! wait for the next interval. Errors slow this account down (with the
//! channel's retry-after when it gives one) and never touch other accounts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use switchyard_contract::{ConnectorError, Operation};
use tokio::sync::watch;
use tracing::Instrument;

use super::accounts::{Connected, Connectors};
use crate::config::AccountConfig;
use crate::ingest::{Ingest, IngestError, Source};
use crate::metrics;
use crate::pacing::{Backoff, Keepalive, TimedOut, bounded};
use crate::store::ListingState;

/// How far back the first poll of an account reaches without `start_date`.
pub const DEFAULT_BACKFILL_DAYS: i64 = 30;

/// A guard against a channel that always says "more": no backfill is this long.
const MAX_PAGES_PER_CATCH_UP: usize = 100_000;

/// A page the channel refused this many times in a row for its rate limit
/// ends the catch-up (each refusal is waited out first, longer every time).
const MAX_RATE_LIMITED_IN_A_ROW: u32 = 30;

/// A wait for the channel's budget at least this long is shown in the
/// progress of a backfill (`PollStats::waiting_until`).
const SHOWN_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PollStats {
    pub pages: usize,
    /// Orders the channel sent that could not be read (left out, logged).
    #[serde(default)]
    pub rejected: usize,
    pub orders: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub stale: usize,
    /// Set while the catch-up waits for the channel's rate limit: until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_until: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("channel: {0}")]
    Connector(#[from] ConnectorError),
    #[error("store: {0}")]
    Ingest(#[from] IngestError),
    #[error(
        "the channel kept reporting more pages after {MAX_PAGES_PER_CATCH_UP}; stopped this catch-up"
    )]
    Runaway,
}

impl PollError {
    /// Why a backfill of `account` stopped and what to do about it, for the
    /// person who ran `switchyard sync`.
    pub fn stopped_backfill(&self, account: &str) -> String {
        match self {
            PollError::Connector(e @ ConnectorError::Auth(_)) => format!(
                "{e}; the channel refused the credentials of account {account}: fix them \
                 (the account's access token or client secret in the config), then run \
                 the sync again; what was synced before is stored"
            ),
            PollError::Connector(e @ ConnectorError::Config(_)) => format!(
                "{e}; fix account {account} in the config, then run the sync again; what \
                 was synced before is stored"
            ),
            e => format!("{e}; what was synced so far is stored, run it again to continue"),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            PollError::Connector(ConnectorError::RateLimited { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }
}

/// Where an account's first poll starts.
pub fn default_since(account: &AccountConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    account
        .start_date
        .unwrap_or(now - chrono::Duration::days(DEFAULT_BACKFILL_DAYS))
}

/// How a catch-up runs.
#[derive(Clone)]
pub struct CatchUp {
    /// Read from this time instead of the stored cursor (a backfill).
    pub since: Option<DateTime<Utc>>,
    /// Told how long each page may take (the poll loop's watchdog heartbeat).
    pub keepalive: Option<Keepalive>,
    /// A page the channel refuses for its rate limit is waited out and asked
    /// for again, up to [`MAX_RATE_LIMITED_IN_A_ROW`] times in a row; false:
    /// the refusal ends the catch-up (a replay of recorded traffic, which
    /// answers the same every time).
    pub wait_out_throttles: bool,
}

impl CatchUp {
    /// From the stored cursor, waiting out throttles.
    pub fn from_cursor() -> CatchUp {
        CatchUp {
            since: None,
            keepalive: None,
            wait_out_throttles: true,
        }
    }

    /// From `since` when given, else from the stored cursor.
    pub fn since(since: Option<DateTime<Utc>>) -> CatchUp {
        CatchUp {
            since,
            ..CatchUp::from_cursor()
        }
    }
}

/// Polls until the channel reports no more pages. With `since`, the stored
/// cursor is ignored for reading (a backfill from that time); the cursor
/// advances with it only when the account has none yet. An account that has
/// one keeps it: a `since` later than its position would otherwise carry it
/// past every order changed in between, which neither would ever read.
/// `on_page` sees the running totals after every page, and while the
/// catch-up waits for the channel's rate limit (`waiting_until`).
///
/// Each page waits for the account's poll budget in its pacer and then has
/// the channel's `call_timeout` (the wait not counted; `keepalive` is told
/// how long the page may take). A page the channel refuses for its rate
/// limit is asked for again once that is waited out: a backfill goes on by
/// itself.
pub async fn catch_up(
    connected: &Connected,
    ingest: &Ingest,
    how: CatchUp,
    mut on_page: impl FnMut(&PollStats),
) -> Result<PollStats, PollError> {
    let CatchUp {
        since,
        keepalive,
        wait_out_throttles,
    } = how;
    let Connected {
        account,
        connector,
        pacer,
        hints,
    } = connected;
    let mut stats = PollStats::default();
    let stored = ingest
        .store()
        .cursor(&account.id)
        .map_err(IngestError::from)?;
    // A backfill over an account that already has a position leaves that
    // position as it is (written again with each page): cursors are opaque
    // here, so whether `since` is before or after it cannot be told, and
    // after it would skip orders for good. The poll loop then re-reads from
    // its own position; the idempotent upsert absorbs the repeats.
    let keep = since.and(stored.clone());
    let mut cursor = if since.is_some() { None } else { stored };
    let since = since.unwrap_or_else(|| default_since(account, Utc::now()));
    let mut throttled = Backoff::new(Duration::from_secs(1), Duration::from_secs(5 * 60));
    let mut throttled_in_a_row = 0;
    loop {
        let wait = pacer.delay(Operation::Poll, 1);
        if wait >= SHOWN_WAIT {
            stats.waiting_until =
                Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default());
            on_page(&stats);
        }
        let started = tokio::time::Instant::now();
        let page = bounded(hints.call_timeout, keepalive.clone(), async {
            pacer.ready(Operation::Poll, 1).await;
            connector
                .poll_orders(cursor.as_ref(), since, Utc::now())
                .await
        })
        .await;
        stats.waiting_until = None;
        let page = match page {
            Ok(Ok(page)) => page,
            Ok(Err(ConnectorError::RateLimited {
                retry_after,
                detail,
            })) if wait_out_throttles && throttled_in_a_row < MAX_RATE_LIMITED_IN_A_ROW => {
                throttled_in_a_row += 1;
                let limited = metrics::AccountSource {
                    account: account.id.clone(),
                    source: "poll",
                };
                ingest.metrics().rate_limited.get_or_create(&limited).inc();
                let wait = throttled.next_delay(retry_after);
                tracing::info!(account = %account.id, wait_ms = crate::pacing::millis(wait), %detail, "the channel asked to slow down; the page is asked for again after the wait");
                pacer.hold(Operation::Poll, wait);
                continue;
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(TimedOut(budget)) => {
                return Err(PollError::Connector(ConnectorError::Transient(format!(
                    "the page took longer than {} s",
                    budget.as_secs()
                ))));
            }
        };
        throttled_in_a_row = 0;
        throttled.reset();
        stats.pages += 1;
        stats.orders += page.orders.len();
        stats.rejected += page.rejected.len();
        super::report_rejected(ingest, &account.id, "poll", &page.rejected);
        learn_listing_refs(
            connector.as_ref(),
            &account.id,
            &page.orders,
            ingest.store(),
        )?;
        let report = ingest.receive(
            &account.id,
            page.orders,
            Source::Poll {
                cursor: keep.clone().unwrap_or_else(|| page.next.clone()),
            },
            Utc::now(),
        )?;
        ingest
            .metrics()
            .poll_page
            .get_or_create(&metrics::account(&account.id))
            .observe(metrics::seconds(started.elapsed()));
        stats.created += report.created;
        stats.updated += report.updated;
        stats.unchanged += report.unchanged;
        stats.stale += report.stale;
        on_page(&stats);
        cursor = Some(page.next);
        if !page.more {
            return Ok(stats);
        }
        if stats.pages >= MAX_PAGES_PER_CATCH_UP {
            return Err(PollError::Runaway);
        }
    }
}

/// Remembers the channel's references for the SKUs its orders show (Shopify:
/// the inventory item behind each SKU), so the first stock push of a SKU the
/// account sold needs no catalog look-up. Only a reference that is new or
/// changed is written.
fn learn_listing_refs(
    connector: &dyn switchyard_contract::Connector,
    account: &str,
    orders: &[switchyard_contract::NormalizedOrder],
    store: &crate::store::Store,
) -> Result<(), IngestError> {
    for order in orders {
        for (sku, reference) in connector.listing_refs(order) {
            let state = ListingState::Ref(reference);
            if store.listing(account, &sku)?.as_ref() != Some(&state) {
                store.set_listing(account, &sku, &state)?;
            }
        }
    }
    Ok(())
}

/// One lock per account, held while its cursor moves: the poll loop and a
/// backfill asked for through the admin API take turns.
#[derive(Debug, Default, Clone)]
pub struct AccountLocks(Arc<Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl AccountLocks {
    pub fn get(&self, account: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().entry(account.to_owned()).or_default().clone()
    }
}

/// Why a backfill asked of the running daemon did not finish.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("no account {0:?} with a connector in this daemon")]
    NoConnector(String),
    /// The catch-up stopped; what it synced before is stored.
    #[error("{}", .error.stopped_backfill(.account))]
    Stopped { account: String, error: PollError },
}

/// What [`Backfill::backfill`] returns.
pub type BackfillRun<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<PollStats, BackfillError>> + Send + 'a>,
>;

/// A backfill the running daemon does for `switchyard sync`: the same
/// catch-up as its poll loop, reporting the running totals after each page.
pub trait Backfill: Send + Sync {
    /// The accounts it can sync, those with a connector.
    fn accounts(&self) -> Vec<String>;

    fn backfill<'a>(
        &'a self,
        account: &'a str,
        since: Option<DateTime<Utc>>,
        progress: tokio::sync::mpsc::UnboundedSender<PollStats>,
    ) -> BackfillRun<'a>;
}

/// The daemon's accounts that have a connector, for [`Backfill`].
pub struct Accounts {
    pub connectors: Connectors,
    pub ingest: Ingest,
    pub locks: AccountLocks,
}

impl Backfill for Accounts {
    fn accounts(&self) -> Vec<String> {
        self.connectors
            .iter()
            .map(|c| c.account.id.clone())
            .collect()
    }

    fn backfill<'a>(
        &'a self,
        account: &'a str,
        since: Option<DateTime<Utc>>,
        progress: tokio::sync::mpsc::UnboundedSender<PollStats>,
    ) -> BackfillRun<'a> {
        Box::pin(async move {
            let Some(connected) = self.connectors.get(account) else {
                return Err(BackfillError::NoConnector(account.to_owned()));
            };
            let lock = self.locks.get(account);
            let _turn = lock.lock().await;
            catch_up(connected, &self.ingest, CatchUp::since(since), |s| {
                let _ = progress.send(s.clone());
            })
            .await
            .map_err(|error| BackfillError::Stopped {
                account: account.to_owned(),
                error,
            })
        })
    }
}

/// What `/readyz` and the demo report about one account.
#[derive(Debug, Default, Clone, Serialize)]
pub struct AccountHealth {
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_errors: u32,
    pub last_error: Option<String>,
    pub last_stats: Option<PollStats>,
}

/// Every account's health, shared between poll loops and readers.
#[derive(Debug, Default, Clone)]
pub struct HealthBoard(Arc<Mutex<BTreeMap<String, AccountHealth>>>);

impl HealthBoard {
    pub fn snapshot(&self) -> BTreeMap<String, AccountHealth> {
        self.0.lock().clone()
    }

    fn update(&self, account: &str, f: impl FnOnce(&mut AccountHealth)) {
        let mut map = self.0.lock();
        f(map.entry(account.to_owned()).or_default());
    }
}

/// One account's poll loop and what it works with.
pub struct PollWorker {
    pub connected: Arc<Connected>,
    pub ingest: Ingest,
    pub health: HealthBoard,
    /// Taken while the cursor moves, shared with on-demand backfills.
    pub locks: AccountLocks,
    /// Shows the watchdog that the loop is alive: each page has the
    /// channel's `call_timeout` (waits for its rate limit not counted), and
    /// waits between polls beat as they go.
    pub heartbeat: Arc<crate::systemd::Heartbeat>,
    /// Return after the first successful catch-up (the demo and `sync`).
    pub once: bool,
}

/// Runs one account's poll loop until `shutdown` turns true. With `once`, it
/// returns after the first successful catch-up (the demo and `sync`).
pub async fn run_account(worker: PollWorker, shutdown: watch::Receiver<bool>) {
    let account = &worker.connected.account;
    let span = tracing::info_span!("poll", channel = %account.channel, account = %account.id);
    poll_loop(worker, shutdown).instrument(span).await
}

async fn poll_loop(worker: PollWorker, mut shutdown: watch::Receiver<bool>) {
    let PollWorker {
        connected,
        ingest,
        health,
        locks,
        heartbeat,
        once,
    } = worker;
    let account = &connected.account;
    let lock = locks.get(&account.id);
    let mut backoff = Backoff::new(
        Duration::from_secs(1),
        account.poll_interval.max(Duration::from_secs(1)),
    );
    let counters = ingest.metrics().clone();
    let beat = heartbeat.clone();
    let keepalive: Keepalive = Arc::new(move |d| beat.busy(d));
    // On the board from the start: `/readyz` and the sync lag show it polling.
    health.update(&account.id, |_| {});
    counters.account_started(&account.id);
    loop {
        heartbeat.busy(connected.hints.call_timeout);
        let result = tokio::select! {
            r = async {
                // A backfill asked for by hand (`switchyard sync`) and this
                // loop take turns, so their cursors do not cross.
                let _turn = lock.lock().await;
                let how = CatchUp {
                    keepalive: Some(keepalive.clone()),
                    ..CatchUp::from_cursor()
                };
                catch_up(&connected, &ingest, how, |_| {}).await
            } => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        heartbeat.beat();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        let polled = metrics::AccountOutcome {
            account: account.id.clone(),
            outcome,
        };
        counters.polls.get_or_create(&polled).inc();
        let delay = match result {
            Ok(stats) => {
                tracing::info!(account = %account.id, channel = %account.channel, pages = stats.pages, orders = stats.orders, created = stats.created, updated = stats.updated, "caught up");
                health.update(&account.id, |h| {
                    h.last_success = Some(Utc::now());
                    h.consecutive_errors = 0;
                    h.last_error = None;
                    h.last_stats = Some(stats);
                });
                backoff.reset();
                if once {
                    return;
                }
                account.poll_interval
            }
            Err(e) => {
                let delay = backoff.next_delay(e.retry_after());
                tracing::warn!(account = %account.id, channel = %account.channel, error = %e, retry_in_ms = crate::pacing::millis(delay), "poll failed");
                health.update(&account.id, |h| {
                    h.consecutive_errors += 1;
                    h.last_error = Some(e.to_string());
                });
                delay
            }
        };
        tokio::select! {
            _ = heartbeat.pause(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
