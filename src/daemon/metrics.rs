//! A small metrics registry rendered in the Prometheus text exposition
//! format (version 0.0.4), for `GET /metrics`. No metrics crate: counters and
//! gauges with labels are all the daemon needs.
//!
//! Every metric is declared once as a [`Desc`] (name, help, type, label
//! names); [`DAEMON`] lists the daemon's own, so a scrape shows every family
//! (with `# HELP` and `# TYPE`) even before its first sample. Label values
//! never carry order ids (labels stay low-cardinality); the
//! label values used are channels, account ids, outcomes, sources and kinds.
//!
//! | metric | type | labels | what |
//! | --- | --- | --- | --- |
//! | `switchyard_orders_ingested_total` | counter | `channel`, `account`, `source`, `outcome` | orders through the ingest path; `source` is `poll`, `webhook` or `fetch`; `outcome` is `created`, `updated`, `unchanged` or `stale` |
//! | `switchyard_webhooks_total` | counter | `account`, `outcome` | webhook deliveries: `stored`, `duplicate`, `ignored`, `unauthorized`, `bad_request`, `too_large`, `error`, `challenge` (an endpoint handshake answered), `unknown_account` (with `account="unknown"`) |
//! | `switchyard_polls_total` | counter | `account`, `outcome` | poll catch-ups: `ok` or `error` |
//! | `switchyard_sync_lag_seconds` | gauge | `account` | seconds since the account's last successful poll (since the daemon started, before the first) |
//! | `switchyard_poll_consecutive_errors` | gauge | `account` | failed polls since the last success |
//! | `switchyard_rate_limited_total` | counter | `account`, `source` | 429 answers from a channel: `source` is `poll` or `outbox` |
//! | `switchyard_limiter_wait_seconds_total` | counter | `account` | time outbox workers waited on their rate limiters, the channel's bucket reports and 429 pauses |
//! | `switchyard_outbox_pending` | gauge | `account` | outbox items waiting to be sent (`destination:<id>` for deliveries) |
//! | `switchyard_outbox_dead_letters` | gauge | `account` | dead letters waiting for a person |
//! | `switchyard_outbox_pushes_total` | counter | `outcome` | outbound calls: `sent`, `retried`, `rate_limited`, `dead`, `not_listed` |
//! | `switchyard_rules_reloads_total` | counter | `outcome` | rules reloads (SIGHUP or the file changing): `ok` or `failed` |
//! | `switchyard_rules` | gauge | | rules in force |
//! | `switchyard_config_checks_total` | counter | `outcome` | re-reads of `switchyard.toml` on SIGHUP: `ok` or `failed` |
//! | `switchyard_workers_stalled` | gauge | | workers whose heartbeat is overdue (the systemd watchdog is not fed while this is above 0) |
//! | `switchyard_ready` | gauge | | 1 once the store is open and the listener bound, 0 while stopping |
//! | `switchyard_start_time_seconds` | gauge | | Unix time the daemon started |
//! | `switchyard_build_info` | gauge | `version` | always 1 |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::Mutex;

