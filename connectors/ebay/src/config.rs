//! What one eBay account needs, read from the daemon's config through
//! [`SettingsReader`] (every problem located at its key), and the settings
//! the fixtures use.
//!
//! | key | | meaning |
//! | --- | --- | --- |
//! | `marketplace_id` | optional | `EBAY_US` (the default), `EBAY_DE` …: the marketplace whose offers get stock (getOffers filter) |
//! | `client_id` | required | the app's client id (App ID) |
//! | `client_secret`* | required | the app's client secret (Cert ID) |
//! | `refresh_token`* | required | the seller's OAuth refresh token (authorization-code grant, about 18 months) |
//! | `token_url` | optional | default `{base_url}/identity/v1/oauth2/token`, which is eBay's own for `https://api.ebay.com` and the sandbox |
//! | `verification_token`* | with `webhooks = true` | the Notification API destination's verification token (32–80 of `A-Z a-z 0-9 _ -`) |
//! | `endpoint_url` | with `webhooks = true` | the destination URL exactly as registered with eBay (`https://hooks.example.com/webhooks/ebay-us`): the challenge hashes it, and behind a proxy the daemon cannot know it |
//! | `daily_calls_fulfillment` | optional | Sell Fulfillment API calls a day, default 100,000 |
//! | `daily_calls_inventory` | optional | Sell Inventory API calls a day, default 2,000,000 |
//! | `daily_calls_notification` | optional | Commerce Notification API calls a day, default 10,000 |
//! | `listing_revisions_per_day` | optional | revisions switchyard makes to one listing a day, default 200 (eBay blocks a listing after 250; the rest is left for the seller's own edits) |
//!
//! `*`: a secret, also accepted as `KEY_env` / `KEY_file`.

use std::any::Any;
use std::sync::Arc;

use switchyard_contract::{
    AccountSettings, BuildContext, Connector, ConnectorError, Need, Secret, SettingsReader,
};

use crate::EbayConnector;

/// eBay's default daily call limit for the Sell Fulfillment API (orders,
/// fulfilments). Higher limits come with eBay's Application Growth Check.
pub const DEFAULT_DAILY_CALLS_FULFILLMENT: u32 = 100_000;
/// eBay's default daily call limit for the Sell Inventory API.
pub const DEFAULT_DAILY_CALLS_INVENTORY: u32 = 2_000_000;
/// eBay's default daily call limit for the Commerce Notification API.
pub const DEFAULT_DAILY_CALLS_NOTIFICATION: u32 = 10_000;
/// eBay blocks revising a listing for the rest of the day after this many.
pub const EBAY_REVISIONS_PER_LISTING: u32 = 250;
/// What switchyard spends of [`EBAY_REVISIONS_PER_LISTING`] by default.
pub const DEFAULT_LISTING_REVISIONS_PER_DAY: u32 = 200;

/// The marketplace of an account that names none.
pub const DEFAULT_MARKETPLACE: &str = "EBAY_US";

/// The path of eBay's token endpoint under the API host.
pub const TOKEN_PATH: &str = "/identity/v1/oauth2/token";

/// One eBay seller account. `Debug` never shows the secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbaySettings {
    pub marketplace_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
    /// `None`: `{base_url}` + [`TOKEN_PATH`].
    pub token_url: Option<String>,
    pub verification_token: Option<Secret>,
    pub endpoint_url: Option<String>,
    pub daily_calls_fulfillment: u32,
    pub daily_calls_inventory: u32,
    pub daily_calls_notification: u32,
    pub listing_revisions_per_day: u32,
}

impl EbaySettings {
    /// Settings with eBay's default budgets and no notification keys.
    pub fn new(
        marketplace_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
        refresh_token: Secret,
    ) -> Self {
        EbaySettings {
            marketplace_id: marketplace_id.into(),
            client_id: client_id.into(),
            client_secret,
            refresh_token,
            token_url: None,
            verification_token: None,
            endpoint_url: None,
            daily_calls_fulfillment: DEFAULT_DAILY_CALLS_FULFILLMENT,
            daily_calls_inventory: DEFAULT_DAILY_CALLS_INVENTORY,
            daily_calls_notification: DEFAULT_DAILY_CALLS_NOTIFICATION,
            listing_revisions_per_day: DEFAULT_LISTING_REVISIONS_PER_DAY,
        }
    }

    /// The token endpoint for an account whose API is at `base_url`.
    pub fn token_url(&self, base_url: &str) -> String {
        self.token_url
            .clone()
            .unwrap_or_else(|| format!("{}{TOKEN_PATH}", base_url.trim_end_matches('/')))
    }

