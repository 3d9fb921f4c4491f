//! Replays every scenario under `fixtures/etsy/` through the real connector
//! against the strict replay server (each recorded request exactly once,
//! nothing else) and compares what came out with the golden files:
//! `expected/orders.json` (canonical orders and their notes),
//! `expected/requests.json` (what the connector sent: method, path, query,
//! body) and `expected/results.json` (cursors, push results, errors, webhook
//! outcomes, what the pacer was asked and told). Regenerate with
//! `SWITCHYARD_BLESS=1`, then read the diff.

// Test support outside `#[test]` functions: a panic is the failure report,
// and test figures are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use serde_json::{Value, json};
use switchyard_contract::testkit::{HttpRequest, Scenario, assert_goldens};
use switchyard_contract::{InventoryResult, Operation, RateWindow, TrackingResult};
use switchyard_etsy::settings::replay;

use common::*;

/// Every request is signed the way Etsy requires.
fn check_signed(scenario: &str, r: &HttpRequest) {
    if r.path == replay::TOKEN_PATH {
        assert_eq!(r.method, "POST", "{scenario}");
        assert!(
            r.header("authorization").is_none(),
            "{scenario}: no bearer to the token endpoint"
        );
        return;
    }
    assert_eq!(
        r.header("x-api-key"),
        Some(format!("{}:{}", replay::KEYSTRING, replay::SHARED_SECRET).as_str()),
        "{scenario}: x-api-key must be keystring:shared_secret"
    );
    let bearer = r.header("authorization").unwrap_or_default();
    assert!(
        bearer == format!("Bearer {}", replay::ACCESS_TOKEN)
            || bearer == format!("Bearer {ROTATED_ACCESS_TOKEN}"),
        "{scenario}: authorization {bearer:?}"
    );
}

#[tokio::test]
async fn every_scenario_replays_and_matches_its_golden_files() {
    let scenarios = Scenario::load_all(&fixtures_dir()).unwrap();
    assert!(
        scenarios.len() >= 14,
        "found only {} etsy scenarios",
        scenarios.len()
    );
    for s in &scenarios {
        eprintln!("scenario {}", s.name);
        let run = run(s).await;
        let mut requests = Vec::new();
        for r in &run.requests {
            check_signed(&s.name, r);
            requests.push(request_json(r));
        }
        assert_goldens(
            s,
            &secrets(),
            &run.orders,
            &run.results,
            Value::Array(requests),
        );
    }
}

/// The one write of a listing with several variations keeps every one of
/// them: all four products, their property values and prices, and only the
/// pushed SKU's quantity changed.
#[tokio::test]
async fn a_one_sku_push_keeps_every_variation_of_the_listing() {
    let s = scenario("inventory-push-variations");
    let run = run(&s).await;
    let put: Vec<&HttpRequest> = run.requests.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(put.len(), 1);
    let body = put[0].body_json().unwrap();
    let read: Value = serde_json::from_slice(&s.exchanges[0].response).unwrap();
    let products = body["products"].as_array().unwrap();
    let before = read["products"].as_array().unwrap();
    assert_eq!(products.len(), before.len(), "every product goes back");
    for (p, b) in products.iter().zip(before) {
        assert_eq!(p["sku"], b["sku"]);
        let want_quantity = if p["sku"] == "TEE-M-BLUE" {
            json!(7)
        } else {
            b["offerings"][0]["quantity"].clone()
        };
        assert_eq!(p["offerings"][0]["quantity"], want_quantity, "{}", p["sku"]);
        assert_eq!(
            p["offerings"][0]["is_enabled"],
            b["offerings"][0]["is_enabled"]
        );
        let price = &b["offerings"][0]["price"];
        let float = price["amount"].as_f64().unwrap() / price["divisor"].as_f64().unwrap();
        assert_eq!(p["offerings"][0]["price"].as_f64().unwrap(), float);
        assert_eq!(p["property_values"].as_array().unwrap().len(), 2);
        for (v, bv) in p["property_values"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["property_values"].as_array().unwrap())
        {
            assert_eq!(v["property_id"], bv["property_id"]);
            assert_eq!(v["value_ids"], bv["value_ids"]);
            assert_eq!(v["values"], bv["values"]);
            assert!(
                v.get("scale_name").is_none(),
                "read-only scale_name stripped"
            );
        }
        assert!(p.get("product_id").is_none() && p.get("is_deleted").is_none());
        assert!(p["offerings"][0].get("offering_id").is_none());
    }
    for key in [
        "price_on_property",
        "quantity_on_property",
        "sku_on_property",
    ] {
        assert_eq!(body[key], read[key], "{key} kept");
    }
    assert!(
        body.get("listing").is_none(),
        "the association is not written back"
    );
}

