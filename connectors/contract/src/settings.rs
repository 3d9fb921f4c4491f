//! How a channel crate plugs into the daemon: it reads its own account keys
//! from the config (through [`SettingsReader`], which keeps every error
//! located at FILE:LINE:COLUMN), says what it can do, and builds its
//! connector from what the daemon hands it ([`BuildContext`]). The daemon's
//! registry holds one [`ChannelDescriptor`] per channel crate; adding a
//! channel is one crate and one line there.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use crate::connector::{Capabilities, Connector};
use crate::error::ConnectorError;
use crate::model::Channel;
use crate::pacing::Pacer;
use crate::secret::Secret;
use crate::tokens::TokenStore;

/// Whether a key must be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    /// Required because of another setting, named here for the message
    /// (`"webhooks = true"`).
    RequiredBecause(&'static str),
    Optional,
}

/// One `[[account]]` table of the config, as a channel crate reads it. The
/// keys every account has (`id`, `channel`, `base_url`, `poll_interval`,
/// `start_date`, `buffer`, `webhooks`) are the daemon's; a channel crate asks
/// for its own keys only. Every accessor records its own problems (missing,
/// wrong type, unreadable secret file) at the key's place and answers
/// `None`; a crate that finds a value wrong for its own reasons says so with
/// [`SettingsReader::invalid`]. Keys nobody asked for are reported as
/// unknown (with a did-you-mean among the asked-for ones) by the daemon.
///
/// Ask for every key you know, even after an error, so that one pass finds
/// every problem.
pub trait SettingsReader {
    /// The account's id (for messages and for building the connector).
    fn account(&self) -> &str;

    /// Whether the account takes webhooks (`webhooks = true`).
    fn webhooks(&self) -> bool;

    /// What a key only webhooks use needs: required, saying why, when the
    /// account takes webhooks; optional otherwise.
    fn webhook_need(&self) -> Need {
        if self.webhooks() {
            Need::RequiredBecause("webhooks = true")
        } else {
            Need::Optional
        }
    }

    /// A non-empty string. A whole number written without quotes is taken
    /// as its digits (ids that other systems hand out as numbers:
    /// `shop_id = 12345678`).
    fn string(&mut self, key: &str, need: Need) -> Option<String>;

    /// A list of non-empty strings (a single string counts as a list of one).
    fn strings(&mut self, key: &str, need: Need) -> Option<Vec<String>>;

    /// An `http://` or `https://` URL.
    fn url(&mut self, key: &str, need: Need) -> Option<String>;

    fn boolean(&mut self, key: &str) -> Option<bool>;

    fn u32(&mut self, key: &str) -> Option<u32>;

    /// A secret, given as `KEY`, `KEY_env` (an environment variable) or
    /// `KEY_file` (a file no one else may read; relative paths are in
    /// `$CREDENTIALS_DIRECTORY`).
    fn secret(&mut self, key: &str, need: Need) -> Option<Secret>;

    /// Records that `key`'s value is wrong, at its place in the file.
    /// `problem` says what is wrong and what would be right.
    fn invalid(&mut self, key: &str, problem: &str);
}

/// What the daemon gives a connector when it builds it, once per account.
#[derive(Clone)]
pub struct BuildContext {
    pub account: String,
    /// Where the channel's API is (tests and the demo point it at a loopback
    /// server).
    pub base_url: String,
    /// The daemon's shared client: its timeouts apply.
    pub http: reqwest::Client,
    /// Where rotated tokens are saved (durably) and token state reported.
    pub tokens: Arc<dyn TokenStore>,
    /// The account's budget keeper: every request awaits it first.
    pub pacer: Arc<dyn Pacer>,
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext")
            .field("account", &self.account)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// One account's channel keys, read and validated by its crate.
pub trait AccountSettings: Debug + Send + Sync {
    /// Builds the connector. No I/O.
    fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConnectorError>;

    /// Whether `other` holds the same values, secrets included (a changed
    /// secret is a change), so that a reload knows what changed without
    /// printing anything.
    fn same_as(&self, other: &dyn AccountSettings) -> bool;

    /// For [`AccountSettings::same_as`]: the concrete type behind the trait.
    fn as_any(&self) -> &dyn Any;
}

/// What a channel crate gives the daemon's registry.
#[derive(Clone, Copy)]
pub struct ChannelDescriptor {
    pub channel: Channel,
    /// Constant: config that asks for more (say `webhooks = true` where the
    /// channel has none) is refused at start.
    pub capabilities: Capabilities,
    /// Reads the account's channel keys; `None` when any is wrong (each
    /// problem already recorded through the reader).
    pub read_settings: fn(&mut dyn SettingsReader) -> Option<Box<dyn AccountSettings>>,
    /// Settings matching the crate's recorded fixtures (test credentials and
    /// ids only), so that `switchyard replay` can run any fixture folder of
    /// this channel through the real connector.
    pub replay_settings: fn(account: &str) -> Box<dyn AccountSettings>,
}

impl std::fmt::Debug for ChannelDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelDescriptor")
            .field("channel", &self.channel)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}
