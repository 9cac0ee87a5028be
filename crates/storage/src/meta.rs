//! The metadata group's state machine: the cluster map.

use std::io;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use strata_raft::{
    Applier, Exporter, META_GROUP, NodeId, Reopener, Request, Response, Staged, StagedData, Stager,
};
use strata_tsdb::keys::{META_CHECKPOINT_OWNER, meta_key};
use strata_tsdb::{Cf, KvEngine, WriteBatch};

use strata_cluster::{ClusterMap, ClusterMapV1, Move, NodeState};
use strata_raft::codec::{decode, encode, io_err};

/// Meta tag of the stored map (under the metadata group's id).
const META_MAP: u8 = 0x30;

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

/// The map as the local replica knows it.
pub type SharedMap = Arc<RwLock<Option<ClusterMap>>>;

/// Applies [`Command`]s to the map; checkpoints it with the Raft state.
pub(crate) struct MetaApplier {
    kv: Arc<dyn KvEngine>,
    map: SharedMap,
}

impl MetaApplier {
    /// The applier over `kv`, loading the map of the last checkpoint into `map` (none
    /// without a checkpoint: a new replica applies the group's log from its start, never
    /// on top of a map fetched from elsewhere).
    pub(crate) fn open(kv: Arc<dyn KvEngine>, map: SharedMap) -> io::Result<Self> {
        *map.write() = match kv.get(Cf::Meta, &meta_key(META_GROUP, META_MAP)).map_err(io_err)? {
            Some(b) => decode_stored(&b)?,
            None => None,
        };
        Ok(MetaApplier { kv, map })
    }

    fn run(&self, cmd: Command) -> Result<(), String> {
        let mut map = self.map.write();
        match (cmd, map.as_mut()) {
            (Command::Create(m), None) => *map = Some(m),
            (Command::Create(m), Some(cur)) if m.shards == cur.shards && m.placement == cur.placement => {}
            (Command::Create(_), Some(_)) => {
                return Err("the cluster already exists with another layout".into());
            }
            (_, None) => return Err("the cluster is not created yet".into()),
            (Command::Join { name, token, addr }, Some(cur)) => {
                cur.join(&name, token, &addr);
            }
            (Command::AddNode { id, .. }, Some(cur)) if cur.dead.contains(&id) => {
                return Err(format!("node {id} was declared dead; its id is never used again"));
            }
            (Command::AddNode { id, addr }, Some(cur)) => {
                if cur.nodes.get(&id) != Some(&addr) {
                    cur.nodes.insert(id, addr);
                    cur.version += 1;
                }
            }
            (Command::StartMoves(moves), Some(cur)) => {
                cur.start_moves(&moves);
            }
            (Command::MovePhase { shard, phase }, Some(cur)) => {
                cur.move_phase(shard, &phase);
            }
            (Command::FinishMove { shard, from, to }, Some(cur)) => {
                cur.finish_move(shard, from, to);
            }
            (Command::AbortMove { shard }, Some(cur)) => {
                cur.abort_move(shard);
            }
            (Command::SetNodeState { id, .. } | Command::Describe { id, .. }, Some(cur))
                if !cur.nodes.contains_key(&id) =>
            {
                return Err(format!("no node {id} in the cluster"));
            }
            (Command::SetNodeState { id, state }, Some(cur)) => {
                cur.set_state(id, state);
            }
            (Command::Describe { id, name, zone }, Some(cur)) => {
                cur.describe(id, &name, &zone);
            }
            (Command::SetPaused(p), Some(cur)) => {
                if cur.paused != p {
                    cur.paused = p;
                    cur.version += 1;
                }
            }
            (Command::DeclareDead(id), Some(cur)) => {
                cur.declare_dead(id);
            }
        }
        Ok(())
    }
}

/// Deletes the metadata group's state machine data (map and checkpoint) from `kv`: a
/// replica that left the group, or one that joins it and must start empty.
pub(crate) fn clear(kv: &dyn KvEngine) -> io::Result<()> {
    let mut b = WriteBatch::default();
    b.delete(Cf::Meta, meta_key(META_GROUP, META_MAP));
    b.delete(Cf::Meta, meta_key(META_GROUP, META_CHECKPOINT_OWNER));
    kv.write(&b, true).map_err(io_err)
}

