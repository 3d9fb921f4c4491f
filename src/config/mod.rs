//! Daemon configuration (`switchyard.toml`): loading, strict validation with file locations, secrets.
//!
//! [`load`] reads the file, lays the environment on top, checks everything and
//! returns either a typed [`Config`] or [`ConfigErrors`] holding every problem
//! at once, each with file, line and column (`FILE:LINE:COLUMN: message`).
//! Loading does no network I/O; it reads the config file and any secret files.
//!
//! Strict means: unknown keys (with a "did you mean"), missing required keys,
//! wrong types, bad values, duplicate ids and TOML syntax errors are all errors.
//!
//! # Environment overrides
//!
//! `SWITCHYARD__SECTION__KEY=value` overrides `key` of `[section]` for the
//! `[daemon]` and `[inventory]` sections, e.g. `SWITCHYARD__DAEMON__LISTEN=127.0.0.1:9000`
//! or `SWITCHYARD__INVENTORY__BUFFER=2`. Names are case-insensitive; the value
//! is converted to the key's type (a number, `true`/`false`, a duration ...).
//! Any other `SWITCHYARD__` variable is an error naming it: `[[account]]` and
//! `[[destination]]` entries are set in the file only (an index in a variable
//! name would silently retarget when entries are reordered); their secrets
//! still come from the environment through `NAME_env`. An override of one form
//! of a secret (`SWITCHYARD__DAEMON__ADMIN_TOKEN_ENV`) next to another form in
//! the file is an error, like two forms in the file.
//!
//! # Secrets
//!
//! Each secret `NAME` is given as exactly one of `NAME = "value"`,
//! `NAME_env = "VAR"` (read from the environment) or `NAME_file = "PATH"` (read
//! from a file; a relative path is under `$CREDENTIALS_DIRECTORY`, as systemd's
//! `LoadCredential=` provides; one final newline is dropped). A secret file
//! that group or others may read is refused. Values end up in [`Secret`],
//! which never prints.
//!
//! # Paths and defaults
//!
//! Relative `daemon.state_dir` and `daemon.rules` are relative to the config
//! file's folder, so the daemon's working directory does not matter.
//! `daemon.shutdown_timeout` (default `"20s"`) is how long `run` waits for
//! in-flight work after SIGTERM; `daemon.cache_mb` sizes the store's page
//! cache. Every key is documented for users in
//! `docs/configuration.md`.

mod channel_keys;
mod env;
mod error;
mod read;
mod schema;
mod secret;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_contract::AccountSettings;
use switchyard_contract::model::Channel;

pub use env::Env;
pub use error::{ConfigError, ConfigErrors};
pub use secret::Secret;

/// Where `switchyard` looks for its config when not told and none is in the
/// current folder.
pub const DEFAULT_PATH: &str = "/etc/switchyard/switchyard.toml";

/// The files looked for in the current folder, in order, when no config is
/// named: a checkout of the repository (or a folder set up like one) works
/// without `--config`.
pub const LOOKED_FOR: [&str; 2] = ["switchyard.toml", "config/switchyard.toml"];

/// How a command came to its config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChoice {
    /// `--config PATH` or `$SWITCHYARD_CONFIG`.
    Given(PathBuf),
    /// One of [`LOOKED_FOR`], found in the current folder.
    Found(PathBuf),
    /// [`DEFAULT_PATH`] (whether or not it exists).
    Default(PathBuf),
}

impl ConfigChoice {
    pub fn path(&self) -> &Path {
        match self {
            ConfigChoice::Given(p) | ConfigChoice::Found(p) | ConfigChoice::Default(p) => p,
        }
    }
}

/// The config to use: the one given, else the first of [`LOOKED_FOR`] that
/// exists under `cwd` (as a relative path, as the user would type it), else
/// [`DEFAULT_PATH`].
pub fn choose(given: Option<PathBuf>, cwd: &Path) -> ConfigChoice {
    if let Some(path) = given {
        return ConfigChoice::Given(path);
    }
    LOOKED_FOR
        .iter()
        .find(|name| cwd.join(name).is_file())
        .map(|name| ConfigChoice::Found(PathBuf::from(name)))
        .unwrap_or_else(|| ConfigChoice::Default(PathBuf::from(DEFAULT_PATH)))
}

