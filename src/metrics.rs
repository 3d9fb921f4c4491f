//! The daemon's metrics, for `GET /metrics`, on `prometheus-client`: typed
//! families (the label set of each is a struct, so a sample can only have
//! the labels its family declares), atomics behind each series (no global
//! lock, no allocation once a series exists), histograms, and the
//! OpenMetrics text format. Every family is registered when [`Metrics`] is
//! made; a family shows in a scrape once it has a series, and the series
//! with a fixed set of labels (outcomes, an account's counters) are made at
//! 0 up front, so that rates over them have no gap. Counts are kept where things happen; the gauges that describe
//! state (readiness, sync lag, outbox depth, stalled workers) are set when
//! that state is read, and can be set wherever it changes instead.
//!
//! Label values never carry order ids (labels stay low-cardinality): they
//! are channels, account ids (`destination:<id>` for deliveries), outcomes,
//! sources and job kinds. A leaf: depends on nothing else in the crate.
//!
//! | metric | type | labels | what |
//! | --- | --- | --- | --- |
//! | `switchyard_orders_ingested_total` | counter | `channel`, `account`, `source`, `outcome` | orders through the ingest path |
//! | `switchyard_webhooks_total` | counter | `account`, `outcome` | webhook deliveries |
//! | `switchyard_polls_total` | counter | `account`, `outcome` | poll catch-ups |
//! | `switchyard_orders_rejected_total` | counter | `account` | orders a poll page, a fetch or a webhook left out (unreadable) |
//! | `switchyard_sync_lag_seconds` | gauge | `account` | since the last successful poll |
//! | `switchyard_poll_consecutive_errors` | gauge | `account` | failed polls since the last success |
//! | `switchyard_rate_limited_total` | counter | `account`, `source` | 429s from channels |
//! | `switchyard_limiter_wait_seconds_total` | counter | `account` | outbox time spent waiting on rate limits |
//! | `switchyard_pacer_wait_seconds_total` | counter | `account` | time the account's calls waited in its pacer, every operation |
//! | `switchyard_daily_reserve_holding` | gauge | `account` | 1 while the channel's daily allowance is below its reserve and pushes wait |
//! | `switchyard_token_state` | gauge | `account`, `state` | 1 for the account's token state (static, valid, refresh_failed) |
//! | `switchyard_token_valid_until_seconds` | gauge | `account` | when a refreshed access token expires |
//! | `switchyard_outbox_pending`, `switchyard_outbox_dead_letters` | gauge | `account` | outbox depth and dead letters |
//! | `switchyard_outbox_pushes_total` | counter | `outcome` | outbound calls (`skipped`: a delivery whose order shipped or was cancelled first) |
//! | `switchyard_rules_reloads_total` | counter | `outcome` | rules reloads |
//! | `switchyard_rules` | gauge | | rules in force |
//! | `switchyard_config_checks_total` | counter | `outcome` | config re-reads on SIGHUP |
//! | `switchyard_workers_stalled` | gauge | | workers past their heartbeat deadline |
//! | `switchyard_ready`, `switchyard_start_time_seconds` | gauge | | |
//! | `switchyard_build_info` | info | `version` | |
//! | `switchyard_webhook_ack_seconds` | histogram | `account` | from a webhook's arrival to its answer (stored and flushed) |
//! | `switchyard_poll_page_seconds` | histogram | `account` | one poll page: the channel's answer and its ingest |
//! | `switchyard_push_seconds` | histogram | `account`, `kind` | one outbound call to a channel or destination |
//! | `switchyard_order_to_delivery_seconds` | histogram | `destination` | from an order being placed on its channel to its delivery |
//! | `switchyard_destination_rate` | gauge | `destination` | deliveries a second a destination is sent at now: its `rate`, or less after its 429s and 503s |

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry, Unit};

