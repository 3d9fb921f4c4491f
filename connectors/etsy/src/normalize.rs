//! Etsy receipt → canonical order. Pure: no I/O, no clock.
//!
//! A receipt (`getShopReceipts`, `getShopReceipt`) carries its transactions
//! (the lines), shipments and refunds, so one receipt is one whole order.
//! Every decision is made here, once; the state mapping is [`map_states`].
//!
//! # Status and payment
//!
//! Etsy's `status` is read case-insensitively (real receipts say `Paid`,
//! `Fully Refunded`; the published enum says `paid`, `fully refunded`), with
//! `_` taken as a space. "Shipped" below means `is_shipped`, or `status`
//! `completed`, or every transaction carrying a `shipped_timestamp`; "some
//! shipped" means some transactions carry one. The first matching row wins.
//!
//! | `status` | other facts | `payment` |
//! | --- | --- | --- |
//! | `canceled` | `is_paid`, or a refund recorded | `refunded` |
//! | `canceled` | neither | `voided` |
//! | `fully refunded` | | `refunded` |
//! | `partially refunded` | | `partially_refunded` |
//! | any other | refunds add up to the grand total | `refunded` |
//! | any other | some refund recorded | `partially_refunded` |
//! | `paid`, `completed` | | `paid` |
//! | `open`, `payment processing`, none, unknown | `is_paid` | `paid` |
//! | `open`, `payment processing`, none, unknown | not `is_paid` | `pending` |
//!
//! | `status` | shipping | `payment` | `status` (canonical) |
//! | --- | --- | --- | --- |
//! | `canceled` | any | any | `cancelled` |
//! | any other | shipped | any | `shipped` |
//! | any other | some shipped | any | `partially_shipped` |
//! | any other | nothing shipped | `refunded`, `voided` | `cancelled` |
//! | any other | nothing shipped | `paid`, `partially_refunded` | `ready` |
//! | any other | nothing shipped | `pending` | `pending` |
//!
//! Refunds are read from the receipt's `refunds`, not only from `status`,
//! because the status and the refunds list can disagree while Etsy catches
//! up. A status missing or not in the table leaves a note.
//!
//! # Lines
//!
//! One line per transaction: `line_id` its `transaction_id`, `unit_price`
//! its `price`, `total` price × quantity, `discount` its `shop_coupon` +
//! `buyer_coupon` (Etsy gives these as floats in the shop currency; they are
//! read by their decimal spelling), `tax` null (Etsy reports tax per receipt
//! only). `options` are the transaction's `variations` in Etsy's order
//! (`formatted_name: formatted_value`, personalization included), then any
//! `product_data` property the variations did not name. `shipped_quantity`
//! is the whole quantity once the receipt or the transaction is shipped
//! (Etsy ships receipts, not units). `refunded_quantity` is what was not
//! shipped when the order is cancelled or refunded in full; a partial refund
//! names no transactions, so lines keep 0 and the order says so in a note.
//!
//! # Figures
//!
//! Money `{amount, divisor}` is converted exactly (`money`), shown with the
//! grand total's digits. `subtotal` is the sum of line totals (Etsy's
//! `total_price`; a difference is noted), `shipping` `total_shipping_cost`,
//! `tax` `total_tax_cost` (sales tax; a `total_vat_cost` is noted, not
//! added: Etsy's grand total does not add it), `discount` `discount_amt`,
//! `total` `grandtotal`, `refunded` the sum of `refunds`.
//!
//! # The rest
//!
//! `number` is the receipt id (what the seller sees); `placed_at` is
//! `create_timestamp`; `updated_at` is the newest of `update_timestamp` and
//! the refunds' and shipments' own times, because Etsy does not move
//! `update_timestamp` for refunds and ship-date changes. Customer: the gift
//! sender's name on gifts, else the shipping recipient's (Etsy names no
//! buyer), `buyer_email` (null unless the app may see it). Address from
//! `name`, `first_line`, `second_line`, `city`, `state`, `zip`,
//! `country_iso`. `shipping_method` is the first transaction's shipping
//! upgrade, else its shipping method. `note` is `message_from_buyer`;
//! `gift` is set when `is_gift`, a gift message or paid gift wrap is there.
//! Shipments are the receipt's shipments, oldest first, carriers read back
//! to switchyard codes; Etsy's shipments belong to the whole receipt and
//! name no transactions, so their `lines` are empty.

