//! The cluster grows, shrinks and heals while a writer keeps writing: replicas move to
//! joining nodes until every node holds as many as any other ±1, drain off decommissioned
//! nodes, and are rebuilt elsewhere when a node comes back without its disk. Afterwards
//! every acknowledged sample is on every voter of its shard, and the voters agree.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_cluster::{ClientConfig, ClusterClient, ClusterMap, NodeState};
use strata_raft::{META_GROUP, NodeId};
use strata_storage::admin;

use crate::harness::{Cluster, SERIES, SHARDS, write_batch};

/// Replicas per node.
fn loads(m: &ClusterMap) -> BTreeMap<NodeId, usize> {
    let mut l: BTreeMap<NodeId, usize> = m.nodes.keys().map(|&n| (n, 0)).collect();
    for s in 0..m.shards {
        for n in m.replicas(s) {
            *l.entry(*n).or_insert(0) += 1;
        }
    }
    l
}

fn balanced(m: &ClusterMap, nodes: &[NodeId]) -> bool {
    let l = loads(m);
    let of: Vec<usize> = nodes.iter().map(|n| l.get(n).copied().unwrap_or(0)).collect();
    of.iter().max().unwrap_or(&0) - of.iter().min().unwrap_or(&0) <= 1
        && of.iter().sum::<usize>() == 3 * SHARDS as usize
}

