//! `GET /metrics` and `GET /readyz` of a daemon started with `daemon::run`:
//! the text format parses line by line, counters move after a poll and after
//! webhooks, no label carries an order id, and readiness has per-account
//! detail.

use crate::common::{self, eventually};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::daemon::{
    ConfigBuilder, InProcess, REPO, ShopifyAccount, orders_create_numbered, orders_create_webhook,
    post,
};
use switchyard::sim::Simulator;
use switchyard_contract::Channel;

const WEBHOOK_SECRET: &str = "metrics-test-webhook-secret";

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the OpenMetrics text format strictly: every line is `# HELP`,
/// `# TYPE`, `# UNIT` or a sample of a family whose TYPE came before it, and
/// the last line is `# EOF`. Answers the families' types and the samples.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut helps = BTreeMap::new();
    let mut samples = Vec::new();
    let body = text
        .strip_suffix("# EOF\n")
        .expect("the last line is # EOF");
    for line in body.lines() {
        assert!(!line.is_empty(), "no empty lines");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name), "{line}");
            assert!(!help.is_empty(), "{line}");
            assert!(
                helps.insert(name.to_owned(), ()).is_none(),
                "one HELP per family: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(valid_name(name), "{line}");
            assert!(
                matches!(kind, "counter" | "gauge" | "histogram" | "info"),
                "{line}"
            );
            assert!(helps.contains_key(name), "HELP before TYPE: {line}");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "one TYPE per family: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# UNIT ") {
            let (name, unit) = rest.split_once(' ').expect("UNIT name unit");
            assert!(types.contains_key(name), "TYPE before UNIT: {line}");
            assert!(name.ends_with(&format!("_{unit}")), "{line}");
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (head, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                (name.to_owned(), parse_labels(body, line))
            }
        };
        assert!(valid_name(&name), "{line}");
        let family =
            family_of(&name, &types).unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if matches!(types[&family].as_str(), "counter" | "histogram") {
            assert!(value >= 0.0, "{line}");
        }
        samples.push((name, labels, value));
    }
    (types, samples)
}

