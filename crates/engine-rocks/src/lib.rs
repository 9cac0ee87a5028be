//! # strata-engine-rocks — RocksDB behind [`KvEngine`]
//!
//! The only crate that links RocksDB. One database per node with one column family per
//! [`Cf`]: the log CF has a large memtable (entries are often truncated before they reach
//! an SST file), chunks and index are LZ4-compressed with ZSTD at the bottommost level; the
//! write-ahead log is ZSTD-compressed. A synced write is a RocksDB write with `sync = true`
//! (WAL fsync).
//!
//! Disk while running is bounded, not only at rest: the write-ahead log's files are kept
//! only until every column family holding writes from them is flushed, so a family written
//! rarely (the Raft state in `meta`) would pin every WAL file since its last flush; the
//! total WAL size is capped (`max_total_wal_bytes`: past it RocksDB flushes the families
//! pinning the oldest file). Log entries that reached SST files before they were truncated
//! stay on disk under range tombstones until a compaction drops them: a maintenance thread
//! compacts the log CF once its SST files exceed `log_compaction_bytes` after a truncation.
//! The same thread flushes every memtable once a whole interval passed without a write, so
//! that an idle node does not keep the WAL files of its last writes (up to the cap), and
//! after the log was truncated (a checkpoint made everything before it durable elsewhere):
//! the memtables then hold dead log entries and the checkpoint's own writes, so flushing
//! them frees their memory and lets go of every WAL file at once, and the write-ahead log
//! holds about one checkpoint interval of writes instead of growing to the cap.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, IngestExternalFileOptions,
    IteratorMode, LogLevel, Options, ReadOptions, SstFileWriter, WriteOptions,
};
use strata_tsdb::kv::{FrozenVisitor, Op, RangeVisitor, SstWriter};
use strata_tsdb::{Cf, CfRange, Error, KvEngine, Result, WriteBatch};

/// Settings of the RocksDB engine.
#[derive(Clone, Debug)]
pub struct RocksConfig {
    /// Shared block cache, in bytes. Default 128 MiB.
    pub block_cache_bytes: usize,
    /// Memtable size of the log column family, in bytes. Default 16 MiB.
    pub log_write_buffer_bytes: usize,
    /// Most bytes of write-ahead-log files kept; past it the column families pinning the
    /// oldest file are flushed (RocksDB's `max_total_wal_size`). Default 8 MiB.
    pub max_total_wal_bytes: u64,
    /// Compress the write-ahead log with ZSTD (RocksDB's `wal_compression`): log records
    /// name series by reference and repeat them every scrape, which compresses well, so
    /// the same `max_total_wal_bytes` holds more and disk while ingesting is smaller.
    /// Default true.
    pub wal_compression: bool,
    /// Compact the log column family when its SST files exceed this many bytes and entries
    /// were truncated since its last compaction (reclaims the space of truncated entries
    /// that reached SST files). 0 = never. Default 1 MiB.
    pub log_compaction_bytes: u64,
    /// How often the maintenance thread checks the log column family, and how long without
    /// a write makes it flush the memtables (freeing the WAL files); a truncation of the log
    /// is followed by a flush within it. Default 10 s.
    pub maintenance_interval: Duration,
}

impl Default for RocksConfig {
    fn default() -> Self {
        RocksConfig {
            block_cache_bytes: 128 << 20,
            log_write_buffer_bytes: 16 << 20,
            max_total_wal_bytes: 8 << 20,
            wal_compression: true,
            log_compaction_bytes: 1 << 20,
            maintenance_interval: Duration::from_secs(10),
        }
    }
}

/// A RocksDB database holding every column family of [`Cf::ALL`].
pub struct RocksEngine {
    db: Arc<rocksdb::DB>,
    /// Truncations of the log so far (the maintenance thread flushes after each and
    /// compacts the log once its SST files are large).
    truncations: Arc<AtomicU64>,
    /// Writes so far (the maintenance thread flushes when it stops moving).
    writes: Arc<AtomicU64>,
    /// [`RocksConfig::max_total_wal_bytes`], for the gauges.
    max_wal_bytes: u64,
    /// Dropping it stops the maintenance thread.
    stop: Option<Sender<()>>,
    maintenance: Option<JoinHandle<()>>,
    /// The directory's lock (`STRATA.LOCK`), held while the database is open: declared
    /// last, released after the database closed.
    _lock: std::fs::File,
}

