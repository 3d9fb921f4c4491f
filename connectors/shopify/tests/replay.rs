//! Replays every scenario under `fixtures/shopify/` through the real
//! connector against the strict replay server (each recorded request exactly
//! once, nothing else) and compares what came out with the golden files:
//! `expected/orders.json` (canonical orders and their notes),
//! `expected/requests.json` (what the connector sent) and
//! `expected/results.json` (cursors, push results, errors, webhook outcomes).
//! Regenerate with `SWITCHYARD_BLESS=1`, then read the diff.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{Value, json};
use switchyard_contract::testkit::{Scenario, assert_goldens};
use switchyard_shopify::graphql;

use common::*;

/// What the connector sent, minus the document text: that every request's
/// `query` is one of the known, schema-checked documents is asserted here.
fn sent(scenario: &str, requests: &[switchyard_contract::testkit::HttpRequest]) -> Value {
    let mut out = Vec::new();
    for r in requests {
        assert_eq!(r.method, "POST", "{scenario}");
        assert_eq!(r.path, GRAPHQL_PATH, "{scenario}");
        assert_eq!(
            r.header("x-shopify-access-token"),
            Some(TOKEN),
            "{scenario}: token header"
        );
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{scenario}: content type"
        );
        let body = r
            .body_json()
            .unwrap_or_else(|| panic!("{scenario}: request body is not JSON"));
        let query = body["query"].as_str().expect("query");
        assert!(
            graphql::is_known_document(query),
            "{scenario}: unknown document sent:\n{query}"
        );
        let operation = body["operationName"].as_str().expect("operationName");
        assert!(
            query.contains(&format!(" {operation}("))
                || query.contains(&format!(" {operation} {{")),
            "{scenario}: operationName {operation} is not the document's operation"
        );
        out.push(json!({ "operationName": operation, "variables": body["variables"] }));
    }
    Value::Array(out)
}

#[tokio::test]
async fn every_scenario_replays_and_matches_its_golden_files() {
    let scenarios = Scenario::load_all(&fixtures_dir()).unwrap();
    assert!(
        scenarios.len() >= 15,
        "found only {} shopify scenarios",
        scenarios.len()
    );
    for s in &scenarios {
        eprintln!("scenario {}", s.name);
        let run = run(s).await;
        let requests = sent(&s.name, &run.requests);
        assert_goldens(
            s,
            &[TOKEN, WEBHOOK_SECRET],
            &run.orders,
            &run.results,
            requests,
        );
    }
}

/// The same order through both paths, poll (GraphQL node) and webhook (REST
/// body with shop-local time offsets), gives identical canonical JSON and
/// identical notes.
#[tokio::test]
async fn the_same_order_polled_and_pushed_normalizes_identically() {
    let s = scenario("same-order-both-shapes");
    let run = run(&s).await;
    assert!(!run.webhook_orders.is_empty());
    for from_webhook in &run.webhook_orders {
        let id = &from_webhook.order.id;
        let polled = run
            .orders
            .iter()
            .find(|o| &o.order.id == id && o.raw.get("lineItems").is_some())
            .unwrap_or_else(|| panic!("order {id} was not polled"));
        assert_eq!(
            serde_json::to_value(&polled.order).unwrap(),
            serde_json::to_value(&from_webhook.order).unwrap(),
            "order {id}: poll and webhook disagree"
        );
        assert_eq!(polled.notes, from_webhook.notes, "order {id}: notes differ");
        assert_ne!(
            polled.payload(),
            from_webhook.payload(),
            "the two shapes really are different payloads"
        );
    }
}

/// The cursor is carried from page to page and the next sweep re-reads the
/// overlap window (also pinned in the golden results; spelled out here).
#[tokio::test]
async fn the_cursor_is_carried_across_pages_and_overlaps_the_next_sweep() {
    let s = scenario("poll-multi-page");
    let run = run(&s).await;
    let pages = run.results[0]["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0]["more"], true);
    assert_eq!(
        pages[0]["next"]["after"],
        "eyJsYXN0X2lkIjo1NTUxMjM0NTY4fQ=="
    );
    assert_eq!(pages[0]["next"]["window_start"], "2026-11-26T00:00:00Z");
    assert_eq!(pages[1]["more"], false);
    assert_eq!(pages[1]["next"]["watermark"], "2026-11-27T05:20:00Z");
    assert_eq!(pages[1]["next"]["window_start"], "2026-11-27T05:15:00Z");
    assert_eq!(pages[1]["next"]["after"], Value::Null);
    let second = run.requests[1].body_json().unwrap();
    assert_eq!(
        second["variables"]["after"],
        "eyJsYXN0X2lkIjo1NTUxMjM0NTY4fQ=="
    );
    let third = run.requests[2].body_json().unwrap();
    assert_eq!(
        third["variables"]["query"],
        "updated_at:>='2026-11-27T05:15:00Z'"
    );
}

/// THROTTLED inside a 200 and HTTP 429 are both rate limits with a wait.
#[tokio::test]
async fn throttles_are_rate_limits_with_the_wait() {
    let run = run(&scenario("poll-throttled")).await;
    assert_eq!(run.results[0]["error"]["class"], "rate_limited");
    // (938 requested − 243 available) / 100 per second = 6.95 → 7 s
    assert_eq!(run.results[0]["error"]["retry_after_ms"], 7000);
    assert!(run.results[1]["page"].is_object());

    let run = run_http_errors().await;
    assert_eq!(run[0]["error"]["class"], "rate_limited");
    assert_eq!(run[0]["error"]["retry_after_ms"], 2000);
    assert_eq!(run[1]["error"]["class"], "auth");
    assert_eq!(run[2]["error"]["class"], "transient");
    assert_eq!(run[3]["ok"], true);
}

async fn run_http_errors() -> Vec<Value> {
    run(&scenario("http-errors")).await.results
}
