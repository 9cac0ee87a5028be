//! The cluster map: storage nodes, shard count, replication factor and the placement of
//! every shard's replicas — computed once by the bootstrapping node, stored in the
//! metadata group and read by everyone else (never recomputed independently).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use serde::{Deserialize, Serialize};
use strata_raft::NodeId;

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
        ClusterMap {
            version: m.version,
            shards: m.shards,
            replication_factor: m.replication_factor,
            nodes: m.nodes,
            placement: m.placement,
            members: BTreeMap::new(),
            dead: BTreeSet::new(),
            next_node_id,
        }
    }
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
        })
    }

    /// Decodes a map as stored and sent (bincode), also one stored before joins existed.
    pub fn decode(bytes: &[u8]) -> std::io::Result<ClusterMap> {
        strata_raft::codec::decode::<ClusterMap>(bytes).or_else(|e| {
            strata_raft::codec::decode::<ClusterMapV1>(bytes).map(ClusterMap::from).map_err(|_| e)
        })
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
            self.members.iter().filter(|(_, m)| m.name == name).map(|(&id, _)| id).collect();
        for old in previous {
            self.members.remove(&old);
            self.nodes.remove(&old);
            self.dead.insert(old);
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

    /// The replicas of `shard`.
    pub fn replicas(&self, shard: u32) -> &[NodeId] {
        self.placement.get(shard as usize).map_or(&[], |v| v.as_slice())
    }

    /// The shards `node` hosts a replica of.
    pub fn shards_of(&self, node: NodeId) -> Vec<u32> {
        (0..self.shards).filter(|&s| self.replicas(s).contains(&node)).collect()
    }

    /// The first nodes (by id), which hold the metadata group.
    pub fn metadata_nodes(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().take(3).collect()
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
