//! A storage node's own replicas as the HTTP API's query backend (also standalone's), with
//! the node's Raft, log and storage-health figures for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use strata_api::{QueryBackend, ReadOptions, ReadView, Reader};
use strata_tsdb::Db;

use crate::node::StorageNode;

/// Queries read the node's database (once the cluster map is known); `/metrics` shows its
/// groups, log writer and write health.
#[derive(Debug)]
pub struct NodeBackend {
    reader: Reader,
    node: Arc<StorageNode>,
}

impl NodeBackend {
    /// The backend of `node`.
    pub fn new(node: Arc<StorageNode>) -> Self {
        let n = node.clone();
        NodeBackend { reader: Reader::dynamic(move || n.db()), node }
    }
}

impl QueryBackend for NodeBackend {
    fn view(&self, opts: ReadOptions) -> Option<Box<dyn ReadView>> {
        self.reader.view(opts)
    }

    fn local_db(&self) -> Option<Arc<Db>> {
        self.reader.local_db()
    }

    fn counters(&self) -> Vec<(&'static str, &'static str, f64)> {
        let log = self.node.raft().log_stats();
        let mut out = vec![
            (
                "strata_wal_syncs",
                "Synced log batches (group commits).",
                log.syncs.load(Ordering::Relaxed) as f64,
            ),
            (
                "strata_wal_sync_seconds",
                "Time spent writing and syncing log batches.",
                log.sync_micros.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            ("strata_wal_records", "Log entries written.", log.records.load(Ordering::Relaxed) as f64),
            ("strata_wal_bytes", "Bytes of log entries written.", log.bytes.load(Ordering::Relaxed) as f64),
        ];
        let snap = self.node.raft().snapshot_stats();
        for (name, help, v, scale) in [
            ("strata_snapshots_sent", "Snapshots sent to other replicas to completion.", &snap.sent, 1.0),
            ("strata_snapshot_sent_bytes", "Bytes of snapshot frames sent.", &snap.sent_bytes, 1.0),
            (
                "strata_snapshots_received",
                "Snapshots received and staged to completion.",
                &snap.received,
                1.0,
            ),
            (
                "strata_snapshot_received_bytes",
                "Bytes of snapshot frames received.",
                &snap.received_bytes,
                1.0,
            ),
            (
                "strata_snapshot_throttled_seconds",
                "Time snapshot sends waited for --snapshot.max-bytes-per-second.",
                &snap.throttled_micros,
                1e-6,
            ),
        ] {
            out.push((name, help, v.load(Ordering::Relaxed) as f64 * scale));
        }
        let p = self.node.placement_stats();
        for (name, help, v) in [
            (
                "strata_cluster_moves_started",
                "Replica moves started by the placement controller while this node led the metadata group.",
                &p.moves_started,
            ),
            ("strata_cluster_moves_done", "Replica moves finished (this node's controller).", &p.moves_done),
            (
                "strata_cluster_moves_aborted",
                "Replica moves aborted: target gone or too slow (this node's controller).",
                &p.moves_aborted,
            ),
            (
                "strata_cluster_nodes_declared_dead",
                "Nodes declared dead (this node's controller).",
                &p.nodes_declared_dead,
            ),
        ] {
            out.push((name, help, v.load(Ordering::Relaxed) as f64));
        }
        out
    }

    fn gauges(&self) -> Vec<(&'static str, &'static str, i64)> {
        let raft = self.node.raft();
        let id = self.node.id();
        let groups = raft.groups();
        let leading = groups.iter().filter(|g| raft.status(**g).is_ok_and(|s| s.leader == Some(id))).count();
        let health = raft.health();
        let mut v = vec![
            (
                "strata_raft_groups",
                "Raft groups (shard replicas and metadata) on this node.",
                groups.len() as i64,
            ),
            ("strata_raft_leader_groups", "Raft groups this node leads.", leading as i64),
            (
                "strata_storage_writable",
                "1 when the node takes writes, 0 while a storage write failure or too little free space refuses them.",
                i64::from(health.refusal().is_none()),
            ),
            (
                "strata_storage_min_free_bytes",
                "Writes are refused below this many free bytes on the data directory's filesystem (0 = no check).",
                health.min_free_bytes().min(i64::MAX as u64) as i64,
            ),
        ];
        v.extend(
            self.node.engine_gauges().into_iter().map(|(n, h, x)| (n, h, x.min(i64::MAX as u64) as i64)),
        );
        v.extend([
            (
                "strata_snapshots_in_flight",
                "Snapshot streams under way on this node (sent or received).",
                raft.snapshot_stats().in_flight.load(Ordering::Relaxed) as i64,
            ),
            (
                "strata_snapshot_max_bytes_per_second",
                "Limit: snapshot bytes this node sends per second, all streams together (0 = none; --snapshot.max-bytes-per-second).",
                raft.snapshot_bytes_per_sec().min(i64::MAX as u64) as i64,
            ),
            (
                "strata_snapshot_learner_hold_entries",
                "Limit: log entries a shard's checkpoints (and log purges) are put off for while a learner waits for its snapshot (--snapshot.learner-hold-entries).",
                raft.learner_hold_entries().min(i64::MAX as u64) as i64,
            ),
            (
                "strata_snapshot_held_groups",
                "Raft groups whose checkpoints are held now for a learner's snapshot.",
                raft.held_groups() as i64,
            ),
        ]);
        if let Some(db) = self.node.db() {
            let pending: u64 = groups.iter().filter_map(|g| db.shard_log_bytes(*g).ok()).sum();
            v.extend([
                (
                    "strata_checkpoint_log_bytes",
                    "Limit: once this node's shards together applied this many bytes of log since their checkpoints, the ones with the most are checkpointed (checkpoint_log_bytes).",
                    db.config().checkpoint_log_bytes.min(i64::MAX as u64) as i64,
                ),
                (
                    "strata_checkpoint_pending_log_bytes",
                    "Bytes of log this node's shards applied since their checkpoints.",
                    pending.min(i64::MAX as u64) as i64,
                ),
            ]);
        }
        let joint =
            groups.iter().filter(|g| raft.status(**g).is_ok_and(|s| s.joint && s.leader == Some(id))).count();
        v.push((
            "strata_cluster_joint_groups",
            "Groups this node leads whose membership is joint (a voter change halfway).",
            joint as i64,
        ));
        let pc = self.node.placement_config();
        v.extend([
            (
                "strata_cluster_placement_max_moves",
                "Limit: replica moves in flight cluster-wide (--placement.max-moves).",
                pc.max_moves as i64,
            ),
            (
                "strata_cluster_placement_max_moves_per_node",
                "Limit: moves in flight into, and out of, one node (--placement.max-moves-per-node).",
                pc.max_moves_per_node as i64,
            ),
            (
                "strata_cluster_placement_dead_after_seconds",
                "A node unseen this long is declared dead (--placement.dead-after).",
                pc.dead_after.as_secs() as i64,
            ),
            (
                "strata_cluster_placement_replica_grace_seconds",
                "A replica that moved away is deleted after this long (--placement.replica-grace).",
                pc.replica_grace.as_secs() as i64,
            ),
            (
                "strata_cluster_placement_move_timeout_seconds",
                "A move not done after this long is aborted.",
                pc.move_timeout.as_secs() as i64,
            ),
        ]);
        if let Some(map) = self.node.map() {
            let under = (0..map.shards)
                .filter(|&s| map.replicas(s).iter().any(|n| !map.nodes.contains_key(n)))
                .count();
            v.extend([
                (
                    "strata_cluster_map_version",
                    "Version of the cluster map this node knows.",
                    map.version as i64,
                ),
                (
                    "strata_cluster_moves_in_flight",
                    "Replica moves in flight cluster-wide.",
                    map.moves.len() as i64,
                ),
                (
                    "strata_cluster_node_replicas",
                    "Shard replicas the cluster map places on this node.",
                    map.shards_of(id).len() as i64,
                ),
                (
                    "strata_cluster_shards_under_replicated",
                    "Shards with a replica on a dead node (being replaced).",
                    under as i64,
                ),
                (
                    "strata_cluster_rebalance_paused",
                    "1 while new replica moves are paused.",
                    i64::from(map.paused),
                ),
            ]);
        }
        if let Some(free) = health.free_bytes() {
            v.push((
                "strata_storage_free_bytes",
                "Free bytes on the data directory's filesystem at the last check.",
                free.min(i64::MAX as u64) as i64,
            ));
        }
        v
    }
}
