//! eBay order (Sell Fulfillment `Order`, as getOrders and getOrder return it)
//! → canonical order. Pure: no I/O, no clock. The order's shipping
//! fulfilments, which getOrders only links to (`fulfillmentHrefs`), are
//! passed in when the connector read them (getShippingFulfillments).
//!
//! # Status and payment
//!
//! eBay states: `cancelStatus.cancelState` (`NONE_REQUESTED`, `IN_PROGRESS`
//! = the buyer asked to cancel and the seller has not answered, `CANCELED`),
//! `orderFulfillmentStatus` (`NOT_STARTED`, `IN_PROGRESS`, `FULFILLED`) and
//! `orderPaymentStatus` (`PENDING`, `FAILED`, `PAID`, `PARTIALLY_REFUNDED`,
//! `FULLY_REFUNDED`). The first matching row wins:
//!
//! | cancelState | orderFulfillmentStatus | orderPaymentStatus | `status` |
//! | --- | --- | --- | --- |
//! | `CANCELED` | any | any | `cancelled` |
//! | other | `FULFILLED` | any | `shipped` |
//! | other | `IN_PROGRESS` | any | `partially_shipped` |
//! | other | `NOT_STARTED` | `FULLY_REFUNDED` | `cancelled` (refunded and nothing shipped: not to be shipped) |
//! | other | `NOT_STARTED` | `PAID`, `PARTIALLY_REFUNDED` | `ready` |
//! | other | `NOT_STARTED` | `PENDING`, `FAILED`, none | `pending` |
//!
//! | orderPaymentStatus | `payment` |
//! | --- | --- |
//! | `PAID` | `paid` |
//! | `PARTIALLY_REFUNDED` | `partially_refunded` |
//! | `FULLY_REFUNDED` | `refunded` |
//! | `PENDING`, `FAILED` | `pending` (a failed payment can still be completed: eBay sends `ORDER_CONFIRMATION` again then) |
//!
//! A cancel request still open (`cancelState` `IN_PROGRESS`) leaves the
//! status as the table says and adds the tag `cancel_requested`, so that a
//! rule can hold the order while the seller decides. An unknown value maps
//! like the nearest row (fulfilment: `NOT_STARTED`; payment: `pending`) and
//! leaves a `coerced` note.
//!
//! # Figures
//!
//! Amounts are `{value, currency}` strings with no fixed scale (`"7.6"`);
//! each is read exactly as a decimal and given the currency's minor units
//! (`7.60`). `value`/`currency` are the seller's (settlement) currency: the
//! order's `currency` and `totals`. When eBay converted the buyer's payment,
//! `pricingSummary.total.convertedFromValue`/`convertedFromCurrency` is what
//! the buyer paid: `presentment`. An amount in another currency than the
//! order's is a decode error that names the field.
//!
//! | canonical | eBay |
//! | --- | --- |
//! | `totals.subtotal` | the sum of the line totals (eBay's `priceSubtotal` is the same figure; a difference is noted) |
//! | `totals.shipping` | `pricingSummary.deliveryCost` |
//! | `totals.discount` | `-(priceDiscount + deliveryDiscount)` (eBay's are negative) |
//! | `totals.tax` | `pricingSummary.tax`, else the sum of the line taxes; it includes the tax eBay collects and remits itself (`ebayCollectAndRemitTax`, US sales tax, EU/UK VAT …), as the canonical model defines `tax`; when `pricingSummary.tax` leaves that tax out but `total` has it, it is added and noted |
//! | `totals.total` | `pricingSummary.total` (read with `fieldGroups=TAX_BREAKDOWN`, which makes eBay include collected tax in it) |
//! | `totals.refunded` | the sum of `paymentSummary.refunds` whose `refundStatus` is `REFUNDED` |
//! | line `unit_price` | `lineItemCost / quantity` (eBay gives the line's cost, not the unit price; a cost that does not divide evenly is rounded to the currency's minor units and noted) |
//! | line `total` | `lineItemCost` |
//! | line `discount` | the line's `appliedPromotions` amounts, else `lineItemCost - discountedLineItemCost` |
//! | line `tax` | the line's `taxes`, else its `ebayCollectAndRemitTaxes`; `null` when eBay sent neither array |
//!
//! eBay's special fees (`pricingSummary.fee`, tyre and e-waste fees) and
//! price `adjustment` have no canonical field: they are noted, and the
//! totals then carry a mismatch note.
//!
//! # Quantities
//!
//! `shipped_quantity` sums the line's units over the order's shipping
//! fulfilments (eBay's default quantity of a fulfilment line is 1). Without
//! them (getOrders gives only their links) a `FULFILLED` line counts as
//! wholly shipped and an `IN_PROGRESS` one as not yet, with a note: how many
//! units of a partly shipped line went needs getShippingFulfillments, which
//! the connector calls for every order that has fulfilments.
//!
//! eBay's refunds name amounts, never units. `refunded_quantity` is every
//! unit not shipped when the order is cancelled or fully refunded, or when
//! the line's refunds reach what the buyer paid for it; a smaller refund on a
//! line (a partial refund, a damaged-item discount) leaves it at 0, noted.
//!
//! # The rest
//!
//! `number` is the order id (what Seller Hub shows). The ship-to comes from
//! the first `fulfillmentStartInstructions` entry with a shipping step; for
//! eBay's Global Shipping Program and eBay International Shipping
//! (`ebaySupportedFulfillment`) that address is eBay's hub, which is where
//! the seller ships, noted. `shipping_method` is the step's
//! `shippingServiceCode`. The customer is the buyer's registration contact
//! when eBay gives it (it seldom does), else the ship-to's name, e-mail and
//! phone, which is eBay's contact for the order (the e-mail only for 14 days
//! after the sale). `note` is
//! `buyerCheckoutNotes`; `options` are the line's `variationAspects`;
//! `gift` is a digital gift card line's message; `fulfillment` is `channel`
//! when eBay fulfils the order itself (`program.fulfillmentProgram.fulfilledBy
//! = EBAY`); `test` is true for sandbox accounts. eBay's legacy item and
//! variation ids have no canonical field: they stay in `raw`, and a line
//! without a SKU is noted with its legacy item id so that the listing can be
//! found.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::DateTime;
use rust_decimal::Decimal;
use switchyard_contract::{
    Address, Channel, ConnectorError, Currency, Customer, Fulfillment, Gift, Line, LineOption,
    NormalizationNote, NormalizedOrder, NoteKind, Notes, Order, OrderStatus, PaymentStatus,
    Presentment, Priority, RawOrderErrors, Shipment, ShipmentLine, Totals, non_blank,
};

