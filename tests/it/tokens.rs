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

    let store = crate::common::reopen(dir.path());
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

// --- a rotating refresh token under kill -9 ------------------------------------

mod crash {
    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::{Duration, Instant};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::routing::post;
    use switchyard::channels::tokens::{StoredTokens, TokenBoard};
    use switchyard::store::{Store, StoreOptions};
    use switchyard_contract::{ConnectorError, Secret, TokenGrant, TokenKeeper, TokenState};

    use super::configured;

    const CHILD_DIR: &str = "SWITCHYARD_TOKEN_KILL_DIR";
    const CHILD_AT: &str = "SWITCHYARD_TOKEN_KILL_AT";
    const CHILD_URL: &str = "SWITCHYARD_TOKEN_KILL_URL";
    const TEST: &str = "tokens::crash::a_rotated_refresh_token_survives_kill_9_or_is_reported_lost";
    const ACCOUNT: &str = "etsy-main";
    /// The configured refresh token's fingerprint, as the config gives it.
    const CONFIGURED: &str = "configured-r1";

    /// A token endpoint that rotates the refresh token on every use and
    /// refuses a used one at once, as Etsy's does.
    #[derive(Default)]
    struct Endpoint {
        current: u32,
        seen: Vec<String>,
    }

    async fn token(
        State(endpoint): State<Arc<Mutex<Endpoint>>>,
        body: Bytes,
    ) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
        let mut e = endpoint.lock().unwrap();
        // The tokens here need no URL decoding.
        let form = String::from_utf8_lossy(&body).into_owned();
        let presented = form
            .split('&')
            .find_map(|pair| pair.strip_prefix("refresh_token="))
            .unwrap_or_default()
            .to_owned();
        e.seen.push(presented.clone());
        if presented != format!("r{}", e.current + 1) {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({ "error": "invalid_grant" })),
            );
        }
        e.current += 1;
        let next = e.current + 1;
        (
            axum::http::StatusCode::OK,
            axum::Json(serde_json::json!({
                "access_token": format!("a{next}"),
                "refresh_token": format!("r{next}"),
                // Inside the refresh margin: every use refreshes again.
                "expires_in": 60,
            })),
        )
    }

    async fn serve(endpoint: Arc<Mutex<Endpoint>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/token", post(token))
            .with_state(endpoint);
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// The refresh a connector makes: the refresh token to the endpoint.
    async fn refresh(url: &str, refresh: Secret) -> Result<TokenGrant, ConnectorError> {
        let resp = reqwest::Client::new()
            .post(url)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose()),
            ])
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = resp.status().as_u16();
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        if status != 200 {
            return Err(ConnectorError::Auth(format!(
                "HTTP {status}: {}",
                v["error"]
            )));
        }
        Ok(TokenGrant {
            access_token: Secret::new(v["access_token"].as_str().unwrap_or_default()),
            expires_in: v["expires_in"].as_u64().map(Duration::from_secs),
            refresh_token: v["refresh_token"].as_str().map(Secret::new),
        })
    }

    fn keeper(store: &Store, board: &TokenBoard) -> TokenKeeper {
        let tokens = Arc::new(StoredTokens::new(
            ACCOUNT,
            Some(CONFIGURED.into()),
            store.clone(),
            board.clone(),
        ));
        TokenKeeper::new(tokens, configured("r1"))
    }

    fn say(line: &str) {
        let mut out = std::io::stdout();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }

    /// In the child: one refresh, stopping to be killed at `at`: `before`
    /// the call, `answered` (the channel rotated the token, not saved yet),
    /// or `saved` (after the save, before the token is used).
    fn child(dir: &Path, at: &str, url: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = Store::open(dir, StoreOptions::default()).unwrap();
            let keeper = keeper(&store, &TokenBoard::default());
            let got = keeper
                .access_token(|token| async move {
                    if at == "before" {
                        say("refreshing");
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    let grant = refresh(url, token).await;
                    if at == "answered" {
                        say("answered");
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    grant
                })
                .await;
            assert!(got.is_ok(), "{got:?}");
            say("saved");
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    }

    /// Runs the child until it says `marker`, then SIGKILLs it.
    fn run_and_kill(dir: &Path, at: &str, url: &str, marker: &str) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir)
            .env(CHILD_AT, at)
            .env(CHILD_URL, url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start child test process");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let reached = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                // libtest may print "test <name> ... " on the same line first.
                Ok(line) if line.ends_with(marker) => break true,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        assert!(reached, "the child never said {marker:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_rotated_refresh_token_survives_kill_9_or_is_reported_lost() {
        if let (Some(dir), Ok(at), Ok(url)) = (
            std::env::var_os(CHILD_DIR),
            std::env::var(CHILD_AT),
            std::env::var(CHILD_URL),
        ) {
            // `child` runs its own runtime: off this one's threads.
            let dir = std::path::PathBuf::from(dir);
            tokio::task::spawn_blocking(move || child(&dir, &at, &url))
                .await
                .unwrap();
            return;
        }
        for (at, marker) in [
            ("before", "refreshing"),
            ("saved", "saved"),
            ("answered", "answered"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let endpoint = Arc::new(Mutex::new(Endpoint::default()));
            let url = serve(endpoint.clone()).await;
            let (d, u) = (dir.path().to_path_buf(), url.clone());
            tokio::task::spawn_blocking(move || run_and_kill(&d, at, &u, marker))
                .await
                .unwrap();

            // The next process.
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let board = TokenBoard::default();
            let keeper = keeper(&store, &board);
            let got = keeper.access_token(|t| refresh(&url, t)).await;
            let seen = endpoint.lock().unwrap().seen.clone();
            match at {
                // Killed before the call: the configured token was never
                // spent, and works.
                "before" => {
                    assert_eq!(got.unwrap().expose(), "a2");
                    assert_eq!(seen, ["r1"]);
                }
                // Killed after the save: the rotated token was on disk and
                // the next process refreshes with it.
                "saved" => {
                    assert_eq!(got.unwrap().expose(), "a3");
                    assert_eq!(seen, ["r1", "r2"]);
                }
                // Killed between the channel's answer and the save: the
                // rotated token is lost, the old one refused. Said loudly,
                // with what to do, in the error and the account's state.
                _ => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains("refresh token was refused"), "{e}");
                    assert!(
                        e.contains("re-authorize the app and set the new refresh_token"),
                        "{e}"
                    );
                    let Some(TokenState::RefreshFailed { reason, .. }) = board.get(ACCOUNT) else {
                        panic!("{:?}", board.get(ACCOUNT))
                    };
                    assert!(reason.contains("re-authorize"), "{reason}");
                    assert_eq!(seen, ["r1", "r1"]);
                }
            }
        }
    }
}
