//! Units still owed, end to end: the daemon (`daemon::run`, in-process)
//! takes signed Shopify `orders/create` webhooks whose lines were partly or
//! wholly refunded before they arrived, and a destination sink on 127.0.0.1
//! shows what the warehouse is sent. Deliveries carry only the lines that
//! still owe units, an order whose open units are all refunded is stored but
//! never delivered, refunded units reserve no stock, and a shipment can only
//! take the units still owed.

use crate::common::{self, eventually};
use crate::shopify_outbound::{order_body_refunded, post_order_created};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::daemon::{ConfigBuilder, Destination, InProcess, REPO, ShopifyAccount};
use serde_json::{Value, json};
use switchyard::sim::{DestinationSink, Simulator};
use switchyard_contract::Channel;

const TOKEN: &str = "admin-token-for-owed-units-tests";
const SECRET: &str = "webhook-secret-of-shop-owed";
const ACCOUNT: &str = "shop-owed";

struct Setup {
    sim: Simulator,
    sink: DestinationSink,
    daemon: InProcess,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
            .await
            .unwrap();
        let sink = DestinationSink::start(BTreeMap::from([(
            "east-wh".to_owned(),
            b"owed-east-secret".to_vec(),
        )]))
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.toml");
        std::fs::write(&rules, "default_route = \"east-wh\"\n").unwrap();
        let config = ConfigBuilder::new(dir.path())
            .rules(&rules)
            .shutdown_timeout("5s")
            .admin_token(TOKEN)
            .account(
                ShopifyAccount::new(ACCOUNT, &sim.base_url(Channel::Shopify))
                    .webhook_secret(SECRET),
            )
            .destinations(vec![
                Destination::webhook("east-wh", &sink.url("east-wh")).secret("owed-east-secret"),
            ])
            .write();
        let daemon = InProcess::start(&config).await;
        daemon.synced(&[ACCOUNT]).await;
        Setup {
            sim,
            sink,
            daemon,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn webhook(&self, id: u64, lines: &[(&str, u32, u32)]) {
        let url = self.daemon.url(&format!("/webhooks/{ACCOUNT}"));
        let body = order_body_refunded(id, lines);
        post_order_created(&self.http, &url, ACCOUNT, SECRET, id, body).await;
    }

    /// An admin API call: its status and JSON answer.
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.daemon.url(&format!("/api/v1{path}")))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn available(&self, sku: &str) -> Value {
        let (status, view) = self
            .admin(reqwest::Method::GET, &format!("/stock/{sku}"), None)
            .await;
        assert_eq!(status, 200, "{view}");
        view["available"].clone()
    }

    async fn stop(self) {
        let (_report, store) = tokio::time::timeout(Duration::from_secs(10), self.daemon.stop())
            .await
            .expect("the daemon did not stop within 10 s");
        store.close().unwrap();
        self.sink.stop().await;
        self.sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_carry_only_units_still_owed_and_all_refunded_orders_are_not_delivered() {
    let s = Setup::start().await;
    let levels: Vec<Value> = ["MUG-A", "BOWL-B", "PLATE-C", "LAMP-D"]
        .iter()
        .map(|sku| json!({ "sku": sku, "available": 10 }))
        .collect();
    let (status, receipt) = s
        .admin(reqwest::Method::PUT, "/stock", Some(Value::Array(levels)))
        .await;
    assert_eq!(status, 202, "{receipt}");

    // Two of three lines refunded in full, the third in part.
    let partly = 7_100_001;
    s.webhook(
        partly,
        &[("MUG-A", 1, 1), ("BOWL-B", 2, 2), ("PLATE-C", 3, 1)],
    )
    .await;
    // Every open unit refunded.
    let refunded = 7_100_002;
    s.webhook(refunded, &[("LAMP-D", 2, 2)]).await;
    // An ordinary order after them: once it is delivered, anything queued
    // before it would have gone too.
    let plain = 7_100_003;
    s.webhook(plain, &[("MUG-A", 1, 0)]).await;

    let delivered = |id: u64| {
        let want = format!("{ACCOUNT}:{id}");
        s.sink
            .received()
            .into_iter()
            .filter(move |d| d.order.as_ref().is_some_and(|o| o.id == want))
    };
    // Delivered, and taken off the queue (once the sink's answer came back):
    // nothing else is left to go out.
    eventually(
        "the deliveries to go out and leave the queue",
        Duration::from_secs(10),
        async || {
            let (status, outbox) = s.admin(reqwest::Method::GET, "/outbox", None).await;
            assert_eq!(status, 200);
            let queued = outbox
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["kind"] == "deliver");
            !queued && delivered(plain).next().is_some() && delivered(partly).next().is_some()
        },
    )
    .await;

    // The partly refunded order reaches the warehouse with its one line that
    // still owes units: 3 ordered, 1 refunded, 2 to ship.
    let d = delivered(partly).next().unwrap();
    assert!(d.signature_ok);
    let body = d.order.unwrap();
    let lines: Vec<(Option<&str>, u32, u32, u32)> = body
        .lines
        .iter()
        .map(|l| {
            (
                l.sku.as_deref(),
                l.quantity,
                l.refunded_quantity,
                l.open_quantity(),
            )
        })
        .collect();
    assert_eq!(lines, [(Some("PLATE-C"), 3, 1, 2)]);
    // The stored order keeps every line as the channel sent it.
    let (_, shown) = s
        .admin(
            reqwest::Method::GET,
            &format!("/orders/{ACCOUNT}:{partly}"),
            None,
        )
        .await;
    assert_eq!(shown["lines"].as_array().unwrap().len(), 3, "{shown}");

    // The wholly refunded order is stored and counted, never delivered.
    assert_eq!(delivered(refunded).count(), 0);
    let (status, shown) = s
        .admin(
            reqwest::Method::GET,
            &format!("/orders/{ACCOUNT}:{refunded}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["route"], "east-wh");
    assert!(shown["delivered"].is_null(), "{shown}");

    // Refunded units hold no stock: only PLATE-C's 2 owed and the plain
    // order's MUG-A are reserved.
    assert_eq!(s.available("MUG-A").await, 9);
    assert_eq!(s.available("BOWL-B").await, 10);
    assert_eq!(s.available("PLATE-C").await, 8);
    assert_eq!(s.available("LAMP-D").await, 10);

    // A shipment takes the units still owed, no more: units refunded are
    // the order's state (409), not a malformed request.
    let ship = |lines: Value, tracking: &str| {
        json!({ "order_id": format!("{ACCOUNT}:{partly}"), "carrier": "ups",
                "tracking_number": tracking, "lines": lines })
    };
    let (status, refused) = s
        .admin(
            reqwest::Method::POST,
            "/shipments",
            Some(ship(
                json!([{ "sku": "PLATE-C", "quantity": 3 }]),
                "1ZOWED1",
            )),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("PLATE-C: 3 to ship but only 2 left to ship"),
        "{refused}"
    );
    let (status, refused) = s
        .admin(
            reqwest::Method::POST,
            "/shipments",
            Some(ship(json!([{ "sku": "MUG-A", "quantity": 1 }]), "1ZOWED2")),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    let (status, shipped) = s
        .admin(
            reqwest::Method::POST,
            "/shipments",
            Some(ship(Value::Null, "1ZOWED3")),
        )
        .await;
    assert_eq!(status, 202, "{shipped}");
    assert_eq!(shipped["status"], "shipped", "{shipped}");
    assert_eq!(shipped["shipment"]["lines"][0]["quantity"], 2, "{shipped}");

    s.stop().await;
}
