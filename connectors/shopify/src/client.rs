//! The one place that talks HTTP to Shopify: it posts a GraphQL document,
//! reads the cost report every answer carries into a [`RateHint`] for the
//! pacer and for its own copy (the look-up guard and plan scaling read it),
//! both with when the call went out, so that an answer read after a later
//! one cannot undo it, and turns every way a call can fail into a
//! [`ConnectorError`] class.
//!
//! Classification (the daemon acts on the class; this module never retries):
//!
//! | answer | class |
//! | --- | --- |
//! | transport error, timeout | `from_reqwest` (transient, mostly) |
//! | HTTP 429 | `RateLimited`, `Retry-After` when sent |
//! | other non-2xx | `from_status` (401/403 auth, 5xx transient, 4xx rejected) |
//! | 200, `errors[].extensions.code == "THROTTLED"` | `RateLimited`, wait = (requested − available) / restore rate, rounded up |
//! | 200, `ACCESS_DENIED` with no data | `Auth` |
//! | 200, `INTERNAL_SERVER_ERROR` / `SERVICE_UNAVAILABLE` / `TIMEOUT` | `Transient` |
//! | 200, any other error (validation, `MAX_COST_EXCEEDED` …) | `Rejected` |
//! | 200, body not JSON or `data` not the expected shape | `Decode` |
//!
//! `ACCESS_DENIED` errors that name a `path` while `data` is present are
//! field-level refusals (an app without protected-customer-data approval
//! gets `null` customer fields): the data is used and the refused fields end
//! up as normalization notes, so that an unapproved app still syncs orders.
//!
//! No message ever contains the access token: it is only ever written into
//! the request header, and response excerpts are scrubbed of it regardless.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use switchyard_contract::error::parse_retry_after;
use switchyard_contract::{
    ConnectorError, Operation, Pacer, RateHint, RateWindow, Secret, SeenHint,
};
use tokio::time::Instant;

use crate::wire::{GqlCost, GqlEnvelope};

/// How much of a response body goes into an error message.
const EXCERPT_CHARS: usize = 300;

pub(crate) struct GraphqlClient {
    http: reqwest::Client,
    url: String,
    token: Secret,
    pacer: Arc<dyn Pacer>,
    /// The cost report in force.
    rate: Mutex<Option<SeenHint>>,
}

/// Takes `report`, from the answer to a call that went out at `sent`, as
/// the report in force, unless the one in force overtook it
/// ([`SeenHint::overtaken_by`], the pacer's rule too): a poll, fetches and
/// pushes run side by side, and taking an answer written before the one in
/// force would let SKU look-ups go out into a bucket Shopify already showed
/// low (they come back throttled). Whether it was taken.
fn take_report(slot: &mut Option<SeenHint>, report: SeenHint, sent: Instant) -> bool {
    if slot
        .as_ref()
        .is_some_and(|current| report.overtaken_by(current, sent))
    {
        return false;
    }
    *slot = Some(report);
    true
}

impl GraphqlClient {
    pub fn new(http: reqwest::Client, url: String, token: Secret, pacer: Arc<dyn Pacer>) -> Self {
        GraphqlClient {
            http,
            url,
            token,
            pacer,
            rate: Mutex::new(None),
        }
    }

