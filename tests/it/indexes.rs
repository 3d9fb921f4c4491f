//! The store's indexes and paging: every index answers what a full scan of
//! the orders answers, after any sequence of the things that change orders
//! (the open reservations of each SKU too);
//! pages read while orders are written show every matching order exactly
//! once; a store written by the first release (layout 1, committed under
//! `tests/fixtures/store-layout-1`) opens, gets its indexes and loses
//! nothing, also when the upgrade is interrupted; and a store written by
//! layout 5 gets its open reservations, with `stock show` answering what it
//! answered there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use switchyard::effects::Outbound;
use switchyard::effects::stock::StockTargets;
use switchyard::effects::tracking::{ShipLine, ShipmentRequest};
use switchyard::ingest::{Ingest, LiveRules, Source};
use switchyard::ops;
use switchyard::rules::{RuleSet, parse_rules};
use switchyard::store::{
    MAX_PAGE, OrderFilter, OutboxState, Reservation, RouteFilter, Store, StoreError, StoreOptions,
    reservation_marker,
};
use switchyard_contract::{Address, Channel, Fulfillment, Line, Order, OrderStatus};

use crate::common::{at, normalized, order};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Opens the store; most tests here open it again after an earlier handle
/// closed, so this waits for that handle to let go.
fn open(dir: &Path) -> Store {
    crate::common::reopen_with(
        dir,
        StoreOptions {
            cache_bytes: 8 * 1024 * 1024,
        },
    )
}

// --- indexes against a full scan ------------------------------------------------

const ACCOUNTS: [(&str, Channel); 3] = [
    ("shop-a", Channel::Shopify),
    ("etsy-b", Channel::Etsy),
    ("ebay-c", Channel::Ebay),
];
/// Channels spell tags as they like; filters ignore case.
const CHANNEL_TAGS: [&str; 5] = ["vip", "gift", "b2b", "promo", "Gift"];
const COUNTRIES: [&str; 3] = ["US", "CA", "DE"];
const DESTINATIONS: [&str; 3] = ["east", "toronto", "west"];
/// SKUs of the orders' lines (`None`: a line without one).
const SKUS: [Option<&str>; 4] = [Some("MUG"), Some("CAP"), Some("TEE-L"), None];

/// Two rule sets that disagree on routes, holds and tags, so `rules apply`
/// moves orders between index entries.
const RULES_A: &str = r#"
default_route = "east"

[[rule]]
name = "canada"
when = { country = "CA" }
then = { route = "toronto", tag = "canada" }

[[rule]]
name = "vip-check"
when = { tag = "vip" }
then = { hold = "vip check" }

[[rule]]
name = "unpaid"
when = { status = "pending" }
then = { hold = "awaiting payment", tag = "unpaid" }
"#;

const RULES_B: &str = r#"
[[rule]]
name = "domestic"
when = { country = "US" }
then = { route = "west", tag = "domestic" }

[[rule]]
name = "wrap"
when = { tag = "gift" }
then = { tag = "wrapped", untag = "promo" }
"#;

fn rules(text: &str) -> RuleSet {
    let dests: Vec<String> = DESTINATIONS.iter().map(|d| d.to_string()).collect();
    parse_rules(Path::new("rules.toml"), text, &dests)
        .expect("test rules are valid")
        .0
}

/// A line: SKU, quantity, refunded, shipped (each capped by the quantity).
type LineSpec = (usize, u32, u32, u32);

#[derive(Debug, Clone)]
enum Step {
    /// A channel version of order `n` (new, or newer than stored).
    Ingest {
        n: u8,
        account: usize,
        status: usize,
        country: usize,
        tags: Vec<usize>,
        placed: u8,
        lines: Vec<LineSpec>,
        /// Shipped by the marketplace from its own stock.
        by_channel: bool,
        /// Taken in by an ingest without outbound effects: a new order so
        /// taken is never marked for reservations.
        plain: bool,
    },
    Hold(u8),
    Release(u8),
    /// Everything still owed, or (`partial`) one unit of the first line.
    Ship(u8, bool),
    /// Switch to rule set A (true) or B and re-run them over open orders.
    RulesApply(bool),
}

