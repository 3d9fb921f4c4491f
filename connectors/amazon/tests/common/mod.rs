//! Shared by the replay tests: the Amazon connector a scenario's
//! `calls.json` runs against (the test kit's `calls` runs it), on a strict
//! replay server (Amazon) and a loopback storage server (the pre-signed URLs
//! feed documents go to), with the settings a scenario may override:
//!
//! ```json
//! { "clock": "2026-11-27T12:00:00Z", "config": { "fresh_token": true },
//!   "calls": [ … ] }
//! ```
//!
//! `clock` is where the connector's clock starts (token expiry, feed
//! checks; `set_clock` calls move it); the token store starts with an
//! access token valid for an hour from it, unless `fresh_token` is true. In
//! exchange responses, `{{storage}}` stands for the storage server's URL.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_amazon::{AmazonConnector, fixture_settings};
use switchyard_contract::testkit::{
    Calls, HttpRequest, HttpResponse, LoopbackServer, ReplayServer, Scenario, run_calls,
};
use switchyard_contract::tokens::MemoryTokenStore;
use switchyard_contract::{
    BuildContext, Connector, NormalizedOrder, Operation, Pacer, Secret, TokenSet, TokenStore,
    Unpaced,
};

pub use switchyard_amazon::config::replay::*;
pub use switchyard_contract::testkit::TestClock;

pub const ACCOUNT: &str = "amz-us";
pub const ACCESS_TOKEN: &str = "Atza|fixture-access-token";
pub const REFRESHED_TOKEN: &str = "Atza|fixture-refreshed-token";
pub const TOKEN_PATH: &str = "/auth/o2/token";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/amazon")
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    /// The token store starts empty: the first call exchanges the refresh
    /// token.
    #[serde(default)]
    pub fresh_token: bool,
}

/// A connector on `base_url` with the fixture settings; the token store
/// holds an access token valid for an hour from `clock` unless `fresh`.
pub fn connector(
    base_url: &str,
    clock: &TestClock,
    fresh: bool,
) -> (AmazonConnector, Arc<MemoryTokenStore>) {
    connector_paced(base_url, clock, fresh, Unpaced::shared())
}

/// [`connector`] with the given pacer.
pub fn connector_paced(
    base_url: &str,
    clock: &TestClock,
    fresh: bool,
    pacer: Arc<dyn Pacer>,
) -> (AmazonConnector, Arc<MemoryTokenStore>) {
    let store = MemoryTokenStore::shared();
    if !fresh {
        let seeded = TokenSet {
            access_token: Some(Secret::new(ACCESS_TOKEN)),
            access_expires_at: Some(clock.now() + Duration::hours(1)),
            refresh_token: Some(Secret::new(REFRESH_TOKEN)),
        };
        futures_ready(store.save(&seeded)).expect("the memory store saves");
    }
    let ctx = BuildContext {
        account: ACCOUNT.into(),
        base_url: base_url.into(),
        http: reqwest::Client::new(),
        tokens: store.clone(),
        pacer,
    };
    let c = AmazonConnector::with_clock(fixture_settings(), ctx, clock.reader())
        .expect("fixture settings are valid");
    (c, store)
}

/// The memory store saves at once; its future is ready on first poll.
fn futures_ready<T>(f: switchyard_contract::BoxFuture<'_, T>) -> T {
    let mut f = f;
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the memory token store never waits"),
    }
}

/// The storage behind pre-signed URLs: takes uploads, serves the scenario's
/// `storage/` files.
pub struct Storage {
    pub server: LoopbackServer,
    pub uploads: Arc<Mutex<Vec<HttpRequest>>>,
}

impl Storage {
    pub async fn start(dir: &Path) -> Storage {
        let uploads = Arc::new(Mutex::new(Vec::new()));
        let seen = uploads.clone();
        let root = dir.join("storage");
        let server = LoopbackServer::start(Arc::new(move |req: HttpRequest| {
            if req.method == "PUT" {
                seen.lock().unwrap().push(req);
                return HttpResponse::new(200, "");
            }
            let file = root.join(req.path.trim_start_matches('/'));
            match std::fs::read(&file) {
                Ok(bytes) => HttpResponse::new(200, bytes),
                Err(_) => HttpResponse::new(404, "<Error><Code>NoSuchKey</Code></Error>"),
            }
        }))
        .await
        .expect("bind the storage server");
        Storage { server, uploads }
    }
}

/// What running a scenario produced.
pub struct Run {
    pub orders: Vec<NormalizedOrder>,
    /// One entry per call, then the rate limits the connector publishes.
    pub results: Vec<Value>,
    pub requests: Vec<HttpRequest>,
    pub uploads: Vec<HttpRequest>,
    pub tokens: Arc<MemoryTokenStore>,
}

pub async fn run(s: &Scenario) -> Run {
    run_paced(s, Unpaced::shared()).await
}

/// [`run`] with the given pacer.
pub async fn run_paced(s: &Scenario, pacer: Arc<dyn Pacer>) -> Run {
    let calls: Calls<ConfigOverrides> = Calls::load(s);
    let storage = Storage::start(&s.dir).await;
    let mut exchanges = s.exchanges.clone();
    for e in &mut exchanges {
        let text =
            String::from_utf8_lossy(&e.response).replace("{{storage}}", &storage.server.url());
        e.response = text.into_bytes();
    }
    let server = ReplayServer::from_exchanges(exchanges, s.ordered).await;
    let clock = TestClock::new(
        calls
            .clock
            .unwrap_or_else(|| panic!("{}: calls.json sets no clock", s.name)),
    );
    let (c, tokens) = connector_paced(&server.url(), &clock, calls.config.fresh_token, pacer);
    let mut run = run_calls(&c, ACCOUNT, s, &calls, &server.url(), Some(&clock)).await;
    let mut rates = serde_json::Map::new();
    for op in Operation::ALL {
        let l = c.rate_limit(op);
        rates.insert(op.to_string(), json!([l.per_second, l.burst]));
    }
    run.results.push(json!({ "rate_limits": rates }));
    let requests = server.finish().await;
    let uploads = storage.uploads.lock().unwrap().clone();
    Run {
        orders: run.orders,
        results: run.results,
        requests,
        uploads,
        tokens,
    }
}
