//! The operator's day, end to end through the binary: which config a command
//! reads, what `check` reports, exit statuses and messages that say what to
//! do next.

use std::path::Path;
use std::process::Output;

use crate::common::daemon::{ConfigBuilder, REPO, command, stderr, stdout};

fn run_in(dir: &Path, args: &[&str]) -> Output {
    command()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run the switchyard binary")
}

fn copy_example_into(dir: &Path) {
    let config = std::fs::read_to_string(Path::new(REPO).join("config/switchyard.toml")).unwrap();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/switchyard.toml"), config).unwrap();
    std::fs::copy(
        Path::new(REPO).join("config/rules.toml"),
        dir.join("config/rules.toml"),
    )
    .unwrap();
}

#[test]
fn a_config_in_the_current_folder_is_used_and_named() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_into(dir.path());
    let out = run_in(dir.path(), &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "using config config/switchyard.toml (found in the current folder; --config PATH for another)\n"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("config/switchyard.toml: ok"),
        "{}",
        stdout(&out)
    );

    // ./switchyard.toml comes first.
    let own = ConfigBuilder::new(dir.path()).write();
    assert_eq!(own, dir.path().join("switchyard.toml"));
    let out = run_in(dir.path(), &["check"]);
    assert!(
        stderr(&out).starts_with("using config switchyard.toml "),
        "{}",
        stderr(&out)
    );

    // --config wins and is not announced.
    let out = run_in(dir.path(), &["--config", "config/switchyard.toml", "check"]);
    assert!(!stderr(&out).contains("using config"), "{}", stderr(&out));
}

#[test]
fn no_config_anywhere_says_how_to_name_one() {
    let dir = tempfile::tempdir().unwrap();
    if Path::new("/etc/switchyard/switchyard.toml").exists() {
        // The machine has a real install; the default would be used.
        return;
    }
    let out = run_in(dir.path(), &["orders", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no config file: /etc/switchyard/switchyard.toml does not exist")
            && err.contains("--config PATH")
            && err.contains("switchyard.toml or config/switchyard.toml"),
        "{err}"
    );
}

#[test]
fn check_reports_config_and_rules_problems_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::new(dir.path())
        .rules(&dir.path().join("missing-rules.toml"))
        .daemon("log_fromat", "json")
        .write();
    let out = run_in(dir.path(), &["--config", config.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("unknown key \"log_fromat\""), "{err}");
    assert!(
        err.contains("missing-rules.toml: cannot read the rules file: no such file"),
        "{err}"
    );
    let summary = stdout(&out);
    assert!(summary.contains("switchyard.toml: 1 error\n"), "{summary}");
    assert!(
        summary.contains("missing-rules.toml: 1 error\n"),
        "{summary}"
    );
}

#[test]
fn check_warns_about_skipped_accounts_and_inline_secrets_and_counts_in_words() {
    let out = command()
        .args([
            "--config",
            &format!("{REPO}/config/switchyard.toml"),
            "check",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for account in ["etsy-main", "ebay-us", "amazon-na"] {
        assert!(
            err.contains(&format!("warning: account \"{account}\""))
                && err.contains("will be skipped"),
            "{account}: {err}"
        );
    }
    assert!(
        err.contains(
            "warning: secret \"access_token\" in [[account]] \"shop-us\" is written in the file"
        ) && err.contains("access_token_env or access_token_file"),
        "{err}"
    );
    assert!(
        !err.contains("demo-shopify-token"),
        "secrets never printed: {err}"
    );
    assert!(
        stdout(&out).contains("3 skipped; 2 destinations)"),
        "{}",
        stdout(&out)
    );

    // One of each is said in the singular.
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::new(dir.path())
        .destinations(vec![
            crate::common::daemon::Destination::webhook("east-wh", "http://127.0.0.1:9/east")
                .secret_env("EAST_SECRET"),
        ])
        .account(
            crate::common::daemon::ShopifyAccount::new("shop-us", "http://127.0.0.1:9")
                .webhook_secret_env("HOOK_SECRET"),
        )
        .rules(&dir.path().join("rules.toml"))
        .write();
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rule]]\nname = \"all\"\nwhen = { channel = \"shopify\" }\nthen = { route = \"east-wh\" }\n",
    )
    .unwrap();
    let out = command()
        .env("EAST_SECRET", "s")
        .env("HOOK_SECRET", "h")
        .args(["--config", config.to_str().unwrap(), "check", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["config"]["accounts"], 1);
    assert_eq!(report["rules"]["rules"], 1);
    let out = command()
        .env("EAST_SECRET", "s")
        .env("HOOK_SECRET", "h")
        .args(["--config", config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let summary = stdout(&out);
    assert!(summary.contains("(1 account; 1 destination)"), "{summary}");
    assert!(summary.contains("rules.toml: ok (1 rule)"), "{summary}");
}

/// A channel that refuses every call with 401, on a free port of 127.0.0.1;
/// it stops when the test process ends.
fn refusing_channel() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let body = r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn sync_takes_a_date_and_a_refused_token_says_to_fix_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::new(dir.path())
        .account(
            crate::common::daemon::ShopifyAccount::new("shop-us", &refusing_channel())
                .webhook_secret("hook"),
        )
        .write();
    let config = config.to_str().unwrap();

    let out = run_in(
        dir.path(),
        &[
            "--config",
            config,
            "sync",
            "shop-us",
            "--since",
            "2026-11-01",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("shop-us: sync stopped: authentication: HTTP 401"),
        "{err}"
    );
    assert!(
        err.contains("the channel refused the credentials of account shop-us: fix them"),
        "{err}"
    );
    assert!(!err.contains("run it again to continue"), "{err}");

    let out = run_in(
        dir.path(),
        &[
            "--config",
            config,
            "sync",
            "shop-us",
            "--since",
            "2026-11-01",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let last: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert!(
        last["error"].as_str().unwrap().contains("fix them"),
        "{last}"
    );

    let out = run_in(
        dir.path(),
        &[
            "--config",
            config,
            "sync",
            "shop-us",
            "--since",
            "1st of November",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--since: \"1st of November\" is neither a date (2026-11-01, midnight UTC) nor an RFC 3339 time"),
        "{}",
        stderr(&out)
    );
}

/// A CI job running `replay` over recorded traffic must notice when some of
/// it does not replay: the throttled poll and the body that is not an order.
#[test]
fn replay_exits_1_when_a_scenario_fails_and_still_prints_the_rest() {
    let config = format!("{REPO}/config/switchyard.toml");
    let out = command()
        .args([
            "--config",
            &config,
            "replay",
            &format!("{REPO}/fixtures/shopify"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("poll-throttled: poll: channel: rate limited"),
        "{err}"
    );
    assert!(
        err.contains("webhook-bad-signature: webhook not-an-order"),
        "{err}"
    );
    assert!(err.contains("2 replay steps of "), "{err}");
    assert!(
        stdout(&out).contains("replay:5551234567"),
        "{}",
        stdout(&out)
    );

    let out = command()
        .args([
            "--config",
            &config,
            "replay",
            &format!("{REPO}/fixtures/shopify/demo"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
