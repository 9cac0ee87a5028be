//! The distributed roles: `strata storage`, `strata ingestor` and `strata querier`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use strata_api::Reader;
use strata_cluster::{ClientConfig, ClusterClient, GrpcTls, TlsFiles};
use strata_ingestor::ClusterWriter;
use strata_querier::{ClusterBackend, QuerierConfig, ReadConsistency};
use strata_raft::RaftConfig;
use strata_server::{AppState, ServerConfig};
use strata_storage::{NodeBackend, PlacementConfig, StorageConfig, StorageNode};
use strata_tsdb::DbConfig;

use crate::config::IngestArgs;
use strata_discovery::PromDuration;

/// How a cluster member talks to the storage nodes' gRPC ports (Raft, shard writes and
/// reads, metadata): mutual TLS with the cluster's CA, or, only when asked, plaintext.
#[derive(Debug, clap::Args)]
pub(crate) struct GrpcTlsArgs {
    /// This member's certificate (PEM), signed by the cluster CA; its names must include
    /// the host other members dial (`strata certs` makes a CA and one).
    #[arg(long)]
    grpc_tls_cert_file: Option<PathBuf>,
    /// The private key of --grpc-tls-cert-file (PEM).
    #[arg(long)]
    grpc_tls_key_file: Option<PathBuf>,
    /// The cluster CA (PEM): a peer is a member iff its certificate chains to it.
    #[arg(long)]
    grpc_tls_ca_file: Option<PathBuf>,
    /// Plaintext gRPC without authentication: anyone who reaches a storage node's gRPC
    /// port can read, write and rewrite its data. For local experiments only.
    #[arg(long)]
    grpc_insecure: bool,
}

impl GrpcTlsArgs {
    /// The TLS settings, or none with `--grpc-insecure` (said loudly); refuses to go on
    /// with neither, or with only some of the files.
    pub(crate) fn load(&self) -> anyhow::Result<Option<Arc<GrpcTls>>> {
        let files = [&self.grpc_tls_cert_file, &self.grpc_tls_key_file, &self.grpc_tls_ca_file];
        match (files, self.grpc_insecure) {
            ([Some(cert), Some(key), Some(ca)], false) => Ok(Some(GrpcTls::load(&TlsFiles {
                cert_file: cert.clone(),
                key_file: key.clone(),
                ca_file: ca.clone(),
            })?)),
            ([None, None, None], true) => {
                tracing::warn!(
                    "--grpc-insecure: cluster gRPC traffic is plaintext and unauthenticated; anyone who \
                     reaches a storage node's gRPC port can read and rewrite its data. Never run this \
                     beyond a local experiment"
                );
                Ok(None)
            }
            (_, true) => anyhow::bail!("--grpc-insecure cannot be combined with --grpc-tls-* files"),
            ([None, None, None], false) => anyhow::bail!(
                "cluster gRPC needs mutual TLS: set --grpc-tls-cert-file, --grpc-tls-key-file and \
                 --grpc-tls-ca-file (`strata certs` makes a CA and a member certificate), or \
                 --grpc-insecure for a local experiment"
            ),
            _ => anyhow::bail!(
                "--grpc-tls-cert-file, --grpc-tls-key-file and --grpc-tls-ca-file go together: set all three"
            ),
        }
    }
}

