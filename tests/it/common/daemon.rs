//! The daemon as the integration tests drive it: a `switchyard.toml` from a
//! builder, the daemon run in-process (`daemon::run`) or as the `switchyard`
//! binary, the binary's command line, and signed Shopify webhook deliveries.
//!
//! Declared by `tests/common/mod.rs` and included by path from
//! `benches/webhooks.rs`, so it stands alone (nothing from `super`).

// No test uses all of it, and each test crate compiles it whole.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::eventually::eventually;

use switchyard::daemon::{RunOptions, RunReport, run};
use switchyard::store::Store;
use switchyard_contract::Secret;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The entries of one TOML table, in the order first set. Values are TOML
/// literals, so dates and numbers can go in unquoted.
#[derive(Clone, Debug, Default)]
struct Table(Vec<(String, String)>);

impl Table {
    fn raw(&mut self, key: &str, literal: String) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = literal,
            None => self.0.push((key.to_owned(), literal)),
        }
    }

    fn string(&mut self, key: &str, value: &str) {
        self.raw(key, quote(value));
    }

    fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    fn render(&self, header: &str, out: &mut String) {
        out.push_str(header);
        out.push('\n');
        for (key, literal) in &self.0 {
            writeln!(out, "{key} = {literal}").unwrap();
        }
    }
}

/// A TOML basic string: temporary paths may hold anything.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A `switchyard.toml` in a test's temporary folder. Unless told otherwise:
/// the store in `<dir>/state`, listening on `127.0.0.1:0`, the example
/// `config/rules.toml`, no account, and the two warehouses those rules route
/// to at a port nobody answers on ([`warehouses`]).
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    path: PathBuf,
    daemon: Table,
    accounts: Vec<Table>,
    destinations: Vec<Destination>,
}

impl ConfigBuilder {
    pub fn new(dir: &Path) -> ConfigBuilder {
        let mut daemon = Table::default();
        daemon.string("state_dir", &dir.join("state").display().to_string());
        daemon.string("listen", "127.0.0.1:0");
        daemon.string("rules", &format!("{REPO}/config/rules.toml"));
        ConfigBuilder {
            path: dir.join("switchyard.toml"),
            daemon,
            accounts: Vec::new(),
            destinations: warehouses("http://127.0.0.1:9/east", "http://127.0.0.1:9/west"),
        }
    }

    /// Another file name in the same folder (same state), for a second
    /// config beside the first.
    pub fn file_name(mut self, name: &str) -> Self {
        self.path.set_file_name(name);
        self
    }

    pub fn listen(mut self, addr: &str) -> Self {
        self.daemon.string("listen", addr);
        self
    }

    /// No `listen` at all: the command line then assumes the default address.
    pub fn without_listen(mut self) -> Self {
        self.daemon.remove("listen");
        self
    }

    pub fn rules(mut self, path: &Path) -> Self {
        self.daemon.string("rules", &path.display().to_string());
        self
    }

    pub fn shutdown_timeout(mut self, duration: &str) -> Self {
        self.daemon.string("shutdown_timeout", duration);
        self
    }

    pub fn admin_token(mut self, token: &str) -> Self {
        self.daemon.string("admin_token", token);
        self
    }

    /// Any other string setting of `[daemon]` (`log_format`, `admin_token_file`).
    pub fn daemon(mut self, key: &str, value: &str) -> Self {
        self.daemon.string(key, value);
        self
    }

    pub fn account(mut self, account: ShopifyAccount) -> Self {
        self.accounts.push(account.0);
        self
    }

    pub fn etsy_account(mut self, account: EtsyAccount) -> Self {
        self.accounts.push(account.0);
        self
    }

    /// Replaces the destinations (an empty list: none at all).
    pub fn destinations(mut self, destinations: Vec<Destination>) -> Self {
        self.destinations = destinations;
        self
    }

    /// Writes the file and answers its path.
    pub fn write(&self) -> PathBuf {
        let mut text = String::new();
        self.daemon.render("[daemon]", &mut text);
        for account in &self.accounts {
            text.push('\n');
            account.render("[[account]]", &mut text);
        }
        for destination in &self.destinations {
            text.push('\n');
            destination.0.render("[[destination]]", &mut text);
        }
        std::fs::write(&self.path, text).unwrap();
        self.path.clone()
    }
}

/// One `[[account]]` of channel `shopify`: polled hourly, webhooks on, the
/// access token `test-token` (the simulator takes any).
#[derive(Clone, Debug)]
pub struct ShopifyAccount(Table);

impl ShopifyAccount {
    pub fn new(id: &str, base_url: &str) -> ShopifyAccount {
        let mut t = Table::default();
        t.string("id", id);
        t.string("channel", "shopify");
        t.string("base_url", base_url);
        t.string("poll_interval", "1h");
        t.raw("webhooks", "true".into());
        t.string("access_token", "test-token");
        ShopifyAccount(t)
    }

    pub fn webhook_secret(mut self, secret: &str) -> Self {
        self.0.string("webhook_secret", secret);
        self
    }

