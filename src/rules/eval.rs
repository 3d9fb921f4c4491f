//! Evaluation: a pure function of (rules, order, tags, now).
//!
//! Tags are kept by origin: the channel's, the hand-set ones, and the ones
//! rules add. Rules run in file order and see the tags as earlier rules left
//! them; `untag` removes channel and rule tags but never hand-set ones, so
//! re-running the rules can never lose what a person set. Tags compare
//! ignoring case (Shopify does, and "VIP" vs "vip" is never a meaningful
//! difference); the first spelling seen is kept.
//!
//! The matching path only compares (everything was compiled at load time);
//! failure messages are formatted only for rules that did not match, and
//! only by [`evaluate`] — [`decide`] skips the trace for the ingest path.

use std::fmt::{Display, Write as _};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_contract::{Order, Priority};

use super::ast::{Cmp, Cond, Conj, Rule, RuleSet};
use super::glob::{Glob, eq_ci};

/// What the rules look at: the order, and its tags by origin (the order's
/// own `tags`, `route`, `hold` and `priority` are ignored: they are what the
/// rules produce).
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    pub order: &'a Order,
    pub channel_tags: &'a [String],
    pub manual_tags: &'a [String],
}

/// The rules' decision for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Tags added by rules and still present at the end, in the order they
    /// were added, without duplicates.
    pub rule_tags: Vec<String>,
    /// Channel tags that `untag` removed (and no later rule added back).
    pub removed_tags: Vec<String>,
    /// Every tag the order ends with: the channel's (minus removed ones),
    /// then the hand-set ones, then the rules', without duplicates.
    pub tags: Vec<String>,
    pub route: Option<String>,
    /// The route is `default_route`: no rule set one.
    #[serde(default)]
    pub route_is_default: bool,
    /// The rule whose `route` decided `route`.
    #[serde(default)]
    pub route_rule: Option<String>,
    pub hold: Option<String>,
    /// The rule whose `hold` decided `hold`.
    #[serde(default)]
    pub hold_rule: Option<String>,
    pub priority: Priority,
    /// The lines a rule's `route_lines` took, in line order; every other
    /// line follows `route`.
    #[serde(default)]
    pub line_routes: Vec<LineRoute>,
    /// One entry per rule, in file order ([`evaluate`] only; empty from
    /// [`decide`]).
    pub trace: Vec<RuleTrace>,
}

/// A line that a rule's `route_lines` sent to a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRoute {
    pub line_id: String,
    pub route: String,
    /// The rule whose `route_lines` took the line.
    pub rule: String,
}