use crate::carrier::canonical_carrier;
use crate::wire::{self, Amount};

/// The tag an order gets while the buyer's cancel request awaits the seller.
pub const CANCEL_REQUESTED_TAG: &str = "cancel_requested";

/// Normalizes one eBay order. `fulfillments` is the getShippingFulfillments
/// answer for it when it was read, else `None`. `test`: the account is a
/// sandbox one.
pub fn normalize_order(
    account: &str,
    order: &serde_json::Value,
    fulfillments: Option<&serde_json::Value>,
    test: bool,
) -> Result<NormalizedOrder, ConnectorError> {
    let fulfillments = match fulfillments {
        Some(f) => Some(
            serde_json::from_value::<wire::Fulfillments>(f.clone())
                .map_err(|e| {
                    ConnectorError::Decode(format!("getShippingFulfillments answer: {e}"))
                })?
                .fulfillments,
        ),
        None => None,
    };
    build(account, order, fulfillments, test)
}

/// The order id of a raw order, if it has one (for naming a rejected order).
pub fn order_id(order: &serde_json::Value) -> Option<String> {
    order
        .get("orderId")
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Every decode error names the order ("ebay order <id>: …").
const ORDER: RawOrderErrors = RawOrderErrors {
    channel: Channel::Ebay,
    noun: "order",
    times: "ISO 8601",
};

/// Reads eBay amounts of one order, in its currency.
struct Money<'a> {
    id: &'a str,
    currency: &'a Currency,
}

impl Money<'_> {
    fn zero(&self) -> Decimal {
        self.currency.scaled(Decimal::ZERO)
    }

    /// An amount's value; an amount in another currency is a decode error.
    fn read(&self, field: &str, amount: &Amount) -> Result<Decimal, ConnectorError> {
        if let Some(c) = non_blank(&amount.currency)
            && c != self.currency.as_str()
        {
            return Err(ORDER.error(
                self.id,
                format!("{field} is in {c}, the order in {}", self.currency),
            ));
        }
        let value = non_blank(&amount.value)
            .ok_or_else(|| ORDER.error(self.id, format!("{field} has no value")))?;
        Decimal::from_str(&value)
            .map(|d| self.currency.scaled(d))
            .map_err(|_| {
                ORDER.error(
                    self.id,
                    format!("{field} {value:?} is not a decimal amount"),
                )
            })
    }

    fn opt(&self, field: &str, amount: &Option<Amount>) -> Result<Option<Decimal>, ConnectorError> {
        amount.as_ref().map(|a| self.read(field, a)).transpose()
    }

    /// `a + b`, or a decode error naming `field`: amounts come from eBay, and
    /// `Decimal`'s operators panic past 28 digits.
    fn add(&self, field: &str, a: Decimal, b: Decimal) -> Result<Decimal, ConnectorError> {
        a.checked_add(b)
            .map(|d| self.currency.scaled(d))
            .ok_or_else(|| self.out_of_range(field))
    }

    fn sum<'b>(
        &self,
        field: &str,
        amounts: impl IntoIterator<Item = &'b Amount>,
    ) -> Result<Decimal, ConnectorError> {
        let mut total = self.zero();
        for a in amounts {
            total = self.add(field, total, self.read(field, a)?)?;
        }
        Ok(total)
    }

    fn out_of_range(&self, field: &str) -> ConnectorError {
        ORDER.error(
            self.id,
            format!(
                "{field} is out of range (more than 28 digits); eBay's figures cannot be right"
            ),
        )
    }
}