fn step() -> impl Strategy<Value = Step> {
    let lines = proptest::collection::vec((0usize..4, 1u32..4, 0u32..3, 0u32..3), 1..4);
    prop_oneof![
        4 => (
            (0u8..10, 0usize..3, 0usize..5, 0usize..3, proptest::collection::vec(0usize..5, 0..3), 0u8..6),
            (lines, proptest::bool::weighted(0.1), proptest::bool::weighted(0.15)),
        )
            .prop_map(|((n, account, status, country, tags, placed), (lines, by_channel, plain))| Step::Ingest {
                n, account, status, country, tags, placed, lines, by_channel, plain
            }),
        1 => (0u8..10).prop_map(Step::Hold),
        1 => (0u8..10).prop_map(Step::Release),
        1 => (0u8..10, any::<bool>()).prop_map(|(n, partial)| Step::Ship(n, partial)),
        1 => any::<bool>().prop_map(Step::RulesApply),
    ]
}

/// The account an order number belongs to once first ingested.
struct World {
    store: Store,
    ingest: Ingest,
    /// Takes orders in without outbound effects (no reservation marker).
    plain: Ingest,
    outbound: Outbound,
    accounts: BTreeMap<u8, usize>,
    ids: BTreeSet<String>,
    clock: DateTime<Utc>,
}

impl World {
    fn new(store: Store) -> World {
        let outbound = Outbound::new(StockTargets::new(vec![]));
        let ingest = Ingest::new(store.clone(), LiveRules::new(rules(RULES_A)))
            .with_outbound(outbound.clone());
        let plain = Ingest::new(store.clone(), LiveRules::new(rules(RULES_A)));
        World {
            store,
            ingest,
            plain,
            outbound,
            accounts: BTreeMap::new(),
            ids: BTreeSet::new(),
            clock: at(8, 0),
        }
    }

    fn id(&self, n: u8) -> Option<String> {
        self.accounts
            .get(&n)
            .map(|a| Order::make_id(ACCOUNTS[*a].0, &n.to_string()))
    }

    fn run(&mut self, step: &Step) {
        self.clock += Duration::seconds(1);
        let now = self.clock;
        match step {
            Step::Ingest {
                n,
                account,
                status,
                country,
                tags,
                placed,
                lines,
                by_channel,
                plain,
            } => {
                let account = *self.accounts.entry(*n).or_insert(*account);
                let (name, channel) = ACCOUNTS[account];
                let mut o = order(u32::from(*n), now, "25.00");
                o.id = Order::make_id(name, &n.to_string());
                o.account = name.to_owned();
                o.channel = channel;
                o.status = OrderStatus::ALL[*status];
                o.placed_at = at(6, 0) + Duration::minutes(i64::from(*placed) * 7);
                o.shipping_address = Some(Address {
                    country: Some(COUNTRIES[*country].to_owned()),
                    ..Address::default()
                });
                o.tags = tags.iter().map(|t| CHANNEL_TAGS[*t].to_owned()).collect();
                o.tags.sort();
                o.tags.dedup();
                let template = o.lines[0].clone();
                o.lines = lines
                    .iter()
                    .enumerate()
                    .map(|(i, &(sku, quantity, refunded, shipped))| Line {
                        line_id: format!("{n}-{i}"),
                        sku: SKUS[sku].map(str::to_owned),
                        quantity,
                        refunded_quantity: refunded.min(quantity),
                        shipped_quantity: shipped.min(quantity - refunded.min(quantity)),
                        ..template.clone()
                    })
                    .collect();
                if *by_channel {
                    o.fulfillment = Fulfillment::Channel;
                }
                self.ids.insert(o.id.clone());
                let ingest = if *plain { &self.plain } else { &self.ingest };
                ingest
                    .receive(name, vec![normalized(o)], Source::Fetch, now)
                    .expect("ingest");
            }
            Step::Hold(n) => {
                if let Some(id) = self.id(*n) {
                    ops::hold(&self.store, &self.outbound, &id, "by hand", now).expect("hold");
                }
            }
            Step::Release(n) => {
                if let Some(id) = self.id(*n) {
                    // Not on hold: a conflict, and nothing changes.
                    let _ = ops::release(&self.store, &self.outbound, &id, now);
                }
            }
            Step::Ship(n, partial) => {
                if let Some(id) = self.id(*n) {
                    let first_sku = self
                        .store
                        .get_order(&id)
                        .expect("read")
                        .and_then(|o| o.order.lines.first().and_then(|l| l.sku.clone()));
                    let lines = match first_sku {
                        Some(sku) if *partial => Some(vec![ShipLine { sku, quantity: 1 }]),
                        _ => None,
                    };
                    let req = ShipmentRequest {
                        order_id: id,
                        carrier: "ups".into(),
                        tracking_number: format!("1Z{}", now.timestamp()),
                        tracking_url: None,
                        shipped_at: Some(now),
                        lines,
                        destination: None,
                    };
                    // Cancelled or already shipped orders refuse it.
                    let _ = ops::ship(&self.store, &self.outbound, &req, now);
                }
            }
            Step::RulesApply(a) => {
                let r = rules(if *a { RULES_A } else { RULES_B });
                self.ingest.rules().replace(r.clone());
                ops::apply_rules(&self.store, &self.outbound, &r, false, now).expect("rules apply");
            }
        }
    }

