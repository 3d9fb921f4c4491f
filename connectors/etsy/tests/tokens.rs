//! Etsy rotates the refresh token on every refresh and the old one stops
//! working at once. These tests kill a connector (drop it mid-call) at each
//! point of a refresh and start a new one on the same token store, the way
//! a daemon restart does, against a small Etsy that rotates for real:
//!
//! - killed before the refresh reaches Etsy: the configured token still works;
//! - killed right after the rotated tokens were saved: the saved ones work;
//! - killed after Etsy answered but before the save finished: the rotated
//!   token is lost, and the account says how to re-authorize instead of
//!   retrying in a loop.

// Test support outside `#[test]` functions: a panic is the failure report,
// and test figures are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use serde_json::json;
use switchyard_contract::testkit::{HttpRequest, HttpResponse, LoopbackServer};
use switchyard_contract::tokens::MemoryTokenStore;
use switchyard_contract::{
    BoxFuture, Connector, ConnectorError, Operation, Pacer, RateHint, TokenSet, TokenState,
    TokenStore, Unpaced,
};
use switchyard_etsy::EtsyConnector;
use switchyard_etsy::settings::replay;
use tokio::sync::Notify;

use common::*;

/// An Etsy that rotates refresh tokens: each refresh spends the one it is
/// given and hands out a new pair; receipts answer only live access tokens.
#[derive(Default)]
struct Etsy {
    refresh: String,
    access: Vec<String>,
    issued: u32,
    refreshes: u32,
}

fn etsy() -> Arc<Mutex<Etsy>> {
    Arc::new(Mutex::new(Etsy {
        refresh: replay::REFRESH_TOKEN.into(),
        ..Etsy::default()
    }))
}

fn answer(state: &Mutex<Etsy>, req: HttpRequest) -> HttpResponse {
    let mut s = state.lock().unwrap();
    if req.path == replay::TOKEN_PATH {
        s.refreshes += 1;
        let form = req.body_form();
        let given = form
            .iter()
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v.clone());
        if given.as_deref() != Some(s.refresh.as_str()) {
            return HttpResponse::json(
                400,
                &json!({"error": "invalid_grant", "error_description": "Refresh token is invalid"}),
            );
        }
        s.issued += 1;
        let access = format!("12345678.rotated-access-{}", s.issued);
        s.refresh = format!("12345678.rotated-refresh-{}", s.issued);
        s.access.push(access.clone());
        return HttpResponse::json(
            200,
            &json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": s.refresh}),
        );
    }
    let bearer = req
        .header("authorization")
        .and_then(|b| b.strip_prefix("Bearer "))
        .unwrap_or_default();
    if s.access.iter().any(|a| a == bearer) {
        HttpResponse::json(200, &json!({"count": 0, "results": []}))
    } else {
        HttpResponse::json(401, &json!({"error": "invalid_token"}))
    }
}

async fn server(state: Arc<Mutex<Etsy>>) -> LoopbackServer {
    LoopbackServer::start(Arc::new(move |req| answer(&state, req)))
        .await
        .unwrap()
}

/// Where a kill happens inside the token store's save.
#[derive(Clone, Copy, PartialEq)]
enum Save {
    Works,
    /// The tokens reach the disk, then the process dies.
    DiesAfterFlush,
    /// The process dies before the tokens reach the disk.
    DiesBeforeFlush,
}

/// A store over a shared "disk" that can die inside `save`, telling the test
/// when it did.
struct Store {
    disk: Arc<MemoryTokenStore>,
    save: Save,
    died: Arc<Notify>,
}

impl TokenStore for Store {
    fn load(&self) -> Result<Option<TokenSet>, ConnectorError> {
        self.disk.load()
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            match self.save {
                Save::Works => self.disk.save(tokens).await,
                Save::DiesAfterFlush => {
                    self.disk.save(tokens).await?;
                    self.died.notify_one();
                    std::future::pending().await
                }
                Save::DiesBeforeFlush => {
                    self.died.notify_one();
                    std::future::pending().await
                }
            }
        })
    }

    fn report(&self, state: TokenState) {
        self.disk.report(state)
    }
}

/// A pacer that dies when asked for the token endpoint's budget: the
/// refresh never leaves the process.
struct DiesBeforeRefresh {
    died: Arc<Notify>,
}

impl Pacer for DiesBeforeRefresh {
    fn acquire(&self, operation: Operation, _cost: u32) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if operation == Operation::Auth {
                self.died.notify_one();
                std::future::pending::<()>().await;
            }
        })
    }

    fn observe(&self, _operation: Operation, _hint: RateHint) {}
}

