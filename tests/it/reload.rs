//! Rules reload in a running `switchyard run`: SIGHUP with a broken rules
//! file keeps the rules in force (and `/metrics` counts the failure); a fixed
//! file on SIGHUP applies to the next order; a change of the file alone
//! (no signal) is picked up by the mtime poll.

use crate::common::{self, eventually};

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::daemon::{
    Binary, ConfigBuilder, ShopifyAccount, orders_create_numbered, post, shopify_signed,
};
use switchyard::sim::Simulator;
use switchyard::store::{Store, StoreOptions};
use switchyard_contract::Channel;

const WEBHOOK_SECRET: &str = "reload-test-webhook-secret";

/// Every rules file of this test has this length and, unless the test wants
/// the mtime poll to notice, the same modification time: then only SIGHUP
/// reloads, and the reload counts are exact.
const RULES_LEN: usize = 400;

fn write_rules(path: &Path, text: &str, touch: bool) {
    let mut text = text.to_owned();
    assert!(text.len() < RULES_LEN);
    text.push('#');
    while text.len() < RULES_LEN - 1 {
        text.push('-');
    }
    text.push('\n');
    std::fs::write(path, &text).unwrap();
    if !touch {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .unwrap();
    }
}

fn rules(tag: &str, route: &str) -> String {
    format!(
        "default_route = \"{route}\"\n\n[[rule]]\nname = \"mark\"\nwhen = {{ channel = \"shopify\" }}\nthen = {{ tag = \"{tag}\" }}\n"
    )
}

const BROKEN: &str = "default_route = \"nowhere\"\n\n[[rule]]\nname = \"mark\"\nwhen = { chanel = \"shopify\" }\nthen = { tag = \"rules-broken\" }\n";

/// A Shopify orders/create delivery of the fixture order with id `n`.
fn order_webhook(n: u64) -> (Vec<(String, String)>, Vec<u8>) {
    let body = serde_json::to_vec(&orders_create_numbered(n)).unwrap();
    let headers = shopify_signed(
        &body,
        WEBHOOK_SECRET,
        [
            ("content-type", "application/json"),
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-shop-domain", "switchyard-test.myshopify.com"),
            ("x-shopify-api-version", "2026-10"),
            ("x-shopify-webhook-id", &format!("wh-{n}")),
            ("x-shopify-event-id", &format!("evt-{n}")),
        ],
    );
    (headers, body)
}

async fn deliver(client: &reqwest::Client, addr: &str, n: u64) {
    let (headers, body) = order_webhook(n);
    let url = format!("http://{addr}/webhooks/shop-us");
    let (status, text) = post(client, &url, &headers, body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("1 new"), "{text}");
}

/// The value of one sample of `/metrics` (exact label text), 0 if absent.
async fn metric(client: &reqwest::Client, addr: &str, sample: &str) -> f64 {
    let url = format!("http://{addr}/metrics");
    common::daemon::metric(client, &url, sample)
        .await
        .unwrap_or(0.0)
}

async fn wait_metric(client: &reqwest::Client, addr: &str, sample: &str, want: f64) {
    eventually(
        &format!("{sample} {want}"),
        Duration::from_secs(15),
        async || {
            let got = metric(client, addr, sample).await;
            if got == want {
                Ok(())
            } else {
                Err(format!("{sample} is {got}"))
            }
        },
    )
    .await;
}

const FAILED: &str = "switchyard_rules_reloads_total{outcome=\"failed\"}";
const OK: &str = "switchyard_rules_reloads_total{outcome=\"ok\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rules_file_keeps_the_rules_in_force_and_a_fixed_one_applies() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let sim = Simulator::start(empty.path()).await.unwrap();
    let rules_path = dir.path().join("rules.toml");
    write_rules(&rules_path, &rules("rules-v1", "east-wh"), false);
    let config = ConfigBuilder::new(dir.path())
        .rules(&rules_path)
        .shutdown_timeout("5s")
        .account(
            ShopifyAccount::new("shop-us", &sim.base_url(Channel::Shopify))
                .webhook_secret(WEBHOOK_SECRET),
        )
        .write();
    let mut daemon = Binary::spawn(&config, |c| c.env("RUST_LOG", "info"));
    let addr = daemon.addr().await;
    let client = reqwest::Client::new();
    assert_eq!(metric(&client, &addr, "switchyard_rules").await, 1.0);

    deliver(&client, &addr, 1001).await;

    // A broken file and SIGHUP: counted, logged, the old rules stay.
    write_rules(&rules_path, BROKEN, false);
    daemon.signal("HUP");
    wait_metric(&client, &addr, FAILED, 1.0).await;
    assert_eq!(metric(&client, &addr, OK).await, 0.0);
    deliver(&client, &addr, 1002).await;

    // Fixed, and SIGHUP: the next order gets the new rules.
    write_rules(&rules_path, &rules("rules-v2", "west-3pl"), false);
    daemon.signal("HUP");
    wait_metric(&client, &addr, OK, 1.0).await;
    deliver(&client, &addr, 1003).await;

    // No signal: the file changing is enough (mtime poll, every 2 s).
    write_rules(&rules_path, &rules("rules-v3", "east-wh"), true);
    wait_metric(&client, &addr, OK, 2.0).await;
    deliver(&client, &addr, 1004).await;
    assert_eq!(metric(&client, &addr, FAILED).await, 1.0);
    assert_eq!(
        metric(
            &client,
            &addr,
            "switchyard_config_checks_total{outcome=\"ok\"}"
        )
        .await,
        2.0,
        "each SIGHUP re-checks the config"
    );

    let status = daemon
        .terminate(Duration::from_secs(20))
        .await
        .expect("no exit within 20 s of SIGTERM");
    let stderr = daemon.log();
    assert_eq!(status.code(), Some(0), "{stderr}");

    // Every error of the broken file is in the log, with its location.
    let located: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&format!("{}:", rules_path.display())))
        .collect();
    assert!(
        located.iter().any(|l| l.contains("nowhere")),
        "the unknown destination is logged:\n{stderr}"
    );
    assert!(
        located.iter().any(|l| l.contains("chanel")),
        "the unknown key is logged:\n{stderr}"
    );
    assert!(stderr.contains("rules reload failed"), "{stderr}");

    let store = Store::open(&dir.path().join("state"), StoreOptions::default()).unwrap();
    let decided = |n: u64| {
        let o = store
            .get_order(&format!("shop-us:{n}"))
            .unwrap()
            .unwrap_or_else(|| panic!("order {n} stored"))
            .order;
        (o.route.unwrap_or_default(), o.tags)
    };
    let (route, tags) = decided(1001);
    assert_eq!(route, "east-wh");
    assert!(tags.contains(&"rules-v1".to_owned()), "{tags:?}");
    let (route, tags) = decided(1002);
    assert_eq!(route, "east-wh", "the broken file changed nothing");
    assert!(tags.contains(&"rules-v1".to_owned()), "{tags:?}");
    assert!(!tags.contains(&"rules-broken".to_owned()), "{tags:?}");
    let (route, tags) = decided(1003);
    assert_eq!(
        route, "west-3pl",
        "the fixed file applies to the next order"
    );
    assert!(tags.contains(&"rules-v2".to_owned()), "{tags:?}");
    let (route, tags) = decided(1004);
    assert_eq!(route, "east-wh");
    assert!(tags.contains(&"rules-v3".to_owned()), "{tags:?}");
    drop(store);
    sim.stop().await;
}
