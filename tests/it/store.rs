//! The store test suite: the behaviour any engine behind `switchyard::store`
//! must have. Every test gets its store from `open`, so another engine can be
//! run through the same suite by changing that one function.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use switchyard::store::*;
use switchyard_contract::{Channel, Cursor, Order, OrderStatus};

fn options() -> StoreOptions {
    StoreOptions {
        cache_bytes: 8 * 1024 * 1024,
    }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, options()).expect("open store")
}

/// Opens the store again after this test closed or dropped its handle.
fn reopen(dir: &Path) -> Store {
    crate::common::reopen_with(dir, options())
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// A fixed instant plus `secs`: tests never read the clock.
fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("valid time")
}

fn order(account: &str, n: u32, placed: i64, updated: i64) -> Order {
    serde_json::from_value(json!({
        "id": Order::make_id(account, &n.to_string()),
        "account": account,
        "channel": "shopify",
        "channel_order_id": n.to_string(),
        "number": format!("#{n}"),
        "status": "ready",
        "payment": "paid",
        "placed_at": t(placed),
        "updated_at": t(updated),
        "currency": "USD",
        "totals": {"subtotal": "10.00", "shipping": "0", "tax": "0", "discount": "0", "total": "10.00", "refunded": "0"},
        "presentment": null,
        "customer": null,
        "shipping_address": null,
        "shipping_method": null,
        "lines": [{"line_id": "1", "sku": "SKU-1", "title": "Mug", "quantity": 1, "unit_price": "10.00", "total": "10.00", "shipped_quantity": 0}],
        "shipments": [],
        "tags": [],
        "route": null,
        "hold": null,
        "priority": "normal"
    }))
    .expect("valid order")
}

fn stored(order: Order) -> StoredOrder {
    StoredOrder {
        raw: json!({ "id": order.channel_order_id }),
        order,
        channel_tags: vec![],
        rule_tags: vec![],
        manual_tags: vec![],
        manual_hold: None,
        notes: vec![],
        released_hold: None,
        rule_hold: None,
        hold_rule: None,
        local_shipments: vec![],
        delivered: None,
        line_routes: vec![],
        parts: vec![],
        revision: 0,
    }
}

fn from_channel(o: &StoredOrder, expected: Option<u64>) -> OrderWrite {
    OrderWrite::FromChannel {
        order: o.clone(),
        expected_revision: expected,
        outbox: vec![],
    }
}

fn batch(now: DateTime<Utc>, orders: Vec<OrderWrite>) -> WriteBatch {
    WriteBatch {
        orders,
        ..WriteBatch::new(now)
    }
}

fn outbox_item(
    account: &str,
    key: Option<&str>,
    tag: &str,
    not_before: DateTime<Utc>,
) -> NewOutboxItem {
    NewOutboxItem {
        account: account.to_owned(),
        job: job(tag),
        coalesce_key: key.map(str::to_owned),
        not_before,
    }
}

