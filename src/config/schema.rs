//! The shape of `switchyard.toml` as code: its sections, each section's keys,
//! their types, defaults and which are required (per channel for accounts),
//! turned into the typed [`Config`]. The TOML is parsed with spans so every
//! problem gets a line and column; the typed config is only handed out when
//! there is no problem at all.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use switchyard_contract::model::Channel;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::env::{self, Env, Override};
use super::error::ConfigErrors;
use super::read::{self, Ctx, Field, Need, Origin, Raw, Section};
use super::{
    AccountConfig, AmazonSettings, ChannelSettings, Config, DaemonConfig, DestinationConfig,
    DestinationKind, EbaySettings, EtsySettings, InventoryConfig, LogFormat, ShopifySettings,
};
use crate::diag::did_you_mean;

const DEFAULT_STATE_DIR: &str = "/var/lib/switchyard";
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7300);
pub(crate) const DEFAULT_RULES: &str = "/etc/switchyard/rules.toml";
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(120);
const DEFAULT_SHOPIFY_API_VERSION: &str = "2026-10";
const DEFAULT_ETSY_TOKEN_URL: &str = "https://api.etsy.com/v3/public/oauth/token";
const DEFAULT_EBAY_MARKETPLACE: &str = "EBAY_US";
const DEFAULT_EBAY_TOKEN_URL: &str = "https://api.ebay.com/identity/v1/oauth2/token";
const DEFAULT_AMAZON_TOKEN_URL: &str = "https://api.amazon.com/auth/o2/token";
const SHOPIFY_LOCATION_GID: &str = "gid://shopify/Location/";

const SECTIONS: [&str; 4] = ["daemon", "account", "destination", "inventory"];
const DESTINATION_KINDS: [&str; 1] = ["webhook"];

pub(crate) fn load(path: &Path, text: &str, env: &Env) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx::new(path, text, env);
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
    s.finish();
    DaemonConfig {
        state_dir: state_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        listen: listen.unwrap_or(DEFAULT_LISTEN),
        rules: rules.unwrap_or_else(|| PathBuf::from(DEFAULT_RULES)),
        log_format: log_format.unwrap_or_default(),
        admin_token,
        shutdown_timeout: shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
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
    let hooks = if webhooks {
        Need::RequiredBecause("webhooks = true")
    } else {
        Need::Optional
    };
    let settings = match channel {
        Some(Channel::Shopify) => read_shopify(&mut s, hooks).map(ChannelSettings::Shopify),
        Some(Channel::Etsy) => read_etsy(&mut s, hooks).map(ChannelSettings::Etsy),
        Some(Channel::Ebay) => read_ebay(&mut s, hooks).map(ChannelSettings::Ebay),
        Some(Channel::Amazon) => read_amazon(&mut s, hooks).map(ChannelSettings::Amazon),
        None => {
            // Without a channel it is unknown which keys belong.
            s.abandon();
            return None;
        }
    };
    s.finish();
    Some(AccountConfig {
        id: id?,
        channel: channel?,
        base_url: base_url?,
        poll_interval: poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
        start_date,
        buffer,
        webhooks,
        settings: settings?,
    })
}

fn read_shopify(s: &mut Section, hooks: Need) -> Option<ShopifySettings> {
    let access_token = s.secret("access_token", Need::Required);
    let webhook_secret = s.secret("webhook_secret", hooks);
    let webhook_secret_previous = s.secret("webhook_secret_previous", Need::Optional);
    let location_id = s.opt("location_id", shopify_location);
    let api_version = s.opt("api_version", shopify_api_version);
    let notify_customer = s.opt("notify_customer", read::boolean).unwrap_or(true);
    Some(ShopifySettings {
        access_token: access_token?,
        webhook_secret,
        webhook_secret_previous,
        notify_customer,
        location_id,
        api_version: api_version.unwrap_or_else(|| DEFAULT_SHOPIFY_API_VERSION.to_string()),
    })
}

fn read_etsy(s: &mut Section, hooks: Need) -> Option<EtsySettings> {
    let shop_id = s.req("shop_id", read::numeric_id);
    let api_key = s.req("api_key", read::non_empty);
    let shared_secret = s.secret("shared_secret", Need::Required);
    let access_token = s.secret("access_token", Need::Optional);
    let refresh_token = s.secret("refresh_token", Need::Required);
    let token_url = s.opt("token_url", read::url);
    let webhook_secret = s.secret("webhook_secret", hooks);
    Some(EtsySettings {
        shop_id: shop_id?,
        api_key: api_key?,
        shared_secret: shared_secret?,
        access_token,
        refresh_token: refresh_token?,
        token_url: token_url.unwrap_or_else(|| DEFAULT_ETSY_TOKEN_URL.to_string()),
        webhook_secret,
    })
}

