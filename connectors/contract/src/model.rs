//! The canonical order: the one JSON shape (`docs/canonical-order.md`) that every channel is
//! normalized into and that the store, the rules, the CLI and destinations use.
//! Money is `Decimal` with an ISO 4217 code; timestamps are UTC.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The closed set of channels. Adding a channel is one variant here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Shopify,
    Etsy,
    Ebay,
    Amazon,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Shopify,
        Channel::Etsy,
        Channel::Ebay,
        Channel::Amazon,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Shopify => "shopify",
            Channel::Etsy => "etsy",
            Channel::Ebay => "ebay",
            Channel::Amazon => "amazon",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that width and alignment in format strings apply.
        f.pad(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!("unknown channel {s:?}: expected one of shopify, etsy, ebay, amazon")
            })
    }
}

/// Where the order stands, across channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Not yet payable or paid; not to be shipped.
    Pending,
    /// Paid, nothing shipped.
    Ready,
    PartiallyShipped,
    Shipped,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Ready,
        OrderStatus::PartiallyShipped,
        OrderStatus::Shipped,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Ready => "ready",
            OrderStatus::PartiallyShipped => "partially_shipped",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Open orders are the ones rules may still change and that still need work.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Pending | OrderStatus::Ready | OrderStatus::PartiallyShipped
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}: expected one of pending, ready, partially_shipped, shipped, cancelled"
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    Voided,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 5] = [
        PaymentStatus::Pending,
        PaymentStatus::Paid,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Refunded,
        PaymentStatus::Voided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Voided => "voided",
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown payment {s:?}: expected one of pending, paid, partially_refunded, refunded, voided"
                )
            })
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

