//! The cluster map: storage nodes (state, zone), shard count, replication factor, the
//! placement of every shard's voters and the replica moves in flight — placed first by the
//! bootstrapping node, changed only by commands of the metadata group (the placement
//! controller's moves, operators' verbs) and read by everyone else.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use serde::{Deserialize, Serialize};
use strata_raft::{META_GROUP, NodeId};

/// Virtual nodes per storage node on the placement ring.
pub const VNODES: u32 = 64;

/// The cluster's layout, versioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    /// Increases with every change.
    pub version: u64,
    /// Number of shards (a power of two, fixed at creation).
    pub shards: u32,
    /// Replicas per shard.
    pub replication_factor: usize,
    /// Storage nodes by id: their advertised gRPC address.
    pub nodes: BTreeMap<NodeId, String>,
    /// For each shard, its replicas (distinct nodes).
    pub placement: Vec<Vec<NodeId>>,
    /// Nodes that joined (were given their id by the metadata group), by id. The
    /// founders, whose ids come from `--peers`, are not listed.
    pub members: BTreeMap<NodeId, Member>,
    /// Ids declared dead (a name that joined again with an empty disk): never reused, never
    /// addressed again.
    pub dead: BTreeSet<NodeId>,
    /// The id the next joining node gets; above every id ever used.
    pub next_node_id: NodeId,
    /// Per node, what is not the default (zone "", [`NodeState::Active`]).
    pub info: BTreeMap<NodeId, NodeInfo>,
    /// Per shard, how many replica moves finished on it: a shard at 0 still has the
    /// membership its first placement initialised (only then may its first replica
    /// initialise an empty group).
    pub conf_ver: Vec<u64>,
    /// Replica moves in flight (at most one per shard).
    pub moves: Vec<Move>,
    /// Whether the placement controller starts no new moves (operators' pause).
    pub paused: bool,
    /// The voters of the metadata group (the group's replicas move like a shard's, with
    /// [`META_GROUP`] as their shard).
    pub meta: Vec<NodeId>,
}

/// Where a storage node stands in the cluster's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeState {
    /// Holds replicas and takes new ones.
    #[default]
    Active,
    /// Being drained by an operator: takes no new replicas, its replicas move away.
    Draining,
    /// Drained: holds nothing and may be deleted.
    Decommissioned,
}

impl NodeState {
    /// The state's name in the status API and metrics.
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Active => "active",
            NodeState::Draining => "draining",
            NodeState::Decommissioned => "decommissioned",
        }
    }
}

/// A node's name, zone and state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its name (the pod name) as it describes itself; "" until it does (a joined node's
    /// name is also in [`ClusterMap::members`]).
    pub name: String,
    /// Its failure domain (`--zone`; the pod's topology zone); "" when unknown.
    pub zone: String,
    /// Its state.
    pub state: NodeState,
}

/// Why a replica moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MoveReason {
    /// Its node is dead: restores the replication factor.
    Replace,
    /// Its node is draining.
    Drain,
    /// Two replicas of the shard share a zone that another zone could relieve.
    Zone,
    /// Its node holds more replicas than another by two or more.
    Balance,
}

impl MoveReason {
    /// The reason's name in the status API and metrics.
    pub fn name(self) -> &'static str {
        match self {
            MoveReason::Replace => "replace",
            MoveReason::Drain => "drain",
            MoveReason::Zone => "zone",
            MoveReason::Balance => "balance",
        }
    }
}

/// One replica of `shard` moving from node `from` to node `to`: `to` joins the shard's
/// group as a learner, catches up, then one joint change makes it a voter in `from`'s
/// place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The shard.
    pub shard: u32,
    /// The replica that leaves (its node may be dead).
    pub from: NodeId,
    /// The node that takes its place.
    pub to: NodeId,
    /// Why.
    pub reason: MoveReason,
    /// Where it is, as its driver last reported ("learner", "catching-up",
    /// "transferring-leader", "joint").
    pub phase: String,
}

/// A node that joined the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its name (the pod name): a name that joins again with an empty disk is the same
    /// machine without its data.
    pub name: String,
    /// The random token its join carried (stored with the node's identity), so that a
    /// repeated join is recognised as the same one.
    pub token: u64,
}

/// The map as maps were stored before joins (the fields of [`ClusterMap`] up to
/// `placement`), decoded from older data and converted.
#[derive(Debug, Deserialize)]
pub struct ClusterMapV1 {
    version: u64,
    shards: u32,
    replication_factor: usize,
    nodes: BTreeMap<NodeId, String>,
    placement: Vec<Vec<NodeId>>,
}

