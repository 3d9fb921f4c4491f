//! The outbox workers: everything that leaves the daemon (stock and tracking
//! pushes to channels, order deliveries to destinations) is an item in the
//! store's durable outbox, written in the same transaction as the change that
//! caused it, and sent from here.
//!
//! - One worker task per channel account and per destination (`worker.rs`),
//!   so one slow or failing account never delays another.
//! - Stock pushes to a connector that takes several in one request
//!   (`Connector::inventory_batch_limit`, Shopify: 100) go out together:
//!   one call, one limiter slot, each item's result recorded on its own.
//! - Each worker paces its calls with a `governor` limiter per operation
//!   class, seeded from the connector's published `rate_limit()` (run a
//!   little below its rate and at half its burst, `OutboxOptions::rate_safety`
//!   and `burst_share`) and slowed further by the
//!   channel's own `rate_hint()` reports (`limiter.rs`).
//! - Failures are classified once (`policy.rs`): rate-limited, transient and
//!   undecodable answers are retried with exponential, jittered, capped
//!   backoff (`crate::retry`) that honours a retry-after; rejected, config
//!   and auth failures become dead letters with the reason.
//! - Workers wake on a `Notify` per account when an item is queued in this
//!   process ([`Wakers`]), and rescan the due list every
//!   `OutboxOptions::idle_rescan` for items whose retry time came.
//!
//! Item kinds and payloads:
//!
//! | kind | account | payload | coalesce key |
//! | --- | --- | --- | --- |
//! | `push_inventory` | channel account | `{ "sku" }`: the level is computed when sent | `stock:<sku>` |
//! | `push_tracking` | the order's account | `{ "order_id", "tracking_number" }` | none |
//! | `deliver` | `destination:<id>` | `{ "order_id", "destination", "delivery_id", "body" }` | none |

pub mod limiter;
pub mod policy;
mod worker;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_contract::Connector;
use switchyard_contract::connector::RateLimit;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::config::{Config, DestinationConfig};
use crate::inventory::StockTargets;
use crate::store::{NewOutboxItem, StockChange, Store, StoreError, StoredOrder};

pub use worker::{FollowUp, Sender, Verdict, Worker};

/// Set a channel's stock of one SKU.
pub const PUSH_INVENTORY: &str = "push_inventory";
/// Tell a channel about a shipment.
pub const PUSH_TRACKING: &str = "push_tracking";
/// Deliver a routed order to a destination.
pub const DELIVER: &str = "deliver";
/// Every item kind.
pub const KINDS: [&str; 3] = [PUSH_INVENTORY, PUSH_TRACKING, DELIVER];

/// The outbox account of a destination. Account ids cannot contain `:`, so
/// these never collide with channel accounts.
pub fn destination_account(id: &str) -> String {
    format!("destination:{id}")
}

/// Tuning of the workers; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// First retry delay after a failure.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// A retryable failure this many times in a row becomes a dead letter.
    pub max_attempts: u32,
    /// A call that has not answered after this long counts as a transient failure.
    pub call_timeout: Duration,
    /// How often an idle worker looks for items whose retry time came.
    pub idle_rescan: Duration,
    /// Items read from the store per pass.
    pub batch: usize,
    /// The limiter runs at this fraction of a published rate, so that network
    /// jitter cannot push arrivals over the channel's own bucket.
    pub rate_safety: f64,
    /// The limiter bursts at most this fraction of a published burst (at
    /// least one request): the rest of the channel's bucket absorbs jitter
    /// and the account's polls, which spend the same bucket.
    pub burst_share: f64,
    /// When the channel reports less than this fraction of its bucket left,
    /// the worker waits until the bucket has refilled to it.
    pub hint_low_water: f64,
    /// Pace of deliveries to one destination (destinations publish no limit).
    pub destination_limit: RateLimit,
    /// Budget of the periodic stock re-assertion.
    pub drift: crate::inventory::DriftOptions,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(15 * 60),
            max_attempts: 100,
            call_timeout: Duration::from_secs(60),
            idle_rescan: Duration::from_secs(1),
            batch: 32,
            rate_safety: 0.9,
            burst_share: 0.5,
            hint_low_water: 0.1,
            destination_limit: RateLimit {
                per_second: 20.0,
                burst: 20,
            },
            drift: crate::inventory::DriftOptions::default(),
        }
    }
}

/// One `Notify` per outbox account: whoever queues an item in this process
/// wakes the account's worker instead of letting it wait for its next rescan.
#[derive(Clone, Default)]
pub struct Wakers(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl Wakers {
    pub fn get(&self, account: &str) -> Arc<Notify> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(account.to_owned()).or_default().clone()
    }

    pub fn wake(&self, account: &str) {
        self.get(account).notify_one();
    }

    /// Wakes the worker of every account that an item is queued for.
    pub fn wake_items(&self, items: &[NewOutboxItem]) {
        let accounts: BTreeSet<&str> = items.iter().map(|i| i.account.as_str()).collect();
        for a in accounts {
            self.wake(a);
        }
    }
}

