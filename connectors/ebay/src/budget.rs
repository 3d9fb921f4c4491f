//! eBay's limits that no response reports: daily call budgets per API and
//! the revisions a listing may take in a day, both counted here because eBay
//! sends no rate-limit headers on its REST APIs.
//!
//! eBay's day runs on US Pacific time (midnight to midnight, daylight saving
//! as in the US). The counts live in memory, per account: a restart starts
//! the day's count again from zero, calls other programs make with the same
//! app keyset are not seen, and several accounts that share one keyset share
//! eBay's quota, so their budgets should be set to add up to it.
//!
//! **Calls.** Every call is counted against its API's budget
//! ([`crate::endpoints::Api`]) and the count goes to the daemon's pacer as a
//! [`RateWindow::Daily`] [`RateHint`]: `capacity` the configured budget,
//! `remaining` what is left of it today, `restore_per_second` the budget over
//! a day's seconds. Polls, fetches and tracking pushes are paced by the
//! Fulfillment API's budget, stock pushes by the Inventory API's; look-ups,
//! which use all three APIs, by whichever budget has the smallest share
//! left. Each count goes to every operation its API's budget paces, not only
//! to the one that made the call ([`Counted::reports`]): the pacer keeps its
//! reports per operation, and tracking pushes would otherwise learn what
//! polls and fetches spent only from their own next answer, after one went
//! out into the reserve kept for them. The pacer holds pushes back when a
//! budget runs low. Each count is stamped with when it was taken, under the
//! count's lock: answers read at once on two threads can reach the pacer in
//! the other order than they were counted, and the pacer drops a report
//! taken before the one in force arrived when it shows more left (see
//! [`Counted`]).
//!
//! **Revisions.** A listing revised [`crate::config::EBAY_REVISIONS_PER_LISTING`]
//! times in a day is blocked by eBay until the next. Switchyard spends at
//! most `listing_revisions_per_day` per listing: a quarter of it at once,
//! the rest accruing evenly over the Pacific day, so a burst of sales still
//! reaches eBay at once and a listing whose stock changes all day long is
//! revised about every seven minutes rather than blocked by noon. A push
//! that would go over is answered `RateLimited` with the time until the next
//! revision is allowed; the daemon keeps only the newest level meanwhile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use switchyard_contract::{Operation, RateHint, RateWindow};

use crate::endpoints::Api;

const DAY_SECONDS: f64 = 86_400.0;
const DAY_MILLIS: u64 = 86_400_000;

/// The `n`th Sunday of a month.
fn nth_sunday(year: i32, month: u32, n: u32) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let to_sunday = (7 - first.weekday().num_days_from_sunday()) % 7;
    first.checked_add_days(chrono::Days::new(u64::from(to_sunday + 7 * (n - 1))))
}

/// Hours to add to UTC for US Pacific time at `t`: −7 from the second Sunday
/// of March, 02:00 PST, to the first Sunday of November, 02:00 PDT, else −8.
pub fn pacific_offset_hours(t: DateTime<Utc>) -> i64 {
    let year = t.year();
    let at = |d: Option<NaiveDate>, hour: u32| {
        d.and_then(|d| d.and_hms_opt(hour, 0, 0))
            .map(|n| Utc.from_utc_datetime(&n))
    };
    match (
        at(nth_sunday(year, 3, 2), 10),
        at(nth_sunday(year, 11, 1), 9),
    ) {
        (Some(start), Some(end)) if t >= start && t < end => -7,
        _ => -8,
    }
}

/// The Pacific calendar day `t` falls on.
pub fn pacific_day(t: DateTime<Utc>) -> NaiveDate {
    (t + chrono::Duration::hours(pacific_offset_hours(t))).date_naive()
}

/// When the Pacific day of `t` ends.
pub fn next_pacific_midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    let next = pacific_day(t)
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| Utc.from_utc_datetime(&n));
    let Some(local_midnight_as_utc) = next else {
        return t + chrono::Duration::days(1);
    };
    // Midnight local is `-offset` hours later in UTC; the offset is the one
    // in force just before that midnight.
    let guess = local_midnight_as_utc + chrono::Duration::hours(8);
    local_midnight_as_utc - chrono::Duration::hours(pacific_offset_hours(guess))
}

