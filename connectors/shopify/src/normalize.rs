//! Shopify order → canonical order (`docs/canonical-order.md`). Pure: no I/O, no clock.
//!
//! Shopify hands us the same order in two shapes: a GraphQL `Order` node when
//! we poll, and the REST order resource in `orders/*` webhooks. Each shape has
//! a small adapter that only *reads* it into [`Facts`] (the shape-neutral
//! list of what an order says); one builder turns facts into the canonical
//! order and its notes. Every decision lives in the builder, once, which is
//! what makes both paths give the same canonical JSON for the same order.
//!
//! # Status and payment
//!
//! GraphQL `displayFinancialStatus` / `displayFulfillmentStatus`; REST
//! `financial_status` (same values, lower case) / `fulfillment_status`
//! (`null` = `UNFULFILLED`, `partial` = `PARTIALLY_FULFILLED`, `fulfilled`,
//! `restocked`). The first matching row wins:
//!
//! | cancelled (`cancelledAt`) | fulfillment | financial | `status` |
//! | --- | --- | --- | --- |
//! | set | any | any | `cancelled` |
//! | — | `FULFILLED` | any | `shipped` |
//! | — | `PARTIALLY_FULFILLED` | any | `partially_shipped` |
//! | — | `RESTOCKED` (every item restocked, order cancelled) | any | `cancelled` |
//! | — | anything else (`UNFULFILLED`, `ON_HOLD`, `SCHEDULED`, …) | `PAID`, `PARTIALLY_REFUNDED`, `AUTHORIZED` | `ready` |
//! | — | anything else | `REFUNDED`, `VOIDED` | `cancelled` |
//! | — | anything else | `PENDING`, `PARTIALLY_PAID`, `EXPIRED`, none | `pending` |
//!
//! `AUTHORIZED` is `ready`: Shopify merchants on manual capture ship first and
//! capture on fulfilment (Shopify can capture automatically then), so an
//! authorized order is one to ship; its `payment` stays `pending` until the
//! money is captured. A refunded or voided order that never shipped is not to
//! be shipped, which is what `cancelled` means to the rest of switchyard.
//!
//! | financial | `payment` |
//! | --- | --- |
//! | `PAID` | `paid` |
//! | `PARTIALLY_REFUNDED` | `partially_refunded` |
//! | `REFUNDED` | `refunded` |
//! | `VOIDED` | `voided` |
//! | `PENDING`, `AUTHORIZED`, `PARTIALLY_PAID`, `EXPIRED`, none | `pending` |
//!
//! An unknown value (a future Shopify version) maps like "anything else" /
//! `pending` and leaves a `coerced` note.
//!
//! # Figures
//!
//! All amounts are the shop's currency (`shopMoney`, REST `shop_money`), the
//! order as placed (not Shopify's `current*` figures, which follow edits and
//! refunds). `subtotal` is the sum of line totals, each `originalUnitPrice ×
//! quantity` (before any discount); `discount` is Shopify's total discounts
//! (line, order and shipping discounts); `shipping`, `tax` and `total` are
//! Shopify's. `refunded` is GraphQL `totalRefundedSet`, or in REST the sum of
//! successful refund transactions (REST transactions carry only their own
//! currency: one not in the shop currency is left out, with a note, and the
//! next poll brings the exact figure). Amounts get the currency's minor units
//! (`"10.0"` → `"10.00"`, `JPY` none), because GraphQL and REST print the
//! same amount differently. Shops whose prices include tax do not add up as
//! the canonical total sums them; the channel's figures are kept and noted.
//!
//! # Lines: refunds, discounts, tax, options
//!
//! | canonical | GraphQL `LineItem` | REST line item |
//! | --- | --- | --- |
//! | `quantity` | `quantity` (as ordered, never lowered) | `quantity` |
//! | `refunded_quantity` | `quantity − currentQuantity` | `quantity − current_quantity`, or the units its `refunds[].refund_line_items` name when the payload has no `current_quantity` (the larger of the two when both are there) |
//! | `discount` | the sum of `discountAllocations` (shop money) | the sum of `discount_allocations` |
//! | `tax` | the sum of `taxLines` (up to [`graphql::TAX_LINES_PER_LINE`], noted when there may be more); null when none | the sum of `tax_lines`; null when none |
//! | `options` | `customAttributes`, in order | `properties`, in order |
//!
//! Discount allocations are a line's own discounts and its share of
//! order-level discounts as Shopify split them; shipping discounts are
//! allocated to shipping lines and are in no line. Options are what the
//! buyer typed or picked beyond the variant: the variant itself is the SKU
//! and its title is in the line's `title` (Shopify's REST shape carries only
//! the variant title, not its option names, and the GraphQL `selectedOptions`
//! follow later edits of the product, so the two shapes could not agree).
//! Properties whose name starts with `_` are hidden from the buyer by
//! Shopify's convention (apps keep their data there) and are left out, noted.
//!
//! A unit refunded after it shipped (a return) counts in both
//! `refunded_quantity` and `shipped_quantity`: Shopify's `currentQuantity`
//! does not say whether a refunded unit had shipped.
//!
//! Lines that need no shipping (gift cards, `isGiftCard` / `gift_card`, and
//! anything with `requiresShipping` false, such as downloads) owe a
//! warehouse nothing: their units not refunded count as shipped, with a
//! `coerced` note, so deliveries and stock reservations leave them out.
//!
//! # Note, gift, test
//!
//! `note` is the order's `note`; `test` is Shopify's `test`. Shopify has no
//! gift field: shops collect gift options as order attributes
//! (`customAttributes`, REST `note_attributes`) from their theme or an app.
//! Attribute names are compared in lower case with everything but letters
//! and digits removed (`Gift-Message` = `gift_message`): `giftmessage`,
//! `giftnote`, `giftmsg` give the gift message; `giftwrap`, `giftwrapping`,
//! `giftwrapped` set `wrap` unless the value is blank or a no (`no`, `false`,
//! `0`, `off`, `n`, `none`); `gift`, `isgift`, `thisisagift`, `giftorder`,
//! `sendasgift` mark the order as a gift the same way. Any of them makes
//! `gift`; other attributes have no canonical field and are noted. Buying a
//! gift card does not make the order a gift.
//!
//! # The rest
//!
//! `number` is the order `name` (`#1042`); `placed_at` is `processedAt` (the
//! date the merchant sees, also for imported orders); line `title` is the
//! line `name` (product and variant title); `shipping_method` is the first
//! shipping line's title; tags are sorted and deduplicated; carriers are read
//! back to switchyard codes (`UPS` → `ups`, see `carrier`); `shipments` are
//! the successful fulfillments, oldest first, each with its first tracking
//! number; `shipped_quantity` sums them. Customer name is the customer's
//! first and last name; e-mail and phone are the order's contact details,
//! else the customer's. Variant and inventory item ids have no canonical
//! field; they stay in `raw` (GraphQL) and [`sku_inventory_items`] reads them.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::DateTime;
use rust_decimal::Decimal;
use serde::Deserialize as _;
use switchyard_contract::{
    Address, Channel, ConnectorError, Currency, Customer, Fulfillment, Gift, Line, LineOption,
    NormalizationNote, NormalizedOrder, NoteKind, Notes, Order, OrderStatus, PaymentStatus,
    Presentment, Priority, RawOrderErrors, Shipment, ShipmentLine, Totals,
};

