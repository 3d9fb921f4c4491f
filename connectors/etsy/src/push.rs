//! Pushes back to Etsy: stock (`updateListingInventory`) and shipments
//! (`createReceiptShipment`).
//!
//! # Stock: read, change one quantity, write everything back
//!
//! `updateListingInventory` replaces a listing's whole inventory: a body
//! with one product wipes every other variation. So each listing is
//! read-modify-written, once per batch (the batch key is the listing, so two
//! SKUs of one listing travel in one call and one write):
//!
//! 1. the push budget is taken first, then the listing's inventory read
//!    (`getListingInventory?includes=Listing`), so that a write held back by
//!    a low daily budget never goes out with an old read;
//! 2. for each push, the products whose `sku` is the push's: a
//!    `last_confirmed` quantity that is no longer what Etsy shows (a sale on
//!    Etsy since) answers `Conflict` and changes nothing; otherwise every
//!    offering of those products gets the new quantity;
//! 3. everything read goes back (every product, offering, property value,
//!    price and `*_on_property` list), with the read-only fields left out
//!    (`product_id`, `offering_id`, `is_deleted`, `scale_name`, deleted
//!    products and offerings) and each price turned from Money into the
//!    float Etsy's write takes, at this edge only.
//!
//! Writes to one listing never overlap inside the process (a lock per
//! listing). A listing that is not active is not written (`Rejected`, saying
//! why). A SKU that is not on the listing named (the listing was deleted, or
//! the SKU moved) is looked for in the shop's catalog (see `catalog`); not
//! found there, it is `NotListed`.
//!
//! # Tracking: never twice
//!
//! Etsy has no idempotency key and mails the buyer on every
//! `createReceiptShipment`. The daemon records the push before it is sent;
//! here the receipt is read first (`getShopReceipt`) and a shipment that
//! already carries the tracking code (an earlier attempt that timed out
//! after Etsy took it) answers `AlreadyThere` without a second call. Etsy
//! ships whole receipts: a shipment of some lines is still sent (the buyer
//! gets the tracking code), and Etsy marks the receipt shipped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::Number;
use switchyard_contract::{
    ConnectorError, InventoryPush, InventoryResult, Operation, TrackingPush, TrackingResult,
};

use crate::carrier::etsy_carrier;
use crate::catalog::{Catalog, Found};
use crate::client::{Call, EtsyClient, Payload};
use crate::endpoints;
use crate::money::price_float;
use crate::wire::{
    Inventory, InventoryUpdate, OfferingUpdate, ProductUpdate, PropertyValueUpdate, Receipt,
};

/// What the pushes need of the connector.
pub(crate) struct Pusher<'a> {
    pub client: &'a EtsyClient,
    pub shop_id: u64,
    pub catalog: &'a Catalog,
    pub locks: &'a ListingLocks,
}

/// One async lock per listing written, so that two read-modify-writes of
/// one listing never interleave.
#[derive(Debug, Default)]
pub(crate) struct ListingLocks(Mutex<BTreeMap<u64, Arc<tokio::sync::Mutex<()>>>>);

impl ListingLocks {
    fn of(&self, listing: u64) -> Arc<tokio::sync::Mutex<()>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(listing)
            .or_default()
            .clone()
    }
}

/// A listing id from a `listing_ref` (what [`crate::normalize::sku_listings`]
/// and `InventoryResult::Set` give: the number).
pub fn listing_id(listing_ref: &str) -> Result<u64, ConnectorError> {
    listing_ref
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ConnectorError::Config(format!(
                "listing_ref {listing_ref:?} is not an Etsy listing id"
            ))
        })
}

/// A failure about the call, not one listing: nothing more is sent and
/// every push not answered yet gets it.
fn call_level(e: &ConnectorError) -> bool {
    matches!(
        e,
        ConnectorError::RateLimited { .. }
            | ConnectorError::Transient(_)
            | ConnectorError::Auth(_)
            | ConnectorError::Config(_)
    )
}

/// What became of one push on the listing it was tried on.
enum Outcome {
    Answered(Result<InventoryResult, ConnectorError>),
    /// The SKU is not on this listing (or the listing is gone).
    NotHere,
}

