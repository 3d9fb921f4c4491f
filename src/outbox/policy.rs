//! What a failed outbound call means: retry (when) or dead letter (why).
//! The one place that maps connector error classes onto outbox actions.

use std::time::Duration;

use switchyard_contract::ConnectorError;

/// What to do with an item whose call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Try again later; `retry_after` is what the channel asked for, if anything.
    Retry {
        retry_after: Option<Duration>,
        rate_limited: bool,
    },
    /// A person has to look at it: dead letter with this reason.
    Dead(String),
}

/// Rate-limited, transient and undecodable answers are retried (a channel
/// that returns garbage is treated like one that times out).
/// Rejected, config and auth failures are permanent. Auth is permanent for
/// now: token refresh arrives with the connectors that need it, and a
/// connector is expected to refresh before it reports `Auth`.
pub fn classify(error: &ConnectorError) -> Action {
    match error {
        ConnectorError::RateLimited { retry_after, .. } => Action::Retry {
            retry_after: *retry_after,
            rate_limited: true,
        },
        ConnectorError::Transient(_) | ConnectorError::Decode(_) => Action::Retry {
            retry_after: None,
            rate_limited: false,
        },
        ConnectorError::Auth(_) => Action::Dead(format!(
            "{error} (credentials refused: fix them, then `switchyard outbox retry`)"
        )),
        ConnectorError::Config(_) | ConnectorError::Rejected { .. } => {
            Action::Dead(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_actions() {
        assert!(matches!(
            classify(&ConnectorError::from_status(429, Some(Duration::from_secs(3)), "x")),
            Action::Retry { retry_after: Some(d), rate_limited: true } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify(&ConnectorError::from_status(503, None, "x")),
            Action::Retry { .. }
        ));
        assert!(matches!(
            classify(&ConnectorError::Decode("x".into())),
            Action::Retry { .. }
        ));
        match classify(&ConnectorError::from_status(400, None, "bad sku")) {
            Action::Dead(reason) => assert!(
                reason.contains("HTTP 400") && reason.contains("bad sku"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(&ConnectorError::from_status(401, None, "x")),
            Action::Dead(_)
        ));
        assert!(matches!(
            classify(&ConnectorError::Config("x".into())),
            Action::Dead(_)
        ));
    }
}