/// The family a sample belongs to: its own name (gauges), or its name less
/// the suffix its family's type gives samples.
fn family_of(sample: &str, types: &BTreeMap<String, String>) -> Option<String> {
    let suffixes: &[(&str, &str)] = &[
        ("gauge", ""),
        ("counter", "_total"),
        ("counter", "_created"),
        ("histogram", "_bucket"),
        ("histogram", "_sum"),
        ("histogram", "_count"),
        ("info", "_info"),
    ];
    suffixes.iter().find_map(|(kind, suffix)| {
        let family = sample.strip_suffix(suffix)?;
        (types.get(family).map(String::as_str) == Some(*kind)).then(|| family.to_owned())
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        assert!(valid_name(key), "label name in {line}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars
                .next()
                .unwrap_or_else(|| panic!("unterminated label in {line}"));
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => panic!("bad escape {other:?} in {line}"),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(
    client: &reqwest::Client,
    addr: &str,
) -> (BTreeMap<String, String>, Vec<Sample>, String) {
    let resp = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        ct.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ct}"
    );
    let text = resp.text().await.unwrap();
    let (types, samples) = parse(&text);
    (types, samples, text)
}

/// An `orders/create` delivery of order `n`, signed with `secret`; answers
/// the status.
async fn deliver(client: &reqwest::Client, url: &str, n: u64, secret: &str) -> u16 {
    let (headers, body) = orders_create_webhook(&orders_create_numbered(n), secret);
    post(client, url, &headers, body).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_after_a_poll_and_webhooks_and_readyz_has_account_detail() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
        .await
        .unwrap();
    let config = ConfigBuilder::new(dir.path())
        .shutdown_timeout("5s")
        .account(
            ShopifyAccount::new("shop-us", &sim.base_url(Channel::Shopify))
                .start_date("2026-11-01T00:00:00Z")
                .webhook_secret(WEBHOOK_SECRET),
        )
        .write();
    let daemon = InProcess::start(&config).await;
    let addr = daemon.addr.to_string();
    let client = reqwest::Client::new();

    // The poll of the account catches up: orders counted by source and outcome.
    let (types, samples, _) =
        eventually("a successful poll", Duration::from_secs(20), async || {
            let scraped = scrape(&client, &addr).await;
            let polls = value(
                &scraped.1,
                "switchyard_polls_total",
                &[("account", "shop-us"), ("outcome", "ok")],
            );
            if polls >= 1.0 {
                Ok(scraped)
            } else {
                Err(scraped.2)
            }
        })
        .await;
    for (family, kind) in [
        ("switchyard_orders_ingested", "counter"),
        ("switchyard_polls", "counter"),
        ("switchyard_sync_lag_seconds", "gauge"),
        ("switchyard_rate_limited", "counter"),
        ("switchyard_limiter_wait_seconds", "counter"),
        ("switchyard_pacer_wait_seconds", "counter"),
        ("switchyard_outbox_pending", "gauge"),
        ("switchyard_outbox_dead_letters", "gauge"),
        ("switchyard_outbox_pushes", "counter"),
        ("switchyard_rules_reloads", "counter"),
        ("switchyard_ready", "gauge"),
        ("switchyard_build", "info"),
        ("switchyard_poll_page_seconds", "histogram"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family} is declared"
        );
    }
    // Every page of that poll was timed.
    assert!(
        value(
            &samples,
            "switchyard_poll_page_seconds_count",
            &[("account", "shop-us")]
        ) >= 1.0,
        "{samples:?}"
    );
    let polled = value(
        &samples,
        "switchyard_orders_ingested_total",
        &[
            ("channel", "shopify"),
            ("account", "shop-us"),
            ("source", "poll"),
            ("outcome", "created"),
        ],
    );
    assert!(polled >= 1.0, "polled orders counted: {samples:?}");
    assert_eq!(value(&samples, "switchyard_ready", &[]), 1.0);
    let lag = value(
        &samples,
        "switchyard_sync_lag_seconds",
        &[("account", "shop-us")],
    );
    assert!(
        (0.0..10.0).contains(&lag),
        "sync lag right after a poll: {lag}"
    );
    assert_eq!(
        value(
            &samples,
            "switchyard_poll_consecutive_errors",
            &[("account", "shop-us")]
        ),
        0.0
    );
    let (rules, _) = switchyard::rules::load_rules(
        &Path::new(REPO).join("config/rules.toml"),
        &["east-wh".to_owned(), "west-3pl".to_owned()],
    )
    .unwrap();
    assert_eq!(value(&samples, "switchyard_rules", &[]), rules.len() as f64);
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "switchyard_outbox_pending"
                && l.get("account").map(String::as_str) == Some("shop-us")),
        "outbox depth per account"
    );

    // Webhooks: one stored, one repeat, one with a bad signature, one for
    // an account that does not exist.
    let url = format!("http://{addr}/webhooks/shop-us");
    assert_eq!(deliver(&client, &url, 7001, WEBHOOK_SECRET).await, 200);
    assert_eq!(deliver(&client, &url, 7001, WEBHOOK_SECRET).await, 200);
    assert_eq!(deliver(&client, &url, 7002, "wrong-secret").await, 401);
    assert_eq!(
        deliver(
            &client,
            &format!("http://{addr}/webhooks/nope"),
            7003,
            WEBHOOK_SECRET
        )
        .await,
        404
    );
    let (_, samples, text) = scrape(&client, &addr).await;
    let webhooks = |outcome: &str| {
        value(
            &samples,
            "switchyard_webhooks_total",
            &[("account", "shop-us"), ("outcome", outcome)],
        )
    };
    assert_eq!(webhooks("stored"), 1.0);
    assert_eq!(webhooks("duplicate"), 1.0);
    assert_eq!(webhooks("unauthorized"), 1.0);
    // Each delivery's answer was timed, whatever it was.
    let (types, _) = parse(&text);
    assert_eq!(types["switchyard_webhooks"], "counter");
    assert_eq!(types["switchyard_webhook_ack_seconds"], "histogram");
    assert_eq!(
        value(
            &samples,
            "switchyard_webhook_ack_seconds_count",
            &[("account", "shop-us")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "switchyard_webhooks_total",
            &[("account", "unknown"), ("outcome", "unknown_account")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "switchyard_orders_ingested_total",
            &[
                ("account", "shop-us"),
                ("source", "webhook"),
                ("outcome", "created")
            ]
        ),
        1.0
    );
    // Labels never carry order ids (nor account ids that nobody configured).
    for (_, labels, _) in &samples {
        for v in labels.values() {
            let order_like = v.contains(':') && !v.starts_with("destination:");
            assert!(
                !order_like && !v.contains("7001") && !v.contains("nope"),
                "label value {v:?}"
            );
        }
    }
    assert!(
        !text.contains("shop-us:"),
        "an order id in /metrics:\n{text}"
    );

    // Readiness with per-account detail.
    let resp = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ready: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(ready["ready"], true);
    let account = &ready["accounts"]["shop-us"];
    assert_eq!(account["token"], "static", "{ready}");
    assert_eq!(account["polling"], true, "{ready}");
    assert_eq!(account["consecutive_errors"], 0, "{ready}");
    assert!(account["last_success"].is_string(), "{ready}");

    daemon.stop().await;
    sim.stop().await;
}