/// Waits until the map has no move in flight and satisfies `f`.
async fn settled(c: &Cluster, what: &str, timeout: Duration, f: impl Fn(&ClusterMap) -> bool) -> ClusterMap {
    let start = Instant::now();
    loop {
        if let Ok(m) = c.client.fetch_map().await
            && m.moves.is_empty()
            && f(&m)
        {
            return m;
        }
        if start.elapsed() > timeout {
            let status = admin::status(&c.client).await.map(|s| format!("{s:#?}")).unwrap_or_default();
            panic!("the cluster never settled with {what} in {timeout:?}: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every acknowledged timestamp of every series on every voter of its shard (per `m`),
/// and the voters' copies of each shard identical; waits up to 30 s for followers.
async fn check_replicas(c: &Cluster, m: &ClusterMap, acked: &BTreeSet<i64>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut problems = Vec::new();
        let mut series = 0;
        for shard in 0..SHARDS {
            let voters = m.replicas(shard);
            let first = c.shard_contents(voters[0], shard);
            series += first.len();
            for (_, labels, samples) in &first {
                let have: BTreeSet<i64> = samples.iter().map(|(t, _)| t - c.base).collect();
                let missing = acked.difference(&have).count();
                if missing > 0 {
                    problems.push(format!(
                        "shard {shard} node {}: {labels:?} misses {missing} acknowledged",
                        voters[0]
                    ));
                }
            }
            for &v in &voters[1..] {
                if c.shard_contents(v, shard) != first {
                    problems.push(format!("shard {shard}: node {v} differs from node {}", voters[0]));
                }
            }
        }
        if series != SERIES {
            problems.push(format!("{series} series over the shards' first voters, not {SERIES}"));
        }
        if problems.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "replicas wrong: {problems:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grows_from_three_to_five_then_drains_back_under_writes() {
    let mut c = Cluster::start(3).await;
    c.write_retrying(0).await;
    let stop = Arc::new(AtomicBool::new(false));
    let w = c.writer(stop.clone(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let a = c.join("storage-4").await;
    let b = c.join("storage-5").await;
    let five = [1, 2, 3, a, b];
    let m =
        settled(&c, "replicas balanced over five nodes", Duration::from_secs(120), |m| balanced(m, &five))
            .await;
    stop.store(true, Ordering::Relaxed);
    let acked = w.await.expect("writer");
    assert!(acked.len() > 20, "only {} writes acknowledged while growing", acked.len());
    check_replicas(&c, &m, &acked).await;
    let s = admin::status(&c.client).await.expect("status");
    assert_eq!(s.under_replicated, 0, "{s:#?}");
    assert!(s.nodes.iter().all(|n| n.state == "active" && n.reachable), "{s:#?}");

    // 5 → 3 under writes: a founder (a voter of the metadata group, which moves off it
    // too) and a joiner decommissioned
    let stop = Arc::new(AtomicBool::new(false));
    let w = c.writer(stop.clone(), acked.last().map_or(1, |t| t + 1));
    for n in ["node-1", "storage-4"] {
        admin::set_node_state(&c.client, n, NodeState::Draining).await.expect("decommission");
    }
    let rest = [2, 3, b];
    let m = settled(&c, "nodes 1 and 4 decommissioned", Duration::from_secs(120), |m| {
        [1, a].iter().all(|n| m.node_info(*n).state == NodeState::Decommissioned) && balanced(m, &rest)
    })
    .await;
    let meta: BTreeSet<NodeId> = m.meta.iter().copied().collect();
    assert_eq!(meta, rest.into(), "the metadata group's voters");
    stop.store(true, Ordering::Relaxed);
    let more = w.await.expect("writer");
    assert!(more.len() > 20, "only {} writes acknowledged while draining", more.len());
    let acked: BTreeSet<i64> = acked.union(&more).copied().collect();
    check_replicas(&c, &m, &acked).await;
    // the drained nodes dropped their replicas (after the grace period)
    let deadline = Instant::now() + Duration::from_secs(20);
    while [1, a].iter().any(|n| !c.nodes[n].raft().groups().is_empty()) {
        assert!(Instant::now() < deadline, "drained nodes still host groups");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // stopping both loses nothing; the cluster (metadata included) works without them
    c.kill(1).await;
    c.kill(a).await;
    let t = more.last().copied().unwrap_or(0) + 1;
    c.write_retrying(t).await;
    check_replicas(&c, &m, &acked.iter().copied().chain([t]).collect()).await;
    // no third node may go: fewer active nodes than replicas
    let e = admin::set_node_state(&c.client, "node-3", NodeState::Draining).await.expect_err("refused");
    assert!(e.to_string().contains("add a node first"), "{e}");
    admin::set_paused(&c.client, true).await.expect("the metadata group takes commands");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_back_with_an_empty_disk_gets_a_new_id_and_its_replicas_are_rebuilt() {
    let mut c = Cluster::start(3).await;
    c.write_retrying(0).await;
    let old = c.join("storage-4").await;
    settled(&c, "replicas balanced over four nodes", Duration::from_secs(90), |m| {
        balanced(m, &[1, 2, 3, old])
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let w = c.writer(stop.clone(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.kill(old).await;
    std::fs::remove_dir_all(&c.dirs[&old]).expect("wipe");
    let new = c.join("storage-4").await;
    assert!(new > old, "the wiped node got id {new}, not a new one");
    let m = settled(&c, "the old id dead and replaced", Duration::from_secs(120), |m| {
        m.dead.contains(&old)
            && (0..m.shards).all(|s| !m.replicas(s).contains(&old))
            && balanced(m, &[1, 2, 3, new])
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let acked = w.await.expect("writer");
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    check_replicas(&c, &m, &acked).await;
    // the old id is in no group's membership, on any node
    for (id, n) in &c.nodes {
        for g in n.raft().groups() {
            let s = n.raft().status(g).expect("status");
            assert!(
                !s.voters.contains(&old) && !s.learners.contains(&old),
                "node {id} group {g} still lists the dead id {old}: {s:?}"
            );
        }
    }
    c.shutdown().await;
}

/// The node leading the metadata group, as the nodes see it.
fn meta_leader(c: &Cluster) -> Option<NodeId> {
    c.nodes.values().find_map(|n| n.raft().status(META_GROUP).ok().and_then(|s| s.leader))
}

/// Waits until the map has a move in flight (whose target satisfies `to`); returns it.
async fn a_move(c: &Cluster, to: impl Fn(NodeId) -> bool) -> strata_cluster::Move {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(m) = c.client.fetch_map().await
            && let Some(mv) = m.moves.iter().find(|mv| to(mv.to))
        {
            return mv.clone();
        }
        assert!(Instant::now() < deadline, "no move started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `killed` again, waits until the replicas are balanced over the founders and `a`,
/// stops the writer and checks its acknowledged writes on every voter.
async fn restart_balanced_and_checked(
    mut c: Cluster,
    killed: NodeId,
    a: NodeId,
    stop: &AtomicBool,
    w: tokio::task::JoinHandle<BTreeSet<i64>>,
) {
    assert_eq!(c.restart(killed, false).await, killed);
    let m = settled(&c, "replicas balanced over four nodes", Duration::from_secs(120), |m| {
        balanced(m, &[1, 2, 3, a])
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let acked = w.await.expect("writer");
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    check_replicas(&c, &m, &acked).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metadata_leader_killed_mid_move_its_successor_finishes_the_moves() {
    let mut c = Cluster::start(3).await;
    c.write_retrying(0).await;
    let stop = Arc::new(AtomicBool::new(false));
    let w = c.writer(stop.clone(), 1);
    let a = c.join("storage-4").await;
    a_move(&c, |_| true).await;
    let leader = meta_leader(&c).expect("a metadata leader");
    c.kill(leader).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    restart_balanced_and_checked(c, leader, a, &stop, w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_killed_mid_snapshot_aborts_its_move_and_the_shard_goes_elsewhere() {
    let mut c = Cluster::start(3).await;
    c.write_retrying(0).await;
    for t in 1..=120 {
        c.write_retrying(t).await;
    }
    // snapshots crawl: a move stays in its learner phase for seconds
    c.faults.set_snapshot_chunk_delay(Duration::from_millis(1_500));
    let a = c.join("storage-4").await;
    let b = c.join("storage-5").await;
    let mv = a_move(&c, |to| to == a || to == b).await;
    c.kill(mv.to).await;
    let survivor = if mv.to == a { b } else { a };
    c.faults.set_snapshot_chunk_delay(Duration::ZERO);
    let m = settled(&c, "balanced without the killed target", Duration::from_secs(120), |m| {
        balanced(m, &[1, 2, 3, survivor])
    })
    .await;
    let aborted: u64 =
        c.nodes.values().map(|n| n.placement_stats().moves_aborted.load(Ordering::Relaxed)).sum();
    assert!(aborted >= 1, "no move was aborted");
    for n in c.nodes.values() {
        for g in n.raft().groups() {
            let s = n.raft().status(g).expect("status");
            assert!(
                !s.voters.contains(&mv.to) && !s.learners.contains(&mv.to),
                "group {g} keeps the killed target: {s:?}"
            );
        }
    }
    check_replicas(&c, &m, &(1..=120).collect()).await;
    c.shutdown().await;
}

/// A client learns of a newer cluster map from any storage node's reply (the map version
/// each reply carries), without a poll: its next call fetches the map.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_notices_a_newer_map_from_any_reply() {
    let c = Cluster::start(3).await;
    // no refresh task: only replies can tell it
    let client = ClusterClient::new(ClientConfig {
        seeds: c.peers.values().cloned().collect(),
        ..ClientConfig::default()
    });
    let before = client.fetch_map().await.expect("map").version;
    admin::set_paused(&c.client, true).await.expect("the metadata group takes commands");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.nodes.values().any(|n| n.map().is_none_or(|m| m.version <= before)) {
        assert!(Instant::now() < deadline, "the nodes did not apply the new map");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.cached_map().expect("cached").version, before, "nothing fetched yet");
    write_batch(&client, c.base, 1).await.expect("write");
    let m = client.map().await.expect("map");
    assert!(
        m.version > before && m.paused,
        "the reply's version made the client fetch: {} ≤ {before}",
        m.version
    );
    c.shutdown().await;
}

/// A shard's leader killed while its group is in the joint configuration of a move (the
/// joint entry reached the other replicas, the final one was never proposed): the group
/// elects a leader under the joint configuration, and the placement controller finishes
/// the change there. Slow links (150 ms a message) keep the joint phase open long enough
/// to see it on a follower and kill the leader before it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shard_leader_killed_in_a_joint_configuration_its_successor_finishes_the_change() {
    let mut c = Cluster::start(3).await;
    c.write_retrying(0).await;
    let stop = Arc::new(AtomicBool::new(false));
    let w = c.writer(stop.clone(), 1);
    c.faults.set_delay(Duration::from_millis(150));
    let a = c.join("storage-4").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (shard, leader) = 'found: loop {
        assert!(Instant::now() < deadline, "no shard was ever seen in a joint configuration");
        for shard in 0..SHARDS {
            let Some(leader) = c.leader(shard) else { continue };
            let joint_follower = c.nodes.iter().any(|(&id, n)| {
                id != leader && n.raft().status(shard).is_ok_and(|s| s.joint && s.leader == Some(leader))
            });
            if joint_follower {
                break 'found (shard, leader);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    c.kill(leader).await;
    // the survivors hold the joint configuration: someone must finish it
    let joint_after_kill = c.nodes.values().any(|n| n.raft().status(shard).is_ok_and(|s| s.joint));
    assert!(joint_after_kill, "shard {shard} left its joint configuration before the leader died");
    c.faults.set_delay(Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses: Vec<_> = c.nodes.values().filter_map(|n| n.raft().status(shard).ok()).collect();
        let done = statuses.iter().any(|s| s.leader.is_some() && !s.joint && s.voters.contains(&a));
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "shard {shard} stayed joint after its leader died: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    restart_balanced_and_checked(c, leader, a, &stop, w).await;
}

/// A learner whose snapshot takes longer than several checkpoint intervals of writes still
/// needs exactly one snapshot: its leader holds the shard's checkpoints (and so the log
/// purges) until the learner matched the snapshot, so the learner continues from the log.
/// Without the hold, openraft purges past the snapshot while it travels and sends a newer
/// one, and again, for as long as snapshots are slower than the writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_needs_one_snapshot_however_slow_it_is() {
    let mut c = Cluster::start(3).await;
    c.write_retrying(0).await;
    let stop = Arc::new(AtomicBool::new(false));
    let w = c.writer(stop.clone(), 1);
    // ~50 entries/s per shard meet snapshots of 1 s per chunk: each snapshot spans several
    // of the test config's 40-entry checkpoint intervals
    c.faults.set_snapshot_chunk_delay(Duration::from_millis(1_000));
    let a = c.join("storage-4").await;
    let m = settled(&c, "replicas balanced over four nodes", Duration::from_secs(120), |m| {
        balanced(m, &[1, 2, 3, a])
    })
    .await;
    c.faults.set_snapshot_chunk_delay(Duration::ZERO);
    stop.store(true, Ordering::Relaxed);
    let acked = w.await.expect("writer");
    let moved = loads(&m)[&a] as u64;
    let sent: u64 = c.nodes.values().map(|n| n.raft().snapshot_stats().sent.load(Ordering::Relaxed)).sum();
    let received = c.nodes[&a].raft().snapshot_stats().received.load(Ordering::Relaxed);
    // a learner whose shard's log still reaches back far enough needs no snapshot at all
    assert!(
        sent <= moved && received <= moved,
        "{sent} snapshots sent, {received} received for {moved} replicas moved"
    );
    check_replicas(&c, &m, &acked).await;
    c.shutdown().await;
}
