//! Every Etsy Open API v3 endpoint this crate calls, by operationId, as the
//! published spec spells its path (`spec/etsy-openapi-3.0.0.json`; the
//! conformance test checks every recorded request against it).

/// `getShopReceipts`: the poll (changed receipts, resweeps) and `check`.
pub fn shop_receipts(shop_id: u64) -> String {
    format!("/v3/application/shops/{shop_id}/receipts")
}

/// `getShopReceipt`: fetch by id, and the read-back before a tracking push.
pub fn shop_receipt(shop_id: u64, receipt_id: u64) -> String {
    format!("/v3/application/shops/{shop_id}/receipts/{receipt_id}")
}

/// `createReceiptShipment` (form-encoded).
pub fn receipt_tracking(shop_id: u64, receipt_id: u64) -> String {
    format!("/v3/application/shops/{shop_id}/receipts/{receipt_id}/tracking")
}

/// `getListingsByShop`: listing ids and SKUs, to find a SKU's listing.
pub fn shop_listings(shop_id: u64) -> String {
    format!("/v3/application/shops/{shop_id}/listings")
}

/// `getListingInventory` and `updateListingInventory`.
pub fn listing_inventory(listing_id: u64) -> String {
    format!("/v3/application/listings/{listing_id}/inventory")
}

pub const GET_SHOP_RECEIPTS: &str = "getShopReceipts";
pub const GET_SHOP_RECEIPT: &str = "getShopReceipt";
pub const CREATE_RECEIPT_SHIPMENT: &str = "createReceiptShipment";
pub const GET_LISTINGS_BY_SHOP: &str = "getListingsByShop";
pub const GET_LISTING_INVENTORY: &str = "getListingInventory";
pub const UPDATE_LISTING_INVENTORY: &str = "updateListingInventory";
