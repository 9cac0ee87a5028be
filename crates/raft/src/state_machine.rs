//! The state machine of a group: committed entries applied in log order to an [`Applier`]
//! (for a shard, its in-memory head), with snapshots that are the applier's checkpoints.
//!
//! openraft's "transient state machine": the applier keeps recent writes in memory; a
//! snapshot makes them durable (a checkpoint, carrying the Raft state — applied log id and
//! membership — in the same atomic write), after which openraft may purge the log. After a
//! restart the applier holds its last checkpoint and openraft re-applies the committed
//! entries after it. A snapshot sent to another replica is the last checkpoint, exported
//! as it is sent (frames from one consistent view) and staged by the receiver
//! ([`Stager`]) before [`Applier::import`] replaces its state.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::{Request, Response, TypeConfig};

/// Emits the applier's last checkpoint as data frames of about a MiB each (blocking code,
/// run off the async workers): consistent (state and Raft state together); `emit` returns
/// `false` when nobody wants more frames (the export stops).
pub type Exporter = Arc<dyn Fn(&mut dyn FnMut(Vec<u8>) -> bool) -> io::Result<()> + Send + Sync>;

/// Stages a checkpoint received from another replica from its data frames (blocking code):
/// checks what it receives, keeps it out of the live state, and returns what
/// [`Applier::import`] takes. Too few frames (an interrupted stream) must still stage
/// without harm: the caller discards the result.
pub type Stager = Arc<dyn Fn(&mut dyn Iterator<Item = Vec<u8>>) -> io::Result<Staged> + Send + Sync>;

/// Makes a fresh applier over the state of the last checkpoint (what a restart would
/// load), for a group restarted after a storage error.
pub type Reopener = Arc<dyn Fn() -> io::Result<Box<dyn Applier>> + Send + Sync>;

/// A received checkpoint, staged: the Raft state stored with it and where its data waits.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The Raft state the checkpoint was taken at (opaque to the applier).
    pub raft_state: Vec<u8>,
    /// The data.
    pub data: StagedData,
}

/// Where a staged checkpoint's data waits.
#[derive(Debug, Clone)]
pub enum StagedData {
    /// In memory (a small state: the cluster metadata).
    Bytes(Arc<Vec<u8>>),
    /// In files of a directory.
    Dir(Arc<StagedDir>),
}

/// A directory of staged files, removed when the last handle on it is dropped (unless
/// [`StagedDir::keep`] was called).
#[derive(Debug)]
pub struct StagedDir {
    path: PathBuf,
    keep: AtomicBool,
}

impl StagedDir {
    /// Takes charge of `path` (it is removed on drop).
    pub fn new(path: PathBuf) -> Self {
        StagedDir { path, keep: AtomicBool::new(false) }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory on disk when dropped (an install that failed halfway is done
    /// again from it).
    pub fn keep(&self) {
        self.keep.store(true, Ordering::Relaxed);
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if self.keep.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.path.display(), error = %e, "removing a staged snapshot failed");
        }
    }
}

/// What a group does with committed writes (a TSDB shard, the cluster metadata, or in
/// tests anything).
pub trait Applier: Send + Sync + 'static {
    /// Applies entry `index`'s request; deterministic given the state. An error (the
    /// storage failed a read) stops the group rather than let the replica diverge; the
    /// state must be as before the call.
    fn apply(&mut self, index: u64, request: &Request) -> io::Result<Response>;
    /// Makes the state through the last applied entry durable, together with `raft_state`,
    /// in one atomic write.
    fn checkpoint(&mut self, raft_state: Vec<u8>) -> io::Result<()>;
    /// The `raft_state` of the last checkpoint, if there was one.
    fn checkpointed(&self) -> io::Result<Option<Vec<u8>>>;
    /// A handle that exports the last checkpoint whenever called.
    fn exporter(&self) -> Exporter;
    /// A handle that stages another replica's export whenever called.
    fn stager(&self) -> Stager;
    /// Replaces the state (and the stored Raft state) with a staged checkpoint of another
    /// replica, crash-safely: after a crash halfway, the node restarts with either state.
    fn import(&mut self, snapshot: Staged) -> io::Result<()>;
    /// A handle that makes a fresh applier at the last checkpoint whenever called.
    fn reopener(&self) -> Reopener;
}

/// A snapshot's data: this node's last checkpoint, exported when sent, or a checkpoint
/// received from another replica, staged.
#[derive(Clone)]
pub enum SnapshotPayload {
    /// The local checkpoint.
    Local(Exporter),
    /// A checkpoint received from the leader.
    Staged(Staged),
}

impl std::fmt::Debug for SnapshotPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotPayload::Local(_) => f.write_str("Local"),
            SnapshotPayload::Staged(s) => write!(f, "Staged({:?})", s.data),
        }
    }
}

/// The Raft state stored with a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RaftState {
    pub(crate) applied: Option<LogIdOf<TypeConfig>>,
    pub(crate) membership: StoredMembershipOf<TypeConfig>,
}

impl RaftState {
    pub(crate) fn meta(&self) -> SnapshotMetaOf<TypeConfig> {
        SnapshotMetaOf::<TypeConfig> { last_log_id: self.applied, last_membership: self.membership.clone() }
    }
}

/// The state machine of a group.
pub struct StateMachine<A: Applier> {
    applier: A,
    state: RaftState,
    /// Set while openraft's checkpoints are to be put off (a learner needs the log after
    /// the last one).
    hold: Arc<AtomicBool>,
}

