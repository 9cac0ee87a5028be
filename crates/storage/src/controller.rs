//! The placement controller. It runs on whichever node leads the metadata group, once per
//! reconcile tick, and keeps nothing that matters in memory: the moves in flight are in
//! the cluster map, so a new leader picks them up where they stand (each step on a
//! shard's leader is idempotent).
//!
//! A tick: ask every node for its groups (the heartbeat: a node unseen for `dead_after` is
//! declared dead), drive every move one step on its shard's leader (finish it once the
//! joint change committed; abort it when its target is gone or it outlived
//! `move_timeout`), mark drained nodes decommissioned, hand leaderships off draining
//! nodes, then, unless paused, start the moves [`planner::plan`] picks and balance
//! leaders ([`planner::plan_leaders`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_cluster::planner::{self, PlanLimits};
use strata_cluster::{ClusterClient, ClusterMap, Move, NodeState as Lifecycle};
use strata_proto::cluster::{ChangeReplicasRequest, NodeStatusReply, ReplicaOp};
use strata_raft::{META_GROUP, NodeId};
use tokio::time::Instant;

use crate::node::NodeState;
use strata_cluster::Command;

/// How the placement controller moves replicas.
#[derive(Debug, Clone)]
pub struct PlacementConfig {
    /// Replica moves in flight cluster-wide. Default 4.
    pub max_moves: usize,
    /// Moves in flight into one node and out of one node (one snapshot in, one out).
    /// Default 1.
    pub max_moves_per_node: usize,
    /// A node unseen by the metadata leader for this long is declared dead and its
    /// replicas are replaced on the others. Default 5 minutes.
    pub dead_after: Duration,
    /// A move not done after this long is aborted (and planned again, possibly elsewhere).
    /// Default 30 minutes.
    pub move_timeout: Duration,
    /// A move whose target has been unreachable for this long is aborted. Default 30 s.
    pub target_down_abort: Duration,
    /// How long a node keeps a replica the map no longer places on it (reads in flight),
    /// before deleting its data. Default 30 s.
    pub replica_grace: Duration,
    /// A new replica counts as caught up within this many log entries of its leader.
    /// Default 64.
    pub max_lag: u64,
    /// Whether leaderships are balanced across nodes (±1) when no move is in flight.
    /// Default true.
    pub balance_leaders: bool,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            max_moves: 4,
            max_moves_per_node: 1,
            dead_after: Duration::from_secs(300),
            move_timeout: Duration::from_secs(1800),
            target_down_abort: Duration::from_secs(30),
            replica_grace: Duration::from_secs(30),
            max_lag: 64,
            balance_leaders: true,
        }
    }
}

/// What the controller did, for `/metrics`.
#[derive(Debug, Default)]
pub struct PlacementStats {
    /// Moves started.
    pub moves_started: AtomicU64,
    /// Moves finished (the new replica a voter, the old one gone).
    pub moves_done: AtomicU64,
    /// Moves aborted (target gone, timed out).
    pub moves_aborted: AtomicU64,
    /// Nodes declared dead.
    pub nodes_declared_dead: AtomicU64,
}

/// The controller's soft state (lost with the metadata leadership, rebuilt by the next).
#[derive(Debug, Default)]
pub(crate) struct Controller {
    leading_since: Option<Instant>,
    last_seen: HashMap<NodeId, Instant>,
    move_seen: HashMap<u32, Instant>,
}

/// Each shard's voters whose applied index is within `max_lag` of its leader's log.
fn caught_up(statuses: &BTreeMap<NodeId, NodeStatusReply>, max_lag: u64) -> BTreeMap<u32, BTreeSet<NodeId>> {
    let mut out: BTreeMap<u32, BTreeSet<NodeId>> = BTreeMap::new();
    for (&id, s) in statuses {
        for g in s.groups.iter().filter(|g| g.group != META_GROUP && g.leader == id) {
            let fresh = g.voters.iter().copied().filter(|v| {
                statuses
                    .get(v)
                    .and_then(|r| r.groups.iter().find(|x| x.group == g.group))
                    .is_some_and(|x| x.applied + max_lag >= g.last_log)
            });
            out.insert(g.group, fresh.collect());
        }
    }
    out
}

