//! One shard: its in-memory head (open XOR chunks since the last checkpoint), its index,
//! the deterministic apply of log records, checkpoints, bucket compaction, retention and
//! the read snapshot.
//!
//! Invariants:
//! * records are applied in log order; apply depends only on the shard's own state, so
//!   a replay (or a Raft replica) reaches the same state, series ids included;
//! * what a checkpoint writes (chunks, index entries, counters, the applied watermark and
//!   the log truncation) goes in one synced batch, so disk always holds the exact state at
//!   the watermark and the log holds everything after it.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockUpgradableReadGuard};

use crate::chunk::{self, Sample, XorAppender};
use crate::error::{Error, Result};
use crate::histogram::{FloatHistogram, HistogramSample as HPoint};
use crate::index::Postings;
use crate::keys::{self, DAY_MS, ShardId};
use crate::kv::{Cf, CfRange, FrozenVisitor, KvEngine, WriteBatch};
use crate::labels::{self, Labels};
use crate::matcher::Matcher;
use crate::outcome::{ApplyOutcome, RejectReason};
use crate::record;
use crate::stage::ShardStage;

/// Chunks are cut at 2-hour buckets (Prometheus's block range).
pub const BUCKET_MS: i64 = 2 * 3_600_000;

/// A series' cache of its current bucket's chunks holds at most this many: a checkpoint
/// that would add more merges them into one packed chunk (memory per series does not grow
/// with the number of checkpoints in a bucket).
const CACHE_CHUNKS: usize = 8;

/// Bytes of keys and merged chunks a compaction writes per batch.
const COMPACT_BATCH_BYTES: usize = 4 << 20;

/// Without an out-of-order window, samples older than the shard's newest minus this are
/// out of bounds (Prometheus: half the block range).
const HEAD_LOWER_BOUND_MS: i64 = 3_600_000;
const META_MAX_T: u8 = 0x04;
const META_COMPACTED: u8 = 0x05;

/// Start of the bucket holding `t`.
pub fn bucket_of(t: i64) -> i64 {
    t.div_euclid(BUCKET_MS) * BUCKET_MS
}

#[derive(Debug)]
struct Series {
    labels: Labels,
    head: XorAppender,
    head_bucket: i64,
    /// Head chunks closed at a bucket edge, waiting for the next checkpoint.
    sealed: Vec<(i64, Vec<u8>)>,
    /// Out-of-order samples since the last checkpoint.
    ooo: Vec<Sample>,
    /// Newest (timestamp, value bits); `None` until known for a series loaded from disk.
    last: Option<(i64, u64)>,
    /// UTC days with samples (persisted or in the head).
    days: Option<(u32, u32)>,
    /// Lowest and highest day of data not yet checkpointed.
    dirty_days: Option<(u32, u32)>,
    persisted: bool,
    /// Native histogram samples since the last checkpoint, ascending.
    hists: Vec<(i64, FloatHistogram)>,
    /// The chunks persisted for the bucket the series currently writes (`cache_bucket`),
    /// kept so that reads of recent data need no engine access, as Prometheus's head keeps
    /// its recent chunks in memory.
    cache: Vec<Vec<u8>>,
    cache_bucket: i64,
    /// Whether `cache` holds every chunk stored for `cache_bucket` (so reads may skip the
    /// engine for that bucket): the bucket was entered in this process.
    cache_complete: bool,
    /// The series received an in-order sample in this process (or is new).
    live: bool,
    /// Newest histogram sample (for order and duplicate checks); `None` until one arrives.
    /// Boxed: most series never see one, and inline it took 112 bytes in every series.
    hist_last: Option<Box<(i64, FloatHistogram)>>,
}

impl Series {
    fn new(labels: Labels, persisted: bool) -> Self {
        Series {
            labels,
            head: XorAppender::new(),
            head_bucket: 0,
            sealed: Vec::new(),
            ooo: Vec::new(),
            last: None,
            days: None,
            dirty_days: None,
            persisted,
            hists: Vec::new(),
            hist_last: None,
            cache: Vec::new(),
            cache_bucket: i64::MIN,
            cache_complete: false,
            live: !persisted,
        }
    }

    /// Notes that an in-order sample lands in bucket `b` (starts a new cache on a new bucket).
    fn enter_bucket(&mut self, b: i64) {
        if b != self.cache_bucket {
            self.cache.clear();
            self.cache_bucket = b;
            self.cache_complete = self.live;
        }
        self.live = true;
    }

    /// The bucket reads may take from memory instead of the engine.
    fn cached_bucket(&self) -> Option<i64> {
        self.cache_complete.then_some(self.cache_bucket)
    }

    fn note_day(&mut self, t: i64) {
        let d = keys::day_of(t);
        let widen = |r: Option<(u32, u32)>| Some(r.map_or((d, d), |(a, b)| (a.min(d), b.max(d))));
        self.days = widen(self.days);
        self.dirty_days = widen(self.dirty_days);
    }

    fn has_unpersisted(&self) -> bool {
        !self.head.is_empty()
            || !self.sealed.is_empty()
            || !self.ooo.is_empty()
            || !self.persisted
            || !self.hists.is_empty()
    }

