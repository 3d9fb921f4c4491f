//! The stored value format and the key layouts. Every value is one format
//! version byte followed by JSON; a layout change bumps the version here and
//! teaches `decode` to read the old one, so no manual migration is needed.
//! Orders are the exception that proves the rule: version 2 puts the
//! revision in a fixed header (a writer checks it without decoding the
//! order) and leaves the raw channel payload to its own tree; version 1
//! (the payload inline) is still read, and `migrate.rs` rewrites it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StoreError, StoredOrder};

/// The version written today. Older versions, once there are any, are upgraded
/// on read in `decode`.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Separates the parts of composite keys. Ids, accounts and SKUs that contain
/// it are refused, because they would make prefix scans ambiguous.
pub(crate) const SEP: u8 = 0;

pub(crate) fn encode<T: Serialize>(
    tree: &'static str,
    key: &[u8],
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(512);
    out.push(FORMAT_VERSION);
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Encode {
        tree,
        key: display_key(tree, key),
        detail: e.to_string(),
    })?;
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
                tree,
                key: display_key(tree, key),
                detail: e.to_string(),
            })
        }
        Some((&version, _)) => Err(StoreError::Format {
            tree,
            key: display_key(tree, key),
            version,
        }),
        None => Err(StoreError::Corrupt {
            tree,
            key: display_key(tree, key),
            detail: "empty value".to_owned(),
        }),
    }
}

/// Orders: version byte, revision (u64, big-endian), JSON without `raw`.
pub(crate) const ORDER_FORMAT: u8 = 2;
const ORDER_HEADER: usize = 9;

pub(crate) fn encode_order(key: &[u8], order: &StoredOrder) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(2048);
    out.push(ORDER_FORMAT);
    out.extend_from_slice(&order.revision.to_be_bytes());
    serde_json::to_writer(&mut out, order).map_err(|e| StoreError::Encode {
        tree: super::ORDERS,
        key: display_key(super::ORDERS, key),
        detail: e.to_string(),
    })?;
    Ok(out)
}

/// An order of either version; a version 1 order still carries its raw
/// payload (which `migrate.rs` moves out).
pub(crate) fn decode_order(key: &[u8], bytes: &[u8]) -> Result<StoredOrder, StoreError> {
    match bytes.first() {
        Some(&ORDER_FORMAT) if bytes.len() > ORDER_HEADER => {
            let mut o: StoredOrder =
                serde_json::from_slice(&bytes[ORDER_HEADER..]).map_err(|e| {
                    StoreError::Corrupt {
                        tree: super::ORDERS,
                        key: display_key(super::ORDERS, key),
                        detail: e.to_string(),
                    }
                })?;
            o.revision = stored_revision(key, bytes)?;
            Ok(o)
        }
        _ => decode(super::ORDERS, key, bytes),
    }
}

/// The revision of a stored order, from the header when there is one.
pub(crate) fn stored_revision(key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
    match bytes.first() {
        Some(&ORDER_FORMAT) if bytes.len() > ORDER_HEADER => {
            let mut rev = [0u8; 8];
            rev.copy_from_slice(&bytes[1..ORDER_HEADER]);
            Ok(u64::from_be_bytes(rev))
        }
        _ => decode_order(key, bytes).map(|o| o.revision),
    }
}

/// A time as 8 bytes that sort like the time (microseconds, sign flipped).
pub(crate) fn time_key(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

/// Refuses a key part that would break the composite key layout.
pub(crate) fn check_key_part(what: &'static str, part: &str) -> Result<(), StoreError> {
    if part.is_empty() {
        return Err(StoreError::InvalidKey {
            what,
            key: part.to_owned(),
            reason: "must not be empty",
        });
    }
    if part.as_bytes().contains(&SEP) {
        return Err(StoreError::InvalidKey {
            what,
            key: part.to_owned(),
            reason: "must not contain a NUL character",
        });
    }
    Ok(())
}

/// `a` NUL `b`: used for (account, sku), (account, coalesce key).
pub(crate) fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1 + b.len());
    k.extend_from_slice(a.as_bytes());
    k.push(SEP);
    k.extend_from_slice(b.as_bytes());
    k
}

/// All history keys of one order share this prefix; the NUL keeps `a:1`
/// from matching `a:10`.
pub(crate) fn history_prefix(order_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(order_id.len() + 9);
    k.extend_from_slice(order_id.as_bytes());
    k.push(SEP);
    k
}

/// Order id, NUL, big-endian sequence: a prefix scan returns entries in order.
pub(crate) fn history_key(order_id: &str, seq: u64) -> Vec<u8> {
    let mut k = history_prefix(order_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Zero-padded so that lexical order is creation order.
pub(crate) fn outbox_id(n: u64) -> String {
    format!("{n:020}")
}

/// A key as a person would name it in an error message.
pub(crate) fn display_key(tree: &'static str, key: &[u8]) -> String {
    if tree == super::HISTORY && key.len() >= 9 && key[key.len() - 9] == SEP {
        let (id, rest) = key.split_at(key.len() - 9);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&rest[1..]);
        return format!(
            "{}#{}",
            String::from_utf8_lossy(id),
            u64::from_be_bytes(seq)
        );
    }
    String::from_utf8_lossy(key).replace('\0', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_version() {
        let v = encode("orders", b"k", &vec![1, 2]).expect("encode");
        assert_eq!(v[0], FORMAT_VERSION);
        let back: Vec<i32> = decode("orders", b"k", &v).expect("decode");
        assert_eq!(back, vec![1, 2]);
        let mut bad = v.clone();
        bad[0] = 9;
        let err = decode::<Vec<i32>>("orders", b"k", &bad).unwrap_err();
        assert!(matches!(err, StoreError::Format { version: 9, .. }));
        assert!(decode::<Vec<i32>>("orders", b"k", &[]).is_err());
    }

    #[test]
    fn history_keys_sort_and_display() {
        assert!(history_key("a:1", 2) < history_key("a:1", 10));
        assert!(!history_key("a:10", 1).starts_with(&history_prefix("a:1")));
        assert_eq!(
            display_key(super::super::HISTORY, &history_key("a:1", 7)),
            "a:1#7"
        );
        assert_eq!(
            display_key("listing_refs", &pair_key("acct", "sku")),
            "acct/sku"
        );
    }
}