    /// Every filter worth asking of what is stored.
    fn filters(&self) -> Vec<OrderFilter> {
        let mut tags: BTreeSet<String> = CHANNEL_TAGS.iter().map(|t| t.to_string()).collect();
        tags.extend(
            [
                "canada", "unpaid", "domestic", "wrapped", "nobody", "VIP", "Gift",
            ]
            .iter()
            .map(|t| t.to_string()),
        );
        let mut out = vec![OrderFilter::default()];
        for s in OrderStatus::ALL {
            out.push(OrderFilter {
                status: Some(s),
                ..OrderFilter::default()
            });
            out.push(OrderFilter {
                status: Some(s),
                held: Some(false),
                ..OrderFilter::default()
            });
        }
        for (a, c) in ACCOUNTS {
            out.push(OrderFilter {
                account: Some(a.to_owned()),
                ..OrderFilter::default()
            });
            out.push(OrderFilter {
                channel: Some(c),
                route: Some(RouteFilter::None),
                ..OrderFilter::default()
            });
        }
        out.push(OrderFilter {
            channel: Some(Channel::Amazon),
            ..OrderFilter::default()
        });
        for d in DESTINATIONS {
            out.push(OrderFilter {
                route: Some(RouteFilter::Is(d.to_owned())),
                ..OrderFilter::default()
            });
        }
        out.push(OrderFilter {
            route: Some(RouteFilter::None),
            ..OrderFilter::default()
        });
        for held in [true, false] {
            out.push(OrderFilter {
                held: Some(held),
                ..OrderFilter::default()
            });
        }
        for t in tags {
            out.push(OrderFilter {
                tag: Some(t.clone()),
                ..OrderFilter::default()
            });
            out.push(OrderFilter {
                tag: Some(t),
                account: Some("shop-a".into()),
                held: Some(true),
                ..OrderFilter::default()
            });
        }
        out.push(OrderFilter {
            status: Some(OrderStatus::Ready),
            route: Some(RouteFilter::Is("east".into())),
            held: Some(false),
            tag: Some("gift".into()),
            ..OrderFilter::default()
        });
        out
    }

    /// The truth: every order read by id, filtered, oldest first.
    fn scan(&self, f: &OrderFilter) -> Vec<String> {
        let mut found: Vec<(DateTime<Utc>, String)> = self
            .ids
            .iter()
            .filter_map(|id| self.store.get_order(id).expect("read"))
            .filter(|o| f.matches(&o.order))
            .map(|o| (o.order.placed_at, o.order.id))
            .collect();
        found.sort();
        found.into_iter().map(|(_, id)| id).collect()
    }

    /// What paging through the indexes answers, oldest first.
    fn paged(&self, f: &OrderFilter, oldest: bool, limit: usize) -> Vec<String> {
        let mut f = OrderFilter {
            oldest,
            limit: Some(limit),
            ..f.clone()
        };
        let mut out = Vec::new();
        loop {
            let page = self.store.page_orders(&f).expect("page");
            assert!(page.orders.len() <= limit);
            out.extend(page.orders.into_iter().map(|o| o.order.id));
            match page.next {
                Some(next) => f.after = Some(next),
                None => break,
            }
        }
        if !oldest {
            out.reverse();
        }
        out
    }

    fn check(&self) -> Result<(), TestCaseError> {
        for f in self.filters() {
            let truth = self.scan(&f);
            prop_assert_eq!(&self.paged(&f, false, 2), &truth, "newest first: {:?}", f);
            prop_assert_eq!(&self.paged(&f, true, 3), &truth, "oldest first: {:?}", f);
            let listed: Vec<String> = self
                .store
                .list_orders(&f)
                .expect("list")
                .into_iter()
                .map(|o| o.order.id)
                .collect();
            prop_assert_eq!(&listed, &truth, "list_orders: {:?}", f);
        }
        // What the catch-up reads: routed, not held, ready or partially
        // shipped; ready ones first, oldest first within each status.
        let mut open = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .routed_open_orders(after.as_deref(), 2)
                .expect("page");
            open.extend(page.orders.into_iter().map(|o| o.order.id));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mut truth: Vec<(bool, DateTime<Utc>, String)> = self
            .ids
            .iter()
            .filter_map(|id| self.store.get_order(id).expect("read"))
            .filter(|o| {
                o.order.route.is_some()
                    && o.order.hold.is_none()
                    && matches!(
                        o.order.status,
                        OrderStatus::Ready | OrderStatus::PartiallyShipped
                    )
            })
            .map(|o| {
                let shipping = o.order.status == OrderStatus::PartiallyShipped;
                (shipping, o.order.placed_at, o.order.id)
            })
            .collect();
        truth.sort();
        let truth: Vec<String> = truth.into_iter().map(|(_, _, id)| id).collect();
        prop_assert_eq!(open, truth, "routed open orders");
        self.check_reservations()
    }

