//! # strata-storage — the storage node
//!
//! * [`StorageNode`]: one key-value engine per node (RocksDB in its data directory, or any
//!   [`KvEngine`](strata_tsdb::KvEngine) it is given); the replicas of the shards the
//!   cluster map places on it, each an openraft group (through `strata-raft`) whose log is
//!   the shard's WAL and whose state machine ([`ShardApplier`]) is the shard's head in the
//!   node's [`Db`](strata_tsdb::Db); the metadata group on the first three nodes ([`meta`]:
//!   the cluster map and the HA tracker's elections); gRPC services for Raft messages (every group of a node pair over one
//!   channel), shard writes, reads and evaluations, and the map.
//! * The placement controller ([`PlacementConfig`]): on the metadata leader, moves
//!   replicas one idempotent step at a time on each shard's leader (learner, catch-up,
//!   leadership away, one joint change) to replace dead nodes, drain decommissioned ones,
//!   keep zones apart and balance nodes; a node deletes a replica the map moved away after
//!   a grace period. [`admin`]: the cluster's status and operators' verbs.
//! * [`StandaloneWriter`]: `strata standalone` is a one-node cluster (RF=1) written to
//!   in-process; [`NodeBackend`]: a node's own replicas as the HTTP API's query backend.
//! * [`Faults`]: drop, partition and delay Raft messages between nodes, for tests.

pub mod admin;
mod backend;
mod controller;
mod ha_table;
mod identity;
mod incoming;
pub mod meta;
mod node;
mod service;
mod shard_applier;
mod standalone;
mod transport;

pub use backend::NodeBackend;
pub use controller::{PlacementConfig, PlacementStats};
pub use node::{IN_PROCESS, StorageConfig, StorageNode, host_name};
pub use shard_applier::ShardApplier;
pub use standalone::StandaloneWriter;
pub use transport::{Faults, GrpcTransport};
