//! An in-process cluster on loopback gRPC with a controllable network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_cluster::{ClientConfig, ClusterClient, GrpcTls};
use strata_raft::{NodeId, RaftConfig};
use strata_storage::{Faults, StorageConfig, StorageNode};
use strata_tsdb::{Labels, MatchOp, Matcher, SeriesBatch};

pub(crate) const SHARDS: u32 = 4;
pub(crate) const SERIES: usize = 24;

/// Milliseconds of the first sample: an hour ago, so that retention keeps everything.
pub(crate) fn base_ms() -> i64 {
    strata_tsdb::Clock::now_ms(&strata_tsdb::SystemClock) - 3_600_000
}

/// One replica's view of one series: (shard, labels, samples as (t, value bits)).
pub(crate) type Stored = (u32, Labels, Vec<(i64, u64)>);

pub(crate) struct Cluster {
    pub(crate) base: i64,
    pub(crate) dirs: BTreeMap<NodeId, PathBuf>,
    pub(crate) peers: BTreeMap<NodeId, String>,
    pub(crate) nodes: BTreeMap<NodeId, Arc<StorageNode>>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) client: Arc<ClusterClient>,
    tls: Option<Arc<GrpcTls>>,
    raft_timeout: Duration,
    /// The nodes' election timeout range, in milliseconds.
    election_ms: (u64, u64),
    _root: tempfile::TempDir,
}

/// The tests' election timeout range: quick elections.
const ELECTION_MS: (u64, u64) = (800, 1200);

fn config(
    id: NodeId,
    dir: PathBuf,
    peers: &BTreeMap<NodeId, String>,
    faults: &Arc<Faults>,
    tls: &Option<Arc<GrpcTls>>,
    raft_timeout: Duration,
    election_ms: (u64, u64),
) -> StorageConfig {
    let mut c = StorageConfig::new(id, dir);
    c.name = format!("node-{id}");
    fast_placement(&mut c);
    c.tls = tls.clone();
    c.raft_timeout = raft_timeout;
    c.listen = peers[&id].parse().expect("addr");
    c.advertise = peers[&id].clone();
    c.peers = peers.clone();
    c.bootstrap = id == 1;
    c.shards = SHARDS;
    c.replication_factor = 3;
    c.raft = raft_config(id, election_ms);
    c.faults = Some(faults.clone());
    c
}

/// Small logs, so that snapshots and purges happen within a test.
fn raft_config(id: NodeId, election_ms: (u64, u64)) -> RaftConfig {
    RaftConfig {
        node_id: id,
        heartbeat_ms: 100,
        election_ms,
        snapshot_entries: 40,
        keep_entries: 40,
        ..RaftConfig::default()
    }
}

/// Placement settings for tests: replicas removed soon after they moved away, moves to an
/// unreachable target aborted after 5 s.
fn fast_placement(c: &mut StorageConfig) {
    c.placement.replica_grace = Duration::from_secs(1);
    c.placement.target_down_abort = Duration::from_secs(5);
}

