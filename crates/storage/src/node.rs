//! A storage node: one RocksDB, the replicas of the shards placed on it (each an openraft
//! group applying into the node's TSDB), possibly a replica of the metadata group, and the
//! gRPC services (Raft, Storage) on one port.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_cluster::{ClientConfig, ClusterClient, ClusterMap, Error, GrpcTls, MAX_MESSAGE, Result};
use strata_proto::cluster::raft_server::RaftServer;
use strata_proto::cluster::storage_server::StorageServer;
use strata_raft::codec::encode;
use strata_raft::{META_GROUP, NodeId, RaftConfig, RaftNode, WriteHealth};
use strata_tsdb::{Clock, Db, DbConfig, KvEngine, SystemClock};
use tokio::sync::watch;

use tonic::codegen::http::{HeaderName, HeaderValue};
use tower_http::set_header::{MakeHeaderValue, SetResponseHeaderLayer};

use crate::controller::{Controller, PlacementConfig, PlacementStats};
use crate::meta::{MetaApplier, SharedMap};
use crate::service::{RaftService, StorageService};
use crate::shard_applier::{ShardApplier, staging_root};
use crate::transport::{Faults, GrpcTransport};
use strata_cluster::Command;

/// The address a node without a port ([`StorageNode::start_local`]) advertises: nothing
/// can dial it.
pub const IN_PROCESS: &str = "in-process";

/// How a storage node finds its cluster.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// This node's id (unique and stable in the cluster; founders list theirs in `peers`).
    /// 0: the id stored in the data directory, or, on an empty one, an id allocated by the
    /// metadata group when the node joins the cluster through `peers` (seeds). An id stored
    /// on the disk wins; a different nonzero one is an error.
    pub node_id: NodeId,
    /// This node's name (the pod name), unique in the cluster: a name that joins again with
    /// an empty disk is the same machine without its data, and its old id is declared dead.
    /// Default: the host name ([`host_name`]).
    pub name: String,
    /// This node's failure domain (`--zone`; in Kubernetes the node's
    /// `topology.kubernetes.io/zone`): no two replicas of a shard are placed in one zone
    /// while there are at least as many zones as replicas. Default "" (no zone).
    pub zone: String,
    /// How the placement controller (on the metadata leader) moves replicas.
    pub placement: PlacementConfig,
    /// Data directory (one RocksDB; its filesystem's free space gates writes). Required.
    pub data_dir: PathBuf,
    /// Address the gRPC server listens on. Default `0.0.0.0:7070`.
    pub listen: SocketAddr,
    /// Address other nodes and clients reach this node at. Default: `listen`.
    pub advertise: String,
    /// The storage nodes of the cluster at creation (id → advertised gRPC address): the
    /// first three (by id) hold the metadata group; a node that joins later uses them as
    /// seeds and need not be listed. Required.
    pub peers: BTreeMap<NodeId, String>,
    /// Whether this node creates the cluster (map and metadata group) if it does not exist.
    /// Exactly one node of a new cluster bootstraps. Default false.
    pub bootstrap: bool,
    /// Shards of a new cluster (power of two). Default 64.
    pub shards: u32,
    /// Replicas per shard of a new cluster. Default 3.
    pub replication_factor: usize,
    /// Storage engine settings (retention, out-of-order window); `shards` comes from the map.
    pub db: DbConfig,
    /// Raft timings.
    pub raft: RaftConfig,
    /// Checkpoint every group at least this often, in addition to every
    /// `raft.snapshot_entries` entries. Default 2 minutes.
    pub checkpoint_interval: Duration,
    /// How long one Raft message (append, vote) may go unanswered before it counts as
    /// lost. Snapshots have no such bound on the whole transfer (a large shard's takes as
    /// long as it takes): the receiver gives up on a stream idle for 30 s between chunks,
    /// and HTTP/2 keep-alive notices a peer that vanished. Default 10 s.
    pub raft_timeout: Duration,
    /// Network faults to inject on outgoing Raft messages (tests only). Default none.
    pub faults: Option<Arc<Faults>>,
    /// RocksDB settings (block cache). Default `RocksConfig::default()`.
    #[cfg(feature = "rocksdb")]
    pub rocks: strata_engine_rocks::RocksConfig,
    /// The wall clock of the node's database (retention, the future-sample limit). Default
    /// the system clock.
    pub clock: Arc<dyn Clock>,
    /// Refuse writes while the data directory's filesystem has fewer free bytes than this
    /// (0: no check). Default 256 MiB.
    pub min_free_bytes: u64,
    /// Most gRPC connections open at once; more wait to be accepted. Default 1,024.
    pub grpc_max_connections: usize,
    /// Mutual TLS on the gRPC port and to the other nodes: only callers with a certificate
    /// of the cluster CA get through. Default none (plain HTTP/2: any caller that reaches
    /// the port is served; the binary refuses that unless told `--grpc-insecure`).
    pub tls: Option<Arc<GrpcTls>>,
}

