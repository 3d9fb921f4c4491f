//! The order indexes and the paged walk over them. Every filter of `orders
//! list` has an index (placed time, status, account, channel, route,
//! unrouted, held, tag). Index entries are written in the same transaction
//! as the order (`apply.rs`), so an index never disagrees with the orders.
//! Each entry of a new order rewrites a bucket (below), so an index earns
//! its place by a filter: the start-up catch-up of deliveries reads the
//! status index (ready, then partially shipped) rather than one of its own.
//!
//! An entry is a position, `(placed time (8 bytes, sortable), order id)`,
//! under a prefix `kind, value length (u16), value`; within one prefix the
//! entries sort by position, which is the listing order, so a page is a
//! range read and a cursor is a position. Entries are packed into buckets
//! of up to [`BUCKET_MAX`]: a bucket's key is the prefix and its fence (a
//! position no greater than any of its entries, and below every entry of
//! the next bucket), its value the sorted entries. The engine keeps an
//! in-memory record for every page of every tree and a leaf page holds a
//! handful of keys whatever their size, so an entry per key cost about a
//! page for every nine entries; packed, the indexes of a million orders fit
//! in a few thousand pages.
//!
//! The same tree keeps the dedupe keys kept for good, under a prefix of
//! their own ([`kept_entry`]). Those are mostly an order's markers
//! (`outbound/KIND/ORDER ID`, a delivery's and a reservation's), placed by
//! order id first and kind second, so that the markers a new order writes
//! sit side by side and rewrite one bucket, not one per kind.
//!
//! A filter walks the intersection of its indexes by leapfrogging (each
//! index jumps to the others' position), so it costs about what the
//! smallest of them holds near the answer, not what the store holds.

use std::collections::BTreeSet;
use std::ops::Bound;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use switchyard_contract::Order;

use super::codec::{SEP, time_key};
use super::tx::{Tx, TxResult, abort};
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
/// Not an order index: the dedupe keys kept for good (delivery and
/// reservation markers, one or two per order), packed the same way, at the
/// positions [`kept_entry`] gives them. The store looks them up by key only.
const KEPT: u8 = b'k';
/// Dedupe keys of this form, `outbound/KIND/ORDER ID`, are an order's
/// markers.
const MARKER: &[u8] = b"outbound/";

/// Where a dedupe key kept for good is packed: an order's marker
/// (`outbound/KIND/ORDER ID`) at `ORDER ID, NUL, KIND`, so the markers of
/// one order are neighbours; any other key at its own bytes. A dedupe key
/// holds no NUL (`check_key_part`), so no two keys share a position.
pub(crate) fn kept_entry(key: &[u8]) -> Entry {
    let pos = match marker_parts(key) {
        Some((kind, id)) => [id, &[SEP], kind].concat(),
        None => key.to_vec(),
    };
    (prefix(KEPT, ""), pos)
}

/// A marker's kind and order id (None: not a marker).
fn marker_parts(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = key.strip_prefix(MARKER)?;
    let slash = rest.iter().position(|b| *b == b'/')?;
    let (kind, id) = (&rest[..slash], &rest[slash + 1..]);
    (!kind.is_empty() && !id.is_empty()).then_some((kind, id))
}

/// Whether the dedupe key `key` is kept for good.
pub(crate) fn is_kept(index: &sled::Tree, key: &[u8]) -> Result<bool, StoreError> {
    let (prefix, pos) = kept_entry(key);
    contains(index, &prefix, &pos)
}

/// Layout 7 packed every key kept for good at its own bytes: its markers
/// of one kind after another, so a new order's two markers were two
/// buckets apart. The prefix, and where layout 7 put a key.
pub(crate) fn layout_7_kept(key: &[u8]) -> Entry {
    (prefix(KEPT, ""), key.to_vec())
}

/// A marker's position in layout 7 and in this one.
pub(crate) type Move = (Vec<u8>, Vec<u8>);

