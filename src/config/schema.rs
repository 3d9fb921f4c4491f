//! The shape of `switchyard.toml` as code: its sections, each section's keys,
//! their types, defaults and which are required (per channel for accounts),
//! turned into the typed [`Config`]. The TOML is parsed with spans so every
//! problem gets a line and column; the typed config is only handed out when
//! there is no problem at all.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_contract::model::Channel;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::channel_keys::ChannelKeys;
use super::env::{self, Env, Override};
use super::error::ConfigErrors;
use super::read::{self, Ctx, Need, Origin, Section};
use super::{
    AccountConfig, Config, DaemonConfig, DeliveryPace, DestinationConfig, DestinationKind,
    InventoryConfig, LogFormat,
};
use crate::diag::did_you_mean;

const DEFAULT_STATE_DIR: &str = "/var/lib/switchyard";
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7300);
pub(crate) const DEFAULT_RULES: &str = "/etc/switchyard/rules.toml";
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Below this the store's engine spends its time re-reading pages.
const MIN_CACHE_MB: u32 = 8;
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(120);

const SECTIONS: [&str; 4] = ["daemon", "account", "destination", "inventory"];
const DESTINATION_KINDS: [&str; 1] = ["webhook"];

pub(crate) fn load(
    path: &Path,
    text: &str,
    env: &Env,
    channels: &[switchyard_contract::ChannelDescriptor],
) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx::new(path, text, env, channels);
    let (overrides, problems) = env::overrides(env);
    for problem in problems {
        ctx.error(&Origin::Env(problem.var), problem.message);
    }

    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    // After a syntax error the recovered tree may be missing pieces; checking
    // it would add "missing key" noise, and the parser's later errors are
    // mostly echoes of the first: one syntax error comes alone.
    let config = match crate::diag::toml_syntax::first_error(text, &syntax_errors) {
        Some(e) => {
            ctx.error(&Origin::File(e.offset..e.offset), e.message);
            None
        }
        None => build(&mut ctx, &doc, &overrides),
    };

    let mut errors = ctx.errors;
    if errors.is_empty() {
        if let Some(mut config) = config {
            config.warnings = ctx.warnings;
            return Ok(config);
        }
        // Every path that yields no config records why; this is a backstop.
        errors.push(super::ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            env_var: None,
            message: "incomplete config (internal error: no problem was recorded)".to_string(),
        });
    }
    errors.sort_by_key(|e| (e.env_var.is_some(), e.line, e.column));
    Err(ConfigErrors { errors })
}

fn build(ctx: &mut Ctx, doc: &Spanned<DeTable>, overrides: &[Override]) -> Option<Config> {
    let mut daemon = None;
    let mut inventory = None;
    let mut accounts = Vec::new();
    let mut destinations = Vec::new();
    for (key, value) in doc.get_ref().iter() {
        let name = key.get_ref().as_ref();
        match name {
            "daemon" => daemon = table(ctx, key, value),
            "inventory" => inventory = table(ctx, key, value),
            "account" => accounts = array_of_tables(ctx, key, value),
            "destination" => destinations = array_of_tables(ctx, key, value),
            _ => {
                let hint = match did_you_mean(name, SECTIONS) {
                    Some(near) => format!(" (did you mean {near:?}?)"),
                    None => String::new(),
                };
                ctx.error(
                    &Origin::File(key.span()),
                    format!(
                        "unknown top-level key {name:?}{hint}; the file has [daemon], \
                         [[account]], [[destination]] and [inventory]"
                    ),
                );
            }
        }
    }
    let for_section =
        |section: &'static str| overrides.iter().filter(move |o| o.section == section);

    let base = ctx.file.parent().unwrap_or(Path::new("")).to_path_buf();
    let (table, header) = daemon.unzip();
    let section = Section::new(
        ctx,
        "[daemon]".into(),
        header.unwrap_or(0..0),
        table,
        for_section("daemon"),
    );
    let daemon = read_daemon(section, &base);

    let (table, header) = inventory.unzip();
    let mut section = Section::new(
        ctx,
        "[inventory]".into(),
        header.unwrap_or(0..0),
        table,
        for_section("inventory"),
    );
    let buffer = section.opt("buffer", read::u32_value).unwrap_or(0);
    section.finish();
    let inventory = InventoryConfig { buffer };

    let mut ids = Vec::new();
    let accounts: Vec<Option<AccountConfig>> = accounts
        .into_iter()
        .enumerate()
        .map(|(i, (table, header))| {
            let name = format!("[[account]] #{}", i + 1);
            let section = Section::new(ctx, name, header, Some(table), std::iter::empty());
            read_account(section, &mut ids)
        })
        .collect();

    let mut ids = Vec::new();
    let destinations: Vec<Option<DestinationConfig>> = destinations
        .into_iter()
        .enumerate()
        .map(|(i, (table, header))| {
            let name = format!("[[destination]] #{}", i + 1);
            let section = Section::new(ctx, name, header, Some(table), std::iter::empty());
            read_destination(section, &mut ids)
        })
        .collect();

    Some(Config {
        source: ctx.file.to_path_buf(),
        daemon,
        accounts: accounts.into_iter().collect::<Option<_>>()?,
        destinations: destinations.into_iter().collect::<Option<_>>()?,
        inventory,
        warnings: Vec::new(),
    })
}

