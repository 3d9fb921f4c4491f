//! Webhook signatures beyond what the fixture scenarios pin: every stored
//! signature really is the test secret's, the tolerance holds both ways, and
//! nothing of a body is trusted before the signature is.

// Test support outside `#[test]` functions: a panic is the failure report,
// and test figures are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use chrono::{DateTime, Duration, Utc};
use switchyard_contract::{ConnectorError, Secret, WebhookOutcome, WebhookRequest};
use switchyard_etsy::settings::replay;
use switchyard_etsy::webhook::{self, TOLERANCE, sign};

use common::*;

fn secret() -> Secret {
    Secret::new(replay::WEBHOOK_SECRET)
}

fn request(headers: &[(&str, String)], body: &[u8], received_at: DateTime<Utc>) -> WebhookRequest {
    WebhookRequest {
        account: ACCOUNT.into(),
        method: "POST".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        query: None,
        body: body.to_vec(),
        received_at,
    }
}

const BODY: &[u8] = br#"{"event_type":"order.paid","resource_url":"https://openapi.etsy.com/v3/application/shops/12345678/receipts/2701","shop_id":12345678}"#;

fn signed_at(sent: DateTime<Utc>, received: DateTime<Utc>) -> WebhookRequest {
    let ts = sent.timestamp().to_string();
    request(
        &[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", ts.clone()),
            ("webhook-signature", sign(&secret(), "msg_1", &ts, BODY)),
        ],
        BODY,
        received,
    )
}

#[test]
fn every_fixture_signature_is_the_test_secrets_or_meant_to_fail() {
    let s = scenario("webhooks");
    let meant_to_fail = [
        "forged-signature",
        "tampered-body",
        "stale-timestamp",
        "unsigned",
    ];
    for w in &s.webhooks {
        let received = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .to_utc();
        let result = webhook::verify(&webhook_request(w, received), Some(&secret()));
        if meant_to_fail.contains(&w.name.as_str()) {
            assert!(matches!(result, Err(ConnectorError::Auth(_))), "{}", w.name);
        } else {
            result.unwrap_or_else(|e| panic!("{}: {e}", w.name));
        }
    }
}

#[test]
fn the_timestamp_tolerance_holds_both_ways() {
    let now = Utc::now();
    webhook::verify(&signed_at(now - TOLERANCE, now), Some(&secret())).unwrap();
    webhook::verify(&signed_at(now + TOLERANCE, now), Some(&secret())).unwrap();
    for sent in [
        now - TOLERANCE - Duration::seconds(1),
        now + TOLERANCE + Duration::seconds(1),
    ] {
        let err = webhook::verify(&signed_at(sent, now), Some(&secret())).unwrap_err();
        assert_eq!(err.class(), "auth", "{err}");
    }
}

#[test]
fn a_changed_byte_id_or_timestamp_breaks_the_signature() {
    let now = Utc::now();
    let good = signed_at(now, now);
    webhook::verify(&good, Some(&secret())).unwrap();

    let mut body = good.clone();
    body.body[5] ^= 1;
    let mut id = good.clone();
    id.headers[0].1 = "msg_2".into();
    let mut ts = good.clone();
    ts.headers[1].1 = (now.timestamp() - 1).to_string();
    let other_key = Secret::new("whsec_b3RoZXIta2V5");
    for (what, req, key) in [
        ("body", &body, secret()),
        ("id", &id, secret()),
        ("timestamp", &ts, secret()),
        ("key", &good, other_key),
    ] {
        let err = webhook::verify(req, Some(&key)).unwrap_err();
        assert_eq!(err.class(), "auth", "{what}");
        assert!(!err.to_string().contains(replay::WEBHOOK_SECRET), "{what}");
    }
}

#[test]
fn signatures_of_other_versions_or_not_base64_are_skipped() {
    let now = Utc::now();
    let mut req = signed_at(now, now);
    let good = req.headers[2].1.clone();
    req.headers[2].1 = format!("v1a,AAAA v1,%%% {good}");
    webhook::verify(&req, Some(&secret())).unwrap();
    req.headers[2].1 = "v1a,AAAA".into();
    let err = webhook::verify(&req, Some(&secret())).unwrap_err();
    assert!(err.to_string().contains("no v1 entry"), "{err}");
}

#[test]
fn without_a_configured_secret_nothing_is_accepted() {
    let now = Utc::now();
    let err = webhook::verify(&signed_at(now, now), None).unwrap_err();
    assert_eq!(err.class(), "config");
    assert!(err.to_string().contains("webhook_secret"), "{err}");
}

#[test]
fn a_verified_event_names_the_receipt_to_fetch_under_its_webhook_id() {
    let now = Utc::now();
    match webhook::handle(&signed_at(now, now), Some(&secret()), replay::SHOP_ID).unwrap() {
        WebhookOutcome::Fetch {
            dedupe_key,
            channel_order_ids,
        } => {
            assert_eq!(dedupe_key.as_deref(), Some("msg_1"));
            assert_eq!(channel_order_ids, ["2701"]);
        }
        other => panic!("{other:?}"),
    }
}