/// What `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountOutcome {
    pub account: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountSource {
    pub account: String,
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountState {
    pub account: String,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountKind {
    pub account: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Ingested {
    pub channel: String,
    pub account: String,
    pub source: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabel {
    pub destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// A float counter (seconds).
pub type Seconds = Counter<f64, AtomicU64>;
/// A float gauge.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// Raises a seconds counter to `total`, a running total kept elsewhere (the
/// pacer's). Never lowers it: two scrapes at once cannot make it go back.
pub fn raise_to(counter: &Seconds, total: f64) {
    let _ = counter
        .inner()
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            (total > f64::from_bits(bits)).then(|| total.to_bits())
        });
}
/// A family of histograms made by a plain function.
pub type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 5 ms to about 82 s: webhook answers, poll pages, outbound calls.
fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// 1 s to about 6 days: from a sale to the warehouse.
fn delivery_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 3.0, 13))
}

/// Registers `metric` under `name` (after the `switchyard_` prefix; a unit
/// adds its suffix) and answers it: the registry keeps a handle to the same
/// series.
fn add<M: Metric + Clone>(
    r: &mut Registry,
    name: &str,
    unit: Option<Unit>,
    help: &str,
    metric: M,
) -> M {
    match unit {
        Some(unit) => r.register_with_unit(name, help, unit, metric.clone()),
        None => r.register(name, help, metric.clone()),
    }
    metric
}

/// Every family of the daemon. Use it through [`Metrics`].
#[derive(Debug)]
pub struct Families {
    registry: Registry,
    pub orders_ingested: Family<Ingested, Counter>,
    pub webhooks: Family<AccountOutcome, Counter>,
    pub polls: Family<AccountOutcome, Counter>,
    pub orders_rejected: Family<AccountLabel, Counter>,
    pub sync_lag: Family<AccountLabel, FloatGauge>,
    pub poll_errors: Family<AccountLabel, Gauge>,
    pub rate_limited: Family<AccountSource, Counter>,
    pub limiter_wait: Family<AccountLabel, Seconds>,
    pub pacer_wait: Family<AccountLabel, Seconds>,
    pub daily_reserve_holding: Family<AccountLabel, Gauge>,
    pub token_state: Family<AccountState, Gauge>,
    pub token_valid_until: Family<AccountLabel, FloatGauge>,
    pub outbox_pending: Family<AccountLabel, Gauge>,
    pub outbox_dead: Family<AccountLabel, Gauge>,
    pub outbox_pushes: Family<OutcomeLabel, Counter>,
    pub rule_reloads: Family<OutcomeLabel, Counter>,
    pub rules: Gauge,
    pub config_checks: Family<OutcomeLabel, Counter>,
    pub workers_stalled: Gauge,
    pub ready: Gauge,
    pub start_time: FloatGauge,
    pub webhook_ack: Histograms<AccountLabel>,
    pub poll_page: Histograms<AccountLabel>,
    pub push: Histograms<AccountKind>,
    pub order_to_delivery: Histograms<DestinationLabel>,
    pub destination_rate: Family<DestinationLabel, FloatGauge>,
}

/// The metrics of one daemon. Cheap to clone (shared); every family is safe
/// to update from any thread.
#[derive(Clone, Debug)]
pub struct Metrics(Arc<Families>);

impl Deref for Metrics {
    type Target = Families;