impl std::fmt::Debug for Wakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wakers")
    }
}

/// Counters for `/metrics` (the dead-letter count itself comes from
/// `Store::outbox_counts`).
#[derive(Debug, Default)]
pub struct OutboxMetrics {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub rate_limited: AtomicU64,
    pub dead: AtomicU64,
    /// Pushes skipped because the channel does not list the SKU.
    pub not_listed: AtomicU64,
}

impl OutboxMetrics {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the rest of the daemon needs to queue outbound work: which accounts
/// take stock pushes (with their buffers), the workers' wakers, and the
/// counters. Cheap to clone. The ingest path, the CLI and the admin API all
/// take one.
#[derive(Clone, Default, Debug)]
pub struct Outbound {
    pub stock: StockTargets,
    pub wakers: Wakers,
    pub metrics: Arc<OutboxMetrics>,
    /// Per-account figures for `/metrics` (429s, limiter waits).
    pub registry: crate::metrics::Registry,
    /// Each worker registers here; the systemd watchdog reads them.
    pub heartbeats: crate::notify::Heartbeats,
}

/// What ingest adds to its batch for one order.
#[derive(Debug, Default)]
pub struct IngestPlan {
    /// Written only if the order is (as predicted) created or updated.
    pub outbox: Vec<NewOutboxItem>,
    pub stock: Vec<StockChange>,
    pub dedupe: Vec<(String, DateTime<Utc>)>,
}

impl Outbound {
    pub fn new(stock: StockTargets) -> Self {
        Outbound {
            stock,
            ..Outbound::default()
        }
    }

    /// The outbound side effects of writing `new` over `existing` from a
    /// channel: stock reservations (and the pushes they cause) and the
    /// delivery to the order's route. Computed before the transaction from
    /// plain reads. Returns nothing when the store will not write the order
    /// (an older version, or the same content): every effect is tied to a
    /// write of the order, whose revision check makes a concurrent change
    /// recompute the batch.
    pub fn plan_ingest(
        &self,
        store: &Store,
        existing: Option<&StoredOrder>,
        new: &StoredOrder,
        now: DateTime<Utc>,
    ) -> Result<IngestPlan, StoreError> {
        if let Some(e) = existing
            && (e.order.updated_at > new.order.updated_at || e.same_content(new))
        {
            return Ok(IngestPlan::default());
        }
        let mut plan = crate::inventory::plan_reservation(store, &self.stock, existing, new, now)?;
        if let Some((item, marker)) = crate::deliver::plan(store, new, now)? {
            plan.outbox.push(item);
            plan.dedupe.push(marker);
        }
        Ok(plan)
    }
}

/// The accounts whose connectors in this build can push inventory, with
/// their buffers: what `Outbound::new` takes in the daemon, `sync` and the CLI.
pub fn stock_targets(config: &Config, http: &reqwest::Client) -> StockTargets {
    StockTargets::from_config(config, |a| {
        crate::connectors::build(a, http).is_ok_and(|c| c.capabilities().push_inventory)
    })
}

/// The running outbound tasks of the daemon.
pub struct OutboundTasks {
    pub tasks: JoinSet<()>,
    /// Outbox accounts that have a worker.
    pub accounts: Vec<String>,
}

/// Starts one worker per channel account (`channels`: account id and
/// connector), one per destination, and the drift repair task. They all stop
/// when `stop` turns true, each after finishing the call in flight.
pub fn spawn_all<C: Connector + 'static>(
    config: &Config,
    store: &Store,
    channels: &[(String, Arc<C>)],
    http: &reqwest::Client,
    outbound: &Outbound,
    options: &OutboxOptions,
    stop: watch::Receiver<bool>,
) -> OutboundTasks {
    let mut tasks = JoinSet::new();
    let mut accounts = Vec::new();
    for (account, connector) in channels {
        let buffer = config
            .account(account)
            .map(|a| a.stock_buffer(&config.inventory))
            .unwrap_or(config.inventory.buffer);
        let sender = ChannelSender {
            account: account.clone(),
            buffer,
            connector: connector.clone(),
            store: store.clone(),
            outbound: outbound.clone(),
        };
        let w = Worker::new(
            account.clone(),
            sender,
            store.clone(),
            outbound,
            options.clone(),
            stop.clone(),
        );
        accounts.push(account.clone());
        tasks.spawn(w.run());
    }
    for d in &config.destinations {
        let (w, account) = destination_worker(d, store, http, outbound, options, stop.clone());
        accounts.push(account);
        tasks.spawn(w.run());
    }
    let (s, o, drift) = (store.clone(), outbound.clone(), options.drift.clone());
    tasks.spawn(async move {
        // Orders released or re-routed while the daemon was down (a scan of
        // the store: off the async threads).
        let (s2, o2) = (s.clone(), o.clone());
        let found = tokio::task::spawn_blocking(move || {
            crate::deliver::queue_ready_orders(&s2, &o2, Utc::now())
        })
        .await
        .unwrap_or(Ok(0));
        match found {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                orders = n,
                "queued deliveries of routed orders found at start"
            ),
            Err(e) => tracing::warn!(error = %e, "looking for undelivered orders failed"),
        }
        crate::inventory::run_drift_repair(s, o, drift, stop).await;
    });
    OutboundTasks { tasks, accounts }
}

