//! `switchyard rules explain`: the evaluation of one order, as JSON for
//! scripts and as text for people (both shown in `docs/rules.md`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchyard_contract::{Order, Priority};

use super::eval::Evaluation;

/// What a person did about a stored order's hold, beside what the rules
/// decide: a hold set by hand (which wins over the rules'), and a rule hold
/// released by hand (which stays released while the rules give the same
/// reason). Both empty for a bare canonical order given in a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonHold {
    pub manual: Option<String>,
    pub released: Option<String>,
}

impl PersonHold {
    /// The hold in force given the rules' `hold`, and where it comes from:
    /// `"manual"`, `"rule"`, `"released"` (the rules hold it, a person
    /// released it: not held), or none.
    pub fn effective<'a>(
        &'a self,
        rules: Option<&'a str>,
    ) -> (Option<&'a str>, Option<&'static str>) {
        match (self.manual.as_deref(), rules) {
            (Some(manual), _) => (Some(manual), Some("manual")),
            (None, Some(rule)) if self.released.as_deref() == Some(rule) => {
                (None, Some("released"))
            }
            (None, Some(rule)) => (Some(rule), Some("rule")),
            (None, None) => (None, None),
        }
    }
}

pub(crate) fn priority_str(p: Priority) -> &'static str {
    match p {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
    }
}

/// `{ "order", "rules": [ { "name", "matched", "failed" } ],
///    "result": { "tags", "route", "route_from", "hold", "hold_from", "priority", "lines" } }`,
/// where `order` is the canonical order id and `hold` the hold in force,
/// given what a person did (`person`; default for an order in a file).
pub fn explain_json(order: &Order, eval: &Evaluation, person: &PersonHold) -> Value {
    let (hold, hold_from) = person.effective(eval.hold.as_deref());
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
            "hold": hold,
            "hold_from": hold_from,
            "rules_hold": eval.hold,
            "priority": priority_str(eval.priority),
            "lines": lines_json(order, eval),
        }
    })
}

/// Each line's destination: `{ "line_id", "sku", "route", "route_from",
/// "rule" }`, where `route_from` is `"route_lines"` (the `rule` named took
/// the line) or `"order"` (the line follows the order's route; `rule` is
/// the rule that set that route, null for `default_route` or no route).
fn lines_json(order: &Order, eval: &Evaluation) -> Vec<Value> {
    order
        .lines
        .iter()
        .map(|line| {
            let (route, from, rule) = line_route(eval, &line.line_id);
            json!({
                "line_id": line.line_id,
                "sku": line.sku,
                "route": route,
                "route_from": from,
                "rule": rule,
            })
        })
        .collect()
}

/// A line's destination, where it comes from and the rule behind it.
fn line_route<'e>(
    eval: &'e Evaluation,
    line_id: &str,
) -> (Option<&'e str>, &'static str, Option<&'e str>) {
    match eval.line_routes.iter().find(|l| l.line_id == line_id) {
        Some(l) => (Some(&l.route), "route_lines", Some(&l.rule)),
        None => (eval.route.as_deref(), "order", eval.route_rule.as_deref()),
    }
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
pub fn explain_text(order: &Order, eval: &Evaluation, person: &PersonHold) -> String {
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
    let route = match (route_from(eval), &eval.route_rule) {
        (Some("default_route"), _) => {
            format!("{} (default_route: no rule set a route)", none(&eval.route))
        }
        (Some("rule"), Some(rule)) => format!("{} (rule {rule})", none(&eval.route)),
        _ => none(&eval.route),
    };
    let _ = writeln!(out, "  route:    {route}");
    // Spelled out line by line only when some line does not simply follow
    // the order's route: otherwise `route` says where every line goes.
    if !eval.line_routes.is_empty() {
        let _ = writeln!(out, "  lines:");
        for line in &order.lines {
            let (dest, from, rule) = line_route(eval, &line.line_id);
            let why = match (from, rule) {
                ("route_lines", Some(rule)) => format!("route_lines of rule {rule}"),
                _ => "the order's route".to_owned(),
            };
            let _ = writeln!(
                out,
                "    {} {} x{} -> {} ({why})",
                line.line_id,
                line.sku.as_deref().unwrap_or("(no sku)"),
                line.quantity,
                dest.unwrap_or("(none)"),
            );
        }
    }
    let by_rule = |reason: &str| match &eval.hold_rule {
        Some(rule) => format!("{reason} (rule {rule})"),
        None => reason.to_owned(),
    };
    let hold = match (person.effective(eval.hold.as_deref()), eval.hold.as_deref()) {
        ((Some(manual), Some("manual")), Some(rules)) => format!(
            "{manual} (set by hand; the rules would hold it too: {})",
            by_rule(rules)
        ),
        ((Some(manual), Some("manual")), None) => format!("{manual} (set by hand)"),
        ((None, Some("released")), Some(rules)) => format!(
            "(none): the rules hold it for {}, but a person released that hold, and it stays released",
            by_rule(rules)
        ),
        ((Some(rules), _), _) => by_rule(rules),
        _ => "(none)".to_owned(),
    };
    let _ = writeln!(out, "  hold:     {hold}");
    let _ = writeln!(out, "  priority: {}", priority_str(eval.priority));
    out
}
