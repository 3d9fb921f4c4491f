//! Starts the daemon and owns its lifetime. `run(config, options, shutdown)`
//! builds everything (`build.rs`), binds the listener, starts one poll loop
//! per account whose channel has a connector, the outbox workers, the
//! webhook dedupe purge, the reloader and the watchdog, says READY, and on
//! shutdown hands over to `shutdown.rs`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::build::AccountReport;
use super::build::{Built, build};
use crate::channels::accounts::Checks;
use crate::channels::fetch::AccountSender;
use crate::channels::poll::{self, HealthBoard};
use crate::config::Config;
use crate::effects::OutboundTasks;
use crate::http::HttpState;
use crate::io_text::plural;
use crate::store::Store;
use crate::systemd::Notifier;

/// How often expired webhook dedupe keys are removed.
const DEDUPE_PURGE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Clone, Default)]
pub struct RunOptions {
    /// Return once every account has caught up once (the demo).
    pub once: bool,
    /// How long workers get to finish after shutdown is asked for.
    pub shutdown_deadline: Option<Duration>,
    /// Told the HTTP address once the store is open and the listener bound
    /// (systemd readiness, tests that need the port).
    pub on_ready: Option<Arc<dyn Fn(SocketAddr) + Send + Sync>>,
    /// systemd notifications (READY, STATUS, WATCHDOG, STOPPING); None: none.
    pub notify: Option<Arc<Notifier>>,
    /// Each notification reloads the rules and re-checks the config (SIGHUP).
    /// The rules file is also reloaded whenever it changes on disk.
    pub reload: Option<Arc<tokio::sync::Notify>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub accounts: Vec<AccountReport>,
}

/// The daemon's main body. Returns after `shutdown` resolves (or, with
/// `once`, after every account caught up once) and the store is flushed.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<(RunReport, Store)> {
    let notifier = options.notify.clone().unwrap_or_default();
    let built = build(&config, &notifier)?;
    let mut running = start(&config, &options, built, notifier).await?;
    if options.once {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                next = running.polls.join_next() => if next.is_none() { break },
                _ = &mut shutdown => break,
            }
        }
    } else {
        shutdown.await;
    }
    let deadline = options
        .shutdown_deadline
        .unwrap_or(config.daemon.shutdown_timeout);
    running.stop(deadline, options.once).await
}

/// What runs until shutdown; `shutdown.rs` stops it.
pub(super) struct Running {
    pub store: Store,
    pub notifier: Arc<Notifier>,
    pub health: HealthBoard,
    pub reports: Vec<AccountReport>,
    /// Turns true when everything is to stop.
    pub stop_tx: watch::Sender<bool>,
    /// The poll loops.
    pub polls: JoinSet<()>,
    pub outbound: OutboundTasks,
    pub http_state: Arc<HttpState>,
    pub http: JoinHandle<std::io::Result<()>>,
    pub reload: JoinHandle<()>,
    pub dedupe_purge: JoinHandle<()>,
    pub watchdog: Option<JoinHandle<()>>,
}

