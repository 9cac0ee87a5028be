//! The placement planner: from the cluster map and which nodes are alive, the replica moves
//! to start next and the leaderships to hand over. Pure (no I/O, no clock): the placement
//! controller on the metadata leader runs it and proposes what it returns.
//!
//! The metadata group's voters are replaced and drained like a shard's replicas (never
//! moved for balance). Priorities, highest first: replace the replicas of dead nodes (restores the replication
//! factor), drain draining nodes, fix zone violations, then balance replica counts to ±1
//! (only while no shard is under-replicated). A node is a target only when it is known,
//! active and alive; zones: with at least as many zones as replicas no two replicas of a
//! shard share one, otherwise at most ⌈RF / zones⌉ per zone.

use std::collections::{BTreeMap, BTreeSet};

use strata_raft::{META_GROUP, NodeId};

use crate::map::{ClusterMap, Move, MoveReason, NodeState};

/// How much moving may happen at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Moves in flight cluster-wide. Default 4.
    pub max_moves: usize,
    /// Moves in flight into one node, and out of one node (each brings a snapshot in or
    /// takes a leadership and a replica away). Default 1.
    pub max_per_node: usize,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits { max_moves: 4, max_per_node: 1 }
    }
}

/// The planner's view of one map: loads as they will be once the moves in flight finish.
struct View<'a> {
    map: &'a ClusterMap,
    /// Nodes that may take a replica: known, active, alive.
    targets: BTreeSet<NodeId>,
    /// Replicas per node once the moves in flight (and those planned so far) are done.
    load: BTreeMap<NodeId, usize>,
    inbound: BTreeMap<NodeId, usize>,
    outbound: BTreeMap<NodeId, usize>,
    /// Each group's replicas once its move (if any) is done: the shards', and the metadata
    /// group's under [`META_GROUP`].
    replicas: BTreeMap<u32, Vec<NodeId>>,
    busy: BTreeSet<u32>,
    limits: PlanLimits,
    planned: Vec<Move>,
}

impl<'a> View<'a> {
    fn new(map: &'a ClusterMap, live: &BTreeSet<NodeId>, limits: PlanLimits) -> Self {
        let targets: BTreeSet<NodeId> = map
            .nodes
            .keys()
            .copied()
            .filter(|n| live.contains(n) && map.node_info(*n).state == NodeState::Active)
            .collect();
        let mut replicas: BTreeMap<u32, Vec<NodeId>> =
            (0..map.shards).chain([META_GROUP]).map(|s| (s, map.replicas(s).to_vec())).collect();
        let (mut inbound, mut outbound) = (BTreeMap::new(), BTreeMap::new());
        let mut busy = BTreeSet::new();
        for m in &map.moves {
            busy.insert(m.shard);
            *inbound.entry(m.to).or_insert(0) += 1;
            *outbound.entry(m.from).or_insert(0) += 1;
            if let Some(r) = replicas.get_mut(&m.shard) {
                for n in r.iter_mut() {
                    if *n == m.from {
                        *n = m.to;
                    }
                }
            }
        }
        let mut load: BTreeMap<NodeId, usize> = map.nodes.keys().map(|&n| (n, 0)).collect();
        for (_, r) in replicas.range(..map.shards) {
            for n in r {
                *load.entry(*n).or_insert(0) += 1;
            }
        }
        View { map, targets, load, inbound, outbound, replicas, busy, limits, planned: Vec::new() }
    }

    fn budget_left(&self) -> bool {
        self.map.moves.len() + self.planned.len() < self.limits.max_moves
    }

    fn zone(&self, n: NodeId) -> String {
        self.map.node_info(n).zone
    }

    /// Most replicas of one shard in one zone.
    fn zone_cap(&self) -> usize {
        let zones: BTreeSet<String> =
            self.map.nodes.keys().filter(|n| self.live_member(**n)).map(|n| self.zone(*n)).collect();
        self.map.replication_factor.div_ceil(zones.len().max(1))
    }

    fn live_member(&self, n: NodeId) -> bool {
        self.targets.contains(&n) || self.map.node_info(n).state == NodeState::Draining
    }

