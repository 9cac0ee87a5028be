//! # strata-cluster — what every role knows of the cluster
//!
//! * [`ClusterMap`]: shard count, replication factor, nodes, and each shard's replicas —
//!   placed once by walking a ring of virtual nodes (the `hashring` crate over our own
//!   stable hashes), stored in the metadata group (`strata-storage`), never recomputed
//!   elsewhere; changed only by the metadata group's [`Command`]s (which also carry the HA
//!   tracker's elections).
//! * [`planner`]: the replica moves and leader hand-overs that restore the replication
//!   factor, drain nodes, keep zones apart and balance the nodes (pure; the placement
//!   controller of `strata-storage` runs it).
//! * [`ClusterClient`]: the map from any storage node, one write per shard sent to its
//!   leader and acknowledged only once committed by a quorum, retried across leader changes
//!   within a deadline; shard reads (linearizable or from a follower) and evaluations.
//!   Ingestors (`strata-ingestor`), queriers (`strata-querier`) and storage nodes use it.
//! * The wire: matchers and series to and from the cluster protocol ([`codec`]), channels
//!   ([`endpoint`], [`MAX_MESSAGE`]) over mutual TLS ([`GrpcTls`]), and [`Error`] with its
//!   mapping to gRPC status codes and back (a query's error keeps its kind).

mod channel;
mod client;
pub mod codec;
mod command;
mod error;
mod map;
pub mod planner;
mod tls;

pub use channel::{MAX_MESSAGE, endpoint};
pub use client::{ClientConfig, ClusterClient, MAP_VERSION_HEADER, UNREACHABLE_FOR, not_reached};
pub use codec::{ShardReply, from_wire, series_from_wire, series_to_wire, series_to_wire_with, to_wire};
pub use command::Command;
pub use error::{Error, Result, query_error_of};
pub use map::{
    ClusterMap, ClusterMapV1, ClusterMapV2, Member, Move, MoveReason, NodeInfo, NodeState, VNODES,
};
pub use tls::{GrpcTls, TlsFiles};
