//! The poll cursor: where an account's receipt sync stands, stored by the
//! daemon as an opaque string in the same transaction as the orders it covers.
//!
//! ```json
//! {"v":1,"watermark":"2026-11-27T05:03:00Z","window_start":"2026-11-27T04:58:00Z",
//!  "offset":0,"caught_up":true,"floor":"2026-11-01T00:00:00Z",
//!  "resweep_at":"2026-11-27T07:00:00Z","resweep":null}
//! ```
//!
//! **Changed receipts.** `getShopReceipts` with `min_last_modified =
//! window_start`, `sort_on=updated`, `sort_order=asc`, paged by `offset`.
//! Offset paging over a set that changes while it is read skips receipts
//! (one updated on an earlier page moves to the end and everything after
//! it shifts down by one), so after every full page the window restarts at
//! the newest `update_timestamp` on it, offset 0: the receipts of that same
//! second are read again rather than skipped. Only a page whose receipts all
//! share the window's own second moves the offset on (else it would be read
//! forever). `watermark` is the newest `update_timestamp` seen and never
//! moves back; when a page comes back short the sweep is done, and the next
//! one starts [`OVERLAP`] before the watermark, so that a receipt updated in
//! the same second as the last one seen, or indexed late by Etsy, is read
//! again rather than missed. The store's idempotent upsert absorbs repeats.
//!
//! **Resweeps.** Etsy does not move `update_timestamp` for refunds and
//! ship-date changes, so no `min_last_modified` window sees them. Every
//! [`RESWEEP_EVERY`], once the changed receipts are caught up, the cursor
//! reads every receipt *created* in the last [`RESWEEP_WINDOW`] again
//! (`min_created`, `sort_on=created`, ascending: a set that only grows at
//! its end, so offset paging is safe there). A page holds 100 receipts, so a
//! resweep of a shop with 3,000 orders a month is 30 calls; twelve a day is
//! 360 of Etsy's default 10,000. The resweep never reaches back past `floor`,
//! where the account's first sync started. The cursor schedules this itself
//! (not the daemon's per-order re-read) because one page re-reads a hundred
//! receipts for the price of one call.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use switchyard_contract::{ConnectorError, Cursor};

/// How far each sweep of changed receipts reaches back before the watermark.
pub const OVERLAP: Duration = Duration::minutes(5);

/// How often receipts placed recently are read again in full.
pub const RESWEEP_EVERY: Duration = Duration::hours(2);

/// How far back a resweep reaches (by creation time).
pub const RESWEEP_WINDOW: Duration = Duration::days(30);

/// The earliest time Etsy's `min_*` filters accept (2000-01-01).
pub const ETSY_EPOCH_FLOOR: i64 = 946_684_800;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollCursor {
    /// Format version, so the layout can change without losing positions.
    pub v: u32,
    pub watermark: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub offset: u32,
    /// The last sweep of changed receipts ended (a short page).
    pub caught_up: bool,
    /// Resweeps reach no further back than this (the first sync's start).
    pub floor: DateTime<Utc>,
    pub resweep_at: DateTime<Utc>,
    pub resweep: Option<Resweep>,
}

/// A resweep under way: receipts created since `from`, `offset` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resweep {
    pub from: DateTime<Utc>,
    pub offset: u32,
}

/// What the next page asks Etsy for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Receipts changed since `min_last_modified` (epoch seconds), by update.
    Changed { min_last_modified: i64, offset: u32 },
    /// Receipts created since `min_created` (epoch seconds), by creation.
    Resweep { min_created: i64, offset: u32 },
}

fn etsy_seconds(t: DateTime<Utc>) -> i64 {
    t.timestamp().max(ETSY_EPOCH_FLOOR)
}

impl PollCursor {
    /// Where the very first sweep starts: everything changed since `since`.
    /// The first resweep is due one interval later (the first sweep reads
    /// everything anyway).
    pub fn first(since: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        PollCursor {
            v: 1,
            watermark: since,
            window_start: since,
            offset: 0,
            caught_up: false,
            floor: since,
            resweep_at: now + RESWEEP_EVERY,
            resweep: None,
        }
    }

