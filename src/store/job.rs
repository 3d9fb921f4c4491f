//! What an outbox item asks for, as a closed set of typed jobs. The store
//! keeps them as the item's `"kind"` and `"payload"` fields (format version
//! 1, the layout items had before this type existed), so items written by
//! earlier builds load unchanged; a stock push written as `push_inventory`
//! loads as [`Job::PushStock`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// One outbound call to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Job {
    /// Tell a channel account its stock of `sku`; the level is computed when
    /// the job is sent, so a push that waited sends the newest level.
    #[serde(alias = "push_inventory")]
    PushStock { sku: String },
    /// Tell the order's channel about a shipment.
    PushTracking {
        order_id: String,
        tracking_number: String,
    },
    /// POST a routed order to a destination.
    Deliver(Delivery),
    /// Tell a destination that an order it already has was put on hold or
    /// cancelled.
    Notice(Notice),
    /// Fetch orders a webhook only named, and ingest them.
    FetchOrders { ids: Vec<String> },
    /// Ask a channel what became of stock pushes it took for processing
    /// later (Amazon's feeds), and record each SKU's outcome.
    CheckStockReceipt {
        receipt: String,
        skus: Vec<ReceiptSku>,
    },
}

/// A stock push behind a receipt: the quantity that was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptSku {
    pub sku: String,
    pub quantity: u32,
}

/// A notice about a delivered order (`docs/operations.md`, "Holding an
/// order that was already delivered").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// `hold`, `cancel` or `withdraw` (a redelivery replaced the delivery).
    pub notice: String,
    pub order_id: String,
    pub destination: String,
    /// The delivery the notice is about.
    pub delivery_id: String,
    pub reason: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A delivery of an order to a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub order_id: String,
    pub destination: String,
    /// Sent as `X-Switchyard-Delivery`; the same on every retry.
    pub delivery_id: String,
    /// The exact bytes to POST: the canonical order JSON at routing time.
    pub body: String,
}

/// The kind of a [`Job`]: what `outbox list` shows, and what a sender's
/// rate limits and batch sizes are chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    #[serde(alias = "push_inventory")]
    PushStock,
    PushTracking,
    Deliver,
    Notice,
    FetchOrders,
    CheckStockReceipt,
}

