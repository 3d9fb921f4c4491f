//! A loopback HTTP server for tests and the simulator. `LoopbackServer` runs
//! any handler on 127.0.0.1 at a free port and stops when dropped;
//! `ReplayServer` serves a scenario's recorded exchanges, each exactly once,
//! and fails the test on an unexpected request or an expected one never made.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::sync::oneshot;

use super::fixture::{Exchange, Scenario};

/// The largest request body the loopback server reads.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// A request as the test kit sees it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body's `application/x-www-form-urlencoded` fields, decoded, in order.
    pub fn body_form(&self) -> Vec<(String, String)> {
        super::openapi::parse_form(&self.body)
    }
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).expect("JSON values always serialize"),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }
}

pub type Handler = Arc<dyn Fn(HttpRequest) -> HttpResponse + Send + Sync>;

/// Serves `handler` on 127.0.0.1 at a free port until stopped or dropped.
pub struct LoopbackServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LoopbackServer {
    pub async fn start(handler: Handler) -> std::io::Result<LoopbackServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = axum::Router::new().fallback(move |req: Request| {
            let handler = handler.clone();
            async move { serve_one(handler, req).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(LoopbackServer {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets open requests finish, and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve_one(handler: Handler, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b.to_vec(),
        Err(e) => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, format!("body: {e}"));
        }
    };
    let query = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = HttpRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query,
        headers,
        body,
    };
    // The handler is plain synchronous code (fixture lookups); run it inline.
    let resp = handler(request);
    let mut out = Response::new(Body::from(resp.body));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            out.headers_mut().append(k, v);
        }
    }
    out
}

fn plain(status: StatusCode, text: String) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r
}

struct ReplayState {
    exchanges: Vec<Exchange>,
    used: Vec<bool>,
    ordered: bool,
    problems: Vec<String>,
    requests: Vec<HttpRequest>,
}

impl ReplayState {
    fn answer(&mut self, req: HttpRequest) -> HttpResponse {
        let candidate = if self.ordered {
            self.used.iter().position(|u| !u).filter(|&i| {
                self.exchanges[i].matches(&req.method, &req.path, &req.query, &req.body)
            })
        } else {
            (0..self.exchanges.len()).find(|&i| {
                !self.used[i]
                    && self.exchanges[i].matches(&req.method, &req.path, &req.query, &req.body)
            })
        };
        let resp = match candidate {
            Some(i) => {
                self.used[i] = true;
                let e = &self.exchanges[i];
                HttpResponse {
                    status: e.status,
                    headers: e
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    body: e.response.clone(),
                }
            }
            None => {
                let next = self
                    .used
                    .iter()
                    .position(|u| !u)
                    .map(|i| self.exchanges[i].describe())
                    .unwrap_or_else(|| "nothing more".into());
                let body = String::from_utf8_lossy(&req.body);
                let excerpt: String = body.chars().take(300).collect();
                self.problems.push(format!(
                    "unexpected request {} {} query {:?} body {excerpt:?} (expected next: {next})",
                    req.method, req.path, req.query
                ));
                HttpResponse::new(500, "replay server: unexpected request")
            }
        };
        self.requests.push(req);
        resp
    }
}

/// Serves one scenario's recorded exchanges; see the module doc.
pub struct ReplayServer {
    server: Option<LoopbackServer>,
    state: Arc<Mutex<ReplayState>>,
    finished: bool,
}

impl ReplayServer {
    pub async fn start(scenario: &Scenario) -> ReplayServer {
        ReplayServer::from_exchanges(scenario.exchanges.clone(), scenario.ordered).await
    }

    pub async fn from_exchanges(exchanges: Vec<Exchange>, ordered: bool) -> ReplayServer {
        let state = Arc::new(Mutex::new(ReplayState {
            used: vec![false; exchanges.len()],
            exchanges,
            ordered,
            problems: Vec::new(),
            requests: Vec::new(),
        }));
        let s = state.clone();
        let server = LoopbackServer::start(Arc::new(move |req| {
            s.lock().expect("replay state lock").answer(req)
        }))
        .await
        .expect("bind the replay server to 127.0.0.1");
        ReplayServer {
            server: Some(server),
            state,
            finished: false,
        }
    }

    pub fn url(&self) -> String {
        self.server.as_ref().map(|s| s.url()).unwrap_or_default()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.state
            .lock()
            .expect("replay state lock")
            .requests
            .clone()
    }

