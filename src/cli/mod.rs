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
mod store;

pub use orders::{render_list, render_orders, render_show};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use print::outln;

/// Exit status for a failed check or a failed command.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for a command this build cannot run yet (and for usage errors).
pub const EXIT_UNAVAILABLE: u8 = 2;

/// `switchyard --version`: the version, the commit and the build date.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SWITCHYARD_COMMIT"),
    ", built ",
    env!("SWITCHYARD_BUILD_DATE"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version = VERSION,
    about = "Order hub: every channel's orders in one place, routed by rules, with stock and tracking pushed back",
    long_about = "Order hub: every channel's orders in one place, routed by rules, with stock and \
tracking pushed back.\n\nswitchyard pulls the orders of Shopify, Etsy, eBay and Amazon accounts into one \
canonical model, tags, routes and holds them by the rules in rules.toml, delivers them to the \
warehouses that ship them, and pushes stock levels and tracking numbers back to every channel. \
`switchyard run` is the daemon; the other commands work on its store, by themselves or through \
the running daemon's admin API, with the same output either way.\n\nDocumentation: docs/ in the \
repository (configuration, rules, canonical order, HTTP API, operations, channels).",
    after_help = "Start with `switchyard demo`, then `switchyard --help COMMAND` or `switchyard COMMAND --help`."
)]
pub struct Cli {
    /// The config file. Without it: $SWITCHYARD_CONFIG, else ./switchyard.toml or
    /// ./config/switchyard.toml if one is in the current folder (the command says
    /// which it used), else /etc/switchyard/switchyard.toml.
    #[arg(long, global = true, env = "SWITCHYARD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: poll and take webhooks, run the rules, deliver, push back, serve HTTP.
    ///
    /// Logs to stderr at info (RUST_LOG to change it). Stops on SIGTERM or SIGINT;
    /// SIGHUP reloads the rules and re-checks the config. Under systemd it says
    /// READY once the store is open and the listener bound.
    Run,
    /// Validate the config and the rules file; exit 1 with every error.
    ///
    /// Prints every problem of both files as FILE:LINE:COLUMN: message, and warns
    /// about accounts `run` would skip and secrets written in the file. Secrets
    /// given as NAME_env or NAME_file are read and checked as `run` would.
    Check {
        /// Print the result as one JSON document: { ok, config: {...}, rules: {...} }
        /// (with --online, also online: [{ account, ok, at, error }]).
        #[arg(long)]
        json: bool,
        /// Also make each account's cheap read-only call to its channel, to
        /// prove its credentials and base URL (through the running daemon
        /// when there is one, whose connectors hold the accounts' tokens).
        #[arg(long)]
        online: bool,
    },
    /// Run the whole loop on this machine against the built-in channel simulator.
    ///
    /// No credentials and no network: the simulator serves the recorded
    /// fixtures, a built-in warehouse receives the deliveries. Prints what happened,
    /// step by step.
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
    /// Feed recorded fixtures through the connectors and the rules into a throw-away store.
    ///
    /// Prints the orders, tags, routes and holds they produce; with --rules given
    /// twice, what the second rules file would decide differently. Exits 1 when a
    /// scenario does not replay (after printing what did).
    Replay {
        /// Scenario folders (fixtures/<channel>/<scenario>) or channel folders of them.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Replay with this rules file instead of the config's; given twice, compare the two.
        #[arg(long, num_args = 1, action = clap::ArgAction::Append, value_name = "FILE")]
        rules: Vec<PathBuf>,
        /// Print the orders (or the changes) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Explain, apply and test the rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// List, show, hold, release and redeliver canonical orders.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// Record a shipment and queue its tracking push to the order's channel.
    ///
    /// Without --line the shipment covers everything not yet shipped (with
    /// --destination, everything delivered there). The same tracking number
    /// again changes nothing.
    Ship {
        /// The order id, "<account>:<channel order id>".
        id: String,
        /// The carrier's code: ups, usps, fedex, dhl, canada_post, royal_mail, dpd, ...
        /// (any other name is sent as given).
        #[arg(long)]
        carrier: String,
        /// The tracking number.
        #[arg(long, value_name = "NUMBER")]
        tracking: String,
        /// Ship part of the order: SKU=QTY, repeatable.
        #[arg(long = "line", value_name = "SKU=QTY")]
        lines: Vec<String>,
        /// The destination that shipped, for an order split across
        /// destinations: only the lines delivered there are taken.
        #[arg(long, value_name = "ID")]
        destination: Option<String>,
        /// Print the receipt as JSON: { order_id, recorded, status, tracking_number, shipment,
        /// warnings, tracking_not_pushed }.
        #[arg(long)]
        json: bool,
    },
    /// Central stock: set, import and show levels.
    #[command(subcommand)]
    Stock(StockCommand),
    /// The outbound queue and its dead letters.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The store itself, with the daemon stopped.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// bash: `switchyard completions bash > /etc/bash_completion.d/switchyard`;
    /// zsh: into a folder of $fpath as _switchyard; fish: into
    /// ~/.config/fish/completions/switchyard.fish.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `switchyard man > /usr/local/share/man/man1/switchyard.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The fixtures the simulator serves (default: ./fixtures, else the source tree's).
    #[arg(long, value_name = "DIR")]
    pub fixtures: Option<PathBuf>,
    /// Where the demo keeps its store and config, to look at afterwards
    /// [default: switchyard-demo in the system's temporary folder]. An earlier
    /// demo's store there is replaced.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Which rules matched an order, which condition failed for the others, and the result.
    ///
    /// Give a stored order with --order ID, or an order in a file with --file
    /// (canonical order JSON, or what `orders show --json` prints).
    #[command(group(clap::ArgGroup::new("which").required(true).args(["order", "file"])))]
    Explain {
        /// A stored order's id, "<account>:<channel order id>".
        #[arg(long, value_name = "ID")]
        order: Option<String>,
        /// An order in a JSON file; it need not be stored nor belong to a configured account.
        #[arg(long, value_name = "ORDER.json")]
        file: Option<PathBuf>,
        /// Print { order, rules: [{ name, matched, failed }], result: {...} }.
        #[arg(long)]
        json: bool,
    },
    /// Re-run the current rules over the stored open orders and write what changes.
    ///
    /// Open orders are pending, ready and partially_shipped. An order that a changed
    /// rule now routes and does not hold is delivered.
    Apply {
        /// Only show what would change.
        #[arg(long)]
        dry_run: bool,
        /// Print the changes as JSON: [{ id, before, after, kept }] (kept: lines
        /// whose delivery stays where it went).
        #[arg(long)]
        json: bool,
    },
    /// Run rule test files against the config's rules; exit 1 if a case fails.
    ///
    /// Each case prints PASS or FAIL with the reasons, then "N passed, N failed".
    /// The file format is in docs/rules.md.
    Test {
        /// Test files, or folders of them (their *.toml files, not recursive).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Print only failing cases and the count.
        #[arg(long, short)]
        quiet: bool,
        /// Print { passed, failed, cases: [{ file, name, passed, failures }] }.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Canonical orders matching every filter given, newest first; HELD BY: person or rule:NAME.
    List(orders::ListArgs),
    /// One order with its lines, shipments, notes and full history.
    Show {
        /// The order id, "<account>:<channel order id>".
        id: String,
        /// Print the canonical order with notes and history as JSON.
        #[arg(long)]
        json: bool,
        /// Print instead the raw payload of the order's newest channel version,
        /// exactly as stored for audit (a webhook body as the channel sent it).
        /// It holds the buyer's data as the channel gave it.
        #[arg(long, conflicts_with = "json")]
        raw: bool,
    },
    /// Put an order on hold by hand: it is not delivered until released.
    ///
    /// An order already delivered cannot be recalled: the command says where and
    /// when it went, and the destination is sent a hold notice (unless a person
    /// held the order already: it was told then).
    Hold {
        /// The order id, "<account>:<channel order id>".
        id: String,
        /// Why, for whoever releases it.
        #[arg(long)]
        reason: String,
        /// Print the order as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deliver an order again, to where its lines go now (after the rules changed, or a
    /// destination lost it).
    ///
    /// Without --yes it only prints what it would send. The order is split by the
    /// destinations its owed lines go to now (its route and line routes as last decided:
    /// run `rules apply` first after changing the rules), one delivery each; every
    /// destination that took an earlier delivery of it is sent a withdraw notice naming
    /// that delivery. Refused, saying why, for an order on hold, without a route, not
    /// ready or partially shipped, fulfilled by the marketplace, or owing nothing.
    Redeliver {
        /// The order id, "<account>:<channel order id>".
        id: String,
        /// Queue the deliveries (without it: only show them).
        #[arg(long)]
        yes: bool,
        /// Print { order_id, queued, parts: [{ destination, delivery_id, lines }], withdrawn }.
        #[arg(long)]
        json: bool,
    },
    /// Set tags on an order by hand, or take hand-set tags off (--remove).
    ///
    /// A hand-set tag stays through every rules run and every new version of the order
    /// from its channel; `orders list --tag` finds it and a rule's `tag` condition
    /// matches it. The rules then run again for the order, as `rules apply` runs them,
    /// and the command says what they changed (route, hold); a shipped or cancelled order
    /// only has its tags changed. A tag from the channel or from a rule cannot be taken
    /// off by hand: the command says where it comes from.
    #[command(arg_required_else_help = true)]
    Tag {
        /// The order id, "<account>:<channel order id>".
        id: String,
        /// Tags to set (any case: tags compare ignoring case).
        #[arg(value_name = "TAG")]
        tags: Vec<String>,
        /// A hand-set tag to take off; repeatable.
        #[arg(long, value_name = "TAG")]
        remove: Vec<String>,
        /// Print the order as `orders show --json` does, with `tagging`: { added, removed,
        /// unchanged, rules, rules_ran }.
        #[arg(long)]
        json: bool,
    },
    /// Release an order's hold, set by hand or by a rule; its delivery is queued at once.
    ///
    /// Releasing a rule's hold overrides the rule: the same hold does not come back
    /// when the rules run again (a hold for another reason does).
    Release {
        /// The order id, "<account>:<channel order id>".
        id: String,
        /// Print the order as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StockCommand {
    /// Set the quantity on hand of a SKU; every channel that lists it is told.
    ///
    /// Channels are told max(0, on hand − reserved − buffer).
    Set {
        /// The SKU, exactly as the channels list it.
        sku: String,
        /// Units on hand (0 or more).
        #[arg(allow_negative_numbers = true, value_name = "QTY")]
        qty: i64,
        /// Print the receipt as JSON: { skus, queued, accounts }.
        #[arg(long)]
        json: bool,
    },
    /// Import levels from a CSV file with the header `sku,available`; all or nothing.
    Import {
        /// The CSV file.
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
        /// Print the receipt as JSON: { skus, queued, accounts }.
        #[arg(long)]
        json: bool,
    },
    /// One SKU: on hand, reserved (by which orders), available, and what each channel was told.
    Show {
        /// The SKU.
        sku: String,
        /// Print { sku, on_hand, reserved, available, reservations, channels } as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the store into a new folder, written afresh; the store itself is
    /// left as it was.
    ///
    /// The engine's file keeps room for values that were replaced since, so
    /// a store that has taken orders for a long time takes more disk than
    /// what it holds (a store grown by many webhooks to 1.2 million orders
    /// took 10 GB; its copy 4.9 GB). Stop the daemon, back up, copy, point
    /// daemon.state_dir at the copy, start (`store compact` does this in
    /// place). Prints the size of both. A copy that fails removes what it
    /// wrote (the folder, if it made it).
    Copy {
        /// The folder to make the copy in: new or empty.
        #[arg(long, value_name = "DIR")]
        to: std::path::PathBuf,
    },
    /// Write the store afresh in place, with the daemon stopped:
    /// daemon.state_dir stays as it is.
    ///
    /// The store is copied into a folder beside it (NAME.compact), the copy
    /// is opened and its records counted, then the store is renamed to
    /// NAME.old and the copy to the store's name, and NAME.old is removed.
    /// Needs free disk for the copy (about 1.5 times the bytes of the
    /// store's records and some megabytes, at most the store's size; checked before anything
    /// is written, and the copy stops before it would fill the disk; a
    /// copy that fails removes what it wrote). A crash at any step leaves a whole store:
    /// stopped between the two renames, the next start puts the copy in
    /// place. Prints the size before and after.
    Compact {
        /// Keep the store as it was in NAME.old (remove it yourself later).
        #[arg(long)]
        keep_old: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// What is waiting to be sent (or, with --dead, what failed for good), and what for,
    /// a page at a time in queue order (oldest first).
    List {
        /// Dead letters instead of pending items.
        #[arg(long)]
        dead: bool,
        /// At most N items per page (1 or more; default 100, at most 1000).
        #[arg(long, value_name = "N", value_parser = page_limit)]
        limit: Option<usize>,
        /// The next page: the cursor the previous page ended with.
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Print [{ id, account, kind, state, attempts, next_attempt_at, last_error, ... }].
        #[arg(long)]
        json: bool,
    },
    /// Send an item (a dead letter, or a pending one) again now; or every dead letter.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all_dead"])))]
    Retry {
        /// The item's id, from `outbox list`.
        id: Option<String>,
        /// Every dead letter.
        #[arg(long)]
        all_dead: bool,
        /// Print { id, retried } (with --all-dead, { retried }) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give up on an item, pending or dead.
    Drop {
        /// The item's id, from `outbox list`.
        id: String,
        /// Print { id, dropped } as JSON.
        #[arg(long)]
        json: bool,
    },
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

/// The async runtime a command runs on: the daemon, the demo and replay serve
/// HTTP while they work and want every core; a one-shot request wants one
/// thread.
pub(crate) fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, Failure> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot start the async runtime: {e}")))
}

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
        Command::Check { json, online } => check::run(&config()?, json, online),
        Command::Orders(cmd) => orders::run(&config()?, cmd),
        Command::Outbox(cmd) => outbox::run(&config()?, cmd),
        Command::Store(StoreCommand::Copy { to }) => store::copy(&config()?, &to),
        Command::Store(StoreCommand::Compact { keep_old }) => store::compact(&config()?, keep_old),
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
            destination,
            json,
        } => ship::run(&config()?, id, carrier, tracking, lines, destination, json),
        Command::Stock(cmd) => stock::run(&config()?, cmd),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // Written here, not by clap_complete, which panics when stdout
            // is closed early (`| head`) or full.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "switchyard", &mut script);
            write_stdout(&script, "completion script")
        }
        Command::Man => man(),
    }
}

/// The man page, from the same definitions as `--help`.
fn man() -> CliResult {
    let command = <Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot render the man page: {e}")))?;
    write_stdout(&page, "man page")
}

/// Writes a generated document to stdout; a closed or full stdout is an
/// error that names `what`, not a panic.
fn write_stdout(bytes: &[u8], what: &str) -> CliResult {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot write the {what}: {e}")))
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

impl Backend {
    /// The config's destination ids.
    pub(crate) fn destinations(&self) -> Vec<String> {
        match self {
            Backend::Local { config, .. } => {
                config.destinations.iter().map(|d| d.id.clone()).collect()
            }
            Backend::Remote(api) => api.destinations.clone(),
        }
    }
}

/// How often a command without an admin token tries the store again before
/// it says another process holds it (a tenth of a second apart).
const LOCK_GRACE_TRIES: usize = 20;

/// Whether a command may start a store where there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// The command reads (or changes) what is stored: with no store there,
    /// the config names the wrong folder, and an empty store made there
    /// would answer "no orders".
    Existing,
    /// The command stores something new (stock levels, a backfill, tokens),
    /// as an operator may do before the daemon's first start.
    OrCreate,
}

/// Loads the config and opens the store it names; when another process (the
/// daemon) holds the store, connects to the daemon's admin API instead.
pub(crate) fn open_backend(config_path: &std::path::Path, how: Open) -> Result<Backend, Failure> {
    let config = crate::config::load(config_path)
        .map_err(|errors| Failure::new(EXIT_FAILED, errors.to_string()))?;
    let open = || {
        let (dir, opts) = (&config.daemon.state_dir, config.daemon.store_options());
        match how {
            Open::Existing => crate::store::Store::open_existing(dir, opts),
            Open::OrCreate => crate::store::Store::open(dir, opts),
        }
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
        Err(e) => Err(no_store_failure(e, config_path)),
    }
}

/// A store error; where there is no store, what to check: the config may
/// name the wrong folder, or the daemon never started.
pub(crate) fn no_store_failure(
    e: crate::store::StoreError,
    config_path: &std::path::Path,
) -> Failure {
    match e {
        crate::store::StoreError::NoStore { .. } => Failure::new(
            EXIT_FAILED,
            format!(
                "{e}; check daemon.state_dir in {} (the daemon creates the store at its \
                 first start; nothing was created)",
                config_path.display()
            ),
        ),
        e => orders::store_failure(e),
    }
}

/// `--limit N` of the listings (`ops::page_limit`): clap's own range check
/// would print the whole range of `u64` for a 0.
pub(crate) fn page_limit(value: &str) -> Result<usize, String> {
    crate::ops::page_limit(value).ok_or_else(|| {
        format!(
            "expected a number of items per page from 1 to {MAX} (more reads as {MAX})",
            MAX = crate::store::MAX_PAGE
        )
    })
}
