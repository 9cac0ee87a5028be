//! The key-value engine seam: everything the TSDB persists goes through [`KvEngine`].
//!
//! RocksDB implements it in `strata-engine-rocks`; [`MemEngine`] implements it here for tests.
//! [`suite::run_all`] is the behaviour every implementation must show; `testing::FaultyEngine`
//! (feature `testing`) wraps an engine to fail chosen calls.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{BufWriter, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::error::{Error, Result};

/// The column families of a node's database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Log entries (the WAL; the Raft log later): `shard · index`.
    Log,
    /// Small per-shard state: applied watermark, counters, settings.
    Meta,
    /// Series index: id → labels, day activity.
    Index,
    /// Sealed, compressed chunks: `shard · bucket · series · seq`.
    Chunks,
}

/// A key range `[start, end)` of one column family.
pub type CfRange = (Cf, (Vec<u8>, Vec<u8>));

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 4] = [Cf::Log, Cf::Meta, Cf::Index, Cf::Chunks];

    /// The column family's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Log => "log",
            Cf::Meta => "meta",
            Cf::Index => "index",
            Cf::Chunks => "chunks",
        }
    }
}

/// One operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put(Cf, Vec<u8>, Vec<u8>),
    /// Remove `key`.
    Delete(Cf, Vec<u8>),
    /// Remove every key in `[start, end)`.
    DeleteRange(Cf, Vec<u8>, Vec<u8>),
}

/// Operations applied atomically, in order.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// The operations.
    pub ops: Vec<Op>,
}

impl WriteBatch {
    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(Op::Put(cf, key, value));
    }
    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push(Op::Delete(cf, key));
    }
    /// Adds a range delete of `[start, end)`.
    pub fn delete_range(&mut self, cf: Cf, start: Vec<u8>, end: Vec<u8>) {
        self.ops.push(Op::DeleteRange(cf, start, end));
    }
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Visitor of [`KvEngine::scan_many`]: (range index, key, value).
pub type RangeVisitor<'a> = dyn FnMut(usize, &[u8], &[u8]) + 'a;

/// Visitor of [`KvEngine::scan_frozen`]: (column family, key, value); `false` stops the scan.
pub type FrozenVisitor<'a> = dyn FnMut(Cf, &[u8], &[u8]) -> bool + 'a;

/// A file of one column family's entries in ascending key order, written for
/// [`KvEngine::ingest`] (an SST file in RocksDB).
pub trait SstWriter: Send {
    /// Appends an entry; its key must be greater than every key before it.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Bytes written so far (roughly: what the file will hold).
    fn bytes(&self) -> u64;
    /// Completes the file, durable on disk. A file needs at least one entry.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// An ordered key-value store with column families and atomic batches.
pub trait KvEngine: Send + Sync + Debug + 'static {
    /// Applies `batch` atomically; with `sync`, durable on disk before returning.
    /// Borrowed, so a caller can still read what it wrote (the log applies its records).
    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()>;
    /// Reads one key.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Visits keys in `[start, end)` in ascending order until `f` returns `false`.
    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;
    /// Persists everything buffered in memory and reclaims deleted space where cheap
    /// (called at shutdown and before measuring the data directory).
    fn flush(&self) -> Result<()>;
    /// Stops the engine's background work (flushes, compactions) and waits for it to end:
    /// the last call before the process exits, so that no background thread touches the
    /// engine while the process tears down. The engine stays readable. Default: nothing.
    fn quiesce(&self) {}
    /// The engine's own gauges for `/metrics` (name, help, value): its limits and what its
    /// files hold now. Default: none.
    fn gauges(&self) -> Vec<(&'static str, &'static str, u64)> {
        Vec::new()
    }

    /// Visits every key of `ranges` (in the order given, ascending within each) as the
    /// engine held them at one moment: `taken` is called once that moment is fixed, and no
    /// write after it is seen, however long the scan takes. Stops when `f` returns `false`.
    fn scan_frozen(
        &self,
        ranges: &[CfRange],
        taken: &mut dyn FnMut(),
        f: &mut FrozenVisitor<'_>,
    ) -> Result<()>;

