//! The outbox workers of the daemon's effects: one per channel account,
//! sending stock and tracking pushes through its connector
//! ([`ChannelSender`]), one per destination (`deliveries.rs`), and the
//! drift repair task.

use std::sync::Arc;

use chrono::Utc;
use std::time::Duration;

use switchyard_contract::{Connector, InventoryPush, Operation};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::stock::DriftOptions;
use super::{Outbound, deliveries};
use crate::config::{Config, DestinationConfig};
use crate::outbox::{Job, JobKind, OutboxOptions, Sender, Verdict, Worker, destination_account};
use crate::pacing::AccountPacer;
use crate::store::{ListingState, OutboxItem, Store};

/// The running outbound tasks of the daemon.
pub struct OutboundTasks {
    pub tasks: JoinSet<()>,
    /// Outbox accounts that have a worker.
    pub accounts: Vec<String>,
}

/// Starts one worker per channel account (`channels`: account id and the
/// sender of its items), one per destination, and the drift repair task.
/// They all stop when `stop` turns true, each after finishing the call in
/// flight.
pub fn spawn_all<S: Sender>(
    config: &Config,
    store: &Store,
    channels: Vec<(String, S)>,
    http: &reqwest::Client,
    outbound: &Outbound,
    options: &OutboxOptions,
    stop: watch::Receiver<bool>,
) -> OutboundTasks {
    let mut tasks = JoinSet::new();
    let mut accounts = Vec::new();
    for (account, sender) in channels {
        let w = Worker::new(
            account.clone(),
            sender,
            store.clone(),
            &outbound.outbox,
            options.clone(),
            stop.clone(),
        );
        accounts.push(account);
        tasks.spawn(w.run());
    }
    for d in &config.destinations {
        let (w, account) = destination_worker(d, store, http, outbound, options, stop.clone());
        accounts.push(account);
        tasks.spawn(w.run());
    }
    let (s, o, drift) = (store.clone(), outbound.clone(), DriftOptions::default());
    tasks.spawn(async move {
        // Orders released or re-routed while the daemon was down (a scan of
        // the store: off the async threads).
        let (s2, o2) = (s.clone(), o.clone());
        let found = tokio::task::spawn_blocking(move || {
            deliveries::queue_ready_orders(&s2, &o2, Utc::now())
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
        super::stock::run_drift_repair(s, o, drift, stop).await;
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
) -> (Worker<deliveries::DestinationSender>, String) {
    let account = destination_account(&d.id);
    let sender = deliveries::DestinationSender::new(
        d,
        http.clone(),
        store.clone(),
        outbound.outbox.metrics.clone(),
    );
    (
        Worker::new(
            account.clone(),
            sender,
            store.clone(),
            &outbound.outbox,
            options.clone(),
            stop,
        ),
        account,
    )
}

/// Sends a channel account's stock and tracking items through its
/// connector.
pub struct ChannelSender {
    pub account: String,
    /// Units held back from this account.
    pub buffer: u32,
    pub connector: Arc<dyn Connector>,
    /// The account's pacer, the one its connector acquires from.
    pub pacer: Arc<AccountPacer>,
    pub store: Store,
    pub outbound: Outbound,
}

impl ChannelSender {
    /// The operation class a job spends.
    pub fn operation(kind: JobKind) -> Operation {
        match kind {
            JobKind::PushTracking => Operation::PushTracking,
            JobKind::CheckStockReceipt => Operation::Lookup,
            JobKind::FetchOrders => Operation::Fetch,
            JobKind::PushStock | JobKind::Deliver | JobKind::Notice => Operation::PushInventory,
        }
    }
}

impl Sender for ChannelSender {
    fn pacing(&self, kind: JobKind) -> (&AccountPacer, Operation) {
        (&self.pacer, ChannelSender::operation(kind))
    }

    fn call_timeout(&self) -> Duration {
        self.connector.hints().call_timeout
    }

    /// A stock push's batch key is the connector's for the push as it
    /// would be sent (its SKU and the listing learned for it).
    fn batch_key(&self, item: &OutboxItem) -> Option<String> {
        let Job::PushStock { sku } = &item.job else {
            return None;
        };
        let listing_ref = match self.store.listing(&self.account, sku) {
            Ok(Some(ListingState::Ref(r))) => Some(r),
            _ => None,
        };
        let push = InventoryPush {
            sku: sku.clone(),
            quantity: 0,
            last_confirmed: None,
            listing_ref,
            idempotency_key: String::new(),
        };
        self.connector.inventory_batch_key(&push)
    }

    /// Stock pushes go as many to a call as the connector takes.
    fn batch_limit(&self, kind: JobKind) -> usize {
        match kind {
            JobKind::PushStock if self.connector.capabilities().push_inventory => {
                self.connector.inventory_batch_limit().max(1)
            }
            _ => 1,
        }
    }

    async fn send_batch(&self, items: &[OutboxItem]) -> Vec<Verdict> {
        let stock = items.iter().all(|i| i.job.kind() == JobKind::PushStock);
        if stock && self.connector.capabilities().push_inventory {
            return super::stock::send_push_batch(
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

    async fn send(&self, item: &OutboxItem) -> Verdict {
        let caps = self.connector.capabilities();
        match &item.job {
            Job::PushStock { .. } if caps.push_inventory => {
                super::stock::send_push(
                    &self.store,
                    &self.outbound,
                    self.connector.as_ref(),
                    &self.account,
                    self.buffer,
                    item,
                )
                .await
            }
            Job::PushTracking {
                order_id,
                tracking_number,
            } if caps.push_tracking => {
                super::tracking::send_tracking(
                    &self.store,
                    self.connector.as_ref(),
                    order_id,
                    tracking_number,
                )
                .await
            }
            Job::CheckStockReceipt { receipt, skus } if caps.push_inventory => {
                super::stock::send_receipt_check(
                    &self.store,
                    &self.outbound,
                    self.connector.as_ref(),
                    &self.account,
                    self.buffer,
                    receipt,
                    skus,
                )
                .await
            }
            Job::PushStock { .. } | Job::PushTracking { .. } | Job::CheckStockReceipt { .. } => {
                Verdict::Dead(format!(
                    "the {} connector of account {} cannot {}",
                    self.connector.channel(),
                    self.account,
                    item.job.kind().describe()
                ))
            }
            Job::Deliver(_) | Job::Notice(_) => Verdict::Dead(format!(
                "a delivery or notice was queued for channel account {}; they go to destinations",
                self.account
            )),
            Job::FetchOrders { .. } => Verdict::Dead(format!(
                "a fetch of orders for account {} reached the stock and tracking sender",
                self.account
            )),
        }
    }
}