/// Flags of `strata storage`.
#[derive(Debug, clap::Args)]
pub(crate) struct StorageArgs {
    /// This node's id, for the cluster's founders (the nodes listed in --peers). `auto`:
    /// the ordinal at the end of the host name plus one (`strata-storage-0` is node 1), for
    /// StatefulSet pods; a pod whose id is not in --peers (scaled up later) joins instead.
    /// Without an id the node takes the one stored in its data directory, or, on an empty
    /// one, joins the cluster through --peers and gets an id that is never reused.
    #[arg(long, value_parser = parse_node_id)]
    node_id: Option<NodeIdArg>,
    /// This node's name [default: the host name]: a name that joins again with an empty
    /// disk gets a new id, and its old id is declared dead.
    #[arg(long)]
    node_name: Option<String>,
    /// Data directory (one RocksDB) [default: ./data].
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// gRPC listen address (Raft, shard writes and reads, cluster map).
    #[arg(long, default_value = "0.0.0.0:7070")]
    grpc_addr: String,
    /// Address other nodes and clients reach this node's gRPC at [default: --grpc-addr].
    #[arg(long)]
    advertise_addr: Option<String>,
    /// The cluster's founding storage nodes: id=host:port, comma-separated. The first
    /// three (by id) hold the cluster metadata; a node not listed joins through them.
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// Create the cluster if it does not exist yet. Only the node with the lowest id in
    /// --peers acts on it, so every node of a StatefulSet may carry the flag.
    #[arg(long)]
    bootstrap: bool,
    /// Shards of a new cluster (power of two).
    #[arg(long, default_value_t = 64)]
    shards: u32,
    /// Replicas per shard of a new cluster.
    #[arg(long, default_value_t = 3)]
    replication_factor: usize,
    /// Also serve the Prometheus HTTP API here (queries read this node's replicas;
    /// remote-write goes through the shard leaders).
    #[arg(long)]
    http_addr: Option<String>,
    /// Retention, e.g. 15d.
    #[arg(long, default_value = "15d")]
    retention_time: PromDuration,
    /// Refuse writes while the data directory's filesystem has fewer free bytes than
    /// this; 0 = no check.
    #[arg(long = "storage.min-free-bytes", default_value_t = 256 << 20)]
    storage_min_free_bytes: u64,
    /// Most bytes of RocksDB write-ahead-log files kept; past it the column families
    /// pinning the oldest file are flushed (the disk a running node uses beyond its data).
    #[arg(long = "storage.max-wal-bytes", default_value_t = 8 << 20)]
    storage_max_wal_bytes: u64,
    /// Out-of-order window, e.g. 10m.
    #[arg(long, default_value = "0s")]
    out_of_order_time_window: PromDuration,
    /// Checkpoint every shard at least this often (also every 2,000 log entries).
    #[arg(long, default_value = "2m")]
    checkpoint_interval: PromDuration,
    /// Raft heartbeat interval, e.g. 300ms.
    #[arg(long, default_value = "300ms")]
    raft_heartbeat: PromDuration,
    /// Most gRPC connections open at once; more wait to be accepted.
    #[arg(long = "grpc.max-connections", default_value_t = 1024)]
    grpc_max_connections: usize,
    /// This node's failure domain (in Kubernetes the zone of the node the pod runs on):
    /// no two replicas of a shard share a zone while there are at least as many zones as
    /// replicas [default: none].
    #[arg(long, default_value = "")]
    zone: String,
    /// Replica moves in flight cluster-wide (applied by the metadata leader).
    #[arg(long = "placement.max-moves", default_value_t = 4)]
    placement_max_moves: usize,
    /// Moves in flight into, and out of, one node.
    #[arg(long = "placement.max-moves-per-node", default_value_t = 1)]
    placement_max_moves_per_node: usize,
    /// A node unseen this long is declared dead and its replicas rebuilt elsewhere.
    #[arg(long = "placement.dead-after", default_value = "5m")]
    placement_dead_after: PromDuration,
    /// How long a replica that moved away is kept before its data is deleted.
    #[arg(long = "placement.replica-grace", default_value = "30s")]
    placement_replica_grace: PromDuration,
    /// Snapshot bytes this node sends per second to other replicas, all transfers together
    /// (a moving or rebuilt replica); 0 = no limit [default: 64 MiB/s].
    #[arg(long = "snapshot.max-bytes-per-second", default_value_t = 64 << 20)]
    snapshot_max_bytes_per_second: u64,
    /// While a learner of a shard this node leads waits for its snapshot, the shard's
    /// checkpoints (and log purges) are put off for up to this many log entries, so the
    /// learner resumes from the log instead of needing a newer snapshot.
    #[arg(long = "snapshot.learner-hold-entries", default_value_t = 50_000)]
    snapshot_learner_hold_entries: u64,
    #[command(flatten)]
    tls: GrpcTlsArgs,
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    ingest: IngestArgs,
}

