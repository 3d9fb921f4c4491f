//! The connectors of the configured accounts, each built once (from its
//! channel crate's settings, the shared HTTP client, its token store and its
//! pacer) and shared as `Arc<dyn Connector>` by everything that calls the
//! channel for the account: the poll loop, webhooks, fetch jobs, the outbox
//! worker and `sync` backfills. Two instances of one account would hold two
//! copies of its rotating tokens and invalidate each other's.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use switchyard_contract::{BoxFuture, BuildContext, Channel, ChannelHints, Connector, Operation};

use super::tokens::{StoredTokens, TokenBoard};
use crate::config::{AccountConfig, Config};
use crate::effects::stock::StockTargets;
use crate::pacing::{AccountPacer, PacerOptions, bounded};
use crate::registry;
use crate::store::Store;

/// Why an account has no connector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("{}", registry::not_built_in(*.0))]
    NotBuiltIn(Channel),
    #[error("account {account}: {detail}")]
    Config { account: String, detail: String },
}

/// One account with its connector, and what the connector was built with.
pub struct Connected {
    pub account: AccountConfig,
    pub connector: Arc<dyn Connector>,
    pub pacer: Arc<AccountPacer>,
    pub hints: ChannelHints,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("account", &self.account.id)
            .field("channel", &self.account.channel)
            .finish_non_exhaustive()
    }
}

/// What the connector's `check` (a cheap read-only call that proves the
/// credentials and the base URL) came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub account: String,
    pub ok: bool,
    pub at: DateTime<Utc>,
    /// What went wrong and what to do, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Connected {
    /// Runs the connector's `check` through the account's pacer, with the
    /// channel's call timeout, and logs what it came to.
    pub async fn check(&self) -> CheckResult {
        let account = &self.account.id;
        let answer = bounded(self.hints.call_timeout, None, async {
            self.pacer.ready(Operation::Lookup, 1).await;
            self.connector.check().await
        })
        .await;
        let error = match answer {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        match &error {
            None => {
                tracing::info!(account = %account, channel = %self.account.channel, "the channel answered the check: credentials and base URL work")
            }
            Some(e) => {
                tracing::error!(account = %account, channel = %self.account.channel, error = %e, "the channel refused or did not answer the check; the account's calls will fail until this is fixed")
            }
        }
        CheckResult {
            account: account.clone(),
            ok: error.is_none(),
            at: Utc::now(),
            error,
        }
    }

    /// Builds `account`'s connector. No I/O happens here.
    pub fn build(
        account: &AccountConfig,
        http: &reqwest::Client,
        store: &Store,
        tokens: &TokenBoard,
    ) -> Result<Connected, BuildError> {
        let Some(settings) = &account.settings else {
            return Err(BuildError::NotBuiltIn(account.channel));
        };
        let pacer = AccountPacer::new(&account.id, PacerOptions::default());
        let ctx = BuildContext {
            account: account.id.clone(),
            base_url: account.base_url.clone(),
            http: http.clone(),
            tokens: Arc::new(StoredTokens::new(
                &account.id,
                account.refresh_token_id.clone(),
                store.clone(),
                tokens.clone(),
            )),
            pacer: pacer.clone(),
        };
        let connector = settings.build(ctx).map_err(|e| BuildError::Config {
            account: account.id.clone(),
            detail: e.to_string(),
        })?;
        let hints = connector.hints();
        // The pacer was made before the connector it paces: now it follows
        // the connector's published limits and its polls' low-water mark.
        pacer.follow(&connector);
        Ok(Connected {
            account: account.clone(),
            connector,
            pacer,
            hints,
        })
    }
}