fn until(later: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (later - now).to_std().unwrap_or(Duration::ZERO)
}

/// One call counted: what is left of its API's budget and of the tightest
/// one, and when the count was taken (tokio's clock). eBay's answers carry no
/// limits, so the count is the report, and it is written when it is taken:
/// an answer read late counts every call read before it and shows less left
/// (or a new day), never an older, more generous figure. What can be stale
/// is the count itself on its way to the pacer, which `at` lets it tell.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    pub api: Api,
    pub own: RateHint,
    pub tightest: RateHint,
    pub at: tokio::time::Instant,
}

impl Counted {
    /// The report each operation paced by this count gets: the counted
    /// API's budget for the operations whose calls spend only it, the
    /// tightest budget for look-ups, which spend all three.
    pub fn reports(self) -> impl Iterator<Item = (Operation, RateHint)> {
        Operation::ALL
            .into_iter()
            .filter_map(move |operation| match spends(operation) {
                Spends::One(api) if api == self.api => Some((operation, self.own)),
                Spends::All => Some((operation, self.tightest)),
                Spends::One(_) | Spends::None => None,
            })
    }
}

/// Which daily budgets an operation's calls spend.
enum Spends {
    One(Api),
    All,
    None,
}

fn spends(operation: Operation) -> Spends {
    match operation {
        Operation::Poll | Operation::Fetch | Operation::PushTracking => {
            Spends::One(Api::Fulfillment)
        }
        Operation::PushInventory => Spends::One(Api::Inventory),
        Operation::Lookup => Spends::All,
        // Token grants go to eBay's Identity API, which no budget counts.
        Operation::Auth => Spends::None,
    }
}

/// Calls made today against each API's daily budget.
#[derive(Debug)]
pub(crate) struct DailyBudget {
    limits: [u32; 3],
    used: Mutex<(NaiveDate, [u32; 3])>,
}

impl DailyBudget {
    pub fn new(fulfillment: u32, inventory: u32, notification: u32) -> Self {
        DailyBudget {
            limits: [fulfillment, inventory, notification],
            used: Mutex::new((NaiveDate::MIN, [0; 3])),
        }
    }

    pub fn limit(&self, api: Api) -> u32 {
        self.limits[api.index()]
    }

    /// Counts one call made at `now` and says what is left of the day.
    pub fn count(&self, api: Api, now: DateTime<Utc>) -> Counted {
        let day = pacific_day(now);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.0 != day {
            *used = (day, [0; 3]);
        }
        let n = &mut used.1[api.index()];
        *n = n.saturating_add(1);
        Counted {
            api,
            own: self.left(&used, api, now),
            tightest: self.tightest(&used, now),
            at: tokio::time::Instant::now(),
        }
    }

    /// What is left of `api`'s budget on `now`'s day, after `used`.
    fn left(&self, used: &(NaiveDate, [u32; 3]), api: Api, now: DateTime<Utc>) -> RateHint {
        let n = if used.0 == pacific_day(now) {
            used.1[api.index()]
        } else {
            0
        };
        let limit = self.limit(api);
        RateHint {
            capacity: limit,
            remaining: limit.saturating_sub(n),
            restore_per_second: f64::from(limit) / DAY_SECONDS,
            observed_at: now,
            window: RateWindow::Daily,
        }
    }

    /// What is left of the tightest budget (the smallest share left): what a
    /// look-up, which may use any of the APIs, is paced by.
    fn tightest(&self, used: &(NaiveDate, [u32; 3]), now: DateTime<Utc>) -> RateHint {
        let hint = |api: Api| self.left(used, api, now);
        let share = |h: &RateHint| f64::from(h.remaining) / f64::from(h.capacity.max(1));
        Api::ALL
            .iter()
            .map(|&api| hint(api))
            .fold(hint(Api::Fulfillment), |tightest, h| {
                if share(&h) < share(&tightest) {
                    h
                } else {
                    tightest
                }
            })
    }

