//! Pushes back to eBay: stock (`bulkUpdatePriceQuantity`) and shipments
//! (`createShippingFulfillment`).
//!
//! # Stock
//!
//! Only listings of the Inventory API are reached (a Trading API listing
//! must be migrated with `bulkMigrateListing` first; its SKU has no offer
//! and is answered `NotListed`). A SKU's quantity is set at both levels eBay
//! keeps, because a listing shows the smaller of the two: the inventory
//! item's `shipToLocationAvailability.quantity` and each published
//! fixed-price offer's `availableQuantity` (auction offers take no quantity).
//! The offers are looked up once per SKU (`getOffers?sku=…&marketplace_id=…`)
//! and remembered through `listing_ref` as `offerId@listingId[,…]`; a push
//! that carries a `listing_ref` needs no look-up, and one whose remembered
//! offer eBay no longer has (404, errors 25702/25713: the listing was ended
//! or relisted) is looked up again and sent once more. No published offer:
//! `NotListed`.
//!
//! Up to [`SKUS_PER_BULK_UPDATE`] SKUs go in one call, and eBay answers for
//! each SKU and each offer in `responses[]`: a push is `Set` only when every
//! entry of its SKU says 200; an entry with a 5xx status or eBay's system
//! error is a transient error for that push alone, any other a rejection
//! with eBay's error ids and messages.
//!
//! eBay blocks a listing after 250 revisions in a day. Pushes therefore carry
//! their listing as batch key (the daemon sends the due pushes of one
//! listing, the variations of a multi-variation listing, in one call, counted
//! here as one revision of it), and each listing's revisions are budgeted
//! (see `budget`): a push over its listing's budget is answered
//! `RateLimited` with the wait. What the daemon must guarantee for this to
//! hold: pushes of one SKU are coalesced (only the newest level is sent),
//! pushes sharing a batch key travel in one `push_inventory_batch` call, and
//! a `RateLimited` push is sent again no sooner than its `retry_after`.
//!
//! # Shipments
//!
//! `createShippingFulfillment` has no idempotency key, so a tracking push
//! first reads the order's fulfilments back (`getShippingFulfillments`): one
//! with the same tracking number (eBay also makes it the fulfilment's id)
//! means an earlier attempt went through (`AlreadyThere`). Otherwise one
//! fulfilment is created for the package: its lines are the shipment's
//! (matched to eBay line items by line id, else by SKU), or, for a shipment
//! without lines, every unit not yet refunded or covered by an existing
//! fulfilment. Tracking numbers are sent with only their letters and digits
//! (eBay refuses spaces and dashes in them); the carrier in eBay's spelling
//! (see `carrier`); `shippedDate` when the shipment has one (eBay's default
//! is now).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use switchyard_contract::{
    ConnectorError, InventoryPush, InventoryResult, Operation, TrackingPush, TrackingResult,
};

use crate::budget::Revisions;
use crate::carrier::ebay_code;
use crate::client::{Call, Client};
use crate::endpoints::{self, Api, SKUS_PER_BULK_UPDATE};
use crate::wire::{ApiError, BulkResponse, ErrorBody, Fulfillments, Offers};

/// eBay's error ids that mean "no such SKU or offer" in the Inventory API.
const NOT_FOUND_ERRORS: &[i64] = &[25702, 25713];
/// eBay's Inventory API system error.
const SYSTEM_ERROR: i64 = 25001;

/// One published offer of a SKU and the listing it is live as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRef {
    pub offer_id: String,
    pub listing_id: String,
}

/// `offerId@listingId[,offerId@listingId]` → the offers; `None` when it is
/// not in that form (then the offers are looked up).
pub fn parse_listing_ref(listing_ref: &str) -> Option<Vec<OfferRef>> {
    let offers: Option<Vec<OfferRef>> = listing_ref
        .split(',')
        .map(|part| {
            let (offer, listing) = part.trim().split_once('@')?;
            let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
            (ok(offer) && ok(listing)).then(|| OfferRef {
                offer_id: offer.to_owned(),
                listing_id: listing.to_owned(),
            })
        })
        .collect();
    offers.filter(|o| !o.is_empty())
}

pub fn format_listing_ref(offers: &[OfferRef]) -> String {
    offers
        .iter()
        .map(|o| format!("{}@{}", o.offer_id, o.listing_id))
        .collect::<Vec<_>>()
        .join(",")
}

/// The batch key of a push: its (first) listing, once known.
pub fn batch_key(push: &InventoryPush) -> Option<String> {
    let offers = parse_listing_ref(push.listing_ref.as_deref()?)?;
    let first = offers.iter().map(|o| o.listing_id.as_str()).min()?;
    Some(format!("listing:{first}"))
}

