//! The HTTP surface: channel webhooks, health, readiness, metrics and the
//! admin API. The only daemon module that names the HTTP server crate.
//! Webhook bodies are taken as raw bytes and handed, with the headers, to
//! `crate::channels::webhook`, which checks the signature over exactly what
//! the channel signed before anything is parsed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::json;
use switchyard_contract::{TokenState, WebhookRequest};

pub mod admin;

use crate::channels::accounts::{Connected, Connectors};
use crate::channels::poll::HealthBoard;
use crate::channels::tokens::TokenBoard;
use crate::ingest::Ingest;
use crate::metrics as m;
use crate::pacing::AccountPacer;

/// The largest webhook body accepted. Shopify's largest order payloads are a
/// few hundred KB; anything near this is not a channel talking to us.
pub const WEBHOOK_BODY_LIMIT: usize = 5 * 1024 * 1024;

/// What the HTTP handlers share.
pub struct HttpState {
    pub ingest: Ingest,
    /// Connectors of accounts that take webhooks, by account id.
    pub webhook_accounts: BTreeMap<String, Arc<Connected>>,
    pub health: HealthBoard,
    /// Every account's token state.
    pub tokens: TokenBoard,
    /// Every connected account's pacer, by account id.
    pub pacers: BTreeMap<String, Arc<AccountPacer>>,
    /// Why an account does not run, by account id.
    pub skipped: BTreeMap<String, String>,
    /// The accounts' connectors, for their latest check.
    pub connectors: Connectors,
    /// Account ids, for readiness.
    pub accounts: Vec<String>,
    pub ready: AtomicBool,
    /// The admin API's token and outbound handle (`admin.rs`).
    pub admin: admin::AdminState,
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        // GET for endpoint challenges (eBay's: the answer is the channel's).
        .route("/webhooks/{account}", post(webhook).get(webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest(
            admin::PREFIX,
            admin::router(state.ingest.clone(), state.admin.clone()),
        )
        // axum's own 404 and 405 have empty bodies; every answer says what
        // went wrong (found by `tests/it/properties.rs`).
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn(drain_unread_body))
        .with_state(state)
}

/// How much of a body that was answered without being read is still read
/// (and thrown away), and for how long, so that the connection stays usable.
const DRAIN_LIMIT: usize = WEBHOOK_BODY_LIMIT;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer given before the request body was read to its end (a refusal,
/// a route that takes no body) made hyper close the connection without
/// saying so: the client lost the answer or, reusing the connection, its
/// next request ("IncompleteMessage", found by `tests/it/properties.rs`). The
/// rest of the body is read and dropped before answering (bounded in size
/// and time); past those bounds the answer says `Connection: close`.
async fn drain_unread_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use http_body::Body as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let rest = Arc::new(parking_lot::Mutex::new(None));
    let req = req.map(|inner| {
        Body::new(Unread {
            inner: Some(inner),
            rest: rest.clone(),
        })
    });
    let mut response = next.run(req).await;
    let unread = rest.lock().take();
    if let Some(body) = unread {
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, axum::body::to_bytes(body, DRAIN_LIMIT));
        if !matches!(drained.await, Ok(Ok(_))) {
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
    }
    response
}

/// A request body that, dropped before its end, hands the rest back to
/// [`drain_unread_body`].
struct Unread {
    inner: Option<Body>,
    rest: Arc<parking_lot::Mutex<Option<Body>>>,
}

impl Drop for Unread {
    fn drop(&mut self) {
        use http_body::Body as _;
        if let Some(body) = self.inner.take().filter(|b| !b.is_end_stream()) {
            *self.rest.lock() = Some(body);
        }
    }
}

impl http_body::Body for Unread {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let frame = std::pin::Pin::new(inner).poll_frame(cx);
        if matches!(frame, std::task::Poll::Ready(None)) {
            // Read to its end: nothing to hand back.
            self.inner = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// What this server answers, for the 404 and 405 texts.
const ROUTES: &str = "POST /webhooks/{account}, GET /healthz, GET /readyz, GET /metrics \
                      and the admin API under /api/v1 (docs/http-api.md)";

async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}; the routes are {ROUTES}", uri.path()),
    )
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not a method of {}; the routes are {ROUTES}",
            uri.path()
        ),
    )
}

