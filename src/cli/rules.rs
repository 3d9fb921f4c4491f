//! `switchyard rules ...`: explain why an order went where it went, apply the
//! current rules to stored open orders, and run rule test files.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use switchyard_contract::Order;

use super::orders::{op_failure, store_failure};
use super::print::{out, outln, plural};
use super::{Backend, CliResult, EXIT_FAILED, Failure, RulesCommand, print_json};
use crate::config::Config;
use crate::effects::Outbound;
use crate::ops::{self, RuleChange};
use crate::rules::{
    Evaluation, PersonHold, RuleSet, collect_test_files, explain_json, explain_text, format_case,
    load_rules, run_test_file,
};

/// Loads the rules the config names, printing warnings to stderr.
pub(crate) fn load_configured_rules(
    config: &Config,
    override_path: Option<&Path>,
) -> Result<RuleSet, Failure> {
    let destinations: Vec<String> = config.destinations.iter().map(|d| d.id.clone()).collect();
    let path = override_path.unwrap_or(&config.daemon.rules);
    match load_rules(path, &destinations) {
        Ok((rules, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            Ok(rules)
        }
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Err(Failure::new(EXIT_FAILED, text.join("\n")))
        }
    }
}

fn load_config(config_path: &Path) -> Result<Config, Failure> {
    crate::config::load(config_path).map_err(|errors| Failure::new(EXIT_FAILED, errors.to_string()))
}

/// What the admin API answers to `rules explain` with `detail=true`: the
/// data both renderings are made from.
#[derive(Deserialize)]
struct ExplainDetail {
    order: Order,
    evaluation: Evaluation,
    #[serde(default)]
    person: PersonHold,
}

/// What the admin API answers to `rules apply` with `detail=true`.
#[derive(Deserialize)]
struct ApplyDetail {
    changes: Vec<RuleChange>,
    rules: usize,
}

pub fn run(config_path: &Path, cmd: RulesCommand) -> CliResult {
    match cmd {
        RulesCommand::Explain { order, file, json } => {
            let (order, eval, person) = match (order, file) {
                (Some(id), _) => match super::open_backend(config_path, super::Open::Existing)? {
                    Backend::Local { config, store } => {
                        let rules = load_configured_rules(&config, None)?;
                        ops::explain_stored(&store, &rules, &id, Utc::now()).map_err(op_failure)?
                    }
                    Backend::Remote(api) => {
                        let d: ExplainDetail = api.post(
                            &["rules", "explain"],
                            &[("detail", "true".to_owned())],
                            Some(json!({ "order_id": id })),
                        )?;
                        (d.order, d.evaluation, d.person)
                    }
                },
                (None, Some(path)) => {
                    let (order, person) = read_order_file(&path)?;
                    let rules = load_configured_rules(&load_config(config_path)?, None)?;
                    let eval = ops::explain_given(&rules, &order, Utc::now());
                    (order, eval, person)
                }
                (None, None) => {
                    return Err(Failure::new(
                        EXIT_FAILED,
                        "give --order ID or --file ORDER.json",
                    ));
                }
            };
            if json {
                print_json(&explain_json(&order, &eval, &person))
            } else {
                out!("{}", explain_text(&order, &eval, &person));
                Ok(())
            }
        }
        RulesCommand::Test { paths, quiet, json } => {
            let config = load_config(config_path)?;
            let rules = load_configured_rules(&config, None)?;
            run_tests(&rules, &paths, quiet, json)
        }
        RulesCommand::Apply { dry_run, json } => apply(config_path, dry_run, json),
    }
}

/// A canonical order, or what `orders show --json` prints (the order with
/// its `notes`, `history`, `holds` and `delivered`; the holds a person set or
/// released count, as they do for a stored order), or an element of `orders
/// list --json` (the order with `hold_by`), or what `orders tag --json` prints.
fn read_order_file(path: &Path) -> Result<(Order, PersonHold), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("{}: cannot read: {e}", path.display())))?;
    let located = |e: serde_json::Error, what: &str| {
        Failure::new(
            EXIT_FAILED,
            format!(
                "{}:{}:{}: {what}: {e}",
                path.display(),
                e.line(),
                e.column()
            ),
        )
    };
    let mut doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| located(e, "not JSON"))?;
    // What `orders tag --json` prints: the `orders show --json` document
    // with what the tagging did.
    if let Some(o) = doc.as_object_mut() {
        o.remove("tagging");
    }
    let shown = ["notes", "history", "holds", "delivered", "hold_by"]
        .iter()
        .any(|k| doc.get(k).is_some());
    if !shown {
        // Parsed again from the text, so that an error has its line.
        let order = serde_json::from_str(&text).map_err(|e| located(e, "not a canonical order"))?;
        return Ok((order, PersonHold::default()));
    }
    let detail = ops::OrderDetail::from_json(doc).map_err(|e| {
        Failure::new(
            EXIT_FAILED,
            format!(
                "{}: not an order as `orders show --json` prints it: {e}",
                path.display()
            ),
        )
    })?;
    let person = PersonHold {
        manual: detail.holds.manual,
        released: detail.holds.released,
    };
    Ok((detail.order, person))
}

