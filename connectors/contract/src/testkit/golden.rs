//! Golden files: compare a JSON value with the file a scenario keeps under
//! `expected/`, or rewrite the file when `SWITCHYARD_BLESS=1`.

use std::path::Path;

/// The environment switch that rewrites golden files instead of comparing.
pub const BLESS_ENV: &str = "SWITCHYARD_BLESS";

/// Panics with both documents when `actual` differs from the golden file.
pub fn assert_golden_json(path: &Path, actual: &serde_json::Value) {
    let rendered =
        serde_json::to_string_pretty(actual).expect("JSON values always serialize") + "\n";
    if std::env::var_os(BLESS_ENV).is_some_and(|v| v == "1") {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create golden folder");
        }
        std::fs::write(path, rendered).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "golden file {} cannot be read ({e}); run the test with {BLESS_ENV}=1 to create it",
            path.display()
        )
    });
    let expected_value: serde_json::Value = serde_json::from_str(&expected)
        .unwrap_or_else(|e| panic!("golden file {} is not JSON: {e}", path.display()));
    if &expected_value != actual {
        let diff = first_difference(&expected_value, actual, String::from("$"))
            .unwrap_or_else(|| "(values differ)".into());
        panic!(
            "output differs from golden file {}\nfirst difference: {diff}\n--- actual ---\n{rendered}\nrun with {BLESS_ENV}=1 to accept the new output",
            path.display()
        );
    }
}

/// The JSON path of the first place two values differ, with both sides.
pub fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: String,
) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => {
                        if let Some(d) = first_difference(va, vb, format!("{at}.{k}")) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{at}.{k}: expected {va}, missing")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{at}.{k}: unexpected {}", y[k]))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(va, vb, format!("{at}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len())
                .then(|| format!("{at}: expected {} items, got {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| format!("{at}: expected {a}, got {b}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_first_differing_path() {
        let a = json!({"lines": [{"sku": "A"}], "total": "1.00"});
        let b = json!({"lines": [{"sku": "B"}], "total": "1.00"});
        assert_eq!(
            first_difference(&a, &b, "$".into()).unwrap(),
            "$.lines[0].sku: expected \"A\", got \"B\""
        );
        assert_eq!(first_difference(&a, &a, "$".into()), None);
    }

    #[test]
    fn a_matching_golden_file_passes_and_a_different_one_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.json");
        std::fs::write(&path, "{\"a\": 1}").unwrap();
        assert_golden_json(&path, &json!({"a": 1}));
        let r = std::panic::catch_unwind(|| assert_golden_json(&path, &json!({"a": 2})));
        assert!(r.is_err());
    }
}
