//! The logs of a full `switchyard run` cycle (start against the simulator,
//! poll, take a webhook, deliver to a destination, push stock, SIGTERM) at
//! the most verbose levels: no configured secret appears anywhere in them,
//! there are no colour codes when stderr is not a terminal, and the spans
//! carry channel, account and order. Once as text, once as JSON lines.

use crate::common::{self, eventually};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daemon::{
    Binary, ConfigBuilder, Destination, REPO, ShopifyAccount, paid_order_webhook, post,
};
use switchyard::sim::Simulator;
use switchyard_contract::Channel;

/// Every secret of the config, each given a different way.
const ACCESS_TOKEN: &str = "shpat-LOGTEST-7f3c9a1e5b2d4c6a"; // access_token_file (credentials dir)
const WEBHOOK_SECRET: &str = "whsec-LOGTEST-0b8e2f4a6c1d3e5f"; // webhook_secret_env
const ADMIN_TOKEN: &str = "admin-LOGTEST-93ad0c7e1f5b2a48"; // admin_token_file (credentials dir)
const EAST_SECRET: &str = "dest-LOGTEST-east-5e1a9c3b7d2f"; // secret_env
const WEST_SECRET: &str = "dest-LOGTEST-west-4c8b2e6a0d9f"; // secret (in the file)
const SECRETS: [&str; 5] = [
    ACCESS_TOKEN,
    WEBHOOK_SECRET,
    ADMIN_TOKEN,
    EAST_SECRET,
    WEST_SECRET,
];

fn write_config(dir: &Path, base_url: &str, destination: &str, json: bool) -> PathBuf {
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "default_route = \"east-wh\"\n\n[[rule]]\nname = \"canada\"\nwhen = { country = \"CA\" }\nthen = { route = \"west-3pl\", tag = \"canada\" }\n",
    )
    .unwrap();
    ConfigBuilder::new(dir)
        .rules(&rules)
        .daemon("log_format", if json { "json" } else { "text" })
        .shutdown_timeout("5s")
        .daemon("admin_token_file", "admin-token")
        .account(
            ShopifyAccount::new("shop-us", base_url)
                .start_date("2026-11-01T00:00:00Z")
                .access_token_file("shop-us-token")
                .webhook_secret_env("LOGTEST_WEBHOOK_SECRET"),
        )
        .destinations(vec![
            Destination::webhook("east-wh", &format!("{destination}/east"))
                .secret_env("LOGTEST_EAST_SECRET"),
            Destination::webhook("west-3pl", &format!("{destination}/west")).secret(WEST_SECRET),
        ])
        .write()
}

fn credentials(dir: &Path) -> PathBuf {
    let creds = dir.join("credentials");
    std::fs::create_dir(&creds).unwrap();
    for (name, value) in [
        ("shop-us-token", ACCESS_TOKEN),
        ("admin-token", ADMIN_TOKEN),
    ] {
        let path = creds.join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    creds
}

/// A destination that takes every delivery (200) and remembers its path and body.
async fn destination() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push((uri.path().to_owned(), body));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

/// Runs the daemon for a whole cycle and returns its stderr.
async fn full_cycle(json: bool, rust_log: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
        .await
        .unwrap();
    let (dest_url, deliveries) = destination().await;
    let config = write_config(dir.path(), &sim.base_url(Channel::Shopify), &dest_url, json);
    let creds = credentials(dir.path());
    let mut daemon = Binary::spawn(&config, |c| {
        c.env("RUST_LOG", rust_log)
            .env("CREDENTIALS_DIRECTORY", &creds)
            .env("LOGTEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("LOGTEST_EAST_SECRET", EAST_SECRET)
            .env_remove("NO_COLOR")
    });
    let addr = daemon.addr().await;
    let client = reqwest::Client::new();

    let (headers, body) = paid_order_webhook(8001, WEBHOOK_SECRET);
    let url = format!("http://{addr}/webhooks/shop-us");
    let (status, text) = post(&client, &url, &headers, body).await;
    assert_eq!(status, 200, "{text}");
    // The admin API with its token (whatever it answers, the token stays out of the logs).
    let _ = client
        .get(format!("http://{addr}/api/v1/orders"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();

    // The webhook's order reaches its destination (a signed delivery); the
    // polled orders are delivered too, so wait for this one by its id.
    eventually(
        "the webhook's delivery",
        Duration::from_secs(20),
        async || {
            let delivered = deliveries
                .lock()
                .unwrap()
                .iter()
                .any(|(path, body)| path == "/east" && body.contains("\"shop-us:8001\""));
            if delivered { Ok(()) } else { Err(daemon.log()) }
        },
    )
    .await;

    let status = daemon
        .terminate(Duration::from_secs(20))
        .await
        .expect("no exit within 20 s of SIGTERM");
    let stderr = daemon.log();
    // LOGTEST_DUMP=DIR keeps the logs for a look.
    if let Some(dump) = std::env::var_os("LOGTEST_DUMP") {
        let name = if json { "json.log" } else { "text.log" };
        std::fs::write(Path::new(&dump).join(name), &stderr).unwrap();
    }
    assert_eq!(status.code(), Some(0), "{}", tail(&stderr));
    assert!(
        sim.requests().iter().any(|r| r.channel == Channel::Shopify),
        "the account was polled"
    );
    sim.stop().await;
    stderr
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn assert_no_secrets(stderr: &str) {
    assert!(stderr.len() > 1000, "hardly any log:\n{stderr}");
    for secret in SECRETS {
        let found: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(secret))
            .take(3)
            .collect();
        assert!(
            found.is_empty(),
            "a secret is in the log ({} lines of log):\n{}",
            stderr.lines().count(),
            found.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_at_trace_hold_no_secret_and_no_colour_and_carry_spans() {
    let stderr = full_cycle(false, "trace").await;
    assert_no_secrets(&stderr);
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes while stderr is a file"
    );
    let has = |needle: &str| stderr.lines().any(|l| l.contains(needle));
    assert!(
        has("poll{channel=shopify account=shop-us}"),
        "poll span:\n{}",
        tail(&stderr)
    );
    assert!(
        has("webhook{channel=shopify account=shop-us order=shop-us:8001}"),
        "webhook span"
    );
    assert!(
        stderr.lines().any(
            |l| l.contains("outbox{account=destination:east-wh}:send{kind=deliver")
                && l.contains("order=shop-us:8001")
        ),
        "outbox send span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_at_debug_hold_no_secret_and_carry_spans() {
    let stderr = full_cycle(true, "debug").await;
    assert_no_secrets(&stderr);
    let mut spans = std::collections::BTreeSet::new();
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for span in v["spans"].as_array().into_iter().flatten() {
            let name = span["name"].as_str().unwrap_or_default();
            let mut fields: Vec<String> = ["channel", "account", "order"]
                .iter()
                .filter(|k| span.get(**k).is_some())
                .map(|k| k.to_string())
                .collect();
            fields.insert(0, name.to_owned());
            spans.insert(fields.join(" "));
        }
    }
    for want in [
        "poll channel account",
        "webhook channel account order",
        "outbox account",
        "send order",
    ] {
        assert!(spans.contains(want), "no span {want:?} in {spans:?}");
    }
}
