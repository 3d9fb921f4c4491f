//! Wires config, store, rules and the per-account workers together.
//! `run(config, options, shutdown)` owns the daemon's lifetime: it opens the
//! store, starts one poll loop per account whose channel has a connector, and
//! on shutdown stops them and flushes the store before returning.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use switchyard_contract::Channel;
use tokio::sync::watch;

use crate::channels::poll::{self, AccountHealth, HealthBoard};
use crate::channels::registry::{self, AnyConnector, BuildError};
use crate::config::Config;
use crate::http::HttpState;
use crate::ingest::{Ingest, LiveRules};
use crate::store::{Store, StoreOptions};

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
    pub notify: Option<Arc<crate::daemon::systemd::Notifier>>,
    /// Each notification reloads the rules and re-checks the config (SIGHUP).
    /// The rules file is also reloaded whenever it changes on disk.
    pub reload: Option<Arc<tokio::sync::Notify>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountReport {
    pub id: String,
    pub channel: Channel,
    /// Why the account did not run, when it did not.
    pub skipped: Option<String>,
    pub health: Option<AccountHealth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub accounts: Vec<AccountReport>,
}

/// "1 account", "2 accounts".
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The daemon's main body. Returns after `shutdown` resolves (or, with
/// `once`, after every account caught up once) and the store is flushed.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<(RunReport, Store)> {
    let notifier = options.notify.clone().unwrap_or_default();
    let registry = crate::daemon::metrics::Registry::daemon();
    registry.set(
        &crate::daemon::metrics::START_TIME,
        &[],
        chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
    );
    registry.set(
        &crate::daemon::metrics::BUILD_INFO,
        &[env!("CARGO_PKG_VERSION")],
        1.0,
    );
    let heartbeats = crate::daemon::systemd::Heartbeats::for_watchdog(notifier.watchdog_interval());
    notifier.status(&format!(
        "starting: opening the store in {}",
        config.daemon.state_dir.display()
    ));
    let store = Store::open(&config.daemon.state_dir, StoreOptions::default())
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
    let ingest = Ingest::new(store.clone(), LiveRules::new(rules)).with_metrics(registry.clone());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    // Stock pushes go to every account whose connector can push inventory.
    let mut outbound = crate::effects::Outbound::new(crate::effects::stock_targets(&config, &http));
    outbound.outbox.registry = registry.clone();
    outbound.outbox.heartbeats = heartbeats.clone();
    let ingest = ingest.with_outbound(outbound.clone());
    let mut channels: Vec<(String, Arc<AnyConnector>)> = Vec::new();
    let health = HealthBoard::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = tokio::task::JoinSet::new();
    let mut reports = Vec::new();
    let mut webhook_accounts: BTreeMap<String, Arc<AnyConnector>> = BTreeMap::new();
    let locks = poll::AccountLocks::default();
    let mut backfill_accounts = BTreeMap::new();
    for account in &config.accounts {
        let skipped = match registry::build(account, &http) {
            Ok(connector) => {
                let connector = Arc::new(connector);
                channels.push((account.id.clone(), connector.clone()));
                if account.webhooks {
                    webhook_accounts.insert(account.id.clone(), connector.clone());
                }
                workers.spawn(poll::run_account(
                    poll::PollWorker {
                        connector: connector.clone(),
                        account: account.clone(),
                        ingest: ingest.clone(),
                        health: health.clone(),
                        locks: locks.clone(),
                        heartbeat: heartbeats.register(format!("poll {}", account.id)),
                        once: options.once,
                    },
                    stop_rx.clone(),
                ));
                backfill_accounts.insert(account.id.clone(), (account.clone(), connector.clone()));
                None
            }
            Err(e @ BuildError::NotBuiltIn(_)) => {
                tracing::warn!(account = %account.id, "{e}; account skipped");
                Some(e.to_string())
            }
            Err(e) => anyhow::bail!("{e}"),
        };
        reports.push(AccountReport {
            id: account.id.clone(),
            channel: account.channel,
            skipped,
            health: None,
        });
    }
    let listener = tokio::net::TcpListener::bind(config.daemon.listen)
        .await
        .with_context(|| format!("binding {} (daemon.listen)", config.daemon.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let http_state = Arc::new(HttpState {
        ingest: ingest.clone(),
        webhook_accounts,
        health: health.clone(),
        accounts: config.accounts.iter().map(|a| a.id.clone()).collect(),
        ready: AtomicBool::new(false),
        admin: crate::http::admin::AdminState::new(
            config.daemon.admin_token.clone(),
            outbound.clone(),
        )
        .with_backfill(Arc::new(poll::Accounts {
            accounts: backfill_accounts,
            ingest: ingest.clone(),
            locks: locks.clone(),
        })),
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
    let mut outbound_tasks = crate::effects::spawn_all(
        &config,
        &store,
        &channels,
        &http,
        &outbound,
        &crate::outbox::OutboxOptions::default(),
        stop_rx.clone(),
    );
    // Webhook dedupe keys outlive every channel's retries by days; past
    // their expiry they are only weight.
    let dedupe_purge = {
        let store = store.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(DEDUPE_PURGE_EVERY) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let purge = store.clone();
                match tokio::task::spawn_blocking(move || {
                    purge.purge_expired_dedupe(chrono::Utc::now())
                })
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
        })
    };
    tracing::info!(%addr, accounts = config.accounts.len(), running = workers.len(), "switchyard started");
    if let Some(f) = &options.on_ready {
        f(addr);
    }
    let reloader = crate::daemon::reload::Reloader::new(
        &config,
        ingest.rules().clone(),
        registry.clone(),
        notifier.clone(),
    );
    let reload_task = tokio::spawn(reloader.run(options.reload.clone(), stop_rx.clone()));
    let running_status = {
        let (polling, outbox) = (workers.len(), outbound_tasks.accounts.len());
        move || {
            format!(
                "running: {polling} polling, {outbox} outbox workers, listening on {addr}",
                polling = plural(polling, "account", "accounts"),
                outbox = outbox,
            )
        }
    };
    notifier.ready(&running_status());
    let watchdog_task = notifier.watchdog_interval().map(|interval| {
        tokio::spawn(crate::daemon::systemd::watchdog(
            notifier.clone(),
            heartbeats.clone(),
            interval,
            running_status,
            stop_rx.clone(),
        ))
    });

    if options.once {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                next = workers.join_next() => if next.is_none() { break },
                _ = &mut shutdown => break,
            }
        }
    } else {
        shutdown.await;
    }
    let deadline = options
        .shutdown_deadline
        .unwrap_or(config.daemon.shutdown_timeout);
    // Intake stops now: not ready, no more keep-alives, stopping.
    http_state.ready.store(false, Ordering::Release);
    tracing::info!(
        deadline_ms = deadline.as_millis() as u64,
        "stopping: finishing in-flight work"
    );
    notifier.stopping(&format!(
        "stopping: finishing in-flight work (deadline {} s)",
        deadline.as_secs_f64()
    ));
    if options.once {
        // Let the pushes and deliveries the catch-up caused go out first.
        crate::outbox::wait_idle(
            &store,
            &outbound_tasks.accounts,
            Duration::from_secs(2),
            deadline,
        )
        .await;
    }
    let _ = stop_tx.send(true);
    // One deadline for everything in flight: workers, outbox calls, requests.
    let until = tokio::time::Instant::now() + deadline;
    if tokio::time::timeout_at(until, async {
        while workers.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            deadline_ms = deadline.as_millis() as u64,
            "workers did not stop in time; aborting them"
        );
        workers.abort_all();
    }
    // Outbox workers finish the call in flight and record it.
    if tokio::time::timeout_at(until, async {
        while outbound_tasks.tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            deadline_ms = deadline.as_millis() as u64,
            "outbox workers did not stop in time; aborting them"
        );
        outbound_tasks.tasks.abort_all();
    }
    http_state.ready.store(false, Ordering::Release);
    match tokio::time::timeout_at(until, http_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
        Err(_) => tracing::warn!("HTTP requests still open at the shutdown deadline; dropped"),
    }
    let _ = reload_task.await;
    // Stopped by `stop_tx` between purges; a purge in progress is cut short,
    // which leaves the keys for the next start.
    dedupe_purge.abort();
    let _ = dedupe_purge.await;
    if let Some(t) = watchdog_task {
        let _ = t.await;
    }
    notifier.status("stopping: flushing the store");
    store
        .flush()
        .await
        .context("flushing the store on shutdown")?;
    let snapshot = health.snapshot();
    for r in &mut reports {
        r.health = snapshot.get(&r.id).cloned();
    }
    Ok((RunReport { accounts: reports }, store))
}
