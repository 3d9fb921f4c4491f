//! Whatever Amazon sends, reading it never panics, and what it gives holds
//! together: no line owes more units than were ordered, an order whose state
//! is unknown is never one to ship, and a notification is refused before
//! its body is read unless the secret matches.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use switchyard_amazon::{normalize_order, webhook};
use switchyard_contract::{OrderStatus, Secret, WebhookRequest};

fn amount() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..10_000_000, 0u32..4)
            .prop_map(|(n, scale)| { rust_decimal::Decimal::new(n, scale).to_string() }),
        Just("79228162514264337593543950335".to_owned()),
        Just("-0.01".to_owned()),
        Just("1e5".to_owned()),
        Just(String::new()),
        "[a-z0-9.]{0,8}",
    ]
}

fn status() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec![
            "PENDING_AVAILABILITY",
            "PENDING",
            "UNSHIPPED",
            "PARTIALLY_SHIPPED",
            "SHIPPED",
            "CANCELLED",
            "UNFULFILLABLE",
            "Shipped",
            "",
        ])
        .prop_map(|s| Some(s.to_owned())),
    ]
}

prop_compose! {
    fn item()(qty in -5i64..5_000_000_000, fulfilled in prop::option::of(-5i64..5_000_000_000),
              open in prop::option::of(-5i64..5_000_000_000), price in amount(),
              tax in prop::option::of(amount()), currency in prop::sample::select(vec!["USD", "JPY", "usd", "EURO"]))
        -> Value {
        let mut it = json!({
            "orderItemId": "1", "quantityOrdered": qty,
            "product": {"sellerSku": "SKU", "title": "x",
                        "price": {"unitPrice": {"amount": price, "currencyCode": currency}}},
            "fulfillment": {"quantityFulfilled": fulfilled, "quantityUnfulfilled": open},
        });
        if let Some(t) = tax {
            it["proceeds"] = json!({"breakdowns": [{"type": "TAX", "subtotal": {"amount": t, "currencyCode": "USD"}}]});
        }
        it
    }
}

proptest! {
    #[test]
    fn any_order_reads_or_is_refused_and_never_owes_more_than_ordered(
        items in prop::collection::vec(item(), 0..4),
        total in amount(),
        status in status(),
        by in prop::option::of(prop::sample::select(vec!["AMAZON", "MERCHANT", "SOMEONE"])),
    ) {
        let raw = json!({
            "orderId": "111-0000000-0000001",
            "createdTime": "2026-11-27T05:01:02Z",
            "lastUpdatedTime": "2026-11-27T06:00:00Z",
            "salesChannel": {"channelName": "AMAZON"},
            "proceeds": {"grandTotal": {"amount": total, "currencyCode": "USD"}},
            "fulfillment": {"fulfillmentStatus": status, "fulfilledBy": by},
            "orderItems": items,
        });
        match normalize_order("a", false, &raw) {
            Err(e) => prop_assert_eq!(e.class(), "decode"),
            Ok(o) => {
                for l in &o.order.lines {
                    prop_assert!(u64::from(l.shipped_quantity) + u64::from(l.refunded_quantity)
                        <= u64::from(l.quantity), "{l:?}");
                }
                let known = matches!(status.as_deref(), Some("UNSHIPPED" | "PARTIALLY_SHIPPED"));
                if o.order.status == OrderStatus::Ready || o.order.status == OrderStatus::PartiallyShipped {
                    prop_assert!(known, "{status:?} became {}", o.order.status);
                }
                prop_assert_eq!(o.order.fulfillment.as_str() == "channel", by == Some("AMAZON"));
            }
        }
    }

    #[test]
    fn a_notification_is_refused_unless_its_secret_matches(
        body in prop::collection::vec(any::<u8>(), 0..512),
        presented in prop::option::of("[ -~]{0,40}"),
    ) {
        let secret = Secret::new("the-right-secret");
        let req = WebhookRequest {
            account: "a".into(),
            method: "POST".into(),
            headers: presented.iter().map(|p| ("x-switchyard-secret".to_owned(), p.clone())).collect(),
            query: None,
            body,
            received_at: chrono::Utc::now(),
        };
        let result = webhook::handle(&req, Some(&secret), "A1SELLER");
        if presented.as_deref().map(str::trim) != Some("the-right-secret") {
            prop_assert_eq!(result.unwrap_err().class(), "auth");
        } else if let Err(e) = result {
            prop_assert_eq!(e.class(), "decode");
        }
    }
}
