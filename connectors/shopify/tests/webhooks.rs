//! Webhook signature checks and parsing, beyond what the fixture scenarios
//! pin: rotated secrets, header spelling, dedupe-key fallback, and proof that
//! every stored fixture signature really is the test secret's.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::Utc;
use switchyard_contract::{Connector, ConnectorError, Secret, WebhookOutcome, WebhookRequest};
use switchyard_shopify::webhook::sign;
use switchyard_shopify::{ShopifyConfig, ShopifyConnector};

use common::*;

fn connector_with(secrets: &[&str]) -> ShopifyConnector {
    let mut config = ShopifyConfig::new(ACCOUNT, "http://127.0.0.1:9", Secret::new(TOKEN));
    config.webhook_secrets = secrets.iter().map(|s| Secret::new(*s)).collect();
    ShopifyConnector::new(
        config,
        reqwest::Client::new(),
        switchyard_contract::Unpaced::shared(),
    )
    .unwrap()
}

fn order_body() -> Vec<u8> {
    let s = scenario("webhooks-orders");
    s.webhooks
        .iter()
        .find(|w| w.name == "orders-create")
        .unwrap()
        .body
        .clone()
}

fn request(headers: &[(&str, &str)], body: &[u8]) -> WebhookRequest {
    WebhookRequest {
        account: ACCOUNT.into(),
        method: "POST".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        query: None,
        body: body.to_vec(),
        received_at: Utc::now(),
    }
}

#[test]
fn a_good_signature_verifies_and_a_changed_byte_does_not() {
    let c = connector_with(&[WEBHOOK_SECRET]);
    let body = order_body();
    let sig = sign(&body, &Secret::new(WEBHOOK_SECRET));
    c.verify_webhook(&request(&[("X-Shopify-Hmac-Sha256", &sig)], &body))
        .unwrap();

    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let err = c
        .verify_webhook(&request(&[("x-shopify-hmac-sha256", &sig)], &tampered))
        .unwrap_err();
    assert_eq!(err.class(), "auth");
}

#[test]
fn missing_or_malformed_signatures_are_auth_errors() {
    let c = connector_with(&[WEBHOOK_SECRET]);
    let body = order_body();
    for headers in [
        vec![],
        vec![("x-shopify-hmac-sha256", "")],
        vec![("x-shopify-hmac-sha256", "%%%")],
    ] {
        let err = c.verify_webhook(&request(&headers, &body)).unwrap_err();
        assert_eq!(err.class(), "auth", "{headers:?}");
        assert!(!err.to_string().contains(WEBHOOK_SECRET));
    }
}

#[test]
fn during_a_secret_rotation_either_secret_verifies() {
    let c = connector_with(&["new-client-secret", WEBHOOK_SECRET]);
    let body = order_body();
    for secret in ["new-client-secret", WEBHOOK_SECRET] {
        let sig = sign(&body, &Secret::new(secret));
        c.verify_webhook(&request(&[("x-shopify-hmac-sha256", &sig)], &body))
            .unwrap();
    }
    let sig = sign(&body, &Secret::new("retired-secret"));
    assert_eq!(
        c.verify_webhook(&request(&[("x-shopify-hmac-sha256", &sig)], &body))
            .unwrap_err()
            .class(),
        "auth"
    );
}

#[test]
fn without_a_configured_secret_nothing_verifies() {
    let c = connector_with(&[]);
    let body = order_body();
    let sig = sign(&body, &Secret::new(WEBHOOK_SECRET));
    let err = c
        .verify_webhook(&request(&[("x-shopify-hmac-sha256", &sig)], &body))
        .unwrap_err();
    assert_eq!(err.class(), "config");
}

