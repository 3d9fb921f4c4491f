//! A backfill of many `searchOrders` pages, paced by a token bucket seeded
//! from what the connector publishes (the way the daemon seeds its pacer),
//! on tokio's paused clock: it finishes, reads every page, and never asks
//! faster than Amazon's published rate and burst allow.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use switchyard_contract::testkit::{HttpRequest, HttpResponse, LoopbackServer};
use switchyard_contract::{BoxFuture, Connector, Operation, Pacer, RateHint, RateLimit};
use tokio::time::Instant;

use common::*;

const PAGES: usize = 60;

/// One bucket for polls, refilled at `limit.per_second`; everything else
/// passes. Records when each poll was let go.
struct Bucket {
    limit: RateLimit,
    state: Mutex<(f64, Instant)>,
    granted: Mutex<Vec<Instant>>,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        Bucket {
            limit,
            state: Mutex::new((f64::from(limit.burst), Instant::now())),
            granted: Mutex::new(Vec::new()),
        }
    }
}

impl Pacer for Bucket {
    fn acquire(&self, operation: Operation, cost: u32) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if operation != Operation::Poll {
                return;
            }
            loop {
                let wait = {
                    let mut s = self.state.lock().unwrap();
                    let now = Instant::now();
                    let refilled = (s.0 + (now - s.1).as_secs_f64() * self.limit.per_second)
                        .min(f64::from(self.limit.burst));
                    *s = (refilled, now);
                    if refilled >= f64::from(cost) {
                        s.0 -= f64::from(cost);
                        self.granted.lock().unwrap().push(now);
                        return;
                    }
                    (f64::from(cost) - refilled) / self.limit.per_second
                };
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            }
        })
    }

    fn observe(&self, _operation: Operation, _hint: RateHint) {}
}

fn order(i: usize) -> serde_json::Value {
    json!({
        "orderId": format!("111-{i:07}-0000001"),
        "createdTime": "2026-11-27T01:00:00Z",
        "lastUpdatedTime": "2026-11-27T02:00:00Z",
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": MARKETPLACE_ID},
        "proceeds": {"grandTotal": {"amount": "10.00", "currencyCode": "USD"}},
        "fulfillment": {"fulfillmentStatus": "SHIPPED", "fulfilledBy": "AMAZON"},
        "orderItems": []
    })
}

#[tokio::test(start_paused = true)]
async fn a_long_backfill_finishes_within_the_published_search_orders_rate() {
    let served = Arc::new(Mutex::new(0usize));
    let count = served.clone();
    let refreshes = Arc::new(Mutex::new(0usize));
    let refreshed = refreshes.clone();
    let server = LoopbackServer::start(Arc::new(move |req: HttpRequest| {
        if req.path == TOKEN_PATH {
            // The backfill outlives an access token: it is refreshed on the way.
            *refreshed.lock().unwrap() += 1;
            return HttpResponse::json(
                200,
                &json!({"access_token": REFRESHED_TOKEN, "token_type": "bearer", "expires_in": 3600}),
            );
        }
        let page: usize = match req.query_param("paginationToken") {
            None => 1,
            Some(t) => t.trim_start_matches('p').parse().unwrap(),
        };
        *count.lock().unwrap() += 1;
        let mut body = json!({"orders": [order(page)]});
        if page < PAGES {
            body["pagination"] = json!({"nextToken": format!("p{}", page + 1)});
        }
        HttpResponse::json(200, &body).with_header("x-amzn-RateLimit-Limit", "0.0056")
    }))
    .await
    .unwrap();
    let start_wall = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
    let clock = TestClock::new(start_wall);
    let probe = connector(&server.url(), &clock, false).0;
    let limit = probe.rate_limit(Operation::Poll);
    assert_eq!((limit.per_second, limit.burst), (0.0056, 20));
    let pacer = Arc::new(Bucket::new(limit));
    let (c, _) = connector_paced(&server.url(), &clock, false, pacer.clone());

    let began = Instant::now();
    let since = start_wall - chrono::Duration::hours(12);
    let mut cursor = None;
    let mut orders = 0;
    for _ in 0..PAGES * 2 {
        let now = start_wall + chrono::Duration::from_std(began.elapsed()).unwrap();
        clock.set(now);
        let page = c.poll_orders(cursor.as_ref(), since, now).await.unwrap();
        orders += page.orders.len();
        cursor = Some(page.next);
        if !page.more {
            break;
        }
    }
    assert_eq!(orders, PAGES, "every page was read");
    assert_eq!(*served.lock().unwrap(), PAGES, "each page asked for once");
    assert_eq!(*refreshes.lock().unwrap(), 2, "two hours: two refreshes");
    let position = switchyard_amazon::PollCursor::decode(cursor.as_ref().unwrap()).unwrap();
    assert_eq!(
        position.watermark,
        start_wall - chrono::Duration::minutes(5)
    );

    // Never faster than the bucket allows: any run of requests fits in the
    // burst plus what the rate refilled meanwhile.
    let granted = pacer.granted.lock().unwrap().clone();
    assert_eq!(granted.len(), PAGES);
    for i in 0..granted.len() {
        for j in i..granted.len() {
            let elapsed = (granted[j] - granted[i]).as_secs_f64();
            let allowed = f64::from(limit.burst) + elapsed * limit.per_second;
            assert!(
                (j - i + 1) as f64 <= allowed + 1e-6,
                "requests {i}..={j} came {elapsed:.0} s apart: more than Amazon allows"
            );
        }
    }
    // The burst goes at once, the rest at one request every ~179 s.
    let took = (granted[PAGES - 1] - granted[0]).as_secs_f64();
    let expected = (PAGES - 20) as f64 / 0.0056;
    assert!(
        (took - expected).abs() < 5.0,
        "took {took:.0} s, expected {expected:.0} s"
    );
}