use crate::wire::{GqlMoneyBag, GqlOrder, RestMoneySet, RestOrder};
use crate::{carrier, graphql};

/// The shape-neutral reading of one order. Strings are as Shopify sent them;
/// the builder parses and decides.
#[derive(Debug, Default)]
struct Facts {
    id: String,
    name: Option<String>,
    created_at: Option<String>,
    processed_at: Option<String>,
    updated_at: Option<String>,
    cancelled_at: Option<String>,
    currency: Option<String>,
    presentment_currency: Option<String>,
    /// GraphQL spelling (`PARTIALLY_REFUNDED`).
    financial: Option<String>,
    /// GraphQL spelling (`PARTIALLY_FULFILLED`).
    fulfillment: Option<String>,
    taxes_included: bool,
    tags: Vec<String>,
    email: Option<String>,
    phone: Option<String>,
    note: Option<String>,
    test: bool,
    /// The order's attributes (`customAttributes` / `note_attributes`), in
    /// Shopify's order: `(name, value)`.
    attributes: Vec<(String, Option<String>)>,
    total: Option<String>,
    total_presentment: Option<String>,
    shipping: Option<String>,
    tax: Option<String>,
    discount: Option<String>,
    /// Amounts in the shop currency that add up to what was refunded.
    refunded: Vec<String>,
    /// Refunds that could not be counted, described for a note.
    refunds_left_out: Vec<String>,
    customer: Option<CustomerFacts>,
    shipping_address: Option<Address>,
    /// A country given by name only (no ISO code).
    country_name_only: Option<String>,
    shipping_title: Option<String>,
    more_shipping_lines: bool,
    lines: Vec<LineFacts>,
    lines_incomplete: bool,
    fulfillments: Vec<FulfillmentFacts>,
    fulfillments_incomplete: bool,
}

#[derive(Debug, Default)]
struct CustomerFacts {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

#[derive(Debug, Default)]
struct LineFacts {
    id: String,
    sku: Option<String>,
    title: Option<String>,
    quantity: i64,
    /// Ordered less refunded and removed units, when the shape gives it.
    current_quantity: Option<i64>,
    /// Units the order's refunds name (REST `refund_line_items`; GraphQL
    /// polls read `currentQuantity` instead).
    refunded_by_refunds: i64,
    gift_card: bool,
    /// `None` when the payload predates the field.
    requires_shipping: Option<bool>,
    unit_price: Option<String>,
    /// Discount allocations, shop currency.
    discounts: Vec<Option<String>>,
    /// Tax lines, shop currency.
    taxes: Vec<Option<String>>,
    /// The tax lines were read up to the query's limit: there may be more.
    taxes_maybe_more: bool,
    /// Line properties (`customAttributes` / `properties`), in Shopify's order.
    properties: Vec<(String, Option<String>)>,
}

#[derive(Debug, Default)]
struct FulfillmentFacts {
    id: String,
    /// GraphQL spelling (`SUCCESS`).
    status: Option<String>,
    created_at: Option<String>,
    tracking: Vec<Tracking>,
    lines: Vec<(String, Option<i64>)>,
    lines_incomplete: bool,
}

#[derive(Debug, Default)]
struct Tracking {
    company: Option<String>,
    number: Option<String>,
    url: Option<String>,
}

/// Normalizes a GraphQL `Order` node as the poll and look-up queries select it.
pub fn normalize_graphql_order(
    account: &str,
    node: &serde_json::Value,
) -> Result<NormalizedOrder, ConnectorError> {
    // Read through the borrowed value: `from_value` would want a copy of
    // the whole tree on top of the one kept as `raw`.
    let o = GqlOrder::deserialize(node)
        .map_err(|e| ConnectorError::Decode(format!("GraphQL order node: {e}")))?;
    build(account, graphql_facts(o), node.clone())
}

/// Normalizes the REST order resource (an `orders/*` webhook body). Anything
/// that is not a Shopify order is a `Decode` error.
pub fn normalize_rest_order(
    account: &str,
    body: &serde_json::Value,
) -> Result<NormalizedOrder, ConnectorError> {
    let o = rest_order(body)?;
    build(account, rest_facts(o), body.clone())
}

/// [`normalize_rest_order`] of the JSON text of a body (an `orders/*`
/// webhook), read straight into the order: no tree of the whole body is
/// built, only to be written out again as the payload. The text becomes
/// the order's `raw_json`.
///
/// A body the typed read refuses is read again through a tree, as every
/// body was before the typed read, and what that accepts is the order: a
/// key the JSON gives twice (`id`, `line_items`, a line's `sku`) is a
/// duplicate field to the typed read, and its last value to the tree.
/// Shopify acknowledges a delivery once, so a body refused here is an
/// order missed until a poll finds it. Only refused bodies pay for the
/// second read.
pub(crate) fn normalize_rest_text(
    account: &str,
    text: &[u8],
) -> Result<NormalizedOrder, RestTextError> {
    // The text is kept as the payload, and the fields the order does not
    // read are skipped without looking at their characters.
    std::str::from_utf8(text).map_err(|e| RestTextError::NotJson(e.to_string()))?;
    let o: RestOrder = match serde_json::from_slice(text) {
        Ok(o) => o,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            match serde_json::from_slice::<serde_json::Value>(text) {
                Ok(body) => match rest_order(&body) {
                    Ok(o) => o,
                    // The typed read stopped at the repeated key; what
                    // is wrong with the order is what the tree says.
                    Err(tree) if is_duplicate_field(&e) => return Err(RestTextError::Order(tree)),
                    // Its error names the line and column.
                    Err(_) => {
                        return Err(RestTextError::Order(ConnectorError::Decode(format!(
                            "not a Shopify order: {e}"
                        ))));
                    }
                },
                // The typed read stopped before the text's flaw.
                Err(e) => return Err(RestTextError::NotJson(e.to_string())),
            }
        }
        Err(e) => return Err(RestTextError::NotJson(e.to_string())),
    };
    let mut order =
        build(account, rest_facts(o), serde_json::Value::Null).map_err(RestTextError::Order)?;
    order.raw_json = Some(text.to_vec());
    Ok(order)
}