use rust_decimal::Decimal;
use serde_json::Number;
use switchyard_contract::{
    Address, Channel, ConnectorError, Currency, Customer, Fulfillment, Gift, Line, LineOption,
    NormalizationNote, NormalizedOrder, NoteKind, Notes, Order, OrderStatus, PaymentStatus,
    Priority, RawOrderErrors, Shipment, Totals, non_blank,
};

use chrono::{DateTime, Utc};

use crate::carrier::canonical_carrier;
use crate::money::{self, Amount, decimal_from_number, minor_digits, scaled};
use crate::wire::{Money, PropertyValue, Receipt, Transaction, Variation};

/// Normalizes one receipt as `getShopReceipts` and `getShopReceipt` return
/// it. Anything that is not a readable receipt is a `Decode` error naming
/// the receipt (when it has an id) and the field.
pub fn normalize_receipt(
    account: &str,
    raw: &serde_json::Value,
) -> Result<NormalizedOrder, ConnectorError> {
    let r: Receipt = serde_json::from_value(raw.clone())
        .map_err(|e| ConnectorError::Decode(format!("not an Etsy receipt: {e}")))?;
    build(account, r, raw.clone())
}

/// The receipt id of a raw receipt, when even that can be read.
pub fn receipt_id(raw: &serde_json::Value) -> Option<String> {
    number_text(raw.get("receipt_id")?)
}

/// The newest `update_timestamp` of a raw receipt: what Etsy's
/// `min_last_modified` filters on (the cursor follows it, not `updated_at`).
pub fn etsy_update_timestamp(raw: &serde_json::Value) -> Option<i64> {
    raw.get("update_timestamp")
        .or_else(|| raw.get("updated_timestamp"))
        .and_then(serde_json::Value::as_i64)
}

/// `(sku, listing id)` for every transaction of a normalized receipt that
/// names both, so that the daemon can remember which listing holds a SKU
/// and hand it back as `InventoryPush::listing_ref`.
pub fn sku_listings(order: &NormalizedOrder) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let transactions = order.raw.get("transactions").and_then(|t| t.as_array());
    for t in transactions.into_iter().flatten() {
        let sku = t
            .get("sku")
            .and_then(|s| s.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let listing = t.get("listing_id").and_then(number_text);
        if let (Some(sku), Some(listing)) = (sku, listing)
            && !out.iter().any(|(s, _)| s == sku)
        {
            out.push((sku.to_owned(), listing));
        }
    }
    out
}

fn number_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) if n.as_u64().is_some() => Some(n.to_string()),
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn id_text(n: &Option<Number>) -> Option<String> {
    n.as_ref().and_then(|n| n.as_u64()).map(|n| n.to_string())
}

// ---------------------------------------------------------------------------
// states

/// How far the receipt has shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shipping {
    Nothing,
    Some,
    All,
}

