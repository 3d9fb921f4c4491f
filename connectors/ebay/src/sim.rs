//! The simulated eBay seller (feature `sim`), for `switchyard demo`,
//! `replay` and the daemon's tests: the calls whose answer depends on what
//! was sent before, which recorded answers cannot follow. Everything else
//! (tokens, orders, offers, signing keys) is answered from the recordings.
//!
//! - **Fulfilments.** `createShippingFulfillment` is refused, as eBay does,
//!   without line items, with a line item of no positive quantity, or with
//!   a carrier and no tracking number (or the other way round); otherwise it
//!   is kept and answered `201` with `Location: …/shipping_fulfillment/{id}`,
//!   the id being the tracking number (eBay's rule) or a counter without
//!   one. `getShippingFulfillments` answers the fulfilments kept for the
//!   order, so that a push retried after a timeout finds its first attempt.
//! - **Stock.** `bulkUpdatePriceQuantity` is refused beyond 25 requests;
//!   each request with a SKU gets a `200` entry for its item and one per
//!   offer it names, and the levels are kept ([`Seller::level`]).

use std::any::Any;
use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchyard_contract::testkit::{ChannelSim, HttpRequest, HttpResponse, SimMode};

const FULFILLMENT: &str = "/sell/fulfillment/v1/order/";
const BULK_UPDATE: &str = "/sell/inventory/v1/bulk_update_price_quantity";
/// eBay's limit on the requests of one bulk update.
const MAX_BULK_REQUESTS: usize = 25;

/// What the seller's account holds that changes with the calls.
#[derive(Debug, Default)]
pub struct Seller {
    /// Order id → its fulfilments, as getShippingFulfillments answers them.
    fulfillments: BTreeMap<String, Vec<Value>>,
    next_id: u64,
    /// SKU → the last quantity set.
    levels: BTreeMap<String, i64>,
}

fn error(status: u16, id: u32, message: &str) -> HttpResponse {
    HttpResponse::json(
        status,
        &json!({ "errors": [{ "errorId": id, "domain": "API_FULFILLMENT", "category": "REQUEST", "message": message }] }),
    )
}

impl Seller {
    /// The answer to a call this state follows, or `None` for a recorded one.
    pub fn answer(&mut self, req: &HttpRequest) -> Option<HttpResponse> {
        if req.method == "POST" && req.path == BULK_UPDATE {
            return Some(self.bulk_update(req));
        }
        let order = req
            .path
            .strip_prefix(FULFILLMENT)?
            .strip_suffix("/shipping_fulfillment")?
            .to_owned();
        match req.method.as_str() {
            "GET" => {
                let list = self.fulfillments.get(&order).cloned().unwrap_or_default();
                Some(HttpResponse::json(
                    200,
                    &json!({ "total": list.len(), "fulfillments": list }),
                ))
            }
            "POST" => Some(self.create_fulfillment(&order, req)),
            _ => None,
        }
    }

    fn create_fulfillment(&mut self, order: &str, req: &HttpRequest) -> HttpResponse {
        let Some(body) = req.body_json() else {
            return error(400, 32000, "The request body is not JSON.");
        };
        let lines = body["lineItems"].as_array().cloned().unwrap_or_default();
        if lines.is_empty() {
            return error(400, 32200, "Invalid line item id: no line items.");
        }
        if lines
            .iter()
            .any(|l| l["lineItemId"].as_str().is_none() || l["quantity"].as_i64().unwrap_or(1) < 1)
        {
            return error(400, 32210, "Invalid line item quantity.");
        }
        let tracking = body["trackingNumber"].as_str().filter(|t| !t.is_empty());
        let carrier = body["shippingCarrierCode"]
            .as_str()
            .filter(|c| !c.is_empty());
        if tracking.is_some() != carrier.is_some() {
            return error(
                400,
                32400,
                "shippingCarrierCode and trackingNumber go together.",
            );
        }
        let id = match tracking {
            Some(t) => t.to_owned(),
            None => {
                self.next_id += 1;
                format!("{}", 999 + self.next_id)
            }
        };
        let mut kept = json!({
            "fulfillmentId": id,
            "lineItems": lines,
            "shippedDate": body["shippedDate"].as_str().unwrap_or("2026-11-28T00:00:00.000Z"),
        });
        if let (Some(t), Some(c)) = (tracking, carrier) {
            kept["shipmentTrackingNumber"] = json!(t);
            kept["shippingCarrierCode"] = json!(c);
        }
        self.fulfillments
            .entry(order.to_owned())
            .or_default()
            .push(kept);
        HttpResponse {
            status: 201,
            headers: vec![(
                "location".into(),
                format!("https://api.ebay.com{FULFILLMENT}{order}/shipping_fulfillment/{id}"),
            )],
            body: Vec::new(),
        }
    }

