//! Reading one section of the config strictly: typed accessors over the
//! spanned TOML table with the environment overrides laid on top, every
//! problem recorded with its place instead of returned, so one pass finds
//! them all. The keys a section's reader asks for are its schema: whatever is
//! left unasked is an unknown key, and the asked-for keys feed the
//! "did you mean" suggestion, so schema and suggestions cannot drift apart.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use toml::de::{DeTable, DeValue};

use super::env::{Env, Override};
use super::error::ConfigError;
use super::secret::{Secret, read_secret_file};
use crate::diag::{LineIndex, did_you_mean};

/// Where something is: a byte range of the file, or an environment variable.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    File(Range<usize>),
    Env(String),
}

/// Shared state of one load: the file, the environment, the errors so far.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub lines: LineIndex<'a>,
    pub env: &'a Env,
    pub errors: Vec<ConfigError>,
    /// What loads but deserves a word (a secret written in the file); each
    /// message starts with `warning: `.
    pub warnings: Vec<ConfigError>,
    /// The channels whose accounts' keys can be read.
    pub channels: &'a [switchyard_contract::ChannelDescriptor],
}

impl<'a> Ctx<'a> {
    pub fn new(
        file: &'a Path,
        text: &'a str,
        env: &'a Env,
        channels: &'a [switchyard_contract::ChannelDescriptor],
    ) -> Self {
        Ctx {
            file,
            lines: LineIndex::new(text),
            env,
            errors: Vec::new(),
            warnings: Vec::new(),
            channels,
        }
    }

    pub fn error(&mut self, at: &Origin, message: impl Into<String>) {
        let error = self.located(at, message.into());
        self.errors.push(error);
    }

    pub fn warning(&mut self, at: &Origin, message: impl Into<String>) {
        let warning = self.located(at, format!("warning: {}", message.into()));
        self.warnings.push(warning);
    }

    fn located(&self, at: &Origin, message: String) -> ConfigError {
        let (line, column, env_var) = match at {
            Origin::File(span) => {
                let (line, column) = self.lines.position(span.start);
                (line, column, None)
            }
            Origin::Env(var) => (0, 0, Some(var.clone())),
        };
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            env_var,
            message,
        }
    }

    /// "line 7" or "SWITCHYARD__X", to point from one error at another place.
    pub fn describe(&self, at: &Origin) -> String {
        match at {
            Origin::File(span) => format!("line {}", self.lines.position(span.start).0),
            Origin::Env(var) => var.clone(),
        }
    }
}

/// A value as written: TOML from the file, or the text of an environment
/// variable, which every typed accessor converts itself.
#[derive(Clone, Copy)]
pub(crate) enum Raw<'t> {
    Toml(&'t DeValue<'t>),
    Env(&'t str),
}

/// One key of a section, with what it is set to and where.
#[derive(Clone)]
pub(crate) struct Field<'t> {
    pub key: &'t str,
    pub key_at: Origin,
    pub raw: Raw<'t>,
    pub value_at: Origin,
    section: String,
}

impl Field<'_> {
    /// `"poll_interval" in [[account]] "shop-us"`: the start of every message
    /// about this key.
    pub fn what(&self) -> String {
        format!("{:?} in {}", self.key, self.section)
    }

    pub fn wrong_type(&self, ctx: &mut Ctx, expected: &str) {
        let found = match self.raw {
            Raw::Toml(value) => a_type(value),
            Raw::Env(_) => "text",
        };
        ctx.error(
            &self.value_at,
            format!("{} must be {expected}, not {found}", self.what()),
        );
    }

    pub fn bad_value(&self, ctx: &mut Ctx, problem: impl std::fmt::Display) {
        ctx.error(&self.value_at, format!("{}: {problem}", self.what()));
    }

    /// The value if it is a string (all environment values are).
    pub fn str(&self, ctx: &mut Ctx) -> Option<&str> {
        match self.raw {
            Raw::Toml(DeValue::String(s)) => Some(s),
            Raw::Env(s) => Some(s),
            Raw::Toml(_) => {
                self.wrong_type(ctx, "a string");
                None
            }
        }
    }
}

fn a_type(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Whether a key must be given: the contract's, so that channel crates
/// and the daemon's own sections say it the same way.
pub(crate) use switchyard_contract::Need;

/// Reads one table. Create it, call the accessors for every key the section
/// knows (all of them, even after an error, so every problem is found), then
/// `finish`.
pub(crate) struct Section<'c, 'a, 't> {
    ctx: &'c mut Ctx<'a>,
    name: String,
    at: Origin,
    fields: Vec<Field<'t>>,
    asked: Vec<String>,
}

