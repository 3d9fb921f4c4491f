//! Orders API 2026-01-01 order → canonical order. Pure: no I/O, no clock.
//!
//! # Status and payment
//!
//! From `fulfillment.fulfillmentStatus` (asked for with `FULFILLMENT`):
//!
//! | Amazon | `status` | `payment` | why |
//! | --- | --- | --- | --- |
//! | `PENDING_AVAILABILITY` | `pending` | `pending` | a pre-order: not paid, release date ahead |
//! | `PENDING` | `pending` | `pending` | payment not authorised; Amazon says not to ship it (the address is often incomplete) |
//! | `UNSHIPPED` | `ready` | `paid` | authorised and ready to ship |
//! | `PARTIALLY_SHIPPED` | `partially_shipped` | `paid` | |
//! | `SHIPPED` | `shipped` | `paid` | |
//! | `CANCELLED` | `cancelled` | `voided` | never charged |
//! | `UNFULFILLABLE` | `cancelled` | `voided` | an Amazon-fulfilled order from another channel that Amazon cannot fulfil: nothing will ship |
//! | missing or unknown | `pending` | `pending` | with a note: an order whose state is not known is never shipped |
//!
//! Amazon collects the buyer's money itself and carries its risk, so an
//! authorised order is `paid` for the seller. The Orders API reports no
//! captures or refunds (they are in the Finances API, which is not read):
//! `totals.refunded` is always zero.
//!
//! # Quantities
//!
//! `shipped_quantity` is the item's `quantityFulfilled` (else the units in
//! its packages). `refunded_quantity` holds the units no longer owed: Amazon
//! does not say how many units were cancelled, but it gives `quantityOrdered`,
//! `quantityFulfilled` and `quantityUnfulfilled`, and what is neither
//! fulfilled nor still to fulfil was cancelled; in a cancelled or shipped
//! order every unit not shipped is. So a warehouse is never asked for a
//! cancelled unit.
//!
//! # Money
//!
//! Amounts are Amazon's decimal strings in the order's currency (the grand
//! total's), rendered with the currency's minor units. `subtotal` is the sum
//! of line totals (`unitPrice × quantityOrdered`); `shipping`, `tax` and
//! `discount` are the order's proceeds breakdowns (`SHIPPING`, `TAX`, the
//! size of `DISCOUNT`), else the sum of the items' breakdowns; `total` is
//! `proceeds.grandTotal`. Gift wrap, cash-on-delivery fees, delivery tips
//! and `OTHER` are part of Amazon's total without a canonical field: each is
//! named in a note, and the total keeps Amazon's figure (a `mismatch` note
//! says it does not add up). A line's `tax` and `discount` are its own
//! proceeds breakdowns; its `tax` is null when Amazon gave the line no
//! breakdown at all.
//!
//! # People, places and the rest
//!
//! `customer` is `buyer` (name, anonymised e-mail); `shipping_address` is
//! `recipient.deliveryAddress` (`addressLine3` joins `line2`; district and
//! municipality are dropped with a note). Both depend on the app's Amazon
//! roles: the 2026-01-01 API has no restricted-data token, so when Amazon
//! withholds them the fields are null and a note says so; the connector
//! does not ask again. `note` carries the buyer's delivery instructions
//! (drop-off location, address instruction) and a business buyer's purchase
//! order number. `gift` comes from the items' gift options (message, and wrap
//! when a wrap level was bought). `fulfillment` is `channel` when
//! `fulfilledBy` is `AMAZON` (FBA). `number` is the Amazon order id;
//! `shipping_method` the service level (`STANDARD`, `EXPEDITED` ...).
//! `shipments` are the packages Amazon knows (FBM only), oldest first,
//! except cancelled labels. Tags: the marketplace's name in lower case
//! (`amazon.co.uk`; its id when Amazon gives no name), the order's programs
//! in lower case (`prime`, `amazon_business` ...), `fba` for Amazon-fulfilled
//! orders and `cancel-requested` while a buyer's cancellation request is
//! open, so that rules can hold such orders. Options: the item's condition
//! when it is not new, its measurement when sold by weight or volume, and
//! the Amazon Custom URL.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::DateTime;
use rust_decimal::Decimal;
use switchyard_contract::{
    Address, Channel, ConnectorError, Currency, Customer, Fulfillment, Gift, Line, LineOption,
    NormalizationNote, NormalizedOrder, NoteKind, Notes, Order, OrderStatus, PaymentStatus,
    Priority, RawOrderErrors, Shipment, ShipmentLine, Totals, non_blank,
};