/// The markers of layout 7 still to be moved (`migrate.rs`): at most
/// `want` of them, each kind's from its start, merged by order id so
/// that the moved ones arrive at their new positions in order.
pub(crate) fn layout_7_markers(index: &sled::Tree, want: usize) -> Result<Vec<Move>, StoreError> {
    let kept = prefix(KEPT, "");
    // The kinds present: each occupies one run of old positions, which
    // start with `outbound/KIND/`; the next kind's run starts past it.
    let mut runs: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut at = MARKER.to_vec();
    while let Some(first) = seek(index, &kept, Some(&at), true, true)? {
        if !first.starts_with(MARKER) {
            break;
        }
        let Some((kind, _)) = marker_parts(&first) else {
            // Not a marker (no kind or no id): stays where it is.
            at = first;
            at.push(0);
            continue;
        };
        let mut run_prefix = MARKER.to_vec();
        run_prefix.extend_from_slice(kind);
        run_prefix.push(b'/');
        let mut run = Vec::new();
        for pos in range(index, &kept, Some(&first), true, true) {
            let pos = pos?;
            if run.len() >= want || !pos.starts_with(&run_prefix) {
                break;
            }
            // Moved already (an order id that starts so): a NUL.
            if !pos.contains(&SEP) {
                run.push(pos);
            }
        }
        runs.push(run);
        // Past every key of this kind: `/` + 1 is `0`.
        at = MARKER.to_vec();
        at.extend_from_slice(kind);
        at.push(b'0');
    }
    let mut all: Vec<Move> = runs
        .into_iter()
        .flatten()
        .map(|old| {
            let new = kept_entry(&old).1;
            (old, new)
        })
        .collect();
    all.sort_by(|a, b| a.1.cmp(&b.1));
    all.truncate(want);
    Ok(all)
}

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

/// An index entry: (prefix, position).
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// Every index entry of an order.
pub(crate) fn index_entries(o: &Order) -> BTreeSet<Entry> {
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
    prefixes.into_iter().map(|p| (p, pos.clone())).collect()
}

/// A page cursor as handed out: base64url of the position.
pub(crate) fn encode_cursor(pos: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pos)
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<Vec<u8>, StoreError> {
    cursor_bytes(cursor, |n| n > TIME_LEN)
}

/// A cursor of a walk in stages (one index after another): the stage,
/// then the position within it (None: its start).
pub(crate) fn stage_cursor(stage: usize, pos: Option<&[u8]>) -> String {
    let mut b = vec![u8::try_from(stage).unwrap_or(u8::MAX)];
    b.extend_from_slice(pos.unwrap_or_default());
    encode_cursor(&b)
}

/// The bytes of a [`stage_cursor`]: the stage, then a position or nothing.
pub(crate) fn decode_stage_cursor(cursor: &str) -> Result<Vec<u8>, StoreError> {
    cursor_bytes(cursor, |n| n == 1 || n > 1 + TIME_LEN)
}

/// A cursor's bytes, if their length is one it can have.
fn cursor_bytes(cursor: &str, fits: impl Fn(usize) -> bool) -> Result<Vec<u8>, StoreError> {
    let bad = || StoreError::InvalidCursor {
        cursor: cursor.chars().take(80).collect(),
    };
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| bad())?;
    if !fits(b.len()) {
        return Err(bad());
    }
    Ok(b)
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
        for pos in iter {
            let pos = pos?;
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
        Some(p) => Ok(!contains(index, p, pos)?),
    }
}

/// Whether `prefix` holds `pos`.
pub(crate) fn contains(index: &sled::Tree, prefix: &[u8], pos: &[u8]) -> Result<bool, StoreError> {
    let found = index
        .range(prefix.to_vec()..=with(prefix, pos))
        .next_back()
        .transpose()
        .map_err(read_err)?;
    match found {
        None => Ok(false),
        Some((k, v)) => Ok(split_bucket(&k, &v)?.binary_search(&pos).is_ok()),
    }
}

/// Entries per bucket before it splits in two: big enough that a page of
/// buckets holds hundreds of orders, small enough that rewriting one for
/// each new order stays cheap.
pub(crate) const BUCKET_MAX: usize = 32;

fn with(prefix: &[u8], pos: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + pos.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(pos);
    k
}

fn read_err(e: sled::Error) -> StoreError {
    engine_err("read of order index", e)
}

/// A bucket's entries: each a length (u16) and the position.
fn encode_bucket(entries: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for e in entries {
        let len = u16::try_from(e.len()).unwrap_or(u16::MAX);
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&e[..usize::from(len)]);
    }
    v
}

/// A bucket's entries, borrowed from its value: every new order changes a
/// dozen buckets inside the store's one-at-a-time transaction, so they are
/// searched and re-encoded without a copy of each entry.
fn split_bucket<'v>(key: &[u8], v: &'v [u8]) -> Result<Vec<&'v [u8]>, StoreError> {
    let mut out = Vec::with_capacity(BUCKET_MAX + 1);
    let mut rest = v;
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(2).ok_or_else(|| bad_bucket(key))?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (e, tail) = tail.split_at_checked(len).ok_or_else(|| bad_bucket(key))?;
        out.push(e);
        rest = tail;
    }
    Ok(out)
}

