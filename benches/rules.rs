//! Rule evaluation cost per order for 10, 100 and 1,000 generated rules over
//! a fixed set of generated orders, with the cost of cloning an order and of
//! `serde_json::to_value` of it measured in the same run as the yardstick.
//! Plain `Instant` timing (no criterion); run with `cargo bench --bench rules`.

// A benchmark that cannot set up panics: that is its failure report.
// Random picks and percentile indexes cast freely.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use switchyard::rules::{RuleInput, RuleSet, decide, evaluate, parse_rules};
use switchyard_contract::Order;

const ORDERS: usize = 512;
/// Each measurement runs whole passes over the orders for at least this long.
const MIN_TIME: Duration = Duration::from_millis(700);

/// A tiny deterministic generator, so every run measures the same data.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() as usize) % from.len()]
    }
}

const COUNTRIES: [&str; 8] = ["US", "US", "US", "CA", "DE", "GB", "FR", "AU"];
const REGIONS: [&str; 8] = ["IL", "CA", "NY", "WA", "DE", "OR", "ON", "TX"];
const CHANNELS: [&str; 4] = ["shopify", "etsy", "ebay", "amazon"];
const SKUS: [&str; 8] = [
    "MUG-RED",
    "MUG-BLUE",
    "TEE-M",
    "FURN-SOFA-3",
    "GIFTCARD-50",
    "RUG-XL-7",
    "HAT-1",
    "DL-EBOOK",
];
const METHODS: [&str; 4] = [
    "Standard",
    "UPS Next Day Air",
    "Economy",
    "Express Worldwide",
];
const DOMAINS: [&str; 4] = ["example.com", "mail.ru", "mailinator.com", "shop.co.uk"];

fn orders() -> Vec<Order> {
    let base: Order = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules/orders/us-standard.json"),
        )
        .expect("base order"),
    )
    .expect("valid base order");
    let mut rng = Lcg(42);
    (0..ORDERS)
        .map(|i| {
            let mut o = base.clone();
            o.id = format!("shop-us:{i}");
            o.channel = rng.pick(&CHANNELS).parse().unwrap();
            let addr = o.shipping_address.as_mut().unwrap();
            addr.country = Some(rng.pick(&COUNTRIES).to_owned());
            addr.region = Some(rng.pick(&REGIONS).to_owned());
            addr.postal_code = Some(format!("{:05}", rng.next() % 100_000));
            o.customer.as_mut().unwrap().email = Some(format!("buyer{i}@{}", rng.pick(&DOMAINS)));
            o.shipping_method = Some(rng.pick(&METHODS).to_owned());
            let n = 1 + rng.next() as usize % 4;
            let template = o.lines[0].clone();
            o.lines = (0..n)
                .map(|j| {
                    let mut l = template.clone();
                    l.line_id = j.to_string();
                    l.sku = Some(format!("{}-{}", rng.pick(&SKUS), rng.next() % 200));
                    l.quantity = 1 + (rng.next() % 5) as u32;
                    l
                })
                .collect();
            o.totals.total = rust_decimal::Decimal::new((rng.next() % 120_000) as i64, 2);
            o
        })
        .collect()
}

/// Country codes rules name; orders only ship to the first eight.
const RULE_COUNTRIES: [&str; 20] = [
    "US", "CA", "DE", "GB", "FR", "AU", "MX", "JP", "NL", "SE", "NO", "DK", "IT", "ES", "PT", "BR",
    "NZ", "IE", "AT", "CH",
];
const RULE_DOMAINS: [&str; 12] = [
    "example.com",
    "mail.ru",
    "mailinator.com",
    "shop.co.uk",
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "proton.me",
    "web.de",
    "gmx.de",
    "orange.fr",
];