type Located<'t> = (&'t DeTable<'t>, Range<usize>);

/// A `[section]` (or inline table): the table and its header's span.
fn table<'t>(
    ctx: &mut Ctx,
    key: &Spanned<std::borrow::Cow<'t, str>>,
    value: &'t Spanned<DeValue<'t>>,
) -> Option<Located<'t>> {
    match value.get_ref() {
        DeValue::Table(t) => Some((t, value.span())),
        _ => {
            let name = key.get_ref();
            ctx.error(
                &Origin::File(key.span()),
                format!("{name:?} must be a table: write [{name}] and its keys below it"),
            );
            None
        }
    }
}

/// An array of `[[section]]` tables, each with its header's span.
fn array_of_tables<'t>(
    ctx: &mut Ctx,
    key: &Spanned<std::borrow::Cow<'t, str>>,
    value: &'t Spanned<DeValue<'t>>,
) -> Vec<Located<'t>> {
    let name = key.get_ref();
    let DeValue::Array(items) = value.get_ref() else {
        ctx.error(
            &Origin::File(key.span()),
            format!("{name:?} must be an array of tables: write [[{name}]] before each entry"),
        );
        return Vec::new();
    };
    let mut tables = Vec::new();
    for item in items.iter() {
        match item.get_ref() {
            DeValue::Table(t) => tables.push((t, item.span())),
            _ => ctx.error(
                &Origin::File(item.span()),
                format!("each {name:?} entry must be a table: write [[{name}]] before each entry"),
            ),
        }
    }
    tables
}

fn read_daemon(mut s: Section, base: &Path) -> DaemonConfig {
    // Relative to the config file, so the working directory does not matter.
    let state_dir = s.opt("state_dir", read::path).map(|p| base.join(p));
    let listen = s.opt("listen", read::socket_addr);
    let rules = s.opt("rules", read::path).map(|p| base.join(p));
    let log_format = s.opt("log_format", |ctx, f| {
        read::one_of(ctx, f, "log format", &["text", "json"]).map(|word| match word {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        })
    });
    let admin_token = s.secret("admin_token", Need::Optional);
    let shutdown_timeout = s.opt("shutdown_timeout", read::duration);
    let cache_mb = s.opt("cache_mb", |ctx, f| {
        let n = read::u32_value(ctx, f)?;
        if n < MIN_CACHE_MB {
            f.bad_value(
                ctx,
                format!("{n} MiB is too small for the store's cache; give at least {MIN_CACHE_MB}"),
            );
            return None;
        }
        Some(n)
    });
    s.finish();
    DaemonConfig {
        state_dir: state_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        listen: listen.unwrap_or(DEFAULT_LISTEN),
        rules: rules.unwrap_or_else(|| PathBuf::from(DEFAULT_RULES)),
        log_format: log_format.unwrap_or_default(),
        admin_token,
        shutdown_timeout: shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
        cache_mb: cache_mb.unwrap_or(crate::store::DEFAULT_CACHE_MB),
    }
}

