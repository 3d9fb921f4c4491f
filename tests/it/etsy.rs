//! Etsy end to end: the daemon (`daemon::run`, in-process, on 127.0.0.1)
//! against the simulator's Etsy shop (`switchyard_etsy::sim`), which rotates
//! refresh tokens, keeps receipts with their shipments and replaces a
//! listing's whole inventory on every write, as Etsy does.
//!
//! - Sync: the first call refreshes the token (rotated, saved) and the
//!   receipts come in.
//! - Webhooks: a signed `order.paid` only names its receipt; the daemon
//!   answers at once and fetches it.
//! - Stock: two SKUs of one listing set together reach Etsy as one write
//!   that keeps the listing's other products.
//! - Tracking: a shipment reaches the receipt exactly once.
//! - Limits: a nearly spent daily allowance shows in `/metrics` while
//!   orders keep coming in.

use crate::common;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{ConfigBuilder, EtsyAccount, InProcess, REPO, post};
use serde_json::{Value, json};
use switchyard::sim::Simulator;
use switchyard_contract::{Channel, Secret};
use switchyard_etsy::sim::Shop;

const TOKEN: &str = "admin-token-for-etsy-tests";
const ACCOUNT: &str = "etsy-main";
/// The key behind it is `etsy-test-webhook-key`.
const WEBHOOK_SECRET: &str = "whsec_ZXRzeS10ZXN0LXdlYmhvb2sta2V5";

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited 20 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Setup {
    sim: Simulator,
    daemon: InProcess,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.toml");
        std::fs::write(&rules, "# no rules: orders stay unrouted\n").unwrap();
        let config = ConfigBuilder::new(dir.path())
            .rules(&rules)
            .admin_token(TOKEN)
            .shutdown_timeout("5s")
            .destinations(vec![])
            .etsy_account(EtsyAccount::new(
                ACCOUNT,
                &sim.base_url(Channel::Etsy),
                WEBHOOK_SECRET,
            ))
            .write();
        let daemon = InProcess::start(&config).await;
        daemon.synced(&[ACCOUNT]).await;
        Setup {
            sim,
            daemon,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, self.daemon.url(&format!("/api/v1{path}")))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "{path}: HTTP {status} {body}");
        body
    }

    async fn order(&self, receipt: &str) -> Option<Value> {
        let id = format!("{ACCOUNT}:{receipt}");
        let resp = self
            .http
            .get(self.daemon.url(&format!("/api/v1/orders/{id}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            resp.json().await.ok()
        } else {
            None
        }
    }

    /// Delivers a signed `order.paid` webhook naming `receipt`.
    async fn order_paid(&self, message_id: &str, receipt: u64) {
        let body = format!(
            r#"{{"event_type":"order.paid","resource_url":"https://openapi.etsy.com/v3/application/shops/12345678/receipts/{receipt}","shop_id":12345678}}"#
        );
        let ts = chrono::Utc::now().timestamp().to_string();
        let signature = switchyard_etsy::webhook::sign(
            &Secret::new(WEBHOOK_SECRET),
            message_id,
            &ts,
            body.as_bytes(),
        );
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("webhook-id".to_owned(), message_id.to_owned()),
            ("webhook-timestamp".to_owned(), ts),
            ("webhook-signature".to_owned(), signature),
        ];
        let url = self.daemon.url(&format!("/webhooks/{ACCOUNT}"));
        let (status, text) = post(&self.http, &url, &headers, body.into_bytes()).await;
        assert_eq!(status, 200, "{text}");
    }

    /// How many times Etsy was asked for receipt `receipt` on its own (a
    /// webhook's fetch; the sync reads pages of receipts).
    fn fetches_of(&self, receipt: u64) -> usize {
        let path = format!("/receipts/{receipt}");
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.channel == Channel::Etsy && r.request.method == "GET")
            .filter(|r| r.request.path.ends_with(&path))
            .count()
    }

    /// Waits for the fetch jobs webhooks left to leave the outbox, and
    /// checks that none of them died.
    async fn fetched(&self) {
        self.outbox_idle().await;
        let dead = self
            .admin(reqwest::Method::GET, "/outbox?dead=true", None)
            .await;
        assert_eq!(dead, json!([]), "no fetch job died");
    }

    /// The account's `switchyard_daily_reserve_holding`, as scraped.
    async fn reserve_holding(&self) -> Option<f64> {
        let series = format!(r#"switchyard_daily_reserve_holding{{account="{ACCOUNT}"}}"#);
        common::daemon::metric(&self.http, &self.daemon.url("/metrics"), &series).await
    }

    async fn outbox_idle(&self) {
        wait_until("the outbox to drain", || async {
            self.admin(reqwest::Method::GET, "/outbox", None)
                .await
                .as_array()
                .is_some_and(Vec::is_empty)
        })
        .await;
    }

    async fn stop(self) {
        let (_report, store) = self.daemon.stop().await;
        store.close().unwrap();
        self.sim.stop().await;
    }
}

