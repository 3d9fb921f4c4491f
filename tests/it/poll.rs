//! The poll cursor as `poll::catch_up` moves it: a backfill asked for with
//! `--since` must never carry the account's stored position past orders it
//! did not read.

use crate::common;

use std::collections::BTreeMap;

use common::*;
use switchyard::channels::poll::{CatchUp, catch_up};
use switchyard::ingest::{Ingest, LiveRules};
use switchyard::store::{Store, StoreOptions};
use switchyard_contract::Cursor;
use switchyard_contract::testkit::{Exchange, ReplayServer};

fn get(cursor: &str, body: Vec<u8>) -> Exchange {
    Exchange {
        method: "GET".into(),
        path: "/orders".into(),
        query: BTreeMap::from([("cursor".to_string(), cursor.to_string())]),
        body_contains: vec![],
        status: 200,
        headers: BTreeMap::from([("content-type".to_string(), "application/json".to_string())]),
        response: body,
    }
}

/// The account polled up to `c-old` (say 09:00), then stopped polling (a
/// revoked token, a long outage). `sync --since 12:00` re-reads from noon.
/// Orders changed between 09:00 and 12:00 were read by neither: the next
/// poll must start from `c-old`, not from where the backfill ended.
#[tokio::test]
async fn a_backfill_from_a_later_time_does_not_move_the_stored_cursor_past_unread_orders() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let acct_since = at(0, 0);
    let early = order(1, at(8, 0), "10.00");
    let server = ReplayServer::from_exchanges(
        vec![get(
            &acct_since.to_rfc3339(),
            page(std::slice::from_ref(&early), "c-old", false),
        )],
        true,
    )
    .await;
    let connector = connected(PageConnector::new(&server.url()), account(&server.url()));
    catch_up(
        &connector,
        &ingest,
        CatchUp::since(Some(acct_since)),
        |_| {},
    )
    .await
    .unwrap();
    server.finish().await;
    assert_eq!(store.cursor(ACCOUNT).unwrap(), Some(Cursor("c-old".into())));

    // The backfill from noon reads only what changed since noon.
    let noon = at(12, 0);
    let late = order(3, at(12, 30), "30.00");
    let server = ReplayServer::from_exchanges(
        vec![get(
            &noon.to_rfc3339(),
            page(std::slice::from_ref(&late), "c-noon", false),
        )],
        true,
    )
    .await;
    let connector = connected(PageConnector::new(&server.url()), account(&server.url()));
    let stats = catch_up(&connector, &ingest, CatchUp::since(Some(noon)), |_| {})
        .await
        .unwrap();
    server.finish().await;
    assert_eq!(stats.created, 1);

    // The next regular poll must still cover 09:00–12:00 (order 2, changed at
    // 10:00, was read by nobody so far).
    let missed = order(2, at(10, 0), "20.00");
    let server = ReplayServer::from_exchanges(
        vec![get(
            "c-old",
            page(&[missed.clone(), late.clone()], "c-new", false),
        )],
        true,
    )
    .await;
    let connector = connected(PageConnector::new(&server.url()), account(&server.url()));
    catch_up(&connector, &ingest, CatchUp::since(None), |_| {})
        .await
        .unwrap();
    server.finish().await;
    assert!(
        store.get_order(&missed.id).unwrap().is_some(),
        "the order changed between the old cursor and --since was never read"
    );
    assert_eq!(store.cursor(ACCOUNT).unwrap(), Some(Cursor("c-new".into())));
}

