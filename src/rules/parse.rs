//! Parsing and validating `rules.toml` from the `toml` crate's
//! spanned document, so that every finding carries a line and column and
//! every finding is reported in one pass: a bad value is recorded and the
//! walk goes on with the next one.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use rust_decimal::Decimal;
use switchyard_contract::{Channel, Fulfillment, OrderStatus, PaymentStatus, Priority};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::ast::{
    ACTION_KEYS, Actions, CONDITION_KEYS, Cmp, Cond, Conj, LineRouteAction, OP_KEYS, Op,
    ROUTE_LINES_KEYS, Rule, RuleSet, RuleSpans,
};
use super::diag::{Diagnostic, Sink};
use super::glob::Glob;
use super::lint;
use crate::diag::unknown_word;

type Span = Range<usize>;
type Value<'a> = Spanned<DeValue<'a>>;

/// Parses and validates a rules file. `path` is only used in diagnostics;
/// `destinations` are the destination ids of the daemon config, which every
/// `route` and `default_route` must name.
///
/// On success, returns the rules and the warnings (possibly none). On
/// failure, returns every error, in file order. The warnings (rules that can
/// never match) are only looked for in a file without errors.
pub fn parse_rules(
    path: &Path,
    text: &str,
    destinations: &[String],
) -> Result<(RuleSet, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut p = Parser {
        sink: Sink::new(path.to_path_buf(), text),
        text,
        destinations,
    };
    let (doc, errors) = DeTable::parse_recoverable(text);
    if let Some(e) = crate::diag::toml_syntax::first_error(text, &errors) {
        // After a syntax error the recovered document is a guess; checking
        // it (or the parser's later errors) would add findings about text
        // the user never wrote.
        p.sink.error(e.offset..e.offset, e.message);
        return Err(p.sink.into_sorted());
    }
    let (set, spans) = p.document(doc.get_ref());
    if p.sink.has_errors() {
        return Err(p.sink.into_sorted());
    }
    lint::check(&set, &spans, &mut p.sink);
    Ok((set, p.sink.into_sorted()))
}

struct Parser<'s> {
    sink: Sink<'s>,
    text: &'s str,
    destinations: &'s [String],
}

