//! eBay Notification API pushes at `/webhooks/{account}`: the endpoint
//! challenge, the `X-EBAY-SIGNATURE` check, and what a verified notification
//! means.
//!
//! **Challenge.** When a destination is created or changed, eBay sends
//! `GET …?challenge_code=X` and expects `200` with
//! `{"challengeResponse": hex(SHA-256(X + verification_token + endpoint_url))}`.
//! `endpoint_url` is a setting, not derived from the request, because the
//! daemon usually sits behind a proxy and must hash the URL exactly as it was
//! registered with eBay.
//!
//! **Signature.** The header is base64 JSON
//! `{"alg":"ecdsa","kid":…,"signature":…,"digest":"SHA1"}`. The public key
//! for `kid` is read from the Notification API (`getPublicKey`, with an
//! application token, as a look-up through the pacer) and kept for an hour,
//! as eBay asks; a key id eBay does not know is remembered as unknown, and
//! unknown ids are not looked up more than once a minute, so that forged
//! headers cannot spend the account's Notification API budget. The key is
//! ECDSA P-256 and eBay's answer names the digest, which has always been
//! SHA-1 (the header's `digest` must agree with it); SHA-256 is accepted too.
//! The signature is checked over the raw body first and, failing that, over
//! the body with the JSON whitespace between tokens removed: eBay signs the
//! compact serialization (its SDKs re-serialize the parsed body before
//! checking), which is what it sends, but a body pretty-printed on the way
//! (a proxy, a test tool) means the same JSON, and only that whitespace is
//! taken out. Any failure is `Auth` (answered 401).
//!
//! **Meaning.** A notification that carries an order id (`ORDER_CONFIRMATION`,
//! sent once per line item, `ITEM_MARKED_SHIPPED` and the like) becomes a
//! fetch of that order; the dedupe key is `notification.notificationId`.
//! `MARKETPLACE_ACCOUNT_DELETION` (every eBay app must accept it) is
//! acknowledged and ignored: switchyard keeps buyers' data only inside their
//! orders and does not erase it on this notice; see the channel guide. Other
//! topics are acknowledged and ignored; the poll covers them.

use std::collections::HashMap;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use chrono::{DateTime, Duration, Utc};
use switchyard_contract::{ConnectorError, Operation, Secret, WebhookOutcome, WebhookRequest};

use crate::client::{Call, Client};
use crate::endpoints::{self, Api};
use crate::wire::{Envelope, PublicKey, SignatureHeader};

pub const SIGNATURE_HEADER: &str = "x-ebay-signature";
pub const ACCOUNT_DELETION_TOPIC: &str = "MARKETPLACE_ACCOUNT_DELETION";

/// How long a signing key is used before it is read again.
pub const KEY_TTL: Duration = Duration::hours(1);
/// After eBay said a key id is unknown, no unknown id is looked up for this long.
pub const UNKNOWN_KEY_COOL_OFF: Duration = Duration::seconds(60);

/// The answer to eBay's endpoint challenge.
pub fn challenge_response(
    challenge_code: &str,
    verification_token: &str,
    endpoint_url: &str,
) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(challenge_code.as_bytes());
    ctx.update(verification_token.as_bytes());
    ctx.update(endpoint_url.as_bytes());
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digests eBay's keys name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha1,
    Sha256,
}

impl Digest {
    pub fn parse(name: &str) -> Option<Digest> {
        match name.trim().to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Digest::Sha1),
            "SHA256" => Some(Digest::Sha256),
            _ => None,
        }
    }

    fn algorithm(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Digest::Sha1 => &signature::ECDSA_P256_SHA1_ASN1,
            Digest::Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        }
    }
}

/// A notification signing key as `getPublicKey` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// X.509 SubjectPublicKeyInfo, DER.
    pub der: Vec<u8>,
    pub digest: Digest,
}

