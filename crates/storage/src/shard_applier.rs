//! A TSDB shard as a group's state machine: committed records are applied to the shard's
//! head; a checkpoint is the shard's checkpoint with the Raft state in the same synced
//! batch; a snapshot is the shard's persisted key ranges, streamed.
//!
//! A snapshot leaves as frames of about [`FRAME_BYTES`] read from one consistent view of
//! the shard (checkpoints go on meanwhile) and arrives in files staged under the node's
//! `snapshots/` directory ([`staging_root`]). Installing one is crash-safe: a `COMMIT`
//! file is written (synced) before the shard's state is replaced, and removed after; a
//! node that restarts with a `COMMIT` in a staged directory installs it again (the same
//! files, the same end state: [`recover_staged`]) before its groups start, and removes
//! staged directories without one (a transfer cut short). An install that fails (a full
//! disk) keeps its files and stops the group; the group's restart after the storage error
//! completes it first.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_tsdb::keys::{META_CHECKPOINT_OWNER, ShardId, meta_key};
use strata_tsdb::{Cf, Db, KvEngine, sync_dir};

use strata_raft::codec::{decode, encode, io_err};
use strata_raft::{
    Applier, Exporter, Reopener, Request, Response, Staged, StagedData, StagedDir, Stager, WriteHealth,
};

/// Bytes of entries per snapshot frame.
pub(crate) const FRAME_BYTES: usize = 1 << 20;

/// The file that marks a staged snapshot whose install began.
const COMMIT: &str = "COMMIT";