fn describe(errors: &[ApiError]) -> String {
    if errors.is_empty() {
        return "no error given".to_owned();
    }
    errors
        .iter()
        .map(ApiError::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the offer look-up found for a SKU.
enum Offered {
    Offers(Vec<OfferRef>),
    NotListed,
}

async fn look_up_offers(
    client: &Client,
    marketplace_id: &str,
    sku: &str,
) -> Result<Offered, ConnectorError> {
    let answer = client
        .call(
            Call::get(
                "getOffers",
                Operation::Lookup,
                Api::Inventory,
                endpoints::OFFERS.to_owned(),
            )
            .query(endpoints::offers_query(sku, marketplace_id))
            .answering(&[400, 404]),
        )
        .await?;
    if answer.status == 404 {
        return Ok(Offered::NotListed);
    }
    if answer.status == 400 {
        let errors: ErrorBody = answer.json("getOffers")?;
        if errors
            .errors
            .iter()
            .any(|e| e.error_id.is_some_and(|id| NOT_FOUND_ERRORS.contains(&id)))
        {
            return Ok(Offered::NotListed);
        }
        return Err(ConnectorError::Rejected {
            status: Some(400),
            detail: format!("getOffers for sku {sku:?}: {}", describe(&errors.errors)),
        });
    }
    let offers: Offers = answer.json("getOffers")?;
    let live: Vec<OfferRef> = offers
        .offers
        .iter()
        .filter(|o| o.status.as_deref() == Some("PUBLISHED"))
        .filter(|o| o.format.as_deref() != Some("AUCTION"))
        .filter_map(|o| {
            Some(OfferRef {
                offer_id: o.offer_id.clone()?,
                listing_id: o.listing.as_ref()?.listing_id.clone()?,
            })
        })
        .collect();
    Ok(if live.is_empty() {
        Offered::NotListed
    } else {
        Offered::Offers(live)
    })
}

/// A push with its offers, on its way into a call.
struct Ready {
    index: usize,
    offers: Vec<OfferRef>,
    /// The offers came from `listing_ref`, not a look-up made now.
    remembered: bool,
}

pub(crate) async fn push_inventory_batch(
    client: &Client,
    marketplace_id: &str,
    revisions: &Revisions,
    pushes: &[InventoryPush],
) -> Vec<Result<InventoryResult, ConnectorError>> {
    let mut results: Vec<Option<Result<InventoryResult, ConnectorError>>> =
        pushes.iter().map(|_| None).collect();
    let mut ready = Vec::new();
    for (index, push) in pushes.iter().enumerate() {
        match push.listing_ref.as_deref().and_then(parse_listing_ref) {
            Some(offers) => ready.push(Ready {
                index,
                offers,
                remembered: true,
            }),
            None => match look_up_offers(client, marketplace_id, &push.sku).await {
                Ok(Offered::Offers(offers)) => ready.push(Ready {
                    index,
                    offers,
                    remembered: false,
                }),
                Ok(Offered::NotListed) => results[index] = Some(Ok(InventoryResult::NotListed)),
                Err(e) => results[index] = Some(Err(e)),
            },
        }
    }
    let retry = send(client, revisions, pushes, ready, &mut results).await;
    // Remembered offers eBay refused: look them up again, send once more.
    let mut again = Vec::new();
    for r in retry {
        let push = &pushes[r.index];
        match look_up_offers(client, marketplace_id, &push.sku).await {
            Ok(Offered::Offers(offers)) if offers != r.offers => again.push(Ready {
                index: r.index,
                offers,
                remembered: false,
            }),
            Ok(Offered::Offers(_)) => {}
            Ok(Offered::NotListed) => results[r.index] = Some(Ok(InventoryResult::NotListed)),
            Err(e) => results[r.index] = Some(Err(e)),
        }
    }
    send(client, revisions, pushes, again, &mut results).await;
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ConnectorError::Decode(
                    "bulkUpdatePriceQuantity: no result for this sku".into(),
                ))
            })
        })
        .collect()
}

