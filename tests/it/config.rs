//! `switchyard.toml` loading through the public API: every kind of error with
//! its file, line and column, all errors at once, secrets in their three
//! forms, environment overrides, and the example config.

use std::path::{Path, PathBuf};

use switchyard::config::{
    Config, ConfigError, ConfigErrors, DeliveryPace, DestinationKind, Env, LogFormat, load_with,
};
use switchyard_contract::model::Channel;
use switchyard_shopify::ShopifySettings;

/// One account and one destination, every secret literal: the base the tests
/// break in one place at a time.
const VALID: &str = r#"[daemon]
listen = "127.0.0.1:7300"

[[account]]
id = "shop-us"
channel = "shopify"
base_url = "https://example.myshopify.com/"
poll_interval = "30s"
access_token = "literal-shopify-token"

[[destination]]
id = "east-wh"
kind = "webhook"
url = "https://wms.example.com/orders"
secret = "literal-destination-secret"
"#;

struct Fixture {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture {
    fn new(text: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, text).unwrap();
        Fixture { dir, path }
    }

    fn load(&self, env: &Env) -> Result<Config, ConfigErrors> {
        load_with(&self.path, env)
    }

    fn errors(&self, env: &Env) -> ConfigErrors {
        match self.load(env) {
            Ok(config) => panic!("expected errors, loaded {config:#?}"),
            Err(errors) => errors,
        }
    }

    /// Writes a secret file with `mode` into the fixture's folder.
    fn secret_file(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        set_mode(&path, mode);
        path
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn load_ok(text: &str) -> Config {
    Fixture::new(text)
        .load(&Env::new())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> (Fixture, ConfigErrors) {
    let fixture = Fixture::new(text);
    let errors = fixture.errors(&Env::new());
    (fixture, errors)
}

/// The one error whose message contains `needle`.
fn find<'e>(errors: &'e ConfigErrors, needle: &str) -> &'e ConfigError {
    let found: Vec<_> = errors
        .errors
        .iter()
        .filter(|e| e.message.contains(needle))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one error containing {needle:?} in:\n{errors}"
    );
    found[0]
}

/// 1-based line and column of the first `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn assert_at(error: &ConfigError, path: &Path, text: &str, needle: &str) {
    let (line, column) = position(text, needle);
    assert_eq!(error.file, path, "{error}");
    assert_eq!((error.line, error.column), (line, column), "{error}");
    assert_eq!(
        error.to_string(),
        format!("{}:{line}:{column}: {}", path.display(), error.message)
    );
}

// The example config.

#[test]
fn example_config_loads_clean_without_any_environment() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchyard.toml");
    let config = load_with(&path, &Env::new()).unwrap_or_else(|e| panic!("{e}"));
    let accounts: Vec<_> = config
        .accounts
        .iter()
        .map(|a| (a.id.as_str(), a.channel))
        .collect();
    assert_eq!(
        accounts,
        [
            ("shop-us", Channel::Shopify),
            ("etsy-main", Channel::Etsy),
            ("ebay-us", Channel::Ebay),
            ("amazon-na", Channel::Amazon),
        ]
    );
    for account in &config.accounts {
        // A channel built into this switchyard reads its keys; the others
        // are skipped, their keys left to their crates.
        assert_eq!(
            account.settings.is_some(),
            switchyard::registry::descriptor(account.channel).is_some(),
            "{}",
            account.id
        );
        assert!(
            account.base_url.starts_with("https://"),
            "{}",
            account.base_url
        );
    }
    let destinations: Vec<_> = config.destinations.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(destinations, ["east-wh", "west-3pl"]);
    assert_eq!(
        config.daemon.rules,
        path.parent().unwrap().join("rules.toml")
    );
    assert_eq!(config.daemon.state_dir, Path::new("/var/lib/switchyard"));
    assert!(config.daemon.admin_token.is_some());
    assert_eq!(config.inventory.buffer, 0);
}

// Each kind of error, with its place.

#[test]
fn unknown_key_is_located_and_suggests_the_nearest_key() {
    let text = VALID.replace("poll_interval", "pol_interval");
    let (fixture, errors) = errors(&text);
    assert_eq!(errors.errors.len(), 1, "{errors}");
    let error = &errors.errors[0];
    assert_eq!(
        error.message,
        r#"unknown key "pol_interval" in [[account]] "shop-us" (did you mean "poll_interval"?)"#
    );
    assert_at(error, &fixture.path, &text, "pol_interval");
}

