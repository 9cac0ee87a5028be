//! # strata-cluster — the distributed roles
//!
//! * [`StorageNode`]: one RocksDB per node; the replicas of the shards the cluster map
//!   places on it, each an openraft group (through `strata-raft`) whose log is the shard's
//!   WAL and whose state machine is the shard's head in the node's replicated
//!   [`Db`](strata_tsdb::Db); the metadata group on the first three nodes; gRPC services
//!   for Raft messages (every group of a node pair over one channel), shard writes and
//!   reads, and the map.
//! * [`ClusterMap`]: shard count, replication factor, nodes, and each shard's replicas —
//!   placed once by walking a ring of virtual nodes (the `hashring` crate over our own
//!   stable hashes), stored in the metadata group, never recomputed elsewhere.
//! * [`ClusterClient`]: what ingestors use: the map from any node, one write per shard
//!   sent to its leader and acknowledged only once committed by a quorum, retried across
//!   leader changes within a deadline; shard reads (linearizable or from a follower).
//! * [`ClusterWriter`]: the remote-write backend of `strata ingestor` (and of a storage
//!   node's HTTP endpoint).
//! * [`StandaloneWriter`]: `strata standalone` is a one-node cluster (RF=1) written to
//!   in-process.
//! * [`Faults`]: drop, partition and delay Raft messages between nodes, for tests.

mod client;
mod codec;
mod error;
mod incoming;
mod map;
pub mod meta;
mod service;
mod standalone;
mod storage;
mod tls;
mod transport;
mod writer;

pub use client::{ClientConfig, ClusterClient, Evaluated, ReadConsistency, Selected};
pub use codec::{from_wire, series_from_wire, series_to_wire, to_wire};
pub use error::{Error, Result};
pub use map::{ClusterMap, VNODES};
pub use standalone::StandaloneWriter;
pub use storage::{IN_PROCESS, StorageConfig, StorageNode};
pub use tls::{GrpcTls, TlsFiles};
pub use transport::{Faults, GrpcTransport};
pub use writer::ClusterWriter;