    /// Whether `to` may take a replica of `shard` in place of `from`.
    fn may_take(&self, shard: u32, from: NodeId, to: NodeId) -> bool {
        let replicas = &self.replicas[&shard];
        if !self.targets.contains(&to)
            || replicas.contains(&to)
            || self.inbound.get(&to).copied().unwrap_or(0) >= self.limits.max_per_node
        {
            return false;
        }
        let zone = self.zone(to);
        let same = replicas.iter().filter(|&&n| n != from && self.zone(n) == zone).count();
        same < self.zone_cap()
    }

    /// Whether a replica may leave `from` now (a dead node's always may: nothing is sent
    /// from it).
    fn may_leave(&self, from: NodeId) -> bool {
        !self.map.nodes.contains_key(&from)
            || self.outbound.get(&from).copied().unwrap_or(0) < self.limits.max_per_node
    }

    /// The least-loaded node that may take `shard`'s replica on `from`.
    fn best_target(&self, shard: u32, from: NodeId) -> Option<NodeId> {
        self.targets
            .iter()
            .copied()
            .filter(|&to| self.may_take(shard, from, to))
            .min_by_key(|to| (self.load.get(to).copied().unwrap_or(0), *to))
    }

    fn add(&mut self, shard: u32, from: NodeId, to: NodeId, reason: MoveReason) {
        self.busy.insert(shard);
        *self.inbound.entry(to).or_insert(0) += 1;
        *self.outbound.entry(from).or_insert(0) += 1;
        if shard != META_GROUP {
            *self.load.entry(to).or_insert(0) += 1;
            if let Some(l) = self.load.get_mut(&from) {
                *l = l.saturating_sub(1);
            }
        }
        for n in self.replicas.entry(shard).or_default().iter_mut() {
            if *n == from {
                *n = to;
            }
        }
        self.planned.push(Move { shard, from, to, reason, phase: "learner".into() });
    }

    /// Moves every replica that `leaving` picks out (dead, draining, zone-crowded) to the
    /// best target, as budget and limits allow.
    fn evict(&mut self, reason: MoveReason, leaving: impl Fn(&Self, u32, NodeId) -> bool) {
        let groups: Vec<u32> = self.replicas.keys().copied().collect();
        for shard in groups {
            if self.busy.contains(&shard) {
                continue;
            }
            let replicas = self.replicas[&shard].clone();
            for from in replicas {
                if !self.budget_left() {
                    return;
                }
                if !leaving(self, shard, from) || !self.may_leave(from) {
                    continue;
                }
                if let Some(to) = self.best_target(shard, from) {
                    self.add(shard, from, to, reason);
                    break;
                }
            }
        }
    }

    /// Whether `shard`'s replica on `n` shares its zone with more replicas than allowed
    /// (it is the highest-id one of them, so exactly the excess moves).
    fn crowded(&self, shard: u32, n: NodeId) -> bool {
        let replicas = &self.replicas[&shard];
        let zone = self.zone(n);
        let same: Vec<NodeId> = replicas.iter().copied().filter(|&m| self.zone(m) == zone).collect();
        let cap = self.zone_cap();
        same.len() > cap && same.iter().rev().take(same.len() - cap).any(|&m| m == n)
    }

    fn under_replicated(&self) -> bool {
        let dead = |n: &NodeId| !self.map.nodes.contains_key(n);
        self.map.moves.iter().any(|m| m.reason == MoveReason::Replace)
            || self.replicas.values().any(|r| r.iter().any(dead))
    }

