//! `switchyard run` (the daemon) and `switchyard sync` (a one-shot backfill).

use std::io::{IsTerminal, Write};
use std::path::Path;

use chrono::DateTime;

use super::print::{out, outln, plural};
use super::{CliResult, EXIT_FAILED, Failure};
use crate::channels::accounts::Connected;
use crate::channels::poll::{CatchUp, PollStats, catch_up};
use crate::channels::tokens::TokenBoard;
use crate::config::LogFormat;
use crate::daemon::{RunOptions, run as run_app};
use crate::ingest::{Ingest, LiveRules};

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn run(config_path: &Path) -> CliResult {
    let config =
        crate::config::load(config_path).map_err(|e| Failure::new(EXIT_FAILED, e.to_string()))?;
    crate::daemon::logging::init(config.daemon.log_format == LogFormat::Json, "info");
    let notify = std::sync::Arc::new(crate::systemd::Notifier::from_env());
    let (state_dir, store_options) = (
        config.daemon.state_dir.clone(),
        config.daemon.store_options(),
    );
    super::runtime(true)?.block_on(async move {
        let options = RunOptions {
            notify: Some(notify.clone()),
            reload: Some(reload_signal()),
            ..RunOptions::default()
        };
        let result = run_app(config, options, termination()).await;
        if let Err(e) = &result {
            notify.status(&format!("failed: {e:#}"));
        }
        let (report, store) = result.map_err(Failure::from)?;
        drop(store);
        // The next start then reads a fresh snapshot instead of replaying
        // everything this run wrote.
        notify.status("stopping: writing a store checkpoint");
        let started = std::time::Instant::now();
        match crate::store::Store::checkpoint(&state_dir, store_options) {
            Ok(()) => tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "store checkpoint written"
            ),
            Err(e) => tracing::warn!(error = %e, "store checkpoint not written; the next start replays the log instead"),
        }
        tracing::info!(accounts = report.accounts.len(), "switchyard stopped");
        Ok(())
    })
}

/// Notified on every SIGHUP (the rules reload; `systemctl reload`). Must be
/// called inside the runtime; from then on SIGHUP no longer ends the process.
fn reload_signal() -> std::sync::Arc<tokio::sync::Notify> {
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                let n = notify.clone();
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        n.notify_one();
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; the rules still reload when their file changes")
            }
        }
    }
    notify
}

pub fn sync(config_path: &Path, account_id: &str, since: Option<&str>, json: bool) -> CliResult {
    let since = since
        .map(|s| {
            crate::ops::parse_since(s)
                .map_err(|e| Failure::new(EXIT_FAILED, format!("--since: {e}")))
        })
        .transpose()?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| Failure::new(EXIT_FAILED, format!("building the HTTP client: {e}")))?;
    // The account and its connector are checked the same way whether the
    // daemon runs or not, so an unknown account or a channel this build has
    // no connector for (exit 2, `not available yet`) reads the same in both.
    let checked = |config: &crate::config::Config| {
        let Some(account) = config.accounts.iter().find(|a| a.id == account_id).cloned() else {
            let known: Vec<&str> = config.accounts.iter().map(|a| a.id.as_str()).collect();
            return Err(Failure::new(
                EXIT_FAILED,
                format!(
                    "no account {account_id:?} in {}; accounts: {}",
                    config_path.display(),
                    known.join(", ")
                ),
            ));
        };
        if account.settings.is_none() {
            let why = crate::registry::not_built_in(account.channel);
            return Err(Failure::unavailable(&format!("`sync {account_id}`: {why}")));
        }
        Ok(account)
    };
    let (config, store) = match super::open_backend(config_path, super::Open::OrCreate)? {
        super::Backend::Local { config, store } => (config, store),
        super::Backend::Remote(remote) => {
            let config = crate::config::load(config_path)
                .map_err(|errors| Failure::new(EXIT_FAILED, errors.to_string()))?;
            checked(&config)?;
            return sync_remote(&remote, account_id, since, json);
        }
    };
    let account = checked(&config)?;
    let connected = Connected::build(&account, &http, &store, &TokenBoard::default())
        .map_err(|e| Failure::new(EXIT_FAILED, e.to_string()))?;
    let rules = super::rules::load_configured_rules(&config, None)?;
    // Orders synced while the daemon is down reserve stock and queue their
    // pushes and deliveries like any other; the daemon sends them later.
    let outbound = crate::channels::accounts::outbound(&config);
    let ingest = Ingest::new(store.clone(), LiveRules::new(rules)).with_outbound(outbound);
    let mut progress = Progress::new(account_id, json);
    let result = super::runtime(true)?.block_on(async {
        catch_up(&connected, &ingest, CatchUp::since(since), |s| {
            progress.page(s)
        })
        .await
    });
    progress.end();
    store
        .flush_blocking()
        .map_err(super::orders::store_failure)?;
    finish(
        account_id,
        result.map_err(|e| e.stopped_backfill(account_id)),
        json,
    )
}