use crate::carrier;
use crate::wire::{self, Breakdown, Money};

/// Normalizes one order as `searchOrders` or `getOrder` return it. Anything
/// that is not a 2026-01-01 order is a `Decode` error naming what is wrong.
pub fn normalize_order(
    account: &str,
    test: bool,
    raw: &serde_json::Value,
) -> Result<NormalizedOrder, ConnectorError> {
    let order: wire::Order = serde_json::from_value(raw.clone()).map_err(|e| {
        let id = raw
            .get("orderId")
            .and_then(|v| v.as_str())
            .map(|id| format!(" {id}"))
            .unwrap_or_default();
        ConnectorError::Decode(format!(
            "amazon order{id} is not an Orders API 2026-01-01 order: {e}"
        ))
    })?;
    build(account, test, order, raw.clone())
}

/// The order id of a raw order, for naming one that cannot be read.
pub fn order_id(raw: &serde_json::Value) -> Option<String> {
    raw.get("orderId")
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Maps `fulfillmentStatus`; see the module doc for the table.
pub(crate) fn map_status(
    status: Option<&str>,
) -> (OrderStatus, PaymentStatus, Option<NormalizationNote>) {
    use OrderStatus as S;
    use PaymentStatus as P;
    match status {
        Some("PENDING_AVAILABILITY" | "PENDING") => (S::Pending, P::Pending, None),
        Some("UNSHIPPED") => (S::Ready, P::Paid, None),
        Some("PARTIALLY_SHIPPED") => (S::PartiallyShipped, P::Paid, None),
        Some("SHIPPED") => (S::Shipped, P::Paid, None),
        Some("CANCELLED" | "UNFULFILLABLE") => (S::Cancelled, P::Voided, None),
        None => (
            S::Pending,
            P::Pending,
            Some(NormalizationNote::new(
                "status",
                NoteKind::Defaulted,
                "Amazon gave no fulfillment status; pending, so that it is not shipped",
            )),
        ),
        Some(other) => (
            S::Pending,
            P::Pending,
            Some(NormalizationNote::new(
                "status",
                NoteKind::Coerced,
                format!("unknown fulfillment status {other}; pending, so that it is not shipped"),
            )),
        ),
    }
}

/// Every decode error names the order ("amazon order <id>: …").
const ORDER: RawOrderErrors = RawOrderErrors {
    channel: Channel::Amazon,
    noun: "order",
    times: "ISO 8601",
};

/// The amounts of one order, all in its currency.
struct Purse<'a> {
    id: &'a str,
    currency: &'a Currency,
}

impl Purse<'_> {
    fn zero(&self) -> Decimal {
        self.currency.scaled(Decimal::ZERO)
    }

    /// An amount in the order's currency; another currency is an error the
    /// caller turns into a note or a refusal.
    fn amount(&self, field: &str, money: &Money) -> Result<Decimal, String> {
        let code = non_blank(&money.currency_code).unwrap_or_default();
        if code != self.currency.as_str() {
            return Err(format!(
                "{field} is in {code:?}, not the order's {}",
                self.currency
            ));
        }
        let value = money.amount.as_deref().unwrap_or("");
        Decimal::from_str(value.trim())
            .map(|d| self.currency.scaled(d))
            .map_err(|_| format!("{field} {value:?} is not a decimal amount"))
    }

    fn checked(&self, field: &str, result: Option<Decimal>) -> Result<Decimal, ConnectorError> {
        result.map(|d| self.currency.scaled(d)).ok_or_else(|| {
            ORDER.error(
                self.id,
                format!("{field} is out of range (more than 28 digits)"),
            )
        })
    }

    /// Sums the breakdowns of one kind; amounts in another currency are left
    /// out with a note.
    fn sum_kind(
        &self,
        field: &str,
        breakdowns: &[Breakdown],
        kind: &str,
        notes: &mut Notes,
    ) -> Result<Option<Decimal>, ConnectorError> {
        let mut sum: Option<Decimal> = None;
        for b in breakdowns
            .iter()
            .filter(|b| b.kind.as_deref() == Some(kind))
        {
            let Some(money) = &b.subtotal else { continue };
            match self.amount(field, money) {
                Ok(v) => {
                    let s = sum.unwrap_or(Decimal::ZERO).checked_add(v);
                    sum = Some(self.checked(field, s)?);
                }
                Err(e) => notes.add(field, NoteKind::Dropped, e),
            }
        }
        Ok(sum)
    }
}

