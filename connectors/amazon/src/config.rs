//! One Amazon account's keys: the selling partner, its marketplaces, the
//! Login with Amazon app credentials and the notification secret. Read from
//! the daemon's config through [`SettingsReader`] (every problem located at
//! its key), checked once, and turned into a connector without I/O.
//!
//! | key | what |
//! | --- | --- |
//! | `seller_id` | the selling partner id (merchant token), used in Listings Items paths and feeds |
//! | `marketplace_ids` | the marketplaces orders are read from and stock is set in (`ATVPDKIKX0DER` ...) |
//! | `client_id` | the LWA app's client id |
//! | `client_secret`* | the LWA app's client secret |
//! | `refresh_token`* | the seller's LWA refresh token (from authorizing the app) |
//! | `token_url` | LWA's token endpoint; default `https://api.amazon.com/auth/o2/token` for an account on Amazon's hosts, `{base_url}/auth/o2/token` for any other (a simulator) |
//! | `webhook_secret`* | what the EventBridge API destination sends in `X-Switchyard-Secret`; required with `webhooks = true` |

use std::any::Any;
use std::sync::Arc;

use switchyard_contract::{
    AccountSettings, BuildContext, Connector, ConnectorError, Need, Secret, SettingsReader,
};

use crate::endpoints::LWA_TOKEN_URL;

/// Where LWA's token endpoint is for replays and the simulator: on the same
/// loopback server as the API.
pub const REPLAY_TOKEN_PATH: &str = "/auth/o2/token";

/// The token endpoint an account uses: its `token_url` when set; LWA's own
/// for an account on Amazon's hosts; otherwise the token path on `base_url`,
/// so that an account pointed at a simulator never sends its refresh token
/// to Amazon.
pub fn token_url(configured: Option<&str>, base_url: &str) -> String {
    if let Some(url) = configured {
        return url.to_owned();
    }
    let host = base_url
        .split("://")
        .nth(1)
        .unwrap_or(base_url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    if host == "amazon.com" || host.ends_with(".amazon.com") {
        LWA_TOKEN_URL.to_owned()
    } else {
        format!("{}{REPLAY_TOKEN_PATH}", base_url.trim_end_matches('/'))
    }
}

/// The credentials and ids the replayed fixtures were recorded with.
pub mod replay {
    pub const SELLER_ID: &str = "A1TESTSELLER0";
    pub const MARKETPLACE_ID: &str = "ATVPDKIKX0DER";
    pub const CLIENT_ID: &str = "amzn1.application-oa2-client.fixture";
    pub const CLIENT_SECRET: &str = "fixture-client-secret";
    pub const REFRESH_TOKEN: &str = "Atzr|fixture-refresh-token";
    pub const WEBHOOK_SECRET: &str = "fixture-webhook-secret";
}

/// One Amazon account. `Debug` never shows the secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmazonSettings {
    pub seller_id: String,
    pub marketplace_ids: Vec<String>,
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
    /// `None`: LWA's own endpoint when `base_url` is one of Amazon's hosts,
    /// else (a simulator, a replay) the token path on `base_url` (see
    /// [`token_url`]).
    pub token_url: Option<String>,
    pub webhook_secret: Option<Secret>,
}