    fn bulk_update(&mut self, req: &HttpRequest) -> HttpResponse {
        let requests = req
            .body_json()
            .and_then(|b| b["requests"].as_array().cloned())
            .unwrap_or_default();
        if requests.is_empty() || requests.len() > MAX_BULK_REQUESTS {
            return error(
                400,
                25709,
                "Invalid value for requests: 1 to 25 inventory items per call.",
            );
        }
        let mut responses = Vec::new();
        for r in &requests {
            let Some(sku) = r["sku"].as_str() else {
                responses.push(json!({ "statusCode": 400, "errors": [{ "errorId": 25709, "message": "Invalid value for sku." }] }));
                continue;
            };
            if let Some(q) = r["shipToLocationAvailability"]["quantity"].as_i64() {
                self.levels.insert(sku.to_owned(), q);
            }
            responses.push(json!({ "statusCode": 200, "sku": sku, "warnings": [] }));
            for o in r["offers"].as_array().into_iter().flatten() {
                responses.push(json!({ "statusCode": 200, "sku": sku, "offerId": o["offerId"], "warnings": [] }));
            }
        }
        HttpResponse::json(200, &json!({ "responses": responses }))
    }

    /// The quantity last set for a SKU.
    pub fn level(&self, sku: &str) -> Option<i64> {
        self.levels.get(sku).copied()
    }

    /// Every fulfilment created, as `(order id, fulfilment)`.
    pub fn created(&self) -> Vec<(String, Value)> {
        self.fulfillments
            .iter()
            .flat_map(|(o, list)| list.iter().map(|f| (o.clone(), f.clone())))
            .collect()
    }
}

/// The registry's simulator for eBay: the same in both modes.
pub fn simulator(_mode: SimMode) -> Option<Box<dyn ChannelSim>> {
    Some(Box::new(Seller::default()))
}

impl ChannelSim for Seller {
    fn answer(&mut self, req: &HttpRequest) -> Option<HttpResponse> {
        Seller::answer(self, req)
    }

    fn writes(&self, requests: &[HttpRequest]) -> Vec<(String, usize)> {
        let (mut fulfilments, mut levels) = (0, 0);
        for r in requests.iter().filter(|r| r.method == "POST") {
            if r.path.ends_with("/shipping_fulfillment") {
                fulfilments += 1;
            } else if r.path == BULK_UPDATE {
                // One call sets up to 25 SKUs' levels: count the levels.
                levels += r
                    .body_json()
                    .and_then(|b| b["requests"].as_array().map(Vec::len))
                    .unwrap_or(1);
            }
        }
        [
            ("stock levels (eBay bulkUpdatePriceQuantity)", levels),
            (
                "tracking numbers (eBay createShippingFulfillment)",
                fulfilments,
            ),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(label, n)| (label.to_owned(), n))
        .collect()
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, body: Value) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            query: vec![],
            headers: vec![],
            body: if body.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&body).unwrap()
            },
        }
    }

    #[test]
    fn a_created_fulfilment_is_read_back_and_ebays_rules_hold() {
        let mut s = Seller::default();
        let path = "/sell/fulfillment/v1/order/12-1/shipping_fulfillment";
        let created = s
            .answer(&req(
                "POST",
                path,
                json!({"lineItems": [{"lineItemId": "1", "quantity": 2}], "shippingCarrierCode": "UPS", "trackingNumber": "1Z1"}),
            ))
            .unwrap();
        assert_eq!(created.status, 201);
        assert!(
            created.headers[0]
                .1
                .ends_with("/12-1/shipping_fulfillment/1Z1")
        );
        let back = s.answer(&req("GET", path, Value::Null)).unwrap();
        let v: Value = serde_json::from_slice(&back.body).unwrap();
        assert_eq!(v["fulfillments"][0]["shipmentTrackingNumber"], "1Z1");
        for bad in [
            json!({"lineItems": []}),
            json!({"lineItems": [{"lineItemId": "1", "quantity": 0}]}),
            json!({"lineItems": [{"lineItemId": "1"}], "trackingNumber": "1Z2"}),
        ] {
            assert_eq!(s.answer(&req("POST", path, bad)).unwrap().status, 400);
        }
        assert!(
            s.answer(&req("GET", "/sell/fulfillment/v1/order", Value::Null))
                .is_none()
        );
    }

    #[test]
    fn bulk_updates_answer_every_sku_and_offer_and_keep_the_level() {
        let mut s = Seller::default();
        let body = json!({"requests": [
            {"sku": "A", "shipToLocationAvailability": {"quantity": 4}, "offers": [{"offerId": "9", "availableQuantity": 4}]},
            {"sku": "B", "shipToLocationAvailability": {"quantity": 0}, "offers": []}]});
        let a = s.answer(&req("POST", BULK_UPDATE, body)).unwrap();
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["responses"].as_array().unwrap().len(), 3);
        assert_eq!((s.level("A"), s.level("B")), (Some(4), Some(0)));
        let too_many = json!({"requests": (0..26).map(|i| json!({"sku": format!("S{i}")})).collect::<Vec<_>>()});
        assert_eq!(
            s.answer(&req("POST", BULK_UPDATE, too_many))
                .unwrap()
                .status,
            400
        );
    }
}
