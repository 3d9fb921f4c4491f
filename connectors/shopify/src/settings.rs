//! How a Shopify account plugs into the daemon: its keys in the config
//! (read through the daemon's [`SettingsReader`], so every problem is
//! reported at its FILE:LINE:COLUMN), what it can do, the settings
//! `switchyard replay` uses for this crate's fixtures, and [`DESCRIPTOR`],
//! the one line of the daemon's registry that names this crate.
//!
//! | key | |
//! | --- | --- |
//! | `access_token`* | Admin API token (`X-Shopify-Access-Token`); required |
//! | `webhook_secret`* | HMAC key of webhooks; required with `webhooks = true` |
//! | `webhook_secret_previous`* | the key before a rotation, accepted too while set |
//! | `location_id` | where stock is set: a number or `gid://shopify/Location/N`; default the primary location |
//! | `api_version` | a quarterly release (`2026-10`) or `unstable`; default [`DEFAULT_API_VERSION`] |
//! | `notify_customer` | whether Shopify e-mails the buyer when tracking is pushed; default true |
//!
//! (* a secret: also `KEY_env` or `KEY_file`.)

use std::any::Any;
use std::sync::Arc;

use switchyard_contract::{
    AccountSettings, BuildContext, Channel, ChannelDescriptor, Connector, ConnectorError, Need,
    Secret, SettingsReader,
};

use crate::config::{DEFAULT_API_VERSION, ShopifyConfig, api_version_problem, location_gid};
use crate::{CAPABILITIES, ShopifyConnector};

/// The registry entry of this crate: `switchyard_shopify::DESCRIPTOR`.
pub const DESCRIPTOR: ChannelDescriptor = ChannelDescriptor {
    channel: Channel::Shopify,
    capabilities: CAPABILITIES,
    read_settings,
    replay_settings,
};

/// The secret the recorded webhooks under `fixtures/shopify/` are signed
/// with (a test value, never a shop's).
pub const FIXTURE_WEBHOOK_SECRET: &str = "fixture-webhook-secret";

/// One Shopify account's keys, checked. `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifySettings {
    pub access_token: Secret,
    pub webhook_secret: Option<Secret>,
    /// The key before a rotation: Shopify may sign with it for up to an hour
    /// after the app's secret changed, so both are accepted while it is set.
    pub webhook_secret_previous: Option<Secret>,
    pub notify_customer: bool,
    /// Always a `gid://shopify/Location/N` (the file may say `N`); `None`:
    /// the shop's primary location.
    pub location_id: Option<String>,
    pub api_version: String,
}

impl ShopifySettings {
    /// The connector's config for this account.
    pub fn config(&self, account: &str, base_url: &str) -> ShopifyConfig {
        let mut config = ShopifyConfig::new(account, base_url, self.access_token.clone());
        config.webhook_secrets = self
            .webhook_secret
            .iter()
            .chain(&self.webhook_secret_previous)
            .cloned()
            .collect();
        config.notify_customer = self.notify_customer;
        config.location_id = self.location_id.clone();
        config.api_version = self.api_version.clone();
        config
    }
}

impl AccountSettings for ShopifySettings {
    fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        let config = self.config(&ctx.account, &ctx.base_url);
        Ok(Arc::new(ShopifyConnector::new(
            config, ctx.http, ctx.pacer,
        )?))
    }

    fn same_as(&self, other: &dyn AccountSettings) -> bool {
        other
            .as_any()
            .downcast_ref::<ShopifySettings>()
            .is_some_and(|o| o == self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reads a Shopify account's keys; `None` when any is wrong (each problem
/// is recorded through `r`, all of them in one pass).
pub fn read_settings(r: &mut dyn SettingsReader) -> Option<Box<dyn AccountSettings>> {
    let hooks = r.webhook_need();
    let access_token = r.secret("access_token", Need::Required);
    let webhook_secret = r.secret("webhook_secret", hooks);
    let webhook_secret_previous = r.secret("webhook_secret_previous", Need::Optional);
    let mut valid = webhook_secret.is_some() || !r.webhooks();
    let location_id = match r.string("location_id", Need::Optional) {
        Some(text) => match location_gid(&text) {
            Ok(gid) => Some(gid),
            Err(problem) => {
                r.invalid("location_id", &problem);
                valid = false;
                None
            }
        },
        None => None,
    };
    let api_version = match r.string("api_version", Need::Optional) {
        Some(text) => match api_version_problem(&text) {
            None => Some(text),
            Some(problem) => {
                r.invalid("api_version", &problem);
                valid = false;
                None
            }
        },
        None => None,
    };
    let notify_customer = r.boolean("notify_customer").unwrap_or(true);
    let settings = ShopifySettings {
        access_token: access_token?,
        webhook_secret,
        webhook_secret_previous,
        notify_customer,
        location_id,
        api_version: api_version.unwrap_or_else(|| DEFAULT_API_VERSION.to_owned()),
    };
    valid.then(|| Box::new(settings) as Box<dyn AccountSettings>)
}

/// Settings that fit the recorded fixtures: a test token, and the secret
/// the recorded webhooks are signed with.
pub fn replay_settings(_account: &str) -> Box<dyn AccountSettings> {
    Box::new(ShopifySettings {
        access_token: Secret::new("replay"),
        webhook_secret: Some(Secret::new(FIXTURE_WEBHOOK_SECRET)),
        webhook_secret_previous: None,
        notify_customer: true,
        location_id: None,
        api_version: DEFAULT_API_VERSION.to_owned(),
    })
}