/// Serves until `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into() + "\n",
    )
        .into_response()
}

/// 200 once the store is open and the listener bound, 503 before and while
/// stopping; with each account's poll health (`polling` is false for an
/// account whose channel has no connector in this build), token state
/// (`static`: tokens are used as configured; `valid` with `until`;
/// `refresh_failed` with `at` and `reason`, which says how to re-authorize)
/// and the rate-limit wait in progress, if any.
async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    let ready = state.ready.load(Ordering::Acquire);
    let health = state.health.snapshot();
    let tokens = state.tokens.snapshot();
    let accounts: serde_json::Map<String, serde_json::Value> = state
        .accounts
        .iter()
        .map(|a| {
            let h = health.get(a);
            let mut detail = json!({
                "polling": h.is_some(),
                "reason": state.skipped.get(a),
                "last_success": h.and_then(|h| h.last_success),
                "consecutive_errors": h.map_or(0, |h| h.consecutive_errors),
                "last_error": h.and_then(|h| h.last_error.clone()),
                "last_stats": h.and_then(|h| h.last_stats.clone()),
                "token": "static",
                "check": state.connectors.last_check(a),
                "waiting": state.pacers.get(a).and_then(|p| p.waiting()).map(|(op, until)| {
                    json!({ "operation": op, "until": until })
                }),
            });
            if let Some(token) = tokens.get(a)
                && let (Ok(serde_json::Value::Object(fields)), Some(d)) =
                    (serde_json::to_value(token), detail.as_object_mut())
            {
                d.extend(fields);
            }
            (a.clone(), detail)
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({ "ready": ready, "accounts": accounts })),
    )
        .into_response()
}

/// Handles one webhook in a span with its channel, account and (once known)
/// order ids, and counts its outcome in `switchyard_webhooks_total`.
async fn webhook(
    State(state): State<Arc<HttpState>>,
    method: axum::http::Method,
    Path(account): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let channel = state
        .webhook_accounts
        .get(&account)
        .map(|c| c.account.channel);
    let span = tracing::info_span!(
        "webhook",
        channel = tracing::field::Empty,
        account = tracing::field::Empty,
        order = tracing::field::Empty,
    );
    if let Some(channel) = channel {
        // Only configured accounts: the path is whatever a caller sent.
        span.record("channel", tracing::field::display(channel));
        span.record("account", tracing::field::display(&account));
    }
    let metrics = state.ingest.metrics().clone();
    let label = if channel.is_some() {
        account.clone()
    } else {
        "unknown".to_owned()
    };
    let arrived = tokio::time::Instant::now();
    let handling = handle_webhook(state, method, account, query, headers, body);
    let (outcome, response) = tracing::Instrument::instrument(handling, span).await;
    metrics
        .webhook_ack
        .get_or_create(&m::account(&label))
        .observe(m::seconds(arrived.elapsed()));
    let counted = m::AccountOutcome {
        account: label,
        outcome,
    };
    metrics.webhooks.get_or_create(&counted).inc();
    response
}

