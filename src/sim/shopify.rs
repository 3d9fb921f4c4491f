//! The simulated Shopify shop's fulfillment state. Recorded answers cannot
//! follow a tracking push (what is left to fulfil changes with every
//! `fulfillmentCreate`), so the simulator keeps, per order it has seen in
//! its recorded traffic, the line items still to fulfil and the fulfillments
//! made, and answers `SwitchyardFulfillmentState` and `SwitchyardFulfill` from
//! that, the way Shopify would.

use std::collections::BTreeMap;

use serde_json::{Value, json};

const ORDER_GID: &str = "gid://shopify/Order/";
const LINE_GID: &str = "gid://shopify/LineItem/";
const FO_GID: &str = "gid://shopify/FulfillmentOrder/";
const FO_LINE_GID: &str = "gid://shopify/FulfillmentOrderLineItem/";

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

/// Every order the recorded traffic shows, by order gid.
#[derive(Debug, Default)]
pub struct Shop {
    orders: BTreeMap<String, Book>,
    next_fulfillment: u64,
}

impl Shop {
    /// Learns orders from recorded GraphQL poll answers and REST webhook bodies.
    pub fn learn(&mut self, recorded: &Value) {
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
                let quantity = l["quantity"].as_u64().unwrap_or(0);
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
            "extensions": { "cost": { "requestedQueryCost": 10, "actualQueryCost": 10 } },
        }))
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
        "extensions": { "cost": { "requestedQueryCost": 644, "actualQueryCost": 12 } },
    })
}

fn user_error(message: &str) -> Value {
    json!({
        "data": { "fulfillmentCreate": { "fulfillment": null, "userErrors": [{ "field": ["fulfillment"], "message": message }] } },
        "extensions": { "cost": { "requestedQueryCost": 10, "actualQueryCost": 10 } },
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
}