/// The host name: `$HOSTNAME`, else `/etc/hostname` (a pod's name), else empty.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

impl StorageConfig {
    /// Defaults for node `node_id` with data under `data_dir`.
    pub fn new(node_id: NodeId, data_dir: PathBuf) -> Self {
        let listen: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 7070));
        StorageConfig {
            node_id,
            name: host_name(),
            zone: String::new(),
            placement: PlacementConfig::default(),
            data_dir,
            listen,
            advertise: listen.to_string(),
            peers: BTreeMap::new(),
            bootstrap: false,
            shards: 64,
            replication_factor: 3,
            db: DbConfig::default(),
            raft: RaftConfig { node_id, ..RaftConfig::default() },
            checkpoint_interval: Duration::from_secs(120),
            raft_timeout: Duration::from_secs(10),
            faults: None,
            #[cfg(feature = "rocksdb")]
            rocks: strata_engine_rocks::RocksConfig::default(),
            clock: Arc::new(SystemClock),
            min_free_bytes: 256 << 20,
            grpc_max_connections: 1024,
            tls: None,
        }
    }
}

impl StorageConfig {
    /// `strata standalone`'s node: node 1 alone in a one-node cluster (RF=1) of `shards`
    /// shards, reached by nothing outside the process ([`StorageNode::start_local`]).
    ///
    /// One voter: no follower needs heartbeats, but openraft ticks every heartbeat × 13/64
    /// in every group, idle or not; 500 ms keeps an idle node near 0% CPU and a restart's
    /// self-election under 2 s. No follower needs entries behind a snapshot either: a
    /// checkpoint purges the log it covers at once (disk while ingesting).
    pub fn standalone(data_dir: PathBuf, shards: u32) -> Self {
        let mut cfg = StorageConfig::new(1, data_dir);
        cfg.advertise = IN_PROCESS.to_owned();
        cfg.peers = [(1, cfg.advertise.clone())].into();
        cfg.bootstrap = true;
        cfg.shards = shards;
        cfg.replication_factor = 1;
        cfg.raft = RaftConfig {
            node_id: 1,
            heartbeat_ms: 500,
            election_ms: (1600, 2000),
            keep_entries: 0,
            ..RaftConfig::default()
        };
        cfg
    }
}

/// The parts of a node the services and background tasks share.
pub(crate) struct NodeState {
    pub(crate) id: NodeId,
    pub(crate) raft: Arc<RaftNode>,
    pub(crate) map: SharedMap,
    pub(crate) db: Mutex<Option<Arc<Db>>>,
    pub(crate) peers: BTreeMap<NodeId, String>,
    pub(crate) placement: Arc<PlacementStats>,
    pub(crate) placement_cfg: PlacementConfig,
}

impl NodeState {
    pub(crate) fn db(&self) -> Option<Arc<Db>> {
        self.db.lock().clone()
    }

    /// Address of `node` from the map, else from the configured peers.
    pub(crate) fn addr_of(&self, node: NodeId) -> Option<String> {
        self.map
            .read()
            .as_ref()
            .and_then(|m| m.nodes.get(&node).cloned())
            .or_else(|| self.peers.get(&node).cloned())
    }
}

/// A running storage node.
pub struct StorageNode {
    state: Arc<NodeState>,
    kv: Arc<dyn KvEngine>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    addr: Option<SocketAddr>,
}

impl std::fmt::Debug for StorageNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageNode").field("id", &self.state.id).field("addr", &self.addr).finish()
    }
}

