//! Every GraphQL document this connector sends, as constants, so that one
//! test can validate all of them against the vendored Admin API schema
//! (`schema/admin_2026-10.graphql`) and estimate their query cost.
//!
//! Why the page sizes are what they are: Shopify refuses any single query
//! whose *requested* cost exceeds 1,000 points (`MAX_COST_EXCEEDED`), and a
//! connection costs `2 + first × (cost of one node)`. A line item costs 21
//! points (its prices, discount allocations and up to four tax lines are
//! objects), and an order with its line items and fulfillments nested inside
//! is about 190 points at the page limits below, so an orders page holds
//! [`ORDERS_PER_PAGE`] orders, not the 250 the connection would allow.
//! Throughput does not suffer: Shopify refunds the difference to the
//! *actual* cost, which is what drains the bucket. An order with more line
//! items or fulfillments than a page carries is fetched again on its own
//! with the larger [`SINGLE_ORDER`] limits, and the rest of a long order's
//! line items page by page. `tests/graphql_schema.rs` recomputes every
//! document's cost and fails past 1,000.

/// Limits of the nested connections of one order in a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLimits {
    pub line_items: u32,
    pub fulfillments: u32,
    pub fulfillment_line_items: u32,
}

/// Orders per page of the poll query.
pub const ORDERS_PER_PAGE: u32 = 5;

/// Nested limits inside an orders page. A fulfillment cannot hold more
/// line items than its order has, so the two line limits are one.
pub const PAGE_ORDER: OrderLimits = OrderLimits {
    line_items: 6,
    fulfillments: 2,
    fulfillment_line_items: 6,
};

/// Nested limits when one order is fetched on its own (`fetch_orders`, or an
/// order a page could not carry whole). Line items past these are read with
/// [`ORDER_LINES_QUERY`]; fulfillments past these are noted as missing.
pub const SINGLE_ORDER: OrderLimits = OrderLimits {
    line_items: 25,
    fulfillments: 8,
    fulfillment_line_items: 20,
};

/// Line items a page of [`ORDER_LINES_QUERY`] reads.
pub const LINES_PER_PAGE: u32 = 40;

/// Tax lines read per line item. Shopify splits a line's tax by
/// jurisdiction (a US line has state, county, city and special-district
/// tax at most); when a line shows this many, normalization notes that there
/// may be more.
pub const TAX_LINES_PER_LINE: usize = 4;

/// Every field normalization reads from a line item, and nothing more:
/// shared by the order documents and [`ORDER_LINES_QUERY`], which reads the
/// rest of a long order's lines. `taxLines(first: 4)` is
/// [`TAX_LINES_PER_LINE`] (a test checks that they agree).
pub const LINE_FIELDS: &str = r#"fragment SwitchyardLine on LineItem {
  id
  sku
  name
  quantity
  currentQuantity
  isGiftCard
  requiresShipping
  originalUnitPriceSet { shopMoney { amount } }
  discountAllocations { allocatedAmountSet { shopMoney { amount } } }
  taxLines(first: 4) { priceSet { shopMoney { amount } } }
  customAttributes { key value }
  variant { id inventoryItem { id } }
}
"#;

