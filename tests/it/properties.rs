//! Property tests of what a stranger (or a careless edit) can feed the
//! daemon: the rules parser and evaluation, the config loader, and the HTTP
//! surface (webhooks, the admin API, any path at all).
//!
//! What must hold, whatever comes in: no panic; every rules or config
//! diagnostic points inside the text it is about (line and column from 1);
//! every HTTP answer is a 2xx or 4xx with a body, never a 5xx or a dropped
//! connection; and input that is not valid writes no order.
//!
//! The inputs found to break the code are kept as plain tests at the end.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::daemon::{ConfigBuilder, InProcess, REPO, ShopifyAccount};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use switchyard::config::{Env, load_str};
use switchyard::rules::{RuleInput, RuleSet, decide, evaluate, explain_json, explain_text};
use switchyard::sim::Simulator;
use switchyard_contract::{
    Address, Channel, Currency, Customer, Line, Order, OrderStatus, PaymentStatus, Presentment,
    Priority, Shipment, ShipmentLine, Totals,
};

const DESTINATIONS: [&str; 2] = ["east-wh", "west-3pl"];

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures are kept as plain tests below, not in files beside the source.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// `PROPTEST_CASES` in the environment runs more cases (a deeper search).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn destinations() -> Vec<String> {
    DESTINATIONS.map(str::to_owned).to_vec()
}

fn example(name: &str) -> &'static str {
    static RULES: OnceLock<String> = OnceLock::new();
    static CONFIG: OnceLock<String> = OnceLock::new();
    let cell = match name {
        "rules.toml" => &RULES,
        _ => &CONFIG,
    };
    cell.get_or_init(|| std::fs::read_to_string(Path::new(REPO).join("config").join(name)).unwrap())
}

fn example_rules() -> &'static RuleSet {
    static SET: OnceLock<RuleSet> = OnceLock::new();
    SET.get_or_init(|| {
        switchyard::rules::parse_rules(
            Path::new("config/rules.toml"),
            example("rules.toml"),
            &destinations(),
        )
        .unwrap()
        .0
    })
}

/// Whether a 1-based (line, column) lies in `text`: columns count characters
/// and may point just past a line's end (a missing value, end of file).
fn inside(text: &str, line: usize, column: usize) -> bool {
    if line == 0 || column == 0 {
        return false;
    }
    // `split('\n')`, not `lines()`: a final newline starts an (empty) line.
    match text.split('\n').nth(line - 1) {
        Some(l) => column <= l.chars().count() + 1,
        None => false,
    }
}

// --- text mutations (rules.toml, switchyard.toml) ------------------------------------

/// Fragments that mean something to TOML or to the schemas, and values past
/// the ranges the loaders accept.
fn fragment() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        "[[",
        "]]",
        "\"",
        "'",
        "=",
        ",",
        ".",
        "\n",
        "\r",
        "\r\n",
        "\t",
        "#",
        "\\",
        "\"\"\"",
        "'''",
        "\u{feff}",
        "é",
        "\u{0}",
        "[[rule]]",
        "[rule]",
        "[daemon]",
        "[[account]]",
        "[[destination]]",
        "[inventory]",
        "when",
        "then",
        "name",
        "stop = true",
        "any = []",
        "not = {}",
        "total = { gt = \"79228162514264337593543950335\" }",
        "total = { gte = \"-79228162514264337593543950335\", lt = \"1e5\" }",
        "item_count = { gt = 18446744073709551615 }",
        "item_count = { lt = 0 }",
        "sku = \"[A]\"",
        "email = \"\"",
        "country = \"USA\"",
        "tag = \"é\"",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551616",
        "0x7fffffffffffffff",
        "1e999",
        "inf",
        "nan",
        "-0",
        "1979-05-27T07:32:00Z",
        "true",
        "\"\"",
        "\"9999999999999999999d\"",
        "\"106751991167300d\"",
        "\"18446744073709551615s\"",
        "\"0s\"",
        "\"2m\"",
        "\"366d\"",
        "\"9223372036854775807s\"",
        "\"unstable\"",
        "\"202é-1\"",
        "\"[::1]:7300\"",
        "\"localhost:0\"",
        "\"http://\"",
        "\"https://ex ample.com\"",
        "\"gid://shopify/Location/\"",
        "webhooks = true",
        "channel = \"etsy\"",
        "admin_token_env = \"\"",
        "access_token_file = \"../../../../etc/hostname\"",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        4 => fixed,
        1 => "\\PC{0,12}",
        1 => "[a-z_]{1,16} = \"[^\"\\\\\n]{0,12}\"",
    ]
}