#[test]
fn unknown_keys_are_found_in_every_section() {
    let text = format!(
        "{VALID}location_id = 5\nretries = 3\n\n[inventory]\nbufer = 1\n\n[daemon2]\nx = 1\n"
    );
    let (_fixture, errors) = errors(&text);
    // `location_id` is a Shopify key, not a destination key.
    find(
        &errors,
        r#"unknown key "location_id" in [[destination]] "east-wh""#,
    );
    find(
        &errors,
        r#"unknown key "retries" in [[destination]] "east-wh""#,
    );
    find(
        &errors,
        r#"unknown key "bufer" in [inventory] (did you mean "buffer"?)"#,
    );
    find(
        &errors,
        r#"unknown top-level key "daemon2" (did you mean "daemon"?)"#,
    );
}

#[test]
fn keys_of_another_channel_are_unknown() {
    let text = VALID.replace("access_token =", "shop_id = 1\naccess_token =");
    let (_fixture, errors) = errors(&text);
    find(&errors, r#"unknown key "shop_id" in [[account]] "shop-us""#);
}

#[test]
fn wrong_type_is_located_at_the_value() {
    let text = VALID.replace("poll_interval = \"30s\"", "webhooks = \"yes\"");
    let (fixture, errors) = errors(&text);
    let error = find(&errors, "webhooks");
    assert_eq!(
        error.message,
        r#""webhooks" in [[account]] "shop-us" must be true or false, not a string"#
    );
    assert_at(error, &fixture.path, &text, "\"yes\"");
}

#[test]
fn bad_duration_is_located_at_the_value() {
    let text = VALID.replace("\"30s\"", "\"2 minutes\"");
    let (fixture, errors) = errors(&text);
    let error = find(&errors, "is not a duration");
    assert!(
        error
            .message
            .contains(r#""poll_interval" in [[account]] "shop-us""#)
    );
    assert!(error.message.contains(r#"like "30s" or "2m""#));
    assert_at(error, &fixture.path, &text, "\"2 minutes\"");
}

#[test]
fn durations_take_seconds_minutes_hours_and_days() {
    for (text, seconds) in [("30s", 30), ("2m", 120), ("1h", 3600), ("1d", 86_400)] {
        let config = load_ok(&VALID.replace("\"30s\"", &format!("{text:?}")));
        assert_eq!(config.accounts[0].poll_interval.as_secs(), seconds);
    }
    let (_fixture, errors) = errors(&VALID.replace("\"30s\"", "\"0s\""));
    find(&errors, "must be longer than zero");
}

#[test]
fn bad_url_is_located_at_the_value() {
    let text = VALID.replace(
        "\"https://wms.example.com/orders\"",
        "\"wms.example.com/orders\"",
    );
    let (fixture, errors) = errors(&text);
    let error = find(&errors, "is not a URL");
    assert_eq!(
        error.message,
        r#""url" in [[destination]] "east-wh": "wms.example.com/orders" is not a URL: it must start with http:// or https://"#
    );
    assert_at(error, &fixture.path, &text, "\"wms.example.com/orders\"");
}

#[test]
fn urls_need_a_scheme_a_host_and_a_valid_port() {
    for (url, problem) in [
        (
            "ftp://wms.example.com/orders",
            "it must start with http:// or https://",
        ),
        ("https://", "it has no host"),
        ("https:///orders", "it has no host"),
        (
            "https://wms.example.com:99999/orders",
            "it has an invalid port number",
        ),
        (
            "https://wms.example .com/orders",
            "it must not contain spaces",
        ),
    ] {
        let text = VALID.replace("\"https://wms.example.com/orders\"", &format!("{url:?}"));
        let (_fixture, errors) = errors(&text);
        let error = find(&errors, "is not a URL");
        assert_eq!(
            error.message,
            format!(r#""url" in [[destination]] "east-wh": {url:?} is not a URL: {problem}"#)
        );
    }
}

#[test]
fn a_destination_paces_by_its_rate_and_concurrency_or_the_defaults() {
    let config = load_ok(VALID);
    assert_eq!(config.destinations[0].pace, DeliveryPace::default());
    assert_eq!(
        (
            DeliveryPace::DEFAULT_RATE,
            DeliveryPace::DEFAULT_CONCURRENCY
        ),
        (400.0, 8)
    );
    for (rate, concurrency, expected) in [
        ("50", "2", (50.0, 2)),
        ("0.5", "1", (0.5, 1)),
        ("10_000", "64", (10_000.0, 64)),
    ] {
        let text = format!("{VALID}rate = {rate}\nconcurrency = {concurrency}\n");
        let pace = load_ok(&text).destinations[0].pace;
        assert_eq!((pace.rate, pace.concurrency), expected, "{text}");
    }
}

#[test]
fn a_bad_rate_or_concurrency_is_located_at_its_value() {
    for (line, message) in [
        (
            "rate = 0",
            r#""rate" in [[destination]] "east-wh": 0 is out of range; give a number above 0 and at most 10000"#,
        ),
        (
            "rate = -3.5",
            r#""rate" in [[destination]] "east-wh": -3.5 is out of range; give a number above 0 and at most 10000"#,
        ),
        (
            "rate = 20000",
            r#""rate" in [[destination]] "east-wh": 20000 is out of range; give a number above 0 and at most 10000"#,
        ),
        (
            "rate = nan",
            r#""rate" in [[destination]] "east-wh": nan is out of range; give a number above 0 and at most 10000"#,
        ),
        (
            "rate = \"fast\"",
            r#""rate" in [[destination]] "east-wh" must be a number, not a string"#,
        ),
        (
            "concurrency = 0",
            r#""concurrency" in [[destination]] "east-wh": 0 is out of range; give 1 to 64"#,
        ),
        (
            "concurrency = 65",
            r#""concurrency" in [[destination]] "east-wh": 65 is out of range; give 1 to 64"#,
        ),
        (
            "concurrency = 2.5",
            r#""concurrency" in [[destination]] "east-wh" must be a whole number, not a float"#,
        ),
    ] {
        let text = format!("{VALID}{line}\n");
        let (fixture, errors) = errors(&text);
        assert_eq!(errors.errors.len(), 1, "{errors}");
        let error = &errors.errors[0];
        assert_eq!(error.message, message);
        let value = line.split_once(" = ").unwrap().1;
        let (at, column) = position(&text, line);
        let column = column + line.len() - value.len();
        assert_eq!((error.line, error.column), (at, column), "{error}");
        assert_eq!(
            error.to_string(),
            format!("{}:{at}:{column}: {message}", fixture.path.display())
        );
    }
    // A misspelt key is unknown, with the right one suggested.
    let (_fixture, errors) = errors(&format!("{VALID}concurency = 4\n"));
    find(
        &errors,
        r#"unknown key "concurency" in [[destination]] "east-wh" (did you mean "concurrency"?)"#,
    );
}

#[test]
fn duplicate_account_id_points_at_the_second_and_names_the_first() {
    let second = "\n[[account]]\nid = \"shop-us\"\nchannel = \"shopify\"\nbase_url = \"https://b.example\"\naccess_token = \"t\"\n";
    let text = format!("{VALID}{second}");
    let (fixture, errors) = errors(&text);
    let error = find(&errors, "duplicate account id");
    let (first_line, _) = position(&text, "id = \"shop-us\"");
    assert_eq!(
        error.message,
        format!(r#"duplicate account id "shop-us" (first used at line {first_line})"#)
    );
    // Located at the second id's value.
    let second_at = text.rfind("id = \"shop-us\"").unwrap();
    let line = text[..second_at].matches('\n').count() + 1;
    assert_eq!((error.line, error.column), (line, 6), "{error}");
    assert_eq!(error.file, fixture.path);
}

#[test]
fn duplicate_destination_id_is_an_error() {
    let text = format!(
        "{VALID}\n[[destination]]\nid = \"east-wh\"\nkind = \"webhook\"\nurl = \"https://x.example\"\nsecret = \"s\"\n"
    );
    let (_fixture, errors) = errors(&text);
    find(&errors, r#"duplicate destination id "east-wh""#);
}

#[test]
fn unknown_channel_and_destination_kind_are_errors_with_suggestions() {
    let text = VALID
        .replace("\"shopify\"", "\"shopfy\"")
        .replace("\"webhook\"", "\"sftp\"");
    let (fixture, errors) = errors(&text);
    let error = find(&errors, "unknown channel");
    assert_eq!(
        error.message,
        r#""channel" in [[account]] "shop-us": unknown channel "shopfy" (did you mean "shopify"?); expected one of shopify, etsy, ebay, amazon"#
    );
    assert_at(error, &fixture.path, &text, "\"shopfy\"");
    let error = find(&errors, "unknown destination kind");
    assert!(
        error.message.contains(r#""sftp"; expected one of webhook"#),
        "{error}"
    );
    // The keys of an unknown channel or kind are not reported as unknown.
    assert_eq!(errors.errors.len(), 2, "{errors}");
}

#[test]
fn missing_required_key_points_at_the_table_header() {
    let text = VALID.replace("base_url = \"https://example.myshopify.com/\"\n", "");
    let (fixture, errors) = errors(&text);
    let error = find(&errors, "missing required key");
    assert_eq!(
        error.message,
        r#"missing required key "base_url" in [[account]] "shop-us""#
    );
    assert_at(error, &fixture.path, &text, "[[account]]");
}

#[test]
fn toml_syntax_error_is_located() {
    let text = VALID.replace("listen = \"127.0.0.1:7300\"", "listen = \"127.0.0.1:7300");
    let (fixture, errors) = errors(&text);
    let error = &errors.errors[0];
    assert!(error.message.starts_with("invalid TOML: "), "{error}");
    assert_eq!(error.file, fixture.path);
    assert_eq!(error.line, 2, "{error}");
    assert!(error.column > 1, "{error}");
}

#[test]
fn an_unclosed_table_is_one_error_where_it_opens() {
    let text = VALID.replace("[daemon]\n", "[daemon]\nextra = { a = 1\n");
    let (fixture, errors) = errors(&text);
    assert_eq!(errors.errors.len(), 1, "{errors}");
    let error = &errors.errors[0];
    assert!(
        error
            .message
            .starts_with("invalid TOML: this inline table is not closed: add `}`"),
        "{error}"
    );
    assert_at(error, &fixture.path, &text, "{ a = 1");
}

#[test]
fn duplicate_toml_keys_are_syntax_errors_naming_the_key() {
    let text = VALID.replace(
        "poll_interval = \"30s\"",
        "poll_interval = \"30s\"\npoll_interval = \"1m\"",
    );
    let (fixture, errors) = errors(&text);
    let error = find(&errors, "duplicate key");
    assert_eq!(
        error.message,
        "invalid TOML: duplicate key \"poll_interval\""
    );
    assert_at(error, &fixture.path, &text, "poll_interval = \"1m\"");
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let text = r#"[daemon]
listen = "localhost"
log_format = "yaml"

[[account]]
id = "shop us"
channel = "shopify"
base_url = "ftp://example.com"
poll_interval = 120
start_date = "yesterday"
access_token = "t"

[[destination]]
id = "east-wh"
kind = "webhook"
secret = "s"

[inventory]
buffer = -1
"#;
    let (_fixture, errors) = errors(text);
    let lines: Vec<usize> = errors.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 6, 8, 9, 10, 13, 19], "{errors}");
    let display = errors.to_string();
    assert_eq!(display.lines().count(), 8, "{display}");
    assert!(display.contains("is not a socket address"));
    assert!(display.contains(r#"unknown log format "yaml""#));
    assert!(display.contains(r#""shop us" is not a valid id"#));
    assert!(display.contains("must be a duration"));
    assert!(display.contains("RFC 3339"));
    assert!(display.contains(r#"missing required key "url" in [[destination]] "east-wh""#));
    assert!(display.contains("must be between 0 and"));
}

#[test]
fn start_date_is_rfc3339_as_a_toml_datetime_or_a_string() {
    let text = VALID.replace(
        "poll_interval",
        "start_date = 2026-01-01T00:00:00Z\npoll_interval",
    );
    let config = load_ok(&text);
    assert_eq!(
        config.accounts[0].start_date.unwrap().to_rfc3339(),
        "2026-01-01T00:00:00+00:00"
    );
    let text = VALID.replace(
        "poll_interval",
        "start_date = \"2026-01-01T02:00:00+02:00\"\npoll_interval",
    );
    let config = load_ok(&text);
    assert_eq!(
        config.accounts[0].start_date.unwrap().to_rfc3339(),
        "2026-01-01T00:00:00+00:00"
    );
    let text = VALID.replace("poll_interval", "start_date = 2026-01-01\npoll_interval");
    let (_fixture, errors) = errors(&text);
    find(&errors, "is not an RFC 3339 date-time with a UTC offset");
}

#[test]
fn defaults_and_normalisation() {
    let config = load_ok(VALID);
    assert_eq!(config.daemon.state_dir, Path::new("/var/lib/switchyard"));
    assert_eq!(config.daemon.rules, Path::new("/etc/switchyard/rules.toml"));
    assert_eq!(config.daemon.log_format, LogFormat::Text);
    assert_eq!(config.daemon.shutdown_timeout.as_secs(), 20);
    assert_eq!(
        config.daemon.store_options().cache_bytes,
        u64::from(switchyard::store::DEFAULT_CACHE_MB) * 1024 * 1024
    );
    assert!(config.daemon.admin_token.is_none());
    let account = &config.accounts[0];
    // No trailing slash, so connectors can append paths.
    assert_eq!(account.base_url, "https://example.myshopify.com");
    assert!(!account.webhooks);
    assert_eq!(account.stock_buffer(&config.inventory), 0);
    let shopify = shopify_settings(account);
    assert_eq!(shopify.api_version, "2026-10");
    assert_eq!(shopify.location_id, None);
    let DestinationKind::Webhook { url, secret } = &config.destinations[0].kind;
    assert_eq!(url, "https://wms.example.com/orders");
    assert_eq!(secret.expose(), "literal-destination-secret");
}

#[test]
fn relative_paths_are_relative_to_the_config_folder() {
    let text = VALID.replace(
        "[daemon]\n",
        "[daemon]\nrules = \"rules.toml\"\nstate_dir = \"state\"\n",
    );
    let fixture = Fixture::new(&text);
    let config = fixture.load(&Env::new()).unwrap();
    assert_eq!(config.daemon.rules, fixture.dir.path().join("rules.toml"));
    assert_eq!(config.daemon.state_dir, fixture.dir.path().join("state"));
}

#[test]
fn shopify_location_is_kept_as_a_gid() {
    for written in ["123", "\"123\"", "\"gid://shopify/Location/123\""] {
        let text = VALID.replace(
            "access_token =",
            &format!("location_id = {written}\naccess_token ="),
        );
        let config = load_ok(&text);
        let shopify = shopify_settings(&config.accounts[0]);
        assert_eq!(
            shopify.location_id.as_deref(),
            Some("gid://shopify/Location/123")
        );
    }
    let text = VALID.replace(
        "access_token =",
        "location_id = \"warehouse\"\naccess_token =",
    );
    let (_fixture, errors) = errors(&text);
    find(&errors, "\"location_id\" in [[account]] \"shop-us\"");
}

#[test]
fn webhook_secret_is_required_when_webhooks_are_on() {
    let text = VALID.replace("poll_interval", "webhooks = true\npoll_interval");
    let (fixture, errors) = errors(&text);
    let error = find(&errors, "missing secret");
    assert_eq!(
        error.message,
        r#"missing secret "webhook_secret" in [[account]] "shop-us" (required because webhooks = true): set webhook_secret, webhook_secret_env or webhook_secret_file"#
    );
    assert_at(error, &fixture.path, &text, "[[account]]");
}

/// A channel whose crate is not built in yet has no one to judge its keys:
/// the account loads with the keys every account has, its own are left
/// unread, and the daemon skips it (its crate, once in the registry, reads
/// and checks them).
#[test]
fn accounts_of_channels_not_built_in_load_without_their_keys() {
    let Some(missing) = Channel::ALL
        .into_iter()
        .find(|c| switchyard::registry::descriptor(*c).is_none())
    else {
        return; // every channel is built in
    };
    let text = format!(
        "[[account]]\nid = \"e\"\nchannel = \"{missing}\"\nbase_url = \"https://api.example.com\"\n\
         shop_id = \"not checked here\"\nanything = 1\n"
    );
    let config = load_ok(&text);
    assert_eq!(config.accounts[0].channel, missing);
    assert!(config.accounts[0].settings.is_none());
    // The keys every account has are still checked.
    let (_fixture, errors) = errors(&text.replace("https://api.example.com", "ftp://x"));
    find(&errors, "\"base_url\" in [[account]] \"e\"");
}

// Secrets.

fn with_token_line(line: &str) -> String {
    VALID.replace("access_token = \"literal-shopify-token\"", line)
}

fn shopify_token(config: &Config) -> String {
    shopify_settings(&config.accounts[0])
        .access_token
        .expose()
        .to_string()
}

/// The Shopify crate's settings of a Shopify account.
fn shopify_settings(account: &switchyard::config::AccountConfig) -> &ShopifySettings {
    account
        .settings
        .as_ref()
        .and_then(|s| s.as_any().downcast_ref::<ShopifySettings>())
        .unwrap_or_else(|| panic!("{account:?}"))
}

#[test]
fn secret_file_readable_by_others_is_refused_with_the_chmod_hint() {
    let fixture = Fixture::new("");
    let secret = fixture.secret_file("token", "file-secret-0644\n", 0o644);
    let text = with_token_line(&format!(
        "access_token_file = {:?}",
        secret.to_str().unwrap()
    ));
    std::fs::write(&fixture.path, &text).unwrap();
    let errors = fixture.errors(&Env::new());
    let error = find(&errors, "readable by group or others");
    let shown = secret.display();
    assert_eq!(
        error.message,
        format!(
            r#""access_token_file" in [[account]] "shop-us": secret file {shown} is readable by group or others (mode 0644); run: chmod 600 {shown}"#
        )
    );
    assert_at(error, &fixture.path, &text, "access_token_file");
    assert!(!errors.to_string().contains("file-secret-0644"));
}

#[test]
fn secret_file_with_mode_0600_is_read_without_its_final_newline() {
    let fixture = Fixture::new("");
    let secret = fixture.secret_file("token", "file-secret-0600\n", 0o600);
    let text = with_token_line(&format!(
        "access_token_file = {:?}",
        secret.to_str().unwrap()
    ));
    std::fs::write(&fixture.path, &text).unwrap();
    let config = fixture.load(&Env::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shopify_token(&config), "file-secret-0600");
}

#[test]
fn relative_secret_file_is_looked_up_in_credentials_directory() {
    let fixture = Fixture::new(&with_token_line("access_token_file = \"shop-us-token\""));
    let credentials = tempfile::tempdir().unwrap();
    let path = credentials.path().join("shop-us-token");
    std::fs::write(&path, "credential-secret").unwrap();
    set_mode(&path, 0o400);
    let env = Env::new().with_credentials_directory(credentials.path());
    let config = fixture.load(&env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shopify_token(&config), "credential-secret");

    let errors = fixture.errors(&Env::new());
    let error = find(&errors, "CREDENTIALS_DIRECTORY");
    assert!(
        error.message.contains("$CREDENTIALS_DIRECTORY is not set"),
        "{error}"
    );
}

#[test]
fn missing_secret_file_is_an_error() {
    let text = with_token_line("access_token_file = \"/nonexistent/switchyard/token\"");
    let (_fixture, errors) = errors(&text);
    find(
        &errors,
        "cannot open secret file /nonexistent/switchyard/token",
    );
}

#[test]
fn env_secret_is_read_from_the_injected_environment() {
    let fixture = Fixture::new(&with_token_line("access_token_env = \"SHOP_US_TOKEN\""));
    let env = Env::new().with_var("SHOP_US_TOKEN", "env-secret-value");
    let config = fixture.load(&env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shopify_token(&config), "env-secret-value");

    let errors = fixture.errors(&Env::new());
    let error = find(&errors, "SHOP_US_TOKEN");
    assert_eq!(
        error.message,
        r#"environment variable SHOP_US_TOKEN named by "access_token_env" in [[account]] "shop-us" is not set"#
    );
}

#[test]
fn two_forms_of_one_secret_are_an_error() {
    let text = with_token_line(
        "access_token = \"literal-two-forms\"\naccess_token_env = \"SHOP_US_TOKEN\"",
    );
    let fixture = Fixture::new(&text);
    let env = Env::new().with_var("SHOP_US_TOKEN", "env-two-forms");
    let errors = fixture.errors(&env);
    let error = find(&errors, "ways");
    assert_eq!(
        error.message,
        r#"secret "access_token" in [[account]] "shop-us" is given 2 ways (access_token, access_token_env); keep one"#
    );
    assert_at(error, &fixture.path, &text, "access_token_env");
}

#[test]
fn secret_values_never_appear_in_debug_output_or_errors() {
    let fixture = Fixture::new("");
    let file = fixture.secret_file("dest", "secret-from-file\n", 0o600);
    let text = VALID
        .replace("[daemon]\n", "[daemon]\nadmin_token_env = \"ADMIN\"\n")
        .replace(
            "poll_interval",
            "webhooks = true\nwebhook_secret = \"secret-literal-hook\"\npoll_interval",
        )
        .replace(
            "secret = \"literal-destination-secret\"",
            &format!("secret_file = {:?}", file.to_str().unwrap()),
        );
    std::fs::write(&fixture.path, &text).unwrap();
    let env = Env::new().with_var("ADMIN", "secret-from-env");
    let config = fixture.load(&env).unwrap_or_else(|e| panic!("{e}"));
    let secrets = [
        "literal-shopify-token",
        "secret-literal-hook",
        "secret-from-file",
        "secret-from-env",
    ];
    let debug = format!("{config:?} {config:#?} {env:?}");
    for secret in secrets {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("***"));

    // The same secrets next to errors of every kind, in the file and in the environment.
    let broken = text
        .replace(
            "poll_interval = \"30s\"",
            "poll_interval = 1\naccess_token_env = \"ADMIN\"",
        )
        .replace(
            "kind = \"webhook\"",
            "kind = \"webhook\"\nsecret = \"secret-literal-second\"",
        );
    std::fs::write(&fixture.path, &broken).unwrap();
    let env = env
        .with_var("SWITCHYARD__DAEMON__ADMIN_TOKEN", "secret-override")
        .with_var("SWITCHYARD__DAEMON__LISTEN", "secret-bad-listen-is-shown");
    let errors = fixture.errors(&env);
    assert!(errors.errors.len() >= 4, "{errors}");
    let shown = format!("{errors} {errors:?}");
    for secret in secrets
        .iter()
        .chain(&["secret-override", "secret-literal-second"])
    {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn the_store_cache_is_set_in_mib_and_not_too_small() {
    let text = VALID.replace("[daemon]\n", "[daemon]\ncache_mb = 96\n");
    assert_eq!(
        load_ok(&text).daemon.store_options().cache_bytes,
        96 * 1024 * 1024
    );
    let text = VALID.replace("[daemon]\n", "[daemon]\ncache_mb = 2\n");
    let (_fixture, errors) = errors(&text);
    find(
        &errors,
        "2 MiB is too small for the store's cache; give at least 8",
    );
}

// The environment layer.

#[test]
fn env_overrides_daemon_and_inventory_keys() {
    let fixture = Fixture::new(VALID);
    let env = Env::new()
        .with_var("SWITCHYARD__DAEMON__LISTEN", "127.0.0.1:9000")
        .with_var("switchyard__daemon__log_format", "json")
        .with_var("SWITCHYARD__DAEMON__SHUTDOWN_TIMEOUT", "1m")
        .with_var("SWITCHYARD__INVENTORY__BUFFER", "2")
        .with_var("SWITCHYARD_CONFIG", "/elsewhere.toml");
    let config = fixture.load(&env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.daemon.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(config.daemon.log_format, LogFormat::Json);
    assert_eq!(config.daemon.shutdown_timeout.as_secs(), 60);
    assert_eq!(config.inventory.buffer, 2);
}

#[test]
fn env_override_replaces_a_bad_file_value_and_can_set_a_secret() {
    let text = VALID.replace("\"127.0.0.1:7300\"", "\"not an address\"");
    let fixture = Fixture::new(&text);
    let env = Env::new()
        .with_var("SWITCHYARD__DAEMON__LISTEN", "[::1]:7301")
        .with_var("SWITCHYARD__DAEMON__ADMIN_TOKEN_ENV", "ADMIN")
        .with_var("ADMIN", "admin-from-env");
    let config = fixture.load(&env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.daemon.listen.to_string(), "[::1]:7301");
    assert_eq!(
        config.daemon.admin_token.unwrap().expose(),
        "admin-from-env"
    );
}

#[test]
fn bad_env_values_and_unknown_env_variables_name_the_variable() {
    let fixture = Fixture::new(VALID);
    let env = Env::new()
        .with_var("SWITCHYARD__DAEMON__LISTEN", "nowhere")
        .with_var("SWITCHYARD__INVENTORY__BUFFER", "two")
        .with_var("SWITCHYARD__DAEMON__LISTN", "127.0.0.1:1")
        .with_var("SWITCHYARD__ACCOUNT__ID", "x")
        .with_var("SWITCHYARD__FOO__BAR", "x");
    let errors = fixture.errors(&env);
    let by_var = |var: &str| -> &ConfigError {
        let found: Vec<_> = errors
            .errors
            .iter()
            .filter(|e| e.env_var.as_deref() == Some(var))
            .collect();
        assert_eq!(found.len(), 1, "one error for {var} in:\n{errors}");
        found[0]
    };
    let error = by_var("SWITCHYARD__DAEMON__LISTEN");
    assert!(
        error
            .message
            .contains("\"nowhere\" is not a socket address"),
        "{error}"
    );
    assert_eq!(error.line, 0);
    assert!(
        error
            .to_string()
            .starts_with("environment variable SWITCHYARD__DAEMON__LISTEN: ")
    );
    by_var("SWITCHYARD__INVENTORY__BUFFER");
    let error = by_var("SWITCHYARD__DAEMON__LISTN");
    assert_eq!(
        error.message,
        r#"unknown key "listn" in [daemon] (did you mean "listen"?)"#
    );
    assert!(
        by_var("SWITCHYARD__ACCOUNT__ID")
            .message
            .contains("[[account]] entries cannot be set")
    );
    assert!(
        by_var("SWITCHYARD__FOO__BAR")
            .message
            .contains(r#"unknown config section "foo""#)
    );
    assert_eq!(errors.errors.len(), 5, "{errors}");
}

#[test]
fn unreadable_file_is_one_error_naming_it() {
    let path = Path::new("/nonexistent/switchyard.toml");
    let errors = load_with(path, &Env::new()).unwrap_err();
    assert_eq!(errors.errors.len(), 1);
    assert!(
        errors
            .to_string()
            .starts_with("/nonexistent/switchyard.toml: cannot read: "),
        "{errors}"
    );
}

#[test]
fn config_secrets_are_the_connectors_secret_type() {
    // Handed to connectors as is, without a conversion that could leak.
    let secret: switchyard_contract::Secret = switchyard::config::Secret::new("x");
    assert_eq!(format!("{secret:?} {secret}"), "*** ***");
}

/// A channel crate as the registry sees it, for what the config demands of
/// one: it takes no webhooks, and reads one key of its own.
mod no_webhooks {
    use std::any::Any;
    use std::sync::Arc;

    use switchyard_contract::{
        AccountSettings, BuildContext, Capabilities, Channel, ChannelDescriptor, Connector,
        ConnectorError, Need, SettingsReader,
    };

    #[derive(Debug)]
    pub struct Keys {
        pub seller: String,
    }

    impl AccountSettings for Keys {
        fn build(&self, _ctx: BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
            Err(ConnectorError::Config("not built in config tests".into()))
        }
        fn same_as(&self, other: &dyn AccountSettings) -> bool {
            other
                .as_any()
                .downcast_ref::<Keys>()
                .is_some_and(|o| o.seller == self.seller)
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    fn read(r: &mut dyn SettingsReader) -> Option<Box<dyn AccountSettings>> {
        let seller = r.string("seller_id", Need::Required)?;
        if !seller.starts_with('A') {
            r.invalid(
                "seller_id",
                &format!("{seller:?} is not a seller id like \"A1B2\""),
            );
            return None;
        }
        Some(Box::new(Keys { seller }))
    }

    fn replay(_account: &str) -> Box<dyn AccountSettings> {
        Box::new(Keys {
            seller: "A0".into(),
        })
    }

    pub const DESCRIPTOR: ChannelDescriptor = ChannelDescriptor {
        channel: Channel::Amazon,
        capabilities: Capabilities {
            poll: true,
            webhooks: false,
            push_inventory: true,
            push_tracking: true,
        },
        read_settings: read,
        replay_settings: replay,
    };
}

fn load_with_channel(text: &str) -> Result<Config, ConfigErrors> {
    let fixture = Fixture::new(text);
    switchyard::config::load_str_with_channels(
        &fixture.path,
        text,
        &Env::new(),
        &[no_webhooks::DESCRIPTOR],
    )
}

/// Capabilities are constant per channel: a config that asks a channel for
/// what it cannot do is refused at start, at the key that asks. A channel
/// crate's own problems are located like the daemon's, and a number is
/// read as its digits where a crate asks for text.
#[test]
fn a_channel_crate_reads_its_keys_located_and_its_capabilities_are_enforced() {
    let account = "[[account]]\nid = \"amz\"\nchannel = \"amazon\"\nbase_url = \"https://sellingpartnerapi-na.amazon.com\"\n";
    let config = load_with_channel(&format!("{account}seller_id = \"A1B2\"\n")).unwrap();
    let keys = config.accounts[0]
        .settings
        .as_ref()
        .and_then(|s| s.as_any().downcast_ref::<no_webhooks::Keys>())
        .unwrap();
    assert_eq!(keys.seller, "A1B2");

    let text = format!("{account}webhooks = true\nseller_id = \"B9\"\nsellerid = 1\n");
    let errors = load_with_channel(&text).unwrap_err();
    let messages: Vec<String> = errors
        .errors
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
        .collect();
    assert_eq!(
        messages,
        [
            r#"5:12: "webhooks" in [[account]] "amz": amazon sends no webhooks to switchyard; remove it or set it to false"#,
            r#"6:13: "seller_id" in [[account]] "amz": "B9" is not a seller id like "A1B2""#,
            r#"7:1: unknown key "sellerid" in [[account]] "amz" (did you mean "seller_id"?)"#,
        ],
        "{errors}"
    );
    // Text keys take a bare number as its digits; a missing one is located
    // at the account.
    let errors = load_with_channel(&format!("{account}seller_id = 17\n")).unwrap_err();
    assert!(
        errors.to_string().contains(r#""17" is not a seller id"#),
        "{errors}"
    );
    let errors = load_with_channel(account).unwrap_err();
    assert!(
        errors
            .to_string()
            .contains(r#"missing required key "seller_id" in [[account]] "amz""#),
        "{errors}"
    );
}
