//! The poll cursor: where an account's `searchOrders` sync stands, stored by
//! the daemon as an opaque string in the same transaction as the orders it
//! covers.
//!
//! ```json
//! {"v":1,"watermark":"2026-11-27T05:00:00Z","start":"2026-11-27T04:50:00Z","span_secs":604800}
//! {"v":1,"watermark":"…","start":"…","end":"2026-12-04T04:50:00Z","token":"…","token_at":"…","span_secs":604800,"pages":3}
//! ```
//!
//! A *sweep* reads every order with `lastUpdatedAfter = start` and
//! `lastUpdatedBefore = end`, page by page; Amazon wants the same parameters
//! on every page, so `end` is fixed when the sweep starts and kept with the
//! page token. Amazon does not document the order of results, so nothing
//! before the end of a sweep is known to be complete: `watermark` (everything
//! changed at or before it has been read) moves to `end` only when the last
//! page is read, and the next sweep starts [`OVERLAP`] before it, because an
//! order can show up in search results minutes after its change.
//!
//! `end` is at most [`SETTLE`] before `now` (Amazon refuses an end within two
//! minutes of its clock; the rest is room for skew between the clocks) and at
//! most `span` after `start`, so that a long backfill is a series of sweeps,
//! each short enough to finish before its page token expires (24 hours; at
//! the published rate of one page every three minutes that is about 480
//! pages). A sweep that needed one page and ended before the live edge
//! doubles the span (up to [`MAX_SPAN`]); one that needed more than
//! [`SHRINK_AFTER_PAGES`] halves it (down to [`MIN_SPAN`]). When a token is
//! older than [`TOKEN_LIFE`], or Amazon refuses it, the sweep starts again
//! from the same `start` with half the span: the orders already read are read
//! again (the store's upsert absorbs them), none is skipped, and the shorter
//! sweep finishes in time.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use switchyard_contract::{ConnectorError, Cursor};

/// How far before `now` a sweep ends at the latest.
pub const SETTLE: Duration = Duration::minutes(5);
/// How far each sweep reaches back before the watermark.
pub const OVERLAP: Duration = Duration::minutes(10);
/// A page token older than this is not used (Amazon's expire after 24 hours).
pub const TOKEN_LIFE: Duration = Duration::hours(23);
/// The first sweep's span: a week of a busy seller's changes (tens of
/// thousands of orders) still fits in a token's life, and a month-long
/// backfill of a small one takes three sweeps.
pub const FIRST_SPAN: Duration = Duration::days(7);
pub const MAX_SPAN: Duration = Duration::days(30);
pub const MIN_SPAN: Duration = Duration::hours(1);
/// A sweep of more pages than this is half of what a token outlives.
pub const SHRINK_AFTER_PAGES: u32 = 240;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollCursor {
    /// Format version, so that the layout can change without losing places.
    pub v: u32,
    pub watermark: DateTime<Utc>,
    /// `lastUpdatedAfter` of the sweep in progress, or of the next one.
    pub start: DateTime<Utc>,
    /// `lastUpdatedBefore` of the sweep in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    /// The next page of the sweep in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When Amazon issued `token` (the `now` of that poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_at: Option<DateTime<Utc>>,
    pub span_secs: i64,
    /// Pages read in the sweep in progress.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pages: u32,
}

/// What the next `searchOrders` call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: DateTime<Utc>,
    pub before: DateTime<Utc>,
    pub token: Option<String>,
}