fn build(url: &str, store: Arc<dyn TokenStore>, pacer: Arc<dyn Pacer>) -> EtsyConnector {
    let overrides = ConfigOverrides {
        page_size: None,
        access_token: false,
    };
    EtsyConnector::new(
        config(url, &overrides),
        reqwest::Client::new(),
        store,
        pacer,
    )
    .unwrap()
}

async fn poll(c: &EtsyConnector) -> Result<(), ConnectorError> {
    let since = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
    c.poll_orders(None, since, Utc::now()).await.map(|_| ())
}

/// Runs the first process's poll until it dies (`died`), then drops it.
async fn run_until_killed(c: EtsyConnector, died: Arc<Notify>) {
    tokio::select! {
        r = poll(&c) => panic!("the first process was meant to die, but its poll ended: {r:?}"),
        () = died.notified() => {}
    }
    drop(c);
}

/// The first process: it dies where `save` says, or (`Save::Works`) as it
/// asks for the token endpoint's budget, before the refresh leaves. The
/// notify fires when it has died.
fn first_process(
    url: &str,
    disk: &Arc<MemoryTokenStore>,
    save: Save,
) -> (EtsyConnector, Arc<Notify>) {
    let died = Arc::new(Notify::new());
    let pacer: Arc<dyn Pacer> = match save {
        Save::Works => Arc::new(DiesBeforeRefresh { died: died.clone() }),
        _ => Unpaced::shared(),
    };
    let store = Store {
        disk: disk.clone(),
        save,
        died: died.clone(),
    };
    (build(url, Arc::new(store), pacer), died)
}

/// The process after the restart, on the same disk.
fn restarted(url: &str, disk: &Arc<MemoryTokenStore>) -> EtsyConnector {
    let store = Store {
        disk: disk.clone(),
        save: Save::Works,
        died: Arc::new(Notify::new()),
    };
    build(url, Arc::new(store), Unpaced::shared())
}

#[tokio::test]
async fn killed_before_the_refresh_call_the_configured_token_still_works() {
    let state = etsy();
    let server = server(state.clone()).await;
    let disk = MemoryTokenStore::shared();
    let (first, died) = first_process(&server.url(), &disk, Save::Works);
    run_until_killed(first, died).await;
    assert_eq!(state.lock().unwrap().refreshes, 0, "nothing reached Etsy");

    let second = restarted(&server.url(), &disk);
    poll(&second).await.unwrap();
    let saved = disk.saved().unwrap();
    assert_eq!(
        saved.refresh_token.unwrap().expose(),
        state.lock().unwrap().refresh,
        "the rotated token is what the store holds"
    );
}

#[tokio::test]
async fn killed_right_after_the_save_the_saved_tokens_work_after_restart() {
    let state = etsy();
    let server = server(state.clone()).await;
    let disk = MemoryTokenStore::shared();
    let (first, died) = first_process(&server.url(), &disk, Save::DiesAfterFlush);
    run_until_killed(first, died).await;
    assert_eq!(state.lock().unwrap().refreshes, 1);

    // The restart uses the saved access token, without a refresh ...
    let second = restarted(&server.url(), &disk);
    poll(&second).await.unwrap();
    assert_eq!(state.lock().unwrap().refreshes, 1);
    // ... and once Etsy stops taking it, the saved refresh token works.
    state.lock().unwrap().access.clear();
    poll(&second).await.unwrap();
    let s = state.lock().unwrap();
    assert_eq!((s.refreshes, s.issued), (2, 2));
    assert_eq!(
        disk.saved().unwrap().refresh_token.unwrap().expose(),
        s.refresh
    );
}

#[tokio::test]
async fn a_rotation_lost_before_the_save_says_how_to_reauthorize_and_does_not_loop() {
    let state = etsy();
    let server = server(state.clone()).await;
    let disk = MemoryTokenStore::shared();
    let (first, died) = first_process(&server.url(), &disk, Save::DiesBeforeFlush);
    run_until_killed(first, died).await;
    assert!(
        disk.saved().is_none(),
        "the rotated pair never reached the disk"
    );

    let second = restarted(&server.url(), &disk);
    for _ in 0..3 {
        let err = poll(&second).await.unwrap_err();
        assert_eq!(err.class(), "auth");
        let text = err.to_string();
        assert!(text.contains("re-authorize"), "{text}");
        assert!(!text.contains(replay::REFRESH_TOKEN), "{text}");
    }
    assert_eq!(
        state.lock().unwrap().refreshes,
        2,
        "the lost rotation, then one refused refresh; no loop"
    );
    assert!(matches!(
        disk.state(),
        Some(TokenState::RefreshFailed { .. })
    ));
}
