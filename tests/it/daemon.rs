//! The daemon with a real Shopify connector: webhooks through `daemon::run`'s
//! HTTP surface, `switchyard run` as a process (acknowledge, then SIGTERM
//! exits 0 with the data flushed), and `switchyard sync` against the simulator.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::daemon::{
    BIN, Binary, ConfigBuilder, InProcess, REPO, ShopifyAccount, post, shopify_signed,
};
use switchyard::sim::Simulator;
use switchyard::store::{Store, StoreOptions};
use switchyard_contract::OrderStatus;
use switchyard_contract::testkit::Scenario;

const SECRET: &str = "fixture-webhook-secret";
/// The secret before a rotation; Shopify may still sign with it for an hour.
const OLD_SECRET: &str = "rotated-out-webhook-secret";

fn write_config(dir: &Path, base_url: &str) -> PathBuf {
    ConfigBuilder::new(dir)
        .account(
            ShopifyAccount::new("shop-us", base_url)
                .webhook_secret(SECRET)
                .previous_webhook_secret(OLD_SECRET),
        )
        .write()
}

fn webhooks() -> Scenario {
    Scenario::load(&Path::new(REPO).join("fixtures/shopify/webhooks-orders")).unwrap()
}

fn signed(body: &[u8], headers: Vec<(String, String)>) -> Vec<(String, String)> {
    shopify_signed(body, SECRET, headers)
}

/// The daemon, with its store in `dir`, for a shop whose channel has no
/// orders to poll: only webhooks bring orders in.
async fn webhooks_only(dir: &Path) -> (Simulator, InProcess) {
    let empty = tempfile::tempdir().unwrap();
    let sim = Simulator::start(empty.path()).await.unwrap();
    let config = write_config(dir, &sim.base_url(switchyard_contract::Channel::Shopify));
    (sim, InProcess::start(&config).await)
}

#[tokio::test]
async fn shopify_webhooks_are_verified_deduplicated_ordered_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon) = webhooks_only(dir.path()).await;
    let url = daemon.url("/webhooks/shop-us");
    let client = reqwest::Client::new();
    let scenario = webhooks();
    let hook = |name: &str| {
        scenario
            .webhooks
            .iter()
            .find(|w| w.name == name)
            .unwrap()
            .clone()
    };
    let send = |name: &str| {
        let w = hook(name);
        let headers: Vec<(String, String)> = w.headers.clone().into_iter().collect();
        (signed(&w.body, headers), w.body)
    };

    // Bad and missing signatures: 401, nothing stored.
    let (mut headers, body) = send("orders-create");
    let (status, _) = post(&client, &url, &headers, b"{\"id\": 1}".to_vec()).await;
    assert_eq!(status, 401, "a body that does not match its signature");
    headers.retain(|(k, _)| k != "x-shopify-hmac-sha256");
    assert_eq!(post(&client, &url, &headers, body.clone()).await.0, 401);

    let (headers, body) = send("orders-create");
    let (status, text) = post(&client, &url, &headers, body).await;
    assert_eq!(
        (status, text.trim()),
        (
            200,
            "stored: 1 new, 0 updated, 0 unchanged, 0 older than stored"
        )
    );
    let (headers, body) = send("orders-updated-shipped");
    let (status, text) = post(&client, &url, &headers, body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("1 updated"), "{text}");
    // orders/paid was triggered before orders/updated but arrives after it.
    let (headers, body) = send("orders-paid-late");
    let (status, text) = post(&client, &url, &headers, body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("1 older than stored"), "{text}");
    // The same event again (a retry with a new webhook id): nothing changes.
    let (headers, body) = send("orders-create-again");
    let (status, text) = post(&client, &url, &headers, body).await;
    assert_eq!((status, text.trim()), (200, "duplicate: already stored"));
    let (headers, body) = send("products-update");
    let (status, text) = post(&client, &url, &headers, body).await;
    assert_eq!(status, 200);
    assert!(text.starts_with("ignored"), "{text}");
    // Valid signature, not an order: 400.
    let junk = b"[1, 2, 3]".to_vec();
    let (headers, _) = send("orders-create");
    let (status, _) = post(&client, &url, &signed(&junk, headers), junk).await;
    assert_eq!(status, 400);
    // Too large: 413 before anything is read into memory.
    let big = vec![b' '; switchyard::http::WEBHOOK_BODY_LIMIT + 10];
    let (headers, _) = send("orders-create");
    let (status, _) = post(&client, &url, &signed(&big, headers), big).await;
    assert_eq!(status, 413);

    // Signed with the secret from before a rotation: still accepted.
    let w = hook("orders-cancelled-webhook-id-only");
    let headers = shopify_signed(&w.body, OLD_SECRET, w.headers.clone());
    let (status, text) = post(&client, &url, &headers, w.body.clone()).await;
    assert_eq!(status, 200, "{text}");
    let wrong = shopify_signed(&w.body, "not-a-secret-of-ours", w.headers.clone());
    assert_eq!(post(&client, &url, &wrong, w.body).await.0, 401);

    let (_report, store) = daemon.stop().await;
    let cancelled = store.get_order("shop-us:5551234568").unwrap().unwrap();
    assert_eq!(cancelled.order.status, OrderStatus::Cancelled);
    let o = store.get_order("shop-us:5551234567").unwrap().unwrap();
    assert_eq!(
        store.list_orders(&Default::default()).unwrap().len(),
        2,
        "one order per channel order, whatever the deliveries"
    );
    let o = &o;
    assert_eq!(
        o.order.status,
        OrderStatus::Shipped,
        "the newest version wins"
    );
    let kinds: Vec<String> = store
        .history(&o.order.id)
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert_eq!(kinds, ["created", "updated", "stale_ignored"]);
    // The payload kept for audit is the body of the version stored, as
    // Shopify sent it.
    let sent: serde_json::Value =
        serde_json::from_slice(&hook("orders-updated-shipped").body).unwrap();
    assert_eq!(store.raw_payload(&o.order.id).unwrap(), Some(sent));
    drop(store);
    sim.stop().await;
}

