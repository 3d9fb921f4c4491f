//! OAuth tokens that outlive the process: the daemon's [`TokenStore`] (load,
//! durable save, state for `/readyz` and `/metrics`), and the
//! [`TokenKeeper`] every refreshing connector uses so that the dance is
//! written once:
//!
//! - one refresh at a time per account (a mutex held across the call);
//! - a rotated refresh token is saved and flushed the moment the channel
//!   returns it, before the new access token is used: Etsy invalidates the
//!   old one at once, so the only unsafe instant is between the channel's
//!   answer and that flush, and it is kept as short as the store allows;
//! - a refused refresh token is reported (state and error text say how to
//!   re-authorize) and not tried again for [`REFUSED_COOL_OFF`], never in a
//!   tight loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::connector::BoxFuture;
use crate::error::ConnectorError;
use crate::secret::Secret;

/// Refresh this long before the access token expires, so that a call made
/// just before expiry does not fail on the way.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// After the channel refused the refresh token, ask again no sooner than
/// this: it will not start working by itself, and the token endpoint has
/// limits of its own.
pub const REFUSED_COOL_OFF: Duration = Duration::from_secs(10 * 60);

/// One account's tokens.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    pub access_token: Option<Secret>,
    /// `None`: unknown (a configured token), used until the channel refuses it.
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<Secret>,
}

/// What a token endpoint answered.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: Secret,
    pub expires_in: Option<Duration>,
    /// Present when the channel rotated the refresh token (Etsy always does).
    pub refresh_token: Option<Secret>,
}

/// How an account's credentials stand, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "token", rename_all = "snake_case")]
pub enum TokenState {
    /// A configured token used as is (no refresh).
    Static,
    /// A refreshed access token, valid until then (`None`: not known).
    Valid { until: Option<DateTime<Utc>> },
    /// The last refresh failed; `reason` says why and what to do.
    RefreshFailed { at: DateTime<Utc>, reason: String },
}

/// The daemon's durable home for one account's tokens.
pub trait TokenStore: Send + Sync {
    /// The newest tokens saved for this account since its configured refresh
    /// token last changed (a newly configured token wins over older saved
    /// ones), or `None`.
    fn load(&self) -> Result<Option<TokenSet>, ConnectorError>;

    /// Saves `tokens` and resolves only once they are flushed to disk.
    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), ConnectorError>>;

    fn report(&self, state: TokenState);
}

/// A token store that keeps nothing: for replays and tests of one process.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    saved: std::sync::Mutex<Option<TokenSet>>,
    state: std::sync::Mutex<Option<TokenState>>,
}

impl MemoryTokenStore {
    pub fn shared() -> Arc<MemoryTokenStore> {
        Arc::new(MemoryTokenStore::default())
    }

    pub fn saved(&self) -> Option<TokenSet> {
        self.saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn state(&self) -> Option<TokenState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<TokenSet>, ConnectorError> {
        Ok(self.saved())
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), ConnectorError>> {
        *self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tokens.clone());
        Box::pin(std::future::ready(Ok(())))
    }

    fn report(&self, state: TokenState) {
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(state);
    }
}

struct KeeperState {
    /// `None` until the store was first read.
    current: Option<TokenSet>,
    /// A rotated set the store has not confirmed yet: saved again before
    /// anything else, and its access token not used until then.
    unsaved: Option<TokenSet>,
    /// The channel refused the refresh token then, with this error.
    refused: Option<(DateTime<Utc>, ConnectorError)>,
}

/// Keeps one account's access token fresh through its [`TokenStore`].
pub struct TokenKeeper {
    store: Arc<dyn TokenStore>,
    configured: TokenSet,
    state: tokio::sync::Mutex<KeeperState>,
}

impl std::fmt::Debug for TokenKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeeper").finish_non_exhaustive()
    }
}

impl TokenKeeper {
    /// `configured`: the tokens from the account's config, used when the
    /// store has none newer.
    pub fn new(store: Arc<dyn TokenStore>, configured: TokenSet) -> Self {
        TokenKeeper {
            store,
            configured,
            state: tokio::sync::Mutex::new(KeeperState {
                current: None,
                unsaved: None,
                refused: None,
            }),
        }
    }

    /// An access token good for at least [`REFRESH_MARGIN`], refreshing
    /// first (through `refresh`, given the refresh token) when needed. Only
    /// one refresh runs at a time: concurrent callers wait and get its token.
    pub async fn access_token<F, Fut>(&self, refresh: F) -> Result<Secret, ConnectorError>
    where
        F: FnOnce(Secret) -> Fut,
        Fut: Future<Output = Result<TokenGrant, ConnectorError>>,
    {
        self.access_token_at(Utc::now(), refresh).await
    }

