//! Pushes back to Amazon: shipments (`confirmShipment`) and the
//! seller-fulfilled quantity of listings (`patchListingsItem`, or a
//! `JSON_LISTINGS_FEED` for many SKUs at once).
//!
//! # Tracking
//!
//! Before confirming, the order is read back (`getOrder` with `PACKAGES` and
//! `FULFILLMENT`): a package that already carries the tracking number means
//! an earlier attempt went through (`AlreadyThere`); an Amazon-fulfilled or
//! cancelled order is refused; the order's marketplace is the one the
//! confirmation names. A shipment without lines confirms every unit not yet
//! fulfilled; one with lines confirms those quantities (a partial shipment),
//! each line matched by Amazon order item id, else by SKU. The package
//! reference is a positive number derived from the push's idempotency key, so
//! a retry re-sends the same package, which Amazon treats as an edit of it.
//! Carriers go through [`crate::carrier`]: a listed one by its code, any other
//! as `Other` with its name.
//!
//! # Stock
//!
//! Up to [`PATCH_LIMIT`] SKUs are set one by one with `patchListingsItem`
//! (`replace /attributes/fulfillment_availability`, channel `DEFAULT`, which
//! is the seller-fulfilled quantity). Amazon takes a patch for processing
//! (`ACCEPTED`) and applies it within minutes; that is reported as set. More
//! SKUs go as one feed (up to [`BATCH_LIMIT`]): the document is created,
//! uploaded to the pre-signed URL Amazon gives, the feed created, and each
//! push answered `Pending` with its own small receipt (feed id, message id,
//! SKU, quantity, product type). [`check_receipt`] reads the feed's state and,
//! once done, its processing report (cached per feed, so a feed's report is
//! fetched once however many receipts ask): an `ERROR` issue for the message
//! is that push's error, anything else is set.
//!
//! Both need the listing's product type: it is looked up with
//! `getListingsItem` the first time and returned as `listing_ref`, so that
//! the daemon hands it back and later pushes skip the look-up. A SKU Amazon
//! has no listing for, or whose listing only Amazon fulfils (FBA stock is
//! Amazon's), is `NotListed`. Amazon has no compare-and-set on quantities:
//! `last_confirmed` is not used.

use std::collections::VecDeque;
use std::io::Read as _;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchyard_contract::{
    ConnectorError, Fulfillment, InventoryPush, InventoryResult, ReceiptStatus, TrackingPush,
    TrackingResult,
};

use crate::carrier;
use crate::client::SpClient;
use crate::config::AmazonSettings;
use crate::cursor::rfc3339;
use crate::endpoints::{
    self, AmazonOp, FEED_CONTENT_TYPE, FEED_DOCUMENTS, FEEDS, GET_ORDER, JSON_LISTINGS_FEED,
    LISTING_DATA, LISTINGS_ITEMS, READ_BACK_DATA, segment,
};
use crate::wire::{
    CreateFeedAnswer, Feed, FeedDocumentAnswer, GetOrderResponse, ListingsItem, Order,
    ProcessingReport, ReportIssue, SubmissionResponse,
};

/// At most this many SKUs are patched one by one; more go as a feed. A patch
/// is one request from a bucket of 5 refilled at 5 a second, so 20 take about
/// three seconds and come back set; a feed is three requests whatever its
/// size, but its result is known only minutes later and `createFeed` allows
/// one feed every two minutes (15 at once).
pub const PATCH_LIMIT: usize = 20;

/// SKUs in one feed. Amazon takes up to 25,000 messages; 2,000 (about
/// 600 KB of JSON) keeps a failed feed's retry small, and at one feed every
/// two minutes still sets 1,000 SKUs a minute, three times what patches do.
pub const BATCH_LIMIT: usize = 2_000;

/// When a new feed is first worth asking about, and then how often.
pub const FIRST_CHECK: Duration = Duration::minutes(3);
pub const RECHECK: Duration = Duration::minutes(2);