/// Maps eBay's three states onto canonical status and payment; see the
/// module doc for the table. The flag says a cancel request is open.
pub(crate) fn map_states(
    cancel_state: Option<&str>,
    fulfillment: Option<&str>,
    payment: Option<&str>,
) -> (OrderStatus, PaymentStatus, bool, Vec<NormalizationNote>) {
    let mut notes = Vec::new();
    let canonical_payment = match payment {
        Some("PAID") => PaymentStatus::Paid,
        Some("PARTIALLY_REFUNDED") => PaymentStatus::PartiallyRefunded,
        Some("FULLY_REFUNDED") => PaymentStatus::Refunded,
        Some("PENDING" | "FAILED") => PaymentStatus::Pending,
        None => {
            notes.push(NormalizationNote::new(
                "payment",
                NoteKind::Defaulted,
                "eBay gave no orderPaymentStatus; payment is pending",
            ));
            PaymentStatus::Pending
        }
        Some(other) => {
            notes.push(NormalizationNote::new(
                "payment",
                NoteKind::Coerced,
                format!("unknown orderPaymentStatus {other}; payment is pending"),
            ));
            PaymentStatus::Pending
        }
    };
    let (cancelled, cancel_requested) = match cancel_state {
        Some("CANCELED" | "CANCELLED") => (true, false),
        Some("IN_PROGRESS") => (false, true),
        Some("NONE_REQUESTED") | None => (false, false),
        Some(other) => {
            notes.push(NormalizationNote::new(
                "status",
                NoteKind::Coerced,
                format!("unknown cancelState {other}; treated as no cancellation"),
            ));
            (false, false)
        }
    };
    let status = match fulfillment {
        _ if cancelled => OrderStatus::Cancelled,
        Some("FULFILLED") => OrderStatus::Shipped,
        Some("IN_PROGRESS") => OrderStatus::PartiallyShipped,
        other => {
            if other != Some("NOT_STARTED") {
                notes.push(NormalizationNote::new(
                    "status",
                    NoteKind::Coerced,
                    format!(
                        "unknown orderFulfillmentStatus {}; treated as nothing shipped",
                        other.unwrap_or("(none)")
                    ),
                ));
            }
            match payment {
                Some("FULLY_REFUNDED") => OrderStatus::Cancelled,
                Some("PAID" | "PARTIALLY_REFUNDED") => OrderStatus::Ready,
                _ => OrderStatus::Pending,
            }
        }
    };
    (status, canonical_payment, cancel_requested, notes)
}

/// `cost / quantity`, rounded to the currency's minor units when it does not
/// divide evenly (then noted by the caller).
fn unit_price(currency: &Currency, cost: Decimal, quantity: u32) -> (Decimal, bool) {
    if quantity == 0 {
        return (currency.scaled(cost), true);
    }
    let q = Decimal::from(quantity);
    match cost.checked_div(q) {
        Some(exact) if exact.checked_mul(q) == Some(cost) && exact.scale() <= 8 => {
            (currency.scaled(exact), true)
        }
        Some(inexact) => (
            currency.scaled(inexact.round_dp(currency.minor_units())),
            false,
        ),
        None => (currency.scaled(Decimal::ZERO), false),
    }
}