#[tokio::test]
async fn etsy_receipts_sync_and_stock_and_tracking_go_back_once() {
    let setup = Setup::start().await;

    // Synced with a refreshed (rotated) token.
    let ready: Value = setup
        .http
        .get(setup.daemon.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["accounts"][ACCOUNT]["token"], "valid", "{ready}");
    let order = setup.order("2801").await.expect("receipt 2801 synced");
    assert_eq!(order["status"], "ready");
    assert_eq!(order["lines"][1]["options"][2]["name"], "Personalization");

    // A signed order.paid names receipt 2802 (already synced); the daemon
    // fetches it.
    setup.order_paid("msg_it_1", 2802).await;
    setup.fetched().await;
    assert_eq!(setup.fetches_of(2802), 1);
    assert!(setup.order("2802").await.is_some());

    // Two SKUs of the mug listing, set together: one write of that listing.
    setup
        .admin(
            reqwest::Method::PUT,
            "/stock",
            Some(json!([
                { "sku": "MUG-RED", "available": 30 },
                { "sku": "MUG-BLUE", "available": 40 }
            ])),
        )
        .await;
    setup.outbox_idle().await;
    let writes: Vec<_> = setup
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.channel == Channel::Etsy)
        .map(|r| r.request)
        .filter(|w| w.method == "PUT" && w.path.ends_with("/listings/2002/inventory"))
        .collect();
    assert_eq!(
        writes.len(),
        1,
        "one write for the two SKUs of listing 2002"
    );
    let products = writes[0].body_json().unwrap()["products"].clone();
    assert_eq!(products.as_array().unwrap().len(), 2, "{products}");
    let (red, blue) = setup
        .sim
        .with(Channel::Etsy, |shop: &mut Shop| {
            (shop.available("MUG-RED"), shop.available("MUG-BLUE"))
        })
        .unwrap();
    let (red, blue) = (red.unwrap(), blue.unwrap());
    assert!(
        red > 2 && blue > 4,
        "both levels written: red {red}, blue {blue}"
    );

    // The warehouse ships 2801; Etsy gets the tracking code once.
    setup
        .admin(
            reqwest::Method::POST,
            "/shipments",
            Some(json!({ "order_id": format!("{ACCOUNT}:2801"), "carrier": "ups", "tracking_number": "1ZIT0001" })),
        )
        .await;
    setup.outbox_idle().await;
    let codes = setup
        .sim
        .with(Channel::Etsy, |shop: &mut Shop| shop.tracking_codes(2801))
        .unwrap();
    assert_eq!(codes, ["1ZIT0001"]);
    setup.stop().await;
}

