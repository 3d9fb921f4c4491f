//! Every request the connector makes in every fixture scenario is one Etsy's
//! published Open API v3 description documents: the operation exists for
//! that method and path, every query and path parameter is declared, of the
//! right type, enum and range (so `limit` never passes 100 and `sort_on` is
//! a value Etsy knows), and the body matches the operation's schema. Bodies
//! are held to a stricter rule than the description states: a field the
//! schema does not declare is refused, because `updateListingInventory`
//! must never get a read-only field (`product_id`, `offering_id`,
//! `is_deleted`, `scale_name`) back. The token endpoint, which the
//! description does not cover, is checked by hand.

// Test support outside `#[test]` functions: a panic is the failure report,
// and test figures are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::path::Path;

use serde_json::Value;
use switchyard_contract::testkit::{HttpRequest, OpenApi, Scenario};
use switchyard_etsy::settings::replay;

use common::*;

/// The description, with every object schema closed (`additionalProperties:
/// false` where it says nothing), so an undeclared field is a violation.
fn strict_spec() -> OpenApi {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/etsy-openapi-3.0.0.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    close_objects(&mut doc);
    OpenApi::from_value(doc)
}

fn close_objects(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let is_object_schema = map.get("type") == Some(&Value::from("object"))
                && map.get("properties").is_some_and(Value::is_object);
            if is_object_schema && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for child in map.values_mut() {
                close_objects(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

fn check_token_request(r: &HttpRequest) -> Result<(), String> {
    let form = r.body_form();
    let keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    if r.method != "POST"
        || !r
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return Err(format!("{} {}: a form POST expected", r.method, r.path));
    }
    if keys != ["grant_type", "client_id", "refresh_token"] {
        return Err(format!("token request fields {keys:?}"));
    }
    if form[0].1 != "refresh_token" || form[1].1 != replay::KEYSTRING {
        return Err(format!(
            "token request grant {:?}, client {:?}",
            form[0].1, form[1].1
        ));
    }
    Ok(())
}

#[tokio::test]
async fn every_recorded_request_is_valid_against_etsys_published_spec() {
    let spec = strict_spec();
    let mut checked = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for s in Scenario::load_all(&fixtures_dir()).unwrap() {
        let run = run(&s).await;
        for r in &run.requests {
            if r.path == replay::TOKEN_PATH {
                if let Err(e) = check_token_request(r) {
                    problems.push(format!("{}: {e}", s.name));
                }
                checked.insert("token refresh".to_owned());
                continue;
            }
            match spec.validate(r) {
                Ok(operation) => {
                    checked.insert(operation);
                }
                Err(violations) => {
                    for v in violations {
                        problems.push(format!("{}: {} {}: {v}", s.name, r.method, r.path));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every operation the connector uses was exercised by some fixture.
    let want = [
        "createReceiptShipment",
        "getListingInventory",
        "getListingsByShop",
        "getShopReceipt",
        "getShopReceipts",
        "token refresh",
        "updateListingInventory",
    ];
    assert_eq!(checked.iter().map(String::as_str).collect::<Vec<_>>(), want);
}

/// The strictness is real: a read-only field sent back, a page past Etsy's
/// limit and an unknown sort are refused.
#[test]
fn the_strict_spec_refuses_what_etsy_would() {
    let spec = strict_spec();
    let request = |method: &str, path: &str, query: &[(&str, &str)], body: &str| HttpRequest {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    };
    let put = |body: &str| request("PUT", "/v3/application/listings/1/inventory", &[], body);
    let ok = r#"{"products":[{"sku":"A","property_values":[],"offerings":[{"price":1.5,"quantity":1,"is_enabled":true,"readiness_state_id":null}]}]}"#;
    spec.validate(&put(ok)).unwrap();
    let with_id = ok.replace(r#""sku":"A""#, r#""sku":"A","product_id":9"#);
    assert!(spec.validate(&put(&with_id)).is_err());
    let money_price = ok.replace("1.5", r#"{"amount":150,"divisor":100}"#);
    assert!(spec.validate(&put(&money_price)).is_err());
    let receipts = "/v3/application/shops/1/receipts";
    assert!(
        spec.validate(&request("GET", receipts, &[("limit", "500")], ""))
            .is_err()
    );
    assert!(
        spec.validate(&request("GET", receipts, &[("sort_on", "modified")], ""))
            .is_err()
    );
    spec.validate(&request("GET", receipts, &[("limit", "100")], ""))
        .unwrap();
}
