//! Replays every scenario under `fixtures/ebay/` through the real connector
//! against the strict replay server (each recorded request exactly once,
//! nothing else) and compares what came out with the golden files:
//! `expected/orders.json` (canonical orders and their notes),
//! `expected/requests.json` (what the connector sent) and
//! `expected/results.json` (cursors, push results, errors, webhook outcomes,
//! the daily budget hints given to the pacer). Regenerate with
//! `SWITCHYARD_BLESS=1`, then read the diff.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchyard_contract::TokenState;
use switchyard_contract::testkit::{HttpRequest, Scenario, assert_goldens};
use switchyard_ebay::config::REPLAY_REFRESH_TOKEN;

use common::*;

/// What the connector sent: method, path, query and body, with the one
/// secret a form body carries checked and masked.
fn sent(scenario: &str, requests: &[HttpRequest]) -> Value {
    let tokens = fixture_access_tokens();
    let mut out = Vec::new();
    for r in requests {
        if r.path == TOKEN_PATH {
            assert_eq!(r.method, "POST", "{scenario}");
            assert_eq!(
                r.header("authorization"),
                Some(basic_credentials().as_str()),
                "{scenario}: token requests carry the app's Basic credentials"
            );
            assert_eq!(
                r.header("content-type"),
                Some("application/x-www-form-urlencoded"),
                "{scenario}"
            );
            let form: BTreeMap<String, String> = url_decoded(&String::from_utf8_lossy(&r.body))
                .into_iter()
                .collect();
            let mut shown = form.clone();
            if let Some(t) = shown.get_mut("refresh_token") {
                assert_eq!(t, REPLAY_REFRESH_TOKEN, "{scenario}");
                *t = "(the configured refresh token)".into();
            }
            out.push(json!({ "method": r.method, "path": r.path, "form": shown }));
            continue;
        }
        let bearer = r.header("authorization").unwrap_or_default();
        assert!(
            bearer
                .strip_prefix("Bearer ")
                .is_some_and(|t| tokens.iter().any(|f| f == t)),
            "{scenario}: {} {} carries {bearer:?}, not a token the fixtures minted",
            r.method,
            r.path
        );
        let mut v = json!({ "method": r.method, "path": r.path });
        if !r.query.is_empty() {
            v["query"] = json!(r.query);
        }
        if !r.body.is_empty() {
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "{scenario}: a body is JSON"
            );
            v["body"] = r
                .body_json()
                .unwrap_or_else(|| panic!("{scenario}: body is not JSON"));
        }
        out.push(v);
    }
    Value::Array(out)
}

fn url_decoded(form: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    form.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The last daily-budget hint the pacer got for each operation.
fn daily_hints(run: &Run) -> Value {
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for (op, h) in run.pacer.observed.lock().unwrap().iter() {
        last.insert(
            op.to_string(),
            json!({ "capacity": h.capacity, "remaining": h.remaining, "window": h.window }),
        );
    }
    json!({ "daily_hints": last })
}

#[tokio::test]
async fn every_scenario_replays_and_matches_its_golden_files() {
    let scenarios = Scenario::load_all(&fixtures_dir()).unwrap();
    assert!(
        scenarios.len() >= 21,
        "found only {} ebay scenarios",
        scenarios.len()
    );
    let secrets = secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    for s in &scenarios {
        eprintln!("scenario {}", s.name);
        let run = run(s).await;
        let mut results = run.results.clone();
        results.push(daily_hints(&run));
        let requests = sent(&s.name, &run.requests);
        assert_goldens(s, &secrets, &run.orders, &results, requests);
    }
}

/// A sweep reads its window page by page; the next overlaps its end.
#[tokio::test]
async fn the_cursor_pages_a_closed_window_and_the_next_sweep_overlaps_it() {
    let run = run(&scenario("poll-multi-page")).await;
    let pages = run.results[0]["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0]["more"], true);
    assert_eq!(pages[0]["next"]["offset"], 2);
    assert_eq!(pages[1]["more"], false);
    assert_eq!(pages[1]["next"]["window_start"], "2026-11-27T11:55:00Z");
    assert_eq!(pages[1]["next"]["window_end"], Value::Null);
    let filters: Vec<&str> = run
        .requests
        .iter()
        .filter_map(|r| r.query_param("filter"))
        .collect();
    assert_eq!(
        filters,
        [
            "lastmodifieddate:[2026-11-26T00:00:00.000Z..2026-11-27T12:00:00.000Z]",
            "lastmodifieddate:[2026-11-26T00:00:00.000Z..2026-11-27T12:00:00.000Z]",
            "lastmodifieddate:[2026-11-27T11:55:00.000Z..2026-11-27T12:10:00.000Z]",
        ],
        "only lastmodifieddate: with creationdate eBay ignores it"
    );
}

/// An order that changes between two pages would make offset paging skip
/// the one that slid back; the cursor re-reads from there instead.
#[tokio::test]
async fn an_order_leaving_the_window_mid_sweep_is_not_skipped() {
    let run = run(&scenario("poll-orders-leave-mid-sweep")).await;
    let mut ids: Vec<&str> = run
        .orders
        .iter()
        .map(|o| o.order.channel_order_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids,
        [
            "12-04202-00001",
            "12-04202-00002",
            "12-04202-00003",
            "12-04202-00004",
            "12-04202-00005"
        ]
    );
}

/// 429 and "Request limit exceeded" are both rate limits.
#[tokio::test]
async fn ebay_limits_are_rate_limits() {
    let run = run(&scenario("poll-rate-limited")).await;
    assert_eq!(run.results[0]["error"]["class"], "rate_limited");
    assert_eq!(run.results[1]["error"]["class"], "rate_limited");
    assert!(run.results[2]["page"].is_object());
}

/// A token is minted once and reused; a 401 drops it; a token shorter-lived
/// than the refresh margin is replaced on the next call.
#[tokio::test]
async fn the_access_token_is_cached_until_shortly_before_it_expires() {
    let run = run(&scenario("token-expiry")).await;
    let grants = run.requests.iter().filter(|r| r.path == TOKEN_PATH).count();
    assert_eq!(
        grants, 3,
        "minted, reused, dropped on 401, minted twice more"
    );
    assert_eq!(run.results[2]["error"]["class"], "auth");
    assert!(matches!(
        run.tokens.state(),
        Some(TokenState::Valid { until: Some(_) })
    ));
}

/// A revoked refresh token is said loudly, once, and not asked again at once.
#[tokio::test]
async fn a_revoked_refresh_token_is_reported_and_not_retried_in_a_loop() {
    let run = run(&scenario("token-revoked")).await;
    assert_eq!(
        run.requests.len(),
        1,
        "one grant, then the keeper's cool-off"
    );
    for r in &run.results {
        let e = &r["error"];
        assert_eq!(e["class"], "auth", "{r}");
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains("invalid_grant") && m.contains("re-authorize"),
            "{m}"
        );
    }
    match run.tokens.state() {
        Some(TokenState::RefreshFailed { reason, .. }) => {
            assert!(reason.contains("re-authorize"), "{reason}")
        }
        other => panic!("token state {other:?}"),
    }
}
