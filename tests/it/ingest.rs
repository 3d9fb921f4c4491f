//! The one ingest path, driven the way the daemon drives it: polled pages
//! through `poll::catch_up` from a replayed channel, and webhook deliveries
//! through the real HTTP routes. Asserts what ends up in the store.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::Utc;
use common::*;
use switchyard::channels::poll::{CatchUp, HealthBoard, catch_up};
use switchyard::http::{HttpState, WEBHOOK_BODY_LIMIT};
use switchyard::ingest::{Ingest, LiveRules, Source};
use switchyard::rules::{RuleSet, parse_rules};
use switchyard::store::{OrderWrite, Store, StoreOptions, WriteBatch};
use switchyard_contract::testkit::{Exchange, ReplayServer};
use switchyard_contract::{Cursor, OrderStatus};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    (dir, store)
}

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

fn rules(text: &str) -> RuleSet {
    parse_rules(Path::new("rules.toml"), text, &["east-wh".to_string()])
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .0
}

#[tokio::test]
async fn a_backfill_stores_every_page_and_the_cursor_moves_with_them() {
    let (_dir, store) = store();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let since = at(0, 0);
    let o1 = order(1, at(9, 0), "10.00");
    let o2 = order(2, at(9, 5), "20.00");
    let o3 = order(3, at(9, 10), "30.00");
    let server = ReplayServer::from_exchanges(
        vec![
            get(
                &since.to_rfc3339(),
                page(&[o1.clone(), o2.clone()], "c1", true),
            ),
            get("c1", page(std::slice::from_ref(&o3), "c2", false)),
        ],
        true,
    )
    .await;
    let connector = connected(PageConnector::new(&server.url()), account(&server.url()));
    let mut progress = Vec::new();
    let stats = catch_up(&connector, &ingest, CatchUp::since(Some(since)), |s| {
        progress.push(s.orders)
    })
    .await
    .unwrap();
    server.finish().await;
    assert_eq!((stats.pages, stats.orders, stats.created), (2, 3, 3));
    assert_eq!(progress, vec![2, 3]);
    assert_eq!(store.cursor(ACCOUNT).unwrap(), Some(Cursor("c2".into())));
    let stored = store.get_order(&o2.id).unwrap().unwrap();
    assert_eq!(stored.order.totals.total.to_string(), "20.00");
    assert_eq!(stored.channel_tags, vec!["from-channel".to_string()]);

    // The next poll starts from the stored cursor; a repeat changes nothing.
    let server = ReplayServer::from_exchanges(
        vec![get("c2", page(std::slice::from_ref(&o3), "c3", false))],
        true,
    )
    .await;
    let connector = connected(PageConnector::new(&server.url()), account(&server.url()));
    let stats = catch_up(&connector, &ingest, CatchUp::since(None), |_| {})
        .await
        .unwrap();
    server.finish().await;
    assert_eq!((stats.created, stats.unchanged), (0, 1));
    assert_eq!(store.history(&o3.id).unwrap().len(), 1);
    assert_eq!(store.cursor(ACCOUNT).unwrap(), Some(Cursor("c3".into())));
}

#[tokio::test]
async fn a_failed_page_leaves_the_cursor_where_it_was() {
    let (_dir, store) = store();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let since = at(0, 0);
    let mut failing = get("c1", b"{\"error\":\"boom\"}".to_vec());
    failing.status = 503;
    let server = ReplayServer::from_exchanges(
        vec![
            get(
                &since.to_rfc3339(),
                page(&[order(1, at(9, 0), "1.00")], "c1", true),
            ),
            failing,
        ],
        true,
    )
    .await;
    let connector = connected(PageConnector::new(&server.url()), account(&server.url()));
    let err = catch_up(&connector, &ingest, CatchUp::since(Some(since)), |_| {})
        .await
        .unwrap_err();
    server.finish().await;
    assert!(err.to_string().contains("503"), "{err}");
    // The first page and its cursor are in; the failed page moved nothing.
    assert_eq!(store.cursor(ACCOUNT).unwrap(), Some(Cursor("c1".into())));
    assert!(store.get_order(&format!("{ACCOUNT}:1")).unwrap().is_some());
}

