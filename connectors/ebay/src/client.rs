//! The one place that talks HTTP to eBay: it waits on the pacer, brings an
//! access token, counts the call against its API's daily budget (reported
//! to every operation that budget paces, with when it was counted, since
//! eBay sends no limit headers), and turns every way a call can fail into a
//! [`ConnectorError`] class.
//!
//! **Tokens.** Sell API calls carry the seller's user access token, minted
//! from the configured refresh token (`grant_type=refresh_token`, HTTP Basic
//! `client_id:client_secret`) through the daemon's [`TokenKeeper`]: one
//! refresh at a time, the token reused until five minutes before it expires
//! (eBay's last about two hours), a rotated refresh token saved before use.
//! A refused refresh token (`invalid_grant`: expired after its ~18 months, or
//! revoked) is an `Auth` error whose text says to re-authorize; the keeper
//! reports it for `/readyz` and the metrics and does not ask eBay again for
//! ten minutes, however often the daemon calls. The signing keys of
//! notifications are read with an application token
//! (`grant_type=client_credentials`, scope `api_scope`), kept in memory
//! until five minutes before it expires.
//!
//! **Classification** (the daemon acts on the class; nothing here retries):
//!
//! | answer | class |
//! | --- | --- |
//! | transport error, timeout | `from_reqwest` (transient, mostly) |
//! | HTTP 429, or an error body with errorId 2001 or "request limit" in its message | `RateLimited`; the wait is `Retry-After` when sent, else the time to Pacific midnight when this account's own count says the day's budget is spent, else none (the daemon backs off) |
//! | HTTP 401 | `Auth`; the access token is dropped, so the next call gets a new one |
//! | other non-2xx | `from_status` (403 auth, 5xx transient, 4xx rejected), with eBay's error ids and messages |
//! | 2xx whose body is not the expected JSON | `Decode` |
//!
//! No message carries a token or the client secret: they are only written
//! into headers and form bodies, and response excerpts are scrubbed of them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::Method;
use switchyard_contract::error::parse_retry_after;
use switchyard_contract::tokens::REFRESH_MARGIN;
use switchyard_contract::{
    ConnectorError, Operation, Pacer, Secret, TokenGrant, TokenKeeper, TokenSet, TokenStore,
};

use crate::budget::DailyBudget;
use crate::endpoints::{self, Api};
use crate::wire::{ErrorBody, TokenAnswer};

/// How much of a response body goes into an error message.
const EXCERPT_CHARS: usize = 300;

/// eBay's error id for a call over the application's rate limit.
const RATE_LIMIT_ERROR_ID: i64 = 2001;

/// Which access token a call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// The seller's user token (Sell APIs).
    User,
    /// The application token (notification signing keys).
    App,
}

/// One call to make.
pub(crate) struct Call<'a> {
    /// The operation's name in eBay's API, for messages (`getOrders`).
    pub name: &'a str,
    pub operation: Operation,
    pub api: Api,
    pub token: Token,
    pub method: Method,
    /// Under the base URL.
    pub path: String,
    /// Already encoded.
    pub query: Option<String>,
    pub body: Option<&'a serde_json::Value>,
    /// Non-2xx statuses answered to the caller instead of as errors (a 404
    /// that means "no such order").
    pub answers: &'static [u16],
}

impl<'a> Call<'a> {
    pub fn get(name: &'a str, operation: Operation, api: Api, path: String) -> Self {
        Call {
            name,
            operation,
            api,
            token: Token::User,
            method: Method::GET,
            path,
            query: None,
            body: None,
            answers: &[],
        }
    }

    pub fn post(
        name: &'a str,
        operation: Operation,
        api: Api,
        path: String,
        body: &'a serde_json::Value,
    ) -> Self {
        Call {
            method: Method::POST,
            body: Some(body),
            ..Call::get(name, operation, api, path)
        }
    }

    pub fn query(mut self, query: String) -> Self {
        self.query = Some(query);
        self
    }

    pub fn app_token(mut self) -> Self {
        self.token = Token::App;
        self
    }

    pub fn answering(mut self, statuses: &'static [u16]) -> Self {
        self.answers = statuses;
        self
    }
}

/// A successful answer, or one of the statuses the caller asked for.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as `T`, or a decode error naming the call.
    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::Decode(format!(
                "{name}: eBay's answer is not the expected JSON ({e}): {}",
                one_line(&self.body)
            ))
        })
    }
}

pub(crate) struct Client {
    http: reqwest::Client,
    base_url: String,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    /// Scrubbed from every excerpt, whatever the answer echoes.
    secrets: Vec<Secret>,
    keeper: TokenKeeper,
    app_token: tokio::sync::Mutex<Option<(Secret, DateTime<Utc>)>>,
    pacer: Arc<dyn Pacer>,
    pub budget: DailyBudget,
}

