//! `ORDER_CHANGE` notifications, forwarded to `/webhooks/{account}` by an
//! EventBridge API destination whose connection adds the header
//! `X-Switchyard-Secret: <webhook_secret>`.
//!
//! Amazon signs nothing here (its trust comes from the queue or event bus
//! the seller owns), so the shared secret is the whole authentication: it is
//! compared in constant time before the body is parsed. The body is either
//! the EventBridge event, whose `detail` is the notification, or the bare
//! notification (`NotificationType`, `Payload`, `NotificationMetadata`), as
//! an SQS relay would post it. Deliveries are at least once and out of
//! order: the dedupe key is `NotificationMetadata.NotificationId` (else the
//! EventBridge event id), and the order is fetched with `getOrder`, whose
//! answer is the truth, rather than taken from the notification's summary.
//! Other notification types, and notifications about another seller, are
//! acknowledged and ignored.

use switchyard_contract::{ConnectorError, Secret, WebhookOutcome, WebhookRequest};

use crate::wire::{Notification, OrderChange};

pub const SECRET_HEADER: &str = "x-switchyard-secret";
pub const ORDER_CHANGE: &str = "ORDER_CHANGE";

/// Checks `X-Switchyard-Secret`; nothing of the body is read before this.
pub fn verify(req: &WebhookRequest, secret: Option<&Secret>) -> Result<(), ConnectorError> {
    let Some(secret) = secret else {
        return Err(ConnectorError::Config(
            "no webhook_secret configured for this amazon account".into(),
        ));
    };
    let presented = req.header(SECRET_HEADER).ok_or_else(|| {
        ConnectorError::Auth("notification has no X-Switchyard-Secret header".into())
    })?;
    if secret.matches(presented.trim().as_bytes()) {
        Ok(())
    } else {
        Err(ConnectorError::Auth(
            "X-Switchyard-Secret does not match the account's webhook_secret".into(),
        ))
    }
}

/// What a verified delivery means.
pub fn parse(seller_id: &str, body: &[u8]) -> Result<WebhookOutcome, ConnectorError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ConnectorError::Decode(format!("notification body is not JSON: {e}")))?;
    let event_id = value.get("id").and_then(|v| v.as_str()).map(str::to_owned);
    let notification = match value.get("detail") {
        Some(detail) if detail.is_object() => detail.clone(),
        _ => value,
    };
    let n: Notification = serde_json::from_value(notification).map_err(|e| {
        ConnectorError::Decode(format!(
            "body is neither an SP-API notification nor an EventBridge event carrying one in \
             `detail`: {e}"
        ))
    })?;
    let dedupe_key = n
        .notification_metadata
        .as_ref()
        .and_then(|m| m.notification_id.clone())
        .or(event_id)
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    if n.notification_type != ORDER_CHANGE {
        return Ok(WebhookOutcome::Ignored {
            dedupe_key,
            reason: format!(
                "amazon notification type {} is not handled",
                n.notification_type
            ),
        });
    }
    let change: OrderChange = n
        .payload
        .get("OrderChangeNotification")
        .cloned()
        .ok_or_else(|| {
            ConnectorError::Decode(
                "ORDER_CHANGE notification has no Payload.OrderChangeNotification".into(),
            )
        })
        .and_then(|c| {
            serde_json::from_value(c).map_err(|e| {
                ConnectorError::Decode(format!("ORDER_CHANGE notification payload: {e}"))
            })
        })?;
    if let Some(other) = change.seller_id.as_deref().map(str::trim)
        && !other.is_empty()
        && other != seller_id
    {
        return Ok(WebhookOutcome::Ignored {
            dedupe_key,
            reason: format!(
                "notification for seller {other}, but this account is seller {seller_id}"
            ),
        });
    }
    let order_id = change.amazon_order_id.trim();
    if order_id.is_empty() {
        return Err(ConnectorError::Decode(
            "ORDER_CHANGE notification has an empty AmazonOrderId".into(),
        ));
    }
    Ok(WebhookOutcome::Fetch {
        dedupe_key,
        channel_order_ids: vec![order_id.to_owned()],
    })
}

/// [`verify`], then [`parse`].
pub fn handle(
    req: &WebhookRequest,
    secret: Option<&Secret>,
    seller_id: &str,
) -> Result<WebhookOutcome, ConnectorError> {
    verify(req, secret)?;
    parse(seller_id, &req.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn notification(kind: &str, seller: &str) -> serde_json::Value {
        json!({
            "NotificationVersion": "1.0", "NotificationType": kind, "PayloadVersion": "1.0",
            "EventTime": "2026-11-27T05:00:00Z",
            "Payload": {"OrderChangeNotification": {
                "NotificationLevel": "OrderLevel", "SellerId": seller,
                "AmazonOrderId": "111-0000000-0000001", "OrderChangeType": "OrderStatusChange",
                "OrderChangeTrigger": {"TimeOfOrderChange": "2026-11-27T05:00:00Z", "ChangeReason": "x"},
                "Summary": {}}},
            "NotificationMetadata": {"ApplicationId": "app", "SubscriptionId": "sub",
                "PublishTime": "2026-11-27T05:00:01Z", "NotificationId": "n-1"}
        })
    }

    fn request(secret: Option<&str>, body: &serde_json::Value) -> WebhookRequest {
        WebhookRequest {
            account: "amz".into(),
            method: "POST".into(),
            headers: secret
                .map(|s| vec![(SECRET_HEADER.to_owned(), s.to_owned())])
                .unwrap_or_default(),
            query: None,
            body: serde_json::to_vec(body).unwrap(),
            received_at: Utc::now(),
        }
    }

    #[test]
    fn a_bare_notification_and_an_eventbridge_event_mean_the_same_fetch() {
        let secret = Secret::new("s3cret");
        let bare = notification(ORDER_CHANGE, "A1SELLER");
        let event = json!({"version": "0", "id": "evt-1", "detail-type": "ORDER_CHANGE",
                           "source": "aws.partner/sellingpartnerapi.amazon.com", "detail": bare});
        for body in [&bare, &event] {
            match handle(&request(Some("s3cret"), body), Some(&secret), "A1SELLER").unwrap() {
                WebhookOutcome::Fetch {
                    dedupe_key,
                    channel_order_ids,
                } => {
                    assert_eq!(dedupe_key.as_deref(), Some("n-1"));
                    assert_eq!(channel_order_ids, ["111-0000000-0000001"]);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_or_wrong_secret_is_refused_before_the_body_is_read() {
        let secret = Secret::new("s3cret");
        let garbage = json!("not a notification");
        for presented in [None, Some("s3cre"), Some("S3CRET"), Some("s3cret2")] {
            let e = handle(&request(presented, &garbage), Some(&secret), "A1").unwrap_err();
            assert_eq!(e.class(), "auth", "{presented:?}");
        }
        let e = handle(&request(Some("s3cret"), &garbage), Some(&secret), "A1").unwrap_err();
        assert_eq!(e.class(), "decode");
    }

    #[test]
    fn other_types_and_other_sellers_are_ignored_with_their_key() {
        let out = parse(
            "A1",
            &serde_json::to_vec(&notification("ANY_OFFER_CHANGED", "A1")).unwrap(),
        )
        .unwrap();
        assert!(
            matches!(out, WebhookOutcome::Ignored { dedupe_key: Some(ref k), .. } if k == "n-1")
        );
        let out = parse(
            "A1",
            &serde_json::to_vec(&notification(ORDER_CHANGE, "A9")).unwrap(),
        )
        .unwrap();
        assert!(matches!(out, WebhookOutcome::Ignored { .. }), "{out:?}");
    }
}
