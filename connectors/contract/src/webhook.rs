//! The webhook request as connectors see it: headers, the raw body bytes and
//! when it arrived, with no HTTP framework types, so that signatures are
//! checked over exactly the bytes the channel signed.

use chrono::{DateTime, Utc};

use crate::connector::RejectedOrder;
use crate::model::NormalizedOrder;

#[derive(Debug, Clone)]
pub struct WebhookRequest {
    /// The configured account the request was addressed to.
    pub account: String,
    pub method: String,
    /// Header names lower-cased; values as received. Repeated headers repeat.
    pub headers: Vec<(String, String)>,
    /// The raw query string, without `?`, for endpoint challenges.
    pub query: Option<String>,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

impl WebhookRequest {
    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a connector made of a verified webhook.
#[derive(Debug, Clone)]
pub enum WebhookOutcome {
    /// The payload carried the orders themselves.
    Orders {
        dedupe_key: Option<String>,
        orders: Vec<NormalizedOrder>,
        /// Orders in the payload that could not be read: left out, named,
        /// never failing the others or the delivery.
        rejected: Vec<RejectedOrder>,
    },
    /// The payload only names orders: the daemon stores a fetch job in the
    /// same transaction as the dedupe key, answers at once, and fetches them
    /// through the pacer.
    Fetch {
        dedupe_key: Option<String>,
        channel_order_ids: Vec<String>,
    },
    /// A topic we do not act on: acknowledged, nothing stored.
    Ignored {
        dedupe_key: Option<String>,
        reason: String,
    },
    /// The channel expects a specific answer (an endpoint challenge).
    Respond {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
}

impl WebhookOutcome {
    pub fn dedupe_key(&self) -> Option<&str> {
        match self {
            WebhookOutcome::Orders { dedupe_key, .. }
            | WebhookOutcome::Fetch { dedupe_key, .. }
            | WebhookOutcome::Ignored { dedupe_key, .. } => dedupe_key.as_deref(),
            WebhookOutcome::Respond { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_ignores_case() {
        let req = WebhookRequest {
            account: "shop".into(),
            method: "POST".into(),
            headers: vec![("x-shopify-topic".into(), "orders/create".into())],
            query: None,
            body: vec![],
            received_at: Utc::now(),
        };
        assert_eq!(req.header("X-Shopify-Topic"), Some("orders/create"));
        assert_eq!(req.header("x-missing"), None);
    }
}
