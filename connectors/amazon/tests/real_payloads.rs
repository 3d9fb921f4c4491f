//! Real Amazon payloads (Amazon's own examples and recorded test-account
//! traffic), read from `$SWITCHYARD_REAL_DIR/amazon/` when that folder
//! exists, never copied into the repository. Every Orders API 2026-01-01
//! order must normalize; every `ORDER_CHANGE` notification must become a
//! fetch of its order, bare and inside an EventBridge event. Orders API v0
//! payloads (deprecated reads this connector never makes) must be refused
//! as not 2026-01-01 orders, never misread. Run with `--nocapture` to see
//! what each file gave.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Value, json};
use switchyard_amazon::{normalize_order, webhook};
use switchyard_contract::WebhookOutcome;

fn real_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("SWITCHYARD_REAL_DIR")?).join("amazon");
    dir.is_dir().then_some(dir)
}

#[test]
fn every_real_payload_is_read_or_refused_for_what_it_is() {
    let Some(dir) = real_dir() else {
        eprintln!("skipped: SWITCHYARD_REAL_DIR/amazon is not set or not a folder");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no JSON files", dir.display());
    let (mut orders, mut notifications, mut v0) = (0, 0, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let body: Value = serde_json::from_slice(&std::fs::read(path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        if let Some(list) = body.get("orders").and_then(Value::as_array) {
            for raw in list {
                let o =
                    normalize_order("real", false, raw).unwrap_or_else(|e| panic!("{name}: {e}"));
                report(&name, &o);
                orders += 1;
            }
        } else if let Some(raw) = body.get("order") {
            let o = normalize_order("real", false, raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            report(&name, &o);
            orders += 1;
        } else if body.get("NotificationType").is_some() {
            let seller = body
                .pointer("/Payload/OrderChangeNotification/SellerId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let order_id = body
                .pointer("/Payload/OrderChangeNotification/AmazonOrderId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let event = json!({"version": "0", "id": "real-event", "detail-type": "ORDER_CHANGE",
                               "source": "aws.partner/sellingpartnerapi.amazon.com", "detail": body});
            for form in [&body, &event] {
                match webhook::parse(seller, &serde_json::to_vec(form).unwrap()) {
                    Ok(WebhookOutcome::Fetch {
                        dedupe_key,
                        channel_order_ids,
                    }) => {
                        assert_eq!(channel_order_ids, [order_id], "{name}");
                        assert_eq!(
                            dedupe_key.as_deref(),
                            body.pointer("/NotificationMetadata/NotificationId")
                                .and_then(Value::as_str),
                            "{name}"
                        );
                    }
                    other => panic!("{name}: {other:?}"),
                }
            }
            eprintln!("{name}: ORDER_CHANGE for {order_id} -> fetch");
            notifications += 1;
        } else if let Some(payload) = body.get("payload") {
            let shapes: Vec<&Value> = match (payload.get("Orders"), payload.get("OrderItems")) {
                (Some(Value::Array(list)), _) => list.iter().collect(),
                (_, Some(_)) => vec![payload],
                _ => vec![payload],
            };
            for raw in shapes {
                let e = normalize_order("real", false, raw)
                    .expect_err("a v0 payload must not pass for a 2026-01-01 order");
                assert_eq!(e.class(), "decode", "{name}");
            }
            eprintln!("{name}: Orders API v0 (deprecated reads, not called): refused");
            v0 += 1;
        } else {
            panic!("{name}: neither an order, a notification nor a v0 payload");
        }
    }
    eprintln!(
        "{orders} orders normalized, {notifications} notifications read, {v0} v0 files refused"
    );
    assert!(orders > 0 || notifications > 0);
}

fn report(name: &str, o: &switchyard_contract::NormalizedOrder) {
    let order = &o.order;
    eprintln!(
        "{name}: {} {} {} {} total {} {} lines {} shipments, tags {:?}",
        order.channel_order_id,
        order.status,
        order.fulfillment,
        order.currency,
        order.totals.total,
        order.lines.len(),
        order.shipments.len(),
        order.tags
    );
    for n in &o.notes {
        eprintln!("    note {} {:?}: {}", n.field, n.kind, n.detail);
    }
}