#[test]
fn every_stored_fixture_signature_is_made_with_the_test_secret() {
    let c = connector_with(&[WEBHOOK_SECRET]);
    let mut checked = 0;
    for s in switchyard_contract::testkit::Scenario::load_all(&fixtures_dir()).unwrap() {
        for w in &s.webhooks {
            let meant_to_fail = w.name.contains("signature");
            let ok = c.verify_webhook(&webhook_request(w)).is_ok();
            assert_eq!(
                ok, !meant_to_fail,
                "{}/{}: stored signature",
                s.name, w.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} fixture webhooks");
}

#[test]
fn order_topics_parse_and_others_are_ignored() {
    let c = connector_with(&[WEBHOOK_SECRET]);
    let body = order_body();
    for topic in [
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
    ] {
        let out = c
            .parse_webhook(&request(
                &[("x-shopify-topic", topic), ("x-shopify-event-id", "e1")],
                &body,
            ))
            .unwrap();
        let WebhookOutcome::Orders {
            dedupe_key, orders, ..
        } = out
        else {
            panic!("{topic}: {out:?}")
        };
        assert_eq!(dedupe_key.as_deref(), Some("e1"));
        assert_eq!(orders[0].order.id, "shop-us:5551234567");
    }
    for topic in [
        "orders/delete",
        "orders/edited",
        "refunds/create",
        "app/uninstalled",
    ] {
        let out = c
            .parse_webhook(&request(&[("x-shopify-topic", topic)], b"{}"))
            .unwrap();
        assert!(
            matches!(out, WebhookOutcome::Ignored { .. }),
            "{topic}: {out:?}"
        );
    }
}

#[test]
fn the_dedupe_key_is_the_event_id_else_the_webhook_id() {
    let c = connector_with(&[WEBHOOK_SECRET]);
    let body = order_body();
    let key = |headers: &[(&str, &str)]| {
        c.parse_webhook(&request(headers, &body))
            .unwrap()
            .dedupe_key()
            .map(str::to_owned)
    };
    let topic = ("X-Shopify-Topic", "orders/updated");
    assert_eq!(
        key(&[
            topic,
            ("X-Shopify-Webhook-Id", "wh-1"),
            ("X-Shopify-Event-Id", "evt-1")
        ])
        .as_deref(),
        Some("evt-1")
    );
    assert_eq!(
        key(&[topic, ("X-Shopify-Webhook-Id", "wh-1")]).as_deref(),
        Some("wh-1")
    );
    assert_eq!(key(&[topic]), None);
}

#[test]
fn a_body_that_is_not_an_order_is_a_decode_error() {
    let c = connector_with(&[WEBHOOK_SECRET]);
    for body in [
        &b"not json"[..],
        b"{}",
        b"[1,2]",
        br#"{"id": 1, "title": "a product"}"#,
    ] {
        let err = c
            .parse_webhook(&request(&[("x-shopify-topic", "orders/create")], body))
            .unwrap_err();
        assert_eq!(err.class(), "decode", "{}", String::from_utf8_lossy(body));
    }
    let err = c.parse_webhook(&request(&[], &order_body())).unwrap_err();
    assert_eq!(err.class(), "decode");
}

#[tokio::test]
async fn an_unreadable_order_is_left_out_and_named_and_the_delivery_kept() {
    let c = connector_with(&[WEBHOOK_SECRET]);
    let mut doc: serde_json::Value = serde_json::from_slice(&order_body()).unwrap();
    // A line total past the decimal range: Shopify sent it, nobody can read it.
    doc["line_items"][0]["price_set"]["shop_money"]["amount"] =
        serde_json::json!("79228162514264337593543950335");
    doc["line_items"][0]["quantity"] = serde_json::json!(2);
    let body = serde_json::to_vec(&doc).unwrap();
    let sig = sign(&body, &Secret::new(WEBHOOK_SECRET));
    let headers = [
        ("x-shopify-hmac-sha256", sig.as_str()),
        ("x-shopify-topic", "orders/create"),
        ("x-shopify-event-id", "evt-9"),
    ];
    let out = c.handle_webhook(&request(&headers, &body)).await.unwrap();
    let WebhookOutcome::Orders {
        dedupe_key,
        orders,
        rejected,
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(orders.is_empty());
    assert_eq!(dedupe_key.as_deref(), Some("evt-9"));
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].channel_order_id.as_deref(), Some("5551234567"));
    assert!(rejected[0].error.contains("lines[0]"), "{rejected:?}");

    // A body that is no order at all is still refused (400), and a bad
    // signature still 401, before anything is read.
    let junk = br#"{"title": "a product"}"#;
    let sig = sign(junk, &Secret::new(WEBHOOK_SECRET));
    let err = c
        .handle_webhook(&request(
            &[
                ("x-shopify-hmac-sha256", sig.as_str()),
                ("x-shopify-topic", "orders/create"),
            ],
            junk,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Decode(_)), "{err}");
    let err = c
        .handle_webhook(&request(&[("x-shopify-topic", "orders/create")], &body))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "auth");
}

