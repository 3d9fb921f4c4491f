//! The operator's day, end to end through the binary: which config a command
//! reads, what `check` reports, exit statuses and messages that say what to
//! do next.

use std::path::Path;
use std::process::Output;

use crate::common::daemon::{ConfigBuilder, REPO, command, stderr, stdout};

fn run_in(dir: &Path, args: &[&str]) -> Output {
    command()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run the switchyard binary")
}

fn copy_example_into(dir: &Path) {
    let config = std::fs::read_to_string(Path::new(REPO).join("config/switchyard.toml")).unwrap();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/switchyard.toml"), config).unwrap();
    std::fs::copy(
        Path::new(REPO).join("config/rules.toml"),
        dir.join("config/rules.toml"),
    )
    .unwrap();
}

#[test]
fn a_config_in_the_current_folder_is_used_and_named() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_into(dir.path());
    let out = run_in(dir.path(), &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "using config config/switchyard.toml (found in the current folder; --config PATH for another)\n"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("config/switchyard.toml: ok"),
        "{}",
        stdout(&out)
    );

    // ./switchyard.toml comes first.
    let own = ConfigBuilder::new(dir.path()).write();
    assert_eq!(own, dir.path().join("switchyard.toml"));
    let out = run_in(dir.path(), &["check"]);
    assert!(
        stderr(&out).starts_with("using config switchyard.toml "),
        "{}",
        stderr(&out)
    );

    // --config wins and is not announced.
    let out = run_in(dir.path(), &["--config", "config/switchyard.toml", "check"]);
    assert!(!stderr(&out).contains("using config"), "{}", stderr(&out));
}