/// Processing reports kept for receipts still to be answered.
const REPORTS_KEPT: usize = 32;

// ---------------------------------------------------------------------------
// tracking

/// The package reference for a push: a positive number (Amazon takes no
/// other), the same for every retry of the push (FNV-1a of its key).
pub fn package_reference(idempotency_key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in idempotency_key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 999_999_999 + 1).to_string()
}

fn rejected(detail: String) -> ConnectorError {
    ConnectorError::Rejected {
        status: None,
        detail,
    }
}

pub(crate) async fn push_tracking(
    client: &SpClient,
    settings: &AmazonSettings,
    push: &TrackingPush,
) -> Result<TrackingResult, ConnectorError> {
    let order_id = push.order.channel_order_id.trim();
    let shipment = &push.shipment;
    if push.order.fulfillment == Fulfillment::Channel {
        return Err(rejected(format!(
            "amazon order {order_id} is fulfilled by Amazon, which confirms its shipments itself"
        )));
    }
    let tracking = shipment.tracking_number.trim();
    if tracking.is_empty() || shipment.carrier.trim().is_empty() {
        return Err(rejected(format!(
            "shipment of amazon order {order_id} needs a carrier and a tracking number: \
             Amazon refuses a confirmation without them"
        )));
    }
    let reply = client
        .call(
            AmazonOp::GetOrder,
            Method::GET,
            &format!("{GET_ORDER}/{}", segment(order_id)),
            &[("includedData", READ_BACK_DATA.to_owned())],
            None,
            &[404],
        )
        .await?;
    if reply.status == 404 {
        return Err(rejected(format!(
            "amazon has no order {order_id} (getOrder answered 404)"
        )));
    }
    let answer: GetOrderResponse = client.decode(AmazonOp::GetOrder, &reply.body)?;
    let order: Order = serde_json::from_value(answer.order).map_err(|e| {
        ConnectorError::Decode(format!("getOrder {order_id}: unexpected order shape: {e}"))
    })?;
    let fulfilment = order.fulfillment.unwrap_or_default();
    if fulfilment.fulfilled_by.as_deref() == Some("AMAZON") {
        return Err(rejected(format!(
            "amazon order {order_id} is fulfilled by Amazon, which confirms its shipments itself"
        )));
    }
    if let Some(status @ ("CANCELLED" | "UNFULFILLABLE")) = fulfilment.fulfillment_status.as_deref()
    {
        return Err(rejected(format!(
            "amazon order {order_id} is {} on Amazon: there is nothing to confirm",
            status.to_ascii_lowercase()
        )));
    }
    if let Some(p) = order.packages.iter().flatten().find(|p| {
        p.tracking_number
            .as_deref()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(tracking))
    }) {
        return Ok(TrackingResult::AlreadyThere {
            channel_ref: p.package_reference_id.clone(),
        });
    }

    let mut items = Vec::new();
    if shipment.lines.is_empty() {
        for item in &order.order_items {
            let f = item.fulfillment.as_ref();
            let open = match f.and_then(|f| f.quantity_unfulfilled) {
                Some(open) => open,
                None => item.quantity_ordered - f.and_then(|f| f.quantity_fulfilled).unwrap_or(0),
            };
            if open > 0 {
                items.push(json!({"orderItemId": item.order_item_id, "quantity": open}));
            }
        }
        if items.is_empty() {
            return Err(rejected(format!(
                "amazon order {order_id} has no units left to ship; a shipment of the whole \
                 order cannot be confirmed"
            )));
        }
    } else {
        for line in &shipment.lines {
            let found = order
                .order_items
                .iter()
                .find(|i| i.order_item_id == line.line_id)
                .or_else(|| {
                    line.sku.as_deref().and_then(|sku| {
                        order
                            .order_items
                            .iter()
                            .find(|i| i.product.seller_sku.as_deref() == Some(sku))
                    })
                });
            let Some(item) = found else {
                return Err(rejected(format!(
                    "amazon order {order_id} has no item {} (sku {}): nothing was confirmed",
                    line.line_id,
                    line.sku.as_deref().unwrap_or("none")
                )));
            };
            if line.quantity > 0 {
                items.push(json!({"orderItemId": item.order_item_id, "quantity": line.quantity}));
            }
        }
        if items.is_empty() {
            return Err(rejected(format!(
                "shipment of amazon order {order_id} has no units"
            )));
        }
    }

    let marketplace = order
        .sales_channel
        .marketplace_id
        .clone()
        .or_else(|| settings.marketplace_ids.first().cloned())
        .unwrap_or_default();
    let reference = package_reference(&push.idempotency_key);
    let (code, name) = carrier::amazon_carrier(&shipment.carrier);
    let mut detail = json!({
        "packageReferenceId": reference,
        "carrierCode": code,
        "trackingNumber": tracking,
        "shipDate": rfc3339(shipment.shipped_at.unwrap_or_else(|| client.now())),
        "orderItems": items,
    });
    if let Some(name) = name {
        detail["carrierName"] = json!(name);
    }
    let body = json!({"marketplaceId": marketplace, "packageDetail": detail});
    client
        .call(
            AmazonOp::ConfirmShipment,
            Method::POST,
            &endpoints::confirm_shipment(order_id),
            &[],
            Some(&body),
            &[],
        )
        .await?;
    Ok(TrackingResult::Created {
        channel_ref: Some(reference),
    })
}

