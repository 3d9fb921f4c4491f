//! Real eBay payloads, read at test time from `$SWITCHYARD_REAL_DIR/ebay/`
//! when that folder exists (never copied into the repository): every
//! getOrders answer there normalizes without a decode error, and the signed
//! notification that comes with eBay's SDKs verifies with eBay's real
//! getPublicKey answer while its tampered copy does not. Without the folder
//! the test says it skipped and passes.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use switchyard_ebay::normalize_order;
use switchyard_ebay::webhook::{Signature, SigningKey};

fn real_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("SWITCHYARD_REAL_DIR")?).join("ebay");
    dir.is_dir().then_some(dir)
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_real_get_orders_answer_normalizes() {
    let Some(dir) = real_dir() else {
        eprintln!("skipped: SWITCHYARD_REAL_DIR/ebay is not there");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("getOrders") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no getOrders files in {}", dir.display());
    for path in &files {
        let page = read_json(path);
        let orders = page["orders"].as_array().expect("orders[]");
        for raw in orders {
            let n = normalize_order("ebay-real", raw, None, false)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let o = &n.order;
            eprintln!(
                "{}: {} {} / {} {} total {} tax {} refunded {} presentment {:?} lines {:?}",
                path.file_name().unwrap().to_string_lossy(),
                o.channel_order_id,
                o.status,
                o.payment,
                o.currency,
                o.totals.total,
                o.totals.tax,
                o.totals.refunded,
                o.presentment
                    .as_ref()
                    .map(|p| format!("{} {}", p.total, p.currency)),
                o.lines
                    .iter()
                    .map(|l| format!(
                        "{}x{} @{} shipped {} refunded {}",
                        l.quantity,
                        l.sku.as_deref().unwrap_or("-"),
                        l.unit_price,
                        l.shipped_quantity,
                        l.refunded_quantity
                    ))
                    .collect::<Vec<_>>()
            );
            for note in &n.notes {
                eprintln!("    note {} {:?}: {}", note.field, note.kind, note.detail);
            }
        }
    }
}

/// The `X-EBAY-SIGNATURE` header eBay's SDKs test with is quoted in the
/// folder's SOURCES.md: the line that base64-decodes to the header JSON.
fn real_signature_header(dir: &std::path::Path) -> String {
    let sources = std::fs::read_to_string(dir.join("SOURCES.md")).expect("SOURCES.md");
    sources
        .lines()
        .map(str::trim)
        .find(|l| {
            STANDARD
                .decode(l)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v.get("kid").is_some())
        })
        .expect("a signature header line in SOURCES.md")
        .to_owned()
}

#[test]
fn the_real_signed_notification_verifies_and_its_tampered_copy_does_not() {
    let Some(dir) = real_dir() else {
        eprintln!("skipped: SWITCHYARD_REAL_DIR/ebay is not there");
        return;
    };
    let key = SigningKey::from_answer(&read_json(
        &dir.join("notification-getPublicKey-response.json"),
    ))
    .expect("eBay's real key answer reads");
    let header = Signature::parse(&real_signature_header(&dir)).expect("the real header parses");
    let body = std::fs::read(dir.join("notification-marketplace-account-deletion.json")).unwrap();
    // The file is pretty-printed; eBay signed the compact form.
    header
        .verify(&key, &body)
        .expect("the real notification verifies");
    let tampered =
        std::fs::read(dir.join("notification-marketplace-account-deletion-tampered.json")).unwrap();
    let err = header.verify(&key, &tampered).unwrap_err();
    assert_eq!(err.class(), "auth", "{err}");
    eprintln!("real key digest {:?}; tampered copy: {err}", key.digest);
}