fn read_ebay(s: &mut Section, hooks: Need) -> Option<EbaySettings> {
    let marketplace_id = s.opt("marketplace_id", ebay_marketplace);
    let client_id = s.req("client_id", read::non_empty);
    let client_secret = s.secret("client_secret", Need::Required);
    let refresh_token = s.secret("refresh_token", Need::Required);
    let token_url = s.opt("token_url", read::url);
    let verification_token = s.secret("verification_token", hooks);
    Some(EbaySettings {
        marketplace_id: marketplace_id.unwrap_or_else(|| DEFAULT_EBAY_MARKETPLACE.to_string()),
        client_id: client_id?,
        client_secret: client_secret?,
        refresh_token: refresh_token?,
        token_url: token_url.unwrap_or_else(|| DEFAULT_EBAY_TOKEN_URL.to_string()),
        verification_token,
    })
}

fn read_amazon(s: &mut Section, hooks: Need) -> Option<AmazonSettings> {
    let seller_id = s.req("seller_id", read::non_empty);
    let marketplace_ids = s.req("marketplace_ids", amazon_marketplaces);
    let client_id = s.req("client_id", read::non_empty);
    let client_secret = s.secret("client_secret", Need::Required);
    let refresh_token = s.secret("refresh_token", Need::Required);
    let token_url = s.opt("token_url", read::url);
    let webhook_secret = s.secret("webhook_secret", hooks);
    Some(AmazonSettings {
        seller_id: seller_id?,
        marketplace_ids: marketplace_ids?,
        client_id: client_id?,
        client_secret: client_secret?,
        refresh_token: refresh_token?,
        token_url: token_url.unwrap_or_else(|| DEFAULT_AMAZON_TOKEN_URL.to_string()),
        webhook_secret,
    })
}

fn read_destination(mut s: Section, ids: &mut Vec<(String, Origin)>) -> Option<DestinationConfig> {
    let id = read_id(&mut s, "destination", ids);
    let kind = s.req("kind", |ctx, f| {
        read::one_of(ctx, f, "destination kind", &DESTINATION_KINDS)
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
    Some(DestinationConfig { id: id?, kind })
}

/// A number or `gid://shopify/Location/N`, kept as the gid the GraphQL API takes.
fn shopify_location(ctx: &mut Ctx, f: &Field) -> Option<String> {
    if let Raw::Toml(DeValue::String(text)) = f.raw
        && let Some(number) = text.strip_prefix(SHOPIFY_LOCATION_GID)
    {
        if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
            return Some(text.to_string());
        }
        f.bad_value(
            ctx,
            format!("{text:?} is not a location gid like \"{SHOPIFY_LOCATION_GID}123\""),
        );
        return None;
    }
    read::numeric_id(ctx, f).map(|n| format!("{SHOPIFY_LOCATION_GID}{n}"))
}

/// Shopify releases API versions quarterly (`2026-01`, `-04`, `-07`, `-10`).
fn shopify_api_version(ctx: &mut Ctx, f: &Field) -> Option<String> {
    let text = f.str(ctx)?;
    // Bytes, not `&text[..4]`: a 7-byte value with a multi-byte character
    // across byte 4 ("202é-1") panicked the loader instead of being refused.
    let bytes = text.as_bytes();
    let quarterly = bytes.len() == 7
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && matches!(&bytes[4..], b"-01" | b"-04" | b"-07" | b"-10");
    if quarterly || text == "unstable" {
        return Some(text.to_string());
    }
    f.bad_value(
        ctx,
        format!(
            "{text:?} is not a Shopify API version; use a quarterly release like \
             \"{DEFAULT_SHOPIFY_API_VERSION}\" (months 01, 04, 07, 10) or \"unstable\""
        ),
    );
    None
}

fn ebay_marketplace(ctx: &mut Ctx, f: &Field) -> Option<String> {
    let text = f.str(ctx)?;
    let ok = text.strip_prefix("EBAY_").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
    });
    if ok {
        return Some(text.to_string());
    }
    f.bad_value(
        ctx,
        format!("{text:?} is not an eBay marketplace id like \"{DEFAULT_EBAY_MARKETPLACE}\""),
    );
    None
}

fn amazon_marketplaces(ctx: &mut Ctx, f: &Field) -> Option<Vec<String>> {
    let ids = read::string_list(ctx, f)?;
    let bad: Vec<&String> = ids
        .iter()
        .filter(|id| {
            !id.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
        .collect();
    if let Some(id) = bad.first() {
        f.bad_value(
            ctx,
            format!("{id:?} is not an Amazon marketplace id like \"ATVPDKIKX0DER\""),
        );
        return None;
    }
    Some(ids)
}
