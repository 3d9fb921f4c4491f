//! What the daemon knows about an account listing a SKU, one value per
//! (account, SKU). Stored as a string (format version 1, as before this
//! type existed): the channel's reference, or one of two markers that no
//! reference is written as. What a channel answers is written on its own;
//! what an order shows (`StockChange::Listed`), with that order.

use chrono::{DateTime, SecondsFormat, Utc};

use super::codec::{check_key_part, decode, encode, pair_key};
use super::tx::{Tx, TxResult, abort};
use super::{LISTING_REFS, Store, StoreError, engine_err};

/// One account's listing of one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingState {
    /// The channel's own reference for the SKU (Shopify: the inventory item).
    Ref(String),
    /// Listed (an order of the account showed the SKU); reference not learned.
    Listed,
    /// The channel said it does not list the SKU, at `since`.
    NotListed { since: DateTime<Utc> },
}

/// Stored markers start with this; a reference that does too is stored
/// behind [`ESCAPED`], so it is never read as a marker.
const MARK: char = '!';
const LISTED: &str = "!listed";
const NOT_LISTED: &str = "!not-listed ";
const ESCAPED: &str = "!ref ";

impl ListingState {
    fn to_stored(&self) -> String {
        match self {
            ListingState::Ref(r) if r.starts_with(MARK) => format!("{ESCAPED}{r}"),
            ListingState::Ref(r) => r.clone(),
            ListingState::Listed => LISTED.to_owned(),
            ListingState::NotListed { since } => {
                format!(
                    "{NOT_LISTED}{}",
                    since.to_rfc3339_opts(SecondsFormat::Secs, true)
                )
            }
        }
    }

    /// None for a marker this build does not know (or a broken time): the
    /// state is unknown, which only costs a look-up.
    fn from_stored(v: String) -> Option<ListingState> {
        if !v.starts_with(MARK) {
            return Some(ListingState::Ref(v));
        }
        if v == LISTED {
            return Some(ListingState::Listed);
        }
        if let Some(r) = v.strip_prefix(ESCAPED) {
            return Some(ListingState::Ref(r.to_owned()));
        }
        let at = v.strip_prefix(NOT_LISTED)?;
        let since = DateTime::parse_from_rfc3339(at).ok()?;
        Some(ListingState::NotListed {
            since: since.with_timezone(&Utc),
        })
    }
}

impl Store {
    /// What is known about `account` listing `sku`; None: nothing.
    pub fn listing(&self, account: &str, sku: &str) -> Result<Option<ListingState>, StoreError> {
        check_key_part("account", account)?;
        let key = pair_key(account, sku);
        let value = self
            .trees()
            .listing_refs
            .get(&key)
            .map_err(|e| engine_err(format!("read of listing ref {account}/{sku}"), e))?;
        match value {
            Some(v) => Ok(ListingState::from_stored(decode(LISTING_REFS, &key, &v)?)),
            None => Ok(None),
        }
    }

    /// Remembers a listing state. Not flushed: losing it only costs a look-up.
    pub fn set_listing(
        &self,
        account: &str,
        sku: &str,
        state: &ListingState,
    ) -> Result<(), StoreError> {
        check_key_part("account", account)?;
        let key = pair_key(account, sku);
        let enc = encode(LISTING_REFS, &key, &state.to_stored())?;
        self.trees()
            .listing_refs
            .insert(key, enc)
            .map_err(|e| engine_err(format!("write of listing ref {account}/{sku}"), e))?;
        self.next_seq();
        Ok(())
    }
}

/// Stages `ListingState::Listed` for `account` and `sku` in an order's
/// transaction (the order showed the account selling it), unless the
/// channel's reference is known by then: it says the same, and learning it
/// again costs a look-up. A value this build cannot read is replaced.
pub(crate) fn stage_listed(tx: &Tx<'_>, account: &str, sku: &str) -> TxResult<()> {
    let key = pair_key(account, sku);
    let stored = tx.listing_refs().get(&key)?;
    let known = stored
        .and_then(|v| decode::<String>(LISTING_REFS, &key, &v).ok())
        .and_then(ListingState::from_stored);
    if matches!(known, Some(ListingState::Ref(_))) {
        return Ok(());
    }
    let enc = encode(LISTING_REFS, &key, &ListingState::Listed.to_stored()).map_err(abort)?;
    tx.listing_refs().insert(key, enc)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[test]
    fn states_read_back_and_markers_written_before_the_type_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let since: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        for state in [
            ListingState::Ref("gid://shopify/InventoryItem/1".into()),
            ListingState::Ref("!a reference that looks like a marker".into()),
            ListingState::Listed,
            ListingState::NotListed { since },
        ] {
            store.set_listing("shop-us", "MUG", &state).unwrap();
            assert_eq!(store.listing("shop-us", "MUG").unwrap(), Some(state));
        }
        assert_eq!(store.listing("etsy-1", "MUG").unwrap(), None);
        // The strings earlier builds wrote.
        for (stored, state) in [
            ("!listed", Some(ListingState::Listed)),
            (
                "!not-listed 2026-11-20T10:00:00Z",
                Some(ListingState::NotListed { since }),
            ),
            ("!not-listed yesterday", None),
            ("!a-marker-of-a-later-build", None),
            ("12345", Some(ListingState::Ref("12345".into()))),
        ] {
            let key = pair_key("shop-us", "TEE");
            let enc = encode(LISTING_REFS, &key, &stored).unwrap();
            store.trees().listing_refs.insert(key, enc).unwrap();
            assert_eq!(store.listing("shop-us", "TEE").unwrap(), state, "{stored}");
        }
    }
}