/// Name of the lock file in the data directory.
const LOCK_FILE: &str = "STRATA.LOCK";

/// Takes the directory's lock: [`Error::Busy`] while another engine holds it.
fn lock(path: &Path) -> Result<std::fs::File> {
    let io = |e: std::io::Error| Error::Kv(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(path).map_err(io)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join(LOCK_FILE))
        .map_err(io)?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(Error::Busy(format!("{} is open in another engine", path.display())))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

impl Drop for RocksEngine {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.maintenance.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine").field("path", &self.db.path()).finish()
    }
}

fn err(e: rocksdb::Error) -> Error {
    Error::Kv(e.into_string())
}

/// A column family's options; `cache` and `cfg` are left out for the options of files
/// written outside the database (the table format and compression are the same).
fn cf_options(cf: Cf, cfg: Option<&RocksConfig>, cache: Option<&Cache>) -> Options {
    let mut o = Options::default();
    let mut t = BlockBasedOptions::default();
    if let Some(cache) = cache {
        t.set_block_cache(cache);
    }
    t.set_bloom_filter(10.0, false);
    match cf {
        Cf::Log => {
            // entries reach SST files only when they outlive the memtable (a full
            // write-ahead log flushes it): LZ4 halves what they take there
            o.set_compression_type(DBCompressionType::Lz4);
            if let Some(cfg) = cfg {
                o.set_write_buffer_size(cfg.log_write_buffer_bytes);
            }
        }
        Cf::Chunks | Cf::Index => {
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_bottommost_compression_type(DBCompressionType::Zstd);
            t.set_block_size(16 << 10);
        }
        Cf::Meta => {}
    }
    o.set_block_based_table_factory(&t);
    o
}

impl RocksEngine {
    /// Opens (creating if needed) the database at `path`; [`Error::Busy`] while another
    /// engine has it open.
    pub fn open(path: &Path, cfg: &RocksConfig) -> Result<Self> {
        let lock = lock(path)?;
        // no fallocate: RocksDB reserves blocks ahead of what it writes (8 MiB for each
        // write-ahead-log file at the default cap, 4 MiB for the manifest), which `du` and a
        // full disk count although `ls` does not (the crate has no setter for it)
        let mut o = Options::default().get_options_from_string("allow_fallocate=false").map_err(err)?;
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_log_level(LogLevel::Warn);
        o.set_keep_log_file_num(2);
        o.set_max_log_file_size(1 << 20);
        o.set_max_background_jobs(2);
        o.set_bytes_per_sync(1 << 20);
        o.set_max_total_wal_size(cfg.max_total_wal_bytes);
        if cfg.wal_compression {
            o.set_wal_compression_type(DBCompressionType::Zstd);
        }
        let cache = Cache::new_lru_cache(cfg.block_cache_bytes);
        let cfs = Cf::ALL
            .iter()
            .map(|&cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(cf, Some(cfg), Some(&cache))));
        let db = Arc::new(rocksdb::DB::open_cf_descriptors(&o, path, cfs).map_err(err)?);
        let truncations = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (weak, truncated, written) = (Arc::downgrade(&db), truncations.clone(), writes.clone());
        let (limit, every) = (cfg.log_compaction_bytes, cfg.maintenance_interval);
        let maintenance = std::thread::Builder::new()
            .name("rocks-maintenance".into())
            .spawn(move || {
                // writes and truncations as of the last look, the last flush, the last compaction
                let (mut seen, mut flushed, mut compacted) = (0, 0, 0);
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    let now = written.load(Ordering::Relaxed);
                    let cut = truncated.load(Ordering::Relaxed);
                    if cut != flushed || now == seen {
                        flush_memtables(&weak);
                        flushed = cut;
                    }
                    seen = now;
                    if limit > 0 && cut != compacted && compact_large_log(&weak, limit) {
                        compacted = cut;
                    }
                }
            })
            .map_err(|e| Error::Kv(format!("starting the maintenance thread: {e}")))?;
        Ok(RocksEngine {
            db,
            truncations,
            writes,
            max_wal_bytes: cfg.max_total_wal_bytes,
            stop: Some(tx),
            maintenance: Some(maintenance),
            _lock: lock,
        })
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(cf.name()).ok_or_else(|| Error::Kv(format!("missing column family {}", cf.name())))
    }
}