#[tokio::test]
async fn rules_run_on_ingest_and_hand_set_tags_and_holds_survive_newer_versions() {
    let (_dir, store) = store();
    let ingest = Ingest::new(
        store.clone(),
        LiveRules::new(rules(
            r#"
[[rule]]
name = "big"
when = { total = { gte = "100.00" } }
then = { tag = ["big"], route = "east-wh" }
"#,
        )),
    );
    let v1 = order(7, at(9, 0), "150.00");
    let r = ingest
        .receive(
            ACCOUNT,
            vec![normalized(v1.clone())],
            Source::Fetch,
            Utc::now(),
        )
        .unwrap();
    assert_eq!(r.created, 1);
    let stored = store.get_order(&v1.id).unwrap().unwrap();
    assert_eq!(stored.order.route.as_deref(), Some("east-wh"));
    assert_eq!(stored.rule_tags, vec!["big".to_string()]);
    assert!(stored.order.tags.contains(&"big".to_string()));
    assert!(stored.order.tags.contains(&"from-channel".to_string()));

    // A person tags and holds it.
    let mut edited = stored.clone();
    edited.manual_tags = vec!["vip".into()];
    edited.manual_hold = Some("call the buyer".into());
    edited.order.hold = edited.manual_hold.clone();
    edited.order.tags.push("vip".into());
    store
        .apply(WriteBatch {
            orders: vec![OrderWrite::Local {
                order: edited,
                expected_revision: stored.revision,
                kind: "hold".into(),
                detail: "by hand".into(),
                outbox: vec![],
            }],
            ..WriteBatch::new(Utc::now())
        })
        .unwrap();

    // A newer channel version: the channel's change lands, the person's stay.
    let mut v2 = v1.clone();
    v2.updated_at = at(10, 0);
    v2.status = OrderStatus::Shipped;
    v2.tags = vec![];
    let r = ingest
        .receive(ACCOUNT, vec![normalized(v2)], Source::Fetch, Utc::now())
        .unwrap();
    assert_eq!(r.updated, 1);
    let after = store.get_order(&v1.id).unwrap().unwrap();
    assert_eq!(after.order.status, OrderStatus::Shipped);
    assert_eq!(after.order.hold.as_deref(), Some("call the buyer"));
    assert_eq!(after.manual_tags, vec!["vip".to_string()]);
    assert!(after.order.tags.contains(&"vip".to_string()));
    assert!(
        !after.order.tags.contains(&"from-channel".to_string()),
        "the channel dropped its tag"
    );
    let kinds: Vec<String> = store
        .history(&v1.id)
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert_eq!(kinds, vec!["created", "hold", "updated"]);
}