    /// [`TokenKeeper::access_token`] with the time given (tests).
    pub async fn access_token_at<F, Fut>(
        &self,
        now: DateTime<Utc>,
        refresh: F,
    ) -> Result<Secret, ConnectorError>
    where
        F: FnOnce(Secret) -> Fut,
        Fut: Future<Output = Result<TokenGrant, ConnectorError>>,
    {
        let mut state = self.state.lock().await;
        if let Some(pending) = state.unsaved.clone() {
            self.persist(&mut state, pending, now).await?;
        }
        if state.current.is_none() {
            state.current = Some(
                self.store
                    .load()?
                    .unwrap_or_else(|| self.configured.clone()),
            );
        }
        let current = state.current.clone().unwrap_or_default();
        if let Some(token) = usable(&current, now) {
            return Ok(token);
        }
        if let Some((at, error)) = &state.refused
            && now < *at + chrono_duration(REFUSED_COOL_OFF)
        {
            return Err(error.clone());
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            let error = ConnectorError::Auth(
                "the access token expired and no refresh token is configured: \
                 re-authorize the app and set refresh_token in the account's config"
                    .into(),
            );
            self.store.report(TokenState::RefreshFailed {
                at: now,
                reason: error.to_string(),
            });
            return Err(error);
        };
        let grant = match refresh(refresh_token).await {
            Ok(grant) => grant,
            Err(error) => {
                if let ConnectorError::Auth(detail) = &error {
                    // The detail alone: the class is said once, by Display.
                    let error = ConnectorError::Auth(format!(
                        "{detail}; the refresh token was refused: re-authorize the app and set \
                         the new refresh_token in the account's config (a refresh token the \
                         channel rotated can be lost if the daemon died between the channel's \
                         answer and saving it)"
                    ));
                    state.refused = Some((now, error.clone()));
                    self.store.report(TokenState::RefreshFailed {
                        at: now,
                        reason: error.to_string(),
                    });
                    return Err(error);
                }
                self.store.report(TokenState::RefreshFailed {
                    at: now,
                    reason: error.to_string(),
                });
                return Err(error);
            }
        };
        state.refused = None;
        let rotated = grant.refresh_token.is_some();
        let next = TokenSet {
            access_expires_at: grant.expires_in.map(|d| now + chrono_duration(d)),
            access_token: Some(grant.access_token),
            refresh_token: grant.refresh_token.or(current.refresh_token),
        };
        if rotated {
            // Saved before the new access token is used: if this process
            // dies after the save, the next one refreshes with the new
            // refresh token; if it dies before, the old one is already
            // spent and only re-authorizing helps, which the error says.
            self.persist(&mut state, next.clone(), now).await?;
        } else {
            state.current = Some(next.clone());
        }
        self.store.report(TokenState::Valid {
            until: next.access_expires_at,
        });
        next.access_token.ok_or_else(|| {
            ConnectorError::Decode("the token endpoint answered without an access token".into())
        })
    }

    async fn persist(
        &self,
        state: &mut KeeperState,
        tokens: TokenSet,
        now: DateTime<Utc>,
    ) -> Result<(), ConnectorError> {
        match self.store.save(&tokens).await {
            Ok(()) => {
                state.unsaved = None;
                state.current = Some(tokens);
                Ok(())
            }
            Err(e) => {
                let error = ConnectorError::Transient(format!(
                    "the channel rotated the refresh token but saving it failed ({e}); \
                     it is kept in memory and saved again before the next call: fix the \
                     store (disk space, permissions) before the daemon restarts"
                ));
                self.store.report(TokenState::RefreshFailed {
                    at: now,
                    reason: error.to_string(),
                });
                state.unsaved = Some(tokens);
                Err(error)
            }
        }
    }

    /// The channel refused `token` (401): the next call refreshes.
    pub async fn invalidate(&self, token: &Secret) {
        let mut state = self.state.lock().await;
        if let Some(current) = state.current.as_mut()
            && current
                .access_token
                .as_ref()
                .is_some_and(|t| t.matches(token.expose().as_bytes()))
        {
            current.access_token = None;
            current.access_expires_at = None;
        }
    }
}

