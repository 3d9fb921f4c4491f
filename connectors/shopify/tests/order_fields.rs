//! What a warehouse and the rules read from a Shopify order beyond its
//! totals: refunded units, each line's discount, tax and options, the
//! buyer's note, gift options, test orders, and lines that need no
//! shipping. Spelled out here on the fixture scenarios (whose goldens pin
//! everything else) and on hand-made variations of the REST body.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use switchyard_contract::{Gift, LineOption, NormalizedOrder, NoteKind, Order};
use switchyard_shopify::normalize_rest_order;

use common::*;

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn find<'a>(orders: &'a [NormalizedOrder], channel_order_id: &str) -> &'a NormalizedOrder {
    orders
        .iter()
        .find(|o| o.order.channel_order_id == channel_order_id)
        .unwrap_or_else(|| panic!("order {channel_order_id} not produced"))
}

fn refunded_and_owed(order: &Order) -> Vec<(u32, u32, u32)> {
    order
        .lines
        .iter()
        .map(|l| (l.quantity, l.refunded_quantity, l.open_quantity()))
        .collect()
}

/// Three lines, two of them refunded and restocked before anything shipped:
/// the lines keep their ordered quantity, and one unit is still owed.
#[tokio::test]
async fn two_of_three_lines_refunded_leave_one_unit_owed() {
    let run = run(&scenario("poll-cancelled-and-refunds")).await;
    let o = &find(&run.orders, "5551236063").order;
    assert_eq!(refunded_and_owed(o), vec![(1, 1, 0), (1, 0, 1), (1, 1, 0)]);
    assert_eq!(o.item_count(), 3, "item_count counts units as ordered");
    assert_eq!(o.open_units(), 1);

    // The discount code's 10.00 as Shopify split it, and the tax per line.
    let discounts: Vec<Decimal> = o.lines.iter().map(|l| l.discount).collect();
    assert_eq!(discounts, vec![dec("3.34"), dec("3.33"), dec("3.33")]);
    assert_eq!(discounts.iter().sum::<Decimal>(), o.totals.discount);
    assert!(o.lines.iter().all(|l| l.tax == Some(dec("3.98"))));

    // The engraving a warehouse must make, in Shopify's order.
    assert_eq!(
        o.lines[0].options,
        vec![
            LineOption::new("Engraving front", "Happy Birthday"),
            LineOption::new("Engraving back", "Merry Christmas"),
        ]
    );
    assert_eq!(
        o.note.as_deref(),
        Some("Two of the three radios are no longer wanted")
    );

    // A unit refunded after it shipped is refunded and shipped: nothing owed.
    let shipped = &find(&run.orders, "5551236062").order;
    assert_eq!(refunded_and_owed(shipped), vec![(1, 0, 0), (1, 1, 0)]);
}

/// Gift options from the shop's order attributes, the buyer's note, and
/// line properties without the app's private ones; the same from both
/// shapes (the scenario's own test compares them whole).
#[tokio::test]
async fn note_gift_and_options_come_through_both_shapes() {
    let run = run(&scenario("same-order-both-shapes")).await;
    let both: Vec<&NormalizedOrder> = run
        .orders
        .iter()
        .filter(|o| o.order.channel_order_id == "5551238081")
        .collect();
    assert_eq!(both.len(), 2, "polled and pushed");
    for o in both {
        let order = &o.order;
        assert_eq!(
            order.gift,
            Some(Gift {
                message: Some("Alles Gute zum Geburtstag, Zoë!".into()),
                wrap: true,
            })
        );
        assert_eq!(
            order.note.as_deref(),
            Some("Bitte beim Nachbarn abgeben, falls niemand öffnet")
        );
        assert_eq!(
            order.lines[0].options,
            vec![LineOption::new("Gravur", "Für Zoë")]
        );
        assert!(
            o.notes.iter().any(|n| n.field == "lines[0].options"
                && n.kind == NoteKind::Dropped
                && n.detail.contains("_app_ref")),
            "{:?}",
            o.notes
        );
        assert!(
            o.notes
                .iter()
                .any(|n| n.field == "note" && n.detail.contains("utm_source")),
            "{:?}",
            o.notes
        );
        // Prices include tax here: the line's tax is the part of its price
        // that is tax.
        assert_eq!(order.lines[0].tax, Some(dec("3.99")));
    }
}