/// Loads `path` with the process environment on top.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &Env::from_process())
}

/// Loads `path` with `env` standing in for the process environment (overrides,
/// `NAME_env` secrets, `$CREDENTIALS_DIRECTORY`).
pub fn load_with(path: &Path, env: &Env) -> Result<Config, ConfigErrors> {
    let bytes = std::fs::read(path)
        .map_err(|e| file_error(path, format!("cannot read: {}", crate::io_text::reason(&e))))?;
    let text =
        String::from_utf8(bytes).map_err(|_| file_error(path, "is not UTF-8 text".to_string()))?;
    load_str(path, &text, env)
}

/// The rules file a config names and its destination ids, read leniently
/// from a config that does not load, so that `check` can report the rules'
/// problems beside the config's. `None` when the file is not even TOML.
pub fn rules_of_broken(path: &Path, env: &Env) -> Option<(PathBuf, Vec<String>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    let rules = env
        .var("SWITCHYARD__DAEMON__RULES")
        .map(str::to_owned)
        .or_else(|| doc.get("daemon")?.get("rules")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| schema::DEFAULT_RULES.to_owned());
    let base = path.parent().unwrap_or(Path::new(""));
    let destinations = doc
        .get("destination")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("id")?.as_str().map(str::to_owned))
        .collect();
    Some((base.join(rules), destinations))
}

/// Loads config text as if read from `path` (which locates errors and anchors
/// relative paths; it is not read).
pub fn load_str(path: &Path, text: &str, env: &Env) -> Result<Config, ConfigErrors> {
    schema::load(path, text, env, &crate::registry::descriptors())
}

/// [`load_str`] with `channels` standing in for the built-in channels (tests
/// of what the config demands of a channel crate).
pub fn load_str_with_channels(
    path: &Path,
    text: &str,
    env: &Env,
    channels: &[switchyard_contract::ChannelDescriptor],
) -> Result<Config, ConfigErrors> {
    schema::load(path, text, env, channels)
}

fn file_error(path: &Path, message: String) -> ConfigErrors {
    ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        env_var: None,
        message,
    }
    .into()
}

/// The whole daemon config, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub source: PathBuf,
    pub daemon: DaemonConfig,
    pub accounts: Vec<AccountConfig>,
    pub destinations: Vec<DestinationConfig>,
    pub inventory: InventoryConfig,
    /// What loads but deserves a word (secrets written in the file), in file
    /// order; each message starts with `warning: `.
    pub warnings: Vec<ConfigError>,
}

impl Config {
    pub fn account(&self, id: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub fn destination(&self, id: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.id == id)
    }
}

/// `[daemon]`; every key has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Holds the store. Default `/var/lib/switchyard`.
    pub state_dir: PathBuf,
    /// Webhooks, admin API, metrics. Default `127.0.0.1:7300`.
    pub listen: SocketAddr,
    /// The rules file. Default `/etc/switchyard/rules.toml`.
    pub rules: PathBuf,
    /// Default text.
    pub log_format: LogFormat,
    /// Bearer token of the admin API. Optional here; whoever serves the admin
    /// API decides what its absence means.
    pub admin_token: Option<Secret>,
    /// How long shutdown waits for in-flight work. Default 20 s.
    pub shutdown_timeout: Duration,
    /// The store's page cache in MiB. Default `store::DEFAULT_CACHE_MB`.
    pub cache_mb: u32,
}

