//! Where orders come in from the channels: each account's connector, built
//! once from its channel's entry in `crate::registry` and shared
//! (`accounts.rs`), with its token store (`tokens.rs`), the
//! per-account poll loop (`poll.rs`), the framework-free half of webhook
//! handling (`webhook.rs`; `crate::http` only turns requests and answers
//! into HTTP) and the fetch jobs webhooks leave (`fetch.rs`).

pub mod accounts;
pub mod fetch;
pub mod poll;
pub mod tokens;
pub mod webhook;

use switchyard_contract::RejectedOrder;

use crate::ingest::Ingest;

/// Orders a connector had to leave out (poll pages, fetches, webhooks):
/// each logged at error level with its id, and counted. They are not in
/// the store, so a person must hear of them.
pub fn report_rejected(ingest: &Ingest, account: &str, source: &str, rejected: &[RejectedOrder]) {
    for r in rejected {
        tracing::error!(
            account = %account,
            source,
            order = r.channel_order_id.as_deref().unwrap_or("(no id)"),
            error = %r.error,
            "order left out: the channel's data could not be read, so it is NOT in the store; \
             check it on the channel (it is read again when it next changes)"
        );
        ingest
            .metrics()
            .orders_rejected
            .get_or_create(&crate::metrics::account(account))
            .inc();
    }
}
