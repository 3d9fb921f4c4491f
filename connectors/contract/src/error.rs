//! The error classes a connector reports. Connectors classify; the daemon
//! decides what to do (retry, back off, refresh, dead-letter), so that retry
//! policy lives in one place.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The account's configuration cannot work (missing key, bad id). Not retried.
    #[error("configuration: {0}")]
    Config(String),
    /// Credentials were refused; a token refresh may help, a retry alone will not.
    #[error("authentication: {0}")]
    Auth(String),
    /// The channel asked us to slow down, optionally saying for how long.
    #[error("rate limited{}: {detail}", retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        detail: String,
    },
    /// A network fault, timeout or 5xx: the same call may succeed later.
    #[error("transient: {0}")]
    Transient(String),
    /// The channel refused this request for good (4xx, user errors). Not retried.
    #[error("rejected{}: {detail}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Rejected { status: Option<u16>, detail: String },
    /// The channel's answer could not be understood.
    #[error("decode: {0}")]
    Decode(String),
}

impl ConnectorError {
    /// Whether the daemon should try the same call again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::RateLimited { .. } | ConnectorError::Transient(_)
        )
    }

    /// A short label for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            ConnectorError::Config(_) => "config",
            ConnectorError::Auth(_) => "auth",
            ConnectorError::RateLimited { .. } => "rate_limited",
            ConnectorError::Transient(_) => "transient",
            ConnectorError::Rejected { .. } => "rejected",
            ConnectorError::Decode(_) => "decode",
        }
    }

    /// Classifies an HTTP status the way every channel needs: 401/403 are auth,
    /// 429 is rate-limited, 408, 425 and 5xx are transient, other 4xx rejected.
    /// `detail` should already be free of secrets (a response body excerpt).
    pub fn from_status(
        status: u16,
        retry_after: Option<Duration>,
        detail: impl Into<String>,
    ) -> Self {
        let detail = detail.into();
        match status {
            401 | 403 => ConnectorError::Auth(format!("HTTP {status}: {detail}")),
            429 => ConnectorError::RateLimited {
                retry_after,
                detail: format!("HTTP 429: {detail}"),
            },
            408 | 425 | 500..=599 => ConnectorError::Transient(format!("HTTP {status}: {detail}")),
            _ => ConnectorError::Rejected {
                status: Some(status),
                detail,
            },
        }
    }

    /// Classifies a transport error from reqwest. The URL is dropped from the
    /// message because query strings can carry tokens.
    pub fn from_reqwest(err: &reqwest::Error) -> Self {
        let err_no_url = format!("{}", WithoutUrl(err));
        if err.is_decode() {
            ConnectorError::Decode(err_no_url)
        } else if let Some(status) = err.status() {
            ConnectorError::from_status(status.as_u16(), None, err_no_url)
        } else if err.is_builder() {
            ConnectorError::Config(err_no_url)
        } else {
            ConnectorError::Transient(err_no_url)
        }
    }
}

struct WithoutUrl<'a>(&'a reqwest::Error);

impl std::fmt::Display for WithoutUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.0.is_timeout() {
            "timed out"
        } else if self.0.is_connect() {
            "could not connect"
        } else if self.0.is_body() {
            "reading the response body failed"
        } else if self.0.is_decode() {
            "decoding the response failed"
        } else {
            "request failed"
        };
        f.write_str(kind)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// Parses a `Retry-After` header given in seconds (the form channels use).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_classes_the_daemon_acts_on() {
        assert_eq!(ConnectorError::from_status(401, None, "x").class(), "auth");
        assert_eq!(ConnectorError::from_status(403, None, "x").class(), "auth");
        assert_eq!(
            ConnectorError::from_status(404, None, "x").class(),
            "rejected"
        );
        assert_eq!(
            ConnectorError::from_status(422, None, "x").class(),
            "rejected"
        );
        assert_eq!(
            ConnectorError::from_status(408, None, "x").class(),
            "transient"
        );
        assert_eq!(
            ConnectorError::from_status(503, None, "x").class(),
            "transient"
        );
        let e = ConnectorError::from_status(429, Some(Duration::from_secs(2)), "slow down");
        assert_eq!(
            e,
            ConnectorError::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
                detail: "HTTP 429: slow down".into()
            }
        );
        assert!(e.is_retryable());
        assert!(!ConnectorError::from_status(400, None, "x").is_retryable());
        assert_eq!(
            e.to_string(),
            "rate limited (retry after 2000 ms): HTTP 429: slow down"
        );
    }

    #[test]
    fn retry_after_accepts_whole_and_fractional_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
