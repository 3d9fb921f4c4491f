//! The rules file: parse, validate with locations, evaluate, explain.
//!
//! The language is documented for users in `docs/rules.md`. Loading compiles a `rules.toml` into a
//! [`RuleSet`] (every error at once, each `FILE:LINE:COLUMN: message`);
//! [`evaluate`] is a pure function of the rules, one order with its tags by
//! origin, and the time; [`explain_json`] / [`explain_text`] render an
//! evaluation for `switchyard rules explain`; [`run_test_file`] runs the
//! rule test files of `switchyard rules test`.
//!
//! Decisions worth knowing when reading the code (all in `docs/rules.md`):
//! - `channel`, `status` and `priority` values must be known names (any
//!   case); `currency` must be three letters and `country` two (ISO codes,
//!   any case); all of them, and `region` and `tag`, compare ignoring case.
//!   `account` compares exactly (account ids are config identifiers).
//! - `postal_code`, `email`, `shipping_method`, `sku` and `all_skus` take
//!   globs (`*` any run, `?` one character, whole value, ignoring case; no
//!   classes, braces or escapes); a missing value never matches.
//! - `all_skus` needs at least one line: an order without lines does not
//!   match it.
//! - `total` amounts are decimal strings or integers; floats are rejected,
//!   since they are not exact.
//! - A rule needs a non-empty `when`, and a non-empty `then` unless it has
//!   `stop = true` (a rule that only stops is useful, e.g. to exempt
//!   cancelled orders).
//! - `route_lines` decides lines, not the order: each line goes where the
//!   first matching rule whose `route_lines` takes its SKU sends it, and
//!   every other line follows the order's `route`. The order's `route` is
//!   decided as if `route_lines` did not exist.

mod ast;
mod diag;
mod eval;
mod explain;
mod glob;
mod lint;
mod parse;
mod testfile;

use std::path::Path;

pub use ast::{Actions, CONDITION_KEYS, LineRouteAction, Rule, RuleSet};
pub use diag::{Diagnostic, RuleErrors, Severity};
pub use eval::{Evaluation, LineRoute, RuleInput, RuleTrace, decide, evaluate};
pub use explain::{PersonHold, explain_json, explain_text};
pub(crate) use glob::eq_ci;
pub use parse::parse_rules;
pub use testfile::{CaseResult, collect_test_files, format_case, run_test_file};

/// What is wrong with a tag a rule's `tag`/`untag` sets or a person sets
/// by hand (`orders tag`), or None when it is a tag. Both go through here so
/// that a hand-set tag is one a rule could set and match.
pub fn tag_problem(tag: &str) -> Option<&'static str> {
    tag.trim().is_empty().then_some("empty tag")
}

/// Reads and parses a rules file; see [`parse_rules`]. A file that cannot be
/// read is one error without a position.
pub fn load_rules(
    path: &Path,
    destinations: &[String],
) -> Result<(RuleSet, Vec<Diagnostic>), Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            severity: Severity::Error,
            message: format!(
                "cannot read the rules file: {}; daemon.rules in the config names it",
                crate::io_text::reason(&e)
            ),
        }]
    })?;
    parse_rules(path, &text, destinations)
}