/// Every field normalization reads from an order, and nothing more.
/// `trackingInfo(first: 2)`: more than one tracking number per fulfillment is
/// noted and only the first kept, so two are enough to see that there are more.
pub const ORDER_FIELDS: &str = r#"fragment SwitchyardOrder on Order {
  id
  name
  createdAt
  processedAt
  updatedAt
  cancelledAt
  currencyCode
  presentmentCurrencyCode
  displayFinancialStatus
  displayFulfillmentStatus
  taxesIncluded
  tags
  email
  phone
  note
  test
  customAttributes { key value }
  totalPriceSet { shopMoney { amount } presentmentMoney { amount } }
  totalShippingPriceSet { shopMoney { amount } }
  totalTaxSet { shopMoney { amount } }
  totalDiscountsSet { shopMoney { amount } }
  totalRefundedSet { shopMoney { amount } }
  customer {
    firstName
    lastName
    defaultEmailAddress { emailAddress }
    defaultPhoneNumber { phoneNumber }
  }
  shippingAddress {
    name
    company
    address1
    address2
    city
    province
    provinceCode
    zip
    country
    countryCodeV2
    phone
  }
  shippingLines(first: 1) {
    nodes { title }
    pageInfo { hasNextPage }
  }
  lineItems(first: $lineItems) {
    nodes { ...SwitchyardLine }
    pageInfo { hasNextPage endCursor }
  }
  fulfillmentsCount { count }
  fulfillments(first: $fulfillments) {
    id
    status
    createdAt
    trackingInfo(first: 2) { company number url }
    fulfillmentLineItems(first: $fulfillmentLineItems) {
      nodes { quantity lineItem { id } }
      pageInfo { hasNextPage }
    }
  }
}
"#;

/// One page of orders changed since a time, oldest change first. Variables:
/// `first`, `after`, `query` (`updated_at:>='…'`) and the [`OrderLimits`].
/// No `status:` filter: unlike REST (whose default is `status=open`), the
/// GraphQL `orders` query has no default status filter, so cancelled, closed
/// and archived orders all come back.
pub const ORDERS_PAGE_QUERY: &str = r#"query SwitchyardOrders($first: Int!, $after: String, $query: String!, $lineItems: Int!, $fulfillments: Int!, $fulfillmentLineItems: Int!) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    nodes { ...SwitchyardOrder }
    pageInfo { hasNextPage endCursor }
  }
}
"#;

/// One order by GID, with the [`SINGLE_ORDER`] limits.
pub const ORDER_QUERY: &str = r#"query SwitchyardOrder($id: ID!, $lineItems: Int!, $fulfillments: Int!, $fulfillmentLineItems: Int!) {
  order(id: $id) { ...SwitchyardOrder }
}
"#;

/// The line items of one order after `$after`: an order fetched on its own
/// whose lines do not fit [`SINGLE_ORDER`] is read whole, page by page, with
/// [`LINES_PER_PAGE`] lines a page.
pub const ORDER_LINES_QUERY: &str = r#"query SwitchyardOrderLines($id: ID!, $after: String, $lineItems: Int!) {
  order(id: $id) {
    lineItems(first: $lineItems, after: $after) {
      nodes { ...SwitchyardLine }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"#;

/// The cheapest read that proves the token and the shop: one object, 1 point.
pub const CHECK_QUERY: &str = "query SwitchyardCheck {\n  shop { name }\n}\n";

/// Variants with a SKU. `first: 2` so that a SKU on two variants is seen and
/// refused instead of one of them being set at random. Shopify's search is
/// token-based, so results are filtered for an exact SKU afterwards.
pub const VARIANTS_BY_SKU_QUERY: &str = r#"query SwitchyardVariantsBySku($query: String!) {
  productVariants(first: 2, query: $query) {
    nodes { id sku inventoryItem { id } }
  }
}
"#;

/// `location` without an id is the shop's primary location.
pub const PRIMARY_LOCATION_QUERY: &str =
    "query SwitchyardPrimaryLocation {\n  location { id }\n}\n";

/// What the channel shows as `available` for one item at one location; read
/// after a `CHANGE_FROM_QUANTITY_STALE` refusal.
pub const AVAILABLE_QUERY: &str = r#"query SwitchyardAvailable($item: ID!, $location: ID!) {
  inventoryItem(id: $item) {
    inventoryLevel(locationId: $location) {
      quantities(names: ["available"]) { name quantity }
    }
  }
}
"#;

/// Sets `available` with compare-and-set (`changeFromQuantity`). The
/// `@idempotent` directive is declared `on FIELD`, so it sits on the mutation
/// field, and the key is a literal: [`set_stock_mutation`] fills it in.
pub const SET_STOCK_MUTATION_TEMPLATE: &str = r#"mutation SwitchyardSetStock($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) @idempotent(key: "{IDEMPOTENCY_KEY}") {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}
"#;

