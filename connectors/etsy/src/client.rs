//! The one place that talks HTTP to Etsy: it signs every call (`Authorization:
//! Bearer <access token>` and `x-api-key: <keystring>:<shared secret>`),
//! keeps the access token fresh through the [`TokenKeeper`] (refresh grants
//! at the token endpoint; Etsy rotates the refresh token every time, and the
//! keeper saves the new one before the new access token is used), reports
//! Etsy's limit headers to the pacer, and turns every way a call can fail
//! into a [`ConnectorError`] class. It never sleeps and never retries, with
//! one exception: a call Etsy answers 401 (the access token expired early or
//! was revoked) is sent once more after one refresh, so that a token
//! expiring in the middle of a sync costs one refresh, not the sync.
//!
//! | answer | class |
//! | --- | --- |
//! | transport error, timeout | `from_reqwest` (transient, mostly) |
//! | 401 again after a refresh | `Auth`: re-authorize |
//! | 403 | `Auth`: the `x-api-key` pair or the token's scopes |
//! | 429 | `RateLimited`, with `retry-after` when sent |
//! | 404 | given back to the caller (a receipt that is gone is not an error) |
//! | other non-2xx | `from_status` (5xx transient, 4xx rejected) |
//! | token endpoint 400/401 (`invalid_grant`) | `Auth`: the keeper reports it and cools off |
//!
//! Limits: `x-limit-per-second` / `x-remaining-this-second` become a
//! [`RateWindow::Burst`] hint, `x-limit-per-day` / `x-remaining-today` a
//! [`RateWindow::Daily`] one, for every answer that carries them (429s
//! included), told to every operation's budget (Etsy's budgets are one per
//! app) with when the call went out, so that an answer read after a later
//! one cannot undo it; the daemon's pacer holds pushes back when the day's
//! budget runs low.
//!
//! No message contains a token or the shared secret: they are only written
//! into headers and the refresh form, and error excerpts are scrubbed of
//! them regardless.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use switchyard_contract::error::parse_retry_after;
use switchyard_contract::{
    ConnectorError, Operation, Pacer, RateHint, RateWindow, Secret, TokenGrant, TokenKeeper,
    TokenSet, TokenStore,
};

use crate::config::EtsyConfig;
use crate::wire::{ErrorBody, TokenAnswer};