    /// The open reservations of every SKU answer what a full scan of the
    /// open orders answers.
    fn check_reservations(&self) -> Result<(), TestCaseError> {
        let mut truth = scanned_reservations(&self.store, &self.ids, self.clock);
        for sku in SKUS.iter().flatten().chain(&["NOBODY"]) {
            let want = truth.remove(*sku).unwrap_or_default();
            prop_assert_eq!(
                &self.store.reservations(sku).expect("read"),
                &want,
                "reservations of {}",
                sku
            );
            prop_assert_eq!(
                self.store.reserved_units(sku).expect("read"),
                want.iter().map(|r| r.units).sum::<i64>(),
                "reserved units of {}",
                sku
            );
        }
        Ok(())
    }
}

/// The open reservations of every SKU as a full scan of the orders `ids`
/// finds them (what `stock show` read before the store kept them): each
/// open order marked for reservations and shipped by the merchant, with its
/// units still owed per SKU, listed status by status, oldest first.
fn scanned_reservations(
    store: &Store,
    ids: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> BTreeMap<String, Vec<Reservation>> {
    // Per SKU: (status rank, placed, order id, units), to sort as listed.
    type Found = (usize, DateTime<Utc>, String, i64);
    let mut found: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for id in ids {
        let Some(o) = store.get_order(id).expect("read") else {
            continue;
        };
        let o = o.order;
        let marked = store
            .dedupe_seen(&reservation_marker(id), now)
            .expect("read");
        if !o.status.is_open() || o.channel_fulfilled() || !marked {
            continue;
        }
        let rank = OrderStatus::ALL.iter().position(|s| *s == o.status);
        let mut units: BTreeMap<&str, i64> = BTreeMap::new();
        for l in &o.lines {
            if let Some(sku) = l.sku.as_deref()
                && l.open_quantity() > 0
            {
                *units.entry(sku).or_default() += i64::from(l.open_quantity());
            }
        }
        for (sku, units) in units {
            found.entry(sku.to_owned()).or_default().push((
                rank.expect("a status"),
                o.placed_at,
                o.id.clone(),
                units,
            ));
        }
    }
    found
        .into_iter()
        .map(|(sku, mut all)| {
            all.sort();
            let all = all
                .into_iter()
                .map(|(_, _, order_id, units)| Reservation { order_id, units })
                .collect();
            (sku, all)
        })
        .collect()
}

#[test]
fn every_index_answers_what_a_full_scan_answers() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(step(), 1..30), |steps| {
            let dir = tempfile::tempdir().unwrap();
            let mut world = World::new(open(dir.path()));
            for s in &steps {
                world.run(s);
                world.check()?;
            }
            Ok(())
        })
        .unwrap();
}

// --- pages while orders are written ---------------------------------------------