// ---------------------------------------------------------------------------
// stock

enum Listing {
    ProductType(String),
    NotListed,
}

fn marketplaces(settings: &AmazonSettings) -> String {
    settings.marketplace_ids.join(",")
}

fn listing_path(settings: &AmazonSettings, sku: &str) -> String {
    format!(
        "{LISTINGS_ITEMS}/{}/{}",
        segment(&settings.seller_id),
        segment(sku)
    )
}

/// The listing's product type, or `NotListed` for a SKU Amazon has no
/// listing for or only fulfils itself.
async fn listing(
    client: &SpClient,
    settings: &AmazonSettings,
    push: &InventoryPush,
) -> Result<Listing, ConnectorError> {
    if let Some(product_type) = push.listing_ref.as_deref().map(str::trim)
        && !product_type.is_empty()
    {
        return Ok(Listing::ProductType(product_type.to_owned()));
    }
    let op = AmazonOp::GetListingsItem;
    let reply = client
        .call(
            op,
            Method::GET,
            &listing_path(settings, &push.sku),
            &[
                ("marketplaceIds", marketplaces(settings)),
                ("includedData", LISTING_DATA.to_owned()),
            ],
            None,
            &[404],
        )
        .await?;
    if reply.status == 404 {
        return Ok(Listing::NotListed);
    }
    let item: ListingsItem = client.decode(op, &reply.body)?;
    let channels: Vec<&str> = item
        .fulfillment_availability
        .iter()
        .filter_map(|f| f.fulfillment_channel_code.as_deref())
        .collect();
    if !channels.is_empty() && !channels.contains(&"DEFAULT") {
        return Ok(Listing::NotListed);
    }
    let first = settings.marketplace_ids.first().map(String::as_str);
    item.summaries
        .iter()
        .find(|s| s.marketplace_id.as_deref() == first)
        .or_else(|| item.summaries.first())
        .and_then(|s| s.product_type.clone())
        .filter(|t| !t.trim().is_empty())
        .map(Listing::ProductType)
        .ok_or_else(|| {
            ConnectorError::Decode(format!(
                "getListingsItem: the listing of sku {:?} names no product type",
                push.sku
            ))
        })
}

fn availability_patch(quantity: u32) -> serde_json::Value {
    json!([{
        "op": "replace",
        "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}],
    }])
}

