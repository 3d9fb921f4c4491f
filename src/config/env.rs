//! The environment as config loading sees it: an injectable map of variables
//! (so tests never touch the process environment), `$CREDENTIALS_DIRECTORY`,
//! and the `SWITCHYARD__SECTION__KEY` override layer.
//!
//! The override layer is collected by the `config` crate's `Environment`
//! source (prefix `SWITCHYARD`, separator `__`, keys lowercased,
//! `try_parsing` off so `"00123"` stays a string until the key's own type
//! decides). The overlay onto the file happens in `read::Section`, not in
//! `config::Config`: a merged `config::Value` has no line or column, and every
//! file error must carry them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use config::Source;

use crate::diag::did_you_mean;

const PREFIX: &str = "SWITCHYARD";
const SEPARATOR: &str = "__";

/// Sections whose keys the environment may override. `[[account]]` and
/// `[[destination]]` are arrays: an index in a variable name would silently
/// retarget when the file's order changes, so they are file-only (their
/// secrets still come from the environment through `NAME_env`).
pub(crate) const OVERRIDABLE_SECTIONS: [&str; 2] = ["daemon", "inventory"];

/// Environment variables for [`load_with`](super::load_with).
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// No variables at all.
    pub fn new() -> Self {
        Env::default()
    }

    /// The process environment. Variables whose name or value is not UTF-8
    /// are left out (a secret must be text).
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(name, value): (OsString, OsString)| {
                Some((name.into_string().ok()?, value.into_string().ok()?))
            })
            .collect();
        Env { vars }
    }

    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Sets `$CREDENTIALS_DIRECTORY`, where relative `NAME_file` paths are
    /// looked up (systemd's `LoadCredential=` puts files there).
    pub fn with_credentials_directory(self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref().to_string_lossy().into_owned();
        self.with_var("CREDENTIALS_DIRECTORY", dir)
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub(crate) fn credentials_directory(&self) -> Option<&Path> {
        self.var("CREDENTIALS_DIRECTORY")
            .filter(|dir| !dir.is_empty())
            .map(Path::new)
    }
}

/// Names only: values may be secrets.
impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One `SWITCHYARD__SECTION__KEY=value` aimed at an overridable section.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    pub section: String,
    pub key: String,
    /// The variable exactly as set, for error messages.
    pub var: String,
    pub value: String,
}

/// A `SWITCHYARD__...` variable that cannot be applied.
#[derive(Debug)]
pub(crate) struct EnvProblem {
    pub var: String,
    pub message: String,
}

/// The override layer: overrides for `[daemon]` and `[inventory]`, and a
/// problem for every other `SWITCHYARD__` variable. Whether an override's key
/// exists is left to the section reader, which knows the keys.
pub(crate) fn overrides(env: &Env) -> (Vec<Override>, Vec<EnvProblem>) {
    let mut problems = Vec::new();

    // `config` lowercases names; remember the spelling the user typed so that
    // errors name the variable they can grep for.
    let prefix = format!("{PREFIX}{SEPARATOR}").to_lowercase();
    let mut names: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for name in env.vars.keys() {
        if let Some(rest) = name.to_lowercase().strip_prefix(&prefix) {
            let path = rest.replace(SEPARATOR, ".");
            names.entry(path).or_default().push(name);
        }
    }

    let source = config::Environment::with_prefix(PREFIX)
        .prefix_separator(SEPARATOR)
        .separator(SEPARATOR)
        .try_parsing(false)
        .source(Some(env.vars.clone().into_iter().collect()));
    let collected = match source.collect() {
        Ok(collected) => collected,
        Err(error) => {
            problems.push(EnvProblem {
                var: format!("{PREFIX}{SEPARATOR}*"),
                message: error.to_string(),
            });
            return (Vec::new(), problems);
        }
    };
    let collected: BTreeMap<String, config::Value> = collected.into_iter().collect();

    let mut result = Vec::new();
    for (path, value) in collected {
        let spellings = names.get(&path).map(Vec::as_slice).unwrap_or_default();
        let var = spellings
            .first()
            .map_or_else(|| path.clone(), |s| s.to_string());
        let problem = |message: String| EnvProblem {
            var: var.clone(),
            message,
        };
        if spellings.len() > 1 {
            problems.push(problem(format!(
                "set more than once, as {}; keep one",
                spellings.join(" and ")
            )));
            continue;
        }
        let value = match value.into_string() {
            Ok(value) => value,
            Err(error) => {
                problems.push(problem(error.to_string()));
                continue;
            }
        };
        let (section, key) = path.split_once('.').unwrap_or((path.as_str(), ""));
        if OVERRIDABLE_SECTIONS.contains(&section) {
            if key.is_empty() {
                problems.push(problem(format!(
                    "names no key: use {PREFIX}{SEPARATOR}{}{SEPARATOR}<KEY>",
                    section.to_uppercase()
                )));
            } else {
                result.push(Override {
                    section: section.to_string(),
                    key: key.to_string(),
                    var,
                    value,
                });
            }
        } else if section == "account" || section == "destination" {
            problems.push(problem(format!(
                "[[{section}]] entries cannot be set from the environment, only [daemon] and \
                 [inventory] keys; set the entry in the file and give its secrets as NAME_env = \"VAR\""
            )));
        } else {
            let hint = match did_you_mean(section, OVERRIDABLE_SECTIONS) {
                Some(near) => format!(
                    " (did you mean {PREFIX}{SEPARATOR}{}?)",
                    near.to_uppercase()
                ),
                None => String::new(),
            };
            problems.push(problem(format!(
                "unknown config section {section:?}{hint}; the environment can set [daemon] and \
                 [inventory] keys, as {PREFIX}{SEPARATOR}SECTION{SEPARATOR}KEY"
            )));
        }
    }
    (result, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_overrides_and_rejects_other_prefixed_variables() {
        let env = Env::new()
            .with_var("SWITCHYARD__DAEMON__LISTEN", "127.0.0.1:9000")
            .with_var("SWITCHYARD__INVENTORY__BUFFER", "00123")
            .with_var("SWITCHYARD__DEAMON__LISTEN", "x")
            .with_var("SWITCHYARD__ACCOUNT__ID", "x")
            .with_var("SWITCHYARD_CONFIG", "/etc/switchyard/switchyard.toml")
            .with_var("PATH", "/usr/bin");
        let (overrides, problems) = overrides(&env);
        let got: Vec<_> = overrides
            .iter()
            .map(|o| {
                (
                    o.section.as_str(),
                    o.key.as_str(),
                    o.var.as_str(),
                    o.value.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "daemon",
                    "listen",
                    "SWITCHYARD__DAEMON__LISTEN",
                    "127.0.0.1:9000"
                ),
                (
                    "inventory",
                    "buffer",
                    "SWITCHYARD__INVENTORY__BUFFER",
                    "00123"
                ),
            ]
        );
        let vars: Vec<_> = problems.iter().map(|p| p.var.as_str()).collect();
        assert_eq!(
            vars,
            ["SWITCHYARD__ACCOUNT__ID", "SWITCHYARD__DEAMON__LISTEN"]
        );
        assert!(
            problems[1]
                .message
                .contains("did you mean SWITCHYARD__DAEMON?")
        );
    }

    #[test]
    fn debug_shows_names_not_values() {
        let env = Env::new().with_var("TOKEN", "hunter2");
        assert!(!format!("{env:?}").contains("hunter2"));
    }
}
