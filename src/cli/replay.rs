//! `switchyard replay PATH...`: recorded fixture scenarios through the real
//! connectors and the rules into a throw-away store, to see what orders,
//! tags, routes and holds they produce (and to try other rules).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_contract::testkit::Scenario;
use switchyard_contract::{Channel, ConnectorError, WebhookOutcome};

use super::print::{out, outln, plural};
use super::{CliResult, EXIT_FAILED, Failure, print_json};
use crate::channels::accounts::Connected;
use crate::channels::poll::{CatchUp, PollError, catch_up};
use crate::channels::tokens::TokenBoard;
use crate::config::AccountConfig;
use crate::ingest::{Ingest, LiveRules, Source};
use crate::sim::Simulator;
use crate::store::{OrderFilter, Store, StoreOptions};

/// The account every replayed order is filed under.
const REPLAY_ACCOUNT: &str = "replay";

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(EXIT_FAILED, e.to_string())
}

/// Scenario folders named by the paths: a scenario folder itself, or a
/// channel folder (every scenario in it). The channel is the parent folder's name.
fn scenarios(paths: &[PathBuf]) -> Result<Vec<(Channel, Scenario)>, Failure> {
    let mut out = Vec::new();
    for path in paths {
        let dirs: Vec<PathBuf> = if path.join("scenario.toml").is_file() {
            vec![path.clone()]
        } else if path.is_dir() {
            let found: Vec<PathBuf> = Scenario::load_all(path)
                .map_err(fail)?
                .into_iter()
                .map(|s| s.dir)
                .collect();
            if found.is_empty() {
                return Err(fail(format!(
                    "{}: no scenario folders in it; give fixtures/<channel>/<scenario> or fixtures/<channel>",
                    path.display()
                )));
            }
            found
        } else {
            return Err(fail(format!(
                "{}: not a scenario folder (no scenario.toml) or a folder of them",
                path.display()
            )));
        };
        for dir in dirs {
            let channel_name = dir
                .canonicalize()
                .ok()
                .and_then(|d| {
                    d.parent()
                        .and_then(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_default();
            let channel: Channel = channel_name.parse().map_err(|_| {
                fail(format!(
                    "{}: the folder above a scenario names its channel (fixtures/<channel>/<scenario>), found {channel_name:?}",
                    dir.display()
                ))
            })?;
            out.push((channel, Scenario::load(&dir).map_err(fail)?));
        }
    }
    Ok(out)
}

/// The account a channel's fixtures replay under: its crate's replay
/// settings (test credentials that fit the recorded traffic).
fn account_for(channel: Channel, base_url: String) -> Result<AccountConfig, Failure> {
    let Some(descriptor) = crate::registry::descriptor(channel) else {
        let why = crate::registry::not_built_in(channel);
        return Err(Failure::unavailable(&format!(
            "replaying {channel} traffic: {why}"
        )));
    };
    Ok(AccountConfig {
        id: REPLAY_ACCOUNT.into(),
        channel,
        base_url,
        poll_interval: Duration::from_secs(60),
        start_date: None,
        buffer: None,
        webhooks: false,
        settings: Some(Arc::from((descriptor.replay_settings)(REPLAY_ACCOUNT))),
        refresh_token_id: None,
    })
}

pub fn run(
    config_path: &Path,
    paths: &[PathBuf],
    rules_paths: &[PathBuf],
    json: bool,
) -> CliResult {
    let config = crate::config::load(config_path).map_err(fail)?;
    if rules_paths.len() > 2 {
        return Err(fail(
            "give --rules at most twice: the rules to replay with, and the rules to compare them with",
        ));
    }
    let rules =
        super::rules::load_configured_rules(&config, rules_paths.first().map(PathBuf::as_path))?;
    let other = match rules_paths.get(1) {
        Some(p) => Some(super::rules::load_configured_rules(&config, Some(p))?),
        None => None,
    };
    let scenarios = scenarios(paths)?;
    let dir =
        tempfile::tempdir().map_err(|e| fail(format!("cannot create a temporary store: {e}")))?;
    let store = Store::open(dir.path(), StoreOptions::default()).map_err(fail)?;
    let ingest = Ingest::new(store.clone(), LiveRules::new(rules));
    let runtime = super::runtime(true)?;
    let http = reqwest::Client::new();
    let count = scenarios.len();
    let mut missed = Missed::default();
    runtime.block_on(async {
        for (at, (channel, scenario)) in scenarios.into_iter().enumerate() {
            let sim = Simulator::from_scenarios(channel, vec![scenario.clone()])
                .await
                .map_err(fail)?;
            let account = account_for(channel, sim.base_url(channel))?;
            let connected =
                Connected::build(&account, &http, &store, &TokenBoard::default()).map_err(fail)?;
            let epoch = DateTime::<Utc>::UNIX_EPOCH;
            // Recorded answers are the same every time: a throttle is not
            // waited out but reported.
            let how = CatchUp {
                wait_out_throttles: false,
                ..CatchUp::since(Some(epoch))
            };
            match catch_up(&connected, &ingest, how, |_| {}).await {
                Ok(_) => {}
                // The scenario records no answer to a poll from the start of
                // time (it records pushes, or a poll from another date).
                Err(PollError::Connector(ConnectorError::Rejected {
                    status: Some(404), ..
                })) => {}
                // A throttle, a refused token, garbage: the recorded traffic
                // did not replay, which a CI job must notice.
                Err(e) => missed.note(
                    at,
                    Step::Poll,
                    format!("{}: poll: {e}", scenario.dir.display()),
                ),
            }
            // Recorded webhooks go through the connector as the channel sent
            // them (the replay settings hold the secret they are signed with).
            for w in &scenario.webhooks {
                let req = w.request(REPLAY_ACCOUNT, Utc::now());
                let shown = format!("{}: webhook {}", scenario.dir.display(), w.name);
                let (orders, key) = match connected.connector.handle_webhook(&req).await {
                    Ok(WebhookOutcome::Orders {
                        orders,
                        dedupe_key,
                        rejected,
                    }) => {
                        missed.left_out(at, &shown, &rejected);
                        (orders, dedupe_key)
                    }
                    Ok(WebhookOutcome::Fetch {
                        channel_order_ids,
                        dedupe_key,
                    }) => match connected.connector.fetch_orders(&channel_order_ids).await {
                        Ok(fetched) => {
                            missed.left_out(at, &shown, &fetched.rejected);
                            (fetched.orders, dedupe_key)
                        }
                        Err(e) => {
                            missed.note(
                                at,
                                Step::Delivery,
                                format!("{shown}: fetching the orders it names: {e}"),
                            );
                            continue;
                        }
                    },
                    Ok(_) => continue,
                    // A delivery recorded with a bad signature (to show that
                    // it is refused) replays as refused.
                    Err(e @ ConnectorError::Auth(_)) => {
                        eprintln!(
                            "{shown}: refused, as the channel's signature check requires: {e}"
                        );
                        missed.refused += 1;
                        continue;
                    }
                    Err(e) => {
                        missed.note(at, Step::Delivery, format!("{shown}: {e}"));
                        continue;
                    }
                };
                let key = key.map(|k| format!("{REPLAY_ACCOUNT}:{k}"));
                ingest
                    .receive(
                        REPLAY_ACCOUNT,
                        orders,
                        Source::Webhook { dedupe_key: key },
                        Utc::now(),
                    )
                    .map_err(fail)?;
            }
            sim.stop().await;
        }
        Ok::<(), Failure>(())
    })?;
    let orders = store.list_orders(&OrderFilter::default()).map_err(fail)?;
    if let (Some(other), Some(first), Some(second)) =
        (&other, rules_paths.first(), rules_paths.get(1))
    {
        compare(&orders, other, first, second, json)?;
    } else if json {
        let list: Vec<_> = orders.iter().map(|o| &o.order).collect();
        print_json(&list)?;
    } else {
        out!("{}", super::render_list(&orders));
    }
    if let Some(refused) = missed.refused_line() {
        eprintln!("{refused}");
    }
    match missed.summary(count) {
        None => Ok(()),
        // After the orders, so that what did replay is still shown; the
        // exit status tells a CI job that something did not.
        Some(summary) => Err(fail(summary)),
    }
}

/// The kind of step that did not replay, for the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Poll,
    /// A webhook delivery the connector could not read (or whose orders
    /// could not be fetched).
    Delivery,
    /// An order a delivery carried or named that the connector left out.
    Order,
}

/// What did not replay, one line each, and the deliveries refused by their
/// signature check: those are recorded to show the refusal and are not
/// errors, so they are counted apart.
#[derive(Default)]
struct Missed {
    /// (scenario's position, what, the line that says it).
    steps: Vec<(usize, Step, String)>,
    refused: usize,
}

impl Missed {
    fn note(&mut self, scenario: usize, step: Step, line: String) {
        self.steps.push((scenario, step, line));
    }

    /// A line per order the connector could not read.
    fn left_out(
        &mut self,
        scenario: usize,
        shown: &str,
        rejected: &[switchyard_contract::RejectedOrder],
    ) {
        for r in rejected {
            let line = format!(
                "{shown}: order {} left out: {}",
                r.channel_order_id.as_deref().unwrap_or("(no id)"),
                r.error
            );
            self.note(scenario, Step::Order, line);
        }
    }

    fn refused_line(&self) -> Option<String> {
        (self.refused > 0).then(|| {
            format!(
                "refused by their signature check, as recorded (not errors): {}",
                plural(self.refused, "webhook delivery", "webhook deliveries")
            )
        })
    }

    /// Each step that did not replay, then how many of each kind and in
    /// how many of the `count` scenarios; None when everything replayed.
    fn summary(&self, count: usize) -> Option<String> {
        if self.steps.is_empty() {
            return None;
        }
        let of = |step: Step| self.steps.iter().filter(|(_, s, _)| *s == step).count();
        let kinds: Vec<String> = [
            (Step::Poll, "poll", "polls"),
            (Step::Delivery, "webhook delivery", "webhook deliveries"),
            (Step::Order, "order", "orders"),
        ]
        .into_iter()
        .filter(|(step, ..)| of(*step) > 0)
        .map(|(step, one, many)| plural(of(step), one, many))
        .collect();
        let scenarios: std::collections::BTreeSet<usize> =
            self.steps.iter().map(|(at, ..)| *at).collect();
        let lines: Vec<&str> = self.steps.iter().map(|(.., l)| l.as_str()).collect();
        Some(format!(
            "{}\ndid not replay: {} (in {} of {}); the orders above are what the rest produced",
            lines.join("\n"),
            kinds.join(", "),
            scenarios.len(),
            plural(count, "scenario", "scenarios"),
        ))
    }
}

/// What the second rules file would decide differently about each order.
fn compare(
    orders: &[crate::store::StoredOrder],
    other: &crate::rules::RuleSet,
    first: &Path,
    second: &Path,
    json: bool,
) -> CliResult {
    let now = Utc::now();
    let changes: Vec<crate::ops::RuleChange> = orders
        .iter()
        .filter_map(|stored| {
            let next = crate::ingest::redecide(stored.clone(), other, now);
            crate::ops::RuleChange::between(stored, &next)
        })
        .collect();
    if json {
        return print_json(&changes);
    }
    outln!(
        "{} replayed with {}; compared with {}:",
        plural(orders.len(), "order", "orders"),
        first.display(),
        second.display()
    );
    for c in &changes {
        outln!("  {}: {}", c.id, c.describe());
    }
    outln!(
        "{} of {} would be decided differently",
        changes.len(),
        plural(orders.len(), "order", "orders")
    );
    Ok(())
}