/// An ISO 4217 code: three upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn new(code: &str) -> Result<Self, String> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(code.to_owned()))
        } else {
            Err(format!(
                "invalid currency code {code:?}: expected three upper-case letters (ISO 4217)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits after the point that amounts in this currency carry (ISO 4217):
    /// none for the yen and its like, three for the dinars, else two.
    pub fn minor_units(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }

    /// One rendering per amount, whatever scale the channel printed it with
    /// (`"7.6"`, `"7.60"`, `"7.600"`): at least the currency's minor units,
    /// never fewer digits than the value has, so nothing is rounded away.
    pub fn scaled(&self, amount: Decimal) -> Decimal {
        let mut d = amount.normalize();
        if d.scale() < self.minor_units() {
            d.rescale(self.minor_units());
        }
        d
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Currency::new(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The order as placed, in the shop's (settlement) currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    #[serde(with = "rust_decimal::serde::str")]
    pub subtotal: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub shipping: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    /// The positive amount taken off.
    #[serde(with = "rust_decimal::serde::str")]
    pub discount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// What has been refunded so far.
    #[serde(with = "rust_decimal::serde::str")]
    pub refunded: Decimal,
}

impl Totals {
    /// Whether the channel's figures add up as the canonical `total` is defined.
    /// Checked: the figures come from channels, and `Decimal`'s operators
    /// panic past 28 digits; a sum out of range does not add up.
    pub fn adds_up(&self) -> bool {
        self.subtotal
            .checked_add(self.shipping)
            .and_then(|s| s.checked_add(self.tax))
            .and_then(|s| s.checked_sub(self.discount))
            .is_some_and(|s| s == self.total)
    }
}

/// What the buyer paid in their own currency, when it differs from the shop's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presentment {
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub name: Option<String>,
    pub company: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub line_id: String,
    pub sku: Option<String>,
    pub title: String,
    /// The ordered quantity; refunds do not change it.
    pub quantity: u32,
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    /// `unit_price` × `quantity`, before order-level discounts.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// The discount allocated to this line: its own and its share of
    /// order-level discounts, as the channel reports them; zero when none.
    #[serde(with = "rust_decimal::serde::str", default)]
    pub discount: Decimal,
    /// The tax on this line; `None` when the channel reports tax per order only.
    #[serde(with = "optional_amount", default)]
    pub tax: Option<Decimal>,
    /// Units refunded or removed since the order was placed (never shipped).
    #[serde(default)]
    pub refunded_quantity: u32,
    pub shipped_quantity: u32,
    /// Variation and personalization values as the buyer chose them, in the
    /// channel's order: what a warehouse needs to pick or make the item.
    #[serde(default)]
    pub options: Vec<LineOption>,
}

impl Line {
    /// Units still to ship: ordered, less refunded, less shipped.
    pub fn open_quantity(&self) -> u32 {
        self.quantity
            .saturating_sub(self.refunded_quantity)
            .saturating_sub(self.shipped_quantity)
    }
}

/// One variation or personalization value of a line (`Size: L`,
/// `Engraving: For Ada`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineOption {
    pub name: String,
    pub value: String,
}

impl LineOption {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        LineOption {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The buyer marked the order as a gift.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gift {
    /// The gift message to print, if the buyer wrote one.
    pub message: Option<String>,
    /// Whether gift wrapping was bought.
    pub wrap: bool,
}

/// Who ships the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fulfillment {
    /// The seller ships: the order is delivered to a destination, reserves
    /// stock and gets its tracking pushed.
    #[default]
    Merchant,
    /// The marketplace ships from its own stock (Amazon FBA and the like):
    /// stored, tagged and counted, never delivered, never reserving central
    /// stock, never getting tracking pushed.
    Channel,
}

impl Fulfillment {
    pub const ALL: [Fulfillment; 2] = [Fulfillment::Merchant, Fulfillment::Channel];

    pub fn as_str(self) -> &'static str {
        match self {
            Fulfillment::Merchant => "merchant",
            Fulfillment::Channel => "channel",
        }
    }
}

impl fmt::Display for Fulfillment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Fulfillment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "merchant" => Ok(Fulfillment::Merchant),
            "channel" => Ok(Fulfillment::Channel),
            _ => Err(format!(
                "unknown fulfillment {s:?}: expected merchant or channel"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipmentLine {
    pub line_id: String,
    pub sku: Option<String>,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: Option<String>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub lines: Vec<ShipmentLine>,
}

/// The canonical order, field for field as `docs/canonical-order.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// `"<account>:<channel order id>"`.
    pub id: String,
    pub account: String,
    pub channel: Channel,
    pub channel_order_id: String,
    /// The order number as the channel shows it to the merchant.
    pub number: Option<String>,
    pub status: OrderStatus,
    pub payment: PaymentStatus,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub currency: Currency,
    pub totals: Totals,
    pub presentment: Option<Presentment>,
    pub customer: Option<Customer>,
    pub shipping_address: Option<Address>,
    pub shipping_method: Option<String>,
    pub lines: Vec<Line>,
    /// The buyer's note to the seller.
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub gift: Option<Gift>,
    #[serde(default)]
    pub fulfillment: Fulfillment,
    /// The channel's test order (Shopify `test: true`, a sandbox account).
    #[serde(default)]
    pub test: bool,
    pub shipments: Vec<Shipment>,
    /// The union of channel, rule and hand-set tags; the store keeps them apart.
    pub tags: Vec<String>,
    pub route: Option<String>,
    pub hold: Option<String>,
    pub priority: Priority,
}

impl Order {
    /// The canonical id of a channel order in an account.
    pub fn make_id(account: &str, channel_order_id: &str) -> String {
        format!("{account}:{channel_order_id}")
    }

    /// The sum of line quantities (what the `item_count` rule condition sees).
    pub fn item_count(&self) -> u64 {
        self.lines.iter().map(|l| u64::from(l.quantity)).sum()
    }

    /// Units still to ship across all lines.
    pub fn open_units(&self) -> u64 {
        self.lines
            .iter()
            .map(|l| u64::from(l.open_quantity()))
            .sum()
    }

    /// Whether the marketplace ships this order itself: never delivered,
    /// never reserving stock, never getting tracking pushed.
    pub fn channel_fulfilled(&self) -> bool {
        self.fulfillment == Fulfillment::Channel
    }
}

/// What kind of liberty normalization took with the channel's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// A field the channel did not send was given a default.
    Defaulted,
    /// A value was shortened.
    Truncated,
    /// A value was converted from another type or representation.
    Coerced,
    /// Data the canonical model has no room for was left out.
    Dropped,
    /// The channel's figures disagree with each other; the channel's win.
    Mismatch,
}

/// One lossy step of normalization, so that nothing is changed silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizationNote {
    /// The canonical field path, e.g. `lines[2].sku` or `totals.total`.
    pub field: String,
    pub kind: NoteKind,
    pub detail: String,
}

impl NormalizationNote {
    pub fn new(field: impl Into<String>, kind: NoteKind, detail: impl Into<String>) -> Self {
        NormalizationNote {
            field: field.into(),
            kind,
            detail: detail.into(),
        }
    }
}

/// The notes one order's normalization collects, in the order they were made.
#[derive(Debug, Default)]
pub struct Notes(pub Vec<NormalizationNote>);

impl Notes {
    pub fn add(&mut self, field: impl Into<String>, kind: NoteKind, detail: impl Into<String>) {
        self.0.push(NormalizationNote::new(field, kind, detail));
    }
}

/// Trimmed, and `None` when empty: channels send `null` or `""` for blank
/// fields, and a blank must not reach the canonical order as a value.
pub fn non_blank(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// How one channel's normalization names a raw order it cannot read: every
/// decode error starts "{channel} {noun} {id}:" ("ebay order 12-345",
/// "etsy receipt 678"), so the operator can find the order on the channel.
#[derive(Debug, Clone, Copy)]
pub struct RawOrderErrors {
    pub channel: Channel,
    /// What the channel calls an order: "order", or Etsy's "receipt".
    pub noun: &'static str,
    /// The time format the channel documents, named when a time is not one:
    /// "ISO 8601" or "RFC 3339" (read the same way).
    pub times: &'static str,
}

impl RawOrderErrors {
    /// A decode error about order `id`.
    pub fn error(&self, id: &str, what: impl fmt::Display) -> crate::ConnectorError {
        crate::ConnectorError::Decode(format!("{} {} {id}: {what}", self.channel, self.noun))
    }

    /// `value`, the order's field `field`, as a UTC time; a decode error
    /// naming both when it is none.
    pub fn time(
        &self,
        id: &str,
        field: &str,
        value: &str,
    ) -> Result<DateTime<Utc>, crate::ConnectorError> {
        DateTime::parse_from_rfc3339(value.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                self.error(
                    id,
                    format!("{field} {value:?} is not an {} time ({e})", self.times),
                )
            })
    }
}

/// What a connector hands to the daemon: the canonical order (its `tags` are
/// the channel's tags; `route`, `hold` and `priority` are unset), the notes of
/// anything lossy, and the raw channel payload kept for audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedOrder {
    pub order: Order,
    pub notes: Vec<NormalizationNote>,
    pub raw: serde_json::Value,
    /// The raw payload as the JSON text the channel sent, when the
    /// connector read the order straight from that text (a webhook body)
    /// and built no `raw` (then null): the daemon stores the text as it
    /// is, where parsing it into `raw` and writing it out again cost more
    /// than the rest of reading the order. Valid UTF-8 JSON. Never
    /// serialized.
    #[serde(skip)]
    pub raw_json: Option<Vec<u8>>,
}