/// One case's outcome in `rules test --json`.
#[derive(serde::Serialize)]
struct CaseJson {
    file: PathBuf,
    name: String,
    passed: bool,
    failures: Vec<String>,
}

/// Runs every case of every file, one line each (failures only with
/// `quiet`), then the count; exit 1 if any failed.
fn run_tests(rules: &RuleSet, paths: &[PathBuf], quiet: bool, json: bool) -> CliResult {
    let files = collect_test_files(paths).map_err(|e| Failure::new(EXIT_FAILED, e))?;
    let mut cases = Vec::new();
    for file in &files {
        match run_test_file(rules, file) {
            Ok(results) => {
                for case in results {
                    let shown = !json && (!quiet || !case.passed);
                    if shown {
                        outln!("{}", format_case(file, &case));
                    }
                    cases.push(CaseJson {
                        file: file.clone(),
                        name: case.name,
                        passed: case.passed,
                        failures: case.failures,
                    });
                }
            }
            Err(e) => {
                // The file as a whole did not load: one failure for it.
                if !json {
                    outln!("FAIL {e}");
                }
                cases.push(CaseJson {
                    file: file.clone(),
                    name: String::new(),
                    passed: false,
                    failures: vec![e],
                });
            }
        }
    }
    let passed = cases.iter().filter(|c| c.passed).count();
    let failed = cases.len() - passed;
    if json {
        print_json(&json!({ "passed": passed, "failed": failed, "cases": cases }))?;
    } else {
        outln!("{passed} passed, {failed} failed");
    }
    if failed > 0 {
        Err(Failure::new(EXIT_FAILED, ""))
    } else {
        Ok(())
    }
}

fn apply(config_path: &Path, dry_run: bool, json: bool) -> CliResult {
    let (changes, rules) = match super::open_backend(config_path, super::Open::Existing)? {
        Backend::Local { config, store } => {
            let rules = load_configured_rules(&config, None)?;
            let written =
                ops::apply_rules(&store, &Outbound::default(), &rules, dry_run, Utc::now())
                    .map_err(op_failure)?;
            store.flush_blocking().map_err(store_failure)?;
            (written.value, rules.len())
        }
        Backend::Remote(api) => {
            let mut query = vec![("detail", "true".to_owned())];
            if dry_run {
                query.push(("dry_run", "true".to_owned()));
            }
            let d: ApplyDetail = api.post(&["rules", "apply"], &query, None)?;
            (d.changes, d.rules)
        }
    };
    if json {
        return print_json(&changes);
    }
    for c in &changes {
        outln!("{}: {}", c.id, c.describe());
    }
    let verb = if dry_run { "would change" } else { "changed" };
    outln!(
        "{} {verb} ({})",
        plural(changes.len(), "order", "orders"),
        plural(rules, "rule", "rules")
    );
    // A delivery that went out (or is queued) stays where it went; a
    // person decides whether the order goes to its new route.
    let kept: Vec<&str> = changes
        .iter()
        .filter(|c| !c.kept.is_empty())
        .map(|c| c.id.as_str())
        .collect();
    if !kept.is_empty() {
        let them = if kept.len() == 1 { "it" } else { "them" };
        outln!(
            "{} {} lines with a destination the rules no longer send them to (a delivery is \
             never sent again by itself); to deliver {them} where the rules send {them} now{}:",
            plural(kept.len(), "order", "orders"),
            match (dry_run, kept.len()) {
                (true, _) => "would keep",
                (false, 1) => "keeps",
                (false, _) => "keep",
            },
            if dry_run { ", once applied" } else { "" },
        );
        for id in kept {
            outln!("  switchyard orders redeliver {id} --yes");
        }
    }
    Ok(())
}
