//! The node-level log writer: the appends of every group on the node share one synced
//! write. A dedicated thread takes every batch waiting, writes them as one `WriteBatch`
//! with one WAL sync, then wakes each appender. A failed write is reported to the node's
//! [`WriteHealth`], which refuses writes until the storage takes them again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use strata_tsdb::{KvEngine, WriteBatch};
use tokio::sync::oneshot;

use crate::health::WriteHealth;

/// Counters of the log writer, for self-metrics (`strata_wal_*`).
#[derive(Debug, Default)]
pub struct LogStats {
    /// Synced batches written (group commits).
    pub syncs: AtomicU64,
    /// Total time spent in synced writes, in microseconds.
    pub sync_micros: AtomicU64,
    /// Log entries written.
    pub records: AtomicU64,
    /// Bytes of log entries written.
    pub bytes: AtomicU64,
}

/// Upper bound of one group commit, in batches.
const MAX_GROUP: usize = 4096;

struct Job {
    batch: WriteBatch,
    bytes: u64,
    records: u64,
    done: oneshot::Sender<Result<(), String>>,
}

/// Group-commits the log appends of all groups of a node. Cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    // declared before `_thread`: every clone lets go of its sender before its share of the
    // thread, so the last clone's join finds the queue closed
    tx: mpsc::Sender<Job>,
    _thread: Arc<Joined>,
}

/// The writer thread, joined when the last [`LogWriter`] goes: the thread then writes what
/// is queued and lets go of the engine before the owner goes on (a RocksDB still open in a
/// stray thread when the process exits crashes in RocksDB's static destructors).
struct Joined(Option<thread::JoinHandle<()>>);

impl Drop for Joined {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Starts the writer thread over `kv`; `stats` counts syncs, records and bytes; a failed
    /// write is recorded in `health`. The thread ends when the last clone is dropped, and
    /// that drop waits for it.
    pub fn start(
        kv: Arc<dyn KvEngine>,
        stats: Arc<LogStats>,
        health: Arc<WriteHealth>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = thread::Builder::new()
            .name("strata-raft-log".into())
            .spawn(move || run(kv, stats, health, rx))?;
        Ok(LogWriter { tx, _thread: Arc::new(Joined(Some(handle))) })
    }

    /// Writes `batch` (holding `records` log entries of `bytes` bytes) durably together with
    /// whatever other groups submit meanwhile; resolves once it is synced.
    pub async fn write(&self, batch: WriteBatch, records: u64, bytes: u64) -> std::io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Job { batch, bytes, records, done })
            .map_err(|_| std::io::Error::other("log writer stopped"))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::other("log writer stopped")),
        }
    }
}

fn run(kv: Arc<dyn KvEngine>, stats: Arc<LogStats>, health: Arc<WriteHealth>, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut batch = WriteBatch::default();
        for j in &mut jobs {
            batch.ops.append(&mut j.batch.ops);
        }
        let started = Instant::now();
        let res = kv.write(&batch, true).map_err(|e| e.to_string());
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats.sync_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        if let Err(e) = &res {
            tracing::error!(error = %e, "raft log write failed");
            health.record_failure(e);
        }
        for j in jobs {
            if res.is_ok() {
                stats.records.fetch_add(j.records, Ordering::Relaxed);
                stats.bytes.fetch_add(j.bytes, Ordering::Relaxed);
            }
            let _ = j.done.send(res.clone());
        }
    }
}