    /// Everything that can be checked without I/O, every problem at once,
    /// as `(key, problem)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(p) = marketplace_problem(&self.marketplace_id) {
            out.push(("marketplace_id", p));
        }
        if self.client_id.trim().is_empty() {
            out.push(("client_id", "is empty".to_owned()));
        }
        if self.client_secret.expose().trim().is_empty() {
            out.push(("client_secret", "is empty".to_owned()));
        }
        if self.refresh_token.expose().trim().is_empty() {
            out.push(("refresh_token", "is empty".to_owned()));
        }
        if let Some(p) = self
            .verification_token
            .as_ref()
            .and_then(|t| verification_token_problem(t.expose()))
        {
            out.push(("verification_token", p));
        }
        for (key, value) in [
            ("daily_calls_fulfillment", self.daily_calls_fulfillment),
            ("daily_calls_inventory", self.daily_calls_inventory),
            ("daily_calls_notification", self.daily_calls_notification),
        ] {
            if value == 0 {
                out.push((key, "must be at least 1 call a day".to_owned()));
            }
        }
        if let Some(p) = revisions_problem(self.listing_revisions_per_day) {
            out.push(("listing_revisions_per_day", p));
        }
        out
    }

    /// [`EbaySettings::problems`] as one configuration error.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConnectorError::Config(format!(
            "ebay account: {}",
            problems
                .iter()
                .map(|(k, p)| format!("{k} {p}"))
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }
}

fn marketplace_problem(id: &str) -> Option<String> {
    let ok = id.strip_prefix("EBAY_").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
    });
    (!ok).then(|| format!("{id:?} is not an eBay marketplace id such as EBAY_US or EBAY_DE"))
}

/// eBay's rule for a destination's verification token. The value is never
/// quoted: it is a secret.
fn verification_token_problem(token: &str) -> Option<String> {
    let len = token.chars().count();
    if !(32..=80).contains(&len) {
        return Some(format!(
            "must be 32 to 80 characters long (eBay's rule), not {len}"
        ));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Some("may hold only letters, digits, _ and - (eBay's rule)".to_owned());
    }
    None
}

/// A daily call budget: the key's value, or eBay's default when absent.
fn budget(r: &mut dyn SettingsReader, key: &str, default: u32) -> Option<u32> {
    match r.u32(key) {
        Some(0) => {
            r.invalid(key, "must be at least 1 call a day");
            None
        }
        Some(n) => Some(n),
        None => Some(default),
    }
}

fn revisions_problem(n: u32) -> Option<String> {
    (n == 0 || n > EBAY_REVISIONS_PER_LISTING).then(|| {
        format!("must be 1 to {EBAY_REVISIONS_PER_LISTING} (eBay blocks a listing after {EBAY_REVISIONS_PER_LISTING} revisions a day), not {n}")
    })
}

/// Reads an `[[account]]` table's eBay keys; see the module doc.
pub fn read_settings(r: &mut dyn SettingsReader) -> Option<Box<dyn AccountSettings>> {
    let webhooks = r.webhooks();
    let with_webhooks = r.webhook_need();
    let marketplace_id = r
        .string("marketplace_id", Need::Optional)
        .or_else(|| Some(DEFAULT_MARKETPLACE.to_owned()));
    let client_id = r.string("client_id", Need::Required);
    let client_secret = r.secret("client_secret", Need::Required);
    let refresh_token = r.secret("refresh_token", Need::Required);
    let token_url = r.url("token_url", Need::Optional);
    let verification_token = r.secret("verification_token", with_webhooks);
    let endpoint_url = r.url("endpoint_url", with_webhooks);
    let fulfillment = budget(
        r,
        "daily_calls_fulfillment",
        DEFAULT_DAILY_CALLS_FULFILLMENT,
    );
    let inventory = budget(r, "daily_calls_inventory", DEFAULT_DAILY_CALLS_INVENTORY);
    let notification = budget(
        r,
        "daily_calls_notification",
        DEFAULT_DAILY_CALLS_NOTIFICATION,
    );
    let revisions = match r.u32("listing_revisions_per_day") {
        Some(n) => match revisions_problem(n) {
            Some(p) => {
                r.invalid("listing_revisions_per_day", &p);
                None
            }
            None => Some(n),
        },
        None => Some(DEFAULT_LISTING_REVISIONS_PER_DAY),
    };
    let marketplace_id = marketplace_id.and_then(|m| match marketplace_problem(&m) {
        Some(p) => {
            r.invalid("marketplace_id", &p);
            None
        }
        None => Some(m),
    });
    let verification_token = match verification_token {
        Some(t) => match verification_token_problem(t.expose()) {
            Some(p) => {
                r.invalid("verification_token", &p);
                return None;
            }
            None => Some(t),
        },
        None => None,
    };
    let settings = EbaySettings {
        marketplace_id: marketplace_id?,
        client_id: client_id?,
        client_secret: client_secret?,
        refresh_token: refresh_token?,
        token_url,
        verification_token,
        endpoint_url,
        daily_calls_fulfillment: fulfillment?,
        daily_calls_inventory: inventory?,
        daily_calls_notification: notification?,
        listing_revisions_per_day: revisions?,
    };
    if webhooks && (settings.verification_token.is_none() || settings.endpoint_url.is_none()) {
        // The reader recorded which one is missing.
        return None;
    }
    Some(Box::new(settings))
}

