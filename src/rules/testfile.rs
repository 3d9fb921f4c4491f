//! Rule test files (`switchyard rules test PATH...`): TOML files that pair an
//! input order with what the rules must make of it. The format is documented
//! for users in `docs/rules.md`; in short:
//!
//! ```toml
//! order = "orders/us-standard.json"    # default base order for every case
//!
//! [[case]]
//! name = "canadian orders go to the 3pl"
//! patch = { shipping_address = { country = "CA" } }   # JSON merge patch, in TOML
//! unset = ["customer.email"]                          # fields to make null
//! channel_tags = ["wholesale"]                        # default: the order's `tags`
//! manual_tags = ["keep"]
//! [case.expect]
//! route = "west-3pl"        # or false: no route
//! hold = false              # or true: held, any reason; or the exact reason
//! priority = "high"
//! tags = ["canada"]         # exactly these, in any order
//! tags_include = ["x"]      # at least these
//! tags_exclude = ["y"]      # none of these
//! fired = ["rule-a"]        # rules that must match
//! not_fired = ["rule-b"]    # rules that must not match
//! line_routes = { POSTER-A2 = "print-partner", MUG-RED = "east-wh" }  # each line's destination
//! ```
//!
//! Anything not written under `expect` is not checked; a case must check at
//! least one thing. Problems with one case (an order that does not parse, a
//! rule name that does not exist) fail that case; problems with the file
//! itself (bad TOML, unknown keys) are an `Err`.

use std::fs;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use switchyard_contract::{Order, Priority};

use super::ast::RuleSet;
use super::eval::{RuleInput, evaluate};
use super::explain::priority_str;
use crate::diag::{LineIndex, unknown_word};

/// The outcome of one `[[case]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// One sentence per unmet expectation, e.g. `expected route east-wh, got null`.
    pub failures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    order: Option<toml::Value>,
    #[serde(default)]
    case: Vec<CaseSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: String,
    order: Option<toml::Value>,
    patch: Option<toml::Table>,
    #[serde(default)]
    unset: Vec<String>,
    channel_tags: Option<Vec<String>>,
    #[serde(default)]
    manual_tags: Vec<String>,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    tags: Option<Vec<String>>,
    #[serde(default)]
    tags_include: Vec<String>,
    #[serde(default)]
    tags_exclude: Vec<String>,
    route: Option<toml::Value>,
    hold: Option<toml::Value>,
    priority: Option<Priority>,
    #[serde(default)]
    fired: Vec<String>,
    #[serde(default)]
    not_fired: Vec<String>,
    /// SKU -> the destination of every line with that SKU (a line route or
    /// the order's route), or false for none.
    #[serde(default)]
    line_routes: toml::Table,
}