/// Whether the typed read of a body refused it for a key given twice
/// (serde's derive names it so), which a tree of the body takes the last
/// value of.
fn is_duplicate_field(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("duplicate field `")
}

/// Why a REST body is not an order.
#[derive(Debug)]
pub(crate) enum RestTextError {
    /// Not JSON at all.
    NotJson(String),
    /// JSON, but not a Shopify order, or one that cannot be read.
    Order(ConnectorError),
}

fn rest_order(body: &serde_json::Value) -> Result<RestOrder, ConnectorError> {
    RestOrder::deserialize(body)
        .map_err(|e| ConnectorError::Decode(format!("not a Shopify order: {e}")))
}

/// `(sku, inventory item GID)` for every line of a polled order whose variant
/// Shopify named, so that the daemon can remember SKU → inventory item and
/// pass it back as `InventoryPush::listing_ref`. Webhook (REST) orders carry
/// only variant ids, so they give nothing here; the next poll does.
pub fn sku_inventory_items(order: &NormalizedOrder) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let nodes = order
        .raw
        .pointer("/lineItems/nodes")
        .and_then(|n| n.as_array());
    for node in nodes.into_iter().flatten() {
        let sku = node
            .pointer("/variant/sku")
            .or_else(|| node.get("sku"))
            .and_then(|s| s.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let item = node
            .pointer("/variant/inventoryItem/id")
            .and_then(|s| s.as_str());
        if let (Some(sku), Some(item)) = (sku, item)
            && !out.iter().any(|(s, _)| s == sku)
        {
            out.push((sku.to_owned(), item.to_owned()));
        }
    }
    out
}

/// The number at the end of a GID (`gid://shopify/Order/123` → `123`); an id
/// that is not a GID is returned as is.
pub fn numeric_id(id: &str) -> &str {
    let id = id.split('?').next().unwrap_or(id);
    if id.starts_with("gid://") {
        id.rsplit('/').next().unwrap_or(id)
    } else {
        id
    }
}

// ---------------------------------------------------------------------------
// adapters: read a shape, decide nothing

fn shop(bag: &Option<GqlMoneyBag>) -> Option<String> {
    bag.as_ref().and_then(|b| b.shop_money.amount.clone())
}

fn graphql_facts(o: GqlOrder) -> Facts {
    let lines = o
        .line_items
        .nodes
        .iter()
        .map(|l| LineFacts {
            id: numeric_id(&l.id).to_owned(),
            sku: l.sku.clone(),
            title: l.name.clone(),
            quantity: l.quantity,
            current_quantity: l.current_quantity,
            refunded_by_refunds: 0,
            gift_card: l.is_gift_card,
            requires_shipping: l.requires_shipping,
            unit_price: shop(&l.original_unit_price_set),
            discounts: l
                .discount_allocations
                .iter()
                .map(|d| shop(&d.allocated_amount_set))
                .collect(),
            taxes: l.tax_lines.iter().map(|t| shop(&t.price_set)).collect(),
            taxes_maybe_more: l.tax_lines.len() >= graphql::TAX_LINES_PER_LINE,
            properties: l
                .custom_attributes
                .iter()
                .map(|a| (a.key.clone(), a.value.clone()))
                .collect(),
        })
        .collect();
    let fulfillments_incomplete = o
        .fulfillments_count
        .as_ref()
        .is_some_and(|c| c.count > o.fulfillments.len() as u64);
    let fulfillments = o
        .fulfillments
        .iter()
        .map(|f| FulfillmentFacts {
            id: numeric_id(&f.id).to_owned(),
            status: f.status.clone(),
            created_at: f.created_at.clone(),
            tracking: f
                .tracking_info
                .iter()
                .map(|t| Tracking {
                    company: t.company.clone(),
                    number: t.number.clone(),
                    url: t.url.clone(),
                })
                .collect(),
            lines: f
                .fulfillment_line_items
                .nodes
                .iter()
                .map(|l| (numeric_id(&l.line_item.id).to_owned(), l.quantity))
                .collect(),
            lines_incomplete: f.fulfillment_line_items.page_info.has_next_page,
        })
        .collect();
    let (shipping_address, country_name_only) = match o.shipping_address {
        Some(a) => {
            let name_only = a
                .country_code_v2
                .is_none()
                .then(|| a.country.clone())
                .flatten();
            (
                Some(Address {
                    name: a.name,
                    company: a.company,
                    line1: a.address1,
                    line2: a.address2,
                    city: a.city,
                    region: a.province_code.or(a.province),
                    postal_code: a.zip,
                    country: a.country_code_v2,
                    phone: a.phone,
                }),
                name_only,
            )
        }
        None => (None, None),
    };
    Facts {
        id: numeric_id(&o.id).to_owned(),
        name: o.name,
        created_at: o.created_at,
        processed_at: o.processed_at,
        updated_at: o.updated_at,
        cancelled_at: o.cancelled_at,
        currency: o.currency_code,
        presentment_currency: o.presentment_currency_code,
        financial: o.display_financial_status,
        fulfillment: o.display_fulfillment_status,
        taxes_included: o.taxes_included,
        tags: o.tags,
        email: o.email,
        phone: o.phone,
        note: o.note,
        test: o.test,
        attributes: o
            .custom_attributes
            .into_iter()
            .map(|a| (a.key, a.value))
            .collect(),
        total: shop(&o.total_price_set),
        total_presentment: o
            .total_price_set
            .as_ref()
            .and_then(|b| b.presentment_money.amount.clone()),
        shipping: shop(&o.total_shipping_price_set),
        tax: shop(&o.total_tax_set),
        discount: shop(&o.total_discounts_set),
        refunded: shop(&o.total_refunded_set).into_iter().collect(),
        refunds_left_out: Vec::new(),
        customer: o.customer.map(|c| CustomerFacts {
            first_name: c.first_name,
            last_name: c.last_name,
            email: c.default_email_address.and_then(|e| e.email_address),
            phone: c.default_phone_number.and_then(|p| p.phone_number),
        }),
        shipping_address,
        country_name_only,
        shipping_title: o.shipping_lines.nodes.first().and_then(|s| s.title.clone()),
        more_shipping_lines: o.shipping_lines.page_info.has_next_page
            || o.shipping_lines.nodes.len() > 1,
        lines,
        lines_incomplete: o.line_items.page_info.has_next_page,
        fulfillments,
        fulfillments_incomplete,
    }
}

fn rest_shop(set: &Option<RestMoneySet>, plain: &Option<String>) -> Option<String> {
    set.as_ref()
        .and_then(|s| s.shop_money.amount.clone())
        .or_else(|| plain.clone())
}