    /// The secret from before a rotation, still accepted.
    pub fn previous_webhook_secret(mut self, secret: &str) -> Self {
        self.0.string("webhook_secret_previous", secret);
        self
    }

    /// RFC 3339, e.g. `2026-11-01T00:00:00Z`: how far back the first poll reaches.
    pub fn start_date(mut self, date: &str) -> Self {
        self.0.raw("start_date", date.to_owned());
        self
    }

    /// Units held back from what the shop is told it has.
    pub fn buffer(mut self, units: u32) -> Self {
        self.0.raw("buffer", units.to_string());
        self
    }

    /// The access token from this file of `$CREDENTIALS_DIRECTORY` instead.
    pub fn access_token_file(mut self, name: &str) -> Self {
        self.0.remove("access_token");
        self.0.string("access_token_file", name);
        self
    }

    /// The webhook secret from this environment variable instead.
    pub fn webhook_secret_env(mut self, var: &str) -> Self {
        self.0.remove("webhook_secret");
        self.0.string("webhook_secret_env", var);
        self
    }
}

/// One `[[account]]` of channel `etsy`: polled hourly, webhooks on, test
/// credentials (the simulated shop takes the first refresh token it sees and
/// rotates it from then on).
#[derive(Clone, Debug)]
pub struct EtsyAccount(Table);

impl EtsyAccount {
    pub fn new(id: &str, base_url: &str, webhook_secret: &str) -> EtsyAccount {
        let mut t = Table::default();
        t.string("id", id);
        t.string("channel", "etsy");
        t.string("base_url", base_url);
        t.string("poll_interval", "1h");
        t.raw("webhooks", "true".into());
        t.raw("shop_id", "12345678".into());
        t.string("api_key", "test-keystring");
        t.string("shared_secret", "test-shared-secret");
        t.string("refresh_token", "test-refresh-token");
        t.string("webhook_secret", webhook_secret);
        EtsyAccount(t)
    }
}

/// One `[[destination]]` of kind `webhook`; give it a signing secret, in
/// the file ([`Destination::secret`]) or from the environment.
#[derive(Clone, Debug)]
pub struct Destination(Table);

impl Destination {
    pub fn webhook(id: &str, url: &str) -> Destination {
        let mut t = Table::default();
        t.string("id", id);
        t.string("kind", "webhook");
        t.string("url", url);
        Destination(t)
    }

    pub fn secret(mut self, secret: &str) -> Self {
        self.0.string("secret", secret);
        self
    }

    /// The signing secret from this environment variable.
    pub fn secret_env(mut self, var: &str) -> Self {
        self.0.string("secret_env", var);
        self
    }

    /// `rate` (deliveries a second) and `concurrency` (at once).
    pub fn pace(mut self, rate: f64, concurrency: u32) -> Self {
        self.0.raw("rate", format!("{rate:?}"));
        self.0.raw("concurrency", concurrency.to_string());
        self
    }
}

/// `east-wh` and `west-3pl`, the destinations `config/rules.toml` routes
/// to, at these URLs, with the secrets `test-secret-east` and `test-secret-west`.
pub fn warehouses(east_url: &str, west_url: &str) -> Vec<Destination> {
    vec![
        Destination::webhook("east-wh", east_url).secret("test-secret-east"),
        Destination::webhook("west-3pl", west_url).secret("test-secret-west"),
    ]
}

/// The daemon running inside the test (`daemon::run` on the test's runtime),
/// which hands back its run report and store when stopped.
pub struct InProcess {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<(RunReport, Store)>>,
}

