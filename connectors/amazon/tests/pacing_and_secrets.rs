//! Every request waits for the pacer under the budget Amazon counts it
//! against, and Amazon's rate reports reach the pacer; no credential reaches
//! an error, even from a server that echoes requests back.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use switchyard_contract::testkit::{HttpRequest, HttpResponse, LoopbackServer};
use switchyard_contract::{
    BoxFuture, Connector, InventoryPush, Operation, Pacer, RateHint, TokenStore,
};

use common::*;

#[derive(Default)]
struct Recording {
    acquired: Mutex<Vec<Operation>>,
    observed: Mutex<Vec<(Operation, RateHint)>>,
}

impl Pacer for Recording {
    fn acquire(&self, operation: Operation, cost: u32) -> BoxFuture<'_, ()> {
        assert_eq!(cost, 1);
        self.acquired.lock().unwrap().push(operation);
        Box::pin(std::future::ready(()))
    }

    fn observe(&self, operation: Operation, hint: RateHint) {
        self.observed.lock().unwrap().push((operation, hint));
    }
}

/// The budget a recorded request counts against, read from its path.
fn class_of(r: &HttpRequest) -> Operation {
    let p = r.path.as_str();
    match (r.method.as_str(), p) {
        (_, "/auth/o2/token") => Operation::Auth,
        ("GET", "/orders/2026-01-01/orders") => Operation::Poll,
        ("GET", _) if p.starts_with("/orders/2026-01-01/orders/") => Operation::Fetch,
        ("POST", _) if p.starts_with("/orders/v0/") => Operation::PushTracking,
        ("GET", _) if p.starts_with("/listings/") || p.starts_with("/feeds/") => Operation::Lookup,
        ("PATCH", _) | ("POST", _) => Operation::PushInventory,
        _ => panic!("unclassified request {} {}", r.method, r.path),
    }
}

#[tokio::test]
async fn every_request_waits_for_the_pacer_in_its_class() {
    for name in [
        "poll-pages",
        "tracking-push",
        "inventory-feed",
        "token-expiry",
    ] {
        let pacer = Arc::new(Recording::default());
        let run = run_paced(&scenario(name), pacer.clone()).await;
        let mut expected: Vec<Operation> = run.requests.iter().map(class_of).collect();
        let mut acquired = pacer.acquired.lock().unwrap().clone();
        if name == "token-expiry" {
            // The last call's slot was taken before LWA refused the refresh
            // token, so that call never went out: one slot more than requests.
            let unused = acquired
                .iter()
                .rposition(|op| *op == Operation::Fetch)
                .unwrap();
            acquired.remove(unused);
        }
        expected.sort();
        acquired.sort();
        assert_eq!(acquired, expected, "{name}");
    }
}

#[tokio::test]
async fn amazons_rate_reports_reach_the_pacer() {
    let pacer = Arc::new(Recording::default());
    run_paced(&scenario("poll-pages"), pacer.clone()).await;
    let observed = pacer.observed.lock().unwrap().clone();
    let polls: Vec<&RateHint> = observed
        .iter()
        .filter(|(op, _)| *op == Operation::Poll)
        .map(|(_, h)| h)
        .collect();
    assert_eq!(polls.len(), 3);
    assert_eq!(polls[0].restore_per_second, 0.0056);
    assert_eq!(polls[0].capacity, 20);
    assert!(
        polls[1].remaining < polls[0].remaining,
        "each page spends the bucket"
    );
    assert_eq!(polls[2].restore_per_second, 0.0167, "the header wins");
    let throttled = Arc::new(Recording::default());
    run_paced(&scenario("poll-throttled"), throttled.clone()).await;
    let first = throttled.observed.lock().unwrap()[0];
    assert_eq!(
        (first.0, first.1.remaining),
        (Operation::Poll, 0),
        "a 429 empties it"
    );
}

#[tokio::test]
async fn a_server_that_echoes_requests_does_not_put_credentials_in_errors() {
    let echo = LoopbackServer::start(Arc::new(|req: HttpRequest| {
        let mut said = format!("{:?} {}", req.headers, String::from_utf8_lossy(&req.body));
        if req.path == TOKEN_PATH {
            said = format!("{{\"error\":\"server_error\",\"error_description\":\"{said}\"}}");
        }
        HttpResponse::new(500, said)
    }))
    .await
    .unwrap();
    let clock = TestClock::new(Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap());
    for fresh in [false, true] {
        let (c, store) = connector(&echo.url(), &clock, fresh);
        let errors = vec![
            c.check().await.unwrap_err(),
            c.poll_orders(
                None,
                Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap(),
                Utc::now(),
            )
            .await
            .unwrap_err(),
            c.push_inventory_batch(&[InventoryPush {
                sku: "MUG-RED".into(),
                quantity: 1,
                last_confirmed: None,
                listing_ref: Some("DRINKING_CUP".into()),
                idempotency_key: "k".into(),
            }])
            .await
            .remove(0)
            .unwrap_err(),
        ];
        for e in errors {
            assert_eq!(e.class(), "transient", "{e}");
            let shown = format!("{e} {e:?}");
            for secret in [ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(shown.contains("***"), "{shown}");
        }
        assert!(!format!("{c:?}").contains(CLIENT_SECRET));
        drop(store.load());
    }
}
