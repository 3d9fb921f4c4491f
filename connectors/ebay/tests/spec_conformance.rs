//! Every request the connector makes in the fixture scenarios is valid
//! against eBay's published OpenAPI descriptions, vendored under `spec/`
//! (Sell Fulfillment, Sell Inventory, Commerce Notification): the operation
//! exists for that method and path, every query and path parameter is known
//! and well-formed, required headers are sent, and JSON bodies match the
//! operation's schema. The token endpoint is not in these files (eBay's
//! Identity API has none); its requests are checked by the replay test.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use switchyard_contract::testkit::Scenario;
use switchyard_contract::testkit::openapi::OpenApi;

use common::*;

fn specs() -> Vec<OpenApi> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("spec");
    [
        "sell_fulfillment_v1_oas3.json",
        "sell_inventory_v1_oas3.json",
        "commerce_notification_v1_oas3.json",
    ]
    .iter()
    .map(|f| OpenApi::load(&dir.join(f)).unwrap_or_else(|e| panic!("{e}")))
    .collect()
}

#[test]
fn the_vendored_specs_serve_the_paths_this_crate_calls() {
    let specs = specs();
    let bases: Vec<&str> = specs.iter().map(OpenApi::base_path).collect();
    assert_eq!(
        bases,
        [
            "/sell/fulfillment/v1",
            "/sell/inventory/v1",
            "/commerce/notification/v1"
        ]
    );
}

#[tokio::test]
async fn every_recorded_request_is_valid_against_ebays_published_specs() {
    let specs = specs();
    let mut operations = BTreeSet::new();
    let mut problems = Vec::new();
    for s in Scenario::load_all(&fixtures_dir()).unwrap() {
        let run = run(&s).await;
        for r in run.requests.iter().filter(|r| r.path != TOKEN_PATH) {
            let Some(spec) = specs.iter().find(|api| api.covers(&r.path)) else {
                problems.push(format!(
                    "{}: {} {} is in none of the specs",
                    s.name, r.method, r.path
                ));
                continue;
            };
            match spec.validate(r) {
                Ok(op) => {
                    operations.insert(op);
                }
                Err(violations) => {
                    for v in violations {
                        problems.push(format!("{}: {v}", s.name));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "requests off the spec:\n  {}",
        problems.join("\n  ")
    );
    let expected: BTreeSet<String> = [
        "bulkUpdatePriceQuantity",
        "createShippingFulfillment",
        "getOffers",
        "getOrder",
        "getOrders",
        "getPublicKey",
        "getShippingFulfillments",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        operations, expected,
        "the fixtures exercise every call the connector makes"
    );
}