/// How much of a response body goes into an error message.
const EXCERPT_CHARS: usize = 300;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// What a request carries.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    None,
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded` (`createReceiptShipment`).
    Form(Vec<(&'static str, String)>),
}

/// One call to the API, under `base_url`.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The operationId, for messages.
    pub what: &'static str,
    pub operation: Operation,
    /// The pacer was already asked for this call's budget (a push that pays
    /// for its write before the read it needs, so that the two go back to
    /// back). A resend after a refresh asks again.
    pub prepaid: bool,
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub payload: Payload,
}

impl Call {
    pub fn get(what: &'static str, operation: Operation, path: String) -> Self {
        Call {
            what,
            operation,
            prepaid: false,
            method: Method::GET,
            path,
            query: Vec::new(),
            payload: Payload::None,
        }
    }

    pub fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }
}

/// A 2xx or 404 answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn found(&self) -> bool {
        self.status != 404
    }
}

pub(crate) struct EtsyClient {
    http: reqwest::Client,
    root: String,
    token_endpoint: String,
    keystring: String,
    api_key: Secret,
    shared_secret: Secret,
    keeper: TokenKeeper,
    pacer: Arc<dyn Pacer>,
}

impl EtsyClient {
    pub fn new(
        config: &EtsyConfig,
        http: reqwest::Client,
        tokens: Arc<dyn TokenStore>,
        pacer: Arc<dyn Pacer>,
    ) -> Self {
        let configured = TokenSet {
            access_token: config.access_token.clone(),
            access_expires_at: None,
            refresh_token: Some(config.refresh_token.clone()),
        };
        EtsyClient {
            http,
            root: config.api_root().to_owned(),
            token_endpoint: config.token_endpoint(),
            keystring: config.keystring.trim().to_owned(),
            api_key: config.api_key_header(),
            shared_secret: config.shared_secret.clone(),
            keeper: TokenKeeper::new(tokens, configured),
            pacer,
        }
    }

    /// The account's pacer, for a push that pays for its write up front.
    pub fn pacer(&self) -> &dyn Pacer {
        self.pacer.as_ref()
    }

    /// Sends `call` and decodes a 2xx answer as `T`; a 404 is `Rejected`.
    pub async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, ConnectorError> {
        let what = call.what;
        let answer = self.send(call).await?;
        if !answer.found() {
            return Err(ConnectorError::Rejected {
                status: Some(404),
                detail: format!("{what}: not found: {}", self.excerpt(&answer.body)),
            });
        }
        self.decode(what, &answer.body)
    }

    pub fn decode<T: DeserializeOwned>(
        &self,
        what: &str,
        body: &[u8],
    ) -> Result<T, ConnectorError> {
        serde_json::from_slice(body).map_err(|e| {
            ConnectorError::Decode(format!(
                "{what}: unexpected answer ({e}): {}",
                self.excerpt(body)
            ))
        })
    }

    /// Sends `call` with a fresh access token; 2xx and 404 come back as an
    /// [`Answer`], everything else as its error class.
    pub async fn send(&self, call: Call) -> Result<Answer, ConnectorError> {
        let mut refreshed = false;
        loop {
            let token = self.keeper.access_token(|r| self.refresh(r)).await?;
            if !call.prepaid || refreshed {
                self.pacer.acquire(call.operation, 1).await;
            }
            let url = format!("{}{}", self.root, call.path);
            let mut request = self
                .http
                .request(call.method.clone(), &url)
                .bearer_auth(token.expose())
                .header("x-api-key", self.api_key.expose())
                .header(reqwest::header::ACCEPT, "application/json");
            if !call.query.is_empty() {
                request = request.query(&call.query);
            }
            request = match &call.payload {
                Payload::None => request,
                Payload::Json(v) => request.json(v),
                Payload::Form(fields) => request.form(fields),
            };
            let (status, retry_after, body) = self.receive(request).await?;
            match status {
                200..=299 | 404 => return Ok(Answer { status, body }),
                401 if !refreshed => {
                    // Expired or revoked early: the next token is a refresh.
                    self.keeper.invalidate(&token).await;
                    refreshed = true;
                }
                401 => {
                    self.keeper.invalidate(&token).await;
                    return Err(ConnectorError::Auth(format!(
                        "{}: HTTP 401 with a just-refreshed access token: {}; re-authorize the app for this shop and set the new refresh_token",
                        call.what,
                        self.excerpt_with(&body, &token)
                    )));
                }
                403 => {
                    return Err(ConnectorError::Auth(format!(
                        "{}: HTTP 403: {}; check api_key (the app keystring) and shared_secret, and that the app was granted the transactions_r, transactions_w, listings_r and listings_w scopes",
                        call.what,
                        self.excerpt_with(&body, &token)
                    )));
                }
                _ => {
                    return Err(ConnectorError::from_status(
                        status,
                        retry_after,
                        format!("{}: {}", call.what, self.excerpt_with(&body, &token)),
                    ));
                }
            }
        }
    }

    /// One refresh grant. Etsy answers a new access token and a new refresh
    /// token; the old refresh token stops working at once.
    async fn refresh(&self, refresh_token: Secret) -> Result<TokenGrant, ConnectorError> {
        self.pacer.acquire(Operation::Auth, 1).await;
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.keystring.as_str()),
            ("refresh_token", refresh_token.expose()),
        ];
        let request = self
            .http
            .post(&self.token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        let (status, retry_after, body) = self.receive(request).await?;
        let scrub = |s: &str| cut(&self.scrub(s).replace(refresh_token.expose(), "***"));
        match status {
            200..=299 => {
                let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
                    ConnectorError::Decode(format!("token endpoint: answer is not a token ({e})"))
                })?;
                let access_token = answer
                    .access_token
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| {
                        ConnectorError::Decode(
                            "token endpoint: the answer has no access_token".into(),
                        )
                    })?;
                Ok(TokenGrant {
                    access_token: Secret::new(access_token),
                    expires_in: answer.expires_in.map(std::time::Duration::from_secs),
                    refresh_token: answer
                        .refresh_token
                        .filter(|t| !t.trim().is_empty())
                        .map(Secret::new),
                })
            }
            400 | 401 => Err(ConnectorError::Auth(format!(
                "etsy token endpoint refused the refresh token (HTTP {status}): {}",
                scrub(&error_text(&body))
            ))),
            _ => Err(ConnectorError::from_status(
                status,
                retry_after,
                format!("token endpoint: {}", scrub(&error_text(&body))),
            )),
        }
    }

    /// Sends `request` and reads the answer whole: its status, the wait a
    /// 429 asks for, its body; the limit headers go to the pacer.
    async fn receive(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Option<std::time::Duration>, Vec<u8>), ConnectorError> {
        let sent = tokio::time::Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        self.observe(response.headers(), sent);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?
            .to_vec();
        Ok((status, retry_after, body))
    }

    /// Etsy's limit headers, as hints for the pacer. Etsy's per-second and
    /// per-day budgets are one per app, spent by every kind of call, so each
    /// hint is told to every operation's budget: a day running low on polls
    /// holds the pushes back too. With when the call went out: a poll, a
    /// fetch and pushes run side by side, and an answer read late must not
    /// bring back allowance a later answer already showed spent.
    fn observe(&self, headers: &HeaderMap, sent: tokio::time::Instant) {
        for hint in rate_hints(headers) {
            for operation in Operation::ALL {
                self.pacer.observe_answer(operation, hint, sent);
            }
        }
    }

    /// A body for an error message: Etsy's message or the body's start,
    /// scrubbed before it is cut, so no credential is left half-shown.
    fn excerpt(&self, bytes: &[u8]) -> String {
        cut(&self.scrub(&error_text(bytes)))
    }

    /// [`EtsyClient::excerpt`], also scrubbed of the access token just sent.
    fn excerpt_with(&self, bytes: &[u8], token: &Secret) -> String {
        let text = self.scrub(&error_text(bytes));
        if token.expose().is_empty() {
            cut(&text)
        } else {
            cut(&text.replace(token.expose(), "***"))
        }
    }

    /// Defence in depth: a proxy or simulator that echoes the request would
    /// otherwise put a credential into an error, and errors get logged.
    fn scrub(&self, s: &str) -> String {
        let mut out = s.replace(self.api_key.expose(), "***");
        let secret = self.shared_secret.expose();
        if !secret.is_empty() {
            out = out.replace(secret, "***");
        }
        scrub_bearer(&out)
    }
}

/// `Bearer <token>` anywhere in a text becomes `Bearer ***`: the access
/// token changes with every refresh, so it is found by its prefix.
fn scrub_bearer(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("Bearer ") {
        out.push_str(&rest[..at + "Bearer ".len()]);
        out.push_str("***");
        let tail = &rest[at + "Bearer ".len()..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Etsy's `{"error": …}` message when the body is one, else the body on
/// one line.
fn error_text(bytes: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(bytes)
        && let Some(error) = e.error.filter(|e| !e.trim().is_empty())
    {
        return match e.error_description.filter(|d| !d.trim().is_empty()) {
            Some(d) => format!("{error}: {d}"),
            None => error,
        };
    }
    let text = String::from_utf8_lossy(bytes);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        "(empty body)".into()
    } else {
        one_line
    }
}

fn cut(s: &str) -> String {
    s.chars().take(EXCERPT_CHARS).collect()
}

/// The hints an answer's headers carry. `observed_at` is the answer's `Date`;
/// only when a server sends none is the local clock read.
pub(crate) fn rate_hints(headers: &HeaderMap) -> Vec<RateHint> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    let observed_at = headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let mut hints = Vec::new();
    if let (Some(limit), Some(remaining)) = (
        number("x-limit-per-second"),
        number("x-remaining-this-second"),
    ) {
        hints.push(RateHint {
            capacity: limit,
            remaining: remaining.min(limit),
            restore_per_second: f64::from(limit),
            observed_at,
            window: RateWindow::Burst,
        });
    }
    if let (Some(limit), Some(remaining)) = (number("x-limit-per-day"), number("x-remaining-today"))
    {
        hints.push(RateHint {
            capacity: limit,
            remaining: remaining.min(limit),
            restore_per_second: f64::from(limit) / SECONDS_PER_DAY,
            observed_at,
            window: RateWindow::Daily,
        });
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn limit_headers_become_burst_and_daily_hints() {
        let mut h = HeaderMap::new();
        h.insert("x-limit-per-second", HeaderValue::from_static("10"));
        h.insert("x-remaining-this-second", HeaderValue::from_static("4"));
        h.insert("x-limit-per-day", HeaderValue::from_static("10000"));
        h.insert("x-remaining-today", HeaderValue::from_static("9349"));
        h.insert(
            "date",
            HeaderValue::from_static("Fri, 27 Nov 2026 11:05:59 GMT"),
        );
        let hints = rate_hints(&h);
        assert_eq!(hints.len(), 2);
        assert_eq!(hints[0].window, RateWindow::Burst);
        assert_eq!((hints[0].capacity, hints[0].remaining), (10, 4));
        assert_eq!(hints[0].restore_per_second, 10.0);
        assert_eq!(hints[1].window, RateWindow::Daily);
        assert_eq!((hints[1].capacity, hints[1].remaining), (10000, 9349));
        assert!((hints[1].restore_per_second - 10000.0 / 86400.0).abs() < 1e-12);
        assert_eq!(
            hints[1].observed_at.to_rfc3339(),
            "2026-11-27T11:05:59+00:00"
        );

        let mut partial = HeaderMap::new();
        partial.insert("x-limit-per-day", HeaderValue::from_static("10000"));
        assert!(rate_hints(&partial).is_empty());
    }

    #[test]
    fn error_texts_prefer_etsys_message_and_hide_bearer_tokens() {
        assert_eq!(
            error_text(br#"{"error":"invalid_grant","error_description":"refresh token expired"}"#),
            "invalid_grant: refresh token expired"
        );
        assert_eq!(
            error_text(b"  <html>\n oops </html> "),
            "<html> oops </html>"
        );
        assert_eq!(error_text(b""), "(empty body)");
        assert_eq!(
            scrub_bearer("echo: Authorization: Bearer 123.abc-def, x"),
            "echo: Authorization: Bearer ***, x"
        );
        assert_eq!(scrub_bearer("Bearer a Bearer b"), "Bearer *** Bearer ***");
    }
}