type Slots = Vec<Option<Result<InventoryResult, ConnectorError>>>;

impl Pusher<'_> {
    pub async fn push_inventory_batch(
        &self,
        pushes: &[InventoryPush],
    ) -> Vec<Result<InventoryResult, ConnectorError>> {
        let mut out: Slots = vec![None; pushes.len()];
        if let Err(e) = self.push_into(pushes, &mut out).await {
            for slot in out.iter_mut().filter(|s| s.is_none()) {
                *slot = Some(Err(e.clone()));
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ConnectorError::Decode(format!(
                        "{}: no result",
                        endpoints::UPDATE_LISTING_INVENTORY
                    )))
                })
            })
            .collect()
    }

    /// Answers go into `out`; an `Err` is a fault of the whole call.
    async fn push_into(
        &self,
        pushes: &[InventoryPush],
        out: &mut Slots,
    ) -> Result<(), ConnectorError> {
        let mut targets: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        let mut unknown = Vec::new();
        for (i, push) in pushes.iter().enumerate() {
            match push.listing_ref.as_deref() {
                Some(r) => match listing_id(r) {
                    Ok(id) => targets.entry(id).or_default().push(i),
                    Err(e) => out[i] = Some(Err(e)),
                },
                None => unknown.push(i),
            }
        }
        let mut read_catalog = false;
        self.place(pushes, &unknown, &mut targets, &mut read_catalog, out)
            .await?;

        let mut misplaced = Vec::new();
        self.write_all(pushes, targets, &mut misplaced, out).await?;
        if misplaced.is_empty() {
            return Ok(());
        }
        // The named listing does not have the SKU (any more): look again.
        let mut second: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        self.place(pushes, &misplaced, &mut second, &mut read_catalog, out)
            .await?;
        let mut lost = Vec::new();
        self.write_all(pushes, second, &mut lost, out).await?;
        for i in lost {
            out[i] = Some(Ok(InventoryResult::NotListed));
        }
        Ok(())
    }

    /// Finds a listing for each push in `which` through the catalog (read
    /// once per call, and only when stale); pushes placed go into `targets`,
    /// the others are answered.
    async fn place(
        &self,
        pushes: &[InventoryPush],
        which: &[usize],
        targets: &mut BTreeMap<u64, Vec<usize>>,
        read_catalog: &mut bool,
        out: &mut Slots,
    ) -> Result<(), ConnectorError> {
        let needs_read = which
            .iter()
            .any(|&i| self.catalog.lookup(&pushes[i].sku) == Found::None);
        if needs_read && !*read_catalog && self.catalog.stale() {
            self.catalog.read(self.client, self.shop_id).await?;
            *read_catalog = true;
        }
        for &i in which {
            match self.catalog.lookup(&pushes[i].sku) {
                Found::One(id) => targets.entry(id).or_default().push(i),
                Found::Several(ids) => {
                    out[i] = Some(Err(ConnectorError::Rejected {
                        status: None,
                        detail: format!(
                            "sku {:?} is on several Etsy listings ({}); make the SKUs unique so that its stock goes to one",
                            pushes[i].sku,
                            ids.iter()
                                .map(u64::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }))
                }
                Found::None => out[i] = Some(Ok(InventoryResult::NotListed)),
            }
        }
        Ok(())
    }

    async fn write_all(
        &self,
        pushes: &[InventoryPush],
        targets: BTreeMap<u64, Vec<usize>>,
        misplaced: &mut Vec<usize>,
        out: &mut Slots,
    ) -> Result<(), ConnectorError> {
        for (listing, indexes) in targets {
            let batch: Vec<&InventoryPush> = indexes.iter().map(|&i| &pushes[i]).collect();
            match self.write_listing(listing, &batch).await {
                Ok(outcomes) => {
                    for (&i, outcome) in indexes.iter().zip(outcomes) {
                        match outcome {
                            Outcome::Answered(r) => out[i] = Some(r),
                            Outcome::NotHere => {
                                self.catalog.forget(&pushes[i].sku, listing);
                                misplaced.push(i);
                            }
                        }
                    }
                }
                Err(e) if call_level(&e) => return Err(e),
                Err(e) => {
                    for &i in &indexes {
                        out[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    /// One read-modify-write of `listing` for `batch` (SKUs all different).
    async fn write_listing(
        &self,
        listing: u64,
        batch: &[&InventoryPush],
    ) -> Result<Vec<Outcome>, ConnectorError> {
        let lock = self.locks.of(listing);
        let _held = lock.lock().await;
        // Paid before the read: see the module doc.
        self.client
            .pacer()
            .acquire(Operation::PushInventory, 1)
            .await;
        let read = Call::get(
            endpoints::GET_LISTING_INVENTORY,
            Operation::Lookup,
            endpoints::listing_inventory(listing),
        )
        .query("includes", "Listing");
        let answer = self.client.send(read).await?;
        if !answer.found() {
            return Ok(batch.iter().map(|_| Outcome::NotHere).collect());
        }
        let inventory: Inventory = self
            .client
            .decode(endpoints::GET_LISTING_INVENTORY, &answer.body)?;
        let state = inventory
            .listing
            .as_ref()
            .and_then(|l| l.state.as_deref())
            .map(str::trim)
            .unwrap_or("active");
        if !state.eq_ignore_ascii_case("active") {
            let why = ConnectorError::Rejected {
                status: None,
                detail: format!(
                    "etsy listing {listing} is {state}, not active: its stock is not written (Etsy renews a sold-out listing made active, for a fee); make it active on Etsy and the next stock change is pushed"
                ),
            };
            return Ok(batch
                .iter()
                .map(|_| Outcome::Answered(Err(why.clone())))
                .collect());
        }

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut set: BTreeMap<String, u32> = BTreeMap::new();
        for push in batch {
            let sku = push.sku.trim();
            let products: Vec<_> = inventory
                .products
                .iter()
                .filter(|p| p.is_deleted != Some(true))
                .filter(|p| p.sku.as_deref().map(str::trim) == Some(sku))
                .collect();
            let Some(first) = products.first() else {
                outcomes.push(Outcome::NotHere);
                continue;
            };
            let live: Vec<_> = first
                .offerings
                .iter()
                .filter(|o| o.is_deleted != Some(true))
                .collect();
            let current = live
                .iter()
                .find(|o| o.is_enabled != Some(false))
                .or(live.first())
                .and_then(|o| o.quantity)
                .and_then(|q| u32::try_from(q).ok());
            match (push.last_confirmed, current) {
                (Some(expected), Some(current)) if expected != current => {
                    outcomes.push(Outcome::Answered(Ok(InventoryResult::Conflict { current })));
                }
                _ => {
                    set.insert(sku.to_owned(), push.quantity);
                    outcomes.push(Outcome::Answered(Ok(InventoryResult::Set {
                        quantity: push.quantity,
                        listing_ref: Some(listing.to_string()),
                    })));
                }
            }
        }
        if set.is_empty() {
            return Ok(outcomes);
        }
        let body = update_body(&inventory, &set).map_err(|e| {
            ConnectorError::Decode(format!(
                "{} of listing {listing}: {e}; nothing was written",
                endpoints::GET_LISTING_INVENTORY
            ))
        })?;
        let write = Call {
            what: endpoints::UPDATE_LISTING_INVENTORY,
            operation: Operation::PushInventory,
            prepaid: true,
            method: Method::PUT,
            path: endpoints::listing_inventory(listing),
            query: Vec::new(),
            payload: Payload::Json(serde_json::to_value(&body).map_err(|e| {
                ConnectorError::Decode(format!(
                    "{} of listing {listing}: the body cannot be written ({e}); nothing was written",
                    endpoints::UPDATE_LISTING_INVENTORY
                ))
            })?),
        };
        let _: serde_json::Value = self.client.json(write).await?;
        for sku in set.keys() {
            self.catalog.learn(sku, listing);
        }
        Ok(outcomes)
    }

    pub async fn push_tracking(
        &self,
        push: &TrackingPush,
    ) -> Result<TrackingResult, ConnectorError> {
        let receipt_id = push
            .order
            .channel_order_id
            .trim()
            .parse::<u64>()
            .map_err(|_| {
                ConnectorError::Config(format!(
                    "order {} has channel id {:?}, not an Etsy receipt id",
                    push.order.id, push.order.channel_order_id
                ))
            })?;
        let code = push.shipment.tracking_number.trim();
        if code.is_empty() {
            return Err(ConnectorError::Rejected {
                status: None,
                detail: format!(
                    "shipment of receipt {receipt_id} has no tracking number; Etsy would mark it shipped and mail the buyer without one"
                ),
            });
        }
        // Paid before the read-back: see the module doc.
        self.client
            .pacer()
            .acquire(Operation::PushTracking, 1)
            .await;
        let read = Call::get(
            endpoints::GET_SHOP_RECEIPT,
            Operation::Lookup,
            endpoints::shop_receipt(self.shop_id, receipt_id),
        );
        let receipt: Receipt = self.client.json(read).await?;
        if let Some(id) = shipment_with(&receipt, code) {
            return Ok(TrackingResult::AlreadyThere { channel_ref: id });
        }
        let create = Call {
            what: endpoints::CREATE_RECEIPT_SHIPMENT,
            operation: Operation::PushTracking,
            prepaid: true,
            method: Method::POST,
            path: endpoints::receipt_tracking(self.shop_id, receipt_id),
            query: Vec::new(),
            payload: Payload::Form(vec![
                ("tracking_code", code.to_owned()),
                ("carrier_name", etsy_carrier(&push.shipment.carrier)),
            ]),
        };
        let after: Receipt = self.client.json(create).await?;
        Ok(TrackingResult::Created {
            channel_ref: shipment_with(&after, code).flatten(),
        })
    }
}

/// `Some(id)` when the receipt has a shipment with this tracking code
/// (`Some(None)`: it has one, without an id).
fn shipment_with(receipt: &Receipt, code: &str) -> Option<Option<String>> {
    receipt
        .shipments
        .iter()
        .find(|s| {
            s.tracking_code
                .as_deref()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case(code))
        })
        .map(|s| {
            s.receipt_shipping_id
                .as_ref()
                .and_then(Number::as_u64)
                .map(|n| n.to_string())
        })
}

/// The `updateListingInventory` body: everything `inventory` holds, with
/// the quantities in `set` (by SKU) changed and the read-only fields left out.
pub(crate) fn update_body(
    inventory: &Inventory,
    set: &BTreeMap<String, u32>,
) -> Result<InventoryUpdate, String> {
    let mut products = Vec::with_capacity(inventory.products.len());
    let mut changed: BTreeSet<&str> = BTreeSet::new();
    for (pi, p) in inventory
        .products
        .iter()
        .filter(|p| p.is_deleted != Some(true))
        .enumerate()
    {
        let sku = p.sku.as_deref().map(str::trim);
        let new_quantity = sku.and_then(|s| set.get_key_value(s));
        let mut property_values = Vec::with_capacity(p.property_values.len());
        for (vi, v) in p.property_values.iter().enumerate() {
            let property_id = v.property_id.clone().ok_or_else(|| {
                format!("products[{pi}].property_values[{vi}] has no property_id")
            })?;
            property_values.push(PropertyValueUpdate {
                property_id,
                value_ids: v.value_ids.clone(),
                scale_id: v.scale_id.clone(),
                property_name: v.property_name.clone(),
                values: v.values.clone(),
            });
        }
        let mut offerings = Vec::with_capacity(p.offerings.len());
        for (oi, o) in p
            .offerings
            .iter()
            .filter(|o| o.is_deleted != Some(true))
            .enumerate()
        {
            let at = format!("products[{pi}].offerings[{oi}]");
            let price = o
                .price
                .as_ref()
                .ok_or_else(|| format!("{at} has no price"))
                .and_then(|p| price_float(p).map_err(|e| format!("{at}: {e}")))?;
            let quantity = match new_quantity {
                Some((s, q)) => {
                    changed.insert(s.as_str());
                    i64::from(*q)
                }
                None => o.quantity.ok_or_else(|| format!("{at} has no quantity"))?,
            };
            offerings.push(OfferingUpdate {
                price,
                quantity,
                is_enabled: o
                    .is_enabled
                    .ok_or_else(|| format!("{at} has no is_enabled"))?,
                readiness_state_id: o.readiness_state_id.clone(),
            });
        }
        products.push(ProductUpdate {
            sku: p.sku.clone(),
            property_values,
            offerings,
        });
    }
    if let Some(missing) = set.keys().find(|s| !changed.contains(s.as_str())) {
        return Err(format!("no offering carries sku {missing:?}"));
    }
    Ok(InventoryUpdate {
        products,
        price_on_property: inventory.price_on_property.clone(),
        quantity_on_property: inventory.quantity_on_property.clone(),
        sku_on_property: inventory.sku_on_property.clone(),
        readiness_state_on_property: inventory.readiness_state_on_property.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inventory() -> Inventory {
        serde_json::from_value(json!({
            "products": [
                {"product_id": 1, "sku": "TEE-S", "is_deleted": false,
                 "offerings": [{"offering_id": 11, "quantity": 3, "is_enabled": true, "is_deleted": false,
                                "price": {"amount": 1999, "divisor": 100, "currency_code": "USD"},
                                "readiness_state_id": 7}],
                 "property_values": [{"property_id": 513, "property_name": "Size", "scale_id": 9,
                                      "scale_name": "US", "value_ids": [5], "values": ["S"]}]},
                {"product_id": 2, "sku": "TEE-M", "is_deleted": false,
                 "offerings": [{"offering_id": 12, "quantity": 4, "is_enabled": false, "is_deleted": false,
                                "price": {"amount": 2199, "divisor": 100, "currency_code": "USD"},
                                "readiness_state_id": null}],
                 "property_values": [{"property_id": 513, "property_name": "Size", "scale_id": 9,
                                      "scale_name": "US", "value_ids": [6], "values": ["M"]}]},
                {"product_id": 3, "sku": "TEE-L", "is_deleted": true, "offerings": [], "property_values": []}
            ],
            "price_on_property": [513],
            "quantity_on_property": [513],
            "sku_on_property": [513]
        }))
        .unwrap()
    }

    #[test]
    fn only_the_named_sku_changes_and_read_only_fields_go() {
        let set = BTreeMap::from([("TEE-M".to_owned(), 9)]);
        let body = serde_json::to_value(update_body(&inventory(), &set).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "products": [
                    {"sku": "TEE-S",
                     "property_values": [{"property_id": 513, "value_ids": [5], "scale_id": 9,
                                          "property_name": "Size", "values": ["S"]}],
                     "offerings": [{"price": 19.99, "quantity": 3, "is_enabled": true, "readiness_state_id": 7}]},
                    {"sku": "TEE-M",
                     "property_values": [{"property_id": 513, "value_ids": [6], "scale_id": 9,
                                          "property_name": "Size", "values": ["M"]}],
                     "offerings": [{"price": 21.99, "quantity": 9, "is_enabled": false, "readiness_state_id": null}]}
                ],
                "price_on_property": [513],
                "quantity_on_property": [513],
                "sku_on_property": [513]
            })
        );
    }

    #[test]
    fn an_unreadable_offering_writes_nothing() {
        let mut inv = inventory();
        inv.products[0].offerings[0].price = None;
        let err = update_body(&inv, &BTreeMap::from([("TEE-M".to_owned(), 1)])).unwrap_err();
        assert!(
            err.contains("products[0].offerings[0] has no price"),
            "{err}"
        );
        let err =
            update_body(&inventory(), &BTreeMap::from([("TEE-XL".to_owned(), 1)])).unwrap_err();
        assert!(err.contains("TEE-XL"), "{err}");
    }

    #[test]
    fn listing_refs_are_listing_ids() {
        assert_eq!(listing_id(" 1234567890 ").unwrap(), 1234567890);
        assert_eq!(listing_id("0").unwrap_err().class(), "config");
        assert_eq!(
            listing_id("gid://shopify/InventoryItem/1")
                .unwrap_err()
                .class(),
            "config"
        );
    }
}