/// A TOML value to put after a key's `=`.
fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => fragment(),
        2 => "\\PC{0,10}".prop_map(|s| format!("{:?}", s)),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| format!("\"{n}d\"")),
        1 => Just(format!("\"{}\"", "x".repeat(10_000))),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// At a character offset.
    Insert(usize, String),
    /// Characters from an offset.
    Delete(usize, usize),
    /// The value of the n-th `key = value` line.
    SetValue(usize, String),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => any::<usize>().prop_map(Edit::DeleteLine),
        1 => any::<usize>().prop_map(Edit::DuplicateLine),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        3 => (any::<usize>(), fragment()).prop_map(|(at, s)| Edit::Insert(at, s)),
        1 => (any::<usize>(), 1..20_usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        4 => (any::<usize>(), literal()).prop_map(|(i, v)| Edit::SetValue(i, v)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn byte_at(text: &str, chars: usize) -> usize {
    let n = text.chars().count() + 1;
    text.char_indices()
        .nth(chars % n)
        .map_or(text.len(), |(i, _)| i)
}

fn apply_edit(text: &str, e: &Edit) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let n = lines.len();
    match e {
        Edit::DeleteLine(i) => {
            lines.remove(i % n);
        }
        Edit::DuplicateLine(i) => lines.insert(i % n, lines[i % n]),
        Edit::SwapLines(a, b) => lines.swap(a % n, b % n),
        Edit::Insert(at, s) => {
            let at = byte_at(text, *at);
            return format!("{}{s}{}", &text[..at], &text[at..]);
        }
        Edit::Delete(at, len) => {
            let from = byte_at(text, *at);
            let to = text[from..]
                .char_indices()
                .nth(*len)
                .map_or(text.len(), |(i, _)| from + i);
            return format!("{}{}", &text[..from], &text[to..]);
        }
        Edit::SetValue(i, v) => {
            let keyed: Vec<usize> = (0..n)
                .filter(|&j| {
                    let l = lines[j].trim_start();
                    !l.starts_with('#') && !l.starts_with('[') && l.contains('=')
                })
                .collect();
            if keyed.is_empty() {
                return text.to_owned();
            }
            let j = keyed[i % keyed.len()];
            let (key, _) = lines[j].split_once('=').unwrap();
            let line = format!("{key}= {v}");
            let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            out[j] = line;
            return out.join("\n");
        }
        Edit::Truncate(at) => return text[..byte_at(text, *at)].to_owned(),
    }
    lines.join("\n")
}

fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 1..5).prop_map(move |edits| {
        edits
            .iter()
            .fold(base.to_owned(), |text, e| apply_edit(&text, e))
    })
}

/// Text that looks a little like TOML: fragments, words and newlines.
fn tomlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![3 => fragment(), 1 => "[a-z_]{1,10}", 1 => Just(" = ".to_owned()), 1 => Just("\n".to_owned())],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

// --- the rules ------------------------------------------------------------------------

fn check_rules(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("rules.toml");
    let diags = match switchyard::rules::parse_rules(path, text, &destinations()) {
        Ok((_, warnings)) => warnings,
        Err(errors) => {
            prop_assert!(!errors.is_empty(), "rejected without a reason");
            errors
        }
    };
    for d in &diags {
        prop_assert_eq!(&d.file, path);
        prop_assert!(
            inside(text, d.line, d.column),
            "{d} points outside the text ({} lines)",
            text.split('\n').count()
        );
        prop_assert!(!d.message.trim().is_empty(), "{d:?}");
        let prefix = format!("rules.toml:{}:{}:", d.line, d.column);
        prop_assert!(d.to_string().starts_with(&prefix), "{d}");
    }
    Ok(())
}

// --- canonical orders --------------------------------------------------------------

fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "", " ", "US", "us", "DE", "19720", "33160", "MUG-RED", "GIFTCARD-1", "DL-x", "FURN-1",
            "qa+1@example.test", "a@mailinator.com", "Next Day Air", "EXPRESS", "vip", "VIP",
            "test", "shop-wholesale", "İ", "ß", "ǅ", "\u{0}", "\u{200b}", "*", "?", "é",
        ])
        .prop_map(str::to_owned),
        2 => "\\PC{0,16}",
        1 => "[a-zA-Z0-9@.*?+ -]{0,12}",
        1 => Just("x".repeat(2000)),
    ]
}

fn opt(s: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
    prop::option::of(s)
}

fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        1 => prop::sample::select(vec![
            Decimal::ZERO,
            Decimal::MAX,
            Decimal::MIN,
            Decimal::new(1, 28),
            Decimal::new(50000, 2),
            Decimal::new(44999, 2),
            Decimal::NEGATIVE_ONE,
        ]),
        2 => (any::<i64>(), 0..=28_u32).prop_map(|(m, s)| Decimal::new(m, s)),
        2 => (-100_000_i64..100_000, 0..=3_u32).prop_map(|(m, s)| Decimal::new(m, s)),
    ]
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
        (0_i64..4_000_000_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
    ]
}

fn quantity() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(1), Just(u32::MAX), any::<u32>(), 0..30_u32]
}

fn line() -> impl Strategy<Value = Line> {
    (
        odd_string(),
        opt(odd_string()),
        odd_string(),
        quantity(),
        decimal(),
        decimal(),
        quantity(),
    )
        .prop_map(
            |(line_id, sku, title, quantity, unit_price, total, shipped_quantity)| Line {
                line_id,
                sku,
                title,
                quantity,
                unit_price,
                total,
                shipped_quantity,
                discount: rust_decimal::Decimal::ZERO,
                tax: None,
                refunded_quantity: 0,
                options: vec![],
            },
        )
}