    pub fn decode(cursor: &Cursor) -> Result<Self, ConnectorError> {
        let c: PollCursor = serde_json::from_str(&cursor.0).map_err(|e| {
            ConnectorError::Config(format!(
                "stored etsy cursor {:?} is not readable: {e}",
                cursor.0
            ))
        })?;
        if c.v != 1 {
            return Err(ConnectorError::Config(format!(
                "stored etsy cursor has version {}, this build reads version 1",
                c.v
            )));
        }
        Ok(c)
    }

    pub fn encode(&self) -> Cursor {
        // Plain fields only: serializing cannot fail.
        Cursor(serde_json::to_string(self).unwrap_or_default())
    }

    /// The page to ask for now: a resweep under way goes on; a resweep due
    /// starts once the changed receipts are caught up; else changed receipts.
    pub fn plan(&self, now: DateTime<Utc>) -> Plan {
        match &self.resweep {
            Some(r) => Plan::Resweep {
                min_created: etsy_seconds(r.from),
                offset: r.offset,
            },
            None if self.caught_up && now >= self.resweep_at => Plan::Resweep {
                min_created: etsy_seconds(self.resweep_from(now)),
                offset: 0,
            },
            None => Plan::Changed {
                min_last_modified: etsy_seconds(self.window_start),
                offset: self.offset,
            },
        }
    }

    fn resweep_from(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        (now - RESWEEP_WINDOW).max(self.floor)
    }

    /// The cursor after a page of changed receipts: `count` receipts came
    /// back of `limit` asked, and `newest` is the newest `update_timestamp`
    /// among them. Returns the cursor and whether more pages are ready.
    pub fn after_changed(
        &self,
        count: u32,
        limit: u32,
        newest: Option<DateTime<Utc>>,
    ) -> (Self, bool) {
        let mut next = self.clone();
        next.watermark = newest.map_or(self.watermark, |n| n.max(self.watermark));
        match newest {
            Some(newest) if count >= limit => {
                if newest > self.window_start {
                    next.window_start = newest;
                    next.offset = 0;
                } else {
                    next.offset = self.offset.saturating_add(count);
                }
                next.caught_up = false;
                (next, true)
            }
            _ => {
                next.window_start = next.watermark - OVERLAP;
                next.offset = 0;
                next.caught_up = true;
                (next, false)
            }
        }
    }