/// `n` rules in the shapes the example rules use. Like a real rule file,
/// most rules are specific (SKU and region tables, thresholds), so a few
/// percent match a given order. No rule stops: every rule is evaluated.
fn rules_text(n: usize) -> String {
    let mut rng = Lcg(7);
    let mut s = String::from("default_route = \"east-wh\"\n");
    for i in 0..n {
        let when = match i % 10 {
            0 => format!("country = \"{}\"", rng.pick(&RULE_COUNTRIES[4..])),
            1 => format!(
                "channel = \"{}\", total = {{ gte = \"{}.00\" }}",
                rng.pick(&CHANNELS),
                500 + rng.next() % 700
            ),
            2 => format!(
                "sku = [\"{}-{}\", \"RUG-XL-{}*\"]",
                rng.pick(&SKUS),
                rng.next() % 200,
                rng.next() % 200
            ),
            3 => format!("email = \"*@{}\"", rng.pick(&RULE_DOMAINS)),
            4 => format!(
                "shipping_method = [\"*express*\", \"*next day*\"], region = \"{}\"",
                rng.pick(&REGIONS)
            ),
            5 => format!("item_count = {{ gt = {} }}", 10 + rng.next() % 20),
            6 => format!("tag = [\"t{}\", \"x{}\"]", rng.next() % 50, rng.next() % 50),
            7 => format!(
                "any = [{{ country = \"{}\" }}, {{ postal_code = \"{:02}*\" }}]",
                rng.pick(&RULE_COUNTRIES[6..]),
                rng.next() % 100
            ),
            8 => format!(
                "not = {{ country = \"US\" }}, all_skus = [\"{}*\"]",
                &rng.pick(&SKUS)[..3]
            ),
            _ => {
                let lo = rng.next() % 1100;
                format!(
                    "total = {{ gt = \"{lo}.50\", lte = \"{}.00\" }}, currency = \"USD\"",
                    lo + 30
                )
            }
        };
        let then = match i % 4 {
            0 => format!("tag = \"t{}\"", i % 50),
            1 => "route = \"west-3pl\"".to_owned(),
            2 => format!("hold = \"check {i}\", untag = \"t{}\"", (i + 7) % 50),
            _ => "priority = \"high\", tag = \"p\"".to_owned(),
        };
        let _ = writeln!(
            s,
            "[[rule]]\nname = \"rule-{i}\"\nwhen = {{ {when} }}\nthen = {{ {then} }}\n"
        );
    }
    s
}

fn load(n: usize) -> RuleSet {
    let dests = ["east-wh".to_owned(), "west-3pl".to_owned()];
    let text = rules_text(n);
    let start = Instant::now();
    let (set, _warnings) = parse_rules(Path::new("bench.toml"), &text, &dests)
        .unwrap_or_else(|d| panic!("generated rules invalid: {}", d[0]));
    println!(
        "  parse + validate {n:>5} rules: {:>9.2} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    set
}

/// Nanoseconds per order for `f`, over whole passes of `orders`.
fn per_order(orders: &[Order], mut f: impl FnMut(&Order)) -> f64 {
    for o in orders {
        f(o);
    }
    let start = Instant::now();
    let mut passes = 0u64;
    while start.elapsed() < MIN_TIME {
        for o in orders {
            f(o);
        }
        passes += 1;
    }
    start.elapsed().as_nanos() as f64 / (passes as f64 * orders.len() as f64)
}

fn main() {
    let orders = orders();
    let now: DateTime<Utc> = "2026-11-27T06:00:00Z".parse().unwrap();
    let channel_tags = vec!["t3".to_owned(), "gift".to_owned()];
    let manual_tags = vec!["vip".to_owned()];
    println!(
        "rules benchmark: {ORDERS} generated orders (1-4 lines), {} build",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    let clone_ns = per_order(&orders, |o| {
        black_box(black_box(o).clone());
    });
    let json_ns = per_order(&orders, |o| {
        black_box(serde_json::to_value(black_box(o)).unwrap());
    });
    println!("  baseline: clone the order             {clone_ns:>10.0} ns/order");
    println!("  baseline: serde_json::to_value(order) {json_ns:>10.0} ns/order");

    for n in [10, 100, 1000] {
        let set = load(n);
        let mut matched = 0usize;
        for o in &orders {
            let input = RuleInput {
                order: o,
                channel_tags: &channel_tags,
                manual_tags: &manual_tags,
            };
            matched += evaluate(&set, &input, now)
                .trace
                .iter()
                .filter(|t| t.matched)
                .count();
        }
        let eval_ns = per_order(&orders, |o| {
            let input = RuleInput {
                order: black_box(o),
                channel_tags: &channel_tags,
                manual_tags: &manual_tags,
            };
            black_box(evaluate(&set, &input, now));
        });
        let decide_ns = per_order(&orders, |o| {
            let input = RuleInput {
                order: black_box(o),
                channel_tags: &channel_tags,
                manual_tags: &manual_tags,
            };
            black_box(decide(&set, &input, now));
        });
        println!(
            "  {n:>5} rules ({:>4.1} match/order): evaluate {eval_ns:>10.0} ns/order ({:>6.1}x clone, {:>5.2}x to_value); \
             decide {decide_ns:>10.0} ns/order ({:>6.1}x clone, {:>5.2}x to_value)",
            matched as f64 / orders.len() as f64,
            eval_ns / clone_ns,
            eval_ns / json_ns,
            decide_ns / clone_ns,
            decide_ns / json_ns,
        );
    }
}