fn issues_text(issues: impl IntoIterator<Item = (Option<String>, Option<String>)>) -> String {
    issues
        .into_iter()
        .map(|(code, message)| match code {
            Some(c) => format!("{c}: {}", message.unwrap_or_default()),
            None => message.unwrap_or_default(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn patch_one(
    client: &SpClient,
    settings: &AmazonSettings,
    push: &InventoryPush,
) -> Result<InventoryResult, ConnectorError> {
    let product_type = match listing(client, settings, push).await? {
        Listing::NotListed => return Ok(InventoryResult::NotListed),
        Listing::ProductType(t) => t,
    };
    let op = AmazonOp::PatchListingsItem;
    let body = json!({"productType": product_type, "patches": availability_patch(push.quantity)});
    let answer: SubmissionResponse = client
        .json(
            op,
            Method::PATCH,
            &listing_path(settings, &push.sku),
            &[
                ("marketplaceIds", marketplaces(settings)),
                ("includedData", "issues".to_owned()),
            ],
            Some(&body),
        )
        .await?;
    match answer.status.as_deref() {
        Some("ACCEPTED") => Ok(InventoryResult::Set {
            quantity: push.quantity,
            listing_ref: Some(product_type),
        }),
        Some("INVALID") => Err(rejected(format!(
            "patchListingsItem sku {:?}: Amazon refused the quantity (submission {}): {}",
            push.sku,
            answer.submission_id.as_deref().unwrap_or("without id"),
            issues_text(answer.issues.into_iter().map(|i| (i.code, i.message)))
        ))),
        other => Err(ConnectorError::Decode(format!(
            "patchListingsItem sku {:?}: unexpected submission status {other:?}",
            push.sku
        ))),
    }
}

/// What a `Pending` receipt carries: enough to answer for its push without
/// anything else stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub feed: String,
    pub message: u64,
    pub sku: String,
    pub quantity: u32,
    pub product_type: String,
}

pub(crate) async fn push_inventory_batch(
    client: &SpClient,
    settings: &AmazonSettings,
    pushes: &[InventoryPush],
) -> Vec<Result<InventoryResult, ConnectorError>> {
    if pushes.len() <= PATCH_LIMIT {
        let mut out = Vec::with_capacity(pushes.len());
        for push in pushes {
            out.push(patch_one(client, settings, push).await);
        }
        return out;
    }
    let mut out: Vec<Option<Result<InventoryResult, ConnectorError>>> = vec![None; pushes.len()];
    let mut messages = Vec::new();
    // (push index, message id, product type)
    let mut sent: Vec<(usize, u64, String)> = Vec::new();
    for (i, push) in pushes.iter().enumerate() {
        match listing(client, settings, push).await {
            Ok(Listing::NotListed) => out[i] = Some(Ok(InventoryResult::NotListed)),
            Err(e) => out[i] = Some(Err(e)),
            Ok(Listing::ProductType(product_type)) => {
                let message_id = sent.len() as u64 + 1;
                messages.push(json!({
                    "messageId": message_id,
                    "sku": push.sku,
                    "operationType": "PATCH",
                    "productType": product_type,
                    "patches": availability_patch(push.quantity),
                }));
                sent.push((i, message_id, product_type));
            }
        }
    }
    if !messages.is_empty() {
        let document = json!({
            "header": {"sellerId": settings.seller_id, "version": "2.0", "issueLocale": "en_US"},
            "messages": messages,
        });
        match submit_feed(client, settings, &document).await {
            Ok(feed) => {
                let check_after = client.now() + FIRST_CHECK;
                for (i, message, product_type) in sent {
                    let receipt = Receipt {
                        feed: feed.clone(),
                        message,
                        sku: pushes[i].sku.clone(),
                        quantity: pushes[i].quantity,
                        product_type,
                    };
                    out[i] = Some(Ok(InventoryResult::Pending {
                        // Plain fields only: serializing cannot fail.
                        receipt: serde_json::to_string(&receipt).unwrap_or_default(),
                        check_after,
                    }));
                }
            }
            Err(e) => {
                for (i, _, _) in sent {
                    out[i] = Some(Err(e.clone()));
                }
            }
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ConnectorError::Transient(
                    "stock push was not attempted".into(),
                ))
            })
        })
        .collect()
}