/// Etsy's daily allowance nearly spent (50 calls of 10 000 left, under the
/// 10% reserve): an order webhook is still fetched, `/metrics` then says
/// the account's pushes are held back, and the gauge falls back to 0 once
/// an answer shows the allowance refilled (Etsy's day rolled over).
#[tokio::test]
async fn a_low_daily_allowance_shows_in_metrics_while_orders_still_come_in() {
    let setup = Setup::start().await;
    assert_eq!(setup.reserve_holding().await, Some(0.0));

    setup
        .sim
        .with(Channel::Etsy, |shop: &mut Shop| shop.set_calls_today(9_950))
        .unwrap();
    setup.order_paid("msg_low_1", 2802).await;
    // Receipt 2802 came in with the first sync: what shows the webhook's
    // fetch went out on the low allowance is Etsy seeing it and the job
    // leaving the outbox alive. Its answer's limit headers are read before
    // the job is done, so the gauge shows them from then on.
    setup.fetched().await;
    assert_eq!(setup.fetches_of(2802), 1);
    assert!(setup.order("2802").await.is_some());
    assert_eq!(setup.reserve_holding().await, Some(1.0));

    setup
        .sim
        .with(Channel::Etsy, |shop: &mut Shop| shop.set_calls_today(0))
        .unwrap();
    setup.order_paid("msg_low_2", 2801).await;
    wait_until("the refilled allowance to show in /metrics", || async {
        setup.reserve_holding().await == Some(0.0)
    })
    .await;
    setup.stop().await;
}

/// Token state where an operator looks: `/readyz` says `valid` and until
/// when, `/metrics` has the state gauge and the expiry. A second daemon that
/// starts from the configured refresh token after the first one rotated it
/// (a lost token store) cannot refresh: both say `refresh_failed`, and
/// `/readyz` says how to re-authorize.
#[tokio::test]
async fn token_state_is_in_readyz_and_metrics_valid_or_refresh_failed() {
    let setup = Setup::start().await;
    let get = |url: String| {
        let http = setup.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let ready: Value = serde_json::from_str(&get(setup.daemon.url("/readyz")).await).unwrap();
    let account = &ready["accounts"][ACCOUNT];
    assert_eq!(account["token"], "valid", "{ready}");
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(account["until"].clone()).expect("until is a time");
    assert!(until > chrono::Utc::now(), "{ready}");
    let metrics = get(setup.daemon.url("/metrics")).await;
    for sample in [
        format!(r#"switchyard_token_state{{account="{ACCOUNT}",state="valid"}} 1"#),
        format!(r#"switchyard_token_state{{account="{ACCOUNT}",state="refresh_failed"}} 0"#),
        format!(r#"switchyard_token_valid_until_seconds{{account="{ACCOUNT}"}} "#),
    ] {
        assert!(metrics.contains(&sample), "{sample} in:\n{metrics}");
    }

    // The configured refresh token was spent by the first daemon's refresh.
    let lost = tempfile::tempdir().unwrap();
    let rules = lost.path().join("rules.toml");
    std::fs::write(&rules, "# no rules\n").unwrap();
    let config = ConfigBuilder::new(lost.path())
        .rules(&rules)
        .shutdown_timeout("5s")
        .destinations(vec![])
        .etsy_account(EtsyAccount::new(
            ACCOUNT,
            &setup.sim.base_url(Channel::Etsy),
            WEBHOOK_SECRET,
        ))
        .write();
    let second = InProcess::start(&config).await;
    let started = Instant::now();
    let failed = loop {
        let ready: Value = serde_json::from_str(&get(second.url("/readyz")).await).unwrap();
        let account = ready["accounts"][ACCOUNT].clone();
        if account["token"] == "refresh_failed" {
            break account;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited 20 s for the second daemon's refresh to fail: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("re-authorize the app"), "{failed}");
    assert!(failed["at"].is_string(), "{failed}");
    let metrics = get(second.url("/metrics")).await;
    let sample =
        format!(r#"switchyard_token_state{{account="{ACCOUNT}",state="refresh_failed"}} 1"#);
    assert!(metrics.contains(&sample), "{sample} in:\n{metrics}");
    let (_report, store) = second.stop().await;
    store.close().unwrap();
    setup.stop().await;
}
