//! The Raft log of one shard in the node's KV engine.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::{OptionalSend, RaftLogReader};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode, io_err};
use strata_tsdb::keys::{ShardId, log_key, meta_key};
use strata_tsdb::{Cf, KvEngine, WriteBatch};

use crate::TypeConfig;
use crate::log_writer::LogWriter;

/// Meta tags of the Raft state (next to the TSDB's own tags in `keys`).
pub(crate) const META_VOTE: u8 = 0x20;
const META_COMMITTED: u8 = 0x21;
const META_PURGED: u8 = 0x22;

/// The newest entry's id, cached (the engine has no reverse scan; the log is short, it
/// is truncated at every checkpoint).
#[derive(Debug, Default)]
struct Tail {
    last: Option<LogIdOf<TypeConfig>>,
    loaded: bool,
}

/// The Raft log of one shard: entries under `log · shard · index`, the vote, committed id
/// and last purged id under `meta · shard · tag`. Cheap to clone (the reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    kv: Arc<dyn KvEngine>,
    writer: LogWriter,
    shard: ShardId,
    tail: Arc<Mutex<Tail>>,
    floor: Arc<AtomicU64>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("shard", &self.shard).finish()
    }
}

impl LogStore {
    /// The log of `shard` (or of another group with that id) in `kv`; appends go through
    /// the node's `writer`.
    pub fn new(kv: Arc<dyn KvEngine>, writer: LogWriter, shard: ShardId) -> Self {
        let floor = Arc::new(AtomicU64::new(u64::MAX));
        LogStore { kv, writer, shard, tail: Arc::new(Mutex::new(Tail::default())), floor }
    }

    /// The highest index a purge may physically delete (default: no limit). A leader
    /// keeps entries its followers have not matched yet (within a bound) so that a
    /// replication stream resuming after an outage still reads gap-free entries; openraft
    /// counts them purged all the same.
    pub fn purge_floor(&self) -> Arc<AtomicU64> {
        self.floor.clone()
    }

    fn get_meta<T: DeserializeOwned>(&self, tag: u8) -> io::Result<Option<T>> {
        match self.kv.get(Cf::Meta, &meta_key(self.shard, tag)).map_err(io_err)? {
            Some(b) => decode(&b).map(Some),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(&self, tag: u8, v: &T, sync: bool) -> io::Result<()> {
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, meta_key(self.shard, tag), encode(v)?);
        self.kv.write(&b, sync).map_err(io_err)
    }

    fn entries(&self, start: u64, end: u64) -> io::Result<Vec<EntryOf<TypeConfig>>> {
        let mut out = Vec::new();
        let mut err = None;
        self.kv
            .scan(Cf::Log, &log_key(self.shard, start), &log_key(self.shard, end), &mut |_, v| {
                match decode(v) {
                    Ok(e) => out.push(e),
                    Err(e) => err = Some(e),
                }
                err.is_none()
            })
            .map_err(io_err)?;
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn last_log_id(&self) -> io::Result<Option<LogIdOf<TypeConfig>>> {
        let mut t = self.tail.lock().map_err(io_err)?;
        if !t.loaded {
            let (s, e) = (log_key(self.shard, 0), log_key(self.shard, u64::MAX));
            let mut bytes = None;
            self.kv
                .scan(Cf::Log, &s, &e, &mut |_, v| {
                    bytes = Some(v.to_vec());
                    true
                })
                .map_err(io_err)?;
            t.last = match bytes {
                Some(b) => Some(decode::<EntryOf<TypeConfig>>(&b)?.log_id),
                None => None,
            };
            t.loaded = true;
        }
        Ok(t.last)
    }

    fn set_last(&self, last: Option<LogIdOf<TypeConfig>>) -> io::Result<()> {
        let mut t = self.tail.lock().map_err(io_err)?;
        t.last = last;
        t.loaded = true;
        Ok(())
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let (start, end) = bounds(&range);
        if start >= end {
            return Ok(Vec::new());
        }
        let mut v = self.entries(start, end)?;
        // entries before the first one present are purged (allowed); a hole after it would
        // be corruption: return only the gap-free run
        let first = v.first().map_or(start, |e| e.log_id.index);
        let run = v.iter().enumerate().take_while(|(i, e)| e.log_id.index == first + *i as u64).count();
        if run < v.len() {
            tracing::error!(group = self.shard, start, end, first, run, "hole in the Raft log");
            v.truncate(run);
        }
        Ok(v)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.get_meta(META_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogIdOf<TypeConfig>> = self.get_meta(META_PURGED)?;
        let last = self.last_log_id()?.or(last_purged);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.put_meta(META_VOTE, vote, true)
    }

    /// The committed id is a hint that lets a restarted group apply its log at once (openraft's
    /// default keeps none): failing to store it loses nothing, since the quorum's durable log
    /// defines what is committed. So a failure (a full disk) is logged and swallowed instead of
    /// stopping the group, which would then restart from its checkpoint and serve reads
    /// without the entries applied after it until a new leader commits again.
    async fn save_committed(&mut self, committed: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        if let Err(e) = self.put_meta(META_COMMITTED, &committed, false) {
            tracing::warn!(error = %e, "storing the committed log id failed; the group goes on");
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(self.get_meta::<Option<LogIdOf<TypeConfig>>>(META_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::default();
        let mut last = None;
        let (mut records, mut bytes) = (0, 0);
        for e in entries {
            let v = encode(&e)?;
            records += 1;
            bytes += v.len() as u64;
            b.put(Cf::Log, log_key(self.shard, e.log_id.index), v);
            last = Some(e.log_id);
        }
        // durable before openraft counts it: the node's writer syncs it with other groups'
        let r = self.writer.write(b, records, bytes).await;
        if r.is_ok()
            && let Some(l) = last
        {
            self.set_last(Some(l))?;
        }
        let ok = r.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string()));
        callback.io_completed(ok);
        r
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index + 1);
        let mut b = WriteBatch::default();
        b.delete_range(Cf::Log, log_key(self.shard, from), log_key(self.shard, u64::MAX));
        self.kv.write(&b, true).map_err(io_err)?;
        let purged: Option<LogIdOf<TypeConfig>> = self.get_meta(META_PURGED)?;
        // the log may end before `last_log_id`: then nothing was removed
        let last = match (self.last_log_id()?, last_log_id) {
            (Some(cur), Some(keep)) if cur.index <= keep.index => Some(cur),
            (_, keep) => keep.or(purged),
        };
        self.set_last(last)
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, meta_key(self.shard, META_PURGED), encode(&log_id)?);
        let upto = log_id.index.min(self.floor.load(Ordering::Relaxed));
        b.delete_range(Cf::Log, log_key(self.shard, 0), log_key(self.shard, upto.saturating_add(1)));
        self.kv.write(&b, true).map_err(io_err)?;
        let last = self.last_log_id()?;
        if last.is_none_or(|l| l.index <= log_id.index) {
            self.set_last(Some(log_id))?;
        }
        Ok(())
    }
}
