//! The commands of the metadata group: changes to the cluster map (joins, moves, node
//! states) and the HA tracker's elections, bincode-encoded in its log. Defined here, beside
//! the map, so that every role can send one (`ClusterClient::update_metadata`); applied by
//! the metadata group's state machine in `strata-storage`.

use std::io;

use serde::{Deserialize, Serialize};
use strata_api::HaClaim;
use strata_raft::NodeId;
use strata_raft::codec::decode;

use crate::{ClusterMap, ClusterMapV1, Move, NodeState};

/// A change to the cluster map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Creates the cluster (only once; repeating the same map is a no-op).
    Create(ClusterMap),
    /// Registers (or re-addresses) a storage node; it hosts no shard until placed.
    AddNode {
        /// The node.
        id: NodeId,
        /// Its advertised gRPC address.
        addr: String,
    },
    /// A node without an id joins: see [`ClusterMap::join`] (the joiner then finds its id
    /// in the map by its token).
    Join {
        /// The node's name (its pod name).
        name: String,
        /// The random token of this join, stored on the node's disk before it asks.
        token: u64,
        /// Its advertised gRPC address.
        addr: String,
    },
    /// Starts replica moves (the placement controller's plan; see [`ClusterMap::start_moves`]).
    StartMoves(Vec<Move>),
    /// The phase a move's driver reports.
    MovePhase {
        /// The moving shard.
        shard: u32,
        /// Its phase.
        phase: String,
    },
    /// A move's joint change committed: `to` replaces `from` in the placement.
    FinishMove {
        /// The moved shard.
        shard: u32,
        /// The replica that left.
        from: NodeId,
        /// The replica that took its place.
        to: NodeId,
    },
    /// A move is given up (its target was dropped from the group again, or is gone).
    AbortMove {
        /// The shard.
        shard: u32,
    },
    /// Sets a node's state (decommission, recommission; decommissioned once drained).
    SetNodeState {
        /// The node.
        id: NodeId,
        /// Its new state.
        state: NodeState,
    },
    /// A node describes itself: its name and zone.
    Describe {
        /// The node.
        id: NodeId,
        /// Its name (the pod name).
        name: String,
        /// Its zone.
        zone: String,
    },
    /// Pauses (true) or resumes the start of new moves.
    SetPaused(bool),
    /// Declares a node dead (unseen for too long): its replicas are replaced, its id never
    /// used again.
    DeclareDead(NodeId),
    /// An HA replica claims its cluster's election (see [`HaClaim::decide`]); answers the
    /// election after it, a bincode-encoded `strata_api::HaElected`.
    HaElect(HaClaim),
}

/// The commands as logged before joins existed (a `Create` carried the older map).
#[derive(Debug, Deserialize)]
enum CommandV1 {
    Create(ClusterMapV1),
    AddNode { id: NodeId, addr: String },
}

impl Command {
    /// Decodes a logged command, also one logged before joins existed.
    pub fn decode(bytes: &[u8]) -> io::Result<Command> {
        decode::<Command>(bytes).or_else(|e| {
            decode::<CommandV1>(bytes)
                .map(|c| match c {
                    CommandV1::Create(m) => Command::Create(m.into()),
                    CommandV1::AddNode { id, addr } => Command::AddNode { id, addr },
                })
                .map_err(|_| e)
        })
    }
}
