//! The openraft type configuration of a shard group.

use serde::{Deserialize, Serialize};

/// A shard write: one log record as the write path encodes it (`strata_tsdb::record`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request(pub Vec<u8>);

/// What applying a request did: samples accepted and rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Samples appended.
    pub accepted: u64,
    /// Samples refused (out of order, duplicate, out of bounds …).
    pub rejected: u64,
}

openraft::declare_raft_types!(
    /// The type configuration of every shard group.
    pub TypeConfig:
        D = Request,
        R = Response,
);

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record of {} bytes", self.0.len())
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} accepted, {} rejected", self.accepted, self.rejected)
    }
}