    fn deref(&self) -> &Families {
        &self.0
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("switchyard");
        r.register(
            "build",
            "The daemon's version",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let families = Families {
            orders_ingested: add(
                &mut r,
                "orders_ingested",
                None,
                "Orders through the ingest path, by channel, account, source (poll, webhook, fetch) and outcome (created, updated, unchanged, stale)",
                Family::default(),
            ),
            webhooks: add(
                &mut r,
                "webhooks",
                None,
                "Webhook deliveries by account and outcome (stored, queued, duplicate, ignored, unauthorized, bad_request, too_large, error, challenge, unknown_account)",
                Family::default(),
            ),
            polls: add(
                &mut r,
                "polls",
                None,
                "Poll catch-ups by account and outcome (ok, error)",
                Family::default(),
            ),
            orders_rejected: add(
                &mut r,
                "orders_rejected",
                None,
                "Orders a poll page, a fetch or a webhook left out because the channel's data could not be read, by account",
                Family::default(),
            ),
            sync_lag: add(
                &mut r,
                "sync_lag",
                Some(Unit::Seconds),
                "Seconds since the account's last successful poll (since the daemon started, before the first)",
                Family::default(),
            ),
            poll_errors: add(
                &mut r,
                "poll_consecutive_errors",
                None,
                "Failed polls of the account since its last success",
                Family::default(),
            ),
            rate_limited: add(
                &mut r,
                "rate_limited",
                None,
                "429 answers from a channel, by account and source (poll, outbox)",
                Family::default(),
            ),
            limiter_wait: add(
                &mut r,
                "limiter_wait",
                Some(Unit::Seconds),
                "Time outbox workers waited on rate limiters, bucket reports and 429 pauses",
                Family::default(),
            ),
            pacer_wait: add(
                &mut r,
                "pacer_wait",
                Some(Unit::Seconds),
                "Time the account's calls waited in its pacer (published limits, the channel's bucket reports, 429 holds), every operation together",
                Family::default(),
            ),
            daily_reserve_holding: add(
                &mut r,
                "daily_reserve_holding",
                None,
                "1 while the channel's daily allowance is below its reserve, so that the account's stock and tracking pushes wait for it to refill while orders keep coming in; 0 otherwise",
                Family::default(),
            ),
            token_state: add(
                &mut r,
                "token_state",
                None,
                "1 for the account's token state (static, valid, refresh_failed), 0 for the others; /readyz says why a refresh failed and how to re-authorize",
                Family::default(),
            ),
            token_valid_until: add(
                &mut r,
                "token_valid_until",
                Some(Unit::Seconds),
                "Unix time the account's refreshed access token expires",
                Family::default(),
            ),
            outbox_pending: add(
                &mut r,
                "outbox_pending",
                None,
                "Outbox items waiting to be sent, by account (destination:<id> for deliveries)",
                Family::default(),
            ),
            outbox_dead: add(
                &mut r,
                "outbox_dead_letters",
                None,
                "Dead letters waiting for a person, by account",
                Family::default(),
            ),
            outbox_pushes: add(
                &mut r,
                "outbox_pushes",
                None,
                "Outbound calls by outcome (sent, retried, rate_limited, dead, not_listed, skipped: a delivery whose order shipped or was cancelled before it went out)",
                Family::default(),
            ),
            rule_reloads: add(
                &mut r,
                "rules_reloads",
                None,
                "Rules reloads (SIGHUP or the file changing) by outcome (ok, failed)",
                Family::default(),
            ),
            rules: add(&mut r, "rules", None, "Rules in force", Gauge::default()),
            config_checks: add(
                &mut r,
                "config_checks",
                None,
                "Re-reads of switchyard.toml on SIGHUP by outcome (ok, failed)",
                Family::default(),
            ),
            workers_stalled: add(
                &mut r,
                "workers_stalled",
                None,
                "Workers whose heartbeat is overdue; the systemd watchdog is not fed while this is above 0",
                Gauge::default(),
            ),
            ready: add(
                &mut r,
                "ready",
                None,
                "1 once the store is open and the listener bound, 0 while stopping",
                Gauge::default(),
            ),
            start_time: add(
                &mut r,
                "start_time",
                Some(Unit::Seconds),
                "Unix time the daemon started",
                FloatGauge::default(),
            ),
            webhook_ack: add(
                &mut r,
                "webhook_ack",
                Some(Unit::Seconds),
                "From a webhook's arrival to its answer (the event stored and flushed), by account",
                Family::new_with_constructor(call_buckets),
            ),
            poll_page: add(
                &mut r,
                "poll_page",
                Some(Unit::Seconds),
                "One poll page: the channel's answer and its ingest, by account",
                Family::new_with_constructor(call_buckets),
            ),
            push: add(
                &mut r,
                "push",
                Some(Unit::Seconds),
                "One outbound call to a channel or destination, by account and job kind",
                Family::new_with_constructor(call_buckets),
            ),
            order_to_delivery: add(
                &mut r,
                "order_to_delivery",
                Some(Unit::Seconds),
                "From an order being placed on its channel to its delivery to the warehouse, by destination",
                Family::new_with_constructor(delivery_buckets),
            ),
            destination_rate: add(
                &mut r,
                "destination_rate",
                None,
                "Deliveries a second a destination is sent at now: its configured rate, or less while it recovers from 429 or 503 answers",
                Family::default(),
            ),
            registry: r,
        };
        // Series with a fixed set of label values show from the start (at
        // 0), so a rate over them has no gap; per-account ones appear with
        // the account (`Metrics::account_started`).
        for o in [
            "sent",
            "retried",
            "rate_limited",
            "dead",
            "not_listed",
            "skipped",
        ] {
            drop(families.outbox_pushes.get_or_create(&outcome(o)));
        }
        for o in ["ok", "failed"] {
            drop(families.rule_reloads.get_or_create(&outcome(o)));
            drop(families.config_checks.get_or_create(&outcome(o)));
        }
        Metrics(Arc::new(families))
    }

    /// Makes an account's series show (at 0) before anything happened to it.
    pub fn account_started(&self, id: &str) {
        for outcome in ["ok", "error"] {
            let polled = AccountOutcome {
                account: id.to_owned(),
                outcome,
            };
            drop(self.polls.get_or_create(&polled));
        }
        for source in ["poll", "outbox"] {
            let limited = AccountSource {
                account: id.to_owned(),
                source,
            };
            drop(self.rate_limited.get_or_create(&limited));
        }
        drop(self.orders_rejected.get_or_create(&account(id)));
        drop(self.limiter_wait.get_or_create(&account(id)));
    }

    /// The OpenMetrics text of every family that has a series (a family
    /// without any shows nothing, not even its `# TYPE`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics: encoding failed");
        }
        out
    }
}

