//! How an Etsy account's keys come out of the daemon's config: the keys
//! `shop_id`, `api_key` (the app keystring), `shared_secret`*,
//! `access_token`* (optional: the first call refreshes without one),
//! `refresh_token`*, `token_url` (default: the token endpoint under the
//! account's `base_url`, which for Etsy itself is its real one) and
//! `webhook_secret`* (required with `webhooks = true`), each secret (*) also
//! as `KEY_env` or `KEY_file`. Read through the daemon's [`SettingsReader`],
//! which keeps every problem located in the file.

use std::any::Any;
use std::sync::Arc;

use switchyard_contract::{
    AccountSettings, BuildContext, Connector, ConnectorError, Need, Secret, SettingsReader,
};

use crate::EtsyConnector;
use crate::config::{DEFAULT_TOKEN_PATH, EtsyConfig, MAX_PAGE_SIZE};

/// One Etsy account's channel keys, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtsySettings {
    pub shop_id: u64,
    pub api_key: String,
    pub shared_secret: Secret,
    pub access_token: Option<Secret>,
    pub refresh_token: Secret,
    pub token_url: String,
    pub webhook_secret: Option<Secret>,
}

impl EtsySettings {
    /// The connector's config for the account the daemon builds.
    pub fn config(&self, account: &str, base_url: &str) -> EtsyConfig {
        EtsyConfig {
            account: account.to_owned(),
            base_url: base_url.to_owned(),
            shop_id: self.shop_id,
            keystring: self.api_key.clone(),
            shared_secret: self.shared_secret.clone(),
            access_token: self.access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            token_url: self.token_url.clone(),
            webhook_secret: self.webhook_secret.clone(),
            page_size: MAX_PAGE_SIZE,
        }
    }
}

impl AccountSettings for EtsySettings {
    fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        let config = self.config(&ctx.account, &ctx.base_url);
        Ok(Arc::new(EtsyConnector::new(
            config, ctx.http, ctx.tokens, ctx.pacer,
        )?))
    }

    /// Field by field; secrets compare by value in constant time (`Secret`'s
    /// `PartialEq`), so a rotated secret counts as a change.
    fn same_as(&self, other: &dyn AccountSettings) -> bool {
        other
            .as_any()
            .downcast_ref::<EtsySettings>()
            .is_some_and(|o| o == self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reads an Etsy account's keys; `None` when any is wrong (each problem
/// recorded through `reader`, all of them in one pass).
pub fn read_settings(reader: &mut dyn SettingsReader) -> Option<Box<dyn AccountSettings>> {
    let shop_id = reader.string("shop_id", Need::Required);
    let api_key = reader.string("api_key", Need::Required);
    let shared_secret = reader.secret("shared_secret", Need::Required);
    let access_token = reader.secret("access_token", Need::Optional);
    let refresh_token = reader.secret("refresh_token", Need::Required);
    let token_url = reader.url("token_url", Need::Optional);
    let webhook_need = reader.webhook_need();
    let webhook_secret = reader.secret("webhook_secret", webhook_need);

    let shop_id = shop_id.and_then(|s| match s.trim().parse::<u64>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            reader.invalid(
                "shop_id",
                &format!("{s:?} is not a shop id: the shop's number, e.g. \"12345678\""),
            );
            None
        }
    });
    let api_key = api_key.and_then(|k| {
        if k.contains(':') {
            reader.invalid(
                "api_key",
                "is the app's keystring alone; the shared secret goes in shared_secret",
            );
            None
        } else {
            Some(k.trim().to_owned())
        }
    });
    Some(Box::new(EtsySettings {
        shop_id: shop_id?,
        api_key: api_key?,
        shared_secret: shared_secret?,
        access_token,
        refresh_token: refresh_token?,
        token_url: token_url.unwrap_or_else(|| DEFAULT_TOKEN_PATH.to_owned()),
        webhook_secret,
    }))
}

/// The credentials the fixtures under `fixtures/etsy/` were recorded with.
pub mod replay {
    pub const SHOP_ID: u64 = 12345678;
    pub const KEYSTRING: &str = "test-keystring";
    pub const SHARED_SECRET: &str = "test-shared-secret";
    pub const ACCESS_TOKEN: &str = "12345678.test-access-token-1";
    pub const REFRESH_TOKEN: &str = "12345678.test-refresh-token-1";
    /// Served by the replay server and the simulator, under `base_url`.
    pub const TOKEN_PATH: &str = crate::config::DEFAULT_TOKEN_PATH;
    /// Standard Webhooks secret: `whsec_` + base64 of
    /// `fixture-webhook-signing-key`.
    pub const WEBHOOK_SECRET: &str = "whsec_Zml4dHVyZS13ZWJob29rLXNpZ25pbmcta2V5";
}