/// Flushes every column family whose memtable holds entries: called when no write came
/// for a whole maintenance interval or after the log was truncated, it lets RocksDB delete
/// the WAL files of the writes before (kept, up to `max_total_wal_bytes`, while any memtable
/// holds data from them) and frees the memtables.
fn flush_memtables(db: &Weak<rocksdb::DB>) {
    let Some(db) = db.upgrade() else { return };
    for cf in Cf::ALL {
        let Some(h) = db.cf_handle(cf.name()) else { continue };
        let n = db.property_int_value_cf(&h, rocksdb::properties::NUM_ENTRIES_ACTIVE_MEM_TABLE);
        if n.ok().flatten().is_some_and(|n| n > 0)
            && let Err(e) = db.flush_cf(&h)
        {
            tracing::warn!(cf = cf.name(), error = %e, "flushing an idle memtable failed");
        }
    }
}

/// Compacts the log column family when its SST files hold more than `limit` bytes (the
/// caller asks only when entries were truncated since its last compaction); returns whether
/// it did. Truncated entries under range tombstones take disk until a compaction drops
/// them, and the live log is small (what checkpoints have not covered yet), so compacting
/// the whole family costs little.
fn compact_large_log(db: &Weak<rocksdb::DB>, limit: u64) -> bool {
    let Some(db) = db.upgrade() else { return false };
    let Some(cf) = db.cf_handle(Cf::Log.name()) else { return false };
    let sst = db.property_int_value_cf(&cf, rocksdb::properties::TOTAL_SST_FILES_SIZE).ok().flatten();
    if sst.is_none_or(|b| b <= limit) {
        return false;
    }
    let started = std::time::Instant::now();
    db.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
    let after = db.property_int_value_cf(&cf, rocksdb::properties::TOTAL_SST_FILES_SIZE).ok().flatten();
    tracing::debug!(before = ?sst, after = ?after, took = ?started.elapsed(), "compacted the truncated log");
    true
}

/// Bytes of the write-ahead log: the `*.log` files of the database directory `dir`.
fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// A RocksDB error about the file at `path`.
fn file_err(path: &Path, e: rocksdb::Error) -> Error {
    Error::Kv(format!("{}: {}", path.display(), e.into_string()))
}

/// The options files for `cf` are written with (one set per process: a writer borrows
/// them for as long as it lives).
fn sst_options(cf: Cf) -> &'static Options {
    static OPTIONS: OnceLock<[Options; 4]> = OnceLock::new();
    let all = OPTIONS.get_or_init(|| Cf::ALL.map(|cf| cf_options(cf, None, None)));
    &all[Cf::ALL.iter().position(|&c| c == cf).unwrap_or(0)]
}

/// An SST file being written for [`KvEngine::ingest`].
struct RocksSst {
    writer: SstFileWriter<'static>,
    path: PathBuf,
    entries: u64,
    /// Bytes of keys and values put (the writer's own size counts only finished blocks).
    bytes: u64,
}

impl SstWriter for RocksSst {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.writer.put(key, value).map_err(|e| file_err(&self.path, e))?;
        self.entries += 1;
        self.bytes += (key.len() + value.len()) as u64;
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        if self.entries == 0 {
            return Err(Error::Kv(format!("{}: a file needs at least one entry", self.path.display())));
        }
        // RocksDB syncs the file before it returns
        self.writer.finish().map_err(|e| file_err(&self.path, e))
    }
}

/// Keys `scan_many` steps over before it seeks to the next range instead.
const SEEK_AFTER_STEPS: usize = 16;

