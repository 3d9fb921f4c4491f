//! An account's channel keys as a channel crate reads them: the contract's
//! `SettingsReader` over the account's located `Section`, so a channel
//! crate's problems are reported like the daemon's own (FILE:LINE:COLUMN,
//! every one at once, unknown keys with a did-you-mean among the keys the
//! crate asked for).
//!
//! The secret a crate reads as `refresh_token` is the account's configured
//! refresh token: its fingerprint is kept (`AccountConfig::refresh_token_id`)
//! so that tokens saved before an operator put a new one in the config are
//! not used over it.

use sha2::{Digest, Sha256};
use switchyard_contract::{Need, SettingsReader};

use super::read::{self, Section};
use super::secret::Secret;

/// The key a refreshing channel's configured refresh token is read under
/// (every such channel names it so).
pub(crate) const REFRESH_TOKEN_KEY: &str = "refresh_token";

pub(crate) struct ChannelKeys<'r, 'c, 'a, 't> {
    pub section: &'r mut Section<'c, 'a, 't>,
    pub account: String,
    pub webhooks: bool,
    /// A fingerprint of the secret read as [`REFRESH_TOKEN_KEY`].
    pub refresh_token_id: Option<String>,
}

impl ChannelKeys<'_, '_, '_, '_> {
    fn read<T>(
        &mut self,
        key: &str,
        need: Need,
        convert: impl FnOnce(&mut read::Ctx, &read::Field) -> Option<T>,
    ) -> Option<T> {
        match need {
            Need::Optional => self.section.opt(key, convert),
            Need::Required => self.section.req(key, convert),
            Need::RequiredBecause(why) => {
                let value = self.section.opt(key, convert);
                if value.is_none() && self.section.value_at(key).is_none() {
                    self.section.missing_because(key, why);
                }
                value
            }
        }
    }
}

/// A fingerprint of a refresh token: equal for equal tokens, and telling
/// nothing about the token.
pub(crate) fn fingerprint(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose().as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

impl SettingsReader for ChannelKeys<'_, '_, '_, '_> {
    fn account(&self) -> &str {
        &self.account
    }

    fn webhooks(&self) -> bool {
        self.webhooks
    }

    fn string(&mut self, key: &str, need: Need) -> Option<String> {
        self.read(key, need, read::text_or_number)
    }

    fn strings(&mut self, key: &str, need: Need) -> Option<Vec<String>> {
        self.read(key, need, read::string_list)
    }

    fn url(&mut self, key: &str, need: Need) -> Option<String> {
        self.read(key, need, read::url)
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        self.section.opt(key, read::boolean)
    }

    fn u32(&mut self, key: &str) -> Option<u32> {
        self.section.opt(key, read::u32_value)
    }

    fn secret(&mut self, key: &str, need: Need) -> Option<Secret> {
        let secret = self.section.secret(key, need);
        if key == REFRESH_TOKEN_KEY {
            self.refresh_token_id = secret.as_ref().map(fingerprint);
        }
        secret
    }

    fn invalid(&mut self, key: &str, problem: &str) {
        self.section.invalid(key, problem);
    }
}