/// Stock quantities per `inventorySetQuantities` call (a batch of pushes).
///
/// Shopify caps every input array at 250 items (shopify.dev/api/usage/limits),
/// and a call that fails for one quantity fails whole (see `push.rs`), so a
/// smaller batch wastes less when one SKU's compare-and-set is stale. The
/// query cost does not grow with it: Shopify's published rules price a
/// mutation at 10 points plus its selection (here 12 requested, 10 actual)
/// whatever its input holds; input-dependent ("dynamic complexity") costs
/// are documented for `productSet`, `productCreate` and `productUpdate`
/// only. `tests/graphql_schema.rs` validates a batch of this many against
/// the schema and checks its cost.
pub const STOCK_QUANTITIES_PER_CALL: usize = 100;

/// One quantity of a stock mutation: (inventory item GID, quantity to set,
/// `changeFromQuantity`).
pub type StockQuantity<'a> = (&'a str, u32, Option<u32>);

/// The variables of the stock mutation: set `available` at `location` for
/// each quantity, with compare-and-set. `reference` becomes the
/// `referenceDocumentUri` (`gid://switchyard/StockPush/<reference>`,
/// percent-encoded), which Shopify shows in the inventory history.
pub fn set_stock_variables(
    location: &str,
    reference: &str,
    quantities: &[StockQuantity<'_>],
) -> serde_json::Value {
    let quantities: Vec<serde_json::Value> = quantities
        .iter()
        .map(|(item, quantity, change_from)| {
            serde_json::json!({
                "inventoryItemId": item,
                "locationId": location,
                "quantity": quantity,
                // Explicit null opts out of the compare-and-set; it must be sent.
                "changeFromQuantity": change_from,
            })
        })
        .collect();
    serde_json::json!({
        "input": {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": format!("gid://switchyard/StockPush/{}", uri_component(reference)),
            "quantities": quantities,
        }
    })
}

/// Percent-encodes what is not an RFC 3986 unreserved character, so any key
/// makes a valid `referenceDocumentUri`.
pub fn uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a tracking push must know first: the fulfillment orders that can
/// still be fulfilled (and what remains on them), and the tracking numbers
/// already on the order, so that a retry after a timeout finds its own
/// earlier fulfillment instead of creating a second one.
pub const FULFILLMENT_STATE_QUERY: &str = r#"query SwitchyardFulfillmentState($id: ID!) {
  order(id: $id) {
    id
    fulfillments(first: 20) {
      id
      status
      trackingInfo(first: 5) { number }
    }
    fulfillmentOrders(first: 5) {
      nodes {
        id
        status
        supportedActions { action }
        lineItems(first: 50) {
          nodes { id remainingQuantity sku lineItem { id } }
        }
      }
      pageInfo { hasNextPage }
    }
  }
}
"#;

/// Creates one fulfillment with its tracking.
pub const FULFILL_MUTATION: &str = r#"mutation SwitchyardFulfill($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}
"#;

/// A document with the order and line fragments appended (GraphQL needs a
/// fragment's definition in the same document that spreads it).
pub fn with_order_fields(operation: &str) -> String {
    format!("{operation}{ORDER_FIELDS}{LINE_FIELDS}")
}

/// The line-items query as sent, with the line fragment appended.
pub fn order_lines_query() -> String {
    format!("{ORDER_LINES_QUERY}{LINE_FIELDS}")
}

/// The stock mutation with its idempotency key as a GraphQL string literal.
pub fn set_stock_mutation(idempotency_key: &str) -> String {
    SET_STOCK_MUTATION_TEMPLATE.replace("{IDEMPOTENCY_KEY}", &escape_string(idempotency_key))
}