/// Listens on `addr`, retrying for up to 5 s (a port just closed may take a moment to be
/// free again).
pub(crate) async fn bind_retrying(addr: &str) -> tokio::net::TcpListener {
    let mut tries = 0;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

/// Writes one batch through `client`: every series gets one sample at `base + t` (value
/// the same); Ok only when acknowledged with every sample accepted.
pub(crate) async fn write_batch(client: &ClusterClient, base: i64, t: i64) -> Result<(), String> {
    let t = base + t;
    let mut b = SeriesBatch::new(SHARDS);
    for i in 0..SERIES {
        let v = i.to_string();
        let mut pairs = vec![("__name__", "test_metric"), ("series", v.as_str())];
        b.add(&mut pairs, [(t, t as f64)]).map_err(|e| e.to_string())?;
    }
    let o = client
        .write(b.into_records(), strata_tsdb::SeriesLimits::default())
        .await
        .map_err(|e| e.to_string())?;
    // acknowledged means stored: a sample refused (out of order after a slow start, say)
    // does not count
    if o.accepted as usize != SERIES {
        return Err(format!("{} of {SERIES} samples accepted: {:?}", o.accepted, o.first_error));
    }
    Ok(())
}

impl Cluster {
    pub(crate) async fn start(n: u64) -> Cluster {
        Self::start_with(n, None).await
    }

    /// [`Cluster::start`] with the nodes and the client talking mutual TLS.
    pub(crate) async fn start_with(n: u64, tls: Option<Arc<GrpcTls>>) -> Cluster {
        Self::start_full(n, tls, StorageConfig::new(0, PathBuf::new()).raft_timeout, ELECTION_MS).await
    }

    /// [`Cluster::start`] with Raft messages timing out after `raft_timeout`.
    pub(crate) async fn start_with_raft_timeout(n: u64, raft_timeout: Duration) -> Cluster {
        Self::start_full(n, None, raft_timeout, ELECTION_MS).await
    }

    /// [`Cluster::start`] with elections after `election_ms` of silence.
    pub(crate) async fn start_with_election(n: u64, election_ms: (u64, u64)) -> Cluster {
        Self::start_full(n, None, StorageConfig::new(0, PathBuf::new()).raft_timeout, election_ms).await
    }

    async fn start_full(
        n: u64,
        tls: Option<Arc<GrpcTls>>,
        raft_timeout: Duration,
        election_ms: (u64, u64),
    ) -> Cluster {
        if std::env::var_os("RUST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::from_default_env();
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let root = tempfile::tempdir().expect("tempdir");
        let mut listeners = BTreeMap::new();
        let mut peers = BTreeMap::new();
        for id in 1..=n {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            peers.insert(id, l.local_addr().expect("addr").to_string());
            listeners.insert(id, l);
        }
        let faults = Faults::new(42);
        let mut dirs = BTreeMap::new();
        let mut starts = Vec::new();
        for (id, l) in listeners {
            let dir = root.path().join(format!("node-{id}"));
            dirs.insert(id, dir.clone());
            let cfg = config(id, dir, &peers, &faults, &tls, raft_timeout, election_ms);
            // all at once, as a StatefulSet's pods start
            starts.push(async move { (id, StorageNode::start_on(cfg, l).await.expect("start")) });
        }
        let nodes: BTreeMap<NodeId, Arc<StorageNode>> =
            futures_util::future::join_all(starts).await.into_iter().collect();
        let client = Arc::new(ClusterClient::new(ClientConfig {
            seeds: peers.values().cloned().collect(),
            write_timeout: Duration::from_secs(20),
            tls: tls.clone(),
            ..ClientConfig::default()
        }));
        let c = Cluster {
            base: base_ms(),
            dirs,
            peers,
            nodes,
            faults,
            client,
            tls,
            raft_timeout,
            election_ms,
            _root: root,
        };
        c.wait_formed().await;
        c
    }

    /// Waits (up to 30 s) until the client has the map and every shard a leader, so that
    /// a test's first writes do not fail while the cluster forms.
    async fn wait_formed(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.client.fetch_map().await.is_err() || (0..SHARDS).any(|s| self.leader(s).is_none()) {
            assert!(std::time::Instant::now() < deadline, "the cluster did not form in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a node named `name` on an empty directory (or the one it had) that joins the
    /// cluster through the founders; returns its id.
    pub(crate) async fn join(&mut self, name: &str) -> NodeId {
        let dir = self._root.path().join(name);
        let l = bind_retrying("127.0.0.1:0").await;
        let addr = l.local_addr().expect("addr").to_string();
        let mut cfg = StorageConfig::new(0, dir.clone());
        cfg.name = name.to_string();
        fast_placement(&mut cfg);
        cfg.tls = self.tls.clone();
        cfg.raft_timeout = self.raft_timeout;
        cfg.listen = l.local_addr().expect("addr");
        cfg.advertise = addr.clone();
        cfg.peers = self.peers.clone();
        cfg.raft = raft_config(0, self.election_ms);
        cfg.faults = Some(self.faults.clone());
        let node = tokio::time::timeout(Duration::from_secs(30), StorageNode::start_on(cfg, l))
            .await
            .expect("joined within 30 s")
            .expect("start");
        let id = node.id();
        self.dirs.insert(id, dir);
        self.nodes.insert(id, node);
        id
    }

    /// Every series of `shard` on node `id`: (labels, samples).
    pub(crate) fn shard_contents(&self, id: NodeId, shard: u32) -> Vec<Stored> {
        self.contents(id).into_iter().filter(|c| c.0 == shard).collect()
    }

    /// Stops node `id` abruptly.
    pub(crate) async fn kill(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.remove(&id) {
            n.kill().await;
        }
    }

    /// Starts node `id` again on its data directory (emptied first when `wipe`: then it
    /// joins under a new id, returned, and `id` is declared dead).
    pub(crate) async fn restart(&mut self, id: NodeId, wipe: bool) -> NodeId {
        let dir = self.dirs[&id].clone();
        if wipe {
            std::fs::remove_dir_all(&dir).expect("wipe");
        }
        let l = self.rebind(id).await;
        let cfg = config(
            id,
            dir.clone(),
            &self.peers,
            &self.faults,
            &self.tls,
            self.raft_timeout,
            self.election_ms,
        );
        let node = StorageNode::start_on(cfg, l).await.expect("restart");
        // a founder back on an empty disk joins under a new id
        let now = node.id();
        self.dirs.insert(now, dir);
        self.nodes.insert(now, node);
        now
    }

    /// Node `id`'s port again (it may take a moment to be free after a stop).
    async fn rebind(&self, id: NodeId) -> tokio::net::TcpListener {
        bind_retrying(&self.peers[&id]).await
    }

    /// Stops node `id` abruptly and leaves its port accepting connections that never
    /// answer: a host that vanished, as HTTP/2 sees it (no FIN, no RST). The port is held
    /// until the returned task is aborted.
    pub(crate) async fn silence(&mut self, id: NodeId) -> tokio::task::JoinHandle<()> {
        self.kill(id).await;
        let l = self.rebind(id).await;
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = l.accept().await {
                held.push(socket);
            }
        })
    }

    /// Writes one batch: every series gets one sample at `t` (value `t`); Ok only when
    /// acknowledged.
    pub(crate) async fn write(&self, t: i64) -> Result<(), String> {
        write_batch(&self.client, self.base, t).await
    }

    /// A task writing a batch every 20 ms (timestamps `first`, `first` + 1, …) until
    /// `stop` is set; it returns the timestamps acknowledged. A second writer starts after
    /// the first one's last timestamp: older samples are out of order.
    pub(crate) fn writer(
        &self,
        stop: Arc<std::sync::atomic::AtomicBool>,
        first: i64,
    ) -> tokio::task::JoinHandle<BTreeSet<i64>> {
        let (client, base) = (self.client.clone(), self.base);
        tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            let mut t = first;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if write_batch(&client, base, t).await.is_ok() {
                    acked.insert(t);
                }
                t += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked
        })
    }

    /// [`Cluster::write`], retried until acknowledged (the cluster may still be forming)
    /// for at most 30 s.
    pub(crate) async fn write_retrying(&self, t: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Err(e) = self.write(t).await {
            assert!(std::time::Instant::now() < deadline, "write at {t} never acknowledged: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every shard of node `id`: (labels, samples) as that replica has them.
    pub(crate) fn contents(&self, id: NodeId) -> Vec<Stored> {
        let Some(db) = self.nodes[&id].db() else { return Vec::new() };
        let m = [Matcher::new(MatchOp::Equal, "__name__", "test_metric").expect("matcher")];
        let mut out = Vec::new();
        for shard in 0..SHARDS {
            for s in db.select_shard(shard, &m, i64::MIN, i64::MAX) {
                let s = s.expect("select");
                out.push((shard, s.labels, s.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect()));
            }
        }
        out
    }

    /// The timestamps every series has on node `id`, intersected.
    pub(crate) fn timestamps_everywhere(&self, id: NodeId) -> BTreeSet<i64> {
        let c = self.contents(id);
        if c.len() < SERIES {
            return BTreeSet::new();
        }
        let base = self.base;
        let mut it =
            c.into_iter().map(|(_, _, s)| s.into_iter().map(|x| x.0 - base).collect::<BTreeSet<i64>>());
        let first = it.next().unwrap_or_default();
        it.fold(first, |a, b| a.intersection(&b).copied().collect())
    }

    /// Waits until every live node holds every timestamp of `acked` for every series.
    pub(crate) async fn converge(&self, acked: &BTreeSet<i64>, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let missing: Vec<(NodeId, usize)> = self
                .nodes
                .keys()
                .map(|&id| (id, acked.difference(&self.timestamps_everywhere(id)).count()))
                .filter(|x| x.1 > 0)
                .collect();
            if missing.is_empty() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let detail: Vec<String> = self
                    .nodes
                    .keys()
                    .map(|&id| {
                        let c = self.contents(id);
                        let per_shard: Vec<String> = (0..SHARDS)
                            .map(|sh| {
                                let n: Vec<usize> =
                                    c.iter().filter(|x| x.0 == sh).map(|x| x.2.len()).collect();
                                format!("shard {sh}: {} series, min {:?} samples", n.len(), n.iter().min())
                            })
                            .collect();
                        let status: Vec<String> = (0..SHARDS)
                            .map(|sh| format!("{:?}", self.nodes[&id].raft().status(sh).ok()))
                            .collect();
                        format!("node {id}: {per_shard:?} {status:?}")
                    })
                    .collect();
                panic!(
                    "replicas did not converge: (node, acknowledged timestamps missing) {missing:?}\n{}",
                    detail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The leader of `shard` as node 1..n see it.
    pub(crate) fn leader(&self, shard: u32) -> Option<NodeId> {
        self.nodes.values().find_map(|n| n.raft().status(shard).ok().and_then(|s| s.leader))
    }

    pub(crate) async fn shutdown(self) {
        for (_, n) in self.nodes {
            n.kill().await;
        }
    }
}
