//! Real Etsy payloads, when a folder of them is at hand: every `*.json` file
//! under `$SWITCHYARD_REAL_DIR/etsy/` that is a receipt, a `getShopReceipts`
//! page or a list of receipts must normalize without a decode error. The
//! files stay where they are (they hold real people's data); without the
//! variable or the folder the test says it skipped.

// Test support outside `#[test]` functions: a panic is the failure report,
// and test figures are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use switchyard_etsy::normalize_receipt;

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

/// The receipts a file holds: itself, a page's `results`, or a list.
fn receipts(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().flat_map(receipts).collect(),
        Value::Object(map) if map.contains_key("receipt_id") => vec![v],
        Value::Object(map) => map.get("results").map(|r| receipts(r)).unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[test]
fn every_real_receipt_normalizes() {
    let Some(root) = std::env::var_os("SWITCHYARD_REAL_DIR") else {
        eprintln!("skipped: SWITCHYARD_REAL_DIR is not set");
        return;
    };
    let dir = Path::new(&root).join("etsy");
    if !dir.is_dir() {
        eprintln!("skipped: {} is not a folder", dir.display());
        return;
    }
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();
    let mut read = 0;
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: not JSON: {e}", f.display()));
                continue;
            }
        };
        for r in receipts(&value) {
            read += 1;
            if let Err(e) = normalize_receipt("real", r) {
                problems.push(format!("{}: {e}", f.display()));
            }
        }
    }
    eprintln!(
        "{} JSON files under {}, {read} receipts read, {} problems",
        files.len(),
        dir.display(),
        problems.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