    /// Moves replicas from the most to the least loaded targets while they differ by two or
    /// more (so counts converge to ±1).
    fn balance(&mut self) {
        while self.budget_left() {
            let by_load = |v: &Self| {
                let mut t: Vec<(usize, NodeId)> =
                    v.targets.iter().map(|n| (v.load.get(n).copied().unwrap_or(0), *n)).collect();
                t.sort_unstable();
                t
            };
            let order = by_load(self);
            let mut moved = false;
            'pairs: for &(hi_load, hi) in order.iter().rev() {
                if !self.may_leave(hi) {
                    continue;
                }
                for &(lo_load, lo) in &order {
                    if hi_load < lo_load + 2 {
                        break;
                    }
                    let shard = (0..self.map.shards).find(|&s| {
                        !self.busy.contains(&s) && self.replicas[&s].contains(&hi) && self.may_take(s, hi, lo)
                    });
                    if let Some(s) = shard {
                        self.add(s, hi, lo, MoveReason::Balance);
                        moved = true;
                        break 'pairs;
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }
}

/// The moves to start next on `map`, given the nodes seen alive lately.
pub fn plan(map: &ClusterMap, live: &BTreeSet<NodeId>, limits: PlanLimits) -> Vec<Move> {
    let mut v = View::new(map, live, limits);
    v.evict(MoveReason::Replace, |v, _, n| !v.map.nodes.contains_key(&n));
    v.evict(MoveReason::Drain, |v, _, n| v.map.node_info(n).state != NodeState::Active);
    if !v.under_replicated() {
        v.evict(MoveReason::Zone, |v, s, n| v.crowded(s, n));
        v.balance();
    }
    v.planned
}

/// The leaderships to hand over so that leaders per node converge to ±1: `(shard, to)`,
/// along chains from the node leading the most to one leading two fewer, while there is
/// one; at most `max` of them. `leaders` is each shard's current leader, `candidates` the
/// voters of each shard that may lead it (caught up with its log); draining and dead
/// nodes get nothing.
pub fn plan_leaders(
    map: &ClusterMap,
    leaders: &BTreeMap<u32, NodeId>,
    candidates: &BTreeMap<u32, BTreeSet<NodeId>>,
    live: &BTreeSet<NodeId>,
    max: usize,
) -> Vec<(u32, NodeId)> {
    let eligible = |n: &NodeId| {
        live.contains(n) && map.nodes.contains_key(n) && map.node_info(*n).state == NodeState::Active
    };
    let mut count: BTreeMap<NodeId, usize> =
        map.nodes.keys().filter(|n| eligible(n)).map(|&n| (n, 0)).collect();
    let mut lead = leaders.clone();
    for l in lead.values() {
        if let Some(c) = count.get_mut(l) {
            *c += 1;
        }
    }
    let moving: BTreeSet<u32> = map.moves.iter().map(|m| m.shard).collect();
    let mut out = Vec::new();
    while out.len() < max {
        let mut order: Vec<(usize, NodeId)> = count.iter().map(|(&n, &c)| (c, n)).collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        let Some(path) =
            order.iter().find_map(|&(c, hi)| relief_path(candidates, &lead, &count, &moving, hi, c))
        else {
            break;
        };
        for (s, from, to) in path.into_iter().take(max - out.len()) {
            lead.insert(s, to);
            *count.entry(from).or_insert(1) -= 1;
            *count.entry(to).or_insert(0) += 1;
            out.push((s, to));
        }
    }
    out
}

/// The shortest chain of hand-overs (`(shard, from, to)`, each `from` leading `shard` and
/// `to` one of its voters) from `hi` (leading `c` shards) to a node leading `c − 2` or
/// fewer: the intermediate nodes give one and take one, so only the ends change.
fn relief_path(
    candidates: &BTreeMap<u32, BTreeSet<NodeId>>,
    lead: &BTreeMap<u32, NodeId>,
    count: &BTreeMap<NodeId, usize>,
    moving: &BTreeSet<u32>,
    hi: NodeId,
    c: usize,
) -> Option<Vec<(u32, NodeId, NodeId)>> {
    let mut came: BTreeMap<NodeId, (u32, NodeId)> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([hi]);
    while let Some(u) = queue.pop_front() {
        for (&s, _) in lead.iter().filter(|(s, l)| **l == u && !moving.contains(s)) {
            for &v in candidates.get(&s).into_iter().flatten() {
                if v == hi || came.contains_key(&v) || !count.contains_key(&v) {
                    continue;
                }
                came.insert(v, (s, u));
                if count[&v] + 2 <= c {
                    let mut path = Vec::new();
                    let mut at = v;
                    while at != hi {
                        let (s, from) = came[&at];
                        path.push((s, from, at));
                        at = from;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(v);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(n: u64, shards: u32) -> ClusterMap {
        let nodes = (1..=3).map(|i| (i, format!("n{i}:7070"))).collect();
        let mut m = ClusterMap::create(shards, 3, nodes).expect("map");
        for i in 4..=n {
            m.join(&format!("storage-{i}"), i, &format!("n{i}:7070"));
        }
        m
    }

    fn live(m: &ClusterMap) -> BTreeSet<NodeId> {
        m.nodes.keys().copied().collect()
    }

    fn loads(m: &ClusterMap) -> BTreeMap<NodeId, usize> {
        let mut l: BTreeMap<NodeId, usize> = m.nodes.keys().map(|&n| (n, 0)).collect();
        for s in 0..m.shards {
            for n in m.replicas(s) {
                *l.entry(*n).or_insert(0) += 1;
            }
        }
        l
    }

    /// Runs the planner to a fixed point, finishing every move it starts at once; checks
    /// the limits on every round. Returns the rounds taken.
    fn converge(m: &mut ClusterMap, limits: PlanLimits) -> usize {
        for round in 0..10_000 {
            let moves = plan(m, &live(m), limits);
            if moves.is_empty() {
                return round;
            }
            assert!(moves.len() <= limits.max_moves, "{} moves at once", moves.len());
            let mut into: BTreeMap<NodeId, usize> = BTreeMap::new();
            let mut shards = BTreeSet::new();
            for mv in &moves {
                *into.entry(mv.to).or_insert(0) += 1;
                assert!(shards.insert(mv.shard), "two moves of shard {}", mv.shard);
                assert!(!m.replicas(mv.shard).contains(&mv.to));
            }
            assert!(into.values().all(|&c| c <= limits.max_per_node), "{into:?}");
            assert!(m.start_moves(&moves));
            for mv in moves {
                assert!(m.finish_move(mv.shard, mv.from, mv.to));
            }
            for s in 0..m.shards {
                let r: BTreeSet<_> = m.replicas(s).iter().collect();
                assert_eq!(r.len(), m.replication_factor, "shard {s}: {:?}", m.replicas(s));
            }
        }
        panic!("no fixed point");
    }

    #[test]
    fn converges_to_one_replica_apart_from_three_to_twelve_nodes() {
        for n in 3..=12 {
            let mut m = cluster(n, 64);
            converge(&mut m, PlanLimits::default());
            let l = loads(&m);
            let (lo, hi) = (l.values().min().copied().unwrap_or(0), l.values().max().copied().unwrap_or(0));
            assert!(hi - lo <= 1, "{n} nodes: {l:?}");
            assert_eq!(l.values().sum::<usize>(), 64 * 3);
        }
    }

    #[test]
    fn a_balanced_map_plans_nothing() {
        let mut m = cluster(5, 64);
        converge(&mut m, PlanLimits::default());
        assert!(plan(&m, &live(&m), PlanLimits::default()).is_empty());
    }

    #[test]
    fn zones_never_hold_two_replicas_of_a_shard_when_there_are_enough() {
        let mut m = cluster(6, 32);
        for (n, z) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
            m.describe(n, "", z);
        }
        converge(&mut m, PlanLimits::default());
        for s in 0..32 {
            let zones: BTreeSet<String> = m.replicas(s).iter().map(|n| m.node_info(*n).zone).collect();
            assert_eq!(zones.len(), 3, "shard {s}: {:?}", m.replicas(s));
        }
        let l = loads(&m);
        assert!(l.values().max().unwrap_or(&0) - l.values().min().unwrap_or(&0) <= 1, "{l:?}");
        // two zones for three replicas: at most two per zone
        let mut m = cluster(4, 16);
        for (n, z) in [(1, "a"), (2, "a"), (3, "a"), (4, "b")] {
            m.describe(n, "", z);
        }
        converge(&mut m, PlanLimits::default());
        for s in 0..16 {
            let in_a = m.replicas(s).iter().filter(|n| m.node_info(**n).zone == "a").count();
            assert_eq!(in_a, 2, "shard {s}: {:?}", m.replicas(s));
        }
    }

    #[test]
    fn draining_nodes_empty_and_take_nothing() {
        let mut m = cluster(5, 64);
        converge(&mut m, PlanLimits::default());
        m.set_state(4, NodeState::Draining);
        m.set_state(5, NodeState::Draining);
        converge(&mut m, PlanLimits::default());
        let l = loads(&m);
        assert_eq!((l[&4], l[&5]), (0, 0), "{l:?}");
        assert_eq!((l[&1], l[&2], l[&3]), (64, 64, 64));
    }

    #[test]
    fn metadata_voters_leave_draining_and_dead_nodes() {
        let mut m = cluster(5, 16);
        converge(&mut m, PlanLimits::default());
        assert_eq!(m.meta, vec![1, 2, 3]);
        m.set_state(1, NodeState::Draining);
        m.declare_dead(2);
        converge(&mut m, PlanLimits { max_moves: 8, max_per_node: 8 });
        let meta: BTreeSet<NodeId> = m.meta.iter().copied().collect();
        assert_eq!(meta, [3, 4, 5].into(), "{:?}", m.meta);
        assert!(m.shards_of(1).is_empty());
    }

    #[test]
    fn dead_replicas_are_replaced_before_any_balancing() {
        let mut m = cluster(4, 64);
        converge(&mut m, PlanLimits::default());
        let on_2 = m.shards_of(2).len();
        m.declare_dead(2);
        m.join("storage-9", 99, "n9:7070");
        let limits = PlanLimits { max_moves: 100, max_per_node: 100 };
        let first = plan(&m, &live(&m), limits);
        // its shards, and its seat in the metadata group
        assert_eq!(first.len(), on_2 + 1);
        assert!(first.iter().all(|mv| mv.from == 2 && mv.reason == MoveReason::Replace), "{first:?}");
        converge(&mut m, limits);
        let l = loads(&m);
        assert!(!l.contains_key(&2) && l.values().max().unwrap_or(&0) - l.values().min().unwrap_or(&0) <= 1);
    }

    #[test]
    fn limits_hold_and_nodes_not_alive_get_nothing() {
        let mut m = cluster(8, 64);
        let limits = PlanLimits { max_moves: 3, max_per_node: 1 };
        let moves = plan(&m, &live(&m), limits);
        assert_eq!(moves.len(), 3);
        // moves in flight count against the budget
        assert!(m.start_moves(&moves));
        assert!(plan(&m, &live(&m), limits).is_empty());
        // a node not seen alive is no target
        let mut m2 = cluster(4, 16);
        let mut alive = live(&m2);
        alive.remove(&4);
        assert!(plan(&m2, &alive, PlanLimits::default()).is_empty());
        m2.set_state(4, NodeState::Draining);
        assert!(plan(&m2, &live(&m2), PlanLimits::default()).is_empty(), "node 4 holds nothing");
    }

    #[test]
    fn leaders_converge_to_one_apart_among_voters() {
        let mut m = cluster(5, 64);
        converge(&mut m, PlanLimits::default());
        // every shard led by its lowest-id voter: lopsided
        let mut leaders: BTreeMap<u32, NodeId> =
            (0..64).map(|s| (s, *m.replicas(s).iter().min().expect("voters"))).collect();
        let candidates = (0..64).map(|s| (s, m.replicas(s).iter().copied().collect())).collect();
        loop {
            let t = plan_leaders(&m, &leaders, &candidates, &live(&m), 4);
            if t.is_empty() {
                break;
            }
            for (s, to) in t {
                assert!(m.replicas(s).contains(&to));
                leaders.insert(s, to);
            }
        }
        let mut c: BTreeMap<NodeId, usize> = BTreeMap::new();
        for l in leaders.values() {
            *c.entry(*l).or_insert(0) += 1;
        }
        assert!(c.values().max().unwrap_or(&0) - c.values().min().unwrap_or(&0) <= 1, "{c:?}");
    }
}