/// The ids of the pending items (or dead letters), in queue order.
fn outbox_ids(store: &Store, dead: bool) -> Vec<String> {
    store
        .outbox_list(dead)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

/// A job whose tracking number carries `tag`, so that tests can tell items
/// apart (the store does not look inside jobs).
fn job(tag: &str) -> Job {
    Job::PushTracking {
        order_id: "shop-us:1".to_owned(),
        tracking_number: tag.to_owned(),
    }
}

fn kinds(h: &[HistoryEntry]) -> Vec<&str> {
    h.iter().map(|e| e.kind.as_str()).collect()
}

/// Writes a new order from the channel and returns it as stored.
fn create(store: &Store, o: Order) -> StoredOrder {
    let s = stored(o);
    let r = store
        .apply(batch(t(0), vec![from_channel(&s, None)]))
        .expect("create");
    assert_eq!(r.outcomes[0].1, WriteOutcome::Created);
    store
        .get_order(&s.order.id)
        .expect("read")
        .expect("present")
}

#[test]
fn same_order_twice_is_unchanged() {
    let dir = tempdir();
    let store = open(dir.path());
    let s = stored(order("shop-us", 1, 0, 0));
    let first = store
        .apply(batch(t(1), vec![from_channel(&s, None)]))
        .unwrap();
    assert_eq!(
        first.outcomes,
        vec![("shop-us:1".to_owned(), WriteOutcome::Created)]
    );
    let after_first = store.get_order("shop-us:1").unwrap().unwrap();
    assert_eq!(after_first.revision, 1);
    assert_eq!(after_first.order, s.order);

    let second = store
        .apply(batch(t(2), vec![from_channel(&s, Some(1))]))
        .unwrap();
    assert_eq!(second.outcomes[0].1, WriteOutcome::Unchanged);
    assert!(
        second.seq > first.seq,
        "every apply gets a new seq to wait on"
    );
    assert_eq!(store.get_order("shop-us:1").unwrap().unwrap(), after_first);
    let h = store.history("shop-us:1").unwrap();
    assert_eq!(kinds(&h), ["created"]);
    assert_eq!(h[0].at, t(1));
}

/// The raw payload is kept apart: orders read back carry none, a new
/// channel payload alone is a change (with a history entry saying so), and
/// a local write leaves the payload as it was.
#[test]
fn raw_payload_is_kept_apart_and_follows_channel_versions() {
    let dir = tempdir();
    let store = open(dir.path());
    let first = stored(order("shop-us", 1, 0, 10));
    store
        .apply(batch(t(1), vec![from_channel(&first, None)]))
        .unwrap();
    let read = store.get_order("shop-us:1").unwrap().unwrap();
    assert!(read.raw.is_null());
    assert_eq!(
        store.raw_payload("shop-us:1").unwrap(),
        Some(first.raw.clone())
    );

    let mut again = first.clone();
    again.raw = json!({ "id": "1", "note": "a field the channel added" });
    let r = store
        .apply(batch(t(2), vec![from_channel(&again, Some(1))]))
        .unwrap();
    assert_eq!(r.outcomes[0].1, WriteOutcome::Updated);
    assert_eq!(
        store.raw_payload("shop-us:1").unwrap(),
        Some(again.raw.clone())
    );
    let h = store.history("shop-us:1").unwrap();
    assert_eq!(h.last().unwrap().detail, "raw");
    let r = store
        .apply(batch(t(3), vec![from_channel(&again, Some(2))]))
        .unwrap();
    assert_eq!(r.outcomes[0].1, WriteOutcome::Unchanged);

    let mut local = store.get_order("shop-us:1").unwrap().unwrap();
    local.manual_tags = vec!["checked".into()];
    store
        .apply(batch(
            t(4),
            vec![OrderWrite::Local {
                expected_revision: local.revision,
                order: local,
                kind: "tag".into(),
                detail: "checked".into(),
                outbox: vec![],
            }],
        ))
        .unwrap();
    assert_eq!(store.raw_payload("shop-us:1").unwrap(), Some(again.raw));
}

#[test]
fn older_version_is_ignored_and_noted() {
    let dir = tempdir();
    let store = open(dir.path());
    let mut newer = stored(order("shop-us", 1, 0, 100));
    newer.order.status = OrderStatus::Shipped;
    store
        .apply(batch(t(1), vec![from_channel(&newer, None)]))
        .unwrap();

    let mut older = stored(order("shop-us", 1, 0, 50));
    older.order.status = OrderStatus::Ready;
    // A different payload too, so that only `updated_at` decides.
    older.raw = json!({ "marker": true });
    let r = store
        .apply(batch(
            t(2),
            vec![OrderWrite::FromChannel {
                order: older,
                expected_revision: Some(1),
                outbox: vec![outbox_item("shop-us", None, "1", t(2))],
            }],
        ))
        .unwrap();
    assert_eq!(r.outcomes[0].1, WriteOutcome::Stale);
    let kept = store.get_order("shop-us:1").unwrap().unwrap();
    assert_eq!(kept.order.status, OrderStatus::Shipped);
    assert_eq!(kept.order.updated_at, t(100));
    assert_eq!(kept.revision, 1);
    let h = store.history("shop-us:1").unwrap();
    assert_eq!(kinds(&h), ["created", "stale_ignored"]);
    assert!(
        h[1].detail
            .contains(&t(50).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );
    assert!(
        h[1].detail
            .contains(&t(100).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );
    assert!(
        store.outbox_list(false).unwrap().is_empty(),
        "a stale write queues nothing"
    );
}

#[test]
fn history_is_appended_in_order() {
    let dir = tempdir();
    let store = open(dir.path());
    let s = create(&store, order("shop-us", 7, 0, 0));

    let mut shipped = stored(order("shop-us", 7, 0, 10));
    shipped.order.status = OrderStatus::Shipped;
    let r = store
        .apply(batch(t(5), vec![from_channel(&shipped, Some(s.revision))]))
        .unwrap();
    assert_eq!(r.outcomes[0].1, WriteOutcome::Updated);

    let mut held = store.get_order("shop-us:7").unwrap().unwrap();
    assert_eq!(held.revision, 2);
    held.manual_hold = Some("check address".to_owned());
    held.order.hold = held.manual_hold.clone();
    let r = store
        .apply(batch(
            t(9),
            vec![OrderWrite::Local {
                expected_revision: held.revision,
                order: held,
                kind: "hold".to_owned(),
                detail: "check address".to_owned(),
                outbox: vec![],
            }],
        ))
        .unwrap();
    assert_eq!(r.outcomes[0].1, WriteOutcome::Updated);

    let got = store.get_order("shop-us:7").unwrap().unwrap();
    assert_eq!(got.revision, 3);
    assert_eq!(got.order.hold.as_deref(), Some("check address"));
    let h = store.history("shop-us:7").unwrap();
    assert_eq!(kinds(&h), ["created", "updated", "hold"]);
    assert_eq!(
        h.iter().map(|e| e.at).collect::<Vec<_>>(),
        [t(0), t(5), t(9)]
    );
    assert!(
        h[1].detail.contains("status: ready -> shipped"),
        "{}",
        h[1].detail
    );
    assert!(h[1].detail.contains("updated_at"), "{}", h[1].detail);
    assert_eq!(h[2].detail, "check address");
    // The JSON shape `orders show` prints.
    assert_eq!(
        serde_json::to_value(&h[2]).unwrap(),
        json!({ "at": t(9), "kind": "hold", "detail": "check address" })
    );
    // Another order's history is not mixed in, even with a shared id prefix.
    create(&store, order("shop-us", 70, 0, 0));
    assert_eq!(store.history("shop-us:7").unwrap().len(), 3);
}

#[test]
fn wrong_revision_conflicts_and_writes_nothing() {
    let dir = tempdir();
    let store = open(dir.path());
    let s = create(&store, order("shop-us", 1, 0, 0));
    let mut changed = stored(order("shop-us", 1, 0, 10));
    changed.order.status = OrderStatus::Shipped;
    let fresh = stored(order("shop-us", 2, 0, 0));

    let attempts = [
        from_channel(&changed, Some(5)),
        from_channel(&changed, None),
        from_channel(&stored(order("shop-us", 3, 0, 0)), Some(1)),
        OrderWrite::Local {
            order: changed.clone(),
            expected_revision: 0,
            kind: "hold".to_owned(),
            detail: String::new(),
            outbox: vec![],
        },
    ];
    for w in attempts {
        let id = w.order_id().to_owned();
        let mut b = batch(t(3), vec![from_channel(&fresh, None), w]);
        b.cursor = Some(("shop-us".to_owned(), Cursor("c2".to_owned())));
        b.dedupe = vec![("shop-us:evt".to_owned(), t(1000))];
        b.outbox = vec![outbox_item("shop-us", None, "1", t(3))];
        match store.apply(b) {
            Err(StoreError::Conflict { id: got }) => assert_eq!(got, id),
            other => panic!("expected a conflict on {id}, got {other:?}"),
        }
    }
    assert_eq!(store.get_order("shop-us:1").unwrap().unwrap(), s);
    assert_eq!(store.get_order("shop-us:2").unwrap(), None);
    assert_eq!(store.get_order("shop-us:3").unwrap(), None);
    assert_eq!(store.history("shop-us:1").unwrap().len(), 1);
    assert!(store.history("shop-us:2").unwrap().is_empty());
    assert_eq!(store.cursor("shop-us").unwrap(), None);
    assert!(!store.dedupe_seen("shop-us:evt", t(3)).unwrap());
    assert_eq!(store.outbox_counts().unwrap(), (0, 0));
    let msg = StoreError::Conflict {
        id: "shop-us:1".into(),
    }
    .to_string();
    assert_eq!(
        msg,
        "order shop-us:1 was changed by another writer; re-read it and retry"
    );
}

#[test]
fn failed_batch_leaves_everything_as_it_was() {
    let dir = tempdir();
    let store = open(dir.path());
    let s = stored(order("shop-us", 1, 0, 0));
    let mut b = batch(t(0), vec![from_channel(&s, None)]);
    b.cursor = Some(("shop-us".to_owned(), Cursor("c1".to_owned())));
    b.dedupe = vec![("shop-us:e1".to_owned(), t(1000))];
    b.outbox = vec![outbox_item("shop-us", Some("stock:SKU-1"), "qty 1", t(0))];
    b.stock = vec![StockChange::Set {
        sku: "SKU-1".into(),
        on_hand: 5,
    }];
    store.apply(b).unwrap();

    let before = (
        store.get_order("shop-us:1").unwrap(),
        store.history("shop-us:1").unwrap(),
        store.cursor("shop-us").unwrap(),
        store.outbox_list(false).unwrap(),
        store.stock_list().unwrap(),
    );

    let mut update = stored(order("shop-us", 1, 0, 10));
    update.order.status = OrderStatus::Shipped;
    let mut b = batch(
        t(10),
        vec![
            OrderWrite::FromChannel {
                order: update,
                expected_revision: Some(1),
                outbox: vec![outbox_item("shop-us", None, "tracking", t(10))],
            },
            from_channel(&stored(order("shop-us", 2, 0, 0)), None),
        ],
    );
    b.cursor = Some(("shop-us".to_owned(), Cursor("c2".to_owned())));
    b.dedupe = vec![("shop-us:e2".to_owned(), t(1000))];
    b.outbox = vec![outbox_item("shop-us", Some("stock:SKU-1"), "qty 2", t(10))];
    b.stock = vec![
        StockChange::Set {
            sku: "SKU-1".into(),
            on_hand: 9,
        },
        StockChange::Set {
            sku: "SKU-2".into(),
            on_hand: 1,
        },
    ];
    b.fail_before_commit = true;
    assert!(matches!(store.apply(b), Err(StoreError::Injected)));

    let after = (
        store.get_order("shop-us:1").unwrap(),
        store.history("shop-us:1").unwrap(),
        store.cursor("shop-us").unwrap(),
        store.outbox_list(false).unwrap(),
        store.stock_list().unwrap(),
    );
    assert_eq!(after, before);
    assert_eq!(store.get_order("shop-us:2").unwrap(), None);
    assert!(store.dedupe_seen("shop-us:e1", t(10)).unwrap());
    assert!(!store.dedupe_seen("shop-us:e2", t(10)).unwrap());
    assert_eq!(before.2, Some(Cursor("c1".to_owned())));
}

/// A delivery noted on its order and its outbox item completed are one
/// write: a write that fails keeps the item pending and the order as it
/// was (the item goes again, and the order never claims a delivery its
/// queue still owes); one that commits has done both, and both are there
/// after the store is reopened. An item a person dropped meanwhile does
/// not stop the note.
#[test]
fn an_item_completes_in_the_write_that_notes_it() {
    let dir = tempdir();
    let store = open(dir.path());
    let created = create(&store, order("shop-us", 1, 0, 0));
    store
        .outbox_add(vec![outbox_item("destination:wh", None, "dlv", t(0))], t(0))
        .unwrap();
    let item = store.outbox_list(false).unwrap().remove(0);
    let noted = |fail: bool| {
        let mut next = created.clone();
        next.delivered = Some(DeliveredTo {
            destination: "wh".to_owned(),
            delivery_id: "dlv_1".to_owned(),
            at: t(5),
        });
        let mut b = batch(
            t(5),
            vec![OrderWrite::Local {
                expected_revision: created.revision,
                order: next,
                kind: "delivered".to_owned(),
                detail: "delivered to wh (delivery dlv_1)".to_owned(),
                outbox: vec![],
            }],
        );
        b.complete = vec![item.id.clone()];
        b.fail_before_commit = fail;
        b
    };

    assert!(matches!(
        store.apply(noted(true)),
        Err(StoreError::Injected)
    ));
    assert_eq!(store.outbox_list(false).unwrap(), vec![item.clone()]);
    assert_eq!(store.outbox_counts().unwrap(), (1, 0));
    let order = store.get_order("shop-us:1").unwrap().unwrap();
    assert_eq!(order.delivered, None);
    assert_eq!(kinds(&store.history("shop-us:1").unwrap()), ["created"]);

    store.apply(noted(false)).unwrap();
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(store.outbox_list(false).unwrap(), vec![]);
    assert_eq!(store.outbox_counts().unwrap(), (0, 0));
    assert_eq!(
        store.outbox_due("destination:wh", t(100), 10).unwrap(),
        vec![]
    );
    let order = store.get_order("shop-us:1").unwrap().unwrap();
    assert_eq!(order.delivered.map(|d| d.delivery_id), Some("dlv_1".into()));
    assert_eq!(
        kinds(&store.history("shop-us:1").unwrap()),
        ["created", "delivered"]
    );

    // Dropped by a person while it was on its way: the note is still written.
    let mut again = batch(
        t(6),
        vec![OrderWrite::Local {
            expected_revision: created.revision + 1,
            order: store.get_order("shop-us:1").unwrap().unwrap(),
            kind: "notice".to_owned(),
            detail: "hold notice sent".to_owned(),
            outbox: vec![],
        }],
    );
    again.complete = vec![item.id.clone()];
    store.apply(again).unwrap();
    assert_eq!(
        kinds(&store.history("shop-us:1").unwrap()),
        ["created", "delivered", "notice"]
    );
}

#[test]
fn outbox_fifo_coalescing_and_dead_letters() {
    let dir = tempdir();
    let store = open(dir.path());
    let b = |items: Vec<NewOutboxItem>| WriteBatch {
        outbox: items,
        ..WriteBatch::new(t(0))
    };
    store
        .apply(b(vec![
            outbox_item("shop-us", Some("stock:A"), "qty 1", t(0)),
            outbox_item("shop-us", None, "tracking-1", t(0)),
            outbox_item("etsy-1", Some("stock:A"), "qty 1", t(0)),
        ]))
        .unwrap();
    // Same key, same account: folds into the first item, newest payload wins.
    store
        .apply(b(vec![outbox_item(
            "shop-us",
            Some("stock:A"),
            "qty 3",
            t(5),
        )]))
        .unwrap();
    store
        .outbox_add(
            vec![outbox_item("shop-us", Some("stock:A"), "qty 4", t(6))],
            t(6),
        )
        .unwrap();

    let pending = store.outbox_list(false).unwrap();
    assert_eq!(pending.len(), 3);
    let ids: Vec<&str> = pending.iter().map(|i| i.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "listed in id order");
    assert_eq!(pending[0].account, "shop-us");
    assert_eq!(pending[0].job, job("qty 4"));
    assert_eq!(pending[0].next_attempt_at, t(0), "earliest due time kept");
    assert_eq!(pending[1].job, job("tracking-1"));
    assert_eq!(pending[2].account, "etsy-1");
    assert_eq!(store.outbox_counts().unwrap(), (3, 0));

    // Due: per account, FIFO, limited, respecting next_attempt_at.
    let due = store.outbox_due("shop-us", t(0), 10).unwrap();
    assert_eq!(
        due.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&pending[0].id, &pending[1].id]
    );
    assert_eq!(store.outbox_due("shop-us", t(0), 1).unwrap().len(), 1);

    store
        .outbox_reschedule(&pending[0].id, t(60), "429 rate limited")
        .unwrap();
    let due = store.outbox_due("shop-us", t(30), 10).unwrap();
    assert_eq!(
        due.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&pending[1].id]
    );
    let r = store.outbox_get(&pending[0].id).unwrap().unwrap();
    assert_eq!(
        (r.attempts, r.last_error.as_deref()),
        (1, Some("429 rate limited"))
    );
    assert_eq!(store.outbox_due("shop-us", t(60), 10).unwrap().len(), 2);

    // Kill: dead letter with the reason; the key no longer coalesces into it.
    store
        .outbox_kill(&pending[0].id, "400 unknown sku")
        .unwrap();
    assert_eq!(store.outbox_counts().unwrap(), (2, 1));
    let dead = store.outbox_list(true).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].state, OutboxState::Dead);
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(
        serde_json::to_value(dead[0].summary()).unwrap(),
        json!({
            "id": pending[0].id, "account": "shop-us", "kind": "push_tracking", "state": "dead",
            // A dead letter waits for a person, not for a time.
            "attempts": 2, "next_attempt_at": null, "last_error": "400 unknown sku",
            "order_id": "shop-us:1", "sku": null, "destination": null, "tracking_number": "qty 4",
            "created_at": t(0), "notice": null
        })
    );
    assert!(
        store
            .outbox_due("shop-us", t(100), 10)
            .unwrap()
            .iter()
            .all(|i| i.id != pending[0].id)
    );
    store
        .outbox_add(
            vec![outbox_item("shop-us", Some("stock:A"), "qty 7", t(70))],
            t(70),
        )
        .unwrap();
    assert_eq!(
        store.outbox_counts().unwrap(),
        (3, 1),
        "a dead item does not absorb new ones"
    );

    // Retry: pending again, due now, fresh attempts.
    store.outbox_retry(&pending[0].id, t(80)).unwrap();
    let r = store.outbox_get(&pending[0].id).unwrap().unwrap();
    assert_eq!(
        (r.state, r.attempts, r.next_attempt_at),
        (OutboxState::Pending, 0, t(80))
    );
    assert_eq!(r.last_error.as_deref(), Some("400 unknown sku"));

    // Complete and drop remove items; further coalescing starts a new item.
    store.outbox_complete(&pending[1].id).unwrap();
    store.outbox_kill(&pending[2].id, "gone").unwrap();
    store.outbox_kill(&pending[0].id, "again").unwrap();
    assert_eq!(store.outbox_counts().unwrap(), (1, 2));
    assert_eq!(store.outbox_retry_all_dead(t(90)).unwrap(), 2);
    assert_eq!(store.outbox_counts().unwrap(), (3, 0));
    store.outbox_drop(&pending[2].id).unwrap();
    assert_eq!(store.outbox_counts().unwrap(), (2, 0));
    assert_eq!(store.outbox_retry_all_dead(t(90)).unwrap(), 0);

    for r in [
        store.outbox_drop("00000000000000000042"),
        store.outbox_complete("nope"),
        store.outbox_retry("nope", t(0)),
        store.outbox_kill("nope", "x"),
        store.outbox_reschedule("nope", t(0), "x"),
    ] {
        match r {
            Err(
                e @ StoreError::NotFound {
                    what: "outbox item",
                    ..
                },
            ) => {
                assert!(e.to_string().starts_with("outbox item "), "{e}");
                assert!(e.to_string().ends_with(" not found"), "{e}");
            }
            other => panic!("expected not found, got {other:?}"),
        }
    }
}

