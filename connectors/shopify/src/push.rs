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
//! after a timeout cannot apply twice. Many SKUs go in one mutation
//! ([`push_inventory_batch`], up to [`graphql::STOCK_QUANTITIES_PER_CALL`]),
//! each with its own compare-and-set; a single push is a batch of one.
//!
//! `fulfillmentCreate` has no idempotency key, so a tracking push reads the
//! order first: a fulfillment that already carries the tracking number means
//! an earlier attempt went through (`AlreadyThere`). Otherwise the shipment
//! is mapped onto the fulfillment orders that can still be fulfilled: the
//! whole order (a shipment without lines) fulfils each of them completely;
//! a partial shipment allocates each canonical line's quantity to the
//! fulfillment order line items of that order line, up to what remains.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use switchyard_contract::{
    ConnectorError, InventoryPush, InventoryResult, Operation, TrackingPush, TrackingResult,
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

fn user_errors<'a>(operation: &str, errors: impl IntoIterator<Item = &'a GqlUserError>) -> String {
    let parts: Vec<String> = errors
        .into_iter()
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
            Operation::Lookup,
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
            Operation::Lookup,
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

/// A failure that is about the call, not one SKU: the shop cannot be
/// reached, asks us to slow down, or refuses the credentials. Nothing more is
/// sent; every push not answered yet gets it.
fn call_level(e: &ConnectorError) -> bool {
    matches!(
        e,
        ConnectorError::RateLimited { .. }
            | ConnectorError::Transient(_)
            | ConnectorError::Auth(_)
            | ConnectorError::Config(_)
    )
}

/// Requested query cost of a SKU look-up and of the stock mutation
/// (`tests/graphql_schema.rs` estimates both; the recorded answers agree).
const LOOKUP_REQUESTED: u32 = 6;
const SET_REQUESTED: u32 = 12;

/// Look-ups of one batch go back to back; the daemon's limiter paces calls,
/// not the requests inside one (and the daemon sends few unknown SKUs per
/// call). Before each look-up after the first, the bucket Shopify last
/// reported must still pay for a look-up and the mutation after it; if not,
/// the SKUs still to look up are answered `RateLimited` with the time to
/// refill, and the pushes already resolved go ahead.
fn bucket_low(client: &GraphqlClient) -> Option<ConnectorError> {
    let hint = client.rate_hint()?;
    let keep = LOOKUP_REQUESTED + SET_REQUESTED;
    if hint.remaining >= keep {
        return None;
    }
    let restore = hint.restore_per_second;
    let wait = if restore.is_finite() && restore > 0.0 {
        f64::from(keep - hint.remaining) / restore
    } else {
        1.0
    };
    Some(ConnectorError::RateLimited {
        retry_after: Some(Duration::from_secs_f64(wait.clamp(1.0, 60.0).ceil())),
        detail: format!(
            "SwitchyardVariantsBySku: Shopify's bucket is down to {} of {} points; the look-up waits for the next call",
            hint.remaining, hint.capacity
        ),
    })
}

/// One push of a batch that has its inventory item: `index` into the pushes.
#[derive(Debug, Clone)]
struct Entry {
    index: usize,
    item: String,
}

/// The idempotency key of one `inventorySetQuantities` call: a single
/// push's own key, else a digest of the pushes' keys (in the canonical,
/// sorted order the quantities are sent in). The same pushes sent again give
/// the same key and the same input; any other set of pushes, or the same
/// SKUs with other quantities (whose keys differ), another key.
fn call_key(pushes: &[InventoryPush], entries: &[Entry]) -> String {
    if let [one] = entries {
        return pushes[one.index].idempotency_key.clone();
    }
    let mut digest = Sha256::new();
    for e in entries {
        digest.update(pushes[e.index].idempotency_key.as_bytes());
        digest.update([0u8]);
    }
    let hex: String = digest
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("switchyard-batch-{}-{hex}", entries.len())
}

/// The position in `quantities` that a user error names
/// (`["input", "quantities", "3", "changeFromQuantity"]` → 3).
fn quantity_index(e: &GqlUserError) -> Option<usize> {
    let field = e.field.as_ref()?;
    let at = field.iter().position(|f| f == "quantities")?;
    field.get(at + 1)?.parse().ok()
}

const STALE: &str = "CHANGE_FROM_QUANTITY_STALE";
const CONCURRENT: &str = "IDEMPOTENCY_CONCURRENT_REQUEST";

/// Why Shopify refused one stock mutation. It applies all or nothing: any
/// user error means no quantity of the call was written.
#[derive(Debug, Default)]
struct Refusal<'a> {
    /// Positions whose `changeFromQuantity` is stale.
    stale: BTreeSet<usize>,
    /// A stale error that names no position (more than one sent).
    stale_somewhere: bool,
    /// Other errors by position: those pushes are refused for good.
    refused: BTreeMap<usize, Vec<&'a GqlUserError>>,
    /// Errors that name no position: about the whole call.
    whole: Vec<&'a GqlUserError>,
}

