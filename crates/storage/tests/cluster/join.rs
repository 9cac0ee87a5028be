//! Nodes join a running cluster from seeds and get ids the metadata group allocates; a
//! node keeps its id across restarts, and a name that comes back with an empty disk gets a
//! new id while the old one is declared dead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_cluster::ClusterMap;
use strata_raft::NodeId;
use strata_storage::{StorageConfig, StorageNode};

use crate::harness::{Cluster, bind_retrying};

/// A node named `name` with no id, on `dir`, seeded with the founders' addresses.
async fn joiner(c: &Cluster, name: &str, dir: &std::path::Path, port: Option<u16>) -> Arc<StorageNode> {
    let l = bind_retrying(&format!("127.0.0.1:{}", port.unwrap_or(0))).await;
    let addr = l.local_addr().expect("addr").to_string();
    let mut cfg = StorageConfig::new(0, dir.to_path_buf());
    cfg.name = name.to_string();
    cfg.listen = l.local_addr().expect("addr");
    cfg.advertise = addr;
    cfg.peers = c.peers.clone();
    cfg.faults = Some(c.faults.clone());
    tokio::time::timeout(Duration::from_secs(30), StorageNode::start_on(cfg, l))
        .await
        .expect("joined within 30 s")
        .expect("start")
}

/// Waits until the map (fetched from the founders) satisfies `f`.
async fn map_where(c: &Cluster, what: &str, f: impl Fn(&ClusterMap) -> bool) -> ClusterMap {
    let start = Instant::now();
    loop {
        if let Ok(m) = c.client.fetch_map().await
            && f(&m)
        {
            return m;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the map never showed {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_join_keep_their_id_and_a_wiped_one_gets_a_new_id() {
    let c = Cluster::start(3).await;
    c.write_retrying(0).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (dir4, dir5) = (root.path().join("a"), root.path().join("b"));

    // two nodes join with empty disks: ids after the founders', in the map with their addresses
    let a = joiner(&c, "storage-a", &dir4, None).await;
    let b = joiner(&c, "storage-b", &dir5, None).await;
    let (ia, ib) = (a.id(), b.id());
    let mut ids = vec![ia, ib];
    ids.sort_unstable();
    assert_eq!(ids, vec![4, 5]);
    let port_a = a.local_addr().expect("addr").port();
    map_where(&c, "both joiners", |m| {
        m.nodes.get(&ia) == Some(&format!("127.0.0.1:{port_a}")) && m.nodes.contains_key(&ib)
    })
    .await;

    // a restart on its own disk keeps the id (it asks nobody)
    a.shutdown().await;
    drop(a);
    let a = joiner(&c, "storage-a", &dir4, Some(port_a)).await;
    assert_eq!(a.id(), ia, "a restart on the same disk changed the id");

    // the same name on an empty disk: a new id, never one used before; the old id is dead
    a.kill().await;
    drop(a);
    std::fs::remove_dir_all(&dir4).expect("wipe");
    let a2 = joiner(&c, "storage-a", &dir4, Some(port_a)).await;
    let fresh: NodeId = a2.id();
    assert!(fresh > ia.max(ib), "a wiped node got id {fresh}, not a new one");
    let m = map_where(&c, "the old id dead", |m| m.dead.contains(&ia) && m.nodes.contains_key(&fresh)).await;
    assert!(!m.nodes.contains_key(&ia), "the dead id still has an address: {m:?}");

    // the founders' shards still take writes
    c.write_retrying(1).await;
    a2.kill().await;
    b.kill().await;
    c.shutdown().await;
}
