//! Every Selling Partner API operation this crate calls: its path, the
//! switchyard budget it counts against, and Amazon's published usage plan
//! (the "Usage Plan" table of each operation in Amazon's OpenAPI models,
//! vendored under `spec/`). Paths and the datasets asked for live here as
//! constants, so that the spec-conformance test and the fixtures name the
//! same things the client sends.

use switchyard_contract::{Operation, RateLimit};

/// The Orders API 2026-01-01 `searchOrders` path.
pub const SEARCH_ORDERS: &str = "/orders/2026-01-01/orders";
/// `getOrder` (2026-01-01); append `/{orderId}`.
pub const GET_ORDER: &str = "/orders/2026-01-01/orders";
/// Listings Items `getListingsItem` / `patchListingsItem`; append `/{sellerId}/{sku}`.
pub const LISTINGS_ITEMS: &str = "/listings/2021-08-01/items";
/// Feeds API `createFeedDocument`.
pub const FEED_DOCUMENTS: &str = "/feeds/2021-06-30/documents";
/// Feeds API `createFeed`; `getFeed` appends `/{feedId}`.
pub const FEEDS: &str = "/feeds/2021-06-30/feeds";

/// Orders API v0 `confirmShipment` (not deprecated, unlike v0's reads).
pub fn confirm_shipment(order_id: &str) -> String {
    format!(
        "/orders/v0/orders/{}/shipmentConfirmation",
        segment(order_id)
    )
}

/// One path segment, percent-encoded (SKUs may hold any character).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The datasets a shipment read-back needs.
pub const READ_BACK_DATA: &str = "FULFILLMENT,PACKAGES";
/// What a listing look-up asks for: its product type and who fulfils it.
pub const LISTING_DATA: &str = "summaries,fulfillmentAvailability";

/// The datasets every order read asks for: buyer and recipient (personal
/// data, given where the app holds Amazon's roles), proceeds (the money),
/// fulfillment (status, who ships, per-item quantities, gift options),
/// packages (shipments with tracking) and cancellation (buyer requests).
/// Expense, promotion ids, tax registrations, payment executions and
/// fulfillment orders have no canonical field and are not asked for.
pub const INCLUDED_DATA: &str = "BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,PACKAGES,CANCELLATION";

/// Orders per `searchOrders` page: Amazon's maximum, because pages, not
/// orders, are what its one-call-in-three-minutes budget counts.
pub const ORDERS_PER_PAGE: u32 = 100;

/// The feed type of listings updates in bulk.
pub const JSON_LISTINGS_FEED: &str = "JSON_LISTINGS_FEED";
/// The content type declared for (and sent with) a listings feed document.
pub const FEED_CONTENT_TYPE: &str = "application/json; charset=UTF-8";

/// Login with Amazon's token endpoint, the default `token_url`.
pub const LWA_TOKEN_URL: &str = "https://api.amazon.com/auth/o2/token";

/// One Amazon operation, for pacing, rate-limit reports and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AmazonOp {
    SearchOrders,
    GetOrder,
    GetListingsItem,
    PatchListingsItem,
    CreateFeedDocument,
    CreateFeed,
    GetFeed,
    GetFeedDocument,
    ConfirmShipment,
    /// The LWA refresh-token exchange.
    Token,
}

impl AmazonOp {
    pub fn name(self) -> &'static str {
        match self {
            AmazonOp::SearchOrders => "searchOrders",
            AmazonOp::GetOrder => "getOrder",
            AmazonOp::GetListingsItem => "getListingsItem",
            AmazonOp::PatchListingsItem => "patchListingsItem",
            AmazonOp::CreateFeedDocument => "createFeedDocument",
            AmazonOp::CreateFeed => "createFeed",
            AmazonOp::GetFeed => "getFeed",
            AmazonOp::GetFeedDocument => "getFeedDocument",
            AmazonOp::ConfirmShipment => "confirmShipment",
            AmazonOp::Token => "LWA token",
        }
    }

    /// The switchyard budget the call is paced under. `getOrder` is one
    /// Amazon bucket whether it follows a notification or reads a shipment
    /// back, so both count as `Fetch`.
    pub fn class(self) -> Operation {
        match self {
            AmazonOp::SearchOrders => Operation::Poll,
            AmazonOp::GetOrder => Operation::Fetch,
            AmazonOp::GetListingsItem | AmazonOp::GetFeed | AmazonOp::GetFeedDocument => {
                Operation::Lookup
            }
            AmazonOp::PatchListingsItem | AmazonOp::CreateFeedDocument | AmazonOp::CreateFeed => {
                Operation::PushInventory
            }
            AmazonOp::ConfirmShipment => Operation::PushTracking,
            AmazonOp::Token => Operation::Auth,
        }
    }

    /// Amazon's published default usage plan (requests per second, burst).
    /// LWA publishes none; one a second is plenty for a refresh an hour.
    pub fn usage_plan(self) -> RateLimit {
        let (per_second, burst) = match self {
            AmazonOp::SearchOrders => (0.0056, 20),
            AmazonOp::GetOrder => (0.5, 30),
            AmazonOp::GetListingsItem => (5.0, 10),
            AmazonOp::PatchListingsItem => (5.0, 5),
            AmazonOp::CreateFeedDocument => (0.5, 15),
            AmazonOp::CreateFeed => (0.0083, 15),
            AmazonOp::GetFeed => (2.0, 15),
            AmazonOp::GetFeedDocument => (0.0222, 10),
            AmazonOp::ConfirmShipment => (2.0, 10),
            AmazonOp::Token => (1.0, 1),
        };
        RateLimit { per_second, burst }
    }

    /// Whether the call is one of its class's frequent ones, whose limits
    /// make up the class's pace. The others are made at most once per feed,
    /// and `createFeed`'s own plan (one feed every two minutes) keeps
    /// `createFeedDocument` and `getFeedDocument` within theirs; their
    /// throttling answers are rate limits all the same.
    pub fn sets_the_pace(self) -> bool {
        !matches!(
            self,
            AmazonOp::CreateFeedDocument | AmazonOp::CreateFeed | AmazonOp::GetFeedDocument
        )
    }

    /// Every operation this crate calls.
    pub const ALL: [AmazonOp; 10] = [
        AmazonOp::SearchOrders,
        AmazonOp::GetOrder,
        AmazonOp::GetListingsItem,
        AmazonOp::PatchListingsItem,
        AmazonOp::CreateFeedDocument,
        AmazonOp::CreateFeed,
        AmazonOp::GetFeed,
        AmazonOp::GetFeedDocument,
        AmazonOp::ConfirmShipment,
        AmazonOp::Token,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("MUG-RED_1.2~x"), "MUG-RED_1.2~x");
        assert_eq!(segment("a/b c%"), "a%2Fb%20c%25");
        assert_eq!(segment("Größe"), "Gr%C3%B6%C3%9Fe");
    }

    #[test]
    fn the_feed_steps_do_not_set_their_class_pace() {
        assert_eq!(AmazonOp::SearchOrders.class(), Operation::Poll);
        assert_eq!(AmazonOp::SearchOrders.usage_plan().burst, 20);
        assert_eq!(AmazonOp::GetFeed.class(), Operation::Lookup);
        assert!(AmazonOp::GetListingsItem.sets_the_pace());
        assert!(!AmazonOp::CreateFeed.sets_the_pace());
        assert!(!AmazonOp::GetFeedDocument.sets_the_pace());
    }
}