async fn handle_webhook(
    state: Arc<HttpState>,
    method: axum::http::Method,
    account: String,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> (&'static str, Response) {
    let Some(connector) = state.webhook_accounts.get(&account).cloned() else {
        return (
            "unknown_account",
            text(
                StatusCode::NOT_FOUND,
                format!(
                    "no account {account:?} takes webhooks here (check [[account]] id and webhooks = true)"
                ),
            ),
        );
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > WEBHOOK_BODY_LIMIT) {
        return ("too_large", too_large());
    }
    let body: Bytes = match axum::body::to_bytes(body, WEBHOOK_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return ("too_large", too_large()),
    };
    let req = WebhookRequest {
        account: account.clone(),
        method: method.as_str().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        query,
        body: body.to_vec(),
        received_at: Utc::now(),
    };
    let reply = crate::channels::webhook::handle(&connector, &state.ingest, req).await;
    if method != axum::http::Method::POST && reply.outcome != "challenge" {
        // A GET (or the HEAD axum routes with it) is only ever a channel's
        // endpoint challenge; this one was not, so it is a wrong method like
        // on any other route.
        let uri = format!("/webhooks/{account}");
        return (
            "bad_request",
            wrong_method(method, uri.parse().unwrap_or_default()).await,
        );
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    (
        reply.outcome,
        (
            status,
            [(header::CONTENT_TYPE, reply.content_type)],
            reply.body,
        )
            .into_response(),
    )
}

/// `GET /metrics`: OpenMetrics text (`crate::metrics`). Counts and
/// histograms are kept as things happen; the gauges that describe state
/// (readiness, sync lag, outbox depth, stalled workers, token state, pacer
/// waits, daily reserves) are set now.
async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let metrics = state.ingest.metrics().clone();
    let ready = state.ready.load(Ordering::Acquire);
    metrics.ready.set(i64::from(ready));
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    let started = metrics.start_time.get();
    for (account, h) in state.health.snapshot() {
        let last = h
            .last_success
            .map_or(started, |t| t.timestamp_millis() as f64 / 1000.0);
        let label = m::account(&account);
        metrics
            .sync_lag
            .get_or_create(&label)
            .set((now - last).max(0.0));
        metrics
            .poll_errors
            .get_or_create(&label)
            .set(i64::from(h.consecutive_errors));
    }
    for (account, token) in state.tokens.snapshot() {
        let current = match &token {
            TokenState::Static => "static",
            TokenState::Valid { .. } => "valid",
            TokenState::RefreshFailed { .. } => "refresh_failed",
        };
        for kind in ["static", "valid", "refresh_failed"] {
            let label = m::AccountState {
                account: account.clone(),
                state: kind,
            };
            metrics
                .token_state
                .get_or_create(&label)
                .set(i64::from(kind == current));
        }
        if let TokenState::Valid { until: Some(until) } = token {
            let at = until.timestamp_millis() as f64 / 1000.0;
            metrics
                .token_valid_until
                .get_or_create(&m::account(&account))
                .set(at);
        }
    }
    for (account, pacer) in &state.pacers {
        m::raise_to(
            &metrics.pacer_wait.get_or_create(&m::account(account)),
            pacer.waited().as_secs_f64(),
        );
        metrics
            .daily_reserve_holding
            .get_or_create(&m::account(account))
            .set(i64::from(pacer.daily_reserve_holding()));
    }
    let store = state.ingest.store().clone();
    // The counts the store keeps as items change: a read of a few keys.
    let depth = tokio::task::spawn_blocking(move || store.outbox_depths()).await;
    match depth {
        Ok(Ok(mut by_account)) => {
            for a in &state.accounts {
                by_account.entry(a.clone()).or_default();
            }
            metrics.outbox_pending.clear();
            metrics.outbox_dead.clear();
            for (account, (pending, dead)) in by_account {
                let label = m::account(&account);
                let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
                metrics
                    .outbox_pending
                    .get_or_create(&label)
                    .set(count(pending));
                metrics.outbox_dead.get_or_create(&label).set(count(dead));
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: reading the outbox failed"),
        Err(e) => tracing::warn!(error = %e, "metrics: reading the outbox failed"),
    }
    if let Some(outbound) = state.ingest.outbound() {
        let stalled = outbound.outbox.heartbeats.stalled().len();
        metrics
            .workers_stalled
            .set(i64::try_from(stalled).unwrap_or(i64::MAX));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, m::CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response()
}

fn too_large() -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body larger than {WEBHOOK_BODY_LIMIT} bytes"),
    )
}
