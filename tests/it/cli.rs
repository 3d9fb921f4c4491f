//! The `switchyard` binary as a user runs it: exit statuses, what goes to
//! stdout and stderr, and the JSON shapes the docs name.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::Utc;
use common::daemon::{BIN, ConfigBuilder, REPO, command, stderr, stdout};
use common::*;
use switchyard::ingest::{Ingest, LiveRules, Source};
use switchyard::rules::load_rules;
use switchyard::store::{Job, NewOutboxItem, Store, StoreOptions};
use switchyard_contract::OrderStatus;

fn run(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .expect("run the switchyard binary")
}

/// The JSON document a successful command printed.
fn json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// A config whose store lives in a temporary folder, with the example rules.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigBuilder::new(dir.path()).without_listen().write();
        Setup { dir, config }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Stores orders through the real ingest path with the example rules,
    /// then closes the store.
    fn seed(&self, orders: Vec<switchyard_contract::Order>) {
        let store = Store::open(&self.state(), StoreOptions::default()).unwrap();
        let dests = ["east-wh".to_string(), "west-3pl".to_string()];
        let (rules, _) = load_rules(&Path::new(REPO).join("config/rules.toml"), &dests).unwrap();
        let ingest = Ingest::new(store.clone(), LiveRules::new(rules));
        ingest
            .receive(
                ACCOUNT,
                orders.into_iter().map(normalized).collect(),
                Source::Fetch,
                Utc::now(),
            )
            .unwrap();
        store.flush_blocking().unwrap();
    }
}

