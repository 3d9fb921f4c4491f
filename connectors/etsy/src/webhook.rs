//! Etsy webhooks (apps with commercial access only): the Standard Webhooks
//! signature over the raw body, then the flat payload, which names a receipt
//! to fetch rather than carrying it.
//!
//! Signature: `webhook-signature` holds space-separated `v1,<base64>`
//! entries, each base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")).
//! The key is the signing secret's bytes: a `whsec_` prefix is dropped and
//! the rest base64-decoded (the Standard Webhooks convention; a secret that
//! is not base64 is used as given). Every `v1` entry is compared in constant
//! time (`Mac::verify_slice`); other versions are skipped. A
//! `webhook-timestamp` more than [`TOLERANCE`] away from when the request
//! arrived is refused, so a captured delivery cannot be replayed later.
//! Nothing of the body is parsed before all of this passes.
//!
//! Payload: `{"event_type": "order.paid", "resource_url":
//! ".../v3/application/shops/{shop_id}/receipts/{receipt_id}", "shop_id": …}`.
//! Any event whose `resource_url` names a receipt of this shop becomes a
//! fetch of that receipt (the daemon stores the job with the dedupe key and
//! fetches through the pacer); events about another shop or no receipt are
//! acknowledged and ignored. Deliveries repeat: the dedupe key is
//! `webhook-id`, which Standard Webhooks keeps across retries of one event.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, SecondsFormat};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use switchyard_contract::{ConnectorError, Secret, WebhookOutcome, WebhookRequest};

use crate::wire::WebhookPayload;

type HmacSha256 = Hmac<Sha256>;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How far a delivery's timestamp may be from its arrival, either way.
pub const TOLERANCE: Duration = Duration::minutes(5);

/// The HMAC key a signing secret stands for.
fn key(secret: &Secret) -> Vec<u8> {
    let s = secret.expose().trim();
    let body = s.strip_prefix("whsec_").unwrap_or(s);
    STANDARD
        .decode(body)
        .unwrap_or_else(|_| body.as_bytes().to_vec())
}

/// `None` only for a key HMAC refuses, which no key length is.
fn mac(secret: &Secret, id: &str, timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(&key(secret)).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The `webhook-signature` value a sender with `secret` would put on this
/// delivery: for tests, fixtures and the simulator.
pub fn sign(secret: &Secret, id: &str, timestamp: &str, body: &[u8]) -> String {
    let tag = mac(secret, id, timestamp, body)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default();
    format!("v1,{}", STANDARD.encode(tag))
}

fn header<'a>(req: &'a WebhookRequest, name: &str) -> Result<&'a str, ConnectorError> {
    req.header(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConnectorError::Auth(format!("webhook has no {name} header")))
}

/// Checks the timestamp and the signature; `Err(Auth)` says which failed.
pub fn verify(req: &WebhookRequest, secret: Option<&Secret>) -> Result<(), ConnectorError> {
    let secret = secret.ok_or_else(|| {
        ConnectorError::Config(
            "no webhook_secret configured for this etsy account; set it to the endpoint's signing secret from Etsy's webhook portal".into(),
        )
    })?;
    let id = header(req, ID_HEADER)?;
    let timestamp = header(req, TIMESTAMP_HEADER)?;
    let signatures = header(req, SIGNATURE_HEADER)?;
    let sent = timestamp
        .parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or_else(|| {
            ConnectorError::Auth(format!(
                "webhook-timestamp {timestamp:?} is not a time in epoch seconds"
            ))
        })?;
    // Whole seconds, the header's own unit.
    let skew = req.received_at.timestamp() - sent.timestamp();
    if skew.abs() > TOLERANCE.num_seconds() {
        return Err(ConnectorError::Auth(format!(
            "webhook-timestamp {} is {skew} s from its arrival at {}, more than the {} s allowed: a replay, or a clock far off",
            sent.to_rfc3339_opts(SecondsFormat::Secs, true),
            req.received_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            TOLERANCE.num_seconds()
        )));
    }
    let mut seen_v1 = false;
    for entry in signatures.split_whitespace() {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            continue;
        };
        seen_v1 = true;
        let Ok(tag) = STANDARD.decode(encoded) else {
            continue;
        };
        if mac(secret, id, timestamp, &req.body).is_some_and(|m| m.verify_slice(&tag).is_ok()) {
            return Ok(());
        }
    }
    Err(ConnectorError::Auth(if seen_v1 {
        "webhook signature does not match".into()
    } else {
        "webhook-signature has no v1 entry".into()
    }))
}

