//! What a stored change sends out: stock levels to every channel that lists
//! a SKU (`stock/`), tracking numbers to the order's channel
//! (`tracking.rs`), routed orders to their destination (`deliveries.rs`).
//! Each effect is planned from plain reads before the store transaction and
//! written as outbox items in the same transaction as the change, so a
//! change and what it causes are durable together; the senders here turn
//! those items into calls when the outbox worker takes them (`workers.rs`).

pub mod deliveries;
mod notes;
pub mod stock;
pub mod tracking;
mod workers;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::outbox::Outbox;
use crate::store::{NewOutboxItem, StockChange, Store, StoreError, StoredOrder};
use stock::StockTargets;

pub use workers::{ChannelSender, OutboundTasks, destination_worker, spawn_all};

/// What the rest of the daemon needs to queue outbound work: which accounts
/// take stock pushes (with their buffers), which cannot take tracking, and
/// this process's side of the outbox (wakers, counters). Cheap to clone. The
/// ingest path, the CLI and the admin API all take one.
#[derive(Clone, Default, Debug)]
pub struct Outbound {
    pub stock: StockTargets,
    pub no_tracking: tracking::NoTracking,
    pub outbox: Outbox,
}

/// Markers in the store's dedupe keys live this long (for good).
pub(crate) use crate::store::kept_for_good as forever;

/// What ingest adds to its batch for one order.
#[derive(Debug, Default)]
pub struct IngestPlan {
    /// Written only if the order is (as predicted) created or updated.
    pub outbox: Vec<NewOutboxItem>,
    pub stock: Vec<StockChange>,
    pub dedupe: Vec<(String, DateTime<Utc>)>,
    /// Accounts whose outbox workers to wake once the batch is written,
    /// besides those of `outbox`: the ones that `stock`'s pushes (queued by
    /// the transaction only where the SKU has a level) will most likely be
    /// queued for.
    pub wake: BTreeSet<String>,
}

impl Outbound {
    pub fn new(stock: StockTargets) -> Self {
        Outbound {
            stock,
            ..Outbound::default()
        }
    }

    /// Shipments of these accounts' orders queue no tracking push.
    pub fn with_no_tracking(mut self, no_tracking: tracking::NoTracking) -> Self {
        self.no_tracking = no_tracking;
        self
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
        new: &mut StoredOrder,
        now: DateTime<Utc>,
    ) -> Result<IngestPlan, StoreError> {
        if let Some(e) = existing
            && (e.order.updated_at > new.order.updated_at || e.same_content(new))
        {
            return Ok(IngestPlan::default());
        }
        let mut plan = stock::plan_reservation(store, &self.stock, existing, new, now)?;
        // Cancelled on the channel after a destination took the order: the
        // destination is told, as for a hold (each destination that took a
        // part of it).
        if let Some(e) = existing
            && new.order.status == switchyard_contract::OrderStatus::Cancelled
            && e.order.status != switchyard_contract::OrderStatus::Cancelled
        {
            for delivered in deliveries::delivered_parts(&new.parts, new.delivered.as_ref()) {
                plan.outbox.push(deliveries::notice_item(
                    &new.order.id,
                    &delivered,
                    "cancel",
                    "cancelled on the channel",
                    now,
                ));
            }
        }
        if let Some((items, marker)) = deliveries::plan(store, new, now)? {
            plan.outbox.extend(items);
            plan.dedupe.push(marker);
        }
        Ok(plan)
    }
}