    /// When the day's budget of `api` is spent: how long until it renews.
    pub fn spent(&self, api: Api, now: DateTime<Utc>) -> Option<Duration> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        (used.0 == pacific_day(now) && used.1[api.index()] >= self.limit(api))
            .then(|| until(next_pacific_midnight(now), now))
    }
}

/// Revisions switchyard made to each listing today.
#[derive(Debug)]
pub(crate) struct Revisions {
    per_day: u32,
    made: Mutex<(NaiveDate, HashMap<String, u32>)>,
}

impl Revisions {
    pub fn new(per_day: u32) -> Self {
        Revisions {
            per_day: per_day.max(1),
            made: Mutex::new((NaiveDate::MIN, HashMap::new())),
        }
    }

    fn burst(&self) -> u32 {
        (self.per_day / 4).max(1)
    }

    /// Revisions allowed by `now` into the Pacific day: the burst, and the
    /// rest in proportion to the day gone by (whole milliseconds).
    fn allowed(&self, now: DateTime<Utc>) -> u32 {
        let day_start = next_pacific_midnight(now) - chrono::Duration::days(1);
        let elapsed = u64::try_from((now - day_start).num_milliseconds())
            .unwrap_or(0)
            .min(DAY_MILLIS);
        let spread = u64::from(self.per_day - self.burst());
        let accrued = u32::try_from(spread * elapsed / DAY_MILLIS).unwrap_or(u32::MAX);
        self.burst().saturating_add(accrued).min(self.per_day)
    }

    /// `Ok` when `listing` may be revised now, else how long until it may.
    pub fn check(&self, listing: &str, now: DateTime<Utc>) -> Result<(), Duration> {
        let made = {
            let mut m = self.made.lock().unwrap_or_else(|e| e.into_inner());
            if m.0 != pacific_day(now) {
                *m = (pacific_day(now), HashMap::new());
            }
            m.1.get(listing).copied().unwrap_or(0)
        };
        if made < self.allowed(now) {
            return Ok(());
        }
        let midnight = next_pacific_midnight(now);
        if made >= self.per_day {
            return Err(until(midnight, now));
        }
        // The moment the accrued allowance reaches `made + 1`.
        let day_start = midnight - chrono::Duration::days(1);
        let needed = u64::from(made + 1 - self.burst());
        let spread = u64::from(self.per_day - self.burst()).max(1);
        let offset = (needed * DAY_MILLIS).div_ceil(spread);
        let at =
            day_start + chrono::Duration::milliseconds(i64::try_from(offset).unwrap_or(i64::MAX));
        Err(until(at, now).max(Duration::from_secs(1)))
    }

