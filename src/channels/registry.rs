//! The connectors built into this daemon, picked with one `match` on the
//! closed channel enum. Adding a channel is one crate, one variant here and
//! one arm in `build`; nothing registers itself.

use chrono::{DateTime, Utc};
use switchyard_contract::connector::{Operation, RateLimit};
use switchyard_contract::{
    Capabilities, Channel, Connector, ConnectorError, Cursor, InventoryPush, InventoryResult,
    NormalizedOrder, OrderPage, RateHint, TrackingPush, TrackingResult, WebhookOutcome,
    WebhookRequest,
};
use switchyard_shopify::{ShopifyConfig, ShopifyConnector};

use crate::config::{AccountConfig, ChannelSettings, Config};
use crate::effects::stock::StockTargets;

/// One connector of any built-in channel.
pub enum AnyConnector {
    Shopify(ShopifyConnector),
}

/// Calls the same method on whichever connector this is.
macro_rules! each {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            AnyConnector::Shopify($c) => $body,
        }
    };
}

/// Why an account has no connector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("no {0} connector in this build yet")]
    NotBuiltIn(Channel),
    #[error("account {account}: {detail}")]
    Config { account: String, detail: String },
}

/// Builds the connector for an account. No I/O happens here.
pub fn build(account: &AccountConfig, http: &reqwest::Client) -> Result<AnyConnector, BuildError> {
    let config_error = |e: ConnectorError| BuildError::Config {
        account: account.id.clone(),
        detail: e.to_string(),
    };
    match &account.settings {
        ChannelSettings::Shopify(s) => {
            let mut config =
                ShopifyConfig::new(&account.id, &account.base_url, s.access_token.clone());
            config.webhook_secrets = s
                .webhook_secret
                .iter()
                .chain(&s.webhook_secret_previous)
                .cloned()
                .collect();
            config.notify_customer = s.notify_customer;
            config.location_id = s.location_id.clone();
            config.api_version = s.api_version.clone();
            ShopifyConnector::new(config, http.clone())
                .map(AnyConnector::Shopify)
                .map_err(config_error)
        }
        ChannelSettings::Etsy(_) | ChannelSettings::Ebay(_) | ChannelSettings::Amazon(_) => {
            Err(BuildError::NotBuiltIn(account.channel))
        }
    }
}

/// The accounts whose connectors in this build can push inventory, with
/// their buffers: what `Outbound::new` takes in the daemon, `sync` and the CLI.
pub fn stock_targets(config: &Config, http: &reqwest::Client) -> StockTargets {
    StockTargets::from_config(config, |a| {
        build(a, http).is_ok_and(|c| c.capabilities().push_inventory)
    })
}

impl Connector for AnyConnector {
    fn channel(&self) -> Channel {
        each!(self, c => c.channel())
    }

    fn capabilities(&self) -> Capabilities {
        each!(self, c => c.capabilities())
    }

    fn rate_hint(&self) -> Option<RateHint> {
        each!(self, c => c.rate_hint())
    }

    fn listing_refs(&self, order: &NormalizedOrder) -> Vec<(String, String)> {
        each!(self, c => c.listing_refs(order))
    }

    fn rate_limit(&self, operation: Operation) -> RateLimit {
        each!(self, c => c.rate_limit(operation))
    }

    // `async fn`s, so that arms of different connectors (different future
    // types) share one return type.
    async fn check(&self) -> Result<(), ConnectorError> {
        each!(self, c => c.check().await)
    }

    async fn poll_orders(
        &self,
        cursor: Option<&Cursor>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<OrderPage, ConnectorError> {
        each!(self, c => c.poll_orders(cursor, since, now).await)
    }

    async fn fetch_orders(&self, ids: &[String]) -> Result<Vec<NormalizedOrder>, ConnectorError> {
        each!(self, c => c.fetch_orders(ids).await)
    }

    fn verify_webhook(&self, req: &WebhookRequest) -> Result<(), ConnectorError> {
        each!(self, c => c.verify_webhook(req))
    }

    fn parse_webhook(&self, req: &WebhookRequest) -> Result<WebhookOutcome, ConnectorError> {
        each!(self, c => c.parse_webhook(req))
    }

    async fn push_inventory(
        &self,
        push: &InventoryPush,
    ) -> Result<InventoryResult, ConnectorError> {
        each!(self, c => c.push_inventory(push).await)
    }

    fn inventory_batch_limit(&self) -> usize {
        each!(self, c => c.inventory_batch_limit())
    }

    async fn push_inventory_batch(
        &self,
        pushes: &[InventoryPush],
    ) -> Vec<Result<InventoryResult, ConnectorError>> {
        each!(self, c => c.push_inventory_batch(pushes).await)
    }

    async fn push_tracking(&self, push: &TrackingPush) -> Result<TrackingResult, ConnectorError> {
        each!(self, c => c.push_tracking(push).await)
    }
}