impl Evaluation {
    /// Where a line goes: its line route, else the order's route.
    pub fn line_destination(&self, line_id: &str) -> Option<&str> {
        self.line_routes
            .iter()
            .find(|l| l.line_id == line_id)
            .map(|l| l.route.as_str())
            .or(self.route.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTrace {
    pub name: String,
    pub matched: bool,
    /// `None` when matched; otherwise the first condition that failed, with
    /// the order's value beside the rule's, or `skipped: stopped by <rule>`.
    pub failed: Option<String>,
}

/// Runs the rules over one order and explains every rule. `now` is not used
/// yet; it is in the signature so that time-based conditions can come
/// without changing callers, and so evaluation never reads the clock.
pub fn evaluate(rules: &RuleSet, input: &RuleInput<'_>, now: DateTime<Utc>) -> Evaluation {
    run(rules, input, now, true)
}

/// The same decision as [`evaluate`] without the per-rule trace: what the
/// ingest path needs, at a fraction of the cost when many rules fail.
pub fn decide(rules: &RuleSet, input: &RuleInput<'_>, now: DateTime<Utc>) -> Evaluation {
    run(rules, input, now, false)
}

struct Ctx<'a> {
    order: &'a Order,
    item_count: u64,
}

/// The tags as the rules see them at one point of a run.
struct Tags<'a> {
    /// The channel's tags, and whether `untag` has removed each.
    channel: Vec<(&'a str, bool)>,
    manual: &'a [String],
    added: Vec<&'a str>,
}

impl<'a> Tags<'a> {
    fn has(&self, tag: &str) -> bool {
        self.channel
            .iter()
            .any(|(t, removed)| !removed && eq_ci(t, tag))
            || self.manual.iter().any(|t| eq_ci(t, tag))
            || self.added.iter().any(|t| eq_ci(t, tag))
    }

    fn add(&mut self, tag: &'a str) {
        if !self.added.iter().any(|t| eq_ci(t, tag)) {
            self.added.push(tag);
        }
    }

    fn remove(&mut self, tag: &str) {
        for (t, removed) in &mut self.channel {
            if eq_ci(t, tag) {
                *removed = true;
            }
        }
        self.added.retain(|t| !eq_ci(t, tag));
    }

    fn current(&self) -> impl Iterator<Item = &str> {
        self.channel
            .iter()
            .filter(|(_, removed)| !removed)
            .map(|(t, _)| *t)
            .chain(self.manual.iter().map(String::as_str))
            .chain(self.added.iter().copied())
    }
}

fn push_unique(out: &mut Vec<String>, tag: &str) {
    if !out.iter().any(|t| eq_ci(t, tag)) {
        out.push(tag.to_owned());
    }
}

fn run(rules: &RuleSet, input: &RuleInput<'_>, _now: DateTime<Utc>, explain: bool) -> Evaluation {
    let cx = Ctx {
        order: input.order,
        item_count: input.order.item_count(),
    };
    let mut tags = Tags {
        channel: input
            .channel_tags
            .iter()
            .map(|t| (t.as_str(), false))
            .collect(),
        manual: input.manual_tags,
        added: Vec::new(),
    };
    let mut route: Option<&str> = None;
    let mut hold: Option<&str> = None;
    let mut hold_rule: Option<&str> = None;
    let mut route_rule: Option<&str> = None;
    let mut priority: Option<Priority> = None;
    // Per line: (destination, rule) once a `route_lines` took it. Left
    // empty until a matching rule has `route_lines`, which most never do.
    let mut taken: Vec<Option<(&str, &str)>> = Vec::new();
    let mut trace = Vec::with_capacity(if explain { rules.rules.len() } else { 0 });
    let mut stopped_by: Option<&str> = None;

    for rule in &rules.rules {
        if let Some(stopper) = stopped_by {
            if !explain {
                break;
            }
            trace.push(RuleTrace {
                name: rule.name.clone(),
                matched: false,
                failed: Some(format!("skipped: stopped by {stopper}")),
            });
            continue;
        }
        if let Some(failing) = first_failure(&rule.when, &cx, &tags) {
            if explain {
                trace.push(RuleTrace {
                    name: rule.name.clone(),
                    matched: false,
                    failed: Some(describe(failing, &cx, &tags, "")),
                });
            }
            continue;
        }
        let then = &rule.then;
        for t in &then.tag {
            tags.add(t);
        }
        for t in &then.untag {
            tags.remove(t);
        }
        if route.is_none() && then.route.is_some() {
            route = then.route.as_deref();
            route_rule = Some(rule.name.as_str());
        }
        if hold.is_none() && then.hold.is_some() {
            hold = then.hold.as_deref();
            hold_rule = Some(rule.name.as_str());
        }
        priority = priority.or(then.priority);
        if !then.route_lines.is_empty() {
            take_lines(&mut taken, input.order, rule);
        }
        if explain {
            trace.push(RuleTrace {
                name: rule.name.clone(),
                matched: true,
                failed: None,
            });
        }
        if rule.stop {
            stopped_by = Some(&rule.name);
        }
    }

    let mut all = Vec::with_capacity(tags.channel.len() + tags.manual.len() + tags.added.len());
    for t in tags.current() {
        push_unique(&mut all, t);
    }
    let mut removed = Vec::new();
    for (t, was_removed) in &tags.channel {
        if *was_removed && !all.iter().any(|a| eq_ci(a, t)) {
            push_unique(&mut removed, t);
        }
    }
    Evaluation {
        rule_tags: tags.added.iter().map(|t| (*t).to_owned()).collect(),
        removed_tags: removed,
        tags: all,
        route_is_default: route.is_none() && rules.default_route.is_some(),
        route_rule: route_rule.map(str::to_owned),
        route: route.or(rules.default_route.as_deref()).map(str::to_owned),
        hold: hold.map(str::to_owned),
        hold_rule: hold_rule.map(str::to_owned),
        priority: priority.unwrap_or_default(),
        line_routes: input
            .order
            .lines
            .iter()
            .zip(&taken)
            .filter_map(|(line, t)| {
                t.map(|(route, rule)| LineRoute {
                    line_id: line.line_id.clone(),
                    route: route.to_owned(),
                    rule: rule.to_owned(),
                })
            })
            .collect(),
        trace,
    }
}

/// Gives each line not taken yet to the first of the rule's `route_lines`
/// entries that takes its SKU.
fn take_lines<'r>(taken: &mut Vec<Option<(&'r str, &'r str)>>, order: &Order, rule: &'r Rule) {
    if taken.is_empty() {
        taken.resize(order.lines.len(), None);
    }
    for (line, slot) in order.lines.iter().zip(taken.iter_mut()) {
        if slot.is_some() {
            continue;
        }
        if let Some(entry) = rule
            .then
            .route_lines
            .iter()
            .find(|e| e.takes(line.sku.as_deref()))
        {
            *slot = Some((entry.route.as_str(), rule.name.as_str()));
        }
    }
}

fn first_failure<'c>(conj: &'c Conj, cx: &Ctx<'_>, tags: &Tags<'_>) -> Option<&'c Cond> {
    conj.0.iter().find(|c| !holds(c, cx, tags))
}