/// Counter (only goes up) or gauge (set to a value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One metric family: its name, help text, type and label names.
#[derive(Debug)]
pub struct Desc {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

macro_rules! desc {
    ($id:ident, $name:literal, $kind:ident, [$($label:literal),*], $help:literal) => {
        pub const $id: Desc = Desc {
            name: $name,
            help: $help,
            kind: Kind::$kind,
            labels: &[$($label),*],
        };
    };
}

desc!(
    ORDERS_INGESTED,
    "switchyard_orders_ingested_total",
    Counter,
    ["channel", "account", "source", "outcome"],
    "Orders through the ingest path, by channel, account, source (poll, webhook, fetch) and outcome (created, updated, unchanged, stale)."
);
desc!(
    WEBHOOKS,
    "switchyard_webhooks_total",
    Counter,
    ["account", "outcome"],
    "Webhook deliveries by account and outcome (stored, queued, duplicate, ignored, unauthorized, bad_request, too_large, error, challenge, unknown_account)."
);
desc!(
    POLLS,
    "switchyard_polls_total",
    Counter,
    ["account", "outcome"],
    "Poll catch-ups by account and outcome (ok, error)."
);
desc!(
    ORDERS_REJECTED,
    "switchyard_orders_rejected_total",
    Counter,
    ["account"],
    "Orders a poll page, a fetch or a webhook had to leave out because the channel's data could not be read (each is logged at error level with its id)."
);
desc!(
    SYNC_LAG,
    "switchyard_sync_lag_seconds",
    Gauge,
    ["account"],
    "Seconds since the account's last successful poll (since the daemon started, before the first)."
);
desc!(
    POLL_ERRORS,
    "switchyard_poll_consecutive_errors",
    Gauge,
    ["account"],
    "Failed polls of the account since its last successful one."
);
desc!(
    RATE_LIMITED,
    "switchyard_rate_limited_total",
    Counter,
    ["account", "source"],
    "429 (rate limited) answers from a channel, by account and source (poll, outbox)."
);
desc!(
    PACER_WAIT,
    "switchyard_pacer_wait_seconds_total",
    Counter,
    ["account"],
    "Seconds calls of an account waited in its pacer (published limits, the channel's bucket reports, 429 holds), every operation together."
);
desc!(
    LIMITER_WAIT,
    "switchyard_limiter_wait_seconds_total",
    Counter,
    ["account"],
    "Seconds outbox workers waited on rate limiters, channel bucket reports and 429 pauses."
);
desc!(
    OUTBOX_PENDING,
    "switchyard_outbox_pending",
    Gauge,
    ["account"],
    "Outbox items waiting to be sent, by outbox account (destination:<id> for deliveries)."
);
desc!(
    OUTBOX_DEAD,
    "switchyard_outbox_dead_letters",
    Gauge,
    ["account"],
    "Dead letters waiting for a person, by outbox account."
);
desc!(
    OUTBOX_PUSHES,
    "switchyard_outbox_pushes_total",
    Counter,
    ["outcome"],
    "Outbound calls (stock and tracking pushes, deliveries) by outcome (sent, retried, rate_limited, dead, not_listed)."
);
desc!(
    RULE_RELOADS,
    "switchyard_rules_reloads_total",
    Counter,
    ["outcome"],
    "Rules reloads (SIGHUP or the rules file changing) by outcome (ok, failed)."
);
desc!(RULES, "switchyard_rules", Gauge, [], "Rules in force.");
desc!(
    CONFIG_CHECKS,
    "switchyard_config_checks_total",
    Counter,
    ["outcome"],
    "Re-reads of switchyard.toml on SIGHUP by outcome (ok, failed)."
);
desc!(
    WORKERS_STALLED,
    "switchyard_workers_stalled",
    Gauge,
    [],
    "Workers whose heartbeat is overdue; the systemd watchdog is not fed while this is above 0."
);
desc!(
    READY,
    "switchyard_ready",
    Gauge,
    [],
    "1 once the store is open and the listener bound, 0 while starting or stopping."
);
desc!(
    START_TIME,
    "switchyard_start_time_seconds",
    Gauge,
    [],
    "Unix time the daemon started."
);
desc!(
    TOKEN_STATE,
    "switchyard_token_state",
    Gauge,
    ["account", "state"],
    "1 for the account's token state (static, valid, refresh_failed), 0 for the others; /readyz says why a refresh failed and how to re-authorize."
);
desc!(
    TOKEN_VALID_UNTIL,
    "switchyard_token_valid_until_seconds",
    Gauge,
    ["account"],
    "Unix time the account's refreshed access token expires."
);
desc!(
    BUILD_INFO,
    "switchyard_build_info",
    Gauge,
    ["version"],
    "Always 1; the version is in the label."
);

/// Every metric of the daemon, in the order a scrape shows them.
pub const DAEMON: &[&Desc] = &[
    &ORDERS_INGESTED,
    &WEBHOOKS,
    &POLLS,
    &ORDERS_REJECTED,
    &SYNC_LAG,
    &POLL_ERRORS,
    &RATE_LIMITED,
    &LIMITER_WAIT,
    &PACER_WAIT,
    &OUTBOX_PENDING,
    &OUTBOX_DEAD,
    &OUTBOX_PUSHES,
    &RULE_RELOADS,
    &RULES,
    &CONFIG_CHECKS,
    &WORKERS_STALLED,
    &TOKEN_STATE,
    &TOKEN_VALID_UNTIL,
    &READY,
    &START_TIME,
    &BUILD_INFO,
];

struct Family {
    desc: &'static Desc,
    samples: BTreeMap<Vec<String>, f64>,
}

#[derive(Default)]
struct Inner {
    /// Families in declaration order.
    order: Vec<&'static str>,
    families: BTreeMap<&'static str, Family>,
}

/// The metrics of one daemon. Cheap to clone (shared); every method is safe
/// to call from any thread.
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<Inner>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

impl Registry {
    /// A registry with every daemon metric declared.
    pub fn daemon() -> Registry {
        let r = Registry::default();
        for d in DAEMON {
            r.declare(d);
        }
        r
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.0.lock()
    }

    /// Makes the family show in scrapes, samples or not.
    pub fn declare(&self, desc: &'static Desc) {
        let mut inner = self.lock();
        Self::family(&mut inner, desc);
    }

    fn family<'a>(inner: &'a mut Inner, desc: &'static Desc) -> &'a mut Family {
        if !inner.families.contains_key(desc.name) {
            inner.order.push(desc.name);
        }
        inner.families.entry(desc.name).or_insert_with(|| Family {
            desc,
            samples: BTreeMap::new(),
        })
    }