/// Categories of Amazon's proceeds the canonical totals have fields for.
const KNOWN_KINDS: &[&str] = &["ITEM", "SHIPPING", "TAX", "DISCOUNT"];

fn to_u32(q: i64) -> Option<u32> {
    u32::try_from(q).ok()
}

fn build(
    account: &str,
    test: bool,
    o: wire::Order,
    raw: serde_json::Value,
) -> Result<NormalizedOrder, ConnectorError> {
    let id = o.order_id.trim().to_owned();
    if id.is_empty() {
        return Err(ConnectorError::Decode(
            "amazon order without an orderId".into(),
        ));
    }
    let mut notes = Notes(Vec::new());

    let placed_at = match non_blank(&o.created_time) {
        Some(t) => ORDER.time(&id, "createdTime", &t)?,
        None => return Err(ORDER.error(&id, "no createdTime")),
    };
    let updated_at = match non_blank(&o.last_updated_time) {
        Some(t) => ORDER.time(&id, "lastUpdatedTime", &t)?,
        None => return Err(ORDER.error(&id, "no lastUpdatedTime")),
    };

    let proceeds = o.proceeds.unwrap_or_default();
    let currency_code = proceeds
        .grand_total
        .as_ref()
        .and_then(|m| non_blank(&m.currency_code))
        .or_else(|| {
            o.order_items.iter().find_map(|i| {
                i.product
                    .price
                    .as_ref()
                    .and_then(|p| p.unit_price.as_ref())
                    .and_then(|m| non_blank(&m.currency_code))
            })
        })
        .ok_or_else(|| ORDER.error(&id, "no currency: neither a grand total nor a unit price"))?;
    let currency = Currency::new(&currency_code).map_err(|e| ORDER.error(&id, e))?;
    let purse = Purse {
        id: &id,
        currency: &currency,
    };

    let fulfillment_info = o.fulfillment.unwrap_or_default();
    let (status, payment, status_note) =
        map_status(non_blank(&fulfillment_info.fulfillment_status).as_deref());
    notes.0.extend(status_note);
    let amazon_ships = match non_blank(&fulfillment_info.fulfilled_by).as_deref() {
        Some("AMAZON") => true,
        Some("MERCHANT") => false,
        other => {
            notes.add(
                "fulfillment",
                NoteKind::Defaulted,
                format!(
                    "Amazon did not say who ships ({}); merchant",
                    other.unwrap_or("no fulfilledBy")
                ),
            );
            false
        }
    };

    // Packages first: they are the shipments, and the fallback for shipped
    // quantities when an item carries none.
    let mut packages: Vec<&wire::Package> = Vec::new();
    for p in o.packages.iter().flatten() {
        let status = p.package_status.as_ref();
        let cancelled = status.and_then(|s| s.status.as_deref()) == Some("CANCELLED")
            || status.and_then(|s| s.detailed_status.as_deref()) == Some("LABEL_CANCELLED");
        if cancelled {
            notes.add(
                "shipments",
                NoteKind::Dropped,
                format!(
                    "package {} is cancelled, not a shipment",
                    p.package_reference_id
                        .as_deref()
                        .unwrap_or("(no reference)")
                ),
            );
        } else {
            packages.push(p);
        }
    }
    packages.sort_by_key(|p| {
        let at = p
            .ship_time
            .as_deref()
            .or(p.created_time.as_deref())
            .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok());
        (at, p.package_reference_id.clone())
    });
    let mut packaged: BTreeMap<&str, u32> = BTreeMap::new();
    for p in &packages {
        for item in &p.package_items {
            let q = to_u32(item.quantity).unwrap_or(0);
            let entry = packaged.entry(item.order_item_id.as_str()).or_default();
            *entry = entry.saturating_add(q);
        }
    }

    // Lines.
    let mut lines = Vec::with_capacity(o.order_items.len());
    let mut gifts: Vec<(String, Option<String>, bool)> = Vec::new();
    let mut cancel_requested = false;
    let mut item_shipping: Option<Decimal> = None;
    let mut item_tax: Option<Decimal> = None;
    let mut any_item_breakdowns = false;
    for (i, item) in o.order_items.iter().enumerate() {
        let f = |name: &str| format!("lines[{i}].{name}");
        let line_id = item.order_item_id.trim().to_owned();
        let product = &item.product;
        let sku = non_blank(&product.seller_sku);
        if sku.is_none() {
            notes.add(f("sku"), NoteKind::Defaulted, "item has no seller SKU");
        }
        let title = non_blank(&product.title).unwrap_or_else(|| {
            notes.add(f("title"), NoteKind::Defaulted, "item has no title");
            String::new()
        });
        let quantity = to_u32(item.quantity_ordered).unwrap_or_else(|| {
            notes.add(
                f("quantity"),
                NoteKind::Coerced,
                format!(
                    "quantityOrdered {} is out of range; set to 0",
                    item.quantity_ordered
                ),
            );
            0
        });
        let item_proceeds = item.proceeds.as_ref();
        let breakdowns: &[Breakdown] = item_proceeds.map_or(&[], |p| p.breakdowns.as_slice());
        let unit_price = match product.price.as_ref().and_then(|p| p.unit_price.as_ref()) {
            Some(m) => purse
                .amount(&f("unit_price"), m)
                .map_err(|e| ORDER.error(&id, e))?,
            None => {
                let item_total =
                    purse.sum_kind(&f("unit_price"), breakdowns, "ITEM", &mut notes)?;
                match item_total {
                    Some(t) if quantity > 0 => {
                        notes.add(
                            f("unit_price"),
                            NoteKind::Coerced,
                            "item has no unit price; its ITEM proceeds divided by its quantity",
                        );
                        purse.checked(&f("unit_price"), t.checked_div(Decimal::from(quantity)))?
                    }
                    _ => {
                        notes.add(f("unit_price"), NoteKind::Defaulted, "item has no price; 0");
                        purse.zero()
                    }
                }
            }
        };
        let total = purse.checked(&f("total"), unit_price.checked_mul(Decimal::from(quantity)))?;
        let discount = purse
            .sum_kind(&f("discount"), breakdowns, "DISCOUNT", &mut notes)?
            .map_or(purse.zero(), |d| d.abs());
        let tax = if breakdowns.is_empty() {
            None
        } else {
            any_item_breakdowns = true;
            let t = purse.sum_kind(&f("tax"), breakdowns, "TAX", &mut notes)?;
            item_tax = Some(
                purse.checked(
                    "totals.tax",
                    item_tax
                        .unwrap_or(Decimal::ZERO)
                        .checked_add(t.unwrap_or(Decimal::ZERO)),
                )?,
            );
            if let Some(s) = purse.sum_kind(&f("shipping"), breakdowns, "SHIPPING", &mut notes)? {
                item_shipping = Some(purse.checked(
                    "totals.shipping",
                    item_shipping.unwrap_or(Decimal::ZERO).checked_add(s),
                )?);
            }
            Some(t.unwrap_or_else(|| purse.zero()))
        };

        let fulfilment = item.fulfillment.as_ref();
        let shipped_quantity = match fulfilment.and_then(|x| x.quantity_fulfilled) {
            Some(q) => to_u32(q).unwrap_or(0).min(quantity),
            None => match packaged.get(line_id.as_str()) {
                Some(&q) => q.min(quantity),
                None if status == OrderStatus::Shipped => {
                    notes.add(
                        f("shipped_quantity"),
                        NoteKind::Coerced,
                        "Amazon gave no fulfilled quantity; the order is shipped, so all of it",
                    );
                    quantity
                }
                None => 0,
            },
        };
        // In a cancelled order nothing more ships, and in a shipped one
        // everything that will ship has: what did not is no longer owed.
        let refunded_quantity = if matches!(status, OrderStatus::Cancelled | OrderStatus::Shipped) {
            quantity - shipped_quantity
        } else {
            match fulfilment.and_then(|x| x.quantity_unfulfilled) {
                Some(open) => quantity
                    .saturating_sub(shipped_quantity)
                    .saturating_sub(to_u32(open).unwrap_or(0)),
                None => 0,
            }
        };

        let mut options = Vec::new();
        if let Some(c) = &product.condition
            && let Some(kind) = non_blank(&c.condition_type)
            && kind != "NEW"
        {
            let value = match non_blank(&c.condition_subtype) {
                Some(sub) if sub != kind => format!("{kind} ({sub})"),
                _ => kind,
            };
            options.push(LineOption::new("Condition", value));
        }
        if let Some(m) = &item.measurement
            && let Some(v) = &m.value
        {
            let unit = m.unit.clone().unwrap_or_default();
            options.push(LineOption::new(
                "Measurement",
                format!("{v} {unit}").trim().to_owned(),
            ));
        }
        if let Some(url) = product
            .customization
            .as_ref()
            .and_then(|c| non_blank(&c.customized_url))
        {
            options.push(LineOption::new("Customization", url));
        }

        if let Some(g) = fulfilment
            .and_then(|x| x.packing.as_ref())
            .and_then(|p| p.gift_option.as_ref())
        {
            gifts.push((
                line_id.clone(),
                non_blank(&g.gift_message),
                non_blank(&g.gift_wrap_level).is_some(),
            ));
        }
        if let Some(c) = &item.cancellation {
            match (&c.cancellation_request, &c.cancellation_execution) {
                (Some(req), None) => {
                    cancel_requested = true;
                    notes.add(
                        f("quantity"),
                        NoteKind::Dropped,
                        format!(
                            "{} asked to cancel this item ({}); Amazon has not cancelled it",
                            non_blank(&req.requester)
                                .map(|r| r.to_ascii_lowercase())
                                .unwrap_or_else(|| "someone".into()),
                            non_blank(&req.cancel_reason)
                                .unwrap_or_else(|| "no reason given".into())
                        ),
                    );
                }
                (_, Some(exec)) => notes.add(
                    f("refunded_quantity"),
                    NoteKind::Dropped,
                    format!(
                        "cancelled by {} ({})",
                        non_blank(&exec.cancelled_by)
                            .map(|r| r.to_ascii_lowercase())
                            .unwrap_or_else(|| "amazon".into()),
                        non_blank(&exec.cancel_reason).unwrap_or_else(|| "no reason given".into())
                    ),
                ),
                (None, None) => {}
            }
        }

        lines.push(Line {
            line_id,
            sku,
            title,
            quantity,
            unit_price,
            total,
            discount,
            tax,
            refunded_quantity,
            shipped_quantity,
            options,
        });
    }

    // Shipments.
    let line_sku: BTreeMap<&str, Option<String>> = lines
        .iter()
        .map(|l| (l.line_id.as_str(), l.sku.clone()))
        .collect();
    let mut shipments = Vec::with_capacity(packages.len());
    for (si, p) in packages.iter().enumerate() {
        let reference = p
            .package_reference_id
            .as_deref()
            .unwrap_or("(no reference)");
        let number = non_blank(&p.tracking_number);
        if number.is_none() {
            notes.add(
                format!("shipments[{si}].tracking_number"),
                NoteKind::Defaulted,
                format!("package {reference} has no tracking number"),
            );
        }
        let shipped_at = match p.ship_time.as_deref().or(p.created_time.as_deref()) {
            Some(t) => Some(ORDER.time(&id, &format!("shipments[{si}].shipped_at"), t)?),
            None => None,
        };
        let lines = p
            .package_items
            .iter()
            .map(|item| ShipmentLine {
                line_id: item.order_item_id.clone(),
                sku: line_sku.get(item.order_item_id.as_str()).cloned().flatten(),
                quantity: to_u32(item.quantity).unwrap_or(0),
            })
            .collect();
        shipments.push(Shipment {
            carrier: non_blank(&p.carrier)
                .map(|c| carrier::canonical_carrier(&c))
                .unwrap_or_default(),
            tracking_number: number.unwrap_or_default(),
            tracking_url: None,
            shipped_at,
            lines,
        });
    }

    // Totals.
    let order_breakdowns = &proceeds.breakdowns;
    let from_order = !order_breakdowns.is_empty();
    let mut figure = |field: &str, kind: &str, from_items: Option<Decimal>| {
        if from_order {
            return purse
                .sum_kind(field, order_breakdowns, kind, &mut notes)
                .map(|s| s.unwrap_or_else(|| purse.zero()));
        }
        match from_items {
            Some(v) => Ok(v),
            None if any_item_breakdowns => Ok(purse.zero()),
            None => {
                notes.add(
                    field,
                    NoteKind::Defaulted,
                    "Amazon gave no proceeds breakdown; 0",
                );
                Ok(purse.zero())
            }
        }
    };
    let shipping = figure("totals.shipping", "SHIPPING", item_shipping)?;
    let tax = figure("totals.tax", "TAX", item_tax)?;
    let discount = if from_order {
        purse
            .sum_kind("totals.discount", order_breakdowns, "DISCOUNT", &mut notes)?
            .map_or(purse.zero(), |d| d.abs())
    } else {
        let sum = lines
            .iter()
            .try_fold(Decimal::ZERO, |s, l| s.checked_add(l.discount));
        purse.checked("totals.discount", sum)?
    };
    let subtotal = lines
        .iter()
        .try_fold(Decimal::ZERO, |s, l| s.checked_add(l.total));
    let subtotal = purse.checked("totals.subtotal", subtotal)?;
    let total = match &proceeds.grand_total {
        Some(m) => purse
            .amount("totals.total", m)
            .map_err(|e| ORDER.error(&id, e))?,
        None => {
            notes.add(
                "totals.total",
                NoteKind::Defaulted,
                "Amazon gave no grand total; subtotal + shipping + tax - discount",
            );
            let sum = subtotal
                .checked_add(shipping)
                .and_then(|s| s.checked_add(tax))
                .and_then(|s| s.checked_sub(discount));
            purse.checked("totals.total", sum)?
        }
    };
    let mut extra: BTreeMap<String, Decimal> = BTreeMap::new();
    for b in order_breakdowns {
        let kind = non_blank(&b.kind).unwrap_or_else(|| "(no type)".into());
        if KNOWN_KINDS.contains(&kind.as_str()) {
            continue;
        }
        if let Some(m) = &b.subtotal
            && let Ok(v) = purse.amount("totals", m)
        {
            let sum = extra
                .get(&kind)
                .copied()
                .unwrap_or(Decimal::ZERO)
                .checked_add(v);
            extra.insert(kind, purse.checked("totals", sum)?);
        }
    }
    for (kind, value) in extra.into_iter().filter(|(_, v)| !v.is_zero()) {
        notes.add(
            "totals",
            NoteKind::Dropped,
            format!(
                "{} {value} {} is part of Amazon's total but has no field of its own",
                kind.to_ascii_lowercase().replace('_', " "),
                purse.currency
            ),
        );
    }
    let totals = Totals {
        subtotal,
        shipping,
        tax,
        discount,
        total,
        refunded: purse.zero(),
    };

    // Customer and address.
    let fba = if amazon_ships {
        " (Amazon withholds most of it for orders it fulfils)"
    } else {
        ""
    };
    let withheld = |what: &str| {
        if status == OrderStatus::Pending {
            format!("Amazon sent no {what}: it gives none until the order is paid")
        } else {
            format!(
                "Amazon sent no {what}{fba}: the app needs Amazon's role for it, and Orders \
                 API 2026-01-01 has no restricted-data token to ask again with"
            )
        }
    };
    let buyer = o.buyer.unwrap_or_default();
    let customer = Customer {
        name: non_blank(&buyer.buyer_name),
        email: non_blank(&buyer.buyer_email),
        phone: None,
    };
    let customer = if customer.name.is_none() && customer.email.is_none() {
        notes.add("customer", NoteKind::Defaulted, withheld("buyer data"));
        None
    } else {
        Some(customer)
    };
    let recipient = o.recipient.unwrap_or_default();
    let shipping_address = match recipient.delivery_address {
        Some(a) => {
            for (what, value) in [
                ("district or county", &a.district_or_county),
                ("municipality", &a.municipality),
            ] {
                if let Some(v) = non_blank(value) {
                    notes.add(
                        "shipping_address",
                        NoteKind::Dropped,
                        format!("{what} {v:?} has no field of its own"),
                    );
                }
            }
            let line2 = [non_blank(&a.address_line2), non_blank(&a.address_line3)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            Some(Address {
                name: non_blank(&a.name),
                company: non_blank(&a.company_name)
                    .or_else(|| non_blank(&buyer.buyer_company_name)),
                line1: non_blank(&a.address_line1),
                line2: Some(line2).filter(|l| !l.is_empty()),
                city: non_blank(&a.city),
                region: non_blank(&a.state_or_region),
                postal_code: non_blank(&a.postal_code),
                country: non_blank(&a.country_code).map(|c| c.to_ascii_uppercase()),
                phone: non_blank(&a.phone),
            })
        }
        None => {
            notes.add(
                "shipping_address",
                NoteKind::Defaulted,
                withheld("delivery address"),
            );
            None
        }
    };

    let mut note_parts = Vec::new();
    if let Some(pref) = &recipient.delivery_preference {
        if let Some(d) = non_blank(&pref.drop_off_location) {
            note_parts.push(format!("Drop-off: {d}"));
        }
        if let Some(i) = non_blank(&pref.address_instruction) {
            note_parts.push(i);
        }
    }
    if let Some(po) = non_blank(&buyer.buyer_purchase_order_number) {
        note_parts.push(format!("Purchase order: {po}"));
    }
    let note = Some(note_parts.join("\n")).filter(|n| !n.is_empty());

    let gift = if gifts.is_empty() {
        None
    } else {
        let mut messages: Vec<String> = Vec::new();
        for (_, m, _) in &gifts {
            if let Some(m) = m
                && !messages.contains(m)
            {
                messages.push(m.clone());
            }
        }
        if messages.len() > 1 {
            notes.add(
                "gift.message",
                NoteKind::Coerced,
                format!(
                    "items carry {} different gift messages; joined in item order",
                    messages.len()
                ),
            );
        }
        Some(Gift {
            message: Some(messages.join("\n")).filter(|m| !m.is_empty()),
            wrap: gifts.iter().any(|(_, _, wrap)| *wrap),
        })
    };

    let sales = &o.sales_channel;
    let mut tags: Vec<String> = Vec::new();
    match (
        non_blank(&sales.marketplace_name),
        non_blank(&sales.marketplace_id),
    ) {
        (Some(name), _) => tags.push(name.to_lowercase()),
        (None, Some(mid)) => tags.push(mid),
        (None, None) => notes.add(
            "tags",
            NoteKind::Defaulted,
            "Amazon named no marketplace for the order",
        ),
    }
    tags.extend(
        o.programs
            .iter()
            .filter_map(|p| non_blank(&Some(p.clone())))
            .map(|p| p.to_ascii_lowercase()),
    );
    if amazon_ships {
        tags.push("fba".into());
    }
    if cancel_requested && status.is_open() {
        tags.push("cancel-requested".into());
    }
    tags.sort();
    tags.dedup();

    let mut normalized = NormalizedOrder {
        order: Order {
            id: Order::make_id(account, &id),
            account: account.to_owned(),
            channel: Channel::Amazon,
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
            shipping_method: non_blank(&fulfillment_info.fulfillment_service_level),
            lines,
            note,
            gift,
            fulfillment: if amazon_ships {
                Fulfillment::Channel
            } else {
                Fulfillment::Merchant
            },
            test,
            shipments,
            tags,
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
    use serde_json::json;

    #[test]
    fn the_state_table() {
        use OrderStatus as S;
        use PaymentStatus as P;
        let cases = [
            ("PENDING_AVAILABILITY", S::Pending, P::Pending),
            ("PENDING", S::Pending, P::Pending),
            ("UNSHIPPED", S::Ready, P::Paid),
            ("PARTIALLY_SHIPPED", S::PartiallyShipped, P::Paid),
            ("SHIPPED", S::Shipped, P::Paid),
            ("CANCELLED", S::Cancelled, P::Voided),
            ("UNFULFILLABLE", S::Cancelled, P::Voided),
        ];
        for (amazon, status, payment) in cases {
            let (s, p, note) = map_status(Some(amazon));
            assert_eq!((s, p), (status, payment), "{amazon}");
            assert!(note.is_none());
        }
        for unknown in [None, Some("TELEPORTED"), Some("Canceled")] {
            let (s, _, note) = map_status(unknown);
            assert_eq!(s, S::Pending, "{unknown:?} must never be shipped");
            assert!(note.is_some());
        }
    }

    fn order(status: &str, items: serde_json::Value) -> serde_json::Value {
        json!({
            "orderId": "111-0000000-0000001",
            "createdTime": "2026-11-27T05:01:02Z",
            "lastUpdatedTime": "2026-11-27T06:00:00Z",
            "salesChannel": {"channelName": "AMAZON", "marketplaceId": "ATVPDKIKX0DER"},
            "proceeds": {"grandTotal": {"amount": "30.00", "currencyCode": "USD"}},
            "fulfillment": {"fulfillmentStatus": status, "fulfilledBy": "MERCHANT"},
            "orderItems": items,
        })
    }

    fn item(qty: i64, fulfilled: i64, unfulfilled: i64) -> serde_json::Value {
        json!({
            "orderItemId": "1", "quantityOrdered": qty,
            "product": {"sellerSku": "MUG", "title": "Mug",
                        "price": {"unitPrice": {"amount": "10", "currencyCode": "USD"}}},
            "fulfillment": {"quantityFulfilled": fulfilled, "quantityUnfulfilled": unfulfilled}
        })
    }

    #[test]
    fn units_neither_fulfilled_nor_open_are_no_longer_owed() {
        let o = normalize_order(
            "a",
            false,
            &order("PARTIALLY_SHIPPED", json!([item(3, 1, 1)])),
        )
        .unwrap();
        let l = &o.order.lines[0];
        assert_eq!((l.shipped_quantity, l.refunded_quantity), (1, 1));
        assert_eq!(l.open_quantity(), 1);
        assert_eq!(l.unit_price.to_string(), "10.00");
        let o = normalize_order("a", false, &order("CANCELLED", json!([item(3, 0, 3)]))).unwrap();
        assert_eq!(o.order.lines[0].refunded_quantity, 3);
        assert_eq!(o.order.lines[0].open_quantity(), 0);
    }

    #[test]
    fn what_is_not_an_order_is_a_decode_error_naming_it() {
        for body in [
            json!({"AmazonOrderId": "902-1", "PurchaseDate": "2026-01-01T00:00:00Z"}),
            json!([]),
            json!({"orderId": "111-1", "createdTime": "yesterday", "lastUpdatedTime": "2026-01-01T00:00:00Z",
                   "salesChannel": {}, "orderItems": [],
                   "proceeds": {"grandTotal": {"amount": "1", "currencyCode": "USD"}}}),
            json!({"orderId": "111-2", "createdTime": "2026-01-01T00:00:00Z", "lastUpdatedTime": "2026-01-01T00:00:00Z",
                   "salesChannel": {}, "orderItems": [],
                   "proceeds": {"grandTotal": {"amount": "1e999", "currencyCode": "USD"}}}),
        ] {
            let e = normalize_order("a", false, &body).unwrap_err();
            assert_eq!(e.class(), "decode", "{body}: {e}");
        }
    }
}
