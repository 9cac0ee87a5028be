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
//!   to an [`Applier`] in log order ([`ShardApplier`]: the shard's in-memory head) and
//!   answers the proposer with what the apply accepted. A snapshot is a checkpoint: the
//!   head, new index entries, watermark and the Raft state in one synced batch, after which
//!   openraft purges the log; restart re-applies committed entries after it; a snapshot
//!   sent to another replica is the shard's persisted key ranges.
//! * **One transport per node.** [`RaftNode`] runs the groups of a node; all their messages
//!   go through one [`Transport`] tagged with the group id, and inbound messages enter
//!   through [`RaftNode::handle`].
//!
//! Payloads are serialised with bincode.

mod codec;
mod error;
mod log_store;
mod log_writer;
mod network;
mod node;
mod shard_applier;
mod state_machine;
mod types;

pub use error::{Error, Result};
pub use log_store::LogStore;
pub use log_writer::LogWriter;
pub use network::{CallFuture, RpcKind, Transport, TransportError};
pub use node::{GroupStatus, RaftConfig, RaftNode};
pub use shard_applier::ShardApplier;
pub use state_machine::{Applier, Exported, Exporter, SnapshotPayload, StateMachine};
pub use types::{GroupId, META_GROUP, NodeId, Request, Response, TypeConfig};