/// A worker for one destination.
pub fn destination_worker(
    d: &DestinationConfig,
    store: &Store,
    http: &reqwest::Client,
    outbound: &Outbound,
    options: &OutboxOptions,
    stop: watch::Receiver<bool>,
) -> (Worker<crate::deliver::DestinationSender>, String) {
    let account = destination_account(&d.id);
    let sender = crate::deliver::DestinationSender::new(
        d,
        http.clone(),
        options.destination_limit,
        store.clone(),
    );
    (
        Worker::new(
            account.clone(),
            sender,
            store.clone(),
            outbound,
            options.clone(),
            stop,
        ),
        account,
    )
}

/// Waits until none of `accounts` has a pending item due within `horizon`
/// (the demo and `once` runs: let the pushes go out before stopping), or
/// until `timeout`. Returns whether the outbox went quiet.
pub async fn wait_idle(
    store: &Store,
    accounts: &[String],
    horizon: Duration,
    timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let limit = Utc::now() + chrono::Duration::from_std(horizon).unwrap_or_default();
        let busy = match store.outbox_list(false) {
            Ok(items) => items
                .iter()
                .any(|i| accounts.contains(&i.account) && i.next_attempt_at <= limit),
            Err(_) => false,
        };
        if !busy {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a channel account's items through its connector.
pub struct ChannelSender<C> {
    pub account: String,
    /// Units held back from this account.
    pub buffer: u32,
    pub connector: Arc<C>,
    pub store: Store,
    pub outbound: Outbound,
}

impl<C: Connector + 'static> Sender for ChannelSender<C> {
    fn rate_limit(&self, kind: &str) -> RateLimit {
        use switchyard_contract::connector::Operation;
        match kind {
            PUSH_TRACKING => self.connector.rate_limit(Operation::PushTracking),
            _ => self.connector.rate_limit(Operation::PushInventory),
        }
    }

    fn rate_hint(&self) -> Option<switchyard_contract::RateHint> {
        self.connector.rate_hint()
    }

    /// Stock pushes go as many to a call as the connector takes.
    fn batch_limit(&self, kind: &str) -> usize {
        match kind {
            PUSH_INVENTORY if self.connector.capabilities().push_inventory => {
                self.connector.inventory_batch_limit().max(1)
            }
            _ => 1,
        }
    }

    async fn send_batch(&self, items: &[crate::store::OutboxItem]) -> Vec<Verdict> {
        let inventory = items.iter().all(|i| i.kind == PUSH_INVENTORY);
        if inventory && self.connector.capabilities().push_inventory {
            return crate::inventory::send_push_batch(
                &self.store,
                &self.outbound,
                self.connector.as_ref(),
                &self.account,
                self.buffer,
                items,
            )
            .await;
        }
        let mut verdicts = Vec::with_capacity(items.len());
        for item in items {
            verdicts.push(self.send(item).await);
        }
        verdicts
    }

    async fn send(&self, item: &crate::store::OutboxItem) -> Verdict {
        let caps = self.connector.capabilities();
        match item.kind.as_str() {
            PUSH_INVENTORY if caps.push_inventory => {
                crate::inventory::send_push(
                    &self.store,
                    &self.outbound,
                    self.connector.as_ref(),
                    &self.account,
                    self.buffer,
                    item,
                )
                .await
            }
            PUSH_TRACKING if caps.push_tracking => {
                crate::shipments::send_tracking(&self.store, self.connector.as_ref(), item).await
            }
            PUSH_INVENTORY | PUSH_TRACKING => Verdict::Dead(format!(
                "the {} connector of account {} cannot {}",
                self.connector.channel(),
                self.account,
                item.kind.replace('_', " ")
            )),
            other => Verdict::Dead(format!(
                "unknown outbox item kind {other:?} for a channel account"
            )),
        }
    }
}
