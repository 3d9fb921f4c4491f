//! OAuth tokens in the store (`channels::tokens`): a rotated refresh token
//! saved through the contract's `TokenKeeper` is there after the store is
//! opened again, and a refresh token an operator puts in the config later
//! wins over tokens saved under the one before.

use std::time::Duration;

use switchyard::channels::tokens::{StoredTokens, TokenBoard};
use switchyard::store::{Store, StoreOptions};
use switchyard_contract::{Secret, TokenGrant, TokenKeeper, TokenSet, TokenState, TokenStore};

fn configured(refresh: &str) -> TokenSet {
    TokenSet {
        access_token: None,
        access_expires_at: None,
        refresh_token: Some(Secret::new(refresh)),
    }
}

fn grant(access: &str, refresh: &str) -> TokenGrant {
    TokenGrant {
        access_token: Secret::new(access),
        expires_in: Some(Duration::from_secs(3600)),
        refresh_token: Some(Secret::new(refresh)),
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_outlives_the_process_until_the_config_names_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let board = TokenBoard::default();
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let tokens = std::sync::Arc::new(StoredTokens::new(
            "etsy-main",
            Some("config-1".into()),
            store.clone(),
            board.clone(),
        ));
        let keeper = TokenKeeper::new(tokens.clone(), configured("refresh-1"));
        let access = keeper
            .access_token(|refresh| async move {
                assert_eq!(refresh.expose(), "refresh-1");
                Ok(grant("access-2", "refresh-2"))
            })
            .await
            .unwrap();
        assert_eq!(access.expose(), "access-2");
        assert!(matches!(
            board.get("etsy-main"),
            Some(TokenState::Valid { until: Some(_) })
        ));
        // No flush after this: the save itself waited for one.
        drop(keeper);
        drop(tokens);
        drop(store);
    }

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let again = StoredTokens::new(
        "etsy-main",
        Some("config-1".into()),
        store.clone(),
        board.clone(),
    );
    let saved = again
        .load()
        .unwrap()
        .expect("tokens saved before the restart");
    assert_eq!(saved.refresh_token.unwrap().expose(), "refresh-2");
    assert_eq!(saved.access_token.unwrap().expose(), "access-2");

    // The operator re-authorized and configured a new refresh token: what
    // was saved under the old one is not used over it.
    let reconfigured = StoredTokens::new("etsy-main", Some("config-2".into()), store, board);
    assert!(reconfigured.load().unwrap().is_none());
    assert!(saved.access_expires_at.is_some());
}

#[tokio::test]
async fn an_account_without_a_refresh_token_is_static() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let board = TokenBoard::default();
    let tokens = StoredTokens::new("shop-us", None, store, board.clone());
    assert_eq!(board.get("shop-us"), Some(TokenState::Static));
    assert!(tokens.load().unwrap().is_none());
}