impl<'c, 'a, 't> Section<'c, 'a, 't> {
    /// `table` is `None` for a section the file leaves out; `header` is where
    /// "missing key" errors point.
    pub fn new(
        ctx: &'c mut Ctx<'a>,
        name: String,
        header: Range<usize>,
        table: Option<&'t DeTable<'t>>,
        overrides: impl IntoIterator<Item = &'t Override>,
    ) -> Self {
        let mut fields: Vec<Field<'t>> = table
            .into_iter()
            .flat_map(|t| t.iter())
            .map(|(key, value)| Field {
                key: key.get_ref().as_ref(),
                key_at: Origin::File(key.span()),
                raw: Raw::Toml(value.get_ref()),
                value_at: Origin::File(value.span()),
                section: name.clone(),
            })
            .collect();
        // The environment layer wins over the file, key by key.
        for o in overrides {
            fields.retain(|f| f.key != o.key);
            fields.push(Field {
                key: &o.key,
                key_at: Origin::Env(o.var.clone()),
                raw: Raw::Env(&o.value),
                value_at: Origin::Env(o.var.clone()),
                section: name.clone(),
            });
        }
        Section {
            ctx,
            name,
            at: Origin::File(header),
            fields,
            asked: Vec::new(),
        }
    }

    pub fn ctx(&mut self) -> &mut Ctx<'a> {
        self.ctx
    }

    /// Messages name the section by this; an account is renamed after its id
    /// once that is known.
    pub fn rename(&mut self, name: String) {
        for f in &mut self.fields {
            f.section.clone_from(&name);
        }
        self.name = name;
    }

    fn take(&mut self, key: &str) -> Option<Field<'t>> {
        self.asked.push(key.to_string());
        self.fields.iter().find(|f| f.key == key).cloned()
    }

    fn missing(&mut self, key: &str) {
        let message = format!("missing required key {key:?} in {}", self.name);
        let at = self.at.clone();
        self.ctx.error(&at, message);
    }

    /// Records that `key`, required because of another setting (`why`),
    /// is missing.
    pub fn missing_because(&mut self, key: &str, why: &str) {
        let message = format!(
            "missing required key {key:?} in {} (required because {why})",
            self.name
        );
        let at = self.at.clone();
        self.ctx.error(&at, message);
    }

    /// The key's value converted by `convert`; `None` when absent or bad
    /// (bad values are recorded as errors).
    pub fn opt<T>(
        &mut self,
        key: &str,
        convert: impl FnOnce(&mut Ctx, &Field) -> Option<T>,
    ) -> Option<T> {
        let field = self.take(key)?;
        convert(self.ctx, &field)
    }

    /// As `opt`, and absence is an error.
    pub fn req<T>(
        &mut self,
        key: &str,
        convert: impl FnOnce(&mut Ctx, &Field) -> Option<T>,
    ) -> Option<T> {
        match self.take(key) {
            Some(field) => convert(self.ctx, &field),
            None => {
                self.missing(key);
                None
            }
        }
    }

    /// Where the key's value is, if it is set.
    pub fn value_at(&self, key: &str) -> Option<Origin> {
        self.fields
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.value_at.clone())
    }

    /// A secret given as `KEY` (the value), `KEY_env` (a variable holding it)
    /// or `KEY_file` (a file holding it; relative paths are under
    /// `$CREDENTIALS_DIRECTORY`). Exactly one form, or none if optional.
    pub fn secret(&mut self, key: &str, need: Need) -> Option<Secret> {
        let names = [key.to_string(), format!("{key}_env"), format!("{key}_file")];
        let given: Vec<Field<'t>> = names.iter().filter_map(|n| self.take(n)).collect();
        let field = match given.as_slice() {
            [] => {
                let why = match need {
                    Need::Optional => return None,
                    Need::Required => String::new(),
                    Need::RequiredBecause(why) => format!(" (required because {why})"),
                };
                let [plain, env, file] = &names;
                let message = format!(
                    "missing secret {key:?} in {}{why}: set {plain}, {env} or {file}",
                    self.name
                );
                let at = self.at.clone();
                self.ctx.error(&at, message);
                return None;
            }
            [one] => one,
            [first, rest @ ..] => {
                let forms: Vec<&str> = given.iter().map(|f| f.key).collect();
                let message = format!(
                    "secret {key:?} in {} is given {} ways ({}); keep one",
                    self.name,
                    given.len(),
                    forms.join(", ")
                );
                // Point at the later one: the earlier is likely the intended.
                let at = rest.last().map_or(&first.key_at, |f| &f.key_at).clone();
                self.ctx.error(&at, message);
                return None;
            }
        };
        let ctx = &mut *self.ctx;
        let text = field.str(ctx)?;
        if field.key == key {
            if text.is_empty() {
                field.bad_value(ctx, "must not be empty");
                return None;
            }
            if matches!(field.key_at, Origin::File(_)) {
                let message = format!(
                    "secret {key:?} in {} is written in the file; in production give \
                     {key}_env or {key}_file instead (docs/configuration.md, \"Secrets\")",
                    self.name
                );
                ctx.warning(&field.key_at, message);
            }
            return Some(Secret::new(text));
        }
        if field.key.ends_with("_env") {
            if text.is_empty() {
                field.bad_value(ctx, "must name an environment variable");
                return None;
            }
            let problem = match ctx.env.var(text) {
                Some(value) if !value.is_empty() => return Some(Secret::new(value)),
                Some(_) => "is empty",
                None => "is not set",
            };
            let message = format!(
                "environment variable {text} named by {} {problem}",
                field.what()
            );
            ctx.error(&field.key_at, message);
            return None;
        }
        if text.is_empty() {
            field.bad_value(ctx, "must be a file path");
            return None;
        }
        let mut path = PathBuf::from(text);
        if path.is_relative() {
            match ctx.env.credentials_directory() {
                Some(dir) => path = dir.join(path),
                None => {
                    let message = format!(
                        "{} is a relative path ({text:?}) but $CREDENTIALS_DIRECTORY is not set; \
                         give an absolute path, or start switchyard from systemd with LoadCredential=",
                        field.what()
                    );
                    ctx.error(&field.key_at, message);
                    return None;
                }
            }
        }
        match read_secret_file(&path) {
            Ok(secret) => Some(secret),
            Err(problem) => {
                let message = format!("{}: {problem}", field.what());
                ctx.error(&field.key_at, message);
                None
            }
        }
    }

    /// Records that `key`'s value is wrong for a reason its reader knows
    /// (`problem`), at the value, or at the section when the key is absent.
    pub fn invalid(&mut self, key: &str, problem: &str) {
        match self.fields.iter().find(|f| f.key == key).cloned() {
            Some(field) => field.bad_value(self.ctx, problem),
            None => {
                let message = format!("{key:?} in {}: {problem}", self.name);
                let at = self.at.clone();
                self.ctx.error(&at, message);
            }
        }
    }

    /// Reports every key nobody asked for.
    pub fn finish(self) {
        let asked: Vec<&str> = self.asked.iter().map(String::as_str).collect();
        for field in &self.fields {
            if asked.contains(&field.key) {
                continue;
            }
            let hint = match did_you_mean(field.key, asked.iter().copied()) {
                Some(near) => format!(" (did you mean {near:?}?)"),
                None => String::new(),
            };
            let message = format!("unknown key {:?} in {}{hint}", field.key, self.name);
            self.ctx.error(&field.key_at, message);
        }
    }

    /// Ends reading without the unknown-key check, for a section whose kind
    /// (an account's channel) is unknown, so which keys belong is unknown too.
    pub fn abandon(self) {}
}