impl InProcess {
    /// Loads the config, starts the daemon and waits (20 s at the most)
    /// until it listens. Dropped without [`InProcess::stop`], the daemon is
    /// asked to stop but nobody waits for it.
    pub async fn start(config: &Path) -> InProcess {
        let config = switchyard::config::load(config).unwrap();
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        // `on_ready` is a shared `Fn`; the sender can be used once only.
        let addr_tx = Mutex::new(Some(addr_tx));
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let options = RunOptions {
            on_ready: Some(Arc::new(move |addr| {
                if let Some(tx) = addr_tx.lock().unwrap().take() {
                    let _ = tx.send(addr);
                }
            })),
            ..RunOptions::default()
        };
        let task = tokio::spawn(run(config, options, async {
            let _ = stop_rx.await;
        }));
        let addr = match tokio::time::timeout(Duration::from_secs(20), addr_rx).await {
            Err(_) => panic!("the daemon was not ready within 20 s"),
            Ok(Ok(addr)) => addr,
            Ok(Err(_)) => panic!(
                "the daemon stopped before it was ready: {:?}",
                task.await.map(|r| r.map(|_| ()))
            ),
        };
        InProcess { addr, stop, task }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits (20 s at the most) until each account has caught up with its
    /// channel once, as `/readyz` tells.
    pub async fn synced(&self, accounts: &[&str]) {
        let http = reqwest::Client::new();
        let what = format!("{accounts:?} to sync");
        eventually(&what, Duration::from_secs(20), async || {
            let ready: serde_json::Value = http
                .get(self.url("/readyz"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let synced = accounts
                .iter()
                .all(|id| !ready["accounts"][id]["last_success"].is_null());
            if synced { Ok(()) } else { Err(ready) }
        })
        .await
    }

    /// Asks the daemon to stop and answers what `daemon::run` returned.
    pub async fn stop(self) -> (RunReport, Store) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap()
    }
}

/// `switchyard --config <config> run` as a child process, its stderr in
/// `stderr.log` beside the config (a file, so the child never blocks on a
/// full pipe and the test can read it all afterwards). Killed when dropped
/// unless it has exited, so a failing test leaves no daemon behind.
pub struct Binary {
    child: Child,
    log: PathBuf,
}

impl Binary {
    /// `env` sets the child's environment (`RUST_LOG` at least).
    pub fn spawn(config: &Path, env: impl FnOnce(&mut Command) -> &mut Command) -> Binary {
        let log = config.with_file_name("stderr.log");
        let mut command = Command::new(BIN);
        command
            .args(["--config", config.to_str().unwrap(), "run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        env(&mut command);
        Binary {
            child: command.spawn().unwrap(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -<name>` the child, e.g. `HUP`, `TERM`.
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// Everything the child wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address from the log's "switchyard started" line (text or JSON),
    /// waiting 30 s at the most.
    pub async fn addr(&mut self) -> String {
        let what = "the daemon to say where it listens";
        eventually(what, Duration::from_secs(30), async || {
            let text = self.log();
            // Only whole lines: the child may be half-way through one.
            let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            if let Some(addr) = whole.lines().find_map(started_addr) {
                return Ok(addr);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the daemon exited ({status}) before it listened:\n{text}");
            }
            Err(text)
        })
        .await
    }

    /// SIGTERM, then [`Binary::wait_exit`].
    pub async fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.wait_exit(within).await
    }

    /// The exit status once the child has exited, or None if it is still
    /// running after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        // Not exiting in time is an answer here (None), not a failure.
        let exited = async {
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(within, exited).await.ok()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn started_addr(line: &str) -> Option<String> {
    if !line.contains("switchyard started") {
        return None;
    }
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        return v["fields"]["addr"].as_str().map(str::to_owned);
    }
    let rest = line.split("addr=").nth(1)?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// `kill -<name> <pid>`, which must succeed.
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// The binary for a one-off command, without the caller's
/// `SWITCHYARD_CONFIG` and `RUST_LOG`, so only its arguments count.
pub fn command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("RUST_LOG");
    command
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The recorded `orders/create` body of `fixtures/shopify/webhooks-orders`
/// (order 5551234567).
pub fn orders_create() -> serde_json::Value {
    let path =
        Path::new(REPO).join("fixtures/shopify/webhooks-orders/webhooks/01-orders-create.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// [`orders_create`] as order `n` (id, GraphQL id and name), so each
/// delivery is a new order.
pub fn orders_create_numbered(n: u64) -> serde_json::Value {
    let mut order = orders_create();
    order["id"] = n.into();
    order["admin_graphql_api_id"] = format!("gid://shopify/Order/{n}").into();
    order["name"] = format!("#{n}").into();
    order
}

/// `order` (an `orders/create` body) as a webhook signed under `secret`,
/// its webhook id taken from the order's: its headers and body.
pub fn orders_create_webhook(
    order: &serde_json::Value,
    secret: &str,
) -> (Vec<(String, String)>, Vec<u8>) {
    let body = serde_json::to_vec(order).unwrap();
    let headers = shopify_signed(
        &body,
        secret,
        [
            ("content-type", "application/json"),
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-webhook-id", &format!("wh-{}", order["id"])),
        ],
    );
    (headers, body)
}

/// Paid order `n` (so it is delivered) as a signed `orders/create` webhook.
pub fn paid_order_webhook(n: u64, secret: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let mut order = orders_create_numbered(n);
    order["financial_status"] = "paid".into();
    orders_create_webhook(&order, secret)
}

/// `headers` with `x-shopify-hmac-sha256` last, Shopify's signature of
/// `body` under `secret` (any signature already there is dropped).
pub fn shopify_signed<K: Into<String>, V: Into<String>>(
    body: &[u8],
    secret: &str,
    headers: impl IntoIterator<Item = (K, V)>,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .filter(|(k, _)| k != "x-shopify-hmac-sha256")
        .collect();
    headers.push((
        "x-shopify-hmac-sha256".into(),
        switchyard_shopify::webhook::sign(body, &Secret::new(secret)),
    ));
    headers
}

/// The value of one series of the `/metrics` at `url`, e.g.
/// `switchyard_destination_rate{destination="east-wh"}` (exact label text).
pub async fn metric(client: &reqwest::Client, url: &str, series: &str) -> Option<f64> {
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// POSTs `body` with `headers`; answers the status and the body's text.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}