/// Where a node with data in `data_dir` stages the snapshots it receives.
pub(crate) fn staging_root(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// Applies a shard group's entries to shard `shard` of a replicated [`Db`].
#[derive(Debug, Clone)]
pub struct ShardApplier {
    db: Arc<Db>,
    kv: Arc<dyn KvEngine>,
    shard: ShardId,
    /// Where received snapshots are staged ([`staging_root`]).
    staging: PathBuf,
    /// The node's free-space watch: staging stops below its limit.
    health: Arc<WriteHealth>,
}

impl ShardApplier {
    /// The applier of `shard` of `db` (opened with [`Db::open`] over `kv`), staging the
    /// snapshots it receives under `staging` while `health` finds enough free space.
    pub fn new(
        db: Arc<Db>,
        kv: Arc<dyn KvEngine>,
        shard: ShardId,
        staging: PathBuf,
        health: Arc<WriteHealth>,
    ) -> Self {
        ShardApplier { db, kv, shard, staging, health }
    }
}

fn cf_code(cf: Cf) -> u8 {
    Cf::ALL.iter().position(|&c| c == cf).unwrap_or(0) as u8
}

/// One frame on the wire: (column family, key, value) entries.
type FrameEntries = Vec<(u8, Vec<u8>, Vec<u8>)>;

/// Emits the shard's last checkpoint in frames of about [`FRAME_BYTES`].
fn export(db: &Db, shard: ShardId, emit: &mut dyn FnMut(Vec<u8>) -> bool) -> io::Result<()> {
    let owner = meta_key(shard, META_CHECKPOINT_OWNER);
    let (mut has_owner, mut stopped, mut failed) = (false, false, None);
    let mut frame: FrameEntries = Vec::new();
    let mut bytes = 0;
    db.export_shard(shard, &mut |cf, k, v| {
        has_owner |= cf == Cf::Meta && k == owner.as_slice();
        frame.push((cf_code(cf), k.to_vec(), v.to_vec()));
        bytes += k.len() + v.len() + 8;
        if bytes < FRAME_BYTES {
            return true;
        }
        bytes = 0;
        match encode(&std::mem::take(&mut frame)) {
            Ok(f) => {
                stopped = !emit(f);
                !stopped
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })
    .map_err(io_err)?;
    if let Some(e) = failed {
        return Err(e);
    }
    if stopped {
        return Err(io::Error::other("the receiver of the snapshot went away"));
    }
    if !has_owner {
        return Err(io::Error::other(format!("shard {shard} has no checkpoint to send")));
    }
    if !frame.is_empty() {
        emit(encode(&frame)?);
    }
    Ok(())
}

/// Staged directories get unique names.
static STAGED: AtomicU64 = AtomicU64::new(0);

/// Frames staged between two free-space checks (about 16 MiB).
const FRAMES_PER_SPACE_CHECK: usize = 16;

/// Stages the frames of another replica's export of `shard` in a new directory under `root`.
/// Stops (the staged files are removed) once free space falls below `health`'s limit: a
/// snapshot must not fill the disk the log needs.
fn stage(
    db: &Db,
    shard: ShardId,
    root: &Path,
    health: &WriteHealth,
    frames: &mut dyn Iterator<Item = Vec<u8>>,
) -> io::Result<Staged> {
    let n = STAGED.fetch_add(1, Ordering::Relaxed);
    let dir = Arc::new(StagedDir::new(root.join(format!("shard-{shard}-{}-{n}", std::process::id()))));
    let mut stage = db.stage_shard(shard, dir.path()).map_err(io_err)?;
    let owner = meta_key(shard, META_CHECKPOINT_OWNER);
    let mut raft_state = None;
    for (i, frame) in frames.enumerate() {
        if i % FRAMES_PER_SPACE_CHECK == 0 {
            health.check_space().map_err(|e| {
                io::Error::other(format!("staging the snapshot of shard {shard} stopped: {e}"))
            })?;
        }
        let entries: FrameEntries = decode(&frame)?;
        for (c, k, v) in entries {
            let cf =
                *Cf::ALL.get(c as usize).ok_or_else(|| io::Error::other("bad column family in snapshot"))?;
            stage.put(cf, &k, &v).map_err(io_err)?;
            if cf == Cf::Meta && k == owner {
                raft_state = Some(v);
            }
        }
    }
    stage.finish().map_err(io_err)?;
    let raft_state = raft_state
        .ok_or_else(|| io::Error::other(format!("the snapshot of shard {shard} has no checkpoint")))?;
    Ok(Staged { raft_state, data: StagedData::Dir(dir) })
}

/// Installs the staged snapshot in `dir` into `shard`, crash-safely (see the module note).
fn install(db: &Db, shard: ShardId, dir: &Path) -> io::Result<()> {
    let commit = dir.join(COMMIT);
    std::fs::write(&commit, shard.to_string())?;
    std::fs::File::open(&commit)?.sync_all()?;
    sync_dir(dir)?;
    db.install_shard(shard, dir).map_err(io_err)?;
    std::fs::remove_file(&commit)?;
    sync_dir(dir)
}

/// Completes the installs a crash interrupted (staged directories under `root` with a
/// `COMMIT`) and removes every staged directory. Call after the database opened and
/// before any shard group starts.
pub(crate) fn recover_staged(db: &Db, root: &Path) -> io::Result<()> {
    recover(db, root, None)
}

/// [`recover_staged`] for the directories of `only` (when given) alone: the others may be
/// snapshots other groups are receiving.
fn recover(db: &Db, root: &Path, only: Option<ShardId>) -> io::Result<()> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries {
        let dir = e?.path();
        if let Some(s) = only {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !name.starts_with(&format!("shard-{s}-")) {
                continue;
            }
        }
        if let Ok(shard) = std::fs::read_to_string(dir.join(COMMIT)) {
            let shard: ShardId = shard
                .trim()
                .parse()
                .map_err(|_| io::Error::other(format!("{}: bad COMMIT", dir.display())))?;
            tracing::warn!(shard, dir = %dir.display(), "completing an interrupted snapshot install");
            install(db, shard, &dir)?;
        }
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

impl Applier for ShardApplier {
    fn apply(&mut self, index: u64, request: &Request) -> io::Result<Response> {
        match self.db.apply_record(self.shard, index, &request.0) {
            Ok(o) => Ok(o),
            // the same on every replica: an answer, not a stop
            Err(e @ strata_tsdb::Error::NoSuchShard(_)) => {
                Ok(Response { first_error: Some(e.to_string()), ..Response::default() })
            }
            Err(e) => Err(io_err(e)),
        }
    }

    fn checkpoint(&mut self, raft_state: Vec<u8>) -> io::Result<()> {
        let extra = vec![(meta_key(self.shard, META_CHECKPOINT_OWNER), raft_state)];
        self.db.checkpoint_shard(self.shard, extra).map(|_| ()).map_err(io_err)
    }

    fn checkpointed(&self) -> io::Result<Option<Vec<u8>>> {
        self.kv.get(Cf::Meta, &meta_key(self.shard, META_CHECKPOINT_OWNER)).map_err(io_err)
    }

    fn exporter(&self) -> Exporter {
        let (db, shard) = (self.db.clone(), self.shard);
        Arc::new(move |emit| export(&db, shard, emit))
    }

    fn stager(&self) -> Stager {
        let (db, shard, root, health) =
            (self.db.clone(), self.shard, self.staging.clone(), self.health.clone());
        Arc::new(move |frames| stage(&db, shard, &root, &health, frames))
    }

    fn import(&mut self, snapshot: Staged) -> io::Result<()> {
        let StagedData::Dir(dir) = &snapshot.data else {
            return Err(io::Error::other("a shard snapshot is staged in files"));
        };
        let installed = install(&self.db, self.shard, dir.path());
        if installed.is_err() && dir.path().join(COMMIT).exists() {
            // the shard may be half replaced: the group stops, and its restart (or the
            // node's) completes the install from these files first
            dir.keep();
        }
        installed
    }

    /// A restart after a storage error first completes an install it interrupted.
    fn reopener(&self) -> Reopener {
        let me = self.clone();
        Arc::new(move || {
            recover(&me.db, &me.staging, Some(me.shard))?;
            me.db.reload_shard(me.shard).map_err(io_err)?;
            Ok(Box::new(me.clone()) as Box<dyn Applier>)
        })
    }
}

#[cfg(test)]
mod tests {
    use strata_tsdb::{Clock, DbConfig, MemEngine, SeriesBatch, SystemClock};

    use super::*;

    fn open(kv: &Arc<dyn KvEngine>) -> Arc<Db> {
        Db::open(kv.clone(), DbConfig { shards: 1, ..DbConfig::default() }, Arc::new(SystemClock))
            .expect("db")
    }

    /// A free-space watch that never refuses.
    fn unwatched() -> Arc<WriteHealth> {
        Arc::new(WriteHealth::new(None, 0))
    }

    /// A shard of `series` series (one sample each), checkpointed with Raft state `state`.
    fn filled(series: usize, state: &[u8]) -> (ShardApplier, tempfile::TempDir) {
        let kv: Arc<dyn KvEngine> = Arc::new(MemEngine::new());
        let dir = tempfile::tempdir().expect("dir");
        let mut a = ShardApplier::new(open(&kv), kv, 0, staging_root(dir.path()), unwatched());
        let t = SystemClock.now_ms() - 60_000;
        for (index, chunk) in (0..series).collect::<Vec<_>>().chunks(1000).enumerate() {
            let mut b = SeriesBatch::new(1);
            for i in chunk {
                let v = format!("series-with-a-longish-label-value-{i:08}");
                b.add(&mut vec![("__name__", "m"), ("instance", v.as_str())], [(t, *i as f64)]).expect("add");
            }
            let (_, rec) = b.into_records().remove(0);
            a.apply(index as u64 + 1, &Request(rec)).expect("apply");
        }
        a.checkpoint(state.to_vec()).expect("checkpoint");
        (a, dir)
    }

    fn frames(a: &ShardApplier) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        (a.exporter())(&mut |f| {
            out.push(f);
            true
        })
        .expect("export");
        out
    }

    fn contents(a: &ShardApplier) -> Vec<(Cf, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        a.db.export_shard(a.shard, &mut |cf, k, v| {
            out.push((cf, k.to_vec(), v.to_vec()));
            true
        })
        .expect("export");
        out
    }

    /// A shard larger than a frame leaves in several frames, is staged in files and
    /// installed: the receiver holds exactly the sender's state, its checkpoint included.
    #[test]
    fn a_snapshot_streams_in_frames_and_installs_exactly() {
        let (sender, _d1) = filled(30_000, b"state-7");
        let f = frames(&sender);
        assert!(f.len() >= 2, "{} frames", f.len());
        assert!(f.iter().all(|f| f.len() < FRAME_BYTES + (64 << 10)), "frames stay about a MiB");
        let (mut receiver, d2) = filled(10, b"state-1");
        let staged = (receiver.stager())(&mut f.into_iter()).expect("stage");
        assert_eq!(staged.raft_state, b"state-7");
        receiver.import(staged).expect("import");
        assert_eq!(contents(&receiver), contents(&sender));
        assert_eq!(receiver.checkpointed().expect("checkpointed").as_deref(), Some(&b"state-7"[..]));
        let left: Vec<_> = std::fs::read_dir(staging_root(d2.path())).expect("root").collect();
        assert!(left.is_empty(), "an installed snapshot leaves no staged files: {left:?}");
        // a stream cut short stages nothing that survives: the staged directory goes with it
        let (receiver, d3) = filled(10, b"state-1");
        let mut cut = frames(&sender);
        cut.truncate(1);
        if let Ok(s) = (receiver.stager())(&mut cut.into_iter()) {
            drop(s);
        }
        let left: Vec<_> = std::fs::read_dir(staging_root(d3.path())).expect("root").collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// Staging stops once free space falls below the node's limit, and leaves no files.
    #[test]
    fn staging_stops_below_the_free_space_limit() {
        let (sender, _d1) = filled(3_000, b"state-3");
        let (receiver, d2) = filled(10, b"state-1");
        let before = contents(&receiver);
        let full = Arc::new(WriteHealth::new(Some(d2.path().to_path_buf()), u64::MAX - 2));
        let r = ShardApplier::new(receiver.db.clone(), receiver.kv.clone(), 0, staging_root(d2.path()), full);
        let Err(e) = (r.stager())(&mut frames(&sender).into_iter()) else { panic!("staged on a full disk") };
        let e = e.to_string();
        assert!(e.starts_with("staging the snapshot of shard 0 stopped: storage almost full: "), "{e}");
        assert!(e.contains("below --storage.min-free-bytes="), "{e}");
        let left = std::fs::read_dir(staging_root(d2.path())).map_or(0, |d| d.count());
        assert_eq!(left, 0, "no staged files left");
        assert_eq!(contents(&receiver), before, "the shard untouched");
    }

    /// A crash after the install began (COMMIT written): the restarted node completes it
    /// before its groups start; a staged directory without COMMIT (a transfer cut short) is
    /// removed without touching the shard.
    #[test]
    fn an_install_a_crash_interrupted_is_completed_on_restart() {
        let (sender, _d1) = filled(3_000, b"state-9");
        let (receiver, d2) = filled(10, b"state-1");
        let before = contents(&receiver);
        let staged = (receiver.stager())(&mut frames(&sender).into_iter()).expect("stage");
        let StagedData::Dir(dir) = &staged.data else { panic!("staged in memory") };
        // what the disk held when the node died: the staged files and COMMIT
        let root = staging_root(d2.path());
        let crashed = root.join("crashed");
        std::fs::create_dir_all(&crashed).expect("dir");
        for e in std::fs::read_dir(dir.path()).expect("staged") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, crashed.join(p.file_name().expect("name"))).expect("copy");
        }
        std::fs::write(crashed.join(COMMIT), "0").expect("commit");
        let partial = root.join("partial");
        std::fs::create_dir_all(&partial).expect("dir");
        std::fs::write(partial.join("000000-index.sst"), b"junk").expect("junk");
        drop(staged);
        assert_eq!(contents(&receiver), before, "nothing installed yet");
        // the restart: the database opens over the same engine, then recovery runs
        let db = open(&receiver.kv);
        recover_staged(&db, &root).expect("recover");
        let restarted = ShardApplier::new(db, receiver.kv.clone(), 0, root.clone(), unwatched());
        assert_eq!(contents(&restarted), contents(&sender));
        assert_eq!(restarted.checkpointed().expect("checkpointed").as_deref(), Some(&b"state-9"[..]));
        assert_eq!(std::fs::read_dir(&root).expect("root").count(), 0, "staged directories removed");
    }

    /// An install that fails halfway (the chunks' ingest hits a full disk after the meta and
    /// index were replaced) keeps its staged files; the group's restart completes it.
    #[test]
    fn an_install_that_failed_halfway_is_completed_when_the_group_restarts() {
        use strata_tsdb::kv::testing::FaultyEngine;
        let (sender, _d1) = filled(3_000, b"state-5");
        let faulty = Arc::new(FaultyEngine::new(Arc::new(MemEngine::new())));
        let kv: Arc<dyn KvEngine> = faulty.clone();
        let dir = tempfile::tempdir().expect("dir");
        let root = staging_root(dir.path());
        let mut receiver = ShardApplier::new(open(&kv), kv, 0, root.clone(), unwatched());
        let staged = (receiver.stager())(&mut frames(&sender).into_iter()).expect("stage");
        // the range delete touching chunks passes, the chunks' ingest fails
        faulty.fail_writes(1, Some(Cf::Chunks));
        assert!(receiver.import(staged).is_err());
        assert_ne!(contents(&receiver), contents(&sender));
        assert_eq!(std::fs::read_dir(&root).expect("root").count(), 1, "the staged files are kept");
        faulty.heal();
        let restarted = (receiver.reopener())().expect("reopen");
        assert_eq!(restarted.checkpointed().expect("checkpointed").as_deref(), Some(&b"state-5"[..]));
        assert_eq!(contents(&receiver), contents(&sender));
        assert_eq!(std::fs::read_dir(&root).expect("root").count(), 0);
    }
}
