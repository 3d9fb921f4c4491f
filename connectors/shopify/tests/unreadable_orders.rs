//! One order the connector cannot read must not stop the account's sync: it
//! is left out of the page and named, and the rest of the page (and every
//! later page) still comes through.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use common::{ConfigOverrides, GRAPHQL_PATH, connector, fixtures_dir};
use switchyard_contract::Connector;
use switchyard_contract::testkit::{Exchange, ReplayServer};

#[tokio::test]
async fn an_unreadable_order_is_left_out_and_named_and_the_page_still_syncs() {
    let page = fixtures_dir().join("demo/responses/01-page-1.json");
    let mut body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(page).unwrap()).unwrap();
    let nodes = body["data"]["orders"]["nodes"].as_array_mut().unwrap();
    let total = nodes.len();
    assert!(total >= 2);
    // A shape no Shopify version sends: the line items are not a connection.
    nodes[1]["lineItems"] = serde_json::json!(5);
    let bad_id = nodes[1]["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let server = ReplayServer::from_exchanges(
        vec![Exchange {
            method: "POST".into(),
            path: GRAPHQL_PATH.into(),
            query: BTreeMap::new(),
            body_contains: vec!["SwitchyardOrders".into()],
            status: 200,
            headers: BTreeMap::from([("content-type".to_string(), "application/json".to_string())]),
            response: serde_json::to_vec(&body).unwrap(),
        }],
        true,
    )
    .await;
    let c = connector(&server.url(), &ConfigOverrides::default());
    let since = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let page = c.poll_orders(None, since, Utc::now()).await.unwrap();
    server.finish().await;
    assert_eq!(page.orders.len(), total - 1);
    assert!(
        page.orders
            .iter()
            .all(|o| o.order.channel_order_id != bad_id)
    );
    assert_eq!(page.rejected.len(), 1);
    assert_eq!(
        page.rejected[0].channel_order_id.as_deref(),
        Some(bad_id.as_str())
    );
    assert!(
        page.rejected[0].error.starts_with("decode"),
        "{}",
        page.rejected[0].error
    );
}
