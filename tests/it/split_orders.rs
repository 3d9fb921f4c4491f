//! Orders whose lines go to several destinations (`route_lines`): what the
//! rules decide and what `rules apply` and its dry run say about it.

use crate::common;

use std::path::Path;

use chrono::Utc;
use switchyard::effects::Outbound;
use switchyard::ingest::{Ingest, LiveRules, Source};
use switchyard::ops;
use switchyard::rules::{RuleSet, parse_rules};
use switchyard::store::{DeliveredTo, OrderWrite, Store, StoreOptions, WriteBatch};
use switchyard_contract::{Line, Order};

const ORDER: &str = "shop-test:7";

fn rules(text: &str) -> RuleSet {
    let dests = ["east-wh".to_owned(), "west-3pl".to_owned()];
    parse_rules(Path::new("rules.toml"), text, &dests)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .0
}

/// Everything to the east warehouse.
const EAST: &str = "default_route = \"east-wh\"\n";

/// Cups from the 3PL, the rest to the east warehouse.
const CUPS_WEST: &str = r#"default_route = "east-wh"
[[rule]]
name = "cups-from-3pl"
when = { sku = "CUP-*" }
then = { route_lines = { sku = "CUP-*", route = "west-3pl" } }
"#;

/// Order 7: a mug (line 71) and three cups (line 72).
fn mug_and_cups() -> Order {
    let mut o = common::order(7, common::at(9, 0), "20.00");
    let mug = o.lines[0].clone();
    o.lines.push(Line {
        line_id: "72".into(),
        sku: Some("CUP-1".into()),
        title: "Cup".into(),
        quantity: 3,
        ..mug
    });
    o
}

fn stored_with(rules_text: &str) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ingest = Ingest::new(store.clone(), LiveRules::new(rules(rules_text)));
    ingest
        .receive(
            common::ACCOUNT,
            vec![common::normalized(mug_and_cups())],
            Source::Fetch,
            Utc::now(),
        )
        .unwrap();
    (dir, store)
}

#[test]
fn ingest_stores_each_lines_destination() {
    let (_dir, store) = stored_with(CUPS_WEST);
    let stored = store.get_order(ORDER).unwrap().unwrap();
    assert_eq!(stored.order.route.as_deref(), Some("east-wh"));
    assert_eq!(stored.line_destination("71"), Some("east-wh"));
    assert_eq!(stored.line_destination("72"), Some("west-3pl"));
    let shown = ops::order_detail(&store, ORDER).unwrap().to_json();
    assert_eq!(
        shown["line_routes"],
        serde_json::json!([{ "line_id": "72", "route": "west-3pl", "rule": "cups-from-3pl" }])
    );
}

#[test]
fn rules_apply_names_the_lines_that_move_and_its_dry_run_writes_nothing() {
    let (_dir, store) = stored_with(EAST);
    let outbound = Outbound::default();
    let now = Utc::now();
    let dry = ops::apply_rules(&store, &outbound, &rules(CUPS_WEST), true, now).unwrap();
    assert_eq!(dry.value.len(), 1);
    assert_eq!(
        dry.value[0].describe(),
        "line 72 (CUP-1) east-wh -> west-3pl"
    );
    let after = serde_json::to_value(&dry.value[0].after).unwrap();
    assert_eq!(
        after["line_routes"],
        serde_json::json!([{ "line_id": "72", "sku": "CUP-1", "route": "west-3pl" }])
    );
    let stored = store.get_order(ORDER).unwrap().unwrap();
    assert!(stored.line_routes.is_empty(), "a dry run writes nothing");

    let applied = ops::apply_rules(&store, &outbound, &rules(CUPS_WEST), false, now).unwrap();
    assert_eq!(applied.value, dry.value);
    let stored = store.get_order(ORDER).unwrap().unwrap();
    assert_eq!(stored.line_destination("72"), Some("west-3pl"));
    let history = store.history(ORDER).unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.detail.as_str()),
        ("rules_apply", "line 72 (CUP-1) east-wh -> west-3pl")
    );

    // The write made the order deliverable: it was queued in two parts,
    // the mug east and the cups west.
    let parts: Vec<(&str, Vec<&str>, u32, u32)> = stored
        .parts
        .iter()
        .map(|p| {
            let lines = p.lines.iter().map(String::as_str).collect();
            (p.destination.as_str(), lines, p.index, p.of)
        })
        .collect();
    assert_eq!(
        parts,
        [
            ("east-wh", vec!["71"], 1, 2),
            ("west-3pl", vec!["72"], 2, 2)
        ]
    );

    // And back: the rules send the line with the order's route again, but
    // its part is queued for the 3PL already: it stays there.
    let back = ops::apply_rules(&store, &outbound, &rules(EAST), false, now).unwrap();
    assert_eq!(
        back.value[0].describe(),
        format!(
            "line 72 (CUP-1) west-3pl -> east-wh; line 72 (CUP-1) already queued for west-3pl \
             (delivery {}): not delivered again",
            stored.parts[1].delivery_id
        )
    );
    let after = store.get_order(ORDER).unwrap().unwrap();
    assert_eq!(after.parts, stored.parts, "nothing queued again");
    assert_eq!(
        switchyard::effects::deliveries::line_owner(&after, "72"),
        Some("west-3pl")
    );
    // A change of the order's route moves the lines that follow it without
    // naming them; a taken line that stays put is not named either.
    let (_dir2, store2) = stored_with(CUPS_WEST);
    let west_all = "default_route = \"west-3pl\"\n[[rule]]\nname = \"cups-from-3pl\"\nwhen = { sku = \"CUP-*\" }\nthen = { route_lines = { sku = \"CUP-*\", route = \"west-3pl\" } }\n";
    let moved = ops::apply_rules(&store2, &outbound, &rules(west_all), true, now).unwrap();
    assert_eq!(moved.value[0].describe(), "route east-wh -> west-3pl");
}