/// The receipt id a `resource_url` names, if it names one of `shop_id`'s.
fn receipt_in(url: &str, shop_id: u64) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let mut parts = path.trim_end_matches('/').rsplit('/');
    let receipt = parts.next()?;
    let kind = parts.next()?;
    let shop = parts.next()?;
    let shops = parts.next()?;
    let is_id = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (kind == "receipts" && shops == "shops" && is_id(receipt) && shop == shop_id.to_string())
        .then(|| receipt.to_owned())
}

/// What a verified delivery means.
pub fn parse(req: &WebhookRequest, shop_id: u64) -> Result<WebhookOutcome, ConnectorError> {
    let dedupe_key = req
        .header(ID_HEADER)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    let payload: WebhookPayload = serde_json::from_slice(&req.body).map_err(|e| {
        ConnectorError::Decode(format!("etsy webhook body is not the event JSON: {e}"))
    })?;
    let event = payload
        .event_type
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ConnectorError::Decode("etsy webhook body has no event_type".into()))?
        .to_owned();
    let url = payload.resource_url.as_deref().unwrap_or("").trim();
    if let Some(other) = payload.shop_id.as_ref().and_then(|s| s.as_u64())
        && other != shop_id
    {
        return Ok(WebhookOutcome::Ignored {
            dedupe_key,
            reason: format!(
                "etsy {event} is about shop {other}, not this account's shop {shop_id}"
            ),
        });
    }
    match receipt_in(url, shop_id) {
        Some(receipt) => Ok(WebhookOutcome::Fetch {
            dedupe_key,
            channel_order_ids: vec![receipt],
        }),
        None => Ok(WebhookOutcome::Ignored {
            dedupe_key,
            reason: format!("etsy {event} names no receipt of shop {shop_id} ({url:?})"),
        }),
    }
}

/// [`verify`], then [`parse`].
pub fn handle(
    req: &WebhookRequest,
    secret: Option<&Secret>,
    shop_id: u64,
) -> Result<WebhookOutcome, ConnectorError> {
    verify(req, secret)?;
    parse(req, shop_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_urls_name_receipts_of_the_shop() {
        let url = "https://openapi.etsy.com/v3/application/shops/12345678/receipts/54321";
        assert_eq!(receipt_in(url, 12345678).as_deref(), Some("54321"));
        assert_eq!(
            receipt_in(&format!("{url}/"), 12345678).as_deref(),
            Some("54321")
        );
        assert_eq!(
            receipt_in(&format!("{url}?x=1"), 12345678).as_deref(),
            Some("54321")
        );
        assert_eq!(receipt_in(url, 999), None);
        assert_eq!(
            receipt_in(
                "https://openapi.etsy.com/v3/application/listings/54321",
                12345678
            ),
            None
        );
        assert_eq!(
            receipt_in(
                "https://openapi.etsy.com/v3/application/shops/12345678/receipts/abc",
                12345678
            ),
            None
        );
        assert_eq!(receipt_in("", 12345678), None);
    }

    #[test]
    fn the_key_is_the_base64_after_the_whsec_prefix() {
        assert_eq!(key(&Secret::new("whsec_aGVsbG8=")), b"hello");
        assert_eq!(key(&Secret::new("aGVsbG8=")), b"hello");
        assert_eq!(key(&Secret::new("not base64!")), b"not base64!");
    }
}