impl NormalizedOrder {
    /// The raw payload, whichever way the connector kept it (`raw_json`
    /// parsed, else `raw`).
    pub fn payload(&self) -> serde_json::Value {
        self.raw_json
            .as_deref()
            .and_then(|text| serde_json::from_slice(text).ok())
            .unwrap_or_else(|| self.raw.clone())
    }
}

impl NormalizedOrder {
    /// Adds a `mismatch` note when the channel's totals do not add up (the
    /// channel's figures win, and the order says so).
    pub fn note_totals_mismatch(&mut self) {
        let t = &self.order.totals;
        if !t.adds_up() {
            let detail = format!(
                "channel total {} != subtotal {} + shipping {} + tax {} - discount {}; kept the channel's figures",
                t.total, t.subtotal, t.shipping, t.tax, t.discount
            );
            self.notes.push(NormalizationNote::new(
                "totals.total",
                NoteKind::Mismatch,
                detail,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_order_errors_name_the_channel_the_order_and_the_field() {
        let etsy = RawOrderErrors {
            channel: Channel::Etsy,
            noun: "receipt",
            times: "ISO 8601",
        };
        assert_eq!(
            etsy.error("678", "no grandtotal").to_string(),
            "decode: etsy receipt 678: no grandtotal"
        );
        let shopify = RawOrderErrors {
            channel: Channel::Shopify,
            noun: "order",
            times: "RFC 3339",
        };
        assert_eq!(
            shopify
                .time("1001", "updated_at", " 2026-11-27T10:00:00+02:00 ")
                .unwrap(),
            "2026-11-27T08:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let e = shopify.time("1001", "updated_at", "yesterday").unwrap_err();
        assert!(matches!(e, crate::ConnectorError::Decode(_)), "{e:?}");
        assert!(
            e.to_string().starts_with(
                "decode: shopify order 1001: updated_at \"yesterday\" is not an RFC 3339 time ("
            ),
            "{e}"
        );
    }

    fn scaled(code: &str, amount: &str) -> String {
        Currency::new(code)
            .unwrap()
            .scaled(amount.parse().unwrap())
            .to_string()
    }

    #[test]
    fn amounts_get_the_currency_minor_units_and_lose_no_digits() {
        assert_eq!(scaled("USD", "7.6"), "7.60");
        assert_eq!(scaled("EUR", "12.0"), "12.00");
        assert_eq!(scaled("USD", "10"), "10.00");
        assert_eq!(scaled("USD", "19.990"), "19.99");
        assert_eq!(scaled("USD", "0.125"), "0.125");
        assert_eq!(scaled("JPY", "1000.0"), "1000");
        assert_eq!(scaled("KWD", "1.5"), "1.500");
        assert_eq!(scaled("USD", "-1.5"), "-1.50");
    }
}

/// An optional amount as a decimal string or null. Not rust_decimal's
/// `str_option`: that one fails on null when the order sits inside an
/// internally tagged enum (serde buffers the value first), which is how
/// fixtures and jobs carry orders.
mod optional_amount {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Amount(#[serde(with = "rust_decimal::serde::str")] Decimal);

    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        value.map(Amount).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Ok(Option::<Amount>::deserialize(d)?.map(|a| a.0))
    }
}