impl<A: Applier> std::fmt::Debug for StateMachine<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine").field("applied", &self.state.applied).finish()
    }
}

impl<A: Applier> StateMachine<A> {
    /// A state machine over `applier`, at the applier's last checkpoint.
    pub fn new(applier: A) -> io::Result<Self> {
        let state = match applier.checkpointed()? {
            Some(b) => crate::codec::decode(&b)?,
            None => RaftState::default(),
        };
        Ok(StateMachine { applier, state, hold: Arc::new(AtomicBool::new(false)) })
    }

    /// The state machine, putting off the checkpoints openraft triggers while `hold` is set.
    pub fn held_by(mut self, hold: Arc<AtomicBool>) -> Self {
        self.hold = hold;
        self
    }

    fn checkpoint(&mut self) -> io::Result<()> {
        let raft_state = crate::codec::encode(&self.state)?;
        blocking(|| self.applier.checkpoint(raft_state))
    }

    /// Checkpoints (with no apply running) and returns the builder of the snapshot at the
    /// applied index, or the checkpoint's error.
    fn checkpointed_builder(&mut self) -> Result<SnapshotBuilder, io::Error> {
        self.checkpoint()?;
        Ok(SnapshotBuilder {
            meta: self.state.meta(),
            payload: SnapshotPayload::Local(self.applier.exporter()),
            failed: None,
        })
    }

    /// A builder that fails with the checkpoint's error `e`.
    fn failed_builder(&self, e: io::Error) -> SnapshotBuilder {
        tracing::error!(error = %e, "checkpoint failed: the snapshot fails");
        SnapshotBuilder {
            meta: self.state.meta(),
            payload: SnapshotPayload::Local(self.applier.exporter()),
            failed: Some(e),
        }
    }
}

/// Runs `f`, long blocking work (a checkpoint's synced write, a snapshot's ingest and
/// index load), telling a multi-threaded runtime first: the worker's other tasks move to
/// another thread instead of waiting behind it (with two cores, a seconds-long install
/// would otherwise hold up the heartbeats queued on that worker and lose leaderships).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A snapshot in the making: the checkpoint taken when openraft asked for a builder.
#[derive(Debug)]
pub struct SnapshotBuilder {
    meta: SnapshotMetaOf<TypeConfig>,
    payload: SnapshotPayload,
    /// The checkpoint failed: building fails with this error (a snapshot must never claim
    /// what was not written, or openraft would purge the log behind it).
    failed: Option<io::Error>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotPayload;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotPayload>, io::Error> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        Ok(SnapshotOf::<TypeConfig, SnapshotPayload> {
            meta: self.meta.clone(),
            snapshot: self.payload.clone(),
        })
    }
}

impl<A: Applier> RaftStateMachine<TypeConfig> for StateMachine<A> {
    type SnapshotData = SnapshotPayload;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.state.applied, self.state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm:
            futures_util::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            // an entry a received snapshot already holds is not applied twice
            let fresh = self.state.applied.is_none_or(|a| entry.log_id.index > a.index);
            let response = match &entry.payload {
                // a failed apply stops the group (openraft's storage error) before the
                // entry counts as applied
                EntryPayload::Normal(req) if fresh => self.applier.apply(entry.log_id.index, req)?,
                EntryPayload::Membership(m) if fresh => {
                    self.state.membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m.clone());
                    Response::default()
                }
                _ => Response::default(),
            };
            if fresh {
                self.state.applied = Some(entry.log_id);
            }
            if let Some(r) = responder {
                r.send(response);
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        if !force && self.hold.load(Ordering::Relaxed) {
            // no checkpoint, so no purge: a learner resumes from the log after the last one
            return None;
        }
        match self.checkpointed_builder() {
            Ok(b) => Some(b),
            // a snapshot openraft may defer: none this time, the previous checkpoint stays
            // in force with the log behind it; the next trigger tries again
            Err(e) if !force => {
                tracing::error!(error = %e, "checkpoint failed: no snapshot, the log is kept");
                None
            }
            Err(e) => Some(self.failed_builder(e)),
        }
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        match self.checkpointed_builder() {
            Ok(b) => b,
            Err(e) => self.failed_builder(e),
        }
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: SnapshotPayload,
    ) -> Result<(), io::Error> {
        let staged = match snapshot {
            SnapshotPayload::Staged(s) => s,
            // openraft installs received snapshots only; its storage suite installs one it
            // built (small: staged from memory)
            SnapshotPayload::Local(export) => {
                let mut frames = Vec::new();
                export(&mut |f| {
                    frames.push(f);
                    true
                })?;
                (self.applier.stager())(&mut frames.into_iter())?
            }
        };
        // the Raft state is the one stored with the data (the sender puts it in the meta too)
        let state = crate::codec::decode(&staged.raft_state)?;
        blocking(|| self.applier.import(staged))?;
        self.state = state;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotPayload>>, io::Error> {
        let Some(b) = self.applier.checkpointed()? else { return Ok(None) };
        let state: RaftState = crate::codec::decode(&b)?;
        Ok(Some(SnapshotOf::<TypeConfig, SnapshotPayload> {
            meta: state.meta(),
            snapshot: SnapshotPayload::Local(self.applier.exporter()),
        }))
    }
}
