//! The simulated channels' own state, as tests read and change it: each
//! channel crate's simulator (its `sim` feature) through
//! `Simulator::with`, under the names the tests use.

use switchyard::sim::Simulator;
use switchyard_contract::Channel;
use switchyard_shopify::sim::{CostBucket, ShopifySim};

/// The simulated Shopify shop.
pub trait ShopifySimExt {
    fn shopify<R>(&self, f: impl FnOnce(&mut ShopifySim) -> R) -> R;

    /// Adds variants for SKUs the shop does not sell yet, each stocked at
    /// the shop's location with 0 available.
    fn add_shopify_skus(&self, skus: &[&str]) {
        self.shopify(|s| s.shop.add_skus(skus));
    }

    /// What the shop shows as `available` for a SKU; None if it does not sell it.
    fn shopify_available(&self, sku: &str) -> Option<i64> {
        self.shopify(|s| s.shop.available_of(sku))
    }

    /// The inventory item gid of a SKU the shop sells.
    fn shopify_inventory_item(&self, sku: &str) -> Option<String> {
        self.shopify(|s| s.shop.inventory_item(sku))
    }

    /// A sale in the shop's own storefront; what is left.
    fn shopify_sell(&self, sku: &str, quantity: i64) -> Result<i64, String> {
        self.shopify(|s| s.shop.sell(sku, quantity))
    }

    /// Replaces the shop's cost bucket (a small one forces throttling).
    fn set_shopify_bucket(&self, bucket: CostBucket) {
        self.shopify(|s| s.set_bucket(bucket));
    }

    /// How many GraphQL requests named `operation` the shop received,
    /// throttled ones included.
    fn shopify_calls(&self, operation: &str) -> usize;
}

impl ShopifySimExt for Simulator {
    fn shopify<R>(&self, f: impl FnOnce(&mut ShopifySim) -> R) -> R {
        self.with(Channel::Shopify, f)
            .expect("the simulator has a Shopify shop")
    }

    fn shopify_calls(&self, operation: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.channel == Channel::Shopify)
            .filter(|r| {
                r.request
                    .body_json()
                    .is_some_and(|b| b["operationName"] == operation)
            })
            .count()
    }
}
