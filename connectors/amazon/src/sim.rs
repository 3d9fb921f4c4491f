//! The simulated Amazon seller (feature `sim`), for `switchyard demo`,
//! `replay` and the daemon's tests. The recorded answers are enough for
//! every call (the demo scenario's pages match any window), so this side
//! answers nothing itself: it puts the account's shared secret on demo
//! notifications, as the EventBridge connection would, and counts the
//! writes for the demo's summary.

use std::any::Any;

use switchyard_contract::AccountSettings;
use switchyard_contract::testkit::{
    ChannelSim, HttpRequest, HttpResponse, SimMode, WebhookFixture,
};

use crate::AmazonSettings;
use crate::endpoints::{FEEDS, LISTINGS_ITEMS};
use crate::webhook::SECRET_HEADER;

/// The seller's side: nothing it holds changes with the calls.
#[derive(Debug, Default)]
pub struct Seller;

/// The simulated seller, in either mode.
pub fn simulator(_mode: SimMode) -> Option<Box<dyn ChannelSim>> {
    Some(Box::new(Seller))
}

impl ChannelSim for Seller {
    fn answer(&mut self, _req: &HttpRequest) -> Option<HttpResponse> {
        None
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

    fn req(method: &str, path: &str) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn writes_count_patches_confirmations_and_feeds_but_not_reads() {
        let requests = [
            req("PATCH", "/listings/2021-08-01/items/SELLER1/SKU-1"),
            req("PATCH", "/listings/2021-08-01/items/SELLER1/SKU-2"),
            req("GET", "/listings/2021-08-01/items/SELLER1/SKU-1"),
            req("POST", "/orders/v0/orders/111-1/shipmentConfirmation"),
            req("GET", "/orders/2026-01-01/orders"),
        ];
        assert_eq!(
            Seller.writes(&requests),
            [
                ("stock levels (Amazon patchListingsItem)".to_owned(), 2),
                ("tracking numbers (Amazon confirmShipment)".to_owned(), 1),
            ]
        );
    }
}