/// An order delivered before orders were split has no parts, only where it
/// was delivered: a rules run that sends it elsewhere says that its lines
/// stay with that delivery (so `rules apply` prints the redeliver command),
/// as it does for an order delivered in parts.
#[test]
fn rules_apply_names_the_lines_of_an_order_delivered_before_orders_were_split() {
    let (_dir, store) = stored_with(EAST);
    let now = Utc::now();
    let mut old = store.get_order(ORDER).unwrap().unwrap();
    assert!(old.parts.is_empty(), "not queued: no outbound");
    old.delivered = Some(DeliveredTo {
        destination: "east-wh".into(),
        delivery_id: "dlv_before_split".into(),
        at: now,
    });
    let revision = old.revision;
    let mut batch = WriteBatch::new(now);
    batch.orders.push(OrderWrite::Local {
        order: old,
        expected_revision: revision,
        kind: "delivered".into(),
        detail: "delivered to east-wh before orders were split".into(),
        outbox: vec![],
    });
    store.apply(batch).unwrap();

    let west = "default_route = \"west-3pl\"\n";
    let dry = ops::apply_rules(&store, &Outbound::default(), &rules(west), true, now).unwrap();
    assert_eq!(dry.value.len(), 1);
    assert_eq!(
        dry.value[0].describe(),
        "route east-wh -> west-3pl; line 71 (MUG-RED), line 72 (CUP-1) already delivered to \
         east-wh (delivery dlv_before_split): not delivered again"
    );
    let kept: Vec<(&str, &str, bool)> = dry.value[0]
        .kept
        .iter()
        .map(|k| (k.line_id.as_str(), k.destination.as_str(), k.delivered))
        .collect();
    assert_eq!(kept, [("71", "east-wh", true), ("72", "east-wh", true)]);
}

/// The `deliver` items queued, as (destination, delivery id, body).
fn queued(store: &Store) -> Vec<(String, String, serde_json::Value)> {
    store
        .outbox_list(false)
        .unwrap()
        .into_iter()
        .filter_map(|i| match i.job {
            switchyard::outbox::Job::Deliver(d) => Some((
                d.destination,
                d.delivery_id,
                serde_json::from_str(&d.body).unwrap(),
            )),
            _ => None,
        })
        .collect()
}

fn delivered_with(rules_text: &str, order: Order) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ingest = Ingest::new(store.clone(), LiveRules::new(rules(rules_text)))
        .with_outbound(Outbound::default());
    ingest
        .receive(
            common::ACCOUNT,
            vec![common::normalized(order)],
            Source::Fetch,
            Utc::now(),
        )
        .unwrap();
    (dir, store)
}