/// Reads `id`, renames the section after it and checks it is unused so far.
fn read_id(s: &mut Section, kind: &str, seen: &mut Vec<(String, Origin)>) -> Option<String> {
    let id = s.req("id", read::id)?;
    s.rename(format!("[[{kind}]] {id:?}"));
    let at = s.value_at("id")?;
    match seen.iter().find(|(other, _)| *other == id) {
        Some((_, first)) => {
            let first = s.ctx().describe(first);
            s.ctx().error(
                &at,
                format!("duplicate {kind} id {id:?} (first used at {first})"),
            );
        }
        None => seen.push((id.clone(), at)),
    }
    Some(id)
}

fn read_account(mut s: Section, ids: &mut Vec<(String, Origin)>) -> Option<AccountConfig> {
    let id = read_id(&mut s, "account", ids);
    let channel = s.req("channel", |ctx, f| {
        let names = Channel::ALL.map(Channel::as_str);
        read::one_of(ctx, f, "channel", &names).and_then(|name| Channel::from_str(name).ok())
    });
    let base_url = s.req("base_url", read::url);
    let poll_interval = s.opt("poll_interval", read::positive_duration);
    let start_date = s.opt("start_date", read::datetime);
    let buffer = s.opt("buffer", read::u32_value);
    let webhooks = s.opt("webhooks", read::boolean).unwrap_or(false);
    let Some(channel) = channel else {
        // Without a channel it is unknown which keys belong.
        s.abandon();
        return None;
    };
    let descriptor = s
        .ctx()
        .channels
        .iter()
        .find(|d| d.channel == channel)
        .copied();
    let (settings, refresh_token_id) = match descriptor {
        Some(descriptor) => {
            if webhooks && !descriptor.capabilities.webhooks {
                s.invalid(
                    "webhooks",
                    &format!(
                        "{channel} sends no webhooks to switchyard; remove it or set it to false"
                    ),
                );
            }
            let mut keys = ChannelKeys {
                section: &mut s,
                account: id.clone().unwrap_or_default(),
                webhooks,
                refresh_token_id: None,
            };
            let settings = (descriptor.read_settings)(&mut keys);
            let refresh_token_id = keys.refresh_token_id.take();
            s.finish();
            (Some(Arc::from(settings?)), refresh_token_id)
        }
        None => {
            // No connector for this channel is built in: its keys are its
            // crate's to judge, so they are left unread and the account is
            // skipped when the daemon starts.
            s.abandon();
            (None, None)
        }
    };
    Some(AccountConfig {
        id: id?,
        channel,
        base_url: base_url?,
        poll_interval: poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
        start_date,
        buffer,
        webhooks,
        settings,
        refresh_token_id,
    })
}

fn read_destination(mut s: Section, ids: &mut Vec<(String, Origin)>) -> Option<DestinationConfig> {
    let id = read_id(&mut s, "destination", ids);
    let kind = s.req("kind", |ctx, f| {
        read::one_of(ctx, f, "destination kind", &DESTINATION_KINDS)
    });
    let rate = s.opt("rate", |ctx, f| {
        read::positive_number(ctx, f, DeliveryPace::MAX_RATE)
    });
    let concurrency = s.opt("concurrency", |ctx, f| {
        read::u32_in(ctx, f, 1, DeliveryPace::MAX_CONCURRENCY)
    });
    let kind = match kind {
        Some("webhook") => {
            let url = s.req("url", read::url);
            let secret = s.secret("secret", Need::Required);
            s.finish();
            DestinationKind::Webhook {
                url: url?,
                secret: secret?,
            }
        }
        _ => {
            // Without a kind it is unknown which keys belong.
            s.abandon();
            return None;
        }
    };
    let pace = DeliveryPace {
        rate: rate.unwrap_or(DeliveryPace::DEFAULT_RATE),
        concurrency: concurrency.unwrap_or(DeliveryPace::DEFAULT_CONCURRENCY),
    };
    Some(DestinationConfig {
        id: id?,
        kind,
        pace,
    })
}
