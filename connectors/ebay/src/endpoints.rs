//! Every eBay endpoint this crate calls, as paths under the account's
//! `base_url`, and the query strings it builds. The spec-conformance test
//! checks each recorded request against eBay's published OpenAPI files
//! (`spec/`), so a path or parameter spelt wrong here fails a test.
//!
//! | call | API | operation class |
//! | --- | --- | --- |
//! | `GET /sell/fulfillment/v1/order?filter=lastmodifieddate:[a..b]&limit=200&offset=N&fieldGroups=TAX_BREAKDOWN` (getOrders) | Fulfillment | poll |
//! | `GET /sell/fulfillment/v1/order/{id}?fieldGroups=TAX_BREAKDOWN` (getOrder) | Fulfillment | fetch |
//! | `GET /sell/fulfillment/v1/order?limit=1` (getOrders, `check`) | Fulfillment | lookup |
//! | `GET /sell/fulfillment/v1/order/{id}/shipping_fulfillment` (getShippingFulfillments) | Fulfillment | lookup |
//! | `POST /sell/fulfillment/v1/order/{id}/shipping_fulfillment` (createShippingFulfillment) | Fulfillment | push_tracking |
//! | `GET /sell/inventory/v1/offer?sku=…&marketplace_id=…` (getOffers) | Inventory | lookup |
//! | `POST /sell/inventory/v1/bulk_update_price_quantity` (bulkUpdatePriceQuantity) | Inventory | push_inventory |
//! | `GET /commerce/notification/v1/public_key/{kid}` (getPublicKey) | Notification | lookup |
//! | `POST {token_url}` refresh-token and client-credentials grants | Identity | auth |

use chrono::{DateTime, SecondsFormat, Utc};

pub const ORDERS: &str = "/sell/fulfillment/v1/order";
pub const BULK_UPDATE_PRICE_QUANTITY: &str = "/sell/inventory/v1/bulk_update_price_quantity";
pub const OFFERS: &str = "/sell/inventory/v1/offer";
pub const PUBLIC_KEY: &str = "/commerce/notification/v1/public_key";

/// Orders per getOrders page: eBay's maximum (a larger `limit` fails).
pub const ORDERS_PER_PAGE: u32 = 200;

/// Offers bulkUpdatePriceQuantity takes in one call: the `BulkPriceQuantity`
/// type allows 25 inventory items per call.
pub const SKUS_PER_BULK_UPDATE: usize = 25;

/// getOrders and getOrder with this field group include eBay-collected tax in
/// `pricingSummary.total` and the line totals.
pub const TAX_BREAKDOWN: &str = "TAX_BREAKDOWN";

/// The scope of the application token that reads notification signing keys.
pub const APP_SCOPE: &str = "https://api.ebay.com/oauth/api_scope";

/// Which daily call budget a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Fulfillment,
    Inventory,
    Notification,
}

impl Api {
    pub const ALL: [Api; 3] = [Api::Fulfillment, Api::Inventory, Api::Notification];

    pub fn as_str(self) -> &'static str {
        match self {
            Api::Fulfillment => "fulfillment",
            Api::Inventory => "inventory",
            Api::Notification => "notification",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// eBay's timestamp form: UTC with milliseconds (`2026-11-27T05:01:02.000Z`).
pub fn ebay_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Percent-encodes a query value the way eBay's examples do: `[`, `]`, `{`,
/// `|`, `}` and the rest encoded, `:` `,` `.` left as they are.
pub fn encode(value: &str) -> String {
    encode_keeping(value, b":,")
}

/// Percent-encodes all but letters, digits and `-._~`, and `keep`.
fn encode_keeping(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path segment (an order id, a key id) made safe for a URL path.
pub fn segment(value: &str) -> String {
    encode(value)
}

/// The getOrders filter for orders last modified in `[start, end]`. Only
/// `lastmodifieddate`: with `creationdate` as well eBay ignores the
/// modification dates.
pub fn modified_filter(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    format!(
        "lastmodifieddate:[{}..{}]",
        ebay_time(start),
        ebay_time(end)
    )
}

/// The query of one getOrders page.
pub fn orders_page_query(start: DateTime<Utc>, end: DateTime<Utc>, offset: u32) -> String {
    format!(
        "filter={}&limit={ORDERS_PER_PAGE}&offset={offset}&fieldGroups={TAX_BREAKDOWN}",
        encode(&modified_filter(start, end))
    )
}

pub fn order_path(order_id: &str) -> String {
    format!("{ORDERS}/{}", segment(order_id))
}

pub fn fulfillments_path(order_id: &str) -> String {
    format!("{ORDERS}/{}/shipping_fulfillment", segment(order_id))
}

pub fn offers_query(sku: &str, marketplace_id: &str) -> String {
    format!(
        "sku={}&marketplace_id={}",
        encode(sku),
        encode(marketplace_id)
    )
}

pub fn public_key_path(kid: &str) -> String {
    format!("{PUBLIC_KEY}/{}", segment(kid))
}

/// `application/x-www-form-urlencoded` for the token requests.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_keeping(k, b""), encode_keeping(v, b"")))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_filter_is_encoded_as_ebay_shows_it() {
        let a = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let b = Utc.with_ymd_and_hms(2026, 11, 27, 5, 1, 2).unwrap();
        assert_eq!(
            orders_page_query(a, b, 400),
            "filter=lastmodifieddate:%5B2026-11-01T00:00:00.000Z..2026-11-27T05:01:02.000Z%5D&limit=200&offset=400&fieldGroups=TAX_BREAKDOWN"
        );
        assert_eq!(encode("a b/c?d&e=f"), "a%20b%2Fc%3Fd%26e%3Df");
        assert_eq!(
            order_path("12-34567-89012"),
            "/sell/fulfillment/v1/order/12-34567-89012"
        );
        assert_eq!(
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "v^1.1#i^1")
            ]),
            "grant_type=refresh_token&refresh_token=v%5E1.1%23i%5E1"
        );
        assert_eq!(
            form(&[("scope", "https://api.ebay.com/oauth/api_scope")]),
            "scope=https%3A%2F%2Fapi.ebay.com%2Foauth%2Fapi_scope"
        );
    }
}