/// Each group's leader as its leader reports it (the metadata group's too).
fn leaders_of(statuses: &BTreeMap<NodeId, NodeStatusReply>) -> BTreeMap<u32, NodeId> {
    let mut out = BTreeMap::new();
    for (&id, s) in statuses {
        for g in &s.groups {
            if g.leader == id {
                out.insert(g.group, id);
            }
        }
    }
    out
}

impl Controller {
    /// One tick; a no-op unless this node leads the metadata group.
    pub(crate) async fn tick(&mut self, st: &NodeState, client: &ClusterClient) {
        let (cfg, stats) = (&st.placement_cfg, &*st.placement);
        let leads = st.raft.status(META_GROUP).is_ok_and(|s| s.leader == Some(st.id));
        let map = st.map.read().clone();
        let (true, Some(map)) = (leads, map) else {
            *self = Controller::default();
            return;
        };
        let now = Instant::now();
        let since = *self.leading_since.get_or_insert(now);
        let statuses = crate::admin::reports(client, &map, Some(st)).await;
        for &id in statuses.keys() {
            self.last_seen.insert(id, now);
        }
        let live: BTreeSet<NodeId> = statuses.keys().copied().collect();
        let seen = |c: &Self, id: NodeId| c.last_seen.get(&id).copied().unwrap_or(since);
        for &id in map.nodes.keys() {
            if id != st.id && now.duration_since(seen(self, id)) >= cfg.dead_after {
                tracing::warn!(node = id, after = ?cfg.dead_after, "node unseen for too long: declared dead, its replicas are replaced");
                if propose(st, client, &Command::DeclareDead(id)).await {
                    stats.nodes_declared_dead.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let leaders = leaders_of(&statuses);
        self.move_seen.retain(|s, _| map.moves.iter().any(|m| m.shard == *s));
        for mv in &map.moves {
            let started = *self.move_seen.entry(mv.shard).or_insert(now);
            let target_gone = now.duration_since(seen(self, mv.to)) >= cfg.target_down_abort;
            let expired = now.duration_since(started) >= cfg.move_timeout;
            let Some(addr) = leaders.get(&mv.shard).and_then(|l| map.nodes.get(l)) else {
                continue;
            };
            if target_gone || expired {
                abort(st, client, addr, mv, stats).await;
                continue;
            }
            self.step(st, cfg, stats, client, &map, addr, mv).await;
        }
        decommission_drained(st, client, &map, &leaders).await;
        let candidates = caught_up(&statuses, cfg.max_lag);
        hand_off_draining(client, &map, &leaders, &candidates).await;
        if map.paused {
            return;
        }
        let limits = PlanLimits { max_moves: cfg.max_moves, max_per_node: cfg.max_moves_per_node };
        let planned = planner::plan(&map, &live, limits);
        if !planned.is_empty() {
            for m in &planned {
                tracing::info!(
                    shard = m.shard,
                    from = m.from,
                    to = m.to,
                    reason = m.reason.name(),
                    "starting a replica move"
                );
            }
            if propose(st, client, &Command::StartMoves(planned.clone())).await {
                stats.moves_started.fetch_add(planned.len() as u64, Ordering::Relaxed);
            }
        } else if map.moves.is_empty() && cfg.balance_leaders {
            let shard_leaders: BTreeMap<u32, NodeId> =
                leaders.range(..map.shards).map(|(s, l)| (*s, *l)).collect();
            if shard_leaders.len() < map.shards as usize {
                return;
            }
            for (shard, to) in planner::plan_leaders(&map, &shard_leaders, &candidates, &live, 2) {
                let Some(addr) = leaders.get(&shard).and_then(|l| map.nodes.get(l)) else { continue };
                transfer(client, addr, shard, to, "balancing leaders").await;
            }
        }
    }

    /// One step of `mv` on its shard's leader at `addr`.
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &mut self,
        st: &NodeState,
        cfg: &PlacementConfig,
        stats: &PlacementStats,
        client: &ClusterClient,
        map: &ClusterMap,
        addr: &str,
        mv: &Move,
    ) {
        let Some(to_addr) = map.nodes.get(&mv.to) else { return };
        let req = ChangeReplicasRequest {
            shard: mv.shard,
            op: ReplicaOp::Replace as i32,
            remove: mv.from,
            add: mv.to,
            add_addr: to_addr.clone(),
            max_lag: cfg.max_lag,
        };
        match client.change_replicas(addr, req).await {
            Ok(r) if r.done => {
                let cmd = Command::FinishMove { shard: mv.shard, from: mv.from, to: mv.to };
                if propose(st, client, &cmd).await {
                    tracing::info!(shard = mv.shard, from = mv.from, to = mv.to, "replica move done");
                    stats.moves_done.fetch_add(1, Ordering::Relaxed);
                    self.move_seen.remove(&mv.shard);
                }
            }
            Ok(r) if r.not_leader => {}
            Ok(r) if r.phase != mv.phase => {
                propose(st, client, &Command::MovePhase { shard: mv.shard, phase: r.phase }).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(shard = mv.shard, error = %e.message(), "replica move step failed; retrying")
            }
        }
    }
}

/// Proposes `cmd` to the metadata group (this node leads it); whether it applied.
async fn propose(st: &NodeState, client: &ClusterClient, cmd: &Command) -> bool {
    let bytes = match strata_raft::codec::encode(cmd) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "encoding a metadata command");
            return false;
        }
    };
    match crate::node::update_metadata(st, client, bytes).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, ?cmd, "metadata command not applied");
            false
        }
    }
}