/// A stored `Option<ClusterMap>`, also one stored before joins existed.
fn decode_stored(b: &[u8]) -> io::Result<Option<ClusterMap>> {
    match b.split_first() {
        Some((0, _)) | None => Ok(None),
        Some((_, map)) => ClusterMap::decode(map).map(Some),
    }
}

/// The most bytes a received metadata snapshot may hold (the map is small: a bound on what
/// the network may make this node keep in memory).
const MAX_META_SNAPSHOT: usize = 64 << 20;

/// The last checkpoint: its Raft state and the stored map, read as of one moment.
fn read_pair(kv: &dyn KvEngine) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let owner = meta_key(META_GROUP, META_CHECKPOINT_OWNER);
    let map = meta_key(META_GROUP, META_MAP);
    let ranges = [&owner, &map].map(|k| (Cf::Meta, (k.clone(), [k.as_slice(), &[0]].concat())));
    let (mut raft_state, mut data) = (None, Vec::new());
    kv.scan_frozen(&ranges, &mut || {}, &mut |_, k, v| {
        if k == owner.as_slice() {
            raft_state = Some(v.to_vec());
        } else {
            data = v.to_vec();
        }
        true
    })
    .map_err(io_err)?;
    Ok((raft_state.ok_or_else(|| io::Error::other("metadata has no checkpoint"))?, data))
}

impl Applier for MetaApplier {
    fn apply(&mut self, _index: u64, request: &Request) -> io::Result<Response> {
        let res = Command::decode(&request.0).map_err(|e| e.to_string()).and_then(|c| self.run(c));
        Ok(Response { first_error: res.err(), ..Response::default() })
    }

    fn checkpoint(&mut self, raft_state: Vec<u8>) -> io::Result<()> {
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, meta_key(META_GROUP, META_MAP), encode(&*self.map.read())?);
        b.put(Cf::Meta, meta_key(META_GROUP, META_CHECKPOINT_OWNER), raft_state);
        self.kv.write(&b, true).map_err(io_err)
    }

    fn checkpointed(&self) -> io::Result<Option<Vec<u8>>> {
        self.kv.get(Cf::Meta, &meta_key(META_GROUP, META_CHECKPOINT_OWNER)).map_err(io_err)
    }

    /// One frame: the Raft state and the map.
    fn exporter(&self) -> Exporter {
        let kv = self.kv.clone();
        Arc::new(move |emit| {
            emit(encode(&read_pair(kv.as_ref())?)?);
            Ok(())
        })
    }

    fn stager(&self) -> Stager {
        Arc::new(|frames| {
            let mut bytes = Vec::new();
            for f in frames {
                if bytes.len() + f.len() > MAX_META_SNAPSHOT {
                    return Err(io::Error::other(format!(
                        "a metadata snapshot larger than {MAX_META_SNAPSHOT} bytes"
                    )));
                }
                bytes.extend_from_slice(&f);
            }
            let (raft_state, data): (Vec<u8>, Vec<u8>) = decode(&bytes)?;
            Ok(Staged { raft_state, data: StagedData::Bytes(Arc::new(data)) })
        })
    }

    fn import(&mut self, snapshot: Staged) -> io::Result<()> {
        let StagedData::Bytes(data) = snapshot.data else {
            return Err(io::Error::other("a metadata snapshot is staged in memory"));
        };
        let map: Option<ClusterMap> = if data.is_empty() { None } else { decode_stored(&data)? };
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, meta_key(META_GROUP, META_MAP), encode(&map)?);
        b.put(Cf::Meta, meta_key(META_GROUP, META_CHECKPOINT_OWNER), snapshot.raft_state);
        self.kv.write(&b, true).map_err(io_err)?;
        *self.map.write() = map;
        Ok(())
    }

    fn reopener(&self) -> Reopener {
        let (kv, map) = (self.kv.clone(), self.map.clone());
        Arc::new(move || Ok(Box::new(MetaApplier::open(kv.clone(), map.clone())?) as Box<dyn Applier>))
    }
}
