//! Property tests of everything a stranger can send the Shopify connector:
//! webhook deliveries (`verify_webhook` + `parse_webhook`) of arbitrary
//! bytes, arbitrary JSON and mutations of the recorded `orders/*` bodies, and
//! the GraphQL poll normalizer on mutations of the recorded page nodes.
//!
//! What must hold, whatever comes in: no panic; a refusal is an `auth` error
//! (signature) or a `decode` error that says what is wrong; an order that is
//! accepted keeps its money as `Decimal` (line totals are exact products,
//! canonical JSON prints amounts as strings and reads back equal).
//!
//! The inputs found to break the normalizer are kept as plain tests at the
//! end.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use chrono::Utc;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use switchyard_contract::{
    ConnectorError, NormalizedOrder, Order, Secret, WebhookOutcome, WebhookRequest,
};
use switchyard_shopify::webhook::{ORDER_TOPICS, sign};
use switchyard_shopify::{
    ShopifyConfig, ShopifyConnector, normalize_graphql_order, normalize_rest_order,
};

const ACCOUNT: &str = "shop-us";
const SECRET: &str = "fixture-webhook-secret";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/shopify")
}

/// One connector for every case: building its HTTP client is the slow part.
fn connector() -> &'static ShopifyConnector {
    static CONNECTOR: OnceLock<ShopifyConnector> = OnceLock::new();
    CONNECTOR.get_or_init(new_connector)
}

fn new_connector() -> ShopifyConnector {
    let mut config = ShopifyConfig::new(ACCOUNT, "http://127.0.0.1:9", Secret::new("t"));
    config.webhook_secrets = vec![Secret::new(SECRET)];
    ShopifyConnector::new(
        config,
        reqwest::Client::new(),
        switchyard_contract::Unpaced::shared(),
    )
    .unwrap()
}

/// The recorded `orders/*` webhook bodies, read once.
fn webhook_bodies() -> &'static [Value] {
    static BODIES: OnceLock<Vec<Value>> = OnceLock::new();
    BODIES.get_or_init(read_webhook_bodies)
}

fn read_webhook_bodies() -> Vec<Value> {
    let dir = fixtures().join("webhooks-orders/webhooks");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let bodies: Vec<Value> = paths
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        // products/update is not an order; the mutations want orders.
        .filter(|v: &Value| v.get("line_items").is_some())
        .collect();
    assert!(bodies.len() >= 4, "{}", dir.display());
    bodies
}

/// Every GraphQL order node in the recorded answers of every scenario, read once.
fn graphql_nodes() -> &'static [Value] {
    static NODES: OnceLock<Vec<Value>> = OnceLock::new();
    NODES.get_or_init(read_graphql_nodes)
}

fn read_graphql_nodes() -> Vec<Value> {
    let mut nodes = Vec::new();
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path().join("responses"))
        .filter(|p| p.is_dir())
        .collect();
    scenarios.sort();
    for dir in scenarios {
        for entry in std::fs::read_dir(dir).unwrap() {
            let Ok(v) =
                serde_json::from_slice::<Value>(&std::fs::read(entry.unwrap().path()).unwrap())
            else {
                continue;
            };
            if let Some(page) = v.pointer("/data/orders/nodes").and_then(Value::as_array) {
                nodes.extend(page.iter().cloned());
            }
            if let Some(order) = v.pointer("/data/order").filter(|o| o.is_object()) {
                nodes.push(order.clone());
            }
        }
    }
    assert!(
        nodes.len() >= 10,
        "only {} recorded order nodes",
        nodes.len()
    );
    nodes
}

fn request(topic: &str, body: Vec<u8>, signature: Option<String>) -> WebhookRequest {
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-shopify-topic".to_owned(), topic.to_owned()),
        ("x-shopify-event-id".to_owned(), "evt-prop".to_owned()),
    ];
    if let Some(s) = signature {
        headers.push(("x-shopify-hmac-sha256".to_owned(), s));
    }
    WebhookRequest {
        account: ACCOUNT.into(),
        method: "POST".into(),
        headers,
        query: None,
        body,
        received_at: Utc::now(),
    }
}