/// Drops `mv`'s target from its group (unless it is a voter already: then the move goes
/// on) and the move from the map.
async fn abort(st: &NodeState, client: &ClusterClient, addr: &str, mv: &Move, stats: &PlacementStats) {
    let req = ChangeReplicasRequest {
        shard: mv.shard,
        op: ReplicaOp::DropLearner as i32,
        add: mv.to,
        ..Default::default()
    };
    match client.change_replicas(addr, req).await {
        Ok(r) if r.done => {
            tracing::warn!(
                shard = mv.shard,
                from = mv.from,
                to = mv.to,
                "replica move aborted (target gone or too slow)"
            );
            if propose(st, client, &Command::AbortMove { shard: mv.shard }).await {
                stats.moves_aborted.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(shard = mv.shard, error = %e.message(), "aborting a move failed; retrying"),
    }
}

/// Marks draining nodes that hold and lead nothing decommissioned.
async fn decommission_drained(
    st: &NodeState,
    client: &ClusterClient,
    map: &ClusterMap,
    leaders: &BTreeMap<u32, NodeId>,
) {
    for &id in map.nodes.keys() {
        let drained = map.node_info(id).state == Lifecycle::Draining
            && map.shards_of(id).is_empty()
            && !map.meta.contains(&id)
            && !map.moves.iter().any(|m| m.from == id || m.to == id)
            && !leaders.values().any(|&l| l == id);
        if drained
            && propose(st, client, &Command::SetNodeState { id, state: Lifecycle::Decommissioned }).await
        {
            tracing::info!(node = id, "node drained: decommissioned, it may be deleted");
        }
    }
}

/// Hands the leaderships of draining nodes to other caught-up voters (before their
/// replicas move, so that writes never wait on a node being emptied).
async fn hand_off_draining(
    client: &ClusterClient,
    map: &ClusterMap,
    leaders: &BTreeMap<u32, NodeId>,
    candidates: &BTreeMap<u32, BTreeSet<NodeId>>,
) {
    for (&shard, &l) in leaders.range(..map.shards) {
        // a move of the shard hands its leadership over itself
        if map.node_info(l).state == Lifecycle::Active || map.moves.iter().any(|m| m.shard == shard) {
            continue;
        }
        let Some(addr) = map.nodes.get(&l) else { continue };
        let Some(&to) = candidates
            .get(&shard)
            .into_iter()
            .flatten()
            .find(|&&v| v != l && map.node_info(v).state == Lifecycle::Active)
        else {
            continue;
        };
        transfer(client, addr, shard, to, "handing a leadership off a draining node").await;
    }
}

/// Asks the leader of `shard` at `addr` to hand its leadership to `to` (`why`: for the log).
async fn transfer(client: &ClusterClient, addr: &str, shard: u32, to: NodeId, why: &str) {
    let req =
        ChangeReplicasRequest { shard, op: ReplicaOp::TransferLeader as i32, add: to, ..Default::default() };
    if let Err(e) = client.change_replicas(addr, req).await {
        tracing::debug!(shard, to, error = %e.message(), "{why} failed");
    }
}
