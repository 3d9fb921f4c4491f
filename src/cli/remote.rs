//! The command line's way into a running daemon. The store is one sled
//! database that one process owns; while the daemon owns it, the state
//! commands send their request to the daemon's admin API (`/api/v1`, `docs/http-api.md`)
//! at `daemon.listen`, with `daemon.admin_token` as the bearer token, and
//! render the answer with the same functions as when they read the store
//! themselves, so the user sees the same output either way.
//!
//! reqwest's blocking client is not built, so each command drives the async
//! client on a small current-thread runtime of its own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::{EXIT_FAILED, Failure};
use crate::config::{Config, Secret};

/// Long enough for `rules apply` over a large store; a daemon that does not
/// answer in this time is stuck, and saying so beats waiting forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the running daemon's admin API.
pub(crate) struct Remote {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// `http://<listen>/api/v1/`.
    base: Url,
    token: Secret,
    config_path: PathBuf,
    state_dir: PathBuf,
    /// The config's destination ids, for checking filters before asking.
    pub(crate) destinations: Vec<String>,
}

/// Where to connect to reach a server listening on `listen`: a wildcard
/// address is reached through the loopback of its family.
fn connect_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Whether anything accepts connections at the daemon's address.
pub(crate) fn listening(listen: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&connect_addr(listen), Duration::from_millis(300)).is_ok()
}

/// An error and its causes, one after the other (reqwest's own text says
/// only "error sending request"; the reason is further down).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

impl Remote {
    /// A client for the daemon that holds the store of `config`. Fails, saying
    /// what to set, when the config has no admin token.
    pub(crate) fn connect(config: &Config, config_path: &Path) -> Result<Remote, Failure> {
        let in_use = format!(
            "the store at {} is in use by another process (is the daemon running?)",
            config.daemon.state_dir.display()
        );
        let Some(token) = config.daemon.admin_token.clone() else {
            return Err(Failure::new(
                EXIT_FAILED,
                format!(
                    "{in_use}, and this command cannot use the daemon's admin API instead: \
                     daemon.admin_token is not set in {}; set admin_token_env or admin_token_file \
                     in [daemon], the same for the daemon (restart it) and for this command",
                    config_path.display()
                ),
            ));
        };
        let addr = connect_addr(config.daemon.listen);
        let base = Url::parse(&format!("http://{addr}/api/v1/")).map_err(|e| {
            Failure::new(
                EXIT_FAILED,
                format!("daemon.listen {addr} does not make a URL: {e}"),
            )
        })?;
        let runtime = super::runtime(false)?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("switchyard-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::new(EXIT_FAILED, format!("building the HTTP client: {e}")))?;
        Ok(Remote {
            runtime,
            http,
            base,
            token,
            config_path: config_path.to_owned(),
            state_dir: config.daemon.state_dir.clone(),
            destinations: config.destinations.iter().map(|d| d.id.clone()).collect(),
        })
    }

    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, Failure> {
        self.call(Method::GET, path, query, None)
    }

    /// A GET whose answer may name a next page in `header`.
    pub(crate) fn get_page<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        header: &str,
    ) -> Result<(T, Option<String>), Failure> {
        let answer = self.send(Method::GET, path, query, None, Some(header))?;
        self.decode(path, answer)
    }

    pub(crate) fn post<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> Result<T, Failure> {
        self.call(Method::POST, path, query, body)
    }

