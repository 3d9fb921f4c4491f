//! The rules language through its public API: every condition key and
//! combinator, every action, first-route-wins, `stop`, tags by origin,
//! exact decimals, explain output, every validation error with its line and
//! column, the unreachable-rule warning, and the data cases in tests/rules/.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::json;
use switchyard::rules::{
    CaseResult, Evaluation, RuleInput, RuleSet, collect_test_files, decide, evaluate, explain_json,
    explain_text, format_case, load_rules, parse_rules, run_test_file,
};
use switchyard_contract::{Order, Priority};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn destinations() -> Vec<String> {
    vec!["east-wh".to_owned(), "west-3pl".to_owned()]
}

fn now() -> DateTime<Utc> {
    "2026-11-27T06:00:00Z".parse().unwrap()
}

/// Rules that must load without errors or warnings.
fn rules(text: &str) -> RuleSet {
    match parse_rules(Path::new("rules.toml"), text, &destinations()) {
        Ok((set, warnings)) => {
            assert!(warnings.is_empty(), "unexpected warnings: {warnings:#?}");
            set
        }
        Err(diags) => panic!("rules rejected:\n{}", render(&diags)),
    }
}

fn render(diags: &[switchyard::rules::Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rendered diagnostics of a file that must be rejected.
fn errors(text: &str) -> Vec<String> {
    match parse_rules(Path::new("rules.toml"), text, &destinations()) {
        Ok(_) => panic!("rules accepted:\n{text}"),
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    }
}

/// The rendered warnings of a file that must be accepted.
fn warnings(text: &str) -> Vec<String> {
    match parse_rules(Path::new("rules.toml"), text, &destinations()) {
        Ok((_, w)) => w.iter().map(ToString::to_string).collect(),
        Err(diags) => panic!("rules rejected:\n{}", render(&diags)),
    }
}

/// The order of docs/canonical-order.md: Shopify, shop-us, ready, USD 44.60, Springfield IL
/// US 62701, ada@example.com, "Standard", two MUG-RED.
fn order() -> Order {
    let text = std::fs::read_to_string(root().join("tests/rules/orders/us-standard.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn order_with(patch: impl FnOnce(&mut Order)) -> Order {
    let mut o = order();
    patch(&mut o);
    o
}

fn eval(set: &RuleSet, order: &Order) -> Evaluation {
    eval_tags(set, order, &[], &[])
}

fn eval_tags(set: &RuleSet, order: &Order, channel: &[&str], manual: &[&str]) -> Evaluation {
    let channel: Vec<String> = channel.iter().map(|s| s.to_string()).collect();
    let manual: Vec<String> = manual.iter().map(|s| s.to_string()).collect();
    let input = RuleInput {
        order,
        channel_tags: &channel,
        manual_tags: &manual,
    };
    let full = evaluate(set, &input, now());
    let quick = decide(set, &input, now());
    assert_eq!(
        Evaluation {
            trace: Vec::new(),
            ..full.clone()
        },
        quick,
        "decide and evaluate disagree"
    );
    full
}

/// A one-rule set `when = { WHEN }`, tagging "hit".
fn one(when: &str) -> RuleSet {
    rules(&format!(
        "[[rule]]\nname = \"r\"\nwhen = {{ {when} }}\nthen = {{ tag = \"hit\" }}\n"
    ))
}

/// Whether `when` matches `order`, and the failure reason if not.
fn check(when: &str, order: &Order) -> Result<(), String> {
    check_tags(when, order, &[])
}

fn check_tags(when: &str, order: &Order, channel: &[&str]) -> Result<(), String> {
    let e = eval_tags(&one(when), order, channel, &[]);
    let t = &e.trace[0];
    assert_eq!(t.matched, t.failed.is_none());
    assert_eq!(t.matched, e.rule_tags == ["hit"]);
    match &t.failed {
        None => Ok(()),
        Some(why) => Err(why.clone()),
    }
}

fn line(sku: Option<&str>, quantity: u32) -> switchyard_contract::Line {
    switchyard_contract::Line {
        line_id: format!("L{quantity}"),
        sku: sku.map(str::to_owned),
        title: "item".to_owned(),
        quantity,
        unit_price: "1.00".parse().unwrap(),
        total: "1.00".parse().unwrap(),
        shipped_quantity: 0,
        discount: rust_decimal::Decimal::ZERO,
        tax: None,
        refunded_quantity: 0,
        options: vec![],
    }
}

// ---------------------------------------------------------------- conditions

#[test]
fn channel_condition() {
    assert_eq!(check(r#"channel = ["shopify", "Etsy"]"#, &order()), Ok(()));
    let ebay = order_with(|o| o.channel = switchyard_contract::Channel::Ebay);
    assert_eq!(
        check(r#"channel = ["shopify", "Etsy"]"#, &ebay),
        Err("channel: ebay not in [shopify, etsy]".into())
    );
}

#[test]
fn account_condition_is_exact() {
    assert_eq!(check(r#"account = "shop-us""#, &order()), Ok(()));
    assert_eq!(
        check(r#"account = ["Shop-US", "shop-eu"]"#, &order()),
        Err("account: shop-us not in [Shop-US, shop-eu]".into())
    );
}

#[test]
fn status_condition() {
    assert_eq!(
        check(r#"status = ["ready", "partially_shipped"]"#, &order()),
        Ok(())
    );
    let pending = order_with(|o| o.status = switchyard_contract::OrderStatus::Pending);
    assert_eq!(
        check(r#"status = "READY""#, &pending),
        Err("status: pending not in [ready]".into())
    );
}

#[test]
fn currency_condition_ignores_case() {
    assert_eq!(check(r#"currency = "usd""#, &order()), Ok(()));
    assert_eq!(
        check(r#"currency = ["EUR", "gbp"]"#, &order()),
        Err("currency: USD not in [EUR, GBP]".into())
    );
}

#[test]
fn country_condition() {
    let de = order_with(|o| o.shipping_address.as_mut().unwrap().country = Some("DE".into()));
    assert_eq!(
        check(r#"country = ["CA"]"#, &de),
        Err("country: DE not in [CA]".into())
    );
    let lower = order_with(|o| o.shipping_address.as_mut().unwrap().country = Some("ca".into()));
    assert_eq!(check(r#"country = "Ca""#, &lower), Ok(()));
    let none = order_with(|o| o.shipping_address = None);
    assert_eq!(
        check(r#"country = "US""#, &none),
        Err("country: (none) not in [US]".into())
    );
}

#[test]
fn region_condition_ignores_case() {
    assert_eq!(check(r#"region = ["il", "IN"]"#, &order()), Ok(()));
    let bayern =
        order_with(|o| o.shipping_address.as_mut().unwrap().region = Some("Bayern".into()));
    assert_eq!(check(r#"region = "BAYERN""#, &bayern), Ok(()));
    assert_eq!(
        check(r#"region = "Hessen""#, &bayern),
        Err("region: Bayern not in [Hessen]".into())
    );
}

#[test]
fn postal_code_glob() {
    assert_eq!(check(r#"postal_code = "627??""#, &order()), Ok(()));
    assert_eq!(check(r#"postal_code = "6*""#, &order()), Ok(()));
    assert_eq!(
        check(
            r#"postal_code = ["6270?", "1*"]"#,
            &order_with(|o| {
                o.shipping_address.as_mut().unwrap().postal_code = Some("627011".into())
            })
        ),
        Err("postal_code: 627011 does not match [6270?, 1*]".into())
    );
}

#[test]
fn email_glob_is_whole_value_and_ignores_case() {
    assert_eq!(check(r#"email = "*@EXAMPLE.com""#, &order()), Ok(()));
    assert_eq!(check(r#"email = "ADA@*""#, &order()), Ok(()));
    assert_eq!(
        check(r#"email = "*@example.co""#, &order()),
        Err("email: ada@example.com does not match [*@example.co]".into())
    );
    let none = order_with(|o| o.customer = None);
    assert_eq!(
        check(r#"email = "*""#, &none),
        Err("email: (none) does not match [*]".into())
    );
}

#[test]
fn shipping_method_glob_ignores_case() {
    assert_eq!(check(r#"shipping_method = "STANDARD""#, &order()), Ok(()));
    assert_eq!(check(r#"shipping_method = "st*d""#, &order()), Ok(()));
    assert_eq!(
        check(r#"shipping_method = ["*express*"]"#, &order()),
        Err("shipping_method: Standard does not match [*express*]".into())
    );
}

#[test]
fn sku_condition_any_line() {
    let two = order_with(|o| o.lines = vec![line(Some("TEE-1"), 1), line(Some("MUG-RED"), 1)]);
    assert_eq!(check(r#"sku = "mug-*""#, &two), Ok(()));
    assert_eq!(
        check(r#"sku = ["HAT-*", "CAP-?"]"#, &two),
        Err("sku: no line matches [HAT-*, CAP-?] (skus: [TEE-1, MUG-RED])".into())
    );
    let no_sku = order_with(|o| o.lines = vec![line(None, 1)]);
    assert_eq!(
        check(r#"sku = "*""#, &no_sku),
        Err("sku: no line matches [*] (skus: [(none)])".into())
    );
}

#[test]
fn all_skus_condition_every_line() {
    let two = order_with(|o| o.lines = vec![line(Some("MUG-RED"), 1), line(Some("MUG-BLUE"), 1)]);
    assert_eq!(check(r#"all_skus = "MUG-*""#, &two), Ok(()));
    assert_eq!(
        check(r#"all_skus = ["MUG-RED", "TEE-*"]"#, &two),
        Err("all_skus: MUG-BLUE does not match [MUG-RED, TEE-*]".into())
    );
    let no_lines = order_with(|o| o.lines.clear());
    assert_eq!(
        check(r#"all_skus = "*""#, &no_lines),
        Err("all_skus: order has no lines".into())
    );
    let missing = order_with(|o| o.lines = vec![line(Some("MUG-RED"), 1), line(None, 3)]);
    assert_eq!(
        check(r#"all_skus = "*""#, &missing),
        Err("all_skus: line L3 has no sku".into())
    );
}

#[test]
fn tag_condition_has_any_of_ignoring_case() {
    assert_eq!(
        check_tags(r#"tag = ["vip", "GIFT"]"#, &order(), &["gift"]),
        Ok(())
    );
    assert_eq!(
        check_tags(r#"tag = "vip""#, &order(), &["gift", "repeat"]),
        Err("tag: none of [vip] in [gift, repeat]".into())
    );
    assert_eq!(
        check(r#"tag = "vip""#, &order()),
        Err("tag: none of [vip] in []".into())
    );
}

#[test]
fn total_comparisons() {
    let at = |t: &str| order_with(|o| o.totals.total = t.parse().unwrap());
    assert_eq!(check(r#"total = { gte = "44.60" }"#, &order()), Ok(()));
    assert_eq!(
        check(r#"total = { gte = "100.00" }"#, &at("99.00")),
        Err("total.gte: 99.00 < 100.00".into())
    );
    assert_eq!(
        check(r#"total = { gt = "99" }"#, &at("99.00")),
        Err("total.gt: 99.00 <= 99".into())
    );
    assert_eq!(
        check(r#"total = { lt = "99.0" }"#, &at("99.00")),
        Err("total.lt: 99.00 >= 99.0".into())
    );
    assert_eq!(
        check(r#"total = { lte = "98.99" }"#, &at("99.00")),
        Err("total.lte: 99.00 > 98.99".into())
    );
    assert_eq!(
        check(r#"total = { eq = "99.01" }"#, &at("99.00")),
        Err("total.eq: 99.00 != 99.01".into())
    );
    // A range: every comparison must hold; the first that fails is reported.
    assert_eq!(
        check(r#"total = { gte = 10, lt = "100" }"#, &at("50")),
        Ok(())
    );
    assert_eq!(
        check(r#"total = { gte = 10, lt = "100" }"#, &at("100.00")),
        Err("total.lt: 100.00 >= 100".into())
    );
    // Negative totals (a refund-only adjustment) compare like any decimal.
    assert_eq!(check(r#"total = { lt = "0" }"#, &at("-5.00")), Ok(()));
}

#[test]
fn total_is_an_exact_decimal_whatever_the_scale() {
    let at = |t: &str| order_with(|o| o.totals.total = t.parse().unwrap());
    assert_eq!(check(r#"total = { eq = "100.10" }"#, &at("100.1")), Ok(()));
    assert_eq!(check(r#"total = { eq = "100.1" }"#, &at("100.10")), Ok(()));
    assert_eq!(check(r#"total = { gte = "100.10" }"#, &at("100.1")), Ok(()));
    assert_eq!(
        check(r#"total = { gt = "100.10" }"#, &at("100.1")),
        Err("total.gt: 100.1 <= 100.10".into())
    );
    // No float rounding: 0.1 + 0.2 is exactly 0.3.
    assert_eq!(check(r#"total = { eq = "0.30" }"#, &at("0.3")), Ok(()));
    assert_eq!(
        check(r#"total = { eq = "100.10" }"#, &at("100.100000000000001")),
        Err("total.eq: 100.100000000000001 != 100.10".into())
    );
    // Whatever the currency: the amount alone is compared.
    let eur = order_with(|o| {
        o.currency = switchyard_contract::Currency::new("EUR").unwrap();
        o.totals.total = "500".parse().unwrap();
    });
    assert_eq!(check(r#"total = { gte = "500.00" }"#, &eur), Ok(()));
}

#[test]
fn item_count_sums_line_quantities() {
    let o = order_with(|o| o.lines = vec![line(Some("A"), 2), line(Some("B"), 1)]);
    assert_eq!(check("item_count = { eq = 3 }", &o), Ok(()));
    assert_eq!(check("item_count = { gte = 3, lte = 3 }", &o), Ok(()));
    assert_eq!(
        check("item_count = { gt = 5 }", &o),
        Err("item_count.gt: 3 <= 5".into())
    );
    assert_eq!(
        check("item_count = { lt = 3 }", &o),
        Err("item_count.lt: 3 >= 3".into())
    );
}

#[test]
fn payment_condition() {
    use switchyard_contract::PaymentStatus;
    assert_eq!(check(r#"payment = "paid""#, &order()), Ok(()));
    let refunded = order_with(|o| o.payment = PaymentStatus::PartiallyRefunded);
    assert_eq!(
        check(r#"payment = ["Partially_Refunded", "refunded"]"#, &refunded),
        Ok(())
    );
    assert_eq!(
        check(r#"payment = ["pending", "voided"]"#, &order()),
        Err("payment: paid not in [pending, voided]".into())
    );
    assert_eq!(
        check(r#"not = { payment = "paid" }"#, &order()),
        Err("not: inner condition matched (payment: paid in [paid])".into())
    );
}

#[test]
fn fulfillment_condition() {
    use switchyard_contract::Fulfillment;
    // An order that does not say who ships it is the merchant's.
    assert_eq!(order().fulfillment, Fulfillment::Merchant);
    assert_eq!(check(r#"fulfillment = "merchant""#, &order()), Ok(()));
    let fba = order_with(|o| o.fulfillment = Fulfillment::Channel);
    assert_eq!(check(r#"fulfillment = "CHANNEL""#, &fba), Ok(()));
    assert_eq!(
        check(r#"fulfillment = "channel""#, &order()),
        Err("fulfillment: merchant not in [channel]".into())
    );
}

#[test]
fn test_and_gift_conditions() {
    let test_order = order_with(|o| o.test = true);
    assert_eq!(check("test = true", &test_order), Ok(()));
    assert_eq!(check("test = false", &order()), Ok(()));
    assert_eq!(
        check("test = true", &order()),
        Err("test: false != true".into())
    );
    assert_eq!(
        check("not = { test = true }", &test_order),
        Err("not: inner condition matched (test: true)".into())
    );
    // A gift is an order the buyer marked as one, with or without a message.
    let gift = order_with(|o| o.gift = Some(switchyard_contract::Gift::default()));
    assert_eq!(check("gift = true", &gift), Ok(()));
    assert_eq!(
        check("gift = false", &gift),
        Err("gift: true != false".into())
    );
    assert_eq!(check("gift = false", &order()), Ok(()));
}

#[test]
fn conditions_in_one_table_all_hold_and_report_the_first_failure_in_file_order() {
    assert_eq!(
        check(r#"country = "US", channel = "shopify""#, &order()),
        Ok(())
    );
    // `total` comes first in the file (though not in alphabetical order).
    assert_eq!(
        check(r#"total = { gt = "1000" }, country = "CA""#, &order()),
        Err("total.gt: 44.60 <= 1000".into())
    );
    assert_eq!(
        check(r#"country = "CA", total = { gt = "1000" }"#, &order()),
        Err("country: US not in [CA]".into())
    );
}

#[test]
fn any_combinator() {
    assert_eq!(
        check(r#"any = [{ country = "CA" }, { region = "IL" }]"#, &order()),
        Ok(())
    );
    assert_eq!(
        check(
            r#"any = [{ country = "CA" }, { tag = "vip" }, { channel = "shopify", total = { gt = "50" } }]"#,
            &order()
        ),
        Err("any: no alternative matched (any[0].country: US not in [CA]; any[1].tag: none of [vip] in []; any[2].total.gt: 44.60 <= 50)".into())
    );
}

#[test]
fn all_combinator() {
    assert_eq!(
        check(r#"all = [{ country = "US" }, { sku = "MUG-*" }]"#, &order()),
        Ok(())
    );
    assert_eq!(
        check(r#"all = [{ country = "US" }, { sku = "TEE-*" }]"#, &order()),
        Err("all[1].sku: no line matches [TEE-*] (skus: [MUG-RED])".into())
    );
}

#[test]
fn not_combinator() {
    assert_eq!(check(r#"not = { country = "CA" }"#, &order()), Ok(()));
    assert_eq!(
        check(r#"not = { country = "US", channel = "shopify" }"#, &order()),
        Err(
            "not: inner condition matched (country: US in [US]; channel: shopify in [shopify])"
                .into()
        )
    );
    assert_eq!(
        check_tags(
            r#"not = { total = { gte = "10", lt = "100" }, email = "*@example.com", sku = "MUG-*", all_skus = "MUG-*", tag = "gift", item_count = { eq = 2 }, any = [{ status = "ready" }] }"#,
            &order(),
            &["gift"]
        ),
        Err(
            "not: inner condition matched (total: 44.60 >= 10, 44.60 < 100; \
             email: ada@example.com matches [*@example.com]; sku: a line matches [MUG-*]; \
             all_skus: every line matches [MUG-*]; tag: one of [gift] in [gift]; \
             item_count: 2 == 2; any)"
                .into()
        )
    );
    // Both must hold for the inner table to match.
    assert_eq!(
        check(r#"not = { country = "US", channel = "etsy" }"#, &order()),
        Ok(())
    );
}

#[test]
fn nested_combinators_report_the_key_path() {
    assert_eq!(
        check(
            r#"all = [{ any = [{ country = "CA" }, { not = { region = "IL" } }] }]"#,
            &order()
        ),
        Err("all[0].any: no alternative matched (all[0].any[0].country: US not in [CA]; all[0].any[1].not: inner condition matched (region: IL in [IL]))".into())
    );
    assert_eq!(
        check(
            r#"any = [{ all = [{ country = "US" }, { not = { all = [{ sku = "MUG-*" }] } }] }]"#,
            &order()
        ),
        Err(
            "any: no alternative matched (any[0].all[1].not: inner condition matched (all))".into()
        )
    );
    assert_eq!(
        check(
            r#"not = { channel = "etsy" }, any = [{ all = [{ any = [{ total = { lt = "1" } }] }] }]"#,
            &order()
        ),
        Err("any: no alternative matched (any[0].all[0].any: no alternative matched (any[0].all[0].any[0].total.lt: 44.60 >= 1))".into())
    );
}

// ------------------------------------------------------------------ actions

const ACTIONS: &str = r#"default_route = "east-wh"

[[rule]]
name = "tag-us"
when = { country = "US" }
then = { tag = ["us", "domestic"] }

[[rule]]
name = "route-west"
when = { channel = "shopify" }
then = { route = "west-3pl", hold = "first hold", priority = "high", tag = "us" }

[[rule]]
name = "route-east"
when = { sku = "MUG-*" }
then = { route = "east-wh", hold = "second hold", priority = "low", tag = "mugs" }

[[rule]]
name = "sees-earlier-tags"
when = { tag = "mugs" }
then = { tag = "saw-mugs" }

[[rule]]
name = "untag"
when = { tag = "domestic" }
then = { untag = ["domestic", "from-channel", "by-hand"] }

[[rule]]
name = "sees-untag"
when = { tag = ["domestic", "from-channel"] }
then = { tag = "not-untagged" }
"#;

#[test]
fn tags_accumulate_and_later_rules_see_them() {
    let e = eval_tags(
        &rules(ACTIONS),
        &order(),
        &["from-channel", "gift"],
        &["by-hand"],
    );
    assert_eq!(e.rule_tags, ["us", "mugs", "saw-mugs"]);
    assert_eq!(e.removed_tags, ["from-channel"]);
    assert_eq!(e.tags, ["gift", "by-hand", "us", "mugs", "saw-mugs"]);
    let matched: Vec<&str> = e
        .trace
        .iter()
        .filter(|t| t.matched)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        matched,
        [
            "tag-us",
            "route-west",
            "route-east",
            "sees-earlier-tags",
            "untag"
        ]
    );
    assert_eq!(
        e.trace[5].failed.as_deref(),
        Some("tag: none of [domestic, from-channel] in [gift, by-hand, us, mugs, saw-mugs]")
    );
}

#[test]
fn route_hold_and_priority_are_decided_by_the_first_rule_that_sets_them() {
    let e = eval(&rules(ACTIONS), &order());
    assert_eq!(e.route.as_deref(), Some("west-3pl"));
    assert_eq!(e.hold.as_deref(), Some("first hold"));
    assert_eq!(e.priority, Priority::High);
}

#[test]
fn a_rule_that_does_not_set_a_field_leaves_it_to_later_rules() {
    let set = rules(
        r#"[[rule]]
name = "tag-only"
when = { country = "US" }
then = { tag = "us" }

[[rule]]
name = "hold"
when = { country = "US" }
then = { hold = "check", priority = "low" }
"#,
    );
    let e = eval(&set, &order());
    assert_eq!(e.hold.as_deref(), Some("check"));
    assert_eq!(e.priority, Priority::Low);
}

#[test]
fn unset_fields_are_null_and_normal() {
    let e = eval(&one(r#"country = "CA""#), &order());
    assert_eq!(e.route, None);
    assert_eq!(e.hold, None);
    assert_eq!(e.priority, Priority::Normal);
    assert!(e.tags.is_empty());
    assert_eq!(
        eval(&RuleSet::empty(), &order()),
        Evaluation {
            rule_tags: vec![],
            removed_tags: vec![],
            tags: vec![],
            route: None,
            route_is_default: false,
            route_rule: None,
            hold: None,
            hold_rule: None,
            priority: Priority::Normal,
            line_routes: vec![],
            trace: vec![],
        }
    );
}

#[test]
fn default_route_applies_when_no_rule_routes() {
    let set = rules(
        r#"default_route = "east-wh"
[[rule]]
name = "r"
when = { country = "CA" }
then = { route = "west-3pl" }
"#,
    );
    assert_eq!(eval(&set, &order()).route.as_deref(), Some("east-wh"));
}

const STOPS: &str = r#"default_route = "east-wh"

[[rule]]
name = "first"
when = { country = "US" }
then = { tag = "a" }

[[rule]]
name = "stopper"
when = { channel = "shopify" }
then = { tag = "b", hold = "stopped here" }
stop = true

[[rule]]
name = "after"
when = { country = "US" }
then = { route = "west-3pl", tag = "c", priority = "high" }

[[rule]]
name = "after-too"
when = { status = "ready" }
then = { tag = "d" }
"#;

#[test]
fn stop_skips_later_rules_and_default_route_still_applies() {
    let e = eval(&rules(STOPS), &order());
    assert_eq!(e.tags, ["a", "b"]);
    assert_eq!(e.route.as_deref(), Some("east-wh"));
    assert_eq!(e.hold.as_deref(), Some("stopped here"));
    assert_eq!(e.priority, Priority::Normal);
    let trace: Vec<(&str, bool, Option<&str>)> = e
        .trace
        .iter()
        .map(|t| (t.name.as_str(), t.matched, t.failed.as_deref()))
        .collect();
    assert_eq!(
        trace,
        [
            ("first", true, None),
            ("stopper", true, None),
            ("after", false, Some("skipped: stopped by stopper")),
            ("after-too", false, Some("skipped: stopped by stopper")),
        ]
    );
}

#[test]
fn a_stop_rule_that_does_not_match_does_not_stop() {
    let etsy = order_with(|o| o.channel = switchyard_contract::Channel::Etsy);
    let e = eval(&rules(STOPS), &etsy);
    assert_eq!(e.route.as_deref(), Some("west-3pl"));
    assert_eq!(e.tags, ["a", "c", "d"]);
}

#[test]
fn a_rule_may_only_stop() {
    let set = rules(
        r#"default_route = "east-wh"
[[rule]]
name = "skip-cancelled"
when = { status = "cancelled" }
stop = true

[[rule]]
name = "route"
when = { country = "US" }
then = { route = "west-3pl" }
"#,
    );
    let cancelled = order_with(|o| o.status = switchyard_contract::OrderStatus::Cancelled);
    assert_eq!(eval(&set, &cancelled).route.as_deref(), Some("east-wh"));
    assert_eq!(eval(&set, &order()).route.as_deref(), Some("west-3pl"));
}

#[test]
fn untag_removes_channel_and_rule_tags_but_never_hand_set_ones() {
    let set = rules(
        r#"[[rule]]
name = "add"
when = { country = "US" }
then = { tag = ["rule-tag", "keep"] }

[[rule]]
name = "remove"
when = { country = "US" }
then = { untag = ["RULE-TAG", "channel-tag", "hand-set"] }
"#,
    );
    let e = eval_tags(&set, &order(), &["channel-tag", "other"], &["hand-set"]);
    assert_eq!(e.tags, ["other", "hand-set", "keep"]);
    assert_eq!(e.rule_tags, ["keep"]);
    assert_eq!(e.removed_tags, ["channel-tag"]);
}

#[test]
fn a_tag_removed_and_added_again_is_present() {
    let set = rules(
        r#"[[rule]]
name = "remove"
when = { country = "US" }
then = { untag = "x" }

[[rule]]
name = "add"
when = { country = "US" }
then = { tag = "x" }
"#,
    );
    let e = eval_tags(&set, &order(), &["x"], &[]);
    assert_eq!(e.tags, ["x"]);
    assert_eq!(e.rule_tags, ["x"]);
    assert!(e.removed_tags.is_empty());
}

#[test]
fn re_evaluation_never_loses_a_hand_set_tag() {
    let set = rules(
        r#"[[rule]]
name = "strip"
when = { country = "US" }
then = { untag = ["vip", "gift"], tag = "seen" }
"#,
    );
    let first = eval_tags(&set, &order(), &["vip", "gift"], &["vip"]);
    assert_eq!(first.tags, ["vip", "seen"]);
    // The store keeps the three origins apart and re-runs with the same
    // channel and hand-set tags: the result is the same, every time.
    for _ in 0..3 {
        let again = eval_tags(&set, &order(), &["vip", "gift"], &["vip"]);
        assert_eq!(again, first);
    }
}

#[test]
fn tags_are_deduplicated_ignoring_case_keeping_the_first_spelling() {
    let set = rules(
        r#"[[rule]]
name = "add"
when = { country = "US" }
then = { tag = ["VIP", "new", "NEW"] }
"#,
    );
    let e = eval_tags(&set, &order(), &["vip"], &["Vip"]);
    assert_eq!(e.tags, ["vip", "new"]);
    assert_eq!(e.rule_tags, ["VIP", "new"]);
}

#[test]
fn the_orders_own_tags_route_and_hold_are_ignored() {
    let set = one(r#"tag = "from-order""#);
    let o = order_with(|o| {
        o.tags = vec!["from-order".into()];
        o.route = Some("west-3pl".into());
        o.hold = Some("old".into());
        o.priority = Priority::High;
    });
    let e = eval(&set, &o);
    assert_eq!(e.route, None);
    assert_eq!(e.hold, None);
    assert_eq!(e.priority, Priority::Normal);
    assert_eq!(e.tags, Vec::<String>::new());
}

// -------------------------------------------------------------- line routes

/// Posters to the 3PL, everything else to the east warehouse.
const POSTERS_WEST: &str = r#"default_route = "east-wh"
[[rule]]
name = "posters"
when = { sku = "POSTER-*" }
then = { route_lines = { sku = "POSTER-*", route = "west-3pl" } }
"#;

/// An order with one line per (line id, sku).
fn order_lines(lines: &[(&str, Option<&str>)]) -> Order {
    order_with(|o| {
        o.lines = lines
            .iter()
            .map(|(id, sku)| switchyard_contract::Line {
                line_id: (*id).to_owned(),
                ..line(*sku, 1)
            })
            .collect();
    })
}

/// (line id, destination, rule) of every line a `route_lines` took.
fn taken(e: &Evaluation) -> Vec<(&str, &str, &str)> {
    e.line_routes
        .iter()
        .map(|l| (l.line_id.as_str(), l.route.as_str(), l.rule.as_str()))
        .collect()
}

#[test]
fn route_lines_sends_matching_lines_and_the_rest_follow_the_order() {
    let set = rules(POSTERS_WEST);
    // Globs ignore case, as in conditions.
    let o = order_lines(&[
        ("1", Some("MUG-RED")),
        ("2", Some("poster-a2")),
        ("3", None),
    ]);
    let e = eval(&set, &o);
    assert_eq!(taken(&e), [("2", "west-3pl", "posters")]);
    // The order's route is the rules' as ever; lines 1 and 3 follow it.
    assert_eq!(e.route.as_deref(), Some("east-wh"));
    assert!(e.route_is_default);
    assert_eq!(e.line_destination("1"), Some("east-wh"));
    assert_eq!(e.line_destination("2"), Some("west-3pl"));
    assert_eq!(e.line_destination("3"), Some("east-wh"));
    // An order without such a line: nothing taken.
    let mugs = order_lines(&[("1", Some("MUG-RED"))]);
    assert!(eval(&set, &mugs).line_routes.is_empty());
}

#[test]
fn the_first_rule_whose_route_lines_takes_a_line_decides_it() {
    let set = rules(
        r#"[[rule]]
name = "big-posters"
when = { sku = "POSTER-A1" }
then = { route_lines = [{ sku = "POSTER-A1", route = "east-wh" }, { sku = "POSTER-*", route = "west-3pl" }] }

[[rule]]
name = "all-posters"
when = { sku = "POSTER-*" }
then = { route_lines = { sku = ["POSTER-*", "FRAME-?"], route = "east-wh" }, route = "west-3pl" }

[[rule]]
name = "too-late"
when = { sku = "*" }
then = { route_lines = { sku = "*", route = "west-3pl" } }
stop = true

[[rule]]
name = "after-stop"
when = { channel = "shopify" }
then = { route_lines = { sku = "*", route = "east-wh" } }
"#,
    );
    let o = order_lines(&[
        ("1", Some("POSTER-A1")),
        ("2", Some("POSTER-A3")),
        ("3", Some("FRAME-1")),
        ("4", Some("MUG-RED")),
        ("5", None),
    ]);
    let e = eval(&set, &o);
    assert_eq!(
        taken(&e),
        [
            // The first entry of the first rule that takes it.
            ("1", "east-wh", "big-posters"),
            // The second entry of that rule takes what the first did not.
            ("2", "west-3pl", "big-posters"),
            ("3", "east-wh", "all-posters"),
            // Taken by the stopping rule; the rule after the stop never ran.
            ("4", "west-3pl", "too-late"),
        ]
    );
    // A line without a SKU matches no glob, not even "*": it follows the
    // order's route, which the second rule set.
    assert_eq!(e.route.as_deref(), Some("west-3pl"));
    assert_eq!(e.line_destination("5"), Some("west-3pl"));
    assert_eq!(e.route_rule.as_deref(), Some("all-posters"));
}

#[test]
fn lines_no_route_lines_takes_have_no_destination_without_an_order_route() {
    let set = rules(
        r#"[[rule]]
name = "posters"
when = { sku = "POSTER-*" }
then = { route_lines = { sku = "POSTER-*", route = "west-3pl" } }
"#,
    );
    let e = eval(
        &set,
        &order_lines(&[("1", Some("POSTER-A2")), ("2", Some("MUG-RED"))]),
    );
    assert_eq!(e.route, None);
    assert_eq!(e.line_destination("1"), Some("west-3pl"));
    assert_eq!(e.line_destination("2"), None);
}

#[test]
fn explain_shows_each_lines_destination_and_the_rule_behind_it() {
    let set = rules(POSTERS_WEST);
    let o = order_lines(&[("1", Some("MUG-RED")), ("2", Some("POSTER-A2"))]);
    let e = eval(&set, &o);
    let doc = explain_json(&o, &e, &Default::default());
    assert_eq!(
        doc["result"]["lines"],
        json!([
            { "line_id": "1", "sku": "MUG-RED", "route": "east-wh", "route_from": "order", "rule": null },
            { "line_id": "2", "sku": "POSTER-A2", "route": "west-3pl", "route_from": "route_lines", "rule": "posters" },
        ])
    );
    assert_eq!(
        explain_text(&o, &e, &Default::default()),
        "order shop-us:5551234567
  ✓ posters
result
  tags:     (none)
  route:    east-wh (default_route: no rule set a route)
  lines:
    1 MUG-RED x1 -> east-wh (the order's route)
    2 POSTER-A2 x1 -> west-3pl (route_lines of rule posters)
  hold:     (none)
  priority: normal
"
    );
}

#[test]
fn route_lines_errors_are_located() {
    let text = r#"[[rule]]
name = "a"
when = { sku = "POSTER-*" }
then = { route_lines = { sku = "POSTER-[A]", route = "wst-3pl" } }

[[rule]]
name = "b"
when = { sku = "POSTER-*" }
then = { route_lines = [{ sku = "POSTER-*" }, { route = "east-wh", skus = "X" }, "east-wh"] }

[[rule]]
name = "c"
when = { sku = "POSTER-*" }
then = { route_lines = "west-3pl" }

[[rule]]
name = "d"
when = { sku = "POSTER-*" }
then = { route_lines = [] }

[[rule]]
name = "e"
when = { sku = "POSTER-*" }
route_lines = { sku = "POSTER-*", route = "east-wh" }
then = { route_line = { sku = "POSTER-*", route = "east-wh" } }
"#;
    assert_eq!(
        errors(text),
        [
            "rules.toml:4:40: route_lines.sku: '[' in pattern \"POSTER-[A]\": character classes are not supported (list the alternatives instead, e.g. [\"A-1\", \"A-2\"])",
            "rules.toml:4:54: route_lines.route: unknown destination \"wst-3pl\" (did you mean \"west-3pl\"?)",
            "rules.toml:9:25: route_lines[0]: no `route` (the destination of those lines, e.g. { sku = \"POSTER-*\", route = \"print-partner\" })",
            "rules.toml:9:47: route_lines[1]: no `sku` (the SKU glob of the lines to route, e.g. { sku = \"POSTER-*\", route = \"print-partner\" })",
            "rules.toml:9:68: route_lines[1]: unknown key \"skus\" (did you mean \"sku\"?)",
            "rules.toml:9:82: route_lines[2]: expected a table such as { sku = \"POSTER-*\", route = \"print-partner\" }, found a string",
            "rules.toml:14:24: route_lines: expected a table such as { sku = \"POSTER-*\", route = \"print-partner\" }, or a list of them, found a string",
            "rules.toml:19:24: route_lines: empty list (give at least one table such as { sku = \"POSTER-*\", route = \"print-partner\" })",
            "rules.toml:24:1: unknown rule key \"route_lines\" (did you mean to put it in `then`?)",
            "rules.toml:25:10: unknown action \"route_line\" (did you mean \"route_lines\"?)",
        ]
    );
}

// ------------------------------------------------------------------ explain

#[test]
fn explain_json_has_the_spec_shape() {
    let e = eval(&rules(STOPS), &order());
    assert_eq!(
        explain_json(&order(), &e, &Default::default()),
        json!({
            "order": "shop-us:5551234567",
            "rules": [
                { "name": "first", "matched": true, "failed": null },
                { "name": "stopper", "matched": true, "failed": null },
                { "name": "after", "matched": false, "failed": "skipped: stopped by stopper" },
                { "name": "after-too", "matched": false, "failed": "skipped: stopped by stopper" },
            ],
            "result": { "tags": ["a", "b"], "route": "east-wh", "route_from": "default_route", "hold": "stopped here", "hold_from": "rule", "rules_hold": "stopped here", "priority": "normal",
                "lines": [ { "line_id": "111", "sku": "MUG-RED", "route": "east-wh", "route_from": "order", "rule": null } ] }
        })
    );
    let none = eval(&one(r#"country = "CA""#), &order());
    assert_eq!(
        explain_json(&order(), &none, &Default::default()),
        json!({
            "order": "shop-us:5551234567",
            "rules": [ { "name": "r", "matched": false, "failed": "country: US not in [CA]" } ],
            "result": { "tags": [], "route": null, "route_from": null, "hold": null, "hold_from": null, "rules_hold": null, "priority": "normal",
                "lines": [ { "line_id": "111", "sku": "MUG-RED", "route": null, "route_from": "order", "rule": null } ] }
        })
    );
}

#[test]
fn explain_text_is_one_line_per_rule_then_the_result() {
    let set = rules(
        r#"default_route = "east-wh"
[[rule]]
name = "ca-only"
when = { country = "CA" }
then = { route = "west-3pl" }

[[rule]]
name = "stop-us"
when = { country = "US" }
then = { tag = "us", untag = "old" }
stop = true

[[rule]]
name = "never"
when = { country = "FR" }
then = { tag = "fr" }
"#,
    );
    let e = eval_tags(&set, &order(), &["old", "gift"], &[]);
    assert_eq!(
        explain_text(&order(), &e, &Default::default()),
        "order shop-us:5551234567
  ✗ ca-only: country: US not in [CA]
  ✓ stop-us
  - never: skipped: stopped by stop-us
result
  tags:     gift, us
    added by rules: us
    removed from the channel's: old
  route:    east-wh (default_route: no rule set a route)
  hold:     (none)
  priority: normal
"
    );
}

#[test]
fn explain_text_names_the_rule_that_set_the_route() {
    // route-west sets the route; route-east matches too, but comes later.
    let e = eval(&rules(ACTIONS), &order());
    let text = explain_text(&order(), &e, &Default::default());
    assert!(
        text.contains("\n  route:    west-3pl (rule route-west)\n"),
        "{text}"
    );
}

// --------------------------------------------------------------- validation

const VALID_RULE: &str = "when = { country = \"US\" }\nthen = { tag = \"x\" }\n";

#[test]
fn toml_syntax_errors_have_a_location() {
    assert_eq!(
        errors("[[rule]]\nname = \"a\nwhen = { country = \"US\" }\n"),
        ["rules.toml:2:10: invalid TOML: invalid basic string, expected `\"`"]
    );
    assert_eq!(
        errors(&format!(
            "[[rule]]\nname = \"a\"\nname = \"b\"\n{VALID_RULE}"
        )),
        ["rules.toml:3:1: invalid TOML: duplicate key \"name\""]
    );
}

/// One missing `}` gave 55 cascading "invalid TOML" lines with the real
/// cause last; now it is one error, at the brace that is never closed.
#[test]
fn a_missing_brace_is_one_error_at_the_unclosed_table() {
    let rules = std::fs::read_to_string(root().join("config/rules.toml")).unwrap();
    let broken = rules.replacen(
        "then = { hold = \"awaiting payment\", tag = \"unpaid\" }",
        "then = { hold = \"awaiting payment\", tag = \"unpaid\" ",
        1,
    );
    assert_ne!(
        broken, rules,
        "the example rules changed: pick another line"
    );
    let line = broken
        .lines()
        .position(|l| l.starts_with("then = { hold = \"awaiting payment\""))
        .unwrap()
        + 1;
    let found = errors(&broken);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(&format!(
            "rules.toml:{line}:8: invalid TOML: this inline table is not closed: add `}}`"
        )),
        "{found:?}"
    );
}

#[test]
fn unknown_keys_suggest_the_nearest_valid_one() {
    assert_eq!(
        errors(&format!(
            "rules = 1\n[[rule]]\nname = \"a\"\nstpo = true\n{VALID_RULE}"
        )),
        [
            "rules.toml:1:1: unknown top-level key \"rules\" (did you mean \"rule\"?)",
            "rules.toml:4:1: unknown rule key \"stpo\" (did you mean \"stop\"?)",
        ]
    );
    assert_eq!(
        errors(
            "[[rule]]\nname = \"a\"\nwhen = { contry = \"US\", weight = 3 }\nthen = { hodl = \"x\", taggs = \"y\" }\n"
        ),
        [
            "rules.toml:3:10: unknown condition \"contry\" (did you mean \"country\"?)",
            "rules.toml:3:25: unknown condition \"weight\" (expected one of: channel, account, status, currency, country, region, postal_code, email, shipping_method, sku, all_skus, tag, total, item_count, payment, fulfillment, test, gift, any, all, not)",
            "rules.toml:4:10: unknown action \"hodl\" (did you mean \"hold\"?)",
            "rules.toml:4:22: unknown action \"taggs\" (did you mean \"tag\"?)",
        ]
    );
    assert_eq!(
        errors(
            "[[rule]]\nname = \"a\"\ncountry = \"US\"\nwhen = { route = \"east-wh\" }\nthen = { sku = \"x\" }\n"
        ),
        [
            "rules.toml:3:1: unknown rule key \"country\" (did you mean to put it in `when`?)",
            "rules.toml:4:10: unknown condition \"route\" (\"route\" is an action: put it in `then`)",
            "rules.toml:5:10: unknown action \"sku\" (\"sku\" is a condition: put it in `when`)",
        ]
    );
    assert_eq!(
        errors(
            "[[rule]]\nname = \"a\"\nwhen = { total = { gteq = \"5\" } }\nthen = { tag = \"x\" }\n"
        ),
        ["rules.toml:3:20: unknown comparison \"gteq\" (did you mean \"gte\"?)"]
    );
}

#[test]
fn rule_must_be_an_array_of_tables() {
    assert_eq!(
        errors(&format!("[rule]\nname = \"a\"\n{VALID_RULE}")),
        ["rules.toml:1:2: rule: expected a list of rules (write [[rule]], not [rule])"]
    );
    assert_eq!(
        errors("rule = \"x\"\n"),
        ["rules.toml:1:8: rule: expected a list of rules ([[rule]] tables), found a string"]
    );
}

#[test]
fn names_are_required_and_unique() {
    assert_eq!(
        errors(&format!(
            "[[rule]]\n{VALID_RULE}\n[[rule]]\nname = \" \"\n{VALID_RULE}[[rule]]\nname = 7\n{VALID_RULE}"
        )),
        [
            "rules.toml:1:1: rule has no name (add name = \"...\")",
            "rules.toml:6:8: name: empty rule name",
            "rules.toml:10:8: name: expected a string, found an integer",
        ]
    );
    assert_eq!(
        errors(&format!(
            "[[rule]]\nname = \"a\"\n{VALID_RULE}\n[[rule]]\nname = \"b\"\n{VALID_RULE}\n[[rule]]\nname = \"a\"\n{VALID_RULE}"
        )),
        ["rules.toml:12:8: duplicate rule name \"a\" (first used at line 2)"]
    );
}

#[test]
fn when_and_then_are_required_and_typed() {
    let text = r#"[[rule]]
name = "no-when"
then = { tag = "x" }
[[rule]]
name = "empty-when"
when = {}
then = { tag = "x" }
[[rule]]
name = "no-then"
when = { country = "US" }
[[rule]]
name = "empty-then"
when = { country = "US" }
then = {}
[[rule]]
name = "bad-types"
when = "country = US"
then = ["tag"]
stop = "yes"
"#;
    assert_eq!(
        errors(text),
        [
            "rules.toml:1:1: rule \"no-when\" has no `when` (a rule needs at least one condition)",
            "rules.toml:6:8: when: empty condition table (a rule needs at least one condition)",
            "rules.toml:8:1: rule \"no-then\" has no `then` (add an action, or stop = true)",
            "rules.toml:14:8: rule \"empty-then\" has an empty `then` (add an action, or stop = true)",
            "rules.toml:17:8: when: expected a table of conditions, found a string",
            "rules.toml:18:8: then: expected a table of actions, found a list",
            "rules.toml:19:8: stop: expected true or false, found a string",
        ]
    );
}

#[test]
fn enum_and_code_values_are_checked() {
    let text = r#"[[rule]]
name = "values"
when = { channel = ["shopify", "shopfy"], status = "shiped", currency = "US$", country = ["USA"] }
then = { tag = "x" }
[[rule]]
name = "nested"
when = { any = [{ status = "open" }, { not = { country = "Germany" } }] }
then = { tag = "x" }
"#;
    assert_eq!(
        errors(text),
        [
            "rules.toml:3:32: channel: unknown channel \"shopfy\" (did you mean \"shopify\"?)",
            "rules.toml:3:52: status: unknown status \"shiped\" (did you mean \"shipped\"?)",
            "rules.toml:3:73: currency: invalid currency \"US$\" (expected a three-letter ISO 4217 code such as \"USD\")",
            "rules.toml:3:91: country: invalid country \"USA\" (expected a two-letter ISO 3166-1 code such as \"US\")",
            "rules.toml:7:28: any[0].status: unknown status \"open\" (expected one of: pending, ready, partially_shipped, shipped, cancelled)",
            "rules.toml:7:58: any[1].not.country: invalid country \"Germany\" (expected a two-letter ISO 3166-1 code such as \"US\")",
        ]
    );
}

#[test]
fn payment_fulfillment_test_and_gift_values_are_checked() {
    let text = r#"[[rule]]
name = "values"
when = { payment = ["paid", "refundd"], fulfillment = "amazon", test = "true", gift = 1 }
then = { tag = "x" }
[[rule]]
name = "nested"
when = { any = [{ payment = "open" }, { not = { gift = "yes" } }], test = [] }
then = { tag = "x" }
"#;
    assert_eq!(
        errors(text),
        [
            "rules.toml:3:29: payment: unknown payment \"refundd\" (did you mean \"refunded\"?)",
            "rules.toml:3:55: fulfillment: unknown fulfillment \"amazon\" (expected one of: merchant, channel)",
            "rules.toml:3:72: test: expected true or false, found a string (write true, without quotes)",
            "rules.toml:3:87: gift: expected true or false, found an integer",
            "rules.toml:7:29: any[0].payment: unknown payment \"open\" (expected one of: pending, paid, partially_refunded, refunded, voided)",
            "rules.toml:7:56: any[1].not.gift: expected true or false, found a string",
            "rules.toml:7:75: test: expected true or false, found a list",
        ]
    );
}

#[test]
fn value_lists_and_types_are_checked() {
    let text = r#"[[rule]]
name = "lists"
when = { tag = [], account = ["a", 3], region = 5, email = "" }
then = { tag = "", untag = [1] }
"#;
    assert_eq!(
        errors(text),
        [
            "rules.toml:3:16: tag: empty list (give at least one value)",
            "rules.toml:3:36: account: expected a string, found an integer",
            "rules.toml:3:49: region: expected a string or a list of strings, found an integer",
            "rules.toml:3:60: email: empty pattern (use \"*\" to match any value)",
            "rules.toml:4:16: tag: empty tag",
            "rules.toml:4:29: untag: expected a string, found an integer",
        ]
    );
}

#[test]
fn malformed_globs_point_at_the_offending_character() {
    let text = r#"[[rule]]
name = "globs"
when = { sku = ["MUG-[RB]", "{A,B}"], postal_code = 'a\b', shipping_method = "x\u005D" }
then = { tag = "x" }
"#;
    assert_eq!(
        errors(text),
        [
            "rules.toml:3:22: sku: '[' in pattern \"MUG-[RB]\": character classes are not supported (list the alternatives instead, e.g. [\"A-1\", \"A-2\"])",
            "rules.toml:3:30: sku: '{' in pattern \"{A,B}\": braces are not supported (list the alternatives instead, e.g. [\"MUG-RED\", \"MUG-BLUE\"])",
            "rules.toml:3:55: postal_code: '\\\\' in pattern \"a\\\\b\": escapes are not supported (only * and ? are special)",
            // An escaped string: the position of the value, not of the character.
            "rules.toml:3:78: shipping_method: ']' in pattern \"x]\": character classes are not supported (list the alternatives instead, e.g. [\"A-1\", \"A-2\"])",
        ]
    );
}

#[test]
fn malformed_amounts_and_comparisons() {
    let text = r#"[[rule]]
name = "amounts"
when = { total = { gte = "5OO", lt = 10.5, eq = true } }
then = { tag = "x" }
[[rule]]
name = "counts"
when = { item_count = { gt = "3", lt = -1 }, total = "500" }
then = { tag = "x" }
[[rule]]
name = "empty"
when = { total = {}, item_count = 3 }
then = { tag = "x" }
"#;
    assert_eq!(
        errors(text),
        [
            "rules.toml:3:26: total.gte: invalid amount \"5OO\" (expected a decimal such as \"500.00\")",
            "rules.toml:3:38: total.lt: write amounts as strings, not floats (e.g. \"10.5\")",
            "rules.toml:3:49: total.eq: expected an amount such as \"500.00\", found a boolean",
            "rules.toml:7:30: item_count.gt: expected a whole number, found a string (write 3, without quotes)",
            "rules.toml:7:40: item_count.lt: expected a whole number of 0 or more",
            "rules.toml:7:54: total: expected a table of comparisons such as { gte = \"500.00\" }, found a string",
            "rules.toml:11:18: total: empty comparison table (use gt, gte, lt, lte or eq)",
            "rules.toml:11:35: item_count: expected a table of comparisons such as { gt = 10 }, found an integer",
        ]
    );
}

#[test]
fn malformed_combinators() {
    let text = r#"[[rule]]
name = "a"
when = { any = [], all = [1], not = [] }
then = { tag = "x" }
[[rule]]
name = "b"
when = { any = {}, all = [{}], not = {} }
then = { tag = "x" }
"#;
    assert_eq!(
        errors(text),
        [
            "rules.toml:3:16: any: empty list (give at least one condition table)",
            "rules.toml:3:27: all[0]: expected a table of conditions, found an integer",
            "rules.toml:3:37: not: expected one table of conditions, found a list (for several, write not = { any = [ ... ] })",
            "rules.toml:7:16: any: expected a list of condition tables such as [ { country = \"US\" }, { tag = \"vip\" } ], found a table",
            "rules.toml:7:27: all[0]: empty condition table",
            "rules.toml:7:38: not: empty condition table",
        ]
    );
}

#[test]
fn actions_are_checked() {
    let text = r#"default_route = "nowhere"
[[rule]]
name = "a"
when = { country = "US" }
then = { route = "east-wh2", hold = "", priority = "urgent" }
[[rule]]
name = "b"
when = { country = "US" }
then = { route = 5, hold = true, priority = "hgh" }
"#;
    assert_eq!(
        errors(text),
        [
            "rules.toml:1:17: default_route: unknown destination \"nowhere\" (expected one of: east-wh, west-3pl)",
            "rules.toml:5:18: route: unknown destination \"east-wh2\" (did you mean \"east-wh\"?)",
            "rules.toml:5:37: hold: empty reason (say why, e.g. hold = \"manual review\")",
            "rules.toml:5:52: unknown priority \"urgent\" (expected one of: low, normal, high)",
            "rules.toml:9:18: route: expected a destination id, found an integer",
            "rules.toml:9:28: hold: expected a reason such as \"manual review\", found a boolean",
            "rules.toml:9:45: unknown priority \"hgh\" (did you mean \"high\"?)",
        ]
    );
    // Priority names ignore case.
    let set = rules(
        "[[rule]]\nname = \"a\"\nwhen = { country = \"US\" }\nthen = { priority = \"High\" }\n",
    );
    assert_eq!(eval(&set, &order()).priority, Priority::High);
}

#[test]
fn destinations_come_from_the_caller() {
    let text = "default_route = \"toronto-3pl\"\n";
    assert!(parse_rules(Path::new("r.toml"), text, &["toronto-3pl".to_owned()]).is_ok());
    let diags = parse_rules(Path::new("r.toml"), text, &[]).unwrap_err();
    assert_eq!(
        render(&diags),
        "r.toml:1:17: default_route: unknown destination \"toronto-3pl\" (the daemon config defines no destinations)"
    );
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let text = r#"default_route = "east"

[[rule]]
name = "review"
when = { total = { gte = "5OO" } }
then = { hold = "manual review" }

[[rule]]
name = "canada"
when = { contry = ["CA"], channel = ["shopify", "etsy"] }
then = { route = "toronto-3pl", tag = ["canada"] }
stop = true

[[rule]]
name = "review"
when = {}
then = { tag = "x" }
"#;
    let diags = parse_rules(Path::new("config/rules.toml"), text, &destinations()).unwrap_err();
    assert!(diags.iter().all(|d| d.is_error()));
    assert_eq!(
        render(&diags),
        r#"config/rules.toml:1:17: default_route: unknown destination "east" (did you mean "east-wh"?)
config/rules.toml:5:26: total.gte: invalid amount "5OO" (expected a decimal such as "500.00")
config/rules.toml:10:10: unknown condition "contry" (did you mean "country"?)
config/rules.toml:11:18: route: unknown destination "toronto-3pl" (expected one of: east-wh, west-3pl)
config/rules.toml:15:8: duplicate rule name "review" (first used at line 4)
config/rules.toml:16:8: when: empty condition table (a rule needs at least one condition)"#
    );
    let d = &diags[0];
    assert_eq!((d.line, d.column), (1, 17));
    assert_eq!(d.file, Path::new("config/rules.toml"));
}

#[test]
fn load_rules_reads_the_file_or_says_why_not() {
    let missing = root().join("tests/rules/no-such-rules.toml");
    let diags = load_rules(&missing, &destinations()).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0].to_string().starts_with(&format!(
            "{}: cannot read the rules file: no such file",
            missing.display()
        )),
        "{}",
        diags[0]
    );
}

// ----------------------------------------------------------------- warnings

#[test]
fn a_rule_caught_by_an_earlier_stop_rule_is_a_warning() {
    let text = r#"[[rule]]
name = "north-america"
when = { country = ["US", "CA"] }
then = { tag = "na" }
stop = true

[[rule]]
name = "us-mugs"
when = { country = "US", sku = "MUG-*" }
then = { route = "west-3pl" }
"#;
    assert_eq!(
        warnings(text),
        [
            "rules.toml:7:1: warning: rule \"us-mugs\" can never match: every order it matches is caught first by rule \"north-america\" (line 1), which has stop = true"
        ]
    );
}

#[test]
fn unreachable_detection_understands_ranges_globs_and_combinators() {
    let pairs = [
        // identical conditions
        (r#"channel = "ebay""#, r#"channel = "ebay""#),
        // a narrower range
        (
            r#"total = { gte = "500" }"#,
            r#"total = { gt = "1000.00" }"#,
        ),
        (
            r#"item_count = { gt = 5 }"#,
            r#"item_count = { gte = 6, lt = 10 }"#,
        ),
        // a narrower glob, and all_skus implying sku
        (
            r#"sku = "FURN-*""#,
            r#"sku = ["furn-sofa-*", "FURN-CHAIR"]"#,
        ),
        (r#"sku = "FURN-*""#, r#"all_skus = "FURN-*""#),
        (r#"email = "*.ru""#, r#"email = "*@mail.ru""#),
        // an earlier `any` with an implied alternative
        (
            r#"any = [{ country = "CA" }, { region = "QC" }]"#,
            r#"country = "CA", channel = "etsy""#,
        ),
        // a later `any` whose every alternative is implied
        (
            r#"channel = ["ebay", "amazon"]"#,
            r#"any = [{ channel = "ebay" }, { channel = "amazon", country = "US" }]"#,
        ),
        // `all` is a conjunction
        (
            r#"all = [{ country = "US" }, { status = "ready" }]"#,
            r#"status = "ready", country = "US", region = "IL""#,
        ),
        // payment and fulfillment lists, test and gift flags
        (
            r#"payment = ["refunded", "voided"]"#,
            r#"payment = "voided", channel = "ebay""#,
        ),
        (r#"fulfillment = "channel""#, r#"fulfillment = "channel""#),
        (r#"test = true"#, r#"test = true, gift = true"#),
        // not A implies not B when B implies A
        (
            r#"not = { country = ["US", "CA"] }"#,
            r#"not = { country = ["US", "CA", "MX"] }"#,
        ),
    ];
    for (earlier, later) in pairs {
        let text = format!(
            "[[rule]]\nname = \"earlier\"\nwhen = {{ {earlier} }}\nthen = {{ tag = \"x\" }}\nstop = true\n\n[[rule]]\nname = \"later\"\nwhen = {{ {later} }}\nthen = {{ tag = \"y\" }}\n"
        );
        assert_eq!(
            warnings(&text),
            [
                "rules.toml:7:1: warning: rule \"later\" can never match: every order it matches is caught first by rule \"earlier\" (line 1), which has stop = true"
            ],
            "earlier {earlier} / later {later}"
        );
    }
}

#[test]
fn reachable_rules_get_no_warning() {
    let pairs = [
        // the later rule is broader
        (r#"country = "US", sku = "MUG-*""#, r#"country = "US""#),
        (r#"total = { gt = "500" }"#, r#"total = { gte = "500" }"#),
        (r#"sku = "FURN-SOFA-*""#, r#"sku = "FURN-*""#),
        // overlapping globs are not provably nested
        (r#"email = "*@a*""#, r#"email = "*@ab*""#),
        // sku (some line) does not imply all_skus (every line)
        (r#"all_skus = "FURN-*""#, r#"sku = "FURN-*""#),
        // a flag does not imply its opposite; a list does not imply a longer one
        (r#"test = true"#, r#"test = false"#),
        (r#"gift = false"#, r#"gift = true"#),
        (r#"payment = "paid""#, r#"payment = ["paid", "pending"]"#),
        (r#"fulfillment = "merchant""#, r#"fulfillment = "channel""#),
        // tags change between rules: never treated as implied
        (r#"tag = "vip""#, r#"tag = "vip""#),
        (r#"not = { tag = "vip" }"#, r#"not = { tag = "vip" }"#),
        // every alternative of an earlier `all` must be implied
        (
            r#"all = [{ country = "US" }, { status = "ready" }]"#,
            r#"country = "US""#,
        ),
    ];
    for (earlier, later) in pairs {
        let text = format!(
            "[[rule]]\nname = \"earlier\"\nwhen = {{ {earlier} }}\nthen = {{ tag = \"x\" }}\nstop = true\n\n[[rule]]\nname = \"later\"\nwhen = {{ {later} }}\nthen = {{ tag = \"y\" }}\n"
        );
        assert_eq!(
            warnings(&text),
            Vec::<String>::new(),
            "earlier {earlier} / later {later}"
        );
    }
    // Without `stop`, a broader earlier rule does not hide a later one.
    let text = "[[rule]]\nname = \"a\"\nwhen = { country = \"US\" }\nthen = { tag = \"x\" }\n[[rule]]\nname = \"b\"\nwhen = { country = \"US\" }\nthen = { tag = \"y\" }\n";
    assert_eq!(warnings(text), Vec::<String>::new());
}

#[test]
fn contradictory_comparisons_are_a_warning() {
    let text = r#"[[rule]]
name = "never"
when = { total = { gt = "500", lt = "100" } }
then = { tag = "x" }

[[rule]]
name = "never-either"
when = { any = [{ item_count = { gt = 3, lt = 4 } }] }
then = { tag = "x" }
"#;
    assert_eq!(
        warnings(text),
        [
            "rules.toml:1:1: warning: rule \"never\" can never match: its total comparisons can never all hold",
            "rules.toml:6:1: warning: rule \"never-either\" can never match: its item_count comparisons can never all hold",
        ]
    );
}

// ------------------------------------------------------- the example rules

fn example_rules() -> RuleSet {
    match load_rules(&root().join("config/rules.toml"), &destinations()) {
        Ok((set, warnings)) => {
            assert!(warnings.is_empty(), "{}", render(&warnings));
            set
        }
        Err(diags) => panic!("config/rules.toml rejected:\n{}", render(&diags)),
    }
}

#[test]
fn the_example_rules_are_valid_and_realistic() {
    let set = example_rules();
    assert!(set.len() >= 10, "only {} rules", set.len());
    assert_eq!(set.default_route(), Some("east-wh"));
    // It uses every action.
    let a = |f: fn(&switchyard::rules::Actions) -> bool| set.rules().iter().any(|r| f(r.actions()));
    assert!(a(|x| !x.tag.is_empty()));
    assert!(a(|x| !x.untag.is_empty()));
    assert!(a(|x| x.route.is_some()));
    assert!(a(|x| x.hold.is_some()));
    assert!(a(|x| x.priority.is_some()));
    assert!(a(|x| !x.route_lines.is_empty()));
    assert!(set.rules().iter().any(|r| r.stops()));
    // And every condition key and combinator.
    let text = std::fs::read_to_string(root().join("config/rules.toml")).unwrap();
    for key in switchyard::rules::CONDITION_KEYS {
        assert!(
            text.contains(&format!("{key} = ")),
            "config/rules.toml does not use {key}"
        );
    }
}

// ------------------------------------------------------- rule test files

#[test]
fn the_projects_rule_cases_pass() {
    let set = example_rules();
    let files = collect_test_files(&[root().join("tests/rules")]).unwrap();
    assert!(files.len() >= 12, "only {} case files", files.len());
    let mut lines = Vec::new();
    let mut failed = 0;
    let mut cases = 0;
    for file in &files {
        let results = run_test_file(&set, file).unwrap_or_else(|e| panic!("{e}"));
        for r in &results {
            cases += 1;
            if !r.passed {
                failed += 1;
            }
            lines.push(format_case(file.strip_prefix(root()).unwrap(), r));
        }
    }
    assert_eq!(failed, 0, "\n{}", lines.join("\n"));
    assert!(cases >= 40, "only {cases} cases");
    assert!(lines.iter().any(|l| l
        == "PASS tests/rules/08-stop.toml: digital-only orders stop, held, on the default route"));
}

const SMALL_RULES: &str = r#"default_route = "east-wh"
[[rule]]
name = "ca-only"
when = { country = "CA" }
then = { route = "west-3pl" }

[[rule]]
name = "us"
when = { country = "US" }
then = { tag = "us" }
"#;

fn case_file(dir: &Path, text: &str) -> PathBuf {
    std::fs::copy(
        root().join("tests/rules/orders/us-standard.json"),
        dir.join("order.json"),
    )
    .unwrap();
    let path = dir.join("case.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn failing_cases_say_what_was_expected_and_what_came() {
    let dir = tempfile::tempdir().unwrap();
    let path = case_file(
        dir.path(),
        r#"order = "order.json"

[[case]]
name = "everything wrong"
[case.expect]
route = "west-3pl"
hold = "review"
priority = "high"
tags = ["ca", "us"]
tags_include = ["ca"]
tags_exclude = ["us"]
fired = ["ca-only"]
not_fired = ["us", "ca-onyl"]

[[case]]
name = "nulls"
patch = { shipping_address = { country = "CA" } }
[case.expect]
route = false
hold = true

[[case]]
name = "nothing checked"
[case.expect]

[[case]]
name = "right"
[case.expect]
route = "east-wh"
hold = false
priority = "normal"
tags = ["us"]
"#,
    );
    let set = rules(SMALL_RULES);
    let results = run_test_file(&set, &path).unwrap();
    let shown = Path::new("case.toml");
    let lines: Vec<String> = results.iter().map(|r| format_case(shown, r)).collect();
    assert_eq!(
        lines,
        [
            "FAIL case.toml: everything wrong: expected route west-3pl, got east-wh; \
             expected hold \"review\", got null; expected priority high, got normal; \
             expected tags [ca, us], got [us] (missing ca); expected tag ca, got [us]; \
             expected no tag us, got [us]; \
             expected rule ca-only to fire, but it did not (country: US not in [CA]); \
             rule us fired, but is listed in not_fired; \
             not_fired: unknown rule \"ca-onyl\" (did you mean \"ca-only\"?)",
            "FAIL case.toml: nulls: expected no route, got west-3pl; expected a hold, got null",
            "FAIL case.toml: nothing checked: the case checks nothing (add expectations under [case.expect])",
            "PASS case.toml: right",
        ]
    );
    assert_eq!(
        results[3],
        CaseResult {
            name: "right".into(),
            passed: true,
            failures: vec![]
        }
    );
}

#[test]
fn line_route_expectations_name_the_line_and_both_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let path = case_file(
        dir.path(),
        r#"order = "order.json"

[[case]]
name = "wrong"
patch = { lines = [{ sku = "MUG-RED" }, { sku = "POSTER-A2" }] }
[case.expect]
line_routes = { MUG-RED = "west-3pl", POSTER-A2 = false, VASE-1 = "east-wh", TEE = 3 }

[[case]]
name = "right"
patch = { lines = [{ sku = "MUG-RED" }, { sku = "POSTER-A2" }] }
[case.expect]
line_routes = { MUG-RED = "east-wh", POSTER-A2 = "west-3pl" }
"#,
    );
    let set = rules(POSTERS_WEST);
    let results = run_test_file(&set, &path).unwrap();
    let lines: Vec<String> = results
        .iter()
        .map(|r| format_case(Path::new("case.toml"), r))
        .collect();
    assert_eq!(
        lines,
        [
            "FAIL case.toml: wrong: expected line 1 (MUG-RED) to go to west-3pl, got east-wh; \
             expected line 2 (POSTER-A2) to have no destination, got west-3pl; \
             expect.line_routes.TEE: expected a destination id, or false for none; \
             expect.line_routes: the order has no line with sku VASE-1 (its skus: [MUG-RED, POSTER-A2])",
            "PASS case.toml: right",
        ]
    );
}

#[test]
fn case_inputs_inline_orders_patches_and_unset() {
    let dir = tempfile::tempdir().unwrap();
    // TOML has no null: an inline order leaves out what is null.
    fn strip_nulls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(strip_nulls);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
    let mut order_json: serde_json::Value = serde_json::to_value(order()).unwrap();
    strip_nulls(&mut order_json);
    let inline = toml::to_string(&json!({ "case": [{
        "name": "inline order",
        "order": order_json,
        "expect": { "tags": ["us"] },
    }]}))
    .unwrap();
    std::fs::write(dir.path().join("inline.toml"), inline).unwrap();
    let set = rules(SMALL_RULES);
    let r = run_test_file(&set, &dir.path().join("inline.toml")).unwrap();
    assert!(r[0].passed, "{:?}", r[0]);

    let path = case_file(
        dir.path(),
        r#"order = "order.json"
[[case]]
name = "lines with defaults"
patch = { lines = [{ sku = "A", quantity = 3, unit_price = "1.50" }, { title = "no sku" }] }
unset = ["shipping_address.country"]
[case.expect]
route = "east-wh"
tags = []

[[case]]
name = "a broken order fails only its case"
unset = ["id"]
[case.expect]
route = "east-wh"

[[case]]
name = "unset of a missing field"
unset = ["customer.fax"]
[case.expect]
route = "east-wh"

[[case]]
name = "missing order file"
order = "nope.json"
[case.expect]
route = "east-wh"
"#,
    );
    let r = run_test_file(&set, &path).unwrap();
    assert!(r[0].passed, "{:?}", r[0]);
    assert!(!r[1].passed);
    assert!(
        r[1].failures[0].starts_with("invalid order (order.json after patch): "),
        "{:?}",
        r[1]
    );
    assert_eq!(
        r[2].failures,
        ["unset \"customer.fax\": the order has no field \"fax\""]
    );
    assert!(
        r[3].failures[0].starts_with("cannot read order "),
        "{:?}",
        r[3]
    );
}

#[test]
fn a_malformed_test_file_is_an_error_with_a_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = case_file(
        dir.path(),
        "order = \"order.json\"\n[[case]]\nname = \"x\"\nexpcet = {}\n",
    );
    let err = run_test_file(&rules(SMALL_RULES), &path).unwrap_err();
    assert!(
        err.starts_with(&format!("{}:4:1: unknown field `expcet`", path.display())),
        "{err}"
    );
    let path = case_file(dir.path(), "order = \"order.json\"\n");
    let err = run_test_file(&rules(SMALL_RULES), &path).unwrap_err();
    assert_eq!(
        err,
        format!("{}: no test cases (add a [[case]] table)", path.display())
    );
    assert!(collect_test_files(&[dir.path().join("nope")]).is_err());
}