impl DaemonConfig {
    /// How the store is opened with this config.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_bytes: u64::from(self.cache_mb) * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One `[[account]]`: one store on one channel. Equal when every value is,
/// channel keys and secrets included (a reload compares them).
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// Unique; `[A-Za-z0-9_-]{1,64}`. Canonical order ids are `<id>:<channel order id>`.
    pub id: String,
    /// Always the channel of `settings`.
    pub channel: Channel,
    /// Where the channel's API is; `http(s)://`, no trailing `/`.
    pub base_url: String,
    /// Default 2 minutes; never zero.
    pub poll_interval: Duration,
    /// Where the first sync starts; `None` means 30 days back.
    pub start_date: Option<DateTime<Utc>>,
    /// Units held back from this account; `None` means `inventory.buffer`.
    pub buffer: Option<u32>,
    /// Receive webhooks (the channel's webhook secret is then required).
    /// Default false. Polling runs either way.
    pub webhooks: bool,
    /// The channel's own keys, read and checked by its crate. `None`: no
    /// connector for this channel is built into this switchyard, so its
    /// keys were not read and the account is skipped.
    pub settings: Option<Arc<dyn AccountSettings>>,
    /// A fingerprint of the configured refresh token, for channels that
    /// rotate one: tokens saved before it last changed are not used.
    pub refresh_token_id: Option<String>,
}

impl AccountConfig {
    /// Units held back from this account's stock.
    pub fn stock_buffer(&self, inventory: &InventoryConfig) -> u32 {
        self.buffer.unwrap_or(inventory.buffer)
    }
}

impl AccountConfig {
    /// Whether the channel keys are the same, secrets included.
    pub fn same_settings(&self, other: &AccountConfig) -> bool {
        match (&self.settings, &other.settings) {
            (Some(a), Some(b)) => a.same_as(b.as_ref()),
            (None, None) => true,
            _ => false,
        }
    }
}

impl PartialEq for AccountConfig {
    fn eq(&self, other: &AccountConfig) -> bool {
        self.same_settings(other)
            && self.id == other.id
            && self.channel == other.channel
            && self.base_url == other.base_url
            && self.poll_interval == other.poll_interval
            && self.start_date == other.start_date
            && self.buffer == other.buffer
            && self.webhooks == other.webhooks
            && self.refresh_token_id == other.refresh_token_id
    }
}

impl Eq for AccountConfig {}

/// One `[[destination]]`: where routed orders are delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationConfig {
    /// Unique; `[A-Za-z0-9_-]{1,64}`; what rules route to.
    pub id: String,
    pub kind: DestinationKind,
    /// How fast deliveries and notices go to it (`rate`, `concurrency`).
    pub pace: DeliveryPace,
}

// A pace's rate is never NaN (the config refuses anything but a positive
// number, and code sets a number or infinity), so equality is total.
impl Eq for DestinationConfig {}

/// How fast a destination is sent to: at most `rate` calls a second, spread
/// evenly, and at most `concurrency` at once. The rate is where the
/// destination's slowdowns start from and what its recovery returns to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryPace {
    /// Calls a second, above zero; infinity: no limit but `concurrency`.
    pub rate: f64,
    /// Calls in flight at once, at least 1.
    pub concurrency: u32,
}

impl DeliveryPace {
    /// `rate` when the file gives none: twice a flash sale's 200 orders a
    /// second, so a destination that answers in a few milliseconds keeps up
    /// without a queue, and one that cannot says so with 429 or 503.
    pub const DEFAULT_RATE: f64 = 400.0;
    /// `concurrency` when the file gives none.
    pub const DEFAULT_CONCURRENCY: u32 = 8;
    /// The highest `rate` the file may give.
    pub const MAX_RATE: f64 = 10_000.0;
    /// The highest `concurrency` the file may give.
    pub const MAX_CONCURRENCY: u32 = 64;
}

impl Default for DeliveryPace {
    fn default() -> Self {
        DeliveryPace {
            rate: Self::DEFAULT_RATE,
            concurrency: Self::DEFAULT_CONCURRENCY,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationKind {
    /// POST of the canonical order JSON, signed with HMAC-SHA256 of `secret`.
    Webhook { url: String, secret: Secret },
}

/// `[inventory]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryConfig {
    /// Units held back from every channel unless an account sets its own. Default 0.
    pub buffer: u32,
}
