//! The poll cursor as `poll::catch_up` moves it: a backfill asked for with
//! `--since` must never carry the account's stored position past orders it
//! did not read.

use crate::common;

use std::collections::BTreeMap;

use common::*;
use switchyard::channels::poll::{CatchUp, catch_up};
use switchyard::ingest::{Ingest, LiveRules};
use switchyard::store::{Store, StoreOptions};
use switchyard_contract::Cursor;
use switchyard_contract::testkit::{Exchange, ReplayServer};

fn get(cursor: &str, body: Vec<u8>) -> Exchange {
    Exchange {
        method: "GET".into(),
        path: "/orders".into(),
        query: BTreeMap::from([("cursor".to_string(), cursor.to_string())]),
        body_contains: vec![],
        status: 200,
        headers: BTreeMap::from([("content-type".to_string(), "application/json".to_string())]),
        response: body,
    }
}

/// The account polled up to `c-old` (say 09:00), then stopped polling (a
/// revoked token, a long outage). `sync --since 12:00` re-reads from noon.
/// Orders changed between 09:00 and 12:00 were read by neither: the next
/// poll must start from `c-old`, not from where the backfill ended.
#[tokio::test]
async fn a_backfill_from_a_later_time_does_not_move_the_stored_cursor_past_unread_orders() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let acct_since = at(0, 0);
    let early = order(1, at(8, 0), "10.00");
    let server = ReplayServer::from_exchanges(
        vec![get(
            &acct_since.to_rfc3339(),
            page(std::slice::from_ref(&early), "c-old", false),
        )],
        true,
    )
    .await;
    let connector = connected(PageConnector::new(&server.url()), account(&server.url()));
    catch_up(
        &connector,
        &ingest,
        CatchUp::since(Some(acct_since)),
        |_| {},
    )
    .await
    .unwrap();
    server.finish().await;
    assert_eq!(store.cursor(ACCOUNT).unwrap(), Some(Cursor("c-old".into())));

    // The backfill from noon reads only what changed since noon.
    let noon = at(12, 0);
    let late = order(3, at(12, 30), "30.00");
    let server = ReplayServer::from_exchanges(
        vec![get(
            &noon.to_rfc3339(),
            page(std::slice::from_ref(&late), "c-noon", false),
        )],
        true,
    )
    .await;
    let connector = connected(PageConnector::new(&server.url()), account(&server.url()));
    let stats = catch_up(&connector, &ingest, CatchUp::since(Some(noon)), |_| {})
        .await
        .unwrap();
    server.finish().await;
    assert_eq!(stats.created, 1);

    // The next regular poll must still cover 09:00–12:00 (order 2, changed at
    // 10:00, was read by nobody so far).
    let missed = order(2, at(10, 0), "20.00");
    let server = ReplayServer::from_exchanges(
        vec![get(
            "c-old",
            page(&[missed.clone(), late.clone()], "c-new", false),
        )],
        true,
    )
    .await;
    let connector = connected(PageConnector::new(&server.url()), account(&server.url()));
    catch_up(&connector, &ingest, CatchUp::since(None), |_| {})
        .await
        .unwrap();
    server.finish().await;
    assert!(
        store.get_order(&missed.id).unwrap().is_some(),
        "the order changed between the old cursor and --since was never read"
    );
    assert_eq!(store.cursor(ACCOUNT).unwrap(), Some(Cursor("c-new".into())));
}