/// A webhook body that gives a key the order reads twice is stored with
/// the last value, as it was before bodies were read straight into the
/// order; one that cannot be read is acknowledged, left out, logged and
/// counted, and one that is not JSON refused, as before.
#[tokio::test]
async fn a_webhook_body_with_a_repeated_key_is_stored_with_its_last_value() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon) = webhooks_only(dir.path()).await;
    let url = daemon.url("/webhooks/shop-us");
    let client = reqwest::Client::new();
    let w = webhooks()
        .webhooks
        .into_iter()
        .find(|w| w.name == "orders-create")
        .unwrap();
    let text = String::from_utf8(w.body.clone()).unwrap();
    let repeated = text
        .replacen(r#"{"id": 5551234567,"#, r#"{"id": 1, "id": 5551234567,"#, 1)
        .replacen(
            r#""financial_status": "pending""#,
            r#""financial_status": "pending", "financial_status": "paid""#,
            1,
        );
    assert_eq!(repeated.matches(r#""financial_status""#).count(), 2);
    let send = async |body: &str, event: &str| {
        let mut headers: Vec<(String, String)> = w.headers.clone().into_iter().collect();
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("x-shopify-event-id"));
        headers.push(("x-shopify-event-id".into(), event.into()));
        let headers = signed(body.as_bytes(), headers);
        post(&client, &url, &headers, body.as_bytes().to_vec()).await
    };

    let (status, answer) = send(&repeated, "evt-repeated").await;
    assert_eq!(
        (status, answer.trim()),
        (
            200,
            "stored: 1 new, 0 updated, 0 unchanged, 0 older than stored"
        )
    );
    // Unreadable whichever way it is read: a quantity that is no number.
    let unreadable = repeated.replacen(r#""quantity": 2,"#, r#""quantity": "two","#, 1);
    let unreadable = unreadable.replacen(
        r#"{"id": 1, "id": 5551234567,"#,
        r#"{"id": 1, "id": 5551234999,"#,
        1,
    );
    assert_ne!(unreadable, repeated);
    let (status, answer) = send(&unreadable, "evt-unreadable").await;
    assert_eq!(
        (status, answer.trim()),
        (
            200,
            "stored: 0 new, 0 updated, 0 unchanged, 0 older than stored"
        ),
        "acknowledged, so that Shopify does not send it for hours"
    );
    let rejected = common::daemon::metric(
        &client,
        &daemon.url("/metrics"),
        r#"switchyard_orders_rejected_total{account="shop-us"}"#,
    )
    .await;
    assert_eq!(rejected, Some(1.0), "the order left out is counted");
    let (status, _) = send(&repeated[..repeated.len() - 1], "evt-cut").await;
    assert_eq!(status, 400, "not JSON: refused");

    let (_report, store) = daemon.stop().await;
    let ids: Vec<String> = store
        .list_orders(&Default::default())
        .unwrap()
        .into_iter()
        .map(|o| o.order.id)
        .collect();
    assert_eq!(ids, ["shop-us:5551234567"]);
    let o = store.get_order("shop-us:5551234567").unwrap().unwrap();
    assert_eq!(
        o.order.payment,
        switchyard_contract::PaymentStatus::Paid,
        "the last value"
    );
    let last_wins: serde_json::Value = serde_json::from_str(&repeated).unwrap();
    assert_eq!(last_wins["financial_status"], "paid");
    assert_eq!(store.raw_payload(&o.order.id).unwrap(), Some(last_wins));
    assert_eq!(
        store.raw_payload_text(&o.order.id).unwrap().as_deref(),
        Some(repeated.as_bytes()),
        "the body kept as sent"
    );
    drop(store);
    sim.stop().await;
}

#[tokio::test]
async fn run_acknowledges_a_webhook_and_sigterm_exits_0_with_it_stored() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let sim = Simulator::start(empty.path()).await.unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(switchyard_contract::Channel::Shopify),
    );
    let mut daemon = Binary::spawn(&config, |c| c.env("RUST_LOG", "info"));
    let addr = daemon.addr().await;
    let scenario = webhooks();
    let w = scenario
        .webhooks
        .iter()
        .find(|w| w.name == "orders-create")
        .unwrap();
    let headers = signed(&w.body, w.headers.clone().into_iter().collect());
    let (status, text) = post(
        &reqwest::Client::new(),
        &format!("http://{addr}/webhooks/shop-us"),
        &headers,
        w.body.clone(),
    )
    .await;
    assert_eq!(status, 200, "{text}");

    let status = daemon
        .terminate(Duration::from_secs(20))
        .await
        .expect("the daemon did not stop within 20 s of SIGTERM");
    assert_eq!(status.code(), Some(0));
    let store = Store::open(&dir.path().join("state"), StoreOptions::default()).unwrap();
    assert_eq!(store.list_orders(&Default::default()).unwrap().len(), 1);
    drop(store);
    sim.stop().await;
}