// Converters, for `Section::opt` and `Section::req`.

pub(crate) fn non_empty(ctx: &mut Ctx, f: &Field) -> Option<String> {
    let text = f.str(ctx)?;
    if text.trim().is_empty() {
        f.bad_value(ctx, "must not be empty");
        return None;
    }
    Some(text.to_string())
}

/// As [`non_empty`], and a whole number written without quotes is taken as
/// its digits (ids other systems hand out as numbers).
pub(crate) fn text_or_number(ctx: &mut Ctx, f: &Field) -> Option<String> {
    if let Raw::Toml(DeValue::Integer(i)) = f.raw {
        return match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(n.to_string()),
            Err(_) => {
                f.bad_value(ctx, "is not a whole number this config can hold");
                None
            }
        };
    }
    non_empty(ctx, f)
}

pub(crate) fn boolean(ctx: &mut Ctx, f: &Field) -> Option<bool> {
    match f.raw {
        Raw::Toml(DeValue::Boolean(b)) => Some(*b),
        Raw::Env("true") => Some(true),
        Raw::Env("false") => Some(false),
        Raw::Env(text) => {
            f.bad_value(ctx, format!("{text:?} is not true or false"));
            None
        }
        Raw::Toml(_) => {
            f.wrong_type(ctx, "true or false");
            None
        }
    }
}