fn signed(topic: &str, body: Vec<u8>) -> WebhookRequest {
    let signature = sign(&body, &Secret::new(SECRET));
    request(topic, body, Some(signature))
}

/// A refusal must be a decode error with a message that names the webhook
/// or the order (so the log line says what to look at).
fn assert_clear_decode(e: &ConnectorError) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.class(), "decode", "{}", e);
    let text = e.to_string();
    prop_assert!(text.len() > "decode: ".len() + 10, "too terse: {text}");
    Ok(())
}

/// What an accepted order must look like, whatever came in.
fn assert_sound(o: &NormalizedOrder) -> Result<(), TestCaseError> {
    let order = &o.order;
    prop_assert!(!order.channel_order_id.trim().is_empty());
    prop_assert_eq!(&order.id, &Order::make_id(ACCOUNT, &order.channel_order_id));
    for line in &order.lines {
        // Exact decimal arithmetic: no float ever rounded a line total.
        let product = line.unit_price.checked_mul(Decimal::from(line.quantity));
        prop_assert_eq!(
            Some(line.total.normalize()),
            product.map(|p| p.normalize()),
            "line {} total",
            line.line_id
        );
    }
    // The canonical JSON prints every amount as a string and reads back the
    // same order (what the store and the destinations rely on).
    let canonical = serde_json::to_value(order).unwrap();
    for field in [
        "subtotal", "shipping", "tax", "discount", "total", "refunded",
    ] {
        prop_assert!(
            canonical["totals"][field].is_string(),
            "totals.{field} is not a string: {}",
            canonical["totals"][field]
        );
    }
    let back: Order = serde_json::from_value(canonical).unwrap();
    prop_assert_eq!(&back, order);
    for note in &o.notes {
        prop_assert!(
            !note.field.is_empty() && !note.detail.is_empty(),
            "{note:?}"
        );
    }
    Ok(())
}

/// Runs a delivery through both connector calls, as the daemon does.
fn deliver(c: &ShopifyConnector, req: &WebhookRequest) -> Result<(), TestCaseError> {
    if let Err(e) = c.verify_webhook(req) {
        prop_assert_eq!(e.class(), "auth", "{}", e);
        return Ok(());
    }
    match c.parse_webhook(req) {
        Ok(WebhookOutcome::Orders { orders, .. }) => {
            prop_assert_eq!(orders.len(), 1);
            assert_sound(&orders[0])?;
            // Read straight from the text, the order is the one its parsed
            // body gives, and the text as sent is its payload.
            prop_assert_eq!(orders[0].raw_json.as_deref(), Some(&req.body[..]));
            if let Ok(body) = serde_json::from_slice::<Value>(&req.body) {
                let parsed = normalize_rest_order(ACCOUNT, &body);
                prop_assert!(parsed.is_ok(), "{:?}", parsed);
                let parsed = parsed.unwrap();
                prop_assert_eq!(&orders[0].order, &parsed.order);
                prop_assert_eq!(&orders[0].notes, &parsed.notes);
                prop_assert_eq!(orders[0].payload(), body);
            }
        }
        Ok(WebhookOutcome::Ignored { reason, .. }) => prop_assert!(!reason.is_empty()),
        Ok(other) => prop_assert!(false, "unexpected outcome {other:?}"),
        Err(e) => assert_clear_decode(&e)?,
    }
    Ok(())
}

// --- strategies -------------------------------------------------------------------