fn refusal(errors: &[GqlUserError], sent: usize) -> Refusal<'_> {
    let mut r = Refusal::default();
    for e in errors {
        // With one quantity sent, every error is about it.
        let at = quantity_index(e)
            .filter(|&i| i < sent)
            .or((sent == 1).then_some(0));
        let stale = e.code.as_deref() == Some(STALE);
        match at {
            Some(i) if stale => {
                r.stale.insert(i);
            }
            Some(i) if e.code.as_deref() != Some(CONCURRENT) => {
                r.refused.entry(i).or_default().push(e)
            }
            None if stale => r.stale_somewhere = true,
            _ => r.whole.push(e),
        }
    }
    r
}

pub(crate) async fn push_inventory(
    client: &GraphqlClient,
    location_cache: &Mutex<Option<String>>,
    push: &InventoryPush,
) -> Result<InventoryResult, ConnectorError> {
    push_inventory_batch(client, location_cache, std::slice::from_ref(push))
        .await
        .pop()
        .unwrap_or_else(|| {
            Err(ConnectorError::Decode(
                "SwitchyardSetStock: no result".into(),
            ))
        })
}

/// Sets many SKUs' stock in one `inventorySetQuantities` (a single push is
/// a batch of one, with its own key, exactly as it always was):
///
/// 1. Each push's inventory item: its `listing_ref`, else the SKU look-up; a
///    SKU the shop does not list is `NotListed` and is left out.
/// 2. One mutation with every quantity, each with its own `changeFromQuantity`,
///    in a canonical order (sorted by the pushes' keys) under [`call_key`].
/// 3. Shopify applies it all or nothing. A stale `changeFromQuantity` names
///    its quantity (`field: ["input", "quantities", "3", "changeFromQuantity"]`):
///    those items are read back and answered `Conflict { current }`. Other
///    errors that name a quantity refuse that push (`Rejected`). The rest,
///    of which nothing was written, are sent once more in a new mutation
///    (their own key); if that is refused too, they answer `Transient` and
///    the daemon sends them again later. Nothing is overwritten blindly and
///    nothing is applied twice: every mutation keeps each compare-and-set,
///    and a retry of the same pushes carries the same key and input.
/// 4. Errors that name no quantity are about the call: `Transient` for an
///    idempotent request still in progress, else `Rejected`, for every push
///    in it.
pub(crate) async fn push_inventory_batch(
    client: &GraphqlClient,
    location_cache: &Mutex<Option<String>>,
    pushes: &[InventoryPush],
) -> Vec<Result<InventoryResult, ConnectorError>> {
    let mut out: Vec<Option<Result<InventoryResult, ConnectorError>>> = vec![None; pushes.len()];
    if let Err(e) = push_batch_into(client, location_cache, pushes, &mut out).await {
        for slot in out.iter_mut().filter(|s| s.is_none()) {
            *slot = Some(Err(e.clone()));
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ConnectorError::Decode(
                    "SwitchyardSetStock: no result".into(),
                ))
            })
        })
        .collect()
}