impl JobKind {
    pub const ALL: [JobKind; 6] = [
        JobKind::PushStock,
        JobKind::PushTracking,
        JobKind::Deliver,
        JobKind::Notice,
        JobKind::FetchOrders,
        JobKind::CheckStockReceipt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::PushStock => "push_stock",
            JobKind::PushTracking => "push_tracking",
            JobKind::Deliver => "deliver",
            JobKind::Notice => "notice",
            JobKind::FetchOrders => "fetch_orders",
            JobKind::CheckStockReceipt => "check_stock_receipt",
        }
    }

    /// What the job does, for messages ("push stock").
    pub fn describe(self) -> &'static str {
        match self {
            JobKind::PushStock => "push stock",
            JobKind::PushTracking => "push tracking",
            JobKind::Deliver => "deliver orders",
            JobKind::Notice => "notify destinations",
            JobKind::FetchOrders => "fetch orders",
            JobKind::CheckStockReceipt => "check stock receipts",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Job {
    pub fn kind(&self) -> JobKind {
        match self {
            Job::PushStock { .. } => JobKind::PushStock,
            Job::PushTracking { .. } => JobKind::PushTracking,
            Job::Deliver(_) => JobKind::Deliver,
            Job::Notice(_) => JobKind::Notice,
            Job::FetchOrders { .. } => JobKind::FetchOrders,
            Job::CheckStockReceipt { .. } => JobKind::CheckStockReceipt,
        }
    }

    /// The order the job is about, if it is about one (for log spans).
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Job::PushStock { .. } | Job::FetchOrders { .. } | Job::CheckStockReceipt { .. } => None,
            Job::PushTracking { order_id, .. } => Some(order_id),
            Job::Deliver(d) => Some(&d.order_id),
            Job::Notice(n) => Some(&n.order_id),
        }
    }

    /// The SKU the job is about, if it is about one (for log spans).
    pub fn sku(&self) -> Option<&str> {
        match self {
            Job::PushStock { sku } => Some(sku),
            Job::PushTracking { .. }
            | Job::Deliver(_)
            | Job::Notice(_)
            | Job::FetchOrders { .. }
            | Job::CheckStockReceipt { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::store::codec::pair_key;
    use crate::store::{NewOutboxItem, Store, StoreOptions};

    /// Outbox items byte for byte as builds before the typed jobs wrote them:
    /// the format version byte, then the item's JSON with `kind` and a
    /// free-form `payload`.
    const STORED_BEFORE_JOBS: [(&str, &str); 3] = [
        (
            "00000000000000000001",
            r#"{"id":"00000000000000000001","account":"shop-us","kind":"push_inventory","coalesce_key":"stock:MUG","payload":{"sku":"MUG"},"state":"pending","attempts":2,"next_attempt_at":"2026-11-20T10:00:00Z","last_error":"HTTP 503","created_at":"2026-11-20T09:00:00Z"}"#,
        ),
        (
            "00000000000000000002",
            r#"{"id":"00000000000000000002","account":"shop-us","kind":"push_tracking","coalesce_key":null,"payload":{"order_id":"shop-us:1001","tracking_number":"1Z999"},"state":"pending","attempts":0,"next_attempt_at":"2026-11-20T10:00:00Z","last_error":null,"created_at":"2026-11-20T09:00:00Z"}"#,
        ),
        (
            "00000000000000000003",
            r#"{"id":"00000000000000000003","account":"destination:east-wh","kind":"deliver","coalesce_key":null,"payload":{"order_id":"shop-us:1001","destination":"east-wh","delivery_id":"dlv_0123456789abcdef01234567","body":"{\"id\":\"shop-us:1001\"}"},"state":"dead","attempts":5,"next_attempt_at":"2026-11-20T10:00:00Z","last_error":"HTTP 400","created_at":"2026-11-20T09:00:00Z"}"#,
        ),
    ];

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn items_written_before_the_typed_jobs_load_and_coalesce() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let trees = store.trees();
        for (id, json) in STORED_BEFORE_JOBS {
            let mut bytes = vec![1u8];
            bytes.extend_from_slice(json.as_bytes());
            trees.outbox.insert(id.as_bytes(), bytes).unwrap();
        }
        let mut index = vec![1u8];
        index.extend_from_slice(br#""00000000000000000001""#);
        trees
            .coalesce
            .insert(pair_key("shop-us", "stock:MUG"), index)
            .unwrap();
        // The dead one's index entry, as the store upgrade writes it.
        trees
            .outbox_dead
            .insert(STORED_BEFORE_JOBS[2].0.as_bytes(), &[])
            .unwrap();

        let pending = store.outbox_list(false).unwrap();
        let jobs: Vec<&Job> = pending.iter().map(|i| &i.job).collect();
        assert_eq!(
            jobs,
            [
                &Job::PushStock { sku: "MUG".into() },
                &Job::PushTracking {
                    order_id: "shop-us:1001".into(),
                    tracking_number: "1Z999".into()
                },
            ]
        );
        assert_eq!(pending[0].attempts, 2);
        assert_eq!(pending[0].last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(pending[0].coalesce_key.as_deref(), Some("stock:MUG"));
        let dead = store.outbox_list(true).unwrap();
        assert_eq!(
            dead[0].job,
            Job::Deliver(Delivery {
                order_id: "shop-us:1001".into(),
                destination: "east-wh".into(),
                delivery_id: "dlv_0123456789abcdef01234567".into(),
                body: r#"{"id":"shop-us:1001"}"#.into(),
            })
        );
        assert_eq!(
            serde_json::to_value(dead[0].summary()).unwrap()["kind"],
            "deliver"
        );

        // A new push of the same SKU still folds into the old item, which
        // keeps its place and attempts and is written back as `push_stock`.
        let now = at("2026-11-20T11:00:00Z");
        store
            .outbox_add(
                vec![NewOutboxItem {
                    account: "shop-us".into(),
                    job: Job::PushStock { sku: "MUG".into() },
                    coalesce_key: Some("stock:MUG".into()),
                    not_before: now,
                }],
                now,
            )
            .unwrap();
        let pending = store.outbox_list(false).unwrap();
        assert_eq!(pending.len(), 2, "{pending:?}");
        assert_eq!(pending[0].id, "00000000000000000001");
        assert_eq!(pending[0].attempts, 2);
        let raw = trees.outbox.get(b"00000000000000000001").unwrap().unwrap();
        assert_eq!(raw[0], 1, "the format version stays");
        let json: serde_json::Value = serde_json::from_slice(&raw[1..]).unwrap();
        assert_eq!(json["kind"], "push_stock");
        assert_eq!(json["payload"], serde_json::json!({ "sku": "MUG" }));
    }

    #[test]
    fn kinds_read_the_old_stock_name() {
        let old: JobKind = serde_json::from_str(r#""push_inventory""#).unwrap();
        assert_eq!(old, JobKind::PushStock);
        assert_eq!(
            serde_json::to_string(&JobKind::PushStock).unwrap(),
            r#""push_stock""#
        );
        for kind in JobKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