/// A long Amazon backfill through the daemon's own pacer, on tokio's paused
/// clock: `searchOrders` publishes 0.0056 requests a second with a burst of
/// 20, and every page waits for it. The catch-up reads every page, never
/// faster than that, and tells its progress when the next call is allowed
/// (what `switchyard sync` prints).
#[tokio::test(start_paused = true)]
async fn an_amazon_backfill_keeps_to_the_published_rate_and_says_when_the_next_call_goes() {
    use std::sync::{Arc, Mutex};
    use switchyard::channels::accounts::Connected;
    use switchyard::pacing::{AccountPacer, PacerOptions};
    use switchyard_contract::testkit::{HttpRequest, HttpResponse, LoopbackServer};
    use switchyard_contract::tokens::MemoryTokenStore;
    use switchyard_contract::{AccountSettings, BuildContext, Channel, Operation};

    const PAGES: usize = 40;
    let asked: Arc<Mutex<Vec<tokio::time::Instant>>> = Arc::default();
    let times = asked.clone();
    let server = LoopbackServer::start(Arc::new(move |req: HttpRequest| {
        if req.path == "/auth/o2/token" {
            return HttpResponse::json(
                200,
                &serde_json::json!({"access_token": "Atza|test", "expires_in": 3600}),
            );
        }
        times.lock().unwrap().push(tokio::time::Instant::now());
        let page: usize = req
            .query_param("paginationToken")
            .map_or(1, |t| t.trim_start_matches('p').parse().unwrap());
        let mut body = serde_json::json!({"orders": [{
            "orderId": format!("111-{page:07}-0000001"),
            "createdTime": "2026-11-27T01:00:00Z",
            "lastUpdatedTime": "2026-11-27T02:00:00Z",
            "salesChannel": {"channelName": "AMAZON", "marketplaceId": "ATVPDKIKX0DER"},
            "proceeds": {"grandTotal": {"amount": "10.00", "currencyCode": "USD"}},
            "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
            "orderItems": []
        }]});
        if page < PAGES {
            body["pagination"] = serde_json::json!({"nextToken": format!("p{}", page + 1)});
        }
        HttpResponse::json(200, &body).with_header("x-amzn-RateLimit-Limit", "0.0056")
    }))
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ingest = Ingest::new(store.clone(), LiveRules::default());
    let settings = switchyard_amazon::fixture_settings();
    let mut account = account(&server.url());
    account.channel = Channel::Amazon;
    account.settings = Some(Arc::new(settings.clone()));
    let pacer = AccountPacer::new(&account.id, PacerOptions::default());
    let connector = settings
        .build(BuildContext {
            account: account.id.clone(),
            base_url: server.url(),
            http: reqwest::Client::new(),
            tokens: MemoryTokenStore::shared(),
            pacer: pacer.clone(),
        })
        .unwrap();
    pacer.follow(&connector);
    let published = connector.rate_limit(Operation::Poll);
    assert_eq!((published.per_second, published.burst), (0.0056, 20));
    let connected = Connected {
        hints: connector.hints(),
        account,
        connector,
        pacer,
    };

    let mut progress = Vec::new();
    let since = chrono::Utc::now() - chrono::Duration::hours(12);
    let stats = catch_up(&connected, &ingest, CatchUp::since(Some(since)), |s| {
        progress.push(s.clone())
    })
    .await
    .unwrap();
    assert_eq!(stats.pages, PAGES);
    assert_eq!(stats.created, PAGES, "every order stored");

    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), PAGES, "each page asked for once");
    for i in 0..asked.len() {
        for j in i..asked.len() {
            let elapsed = (asked[j] - asked[i]).as_secs_f64();
            let allowed = f64::from(published.burst) + elapsed * published.per_second;
            assert!(
                (j - i + 1) as f64 <= allowed + 1e-6,
                "pages {i}..={j} were asked for within {elapsed:.0} s: faster than Amazon allows"
            );
        }
    }
    // The pacer keeps half the burst and a tenth of the rate in hand: ten
    // pages at once, then one every 1 / (0.9 × 0.0056) ≈ 198 s.
    let took = (asked[PAGES - 1] - asked[0]).as_secs_f64();
    let expected = (PAGES - 10) as f64 / (0.9 * 0.0056);
    assert!(
        (took - expected).abs() < expected * 0.05,
        "took {took:.0} s, expected about {expected:.0} s"
    );
    // The progress said when the next call would go, each time it had to wait.
    let waits: Vec<_> = progress.iter().filter_map(|s| s.waiting_until).collect();
    assert_eq!(waits.len(), PAGES - 10, "{progress:?}");
}