    /// Samples of the head (sealed, open, out-of-order) within `[mint, maxt]`, unsorted.
    fn head_samples(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        let start = out.len();
        for (_, bytes) in &self.sealed {
            let _ = chunk::decode_into(bytes, out);
        }
        let b = self.cache_bucket;
        if self.cache_complete && b <= maxt && b.saturating_add(BUCKET_MS) > mint {
            for bytes in &self.cache {
                let _ = chunk::decode_into(bytes, out);
            }
        }
        self.head.samples_into(out);
        out.extend_from_slice(&self.ooo);
        keep_in_range(out, start, mint, maxt);
    }
}

/// Hasher for maps keyed by series ids and label hashes: one multiply, no SipHash.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        // Fibonacci hashing spreads sequential ids over the table
        self.0 = v.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Label hash → series ids. Almost every hash has one series: it is stored inline, and
/// only colliding ids go to a side map (no allocation per series).
#[derive(Debug, Default)]
struct HashIndex {
    first: IdMap<u64>,
    more: IdMap<Vec<u64>>,
}

impl HashIndex {
    fn insert(&mut self, h: u64, id: u64) {
        match self.first.entry(h) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.more.entry(h).or_default().push(id),
        }
    }

    fn candidates(&self, h: u64) -> impl Iterator<Item = u64> + '_ {
        self.first.get(&h).copied().into_iter().chain(self.more.get(&h).into_iter().flatten().copied())
    }

    fn remove(&mut self, h: u64, id: u64) {
        if self.first.get(&h) == Some(&id) {
            self.first.remove(&h);
            if let Some(mut rest) = self.more.remove(&h) {
                self.first.insert(h, rest.remove(0));
                if !rest.is_empty() {
                    self.more.insert(h, rest);
                }
            }
        } else if let Some(v) = self.more.get_mut(&h) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.more.remove(&h);
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    series: IdMap<Series>,
    by_hash: HashIndex,
    postings: Postings,
    next_id: u64,
    next_seq: u64,
    applied: u64,
    max_t: Option<i64>,
    compacted_through: Option<i64>,
    log_bytes: u64,
}

/// Settings that shape apply.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ApplyRules {
    /// Out-of-order window in milliseconds (0 = none).
    pub(crate) ooo_window_ms: i64,
}

/// What a query takes from a shard under its lock.
#[derive(Debug)]
pub(crate) struct SeriesSnapshot {
    pub(crate) labels: Labels,
    pub(crate) id: u64,
    pub(crate) days: (u32, u32),
    pub(crate) head: Vec<Sample>,
    /// Head histogram samples in range.
    pub(crate) head_hists: Vec<HPoint>,
    /// A bucket whose stored chunks `head` already holds (no need to read them).
    pub(crate) cached_bucket: Option<i64>,
}

/// A shard of the node.
pub(crate) struct Shard {
    pub(crate) id: ShardId,
    kv: Arc<dyn KvEngine>,
    state: RwLock<State>,
    /// Serialises checkpoint, compaction and retention.
    maintenance: Mutex<()>,
    /// Checkpoints written since the shard was opened.
    checkpoints: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard").field("id", &self.id).finish_non_exhaustive()
    }
}

fn read_u64(kv: &dyn KvEngine, key: &[u8]) -> Result<Option<u64>> {
    Ok(kv.get(Cf::Meta, key)?.and_then(|v| v.try_into().ok().map(u64::from_be_bytes)))
}

/// The key ranges a shard's checkpoint owns: its index, chunks and TSDB meta tags (not the
/// log, nor the log's own meta such as the Raft vote).
fn owned_ranges(id: ShardId) -> Vec<CfRange> {
    let (s, e) = keys::shard_range(id);
    vec![
        (Cf::Meta, (keys::meta_key(id, 0), keys::meta_key(id, keys::META_LOG_FIRST))),
        (Cf::Index, (s.clone(), e.clone())),
        (Cf::Chunks, (s, e)),
    ]
}

/// Reads a shard's persisted index and counters.
fn load_state(id: ShardId, kv: &dyn KvEngine) -> Result<State> {
    let mut st = State {
        applied: read_u64(kv, &keys::meta_key(id, keys::META_APPLIED))?.unwrap_or(0),
        next_id: read_u64(kv, &keys::meta_key(id, keys::META_NEXT_SERIES))?.unwrap_or(1),
        next_seq: read_u64(kv, &keys::meta_key(id, keys::META_NEXT_SEQ))?.unwrap_or(1),
        max_t: read_u64(kv, &keys::meta_key(id, META_MAX_T))?.map(|v| v as i64),
        compacted_through: read_u64(kv, &keys::meta_key(id, META_COMPACTED))?.map(|v| v as i64),
        ..State::default()
    };
    let (s, e) = keys::forward_range(id);
    let mut bad = None;
    kv.scan(Cf::Index, &s, &e, &mut |k, v| {
        let sid = keys::forward_series(k);
        match Labels::decode(v) {
            Some(l) => {
                st.by_hash.insert(labels::hash_encoded(v), sid);
                st.postings.add(sid, &l);
                st.series.insert(sid, Series::new(l, true));
            }
            None => bad = Some(sid),
        }
        true
    })?;
    if let Some(sid) = bad {
        return Err(Error::Corrupt { shard: id, what: format!("labels of series {sid}") });
    }
    let (s, e) = keys::day_range(id, 0, u32::MAX);
    kv.scan(Cf::Index, &s, &e, &mut |k, _| {
        let (day, sid) = keys::day_parts(k);
        if let Some(se) = st.series.get_mut(&sid) {
            se.days = Some(se.days.map_or((day, day), |(a, b)| (a.min(day), b.max(day))));
        }
        true
    })?;
    Ok(st)
}

