//! The poll cursor: where an account's incremental sync stands, stored by the
//! daemon as an opaque string in the same transaction as the orders it covers.
//!
//! ```json
//! {"v":1,"window_start":"2026-11-27T04:58:00Z","window_end":"2026-11-27T05:03:00Z","offset":200,"total":431}
//! ```
//!
//! A *sweep* reads every order whose `lastModifiedDate` lies in a closed
//! window `[window_start, window_end]`, fixed when the sweep starts
//! (`window_end` is `now` then, or [`MAX_SPAN`] after the start for a long
//! backfill), page by page with eBay's offset paging. Between sweeps
//! `window_end` is `null` and `window_start` is where the next one starts:
//! [`OVERLAP`] before the last one's end, so an order stamped by a lagging
//! eBay host, or across a small clock difference, is read again rather than
//! missed (the store's upsert absorbs the repeats).
//!
//! **Why offset paging is safe here.** eBay's order of results is not
//! documented, and offsets over a set that changes can skip or repeat. Because
//! the window is closed and in the past, orders cannot enter it (a change
//! stamps an order *after* `window_end`); they can only leave it, when they
//! change again, and then the next sweep reads them. An order that leaves
//! moves every later one up a place, so the rows at the end of what was read
//! can slide below the next offset and be skipped. eBay's `total` shows it:
//! each page's total is compared with the previous page's, and when `d`
//! orders left in between, the next page starts `d` rows earlier
//! ([`PollCursor::advance`]), re-reading rather than skipping. Orders
//! arriving late in eBay's index (a total that grows) shift rows the other
//! way, which only repeats some. A sweep re-reads at most [`MAX_REWINDS`]
//! times; past that a churning window is left to the next sweep's overlap.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use switchyard_contract::{ConnectorError, Cursor};

/// How far each sweep reaches back before the previous one's end.
pub const OVERLAP: Duration = Duration::minutes(5);

/// The longest window one sweep covers: a backfill goes month by month.
pub const MAX_SPAN: Duration = Duration::days(30);

/// getOrders returns nothing older than two years; a start before that is
/// moved up to it (with a day's margin, so eBay does not refuse the filter).
pub const EBAY_HISTORY: Duration = Duration::days(729);

/// Re-reads allowed in one sweep.
pub const MAX_REWINDS: u32 = 10;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollCursor {
    /// Format version, so the layout can change without losing positions.
    pub v: u32,
    pub window_start: DateTime<Utc>,
    /// `None` between sweeps.
    pub window_end: Option<DateTime<Utc>>,
    /// Rows of the window already read.
    pub offset: u32,
    /// eBay's `total` on the last page read.
    pub total: Option<u32>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rewinds: u32,
}

/// What the poll reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub offset: u32,
}

impl PollCursor {
    /// Where the very first sweep starts.
    pub fn first(since: DateTime<Utc>) -> Self {
        PollCursor {
            v: 1,
            window_start: since,
            window_end: None,
            offset: 0,
            total: None,
            rewinds: 0,
        }
    }

    pub fn decode(cursor: &Cursor) -> Result<Self, ConnectorError> {
        let c: PollCursor = serde_json::from_str(&cursor.0).map_err(|e| {
            ConnectorError::Config(format!(
                "stored ebay cursor {:?} is not readable: {e}",
                cursor.0
            ))
        })?;
        if c.v != 1 {
            return Err(ConnectorError::Config(format!(
                "stored ebay cursor has version {}, this build reads version 1",
                c.v
            )));
        }
        Ok(c)
    }

    pub fn encode(&self) -> Cursor {
        // Serializing dates and numbers cannot fail.
        Cursor(serde_json::to_string(self).unwrap_or_default())
    }

    /// The page to read at `now`: within the current sweep, or the first
    /// page of a new one. `None` when the window would be empty (a clock
    /// that went back).
    pub fn page(&self, now: DateTime<Utc>) -> Option<Page> {
        if let Some(end) = self.window_end {
            return Some(Page {
                start: self.window_start,
                end,
                offset: self.offset,
            });
        }
        let start = self.window_start.max(now - EBAY_HISTORY);
        let end = now.min(start + MAX_SPAN);
        (end > start).then_some(Page {
            start,
            end,
            offset: 0,
        })
    }