fn usable(tokens: &TokenSet, now: DateTime<Utc>) -> Option<Secret> {
    let token = tokens.access_token.clone()?;
    match tokens.access_expires_at {
        Some(until) if until - chrono_duration(REFRESH_MARGIN) <= now => None,
        _ => Some(token),
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    fn configured() -> TokenSet {
        TokenSet {
            access_token: None,
            access_expires_at: None,
            refresh_token: Some(Secret::new("refresh-1")),
        }
    }

    fn grant(access: &str, refresh: Option<&str>) -> TokenGrant {
        TokenGrant {
            access_token: Secret::new(access),
            expires_in: Some(Duration::from_secs(3600)),
            refresh_token: refresh.map(Secret::new),
        }
    }

    #[tokio::test]
    async fn a_rotated_refresh_token_is_saved_before_the_access_token_is_used() {
        let store = MemoryTokenStore::shared();
        let keeper = TokenKeeper::new(store.clone(), configured());
        let token = keeper
            .access_token_at(at(0), |refresh| async move {
                assert_eq!(refresh.expose(), "refresh-1");
                Ok(grant("access-2", Some("refresh-2")))
            })
            .await
            .unwrap();
        assert_eq!(token.expose(), "access-2");
        let saved = store.saved().unwrap();
        assert_eq!(saved.refresh_token.unwrap().expose(), "refresh-2");
        assert_eq!(
            store.state(),
            Some(TokenState::Valid {
                until: Some(at(3600))
            })
        );

        // Within its life the access token is reused, without a refresh.
        let again = keeper
            .access_token_at(at(60), |_| async { panic!("no refresh needed") })
            .await
            .unwrap();
        assert_eq!(again.expose(), "access-2");

        // Close to expiry it is refreshed with the rotated token.
        let later = keeper
            .access_token_at(at(3500), |refresh| async move {
                assert_eq!(refresh.expose(), "refresh-2");
                Ok(grant("access-3", Some("refresh-3")))
            })
            .await
            .unwrap();
        assert_eq!(later.expose(), "access-3");
    }

    #[tokio::test]
    async fn a_new_keeper_starts_from_what_the_store_saved() {
        let store = MemoryTokenStore::shared();
        let first = TokenKeeper::new(store.clone(), configured());
        first
            .access_token_at(at(0), |_| async { Ok(grant("a2", Some("r2"))) })
            .await
            .unwrap();
        // A restart: the configured refresh token is spent; the saved one is used.
        let second = TokenKeeper::new(store.clone(), configured());
        let token = second
            .access_token_at(at(10), |_| async {
                panic!("the saved access token is valid")
            })
            .await
            .unwrap();
        assert_eq!(token.expose(), "a2");
    }

    #[tokio::test]
    async fn a_refused_refresh_token_is_reported_and_not_retried_at_once() {
        let store = MemoryTokenStore::shared();
        let keeper = TokenKeeper::new(store.clone(), configured());
        let calls = AtomicUsize::new(0);
        for t in [0, 1, 60] {
            let err = keeper
                .access_token_at(at(t), |_| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(ConnectorError::Auth("invalid_grant".into()))
                })
                .await
                .unwrap_err();
            assert!(err.to_string().contains("re-authorize"), "{err}");
            assert_eq!(
                err.to_string().matches("authentication:").count(),
                1,
                "the class is said once: {err}"
            );
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one call, then the cool-off"
        );
        assert!(matches!(
            store.state(),
            Some(TokenState::RefreshFailed { .. })
        ));
        let cooled = at(REFUSED_COOL_OFF.as_secs() as i64 + 1);
        let token = keeper
            .access_token_at(cooled, |_| async { Ok(grant("a", None)) })
            .await
            .unwrap();
        assert_eq!(token.expose(), "a");
    }

    struct FailingSaves {
        fail: std::sync::atomic::AtomicBool,
        inner: MemoryTokenStore,
    }

    impl TokenStore for FailingSaves {
        fn load(&self) -> Result<Option<TokenSet>, ConnectorError> {
            self.inner.load()
        }
        fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), ConnectorError>> {
            if self.fail.load(Ordering::SeqCst) {
                Box::pin(std::future::ready(Err(ConnectorError::Transient(
                    "disk full".into(),
                ))))
            } else {
                self.inner.save(tokens)
            }
        }
        fn report(&self, state: TokenState) {
            self.inner.report(state)
        }
    }

    #[tokio::test]
    async fn an_unsaved_rotation_is_saved_again_before_the_next_call_and_never_lost() {
        let store = Arc::new(FailingSaves {
            fail: true.into(),
            inner: MemoryTokenStore::default(),
        });
        let keeper = TokenKeeper::new(store.clone(), configured());
        let err = keeper
            .access_token_at(at(0), |_| async { Ok(grant("a2", Some("r2"))) })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("saving it failed"), "{err}");
        store.fail.store(false, Ordering::SeqCst);
        let token = keeper
            .access_token_at(at(1), |_| async { panic!("r1 is spent; r2 must be used") })
            .await
            .unwrap();
        assert_eq!(token.expose(), "a2");
        assert_eq!(
            store.inner.saved().unwrap().refresh_token.unwrap().expose(),
            "r2"
        );
    }

    #[tokio::test]
    async fn a_refused_access_token_is_refreshed_on_the_next_call() {
        let store = MemoryTokenStore::shared();
        let keeper = TokenKeeper::new(
            store,
            TokenSet {
                access_token: Some(Secret::new("configured")),
                access_expires_at: None,
                refresh_token: Some(Secret::new("r1")),
            },
        );
        let first = keeper
            .access_token_at(at(0), |_| async { panic!("configured token first") })
            .await
            .unwrap();
        keeper.invalidate(&first).await;
        let second = keeper
            .access_token_at(at(1), |_| async { Ok(grant("fresh", None)) })
            .await
            .unwrap();
        assert_eq!(second.expose(), "fresh");
    }
}
