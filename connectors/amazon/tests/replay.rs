//! Replays every scenario under `fixtures/amazon/` through the real
//! connector against the strict replay server (each recorded request exactly
//! once, nothing else) and compares what came out with the golden files:
//! `expected/orders.json` (canonical orders and their notes),
//! `expected/requests.json` (what the connector sent to Amazon),
//! `expected/uploads.json` (feed documents sent to pre-signed URLs) and
//! `expected/results.json` (cursors, push results, errors, webhook outcomes,
//! the rate limits the connector ends up publishing). Regenerate with
//! `SWITCHYARD_BLESS=1`, then read the diff.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchyard_contract::testkit::{
    HttpRequest, Scenario, assert_golden_json, assert_goldens, assert_no_secrets,
};

use common::*;

/// `application/x-www-form-urlencoded` → pairs.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// What the connector sent, with every credential checked here and kept out
/// of the golden file.
pub fn sent(scenario: &str, requests: &[HttpRequest]) -> Value {
    let mut out = Vec::new();
    for r in requests {
        if r.path == TOKEN_PATH {
            assert_eq!(r.method, "POST", "{scenario}");
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")),
                "{scenario}: token request content type"
            );
            assert!(
                r.header("x-amz-access-token").is_none(),
                "{scenario}: LWA never gets an access token"
            );
            let f = form(&r.body);
            assert_eq!(f["grant_type"], "refresh_token", "{scenario}");
            assert_eq!(f["client_id"], CLIENT_ID, "{scenario}");
            assert_eq!(f["client_secret"], CLIENT_SECRET, "{scenario}");
            assert_eq!(f["refresh_token"], REFRESH_TOKEN, "{scenario}");
            out.push(json!({ "method": r.method, "path": r.path,
                             "form": { "grant_type": f["grant_type"], "client_id": f["client_id"] } }));
            continue;
        }
        let token = match r.header("x-amz-access-token") {
            Some(ACCESS_TOKEN) => "seeded",
            Some(REFRESHED_TOKEN) => "refreshed",
            other => panic!(
                "{scenario}: {} {} with access token {other:?}",
                r.method, r.path
            ),
        };
        assert!(
            r.header("user-agent")
                .is_some_and(|ua| ua.starts_with("switchyard/") && ua.contains("Language=Rust")),
            "{scenario}: user agent"
        );
        assert!(
            r.header("authorization").is_none(),
            "{scenario}: no AWS signature, no bearer token"
        );
        let body = if r.body.is_empty() {
            Value::Null
        } else {
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "{scenario}: JSON body"
            );
            r.body_json()
                .unwrap_or_else(|| panic!("{scenario}: body is not JSON"))
        };
        out.push(
            json!({ "method": r.method, "path": r.path, "query": r.query,
                         "token": token, "body": body }),
        );
    }
    Value::Array(out)
}

fn uploads(scenario: &str, uploads: &[HttpRequest]) -> Value {
    Value::Array(
        uploads
            .iter()
            .map(|u| {
                assert!(
                    u.header("x-amz-access-token").is_none(),
                    "{scenario}: the access token never goes to storage"
                );
                json!({ "path": u.path, "query": u.query,
                        "content_type": u.header("content-type"),
                        "document": u.body_json().expect("a JSON feed document") })
            })
            .collect(),
    )
}

#[tokio::test]
async fn every_scenario_replays_and_matches_its_golden_files() {
    let scenarios = Scenario::load_all(&fixtures_dir()).unwrap();
    assert!(
        scenarios.len() >= 11,
        "found only {} amazon scenarios",
        scenarios.len()
    );
    let secrets = [
        ACCESS_TOKEN,
        REFRESHED_TOKEN,
        CLIENT_SECRET,
        REFRESH_TOKEN,
        WEBHOOK_SECRET,
    ];
    for s in &scenarios {
        eprintln!("scenario {}", s.name);
        let run = run(s).await;
        let uploaded = uploads(&s.name, &run.uploads);
        assert_no_secrets(s, &secrets, "uploads", &uploaded);
        assert_goldens(
            s,
            &secrets,
            &run.orders,
            &run.results,
            sent(&s.name, &run.requests),
        );
        assert_golden_json(&s.expected("uploads.json"), &uploaded);
    }
}