impl SigningKey {
    /// Reads a `getPublicKey` answer: a PEM key (eBay's has no line breaks),
    /// `algorithm` ECDSA and the digest.
    pub fn from_answer(answer: &serde_json::Value) -> Result<SigningKey, String> {
        let k: PublicKey = serde_json::from_value(answer.clone())
            .map_err(|e| format!("not a getPublicKey answer: {e}"))?;
        match k.algorithm.as_deref() {
            Some(a) if a.eq_ignore_ascii_case("ECDSA") => {}
            other => return Err(format!("key algorithm {other:?} is not ECDSA")),
        }
        let digest = k
            .digest
            .as_deref()
            .and_then(Digest::parse)
            .ok_or_else(|| format!("key digest {:?} is not SHA1 or SHA256", k.digest))?;
        let pem = k.key.ok_or("the answer has no key")?;
        let b64: String = pem
            .replace("-----BEGIN PUBLIC KEY-----", "")
            .replace("-----END PUBLIC KEY-----", "")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|e| format!("the key is not base64 PEM: {e}"))?;
        Ok(SigningKey { der, digest })
    }

    /// Whether `signature` (DER) signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(self.digest.algorithm(), &self.der)
            .verify(message, signature)
            .is_ok()
    }
}

/// The body with the whitespace between JSON tokens removed (strings kept
/// byte for byte): the compact form eBay signs.
pub fn compact_json(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in raw {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

/// The decoded `X-EBAY-SIGNATURE` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub kid: String,
    pub signature: Vec<u8>,
    pub digest: Option<Digest>,
}

impl Signature {
    pub fn parse(header: &str) -> Result<Signature, ConnectorError> {
        let bad = |why: &str| ConnectorError::Auth(format!("X-EBAY-SIGNATURE {why}"));
        let json = STANDARD
            .decode(header.trim())
            .or_else(|_| URL_SAFE.decode(header.trim()))
            .map_err(|_| bad("is not base64"))?;
        let h: SignatureHeader =
            serde_json::from_slice(&json).map_err(|_| bad("is not base64 JSON"))?;
        if let Some(alg) = &h.alg
            && !alg.eq_ignore_ascii_case("ecdsa")
        {
            return Err(bad(&format!("names algorithm {alg:?}, not ecdsa")));
        }
        let kid = h
            .kid
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| bad("has no kid"))?;
        let signature = h
            .signature
            .and_then(|s| STANDARD.decode(s.trim()).ok())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("has no base64 signature"))?;
        let digest = match h.digest {
            Some(d) => Some(Digest::parse(&d).ok_or_else(|| bad(&format!("names digest {d:?}")))?),
            None => None,
        };
        Ok(Signature {
            kid,
            signature,
            digest,
        })
    }

    /// Checks the raw body, then its compact form, with `key`.
    pub fn verify(&self, key: &SigningKey, body: &[u8]) -> Result<(), ConnectorError> {
        if let Some(d) = self.digest
            && d != key.digest
        {
            return Err(ConnectorError::Auth(format!(
                "X-EBAY-SIGNATURE names digest {d:?}, eBay's key {} says {:?}",
                self.kid, key.digest
            )));
        }
        if key.verifies(body, &self.signature) {
            return Ok(());
        }
        let compact = compact_json(body);
        if compact != body && key.verifies(&compact, &self.signature) {
            return Ok(());
        }
        Err(ConnectorError::Auth(format!(
            "X-EBAY-SIGNATURE does not match the body (key {})",
            self.kid
        )))
    }
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, (SigningKey, DateTime<Utc>)>,
    unknown: HashMap<String, DateTime<Utc>>,
    last_unknown_lookup: Option<DateTime<Utc>>,
}

/// The signing keys read so far, by key id.
#[derive(Default)]
pub(crate) struct Keys {
    cache: tokio::sync::Mutex<KeyCache>,
}

