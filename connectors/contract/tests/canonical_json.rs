//! The canonical order JSON is a contract (`docs/canonical-order.md`): these
//! tests pin it field for field, in order, against the documented example.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use switchyard_contract::*;

const GOLDEN: &str = include_str!("golden/canonical_order.json");

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn spec_example() -> Order {
    Order {
        id: "shop-us:5551234567".into(),
        account: "shop-us".into(),
        channel: Channel::Shopify,
        channel_order_id: "5551234567".into(),
        number: Some("#1042".into()),
        status: OrderStatus::Ready,
        payment: PaymentStatus::Paid,
        placed_at: Utc.with_ymd_and_hms(2026, 11, 27, 5, 1, 2).unwrap(),
        updated_at: Utc.with_ymd_and_hms(2026, 11, 27, 5, 3, 0).unwrap(),
        currency: Currency::new("USD").unwrap(),
        totals: Totals {
            subtotal: dec("40.00"),
            shipping: dec("5.00"),
            tax: dec("3.60"),
            discount: dec("4.00"),
            total: dec("44.60"),
            refunded: dec("0.00"),
        },
        presentment: None,
        customer: Some(Customer {
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            phone: None,
        }),
        shipping_address: Some(Address {
            name: Some("Ada Lovelace".into()),
            company: None,
            line1: Some("1 Main St".into()),
            line2: None,
            city: Some("Springfield".into()),
            region: Some("IL".into()),
            postal_code: Some("62701".into()),
            country: Some("US".into()),
            phone: None,
        }),
        shipping_method: Some("Standard".into()),
        lines: vec![Line {
            line_id: "111".into(),
            sku: Some("MUG-RED".into()),
            title: "Red mug".into(),
            quantity: 2,
            unit_price: dec("20.00"),
            total: dec("40.00"),
            discount: dec("4.00"),
            tax: Some(dec("3.24")),
            refunded_quantity: 0,
            shipped_quantity: 0,
            options: vec![LineOption::new("Personalization", "For Ada")],
        }],
        note: Some("Please leave at the back door".into()),
        gift: None,
        fulfillment: Fulfillment::Merchant,
        test: false,
        shipments: vec![Shipment {
            carrier: "ups".into(),
            tracking_number: "1Z999".into(),
            tracking_url: None,
            shipped_at: Some(Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()),
            lines: vec![ShipmentLine {
                line_id: "111".into(),
                sku: Some("MUG-RED".into()),
                quantity: 2,
            }],
        }],
        tags: vec!["canada".into(), "review".into()],
        route: Some("east-wh".into()),
        hold: None,
        priority: Priority::Normal,
    }
}

#[test]
fn the_spec_example_serializes_field_for_field_in_order() {
    let rendered = serde_json::to_string_pretty(&spec_example()).unwrap() + "\n";
    assert_eq!(rendered, GOLDEN);
}

#[test]
fn the_spec_example_round_trips() {
    let parsed: Order = serde_json::from_str(GOLDEN).unwrap();
    assert_eq!(parsed, spec_example());
    assert_eq!(
        serde_json::to_string_pretty(&parsed).unwrap() + "\n",
        GOLDEN
    );
}

#[test]
fn amounts_keep_their_scale_and_are_strings() {
    let mut o = spec_example();
    o.totals.total = dec("100.10");
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(v["totals"]["total"], "100.10");
    assert_eq!(v["lines"][0]["unit_price"], "20.00");
    // Exact decimals: scale does not change equality.
    assert_eq!(dec("100.10"), dec("100.1"));
}

#[test]
fn unknown_fields_and_float_amounts_are_refused() {
    let mut v: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    v["surprise"] = serde_json::json!(1);
    assert!(serde_json::from_value::<Order>(v).is_err());
    let mut v: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    v["status"] = serde_json::json!("lost");
    assert!(serde_json::from_value::<Order>(v).is_err());
    let mut v: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    v["currency"] = serde_json::json!("usd");
    assert!(serde_json::from_value::<Order>(v).is_err());
}

#[test]
fn a_totals_mismatch_is_noted_not_corrected() {
    let mut n = NormalizedOrder {
        order: spec_example(),
        notes: vec![],
        raw: serde_json::json!({}),
        raw_json: None,
    };
    n.note_totals_mismatch();
    assert!(n.notes.is_empty(), "40 + 5 + 3.60 - 4 = 44.60 adds up");
    n.order.totals.total = dec("45.00");
    n.note_totals_mismatch();
    assert_eq!(n.notes.len(), 1);
    assert_eq!(n.notes[0].kind, NoteKind::Mismatch);
    assert_eq!(n.order.totals.total, dec("45.00"));
}

#[test]
fn orders_written_before_lines_had_discounts_and_options_still_load() {
    // The shape stored and delivered before lines gained discount, tax,
    // refunded_quantity and options, and orders note, gift, fulfillment, test.
    let mut v: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    for key in ["note", "gift", "fulfillment", "test"] {
        v.as_object_mut().unwrap().remove(key);
    }
    let line = v["lines"][0].as_object_mut().unwrap();
    for key in ["discount", "tax", "refunded_quantity", "options"] {
        line.remove(key);
    }
    let old: Order = serde_json::from_value(v).unwrap();
    assert_eq!(old.fulfillment, Fulfillment::Merchant);
    assert!(!old.test && old.note.is_none() && old.gift.is_none());
    assert_eq!(old.lines[0].discount, Decimal::ZERO);
    assert_eq!(old.lines[0].tax, None);
    assert!(old.lines[0].options.is_empty());
}

#[test]
fn units_still_owed_leave_out_refunded_and_shipped_units() {
    let mut o = spec_example();
    o.lines[0].quantity = 3;
    o.lines[0].refunded_quantity = 2;
    assert_eq!(o.lines[0].open_quantity(), 1);
    o.lines[0].shipped_quantity = 1;
    assert_eq!(o.open_units(), 0);
    // A channel that reports more refunded and shipped than ordered owes nothing.
    o.lines[0].shipped_quantity = 5;
    assert_eq!(o.lines[0].open_quantity(), 0);
}

#[test]
fn a_line_without_tax_reads_back_inside_a_tagged_enum() {
    // Fixtures and jobs carry orders inside internally tagged enums, where
    // serde buffers the value before the field's own deserializer sees it.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(tag = "call", rename_all = "snake_case")]
    enum Call {
        Ship { order: Order },
    }
    let mut order = spec_example();
    order.lines[0].tax = None;
    let call = Call::Ship { order };
    let text = serde_json::to_string(&call).unwrap();
    assert!(text.contains(r#""tax":null"#), "{text}");
    assert_eq!(serde_json::from_str::<Call>(&text).unwrap(), call);
}
