//! Orders whose lines go to several destinations (`route_lines`): what the
//! rules decide and what `rules apply` and its dry run say about it.

use crate::common;

use std::path::Path;

use chrono::Utc;
use switchyard::effects::Outbound;
use switchyard::ingest::{Ingest, LiveRules, Source};
use switchyard::ops;
use switchyard::rules::{RuleSet, parse_rules};
use switchyard::store::{Store, StoreOptions};
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

    // And back: the line follows the order's route again.
    let back = ops::apply_rules(&store, &outbound, &rules(EAST), false, now).unwrap();
    assert_eq!(
        back.value[0].describe(),
        "line 72 (CUP-1) west-3pl -> east-wh"
    );
    // A change of the order's route moves the lines that follow it without
    // naming them; a taken line that stays put is not named either.
    let (_dir2, store2) = stored_with(CUPS_WEST);
    let west_all = "default_route = \"west-3pl\"\n[[rule]]\nname = \"cups-from-3pl\"\nwhen = { sku = \"CUP-*\" }\nthen = { route_lines = { sku = \"CUP-*\", route = \"west-3pl\" } }\n";
    let moved = ops::apply_rules(&store2, &outbound, &rules(west_all), true, now).unwrap();
    assert_eq!(moved.value[0].describe(), "route east-wh -> west-3pl");
}
