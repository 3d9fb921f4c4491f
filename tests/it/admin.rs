//! The admin API (`/api/v1`, `docs/http-api.md`) of a daemon started with `daemon::run`
//! against the channel simulator, and the command line over it: the token
//! (401 without it or with a wrong one, 403 when none is configured), each
//! route's answer and its refusal of bad input, and the same stdout from the
//! state commands whether the daemon runs (they go through the API) or not
//! (they open the store).

use crate::common::{self, eventually};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::{
    ConfigBuilder, InProcess, REPO, ShopifyAccount, command, stderr, stdout, warehouses,
};
use serde_json::{Value, json};
use switchyard::sim::{DestinationSink, Simulator};

const TOKEN: &str = "admin-token-for-tests-0123456789";

/// A free loopback port: the CLI reads the daemon's address from the config,
/// so the config must name the port before the daemon binds it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Setup {
    dir: tempfile::TempDir,
    sim: Simulator,
    sink: DestinationSink,
    port: u16,
}

impl Setup {
    async fn new() -> Setup {
        let sim = Simulator::start(&Path::new(REPO).join("fixtures"))
            .await
            .unwrap();
        let secrets = BTreeMap::from([
            ("east-wh".to_owned(), b"test-secret-east".to_vec()),
            ("west-3pl".to_owned(), b"test-secret-west".to_vec()),
        ]);
        let sink = DestinationSink::start(secrets).await.unwrap();
        Setup {
            dir: tempfile::tempdir().unwrap(),
            sim,
            sink,
            port: free_port(),
        }
    }

    /// Writes a config named `name`; `token` None leaves the admin token out.
    /// West deliveries go to a path the sink does not know: they become dead
    /// letters, so the outbox has something to show and retry.
    fn config(&self, name: &str, token: Option<&str>, port: u16) -> PathBuf {
        let config = ConfigBuilder::new(self.dir.path())
            .file_name(name)
            .listen(&format!("127.0.0.1:{port}"))
            .rules(&self.rules())
            .shutdown_timeout("5s")
            .account(
                ShopifyAccount::new(
                    "shop-us",
                    &self.sim.base_url(switchyard_contract::Channel::Shopify),
                )
                .webhook_secret("test-webhook-secret"),
            )
            .destinations(warehouses(
                &self.sink.url("east-wh"),
                &self.sink.url("nowhere"),
            ));
        match token {
            Some(token) => config.admin_token(token),
            None => config,
        }
        .write()
    }