    /// A writer of an ingestible file of `cf` entries at `path` (created; its directory must
    /// exist).
    fn sst_writer(&self, cf: Cf, path: &Path) -> Result<Box<dyn SstWriter>>;

    /// Adds the entries of `files` (written by [`KvEngine::sst_writer`] for `cf`, key ranges
    /// not overlapping each other) to `cf` at once, durably: they replace the values of keys
    /// already there. The files are consumed (moved into the engine or removed).
    fn ingest(&self, cf: Cf, files: &[PathBuf]) -> Result<()>;

    /// Visits every key of several ranges `[start, end)` (ascending within a range),
    /// calling `f(range index, key, value)`. Engines override it to reuse one iterator.
    fn scan_many(&self, cf: Cf, ranges: &[(Vec<u8>, Vec<u8>)], f: &mut RangeVisitor<'_>) -> Result<()> {
        for (i, (s, e)) in ranges.iter().enumerate() {
            self.scan(cf, s, e, &mut |k, v| {
                f(i, k, v);
                true
            })?;
        }
        Ok(())
    }
}

type MemMap = BTreeMap<(Cf, Vec<u8>), Vec<u8>>;

/// An in-memory [`KvEngine`] (tests, and the in-process clusters of later issues).
#[derive(Debug, Default)]
pub struct MemEngine {
    cfs: RwLock<MemMap>,
}

impl MemEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }
}

