//! The framework-free half of a channel's webhook: the connector checks
//! the signature over exactly what the channel signed (or answers its
//! endpoint challenge) and says what the delivery means; this module acts
//! on it and says what to answer. The answer is a plain status, content
//! type and body; `crate::http` turns it into HTTP.
//!
//! - Only a POST is a delivery: another method is answered the channel's
//!   endpoint challenge or 405, and changes nothing.
//! - Orders in the payload are ingested; a delivery is answered 200 only
//!   once they are in the store and flushed. Orders the connector could not
//!   read are left out, logged and counted, and never fail the delivery.
//! - Orders the payload only names become a fetch job (an outbox item of
//!   kind `fetch_orders`), written in the same transaction as the dedupe
//!   key and answered 200 once flushed; the account's outbox worker fetches
//!   them through the pacer, retrying as long as the channel needs, so a
//!   slow channel never makes a delivery fail and come again.

use chrono::Utc;
use switchyard_contract::{ConnectorError, WebhookOutcome, WebhookRequest};

use super::accounts::Connected;
use crate::ingest::{Ingest, Source};
use crate::pacing::bounded;

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

/// Handles one delivery for `connected`'s account.
pub async fn handle(connected: &Connected, ingest: &Ingest, req: WebhookRequest) -> Reply {
    let account = req.account.clone();
    let understood = bounded(
        connected.hints.call_timeout,
        None,
        connected.connector.handle_webhook(&req),
    )
    .await
    .unwrap_or_else(|e| Err(ConnectorError::Transient(e.to_string())));
    let outcome = match understood {
        Ok(o) => o,
        Err(ConnectorError::Auth(e)) => {
            tracing::warn!(account = %account, error = %e, "webhook refused: signature");
            return Reply::text("unauthorized", 401, "signature missing or wrong");
        }
        Err(e @ ConnectorError::Decode(_)) => {
            tracing::warn!(account = %account, error = %e, "webhook refused: body");
            return Reply::text(
                "bad_request",
                400,
                format!("not a webhook this account understands: {e}"),
            );
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!(account = %account, error = %e, "webhook not checked: the channel did not answer");
            return Reply::text("error", 503, "could not check the event now; retry later");
        }
        Err(e) => {
            tracing::error!(account = %account, error = %e, "webhook refused");
            return Reply::text("bad_request", 400, format!("refused: {e}"));
        }
    };
    // Deliveries are POSTed; any other method is at most an endpoint
    // challenge. A GET or HEAD carrying a signed order was stored and then
    // answered 405 (or, for HEAD, 200 with no body): the sender was told
    // it failed while it had changed the store.
    if !req.method.eq_ignore_ascii_case("POST")
        && !matches!(outcome, WebhookOutcome::Respond { .. })
    {
        return Reply::text(
            "bad_request",
            405,
            format!(
                "{} is not how webhooks are delivered; deliveries are POSTed",
                req.method
            ),
        );
    }
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
        WebhookOutcome::Orders {
            orders, rejected, ..
        } => {
            super::report_rejected(ingest, &account, "webhook", &rejected);
            orders
        }
        WebhookOutcome::Fetch {
            channel_order_ids, ..
        } => return queue_fetch(ingest, &account, channel_order_ids, key).await,
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

/// Stores the fetch of the orders an event names (with its dedupe key, in
/// one transaction) and answers once that is flushed.
async fn queue_fetch(
    ingest: &Ingest,
    account: &str,
    ids: Vec<String>,
    key: Option<String>,
) -> Reply {
    tracing::Span::current().record("order", tracing::field::display(ids.join(",")));
    let queuing = ingest.clone();
    let acct = account.to_owned();
    let count = ids.len();
    let result = tokio::task::spawn_blocking(move || {
        super::fetch::queue(&queuing, &acct, ids, key, Utc::now())
    })
    .await;
    let report = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(account = %account, error = %e, "webhook fetch not stored");
            return Reply::text("error", 503, "could not store the event; retry later");
        }
        Err(e) => {
            tracing::error!(account = %account, error = %e, "webhook fetch task failed");
            return Reply::text("error", 503, "could not store the event; retry later");
        }
    };
    let durable = if report.duplicate {
        ingest.store().flush().await
    } else {
        ingest.store().flushed(report.seq).await
    };
    if let Err(e) = durable {
        tracing::error!(account = %account, error = %e, "webhook fetch not flushed");
        return Reply::text(
            "error",
            503,
            "could not make the event durable; retry later",
        );
    }
    if report.duplicate {
        return Reply::text("duplicate", 200, "duplicate: already stored");
    }
    tracing::debug!(orders = count, "webhook: orders queued to fetch");
    let orders = if count == 1 { "order" } else { "orders" };
    Reply::text(
        "queued",
        200,
        format!("queued: {count} {orders} to fetch from the channel"),
    )
}
