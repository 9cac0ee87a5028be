//! # strata-raft — replicated shards
//!
//! Each shard is one openraft group (`openraft =0.10.0-alpha.37` with `openraft-multi`,
//! kept behind this crate so an alpha bump touches one place; nothing of openraft appears
//! in the public API but the storage traits the storage suite tests). After
//! `docs/architecture.md`:
//!
//! * **The Raft log is the write-ahead log.** An entry's payload is the shard's log record
//!   (`strata_tsdb::record`) exactly as the standalone write path builds it; [`LogStore`]
//!   keeps entries in the node's [`KvEngine`](strata_tsdb::KvEngine) (column family `log`,
//!   key `shard · index`), vote, committed id and purge point in `meta`. Every group's
//!   appends go through the node's [`LogWriter`]: one synced batch for all of them.
//! * **The state machine is the shard's head.** [`StateMachine`] hands each committed entry
//!   to an [`Applier`] in log order (`strata-storage`'s shard applier: the shard's head) and
//!   answers the proposer with what the apply accepted. A snapshot is a checkpoint: the
//!   head, new index entries, watermark and the Raft state in one synced batch, after which
//!   openraft purges the log; restart re-applies committed entries after it; a snapshot
//!   sent to another replica is the shard's persisted key ranges.
//! * **One transport per node.** [`RaftNode`] runs the groups of a node; all their messages
//!   go through one [`Transport`] tagged with the group id, and inbound messages enter
//!   through [`RaftNode::handle`], which refuses what no leader following the protocol
//!   sends (an uncommitted vote, log ids out of order or from a later leader) before
//!   openraft, which asserts those invariants, sees it.
//!
//! * **Storage errors stop acknowledging, not the node.** A failed log write marks the
//!   node's [`WriteHealth`]: proposals answer [`Error::Unavailable`] until a probe write
//!   succeeds (and while free space is below its limit); a group whose storage failed
//!   (openraft stops it) is restarted from its last checkpoint once writes succeed again
//!   ([`RaftNode::maintain_health`]). A failed checkpoint fails the snapshot: the log is
//!   not purged past samples that were never written.
//!
//! * **Replicas move one idempotent step at a time** ([`RaftNode::replace_replica`] on the
//!   group's leader): learner, catch-up, leadership away from a leaving leader, one joint
//!   change; a replica the group no longer has is removed with [`RaftNode::remove_group`].
//!
//! Payloads are serialised with bincode.

pub mod codec;
mod error;
mod health;
mod inbound;
mod log_store;
mod log_writer;
mod membership;
mod network;
mod node;
mod snapshot;
mod state_machine;
mod types;

pub use error::{Error, Result};
pub use health::WriteHealth;
pub use log_store::LogStore;
pub use log_writer::{LogStats, LogWriter};
pub use membership::ReplicaStep;
pub use network::{CallFuture, NoPeers, RpcKind, Transport, TransportError};
pub use node::{GroupStatus, RaftConfig, RaftNode};
pub use snapshot::{FrameStream, SnapshotStats};
pub use state_machine::{
    Applier, Exporter, Reopener, SnapshotPayload, Staged, StagedData, StagedDir, Stager, StateMachine,
};
pub use types::{GroupId, META_GROUP, NodeId, Request, Response, TypeConfig};