/// Settings matching the fixtures' test credentials, for `switchyard replay`
/// and the simulator.
pub fn replay_settings(_account: &str) -> Box<dyn AccountSettings> {
    Box::new(EtsySettings {
        shop_id: replay::SHOP_ID,
        api_key: replay::KEYSTRING.to_owned(),
        shared_secret: Secret::new(replay::SHARED_SECRET),
        access_token: Some(Secret::new(replay::ACCESS_TOKEN)),
        refresh_token: Secret::new(replay::REFRESH_TOKEN),
        token_url: replay::TOKEN_PATH.to_owned(),
        webhook_secret: Some(Secret::new(replay::WEBHOOK_SECRET)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A config table as the daemon would hand it, recording problems by key.
    #[derive(Default)]
    struct Table {
        webhooks: bool,
        values: BTreeMap<&'static str, &'static str>,
        problems: BTreeMap<String, String>,
    }

    impl Table {
        fn with(values: &[(&'static str, &'static str)], webhooks: bool) -> Self {
            Table {
                webhooks,
                values: values.iter().copied().collect(),
                problems: BTreeMap::new(),
            }
        }

        fn get(&mut self, key: &str, need: Need) -> Option<String> {
            match self.values.get(key) {
                Some(v) if !v.is_empty() => Some((*v).to_owned()),
                _ => {
                    match need {
                        Need::Required => {
                            self.problems.insert(key.into(), "missing".into());
                        }
                        Need::RequiredBecause(why) => {
                            self.problems
                                .insert(key.into(), format!("missing: required because {why}"));
                        }
                        Need::Optional => {}
                    }
                    None
                }
            }
        }
    }

    impl SettingsReader for Table {
        fn account(&self) -> &str {
            "etsy-main"
        }
        fn webhooks(&self) -> bool {
            self.webhooks
        }
        fn string(&mut self, key: &str, need: Need) -> Option<String> {
            self.get(key, need)
        }
        fn strings(&mut self, key: &str, need: Need) -> Option<Vec<String>> {
            self.get(key, need).map(|v| vec![v])
        }
        fn url(&mut self, key: &str, need: Need) -> Option<String> {
            let v = self.get(key, need)?;
            if v.starts_with("http://") || v.starts_with("https://") {
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
            self.get(key, need).map(Secret::new)
        }
        fn invalid(&mut self, key: &str, problem: &str) {
            self.problems.insert(key.into(), problem.into());
        }
    }

    const FULL: &[(&str, &str)] = &[
        ("shop_id", "12345678"),
        ("api_key", "demo-keystring"),
        ("shared_secret", "demo-shared"),
        ("refresh_token", "demo-refresh"),
        ("webhook_secret", "whsec_ZGVtbw=="),
    ];

    fn read(
        values: &[(&'static str, &'static str)],
        webhooks: bool,
    ) -> (Option<EtsySettings>, Table) {
        let mut t = Table::with(values, webhooks);
        let s = read_settings(&mut t).map(|s| {
            s.as_any()
                .downcast_ref::<EtsySettings>()
                .expect("etsy settings")
                .clone()
        });
        (s, t)
    }

    #[test]
    fn a_complete_account_reads_with_the_default_token_url() {
        let (s, t) = read(FULL, true);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let s = s.unwrap();
        assert_eq!(s.shop_id, 12345678);
        assert_eq!(s.token_url, DEFAULT_TOKEN_PATH);
        assert!(s.access_token.is_none());
        let c = s.config("etsy-main", "https://openapi.etsy.com");
        c.validate().unwrap();
    }

    #[test]
    fn every_problem_is_keyed_by_its_field_in_one_pass() {
        let (s, t) = read(
            &[
                ("shop_id", "my-shop"),
                ("api_key", "key:secret"),
                ("token_url", "openapi.etsy.com/token"),
            ],
            true,
        );
        assert!(s.is_none());
        let keys: Vec<&str> = t.problems.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "api_key",
                "refresh_token",
                "shared_secret",
                "shop_id",
                "token_url",
                "webhook_secret"
            ]
        );
        assert!(t.problems["webhook_secret"].contains("webhooks = true"));
        assert!(t.problems["shop_id"].contains("my-shop"));
    }

    #[test]
    fn the_webhook_secret_is_optional_without_webhooks() {
        let values: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "webhook_secret")
            .collect();
        let (s, t) = read(&values, false);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert!(s.unwrap().webhook_secret.is_none());
    }

    #[test]
    fn same_as_compares_secrets_by_value() {
        let (a, _) = read(FULL, true);
        let (b, _) = read(FULL, true);
        let a = a.unwrap();
        let mut b = b.unwrap();
        assert!(a.same_as(&b));
        b.refresh_token = Secret::new("rotated-by-hand");
        assert!(!a.same_as(&b));
        let mut c = a.clone();
        c.access_token = Some(Secret::new("x"));
        assert!(!a.same_as(&c));
        assert!(!format!("{a:?}").contains("demo-shared"));
    }

    #[test]
    fn replay_settings_build_a_valid_config_with_the_token_endpoint_under_base_url() {
        let s = replay_settings("etsy-main");
        let s = s.as_any().downcast_ref::<EtsySettings>().unwrap();
        let c = s.config("etsy-main", "http://127.0.0.1:9");
        c.validate().unwrap();
        assert_eq!(
            c.token_endpoint(),
            "http://127.0.0.1:9/v3/public/oauth/token"
        );
    }
}
