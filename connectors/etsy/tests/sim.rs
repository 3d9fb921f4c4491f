//! The connector against the simulated Etsy shop that the demo uses: the
//! shop learns receipts and listings from every fixture, then the connector
//! refreshes its token, syncs, pushes stock and tracking, and the shop's
//! state shows the pushes landed the way real Etsy would keep them.

// Test support outside `#[test]` functions: a panic is the failure report,
// and test figures are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use switchyard_contract::testkit::{HttpResponse, LoopbackServer, Scenario};
use switchyard_contract::{
    Connector, Cursor, InventoryPush, InventoryResult, Shipment, TrackingPush, TrackingResult,
};
use switchyard_etsy::sim::Shop;

use common::*;

async fn shop_server() -> (Arc<Mutex<Shop>>, LoopbackServer) {
    let mut shop = Shop::default();
    for s in Scenario::load_all(&fixtures_dir()).unwrap() {
        for e in &s.exchanges {
            if e.status == 200 {
                shop.learn_answer(&e.method, &e.path, &e.response);
            }
        }
    }
    let shop = Arc::new(Mutex::new(shop));
    let s = shop.clone();
    let server = LoopbackServer::start(Arc::new(move |req| {
        s.lock()
            .unwrap()
            .answer(&req)
            .unwrap_or_else(|| HttpResponse::new(404, "not simulated"))
    }))
    .await
    .unwrap();
    (shop, server)
}

#[tokio::test]
async fn the_connector_syncs_and_pushes_against_the_simulated_shop() {
    let (shop, server) = shop_server().await;
    let (c, tokens, _) = refreshing_connector(&server.url());

    // Sync: the first call refreshes (the shop rotates), then pages.
    let since = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
    let mut cursor: Option<Cursor> = None;
    let mut ids = std::collections::BTreeSet::new();
    loop {
        let page = c.poll_orders(cursor.as_ref(), since, now).await.unwrap();
        ids.extend(page.orders.iter().map(|o| o.order.channel_order_id.clone()));
        cursor = Some(page.next);
        if !page.more {
            break;
        }
    }
    assert!(ids.contains("2001") && ids.contains("2201"), "{ids:?}");
    let saved = tokens.saved().expect("the rotated refresh token was saved");
    assert_eq!(saved.refresh_token.unwrap().expose(), "sim-refresh-1");

    // Stock: one SKU of a four-product listing; the others stay.
    let push = InventoryPush {
        sku: "TEE-M-BLUE".into(),
        quantity: 7,
        last_confirmed: None,
        listing_ref: Some("1001".into()),
        idempotency_key: "k1".into(),
    };
    let result = c.push_inventory_batch(&[push]).await.remove(0).unwrap();
    assert_eq!(
        result,
        InventoryResult::Set {
            quantity: 7,
            listing_ref: Some("1001".into())
        }
    );
    {
        let shop = shop.lock().unwrap();
        assert_eq!(shop.available("TEE-M-BLUE"), Some(7));
        assert_eq!(shop.available("TEE-S-RED"), Some(10));
        assert_eq!(shop.available("TEE-M-RED"), Some(6));
        assert_eq!(shop.available("TEE-S-BLUE"), Some(3));
    }
    // A SKU the orders never named is found in the catalog.
    let mug = InventoryPush {
        sku: "MUG-BLUE".into(),
        quantity: 9,
        last_confirmed: None,
        listing_ref: None,
        idempotency_key: "k2".into(),
    };
    assert_eq!(
        c.inventory_batch_key(&mug).as_deref(),
        Some(switchyard_etsy::CATALOG_BATCH_KEY)
    );
    c.push_inventory_batch(&[mug]).await.remove(0).unwrap();
    assert_eq!(shop.lock().unwrap().available("MUG-BLUE"), Some(9));

    // Tracking: created once; the retry finds it.
    let tracking = TrackingPush {
        order: order_stub("2001"),
        shipment: Shipment {
            carrier: "ups".into(),
            tracking_number: "1ZSIM0001".into(),
            tracking_url: None,
            shipped_at: None,
            lines: vec![],
        },
        idempotency_key: "t1".into(),
    };
    assert!(matches!(
        c.push_tracking(&tracking).await.unwrap(),
        TrackingResult::Created {
            channel_ref: Some(_)
        }
    ));
    assert!(matches!(
        c.push_tracking(&tracking).await.unwrap(),
        TrackingResult::AlreadyThere { .. }
    ));
    assert_eq!(shop.lock().unwrap().tracking_codes(2001), ["1ZSIM0001"]);

    // The next poll shows the receipt shipped.
    let page = c.poll_orders(cursor.as_ref(), since, now).await.unwrap();
    let shipped = page
        .orders
        .iter()
        .find(|o| o.order.channel_order_id == "2001")
        .expect("the shipped receipt is read again");
    assert_eq!(shipped.order.status.as_str(), "shipped");
    assert_eq!(shipped.order.shipments[0].tracking_number, "1ZSIM0001");
}

/// Rebased, the recorded receipts are recent whenever the demo runs: a
/// first sync of the last day finds every one of them.
#[tokio::test]
async fn a_rebased_shop_has_recent_receipts() {
    let (shop, server) = shop_server().await;
    let now = Utc::now();
    shop.lock().unwrap().rebase(now.timestamp());
    let (c, _, _) = refreshing_connector(&server.url());
    let page = c
        .poll_orders(None, now - chrono::Duration::days(1), now)
        .await
        .unwrap();
    let newest = page
        .orders
        .iter()
        .map(|o| o.order.updated_at)
        .max()
        .unwrap();
    assert!(newest <= now && newest > now - chrono::Duration::minutes(1));
    assert!(page.orders.len() > 20, "{}", page.orders.len());
}
