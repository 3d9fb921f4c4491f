//! Shared by the replay tests: the Shopify connector a scenario's
//! `calls.json` runs against (the test kit's `calls` runs it), with the
//! settings a scenario may override:
//!
//! ```json
//! { "config": { "location_id": "905684977" }, "calls": [ … ] }
//! ```

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_contract::testkit::{Calls, HttpRequest, ReplayServer, Scenario, run_calls};
use switchyard_contract::{NormalizedOrder, Secret, Unpaced, WebhookRequest};

use switchyard_shopify::{ShopifyConfig, ShopifyConnector};

pub const ACCOUNT: &str = "shop-us";
pub const TOKEN: &str = "test-token";
pub const WEBHOOK_SECRET: &str = "fixture-webhook-secret";
pub const GRAPHQL_PATH: &str = "/admin/api/2026-10/graphql.json";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/shopify")
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    #[serde(default)]
    pub location_id: Option<String>,
}

pub fn connector(base_url: &str, overrides: &ConfigOverrides) -> ShopifyConnector {
    let mut config = ShopifyConfig::new(ACCOUNT, base_url, Secret::new(TOKEN));
    config.webhook_secrets = vec![Secret::new(WEBHOOK_SECRET)];
    config.location_id = overrides.location_id.clone();
    ShopifyConnector::new(config, reqwest::Client::new(), Unpaced::shared())
        .expect("fixture config is valid")
}

/// A fixture's webhook as the account receives it.
pub fn webhook_request(w: &switchyard_contract::testkit::WebhookFixture) -> WebhookRequest {
    w.request(
        ACCOUNT,
        switchyard_contract::testkit::calls::default_received_at(),
    )
}

/// What running a scenario produced.
pub struct Run {
    pub orders: Vec<NormalizedOrder>,
    /// Orders from webhooks only, in delivery order.
    pub webhook_orders: Vec<NormalizedOrder>,
    /// One entry per call, then the connector's last rate hint.
    pub results: Vec<Value>,
    pub requests: Vec<HttpRequest>,
}

pub async fn run(s: &Scenario) -> Run {
    let calls: Calls<ConfigOverrides> = Calls::load(s);
    let server = ReplayServer::start(s).await;
    let c = connector(&server.url(), &calls.config);
    let mut run = run_calls(&c, ACCOUNT, s, &calls, &server.url(), None).await;
    if let Some(h) = c.rate_hint() {
        run.results.push(json!({
            "rate_hint": { "capacity": h.capacity, "remaining": h.remaining, "restore_per_second": h.restore_per_second }
        }));
    }
    let requests = server.finish().await;
    Run {
        orders: run.orders,
        webhook_orders: run.webhook_orders,
        results: run.results,
        requests,
    }
}