/// `--node-id`: a number, or derived from the host name.
#[derive(Debug, Clone, Copy)]
enum NodeIdArg {
    /// Given as a number.
    Given(u64),
    /// `auto`: the host name's ordinal plus one.
    Auto(u64),
}

fn parse_node_id(s: &str) -> Result<NodeIdArg, String> {
    if s != "auto" {
        return match s.parse() {
            Ok(0) | Err(_) => Err(format!("{s:?} is not a node id (a number from 1, or auto)")),
            Ok(n) => Ok(NodeIdArg::Given(n)),
        };
    }
    let host = strata_storage::host_name();
    host.rsplit_once('-')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .map(|n| NodeIdArg::Auto(n + 1))
        .ok_or_else(|| format!("--node-id auto: host name {host:?} does not end in -<ordinal>"))
}

fn parse_peers(v: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut out = BTreeMap::new();
    for p in v {
        let (id, addr) = p.split_once('=').with_context(|| format!("peer {p:?} is not id=host:port"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("peer id {id:?} is not a number"))?;
        if out.insert(id, addr.trim().to_string()).is_some() {
            anyhow::bail!("peer id {id} given twice");
        }
    }
    Ok(out)
}

/// Limits of a role's HTTP listener.
#[derive(Debug, clap::Args)]
pub(crate) struct WebArgs {
    /// Most HTTP connections open at once; more wait to be accepted.
    #[arg(long = "web.max-connections", default_value_t = 512)]
    web_max_connections: usize,
    /// Longest a client may take to send a request's headers (and to start its next request
    /// on a kept-alive connection).
    #[arg(long = "web.header-read-timeout", default_value = "30s")]
    web_header_read_timeout: PromDuration,
    /// Longest a client may take to send a request's body.
    #[arg(long = "web.read-timeout", default_value = "5m")]
    web_read_timeout: PromDuration,
    /// Serve the cluster administration verbs (decommission, recommission, rebalance
    /// pause/resume) on this listener; `GET /api/v1/cluster/status` is served regardless.
    #[arg(long = "web.enable-admin-api")]
    enable_admin_api: bool,
    /// Serve POST /-/reload and /-/quit (else 403 "Lifecycle API is not enabled.", as
    /// Prometheus).
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// Prometheus's web configuration file: TLS, basic-auth users and response headers of
    /// this listener (re-read when it changes) [default: none].
    #[arg(long = "web.config.file", env = "STRATA_WEB_CONFIG_FILE")]
    web_config_file: Option<std::path::PathBuf>,
    /// A file of bearer tokens, one `USER TOKEN` per line, accepted beside basic auth
    /// [default: none].
    #[arg(long = "web.bearer-tokens-file", env = "STRATA_WEB_BEARER_TOKENS_FILE")]
    web_bearer_tokens_file: Option<std::path::PathBuf>,
    /// Serve /metrics, /-/healthy and /-/ready without authentication (probes, scrapers).
    #[arg(long = "web.unauthenticated-probes", env = "STRATA_WEB_UNAUTHENTICATED_PROBES")]
    web_unauthenticated_probes: bool,
    /// Every write and read names a tenant (X-Scope-OrgID, or the authenticated user);
    /// tenants' data are isolated (Mimir's flag).
    #[arg(long = "auth.multitenancy-enabled", env = "STRATA_AUTH_MULTITENANCY_ENABLED")]
    multitenancy: bool,
    /// Authenticated users who may name any tenants in X-Scope-OrgID (`a|b`: several at
    /// once), comma-separated.
    #[arg(long = "auth.tenant-operators", value_delimiter = ',', env = "STRATA_AUTH_TENANT_OPERATORS")]
    tenant_operators: Vec<String>,
    /// Per-tenant limits overriding the flags' defaults (Mimir's `overrides:` file),
    /// re-read when it changes [default: none].
    #[arg(long = "runtime-config.file", env = "STRATA_RUNTIME_CONFIG_FILE")]
    runtime_config_file: Option<std::path::PathBuf>,
}

impl WebArgs {
    /// The cluster administration routes: the status, and the verbs with
    /// `--web.enable-admin-api` (else they answer 500 "admin APIs disabled", as Prometheus's).
    fn admin_routes(&self, client: Arc<ClusterClient>) -> axum::Router {
        crate::admin::routes(client, self.enable_admin_api)
    }

    fn tenancy(&self) -> strata_server::TenancyConfig {
        strata_server::TenancyConfig { enabled: self.multitenancy, operators: self.tenant_operators.clone() }
    }

    /// `cfg` with this listener's per-tenant limits (`ingestors` share each tenant's rate);
    /// a bad runtime configuration file is an error.
    fn with_overrides(&self, mut cfg: ServerConfig, ingestors: usize) -> anyhow::Result<ServerConfig> {
        cfg.overrides = strata_server::OverridesConfig { file: self.runtime_config_file.clone(), ingestors };
        if let Some(e) = strata_server::check_overrides(&cfg) {
            anyhow::bail!("--runtime-config.file: {e}");
        }
        Ok(cfg)
    }

    /// `/-/reload` (of `scrape`, when the node scrapes) and `/-/quit`, with
    /// `--web.enable-lifecycle`.
    fn lifecycle_routes(&self, scrape: Option<strata_scrape::ScrapeManager>) -> axum::Router {
        crate::lifecycle::routes(self.enable_lifecycle, scrape)
    }

    /// Whether the web configuration turns TLS on.
    fn serves_tls(&self) -> bool {
        self.web_config_file.as_deref().is_some_and(strata_server::web_config_serves_tls)
    }

    /// The listener's limits and security; a bad web configuration file is an error.
    fn listen(&self) -> anyhow::Result<strata_server::ListenConfig> {
        if let Some(e) = self.web_config_file.as_deref().and_then(strata_server::check_web_config) {
            anyhow::bail!("--web.config.file: {e}");
        }
        Ok(strata_server::ListenConfig {
            max_connections: self.web_max_connections,
            header_read_timeout: self.web_header_read_timeout.0,
            body_read_timeout: self.web_read_timeout.0,
            security: strata_server::WebSecurityConfig {
                config_file: self.web_config_file.clone(),
                bearer_tokens_file: self.web_bearer_tokens_file.clone(),
                open_probes: self.web_unauthenticated_probes,
            },
            ..strata_server::ListenConfig::default()
        })
    }
}

/// Serves `routes` (built over `state`) on `addr` with the state's listener limits until
/// a shutdown signal.
pub(crate) async fn serve_http(addr: &str, state: &AppState, routes: axum::Router) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP API serving");
    state.serve(listener, routes, crate::shutdown_signal()).await?;
    Ok(())
}