/// A test order with a gift card and a download: neither is shipped by a
/// warehouse, so only the physical line is owed.
#[tokio::test]
async fn gift_cards_and_downloads_are_not_owed_to_a_warehouse() {
    let run = run(&scenario("same-order-both-shapes")).await;
    for o in run
        .orders
        .iter()
        .filter(|o| o.order.channel_order_id == "5551239091")
    {
        let order = &o.order;
        assert!(order.test);
        assert!(
            order.gift.is_none(),
            "buying a gift card does not make a gift"
        );
        let owed: Vec<(Option<&str>, u32)> = order
            .lines
            .iter()
            .map(|l| (l.sku.as_deref(), l.open_quantity()))
            .collect();
        assert_eq!(owed, vec![(None, 1), (Some("EBOOK-1"), 0), (None, 0)]);
        assert_eq!(order.lines[2].quantity, 1);
        assert_eq!(order.lines[2].shipped_quantity, 1);
        assert!(order.shipments.is_empty(), "no shipment is made up");
        assert_eq!(
            o.notes
                .iter()
                .filter(|n| n.kind == NoteKind::Coerced && n.field.ends_with("shipped_quantity"))
                .count(),
            2,
            "{:?}",
            o.notes
        );
    }
}

/// An order with more lines than one request carries is read whole.
#[tokio::test]
async fn a_long_order_is_read_whole_page_by_page() {
    let run = run(&scenario("poll-large-order")).await;
    let o = find(&run.orders, "5551231110");
    assert_eq!(o.order.lines.len(), 30);
    assert_eq!(o.order.lines[29].sku.as_deref(), Some("PIN-30"));
    assert!(o.notes.iter().all(|n| n.field != "lines"), "{:?}", o.notes);
    let operations: Vec<String> = run
        .requests
        .iter()
        .map(|r| r.body_json().unwrap()["operationName"].to_string())
        .collect();
    assert_eq!(
        operations,
        [
            "\"SwitchyardOrders\"",
            "\"SwitchyardOrder\"",
            "\"SwitchyardOrderLines\""
        ]
    );
}

/// The recorded `orders/create` body, to vary by hand.
fn rest_body() -> Value {
    let s = scenario("webhooks-orders");
    let w = s
        .webhooks
        .iter()
        .find(|w| w.name == "orders-create")
        .unwrap();
    serde_json::from_slice(&w.body).unwrap()
}

fn normalize(body: &Value) -> NormalizedOrder {
    normalize_rest_order(ACCOUNT, body).unwrap()
}

/// Older payloads have no `current_quantity`: the refunds say what was refunded.
#[test]
fn without_current_quantity_the_refunds_count() {
    let mut body = rest_body();
    let line = &mut body["line_items"][0];
    line.as_object_mut().unwrap().remove("current_quantity");
    let line_id = line["id"].clone();
    assert_eq!(line["quantity"], 2);
    body["refunds"] = json!([
        { "transactions": [], "refund_line_items": [{ "line_item_id": line_id, "quantity": 1, "restock_type": "cancel" }] },
    ]);
    let o = normalize(&body).order;
    assert_eq!(refunded_and_owed(&o), vec![(2, 1, 1)]);

    // Refunds naming more units than were ordered: all of them, noted.
    body["refunds"][0]["refund_line_items"][0]["quantity"] = json!(5);
    let n = normalize(&body);
    assert_eq!(refunded_and_owed(&n.order), vec![(2, 2, 0)]);
    assert!(
        n.notes
            .iter()
            .any(|n| n.field == "lines[0].refunded_quantity"),
        "{:?}",
        n.notes
    );
}

/// `current_quantity` also counts units an order edit removed (no refund).
#[test]
fn units_removed_by_an_edit_are_not_owed() {
    let mut body = rest_body();
    body["line_items"][0]["current_quantity"] = json!(1);
    assert_eq!(refunded_and_owed(&normalize(&body).order), vec![(2, 1, 1)]);
}

