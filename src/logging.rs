//! Log output: tracing to stderr as text (colour only on a terminal) or as
//! JSON lines, filtered by `RUST_LOG` (default: the level the command asks for).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init(json: bool, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // A second init (tests, demo inside a test) keeps the first subscriber.
    let _ = result;
}