/// Strings that have broken parsers elsewhere: money in the wrong notation,
/// numbers past `Decimal`'s range, blanks, non-ASCII, very long text.
fn nasty_string() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "1e400".to_owned(),
        "NaN".to_owned(),
        "-0".to_owned(),
        "-1.00".to_owned(),
        "1e5".to_owned(),
        "inf".to_owned(),
        "12,50".to_owned(),
        String::new(),
        "   ".to_owned(),
        "79228162514264337593543950335".to_owned(),
        "-79228162514264337593543950335".to_owned(),
        "79228162514264337593543950336".to_owned(),
        "39614081257132168796771975168".to_owned(),
        "0.0000000000000000000000000001".to_owned(),
        "1".repeat(400),
        "x".repeat(70_000),
        "\u{663}".to_owned(),
        "\u{e9}".to_owned(),
        "\u{0}".to_owned(),
        "2026-13-45T99:99:99Z".to_owned(),
        "+275760-09-13T00:00:00Z".to_owned(),
        "-262143-01-01T00:00:00Z".to_owned(),
        "usd".to_owned(),
        "US".to_owned(),
        "gid://shopify/Order/".to_owned(),
    ]);
    prop_oneof![
        3 => fixed,
        1 => "\\PC{0,40}",
        1 => "[0-9.\\-eE+]{1,40}",
    ]
}

/// Amounts near and past the edges of `Decimal` (28 digits, scale 28).
fn amount() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "39614081257132168796771975168",
            "7922816251426433759354395033.5",
            "0.0000000000000000000000000001",
            "-0",
            "0",
            "1e28",
            "1e-28",
        ])
        .prop_map(str::to_owned),
        1 => "-?[0-9]{1,29}(\\.[0-9]{1,28})?",
    ]
}

/// Quantities as JSON: in and out of `u32`, negative, not numbers.
fn quantity() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(2),
            json!(u32::MAX),
            json!(u64::from(u32::MAX) + 1),
            json!(-1),
            json!(i64::MAX),
            json!(i64::MIN),
            json!("3"),
            json!(1.5),
        ]),
        1 => any::<i64>().prop_map(Value::from),
    ]
}

fn nasty_value() -> impl Strategy<Value = Value> {
    let fixed = prop::sample::select(vec![
        Value::Null,
        json!(true),
        json!([]),
        json!({}),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(-1),
        json!(0),
        json!(4_294_967_296_u64),
        json!(1e300),
        json!(-0.0),
        json!(0.1),
        json!([null, 1, "a"]),
        json!({ "amount": "1e400" }),
    ]);
    prop_oneof![
        4 => nasty_string().prop_map(Value::String),
        3 => fixed,
        1 => any::<i64>().prop_map(Value::from),
    ]
}

/// Arbitrary JSON whose keys are often Shopify's own, so that some of it
/// gets past the first checks.
fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "id",
            "name",
            "currency",
            "updated_at",
            "created_at",
            "processed_at",
            "cancelled_at",
            "total_price",
            "total_price_set",
            "shop_money",
            "amount",
            "line_items",
            "quantity",
            "price",
            "sku",
            "fulfillments",
            "refunds",
            "transactions",
            "tags",
            "customer",
            "shipping_address",
            "shipping_lines",
            "financial_status",
            "fulfillment_status",
            "presentment_currency",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One change to a document. A path is a list of choices: at each object or