/// Etsy's `status`, lower case, `_` read as a space, spaces collapsed.
fn status_key(status: &str) -> String {
    status
        .replace('_', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

const KNOWN_STATUSES: &[&str] = &[
    "paid",
    "completed",
    "open",
    "payment processing",
    "canceled",
    "fully refunded",
    "partially refunded",
];

/// Refunds against the grand total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refunded {
    None,
    Part,
    Whole,
}

/// The state table of the module doc: Etsy's facts → canonical status and
/// payment, with a note when the status is missing or unknown.
pub(crate) fn map_states(
    status: Option<&str>,
    is_paid: bool,
    shipping: Shipping,
    refunded: Refunded,
) -> (OrderStatus, PaymentStatus, Vec<NormalizationNote>) {
    let mut notes = Vec::new();
    let key = status.map(status_key).filter(|s| !s.is_empty());
    match key.as_deref() {
        None => notes.push(NormalizationNote::new(
            "status",
            NoteKind::Defaulted,
            "Etsy gave no receipt status; read from is_paid, is_shipped and the refunds",
        )),
        Some(k) if !KNOWN_STATUSES.contains(&k) => notes.push(NormalizationNote::new(
            "status",
            NoteKind::Coerced,
            format!(
                "unknown receipt status {:?}; read from is_paid, is_shipped and the refunds",
                status.unwrap_or_default()
            ),
        )),
        Some(_) => {}
    }
    let key = key.as_deref().unwrap_or("");
    let payment = match (key, refunded) {
        ("canceled", r) if is_paid || r != Refunded::None => PaymentStatus::Refunded,
        ("canceled", _) => PaymentStatus::Voided,
        ("fully refunded", _) => PaymentStatus::Refunded,
        ("partially refunded", _) => PaymentStatus::PartiallyRefunded,
        (_, Refunded::Whole) => PaymentStatus::Refunded,
        (_, Refunded::Part) => PaymentStatus::PartiallyRefunded,
        ("paid" | "completed", _) => PaymentStatus::Paid,
        _ if is_paid => PaymentStatus::Paid,
        _ => PaymentStatus::Pending,
    };
    let shipping = if key == "completed" {
        Shipping::All
    } else {
        shipping
    };
    let status = match (key, shipping, payment) {
        ("canceled", _, _) => OrderStatus::Cancelled,
        (_, Shipping::All, _) => OrderStatus::Shipped,
        (_, Shipping::Some, _) => OrderStatus::PartiallyShipped,
        (_, Shipping::Nothing, PaymentStatus::Refunded | PaymentStatus::Voided) => {
            OrderStatus::Cancelled
        }
        (_, Shipping::Nothing, PaymentStatus::Paid | PaymentStatus::PartiallyRefunded) => {
            OrderStatus::Ready
        }
        (_, Shipping::Nothing, PaymentStatus::Pending) => OrderStatus::Pending,
    };
    (status, payment, notes)
}

// ---------------------------------------------------------------------------
// the builder

/// Every decode error names the receipt ("etsy receipt <id>: …").
const RECEIPT: RawOrderErrors = RawOrderErrors {
    channel: Channel::Etsy,
    noun: "receipt",
    times: "ISO 8601",
};

fn epoch(id: &str, field: &str, secs: i64) -> Result<DateTime<Utc>, ConnectorError> {
    DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| RECEIPT.error(id, format!("{field} {secs} is not a time in epoch seconds")))
}

/// Reads money fields of one receipt in its currency, at its digits.
struct MoneyReader<'a> {
    id: &'a str,
    currency: String,
    digits: u32,
}

impl MoneyReader<'_> {
    /// The amount, or a decode error naming `etsy_field`; a currency other
    /// than the receipt's, or a rounded odd divisor, leaves a note on `field`.
    fn read(
        &self,
        notes: &mut Notes,
        field: &str,
        etsy_field: &str,
        m: &Money,
    ) -> Result<Decimal, ConnectorError> {
        let Amount {
            value,
            currency,
            rounded,
        } = money::amount(m).map_err(|e| RECEIPT.error(self.id, format!("{etsy_field} {e}")))?;
        if let Some(c) = currency
            && c != self.currency
        {
            notes.add(
                field,
                NoteKind::Mismatch,
                format!(
                    "{etsy_field} is in {c}, the receipt in {}; kept the amount",
                    self.currency
                ),
            );
        }
        if rounded {
            notes.add(
                field,
                NoteKind::Coerced,
                format!("{etsy_field} has a divisor that is not a power of ten; rounded"),
            );
        }
        Ok(scaled(value, self.digits))
    }

    /// A figure Etsy may leave out: missing is zero, with a note.
    fn figure(
        &self,
        notes: &mut Notes,
        field: &str,
        etsy_field: &str,
        m: &Option<Money>,
    ) -> Result<Decimal, ConnectorError> {
        match m {
            Some(m) => self.read(notes, field, etsy_field, m),
            None => {
                notes.add(
                    field,
                    NoteKind::Defaulted,
                    format!("Etsy gave no {etsy_field}; 0"),
                );
                Ok(self.zero())
            }
        }
    }

    fn zero(&self) -> Decimal {
        scaled(Decimal::ZERO, self.digits)
    }

    fn checked(&self, field: &str, d: Option<Decimal>) -> Result<Decimal, ConnectorError> {
        d.map(|d| scaled(d, self.digits)).ok_or_else(|| {
            RECEIPT.error(
                self.id,
                format!("{field} is out of range (more than 28 digits)"),
            )
        })
    }
}

