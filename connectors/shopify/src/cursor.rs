//! The poll cursor: where an account's incremental sync stands, stored by the
//! daemon as an opaque string in the same transaction as the orders it covers.
//!
//! ```json
//! {"v":1,"watermark":"2026-11-27T05:03:00Z","window_start":"2026-11-27T04:58:00Z","after":null}
//! ```
//!
//! A *sweep* reads every order with `updated_at >= window_start`, oldest
//! change first, page by page (`after` is Shopify's page cursor within the
//! sweep, `null` between sweeps). `watermark` is the newest `updatedAt` seen
//! so far and never moves backwards. When a sweep ends, the next one starts
//! [`OVERLAP`] before the watermark, so that an order updated in the same
//! second as the last one seen, or stamped by a Shopify host whose clock is a
//! little behind, is read again rather than missed; the store's idempotent
//! upsert absorbs the repeats. The first sweep (no cursor) starts at `since`.
//!
//! Shopify will not page past 25,000 objects of one listing, so a sweep that
//! has read [`SWEEP_LIMIT`] orders ends early and the next one starts *at*
//! the watermark (not before it: the orders read are sorted by `updatedAt`,
//! so nothing older is left, and without the overlap a burst of edits within
//! a few minutes cannot keep the backfill on the same spot). `read` counts
//! the orders of the current sweep and is left out of the JSON while zero.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use switchyard_contract::{ConnectorError, Cursor};

/// How far each sweep reaches back before the watermark.
pub const OVERLAP: Duration = Duration::minutes(5);

/// Orders one sweep reads at most, safely below Shopify's 25,000-object
/// pagination limit.
pub const SWEEP_LIMIT: u32 = 20_000;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollCursor {
    /// Format version, so the layout can change without losing positions.
    pub v: u32,
    pub watermark: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub after: Option<String>,
    /// Orders read so far in this sweep.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub read: u32,
}

impl PollCursor {
    /// Where the very first sweep starts.
    pub fn first(since: DateTime<Utc>) -> Self {
        PollCursor {
            v: 1,
            watermark: since,
            window_start: since,
            after: None,
            read: 0,
        }
    }

    pub fn decode(cursor: &Cursor) -> Result<Self, ConnectorError> {
        let c: PollCursor = serde_json::from_str(&cursor.0).map_err(|e| {
            ConnectorError::Config(format!(
                "stored shopify cursor {:?} is not readable: {e}",
                cursor.0
            ))
        })?;
        if c.v != 1 {
            return Err(ConnectorError::Config(format!(
                "stored shopify cursor has version {}, this build reads version 1",
                c.v
            )));
        }
        Ok(c)
    }

    #[expect(
        clippy::expect_used,
        reason = "a cursor is plain data: serializing it cannot fail"
    )]
    pub fn encode(&self) -> Cursor {
        Cursor(serde_json::to_string(self).expect("the cursor always serializes"))
    }

    /// Shopify's search filter for this sweep. Shopify's search takes whole
    /// seconds, so the bound is rounded down (reading a little more is safe).
    pub fn search_query(&self) -> String {
        format!(
            "updated_at:>='{}'",
            self.window_start.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }

    /// The cursor after a page of `count` orders: same sweep while Shopify
    /// has more pages (and the sweep is under [`SWEEP_LIMIT`]), else the start
    /// of the next sweep. `newest` is the newest `updatedAt` on the page.
    pub fn advance(
        &self,
        newest: Option<DateTime<Utc>>,
        has_next_page: bool,
        end_cursor: Option<String>,
        count: u32,
    ) -> Self {
        let watermark = newest.map_or(self.watermark, |n| n.max(self.watermark));
        let read = self.read.saturating_add(count);
        match (has_next_page, end_cursor) {
            (true, Some(_)) if read >= SWEEP_LIMIT => PollCursor {
                v: 1,
                watermark,
                window_start: watermark,
                after: None,
                read: 0,
            },
            (true, Some(after)) => PollCursor {
                v: 1,
                watermark,
                window_start: self.window_start,
                after: Some(after),
                read,
            },
            _ => PollCursor {
                v: 1,
                watermark,
                window_start: watermark - OVERLAP,
                after: None,
                read: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, h, m, s).unwrap()
    }

    #[test]
    fn a_sweep_keeps_its_window_then_the_next_one_overlaps_the_watermark() {
        let c = PollCursor::first(t(0, 0, 0));
        assert_eq!(c.search_query(), "updated_at:>='2026-11-27T00:00:00Z'");
        let c1 = c.advance(Some(t(5, 1, 0)), true, Some("page-2".into()), 5);
        assert_eq!(c1.window_start, t(0, 0, 0));
        assert_eq!(c1.after.as_deref(), Some("page-2"));
        assert_eq!(c1.watermark, t(5, 1, 0));
        let c2 = c1.advance(Some(t(5, 3, 0)), false, None, 2);
        assert_eq!(c2.watermark, t(5, 3, 0));
        assert_eq!(c2.window_start, t(4, 58, 0));
        assert_eq!(c2.after, None);
        // An empty page, or one with older orders, never moves the watermark back.
        let c3 = c2.advance(Some(t(1, 0, 0)), false, None, 1);
        assert_eq!(c3.watermark, t(5, 3, 0));
        assert_eq!(c2.advance(None, false, None, 0), c2);
    }

    #[test]
    fn a_long_sweep_restarts_at_the_watermark_before_shopifys_pagination_limit() {
        let mut c = PollCursor::first(t(0, 0, 0));
        let per_page = 250;
        let mut pages = 0;
        while c.after.is_some() || pages == 0 {
            pages += 1;
            let newest = t(1, 0, 0) + Duration::seconds(i64::from(pages));
            c = c.advance(Some(newest), true, Some(format!("p{pages}")), per_page);
            assert!(c.read < SWEEP_LIMIT, "a sweep never reads past the limit");
            if pages > 100 {
                break;
            }
        }
        assert_eq!(pages, SWEEP_LIMIT / per_page);
        // The next sweep starts at the newest change read, with no overlap, so
        // a burst of edits cannot hold the backfill in place.
        assert_eq!(c.window_start, c.watermark);
        assert_eq!(c.after, None);
        assert_eq!(c.read, 0);
        let json = c.encode().0;
        assert!(!json.contains("read"), "{json}");
    }

    #[test]
    fn round_trips_and_refuses_what_it_cannot_read() {
        let c = PollCursor::first(t(0, 0, 0)).advance(Some(t(1, 0, 0)), true, Some("x".into()), 0);
        assert_eq!(PollCursor::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            c.encode().0,
            r#"{"v":1,"watermark":"2026-11-27T01:00:00Z","window_start":"2026-11-27T00:00:00Z","after":"x"}"#
        );
        assert_eq!(
            PollCursor::decode(&Cursor("2026-01-01".into()))
                .unwrap_err()
                .class(),
            "config"
        );
    }
}
