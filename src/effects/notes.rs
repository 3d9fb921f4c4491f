//! What a destination's sent deliveries and notices write on their orders,
//! written by one thread per destination, many notes to a store write.
//!
//! A delivery that went out notes it on its order and takes its outbox item
//! off the queue, in one write (a crash keeps both or neither). Made by the
//! delivery's own task, that write blocked one of the async runtime's few
//! threads for as long as the store's group commit took (a few ms during a
//! burst of webhooks, longer than the delivery's POST), and each note was a
//! write of its own in the group commit. Here the task hands the note over
//! and awaits its answer; the writer takes every note waiting, at most one
//! per order, and writes them together. If that write fails (an order
//! changed since it was read), each note is written again on its own, as
//! before, so one note's conflict is never another's failure.

use std::collections::{HashSet, VecDeque};
use std::sync::mpsc;

use chrono::Utc;
use tokio::sync::oneshot;

use crate::store::{NewOutboxItem, OrderWrite, Store, StoreError, StoredOrder, WriteBatch};

/// What noting something on an order adds: items queued in the same write,
/// and words appended to the history entry.
pub(crate) type Also = (Vec<NewOutboxItem>, String);

/// How an entry changes the order (besides the entry itself).
pub(crate) type Edit = Box<dyn Fn(&mut StoredOrder) -> Also + Send>;

/// Most notes in one write: a burst's notes still go in a few writes, and
/// one write's transaction stays short.
const MOST_PER_WRITE: usize = 64;

/// What a sent (or skipped) item writes on its order: a history entry of
/// `kind` and `detail`, after `edit` has changed what else must change
/// with it; and the item itself, which leaves the queue in the same write.
pub(crate) struct Note {
    pub order_id: String,
    /// The outbox item that goes with the entry.
    pub item: String,
    pub kind: &'static str,
    pub detail: String,
    /// The order as read before the call, if it was: the write starts from
    /// it and reads again only when the order changed meanwhile.
    pub read: Option<StoredOrder>,
    pub edit: Edit,
}

impl Note {
    /// Adds to `batch` the item's completion and the entry on the order
    /// (if the order is still there), starting from the order as read
    /// before, or as read now when it was not or changed since.
    fn stage(&mut self, store: &Store, batch: &mut WriteBatch) -> Result<(), StoreError> {
        batch.complete.push(self.item.clone());
        let stored = match self.read.take() {
            Some(s) => Some(s),
            None => store.get_order(&self.order_id)?,
        };
        if let Some(mut next) = stored {
            let expected_revision = next.revision;
            let (outbox, more) = (self.edit)(&mut next);
            batch.orders.push(OrderWrite::Local {
                expected_revision,
                order: next,
                kind: self.kind.to_owned(),
                detail: format!("{}{more}", self.detail),
                outbox,
            });
        }
        Ok(())
    }
}

/// A note on its way to the writer, with the store it goes to: the thread
/// holds a store only while it writes, so a daemon that stopped leaves
/// none open behind it.
struct Job {
    store: Store,
    note: Note,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Hands notes to the destination's writer thread, which stops once this
/// is dropped.
pub(crate) struct NoteWriter {
    tx: mpsc::Sender<Job>,
}

impl NoteWriter {
    /// Starts the writer thread of destination `id`.
    pub(crate) fn start(id: &str) -> NoteWriter {
        let (tx, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name(format!("notes-{id}"))
            .spawn(move || run(&rx));
        if let Err(e) = started {
            // Each note is then written by its delivery's task.
            tracing::warn!(destination = %id, error = %e, "cannot start the delivery notes thread; each delivery writes its own");
        }
        NoteWriter { tx }
    }

    /// Writes `note` in `store` (with the other notes waiting) and answers
    /// once it is written.
    pub(crate) async fn write(&self, store: &Store, note: Note) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            store: store.clone(),
            note,
            done,
        };
        match self.tx.send(job) {
            Ok(()) => answer.await.unwrap_or(Err(StoreError::Closed)),
            // No thread: written here.
            Err(mpsc::SendError(mut job)) => write_one(store, &mut job.note),
        }
    }
}

fn run(rx: &mpsc::Receiver<Job>) {
    // Notes of an order that already has one in the write being made.
    let mut later: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match later.pop_front() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut orders = HashSet::from([first.note.order_id.clone()]);
        let mut jobs = vec![first];
        let mut held = VecDeque::new();
        while jobs.len() < MOST_PER_WRITE {
            let Some(job) = later.pop_front().or_else(|| rx.try_recv().ok()) else {
                break;
            };
            if orders.insert(job.note.order_id.clone()) {
                jobs.push(job);
            } else {
                held.push_back(job);
            }
        }
        // Held notes go first next time, in the order they came.
        held.append(&mut later);
        later = held;
        write_together(jobs);
    }
}

