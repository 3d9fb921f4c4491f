//! eBay's JSON shapes as this crate reads them: Sell Fulfillment orders and
//! shipping fulfilments, Sell Inventory offers and bulk results, the
//! Notification API's public key and envelope, the token endpoint and the
//! common error body. Lenient on purpose: every field is optional, unknown
//! fields are ignored, and amounts and quantities are accepted as strings or
//! numbers, so that a field eBay adds or leaves out never fails a whole page;
//! the normalizer decides what is missing.

use serde::{Deserialize, Deserializer};

/// A JSON string or number, kept as the text it was.
fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// A JSON integer, or a string holding one; anything else is absent.
fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// eBay's `Amount`: `value` in `currency`, and, when eBay converted it, the
/// amount before conversion in `convertedFromCurrency`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Amount {
    #[serde(deserialize_with = "text_or_number")]
    pub value: Option<String>,
    pub currency: Option<String>,
    #[serde(deserialize_with = "text_or_number")]
    pub converted_from_value: Option<String>,
    pub converted_from_currency: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct OrderPage {
    #[serde(deserialize_with = "integer")]
    pub total: Option<i64>,
    pub orders: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Order {
    pub order_id: Option<String>,
    pub creation_date: Option<String>,
    pub last_modified_date: Option<String>,
    pub order_fulfillment_status: Option<String>,
    pub order_payment_status: Option<String>,
    pub buyer: Option<Buyer>,
    pub buyer_checkout_notes: Option<String>,
    pub pricing_summary: Option<PricingSummary>,
    pub cancel_status: Option<CancelStatus>,
    pub payment_summary: Option<PaymentSummary>,
    pub fulfillment_start_instructions: Vec<FulfillmentStartInstruction>,
    pub fulfillment_hrefs: Vec<String>,
    pub line_items: Vec<LineItem>,
    pub ebay_collect_and_remit_tax: Option<bool>,
    pub program: Option<Program>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Buyer {
    pub username: Option<String>,
    pub buyer_registration_address: Option<Contact>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Contact {
    pub full_name: Option<String>,
    pub company_name: Option<String>,
    pub contact_address: Option<Address>,
    pub primary_phone: Option<Phone>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Address {
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub county: Option<String>,
    pub state_or_province: Option<String>,
    pub postal_code: Option<String>,
    pub country_code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Phone {
    pub phone_number: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PricingSummary {
    pub price_subtotal: Option<Amount>,
    pub price_discount: Option<Amount>,
    pub delivery_cost: Option<Amount>,
    pub delivery_discount: Option<Amount>,
    pub tax: Option<Amount>,
    pub fee: Option<Amount>,
    pub adjustment: Option<Amount>,
    pub total: Option<Amount>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct CancelStatus {
    pub cancel_state: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PaymentSummary {
    pub refunds: Vec<OrderRefund>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct OrderRefund {
    pub amount: Option<Amount>,
    pub refund_status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct FulfillmentStartInstruction {
    pub fulfillment_instructions_type: Option<String>,
    pub ebay_supported_fulfillment: Option<bool>,
    pub shipping_step: Option<ShippingStep>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ShippingStep {
    pub ship_to: Option<Contact>,
    pub shipping_service_code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Program {
    pub fulfillment_program: Option<FulfillmentProgram>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct FulfillmentProgram {
    pub fulfilled_by: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct LineItem {
    pub line_item_id: Option<String>,
    pub legacy_item_id: Option<String>,
    pub legacy_variation_id: Option<String>,
    pub sku: Option<String>,
    pub title: Option<String>,
    #[serde(deserialize_with = "integer")]
    pub quantity: Option<i64>,
    pub line_item_cost: Option<Amount>,
    pub discounted_line_item_cost: Option<Amount>,
    pub total: Option<Amount>,
    pub line_item_fulfillment_status: Option<String>,
    /// `None` when eBay left the array out, which is not the same as empty.
    pub applied_promotions: Option<Vec<AppliedPromotion>>,
    pub taxes: Option<Vec<Tax>>,
    pub ebay_collect_and_remit_taxes: Option<Vec<Tax>>,
    pub refunds: Vec<LineItemRefund>,
    pub variation_aspects: Vec<NameValue>,
    pub gift_details: Option<GiftDetails>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct AppliedPromotion {
    pub discount_amount: Option<Amount>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Tax {
    pub amount: Option<Amount>,
    pub tax_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct LineItemRefund {
    pub amount: Option<Amount>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct NameValue {
    pub name: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GiftDetails {
    pub message: Option<String>,
}

/// `getShippingFulfillments`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Fulfillments {
    pub fulfillments: Vec<ShippingFulfillment>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ShippingFulfillment {
    pub fulfillment_id: Option<String>,
    pub shipment_tracking_number: Option<String>,
    pub shipping_carrier_code: Option<String>,
    pub shipped_date: Option<String>,
    pub line_items: Vec<LineItemReference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct LineItemReference {
    pub line_item_id: Option<String>,
    /// eBay's default when absent is 1.
    #[serde(deserialize_with = "integer")]
    pub quantity: Option<i64>,
}

/// `getOffers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Offers {
    pub offers: Vec<Offer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Offer {
    pub offer_id: Option<String>,
    pub sku: Option<String>,
    pub format: Option<String>,
    pub status: Option<String>,
    pub listing: Option<Listing>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Listing {
    pub listing_id: Option<String>,
}

/// `bulkUpdatePriceQuantity`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct BulkResponse {
    pub responses: Vec<PriceQuantityResponse>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PriceQuantityResponse {
    pub sku: Option<String>,
    pub offer_id: Option<String>,
    #[serde(deserialize_with = "integer")]
    pub status_code: Option<i64>,
    pub errors: Vec<ApiError>,
}

/// eBay's common error body: `{"errors": [...]}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    pub errors: Vec<ApiError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ApiError {
    #[serde(deserialize_with = "integer")]
    pub error_id: Option<i64>,
    pub message: Option<String>,
    pub long_message: Option<String>,
}

impl ApiError {
    pub fn describe(&self) -> String {
        let text = self
            .long_message
            .as_deref()
            .or(self.message.as_deref())
            .unwrap_or("no message");
        match self.error_id {
            Some(id) => format!("{id}: {text}"),
            None => text.to_owned(),
        }
    }
}

/// The token endpoint's answer, success or OAuth error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TokenAnswer {
    pub access_token: Option<String>,
    #[serde(deserialize_with = "integer")]
    pub expires_in: Option<i64>,
    pub refresh_token: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// `getPublicKey`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PublicKey {
    pub key: Option<String>,
    pub algorithm: Option<String>,
    pub digest: Option<String>,
}

/// The decoded `X-EBAY-SIGNATURE` header.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SignatureHeader {
    pub alg: Option<String>,
    pub kid: Option<String>,
    pub signature: Option<String>,
    pub digest: Option<String>,
}

/// A Notification API push.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Envelope {
    pub metadata: Option<Metadata>,
    pub notification: Option<Notification>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Metadata {
    pub topic: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Notification {
    pub notification_id: Option<String>,
    pub data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_quantities_are_read_as_text_or_number() {
        let a: Amount =
            serde_json::from_value(serde_json::json!({"value": 7.6, "currency": "USD"})).unwrap();
        assert_eq!(a.value.as_deref(), Some("7.6"));
        let a: Amount =
            serde_json::from_value(serde_json::json!({"value": "7.60", "currency": "USD"}))
                .unwrap();
        assert_eq!(a.value.as_deref(), Some("7.60"));
        let l: LineItem =
            serde_json::from_value(serde_json::json!({"quantity": "3", "extra": {"x": 1}}))
                .unwrap();
        assert_eq!(l.quantity, Some(3));
        assert!(l.taxes.is_none());
        let l: LineItem = serde_json::from_value(serde_json::json!({"taxes": []})).unwrap();
        assert_eq!(l.taxes.map(|t| t.len()), Some(0));
    }
}