/// Two SKUs of one listing changed together go in one read and one write,
/// and the batch key says so before the call.
#[tokio::test]
async fn two_skus_of_one_listing_go_in_one_call() {
    let s = scenario("inventory-push-batch");
    let run = run(&s).await;
    let tee: Vec<&HttpRequest> = run
        .requests
        .iter()
        .filter(|r| r.path == "/v3/application/listings/1001/inventory")
        .collect();
    assert_eq!(
        tee.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["GET", "PUT"]
    );
    let body = tee[1].body_json().unwrap();
    let quantity = |sku: &str| {
        body["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["sku"] == sku)
            .map(|p| p["offerings"][0]["quantity"].clone())
            .unwrap()
    };
    assert_eq!(quantity("TEE-S-RED"), 12);
    assert_eq!(quantity("TEE-S-BLUE"), 0);
    assert_eq!(
        quantity("TEE-M-RED"),
        6,
        "the conflicting SKU is not written"
    );
    let results = run.results[0]["results"].as_array().unwrap();
    for r in &results[..3] {
        assert_eq!(r["batch_key"], "listing:1001");
    }
    assert_eq!(
        serde_json::from_value::<InventoryResult>(results[1]["result"].clone()).unwrap(),
        InventoryResult::Conflict { current: 6 }
    );
    // After the call the catalog knows the looked-up SKU's listing.
    let mug = switchyard_contract::InventoryPush {
        sku: "MUG-RED".into(),
        quantity: 1,
        last_confirmed: None,
        listing_ref: None,
        idempotency_key: "k".into(),
    };
    use switchyard_contract::Connector;
    assert_eq!(
        run.connector.inventory_batch_key(&mug).as_deref(),
        Some("listing:2002")
    );
}

/// A token expiring between two pages costs one refresh: the rotated refresh
/// token is in the store, the page is asked for again with the new token,
/// and the sync goes on.
#[tokio::test]
async fn a_token_expiring_mid_sync_refreshes_once_and_continues() {
    let run = run(&scenario("token-expiry-mid-sync")).await;
    let pages = run.results[0]["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(run.results[0]["error"], Value::Null);
    let bearers: Vec<&str> = run
        .requests
        .iter()
        .map(|r| r.header("authorization").unwrap_or("(token endpoint)"))
        .collect();
    assert_eq!(
        bearers,
        [
            format!("Bearer {}", replay::ACCESS_TOKEN).as_str(),
            format!("Bearer {}", replay::ACCESS_TOKEN).as_str(),
            "(token endpoint)",
            format!("Bearer {ROTATED_ACCESS_TOKEN}").as_str(),
        ]
    );
    let form = run.requests[2].body_form();
    assert!(form.contains(&("refresh_token".into(), replay::REFRESH_TOKEN.into())));
    let saved = run.tokens.saved().expect("the rotation was saved");
    assert_eq!(saved.refresh_token.unwrap().expose(), ROTATED_REFRESH_TOKEN);
    assert_eq!(saved.access_token.unwrap().expose(), ROTATED_ACCESS_TOKEN);
    let auths = run
        .pacer
        .acquired
        .lock()
        .unwrap()
        .iter()
        .filter(|o| o.as_str() == "auth")
        .count();
    assert_eq!(auths, 1, "one refresh");
}

/// A refused refresh token is reported with what to do, and not tried again
/// on the next poll.
#[tokio::test]
async fn a_refused_refresh_token_says_how_to_reauthorize_and_is_not_retried() {
    let run = run(&scenario("token-refresh-refused")).await;
    assert_eq!(
        run.requests.len(),
        1,
        "one refresh attempt, then the cool-off"
    );
    for r in &run.results[..2] {
        assert_eq!(r["error"]["class"], "auth");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains("re-authorize"), "{message}");
        assert!(message.contains("invalid_grant"), "{message}");
    }
    assert!(matches!(
        run.tokens.state(),
        Some(switchyard_contract::TokenState::RefreshFailed { .. })
    ));
}

/// Etsy's limit headers reach the pacer as burst and daily hints, 429s
/// included, for every operation, so that the daemon can hold pushes back
/// when the day runs low.
#[tokio::test]
async fn limit_headers_become_burst_and_daily_hints() {
    let run = run(&scenario("poll-rate-limited")).await;
    assert_eq!(run.results[0]["error"]["class"], "rate_limited");
    assert_eq!(run.results[0]["error"]["retry_after_ms"], 2000);
    let observed = run.pacer.observed.lock().unwrap().clone();
    // Etsy's budgets are one per app: every operation's budget hears of
    // every answer, so a day running low on polls holds pushes back too.
    for operation in Operation::ALL {
        let daily: Vec<u32> = observed
            .iter()
            .filter(|(op, h)| *op == operation && h.window == RateWindow::Daily)
            .map(|(_, h)| h.remaining)
            .collect();
        assert_eq!(daily, [130, 129], "{operation}");
        let burst: Vec<u32> = observed
            .iter()
            .filter(|(op, h)| *op == operation && h.window == RateWindow::Burst)
            .map(|(_, h)| h.capacity)
            .collect();
        assert_eq!(burst, [10, 10], "{operation}");
    }
}

/// A retry after a timeout finds its shipment and sends nothing: Etsy would
/// mail the buyer again.
#[tokio::test]
async fn a_tracking_retry_finds_its_shipment_and_never_sends_twice() {
    let run = run(&scenario("tracking-push")).await;
    let posts: Vec<&str> = run
        .requests
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.as_str())
        .collect();
    assert!(!posts.iter().any(|p| p.contains("/3002/")), "{posts:?}");
    assert_eq!(
        serde_json::from_value::<TrackingResult>(run.results[1]["result"].clone()).unwrap(),
        TrackingResult::AlreadyThere {
            channel_ref: Some("556002".into())
        }
    );
    let create = run.requests.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(
        create.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
}
