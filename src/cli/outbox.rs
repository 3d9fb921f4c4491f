//! `switchyard outbox ...`: the outbound queue and its dead letters.

use std::path::Path;

use chrono::Utc;
use serde::Deserialize;

use super::orders::{op_failure, store_failure};
use super::print::{out, outln, plural, table, time};
use super::{Backend, CliResult, OutboxCommand, print_json};
use crate::effects::Outbound;
use crate::ops;
use crate::store::{OutboxPage, OutboxSummary};

/// What the admin API answers to a retry.
#[derive(Deserialize)]
struct Retried {
    retried: usize,
}

pub fn run(config_path: &Path, cmd: OutboxCommand) -> CliResult {
    let backend = super::open_backend(config_path, super::Open::Existing)?;
    match cmd {
        OutboxCommand::List {
            dead,
            limit,
            after,
            json,
        } => {
            let page = match &backend {
                Backend::Local { store, .. } => {
                    ops::outbox_list(store, dead, after.as_deref(), limit).map_err(op_failure)?
                }
                Backend::Remote(api) => {
                    let mut query = Vec::new();
                    if dead {
                        query.push(("dead", "true".to_owned()));
                    }
                    if let Some(n) = limit {
                        query.push(("limit", n.to_string()));
                    }
                    if let Some(a) = &after {
                        query.push(("after", a.clone()));
                    }
                    let (items, next) = api.get_page(&["outbox"], &query, "x-next-after")?;
                    OutboxPage { items, next }
                }
            };
            let hint = page.next.as_deref().map(|cursor| {
                format!(
                    "more items may match: {}",
                    next_command(dead, limit, json, cursor)
                )
            });
            if json {
                print_json(&page.items)?;
                // stdout stays one JSON document; the hint goes beside it.
                if let Some(hint) = hint {
                    eprintln!("{hint}");
                }
                return Ok(());
            }
            out!("{}", render_list(&page.items, dead, hint.is_some()));
            if let Some(hint) = hint {
                outln!("{hint}");
            }
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

/// The command that shows the page after `cursor`: this one, with
/// `--after` moved on.
fn next_command(dead: bool, limit: Option<usize>, json: bool, cursor: &str) -> String {
    let mut words = vec!["switchyard outbox list".to_owned()];
    if dead {
        words.push("--dead".to_owned());
    }
    if let Some(n) = limit {
        words.push(format!("--limit {n}"));
    }
    if json {
        words.push("--json".to_owned());
    }
    words.push(format!("--after {cursor}"));
    words.join(" ")
}

/// The `outbox list` text: a header, then one line per item saying what it
/// is for; pending items with their next attempt, dead letters with why.
/// `more`: a next page may hold more.
fn render_list(items: &[OutboxSummary], dead: bool, more: bool) -> String {
    if items.is_empty() {
        return match (dead, more) {
            (_, true) => "nothing on this page\n".to_owned(),
            (true, false) => "no dead letters\n".to_owned(),
            (false, false) => "outbox empty: nothing waiting to be sent\n".to_owned(),
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
            "{}{}: fix the cause, then `switchyard outbox retry ID` (or --all-dead), or `outbox drop ID`\n",
            plural(items.len(), "dead letter", "dead letters"),
            if more { " on this page" } else { "" }
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
