//! # strata-raft — replicated shards
//!
//! Each shard is one openraft group (`openraft =0.10.0-alpha.37`, kept behind this crate so
//! an alpha bump touches one place). The design, after `docs/architecture.md`:
//!
//! * **The Raft log is the write-ahead log.** An entry's payload is the shard's log record
//!   (`strata_tsdb::record`) exactly as the standalone write path builds it; [`LogStore`]
//!   keeps entries in the node's [`KvEngine`](strata_tsdb::KvEngine) (column family `log`,
//!   key `shard · index`), vote, committed id and purge point in `meta`.
//! * **The state machine is the shard's head.** [`StateMachine`] hands each committed entry
//!   to an [`Applier`] (the shard) in log order and answers the proposer with what the apply
//!   accepted; membership and the applied id are its own. A snapshot is the applier's
//!   state as bytes plus the applied id and membership.
//!
//! Payloads are serialised with bincode.

mod log_store;
mod state_machine;
mod types;

pub use log_store::LogStore;
pub use state_machine::{Applier, StateMachine};
pub use types::{Request, Response, TypeConfig};