impl From<ClusterMapV1> for ClusterMap {
    fn from(m: ClusterMapV1) -> Self {
        let next_node_id = m.nodes.keys().max().map_or(1, |n| n + 1);
        ClusterMapV2 {
            version: m.version,
            shards: m.shards,
            replication_factor: m.replication_factor,
            nodes: m.nodes,
            placement: m.placement,
            members: BTreeMap::new(),
            dead: BTreeSet::new(),
            next_node_id,
        }
        .into()
    }
}

/// The map as stored with joins but before moves (the fields of [`ClusterMap`] up to
/// `next_node_id`), decoded from older data and converted.
#[derive(Debug, Deserialize)]
pub struct ClusterMapV2 {
    version: u64,
    shards: u32,
    replication_factor: usize,
    nodes: BTreeMap<NodeId, String>,
    placement: Vec<Vec<NodeId>>,
    members: BTreeMap<NodeId, Member>,
    dead: BTreeSet<NodeId>,
    next_node_id: NodeId,
}

impl From<ClusterMapV2> for ClusterMap {
    fn from(m: ClusterMapV2) -> Self {
        let meta = founders_meta(&m.nodes);
        ClusterMap {
            version: m.version,
            shards: m.shards,
            replication_factor: m.replication_factor,
            nodes: m.nodes,
            conf_ver: vec![0; m.placement.len()],
            placement: m.placement,
            members: m.members,
            dead: m.dead,
            next_node_id: m.next_node_id,
            info: BTreeMap::new(),
            moves: Vec::new(),
            paused: false,
            meta,
        }
    }
}

/// The metadata group's first voters: the first three nodes by id.
fn founders_meta(nodes: &BTreeMap<NodeId, String>) -> Vec<NodeId> {
    nodes.keys().copied().take(3).collect()
}

impl ClusterMap {
    /// A new cluster of `nodes` with `shards` shards of `rf` replicas each, placed by
    /// walking a ring of the nodes' virtual nodes from each shard's token.
    pub fn create(shards: u32, rf: usize, nodes: BTreeMap<NodeId, String>) -> Result<Self, String> {
        if shards == 0 || !shards.is_power_of_two() {
            return Err(format!("shard count must be a power of two, got {shards}"));
        }
        if rf == 0 || rf > nodes.len() {
            return Err(format!(
                "replication factor {rf} needs at least {rf} storage nodes, have {}",
                nodes.len()
            ));
        }
        let ids: Vec<NodeId> = nodes.keys().copied().collect();
        let placement = (0..shards).map(|s| place(s, rf, &ids)).collect();
        let meta = founders_meta(&nodes);
        let next_node_id = ids.iter().max().map_or(1, |n| n + 1);
        Ok(ClusterMap {
            version: 1,
            shards,
            replication_factor: rf,
            nodes,
            placement,
            members: BTreeMap::new(),
            dead: BTreeSet::new(),
            next_node_id,
            info: BTreeMap::new(),
            conf_ver: vec![0; shards as usize],
            moves: Vec::new(),
            paused: false,
            meta,
        })
    }

    /// Decodes a map as stored and sent (bincode), also one stored before moves or joins
    /// existed.
    pub fn decode(bytes: &[u8]) -> std::io::Result<ClusterMap> {
        use strata_raft::codec::decode;
        decode::<ClusterMap>(bytes).or_else(|e| {
            decode::<ClusterMapV2>(bytes)
                .map(ClusterMap::from)
                .or_else(|_| decode::<ClusterMapV1>(bytes).map(ClusterMap::from))
                .map_err(|_| e)
        })
    }

    /// Node `id`'s zone and state (the defaults for a node without an entry).
    pub fn node_info(&self, id: NodeId) -> NodeInfo {
        self.info.get(&id).cloned().unwrap_or_default()
    }

    /// Records node `id`'s name and zone (as it describes itself); whether that changed the
    /// map.
    pub fn describe(&mut self, id: NodeId, name: &str, zone: &str) -> bool {
        let info = self.node_info(id);
        if !self.nodes.contains_key(&id) || (info.name == name && info.zone == zone) {
            return false;
        }
        let e = self.info.entry(id).or_default();
        e.name = name.to_string();
        e.zone = zone.to_string();
        self.version += 1;
        true
    }