/// createFeedDocument, upload, createFeed: the feed id.
async fn submit_feed(
    client: &SpClient,
    settings: &AmazonSettings,
    document: &serde_json::Value,
) -> Result<String, ConnectorError> {
    let doc: FeedDocumentAnswer = client
        .json(
            AmazonOp::CreateFeedDocument,
            Method::POST,
            FEED_DOCUMENTS,
            &[],
            Some(&json!({"contentType": FEED_CONTENT_TYPE})),
        )
        .await?;
    // A JSON value always serializes.
    let bytes = serde_json::to_vec(document).unwrap_or_default();
    client
        .put_presigned(&doc.url, FEED_CONTENT_TYPE, bytes)
        .await?;
    let feed: CreateFeedAnswer = client
        .json(
            AmazonOp::CreateFeed,
            Method::POST,
            FEEDS,
            &[],
            Some(&json!({
                "feedType": JSON_LISTINGS_FEED,
                "marketplaceIds": settings.marketplace_ids,
                "inputFeedDocumentId": doc.feed_document_id,
            })),
        )
        .await?;
    Ok(feed.feed_id)
}

/// What is known of one feed.
#[derive(Debug, Clone)]
enum FeedState {
    /// Still processing when asked at that time.
    Processing(DateTime<Utc>),
    /// Processed; the report's issues.
    Done(Vec<ReportIssue>),
    /// Will not be processed: the error every push of it gets.
    Failed(ConnectorError),
}

/// Feeds asked about lately, newest last.
#[derive(Debug, Default)]
pub(crate) struct FeedCache(Mutex<VecDeque<(String, FeedState)>>);

impl FeedCache {
    fn get(&self, feed: &str) -> Option<FeedState> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .iter()
            .find(|(id, _)| id == feed)
            .map(|(_, s)| s.clone())
    }

    fn put(&self, feed: &str, state: FeedState) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(id, _)| id != feed);
        cache.push_back((feed.to_owned(), state));
        while cache.len() > REPORTS_KEPT {
            cache.pop_front();
        }
    }
}

pub(crate) async fn check_receipt(
    client: &SpClient,
    cache: &FeedCache,
    receipt: &str,
) -> Result<ReceiptStatus, ConnectorError> {
    let r: Receipt = serde_json::from_str(receipt).map_err(|e| {
        ConnectorError::Config(format!(
            "{receipt:?} is not an amazon feed receipt ({e}); push the stock again"
        ))
    })?;
    let now = client.now();
    let state = match cache.get(&r.feed) {
        Some(FeedState::Processing(at)) if now < at + RECHECK => {
            return Ok(ReceiptStatus::Pending {
                check_after: at + RECHECK,
            });
        }
        Some(state @ (FeedState::Done(_) | FeedState::Failed(_))) => state,
        _ => {
            let state = read_feed(client, &r.feed).await?;
            cache.put(&r.feed, state.clone());
            state
        }
    };
    let result = match state {
        FeedState::Processing(at) => {
            return Ok(ReceiptStatus::Pending {
                check_after: at + RECHECK,
            });
        }
        FeedState::Failed(e) => Err(e),
        FeedState::Done(issues) => {
            let errors: Vec<&ReportIssue> = issues
                .iter()
                .filter(|i| i.severity.as_deref() == Some("ERROR"))
                .filter(|i| match (i.message_id, &i.sku) {
                    (Some(m), _) => m == r.message,
                    (None, Some(sku)) => *sku == r.sku,
                    // Not about one message: about the feed, so about all.
                    (None, None) => true,
                })
                .collect();
            if errors.is_empty() {
                Ok(InventoryResult::Set {
                    quantity: r.quantity,
                    listing_ref: Some(r.product_type.clone()),
                })
            } else {
                Err(rejected(format!(
                    "feed {} message {} (sku {:?}): {}",
                    r.feed,
                    r.message,
                    r.sku,
                    issues_text(errors.iter().map(|i| (i.code.clone(), i.message.clone())))
                )))
            }
        }
    };
    Ok(ReceiptStatus::Done {
        results: vec![(r.sku, result)],
    })
}

