//! # strata-engine-rocks — RocksDB behind [`KvEngine`]
//!
//! The only crate that links RocksDB. One database per node with one column family per
//! [`Cf`]: the log CF is uncompressed with a large memtable (entries are usually truncated
//! before they reach an SST file), chunks and index are LZ4-compressed with ZSTD at the
//! bottommost level. A synced write is a RocksDB write with `sync = true` (WAL fsync).

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, IteratorMode, LogLevel, Options,
    ReadOptions, WriteOptions,
};
use strata_tsdb::kv::{Op, RangeVisitor};
use strata_tsdb::{Cf, Error, KvEngine, Result, WriteBatch};

/// Settings of the RocksDB engine.
#[derive(Clone, Debug)]
pub struct RocksConfig {
    /// Shared block cache, in bytes. Default 128 MiB.
    pub block_cache_bytes: usize,
    /// Memtable size of the log column family, in bytes. Default 64 MiB.
    pub log_write_buffer_bytes: usize,
}

impl Default for RocksConfig {
    fn default() -> Self {
        RocksConfig { block_cache_bytes: 128 << 20, log_write_buffer_bytes: 64 << 20 }
    }
}

/// A RocksDB database holding every column family of [`Cf::ALL`].
pub struct RocksEngine {
    db: rocksdb::DB,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine").field("path", &self.db.path()).finish()
    }
}

fn err(e: rocksdb::Error) -> Error {
    Error::Kv(e.into_string())
}

fn cf_options(cf: Cf, cfg: &RocksConfig, cache: &Cache) -> Options {
    let mut o = Options::default();
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(cache);
    t.set_bloom_filter(10.0, false);
    match cf {
        Cf::Log => {
            o.set_compression_type(DBCompressionType::None);
            o.set_write_buffer_size(cfg.log_write_buffer_bytes);
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
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, cfg: &RocksConfig) -> Result<Self> {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_log_level(LogLevel::Warn);
        o.set_keep_log_file_num(2);
        o.set_max_log_file_size(1 << 20);
        o.set_max_background_jobs(2);
        o.set_bytes_per_sync(1 << 20);
        let cache = Cache::new_lru_cache(cfg.block_cache_bytes);
        let cfs =
            Cf::ALL.iter().map(|&cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(cf, cfg, &cache)));
        let db = rocksdb::DB::open_cf_descriptors(&o, path, cfs).map_err(err)?;
        Ok(RocksEngine { db })
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(cf.name()).ok_or_else(|| Error::Kv(format!("missing column family {}", cf.name())))
    }
}

/// Keys `scan_many` steps over before it seeks to the next range instead.
const SEEK_AFTER_STEPS: usize = 16;

impl KvEngine for RocksEngine {
    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                Op::Put(cf, k, v) => wb.put_cf(self.cf(*cf)?, k, v),
                Op::Delete(cf, k) => wb.delete_cf(self.cf(*cf)?, k),
                Op::DeleteRange(cf, s, e) => wb.delete_range_cf(self.cf(*cf)?, s, e),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(wb, &wo).map_err(err)
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

    fn quiesce(&self) {
        self.db.cancel_all_background_work(true);
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
