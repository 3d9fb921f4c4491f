//! The daemon's side of OAuth tokens: the contract's `TokenStore` over the
//! store (one record per account, saved and flushed before the connector
//! uses what it saved), and the board of every account's token state that
//! `/readyz` and `/metrics` show.
//!
//! A record remembers which configured refresh token it descends from (a
//! fingerprint): an operator who re-authorizes and puts the new refresh
//! token in the config is not overridden by tokens saved under the old one.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use chrono::Utc;
use switchyard_contract::{BoxFuture, ConnectorError, Secret, TokenSet, TokenState, TokenStore};

use crate::store::{SavedTokens, Store};

/// Every account's token state, as last reported. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TokenBoard(Arc<Mutex<BTreeMap<String, TokenState>>>);

impl TokenBoard {
    pub fn get(&self, account: &str) -> Option<TokenState> {
        self.lock().get(account).cloned()
    }

    pub fn set(&self, account: &str, state: TokenState) {
        self.lock().insert(account.to_owned(), state);
    }

    pub fn snapshot(&self) -> BTreeMap<String, TokenState> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, TokenState>> {
        self.0.lock()
    }
}

/// One account's tokens in the store.
pub struct StoredTokens {
    account: String,
    /// The configured refresh token's fingerprint (`None`: none configured).
    configured: Option<String>,
    store: Store,
    board: TokenBoard,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl StoredTokens {
    /// `configured`: `AccountConfig::refresh_token_id`. An account with no
    /// configured refresh token uses its tokens as configured: its state is
    /// `static` until its connector says otherwise.
    pub fn new(
        account: &str,
        configured: Option<String>,
        store: Store,
        board: TokenBoard,
    ) -> StoredTokens {
        if configured.is_none() && board.get(account).is_none() {
            board.set(account, TokenState::Static);
        }
        StoredTokens {
            account: account.to_owned(),
            configured,
            store,
            board,
        }
    }
}

fn store_error(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Transient(format!("token store: {e}"))
}

impl TokenStore for StoredTokens {
    fn load(&self) -> Result<Option<TokenSet>, ConnectorError> {
        let Some(saved) = self.store.tokens(&self.account).map_err(store_error)? else {
            return Ok(None);
        };
        if saved.configured != self.configured {
            tracing::info!(account = %self.account, "the configured refresh token changed since tokens were last saved; using the configured one");
            return Ok(None);
        }
        Ok(Some(TokenSet {
            access_token: saved.access_token.map(Secret::new),
            access_expires_at: saved.access_expires_at,
            refresh_token: saved.refresh_token.map(Secret::new),
        }))
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let saved = SavedTokens {
                configured: self.configured.clone(),
                access_token: tokens.access_token.as_ref().map(|s| s.expose().to_owned()),
                access_expires_at: tokens.access_expires_at,
                refresh_token: tokens.refresh_token.as_ref().map(|s| s.expose().to_owned()),
                saved_at: Utc::now(),
            };
            let seq = self
                .store
                .save_tokens(&self.account, &saved)
                .map_err(store_error)?;
            self.store.flushed(seq).await.map_err(store_error)
        })
    }

    fn report(&self, state: TokenState) {
        if let TokenState::RefreshFailed { reason, .. } = &state {
            tracing::error!(account = %self.account, reason = %reason, "the account's access token could not be refreshed");
        }
        self.board.set(&self.account, state);
    }
}