impl Client {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        token_url: String,
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        tokens: Arc<dyn TokenStore>,
        pacer: Arc<dyn Pacer>,
        budget: DailyBudget,
    ) -> Self {
        let configured = TokenSet {
            access_token: None,
            access_expires_at: None,
            refresh_token: Some(refresh_token.clone()),
        };
        Client {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token_url,
            client_id,
            secrets: vec![client_secret.clone(), refresh_token],
            client_secret,
            keeper: TokenKeeper::new(tokens, configured),
            app_token: tokio::sync::Mutex::new(None),
            pacer,
            budget,
        }
    }

    /// Makes one call: pacer, token, request, count, classification.
    pub async fn call(&self, call: Call<'_>) -> Result<Answer, ConnectorError> {
        self.pacer.acquire(call.operation, 1).await;
        let token = match call.token {
            Token::User => {
                self.keeper
                    .access_token(|refresh| self.refresh_grant(refresh))
                    .await?
            }
            Token::App => self.app_token().await?,
        };
        let mut url = format!("{}{}", self.base_url, call.path);
        if let Some(q) = &call.query {
            url.push('?');
            url.push_str(q);
        }
        let mut request = self
            .http
            .request(call.method.clone(), &url)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = call.body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let now = Utc::now();
        let counted = self.budget.count(call.api, now);
        // To every operation that spends the budget, as Etsy's answers are:
        // a poll's count must hold tracking pushes at the reserve before
        // the next push goes out. With when it was counted, not sent: the
        // count is the report, and two answers read at once can reach the
        // pacer in the other order than they were counted. A late count
        // taken after a day rolled over is fresh, however early its call
        // went out.
        for (operation, hint) in counted.reports() {
            self.pacer.observe_answer(operation, hint, counted.at);
        }
        let status = response.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header(reqwest::header::RETRY_AFTER).and_then(|v| parse_retry_after(&v));
        let location = header(reqwest::header::LOCATION);
        let body = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?
            .to_vec();
        let errors: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        let failed = !(200..300).contains(&status);
        let rate_limited = status == 429
            || failed
                && errors.errors.iter().any(|e| {
                    e.error_id == Some(RATE_LIMIT_ERROR_ID)
                        || [&e.message, &e.long_message]
                            .into_iter()
                            .flatten()
                            .any(|m| m.to_ascii_lowercase().contains("request limit"))
                });
        let detail = || {
            let described: Vec<String> = errors.errors.iter().map(|e| e.describe()).collect();
            let text = if described.is_empty() {
                one_line(&body)
            } else {
                described.join("; ")
            };
            format!("{} {}: {}", call.name, call.path, self.scrub(&text, &token))
        };
        if rate_limited {
            return Err(ConnectorError::RateLimited {
                retry_after: retry_after.or_else(|| self.budget.spent(call.api, now)),
                detail: format!("HTTP {status}: {}", detail()),
            });
        }
        if status == 401 {
            match call.token {
                Token::User => self.keeper.invalidate(&token).await,
                Token::App => *self.app_token.lock().await = None,
            }
            return Err(ConnectorError::Auth(format!(
                "HTTP 401: {} (eBay refused the access token; the next call gets a new one)",
                detail()
            )));
        }
        if (200..300).contains(&status) || call.answers.contains(&status) {
            return Ok(Answer {
                status,
                location,
                body,
            });
        }
        Err(ConnectorError::from_status(status, retry_after, detail()))
    }

    /// A new user access token from the refresh token.
    async fn refresh_grant(&self, refresh: Secret) -> Result<TokenGrant, ConnectorError> {
        let form = endpoints::form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose()),
        ]);
        self.grant("refresh-token grant", form).await
    }

    /// The application token, minted when missing or about to expire.
    async fn app_token(&self) -> Result<Secret, ConnectorError> {
        let mut cached = self.app_token.lock().await;
        let now = Utc::now();
        let margin = chrono::Duration::from_std(REFRESH_MARGIN).unwrap_or_default();
        if let Some((token, until)) = cached.as_ref()
            && now + margin < *until
        {
            return Ok(token.clone());
        }
        let form = endpoints::form(&[
            ("grant_type", "client_credentials"),
            ("scope", endpoints::APP_SCOPE),
        ]);
        let grant = self.grant("client-credentials grant", form).await?;
        // eBay's application tokens last two hours; one that says nothing is
        // used for one margin's worth and then asked for again.
        let lifetime = grant
            .expires_in
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .unwrap_or(margin + margin);
        *cached = Some((grant.access_token.clone(), now + lifetime));
        Ok(grant.access_token)
    }

    async fn grant(&self, what: &str, form: String) -> Result<TokenGrant, ConnectorError> {
        self.pacer.acquire(Operation::Auth, 1).await;
        let response = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let answer: TokenAnswer = serde_json::from_slice(&body).unwrap_or_default();
        if (200..300).contains(&status) {
            let access = answer
                .access_token
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    ConnectorError::Decode(format!(
                        "{what}: eBay's token endpoint answered without an access token"
                    ))
                })?;
            return Ok(TokenGrant {
                access_token: Secret::new(access),
                expires_in: answer
                    .expires_in
                    .and_then(|s| u64::try_from(s).ok())
                    .map(std::time::Duration::from_secs),
                refresh_token: answer
                    .refresh_token
                    .filter(|t| !t.is_empty())
                    .map(Secret::new),
            });
        }
        let code = answer.error.clone().unwrap_or_default();
        let detail = match (&answer.error, &answer.error_description) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.clone(),
            _ => one_line(&body),
        };
        let detail = format!(
            "{what} at {}: HTTP {status}: {}",
            self.token_url,
            self.scrub(&detail, &Secret::new(""))
        );
        if matches!(
            code.as_str(),
            "invalid_grant" | "invalid_client" | "unauthorized_client"
        ) || status == 401
        {
            return Err(ConnectorError::Auth(detail));
        }
        Err(ConnectorError::from_status(status, retry_after, detail))
    }

    /// Removes every secret this client knows, and the call's token.
    fn scrub(&self, text: &str, token: &Secret) -> String {
        let mut out = text.to_owned();
        for s in self.secrets.iter().chain(std::iter::once(token)) {
            if !s.expose().is_empty() {
                out = out.replace(s.expose(), "***");
            }
        }
        out
    }
}

/// The start of a body on one line (errors end up in single log lines).
fn one_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        return "(empty body)".to_owned();
    }
    joined.chars().take(EXCERPT_CHARS).collect()
}