fn options(variations: &[Variation], product_data: &[PropertyValue]) -> Vec<LineOption> {
    let mut out = Vec::new();
    let mut named: Vec<&Number> = Vec::new();
    for v in variations {
        let name = non_blank(&v.formatted_name);
        let value = non_blank(&v.formatted_value);
        if let (Some(name), Some(value)) = (name, value) {
            out.push(LineOption::new(name, value));
        }
        if let Some(p) = &v.property_id {
            named.push(p);
        }
    }
    for p in product_data {
        if p.property_id.as_ref().is_some_and(|id| named.contains(&id)) {
            continue;
        }
        let values: Vec<String> = p
            .values
            .iter()
            .filter_map(|v| non_blank(&Some(v.clone())))
            .collect();
        if let (Some(name), false) = (non_blank(&p.property_name), values.is_empty()) {
            out.push(LineOption::new(name, values.join(", ")));
        }
    }
    out
}

fn shipping_of(transactions: &[Transaction]) -> Shipping {
    let shipped = transactions
        .iter()
        .filter(|t| t.shipped_timestamp.is_some_and(|s| s > 0))
        .count();
    match shipped {
        0 => Shipping::Nothing,
        n if n == transactions.len() => Shipping::All,
        _ => Shipping::Some,
    }
}

