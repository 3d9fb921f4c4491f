//! The simulated Shopify shop's state: what recorded answers cannot follow.
//!
//! - **Fulfillment.** What is left to fulfil changes with every
//!   `fulfillmentCreate`, so the shop keeps, per order it has seen in its
//!   recorded traffic, the line items still to fulfil and the fulfillments
//!   made, and answers `SwitchyardFulfillmentState` and `SwitchyardFulfill`
//!   from that, the way Shopify would.
//! - **Inventory.** A catalog of SKU → (variant, inventory item), learned
//!   from the recorded traffic (order line items' `variant { id inventoryItem
//!   { id } }`, recorded `productVariants` answers) and added to by tests;
//!   every inventory item is stocked at the shop's one location, and its
//!   `available` quantity there starts at 0. `SwitchyardVariantsBySku`,
//!   `SwitchyardPrimaryLocation`, `SwitchyardSetStock` and the conflict
//!   re-read `SwitchyardAvailable` are answered from that state.
//!   `inventorySetQuantities` behaves as Shopify documents it: the input is
//!   validated (name, reason, reference URI, known item, known location, one
//!   entry per item and location, `changeFromQuantity` given for each, even
//!   as `null`), each problem a user error whose `field` names the
//!   quantity's position (`["input", "quantities", "3", "inventoryItemId"]`);
//!   then compare-and-set: every `changeFromQuantity` that is not `null` must
//!   equal that item's current quantity, else the whole mutation fails with
//!   one `CHANGE_FROM_QUANTITY_STALE` per stale quantity (`field` ending in
//!   `"changeFromQuantity"`) and no quantity changes; otherwise every
//!   quantity is set. More than 250 quantities is refused before it runs,
//!   as Shopify refuses any input array over 250 (a top-level
//!   `MAX_INPUT_SIZE_EXCEEDED` error). A request
//!   repeated with the `@idempotent` key of an earlier successful one gets
//!   the same answer and is not applied again; the same key with other
//!   input is refused with `IDEMPOTENCY_KEY_PARAMETER_MISMATCH`.
//!   A sale on the channel itself is [`Shop::sell`]: a storefront refuses a
//!   checkout for more than is available (Shopify's default inventory
//!   policy, "deny").
//!
//! Every answer carries `extensions.cost` (the figures of the recorded
//! answers to the same operation), which the simulator charges against its
//! cost bucket before the operation runs: a throttled mutation changes nothing.

use std::collections::BTreeMap;

use serde_json::{Value, json};

const ORDER_GID: &str = "gid://shopify/Order/";
const LINE_GID: &str = "gid://shopify/LineItem/";
const FO_GID: &str = "gid://shopify/FulfillmentOrder/";
const FO_LINE_GID: &str = "gid://shopify/FulfillmentOrderLineItem/";
const VARIANT_GID: &str = "gid://shopify/ProductVariant/";
const ITEM_GID: &str = "gid://shopify/InventoryItem/";

/// The simulated shop's name, as the check query reads it.
const SHOP_NAME: &str = "switchyard simulator";

/// The shop's one location (the recorded primary location).
pub const LOCATION_GID: &str = "gid://shopify/Location/905684977";

/// Shopify refuses any input array longer than this (shopify.dev/api/usage/limits).
const MAX_INPUT_ARRAY: usize = 250;

/// Numbers of variants and inventory items added by tests start here, far
/// from the recorded ones.
const FIRST_ADDED_ID: u64 = 70_000_001;

/// The reasons `inventorySetQuantities` accepts (shopify.dev, "inventory
/// adjustment reasons").
const REASONS: [&str; 17] = [
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_canceled",
    "movement_created",
    "movement_received",
    "movement_updated",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
];

/// (requested, actual) query cost of each operation this shop answers: the
/// figures of the recorded answers (`fixtures/shopify/`).
pub fn operation_cost(request: &Value) -> Option<(u32, u32)> {
    cost_by_name(request["operationName"].as_str()?)
}

fn cost_by_name(operation: &str) -> Option<(u32, u32)> {
    Some(match operation {
        "SwitchyardVariantsBySku" => (6, 3),
        "SwitchyardPrimaryLocation" => (1, 1),
        "SwitchyardCheck" => (1, 1),
        "SwitchyardSetStock" => (12, 10),
        "SwitchyardAvailable" => (3, 3),
        "SwitchyardFulfillmentState" => (644, 12),
        "SwitchyardFulfill" => (10, 10),
        _ => return None,
    })
}

/// The `extensions` of an answer to `operation`.
fn cost_of(operation: &str) -> Value {
    let (requested, actual) = cost_by_name(operation).unwrap_or((1, 1));
    json!({ "cost": { "requestedQueryCost": requested, "actualQueryCost": actual } })
}

#[derive(Debug, Clone)]
struct Line {
    id: String,
    sku: Option<String>,
    remaining: u64,
}

#[derive(Debug, Clone, Default)]
struct Book {
    lines: Vec<Line>,
    /// (fulfillment gid, tracking numbers)
    fulfillments: Vec<(String, Vec<String>)>,
}

/// One product variant: its gid and its inventory item's gid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variant {
    id: String,
    item: String,
}