#[test]
fn each_part_carries_only_its_owed_lines_and_says_which_part_it_is() {
    let (_dir, store) = delivered_with(CUPS_WEST, mug_and_cups());
    let items = queued(&store);
    let stored = store.get_order(ORDER).unwrap().unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    for ((dest, id, body), (part, want)) in items.iter().zip(
        stored
            .parts
            .iter()
            .zip([("east-wh", "MUG-RED", 1), ("west-3pl", "CUP-1", 2)]),
    ) {
        assert_eq!(dest, want.0);
        assert_eq!(&part.delivery_id, id, "the id recorded is the id sent");
        assert_eq!(body["id"], ORDER);
        let skus: Vec<&str> = body["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["sku"].as_str().unwrap())
            .collect();
        assert_eq!(skus, [want.1]);
        assert_eq!(
            body["part"],
            serde_json::json!({ "index": want.2, "of": 2 })
        );
    }
    let history = ops::order_detail(&store, ORDER).unwrap();
    assert_eq!(history.parts, stored.parts);

    // Cups already refunded owe the 3PL nothing: one delivery of the order,
    // east, as for any order, carrying only the lines still owed.
    let mut refunded = mug_and_cups();
    refunded.lines[1].refunded_quantity = 3;
    let (_dir, store) = delivered_with(CUPS_WEST, refunded);
    let items = queued(&store);
    assert_eq!(items.len(), 1, "{items:?}");
    let (dest, _, body) = &items[0];
    assert_eq!(dest, "east-wh");
    assert!(body.get("part").is_none(), "{body}");
    let skus: Vec<&str> = body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["MUG-RED"]);

    // An order whose every line goes to the 3PL goes there whole.
    let mut cups = mug_and_cups();
    cups.lines.remove(0);
    let (_dir, store) = delivered_with(CUPS_WEST, cups);
    let items = queued(&store);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].0, "west-3pl");
    assert!(items[0].2.get("part").is_none());
}

#[test]
fn shipments_of_a_split_order_come_from_the_destination_that_has_the_lines() {
    use switchyard::effects::tracking::{ShipLine, ShipmentRequest, record};
    let (_dir, store) = delivered_with(CUPS_WEST, mug_and_cups());
    let outbound = Outbound::default();
    let req =
        |tracking: &str, destination: Option<&str>, lines: Option<Vec<ShipLine>>| ShipmentRequest {
            order_id: ORDER.into(),
            carrier: "ups".into(),
            tracking_number: tracking.into(),
            tracking_url: None,
            shipped_at: None,
            lines,
            destination: destination.map(str::to_owned),
        };
    let refused = |r: &ShipmentRequest| {
        record(&store, &outbound, r, Utc::now())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused(&req("1Z1", None, None)),
        "order shop-test:7 is split across east-wh and west-3pl: say which destination shipped \
         (destination, --destination) or list the lines that shipped"
    );
    let cup = |n| {
        Some(vec![ShipLine {
            sku: "CUP-1".into(),
            quantity: n,
        }])
    };
    assert_eq!(
        refused(&req("1Z1", Some("east-wh"), cup(1))),
        "order shop-test:7 has no line with sku CUP-1 delivered to east-wh"
    );
    assert_eq!(
        refused(&req("1Z1", Some("north-wh"), None)),
        "order shop-test:7 has no lines for destination north-wh (its lines go to east-wh, west-3pl)"
    );
    let before = store.get_order(ORDER).unwrap().unwrap();
    assert_eq!(
        before.order.shipments.len(),
        0,
        "refused shipments write nothing"
    );

    // The 3PL ships two cups; the third is refunded: nothing is left for
    // it to ship.
    let ship = |r: ShipmentRequest| record(&store, &outbound, &r, Utc::now()).unwrap();
    ship(req("1ZW1", Some("west-3pl"), cup(2)));
    let mut partly = store.get_order(ORDER).unwrap().unwrap();
    partly.order.lines[1].refunded_quantity = 1;
    let mut batch = switchyard::store::WriteBatch::new(Utc::now());
    batch.orders.push(switchyard::store::OrderWrite::Local {
        expected_revision: partly.revision,
        order: partly,
        kind: "refund".into(),
        detail: "refunded on the channel".into(),
        outbox: vec![],
    });
    store.apply(batch).unwrap();
    let o = store.get_order(ORDER).unwrap().unwrap().order;
    assert_eq!(o.status, switchyard_contract::OrderStatus::PartiallyShipped);
    assert_eq!(
        refused(&req("1ZW2", Some("west-3pl"), None)),
        "order shop-test:7: everything delivered to west-3pl is already shipped"
    );
    // The east warehouse ships the mug: every line is shipped or refunded.
    ship(req("1ZE1", Some("east-wh"), None));
    let o = store.get_order(ORDER).unwrap().unwrap().order;
    assert_eq!(
        (o.lines[0].shipped_quantity, o.lines[1].shipped_quantity),
        (1, 2)
    );
    assert_eq!(o.status, switchyard_contract::OrderStatus::Shipped);
    // Each shipment queued its own tracking push.
    let pushes = store
        .outbox_list(false)
        .unwrap()
        .into_iter()
        .filter(|i| matches!(i.job, switchyard::outbox::Job::PushTracking { .. }))
        .count();
    assert_eq!(pushes, 2);
}

