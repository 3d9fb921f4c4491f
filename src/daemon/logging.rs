//! Log output: tracing to stderr as text (colour only on a terminal, and not
//! with `NO_COLOR`) or as JSON lines, filtered by `RUST_LOG` (default: the
//! level the command asks for). Spans carry `channel`, `account` and `order`
//! where work happens (poll loops, webhooks, outbox sends); in JSON they are
//! the `span` and `spans` fields. The storage engine's own logs stay at
//! `warn` unless `RUST_LOG` names it (`RUST_LOG=debug,sled=debug`): at debug
//! it prints dozens of lines of page-cache internals for one command.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init(json: bool, default_level: &str) {
    let asked = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_new(&asked).unwrap_or_else(|_| EnvFilter::new(default_level));
    if asked.trim().is_empty() {
        filter = EnvFilter::new(default_level);
    }
    if !asked.contains("sled")
        && let Ok(quiet) = "sled=warn".parse()
    {
        filter = filter.add_directive(quiet);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder
            .json()
            .with_current_span(true)
            .with_ansi(false)
            .try_init()
    } else {
        builder.with_ansi(colour()).try_init()
    };
    // A second init (tests, demo inside a test) keeps the first subscriber.
    let _ = result;
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
/// Under systemd stderr is the journal, not a terminal: plain text.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