/// Escapes text for the inside of a GraphQL `"…"` string literal.
pub fn escape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A value for Shopify's search syntax, single-quoted (`sku:'A B'`), so that
/// spaces, colons and quotes in a SKU cannot change the query.
pub fn search_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Every document the connector can send, by operation name, as sent (the
/// stock mutation with a sample key). Tests validate each against the schema.
pub fn all_documents() -> Vec<(&'static str, String)> {
    vec![
        ("SwitchyardOrders", with_order_fields(ORDERS_PAGE_QUERY)),
        ("SwitchyardOrder", with_order_fields(ORDER_QUERY)),
        ("SwitchyardOrderLines", order_lines_query()),
        ("SwitchyardCheck", CHECK_QUERY.to_owned()),
        ("SwitchyardVariantsBySku", VARIANTS_BY_SKU_QUERY.to_owned()),
        (
            "SwitchyardPrimaryLocation",
            PRIMARY_LOCATION_QUERY.to_owned(),
        ),
        ("SwitchyardAvailable", AVAILABLE_QUERY.to_owned()),
        (
            "SwitchyardSetStock",
            set_stock_mutation("sample-key \"quoted\" \\ 1"),
        ),
        // A batch of pushes: the same document with many quantities in
        // `$input`, under a key derived from the pushes' keys.
        (
            "SwitchyardSetStock",
            set_stock_mutation("switchyard-batch-100-0123456789abcdef0123456789abcdef"),
        ),
        (
            "SwitchyardFulfillmentState",
            FULFILLMENT_STATE_QUERY.to_owned(),
        ),
        ("SwitchyardFulfill", FULFILL_MUTATION.to_owned()),
    ]
}

/// Whether `query` is one of the documents above (the stock mutation with any
/// key). Replay tests assert that nothing else is ever sent.
pub fn is_known_document(query: &str) -> bool {
    if let Some((head, tail)) = SET_STOCK_MUTATION_TEMPLATE.split_once("{IDEMPOTENCY_KEY}")
        && query.starts_with(head)
        && query.ends_with(tail)
        && query.len() > head.len() + tail.len()
    {
        return true;
    }
    all_documents().iter().any(|(_, d)| d == query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_fragment_reads_as_many_tax_lines_as_normalization_expects() {
        assert!(LINE_FIELDS.contains(&format!("taxLines(first: {TAX_LINES_PER_LINE})")));
    }

    #[test]
    fn string_and_search_escaping() {
        assert_eq!(escape_string(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_string("x\ny"), "x\\ny");
        assert_eq!(search_value("MUG-RED"), "'MUG-RED'");
        assert_eq!(search_value("Bob's \\ mug"), r"'Bob\'s \\ mug'");
    }

    #[test]
    fn reference_uris_are_valid_for_any_key() {
        assert_eq!(uri_component("push-42_a.b~"), "push-42_a.b~");
        assert_eq!(uri_component("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn stock_variables_carry_every_quantity_with_an_explicit_change_from() {
        let v = set_stock_variables(
            "gid://shopify/Location/1",
            "k 1",
            &[
                ("gid://shopify/InventoryItem/1", 7, Some(5)),
                ("gid://shopify/InventoryItem/2", 0, None),
            ],
        );
        let input = &v["input"];
        assert_eq!(
            input["referenceDocumentUri"],
            "gid://switchyard/StockPush/k%201"
        );
        assert_eq!(input["quantities"].as_array().unwrap().len(), 2);
        assert_eq!(input["quantities"][0]["changeFromQuantity"], 5);
        assert!(input["quantities"][1].as_object().unwrap()["changeFromQuantity"].is_null());
    }

    #[test]
    fn the_stock_mutation_carries_its_key_on_the_field() {
        let m = set_stock_mutation("push-42");
        assert!(m.contains(r#"inventorySetQuantities(input: $input) @idempotent(key: "push-42")"#));
        assert!(is_known_document(&m));
        assert!(!is_known_document("query { shop { name } }"));
    }
}
