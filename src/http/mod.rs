//! The HTTP surface (SPEC §4): channel webhooks, health and readiness. The
//! only daemon module that names the HTTP server crate. Webhook bodies are
//! taken as raw bytes so the connector checks the signature over exactly what
//! the channel signed, before anything is parsed; a webhook is answered 200
//! only once the event is in the store and flushed.

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
use switchyard_contract::{Connector, ConnectorError, WebhookOutcome, WebhookRequest};

use crate::ingest::{Ingest, Source};
use crate::poll::HealthBoard;

/// The largest webhook body accepted. Shopify's largest order payloads are a
/// few hundred KB; anything near this is not a channel talking to us.
pub const WEBHOOK_BODY_LIMIT: usize = 5 * 1024 * 1024;

/// How long a webhook that names orders may spend fetching them before we
/// answer 503 and let the channel retry (Shopify gives up after 5 s).
const REFETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// What the HTTP handlers share. Generic over the connector so tests can
/// drive the real routes with a test connector.
pub struct HttpState<C> {
    pub ingest: Ingest,
    /// Connectors of accounts that take webhooks, by account id.
    pub webhook_accounts: BTreeMap<String, Arc<C>>,
    pub health: HealthBoard,
    /// Account ids, for readiness.
    pub accounts: Vec<String>,
    pub ready: AtomicBool,
}

pub fn router<C: Connector + 'static>(state: Arc<HttpState<C>>) -> Router {
    Router::new()
        .route("/webhooks/{account}", post(webhook::<C>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<C>))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets open requests finish.
pub async fn serve<C: Connector + 'static>(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState<C>>,
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

async fn readyz<C: Connector>(State(state): State<Arc<HttpState<C>>>) -> Response {
    let ready = state.ready.load(Ordering::Acquire);
    let health = state.health.snapshot();
    let accounts: serde_json::Map<String, serde_json::Value> = state
        .accounts
        .iter()
        .map(|a| (a.clone(), json!(health.get(a))))
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

async fn webhook<C: Connector + 'static>(
    State(state): State<Arc<HttpState<C>>>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(connector) = state.webhook_accounts.get(&account).cloned() else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "no account {account:?} takes webhooks here (check [[account]] id and webhooks = true)"
            ),
        );
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > WEBHOOK_BODY_LIMIT) {
        return too_large();
    }
    let body: Bytes = match axum::body::to_bytes(body, WEBHOOK_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let req = WebhookRequest {
        account: account.clone(),
        method: "POST".into(),
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
    if let Err(e) = connector.verify_webhook(&req) {
        tracing::warn!(account = %account, error = %e, "webhook refused: signature");
        return text(StatusCode::UNAUTHORIZED, "signature missing or wrong");
    }
    let outcome = match connector.parse_webhook(&req) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(account = %account, error = %e, "webhook refused: body");
            return text(
                StatusCode::BAD_REQUEST,
                format!("not a webhook this account understands: {e}"),
            );
        }
    };
    let key = outcome.dedupe_key().map(|k| format!("{account}:{k}"));
    let orders = match outcome {
        WebhookOutcome::Respond {
            status,
            content_type,
            body,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        }
        WebhookOutcome::Ignored { reason, .. } => {
            tracing::debug!(account = %account, %reason, "webhook ignored");
            return text(StatusCode::OK, format!("ignored: {reason}"));
        }
        WebhookOutcome::Orders { orders, .. } => orders,
        WebhookOutcome::Refetch {
            channel_order_ids, ..
        } => {
            match tokio::time::timeout(REFETCH_TIMEOUT, connector.fetch_orders(&channel_order_ids))
                .await
            {
                Ok(Ok(orders)) => orders,
                Ok(Err(e)) => return refetch_failed(&account, &e),
                Err(_) => {
                    return refetch_failed(
                        &account,
                        &ConnectorError::Transient("fetching the orders took too long".into()),
                    );
                }
            }
        }
    };
    let ingest = state.ingest.clone();
    let acct = account.clone();
    let result = tokio::task::spawn_blocking(move || {
        ingest.ingest(
            &acct,
            orders,
            Source::Webhook { dedupe_key: key },
            Utc::now(),
        )
    })
    .await;
    let report = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(account = %account, error = %e, "webhook not stored");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not store the event; retry later",
            );
        }
        Err(e) => {
            tracing::error!(account = %account, error = %e, "webhook ingest task failed");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not store the event; retry later",
            );
        }
    };
    if report.duplicate {
        // The first delivery may still be waiting for its flush: acknowledge
        // the repeat only once everything written so far is durable.
        if let Err(e) = state.ingest.store().flush().await {
            tracing::error!(account = %account, error = %e, "store flush failed");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not make the event durable; retry later",
            );
        }
        return text(StatusCode::OK, "duplicate: already stored");
    }
    if let Err(e) = state.ingest.store().flushed(report.seq).await {
        tracing::error!(account = %account, error = %e, "webhook not flushed");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "could not make the event durable; retry later",
        );
    }
    text(
        StatusCode::OK,
        format!(
            "stored: {} new, {} updated, {} unchanged, {} older than stored",
            report.created, report.updated, report.unchanged, report.stale
        ),
    )
}

fn too_large() -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body larger than {WEBHOOK_BODY_LIMIT} bytes"),
    )
}

fn refetch_failed(account: &str, e: &ConnectorError) -> Response {
    tracing::warn!(account = %account, error = %e, "webhook: fetching the named orders failed");
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "could not fetch the orders this event names; retry later",
    )
}
