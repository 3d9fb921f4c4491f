//! The daemon with a real Shopify connector: webhooks through `app::run`'s
//! HTTP surface, `switchyard run` as a process (acknowledge, then SIGTERM
//! exits 0 with the data flushed), and `switchyard sync` against the simulator.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::app::{RunOptions, run};
use switchyard::sim::Simulator;
use switchyard::store::{Store, StoreOptions};
use switchyard_contract::testkit::Scenario;
use switchyard_contract::{OrderStatus, Secret};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SECRET: &str = "fixture-webhook-secret";
/// The secret before a rotation; Shopify may still sign with it for an hour.
const OLD_SECRET: &str = "rotated-out-webhook-secret";

fn write_config(dir: &Path, base_url: &str, listen: &str) -> PathBuf {
    let path = dir.join("switchyard.toml");
    let text = format!(
        r#"[daemon]
state_dir = "{state}"
listen = "{listen}"
rules = "{REPO}/config/rules.toml"

[[account]]
id = "shop-us"
channel = "shopify"
base_url = "{base_url}"
poll_interval = "1h"
webhooks = true
access_token = "test-token"
webhook_secret = "{SECRET}"
webhook_secret_previous = "{OLD_SECRET}"

[[destination]]
id = "east-wh"
kind = "webhook"
url = "http://127.0.0.1:9/east"
secret = "test-secret-east"

[[destination]]
id = "west-3pl"
kind = "webhook"
url = "http://127.0.0.1:9/west"
secret = "test-secret-west"
"#,
        state = dir.join("state").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn webhooks() -> Scenario {
    Scenario::load(&Path::new(REPO).join("fixtures/shopify/webhooks-orders")).unwrap()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn signed(body: &[u8], headers: Vec<(String, String)>) -> Vec<(String, String)> {
    signed_with(SECRET, body, headers)
}

fn signed_with(
    secret: &str,
    body: &[u8],
    mut headers: Vec<(String, String)>,
) -> Vec<(String, String)> {
    headers.retain(|(k, _)| k != "x-shopify-hmac-sha256");
    headers.push((
        "x-shopify-hmac-sha256".into(),
        switchyard_shopify::webhook::sign(body, &Secret::new(secret)),
    ));
    headers
}

#[tokio::test]
async fn shopify_webhooks_are_verified_deduplicated_ordered_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let sim = Simulator::start(empty.path()).await.unwrap();
    let config_path = write_config(
        dir.path(),
        &sim.base_url(switchyard_contract::Channel::Shopify),
        "127.0.0.1:0",
    );
    let config = switchyard::config::load(&config_path).unwrap();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let addr_tx = std::sync::Mutex::new(Some(addr_tx));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = RunOptions {
        on_ready: Some(Arc::new(move |addr| {
            if let Some(tx) = addr_tx.lock().unwrap().take() {
                let _ = tx.send(addr);
            }
        })),
        ..RunOptions::default()
    };
    let daemon = tokio::spawn(run(config, options, async {
        let _ = stop_rx.await;
    }));
    let url = format!("http://{}/webhooks/shop-us", addr_rx.await.unwrap());
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
    let headers = signed_with(OLD_SECRET, &w.body, w.headers.clone().into_iter().collect());
    let (status, text) = post(&client, &url, &headers, w.body.clone()).await;
    assert_eq!(status, 200, "{text}");
    let wrong = signed_with(
        "not-a-secret-of-ours",
        &w.body,
        w.headers.clone().into_iter().collect(),
    );
    assert_eq!(post(&client, &url, &wrong, w.body).await.0, 401);

    let _ = stop_tx.send(());
    let (_report, store) = daemon.await.unwrap().unwrap();
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
    drop(store);
    sim.stop().await;
}

/// Reads the child's stderr until the daemon logs the address it bound.
fn bound_address(stderr: std::process::ChildStderr) -> String {
    let mut reader = BufReader::new(stderr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains("switchyard started")
            && let Some(rest) = line.split("addr=").nth(1)
        {
            let addr = rest.split_whitespace().next().unwrap().to_owned();
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in reader.lines() {});
            return addr;
        }
    }
    panic!("the daemon never said where it listens");
}

#[tokio::test]
async fn run_acknowledges_a_webhook_and_sigterm_exits_0_with_it_stored() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let sim = Simulator::start(empty.path()).await.unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(switchyard_contract::Channel::Shopify),
        "127.0.0.1:0",
    );
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || bound_address(stderr))
        .await
        .unwrap();
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

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exited = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let status = exited.expect("the daemon did not stop within 20 s of SIGTERM");
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
        "127.0.0.1:0",
    );
    let run_sync = |config: PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args([
                    "--config",
                    config.to_str().unwrap(),
                    "sync",
                    "shop-us",
                    "--since",
                    "2026-11-01T00:00:00Z",
                ])
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let out = run_sync(config.clone()).await;
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
    let out = run_sync(config.clone()).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("(0 new, 0 updated)"), "{text}");
    let store = Store::open(&dir.path().join("state"), StoreOptions::default()).unwrap();
    assert_eq!(store.list_orders(&Default::default()).unwrap().len(), 6);
    assert!(store.cursor("shop-us").unwrap().is_some());
    // The inventory item behind each SKU is learned from the polled orders,
    // so the first stock push needs no catalog look-up.
    assert_eq!(
        store.listing_ref("shop-us", "MUG-RED").unwrap().as_deref(),
        Some("gid://shopify/InventoryItem/44001")
    );
    drop(store);
    sim.stop().await;
}