/// Writes the notes of `jobs` (one per order, all to one store) in one
/// write; if it fails, each on its own. The store handles are let go
/// before anyone is answered.
fn write_together(mut jobs: Vec<Job>) {
    let Some(store) = jobs.first().map(|j| j.store.clone()) else {
        return;
    };
    let results = written(&store, &mut jobs);
    drop(store);
    for (job, result) in jobs.into_iter().zip(results) {
        let Job { store, done, .. } = job;
        drop(store);
        let _ = done.send(result);
    }
}

/// Writes the notes of `jobs` together (or each alone, if that fails):
/// each one's result.
fn written(store: &Store, jobs: &mut [Job]) -> Vec<Result<(), StoreError>> {
    if let [job] = jobs {
        return vec![write_one(store, &mut job.note)];
    }
    let mut batch = WriteBatch::new(Utc::now());
    let together = jobs
        .iter_mut()
        .try_for_each(|job| job.note.stage(store, &mut batch))
        .and_then(|()| store.apply(batch).map(|_| ()));
    match together {
        Ok(()) => jobs.iter().map(|_| Ok(())).collect(),
        // Each read again (its read was taken above): the order may be
        // what changed.
        Err(_) => jobs
            .iter_mut()
            .map(|job| write_one(store, &mut job.note))
            .collect(),
    }
}

/// Writes `note` alone: the entry on the order (if the order is still
/// there) and the item's completion, in one write, so that a crash cannot
/// keep one without the other; read again and retried while the order
/// changes underneath.
fn write_one(store: &Store, note: &mut Note) -> Result<(), StoreError> {
    for _ in 0..8 {
        let mut batch = WriteBatch::new(Utc::now());
        note.stage(store, &mut batch)?;
        match store.apply(batch) {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict {
        id: note.order_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Ingest, LiveRules, Source};
    use crate::store::{Job as OutboxJob, StoreOptions};
    use switchyard_contract::NormalizedOrder;

    fn note(order_id: &str, item: &str, read: Option<StoredOrder>) -> Note {
        Note {
            order_id: order_id.to_owned(),
            item: item.to_owned(),
            kind: "delivered",
            detail: format!("delivered ({item})"),
            read,
            edit: Box::new(|_| Also::default()),
        }
    }

    /// Three orders, each with an outbox item due.
    fn store_with_orders() -> (tempfile::TempDir, Store, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let ingest = Ingest::new(store.clone(), LiveRules::default());
        let now = Utc::now();
        for n in 1..=3 {
            let order = crate::store::order_for_tests(&format!("a:{n}")).order;
            let n = NormalizedOrder {
                order,
                notes: vec![],
                raw: serde_json::Value::Null,
                raw_json: None,
            };
            ingest.receive("a", vec![n], Source::Fetch, now).unwrap();
        }
        let items = (0..4)
            .map(|i| NewOutboxItem {
                account: "destination:t".into(),
                job: OutboxJob::PushStock {
                    sku: format!("S-{i}"),
                },
                coalesce_key: None,
                not_before: now,
            })
            .collect();
        store.outbox_add(items, now).unwrap();
        let ids = store
            .outbox_due("destination:t", now, 10)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        (dir, store, ids)
    }

    fn entries(store: &Store, id: &str) -> Vec<String> {
        store
            .history(id)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "delivered")
            .map(|e| e.detail)
            .collect()
    }

    /// Notes waiting together go in one write, at most one per order (a
    /// second note of an order waits for the next write); a note whose
    /// order changed since it was read fails the shared write, and then
    /// every note of it is written on its own: each lands once, with its
    /// item taken off the queue.
    #[test]
    fn waiting_notes_each_land_once_even_when_one_order_changed() {
        let (_dir, store, items) = store_with_orders();
        let stale = store.get_order("a:2").unwrap();
        let mut changed = note("a:2", &items[3], None);
        write_one(&store, &mut changed).unwrap();
        let (tx, rx) = mpsc::channel();
        let mut answers = Vec::new();
        for (order, item, read) in [
            ("a:1", &items[0], None),
            ("a:2", &items[1], stale),
            ("a:1", &items[2], None),
        ] {
            let (done, answer) = oneshot::channel();
            tx.send(Job {
                store: store.clone(),
                note: note(order, item, read),
                done,
            })
            .unwrap();
            answers.push(answer);
        }
        drop(tx);
        // Returns once every note is written and the sender is gone.
        run(&rx);
        for mut answer in answers {
            assert!(matches!(answer.try_recv(), Ok(Ok(()))));
        }
        assert_eq!(
            entries(&store, "a:1"),
            [
                format!("delivered ({})", items[0]),
                format!("delivered ({})", items[2])
            ]
        );
        assert_eq!(
            entries(&store, "a:2"),
            [
                format!("delivered ({})", items[3]),
                format!("delivered ({})", items[1])
            ]
        );
        assert!(entries(&store, "a:3").is_empty());
        assert!(
            store
                .outbox_due("destination:t", Utc::now(), 10)
                .unwrap()
                .is_empty()
        );
    }
}
