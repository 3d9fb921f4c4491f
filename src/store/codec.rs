//! The stored value format and the key layouts. Every value is one format
//! version byte followed by JSON; a layout change bumps the version here and
//! teaches `decode` to read the old one, so no manual migration is needed.
//! Orders and raw payloads, the bulk of a store, are the exception: an
//! order (version 3) is a fixed header with its revision (a writer checks it
//! without decoding the order) and zstd-compressed JSON without the raw
//! payload, which is compressed on its own in its own tree (version 2).
//! Earlier versions are still read: orders of version 1 (the payload
//! inline, rewritten by `migrate.rs`) and 2 (uncompressed), payloads of
//! version 1 (uncompressed).

use std::cell::RefCell;

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
        key: display_key(key),
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
                key: display_key(key),
                detail: e.to_string(),
            })
        }
        Some((&version, _)) => Err(StoreError::Format {
            tree,
            key: display_key(key),
            version,
        }),
        None => Err(StoreError::Corrupt {
            tree,
            key: display_key(key),
            detail: "empty value".to_owned(),
        }),
    }
}

/// Orders: version byte, revision (u64, big-endian), then JSON without
/// `raw`: compressed (3) or plain (2, read only).
pub(crate) const ORDER_FORMAT: u8 = 3;
const ORDER_PLAIN: u8 = 2;
const ORDER_HEADER: usize = 9;
/// Raw payloads: compressed JSON (2), or plain JSON (1, read only).
const RAW_FORMAT: u8 = 2;

/// zstd level: JSON orders shrink about fourfold; higher levels cost more
/// time per write for a few percent.
const LEVEL: i32 = 3;

thread_local! {
    // A compression context is costly to set up (hundreds of KB zeroed):
    // one per thread, reused for every value.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    // The JSON of the value being compressed, reused: grown from nothing
    // for every order, it cost a dozen reallocations of kilobytes each.
    static JSON: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The JSON scratch buffer kept between values; one bigger than this (an
/// unusually large payload) is let go rather than held by the thread.
const JSON_KEPT: usize = 256 * 1024;

/// Appends to `out` the JSON of `value`, compressed: its length (u32,
/// big-endian) then a zstd frame. `out` grows once, to its final size.
fn compress_json<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    JSON.with(|json| {
        let mut json = json.borrow_mut();
        json.clear();
        serde_json::to_writer(&mut *json, value)?;
        let compressed = compress_into(out, &json);
        if json.capacity() > JSON_KEPT {
            *json = Vec::new();
        }
        Ok(compressed?)
    })
}

/// Appends `len` (u32, big-endian) then a zstd frame of `bytes` to `out`.
fn compress_into(out: &mut Vec<u8>, bytes: &[u8]) -> std::io::Result<()> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(LEVEL)?);
        }
        let Some(c) = c.as_mut() else {
            return Err(std::io::Error::other("no compressor"));
        };
        let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.reserve(zstd::zstd_safe::compress_bound(bytes.len()));
        // The frame goes after what `out` holds already.
        let at = out.len();
        let mut frame = std::io::Cursor::new(std::mem::take(out));
        frame.set_position(at as u64);
        let written = c.compress_to_buffer(bytes, &mut frame);
        *out = frame.into_inner();
        written.map(drop)
    })
}

fn decompress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let (len, frame) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| std::io::Error::other("shorter than its length"))?;
    let len = u32::from_be_bytes(*len) as usize;
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        let Some(d) = d.as_mut() else {
            return Err(std::io::Error::other("no decompressor"));
        };
        d.decompress(frame, len)
    })
}

fn corrupt(tree: &'static str, key: &[u8], detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: display_key(key),
        detail: detail.to_string(),
    }
}

fn encode_err(tree: &'static str, key: &[u8], detail: impl std::fmt::Display) -> StoreError {
    StoreError::Encode {
        tree,
        key: display_key(key),
        detail: detail.to_string(),
    }
}

pub(crate) fn encode_order(key: &[u8], order: &StoredOrder) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    out.push(ORDER_FORMAT);
    out.extend_from_slice(&order.revision.to_be_bytes());
    compress_json(&mut out, order).map_err(|e| encode_err(super::ORDERS, key, e))?;
    Ok(out)
}

/// An order of any version; one of version 1 still carries its raw
/// payload (which `migrate.rs` moves out).
pub(crate) fn decode_order(key: &[u8], bytes: &[u8]) -> Result<StoredOrder, StoreError> {
    let tree = super::ORDERS;
    let json = match bytes.first() {
        Some(&ORDER_FORMAT) if bytes.len() > ORDER_HEADER => {
            decompress(&bytes[ORDER_HEADER..]).map_err(|e| corrupt(tree, key, e))?
        }
        Some(&ORDER_PLAIN) if bytes.len() > ORDER_HEADER => bytes[ORDER_HEADER..].to_vec(),
        _ => return decode(tree, key, bytes),
    };
    let mut o: StoredOrder = serde_json::from_slice(&json).map_err(|e| corrupt(tree, key, e))?;
    o.revision = stored_revision(key, bytes)?;
    Ok(o)
}

/// The revision of a stored order, from the header when there is one.
pub(crate) fn stored_revision(key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
    match bytes.first() {
        Some(&(ORDER_FORMAT | ORDER_PLAIN)) if bytes.len() > ORDER_HEADER => {
            let mut rev = [0u8; 8];
            rev.copy_from_slice(&bytes[1..ORDER_HEADER]);
            Ok(u64::from_be_bytes(rev))
        }
        _ => decode_order(key, bytes).map(|o| o.revision),
    }
}