/// `outbox list` a page at a time while items come, go out, fail for good,
/// are retried, rescheduled and dropped between pages: no item shows twice,
/// pages come in queue order, and every item that stayed pending (or dead)
/// throughout shows exactly once.
#[test]
fn outbox_pages_under_changes_show_each_item_that_stayed_exactly_once() {
    for dead in [false, true] {
        for seed in 1..=4u64 {
            let dir = tempdir();
            let store = open(dir.path());
            let mut rng = seed;
            let mut pick = move |n: usize| {
                rng = rng
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((rng >> 33) as usize) % n
            };
            let add = |n: usize| {
                let items = (0..n)
                    .map(|i| outbox_item(["shop-us", "etsy-1"][i % 2], None, "x", t(0)))
                    .collect();
                store.outbox_add(items, t(0)).unwrap();
            };
            add(40);
            for (i, item) in store.outbox_list(false).unwrap().iter().enumerate() {
                if i % 3 == 0 {
                    store.outbox_kill(&item.id, "400 bad sku").unwrap();
                }
            }
            let want = if dead {
                OutboxState::Dead
            } else {
                OutboxState::Pending
            };
            let ids = |dead| outbox_ids(&store, dead);
            let mut stayed: BTreeSet<String> = ids(dead).into_iter().collect();
            assert!(stayed.len() > 9, "more than three pages");
            let (mut seen, mut after, mut pages) = (Vec::<String>::new(), None, 0);
            loop {
                let page = store.outbox_page(dead, after.as_deref(), 3).unwrap();
                assert!(page.items.len() <= 3, "seed {seed}");
                assert!(page.items.iter().all(|i| i.state == want), "seed {seed}");
                seen.extend(page.items.iter().map(|i| i.id.clone()));
                let Some(next) = page.next else { break };
                after = Some(next);
                pages += 1;
                assert!(pages < 100, "seed {seed}: the walk ends");
                // Between pages, three changes anywhere in the queue.
                for _ in 0..3 {
                    let (pending, dead_now) = (ids(false), ids(true));
                    let any = |v: &[String], n: usize| v[n % v.len().max(1)].clone();
                    match pick(6) {
                        0 => add(1 + pick(2)),
                        1..=3 if pending.is_empty() => {}
                        1 => {
                            let id = any(&pending, pick(1000));
                            store.outbox_complete(&id).unwrap();
                            stayed.remove(&id);
                        }
                        2 => {
                            // Rescheduled: still pending, still in its place.
                            let id = any(&pending, pick(1000));
                            store.outbox_reschedule(&id, t(600), "503").unwrap();
                        }
                        3 => {
                            let id = any(&pending, pick(1000));
                            store.outbox_kill(&id, "400").unwrap();
                            stayed.remove(&id);
                        }
                        _ if dead_now.is_empty() => {}
                        4 => {
                            let id = any(&dead_now, pick(1000));
                            store.outbox_retry(&id, t(700)).unwrap();
                            stayed.remove(&id);
                        }
                        _ => {
                            let id = any(&dead_now, pick(1000));
                            store.outbox_drop(&id).unwrap();
                            stayed.remove(&id);
                        }
                    }
                }
            }
            let unique: BTreeSet<&String> = seen.iter().collect();
            assert_eq!(
                unique.len(),
                seen.len(),
                "dead {dead}, seed {seed}: {seen:?}"
            );
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "queue order");
            for id in &stayed {
                assert!(
                    seen.contains(id),
                    "dead {dead}, seed {seed}: {id} not shown"
                );
            }
        }
    }
}