#[test]
fn check_accepts_the_example_config_and_rules() {
    let out = run(&[
        "--config",
        &format!("{REPO}/config/switchyard.toml"),
        "check",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("config/switchyard.toml: ok"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("config/rules.toml: ok"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_names_an_unknown_key_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let example = std::fs::read_to_string(format!("{REPO}/config/switchyard.toml")).unwrap();
    let text = example.replacen("[daemon]\n", "[daemon]\nlistn = \"127.0.0.1:1\"\n", 1);
    std::fs::write(&path, &text).unwrap();
    let line = text.lines().position(|l| l.starts_with("listn")).unwrap() + 1;
    let out = run(&["--config", path.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:{line}:1: ", path.display())) && err.contains("listn"),
        "{err}"
    );
    assert!(err.contains("listen"), "suggests the valid key: {err}");
}

#[test]
fn orders_list_and_show_print_what_is_stored() {
    let setup = Setup::new();
    let mut shipped = order(2, at(9, 30), "12.50");
    shipped.status = OrderStatus::Shipped;
    shipped.placed_at = at(9, 0);
    setup.seed(vec![order(1, at(9, 0), "700.00"), shipped]);

    let out = setup.cli(&["orders", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = json(&out);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    // Placed at the same minute: newest first is (placed, id) descending.
    assert_eq!(ids, ["shop-test:2", "shop-test:1"], "newest first");
    let out = setup.cli(&["orders", "list", "--oldest", "--json"]);
    let list: serde_json::Value = json(&out);
    assert_eq!(list[0]["id"], "shop-test:1", "--oldest: oldest first");
    assert_eq!(list[0]["totals"]["total"], "700.00");
    // The example rules hold orders of 500 or more for review.
    assert!(list[0]["hold"].is_string(), "{}", list[0]);

    let out = setup.cli(&["orders", "list", "--status", "shipped", "--json"]);
    let list: serde_json::Value = json(&out);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "shop-test:2");

    let out = setup.cli(&["orders", "list", "--held"]);
    let text = stdout(&out);
    assert!(text.starts_with("ID "), "{text}");
    assert!(
        text.contains("shop-test:1") && !text.contains("shop-test:2"),
        "{text}"
    );

    // One order a page: the command says how to get the next one, and the
    // next one is the other order; after it, nothing more is promised.
    let out = setup.cli(&["orders", "list", "--limit", "1", "--json"]);
    let list: serde_json::Value = json(&out);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "shop-test:2");
    let hint = stderr(&out);
    let cursor = hint
        .split("--after ")
        .nth(1)
        .map(str::trim)
        .unwrap_or_else(|| panic!("no next-page hint: {hint}"));
    assert!(
        hint.contains("switchyard orders list --limit 1 --json --after"),
        "{hint}"
    );
    let out = setup.cli(&[
        "orders", "list", "--limit", "1", "--json", "--after", cursor,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = json(&out);
    assert_eq!(list[0]["id"], "shop-test:1");
    let out = setup.cli(&["orders", "list", "--limit", "1", "--after", cursor]);
    let text = stdout(&out);
    assert!(text.contains("shop-test:1"), "{text}");
    let out = setup.cli(&["orders", "list", "--limit", "2"]);
    let text = stdout(&out);
    assert!(!text.contains("--after"), "two orders fit one page: {text}");
    let out = setup.cli(&["orders", "list", "--after", "garbage!"]);
    assert!(!out.status.success(), "a bad cursor fails");
    assert!(
        stderr(&out).contains("not a page cursor"),
        "{}",
        stderr(&out)
    );

    let out = setup.cli(&["orders", "show", "shop-test:2", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: serde_json::Value = json(&out);
    assert_eq!(shown["status"], "shipped");
    assert_eq!(shown["history"][0]["kind"], "created");
    assert!(shown["history"][0]["at"].is_string());

    let out = setup.cli(&["orders", "show", "shop-test:2"]);
    let text = stdout(&out);
    assert!(
        text.contains("status shipped") && text.contains("history:"),
        "{text}"
    );
}

#[test]
fn a_bad_filter_or_unknown_order_is_a_clear_error() {
    let setup = Setup::new();
    setup.seed(vec![]);
    let out = setup.cli(&["orders", "list", "--status", "lost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'lost' for '--status <STATUS>'"),
        "{}",
        stderr(&out)
    );
    let out = setup.cli(&["orders", "show", "shop-test:404"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no order \"shop-test:404\""),
        "{}",
        stderr(&out)
    );
}

/// A command that reads the store, pointed by its config at a folder with
/// no store in it (a typo, the wrong config, a daemon never started), says
/// so, naming the folder and the config, and creates nothing there: an
/// empty store made there would answer "no orders". A command that stores
/// something new (`stock set`, before the daemon's first start) makes it.
#[test]
fn a_reading_command_refuses_a_folder_with_no_store_and_creates_none() {
    let setup = Setup::new();
    let state = setup.state();
    let config = setup.config.display().to_string();
    let reads: [&[&str]; 11] = [
        &["orders", "list"],
        &["orders", "list", "--json"],
        &["orders", "show", "shop-test:1"],
        &["orders", "hold", "shop-test:1", "--reason", "check"],
        &["orders", "release", "shop-test:1"],
        &["outbox", "list"],
        &["outbox", "drop", "00000000000000000001"],
        &["stock", "show", "MUG-1"],
        &[
            "ship",
            "shop-test:1",
            "--carrier",
            "ups",
            "--tracking",
            "1Z1",
        ],
        &["rules", "apply", "--dry-run"],
        &["store", "copy", "--to", "/nonexistent/copy"],
    ];
    // Missing, then as systemd makes it before the first start, then a
    // folder of something else.
    type Make = fn(&Path);
    let cases: [(&str, Make); 3] = [
        ("the folder does not exist", |_| {}),
        ("the folder is empty", |d| std::fs::create_dir(d).unwrap()),
        ("the folder holds other files", |d| {
            std::fs::write(d.join("notes.txt"), "not a store").unwrap();
        }),
    ];
    for (why, make) in cases {
        make(&state);
        let before = listing(&state);
        for args in reads {
            let out = setup.cli(args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?} ({why}): {err}");
            assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
            assert!(
                err.contains(&format!("no store at {}: {why}", state.display()))
                    && err.contains(&format!("check daemon.state_dir in {config}"))
                    && err.contains("the daemon creates the store at its first start"),
                "{args:?}: {err}"
            );
            assert_eq!(
                listing(&state),
                before,
                "{args:?} changed {}",
                state.display()
            );
        }
    }

    std::fs::remove_file(state.join("notes.txt")).unwrap();
    let out = setup.cli(&["stock", "set", "MUG-1", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = setup.cli(&["stock", "show", "MUG-1", "--json"]);
    assert_eq!(json(&out)["on_hand"], 5);
}

/// The names in `dir`, or `None` when it does not exist.
fn listing(dir: &Path) -> Option<Vec<std::ffi::OsString>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    Some(names)
}

#[test]
fn hold_and_release_change_the_order_and_its_history() {
    let setup = Setup::new();
    setup.seed(vec![order(3, at(9, 0), "20.00")]);
    let out = setup.cli(&["orders", "hold", "shop-test:3", "--reason", "address check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = setup.cli(&["orders", "list", "--held", "--json"]);
    let list: serde_json::Value = json(&out);
    assert_eq!(list[0]["hold"], "address check");
    let out = setup.cli(&["orders", "release", "shop-test:3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = setup.cli(&["orders", "show", "shop-test:3", "--json"]);
    let shown: serde_json::Value = json(&out);
    assert!(shown["hold"].is_null());
    let kinds: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "hold", "release"]);
    let out = setup.cli(&["orders", "release", "shop-test:3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not on hold"));
}

#[test]
fn a_store_held_by_another_process_is_named_as_such() {
    let setup = Setup::new();
    let _held = Store::open(&setup.state(), StoreOptions::default()).unwrap();
    let out = setup.cli(&["orders", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("in use by another process"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn outbox_list_on_an_empty_queue() {
    let setup = Setup::new();
    setup.seed(vec![]);
    let out = setup.cli(&["outbox", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");
    let out = setup.cli(&["outbox", "drop", "00000000000000000001"]);
    assert_eq!(out.status.code(), Some(1));
}

/// `outbox list` shows a page, says how to get the next one (on stderr with
/// `--json`), and the pages together are the whole queue, in queue order.
#[test]
fn outbox_list_pages_and_says_how_to_get_the_next_page() {
    let setup = Setup::new();
    let store = Store::open(&setup.state(), StoreOptions::default()).unwrap();
    let items = ["MUG", "TEE", "CAP"].map(stock_push).into();
    store.outbox_add(items, Utc::now()).unwrap();
    store.close().unwrap();
    let ids = |o: &Output| -> Vec<String> {
        json(o)
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = ids(&setup.cli(&["outbox", "list", "--json"]));
    assert_eq!(all.len(), 3);

    let out = setup.cli(&["outbox", "list", "--limit", "2"]);
    let text = stdout(&out);
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains(&all[0]) && text.contains(&all[1]), "{text}");
    assert!(!text.contains(&format!("{}  ", all[2])), "{text}");
    let hint = format!(
        "more items may match: switchyard outbox list --limit 2 --after {}\n",
        all[1]
    );
    assert!(text.ends_with(&hint), "{text}");
    let out = setup.cli(&["outbox", "list", "--limit", "2", "--json"]);
    assert_eq!(ids(&out), all[..2]);
    assert_eq!(
        stderr(&out),
        format!(
            "more items may match: switchyard outbox list --limit 2 --json --after {}\n",
            all[1]
        )
    );
    let out = setup.cli(&[
        "outbox", "list", "--limit", "2", "--json", "--after", &all[1],
    ]);
    assert_eq!(ids(&out), all[2..]);
    assert_eq!(stderr(&out), "", "the last page promises nothing more");

    // Dead letters page the same way.
    let store = Store::open(&setup.state(), StoreOptions::default()).unwrap();
    store.outbox_kill(&all[0], "400 unknown sku").unwrap();
    store.outbox_kill(&all[2], "400 unknown sku").unwrap();
    store.close().unwrap();
    let out = setup.cli(&["outbox", "list", "--dead", "--limit", "1"]);
    let text = stdout(&out);
    assert!(
        text.contains(&all[0]) && !text.contains(&format!("{}  ", all[2])),
        "{text}"
    );
    assert!(
        text.contains("1 dead letter on this page: fix the cause"),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(
            "more items may match: switchyard outbox list --dead --limit 1 --after {}\n",
            all[0]
        )),
        "{text}"
    );
    let out = setup.cli(&["outbox", "list", "--dead", "--after", &all[0]]);
    let text = stdout(&out);
    assert!(
        text.contains(&all[2]) && text.contains("1 dead letter: fix"),
        "{text}"
    );
    assert!(!text.contains("more items"), "{text}");
    assert_eq!(
        ids(&setup.cli(&["outbox", "list", "--json"])),
        [all[1].clone()]
    );

    let out = setup.cli(&["outbox", "list", "--after", "garbage!"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\"garbage!\" is not a page cursor"),
        "{}",
        stderr(&out)
    );
    for command in ["outbox", "orders"] {
        for bad in ["0", "lots"] {
            let out = setup.cli(&[command, "list", "--limit", bad]);
            assert!(!out.status.success());
            let err = stderr(&out);
            assert!(err.contains(&format!("'{bad}'")), "{err}");
            assert!(
                err.contains("expected a number of items per page from 1 to 1000"),
                "{err}"
            );
        }
    }
}

#[test]
fn the_demo_runs_with_no_credentials_and_exits_cleanly() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("demo");
    let out = std::process::Command::new(BIN)
        .args(["demo", "--state", state_dir.to_str().unwrap()])
        .current_dir(REPO)
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("switchyard demo"), "{text}");
    // The whole loop, told in order: synced, webhook stored, each order's
    // decision with its reason, delivered with valid signatures (and why the
    // others were not), shipped, tracking and stock pushed back, nothing failed.
    let steps: Vec<usize> = (1..=8)
        .map(|n| {
            text.find(&format!("\n{n}. "))
                .unwrap_or_else(|| panic!("step {n}: {text}"))
        })
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "steps in order: {text}"
    );
    assert!(
        text.contains("shop-us      shopify  6 orders in 2 pages"),
        "{text}"
    );
    assert!(
        text.contains("ebay-us      ebay     3 orders in 1 page"),
        "{text}"
    );
    assert!(
        text.contains("etsy-main    etsy     3 orders in 1 page"),
        "{text}"
    );
    // Amazon's backfill is a series of sweeps; its five orders are read once.
    assert!(
        text.contains("amazon-na    amazon   5 orders in "),
        "{text}"
    );
    // Every account's check passes against the simulator: failures other
    // scenarios recorded are not the demo's.
    assert!(
        !stderr(&out).contains("refused or did not answer the check"),
        "{}",
        stderr(&out)
    );
    assert!(
        text.contains("orders-create -> HTTP 200 stored: 1 new"),
        "{text}"
    );
    // eBay's signed ORDER_CONFIRMATION only names its order: it is fetched.
    assert!(
        text.contains("order-confirmation -> HTTP 200 queued: 1 order to fetch"),
        "{text}"
    );
    // Amazon's ORDER_CHANGE names its order too.
    assert!(
        text.contains("amazon-na: order-change -> HTTP 200 queued: 1 order to fetch"),
        "{text}"
    );
    assert!(text.contains("decide each of the 19 orders"), "{text}");
    // Each decision starts in one column, after the longest order id (an
    // Amazon one): "   <id padded> <decision>".
    let width = "amazon-na:111-9000003-0000003".len();
    let decided = |id: &str, decision: &str| format!("   {id:<width$} {decision}");
    let step3: Vec<&str> = text
        .split("decide each of the 19 orders:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default()
        .lines()
        .collect();
    assert_eq!(step3.len(), 19, "{text}");
    for line in &step3 {
        let (id, decision) = line[3..].split_at(width);
        assert!(
            !id.starts_with(' ') && decision.starts_with(' ') && !decision[1..].starts_with(' '),
            "decision not in its column: {line:?}"
        );
    }
    assert!(
        text.contains(&decided(
            "ebay-us:12-04300-00004",
            "ready -> route east-wh (rule international), CUP-1 -> west-3pl (rule cups-from-3pl)"
        )),
        "{text}"
    );
    // Etsy's webhook only names its receipt: the daemon fetches it.
    assert!(
        text.contains("etsy-main: order-paid -> HTTP 200 queued: 1 order to fetch"),
        "{text}"
    );
    assert!(
        text.contains(&decided(
            "etsy-main:2803",
            "pending -> route east-wh (default_route), held: awaiting payment (rule awaiting-payment)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&decided(
            "shop-us:5551234569",
            "pending -> route east-wh (default_route), held: awaiting payment (rule awaiting-payment)"
        )),
        "{text}"
    );
    assert!(
        text.contains("4. Deliveries to the warehouses: 13 (13 with a valid signature)"),
        "{text}"
    );
    // The eBay order with a cup and a mug goes out in two parts, each
    // shipped by the warehouse that has it.
    assert!(
        text.contains("ebay-us:12-04300-00004 (part 2 of 2: MUG-RED)")
            && text.contains("ebay-us:12-04300-00004 (part 1 of 2: CUP-1)"),
        "{text}"
    );
    assert!(
        text.contains("ebay-us:12-04300-00004 from east-wh: ups")
            && text.contains("ebay-us:12-04300-00004 from west-3pl: ups"),
        "{text}"
    );
    assert!(
        text.contains("not delivered: shop-us:5551234569 (on hold: awaiting payment)")
            && text.contains("not delivered: shop-us:5551234568 (already shipped on the channel)")
            && text.contains("not delivered: ebay-us:12-04300-00003 (cancelled)")
            // Amazon ships its FBA orders from its own stock, even a ready one.
            && text.contains("not delivered: amazon-na:111-9000005-0000005 (fulfilled by amazon")
            && text.contains("not delivered: amazon-na:111-9000004-0000004 (fulfilled by amazon"),
        "{text}"
    );
    assert_eq!(
        text.matches("recorded; the tracking push to its channel is queued")
            .count(),
        12,
        "{text}"
    );
    assert!(
        text.contains("4 tracking numbers (Shopify fulfillmentCreate)"),
        "{text}"
    );
    assert!(
        text.contains("4 tracking numbers (eBay createShippingFulfillment)"),
        "{text}"
    );
    assert!(
        // Of the eBay orders' SKUs two have published offers; one is only a
        // draft and one is not on eBay, so those are not listed there.
        text.contains("2 stock levels (eBay bulkUpdatePriceQuantity)"),
        "{text}"
    );
    assert!(
        // Every SKU of the shop's orders is listed there (learned from the
        // polled orders), so each gets its level.
        text.contains("7 stock levels (Shopify inventorySetQuantities)"),
        "{text}"
    );
    assert!(
        text.contains("2 tracking numbers (Etsy createReceiptShipment)"),
        "{text}"
    );
    assert!(
        // The Etsy orders' SKUs sit on two listings (and one not for sale
        // there): one read-modify-write per listing, both SKUs of the mug
        // listing in one.
        text.contains("2 listing inventories (Etsy updateListingInventory)"),
        "{text}"
    );
    assert!(
        text.contains("2 tracking numbers (Amazon confirmShipment)"),
        "{text}"
    );
    assert!(
        // The SKUs of the merchant-fulfilled Amazon orders; the FBA-only one
        // is Amazon's to count.
        text.contains("4 stock levels (Amazon patchListingsItem)"),
        "{text}"
    );
    assert!(text.contains("8. Failures: none"), "{text}");
    assert!(text.contains(" UTC)"), "times carry their zone: {text}");

    // The store is kept, and the commands it suggests work on it.
    let config = state_dir.join("switchyard.toml");
    assert!(
        text.contains(&format!(
            "--config {} rules explain --order amazon-na:111-9000003-0000003",
            config.display()
        )),
        "{text}"
    );
    let out = std::process::Command::new(BIN)
        .args([
            "--config",
            config.to_str().unwrap(),
            "orders",
            "list",
            "--json",
        ])
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let orders: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(orders.as_array().unwrap().len(), 19);

    // Amazon ships its FBA orders itself: stored and tagged like any order,
    // never delivered, and a shipment recorded for one is refused, so no
    // tracking is ever queued for its channel.
    let cli = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("SWITCHYARD_CONFIG")
            .output()
            .unwrap()
    };
    let fba = "amazon-na:111-9000005-0000005";
    let out = cli(&["orders", "show", fba, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["fulfillment"], "channel", "{shown}");
    assert_eq!(shown["status"], "ready", "{shown}");
    assert!(shown["delivered"].is_null(), "{shown}");
    assert!(
        shown["tags"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("fulfilled-by-channel")),
        "{shown}"
    );
    let out = cli(&[
        "ship",
        fba,
        "--carrier",
        "ups",
        "--tracking",
        "1ZFBA0000000001",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is fulfilled by amazon"),
        "{}",
        stderr(&out)
    );
    for dead in [false, true] {
        let args: &[&str] = if dead {
            &["outbox", "list", "--dead", "--json"]
        } else {
            &["outbox", "list", "--json"]
        };
        let out = cli(args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stdout(&out).contains(fba), "{}", stdout(&out));
    }

    // A second run replaces the demo's own folder; any other folder is refused.
    let again = std::process::Command::new(BIN)
        .args(["demo", "--state", state_dir.to_str().unwrap()])
        .current_dir(REPO)
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    let other = state.path().join("mine");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep me").unwrap();
    let refused = std::process::Command::new(BIN)
        .args(["demo", "--state", other.to_str().unwrap()])
        .current_dir(REPO)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("was not made by `switchyard demo`"),
        "{}",
        stderr(&refused)
    );
    assert!(other.join("notes.txt").exists());
    assert!(Path::new(REPO).join("config/switchyard.toml").exists());
}

#[test]
fn the_projects_rule_cases_pass_through_rules_test() {
    let out = run(&[
        "--config",
        &format!("{REPO}/config/switchyard.toml"),
        "rules",
        "test",
        &format!("{REPO}/tests/rules"),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.lines().filter(|l| l.starts_with("PASS ")).count() >= 50,
        "{text}"
    );
    assert!(text.trim_end().ends_with(" passed, 0 failed"), "{text}");
}

#[test]
fn rules_test_exits_1_on_a_failing_case() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("wrong.toml");
    std::fs::write(
        &case,
        format!(
            "order = \"{REPO}/tests/rules/orders/us-standard.json\"\n[[case]]\nname = \"expects the wrong route\"\n[case.expect]\nroute = \"west-3pl\"\n"
        ),
    )
    .unwrap();
    let out = run(&[
        "--config",
        &format!("{REPO}/config/switchyard.toml"),
        "rules",
        "test",
        case.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("FAIL "), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("0 passed, 1 failed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn rules_explain_reports_every_rule_and_the_result() {
    let out = run(&[
        "--config",
        &format!("{REPO}/config/switchyard.toml"),
        "rules",
        "explain",
        "--file",
        &format!("{REPO}/tests/rules/orders/us-standard.json"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = json(&out);
    let rules = v["rules"].as_array().unwrap();
    assert!(rules.len() >= 10);
    for r in rules {
        assert!(r["name"].is_string());
        // `failed` is null exactly when the rule matched.
        assert_eq!(
            r["matched"].as_bool().unwrap(),
            r["failed"].is_null(),
            "{r}"
        );
    }
    for key in ["tags", "route", "hold", "priority"] {
        assert!(v["result"].get(key).is_some(), "{v}");
    }
    assert!(v["order"].is_string());
}

#[test]
fn rules_explain_file_reads_what_orders_show_json_prints() {
    let setup = Setup::new();
    setup.seed(vec![
        order(3, at(9, 0), "20.00"),
        order(5, at(9, 0), "900.00"),
    ]);
    let out = setup.cli(&["orders", "hold", "shop-test:3", "--reason", "address check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = setup.dir.path().join("shown.json");
    let file_arg = file.to_str().unwrap();
    let mut explained = Vec::new();
    for id in ["shop-test:3", "shop-test:5"] {
        let shown = setup.cli(&["orders", "show", id, "--json"]);
        assert!(shown.status.success(), "{}", stderr(&shown));
        std::fs::write(&file, &shown.stdout).unwrap();
        let from_file = json(&setup.cli(&["rules", "explain", "--file", file_arg, "--json"]));
        let stored = json(&setup.cli(&["rules", "explain", "--order", id, "--json"]));
        // The same rules, the same order: the same verdict, hand-set holds
        // included. (A file's tags all count as the channel's, so the reasons
        // that list tags may differ.)
        assert_eq!(from_file["result"], stored["result"], "{id}");
        let matched = |v: &serde_json::Value| -> Vec<(String, bool)> {
            v["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["name"].to_string(), r["matched"].as_bool().unwrap()))
                .collect()
        };
        assert_eq!(matched(&from_file), matched(&stored), "{id}");
        explained.push(from_file);
    }
    assert_eq!(explained[0]["result"]["hold"], "address check");
    assert_eq!(explained[0]["result"]["hold_from"], "manual");
    assert_eq!(
        explained[1]["result"]["hold"],
        "manual review: order over 500"
    );
    assert_eq!(explained[1]["result"]["hold_from"], "rule");

    // A document that is not an order says which field is wrong, and where.
    std::fs::write(&file, r#"{ "id": "x", "history": [] }"#).unwrap();
    let out = setup.cli(&["rules", "explain", "--file", file_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("not an order as `orders show --json` prints it: order: missing field"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&file, "{ \"id\": \"x\",\n  \"bogus\": 1 }").unwrap();
    let out = setup.cli(&["rules", "explain", "--file", file_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("shown.json:2:9: not a canonical order: unknown field `bogus`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rules_apply_dry_run_lists_changes_and_writes_nothing() {
    let setup = Setup::new();
    // Stored without rules: applying the example rules routes and holds them.
    let store = Store::open(&setup.state(), StoreOptions::default()).unwrap();
    Ingest::new(store.clone(), LiveRules::default())
        .receive(
            ACCOUNT,
            vec![normalized(order(5, at(9, 0), "900.00"))],
            Source::Fetch,
            Utc::now(),
        )
        .unwrap();
    drop(store);
    let out = setup.cli(&["rules", "apply", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("shop-test:5: ") && text.contains("route none -> "),
        "{text}"
    );
    assert!(text.contains("1 order would change"), "{text}");
    let shown = setup.cli(&["orders", "show", "shop-test:5", "--json"]);
    let v: serde_json::Value = json(&shown);
    assert!(v["route"].is_null(), "dry run wrote: {v}");

    let out = setup.cli(&["rules", "apply", "--json"]);
    let changes: serde_json::Value = json(&out);
    assert_eq!(changes[0]["id"], "shop-test:5");
    assert!(changes[0]["after"]["route"].is_string());
    let shown = setup.cli(&["orders", "show", "shop-test:5", "--json"]);
    let v: serde_json::Value = json(&shown);
    assert_eq!(v["route"], changes[0]["after"]["route"]);
    assert_eq!(
        v["history"].as_array().unwrap().last().unwrap()["kind"],
        "rules_apply"
    );
    // Applying again changes nothing.
    let out = setup.cli(&["rules", "apply"]);
    assert!(
        stdout(&out).contains("0 orders changed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn releasing_a_rule_hold_keeps_it_released_when_rules_run_again() {
    let setup = Setup::new();
    setup.seed(vec![order(6, at(9, 0), "800.00")]);
    let out = setup.cli(&["orders", "show", "shop-test:6", "--json"]);
    let v: serde_json::Value = json(&out);
    assert!(
        v["hold"].is_string(),
        "the example rules hold large orders: {v}"
    );
    assert!(
        setup
            .cli(&["outbox", "list", "--json"])
            .stdout
            .starts_with(b"[]"),
        "held: not delivered"
    );
    assert!(
        setup
            .cli(&["orders", "release", "shop-test:6"])
            .status
            .success()
    );
    let queued = json(&setup.cli(&["outbox", "list", "--json"]));
    assert_eq!(
        queued.as_array().unwrap().len(),
        1,
        "released: its delivery is queued: {queued}"
    );
    assert_eq!(queued[0]["kind"], "deliver");
    let out = setup.cli(&["rules", "apply"]);
    assert!(
        stdout(&out).contains("0 orders changed"),
        "{}",
        stdout(&out)
    );
    let out = setup.cli(&["orders", "show", "shop-test:6", "--json"]);
    let v: serde_json::Value = json(&out);
    assert!(v["hold"].is_null(), "{v}");
}

#[test]
fn replay_plays_recorded_traffic_through_the_rules_and_compares_rule_files() {
    let config = format!("{REPO}/config/switchyard.toml");
    let scenario = format!("{REPO}/fixtures/shopify/poll-non-ascii");
    let out = run(&["--config", &config, "replay", &scenario, "--json"]);
    let orders = json(&out);
    let orders = orders.as_array().unwrap();
    assert!(!orders.is_empty());
    assert!(
        orders
            .iter()
            .all(|o| o["id"].as_str().unwrap().starts_with("replay:"))
    );
    assert!(
        orders.iter().any(|o| o["route"].is_string()),
        "the example rules route them"
    );

    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "default_route = \"west-3pl\"\n").unwrap();
    let out = run(&[
        "--config",
        &config,
        "replay",
        &scenario,
        "--rules",
        &format!("{REPO}/config/rules.toml"),
        "--rules",
        other.to_str().unwrap(),
        "--json",
    ]);
    let changes = json(&out);
    let changes = changes.as_array().unwrap();
    assert!(!changes.is_empty());
    for c in changes {
        assert_eq!(c["after"]["route"], "west-3pl", "{c}");
        assert_ne!(c["before"], c["after"]);
    }
    let out = run(&["--config", &config, "replay", &format!("{REPO}/fixtures")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "fixtures/ is not a channel folder"
    );
    assert!(
        stderr(&out).contains("no scenario folders"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn releasing_lifts_a_rule_hold_that_a_hand_set_hold_covered() {
    let setup = Setup::new();
    setup.seed(vec![order(7, at(9, 0), "800.00")]);
    let shown = json(&setup.cli(&["orders", "show", "shop-test:7", "--json"]));
    let rule_hold = shown["hold"].as_str().unwrap().to_owned();
    let out = setup.cli(&[
        "orders",
        "hold",
        "shop-test:7",
        "--reason",
        "call the buyer",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = setup.cli(&["orders", "release", "shop-test:7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = setup.cli(&["rules", "apply"]);
    assert!(
        stdout(&out).contains("0 orders changed"),
        "{}",
        stdout(&out)
    );
    let shown = json(&setup.cli(&["orders", "show", "shop-test:7", "--json"]));
    assert!(
        shown["hold"].is_null(),
        "released, and the rules' hold ({rule_hold}) stays lifted: {shown}"
    );
}

/// `store copy`: the copy holds everything the store does and opens as a
/// store; the store itself is left as it was; a folder that already holds
/// something, or a store in use, is refused and nothing is written.
#[test]
fn store_copy_copies_everything_into_a_new_store() {
    let setup = Setup::new();
    let mut shipped = order(2, at(9, 30), "12.50");
    shipped.status = OrderStatus::Shipped;
    setup.seed(vec![order(1, at(9, 0), "700.00"), shipped]);

    let to = setup.dir.path().join("copy");
    let out = setup.cli(&["store", "copy", "--to", to.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("copied ") && stdout(&out).contains(" MB) to "),
        "{}",
        stdout(&out)
    );

    let (original, copy) = (everything(&setup.state()), everything(&to));
    assert_eq!(original.len(), 2);
    assert_eq!(copy, original);

    let again = setup.cli(&["store", "copy", "--to", to.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    let _held = reopen(&setup.state());
    let other = setup.dir.path().join("other");
    let out = setup.cli(&["store", "copy", "--to", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));
    assert!(!other.exists());
}

/// Every order with its history and raw payload, and every pending outbox
/// item, as the store in `dir` holds them.
fn everything(dir: &Path) -> Vec<serde_json::Value> {
    let store = reopen(dir);
    let orders = store
        .list_orders(&switchyard::store::OrderFilter::default())
        .unwrap();
    let mut shown: Vec<serde_json::Value> = orders
        .iter()
        .map(|o| {
            serde_json::json!({
                "order": o.order,
                "history": store.history(&o.order.id).unwrap(),
                "raw": store.raw_payload(&o.order.id).unwrap(),
            })
        })
        .collect();
    for item in store.outbox_list(false).unwrap() {
        shown.push(serde_json::json!({ "outbox": item.id, "job": format!("{:?}", item.job) }));
    }
    store.close().unwrap();
    shown
}

/// A stock push of `sku` for the test account, due now.
fn stock_push(sku: &str) -> NewOutboxItem {
    NewOutboxItem {
        account: ACCOUNT.to_owned(),
        job: Job::PushStock {
            sku: sku.to_owned(),
        },
        coalesce_key: None,
        not_before: Utc::now(),
    }
}

/// A store of two orders and three queued stock pushes at `setup.state()`.
fn seed_for_compaction(setup: &Setup) {
    setup.seed(vec![
        order(1, at(9, 0), "700.00"),
        order(2, at(9, 30), "12.50"),
    ]);
    let store = reopen(&setup.state());
    store
        .outbox_add(["MUG", "TEE", "CAP"].map(stock_push).into(), Utc::now())
        .unwrap();
    store.close().unwrap();
}

/// `dir` with `suffix` added to its name (`state` -> `state.old`).
fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir.file_name().unwrap().to_str().unwrap();
    dir.with_file_name(format!("{name}{suffix}"))
}

#[test]
fn store_compact_puts_a_compact_copy_in_place_of_the_store() {
    let setup = Setup::new();
    seed_for_compaction(&setup);
    let state = setup.state();
    let before = everything(&state);
    assert_eq!(before.len(), 2 + 3, "{before:?}");

    let out = setup.cli(&["store", "compact", "--keep-old"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.starts_with(&format!(
            "compacted the store in {}: ",
            state.canonicalize().unwrap().display()
        )) && said.contains(" MB before, ")
            && said.contains(" MB after (")
            && said.contains("the store as it was is kept in "),
        "{said}"
    );
    assert_eq!(everything(&state), before);
    assert_eq!(everything(&beside(&state, ".old")), before);
    assert!(!beside(&state, ".compact").exists());

    // The kept store is left for the operator: a second compaction says so
    // and changes nothing.
    let again = setup.cli(&["store", "compact"]);
    assert_eq!(again.status.code(), Some(1));
    let refused = stderr(&again);
    assert!(
        refused.contains(&format!("rm -r {}", beside(&state, ".old").display()))
            && refused.contains("nothing was changed"),
        "{refused}"
    );
    std::fs::remove_dir_all(beside(&state, ".old")).unwrap();
    let out = setup.cli(&["store", "compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the store as it was is removed"),
        "{}",
        stdout(&out)
    );
    assert!(!beside(&state, ".old").exists());
    assert_eq!(everything(&state), before);

    // Outbox items queued on the compacted store come after those already
    // there, and take no queued item's place.
    let store = reopen(&state);
    let queued: Vec<String> = store
        .outbox_list(false)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    store
        .outbox_add(vec![stock_push("HAT")], Utc::now())
        .unwrap();
    let now: Vec<String> = store
        .outbox_list(false)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    store.close().unwrap();
    assert_eq!(now.len(), queued.len() + 1, "{now:?}");
    assert_eq!(now[..queued.len()], queued[..]);
    assert!(now.last() > queued.last(), "{now:?}");
}

#[test]
fn store_compact_refuses_a_store_in_use_and_a_leftover_copy_and_changes_nothing() {
    let setup = Setup::new();
    seed_for_compaction(&setup);
    let state = setup.state();
    let before = everything(&state);

    let held = reopen(&state);
    let out = setup.cli(&["store", "compact"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));
    assert!(!beside(&state, ".compact").exists());
    assert!(!beside(&state, ".old").exists());
    held.close().unwrap();

    // A copy left by a compaction that stopped before it put the store
    // aside: the store is whole, and the copy is never used.
    std::fs::create_dir(beside(&state, ".compact")).unwrap();
    let out = setup.cli(&["store", "compact"]);
    assert_eq!(out.status.code(), Some(1));
    let refused = stderr(&out);
    assert!(
        refused.contains(&format!("rm -r {}", beside(&state, ".compact").display()))
            && refused.contains("nothing was changed"),
        "{refused}"
    );
    let listed = setup.cli(&["orders", "list", "--json"]);
    assert_eq!(json(&listed).as_array().unwrap().len(), 2);
    assert_eq!(everything(&state), before);
    assert!(!beside(&state, ".old").exists());
}

/// A store emptied (or removed) after a compaction that kept the store as
/// it was: neither an empty store nor the kept one, which is older than
/// the store that was removed, takes its place, and the refusal says what
/// to run for each way out.
#[test]
fn an_emptied_store_beside_a_kept_old_one_is_refused_and_neither_replaces_it() {
    let setup = Setup::new();
    seed_for_compaction(&setup);
    let state = setup.state().canonicalize().unwrap();
    let old = beside(&state, ".old");
    let out = setup.cli(&["store", "compact", "--keep-old"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kept = everything(&old);

    std::fs::remove_dir_all(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    let said = |refused: &str| {
        for what in [
            "compaction that finished".to_owned(),
            format!("put it back into {}", state.display()),
            format!("rm -r {}", old.display()),
            format!(
                "rmdir {} && mv {} {}",
                state.display(),
                old.display(),
                state.display()
            ),
            "may be sent again".to_owned(),
        ] {
            assert!(refused.contains(&what), "{what:?} in {refused}");
        }
    };
    for args in [&["orders", "list"][..], &["store", "compact"][..]] {
        let out = setup.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        said(&stderr(&out));
    }
    // The daemon's open, which would otherwise make a store.
    let refused = Store::open(&state, StoreOptions::default()).unwrap_err();
    said(&refused.to_string());
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
    assert_eq!(everything(&old), kept);

    // Moved out of the way, the kept store no longer stands in the way of
    // a fresh start.
    std::fs::rename(&old, setup.dir.path().join("kept")).unwrap();
    let store = Store::open(&state, StoreOptions::default()).unwrap();
    assert!(
        store
            .list_orders(&switchyard::store::OrderFilter::default())
            .unwrap()
            .is_empty()
    );
    store.close().unwrap();
}

#[test]
fn a_compaction_stopped_between_its_renames_is_finished_by_the_next_open() {
    // As under systemd's DynamicUser=: the state folder is a link to the
    // folder that holds the store, and that folder is what is renamed.
    let setup = Setup::new();
    let real = setup.dir.path().join("private").join("state");
    std::fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink("private/state", setup.state()).unwrap();
    seed_for_compaction(&setup);
    let before = everything(&setup.state());

    // The copy made and proven, the store put aside, then a crash: the
    // link names nothing.
    let copy = beside(&real, ".compact");
    let out = setup.cli(&["store", "copy", "--to", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::rename(&real, beside(&real, ".old")).unwrap();
    assert!(!setup.state().exists());

    let listed = setup.cli(&["orders", "list", "--json"]);
    assert_eq!(json(&listed).as_array().unwrap().len(), 2);
    assert!(
        stderr(&listed).contains("finished a compaction that stopped halfway"),
        "{}",
        stderr(&listed)
    );
    assert!(real.is_dir() && !copy.exists());
    assert_eq!(everything(&setup.state()), before);
    assert_eq!(everything(&beside(&real, ".old")), before);

    // Again, but systemd made the state folder afresh (empty) before the
    // start: the copy still takes its place.
    std::fs::remove_dir_all(beside(&real, ".old")).unwrap();
    let out = setup.cli(&["store", "copy", "--to", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::rename(&real, beside(&real, ".old")).unwrap();
    std::fs::create_dir(&real).unwrap();
    let listed = setup.cli(&["orders", "list", "--json"]);
    assert_eq!(json(&listed).as_array().unwrap().len(), 2);
    assert!(!copy.exists());
    assert_eq!(everything(&setup.state()), before);

    // `store compact` finishes one too, and says so.
    std::fs::remove_dir_all(beside(&real, ".old")).unwrap();
    let out = setup.cli(&["store", "copy", "--to", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::rename(&real, beside(&real, ".old")).unwrap();
    let out = setup.cli(&["store", "compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("finished a compaction that stopped halfway"),
        "{}",
        stdout(&out)
    );
    assert_eq!(everything(&setup.state()), before);

    // A store missing, or empty, with only the store as it was beside it
    // is not replaced by an empty one: the open says what to run.
    std::fs::remove_dir_all(&real).unwrap();
    let out = setup.cli(&["orders", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let old = beside(&real, ".old");
    let refused = stderr(&out);
    assert!(
        refused.contains(&format!("mv {} {}", old.display(), real.display())),
        "{refused}"
    );
    assert!(!real.exists());
    std::fs::create_dir(&real).unwrap();
    let out = setup.cli(&["orders", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let refused = stderr(&out);
    assert!(
        refused.contains(&format!(
            "rmdir {} && mv {} {}",
            real.display(),
            old.display(),
            real.display()
        )),
        "{refused}"
    );
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
}