/// [`push_inventory_batch`]: answers go into `out`; an `Err` is a fault of
/// the call, for every push still unanswered.
async fn push_batch_into(
    client: &GraphqlClient,
    location_cache: &Mutex<Option<String>>,
    pushes: &[InventoryPush],
    out: &mut [Option<Result<InventoryResult, ConnectorError>>],
) -> Result<(), ConnectorError> {
    let mut entries = Vec::with_capacity(pushes.len());
    let mut looked_up = 0;
    for (index, push) in pushes.iter().enumerate() {
        let item = match &push.listing_ref {
            Some(r) => match inventory_item_gid(r) {
                Ok(item) => item,
                Err(e) => {
                    out[index] = Some(Err(e));
                    continue;
                }
            },
            None => {
                if looked_up > 0
                    && let Some(e) = bucket_low(client)
                {
                    out[index] = Some(Err(e));
                    continue;
                }
                looked_up += 1;
                match inventory_item_for_sku(client, &push.sku).await {
                    Ok(Some(item)) => item,
                    Ok(None) => {
                        out[index] = Some(Ok(InventoryResult::NotListed));
                        continue;
                    }
                    Err(e) if call_level(&e) => return Err(e),
                    Err(e) => {
                        out[index] = Some(Err(e));
                        continue;
                    }
                }
            }
        };
        entries.push(Entry { index, item });
    }
    if entries.is_empty() {
        return Ok(());
    }
    let location = location(client, location_cache).await?;
    entries.sort_by(|a, b| {
        pushes[a.index]
            .idempotency_key
            .cmp(&pushes[b.index].idempotency_key)
    });

    for attempt in 0..2 {
        let errors = set_quantities(client, &location, pushes, &entries).await?;
        if errors.is_empty() {
            for e in &entries {
                out[e.index] = Some(Ok(InventoryResult::Set {
                    quantity: pushes[e.index].quantity,
                    listing_ref: Some(e.item.clone()),
                }));
            }
            return Ok(());
        }
        let why = refusal(&errors, entries.len());
        if !why.whole.is_empty() {
            let detail = user_errors("SwitchyardSetStock", &errors);
            return Err(
                if why
                    .whole
                    .iter()
                    .any(|e| e.code.as_deref() == Some(CONCURRENT))
                {
                    ConnectorError::Transient(detail)
                } else {
                    ConnectorError::Rejected {
                        status: None,
                        detail,
                    }
                },
            );
        }
        let mut rest = Vec::with_capacity(entries.len());
        for (at, e) in entries.iter().enumerate() {
            let push = &pushes[e.index];
            let named = why.stale.contains(&at);
            if named || (why.stale_somewhere && push.last_confirmed.is_some()) {
                match available(client, &e.item, &location).await {
                    // Not the stale one after all (the error named none).
                    Ok(current) if !named && Some(current) == push.last_confirmed => {}
                    Ok(current) => {
                        out[e.index] = Some(Ok(InventoryResult::Conflict { current }));
                        continue;
                    }
                    Err(err) if call_level(&err) => return Err(err),
                    Err(err) => {
                        out[e.index] = Some(Err(err));
                        continue;
                    }
                }
            }
            if let Some(refused) = why.refused.get(&at) {
                out[e.index] = Some(Err(ConnectorError::Rejected {
                    status: None,
                    detail: user_errors("SwitchyardSetStock", refused.iter().copied()),
                }));
                continue;
            }
            rest.push(e.clone());
        }
        if rest.is_empty() {
            return Ok(());
        }
        if attempt == 0 && rest.len() < entries.len() {
            entries = rest;
            continue;
        }
        // Refused a second time, or for no quantity we could tell: nothing
        // of theirs was written; the daemon sends them again later.
        for e in &rest {
            out[e.index] = Some(Err(ConnectorError::Transient(format!(
                "{}; not written with the refused quantities, sent again later",
                user_errors("SwitchyardSetStock", &errors)
            ))));
        }
        return Ok(());
    }
    Ok(())
}

