//! Every GraphQL document the connector can send is checked against the
//! vendored Admin API schema (a field Shopify lacks fails here, not in a
//! merchant's shop), and its requested query cost is estimated with
//! Shopify's published rules and kept under the 1,000-point single-query cap.

// Test support outside `#[test]` functions: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use apollo_compiler::executable::{Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use serde_json::json;
use switchyard_shopify::graphql::{self, OrderLimits};

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/admin_2026-10.graphql");

/// Shopify refuses a query whose requested cost is above this.
const MAX_QUERY_COST: u64 = 1000;

fn schema() -> &'static Valid<Schema> {
    static SCHEMA: OnceLock<Valid<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let sdl = std::fs::read_to_string(SCHEMA_PATH).expect("read the vendored schema");
        // The printed SDL omits the built-in @oneOf directive it uses.
        let sdl = format!("directive @oneOf on INPUT_OBJECT\n{sdl}");
        Schema::parse_and_validate(sdl, SCHEMA_PATH).expect("the vendored schema is valid")
    })
}

fn validate(name: &str, document: &str) -> Result<Valid<ExecutableDocument>, String> {
    ExecutableDocument::parse_and_validate(schema(), document, format!("{name}.graphql"))
        .map_err(|e| e.errors.to_string())
}

fn limits(l: OrderLimits) -> serde_json::Value {
    json!({
        "lineItems": l.line_items,
        "fulfillments": l.fulfillments,
        "fulfillmentLineItems": l.fulfillment_line_items,
    })
}

/// The variables each document is sent with, as far as cost depends on them.
fn variables(name: &str) -> serde_json::Value {
    match name {
        "SwitchyardOrders" => {
            let mut v = limits(graphql::PAGE_ORDER);
            v["first"] = json!(graphql::ORDERS_PER_PAGE);
            v
        }
        "SwitchyardOrder" => limits(graphql::SINGLE_ORDER),
        "SwitchyardOrderLines" => json!({ "lineItems": graphql::LINES_PER_PAGE }),
        _ => json!({}),
    }
}