// --- through the daemon -------------------------------------------------------------

mod through_the_daemon {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use serde_json::{Value, json};
    use switchyard::sim::{Delivery, DestinationSink, Simulator};
    use switchyard_contract::Channel;

    use crate::common::daemon::{
        ConfigBuilder, InProcess, REPO, ShopifyAccount, orders_create_numbered, post,
        shopify_signed, warehouses,
    };
    use crate::common::eventually;
    use crate::common::sims::ShopifySimExt;

    const TOKEN: &str = "admin-token-for-split-orders-0123";
    const WEBHOOK_SECRET: &str = "split-orders-webhook-secret";
    const WAIT: Duration = Duration::from_secs(20);

    /// Cups from the 3PL; orders tagged "check-me" held; the rest east.
    const RULES: &str = r#"default_route = "east-wh"

[[rule]]
name = "check-first"
when = { tag = "check-me" }
then = { hold = "check first" }

[[rule]]
name = "cups-from-3pl"
when = { sku = "CUP-*" }
then = { route_lines = { sku = "CUP-*", route = "west-3pl" } }
"#;

    /// The same with no line routes: everything east.
    const ALL_EAST: &str = r#"default_route = "east-wh"

[[rule]]
name = "check-first"
when = { tag = "check-me" }
then = { hold = "check first" }
"#;

    /// A daemon with the Shopify shop of the fixtures, both warehouses on a
    /// sink on 127.0.0.1, and [`RULES`].
    struct Setup {
        dir: tempfile::TempDir,
        sim: Simulator,
        sink: DestinationSink,
        daemon: InProcess,
        http: reqwest::Client,
    }

    impl Setup {
        async fn start() -> Setup {
            Setup::start_with(None).await
        }

        /// `west`: another URL for the 3PL than the sink's.
        async fn start_with(west: Option<&str>) -> Setup {
            let dir = tempfile::tempdir().unwrap();
            let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
                .await
                .unwrap();
            let sink = DestinationSink::start(BTreeMap::from([
                ("east-wh".to_owned(), b"test-secret-east".to_vec()),
                ("west-3pl".to_owned(), b"test-secret-west".to_vec()),
            ]))
            .await
            .unwrap();
            let rules = dir.path().join("rules.toml");
            std::fs::write(&rules, RULES).unwrap();
            let config = ConfigBuilder::new(dir.path())
                .rules(&rules)
                .admin_token(TOKEN)
                .shutdown_timeout("5s")
                .account(
                    ShopifyAccount::new("shop-us", &sim.base_url(Channel::Shopify))
                        .webhook_secret(WEBHOOK_SECRET),
                )
                .destinations(warehouses(
                    &sink.url("east-wh"),
                    &west.map_or_else(|| sink.url("west-3pl"), str::to_owned),
                ))
                .write();
            let daemon = InProcess::start(&config).await;
            daemon.synced(&["shop-us"]).await;
            Setup {
                dir,
                sim,
                sink,
                daemon,
                http: reqwest::Client::new(),
            }
        }

        fn rules_path(&self) -> PathBuf {
            self.dir.path().join("rules.toml")
        }

        /// Paid order `n` of a red mug (line 13001001, x2) and three cups
        /// (line 13001002), tagged `tags`, known to the shop and pushed to
        /// the daemon as an orders/create webhook. Answers its id.
        async fn order(&self, n: u64, tags: &str) -> String {
            let mut body = orders_create_numbered(n);
            body["financial_status"] = "paid".into();
            body["tags"] = tags.into();
            let mut cup = body["line_items"][0].clone();
            cup["id"] = 13_001_002.into();
            cup["admin_graphql_api_id"] = "gid://shopify/LineItem/13001002".into();
            cup["sku"] = "CUP-1".into();
            cup["name"] = "Cup".into();
            cup["title"] = "Cup".into();
            cup["quantity"] = 3.into();
            cup["current_quantity"] = 3.into();
            cup["fulfillable_quantity"] = 3.into();
            cup["variant_id"] = 42_002.into();
            body["line_items"].as_array_mut().unwrap().push(cup);
            self.sim.shopify(|s| s.shop.learn(&body));
            let bytes = serde_json::to_vec(&body).unwrap();
            let headers = shopify_signed(
                &bytes,
                WEBHOOK_SECRET,
                [
                    ("content-type", "application/json"),
                    ("x-shopify-topic", "orders/create"),
                    ("x-shopify-webhook-id", &format!("wh-split-{n}")),
                ],
            );
            let (status, text) = post(
                &self.http,
                &self.daemon.url("/webhooks/shop-us"),
                &headers,
                bytes,
            )
            .await;
            assert_eq!(status, 200, "{text}");
            format!("shop-us:{n}")
        }

