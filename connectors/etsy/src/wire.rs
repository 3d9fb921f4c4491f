//! Etsy Open API v3 shapes, exactly as far as this crate reads or writes them:
//! receipts with their transactions, shipments and refunds; listing
//! inventory as read and as written back; the token endpoint's answer; the
//! webhook payload; Etsy's error body.
//!
//! What is read is lenient on purpose: `#[serde(default)]` everywhere, unknown
//! fields accepted, numbers kept as `serde_json::Number` where Etsy's type is
//! not to be trusted (the published spec declares no required field, and
//! real receipts send `null` where the spec promises a string). What a
//! receipt cannot do without is checked in `normalize`, where the error names
//! the field. What is written ([`InventoryUpdate`]) has exactly the fields
//! `updateListingInventory` declares, so nothing read-only goes back.

use serde::{Deserialize, Serialize};
use serde_json::Number;

/// Etsy's money: an integer `amount` over an integer `divisor`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct Money {
    pub amount: Option<Number>,
    pub divisor: Option<Number>,
    pub currency_code: Option<String>,
}

/// `getShopReceipts`: a page of receipts. Results stay raw JSON: each is
/// kept as the order's audit payload and decoded on its own, so that one
/// unreadable receipt does not fail the page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ReceiptsPage {
    pub count: Option<u64>,
    pub results: Vec<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Receipt {
    pub receipt_id: Option<Number>,
    pub name: Option<String>,
    pub first_line: Option<String>,
    pub second_line: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country_iso: Option<String>,
    pub status: Option<String>,
    pub buyer_email: Option<String>,
    pub message_from_buyer: Option<String>,
    pub is_paid: Option<bool>,
    pub is_shipped: Option<bool>,
    pub create_timestamp: Option<i64>,
    pub created_timestamp: Option<i64>,
    pub update_timestamp: Option<i64>,
    pub updated_timestamp: Option<i64>,
    pub is_gift: Option<bool>,
    pub gift_message: Option<String>,
    pub gift_sender: Option<String>,
    pub grandtotal: Option<Money>,
    pub subtotal: Option<Money>,
    pub total_price: Option<Money>,
    pub total_shipping_cost: Option<Money>,
    pub total_tax_cost: Option<Money>,
    pub total_vat_cost: Option<Money>,
    pub discount_amt: Option<Money>,
    pub gift_wrap_price: Option<Money>,
    pub shipments: Vec<ReceiptShipment>,
    pub transactions: Vec<Transaction>,
    pub refunds: Vec<Refund>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ReceiptShipment {
    pub receipt_shipping_id: Option<Number>,
    pub shipment_notification_timestamp: Option<i64>,
    pub carrier_name: Option<String>,
    pub tracking_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Transaction {
    pub transaction_id: Option<Number>,
    pub title: Option<String>,
    pub quantity: Option<i64>,
    pub listing_id: Option<Number>,
    pub product_id: Option<Number>,
    pub sku: Option<String>,
    pub price: Option<Money>,
    pub shipped_timestamp: Option<i64>,
    pub variations: Vec<Variation>,
    pub product_data: Vec<PropertyValue>,
    pub shipping_method: Option<String>,
    pub shipping_upgrade: Option<String>,
    /// Declared `number` (a float in the shop's currency), not Money.
    pub buyer_coupon: Option<Number>,
    pub shop_coupon: Option<Number>,
}

/// A variation or personalization the buyer chose.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Variation {
    pub property_id: Option<Number>,
    pub formatted_name: Option<String>,
    pub formatted_value: Option<String>,
}

/// A listing property value, as a transaction's `product_data` and an
/// inventory product's `property_values` carry it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct PropertyValue {
    pub property_id: Option<Number>,
    pub property_name: Option<String>,
    pub scale_id: Option<Number>,
    pub value_ids: Vec<Number>,
    pub values: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Refund {
    pub amount: Option<Money>,
    pub created_timestamp: Option<i64>,
    pub status: Option<String>,
}

// ---------------------------------------------------------------------------
// listings

/// `getListingsByShop`: listing ids and the SKUs of each (present for the
/// shop's owner with an OAuth token).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListingsPage {
    pub count: Option<u64>,
    pub results: Vec<ListingSkus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListingSkus {
    pub listing_id: Option<Number>,
    pub skus: Vec<String>,
}

/// `getListingInventory` (with `includes=Listing`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Inventory {
    pub products: Vec<InventoryProduct>,
    pub price_on_property: Option<Vec<Number>>,
    pub quantity_on_property: Option<Vec<Number>>,
    pub sku_on_property: Option<Vec<Number>>,
    pub readiness_state_on_property: Option<Vec<Number>>,
    pub listing: Option<ListingState>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListingState {
    pub state: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct InventoryProduct {
    pub sku: Option<String>,
    pub is_deleted: Option<bool>,
    pub offerings: Vec<InventoryOffering>,
    pub property_values: Vec<PropertyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct InventoryOffering {
    pub quantity: Option<i64>,
    pub is_enabled: Option<bool>,
    pub is_deleted: Option<bool>,
    /// Money when read; older answers carried a plain number.
    pub price: Option<serde_json::Value>,
    pub readiness_state_id: Option<Number>,
}

/// The `updateListingInventory` body: every field it declares, nothing else.
#[derive(Debug, Serialize)]
pub(crate) struct InventoryUpdate {
    pub products: Vec<ProductUpdate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_on_property: Option<Vec<Number>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity_on_property: Option<Vec<Number>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku_on_property: Option<Vec<Number>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_state_on_property: Option<Vec<Number>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ProductUpdate {
    pub sku: Option<String>,
    pub property_values: Vec<PropertyValueUpdate>,
    pub offerings: Vec<OfferingUpdate>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PropertyValueUpdate {
    pub property_id: Number,
    pub value_ids: Vec<Number>,
    pub scale_id: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_name: Option<String>,
    pub values: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct OfferingUpdate {
    /// The one float in this crate: Etsy's write path takes the price as
    /// `amount / divisor`, converted at this edge only.
    pub price: f64,
    pub quantity: i64,
    pub is_enabled: bool,
    pub readiness_state_id: Option<Number>,
}

// ---------------------------------------------------------------------------
// auth, webhooks, errors

/// The token endpoint's answer to a refresh grant.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TokenAnswer {
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
    pub refresh_token: Option<String>,
}

/// Etsy's webhook body: flat, naming the resource to fetch.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WebhookPayload {
    pub event_type: Option<String>,
    pub resource_url: Option<String>,
    pub shop_id: Option<Number>,
}

/// `{"error": "..."}` (API) or `{"error": "...", "error_description": "..."}`
/// (token endpoint).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorBody {
    pub error: Option<String>,
    pub error_description: Option<String>,
}
