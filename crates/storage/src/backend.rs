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
        vec![
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
        ]
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
