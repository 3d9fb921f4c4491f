//! The order indexes and the paged walk over them. Every filter of `orders
//! list` has an index (placed time, status, account, channel, route,
//! unrouted, held, tag), plus one of orders a destination may have work for
//! (routed, not held, ready or partially shipped). Index entries are written
//! in the same transaction as the order (`apply.rs`), so an index never
//! disagrees with the orders.
//!
//! An entry's key is `kind, value length (u16), value, placed time (8 bytes,
//! sortable), order id`; its value is empty. Within one (kind, value) the
//! entries sort by (placed time, id), which is the listing order, so a page
//! is a range read and a cursor is a position: `(placed time, id)` of the
//! last order shown. A filter walks the intersection of its indexes by
//! leapfrogging (each index jumps to the others' position), so it costs
//! about what the smallest of them holds near the answer, not what the store
//! holds.

use std::collections::BTreeSet;
use std::ops::Bound;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use switchyard_contract::{Order, OrderStatus};

use super::codec::time_key;
use super::{OrderFilter, RouteFilter, StoreError, engine_err};

/// Index kinds (the first byte of a key).
pub(crate) const PLACED: u8 = b'p';
const STATUS: u8 = b's';
const ACCOUNT: u8 = b'a';
const CHANNEL: u8 = b'c';
const ROUTE: u8 = b'r';
const UNROUTED: u8 = b'u';
const HELD: u8 = b'h';
const TAG: u8 = b'g';
/// Routed, not held, ready or partially shipped: what the start-up catch-up
/// of deliveries reads.
pub(crate) const ROUTED_OPEN: u8 = b'd';

/// Length of the position suffix's fixed part (the placed time).
const TIME_LEN: usize = 8;

/// `kind, len, value`: every entry of one index value starts with it.
pub(crate) fn prefix(kind: u8, value: &str) -> Vec<u8> {
    let v = value.as_bytes();
    // Longer values are cut: they still sort and match consistently, since
    // the same cut is applied when writing and when reading.
    let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
    let v = &v[..usize::from(len)];
    let mut k = Vec::with_capacity(3 + v.len() + TIME_LEN + 24);
    k.push(kind);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(v);
    k
}

/// `(placed time, id)`: where an order sits in every index.
pub(crate) fn position(placed_at: DateTime<Utc>, id: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(TIME_LEN + id.len());
    p.extend_from_slice(&time_key(placed_at));
    p.extend_from_slice(id.as_bytes());
    p
}

/// Every index key of an order, sorted.
pub(crate) fn index_keys(o: &Order) -> BTreeSet<Vec<u8>> {
    let pos = position(o.placed_at, &o.id);
    let mut prefixes = vec![
        prefix(PLACED, ""),
        prefix(STATUS, o.status.as_str()),
        prefix(ACCOUNT, &o.account),
        prefix(CHANNEL, o.channel.as_str()),
    ];
    match &o.route {
        Some(r) => prefixes.push(prefix(ROUTE, r)),
        None => prefixes.push(prefix(UNROUTED, "")),
    }
    if o.hold.is_some() {
        prefixes.push(prefix(HELD, ""));
    }
    // Tags match ignoring case (as the rules compare them): indexed folded.
    for t in &o.tags {
        prefixes.push(prefix(TAG, &t.to_lowercase()));
    }
    if o.route.is_some()
        && o.hold.is_none()
        && matches!(o.status, OrderStatus::Ready | OrderStatus::PartiallyShipped)
    {
        prefixes.push(prefix(ROUTED_OPEN, ""));
    }
    prefixes
        .into_iter()
        .map(|mut p| {
            p.extend_from_slice(&pos);
            p
        })
        .collect()
}

/// A page cursor as handed out: base64url of the position.
pub(crate) fn encode_cursor(pos: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pos)
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<Vec<u8>, StoreError> {
    let bad = || StoreError::InvalidCursor {
        cursor: cursor.chars().take(80).collect(),
    };
    let pos = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| bad())?;
    if pos.len() <= TIME_LEN {
        return Err(bad());
    }
    Ok(pos)
}

/// The id at the end of an index key whose prefix is `prefix_len` long.
pub(crate) fn key_id(key: &[u8], prefix_len: usize) -> Option<&str> {
    key.get(prefix_len + TIME_LEN..)
        .and_then(|b| std::str::from_utf8(b).ok())
}

/// How a filter reads the indexes: the ones every match is in, and the one
/// no match may be in.
pub(crate) struct Plan {
    pub(crate) all_of: Vec<Vec<u8>>,
    pub(crate) none_of: Option<Vec<u8>>,
}