impl KvEngine for RocksEngine {
    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        let mut truncates = false;
        for op in &batch.ops {
            match op {
                Op::Put(cf, k, v) => wb.put_cf(self.cf(*cf)?, k, v),
                Op::Delete(cf, k) => wb.delete_cf(self.cf(*cf)?, k),
                Op::DeleteRange(cf, s, e) => {
                    truncates |= *cf == Cf::Log;
                    wb.delete_range_cf(self.cf(*cf)?, s, e)
                }
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.db.write_opt(wb, &wo).map_err(err)?;
        // counted once written, so that the flush it calls for finds the truncation there
        if truncates {
            self.truncations.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf)?, key).map_err(err)
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(end.to_vec());
        let it =
            self.db.iterator_cf_opt(self.cf(cf)?, ro, IteratorMode::From(start, rocksdb::Direction::Forward));
        for item in it {
            let (k, v) = item.map_err(err)?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn scan_many(&self, cf: Cf, ranges: &[(Vec<u8>, Vec<u8>)], f: &mut RangeVisitor<'_>) -> Result<()> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf)?);
        let mut prev_end: Option<&[u8]> = None;
        for (i, (start, end)) in ranges.iter().enumerate() {
            // After a range the iterator sits on the first key at or past its end. When the
            // next range starts at or after that end (ranges ascending, as reads of
            // neighbouring series are), a few steps forward usually reach it: a seek costs
            // far more (it repositions every level of the LSM tree).
            let mut positioned = false;
            if prev_end.is_some_and(|p| p <= start.as_slice()) {
                for _ in 0..SEEK_AFTER_STEPS {
                    match it.key() {
                        Some(k) if k < start.as_slice() => it.next(),
                        Some(_) => {
                            positioned = true;
                            break;
                        }
                        None => break,
                    }
                }
            }
            if !positioned {
                it.seek(start);
            }
            prev_end = Some(end.as_slice());
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                if k >= end.as_slice() {
                    break;
                }
                f(i, k, v);
                it.next();
            }
            it.status().map_err(err)?;
        }
        Ok(())
    }

    fn scan_frozen(
        &self,
        ranges: &[CfRange],
        taken: &mut dyn FnMut(),
        f: &mut FrozenVisitor<'_>,
    ) -> Result<()> {
        let snapshot = self.db.snapshot();
        taken();
        for (cf, (start, end)) in ranges {
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(end.clone());
            // a bulk read: keep the cache for the queries
            ro.fill_cache(false);
            let mode = IteratorMode::From(start, rocksdb::Direction::Forward);
            for item in snapshot.iterator_cf_opt(self.cf(*cf)?, ro, mode) {
                let (k, v) = item.map_err(err)?;
                if !f(*cf, &k, &v) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn sst_writer(&self, cf: Cf, path: &Path) -> Result<Box<dyn SstWriter>> {
        let writer = SstFileWriter::create(sst_options(cf));
        writer.open(path).map_err(|e| file_err(path, e))?;
        Ok(Box::new(RocksSst { writer, path: path.to_path_buf(), entries: 0, bytes: 0 }))
    }

    fn ingest(&self, cf: Cf, files: &[PathBuf]) -> Result<()> {
        let mut o = IngestExternalFileOptions::default();
        // linked into the database (same file system), not copied
        o.set_move_files(true);
        self.db.ingest_external_file_cf_opts(self.cf(cf)?, &o, files.to_vec()).map_err(err)
    }

    fn quiesce(&self) {
        self.db.cancel_all_background_work(true);
    }

    fn gauges(&self) -> Vec<(&'static str, &'static str, u64)> {
        let per_cf = |p: &rocksdb::properties::PropName| -> u64 {
            Cf::ALL
                .iter()
                .filter_map(|cf| self.db.cf_handle(cf.name()))
                .filter_map(|h| self.db.property_int_value_cf(&h, p).ok().flatten())
                .sum()
        };
        let wal = wal_bytes(self.db.path());
        vec![
            (
                "strata_storage_max_wal_bytes",
                "Limit: most bytes of RocksDB write-ahead-log files kept; past it the column families pinning the oldest are flushed (storage.max-wal-bytes).",
                self.max_wal_bytes,
            ),
            ("strata_storage_wal_bytes", "Bytes of RocksDB write-ahead-log files on disk now.", wal),
            (
                "strata_storage_sst_bytes",
                "Bytes of RocksDB table files on disk now, every column family.",
                per_cf(rocksdb::properties::TOTAL_SST_FILES_SIZE),
            ),
            (
                "strata_storage_memtable_bytes",
                "Bytes of RocksDB memtables now, every column family.",
                per_cf(rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES),
            ),
        ]
    }

    fn flush(&self) -> Result<()> {
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)?).map_err(err)?;
        }
        // truncated log entries and replaced chunk segments: reclaim their space now
        for cf in [Cf::Log, Cf::Chunks] {
            self.db.compact_range_cf(self.cf(cf)?, None::<&[u8]>, None::<&[u8]>);
        }
        self.db.flush_wal(true).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_engine_suite() {
        let dirs = std::cell::RefCell::new(Vec::new());
        strata_tsdb::kv::suite::run_all(&mut || {
            let d = tempfile::tempdir().unwrap();
            let e = RocksEngine::open(d.path(), &RocksConfig::default()).unwrap();
            dirs.borrow_mut().push(d);
            Box::new(e)
        });
    }

    fn log_sst_bytes(e: &RocksEngine) -> u64 {
        let cf = e.cf(Cf::Log).unwrap();
        e.db.property_int_value_cf(cf, rocksdb::properties::TOTAL_SST_FILES_SIZE).unwrap().unwrap()
    }

    /// `n` bytes that do not compress (the log CF and the WAL are compressed).
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn truncated_log_entries_in_sst_files_are_compacted_away() {
        let d = tempfile::tempdir().unwrap();
        let cfg = RocksConfig {
            log_compaction_bytes: 64 << 10,
            maintenance_interval: Duration::from_millis(20),
            ..RocksConfig::default()
        };
        let e = RocksEngine::open(d.path(), &cfg).unwrap();
        let mut b = WriteBatch::default();
        for i in 0..2_000u32 {
            b.put(Cf::Log, i.to_be_bytes().to_vec(), noise(1000, u64::from(i)));
        }
        e.write(&b, true).unwrap();
        e.db.flush_cf(e.cf(Cf::Log).unwrap()).unwrap();
        let before = log_sst_bytes(&e);
        assert!(before > 1 << 20, "{before}");
        // nothing truncated: nothing compacted
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(log_sst_bytes(&e), before);
        let mut b = WriteBatch::default();
        b.delete_range(Cf::Log, 0u32.to_be_bytes().to_vec(), 1_900u32.to_be_bytes().to_vec());
        e.write(&b, true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log_sst_bytes(&e) > before / 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "not compacted: {} of {before} bytes",
                log_sst_bytes(&e)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // what was not truncated is still there
        assert_eq!(e.get(Cf::Log, &1_950u32.to_be_bytes()).unwrap(), Some(noise(1000, 1_950)));
        assert_eq!(e.get(Cf::Log, &5u32.to_be_bytes()).unwrap(), None);
    }

    #[test]
    fn an_idle_engine_flushes_its_memtables_and_drops_its_wal_files() {
        let d = tempfile::tempdir().unwrap();
        let cfg = RocksConfig { maintenance_interval: Duration::from_millis(300), ..RocksConfig::default() };
        let e = RocksEngine::open(d.path(), &cfg).unwrap();
        // writes that keep coming are not flushed
        let started = std::time::Instant::now();
        let mut i = 0u32;
        while started.elapsed() < Duration::from_millis(1_000) {
            let mut b = WriteBatch::default();
            for cf in [Cf::Meta, Cf::Log] {
                b.put(cf, i.to_be_bytes().to_vec(), noise(10_000, u64::from(i)));
            }
            e.write(&b, false).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        let written = wal_bytes(d.path());
        assert!(written > 200 << 10, "{written} bytes of WAL");
        // the gauges say where the bytes are
        let gauge = |name: &str| e.gauges().into_iter().find(|g| g.0 == name).map(|g| g.2);
        assert_eq!(gauge("strata_storage_max_wal_bytes"), Some(8 << 20));
        assert!(gauge("strata_storage_wal_bytes").is_some_and(|b| b > 0 && b <= written + (64 << 10)));
        assert!(gauge("strata_storage_memtable_bytes").is_some_and(|b| b > 0));
        // a whole interval without a write: flushed, the WAL files go
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while wal_bytes(d.path()) > 64 << 10 {
            assert!(std::time::Instant::now() < deadline, "WAL still {} bytes", wal_bytes(d.path()));
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(e.get(Cf::Meta, &0u32.to_be_bytes()).unwrap(), Some(noise(10_000, 0)));
    }

    #[test]
    fn a_truncation_of_the_log_is_followed_by_a_flush_while_writes_go_on() {
        let d = tempfile::tempdir().unwrap();
        let cfg = RocksConfig { maintenance_interval: Duration::from_millis(100), ..RocksConfig::default() };
        let e = RocksEngine::open(d.path(), &cfg).unwrap();
        let chunks_in_memtable = || {
            let n = e.db.property_int_value_cf(
                e.cf(Cf::Chunks).unwrap(),
                rocksdb::properties::NUM_ENTRIES_ACTIVE_MEM_TABLE,
            );
            n.unwrap().unwrap()
        };
        let mut b = WriteBatch::default();
        b.put(Cf::Chunks, b"c".to_vec(), noise(10_000, 1));
        b.put(Cf::Log, b"l".to_vec(), noise(10_000, 2));
        e.write(&b, true).unwrap();
        // a writer that never pauses for a whole interval: no idle flush
        let mut i = 0u32;
        let mut write_for = |d: Duration, truncate: bool| {
            let started = std::time::Instant::now();
            while started.elapsed() < d {
                let mut b = WriteBatch::default();
                b.put(Cf::Meta, i.to_be_bytes().to_vec(), noise(100, u64::from(i)));
                if truncate && i.is_multiple_of(10) {
                    b.delete_range(Cf::Log, b"a".to_vec(), b"m".to_vec());
                }
                e.write(&b, false).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        write_for(Duration::from_millis(600), false);
        assert_eq!(chunks_in_memtable(), 1, "flushed without a truncation");
        write_for(Duration::from_millis(600), true);
        assert_eq!(chunks_in_memtable(), 0, "not flushed after a truncation");
        assert_eq!(e.get(Cf::Chunks, b"c").unwrap(), Some(noise(10_000, 1)));
        assert_eq!(e.get(Cf::Log, b"l").unwrap(), None);
    }

    #[test]
    fn the_disk_holds_what_was_written_and_no_reserve() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let e = RocksEngine::open(d.path(), &RocksConfig::default()).unwrap();
        let mut b = WriteBatch::default();
        b.put(Cf::Log, b"k".to_vec(), noise(100_000, 7));
        e.write(&b, true).unwrap();
        // what `ls` shows against what the file system gives the files (`du`)
        let (mut listed, mut allocated) = (0, 0);
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let m = f.metadata().unwrap();
            listed += m.len();
            allocated += m.blocks() * 512;
        }
        assert!(listed > 100_000, "{listed} bytes listed");
        // a few blocks per file of rounding, not megabytes reserved ahead
        assert!(allocated < listed + (256 << 10), "{allocated} bytes allocated for {listed} listed");
    }

    #[test]
    fn data_survives_reopen() {
        let d = tempfile::tempdir().unwrap();
        {
            let e = RocksEngine::open(d.path(), &RocksConfig::default()).unwrap();
            let mut b = WriteBatch::default();
            b.put(Cf::Log, b"k".to_vec(), b"v".to_vec());
            e.write(&b, true).unwrap();
        }
        let e = RocksEngine::open(d.path(), &RocksConfig::default()).unwrap();
        assert_eq!(e.get(Cf::Log, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