/// The shop: every order the recorded traffic shows (by order gid), and its
/// catalog and stock.
#[derive(Debug, Default)]
pub struct Shop {
    orders: BTreeMap<String, Book>,
    next_fulfillment: u64,
    /// SKU → its variant (one variant per SKU: the first one learned).
    catalog: BTreeMap<String, Variant>,
    /// `available` per (inventory item, location).
    available: BTreeMap<(String, String), i64>,
    /// `@idempotent` key → (the input it came with, the answer given).
    idempotent: BTreeMap<String, (Value, Value)>,
    next_added: u64,
    next_adjustment: u64,
}

impl Shop {
    /// Learns orders from recorded GraphQL poll answers and REST webhook
    /// bodies, and variants from anything recorded that shows one.
    pub fn learn(&mut self, recorded: &Value) {
        self.learn_variants(recorded);
        if let Some(nodes) = recorded["data"]["orders"]["nodes"].as_array() {
            for n in nodes {
                self.learn_graphql(n);
            }
        }
        if let Some(nodes) = recorded["data"]["nodes"].as_array() {
            for n in nodes {
                self.learn_graphql(n);
            }
        }
        if recorded["line_items"].is_array() {
            self.learn_rest(recorded);
        }
    }

    fn learn_graphql(&mut self, n: &Value) {
        let Some(id) = n["id"].as_str().filter(|id| id.starts_with(ORDER_GID)) else {
            return;
        };
        let mut fulfilled: BTreeMap<String, u64> = BTreeMap::new();
        let mut fulfillments = Vec::new();
        for f in n["fulfillments"].as_array().into_iter().flatten() {
            for fl in f["fulfillmentLineItems"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(line) = fl["lineItem"]["id"].as_str() {
                    *fulfilled.entry(line.to_owned()).or_default() +=
                        fl["quantity"].as_u64().unwrap_or(0);
                }
            }
            let numbers = f["trackingInfo"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["number"].as_str().map(str::to_owned))
                .collect();
            fulfillments.push((f["id"].as_str().unwrap_or_default().to_owned(), numbers));
        }
        let lines = n["lineItems"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| {
                let id = l["id"].as_str()?.to_owned();
                // Refunded and removed units are no longer to be fulfilled.
                let quantity = l["currentQuantity"]
                    .as_u64()
                    .or_else(|| l["quantity"].as_u64())
                    .unwrap_or(0);
                let done = fulfilled.get(&id).copied().unwrap_or(0);
                Some(Line {
                    sku: l["sku"].as_str().map(str::to_owned),
                    remaining: quantity.saturating_sub(done),
                    id,
                })
            })
            .collect();
        self.orders.insert(
            id.to_owned(),
            Book {
                lines,
                fulfillments,
            },
        );
    }

    fn learn_rest(&mut self, o: &Value) {
        let Some(id) = o["id"].as_u64() else { return };
        let lines = o["line_items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| {
                Some(Line {
                    id: format!("{LINE_GID}{}", l["id"].as_u64()?),
                    sku: l["sku"].as_str().map(str::to_owned),
                    remaining: l["fulfillable_quantity"]
                        .as_u64()
                        .or_else(|| l["quantity"].as_u64())
                        .unwrap_or(0),
                })
            })
            .collect();
        self.orders
            .entry(format!("{ORDER_GID}{id}"))
            .or_insert(Book {
                lines,
                fulfillments: vec![],
            });
    }

    /// The answer to a fulfillment read or write this shop can give, if the
    /// request is one and names an order it knows.
    pub fn answer(&mut self, request: &Value) -> Option<Value> {
        match request["operationName"].as_str()? {
            "SwitchyardFulfillmentState" => {
                let id = request["variables"]["id"].as_str()?;
                let book = self.orders.get(id)?;
                Some(state(id, book))
            }
            "SwitchyardFulfill" => self.fulfill(&request["variables"]["fulfillment"]),
            "SwitchyardVariantsBySku" => Some(self.variants_by_sku(request)),
            "SwitchyardPrimaryLocation" => Some(json!({
                "data": { "location": { "id": LOCATION_GID } },
                "extensions": cost_of("SwitchyardPrimaryLocation"),
            })),
            "SwitchyardSetStock" => Some(self.set_quantities(request)),
            "SwitchyardCheck" => Some(json!({
                "data": { "shop": { "name": SHOP_NAME } },
                "extensions": cost_of("SwitchyardCheck"),
            })),
            "SwitchyardAvailable" => Some(self.available_answer(&request["variables"])),
            _ => None,
        }
    }

    fn fulfill(&mut self, input: &Value) -> Option<Value> {
        let groups = input["lineItemsByFulfillmentOrder"].as_array()?;
        let order_id = groups.first()?["fulfillmentOrderId"]
            .as_str()?
            .strip_prefix(FO_GID)
            .map(|n| format!("{ORDER_GID}{n}"))?;
        let book = self.orders.get_mut(&order_id)?;
        let mut take: Vec<(usize, u64)> = Vec::new();
        for g in groups {
            let items = g["fulfillmentOrderLineItems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if items.is_empty() {
                take.extend(book.lines.iter().enumerate().map(|(i, l)| (i, l.remaining)));
                continue;
            }
            for item in items {
                let line = item["id"].as_str()?.strip_prefix(FO_LINE_GID)?;
                let i = book
                    .lines
                    .iter()
                    .position(|l| l.id == format!("{LINE_GID}{line}"))?;
                take.push((i, item["quantity"].as_u64().unwrap_or(0)));
            }
        }
        if let Some((i, n)) = take.iter().find(|(i, n)| *n > book.lines[*i].remaining) {
            return Some(user_error(&format!(
                "Quantity {n} exceeds the remaining quantity {} of line {}",
                book.lines[*i].remaining, book.lines[*i].id
            )));
        }
        for (i, n) in take {
            book.lines[i].remaining -= n;
        }
        self.next_fulfillment += 1;
        let id = format!(
            "gid://shopify/Fulfillment/{}",
            900_000 + self.next_fulfillment
        );
        let number = input["trackingInfo"]["number"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        book.fulfillments.push((id.clone(), vec![number]));
        Some(json!({
            "data": { "fulfillmentCreate": { "fulfillment": { "id": id, "status": "SUCCESS" }, "userErrors": [] } },
            "extensions": cost_of("SwitchyardFulfill"),
        }))
    }
}

