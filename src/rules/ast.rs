//! The validated, compiled form of a rules file. Everything that can be
//! decided once is decided here (enum values resolved, codes upper-cased,
//! globs compiled, amounts parsed) so that evaluation only compares.

use rust_decimal::Decimal;
use switchyard_contract::{Channel, Fulfillment, OrderStatus, PaymentStatus, Priority};

use super::glob::Glob;

/// Where the parts of a rule are in the file, for diagnostics found after
/// parsing (byte offsets).
pub(crate) struct RuleSpans {
    pub(crate) header: std::ops::Range<usize>,
}

/// A loaded rules file: rules in file order and the optional default route.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub(crate) default_route: Option<String>,
    pub(crate) rules: Vec<Rule>,
}

impl RuleSet {
    /// No rules and no default route: every order ends unrouted and unheld.
    pub fn empty() -> RuleSet {
        RuleSet::default()
    }

    pub fn default_route(&self) -> Option<&str> {
        self.default_route.as_deref()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// One `[[rule]]`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) line: usize,
    pub(crate) when: Conj,
    pub(crate) then: Actions,
    pub(crate) stop: bool,
}

impl Rule {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The line of the rule's `[[rule]]` header (or inline table).
    pub fn line(&self) -> usize {
        self.line
    }

    pub fn actions(&self) -> &Actions {
        &self.then
    }

    pub fn stops(&self) -> bool {
        self.stop
    }
}

/// A rule's `then`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    pub tag: Vec<String>,
    pub untag: Vec<String>,
    pub route: Option<String>,
    pub hold: Option<String>,
    pub priority: Option<Priority>,
    /// `route_lines`, in file order: the first entry whose SKU globs match
    /// a line (not taken by an earlier rule) sends that line to its route.
    pub route_lines: Vec<LineRouteAction>,
}

/// One `route_lines = { sku = "GLOB", route = "DEST" }` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRouteAction {
    pub(crate) skus: Vec<Glob>,
    pub route: String,
}

impl LineRouteAction {
    /// Whether this entry takes a line with this SKU (a line without one is
    /// never taken, as a missing value never matches a glob).
    pub(crate) fn takes(&self, sku: Option<&str>) -> bool {
        sku.is_some_and(|s| self.skus.iter().any(|g| g.matches(s)))
    }
}

/// Conditions that must all hold, in file order (the first one that fails
/// is the one `explain` reports).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conj(pub(crate) Vec<Cond>);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    Channel(Vec<Channel>),
    /// Account ids are config identifiers: compared exactly.
    Account(Vec<String>),
    Status(Vec<OrderStatus>),
    /// Upper-cased ISO 4217 codes.
    Currency(Vec<String>),
    /// Upper-cased ISO 3166-1 alpha-2 codes.
    Country(Vec<String>),
    /// As written; compared ignoring case.
    Region(Vec<String>),
    PostalCode(Vec<Glob>),
    Email(Vec<Glob>),
    ShippingMethod(Vec<Glob>),
    Sku(Vec<Glob>),
    AllSkus(Vec<Glob>),
    /// Compared ignoring case.
    Tag(Vec<String>),
    Total(Cmp<Decimal>),
    ItemCount(Cmp<u64>),
    Payment(Vec<PaymentStatus>),
    Fulfillment(Vec<Fulfillment>),
    /// The order is (true) or is not (false) the channel's test order.
    Test(bool),
    /// The buyer did (true) or did not (false) mark the order as a gift.
    Gift(bool),
    Any(Vec<Conj>),
    All(Vec<Conj>),
    Not(Conj),
}

impl Cond {
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Cond::Channel(_) => "channel",
            Cond::Account(_) => "account",
            Cond::Status(_) => "status",
            Cond::Currency(_) => "currency",
            Cond::Country(_) => "country",
            Cond::Region(_) => "region",
            Cond::PostalCode(_) => "postal_code",
            Cond::Email(_) => "email",
            Cond::ShippingMethod(_) => "shipping_method",
            Cond::Sku(_) => "sku",
            Cond::AllSkus(_) => "all_skus",
            Cond::Tag(_) => "tag",
            Cond::Total(_) => "total",
            Cond::ItemCount(_) => "item_count",
            Cond::Payment(_) => "payment",
            Cond::Fulfillment(_) => "fulfillment",
            Cond::Test(_) => "test",
            Cond::Gift(_) => "gift",
            Cond::Any(_) => "any",
            Cond::All(_) => "all",
            Cond::Not(_) => "not",
        }
    }
}

/// Every condition key, for validation and "did you mean".
pub const CONDITION_KEYS: [&str; 21] = [
    "channel",
    "account",
    "status",
    "currency",
    "country",
    "region",
    "postal_code",
    "email",
    "shipping_method",
    "sku",
    "all_skus",
    "tag",
    "total",
    "item_count",
    "payment",
    "fulfillment",
    "test",
    "gift",
    "any",
    "all",
    "not",
];

pub(crate) const ACTION_KEYS: [&str; 6] =
    ["tag", "untag", "route", "hold", "priority", "route_lines"];

/// The keys of one `route_lines` table.
pub(crate) const ROUTE_LINES_KEYS: [&str; 2] = ["sku", "route"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
}

pub(crate) const OP_KEYS: [&str; 5] = ["gt", "gte", "lt", "lte", "eq"];

impl Op {
    pub(crate) fn from_key(key: &str) -> Option<Op> {
        Some(match key {
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "eq" => Op::Eq,
            _ => return None,
        })
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Eq => "eq",
        }
    }

    #[inline]
    pub(crate) fn holds<T: PartialOrd>(self, value: &T, limit: &T) -> bool {
        match self {
            Op::Gt => value > limit,
            Op::Gte => value >= limit,
            Op::Lt => value < limit,
            Op::Lte => value <= limit,
            Op::Eq => value == limit,
        }
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Eq => "==",
        }
    }

    /// The relation that holds when this one does not, for failure messages
    /// such as `total.gte: 99.00 < 100.00`.
    pub(crate) fn negated_symbol(self) -> &'static str {
        match self {
            Op::Gt => "<=",
            Op::Gte => "<",
            Op::Lt => ">=",
            Op::Lte => ">",
            Op::Eq => "!=",
        }
    }
}

/// Comparisons that must all hold (`{ gte = "10", lt = "20" }` is a range).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cmp<T> {
    pub(crate) ops: Vec<(Op, T)>,
}
