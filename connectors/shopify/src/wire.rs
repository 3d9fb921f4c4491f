//! Shopify's wire shapes, exactly as far as this crate reads them: GraphQL
//! Admin API nodes (camelCase, from polling and look-ups) and the REST order
//! resource (snake_case, the body of `orders/*` webhooks).
//!
//! Everything here is lenient on purpose: `#[serde(default)]` everywhere and
//! unknown fields accepted, because Shopify adds fields in every version and a
//! field we do not read must never fail an order. What an order cannot do
//! without (its id, timestamps, currency) is checked in `normalize`, where the
//! error can name the field. These types never leave the crate.

use serde::{Deserialize, Deserializer};

// ---------------------------------------------------------------------------
// GraphQL envelope

/// A GraphQL response before its `data` is decoded into a concrete type.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GqlEnvelope {
    pub data: Option<serde_json::Value>,
    pub errors: Vec<GqlError>,
    pub extensions: Option<GqlExtensions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GqlError {
    pub message: String,
    pub path: Option<Vec<serde_json::Value>>,
    pub extensions: Option<GqlErrorExtensions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GqlErrorExtensions {
    pub code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GqlExtensions {
    pub cost: Option<GqlCost>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlCost {
    pub requested_query_cost: Option<f64>,
    pub actual_query_cost: Option<f64>,
    pub throttle_status: Option<GqlThrottleStatus>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

// ---------------------------------------------------------------------------
// GraphQL data shapes

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlConnection<T> {
    pub nodes: Vec<T>,
    pub page_info: GqlPageInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlPageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

/// `data` of the orders page query. Nodes stay raw JSON: each is kept as the
/// order's audit payload and decoded on its own.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OrdersPageData {
    pub orders: GqlConnection<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OrderData {
    pub order: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlMoneyV2 {
    pub amount: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlMoneyBag {
    pub shop_money: GqlMoneyV2,
    pub presentment_money: GqlMoneyV2,
}

/// The order node as `graphql::ORDER_FIELDS` selects it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlOrder {
    pub id: String,
    pub name: Option<String>,
    pub created_at: Option<String>,
    pub processed_at: Option<String>,
    pub updated_at: Option<String>,
    pub cancelled_at: Option<String>,
    pub currency_code: Option<String>,
    pub presentment_currency_code: Option<String>,
    pub display_financial_status: Option<String>,
    pub display_fulfillment_status: Option<String>,
    pub taxes_included: bool,
    pub tags: Vec<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub note: Option<String>,
    pub test: bool,
    /// The order's attributes (REST `note_attributes`): cart fields a theme
    /// or app adds, gift messages among them.
    #[serde(deserialize_with = "null_default")]
    pub custom_attributes: Vec<GqlAttribute>,
    pub total_price_set: Option<GqlMoneyBag>,
    pub total_shipping_price_set: Option<GqlMoneyBag>,
    pub total_tax_set: Option<GqlMoneyBag>,
    pub total_discounts_set: Option<GqlMoneyBag>,
    pub total_refunded_set: Option<GqlMoneyBag>,
    pub customer: Option<GqlCustomer>,
    pub shipping_address: Option<GqlAddress>,
    pub shipping_lines: GqlConnection<GqlShippingLine>,
    pub line_items: GqlConnection<GqlLineItem>,
    pub fulfillments_count: Option<GqlCount>,
    pub fulfillments: Vec<GqlFulfillment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlCount {
    pub count: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlCustomer {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub default_email_address: Option<GqlEmail>,
    pub default_phone_number: Option<GqlPhone>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlEmail {
    pub email_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlPhone {
    pub phone_number: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlAddress {
    pub name: Option<String>,
    pub company: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub province_code: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    pub country_code_v2: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlShippingLine {
    pub title: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlLineItem {
    pub id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub quantity: i64,
    /// Ordered, less refunded and removed units.
    pub current_quantity: Option<i64>,
    pub is_gift_card: bool,
    pub requires_shipping: Option<bool>,
    pub original_unit_price_set: Option<GqlMoneyBag>,
    #[serde(deserialize_with = "null_default")]
    pub discount_allocations: Vec<GqlDiscountAllocation>,
    #[serde(deserialize_with = "null_default")]
    pub tax_lines: Vec<GqlTaxLine>,
    #[serde(deserialize_with = "null_default")]
    pub custom_attributes: Vec<GqlAttribute>,
    pub variant: Option<GqlVariant>,
}

/// `data` of the query that reads the rest of an order's line items.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OrderLinesData {
    pub order: Option<OrderLines>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct OrderLines {
    pub line_items: GqlConnection<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GqlAttribute {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlDiscountAllocation {
    pub allocated_amount_set: Option<GqlMoneyBag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlTaxLine {
    pub price_set: Option<GqlMoneyBag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlVariant {
    pub id: Option<String>,
    pub sku: Option<String>,
    pub inventory_item: Option<GqlId>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GqlId {
    pub id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlFulfillment {
    pub id: String,
    pub status: Option<String>,
    pub created_at: Option<String>,
    pub tracking_info: Vec<GqlTrackingInfo>,
    pub fulfillment_line_items: GqlConnection<GqlFulfillmentLineItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlTrackingInfo {
    pub company: Option<String>,
    pub number: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlFulfillmentLineItem {
    pub quantity: Option<i64>,
    pub line_item: GqlId,
}

// --- stock push

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct VariantsBySkuData {
    pub product_variants: GqlConnection<GqlVariant>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PrimaryLocationData {
    pub location: Option<GqlId>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct SetQuantitiesData {
    pub inventory_set_quantities: Option<SetQuantitiesPayload>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct SetQuantitiesPayload {
    pub inventory_adjustment_group: Option<GqlId>,
    pub user_errors: Vec<GqlUserError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GqlUserError {
    pub field: Option<Vec<String>>,
    pub message: String,
    pub code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct AvailableData {
    pub inventory_item: Option<AvailableItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct AvailableItem {
    pub inventory_level: Option<AvailableLevel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AvailableLevel {
    pub quantities: Vec<NamedQuantity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NamedQuantity {
    pub name: String,
    pub quantity: i64,
}

// --- tracking push

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FulfillmentStateData {
    pub order: Option<FulfillmentStateOrder>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct FulfillmentStateOrder {
    pub id: String,
    pub fulfillments: Vec<GqlFulfillment>,
    pub fulfillment_orders: GqlConnection<GqlFulfillmentOrder>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlFulfillmentOrder {
    pub id: String,
    pub status: Option<String>,
    pub supported_actions: Vec<GqlSupportedAction>,
    pub line_items: GqlConnection<GqlFulfillmentOrderLineItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GqlSupportedAction {
    pub action: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GqlFulfillmentOrderLineItem {
    pub id: String,
    pub remaining_quantity: i64,
    pub sku: Option<String>,
    pub line_item: GqlId,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct FulfillmentCreateData {
    pub fulfillment_create: Option<FulfillmentCreatePayload>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct FulfillmentCreatePayload {
    pub fulfillment: Option<GqlId>,
    pub user_errors: Vec<GqlUserError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ShopData {
    pub shop: Option<ShopName>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ShopName {
    pub name: String,
}

// ---------------------------------------------------------------------------
// REST order resource (webhook bodies)

/// The REST order resource as `orders/*` webhooks send it (the bare object,
/// not wrapped in `{"order": …}`). `id` has no default: a body without one is
/// not an order.
#[derive(Debug, Deserialize)]
pub(crate) struct RestOrder {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub processed_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub cancelled_at: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub presentment_currency: Option<String>,
    #[serde(default)]
    pub financial_status: Option<String>,
    #[serde(default)]
    pub fulfillment_status: Option<String>,
    #[serde(default)]
    pub taxes_included: Option<bool>,
    /// Comma-separated, as REST gives them.
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub note_attributes: Vec<RestAttribute>,
    #[serde(default)]
    pub test: Option<bool>,
    #[serde(default, deserialize_with = "loose_string")]
    pub total_price: Option<String>,
    #[serde(default)]
    pub total_price_set: Option<RestMoneySet>,
    #[serde(default)]
    pub total_shipping_price_set: Option<RestMoneySet>,
    #[serde(default, deserialize_with = "loose_string")]
    pub total_tax: Option<String>,
    #[serde(default)]
    pub total_tax_set: Option<RestMoneySet>,
    #[serde(default, deserialize_with = "loose_string")]
    pub total_discounts: Option<String>,
    #[serde(default)]
    pub total_discounts_set: Option<RestMoneySet>,
    #[serde(default)]
    pub customer: Option<RestCustomer>,
    #[serde(default)]
    pub shipping_address: Option<RestAddress>,
    #[serde(default)]
    pub shipping_lines: Vec<RestShippingLine>,
    #[serde(default)]
    pub line_items: Vec<RestLineItem>,
    #[serde(default)]
    pub fulfillments: Vec<RestFulfillment>,
    #[serde(default)]
    pub refunds: Vec<RestRefund>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestMoney {
    #[serde(deserialize_with = "loose_string")]
    pub amount: Option<String>,
    pub currency_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestMoneySet {
    pub shop_money: RestMoney,
    pub presentment_money: RestMoney,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestCustomer {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestAddress {
    pub name: Option<String>,
    pub company: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub province_code: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestShippingLine {
    pub title: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub price: Option<String>,
    pub price_set: Option<RestMoneySet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestLineItem {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub title: Option<String>,
    pub quantity: i64,
    /// Ordered, less refunded and removed units; older payloads lack it.
    pub current_quantity: Option<i64>,
    pub gift_card: Option<bool>,
    pub requires_shipping: Option<bool>,
    #[serde(deserialize_with = "loose_string")]
    pub price: Option<String>,
    pub price_set: Option<RestMoneySet>,
    #[serde(deserialize_with = "null_default")]
    pub properties: Vec<RestAttribute>,
    #[serde(deserialize_with = "null_default")]
    pub discount_allocations: Vec<RestAmount>,
    #[serde(deserialize_with = "null_default")]
    pub tax_lines: Vec<RestTaxLine>,
}

/// A line property or an order's note attribute: `{ "name", "value" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestAttribute {
    #[serde(deserialize_with = "loose_text")]
    pub name: Option<String>,
    #[serde(deserialize_with = "loose_text")]
    pub value: Option<String>,
}

/// A discount allocation: its amount, plain and as a money set.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestAmount {
    #[serde(deserialize_with = "loose_string")]
    pub amount: Option<String>,
    pub amount_set: Option<RestMoneySet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestTaxLine {
    #[serde(deserialize_with = "loose_string")]
    pub price: Option<String>,
    pub price_set: Option<RestMoneySet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestFulfillment {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub status: Option<String>,
    pub created_at: Option<String>,
    pub tracking_company: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_numbers: Vec<String>,
    pub tracking_url: Option<String>,
    pub tracking_urls: Vec<String>,
    pub line_items: Vec<RestFulfillmentLine>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestFulfillmentLine {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub quantity: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestRefund {
    pub transactions: Vec<RestTransaction>,
    #[serde(deserialize_with = "null_default")]
    pub refund_line_items: Vec<RestRefundLine>,
}

/// Units of one line a refund covers.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestRefundLine {
    #[serde(deserialize_with = "id_string")]
    pub line_item_id: String,
    pub quantity: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RestTransaction {
    pub kind: Option<String>,
    pub status: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub amount: Option<String>,
    pub currency: Option<String>,
}

/// REST ids are JSON numbers; some tooling (and Shopify's own generated
/// examples) sends them as strings. Either becomes the decimal string.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Null => Ok(String::new()),
        other => Err(serde::de::Error::custom(format!(
            "id must be a number or a string, not {other}"
        ))),
    }
}

/// REST amounts are strings, but a few fields (refund subtotals) are JSON
/// numbers; those are taken as serde_json prints them (shortest round-trip
/// form, `195.66`), which is exact for the two-decimal amounts Shopify sends.
fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected an amount, got {other}"
        ))),
    }
}

/// `null` read as the empty value: Shopify sends `null` for lists it has
/// nothing in (older payloads, some apps), and a list we merely read must
/// not fail the order.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Free text the buyer or an app typed (line properties, note attributes):
/// a string as is, a number or boolean as printed, anything else as its
/// JSON text. Never an error: a property is never worth failing an order.
fn loose_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}
