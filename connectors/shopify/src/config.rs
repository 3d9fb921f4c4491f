//! What one Shopify connector is built from: where the shop is, its
//! credentials and its knobs, as plain data. The account's keys
//! (`docs/channels/shopify.md`) are read
//! from the daemon's config by `settings.rs`; both it and
//! [`ShopifyConfig::validate`] (for a config made in code) judge values by
//! the checks here ([`api_version_problem`], [`location_gid`]), so a value
//! is right or wrong by one rule wherever it comes from, and a bad location
//! id fails at start, not on the first stock push.

use switchyard_contract::{ConnectorError, Secret};

/// The Admin API version this crate's GraphQL documents are written and
/// tested against (the vendored schema in `schema/`).
pub const DEFAULT_API_VERSION: &str = "2026-10";

/// One Shopify store. `Debug` never shows the secrets ([`Secret`] prints `***`).
#[derive(Debug, Clone)]
pub struct ShopifyConfig {
    /// The switchyard account id: canonical order ids are `"<account>:<order id>"`.
    pub account: String,
    /// `https://<shop>.myshopify.com`, or the simulator / replay server in tests.
    pub base_url: String,
    /// Sent as `X-Shopify-Access-Token`.
    pub access_token: Secret,
    /// Webhook signing secrets. Several are accepted at once because Shopify
    /// keeps signing with the old client secret for up to an hour after a
    /// rotation.
    pub webhook_secrets: Vec<Secret>,
    /// Where stock is set: `"123"` or `"gid://shopify/Location/123"`. `None`
    /// means the shop's primary location, looked up on the first push.
    pub location_id: Option<String>,
    /// `YYYY-MM`; defaults to [`DEFAULT_API_VERSION`].
    pub api_version: String,
    /// Whether Shopify e-mails the buyer when tracking is pushed. On by default:
    /// the shipment confirmation is what a buyer expects once the warehouse
    /// ships, and Shopify's own default (`false`) would leave them uninformed.
    pub notify_customer: bool,
}

impl ShopifyConfig {
    /// A config with the defaults: API version [`DEFAULT_API_VERSION`], no
    /// webhook secrets, the primary location, buyers notified of shipments.
    pub fn new(
        account: impl Into<String>,
        base_url: impl Into<String>,
        access_token: Secret,
    ) -> Self {
        ShopifyConfig {
            account: account.into(),
            base_url: base_url.into(),
            access_token,
            webhook_secrets: Vec::new(),
            location_id: None,
            api_version: DEFAULT_API_VERSION.to_owned(),
            notify_customer: true,
        }
    }

    /// Checks everything that can be checked without I/O; every problem is
    /// named, all of them at once.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let mut problems = Vec::new();
        if self.account.trim().is_empty() {
            problems.push("account id is empty".to_owned());
        }
        if !(self.base_url.starts_with("https://") || self.base_url.starts_with("http://")) {
            problems.push(format!(
                "base_url {:?} must start with https:// or http://",
                self.base_url
            ));
        }
        if self.access_token.expose().trim().is_empty() {
            problems.push("access_token is empty".to_owned());
        }
        if let Some(problem) = api_version_problem(&self.api_version) {
            problems.push(format!("api_version {problem}"));
        }
        if let Some(loc) = &self.location_id
            && let Err(problem) = location_gid(loc)
        {
            problems.push(format!("location_id {problem}"));
        }
        if self.webhook_secrets.iter().any(|s| s.expose().is_empty()) {
            problems.push("a webhook secret is empty".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConnectorError::Config(format!(
                "shopify account {:?}: {}",
                self.account,
                problems.join("; ")
            )))
        }
    }

    /// The GraphQL Admin endpoint.
    pub fn graphql_url(&self) -> String {
        format!(
            "{}/admin/api/{}/graphql.json",
            self.base_url.trim_end_matches('/'),
            self.api_version
        )
    }
}

/// Why `v` is not an API version this crate can ask for, if it is not.
/// Shopify releases quarterly (`2026-01`, `-04`, `-07`, `-10`); `unstable`
/// is its preview version, allowed for experiments.
pub fn api_version_problem(v: &str) -> Option<String> {
    // Bytes, not `&v[..4]`: a 7-byte value with a multi-byte character
    // across byte 4 ("202é-1") would panic a string slice.
    let b = v.as_bytes();
    let quarterly = b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && matches!(&b[4..], b"-01" | b"-04" | b"-07" | b"-10");
    if quarterly || v == "unstable" {
        return None;
    }
    Some(format!(
        "{v:?} is not a Shopify API version; use a quarterly release like \
         \"{DEFAULT_API_VERSION}\" (months 01, 04, 07, 10) or \"unstable\""
    ))
}

/// `"123"` or `"gid://shopify/Location/123"` → the GID; anything else is an
/// error that names the value (and not the key, which the caller names).
pub fn location_gid(value: &str) -> Result<String, String> {
    let v = value.trim();
    let numeric = v.strip_prefix(LOCATION_GID).unwrap_or(v);
    let number = !numeric.is_empty() && numeric.bytes().all(|b| b.is_ascii_digit());
    if number && numeric.bytes().any(|b| b != b'0') {
        Ok(format!("{LOCATION_GID}{numeric}"))
    } else {
        Err(format!(
            "{value:?} is not a location id: give its number or a gid like \"{LOCATION_GID}123\""
        ))
    }
}

const LOCATION_GID: &str = "gid://shopify/Location/";

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ShopifyConfig {
        ShopifyConfig::new(
            "shop-us",
            "https://example.myshopify.com",
            Secret::new("test-token"),
        )
    }

    #[test]
    fn defaults_are_valid_and_build_the_endpoint() {
        let c = config();
        c.validate().unwrap();
        assert_eq!(
            c.graphql_url(),
            "https://example.myshopify.com/admin/api/2026-10/graphql.json"
        );
        assert!(c.notify_customer);
    }

    #[test]
    fn location_ids_are_numbers_or_location_gids() {
        assert_eq!(location_gid("123").unwrap(), "gid://shopify/Location/123");
        assert_eq!(
            location_gid("gid://shopify/Location/123").unwrap(),
            "gid://shopify/Location/123"
        );
        assert!(location_gid("gid://shopify/Product/123").is_err());
        assert!(location_gid("main-warehouse").is_err());
        assert!(location_gid("").is_err());
        assert!(location_gid("0").is_err());
    }

    #[test]
    fn api_versions_are_quarterly_releases() {
        for good in ["2026-10", "2025-01", "unstable"] {
            assert_eq!(api_version_problem(good), None, "{good}");
        }
        for bad in ["2026-02", "latest", "2026-1", "202\u{e9}-1", ""] {
            assert!(api_version_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_without_the_token() {
        let mut c = config();
        c.base_url = "example.myshopify.com".into();
        c.api_version = "latest".into();
        c.location_id = Some("warehouse".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("base_url") && err.contains("api_version") && err.contains("location_id"),
            "{err}"
        );
        assert!(!err.contains("test-token"));
        assert!(!format!("{c:?}").contains("test-token"));
    }
}
