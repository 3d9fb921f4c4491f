//! The one place that talks HTTP to Amazon: Login with Amazon's
//! refresh-token exchange (through the contract's `TokenKeeper`, so one
//! refresh runs at a time and the token is reused until shortly before it
//! expires), SP-API calls with the access token in `x-amz-access-token` (no
//! AWS signature: Amazon has not required one since October 2023), the
//! pacer before every call and its rate-limit report after (with when the
//! call went out, so that an answer read after a later one cannot undo
//! it), and the
//! feed-document transfers to the pre-signed URLs Amazon hands out (same
//! HTTP client, no Amazon credentials sent there).
//!
//! Classification (the daemon acts on the class; nothing here retries):
//!
//! | answer | class |
//! | --- | --- |
//! | transport error, timeout | `from_reqwest` (transient, mostly) |
//! | 429 (`QuotaExceeded`) | `RateLimited`; Amazon sends no `Retry-After`, so the wait is the time its bucket takes to refill one request at the operation's current rate (`searchOrders`: about three minutes) |
//! | 401, 403 (`Unauthorized`: expired token, missing role) | `Auth`; the access token is dropped so that the next call refreshes |
//! | 408, 5xx | `Transient` |
//! | other 4xx (`InvalidInput` ...) | `Rejected` |
//! | LWA `invalid_grant`, `invalid_client`, `unauthorized_client` | `Auth` |
//!
//! Error texts carry Amazon's error codes and messages, never a token, the
//! client secret or a pre-signed URL: excerpts are scrubbed of every secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use switchyard_contract::error::parse_retry_after;
use switchyard_contract::{
    ConnectorError, Pacer, Secret, TokenGrant, TokenKeeper, TokenSet, TokenStore,
};

use crate::endpoints::AmazonOp;
use crate::rate::{RateBook, parse_rate_header};
use crate::wire::{ErrorList, TokenAnswer};

/// How much of a response body goes into an error message.
const EXCERPT_CHARS: usize = 300;

/// Amazon asks SP-API callers to name their application and language.
const USER_AGENT: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"), " (Language=Rust)");

/// The time source for everything that is not a cursor: token expiry and
/// when a feed is worth checking. Tests fix it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// An answer the caller asked to see whatever its status.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

pub(crate) struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
    pub token_url: String,
}

pub(crate) struct SpClient {
    http: reqwest::Client,
    base_url: String,
    credentials: Credentials,
    keeper: TokenKeeper,
    pacer: Arc<dyn Pacer>,
    pub rates: RateBook,
    pub clock: Clock,
    /// The access token last sent, for scrubbing.
    last_token: Mutex<Option<Secret>>,
}

