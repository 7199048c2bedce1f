//! The journal: every message accepted but not yet handed to a stream, on
//! disk (a redb file in `--state-dir`), so neither a restart nor a crash
//! loses it.
//!
//! A message is written before its sender is answered and removed once it
//! is handed to the recipient's stream. One writer thread commits whatever
//! has gathered since its last commit in one transaction (group commit):
//! under load many messages share one `fsync`, and a message whose removal
//! arrives in the same batch as its write never touches the disk at all.
//! A batch gathers for `GATHER` after its first operation, long enough for
//! an online recipient's stream to take a message: so at a steady rate, too,
//! mail to online agents costs no disk write (committing each message as it
//! came cost two `fsync`s per message and a third of the server's CPU at
//! 1,000 msg/s), and mail to an agent that is away waits that much longer
//! for its `fsync`.
//! Removals are not waited for: a crash right after a message reached its
//! stream may deliver it once more after the restart.

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// Row number (increasing, never reused) -> [`Record`] as JSON.
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
/// Most operations folded into one transaction.
const MAX_BATCH: usize = 4096;
/// How long a batch gathers operations before it is committed.
const GATHER: Duration = Duration::from_millis(2);

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "cannot open the message journal {path}: {cause}; pass --state-dir with a writable folder, or move the file aside"
    )]
    Open { path: PathBuf, cause: String },
}

/// One journaled message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The recipient's name as the sender gave it (its meta `to`).
    pub to: String,
    /// When it was accepted (ms since the epoch), for the inbox's TTL.
    pub at_ms: u64,
    /// The notification's JSON, exactly as the stream sends it.
    pub notification: String,
}

enum Op {
    Put {
        row: u64,
        record: Vec<u8>,
        done: oneshot::Sender<()>,
    },
    Remove(u64),
    /// Answered once everything sent before it is on disk.
    Flush(oneshot::Sender<()>),
}

/// The handle senders and streams use; cheap to share.
pub struct Journal {
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<std::thread::JoinHandle<()>>,
    next_row: AtomicU64,
    path: Option<PathBuf>,
}