/// Whether `account`'s connector can be built (its channel is built in and
/// its settings make a connector), without a store: what `check` reports.
pub fn check_build(account: &AccountConfig, http: &reqwest::Client) -> Result<(), BuildError> {
    let Some(settings) = &account.settings else {
        return Err(BuildError::NotBuiltIn(account.channel));
    };
    let ctx = BuildContext {
        account: account.id.clone(),
        base_url: account.base_url.clone(),
        http: http.clone(),
        tokens: switchyard_contract::tokens::MemoryTokenStore::shared(),
        pacer: switchyard_contract::Unpaced::shared(),
    };
    settings
        .build(ctx)
        .map(drop)
        .map_err(|e| BuildError::Config {
            account: account.id.clone(),
            detail: e.to_string(),
        })
}

/// Every configured account whose channel is built in, with its connector;
/// and why the others are skipped. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Connectors {
    accounts: BTreeMap<String, Arc<Connected>>,
    skipped: Vec<(AccountConfig, String)>,
    tokens: TokenBoard,
    /// The latest check of each account (at start, and on demand).
    checks: Arc<Mutex<BTreeMap<String, CheckResult>>>,
}

/// Runs every account's connector check (`switchyard check --online`
/// while the daemon runs asks the daemon, whose connectors hold the
/// accounts' tokens).
pub trait Checks: Send + Sync {
    fn check_all(&self) -> BoxFuture<'_, Vec<CheckResult>>;
}

impl Checks for Connectors {
    fn check_all(&self) -> BoxFuture<'_, Vec<CheckResult>> {
        Box::pin(async move {
            let mut results = Vec::new();
            for connected in self.accounts.values() {
                let result = connected.check().await;
                self.checks
                    .lock()
                    .insert(result.account.clone(), result.clone());
                results.push(result);
            }
            results
        })
    }
}

impl Connectors {
    /// Builds one connector per account. An account of a channel that is
    /// not built in is skipped (and logged); any other failure is an error.
    pub fn build(
        config: &Config,
        http: &reqwest::Client,
        store: &Store,
    ) -> Result<Connectors, BuildError> {
        let tokens = TokenBoard::default();
        let mut accounts = BTreeMap::new();
        let mut skipped = Vec::new();
        for account in &config.accounts {
            match Connected::build(account, http, store, &tokens) {
                Ok(c) => {
                    accounts.insert(account.id.clone(), Arc::new(c));
                }
                Err(e @ BuildError::NotBuiltIn(_)) => {
                    tracing::warn!(account = %account.id, "{e}; account skipped");
                    skipped.push((account.clone(), e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Connectors {
            accounts,
            skipped,
            tokens,
            checks: Arc::default(),
        })
    }

    pub fn get(&self, account: &str) -> Option<&Arc<Connected>> {
        self.accounts.get(account)
    }

    /// The accounts with a connector, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Connected>> {
        self.accounts.values()
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The accounts skipped, with why.
    pub fn skipped(&self) -> &[(AccountConfig, String)] {
        &self.skipped
    }

    /// Every account's token state.
    pub fn tokens(&self) -> &TokenBoard {
        &self.tokens
    }

    /// The latest check of an account, if one ran.
    pub fn last_check(&self, account: &str) -> Option<CheckResult> {
        self.checks.lock().get(account).cloned()
    }
}

/// What the daemon, `sync` and the CLI queue outbound work with: the stock
/// targets, and the accounts whose channel cannot take tracking pushes.
pub fn outbound(config: &Config) -> crate::effects::Outbound {
    let no_tracking = config.accounts.iter().filter_map(|a| {
        let d = registry::descriptor(a.channel)?;
        Some((a.id.clone(), a.channel, d.capabilities))
    });
    crate::effects::Outbound::new(stock_targets(config))
        .with_no_tracking(crate::effects::tracking::NoTracking::new(no_tracking))
}

/// Every configured account whose channel is built in and can push
/// inventory, with its buffer (the channel's capabilities are constant, so
/// nothing is built): what `Outbound::new` takes in the daemon, `sync` and
/// the CLI.
pub fn stock_targets(config: &Config) -> StockTargets {
    StockTargets::from_config(config, |a| {
        a.settings.is_some()
            && registry::descriptor(a.channel).is_some_and(|d| d.capabilities.push_inventory)
    })
}