#[test]
fn every_document_is_valid_against_the_schema() {
    let mut failures = Vec::new();
    for (name, document) in graphql::all_documents() {
        match validate(name, &document) {
            Ok(doc) => assert!(
                doc.operations.named.contains_key(name),
                "{name}: the document's operation must be named {name} (requests send it as operationName)"
            ),
            Err(e) => failures.push(format!("{name}:\n{e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_field_the_schema_lacks_fails_validation() {
    let bogus = graphql::with_order_fields(graphql::ORDER_QUERY)
        .replace("  taxesIncluded\n", "  taxesIncluded\n  totalPriceUsd\n");
    let err = validate("Bogus", &bogus).unwrap_err();
    assert!(err.contains("totalPriceUsd"), "{err}");

    let bogus =
        graphql::CHECK_QUERY.replace("shop { name }", "shop { name primaryLocation { id } }");
    let err = validate("Bogus", &bogus).unwrap_err();
    assert!(err.contains("primaryLocation"), "{err}");
}

#[test]
fn the_idempotent_directive_is_only_valid_on_the_mutation_field() {
    let on_operation = graphql::set_stock_mutation("k").replace(
        "mutation SwitchyardSetStock($input: InventorySetQuantitiesInput!) {",
        "mutation SwitchyardSetStock($input: InventorySetQuantitiesInput!) @idempotent(key: \"k\") {",
    );
    let on_operation = on_operation.replace(
        " @idempotent(key: \"k\") {\n    inventoryAdjustmentGroup",
        " {\n    inventoryAdjustmentGroup",
    );
    let err = validate("Misplaced", &on_operation).unwrap_err();
    assert!(err.contains("idempotent"), "{err}");
}

#[test]
fn every_document_stays_under_the_query_cost_cap() {
    let mut report = Vec::new();
    let mut over = Vec::new();
    for (name, document) in graphql::all_documents() {
        let doc = validate(name, &document).unwrap();
        let op = &doc.operations.named[name];
        let mutation = op.operation_type.is_mutation();
        let cost = selection_cost(&doc, &op.selection_set, &variables(name), mutation);
        report.push(format!("{name}: {cost}"));
        if cost > MAX_QUERY_COST {
            over.push(format!("{name} would cost {cost} points"));
        }
    }
    eprintln!("estimated requested costs: {}", report.join(", "));
    assert!(
        over.is_empty(),
        "over {MAX_QUERY_COST}: {}",
        over.join(", ")
    );
}

/// A GraphQL literal of a JSON value (an input written into a document).
fn literal(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{}\"", graphql::escape_string(s)),
        Value::Array(a) => format!("[{}]", a.iter().map(literal).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{k}: {}", literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A batch of stock pushes is `SwitchyardSetStock` (in `all_documents()`)
/// with many quantities in its `$input`. Validation checks a variable only
/// by its type, so the input the connector builds for a full batch is
/// written into the document as a literal and validated field by field
/// against `InventorySetQuantitiesInput`; its cost is the mutation's,
/// whatever the number of quantities.
#[test]
fn a_full_batch_of_stock_quantities_validates_and_costs_one_mutation() {
    let n = graphql::STOCK_QUANTITIES_PER_CALL;
    assert!(
        (2..=250).contains(&n),
        "Shopify caps input arrays at 250; got {n}"
    );
    let items: Vec<String> = (0..n)
        .map(|i| format!("gid://shopify/InventoryItem/{}", 44_001 + i))
        .collect();
    let quantities: Vec<graphql::StockQuantity<'_>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let i = u32::try_from(i).unwrap();
            (item.as_str(), i, (i % 2 == 0).then_some(i + 1))
        })
        .collect();
    let key = "switchyard-batch-100-0123456789abcdef0123456789abcdef";
    let variables =
        graphql::set_stock_variables("gid://shopify/Location/905684977", key, &quantities);
    assert_eq!(
        variables["input"]["quantities"].as_array().unwrap().len(),
        n
    );
    let as_sent = graphql::set_stock_mutation(key);
    assert!(graphql::is_known_document(&as_sent));
    let inline = as_sent
        .replace("($input: InventorySetQuantitiesInput!)", "")
        .replace(
            "(input: $input)",
            &format!("(input: {})", literal(&variables["input"])),
        );
    let doc = validate("SwitchyardSetStock", &inline).unwrap_or_else(|e| panic!("{e}"));
    let op = &doc.operations.named["SwitchyardSetStock"];
    let batch_cost = selection_cost(&doc, &op.selection_set, &json!({}), true);
    let sent = validate("SwitchyardSetStock", &as_sent).unwrap();
    let one_cost = selection_cost(
        &sent,
        &sent.operations.named["SwitchyardSetStock"].selection_set,
        &json!({}),
        true,
    );
    assert_eq!(
        batch_cost, one_cost,
        "the quantities do not add to the cost"
    );
    assert!(batch_cost <= MAX_QUERY_COST);

    // The literal really is checked: a field 2026-04 removed is refused.
    let removed = inline.replace("changeFromQuantity", "compareQuantity");
    let err = validate("Removed", &removed).unwrap_err();
    assert!(err.contains("compareQuantity"), "{err}");
}

#[test]
fn the_cost_estimate_follows_shopifys_worked_example() {
    // shopify.dev: products(first: 10) { title variants(first: 5) { price } } costs
    // 2 + 10 × (1 + 2 + 5 × 1) = 82.
    let doc = validate(
        "Example",
        "query Example { products(first: 10) { nodes { title variants(first: 5) { nodes { price } } } } }",
    )
    .unwrap();
    let op = &doc.operations.named["Example"];
    assert_eq!(
        selection_cost(&doc, &op.selection_set, &json!({}), false),
        2 + 10 * (1 + 2 + 5)
    );
}

/// Shopify's published cost rules, as an upper bound: scalars and enums 0,
/// objects 1, connections `2 + first × node cost`, list fields with `first`
/// `first × element cost`, mutation fields 10.
fn selection_cost(
    doc: &ExecutableDocument,
    set: &SelectionSet,
    vars: &serde_json::Value,
    root_mutation: bool,
) -> u64 {
    let mut total = 0;
    for selection in &set.selections {
        total += match selection {
            Selection::Field(field) => {
                let named = field.definition.ty.inner_named_type();
                let leaf = matches!(
                    schema().types.get(named),
                    Some(ExtendedType::Scalar(_) | ExtendedType::Enum(_)) | None
                );
                if root_mutation {
                    10 + selection_cost(doc, &field.selection_set, vars, false)
                } else if leaf {
                    0
                } else {
                    let first = field
                        .arguments
                        .iter()
                        .find(|a| a.name == "first" || a.name == "last")
                        .and_then(|a| match a.value.as_ref() {
                            apollo_compiler::ast::Value::Int(i) => {
                                i.try_to_i32().ok().map(|i| i as u64)
                            }
                            apollo_compiler::ast::Value::Variable(v) => vars[v.as_str()].as_u64(),
                            _ => None,
                        });
                    if named.as_str().ends_with("Connection") {
                        let first = first.expect("every connection is sized with first");
                        let mut cost = 2;
                        for inner in &field.selection_set.selections {
                            let Selection::Field(inner) = inner else {
                                panic!("no fragments in connections")
                            };
                            let c = selection_cost(doc, &inner.selection_set, vars, false);
                            cost += match inner.name.as_str() {
                                "nodes" | "edges" => first * (1 + c),
                                _ => 1 + c,
                            };
                        }
                        cost
                    } else {
                        let element = 1 + selection_cost(doc, &field.selection_set, vars, false);
                        if field.definition.ty.is_list() {
                            first.unwrap_or(1) * element
                        } else {
                            element
                        }
                    }
                }
            }
            Selection::FragmentSpread(spread) => selection_cost(
                doc,
                &doc.fragments[&spread.fragment_name].selection_set,
                vars,
                root_mutation,
            ),
            Selection::InlineFragment(inline) => {
                selection_cost(doc, &inline.selection_set, vars, root_mutation)
            }
        };
    }
    total
}
