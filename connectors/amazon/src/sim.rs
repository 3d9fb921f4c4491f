//! The simulated Amazon seller (feature `sim`), for `switchyard demo`,
//! `replay` and the daemon's tests. The recorded answers serve nearly every
//! call; this side adds what a recording cannot know:
//!
//! - **Notifications.** The demo's `ORDER_CHANGE` carries the account's
//!   shared secret in `X-Switchyard-Secret`, as the EventBridge connection
//!   would send it.
//! - **Backfill sweeps** (demo only). The demo scenario's pages match any
//!   window, so the first sync's backfill (a series of sweeps, a week or more
//!   each) would read the same orders once per sweep. The simulated seller's
//!   orders all changed recently: a sweep that ended more than [`RECENT`]
//!   ago finds none, and the sweep reaching the present reads the recorded
//!   pages.
//! - **The account check** (demo only). It asks for an order no seller has;
//!   Amazon answers 404, which the other scenarios recorded only behind an
//!   expired token.
//! - **Writes** counted for the demo's summary.

use std::any::Any;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use switchyard_contract::AccountSettings;
use switchyard_contract::testkit::{
    ChannelSim, HttpRequest, HttpResponse, SimMode, WebhookFixture,
};

use crate::endpoints::{FEEDS, GET_ORDER, LISTINGS_ITEMS, SEARCH_ORDERS};
use crate::webhook::SECRET_HEADER;
use crate::{AmazonSettings, NO_SUCH_ORDER};

/// How long ago the simulated seller's orders changed, at most.
pub const RECENT: Duration = Duration::hours(1);

/// The seller's side: nothing it holds changes with the calls.
#[derive(Debug)]
pub struct Seller {
    mode: SimMode,
}

/// The simulated seller. In replay mode it answers nothing itself: the
/// scenarios replay as recorded.
pub fn simulator(mode: SimMode) -> Option<Box<dyn ChannelSim>> {
    Some(Box::new(Seller { mode }))
}

impl Seller {
    /// A `searchOrders` sweep (its first page) that ended before the
    /// seller's orders changed: an empty page, as Amazon answers it.
    fn old_sweep(req: &HttpRequest, now: DateTime<Utc>) -> Option<HttpResponse> {
        if req.method != "GET" || req.path != SEARCH_ORDERS {
            return None;
        }
        let param = |name: &str| req.query.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        if param("paginationToken").is_some() {
            return None;
        }
        let before = DateTime::parse_from_rfc3339(param("lastUpdatedBefore")?).ok()?;
        (before.with_timezone(&Utc) < now - RECENT).then(|| {
            HttpResponse::json(200, &json!({ "orders": [] }))
                .with_header("x-amzn-RateLimit-Limit", "0.0056")
        })
    }

    /// The check's `getOrder` of an id no order has.
    fn unknown_order(req: &HttpRequest) -> Option<HttpResponse> {
        let asked = req.path.strip_prefix(GET_ORDER)?.strip_prefix('/')?;
        (req.method == "GET" && asked == NO_SUCH_ORDER).then(|| {
            HttpResponse::json(
                404,
                &json!({ "errors": [{ "code": "NotFound", "message": "Order not found" }] }),
            )
        })
    }
}

impl ChannelSim for Seller {
    fn answer(&mut self, req: &HttpRequest) -> Option<HttpResponse> {
        if self.mode != SimMode::Demo {
            return None;
        }
        Seller::old_sweep(req, Utc::now()).or_else(|| Seller::unknown_order(req))
    }

    fn sign_webhook(&self, settings: &dyn AccountSettings, webhook: &mut WebhookFixture) {
        let amazon = settings.as_any().downcast_ref::<AmazonSettings>();
        let Some(secret) = amazon.and_then(|s| s.webhook_secret.as_ref()) else {
            return;
        };
        webhook
            .headers
            .retain(|k, _| !k.eq_ignore_ascii_case(SECRET_HEADER));
        webhook
            .headers
            .insert(SECRET_HEADER.into(), secret.expose().to_owned());
    }

    fn writes(&self, requests: &[HttpRequest]) -> Vec<(String, usize)> {
        let (mut patches, mut confirmations, mut feeds) = (0, 0, 0);
        for r in requests {
            match r.method.as_str() {
                "PATCH" if r.path.starts_with(LISTINGS_ITEMS) => patches += 1,
                "POST" if r.path.ends_with("/shipmentConfirmation") => confirmations += 1,
                "POST" if r.path == FEEDS => feeds += 1,
                _ => {}
            }
        }
        [
            ("stock levels (Amazon patchListingsItem)", patches),
            ("tracking numbers (Amazon confirmShipment)", confirmations),
            ("listings feeds (Amazon JSON_LISTINGS_FEED)", feeds),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(label, n)| (label.to_owned(), n))
        .collect()
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, query: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn search(before: &str) -> HttpRequest {
        req(
            "GET",
            SEARCH_ORDERS,
            &[
                ("lastUpdatedAfter", "2026-11-01T00:00:00Z"),
                ("lastUpdatedBefore", before),
            ],
        )
    }

    #[test]
    fn writes_count_patches_confirmations_and_feeds_but_not_reads() {
        let requests = [
            req("PATCH", "/listings/2021-08-01/items/SELLER1/SKU-1", &[]),
            req("PATCH", "/listings/2021-08-01/items/SELLER1/SKU-2", &[]),
            req("GET", "/listings/2021-08-01/items/SELLER1/SKU-1", &[]),
            req("POST", "/orders/v0/orders/111-1/shipmentConfirmation", &[]),
            req("GET", SEARCH_ORDERS, &[]),
        ];
        let seller = Seller {
            mode: SimMode::Demo,
        };
        assert_eq!(
            seller.writes(&requests),
            [
                ("stock levels (Amazon patchListingsItem)".to_owned(), 2),
                ("tracking numbers (Amazon confirmShipment)".to_owned(), 1),
            ]
        );
    }

    #[test]
    fn only_the_sweep_reaching_the_present_reads_the_recorded_orders() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let old = Seller::old_sweep(&search("2026-11-08T00:00:00Z"), now).unwrap();
        assert_eq!(old.status, 200);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&old.body).unwrap(),
            json!({ "orders": [] })
        );
        // The last sweep ends a few minutes before now: the recorded pages.
        assert!(Seller::old_sweep(&search("2026-12-06T04:55:00Z"), now).is_none());
        // Later pages of a sweep always come from the recording.
        let mut next = search("2026-11-08T00:00:00Z");
        next.query
            .push(("paginationToken".into(), "demo-page-2".into()));
        assert!(Seller::old_sweep(&next, now).is_none());
    }

    #[test]
    fn the_check_finds_no_order_and_real_orders_come_from_the_recording() {
        let mut demo = Seller {
            mode: SimMode::Demo,
        };
        let probe = req("GET", &format!("{GET_ORDER}/{NO_SUCH_ORDER}"), &[]);
        assert_eq!(demo.answer(&probe).map(|r| r.status), Some(404));
        let real = req("GET", &format!("{GET_ORDER}/111-9000001-0000001"), &[]);
        assert!(demo.answer(&real).is_none());
        // A replay serves what was recorded, the check's answer included.
        let mut replay = Seller {
            mode: SimMode::Replay,
        };
        assert!(replay.answer(&probe).is_none());
        assert!(replay.answer(&search("2026-11-08T00:00:00Z")).is_none());
    }
}