// --- inventory ---------------------------------------------------------------------

/// One problem with a `SwitchyardSetStock` input, as Shopify reports it.
fn set_error(field: &[&str], message: &str, code: Option<&str>) -> Value {
    json!({ "field": field, "message": message, "code": code })
}

fn set_answer(group: Option<String>, errors: Vec<Value>) -> Value {
    json!({
        "data": { "inventorySetQuantities": {
            "inventoryAdjustmentGroup": group.map(|id| json!({ "id": id })),
            "userErrors": errors,
        }},
        "extensions": cost_of("SwitchyardSetStock"),
    })
}

/// The key of `@idempotent(key: "…")` in a document, unescaped.
fn idempotency_key(document: &str) -> Option<String> {
    let start = document.find("@idempotent(")?;
    let rest = &document[start + "@idempotent(".len()..];
    let rest = rest.trim_start().strip_prefix("key")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let mut key = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(key),
            '\\' => match chars.next()? {
                'n' => key.push('\n'),
                'r' => key.push('\r'),
                't' => key.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    key.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => key.push(other),
            },
            c => key.push(c),
        }
    }
    None
}

/// The value of a `sku:` search term: `sku:'A B'` (quoted, `\` escapes) or `sku:A`.
fn sku_searched(query: &str) -> Option<String> {
    let rest = query.trim().strip_prefix("sku:")?;
    let Some(quoted) = rest.strip_prefix('\'') else {
        return Some(
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
        );
    };
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

/// `first: N` of the first connection in a document.
fn first_argument(document: &str) -> Option<usize> {
    let rest = &document[document.find("first:")? + "first:".len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A URI in the sense Shopify checks `referenceDocumentUri`: a scheme, a
/// colon, and no white space.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(char::is_whitespace)
}

impl Shop {
    /// Learns every variant a recorded answer or webhook body shows with its
    /// SKU and inventory item: order line items (`sku`, `variant { id
    /// inventoryItem { id } }`) and `productVariants` nodes (`id`, `sku`,
    /// `inventoryItem { id }`). The first variant learned for a SKU keeps it.
    fn learn_variants(&mut self, v: &Value) {
        match v {
            Value::Object(map) => {
                let sku = map.get("sku").and_then(Value::as_str);
                let variant = match map.get("variant") {
                    Some(variant) => Some(variant),
                    None if map
                        .get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.starts_with(VARIANT_GID)) =>
                    {
                        Some(v)
                    }
                    None => None,
                };
                if let (Some(sku), Some(variant)) = (sku, variant)
                    && let Some(id) = variant["id"].as_str()
                    && let Some(item) = variant["inventoryItem"]["id"].as_str()
                {
                    self.add_variant(sku, id, item);
                }
                for child in map.values() {
                    self.learn_variants(child);
                }
            }
            Value::Array(list) => {
                for child in list {
                    self.learn_variants(child);
                }
            }
            _ => {}
        }
    }

    fn add_variant(&mut self, sku: &str, id: &str, item: &str) {
        let taken = self.catalog.values().any(|v| v.id == id || v.item == item);
        if sku.trim().is_empty() || self.catalog.contains_key(sku) || taken {
            return;
        }
        self.catalog.insert(
            sku.to_owned(),
            Variant {
                id: id.to_owned(),
                item: item.to_owned(),
            },
        );
        self.available
            .entry((item.to_owned(), LOCATION_GID.to_owned()))
            .or_insert(0);
    }

    /// Adds variants for SKUs the shop does not sell yet (available 0).
    pub fn add_skus(&mut self, skus: &[&str]) {
        for sku in skus {
            if self.catalog.contains_key(*sku) {
                continue;
            }
            let n = FIRST_ADDED_ID + self.next_added;
            self.next_added += 1;
            self.add_variant(sku, &format!("{VARIANT_GID}{n}"), &format!("{ITEM_GID}{n}"));
        }
    }

    pub fn inventory_item(&self, sku: &str) -> Option<String> {
        self.catalog.get(sku).map(|v| v.item.clone())
    }

    /// What the shop shows as available for a SKU at its location; None for
    /// a SKU it does not sell.
    pub fn available_of(&self, sku: &str) -> Option<i64> {
        let v = self.catalog.get(sku)?;
        self.available
            .get(&(v.item.clone(), LOCATION_GID.to_owned()))
            .copied()
    }

    /// A sale in the shop's own storefront: `quantity` units of `sku` leave
    /// `available`. Refused, changing nothing, for a SKU the shop does not
    /// sell or more than is available. Returns what is left.
    pub fn sell(&mut self, sku: &str, quantity: i64) -> Result<i64, String> {
        let v = self
            .catalog
            .get(sku)
            .ok_or_else(|| format!("the shop does not sell {sku:?}"))?;
        let level = self
            .available
            .entry((v.item.clone(), LOCATION_GID.to_owned()))
            .or_insert(0);
        if quantity < 1 || quantity > *level {
            return Err(format!(
                "cannot sell {quantity} of {sku}: {} available",
                *level
            ));
        }
        *level -= quantity;
        Ok(*level)
    }

    /// `productVariants(first: N, query: "sku:…")`: exact SKU matches first,
    /// then variants whose SKU starts with it (Shopify's search is by token,
    /// so `sku:MUG-RED` also finds `MUG-RED-XL`, as recorded), at most N.
    fn variants_by_sku(&self, request: &Value) -> Value {
        let first = request["query"]
            .as_str()
            .and_then(first_argument)
            .unwrap_or(2);
        let searched = request["variables"]["query"]
            .as_str()
            .and_then(sku_searched)
            .unwrap_or_default();
        let node = |(sku, v): (&String, &Variant)| json!({ "id": v.id, "sku": sku, "inventoryItem": { "id": v.item } });
        let nodes: Vec<Value> = if searched.is_empty() {
            vec![]
        } else {
            let exact = self.catalog.get_key_value(&searched).map(node);
            let prefixed = self
                .catalog
                .iter()
                .filter(|(sku, _)| **sku != searched && sku.starts_with(&searched))
                .map(node);
            exact.into_iter().chain(prefixed).take(first).collect()
        };
        json!({
            "data": { "productVariants": { "nodes": nodes } },
            "extensions": cost_of("SwitchyardVariantsBySku"),
        })
    }

    /// `inventoryItem(id) { inventoryLevel(locationId) { quantities(names: ["available"]) } }`.
    fn available_answer(&self, variables: &Value) -> Value {
        let item = variables["item"].as_str().unwrap_or_default();
        let location = variables["location"].as_str().unwrap_or_default();
        let known = self.catalog.values().any(|v| v.item == item);
        let data = if !known {
            json!({ "inventoryItem": null })
        } else {
            match self.available.get(&(item.to_owned(), location.to_owned())) {
                None => json!({ "inventoryItem": { "inventoryLevel": null } }),
                Some(q) => json!({ "inventoryItem": { "inventoryLevel": {
                    "quantities": [{ "name": "available", "quantity": q }],
                }}}),
            }
        };
        json!({ "data": data, "extensions": cost_of("SwitchyardAvailable") })
    }

    /// `inventorySetQuantities`: validate, compare-and-set, apply all or nothing.
    fn set_quantities(&mut self, request: &Value) -> Value {
        let input = &request["variables"]["input"];
        let key = request["query"].as_str().and_then(idempotency_key);
        if let Some(k) = &key
            && let Some((earlier, answer)) = self.idempotent.get(k)
        {
            if earlier == input {
                return answer.clone();
            }
            return set_answer(
                None,
                vec![set_error(
                    &["input"],
                    "The same idempotency key cannot be used with different operation parameters.",
                    Some("IDEMPOTENCY_KEY_PARAMETER_MISMATCH"),
                )],
            );
        }

        let mut errors = Vec::new();
        let name = input["name"].as_str().unwrap_or_default();
        if !matches!(name, "available" | "on_hand") {
            errors.push(set_error(
                &["input", "name"],
                "The quantity name must be either 'available' or 'on_hand'.",
                Some("INVALID_NAME"),
            ));
        }
        if !input["reason"]
            .as_str()
            .is_some_and(|r| REASONS.contains(&r))
        {
            errors.push(set_error(
                &["input", "reason"],
                "The specified reason is invalid.",
                Some("INVALID_REASON"),
            ));
        }
        if let Some(uri) = input.get("referenceDocumentUri").filter(|u| !u.is_null())
            && !uri.as_str().is_some_and(is_uri)
        {
            errors.push(set_error(
                &["input", "referenceDocumentUri"],
                "The reference document URI is not a valid URI.",
                Some("INVALID_REFERENCE_DOCUMENT"),
            ));
        }
        let quantities = input["quantities"].as_array().cloned().unwrap_or_default();
        if quantities.len() > MAX_INPUT_ARRAY {
            return json!({
                "errors": [{
                    "message": format!(
                        "The input array size of {} is greater than the maximum allowed of {MAX_INPUT_ARRAY}.",
                        quantities.len()
                    ),
                    "path": ["inventorySetQuantities", "input", "quantities"],
                    "extensions": { "code": "MAX_INPUT_SIZE_EXCEEDED" },
                }],
                "extensions": cost_of("SwitchyardSetStock"),
            });
        }
        if quantities.is_empty() {
            errors.push(set_error(
                &["input", "quantities"],
                "At least one quantity must be given.",
                None,
            ));
        }
        // (item, location, quantity, changeFromQuantity) of each valid entry.
        let mut changes: Vec<(String, String, i64, Option<i64>)> = Vec::new();
        for (i, q) in quantities.iter().enumerate() {
            let i = i.to_string();
            let at = |f: &'static str| -> Vec<&str> { vec!["input", "quantities", &i, f] };
            let item = q["inventoryItemId"].as_str().unwrap_or_default();
            let location = q["locationId"].as_str().unwrap_or_default();
            let mut ok = true;
            if !self.catalog.values().any(|v| v.item == item) {
                errors.push(set_error(
                    &at("inventoryItemId"),
                    "The specified inventory item could not be found.",
                    Some("INVALID_INVENTORY_ITEM"),
                ));
                ok = false;
            }
            if location != LOCATION_GID {
                errors.push(set_error(
                    &at("locationId"),
                    "The specified location could not be found.",
                    Some("INVALID_LOCATION"),
                ));
                ok = false;
            }
            let Some(quantity) = q["quantity"].as_i64() else {
                errors.push(set_error(
                    &at("quantity"),
                    "The quantity must be a whole number.",
                    None,
                ));
                continue;
            };
            let change_from = match q.get("changeFromQuantity") {
                None => {
                    errors.push(set_error(
                        &at("changeFromQuantity"),
                        "changeFromQuantity must be given for each quantity (null to skip the check).",
                        None,
                    ));
                    continue;
                }
                Some(Value::Null) => None,
                Some(v) => match v.as_i64() {
                    Some(n) => Some(n),
                    None => {
                        errors.push(set_error(
                            &at("changeFromQuantity"),
                            "changeFromQuantity must be a whole number or null.",
                            None,
                        ));
                        continue;
                    }
                },
            };
            if changes
                .iter()
                .any(|(it, loc, ..)| it == item && loc == location)
            {
                errors.push(set_error(
                    &at("inventoryItemId"),
                    "The combination of inventoryItemId and locationId must be unique.",
                    Some("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR"),
                ));
                continue;
            }
            if ok {
                changes.push((item.to_owned(), location.to_owned(), quantity, change_from));
            }
        }
        if !errors.is_empty() {
            return set_answer(None, errors);
        }

        // Compare-and-set: every entry must still hold what it says it changes from.
        let stale: Vec<Value> = changes
            .iter()
            .enumerate()
            .filter(|(_, (item, location, _, from))| {
                from.is_some_and(|f| {
                    let now = self.available.get(&(item.clone(), location.clone()));
                    now.copied().unwrap_or(0) != f
                })
            })
            .map(|(i, _)| {
                set_error(
                    &["input", "quantities", &i.to_string(), "changeFromQuantity"],
                    "The specified compare quantity does not match the current quantity.",
                    Some("CHANGE_FROM_QUANTITY_STALE"),
                )
            })
            .collect();
        if !stale.is_empty() {
            return set_answer(None, stale);
        }

        // No committed or reserved units are modelled: on_hand is available.
        for (item, location, quantity, _) in changes {
            self.available.insert((item, location), quantity);
        }
        self.next_adjustment += 1;
        let answer = set_answer(
            Some(format!(
                "gid://shopify/InventoryAdjustmentGroup/{}",
                800_000 + self.next_adjustment
            )),
            vec![],
        );
        if let Some(k) = key {
            self.idempotent.insert(k, (input.clone(), answer.clone()));
        }
        answer
    }
}

fn state(order_id: &str, book: &Book) -> Value {
    let number = order_id.trim_start_matches(ORDER_GID);
    let open = book.lines.iter().any(|l| l.remaining > 0);
    let lines: Vec<Value> = book
        .lines
        .iter()
        .map(|l| {
            json!({
                "id": format!("{FO_LINE_GID}{}", l.id.trim_start_matches(LINE_GID)),
                "remainingQuantity": l.remaining,
                "sku": l.sku,
                "lineItem": { "id": l.id },
            })
        })
        .collect();
    let fulfillments: Vec<Value> = book
        .fulfillments
        .iter()
        .map(|(id, numbers)| {
            json!({
                "id": id,
                "status": "SUCCESS",
                "trackingInfo": numbers.iter().map(|n| json!({ "number": n })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "data": { "order": {
            "id": order_id,
            "fulfillments": fulfillments,
            "fulfillmentOrders": {
                "nodes": [{
                    "id": format!("{FO_GID}{number}"),
                    "status": if open { "OPEN" } else { "CLOSED" },
                    "supportedActions": if open { json!([{ "action": "CREATE_FULFILLMENT" }]) } else { json!([]) },
                    "lineItems": { "nodes": lines },
                }],
                "pageInfo": { "hasNextPage": false },
            },
        }},
        "extensions": cost_of("SwitchyardFulfillmentState"),
    })
}

fn user_error(message: &str) -> Value {
    json!({
        "data": { "fulfillmentCreate": { "fulfillment": null, "userErrors": [{ "field": ["fulfillment"], "message": message }] } },
        "extensions": cost_of("SwitchyardFulfill"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(op: &str, variables: Value) -> Value {
        json!({ "operationName": op, "variables": variables })
    }

    #[test]
    fn a_fulfillment_changes_what_is_left_and_is_read_back() {
        let mut shop = Shop::default();
        shop.learn(&json!({ "data": { "orders": { "nodes": [{
            "id": "gid://shopify/Order/1",
            "lineItems": { "nodes": [
                { "id": "gid://shopify/LineItem/11", "sku": "A", "quantity": 2 },
                { "id": "gid://shopify/LineItem/12", "sku": "B", "quantity": 1 },
            ]},
            "fulfillments": [],
        }]}}}));
        let s = shop
            .answer(&request(
                "SwitchyardFulfillmentState",
                json!({ "id": "gid://shopify/Order/1" }),
            ))
            .unwrap();
        let fo = &s["data"]["order"]["fulfillmentOrders"]["nodes"][0];
        assert_eq!(fo["status"], "OPEN");
        assert_eq!(fo["lineItems"]["nodes"][0]["remainingQuantity"], 2);

        let partial = json!({
            "lineItemsByFulfillmentOrder": [{ "fulfillmentOrderId": fo["id"], "fulfillmentOrderLineItems": [
                { "id": "gid://shopify/FulfillmentOrderLineItem/11", "quantity": 1 } ] }],
            "trackingInfo": { "number": "1Z1" },
        });
        let r = shop
            .answer(&request(
                "SwitchyardFulfill",
                json!({ "fulfillment": partial }),
            ))
            .unwrap();
        assert_eq!(r["data"]["fulfillmentCreate"]["userErrors"], json!([]));
        let too_many = json!({
            "lineItemsByFulfillmentOrder": [{ "fulfillmentOrderId": fo["id"], "fulfillmentOrderLineItems": [
                { "id": "gid://shopify/FulfillmentOrderLineItem/12", "quantity": 5 } ] }],
            "trackingInfo": { "number": "1Z2" },
        });
        let r = shop
            .answer(&request(
                "SwitchyardFulfill",
                json!({ "fulfillment": too_many }),
            ))
            .unwrap();
        assert_eq!(
            r["data"]["fulfillmentCreate"]["userErrors"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        let s = shop
            .answer(&request(
                "SwitchyardFulfillmentState",
                json!({ "id": "gid://shopify/Order/1" }),
            ))
            .unwrap();
        let order = &s["data"]["order"];
        assert_eq!(order["fulfillments"][0]["trackingInfo"][0]["number"], "1Z1");
        assert_eq!(
            order["fulfillmentOrders"]["nodes"][0]["lineItems"]["nodes"][0]["remainingQuantity"],
            1
        );
        assert!(
            shop.answer(&request(
                "SwitchyardFulfillmentState",
                json!({ "id": "gid://shopify/Order/404" })
            ))
            .is_none()
        );
    }

    fn set_stock(key: &str, item: &str, quantity: i64, from: Option<i64>) -> Value {
        json!({
            "operationName": "SwitchyardSetStock",
            "query": crate::graphql::set_stock_mutation(key),
            "variables": { "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": format!("gid://switchyard/StockPush/{key}"),
                "quantities": [{
                    "inventoryItemId": item,
                    "locationId": LOCATION_GID,
                    "quantity": quantity,
                    "changeFromQuantity": from,
                }],
            }},
        })
    }

    fn codes(answer: &Value) -> Vec<String> {
        answer["data"]["inventorySetQuantities"]["userErrors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["code"].as_str().unwrap_or("-").to_owned())
            .collect()
    }

    fn lookup(shop: &mut Shop, sku: &str) -> Vec<(String, String)> {
        let r = shop
            .answer(&json!({
                "operationName": "SwitchyardVariantsBySku",
                "query": crate::graphql::VARIANTS_BY_SKU_QUERY,
                "variables": { "query": format!("sku:{}", crate::graphql::search_value(sku)) },
            }))
            .unwrap();
        r["data"]["productVariants"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["sku"].as_str().unwrap().to_owned(),
                    n["inventoryItem"]["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn the_catalog_is_learned_from_line_items_and_variant_answers() {
        let mut shop = Shop::default();
        shop.learn(&json!({ "data": { "orders": { "nodes": [{
            "id": "gid://shopify/Order/1",
            "lineItems": { "nodes": [
                { "id": "gid://shopify/LineItem/11", "sku": "MUG-RED", "quantity": 1,
                  "variant": { "id": "gid://shopify/ProductVariant/42001", "inventoryItem": { "id": "gid://shopify/InventoryItem/44001" } } },
                { "id": "gid://shopify/LineItem/12", "sku": "GIFT", "quantity": 1, "variant": null },
            ]},
            "fulfillments": [],
        }]}}}));
        shop.learn(&json!({ "data": { "productVariants": { "nodes": [
            { "id": "gid://shopify/ProductVariant/42003", "sku": "MUG-RED-XL", "inventoryItem": { "id": "gid://shopify/InventoryItem/44003" } },
            // A second variant claiming a known SKU does not replace the first.
            { "id": "gid://shopify/ProductVariant/49999", "sku": "MUG-RED", "inventoryItem": { "id": "gid://shopify/InventoryItem/49999" } },
        ]}}}));
        shop.add_skus(&["TEST-1", "MUG-RED"]);
        assert_eq!(
            lookup(&mut shop, "MUG-RED"),
            [
                ("MUG-RED".into(), "gid://shopify/InventoryItem/44001".into()),
                (
                    "MUG-RED-XL".into(),
                    "gid://shopify/InventoryItem/44003".into()
                ),
            ]
        );
        assert_eq!(
            lookup(&mut shop, "TEST-1")[0].1,
            "gid://shopify/InventoryItem/70000001"
        );
        assert!(lookup(&mut shop, "GIFT").is_empty());
        assert!(lookup(&mut shop, "NOT-SOLD-HERE").is_empty());
        assert_eq!(shop.available_of("MUG-RED"), Some(0));
        assert_eq!(shop.available_of("GIFT"), None);
        let loc = shop
            .answer(&json!({ "operationName": "SwitchyardPrimaryLocation" }))
            .unwrap();
        assert_eq!(loc["data"]["location"]["id"], LOCATION_GID);
    }

    #[test]
    fn stock_is_set_with_compare_and_set_and_read_back() {
        let mut shop = Shop::default();
        shop.add_skus(&["A"]);
        let item = lookup(&mut shop, "A")[0].1.clone();

        // null skips the check; the same value as now passes it.
        let r = shop.answer(&set_stock("k1", &item, 7, None)).unwrap();
        assert_eq!(codes(&r), Vec::<String>::new());
        assert!(r["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"]["id"].is_string());
        assert_eq!(r["extensions"]["cost"]["requestedQueryCost"], 12);
        let r = shop.answer(&set_stock("k2", &item, 5, Some(7))).unwrap();
        assert_eq!(codes(&r), Vec::<String>::new());
        assert_eq!(shop.available_of("A"), Some(5));

        // A sale in the storefront; a stale compare value changes nothing.
        assert_eq!(shop.sell("A", 2), Ok(3));
        assert!(shop.sell("A", 4).is_err());
        let r = shop.answer(&set_stock("k3", &item, 9, Some(5))).unwrap();
        assert_eq!(codes(&r), ["CHANGE_FROM_QUANTITY_STALE"]);
        let e = &r["data"]["inventorySetQuantities"];
        assert!(e["inventoryAdjustmentGroup"].is_null());
        assert_eq!(
            e["userErrors"][0]["field"],
            json!(["input", "quantities", "0", "changeFromQuantity"])
        );
        assert_eq!(
            e["userErrors"][0]["message"],
            "The specified compare quantity does not match the current quantity."
        );
        assert_eq!(shop.available_of("A"), Some(3));
        let read = shop
            .answer(&json!({ "operationName": "SwitchyardAvailable",
                "variables": { "item": item, "location": LOCATION_GID } }))
            .unwrap();
        assert_eq!(
            read["data"]["inventoryItem"]["inventoryLevel"]["quantities"],
            json!([{ "name": "available", "quantity": 3 }])
        );

        // The same key and input again: the first answer, not applied twice.
        let first = shop.answer(&set_stock("k4", &item, 8, Some(3))).unwrap();
        shop.sell("A", 1).unwrap();
        let again = shop.answer(&set_stock("k4", &item, 8, Some(3))).unwrap();
        assert_eq!(first, again);
        assert_eq!(shop.available_of("A"), Some(7));
        let other = shop.answer(&set_stock("k4", &item, 1, None)).unwrap();
        assert_eq!(codes(&other), ["IDEMPOTENCY_KEY_PARAMETER_MISMATCH"]);
        assert_eq!(shop.available_of("A"), Some(7));
    }

    /// A `SwitchyardSetStock` with many quantities: (item, quantity, changeFromQuantity).
    fn set_many(key: &str, quantities: &[(&str, i64, Option<i64>)]) -> Value {
        let mut request = set_stock(key, "-", 0, None);
        request["variables"]["input"]["quantities"] = quantities
            .iter()
            .map(|(item, quantity, from)| {
                json!({ "inventoryItemId": item, "locationId": LOCATION_GID,
                        "quantity": quantity, "changeFromQuantity": from })
            })
            .collect();
        request
    }

    fn fields(answer: &Value) -> Vec<Value> {
        answer["data"]["inventorySetQuantities"]["userErrors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].clone())
            .collect()
    }

    #[test]
    fn many_quantities_are_set_all_or_nothing_with_errors_by_position() {
        let mut shop = Shop::default();
        shop.add_skus(&["A", "B", "C", "D"]);
        let item = |shop: &mut Shop, sku: &str| lookup(shop, sku)[0].1.clone();
        let (a, b, c, d) = (
            item(&mut shop, "A"),
            item(&mut shop, "B"),
            item(&mut shop, "C"),
            item(&mut shop, "D"),
        );
        let r = shop
            .answer(&set_many(
                "m1",
                &[
                    (&a, 5, None),
                    (&b, 6, None),
                    (&c, 7, Some(0)),
                    (&d, 8, None),
                ],
            ))
            .unwrap();
        assert_eq!(codes(&r), Vec::<String>::new());
        assert_eq!(r["extensions"]["cost"]["requestedQueryCost"], 12);
        let now = |shop: &Shop| ["A", "B", "C", "D"].map(|s| shop.available_of(s).unwrap());
        assert_eq!(now(&shop), [5, 6, 7, 8]);

        // Two of four stale: refused whole, each stale one named by position.
        shop.sell("B", 1).unwrap();
        shop.sell("D", 2).unwrap();
        let stale = set_many(
            "m2",
            &[
                (&a, 1, Some(5)),
                (&b, 1, Some(6)),
                (&c, 1, Some(7)),
                (&d, 1, Some(8)),
            ],
        );
        let r = shop.answer(&stale).unwrap();
        assert_eq!(codes(&r), [STALE_CODE, STALE_CODE]);
        assert_eq!(
            fields(&r),
            [
                json!(["input", "quantities", "1", "changeFromQuantity"]),
                json!(["input", "quantities", "3", "changeFromQuantity"]),
            ]
        );
        assert!(r["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"].is_null());
        assert_eq!(now(&shop), [5, 5, 7, 6], "nothing changed");
        // A failed call is not remembered under its key: the same key and
        // input run again (and fail again while stale).
        assert_eq!(
            codes(&shop.answer(&stale).unwrap()),
            [STALE_CODE, STALE_CODE]
        );

        // The rest alone goes through, once for its key.
        let rest = set_many("m3", &[(&a, 1, Some(5)), (&c, 1, Some(7))]);
        let first = shop.answer(&rest).unwrap();
        assert_eq!(codes(&first), Vec::<String>::new());
        shop.sell("C", 1).unwrap();
        assert_eq!(
            shop.answer(&rest).unwrap(),
            first,
            "replayed, not applied again"
        );
        assert_eq!(now(&shop), [1, 5, 0, 6]);

        // Input problems are named by position too, and refuse the whole call.
        let bad = set_many(
            "m4",
            &[
                (&a, 2, None),
                ("gid://shopify/InventoryItem/1", 2, None),
                (&a, 3, None),
            ],
        );
        let r = shop.answer(&bad).unwrap();
        assert_eq!(
            codes(&r),
            [
                "INVALID_INVENTORY_ITEM",
                "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR"
            ]
        );
        assert_eq!(
            fields(&r),
            [
                json!(["input", "quantities", "1", "inventoryItemId"]),
                json!(["input", "quantities", "2", "inventoryItemId"]),
            ]
        );
        assert_eq!(now(&shop), [1, 5, 0, 6]);

        // Over Shopify's input cap: refused before it runs.
        let many: Vec<(&str, i64, Option<i64>)> = (0..251).map(|_| (a.as_str(), 1, None)).collect();
        let r = shop.answer(&set_many("m5", &many)).unwrap();
        assert_eq!(
            r["errors"][0]["extensions"]["code"],
            "MAX_INPUT_SIZE_EXCEEDED"
        );
        assert_eq!(now(&shop), [1, 5, 0, 6]);
    }

    const STALE_CODE: &str = "CHANGE_FROM_QUANTITY_STALE";

    #[test]
    fn bad_stock_input_is_refused_whole() {
        let mut shop = Shop::default();
        shop.add_skus(&["A"]);
        let item = lookup(&mut shop, "A")[0].1.clone();
        let mut bad = set_stock("k", "gid://shopify/InventoryItem/1", 4, None);
        bad["variables"]["input"]["reason"] = json!("because");
        bad["variables"]["input"]["quantities"][0]["locationId"] =
            json!("gid://shopify/Location/1");
        assert_eq!(
            codes(&shop.answer(&bad).unwrap()),
            [
                "INVALID_REASON",
                "INVALID_INVENTORY_ITEM",
                "INVALID_LOCATION"
            ]
        );
        let mut missing = set_stock("k", &item, 4, None);
        missing["variables"]["input"]["quantities"][0]
            .as_object_mut()
            .unwrap()
            .remove("changeFromQuantity");
        assert_eq!(codes(&shop.answer(&missing).unwrap()), ["-"]);
        assert_eq!(shop.available_of("A"), Some(0));
        let unknown = shop
            .answer(&json!({ "operationName": "SwitchyardAvailable",
                "variables": { "item": "gid://shopify/InventoryItem/1", "location": LOCATION_GID } }))
            .unwrap();
        assert!(unknown["data"]["inventoryItem"].is_null());
    }

    #[test]
    fn idempotency_keys_and_search_values_are_unescaped() {
        let doc = crate::graphql::set_stock_mutation("a \"b\" \\ c\n");
        assert_eq!(idempotency_key(&doc).as_deref(), Some("a \"b\" \\ c\n"));
        assert_eq!(
            sku_searched(&format!(
                "sku:{}",
                crate::graphql::search_value("Bob's \\ mug")
            )),
            Some("Bob's \\ mug".into())
        );
        assert_eq!(sku_searched("sku:PLAIN"), Some("PLAIN".into()));
        assert_eq!(
            first_argument(crate::graphql::VARIANTS_BY_SKU_QUERY),
            Some(2)
        );
    }
}