fn address() -> impl Strategy<Value = Address> {
    (
        (opt(odd_string()), opt(odd_string()), opt(odd_string())),
        (opt(odd_string()), opt(odd_string()), opt(odd_string())),
        (opt(odd_string()), opt(odd_string()), opt(odd_string())),
    )
        .prop_map(
            |((name, company, line1), (line2, city, region), (postal_code, country, phone))| {
                Address {
                    name,
                    company,
                    line1,
                    line2,
                    city,
                    region,
                    postal_code,
                    country,
                    phone,
                }
            },
        )
}

fn shipment() -> impl Strategy<Value = Shipment> {
    (
        odd_string(),
        odd_string(),
        prop::option::of(time()),
        prop::collection::vec(
            (odd_string(), opt(odd_string()), quantity()).prop_map(|(line_id, sku, quantity)| {
                ShipmentLine {
                    line_id,
                    sku,
                    quantity,
                }
            }),
            0..3,
        ),
    )
        .prop_map(|(carrier, tracking_number, shipped_at, lines)| Shipment {
            carrier,
            tracking_number,
            tracking_url: None,
            shipped_at,
            lines,
        })
}

/// Canonical orders with odd values: empty and non-ASCII strings, zero and
/// huge quantities and amounts, up to a few hundred lines, no address.
fn order() -> impl Strategy<Value = Order> {
    let lines = prop_oneof![
        4 => prop::collection::vec(line(), 0..6),
        1 => prop::collection::vec(line(), 50..200),
    ];
    (
        (
            odd_string(),
            prop::sample::select(Channel::ALL.to_vec()),
            odd_string(),
            prop::sample::select(OrderStatus::ALL.to_vec()),
            prop::sample::select(vec![
                PaymentStatus::Pending,
                PaymentStatus::Paid,
                PaymentStatus::PartiallyRefunded,
                PaymentStatus::Refunded,
                PaymentStatus::Voided,
            ]),
            time(),
            "[A-Z]{3}",
        ),
        (
            prop::collection::vec(decimal(), 6),
            prop::option::of(("[A-Z]{3}", decimal())),
            prop::option::of((opt(odd_string()), opt(odd_string()), opt(odd_string()))),
            prop::option::of(address()),
            opt(odd_string()),
        ),
        (
            lines,
            prop::collection::vec(shipment(), 0..3),
            prop::collection::vec(odd_string(), 0..6),
            opt(odd_string()),
        ),
    )
        .prop_map(
            |(
                (account, channel, channel_order_id, status, payment, at, currency),
                (t, presentment, customer, shipping_address, shipping_method),
                (lines, shipments, tags, number),
            )| Order {
                id: Order::make_id(&account, &channel_order_id),
                account,
                channel,
                channel_order_id,
                number,
                status,
                payment,
                placed_at: at,
                updated_at: at,
                currency: Currency::new(&currency).unwrap(),
                totals: Totals {
                    subtotal: t[0],
                    shipping: t[1],
                    tax: t[2],
                    discount: t[3],
                    total: t[4],
                    refunded: t[5],
                },
                presentment: presentment.map(|(c, total)| Presentment {
                    currency: Currency::new(&c).unwrap(),
                    total,
                }),
                customer: customer.map(|(name, email, phone)| Customer { name, email, phone }),
                shipping_address,
                shipping_method,
                lines,
                shipments,
                tags,
                route: None,
                hold: None,
                priority: Priority::Normal,
                note: None,
                gift: None,
                fulfillment: switchyard_contract::Fulfillment::default(),
                test: false,
            },
        )
}

/// Tags are the same ignoring case, as the rules compare them: character by
/// character, with the lower case of characters that have a one-character one.
fn same_tag(a: &str, b: &str) -> bool {
    let fold = |c: char| {
        let mut lower = c.to_lowercase();
        match (lower.next(), lower.next()) {
            (Some(l), None) => l,
            _ => c,
        }
    };
    a.chars().map(fold).eq(b.chars().map(fold))
}

fn check_evaluation(order: &Order, manual: &[String]) -> Result<(), TestCaseError> {
    let rules = example_rules();
    let input = RuleInput {
        order,
        channel_tags: &order.tags,
        manual_tags: manual,
    };
    let now = Utc::now();
    let eval = evaluate(rules, &input, now);
    prop_assert_eq!(eval.trace.len(), rules.len());
    // Every order gets a route: the example has a default one.
    let route = eval.route.as_deref().unwrap_or("(none)");
    prop_assert!(DESTINATIONS.contains(&route), "route {route}");
    // Tags compare ignoring case; the first spelling seen is kept.
    for t in manual {
        prop_assert!(
            eval.tags.iter().any(|x| same_tag(x, t)),
            "hand-set tag {t:?} lost: {:?}",
            eval.tags
        );
    }
    for (i, a) in eval.tags.iter().enumerate() {
        for b in &eval.tags[i + 1..] {
            prop_assert!(!same_tag(a, b), "{a:?} and {b:?}");
        }
    }
    let fast = decide(rules, &input, now);
    prop_assert_eq!(
        (&fast.tags, &fast.route, &fast.hold, fast.priority),
        (&eval.tags, &eval.route, &eval.hold, eval.priority)
    );
    let json = explain_json(order, &eval, &Default::default());
    prop_assert!(json.is_object());
    let text = explain_text(order, &eval, &Default::default());
    prop_assert!(!text.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(config(cases(256)))]

    /// Any text at all: parsed or refused with positions inside the text.
    #[test]
    fn rules_parser_refuses_arbitrary_text_with_positions(text in prop_oneof!["\\PC{0,200}", tomlish()]) {
        check_rules(&text)?;
    }

    /// The example rules with lines dropped, doubled or swapped, fragments
    /// inserted, values replaced.
    #[test]
    fn rules_parser_points_into_mutated_example_rules(text in mutated(example("rules.toml"))) {
        check_rules(&text)?;
    }

    /// The example rules on arbitrary canonical orders: a decision and an
    /// explanation for every one, hand-set tags kept, no panic.
    #[test]
    fn example_rules_evaluate_any_order(
        order in order(),
        manual in prop::collection::vec(odd_string(), 0..3),
    ) {
        check_evaluation(&order, &manual)?;
    }
}