    /// Node `id`'s name ("" when unknown).
    pub fn name_of(&self, id: NodeId) -> String {
        match self.members.get(&id) {
            Some(m) => m.name.clone(),
            None => self.node_info(id).name,
        }
    }

    /// The node an operator means by `who`: a name, else an id.
    pub fn resolve(&self, who: &str) -> Option<NodeId> {
        self.nodes
            .keys()
            .copied()
            .find(|&id| self.name_of(id) == who)
            .or_else(|| who.parse().ok().filter(|id| self.nodes.contains_key(id)))
    }

    /// Sets node `id`'s state; whether that changed the map.
    pub fn set_state(&mut self, id: NodeId, state: NodeState) -> bool {
        if !self.nodes.contains_key(&id) || self.node_info(id).state == state {
            return false;
        }
        self.info.entry(id).or_default().state = state;
        self.version += 1;
        true
    }

    /// Declares node `id` dead (its disk is gone, or it was unseen for too long): its id is
    /// never used again and its replicas are replaced.
    pub fn declare_dead(&mut self, id: NodeId) -> bool {
        if self.dead.contains(&id) {
            return false;
        }
        self.members.remove(&id);
        self.nodes.remove(&id);
        self.info.remove(&id);
        self.dead.insert(id);
        // a move to the dead node cannot finish
        self.moves.retain(|m| m.to != id);
        self.version += 1;
        true
    }

    /// Starts `moves` (each on a shard without one); whether any started.
    pub fn start_moves(&mut self, moves: &[Move]) -> bool {
        let mut started = false;
        for m in moves {
            let placed = self.replicas(m.shard);
            if self.moves.iter().any(|x| x.shard == m.shard)
                || !placed.contains(&m.from)
                || placed.contains(&m.to)
                || !self.nodes.contains_key(&m.to)
            {
                continue;
            }
            self.moves.push(m.clone());
            started = true;
        }
        if started {
            self.version += 1;
        }
        started
    }

    /// Records the phase the driver of `shard`'s move reports.
    pub fn move_phase(&mut self, shard: u32, phase: &str) -> bool {
        match self.moves.iter_mut().find(|m| m.shard == shard) {
            Some(m) if m.phase != phase => {
                m.phase = phase.to_string();
                self.version += 1;
                true
            }
            _ => false,
        }
    }

    /// `shard`'s move from `from` to `to` is done: the group's voters changed, `to` stands
    /// where `from` stood in the placement.
    pub fn finish_move(&mut self, shard: u32, from: NodeId, to: NodeId) -> bool {
        let Some(i) = self.moves.iter().position(|m| m.shard == shard && m.from == from && m.to == to) else {
            return false;
        };
        self.moves.remove(i);
        let replicas =
            if shard == META_GROUP { Some(&mut self.meta) } else { self.placement.get_mut(shard as usize) };
        if let Some(r) = replicas {
            for n in r.iter_mut() {
                if *n == from {
                    *n = to;
                }
            }
        }
        if let Some(v) = self.conf_ver.get_mut(shard as usize) {
            *v += 1;
        }
        self.version += 1;
        true
    }

    /// Drops `shard`'s move (its target was removed from the group again).
    pub fn abort_move(&mut self, shard: u32) -> bool {
        let before = self.moves.len();
        self.moves.retain(|m| m.shard != shard);
        let changed = self.moves.len() != before;
        if changed {
            self.version += 1;
        }
        changed
    }

