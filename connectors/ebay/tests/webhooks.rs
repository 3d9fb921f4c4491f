//! Notifications beyond what the fixture scenarios pin: the endpoint
//! challenge with a worked example, and signatures made in the test with a
//! key pair generated here (a valid notification is accepted, a tampered
//! body or another key is an auth error, which the daemon answers 401).

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use chrono::Utc;
use switchyard_contract::testkit::{Exchange, ReplayServer};
use switchyard_contract::{Connector, WebhookOutcome, WebhookRequest};
use switchyard_ebay::signing::TestSigner;
use switchyard_ebay::webhook::{challenge_response, compact_json};

use common::*;

fn request(
    method: &str,
    query: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> WebhookRequest {
    WebhookRequest {
        account: ACCOUNT.into(),
        method: method.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect(),
        query: query.map(str::to_owned),
        body: body.to_vec(),
        received_at: Utc::now(),
    }
}

fn exchange(method: &str, path: &str, body: serde_json::Value) -> Exchange {
    Exchange {
        method: method.into(),
        path: path.into(),
        query: BTreeMap::new(),
        body_contains: vec![],
        status: 200,
        headers: BTreeMap::from([("content-type".to_string(), "application/json".to_string())]),
        response: serde_json::to_vec(&body).unwrap(),
    }
}

/// eBay's challenge answer, worked out by hand:
/// `sha256("a8628072-3d33-45ee-9004-bee86830a22d" +
/// "switchyard_verification_token_0123456789abcdef" +
/// "https://hooks.example.com/webhooks/ebay-us")`.
#[test]
fn the_challenge_answer_matches_a_worked_example() {
    assert_eq!(
        challenge_response(
            "a8628072-3d33-45ee-9004-bee86830a22d",
            "switchyard_verification_token_0123456789abcdef",
            "https://hooks.example.com/webhooks/ebay-us",
        ),
        "22ac0ad7f1b0dc7fe5ad7e5cdef9093f59c66c33e93a726227c8d0d2bbc7ef16"
    );
}

/// The GET eBay sends is answered with the configured endpoint URL and
/// verification token, whatever host the request reached (a proxy).
#[tokio::test]
async fn the_challenge_get_is_answered_with_the_configured_endpoint_url() {
    let built = connector("http://127.0.0.1:9", &ConfigOverrides::default());
    let code = "71745723-d031-455c-bfa5-f90d11b4f20a";
    let out = built
        .connector
        .handle_webhook(&request(
            "GET",
            Some(&format!("challenge_code={code}")),
            &[("host", "10.0.0.7:7300")],
            b"",
        ))
        .await
        .unwrap();
    let WebhookOutcome::Respond {
        status,
        content_type,
        body,
    } = out
    else {
        panic!("a challenge is answered");
    };
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let expected = challenge_response(
        code,
        switchyard_ebay::config::REPLAY_VERIFICATION_TOKEN,
        &switchyard_ebay::config::replay_endpoint_url(ACCOUNT),
    );
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer, serde_json::json!({ "challengeResponse": expected }));

    // A GET that is no challenge is not eBay's format.
    let err = built
        .connector
        .handle_webhook(&request("GET", Some("x=1"), &[], b""))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "decode");
}

/// Keys made here: the notification signed with the key eBay's key API
/// serves is accepted; its body changed by one byte, or signed by another
/// key under the same key id, is refused as auth. The key is read once.
#[tokio::test]
async fn signatures_made_with_a_key_generated_here_verify_and_forgeries_do_not() {
    let signer = TestSigner::generate("3f1c0d9e-8a7b-4c6d-9e5f-1a2b3c4d5e6f").unwrap();
    let forger = TestSigner::generate(&signer.kid).unwrap();
    let server = ReplayServer::from_exchanges(
        vec![
            exchange(
                "POST",
                TOKEN_PATH,
                serde_json::json!({"access_token": "test-app-token-made-here", "expires_in": 7200}),
            ),
            exchange(
                "GET",
                &format!("/commerce/notification/v1/public_key/{}", signer.kid),
                signer.public_key_answer().unwrap(),
            ),
        ],
        true,
    )
    .await;
    let built = connector(&server.url(), &ConfigOverrides::default());
    let body = br#"{"metadata":{"topic":"ORDER_CONFIRMATION","schemaVersion":"1.0","deprecated":false},"notification":{"notificationId":"n-made-here","eventDate":"2026-11-27T11:58:00.000Z","publishDate":"2026-11-27T11:58:00.000Z","publishAttemptCount":1,"data":{"orderId":"12-09999-00001"}}}"#;
    let header = signer.signature_header(body).unwrap();

    let ok = built
        .connector
        .handle_webhook(&request(
            "POST",
            None,
            &[("X-EBAY-SIGNATURE", &header)],
            body,
        ))
        .await
        .unwrap();
    match ok {
        WebhookOutcome::Fetch {
            dedupe_key,
            channel_order_ids,
        } => {
            assert_eq!(dedupe_key.as_deref(), Some("n-made-here"));
            assert_eq!(channel_order_ids, ["12-09999-00001"]);
        }
        other => panic!("{other:?}"),
    }

    // The same JSON pretty-printed on the way still verifies: eBay signs
    // the compact form.
    let pretty = String::from_utf8_lossy(body)
        .replace("\":", "\" : ")
        .replace(",\"", ",\n  \"")
        .replace('{', "{\n  ")
        .into_bytes();
    assert_ne!(pretty, body);
    assert_eq!(compact_json(&pretty), body);
    built
        .connector
        .handle_webhook(&request(
            "POST",
            None,
            &[("x-ebay-signature", &header)],
            &pretty,
        ))
        .await
        .unwrap();

    let mut tampered = body.to_vec();
    let at = tampered.len() - 10;
    tampered[at] ^= 1;
    let forged = forger.signature_header(body).unwrap();
    for (what, req) in [
        (
            "tampered body",
            request("POST", None, &[("x-ebay-signature", &header)], &tampered),
        ),
        (
            "another key",
            request("POST", None, &[("x-ebay-signature", &forged)], body),
        ),
        ("no header", request("POST", None, &[], body)),
    ] {
        let err = built.connector.handle_webhook(&req).await.unwrap_err();
        assert_eq!(err.class(), "auth", "{what}: {err}");
    }
    // Token and key were each asked for once: the key is cached.
    let requests = server.finish().await;
    assert_eq!(requests.len(), 2);
    assert!(
        String::from_utf8_lossy(&requests[0].body).contains("grant_type=client_credentials"),
        "the key is read with an application token"
    );
}