// --- the config -----------------------------------------------------------------------

/// `CREDENTIALS_DIRECTORY` is an empty folder: a `*_file` secret the edits
/// produce reads nothing outside it.
fn env() -> Env {
    static CREDENTIALS: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = CREDENTIALS.get_or_init(|| tempfile::tempdir().unwrap());
    Env::new()
        .with_credentials_directory(dir.path())
        .with_var("SHOP_US_TOKEN", "t")
}

fn check_config(text: &str, env: &Env) -> Result<(), TestCaseError> {
    let path = PathBuf::from("/etc/switchyard/switchyard.toml");
    match load_str(&path, text, env) {
        Ok(config) => {
            // A config that loads can run: its durations fit a clock.
            let now = std::time::Instant::now();
            prop_assert!(now.checked_add(config.daemon.shutdown_timeout).is_some());
            for a in &config.accounts {
                prop_assert!(
                    now.checked_add(a.poll_interval).is_some(),
                    "poll_interval {:?}",
                    a.poll_interval
                );
            }
        }
        Err(errors) => {
            prop_assert!(!errors.errors.is_empty());
            for e in &errors.errors {
                prop_assert_eq!(&e.file, &path);
                prop_assert!(!e.message.trim().is_empty(), "{e:?}");
                if e.env_var.is_none() {
                    prop_assert!(
                        inside(text, e.line, e.column),
                        "{e} points outside the text ({} lines)",
                        text.split('\n').count()
                    );
                }
            }
        }
    }
    Ok(())
}

/// `SWITCHYARD__SECTION__KEY` overrides, of keys that exist and keys that do not.
fn overrides() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "SWITCHYARD__DAEMON__LISTEN",
            "SWITCHYARD__DAEMON__SHUTDOWN_TIMEOUT",
            "SWITCHYARD__DAEMON__LOG_FORMAT",
            "SWITCHYARD__DAEMON__ADMIN_TOKEN_ENV",
            "SWITCHYARD__INVENTORY__BUFFER",
            "SWITCHYARD__ACCOUNT__0__ID",
            "SWITCHYARD__",
            "SWITCHYARD____",
        ])
        .prop_map(str::to_owned),
        "SWITCHYARD__[A-Za-z_]{0,12}(__[A-Za-z_]{0,12})?",
    ];
    prop::collection::vec((name, "\\PC{0,12}"), 0..3)
}

/// A near miss of a string value: a few characters replaced, dropped or
/// added, some of them outside ASCII (a typo, a paste from a web page).
#[derive(Debug, Clone)]
enum CharEdit {
    Replace(usize, char),
    Remove(usize),
    Insert(usize, char),
}

fn char_edits() -> impl Strategy<Value = Vec<CharEdit>> {
    let c = prop_oneof![
        2 => prop::sample::select(vec!['é', '€', '𝄞', 'ß', '\u{0}', ' ', '/', '"', '\\', '-', '0']),
        1 => any::<char>(),
    ];
    let e = prop_oneof![
        (any::<usize>(), c.clone()).prop_map(|(i, c)| CharEdit::Replace(i, c)),
        any::<usize>().prop_map(CharEdit::Remove),
        (any::<usize>(), c).prop_map(|(i, c)| CharEdit::Insert(i, c)),
    ];
    prop::collection::vec(e, 1..4)
}