impl StorageNode {
    /// Opens the node's data directory, starts its gRPC server and joins (or, with
    /// `bootstrap`, creates) the cluster. Returns once serving; shards come up in the
    /// background as soon as the cluster map is known.
    #[cfg(feature = "rocksdb")]
    pub async fn start(cfg: StorageConfig) -> Result<Arc<StorageNode>> {
        let listener =
            tokio::net::TcpListener::bind(cfg.listen).await.map_err(|e| Error::Server(e.to_string()))?;
        Self::start_on(cfg, listener).await
    }

    /// [`StorageNode::start`] on an already bound listener.
    #[cfg(feature = "rocksdb")]
    pub async fn start_on(cfg: StorageConfig, listener: tokio::net::TcpListener) -> Result<Arc<StorageNode>> {
        let kv = open_engine(&cfg.data_dir, &cfg.rocks).await?;
        Self::start_over(cfg, kv, Some(listener)).await
    }

    /// A node that opens no port at all: nothing outside the process can reach its groups
    /// (`strata standalone`, a one-node RF=1 cluster whose groups never send a message).
    /// `cfg.peers` must name this node only.
    #[cfg(feature = "rocksdb")]
    pub async fn start_local(cfg: StorageConfig) -> Result<Arc<StorageNode>> {
        let kv = open_engine(&cfg.data_dir, &cfg.rocks).await?;
        Self::start_over(cfg, kv, None).await
    }