#[tokio::test]
async fn sync_backfills_an_account_and_a_second_sync_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
        .await
        .unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(switchyard_contract::Channel::Shopify),
    );
    let out = run_sync(&config).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("shop-us: done, 6 orders in 2 pages (6 new, 0 updated)"),
        "{text}"
    );
    let out = run_sync(&config).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("(0 new, 0 updated)"), "{text}");
    let store = Store::open(&dir.path().join("state"), StoreOptions::default()).unwrap();
    assert_eq!(store.list_orders(&Default::default()).unwrap().len(), 6);
    assert!(store.cursor("shop-us").unwrap().is_some());
    // The inventory item behind each SKU is learned from the polled orders,
    // so the first stock push needs no catalog look-up.
    assert_eq!(
        store.listing("shop-us", "MUG-RED").unwrap(),
        Some(switchyard::store::ListingState::Ref(
            "gid://shopify/InventoryItem/44001".into()
        ))
    );
    drop(store);
    sim.stop().await;
}

/// The binary with `--config CONFIG ARGS...`, off the async threads.
async fn run_cli(config: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--config".to_owned(), config.to_str().unwrap().to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || Command::new(BIN).args(all).output().unwrap())
        .await
        .unwrap()
}

/// `switchyard sync shop-us --since 2026-11-01T00:00:00Z` as a user types it.
async fn run_sync(config: &Path) -> std::process::Output {
    run_cli(
        config,
        &["sync", "shop-us", "--since", "2026-11-01T00:00:00Z"],
    )
    .await
}

/// A config the command line can use to reach the running daemon: a fixed
/// free port (the CLI finds the daemon at daemon.listen) and an admin token.
fn config_for_the_command_line(dir: &Path, sim: &Simulator) -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ConfigBuilder::new(dir)
        .listen(&format!("127.0.0.1:{port}"))
        .admin_token("test-admin-token")
        .account(
            ShopifyAccount::new(
                "shop-us",
                &sim.base_url(switchyard_contract::Channel::Shopify),
            )
            .webhook_secret(SECRET),
        )
        .write()
}