/// `sync` while the daemon runs: the daemon does the backfill (taking turns
/// with its own poll loop) and streams its progress, shown the same way.
fn sync_remote(
    remote: &super::remote::Remote,
    account_id: &str,
    since: Option<DateTime<chrono::Utc>>,
    json: bool,
) -> CliResult {
    let query: Vec<(&str, String)> = since
        .map(|s| ("since", s.to_rfc3339()))
        .into_iter()
        .collect();
    let mut progress = Progress::new(account_id, json);
    let mut outcome: Option<Result<PollStats, String>> = None;
    remote.post_lines(&["sync", account_id], &query, |line| {
        if let Some(p) = line
            .get("progress")
            .and_then(|p| serde_json::from_value::<PollStats>(p.clone()).ok())
        {
            progress.page(&p);
        } else if let Some(d) = line
            .get("done")
            .and_then(|d| serde_json::from_value::<PollStats>(d.clone()).ok())
        {
            outcome = Some(Ok(d));
        } else if let Some(e) = line.get("error").and_then(|e| e.as_str()) {
            outcome = Some(Err(e.to_owned()));
        }
    })?;
    progress.end();
    finish(
        account_id,
        outcome.unwrap_or_else(|| {
            Err("the daemon ended the backfill without saying how it went".to_owned())
        }),
        json,
    )
}

fn finish(account_id: &str, result: Result<PollStats, String>, json: bool) -> CliResult {
    if json {
        let line = match &result {
            Ok(stats) => serde_json::json!({ "done": stats }),
            Err(e) => serde_json::json!({ "error": format!("{account_id}: sync stopped: {e}") }),
        };
        outln!("{line}");
    }
    match result {
        Ok(stats) => {
            if !json {
                outln!(
                    "{account_id}: done, {} in {} ({} new, {} updated)",
                    plural(stats.orders, "order", "orders"),
                    plural(stats.pages, "page", "pages"),
                    stats.created,
                    stats.updated
                );
            }
            if stats.rejected > 0 {
                // Not stored: the person running the backfill must hear it.
                return Err(Failure::new(
                    EXIT_FAILED,
                    format!(
                        "{account_id}: {} could not be read and {} NOT in the store; \
                         their ids and reasons are in the log (switchyard_orders_rejected_total counts them)",
                        plural(stats.rejected, "order", "orders"),
                        if stats.rejected == 1 { "is" } else { "are" }
                    ),
                ));
            }
            Ok(())
        }
        Err(e) => Err(Failure::new(
            EXIT_FAILED,
            format!("{account_id}: sync stopped: {e}"),
        )),
    }
}

/// Progress of a backfill: a bar redrawn in place on a terminal, one plain
/// line per page otherwise, one JSON line per page with `--json`.
struct Progress<'a> {
    account: &'a str,
    terminal: bool,
    json: bool,
}

impl<'a> Progress<'a> {
    fn new(account: &'a str, json: bool) -> Self {
        Progress {
            account,
            terminal: !json && std::io::stdout().is_terminal(),
            json,
        }
    }

    fn page(&mut self, s: &PollStats) {
        if self.json {
            outln!("{}", serde_json::json!({ "progress": s }));
            return;
        }
        let mut line = format!(
            "{}: {}, {} ({} new, {} updated, {} unchanged)",
            self.account,
            plural(s.pages, "page", "pages"),
            plural(s.orders, "order", "orders"),
            s.created,
            s.updated,
            s.unchanged
        );
        if let Some(until) = s.waiting_until {
            // Waiting out the channel's rate limit: it goes on by itself.
            line.push_str(&format!(
                "; waiting for the channel's rate limit until {}",
                until.format("%H:%M:%S UTC")
            ));
        }
        if self.terminal {
            let filled = s.pages.min(40);
            let bar = "#".repeat(filled) + &" ".repeat(40 - filled);
            out!("\r[{bar}] {line}");
            let _ = std::io::stdout().flush();
        } else {
            outln!("{line}");
        }
    }

    fn end(&self) {
        if self.terminal {
            outln!();
        }
    }
}