    /// What is wrong so far: unexpected requests and expected ones never made.
    pub fn problems(&self) -> Vec<String> {
        let st = self.state.lock().expect("replay state lock");
        let mut p = st.problems.clone();
        for (i, used) in st.used.iter().enumerate() {
            if !used {
                p.push(format!(
                    "expected request never made: {}",
                    st.exchanges[i].describe()
                ));
            }
        }
        p
    }

    /// Stops the server and panics if anything was unexpected or missing;
    /// returns every request received, for golden comparison.
    pub async fn finish(mut self) -> Vec<HttpRequest> {
        self.finished = true;
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        let problems = self.problems();
        assert!(
            problems.is_empty(),
            "replay failed:\n  {}",
            problems.join("\n  ")
        );
        self.requests()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        if !self.finished && !std::thread::panicking() {
            let problems = self.problems();
            if !problems.is_empty() {
                panic!(
                    "replay server dropped with problems:\n  {}",
                    problems.join("\n  ")
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn exchange(path: &str, body: &str) -> Exchange {
        Exchange {
            method: "GET".into(),
            path: path.into(),
            query: BTreeMap::new(),
            body_contains: vec![],
            status: 200,
            headers: BTreeMap::from([("x-page".to_string(), path.to_string())]),
            response: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn form_bodies_are_read_decoded_and_in_order() {
        let req = HttpRequest {
            method: "POST".into(),
            path: "/t".into(),
            query: vec![],
            headers: vec![],
            body: b"tracking_code=1Z%20A&carrier_name=royal-mail&note=a+b".to_vec(),
        };
        assert_eq!(
            req.body_form(),
            [
                ("tracking_code".to_string(), "1Z A".to_string()),
                ("carrier_name".into(), "royal-mail".into()),
                ("note".into(), "a b".into()),
            ]
        );
    }

    #[tokio::test]
    async fn serves_recorded_responses_in_order_and_records_requests() {
        let server = ReplayServer::from_exchanges(
            vec![exchange("/a", "first"), exchange("/b", "second")],
            true,
        )
        .await;
        let client = reqwest::Client::new();
        let r = client
            .get(format!("{}/a?x=1", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-page"], "/a");
        assert_eq!(r.text().await.unwrap(), "first");
        let r = client
            .get(format!("{}/b", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "second");
        let reqs = server.finish().await;
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].query_param("x"), Some("1"));
    }

    #[tokio::test]
    async fn an_unexpected_request_fails_the_replay() {
        let server = ReplayServer::from_exchanges(vec![exchange("/a", "first")], true).await;
        let client = reqwest::Client::new();
        let r = client
            .get(format!("{}/zzz", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
        client
            .get(format!("{}/a", server.url()))
            .send()
            .await
            .unwrap();
        let problems = server.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("unexpected request GET /zzz"),
            "{problems:?}"
        );
        let outcome = tokio::spawn(server.finish()).await;
        assert!(outcome.is_err(), "finish must fail the test");
    }

    #[tokio::test]
    async fn an_expected_request_never_made_fails_the_replay() {
        let server = ReplayServer::from_exchanges(
            vec![exchange("/a", "first"), exchange("/b", "second")],
            true,
        )
        .await;
        reqwest::get(format!("{}/a", server.url())).await.unwrap();
        let problems = server.problems();
        assert_eq!(
            problems,
            vec!["expected request never made: GET /b".to_string()]
        );
        let outcome = tokio::spawn(server.finish()).await;
        assert!(outcome.is_err(), "finish must fail the test");
    }

    #[tokio::test]
    async fn in_unordered_mode_any_unused_exchange_matches() {
        let server = ReplayServer::from_exchanges(
            vec![exchange("/a", "first"), exchange("/b", "second")],
            false,
        )
        .await;
        let client = reqwest::Client::new();
        assert_eq!(
            client
                .get(format!("{}/b", server.url()))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "second"
        );
        assert_eq!(
            client
                .get(format!("{}/a", server.url()))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "first"
        );
        // A repeat is unexpected: each recorded exchange is served once.
        assert_eq!(
            client
                .get(format!("{}/a", server.url()))
                .send()
                .await
                .unwrap()
                .status(),
            500
        );
        assert_eq!(server.problems().len(), 1);
        let _ = tokio::spawn(server.finish()).await;
    }

    #[tokio::test]
    async fn the_server_stops_when_dropped() {
        let server = LoopbackServer::start(Arc::new(|_| HttpResponse::new(204, "")))
            .await
            .unwrap();
        let url = server.url();
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 204);
        server.stop().await;
        assert!(reqwest::get(&url).await.is_err());
    }
}