    /// A node over the engine `kv` (the in-memory one in tests): serving gRPC on `listener`,
    /// or, without one, in-process only (then `cfg.peers` must name this node only).
    pub async fn start_over(
        mut cfg: StorageConfig,
        kv: Arc<dyn KvEngine>,
        listener: Option<tokio::net::TcpListener>,
    ) -> Result<Arc<StorageNode>> {
        cfg.node_id = crate::identity::resolve(&cfg, &kv).await?;
        if listener.is_none() && cfg.peers.keys().any(|&id| id != cfg.node_id) {
            return Err(Error::Config("a node without a port cannot have peers".into()));
        }
        let addr = listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()
            .map_err(|e| Error::Server(e.to_string()))?;
        let transport =
            GrpcTransport::new(cfg.node_id, cfg.faults.clone(), cfg.raft_timeout, cfg.tls.clone());
        for (id, a) in &cfg.peers {
            transport.set_peer(*id, a);
        }
        let raft_cfg = RaftConfig { node_id: cfg.node_id, ..cfg.raft.clone() };
        let health = Arc::new(WriteHealth::new(Some(cfg.data_dir.clone()), cfg.min_free_bytes));
        let raft = RaftNode::new(raft_cfg, kv.clone(), transport.clone(), health)?;
        let map: SharedMap = SharedMap::default();
        let meta_nodes: Vec<NodeId> = cfg.peers.keys().copied().take(3).collect();
        // the metadata group runs here if the stored map says so (its voters move), else,
        // before there is a map, on the founders
        let applier = MetaApplier::open(kv.clone(), map.clone()).map_err(|e| Error::Server(e.to_string()))?;
        let hosts_meta = match map.read().as_ref() {
            Some(m) => m.hosted_by(cfg.node_id).contains(&META_GROUP),
            None => meta_nodes.contains(&cfg.node_id),
        };
        if hosts_meta {
            raft.add_group(META_GROUP, Box::new(applier)).await?;
        }
        let state = Arc::new(NodeState {
            id: cfg.node_id,
            raft: raft.clone(),
            map: map.clone(),
            db: Mutex::new(None),
            peers: cfg.peers.clone(),
            placement: Arc::default(),
            placement_cfg: cfg.placement.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let node =
            Arc::new(StorageNode { state: state.clone(), kv, stop, tasks: Mutex::new(Vec::new()), addr });

        if let Some(listener) = listener {
            let server = tokio::spawn(serve_grpc(state.clone(), listener, &cfg, stopped.clone()));
            node.tasks.lock().push(server);
        }

        if cfg.bootstrap && meta_nodes.first() == Some(&cfg.node_id) {
            let members: BTreeMap<NodeId, String> =
                meta_nodes.iter().filter_map(|n| cfg.peers.get(n).map(|a| (*n, a.clone()))).collect();
            raft.initialize(META_GROUP, &members).await?;
        }
        let health = tokio::spawn(health_loop(raft.clone(), stopped.clone()));
        node.tasks.lock().push(health);
        let reconcile = tokio::spawn(reconcile_loop(node.clone(), cfg, transport, stopped));
        node.tasks.lock().push(reconcile);
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.state.id
    }

    /// The address the gRPC server listens on (none for a node without a port).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The node's database once the cluster map is known (reads of its replicas).
    pub fn db(&self) -> Option<Arc<Db>> {
        self.state.db()
    }

    /// The storage engine's own gauges (its limits, the bytes its files hold) for
    /// `/metrics`.
    pub fn engine_gauges(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.kv.gauges()
    }

    /// The node's Raft groups.
    pub fn raft(&self) -> &Arc<RaftNode> {
        &self.state.raft
    }

    /// The cluster map as this node knows it.
    pub fn map(&self) -> Option<ClusterMap> {
        self.state.map.read().clone()
    }

    /// How the placement controller moves replicas (this node's settings, in force while
    /// it leads the metadata group).
    pub fn placement_config(&self) -> &PlacementConfig {
        &self.state.placement_cfg
    }

    /// What the placement controller did while this node led the metadata group.
    pub fn placement_stats(&self) -> &PlacementStats {
        &self.state.placement
    }

    /// Hands the leadership of its groups to other voters, checkpoints every group, stops
    /// them and the server, drops the log entries the checkpoints cover, merges every
    /// bucket's segments and closes the database.
    pub async fn shutdown(&self) {
        let kept = self.state.raft.hand_off_leadership().await;
        if kept > 0 {
            tracing::warn!(groups = kept, "leadership hand-off unfinished: those groups elect a leader");
        }
        self.state.raft.checkpoint_all(Duration::from_secs(10)).await;
        self.stop_all(true).await;
    }

    /// Stops at once, without checkpoints (what a crash leaves, minus the torn writes
    /// RocksDB's WAL already guards against).
    pub async fn kill(&self) {
        self.stop_all(false).await;
    }

    async fn stop_all(&self, clean: bool) {
        let _ = self.stop.send(true);
        self.state.raft.shutdown(clean).await;
        if clean && let Some(db) = self.state.db() {
            let db2 = db.clone();
            match tokio::task::spawn_blocking(move || db2.compact_all()).await {
                Ok(Err(e)) => tracing::warn!(error = %e, "compacting on shutdown"),
                Err(e) => tracing::warn!(error = %e, "compacting on shutdown"),
                Ok(Ok(())) => {}
            }
        }
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        if let Some(db) = self.state.db.lock().take()
            && let Err(e) = db.close()
        {
            tracing::warn!(error = %e, "closing the database");
        }
        let _ = self.kv.flush();
        // the flush may have started compactions; the process may exit right after this
        self.kv.quiesce();
    }
}

/// Serves the node's gRPC services (Raft, Storage) on `listener` until `stopped`.
///
/// A caller that connects and stalls costs one of `grpc_max_connections` slots for at most
/// the TLS handshake deadline (10 s); HTTP/2 keep-alive pings drop dead peers; a connection
/// carries at most 256 concurrent calls with headers of at most 64 KiB.
fn serve_grpc(
    state: Arc<NodeState>,
    listener: tokio::net::TcpListener,
    cfg: &StorageConfig,
    mut stopped: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + use<> {
    let tls = cfg.tls.clone();
    let max_connections = cfg.grpc_max_connections;
    async move {
        let map = state.map.clone();
        let raft_svc = RaftServer::new(RaftService { node: state.clone() })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let storage_svc = StorageServer::new(StorageService { node: state })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let incoming = crate::incoming::capped(listener, max_connections);
        let mut builder = tonic::transport::Server::builder()
            .max_concurrent_streams(256)
            .http2_max_header_list_size(64 << 10)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)));
        if let Some(tls) = tls {
            builder = match builder.tls_config(tls.server()) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "gRPC TLS settings refused: not serving");
                    return;
                }
            };
        }
        let res = builder
            .layer(SetResponseHeaderLayer::overriding(
                HeaderName::from_static(strata_cluster::MAP_VERSION_HEADER),
                MapVersion(map),
            ))
            .add_service(raft_svc)
            .add_service(storage_svc)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }
}

/// Puts the version of the cluster map this node knows on every gRPC reply
/// ([`strata_cluster::MAP_VERSION_HEADER`]): clients notice a move from any answer.
#[derive(Clone)]
struct MapVersion(SharedMap);

