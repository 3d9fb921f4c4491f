//! The framework-free half of a channel's webhook: given the request as the
//! connector sees it (headers, raw body bytes, received-at), check the
//! signature over exactly what the channel signed, parse, fetch the orders
//! an event only names, ingest, and wait for the flush. The answer is a
//! plain status, content type and body; `crate::http` turns it into HTTP.
//! A delivery is answered 200 only once its orders are in the store and
//! flushed.

use std::time::Duration;

use chrono::Utc;
use switchyard_contract::{Connector, ConnectorError, WebhookOutcome, WebhookRequest};

use crate::ingest::{Ingest, Source};

/// How long a webhook that names orders may spend fetching them before we
/// answer 503 and let the channel retry (Shopify gives up after 5 s).
const REFETCH_TIMEOUT: Duration = Duration::from_secs(3);

const TEXT: &str = "text/plain; charset=utf-8";

/// What to answer the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The `outcome` label of `switchyard_webhooks_total`.
    pub outcome: &'static str,
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Reply {
    /// A plain-text answer (one line).
    pub fn text(outcome: &'static str, status: u16, message: impl Into<String>) -> Reply {
        Reply {
            outcome,
            status,
            content_type: TEXT.to_owned(),
            body: (message.into() + "\n").into_bytes(),
        }
    }
}

/// Handles one verified-or-refused delivery for `account`'s connector.
pub async fn handle<C: Connector>(connector: &C, ingest: &Ingest, req: WebhookRequest) -> Reply {
    let account = req.account.clone();
    if let Err(e) = connector.verify_webhook(&req) {
        tracing::warn!(account = %account, error = %e, "webhook refused: signature");
        return Reply::text("unauthorized", 401, "signature missing or wrong");
    }
    let outcome = match connector.parse_webhook(&req) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(account = %account, error = %e, "webhook refused: body");
            return Reply::text(
                "bad_request",
                400,
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
            return Reply {
                outcome: "challenge",
                status,
                content_type,
                body,
            };
        }
        WebhookOutcome::Ignored { reason, .. } => {
            tracing::debug!(account = %account, %reason, "webhook ignored");
            return Reply::text("ignored", 200, format!("ignored: {reason}"));
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
    let ids: Vec<&str> = orders.iter().map(|o| o.order.id.as_str()).collect();
    tracing::Span::current().record("order", tracing::field::display(ids.join(",")));
    let ingesting = ingest.clone();
    let acct = account.clone();
    let result = tokio::task::spawn_blocking(move || {
        ingesting.receive(
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
            return Reply::text("error", 503, "could not store the event; retry later");
        }
        Err(e) => {
            tracing::error!(account = %account, error = %e, "webhook ingest task failed");
            return Reply::text("error", 503, "could not store the event; retry later");
        }
    };
    if report.duplicate {
        // The first delivery may still be waiting for its flush: acknowledge
        // the repeat only once everything written so far is durable.
        if let Err(e) = ingest.store().flush().await {
            tracing::error!(account = %account, error = %e, "store flush failed");
            return Reply::text(
                "error",
                503,
                "could not make the event durable; retry later",
            );
        }
        return Reply::text("duplicate", 200, "duplicate: already stored");
    }
    if let Err(e) = ingest.store().flushed(report.seq).await {
        tracing::error!(account = %account, error = %e, "webhook not flushed");
        return Reply::text(
            "error",
            503,
            "could not make the event durable; retry later",
        );
    }
    tracing::debug!(
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        stale = report.stale,
        "webhook stored"
    );
    Reply::text(
        "stored",
        200,
        format!(
            "stored: {} new, {} updated, {} unchanged, {} older than stored",
            report.created, report.updated, report.unchanged, report.stale
        ),
    )
}

fn refetch_failed(account: &str, e: &ConnectorError) -> Reply {
    tracing::warn!(account = %account, error = %e, "webhook: fetching the named orders failed");
    Reply::text(
        "error",
        503,
        "could not fetch the orders this event names; retry later",
    )
}