impl SpClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        credentials: Credentials,
        tokens: Arc<dyn TokenStore>,
        pacer: Arc<dyn Pacer>,
        clock: Clock,
    ) -> Self {
        let configured = TokenSet {
            access_token: None,
            access_expires_at: None,
            refresh_token: Some(credentials.refresh_token.clone()),
        };
        SpClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            keeper: TokenKeeper::new(tokens, configured),
            credentials,
            pacer,
            rates: RateBook::default(),
            clock,
            last_token: Mutex::new(None),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// One SP-API call: waits for the pacer, sends with a fresh access
    /// token, reports Amazon's rate, and classifies a failure. Statuses in
    /// `pass` come back as a [`Reply`] for the caller to read (a 404 that
    /// means "not listed", a 400 that means "page token expired").
    pub async fn call(
        &self,
        op: AmazonOp,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        pass: &[u16],
    ) -> Result<Reply, ConnectorError> {
        self.pacer.acquire(op.class(), 1).await;
        self.rates.spend(op);
        let token = self.access_token().await?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .query(query)
            .header("x-amz-access-token", token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::USER_AGENT, USER_AGENT);
        if let Some(body) = body {
            req = req.json(body);
        }
        let sent = tokio::time::Instant::now();
        let response = req
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let rate = header("x-amzn-ratelimit-limit").and_then(|v| parse_rate_header(&v));
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        if let Some(hint) = self.rates.answered(op, rate, status == 429, self.now()) {
            // With when the call went out: an answer read after a later
            // one (a 429 that emptied the bucket) must not refill it.
            self.pacer.observe_answer(op.class(), hint, sent);
        }
        if (200..300).contains(&status) || pass.contains(&status) {
            return Ok(Reply {
                status,
                body: bytes.to_vec(),
            });
        }
        if matches!(status, 401 | 403) {
            self.keeper.invalidate(&token).await;
        }
        let retry_after = match status {
            429 => Some(retry_after.unwrap_or_else(|| self.rates.retry_after(op))),
            _ => retry_after,
        };
        Err(ConnectorError::from_status(
            status,
            retry_after,
            format!("{}: {}", op.name(), self.error_text(&bytes)),
        ))
    }

    /// [`SpClient::call`] and the body decoded as `T`.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        op: AmazonOp,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, ConnectorError> {
        let reply = self.call(op, method, path, query, body, &[]).await?;
        self.decode(op, &reply.body)
    }

    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        op: AmazonOp,
        body: &[u8],
    ) -> Result<T, ConnectorError> {
        serde_json::from_slice(body).map_err(|e| {
            ConnectorError::Decode(format!(
                "{}: unexpected answer ({e}): {}",
                op.name(),
                self.excerpt(body)
            ))
        })
    }

    /// Uploads a feed document to the pre-signed URL `createFeedDocument`
    /// gave. Not paced: the URL is storage, outside Amazon's usage plans.
    pub async fn put_presigned(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(), ConnectorError> {
        let req = self
            .http
            .put(presigned(url)?)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.storage(req, "feed document upload").await.map(|_| ())
    }

    /// Downloads a document from a pre-signed URL.
    pub async fn get_presigned(&self, url: &str) -> Result<Vec<u8>, ConnectorError> {
        let req = self.http.get(presigned(url)?);
        self.storage(req, "feed document download").await
    }

    /// A request to Amazon's storage: no Amazon credentials, no pacing.
    async fn storage(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Vec<u8>, ConnectorError> {
        let response = req
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        if (200..300).contains(&status) {
            Ok(bytes.to_vec())
        } else {
            Err(ConnectorError::from_status(
                status,
                None,
                format!("{what}: {}", self.excerpt(&bytes)),
            ))
        }
    }

    async fn access_token(&self) -> Result<Secret, ConnectorError> {
        let token = self
            .keeper
            .access_token_at(self.now(), |refresh| self.refresh(refresh))
            .await?;
        *self.last_token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(token)
    }

    /// LWA's refresh-token grant. LWA does not rotate refresh tokens; should
    /// it ever send a different one, the keeper saves it before use.
    async fn refresh(&self, refresh_token: Secret) -> Result<TokenGrant, ConnectorError> {
        let op = AmazonOp::Token;
        self.pacer.acquire(op.class(), 1).await;
        let c = &self.credentials;
        let response = self
            .http
            .post(&c.token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.expose()),
            ])
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let answer: TokenAnswer = serde_json::from_slice(&bytes).unwrap_or_default();
        if (200..300).contains(&status)
            && let Some(access) = answer.access_token.filter(|a| !a.is_empty())
        {
            let rotated = answer
                .refresh_token
                .filter(|r| !r.is_empty() && r != refresh_token.expose())
                .map(Secret::new);
            return Ok(TokenGrant {
                access_token: Secret::new(access),
                expires_in: answer.expires_in.map(Duration::from_secs),
                refresh_token: rotated,
            });
        }
        let described = match (&answer.error, &answer.error_description) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.clone(),
            _ => self.excerpt(&bytes),
        };
        let hint = match answer.error.as_deref() {
            Some("invalid_client" | "unauthorized_client") => {
                "; check client_id and client_secret against the app in Seller Central"
            }
            _ => "",
        };
        let detail = format!("LWA token (HTTP {status}): {described}{hint}");
        match answer.error.as_deref() {
            Some("invalid_grant" | "invalid_client" | "unauthorized_client") => {
                Err(ConnectorError::Auth(detail))
            }
            _ if (200..300).contains(&status) => Err(ConnectorError::Decode(format!(
                "{detail}: the answer has no access_token"
            ))),
            _ => Err(ConnectorError::from_status(status, None, detail)),
        }
    }

    /// Amazon's error list as `code: message (details)`, else an excerpt.
    fn error_text(&self, body: &[u8]) -> String {
        match serde_json::from_slice::<ErrorList>(body) {
            Ok(list) if !list.errors.is_empty() => self.scrub(
                &list
                    .errors
                    .iter()
                    .map(|e| {
                        let mut s = format!("{}: {}", e.code, e.message);
                        if let Some(d) = e.details.as_deref().filter(|d| !d.is_empty()) {
                            s.push_str(&format!(" ({d})"));
                        }
                        s
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            _ => self.excerpt(body),
        }
    }

    /// The start of a body on one line, scrubbed.
    pub fn excerpt(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        self.scrub(&one_line.chars().take(EXCERPT_CHARS).collect::<String>())
    }

    /// Defence in depth: a proxy or simulator that echoes a request would
    /// otherwise put a credential into an error, and errors get logged.
    fn scrub(&self, s: &str) -> String {
        let last = self
            .last_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let c = &self.credentials;
        let mut out = s.to_owned();
        for secret in [
            Some(&c.client_secret),
            Some(&c.refresh_token),
            last.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            let value = secret.expose();
            if !value.is_empty() {
                // As sent in a form body too (`|` is `%7C` there).
                out = out
                    .replace(value, "***")
                    .replace(&crate::endpoints::segment(value), "***");
            }
        }
        out
    }
}

fn presigned(url: &str) -> Result<&str, ConnectorError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url)
    } else {
        Err(ConnectorError::Decode(
            "Amazon answered a document URL that is not http(s)".into(),
        ))
    }
}