impl Plan {
    pub(crate) fn of(f: &OrderFilter) -> Plan {
        let mut all_of = Vec::new();
        if let Some(s) = f.status {
            all_of.push(prefix(STATUS, s.as_str()));
        }
        if let Some(a) = &f.account {
            all_of.push(prefix(ACCOUNT, a));
        }
        if let Some(c) = f.channel {
            all_of.push(prefix(CHANNEL, c.as_str()));
        }
        match &f.route {
            Some(RouteFilter::Is(r)) => all_of.push(prefix(ROUTE, r)),
            Some(RouteFilter::None) => all_of.push(prefix(UNROUTED, "")),
            None => {}
        }
        if let Some(t) = &f.tag {
            all_of.push(prefix(TAG, &t.to_lowercase()));
        }
        let mut none_of = None;
        match f.held {
            Some(true) => all_of.push(prefix(HELD, "")),
            Some(false) => none_of = Some(prefix(HELD, "")),
            None => {}
        }
        if all_of.is_empty() {
            all_of.push(prefix(PLACED, ""));
        }
        Plan { all_of, none_of }
    }

    pub(crate) fn only(kind: u8) -> Plan {
        Plan {
            all_of: vec![prefix(kind, "")],
            none_of: None,
        }
    }
}

/// What one walk found: matching positions in walk order, and where a
/// further walk would go on (None: nothing further matches).
pub(crate) struct Walk {
    pub(crate) positions: Vec<Vec<u8>>,
    pub(crate) resume: Option<Vec<u8>>,
}

/// Walks the intersection of `plan` from just after `from` (exclusive;
/// None: from the start), newest first unless `oldest`, until `want`
/// matches are found or `budget` index entries were looked at. Stopping on
/// the budget sets `resume` to the last position looked at, so a page over
/// filters that are each common but rarely together stays bounded.
pub(crate) fn walk(
    index: &sled::Tree,
    plan: &Plan,
    from: Option<&[u8]>,
    oldest: bool,
    want: usize,
    budget: usize,
) -> Result<Walk, StoreError> {
    let mut out = Walk {
        positions: Vec::new(),
        resume: None,
    };
    if want == 0 {
        out.resume = from.map(<[u8]>::to_vec);
        return Ok(out);
    }
    let mut steps = 0usize;
    // The position every index must reach; `inclusive` when it is a
    // candidate still to be checked, exclusive when it was dealt with.
    let mut at: Option<Vec<u8>> = from.map(<[u8]>::to_vec);
    let mut inclusive = false;
    let mut last_seen: Option<Vec<u8>>;
    let Some((first, rest)) = plan.all_of.split_first() else {
        return Ok(out);
    };
    if rest.is_empty() {
        // One index: a straight range read.
        let iter = range(index, first, at.as_deref(), false, oldest);
        for kv in iter {
            let (k, _) = kv.map_err(|e| engine_err("read of order index", e))?;
            let pos = k[first.len()..].to_vec();
            steps += 1;
            if passes(index, plan, &pos)? {
                out.positions.push(pos.clone());
                if out.positions.len() > want {
                    break;
                }
            }
            last_seen = Some(pos);
            if steps >= budget && out.positions.len() <= want {
                out.resume = last_seen;
                return Ok(out);
            }
        }
        return Ok(finish(out, want));
    }
    // The next candidate of the first index, then every other index jumps
    // to it; whoever lands further on makes the new candidate.
    while let Some(mut cand) = seek(index, first, at.as_deref(), inclusive, oldest)? {
        steps += 1;
        let mut agreed = true;
        for p in rest {
            steps += 1;
            match seek(index, p, Some(&cand), true, oldest)? {
                None => return Ok(finish(out, want)),
                Some(pos) if pos == cand => {}
                Some(pos) => {
                    cand = pos;
                    agreed = false;
                    break;
                }
            }
        }
        if agreed {
            if passes(index, plan, &cand)? {
                out.positions.push(cand.clone());
                if out.positions.len() > want {
                    break;
                }
            }
            at = Some(cand.clone());
            inclusive = false;
        } else {
            at = Some(cand.clone());
            inclusive = true;
        }
        last_seen = Some(cand);
        if steps >= budget && out.positions.len() <= want {
            out.resume = if inclusive {
                // Not yet checked: resume just before it.
                before(last_seen, oldest)
            } else {
                last_seen
            };
            return Ok(out);
        }
    }
    Ok(finish(out, want))
}