fn address_field<'a>(
    cx: &Ctx<'a>,
    f: impl Fn(&'a switchyard_contract::Address) -> &'a Option<String>,
) -> Option<&'a str> {
    cx.order
        .shipping_address
        .as_ref()
        .and_then(|a| f(a).as_deref())
}

fn email<'a>(cx: &Ctx<'a>) -> Option<&'a str> {
    cx.order.customer.as_ref().and_then(|c| c.email.as_deref())
}

fn any_glob(globs: &[Glob], value: Option<&str>) -> bool {
    value.is_some_and(|v| globs.iter().any(|g| g.matches(v)))
}

fn cmp_holds<T: PartialOrd>(cmp: &Cmp<T>, value: &T) -> bool {
    cmp.ops.iter().all(|(op, limit)| op.holds(value, limit))
}

fn holds(c: &Cond, cx: &Ctx<'_>, tags: &Tags<'_>) -> bool {
    let o = cx.order;
    match c {
        Cond::Channel(v) => v.contains(&o.channel),
        Cond::Account(v) => v.contains(&o.account),
        Cond::Status(v) => v.contains(&o.status),
        Cond::Currency(v) => v
            .iter()
            .any(|c| c.eq_ignore_ascii_case(o.currency.as_str())),
        Cond::Country(v) => address_field(cx, |a| &a.country)
            .is_some_and(|c| v.iter().any(|x| x.eq_ignore_ascii_case(c.trim()))),
        Cond::Region(v) => {
            address_field(cx, |a| &a.region).is_some_and(|r| v.iter().any(|x| eq_ci(x, r.trim())))
        }
        Cond::PostalCode(g) => any_glob(g, address_field(cx, |a| &a.postal_code)),
        Cond::Email(g) => any_glob(g, email(cx)),
        Cond::ShippingMethod(g) => any_glob(g, o.shipping_method.as_deref()),
        Cond::Sku(g) => o.lines.iter().any(|l| any_glob(g, l.sku.as_deref())),
        Cond::AllSkus(g) => {
            !o.lines.is_empty() && o.lines.iter().all(|l| any_glob(g, l.sku.as_deref()))
        }
        Cond::Tag(v) => v.iter().any(|t| tags.has(t)),
        Cond::Total(cmp) => cmp_holds(cmp, &o.totals.total),
        Cond::ItemCount(cmp) => cmp_holds(cmp, &cx.item_count),
        Cond::Payment(v) => v.contains(&o.payment),
        Cond::Fulfillment(v) => v.contains(&o.fulfillment),
        Cond::Test(b) => o.test == *b,
        Cond::Gift(b) => o.gift.is_some() == *b,
        Cond::Any(alts) => alts.iter().any(|a| first_failure(a, cx, tags).is_none()),
        Cond::All(alts) => alts.iter().all(|a| first_failure(a, cx, tags).is_none()),
        Cond::Not(inner) => first_failure(inner, cx, tags).is_some(),
    }
}