fn build(
    account: &str,
    raw: &serde_json::Value,
    fulfillments: Option<Vec<wire::ShippingFulfillment>>,
    test: bool,
) -> Result<NormalizedOrder, ConnectorError> {
    let o: wire::Order = serde_json::from_value(raw.clone())
        .map_err(|e| ConnectorError::Decode(format!("not an eBay order: {e}")))?;
    let id = non_blank(&o.order_id)
        .ok_or_else(|| ConnectorError::Decode("ebay order without an orderId".into()))?;
    let mut notes = Notes(Vec::new());
    let pricing = o.pricing_summary.clone().unwrap_or_default();

    // Currency: the seller's, as every amount's `currency` gives it.
    let currency_code = pricing
        .total
        .as_ref()
        .and_then(|a| non_blank(&a.currency))
        .or_else(|| {
            pricing
                .price_subtotal
                .as_ref()
                .and_then(|a| non_blank(&a.currency))
        })
        .or_else(|| {
            o.line_items.iter().find_map(|l| {
                l.line_item_cost
                    .as_ref()
                    .and_then(|a| non_blank(&a.currency))
            })
        })
        .ok_or_else(|| ORDER.error(&id, "no currency on any amount"))?;
    let currency = Currency::new(&currency_code).map_err(|e| ORDER.error(&id, e))?;
    let money = Money {
        id: &id,
        currency: &currency,
    };

    // Times.
    let updated_at = match (
        non_blank(&o.last_modified_date),
        non_blank(&o.creation_date),
    ) {
        (Some(t), _) => ORDER.time(&id, "lastModifiedDate", &t)?,
        (None, Some(t)) => {
            notes.add(
                "updated_at",
                NoteKind::Defaulted,
                "eBay gave no lastModifiedDate; used creationDate",
            );
            ORDER.time(&id, "creationDate", &t)?
        }
        (None, None) => return Err(ORDER.error(&id, "neither creationDate nor lastModifiedDate")),
    };
    let placed_at = match non_blank(&o.creation_date) {
        Some(t) => ORDER.time(&id, "creationDate", &t)?,
        None => {
            notes.add(
                "placed_at",
                NoteKind::Defaulted,
                "eBay gave no creationDate; used lastModifiedDate",
            );
            updated_at
        }
    };

    // States.
    let cancel_state = o
        .cancel_status
        .as_ref()
        .and_then(|c| non_blank(&c.cancel_state));
    let payment_status = non_blank(&o.order_payment_status);
    let (status, payment, cancel_requested, state_notes) = map_states(
        cancel_state.as_deref(),
        non_blank(&o.order_fulfillment_status).as_deref(),
        payment_status.as_deref(),
    );
    notes.0.extend(state_notes);
    let cancelled_or_refunded =
        status == OrderStatus::Cancelled || payment_status.as_deref() == Some("FULLY_REFUNDED");

    // Lines.
    let mut lines = Vec::with_capacity(o.line_items.len());
    let mut line_statuses = Vec::with_capacity(o.line_items.len());
    let mut collected_tax = money.zero();
    let mut any_line_tax = false;
    let mut line_tax_sum = money.zero();
    let mut gift = None;
    for (i, l) in o.line_items.iter().enumerate() {
        let at = |f: &str| format!("lines[{i}].{f}");
        let line_id = non_blank(&l.line_item_id)
            .ok_or_else(|| ORDER.error(&id, format!("line item {i} has no lineItemId")))?;
        let sku = non_blank(&l.sku);
        if sku.is_none() {
            let listing = match (
                non_blank(&l.legacy_item_id),
                non_blank(&l.legacy_variation_id),
            ) {
                (Some(item), Some(var)) => format!("listing {item}, variation {var}"),
                (Some(item), None) => format!("listing {item}"),
                _ => "no legacy item id either".to_owned(),
            };
            notes.add(
                at("sku"),
                NoteKind::Defaulted,
                format!("line has no SKU ({listing})"),
            );
        }
        let title = non_blank(&l.title).unwrap_or_else(|| {
            notes.add(at("title"), NoteKind::Defaulted, "line has no title");
            String::new()
        });
        let quantity = match l.quantity {
            Some(q) => u32::try_from(q).unwrap_or_else(|_| {
                notes.add(
                    at("quantity"),
                    NoteKind::Coerced,
                    format!("quantity {q} is out of range; set to 0"),
                );
                0
            }),
            None => {
                notes.add(
                    at("quantity"),
                    NoteKind::Defaulted,
                    "line has no quantity; 1",
                );
                1
            }
        };
        let cost = match &l.line_item_cost {
            Some(a) => money.read(&at("total"), a)?,
            None => {
                notes.add(
                    at("total"),
                    NoteKind::Defaulted,
                    "line has no lineItemCost; 0",
                );
                money.zero()
            }
        };
        let (unit, exact) = unit_price(&currency, cost, quantity);
        if !exact {
            notes.add(
                at("unit_price"),
                NoteKind::Coerced,
                format!(
                    "lineItemCost {cost} over {quantity} units is not a whole amount; unit price rounded to {unit}, line total kept at {cost}"
                ),
            );
        }
        let discount = match (&l.applied_promotions, &l.discounted_line_item_cost) {
            (Some(promos), _) if !promos.is_empty() => {
                let amounts: Vec<Amount> = promos
                    .iter()
                    .filter_map(|p| p.discount_amount.clone())
                    .collect();
                money.sum(&at("discount"), &amounts)?.abs()
            }
            (_, Some(after)) => {
                let after = money.read(&at("discount"), after)?;
                cost.checked_sub(after)
                    .map(|d| currency.scaled(d.abs()))
                    .ok_or_else(|| money.out_of_range(&at("discount")))?
            }
            _ => money.zero(),
        };
        let taxes = |list: &Option<Vec<wire::Tax>>| -> Result<Option<Decimal>, ConnectorError> {
            match list {
                Some(t) if !t.is_empty() => {
                    let amounts: Vec<Amount> = t.iter().filter_map(|t| t.amount.clone()).collect();
                    money.sum(&at("tax"), &amounts).map(Some)
                }
                _ => Ok(None),
            }
        };
        let collected = taxes(&l.ebay_collect_and_remit_taxes)?;
        if let Some(c) = collected {
            collected_tax = money.add("totals.tax", collected_tax, c)?;
        }
        let tax = match taxes(&l.taxes)? {
            Some(t) => Some(t),
            None if collected.is_some() => collected,
            None if l.taxes.is_some() || l.ebay_collect_and_remit_taxes.is_some() => {
                Some(money.zero())
            }
            None => None,
        };
        if let Some(t) = tax {
            any_line_tax = true;
            line_tax_sum = money.add("totals.tax", line_tax_sum, t)?;
        }
        let options = l
            .variation_aspects
            .iter()
            .filter_map(|a| Some(LineOption::new(non_blank(&a.name)?, non_blank(&a.value)?)))
            .collect();
        if gift.is_none()
            && let Some(message) = l.gift_details.as_ref().and_then(|g| non_blank(&g.message))
        {
            gift = Some(Gift {
                message: Some(message),
                wrap: false,
            });
        }
        line_statuses.push(non_blank(&l.line_item_fulfillment_status));
        lines.push(Line {
            line_id,
            sku,
            title,
            quantity,
            unit_price: unit,
            total: cost,
            discount,
            tax,
            refunded_quantity: 0,
            shipped_quantity: 0,
            options,
        });
    }

    // Shipments and shipped quantities.
    let index: BTreeMap<String, usize> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.line_id.clone(), i))
        .collect();
    let mut shipped = vec![0u32; lines.len()];
    let mut shipments = Vec::new();
    match &fulfillments {
        Some(list) => {
            let mut ordered: Vec<&wire::ShippingFulfillment> = list.iter().collect();
            ordered.sort_by_key(|f| {
                let at = f
                    .shipped_date
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok());
                (at, f.fulfillment_id.clone())
            });
            for (si, f) in ordered.iter().enumerate() {
                let fid = non_blank(&f.fulfillment_id).unwrap_or_default();
                let shipped_at = match non_blank(&f.shipped_date) {
                    Some(t) => Some(ORDER.time(&id, &format!("shipments[{si}].shipped_at"), &t)?),
                    None => None,
                };
                let tracking = non_blank(&f.shipment_tracking_number).unwrap_or_else(|| {
                    notes.add(
                        format!("shipments[{si}].tracking_number"),
                        NoteKind::Defaulted,
                        format!("fulfilment {fid} has no tracking number"),
                    );
                    String::new()
                });
                let mut shipment_lines = Vec::with_capacity(f.line_items.len());
                for r in &f.line_items {
                    let Some(line_id) = non_blank(&r.line_item_id) else {
                        continue;
                    };
                    let q = match r.quantity {
                        None => 1,
                        Some(q) => u32::try_from(q).unwrap_or_else(|_| {
                            notes.add(
                                format!("shipments[{si}].lines"),
                                NoteKind::Coerced,
                                format!("line {line_id} has quantity {q}; 0"),
                            );
                            0
                        }),
                    };
                    let sku = index.get(&line_id).and_then(|&i| {
                        shipped[i] = shipped[i].saturating_add(q);
                        lines[i].sku.clone()
                    });
                    shipment_lines.push(ShipmentLine {
                        line_id,
                        sku,
                        quantity: q,
                    });
                }
                shipments.push(Shipment {
                    carrier: non_blank(&f.shipping_carrier_code)
                        .map(|c| canonical_carrier(&c))
                        .unwrap_or_default(),
                    tracking_number: tracking,
                    tracking_url: None,
                    shipped_at,
                    lines: shipment_lines,
                });
            }
        }
        None if !o.fulfillment_hrefs.is_empty() => notes.add(
            "shipments",
            NoteKind::Dropped,
            format!(
                "eBay links {} fulfilment(s) that were not read; shipped quantities follow the line statuses",
                o.fulfillment_hrefs.len()
            ),
        ),
        None => {}
    }
    for (i, line) in lines.iter_mut().enumerate() {
        let by_status = match line_statuses[i].as_deref() {
            Some("FULFILLED") => line.quantity,
            Some("IN_PROGRESS") if fulfillments.is_none() => {
                notes.add(
                    format!("lines[{i}].shipped_quantity"),
                    NoteKind::Defaulted,
                    "eBay says the line is partly shipped; how many units needs its fulfilments; 0",
                );
                0
            }
            _ => 0,
        };
        if shipped[i] > line.quantity {
            notes.add(
                format!("lines[{i}].shipped_quantity"),
                NoteKind::Mismatch,
                format!(
                    "eBay's fulfilments ship {} units of a line of {}; kept {}",
                    shipped[i], line.quantity, line.quantity
                ),
            );
        }
        line.shipped_quantity = shipped[i].max(by_status).min(line.quantity);
    }

    // Refunded units.
    for (i, (line, l)) in lines.iter_mut().zip(&o.line_items).enumerate() {
        let unshipped = line.quantity - line.shipped_quantity;
        if cancelled_or_refunded {
            line.refunded_quantity = unshipped;
            continue;
        }
        if l.refunds.is_empty() {
            continue;
        }
        let amounts: Vec<Amount> = l.refunds.iter().filter_map(|r| r.amount.clone()).collect();
        let refunded = money.sum(&format!("lines[{i}].refunded_quantity"), &amounts)?;
        let paid = match &l.total {
            Some(a) => money.read(&format!("lines[{i}].total"), a)?,
            None => line.total,
        };
        if refunded > Decimal::ZERO && refunded >= paid {
            line.refunded_quantity = unshipped;
        } else {
            notes.add(
                format!("lines[{i}].refunded_quantity"),
                NoteKind::Dropped,
                format!(
                    "eBay refunded {refunded} of {paid} on this line without saying which units; refunded_quantity stays 0"
                ),
            );
        }
    }

    // Totals.
    let mut subtotal = money.zero();
    for l in &lines {
        subtotal = money.add("totals.subtotal", subtotal, l.total)?;
    }
    if let Some(eb) = money.opt("totals.subtotal", &pricing.price_subtotal)?
        && eb != subtotal
    {
        notes.add(
            "totals.subtotal",
            NoteKind::Mismatch,
            format!("eBay's priceSubtotal {eb} differs from the sum of the line costs {subtotal}; kept the sum"),
        );
    }
    let shipping = match money.opt("totals.shipping", &pricing.delivery_cost)? {
        Some(s) => s,
        None => {
            notes.add(
                "totals.shipping",
                NoteKind::Defaulted,
                "eBay gave no deliveryCost; 0",
            );
            money.zero()
        }
    };
    let price_discount = money
        .opt("totals.discount", &pricing.price_discount)?
        .unwrap_or_default();
    let delivery_discount = money
        .opt("totals.discount", &pricing.delivery_discount)?
        .unwrap_or_default();
    let discount = money.add(
        "totals.discount",
        price_discount.abs(),
        delivery_discount.abs(),
    )?;
    let mut tax = match money.opt("totals.tax", &pricing.tax)? {
        Some(t) => t,
        None if any_line_tax && line_tax_sum != Decimal::ZERO => {
            notes.add(
                "totals.tax",
                NoteKind::Defaulted,
                "eBay gave no order tax; used the sum of the line taxes",
            );
            line_tax_sum
        }
        None => money.zero(),
    };
    let total = match &pricing.total {
        Some(a) => money.read("totals.total", a)?,
        None => return Err(ORDER.error(&id, "no pricingSummary.total")),
    };
    for (field, amount) in [("fee", &pricing.fee), ("adjustment", &pricing.adjustment)] {
        if let Some(v) = money.opt(&format!("totals ({field})"), amount)?
            && v != Decimal::ZERO
        {
            notes.add(
                "totals",
                NoteKind::Dropped,
                format!("eBay's pricingSummary.{field} {v} has no canonical field"),
            );
        }
    }
    let adds_up = |tax: Decimal| {
        Totals {
            subtotal,
            shipping,
            tax,
            discount,
            total,
            refunded: Decimal::ZERO,
        }
        .adds_up()
    };
    if collected_tax > Decimal::ZERO && !adds_up(tax) {
        let with_collected = money.add("totals.tax", tax, collected_tax)?;
        if adds_up(with_collected) {
            notes.add(
                "totals.tax",
                NoteKind::Coerced,
                format!(
                    "pricingSummary.tax {tax} leaves out the {collected_tax} eBay collects and remits, which the total includes; tax is {with_collected}"
                ),
            );
            tax = with_collected;
        }
    }
    let mut refunded = money.zero();
    for (i, r) in o
        .payment_summary
        .as_ref()
        .map(|p| p.refunds.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some(amount) = &r.amount else { continue };
        let value = money.read(&format!("totals.refunded (refund {i})"), amount)?;
        match r.refund_status.as_deref() {
            Some("REFUNDED") => refunded = money.add("totals.refunded", refunded, value)?,
            other => notes.add(
                "totals.refunded",
                NoteKind::Dropped,
                format!(
                    "a refund of {value} is {}; not counted until eBay says REFUNDED",
                    other.unwrap_or("without status").to_ascii_lowercase()
                ),
            ),
        }
    }
    let totals = Totals {
        subtotal,
        shipping,
        tax,
        discount,
        total,
        refunded,
    };

    // Presentment: what the buyer paid before eBay converted it.
    let presentment = match pricing.total.as_ref().map(|t| {
        (
            non_blank(&t.converted_from_currency),
            non_blank(&t.converted_from_value),
        )
    }) {
        Some((Some(c), Some(v))) if c != currency.as_str() => {
            match (Currency::new(&c), Decimal::from_str(&v)) {
                (Ok(pc), Ok(d)) => Some(Presentment {
                    total: pc.scaled(d),
                    currency: pc,
                }),
                _ => {
                    notes.add(
                        "presentment",
                        NoteKind::Dropped,
                        format!("eBay's converted-from total {v:?} {c:?} is not readable"),
                    );
                    None
                }
            }
        }
        _ => None,
    };

    // Ship-to, shipping method and customer.
    let instructions = &o.fulfillment_start_instructions;
    let step = instructions
        .iter()
        .find_map(|i| i.shipping_step.as_ref().map(|s| (i, s)));
    let ship_to = step.and_then(|(_, s)| s.ship_to.as_ref());
    if step.is_some_and(|(i, _)| i.ebay_supported_fulfillment == Some(true)) {
        notes.add(
            "shipping_address",
            NoteKind::Coerced,
            "eBay ships this order on through its Global Shipping Program or eBay International Shipping: the address is eBay's hub, where the seller ships",
        );
    }
    if instructions
        .iter()
        .filter(|i| i.shipping_step.is_some())
        .count()
        > 1
    {
        notes.add(
            "shipping_address",
            NoteKind::Dropped,
            "the order has more than one shipping step; the first one's address is used",
        );
    }
    let shipping_address = ship_to.map(|c| {
        let a = c.contact_address.clone().unwrap_or_default();
        if non_blank(&a.county).is_some() {
            notes.add(
                "shipping_address",
                NoteKind::Dropped,
                "the address's county has no canonical field",
            );
        }
        Address {
            name: non_blank(&c.full_name),
            company: non_blank(&c.company_name),
            line1: non_blank(&a.address_line1),
            line2: non_blank(&a.address_line2),
            city: non_blank(&a.city),
            region: non_blank(&a.state_or_province),
            postal_code: non_blank(&a.postal_code),
            country: non_blank(&a.country_code).map(|c| c.to_ascii_uppercase()),
            phone: c
                .primary_phone
                .as_ref()
                .and_then(|p| non_blank(&p.phone_number)),
        }
    });
    if shipping_address.is_none() {
        let kinds: Vec<String> = instructions
            .iter()
            .filter_map(|i| non_blank(&i.fulfillment_instructions_type))
            .collect();
        notes.add(
            "shipping_address",
            NoteKind::Defaulted,
            if kinds.is_empty() {
                "the order has no shipping step".to_owned()
            } else {
                format!("the order has no shipping step ({})", kinds.join(", "))
            },
        );
    }
    let shipping_method = step.and_then(|(_, s)| non_blank(&s.shipping_service_code));
    let registered = o
        .buyer
        .as_ref()
        .and_then(|b| b.buyer_registration_address.as_ref());
    let pick = |f: fn(&wire::Contact) -> Option<String>| {
        registered.and_then(f).or_else(|| ship_to.and_then(f))
    };
    let customer = Customer {
        name: pick(|c| non_blank(&c.full_name)),
        email: pick(|c| non_blank(&c.email)),
        phone: pick(|c| {
            c.primary_phone
                .as_ref()
                .and_then(|p| non_blank(&p.phone_number))
        }),
    };
    let customer = if customer == Customer::default() {
        notes.add(
            "customer",
            NoteKind::Defaulted,
            "eBay gave no buyer contact",
        );
        None
    } else {
        Some(customer)
    };

    let fulfillment = match o
        .program
        .as_ref()
        .and_then(|p| p.fulfillment_program.as_ref())
        .and_then(|f| non_blank(&f.fulfilled_by))
        .as_deref()
    {
        Some("EBAY") => Fulfillment::Channel,
        _ => Fulfillment::Merchant,
    };

    let mut tags = Vec::new();
    if cancel_requested {
        tags.push(CANCEL_REQUESTED_TAG.to_owned());
    }

    let mut normalized = NormalizedOrder {
        order: Order {
            id: Order::make_id(account, &id),
            account: account.to_owned(),
            channel: Channel::Ebay,
            channel_order_id: id.clone(),
            number: Some(id),
            status,
            payment,
            placed_at,
            updated_at,
            currency,
            totals,
            presentment,
            customer,
            shipping_address,
            shipping_method,
            lines,
            note: non_blank(&o.buyer_checkout_notes),
            gift,
            fulfillment,
            test,
            shipments,
            tags,
            route: None,
            hold: None,
            priority: Priority::Normal,
        },
        notes: notes.0,
        raw: raw.clone(),
        raw_json: None,
    };
    normalized.note_totals_mismatch();
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_state_table() {
        use OrderStatus as S;
        use PaymentStatus as P;
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            S,
            P,
            bool,
        );
        let none = Some("NONE_REQUESTED");
        let cases: &[Case] = &[
            (
                Some("CANCELED"),
                Some("NOT_STARTED"),
                Some("FULLY_REFUNDED"),
                S::Cancelled,
                P::Refunded,
                false,
            ),
            (
                Some("CANCELED"),
                Some("FULFILLED"),
                Some("FULLY_REFUNDED"),
                S::Cancelled,
                P::Refunded,
                false,
            ),
            (
                none,
                Some("FULFILLED"),
                Some("PAID"),
                S::Shipped,
                P::Paid,
                false,
            ),
            (
                none,
                Some("FULFILLED"),
                Some("FULLY_REFUNDED"),
                S::Shipped,
                P::Refunded,
                false,
            ),
            (
                none,
                Some("IN_PROGRESS"),
                Some("PAID"),
                S::PartiallyShipped,
                P::Paid,
                false,
            ),
            (
                none,
                Some("IN_PROGRESS"),
                Some("PARTIALLY_REFUNDED"),
                S::PartiallyShipped,
                P::PartiallyRefunded,
                false,
            ),
            (
                none,
                Some("NOT_STARTED"),
                Some("FULLY_REFUNDED"),
                S::Cancelled,
                P::Refunded,
                false,
            ),
            (
                none,
                Some("NOT_STARTED"),
                Some("PAID"),
                S::Ready,
                P::Paid,
                false,
            ),
            (
                none,
                Some("NOT_STARTED"),
                Some("PARTIALLY_REFUNDED"),
                S::Ready,
                P::PartiallyRefunded,
                false,
            ),
            (
                none,
                Some("NOT_STARTED"),
                Some("PENDING"),
                S::Pending,
                P::Pending,
                false,
            ),
            (
                none,
                Some("NOT_STARTED"),
                Some("FAILED"),
                S::Pending,
                P::Pending,
                false,
            ),
            (
                Some("IN_PROGRESS"),
                Some("NOT_STARTED"),
                Some("PAID"),
                S::Ready,
                P::Paid,
                true,
            ),
            (
                None,
                Some("NOT_STARTED"),
                Some("PAID"),
                S::Ready,
                P::Paid,
                false,
            ),
        ];
        for &(cancel, ful, pay, status, payment, requested) in cases {
            let (s, p, r, notes) = map_states(cancel, ful, pay);
            assert_eq!(
                (s, p, r),
                (status, payment, requested),
                "{cancel:?} {ful:?} {pay:?}"
            );
            assert!(notes.is_empty(), "{notes:?}");
        }
        let (s, p, _, notes) = map_states(Some("MYSTERY"), Some("TELEPORTED"), Some("BARTERED"));
        assert_eq!((s, p), (S::Pending, P::Pending));
        assert_eq!(notes.len(), 3);
    }

    #[test]
    fn unit_prices_divide_the_line_cost_exactly_or_say_they_were_rounded() {
        let usd = Currency::new("USD").unwrap();
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(unit_price(&usd, d("7.6"), 1), (d("7.60"), true));
        assert_eq!(unit_price(&usd, d("15.0"), 2), (d("7.50"), true));
        assert_eq!(unit_price(&usd, d("0.25"), 2), (d("0.125"), true));
        assert_eq!(unit_price(&usd, d("10.00"), 3), (d("3.33"), false));
        let jpy = Currency::new("JPY").unwrap();
        assert_eq!(unit_price(&jpy, d("1000"), 3), (d("333"), false));
    }

    fn order(extra: serde_json::Value) -> serde_json::Value {
        let mut o = json!({
            "orderId": "12-34567-89012",
            "creationDate": "2026-11-27T05:01:02.000Z",
            "lastModifiedDate": "2026-11-27T05:03:00.000Z",
            "orderFulfillmentStatus": "NOT_STARTED",
            "orderPaymentStatus": "PAID",
            "pricingSummary": {
                "priceSubtotal": {"value": "7.6", "currency": "USD"},
                "deliveryCost": {"value": "0.0", "currency": "USD"},
                "total": {"value": "7.6", "currency": "USD"}
            },
            "lineItems": [{"lineItemId": "1", "sku": "A", "title": "a", "quantity": 1,
                           "lineItemCost": {"value": "7.6", "currency": "USD"}}]
        });
        if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                o.insert(k.clone(), v.clone());
            }
        }
        o
    }

    #[test]
    fn values_with_no_fixed_scale_are_read_exactly() {
        let n = normalize_order("ebay-us", &order(json!({})), None, false).unwrap();
        let t = &n.order.totals;
        assert_eq!(t.total.to_string(), "7.60");
        assert_eq!(n.order.lines[0].unit_price.to_string(), "7.60");
        assert!(
            n.notes.is_empty() || n.notes.iter().all(|x| x.field != "totals.total"),
            "{:?}",
            n.notes
        );
    }

    #[test]
    fn an_amount_in_another_currency_or_unreadable_is_a_decode_error_naming_the_field() {
        let o = order(json!({"pricingSummary": {
            "priceSubtotal": {"value": "7.6", "currency": "USD"},
            "deliveryCost": {"value": "1.0", "currency": "EUR"},
            "total": {"value": "8.6", "currency": "USD"}}}));
        let err = normalize_order("ebay-us", &o, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("totals.shipping") && err.contains("EUR"),
            "{err}"
        );
        let o = order(json!({"pricingSummary": {"total": {"value": "seven", "currency": "USD"}}}));
        let err = normalize_order("ebay-us", &o, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("totals.total") && err.contains("seven"),
            "{err}"
        );
        let o = order(
            json!({"pricingSummary": {"total": {"value": "99999999999999999999999999999", "currency": "USD"}}}),
        );
        assert_eq!(
            normalize_order("ebay-us", &o, None, false)
                .unwrap_err()
                .class(),
            "decode"
        );
        for body in [
            json!([]),
            json!({"title": "not an order"}),
            json!({"orderId": 5}),
        ] {
            assert_eq!(
                normalize_order("ebay-us", &body, None, false)
                    .unwrap_err()
                    .class(),
                "decode",
                "{body}"
            );
        }
    }
}