async fn start(
    config: &Config,
    options: &RunOptions,
    built: Built,
    notifier: Arc<Notifier>,
) -> anyhow::Result<Running> {
    let Built {
        metrics,
        heartbeats,
        store,
        ingest,
        http,
        outbound,
        connectors,
        reports,
    } = built;
    let health = HealthBoard::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let locks = poll::AccountLocks::default();
    let mut polls = JoinSet::new();
    let mut webhook_accounts = BTreeMap::new();
    for connected in connectors.iter() {
        let account = &connected.account;
        if account.webhooks {
            webhook_accounts.insert(account.id.clone(), connected.clone());
        }
        if !connected.connector.capabilities().poll {
            continue;
        }
        polls.spawn(poll::run_account(
            poll::PollWorker {
                connected: connected.clone(),
                ingest: ingest.clone(),
                health: health.clone(),
                locks: locks.clone(),
                heartbeat: Arc::new(heartbeats.register(format!("poll {}", account.id))),
                once: options.once,
            },
            stop_rx.clone(),
        ));
    }
    let listener = tokio::net::TcpListener::bind(config.daemon.listen)
        .await
        .with_context(|| format!("binding {} (daemon.listen)", config.daemon.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let http_state = Arc::new(HttpState {
        ingest: ingest.clone(),
        webhook_accounts,
        health: health.clone(),
        tokens: connectors.tokens().clone(),
        pacers: connectors
            .iter()
            .map(|c| (c.account.id.clone(), c.pacer.clone()))
            .collect(),
        connectors: connectors.clone(),
        skipped: connectors
            .skipped()
            .iter()
            .map(|(a, why)| (a.id.clone(), why.clone()))
            .collect(),
        accounts: config.accounts.iter().map(|a| a.id.clone()).collect(),
        ready: AtomicBool::new(false),
        admin: crate::http::admin::AdminState::new(
            config.daemon.admin_token.clone(),
            outbound.clone(),
        )
        .with_backfill(Arc::new(poll::Accounts {
            connectors: connectors.clone(),
            ingest: ingest.clone(),
            locks,
        }))
        .with_checks(Arc::new(connectors.clone()))
        .with_destinations(config.destinations.iter().map(|d| d.id.clone()).collect()),
    });
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(crate::http::serve(
        listener,
        http_state.clone(),
        async move {
            let _ = http_stop.wait_for(|stop| *stop).await;
        },
    ));
    http_state.ready.store(true, Ordering::Release);
    let channels: Vec<(String, AccountSender)> = connectors
        .iter()
        .map(|connected| {
            let account = &connected.account;
            let effects = crate::effects::ChannelSender {
                account: account.id.clone(),
                buffer: account.stock_buffer(&config.inventory),
                connector: connected.connector.clone(),
                pacer: connected.pacer.clone(),
                store: store.clone(),
                outbound: outbound.clone(),
            };
            let sender = AccountSender {
                connected: connected.clone(),
                ingest: ingest.clone(),
                effects,
            };
            (account.id.clone(), sender)
        })
        .collect();
    let outbound_tasks = crate::effects::spawn_all(
        config,
        &store,
        channels,
        &http,
        &outbound,
        &crate::outbox::OutboxOptions::default(),
        stop_rx.clone(),
    );
    tokio::spawn(warn_of_unserved_outbox(
        store.clone(),
        outbound_tasks.accounts.clone(),
    ));
    let dedupe_purge = tokio::spawn(purge_dedupe_keys(store.clone(), stop_rx.clone()));
    tracing::info!(%addr, accounts = config.accounts.len(), running = polls.len(), "switchyard started");
    if let Some(f) = &options.on_ready {
        f(addr);
    }
    let reloader = super::reload::Reloader::new(
        config,
        ingest.rules().clone(),
        metrics.clone(),
        notifier.clone(),
    );
    let reload = tokio::spawn(reloader.run(options.reload.clone(), stop_rx.clone()));
    let running_status = {
        let (polling, outbox) = (polls.len(), outbound_tasks.accounts.len());
        move || {
            format!(
                "running: {polling} polling, {outbox} outbox workers, listening on {addr}",
                polling = plural(polling, "account", "accounts"),
                outbox = outbox,
            )
        }
    };
    notifier.ready(&running_status());
    // Each account's credentials and base URL, proven once at start (logged,
    // and in /readyz); readiness does not wait for the channels.
    let checking = connectors.clone();
    tokio::spawn(async move {
        checking.check_all().await;
    });
    let watchdog = notifier.watchdog_interval().map(|interval| {
        tokio::spawn(crate::systemd::watchdog(
            notifier.clone(),
            heartbeats.clone(),
            interval,
            running_status,
            stop_rx.clone(),
        ))
    });
    Ok(Running {
        store,
        notifier,
        health,
        reports,
        stop_tx,
        polls,
        outbound: outbound_tasks,
        http_state,
        http: http_task,
        reload,
        dedupe_purge,
        watchdog,
    })
}

/// Says which outbox items no worker of this config will send: those of an
/// account or destination taken out of the config (a withdraw notice queued
/// before a destination was removed, pushes for a removed account) or whose
/// connector was skipped at start. They stay in the outbox, and would
/// otherwise wait there without a word.
async fn warn_of_unserved_outbox(store: Store, served: Vec<String>) {
    let depths = match tokio::task::spawn_blocking(move || store.outbox_depths()).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reading the outbox depths failed");
            return;
        }
        Err(_) => return,
    };
    for (account, pending, dead) in unserved(&depths, &served) {
        tracing::warn!(
            %account,
            pending,
            dead,
            "{} for {account}, which has no outbox worker in this config (removed, or its \
             connector was skipped): nothing sends them; add it back, or give them up with \
             `switchyard outbox drop ITEM` (`switchyard outbox list` shows them)",
            plural(pending + dead, "outbox item waits", "outbox items wait"),
        );
    }
}

/// (account, pending, dead) of every outbox account with items and no worker.
fn unserved(
    depths: &BTreeMap<String, (usize, usize)>,
    served: &[String],
) -> Vec<(String, usize, usize)> {
    depths
        .iter()
        .filter(|(account, (pending, dead))| {
            pending + dead > 0 && !served.iter().any(|s| s == *account)
        })
        .map(|(account, (pending, dead))| (account.clone(), *pending, *dead))
        .collect()
}

/// Webhook dedupe keys outlive every channel's retries by days; past their
/// expiry they are only weight. Removes them every [`DEDUPE_PURGE_EVERY`]
/// until `stop` turns true.
async fn purge_dedupe_keys(store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(DEDUPE_PURGE_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let purge = store.clone();
        match tokio::task::spawn_blocking(move || purge.purge_expired_dedupe(chrono::Utc::now()))
            .await
        {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(removed = n, "expired webhook dedupe keys removed")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "removing expired webhook dedupe keys failed")
            }
            Err(e) => tracing::warn!(error = %e, "the dedupe purge task failed"),
        }
    }
}