/// The credentials the fixtures under `fixtures/ebay/` were recorded with.
pub const REPLAY_CLIENT_ID: &str = "test-client-id";
pub const REPLAY_CLIENT_SECRET: &str = "test-client-secret";
pub const REPLAY_REFRESH_TOKEN: &str = "test-refresh-token";
pub const REPLAY_VERIFICATION_TOKEN: &str = "test_verification_token_0123456789abcdef";

/// The endpoint URL the replay settings register for `account`.
pub fn replay_endpoint_url(account: &str) -> String {
    format!("https://hooks.example.com/webhooks/{account}")
}

/// Settings matching the fixtures' test credentials; the token endpoint is
/// the replay server's own (derived from the base URL).
pub fn replay_settings(account: &str) -> Box<dyn AccountSettings> {
    Box::new(replay_ebay_settings(account))
}

/// [`replay_settings`] as the concrete type, for tests that adjust it.
pub fn replay_ebay_settings(account: &str) -> EbaySettings {
    let mut s = EbaySettings::new(
        "EBAY_US",
        REPLAY_CLIENT_ID,
        Secret::new(REPLAY_CLIENT_SECRET),
        Secret::new(REPLAY_REFRESH_TOKEN),
    );
    s.verification_token = Some(Secret::new(REPLAY_VERIFICATION_TOKEN));
    s.endpoint_url = Some(replay_endpoint_url(account));
    s
}

