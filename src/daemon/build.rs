//! Builds what the daemon runs on from the config, before anything starts:
//! the metrics registry, the store, the rules, the ingest path, the HTTP
//! client, the outbound handle and one connector per account whose channel
//! is built in. Nothing listens and no task runs yet.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use switchyard_contract::Channel;

use crate::channels::accounts::{self, Connectors};
use crate::channels::poll::AccountHealth;
use crate::config::Config;
use crate::effects::Outbound;
use crate::ingest::{Ingest, LiveRules};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::systemd::{Heartbeats, Notifier};

#[derive(Debug, Clone, Serialize)]
pub struct AccountReport {
    pub id: String,
    pub channel: Channel,
    /// Why the account did not run, when it did not.
    pub skipped: Option<String>,
    pub health: Option<AccountHealth>,
}

/// Everything the daemon runs on.
pub(super) struct Built {
    pub metrics: Metrics,
    pub heartbeats: Heartbeats,
    pub store: Store,
    pub ingest: Ingest,
    pub http: reqwest::Client,
    pub outbound: Outbound,
    /// The accounts whose channel has a connector in this build.
    pub connectors: Connectors,
    /// Every configured account, with why it does not run if it does not.
    pub reports: Vec<AccountReport>,
}

pub(super) fn build(config: &Config, notifier: &Notifier) -> anyhow::Result<Built> {
    let metrics = Metrics::new();
    metrics
        .start_time
        .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    let heartbeats = Heartbeats::for_watchdog(notifier.watchdog_interval());
    notifier.status(&format!(
        "starting: opening the store in {}",
        config.daemon.state_dir.display()
    ));
    // A store of an earlier layout is upgraded first; each report gives
    // systemd another minute, so the upgrade is not killed as a hung start.
    let progress = |status: &str| {
        notifier.send(&format!("EXTEND_TIMEOUT_USEC=60000000\nSTATUS={status}"));
    };
    let store = Store::open_with_progress(
        &config.daemon.state_dir,
        config.daemon.store_options(),
        &progress,
    )
    .with_context(|| format!("opening the store in {}", config.daemon.state_dir.display()))?;
    let destinations: Vec<String> = config.destinations.iter().map(|d| d.id.clone()).collect();
    let rules = match crate::rules::load_rules(&config.daemon.rules, &destinations) {
        Ok((rules, warnings)) => {
            for w in warnings {
                tracing::warn!("{w}");
            }
            rules
        }
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            anyhow::bail!("the rules file has errors:\n{}", text.join("\n"));
        }
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    // Stock pushes go to every account whose connector can push inventory.
    let mut outbound = accounts::outbound(config);
    outbound.outbox.metrics = metrics.clone();
    outbound.outbox.heartbeats = heartbeats.clone();
    let ingest = Ingest::new(store.clone(), LiveRules::new(rules))
        .with_metrics(metrics.clone())
        .with_outbound(outbound.clone());
    let connectors =
        Connectors::build(config, &http, &store).map_err(|e| anyhow::anyhow!("{e}"))?;
    let reports = config
        .accounts
        .iter()
        .map(|account| AccountReport {
            id: account.id.clone(),
            channel: account.channel,
            skipped: connectors
                .skipped()
                .iter()
                .find(|(a, _)| a.id == account.id)
                .map(|(_, why)| why.clone()),
            health: None,
        })
        .collect();
    Ok(Built {
        metrics,
        heartbeats,
        store,
        ingest,
        http,
        outbound,
        connectors,
        reports,
    })
}