    /// The cursor after reading `page`, which returned `count` orders and
    /// eBay's `total`; and whether more is to be read now.
    pub fn advance(&self, page: Page, count: u32, total: u32, now: DateTime<Utc>) -> (Self, bool) {
        let same_sweep = self.window_end == Some(page.end);
        let left = match self.total {
            Some(before) if same_sweep => before.saturating_sub(total),
            _ => 0,
        };
        let rewinds = if same_sweep { self.rewinds } else { 0 };
        if left > 0 && rewinds < MAX_REWINDS {
            // `left` orders moved out since the last page: the rows just
            // before this page's offset may not have been read.
            return (
                PollCursor {
                    v: 1,
                    window_start: page.start,
                    window_end: Some(page.end),
                    offset: page.offset.saturating_sub(left),
                    total: Some(total),
                    rewinds: rewinds + 1,
                },
                true,
            );
        }
        let read = page.offset.saturating_add(count);
        if count > 0 && read < total {
            return (
                PollCursor {
                    v: 1,
                    window_start: page.start,
                    window_end: Some(page.end),
                    offset: read,
                    total: Some(total),
                    rewinds,
                },
                true,
            );
        }
        // The sweep is done. A backfill window cut at `MAX_SPAN` goes on at
        // once; a window that reached the `now` of its start (or came within
        // the overlap of it) waits for the next interval: going on would
        // poll in a loop.
        let cut_short = page.end - page.start >= MAX_SPAN && now - page.end > OVERLAP;
        (
            PollCursor {
                v: 1,
                window_start: page.end - OVERLAP,
                window_end: None,
                offset: 0,
                total: None,
                rewinds: 0,
            },
            cut_short,
        )
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
    fn a_sweep_pages_through_a_closed_window_then_the_next_overlaps_its_end() {
        let now = t(27, 12, 0);
        let c = PollCursor::first(t(26, 0, 0));
        let p = c.page(now).unwrap();
        assert_eq!((p.start, p.end, p.offset), (t(26, 0, 0), now, 0));
        let (c, more) = c.advance(p, 200, 431, now);
        assert!(more);
        assert_eq!(
            (c.offset, c.total, c.window_end),
            (200, Some(431), Some(now))
        );
        // Later polls of the same sweep keep its window, whatever `now` says.
        let later = t(27, 12, 5);
        let p = c.page(later).unwrap();
        assert_eq!((p.end, p.offset), (now, 200));
        let (c, more) = c.advance(p, 200, 431, later);
        assert!(more);
        let p = c.page(later).unwrap();
        let (c, more) = c.advance(p, 31, 431, later);
        // Done: the next sweep starts five minutes before this one's end,
        // at the next interval.
        assert!(!more, "caught up until the next interval");
        assert_eq!(c, PollCursor::first(t(27, 11, 55)));
        let p = c.page(later).unwrap();
        assert_eq!((p.start, p.end), (t(27, 11, 55), later));
    }

    #[test]
    fn orders_leaving_the_window_make_the_next_page_start_earlier() {
        let now = t(27, 12, 0);
        let c = PollCursor::first(t(26, 0, 0));
        let (c, _) = c.advance(c.page(now).unwrap(), 200, 431, now);
        // Three orders changed (left the window) before the second page.
        let p = c.page(now).unwrap();
        let (c, more) = c.advance(p, 200, 428, now);
        assert!(more);
        assert_eq!((c.offset, c.total, c.rewinds), (197, Some(428), 1));
        // Nothing left since: the sweep goes on from there.
        let (c, more) = c.advance(c.page(now).unwrap(), 200, 428, now);
        assert!(more);
        assert_eq!((c.offset, c.rewinds), (397, 1));
        // A total that grows (late-indexed orders) never rewinds; the rows it
        // adds are read too.
        let (c, more) = c.advance(c.page(now).unwrap(), 31, 430, now);
        assert!(more);
        assert_eq!((c.offset, c.rewinds), (428, 1));
        let (c, _) = c.advance(c.page(now).unwrap(), 2, 430, now);
        assert_eq!(c.window_end, None);
    }

    #[test]
    fn a_churning_window_stops_rewinding() {
        let now = t(27, 12, 0);
        let mut c = PollCursor::first(t(26, 0, 0));
        let (next, _) = c.advance(c.page(now).unwrap(), 200, 10_000, now);
        c = next;
        let mut total = 10_000;
        for _ in 0..MAX_REWINDS {
            total -= 1;
            let (next, _) = c.advance(c.page(now).unwrap(), 200, total, now);
            assert_eq!(next.offset, c.offset - 1);
            c = next;
        }
        let (next, _) = c.advance(c.page(now).unwrap(), 200, total - 1, now);
        assert_eq!(next.offset, c.offset + 200);
    }

    #[test]
    fn a_backfill_goes_a_month_at_a_time_and_never_before_ebays_two_years() {
        let now = t(27, 12, 0);
        let c = PollCursor::first(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap());
        let p = c.page(now).unwrap();
        assert_eq!(p.start, now - EBAY_HISTORY);
        assert_eq!(p.end, p.start + MAX_SPAN);
        let (c, more) = c.advance(p, 0, 0, now);
        assert!(more, "more months to read");
        assert_eq!(c.window_start, p.end - OVERLAP);
        assert_eq!(PollCursor::first(now).page(now), None);
    }

    #[test]
    fn round_trips_and_refuses_what_it_cannot_read() {
        let now = t(27, 12, 0);
        let c = PollCursor::first(t(26, 0, 0));
        let (c, _) = c.advance(c.page(now).unwrap(), 200, 431, now);
        assert_eq!(PollCursor::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            c.encode().0,
            r#"{"v":1,"window_start":"2026-11-26T00:00:00Z","window_end":"2026-11-27T12:00:00Z","offset":200,"total":431}"#
        );
        assert_eq!(
            PollCursor::decode(&Cursor("2026-01-01".into()))
                .unwrap_err()
                .class(),
            "config"
        );
    }
}
