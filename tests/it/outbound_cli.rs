//! `switchyard stock ...` and `switchyard ship ...` as a user runs them,
//! with the daemon down (the commands open the store themselves).

use crate::common;

use std::path::PathBuf;
use std::process::Output;

use chrono::Utc;
use common::daemon::{ConfigBuilder, command, stderr, stdout};
use serde_json::{Value, json};
use switchyard::store::{OrderWrite, Store, StoreOptions, WriteBatch};
use switchyard_contract::{Line, Order};

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigBuilder::new(dir.path())
            .without_listen()
            .destinations(vec![])
            .write();
        Setup { dir, config }
    }

    fn cli(&self, args: &[&str]) -> Output {
        command()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run the switchyard binary")
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn stock_set_import_and_show() {
    let s = Setup::new();
    let o = s.cli(&["stock", "set", "MUG-RED", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("MUG-RED: on hand 5"), "{}", stdout(&o));
    assert_eq!(
        json_of(&s.cli(&["stock", "show", "MUG-RED", "--json"])),
        json!({ "sku": "MUG-RED", "on_hand": 5, "reserved": 0, "available": 5,
                "reservations": [], "channels": [] })
    );

    // Every bad row is reported with its line; nothing is applied.
    let bad = s.file(
        "bad.csv",
        "sku,available\nTEE,3\nMUG-RED,-1\nCAP,lots\n,2\nTEE,4\n",
    );
    let o = s.cli(&["stock", "import", &bad]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    for needle in [
        format!("{bad}:3: available must not be negative (got -1)"),
        format!("{bad}:4: available \"lots\" is not a whole number"),
        format!("{bad}:5: sku is empty"),
        format!("{bad}:6: sku TEE is already set on line 2"),
        "nothing imported: fix the 4 bad rows".to_owned(),
    ] {
        assert!(e.contains(&needle), "{e} should contain {needle}");
    }
    assert_eq!(s.cli(&["stock", "show", "TEE"]).status.code(), Some(1));
    assert_eq!(
        json_of(&s.cli(&["stock", "show", "MUG-RED", "--json"]))["available"],
        5
    );

    let good = s.file("good.csv", "sku,available\r\nTEE,3\r\nMUG-RED,0\r\n");
    let o = s.cli(&["stock", "import", &good]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("2 stock levels set"), "{}", stdout(&o));
    assert_eq!(
        json_of(&s.cli(&["stock", "show", "TEE", "--json"]))["available"],
        3
    );
    assert_eq!(
        json_of(&s.cli(&["stock", "show", "MUG-RED", "--json"]))["available"],
        0
    );
    let text = stdout(&s.cli(&["stock", "show", "TEE"]));
    assert!(
        text.starts_with("TEE  on hand 3  reserved 0  available 3\n"),
        "{text}"
    );

    let o = s.cli(&["stock", "show", "NOPE"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no stock level for sku \"NOPE\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn ship_records_partial_and_repeat_shipments_and_refuses_bad_ones() {
    let s = Setup::new();
    {
        let store = Store::open(&s.dir.path().join("state"), StoreOptions::default()).unwrap();
        let mut o: Order = common::order(7, common::at(9, 0), "30.00");
        o.lines.push(Line {
            line_id: "72".into(),
            sku: Some("TEE".into()),
            title: "Tee".into(),
            quantity: 1,
            unit_price: "10.00".parse().unwrap(),
            total: "10.00".parse().unwrap(),
            shipped_quantity: 0,
            discount: rust_decimal::Decimal::ZERO,
            tax: None,
            refunded_quantity: 0,
            options: vec![],
        });
        o.lines[0].quantity = 2;
        let mut b = WriteBatch::new(Utc::now());
        b.orders.push(OrderWrite::FromChannel {
            order: switchyard::ingest::merge(
                &common::normalized(o),
                None,
                &switchyard::rules::RuleSet::default(),
                Utc::now(),
            ),
            expected_revision: None,
            outbox: vec![],
        });
        store.apply(b).unwrap();
        store.close().unwrap();
    }
    let id = "shop-test:7";
    let o = s.cli(&[
        "ship",
        id,
        "--carrier",
        "ups",
        "--tracking",
        "1Z-A",
        "--line",
        "MUG-RED=1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("order partially_shipped; tracking push queued"),
        "{}",
        stdout(&o)
    );
    let shown = json_of(&s.cli(&["orders", "show", id, "--json"]));
    assert_eq!(shown["status"], "partially_shipped");
    assert_eq!(shown["lines"][0]["shipped_quantity"], 1);
    assert_eq!(shown["shipments"][0]["tracking_number"], "1Z-A");
    let queued = json_of(&s.cli(&["outbox", "list", "--json"]));
    assert_eq!(queued.as_array().unwrap().len(), 1);
    assert_eq!(queued[0]["kind"], "push_tracking");
    assert_eq!(queued[0]["account"], "shop-test");

    let o = s.cli(&["ship", id, "--carrier", "ups", "--tracking", "1Z-A"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("already recorded"), "{}", stdout(&o));

    for (args, message) in [
        (vec!["--line", "NOPE=1"], "has no line with sku NOPE"),
        (
            vec!["--line", "MUG-RED=5"],
            "MUG-RED: 5 to ship but only 1 left",
        ),
        (vec!["--line", "MUG-RED"], "expected SKU=QTY"),
    ] {
        let mut all = vec!["ship", id, "--carrier", "ups", "--tracking", "1Z-B"];
        all.extend(args);
        let o = s.cli(&all);
        assert_eq!(o.status.code(), Some(1), "{all:?}");
        assert!(
            stderr(&o).contains(message),
            "{} should say {message}",
            stderr(&o)
        );
    }
    let o = s.cli(&[
        "ship",
        "shop-test:404",
        "--carrier",
        "ups",
        "--tracking",
        "1Z-B",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no order \"shop-test:404\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        json_of(&s.cli(&["outbox", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let o = s.cli(&["ship", id, "--carrier", "ups", "--tracking", "1Z-B"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("MUG-RED x1, TEE x1"), "{}", stdout(&o));
    assert_eq!(
        json_of(&s.cli(&["orders", "show", id, "--json"]))["status"],
        "shipped"
    );
}

/// An order split between two warehouses: each ships its own lines with
/// `ship --destination`, and `orders show` lists the parts.
#[test]
fn ship_destination_takes_only_the_lines_delivered_there() {
    let s = Setup::new();
    let id = "shop-test:8";
    {
        let store = Store::open(&s.dir.path().join("state"), StoreOptions::default()).unwrap();
        let mut o: Order = common::order(8, common::at(9, 0), "30.00");
        let mug = o.lines[0].clone();
        o.lines.push(Line {
            line_id: "82".into(),
            sku: Some("CUP-1".into()),
            quantity: 3,
            ..mug
        });
        let mut stored = switchyard::ingest::merge(
            &common::normalized(o),
            None,
            &switchyard::rules::RuleSet::default(),
            Utc::now(),
        );
        let part = |destination: &str, line: &str, index| switchyard::store::DeliveryPart {
            destination: destination.into(),
            delivery_id: format!("dlv_test{index}"),
            lines: vec![line.to_owned()],
            index,
            of: 2,
            delivered_at: Some(Utc::now()),
        };
        let first = stored.order.lines[0].line_id.clone();
        stored.parts = vec![part("east-wh", &first, 1), part("west-3pl", "82", 2)];
        let mut b = WriteBatch::new(Utc::now());
        b.orders.push(OrderWrite::FromChannel {
            order: stored,
            expected_revision: None,
            outbox: vec![],
        });
        store.apply(b).unwrap();
        store.close().unwrap();
    }
    let ship = |tracking: &str, destination: Option<&str>| {
        let mut args = vec!["ship", id, "--carrier", "ups", "--tracking", tracking];
        if let Some(d) = destination {
            args.extend(["--destination", d]);
        }
        s.cli(&args)
    };
    let o = ship("1Z-ANY", None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is split across east-wh and west-3pl"),
        "{}",
        stderr(&o)
    );
    let o = ship("1Z-WEST", Some("west-3pl"));
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = json_of(&s.cli(&["orders", "show", id, "--json"]));
    assert_eq!(shown["status"], "partially_shipped");
    assert_eq!(shown["shipments"][0]["lines"][0]["sku"], "CUP-1");
    assert_eq!(shown["lines"][0]["shipped_quantity"], 0);
    assert_eq!(shown["parts"][1]["destination"], "west-3pl");

    let text = stdout(&s.cli(&["orders", "show", id]));
    assert!(
        text.contains("deliveries (split by route_lines):"),
        "{text}"
    );
    assert!(
        text.contains("part 2 of 2  west-3pl  dlv_test2  delivered"),
        "{text}"
    );
    assert!(text.contains("lines 82 (CUP-1)"), "{text}");
    assert!(ship("1Z-EAST", Some("east-wh")).status.success());
    let shown = json_of(&s.cli(&["orders", "show", id, "--json"]));
    assert_eq!(shown["status"], "shipped");
}