impl Drop for Journal {
    /// Waits for the writer to finish what it was given and close the file.
    fn drop(&mut self) {
        self.ops.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// What was in the journal when it was opened, oldest first.
pub type Backlog = Vec<(u64, Record)>;

impl Journal {
    /// A journal that keeps nothing: for tests of the parts around it.
    pub fn disabled() -> Arc<Self> {
        Arc::new(Self {
            ops: None,
            writer: None,
            next_row: AtomicU64::new(1),
            path: None,
        })
    }

    /// Opens (or creates) `messages-<port>.redb` in `dir`, returns what it
    /// holds and starts its writer thread.
    pub fn open(dir: &Path, port: u16) -> Result<(Arc<Self>, Backlog), JournalError> {
        let path = dir.join(format!("messages-{port}.redb"));
        let failed = |cause: String| JournalError::Open {
            path: path.clone(),
            cause,
        };
        let db = Database::create(&path).map_err(|e| failed(e.to_string()))?;
        let backlog = read_all(&db).map_err(|e| failed(e.to_string()))?;
        let next_row = backlog.last().map_or(1, |(row, _)| row + 1);
        let (ops, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || write_loop(db, receiver))
            .map_err(|e| failed(e.to_string()))?;
        Ok((
            Arc::new(Self {
                ops: Some(ops),
                writer: Some(writer),
                next_row: AtomicU64::new(next_row),
                path: Some(path),
            }),
            backlog,
        ))
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes `record`; the row names it for [`Journal::remove`], and the
    /// future resolves once it is on disk (at once for a disabled journal,
    /// or if the writer is gone, which it logged).
    pub fn put(&self, record: &Record) -> (Option<u64>, impl Future<Output = ()> + use<>) {
        let Some(ops) = &self.ops else {
            return (None, Durable(None));
        };
        let row = self.next_row.fetch_add(1, Ordering::Relaxed);
        // Records are strings and numbers: serializing cannot fail.
        let record = serde_json::to_vec(record).unwrap_or_default();
        let (done, written) = oneshot::channel();
        let sent = ops.send(Op::Put { row, record, done }).is_ok();
        (Some(row), Durable(sent.then_some(written)))
    }

    /// Forgets a row: its message reached a stream, expired or was dropped.
    pub fn remove(&self, row: Option<u64>) {
        if let (Some(ops), Some(row)) = (&self.ops, row) {
            let _ = ops.send(Op::Remove(row));
        }
    }

    /// Waits until every write and removal so far is on disk: at shutdown,
    /// so messages already delivered do not come back after the restart.
    pub async fn flush(&self) {
        let Some(ops) = &self.ops else { return };
        let (done, flushed) = oneshot::channel();
        if ops.send(Op::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }
}

/// Resolves when a put is on disk.
struct Durable(Option<oneshot::Receiver<()>>);

impl Future for Durable {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        match &mut self.0 {
            None => std::task::Poll::Ready(()),
            Some(receiver) => std::pin::Pin::new(receiver).poll(cx).map(|_| ()),
        }
    }
}

fn read_all(db: &Database) -> Result<Backlog, redb::Error> {
    let txn = db.begin_write()?;
    let mut backlog = Vec::new();
    {
        let table = txn.open_table(MESSAGES)?;
        for entry in table.iter()? {
            let (row, bytes) = entry?;
            match serde_json::from_slice::<Record>(bytes.value()) {
                Ok(record) => backlog.push((row.value(), record)),
                Err(error) => {
                    tracing::warn!(row = row.value(), %error, "skipping an unreadable journal row")
                }
            }
        }
    }
    txn.commit()?;
    Ok(backlog)
}

/// The writer thread: one transaction per batch of whatever is waiting.
fn write_loop(db: Database, ops: mpsc::Receiver<Op>) {
    while let Ok(first) = ops.recv() {
        // Asleep, not waiting on the channel: senders meanwhile wake nobody.
        std::thread::sleep(GATHER);
        let mut puts: HashMap<u64, (Vec<u8>, oneshot::Sender<()>)> = HashMap::new();
        let mut removes = Vec::new();
        let mut waiting = Vec::new();
        for op in std::iter::once(first).chain(ops.try_iter().take(MAX_BATCH)) {
            match op {
                Op::Put { row, record, done } => {
                    puts.insert(row, (record, done));
                }
                // Written and handed over in the same batch: nothing to keep.
                Op::Remove(row) => match puts.remove(&row) {
                    Some((_, done)) => waiting.push(done),
                    None => removes.push(row),
                },
                Op::Flush(done) => waiting.push(done),
            }
        }
        if let Err(error) = commit(&db, &mut puts, &removes) {
            tracing::error!(%error, "could not write the message journal; messages accepted now will not survive a restart");
        }
        // Senders are answered either way: their message is queued in memory.
        for done in waiting
            .into_iter()
            .chain(puts.into_values().map(|(_, d)| d))
        {
            let _ = done.send(());
        }
    }
}

fn commit(
    db: &Database,
    puts: &mut HashMap<u64, (Vec<u8>, oneshot::Sender<()>)>,
    removes: &[u64],
) -> Result<(), redb::Error> {
    if puts.is_empty() && removes.is_empty() {
        return Ok(());
    }
    // redb's default durability, `Immediate`: on disk when commit returns.
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(MESSAGES)?;
        for (row, (record, _)) in puts.iter() {
            table.insert(*row, record.as_slice())?;
        }
        for row in removes {
            table.remove(*row)?;
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(to: &str, n: u64) -> Record {
        Record {
            to: to.into(),
            at_ms: n,
            notification: format!("{{\"n\":{n}}}"),
        }
    }

    #[tokio::test]
    async fn what_was_written_and_not_removed_is_there_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (journal, backlog) = Journal::open(dir.path(), 1).unwrap();
            assert!(backlog.is_empty());
            let mut rows = Vec::new();
            for n in 1..=5 {
                let (row, written) = journal.put(&record("coder", n));
                written.await;
                rows.push(row);
            }
            journal.remove(rows[1]);
            journal.remove(rows[3]);
            // A put after the removals is written after them: once it is
            // on disk, so are they.
            journal.put(&record("planner", 6)).1.await;
        }
        let (journal, backlog) = Journal::open(dir.path(), 1).unwrap();
        let kept: Vec<(String, u64)> = backlog
            .iter()
            .map(|(_, r)| (r.to.clone(), r.at_ms))
            .collect();
        assert_eq!(
            kept,
            [
                ("coder".into(), 1),
                ("coder".into(), 3),
                ("coder".into(), 5),
                ("planner".into(), 6)
            ]
        );
        let (row, _) = journal.put(&record("x", 7));
        assert!(
            row > backlog.last().map(|(r, _)| *r),
            "rows are never reused"
        );
    }
}