impl AccountSettings for EbaySettings {
    fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        Ok(Arc::new(EbayConnector::new(self.clone(), ctx)?))
    }

    /// Field by field; secrets compare by value in constant time (`Secret`'s
    /// `PartialEq`), so a rotated secret counts as a change.
    fn same_as(&self, other: &dyn AccountSettings) -> bool {
        other
            .as_any()
            .downcast_ref::<EbaySettings>()
            .is_some_and(|o| o == self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A config table as the daemon's reader would see it: plain values,
    /// and every problem recorded against its key.
    #[derive(Default)]
    struct Table {
        webhooks: bool,
        values: BTreeMap<&'static str, &'static str>,
        errors: BTreeMap<String, String>,
    }

    impl Table {
        fn with(pairs: &[(&'static str, &'static str)]) -> Table {
            Table {
                values: pairs.iter().copied().collect(),
                ..Table::default()
            }
        }

        fn get(&mut self, key: &str, need: Need) -> Option<&'static str> {
            let v = self.values.get(key).copied();
            if v.is_none() {
                match need {
                    Need::Required => {
                        self.errors.insert(key.into(), "missing".into());
                    }
                    Need::RequiredBecause(why) => {
                        self.errors
                            .insert(key.into(), format!("missing (required because {why})"));
                    }
                    Need::Optional => {}
                }
            }
            v
        }
    }

    impl SettingsReader for Table {
        fn account(&self) -> &str {
            "ebay-us"
        }
        fn webhooks(&self) -> bool {
            self.webhooks
        }
        fn string(&mut self, key: &str, need: Need) -> Option<String> {
            self.get(key, need).map(str::to_owned)
        }
        fn strings(&mut self, key: &str, need: Need) -> Option<Vec<String>> {
            self.get(key, need).map(|v| vec![v.to_owned()])
        }
        fn url(&mut self, key: &str, need: Need) -> Option<String> {
            let v = self.get(key, need)?;
            if v.starts_with("http://") || v.starts_with("https://") {
                Some(v.to_owned())
            } else {
                self.errors.insert(key.into(), "not a URL".into());
                None
            }
        }
        fn boolean(&mut self, key: &str) -> Option<bool> {
            self.get(key, Need::Optional).map(|v| v == "true")
        }
        fn u32(&mut self, key: &str) -> Option<u32> {
            let v = self.get(key, Need::Optional)?;
            match v.parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.errors.insert(key.into(), "not a number".into());
                    None
                }
            }
        }
        fn secret(&mut self, key: &str, need: Need) -> Option<Secret> {
            self.get(key, need).map(Secret::new)
        }
        fn invalid(&mut self, key: &str, problem: &str) {
            self.errors.insert(key.into(), problem.into());
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("client_id", "app-id"),
        ("client_secret", "cert-id-secret"),
        ("refresh_token", "v^1.1#refresh-secret"),
    ];

    fn read(t: &mut Table) -> Option<EbaySettings> {
        read_settings(t).map(|b| {
            b.as_any()
                .downcast_ref::<EbaySettings>()
                .expect("ebay settings")
                .clone()
        })
    }

    #[test]
    fn the_required_keys_and_the_defaults() {
        let mut t = Table::with(GOOD);
        let s = read(&mut t).expect("valid");
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(s.marketplace_id, "EBAY_US");
        assert_eq!(s.daily_calls_fulfillment, 100_000);
        assert_eq!(s.daily_calls_inventory, 2_000_000);
        assert_eq!(s.daily_calls_notification, 10_000);
        assert_eq!(s.listing_revisions_per_day, 200);
        assert_eq!(
            s.token_url("https://api.ebay.com/"),
            "https://api.ebay.com/identity/v1/oauth2/token"
        );
        assert_eq!(
            s.token_url("https://api.sandbox.ebay.com"),
            "https://api.sandbox.ebay.com/identity/v1/oauth2/token"
        );
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("cert-id-secret") && !shown.contains("refresh-secret"),
            "{shown}"
        );
    }

    #[test]
    fn every_problem_is_recorded_at_its_key_at_once() {
        let mut t = Table::with(&[
            ("marketplace_id", "US"),
            ("client_secret", "x"),
            ("daily_calls_inventory", "0"),
            ("listing_revisions_per_day", "300"),
            ("token_url", "api.ebay.com"),
        ]);
        assert!(read(&mut t).is_none());
        let keys: Vec<&str> = t.errors.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "client_id",
                "daily_calls_inventory",
                "listing_revisions_per_day",
                "marketplace_id",
                "refresh_token",
                "token_url"
            ]
        );
        assert!(
            t.errors["marketplace_id"].contains("EBAY_US"),
            "{:?}",
            t.errors
        );
        assert!(t.errors["listing_revisions_per_day"].contains("250"));
    }

    #[test]
    fn notifications_need_the_verification_token_and_the_endpoint_url() {
        let mut t = Table::with(GOOD);
        t.webhooks = true;
        assert!(read(&mut t).is_none());
        assert!(t.errors["verification_token"].contains("webhooks = true"));
        assert!(t.errors["endpoint_url"].contains("webhooks = true"));

        let mut pairs = GOOD.to_vec();
        pairs.push(("verification_token", "short-and-secret"));
        pairs.push(("endpoint_url", "https://hooks.example.com/webhooks/ebay-us"));
        let mut t = Table::with(&pairs);
        t.webhooks = true;
        assert!(read(&mut t).is_none());
        let problem = &t.errors["verification_token"];
        assert!(problem.contains("32 to 80"), "{problem}");
        assert!(
            !problem.contains("short-and-secret"),
            "the token leaked: {problem}"
        );

        pairs.pop();
        pairs.pop();
        pairs.push((
            "verification_token",
            "abcdefghijklmnopqrstuvwxyz_0123456789-ABC",
        ));
        pairs.push(("endpoint_url", "https://hooks.example.com/webhooks/ebay-us"));
        let mut t = Table::with(&pairs);
        t.webhooks = true;
        let s = read(&mut t).expect("valid");
        assert_eq!(
            s.endpoint_url.as_deref(),
            Some("https://hooks.example.com/webhooks/ebay-us")
        );
    }

    #[test]
    fn same_as_compares_secrets_by_value() {
        let a = replay_ebay_settings("ebay-us");
        let mut b = a.clone();
        assert!(a.same_as(&b));
        b.refresh_token = Secret::new("another-refresh-token");
        assert!(!a.same_as(&b));
        let mut c = a.clone();
        c.verification_token = None;
        assert!(!a.same_as(&c));
        let mut d = a.clone();
        d.daily_calls_inventory = 5;
        assert!(!a.same_as(&d));
    }

    #[test]
    fn the_replay_settings_are_valid() {
        replay_ebay_settings("ebay-us").validate().unwrap();
        let mut s = replay_ebay_settings("ebay-us");
        s.marketplace_id = "ebay_us".into();
        s.listing_revisions_per_day = 0;
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("marketplace_id") && err.contains("listing_revisions_per_day"),
            "{err}"
        );
    }
}