impl Keys {
    /// The key for `kid`, read from eBay when not cached (one look-up at a
    /// time: a burst of notifications waits for the first one's).
    pub async fn get(&self, client: &Client, kid: &str) -> Result<SigningKey, ConnectorError> {
        let mut cache = self.cache.lock().await;
        let now = Utc::now();
        if let Some((key, at)) = cache.keys.get(kid)
            && now < *at + KEY_TTL
        {
            return Ok(key.clone());
        }
        let unknown = |kid: &str| {
            ConnectorError::Auth(format!(
                "X-EBAY-SIGNATURE names key {kid}, which eBay does not know"
            ))
        };
        if cache.unknown.get(kid).is_some_and(|at| now < *at + KEY_TTL) {
            return Err(unknown(kid));
        }
        let known_before = cache.keys.contains_key(kid);
        if !known_before
            && cache
                .last_unknown_lookup
                .is_some_and(|at| now < at + UNKNOWN_KEY_COOL_OFF)
        {
            return Err(ConnectorError::Auth(format!(
                "X-EBAY-SIGNATURE names key {kid}, not known here; another unknown key was looked up less than a minute ago, so this one is not (eBay sends again)"
            )));
        }
        let answer = client
            .call(
                Call::get(
                    "getPublicKey",
                    Operation::Lookup,
                    Api::Notification,
                    endpoints::public_key_path(kid),
                )
                .app_token()
                .answering(&[400, 404]),
            )
            .await
            .map_err(|e| match e {
                ConnectorError::Auth(detail) => ConnectorError::Config(format!(
                    "reading eBay's notification key {kid}: {detail}; check client_id and client_secret"
                )),
                other => other,
            })?;
        if answer.status == 400 || answer.status == 404 {
            if !known_before {
                cache.last_unknown_lookup = Some(now);
            }
            cache.unknown.insert(kid.to_owned(), now);
            cache.keys.remove(kid);
            return Err(unknown(kid));
        }
        let value: serde_json::Value = answer.json("getPublicKey")?;
        let key = SigningKey::from_answer(&value)
            .map_err(|e| ConnectorError::Decode(format!("getPublicKey {kid}: {e}")))?;
        cache.keys.insert(kid.to_owned(), (key.clone(), now));
        Ok(key)
    }
}

/// One query parameter's decoded value.
fn query_param(query: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://challenge.invalid/?{query}")).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The first `orderId` string anywhere in a notification's data.
fn find_order_id(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(map) => map
            .get("orderId")
            .and_then(|id| id.as_str())
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .or_else(|| map.values().find_map(find_order_id)),
        serde_json::Value::Array(items) => items.iter().find_map(find_order_id),
        _ => None,
    }
}

/// What a verified notification means.
pub fn parse(body: &[u8]) -> Result<WebhookOutcome, ConnectorError> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| ConnectorError::Decode(format!("eBay notification is not JSON: {e}")))?;
    let topic = envelope
        .metadata
        .as_ref()
        .and_then(|m| m.topic.as_deref())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ConnectorError::Decode("eBay notification has no metadata.topic".into()))?
        .to_owned();
    let notification = envelope.notification.unwrap_or_default();
    let dedupe_key = notification
        .notification_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    if topic == ACCOUNT_DELETION_TOPIC {
        return Ok(WebhookOutcome::Ignored {
            dedupe_key,
            reason: "eBay marketplace account deletion: acknowledged; switchyard keeps buyers' data only inside their orders and does not erase it on this notice".into(),
        });
    }
    match find_order_id(&notification.data) {
        Some(order_id) => Ok(WebhookOutcome::Fetch {
            dedupe_key,
            channel_order_ids: vec![order_id],
        }),
        None => Ok(WebhookOutcome::Ignored {
            dedupe_key,
            reason: format!("eBay topic {topic} names no order"),
        }),
    }
}

