//! `switchyard check`: the config and the rules file, every error at once.

use std::path::Path;

use super::print::outln;
use super::{CliResult, EXIT_FAILED, Failure};

pub fn run(config_path: &Path) -> CliResult {
    let config = crate::config::load(config_path)
        .map_err(|errors| Failure::new(EXIT_FAILED, errors.to_string()))?;
    let destinations: Vec<String> = config.destinations.iter().map(|d| d.id.clone()).collect();
    let rules_path = &config.daemon.rules;
    match crate::rules::load_rules(rules_path, &destinations) {
        Ok((rules, warnings)) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            outln!(
                "{}: ok ({} accounts, {} destinations)",
                config_path.display(),
                config.accounts.len(),
                config.destinations.len()
            );
            outln!("{}: ok ({} rules)", rules_path.display(), rules.len());
            Ok(())
        }
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Err(Failure::new(EXIT_FAILED, text.join("\n")))
        }
    }
}
