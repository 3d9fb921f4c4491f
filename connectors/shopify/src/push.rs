//! Pushes back to Shopify: stock levels (`inventorySetQuantities`) and
//! shipments (`fulfillmentCreate`).
//!
//! Stock is set, never adjusted, at one location, with compare-and-set: the
//! daemon passes the last quantity Shopify confirmed as `changeFromQuantity`
//! (explicit `null` when it knows none, which opts out of the check). When
//! Shopify answers `CHANGE_FROM_QUANTITY_STALE` something sold or was edited
//! on the channel since; the push reads what Shopify shows now and reports a
//! `Conflict` instead of overwriting it. Every set carries the daemon's
//! idempotency key (`@idempotent`, required from API 2026-04), so a retry
//! after a timeout cannot apply twice.
//!
//! `fulfillmentCreate` has no idempotency key, so a tracking push reads the
//! order first: a fulfillment that already carries the tracking number means
//! an earlier attempt went through (`AlreadyThere`). Otherwise the shipment
//! is mapped onto the fulfillment orders that can still be fulfilled: the
//! whole order (a shipment without lines) fulfils each of them completely;
//! a partial shipment allocates each canonical line's quantity to the
//! fulfillment order line items of that order line, up to what remains.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::json;
use switchyard_contract::{
    ConnectorError, InventoryPush, InventoryResult, TrackingPush, TrackingResult,
};

use crate::carrier;
use crate::client::GraphqlClient;
use crate::graphql;
use crate::normalize::numeric_id;
use crate::wire::{
    AvailableData, FulfillmentCreateData, FulfillmentStateData, GqlUserError, PrimaryLocationData,
    SetQuantitiesData, VariantsBySkuData,
};

const INVENTORY_ITEM_GID: &str = "gid://shopify/InventoryItem/";

/// `listing_ref` as an inventory item GID: the GID itself or its number.
pub fn inventory_item_gid(listing_ref: &str) -> Result<String, ConnectorError> {
    let r = listing_ref.trim();
    let n = r.strip_prefix(INVENTORY_ITEM_GID).unwrap_or(r);
    if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("{INVENTORY_ITEM_GID}{n}"))
    } else {
        Err(ConnectorError::Config(format!(
            "listing_ref {listing_ref:?} is not a Shopify inventory item id"
        )))
    }
}

fn user_errors(operation: &str, errors: &[GqlUserError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let field = e.field.as_ref().map(|f| f.join(".")).unwrap_or_default();
            match (&e.code, field.is_empty()) {
                (Some(code), false) => format!("{code} at {field}: {}", e.message),
                (Some(code), true) => format!("{code}: {}", e.message),
                (None, false) => format!("{field}: {}", e.message),
                (None, true) => e.message.clone(),
            }
        })
        .collect();
    format!("{operation}: {}", parts.join("; "))
}

/// Percent-encodes what is not an RFC 3986 unreserved character, so any key
/// makes a valid `referenceDocumentUri`.
fn uri_component(s: &str) -> String {
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

/// The location stock is set at: the configured one, else the shop's primary
/// location, looked up once and remembered for the life of the connector.
async fn location(
    client: &GraphqlClient,
    cache: &Mutex<Option<String>>,
) -> Result<String, ConnectorError> {
    if let Some(l) = cache.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        return Ok(l);
    }
    let data: PrimaryLocationData = client
        .execute(
            "SwitchyardPrimaryLocation",
            graphql::PRIMARY_LOCATION_QUERY,
            json!({}),
        )
        .await?;
    let id = data
        .location
        .map(|l| l.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ConnectorError::Rejected {
            status: None,
            detail: "SwitchyardPrimaryLocation: the shop has no primary location; set location_id"
                .into(),
        })?;
    *cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
    Ok(id)
}

/// The inventory item of the one variant with exactly this SKU.
async fn inventory_item_for_sku(
    client: &GraphqlClient,
    sku: &str,
) -> Result<Option<String>, ConnectorError> {
    let data: VariantsBySkuData = client
        .execute(
            "SwitchyardVariantsBySku",
            graphql::VARIANTS_BY_SKU_QUERY,
            json!({ "query": format!("sku:{}", graphql::search_value(sku)) }),
        )
        .await?;
    let exact: Vec<_> = data
        .product_variants
        .nodes
        .iter()
        .filter(|v| v.sku.as_deref() == Some(sku))
        .collect();
    match exact.as_slice() {
        [] => Ok(None),
        [one] => one
            .inventory_item
            .as_ref()
            .map(|i| Some(i.id.clone()))
            .ok_or_else(|| {
                ConnectorError::Decode(format!("variant with sku {sku:?} has no inventory item"))
            }),
        _ => Err(ConnectorError::Rejected {
            status: None,
            detail: format!(
                "sku {sku:?} is on more than one Shopify variant; set one listing_ref per variant or make the SKUs unique"
            ),
        }),
    }
}