    pub fn rate_hint(&self) -> Option<RateHint> {
        self.rate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|r| r.hint)
    }

    /// Posts one document, once the pacer lets `class` go, and decodes
    /// `data` as `T`. Shopify's cost bucket is one for the whole app and
    /// shop: every answer's report goes to the pacer for every operation,
    /// since each of them spends that one bucket.
    pub async fn execute<T: DeserializeOwned>(
        &self,
        class: Operation,
        operation: &str,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<T, ConnectorError> {
        self.pacer.acquire(class, 1).await;
        let body = serde_json::json!({
            "operationName": operation,
            "query": query,
            "variables": variables,
        });
        let sent = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .header("X-Shopify-Access-Token", self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        let observed_at = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.with_timezone(&Utc));
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        if !(200..300).contains(&status) {
            let detail = format!("{operation}: {}", self.excerpt(&bytes));
            return Err(ConnectorError::from_status(status, retry_after, detail));
        }
        let envelope: GqlEnvelope = serde_json::from_slice(&bytes).map_err(|e| {
            ConnectorError::Decode(format!(
                "{operation}: response is not GraphQL JSON ({e}): {}",
                self.excerpt(&bytes)
            ))
        })?;
        let cost = envelope.extensions.as_ref().and_then(|x| x.cost);
        if let Some(hint) = cost.and_then(|c| rate_hint(&c, observed_at)) {
            let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
            take_report(&mut rate, SeenHint::new(hint, Instant::now()), sent);
            drop(rate);
            // One bucket for every operation: each one's budget is told,
            // with when the call went out, since a poll, fetches and pushes
            // run side by side and an answer read late must not bring back
            // points a later answer showed spent.
            for operation in Operation::ALL {
                self.pacer.observe_answer(operation, hint, sent);
            }
        }
        classify_errors(operation, &envelope, cost.as_ref(), |s| self.scrub(s))?;
        let data = envelope.data.ok_or_else(|| {
            ConnectorError::Decode(format!("{operation}: response has neither data nor errors"))
        })?;
        serde_json::from_value(data)
            .map_err(|e| ConnectorError::Decode(format!("{operation}: unexpected data shape: {e}")))
    }

    /// The start of a body on one line (errors end up in single log lines).
    fn excerpt(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let cut: String = one_line.chars().take(EXCERPT_CHARS).collect();
        self.scrub(&cut)
    }

    /// Defence in depth: a proxy or simulator that echoes the request would
    /// otherwise put the token into an error, and errors get logged.
    fn scrub(&self, s: &str) -> String {
        let token = self.token.expose();
        if token.is_empty() {
            s.to_owned()
        } else {
            s.replace(token, "***")
        }
    }
}

/// The bucket as Shopify reports it. `observed_at` is the response's `Date`
/// header; only when a server sends none is the local clock read.
fn rate_hint(cost: &GqlCost, observed_at: Option<DateTime<Utc>>) -> Option<RateHint> {
    let t = cost.throttle_status?;
    Some(RateHint {
        capacity: whole(t.maximum_available),
        remaining: whole(t.currently_available),
        restore_per_second: t.restore_rate,
        observed_at: observed_at.unwrap_or_else(Utc::now),
        window: RateWindow::Burst,
    })
}

/// How long until the bucket holds what the throttled query asked for.
pub(crate) fn throttle_wait(cost: &GqlCost) -> Option<Duration> {
    let t = cost.throttle_status?;
    let requested = cost.requested_query_cost?;
    if t.restore_rate <= 0.0 {
        return None;
    }
    let missing = (requested - t.currently_available).max(0.0);
    Some(Duration::from_secs(u64::from(whole(
        (missing / t.restore_rate).ceil().max(1.0),
    ))))
}

/// A figure Shopify reports (points, seconds) as a whole number: the
/// fraction dropped, negative and NaN as 0, too large as `u32::MAX`.
#[expect(
    clippy::cast_possible_truncation,
    reason = "float-to-int `as` saturates (and turns NaN into 0), which is the point"
)]
pub(crate) fn whole(v: f64) -> u32 {
    v.max(0.0) as u32
}

