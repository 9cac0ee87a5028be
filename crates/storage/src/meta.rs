//! The metadata group's state machine: the cluster map and the HA tracker's elections.

use std::io;
use std::sync::Arc;

use parking_lot::RwLock;
use strata_raft::{Applier, Exporter, META_GROUP, Reopener, Request, Response, Staged, StagedData, Stager};
use strata_tsdb::keys::{META_CHECKPOINT_OWNER, meta_key};
use strata_tsdb::{Cf, KvEngine, WriteBatch};

use strata_cluster::{ClusterMap, Command};
use strata_raft::codec::{decode, encode, io_err};

use crate::ha_table::HaTable;

/// Meta tag of the stored map (under the metadata group's id).
const META_MAP: u8 = 0x30;
/// Meta tag of the stored HA elections (0x31 is the node identity's).
const META_HA: u8 = 0x32;

/// The map as the local replica knows it.
pub type SharedMap = Arc<RwLock<Option<ClusterMap>>>;

/// Applies [`Command`]s to the map and the elections; checkpoints both with the Raft state.
pub(crate) struct MetaApplier {
    kv: Arc<dyn KvEngine>,
    map: SharedMap,
    ha: HaTable,
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
        let ha = match kv.get(Cf::Meta, &meta_key(META_GROUP, META_HA)).map_err(io_err)? {
            Some(b) => decode(&b)?,
            None => HaTable::default(),
        };
        Ok(MetaApplier { kv, map, ha })
    }

    /// Applies `cmd`: its answer, or why it changed nothing.
    fn run(&mut self, cmd: Command) -> Result<Vec<u8>, String> {
        let mut map = self.map.write();
        match (cmd, map.as_mut()) {
            // elections need no map
            (Command::HaElect(claim), _) => {
                return encode(&self.ha.elect(&claim)?).map_err(|e| e.to_string());
            }
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
        Ok(Vec::new())
    }
}

/// Deletes the metadata group's state machine data (map, elections and checkpoint) from `kv`: a
/// replica that left the group, or one that joins it and must start empty.
pub(crate) fn clear(kv: &dyn KvEngine) -> io::Result<()> {
    let mut b = WriteBatch::default();
    b.delete(Cf::Meta, meta_key(META_GROUP, META_MAP));
    b.delete(Cf::Meta, meta_key(META_GROUP, META_HA));
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

/// The last checkpoint: its Raft state, the stored map and the stored elections, read as of
/// one moment.
fn read_checkpoint(kv: &dyn KvEngine) -> io::Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let keys = [META_CHECKPOINT_OWNER, META_MAP, META_HA].map(|tag| meta_key(META_GROUP, tag));
    let ranges = keys.clone().map(|k| (Cf::Meta, (k.clone(), [k.as_slice(), &[0]].concat())));
    let mut found: [Option<Vec<u8>>; 3] = Default::default();
    kv.scan_frozen(&ranges, &mut || {}, &mut |_, k, v| {
        if let Some(i) = keys.iter().position(|key| key.as_slice() == k) {
            found[i] = Some(v.to_vec());
        }
        true
    })
    .map_err(io_err)?;
    let [raft_state, map, ha] = found;
    let raft_state = raft_state.ok_or_else(|| io::Error::other("metadata has no checkpoint"))?;
    Ok((raft_state, map.unwrap_or_default(), ha.unwrap_or_default()))
}

impl Applier for MetaApplier {
    fn apply(&mut self, _index: u64, request: &Request) -> io::Result<Response> {
        match Command::decode(&request.0).map_err(|e| e.to_string()).and_then(|c| self.run(c)) {
            Ok(answer) => Ok(Response { answer, ..Response::default() }),
            Err(e) => Ok(Response { first_error: Some(e), ..Response::default() }),
        }
    }

    fn checkpoint(&mut self, raft_state: Vec<u8>) -> io::Result<()> {
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, meta_key(META_GROUP, META_MAP), encode(&*self.map.read())?);
        b.put(Cf::Meta, meta_key(META_GROUP, META_HA), encode(&self.ha)?);
        b.put(Cf::Meta, meta_key(META_GROUP, META_CHECKPOINT_OWNER), raft_state);
        self.kv.write(&b, true).map_err(io_err)
    }

    fn checkpointed(&self) -> io::Result<Option<Vec<u8>>> {
        self.kv.get(Cf::Meta, &meta_key(META_GROUP, META_CHECKPOINT_OWNER)).map_err(io_err)
    }

    /// One frame: the Raft state, the map and the elections.
    fn exporter(&self) -> Exporter {
        let kv = self.kv.clone();
        Arc::new(move |emit| {
            emit(encode(&read_checkpoint(kv.as_ref())?)?);
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
            // a sender from before the elections sends the Raft state and the map only
            let (raft_state, map, ha) = decode::<(Vec<u8>, Vec<u8>, Vec<u8>)>(&bytes).or_else(|e| {
                decode::<(Vec<u8>, Vec<u8>)>(&bytes).map(|(r, m)| (r, m, Vec::new())).map_err(|_| e)
            })?;
            Ok(Staged { raft_state, data: StagedData::Bytes(Arc::new(encode(&(map, ha))?)) })
        })
    }

    fn import(&mut self, snapshot: Staged) -> io::Result<()> {
        let StagedData::Bytes(data) = snapshot.data else {
            return Err(io::Error::other("a metadata snapshot is staged in memory"));
        };
        let (map, ha): (Vec<u8>, Vec<u8>) = decode(&data)?;
        let map: Option<ClusterMap> = if map.is_empty() { None } else { decode_stored(&map)? };
        let ha: HaTable = if ha.is_empty() { HaTable::default() } else { decode(&ha)? };
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, meta_key(META_GROUP, META_MAP), encode(&map)?);
        b.put(Cf::Meta, meta_key(META_GROUP, META_HA), encode(&ha)?);
        b.put(Cf::Meta, meta_key(META_GROUP, META_CHECKPOINT_OWNER), snapshot.raft_state);
        self.kv.write(&b, true).map_err(io_err)?;
        *self.map.write() = map;
        self.ha = ha;
        Ok(())
    }

    fn reopener(&self) -> Reopener {
        let (kv, map) = (self.kv.clone(), self.map.clone());
        Arc::new(move || Ok(Box::new(MetaApplier::open(kv.clone(), map.clone())?) as Box<dyn Applier>))
    }
}