/// A reader pages through `status=ready`, a few orders at a time, while a
/// writer adds orders (older and newer than the page) and moves other
/// orders in and out of the filter. Every order that matched throughout
/// shows exactly once, and no order shows twice.
#[test]
fn pages_show_each_matching_order_once_while_orders_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let outbound = Outbound::new(StockTargets::new(vec![]));
    let ingest = Ingest::new(store.clone(), LiveRules::default()).with_outbound(outbound.clone());
    let placed = |n: u32| at(0, 0) + Duration::minutes(i64::from(n) * 3);
    let make = move |n: u32, status: OrderStatus, updated: DateTime<Utc>| {
        let mut o = order(n, updated, "10.00");
        o.status = status;
        o.placed_at = placed(n % 400);
        o
    };
    // Even numbers stay ready throughout; odd ones are the writer's.
    let stable: BTreeSet<String> = (0..300)
        .step_by(2)
        .map(|n| make(n, OrderStatus::Ready, at(1, 0)).id)
        .collect();
    let all: Vec<_> = (0..300)
        .map(|n| normalized(make(n, OrderStatus::Ready, at(1, 0))))
        .collect();
    ingest
        .receive(crate::common::ACCOUNT, all, Source::Fetch, at(1, 0))
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, ingest) = (stop.clone(), ingest.clone());
        std::thread::spawn(move || {
            let mut round = 0u32;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let updated = at(2, 0) + Duration::seconds(i64::from(round));
                let mut batch = Vec::new();
                for k in 0..10 {
                    // Flip odd orders between shipped and ready ...
                    let n = 1 + 2 * ((round * 10 + k) % 150);
                    let status = if (round + k).is_multiple_of(2) {
                        OrderStatus::Shipped
                    } else {
                        OrderStatus::Ready
                    };
                    batch.push(normalized(make(n, status, updated)));
                }
                // ... and add new ready orders all over the time range.
                batch.push(normalized(make(1000 + round, OrderStatus::Ready, updated)));
                ingest
                    .receive(crate::common::ACCOUNT, batch, Source::Fetch, updated)
                    .unwrap();
            }
            round
        })
    };

    for oldest in [false, true] {
        let mut f = OrderFilter {
            status: Some(OrderStatus::Ready),
            limit: Some(7),
            oldest,
            ..OrderFilter::default()
        };
        let mut seen: Vec<String> = Vec::new();
        let mut last: Option<(DateTime<Utc>, String)> = None;
        loop {
            let page = store.page_orders(&f).unwrap();
            for o in &page.orders {
                let key = (o.order.placed_at, o.order.id.clone());
                if let Some(prev) = &last {
                    assert!(
                        if oldest { key > *prev } else { key < *prev },
                        "pages go one way: {key:?} after {prev:?}"
                    );
                }
                last = Some(key);
                seen.push(o.order.id.clone());
            }
            match page.next {
                Some(next) => f.after = Some(next),
                None => break,
            }
            std::thread::yield_now();
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "no order twice (oldest: {oldest})"
        );
        let missing: Vec<&String> = stable.iter().filter(|id| !unique.contains(id)).collect();
        assert!(
            missing.is_empty(),
            "orders ready throughout but not shown: {missing:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert!(rounds > 0, "the writer wrote while pages were read");
}

#[test]
fn a_page_is_bounded_and_a_bad_cursor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let total = MAX_PAGE + 5;
    let all: Vec<_> = (0..total as u32)
        .map(|n| normalized(order(n, at(1, 0), "10.00")))
        .collect();
    ingest
        .receive(crate::common::ACCOUNT, all, Source::Fetch, at(1, 0))
        .unwrap();
    let default = store.page_orders(&OrderFilter::default()).unwrap();
    assert_eq!(default.orders.len(), 100, "100 unless asked");
    let page = store
        .page_orders(&OrderFilter {
            limit: Some(usize::MAX),
            ..OrderFilter::default()
        })
        .unwrap();
    assert_eq!(page.orders.len(), MAX_PAGE, "never more than a page");
    let rest = store
        .page_orders(&OrderFilter {
            limit: Some(usize::MAX),
            after: page.next,
            ..OrderFilter::default()
        })
        .unwrap();
    assert_eq!(rest.orders.len(), 5);
    assert!(rest.next.is_none(), "nothing further: no cursor");
    let err = store
        .page_orders(&OrderFilter {
            after: Some("not a cursor!".into()),
            ..OrderFilter::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidCursor { .. }), "{err}");
    assert!(err.to_string().contains("not a page cursor"), "{err}");
}

// --- a store written by the first release -----------------------------------------

