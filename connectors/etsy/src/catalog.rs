//! Which listing holds a SKU. Usually the daemon already knows: orders
//! name each transaction's `listing_id` ([`crate::normalize::sku_listings`]),
//! and the daemon hands that back as the push's `listing_ref`. For a SKU
//! that never sold here the connector reads the shop's active listings
//! (`getListingsByShop?state=active`, 100 a page, each with its `skus`) and
//! remembers the whole map for the life of the connector. The cost: one
//! call per hundred active listings, once; a SKU still unknown afterwards
//! triggers another read at most once every [`RESCAN_AFTER`], so an unlisted
//! SKU does not cost a catalog read per stock change.
//!
//! Only active listings are read: sold-out, inactive, draft and expired
//! listings are not for sale, and making them active again is the seller's
//! call on Etsy (a sold-out listing made active is renewed, for a fee).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchyard_contract::{ConnectorError, Operation};

use crate::client::{Call, EtsyClient};
use crate::config::MAX_PAGE_SIZE;
use crate::endpoints;
use crate::wire::ListingsPage;

/// A catalog read is repeated for an unknown SKU no sooner than this.
pub const RESCAN_AFTER: Duration = Duration::from_secs(3600);

/// A catalog read stops after this many pages (50,000 listings) even if
/// Etsy keeps answering full pages.
const MAX_PAGES: u32 = 500;

#[derive(Debug, Default)]
struct Known {
    /// SKU → the listings that carry it.
    listings: BTreeMap<String, Vec<u64>>,
    read_at: Option<Instant>,
}

/// The SKU → listing map, shared by the connector's pushes.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    known: Mutex<Known>,
}

/// What the catalog says about one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    One(u64),
    /// On several listings: which one to push to is the seller's call.
    Several(Vec<u64>),
    None,
}

impl Catalog {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the last read found, without reading.
    pub fn lookup(&self, sku: &str) -> Found {
        match self.known().listings.get(sku.trim()).map(Vec::as_slice) {
            None | Some([]) => Found::None,
            Some([one]) => Found::One(*one),
            Some(many) => Found::Several(many.to_vec()),
        }
    }

    /// Whether a SKU the map does not know justifies reading it again.
    pub fn stale(&self) -> bool {
        self.known()
            .read_at
            .is_none_or(|at| at.elapsed() >= RESCAN_AFTER)
    }

    /// Forgets that `sku` is on `listing` (the listing no longer has it).
    pub fn forget(&self, sku: &str, listing: u64) {
        if let Some(l) = self.known().listings.get_mut(sku.trim()) {
            l.retain(|&id| id != listing);
        }
    }

    /// Reads every active listing's SKUs and replaces the map.
    pub async fn read(&self, client: &EtsyClient, shop_id: u64) -> Result<(), ConnectorError> {
        let mut listings: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut offset = 0u32;
        for _ in 0..MAX_PAGES {
            let call = Call::get(
                endpoints::GET_LISTINGS_BY_SHOP,
                Operation::Lookup,
                endpoints::shop_listings(shop_id),
            )
            .query("state", "active")
            .query("limit", MAX_PAGE_SIZE)
            .query("offset", offset);
            let page: ListingsPage = client.json(call).await?;
            let count = u32::try_from(page.results.len()).unwrap_or(u32::MAX);
            for listing in &page.results {
                let Some(id) = listing.listing_id.as_ref().and_then(|n| n.as_u64()) else {
                    continue;
                };
                for sku in &listing.skus {
                    let sku = sku.trim();
                    if sku.is_empty() {
                        continue;
                    }
                    let on = listings.entry(sku.to_owned()).or_default();
                    if !on.contains(&id) {
                        on.push(id);
                    }
                }
            }
            offset = offset.saturating_add(count);
            let total = page.count.unwrap_or(u64::MAX);
            if count < MAX_PAGE_SIZE || u64::from(offset) >= total {
                break;
            }
        }
        let mut known = self.known();
        known.listings = listings;
        known.read_at = Some(Instant::now());
        Ok(())
    }

    /// Remembers `sku` on `listing` (learned from a push that found it there).
    pub fn learn(&self, sku: &str, listing: u64) {
        let mut known = self.known();
        let on = known.listings.entry(sku.trim().to_owned()).or_default();
        if !on.contains(&listing) {
            on.push(listing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_learn_and_forget() {
        let c = Catalog::default();
        assert!(c.stale());
        assert_eq!(c.lookup("MUG"), Found::None);
        c.learn("MUG", 1);
        c.learn(" MUG ", 1);
        assert_eq!(c.lookup("MUG"), Found::One(1));
        c.learn("MUG", 2);
        assert_eq!(c.lookup("MUG"), Found::Several(vec![1, 2]));
        c.forget("MUG", 1);
        assert_eq!(c.lookup("MUG"), Found::One(2));
    }
}
