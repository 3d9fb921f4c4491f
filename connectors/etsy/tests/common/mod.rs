//! Shared by the Etsy replay tests: the Etsy connector a scenario's
//! `calls.json` runs against (the test kit's `calls` runs it), with the
//! settings a scenario may override, and the golden form of what it sent:
//!
//! ```json
//! { "config": { "page_size": 2, "access_token": true }, "calls": [ … ] }
//! ```

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_contract::testkit::{
    Calls, HttpRequest, ReplayServer, Scenario, WebhookFixture, calls, run_calls,
};
use switchyard_contract::tokens::MemoryTokenStore;
use switchyard_contract::{Channel, NormalizedOrder, Order, Secret, WebhookRequest};

pub use switchyard_contract::testkit::RecordingPacer;
use switchyard_etsy::settings::replay;
use switchyard_etsy::{EtsyConfig, EtsyConnector};

pub const ACCOUNT: &str = "etsy-main";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/etsy")
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Every credential of the fixtures, to prove none leaks into an output.
pub fn secrets() -> Vec<&'static str> {
    vec![
        replay::SHARED_SECRET,
        replay::ACCESS_TOKEN,
        replay::REFRESH_TOKEN,
        replay::WEBHOOK_SECRET,
        ROTATED_ACCESS_TOKEN,
        ROTATED_REFRESH_TOKEN,
    ]
}

/// What the token endpoint of the rotation fixtures answers.
pub const ROTATED_ACCESS_TOKEN: &str = "12345678.test-access-token-2";
pub const ROTATED_REFRESH_TOKEN: &str = "12345678.test-refresh-token-2";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    /// Receipts per page (default 100).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Whether the fixture's access token is configured (default true);
    /// without it the first call refreshes.
    #[serde(default = "yes")]
    pub access_token: bool,
}

fn yes() -> bool {
    true
}

impl Default for ConfigOverrides {
    fn default() -> Self {
        ConfigOverrides {
            page_size: None,
            access_token: true,
        }
    }
}

pub fn config(base_url: &str, overrides: &ConfigOverrides) -> EtsyConfig {
    let mut c = EtsyConfig::new(
        ACCOUNT,
        base_url,
        replay::SHOP_ID,
        replay::KEYSTRING,
        Secret::new(replay::SHARED_SECRET),
        Secret::new(replay::REFRESH_TOKEN),
    );
    c.webhook_secret = Some(Secret::new(replay::WEBHOOK_SECRET));
    c.access_token = overrides
        .access_token
        .then(|| Secret::new(replay::ACCESS_TOKEN));
    if let Some(p) = overrides.page_size {
        c.page_size = p;
    }
    c
}

/// A connector with no configured access token, so its first call
/// refreshes, and the store and pacer it was built with.
pub fn refreshing_connector(
    base_url: &str,
) -> (EtsyConnector, Arc<MemoryTokenStore>, Arc<RecordingPacer>) {
    let overrides = ConfigOverrides {
        page_size: None,
        access_token: false,
    };
    let tokens = MemoryTokenStore::shared();
    let pacer = Arc::new(RecordingPacer::default());
    let c = connector(base_url, &overrides, tokens.clone(), pacer.clone());
    (c, tokens, pacer)
}

pub fn connector(
    base_url: &str,
    overrides: &ConfigOverrides,
    tokens: Arc<MemoryTokenStore>,
    pacer: Arc<RecordingPacer>,
) -> EtsyConnector {
    EtsyConnector::new(
        config(base_url, overrides),
        reqwest::Client::new(),
        tokens,
        pacer,
    )
    .expect("fixture config is valid")
}

/// A fixture's webhook as the account receives it at `received_at`.
pub fn webhook_request(w: &WebhookFixture, received_at: DateTime<Utc>) -> WebhookRequest {
    w.request(ACCOUNT, received_at)
}

/// A canonical order as the daemon would hand it to `push_tracking`.
pub fn order_stub(channel_order_id: &str) -> Order {
    calls::order_stub(ACCOUNT, Channel::Etsy, channel_order_id, Vec::new())
}

/// A request as the golden `requests.json` shows it: method, path, query,
/// and the body (JSON, or form fields), with the refresh token hidden.
pub fn request_json(r: &HttpRequest) -> Value {
    let mut v = json!({ "method": r.method, "path": r.path });
    if !r.query.is_empty() {
        v["query"] = json!(
            r.query
                .iter()
                .map(|(k, q)| format!("{k}={q}"))
                .collect::<Vec<_>>()
        );
    }
    let ct = r.header("content-type").unwrap_or_default();
    if ct.starts_with("application/json") {
        v["json"] = r.body_json().expect("a JSON body");
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        let fields: Vec<Value> = r
            .body_form()
            .into_iter()
            .map(|(k, val)| {
                let shown = if k == "refresh_token" {
                    "***".into()
                } else {
                    val
                };
                json!([k, shown])
            })
            .collect();
        v["form"] = Value::Array(fields);
    } else {
        assert!(
            r.body.is_empty(),
            "{} {}: a body of type {ct:?}",
            r.method,
            r.path
        );
    }
    v
}

/// What running a scenario produced.
pub struct Run {
    pub orders: Vec<NormalizedOrder>,
    /// One entry per call.
    pub results: Vec<Value>,
    pub requests: Vec<HttpRequest>,
    pub pacer: Arc<RecordingPacer>,
    pub tokens: Arc<MemoryTokenStore>,
    pub connector: EtsyConnector,
}

pub async fn run(s: &Scenario) -> Run {
    let calls: Calls<ConfigOverrides> = Calls::load(s);
    let server = ReplayServer::start(s).await;
    let tokens = MemoryTokenStore::shared();
    let pacer = Arc::new(RecordingPacer::default());
    let c = connector(&server.url(), &calls.config, tokens.clone(), pacer.clone());
    let mut run = run_calls(&c, ACCOUNT, s, &calls, &server.url(), None).await;
    let acquired: Vec<&str> = pacer
        .acquired
        .lock()
        .unwrap()
        .iter()
        .map(|o| o.as_str())
        .collect();
    // One entry per hint, with the operations it was told to.
    let mut observed: Vec<Value> = Vec::new();
    for (op, h) in pacer.observed.lock().unwrap().iter() {
        let hint = json!({ "window": h.window, "capacity": h.capacity, "remaining": h.remaining });
        match observed.last_mut() {
            Some(last)
                if last["hint"] == hint
                    && !last["operations"]
                        .as_array()
                        .is_some_and(|o| o.contains(&json!(op.as_str()))) =>
            {
                if let Some(ops) = last["operations"].as_array_mut() {
                    ops.push(json!(op.as_str()));
                }
            }
            _ => observed.push(json!({ "hint": hint, "operations": [op.as_str()] })),
        }
    }
    run.results
        .push(json!({ "pacer": { "acquired": acquired, "observed": observed } }));
    let requests = server.finish().await;
    Run {
        orders: run.orders,
        results: run.results,
        requests,
        pacer,
        tokens,
        connector: c,
    }
}