    /// Counts a revision of `listing` made at `now`.
    pub fn record(&self, listing: &str, now: DateTime<Utc>) {
        let mut m = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if m.0 != pacific_day(now) {
            *m = (pacific_day(now), HashMap::new());
        }
        *m.1.entry(listing.to_owned()).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn the_pacific_day_follows_us_daylight_saving() {
        // 2026: DST from Sunday 8 March to Sunday 1 November.
        assert_eq!(
            nth_sunday(2026, 3, 2).unwrap().weekday(),
            chrono::Weekday::Sun
        );
        assert_eq!(nth_sunday(2026, 3, 2).unwrap().day(), 8);
        assert_eq!(nth_sunday(2026, 11, 1).unwrap().day(), 1);
        assert_eq!(pacific_offset_hours(utc(2026, 1, 15, 12, 0)), -8);
        assert_eq!(pacific_offset_hours(utc(2026, 3, 8, 9, 59)), -8);
        assert_eq!(pacific_offset_hours(utc(2026, 3, 8, 10, 0)), -7);
        assert_eq!(pacific_offset_hours(utc(2026, 7, 1, 0, 0)), -7);
        assert_eq!(pacific_offset_hours(utc(2026, 11, 1, 8, 59)), -7);
        assert_eq!(pacific_offset_hours(utc(2026, 11, 1, 9, 0)), -8);
        // 07:59 UTC on 27 November is 23:59 PST on the 26th.
        assert_eq!(pacific_day(utc(2026, 11, 27, 7, 59)).day(), 26);
        assert_eq!(pacific_day(utc(2026, 11, 27, 8, 0)).day(), 27);
        assert_eq!(
            next_pacific_midnight(utc(2026, 11, 27, 7, 0)),
            utc(2026, 11, 27, 8, 0)
        );
        assert_eq!(
            next_pacific_midnight(utc(2026, 7, 4, 12, 0)),
            utc(2026, 7, 5, 7, 0)
        );
    }

    #[test]
    fn calls_are_counted_per_api_and_day_and_reported_as_daily_hints() {
        let b = DailyBudget::new(3, 10, 1);
        let t = utc(2026, 11, 27, 12, 0);
        let h = b.count(Api::Fulfillment, t).own;
        assert_eq!(
            (h.capacity, h.remaining, h.window),
            (3, 2, RateWindow::Daily)
        );
        assert!((h.restore_per_second - 3.0 / 86_400.0).abs() < 1e-12);
        b.count(Api::Fulfillment, t);
        assert_eq!(b.spent(Api::Fulfillment, t), None);
        assert_eq!(b.count(Api::Fulfillment, t).own.remaining, 0);
        // Spent until Pacific midnight (08:00 UTC the next day).
        assert_eq!(
            b.spent(Api::Fulfillment, t),
            Some(Duration::from_secs(20 * 3600))
        );
        let inventory = b.count(Api::Inventory, t);
        assert_eq!(inventory.own.remaining, 9);
        // Fulfillment has 0 of 3 left: the tightest.
        assert_eq!(
            (inventory.tightest.capacity, inventory.tightest.remaining),
            (3, 0)
        );
        // A new Pacific day starts over.
        let tomorrow = utc(2026, 11, 28, 8, 0);
        assert_eq!(b.spent(Api::Fulfillment, tomorrow), None);
        assert_eq!(b.count(Api::Fulfillment, tomorrow).own.remaining, 2);
    }

    #[test]
    fn a_count_is_reported_to_every_operation_its_budget_paces() {
        let b = DailyBudget::new(3, 10, 1);
        let t = utc(2026, 11, 27, 12, 0);
        b.count(Api::Fulfillment, t);
        let reported = |counted: Counted| {
            counted
                .reports()
                .map(|(operation, hint)| (operation, hint.capacity, hint.remaining))
                .collect::<Vec<_>>()
        };
        // A stock push's count: the Inventory budget to stock pushes; look-ups
        // get the tightest, Fulfillment's 2 of 3 left against 9 of 10.
        assert_eq!(
            reported(b.count(Api::Inventory, t)),
            [(Operation::Lookup, 3, 2), (Operation::PushInventory, 10, 9)]
        );
        // A poll's count: to fetches and tracking pushes as well.
        assert_eq!(
            reported(b.count(Api::Fulfillment, t)),
            [
                (Operation::Poll, 3, 1),
                (Operation::Fetch, 3, 1),
                (Operation::Lookup, 3, 1),
                (Operation::PushTracking, 3, 1)
            ]
        );
        // A signing key's count paces only look-ups: Notification's 0 of 1.
        assert_eq!(
            reported(b.count(Api::Notification, t)),
            [(Operation::Lookup, 1, 0)]
        );
    }

    #[test]
    fn a_listing_gets_a_burst_then_revisions_spread_over_the_day() {
        let r = Revisions::new(200);
        let midnight = utc(2026, 11, 27, 8, 0);
        for _ in 0..50 {
            r.check("110001", midnight).unwrap();
            r.record("110001", midnight);
        }
        let wait = r.check("110001", midnight).unwrap_err();
        // The 51st revision accrues after 1/150 of the day: 576 s.
        assert_eq!(wait, Duration::from_secs(576));
        assert!(
            r.check("110002", midnight).is_ok(),
            "other listings are not held"
        );
        r.check("110001", midnight + chrono::Duration::seconds(576))
            .unwrap();
        // Late in the day everything is allowed up to the cap, then nothing.
        let late = utc(2026, 11, 28, 7, 59);
        for _ in 50..200 {
            r.record("110001", late);
        }
        let wait = r.check("110001", late).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(r.check("110001", utc(2026, 11, 28, 8, 0)).is_ok());
    }
}
