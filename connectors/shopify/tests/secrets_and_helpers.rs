//! The access token never reaches an error, a log line or `Debug` output,
//! even from a server that echoes it back; and the public helpers the daemon
//! uses beside the `Connector` trait.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use switchyard_contract::testkit::{HttpResponse, LoopbackServer};
use switchyard_contract::{Connector, InventoryPush, Secret};
use switchyard_shopify::{
    ShopifyConfig, ShopifyConnector, normalize_graphql_order, sku_inventory_items,
};

use common::*;

#[tokio::test]
async fn a_server_that_echoes_the_token_does_not_put_it_in_errors() {
    let echo = LoopbackServer::start(Arc::new(
        |req: switchyard_contract::testkit::HttpRequest| {
            let token = req
                .header("x-shopify-access-token")
                .unwrap_or_default()
                .to_owned();
            HttpResponse::new(500, format!("upstream failed for token {token}"))
        },
    ))
    .await
    .unwrap();
    let c = connector(&echo.url(), &ConfigOverrides::default());
    let errors = vec![
        c.check().await.unwrap_err(),
        c.poll_orders(
            None,
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            Utc::now(),
        )
        .await
        .unwrap_err(),
        c.push_inventory_batch(&[InventoryPush {
            sku: "MUG-RED".into(),
            quantity: 1,
            last_confirmed: None,
            listing_ref: None,
            idempotency_key: "k".into(),
        }])
        .await
        .remove(0)
        .unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.class(), "transient");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    assert!(!format!("{c:?}").contains(TOKEN));
}

#[tokio::test]
async fn an_unreachable_shop_is_transient_and_names_no_secret() {
    let mut config = ShopifyConfig::new(ACCOUNT, "http://127.0.0.1:9", Secret::new(TOKEN));
    config.webhook_secrets = vec![Secret::new(WEBHOOK_SECRET)];
    let c = ShopifyConnector::new(
        config,
        reqwest::Client::new(),
        switchyard_contract::Unpaced::shared(),
    )
    .unwrap();
    let e = c.check().await.unwrap_err();
    assert_eq!(e.class(), "transient");
    assert!(!e.to_string().contains(TOKEN));
}

#[test]
fn a_bad_location_id_is_refused_at_construction() {
    let mut config =
        ShopifyConfig::new(ACCOUNT, "https://example.myshopify.com", Secret::new(TOKEN));
    config.location_id = Some("gid://shopify/Product/1".into());
    let e = ShopifyConnector::new(
        config,
        reqwest::Client::new(),
        switchyard_contract::Unpaced::shared(),
    )
    .unwrap_err();
    assert_eq!(e.class(), "config");
    assert!(e.to_string().contains("location_id"), "{e}");
}

#[test]
fn sku_inventory_items_come_from_polled_orders_only() {
    let s = scenario("poll-multi-page");
    let page: serde_json::Value = serde_json::from_slice(&s.exchanges[0].response).unwrap();
    let node = &page["data"]["orders"]["nodes"][0];
    let order = normalize_graphql_order(ACCOUNT, node).unwrap();
    assert_eq!(
        sku_inventory_items(&order),
        vec![(
            "MUG-RED".to_string(),
            "gid://shopify/InventoryItem/44001".to_string()
        )]
    );

    let hooks = scenario("webhooks-orders");
    let body: serde_json::Value = serde_json::from_slice(&hooks.webhooks[0].body).unwrap();
    let order = switchyard_shopify::normalize_rest_order(ACCOUNT, &body).unwrap();
    assert!(
        sku_inventory_items(&order).is_empty(),
        "REST bodies carry no inventory item ids"
    );
}