fn shown(v: Option<&str>) -> &str {
    v.unwrap_or("(none)")
}

/// Why `c` (which failed) failed, starting with its key path.
fn describe(c: &Cond, cx: &Ctx<'_>, tags: &Tags<'_>, prefix: &str) -> String {
    let mut out = String::with_capacity(64);
    describe_into(&mut out, c, cx, tags, prefix);
    out
}

/// Writes into one buffer: a trace formats a reason for every rule that
/// did not match, so this is the hot part of `evaluate`.
fn describe_into(out: &mut String, c: &Cond, cx: &Ctx<'_>, tags: &Tags<'_>, prefix: &str) {
    let o = cx.order;
    let _ = write!(out, "{prefix}{}", c.key());
    match c {
        Cond::Channel(v) => not_in(out, o.channel.as_str(), v),
        Cond::Account(v) => not_in(out, &o.account, v),
        Cond::Status(v) => not_in(out, o.status.as_str(), v),
        Cond::Currency(v) => not_in(out, o.currency.as_str(), v),
        Cond::Country(v) => not_in(out, shown(address_field(cx, |a| &a.country)), v),
        Cond::Region(v) => not_in(out, shown(address_field(cx, |a| &a.region)), v),
        Cond::PostalCode(g) => no_match(out, address_field(cx, |a| &a.postal_code), g),
        Cond::Email(g) => no_match(out, email(cx), g),
        Cond::ShippingMethod(g) => no_match(out, o.shipping_method.as_deref(), g),
        Cond::Sku(g) => {
            out.push_str(": no line matches ");
            write_list(out, g);
            out.push_str(" (skus: ");
            write_list(out, o.lines.iter().map(|l| shown(l.sku.as_deref())));
            out.push(')');
        }
        Cond::AllSkus(g) => match o.lines.iter().find(|l| !any_glob(g, l.sku.as_deref())) {
            None => out.push_str(": order has no lines"),
            Some(line) => match line.sku.as_deref() {
                Some(sku) => {
                    let _ = write!(out, ": {sku} does not match ");
                    write_list(out, g);
                }
                None => {
                    let _ = write!(out, ": line {} has no sku", line.line_id);
                }
            },
        },
        Cond::Tag(v) => {
            out.push_str(": none of ");
            write_list(out, v);
            out.push_str(" in ");
            write_list(out, tags.current());
        }
        Cond::Total(cmp) => describe_cmp(out, cmp, &o.totals.total),
        Cond::ItemCount(cmp) => describe_cmp(out, cmp, &cx.item_count),
        Cond::Payment(v) => not_in(out, o.payment.as_str(), v),
        Cond::Fulfillment(v) => not_in(out, o.fulfillment.as_str(), v),
        Cond::Test(b) => {
            let _ = write!(out, ": {} != {b}", o.test);
        }
        Cond::Gift(b) => {
            let _ = write!(out, ": {} != {b}", o.gift.is_some());
        }
        Cond::Any(alts) => {
            out.push_str(": no alternative matched (");
            let mut first = true;
            for (i, alt) in alts.iter().enumerate() {
                if let Some(f) = first_failure(alt, cx, tags) {
                    if !first {
                        out.push_str("; ");
                    }
                    first = false;
                    describe_into(out, f, cx, tags, &format!("{prefix}any[{i}]."));
                }
            }
            out.push(')');
        }
        Cond::All(alts) => {
            let failing = alts
                .iter()
                .enumerate()
                .find_map(|(i, alt)| first_failure(alt, cx, tags).map(|f| (i, f)));
            if let Some((i, f)) = failing {
                // The path names the failing alternative, not `all` alone.
                out.truncate(out.len() - prefix.len() - "all".len());
                describe_into(out, f, cx, tags, &format!("{prefix}all[{i}]."));
            }
        }
        Cond::Not(inner) => {
            out.push_str(": inner condition matched (");
            for (i, c) in inner.0.iter().enumerate() {
                if i > 0 {
                    out.push_str("; ");
                }
                describe_held(out, c, cx, tags);
            }
            out.push(')');
        }
    }
}