        async fn api(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<Value>,
        ) -> (u16, Value) {
            let mut req = self
                .http
                .request(method, self.daemon.url(&format!("/api/v1{path}")))
                .bearer_auth(TOKEN);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }

        async fn release(&self, id: &str) {
            let path = format!("/orders/{id}/release");
            let (status, answer) = self.api(reqwest::Method::POST, &path, None).await;
            assert_eq!(status, 200, "{answer}");
        }

        async fn show(&self, id: &str) -> Value {
            let (status, v) = self
                .api(reqwest::Method::GET, &format!("/orders/{id}"), None)
                .await;
            assert_eq!(status, 200, "{v}");
            v
        }

        async fn ship(&self, id: &str, destination: Option<&str>, tracking: &str) -> (u16, Value) {
            let mut body = json!({ "order_id": id, "carrier": "ups", "tracking_number": tracking });
            if let Some(d) = destination {
                body["destination"] = d.into();
            }
            self.api(reqwest::Method::POST, "/shipments", Some(body))
                .await
        }

        /// The deliveries (with an order body) of order `id` the sink took.
        fn deliveries(&self, id: &str) -> Vec<Delivery> {
            self.sink
                .received()
                .into_iter()
                .filter(|d| d.order.as_ref().is_some_and(|o| o.id == id))
                .collect()
        }

        async fn wait_deliveries(&self, id: &str, n: usize) -> Vec<Delivery> {
            eventually(&format!("{n} deliveries of {id}"), WAIT, async || {
                let got = self.deliveries(id);
                if got.len() >= n {
                    Ok(got)
                } else {
                    Err(format!("{got:?}"))
                }
            })
            .await
        }

        /// The daemon's outbox items (dead letters too) about order `id`.
        async fn outbox(&self, id: &str) -> Vec<Value> {
            let mut all = Vec::new();
            for path in ["/outbox", "/outbox?dead=true"] {
                let (status, v) = self.api(reqwest::Method::GET, path, None).await;
                assert_eq!(status, 200, "{v}");
                all.extend(
                    v.as_array()
                        .unwrap()
                        .iter()
                        .filter(|i| i["order_id"] == id)
                        .cloned(),
                );
            }
            all
        }