#[test]
fn no_config_anywhere_says_how_to_name_one() {
    let dir = tempfile::tempdir().unwrap();
    if Path::new("/etc/switchyard/switchyard.toml").exists() {
        // The machine has a real install; the default would be used.
        return;
    }
    let out = run_in(dir.path(), &["orders", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no config file: /etc/switchyard/switchyard.toml does not exist")
            && err.contains("--config PATH")
            && err.contains("switchyard.toml or config/switchyard.toml"),
        "{err}"
    );
}

#[test]
fn check_reports_config_and_rules_problems_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::new(dir.path())
        .rules(&dir.path().join("missing-rules.toml"))
        .daemon("log_fromat", "json")
        .write();
    let out = run_in(dir.path(), &["--config", config.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("unknown key \"log_fromat\""), "{err}");
    assert!(
        err.contains("missing-rules.toml: cannot read the rules file: no such file"),
        "{err}"
    );
    let summary = stdout(&out);
    assert!(summary.contains("switchyard.toml: 1 error\n"), "{summary}");
    assert!(
        summary.contains("missing-rules.toml: 1 error\n"),
        "{summary}"
    );
}

#[test]
fn check_skips_no_account_of_the_example_warns_about_inline_secrets_and_counts_in_words() {
    let out = command()
        .args([
            "--config",
            &format!("{REPO}/config/switchyard.toml"),
            "check",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    // Every channel of the example config has its connector: none is skipped.
    assert!(!err.contains("will be skipped"), "{err}");
    assert!(
        err.contains(
            "warning: secret \"access_token\" in [[account]] \"shop-us\" is written in the file"
        ) && err.contains("access_token_env or access_token_file"),
        "{err}"
    );
    assert!(
        !err.contains("demo-shopify-token"),
        "secrets never printed: {err}"
    );
    assert!(
        stdout(&out).contains("(4 accounts; 2 destinations)"),
        "{}",
        stdout(&out)
    );

    // One of each is said in the singular.
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::new(dir.path())
        .destinations(vec![
            crate::common::daemon::Destination::webhook("east-wh", "http://127.0.0.1:9/east")
                .secret_env("EAST_SECRET"),
        ])
        .account(
            crate::common::daemon::ShopifyAccount::new("shop-us", "http://127.0.0.1:9")
                .webhook_secret_env("HOOK_SECRET"),
        )
        .rules(&dir.path().join("rules.toml"))
        .write();
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rule]]\nname = \"all\"\nwhen = { channel = \"shopify\" }\nthen = { route = \"east-wh\" }\n",
    )
    .unwrap();
    let out = command()
        .env("EAST_SECRET", "s")
        .env("HOOK_SECRET", "h")
        .args(["--config", config.to_str().unwrap(), "check", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["config"]["accounts"], 1);
    assert_eq!(report["rules"]["rules"], 1);
    let out = command()
        .env("EAST_SECRET", "s")
        .env("HOOK_SECRET", "h")
        .args(["--config", config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let summary = stdout(&out);
    assert!(summary.contains("(1 account; 1 destination)"), "{summary}");
    assert!(summary.contains("rules.toml: ok (1 rule)"), "{summary}");
}

/// A channel that refuses every call with 401, on a free port of 127.0.0.1;
/// it stops when the test process ends.
fn refusing_channel() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let body = r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn sync_takes_a_date_and_a_refused_token_says_to_fix_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::new(dir.path())
        .account(
            crate::common::daemon::ShopifyAccount::new("shop-us", &refusing_channel())
                .webhook_secret("hook"),
        )
        .write();
    let config = config.to_str().unwrap();

    let out = run_in(
        dir.path(),
        &[
            "--config",
            config,
            "sync",
            "shop-us",
            "--since",
            "2026-11-01",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("shop-us: sync stopped: authentication: HTTP 401"),
        "{err}"
    );
    assert!(
        err.contains("the channel refused the credentials of account shop-us: fix them"),
        "{err}"
    );
    assert!(!err.contains("run it again to continue"), "{err}");

    let out = run_in(
        dir.path(),
        &[
            "--config",
            config,
            "sync",
            "shop-us",
            "--since",
            "2026-11-01",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let last: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert!(
        last["error"].as_str().unwrap().contains("fix them"),
        "{last}"
    );

    let out = run_in(
        dir.path(),
        &[
            "--config",
            config,
            "sync",
            "shop-us",
            "--since",
            "1st of November",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--since: \"1st of November\" is neither a date (2026-11-01, midnight UTC) nor an RFC 3339 time"),
        "{}",
        stderr(&out)
    );
}

/// A CI job running `replay` over recorded traffic must notice when some of
/// it does not replay: the throttled poll and the body that is not an order.
#[test]
fn replay_exits_1_when_a_scenario_fails_and_still_prints_the_rest() {
    let config = format!("{REPO}/config/switchyard.toml");
    let out = command()
        .args([
            "--config",
            &config,
            "replay",
            &format!("{REPO}/fixtures/shopify"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("poll-throttled: poll: channel: rate limited"),
        "{err}"
    );
    assert!(
        err.contains("webhook-bad-signature: webhook not-an-order"),
        "{err}"
    );
    assert!(
        err.contains("did not replay: 1 poll, 1 webhook delivery (in 2 of "),
        "{err}"
    );
    assert!(
        stdout(&out).contains("replay:5551234567"),
        "{}",
        stdout(&out)
    );

    let out = command()
        .args([
            "--config",
            &config,
            "replay",
            &format!("{REPO}/fixtures/shopify/demo"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The fixture of deliveries that must be refused: the three a signature
/// check refuses are counted as refused, not as errors; the signed body
/// that is not an order is the one delivery that did not replay, and the
/// count says so rather than "1 replay step of 1 scenario had errors".
#[test]
fn replay_counts_refused_deliveries_apart_from_what_did_not_replay() {
    let out = command()
        .args([
            "--config",
            &format!("{REPO}/config/switchyard.toml"),
            "replay",
            &format!("{REPO}/fixtures/shopify/webhook-bad-signature"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "no orders\n");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    let refused = lines
        .iter()
        .filter(|l| l.contains(": refused, as the channel's signature check requires: "))
        .count();
    assert_eq!(refused, 3, "{err}");
    let [counted, failed, summary] = lines[lines.len() - 3..] else {
        panic!("{err}")
    };
    assert_eq!(
        counted,
        "refused by their signature check, as recorded (not errors): 3 webhook deliveries"
    );
    assert!(
        failed.ends_with("webhook-bad-signature: webhook not-an-order: decode: orders/create webhook: not a Shopify order: missing field `id` at line 1 column 18"),
        "{err}"
    );
    assert_eq!(
        summary,
        "did not replay: 1 webhook delivery (in 1 of 1 scenario); the orders above are what the rest produced"
    );
}

/// A config with its store in a temporary folder and a few orders stored
/// through the real ingest path with the example rules.
struct Shop {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Shop {
    fn new(orders: Vec<switchyard_contract::Order>) -> Shop {
        Shop::with_rules(orders, &Path::new(REPO).join("config/rules.toml"))
    }

    /// A shop whose config names the rules file `rules`.
    fn with_rules(orders: Vec<switchyard_contract::Order>, rules: &Path) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigBuilder::new(dir.path())
            .without_listen()
            .rules(rules)
            .write();
        let shop = Shop { dir, config };
        shop.receive(orders, rules);
        shop
    }

    /// Stores `orders` as the channel's, through the real ingest path with
    /// the rules of `rules` (the daemon stopped).
    fn receive(&self, orders: Vec<switchyard_contract::Order>, rules: &Path) {
        use switchyard::ingest::{Ingest, LiveRules, Source};
        let store = crate::common::reopen(&self.dir.path().join("state"));
        let dests = ["east-wh".to_string(), "west-3pl".to_string()];
        let (rules, _) = switchyard::rules::load_rules(rules, &dests).unwrap();
        Ingest::new(store.clone(), LiveRules::new(rules))
            .receive(
                crate::common::ACCOUNT,
                orders.into_iter().map(crate::common::normalized).collect(),
                Source::Fetch,
                chrono::Utc::now(),
            )
            .unwrap();
        store.flush_blocking().unwrap();
        store.close().unwrap();
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        run_in(self.dir.path(), &all)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
    }
}

/// Writes order `id` of the shop's store as `edit` leaves it, as if the
/// daemon had delivered it; `queued_once` also records what queueing a
/// delivery records beside it (the order is not queued again by itself).
fn delivered_by_hand(
    shop: &Shop,
    id: &str,
    queued_once: bool,
    edit: impl FnOnce(&mut switchyard::store::StoredOrder),
) {
    use switchyard::store::{OrderWrite, WriteBatch};
    let store = crate::common::reopen(&shop.dir.path().join("state"));
    let stored = store.get_order(id).unwrap().unwrap();
    let mut next = stored.clone();
    edit(&mut next);
    let mut batch = WriteBatch::new(chrono::Utc::now());
    batch.orders.push(OrderWrite::Local {
        order: next,
        expected_revision: stored.revision,
        kind: "delivered".into(),
        detail: "delivered by the test".into(),
        outbox: vec![],
    });
    if queued_once {
        let forever = "9999-12-31T23:59:59Z".parse().unwrap();
        batch
            .dedupe
            .push((format!("outbound/delivery/{id}"), forever));
    }
    store.apply(batch).unwrap();
    store.flush_blocking().unwrap();
}

/// A delivery of every line of `order` to `destination`, taken at 10:00.
fn taken(
    order: &switchyard_contract::Order,
    destination: &str,
    delivery_id: &str,
) -> switchyard::store::DeliveryPart {
    switchyard::store::DeliveryPart {
        destination: destination.into(),
        delivery_id: delivery_id.into(),
        lines: order.lines.iter().map(|l| l.line_id.clone()).collect(),
        index: 1,
        of: 1,
        delivered_at: Some("2026-11-27T10:00:00Z".parse().unwrap()),
    }
}

fn tagged(n: u32, tags: &[&str]) -> switchyard_contract::Order {
    let mut o = crate::common::order(n, crate::common::at(9, n), "20.00");
    o.tags = tags.iter().map(|t| (*t).to_owned()).collect();
    o
}

#[test]
fn filters_are_checked_alike_and_tags_ignore_case() {
    let shop = Shop::new(vec![tagged(1, &["west-coast"]), tagged(2, &[])]);
    let out = shop.cli(&["orders", "list", "--route", "nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("invalid value 'nowhere' for '--route <DESTINATION|none>'")
            && stderr(&out).contains("[possible values: east-wh, west-3pl, none]"),
        "{}",
        stderr(&out)
    );
    let out = shop.cli(&["orders", "list", "--status", "shiped"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'shiped' for '--status <STATUS>'")
            && stderr(&out).contains("shipped"),
        "{}",
        stderr(&out)
    );
    let out = shop.cli(&["orders", "list", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'--limit <N>'"), "{}", stderr(&out));

    let found = shop.json(&["orders", "list", "--tag", "WEST-COAST", "--json"]);
    let ids: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["shop-test:1"]);
    let unrouted = shop.json(&["orders", "list", "--route", "none", "--json"]);
    assert_eq!(
        unrouted.as_array().unwrap().len(),
        0,
        "the example rules route every order"
    );
}

#[test]
fn stock_set_takes_a_negative_number_to_refuse_it_in_words() {
    let shop = Shop::new(vec![]);
    let out = shop.cli(&["stock", "set", "MUG-RED", "-5"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "the level of MUG-RED must not be negative (got -5); 0 means none to sell"
    );
    let receipt = shop.json(&["stock", "set", "MUG-RED", "5", "--json"]);
    assert_eq!(receipt["skus"], 1);
}

#[test]
fn every_command_that_reports_a_result_speaks_json() {
    let shop = Shop::new(vec![tagged(1, &[])]);
    let held = shop.json(&[
        "orders",
        "hold",
        "shop-test:1",
        "--reason",
        "address check",
        "--json",
    ]);
    assert_eq!(held["hold"], "address check");
    let released = shop.json(&["orders", "release", "shop-test:1", "--json"]);
    assert!(released["hold"].is_null(), "{released}");
    let shipped = shop.json(&[
        "ship",
        "shop-test:1",
        "--carrier",
        "ups",
        "--tracking",
        "1Z1",
        "--json",
    ]);
    assert_eq!(shipped["recorded"], true);
    assert_eq!(shipped["status"], "shipped");
    let csv = shop.dir.path().join("levels.csv");
    std::fs::write(&csv, "sku,available\nMUG-RED,4\nMUG-BLUE,2\n").unwrap();
    let imported = shop.json(&["stock", "import", csv.to_str().unwrap(), "--json"]);
    assert_eq!(imported["skus"], 2);
    let retried = shop.json(&["outbox", "retry", "--all-dead", "--json"]);
    assert_eq!(retried["retried"], 0);
    let items = shop.json(&["outbox", "list", "--json"]);
    let first = items[0]["id"].as_str().unwrap().to_owned();
    let dropped = shop.json(&["outbox", "drop", &first, "--json"]);
    assert_eq!(dropped, serde_json::json!({ "id": first, "dropped": true }));
}

#[test]
fn rules_test_quiet_prints_failures_only_and_json_prints_every_case() {
    let shop = Shop::new(vec![]);
    let cases = format!("{REPO}/tests/rules");
    let out = shop.cli(&["rules", "test", "--quiet", &cases]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.ends_with(" passed, 0 failed\n"), "{text}");

    let failing = shop.dir.path().join("failing.toml");
    std::fs::write(
        &failing,
        format!(
            "order = \"{REPO}/tests/rules/orders/us-standard.json\"\n[[case]]\nname = \"wrong\"\n[case.expect]\nroute = \"west-3pl\"\n[[case]]\nname = \"right\"\n[case.expect]\nroute = \"east-wh\"\n"
        ),
    )
    .unwrap();
    let out = shop.cli(&["rules", "test", "-q", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.starts_with("FAIL ") && text.contains(": wrong: "),
        "{text}"
    );
    assert!(!text.contains("PASS"), "{text}");
    assert!(text.ends_with("1 passed, 1 failed\n"), "{text}");

    let out = shop.cli(&["rules", "test", "--json", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["passed"].clone(), report["failed"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(report["cases"][0]["name"], "wrong");
    assert_eq!(report["cases"][0]["passed"], false);
}

#[test]
fn rules_explain_says_when_the_route_is_the_default_route() {
    let shop = Shop::new(vec![tagged(1, &[])]);
    let out = shop.cli(&["rules", "explain", "--order", "shop-test:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("route:    east-wh (default_route: no rule set a route)"),
        "{}",
        stdout(&out)
    );
    let explained = shop.json(&["rules", "explain", "--order", "shop-test:1", "--json"]);
    assert_eq!(explained["result"]["route_from"], "default_route");
}

#[test]
fn help_describes_every_option_and_the_required_choices() {
    let help = |args: &[&str]| {
        let out = command().args(args).output().unwrap();
        format!("{}{}", stdout(&out), stderr(&out))
    };
    let list = help(&["orders", "list", "--help"]);
    assert!(
        list.contains("[possible values: pending, ready, partially_shipped, shipped, cancelled]"),
        "{list}"
    );
    // Every option has a description: no line that is a bare flag.
    for line in list.lines().filter(|l| l.trim_start().starts_with("--")) {
        assert!(line.trim().contains("  "), "undocumented option: {line}");
    }
    assert!(help(&["rules", "explain"]).contains("<--order <ID>|--file <ORDER.json>>"));
    assert!(help(&["outbox", "retry"]).contains("<ID|--all-dead>"));
    let version = help(&["--version"]);
    assert!(
        version.starts_with("switchyard ")
            && version.contains("(commit ")
            && version.contains(", built 20"),
        "{version}"
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_command_definitions() {
    let out = command().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = stdout(&out);
    assert!(
        script.contains("switchyard") && script.contains("--all-dead"),
        "bash completion"
    );
    let out = command().args(["man"]).output().unwrap();
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH switchyard"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("orders"), "subcommands are listed");
    // A stdout that takes nothing (full, or closed by `| head`) is an
    // error that says what could not be written, not a panic.
    for args in [&["completions", "bash"][..], &["man"]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = command().args(args).stdout(full).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("cannot write the "),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn debug_logging_of_a_command_leaves_the_storage_engine_quiet() {
    let shop = Shop::new(vec![]);
    let out = command()
        .env("RUST_LOG", "debug")
        .args(["--config", shop.config.to_str().unwrap(), "orders", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        !err.contains("snapshot") && !err.contains("lsn") && !err.contains("segment"),
        "{err}"
    );
}

fn unpaid(n: u32) -> switchyard_contract::Order {
    let mut o = crate::common::order(n, crate::common::at(9, n), "30.00");
    o.status = switchyard_contract::OrderStatus::Pending;
    o.payment = switchyard_contract::PaymentStatus::Pending;
    o
}

/// One hold model: a person may override a rule's hold, and `rules explain`,
/// `orders show` and `release` all say so; shipping such an order warns.
#[test]
fn a_released_rule_hold_is_an_override_every_view_shows() {
    let shop = Shop::new(vec![unpaid(1), tagged(2, &[])]);
    let explained = stdout(&shop.cli(&["rules", "explain", "--order", "shop-test:1"]));
    assert!(
        explained.contains("hold:     awaiting payment (rule awaiting-payment)"),
        "{explained}"
    );

    let out = shop.cli(&["orders", "release", "shop-test:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "shop-test:1: released; overrode the rules' hold (awaiting payment): it stays released \
         while the rules give this reason (`rules explain` shows it)\n"
    );
    let explained = stdout(&shop.cli(&["rules", "explain", "--order", "shop-test:1"]));
    assert!(
        explained.contains(
            "hold:     (none): the rules hold it for awaiting payment (rule awaiting-payment), \
             but a person released that hold, and it stays released"
        ),
        "{explained}"
    );
    let doc = shop.json(&["rules", "explain", "--order", "shop-test:1", "--json"]);
    assert!(doc["result"]["hold"].is_null(), "{doc}");
    assert_eq!(doc["result"]["hold_from"], "released");
    assert_eq!(doc["result"]["rules_hold"], "awaiting payment");
    let shown = stdout(&shop.cli(&["orders", "show", "shop-test:1"]));
    assert!(
        shown.contains("hold none (the rules' hold \"awaiting payment\" was released by hand)"),
        "{shown}"
    );
    let doc = shop.json(&["orders", "show", "shop-test:1", "--json"]);
    assert_eq!(doc["holds"]["released"], "awaiting payment");

    // Shipping the unpaid order warns, and still records the shipment.
    let out = shop.cli(&[
        "ship",
        "shop-test:1",
        "--carrier",
        "ups",
        "--tracking",
        "1Z9",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "warning: order shop-test:1 is not paid yet (payment pending) and was held (awaiting payment)"
        ),
        "{}",
        stderr(&out)
    );
    // A paid order that was never held ships without a word.
    let out = shop.cli(&[
        "ship",
        "shop-test:2",
        "--carrier",
        "ups",
        "--tracking",
        "1Z8",
    ]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");

    // A hold set by hand wins, and says so.
    let shop = Shop::new(vec![unpaid(3)]);
    shop.cli(&["orders", "hold", "shop-test:3", "--reason", "address check"]);
    let explained = stdout(&shop.cli(&["rules", "explain", "--order", "shop-test:3"]));
    assert!(
        explained.contains(
            "hold:     address check (set by hand; the rules would hold it too: awaiting payment (rule awaiting-payment))"
        ),
        "{explained}"
    );
    let out = shop.cli(&["orders", "release", "shop-test:3"]);
    assert!(
        stdout(&out).contains(
            "lifted the hold set by hand (address check) and the rules' hold (awaiting payment)"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn outbox_list_has_a_header_and_says_what_each_item_is_for() {
    let shop = Shop::new(vec![tagged(1, &[])]);
    let out = shop.cli(&["outbox", "list"]);
    assert_eq!(stdout(&out), "outbox empty: nothing waiting to be sent\n");
    shop.cli(&[
        "ship",
        "shop-test:1",
        "--carrier",
        "ups",
        "--tracking",
        "1ZTRACK",
    ]);
    let out = shop.cli(&["outbox", "list"]);
    let text = stdout(&out);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("FOR") && header.contains("NEXT ATTEMPT"),
        "{text}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains("push tracking 1ZTRACK of order shop-test:1 to shop-test"),
        "{text}"
    );
    assert!(row.contains(" UTC"), "times carry their zone: {text}");
    let items = shop.json(&["outbox", "list", "--json"]);
    assert_eq!(items[0]["order_id"], "shop-test:1");
    assert_eq!(items[0]["tracking_number"], "1ZTRACK");
    assert!(items[0]["next_attempt_at"].is_string());
    assert_eq!(
        stdout(&shop.cli(&["outbox", "list", "--dead"])),
        "no dead letters\n"
    );

    // History and times: to the second, with the zone.
    let shown = stdout(&shop.cli(&["orders", "show", "shop-test:1"]));
    let history: Vec<&str> = shown
        .lines()
        .skip_while(|l| *l != "history:")
        .skip(1)
        .collect();
    assert!(!history.is_empty(), "{shown}");
    for line in history {
        let at = &line.trim_start()[..23];
        assert!(
            at.ends_with(" UTC") && at.len() == "2026-11-27 05:01:02 UTC".len(),
            "{line}"
        );
    }
    let doc = shop.json(&["orders", "show", "shop-test:1", "--json"]);
    for h in doc["history"].as_array().unwrap() {
        let at = h["at"].as_str().unwrap();
        assert!(at.len() == 20 && at.ends_with('Z'), "no fractions: {at}");
    }
}

/// Stock as a warehouse counts it: what is on hand, what open orders have
/// promised (and which), and what is left to sell.
#[test]
fn stock_show_lists_on_hand_reserved_by_which_orders_and_available() {
    use switchyard::ingest::{Ingest, LiveRules, Source};
    let shop = Shop::new(vec![]);
    let out = shop.cli(&["stock", "set", "MUG-RED", "10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // An order for 2 arrives (through the ingest path, with reservations).
    {
        let store = crate::common::reopen(&shop.dir.path().join("state"));
        let mut o = tagged(1, &[]);
        o.lines[0].sku = Some("MUG-RED".into());
        o.lines[0].quantity = 2;
        Ingest::new(store.clone(), LiveRules::default())
            .with_outbound(switchyard::effects::Outbound::default())
            .receive(
                crate::common::ACCOUNT,
                vec![crate::common::normalized(o)],
                Source::Fetch,
                chrono::Utc::now(),
            )
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let text = stdout(&shop.cli(&["stock", "show", "MUG-RED"]));
    assert!(
        text.starts_with(
            "MUG-RED  on hand 10  reserved 2  available 8\n  reserved by shop-test:1 (2)\n"
        ),
        "{text}"
    );
    // A new count of what is on hand keeps the promise to the open order.
    shop.cli(&["stock", "set", "MUG-RED", "10"]);
    let view = shop.json(&["stock", "show", "MUG-RED", "--json"]);
    assert_eq!(
        (
            view["on_hand"].clone(),
            view["reserved"].clone(),
            view["available"].clone()
        ),
        (10.into(), 2.into(), 8.into())
    );
    assert_eq!(view["reservations"][0]["order_id"], "shop-test:1");
    // Shipped: the units left the shelf, nothing is reserved any more.
    shop.cli(&[
        "ship",
        "shop-test:1",
        "--carrier",
        "ups",
        "--tracking",
        "1Z7",
    ]);
    let view = shop.json(&["stock", "show", "MUG-RED", "--json"]);
    assert_eq!(
        (
            view["on_hand"].clone(),
            view["reserved"].clone(),
            view["available"].clone()
        ),
        (8.into(), 0.into(), 8.into())
    );
}

/// Holding an order a warehouse already has says where and when it went and
/// that the warehouse is told.
#[test]
fn holding_a_delivered_order_says_where_it_went() {
    use switchyard::store::DeliveredTo;
    let shop = Shop::new(vec![tagged(1, &[])]);
    delivered_by_hand(&shop, "shop-test:1", false, |o| {
        o.delivered = Some(DeliveredTo {
            destination: "east-wh".into(),
            delivery_id: "dlv_0123456789abcdef01234567".into(),
            at: "2026-11-27T10:00:00Z".parse().unwrap(),
        });
    });
    let out = shop.cli(&["orders", "hold", "shop-test:1", "--reason", "address check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "shop-test:1: on hold (address check)\nshop-test:1: it was already delivered to east-wh \
         at 2026-11-27 10:00:00 UTC (delivery dlv_0123456789abcdef01234567); a hold notice is \
         queued for east-wh: whether the parcel can still be stopped is up to the warehouse\n"
    );
    let items = shop.json(&["outbox", "list", "--json"]);
    let notice = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "notice")
        .expect("a queued notice");
    assert_eq!(notice["account"], "destination:east-wh");
    assert_eq!(notice["notice"], "hold");
    assert!(
        stdout(&shop.cli(&["outbox", "list"]))
            .contains("send east-wh a hold notice for order shop-test:1"),
    );
    assert!(
        stdout(&shop.cli(&["orders", "show", "shop-test:1"]))
            .contains("delivered to east-wh at 2026-11-27 10:00:00 UTC"),
    );
    // Held by hand again (a new reason): the warehouse was told already, and
    // the command does not claim a second notice.
    let out = shop.cli(&["orders", "hold", "shop-test:1", "--reason", "fraud check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "shop-test:1: on hold (fraud check)\nshop-test:1: it was already delivered to east-wh \
         at 2026-11-27 10:00:00 UTC (delivery dlv_0123456789abcdef01234567); it was on hold by \
         hand already, so no new hold notice is queued\n"
    );
    let notices = shop.json(&["outbox", "list", "--json"]);
    let notices = notices
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "notice")
        .count();
    assert_eq!(notices, 1, "one hold notice, from the first hold");
}

/// `orders redeliver`: a preview without `--yes`, the deliveries with it
/// (and a withdraw notice for a destination that took the order before),
/// and a refusal that says what to do for an order that cannot be delivered.
#[test]
fn redeliver_previews_then_queues_and_refuses_what_cannot_be_delivered() {
    use switchyard::store::DeliveredTo;
    let shop = Shop::new(vec![tagged(1, &[]), unpaid(2), tagged(3, &[])]);
    let deliveries = |shop: &Shop| -> Vec<serde_json::Value> {
        let items = shop.json(&["outbox", "list", "--json"]);
        items
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["order_id"] == "shop-test:1")
            .cloned()
            .collect()
    };
    // East took it.
    let first = "dlv_0123456789abcdef01234567";
    delivered_by_hand(&shop, "shop-test:1", true, |o| {
        o.parts = vec![taken(&o.order, "east-wh", first)];
        o.delivered = Some(DeliveredTo {
            destination: "east-wh".into(),
            delivery_id: first.into(),
            at: "2026-11-27T10:00:00Z".parse().unwrap(),
        });
    });

    let out = shop.cli(&["orders", "redeliver", "shop-test:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "shop-test:1: would deliver again to east-wh (MUG-RED x1)\n\
             shop-test:1: east-wh took delivery {first} at 2026-11-27 10:00:00 UTC: it would be \
             sent a withdraw notice for it\n\
             nothing was queued: `switchyard orders redeliver shop-test:1 --yes` delivers it\n"
        )
    );
    assert!(deliveries(&shop).is_empty(), "a preview queues nothing");

    let done = shop.json(&["orders", "redeliver", "shop-test:1", "--yes", "--json"]);
    assert_eq!(done["queued"], true, "{done}");
    assert_eq!(done["parts"][0]["destination"], "east-wh");
    assert_eq!(done["parts"][0]["lines"][0]["sku"], "MUG-RED");
    assert_eq!(done["withdrawn"][0]["delivery_id"], first);
    let new = done["parts"][0]["delivery_id"].as_str().unwrap().to_owned();
    assert_ne!(new, first, "a new delivery id");
    // East is told to withdraw what it has, then gets the new delivery.
    let items = deliveries(&shop);
    let kinds: Vec<(&str, Option<&str>)> = items
        .iter()
        .map(|i| (i["kind"].as_str().unwrap(), i["notice"].as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("notice", Some("withdraw")), ("deliver", None)],
        "{items:?}"
    );
    assert!(
        stdout(&shop.cli(&["outbox", "list"]))
            .contains("send east-wh a withdraw notice for order shop-test:1"),
    );
    let shown = shop.json(&["orders", "show", "shop-test:1", "--json"]);
    assert_eq!(shown["parts"][0]["delivery_id"], new.as_str());
    let last = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "delivery");
    assert_eq!(
        last["detail"],
        format!(
            "delivering again to east-wh (delivery {new}); east-wh took delivery {first} before: \
             withdraw notice queued"
        )
    );

    // Refused, saying why and what to do; nothing is queued.
    let refused = |args: &[&str]| {
        let out = shop.cli(args);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        stderr(&out)
    };
    shop.cli(&["orders", "hold", "shop-test:3", "--reason", "address check"]);
    let before = shop.json(&["outbox", "list", "--json"]);
    assert_eq!(
        refused(&["orders", "redeliver", "shop-test:3", "--yes"]).trim(),
        "order shop-test:3 is on hold (address check (set by hand)): release it first with \
         `switchyard orders release shop-test:3` (which delivers it if it was never delivered), \
         then redeliver"
    );
    assert_eq!(
        refused(&["orders", "redeliver", "shop-test:2", "--yes"]).trim(),
        "order shop-test:2 is pending (not paid yet): it is delivered once its channel reports \
         it ready"
    );
    assert!(
        refused(&["orders", "redeliver", "shop-test:9", "--yes"])
            .contains("no order \"shop-test:9\""),
    );
    shop.cli(&[
        "ship",
        "shop-test:1",
        "--carrier",
        "ups",
        "--tracking",
        "1Z1",
    ]);
    assert_eq!(
        refused(&["orders", "redeliver", "shop-test:1"]).trim(),
        "order shop-test:1 is shipped: there is nothing left to deliver"
    );
    let after = shop.json(&["outbox", "list", "--json"]);
    assert_eq!(
        after.as_array().unwrap().len(),
        before.as_array().unwrap().len() + 1,
        "only the shipment's tracking push was queued"
    );
}

/// The rules now send an order elsewhere than the delivery it went out in:
/// `rules apply` keeps the delivery, ends with the command that delivers it
/// where the rules send it now, and that command does.
#[test]
fn rules_apply_names_the_redelivery_command_for_an_order_it_would_not_move() {
    let shop = Shop::new(vec![tagged(1, &[])]);
    // Routed to the 3PL by earlier rules, and taken there.
    delivered_by_hand(&shop, "shop-test:1", true, |o| {
        o.order.route = Some("west-3pl".into());
        o.parts = vec![taken(&o.order, "west-3pl", "dlv_0123456789abcdef01234567")];
    });
    let hint = "1 order would keep lines with a destination the rules no longer send them to \
                (a delivery is never sent again by itself); to deliver it where the rules send \
                it now, once applied:\n  switchyard orders redeliver shop-test:1 --yes\n";
    let dry = stdout(&shop.cli(&["rules", "apply", "--dry-run"]));
    assert!(dry.ends_with(hint), "{dry}");
    let out = shop.cli(&["rules", "apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("route west-3pl -> east-wh")
            && text.ends_with(
                "1 order keeps lines with a destination the rules no longer send them to (a \
                 delivery is never sent again by itself); to deliver it where the rules send it \
                 now:\n  switchyard orders redeliver shop-test:1 --yes\n"
            ),
        "{text}"
    );
    let done = shop.json(&["orders", "redeliver", "shop-test:1", "--yes", "--json"]);
    assert_eq!(done["parts"][0]["destination"], "east-wh", "{done}");
    assert_eq!(done["withdrawn"][0]["destination"], "west-3pl", "{done}");
    // Nothing moves by itself afterwards: the rules and the delivery agree.
    let again = stdout(&shop.cli(&["rules", "apply"]));
    assert!(!again.contains("redeliver"), "{again}");
}

/// `orders list` says who holds each held order: a rule (by name) or a
/// person, in the table's HELD BY column and in `hold_by` of its JSON.
#[test]
fn orders_list_says_whether_a_rule_or_a_person_holds_each_order() {
    let shop = Shop::new(vec![unpaid(1), tagged(2, &[]), tagged(3, &[])]);
    let out = shop.cli(&["orders", "hold", "shop-test:3", "--reason", "address check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&shop.cli(&["orders", "list", "--oldest"]));
    // Cells are two or more spaces apart; a cell holds single spaces.
    let cells = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut lines = text.lines();
    let header = cells(lines.next().unwrap());
    assert_eq!(header[6..8], ["HOLD", "HELD BY"], "{text}");
    let rows: Vec<Vec<String>> = lines.map(cells).collect();
    let hold = |id: &str| {
        let row = rows.iter().find(|r| r[0] == id).unwrap();
        (row[6].clone(), row[7].clone())
    };
    assert_eq!(
        hold("shop-test:1"),
        ("awaiting payment".into(), "rule:awaiting-payment".into()),
        "{text}"
    );
    assert_eq!(hold("shop-test:2"), ("-".into(), "-".into()), "{text}");
    assert_eq!(
        hold("shop-test:3"),
        ("address check".into(), "person".into()),
        "{text}"
    );

    let held = shop.json(&["orders", "list", "--held", "--oldest", "--json"]);
    let by: Vec<(&str, &str)> = held
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o["hold_by"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by,
        [
            ("shop-test:1", "rule:awaiting-payment"),
            ("shop-test:3", "person")
        ]
    );
    let shown = shop.json(&["orders", "show", "shop-test:1", "--json"]);
    assert_eq!(shown["hold_by"], "rule:awaiting-payment");
    assert!(
        stdout(&shop.cli(&["orders", "show", "shop-test:1"]))
            .contains("hold awaiting payment (by rule awaiting-payment)"),
    );
    assert_eq!(shown["holds"]["rule_name"], "awaiting-payment");

    // A person's hold over a rule's is the person's; a released rule hold
    // holds nothing.
    shop.cli(&[
        "orders",
        "hold",
        "shop-test:1",
        "--reason",
        "call the buyer",
    ]);
    let shown = shop.json(&["orders", "show", "shop-test:1", "--json"]);
    assert_eq!(shown["hold_by"], "person");
    shop.cli(&["orders", "release", "shop-test:1"]);
    let all = shop.json(&["orders", "list", "--oldest", "--json"]);
    assert!(all[0]["hold_by"].is_null(), "{}", all[0]);

    // An element of the list reads back as an order, as `orders show --json` does.
    let file = shop.dir.path().join("listed.json");
    std::fs::write(&file, all[2].to_string()).unwrap();
    let out = shop.cli(&["rules", "explain", "--file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Rules that act on tags a person sets: `vip` goes west with a tag of its
/// own, `check-buyer` holds.
const HAND_TAG_RULES: &str = r#"
default_route = "east-wh"

[[rule]]
name = "vip-west"
when = { tag = "vip" }
then = { route = "west-3pl", tag = "priority-lane" }

[[rule]]
name = "check-buyer"
when = { tag = "check-buyer" }
then = { hold = "buyer check requested" }
"#;

fn history_kinds(shop: &Shop, id: &str) -> Vec<String> {
    let shown = shop.json(&["orders", "show", id, "--json"]);
    shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_tag_set_by_hand_is_listed_drives_the_rules_and_outlives_the_channel() {
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("rules.toml");
    std::fs::write(&rules, HAND_TAG_RULES).unwrap();
    let shop = Shop::with_rules(vec![tagged(1, &["wholesale"]), tagged(2, &[])], &rules);

    let out = shop.cli(&["orders", "tag", "shop-test:1", "vip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "shop-test:1: tagged vip by hand\n\
         shop-test:1: tags now wholesale, vip, priority-lane (by hand: vip)\n\
         shop-test:1: the rules, run again: +tag priority-lane; route east-wh -> west-3pl\n"
    );
    let found = shop.json(&["orders", "list", "--tag", "VIP", "--json"]);
    let found: Vec<(&str, &str)> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o["route"].as_str().unwrap()))
        .collect();
    assert_eq!(found, [("shop-test:1", "west-3pl")]);
    assert_eq!(history_kinds(&shop, "shop-test:1"), ["created", "tags"]);
    let shown = shop.json(&["orders", "show", "shop-test:1", "--json"]);
    assert_eq!(
        shown["history"][1]["detail"],
        "tags by hand: +vip; rules: +tag priority-lane; route east-wh -> west-3pl"
    );

    // What changes nothing says so and writes nothing.
    let out = shop.cli(&[
        "orders",
        "tag",
        "shop-test:1",
        "VIP",
        "--remove",
        "wholesale",
        "--remove",
        "priority-lane",
        "--remove",
        "rush",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "shop-test:1: unchanged: tag VIP is set by hand already\n\
         shop-test:1: unchanged: tag wholesale is not set by hand: it comes from shopify, so \
         take it off there (or `untag` it in a rule)\n\
         shop-test:1: unchanged: tag priority-lane is not set by hand: a rule adds it, so only \
         the rules can take it off (`switchyard rules explain --order shop-test:1` shows which \
         rule)\n\
         shop-test:1: unchanged: the order has no tag rush\n"
    );
    assert_eq!(history_kinds(&shop, "shop-test:1"), ["created", "tags"]);

    // Bad tags and unknown orders are refused, naming them.
    for args in [
        vec!["orders", "tag", "shop-test:1", "  "],
        vec!["orders", "tag", "shop-test:1", "ok", "--remove", ""],
    ] {
        let out = shop.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("empty tag"), "{}", stderr(&out));
    }
    let out = shop.cli(&["orders", "tag", "shop-test:1", "gift", "--remove", "GIFT"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("tag \"gift\" is both added and removed"),
        "{}",
        stderr(&out)
    );
    let out = shop.cli(&["orders", "tag", "shop-test:404", "vip"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no order \"shop-test:404\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(history_kinds(&shop, "shop-test:1"), ["created", "tags"]);

    // A new version from the channel keeps the hand-set tag and what the
    // rules make of it.
    let mut again = tagged(1, &["wholesale", "gift-wrap"]);
    again.updated_at = crate::common::at(11, 0);
    shop.receive(vec![again], &rules);
    let shown = shop.json(&["orders", "show", "shop-test:1", "--json"]);
    assert_eq!(
        shown["tags"],
        serde_json::json!(["wholesale", "gift-wrap", "vip", "priority-lane"])
    );
    assert_eq!(shown["route"], "west-3pl");
    assert_eq!(shown["manual_tags"], serde_json::json!(["vip"]));
    let text = stdout(&shop.cli(&["orders", "show", "shop-test:1"]));
    assert!(
        text.contains("tags wholesale, gift-wrap, vip, priority-lane (by hand: vip)\n"),
        "{text}"
    );

    // A hand-set tag a rule holds for, then taken off: the hold goes with it.
    let doc = shop.json(&["orders", "tag", "shop-test:2", "check-buyer", "--json"]);
    assert_eq!(doc["hold"], "buyer check requested");
    assert_eq!(doc["hold_by"], "rule:check-buyer");
    assert_eq!(doc["tagging"]["added"], serde_json::json!(["check-buyer"]));
    assert_eq!(doc["manual_tags"], serde_json::json!(["check-buyer"]));
    assert_eq!(
        doc["tagging"]["rules"]["after"]["hold"],
        "buyer check requested"
    );
    // What it prints reads back as an order, as `orders show --json` does.
    let file = shop.dir.path().join("tagged.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = shop.cli(&["rules", "explain", "--file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = shop.cli(&["orders", "tag", "shop-test:2", "--remove", "check-buyer"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "shop-test:2: the rules, run again: -tag check-buyer; hold buyer check requested -> none"
        ) || stdout(&out)
            .contains("shop-test:2: the rules, run again: hold buyer check requested -> none"),
        "{}",
        stdout(&out)
    );
    let held = shop.json(&["orders", "list", "--held", "--json"]);
    assert_eq!(held, serde_json::json!([]));

    // A shipped order only has its tags changed.
    shop.cli(&[
        "ship",
        "shop-test:2",
        "--carrier",
        "ups",
        "--tracking",
        "1Z1",
    ]);
    let out = shop.cli(&["orders", "tag", "shop-test:2", "check-buyer"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "shop-test:2: the order is shipped: the rules were not run again (only its tags changed)"
        ),
        "{}",
        stdout(&out)
    );
    let shown = shop.json(&["orders", "show", "shop-test:2", "--json"]);
    assert!(shown["hold"].is_null(), "{shown}");
    assert_eq!(
        shop.json(&["orders", "list", "--tag", "check-buyer", "--json"])[0]["id"],
        "shop-test:2"
    );
}

/// A hand-set tag that sends a delivered order elsewhere: the delivery stays
/// where it went, and the command names the redelivery, as `rules apply` does.
#[test]
fn tagging_a_delivered_order_the_rules_send_elsewhere_keeps_its_delivery() {
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("rules.toml");
    std::fs::write(&rules, HAND_TAG_RULES).unwrap();
    let shop = Shop::with_rules(vec![tagged(1, &[])], &rules);
    let delivery = "dlv_0123456789abcdef01234567";
    delivered_by_hand(&shop, "shop-test:1", true, |o| {
        o.parts = vec![taken(&o.order, "east-wh", delivery)];
    });
    let out = shop.cli(&["orders", "tag", "shop-test:1", "vip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "shop-test:1: tagged vip by hand\n\
             shop-test:1: tags now vip, priority-lane (by hand: vip)\n\
             shop-test:1: the rules, run again: +tag priority-lane; route east-wh -> west-3pl; \
             line 11 (MUG-RED) already delivered to east-wh (delivery {delivery}): not delivered \
             again\n\
             shop-test:1: a delivery is never sent again by itself; to deliver it where the rules \
             send it now: switchyard orders redeliver shop-test:1 --yes\n"
        )
    );
    let shown = shop.json(&["orders", "show", "shop-test:1", "--json"]);
    assert_eq!(shown["route"], "west-3pl");
    assert_eq!(shown["parts"][0]["destination"], "east-wh");
    assert_eq!(shown["parts"][0]["delivery_id"], delivery);
}