/// `tests/fixtures/store-layout-N`, copied so the test may write to it.
fn fixture_store(layout: u8) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["conf", "db"] {
        std::fs::copy(
            Path::new(REPO)
                .join(format!("tests/fixtures/store-layout-{layout}"))
                .join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    dir
}

fn layout_1_store() -> tempfile::TempDir {
    fixture_store(1)
}

const FIXTURE_ORDERS: [&str; 5] = [
    "shop-us:5550000001",
    "shop-us:5550000002",
    "shop-us:5550000003",
    "shop-us:5550000004",
    "shop-us:5550000005",
];

/// What the fixture's README says was done to it, read back.
fn assert_fixture_intact(store: &Store) {
    let ids = |f: OrderFilter| -> Vec<String> {
        store
            .list_orders(&f)
            .unwrap()
            .into_iter()
            .map(|o| o.order.id)
            .collect()
    };
    assert_eq!(ids(OrderFilter::default()), FIXTURE_ORDERS);
    for id in FIXTURE_ORDERS {
        let o = store.get_order(id).unwrap().expect("order kept");
        // Written before the model had them: read as the merchant's order,
        // nothing refunded, no options, no gift.
        assert_eq!(
            o.order.fulfillment,
            switchyard_contract::Fulfillment::Merchant
        );
        assert!(!o.order.test && o.order.gift.is_none(), "{id}");
        assert!(
            o.order
                .lines
                .iter()
                .all(|l| l.refunded_quantity == 0 && l.options.is_empty()),
            "{id}"
        );
        assert!(o.raw.is_null(), "the payload is read apart");
        let raw = store.raw_payload(id).unwrap().expect("payload kept");
        assert_eq!(
            raw["id"].as_u64().map(|n| n.to_string()).as_deref(),
            Some(o.order.channel_order_id.as_str()),
            "{id}'s own payload"
        );
    }
    let status = |s| OrderFilter {
        status: Some(s),
        ..OrderFilter::default()
    };
    assert_eq!(
        ids(status(OrderStatus::Shipped)),
        ["shop-us:5550000002", "shop-us:5550000004"]
    );
    assert_eq!(
        ids(OrderFilter {
            held: Some(true),
            ..OrderFilter::default()
        }),
        ["shop-us:5550000001", "shop-us:5550000005"]
    );
    assert_eq!(
        ids(OrderFilter {
            route: Some(RouteFilter::Is("west-3pl".into())),
            ..OrderFilter::default()
        }),
        ["shop-us:5550000004"]
    );
    assert_eq!(
        ids(OrderFilter {
            tag: Some("international".into()),
            ..OrderFilter::default()
        }),
        ["shop-us:5550000002"]
    );
    let kinds = |id: &str| -> Vec<String> {
        store
            .history(id)
            .unwrap()
            .into_iter()
            .map(|h| h.kind)
            .collect()
    };
    assert_eq!(kinds("shop-us:5550000004"), ["created", "updated"]);
    assert_eq!(kinds("shop-us:5550000001"), ["created", "hold"]);
    // The outbox: a delivery waiting for a release, two dead deliveries
    // (their orders shipped first), a tracking push and a stock push; the
    // pending ones due through the index.
    assert_eq!(store.outbox_counts().unwrap(), (3, 2));
    let depths = store.outbox_depths().unwrap();
    assert_eq!(depths["destination:east-wh"], (1, 1));
    assert_eq!(depths["destination:west-3pl"], (0, 1));
    assert_eq!(depths["shop-us"], (2, 0));
    assert_eq!(store.outbox_list(true).unwrap().len(), 2);
    let far = Utc::now() + Duration::days(1);
    let due = store.outbox_due("shop-us", far, 10).unwrap();
    let kinds: BTreeSet<&str> = due.iter().map(|i| i.job.kind().as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["push_stock", "push_tracking"]));
    assert!(due.iter().all(|i| i.state == OutboxState::Pending));
    // Webhook dedupe keys and stock survive.
    assert!(store.dedupe_seen("shop-us:fx-4b", Utc::now()).unwrap());
    assert_eq!(store.stock_get("MUG-RED").unwrap().unwrap().available, 7);
    // Delivered once: the catch-up finds nothing new to deliver.
    let outbound = Outbound::new(StockTargets::new(vec![]));
    assert_eq!(
        switchyard::effects::deliveries::queue_ready_orders(store, &outbound, Utc::now()).unwrap(),
        0
    );
}

#[test]
fn a_store_of_the_first_release_opens_with_indexes_and_nothing_lost() {
    let dir = layout_1_store();
    let store = open(dir.path());
    assert_fixture_intact(&store);
    // Written after the upgrade, found through the indexes.
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let mut o = order(77, at(12, 0), "10.00");
    o.placed_at = Utc::now();
    ingest
        .receive(
            crate::common::ACCOUNT,
            vec![normalized(o)],
            Source::Fetch,
            at(12, 0),
        )
        .unwrap();
    let newest = store.page_orders(&OrderFilter::default()).unwrap();
    assert_eq!(newest.orders[0].order.id, "shop-test:77");
    drop(ingest);
    store.close().unwrap();
    // A checkpoint (what the daemon does after a clean stop), then opened
    // again: upgraded once, the same answers.
    Store::checkpoint(dir.path(), StoreOptions::default()).unwrap();
    let store = open(dir.path());
    assert_eq!(store.list_orders(&OrderFilter::default()).unwrap().len(), 6);
}

#[test]
fn an_interrupted_upgrade_goes_on_where_it_stopped() {
    for layout in [1, 2] {
        interrupted_upgrade_goes_on(layout);
    }
}

