//! The cluster as operators see and steer it: [`status`] (the map joined with what every
//! node reports of its groups: `GET /api/v1/cluster/status`) and the verbs
//! ([`set_node_state`]: decommission, recommission; [`set_paused`]), through any
//! [`ClusterClient`] — a storage node's, a querier's, or `strata admin`'s.

use std::collections::BTreeMap;

use serde::Serialize;
use strata_cluster::{ClusterClient, ClusterMap, Error, NodeState as Lifecycle, Result};
use strata_proto::cluster::NodeStatusReply;
use strata_raft::NodeId;

use strata_cluster::Command;

/// The whole cluster's status.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The cluster map's version.
    pub version: u64,
    /// Replicas per shard.
    pub replication_factor: usize,
    /// Whether new moves are paused.
    pub paused: bool,
    /// Every node, the dead ones included.
    pub nodes: Vec<NodeView>,
    /// Every shard.
    pub shards: Vec<ShardView>,
    /// The moves in flight.
    pub moves: Vec<MoveView>,
    /// Shards with fewer live voters than the replication factor.
    pub under_replicated: usize,
    /// Shards whose membership is joint (a voter change halfway).
    pub joint: usize,
    /// Shards that lost their quorum (a majority of their voters dead or unreachable):
    /// they take no writes, and nothing repairs them automatically.
    pub quorum_lost: Vec<u32>,
}

/// One node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Its id.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Its gRPC address ("" once dead).
    pub addr: String,
    /// Its zone.
    pub zone: String,
    /// `active`, `draining`, `decommissioned` or `dead`.
    pub state: &'static str,
    /// Whether it answered just now.
    pub reachable: bool,
    /// Shard replicas the map places on it.
    pub replicas: usize,
    /// Whether it is a voter of the metadata group.
    pub meta: bool,
    /// Shards it leads.
    pub leaders: usize,
}

/// One shard.
#[derive(Debug, Clone, Serialize)]
pub struct ShardView {
    /// The shard.
    pub id: u32,
    /// Its voters (as its leader reports them; else as placed).
    pub voters: Vec<NodeId>,
    /// Its learners (replicas being added).
    pub learners: Vec<NodeId>,
    /// Its leader, if one answered.
    pub leader: Option<NodeId>,
    /// Its replicas as the cluster map places them (the voters once moves finish).
    pub placed: Vec<NodeId>,
}

/// One move in flight.
#[derive(Debug, Clone, Serialize)]
pub struct MoveView {
    /// The shard.
    pub shard: u32,
    /// The replica leaving.
    pub from: NodeId,
    /// The replica coming.
    pub to: NodeId,
    /// Its phase.
    pub phase: String,
    /// Why: `replace`, `drain`, `zone` or `balance`.
    pub reason: &'static str,
}

/// The cluster's status: the newest map any node has, and every node asked for its groups.
pub async fn status(client: &ClusterClient) -> Result<ClusterStatus> {
    let map = client.fetch_map().await?;
    let reports = reports(client, &map, None).await;
    Ok(assemble(&map, &reports))
}

/// Every node's groups, from the nodes of `map` that answered (an answer from another id
/// at a node's address does not count); `local`'s own without a call.
pub(crate) async fn reports(
    client: &ClusterClient,
    map: &ClusterMap,
    local: Option<&crate::node::NodeState>,
) -> BTreeMap<NodeId, NodeStatusReply> {
    let calls = map.nodes.iter().map(|(&id, addr)| async move {
        match local {
            Some(st) if st.id == id => (id, Some(crate::service::node_status(st))),
            _ => (id, client.node_status(addr).await.ok().filter(|r| r.id == id)),
        }
    });
    futures_util::future::join_all(calls).await.into_iter().filter_map(|(id, r)| r.map(|r| (id, r))).collect()
}