fn build(
    account: &str,
    r: Receipt,
    raw: serde_json::Value,
) -> Result<NormalizedOrder, ConnectorError> {
    let id = id_text(&r.receipt_id)
        .ok_or_else(|| ConnectorError::Decode("etsy receipt without a receipt_id".into()))?;
    let mut notes = Notes(Vec::new());

    // Currency and digits come from the grand total: the order's own figure.
    let grandtotal = r
        .grandtotal
        .as_ref()
        .ok_or_else(|| RECEIPT.error(&id, "no grandtotal"))?;
    let currency_code = non_blank(&grandtotal.currency_code)
        .ok_or_else(|| RECEIPT.error(&id, "grandtotal has no currency_code"))?;
    let currency = Currency::new(&currency_code).map_err(|e| RECEIPT.error(&id, e))?;
    let m = MoneyReader {
        id: &id,
        currency: currency_code.clone(),
        digits: minor_digits(Some(grandtotal)),
    };

    // Times.
    let placed_secs = r
        .create_timestamp
        .or(r.created_timestamp)
        .ok_or_else(|| RECEIPT.error(&id, "neither create_timestamp nor created_timestamp"))?;
    let placed_at = epoch(&id, "create_timestamp", placed_secs)?;
    let update_secs = match r.update_timestamp.or(r.updated_timestamp) {
        Some(t) => t,
        None => {
            notes.add(
                "updated_at",
                NoteKind::Defaulted,
                "Etsy gave no update_timestamp; used create_timestamp",
            );
            placed_secs
        }
    };
    let mut updated_at = epoch(&id, "update_timestamp", update_secs)?;

    // Lines.
    let mut lines = Vec::with_capacity(r.transactions.len());
    for (i, t) in r.transactions.iter().enumerate() {
        let line_id = id_text(&t.transaction_id)
            .ok_or_else(|| RECEIPT.error(&id, format!("transaction {i} has no transaction_id")))?;
        let sku = non_blank(&t.sku);
        if sku.is_none() {
            notes.add(
                format!("lines[{i}].sku"),
                NoteKind::Defaulted,
                format!("transaction {line_id} has no SKU"),
            );
        }
        let title = non_blank(&t.title).unwrap_or_else(|| {
            notes.add(
                format!("lines[{i}].title"),
                NoteKind::Defaulted,
                format!("transaction {line_id} has no title"),
            );
            String::new()
        });
        let quantity = match t.quantity.map(u32::try_from) {
            Some(Ok(q)) => q,
            Some(Err(_)) => {
                notes.add(
                    format!("lines[{i}].quantity"),
                    NoteKind::Coerced,
                    format!(
                        "transaction {line_id} quantity {} is out of range; 0",
                        t.quantity.unwrap_or_default()
                    ),
                );
                0
            }
            None => {
                notes.add(
                    format!("lines[{i}].quantity"),
                    NoteKind::Defaulted,
                    format!("transaction {line_id} has no quantity; 0"),
                );
                0
            }
        };
        let unit_price = m.figure(
            &mut notes,
            &format!("lines[{i}].unit_price"),
            &format!("transactions[{i}].price"),
            &t.price,
        )?;
        let total = m.checked(
            &format!("lines[{i}].total"),
            unit_price.checked_mul(Decimal::from(quantity)),
        )?;
        let mut discount = Decimal::ZERO;
        for (what, coupon) in [
            ("shop_coupon", &t.shop_coupon),
            ("buyer_coupon", &t.buyer_coupon),
        ] {
            let Some(n) = coupon else { continue };
            let d = decimal_from_number(n).ok_or_else(|| {
                RECEIPT.error(
                    &id,
                    format!("transactions[{i}].{what} {n} is not an amount"),
                )
            })?;
            discount = m.checked(&format!("lines[{i}].discount"), discount.checked_add(d))?;
        }
        if discount.scale() > m.digits {
            notes.add(
                format!("lines[{i}].discount"),
                NoteKind::Coerced,
                format!(
                    "transaction {line_id} coupons add up to {discount}, more digits than {currency_code} has; rounded"
                ),
            );
            discount = discount.round_dp(m.digits);
        }
        lines.push(Line {
            line_id,
            sku,
            title,
            quantity,
            unit_price,
            total,
            discount: scaled(discount, m.digits),
            tax: None,
            refunded_quantity: 0,
            shipped_quantity: 0,
            options: options(&t.variations, &t.product_data),
        });
    }
    if lines.is_empty() {
        notes.add("lines", NoteKind::Defaulted, "receipt has no transactions");
    }

    // Refunds.
    let mut refunded = Decimal::ZERO;
    for (i, refund) in r.refunds.iter().enumerate() {
        let a = match &refund.amount {
            Some(a) => m.read(
                &mut notes,
                "totals.refunded",
                &format!("refunds[{i}].amount"),
                a,
            )?,
            None => {
                notes.add(
                    "totals.refunded",
                    NoteKind::Dropped,
                    format!("refund {i} has no amount; not counted"),
                );
                continue;
            }
        };
        refunded = m.checked("totals.refunded", refunded.checked_add(a))?;
        if let Some(at) = refund.created_timestamp {
            updated_at = updated_at.max(epoch(&id, "refunds.created_timestamp", at)?);
        }
    }
    let total = m.read(&mut notes, "totals.total", "grandtotal", grandtotal)?;
    let refunded_state = if refunded <= Decimal::ZERO {
        Refunded::None
    } else if refunded >= total {
        Refunded::Whole
    } else {
        Refunded::Part
    };

    // States.
    let receipt_shipping = if r.is_shipped == Some(true) {
        Shipping::All
    } else {
        shipping_of(&r.transactions)
    };
    let (status, payment, state_notes) = map_states(
        r.status.as_deref(),
        r.is_paid.unwrap_or(false),
        receipt_shipping,
        refunded_state,
    );
    notes.0.extend(state_notes);

    let whole_receipt_shipped = receipt_shipping == Shipping::All
        || r.status.as_deref().map(status_key).as_deref() == Some("completed");
    for (line, t) in lines.iter_mut().zip(&r.transactions) {
        if whole_receipt_shipped || t.shipped_timestamp.is_some_and(|s| s > 0) {
            line.shipped_quantity = line.quantity;
        }
        if status == OrderStatus::Cancelled || payment == PaymentStatus::Refunded {
            line.refunded_quantity = line.quantity.saturating_sub(line.shipped_quantity);
        }
    }
    if payment == PaymentStatus::PartiallyRefunded && status != OrderStatus::Cancelled {
        notes.add(
            "lines.refunded_quantity",
            NoteKind::Dropped,
            "Etsy's refunds do not say which transactions they cover; every line keeps refunded_quantity 0",
        );
    }

    // Shipments, oldest first.
    let mut etsy_shipments = r.shipments.clone();
    etsy_shipments.sort_by_key(|s| {
        (
            s.shipment_notification_timestamp,
            s.receipt_shipping_id.as_ref().and_then(Number::as_u64),
        )
    });
    let mut shipments = Vec::with_capacity(etsy_shipments.len());
    for (si, s) in etsy_shipments.iter().enumerate() {
        let shipped_at = match s.shipment_notification_timestamp {
            Some(t) => {
                let at = epoch(&id, "shipments.shipment_notification_timestamp", t)?;
                updated_at = updated_at.max(at);
                Some(at)
            }
            None => None,
        };
        let tracking_number = non_blank(&s.tracking_code).unwrap_or_else(|| {
            notes.add(
                format!("shipments[{si}].tracking_number"),
                NoteKind::Defaulted,
                "Etsy shows this shipment without a tracking code",
            );
            String::new()
        });
        shipments.push(Shipment {
            carrier: non_blank(&s.carrier_name)
                .map(|c| canonical_carrier(&c))
                .unwrap_or_default(),
            tracking_number,
            tracking_url: None,
            shipped_at,
            lines: Vec::new(),
        });
    }

    // Totals.
    let subtotal = lines
        .iter()
        .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.total));
    let subtotal = m.checked("totals.subtotal", subtotal)?;
    if let Some(tp) = &r.total_price {
        let etsy_subtotal = m.read(&mut notes, "totals.subtotal", "total_price", tp)?;
        if etsy_subtotal != subtotal {
            notes.add(
                "totals.subtotal",
                NoteKind::Mismatch,
                format!(
                    "Etsy's total_price {etsy_subtotal} differs from the lines' sum {subtotal}; subtotal is the lines' sum"
                ),
            );
        }
    }
    let shipping = m.figure(
        &mut notes,
        "totals.shipping",
        "total_shipping_cost",
        &r.total_shipping_cost,
    )?;
    let tax = m.figure(
        &mut notes,
        "totals.tax",
        "total_tax_cost",
        &r.total_tax_cost,
    )?;
    if let Some(vat) = &r.total_vat_cost {
        let vat = m.read(&mut notes, "totals.tax", "total_vat_cost", vat)?;
        if !vat.is_zero() {
            notes.add(
                "totals.tax",
                NoteKind::Dropped,
                format!(
                    "Etsy reports {vat} {currency_code} VAT (total_vat_cost) beside the sales tax; it is not in tax, as Etsy's grandtotal does not add it"
                ),
            );
        }
    }
    let discount = m.figure(
        &mut notes,
        "totals.discount",
        "discount_amt",
        &r.discount_amt,
    )?;
    let totals = Totals {
        subtotal,
        shipping,
        tax,
        discount,
        total,
        refunded: scaled(refunded, m.digits),
    };

    // Gift.
    let wrap = match &r.gift_wrap_price {
        Some(p) => m.read(&mut notes, "gift.wrap", "gift_wrap_price", p)? > Decimal::ZERO,
        None => false,
    };
    let gift_message = non_blank(&r.gift_message);
    let is_gift = r.is_gift == Some(true);
    let gift = (is_gift || gift_message.is_some() || wrap).then_some(Gift {
        message: gift_message,
        wrap,
    });

    // Customer and address.
    let gift_sender = non_blank(&r.gift_sender).filter(|_| is_gift);
    let recipient = non_blank(&r.name);
    let email = non_blank(&r.buyer_email);
    let customer_name = gift_sender.or_else(|| recipient.clone());
    let customer = if customer_name.is_none() && email.is_none() {
        notes.add(
            "customer",
            NoteKind::Defaulted,
            "receipt names no recipient and shows no buyer e-mail",
        );
        None
    } else {
        Some(Customer {
            name: customer_name,
            email,
            phone: None,
        })
    };
    let address = Address {
        name: recipient,
        company: None,
        line1: non_blank(&r.first_line),
        line2: non_blank(&r.second_line),
        city: non_blank(&r.city),
        region: non_blank(&r.state),
        postal_code: non_blank(&r.zip),
        country: non_blank(&r.country_iso).map(|c| c.to_ascii_uppercase()),
        phone: None,
    };
    let street_known = address.line1.is_some() || address.city.is_some();
    let shipping_address = if address == Address::default() {
        notes.add(
            "shipping_address",
            NoteKind::Defaulted,
            "receipt has no shipping address",
        );
        None
    } else {
        if !street_known {
            notes.add(
                "shipping_address",
                NoteKind::Dropped,
                "Etsy withheld the street address (in some regions the app needs a preferred partnership to see it)",
            );
        }
        Some(address)
    };

    let mut methods: Vec<String> = Vec::new();
    for t in &r.transactions {
        if let Some(m) = non_blank(&t.shipping_upgrade).or_else(|| non_blank(&t.shipping_method))
            && !methods.contains(&m)
        {
            methods.push(m);
        }
    }
    if methods.len() > 1 {
        notes.add(
            "shipping_method",
            NoteKind::Dropped,
            format!(
                "transactions ship by different methods ({}); shipping_method is the first",
                methods.join(", ")
            ),
        );
    }
    let shipping_method = methods.into_iter().next();

    let mut normalized = NormalizedOrder {
        order: Order {
            id: Order::make_id(account, &id),
            account: account.to_owned(),
            channel: Channel::Etsy,
            number: Some(id.clone()),
            channel_order_id: id,
            status,
            payment,
            placed_at,
            updated_at,
            currency,
            totals,
            presentment: None,
            customer,
            shipping_address,
            shipping_method,
            lines,
            note: non_blank(&r.message_from_buyer),
            gift,
            fulfillment: Fulfillment::Merchant,
            test: false,
            shipments,
            tags: Vec::new(),
            route: None,
            hold: None,
            priority: Priority::Normal,
        },
        notes: notes.0,
        raw,
        raw_json: None,
    };
    normalized.note_totals_mismatch();
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus as S;
    use PaymentStatus as P;

    #[test]
    fn the_state_table() {
        type Case<'a> = (Option<&'a str>, bool, Shipping, Refunded, S, P);
        let cases: &[Case] = &[
            (
                Some("Paid"),
                true,
                Shipping::Nothing,
                Refunded::None,
                S::Ready,
                P::Paid,
            ),
            (
                Some("paid"),
                true,
                Shipping::Nothing,
                Refunded::None,
                S::Ready,
                P::Paid,
            ),
            (
                Some("Paid"),
                true,
                Shipping::Some,
                Refunded::None,
                S::PartiallyShipped,
                P::Paid,
            ),
            (
                Some("Completed"),
                true,
                Shipping::Nothing,
                Refunded::None,
                S::Shipped,
                P::Paid,
            ),
            (
                Some("completed"),
                true,
                Shipping::All,
                Refunded::None,
                S::Shipped,
                P::Paid,
            ),
            (
                Some("Open"),
                false,
                Shipping::Nothing,
                Refunded::None,
                S::Pending,
                P::Pending,
            ),
            (
                Some("open"),
                true,
                Shipping::Nothing,
                Refunded::None,
                S::Ready,
                P::Paid,
            ),
            (
                Some("Payment Processing"),
                false,
                Shipping::Nothing,
                Refunded::None,
                S::Pending,
                P::Pending,
            ),
            (
                Some("Canceled"),
                true,
                Shipping::Nothing,
                Refunded::Whole,
                S::Cancelled,
                P::Refunded,
            ),
            (
                Some("canceled"),
                false,
                Shipping::Nothing,
                Refunded::None,
                S::Cancelled,
                P::Voided,
            ),
            (
                Some("canceled"),
                true,
                Shipping::All,
                Refunded::None,
                S::Cancelled,
                P::Refunded,
            ),
            (
                Some("Fully Refunded"),
                true,
                Shipping::Nothing,
                Refunded::Whole,
                S::Cancelled,
                P::Refunded,
            ),
            (
                Some("fully refunded"),
                true,
                Shipping::All,
                Refunded::Whole,
                S::Shipped,
                P::Refunded,
            ),
            (
                Some("fully_refunded"),
                true,
                Shipping::Nothing,
                Refunded::None,
                S::Cancelled,
                P::Refunded,
            ),
            (
                Some("Partially Refunded"),
                true,
                Shipping::Nothing,
                Refunded::Part,
                S::Ready,
                P::PartiallyRefunded,
            ),
            (
                Some("partially refunded"),
                true,
                Shipping::All,
                Refunded::Part,
                S::Shipped,
                P::PartiallyRefunded,
            ),
            // The refunds list is ahead of the status.
            (
                Some("Paid"),
                true,
                Shipping::Nothing,
                Refunded::Part,
                S::Ready,
                P::PartiallyRefunded,
            ),
            (
                Some("Paid"),
                true,
                Shipping::Nothing,
                Refunded::Whole,
                S::Cancelled,
                P::Refunded,
            ),
            (
                Some("Completed"),
                true,
                Shipping::All,
                Refunded::Whole,
                S::Shipped,
                P::Refunded,
            ),
        ];
        for &(status, is_paid, shipping, refunded, want_status, want_payment) in cases {
            let (s, p, notes) = map_states(status, is_paid, shipping, refunded);
            assert_eq!(
                (s, p),
                (want_status, want_payment),
                "{status:?} paid={is_paid} {shipping:?} {refunded:?}"
            );
            assert!(notes.is_empty(), "{notes:?}");
        }
    }

    #[test]
    fn a_missing_or_unknown_status_falls_back_to_the_flags_with_a_note() {
        let (s, p, notes) = map_states(None, true, Shipping::Nothing, Refunded::None);
        assert_eq!((s, p), (S::Ready, P::Paid));
        assert_eq!(notes[0].kind, NoteKind::Defaulted);
        let (s, p, notes) = map_states(Some("Teleported"), false, Shipping::All, Refunded::None);
        assert_eq!((s, p), (S::Shipped, P::Pending));
        assert_eq!(notes[0].kind, NoteKind::Coerced);
        assert!(
            notes[0].detail.contains("Teleported"),
            "{}",
            notes[0].detail
        );
    }

    #[test]
    fn options_are_variations_then_unnamed_product_data() {
        let variations: Vec<Variation> = serde_json::from_value(serde_json::json!([
            {"property_id": 513, "value_id": 1, "formatted_name": "Size", "formatted_value": "L"},
            {"property_id": 54, "value_id": null, "formatted_name": "Personalization", "formatted_value": "For Ada"},
            {"property_id": 514, "formatted_name": "Colour", "formatted_value": ""}
        ]))
        .unwrap();
        let data: Vec<PropertyValue> = serde_json::from_value(serde_json::json!([
            {"property_id": 513, "property_name": "Size", "values": ["L"]},
            {"property_id": 200, "property_name": "Material", "values": ["Oak", "Ash"]}
        ]))
        .unwrap();
        assert_eq!(
            options(&variations, &data),
            vec![
                LineOption::new("Size", "L"),
                LineOption::new("Personalization", "For Ada"),
                LineOption::new("Material", "Oak, Ash"),
            ]
        );
    }
}