fn decode_bucket(key: &[u8], v: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    Ok(split_bucket(key, v)?
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect())
}

/// How many entries a bucket holds.
#[cfg(test)]
pub(crate) fn bucket_len(key: &[u8], v: &[u8]) -> Result<usize, StoreError> {
    Ok(split_bucket(key, v)?.len())
}

fn bad_bucket(key: &[u8]) -> StoreError {
    StoreError::Corrupt {
        tree: super::ORDER_INDEX,
        key: String::from_utf8_lossy(key).into_owned(),
        detail: "an index bucket is cut short; rebuild the store from a backup".to_owned(),
    }
}

/// The entries of `prefix` from `at` on in walk order (ascending when
/// `oldest`), `at` itself only if `inclusive`.
fn range(
    index: &sled::Tree,
    prefix: &[u8],
    at: Option<&[u8]>,
    inclusive: bool,
    oldest: bool,
) -> Entries {
    let end = past(prefix);
    let mut failed = None;
    let buckets: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
        match (at, oldest) {
            (None, true) => {
                Box::new(index.range::<Vec<u8>, _>((Bound::Included(prefix.to_vec()), end)))
            }
            (None, false) => Box::new(
                index
                    .range::<Vec<u8>, _>((Bound::Included(prefix.to_vec()), end))
                    .rev(),
            ),
            (Some(p), true) => {
                // From the bucket that would hold `p`: earlier ones hold
                // only entries below its fence.
                let from = match index.range(prefix.to_vec()..=with(prefix, p)).next_back() {
                    Some(Ok((k, _))) => k.to_vec(),
                    Some(Err(e)) => {
                        failed = Some(read_err(e));
                        prefix.to_vec()
                    }
                    None => prefix.to_vec(),
                };
                Box::new(index.range::<Vec<u8>, _>((Bound::Included(from), end)))
            }
            // Buckets fenced above `p` hold only entries above it.
            (Some(p), false) => Box::new(index.range(prefix.to_vec()..=with(prefix, p)).rev()),
        };
    Entries {
        buckets,
        pending: Vec::new().into_iter(),
        at: at.map(<[u8]>::to_vec),
        inclusive,
        oldest,
        failed,
    }
}

/// The entries of one prefix, bucket after bucket, in walk order.
struct Entries {
    buckets: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>,
    pending: std::vec::IntoIter<Vec<u8>>,
    at: Option<Vec<u8>>,
    inclusive: bool,
    oldest: bool,
    failed: Option<StoreError>,
}

impl Iterator for Entries {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.failed.take() {
                self.buckets = Box::new(std::iter::empty());
                return Some(Err(e));
            }
            if let Some(p) = self.pending.next() {
                return Some(Ok(p));
            }
            let mut entries = match self.buckets.next()? {
                Ok((k, v)) => match decode_bucket(&k, &v) {
                    Ok(entries) => entries,
                    Err(e) => {
                        self.failed = Some(e);
                        continue;
                    }
                },
                Err(e) => {
                    self.failed = Some(read_err(e));
                    continue;
                }
            };
            if let Some(at) = &self.at {
                let at = at.as_slice();
                entries.retain(|p| match (self.oldest, self.inclusive) {
                    (true, true) => p.as_slice() >= at,
                    (true, false) => p.as_slice() > at,
                    (false, true) => p.as_slice() <= at,
                    (false, false) => p.as_slice() < at,
                });
            }
            if !self.oldest {
                entries.reverse();
            }
            self.pending = entries.into_iter();
        }
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
    range(index, prefix, at, inclusive, oldest)
        .next()
        .transpose()
}

// --- writing, inside a transaction --------------------------------------------------

/// Adds `pos` to `prefix` (nothing if it is there already).
pub(crate) fn add(tx: &Tx<'_>, prefix: &[u8], pos: &[u8]) -> TxResult<()> {
    add_with(tx, prefix, pos, false)
}

/// [`add`] for entries that arrive in order but not past the prefix's last
/// bucket (a store upgrade moving entries into the middle of a prefix): a
/// full bucket whose end the entry goes past stays full too.
pub(crate) fn add_in_order(tx: &Tx<'_>, prefix: &[u8], pos: &[u8]) -> TxResult<()> {
    add_with(tx, prefix, pos, true)
}