#[tokio::test]
async fn orders_of_another_account_are_refused() {
    let (_dir, store) = store();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let err = ingest
        .receive(
            "other",
            vec![normalized(order(1, at(9, 0), "1.00"))],
            Source::Fetch,
            Utc::now(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("belongs to account shop-test"),
        "{err}"
    );
    assert!(store.get_order(&format!("{ACCOUNT}:1")).unwrap().is_none());
}

/// The daemon's webhook route on a loopback port, with the test connector.
struct Hooks {
    url: String,
    store: Store,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Hooks {
    async fn start() -> Hooks {
        let (dir, store) = store();
        let state = Arc::new(HttpState {
            ingest: Ingest::new(store.clone(), LiveRules::default()),
            webhook_accounts: BTreeMap::from([(
                ACCOUNT.to_string(),
                Arc::new(connected(
                    PageConnector::new("http://unused"),
                    account("http://unused"),
                )),
            )]),
            health: HealthBoard::default(),
            tokens: Default::default(),
            pacers: Default::default(),
            skipped: Default::default(),
            connectors: Default::default(),
            accounts: vec![ACCOUNT.into()],
            ready: AtomicBool::new(true),
            admin: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(switchyard::http::serve(listener, state, async {
            let _ = rx.await;
        }));
        Hooks {
            url,
            store,
            client: reqwest::Client::new(),
            _dir: dir,
            stop: Some(tx),
        }
    }

    async fn post(&self, account: &str, signature: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let mut req = self
            .client
            .post(format!("{}/webhooks/{account}", self.url))
            .body(body);
        if let Some(sig) = signature {
            req = req.header("x-test-signature", sig);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn a_webhook_with_a_missing_or_wrong_signature_is_401_and_stores_nothing() {
    let hooks = Hooks::start().await;
    let o = order(1, at(9, 0), "5.00");
    let body = webhook_body("e1", "orders/updated", &o);
    assert_eq!(hooks.post(ACCOUNT, None, body.clone()).await.0, 401);
    assert_eq!(hooks.post(ACCOUNT, Some("forged"), body).await.0, 401);
    assert!(hooks.store.get_order(&o.id).unwrap().is_none());
}

#[tokio::test]
async fn a_duplicate_webhook_stores_one_order_with_one_history_entry() {
    let hooks = Hooks::start().await;
    let o = order(1, at(9, 0), "5.00");
    let body = webhook_body("evt-1", "orders/updated", &o);
    let (status, text) = hooks
        .post(ACCOUNT, Some(GOOD_SIGNATURE), body.clone())
        .await;
    assert_eq!(
        (status, text.trim()),
        (
            200,
            "stored: 1 new, 0 updated, 0 unchanged, 0 older than stored"
        )
    );
    let (status, text) = hooks.post(ACCOUNT, Some(GOOD_SIGNATURE), body).await;
    assert_eq!((status, text.trim()), (200, "duplicate: already stored"));
    assert_eq!(
        hooks.store.list_orders(&Default::default()).unwrap().len(),
        1
    );
    assert_eq!(hooks.store.history(&o.id).unwrap().len(), 1);
}

#[tokio::test]
async fn an_older_webhook_after_a_newer_one_changes_nothing() {
    let hooks = Hooks::start().await;
    let mut newer = order(1, at(10, 0), "5.00");
    newer.status = OrderStatus::Shipped;
    let older = order(1, at(9, 0), "5.00");
    let ok = hooks
        .post(
            ACCOUNT,
            Some(GOOD_SIGNATURE),
            webhook_body("e2", "orders/updated", &newer),
        )
        .await;
    assert_eq!(ok.0, 200);
    let late = hooks
        .post(
            ACCOUNT,
            Some(GOOD_SIGNATURE),
            webhook_body("e1", "orders/updated", &older),
        )
        .await;
    assert_eq!(late.0, 200);
    assert!(late.1.contains("1 older than stored"), "{}", late.1);
    let stored = hooks.store.get_order(&newer.id).unwrap().unwrap();
    assert_eq!(stored.order.status, OrderStatus::Shipped);
    assert_eq!(stored.order.updated_at, at(10, 0));
    let kinds: Vec<String> = hooks
        .store
        .history(&newer.id)
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert_eq!(kinds, vec!["created", "stale_ignored"]);
}

#[tokio::test]
async fn oversized_garbage_unknown_and_ignored_webhooks_get_clear_answers() {
    let hooks = Hooks::start().await;
    let (status, _) = hooks
        .post(
            ACCOUNT,
            Some(GOOD_SIGNATURE),
            vec![b' '; WEBHOOK_BODY_LIMIT + 1],
        )
        .await;
    assert_eq!(status, 413);
    let (status, text) = hooks
        .post(ACCOUNT, Some(GOOD_SIGNATURE), b"not json".to_vec())
        .await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = hooks
        .post(
            "nobody",
            Some(GOOD_SIGNATURE),
            webhook_body("e", "orders/updated", &order(1, at(9, 0), "1.00")),
        )
        .await;
    assert_eq!(status, 404);
    assert!(text.contains("nobody"), "{text}");
    let (status, text) = hooks
        .post(
            ACCOUNT,
            Some(GOOD_SIGNATURE),
            webhook_body("e9", "app/uninstalled", &order(1, at(9, 0), "1.00")),
        )
        .await;
    assert_eq!(status, 200);
    assert!(text.starts_with("ignored"), "{text}");
    assert!(
        hooks
            .store
            .list_orders(&Default::default())
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let hooks = Hooks::start().await;
    let r = hooks
        .client
        .get(format!("{}/healthz", hooks.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = hooks
        .client
        .get(format!("{}/readyz", hooks.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ready"], true);
    assert!(v["accounts"].get(ACCOUNT).is_some());
}

#[tokio::test]
async fn a_shipment_recorded_here_survives_a_channel_version_that_predates_its_push() {
    use switchyard::effects::Outbound;
    use switchyard::effects::tracking::{ShipmentRequest, record};
    let (_dir, store) = store();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let v1 = order(8, at(9, 0), "10.00");
    ingest
        .receive(
            ACCOUNT,
            vec![normalized(v1.clone())],
            Source::Fetch,
            Utc::now(),
        )
        .unwrap();
    let req = ShipmentRequest {
        order_id: v1.id.clone(),
        carrier: "ups".into(),
        tracking_number: "1Z-LOCAL".into(),
        tracking_url: None,
        shipped_at: None,
        lines: None,
        destination: None,
    };
    record(&store, &Outbound::default(), &req, Utc::now()).unwrap();

    // The channel changes something else before our tracking push reached it.
    let mut v2 = v1.clone();
    v2.updated_at = at(10, 0);
    v2.shipping_method = Some("Express".into());
    ingest
        .receive(
            ACCOUNT,
            vec![normalized(v2.clone())],
            Source::Fetch,
            Utc::now(),
        )
        .unwrap();
    let stored = store.get_order(&v1.id).unwrap().unwrap();
    assert_eq!(stored.order.shipping_method.as_deref(), Some("Express"));
    assert_eq!(
        stored.order.status,
        OrderStatus::Shipped,
        "our shipment still counts"
    );
    assert_eq!(stored.order.shipments.len(), 1);
    assert_eq!(stored.order.lines[0].shipped_quantity, 1);

    // Once the channel shows the fulfilment, its version is the one kept.
    let mut v3 = v2.clone();
    v3.updated_at = at(11, 0);
    v3.status = OrderStatus::Shipped;
    v3.lines[0].shipped_quantity = 1;
    v3.shipments = vec![switchyard_contract::Shipment {
        carrier: "UPS".into(),
        tracking_number: "1Z-LOCAL".into(),
        tracking_url: Some("https://example.com/track/1Z-LOCAL".into()),
        shipped_at: Some(at(10, 30)),
        lines: vec![switchyard_contract::ShipmentLine {
            line_id: v1.lines[0].line_id.clone(),
            sku: v1.lines[0].sku.clone(),
            quantity: 1,
        }],
    }];
    ingest
        .receive(ACCOUNT, vec![normalized(v3)], Source::Fetch, Utc::now())
        .unwrap();
    let stored = store.get_order(&v1.id).unwrap().unwrap();
    assert_eq!(stored.order.shipments.len(), 1);
    assert_eq!(stored.order.shipments[0].carrier, "UPS");
    assert_eq!(stored.order.lines[0].shipped_quantity, 1);
    assert!(stored.local_shipments.is_empty());
}

#[tokio::test]
async fn an_order_twice_in_one_page_is_stored_once_as_its_newest_version() {
    let (_dir, store) = store();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let older = order(9, at(9, 0), "10.00");
    let mut newer = older.clone();
    newer.updated_at = at(9, 30);
    newer.status = OrderStatus::Cancelled;
    let report = ingest
        .receive(
            ACCOUNT,
            vec![
                normalized(newer.clone()),
                normalized(older.clone()),
                normalized(order(10, at(9, 0), "1.00")),
            ],
            Source::Poll {
                cursor: Cursor("c".into()),
            },
            Utc::now(),
        )
        .unwrap();
    assert_eq!(report.created, 2);
    let stored = store.get_order(&older.id).unwrap().unwrap();
    assert_eq!(stored.order.status, OrderStatus::Cancelled);
    assert_eq!(store.history(&older.id).unwrap().len(), 1);
}

/// Writers racing on a new order: all but one find it written under them
/// and try again. Each try still carries its payload, so the stored payload
/// is the newest version's, whoever wrote last. Several rounds, so that the
/// newest version's writer is among those that try again.
#[test]
fn racing_versions_of_one_order_keep_the_newest_payload() {
    let (_dir, store) = store();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    const WRITERS: u32 = 8;
    const ROUNDS: u32 = 20;
    let start = Arc::new(std::sync::Barrier::new(WRITERS as usize));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (ingest, start) = (ingest.clone(), start.clone());
            std::thread::spawn(move || {
                let mut created = 0;
                for round in 1..=ROUNDS {
                    let mut n = normalized(order(round, at(9, i), "10.00"));
                    n.raw = serde_json::json!({ "version": i, "pad": "x".repeat(2000) });
                    start.wait();
                    created += ingest
                        .receive(ACCOUNT, vec![n], Source::Fetch, Utc::now())
                        .unwrap()
                        .created;
                }
                created
            })
        })
        .collect();
    let created: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(created, ROUNDS as usize, "one writer created each order");
    for round in 1..=ROUNDS {
        let id = order(round, at(9, 0), "10.00").id;
        let raw = store.raw_payload(&id).unwrap().expect("a payload");
        assert_eq!(
            raw["version"],
            serde_json::json!(WRITERS - 1),
            "{id}: {raw}"
        );
        let stored = store.get_order(&id).unwrap().unwrap();
        assert_eq!(stored.order.updated_at, at(9, WRITERS - 1));
    }
}
