//! `switchyard outbox ...`: the outbound queue and its dead letters.

use std::path::Path;

use chrono::Utc;

use super::orders::store_failure;
use super::{CliResult, OutboxCommand, print_json};

pub fn run(config_path: &Path, cmd: OutboxCommand) -> CliResult {
    let (_config, store) = super::open_store(config_path)?;
    match cmd {
        OutboxCommand::List { dead, json } => {
            let items = store.outbox_list(dead).map_err(store_failure)?;
            if json {
                let views: Vec<_> = items.iter().map(|i| i.summary()).collect();
                return print_json(&views);
            }
            if items.is_empty() {
                outln!(
                    "{}",
                    if dead {
                        "no dead letters"
                    } else {
                        "outbox empty"
                    }
                );
            }
            for i in &items {
                outln!(
                    "{}  {}  {}  attempts {}  next {}{}",
                    i.id,
                    i.account,
                    i.kind,
                    i.attempts,
                    i.next_attempt_at.to_rfc3339(),
                    i.last_error
                        .as_deref()
                        .map(|e| format!("  last error: {e}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        OutboxCommand::Retry { id, all_dead } => {
            let now = Utc::now();
            if all_dead {
                let n = store.outbox_retry_all_dead(now).map_err(store_failure)?;
                store.flush_blocking().map_err(store_failure)?;
                outln!("{n} dead letters queued again");
            } else if let Some(id) = id {
                store.outbox_retry(&id, now).map_err(store_failure)?;
                store.flush_blocking().map_err(store_failure)?;
                outln!("{id}: queued again");
            }
            Ok(())
        }
        OutboxCommand::Drop { id } => {
            store.outbox_drop(&id).map_err(store_failure)?;
            store.flush_blocking().map_err(store_failure)?;
            outln!("{id}: dropped");
            Ok(())
        }
    }
}
