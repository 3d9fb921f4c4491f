//! `switchyard outbox ...`: the outbound queue and its dead letters.

use std::path::Path;

use chrono::Utc;
use serde::Deserialize;

use super::orders::{op_failure, store_failure};
use super::print::{out, outln, plural, table, time};
use super::{Backend, CliResult, OutboxCommand, print_json};
use crate::effects::Outbound;
use crate::ops;
use crate::store::OutboxSummary;

/// What the admin API answers to a retry.
#[derive(Deserialize)]
struct Retried {
    retried: usize,
}

pub fn run(config_path: &Path, cmd: OutboxCommand) -> CliResult {
    let backend = super::open_backend(config_path)?;
    match cmd {
        OutboxCommand::List { dead, json } => {
            let items: Vec<OutboxSummary> = match &backend {
                Backend::Local { store, .. } => {
                    ops::outbox_list(store, dead).map_err(op_failure)?
                }
                Backend::Remote(api) => {
                    let query = if dead {
                        vec![("dead", "true".to_owned())]
                    } else {
                        Vec::new()
                    };
                    api.get(&["outbox"], &query)?
                }
            };
            if json {
                return print_json(&items);
            }
            out!("{}", render_list(&items, dead));
            Ok(())
        }
        OutboxCommand::Retry { id, all_dead, json } => {
            let now = Utc::now();
            if all_dead {
                let n = match &backend {
                    Backend::Local { store, .. } => {
                        let n = ops::outbox_retry_dead(store, &Outbound::default(), now)
                            .map_err(op_failure)?;
                        store.flush_blocking().map_err(store_failure)?;
                        n
                    }
                    Backend::Remote(api) => {
                        api.post::<Retried>(&["outbox", "retry-dead"], &[], None)?
                            .retried
                    }
                };
                if json {
                    return print_json(&serde_json::json!({ "retried": n }));
                }
                outln!("{} queued again", plural(n, "dead letter", "dead letters"));
            } else if let Some(id) = id {
                match &backend {
                    Backend::Local { store, .. } => {
                        ops::outbox_retry(store, &Outbound::default(), &id, now)
                            .map_err(op_failure)?;
                        store.flush_blocking().map_err(store_failure)?;
                    }
                    Backend::Remote(api) => {
                        api.post::<Retried>(&["outbox", &id, "retry"], &[], None)?;
                    }
                }
                if json {
                    return print_json(&serde_json::json!({ "id": id, "retried": 1 }));
                }
                outln!("{id}: queued again");
            }
            Ok(())
        }
        OutboxCommand::Drop { id, json } => {
            match &backend {
                Backend::Local { store, .. } => {
                    ops::outbox_drop(store, &id).map_err(op_failure)?;
                    store.flush_blocking().map_err(store_failure)?;
                }
                Backend::Remote(api) => {
                    api.delete::<serde_json::Value>(&["outbox", &id])?;
                }
            }
            if json {
                return print_json(&serde_json::json!({ "id": id, "dropped": true }));
            }
            outln!("{id}: dropped");
            Ok(())
        }
    }
}

/// The `outbox list` text: a header, then one line per item saying what it
/// is for; pending items with their next attempt, dead letters with why.
fn render_list(items: &[OutboxSummary], dead: bool) -> String {
    if items.is_empty() {
        return if dead {
            "no dead letters\n".to_owned()
        } else {
            "outbox empty: nothing waiting to be sent\n".to_owned()
        };
    }
    let last_error = |i: &OutboxSummary| i.last_error.clone().unwrap_or_else(|| "-".into());
    if dead {
        let rows: Vec<[String; 4]> = items
            .iter()
            .map(|i| {
                [
                    i.id.clone(),
                    i.purpose(),
                    i.attempts.to_string(),
                    last_error(i),
                ]
            })
            .collect();
        let mut s = table(["ID", "FOR", "ATTEMPTS", "WHY IT FAILED"], &rows);
        s.push_str(&format!(
            "{}: fix the cause, then `switchyard outbox retry ID` (or --all-dead), or `outbox drop ID`\n",
            plural(items.len(), "dead letter", "dead letters")
        ));
        return s;
    }
    let rows: Vec<[String; 5]> = items
        .iter()
        .map(|i| {
            [
                i.id.clone(),
                i.purpose(),
                i.attempts.to_string(),
                i.next_attempt_at.map(time).unwrap_or_else(|| "-".into()),
                last_error(i),
            ]
        })
        .collect();
    table(
        ["ID", "FOR", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"],
        &rows,
    )
}
