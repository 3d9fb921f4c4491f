//! The `switchyard` binary: parses the command line and hands off to `cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = switchyard::cli::Cli::parse();
    switchyard::cli::main(args)
}
