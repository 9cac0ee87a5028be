//! A shard's persisted state received from another replica, staged in files before it
//! replaces the shard's own ([`Db::install_shard`](crate::Db::install_shard)): entries
//! arrive in the order [`Db::export_shard`](crate::Db::export_shard) visits them (the
//! shard's column families in turn, keys ascending), are checked like anything read from
//! the network, and go to ingestible files of at most [`STAGE_FILE_BYTES`] each, so memory
//! stays bounded whatever the shard's size.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::keys::{self, ShardId};
use crate::kv::{Cf, CfRange, KvEngine, SstWriter, io_error};

/// Bytes after which a staged file is closed and the next one started.
pub const STAGE_FILE_BYTES: u64 = 128 << 20;

/// The files of one shard's state being received.
pub struct ShardStage {
    kv: Arc<dyn KvEngine>,
    shard: ShardId,
    dir: PathBuf,
    ranges: Vec<CfRange>,
    /// Which of `ranges` the last entry fell in, and its key.
    last: Option<(usize, Vec<u8>)>,
    file: Option<Box<dyn SstWriter>>,
    files: u32,
    entries: u64,
}

impl std::fmt::Debug for ShardStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStage")
            .field("shard", &self.shard)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Makes `dir`'s entries (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn file_name(n: u32, cf: Cf) -> String {
    format!("{n:06}-{}.sst", cf.name())
}

impl ShardStage {
    pub(crate) fn new(
        kv: Arc<dyn KvEngine>,
        shard: ShardId,
        ranges: Vec<CfRange>,
        dir: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        Ok(ShardStage {
            kv,
            shard,
            dir: dir.to_path_buf(),
            ranges,
            last: None,
            file: None,
            files: 0,
            entries: 0,
        })
    }

    /// Adds one entry. It must lie in the shard, be well formed, and come after the entry
    /// before it (in the shard's order of column families, then by key).
    pub fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) -> Result<()> {
        let corrupt = |what: String| Error::Corrupt { shard: self.shard, what };
        let Some(at) =
            self.ranges.iter().position(|(c, (s, e))| *c == cf && key >= s.as_slice() && key < e.as_slice())
        else {
            return Err(corrupt(format!("staged {cf:?} key {key:02x?} is outside the shard")));
        };
        if !keys::well_formed(cf, key) {
            return Err(corrupt(format!("staged {cf:?} key {key:02x?} is malformed")));
        }
        let next_file = match &self.last {
            Some((p, last)) if at < *p || (at == *p && key <= last.as_slice()) => {
                return Err(corrupt(format!("staged {cf:?} key {key:02x?} is out of order")));
            }
            Some((p, _)) => at != *p || self.file.as_ref().is_some_and(|f| f.bytes() >= STAGE_FILE_BYTES),
            None => true,
        };
        if next_file {
            self.close()?;
            self.file = Some(self.kv.sst_writer(cf, &self.dir.join(file_name(self.files, cf)))?);
            self.files += 1;
        }
        if let Some(f) = self.file.as_mut() {
            f.put(key, value)?;
        }
        self.last = Some((at, key.to_vec()));
        self.entries += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        match self.file.take() {
            Some(f) => f.finish(),
            None => Ok(()),
        }
    }

    /// Completes the stage: every file durable, the directory too. Returns the number of
    /// entries staged.
    pub fn finish(mut self) -> Result<u64> {
        self.close()?;
        sync_dir(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        Ok(self.entries)
    }
}

/// The staged files in `dir`, in the order they were written, with their column family.
pub(crate) fn staged_files(dir: &Path) -> Result<Vec<(Cf, PathBuf)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let path = e.map_err(|e| io_error(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(stem) = name.strip_suffix(".sst") else { continue };
        let Some((n, cf)) = stem.split_once('-') else { continue };
        let Some(cf) = Cf::ALL.into_iter().find(|c| c.name() == cf) else { continue };
        if n.parse::<u32>().is_ok() {
            files.push((name.to_string(), cf, path));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, cf, p)| (cf, p)).collect())
}

/// Hard links of `files` beside them (`.ingest`), for an ingest that consumes what it is
/// given: the staged files stay, so an install interrupted by a crash can be done again.
pub(crate) fn ingest_links(files: &[(Cf, PathBuf)]) -> Result<Vec<(Cf, PathBuf)>> {
    let mut links = Vec::with_capacity(files.len());
    for (cf, p) in files {
        let link = p.with_extension("ingest");
        match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&link, e)),
        }
        std::fs::hard_link(p, &link).map_err(|e| io_error(&link, e))?;
        links.push((*cf, link));
    }
    Ok(links)
}