fn near_miss(value: &str, edits: &[CharEdit]) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    for e in edits {
        let n = chars.len();
        match *e {
            CharEdit::Replace(i, c) if n > 0 => chars[i % n] = c,
            CharEdit::Remove(i) if n > 0 => {
                chars.remove(i % n);
            }
            CharEdit::Insert(i, c) => chars.insert(i % (n + 1), c),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// The `key = "value"` lines of the example config: (line index, key, value).
fn string_lines() -> Vec<(usize, &'static str, &'static str)> {
    example("switchyard.toml")
        .split('\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
        .filter_map(|(i, l)| {
            let (key, rest) = l.split_once(" = \"")?;
            let value = &rest[..rest.find('"')?];
            Some((i, key, value))
        })
        .collect()
}

fn string_values() -> usize {
    string_lines().len()
}

/// The example config with the string value of its `n`-th `key = "..."`
/// line changed by a near miss, written back as a TOML basic string.
fn near_miss_config(n: usize, edits: &[CharEdit]) -> String {
    let text = example("switchyard.toml");
    let keyed = string_lines();
    let (line, key, value) = keyed[n % keyed.len()];
    let mut value = near_miss(value, edits);
    // Keep it one TOML string: what is checked is the value, not the syntax.
    value = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\u{0}', "\\u0000");
    text.split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i == line {
                format!("{key} = \"{value}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

proptest! {
    #![proptest_config(config(cases(256)))]

    #[test]
    fn config_loader_refuses_arbitrary_text_with_positions(text in prop_oneof!["\\PC{0,200}", tomlish()]) {
        check_config(&text, &env())?;
    }

    /// Durations of any size: refused, or small enough for the clock.
    #[test]
    fn config_durations_of_any_size_fit_the_clock(
        key in prop::sample::select(vec!["shutdown_timeout = \"20s\"", "poll_interval = \"2m\""]),
        n in prop_oneof![any::<u64>(), 0..1_000_000_u64, Just(u64::MAX)],
        unit in prop::sample::select(vec!["s", "m", "h", "d"]),
    ) {
        let name = key.split(' ').next().unwrap();
        let text = example("switchyard.toml").replace(key, &format!("{name} = \"{n}{unit}\""));
        check_config(&text, &env())?;
    }

    #[test]
    fn config_loader_points_into_mutated_example_config(
        text in mutated(example("switchyard.toml")),
        vars in overrides(),
    ) {
        let env = vars.into_iter().fold(env(), |e, (k, v)| e.with_var(k, v));
        check_config(&text, &env)?;
    }
}

proptest! {
    // Each case loads the config once per string value (about 40 times).
    #![proptest_config(config(cases(128)))]

    /// Every string value of the example config, typed slightly wrong
    /// (each case tries the same typo in every value, one at a time).
    #[test]
    fn config_loader_checks_near_miss_values(edits in char_edits()) {
        for n in 0..string_values() {
            check_config(&near_miss_config(n, &edits), &env())?;
        }
    }
}

// --- the HTTP surface -----------------------------------------------------------------

const TOKEN: &str = "admin-token-for-property-tests";
const SECRET: &str = "property-webhook-secret";

/// A daemon on the test's runtime with one Shopify account (webhooks on),
/// the admin API on, and a simulator with no orders at all: whatever the
/// store holds afterwards came through the requests.
struct Daemon {
    rt: tokio::runtime::Runtime,
    daemon: Option<InProcess>,
    http: reqwest::Client,
    _sim: Simulator,
    _dir: tempfile::TempDir,
    _empty: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let empty = tempfile::tempdir().unwrap();
        let sim = rt.block_on(Simulator::start(empty.path())).unwrap();
        let config = ConfigBuilder::new(dir.path())
            .admin_token(TOKEN)
            .shutdown_timeout("5s")
            .account(
                ShopifyAccount::new("shop-us", &sim.base_url(Channel::Shopify))
                    .webhook_secret(SECRET),
            )
            .write();
        let daemon = rt.block_on(InProcess::start(&config));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Daemon {
            rt,
            daemon: Some(daemon),
            http,
            _sim: sim,
            _dir: dir,
            _empty: empty,
        }
    }

    /// Sends one request; answers the status and body, or what went wrong
    /// on the connection.
    fn send(&self, r: &Req) -> Result<(u16, Vec<u8>), String> {
        let url = self.daemon.as_ref().unwrap().url(&r.path);
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
        let mut req = self.http.request(method, &url).body(r.body.clone());
        for (k, v) in &r.headers {
            req = req.header(k.as_str(), v.as_slice());
        }
        if r.sign {
            req = req.header(
                "x-shopify-hmac-sha256",
                switchyard_shopify::webhook::sign(
                    &r.body,
                    &switchyard_contract::Secret::new(SECRET),
                ),
            );
        }
        if r.token {
            req = req.header("authorization", format!("Bearer {TOKEN}"));
        }
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| format!("{e:?}"))?;
            Ok((status, body.to_vec()))
        })
    }

    /// Stops the daemon; answers the orders in its store.
    fn stop(mut self) -> Vec<String> {
        let daemon = self.daemon.take().unwrap();
        let (_, store) = self.rt.block_on(daemon.stop());
        store
            .list_orders(&Default::default())
            .unwrap()
            .into_iter()
            .map(|o| o.order.id)
            .collect()
    }
}

/// One request, as random as the HTTP client lets it be.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// Add Shopify's signature of the body with the account's secret.
    sign: bool,
    /// Add the admin token.
    token: bool,
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9._~:-]{0,12}",
        1 => prop::sample::select(vec![
            "shop-us", "shop-us:5551234567", "%00", "%FF", "%2F", "%2e%2e", "..", "%", "%zz",
            "%C3%A9", "%E2%82%AC", "orders", "retry", "retry-dead", "hold", "release", "tags", "{id}", "*",
        ])
        .prop_map(str::to_owned),
        1 => Just("a".repeat(3000)),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => prop::sample::select(vec![
            "?limit=-1", "?limit=99999999999999999999", "?limit=0", "?held=maybe", "?dead=true",
            "?detail=true", "?dry_run=true", "?since=yesterday", "?since=2026-11-01T00:00:00Z",
            "?status=lost", "?channel=ebay", "?route=none", "?unknown=1", "?a=%FF", "?&&==",
            "?since=+275760-09-13T00:00:00Z",
        ])
        .prop_map(str::to_owned),
        1 => "\\?[a-z_]{1,8}=[A-Za-z0-9%]{0,8}",
    ]
}