/// The status from `map` and the nodes' `reports`.
fn assemble(map: &ClusterMap, reports: &BTreeMap<NodeId, NodeStatusReply>) -> ClusterStatus {
    let mut shards = Vec::with_capacity(map.shards as usize);
    let (mut under, mut joint, mut lost) = (0, 0, Vec::new());
    let mut leads: BTreeMap<NodeId, usize> = BTreeMap::new();
    for s in 0..map.shards {
        // the group as its leader reports it (a leader reports itself)
        let led = reports
            .iter()
            .find_map(|(&id, r)| r.groups.iter().find(|g| g.group == s && g.leader == id).map(|g| (id, g)));
        let (voters, learners, leader) = match led {
            Some((id, g)) => {
                *leads.entry(id).or_insert(0) += 1;
                joint += usize::from(g.joint);
                (g.voters.clone(), g.learners.clone(), Some(id))
            }
            None => (map.replicas(s).to_vec(), Vec::new(), None),
        };
        let live = voters.iter().filter(|v| reports.contains_key(v)).count();
        if live < map.replication_factor {
            under += 1;
        }
        if live * 2 <= voters.len() {
            lost.push(s);
        }
        shards.push(ShardView { id: s, voters, learners, leader, placed: map.replicas(s).to_vec() });
    }
    let mut nodes: Vec<NodeView> = map
        .nodes
        .iter()
        .map(|(&id, addr)| {
            let info = map.node_info(id);
            NodeView {
                id,
                name: map.name_of(id),
                addr: addr.clone(),
                zone: info.zone,
                state: info.state.name(),
                reachable: reports.contains_key(&id),
                replicas: map.shards_of(id).len(),
                meta: map.meta.contains(&id),
                leaders: leads.get(&id).copied().unwrap_or(0),
            }
        })
        .collect();
    nodes.extend(map.dead.iter().map(|&id| NodeView {
        id,
        name: String::new(),
        addr: String::new(),
        zone: String::new(),
        state: "dead",
        reachable: false,
        replicas: map.shards_of(id).len(),
        meta: map.meta.contains(&id),
        leaders: 0,
    }));
    let moves = map
        .moves
        .iter()
        .map(|m| MoveView {
            shard: m.shard,
            from: m.from,
            to: m.to,
            phase: m.phase.clone(),
            reason: m.reason.name(),
        })
        .collect();
    ClusterStatus {
        version: map.version,
        replication_factor: map.replication_factor,
        paused: map.paused,
        nodes,
        shards,
        moves,
        under_replicated: under,
        joint,
        quorum_lost: lost,
    }
}

async fn send(client: &ClusterClient, cmd: &Command) -> Result<()> {
    let bytes = strata_raft::codec::encode(cmd).map_err(|e| Error::Server(e.to_string()))?;
    client.update_metadata(bytes).await.map(drop)
}

/// Sets the state of the node `who` (a name or an id): [`Lifecycle::Draining`] to
/// decommission it (refused when fewer active nodes than the replication factor would be
/// left), [`Lifecycle::Active`] to take it back. Returns its id.
pub async fn set_node_state(client: &ClusterClient, who: &str, state: Lifecycle) -> Result<NodeId> {
    let map = client.fetch_map().await?;
    let id =
        map.resolve(who).ok_or_else(|| Error::Invalid(format!("no node named {who:?} in the cluster")))?;
    if state == Lifecycle::Draining {
        let active =
            map.nodes.keys().filter(|&&n| n != id && map.node_info(n).state == Lifecycle::Active).count();
        if active < map.replication_factor {
            return Err(Error::Invalid(format!(
                "decommissioning node {id} would leave {active} active nodes for {} replicas per shard: add a node first",
                map.replication_factor
            )));
        }
        if map.node_info(id).state == Lifecycle::Decommissioned {
            return Ok(id);
        }
    }
    send(client, &Command::SetNodeState { id, state }).await?;
    Ok(id)
}

/// Pauses (true) or resumes the start of new replica moves (moves in flight finish).
pub async fn set_paused(client: &ClusterClient, paused: bool) -> Result<()> {
    send(client, &Command::SetPaused(paused)).await
}

#[cfg(test)]
mod tests {
    use strata_proto::cluster::GroupState;

    use super::*;

    #[test]
    fn status_counts_leaders_under_replication_and_lost_quorums() {
        let nodes = (1..=3).map(|i| (i, format!("n{i}:7070"))).collect();
        let map = ClusterMap::create(4, 3, nodes).expect("map");
        let group = |g: u32, leader: NodeId| GroupState {
            group: g,
            leader,
            voters: map.replicas(g).to_vec(),
            ..GroupState::default()
        };
        // node 1 leads everything; node 3 is down; nodes 2 and 3 down for shard 3's view
        let reports: BTreeMap<NodeId, NodeStatusReply> = [
            (1, NodeStatusReply { id: 1, groups: (0..4).map(|g| group(g, 1)).collect(), map_version: 1 }),
            (2, NodeStatusReply { id: 2, groups: (0..4).map(|g| group(g, 1)).collect(), map_version: 1 }),
        ]
        .into();
        let s = assemble(&map, &reports);
        assert_eq!(s.under_replicated, 4);
        assert!(s.quorum_lost.is_empty());
        assert_eq!(
            s.nodes.iter().map(|n| (n.id, n.leaders, n.reachable)).collect::<Vec<_>>(),
            [(1, 4, true), (2, 0, true), (3, 0, false)]
        );
        let only_1: BTreeMap<NodeId, NodeStatusReply> = reports.into_iter().take(1).collect();
        assert_eq!(assemble(&map, &only_1).quorum_lost, vec![0, 1, 2, 3]);
    }
}