fn add_with(tx: &Tx<'_>, prefix: &[u8], pos: &[u8], in_order: bool) -> TxResult<()> {
    let (key, value, last) = holder(tx, prefix, pos)?;
    let mut entries = split_bucket(&key, &value).map_err(abort)?;
    let Err(i) = entries.binary_search(&pos) else {
        return Ok(());
    };
    entries.insert(i, pos);
    if entries.len() > BUCKET_MAX {
        // The upper part is fenced by its first entry. Past the end of the
        // prefix's last bucket (a new order, placed just now), the full
        // bucket stays full and the new entry starts the next one: split
        // in halves, every bucket that orders arriving in placed-time order
        // leave behind would be half empty, and the last one, which each
        // new order rewrites, three quarters full on average instead of
        // half. Anywhere else, halves, so that entries arriving in any
        // order (a backfill polled newest first) fill buckets half at the
        // least.
        let at = if (last || in_order) && i == BUCKET_MAX {
            BUCKET_MAX
        } else {
            entries.len() / 2
        };
        let upper = entries.split_off(at);
        put(tx, with(prefix, upper[0]), Some(encode_bucket(&upper)))?;
    }
    let lower = encode_bucket(&entries);
    put(tx, key, Some(lower))
}

/// Removes `pos` from `prefix` (nothing if it is not there); a bucket left
/// empty goes.
pub(crate) fn remove(tx: &Tx<'_>, prefix: &[u8], pos: &[u8]) -> TxResult<()> {
    let (key, value, _) = holder(tx, prefix, pos)?;
    let mut entries = split_bucket(&key, &value).map_err(abort)?;
    let Ok(i) = entries.binary_search(&pos) else {
        return Ok(());
    };
    entries.remove(i);
    let rest = (!entries.is_empty()).then(|| encode_bucket(&entries));
    put(tx, key, rest)
}

/// Writes (Some) or removes (None) an encoded bucket in the transaction, and
/// notes it so later lookups of the same transaction see it.
fn put(tx: &Tx<'_>, key: Vec<u8>, value: Option<Vec<u8>>) -> TxResult<()> {
    match &value {
        Some(v) => tx.order_index().insert(key.as_slice(), v.as_slice())?,
        None => tx.order_index().remove(key.as_slice())?,
    };
    tx.buckets.borrow_mut().insert(key, value);
    Ok(())
}

/// The bucket of `prefix` that holds `pos` or would, as this transaction
/// sees it, with its encoded entries and whether it is the prefix's last:
/// the last one fenced at or below it, of those committed before the
/// transaction (`Tx::lookups`) and those it wrote or removed. A bucket this
/// transaction removed is taken up again, empty: the buckets below it hold
/// only entries below its fence. With none at all, a new first bucket,
/// fenced by the prefix alone (below every position). "Last" may say no of
/// a bucket that is (after removals in the transaction): it only chooses
/// where a full bucket splits.
fn holder(tx: &Tx<'_>, prefix: &[u8], pos: &[u8]) -> TxResult<(Vec<u8>, Vec<u8>, bool)> {
    let at = with(prefix, pos);
    let committed = tx.lookups.get(&at).ok_or_else(|| {
        abort(StoreError::Engine {
            context: "write of order index".to_owned(),
            detail: "an index entry was written that was not looked up first".to_owned(),
        })
    })?;
    let buckets = tx.buckets.borrow();
    let own = buckets.range(prefix.to_vec()..=at).next_back();
    let key = match (&committed.bucket, own) {
        (Some((c, _)), Some((o, _))) => c.max(o).clone(),
        (Some((c, _)), None) => c.clone(),
        (None, Some((o, _))) => o.clone(),
        (None, None) => prefix.to_vec(),
    };
    // Written by this transaction above it: a bucket split off.
    let above = buckets
        .range::<Vec<u8>, _>((Bound::Excluded(key.clone()), past(prefix)))
        .next()
        .is_some();
    let last = committed.last && !above;
    if committed.bucket.is_none() && own.is_none() {
        return Ok((key, Vec::new(), last));
    }
    // This transaction's own version of the bucket, else the committed one
    // the look-up read.
    let value = match (buckets.get(&key), &committed.bucket) {
        (Some(v), _) => v.clone(),
        (None, Some((c, v))) if *c == key => Some(v.to_vec()),
        (None, _) => tx.order_index().get(key.as_slice())?.map(|v| v.to_vec()),
    };
    Ok((key, value.unwrap_or_default(), last))
}