/// One `inventorySetQuantities` with `entries`' quantities: its user errors
/// (none: every quantity was written).
async fn set_quantities(
    client: &GraphqlClient,
    location: &str,
    pushes: &[InventoryPush],
    entries: &[Entry],
) -> Result<Vec<GqlUserError>, ConnectorError> {
    let key = call_key(pushes, entries);
    let quantities: Vec<graphql::StockQuantity<'_>> = entries
        .iter()
        .map(|e| {
            let p = &pushes[e.index];
            (e.item.as_str(), p.quantity, p.last_confirmed)
        })
        .collect();
    let data: SetQuantitiesData = client
        .execute(
            Operation::PushInventory,
            "SwitchyardSetStock",
            &graphql::set_stock_mutation(&key),
            graphql::set_stock_variables(location, &key, &quantities),
        )
        .await?;
    let payload = data
        .inventory_set_quantities
        .ok_or_else(|| ConnectorError::Decode("SwitchyardSetStock: no payload".into()))?;
    Ok(payload.user_errors)
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
            Operation::Lookup,
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
            Operation::Lookup,
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
                    // Every open line item is counted above.
                    let Some(left) = remaining.get_mut(&l.id) else {
                        continue;
                    };
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
        .execute(
            Operation::PushTracking,
            "SwitchyardFulfill",
            graphql::FULFILL_MUTATION,
            variables,
        )
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

    fn push(key: &str) -> InventoryPush {
        InventoryPush {
            sku: key.to_uppercase(),
            quantity: 1,
            last_confirmed: None,
            listing_ref: None,
            idempotency_key: key.to_owned(),
        }
    }

    fn entries(indexes: &[usize]) -> Vec<Entry> {
        indexes
            .iter()
            .map(|&index| Entry {
                index,
                item: format!("{INVENTORY_ITEM_GID}{index}"),
            })
            .collect()
    }

    #[test]
    fn a_call_key_is_the_push_key_alone_else_a_digest_of_the_keys() {
        let pushes = [push("a"), push("b"), push("c")];
        assert_eq!(call_key(&pushes, &entries(&[1])), "b");
        let abc = call_key(&pushes, &entries(&[0, 1, 2]));
        assert!(abc.starts_with("switchyard-batch-3-"), "{abc}");
        assert_eq!(abc.len(), "switchyard-batch-3-".len() + 32);
        assert_eq!(abc, call_key(&pushes, &entries(&[0, 1, 2])), "stable");
        assert_ne!(abc, call_key(&pushes, &entries(&[0, 1])));
        let other = [push("a"), push("b"), push("c2")];
        assert_ne!(abc, call_key(&other, &entries(&[0, 1, 2])));
    }

    fn user_error(field: &[&str], code: &str) -> GqlUserError {
        GqlUserError {
            field: Some(field.iter().map(|f| f.to_string()).collect()),
            message: "m".into(),
            code: Some(code.into()),
        }
    }

    /// (stale positions, stale somewhere, refused positions, errors about the call).
    fn sorted(errors: &[GqlUserError], sent: usize) -> (Vec<usize>, bool, Vec<usize>, usize) {
        let r = refusal(errors, sent);
        (
            r.stale.into_iter().collect(),
            r.stale_somewhere,
            r.refused.keys().copied().collect(),
            r.whole.len(),
        )
    }

    #[test]
    fn refusals_are_sorted_by_the_quantity_they_name() {
        let errors = [
            user_error(&["input", "quantities", "3", "changeFromQuantity"], STALE),
            user_error(
                &["input", "quantities", "1", "inventoryItemId"],
                "INVALID_INVENTORY_ITEM",
            ),
            user_error(&["input", "quantities", "1", "changeFromQuantity"], STALE),
        ];
        assert_eq!(sorted(&errors, 4), (vec![1, 3], false, vec![1], 0));

        // No position, or one past what was sent: about the call.
        let errors = [
            user_error(&["input", "reason"], "INVALID_REASON"),
            user_error(
                &["input", "quantities", "9", "quantity"],
                "INVALID_QUANTITY_NEGATIVE",
            ),
        ];
        assert_eq!(sorted(&errors, 4), (vec![], false, vec![], 2));
        assert_eq!(
            sorted(&[user_error(&["input"], STALE)], 4),
            (vec![], true, vec![], 0)
        );
        // A request in progress is about the call even when it names one.
        let errors = [user_error(&["input", "quantities", "0"], CONCURRENT)];
        assert_eq!(sorted(&errors, 4), (vec![], false, vec![], 1));

        // With one quantity sent, every error is about it.
        assert_eq!(
            sorted(&[user_error(&["input"], STALE)], 1),
            (vec![0], false, vec![], 0)
        );
        let errors = [user_error(&[], "INVALID_QUANTITY_TOO_HIGH")];
        assert_eq!(sorted(&errors, 1), (vec![], false, vec![0], 0));
    }

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
}