// --- a store written by layout 2 (an index entry per key) --------------------------

#[test]
fn a_store_of_layout_2_opens_with_packed_indexes_and_nothing_lost() {
    let dir = fixture_store(2);
    let store = open(dir.path());
    assert_fixture_intact(&store);
    // Orders written after the upgrade: enough to split index buckets, and
    // each filter still answers.
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let orders = (100..180)
        .map(|n| {
            let mut o = order(n, at(12, 0), "10.00");
            o.placed_at = Utc::now() + Duration::seconds(i64::from(n));
            normalized(o)
        })
        .collect();
    ingest
        .receive(crate::common::ACCOUNT, orders, Source::Fetch, at(12, 0))
        .unwrap();
    let all = store.list_orders(&OrderFilter::default()).unwrap();
    assert_eq!(all.len(), 85);
    // Oldest first: the fixture's orders, then the new ones in order.
    assert_eq!(all[0].order.id, "shop-us:5550000001");
    assert_eq!(all[5].order.id, "shop-test:100");
    assert_eq!(all[84].order.id, "shop-test:179");
    let newest = store.page_orders(&OrderFilter::default()).unwrap();
    assert_eq!(newest.orders[0].order.id, "shop-test:179");
    drop(ingest);
    store.close().unwrap();
    // Opened again: upgraded once, the same answers.
    let store = open(dir.path());
    assert_eq!(
        store.list_orders(&OrderFilter::default()).unwrap().len(),
        85
    );
    assert_eq!(
        store
            .list_orders(&OrderFilter {
                held: Some(true),
                ..OrderFilter::default()
            })
            .unwrap()
            .len(),
        2
    );
}

/// Opens the store at `dir`, upgrading `orders` of its orders, and checks
/// that it stopped as a crash would.
fn open_interrupted(dir: &Path, orders: usize) {
    let err = Store::open_interrupted_for_tests(dir, StoreOptions::default(), orders).unwrap_err();
    assert!(matches!(err, StoreError::Injected), "{err}");
}

fn interrupted_upgrade_goes_on(layout: u8) {
    let dir = fixture_store(layout);
    for done in [2, 3] {
        open_interrupted(dir.path(), done);
    }
    let store = open(dir.path());
    assert_fixture_intact(&store);
    for id in FIXTURE_ORDERS {
        let h = store.history(id).unwrap();
        let unique: BTreeSet<_> = h.iter().map(|e| (e.at, &e.kind)).collect();
        assert_eq!(unique.len(), h.len(), "{id}: no history entry twice");
    }
}

// --- a store written by layout 5 (reservations found by reading open orders) ---------

/// What `stock show` answers for every SKU of the layout-5 fixture, against
/// what that build printed, and each SKU's reservations against a scan.
fn assert_stock_as_layout_5_showed(store: &Store) {
    let text = std::fs::read_to_string(
        Path::new(REPO).join("tests/fixtures/store-layout-5/stock-show.json"),
    )
    .unwrap();
    let shown: BTreeMap<String, switchyard::store::StockView> =
        serde_json::from_str(&text).unwrap();
    let ids: BTreeSet<String> = store
        .list_orders(&OrderFilter::default())
        .unwrap()
        .into_iter()
        .map(|o| o.order.id)
        .collect();
    assert_eq!(ids.len(), 19);
    let scanned = scanned_reservations(store, &ids, Utc::now());
    let mut reserving = 0;
    for (sku, then) in &shown {
        assert_eq!(&ops::stock_show(store, sku).unwrap(), then, "{sku}");
        let want = scanned.get(sku).cloned().unwrap_or_default();
        assert_eq!(store.reservations(sku).unwrap(), want, "{sku}");
        assert_eq!(
            store.reserved_units(sku).unwrap(),
            then.reserved,
            "{sku}: the total"
        );
        reserving += usize::from(!want.is_empty());
    }
    assert_eq!(reserving, 4, "the fixture's open orders reserve four SKUs");
}