impl KvEngine for MemEngine {
    fn write(&self, batch: &WriteBatch, _sync: bool) -> Result<()> {
        let mut m = self.cfs.write();
        for op in &batch.ops {
            match op {
                Op::Put(cf, k, v) => {
                    m.insert((*cf, k.clone()), v.clone());
                }
                Op::Delete(cf, k) => {
                    m.remove(&(*cf, k.clone()));
                }
                Op::DeleteRange(cf, s, e) => {
                    let keys: Vec<_> = m
                        .range((Bound::Included((*cf, s.clone())), Bound::Excluded((*cf, e.clone()))))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in keys {
                        m.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.cfs.read().get(&(cf, key.to_vec())).cloned())
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let m = self.cfs.read();
        let range = m.range((Bound::Included((cf, start.to_vec())), Bound::Excluded((cf, end.to_vec()))));
        for ((_, k), v) in range {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn scan_frozen(
        &self,
        ranges: &[CfRange],
        taken: &mut dyn FnMut(),
        f: &mut FrozenVisitor<'_>,
    ) -> Result<()> {
        // a copy is the frozen view (tests hold small data)
        let copy: Vec<(Cf, Vec<u8>, Vec<u8>)> = {
            let m = self.cfs.read();
            ranges
                .iter()
                .flat_map(|(cf, (s, e))| {
                    m.range((Bound::Included((*cf, s.clone())), Bound::Excluded((*cf, e.clone()))))
                        .map(|((c, k), v)| (*c, k.clone(), v.clone()))
                })
                .collect()
        };
        taken();
        for (cf, k, v) in &copy {
            if !f(*cf, k, v) {
                break;
            }
        }
        Ok(())
    }

    fn sst_writer(&self, _cf: Cf, path: &Path) -> Result<Box<dyn SstWriter>> {
        let file = std::fs::File::create(path).map_err(|e| io_error(path, e))?;
        Ok(Box::new(MemSst { path: path.to_path_buf(), out: BufWriter::new(file), last: None, bytes: 0 }))
    }

    fn ingest(&self, cf: Cf, files: &[PathBuf]) -> Result<()> {
        let mut entries = Vec::new();
        for path in files {
            let mut data = Vec::new();
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(|e| io_error(path, e))?;
            let mut rest = data.as_slice();
            while !rest.is_empty() {
                let k = take_prefixed(&mut rest)
                    .ok_or_else(|| Error::Kv(format!("{}: truncated", path.display())))?;
                let v = take_prefixed(&mut rest)
                    .ok_or_else(|| Error::Kv(format!("{}: truncated", path.display())))?;
                entries.push(((cf, k.to_vec()), v.to_vec()));
            }
        }
        self.cfs.write().extend(entries);
        for path in files {
            std::fs::remove_file(path).map_err(|e| io_error(path, e))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// An I/O error on `path` as an engine error.
pub(crate) fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Kv(format!("{}: {e}", path.display()))
}

/// Splits a `u32`-length-prefixed slice off the front of `rest`.
fn take_prefixed<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let (item, tail) = (tail.get(..len)?, tail.get(len..)?);
    *rest = tail;
    Some(item)
}

/// [`MemEngine`]'s ingestible file: length-prefixed keys and values.
struct MemSst {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    last: Option<Vec<u8>>,
    bytes: u64,
}

impl SstWriter for MemSst {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.last.as_deref().is_some_and(|l| l >= key) {
            return Err(Error::Kv(format!("{}: keys must ascend", self.path.display())));
        }
        for part in [key, value] {
            let len = u32::try_from(part.len()).map_err(|_| Error::Kv("entry too large".into()))?;
            self.out.write_all(&len.to_le_bytes()).map_err(|e| io_error(&self.path, e))?;
            self.out.write_all(part).map_err(|e| io_error(&self.path, e))?;
        }
        self.bytes += 8 + (key.len() + value.len()) as u64;
        self.last = Some(key.to_vec());
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn finish(self: Box<Self>) -> Result<()> {
        if self.last.is_none() {
            return Err(Error::Kv(format!("{}: a file needs at least one entry", self.path.display())));
        }
        let path = self.path;
        let file = self.out.into_inner().map_err(|e| io_error(&path, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(&path, e))
    }
}

/// The conformance suite every [`KvEngine`] implementation must pass.
pub mod suite {
    use super::{Cf, KvEngine, WriteBatch};

    fn collect(e: &dyn KvEngine, cf: Cf, s: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        e.scan(cf, s, end, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })
        .expect("scan");
        out
    }

    /// Runs every check against a fresh, empty engine made by `make`; panics on the first failure.
    pub fn run_all(make: &mut dyn FnMut() -> Box<dyn KvEngine>) {
        puts_gets_and_cf_isolation(make().as_ref());
        scan_order_bounds_and_stop(make().as_ref());
        batch_ops_apply_in_order(make().as_ref());
        scan_many_visits_each_range(make().as_ref());
        scan_frozen_sees_one_moment(make().as_ref());
        ingested_files_add_and_replace_keys(make().as_ref());
    }

    fn scan_frozen_sees_one_moment(e: &dyn KvEngine) {
        let mut b = WriteBatch::default();
        for i in 0u8..5 {
            b.put(Cf::Index, vec![1, i], vec![i]);
            b.put(Cf::Meta, vec![1, i], vec![i]);
        }
        e.write(&b, true).expect("write");
        let ranges = vec![(Cf::Index, (vec![1], vec![2])), (Cf::Meta, (vec![1, 2], vec![2]))];
        let mut got = Vec::new();
        let mut taken = 0;
        e.scan_frozen(
            &ranges,
            &mut || {
                taken += 1;
                // writes once the moment is fixed are not seen
                let mut b = WriteBatch::default();
                b.put(Cf::Index, vec![1, 9], vec![9]);
                b.delete(Cf::Meta, vec![1, 3]);
                e.write(&b, true).expect("write");
            },
            &mut |cf, k, _| {
                got.push((cf, k[1]));
                true
            },
        )
        .expect("scan_frozen");
        assert_eq!(taken, 1);
        let want: Vec<(Cf, u8)> =
            (0..5).map(|i| (Cf::Index, i)).chain((2..5).map(|i| (Cf::Meta, i))).collect();
        assert_eq!(got, want);
        assert_eq!(e.get(Cf::Meta, &[1, 3]).expect("get"), None, "the write went through");
        let mut n = 0;
        e.scan_frozen(&ranges, &mut || {}, &mut |_, _, _| {
            n += 1;
            n < 3
        })
        .expect("scan_frozen");
        assert_eq!(n, 3, "scan must stop when the visitor says so");
    }

    fn ingested_files_add_and_replace_keys(e: &dyn KvEngine) {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("strata-kv-suite-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut b = WriteBatch::default();
        b.put(Cf::Chunks, vec![5, 1], b"old".to_vec());
        b.put(Cf::Chunks, vec![5, 9], b"kept".to_vec());
        e.write(&b, true).expect("write");
        let (a, z) = (dir.join("a.sst"), dir.join("b.sst"));
        let mut w = e.sst_writer(Cf::Chunks, &a).expect("writer");
        w.put(&[5, 0], b"a").expect("put");
        w.put(&[5, 1], b"new").expect("put");
        assert!(w.put(&[5, 0], b"x").is_err(), "keys must ascend");
        assert!(w.bytes() > 0);
        w.finish().expect("finish");
        let mut w = e.sst_writer(Cf::Chunks, &z).expect("writer");
        w.put(&[5, 2], b"b").expect("put");
        w.finish().expect("finish");
        assert!(
            e.sst_writer(Cf::Chunks, &dir.join("c.sst")).expect("writer").finish().is_err(),
            "empty file"
        );
        e.ingest(Cf::Chunks, &[a.clone(), z.clone()]).expect("ingest");
        let got: Vec<_> = collect(e, Cf::Chunks, &[5], &[6]).into_iter().map(|(k, v)| (k[1], v)).collect();
        let want = vec![(0, b"a".to_vec()), (1, b"new".to_vec()), (2, b"b".to_vec()), (9, b"kept".to_vec())];
        assert_eq!(got, want);
        assert!(!a.exists() && !z.exists(), "ingested files are consumed");
        assert!(collect(e, Cf::Index, &[5], &[6]).is_empty(), "only the family named");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn scan_many_visits_each_range(e: &dyn KvEngine) {
        let mut b = WriteBatch::default();
        for i in 0u8..10 {
            b.put(Cf::Chunks, vec![1, i], vec![i]);
        }
        e.write(&b, false).expect("write");
        let ranges = vec![(vec![1, 7], vec![1, 9]), (vec![1, 0], vec![1, 2]), (vec![2], vec![3])];
        let mut got = Vec::new();
        e.scan_many(Cf::Chunks, &ranges, &mut |i, k, _| got.push((i, k[1]))).expect("scan_many");
        assert_eq!(got, vec![(0, 7), (0, 8), (1, 0), (1, 1)]);
        // ascending ranges, adjacent, with small gaps and with gaps of many keys
        let mut b = WriteBatch::default();
        for i in 0u8..100 {
            b.put(Cf::Index, vec![9, i], vec![i]);
        }
        e.write(&b, false).expect("write");
        let r = |a: u8, z: u8| (vec![9, a], vec![9, z]);
        let ranges = vec![r(0, 2), r(2, 3), r(5, 6), r(60, 62), r(99, 100), (vec![10], vec![11])];
        let mut got = Vec::new();
        e.scan_many(Cf::Index, &ranges, &mut |i, k, _| got.push((i, k[1]))).expect("scan_many");
        assert_eq!(got, vec![(0, 0), (0, 1), (1, 2), (2, 5), (3, 60), (3, 61), (4, 99)]);
    }

    fn puts_gets_and_cf_isolation(e: &dyn KvEngine) {
        let mut b = WriteBatch::default();
        b.put(Cf::Index, b"k".to_vec(), b"index".to_vec());
        b.put(Cf::Chunks, b"k".to_vec(), b"chunks".to_vec());
        e.write(&b, true).expect("write");
        assert_eq!(e.get(Cf::Index, b"k").expect("get").as_deref(), Some(&b"index"[..]));
        assert_eq!(e.get(Cf::Chunks, b"k").expect("get").as_deref(), Some(&b"chunks"[..]));
        assert_eq!(e.get(Cf::Log, b"k").expect("get"), None);
    }

    fn scan_order_bounds_and_stop(e: &dyn KvEngine) {
        let mut b = WriteBatch::default();
        for k in [[0u8, 3], [0, 1], [1, 0], [0, 2], [0, 255]] {
            b.put(Cf::Log, k.to_vec(), vec![k[1]]);
        }
        e.write(&b, false).expect("write");
        let got: Vec<_> = collect(e, Cf::Log, &[0, 1], &[0, 255]).into_iter().map(|(k, _)| k).collect();
        assert_eq!(got, vec![vec![0, 1], vec![0, 2], vec![0, 3]]);
        let mut n = 0;
        e.scan(Cf::Log, &[0], &[2], &mut |_, _| {
            n += 1;
            n < 2
        })
        .expect("scan");
        assert_eq!(n, 2, "scan must stop when the visitor says so");
    }

    fn batch_ops_apply_in_order(e: &dyn KvEngine) {
        let mut b = WriteBatch::default();
        for i in 0u8..10 {
            b.put(Cf::Chunks, vec![7, i], vec![i]);
        }
        b.delete_range(Cf::Chunks, vec![7, 2], vec![7, 5]);
        b.delete(Cf::Chunks, vec![7, 9]);
        b.put(Cf::Chunks, vec![7, 3], vec![33]);
        e.write(&b, true).expect("write");
        let got: Vec<_> = collect(e, Cf::Chunks, &[7], &[8]).into_iter().map(|(k, v)| (k[1], v[0])).collect();
        assert_eq!(got, vec![(0, 0), (1, 1), (3, 33), (5, 5), (6, 6), (7, 7), (8, 8)]);
        e.flush().expect("flush");
        assert_eq!(collect(e, Cf::Chunks, &[7], &[8]).len(), 7);
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn mem_engine_passes() {
            super::run_all(&mut || Box::new(super::super::MemEngine::new()));
        }
    }
}

/// Fault injection for tests of the I/O error paths (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use parking_lot::Mutex;

    use std::path::{Path, PathBuf};

    use super::{Cf, CfRange, FrozenVisitor, KvEngine, Op, RangeVisitor, SstWriter, WriteBatch};
    use crate::error::{Error, Result};

    /// The message of an injected failure: what RocksDB reports when the disk is full.
    pub const ENOSPC: &str = "IO error: No space left on device (injected)";

    /// Which calls of one kind fail: after `after` more calls of that kind succeed, every
    /// later one (touching `cf`, when given) fails until [`FaultyEngine::heal`].
    #[derive(Debug, Clone, Copy)]
    struct Rule {
        after: u64,
        cf: Option<Cf>,
    }

    /// A [`KvEngine`] that passes every call to an inner engine except those chosen to
    /// fail (writes or reads, from the n-th call on, optionally only those touching one
    /// column family), which fail with [`ENOSPC`] without touching the inner engine.
    #[derive(Debug)]
    pub struct FaultyEngine {
        inner: Arc<dyn KvEngine>,
        writes: Mutex<Option<Rule>>,
        reads: Mutex<Option<Rule>>,
        failed: AtomicU64,
    }

    impl FaultyEngine {
        /// A wrapper of `inner` that fails nothing yet.
        pub fn new(inner: Arc<dyn KvEngine>) -> Self {
            FaultyEngine {
                inner,
                writes: Mutex::new(None),
                reads: Mutex::new(None),
                failed: AtomicU64::new(0),
            }
        }

        /// The wrapped engine (to check what really reached it).
        pub fn inner(&self) -> &Arc<dyn KvEngine> {
            &self.inner
        }

        /// Lets `after` more writes through, then fails every write (only those with an
        /// operation on `cf`, when given) until [`FaultyEngine::heal`].
        pub fn fail_writes(&self, after: u64, cf: Option<Cf>) {
            *self.writes.lock() = Some(Rule { after, cf });
        }

        /// Lets `after` more reads (gets and scans) through, then fails every read (only
        /// those of `cf`, when given) until [`FaultyEngine::heal`].
        pub fn fail_reads(&self, after: u64, cf: Option<Cf>) {
            *self.reads.lock() = Some(Rule { after, cf });
        }

        /// Clears every fault: all calls succeed again.
        pub fn heal(&self) {
            *self.writes.lock() = None;
            *self.reads.lock() = None;
        }

        /// Calls failed so far.
        pub fn failures(&self) -> u64 {
            self.failed.load(Ordering::Relaxed)
        }

        fn check(&self, rule: &Mutex<Option<Rule>>, touches: impl Fn(Cf) -> bool) -> Result<()> {
            let mut r = rule.lock();
            let Some(rule) = r.as_mut() else { return Ok(()) };
            if rule.cf.is_some_and(|cf| !touches(cf)) {
                return Ok(());
            }
            if rule.after > 0 {
                rule.after -= 1;
                return Ok(());
            }
            self.failed.fetch_add(1, Ordering::Relaxed);
            Err(Error::Kv(ENOSPC.into()))
        }
    }

    fn op_cf(op: &Op) -> Cf {
        match op {
            Op::Put(cf, ..) | Op::Delete(cf, _) | Op::DeleteRange(cf, ..) => *cf,
        }
    }

    impl KvEngine for FaultyEngine {
        fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
            self.check(&self.writes, |cf| batch.ops.iter().any(|op| op_cf(op) == cf))?;
            self.inner.write(batch, sync)
        }

        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.check(&self.reads, |c| c == cf)?;
            self.inner.get(cf, key)
        }

        fn scan(
            &self,
            cf: Cf,
            start: &[u8],
            end: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<()> {
            self.check(&self.reads, |c| c == cf)?;
            self.inner.scan(cf, start, end, f)
        }

        fn scan_many(&self, cf: Cf, ranges: &[(Vec<u8>, Vec<u8>)], f: &mut RangeVisitor<'_>) -> Result<()> {
            self.check(&self.reads, |c| c == cf)?;
            self.inner.scan_many(cf, ranges, f)
        }

        fn scan_frozen(
            &self,
            ranges: &[CfRange],
            taken: &mut dyn FnMut(),
            f: &mut FrozenVisitor<'_>,
        ) -> Result<()> {
            self.check(&self.reads, |c| ranges.iter().any(|(cf, _)| *cf == c))?;
            self.inner.scan_frozen(ranges, taken, f)
        }

        fn sst_writer(&self, cf: Cf, path: &Path) -> Result<Box<dyn SstWriter>> {
            self.check(&self.writes, |c| c == cf)?;
            self.inner.sst_writer(cf, path)
        }

        fn ingest(&self, cf: Cf, files: &[PathBuf]) -> Result<()> {
            self.check(&self.writes, |c| c == cf)?;
            self.inner.ingest(cf, files)
        }

        fn flush(&self) -> Result<()> {
            self.check(&self.writes, |_| true)?;
            self.inner.flush()
        }

        fn quiesce(&self) {
            self.inner.quiesce();
        }
    }

    #[cfg(test)]
    mod tests {
        use std::sync::Arc;

        use super::FaultyEngine;
        use crate::kv::{Cf, KvEngine, MemEngine, WriteBatch};

        #[test]
        fn passes_the_suite_and_fails_what_it_is_told() {
            crate::kv::suite::run_all(&mut || Box::new(FaultyEngine::new(Arc::new(MemEngine::new()))));
            let e = FaultyEngine::new(Arc::new(MemEngine::new()));
            let mut b = WriteBatch::default();
            b.put(Cf::Chunks, b"k".to_vec(), b"v".to_vec());
            let mut log = WriteBatch::default();
            log.put(Cf::Log, b"k".to_vec(), b"v".to_vec());
            e.fail_writes(1, Some(Cf::Chunks));
            e.write(&b, true).expect("first write passes");
            e.write(&log, true).expect("other column families pass");
            assert!(e.write(&b, true).is_err());
            e.fail_reads(0, None);
            assert!(e.get(Cf::Chunks, b"k").is_err());
            assert_eq!(e.failures(), 2);
            e.heal();
            e.write(&b, true).expect("healed");
            assert_eq!(e.get(Cf::Log, b"k").expect("get").as_deref(), Some(&b"v"[..]));
        }
    }
}