pub(crate) async fn storage(a: StorageArgs) -> anyhow::Result<()> {
    let peers = parse_peers(&a.peers)?;
    // 0: the id on the disk, or a join
    let node_id = match a.node_id {
        Some(NodeIdArg::Given(id)) => {
            anyhow::ensure!(
                peers.contains_key(&id),
                "--peers must list node {id} (a node that is not a founder joins: start it without --node-id)"
            );
            id
        }
        Some(NodeIdArg::Auto(id)) if peers.contains_key(&id) => id,
        Some(NodeIdArg::Auto(_)) | None => 0,
    };
    let listen = a.grpc_addr.parse().with_context(|| format!("--grpc-addr {:?}", a.grpc_addr))?;
    let tls = a.tls.load()?;
    let mut cfg = StorageConfig::new(node_id, a.data_dir.clone());
    if let Some(name) = &a.node_name {
        cfg.name = name.clone();
    }
    cfg.tls = tls.clone();
    cfg.grpc_max_connections = a.grpc_max_connections;
    cfg.listen = listen;
    cfg.advertise = match (&a.advertise_addr, peers.get(&node_id)) {
        (Some(addr), _) => addr.clone(),
        (None, Some(addr)) => addr.clone(),
        (None, None) => {
            anyhow::bail!("a node that joins the cluster needs --advertise-addr (how others reach it)")
        }
    };
    cfg.peers = peers.clone();
    cfg.bootstrap = a.bootstrap && node_id != 0;
    cfg.shards = a.shards;
    cfg.replication_factor = a.replication_factor;
    let ingest = a.ingest.settings()?;
    cfg.db = DbConfig {
        retention: a.retention_time.0,
        out_of_order_window: a.out_of_order_time_window.0,
        max_future: ingest.ingest_max_future.0,
        label_limits: ingest.label_limits(),
        ..DbConfig::default()
    };
    let heartbeat = a.raft_heartbeat.0.as_millis() as u64;
    cfg.raft = RaftConfig {
        node_id,
        heartbeat_ms: heartbeat,
        election_ms: (heartbeat * 20 / 3, heartbeat * 10),
        snapshot_bytes_per_sec: a.snapshot_max_bytes_per_second,
        learner_hold_entries: a.snapshot_learner_hold_entries,
        ..RaftConfig::default()
    };
    cfg.checkpoint_interval = a.checkpoint_interval.0;
    cfg.min_free_bytes = a.storage_min_free_bytes;
    cfg.rocks.max_total_wal_bytes = a.storage_max_wal_bytes;
    cfg.zone = a.zone.clone();
    cfg.placement = PlacementConfig {
        max_moves: a.placement_max_moves,
        max_moves_per_node: a.placement_max_moves_per_node,
        dead_after: a.placement_dead_after.0,
        replica_grace: a.placement_replica_grace.0,
        ..PlacementConfig::default()
    };
    let node = StorageNode::start(cfg).await?;
    tracing::info!(node = node.id(), grpc = ?node.local_addr(), data_dir = %a.data_dir.display(), "strata storage serving");
    match &a.http_addr {
        Some(addr) => {
            let client = Arc::new(ClusterClient::new(ClientConfig {
                seeds: peers.values().cloned().collect(),
                tls,
                ..ClientConfig::default()
            }));
            client.spawn_refresh(Duration::from_secs(10));
            let cfg = ServerConfig {
                listen: a.web.listen()?,
                ingest: ingest.ingest(),
                tenancy: a.web.tenancy(),
                ..ServerConfig::default()
            };
            let state = AppState::with(
                Arc::new(NodeBackend::new(node.clone())),
                Arc::new(ClusterWriter(client.clone())),
                a.web.with_overrides(cfg, 1)?,
            );
            let routes = strata_server::router(state.clone())
                .merge(a.web.admin_routes(client))
                .merge(a.web.lifecycle_routes(None));
            serve_http(addr, &state, routes).await?;
        }
        None => crate::shutdown_signal().await,
    }
    node.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Flags of `strata ingestor`.
#[derive(Debug, clap::Args)]
pub(crate) struct IngestorArgs {
    /// HTTP listen address (remote-write at /api/v1/write).
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: String,
    /// Storage nodes to fetch the cluster map from (host:port of their gRPC), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    storage: Vec<String>,
    /// How long a write may wait for its shards' leaders (elections included) before the
    /// client gets 503, e.g. 10s.
    #[arg(long, default_value = "10s")]
    write_timeout: PromDuration,
    /// A Prometheus configuration file whose `scrape_configs` this ingestor scrapes
    /// (its share of the targets when --scrape-peers is set; reloaded on SIGHUP and
    /// `POST /-/reload`).
    #[arg(long)]
    scrape_config: Option<PathBuf>,
    /// Every ingestor replica sharing the scrape targets (host:port of their HTTP,
    /// this one included), comma-separated; `dns+name:port` stands for every address the
    /// name resolves to (a headless Service). Each scrapes the targets a consistent hash
    /// over the live ones gives it. Default: this ingestor scrapes every target.
    #[arg(long, value_delimiter = ',')]
    scrape_peers: Vec<String>,
    /// This ingestor's entry in --scrape-peers [default: --http-addr].
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Ingestors sharing each tenant's ingestion rate: each takes 1/N of it (set it to the
    /// number of ingestor replicas; docs/security.md).
    #[arg(long = "ingest.ingestors", default_value_t = 1, env = "STRATA_INGEST_INGESTORS")]
    ingestors: usize,
    #[command(flatten)]
    tls: GrpcTlsArgs,
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    ingest: IngestArgs,
}

pub(crate) async fn ingestor(a: IngestorArgs) -> anyhow::Result<()> {
    if let Some(flag) = a.ingest.storage_only() {
        anyhow::bail!("{flag} is applied by storage nodes, not by an ingestor: set it on them");
    }
    let client = Arc::new(ClusterClient::new(ClientConfig {
        seeds: a.storage.clone(),
        write_timeout: a.write_timeout.0,
        tls: a.tls.load()?,
        ..ClientConfig::default()
    }));
    // the map is needed to split batches by shard; keep it fresh in the background
    client.spawn_refresh(Duration::from_secs(10));
    let admin = a.web.admin_routes(client.clone());
    let writer: Arc<dyn strata_api::Writer> = Arc::new(ClusterWriter(client));
    let ring = if a.scrape_peers.is_empty() {
        None
    } else {
        let me = a.advertise_addr.clone().unwrap_or_else(|| a.http_addr.clone());
        anyhow::ensure!(
            a.scrape_peers.contains(&me) || a.scrape_peers.iter().any(|p| p.starts_with("dns+")),
            "--scrape-peers must list this ingestor as {me:?} (or set --advertise-addr)"
        );
        let mut m = strata_scrape::ring::MembershipConfig::new(me, a.scrape_peers.clone());
        // the peers share this ingestor's web configuration
        m.https = a.web.serves_tls();
        Some(m)
    };
    let state = AppState::with(
        Arc::new(Reader::none()),
        writer.clone(),
        a.web.with_overrides(
            ServerConfig {
                listen: a.web.listen()?,
                tenancy: a.web.tenancy(),
                ingest: a.ingest.settings()?.ingest(),
                ..ServerConfig::default()
            },
            a.ingestors,
        )?,
    );
    let (scrape_routes, scrape) =
        crate::scraping::start(a.scrape_config.clone(), ring, &a.http_addr, &state, writer).await?;
    tracing::info!(storage = ?a.storage, "strata ingestor starting");
    let routes = strata_server::router(state.clone())
        .merge(scrape_routes)
        .merge(admin)
        .merge(a.web.lifecycle_routes(Some(scrape)));
    serve_http(&a.http_addr, &state, routes).await
}

/// How a querier reads shards (`--read-consistency`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Consistency {
    /// The shard leader, once its lease (or, stale, a ReadIndex round) confirms it: sees
    /// every acknowledged write.
    Linearizable,
    /// Any replica as it has applied (may lag by a heartbeat; spreads the load).
    Follower,
}