/// Sends `ready` pushes in calls of up to [`SKUS_PER_BULK_UPDATE`]; fills
/// `results`; answers the pushes whose remembered offer eBay no longer has
/// (to look up again).
async fn send(
    client: &Client,
    revisions: &Revisions,
    pushes: &[InventoryPush],
    ready: Vec<Ready>,
    results: &mut [Option<Result<InventoryResult, ConnectorError>>],
) -> Vec<Ready> {
    let now = Utc::now();
    let mut allowed = Vec::new();
    for r in ready {
        let waits: Vec<Duration> = r
            .offers
            .iter()
            .filter_map(|o| revisions.check(&o.listing_id, now).err())
            .collect();
        match waits.into_iter().max() {
            Some(wait) => {
                results[r.index] = Some(Err(ConnectorError::RateLimited {
                    retry_after: Some(wait),
                    detail: format!(
                        "sku {:?}: its eBay listing has had its revisions for now (eBay blocks a listing after 250 a day)",
                        pushes[r.index].sku
                    ),
                }))
            }
            None => allowed.push(r),
        }
    }
    let mut refused_remembered = Vec::new();
    while !allowed.is_empty() {
        let rest = allowed.split_off(allowed.len().min(SKUS_PER_BULK_UPDATE));
        let chunk = std::mem::replace(&mut allowed, rest);
        let requests: Vec<serde_json::Value> = chunk
            .iter()
            .map(|r| {
                let push = &pushes[r.index];
                let quantity = push.quantity.min(i32::MAX as u32);
                json!({
                    "sku": push.sku,
                    "shipToLocationAvailability": { "quantity": quantity },
                    "offers": r.offers.iter().map(|o| json!({
                        "offerId": o.offer_id,
                        "availableQuantity": quantity,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let body = json!({ "requests": requests });
        let answer = client
            .call(Call::post(
                "bulkUpdatePriceQuantity",
                Operation::PushInventory,
                Api::Inventory,
                endpoints::BULK_UPDATE_PRICE_QUANTITY.to_owned(),
                &body,
            ))
            .await
            .and_then(|a| a.json::<BulkResponse>("bulkUpdatePriceQuantity"));
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                for r in &chunk {
                    results[r.index] = Some(Err(e.clone()));
                }
                continue;
            }
        };
        let done = Utc::now();
        for r in chunk {
            let push = &pushes[r.index];
            let entries: Vec<_> = answer
                .responses
                .iter()
                .filter(|e| {
                    e.sku.as_deref() == Some(push.sku.as_str())
                        || e.offer_id
                            .as_deref()
                            .is_some_and(|id| r.offers.iter().any(|o| o.offer_id == id))
                })
                .collect();
            if entries.is_empty() {
                results[r.index] = Some(Err(ConnectorError::Decode(format!(
                    "bulkUpdatePriceQuantity: eBay's answer has no entry for sku {:?}",
                    push.sku
                ))));
                continue;
            }
            let failed: Vec<_> = entries
                .iter()
                .filter(|e| e.status_code != Some(200))
                .collect();
            if failed.is_empty() {
                let mut listings: Vec<&str> =
                    r.offers.iter().map(|o| o.listing_id.as_str()).collect();
                listings.sort_unstable();
                listings.dedup();
                for l in listings {
                    revisions.record(l, done);
                }
                results[r.index] = Some(Ok(InventoryResult::Set {
                    quantity: push.quantity,
                    listing_ref: Some(format_listing_ref(&r.offers)),
                }));
                continue;
            }
            let errors: Vec<ApiError> = failed.iter().flat_map(|e| e.errors.clone()).collect();
            let status = failed.iter().filter_map(|e| e.status_code).max();
            let detail = format!(
                "bulkUpdatePriceQuantity for sku {:?}: {}",
                push.sku,
                describe(&errors)
            );
            let transient = status.is_some_and(|s| s >= 500)
                || errors.iter().any(|e| e.error_id == Some(SYSTEM_ERROR));
            if transient {
                results[r.index] = Some(Err(ConnectorError::Transient(detail)));
            } else {
                results[r.index] = Some(Err(ConnectorError::Rejected {
                    status: status.and_then(|s| u16::try_from(s).ok()),
                    detail,
                }));
                let gone = status == Some(404)
                    || errors
                        .iter()
                        .any(|e| e.error_id.is_some_and(|id| NOT_FOUND_ERRORS.contains(&id)));
                if r.remembered && gone {
                    refused_remembered.push(r);
                }
            }
        }
    }
    refused_remembered
}

/// Letters and digits only: what eBay accepts in a tracking number.
pub fn ebay_tracking_number(number: &str) -> String {
    number.chars().filter(char::is_ascii_alphanumeric).collect()
}

pub(crate) async fn push_tracking(
    client: &Client,
    push: &TrackingPush,
) -> Result<TrackingResult, ConnectorError> {
    let order_id = push.order.channel_order_id.trim();
    let existing: Fulfillments = client
        .call(Call::get(
            "getShippingFulfillments",
            Operation::Lookup,
            Api::Fulfillment,
            endpoints::fulfillments_path(order_id),
        ))
        .await?
        .json("getShippingFulfillments")?;
    let tracking = ebay_tracking_number(&push.shipment.tracking_number);

    // Units of each eBay line item the existing fulfilments cover.
    let mut covered: BTreeMap<String, u32> = BTreeMap::new();
    for f in &existing.fulfillments {
        for l in &f.line_items {
            if let Some(id) = &l.line_item_id {
                let q = l.quantity.and_then(|q| u32::try_from(q).ok()).unwrap_or(1);
                *covered.entry(id.clone()).or_default() += q;
            }
        }
    }

    let mut lines: Vec<(String, u32)> = Vec::new();
    if push.shipment.lines.is_empty() {
        for l in &push.order.lines {
            let open = l
                .quantity
                .saturating_sub(l.refunded_quantity)
                .saturating_sub(covered.get(&l.line_id).copied().unwrap_or(0));
            if open > 0 {
                lines.push((l.line_id.clone(), open));
            }
        }
    } else {
        for s in &push.shipment.lines {
            let by_id = push.order.lines.iter().find(|l| l.line_id == s.line_id);
            let by_sku = || {
                push.order
                    .lines
                    .iter()
                    .find(|l| s.sku.is_some() && l.sku == s.sku)
            };
            let Some(line) = by_id.or_else(by_sku) else {
                return Err(ConnectorError::Rejected {
                    status: None,
                    detail: format!(
                        "eBay order {order_id} has no line {:?} (sku {:?}) to ship",
                        s.line_id, s.sku
                    ),
                });
            };
            match lines.iter_mut().find(|(id, _)| *id == line.line_id) {
                Some((_, q)) => *q += s.quantity,
                None => lines.push((line.line_id.clone(), s.quantity)),
            }
        }
    }

    let earlier = existing.fulfillments.iter().find(|f| {
        if tracking.is_empty() {
            // Without a tracking number, the same lines and quantities.
            let theirs: Vec<(String, u32)> = f
                .line_items
                .iter()
                .filter_map(|l| {
                    Some((
                        l.line_item_id.clone()?,
                        l.quantity.and_then(|q| u32::try_from(q).ok()).unwrap_or(1),
                    ))
                })
                .collect();
            f.shipment_tracking_number
                .as_deref()
                .is_none_or(str::is_empty)
                && theirs == lines
        } else {
            f.shipment_tracking_number
                .as_deref()
                .is_some_and(|n| ebay_tracking_number(n).eq_ignore_ascii_case(&tracking))
                || f.fulfillment_id.as_deref() == Some(tracking.as_str())
        }
    });
    if let Some(f) = earlier {
        return Ok(TrackingResult::AlreadyThere {
            channel_ref: f.fulfillment_id.clone(),
        });
    }
    if lines.is_empty() {
        return Err(ConnectorError::Rejected {
            status: None,
            detail: format!(
                "eBay order {order_id} has no units left to ship: its {} fulfilment(s) cover every line; tracking {:?} was not added",
                existing.fulfillments.len(),
                push.shipment.tracking_number
            ),
        });
    }

    let mut body = json!({
        "lineItems": lines.iter().map(|(id, q)| json!({"lineItemId": id, "quantity": q})).collect::<Vec<_>>(),
    });
    if let Some(at) = push.shipment.shipped_at {
        body["shippedDate"] = json!(endpoints::ebay_time(at));
    }
    // eBay takes the carrier and the tracking number together or neither.
    if !tracking.is_empty() {
        body["shippingCarrierCode"] = json!(ebay_code(&push.shipment.carrier));
        body["trackingNumber"] = json!(tracking);
    }
    let answer = client
        .call(Call::post(
            "createShippingFulfillment",
            Operation::PushTracking,
            Api::Fulfillment,
            endpoints::fulfillments_path(order_id),
            &body,
        ))
        .await?;
    let channel_ref = answer
        .location
        .as_deref()
        .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    Ok(TrackingResult::Created { channel_ref })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_refs_round_trip_and_name_the_batch() {
        let offers = vec![
            OfferRef {
                offer_id: "5005317010".into(),
                listing_id: "110551234567".into(),
            },
            OfferRef {
                offer_id: "5005317011".into(),
                listing_id: "110551234500".into(),
            },
        ];
        let r = format_listing_ref(&offers);
        assert_eq!(r, "5005317010@110551234567,5005317011@110551234500");
        assert_eq!(parse_listing_ref(&r), Some(offers));
        let push = InventoryPush {
            sku: "MUG".into(),
            quantity: 1,
            last_confirmed: None,
            listing_ref: Some(r),
            idempotency_key: "k".into(),
        };
        assert_eq!(batch_key(&push).as_deref(), Some("listing:110551234500"));
        for bad in [
            "",
            "5005317010",
            "a@",
            "@b",
            "x@y z",
            "gid://shopify/InventoryItem/1",
        ] {
            assert_eq!(parse_listing_ref(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tracking_numbers_keep_letters_and_digits() {
        assert_eq!(ebay_tracking_number("1Z 999-AA1 0123"), "1Z999AA10123");
        assert_eq!(ebay_tracking_number("—"), "");
    }
}