fn rest_facts(o: RestOrder) -> Facts {
    let shop_currency = o.currency.clone().unwrap_or_default();
    let mut refunded = Vec::new();
    let mut refunds_left_out = Vec::new();
    for t in o.refunds.iter().flat_map(|r| &r.transactions) {
        let is_refund =
            t.kind.as_deref() == Some("refund") && t.status.as_deref() == Some("success");
        if !is_refund {
            continue;
        }
        let amount = t.amount.clone().unwrap_or_default();
        match t.currency.as_deref() {
            None => refunded.push(amount),
            Some(c) if c == shop_currency => refunded.push(amount),
            Some(c) => refunds_left_out.push(format!("{amount} {c}")),
        }
    }
    let mut refunded_units: BTreeMap<&str, i64> = BTreeMap::new();
    for r in o.refunds.iter().flat_map(|r| &r.refund_line_items) {
        let units = refunded_units.entry(r.line_item_id.as_str()).or_default();
        *units = units.saturating_add(r.quantity.max(0));
    }
    let lines = o
        .line_items
        .iter()
        .map(|l| LineFacts {
            id: l.id.clone(),
            sku: l.sku.clone(),
            title: l.name.clone().or_else(|| l.title.clone()),
            quantity: l.quantity,
            current_quantity: l.current_quantity,
            refunded_by_refunds: refunded_units.get(l.id.as_str()).copied().unwrap_or(0),
            gift_card: l.gift_card.unwrap_or(false),
            requires_shipping: l.requires_shipping,
            unit_price: rest_shop(&l.price_set, &l.price),
            discounts: l
                .discount_allocations
                .iter()
                .map(|d| rest_shop(&d.amount_set, &d.amount))
                .collect(),
            taxes: l
                .tax_lines
                .iter()
                .map(|t| rest_shop(&t.price_set, &t.price))
                .collect(),
            taxes_maybe_more: false,
            properties: l
                .properties
                .iter()
                .map(|p| (p.name.clone().unwrap_or_default(), p.value.clone()))
                .collect(),
        })
        .collect();
    let fulfillments = o
        .fulfillments
        .iter()
        .map(|f| {
            let tracking = if f.tracking_numbers.is_empty() {
                if f.tracking_number.is_some()
                    || f.tracking_company.is_some()
                    || f.tracking_url.is_some()
                {
                    vec![Tracking {
                        company: f.tracking_company.clone(),
                        number: f.tracking_number.clone(),
                        url: f.tracking_url.clone(),
                    }]
                } else {
                    Vec::new()
                }
            } else {
                f.tracking_numbers
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Tracking {
                        company: f.tracking_company.clone(),
                        number: Some(n.clone()),
                        url: f
                            .tracking_urls
                            .get(i)
                            .cloned()
                            .or_else(|| (i == 0).then(|| f.tracking_url.clone()).flatten()),
                    })
                    .collect()
            };
            FulfillmentFacts {
                id: f.id.clone(),
                status: f.status.as_deref().map(str::to_ascii_uppercase),
                created_at: f.created_at.clone(),
                tracking,
                lines: f
                    .line_items
                    .iter()
                    .map(|l| (l.id.clone(), Some(l.quantity)))
                    .collect(),
                lines_incomplete: false,
            }
        })
        .collect();
    let (shipping_address, country_name_only) = match o.shipping_address {
        Some(a) => {
            let name_only = a
                .country_code
                .is_none()
                .then(|| a.country.clone())
                .flatten();
            (
                Some(Address {
                    name: a.name,
                    company: a.company,
                    line1: a.address1,
                    line2: a.address2,
                    city: a.city,
                    region: a.province_code.or(a.province),
                    postal_code: a.zip,
                    country: a.country_code,
                    phone: a.phone,
                }),
                name_only,
            )
        }
        None => (None, None),
    };
    let fulfillment = Some(match o.fulfillment_status.as_deref() {
        None => "UNFULFILLED".to_owned(),
        Some("partial") => "PARTIALLY_FULFILLED".to_owned(),
        Some(other) => other.to_ascii_uppercase(),
    });
    let total_shipping = rest_shop(&o.total_shipping_price_set, &None).or_else(|| {
        // Older payloads have no total_shipping_price_set; the lines add up to it.
        let prices: Option<Vec<Decimal>> = o
            .shipping_lines
            .iter()
            .map(|s| {
                rest_shop(&s.price_set, &s.price).and_then(|p| Decimal::from_str(p.trim()).ok())
            })
            .collect();
        // Checked: amounts near `Decimal::MAX` overflow a plain `sum` (a
        // panic); the builder turns `None` here into a decode error.
        prices.map(|p| {
            p.iter()
                .try_fold(Decimal::ZERO, |sum, x| sum.checked_add(*x))
                .map_or_else(|| SUM_OUT_OF_RANGE.to_owned(), |sum| sum.to_string())
        })
    });
    Facts {
        id: o.id,
        name: o.name,
        created_at: o.created_at,
        processed_at: o.processed_at,
        updated_at: o.updated_at,
        cancelled_at: o.cancelled_at,
        currency: o.currency,
        presentment_currency: o.presentment_currency,
        financial: o.financial_status.as_deref().map(str::to_ascii_uppercase),
        fulfillment,
        taxes_included: o.taxes_included.unwrap_or(false),
        tags: o
            .tags
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::to_owned)
            .collect(),
        email: o.email,
        phone: o.phone,
        note: o.note,
        test: o.test.unwrap_or(false),
        attributes: o
            .note_attributes
            .into_iter()
            .map(|a| (a.name.unwrap_or_default(), a.value))
            .collect(),
        total: rest_shop(&o.total_price_set, &o.total_price),
        total_presentment: o
            .total_price_set
            .as_ref()
            .and_then(|s| s.presentment_money.amount.clone()),
        shipping: total_shipping,
        tax: rest_shop(&o.total_tax_set, &o.total_tax),
        discount: rest_shop(&o.total_discounts_set, &o.total_discounts),
        refunded,
        refunds_left_out,
        customer: o.customer.map(|c| CustomerFacts {
            first_name: c.first_name,
            last_name: c.last_name,
            email: c.email,
            phone: c.phone,
        }),
        shipping_address,
        country_name_only,
        shipping_title: o.shipping_lines.first().and_then(|s| s.title.clone()),
        more_shipping_lines: o.shipping_lines.len() > 1,
        lines,
        lines_incomplete: false,
        fulfillments,
        fulfillments_incomplete: false,
    }
}

// ---------------------------------------------------------------------------
// the builder: every decision, once

/// Every decode error names the order ("shopify order <id>: …").
const ORDER: RawOrderErrors = RawOrderErrors {
    channel: Channel::Shopify,
    noun: "order",
    times: "RFC 3339",
};