/// What the daemon needs answered about one request: the challenge, or a
/// verified notification's meaning.
pub(crate) async fn handle(
    client: &Client,
    keys: &Keys,
    verification_token: Option<&Secret>,
    endpoint_url: Option<&str>,
    req: &WebhookRequest,
) -> Result<WebhookOutcome, ConnectorError> {
    if req.method.eq_ignore_ascii_case("GET") {
        let code = req
            .query
            .as_deref()
            .and_then(|q| query_param(q, "challenge_code"))
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                ConnectorError::Decode("GET without challenge_code is not an eBay challenge".into())
            })?;
        let (Some(token), Some(url)) = (verification_token, endpoint_url) else {
            return Err(ConnectorError::Config(
                "eBay sent an endpoint challenge but this account has no verification_token and endpoint_url: set both as registered with eBay".into(),
            ));
        };
        let body = serde_json::json!({
            "challengeResponse": challenge_response(&code, token.expose(), url)
        });
        return Ok(WebhookOutcome::Respond {
            status: 200,
            content_type: "application/json".into(),
            body: body.to_string().into_bytes(),
        });
    }
    let header = req.header(SIGNATURE_HEADER).ok_or_else(|| {
        ConnectorError::Auth("eBay notification has no X-EBAY-SIGNATURE header".into())
    })?;
    let signature = Signature::parse(header)?;
    let key = keys.get(client, &signature.kid).await?;
    signature.verify(&key, &req.body)?;
    parse(&req.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compacting_removes_only_whitespace_between_tokens() {
        let pretty = b"{\n  \"a\" : [ 1, 2 ],\n  \"b\": \"x y \\\" z\"\n}\n";
        assert_eq!(compact_json(pretty), b"{\"a\":[1,2],\"b\":\"x y \\\" z\"}");
        assert_eq!(compact_json(b"{\"a\":\"\\\\\"}"), b"{\"a\":\"\\\\\"}");
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param("x=1&challenge_code=a%2Bb+c", "challenge_code").as_deref(),
            Some("a+b c")
        );
        assert_eq!(
            query_param("challenge_code", "challenge_code").as_deref(),
            Some("")
        );
        assert_eq!(query_param("x=%zz%4", "x").as_deref(), Some("%zz%4"));
        assert_eq!(query_param("x=1", "y"), None);
    }

    #[test]
    fn order_ids_are_found_wherever_the_topic_puts_them() {
        let fetch = |data: serde_json::Value| {
            let body = json!({"metadata": {"topic": "ORDER_CONFIRMATION"},
                              "notification": {"notificationId": "n-1", "data": data}});
            match parse(&serde_json::to_vec(&body).unwrap()).unwrap() {
                WebhookOutcome::Fetch {
                    dedupe_key,
                    channel_order_ids,
                } => {
                    assert_eq!(dedupe_key.as_deref(), Some("n-1"));
                    channel_order_ids
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(fetch(json!({"orderId": "12-1"})), ["12-1"]);
        assert_eq!(
            fetch(json!({"order": {"orderId": "12-2", "lineItemId": "9"}})),
            ["12-2"]
        );
        assert_eq!(fetch(json!({"lineItems": [{"orderId": "12-3"}]})), ["12-3"]);
        let body =
            br#"{"metadata":{"topic":"ITEM_AVAILABILITY"},"notification":{"data":{"itemId":"1"}}}"#;
        assert!(matches!(
            parse(body).unwrap(),
            WebhookOutcome::Ignored {
                dedupe_key: None,
                ..
            }
        ));
        assert_eq!(parse(b"{}").unwrap_err().class(), "decode");
        assert_eq!(parse(b"<xml/>").unwrap_err().class(), "decode");
    }

    #[test]
    fn signature_headers_are_read_or_refused_as_auth() {
        let header = STANDARD.encode(
            json!({"alg": "ecdsa", "kid": "k-1", "signature": STANDARD.encode([1, 2, 3]), "digest": "SHA1"})
                .to_string(),
        );
        let s = Signature::parse(&header).unwrap();
        assert_eq!(
            (s.kid.as_str(), s.signature.as_slice(), s.digest),
            ("k-1", &[1u8, 2, 3][..], Some(Digest::Sha1))
        );
        for bad in [
            "not base64!".to_owned(),
            STANDARD.encode("not json"),
            STANDARD.encode(json!({"alg": "rsa", "kid": "k", "signature": "AQ=="}).to_string()),
            STANDARD.encode(json!({"alg": "ecdsa", "signature": "AQ=="}).to_string()),
            STANDARD.encode(json!({"alg": "ecdsa", "kid": "k"}).to_string()),
            STANDARD.encode(json!({"kid": "k", "signature": "AQ==", "digest": "MD5"}).to_string()),
        ] {
            assert_eq!(Signature::parse(&bad).unwrap_err().class(), "auth", "{bad}");
        }
    }
}
