//! Shared by the replay tests: the eBay connector a scenario's `calls.json`
//! runs against (the test kit's `calls` runs it), with the settings a
//! scenario may override:
//!
//! ```json
//! { "config": { "listing_revisions_per_day": 2, "marketplace_id": "…" },
//!   "clock_dependent_waits": true, "calls": [ … ] }
//! ```

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use switchyard_contract::BuildContext;
use switchyard_contract::NormalizedOrder;
use switchyard_contract::testkit::{
    Calls, HttpRequest, RecordingPacer, ReplayServer, Scenario, run_calls,
};
use switchyard_contract::tokens::MemoryTokenStore;
use switchyard_ebay::config::{
    REPLAY_CLIENT_ID, REPLAY_CLIENT_SECRET, REPLAY_REFRESH_TOKEN, REPLAY_VERIFICATION_TOKEN,
};
use switchyard_ebay::{EbayConnector, replay_ebay_settings};

pub const ACCOUNT: &str = "ebay-us";
pub const TOKEN_PATH: &str = "/identity/v1/oauth2/token";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ebay")
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// The access tokens the fixtures' token endpoint hands out.
pub fn fixture_access_tokens() -> Vec<String> {
    let mut out = Vec::new();
    for s in Scenario::load_all(&fixtures_dir()).unwrap() {
        for e in &s.exchanges {
            if e.path == TOKEN_PATH
                && let Ok(v) = serde_json::from_slice::<Value>(&e.response)
                && let Some(t) = v["access_token"].as_str()
            {
                out.push(t.to_owned());
            }
        }
    }
    out
}

/// Secrets that must never show in what the connector produces.
pub fn secrets() -> Vec<String> {
    let mut s = vec![
        REPLAY_CLIENT_SECRET.to_owned(),
        REPLAY_REFRESH_TOKEN.to_owned(),
        REPLAY_VERIFICATION_TOKEN.to_owned(),
    ];
    s.extend(fixture_access_tokens());
    s
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    #[serde(default)]
    pub listing_revisions_per_day: Option<u32>,
    #[serde(default)]
    pub marketplace_id: Option<String>,
}

pub struct Built {
    pub connector: EbayConnector,
    pub tokens: Arc<MemoryTokenStore>,
    pub pacer: Arc<RecordingPacer>,
}

pub fn connector(base_url: &str, overrides: &ConfigOverrides) -> Built {
    let mut settings = replay_ebay_settings(ACCOUNT);
    if let Some(n) = overrides.listing_revisions_per_day {
        settings.listing_revisions_per_day = n;
    }
    if let Some(m) = &overrides.marketplace_id {
        settings.marketplace_id = m.clone();
    }
    let tokens = MemoryTokenStore::shared();
    let pacer = Arc::new(RecordingPacer::default());
    let connector = EbayConnector::new(
        settings,
        BuildContext {
            account: ACCOUNT.into(),
            base_url: base_url.into(),
            http: reqwest::Client::new(),
            tokens: tokens.clone(),
            pacer: pacer.clone(),
        },
    )
    .expect("fixture settings are valid");
    Built {
        connector,
        tokens,
        pacer,
    }
}

/// What running a scenario produced.
pub struct Run {
    pub orders: Vec<NormalizedOrder>,
    /// One entry per call.
    pub results: Vec<Value>,
    pub requests: Vec<HttpRequest>,
    pub tokens: Arc<MemoryTokenStore>,
    pub pacer: Arc<RecordingPacer>,
}

pub async fn run(s: &Scenario) -> Run {
    let calls: Calls<ConfigOverrides> = Calls::load(s);
    let server = ReplayServer::start(s).await;
    let built = connector(&server.url(), &calls.config);
    let run = run_calls(&built.connector, ACCOUNT, s, &calls, &server.url(), None).await;
    let requests = server.finish().await;
    Run {
        orders: run.orders,
        results: run.results,
        requests,
        tokens: built.tokens,
        pacer: built.pacer,
    }
}

/// The Basic credentials every token request must carry.
pub fn basic_credentials() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{REPLAY_CLIENT_ID}:{REPLAY_CLIENT_SECRET}"))
    )
}