/// Runs every case of one test file against `rules`.
pub fn run_test_file(rules: &RuleSet, path: &Path) -> Result<Vec<CaseResult>, String> {
    let text = fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read test file: {e}", path.display()))?;
    let spec: FileSpec = toml::from_str(&text).map_err(|e| {
        let index = LineIndex::new(&text);
        match e.span() {
            Some(span) => {
                let (line, col) = index.position(span.start);
                format!("{}:{line}:{col}: {}", path.display(), e.message().trim())
            }
            None => format!("{}: {}", path.display(), e.message().trim()),
        }
    })?;
    if spec.case.is_empty() {
        return Err(format!(
            "{}: no test cases (add a [[case]] table)",
            path.display()
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok(spec
        .case
        .iter()
        .map(|case| {
            let failures = match build_order(dir, spec.order.as_ref(), case) {
                Ok(order) => check_case(rules, &order, case),
                Err(e) => vec![e],
            };
            CaseResult {
                name: case.name.clone(),
                passed: failures.is_empty(),
                failures,
            }
        })
        .collect())
}

/// `PASS path: name`, or `FAIL path: name: why; why`.
pub fn format_case(path: &Path, case: &CaseResult) -> String {
    if case.passed {
        format!("PASS {}: {}", path.display(), case.name)
    } else {
        format!(
            "FAIL {}: {}: {}",
            path.display(),
            case.name,
            case.failures.join("; ")
        )
    }
}

/// The test files named by `paths`: files as given, directories as their
/// `*.toml` files (not recursive), sorted by name.
pub fn collect_test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!("{}: no *.toml test files", p.display()));
            }
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

fn build_order(
    dir: &Path,
    default: Option<&toml::Value>,
    case: &CaseSpec,
) -> Result<Order, String> {
    let base = case.order.as_ref().or(default).ok_or_else(|| {
        "no order: set `order` (a path to an order JSON file, or an inline table) in the case or at the top of the file".to_owned()
    })?;
    let (mut json, origin) = match base {
        toml::Value::String(rel) => {
            let file = dir.join(rel);
            let text = fs::read_to_string(&file)
                .map_err(|e| format!("cannot read order {}: {e}", file.display()))?;
            let json: Json = serde_json::from_str(&text)
                .map_err(|e| format!("order {} is not JSON: {e}", file.display()))?;
            (json, rel.clone())
        }
        toml::Value::Table(t) => (
            to_json(&toml::Value::Table(t.clone())),
            "inline order".to_owned(),
        ),
        _ => {
            return Err(
                "order: expected a path to an order JSON file or an inline table".to_owned(),
            );
        }
    };
    if let Some(patch) = &case.patch {
        let mut patch = to_json(&toml::Value::Table(patch.clone()));
        if let Some(Json::Array(lines)) = patch.get_mut("lines") {
            for (i, line) in lines.iter_mut().enumerate() {
                fill_line(i, line)?;
            }
        }
        merge(&mut json, patch);
    }
    for field in &case.unset {
        unset(&mut json, field)?;
    }
    serde_json::from_value(json).map_err(|e| format!("invalid order ({origin} after patch): {e}"))
}

/// Patch lines may leave out what a rule does not look at.
fn fill_line(i: usize, line: &mut Json) -> Result<(), String> {
    let Json::Object(m) = line else {
        return Err(format!("patch.lines[{i}]: expected a table"));
    };
    m.entry("line_id")
        .or_insert_with(|| Json::from((i + 1).to_string()));
    let title = m
        .get("sku")
        .and_then(Json::as_str)
        .unwrap_or("item")
        .to_owned();
    m.entry("title").or_insert(Json::from(title));
    m.entry("quantity").or_insert(Json::from(1));
    m.entry("unit_price").or_insert(Json::from("0.00"));
    m.entry("shipped_quantity").or_insert(Json::from(0));
    if !m.contains_key("total") {
        let price: Decimal = m["unit_price"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("patch.lines[{i}].unit_price: expected an amount string"))?;
        let qty = m["quantity"]
            .as_u64()
            .ok_or_else(|| format!("patch.lines[{i}].quantity: expected a whole number"))?;
        // Checked: `Decimal`'s `*` panics past 28 digits, and a test file
        // is input like any other.
        let total = price.checked_mul(Decimal::from(qty)).ok_or_else(|| {
            format!(
                "patch.lines[{i}]: unit_price {price} × quantity {qty} is out of range; give `total` or smaller figures"
            )
        })?;
        m.insert("total".into(), Json::from(total.to_string()));
    }
    Ok(())
}

/// JSON merge patch (RFC 7396) without deletion, since TOML has no null;
/// `unset` covers that.
fn merge(target: &mut Json, patch: Json) {
    match patch {
        Json::Object(p) => {
            if !target.is_object() {
                *target = Json::Object(Map::new());
            }
            let Some(t) = target.as_object_mut() else {
                return;
            };
            for (k, v) in p {
                merge(t.entry(k).or_insert(Json::Null), v);
            }
        }
        other => *target = other,
    }
}

fn unset(json: &mut Json, path: &str) -> Result<(), String> {
    let mut cur = json;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let obj = cur
            .as_object_mut()
            .ok_or_else(|| format!("unset {path:?}: {part:?} is not inside a table"))?;
        if parts.peek().is_none() {
            return match obj.get_mut(part) {
                Some(v) => {
                    *v = Json::Null;
                    Ok(())
                }
                None => Err(format!("unset {path:?}: the order has no field {part:?}")),
            };
        }
        cur = obj
            .get_mut(part)
            .ok_or_else(|| format!("unset {path:?}: the order has no field {part:?}"))?;
    }
    Ok(())
}