/// Why `c` (which held) held: the other half of a `not` failure, e.g.
/// `country: US in [US]`. Combinators are only named.
fn describe_held(out: &mut String, c: &Cond, cx: &Ctx<'_>, tags: &Tags<'_>) {
    let o = cx.order;
    out.push_str(c.key());
    match c {
        Cond::Channel(v) => is_in(out, o.channel.as_str(), v),
        Cond::Account(v) => is_in(out, &o.account, v),
        Cond::Status(v) => is_in(out, o.status.as_str(), v),
        Cond::Currency(v) => is_in(out, o.currency.as_str(), v),
        Cond::Country(v) => is_in(out, shown(address_field(cx, |a| &a.country)), v),
        Cond::Region(v) => is_in(out, shown(address_field(cx, |a| &a.region)), v),
        Cond::PostalCode(g) => matches(out, address_field(cx, |a| &a.postal_code), g),
        Cond::Email(g) => matches(out, email(cx), g),
        Cond::ShippingMethod(g) => matches(out, o.shipping_method.as_deref(), g),
        Cond::Sku(g) => {
            out.push_str(": a line matches ");
            write_list(out, g);
        }
        Cond::AllSkus(g) => {
            out.push_str(": every line matches ");
            write_list(out, g);
        }
        Cond::Tag(v) => {
            out.push_str(": one of ");
            write_list(out, v);
            out.push_str(" in ");
            write_list(out, tags.current());
        }
        Cond::Total(cmp) => held_cmp(out, cmp, &o.totals.total),
        Cond::ItemCount(cmp) => held_cmp(out, cmp, &cx.item_count),
        Cond::Payment(v) => is_in(out, o.payment.as_str(), v),
        Cond::Fulfillment(v) => is_in(out, o.fulfillment.as_str(), v),
        Cond::Test(b) | Cond::Gift(b) => {
            let _ = write!(out, ": {b}");
        }
        Cond::Any(_) | Cond::All(_) | Cond::Not(_) => {}
    }
}

fn is_in<T: Display>(out: &mut String, value: &str, list: &[T]) {
    let _ = write!(out, ": {value} in ");
    write_list(out, list);
}

fn matches(out: &mut String, value: Option<&str>, globs: &[Glob]) {
    let _ = write!(out, ": {} matches ", shown(value));
    write_list(out, globs);
}

fn held_cmp<T: Display>(out: &mut String, cmp: &Cmp<T>, value: &T) {
    out.push_str(": ");
    for (i, (op, limit)) in cmp.ops.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{value} {} {limit}", op.symbol());
    }
}

fn not_in<T: Display>(out: &mut String, value: &str, list: &[T]) {
    let _ = write!(out, ": {value} not in ");
    write_list(out, list);
}

fn no_match(out: &mut String, value: Option<&str>, globs: &[Glob]) {
    let _ = write!(out, ": {} does not match ", shown(value));
    write_list(out, globs);
}

/// `[a, b, c]`, the way failure messages show lists.
fn write_list<T: Display>(out: &mut String, items: impl IntoIterator<Item = T>) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{item}");
    }
    out.push(']');
}

fn describe_cmp<T: PartialOrd + Display>(out: &mut String, cmp: &Cmp<T>, value: &T) {
    if let Some((op, limit)) = cmp.ops.iter().find(|(op, limit)| !op.holds(value, limit)) {
        let _ = write!(
            out,
            ".{}: {value} {} {limit}",
            op.key(),
            op.negated_symbol()
        );
    }
}