fn classify_errors(
    operation: &str,
    envelope: &GqlEnvelope,
    cost: Option<&GqlCost>,
    scrub: impl Fn(&str) -> String,
) -> Result<(), ConnectorError> {
    if envelope.errors.is_empty() {
        return Ok(());
    }
    let code = |e: &crate::wire::GqlError| {
        e.extensions
            .as_ref()
            .and_then(|x| x.code.clone())
            .unwrap_or_default()
    };
    let messages = || {
        scrub(
            &envelope
                .errors
                .iter()
                .map(|e| {
                    let c = code(e);
                    if c.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{c}: {}", e.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    if envelope.errors.iter().any(|e| code(e) == "THROTTLED") {
        return Err(ConnectorError::RateLimited {
            retry_after: cost.and_then(throttle_wait),
            detail: format!("{operation}: {}", messages()),
        });
    }
    let has_data = envelope.data.as_ref().is_some_and(|d| !d.is_null());
    let field_level_denials = envelope
        .errors
        .iter()
        .all(|e| code(e) == "ACCESS_DENIED" && e.path.as_ref().is_some_and(|p| p.len() > 1));
    if has_data && field_level_denials {
        return Ok(());
    }
    if envelope.errors.iter().any(|e| code(e) == "ACCESS_DENIED") {
        return Err(ConnectorError::Auth(format!("{operation}: {}", messages())));
    }
    if envelope.errors.iter().any(|e| {
        matches!(
            code(e).as_str(),
            "INTERNAL_SERVER_ERROR" | "SERVICE_UNAVAILABLE" | "TIMEOUT"
        )
    }) {
        return Err(ConnectorError::Transient(format!(
            "{operation}: {}",
            messages()
        )));
    }
    Err(ConnectorError::Rejected {
        status: None,
        detail: format!("{operation}: {}", messages()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::GqlThrottleStatus;

    fn envelope(json: serde_json::Value) -> GqlEnvelope {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_report_sent_before_the_one_in_force_arrived_is_taken_only_when_it_shows_less_room() {
        let bucket = |remaining: u32, restore_per_second: f64| RateHint {
            capacity: 1000,
            remaining,
            restore_per_second,
            observed_at: Utc::now(),
            window: RateWindow::Burst,
        };
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let (poll_sent, fetch_sent, fetch_read) = (at(0), at(10), at(100));
        let mut slot = None;
        assert!(take_report(
            &mut slot,
            SeenHint::new(bucket(10, 1.0), fetch_read),
            fetch_sent
        ));
        // The poll went out before the fetch's report arrived: its answer,
        // with more room, was written first.
        assert!(!take_report(
            &mut slot,
            SeenHint::new(bucket(900, 1.0), at(200)),
            poll_sent
        ));
        assert!(!take_report(
            &mut slot,
            SeenHint::new(bucket(10, 50.0), at(200)),
            poll_sent
        ));
        assert_eq!(slot.map(|r| r.hint.remaining), Some(10));
        // Less room is always taken, late or not.
        assert!(take_report(
            &mut slot,
            SeenHint::new(bucket(4, 1.0), at(300)),
            poll_sent
        ));
        assert_eq!(slot.map(|r| r.hint.remaining), Some(4));
        // Ten minutes on, the report in force counts 600 points refilled:
        // a late 300 shows less than that.
        assert!(take_report(
            &mut slot,
            SeenHint::new(bucket(300, 1.0), at(600_300)),
            poll_sent
        ));
        // A call sent after the report in force arrived says what is there
        // now, refill included.
        assert!(take_report(
            &mut slot,
            SeenHint::new(bucket(990, 1.0), at(600_500)),
            at(600_400)
        ));
        assert_eq!(slot.map(|r| r.hint.remaining), Some(990));
    }

    #[test]
    fn throttle_wait_is_the_missing_points_over_the_restore_rate_rounded_up() {
        let cost = GqlCost {
            requested_query_cost: Some(752.0),
            actual_query_cost: None,
            throttle_status: Some(GqlThrottleStatus {
                maximum_available: 2000.0,
                currently_available: 110.0,
                restore_rate: 100.0,
            }),
        };
        // (752 − 110) / 100 = 6.42 → 7 s
        assert_eq!(throttle_wait(&cost), Some(Duration::from_secs(7)));
    }

    #[test]
    fn errors_are_classified() {
        let class = |json: serde_json::Value| {
            classify_errors("Op", &envelope(json), None, |s| s.to_owned())
                .unwrap_err()
                .class()
        };
        assert_eq!(
            class(
                serde_json::json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]})
            ),
            "rate_limited"
        );
        assert_eq!(
            class(
                serde_json::json!({"errors": [{"message": "no", "extensions": {"code": "ACCESS_DENIED"}}]})
            ),
            "auth"
        );
        assert_eq!(
            class(
                serde_json::json!({"errors": [{"message": "boom", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]})
            ),
            "transient"
        );
        assert_eq!(
            class(
                serde_json::json!({"errors": [{"message": "Field 'x' doesn't exist on type 'Order'"}]})
            ),
            "rejected"
        );
    }

    #[test]
    fn field_level_access_denials_keep_the_data() {
        let env = envelope(serde_json::json!({
            "data": {"orders": {"nodes": []}},
            "errors": [{"message": "This app is not approved to access the Customer object.",
                        "path": ["orders", "nodes", 0, "customer"],
                        "extensions": {"code": "ACCESS_DENIED"}}]
        }));
        assert!(classify_errors("Op", &env, None, |s| s.to_owned()).is_ok());
    }
}
