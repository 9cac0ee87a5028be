//! The local write-ahead log: the "append batch → durable" seam.
//!
//! [`LocalLog`] group-commits: one committer thread takes every submission waiting, gives
//! each record the next index of its shard, writes them all in one synced batch to the
//! `log` column family, then hands them to the [`Applier`] in log order and answers each
//! submitter. Replicated deployments replace this with a Raft log with the same contract:
//! a record is applied (and acknowledged) only once durable, in log order per shard.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::keys::{self, ShardId};
use crate::kv::{Cf, KvEngine, Op, WriteBatch};
use crate::outcome::ApplyOutcome;

/// Receives durable records in log order.
pub trait Applier: Send + Sync + 'static {
    /// Applies record `index` of `shard`. An error (the engine failed a read) leaves the
    /// shard as it was; the log then stops rather than apply later records without it.
    fn apply(&self, shard: ShardId, index: u64, record: &[u8]) -> Result<ApplyOutcome>;
}

type Reply = mpsc::SyncSender<Result<Vec<ApplyOutcome>>>;

struct Submission {
    records: Vec<(ShardId, Vec<u8>)>,
    reply: Reply,
}

/// Counters of the log, for self-metrics.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Synced batches written.
    pub syncs: AtomicU64,
    /// Total time spent in synced writes, in microseconds.
    pub sync_micros: AtomicU64,
    /// Records written.
    pub records: AtomicU64,
    /// Bytes of records written.
    pub bytes: AtomicU64,
}

/// Upper bound of one group commit, in bytes of records.
const MAX_GROUP_BYTES: usize = 32 << 20;

/// The group-committing local log.
#[derive(Debug)]
pub struct LocalLog {
    tx: Mutex<Option<mpsc::Sender<Submission>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
    stats: Arc<LogStats>,
}

/// Last index present in the log of `shard` (0 when empty).
fn last_index(kv: &dyn KvEngine, shard: ShardId) -> Result<u64> {
    let (s, e) = keys::shard_range(shard);
    let mut last = 0;
    kv.scan(Cf::Log, &s, &e, &mut |k, _| {
        last = keys::log_index(k);
        true
    })?;
    Ok(last)
}

impl LocalLog {
    /// Replays every record of each shard after its watermark (`applied[shard]`) into
    /// `applier`, then starts the committer.
    pub fn open(
        kv: Arc<dyn KvEngine>,
        applied: &[(ShardId, u64)],
        applier: Arc<dyn Applier>,
        stats: Arc<LogStats>,
    ) -> Result<(Self, ApplyOutcome)> {
        let mut next = HashMap::new();
        let mut replayed = ApplyOutcome::default();
        for &(shard, watermark) in applied {
            let (_, end) = keys::shard_range(shard);
            let start = keys::log_key(shard, watermark.saturating_add(1));
            let mut failed = None;
            kv.scan(Cf::Log, &start, &end, &mut |k, v| match applier.apply(shard, keys::log_index(k), v) {
                Ok(o) => {
                    replayed.merge(o);
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            next.insert(shard, last_index(kv.as_ref(), shard)?.max(watermark) + 1);
        }
        let (tx, rx) = mpsc::channel::<Submission>();
        let st = stats.clone();
        let handle = thread::Builder::new()
            .name("strata-wal".into())
            .spawn(move || commit_loop(kv, applier, next, rx, st))
            .map_err(|e| Error::Kv(format!("spawn log thread: {e}")))?;
        Ok((LocalLog { tx: Mutex::new(Some(tx)), thread: Mutex::new(Some(handle)), stats }, replayed))
    }

    /// Makes every record durable, applies them, and returns one outcome per record.
    /// Blocks the calling thread until done.
    pub fn submit(&self, records: Vec<(ShardId, Vec<u8>)>) -> Result<Vec<ApplyOutcome>> {
        let (reply, rx) = mpsc::sync_channel(1);
        {
            let tx = self.tx.lock();
            let tx = tx.as_ref().ok_or(Error::ShuttingDown)?;
            tx.send(Submission { records, reply }).map_err(|_| Error::ShuttingDown)?;
        }
        rx.recv().map_err(|_| Error::ShuttingDown)?
    }

    /// Counters.
    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// Stops accepting submissions and waits for the committer to finish those queued.
    pub fn close(&self) {
        self.tx.lock().take();
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }
}

fn commit_loop(
    kv: Arc<dyn KvEngine>,
    applier: Arc<dyn Applier>,
    mut next: HashMap<ShardId, u64>,
    rx: mpsc::Receiver<Submission>,
    stats: Arc<LogStats>,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut bytes: usize = group[0].records.iter().map(|r| r.1.len()).sum();
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(s) => {
                    bytes += s.records.iter().map(|r| r.1.len()).sum::<usize>();
                    group.push(s);
                }
                Err(_) => break,
            }
        }
        // records move into the batch (no copy); after the write they are applied from it
        let mut batch = WriteBatch::default();
        let mut indexed: Vec<Vec<(ShardId, u64)>> = Vec::with_capacity(group.len());
        for sub in &mut group {
            let mut idx = Vec::with_capacity(sub.records.len());
            for (shard, rec) in sub.records.drain(..) {
                let n = next.entry(shard).or_insert(1);
                idx.push((shard, *n));
                batch.put(Cf::Log, keys::log_key(shard, *n), rec);
                *n += 1;
            }
            indexed.push(idx);
        }
        let started = Instant::now();
        let res = kv.write(&batch, true);
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats.sync_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if let Err(e) = res {
            tracing::error!(error = %e, "log write failed");
            for sub in group {
                let _ = sub.reply.send(Err(Error::Wal { shard: 0, reason: e.to_string() }));
            }
            continue;
        }
        let mut ops = batch.ops.iter();
        let mut failed: Option<String> = None;
        for (sub, idx) in group.into_iter().zip(indexed) {
            if let Some(e) = &failed {
                let _ = sub.reply.send(Err(Error::Wal { shard: 0, reason: e.clone() }));
                continue;
            }
            stats.records.fetch_add(idx.len() as u64, Ordering::Relaxed);
            let outcomes: Result<Vec<ApplyOutcome>> = idx
                .into_iter()
                .zip(ops.by_ref())
                .map(|((shard, i), op)| match op {
                    Op::Put(_, _, rec) => applier.apply(shard, i, rec),
                    _ => Ok(ApplyOutcome::default()),
                })
                .collect();
            if let Err(e) = &outcomes {
                // the record is durable but not applied: applying later ones would skip it
                // (a restart replays it); stop taking writes
                tracing::error!(error = %e, "apply failed; the log stops");
                failed = Some(format!("apply failed, the log stopped: {e}"));
            }
            let _ = sub.reply.send(outcomes);
        }
        if failed.is_some() {
            return;
        }
    }
}
