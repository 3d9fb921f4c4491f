//! `switchyard rules explain`: the evaluation of one order, as JSON for
//! scripts and as text for people (both shown in `docs/rules.md`).

use std::fmt::Write as _;

use serde_json::{Value, json};
use switchyard_contract::{Order, Priority};

use super::eval::Evaluation;

pub(crate) fn priority_str(p: Priority) -> &'static str {
    match p {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
    }
}

/// `{ "order", "rules": [ { "name", "matched", "failed" } ],
///    "result": { "tags", "route", "hold", "priority" } }`, where `order` is
/// the canonical order id.
pub fn explain_json(order: &Order, eval: &Evaluation) -> Value {
    let rules: Vec<Value> = eval
        .trace
        .iter()
        .map(|t| json!({ "name": t.name, "matched": t.matched, "failed": t.failed }))
        .collect();
    json!({
        "order": order.id,
        "rules": rules,
        "result": {
            "tags": eval.tags,
            "route": eval.route,
            "route_from": route_from(eval),
            "hold": eval.hold,
            "priority": priority_str(eval.priority),
        }
    })
}

/// Where the route came from: `"rule"`, `"default_route"`, or null (none).
fn route_from(eval: &Evaluation) -> Option<&'static str> {
    match (&eval.route, eval.route_is_default) {
        (None, _) => None,
        (Some(_), true) => Some("default_route"),
        (Some(_), false) => Some("rule"),
    }
}

/// One line per rule (`✓ name`, `✗ name: why`, `- name: skipped: ...`), then
/// the result. Ends with a newline.
pub fn explain_text(order: &Order, eval: &Evaluation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "order {}", order.id);
    if eval.trace.is_empty() {
        let _ = writeln!(out, "  (no rules)");
    }
    for t in &eval.trace {
        let _ = match (&t.failed, t.matched) {
            (_, true) => writeln!(out, "  ✓ {}", t.name),
            (Some(why), false) if why.starts_with("skipped:") => {
                writeln!(out, "  - {}: {why}", t.name)
            }
            (Some(why), false) => writeln!(out, "  ✗ {}: {why}", t.name),
            (None, false) => writeln!(out, "  ✗ {}", t.name),
        };
    }
    let none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
    let _ = writeln!(out, "result");
    let _ = writeln!(
        out,
        "  tags:     {}",
        if eval.tags.is_empty() {
            "(none)".to_owned()
        } else {
            eval.tags.join(", ")
        }
    );
    if !eval.rule_tags.is_empty() {
        let _ = writeln!(out, "    added by rules: {}", eval.rule_tags.join(", "));
    }
    if !eval.removed_tags.is_empty() {
        let _ = writeln!(
            out,
            "    removed from the channel's: {}",
            eval.removed_tags.join(", ")
        );
    }
    let route = match route_from(eval) {
        Some("default_route") => {
            format!("{} (default_route: no rule set a route)", none(&eval.route))
        }
        _ => none(&eval.route),
    };
    let _ = writeln!(out, "  route:    {route}");
    let _ = writeln!(out, "  hold:     {}", none(&eval.hold));
    let _ = writeln!(out, "  priority: {}", priority_str(eval.priority));
    out
}