/// A page reads its items and the id after them, nothing further: an item
/// that cannot be read past the page's end fails only the page that shows
/// it, and the dead letters are listed without reading the pending items.
#[test]
fn an_outbox_page_reads_its_items_and_no_further() {
    let dir = tempdir();
    let store = open(dir.path());
    let items = (0..5)
        .map(|_| outbox_item("shop-us", None, "x", t(0)))
        .collect();
    store.outbox_add(items, t(0)).unwrap();
    let ids = outbox_ids(&store, false);
    store.outbox_kill(&ids[1], "400 bad sku").unwrap();
    // After every item: a value no build can read.
    let broken = "99999999999999999999";
    store
        .raw_insert_for_tests("outbox", broken.as_bytes(), b"\xffnot an item")
        .unwrap();
    let page = store.outbox_page(false, None, 4).unwrap();
    let shown: Vec<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        shown,
        [&ids[0], &ids[2], &ids[3], &ids[4]],
        "the dead one left out"
    );
    assert_eq!(
        page.next.as_deref(),
        Some(ids[4].as_str()),
        "one more follows"
    );
    let err = store
        .outbox_page(false, page.next.as_deref(), 4)
        .unwrap_err();
    assert!(err.to_string().contains(broken), "{err}");
    let dead = store.outbox_page(true, None, 4).unwrap();
    assert_eq!(dead.items.len(), 1);
    assert_eq!(
        (dead.items[0].id.as_str(), dead.next),
        (ids[1].as_str(), None)
    );
    // A full page of dead letters with none after: no cursor.
    let dead = store.outbox_page(true, None, 1).unwrap();
    assert_eq!((dead.items.len(), dead.next), (1, None));

    for bad in ["not-a-cursor", "123", "shop-us:1"] {
        let err = store.outbox_page(false, Some(bad), 4).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidCursor { .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn order_outbox_items_follow_the_outcome() {
    let dir = tempdir();
    let store = open(dir.path());
    let s = stored(order("shop-us", 1, 0, 0));
    let w = |expected| OrderWrite::FromChannel {
        order: s.clone(),
        expected_revision: expected,
        outbox: vec![outbox_item("dest", None, "deliver", t(0))],
    };
    store.apply(batch(t(0), vec![w(None)])).unwrap();
    assert_eq!(store.outbox_counts().unwrap(), (1, 0));
    let r = store.apply(batch(t(1), vec![w(Some(1))])).unwrap();
    assert_eq!(r.outcomes[0].1, WriteOutcome::Unchanged);
    assert_eq!(
        store.outbox_counts().unwrap(),
        (1, 0),
        "unchanged queues nothing"
    );
    let mut local = store.get_order("shop-us:1").unwrap().unwrap();
    local.order.shipments = vec![];
    store
        .apply(batch(
            t(2),
            vec![OrderWrite::Local {
                expected_revision: local.revision,
                order: local,
                kind: "shipment".to_owned(),
                detail: "ups 1Z".to_owned(),
                outbox: vec![outbox_item("shop-us", None, "tracking", t(2))],
            }],
        ))
        .unwrap();
    assert_eq!(store.outbox_counts().unwrap(), (2, 0));
}

#[test]
fn dedupe_keys_expire() {
    let dir = tempdir();
    let store = open(dir.path());
    let mut b = WriteBatch::new(t(0));
    b.dedupe = vec![("shop-us:e1".into(), t(10)), ("shop-us:e2".into(), t(100))];
    store.apply(b).unwrap();
    assert!(store.dedupe_seen("shop-us:e1", t(5)).unwrap());
    assert!(
        !store.dedupe_seen("shop-us:e1", t(10)).unwrap(),
        "expired at its expiry time"
    );
    assert!(
        !store.dedupe_seen("etsy-1:e1", t(5)).unwrap(),
        "keys are namespaced by callers"
    );
    assert_eq!(store.purge_expired_dedupe(t(50)).unwrap(), 1);
    assert_eq!(store.purge_expired_dedupe(t(50)).unwrap(), 0);
    assert!(!store.dedupe_seen("shop-us:e1", t(0)).unwrap(), "purged");
    assert!(store.dedupe_seen("shop-us:e2", t(50)).unwrap());
}

/// What a webhook's repeat check reads: keys with an expiry, answered as
/// `dedupe_seen` answers them; a key kept for good is not one of them (and
/// `dedupe_seen` still answers it).
#[test]
fn expiring_keys_are_seen_until_they_expire_and_kept_ones_are_not_among_them() {
    let dir = tempdir();
    let store = open(dir.path());
    let forever = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut b = WriteBatch::new(t(0));
    b.dedupe = vec![
        ("shop-us:e1".into(), t(10)),
        ("outbound/delivery/shop-us:1".into(), forever),
    ];
    store.apply(b).unwrap();
    for now in [0, 5, 10, 11] {
        assert_eq!(
            store.expiring_key_seen("shop-us:e1", t(now)).unwrap(),
            store.dedupe_seen("shop-us:e1", t(now)).unwrap(),
            "at {now}"
        );
    }
    assert!(store.expiring_key_seen("shop-us:e1", t(9)).unwrap());
    assert!(!store.expiring_key_seen("shop-us:e1", t(10)).unwrap());
    assert!(!store.expiring_key_seen("shop-us:e2", t(0)).unwrap());
    assert!(
        !store
            .expiring_key_seen("outbound/delivery/shop-us:1", t(0))
            .unwrap()
    );
    assert!(
        store
            .dedupe_seen("outbound/delivery/shop-us:1", t(0))
            .unwrap()
    );
}

/// A key kept for good (a delivery or reservation marker) is seen at any
/// time, outlives every purge and a reopen, and is not mistaken for a
/// neighbour with a longer or shorter name.
#[test]
fn dedupe_keys_kept_for_good_never_expire() {
    let dir = tempdir();
    let forever = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .unwrap()
        .with_timezone(&Utc);
    {
        let store = open(dir.path());
        let mut b = WriteBatch::new(t(0));
        b.dedupe = (0..100)
            .map(|n| (format!("outbound/reserve/shop-us:{n}"), forever))
            .chain([("shop-us:e1".to_owned(), t(10))])
            .collect();
        store.apply(b).unwrap();
        let far = forever - chrono::Duration::days(1);
        assert_eq!(store.purge_expired_dedupe(far).unwrap(), 1);
        for n in [0, 42, 99] {
            let key = format!("outbound/reserve/shop-us:{n}");
            assert!(store.dedupe_seen(&key, far).unwrap(), "{key}");
        }
        for other in [
            "outbound/reserve/shop-us:100",
            "outbound/reserve/shop-us:990",
            "outbound/reserve/shop-us",
        ] {
            assert!(!store.dedupe_seen(other, t(0)).unwrap(), "{other}");
        }
        store.close().unwrap();
    }
    let store = reopen(dir.path());
    assert!(
        store
            .dedupe_seen("outbound/reserve/shop-us:7", t(0))
            .unwrap()
    );
    assert!(!store.dedupe_seen("shop-us:e1", t(0)).unwrap(), "purged");
}

#[test]
fn list_orders_filters_and_orders_oldest_first() {
    let dir = tempdir();
    let store = open(dir.path());
    let mut a = stored(order("shop-us", 1, 300, 300));
    a.order.tags = vec!["vip".into()];
    a.order.route = Some("east-wh".into());
    let mut b = stored(order("etsy-1", 2, 100, 100));
    b.order.channel = Channel::Etsy;
    b.order.status = OrderStatus::Shipped;
    b.order.hold = Some("manual review".into());
    b.order.tags = vec!["VIP".into()];
    let c = stored(order("shop-us", 3, 200, 200));
    // Same placed_at as `c`: the id breaks the tie.
    let d = stored(order("shop-us", 0, 200, 200));
    store
        .apply(batch(
            t(0),
            [&a, &b, &c, &d]
                .iter()
                .map(|s| from_channel(s, None))
                .collect(),
        ))
        .unwrap();

    let ids = |f: OrderFilter| -> Vec<String> {
        store
            .list_orders(&f)
            .unwrap()
            .into_iter()
            .map(|s| s.order.id)
            .collect()
    };
    assert_eq!(
        ids(OrderFilter::default()),
        ["etsy-1:2", "shop-us:0", "shop-us:3", "shop-us:1"]
    );
    assert_eq!(
        ids(OrderFilter {
            limit: Some(2),
            ..Default::default()
        }),
        ["etsy-1:2", "shop-us:0"]
    );
    assert_eq!(
        ids(OrderFilter {
            channel: Some(Channel::Etsy),
            ..Default::default()
        }),
        ["etsy-1:2"]
    );
    assert_eq!(
        ids(OrderFilter {
            account: Some("shop-us".into()),
            ..Default::default()
        }),
        ["shop-us:0", "shop-us:3", "shop-us:1"]
    );
    // Tags match ignoring case, as the rules compare them.
    assert_eq!(
        ids(OrderFilter {
            tag: Some("vip".into()),
            ..Default::default()
        }),
        ["etsy-1:2", "shop-us:1"]
    );
    assert_eq!(
        ids(OrderFilter {
            status: Some(OrderStatus::Shipped),
            ..Default::default()
        }),
        ["etsy-1:2"]
    );
    assert_eq!(
        ids(OrderFilter {
            route: Some(RouteFilter::Is("east-wh".into())),
            ..Default::default()
        }),
        ["shop-us:1"]
    );
    assert_eq!(
        ids(OrderFilter {
            route: Some(RouteFilter::None),
            ..Default::default()
        }),
        ["etsy-1:2", "shop-us:0", "shop-us:3"]
    );
    assert_eq!(
        ids(OrderFilter {
            held: Some(true),
            ..Default::default()
        }),
        ["etsy-1:2"]
    );
    assert_eq!(
        ids(OrderFilter {
            held: Some(false),
            ..Default::default()
        })
        .len(),
        3
    );
    assert_eq!(
        ids(OrderFilter {
            account: Some("shop-us".into()),
            route: Some(RouteFilter::None),
            limit: Some(1),
            ..Default::default()
        }),
        ["shop-us:0"]
    );
}

#[test]
fn unknown_format_version_names_the_key() {
    let dir = tempdir();
    let store = open(dir.path());
    let s = create(&store, order("shop-us", 1, 0, 0));
    let mut raw = serde_json::to_vec(&s).unwrap();
    raw.insert(0, 9);
    store
        .raw_insert_for_tests("orders", b"shop-us:1", &raw)
        .unwrap();
    let err = store.get_order("shop-us:1").unwrap_err();
    assert!(
        matches!(&err, StoreError::Format { tree: "orders", key, version: 9 } if key == "shop-us:1"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("orders/shop-us:1") && msg.contains("version 9"),
        "{msg}"
    );
    assert!(matches!(
        store.list_orders(&OrderFilter::default()),
        Err(StoreError::Format { .. })
    ));
    // A write over it refuses rather than guessing what was there.
    assert!(matches!(
        store.apply(batch(t(1), vec![from_channel(&s, Some(1))])),
        Err(StoreError::Format { .. })
    ));

    // A known version with bad JSON is reported as unreadable, also by key.
    store
        .raw_insert_for_tests("cursors", b"shop-us", &[1, b'{'])
        .unwrap();
    match store.cursor("shop-us") {
        Err(StoreError::Corrupt {
            tree: "cursors",
            key,
            ..
        }) => assert_eq!(key, "shop-us"),
        other => panic!("expected corrupt, got {other:?}"),
    }
    store.raw_insert_for_tests("dedupe", b"k", &[]).unwrap();
    assert!(matches!(
        store.dedupe_seen("k", t(0)),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn stock_and_listing_refs() {
    let dir = tempdir();
    let store = open(dir.path());
    let mut b = WriteBatch::new(t(0));
    b.stock = vec![
        StockChange::Set {
            sku: "A".into(),
            on_hand: 10,
        },
        StockChange::Adjust {
            sku: "A".into(),
            delta: -3,
            pushes: vec![],
            level_seen: false,
        },
        StockChange::Pushed {
            sku: "A".into(),
            account: "shop-us".into(),
            pushed: 7,
            at: t(1),
        },
        StockChange::Adjust {
            sku: "B".into(),
            delta: -1,
            pushes: vec![],
            level_seen: false,
        },
    ];
    store.apply(b).unwrap();
    let a = store.stock_get("A").unwrap().unwrap();
    assert_eq!(a.available, 7);
    assert_eq!(
        a.channels["shop-us"],
        PushedLevel {
            pushed: 7,
            at: t(1)
        }
    );
    assert_eq!(
        serde_json::to_value(a.view(vec![])).unwrap(),
        json!({ "sku": "A", "on_hand": 7, "reserved": 0, "available": 7, "reservations": [],
                "channels": [{ "account": "shop-us", "pushed": 7, "at": t(1) }] })
    );
    // A reservation of a SKU with no central level leaves it without one.
    assert_eq!(store.stock_get("B").unwrap(), None);
    assert_eq!(store.stock_get("C").unwrap(), None);
    assert_eq!(store.stock_list().unwrap().len(), 1);

    assert_eq!(store.listing("shop-us", "A").unwrap(), None);
    let known = ListingState::Ref("gid://shopify/InventoryItem/1".into());
    store.set_listing("shop-us", "A", &known).unwrap();
    assert_eq!(store.listing("shop-us", "A").unwrap(), Some(known));
    assert_eq!(store.listing("etsy-1", "A").unwrap(), None);
}

#[test]
fn bad_keys_are_refused() {
    let dir = tempdir();
    let store = open(dir.path());
    let mut o = order("shop-us", 1, 0, 0);
    o.id = "shop-us:\0x".into();
    match store.apply(batch(t(0), vec![from_channel(&stored(o), None)])) {
        Err(StoreError::InvalidKey {
            what: "order id", ..
        }) => {}
        other => panic!("expected invalid key, got {other:?}"),
    }
    let mut b = WriteBatch::new(t(0));
    b.cursor = Some((String::new(), Cursor("c".into())));
    assert!(matches!(
        store.apply(b),
        Err(StoreError::InvalidKey {
            what: "account",
            ..
        })
    ));
}

#[test]
fn second_open_says_the_store_is_in_use_and_close_releases_it() {
    let dir = tempdir();
    let store = open(dir.path());
    create(&store, order("shop-us", 1, 0, 0));
    let mut b = WriteBatch::new(t(0));
    b.cursor = Some(("shop-us".into(), Cursor("c9".into())));
    store.apply(b).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "store at {} is in use by another process (is the daemon running? stop it or use the admin API)",
            dir.path().display()
        )
    );
    let clone = store.clone();
    drop(clone);
    // Closing lets go of the store (once the engine's threads end).
    store.close().unwrap();
    let store = reopen(dir.path());
    assert!(store.get_order("shop-us:1").unwrap().is_some());
    assert_eq!(store.cursor("shop-us").unwrap(), Some(Cursor("c9".into())));
    store.flush_blocking().unwrap();
}

/// What an outbox worker awaits between reading items and sending them:
/// the writes that queued them (or a person's retry that put one back) on
/// disk. Its own bookkeeping (completing, rescheduling, killing items) is
/// no reason to wait: losing it only sends an item again, under the same
/// id, and waiting for it would stall every pass behind a flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_flushed_waits_only_for_writes_that_queue_items() {
    let dir = tempdir();
    let store = open(dir.path());
    store
        .outbox_add(vec![outbox_item("shop-us", None, "a", t(0))], t(0))
        .unwrap();
    store
        .outbox_add(vec![outbox_item("shop-us", None, "b", t(0))], t(0))
        .unwrap();
    store.flush().await.unwrap();
    let ids = outbox_ids(&store, false);

    let hold = store.hold_flushes_for_tests();
    store.outbox_reschedule(&ids[0], t(60), "HTTP 503").unwrap();
    store.outbox_kill(&ids[1], "HTTP 400").unwrap();
    tokio::time::timeout(Duration::from_secs(5), store.outbox_flushed())
        .await
        .expect("nothing queued since the last flush: no wait")
        .unwrap();
    assert!(!hold.flush_asked());

    // A person's retry puts the dead item back in the queue: it waits.
    store.outbox_retry(&ids[1], t(0)).unwrap();
    waits_for_the_flush(&store, hold, "the retry").await;

    // A new item waits as well.
    let hold = store.hold_flushes_for_tests();
    store
        .outbox_add(vec![outbox_item("shop-us", None, "c", t(0))], t(0))
        .unwrap();
    waits_for_the_flush(&store, hold, "the new item").await;
}

/// Shows that `outbox_flushed` waits, under `hold`, until the flush it asks
/// for goes through (`what`: the write it must wait for).
async fn waits_for_the_flush(store: &Store, hold: FlushHold, what: &str) {
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.outbox_flushed().await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hold.flush_asked() {
        assert!(
            !waiting.is_finished(),
            "returned while {what} was not on disk"
        );
        assert!(Instant::now() < deadline, "no flush was asked for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !waiting.is_finished(),
        "returned while {what} was not on disk"
    );
    drop(hold);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the flush went through")
        .unwrap()
        .unwrap();
}

#[test]
fn concurrent_writers_share_flushes_without_deadlock() {
    let dir = tempdir();
    let store = open(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    const TASKS: u32 = 32;
    const PER_TASK: u32 = 10;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let s = stored(order("shop-us", task * 1000 + i, i64::from(i), 0));
                    let mut b = batch(t(0), vec![from_channel(&s, None)]);
                    b.outbox = vec![outbox_item(
                        "shop-us",
                        Some("stock:A"),
                        &i.to_string(),
                        t(0),
                    )];
                    let r = store.apply(b).expect("apply");
                    store.flushed(r.seq).await.expect("flushed");
                }
            }));
        }
        let all = async {
            for t in tasks {
                t.await.expect("task");
            }
            store.flush().await.expect("final flush");
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("group commit finished in time");
    });
    let n = store.list_orders(&OrderFilter::default()).unwrap().len();
    assert_eq!(n, (TASKS * PER_TASK) as usize);
    assert_eq!(
        store.outbox_counts().unwrap(),
        (1, 0),
        "all coalesced into one item"
    );
}

