//! Drift repair: a periodic, budgeted pass that queues pushes for (account,
//! SKU) pairs never pushed, pushed a level the channel should not show, or
//! not re-asserted for a long time. A pass reads a slice of the stock levels
//! (going on where the last one stopped) and the outbox counts; it never
//! reads orders.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{Listing, desired_level, listing, push_item};
use crate::effects::Outbound;
use crate::store::{Store, StoreError};

/// Budget of the drift repair.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    /// Time between passes.
    pub interval: Duration,
    /// SKUs looked at per pass (the pass resumes after the last one).
    pub skus_per_tick: usize,
    /// Pushes queued per pass at most.
    pub max_queued_per_tick: usize,
    /// An account with this many pending items gets no drift pushes this pass.
    pub max_backlog: usize,
    /// A level confirmed this long ago is pushed again even if it matches.
    pub reassert_after: chrono::Duration,
    /// A mismatch younger than this is left alone (a sale on its way in, a
    /// push in flight).
    pub settle: chrono::Duration,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            interval: Duration::from_secs(60),
            skus_per_tick: 500,
            max_queued_per_tick: 50,
            max_backlog: 100,
            reassert_after: chrono::Duration::hours(24),
            settle: chrono::Duration::minutes(2),
        }
    }
}

/// One pass; `cursor` is the last SKU looked at (the next pass goes on after
/// it, wrapping around). Returns the pushes queued.
pub fn drift_tick(
    store: &Store,
    outbound: &Outbound,
    options: &DriftOptions,
    cursor: &mut Option<String>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    if outbound.stock.iter().next().is_none() {
        return Ok(0);
    }
    let n = options.skus_per_tick.max(1);
    let mut levels = store.stock_page(cursor.as_deref(), n)?;
    if levels.len() < n && cursor.is_some() {
        // Wrap around to the start of the catalog.
        let more = store.stock_page(None, n - levels.len())?;
        levels.extend(
            more.into_iter()
                .filter(|l| cursor.as_deref().is_some_and(|c| l.sku.as_str() <= c)),
        );
    }
    if levels.is_empty() {
        return Ok(0);
    }
    let mut backlog: std::collections::HashMap<String, usize> = store
        .outbox_depths()?
        .into_iter()
        .map(|(account, (pending, _))| (account, pending))
        .collect();
    let mut items = Vec::new();
    for level in &levels {
        *cursor = Some(level.sku.clone());
        for t in outbound.stock.iter() {
            if items.len() >= options.max_queued_per_tick {
                break;
            }
            let queued = backlog.entry(t.account.clone()).or_default();
            if *queued >= options.max_backlog {
                continue;
            }
            let should = desired_level(level.available, t.buffer);
            let stale = match level.channels.get(&t.account) {
                None => true,
                Some(p) => {
                    let age = now - p.at;
                    (p.pushed != should && age >= options.settle) || age >= options.reassert_after
                }
            };
            if stale
                && !matches!(
                    listing(store, &t.account, &level.sku, now)?,
                    Listing::NotListed { .. }
                )
            {
                items.push(push_item(&t.account, &level.sku, now));
                *queued += 1;
            }
        }
        if items.len() >= options.max_queued_per_tick {
            break;
        }
    }
    let count = items.len();
    if count > 0 {
        let accounts = crate::outbox::Wakers::accounts_of(&items);
        store.outbox_add(items, now)?;
        outbound.outbox.wakers.wake_accounts(&accounts);
    }
    Ok(count)
}

/// Runs drift passes every `options.interval` until shutdown.
pub async fn run_drift_repair(
    store: Store,
    outbound: Outbound,
    options: DriftOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(options.interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // Scans of the store: off the async threads.
        let (s, o, opts, mut c) = (
            store.clone(),
            outbound.clone(),
            options.clone(),
            cursor.take(),
        );
        let pass = tokio::task::spawn_blocking(move || {
            let r = drift_tick(&s, &o, &opts, &mut c, Utc::now());
            (r, c)
        })
        .await;
        let result = match pass {
            Ok((r, c)) => {
                cursor = c;
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "drift repair pass panicked");
                continue;
            }
        };
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(pushes = n, "drift repair queued stock pushes"),
            Err(e) => tracing::warn!(error = %e, "drift repair pass failed"),
        }
    }
}