/// `account` as a label.
pub fn account(account: &str) -> AccountLabel {
    AccountLabel {
        account: account.to_owned(),
    }
}

/// `outcome` as a label.
pub fn outcome(outcome: &'static str) -> OutcomeLabel {
    OutcomeLabel { outcome }
}

/// One outbound call's outcome (`sent`, `retried`, `rate_limited`, `dead`,
/// `not_listed`, `skipped`).
pub fn count_push(metrics: &Metrics, outcome: &'static str) {
    metrics
        .outbox_pushes
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
}

/// A duration as a histogram observation.
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_with_fixed_labels_show_at_zero_and_samples_carry_their_labels() {
        let m = Metrics::new();
        m.account_started("shop-us");
        let start = m.render();
        for line in [
            "# TYPE switchyard_outbox_pushes counter",
            r#"switchyard_outbox_pushes_total{outcome="not_listed"} 0"#,
            r#"switchyard_rules_reloads_total{outcome="failed"} 0"#,
            r#"switchyard_polls_total{account="shop-us",outcome="error"} 0"#,
            r#"switchyard_rate_limited_total{account="shop-us",source="outbox"} 0"#,
            "# TYPE switchyard_limiter_wait_seconds counter",
            "# UNIT switchyard_start_time_seconds seconds",
            "# TYPE switchyard_build info",
        ] {
            assert!(start.contains(line), "{line} in:\n{start}");
        }
        assert!(start.ends_with("# EOF\n"), "{start}");
        assert!(!start.contains("webhook_ack"), "no series, no family");
        m.polls
            .get_or_create(&AccountOutcome {
                account: "shop-us".into(),
                outcome: "ok",
            })
            .inc();
        m.limiter_wait
            .get_or_create(&account("shop-us"))
            .inc_by(0.25);
        m.webhook_ack
            .get_or_create(&account("shop-us"))
            .observe(seconds(Duration::from_millis(30)));
        let text = m.render();
        for sample in [
            r#"switchyard_polls_total{account="shop-us",outcome="ok"} 1"#,
            r#"switchyard_limiter_wait_seconds_total{account="shop-us"} 0.25"#,
            r#"switchyard_webhook_ack_seconds_count{account="shop-us"} 1"#,
            r#"switchyard_webhook_ack_seconds_bucket{le="0.04",account="shop-us"} 1"#,
            r#"switchyard_build_info{version=""#,
        ] {
            assert!(text.contains(sample), "{sample} in:\n{text}");
        }
    }
}
