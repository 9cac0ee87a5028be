//! The openraft type configuration of a group, and what a write returns.

use serde::{Deserialize, Serialize};
use strata_tsdb::ApplyOutcome;

/// Identifies a storage node (stable for the node's life; chosen by the operator).
pub type NodeId = u64;

/// Identifies a Raft group on a node: a shard id, or [`META_GROUP`].
pub type GroupId = u32;

/// The group that holds the cluster metadata (shard ids are below it).
pub const META_GROUP: GroupId = u32::MAX - 1;

/// A group write: for a shard, one log record as the write path encodes it
/// (`strata_tsdb::record`); for the metadata group, a command of its applier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request(pub Vec<u8>);

/// What applying a request did (for a shard: samples accepted and rejected, and why).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Samples appended.
    pub accepted: u64,
    /// Samples refused, indexed like `strata_tsdb::RejectReason::ALL`.
    pub rejected: [u64; 4],
    /// Series created.
    pub new_series: u64,
    /// The first rejection (or, for the metadata group, the command's error), for the client.
    pub error: Option<String>,
}

impl From<ApplyOutcome> for Response {
    fn from(o: ApplyOutcome) -> Self {
        Response {
            accepted: o.accepted,
            rejected: o.rejected,
            new_series: o.new_series,
            error: o.first_error,
        }
    }
}

impl From<Response> for ApplyOutcome {
    fn from(r: Response) -> Self {
        ApplyOutcome {
            accepted: r.accepted,
            rejected: r.rejected,
            new_series: r.new_series,
            first_error: r.error,
        }
    }
}

openraft::declare_raft_types!(
    /// The type configuration of every group.
    pub TypeConfig:
        D = Request,
        R = Response,
);

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request of {} bytes", self.0.len())
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} accepted, {} rejected", self.accepted, self.rejected.iter().sum::<u64>())
    }
}