/// `body` delivered signed as `orders/create`: the orders read and those
/// left out.
async fn deliver_signed(
    c: &ShopifyConnector,
    body: &[u8],
) -> (
    Vec<switchyard_contract::NormalizedOrder>,
    Vec<switchyard_contract::RejectedOrder>,
) {
    let sig = sign(body, &Secret::new(WEBHOOK_SECRET));
    let headers = [
        ("x-shopify-hmac-sha256", sig.as_str()),
        ("x-shopify-topic", "orders/create"),
    ];
    match c.handle_webhook(&request(&headers, body)).await.unwrap() {
        WebhookOutcome::Orders {
            orders, rejected, ..
        } => (orders, rejected),
        other => panic!("{other:?}"),
    }
}

/// `order_body()` with `"id"` given twice at the top (first a stale 1) and
/// the line's `"sku"` twice (first a stale one): keys a JSON text may
/// repeat, of which the last counts.
fn body_with_repeated_keys() -> Vec<u8> {
    let text = String::from_utf8(order_body()).unwrap();
    assert!(text.starts_with(r#"{"id": 5551234567,"#));
    let text = text
        .replacen(r#"{"id": 5551234567,"#, r#"{"id": 1, "id": 5551234567,"#, 1)
        .replacen(
            r#""sku": "MUG-RED""#,
            r#""sku": "STALE-SKU", "sku": "MUG-RED""#,
            1,
        );
    assert_eq!(
        text.matches(r#""sku": "#).count(),
        2,
        "one line, its sku twice"
    );
    text.into_bytes()
}

#[tokio::test]
async fn a_body_that_repeats_a_key_is_read_with_the_last_value_and_kept_as_sent() {
    let c = connector_with(&[WEBHOOK_SECRET]);
    let body = body_with_repeated_keys();
    let (orders, rejected) = deliver_signed(&c, &body).await;
    assert!(rejected.is_empty(), "{rejected:?}");
    let [order] = &orders[..] else {
        panic!("{orders:?}")
    };
    assert_eq!(order.order.id, "shop-us:5551234567");
    assert_eq!(order.order.lines[0].sku.as_deref(), Some("MUG-RED"));
    // The order the body without its stale keys gives, and the body kept
    // byte for byte.
    let plain = c
        .parse_webhook(&request(
            &[("x-shopify-topic", "orders/create")],
            &order_body(),
        ))
        .unwrap();
    let WebhookOutcome::Orders { orders: plain, .. } = plain else {
        panic!("{plain:?}")
    };
    assert_eq!(order.order, plain[0].order);
    assert_eq!(order.notes, plain[0].notes);
    assert_eq!(order.raw_json.as_deref(), Some(&body[..]));
}

#[tokio::test]
async fn a_body_that_repeats_a_key_and_cannot_be_read_is_still_left_out_and_named() {
    let c = connector_with(&[WEBHOOK_SECRET]);
    let text = String::from_utf8(body_with_repeated_keys()).unwrap();
    // A quantity that is no number: unreadable whichever way it is read.
    let body = text.replacen(r#""quantity": 2,"#, r#""quantity": "two","#, 1);
    assert_ne!(body, text);
    let (orders, rejected) = deliver_signed(&c, body.as_bytes()).await;
    assert!(orders.is_empty(), "{orders:?}");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].channel_order_id.as_deref(), Some("5551234567"));
    assert!(
        rejected[0]
            .error
            .starts_with("orders/create webhook: not a Shopify order: ")
            && rejected[0].error.contains(r#"string "two""#)
            && !rejected[0].error.contains("duplicate"),
        "{rejected:?}"
    );
    // Not JSON after its repeated keys: refused as before.
    let cut = &text.as_bytes()[..text.len() - 1];
    let err = c
        .parse_webhook(&request(&[("x-shopify-topic", "orders/create")], cut))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("orders/create webhook body is not JSON"),
        "{err}"
    );
}
