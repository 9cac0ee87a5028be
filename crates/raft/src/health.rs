//! Whether the node's storage takes writes: a node whose disk failed a write (ENOSPC, an
//! I/O error) or whose free space fell below its limit stops acknowledging writes (503 to
//! writers), keeps serving reads, and takes writes again by itself once a probe write
//! succeeds and space is back — as Prometheus carries on once space is freed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use strata_tsdb::keys::meta_key;
use strata_tsdb::{Cf, KvEngine, WriteBatch};

/// Where the probe writes: a node-level meta key (shard `u32::MAX`, a tag no shard uses).
const PROBE_GROUP: u32 = u32::MAX;
const PROBE_TAG: u8 = 0x40;

/// What a node checks before it acknowledges a write.
#[derive(Debug)]
pub struct WriteHealth {
    /// The data directory whose filesystem's free space is watched (`None`: not watched).
    dir: Option<PathBuf>,
    /// Writes are refused while fewer bytes than this are free (0 = no limit).
    min_free_bytes: u64,
    /// The last storage write error, until a probe write succeeds.
    write_error: Mutex<Option<String>>,
    /// Bytes free at the last check (`u64::MAX` before one, or when not watched).
    free_bytes: AtomicU64,
}

impl WriteHealth {
    /// Watches the filesystem of `dir` (when given) for at least `min_free_bytes` free bytes.
    pub fn new(dir: Option<PathBuf>, min_free_bytes: u64) -> Self {
        let h = WriteHealth {
            dir,
            min_free_bytes,
            write_error: Mutex::new(None),
            free_bytes: AtomicU64::new(u64::MAX),
        };
        h.measure();
        h
    }

    /// Why writes are refused now, in the words a writer gets with its 503; `None` when
    /// they are taken.
    pub fn refusal(&self) -> Option<String> {
        if let Some(e) = self.write_error.lock().as_ref() {
            return Some(format!("storage write failed: {e}; not accepting writes until it clears"));
        }
        let free = self.free_bytes.load(Ordering::Relaxed);
        (free < self.min_free_bytes).then(|| {
            format!(
                "storage almost full: {free} bytes free, below --storage.min-free-bytes={}; not accepting \
                 writes until space is freed",
                self.min_free_bytes
            )
        })
    }

    /// Measures free space now: an error, in the words of [`WriteHealth::refusal`], when it
    /// is below the limit. For writers of bulk data that the log does not see (a
    /// snapshot being staged).
    pub fn check_space(&self) -> Result<(), String> {
        self.measure();
        let free = self.free_bytes.load(Ordering::Relaxed);
        if free < self.min_free_bytes {
            return Err(self.refusal().unwrap_or_default());
        }
        Ok(())
    }

    /// True when a storage write failed and no probe succeeded since.
    pub fn write_failed(&self) -> bool {
        self.write_error.lock().is_some()
    }

    /// Bytes free on the data directory's filesystem at the last check (`None`: not watched).
    pub fn free_bytes(&self) -> Option<u64> {
        Some(self.free_bytes.load(Ordering::Relaxed)).filter(|&b| b != u64::MAX)
    }

    /// The free-space limit, in bytes (0 = none).
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_bytes
    }

    /// Records a failed storage write: writes are refused until [`WriteHealth::probe`] succeeds.
    pub fn record_failure(&self, error: &str) {
        let mut e = self.write_error.lock();
        if e.is_none() {
            tracing::error!(error, "storage write failed: refusing writes until a probe write succeeds");
        }
        *e = Some(error.to_owned());
    }

    fn measure(&self) {
        let Some(dir) = &self.dir else { return };
        match rustix::fs::statvfs(dir) {
            Ok(s) => {
                let free = s.f_bavail.saturating_mul(s.f_frsize);
                self.free_bytes.store(free.min(u64::MAX - 1), Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot measure free space"),
        }
    }

    /// Measures free space and, after a failed write, tries a small synced write to `kv`:
    /// when it succeeds the failure is cleared. Call every second or so.
    pub fn probe(&self, kv: &dyn KvEngine) {
        self.measure();
        if !self.write_failed() {
            return;
        }
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, meta_key(PROBE_GROUP, PROBE_TAG), Vec::new());
        match kv.write(&b, true) {
            Ok(()) => {
                tracing::info!("storage writes succeed again: accepting writes");
                *self.write_error.lock() = None;
            }
            Err(e) => *self.write_error.lock() = Some(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strata_tsdb::MemEngine;
    use strata_tsdb::kv::testing::{ENOSPC, FaultyEngine};

    use super::WriteHealth;

    #[test]
    fn a_failure_refuses_until_a_probe_succeeds() {
        let kv = FaultyEngine::new(Arc::new(MemEngine::new()));
        let h = WriteHealth::new(None, 0);
        assert_eq!(h.refusal(), None);
        h.record_failure(ENOSPC);
        kv.fail_writes(0, None);
        h.probe(&kv);
        let why = h.refusal().expect("refused");
        assert!(why.starts_with("storage write failed: "), "{why}");
        assert!(why.contains("No space left on device"), "{why}");
        assert!(why.ends_with("not accepting writes until it clears"), "{why}");
        kv.heal();
        h.probe(&kv);
        assert_eq!(h.refusal(), None);
    }

    #[test]
    fn too_little_free_space_refuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = WriteHealth::new(Some(dir.path().to_owned()), u64::MAX - 2);
        assert!(h.free_bytes().is_some());
        let why = h.refusal().expect("refused");
        assert!(why.contains("below --storage.min-free-bytes="), "{why}");
        let h = WriteHealth::new(Some(dir.path().to_owned()), 1);
        assert_eq!(h.refusal(), None);
    }
}