pub(crate) async fn push_inventory(
    client: &GraphqlClient,
    location_cache: &Mutex<Option<String>>,
    push: &InventoryPush,
) -> Result<InventoryResult, ConnectorError> {
    let item = match &push.listing_ref {
        Some(r) => inventory_item_gid(r)?,
        None => match inventory_item_for_sku(client, &push.sku).await? {
            Some(item) => item,
            None => return Ok(InventoryResult::NotListed),
        },
    };
    let location = location(client, location_cache).await?;
    let variables = json!({
        "input": {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": format!("gid://switchyard/StockPush/{}", uri_component(&push.idempotency_key)),
            "quantities": [{
                "inventoryItemId": item,
                "locationId": location,
                "quantity": push.quantity,
                // Explicit null opts out of the compare-and-set; it must be sent.
                "changeFromQuantity": push.last_confirmed,
            }],
        }
    });
    let data: SetQuantitiesData = client
        .execute(
            "SwitchyardSetStock",
            &graphql::set_stock_mutation(&push.idempotency_key),
            variables,
        )
        .await?;
    let payload = data
        .inventory_set_quantities
        .ok_or_else(|| ConnectorError::Decode("SwitchyardSetStock: no payload".into()))?;
    let code = |c: &str| {
        payload
            .user_errors
            .iter()
            .any(|e| e.code.as_deref() == Some(c))
    };
    if code("CHANGE_FROM_QUANTITY_STALE") {
        let current = available(client, &item, &location).await?;
        return Ok(InventoryResult::Conflict { current });
    }
    if code("IDEMPOTENCY_CONCURRENT_REQUEST") {
        return Err(ConnectorError::Transient(user_errors(
            "SwitchyardSetStock",
            &payload.user_errors,
        )));
    }
    if !payload.user_errors.is_empty() {
        return Err(ConnectorError::Rejected {
            status: None,
            detail: user_errors("SwitchyardSetStock", &payload.user_errors),
        });
    }
    Ok(InventoryResult::Set {
        quantity: push.quantity,
        listing_ref: Some(item),
    })
}

/// What Shopify shows as available. Shopify allows negative availability
/// (oversold); the contract's quantities are unsigned, so that reads as 0.
async fn available(
    client: &GraphqlClient,
    item: &str,
    location: &str,
) -> Result<u32, ConnectorError> {
    let data: AvailableData = client
        .execute(
            "SwitchyardAvailable",
            graphql::AVAILABLE_QUERY,
            json!({ "item": item, "location": location }),
        )
        .await?;
    let level = data
        .inventory_item
        .and_then(|i| i.inventory_level)
        .ok_or_else(|| ConnectorError::Rejected {
            status: None,
            detail: format!("SwitchyardAvailable: {item} is not stocked at {location}"),
        })?;
    let q = level
        .quantities
        .iter()
        .find(|q| q.name == "available")
        .map(|q| q.quantity)
        .ok_or_else(|| {
            ConnectorError::Decode("SwitchyardAvailable: no available quantity".into())
        })?;
    Ok(u32::try_from(q.max(0)).unwrap_or(u32::MAX))
}

