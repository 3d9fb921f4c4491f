//! Amazon's JSON shapes as this crate reads them: the Orders API 2026-01-01
//! order, the Listings Items and Feeds answers, the LWA token answer, the
//! SP-API error list and the `ORDER_CHANGE` notification. Lenient on
//! purpose: unknown fields are ignored and almost everything is optional,
//! so that a field Amazon adds or leaves out never stops a sync; the
//! normalizer decides what a missing value means and says so in a note.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Money {
    pub amount: Option<String>,
    pub currency_code: Option<String>,
}

/// A `searchOrders` answer; orders stay raw so that one unreadable order
/// is left out on its own instead of failing the page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchOrdersResponse {
    pub orders: Vec<serde_json::Value>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pagination {
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GetOrderResponse {
    pub order: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Order {
    pub order_id: String,
    pub created_time: Option<String>,
    pub last_updated_time: Option<String>,
    #[serde(default)]
    pub programs: Vec<String>,
    #[serde(default)]
    pub sales_channel: SalesChannel,
    pub buyer: Option<Buyer>,
    pub recipient: Option<Recipient>,
    pub proceeds: Option<OrderProceeds>,
    pub fulfillment: Option<OrderFulfillment>,
    #[serde(default)]
    pub order_items: Vec<OrderItem>,
    pub packages: Option<Vec<Package>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SalesChannel {
    pub marketplace_id: Option<String>,
    pub marketplace_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Buyer {
    pub buyer_name: Option<String>,
    pub buyer_email: Option<String>,
    pub buyer_company_name: Option<String>,
    pub buyer_purchase_order_number: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recipient {
    pub delivery_address: Option<Address>,
    pub delivery_preference: Option<DeliveryPreference>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Address {
    pub name: Option<String>,
    pub company_name: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub address_line3: Option<String>,
    pub city: Option<String>,
    pub district_or_county: Option<String>,
    pub state_or_region: Option<String>,
    pub municipality: Option<String>,
    pub postal_code: Option<String>,
    pub country_code: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryPreference {
    pub drop_off_location: Option<String>,
    pub address_instruction: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderProceeds {
    pub grand_total: Option<Money>,
    #[serde(default)]
    pub breakdowns: Vec<Breakdown>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Breakdown {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub subtotal: Option<Money>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderFulfillment {
    pub fulfillment_status: Option<String>,
    pub fulfilled_by: Option<String>,
    pub fulfillment_service_level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderItem {
    pub order_item_id: String,
    pub quantity_ordered: i64,
    pub measurement: Option<Measurement>,
    #[serde(default)]
    pub product: Product,
    pub proceeds: Option<ItemProceeds>,
    pub cancellation: Option<ItemCancellation>,
    pub fulfillment: Option<ItemFulfillment>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Measurement {
    pub unit: Option<String>,
    pub value: Option<serde_json::Number>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Product {
    pub title: Option<String>,
    pub seller_sku: Option<String>,
    pub condition: Option<Condition>,
    pub price: Option<ItemPrice>,
    pub customization: Option<Customization>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Condition {
    pub condition_type: Option<String>,
    pub condition_subtype: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemPrice {
    pub unit_price: Option<Money>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Customization {
    pub customized_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemProceeds {
    #[serde(default)]
    pub breakdowns: Vec<Breakdown>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemCancellation {
    pub cancellation_request: Option<CancelStep>,
    pub cancellation_execution: Option<CancelStep>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CancelStep {
    pub requester: Option<String>,
    pub cancelled_by: Option<String>,
    pub cancel_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemFulfillment {
    pub quantity_fulfilled: Option<i64>,
    pub quantity_unfulfilled: Option<i64>,
    pub packing: Option<Packing>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Packing {
    pub gift_option: Option<GiftOption>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GiftOption {
    pub gift_message: Option<String>,
    pub gift_wrap_level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Package {
    pub package_reference_id: Option<String>,
    pub created_time: Option<String>,
    pub package_status: Option<PackageStatus>,
    pub carrier: Option<String>,
    pub ship_time: Option<String>,
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub package_items: Vec<PackageItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PackageStatus {
    pub status: Option<String>,
    pub detailed_status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PackageItem {
    pub order_item_id: String,
    pub quantity: i64,
}

// ---------------------------------------------------------------------------
// errors, tokens

/// The SP-API error list (`{"errors": [...]}`), read only for messages.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorList {
    #[serde(default)]
    pub errors: Vec<ApiError>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    pub details: Option<String>,
}

/// Login with Amazon's answer to a refresh-token grant, or its error.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenAnswer {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

// ---------------------------------------------------------------------------
// listings and feeds

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListingsItem {
    #[serde(default)]
    pub summaries: Vec<ListingSummary>,
    #[serde(default)]
    pub fulfillment_availability: Vec<FulfillmentAvailability>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListingSummary {
    pub marketplace_id: Option<String>,
    pub product_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentAvailability {
    pub fulfillment_channel_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubmissionResponse {
    pub status: Option<String>,
    pub submission_id: Option<String>,
    #[serde(default)]
    pub issues: Vec<ListingIssue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListingIssue {
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FeedDocumentAnswer {
    pub feed_document_id: String,
    pub url: String,
    pub compression_algorithm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateFeedAnswer {
    pub feed_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Feed {
    pub processing_status: String,
    pub result_feed_document_id: Option<String>,
}

/// A JSON listings feed processing report (only what is acted on).
#[derive(Debug, Deserialize)]
pub(crate) struct ProcessingReport {
    #[serde(default)]
    pub issues: Vec<ReportIssue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReportIssue {
    pub message_id: Option<u64>,
    pub sku: Option<String>,
    pub code: Option<String>,
    pub severity: Option<String>,
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------
// notifications

/// An SP-API notification (the SQS message body, or an EventBridge event's
/// `detail`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Notification {
    pub notification_type: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    pub notification_metadata: Option<NotificationMetadata>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NotificationMetadata {
    pub notification_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OrderChange {
    pub seller_id: Option<String>,
    pub amazon_order_id: String,
}