/// Flags of `strata querier`.
#[derive(Debug, clap::Args)]
pub(crate) struct QuerierArgs {
    /// HTTP listen address: the Prometheus HTTP API and the gRPC query API.
    #[arg(long, default_value = "0.0.0.0:9090")]
    http_addr: String,
    /// Storage nodes to fetch the cluster map from (host:port of their gRPC), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    storage: Vec<String>,
    /// Which replica answers shard reads.
    #[arg(long, value_enum, default_value = "linearizable")]
    read_consistency: Consistency,
    /// Evaluate distributable aggregations on the storage nodes and merge their partial
    /// results (false: every selected sample comes to the querier).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pushdown: bool,
    /// How long a shard read may try its replicas before the shard counts as unavailable.
    #[arg(long, default_value = "6s")]
    read_timeout: PromDuration,
    /// Longest a query may run, e.g. 2m.
    #[arg(long, default_value = "2m")]
    query_timeout: PromDuration,
    /// Most samples a query may load into memory, across all shards.
    #[arg(long, default_value_t = 50_000_000)]
    query_max_samples: usize,
    /// Most bytes one query's evaluation may allocate (loaded data, step grids, points).
    #[arg(long, default_value_t = 4 << 30)]
    query_max_bytes: usize,
    /// Largest JSON answer of `query`/`query_range`, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    query_max_response_bytes: usize,
    /// Most points per series of a range query and of each subquery.
    #[arg(long, default_value_t = 11_000)]
    query_max_points_per_series: i64,
    /// Deepest nesting of a query (parentheses, calls, brackets, operators).
    #[arg(long, default_value_t = 500)]
    query_max_nesting: usize,
    /// Lookback of instant selectors, e.g. 5m.
    #[arg(long, default_value = "5m")]
    query_lookback_delta: PromDuration,
    #[command(flatten)]
    tls: GrpcTlsArgs,
    #[command(flatten)]
    web: WebArgs,
}

