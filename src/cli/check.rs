//! `switchyard check`: the config and the rules file, every error and warning
//! of both at once. The rules file is checked even when the config has
//! errors, as far as the config can still be read to find it; warnings name
//! accounts that `run` would skip and secrets written in the file.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::print::{outln, plural};
use super::{CliResult, EXIT_FAILED, Failure, print_json};
use crate::channels::accounts::{CheckResult, Checks, Connectors};
use crate::config::{Config, Env};
use crate::rules::Diagnostic;

/// The `check --json` document.
#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    config: ConfigReport,
    /// Null when the config could not be read far enough to find the rules.
    rules: Option<RulesReport>,
    /// With `--online`: each account's check against its channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    online: Option<Vec<CheckResult>>,
}

#[derive(Debug, Serialize)]
struct ConfigReport {
    file: PathBuf,
    ok: bool,
    errors: Vec<String>,
    warnings: Vec<String>,
    accounts: usize,
    /// Accounts `run` would skip, and why.
    skipped: Vec<Skipped>,
    destinations: usize,
}

#[derive(Debug, Serialize)]
struct Skipped {
    id: String,
    channel: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct RulesReport {
    file: PathBuf,
    ok: bool,
    errors: Vec<String>,
    warnings: Vec<String>,
    rules: usize,
}

pub fn run(config_path: &Path, json: bool, online: bool) -> CliResult {
    let env = Env::from_process();
    let loaded = crate::config::load_with(config_path, &env);
    let (config, rules_target) = match &loaded {
        Ok(config) => {
            let ids = config.destinations.iter().map(|d| d.id.clone()).collect();
            (
                config_report(config_path, config),
                Some((config.daemon.rules.clone(), ids)),
            )
        }
        Err(errors) => (
            ConfigReport {
                file: config_path.to_path_buf(),
                ok: false,
                errors: errors.errors.iter().map(ToString::to_string).collect(),
                warnings: Vec::new(),
                accounts: 0,
                skipped: Vec::new(),
                destinations: 0,
            },
            crate::config::rules_of_broken(config_path, &env),
        ),
    };
    let rules = rules_target.map(|(path, destinations)| rules_report(path, &destinations));
    let online = match (&loaded, online) {
        (Ok(_), true) if config.ok => Some(online_checks(config_path)?),
        _ => None,
    };
    let report = Report {
        ok: config.ok
            && rules.as_ref().is_some_and(|r| r.ok)
            && online.iter().flatten().all(|c| c.ok),
        config,
        rules,
        online,
    };
    if json {
        print_json(&report)?;
    } else {
        print_text(&report);
    }
    if report.ok {
        Ok(())
    } else {
        // Every problem is printed already.
        Err(Failure::new(EXIT_FAILED, ""))
    }
}

/// Every account's connector check: by the running daemon when there is
/// one (its connectors hold the accounts' tokens; a second instance here
/// could spend a refresh token the daemon still holds), else here, with the
/// store's tokens.
fn online_checks(config_path: &Path) -> Result<Vec<CheckResult>, Failure> {
    match super::open_backend(config_path, super::Open::OrCreate)? {
        super::Backend::Remote(remote) => remote.post(&["check"], &[], None),
        super::Backend::Local { config, store } => {
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .map_err(|e| Failure::new(EXIT_FAILED, format!("building the HTTP client: {e}")))?;
            let connectors = Connectors::build(&config, &http, &store)
                .map_err(|e| Failure::new(EXIT_FAILED, e.to_string()))?;
            let runtime = super::runtime(false)?;
            let results = runtime.block_on(connectors.check_all());
            store
                .flush_blocking()
                .map_err(super::orders::store_failure)?;
            Ok(results)
        }
    }
}

fn config_report(path: &Path, config: &Config) -> ConfigReport {
    use crate::channels::accounts::{BuildError, check_build as build};
    let http = reqwest::Client::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    for a in &config.accounts {
        match build(a, &http) {
            Ok(_) => {}
            Err(e @ BuildError::NotBuiltIn(_)) => skipped.push(Skipped {
                id: a.id.clone(),
                channel: a.channel.to_string(),
                reason: e.to_string(),
            }),
            // `run` refuses to start over these.
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    let mut warnings = config.warnings.clone();
    warnings.sort_by_key(|w| (w.line, w.column));
    ConfigReport {
        file: path.to_path_buf(),
        ok: errors.is_empty(),
        errors,
        warnings: warnings.iter().map(ToString::to_string).collect(),
        accounts: config.accounts.len(),
        skipped,
        destinations: config.destinations.len(),
    }
}

fn rules_report(path: PathBuf, destinations: &[String]) -> RulesReport {
    let render = |d: &[Diagnostic]| d.iter().map(ToString::to_string).collect();
    match crate::rules::load_rules(&path, destinations) {
        Ok((rules, warnings)) => RulesReport {
            ok: true,
            errors: Vec::new(),
            warnings: render(&warnings),
            rules: rules.len(),
            file: path,
        },
        Err(diags) => {
            let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) =
                diags.into_iter().partition(Diagnostic::is_error);
            RulesReport {
                ok: false,
                errors: render(&errors),
                warnings: render(&warnings),
                rules: 0,
                file: path,
            }
        }
    }
}

/// Problems on stderr, one per line, then one summary line per file on stdout.
fn print_text(report: &Report) {
    let c = &report.config;
    for line in c.errors.iter().chain(&c.warnings) {
        eprintln!("{line}");
    }
    for s in &c.skipped {
        eprintln!(
            "{}: warning: account {:?} ({}) will be skipped by `switchyard run`: {}",
            c.file.display(),
            s.id,
            s.channel,
            s.reason
        );
    }
    if let Some(r) = &report.rules {
        for line in r.errors.iter().chain(&r.warnings) {
            eprintln!("{line}");
        }
    }
    let warned = c.warnings.len() + c.skipped.len();
    if c.ok {
        let runs = c.accounts - c.skipped.len();
        let accounts = if c.skipped.is_empty() {
            plural(c.accounts, "account", "accounts")
        } else {
            format!(
                "{}: {runs} will run, {} skipped",
                plural(c.accounts, "account", "accounts"),
                c.skipped.len()
            )
        };
        outln!(
            "{}: ok{} ({accounts}; {})",
            c.file.display(),
            warnings_suffix(warned),
            plural(c.destinations, "destination", "destinations")
        );
    } else {
        outln!(
            "{}: {}",
            c.file.display(),
            plural(c.errors.len(), "error", "errors")
        );
    }
    for c in report.online.iter().flatten() {
        match &c.error {
            None => outln!("{}: online check ok", c.account),
            Some(e) => outln!("{}: online check failed: {e}", c.account),
        }
    }
    match &report.rules {
        Some(r) if r.ok => outln!(
            "{}: ok{} ({})",
            r.file.display(),
            warnings_suffix(r.warnings.len()),
            plural(r.rules, "rule", "rules")
        ),
        Some(r) => outln!(
            "{}: {}",
            r.file.display(),
            plural(r.errors.len(), "error", "errors")
        ),
        None => {
            outln!("rules file not checked: the config is not readable enough to say where it is")
        }
    }
}

fn warnings_suffix(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {}", plural(n, "warning", "warnings"))
    }
}
