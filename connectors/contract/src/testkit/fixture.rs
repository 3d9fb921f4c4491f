//! The fixture format: one folder per scenario with a `scenario.toml` that
//! lists the exchanges (request matched → recorded response) and webhooks
//! (headers + raw body file), and `expected/` golden files. See
//! `fixtures/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::WebhookRequest;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    description: String,
    #[serde(default = "yes")]
    ordered: bool,
    #[serde(default)]
    exchange: Vec<ExchangeSpec>,
    #[serde(default)]
    webhook: Vec<WebhookSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeSpec {
    method: String,
    path: String,
    #[serde(default)]
    query: BTreeMap<String, String>,
    #[serde(default)]
    body_contains: Vec<String>,
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    response: Option<String>,
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSpec {
    name: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: String,
}

/// One recorded request/response pair.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    /// Query parameters that must be present with exactly these values.
    pub query: BTreeMap<String, String>,
    /// Substrings the request body must contain.
    pub body_contains: Vec<String>,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub response: Vec<u8>,
}

impl Exchange {
    /// Whether a request matches this exchange: same method and path, the
    /// listed query parameters, and every listed body substring.
    pub fn matches(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> bool {
        if !self.method.eq_ignore_ascii_case(method) || self.path != path {
            return false;
        }
        let query_ok = self
            .query
            .iter()
            .all(|(k, v)| query.iter().any(|(qk, qv)| qk == k && qv == v));
        let body = String::from_utf8_lossy(body);
        query_ok && self.body_contains.iter().all(|s| body.contains(s.as_str()))
    }

    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.method, self.path);
        if !self.query.is_empty() {
            s.push_str(&format!(" query {:?}", self.query));
        }
        if !self.body_contains.is_empty() {
            s.push_str(&format!(" body containing {:?}", self.body_contains));
        }
        s
    }
}

/// A recorded webhook delivery: its headers and the raw body bytes.
#[derive(Debug, Clone)]
pub struct WebhookFixture {
    pub name: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl WebhookFixture {
    /// The delivery as account `account` receives it at `received_at`
    /// (header names lowercased, as the HTTP server hands them over).
    pub fn request(&self, account: &str, received_at: DateTime<Utc>) -> WebhookRequest {
        WebhookRequest {
            account: account.into(),
            method: "POST".into(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            query: None,
            body: self.body.clone(),
            received_at,
        }
    }
}

/// One scenario folder, loaded.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub dir: PathBuf,
    pub description: String,
    /// Exchanges must happen in the listed order (default) or in any order.
    pub ordered: bool,
    pub exchanges: Vec<Exchange>,
    pub webhooks: Vec<WebhookFixture>,
}

impl Scenario {
    /// Loads `dir/scenario.toml` and every file it names.
    pub fn load(dir: &Path) -> Result<Scenario, String> {
        let manifest_path = dir.join("scenario.toml");
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| format!("{}: cannot read: {e}", manifest_path.display()))?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
        let read = |rel: &str| -> Result<Vec<u8>, String> {
            let p = dir.join(rel);
            std::fs::read(&p).map_err(|e| {
                format!(
                    "{}: cannot read {}: {e}",
                    manifest_path.display(),
                    p.display()
                )
            })
        };
        let mut exchanges = Vec::with_capacity(manifest.exchange.len());
        for e in manifest.exchange {
            let response = match &e.response {
                Some(rel) => read(rel)?,
                None => Vec::new(),
            };
            exchanges.push(Exchange {
                method: e.method.to_ascii_uppercase(),
                path: e.path,
                query: e.query,
                body_contains: e.body_contains,
                status: e.status,
                headers: e.headers,
                response,
            });
        }
        let mut webhooks = Vec::with_capacity(manifest.webhook.len());
        for w in manifest.webhook {
            webhooks.push(WebhookFixture {
                body: read(&w.body)?,
                name: w.name,
                headers: w.headers,
            });
        }
        Ok(Scenario {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir: dir.to_path_buf(),
            description: manifest.description,
            ordered: manifest.ordered,
            exchanges,
            webhooks,
        })
    }

    /// Every scenario folder directly under `channel_dir`, sorted by name.
    pub fn load_all(channel_dir: &Path) -> Result<Vec<Scenario>, String> {
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(channel_dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("scenario.toml").is_file())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", channel_dir.display())),
        };
        dirs.sort();
        dirs.iter().map(|d| Scenario::load(d)).collect()
    }

    /// Path of a golden file of this scenario.
    pub fn expected(&self, name: &str) -> PathBuf {
        self.dir.join("expected").join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_scenario_and_matches_requests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("responses")).unwrap();
        std::fs::write(dir.path().join("responses/one.json"), b"{\"a\":1}").unwrap();
        std::fs::write(dir.path().join("hook.bin"), b"raw\xffbytes").unwrap();
        std::fs::write(
            dir.path().join("scenario.toml"),
            r#"
description = "one page"
[[exchange]]
method = "post"
path = "/graphql.json"
query = { limit = "2" }
body_contains = ["orders("]
response = "responses/one.json"
[[webhook]]
name = "create"
headers = { "x-topic" = "orders/create" }
body = "hook.bin"
"#,
        )
        .unwrap();
        let s = Scenario::load(dir.path()).unwrap();
        assert!(s.ordered);
        assert_eq!(s.exchanges[0].response, b"{\"a\":1}");
        assert_eq!(s.webhooks[0].body, b"raw\xffbytes");
        let q = vec![("limit".to_string(), "2".to_string())];
        assert!(s.exchanges[0].matches("POST", "/graphql.json", &q, b"{orders(first:2)}"));
        assert!(!s.exchanges[0].matches("POST", "/graphql.json", &[], b"{orders(first:2)}"));
        assert!(!s.exchanges[0].matches("POST", "/graphql.json", &q, b"{shop}"));
        assert!(!s.exchanges[0].matches("GET", "/graphql.json", &q, b"{orders(}"));
    }

    #[test]
    fn a_manifest_with_an_unknown_key_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("scenario.toml"),
            "description = \"x\"\nbogus = 1\n",
        )
        .unwrap();
        let err = Scenario::load(dir.path()).unwrap_err();
        assert!(
            err.contains("scenario.toml") && err.contains("bogus"),
            "{err}"
        );
    }
}
