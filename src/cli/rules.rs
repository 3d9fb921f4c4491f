//! `switchyard rules ...`: explain why an order went where it went, apply the
//! current rules to stored open orders, and run rule test files.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;
use switchyard_contract::{Order, Priority};

use super::orders::store_failure;
use super::{CliResult, EXIT_FAILED, Failure, RulesCommand, print_json};
use crate::config::Config;
use crate::ingest::apply_rules;
use crate::rules::{
    RuleInput, RuleSet, collect_test_files, evaluate, explain_json, explain_text, format_case,
    load_rules, run_test_file,
};
use crate::store::{OrderFilter, OrderWrite, StoredOrder, WriteBatch};

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

pub fn run(config_path: &Path, cmd: RulesCommand) -> CliResult {
    match cmd {
        RulesCommand::Explain { order, file, json } => {
            let (order, channel_tags, manual_tags, config) = match (order, file) {
                (Some(id), _) => {
                    let (config, store) = super::open_store(config_path)?;
                    let stored = store
                        .get_order(&id)
                        .map_err(store_failure)?
                        .ok_or_else(|| {
                            Failure::new(
                                EXIT_FAILED,
                                format!("no order {id:?} (see `switchyard orders list`)"),
                            )
                        })?;
                    (
                        stored.order,
                        stored.channel_tags,
                        stored.manual_tags,
                        config,
                    )
                }
                (None, Some(path)) => {
                    let order = read_order_file(&path)?;
                    let tags = order.tags.clone();
                    (order, tags, Vec::new(), load_config(config_path)?)
                }
                (None, None) => {
                    return Err(Failure::new(
                        EXIT_FAILED,
                        "give --order ID or --file ORDER.json",
                    ));
                }
            };
            let rules = load_configured_rules(&config, None)?;
            let eval = evaluate(
                &rules,
                &RuleInput {
                    order: &order,
                    channel_tags: &channel_tags,
                    manual_tags: &manual_tags,
                },
                Utc::now(),
            );
            if json {
                print_json(&explain_json(&order, &eval))
            } else {
                out!("{}", explain_text(&order, &eval));
                Ok(())
            }
        }
        RulesCommand::Test { paths } => {
            let config = load_config(config_path)?;
            let rules = load_configured_rules(&config, None)?;
            run_tests(&rules, &paths)
        }
        RulesCommand::Apply { dry_run, json } => apply(config_path, dry_run, json),
    }
}

fn read_order_file(path: &Path) -> Result<Order, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            EXIT_FAILED,
            format!(
                "{}:{}:{}: not a canonical order: {e}",
                path.display(),
                e.line(),
                e.column()
            ),
        )
    })
}

/// Runs every case of every file, one line each; exit 1 if any failed.
pub fn run_tests(rules: &RuleSet, paths: &[PathBuf]) -> CliResult {
    let files = collect_test_files(paths).map_err(|e| Failure::new(EXIT_FAILED, e))?;
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        match run_test_file(rules, file) {
            Ok(cases) => {
                for case in &cases {
                    outln!("{}", format_case(file, case));
                    if case.passed {
                        passed += 1;
                    } else {
                        failed += 1;
                    }
                }
            }
            Err(e) => {
                outln!("FAIL {e}");
                failed += 1;
            }
        }
    }
    outln!("{passed} passed, {failed} failed");
    if failed > 0 {
        Err(Failure::new(EXIT_FAILED, ""))
    } else {
        Ok(())
    }
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Decisions {
    tags: Vec<String>,
    route: Option<String>,
    hold: Option<String>,
    priority: Priority,
}

impl Decisions {
    fn of(o: &Order) -> Self {
        Decisions {
            tags: o.tags.clone(),
            route: o.route.clone(),
            hold: o.hold.clone(),
            priority: o.priority,
        }
    }
}

#[derive(Debug, Serialize)]
struct Change {
    id: String,
    before: Decisions,
    after: Decisions,
}

fn describe(c: &Change) -> String {
    let mut parts = Vec::new();
    let added: Vec<&String> = c
        .after
        .tags
        .iter()
        .filter(|t| !c.before.tags.contains(t))
        .collect();
    let removed: Vec<&String> = c
        .before
        .tags
        .iter()
        .filter(|t| !c.after.tags.contains(t))
        .collect();
    for t in added {
        parts.push(format!("+tag {t}"));
    }
    for t in removed {
        parts.push(format!("-tag {t}"));
    }
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    if c.before.route != c.after.route {
        parts.push(format!(
            "route {} -> {}",
            show(&c.before.route),
            show(&c.after.route)
        ));
    }
    if c.before.hold != c.after.hold {
        parts.push(format!(
            "hold {} -> {}",
            show(&c.before.hold),
            show(&c.after.hold)
        ));
    }
    if c.before.priority != c.after.priority {
        parts.push(
            format!("priority {:?} -> {:?}", c.before.priority, c.after.priority).to_lowercase(),
        );
    }
    parts.join("; ")
}

fn apply(config_path: &Path, dry_run: bool, json: bool) -> CliResult {
    let (config, store) = super::open_store(config_path)?;
    let rules = load_configured_rules(&config, None)?;
    let now = Utc::now();
    let orders = store
        .list_orders(&OrderFilter::default())
        .map_err(store_failure)?;
    let mut changes = Vec::new();
    let mut writes: Vec<(StoredOrder, StoredOrder)> = Vec::new();
    for stored in orders.into_iter().filter(|s| s.order.status.is_open()) {
        let next = apply_rules(stored.clone(), &rules, now);
        let (before, after) = (Decisions::of(&stored.order), Decisions::of(&next.order));
        if before != after {
            changes.push(Change {
                id: stored.order.id.clone(),
                before,
                after,
            });
            writes.push((stored, next));
        }
    }
    if !dry_run && !writes.is_empty() {
        let mut batch = WriteBatch::new(now);
        for ((stored, next), change) in writes.into_iter().zip(&changes) {
            // A new route or a lifted hold can make the order deliverable.
            let plan = crate::deliver::plan_local(&store, &next, now).map_err(store_failure)?;
            batch.dedupe.extend(plan.dedupe);
            batch.orders.push(OrderWrite::Local {
                expected_revision: stored.revision,
                order: next,
                kind: "rules_apply".into(),
                detail: describe(change),
                outbox: plan.outbox,
            });
        }
        store.apply(batch).map_err(|e| match e {
            crate::store::StoreError::Conflict { id } => Failure::new(
                EXIT_FAILED,
                format!("order {id} changed while the rules were applied; nothing was written, run it again"),
            ),
            e => store_failure(e),
        })?;
        store.flush_blocking().map_err(store_failure)?;
    }
    if json {
        return print_json(&changes);
    }
    for c in &changes {
        outln!("{}: {}", c.id, describe(c));
    }
    let verb = if dry_run { "would change" } else { "changed" };
    outln!("{} {verb} ({} rules)", plural(changes.len()), rules.len());
    Ok(())
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 order".into()
    } else {
        format!("{n} orders")
    }
}