    fn key(desc: &Desc, values: &[&str]) -> Vec<String> {
        debug_assert_eq!(
            desc.labels.len(),
            values.len(),
            "label values of {}",
            desc.name
        );
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    /// Adds `by` (negative or non-finite amounts are ignored) to a counter.
    pub fn add(&self, desc: &'static Desc, values: &[&str], by: f64) {
        debug_assert_eq!(desc.kind, Kind::Counter, "{} is not a counter", desc.name);
        if !(by.is_finite() && by >= 0.0) {
            return;
        }
        let key = Self::key(desc, values);
        let mut inner = self.lock();
        *Self::family(&mut inner, desc)
            .samples
            .entry(key)
            .or_insert(0.0) += by;
    }

    /// Adds one to a counter.
    pub fn inc(&self, desc: &'static Desc, values: &[&str]) {
        self.add(desc, values, 1.0);
    }

    /// Sets a gauge (or, for values read from elsewhere, a counter's total).
    pub fn set(&self, desc: &'static Desc, values: &[&str], value: f64) {
        let key = Self::key(desc, values);
        let mut inner = self.lock();
        Self::family(&mut inner, desc).samples.insert(key, value);
    }

    /// Forgets every sample of a family (before setting a fresh snapshot).
    pub fn clear(&self, desc: &'static Desc) {
        let mut inner = self.lock();
        Self::family(&mut inner, desc).samples.clear();
    }

    /// The current value of one sample.
    pub fn get(&self, desc: &'static Desc, values: &[&str]) -> Option<f64> {
        let key = Self::key(desc, values);
        let inner = self.lock();
        inner.families.get(desc.name)?.samples.get(&key).copied()
    }

    /// Every family in the text exposition format.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        for name in &inner.order {
            let Some(family) = inner.families.get(name) else {
                continue;
            };
            let d = family.desc;
            let _ = writeln!(out, "# HELP {} {}", d.name, escape_help(d.help));
            let _ = writeln!(out, "# TYPE {} {}", d.name, d.kind.as_str());
            for (values, value) in &family.samples {
                out.push_str(d.name);
                if !values.is_empty() {
                    out.push('{');
                    for (i, (label, v)) in d.labels.iter().zip(values).enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{label}=\"{}\"", escape_label(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_value(*value));
            }
        }
        out
    }
}

/// The content type of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust prints whole floats without a fraction ("6") and others with
        // the shortest exact form ("0.25"): both are valid sample values.
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let r = Registry::default();
        r.declare(&RULES);
        r.inc(&WEBHOOKS, &["shop-us", "stored"]);
        r.inc(&WEBHOOKS, &["shop-us", "stored"]);
        r.add(&LIMITER_WAIT, &["a\"b\\c\nd"], 0.25);
        r.add(&LIMITER_WAIT, &["a\"b\\c\nd"], -3.0);
        r.set(&SYNC_LAG, &["shop-us"], 12.5);
        assert_eq!(r.get(&WEBHOOKS, &["shop-us", "stored"]), Some(2.0));
        let text = r.render();
        assert_eq!(
            text,
            "# HELP switchyard_rules Rules in force.\n\
             # TYPE switchyard_rules gauge\n\
             # HELP switchyard_webhooks_total Webhook deliveries by account and outcome (stored, queued, duplicate, ignored, unauthorized, bad_request, too_large, error, challenge, unknown_account).\n\
             # TYPE switchyard_webhooks_total counter\n\
             switchyard_webhooks_total{account=\"shop-us\",outcome=\"stored\"} 2\n\
             # HELP switchyard_limiter_wait_seconds_total Seconds outbox workers waited on rate limiters, channel bucket reports and 429 pauses.\n\
             # TYPE switchyard_limiter_wait_seconds_total counter\n\
             switchyard_limiter_wait_seconds_total{account=\"a\\\"b\\\\c\\nd\"} 0.25\n\
             # HELP switchyard_sync_lag_seconds Seconds since the account's last successful poll (since the daemon started, before the first).\n\
             # TYPE switchyard_sync_lag_seconds gauge\n\
             switchyard_sync_lag_seconds{account=\"shop-us\"} 12.5\n"
        );
        r.clear(&SYNC_LAG);
        assert_eq!(r.get(&SYNC_LAG, &["shop-us"]), None);
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
    }

    #[test]
    fn the_daemon_registry_declares_every_family() {
        let text = Registry::daemon().render();
        for d in DAEMON {
            assert!(text.contains(&format!("# TYPE {} ", d.name)), "{}", d.name);
            assert!(d.name.starts_with("switchyard_"));
            assert_eq!(d.kind == Kind::Counter, d.name.ends_with("_total"));
        }
    }
}
