//! The connectors built into this daemon, picked with one `match` on the
//! closed channel enum. Adding a channel is one crate, one variant here and
//! one arm in `build`; nothing registers itself.

use std::future::Future;

use chrono::{DateTime, Utc};
use switchyard_contract::{
    Capabilities, Channel, Connector, ConnectorError, Cursor, InventoryPush, InventoryResult,
    NormalizedOrder, OrderPage, TrackingPush, TrackingResult, WebhookOutcome, WebhookRequest,
};

use crate::config::AccountConfig;

/// One connector of any built-in channel. It has no variants until the first
/// channel crate lands; each connector issue adds one.
pub enum AnyConnector {}

/// Why an account has no connector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("no {0} connector in this build yet")]
    NotBuiltIn(Channel),
    #[error("account {account}: {detail}")]
    Config { account: String, detail: String },
}

/// Builds the connector for an account. No I/O happens here.
pub fn build(account: &AccountConfig, _http: &reqwest::Client) -> Result<AnyConnector, BuildError> {
    match account.channel {
        Channel::Shopify | Channel::Etsy | Channel::Ebay | Channel::Amazon => {
            Err(BuildError::NotBuiltIn(account.channel))
        }
    }
}

impl Connector for AnyConnector {
    fn channel(&self) -> Channel {
        match *self {}
    }

    fn capabilities(&self) -> Capabilities {
        match *self {}
    }

    fn check(&self) -> impl Future<Output = Result<(), ConnectorError>> + Send {
        let never: &AnyConnector = self;
        async move { match *never {} }
    }

    fn poll_orders(
        &self,
        _cursor: Option<&Cursor>,
        _since: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> impl Future<Output = Result<OrderPage, ConnectorError>> + Send {
        let never: &AnyConnector = self;
        async move { match *never {} }
    }

    fn fetch_orders(
        &self,
        _ids: &[String],
    ) -> impl Future<Output = Result<Vec<NormalizedOrder>, ConnectorError>> + Send {
        let never: &AnyConnector = self;
        async move { match *never {} }
    }

    fn verify_webhook(&self, _req: &WebhookRequest) -> Result<(), ConnectorError> {
        match *self {}
    }

    fn parse_webhook(&self, _req: &WebhookRequest) -> Result<WebhookOutcome, ConnectorError> {
        match *self {}
    }

    fn push_inventory(
        &self,
        _push: &InventoryPush,
    ) -> impl Future<Output = Result<InventoryResult, ConnectorError>> + Send {
        let never: &AnyConnector = self;
        async move { match *never {} }
    }

    fn push_tracking(
        &self,
        _push: &TrackingPush,
    ) -> impl Future<Output = Result<TrackingResult, ConnectorError>> + Send {
        let never: &AnyConnector = self;
        async move { match *never {} }
    }
}