async fn read_feed(client: &SpClient, feed_id: &str) -> Result<FeedState, ConnectorError> {
    let feed: Feed = client
        .json(
            AmazonOp::GetFeed,
            Method::GET,
            &format!("{FEEDS}/{}", segment(feed_id)),
            &[],
            None,
        )
        .await?;
    match feed.processing_status.as_str() {
        "IN_QUEUE" | "IN_PROGRESS" => Ok(FeedState::Processing(client.now())),
        "CANCELLED" => Ok(FeedState::Failed(ConnectorError::Transient(format!(
            "feed {feed_id} was cancelled before Amazon processed it; the stock must be pushed again"
        )))),
        "DONE" | "FATAL" => {
            let report = match &feed.result_feed_document_id {
                Some(doc) => Some(read_report(client, doc).await?),
                None => None,
            };
            if feed.processing_status == "FATAL" {
                let why = report
                    .map(|r| issues_text(r.issues.into_iter().map(|i| (i.code, i.message))))
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "no processing report".into());
                return Ok(FeedState::Failed(ConnectorError::Transient(format!(
                    "feed {feed_id} failed as a whole (FATAL: {why}); the stock must be pushed again"
                ))));
            }
            Ok(FeedState::Done(
                report.map(|r| r.issues).unwrap_or_default(),
            ))
        }
        other => Err(ConnectorError::Decode(format!(
            "getFeed {feed_id}: unknown processing status {other:?}"
        ))),
    }
}

async fn read_report(
    client: &SpClient,
    document_id: &str,
) -> Result<ProcessingReport, ConnectorError> {
    let op = AmazonOp::GetFeedDocument;
    let doc: FeedDocumentAnswer = client
        .json(
            op,
            Method::GET,
            &format!("{FEED_DOCUMENTS}/{}", segment(document_id)),
            &[],
            None,
        )
        .await?;
    let mut bytes = client.get_presigned(&doc.url).await?;
    match doc.compression_algorithm.as_deref() {
        None => {}
        Some("GZIP") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_end(&mut plain)
                .map_err(|e| {
                    ConnectorError::Decode(format!(
                        "processing report {document_id} is not valid gzip: {e}"
                    ))
                })?;
            bytes = plain;
        }
        Some(other) => {
            return Err(ConnectorError::Decode(format!(
                "processing report {document_id} is compressed with {other}, which this build \
                 cannot read"
            )));
        }
    }
    client.decode(op, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_references_are_positive_numbers_stable_per_key() {
        let a = package_reference("delivery-1");
        assert_eq!(a, package_reference("delivery-1"));
        assert_ne!(a, package_reference("delivery-2"));
        for key in ["", "x", "delivery-1", "a much longer idempotency key"] {
            let r: u64 = package_reference(key).parse().unwrap();
            assert!((1..=999_999_999).contains(&r), "{key}: {r}");
        }
    }

    #[test]
    fn receipts_round_trip_and_refuse_anything_else() {
        let r = Receipt {
            feed: "F1".into(),
            message: 3,
            sku: "MUG".into(),
            quantity: 7,
            product_type: "MUG".into(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Receipt>(&text).unwrap(), r);
        assert!(serde_json::from_str::<Receipt>("{\"feed\":\"F1\"}").is_err());
    }
}