pub(crate) async fn push_tracking(
    client: &GraphqlClient,
    notify_customer: bool,
    push: &TrackingPush,
) -> Result<TrackingResult, ConnectorError> {
    let order_gid = format!(
        "gid://shopify/Order/{}",
        numeric_id(&push.order.channel_order_id)
    );
    let data: FulfillmentStateData = client
        .execute(
            "SwitchyardFulfillmentState",
            graphql::FULFILLMENT_STATE_QUERY,
            json!({ "id": order_gid }),
        )
        .await?;
    let order = data.order.ok_or_else(|| ConnectorError::Rejected {
        status: None,
        detail: format!("SwitchyardFulfillmentState: order {order_gid} not found"),
    })?;

    let number = push.shipment.tracking_number.trim();
    if !number.is_empty() {
        let earlier = order.fulfillments.iter().find(|f| {
            f.status.as_deref() != Some("CANCELLED")
                && f.tracking_info
                    .iter()
                    .any(|t| t.number.as_deref().map(str::trim) == Some(number))
        });
        if let Some(f) = earlier {
            return Ok(TrackingResult::AlreadyThere {
                channel_ref: Some(f.id.clone()),
            });
        }
    }
    if order.fulfillment_orders.page_info.has_next_page {
        return Err(ConnectorError::Rejected {
            status: None,
            detail: format!(
                "order {order_gid} has more than 5 fulfillment orders; fulfil it in Shopify"
            ),
        });
    }

    let open: Vec<_> = order
        .fulfillment_orders
        .nodes
        .iter()
        .filter(|fo| {
            if fo.supported_actions.is_empty() {
                matches!(fo.status.as_deref(), Some("OPEN" | "IN_PROGRESS"))
            } else {
                fo.supported_actions
                    .iter()
                    .any(|a| a.action == "CREATE_FULFILLMENT")
            }
        })
        .collect();

    let mut by_fo: Vec<serde_json::Value> = Vec::new();
    if push.shipment.lines.is_empty() {
        for fo in &open {
            if fo.line_items.nodes.iter().any(|l| l.remaining_quantity > 0) {
                by_fo.push(json!({ "fulfillmentOrderId": fo.id, "fulfillmentOrderLineItems": [] }));
            }
        }
    } else {
        // index of an open fulfillment order → [(its line item id, quantity)], in Shopify's order.
        let mut alloc: BTreeMap<usize, Vec<(String, i64)>> = BTreeMap::new();
        let mut remaining: BTreeMap<String, i64> = open
            .iter()
            .flat_map(|fo| {
                fo.line_items
                    .nodes
                    .iter()
                    .map(|l| (l.id.clone(), l.remaining_quantity))
            })
            .collect();
        for line in &push.shipment.lines {
            let mut need = i64::from(line.quantity);
            let by_id = open.iter().any(|fo| {
                fo.line_items
                    .nodes
                    .iter()
                    .any(|l| numeric_id(&l.line_item.id) == line.line_id)
            });
            for (fi, fo) in open.iter().enumerate() {
                for l in &fo.line_items.nodes {
                    let matches = if by_id {
                        numeric_id(&l.line_item.id) == line.line_id
                    } else {
                        line.sku.is_some() && l.sku == line.sku
                    };
                    if need == 0 || !matches {
                        continue;
                    }
                    let left = remaining
                        .get_mut(&l.id)
                        .expect("every open line item is counted");
                    let take = need.min(*left);
                    if take > 0 {
                        *left -= take;
                        need -= take;
                        alloc.entry(fi).or_default().push((l.id.clone(), take));
                    }
                }
            }
            if need > 0 {
                return Err(ConnectorError::Rejected {
                    status: None,
                    detail: format!(
                        "order {order_gid} line {} ({}): {need} more than Shopify has left to fulfil",
                        line.line_id,
                        line.sku.as_deref().unwrap_or("no sku")
                    ),
                });
            }
        }
        for (fi, items) in alloc {
            by_fo.push(json!({
                "fulfillmentOrderId": open[fi].id,
                "fulfillmentOrderLineItems": items
                    .iter()
                    .map(|(id, q)| json!({ "id": id, "quantity": q }))
                    .collect::<Vec<_>>(),
            }));
        }
    }
    if by_fo.is_empty() {
        return Err(ConnectorError::Rejected {
            status: None,
            detail: format!(
                "order {order_gid} has nothing left to fulfil, and no fulfillment carries tracking number {number:?}"
            ),
        });
    }

    let mut tracking = serde_json::Map::new();
    let company = push.shipment.carrier.trim();
    if !company.is_empty() {
        tracking.insert("company".into(), json!(carrier::shopify_company(company)));
    }
    if !number.is_empty() {
        tracking.insert("number".into(), json!(number));
    }
    if let Some(url) = push
        .shipment
        .tracking_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        tracking.insert("url".into(), json!(url));
    }
    let variables = json!({
        "fulfillment": {
            "lineItemsByFulfillmentOrder": by_fo,
            "trackingInfo": tracking,
            "notifyCustomer": notify_customer,
        }
    });
    let data: FulfillmentCreateData = client
        .execute("SwitchyardFulfill", graphql::FULFILL_MUTATION, variables)
        .await?;
    let payload = data
        .fulfillment_create
        .ok_or_else(|| ConnectorError::Decode("SwitchyardFulfill: no payload".into()))?;
    if !payload.user_errors.is_empty() {
        return Err(ConnectorError::Rejected {
            status: None,
            detail: user_errors("SwitchyardFulfill", &payload.user_errors),
        });
    }
    let fulfillment = payload.fulfillment.ok_or_else(|| {
        ConnectorError::Decode("SwitchyardFulfill: neither a fulfillment nor errors".into())
    })?;
    Ok(TrackingResult::Created {
        channel_ref: Some(fulfillment.id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_refs_are_inventory_item_ids() {
        assert_eq!(
            inventory_item_gid("808950810").unwrap(),
            "gid://shopify/InventoryItem/808950810"
        );
        assert_eq!(
            inventory_item_gid("gid://shopify/InventoryItem/808950810").unwrap(),
            "gid://shopify/InventoryItem/808950810"
        );
        assert_eq!(
            inventory_item_gid("gid://shopify/ProductVariant/1")
                .unwrap_err()
                .class(),
            "config"
        );
    }

    #[test]
    fn reference_uris_are_valid_for_any_key() {
        assert_eq!(uri_component("push-42_a.b~"), "push-42_a.b~");
        assert_eq!(uri_component("a b/ü"), "a%20b%2F%C3%BC");
    }
}