impl AmazonSettings {
    /// Checks what can be checked without I/O, all problems at once.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !is_amazon_id(&self.seller_id) {
            problems.push(format!(
                "seller_id {:?} is not an Amazon seller id (upper-case letters and digits, \
                 as Seller Central shows the merchant token)",
                self.seller_id
            ));
        }
        if self.marketplace_ids.is_empty() {
            problems.push("marketplace_ids is empty: name at least one marketplace".into());
        }
        for m in &self.marketplace_ids {
            if !is_amazon_id(m) {
                problems.push(format!(
                    "marketplace_ids: {m:?} is not a marketplace id (e.g. ATVPDKIKX0DER)"
                ));
            }
        }
        if self.client_id.trim().is_empty() {
            problems.push("client_id is empty".into());
        }
        for (key, secret) in [
            ("client_secret", Some(&self.client_secret)),
            ("refresh_token", Some(&self.refresh_token)),
            ("webhook_secret", self.webhook_secret.as_ref()),
        ] {
            if secret.is_some_and(|s| s.expose().trim().is_empty()) {
                problems.push(format!("{key} is empty"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

fn is_amazon_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl AccountSettings for AmazonSettings {
    fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        Ok(Arc::new(crate::AmazonConnector::new(self.clone(), ctx)?))
    }

    /// Field by field; secrets compare by value in constant time (`Secret`'s
    /// `PartialEq`), so a rotated secret counts as a change.
    fn same_as(&self, other: &dyn AccountSettings) -> bool {
        other
            .as_any()
            .downcast_ref::<AmazonSettings>()
            .is_some_and(|o| o == self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reads an `[[account]]` table with `channel = "amazon"`; every key is asked
/// for even after a problem, so that one pass reports them all.
pub fn read_settings(r: &mut dyn SettingsReader) -> Option<Box<dyn AccountSettings>> {
    let seller_id = r.string("seller_id", Need::Required);
    let marketplace_ids = r.strings("marketplace_ids", Need::Required);
    let client_id = r.string("client_id", Need::Required);
    let client_secret = r.secret("client_secret", Need::Required);
    let refresh_token = r.secret("refresh_token", Need::Required);
    let token_url = r.url("token_url", Need::Optional);
    let webhook_need = r.webhook_need();
    let webhook_secret = r.secret("webhook_secret", webhook_need);
    let mut valid = true;
    if let Some(id) = &seller_id
        && !is_amazon_id(id)
    {
        r.invalid(
            "seller_id",
            "not an Amazon seller id: upper-case letters and digits, the merchant token \
             Seller Central shows under Account Info",
        );
        valid = false;
    }
    if let Some(ids) = &marketplace_ids
        && let Some(bad) = ids.iter().find(|m| !is_amazon_id(m))
    {
        r.invalid(
            "marketplace_ids",
            &format!("{bad:?} is not a marketplace id (e.g. ATVPDKIKX0DER for Amazon.com)"),
        );
        valid = false;
    }
    if !valid {
        return None;
    }
    let settings = AmazonSettings {
        seller_id: seller_id?,
        marketplace_ids: marketplace_ids?,
        client_id: client_id?,
        client_secret: client_secret?,
        refresh_token: refresh_token?,
        token_url,
        webhook_secret,
    };
    Some(Box::new(settings))
}

/// The fixtures' account: test ids and credentials only, LWA on the replay
/// server.
pub fn replay_settings(_account: &str) -> Box<dyn AccountSettings> {
    Box::new(fixture_settings())
}

/// [`replay_settings`] as the concrete type.
pub fn fixture_settings() -> AmazonSettings {
    AmazonSettings {
        seller_id: replay::SELLER_ID.into(),
        marketplace_ids: vec![replay::MARKETPLACE_ID.into()],
        client_id: replay::CLIENT_ID.into(),
        client_secret: Secret::new(replay::CLIENT_SECRET),
        refresh_token: Secret::new(replay::REFRESH_TOKEN),
        token_url: None,
        webhook_secret: Some(Secret::new(replay::WEBHOOK_SECRET)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A reader over a flat table, recording problems by key.
    #[derive(Default)]
    struct Table {
        values: BTreeMap<&'static str, toml_like::V>,
        webhooks: bool,
        problems: BTreeMap<String, String>,
    }

    mod toml_like {
        pub enum V {
            S(&'static str),
            L(Vec<&'static str>),
        }
    }
    use toml_like::V;

    impl SettingsReader for Table {
        fn account(&self) -> &str {
            "amz-us"
        }
        fn webhooks(&self) -> bool {
            self.webhooks
        }
        fn string(&mut self, key: &str, need: Need) -> Option<String> {
            match self.values.get(key) {
                Some(V::S(s)) => Some((*s).to_owned()),
                Some(V::L(_)) => {
                    self.problems.insert(key.into(), "not a string".into());
                    None
                }
                None => {
                    if need != Need::Optional {
                        self.problems.insert(key.into(), "missing".into());
                    }
                    None
                }
            }
        }
        fn strings(&mut self, key: &str, need: Need) -> Option<Vec<String>> {
            match self.values.get(key) {
                Some(V::L(l)) => Some(l.iter().map(|s| (*s).to_owned()).collect()),
                Some(V::S(s)) => Some(vec![(*s).to_owned()]),
                None => {
                    if need != Need::Optional {
                        self.problems.insert(key.into(), "missing".into());
                    }
                    None
                }
            }
        }
        fn url(&mut self, key: &str, need: Need) -> Option<String> {
            let v = self.string(key, need)?;
            if v.starts_with("https://") || v.starts_with("http://") {
                Some(v)
            } else {
                self.problems.insert(key.into(), "not a URL".into());
                None
            }
        }
        fn boolean(&mut self, _key: &str) -> Option<bool> {
            None
        }
        fn u32(&mut self, _key: &str) -> Option<u32> {
            None
        }
        fn secret(&mut self, key: &str, need: Need) -> Option<Secret> {
            self.string(key, need).map(Secret::new)
        }
        fn invalid(&mut self, key: &str, problem: &str) {
            self.problems.insert(key.into(), problem.into());
        }
    }

    fn complete() -> Table {
        let mut t = Table::default();
        t.values.insert("seller_id", V::S("A2SELLER9"));
        t.values.insert(
            "marketplace_ids",
            V::L(vec!["ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"]),
        );
        t.values
            .insert("client_id", V::S("amzn1.application-oa2-client.x"));
        t.values.insert("client_secret", V::S("cs-value"));
        t.values.insert("refresh_token", V::S("Atzr|rt-value"));
        t
    }

    fn read(t: &mut Table) -> Option<AmazonSettings> {
        read_settings(t).map(|s| {
            s.as_any()
                .downcast_ref::<AmazonSettings>()
                .expect("amazon settings")
                .clone()
        })
    }

    #[test]
    fn a_complete_table_reads_with_lwa_as_the_default_token_url() {
        let mut t = complete();
        let s = read(&mut t).expect("valid");
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(s.token_url, None);
        let na = "https://sellingpartnerapi-na.amazon.com";
        assert_eq!(token_url(None, na), LWA_TOKEN_URL);
        assert_eq!(
            token_url(None, "https://sandbox.sellingpartnerapi-eu.amazon.com/"),
            LWA_TOKEN_URL
        );
        assert_eq!(
            token_url(None, "http://127.0.0.1:4000/amazon/"),
            "http://127.0.0.1:4000/amazon/auth/o2/token"
        );
        assert_eq!(
            token_url(None, "https://amazon.com.evil.example"),
            "https://amazon.com.evil.example/auth/o2/token"
        );
        assert_eq!(
            token_url(Some("https://lwa.test/t"), na),
            "https://lwa.test/t"
        );
        assert_eq!(s.marketplace_ids.len(), 2);
        assert!(s.webhook_secret.is_none());
        s.validate().unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("cs-value") && !shown.contains("rt-value"),
            "{shown}"
        );
    }

    #[test]
    fn every_missing_key_is_reported_at_its_place() {
        let mut t = Table {
            webhooks: true,
            ..Table::default()
        };
        assert!(read(&mut t).is_none());
        let keys: Vec<&str> = t.problems.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "client_id",
                "client_secret",
                "marketplace_ids",
                "refresh_token",
                "seller_id",
                "webhook_secret"
            ]
        );
    }

    #[test]
    fn bad_ids_are_refused_by_key() {
        let mut t = complete();
        t.values.insert("seller_id", V::S("my shop"));
        assert!(read(&mut t).is_none());
        assert!(t.problems["seller_id"].contains("seller id"));
        let mut t = complete();
        t.values
            .insert("marketplace_ids", V::L(vec!["ATVPDKIKX0DER", "amazon.de"]));
        assert!(read(&mut t).is_none());
        assert!(t.problems["marketplace_ids"].contains("\"amazon.de\""));
    }

    #[test]
    fn a_changed_secret_is_a_change() {
        let a = fixture_settings();
        let mut b = fixture_settings();
        assert!(a.same_as(&b));
        b.refresh_token = Secret::new("Atzr|rotated");
        assert!(!a.same_as(&b));
        let mut c = fixture_settings();
        c.webhook_secret = None;
        assert!(!a.same_as(&c));
    }
}
