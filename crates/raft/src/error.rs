//! The error type of the Raft layer.

use crate::{GroupId, NodeId};

/// What can go wrong in a node's Raft groups.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// This node does not host the group.
    #[error("group {0} is not hosted on this node")]
    NoGroup(GroupId),
    /// This node is not the group's leader; the leader is given when known.
    #[error("not the leader of group {group} (leader: {leader:?})")]
    NotLeader {
        /// The group.
        group: GroupId,
        /// The leader's id, when known.
        leader: Option<NodeId>,
        /// The leader's advertised address, when known.
        leader_addr: Option<String>,
    },
    /// The group stopped or failed (storage error, shutdown).
    #[error("group {group}: {reason}")]
    Fatal {
        /// The group.
        group: GroupId,
        /// Why.
        reason: String,
    },
    /// The node takes no writes now (its storage failed a write or is almost full); the
    /// message says why. Reads still work; writes resume by themselves when it clears.
    #[error("{0}")]
    Unavailable(String),
    /// The node's local storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// Invalid Raft settings.
    #[error("raft config: {0}")]
    Config(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
