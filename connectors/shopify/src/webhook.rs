//! Shopify webhooks (HTTPS delivery): the signature check over the raw body,
//! and the `orders/*` bodies, which are the REST order resource.
//!
//! `X-Shopify-Hmac-Sha256` is base64(HMAC-SHA256(raw body, app client
//! secret)). It is compared in constant time (`Mac::verify_slice`) against
//! each configured secret, because for up to an hour after a secret rotation
//! Shopify still signs with the old one. Deliveries repeat and arrive out of
//! order: the dedupe key is `X-Shopify-Event-Id` (the same event delivered
//! again), else `X-Shopify-Webhook-Id`; ordering is the store's business
//! (`updated_at` decides), not this module's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use switchyard_contract::{ConnectorError, RejectedOrder, Secret, WebhookOutcome, WebhookRequest};

use crate::normalize::{RestTextError, normalize_rest_text};

type HmacSha256 = Hmac<Sha256>;

pub const HMAC_HEADER: &str = "x-shopify-hmac-sha256";
pub const TOPIC_HEADER: &str = "x-shopify-topic";
pub const EVENT_ID_HEADER: &str = "x-shopify-event-id";
pub const WEBHOOK_ID_HEADER: &str = "x-shopify-webhook-id";

/// The topics whose body is a full order, which is all the daemon needs.
pub const ORDER_TOPICS: &[&str] = &[
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/cancelled",
    "orders/fulfilled",
    "orders/partially_fulfilled",
];

/// Checks `X-Shopify-Hmac-Sha256` against every secret; nothing of the body
/// is parsed before this passes.
pub fn verify(req: &WebhookRequest, secrets: &[Secret]) -> Result<(), ConnectorError> {
    if secrets.is_empty() {
        return Err(ConnectorError::Config(
            "no webhook secret configured for this shopify account".into(),
        ));
    }
    let header = req.header(HMAC_HEADER).ok_or_else(|| {
        ConnectorError::Auth("webhook has no X-Shopify-Hmac-Sha256 header".into())
    })?;
    let tag = STANDARD
        .decode(header.trim())
        .map_err(|_| ConnectorError::Auth("webhook signature is not base64".into()))?;
    for secret in secrets {
        let mut mac = mac(secret);
        mac.update(&req.body);
        if mac.verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(ConnectorError::Auth(
        "webhook signature does not match".into(),
    ))
}

/// HMAC-SHA256 keyed with `secret`.
#[expect(
    clippy::expect_used,
    reason = "HMAC takes keys of any length: new_from_slice cannot fail"
)]
fn mac(secret: &Secret) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length")
}

/// The signature Shopify would send for `body`: for tests, fixtures and the
/// simulator, which sign deliveries with a test secret.
pub fn sign(body: &[u8], secret: &Secret) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `X-Shopify-Event-Id` (one event delivered again), else `X-Shopify-Webhook-Id`.
fn dedupe_key(req: &WebhookRequest) -> Option<String> {
    req.header(EVENT_ID_HEADER)
        .or_else(|| req.header(WEBHOOK_ID_HEADER))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
}

/// What a verified delivery means. Other topics are acknowledged and ignored:
/// the reconciliation poll covers anything they would have told us.
pub fn parse(account: &str, req: &WebhookRequest) -> Result<WebhookOutcome, ConnectorError> {
    let dedupe_key = dedupe_key(req);
    let topic = req
        .header(TOPIC_HEADER)
        .map(str::trim)
        .ok_or_else(|| ConnectorError::Decode("webhook has no X-Shopify-Topic header".into()))?;
    if !ORDER_TOPICS.contains(&topic) {
        return Ok(WebhookOutcome::Ignored {
            dedupe_key,
            reason: format!("shopify topic {topic} is not handled"),
        });
    }
    let order = normalize_rest_text(account, &req.body).map_err(|e| match e {
        RestTextError::NotJson(e) => {
            ConnectorError::Decode(format!("{topic} webhook body is not JSON: {e}"))
        }
        RestTextError::Order(ConnectorError::Decode(detail)) => {
            ConnectorError::Decode(format!("{topic} webhook: {detail}"))
        }
        RestTextError::Order(other) => other,
    })?;
    Ok(WebhookOutcome::Orders {
        dedupe_key,
        orders: vec![order],
        rejected: vec![],
    })
}

/// What the daemon is told of a delivery: [`verify`], then [`parse`], except
/// that an order Shopify sent which cannot be read (an amount out of range,
/// a date that is no date) is left out and named, and the delivery still
/// acknowledged. Refusing it would only make Shopify send the same body
/// again for hours; the poll reads the order again when it next changes. A
/// body that is no order at all (no `id` and `line_items`) stays a decode
/// error, answered 400.
pub fn handle(
    account: &str,
    req: &WebhookRequest,
    secrets: &[Secret],
) -> Result<WebhookOutcome, ConnectorError> {
    verify(req, secrets)?;
    match parse(account, req) {
        Err(ConnectorError::Decode(detail)) => {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let id = match body.get("id") {
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                    Some(crate::normalize::numeric_id(s.trim()).to_owned())
                }
                _ => None,
            };
            match id {
                Some(id) if body.get("line_items").is_some_and(|l| l.is_array()) => {
                    Ok(WebhookOutcome::Orders {
                        dedupe_key: dedupe_key(req),
                        orders: vec![],
                        rejected: vec![RejectedOrder {
                            channel_order_id: Some(id),
                            error: detail,
                        }],
                    })
                }
                _ => Err(ConnectorError::Decode(detail)),
            }
        }
        other => other,
    }
}