/// array, the child at `choice % len`; the walk stops early at a leaf.
#[derive(Debug, Clone)]
enum Mutation {
    Remove(Vec<usize>),
    Set(Vec<usize>, Value),
    /// A field by JSON pointer (money, quantities, ids, times), when present.
    SetField(&'static str, Value),
    RemoveField(&'static str),
}

const REST_FIELDS: &[&str] = &[
    "/id",
    "/currency",
    "/presentment_currency",
    "/updated_at",
    "/created_at",
    "/processed_at",
    "/cancelled_at",
    "/tags",
    "/total_price",
    "/total_tax",
    "/total_discounts",
    "/total_price_set/shop_money/amount",
    "/total_price_set/presentment_money/amount",
    "/total_tax_set/shop_money/amount",
    "/total_discounts_set/shop_money/amount",
    "/total_shipping_price_set/shop_money/amount",
    "/shipping_lines/0/price",
    "/shipping_lines/0/price_set/shop_money/amount",
    "/line_items/0/id",
    "/line_items/0/quantity",
    "/line_items/0/price",
    "/line_items/0/price_set/shop_money/amount",
    "/line_items/1/quantity",
    "/line_items/1/price_set/shop_money/amount",
    "/line_items/0/sku",
    "/fulfillments/0/created_at",
    "/fulfillments/0/status",
    "/fulfillments/0/line_items/0/id",
    "/fulfillments/0/line_items/0/quantity",
    "/refunds/0/transactions/0/amount",
    "/refunds/0/transactions/0/currency",
    "/shipping_address",
    "/shipping_address/country_code",
    "/customer",
    "/line_items",
];

const GRAPHQL_FIELDS: &[&str] = &[
    "/id",
    "/currencyCode",
    "/presentmentCurrencyCode",
    "/updatedAt",
    "/processedAt",
    "/createdAt",
    "/cancelledAt",
    "/tags",
    "/totalPriceSet/shopMoney/amount",
    "/totalPriceSet/presentmentMoney/amount",
    "/totalShippingPriceSet/shopMoney/amount",
    "/totalTaxSet/shopMoney/amount",
    "/totalDiscountsSet/shopMoney/amount",
    "/totalRefundedSet/shopMoney/amount",
    "/lineItems/nodes/0/id",
    "/lineItems/nodes/0/quantity",
    "/lineItems/nodes/0/originalUnitPriceSet/shopMoney/amount",
    "/lineItems/nodes/1/quantity",
    "/lineItems/nodes/1/originalUnitPriceSet/shopMoney/amount",
    "/lineItems/pageInfo/hasNextPage",
    "/fulfillmentsCount/count",
    "/fulfillments/0/createdAt",
    "/fulfillments/0/status",
    "/fulfillments/0/fulfillmentLineItems/nodes/0/quantity",
    "/fulfillments/0/fulfillmentLineItems/nodes/0/lineItem/id",
    "/shippingAddress",
    "/shippingAddress/countryCodeV2",
    "/customer",
    "/lineItems",
];

fn mutation(fields: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let path = prop::collection::vec(any::<usize>(), 1..6);
    prop_oneof![
        1 => path.clone().prop_map(Mutation::Remove),
        2 => (path, nasty_value()).prop_map(|(p, v)| Mutation::Set(p, v)),
        4 => (prop::sample::select(fields), nasty_value()).prop_map(|(f, v)| Mutation::SetField(f, v)),
        1 => prop::sample::select(fields).prop_map(Mutation::RemoveField),
    ]
}

/// The JSON pointer of the container whose child `path` picks, and the
/// choice for that child.
fn walk(doc: &Value, path: &[usize]) -> Option<(String, usize)> {
    let (last, init) = path.split_last()?;
    let mut v = doc;
    let mut pointer = String::new();
    for choice in init {
        let next = match v {
            Value::Object(m) if !m.is_empty() => m
                .iter()
                .nth(choice % m.len())
                .map(|(k, child)| (k.replace('~', "~0").replace('/', "~1"), child)),
            Value::Array(a) if !a.is_empty() => {
                let i = choice % a.len();
                Some((i.to_string(), &a[i]))
            }
            _ => None,
        };
        match next {
            Some((step, child)) if child.is_object() || child.is_array() => {
                pointer.push('/');
                pointer.push_str(&step);
                v = child;
            }
            _ => break,
        }
    }
    Some((pointer, *last))
}

fn apply(doc: &mut Value, m: &Mutation) {
    match m {
        Mutation::Remove(path) => {
            if let Some((pointer, choice)) = walk(doc, path) {
                match doc.pointer_mut(&pointer) {
                    Some(Value::Object(map)) if !map.is_empty() => {
                        let key = map.keys().nth(choice % map.len()).cloned().unwrap();
                        map.remove(&key);
                    }
                    Some(Value::Array(a)) if !a.is_empty() => {
                        let n = a.len();
                        a.remove(choice % n);
                    }
                    _ => {}
                }
            }
        }
        Mutation::Set(path, value) => {
            if let Some((pointer, choice)) = walk(doc, path) {
                match doc.pointer_mut(&pointer) {
                    Some(Value::Object(map)) if !map.is_empty() => {
                        let n = map.len();
                        *map.values_mut().nth(choice % n).unwrap() = value.clone();
                    }
                    Some(Value::Array(a)) if !a.is_empty() => {
                        let n = a.len();
                        a[choice % n] = value.clone();
                    }
                    _ => {}
                }
            }
        }
        Mutation::SetField(pointer, value) => {
            if let Some(slot) = doc.pointer_mut(pointer) {
                *slot = value.clone();
            }
        }
        Mutation::RemoveField(pointer) => {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            match doc.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(key);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = key.parse::<usize>()
                        && i < a.len()
                    {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Byte-level damage to a serialized body: what JSON values cannot express
/// (invalid UTF-8, numbers out of `f64` range, truncation).
#[derive(Debug, Clone)]
enum ByteDamage {
    None,
    Truncate(usize),
    Insert(usize, Vec<u8>),
    /// The first `"amount":"…"` value replaced by raw JSON text.
    RawAmount(&'static str),
}

fn byte_damage() -> impl Strategy<Value = ByteDamage> {
    prop_oneof![
        4 => Just(ByteDamage::None),
        1 => any::<usize>().prop_map(ByteDamage::Truncate),
        1 => (any::<usize>(), prop_oneof![
            Just(vec![0xff_u8]),
            Just(vec![0xc3_u8]),
            Just(vec![0xed, 0xa0, 0x80]),
            Just(b"\\ud800".to_vec()),
            prop::collection::vec(any::<u8>(), 1..8),
        ]).prop_map(|(at, bytes)| ByteDamage::Insert(at, bytes)),
        1 => prop::sample::select(vec!["1e400", "-1e400", "NaN", "-0", "1e-400", "123456789012345678901234567890"])
            .prop_map(ByteDamage::RawAmount),
    ]
}

fn damage(mut bytes: Vec<u8>, d: &ByteDamage) -> Vec<u8> {
    match d {
        ByteDamage::None => {}
        ByteDamage::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
        ByteDamage::Insert(at, ins) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, ins.iter().copied());
        }
        ByteDamage::RawAmount(raw) => {
            let text = String::from_utf8(bytes).unwrap();
            let re = "\"amount\":\"";
            return match text.find(re) {
                Some(start) => {
                    let from = start + re.len() - 1;
                    let end = from + 1 + text[from + 1..].find('"').unwrap() + 1;
                    format!("{}{raw}{}", &text[..from], &text[end..]).into_bytes()
                }
                None => text.into_bytes(),
            };
        }
    }
    bytes
}

/// `PROPTEST_CASES` in the environment runs more cases (a deeper search).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // Failures are kept as plain tests below, not in files beside the source.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// --- properties -------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Any bytes under any topic, signed or not: an auth or decode error, an
    /// ignored topic, or a sound order; never a panic.
    #[test]
    fn arbitrary_bytes_are_refused_cleanly(
        body in prop::collection::vec(any::<u8>(), 0..512),
        topic in prop_oneof![prop::sample::select(ORDER_TOPICS.to_vec()).prop_map(str::to_owned), "\\PC{0,20}"],
        signature in prop_oneof![
            Just(None),
            Just(Some(String::new())),
            "[A-Za-z0-9+/=]{0,60}".prop_map(Some),
            "\\PC{0,30}".prop_map(Some),
        ],
        sign_it in any::<bool>(),
    ) {
        let c = connector();
        let req = if sign_it {
            signed(&topic, body)
        } else {
            request(&topic, body, signature)
        };
        deliver(c, &req)?;
    }

    /// Arbitrary JSON, signed, under an order topic.
    #[test]
    fn arbitrary_json_is_an_order_or_a_decode_error(
        body in arb_json(),
        topic in prop::sample::select(ORDER_TOPICS.to_vec()),
    ) {
        let c = connector();
        deliver(c, &signed(topic, serde_json::to_vec(&body).unwrap()))?;
    }

    /// The recorded order bodies with fields dropped, retyped or set to
    /// nasty values, and the bytes damaged: `Ok` with notes or `decode`.
    #[test]
    fn mutated_webhook_bodies_normalize_or_fail_cleanly(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(REST_FIELDS), 1..6),
        bytes in byte_damage(),
        topic in prop::sample::select(ORDER_TOPICS.to_vec()),
    ) {
        let bodies = webhook_bodies();
        let mut doc = which.get(bodies).clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        let body = damage(serde_json::to_vec(&doc).unwrap(), &bytes);
        deliver(connector(), &signed(topic, body))?;
    }

    /// Money strings straight into every REST amount field: an accepted
    /// order carries exactly the decimal that was sent (at the currency's
    /// minor units), never a float's idea of it.
    #[test]
    fn webhook_money_stays_decimal(amount in prop_oneof![
        "-?[0-9]{1,12}(\\.[0-9]{1,6})?",
        nasty_string(),
    ]) {
        let bodies = webhook_bodies();
        let mut doc = bodies[0].clone();
        doc["total_price_set"]["shop_money"]["amount"] = json!(amount);
        let req = signed("orders/create", serde_json::to_vec(&doc).unwrap());
        match connector().parse_webhook(&req) {
            Ok(WebhookOutcome::Orders { orders, .. }) => {
                let o = &orders[0];
                assert_sound(o)?;
                let sent = Decimal::from_str(amount.trim()).unwrap();
                prop_assert_eq!(o.order.totals.total.normalize(), sent.normalize());
            }
            Ok(other) => prop_assert!(false, "unexpected outcome {other:?}"),
            Err(e) => {
                assert_clear_decode(&e)?;
                prop_assert!(e.to_string().contains("totals.total"), "{}", e);
            }
        }
    }

    /// Extreme figures where the normalizer does arithmetic: line totals
    /// (price × quantity), the subtotal, summed refunds and shipping lines,
    /// shipped quantities. Past `Decimal`'s range is a decode error that
    /// names the field, never an overflow panic.
    #[test]
    fn extreme_webhook_figures_never_overflow(
        prices in prop::collection::vec(amount(), 2),
        quantities in prop::collection::vec(quantity(), 2),
        refunds in prop::collection::vec(amount(), 0..3),
        shipping in prop::collection::vec(amount(), 0..3),
        shipped in quantity(),
        total in amount(),
    ) {
        let mut doc = webhook_bodies()[0].clone();
        let line = doc["line_items"][0].clone();
        doc["line_items"] = json!([line.clone(), line]);
        for (i, (p, q)) in prices.iter().zip(&quantities).enumerate() {
            let l = &mut doc["line_items"][i];
            l["id"] = json!(1000 + i);
            l["quantity"] = q.clone();
            l["price"] = json!(p);
            l["price_set"] = json!({ "shop_money": { "amount": p, "currency_code": "USD" } });
        }
        doc["refunds"] = json!([{ "transactions": refunds.iter().map(|r| json!({
            "kind": "refund", "status": "success", "amount": r, "currency": "USD"
        })).collect::<Vec<_>>() }]);
        doc["shipping_lines"] = json!(shipping.iter().map(|p| json!({ "title": "x", "price": p })).collect::<Vec<_>>());
        doc.as_object_mut().unwrap().remove("total_shipping_price_set");
        doc["fulfillments"] = json!([1, 2].map(|n| json!({
            "id": n, "status": "success", "created_at": "2026-11-27T00:00:00Z",
            "tracking_numbers": ["1Z"], "line_items": [{ "id": 1000, "quantity": shipped }],
        })));
        doc["total_price_set"] = json!({ "shop_money": { "amount": total } });
        deliver(connector(), &signed("orders/updated", serde_json::to_vec(&doc).unwrap()))?;
    }

    /// The GraphQL normalizer on mutated recorded page nodes.
    #[test]
    fn mutated_graphql_nodes_normalize_or_fail_cleanly(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(GRAPHQL_FIELDS), 1..6),
    ) {
        let nodes = graphql_nodes();
        let mut node = which.get(nodes).clone();
        for m in &mutations {
            apply(&mut node, m);
        }
        match normalize_graphql_order(ACCOUNT, &node) {
            Ok(o) => assert_sound(&o)?,
            Err(e) => assert_clear_decode(&e)?,
        }
    }

    /// The GraphQL normalizer on arbitrary JSON.
    #[test]
    fn arbitrary_graphql_nodes_are_refused_cleanly(node in arb_json()) {
        match normalize_graphql_order(ACCOUNT, &node) {
            Ok(o) => assert_sound(&o)?,
            Err(e) => assert_clear_decode(&e)?,
        }
    }
}

// --- regressions: inputs the properties above found ----------------------------------

const DECIMAL_MAX: &str = "79228162514264337593543950335";

fn parse_body(doc: &Value) -> Result<NormalizedOrder, ConnectorError> {
    match connector().parse_webhook(&signed("orders/create", serde_json::to_vec(doc).unwrap())) {
        Ok(WebhookOutcome::Orders { mut orders, .. }) => Ok(orders.remove(0)),
        Ok(other) => panic!("unexpected outcome {other:?}"),
        Err(e) => Err(e),
    }
}

/// Found by `mutated_webhook_bodies_normalize_or_fail_cleanly`: a line price
/// of `Decimal::MAX` times quantity 2 panicked ("Multiplication overflowed").
#[test]
fn a_line_total_past_the_decimal_range_is_a_decode_error() {
    let mut doc = webhook_bodies()[0].clone();
    doc["line_items"][0]["price_set"]["shop_money"]["amount"] = json!(DECIMAL_MAX);
    doc["line_items"][0]["quantity"] = json!(2);
    let err = parse_body(&doc).unwrap_err();
    assert_eq!(err.class(), "decode");
    assert!(
        err.to_string().contains("lines[0].total is out of range"),
        "{err}"
    );
}

/// Found by `extreme_webhook_figures_never_overflow`: line totals, refunds
/// and shipping lines that each fit but add up past the range panicked in
/// the subtotal, the refunded sum, the shipping sum and the totals check.
#[test]
fn sums_past_the_decimal_range_are_decode_errors_not_panics() {
    let base = webhook_bodies()[0].clone();
    let line = base["line_items"][0].clone();

    let mut lines = base.clone();
    let mut second = line.clone();
    second["id"] = json!(2);
    lines["line_items"] = json!([line, second]);
    for l in lines["line_items"].as_array_mut().unwrap() {
        l["quantity"] = json!(1);
        l["price_set"]["shop_money"]["amount"] = json!(DECIMAL_MAX);
    }
    let err = parse_body(&lines).unwrap_err();
    assert!(
        err.to_string().contains("totals.subtotal is out of range"),
        "{err}"
    );

    let mut refunds = base.clone();
    let refund =
        json!({ "kind": "refund", "status": "success", "amount": DECIMAL_MAX, "currency": "USD" });
    refunds["refunds"] = json!([{ "transactions": [refund.clone(), refund] }]);
    let err = parse_body(&refunds).unwrap_err();
    assert!(
        err.to_string().contains("totals.refunded is out of range"),
        "{err}"
    );

    let mut shipping = base.clone();
    shipping
        .as_object_mut()
        .unwrap()
        .remove("total_shipping_price_set");
    shipping["shipping_lines"] =
        json!([{ "title": "a", "price": DECIMAL_MAX }, { "title": "b", "price": "1" }]);
    let err = parse_body(&shipping).unwrap_err();
    assert!(err.to_string().contains("totals.shipping"), "{err}");
    assert!(
        err.to_string().contains("add up past the largest amount"),
        "{err}"
    );

    // Each figure fits, their sum does not: the order is kept, with a note.
    let mut totals = base;
    totals["total_shipping_price_set"]["shop_money"]["amount"] = json!(DECIMAL_MAX);
    totals["total_tax_set"]["shop_money"]["amount"] = json!(DECIMAL_MAX);
    let order = parse_body(&totals).unwrap();
    assert!(
        order.notes.iter().any(|n| n.field == "totals.total"),
        "{:?}",
        order.notes
    );
}