impl Shard {
    /// Loads the shard's persisted index and counters (the state at its watermark).
    pub(crate) fn open(id: ShardId, kv: Arc<dyn KvEngine>) -> Result<Self> {
        let st = load_state(id, kv.as_ref())?;
        Ok(Shard {
            id,
            kv,
            state: RwLock::new(st),
            maintenance: Mutex::new(()),
            checkpoints: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Visits the shard's persisted state (what its last checkpoint holds: TSDB meta,
    /// index, chunks; not the log), family by family in [`owned_ranges`] order, keys
    /// ascending, as it was at one moment: consistent, and checkpoint, compaction and
    /// retention wait only until that moment is fixed, not for the scan.
    pub(crate) fn export(&self, f: &mut FrozenVisitor<'_>) -> Result<()> {
        let mut held = Some(self.maintenance.lock());
        self.kv.scan_frozen(&owned_ranges(self.id), &mut || drop(held.take()), f)
    }

    /// A stage for another replica's export of this shard, in `dir`.
    pub(crate) fn stage(&self, dir: &Path) -> Result<ShardStage> {
        ShardStage::new(self.kv.clone(), self.id, owned_ranges(self.id), dir)
    }

    /// Replaces the shard's persisted state (all but the log) with the entries of `files`
    /// (a [`ShardStage`]'s, consumed; none: an empty shard) and reloads the in-memory state
    /// from it. Done again after a crash with the same files, it ends in the same state.
    pub(crate) fn install(&self, files: &[(Cf, PathBuf)]) -> Result<()> {
        let _m = self.maintenance.lock();
        let mut st = self.state.write();
        let ranges = owned_ranges(self.id);
        let replace = || -> Result<()> {
            let mut b = WriteBatch::default();
            for (cf, (s, e)) in &ranges {
                b.delete_range(*cf, s.clone(), e.clone());
            }
            self.kv.write(&b, true)?;
            for (cf, _) in &ranges {
                let of_cf: Vec<PathBuf> =
                    files.iter().filter(|(c, _)| c == cf).map(|(_, p)| p.clone()).collect();
                if !of_cf.is_empty() {
                    self.kv.ingest(*cf, &of_cf)?;
                }
            }
            Ok(())
        };
        let done = replace();
        // whatever happened, the in-memory state follows what is on disk
        let loaded = load_state(self.id, self.kv.as_ref());
        done?;
        *st = loaded?;
        Ok(())
    }

    /// Replaces the in-memory state with the persisted one (the last checkpoint).
    pub(crate) fn reload(&self) -> Result<()> {
        let _m = self.maintenance.lock();
        let fresh = load_state(self.id, self.kv.as_ref())?;
        *self.state.write() = fresh;
        Ok(())
    }

    /// The watermark: the last log index applied.
    pub(crate) fn applied(&self) -> u64 {
        self.state.read().applied
    }

    /// Applies one log record. Deterministic given the shard's state.
    ///
    /// The engine reads it needs (the newest persisted sample of a series seen for the first
    /// time since the shard was loaded) happen before anything changes: a read error fails
    /// the apply with the shard as it was (a replica must stop rather than go on with a
    /// guess that another replica would not make).
    pub(crate) fn apply(&self, index: u64, rec: &[u8], rules: ApplyRules) -> Result<ApplyOutcome> {
        let mut out = ApplyOutcome::default();
        let mut guard = self.state.write();
        let st = &mut *guard;
        let Some(series) = record::decode(rec) else {
            tracing::error!(shard = self.id, index, "undecodable log record skipped");
            st.applied = st.applied.max(index);
            st.log_bytes += rec.len() as u64;
            return Ok(out);
        };
        for rs in &series {
            let found = match rs.reference {
                Some(h) => find_ref(st, h),
                None => find(st, rs.labels),
            };
            let Some(id) = found else { continue };
            if let Some(s) = st.series.get_mut(&id)
                && s.last.is_none()
                && s.persisted
            {
                s.last = load_last(self.kv.as_ref(), self.id, id, s.days)?;
            }
        }
        st.applied = st.applied.max(index);
        st.log_bytes += rec.len() as u64;
        for rs in series {
            let resolved = match rs.reference {
                Some(h) => find_ref(st, h).or_else(|| {
                    unresolved_reference(self.id, index, h, &mut out);
                    None
                }),
                None => self.resolve(st, rs.labels, &mut out),
            };
            let Some(id) = resolved else { continue };
            let Some(s) = st.series.get_mut(&id) else { continue };
            for (t, v) in rs.samples {
                match append(s, &mut st.max_t, t, v, rules) {
                    Ok(()) => out.accepted += 1,
                    Err(why) => out.reject(why, &s.labels, t),
                }
            }
            for (t, h) in rs.histograms {
                match append_histogram(s, &mut st.max_t, t, h, rules) {
                    Ok(()) => out.accepted += 1,
                    Err(why) => out.reject(why, &s.labels, t),
                }
            }
        }
        Ok(out)
    }

    /// For each `(hash, canonical labels)`: whether a record may name the series by
    /// reference. It must exist with exactly these labels and be the only series with its
    /// hash, and have a sample at or after `fresh_ms`: retention drops only series with no
    /// data left, so a series written to lately is still there when the record is applied
    /// on every replica, however late (a series dropped on one replica and created again
    /// from a later record has another id, but the same hash).
    pub(crate) fn references(&self, series: &[(u64, &[u8])], fresh_ms: i64) -> Vec<bool> {
        let st = self.state.read();
        series
            .iter()
            .map(|&(h, enc)| {
                find_ref(&st, h)
                    .and_then(|id| st.series.get(&id))
                    .is_some_and(|s| s.labels.encoded_eq(enc) && s.last.is_some_and(|(t, _)| t >= fresh_ms))
            })
            .collect()
    }

    /// Whether the series with this canonical label encoding exists.
    pub(crate) fn contains(&self, enc: &[u8]) -> bool {
        let st = self.state.read();
        st.by_hash
            .candidates(labels::hash_encoded(enc))
            .any(|id| st.series.get(&id).is_some_and(|s| s.labels.encoded_eq(enc)))
    }

    fn resolve(&self, st: &mut State, enc: &[u8], out: &mut ApplyOutcome) -> Option<u64> {
        if let Some(id) = find(st, enc) {
            return Some(id);
        }
        let h = labels::hash_encoded(enc);
        let l = Labels::decode(enc)?;
        let id = st.next_id;
        st.next_id += 1;
        st.by_hash.insert(h, id);
        st.postings.add(id, &l);
        st.series.insert(id, Series::new(l, false));
        out.new_series += 1;
        Some(id)
    }

    /// Bytes of log applied since the last checkpoint.
    pub(crate) fn log_bytes(&self) -> u64 {
        self.state.read().log_bytes
    }

    /// (series, bytes held by open chunks) for self-metrics.
    pub(crate) fn head_stats(&self) -> (usize, usize) {
        let st = self.state.read();
        let bytes = |s: &Series| s.head.size_bytes() + s.cache.iter().map(Vec::len).sum::<usize>();
        (st.series.len(), st.series.values().map(bytes).sum())
    }

    /// Writes everything since the last checkpoint, with `extra` meta entries, in one synced
    /// batch (the log is the shard group's: Raft purges it). Returns the watermark written.
    ///
    /// The batch is built from the state without changing it, and the head is cleared (and
    /// the series marked persisted) only once the write succeeded: a failed write leaves the
    /// shard exactly as it was, every sample still in the head, the watermark where it was.
    /// Applies wait meanwhile (as before), reads do not.
    pub(crate) fn checkpoint(&self, extra: Vec<(Vec<u8>, Vec<u8>)>) -> Result<u64> {
        let _m = self.maintenance.lock();
        let st = self.state.upgradable_read();
        let mut b = WriteBatch::default();
        let id = self.id;
        let mut seq = st.next_seq;
        // what the batch takes from each series, cleared from it once written, and whether
        // its cache is replaced (merged) instead of extended
        let mut taken: Vec<(u64, Vec<Vec<u8>>, bool)> = Vec::new();
        for (&sid, s) in st.series.iter().filter(|(_, s)| s.has_unpersisted()) {
            // the chunks written for the cached bucket, which join its cache once written
            let mut cache = Vec::new();
            if !s.persisted {
                b.put(Cf::Index, keys::forward_key(id, sid), s.labels.encode());
            }
            if let Some((lo, hi)) = s.dirty_days {
                for d in lo..=hi {
                    b.put(Cf::Index, keys::day_key(id, d, sid), Vec::new());
                }
            }
            for (bucket, bytes) in &s.sealed {
                b.put(Cf::Chunks, keys::chunk_key(id, *bucket, sid, seq), bytes.clone());
                seq += 1;
            }
            if !s.head.is_empty() {
                let head = s.head.to_bytes();
                if s.head_bucket == s.cache_bucket {
                    cache.push(head.clone());
                }
                b.put(Cf::Chunks, keys::chunk_key(id, s.head_bucket, sid, seq), head);
                seq += 1;
            }
            for part in s.hists.chunk_by(|a, b| bucket_of(a.0) == bucket_of(b.0)) {
                let key = keys::chunk_key(id, bucket_of(part[0].0), sid, seq);
                b.put(Cf::Chunks, key, chunk::encode_histograms(part));
                seq += 1;
            }
            if !s.ooo.is_empty() {
                let mut ooo = s.ooo.clone();
                ooo.sort_by_key(|x| x.0);
                for part in ooo.chunk_by(|a, b| bucket_of(a.0) == bucket_of(b.0)) {
                    let mut part = part.to_vec();
                    chunk::sort_dedup(&mut part);
                    let bytes = chunk::encode_packed(&part);
                    let bucket = bucket_of(part[0].0);
                    if bucket == s.cache_bucket {
                        cache.push(bytes.clone());
                    }
                    b.put(Cf::Chunks, keys::chunk_key(id, bucket, sid, seq), bytes);
                    seq += 1;
                }
            }
            // each checkpoint adds a chunk to the cache: past a few, they become one
            let merge = s.cache.len() + cache.len() > CACHE_CHUNKS;
            if merge {
                let merged = chunk::merge_packed(s.cache.iter().chain(&cache))
                    .ok_or_else(|| Error::Corrupt { shard: id, what: "cached chunk".into() })?;
                cache = vec![merged];
            }
            taken.push((sid, cache, merge));
        }
        let meta = |tag, v: u64| (keys::meta_key(id, tag), v.to_be_bytes().to_vec());
        for (k, v) in [
            meta(keys::META_APPLIED, st.applied),
            meta(keys::META_NEXT_SERIES, st.next_id),
            meta(keys::META_NEXT_SEQ, seq),
        ] {
            b.put(Cf::Meta, k, v);
        }
        if let Some(t) = st.max_t {
            let (k, v) = meta(META_MAX_T, t as u64);
            b.put(Cf::Meta, k, v);
        }
        for (k, v) in extra {
            b.put(Cf::Meta, k, v);
        }
        self.kv.write(&b, true)?;
        // written: what the batch holds leaves the head (no apply ran meanwhile)
        let mut st = RwLockUpgradableReadGuard::upgrade(st);
        for (sid, cache, merged) in taken {
            let Some(s) = st.series.get_mut(&sid) else { continue };
            if merged {
                s.cache.clear();
            }
            s.persisted = true;
            s.dirty_days = None;
            s.sealed.clear();
            s.head = XorAppender::new();
            s.hists.clear();
            s.ooo.clear();
            s.cache.extend(cache);
        }
        st.next_seq = seq;
        st.log_bytes = 0;
        self.checkpoints.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(st.applied)
    }

    /// The most chunks any series caches for its current bucket.
    #[cfg(test)]
    pub(crate) fn most_cached_chunks(&self) -> usize {
        self.state.read().series.values().map(|s| s.cache.len()).max().unwrap_or(0)
    }

    /// Checkpoints written since the shard was opened.
    pub(crate) fn checkpoints(&self) -> u64 {
        self.checkpoints.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Re-encodes every finished bucket (no more samples can land in it) into one packed
    /// chunk per series; with `include_open`, also the buckets that may still receive
    /// samples (their later segments are merged again when they finish). Call after a
    /// checkpoint.
    pub(crate) fn compact(&self, rules: ApplyRules, include_open: bool) -> Result<usize> {
        let _m = self.maintenance.lock();
        let (max_t, from) = {
            let st = self.state.read();
            (st.max_t, st.compacted_through)
        };
        let Some(max_t) = max_t else { return Ok(0) };
        // a bucket is final once its end is below every bound a sample must pass
        let limit = bucket_of(max_t.saturating_sub(HEAD_LOWER_BOUND_MS.max(rules.ooo_window_ms)));
        let from = match from {
            Some(f) => f,
            None => match self.first_chunk_bucket()? {
                Some(b) => b,
                None => return Ok(0),
            },
        };
        let mut merged = 0;
        let mut bucket = from;
        while bucket < limit {
            merged += self.compact_bucket(bucket, COMPACT_BATCH_BYTES)?;
            bucket += BUCKET_MS;
        }
        let finished = bucket;
        if include_open {
            while bucket <= bucket_of(max_t) {
                merged += self.compact_bucket(bucket, COMPACT_BATCH_BYTES)?;
                bucket += BUCKET_MS;
            }
        }
        let bucket = finished;
        if bucket > from {
            let mut b = WriteBatch::default();
            b.put(Cf::Meta, keys::meta_key(self.id, META_COMPACTED), (bucket as u64).to_be_bytes().to_vec());
            self.kv.write(&b, false)?;
            self.state.write().compacted_through = Some(bucket);
        }
        Ok(merged)
    }

    fn first_chunk_bucket(&self) -> Result<Option<i64>> {
        let (s, e) = keys::shard_range(self.id);
        let mut first = None;
        self.kv.scan(Cf::Chunks, &s, &e, &mut |k, _| {
            first = Some(keys::chunk_parts(k).0);
            false
        })?;
        Ok(first)
    }

    /// Merges the segments of each series in `bucket` into one packed chunk, writing a
    /// batch whenever it holds `batch_bytes` ([`COMPACT_BATCH_BYTES`]; a series' deletes
    /// and its merged chunk always share one batch, so a reader sees a series either
    /// before or after): memory stays bounded however many series the bucket holds.
    pub(crate) fn compact_bucket(&self, bucket: i64, batch_bytes: usize) -> Result<usize> {
        let (mut from, e) = keys::chunk_bucket_range(self.id, bucket, bucket + 1);
        let mut merged = 0usize;
        loop {
            let (n, next) = self.compact_part(&from, &e, batch_bytes)?;
            merged += n;
            match next {
                Some(k) => from = k,
                None => return Ok(merged),
            }
        }
    }

    /// Compacts the series of `[from, end)` until a batch is full; returns the series
    /// merged and the first key of the series where it stopped (`None`: done).
    fn compact_part(&self, from: &[u8], end: &[u8], batch_bytes: usize) -> Result<(usize, Option<Vec<u8>>)> {
        let mut batch = WriteBatch::default();
        let mut bytes = 0usize;
        let mut group: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut merged = 0usize;
        let mut err = None;
        let mut next = None;
        let mut flush_group =
            |group: &mut Vec<(Vec<u8>, Vec<u8>)>, batch: &mut WriteBatch, bytes: &mut usize| {
                let single_packed = group.len() == 1 && chunk::is_packed_chunk(&group[0].1);
                if !group.is_empty() && !single_packed {
                    let Some(packed) = chunk::merge_packed(group.iter().map(|(_, v)| v)) else {
                        err = Some(Error::Corrupt { shard: self.id, what: "chunk".into() });
                        group.clear();
                        return;
                    };
                    let Some((last_key, _)) = group.pop() else { return };
                    for (k, _) in group.drain(..) {
                        *bytes += k.len();
                        batch.delete(Cf::Chunks, k);
                    }
                    *bytes += last_key.len() + packed.len();
                    batch.put(Cf::Chunks, last_key, packed);
                    merged += 1;
                }
                group.clear();
            };
        self.kv.scan(Cf::Chunks, from, end, &mut |k, v| {
            // histogram chunks stay as they are (only float chunks are merged)
            if chunk::is_histogram_chunk(v) {
                return true;
            }
            let sid = keys::chunk_parts(k).1;
            if group.last().is_some_and(|(gk, _)| keys::chunk_parts(gk).1 != sid) {
                flush_group(&mut group, &mut batch, &mut bytes);
                if bytes >= batch_bytes {
                    next = Some(k.to_vec());
                    return false;
                }
            }
            group.push((k.to_vec(), v.to_vec()));
            true
        })?;
        flush_group(&mut group, &mut batch, &mut bytes);
        if let Some(e) = err {
            return Err(e);
        }
        if !batch.is_empty() {
            self.kv.write(&batch, false)?;
        }
        Ok((merged, next))
    }

    /// Drops buckets, day entries and series older than `cutoff` (ms).
    pub(crate) fn retain(&self, cutoff: i64) -> Result<usize> {
        let _m = self.maintenance.lock();
        let id = self.id;
        let cut_bucket = bucket_of(cutoff);
        let cut_day = keys::day_of(cutoff);
        let mut b = WriteBatch::default();
        let (s, _) = keys::shard_range(id);
        b.delete_range(Cf::Chunks, s, keys::chunk_bucket_range(id, cut_bucket, cut_bucket).0);
        let (ds, de) = keys::day_range(id, 0, cut_day);
        b.delete_range(Cf::Index, ds, de);
        let mut st = self.state.write();
        let dead: Vec<u64> = st
            .series
            .iter()
            .filter(|(_, s)| {
                s.head.is_empty()
                    && s.sealed.is_empty()
                    && s.ooo.is_empty()
                    && s.persisted
                    && s.days.is_none_or(|(_, hi)| hi < cut_day)
                    && s.last.is_none_or(|(t, _)| t < cutoff)
            })
            .map(|(&k, _)| k)
            .collect();
        for sid in &dead {
            if let Some(s) = st.series.remove(sid) {
                st.postings.remove(*sid, &s.labels);
                st.by_hash.remove(s.labels.stable_hash(), *sid);
                b.delete(Cf::Index, keys::forward_key(id, *sid));
            }
        }
        for s in st.series.values_mut() {
            if let Some((lo, hi)) = s.days {
                s.days = Some((lo.max(cut_day.min(hi)), hi));
            }
            if s.cache_bucket < cut_bucket {
                s.cache.clear();
                s.cache_complete = false;
            }
        }
        drop(st);
        self.kv.write(&b, false)?;
        Ok(dead.len())
    }

    /// Series matching `matchers` with data in `[mint, maxt]` (day granularity), with
    /// their head samples in range when `with_samples`.
    pub(crate) fn snapshot(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        with_samples: bool,
    ) -> Vec<SeriesSnapshot> {
        let (dlo, dhi) = (keys::day_of(mint), keys::day_of(maxt));
        let st = self.state.read();
        let mut out = Vec::new();
        for id in st.postings.select(matchers) {
            let Some(s) = st.series.get(&id) else { continue };
            let Some(days) = s.days else { continue };
            if days.1 < dlo || days.0 > dhi {
                continue;
            }
            let (mut head, mut head_hists) = (Vec::new(), Vec::new());
            if with_samples {
                s.head_samples(mint, maxt, &mut head);
                head_hists.extend(
                    s.hists
                        .iter()
                        .filter(|h| (mint..=maxt).contains(&h.0))
                        .map(|(t, h)| (*t, Arc::new(h.clone()))),
                );
            }
            let cached_bucket = s.cached_bucket();
            out.push(SeriesSnapshot { labels: s.labels.clone(), id, days, head, head_hists, cached_bucket });
        }
        out
    }

    /// Series whose label `name` has `value` ("": series without the label), counted in the
    /// index without touching a series.
    pub(crate) fn count_label_value(&self, name: &str, value: &str) -> usize {
        let st = self.state.read();
        let values = st.postings.values(name);
        if value.is_empty() {
            st.series.len().saturating_sub(values.map_or(0, |v| v.values().map(Vec::len).sum()))
        } else {
            values.and_then(|v| v.get(value)).map_or(0, Vec::len)
        }
    }

    /// Series in the head with label `name` = `value` ("": without the label) and metric
    /// name `metric`: a tenant's series of one metric.
    pub(crate) fn count_of_metric(&self, name: &str, value: &str, metric: &str) -> usize {
        let st = self.state.read();
        let Some(of_metric) = st.postings.values(crate::METRIC_NAME).and_then(|v| v.get(metric)) else {
            return 0;
        };
        let lists = st.postings.values(name);
        if value.is_empty() {
            let with = lists.map_or(0, |v| v.values().map(|l| intersection_len(l, of_metric)).sum());
            return of_metric.len() - with;
        }
        lists.and_then(|v| v.get(value)).map_or(0, |l| intersection_len(l, of_metric))
    }

    /// Label names of series matching `matchers` (all series when empty) active in the range.
    pub(crate) fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        if matchers.is_empty() {
            let st = self.state.read();
            return st.postings.names().cloned().collect();
        }
        let mut names: Vec<String> = self
            .snapshot(matchers, mint, maxt, false)
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Values of label `name` among series matching `matchers` active in the range.
    pub(crate) fn label_values(&self, name: &str, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        if matchers.is_empty() {
            let (dlo, dhi) = (keys::day_of(mint), keys::day_of(maxt));
            let st = self.state.read();
            let Some(values) = st.postings.values(name) else {
                return Vec::new();
            };
            return values
                .iter()
                .filter(|(_, ids)| {
                    ids.iter().any(|id| {
                        st.series.get(id).and_then(|s| s.days).is_some_and(|(a, b)| b >= dlo && a <= dhi)
                    })
                })
                .map(|(v, _)| v.clone())
                .collect();
        }
        let mut vals: Vec<String> = self
            .snapshot(matchers, mint, maxt, false)
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_owned))
            .collect();
        vals.sort();
        vals.dedup();
        vals
    }

    /// The persisted samples within `[mint, maxt]` of several series (`(id, days)`), one
    /// vector per series, read with one engine iterator in key order.
    pub(crate) fn read_persisted_many(
        &self,
        series: &[(u64, (u32, u32), Option<i64>)],
        mint: i64,
        maxt: i64,
        forward: bool,
    ) -> Result<Vec<Persisted>> {
        let mut ranges: Vec<(i64, u64, usize)> = Vec::new();
        for (i, &(id, days, cached)) in series.iter().enumerate() {
            let mut bucket = bucket_of(mint.max(i64::from(days.0) * DAY_MS));
            let hi = maxt.min((i64::from(days.1) + 1) * DAY_MS - 1);
            while bucket <= hi {
                // a cached bucket's chunks came with the head samples
                if cached != Some(bucket) {
                    ranges.push((bucket, id, i));
                }
                bucket += BUCKET_MS;
            }
        }
        ranges.sort_unstable();
        let keyed: Vec<(Vec<u8>, Vec<u8>)> = ranges
            .iter()
            .map(|&(b, id, _)| {
                let p = keys::chunk_series_prefix(self.id, b, id);
                let e = keys::prefix_end(&p);
                (p, e)
            })
            .collect();
        let mut out = vec![Persisted::default(); series.len()];
        let mut bad = None;
        self.kv.scan_many(Cf::Chunks, &keyed, &mut |r, _, v| {
            let Persisted { samples: dst, histograms: hdst, stored } = &mut out[ranges[r].2];
            let bucket = ranges[r].0;
            if chunk::is_histogram_chunk(v) {
                let start = hdst.len();
                if chunk::decode_histograms_into(v, hdst).is_none() {
                    bad = Some(ranges[r].1);
                    return;
                }
                let mut w = start;
                for i in start..hdst.len() {
                    if (mint..=maxt).contains(&hdst[i].0) {
                        hdst.swap(w, i);
                        w += 1;
                    }
                }
                hdst.truncate(w);
                return;
            }
            // a packed chunk of a bucket wholly in range goes as it is stored (segments of a
            // bucket not compacted yet are merged and packed: smaller on the wire)
            if forward
                && chunk::is_packed_chunk(v)
                && bucket >= mint
                && bucket.saturating_add(BUCKET_MS - 1) <= maxt
            {
                stored.push(v.to_vec());
                return;
            }
            let start = dst.len();
            if chunk::decode_into(v, dst).is_none() {
                bad = Some(ranges[r].1);
                return;
            }
            keep_in_range(dst, start, mint, maxt);
        })?;
        if let Some(id) = bad {
            return Err(Error::Corrupt { shard: self.id, what: format!("chunk of series {id}") });
        }
        Ok(out)
    }
}

/// What [`Shard::read_persisted_many`] read of one series.
#[derive(Clone, Debug, Default)]
pub(crate) struct Persisted {
    /// Float samples in range, decoded, in key order.
    pub(crate) samples: Vec<Sample>,
    /// Histogram samples in range, decoded.
    pub(crate) histograms: Vec<HPoint>,
    /// Float chunks of buckets wholly in range, as stored, in key order (only when asked to
    /// forward them).
    pub(crate) stored: Vec<Vec<u8>>,
}

/// The id of the series with canonical label encoding `enc`, if the shard has it.
/// The one series whose labels hash to `h` (a record's reference).
fn find_ref(st: &State, h: u64) -> Option<u64> {
    let mut ids = st.by_hash.candidates(h);
    match (ids.next(), ids.next()) {
        (Some(id), None) => Some(id),
        _ => None,
    }
}

/// A reference that names no series (or more than one): admission makes sure it cannot
/// happen, so this replica's state differs from the proposer's. Its samples are not
/// stored, and the proposer hears why.
fn unresolved_reference(shard: ShardId, index: u64, h: u64, out: &mut ApplyOutcome) {
    tracing::error!(
        shard,
        index,
        hash = h,
        "a log record names a series this shard does not hold by reference"
    );
    if out.first_error.is_none() {
        out.first_error = Some(format!("series reference {h:016x} names no series of shard {shard}"));
    }
}

fn find(st: &State, enc: &[u8]) -> Option<u64> {
    let h = labels::hash_encoded(enc);
    st.by_hash.candidates(h).find(|id| st.series.get(id).is_some_and(|s| s.labels.encoded_eq(enc)))
}

/// Drops the samples of `out[start..]` outside `[mint, maxt]`, keeping order.
fn keep_in_range(out: &mut Vec<Sample>, start: usize, mint: i64, maxt: i64) {
    let mut w = start;
    for i in start..out.len() {
        if (mint..=maxt).contains(&out[i].0) {
            out[w] = out[i];
            w += 1;
        }
    }
    out.truncate(w);
}

/// Checks one sample as Prometheus's head appender does and appends it to the series.
fn append(
    s: &mut Series,
    max_t: &mut Option<i64>,
    t: i64,
    v: f64,
    rules: ApplyRules,
) -> Result<(), RejectReason> {
    if let Some(max_t) = *max_t {
        if rules.ooo_window_ms > 0 {
            if t < max_t.saturating_sub(rules.ooo_window_ms) {
                return Err(RejectReason::TooOld);
            }
        } else if t < max_t.saturating_sub(HEAD_LOWER_BOUND_MS) {
            return Err(RejectReason::OutOfBounds);
        }
    }
    match s.last {
        Some((lt, lv)) if t == lt => {
            return if v.to_bits() == lv { Ok(()) } else { Err(RejectReason::Duplicate) };
        }
        Some((lt, _)) if t < lt => {
            if rules.ooo_window_ms == 0 {
                return Err(RejectReason::OutOfOrder);
            }
            s.ooo.push((t, v));
        }
        _ => {
            let b = bucket_of(t);
            s.enter_bucket(b);
            if !s.head.is_empty() && b != s.head_bucket {
                let full = std::mem::take(&mut s.head);
                s.sealed.push((s.head_bucket, full.to_bytes()));
            }
            if s.head.is_empty() {
                s.head_bucket = b;
            }
            s.head.append(t, v);
            s.last = Some((t, v.to_bits()));
        }
    }
    s.note_day(t);
    *max_t = Some(max_t.map_or(t, |m| m.max(t)));
    Ok(())
}

/// Checks one histogram sample (bounds as for floats, in order per series, an equal
/// repeat ignored) and keeps it in the head.
fn append_histogram(
    s: &mut Series,
    max_t: &mut Option<i64>,
    t: i64,
    h: FloatHistogram,
    rules: ApplyRules,
) -> Result<(), RejectReason> {
    if let Some(max_t) = *max_t {
        let bound = if rules.ooo_window_ms > 0 { rules.ooo_window_ms } else { HEAD_LOWER_BOUND_MS };
        if t < max_t.saturating_sub(bound) {
            return Err(if rules.ooo_window_ms > 0 {
                RejectReason::TooOld
            } else {
                RejectReason::OutOfBounds
            });
        }
    }
    match s.hist_last.as_deref() {
        Some((lt, lh)) if t == *lt => {
            return if *lh == h { Ok(()) } else { Err(RejectReason::Duplicate) };
        }
        Some((lt, _)) if t < *lt => return Err(RejectReason::OutOfOrder),
        _ => {}
    }
    s.hist_last = Some(Box::new((t, h.clone())));
    s.hists.push((t, h));
    s.note_day(t);
    *max_t = Some(max_t.map_or(t, |m| m.max(t)));
    Ok(())
}

/// Newest persisted sample of a series (searching its last active day, newest bucket first).
fn load_last(
    kv: &dyn KvEngine,
    shard: ShardId,
    id: u64,
    days: Option<(u32, u32)>,
) -> Result<Option<(i64, u64)>> {
    let Some((_, hi)) = days else { return Ok(None) };
    let day_start = i64::from(hi) * DAY_MS;
    let mut bucket = bucket_of(day_start + DAY_MS - 1);
    while bucket >= day_start {
        let p = keys::chunk_series_prefix(shard, bucket, id);
        let mut samples = Vec::new();
        let mut corrupt = false;
        kv.scan(Cf::Chunks, &p, &keys::prefix_end(&p), &mut |_, v| {
            corrupt = chunk::decode_into(v, &mut samples).is_none();
            !corrupt
        })?;
        if corrupt {
            return Err(Error::Corrupt { shard, what: format!("chunk of series {id}") });
        }
        if !samples.is_empty() {
            chunk::sort_dedup(&mut samples);
            return Ok(samples.last().map(|&(t, v)| (t, v.to_bits())));
        }
        bucket -= BUCKET_MS;
    }
    Ok(None)
}

/// How many ids two sorted id lists share (each id of the shorter looked up in the longer).
fn intersection_len(a: &[u64], b: &[u64]) -> usize {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.iter().filter(|id| long.binary_search(id).is_ok()).count()
}

#[cfg(test)]
mod tests {
    use super::{HashIndex, Series};

    #[test]
    fn a_series_stays_small() {
        // every head series is one such value in its shard's table (20k series: 5.6 MB at
        // 280 bytes, 7.7 MB when a histogram sample was kept inline)
        let size = std::mem::size_of::<Series>();
        assert!(size <= 280, "a series takes {size} bytes");
    }

    #[test]
    fn collisions_are_kept_and_removed() {
        let mut h = HashIndex::default();
        h.insert(7, 1);
        h.insert(7, 2);
        h.insert(7, 3);
        h.insert(8, 4);
        assert_eq!(h.candidates(7).collect::<Vec<_>>(), vec![1, 2, 3]);
        h.remove(7, 1);
        assert_eq!(h.candidates(7).collect::<Vec<_>>(), vec![2, 3]);
        h.remove(7, 3);
        h.remove(7, 2);
        assert_eq!(h.candidates(7).count(), 0);
        assert_eq!(h.candidates(8).collect::<Vec<_>>(), vec![4]);
    }
}