    /// The cursor after a resweep page (asked for with [`Plan::Resweep`] at
    /// `now`): the next page of it, or, after a short page, the resweep done
    /// and the next one scheduled.
    pub fn after_resweep(&self, count: u32, limit: u32, now: DateTime<Utc>) -> (Self, bool) {
        let mut next = self.clone();
        let current = self.resweep.clone().unwrap_or(Resweep {
            from: self.resweep_from(now),
            offset: 0,
        });
        if count >= limit {
            next.resweep = Some(Resweep {
                from: current.from,
                offset: current.offset.saturating_add(count),
            });
            (next, true)
        } else {
            next.resweep = None;
            next.resweep_at = now + RESWEEP_EVERY;
            (next, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, s).unwrap()
    }

    #[test]
    fn full_pages_restart_at_their_newest_second_and_a_short_page_overlaps() {
        let now = t(27, 12, 0, 0);
        let c = PollCursor::first(t(1, 0, 0, 0), now);
        assert_eq!(
            c.plan(now),
            Plan::Changed {
                min_last_modified: t(1, 0, 0, 0).timestamp(),
                offset: 0
            }
        );
        // A full page whose newest receipt changed at 05:01:00.
        let (c1, more) = c.after_changed(2, 2, Some(t(27, 5, 1, 0)));
        assert!(more);
        assert_eq!((c1.window_start, c1.offset), (t(27, 5, 1, 0), 0));
        // A full page entirely of that same second: the offset moves on.
        let (c2, more) = c1.after_changed(2, 2, Some(t(27, 5, 1, 0)));
        assert!(more);
        assert_eq!((c2.window_start, c2.offset), (t(27, 5, 1, 0), 2));
        let (c3, more) = c2.after_changed(2, 2, Some(t(27, 5, 1, 0)));
        assert!(more);
        assert_eq!(c3.offset, 4);
        // A short page ends the sweep: the next starts 5 minutes back.
        let (c4, more) = c3.after_changed(1, 2, Some(t(27, 5, 3, 0)));
        assert!(!more);
        assert_eq!(c4.watermark, t(27, 5, 3, 0));
        assert_eq!((c4.window_start, c4.offset), (t(27, 4, 58, 0), 0));
        assert!(c4.caught_up);
        // An empty page, or older receipts, never move the watermark back.
        let (c5, _) = c4.after_changed(1, 2, Some(t(27, 1, 0, 0)));
        assert_eq!(c5.watermark, t(27, 5, 3, 0));
        assert_eq!(c4.after_changed(0, 2, None).0, c4);
    }

    #[test]
    fn a_resweep_starts_when_due_and_caught_up_and_then_reschedules() {
        let now = t(27, 12, 0, 0);
        let c = PollCursor::first(t(1, 0, 0, 0), now);
        let later = now + RESWEEP_EVERY;
        // Due, but the changed receipts are not caught up yet.
        assert!(matches!(c.plan(later), Plan::Changed { .. }));
        let (caught, _) = c.after_changed(0, 100, None);
        assert!(
            matches!(caught.plan(now), Plan::Changed { .. }),
            "not due yet"
        );
        // Due and caught up: receipts created in the last 30 days, but not
        // before the first sync's start.
        assert_eq!(
            caught.plan(later),
            Plan::Resweep {
                min_created: t(1, 0, 0, 0).timestamp(),
                offset: 0
            }
        );
        let (r1, more) = caught.after_resweep(100, 100, later);
        assert!(more);
        assert_eq!(r1.resweep.as_ref().unwrap().offset, 100);
        assert_eq!(
            r1.plan(later + Duration::seconds(1)),
            Plan::Resweep {
                min_created: t(1, 0, 0, 0).timestamp(),
                offset: 100
            }
        );
        let (r2, more) = r1.after_resweep(7, 100, later + Duration::seconds(1));
        assert!(!more);
        assert_eq!(r2.resweep, None);
        assert_eq!(r2.resweep_at, later + Duration::seconds(1) + RESWEEP_EVERY);
        assert_eq!(
            r2.watermark, caught.watermark,
            "a resweep moves no watermark"
        );
        // Much later, the window is the last 30 days.
        let far = t(27, 0, 0, 0) + Duration::days(60);
        let (r3, _) = r2.after_changed(0, 100, None);
        assert_eq!(
            r3.plan(far),
            Plan::Resweep {
                min_created: (far - RESWEEP_WINDOW).timestamp(),
                offset: 0
            }
        );
    }

    #[test]
    fn etsys_earliest_filter_is_respected() {
        let c = PollCursor::first(
            Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0).unwrap(),
            t(1, 0, 0, 0),
        );
        assert_eq!(
            c.plan(t(1, 0, 0, 0)),
            Plan::Changed {
                min_last_modified: ETSY_EPOCH_FLOOR,
                offset: 0
            }
        );
    }

    #[test]
    fn round_trips_and_refuses_what_it_cannot_read() {
        let c = PollCursor::first(t(1, 0, 0, 0), t(27, 0, 0, 0));
        assert_eq!(PollCursor::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            PollCursor::decode(&Cursor("2026-01-01".into()))
                .unwrap_err()
                .class(),
            "config"
        );
        let mut v2 = c.clone();
        v2.v = 2;
        assert!(
            PollCursor::decode(&v2.encode())
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
    }
}