    /// The example rules, with west orders (none in the fixtures) and
    /// express ones sent west, so that something ends up dead.
    fn rules(&self) -> PathBuf {
        let path = self.dir.path().join("rules.toml");
        if !path.exists() {
            let example = std::fs::read_to_string(Path::new(REPO).join("config/rules.toml"))
                .unwrap()
                .replace(
                    "default_route = \"east-wh\"",
                    "default_route = \"west-3pl\"",
                );
            std::fs::write(&path, example).unwrap();
        }
        path
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    async fn cli(&self, config: &Path, args: &[&str]) -> std::process::Output {
        let mut cli = command();
        cli.arg("--config").arg(config).args(args);
        tokio::process::Command::from(cli)
            .output()
            .await
            .expect("run the switchyard binary")
    }
}

struct Daemon {
    daemon: InProcess,
    http: reqwest::Client,
}

impl Daemon {
    async fn start(config_path: &Path) -> Daemon {
        let daemon = InProcess::start(config_path).await;
        daemon.synced(&["shop-us"]).await;
        Daemon {
            daemon,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the daemon and waits until its last handle let go of the
    /// store (its tasks may hold one a moment after `run` returns), so the
    /// CLI meets the store as a stopped daemon leaves it.
    async fn stop(self, state: &Path) {
        let (_report, store) = self.daemon.stop().await;
        store.close().unwrap();
        common::reopen(state).close().unwrap();
    }

    fn url(&self, path: &str) -> String {
        self.daemon.url(&format!("/api/v1{path}"))
    }

    /// A request with the right token; answers (status, JSON body).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, body).await
    }

    /// Posts raw bytes (bad JSON) with the right token.
    async fn send_raw(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        answer(
            self.http
                .request(method, self.url(path))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    /// Waits until no outbox item is pending: everything was sent or is dead.
    async fn settle_outbox(&self) {
        eventually(
            "the outbox to settle",
            Duration::from_secs(30),
            async || {
                let (status, pending) = self.get("/outbox").await;
                assert_eq!(status, 200, "{pending}");
                if pending.as_array().unwrap().is_empty() {
                    Ok(())
                } else {
                    Err(format!("{pending:#}"))
                }
            },
        )
        .await;
    }
}

async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text:?}"));
    (status, body)
}

fn error_of(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {v}"))
}

/// The first stored order that is not on hold and has a line with a SKU.
async fn open_order(d: &Daemon) -> (String, String) {
    let (_, orders) = d.get("/orders?held=false&status=ready").await;
    orders
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| {
            let sku = o["lines"]
                .as_array()?
                .iter()
                .find_map(|l| l["sku"].as_str())?;
            Some((o["id"].as_str()?.to_owned(), sku.to_owned()))
        })
        .expect("the demo fixtures have a ready order with a SKU")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_on_every_route_and_compared_exactly() {
    let s = Setup::new().await;
    let config = s.config("switchyard.toml", Some(TOKEN), s.port);
    let d = Daemon::start(&config).await;
    let routes = [
        ("GET", "/orders"),
        ("GET", "/orders/shop-us:1"),
        ("GET", "/orders/shop-us:1/raw"),
        ("POST", "/orders/shop-us:1/hold"),
        ("POST", "/orders/shop-us:1/release"),
        ("POST", "/orders/shop-us:1/tags"),
        ("POST", "/shipments"),
        ("PUT", "/stock"),
        ("GET", "/stock/MUG-RED"),
        ("GET", "/outbox"),
        ("POST", "/outbox/retry-dead"),
        ("POST", "/outbox/00000000000000000001/retry"),
        ("DELETE", "/outbox/00000000000000000001"),
        ("POST", "/rules/explain"),
        ("POST", "/rules/apply"),
        ("GET", "/no-such-route"),
    ];
    for (method, path) in routes {
        let method: reqwest::Method = method.parse().unwrap();
        let wrong_tokens = [
            None,
            Some("Bearer wrong-token"),
            Some("Bearer admin-token-for-tests-012345678"),
            Some("Bearer admin-token-for-tests-01234567890"),
            Some("Basic admin-token-for-tests-0123456789"),
            Some("Bearer "),
            Some(TOKEN),
        ];
        for auth in wrong_tokens {
            let mut req = d.http.request(method.clone(), d.url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {auth:?}");
            assert_eq!(
                r.headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer realm=\"switchyard admin\"")
            );
            let body: Value = r.json().await.unwrap();
            assert!(error_of(&body).contains("admin token"), "{body}");
            assert!(!body.to_string().contains(TOKEN));
        }
    }
    // The right token, in any case of the scheme: 200 on the reads.
    for path in ["/orders", "/outbox", "/outbox?dead=true", "/orders?limit=1"] {
        let (status, body) = d.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.is_array(), "{path}: {body}");
    }
    let r = d
        .http
        .get(d.url("/orders"))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (id, _) = open_order(&d).await;
    let (status, shown) = d.get(&format!("/orders/{id}")).await;
    assert_eq!(status, 200, "{shown}");
    assert!(shown["history"].is_array(), "{shown}");
    // Authorized, but no such route: a JSON 404, and a JSON 405.
    let (status, body) = d.get("/no-such-route").await;
    assert_eq!(status, 404);
    assert!(error_of(&body).contains("no admin route GET /api/v1/no-such-route"));
    let (status, body) = d.call(reqwest::Method::DELETE, "/orders", None).await;
    assert_eq!(status, 405, "{body}");
    d.stop(&s.state()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_admin_api_is_off() {
    let s = Setup::new().await;
    let config = s.config("switchyard.toml", None, s.port);
    let d = Daemon::start(&config).await;
    for auth in [None, Some("Bearer anything")] {
        let mut req = d.http.get(d.url("/orders"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let (status, body) = answer(req).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            error_of(&body).contains("daemon.admin_token is not set"),
            "{body}"
        );
    }
    // The CLI with the same config says what to set.
    let o = s.cli(&config, &["orders", "list"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("in use by another process"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("daemon.admin_token is not set"),
        "{}",
        stderr(&o)
    );
    d.stop(&s.state()).await;
}

/// A page of a listing route (200) and the next page's cursor, if any.
async fn page_of(d: &Daemon, path: &str) -> (Value, Option<String>) {
    let resp = d
        .http
        .get(d.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let next = resp
        .headers()
        .get("x-next-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.json().await.unwrap(), next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_routes_answer_and_refuse_bad_input() {
    let s = Setup::new().await;
    let config = s.config("switchyard.toml", Some(TOKEN), s.port);
    let d = Daemon::start(&config).await;

    let (status, all) = d.get("/orders").await;
    assert_eq!(status, 200);
    let all = all.as_array().unwrap().clone();
    assert!(all.len() >= 2, "{all:?}");
    let (_, one) = d.get("/orders?limit=1").await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0], all[0], "newest first");
    // Page by page, following X-Next-After: every order once, newest
    // first; with oldest=true the other way round.
    let ids = |v: &[Value]| v.iter().map(|o| o["id"].clone()).collect::<Vec<_>>();
    for (oldest, want) in [
        ("false", ids(&all)),
        ("true", {
            let mut r = ids(&all);
            r.reverse();
            r
        }),
    ] {
        let mut seen = Vec::new();
        let mut path = format!("/orders?limit=1&oldest={oldest}");
        loop {
            let (page, next) = page_of(&d, &path).await;
            seen.extend(ids(page.as_array().unwrap()));
            match next {
                Some(c) => path = format!("/orders?limit=1&oldest={oldest}&after={c}"),
                None => break,
            }
        }
        assert_eq!(seen, want, "oldest={oldest}");
    }
    let (status, shopify) = d.get("/orders?channel=shopify&account=shop-us").await;
    assert_eq!(
        (status, shopify.as_array().unwrap().len()),
        (200, all.len())
    );
    let (_, unrouted) = d.get("/orders?route=none").await;
    for o in unrouted.as_array().unwrap() {
        assert!(o["route"].is_null(), "{o}");
    }
    let (_, held) = d.get("/orders?held=true").await;
    for o in held.as_array().unwrap() {
        assert!(!o["hold"].is_null(), "{o}");
    }
    for (query, says) in [
        ("channel=myspace", "channel"),
        ("status=lost", "status"),
        (
            "limit=lots",
            "limit: \"lots\" is not a number of orders per page; expected 1 to 1000",
        ),
        ("limit=0", "limit: \"0\" is not a number of orders"),
        ("limit=-1", "limit: \"-1\" is not a number of orders"),
        ("after=not%20a%20cursor", "cursor"),
        ("colour=red", "query string: colour: unknown field `colour`"),
    ] {
        let (status, body) = d.get(&format!("/orders?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(error_of(&body).contains(says), "{query}: {body}");
        assert!(
            !error_of(&body).starts_with(char::is_uppercase),
            "error text is lowercase: {body}"
        );
    }
    let (status, body) = d.get("/orders/shop-us:no-such-order").await;
    assert_eq!(status, 404);
    assert!(
        error_of(&body).contains("no order \"shop-us:no-such-order\""),
        "{body}"
    );

    // Hold and release, each flushed and in the history.
    let (id, _) = open_order(&d).await;
    let (status, held) = d
        .post(
            &format!("/orders/{id}/hold"),
            Some(json!({ "reason": "address check" })),
        )
        .await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["hold"], "address check");
    let (_, shown) = d.get(&format!("/orders/{id}")).await;
    assert_eq!(shown["hold"], "address check");
    // (The order was delivered: the hold notice may be noted after it.)
    assert!(
        shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "hold"),
        "{shown}"
    );
    for (body, says) in [
        ("", "the body is empty"),
        ("{\"reason\": ", "hold: EOF"),
        ("{}", "missing field `reason`"),
        ("{\"reason\": \"x\", \"by\": \"me\"}", "unknown field `by`"),
        ("{\"reason\": \"  \"}", "needs a reason"),
    ] {
        let (status, answer) = d
            .send_raw(reqwest::Method::POST, &format!("/orders/{id}/hold"), body)
            .await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert!(error_of(&answer).contains(says), "{body:?}: {answer}");
    }
    let (status, body) = d
        .post("/orders/shop-us:nope/hold", Some(json!({ "reason": "x" })))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, released) = d.post(&format!("/orders/{id}/release"), None).await;
    assert_eq!(status, 200, "{released}");
    assert!(released["hold"].is_null());
    let (status, body) = d.post(&format!("/orders/{id}/release"), None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_of(&body), format!("order {id} is not on hold"));

    // Too large a body: 413, whatever the route.
    let big = "x".repeat(1024 * 1024 + 1);
    let (status, body) = d
        .send_raw(reqwest::Method::POST, &format!("/orders/{id}/hold"), &big)
        .await;
    assert_eq!(status, 413, "{body}");
    d.stop(&s.state()).await;
}

/// Tags set by hand through the API and through the command line while the
/// daemon runs: the rules run again (the example rules hold an order tagged
/// `test`), the tag is listed, bad input and unknown orders are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_set_by_hand_through_the_api_run_the_rules_for_the_order() {
    let s = Setup::new().await;
    let config = s.config("switchyard.toml", Some(TOKEN), s.port);
    let d = Daemon::start(&config).await;
    let (id, _) = open_order(&d).await;
    let path = format!("/orders/{id}/tags");

    let (status, doc) = d.post(&path, Some(json!({ "add": ["test"] }))).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["hold"], "test order: do not ship");
    assert_eq!(doc["hold_by"], "rule:test-orders");
    assert_eq!(doc["tagging"]["added"], json!(["test"]));
    assert_eq!(doc["manual_tags"], json!(["test"]));
    assert_eq!(
        doc["tagging"]["rules"]["after"]["hold"],
        "test order: do not ship"
    );
    // The order as GET /orders/{id} answers it, with `tagging` beside.
    let (_, shown) = d.get(&format!("/orders/{id}")).await;
    let mut order = doc.clone();
    order.as_object_mut().unwrap().remove("tagging");
    assert_eq!(order, shown);
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["kind"], "tags");

    // The command line goes through the API while the daemon runs.
    let o = s
        .cli(&config, &["orders", "list", "--tag", "TEST", "--json"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let o = s
        .cli(&config, &["orders", "tag", &id, "--remove", "test"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with(&format!("{id}: took off test (set by hand)\n"))
            && text.contains("; -tag test-order; ")
            && text.contains("; hold test order: do not ship -> none"),
        "{text}"
    );
    let o = s
        .cli(&config, &["orders", "tag", &id, "vip", "--json"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["manual_tags"], json!(["vip"]));
    assert!(doc["hold"].is_null(), "{doc}");
    let o = s.cli(&config, &["orders", "tag", &id, " "]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("tag \" \": empty tag"),
        "{}",
        stderr(&o)
    );

    for (body, want) in [
        (json!({ "add": [""] }), "tag \"\": empty tag"),
        (json!({}), "no tag to set or take off"),
        (
            json!({ "add": ["x"], "colour": "red" }),
            "unknown field `colour`",
        ),
        (json!({ "add": "x" }), "invalid type"),
    ] {
        let (status, answer) = d.post(&path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(error_of(&answer).contains(want), "{body}: {answer}");
    }
    let (status, answer) = d
        .post("/orders/shop-us:404/tags", Some(json!({ "add": ["x"] })))
        .await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        error_of(&answer).contains("no order \"shop-us:404\""),
        "{answer}"
    );
    let (_, after) = d.get(&format!("/orders/{id}")).await;
    assert_eq!(
        after["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| *t == "vip")
            .count(),
        1
    );
    assert_eq!(
        after["history"].as_array().unwrap().len(),
        history.len() + 2
    );
    d.stop(&s.state()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipments_stock_outbox_and_rules_routes() {
    let s = Setup::new().await;
    let config = s.config("switchyard.toml", Some(TOKEN), s.port);
    let d = Daemon::start(&config).await;
    let (id, sku) = open_order(&d).await;

    // Shipments: 202 once recorded; the same tracking number again changes nothing.
    let shipment =
        json!({ "order_id": id, "carrier": "ups", "tracking_number": "1Z999AA10123456784" });
    let (status, receipt) = d.post("/shipments", Some(shipment.clone())).await;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["recorded"], true);
    assert_eq!(receipt["status"], "shipped");
    assert_eq!(receipt["shipment"]["carrier"], "ups");
    let (status, again) = d.post("/shipments", Some(shipment)).await;
    assert_eq!(
        (status, &again["recorded"]),
        (202, &json!(false)),
        "{again}"
    );
    for (body, status_wanted, says) in [
        (
            json!({ "order_id": "shop-us:nope", "carrier": "ups", "tracking_number": "1" }),
            404,
            "no order",
        ),
        (
            json!({ "order_id": id, "carrier": "", "tracking_number": "2" }),
            400,
            "carrier is empty",
        ),
        (
            json!({ "order_id": id, "carrier": "ups" }),
            400,
            "missing field `tracking_number`",
        ),
        (
            json!({ "order_id": id, "carrier": "ups", "tracking_number": "3", "weight": 2 }),
            400,
            "unknown field `weight`",
        ),
        (
            json!({ "order_id": id, "carrier": "ups", "tracking_number": "4", "lines": [{ "sku": "NOPE", "quantity": 1 }] }),
            400,
            "has no line with sku NOPE",
        ),
        // More units than the order ever had is a bad request; units it
        // had but shipped already, or a whole order shipped already, are
        // the order's state: 409, whatever the request.
        (
            json!({ "order_id": id, "carrier": "ups", "tracking_number": "5", "lines": [{ "sku": sku, "quantity": 1_000_000 }] }),
            400,
            "only 0 left to ship",
        ),
        (
            json!({ "order_id": id, "carrier": "ups", "tracking_number": "6", "lines": [{ "sku": sku, "quantity": 1 }] }),
            409,
            "1 to ship but only 0 left to ship",
        ),
        (
            json!({ "order_id": id, "carrier": "ups", "tracking_number": "7" }),
            409,
            "is already fully shipped",
        ),
    ] {
        let (status, answer) = d.post("/shipments", Some(body.clone())).await;
        assert_eq!(status, status_wanted, "{body}: {answer}");
        assert!(error_of(&answer).contains(says), "{body}: {answer}");
    }

    // Stock: 202 once written; every problem of the input at once.
    let (status, receipt) = d
        .call(
            reqwest::Method::PUT,
            "/stock",
            Some(json!([{ "sku": sku, "available": 12 }])),
        )
        .await;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["skus"], 1);
    assert_eq!(receipt["accounts"], json!(["shop-us"]));
    let (status, level) = d.get(&format!("/stock/{sku}")).await;
    assert_eq!(status, 200, "{level}");
    assert_eq!(
        (level["sku"].as_str(), &level["available"]),
        (Some(sku.as_str()), &json!(12))
    );
    let (status, body) = d
        .call(
            reqwest::Method::PUT,
            "/stock",
            Some(json!([{ "sku": "A", "available": -1 }, { "sku": "A", "available": 2 }])),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("must not be negative"), "{body}");
    assert!(
        error_of(&body).contains("already given in entry 1"),
        "{body}"
    );
    let (status, body) = d
        .call(
            reqwest::Method::PUT,
            "/stock",
            Some(json!({ "sku": "A", "available": 1 })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = d.get("/stock/NO-SUCH-SKU").await;
    assert_eq!(status, 404, "{body}");
    assert!(error_of(&body).contains("no stock level for sku \"NO-SUCH-SKU\""));

    // Outbox: deliveries to the unknown west path are dead letters.
    d.settle_outbox().await;
    let (status, dead) = d.get("/outbox?dead=true").await;
    assert_eq!(status, 200);
    let dead = dead.as_array().unwrap().clone();
    assert!(
        !dead.is_empty(),
        "the west deliveries should be dead letters"
    );
    for item in &dead {
        assert_eq!(item["state"], "dead", "{item}");
        assert_eq!(item["account"], "destination:west-3pl", "{item}");
    }
    // A page at a time, following X-Next-After: the same dead letters, once
    // each, in queue order.
    let mut paged = Vec::new();
    let mut path = "/outbox?dead=true&limit=1".to_owned();
    loop {
        let (page, next) = page_of(&d, &path).await;
        assert_eq!(page.as_array().unwrap().len(), 1, "{page}");
        paged.push(page[0].clone());
        match next {
            Some(c) => {
                assert_eq!(page[0]["id"], json!(c), "the cursor is the last id shown");
                path = format!("/outbox?dead=true&limit=1&after={c}");
            }
            None => break,
        }
    }
    assert_eq!(paged, dead);
    for (query, says) in [
        ("limit=lots", "\"lots\""),
        ("limit=0", "\"0\""),
        (
            "after=not%20a%20cursor",
            "\"not a cursor\" is not a page cursor",
        ),
        ("dead=true&after=12", "\"12\" is not a page cursor"),
    ] {
        let (status, body) = d.get(&format!("/outbox?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(error_of(&body).contains(says), "{query}: {body}");
    }
    let first = dead[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = d.post(&format!("/outbox/{first}/retry"), None).await;
    assert_eq!((status, &body["retried"]), (200, &json!(1)), "{body}");
    d.settle_outbox().await;
    let (status, body) = d.post("/outbox/retry-dead", None).await;
    assert_eq!(
        (status, &body["retried"]),
        (200, &json!(dead.len())),
        "{body}"
    );
    d.settle_outbox().await;
    let (status, body) = d
        .call(reqwest::Method::DELETE, &format!("/outbox/{first}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, after) = d.get("/outbox?dead=true").await;
    assert_eq!(after.as_array().unwrap().len(), dead.len() - 1);
    for path in ["/outbox/00000000000000099999/retry"] {
        let (status, body) = d.post(path, None).await;
        assert_eq!(status, 404, "{body}");
        assert!(error_of(&body).contains("outbox item 00000000000000099999 not found"));
    }
    let (status, _) = d
        .call(
            reqwest::Method::DELETE,
            "/outbox/00000000000000099999",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = d.get("/outbox?dead=maybe").await;
    assert_eq!(status, 400, "{body}");

    // Rules: explain a stored order, or one given whole; apply (dry run).
    let (status, explained) = d
        .post("/rules/explain", Some(json!({ "order_id": id })))
        .await;
    assert_eq!(status, 200, "{explained}");
    assert_eq!(explained["order"], id.as_str());
    assert!(explained["rules"].as_array().unwrap().len() >= 10);
    for key in ["tags", "route", "hold", "priority"] {
        assert!(explained["result"].get(key).is_some(), "{explained}");
    }
    let (_, detail) = d
        .post(
            "/rules/explain?detail=true",
            Some(json!({ "order_id": id })),
        )
        .await;
    assert_eq!(detail["order"]["id"], id.as_str());
    assert!(detail["evaluation"]["trace"].is_array(), "{detail}");
    let given: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(REPO).join("tests/rules/orders/us-standard.json"))
            .unwrap(),
    )
    .unwrap();
    let (status, explained) = d.post("/rules/explain", Some(given.clone())).await;
    assert_eq!(status, 200, "{explained}");
    assert_eq!(explained["order"], given["id"]);
    for (body, status_wanted, says) in [
        (json!({ "order_id": 5 }), 400, "order_id must be a string"),
        (json!({ "order_id": "shop-us:nope" }), 404, "no order"),
        (json!([1, 2]), 400, "neither"),
        (json!({ "id": "x" }), 400, "neither"),
    ] {
        let (status, answer) = d.post("/rules/explain", Some(body.clone())).await;
        assert_eq!(status, status_wanted, "{body}: {answer}");
        assert!(error_of(&answer).contains(says), "{body}: {answer}");
    }
    let (status, changes) = d.post("/rules/apply?dry_run=true", None).await;
    assert_eq!(
        (status, changes),
        (200, json!([])),
        "nothing changed since ingest"
    );
    let (status, detail) = d.post("/rules/apply?detail=true", None).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["changes"], json!([]));
    assert!(detail["rules"].as_u64().unwrap() >= 10);
    let (status, body) = d.post("/rules/apply?dry_run=perhaps", None).await;
    assert_eq!(status, 400, "{body}");
    d.stop(&s.state()).await;
}

/// The commands compared: reads only, so running and stopped see one state.
fn reads(id: &str, sku: &str) -> Vec<Vec<String>> {
    let v = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["orders", "list"]),
        v(&["orders", "list", "--json"]),
        v(&["orders", "list", "--held"]),
        v(&["orders", "list", "--route", "none", "--json"]),
        v(&[
            "orders",
            "list",
            "--channel",
            "shopify",
            "--status",
            "ready",
            "--limit",
            "1",
        ]),
        v(&["orders", "show", id]),
        v(&["orders", "show", id, "--json"]),
        v(&["outbox", "list"]),
        v(&["outbox", "list", "--json"]),
        v(&["outbox", "list", "--dead"]),
        v(&["outbox", "list", "--dead", "--json"]),
        v(&["stock", "show", sku]),
        v(&["stock", "show", sku, "--json"]),
        v(&["rules", "explain", "--order", id]),
        v(&["rules", "explain", "--order", id, "--json"]),
        v(&["rules", "apply", "--dry-run"]),
        v(&["rules", "apply", "--dry-run", "--json"]),
        // Only what it would send; the order is held here, so a refusal.
        v(&["orders", "redeliver", id]),
        // Failures read the same too.
        v(&["orders", "show", "shop-us:no-such-order"]),
        v(&["stock", "show", "NO-SUCH-SKU"]),
        // The raw payload as stored, and an unknown order's refusal.
        v(&["orders", "show", id, "--raw"]),
        v(&["orders", "show", "shop-us:no-such-order", "--raw"]),
        // A page and the hint for the next one read the same too.
        v(&["outbox", "list", "--dead", "--limit", "1"]),
        v(&["outbox", "list", "--dead", "--limit", "1", "--json"]),
        v(&["outbox", "list", "--after", "not-a-cursor"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_same_with_the_daemon_running_or_stopped() {
    let s = Setup::new().await;
    let config = s.config("switchyard.toml", Some(TOKEN), s.port);
    let d = Daemon::start(&config).await;
    let (id, sku) = open_order(&d).await;

    // Writes through the API, as a user types them.
    let o = s.cli(&config, &["stock", "set", &sku, "7"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{sku}: on hand 7\n1 push queued for shop-us (sent by the daemon)\n")
    );
    let o = s
        .cli(
            &config,
            &["orders", "hold", &id, "--reason", "address check"],
        )
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    // The order was delivered already: the hold says where it went, and
    // the warehouse is sent a hold notice.
    let text = stdout(&o);
    assert!(
        text.starts_with(&format!(
            "{id}: on hold (address check)\n{id}: it was already delivered to east-wh at "
        )) && text.contains("a hold notice is queued for east-wh"),
        "{text}"
    );
    let o = s.cli(&config, &["orders", "release", &id]).await;
    assert_eq!(
        stdout(&o),
        format!("{id}: released; lifted the hold set by hand (address check)\n"),
        "{}",
        stderr(&o)
    );
    let o = s.cli(&config, &["orders", "release", &id]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("order {id} is not on hold\n"));
    let o = s
        .cli(
            &config,
            &[
                "ship",
                &id,
                "--carrier",
                "ups",
                "--tracking",
                "1Z999AA10123456784",
            ],
        )
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("{id}: shipment ups 1Z999AA10123456784 recorded (")),
        "{}",
        stdout(&o)
    );
    let o = s
        .cli(
            &config,
            &[
                "ship",
                &id,
                "--carrier",
                "ups",
                "--tracking",
                "1Z999AA10123456784",
            ],
        )
        .await;
    assert!(stdout(&o).contains("is already recorded"), "{}", stdout(&o));
    d.settle_outbox().await;
    let o = s.cli(&config, &["outbox", "retry", "--all-dead"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).ends_with(" dead letters queued again\n"),
        "{}",
        stdout(&o)
    );
    d.settle_outbox().await;

    // A wrong token or a wrong address: the CLI says which.
    let wrong = s.config("wrong-token.toml", Some("not-the-token"), s.port);
    let o = s.cli(&wrong, &["orders", "list"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("refused the admin token (401"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("not-the-token") && !stderr(&o).contains(TOKEN));
    let elsewhere = s.config("wrong-port.toml", Some(TOKEN), free_port());
    let o = s.cli(&elsewhere, &["orders", "list"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot be reached"), "{}", stderr(&o));
    assert!(stderr(&o).contains("daemon.listen"), "{}", stderr(&o));

    let mut running = Vec::new();
    for args in reads(&id, &sku) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        running.push(s.cli(&config, &args).await);
    }
    d.stop(&s.state()).await;
    for (args, with_daemon) in reads(&id, &sku).iter().zip(&running) {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let without = s.cli(&config, &argv).await;
        assert_eq!(
            (
                with_daemon.status.code(),
                stdout(with_daemon),
                stderr(with_daemon)
            ),
            (without.status.code(), stdout(&without), stderr(&without)),
            "`switchyard {}` differs with the daemon running (left) and stopped (right)",
            args.join(" ")
        );
    }
    // The comparison means something: the state is not empty.
    let shown = &running[6];
    assert!(shown.status.success(), "{}", stderr(shown));
    let doc: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(doc["status"], "shipped");
    let dead: Value = serde_json::from_slice(&running[10].stdout).unwrap();
    assert!(dead.as_array().unwrap().len() > 1, "{dead}");
    let page = stdout(&running[running.len() - 3]);
    assert!(
        page.contains("more items may match: switchyard outbox list --dead --limit 1 --after "),
        "{page}"
    );
    let level: Value = serde_json::from_slice(&running[12].stdout).unwrap();
    // 7 on hand, of which the open order had 2 promised; it has shipped since.
    assert_eq!(
        (level["on_hand"].clone(), level["available"].clone()),
        (5.into(), 5.into())
    );
    s.sim.stop().await;
    s.sink.stop().await;
}

/// `orders show --raw`: the payload kept for audit, as stored, through the
/// admin API while the daemon runs and from the store when it is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_show_raw_prints_the_payload_as_stored_running_or_stopped() {
    let s = Setup::new().await;
    let config = s.config("switchyard.toml", Some(TOKEN), s.port);
    let d = Daemon::start(&config).await;
    let (polled, _) = open_order(&d).await;

    // A body as Shopify may send it: its own spacing and key order, and in
    // fields no order reads a number past f64's range and a lone surrogate,
    // which a JSON tree cannot hold.
    let fixture = std::fs::read_to_string(
        Path::new(REPO).join("fixtures/shopify/webhooks-orders/webhooks/01-orders-create.json"),
    )
    .unwrap();
    let body = fixture
        .replacen(
            r#"{"id": 5551234567,"#,
            "{\n  \"id\":   7770001 , \"audit_big\": 1e400, \"audit_odd\": \"café \\ud800\",",
            1,
        )
        .replace(
            "gid://shopify/Order/5551234567",
            "gid://shopify/Order/7770001",
        )
        + "\n";
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "a tree cannot hold it"
    );
    let headers = common::daemon::shopify_signed(
        body.as_bytes(),
        "test-webhook-secret",
        [
            ("content-type", "application/json"),
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-webhook-id", "wh-7770001"),
        ],
    );
    let (status, answer) = common::daemon::post(
        &d.http,
        &d.daemon.url("/webhooks/shop-us"),
        &headers,
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("1 new"), "{answer}");
    let id = "shop-us:7770001";

    // The admin API: the stored text, as JSON, not wrapped.
    let r = d
        .http
        .get(d.url(&format!("/orders/{id}/raw")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.bytes().await.unwrap(), body.as_bytes());
    let (status, answer) = d.get("/orders/shop-us:no-such-order/raw").await;
    assert_eq!(status, 404);
    assert!(
        error_of(&answer).starts_with("no order \"shop-us:no-such-order\""),
        "{answer}"
    );

    let show = |id: &str| {
        let id = id.to_owned();
        let config = config.clone();
        let s = &s;
        async move { s.cli(&config, &["orders", "show", &id, "--raw"]).await }
    };
    let running = show(id).await;
    assert!(running.status.success(), "{}", stderr(&running));
    assert_eq!(running.stdout, body.as_bytes(), "byte for byte");
    // A polled payload, stored parsed: the JSON it was written as.
    let polled_running = show(&polled).await;
    assert!(
        polled_running.status.success(),
        "{}",
        stderr(&polled_running)
    );
    let doc: Value = serde_json::from_slice(&polled_running.stdout).unwrap();
    assert!(doc.is_object(), "{doc}");
    let unknown_running = show("shop-us:no-such-order").await;
    d.stop(&s.state()).await;

    let stopped = show(id).await;
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert_eq!(stopped.stdout, body.as_bytes(), "byte for byte");
    assert_eq!(show(&polled).await.stdout, polled_running.stdout);
    // An unknown id: the error `orders show` gives, either way.
    let unknown = show("shop-us:no-such-order").await;
    let plain = s
        .cli(&config, &["orders", "show", "shop-us:no-such-order"])
        .await;
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(stderr(&unknown), stderr(&plain));
    assert_eq!(stderr(&unknown_running), stderr(&plain));
    assert!(unknown.stdout.is_empty() && unknown_running.stdout.is_empty());

    // An order made here, never sent by a channel, has no payload.
    let store = common::reopen(&s.state());
    let mut local = store.get_order(id).unwrap().unwrap();
    local.order.id = "shop-us:made-here".into();
    local.order.channel_order_id = "made-here".into();
    let mut batch = switchyard::store::WriteBatch::new(chrono::Utc::now());
    batch.orders.push(switchyard::store::OrderWrite::Local {
        order: local,
        expected_revision: 0,
        kind: "created".into(),
        detail: "by hand".into(),
        outbox: vec![],
    });
    store.apply(batch).unwrap();
    store.close().unwrap();
    let none = show("shop-us:made-here").await;
    assert_eq!(none.status.code(), Some(1));
    assert!(none.stdout.is_empty());
    assert_eq!(
        stderr(&none),
        "order shop-us:made-here has no raw payload: nothing a channel sent is kept for it \
         (an order made in switchyard has none); `switchyard orders show shop-us:made-here` \
         shows the order\n"
    );
    let shown = s
        .cli(&config, &["orders", "show", "shop-us:made-here"])
        .await;
    assert!(shown.status.success(), "{}", stderr(&shown));
}