fn to_json(v: &toml::Value) -> Json {
    match v {
        toml::Value::String(s) => Json::from(s.as_str()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(f) => Json::from(*f),
        toml::Value::Boolean(b) => Json::from(*b),
        toml::Value::Datetime(d) => Json::from(d.to_string()),
        toml::Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            Json::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn shown(v: Option<&str>) -> String {
    v.map_or_else(|| "null".to_owned(), str::to_owned)
}

fn check_case(rules: &RuleSet, order: &Order, case: &CaseSpec) -> Vec<String> {
    let channel_tags = case.channel_tags.as_deref().unwrap_or(&order.tags);
    let input = RuleInput {
        order,
        channel_tags,
        manual_tags: &case.manual_tags,
    };
    // The order's own clock, not the machine's: cases give the same answer
    // on every run.
    let eval = evaluate(rules, &input, order.updated_at);
    let ex = &case.expect;
    let mut f = Vec::new();
    let mut checked = false;

    if let Some(route) = &ex.route {
        checked = true;
        match route {
            toml::Value::String(want) if eval.route.as_deref() != Some(want.as_str()) => {
                f.push(format!(
                    "expected route {want}, got {}",
                    shown(eval.route.as_deref())
                ))
            }
            toml::Value::Boolean(false) if eval.route.is_some() => f.push(format!(
                "expected no route, got {}",
                shown(eval.route.as_deref())
            )),
            toml::Value::String(_) | toml::Value::Boolean(false) => {}
            _ => f.push("expect.route: expected a destination id, or false for no route".into()),
        }
    }
    if let Some(hold) = &ex.hold {
        checked = true;
        let got = eval.hold.as_deref();
        match hold {
            toml::Value::String(want) if got != Some(want.as_str()) => f.push(format!(
                "expected hold {want:?}, got {}",
                got.map_or("null".into(), |g| format!("{g:?}"))
            )),
            toml::Value::Boolean(false) if got.is_some() => f.push(format!(
                "expected no hold, got {:?}",
                got.unwrap_or_default()
            )),
            toml::Value::Boolean(true) if got.is_none() => {
                f.push("expected a hold, got null".into())
            }
            toml::Value::String(_) | toml::Value::Boolean(_) => {}
            _ => f.push("expect.hold: expected a reason, true (any reason) or false".into()),
        }
    }
    if let Some(want) = ex.priority {
        checked = true;
        if eval.priority != want {
            f.push(format!(
                "expected priority {}, got {}",
                priority_str(want),
                priority_str(eval.priority)
            ));
        }
    }
    if let Some(want) = &ex.tags {
        checked = true;
        let missing: Vec<&str> = want
            .iter()
            .filter(|t| !eval.tags.contains(t))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = eval
            .tags
            .iter()
            .filter(|t| !want.contains(t))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            let mut why = Vec::new();
            if !missing.is_empty() {
                why.push(format!("missing {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                why.push(format!("unexpected {}", extra.join(", ")));
            }
            f.push(format!(
                "expected tags [{}], got [{}] ({})",
                want.join(", "),
                eval.tags.join(", "),
                why.join("; ")
            ));
        }
    }
    for t in &ex.tags_include {
        checked = true;
        if !eval.tags.contains(t) {
            f.push(format!("expected tag {t}, got [{}]", eval.tags.join(", ")));
        }
    }
    for t in &ex.tags_exclude {
        checked = true;
        if eval.tags.contains(t) {
            f.push(format!(
                "expected no tag {t}, got [{}]",
                eval.tags.join(", ")
            ));
        }
    }
    for (sku, want) in &ex.line_routes {
        checked = true;
        let want = match want {
            toml::Value::String(d) => Some(d.as_str()),
            toml::Value::Boolean(false) => None,
            _ => {
                f.push(format!(
                    "expect.line_routes.{sku}: expected a destination id, or false for none"
                ));
                continue;
            }
        };
        let lines: Vec<_> = order
            .lines
            .iter()
            .filter(|l| l.sku.as_deref() == Some(sku.as_str()))
            .collect();
        if lines.is_empty() {
            let skus: Vec<&str> = order
                .lines
                .iter()
                .filter_map(|l| l.sku.as_deref())
                .collect();
            f.push(format!(
                "expect.line_routes: the order has no line with sku {sku} (its skus: [{}])",
                skus.join(", ")
            ));
        }
        for line in lines {
            let got = eval.line_destination(&line.line_id);
            if got != want {
                let expected = match want {
                    Some(d) => format!("to go to {d}"),
                    None => "to have no destination".to_owned(),
                };
                f.push(format!(
                    "expected line {} ({sku}) {expected}, got {}",
                    line.line_id,
                    got.unwrap_or("none")
                ));
            }
        }
    }
    let names: Vec<&str> = rules.rules().iter().map(|r| r.name()).collect();
    for (list, must_fire) in [(&ex.fired, true), (&ex.not_fired, false)] {
        for name in list {
            checked = true;
            let Some(trace) = eval.trace.iter().find(|t| t.name == *name) else {
                let field = if must_fire { "fired" } else { "not_fired" };
                f.push(format!("{field}: {}", unknown_word("rule", name, &names)));
                continue;
            };
            match (must_fire, trace.matched) {
                (true, false) => f.push(format!(
                    "expected rule {name} to fire, but it did not ({})",
                    trace.failed.as_deref().unwrap_or("no reason")
                )),
                (false, true) => f.push(format!("rule {name} fired, but is listed in not_fired")),
                _ => {}
            }
        }
    }
    if !checked {
        f.push("the case checks nothing (add expectations under [case.expect])".into());
    }
    f
}
