//! What one Etsy account needs: the shop, the app's keystring and shared
//! secret, the OAuth tokens and where to refresh them, the webhook signing
//! secret. Plain data, checked once by [`EtsyConfig::validate`] so that a bad
//! value fails at start, not on the first call. The daemon fills it through
//! [`crate::settings`]; tests build it directly.

use switchyard_contract::{ConnectorError, Secret};

/// Where the token endpoint is unless `token_url` says otherwise: under the
/// API's base URL, which for `https://openapi.etsy.com` is the endpoint
/// Etsy's published API description names
/// (`https://openapi.etsy.com/v3/public/oauth/token`), and for the
/// simulator or a replay server is theirs.
pub const DEFAULT_TOKEN_PATH: &str = "/v3/public/oauth/token";

/// The most receipts (and listings) Etsy returns on one page.
pub const MAX_PAGE_SIZE: u32 = 100;

/// One Etsy shop. `Debug` never shows the secrets ([`Secret`] prints `***`).
#[derive(Debug, Clone)]
pub struct EtsyConfig {
    /// The switchyard account id: canonical order ids are `"<account>:<receipt id>"`.
    pub account: String,
    /// `https://openapi.etsy.com`, or the simulator / replay server in tests.
    pub base_url: String,
    pub shop_id: u64,
    /// The app's keystring: sent as the OAuth `client_id` and, with the
    /// shared secret, in `x-api-key`.
    pub keystring: String,
    pub shared_secret: Secret,
    /// A configured access token, used until Etsy refuses it; `None` means
    /// the first call refreshes.
    pub access_token: Option<Secret>,
    pub refresh_token: Secret,
    /// The token endpoint: a full URL, or a path under `base_url` (a value
    /// starting with `/`; the default, [`DEFAULT_TOKEN_PATH`]).
    pub token_url: String,
    /// The Standard Webhooks signing secret (`whsec_…`), when webhooks are on.
    pub webhook_secret: Option<Secret>,
    /// Receipts asked for per page: [`MAX_PAGE_SIZE`]; fixtures use smaller
    /// pages to show paging without a hundred receipts.
    pub page_size: u32,
}

impl EtsyConfig {
    /// A config with the defaults: the token endpoint under `base_url`, no webhooks,
    /// full pages, no configured access token.
    pub fn new(
        account: impl Into<String>,
        base_url: impl Into<String>,
        shop_id: u64,
        keystring: impl Into<String>,
        shared_secret: Secret,
        refresh_token: Secret,
    ) -> Self {
        EtsyConfig {
            account: account.into(),
            base_url: base_url.into(),
            shop_id,
            keystring: keystring.into(),
            shared_secret,
            access_token: None,
            refresh_token,
            token_url: DEFAULT_TOKEN_PATH.to_owned(),
            webhook_secret: None,
            page_size: MAX_PAGE_SIZE,
        }
    }

    /// Checks everything that can be checked without I/O; every problem is
    /// named, all of them at once, no secret printed.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let mut problems = Vec::new();
        if self.account.trim().is_empty() {
            problems.push("account id is empty".to_owned());
        }
        if !is_http(&self.base_url) {
            problems.push(format!(
                "base_url {:?} must start with https:// or http://",
                self.base_url
            ));
        }
        if self.shop_id == 0 {
            problems.push("shop_id must be a positive number".to_owned());
        }
        if self.keystring.trim().is_empty() || self.keystring.contains(':') {
            problems
                .push("api_key must be the app's keystring (not empty, without ':')".to_owned());
        }
        if self.shared_secret.expose().trim().is_empty() {
            problems.push("shared_secret is empty".to_owned());
        }
        if self.refresh_token.expose().trim().is_empty() {
            problems.push("refresh_token is empty".to_owned());
        }
        if self
            .access_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            problems.push("access_token is empty".to_owned());
        }
        if !(is_http(&self.token_url) || self.token_url.starts_with('/')) {
            problems.push(format!(
                "token_url {:?} must start with https:// or http://",
                self.token_url
            ));
        }
        if self
            .webhook_secret
            .as_ref()
            .is_some_and(|s| s.expose().trim().is_empty())
        {
            problems.push("webhook_secret is empty".to_owned());
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            problems.push(format!(
                "page size {} is outside Etsy's 1..={MAX_PAGE_SIZE}",
                self.page_size
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConnectorError::Config(format!(
                "etsy account {:?}: {}",
                self.account,
                problems.join("; ")
            )))
        }
    }

    /// `base_url` without a trailing slash.
    pub fn api_root(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// The token endpoint as a full URL.
    pub fn token_endpoint(&self) -> String {
        if self.token_url.starts_with('/') {
            format!("{}{}", self.api_root(), self.token_url)
        } else {
            self.token_url.clone()
        }
    }

    /// The `x-api-key` value Etsy requires on every call: `keystring:shared_secret`.
    pub(crate) fn api_key_header(&self) -> Secret {
        Secret::new(format!(
            "{}:{}",
            self.keystring.trim(),
            self.shared_secret.expose()
        ))
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EtsyConfig {
        EtsyConfig::new(
            "etsy-main",
            "https://openapi.etsy.com/",
            12345678,
            "test-keystring",
            Secret::new("test-shared-secret"),
            Secret::new("test-refresh-token"),
        )
    }

    #[test]
    fn defaults_are_valid_and_build_the_endpoints() {
        let c = config();
        c.validate().unwrap();
        assert_eq!(c.api_root(), "https://openapi.etsy.com");
        assert_eq!(
            c.token_endpoint(),
            "https://openapi.etsy.com/v3/public/oauth/token"
        );
        assert_eq!(
            c.api_key_header().expose(),
            "test-keystring:test-shared-secret"
        );
        let mut elsewhere = c.clone();
        elsewhere.token_url = "https://api.etsy.com/v3/public/oauth/token".into();
        assert_eq!(
            elsewhere.token_endpoint(),
            "https://api.etsy.com/v3/public/oauth/token"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_without_a_secret() {
        let mut c = config();
        c.base_url = "openapi.etsy.com".into();
        c.shop_id = 0;
        c.keystring = "key:secret".into();
        c.token_url = "ftp://x".into();
        c.page_size = 500;
        let err = c.validate().unwrap_err().to_string();
        for want in ["base_url", "shop_id", "api_key", "token_url", "page size"] {
            assert!(err.contains(want), "{want}: {err}");
        }
        assert!(!err.contains("test-shared-secret") && !err.contains("test-refresh-token"));
        assert!(!format!("{c:?}").contains("test-shared-secret"));
    }
}
