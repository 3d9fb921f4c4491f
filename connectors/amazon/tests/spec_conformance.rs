//! Every request the connector makes in the fixtures is one Amazon's
//! published models describe (`spec/`, see `spec/SOURCE.md`): the operation
//! exists, its path, query and body parameters are known, present when
//! required and of the right shape. Also checked against Amazon's schemas:
//! the feed documents uploaded (listings feed v2), the notifications the
//! fixtures deliver (`ORDER_CHANGE`), and the orders the fixtures answer
//! with, where exactly the orders the schema refuses are the ones the
//! connector leaves out as unreadable.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use serde_json::Value;
use switchyard_contract::testkit::Scenario;
use switchyard_contract::testkit::openapi::OpenApi;

use common::*;

fn spec(name: &str) -> OpenApi {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("spec")
        .join(name);
    OpenApi::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A plain JSON Schema of `spec/schemas/`: its root is the schema.
fn schema_root(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("spec/schemas")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Specs {
    apis: Vec<OpenApi>,
}

impl Specs {
    fn load() -> Specs {
        Specs {
            apis: [
                "orders_2026-01-01.json",
                "ordersV0.json",
                "listingsItems_2021-08-01.json",
                "feeds_2021-06-30.json",
            ]
            .into_iter()
            .map(spec)
            .collect(),
        }
    }
}

#[tokio::test]
async fn every_recorded_request_is_valid_against_amazons_models() {
    let specs = Specs::load();
    let feed_root = schema_root("listings-feed-schema-v2.json");
    let feed_schema = OpenApi::from_value(feed_root.clone());
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    let mut problems = Vec::new();
    for s in Scenario::load_all(&fixtures_dir()).unwrap() {
        let run = run(&s).await;
        for r in &run.requests {
            if r.path == TOKEN_PATH {
                // Login with Amazon is plain OAuth 2 with no published model;
                // the replay test checks its form fields.
                *checked.entry("LWA token".into()).or_default() += 1;
                continue;
            }
            let Some(api) = specs.apis.iter().find(|a| a.covers(&r.path)) else {
                problems.push(format!(
                    "{}: {} {} is in no model",
                    s.name, r.method, r.path
                ));
                continue;
            };
            match api.validate(r) {
                Ok(op) => *checked.entry(op).or_default() += 1,
                Err(v) => problems.push(format!("{}: {}", s.name, v.join("; "))),
            }
        }
        for u in &run.uploads {
            let doc = u.body_json().expect("a JSON feed document");
            let mut errors = Vec::new();
            feed_schema.check(&feed_root, &doc, "feed document", &mut errors);
            if errors.is_empty() {
                *checked.entry("feed document upload".into()).or_default() += 1;
            }
            problems.extend(errors.into_iter().map(|e| format!("{}: {e}", s.name)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let ops: Vec<&str> = checked.keys().map(String::as_str).collect();
    for op in [
        "searchOrders",
        "getOrder",
        "confirmShipment",
        "getListingsItem",
        "patchListingsItem",
        "createFeedDocument",
        "createFeed",
        "getFeed",
        "getFeedDocument",
        "feed document upload",
        "LWA token",
    ] {
        assert!(ops.contains(&op), "no fixture exercises {op}: {ops:?}");
    }
}

#[tokio::test]
async fn fixture_notifications_follow_amazons_order_change_schema() {
    let root = schema_root("OrderChangeNotification.json");
    let schema = OpenApi::from_value(root.clone());
    let mut seen = 0;
    for s in Scenario::load_all(&fixtures_dir()).unwrap() {
        for w in &s.webhooks {
            let Ok(body) = serde_json::from_slice::<Value>(&w.body) else {
                continue;
            };
            let notification = body.get("detail").cloned().unwrap_or(body);
            if notification["NotificationType"] != "ORDER_CHANGE" {
                continue;
            }
            let mut errors = Vec::new();
            schema.check(&root, &notification, &w.name, &mut errors);
            assert!(errors.is_empty(), "{}: {errors:?}", s.name);
            seen += 1;
        }
    }
    assert!(seen >= 4, "only {seen} ORDER_CHANGE fixtures");
}

#[tokio::test]
async fn the_orders_the_schema_refuses_are_exactly_the_ones_left_out() {
    let orders_api = spec("orders_2026-01-01.json");
    let order_schema = serde_json::json!({"$ref": "#/definitions/Order"});
    for s in Scenario::load_all(&fixtures_dir()).unwrap() {
        let mut invalid = Vec::new();
        for e in &s.exchanges {
            if e.method != "GET" || !e.path.starts_with("/orders/2026-01-01/") || e.status != 200 {
                continue;
            }
            let body: Value = serde_json::from_slice(&e.response).unwrap();
            let orders: Vec<Value> = match (body.get("orders"), body.get("order")) {
                (Some(Value::Array(list)), _) => list.clone(),
                (_, Some(one)) => vec![one.clone()],
                _ => panic!("{}: {} answers neither orders nor order", s.name, e.path),
            };
            for o in orders {
                let mut errors = Vec::new();
                orders_api.check(&order_schema, &o, "order", &mut errors);
                if !errors.is_empty() {
                    invalid.push(o["orderId"].as_str().unwrap_or("?").to_owned());
                }
            }
        }
        invalid.sort();
        invalid.dedup();
        let run = run(&s).await;
        let mut rejected: Vec<String> = run
            .results
            .iter()
            .flat_map(|r| {
                let pages = r["pages"]
                    .as_array()
                    .cloned()
                    .unwrap_or_else(|| vec![r["page"].clone()]);
                pages
                    .into_iter()
                    .flat_map(|p| p["rejected"].as_array().cloned().unwrap_or_default())
            })
            .filter_map(|r| r["channel_order_id"].as_str().map(str::to_owned))
            .collect();
        rejected.sort();
        rejected.dedup();
        assert_eq!(invalid, rejected, "{}", s.name);
    }
}

/// The check above can fail: requests Amazon would refuse are refused here.
#[test]
fn the_models_refuse_requests_amazon_would_refuse() {
    use switchyard_contract::testkit::HttpRequest;
    let request = |method: &str, path: &str, query: &[(&str, &str)], body: Value| HttpRequest {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        },
    };
    let orders = spec("orders_2026-01-01.json");
    let v0 = spec("ordersV0.json");
    let listings = spec("listingsItems_2021-08-01.json");
    let bad = [
        (
            &orders,
            request(
                "GET",
                "/orders/2026-01-01/orders",
                &[("updatedSince", "2026-01-01T00:00:00Z")],
                Value::Null,
            ),
        ),
        (
            &v0,
            request(
                "POST",
                "/orders/v0/orders/111-1/shipmentConfirmation",
                &[],
                serde_json::json!({"marketplaceId": "ATVPDKIKX0DER",
                    "packageDetail": {"packageReferenceId": "1", "trackingNumber": "1Z", "orderItems": []}}),
            ),
        ),
        (
            &listings,
            request(
                "PATCH",
                "/listings/2021-08-01/items/A1/SKU",
                &[("marketplaceIds", "ATVPDKIKX0DER")],
                serde_json::json!({"patches": []}),
            ),
        ),
    ];
    for (api, req) in bad {
        assert!(
            api.validate(&req).is_err(),
            "{} {} passed",
            req.method,
            req.path
        );
    }
}