    pub(crate) fn put<T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: serde_json::Value,
    ) -> Result<T, Failure> {
        self.call(Method::PUT, path, &[], Some(body))
    }

    pub(crate) fn delete<T: DeserializeOwned>(&self, path: &[&str]) -> Result<T, Failure> {
        self.call(Method::DELETE, path, &[], None)
    }

    /// One request; path segments are percent-encoded (order ids hold `:`
    /// and may hold `/`).
    fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> Result<T, Failure> {
        let answer = self.send(method, path, query, body, None)?;
        self.decode(path, answer).map(|(v, _)| v)
    }

    /// A GET whose answer is taken as the bytes it is, not decoded (an
    /// order's raw payload, printed as stored).
    pub(crate) fn get_bytes(&self, path: &[&str]) -> Result<Vec<u8>, Failure> {
        self.send(Method::GET, path, &[], None, None)
            .map(|(_, bytes)| bytes)
    }

    /// The JSON of a successful answer as `T`, with the header `send` read.
    fn decode<T: DeserializeOwned>(
        &self,
        path: &[&str],
        (named, bytes): (Option<String>, Vec<u8>),
    ) -> Result<(T, Option<String>), Failure> {
        serde_json::from_slice(&bytes)
            .map(|v| (v, named))
            .map_err(|e| {
                Failure::new(
                    EXIT_FAILED,
                    format!(
                        "the daemon's admin API answered {} with something this command does not understand ({e}); \
                         are the daemon and this command the same switchyard version?",
                        self.url(path)
                    ),
                )
            })
    }

    /// `http://<listen>/api/v1/<path>`, each segment percent-encoded.
    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        url
    }

    /// One request: the value of the response header `header` and the
    /// body of a success; any other answer is the failure it says.
    fn send(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
        header: Option<&str>,
    ) -> Result<(Option<String>, Vec<u8>), Failure> {
        let url = self.url(path);
        let shown = url.to_string();
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(self.token.expose());
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer = self.runtime.block_on(async {
            let response = req.send().await?;
            let status = response.status();
            let named = header
                .and_then(|h| response.headers().get(h))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>((status, named, bytes))
        });
        let (status, named, bytes) = answer.map_err(|e| self.unreachable(&shown, &e))?;
        if status.is_success() {
            return Ok((named, bytes));
        }
        Err(self.refused(status, &shown, &bytes))
    }

    /// A request whose answer is JSON lines that arrive over time (a
    /// backfill's progress): `on_line` sees each as it comes. No overall
    /// timeout: a long backfill is not a stuck daemon; a silent connection
    /// still fails on the transport's own limits.
    pub(crate) fn post_lines(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        mut on_line: impl FnMut(serde_json::Value),
    ) -> Result<(), Failure> {
        let url = self.url(path);
        let shown = url.to_string();
        let req = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .query(query)
            .timeout(Duration::from_secs(7 * 24 * 3600));
        self.runtime.block_on(async {
            let mut response = req.send().await.map_err(|e| self.unreachable(&shown, &e))?;
            let status = response.status();
            if !status.is_success() {
                let bytes = response.bytes().await.unwrap_or_default();
                return Err(self.refused(status, &shown, &bytes));
            }
            let mut pending: Vec<u8> = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| self.unreachable(&shown, &e))?
            {
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice(&line) {
                        on_line(v);
                    }
                }
            }
            Ok(())
        })
    }

    fn unreachable(&self, url: &str, e: &reqwest::Error) -> Failure {
        let why = if e.is_timeout() {
            format!("it did not answer within {} s", REQUEST_TIMEOUT.as_secs())
        } else {
            with_causes(e)
        };
        Failure::new(
            EXIT_FAILED,
            format!(
                "the store at {} is in use by another process (is the daemon running?), \
                 and the daemon's admin API at {url} cannot be reached: {why}; \
                 check that daemon.listen in {} is the address the daemon listens on",
                self.state_dir.display(),
                self.config_path.display()
            ),
        )
    }

    fn refused(&self, status: StatusCode, url: &str, body: &[u8]) -> Failure {
        if status == StatusCode::UNAUTHORIZED {
            return Failure::new(
                EXIT_FAILED,
                format!(
                    "the daemon's admin API refused the admin token (401 at {url}): \
                     daemon.admin_token in {} is not the token the running daemon has; \
                     make them the same (the daemon reads it when it starts)",
                    self.config_path.display()
                ),
            );
        }
        // The admin API says what is wrong in `{ "error": "..." }`; the
        // command prints it as it would have printed its own error.
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                format!(
                    "the daemon's admin API answered {status} at {url}: {}",
                    text.trim()
                )
            });
        Failure::new(EXIT_FAILED, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_reached_through_loopback() {
        let at = |s: &str| connect_addr(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:7300"), "127.0.0.1:7300");
        assert_eq!(at("[::]:7300"), "[::1]:7300");
        assert_eq!(at("10.1.2.3:80"), "10.1.2.3:80");
    }
}