/// Trimmed, and `None` when empty: Shopify sends `""` for blank fields.
fn text(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Digits after the point that amounts in this currency carry (ISO 4217).
fn minor_units(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// One canonical rendering per amount: at least the currency's minor units,
/// never fewer digits than the value has.
fn canonical_scale(d: Decimal, currency: &str) -> Decimal {
    let mut d = d.normalize();
    let minor = minor_units(currency);
    if d.scale() < minor {
        d.rescale(minor);
    }
    d
}

/// What `rest_facts` gives as the shipping figure when the shipping lines add
/// up past `Decimal`'s range; `amount` refuses it with the field's name.
const SUM_OUT_OF_RANGE: &str = "(shipping lines add up past the largest amount)";

/// The result of a checked sum or product of amounts, or a decode error
/// naming `field`: amounts come from the channel, and `Decimal`'s `+` and `*`
/// panic past 28 digits.
fn checked(
    id: &str,
    field: &str,
    result: Option<Decimal>,
    currency: &str,
) -> Result<Decimal, ConnectorError> {
    result.map(|d| canonical_scale(d, currency)).ok_or_else(|| {
        ORDER.error(
            id,
            format!("{field} is out of range (more than 28 digits); the channel's figures cannot be right"),
        )
    })
}

fn amount(id: &str, field: &str, value: &str, currency: &str) -> Result<Decimal, ConnectorError> {
    Decimal::from_str(value.trim())
        .map(|d| canonical_scale(d, currency))
        .map_err(|_| ORDER.error(id, format!("{field} {value:?} is not a decimal amount")))
}

/// Maps Shopify's two display states (GraphQL spelling) onto canonical
/// status and payment; see the module doc for the table.
pub(crate) fn map_states(
    cancelled: bool,
    financial: Option<&str>,
    fulfillment: Option<&str>,
) -> (OrderStatus, PaymentStatus, Vec<NormalizationNote>) {
    let mut notes = Vec::new();
    let payment = match financial {
        Some("PAID") => PaymentStatus::Paid,
        Some("PARTIALLY_REFUNDED") => PaymentStatus::PartiallyRefunded,
        Some("REFUNDED") => PaymentStatus::Refunded,
        Some("VOIDED") => PaymentStatus::Voided,
        Some("PENDING" | "AUTHORIZED" | "PARTIALLY_PAID" | "EXPIRED") => PaymentStatus::Pending,
        None => {
            notes.push(NormalizationNote::new(
                "payment",
                NoteKind::Defaulted,
                "Shopify gave no financial status; payment is pending",
            ));
            PaymentStatus::Pending
        }
        Some(other) => {
            notes.push(NormalizationNote::new(
                "payment",
                NoteKind::Coerced,
                format!("unknown financial status {other}; payment is pending"),
            ));
            PaymentStatus::Pending
        }
    };
    let status = match fulfillment {
        _ if cancelled => OrderStatus::Cancelled,
        Some("FULFILLED") => OrderStatus::Shipped,
        Some("PARTIALLY_FULFILLED") => OrderStatus::PartiallyShipped,
        Some("RESTOCKED") => OrderStatus::Cancelled,
        other => {
            let known = matches!(
                other,
                Some(
                    "UNFULFILLED"
                        | "PENDING_FULFILLMENT"
                        | "OPEN"
                        | "IN_PROGRESS"
                        | "ON_HOLD"
                        | "SCHEDULED"
                        | "REQUEST_DECLINED"
                        | "FULFILLMENT_NOT_REQUIRED"
                )
            );
            if !known {
                notes.push(NormalizationNote::new(
                    "status",
                    NoteKind::Coerced,
                    format!(
                        "unknown fulfillment status {}; treated as nothing shipped",
                        other.unwrap_or("(none)")
                    ),
                ));
            }
            match financial {
                Some("PAID" | "PARTIALLY_REFUNDED" | "AUTHORIZED") => OrderStatus::Ready,
                Some("REFUNDED" | "VOIDED") => OrderStatus::Cancelled,
                _ => OrderStatus::Pending,
            }
        }
    };
    (status, payment, notes)
}

fn to_u32(q: i64) -> Option<u32> {
    u32::try_from(q).ok()
}

/// The sum of a line's discount allocations: its own discounts and its
/// share of order-level ones, as Shopify allocated them. Shipping discounts
/// are allocated to shipping lines, so they are in no line's figure.
fn line_discount(
    id: &str,
    i: usize,
    allocations: &[Option<String>],
    cur: &str,
) -> Result<Decimal, ConnectorError> {
    let field = format!("lines[{i}].discount");
    let mut sum = Decimal::ZERO;
    for a in allocations.iter().flatten() {
        let a = amount(id, &field, a, cur)?;
        sum = checked(id, &field, sum.checked_add(a), cur)?;
    }
    Ok(canonical_scale(sum, cur))
}

/// The sum of a line's tax lines; `None` when Shopify gives the line none
/// (an untaxed line, or a payload that carries tax per order only).
fn line_tax(
    id: &str,
    i: usize,
    l: &LineFacts,
    cur: &str,
    notes: &mut Notes,
) -> Result<Option<Decimal>, ConnectorError> {
    let field = format!("lines[{i}].tax");
    let prices: Vec<&String> = l.taxes.iter().flatten().collect();
    if prices.is_empty() {
        return Ok(None);
    }
    let mut sum = Decimal::ZERO;
    for p in prices {
        let p = amount(id, &field, p, cur)?;
        sum = checked(id, &field, sum.checked_add(p), cur)?;
    }
    if l.taxes_maybe_more {
        notes.add(
            field,
            NoteKind::Dropped,
            format!(
                "line {} has at least {} tax lines; more may be missing from its tax",
                l.id,
                l.taxes.len()
            ),
        );
    }
    Ok(Some(canonical_scale(sum, cur)))
}

/// Units refunded or removed: what `currentQuantity` no longer counts, or
/// what the refunds name (older REST payloads have no `current_quantity`),
/// whichever is more, never more than were ordered.
fn refunded_quantity(i: usize, l: &LineFacts, quantity: u32, notes: &mut Notes) -> u32 {
    let ordered = i64::from(quantity);
    let removed = l.current_quantity.map_or(0, |c| ordered.saturating_sub(c));
    let refunded = removed.max(l.refunded_by_refunds).max(0);
    if refunded > ordered {
        notes.add(
            format!("lines[{i}].refunded_quantity"),
            NoteKind::Coerced,
            format!(
                "Shopify counts {refunded} units of line {} refunded or removed, more than the {quantity} ordered; {quantity}",
                l.id
            ),
        );
    }
    to_u32(refunded.min(ordered)).unwrap_or(0)
}

/// The buyer's choices for a line (`customAttributes` / `properties`), in
/// Shopify's order. Properties whose name starts with `_` are hidden from
/// the buyer by Shopify's convention (apps keep their data there), and an
/// option without a name or a value says nothing: both are left out, noted.
fn line_options(
    i: usize,
    properties: &[(String, Option<String>)],
    notes: &mut Notes,
) -> Vec<LineOption> {
    let mut options = Vec::with_capacity(properties.len());
    let mut left_out = Vec::new();
    for (name, value) in properties {
        let name_text = text(Some(name.clone()));
        match (name_text, text(value.clone())) {
            (Some(n), _) if n.starts_with('_') => left_out.push(n),
            (Some(n), Some(v)) => options.push(LineOption::new(n, v)),
            (Some(n), None) => left_out.push(format!("{n} (no value)")),
            (None, _) => left_out.push("(no name)".to_owned()),
        }
    }
    if !left_out.is_empty() {
        notes.add(
            format!("lines[{i}].options"),
            NoteKind::Dropped,
            format!(
                "left out private or empty line properties: {}",
                left_out.join(", ")
            ),
        );
    }
    options
}

/// How an attribute's name is compared: lower case, letters and digits only
/// (`Gift-Message`, `gift_message` and `giftMessage` are one name).
fn attribute_key(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Order attributes that carry the gift message.
const GIFT_MESSAGE_ATTRIBUTES: &[&str] = &["giftmessage", "giftnote", "giftmsg"];
/// Order attributes that say gift wrapping was asked for.
const GIFT_WRAP_ATTRIBUTES: &[&str] = &["giftwrap", "giftwrapping", "giftwrapped"];
/// Order attributes that mark the order as a gift.
const GIFT_FLAG_ATTRIBUTES: &[&str] = &["gift", "isgift", "thisisagift", "giftorder", "sendasgift"];

/// Whether a yes/no attribute says yes: anything but a blank or a no.
fn says_yes(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !v.is_empty() && !matches!(v.as_str(), "no" | "false" | "0" | "off" | "n" | "none")
    })
}

/// Shopify has no gift field: shops collect gift options as order
/// attributes from their theme or an app. The names in
/// [`GIFT_MESSAGE_ATTRIBUTES`], [`GIFT_WRAP_ATTRIBUTES`] and
/// [`GIFT_FLAG_ATTRIBUTES`] (compared by [`attribute_key`]) make `gift`;
/// other attributes have no canonical field and are noted.
fn gift_from_attributes(
    attributes: &[(String, Option<String>)],
    notes: &mut Notes,
) -> Option<Gift> {
    let mut message = None;
    let mut wrap = false;
    let mut flagged = false;
    let mut other = Vec::new();
    for (name, value) in attributes {
        let key = attribute_key(name);
        let value = text(value.clone());
        if GIFT_MESSAGE_ATTRIBUTES.contains(&key.as_str()) {
            if message.is_none() {
                message = value;
            }
        } else if GIFT_WRAP_ATTRIBUTES.contains(&key.as_str()) {
            wrap |= says_yes(value.as_deref());
        } else if GIFT_FLAG_ATTRIBUTES.contains(&key.as_str()) {
            flagged |= says_yes(value.as_deref());
        } else if let Some(name) = text(Some(name.clone())) {
            other.push(name);
        }
    }
    if !other.is_empty() {
        notes.add(
            "note",
            NoteKind::Dropped,
            format!(
                "order attributes {} have no canonical field; the raw payload keeps them",
                other.join(", ")
            ),
        );
    }
    (message.is_some() || wrap || flagged).then_some(Gift { message, wrap })
}

fn build(
    account: &str,
    f: Facts,
    raw: serde_json::Value,
) -> Result<NormalizedOrder, ConnectorError> {
    let id = f.id.trim().to_owned();
    if id.is_empty() {
        return Err(ConnectorError::Decode("shopify order without an id".into()));
    }
    let mut notes = Notes(Vec::new());

    let currency_code = text(f.currency).ok_or_else(|| ORDER.error(&id, "no currency"))?;
    let currency = Currency::new(&currency_code).map_err(|e| ORDER.error(&id, e))?;
    let cur = currency.as_str().to_owned();

    let updated_at = ORDER.time(
        &id,
        "updated_at",
        f.updated_at
            .as_deref()
            .ok_or_else(|| ORDER.error(&id, "no updated_at"))?,
    )?;
    let placed_at = match (text(f.processed_at), text(f.created_at)) {
        (Some(p), _) => ORDER.time(&id, "processed_at", &p)?,
        (None, Some(c)) => {
            notes.add(
                "placed_at",
                NoteKind::Defaulted,
                "Shopify gave no processed_at; used created_at",
            );
            ORDER.time(&id, "created_at", &c)?
        }
        (None, None) => return Err(ORDER.error(&id, "neither processed_at nor created_at")),
    };
    let cancelled = match text(f.cancelled_at) {
        Some(c) => {
            ORDER.time(&id, "cancelled_at", &c)?;
            true
        }
        None => false,
    };

    let number = text(f.name);
    if number.is_none() {
        notes.add("number", NoteKind::Defaulted, "Shopify gave no order name");
    }

    let (status, payment, state_notes) =
        map_states(cancelled, f.financial.as_deref(), f.fulfillment.as_deref());
    notes.0.extend(state_notes);

    // Lines.
    let mut lines = Vec::with_capacity(f.lines.len());
    for (i, l) in f.lines.iter().enumerate() {
        let sku = text(l.sku.clone());
        if sku.is_none() {
            notes.add(
                format!("lines[{i}].sku"),
                NoteKind::Defaulted,
                "line has no SKU",
            );
        }
        let title = text(l.title.clone()).unwrap_or_else(|| {
            notes.add(
                format!("lines[{i}].title"),
                NoteKind::Defaulted,
                "line has no name",
            );
            String::new()
        });
        let quantity = to_u32(l.quantity).unwrap_or_else(|| {
            notes.add(
                format!("lines[{i}].quantity"),
                NoteKind::Coerced,
                format!("quantity {} is out of range; set to 0", l.quantity),
            );
            0
        });
        let unit_price = match &l.unit_price {
            Some(p) => amount(&id, &format!("lines[{i}].unit_price"), p, &cur)?,
            None => {
                notes.add(
                    format!("lines[{i}].unit_price"),
                    NoteKind::Defaulted,
                    "line has no price; 0",
                );
                canonical_scale(Decimal::ZERO, &cur)
            }
        };
        lines.push(Line {
            line_id: l.id.clone(),
            sku,
            title,
            quantity,
            unit_price,
            total: checked(
                &id,
                &format!("lines[{i}].total"),
                unit_price.checked_mul(Decimal::from(quantity)),
                &cur,
            )?,
            discount: line_discount(&id, i, &l.discounts, &cur)?,
            tax: line_tax(&id, i, l, &cur, &mut notes)?,
            refunded_quantity: refunded_quantity(i, l, quantity, &mut notes),
            shipped_quantity: 0,
            options: line_options(i, &l.properties, &mut notes),
        });
    }
    if f.lines_incomplete {
        notes.add(
            "lines",
            NoteKind::Dropped,
            format!(
                "Shopify has more line items than the {} read; the rest are missing from lines and subtotal",
                lines.len()
            ),
        );
    }

    // Shipments: successful fulfillments, oldest first.
    let mut fulfillments: Vec<&FulfillmentFacts> = Vec::new();
    for fl in &f.fulfillments {
        if fl.status.as_deref() == Some("SUCCESS") {
            fulfillments.push(fl);
        } else {
            notes.add(
                "shipments",
                NoteKind::Dropped,
                format!(
                    "fulfillment {} is {}, not a shipment",
                    fl.id,
                    fl.status
                        .as_deref()
                        .unwrap_or("without status")
                        .to_ascii_lowercase()
                ),
            );
        }
    }
    // By instant, not by text: REST times carry the shop's offset.
    fulfillments.sort_by_key(|fl| {
        let at = fl
            .created_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok());
        (at, fl.id.parse::<u128>().ok(), fl.id.clone())
    });
    let line_index: BTreeMap<&str, usize> = f
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i))
        .collect();
    let mut shipments = Vec::with_capacity(fulfillments.len());
    for (si, fl) in fulfillments.iter().enumerate() {
        let first = fl.tracking.first();
        let company = first.and_then(|t| text(t.company.clone()));
        let number = first.and_then(|t| text(t.number.clone()));
        if number.is_none() {
            notes.add(
                format!("shipments[{si}].tracking_number"),
                NoteKind::Defaulted,
                format!("fulfillment {} has no tracking number", fl.id),
            );
        }
        if fl.tracking.len() > 1 {
            notes.add(
                format!("shipments[{si}].tracking_number"),
                NoteKind::Dropped,
                format!(
                    "fulfillment {} has {} tracking numbers; kept the first",
                    fl.id,
                    fl.tracking.len()
                ),
            );
        }
        let shipped_at = match &fl.created_at {
            Some(t) => Some(ORDER.time(&id, &format!("shipments[{si}].shipped_at"), t)?),
            None => None,
        };
        let mut shipment_lines = Vec::with_capacity(fl.lines.len());
        for (line_id, qty) in &fl.lines {
            let q = qty.and_then(to_u32).unwrap_or_else(|| {
                notes.add(
                    format!("shipments[{si}].lines"),
                    NoteKind::Coerced,
                    format!("line {line_id} has no usable quantity; 0"),
                );
                0
            });
            let sku = match line_index.get(line_id.as_str()) {
                Some(&i) => {
                    lines[i].shipped_quantity = lines[i].shipped_quantity.saturating_add(q);
                    lines[i].sku.clone()
                }
                None => None,
            };
            shipment_lines.push(ShipmentLine {
                line_id: line_id.clone(),
                sku,
                quantity: q,
            });
        }
        if fl.lines_incomplete {
            notes.add(
                format!("shipments[{si}].lines"),
                NoteKind::Dropped,
                format!("fulfillment {} has more line items than were read", fl.id),
            );
        }
        shipments.push(Shipment {
            carrier: company
                .map(|c| carrier::canonical_carrier(&c))
                .unwrap_or_default(),
            tracking_number: number.unwrap_or_default(),
            tracking_url: first.and_then(|t| text(t.url.clone())),
            shipped_at,
            lines: shipment_lines,
        });
    }
    // Lines that need no shipping (gift cards, digital goods) owe a
    // warehouse nothing: Shopify or an app delivers them. Their units count
    // as shipped, so that deliveries and reservations leave them out.
    for (i, (line, facts)) in lines.iter_mut().zip(&f.lines).enumerate() {
        let needs_shipping = !facts.gift_card && facts.requires_shipping != Some(false);
        let not_refunded = line.quantity.saturating_sub(line.refunded_quantity);
        if !needs_shipping && line.shipped_quantity < not_refunded {
            line.shipped_quantity = not_refunded;
            let why = if facts.gift_card {
                "is a gift card, which Shopify issues itself"
            } else {
                "needs no shipping (Shopify's requires-shipping is off)"
            };
            notes.add(
                format!("lines[{i}].shipped_quantity"),
                NoteKind::Coerced,
                format!(
                    "line {} {why}: nothing to ship; its units count as shipped",
                    line.line_id
                ),
            );
        }
    }
    if f.fulfillments_incomplete {
        notes.add(
            "shipments",
            NoteKind::Dropped,
            format!(
                "Shopify has more fulfillments than the {} read",
                f.fulfillments.len()
            ),
        );
    }

    // Totals.
    let mut figure = |field: &str, value: &Option<String>| -> Result<Decimal, ConnectorError> {
        match value {
            Some(v) => amount(&id, field, v, &cur),
            None => {
                notes.add(field, NoteKind::Defaulted, "Shopify gave no figure; 0");
                Ok(canonical_scale(Decimal::ZERO, &cur))
            }
        }
    };
    let shipping = figure("totals.shipping", &f.shipping)?;
    let tax = figure("totals.tax", &f.tax)?;
    let discount = figure("totals.discount", &f.discount)?;
    let total = match &f.total {
        Some(v) => amount(&id, "totals.total", v, &cur)?,
        None => return Err(ORDER.error(&id, "no total price")),
    };
    let mut refunded = Decimal::ZERO;
    for r in &f.refunded {
        let r = amount(&id, "totals.refunded", r, &cur)?;
        refunded = checked(&id, "totals.refunded", refunded.checked_add(r), &cur)?;
    }
    if !f.refunds_left_out.is_empty() {
        notes.add(
            "totals.refunded",
            NoteKind::Dropped,
            format!(
                "refunds in another currency than {cur} are not counted: {}",
                f.refunds_left_out.join(", ")
            ),
        );
    }
    let subtotal = lines
        .iter()
        .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.total));
    let subtotal = checked(&id, "totals.subtotal", subtotal, &cur)?;
    let totals = Totals {
        subtotal: canonical_scale(subtotal, &cur),
        shipping,
        tax,
        discount,
        total,
        refunded: canonical_scale(refunded, &cur),
    };
    if f.taxes_included {
        notes.add(
            "totals.tax",
            NoteKind::Mismatch,
            "the shop's prices include tax: tax is already part of subtotal and shipping",
        );
    }

    // Presentment.
    let presentment = match text(f.presentment_currency) {
        Some(p) if p != cur => {
            let pc = Currency::new(&p).map_err(|e| ORDER.error(&id, e))?;
            match &f.total_presentment {
                Some(v) => Some(Presentment {
                    total: amount(&id, "presentment.total", v, pc.as_str())?,
                    currency: pc,
                }),
                None => {
                    notes.add(
                        "presentment",
                        NoteKind::Dropped,
                        format!("buyer paid in {p} but Shopify gave no presentment total"),
                    );
                    None
                }
            }
        }
        _ => None,
    };

    // Customer.
    let order_email = text(f.email);
    let order_phone = text(f.phone);
    let customer = match f.customer {
        Some(c) => {
            let name = [text(c.first_name), text(c.last_name)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            Some(Customer {
                name: Some(name).filter(|n| !n.is_empty()),
                email: order_email.or_else(|| text(c.email)),
                phone: order_phone.or_else(|| text(c.phone)),
            })
        }
        None if order_email.is_some() || order_phone.is_some() => {
            notes.add(
                "customer",
                NoteKind::Defaulted,
                "order has no customer record; used the order's contact e-mail and phone",
            );
            Some(Customer {
                name: None,
                email: order_email,
                phone: order_phone,
            })
        }
        None => {
            notes.add("customer", NoteKind::Defaulted, "order has no customer");
            None
        }
    };

    // Shipping address.
    let shipping_address = f.shipping_address.map(|a| Address {
        name: text(a.name),
        company: text(a.company),
        line1: text(a.line1),
        line2: text(a.line2),
        city: text(a.city),
        region: text(a.region),
        postal_code: text(a.postal_code),
        country: text(a.country).map(|c| c.to_ascii_uppercase()),
        phone: text(a.phone),
    });
    match (&shipping_address, text(f.country_name_only)) {
        (None, _) => notes.add(
            "shipping_address",
            NoteKind::Defaulted,
            "order has no shipping address",
        ),
        (Some(_), Some(name)) => notes.add(
            "shipping_address.country",
            NoteKind::Dropped,
            format!("Shopify gave the country {name:?} without its ISO code"),
        ),
        _ => {}
    }

    let shipping_method = text(f.shipping_title);
    if f.more_shipping_lines {
        notes.add(
            "shipping_method",
            NoteKind::Dropped,
            "order has more than one shipping line; shipping_method is the first one's title",
        );
    }

    let note = text(f.note);
    let gift = gift_from_attributes(&f.attributes, &mut notes);

    let mut tags: Vec<String> = f.tags.into_iter().filter_map(|t| text(Some(t))).collect();
    tags.sort();
    tags.dedup();

    let mut normalized = NormalizedOrder {
        order: Order {
            id: Order::make_id(account, &id),
            account: account.to_owned(),
            channel: Channel::Shopify,
            channel_order_id: id,
            number,
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
            note,
            gift,
            fulfillment: Fulfillment::Merchant,
            test: f.test,
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

    #[test]
    fn the_state_table() {
        use OrderStatus as S;
        use PaymentStatus as P;
        type Case<'a> = (bool, Option<&'a str>, Option<&'a str>, S, P);
        let cases: &[Case] = &[
            (true, Some("PAID"), Some("FULFILLED"), S::Cancelled, P::Paid),
            (
                true,
                Some("REFUNDED"),
                Some("UNFULFILLED"),
                S::Cancelled,
                P::Refunded,
            ),
            (false, Some("PAID"), Some("FULFILLED"), S::Shipped, P::Paid),
            (
                false,
                Some("PARTIALLY_REFUNDED"),
                Some("FULFILLED"),
                S::Shipped,
                P::PartiallyRefunded,
            ),
            (
                false,
                Some("PAID"),
                Some("PARTIALLY_FULFILLED"),
                S::PartiallyShipped,
                P::Paid,
            ),
            (
                false,
                Some("REFUNDED"),
                Some("RESTOCKED"),
                S::Cancelled,
                P::Refunded,
            ),
            (false, Some("PAID"), Some("UNFULFILLED"), S::Ready, P::Paid),
            (false, Some("PAID"), Some("ON_HOLD"), S::Ready, P::Paid),
            (
                false,
                Some("PARTIALLY_REFUNDED"),
                Some("UNFULFILLED"),
                S::Ready,
                P::PartiallyRefunded,
            ),
            (
                false,
                Some("AUTHORIZED"),
                Some("UNFULFILLED"),
                S::Ready,
                P::Pending,
            ),
            (
                false,
                Some("REFUNDED"),
                Some("UNFULFILLED"),
                S::Cancelled,
                P::Refunded,
            ),
            (
                false,
                Some("VOIDED"),
                Some("UNFULFILLED"),
                S::Cancelled,
                P::Voided,
            ),
            (
                false,
                Some("PENDING"),
                Some("UNFULFILLED"),
                S::Pending,
                P::Pending,
            ),
            (
                false,
                Some("PARTIALLY_PAID"),
                Some("UNFULFILLED"),
                S::Pending,
                P::Pending,
            ),
            (
                false,
                Some("EXPIRED"),
                Some("UNFULFILLED"),
                S::Pending,
                P::Pending,
            ),
        ];
        for &(cancelled, fin, ful, status, payment) in cases {
            let (s, p, notes) = map_states(cancelled, fin, ful);
            assert_eq!((s, p), (status, payment), "{cancelled} {fin:?} {ful:?}");
            assert!(notes.is_empty(), "{notes:?}");
        }
        let (s, p, notes) = map_states(false, Some("SOMETHING_NEW"), Some("TELEPORTED"));
        assert_eq!((s, p), (S::Pending, P::Pending));
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn amounts_get_the_currency_minor_units() {
        assert_eq!(
            amount("1", "x", "10.0", "USD").unwrap().to_string(),
            "10.00"
        );
        assert_eq!(amount("1", "x", "10", "USD").unwrap().to_string(), "10.00");
        assert_eq!(
            amount("1", "x", "19.990", "USD").unwrap().to_string(),
            "19.99"
        );
        assert_eq!(
            amount("1", "x", "1000.0", "JPY").unwrap().to_string(),
            "1000"
        );
        assert_eq!(amount("1", "x", "1.5", "KWD").unwrap().to_string(), "1.500");
        assert_eq!(
            amount("1", "x", "0.125", "USD").unwrap().to_string(),
            "0.125"
        );
        assert!(amount("1", "x", "ten", "USD").is_err());
    }

    #[test]
    fn gids_lose_their_prefix() {
        assert_eq!(numeric_id("gid://shopify/Order/5551234567"), "5551234567");
        assert_eq!(numeric_id("gid://shopify/LineItem/1?x=1"), "1");
        assert_eq!(numeric_id("123"), "123");
    }

    #[test]
    fn a_body_that_is_not_an_order_is_a_decode_error() {
        for body in [
            serde_json::json!({"title": "a product"}),
            serde_json::json!([]),
            serde_json::json!({"id": 1, "title": "a product", "updated_at": "2026-01-01T00:00:00Z"}),
        ] {
            let err = normalize_rest_order("shop", &body).unwrap_err();
            assert_eq!(err.class(), "decode", "{body}: {err}");
        }
    }
}
