//! Warnings about rules that parse but cannot do anything: a rule that an
//! earlier `stop` rule always catches first, and comparisons that can never
//! all hold.
//!
//! "Catches first" is decided by a sound but incomplete implication test
//! (`implies(later, earlier)`: every order the later rule's `when` accepts is
//! accepted by the earlier one). It never warns wrongly; it may miss cases.
//! What it understands:
//! - value lists (`channel`, `status`, `payment`, `fulfillment`, `account`,
//!   `currency`, `country`, `region`): the later list is a subset of the
//!   earlier one; `test` and `gift`: the same value;
//! - globs: each later pattern is a literal the earlier pattern matches, the
//!   same pattern, a narrower prefix/suffix pattern, or the earlier one is `*`
//!   (`all_skus` also implies `sku`, since it requires at least one line);
//! - `total` / `item_count`: the later range lies inside the earlier one;
//! - `all` is a conjunction; an earlier `any` is implied when one of its
//!   alternatives is; a later `any` implies something when every alternative
//!   does; `not A` implies `not B` when B implies A.
//!
//! Conditions on `tag` in the earlier rule are never considered implied,
//! because rules between the two may add or remove tags.

use rust_decimal::Decimal;

use super::ast::{Cmp, Cond, Conj, Op, RuleSet, RuleSpans};
use super::diag::Sink;
use super::glob::{Glob, eq_ci};

pub(crate) fn check(set: &RuleSet, spans: &[RuleSpans], sink: &mut Sink<'_>) {
    for (i, rule) in set.rules.iter().enumerate() {
        let header = spans[i].header.clone();
        if let Some(key) = contradiction(&rule.when) {
            sink.warning(
                header,
                format!(
                    "rule {:?} can never match: its {key} comparisons can never all hold",
                    rule.name
                ),
            );
            continue;
        }
        let catcher = set.rules[..i]
            .iter()
            .find(|earlier| earlier.stop && implies(&rule.when, &earlier.when));
        if let Some(earlier) = catcher {
            sink.warning(
                header,
                format!(
                    "rule {:?} can never match: every order it matches is caught first by rule {:?} \
                     (line {}), which has stop = true",
                    rule.name, earlier.name, earlier.line
                ),
            );
        }
    }
}

/// The first `total`/`item_count` whose comparisons contradict each other,
/// anywhere in the rule (a contradiction inside an `any` alternative only
/// disables that alternative, but it is still a mistake worth a word).
fn contradiction(conj: &Conj) -> Option<&'static str> {
    conj.0.iter().find_map(|c| match c {
        Cond::Total(cmp) if range(cmp).is_empty() => Some("total"),
        Cond::ItemCount(cmp) if int_range(cmp).is_empty() => Some("item_count"),
        Cond::Any(alts) | Cond::All(alts) => alts.iter().find_map(contradiction),
        Cond::Not(inner) => contradiction(inner),
        _ => None,
    })
}

/// Whether every order satisfying `r` satisfies `s`.
fn implies(r: &Conj, s: &Conj) -> bool {
    s.0.iter().all(|atom| implies_atom(r, atom))
}

fn implies_atom(r: &Conj, s: &Cond) -> bool {
    if mentions_tag(s) {
        return false;
    }
    match s {
        Cond::All(alts) => alts.iter().all(|a| implies(r, a)),
        Cond::Any(alts) => {
            alts.iter().any(|a| implies(r, a)) || r.0.iter().any(|ra| atom_implies(ra, s))
        }
        _ => r.0.iter().any(|ra| atom_implies(ra, s)),
    }
}

fn mentions_tag(c: &Cond) -> bool {
    match c {
        Cond::Tag(_) => true,
        Cond::Any(alts) | Cond::All(alts) => alts.iter().any(|a| a.0.iter().any(mentions_tag)),
        Cond::Not(inner) => inner.0.iter().any(mentions_tag),
        _ => false,
    }
}

/// Whether one condition of the later rule alone implies `s`.
fn atom_implies(r: &Cond, s: &Cond) -> bool {
    match (r, s) {
        (Cond::All(alts), _) => alts.iter().any(|a| implies_atom(a, s)),
        (Cond::Any(alts), _) => alts.iter().all(|a| implies_atom(a, s)),
        (Cond::Channel(a), Cond::Channel(b)) => subset(a, b),
        (Cond::Status(a), Cond::Status(b)) => subset(a, b),
        (Cond::Payment(a), Cond::Payment(b)) => subset(a, b),
        (Cond::Fulfillment(a), Cond::Fulfillment(b)) => subset(a, b),
        (Cond::Account(a), Cond::Account(b))
        | (Cond::Currency(a), Cond::Currency(b))
        | (Cond::Country(a), Cond::Country(b)) => subset(a, b),
        (Cond::Region(a), Cond::Region(b)) => a.iter().all(|x| b.iter().any(|y| eq_ci(x, y))),
        (Cond::PostalCode(a), Cond::PostalCode(b))
        | (Cond::Email(a), Cond::Email(b))
        | (Cond::ShippingMethod(a), Cond::ShippingMethod(b))
        | (Cond::Sku(a), Cond::Sku(b))
        | (Cond::AllSkus(a), Cond::AllSkus(b))
        | (Cond::AllSkus(a), Cond::Sku(b)) => globs_within(a, b),
        (Cond::Total(a), Cond::Total(b)) => range(a).within(&range(b)),
        (Cond::ItemCount(a), Cond::ItemCount(b)) => int_range(a).within(&int_range(b)),
        (Cond::Not(a), Cond::Not(b)) => implies(b, a),
        _ => r == s,
    }
}

