//! No credential reaches an error, a log line or `Debug` output, even from a
//! server that echoes the request back.

// Test support outside `#[test]` functions: a panic is the failure report,
// and test figures are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use switchyard_contract::testkit::{HttpRequest, HttpResponse, LoopbackServer};
use switchyard_contract::tokens::MemoryTokenStore;
use switchyard_contract::{Connector, InventoryPush, TokenState};

use common::*;

/// Answers every request with an error whose body repeats its headers and body.
fn echo(status: u16) -> impl Fn(HttpRequest) -> HttpResponse + Send + Sync + 'static {
    move |req: HttpRequest| {
        let headers: Vec<String> = req
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        HttpResponse::new(
            status,
            format!(
                "upstream failed for {} with {}",
                headers.join("; "),
                String::from_utf8_lossy(&req.body)
            ),
        )
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in secrets() {
        assert!(!text.contains(secret), "{what} shows a credential: {text}");
    }
}

#[tokio::test]
async fn a_server_that_echoes_the_credentials_does_not_put_them_in_errors() {
    let server = LoopbackServer::start(Arc::new(echo(500))).await.unwrap();
    let c = connector(
        &server.url(),
        &ConfigOverrides::default(),
        MemoryTokenStore::shared(),
        Arc::new(RecordingPacer::default()),
    );
    let since = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let push = InventoryPush {
        sku: "MUG-RED".into(),
        quantity: 1,
        last_confirmed: None,
        listing_ref: Some("2002".into()),
        idempotency_key: "k".into(),
    };
    let tracking = switchyard_contract::TrackingPush {
        order: order_stub("3001"),
        shipment: switchyard_contract::Shipment {
            carrier: "ups".into(),
            tracking_number: "1Z".into(),
            tracking_url: None,
            shipped_at: None,
            lines: vec![],
        },
        idempotency_key: "k".into(),
    };
    let errors = vec![
        c.check().await.unwrap_err(),
        c.poll_orders(None, since, Utc::now()).await.unwrap_err(),
        c.fetch_orders(&["1".into()]).await.unwrap_err(),
        c.push_inventory_batch(std::slice::from_ref(&push))
            .await
            .remove(0)
            .unwrap_err(),
        c.push_tracking(&tracking).await.unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.class(), "transient", "{e}");
        let shown = format!("{e} {e:?}");
        assert_clean("an API error", &shown);
        assert!(shown.contains("***"), "{shown}");
    }
    assert_clean("the connector's Debug", &format!("{c:?}"));
}

#[tokio::test]
async fn a_token_endpoint_that_echoes_the_refresh_token_does_not_leak_it() {
    let server = LoopbackServer::start(Arc::new(echo(400))).await.unwrap();
    let (c, tokens, _) = refreshing_connector(&server.url());
    let err = c.check().await.unwrap_err();
    assert_eq!(err.class(), "auth");
    assert_clean("a refresh error", &err.to_string());
    assert!(err.to_string().contains("re-authorize"), "{err}");
    let state = tokens.state().expect("the refusal is reported");
    assert!(
        matches!(state, TokenState::RefreshFailed { .. }),
        "{state:?}"
    );
    assert_clean("the reported token state", &format!("{state:?}"));
}