impl PageRequest {
    /// The query: the same window on every page of a sweep.
    pub fn query(&self, marketplace_ids: &str) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("lastUpdatedAfter", rfc3339(self.after)),
            ("lastUpdatedBefore", rfc3339(self.before)),
            ("marketplaceIds", marketplace_ids.to_owned()),
            ("includedData", crate::endpoints::INCLUDED_DATA.to_owned()),
            (
                "maxResultsPerPage",
                crate::endpoints::ORDERS_PER_PAGE.to_string(),
            ),
        ];
        if let Some(t) = &self.token {
            q.push(("paginationToken", t.clone()));
        }
        q
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl PollCursor {
    /// Where the very first sweep starts.
    pub fn first(since: DateTime<Utc>) -> Self {
        PollCursor {
            v: 1,
            watermark: since,
            start: since,
            end: None,
            token: None,
            token_at: None,
            span_secs: FIRST_SPAN.num_seconds(),
            pages: 0,
        }
    }

    pub fn decode(cursor: &Cursor) -> Result<Self, ConnectorError> {
        let c: PollCursor = serde_json::from_str(&cursor.0).map_err(|e| {
            ConnectorError::Config(format!(
                "stored amazon cursor {:?} is not readable ({e}); reset the account's cursor to \
                 sync again from its start_date",
                cursor.0
            ))
        })?;
        if c.v != 1 {
            return Err(ConnectorError::Config(format!(
                "stored amazon cursor has version {}, this build reads version 1",
                c.v
            )));
        }
        Ok(c)
    }

    pub fn encode(&self) -> Cursor {
        // Plain fields only: serializing cannot fail.
        Cursor(serde_json::to_string(self).unwrap_or_default())
    }

    fn span(&self) -> Duration {
        Duration::seconds(self.span_secs).clamp(MIN_SPAN, MAX_SPAN)
    }

    /// The sweep starts again from `start` with half the span: the page
    /// token is gone (too old, or refused).
    pub fn restarted(&self) -> Self {
        PollCursor {
            end: None,
            token: None,
            token_at: None,
            span_secs: (self.span() / 2).max(MIN_SPAN).num_seconds(),
            pages: 0,
            ..self.clone()
        }
    }

    /// Whether the sweep in progress holds a token too old to use.
    pub fn token_expired(&self, now: DateTime<Utc>) -> bool {
        match (&self.token, self.token_at) {
            (Some(_), Some(at)) => now - at >= TOKEN_LIFE,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The next page to ask for, or `None` when there is nothing to ask yet
    /// (the window would end before it starts).
    pub fn request(&self, now: DateTime<Utc>) -> Option<PageRequest> {
        if let (Some(end), Some(token)) = (self.end, &self.token)
            && !self.token_expired(now)
        {
            return Some(PageRequest {
                after: self.start,
                before: end,
                token: Some(token.clone()),
            });
        }
        let end = (now - SETTLE).min(self.start + self.span());
        (end > self.start).then_some(PageRequest {
            after: self.start,
            before: end,
            token: None,
        })
    }

    /// The cursor after a page of `request`: the same sweep while Amazon
    /// has a next page, else the start of the next sweep. Also says whether
    /// more is ready now (a next page, or a backfill not yet at the live
    /// edge).
    pub fn advance(
        &self,
        request: &PageRequest,
        next_token: Option<String>,
        now: DateTime<Utc>,
    ) -> (Self, bool) {
        let pages = if request.token.is_some() {
            self.pages.saturating_add(1)
        } else {
            1
        };
        if let Some(token) = next_token {
            let c = PollCursor {
                v: 1,
                watermark: self.watermark,
                start: request.after,
                end: Some(request.before),
                token: Some(token),
                token_at: Some(now),
                span_secs: self.span_secs,
                pages,
            };
            return (c, true);
        }
        // The span, not the live edge, ended this sweep: more is ready.
        let capped = request.before >= request.after + self.span();
        let span = if pages > SHRINK_AFTER_PAGES {
            (self.span() / 2).max(MIN_SPAN)
        } else if pages == 1 && capped {
            (self.span() * 2).min(MAX_SPAN)
        } else {
            self.span()
        };
        let watermark = self.watermark.max(request.before);
        let c = PollCursor {
            v: 1,
            watermark,
            start: (watermark - OVERLAP).max(request.after),
            end: None,
            token: None,
            token_at: None,
            span_secs: span.num_seconds(),
            pages: 0,
        };
        (c, capped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn a_sweep_keeps_its_window_across_pages_then_overlaps_the_watermark() {
        let now = t(27, 12, 0);
        let c = PollCursor::first(t(27, 0, 0));
        let r = c.request(now).unwrap();
        assert_eq!(
            (r.after, r.before, r.token.clone()),
            (t(27, 0, 0), t(27, 11, 55), None)
        );
        let (c1, more) = c.advance(&r, Some("page-2".into()), now);
        assert!(more);
        assert_eq!(
            c1.watermark,
            t(27, 0, 0),
            "not read to the end: nothing is known"
        );
        // The next page repeats the window even though `now` moved on.
        let r2 = c1.request(t(27, 12, 3)).unwrap();
        assert_eq!((r2.after, r2.before), (t(27, 0, 0), t(27, 11, 55)));
        assert_eq!(r2.token.as_deref(), Some("page-2"));
        let (c2, more) = c1.advance(&r2, None, t(27, 12, 3));
        assert!(!more, "the sweep reached the live edge");
        assert_eq!(c2.watermark, t(27, 11, 55));
        assert_eq!(c2.start, t(27, 11, 45));
        assert_eq!((c2.token.clone(), c2.end, c2.pages), (None, None, 0));
        // Never an end within SETTLE of now; nothing to ask when it would be empty.
        let r3 = c2.request(t(27, 12, 4)).unwrap();
        assert_eq!(r3.before, t(27, 11, 59));
        assert!(
            PollCursor::first(t(27, 12, 0))
                .request(t(27, 12, 4))
                .is_none()
        );
    }

    #[test]
    fn a_backfill_is_a_series_of_sweeps_that_grow_while_quiet() {
        let now = t(27, 12, 0);
        let mut c = PollCursor::first(t(1, 0, 0));
        let mut sweeps = 0;
        loop {
            let r = c.request(now).unwrap();
            assert!(r.before <= now - SETTLE);
            let (next, more) = c.advance(&r, None, now);
            sweeps += 1;
            assert!(next.watermark > c.watermark);
            c = next;
            if !more {
                break;
            }
        }
        // 7 + 14 days, then the rest up to the live edge.
        assert_eq!(sweeps, 3);
        assert_eq!(c.watermark, now - SETTLE);
    }

    #[test]
    fn an_old_or_refused_token_restarts_the_sweep_from_its_start_with_half_the_span() {
        let c = PollCursor::first(t(1, 0, 0));
        let r = c.request(t(27, 0, 0)).unwrap();
        assert_eq!(r.before, t(8, 0, 0));
        let (c1, _) = c.advance(&r, Some("tok".into()), t(27, 0, 0));
        assert!(!c1.token_expired(t(27, 22, 59)));
        assert!(c1.token_expired(t(27, 23, 0)));
        // Past the token's life the next request is a fresh, shorter sweep
        // from the same start: nothing between start and the old end is skipped.
        let r2 = c1.restarted().request(t(28, 1, 0)).unwrap();
        assert_eq!(
            (r2.after, r2.before, r2.token),
            (t(1, 0, 0), t(4, 12, 0), None)
        );
        assert_eq!(c1.request(t(28, 1, 0)).unwrap().token, None);
        assert_eq!(
            PollCursor::first(t(1, 0, 0)).restarted().span_secs,
            84 * 3600
        );
        let mut tiny = PollCursor::first(t(1, 0, 0));
        for _ in 0..20 {
            tiny = tiny.restarted();
        }
        assert_eq!(tiny.span_secs, MIN_SPAN.num_seconds());
    }

    #[test]
    fn a_long_sweep_halves_the_next_span() {
        let mut c = PollCursor::first(t(1, 0, 0));
        c.span_secs = Duration::days(8).num_seconds();
        let now = t(27, 0, 0);
        let mut r = c.request(now).unwrap();
        for p in 0..=SHRINK_AFTER_PAGES {
            let (next, more) = c.advance(&r, Some(format!("p{p}")), now);
            assert!(more);
            c = next;
            r = c.request(now).unwrap();
        }
        let (done, more) = c.advance(&r, None, now);
        assert!(more, "the backfill goes on");
        assert_eq!(done.span_secs, Duration::days(4).num_seconds());
        assert_eq!(done.watermark, t(9, 0, 0));
    }

    #[test]
    fn round_trips_and_refuses_what_it_cannot_read() {
        let c = PollCursor::first(t(1, 0, 0));
        assert_eq!(
            c.encode().0,
            r#"{"v":1,"watermark":"2026-11-01T00:00:00Z","start":"2026-11-01T00:00:00Z","span_secs":604800}"#
        );
        assert_eq!(PollCursor::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            PollCursor::decode(&Cursor("2026-01-01".into()))
                .unwrap_err()
                .class(),
            "config"
        );
    }
}