pub(crate) fn encode_raw(key: &[u8], raw: &serde_json::Value) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![RAW_FORMAT];
    compress_json(&mut out, raw).map_err(|e| encode_err(super::RAW, key, e))?;
    Ok(out)
}

/// `encode_raw` of a payload kept as the JSON text the channel sent: the
/// same stored form, without a parse and a write of the text.
pub(crate) fn encode_raw_text(key: &[u8], text: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![RAW_FORMAT];
    compress_into(&mut out, text).map_err(|e| encode_err(super::RAW, key, e))?;
    Ok(out)
}

pub(crate) fn decode_raw(key: &[u8], bytes: &[u8]) -> Result<serde_json::Value, StoreError> {
    let json = decode_raw_text(key, bytes)?;
    serde_json::from_slice(&json).map_err(|e| corrupt(super::RAW, key, e))
}

/// A stored payload's JSON text as it was written, not parsed: a payload
/// kept as the text the channel sent may hold what `serde_json::Value`
/// cannot (a number past f64's range, a lone surrogate escape) in a field
/// no order reads, and is still shown as it came.
pub(crate) fn decode_raw_text(key: &[u8], bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    match bytes.split_first() {
        Some((&RAW_FORMAT, rest)) => decompress(rest).map_err(|e| corrupt(super::RAW, key, e)),
        Some((&FORMAT_VERSION, json)) => Ok(json.to_vec()),
        Some((&version, _)) => Err(StoreError::Format {
            tree: super::RAW,
            key: display_key(key),
            version,
        }),
        None => Err(corrupt(super::RAW, key, "empty value")),
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

/// Appends an encoded history entry to an order's history value: each entry
/// is its length (u32) and its bytes, oldest first.
pub(crate) fn append_history(all: &mut Vec<u8>, entry: &[u8]) {
    let len = u32::try_from(entry.len()).unwrap_or(u32::MAX);
    all.extend_from_slice(&len.to_be_bytes());
    all.extend_from_slice(&entry[..len as usize]);
}

/// The encoded entries of an order's history value, oldest first.
pub(crate) fn split_history<'a>(key: &[u8], all: &'a [u8]) -> Result<Vec<&'a [u8]>, StoreError> {
    let mut out = Vec::new();
    let mut rest = all;
    while !rest.is_empty() {
        let cut = || corrupt(super::HISTORY, key, "a history entry is cut short");
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(cut)?;
        let (e, tail) = tail
            .split_at_checked(u32::from_be_bytes(*len) as usize)
            .ok_or_else(cut)?;
        out.push(e);
        rest = tail;
    }
    Ok(out)
}

/// Zero-padded so that lexical order is creation order.
pub(crate) fn outbox_id(n: u64) -> String {
    format!("{n:020}")
}

/// A key as a person would name it in an error message.
pub(crate) fn display_key(key: &[u8]) -> String {
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
    fn orders_and_payloads_round_trip_compressed_and_plain_ones_still_read() {
        let order: StoredOrder = serde_json::from_value(serde_json::json!({
            "order": {
                "id": "a:1", "account": "a", "channel": "shopify", "channel_order_id": "1",
                "number": null, "status": "ready", "payment": "paid",
                "placed_at": "2026-11-27T05:01:02Z", "updated_at": "2026-11-27T05:01:02Z",
                "currency": "USD",
                "totals": { "subtotal": "1.00", "shipping": "0", "tax": "0", "discount": "0", "total": "1.00", "refunded": "0" },
                "presentment": null, "customer": null, "shipping_address": null, "shipping_method": null,
                "lines": [], "shipments": [], "tags": ["vip"], "route": null, "hold": null, "priority": "normal"
            },
            "channel_tags": [], "rule_tags": [], "manual_tags": [], "manual_hold": null,
            "notes": [], "revision": 7
        }))
        .expect("an order");
        let enc = encode_order(b"a:1", &order).expect("encode");
        assert_eq!(enc[0], ORDER_FORMAT);
        assert_eq!(stored_revision(b"a:1", &enc).expect("revision"), 7);
        assert_eq!(decode_order(b"a:1", &enc).expect("decode"), order);
        // Version 2: the same header, the JSON as it is.
        let mut plain = vec![ORDER_PLAIN];
        plain.extend_from_slice(&7u64.to_be_bytes());
        plain.extend(serde_json::to_vec(&order).expect("json"));
        assert_eq!(decode_order(b"a:1", &plain).expect("decode v2"), order);
        let mut cut = enc.clone();
        cut.truncate(enc.len() - 3);
        assert!(matches!(
            decode_order(b"a:1", &cut),
            Err(StoreError::Corrupt { .. })
        ));

        let raw = serde_json::json!({ "id": 1, "line_items": vec!["x"; 200] });
        let enc = encode_raw(b"a:1", &raw).expect("encode raw");
        assert!(enc.len() < 200, "compressed: {} bytes", enc.len());
        assert_eq!(decode_raw(b"a:1", &enc).expect("decode raw"), raw);
        let plain = encode("raw", b"a:1", &raw).expect("plain");
        assert_eq!(decode_raw(b"a:1", &plain).expect("decode plain raw"), raw);
    }

    #[test]
    fn history_entries_read_back_in_order_and_a_cut_one_is_refused() {
        let mut all = Vec::new();
        for e in [&b"first"[..], b"", b"third"] {
            append_history(&mut all, e);
        }
        let entries = split_history(b"a:1", &all).expect("split");
        assert_eq!(entries, [&b"first"[..], b"", b"third"]);
        let err = split_history(b"a:1", &all[..all.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("a:1"), "{err}");
        assert_eq!(display_key(&pair_key("acct", "sku")), "acct/sku");
    }
}