#[tokio::test]
async fn sync_while_the_daemon_runs_goes_through_it_and_prints_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
        .await
        .unwrap();
    let config = config_for_the_command_line(dir.path(), &sim);
    let daemon = InProcess::start(&config).await;
    daemon.synced(&["shop-us"]).await;
    let running = run_sync(&config).await;
    assert!(
        running.status.success(),
        "{}",
        String::from_utf8_lossy(&running.stderr)
    );
    let (_report, store) = daemon.stop().await;
    drop(store);
    let stopped = run_sync(&config).await;
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let text = String::from_utf8_lossy(&running.stdout).into_owned();
    assert_eq!(
        text,
        String::from_utf8_lossy(&stopped.stdout),
        "same output running or stopped"
    );
    // Not a terminal: one plain line per page, then the result.
    assert!(text.starts_with("shop-us: 1 page, "), "{text}");
    assert!(
        text.contains("shop-us: done, 6 orders in 2 pages (0 new, 0 updated)"),
        "{text}"
    );

    // An unknown account is refused the same way in both modes.
    let daemon = InProcess::start(&config).await;
    let out = run_cli(&config, &["sync", "nobody"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nobody"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The daemon answers an account it has no connector for as any unknown
    // id: 404 and `{ "error" }`, naming the account and those it has...
    let refused = reqwest::Client::new()
        .post(daemon.url("/api/v1/sync/nobody"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let body: serde_json::Value = refused.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(r#"no account "nobody""#) && error.contains("its accounts: shop-us"),
        "{body}"
    );
    // ... which the command line shows for an account added to its config
    // after the daemon started.
    let later = dir.path().join("later.toml");
    let added = format!(
        "{}\n[[account]]\nid = \"shop-ca\"\nchannel = \"shopify\"\nbase_url = \"{}\"\n\
         poll_interval = \"1h\"\nwebhooks = true\naccess_token = \"test-token\"\n\
         webhook_secret = \"{SECRET}\"\n",
        std::fs::read_to_string(&config).unwrap(),
        sim.base_url(switchyard_contract::Channel::Shopify)
    );
    std::fs::write(&later, added).unwrap();
    let out = run_cli(&later, &["sync", "shop-ca"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            r#"no account "shop-ca" with a connector in this daemon (its accounts: shop-us)"#
        ) && err.contains("systemctl restart switchyard")
            && out.stdout.is_empty(),
        "{err}"
    );
    daemon.stop().await;
    sim.stop().await;
}

/// Each account's channel is asked once at start whether its credentials
/// and base URL work (in `/readyz`), and `switchyard check --online` asks
/// again: here when nothing runs, through the daemon when it does (whose
/// connectors hold the accounts' tokens), the same answer either way.
#[tokio::test]
async fn the_channel_check_runs_at_start_and_on_demand_while_running_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
        .await
        .unwrap();
    let config = config_for_the_command_line(dir.path(), &sim);

    let stopped = run_cli(&config, &["check", "--online", "--json"]).await;
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&stopped.stdout).unwrap();
    assert_eq!(report["online"][0]["account"], "shop-us");
    assert_eq!(report["online"][0]["ok"], true, "{report}");

    let daemon = InProcess::start(&config).await;
    let http = reqwest::Client::new();
    let check = common::eventually::eventually(
        "the check at start in /readyz",
        Duration::from_secs(20),
        async || {
            let ready: serde_json::Value = http
                .get(daemon.url("/readyz"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let check = ready["accounts"]["shop-us"]["check"].clone();
            if check.is_null() {
                Err(ready)
            } else {
                Ok(check)
            }
        },
    )
    .await;
    assert_eq!(check["ok"], true, "{check}");
    let running = run_cli(&config, &["check", "--online"]).await;
    assert!(
        running.status.success(),
        "{}",
        String::from_utf8_lossy(&running.stderr)
    );
    assert!(
        String::from_utf8_lossy(&running.stdout).contains("shop-us: online check ok"),
        "{}",
        String::from_utf8_lossy(&running.stdout)
    );
    daemon.stop().await;

    // A shop that does not answer: the check says so and exits 1.
    let broken = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::new(broken.path())
        .account(ShopifyAccount::new("shop-us", "http://127.0.0.1:9").webhook_secret(SECRET))
        .write();
    let out = run_cli(&config, &["check", "--online"]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shop-us: online check failed: transient"),
        "{text}"
    );
    sim.stop().await;
}

/// `switchyard sync` against a shop whose cost bucket runs dry between two
/// pages: Shopify throttles the second page, the backfill says it waits and
/// until when, and goes on by itself to the end (it used to stop and ask to
/// be run again).
#[tokio::test]
async fn a_backfill_waits_out_the_shops_rate_limit_and_goes_on_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        Scenario::load(&Path::new(REPO).join("fixtures/shopify/poll-multi-page")).unwrap();
    let sim = Simulator::from_scenarios(switchyard_contract::Channel::Shopify, vec![scenario])
        .await
        .unwrap();
    // Room for one page (938 points asked, 62 spent), then 20 points a
    // second: the second page is throttled for about a second and a half.
    common::sims::ShopifySimExt::set_shopify_bucket(
        &sim,
        switchyard_shopify::sim::CostBucket::new(970.0, 20.0),
    );
    let config = ConfigBuilder::new(dir.path())
        .account(
            ShopifyAccount::new(
                "shop-us",
                &sim.base_url(switchyard_contract::Channel::Shopify),
            )
            .webhook_secret(SECRET),
        )
        .write();
    let out = run_cli(
        &config,
        &["sync", "shop-us", "--since", "2026-11-26T00:00:00Z"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sim.throttled() >= 1, "the shop never throttled");
    assert!(
        stdout.contains("waiting for the channel's rate limit until "),
        "{stdout}"
    );
    assert!(stdout.contains("shop-us: done"), "{stdout}");
    assert!(stdout.contains("2 pages"), "{stdout}");
    sim.stop().await;
}

#[tokio::test]
async fn run_names_outbox_items_that_no_worker_of_the_config_sends_and_keeps_them() {
    use switchyard::store::{Job, NewOutboxItem};
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let sim = Simulator::start(empty.path()).await.unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(switchyard_contract::Channel::Shopify),
    );
    // Pushes queued for an account that has since left the config.
    let state = dir.path().join("state");
    let store = Store::open(&state, StoreOptions::default()).unwrap();
    let now = chrono::Utc::now();
    let items = ["MUG-1", "MUG-2"]
        .map(|sku| NewOutboxItem {
            account: "shop-gone".into(),
            job: Job::PushStock { sku: sku.into() },
            coalesce_key: None,
            not_before: now,
        })
        .to_vec();
    store.outbox_add(items, now).unwrap();
    store.close().unwrap();
    // The daemon does not wait for the lock that this process's store engine
    // lets go of a moment after the close; the command line does, and once
    // it has read the store and exited nothing holds it.
    let listed = run_cli(&config, &["outbox", "list", "--json"]).await;
    assert!(
        listed.status.success(),
        "{}",
        common::daemon::stderr(&listed)
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let queued = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["account"] == "shop-gone")
        .count();
    assert_eq!(queued, 2, "{listed}");

    let mut daemon = Binary::spawn(&config, |c| c.env("RUST_LOG", "info"));
    daemon.addr().await;
    common::eventually(
        "a warning naming shop-gone",
        Duration::from_secs(20),
        async || {
            let log = daemon.log();
            match log
                .lines()
                .find(|l| l.contains("2 outbox items wait for shop-gone"))
            {
                Some(line) if line.contains("WARN") && line.contains("outbox drop") => Ok(()),
                _ => Err(log),
            }
        },
    )
    .await;
    assert!(
        !daemon.log().contains("wait for shop-us"),
        "the configured account is served: {}",
        daemon.log()
    );
    let status = daemon
        .terminate(Duration::from_secs(20))
        .await
        .expect("the daemon did not stop within 20 s of SIGTERM");
    assert_eq!(status.code(), Some(0));
    let store = Store::open(&state, StoreOptions::default()).unwrap();
    let waiting: Vec<String> = store
        .outbox_list(false)
        .unwrap()
        .into_iter()
        .filter(|i| i.account == "shop-gone")
        .map(|i| i.id)
        .collect();
    assert_eq!(waiting.len(), 2, "nothing was dropped");
    drop(store);
    sim.stop().await;
}
