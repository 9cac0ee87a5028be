//! The cluster map: storage nodes, shard count, replication factor and the placement of
//! every shard's replicas — computed once by the bootstrapping node, stored in the
//! metadata group and read by everyone else (never recomputed independently).

use std::collections::BTreeMap;
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
        Ok(ClusterMap { version: 1, shards, replication_factor: rf, nodes, placement })
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

    #[test]
    fn bad_settings_are_refused() {
        assert!(ClusterMap::create(6, 3, nodes(3)).is_err());
        assert!(ClusterMap::create(8, 4, nodes(3)).is_err());
    }
}