/// The upper bound of a range over every key starting with `prefix`.
pub(crate) fn past(prefix: &[u8]) -> Bound<Vec<u8>> {
    prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded)
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
    use std::collections::BTreeMap;

    use crate::store::{Store, StoreOptions};

    /// Random adds and removes over three prefixes, several to a
    /// transaction (so a lookup must see the buckets the same transaction
    /// wrote, split or removed): after each transaction every read answers
    /// what a plain sorted set answers, and every bucket keeps its bounds.
    #[test]
    fn buckets_answer_what_a_sorted_set_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let trees = store.trees();
        let prefixes = [prefix(TAG, "a"), prefix(TAG, "ab"), prefix(STATUS, "ready")];
        let mut model: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let t0 = Utc::now();
        let pos = |n: u64| {
            position(
                t0 + chrono::Duration::seconds(i64::try_from(n / 3).unwrap()),
                &format!("s:{n}"),
            )
        };
        let mut cached = 0;
        for _ in 0..60 {
            let ops: Vec<(usize, Vec<u8>, bool)> = (0..1 + rand(60))
                .map(|_| {
                    let p = usize::try_from(rand(3)).unwrap();
                    // Mostly adds, so buckets fill and split; ids from a
                    // narrow range, so removes and repeats hit.
                    (p, pos(rand(400)), rand(4) != 0)
                })
                .collect();
            let entries: Vec<(Vec<u8>, Vec<u8>)> = ops
                .iter()
                .map(|(p, at, _)| (prefixes[*p].clone(), at.clone()))
                .collect();
            trees
                .transact_indexed("test", &entries, |tx| {
                    for (p, at, add_it) in &ops {
                        if *add_it {
                            add(tx, &prefixes[*p], at)?;
                        } else {
                            remove(tx, &prefixes[*p], at)?;
                        }
                    }
                    Ok(())
                })
                .unwrap();
            for (p, at, add_it) in ops {
                let set = model.entry(prefixes[p].clone()).or_default();
                if add_it {
                    set.insert(at);
                } else {
                    set.remove(&at);
                }
            }
            for p in &prefixes {
                // The last buckets kept for the next look-ups are the
                // tree's own.
                let kept_last = trees.lasts.lock().get(p).cloned();
                if let Some(kept_last) = kept_last {
                    cached += 1;
                    let real = trees
                        .order_index
                        .scan_prefix(p)
                        .next_back()
                        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v)).unwrap());
                    assert_eq!(kept_last, real);
                }
                let want: Vec<Vec<u8>> = model
                    .get(p)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                let up: Vec<Vec<u8>> = range(&trees.order_index, p, None, false, true)
                    .map(Result::unwrap)
                    .collect();
                assert_eq!(up, want);
                let mut down: Vec<Vec<u8>> = range(&trees.order_index, p, None, false, false)
                    .map(Result::unwrap)
                    .collect();
                down.reverse();
                assert_eq!(down, want);
                for _ in 0..20 {
                    let at = pos(rand(420));
                    let inclusive = rand(2) == 0;
                    let set = model.get(p).cloned().unwrap_or_default();
                    let next_up = set
                        .iter()
                        .find(|e| if inclusive { **e >= at } else { **e > at })
                        .cloned();
                    let next_down = set
                        .iter()
                        .rev()
                        .find(|e| if inclusive { **e <= at } else { **e < at })
                        .cloned();
                    assert_eq!(
                        seek(&trees.order_index, p, Some(&at), inclusive, true).unwrap(),
                        next_up
                    );
                    assert_eq!(
                        seek(&trees.order_index, p, Some(&at), inclusive, false).unwrap(),
                        next_down
                    );
                    assert_eq!(
                        contains(&trees.order_index, p, &at).unwrap(),
                        set.contains(&at)
                    );
                }
                // Bucket bounds: none empty or over-full, sorted, each entry
                // at or above its fence and below the next bucket's.
                let buckets: Vec<(Vec<u8>, Vec<Vec<u8>>)> = trees
                    .order_index
                    .scan_prefix(p)
                    .map(|kv| {
                        let (k, v) = kv.unwrap();
                        (k[p.len()..].to_vec(), decode_bucket(&k, &v).unwrap())
                    })
                    .collect();
                for (i, (fence, entries)) in buckets.iter().enumerate() {
                    assert!(!entries.is_empty() && entries.len() <= BUCKET_MAX);
                    assert!(entries.windows(2).all(|w| w[0] < w[1]));
                    assert!(entries[0] >= *fence);
                    if let Some((next, _)) = buckets.get(i + 1) {
                        assert!(entries.last().unwrap() < next);
                    }
                }
            }
        }
        assert!(
            model.values().any(|s| s.len() > 3 * BUCKET_MAX),
            "the test never split a bucket"
        );
        assert!(cached > 60, "the look-ups never kept a last bucket");
    }

    /// Entries arriving in order (new orders, placed just now) leave full
    /// buckets behind them; arriving newest first, buckets are half full
    /// at the least. Either way every entry reads back.
    #[test]
    fn entries_in_order_fill_their_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let trees = store.trees();
        let t0 = Utc::now();
        let pos = |n: i64| position(t0 + chrono::Duration::seconds(n), &format!("s:{n}"));
        let up = prefix(TAG, "up");
        let down = prefix(TAG, "down");
        let n = 10 * BUCKET_MAX as i64 + 5;
        // One at a time as orders arrive, and a few together in one
        // transaction as a batch of orders does.
        let mut i = 0;
        while i < n {
            let k = if i % 3 == 0 { 1 } else { 3.min(n - i) };
            let adds: Vec<(Vec<u8>, Vec<u8>)> = (i..i + k)
                .flat_map(|j| [(up.clone(), pos(j)), (down.clone(), pos(n - 1 - j))])
                .collect();
            trees
                .transact_indexed("test", &adds, |tx| {
                    for (p, at) in &adds {
                        add(tx, p, at)?;
                    }
                    Ok(())
                })
                .unwrap();
            i += k;
        }
        let sizes = |p: &[u8]| -> Vec<usize> {
            trees
                .order_index
                .scan_prefix(p)
                .map(|kv| {
                    let (k, v) = kv.unwrap();
                    decode_bucket(&k, &v).unwrap().len()
                })
                .collect()
        };
        let (ups, downs) = (sizes(&up), sizes(&down));
        let want: Vec<Vec<u8>> = (0..n).map(pos).collect();
        for p in [&up, &down] {
            let got: Vec<Vec<u8>> = range(&trees.order_index, p, None, false, true)
                .map(Result::unwrap)
                .collect();
            assert_eq!(got, want);
        }
        let (last, full) = ups.split_last().unwrap();
        assert!(full.iter().all(|s| *s == BUCKET_MAX), "{ups:?}");
        assert_eq!(*last, 5);
        assert!(downs.iter().all(|s| *s >= BUCKET_MAX / 2), "{downs:?}");
    }

    /// A transaction that empties its prefix's last bucket leaves the one
    /// below it last: the look-ups after it find that one, not the
    /// removed one, so a later entry goes where a read would put it.
    #[test]
    fn emptying_the_last_bucket_is_not_remembered_as_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let trees = store.trees();
        let t0 = Utc::now();
        let pos = |n: i64| position(t0 + chrono::Duration::seconds(n), &format!("s:{n}"));
        let p = prefix(TAG, "last");
        let write = |adds: &[i64], removes: &[i64]| {
            let ops: Vec<(Vec<u8>, Vec<u8>)> = adds
                .iter()
                .chain(removes)
                .map(|n| (p.clone(), pos(*n)))
                .collect();
            trees
                .transact_indexed("test", &ops, |tx| {
                    for n in adds {
                        add(tx, &p, &pos(*n))?;
                    }
                    for n in removes {
                        remove(tx, &p, &pos(*n))?;
                    }
                    Ok(())
                })
                .unwrap();
        };
        let n = BUCKET_MAX as i64 + 3;
        for i in 0..n {
            write(&[i], &[]);
        }
        assert_eq!(trees.order_index.scan_prefix(&p).count(), 2);
        let tail: Vec<i64> = (BUCKET_MAX as i64..n).collect();
        write(&[], &tail);
        write(&[n + 1], &[]);
        let real = trees
            .order_index
            .scan_prefix(&p)
            .next_back()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v)).unwrap());
        if let Some(kept) = trees.lasts.lock().get(&p) {
            assert_eq!(*kept, real);
        }
        let want: Vec<Vec<u8>> = (0..BUCKET_MAX as i64).chain([n + 1]).map(pos).collect();
        let got: Vec<Vec<u8>> = range(&trees.order_index, &p, None, false, true)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, want);
        for (i, kv) in trees.order_index.scan_prefix(&p).enumerate() {
            let (k, v) = kv.unwrap();
            assert!(
                decode_bucket(&k, &v).unwrap().len() <= BUCKET_MAX,
                "bucket {i}"
            );
        }
    }

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