/// Writers that arrive together may commit in one transaction: each must
/// still get its own answer, and a refused write must leave nothing behind
/// while the others beside it are kept.
#[test]
fn concurrent_writers_each_get_their_own_answer() {
    let dir = tempdir();
    let store = open(dir.path());
    let first = create(&store, order("shop-us", 1, 0, 0));
    const THREADS: u32 = 8;
    const PER_THREAD: u32 = 25;
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            let revision = first.revision;
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let n = 1000 * (thread + 1) + i;
                    let good = stored(order("shop-us", n, i64::from(n), 0));
                    let mut b = batch(t(1), vec![from_channel(&good, None)]);
                    b.outbox = vec![outbox_item("dest", None, &n.to_string(), t(1))];
                    b.dedupe = vec![(format!("good-{n}"), t(1000))];
                    let r = store.apply(b).expect("a fresh order is stored");
                    assert_eq!(
                        r.outcomes,
                        vec![(good.order.id.clone(), WriteOutcome::Created)]
                    );

                    // Decided on a revision that is not the stored one.
                    let mut stale = stored(order("shop-us", 1, 0, i64::from(n)));
                    stale.order.status = OrderStatus::Shipped;
                    let beside = stored(order("shop-us", n + 500, 0, 0));
                    let mut b = batch(
                        t(1),
                        vec![
                            from_channel(&beside, None),
                            from_channel(&stale, Some(revision + 99)),
                        ],
                    );
                    b.dedupe = vec![(format!("bad-{n}"), t(1000))];
                    b.outbox = vec![outbox_item("dest", None, "bad", t(1))];
                    match store.apply(b) {
                        Err(StoreError::Conflict { id }) => assert_eq!(id, "shop-us:1"),
                        other => panic!("expected a conflict on shop-us:1, got {other:?}"),
                    }

                    match store.outbox_retry("no-such-item", t(1)) {
                        Err(StoreError::NotFound { id, .. }) => assert_eq!(id, "no-such-item"),
                        other => panic!("expected no-such-item not found, got {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let all = store.list_orders(&OrderFilter::default()).unwrap();
    assert_eq!(all.len(), (THREADS * PER_THREAD + 1) as usize);
    assert_eq!(store.get_order("shop-us:1").unwrap().unwrap(), first);
    for thread in 0..THREADS {
        for i in 0..PER_THREAD {
            let n = 1000 * (thread + 1) + i;
            assert!(store.dedupe_seen(&format!("good-{n}"), t(2)).unwrap());
            assert!(!store.dedupe_seen(&format!("bad-{n}"), t(2)).unwrap());
            let beside = Order::make_id("shop-us", &(n + 500).to_string());
            assert_eq!(store.get_order(&beside).unwrap(), None, "{beside}");
        }
    }
    assert_eq!(
        store.outbox_counts().unwrap(),
        ((THREADS * PER_THREAD) as usize, 0),
        "one item per stored write, none of the refused ones"
    );
}

// --- kill -9 ------------------------------------------------------------------

const KILL_CHILD_ENV: &str = "SWITCHYARD_STORE_KILL_CHILD";
// The name libtest gives the test in the `it` binary (module path without the crate).
const KILL_TEST: &str = "store::acknowledged_writes_survive_kill_9";
const KILL_BATCHES: u32 = 5;
const KILL_PER_BATCH: u32 = 20;

fn kill_order(n: u32) -> StoredOrder {
    let mut s = stored(order("shop-us", n, i64::from(n), i64::from(n)));
    s.channel_tags = vec![format!("batch-{}", n / KILL_PER_BATCH)];
    s
}

/// In the child: write in batches, print each order once it is flushed, then
/// keep writing without flushing until killed (or a minute passes). sled
/// pushes its log buffer to the OS at the start of every transaction, so the
/// writes after the last acknowledgement are plain inserts: otherwise they
/// would save the acknowledged batch even without a flush, and the test could
/// not tell.
fn kill_child(dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = open(dir);
        let mut out = std::io::stdout();
        for b in 0..KILL_BATCHES {
            if b > 0 {
                // Unacknowledged orders in between: recovery must cope with them.
                let n = 100_000 + b;
                store
                    .apply(batch(t(0), vec![from_channel(&kill_order(n), None)]))
                    .expect("apply");
            }
            let ids: Vec<u32> = (b * KILL_PER_BATCH..(b + 1) * KILL_PER_BATCH).collect();
            let mut wb = batch(
                t(0),
                ids.iter()
                    .map(|n| from_channel(&kill_order(*n), None))
                    .collect(),
            );
            wb.cursor = Some(("shop-us".into(), Cursor(format!("after-batch-{b}"))));
            let r = store.apply(wb).expect("apply");
            store.flushed(r.seq).await.expect("flushed");
            for n in ids {
                writeln!(out, "acked {}", kill_order(n).order.id).unwrap();
            }
            out.flush().unwrap();
        }
        writeln!(out, "writing unflushed").unwrap();
        out.flush().unwrap();
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(60) {
            store
                .set_listing("shop-us", &format!("SKU-{n}"), &ListingState::Listed)
                .expect("insert");
            n += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if let Some(dir) = std::env::var_os(KILL_CHILD_ENV) {
        kill_child(Path::new(&dir));
        return;
    }
    let dir = tempdir();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", KILL_TEST, "--nocapture", "--test-threads=1"])
        .env(KILL_CHILD_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start child test process");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if line.is_err() || tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acked: Vec<String> = Vec::new();
    let mut unflushed = false;
    let failure = loop {
        if unflushed && acked.len() == (KILL_BATCHES * KILL_PER_BATCH) as usize {
            break None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                // libtest may print "test <name> ... " on the same line first.
                if let Some(at) = line.find("acked ") {
                    acked.push(line[at + "acked ".len()..].trim().to_owned());
                } else if line.contains("writing unflushed") {
                    unflushed = true;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break Some("timed out"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break Some("child exited early"),
        }
    };
    // Let some unflushed writes be in flight when it dies.
    std::thread::sleep(Duration::from_millis(30));
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("reap child");
    if let Some(why) = failure {
        panic!(
            "{why}: child acknowledged {} orders (status {status})",
            acked.len()
        );
    }

    let store = open(dir.path());
    for id in &acked {
        let got = store
            .get_order(id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged order {id} lost after kill -9"));
        let n: u32 = id
            .trim_start_matches("shop-us:")
            .parse()
            .expect("order number");
        let mut want = kill_order(n);
        want.revision = 1;
        let raw = std::mem::take(&mut want.raw);
        assert_eq!(got, want);
        assert_eq!(store.raw_payload(id).unwrap(), Some(raw));
        assert_eq!(kinds(&store.history(id).unwrap()), ["created"]);
    }
    assert_eq!(
        store.cursor("shop-us").unwrap(),
        Some(Cursor(format!("after-batch-{}", KILL_BATCHES - 1)))
    );
}

#[test]
fn a_raw_payload_reads_as_the_text_stored_whatever_it_holds() {
    let dir = tempdir();
    let store = open(dir.path());
    let s = create(&store, order("shop-us", 1, 0, 0));
    let id = s.order.id.as_str();
    // Written parsed: the JSON it was written as.
    let text = store.raw_payload_text(id).unwrap().unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&text).unwrap(),
        store.raw_payload(id).unwrap().unwrap()
    );
    // A payload of the first layout (uncompressed), holding a number no
    // JSON tree holds: the text is read as it is; only a parse fails.
    let stored = br#"{"id": "1",  "big": 1e400}"#;
    let mut first_layout = vec![1u8];
    first_layout.extend_from_slice(stored);
    store
        .raw_insert_for_tests("raw", id.as_bytes(), &first_layout)
        .unwrap();
    assert_eq!(
        store.raw_payload_text(id).unwrap().as_deref(),
        Some(&stored[..])
    );
    assert!(matches!(
        store.raw_payload(id),
        Err(StoreError::Corrupt { .. })
    ));
    // A format this build does not know is said so, not shown as text.
    store
        .raw_insert_for_tests("raw", id.as_bytes(), b"\x09{}")
        .unwrap();
    assert!(matches!(
        store.raw_payload_text(id),
        Err(StoreError::Format { version: 9, .. })
    ));
    assert_eq!(store.raw_payload_text("shop-us:404").unwrap(), None);
}