pub(crate) fn u32_value(ctx: &mut Ctx, f: &Field) -> Option<u32> {
    let parsed = match f.raw {
        Raw::Toml(DeValue::Integer(i)) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        Raw::Env(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse::<i64>().ok()
        }
        Raw::Env(text) => {
            f.bad_value(ctx, format!("{text:?} is not a whole number"));
            return None;
        }
        Raw::Toml(_) => {
            f.wrong_type(ctx, "a whole number");
            return None;
        }
    };
    match parsed.and_then(|n| u32::try_from(n).ok()) {
        Some(n) => Some(n),
        None => {
            f.bad_value(ctx, format!("must be between 0 and {}", u32::MAX));
            None
        }
    }
}

/// A whole number from `min` to `max`.
pub(crate) fn u32_in(ctx: &mut Ctx, f: &Field, min: u32, max: u32) -> Option<u32> {
    let n = u32_value(ctx, f)?;
    if !(min..=max).contains(&n) {
        f.bad_value(ctx, format!("{n} is out of range; give {min} to {max}"));
        return None;
    }
    Some(n)
}

/// A number above zero and at most `max`, whole or not (`0.5`: one every
/// two seconds).
pub(crate) fn positive_number(ctx: &mut Ctx, f: &Field, max: f64) -> Option<f64> {
    let (text, parsed) = match f.raw {
        Raw::Toml(DeValue::Integer(i)) => (
            i.as_str(),
            // Any whole number is a number; the range check below judges it.
            i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
        ),
        Raw::Toml(DeValue::Float(x)) => (x.as_str(), x.as_str().parse::<f64>().ok()),
        Raw::Env(text) => (text, text.trim().parse::<f64>().ok()),
        Raw::Toml(_) => {
            f.wrong_type(ctx, "a number");
            return None;
        }
    };
    match parsed {
        Some(x) if x.is_finite() && x > 0.0 && x <= max => Some(x),
        Some(_) => {
            f.bad_value(
                ctx,
                format!("{text} is out of range; give a number above 0 and at most {max}"),
            );
            None
        }
        None => {
            f.bad_value(ctx, format!("{text:?} is not a number"));
            None
        }
    }
}

/// The longest duration a config may give. Without a bound, a value such
/// as "18446744073709551615s" loaded fine and then panicked the daemon where
/// it is added to the clock (`Instant + d`: at the first poll, at shutdown).
const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// `"30s"`, `"2m"`, `"1h"`, `"1d"`: a whole number and a unit, at most a year.
pub(crate) fn duration(ctx: &mut Ctx, f: &Field) -> Option<Duration> {
    let text = match f.raw {
        Raw::Toml(DeValue::String(s)) => s.as_ref(),
        Raw::Env(s) => s,
        Raw::Toml(_) => {
            f.wrong_type(ctx, "a duration like \"30s\" or \"2m\"");
            return None;
        }
    };
    match parse_duration(text) {
        Some(d) if d > MAX_DURATION => {
            f.bad_value(
                ctx,
                format!(
                    "{text:?} is too long; at most {}d",
                    MAX_DURATION.as_secs() / 86_400
                ),
            );
            None
        }
        Some(d) => Some(d),
        None => {
            f.bad_value(
                ctx,
                format!(
                    "{text:?} is not a duration; write a whole number and a unit \
                     (s, m, h or d), like \"30s\" or \"2m\""
                ),
            );
            None
        }
    }
}

pub(crate) fn positive_duration(ctx: &mut Ctx, f: &Field) -> Option<Duration> {
    let d = duration(ctx, f)?;
    if d.is_zero() {
        f.bad_value(ctx, "must be longer than zero");
        return None;
    }
    Some(d)
}

fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(seconds).map(Duration::from_secs)
}

/// An `http://` or `https://` URL with a host (checked by the `url` crate),
/// kept as written but without a trailing `/` so that callers can append
/// paths.
pub(crate) fn url(ctx: &mut Ctx, f: &Field) -> Option<String> {
    let text = f.str(ctx)?;
    let problem = if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        // The parser would quietly drop or encode them.
        "must not contain spaces".to_owned()
    } else {
        match url::Url::parse(text) {
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                "must start with http:// or https://".to_owned()
            }
            // `https:///x` parses with host `x`: a typo, not a host.
            Ok(u)
                if u.host_str().is_none_or(str::is_empty)
                    || text
                        .split_once("://")
                        .is_none_or(|(_, r)| r.starts_with('/')) =>
            {
                "has no host".to_owned()
            }
            Ok(_) => return Some(text.trim_end_matches('/').to_string()),
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                "must start with http:// or https://".to_owned()
            }
            Err(url::ParseError::EmptyHost) => "has no host".to_owned(),
            Err(e) => format!("has {}", with_article(&e.to_string())),
        }
    };
    f.bad_value(ctx, format!("{text:?} is not a URL: it {problem}"));
    None
}