        /// Waits until nothing about order `id` is left in the outbox.
        async fn drained(&self, id: &str) {
            eventually(
                &format!("the outbox to be done with {id}"),
                WAIT,
                async || {
                    let left = self.outbox(id).await;
                    if left.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("{left:?}"))
                    }
                },
            )
            .await
        }

        /// The outbox item of order `id`'s part for the 3PL, once it waits.
        async fn west_part_waiting(&self, id: &str) -> String {
            eventually("the 3PL's part to be waiting", WAIT, async || {
                let items = self.outbox(id).await;
                match items.iter().find(|i| i["destination"] == "west-3pl") {
                    Some(i) if i["kind"] == "deliver" => Ok(i["id"].as_str().unwrap().to_owned()),
                    _ => Err(format!("{items:?}")),
                }
            })
            .await
        }

        /// Sends outbox item `item` of order `id` now (it may be gone
        /// already) and answers the order's history once it is through.
        async fn retried(&self, id: &str, item: &str) -> Vec<String> {
            let path = format!("/outbox/{item}/retry");
            let (status, answer) = self.api(reqwest::Method::POST, &path, None).await;
            assert!(status == 200 || status == 404, "{status} {answer}");
            self.drained(id).await;
            self.history(id).await
        }

        /// Saves `rules` as the rules file and applies them once the
        /// daemon has them in force (they change an order).
        async fn apply_rules(&self, rules: &str) {
            std::fs::write(self.rules_path(), rules).unwrap();
            eventually("the new rules to be applied", WAIT, async || {
                let (status, v) = self.api(reqwest::Method::POST, "/rules/apply", None).await;
                status == 200 && v.as_array().is_some_and(|a| !a.is_empty())
            })
            .await;
        }

        async fn history(&self, id: &str) -> Vec<String> {
            self.show(id).await["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    format!(
                        "{}: {}",
                        h["kind"].as_str().unwrap(),
                        h["detail"].as_str().unwrap()
                    )
                })
                .collect()
        }
    }

    fn skus(d: &Delivery) -> Vec<String> {
        d.order
            .as_ref()
            .unwrap()
            .lines
            .iter()
            .map(|l| l.sku.clone().unwrap_or_default())
            .collect()
    }

    fn at(deliveries: &[Delivery], destination: &str) -> Delivery {
        let mine: Vec<_> = deliveries
            .iter()
            .filter(|d| d.destination == destination)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "one delivery to {destination}: {deliveries:?}"
        );
        mine[0].clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_split_order_goes_out_in_two_parts_and_ships_from_both_with_two_tracking_pushes() {
        let s = Setup::start().await;
        let id = s.order(7001, "").await;

        let got = s.wait_deliveries(&id, 2).await;
        let (east, west) = (at(&got, "east-wh"), at(&got, "west-3pl"));
        assert!(east.signature_ok && west.signature_ok);
        assert_eq!(skus(&east), ["MUG-RED"]);
        assert_eq!(skus(&west), ["CUP-1"]);
        assert_eq!(east.part, Some((1, 2)));
        assert_eq!(west.part, Some((2, 2)));
        assert_ne!(east.delivery_id, west.delivery_id);
        s.drained(&id).await;
        let shown = s.show(&id).await;
        let parts = shown["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        assert!(
            parts.iter().all(|p| !p["delivered_at"].is_null()),
            "{shown}"
        );
        // Each delivery went out under the id recorded when it was queued.
        assert_eq!(
            parts[0]["delivery_id"].as_str(),
            east.delivery_id.as_deref()
        );
        assert_eq!(
            parts[1]["delivery_id"].as_str(),
            west.delivery_id.as_deref()
        );

        // A warehouse ships only its own lines; without saying which, a
        // split order is refused (nothing written).
        let (status, answer) = s.ship(&id, None, "1ZNOBODY").await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer
                .to_string()
                .contains("split across east-wh and west-3pl"),
            "{answer}"
        );
        let (status, answer) = s.ship(&id, Some("west-3pl"), "1ZWEST").await;
        assert_eq!(status, 202, "{answer}");
        let shown = s.show(&id).await;
        assert_eq!(shown["status"], "partially_shipped");
        let lines = &shown["lines"];
        assert_eq!(
            (
                lines[0]["shipped_quantity"].as_u64(),
                lines[1]["shipped_quantity"].as_u64()
            ),
            (Some(0), Some(3))
        );
        // West has nothing more to ship: the order's state refuses it.
        let (status, answer) = s.ship(&id, Some("west-3pl"), "1ZWEST2").await;
        assert_eq!(status, 409, "{answer}");
        let (status, answer) = s.ship(&id, Some("east-wh"), "1ZEAST").await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(s.show(&id).await["status"], "shipped");

        // Each shipment is its own fulfilment on Shopify, with its own lines.
        let fulfils = eventually("two fulfilments in the shop", WAIT, async || {
            let f: Vec<Value> = s
                .sim
                .requests()
                .into_iter()
                .filter_map(|r| r.request.body_json())
                .filter(|b| b["operationName"] == "SwitchyardFulfill")
                .collect();
            if f.len() >= 2 {
                Ok(f)
            } else {
                Err(format!("{f:?}"))
            }
        })
        .await;
        assert_eq!(fulfils.len(), 2);
        for (f, tracking, line) in [
            (&fulfils[0], "1ZWEST", "13001002"),
            (&fulfils[1], "1ZEAST", "13001001"),
        ] {
            let input = &f["variables"]["fulfillment"];
            assert_eq!(input["trackingInfo"]["number"], tracking, "{f}");
            let items = input["lineItemsByFulfillmentOrder"][0]["fulfillmentOrderLineItems"]
                .as_array()
                .unwrap();
            assert_eq!(items.len(), 1, "{f}");
            assert!(items[0]["id"].as_str().unwrap().ends_with(line), "{f}");
        }
        s.drained(&id).await;
        s.daemon.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hold_holds_both_parts_a_release_sends_both_and_a_moved_line_is_not_delivered_twice()
    {
        let s = Setup::start().await;
        let id = s.order(7002, "check-me").await;
        eventually("the order to be stored on hold", WAIT, async || {
            let (status, v) = s
                .api(reqwest::Method::GET, &format!("/orders/{id}"), None)
                .await;
            status == 200 && v["hold"] == "check first"
        })
        .await;
        s.drained(&id).await;
        assert!(s.deliveries(&id).is_empty(), "a held order sends no part");

        s.release(&id).await;
        let got = s.wait_deliveries(&id, 2).await;
        assert_eq!(skus(&at(&got, "east-wh")), ["MUG-RED"]);
        assert_eq!(skus(&at(&got, "west-3pl")), ["CUP-1"]);
        s.drained(&id).await;
        let west_delivery = at(&got, "west-3pl").delivery_id.unwrap();

        // Held again after delivery: each warehouse that took a part is told.
        let (status, answer) = s
            .api(
                reqwest::Method::POST,
                &format!("/orders/{id}/hold"),
                Some(json!({ "reason": "address check" })),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        s.drained(&id).await;
        let notices: Vec<String> = s
            .sink
            .received()
            .into_iter()
            .filter(|d| d.order.is_none())
            .map(|d| d.destination)
            .collect();
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(
            notices.contains(&"east-wh".to_owned()) && notices.contains(&"west-3pl".to_owned())
        );
        s.release(&id).await;

        // The rules now send the cups east too: the dry run says the cups
        // stay with the 3PL, which has them; applying writes that into the
        // history and delivers nothing again.
        std::fs::write(s.rules_path(), ALL_EAST).unwrap();
        let dry = eventually("the new rules to be in force", WAIT, async || {
            let (status, v) = s
                .api(reqwest::Method::POST, "/rules/apply?dry_run=true", None)
                .await;
            let mine = v
                .as_array()
                .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()).cloned());
            match mine {
                Some(c) if status == 200 => Ok(c),
                _ => Err(v.to_string()),
            }
        })
        .await;
        assert_eq!(dry["kept"][0]["line_id"], "13001002", "{dry}");
        assert_eq!(dry["kept"][0]["destination"], "west-3pl", "{dry}");
        assert_eq!(dry["kept"][0]["delivered"], true, "{dry}");
        let before = s.sink.received().len();
        let (status, applied) = s.api(reqwest::Method::POST, "/rules/apply", None).await;
        assert_eq!(status, 200, "{applied}");
        let history = s.history(&id).await;
        let expected = format!(
            "rules_apply: line 13001002 (CUP-1) west-3pl -> east-wh; line 13001002 (CUP-1) already delivered to west-3pl (delivery {west_delivery}): not delivered again"
        );
        assert!(history.contains(&expected), "{expected} in {history:#?}");
        s.drained(&id).await;
        assert_eq!(s.sink.received().len(), before, "nothing delivered again");

        // The cups are still the 3PL's to ship, not the east warehouse's.
        let (status, answer) = s.ship(&id, Some("east-wh"), "1ZEAST").await;
        assert_eq!(status, 202, "{answer}");
        let shown = s.show(&id).await;
        assert_eq!(shown["status"], "partially_shipped");
        assert_eq!(shown["lines"][1]["shipped_quantity"], 0);
        let (status, answer) = s.ship(&id, Some("west-3pl"), "1ZWEST").await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(s.show(&id).await["status"], "shipped");
        s.daemon.stop().await;
    }

    /// After the rules moved the cups east, `orders redeliver` (here its
    /// admin route) sends the whole order east, each warehouse is told to
    /// withdraw the part it took, and from then on east ships everything.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redelivery_sends_the_order_where_its_lines_go_now_and_withdraws_the_old_parts() {
        let s = Setup::start().await;
        let id = s.order(7004, "").await;
        let got = s.wait_deliveries(&id, 2).await;
        let (east, west) = (at(&got, "east-wh"), at(&got, "west-3pl"));
        s.drained(&id).await;

        s.apply_rules(ALL_EAST).await;
        assert_eq!(s.deliveries(&id).len(), 2, "nothing sent again by itself");

        let redeliver = format!("/orders/{id}/redeliver");
        let (status, preview) = s
            .api(
                reqwest::Method::POST,
                &format!("{redeliver}?dry_run=true"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!(preview["queued"], false);
        assert_eq!(
            preview["parts"],
            json!([{ "destination": "east-wh", "delivery_id": null, "lines": [
                { "line_id": "13001001", "sku": "MUG-RED", "quantity": 2 },
                { "line_id": "13001002", "sku": "CUP-1", "quantity": 3 },
            ] }])
        );
        let withdrawn: Vec<&str> = preview["withdrawn"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["delivery_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            withdrawn,
            [
                east.delivery_id.as_deref().unwrap(),
                west.delivery_id.as_deref().unwrap()
            ]
        );
        assert!(s.outbox(&id).await.is_empty(), "a preview queues nothing");

        let (status, done) = s.api(reqwest::Method::POST, &redeliver, None).await;
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["queued"], true);
        let got = s.wait_deliveries(&id, 3).await;
        let again = got.last().unwrap();
        assert_eq!(again.destination, "east-wh");
        assert_eq!(skus(again), ["MUG-RED", "CUP-1"]);
        assert_eq!(again.part, None, "one destination: not split");
        assert_eq!(
            again.delivery_id.as_deref(),
            done["parts"][0]["delivery_id"].as_str()
        );
        s.drained(&id).await;
        let mut notices: Vec<(String, String)> = s
            .sink
            .received()
            .into_iter()
            .filter(|d| d.order.is_none())
            .map(|d| (d.destination, d.delivery_id.unwrap_or_default()))
            .collect();
        notices.sort();
        assert_eq!(
            notices,
            [
                ("east-wh".to_owned(), east.delivery_id.clone().unwrap()),
                ("west-3pl".to_owned(), west.delivery_id.clone().unwrap())
            ]
        );
        let history = s.history(&id).await;
        assert!(
            history
                .iter()
                .any(|h| h.starts_with("notice: withdraw notice sent to west-3pl")),
            "{history:#?}"
        );

        // East has every line now: one shipment without naming lines.
        let (status, answer) = s.ship(&id, Some("east-wh"), "1ZALL").await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(s.show(&id).await["status"], "shipped");

        // Refused with the reason: nothing is left to deliver; an unknown
        // order is 404.
        let (status, answer) = s.api(reqwest::Method::POST, &redeliver, None).await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(
            answer["error"],
            format!("order {id} is shipped: there is nothing left to deliver")
        );
        let (status, _) = s
            .api(reqwest::Method::POST, "/orders/shop-us:1/redeliver", None)
            .await;
        assert_eq!(status, 404);
        s.daemon.stop().await;
    }

    /// A part still queued when the order is redelivered is not sent: the
    /// redelivery replaced it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_part_still_queued_when_the_order_is_redelivered_is_skipped() {
        let s = Setup::start_with(Some("http://127.0.0.1:9/west")).await;
        let id = s.order(7005, "").await;
        s.wait_deliveries(&id, 1).await;
        let west_item = s.west_part_waiting(&id).await;
        s.apply_rules(ALL_EAST).await;
        let (status, done) = s
            .api(
                reqwest::Method::POST,
                &format!("/orders/{id}/redeliver"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{done}");
        let history = s.retried(&id, &west_item).await;
        assert!(
            history.iter().any(|h| h.starts_with("delivery_skipped: ")
                && h.contains("to west-3pl not sent: a redelivery replaced it")),
            "{history:#?}"
        );
        let got = s.deliveries(&id);
        assert_eq!(got.len(), 2, "east's part, then the redelivery: {got:?}");
        assert_eq!(skus(&got[1]), ["MUG-RED", "CUP-1"]);
        s.daemon.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_part_whose_lines_shipped_before_it_went_out_is_not_sent() {
        // The 3PL cannot be reached: its part waits in the outbox.
        let s = Setup::start_with(Some("http://127.0.0.1:9/west")).await;
        let id = s.order(7003, "").await;
        let got = s.wait_deliveries(&id, 1).await;
        assert_eq!(skus(&at(&got, "east-wh")), ["MUG-RED"]);
        let west_item = s.west_part_waiting(&id).await;

        // The cups ship anyway (from the 3PL's own stock, say): the part
        // that would have told the 3PL to ship them is not sent.
        let (status, answer) = s.ship(&id, Some("west-3pl"), "1ZWEST").await;
        assert_eq!(status, 202, "{answer}");
        let history = s.retried(&id, &west_item).await;
        assert!(
            history.iter().any(|h| h.starts_with("delivery_skipped: ")
                && h.contains("(part 2 of 2) not sent: its lines were shipped or refunded")),
            "{history:#?}"
        );
        assert_eq!(s.deliveries(&id).len(), 1, "only the east part went out");
        s.daemon.stop().await;
    }
}