pub(crate) async fn querier(a: QuerierArgs) -> anyhow::Result<()> {
    let client = Arc::new(ClusterClient::new(ClientConfig {
        seeds: a.storage.clone(),
        read_timeout: a.read_timeout.0,
        tls: a.tls.load()?,
        ..ClientConfig::default()
    }));
    client.spawn_refresh(Duration::from_secs(10));
    let mut cfg =
        ServerConfig { listen: a.web.listen()?, tenancy: a.web.tenancy(), ..ServerConfig::default() };
    cfg.engine.timeout = a.query_timeout.0;
    cfg.engine.max_samples = a.query_max_samples;
    cfg.engine.max_bytes = a.query_max_bytes;
    cfg.engine.max_points_per_series = a.query_max_points_per_series;
    cfg.engine.max_nesting = a.query_max_nesting;
    cfg.max_response_bytes = a.query_max_response_bytes;
    cfg.engine.lookback_ms = a.query_lookback_delta.0.as_millis() as i64;
    let admin = a.web.admin_routes(client.clone());
    let backend = ClusterBackend::new(
        client,
        QuerierConfig {
            consistency: match a.read_consistency {
                Consistency::Linearizable => ReadConsistency::Linearizable,
                Consistency::Follower => ReadConsistency::Follower,
            },
            pushdown: a.pushdown,
            lookback_ms: cfg.engine.lookback_ms,
        },
    );
    let state = AppState::with(Arc::new(backend), Arc::new(NoWrites), a.web.with_overrides(cfg, 1)?);
    tracing::info!(storage = ?a.storage, pushdown = a.pushdown, "strata querier starting");
    let routes = strata_server::router(state.clone()).merge(admin).merge(a.web.lifecycle_routes(None));
    serve_http(&a.http_addr, &state, routes).await
}

/// A querier takes no writes: remote write gets 405 with where to send it.
#[derive(Debug)]
struct NoWrites;

impl NoWrites {
    fn refusal() -> strata_api::WriteError {
        strata_api::WriteError::Invalid("a querier takes no writes: send remote write to an ingestor".into())
    }
}

impl strata_api::Writer for NoWrites {
    fn batch(&self) -> strata_tsdb::SeriesBatch {
        strata_tsdb::SeriesBatch::new(1)
    }

    fn commit(&self, _batch: strata_tsdb::SeriesBatch) -> strata_api::CommitFuture<'_> {
        Box::pin(async { Err(Self::refusal()) })
    }

    fn elect(&self, _claim: strata_api::HaClaim) -> strata_api::ElectFuture<'_> {
        Box::pin(async { Err(Self::refusal()) })
    }
}