impl<B> MakeHeaderValue<tonic::codegen::http::Response<B>> for MapVersion {
    fn make_header_value(&mut self, _: &tonic::codegen::http::Response<B>) -> Option<HeaderValue> {
        self.0.read().as_ref().map(|m| HeaderValue::from(m.version))
    }
}

/// Opens the node's RocksDB, waiting up to 10 s for a previous owner of the directory (a
/// process or node instance still shutting down) to release its lock.
#[cfg(feature = "rocksdb")]
async fn open_engine(
    dir: &std::path::Path,
    rocks: &strata_engine_rocks::RocksConfig,
) -> Result<Arc<dyn KvEngine>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Server(format!("creating {}: {e}", dir.display())))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match strata_engine_rocks::RocksEngine::open(dir, rocks) {
            Ok(e) => return Ok(Arc::new(e)),
            // an engine of this process on the same directory is still closing (a restart)
            Err(strata_tsdb::Error::Busy(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(Error::Storage(e)),
        }
    }
}

/// Every second: probes the storage (free space; after a failed write, a synced write) and
/// restarts the groups a storage error stopped once writes succeed again.
async fn health_loop(raft: Arc<RaftNode>, mut stopped: watch::Receiver<bool>) {
    loop {
        raft.maintain_health().await;
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Keeps the node in line with the cluster map: bootstraps it if asked, fetches it, opens
/// the database and starts the groups of the shards placed here; checkpoints on time.
async fn reconcile_loop(
    node: Arc<StorageNode>,
    cfg: StorageConfig,
    transport: Arc<GrpcTransport>,
    mut stopped: watch::Receiver<bool>,
) {
    let seeds: Vec<String> = cfg.peers.values().cloned().collect();
    let client = ClusterClient::new(ClientConfig { seeds, tls: cfg.tls.clone(), ..ClientConfig::default() });
    let mut last_checkpoint = tokio::time::Instant::now();
    let mut controller = Controller::default();
    let mut rs = ReconcileState::default();
    loop {
        if let Err(e) = reconcile_once(&node, &cfg, &transport, &client, &mut rs).await {
            tracing::debug!(error = %e, "cluster not ready yet");
        }
        controller.tick(&node.state, &client).await;
        node.state.raft.update_purge_floors();
        checkpoint_big_logs(&node, cfg.db.checkpoint_log_bytes, &mut rs.idle_log).await;
        if last_checkpoint.elapsed() >= cfg.checkpoint_interval {
            last_checkpoint = tokio::time::Instant::now();
            node.state.raft.snapshot_all().await;
        }
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// What the reconcile loop remembers between ticks.
#[derive(Debug, Default)]
struct ReconcileState {
    /// Groups the map no longer places here, since when.
    unneeded: HashMap<u32, tokio::time::Instant>,
    /// Ticks so far.
    ticks: u64,
    /// The newest map fetched from the others (by a node that is no voter of the metadata
    /// group).
    fetched: Option<ClusterMap>,
    /// The others' maps say this node left the metadata group (its own copy is stale).
    left_meta: bool,
    /// Log bytes applied since the shards' checkpoints at the last tick, and since when
    /// that figure has not moved.
    idle_log: (u64, Option<tokio::time::Instant>),
}

/// No write applied for this long checkpoints every shard with log since its checkpoint:
/// an idle node keeps no log it does not need (disk after an ingest ends).
const IDLE_CHECKPOINT_AFTER: Duration = Duration::from_secs(10);

/// Checkpoints the shards that applied the most log since their last checkpoint while all
/// of them together applied more than `budget` bytes (the size trigger; openraft's own
/// trigger counts entries): the log a node keeps stays near `budget` however many shards
/// it holds. Once nothing was applied for [`IDLE_CHECKPOINT_AFTER`], every shard with log
/// since its checkpoint is checkpointed (`idle`: the last total and since when it stands).
async fn checkpoint_big_logs(
    node: &StorageNode,
    budget: u64,
    idle: &mut (u64, Option<tokio::time::Instant>),
) {
    let Some(db) = node.state.db() else { return };
    let mut logs: Vec<(u64, u32)> = node
        .state
        .raft
        .groups()
        .into_iter()
        .filter_map(|g| db.shard_log_bytes(g).ok().map(|b| (b, g)))
        .collect();
    let mut total: u64 = logs.iter().map(|l| l.0).sum();
    let now = tokio::time::Instant::now();
    let standing = match idle {
        (last, Some(since)) if *last == total => now.duration_since(*since),
        _ => {
            *idle = (total, Some(now));
            Duration::ZERO
        }
    };
    let limit = if standing >= IDLE_CHECKPOINT_AFTER { 0 } else { budget };
    logs.sort_unstable_by(|a, b| b.cmp(a));
    for (bytes, g) in logs {
        if total <= limit || bytes == 0 {
            break;
        }
        if node.state.raft.snapshot(g).await.is_ok() {
            total -= bytes;
        }
    }
}

/// Proposes a metadata command: directly when this node leads the metadata group (the only
/// way on a node without a port), else through `client` to whichever node leads it; answers
/// the command's answer.
pub(crate) async fn update_metadata(st: &NodeState, client: &ClusterClient, cmd: Vec<u8>) -> Result<Vec<u8>> {
    if st.raft.groups().contains(&META_GROUP) {
        match st.raft.propose(META_GROUP, strata_raft::Request(cmd.clone())).await {
            Ok(r) => return r.first_error.map_or(Ok(r.answer), |e| Err(Error::Invalid(e))),
            Err(strata_raft::Error::NotLeader { .. }) => {}
            Err(e) => return Err(Error::Raft(e)),
        }
    }
    client.update_metadata(cmd).await
}

async fn reconcile_once(
    node: &Arc<StorageNode>,
    cfg: &StorageConfig,
    transport: &GrpcTransport,
    client: &ClusterClient,
    rs: &mut ReconcileState,
) -> Result<()> {
    rs.ticks += 1;
    let st = &node.state;
    let holds_meta = st.raft.groups().contains(&META_GROUP);
    // a voter of the metadata group has the map (a learner is still catching up)
    let meta_voter = st.raft.status(META_GROUP).is_ok_and(|s| s.voters.contains(&st.id));
    let local = st.map.read().clone();
    // anyone else asks every node for the newest map (a node removed from the metadata
    // group serves a stale one, and may be asked first), every 4th tick
    let fetched = match (&local, meta_voter, &rs.fetched) {
        (Some(m), true, _) => Ok(m.clone()),
        (_, false, Some(m)) if rs.ticks % 4 != 1 => Ok(m.clone()),
        _ => client.fetch_map().await.inspect(|m| rs.fetched = Some(m.clone())),
    };
    let map = match (fetched, local) {
        (Ok(m), _) => {
            if !holds_meta {
                *st.map.write() = Some(m.clone());
            }
            m
        }
        (Err(_), Some(m)) => m,
        (Err(e), None) => match Err::<ClusterMap, Error>(e) {
            Ok(m) => m,
            Err(e) if cfg.bootstrap => {
                let m = ClusterMap::create(cfg.shards, cfg.replication_factor, cfg.peers.clone())
                    .map_err(Error::Config)?;
                let cmd = encode(&Command::Create(m)).map_err(|e| Error::Server(e.to_string()))?;
                update_metadata(st, client, cmd)
                    .await
                    .map_err(|e2| Error::NoMap(format!("{e}; creating it: {e2}")))?;
                return Ok(());
            }
            Err(e) => return Err(e),
        },
    };
    if map.dead.contains(&st.id) {
        // its name joined again with an empty disk: another node now stands for it
        return Err(Error::Config(format!(
            "node {} was declared dead (its name joined again with an empty disk); empty this \
             data directory to join anew",
            st.id
        )));
    }
    for (id, a) in &map.nodes {
        transport.set_peer(*id, a);
    }
    // a node that comes back on another address (standalone's internal port) says so
    if map.nodes.get(&st.id).is_some_and(|a| *a != cfg.advertise) {
        let cmd = encode(&Command::AddNode { id: st.id, addr: cfg.advertise.clone() })
            .map_err(|e| Error::Server(e.to_string()))?;
        update_metadata(st, client, cmd).await?;
    }
    let db = match st.db() {
        Some(db) => db,
        None => {
            let dbcfg = DbConfig { shards: map.shards, ..cfg.db.clone() };
            let db = Db::open(node.kv.clone(), dbcfg, cfg.clock.clone())?;
            // before any shard group starts: installs a crash interrupted are completed
            crate::shard_applier::recover_staged(&db, &staging_root(&cfg.data_dir))
                .map_err(|e| Error::Server(format!("recovering staged snapshots: {e}")))?;
            *st.db.lock() = Some(db.clone());
            tracing::info!(node = st.id, shards = map.shards, "database opened");
            db
        }
    };
    let info = map.node_info(st.id);
    if map.name_of(st.id) != cfg.name || info.zone != cfg.zone {
        let cmd = Command::Describe { id: st.id, name: cfg.name.clone(), zone: cfg.zone.clone() };
        let cmd = encode(&cmd).map_err(|e| Error::Server(e.to_string()))?;
        update_metadata(st, client, cmd).await?;
    }
    let hosted = st.raft.groups();
    let mut wanted = map.hosted_by(st.id);
    if meta_voter && wanted.contains(&META_GROUP) && rs.ticks.is_multiple_of(10) {
        // a copy of the metadata group that stopped receiving (its node was down, or
        // stuck in the joint configuration, when it was removed from the group) is checked
        // against the others' maps now and then
        if let Ok(newest) = client.fetch_map().await
            && newest.version > map.version
        {
            rs.left_meta = !newest.hosted_by(st.id).contains(&META_GROUP);
        }
    }
    if rs.left_meta {
        wanted.retain(|&g| g != META_GROUP);
    }
    for &shard in &wanted {
        rs.unneeded.remove(&shard);
        if hosted.contains(&shard) {
            continue;
        }
        if shard == META_GROUP {
            // a new voter of the metadata group: it starts empty and learns from the leader
            crate::meta::clear(node.kv.as_ref()).map_err(|e| Error::Server(e.to_string()))?;
            let applier = MetaApplier::open(node.kv.clone(), st.map.clone())
                .map_err(|e| Error::Server(e.to_string()))?;
            st.raft.add_group(META_GROUP, Box::new(applier)).await?;
            continue;
        }
        let applier = ShardApplier::new(
            db.clone(),
            node.kv.clone(),
            shard,
            staging_root(&cfg.data_dir),
            st.raft.health().clone(),
        );
        st.raft.add_group(shard, Box::new(applier)).await?;
        // only the first membership is initialised here; a replica added later (a move's
        // target) learns its membership from the leader
        let replicas = map.replicas(shard);
        if replicas.first() == Some(&st.id)
            && map.initial_membership(shard)
            && st.raft.status(shard)?.last_log == 0
        {
            let members: BTreeMap<NodeId, String> =
                replicas.iter().filter_map(|n| map.nodes.get(n).map(|a| (*n, a.clone()))).collect();
            st.raft.initialize(shard, &members).await?;
        }
    }
    remove_unneeded(st, node.kv.as_ref(), &db, &hosted, &wanted, cfg.placement.replica_grace, rs).await;
    Ok(())
}

/// Removes the replicas the map no longer places here (a move took them elsewhere) once
/// they have been unneeded for `grace`: the group's log and the shard's data.
async fn remove_unneeded(
    st: &NodeState,
    kv: &dyn KvEngine,
    db: &Arc<Db>,
    hosted: &[u32],
    wanted: &[u32],
    grace: Duration,
    rs: &mut ReconcileState,
) {
    let (unneeded, left_meta) = (&mut rs.unneeded, &mut rs.left_meta);
    let now = tokio::time::Instant::now();
    for &g in hosted {
        if wanted.contains(&g) {
            continue;
        }
        let since = *unneeded.entry(g).or_insert(now);
        if now.duration_since(since) < grace {
            continue;
        }
        let removed = match st.raft.remove_group(g).await {
            Ok(()) if g == META_GROUP => crate::meta::clear(kv).map_err(|e| e.to_string()),
            Ok(()) => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || db.clear_shard(g))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            }
            Err(e) => Err(e.to_string()),
        };
        match removed {
            Ok(()) => {
                unneeded.remove(&g);
                *left_meta &= g != META_GROUP;
                tracing::info!(group = g, "replica removed: the group moved to another node");
            }
            Err(e) => tracing::warn!(shard = g, error = %e, "removing a replica failed; retrying"),
        }
    }
}