#[test]
fn a_store_of_layout_5_gets_its_open_reservations_and_shows_the_same_stock() {
    let dir = fixture_store(5);
    let store = open(dir.path());
    assert_stock_as_layout_5_showed(&store);
    // Kept as orders change from here: a new open order of a reserved SKU
    // is listed after the one before it, and `stock set` counts both.
    let outbound = Outbound::new(StockTargets::new(vec![]));
    let ingest = Ingest::new(store.clone(), LiveRules::default()).with_outbound(outbound.clone());
    let mut o = order(77, Utc::now(), "10.00");
    o.lines[0].sku = Some("TOWEL-LIN".into());
    o.lines[0].quantity = 2;
    o.placed_at = Utc::now();
    ingest
        .receive(
            crate::common::ACCOUNT,
            vec![normalized(o)],
            Source::Fetch,
            Utc::now(),
        )
        .unwrap();
    let shown: Vec<(String, i64)> = ops::stock_show(&store, "TOWEL-LIN")
        .unwrap()
        .reservations
        .into_iter()
        .map(|r| (r.order_id, r.units))
        .collect();
    assert_eq!(
        shown,
        [
            ("etsy-main:2803".to_owned(), 3),
            ("shop-test:77".to_owned(), 2)
        ]
    );
    ops::set_stock(
        &store,
        &outbound,
        &[switchyard::effects::stock::StockUpdate {
            sku: "TOWEL-LIN".into(),
            available: 10,
        }],
        Utc::now(),
    )
    .unwrap();
    let view = ops::stock_show(&store, "TOWEL-LIN").unwrap();
    assert_eq!((view.on_hand, view.reserved, view.available), (10, 5, 5));
    drop(ingest);
    store.close().unwrap();
    // Opened again: upgraded once, nothing counted twice.
    let store = open(dir.path());
    assert_eq!(store.reserved_units("TOWEL-LIN").unwrap(), 5);
    assert_eq!(store.reserved_units("PLATE-BLU").unwrap(), 3);
}

#[test]
fn an_interrupted_reservation_upgrade_goes_on_where_it_stopped() {
    let dir = fixture_store(5);
    for _ in 0..3 {
        open_interrupted(dir.path(), 1);
    }
    let store = open(dir.path());
    assert_stock_as_layout_5_showed(&store);
}

/// Noting a delivery on an order (the destination took it: the order
/// records it and the outbox item is completed, in one write, as the
/// destination's worker writes it) changes none of the order's index
/// entries or reservations, so the write stages no index bucket, no
/// reservation entry and no reserved total: each key written costs the
/// engine a page update, and a delivery is noted for every order.
#[test]
fn a_delivery_noted_on_an_order_rewrites_no_index_or_reservation() {
    use switchyard::store::{DeliveredTo, Job, OrderWrite, WriteBatch};
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = open(dir.path());
    let ingest = Ingest::new(
        store.clone(),
        LiveRules::new(rules("default_route = \"east\"\n")),
    )
    .with_outbound(Outbound::new(StockTargets::new(vec![])));
    let mut o = order(7, at(9, 0), "30.00");
    o.lines[0].quantity = 3;
    let id = o.id.clone();
    ingest
        .receive(
            crate::common::ACCOUNT,
            vec![normalized(o)],
            Source::Fetch,
            at(9, 0),
        )
        .expect("ingest");
    let reserved = store.reservations("MUG-RED").expect("read");
    assert_eq!(reserved.len(), 1, "the new order reserves its mug");
    let (item, delivery_id) = store
        .outbox_list(false)
        .expect("outbox")
        .into_iter()
        .find_map(|i| match &i.job {
            Job::Deliver(d) if d.order_id == id => Some((i.id.clone(), d.delivery_id.clone())),
            _ => None,
        })
        .expect("the new order is queued for delivery");

    let mut stored = store.get_order(&id).expect("read").expect("stored");
    let now = at(9, 5);
    stored.delivered = Some(DeliveredTo {
        destination: "east".into(),
        delivery_id: delivery_id.clone(),
        at: now,
    });
    for p in &mut stored.parts {
        p.delivered_at = Some(now);
    }
    let mut batch = WriteBatch::new(now);
    batch.complete.push(item);
    batch.orders.push(OrderWrite::Local {
        expected_revision: stored.revision,
        order: stored,
        kind: "delivered".into(),
        detail: format!("delivered to east (delivery {delivery_id})"),
        outbox: vec![],
    });
    store.count_writes();
    let before = store.tally();
    store.apply(batch).expect("noted");
    let written = store.tally().since(&before);
    for (tree, t) in written.trees() {
        let keys = t.inserts + t.removes;
        match tree {
            "order_postings" | "reservations" => assert_eq!(keys, 0, "{tree}: {t:?}"),
            // The outbox's pending count only: no reserved total.
            "counts" => assert_eq!(keys, 1, "{tree}: {t:?}"),
            _ => {}
        }
    }
    assert!(written.keys_written() > 0, "the write was tallied");
    assert_eq!(store.reservations("MUG-RED").expect("read"), reserved);
    assert_eq!(store.reserved_units("MUG-RED").expect("read"), 3);
}
