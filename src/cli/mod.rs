//! The command line: argument definitions and dispatch. Commands
//! print one JSON document with `--json`; errors go to stderr with a non-zero
//! exit status and say what to fix. Commands whose parts are not built yet say
//! `not available yet: <what is missing>` and exit 2, never fake output.

mod check;
mod daemon;
mod demo;
mod orders;
mod outbox;
mod print;
mod remote;
mod replay;
mod rules;
mod ship;
mod stock;

pub use orders::{render_list, render_orders, render_show};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use print::outln;

/// Exit status for a failed check or a failed command.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for a command this build cannot run yet (and for usage errors).
pub const EXIT_UNAVAILABLE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Order hub: every channel's orders in one place, routed by rules, with stock and tracking pushed back"
)]
pub struct Cli {
    /// The config file. Without it: $SWITCHYARD_CONFIG, else ./switchyard.toml or
    /// ./config/switchyard.toml if one is in the current folder (the command says
    /// which it used), else /etc/switchyard/switchyard.toml.
    #[arg(long, global = true, env = "SWITCHYARD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: ingest, rules, deliver, push back; serve HTTP.
    Run,
    /// Validate the config and the rules file; exit 1 with every error.
    Check {
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Run the whole loop on this machine against the built-in channel simulator.
    Demo(DemoArgs),
    /// One-shot backfill of one account, by itself or through the running daemon.
    ///
    /// Without --since it goes on from where the account's polls stand (on the
    /// first run, from the account's start_date, by default 30 days back).
    Sync {
        /// The [[account]] id in the config.
        account: String,
        /// Start here instead: a date (2026-11-01, midnight UTC) or an RFC 3339
        /// time (2026-11-01T08:00:00Z).
        #[arg(long, value_name = "DATE|TIME")]
        since: Option<String>,
        /// One JSON line per page ({"progress": ...}), then {"done": ...} or {"error": ...}.
        #[arg(long)]
        json: bool,
    },
    /// Feed recorded fixture files through the connectors and rules into a throw-away store.
    Replay {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Try another rules file; given twice, show what the second changes.
        #[arg(long, num_args = 1, action = clap::ArgAction::Append)]
        rules: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Explain, apply and test the rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Canonical orders.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// Record a shipment and queue the tracking push.
    Ship {
        id: String,
        #[arg(long)]
        carrier: String,
        #[arg(long)]
        tracking: String,
        /// Ship part of the order: SKU=QTY, repeatable.
        #[arg(long = "line")]
        lines: Vec<String>,
    },
    /// Central stock levels.
    #[command(subcommand)]
    Stock(StockCommand),
    /// The outbound queue and dead letters.
    #[command(subcommand)]
    Outbox(OutboxCommand),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The fixtures the simulator serves (default: ./fixtures, else the source tree's).
    #[arg(long)]
    pub fixtures: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Which rules matched an order, which condition failed for the others, and the result.
    Explain {
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        order: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Re-run the current rules over stored open orders and show what changes.
    Apply {
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run rule test case files; exit 1 if any fails.
    Test {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Canonical orders, oldest first.
    List(orders::ListArgs),
    /// One order with its full history.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Put an order on hold by hand.
    Hold {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Release a hand-set hold.
    Release { id: String },
}

#[derive(Debug, Subcommand)]
pub enum StockCommand {
    /// Set the central available quantity of a SKU.
    Set { sku: String, qty: i64 },
    /// Import levels from a CSV file with the header `sku,available`.
    Import { file: PathBuf },
    /// One SKU's level and what each channel was told.
    Show {
        sku: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Pending items, or dead letters with --dead.
    List {
        #[arg(long)]
        dead: bool,
        #[arg(long)]
        json: bool,
    },
    /// Send a dead letter (or all of them) again.
    Retry {
        #[arg(conflicts_with = "all_dead", required_unless_present = "all_dead")]
        id: Option<String>,
        #[arg(long)]
        all_dead: bool,
    },
    /// Remove an item from the queue or the dead letters.
    Drop { id: String },
}

/// A command's failure: the message for stderr and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(what: &str) -> Self {
        Failure::new(EXIT_UNAVAILABLE, format!("not available yet: {what}"))
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::new(EXIT_FAILED, format!("{e:#}"))
    }
}

pub type CliResult = Result<(), Failure>;

pub fn main(cli: Cli) -> ExitCode {
    // Commands print their results on stdout; logs are for what went wrong.
    // The demo prints its own account of what happened.
    let level = if matches!(cli.command, Command::Demo(_)) {
        "error"
    } else {
        "warn"
    };
    // `run` sets up its own logging once its config is read (log_format,
    // level info): a subscriber installed here would win over it.
    if !matches!(cli.command, Command::Run) {
        crate::daemon::logging::init(false, level);
    }
    let result = dispatch(cli);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message.trim_end());
            }
            ExitCode::from(f.code)
        }
    }
}

fn dispatch(cli: Cli) -> CliResult {
    let explicit = cli.config;
    let config = || {
        let cwd = std::env::current_dir().unwrap_or_default();
        config_path(crate::config::choose(explicit.clone(), &cwd))
    };
    match cli.command {
        Command::Demo(args) => demo::run_demo(explicit.as_deref(), args),
        Command::Check { json } => check::run(&config()?, json),
        Command::Orders(cmd) => orders::run(&config()?, cmd),
        Command::Outbox(cmd) => outbox::run(&config()?, cmd),
        Command::Run => daemon::run(&config()?),
        Command::Sync {
            account,
            since,
            json,
        } => daemon::sync(&config()?, &account, since.as_deref(), json),
        Command::Replay { paths, rules, json } => replay::run(&config()?, &paths, &rules, json),
        Command::Rules(cmd) => rules::run(&config()?, cmd),
        Command::Ship {
            id,
            carrier,
            tracking,
            lines,
        } => ship::run(&config()?, id, carrier, tracking, lines),
        Command::Stock(cmd) => stock::run(&config()?, cmd),
    }
}

/// The config file a command reads. A file found by looking is named on
/// stderr, so that nobody is surprised by which one was read; a missing
/// default says how to name one.
fn config_path(choice: crate::config::ConfigChoice) -> Result<PathBuf, Failure> {
    use crate::config::{ConfigChoice, LOOKED_FOR};
    match choice {
        ConfigChoice::Given(path) => Ok(path),
        ConfigChoice::Found(path) => {
            eprintln!(
                "using config {} (found in the current folder; --config PATH for another)",
                path.display()
            );
            Ok(path)
        }
        ConfigChoice::Default(path) if path.exists() => Ok(path),
        ConfigChoice::Default(path) => Err(Failure::new(
            EXIT_FAILED,
            format!(
                "no config file: {} does not exist, and there is no {} in the current folder; \
                 give one with --config PATH or SWITCHYARD_CONFIG=PATH \
                 (config/switchyard.toml of the repository is an example)",
                path.display(),
                LOOKED_FOR.join(" or ")
            ),
        )),
    }
}

/// Prints a value as one JSON document on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot render JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// Where a state command reads and writes: the store itself, or, while the
/// daemon holds the store, the daemon's admin API.
pub(crate) enum Backend {
    Local {
        config: crate::config::Config,
        store: crate::store::Store,
    },
    Remote(remote::Remote),
}

/// How often a command without an admin token tries the store again before
/// it says another process holds it (a tenth of a second apart).
const LOCK_GRACE_TRIES: usize = 20;

/// Loads the config and opens the store it names; when another process (the
/// daemon) holds the store, connects to the daemon's admin API instead.
pub(crate) fn open_backend(config_path: &std::path::Path) -> Result<Backend, Failure> {
    let config = crate::config::load(config_path)
        .map_err(|errors| Failure::new(EXIT_FAILED, errors.to_string()))?;
    let open = || {
        crate::store::Store::open(
            &config.daemon.state_dir,
            crate::store::StoreOptions::default(),
        )
    };
    let mut result = open();
    // With no daemon to ask (no admin token, or nothing listening), a lock
    // that goes away within moments was a process just finishing (another
    // command, a daemon shutting down, a store engine thread letting go).
    let locked = matches!(result, Err(crate::store::StoreError::Locked { .. }));
    if locked && (config.daemon.admin_token.is_none() || !remote::listening(config.daemon.listen)) {
        for _ in 0..LOCK_GRACE_TRIES {
            if !matches!(result, Err(crate::store::StoreError::Locked { .. })) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            result = open();
        }
    }
    match result {
        Ok(store) => Ok(Backend::Local { config, store }),
        Err(crate::store::StoreError::Locked { .. }) => {
            remote::Remote::connect(&config, config_path).map(Backend::Remote)
        }
        Err(e) => Err(orders::store_failure(e)),
    }
}