/// "invalid port number" → "an invalid port number".
fn with_article(what: &str) -> String {
    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {what}")
}

pub(crate) fn socket_addr(ctx: &mut Ctx, f: &Field) -> Option<SocketAddr> {
    let text = f.str(ctx)?;
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            f.bad_value(
                ctx,
                format!(
                    "{text:?} is not a socket address; write an IP address and a port, \
                     like \"127.0.0.1:7300\" or \"[::1]:7300\""
                ),
            );
            None
        }
    }
}

/// RFC 3339 with an offset, as a TOML date-time or a string.
pub(crate) fn datetime(ctx: &mut Ctx, f: &Field) -> Option<DateTime<Utc>> {
    let text = match f.raw {
        Raw::Toml(DeValue::Datetime(dt)) => dt.to_string(),
        Raw::Toml(DeValue::String(s)) => s.to_string(),
        Raw::Env(s) => s.to_string(),
        Raw::Toml(_) => {
            f.wrong_type(ctx, "an RFC 3339 date-time");
            return None;
        }
    };
    match DateTime::parse_from_rfc3339(&text) {
        Ok(dt) => Some(dt.with_timezone(&Utc)),
        Err(_) => {
            f.bad_value(
                ctx,
                format!(
                    "{text:?} is not an RFC 3339 date-time with a UTC offset, \
                     like \"2026-01-01T00:00:00Z\""
                ),
            );
            None
        }
    }
}

pub(crate) fn path(ctx: &mut Ctx, f: &Field) -> Option<PathBuf> {
    non_empty(ctx, f).map(PathBuf::from)
}

/// Account and destination ids appear in order ids (`<account>:<id>`) and in
/// URLs, so they keep to characters that need no escaping in either.
pub(crate) fn id(ctx: &mut Ctx, f: &Field) -> Option<String> {
    let text = f.str(ctx)?;
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        f.bad_value(
            ctx,
            format!("{text:?} is not a valid id; use 1 to 64 letters, digits, '-' or '_'"),
        );
        return None;
    }
    Some(text.to_string())
}

/// One of a fixed set of words.
pub(crate) fn one_of<'v>(
    ctx: &mut Ctx,
    f: &Field,
    what: &str,
    allowed: &[&'v str],
) -> Option<&'v str> {
    let text = f.str(ctx)?;
    if let Some(found) = allowed.iter().find(|a| **a == text) {
        return Some(found);
    }
    let hint = match did_you_mean(text, allowed.iter().copied()) {
        Some(near) => format!(" (did you mean {near:?}?)"),
        None => String::new(),
    };
    f.bad_value(
        ctx,
        format!(
            "unknown {what} {text:?}{hint}; expected one of {}",
            allowed.join(", ")
        ),
    );
    None
}

/// A list of non-empty strings; a single string is a list of one.
pub(crate) fn string_list(ctx: &mut Ctx, f: &Field) -> Option<Vec<String>> {
    let items: Vec<String> = match f.raw {
        Raw::Toml(DeValue::String(s)) => vec![s.to_string()],
        Raw::Env(s) => vec![s.to_string()],
        Raw::Toml(DeValue::Array(items)) => {
            let mut strings = Vec::new();
            for item in items.iter() {
                match item.get_ref() {
                    DeValue::String(s) => strings.push(s.to_string()),
                    other => {
                        let message = format!(
                            "{} must be a list of strings, not hold {}",
                            f.what(),
                            a_type(other)
                        );
                        ctx.error(&Origin::File(item.span()), message);
                        return None;
                    }
                }
            }
            strings
        }
        Raw::Toml(_) => {
            f.wrong_type(ctx, "a list of strings");
            return None;
        }
    };
    if items.is_empty() || items.iter().any(|s| s.trim().is_empty()) {
        f.bad_value(ctx, "must list at least one value, none of them empty");
        return None;
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        for bad in [
            "",
            "2",
            "m",
            "2 m",
            "2min",
            "-1s",
            "1.5h",
            "99999999999999999999s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