#[test]
fn a_line_without_tax_lines_has_no_tax_and_no_discount() {
    let mut body = rest_body();
    body["line_items"][0]["tax_lines"] = json!([]);
    body["line_items"][0]["discount_allocations"] = Value::Null;
    let o = normalize(&body).order;
    assert_eq!(o.lines[0].tax, None);
    assert_eq!(o.lines[0].discount, dec("0.00"));
    assert_eq!(o.lines[0].discount.to_string(), "0.00");
}

#[test]
fn line_discounts_and_taxes_add_up_per_line() {
    let mut body = rest_body();
    let line = &mut body["line_items"][0];
    line["discount_allocations"] = json!([
        { "amount": "1.50", "amount_set": { "shop_money": { "amount": "1.50" } } },
        { "amount": "2.5" },
    ]);
    line["tax_lines"] = json!([
        { "title": "State tax", "price": "2.00" },
        { "title": "County tax", "price_set": { "shop_money": { "amount": "0.40" } } },
    ]);
    let o = normalize(&body).order;
    assert_eq!(o.lines[0].discount.to_string(), "4.00");
    assert_eq!(
        o.lines[0].tax.map(|t| t.to_string()).as_deref(),
        Some("2.40")
    );
}

fn gift_of(attributes: Value) -> Option<Gift> {
    let mut body = rest_body();
    body["note_attributes"] = attributes;
    normalize(&body).order.gift
}

/// The attribute names shops use for gift options, however spelled.
#[test]
fn gift_options_are_read_from_the_attributes_shops_use() {
    assert_eq!(gift_of(json!([])), None);
    assert_eq!(
        gift_of(json!([{ "name": "colour", "value": "green" }])),
        None
    );
    assert_eq!(
        gift_of(json!([{ "name": "gift_message", "value": " Happy birthday! " }])),
        Some(Gift {
            message: Some("Happy birthday!".into()),
            wrap: false
        })
    );
    assert_eq!(
        gift_of(json!([{ "name": "Gift-Wrap", "value": "yes" }])),
        Some(Gift {
            message: None,
            wrap: true
        })
    );
    assert_eq!(
        gift_of(json!([{ "name": "Is gift", "value": true }])),
        Some(Gift {
            message: None,
            wrap: false
        })
    );
    // A no, or a blank message, is not a gift.
    assert_eq!(
        gift_of(json!([
            { "name": "Gift wrap", "value": "No" },
            { "name": "isGift", "value": "false" },
            { "name": "Gift message", "value": "  " },
        ])),
        None
    );
}

#[test]
fn options_keep_shopifys_order_and_leave_private_properties_out() {
    let mut body = rest_body();
    body["line_items"][0]["properties"] = json!([
        { "name": "Size", "value": "L" },
        { "name": "_bundle_id", "value": "b-1" },
        { "name": "Engraving", "value": "For Ada" },
        { "name": "Initials", "value": 42 },
        { "name": "Empty", "value": "" },
    ]);
    let n = normalize(&body);
    assert_eq!(
        n.order.lines[0].options,
        vec![
            LineOption::new("Size", "L"),
            LineOption::new("Engraving", "For Ada"),
            LineOption::new("Initials", "42"),
        ]
    );
    let note = n
        .notes
        .iter()
        .find(|n| n.field == "lines[0].options")
        .unwrap();
    assert!(
        note.detail.contains("_bundle_id") && note.detail.contains("Empty"),
        "{note:?}"
    );
}

#[test]
fn the_buyers_note_and_test_flag_are_kept() {
    let mut body = rest_body();
    body["note"] = json!("  Leave it with the neighbour  ");
    body["test"] = json!(true);
    let o = normalize(&body).order;
    assert_eq!(o.note.as_deref(), Some("Leave it with the neighbour"));
    assert!(o.test);
    body["note"] = json!("");
    body["test"] = Value::Null;
    let o = normalize(&body).order;
    assert_eq!(o.note, None);
    assert!(!o.test);
}