    /// The groups `node` must host: the shards placed on it, the metadata group if it is
    /// one of its voters, and the groups moving to it.
    pub fn hosted_by(&self, node: NodeId) -> Vec<u32> {
        let mut v = self.shards_of(node);
        if self.meta.contains(&node) {
            v.push(META_GROUP);
        }
        v.extend(self.moves.iter().filter(|m| m.to == node).map(|m| m.shard));
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether `shard` may be initialised by its first replica: no move ever finished on it.
    pub fn initial_membership(&self, shard: u32) -> bool {
        self.conf_ver.get(shard as usize).is_none_or(|&v| v == 0)
    }

    /// Admits a node named `name` whose join carries `token`: a new id for a new name or a
    /// new token (the name's previous id is then declared dead: its disk is gone), the
    /// same id for a repeated join. Returns the node's id.
    pub fn join(&mut self, name: &str, token: u64, addr: &str) -> NodeId {
        if let Some((&id, _)) = self.members.iter().find(|(_, m)| m.name == name && m.token == token) {
            if self.nodes.get(&id).is_some_and(|a| a != addr) {
                self.nodes.insert(id, addr.to_string());
                self.version += 1;
            }
            return id;
        }
        let previous: Vec<NodeId> =
            self.nodes.keys().copied().filter(|&id| !name.is_empty() && self.name_of(id) == name).collect();
        for old in previous {
            self.declare_dead(old);
        }
        let id = self.next_node_id.max(self.nodes.keys().max().map_or(1, |n| n + 1));
        self.next_node_id = id + 1;
        self.nodes.insert(id, addr.to_string());
        self.members.insert(id, Member { name: name.to_string(), token });
        self.version += 1;
        id
    }

    /// The id of the node whose join carried `token`, once the join is in the map.
    pub fn joined(&self, token: u64) -> Option<NodeId> {
        self.members.iter().find(|(_, m)| m.token == token).map(|(&id, _)| id)
    }

    /// The replicas of `shard` (the metadata group's voters for [`META_GROUP`]).
    pub fn replicas(&self, shard: u32) -> &[NodeId] {
        if shard == META_GROUP {
            return &self.meta;
        }
        self.placement.get(shard as usize).map_or(&[], |v| v.as_slice())
    }

    /// The shards `node` hosts a replica of.
    pub fn shards_of(&self, node: NodeId) -> Vec<u32> {
        (0..self.shards).filter(|&s| self.replicas(s).contains(&node)).collect()
    }
}

/// A point on the ring; hashes as its precomputed position only.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VNode {
    node: NodeId,
    position: u64,
}

impl Hash for VNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.position);
    }
}

/// Passes a `u64` through unchanged, so the ring orders by our own stable hashes (the
/// `hashring` crate would otherwise hash with Rust's `DefaultHasher`, not stable across
/// Rust versions).
#[derive(Debug, Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