/// Known routes with odd ids, near misses of them, and anything else.
fn path() -> impl Strategy<Value = String> {
    let route = prop::sample::select(vec![
        "/webhooks/{}",
        "/api/v1/orders",
        "/api/v1/orders/{}",
        "/api/v1/orders/{}/hold",
        "/api/v1/orders/{}/release",
        "/api/v1/shipments",
        "/api/v1/stock",
        "/api/v1/stock/{}",
        "/api/v1/outbox",
        "/api/v1/outbox/retry-dead",
        "/api/v1/outbox/{}/retry",
        "/api/v1/outbox/{}",
        "/api/v1/rules/explain",
        "/api/v1/rules/apply",
        "/api/v1/sync/{}",
        "/api/v1/{}",
        "/api/v2/orders",
        "/healthz",
        "/readyz",
        "/metrics",
        "/{}",
        "/",
    ]);
    (
        route,
        segment(),
        prop::collection::vec(segment(), 0..3),
        query(),
    )
        .prop_map(|(route, id, extra, query)| {
            let mut p = route.replace("{}", &id);
            for s in extra {
                p.push('/');
                p.push_str(&s);
            }
            p + &query
        })
}

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = prop_oneof![
        2 => prop::sample::select(vec![
            "x-shopify-topic", "x-shopify-event-id", "x-shopify-webhook-id",
            "x-shopify-hmac-sha256", "content-type", "authorization", "accept",
            "content-encoding", "transfer-encoding-x", "expect-x",
        ])
        .prop_map(str::to_owned),
        1 => "x-[a-z0-9-]{1,16}",
    ];
    let value = prop_oneof![
        3 => prop::sample::select(vec![
            "orders/create", "orders/updated", "orders/cancelled", "products/update", "",
            "application/json", "text/plain", "gzip", "Bearer", "Bearer wrong", "bearer  ",
            "Basic YWRtaW46YWRtaW4=", "evt-1", "   ",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => "[ -~]{0,40}".prop_map(String::into_bytes),
        // obs-text: bytes past ASCII, not UTF-8.
        1 => prop::collection::vec(0x80_u8..=0xff, 1..8),
    ];
    (name, value)
}

fn bodies() -> BoxedStrategy<Vec<u8>> {
    let order_body = webhook_orders();
    prop_oneof![
        2 => Just(Vec::new()),
        2 => prop::collection::vec(any::<u8>(), 0..256),
        2 => "\\PC{0,64}".prop_map(String::into_bytes),
        2 => prop::sample::select(vec![
            "{}", "[]", "null", "1e400", "{\"reason\": \"\"}", "{\"reason\": 5}",
            "{\"order_id\": \"shop-us:1\"}", "{\"order_id\": 1}", "[{\"sku\": \"\", \"available\": -1}]",
            "[{\"sku\": \"A\", \"available\": 18446744073709551616}]",
            "{\"order_id\": \"shop-us:1\", \"carrier\": \"ups\", \"tracking_number\": \"1Z\"}",
            "{\"id\": 1, \"currency\": \"USD\", \"updated_at\": \"2026-01-01T00:00:00Z\"}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        // A recorded order with one field broken; mostly not an order any more
        // (a line price set to null falls back on `price`: stored, and counted).
        3 => (prop::sample::select(vec![
            "/id", "/currency", "/updated_at", "/created_at", "/total_price_set",
            "/line_items/0/price_set/shop_money/amount",
        ]), prop::sample::select(vec![json!(null), json!(""), json!("1e400"), json!([]), json!("NaN")]))
            .prop_map(move |(pointer, v)| {
                let mut doc = order_body.clone();
                // The total in both its spellings, and `created_at` without
                // `processed_at`, so that nothing is left to fall back on.
                if let Some(slot) = doc.pointer_mut(pointer) {
                    *slot = v.clone();
                }
                if pointer == "/total_price_set" {
                    doc["total_price"] = v;
                }
                if pointer.starts_with("/created_at") {
                    doc["processed_at"] = json!(null);
                }
                serde_json::to_vec(&doc).unwrap()
            }),
        1 => order().boxed().prop_map(|o| serde_json::to_vec(&o).unwrap()),
        1 => Just(vec![b'[' ; 1024 * 1024 + 1]),
    ]
    .boxed()
}

/// The recorded `orders/create` body (order 5551234567).
fn webhook_orders() -> Value {
    common::daemon::orders_create()
}

fn request(webhooks: bool) -> BoxedStrategy<Req> {
    let method = prop_oneof![
        4 => Just("POST".to_owned()),
        1 => prop::sample::select(vec!["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO"])
            .prop_map(str::to_owned),
    ];
    let path = if webhooks {
        prop_oneof![
            4 => Just("/webhooks/shop-us".to_owned()),
            1 => path(),
        ]
        .boxed()
    } else {
        path().boxed()
    };
    (
        method,
        path,
        prop::collection::vec(header(), 0..4),
        bodies(),
        any::<bool>(),
        prop::bool::weighted(if webhooks { 0.1 } else { 0.8 }),
        prop::sample::select(vec![
            "orders/create",
            "orders/updated",
            "orders/paid",
            "products/update",
            "orders/create ",
        ]),
    )
        .prop_map(
            move |(method, path, mut headers, body, sign, token, topic)| {
                if webhooks {
                    headers.push(("x-shopify-topic".to_owned(), topic.as_bytes().to_vec()));
                }
                Req {
                    method,
                    path,
                    headers,
                    body,
                    sign: webhooks && sign,
                    token,
                }
            },
        )
        .boxed()
}

/// Sends `cases` random requests; every answer must be a 2xx or 4xx with
/// a body. Answers how many said an order was stored.
fn hammer(d: &Daemon, webhooks: bool, cases: u32) -> usize {
    let stored = std::cell::Cell::new(0);
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&request(webhooks), |r| {
        let (status, body) = d
            .send(&r)
            .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
        prop_assert!(
            (200..300).contains(&status) || (400..500).contains(&status),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        if r.method != "HEAD" {
            prop_assert!(!body.is_empty(), "{status} without a body");
        }
        if status == 200 && body.starts_with(b"stored: 1 new") {
            stored.set(stored.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    stored.get()
}

/// Webhook deliveries of every shape, signed and not: nothing is stored
/// but what the daemon said it stored.
#[test]
fn the_webhook_route_answers_anything_with_a_4xx_or_2xx() {
    let d = Daemon::start();
    let stored = hammer(&d, true, cases(200));
    let orders = d.stop();
    assert!(
        orders.len() <= stored,
        "{} orders in the store, {stored} acknowledged: {orders:?}",
        orders.len()
    );
}

/// The admin API and every other path, with and without the token: no
/// request of it creates an order.
#[test]
fn the_admin_api_and_any_path_answer_with_a_4xx_or_2xx() {
    let d = Daemon::start();
    hammer(&d, false, cases(200));
    let orders = d.stop();
    assert!(orders.is_empty(), "orders appeared: {orders:?}");
}

// --- regressions: inputs the properties above found ----------------------------------

/// Found by `config_loader_points_into_mutated_example_config`: an
/// `api_version` of 7 bytes with a character across byte 4 panicked
/// ("byte index 4 is not a char boundary") instead of being refused.
#[test]
fn a_non_ascii_api_version_is_refused_not_a_panic() {
    let text =
        example("switchyard.toml").replace("api_version = \"2026-10\"", "api_version = \"0𞸤 A\"");
    let errors = load_str(Path::new("switchyard.toml"), &text, &env()).unwrap_err();
    let line = text
        .lines()
        .position(|l| l.starts_with("api_version"))
        .unwrap()
        + 1;
    assert!(
        errors
            .errors
            .iter()
            .any(|e| e.line == line && e.message.contains("not a Shopify API version")),
        "{errors}"
    );
}

/// A duration the clock cannot add (`Instant + d` panics) loaded without a
/// word and panicked the daemon at its first poll or at shutdown.
#[test]
fn durations_past_the_clock_are_refused() {
    for (key, value) in [
        (
            "shutdown_timeout = \"20s\"",
            "shutdown_timeout = \"18446744073709551615s\"",
        ),
        (
            "poll_interval = \"2m\"",
            "poll_interval = \"106751991167301d\"",
        ),
    ] {
        let text = example("switchyard.toml").replace(key, value);
        let errors = load_str(Path::new("switchyard.toml"), &text, &env()).unwrap_err();
        assert!(
            errors.to_string().contains("is too long; at most 365d"),
            "{errors}"
        );
    }
}

/// Seen while fixing the same overflow in the Shopify normalizer: a rule
/// test case whose patched line has a huge price panicked `rules test` when
/// it worked out the line total.
#[test]
fn a_rule_test_line_total_past_the_decimal_range_fails_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let order = Path::new(REPO).join("tests/rules/orders/us-standard.json");
    let file = dir.path().join("huge.toml");
    std::fs::write(
        &file,
        format!(
            "order = {:?}\n[[case]]\nname = \"huge\"\npatch = {{ lines = [{{ sku = \"A\", unit_price = \"79228162514264337593543950335\", quantity = 2 }}] }}\n[case.expect]\nhold = false\n",
            order.display().to_string()
        ),
    )
    .unwrap();
    let results = switchyard::rules::run_test_file(example_rules(), &file).unwrap();
    assert!(!results[0].passed);
    assert!(
        results[0].failures[0].contains("patch.lines[0]: unit_price")
            && results[0].failures[0].contains("out of range"),
        "{:?}",
        results[0].failures
    );
}

/// Seen while reading the ingest path for the above: a channel update
/// whose fulfillment claims `u32::MAX` units of a line that also has a
/// shipment recorded here (tracking push still queued) overflowed
/// `shipped_quantity` (a panic in the ingest task, answered 503).
#[test]
fn a_huge_channel_fulfillment_beside_a_local_shipment_is_stored() {
    let d = Daemon::start();
    let post = |path: &str, body: Vec<u8>, topic: Option<&str>| {
        let r = Req {
            method: "POST".into(),
            path: path.into(),
            headers: topic
                .map(|t| vec![("x-shopify-topic".to_owned(), t.as_bytes().to_vec())])
                .unwrap_or_default(),
            body,
            sign: topic.is_some(),
            token: topic.is_none(),
        };
        let (status, body) = d.send(&r).unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let mut order = webhook_orders();
    let created = post(
        "/webhooks/shop-us",
        serde_json::to_vec(&order).unwrap(),
        Some("orders/create"),
    );
    assert_eq!(created.0, 200, "{created:?}");
    let shipped = post(
        "/api/v1/shipments",
        serde_json::to_vec(&json!({
            "order_id": "shop-us:5551234567", "carrier": "ups", "tracking_number": "LOCAL-1",
            "lines": [{ "sku": "MUG-RED", "quantity": 1 }],
        }))
        .unwrap(),
        None,
    );
    assert_eq!(shipped.0, 202, "{shipped:?}");
    order["updated_at"] = json!("2026-11-27T09:00:00-05:00");
    order["fulfillment_status"] = json!("partial");
    order["fulfillments"] = json!([{
        "id": 77, "status": "success", "created_at": "2026-11-27T08:00:00-05:00",
        "tracking_number": "CHANNEL-1",
        "line_items": [{ "id": 13001001, "quantity": u32::MAX }],
    }]);
    let updated = post(
        "/webhooks/shop-us",
        serde_json::to_vec(&order).unwrap(),
        Some("orders/updated"),
    );
    assert_eq!(updated.0, 200, "{updated:?}");
    assert_eq!(d.stop().len(), 1);
}

/// Found by `the_webhook_route_answers_anything_with_a_4xx_or_2xx` (about
/// one run in a hundred): a GET or HEAD of the webhook route with a signed
/// order in its body stored the order, then answered 405 (GET) or 200 with
/// no body (HEAD). The channel was told the delivery failed, or was never
/// told it was stored, while it was. Only a POST may store anything.
#[test]
fn a_webhook_not_posted_stores_nothing() {
    let d = Daemon::start();
    let send = |method: &str| {
        let r = Req {
            method: method.into(),
            path: "/webhooks/shop-us".into(),
            headers: vec![("x-shopify-topic".to_owned(), b"orders/create".to_vec())],
            body: serde_json::to_vec(&webhook_orders()).unwrap(),
            sign: true,
            token: false,
        };
        let (status, body) = d.send(&r).unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    for method in ["GET", "HEAD", "PUT", "PATCH", "DELETE"] {
        let (status, body) = send(method);
        assert_eq!(status, 405, "{method}: {body}");
    }
    // The same delivery POSTed is stored: the refusals above were for the
    // method, not the body.
    let (status, body) = send("POST");
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "stored: 1 new, 0 updated, 0 unchanged, 0 older than stored\n"
        )
    );
    assert_eq!(d.stop(), ["shop-us:5551234567"]);
}

/// Found by `the_webhook_route_answers_anything_with_a_4xx_or_2xx` and
/// `the_admin_api_and_any_path_answer_with_a_4xx_or_2xx`: outside `/api/v1`
/// an unknown path was a 404 and a wrong method a 405, both with an empty body.
#[test]
fn unknown_paths_and_methods_say_what_is_served() {
    let d = Daemon::start();
    for (method, path, status) in [
        ("POST", "/api/v2/orders", 404),
        ("GET", "/nothing-here", 404),
        ("GET", "/webhooks/shop-us", 405),
        ("POST", "/healthz", 405),
    ] {
        let r = Req {
            method: method.into(),
            path: path.into(),
            headers: vec![],
            body: vec![],
            sign: false,
            token: false,
        };
        let (got, body) = d.send(&r).unwrap();
        let body = String::from_utf8(body).unwrap();
        assert_eq!(got, status, "{method} {path}: {body}");
        assert!(
            body.contains(path) && body.contains("/webhooks/{account}"),
            "{body}"
        );
    }
    assert!(d.stop().is_empty());
}

/// Found by `the_admin_api_and_any_path_answer_with_a_4xx_or_2xx`: an
/// answer given without reading a large body (a 404, 405 or 413, a route
/// that takes no body) made the server drop the connection, and the client
/// lost that answer or its next request on the same connection (a race:
/// about one in thirty). Each refusal and the request after it must arrive.
#[test]
fn answers_given_before_the_body_was_read_keep_the_connection_usable() {
    let d = Daemon::start();
    let big = vec![b'['; 1024 * 1024 + 1];
    let mut lost = Vec::new();
    for (method, path) in [
        ("POST", "/nothing"),
        ("POST", "/webhooks/nobody"),
        ("GET", "/healthz"),
        ("POST", "/api/v1/outbox/retry-dead"),
    ] {
        for _ in 0..80 {
            let refused = Req {
                method: method.into(),
                path: path.into(),
                headers: vec![],
                body: big.clone(),
                sign: false,
                token: true,
            };
            if let Err(e) = d.send(&refused) {
                lost.push(format!("{method} {path}: {e}"));
            }
            let next = Req {
                method: "GET".into(),
                path: "/healthz".into(),
                headers: vec![],
                body: vec![],
                sign: false,
                token: false,
            };
            if let Err(e) = d.send(&next) {
                lost.push(format!("GET /healthz after {method} {path}: {e}"));
            }
        }
    }
    d.stop();
    assert!(
        lost.is_empty(),
        "{} requests lost: {:?}",
        lost.len(),
        &lost[..1]
    );
}
