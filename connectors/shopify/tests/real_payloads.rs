//! Real Shopify order payloads (Shopify's documentation examples and
//! development-store `orders/*` bodies from public sources), read from
//! `$SWITCHYARD_REAL_DIR/shopify/` when that folder exists, never copied
//! into the repository. Each must come through a signed webhook as one
//! order, and what it says about each line must survive: the ordered
//! quantity, the units refunded or removed, the discount allocated to the
//! line, its tax, the buyer's line properties; and the order's note and
//! test flag. Run with `--nocapture` to see what each file gave.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;
use switchyard_contract::{Connector, LineOption, NormalizedOrder, WebhookOutcome};
use switchyard_shopify::webhook::sign;

use common::*;

fn real_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("SWITCHYARD_REAL_DIR")?).join("shopify");
    dir.is_dir().then_some(dir)
}

/// A REST amount in shop money: the `*_set` figure, else the plain one.
fn shop_amount(v: &Value, plain: &str, set: &str) -> Option<Decimal> {
    let text = v
        .pointer(&format!("/{set}/shop_money/amount"))
        .or_else(|| v.get(plain))?;
    match text {
        Value::String(s) => Decimal::from_str(s).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// What the payload itself says about one line, read straight from the JSON.
fn check_line(name: &str, raw: &Value, order: &Value, line: &switchyard_contract::Line) {
    let id = &line.line_id;
    let quantity = raw["quantity"].as_u64().unwrap();
    assert_eq!(u64::from(line.quantity), quantity, "{name} line {id}");

    let removed = raw["current_quantity"]
        .as_u64()
        .map_or(0, |c| quantity.saturating_sub(c));
    let by_refunds: u64 = order["refunds"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["refund_line_items"].as_array().into_iter().flatten())
        .filter(|r| r["line_item_id"].as_u64().map(|n| n.to_string()).as_ref() == Some(id))
        .filter_map(|r| r["quantity"].as_u64())
        .sum();
    assert_eq!(
        u64::from(line.refunded_quantity),
        removed.max(by_refunds).min(quantity),
        "{name} line {id}: refunded"
    );
    assert!(line.open_quantity() <= line.quantity);

    let discount: Decimal = raw["discount_allocations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| shop_amount(a, "amount", "amount_set"))
        .sum();
    assert_eq!(line.discount, discount, "{name} line {id}: discount");

    let taxes: Vec<Decimal> = raw["tax_lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| shop_amount(t, "price", "price_set"))
        .collect();
    let tax = (!taxes.is_empty()).then(|| taxes.iter().sum::<Decimal>());
    assert_eq!(line.tax, tax, "{name} line {id}: tax");

    let options: Vec<LineOption> = raw["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = text(&p["name"]).filter(|n| !n.starts_with('_'))?;
            Some(LineOption::new(name, text(&p["value"])?))
        })
        .collect();
    assert_eq!(line.options, options, "{name} line {id}: options");
}

fn report(name: &str, o: &NormalizedOrder) {
    let order = &o.order;
    eprintln!(
        "{name}: {} {} payment {}, note {:?}, gift {:?}, test {}, discount {}, tax {}",
        order.id,
        order.status,
        order.payment,
        order.note,
        order.gift,
        order.test,
        order.totals.discount,
        order.totals.tax
    );
    for l in &order.lines {
        eprintln!(
            "  line {} {:?}: quantity {}, refunded {}, shipped {}, owed {}, discount {}, tax {:?}, options {:?}",
            l.line_id,
            l.sku,
            l.quantity,
            l.refunded_quantity,
            l.shipped_quantity,
            l.open_quantity(),
            l.discount,
            l.tax.map(|t| t.to_string()),
            l.options
                .iter()
                .map(|o| format!("{}: {}", o.name, o.value))
                .collect::<Vec<_>>()
        );
    }
    for n in &o.notes {
        eprintln!("  note {}: {}", n.field, n.detail);
    }
}

#[tokio::test]
async fn every_real_order_keeps_what_it_says_about_its_lines() {
    let Some(dir) = real_dir() else {
        eprintln!("skipped: SWITCHYARD_REAL_DIR/shopify is not set or not a folder");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no JSON files", dir.display());
    let c = connector("http://127.0.0.1:9", &ConfigOverrides::default());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let body = std::fs::read(path).unwrap();
        let raw: Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        let signature = sign(&body, &switchyard_contract::Secret::new(WEBHOOK_SECRET));
        let req = switchyard_contract::WebhookRequest {
            account: ACCOUNT.into(),
            method: "POST".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-shopify-topic".into(), "orders/updated".into()),
                ("x-shopify-hmac-sha256".into(), signature),
                ("x-shopify-event-id".into(), format!("real-{name}")),
            ],
            query: None,
            body,
            received_at: chrono::Utc::now(),
        };
        let o = match c.handle_webhook(&req).await {
            Ok(WebhookOutcome::Orders {
                mut orders,
                rejected,
                ..
            }) => {
                assert!(rejected.is_empty(), "{name}: {rejected:?}");
                assert_eq!(orders.len(), 1, "{name}");
                orders.remove(0)
            }
            other => panic!("{name}: {other:?}"),
        };
        report(&name, &o);
        let order = &o.order;
        let lines = raw["line_items"].as_array().unwrap();
        assert_eq!(order.lines.len(), lines.len(), "{name}");
        for (line, raw_line) in order.lines.iter().zip(lines) {
            assert_eq!(line.line_id, raw_line["id"].to_string(), "{name}");
            check_line(&name, raw_line, &raw, line);
        }
        assert_eq!(order.note, text(&raw["note"]), "{name}: note");
        assert_eq!(order.test, raw["test"] == Value::Bool(true), "{name}: test");
    }
}