fn stable_hash(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// The first `rf` distinct nodes clockwise from shard `shard`'s token.
fn place(shard: u32, rf: usize, nodes: &[NodeId]) -> Vec<NodeId> {
    let mut ring = hashring::HashRing::with_hasher(BuildHasherDefault::<Identity>::default());
    for &n in nodes {
        for v in 0..VNODES {
            ring.add(VNode { node: n, position: stable_hash(&format!("node-{n}-vnode-{v}")) });
        }
    }
    let token = stable_hash(&format!("shard-{shard}"));
    let walk = ring.get_with_replicas(&token, ring.len()).unwrap_or_default();
    let mut out: Vec<NodeId> = Vec::with_capacity(rf);
    for v in walk {
        if !out.contains(&v.node) {
            out.push(v.node);
            if out.len() == rf {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u64) -> BTreeMap<NodeId, String> {
        (1..=n).map(|i| (i, format!("127.0.0.1:{}", 7000 + i))).collect()
    }

    #[test]
    fn replicas_are_distinct_and_balanced() {
        let m = ClusterMap::create(64, 3, nodes(5)).expect("map");
        let mut load = BTreeMap::new();
        for s in 0..64 {
            let r = m.replicas(s);
            assert_eq!(r.len(), 3);
            let mut d = r.to_vec();
            d.dedup();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 3, "shard {s}: {r:?}");
            for n in r {
                *load.entry(*n).or_insert(0) += 1;
            }
        }
        // 192 replicas over 5 nodes: none far from 38
        for (n, l) in load {
            assert!((20..=60).contains(&l), "node {n} hosts {l}");
        }
    }

    #[test]
    fn placement_is_stable_and_moves_little_when_a_node_joins() {
        let a = ClusterMap::create(64, 3, nodes(4)).expect("map");
        assert_eq!(a, ClusterMap::create(64, 3, nodes(4)).expect("map"));
        let b = ClusterMap::create(64, 3, nodes(5)).expect("map");
        let moved: usize =
            (0..64).map(|s| a.replicas(s).iter().filter(|n| !b.replicas(s).contains(n)).count()).sum();
        // a fifth node should take about a fifth of the 192 replicas
        assert!(moved < 80, "{moved} replicas moved");
    }

    /// The map as the metadata group stores it and every role decodes it (bincode), and the
    /// placement it holds: a change here breaks every cluster that exists.
    #[test]
    fn encoded_map_and_placement_snapshot() {
        let m = ClusterMap::create(8, 3, nodes(4)).expect("map");
        let bytes = strata_raft::codec::encode(&m).expect("encode");
        assert_eq!(strata_raft::codec::decode::<ClusterMap>(&bytes).expect("decode"), m);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let placement: Vec<String> = (0..8).map(|s| format!("shard {s}: {:?}", m.replicas(s))).collect();
        insta::assert_snapshot!(format!("{hex}\n{}", placement.join("\n")));
    }

    /// A map stored before joins existed (the bytes of `ClusterMap::create(8, 3, nodes(4))`
    /// then) decodes as the same map, with no members and the next id after the founders.
    #[test]
    fn maps_stored_before_joins_decode() {
        let v1 = "01080304010e3132372e302e302e313a37303031020e3132372e302e302e313a37303032030e3132372e302e302e313a\
                  37303033040e3132372e302e302e313a37303034080302010303020304030304010301030403010203030403010304020303040301";
        let bytes: Vec<u8> =
            (0..v1.len()).step_by(2).map(|i| u8::from_str_radix(&v1[i..i + 2], 16).expect("hex")).collect();
        let m = ClusterMap::decode(&bytes).expect("decode");
        assert_eq!(m, ClusterMap::create(8, 3, nodes(4)).expect("map"));
        assert_eq!(m.next_node_id, 5);
    }

    /// A map stored with joins but before moves (bincode writes a struct as the tuple of
    /// its fields) decodes with no moves and every shard at its first membership.
    #[test]
    fn maps_stored_before_moves_decode() {
        let mut m = ClusterMap::create(8, 3, nodes(3)).expect("map");
        m.join("storage-3", 11, "a:7070");
        let v2 = (
            m.version,
            m.shards,
            m.replication_factor,
            m.nodes.clone(),
            m.placement.clone(),
            m.members.clone(),
            m.dead.clone(),
            m.next_node_id,
        );
        let bytes = strata_raft::codec::encode(&v2).expect("encode");
        assert_eq!(ClusterMap::decode(&bytes).expect("decode"), m);
    }

    #[test]
    fn moves_change_the_placement_only_when_they_finish() {
        let mut m = ClusterMap::create(8, 3, nodes(3)).expect("map");
        let d = m.join("storage-4", 12, "d:7070");
        let from = m.replicas(0)[0];
        let mv = Move { shard: 0, from, to: d, reason: MoveReason::Balance, phase: "learner".into() };
        assert!(m.start_moves(std::slice::from_ref(&mv)));
        assert!(!m.start_moves(std::slice::from_ref(&mv)), "one move per shard");
        assert_eq!(m.hosted_by(d), vec![0]);
        assert!(m.initial_membership(0));
        assert!(!m.finish_move(0, from, from), "not the move in flight");
        assert!(m.finish_move(0, from, d));
        assert!(m.replicas(0).contains(&d) && !m.replicas(0).contains(&from));
        assert!(!m.initial_membership(0) && m.moves.is_empty());
        // a move to a node declared dead is dropped with it
        let back = Move { shard: 0, from: d, to: from, ..mv };
        assert!(m.start_moves(&[back]));
        m.declare_dead(from);
        assert!(m.moves.is_empty());
    }

    #[test]
    fn joins_get_fresh_ids_and_a_wiped_name_kills_its_old_one() {
        let mut m = ClusterMap::create(8, 3, nodes(3)).expect("map");
        let a = m.join("storage-3", 11, "a:7070");
        let b = m.join("storage-4", 12, "b:7070");
        assert_eq!((a, b), (4, 5));
        // the same join again (a retry): the same id, no change
        let v = m.version;
        assert_eq!(m.join("storage-3", 11, "a:7070"), 4);
        assert_eq!(m.version, v);
        assert_eq!(m.joined(11), Some(4));
        // the same name with another token (its disk is gone): a new id, the old one dead
        assert_eq!(m.join("storage-3", 13, "a:7070"), 6);
        assert!(m.dead.contains(&4) && !m.nodes.contains_key(&4) && !m.members.contains_key(&4));
        assert_eq!(m.joined(11), None);
        // ids are never reused, not even past the highest live one
        m.nodes.remove(&6);
        m.members.remove(&6);
        assert_eq!(m.join("storage-9", 14, "c:7070"), 7);
        // placement is untouched by joins
        assert_eq!(m.placement, ClusterMap::create(8, 3, nodes(3)).expect("map").placement);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(ClusterMap::create(6, 3, nodes(3)).is_err());
        assert!(ClusterMap::create(8, 4, nodes(3)).is_err());
    }
}