fn subset<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.iter().all(|x| b.contains(x))
}

fn globs_within(a: &[Glob], b: &[Glob]) -> bool {
    a.iter().all(|x| b.iter().any(|y| x.subsumed_by(y)))
}

#[derive(Debug, Clone, Copy)]
struct Bound {
    value: Decimal,
    inclusive: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Range {
    lo: Option<Bound>,
    hi: Option<Bound>,
}

impl Range {
    fn narrow(&mut self, op: Op, value: Decimal) {
        let b = |inclusive| Bound { value, inclusive };
        match op {
            Op::Gt => self.raise(b(false)),
            Op::Gte => self.raise(b(true)),
            Op::Lt => self.lower(b(false)),
            Op::Lte => self.lower(b(true)),
            Op::Eq => {
                self.raise(b(true));
                self.lower(b(true));
            }
        }
    }

    fn raise(&mut self, b: Bound) {
        self.lo = Some(match self.lo {
            Some(cur) if cur.value > b.value || (cur.value == b.value && !cur.inclusive) => cur,
            _ => b,
        });
    }

    fn lower(&mut self, b: Bound) {
        self.hi = Some(match self.hi {
            Some(cur) if cur.value < b.value || (cur.value == b.value && !cur.inclusive) => cur,
            _ => b,
        });
    }

    fn is_empty(&self) -> bool {
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) => {
                lo.value > hi.value || (lo.value == hi.value && !(lo.inclusive && hi.inclusive))
            }
            _ => false,
        }
    }

    fn within(&self, outer: &Range) -> bool {
        if self.is_empty() {
            return true;
        }
        let lo_ok = match (self.lo, outer.lo) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => {
                a.value > b.value || (a.value == b.value && (b.inclusive || !a.inclusive))
            }
        };
        let hi_ok = match (self.hi, outer.hi) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => {
                a.value < b.value || (a.value == b.value && (b.inclusive || !a.inclusive))
            }
        };
        lo_ok && hi_ok
    }
}

fn range(cmp: &Cmp<Decimal>) -> Range {
    let mut r = Range::default();
    for (op, v) in &cmp.ops {
        r.narrow(*op, *v);
    }
    r
}

/// Integer ranges with strict bounds made inclusive (`gt 5` is `gte 6`), so
/// that `{ gt = 5 }` and `{ gte = 6 }` compare as the same range. Counts are
/// never negative, which is the implicit lower bound.
fn int_range(cmp: &Cmp<u64>) -> Range {
    let mut r = Range::default();
    r.narrow(Op::Gte, Decimal::ZERO);
    for (op, v) in &cmp.ops {
        let v = Decimal::from(*v);
        match op {
            Op::Gt => r.narrow(Op::Gte, v + Decimal::ONE),
            Op::Lt => r.narrow(Op::Lte, v - Decimal::ONE),
            op => r.narrow(*op, v),
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(ops: &[(Op, &str)]) -> Cmp<Decimal> {
        Cmp {
            ops: ops.iter().map(|(o, v)| (*o, v.parse().unwrap())).collect(),
        }
    }

    #[test]
    fn ranges() {
        assert!(range(&total(&[(Op::Gt, "500"), (Op::Lt, "100")])).is_empty());
        assert!(!range(&total(&[(Op::Gte, "100"), (Op::Lte, "100.00")])).is_empty());
        assert!(range(&total(&[(Op::Gte, "600")])).within(&range(&total(&[(Op::Gt, "500")]))));
        assert!(!range(&total(&[(Op::Gte, "500")])).within(&range(&total(&[(Op::Gt, "500")]))));
        assert!(range(&total(&[(Op::Eq, "100.10")])).within(&range(&total(&[(Op::Eq, "100.1")]))));
        let ints = |ops: &[(Op, u64)]| int_range(&Cmp { ops: ops.to_vec() });
        assert!(ints(&[(Op::Gte, 6)]).within(&ints(&[(Op::Gt, 5)])));
        assert!(ints(&[(Op::Lt, 0)]).is_empty());
    }
}