/// Table entries in the order they appear in the file (the `toml` crate
/// sorts keys unless a feature is on; conditions must run in file order).
fn entries<'t, 'a>(table: &'t DeTable<'a>) -> Vec<(&'t Spanned<DeString<'a>>, &'t Value<'a>)> {
    let mut v: Vec<_> = table.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

impl<'s> Parser<'s> {
    fn document(&mut self, doc: &DeTable<'_>) -> (RuleSet, Vec<RuleSpans>) {
        let mut set = RuleSet::default();
        let mut spans = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (key, value) in entries(doc) {
            match key.get_ref().as_ref() {
                "default_route" => {
                    if let Some(route) = self.destination(value, "default_route") {
                        set.default_route = Some(route);
                    }
                }
                "rule" => match value.get_ref() {
                    DeValue::Array(items) => {
                        for item in items.iter() {
                            let DeValue::Table(table) = item.get_ref() else {
                                self.sink.error(
                                    item.span(),
                                    format!(
                                        "rule: expected a table, found {}",
                                        type_name(item.get_ref())
                                    ),
                                );
                                continue;
                            };
                            let (rule, name) = self.rule(table, item.span());
                            // Checked even for rules with other errors, so
                            // that all errors come out at once.
                            if let Some((name, name_span)) = name {
                                let line = self.sink.index.position(name_span.start).0;
                                if let Some(first) = seen.get(&name) {
                                    self.sink.error(
                                        name_span,
                                        format!(
                                            "duplicate rule name {name:?} (first used at line {first})"
                                        ),
                                    );
                                } else {
                                    seen.insert(name, line);
                                }
                            }
                            if let Some(rule) = rule {
                                spans.push(RuleSpans {
                                    header: item.span(),
                                });
                                set.rules.push(rule);
                            }
                        }
                    }
                    DeValue::Table(_) => self.sink.error(
                        key.span(),
                        "rule: expected a list of rules (write [[rule]], not [rule])",
                    ),
                    other => self.sink.error(
                        value.span(),
                        format!(
                            "rule: expected a list of rules ([[rule]] tables), found {}",
                            type_name(other)
                        ),
                    ),
                },
                other => self.sink.error(
                    key.span(),
                    unknown_word("top-level key", other, &["default_route", "rule"]),
                ),
            }
        }
        (set, spans)
    }

    /// One `[[rule]]`: the rule, or `None` when it has errors (they are
    /// recorded); and its name with the name's span, if it has a usable one.
    fn rule(
        &mut self,
        table: &DeTable<'_>,
        header: Span,
    ) -> (Option<Rule>, Option<(String, Span)>) {
        let errors_before = self.sink.diags.len();
        let mut name: Option<(String, Span)> = None;
        // Set when a `name` key exists but is unusable (already reported).
        let mut name_seen = false;
        let mut when: Option<Conj> = None;
        let mut when_seen = false;
        let mut then: Option<(Actions, Span)> = None;
        let mut then_seen = false;
        let mut stop = false;
        for (key, value) in entries(table) {
            match key.get_ref().as_ref() {
                "name" => match value.get_ref() {
                    DeValue::String(s) if !s.trim().is_empty() => {
                        name = Some((s.to_string(), value.span()));
                    }
                    DeValue::String(_) => {
                        name_seen = true;
                        self.sink.error(value.span(), "name: empty rule name");
                    }
                    other => {
                        name_seen = true;
                        self.type_error(value.span(), "name", "a string", other);
                    }
                },
                "when" => {
                    when_seen = true;
                    match value.get_ref() {
                        DeValue::Table(t) if t.is_empty() => self.sink.error(
                            value.span(),
                            "when: empty condition table (a rule needs at least one condition)",
                        ),
                        DeValue::Table(t) => when = self.conj(t, ""),
                        other => {
                            self.type_error(value.span(), "when", "a table of conditions", other)
                        }
                    }
                }
                "then" => {
                    then_seen = true;
                    match value.get_ref() {
                        DeValue::Table(t) => {
                            then = self.actions(t).map(|a| (a, value.span()));
                        }
                        other => self.type_error(value.span(), "then", "a table of actions", other),
                    }
                }
                "stop" => match value.get_ref() {
                    DeValue::Boolean(b) => stop = *b,
                    other => self.type_error(value.span(), "stop", "true or false", other),
                },
                other if CONDITION_KEYS.contains(&other) || ACTION_KEYS.contains(&other) => {
                    let section = if CONDITION_KEYS.contains(&other) {
                        "when"
                    } else {
                        "then"
                    };
                    self.sink.error(
                        key.span(),
                        format!(
                            "unknown rule key {other:?} (did you mean to put it in `{section}`?)"
                        ),
                    );
                }
                other => self.sink.error(
                    key.span(),
                    unknown_word("rule key", other, &["name", "when", "then", "stop"]),
                ),
            }
        }
        let label = name
            .as_ref()
            .map_or_else(|| "rule".to_owned(), |(n, _)| format!("rule {n:?}"));
        if name.is_none() && !name_seen {
            self.sink
                .error(header.clone(), "rule has no name (add name = \"...\")");
        }
        if !when_seen {
            self.sink.error(
                header.clone(),
                format!("{label} has no `when` (a rule needs at least one condition)"),
            );
        }
        match &then {
            Some((actions, span)) if !stop && *actions == Actions::default() => {
                self.sink.error(
                    span.clone(),
                    format!("{label} has an empty `then` (add an action, or stop = true)"),
                );
            }
            None if !stop && !then_seen => self.sink.error(
                header.clone(),
                format!("{label} has no `then` (add an action, or stop = true)"),
            ),
            _ => {}
        }
        if self.sink.diags.len() != errors_before {
            return (None, name);
        }
        let rule = match (&name, when) {
            (Some((n, _)), Some(when)) => Some(Rule {
                name: n.clone(),
                line: self.sink.index.position(header.start).0,
                when,
                then: then.map(|(a, _)| a).unwrap_or_default(),
                stop,
            }),
            _ => None,
        };
        (rule, name)
    }

    fn type_error(&mut self, span: Span, path: &str, expected: &str, found: &DeValue<'_>) {
        self.sink.error(
            span,
            format!("{path}: expected {expected}, found {}", type_name(found)),
        );
    }

    /// A table of conditions (a `when`, an `any`/`all` element, a `not`).
    /// The caller has rejected an empty table.
    fn conj(&mut self, table: &DeTable<'_>, prefix: &str) -> Option<Conj> {
        let mut conds = Vec::with_capacity(table.len());
        let mut ok = true;
        for (key, value) in entries(table) {
            match self.cond(key, value, prefix) {
                Some(c) => conds.push(c),
                None => ok = false,
            }
        }
        ok.then_some(Conj(conds))
    }

    fn cond(
        &mut self,
        key: &Spanned<DeString<'_>>,
        value: &Value<'_>,
        prefix: &str,
    ) -> Option<Cond> {
        let k = key.get_ref().as_ref();
        let path = format!("{prefix}{k}");
        Some(match k {
            "channel" => Cond::Channel(self.named(value, &path, "channel", &Channel::ALL, Channel::as_str)?),
            "status" => Cond::Status(self.named(value, &path, "status", &OrderStatus::ALL, OrderStatus::as_str)?),
            "payment" => Cond::Payment(self.named(value, &path, "payment", &PaymentStatus::ALL, PaymentStatus::as_str)?),
            "fulfillment" => Cond::Fulfillment(self.named(value, &path, "fulfillment", &Fulfillment::ALL, Fulfillment::as_str)?),
            "test" | "gift" => {
                let b = self.boolean(value, &path)?;
                if k == "test" {
                    Cond::Test(b)
                } else {
                    Cond::Gift(b)
                }
            }
            "account" | "region" | "tag" => {
                let vals = self.values(value, &path, |p, s, span| {
                    if s.trim().is_empty() {
                        p.sink.error(span, format!("{path}: empty value"));
                        Err(())
                    } else {
                        Ok(s.to_owned())
                    }
                })?;
                match k {
                    "account" => Cond::Account(vals),
                    "region" => Cond::Region(vals),
                    _ => Cond::Tag(vals),
                }
            }
            "currency" => Cond::Currency(self.values(value, &path, |p, s, span| {
                if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
                    Ok(s.to_ascii_uppercase())
                } else {
                    p.sink.error(
                        span,
                        format!(
                            "{path}: invalid currency {s:?} (expected a three-letter ISO 4217 code such as \"USD\")"
                        ),
                    );
                    Err(())
                }
            })?),
            "country" => Cond::Country(self.values(value, &path, |p, s, span| {
                if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
                    Ok(s.to_ascii_uppercase())
                } else {
                    p.sink.error(
                        span,
                        format!(
                            "{path}: invalid country {s:?} (expected a two-letter ISO 3166-1 code such as \"US\")"
                        ),
                    );
                    Err(())
                }
            })?),
            "postal_code" | "email" | "shipping_method" | "sku" | "all_skus" => {
                let globs = self.globs(value, &path)?;
                match k {
                    "postal_code" => Cond::PostalCode(globs),
                    "email" => Cond::Email(globs),
                    "shipping_method" => Cond::ShippingMethod(globs),
                    "sku" => Cond::Sku(globs),
                    _ => Cond::AllSkus(globs),
                }
            }
            "total" => Cond::Total(self.comparisons(value, &path, |p, v, span, path| match v {
                DeValue::String(s) => match parse_amount(s) {
                    Some(d) => Some(d),
                    None => {
                        p.sink.error(
                            span,
                            format!(
                                "{path}: invalid amount {s:?} (expected a decimal such as \"500.00\")"
                            ),
                        );
                        None
                    }
                },
                DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) => Some(Decimal::from(n)),
                    Err(_) => {
                        p.sink.error(span, format!("{path}: amount out of range"));
                        None
                    }
                },
                DeValue::Float(f) => {
                    p.sink.error(
                        span,
                        format!(
                            "{path}: write amounts as strings, not floats (e.g. \"{}\")",
                            f.as_str()
                        ),
                    );
                    None
                }
                other => {
                    p.type_error(span, path, "an amount such as \"500.00\"", other);
                    None
                }
            })?),
            "item_count" => Cond::ItemCount(self.comparisons(value, &path, |p, v, span, path| {
                match v {
                    DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
                        Ok(n) => Some(n),
                        Err(_) => {
                            p.sink.error(
                                span,
                                format!("{path}: expected a whole number of 0 or more"),
                            );
                            None
                        }
                    },
                    DeValue::String(s) => {
                        p.sink.error(
                            span,
                            format!(
                                "{path}: expected a whole number, found a string (write {}, without quotes)",
                                s.trim()
                            ),
                        );
                        None
                    }
                    other => {
                        p.type_error(span, path, "a whole number", other);
                        None
                    }
                }
            })?),
            "any" | "all" => {
                let DeValue::Array(items) = value.get_ref() else {
                    self.type_error(
                        value.span(),
                        &path,
                        "a list of condition tables such as [ { country = \"US\" }, { tag = \"vip\" } ]",
                        value.get_ref(),
                    );
                    return None;
                };
                if items.is_empty() {
                    self.sink.error(
                        value.span(),
                        format!("{path}: empty list (give at least one condition table)"),
                    );
                    return None;
                }
                let mut alts = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    match item.get_ref() {
                        DeValue::Table(t) if t.is_empty() => {
                            self.sink.error(
                                item.span(),
                                format!("{item_path}: empty condition table"),
                            );
                            ok = false;
                        }
                        DeValue::Table(t) => match self.conj(t, &format!("{item_path}.")) {
                            Some(c) => alts.push(c),
                            None => ok = false,
                        },
                        other => {
                            self.type_error(item.span(), &item_path, "a table of conditions", other);
                            ok = false;
                        }
                    }
                }
                if !ok {
                    return None;
                }
                if k == "any" {
                    Cond::Any(alts)
                } else {
                    Cond::All(alts)
                }
            }
            "not" => match value.get_ref() {
                DeValue::Table(t) if t.is_empty() => {
                    self.sink
                        .error(value.span(), format!("{path}: empty condition table"));
                    return None;
                }
                DeValue::Table(t) => Cond::Not(self.conj(t, &format!("{path}."))?),
                DeValue::Array(_) => {
                    self.sink.error(
                        value.span(),
                        format!(
                            "{path}: expected one table of conditions, found a list (for several, write not = {{ any = [ ... ] }})"
                        ),
                    );
                    return None;
                }
                other => {
                    self.type_error(value.span(), &path, "a table of conditions", other);
                    return None;
                }
            },
            other if ACTION_KEYS.contains(&other) => {
                self.sink.error(
                    key.span(),
                    format!("unknown condition {other:?} ({other:?} is an action: put it in `then`)"),
                );
                return None;
            }
            other => {
                self.sink
                    .error(key.span(), unknown_word("condition", other, &CONDITION_KEYS));
                return None;
            }
        })
    }

    /// One or more of a closed set of names (channels, statuses), any case;
    /// anything else is refused with the nearest name.
    fn named<T: Copy>(
        &mut self,
        value: &Value<'_>,
        path: &str,
        what: &str,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Option<Vec<T>> {
        self.values(value, path, |p, s, span| {
            all.iter()
                .copied()
                .find(|c| name(*c).eq_ignore_ascii_case(s))
                .ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|c| name(*c)).collect();
                    p.error_at((span, format!("{path}: {}", unknown_word(what, s, &names))));
                })
        })
    }

    /// `true` or `false`, written as TOML booleans.
    fn boolean(&mut self, value: &Value<'_>, path: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            DeValue::String(s)
                if matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "false") =>
            {
                self.sink.error(
                    value.span(),
                    format!(
                        "{path}: expected true or false, found a string (write {}, without quotes)",
                        s.trim().to_ascii_lowercase()
                    ),
                );
                None
            }
            other => {
                self.type_error(value.span(), path, "true or false", other);
                None
            }
        }
    }

    fn error_at(&mut self, (span, message): (Span, String)) {
        self.sink.error(span, message);
    }

    /// A string or a non-empty list of strings, each converted by `each`
    /// (which records its own errors). `None` if anything was wrong.
    fn values<T>(
        &mut self,
        value: &Value<'_>,
        path: &str,
        mut each: impl FnMut(&mut Self, &str, Span) -> Result<T, ()>,
    ) -> Option<Vec<T>> {
        match value.get_ref() {
            DeValue::String(s) => each(self, s, value.span()).ok().map(|v| vec![v]),
            DeValue::Array(items) if items.is_empty() => {
                self.sink.error(
                    value.span(),
                    format!("{path}: empty list (give at least one value)"),
                );
                None
            }
            DeValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => match each(self, s, item.span()) {
                            Ok(v) => out.push(v),
                            Err(()) => ok = false,
                        },
                        other => {
                            self.type_error(item.span(), path, "a string", other);
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
            other => {
                self.type_error(value.span(), path, "a string or a list of strings", other);
                None
            }
        }
    }

    /// A glob or a non-empty list of globs, each error pointing at the
    /// offending character.
    fn globs(&mut self, value: &Value<'_>, path: &str) -> Option<Vec<Glob>> {
        self.values(value, path, |p, s, span| match Glob::new(s) {
            Ok(g) => Ok(g),
            Err(e) => {
                let at = p.char_span(&span, s, e.at);
                p.sink.error(at, format!("{path}: {}", e.message));
                Err(())
            }
        })
    }

    /// `route_lines`: one `{ sku, route }` table or a non-empty list of them.
    fn route_lines(&mut self, value: &Value<'_>) -> Option<Vec<LineRouteAction>> {
        const EXAMPLE: &str = "{ sku = \"POSTER-*\", route = \"print-partner\" }";
        let tables: Vec<(&Value<'_>, String)> = match value.get_ref() {
            DeValue::Table(_) => vec![(value, "route_lines".to_owned())],
            DeValue::Array(items) if items.is_empty() => {
                self.sink.error(
                    value.span(),
                    format!("route_lines: empty list (give at least one table such as {EXAMPLE})"),
                );
                return None;
            }
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, format!("route_lines[{i}]")))
                .collect(),
            other => {
                self.type_error(
                    value.span(),
                    "route_lines",
                    &format!("a table such as {EXAMPLE}, or a list of them"),
                    other,
                );
                return None;
            }
        };
        let mut out = Vec::with_capacity(tables.len());
        let mut ok = true;
        for (item, path) in tables {
            let DeValue::Table(table) = item.get_ref() else {
                self.type_error(
                    item.span(),
                    &path,
                    &format!("a table such as {EXAMPLE}"),
                    item.get_ref(),
                );
                ok = false;
                continue;
            };
            let mut skus = None;
            let mut route = None;
            let (mut has_sku, mut has_route) = (false, false);
            let mut this_ok = true;
            for (key, v) in entries(table) {
                match key.get_ref().as_ref() {
                    "sku" => {
                        has_sku = true;
                        skus = self.globs(v, &format!("{path}.sku"));
                        this_ok &= skus.is_some();
                    }
                    "route" => {
                        has_route = true;
                        route = self.destination(v, &format!("{path}.route"));
                        this_ok &= route.is_some();
                    }
                    other => {
                        self.sink.error(
                            key.span(),
                            format!("{path}: {}", unknown_word("key", other, &ROUTE_LINES_KEYS)),
                        );
                        this_ok = false;
                    }
                }
            }
            if !has_sku {
                self.sink.error(
                    item.span(),
                    format!(
                        "{path}: no `sku` (the SKU glob of the lines to route, e.g. {EXAMPLE})"
                    ),
                );
                this_ok = false;
            }
            if !has_route {
                self.sink.error(
                    item.span(),
                    format!("{path}: no `route` (the destination of those lines, e.g. {EXAMPLE})"),
                );
                this_ok = false;
            }
            match (skus, route) {
                (Some(skus), Some(route)) if this_ok => out.push(LineRouteAction { skus, route }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `{ gt = .., gte = .., lt = .., lte = .., eq = .. }`, in file order.
    fn comparisons<T>(
        &mut self,
        value: &Value<'_>,
        path: &str,
        mut each: impl FnMut(&mut Self, &DeValue<'_>, Span, &str) -> Option<T>,
    ) -> Option<Cmp<T>> {
        let DeValue::Table(table) = value.get_ref() else {
            let example = if path.ends_with("total") {
                "{ gte = \"500.00\" }"
            } else {
                "{ gt = 10 }"
            };
            self.type_error(
                value.span(),
                path,
                &format!("a table of comparisons such as {example}"),
                value.get_ref(),
            );
            return None;
        };
        if table.is_empty() {
            self.sink.error(
                value.span(),
                format!("{path}: empty comparison table (use gt, gte, lt, lte or eq)"),
            );
            return None;
        }
        let mut ops = Vec::with_capacity(table.len());
        let mut ok = true;
        for (key, v) in entries(table) {
            let Some(op) = Op::from_key(key.get_ref()) else {
                self.sink.error(
                    key.span(),
                    unknown_word("comparison", key.get_ref(), &OP_KEYS),
                );
                ok = false;
                continue;
            };
            match each(self, v.get_ref(), v.span(), &format!("{path}.{}", op.key())) {
                Some(x) => ops.push((op, x)),
                None => ok = false,
            }
        }
        ok.then_some(Cmp { ops })
    }

    fn actions(&mut self, table: &DeTable<'_>) -> Option<Actions> {
        let mut actions = Actions::default();
        let mut ok = true;
        for (key, value) in entries(table) {
            let k = key.get_ref().as_ref();
            match k {
                "tag" | "untag" => {
                    let tags = self.values(value, k, |p, s, span| match super::tag_problem(s) {
                        Some(problem) => {
                            p.sink.error(span, format!("{k}: {problem}"));
                            Err(())
                        }
                        None => Ok(s.to_owned()),
                    });
                    match (tags, k) {
                        (Some(t), "tag") => actions.tag = t,
                        (Some(t), _) => actions.untag = t,
                        (None, _) => ok = false,
                    }
                }
                "route" => match self.destination(value, "route") {
                    Some(d) => actions.route = Some(d),
                    None => ok = false,
                },
                "route_lines" => match self.route_lines(value) {
                    Some(r) => actions.route_lines = r,
                    None => ok = false,
                },
                "hold" => match value.get_ref() {
                    DeValue::String(s) if !s.trim().is_empty() => {
                        actions.hold = Some(s.to_string())
                    }
                    DeValue::String(_) => {
                        self.sink.error(
                            value.span(),
                            "hold: empty reason (say why, e.g. hold = \"manual review\")",
                        );
                        ok = false;
                    }
                    other => {
                        self.type_error(
                            value.span(),
                            "hold",
                            "a reason such as \"manual review\"",
                            other,
                        );
                        ok = false;
                    }
                },
                "priority" => match value.get_ref() {
                    DeValue::String(s) => {
                        let p = match s.to_ascii_lowercase().as_str() {
                            "low" => Some(Priority::Low),
                            "normal" => Some(Priority::Normal),
                            "high" => Some(Priority::High),
                            _ => None,
                        };
                        match p {
                            Some(p) => actions.priority = Some(p),
                            None => {
                                self.sink.error(
                                    value.span(),
                                    unknown_word("priority", s, &["low", "normal", "high"]),
                                );
                                ok = false;
                            }
                        }
                    }
                    other => {
                        self.type_error(value.span(), "priority", "low, normal or high", other);
                        ok = false;
                    }
                },
                other if CONDITION_KEYS.contains(&other) => {
                    self.sink.error(
                        key.span(),
                        format!(
                            "unknown action {other:?} ({other:?} is a condition: put it in `when`)"
                        ),
                    );
                    ok = false;
                }
                other => {
                    self.sink
                        .error(key.span(), unknown_word("action", other, &ACTION_KEYS));
                    ok = false;
                }
            }
        }
        ok.then_some(actions)
    }

    fn destination(&mut self, value: &Value<'_>, path: &str) -> Option<String> {
        let DeValue::String(s) = value.get_ref() else {
            self.type_error(value.span(), path, "a destination id", value.get_ref());
            return None;
        };
        if self.destinations.iter().any(|d| d == s.as_ref()) {
            return Some(s.to_string());
        }
        let message = if self.destinations.is_empty() {
            format!("{path}: unknown destination {s:?} (the daemon config defines no destinations)")
        } else {
            let ids: Vec<&str> = self.destinations.iter().map(String::as_str).collect();
            format!("{path}: {}", unknown_word("destination", s, &ids))
        };
        self.sink.error(value.span(), message);
        None
    }

    /// The span of the `at`-th character of string `s` whose value spans
    /// `span`, when the source is a plain quoted literal (no escapes) so
    /// that the position is exact; otherwise the whole value.
    fn char_span(&self, span: &Span, s: &str, at: usize) -> Span {
        let raw = self.text.get(span.clone()).unwrap_or("");
        let plain = raw.len() == s.len() + 2
            && (raw.starts_with('"') || raw.starts_with('\''))
            && &raw[1..raw.len() - 1] == s;
        if !plain || s.is_empty() {
            return span.clone();
        }
        let off = s.char_indices().nth(at).map_or(s.len(), |(i, _)| i);
        let start = span.start + 1 + off;
        start..start + 1
    }
}

/// A plain decimal: optional minus, digits, optionally a point and digits.
/// Stricter than `Decimal::from_str`, which would take "1e5" or "1_000".
fn parse_amount(s: &str) -> Option<Decimal> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_are_plain_decimals() {
        assert_eq!(parse_amount("500.00").unwrap().to_string(), "500.00");
        assert_eq!(parse_amount("-1.5").unwrap().to_string(), "-1.5");
        for bad in ["5OO", "1e5", "1_000", ".5", "5.", "", " 5", "+5", "--1"] {
            assert!(parse_amount(bad).is_none(), "{bad}");
        }
    }
}