/// Drops the extra match (found only to learn that more exist) and sets
/// `resume` to the last position shown.
fn finish(mut out: Walk, want: usize) -> Walk {
    if out.positions.len() > want {
        out.positions.truncate(want);
        out.resume = out.positions.last().cloned();
    }
    out
}

/// The position to resume from so that the next walk starts at `pos`
/// itself: its immediate predecessor in walk order. Newest-first walks go
/// on below the resume point, and `pos` followed by a NUL is the smallest
/// key above `pos`. Oldest-first walks go on above it; ids are UTF-8, which
/// never holds the byte 0xFF, so lowering the last byte and appending 0xFF
/// gives a key that no position lies between it and `pos`.
fn before(pos: Option<Vec<u8>>, oldest: bool) -> Option<Vec<u8>> {
    pos.map(|mut p| {
        if !oldest {
            p.push(0);
        } else if let Some(last) = p.pop()
            && last > 0
        {
            p.push(last - 1);
            p.push(0xFF);
        }
        p
    })
}

fn passes(index: &sled::Tree, plan: &Plan, pos: &[u8]) -> Result<bool, StoreError> {
    match &plan.none_of {
        None => Ok(true),
        Some(p) => {
            let mut k = p.clone();
            k.extend_from_slice(pos);
            let found = index
                .contains_key(k)
                .map_err(|e| engine_err("read of order index", e))?;
            Ok(!found)
        }
    }
}

fn range(
    index: &sled::Tree,
    prefix: &[u8],
    at: Option<&[u8]>,
    inclusive: bool,
    oldest: bool,
) -> Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> {
    let with = |pos: &[u8]| {
        let mut k = prefix.to_vec();
        k.extend_from_slice(pos);
        k
    };
    let start = Bound::Included(prefix.to_vec());
    let end = match prefix_end(prefix) {
        Some(e) => Bound::Excluded(e),
        None => Bound::Unbounded,
    };
    let (lo, hi) = match (at, oldest) {
        (None, _) => (start, end),
        (Some(p), true) if inclusive => (Bound::Included(with(p)), end),
        (Some(p), true) => (Bound::Excluded(with(p)), end),
        (Some(p), false) if inclusive => (start, Bound::Included(with(p))),
        (Some(p), false) => (start, Bound::Excluded(with(p))),
    };
    let r = index.range::<Vec<u8>, _>((lo, hi));
    if oldest {
        Box::new(r)
    } else {
        Box::new(r.rev())
    }
}

/// The first entry of `prefix` at or past `at` in walk order.
fn seek(
    index: &sled::Tree,
    prefix: &[u8],
    at: Option<&[u8]>,
    inclusive: bool,
    oldest: bool,
) -> Result<Option<Vec<u8>>, StoreError> {
    match range(index, prefix, at, inclusive, oldest).next() {
        None => Ok(None),
        Some(kv) => {
            let (k, _) = kv.map_err(|e| engine_err("read of order index", e))?;
            Ok(Some(k[prefix.len()..].to_vec()))
        }
    }
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_never_run_into_each_other() {
        // A value that is a prefix of another value has another length byte.
        let a = prefix(TAG, "vip");
        let b = prefix(TAG, "vip-gold");
        assert!(!b.starts_with(&a));
        assert_eq!(prefix_end(&[1, 2, 255]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[255, 255]), None);
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let pos = position(Utc::now(), "shop-us:1001");
        let c = encode_cursor(&pos);
        assert_eq!(decode_cursor(&c).unwrap(), pos);
        assert!(decode_cursor("not a cursor!").is_err());
        assert!(decode_cursor(&encode_cursor(&[1, 2, 3])).is_err());
    }

    #[test]
    fn resuming_before_a_position_skips_nothing_and_repeats_nothing() {
        let t = Utc::now();
        let p = position(t, "a:b");
        let up = before(Some(p.clone()), true).unwrap();
        assert!(up < p);
        for lower in ["a:a", "a:a\u{10FFFF}\u{10FFFF}", "a:"] {
            assert!(position(t, lower) < up, "{lower}");
        }
        let down = before(Some(p.clone()), false).unwrap();
        assert!(down > p && position(t, "a:b\u{1}") > down);
    }

    #[test]
    fn positions_sort_by_time_then_id() {
        let t = Utc::now();
        let early = t - chrono::Duration::days(400);
        assert!(position(early, "z") < position(t, "a"));
        assert!(position(t, "a:1") < position(t, "a:2"));
        let before_epoch = DateTime::<Utc>::from_timestamp(-5, 0).unwrap();
        assert!(position(before_epoch, "a") < position(early, "a"));
    }
}
