//! # strata — the binary
//!
//! One binary, one subcommand per role. `strata standalone` runs the whole data path in
//! one process over a local RocksDB: a one-node cluster (RF=1 shard groups) written to
//! in-process. `strata storage` hosts shard replicas (Raft groups)
//! and optionally the Prometheus API over them; `strata ingestor` accepts remote-write and
//! forwards one proposal per shard to the shard leaders.
//! `anyhow` is used here, at the edge, and nowhere else.

mod admin;
mod certs;
mod config;
mod lifecycle;
mod probe;
mod roles;
mod scraping;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use strata_engine_rocks::RocksConfig;
use strata_server::{AppState, ServerConfig};
use strata_storage::{NodeBackend, StandaloneWriter, StorageConfig, StorageNode};
use strata_tsdb::DbConfig;

use crate::config::StandaloneConfig;
pub(crate) use crate::lifecycle::shutdown_signal;
use strata_discovery::PromDuration;

/// Strata: a distributed, Prometheus-compatible time-series database.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Every role in one process on a local data directory.
    Standalone(StandaloneArgs),
    /// A storage node: replicas of the shards placed on it, each a Raft group.
    Storage(Box<roles::StorageArgs>),
    /// An ingestor: Prometheus remote-write, forwarded to the shard leaders.
    Ingestor(roles::IngestorArgs),
    /// A stateless querier: the Prometheus HTTP API and the gRPC query API over every
    /// shard of a cluster.
    Querier(roles::QuerierArgs),
    /// GET a URL and exit 0 on 2xx (health checks in images with nothing but this binary).
    Probe(probe::ProbeArgs),
    /// Cluster administration: status, decommission, recommission, pause and resume
    /// rebalancing.
    Admin(admin::AdminArgs),
    /// Makes a cluster CA and a member certificate for the mutual TLS between cluster
    /// members (`--grpc-tls-*` of storage nodes, ingestors and queriers).
    Certs(certs::CertsArgs),
    /// Checks configuration files, as `promtool check`.
    #[command(subcommand)]
    Check(Check),
}

#[derive(Debug, Subcommand)]
enum Check {
    /// Checks web configuration files (`--web.config.file`) as `promtool check web-config`:
    /// prints `FILE SUCCESS` or `FILE FAILED: reason`, exits 1 if any failed.
    WebConfig {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn check(c: Check) -> anyhow::Result<()> {
    let Check::WebConfig { files } = c;
    let mut failed = false;
    for f in files {
        match strata_server::check_web_config(&f) {
            None => eprintln!("{} SUCCESS", f.display()),
            Some(e) => {
                eprintln!("{} FAILED: {e}", f.display());
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Flags of `strata standalone`; each overrides the config file.
#[derive(Debug, clap::Args)]
struct StandaloneArgs {
    /// YAML config file (see docs/configuration.md); unknown keys are rejected.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP listen address [default: 0.0.0.0:9090].
    #[arg(long)]
    http_addr: Option<String>,
    /// Retention, e.g. 15d [default: 15d].
    #[arg(long)]
    retention_time: Option<PromDuration>,
    /// Out-of-order window, e.g. 10m [default: 0s].
    #[arg(long)]
    out_of_order_time_window: Option<PromDuration>,
    /// Number of shards of a new data directory [default: 4].
    #[arg(long)]
    shards: Option<u32>,
    /// Checkpoint interval [default: 2m].
    #[arg(long)]
    checkpoint_interval: Option<PromDuration>,
    /// A Prometheus configuration file whose `scrape_configs` this node scrapes
    /// (reloaded on SIGHUP and `POST /-/reload`) [default: none].
    #[arg(long)]
    scrape_config: Option<PathBuf>,
    /// Prometheus feature flags to turn on, comma-separated or repeated, e.g.
    /// promql-experimental-functions (added to the config file's `enable_features`).
    #[arg(long = "enable-feature", value_delimiter = ',')]
    enable_feature: Vec<String>,
    /// Most HTTP connections open at once; more wait to be accepted [default: 512].
    #[arg(long = "web.max-connections")]
    web_max_connections: Option<usize>,
    /// Longest a client may take to send a request's headers [default: 30s].
    #[arg(long = "web.header-read-timeout")]
    web_header_read_timeout: Option<PromDuration>,
    /// Longest a client may take to send a request's body [default: 5m].
    #[arg(long = "web.read-timeout")]
    web_read_timeout: Option<PromDuration>,
    /// Prometheus's web configuration file: TLS, basic-auth users and response headers of
    /// the HTTP listener (re-read when it changes) [default: none].
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// A file of bearer tokens, one `USER TOKEN` per line, accepted beside basic auth
    /// [default: none].
    #[arg(long = "web.bearer-tokens-file")]
    web_bearer_tokens_file: Option<PathBuf>,
    /// Serve /metrics, /-/healthy and /-/ready without authentication (probes, scrapers).
    #[arg(long = "web.unauthenticated-probes")]
    web_unauthenticated_probes: bool,
    /// Serve POST /-/reload and /-/quit (else 403, as Prometheus).
    #[arg(long = "web.enable-lifecycle")]
    web_enable_lifecycle: bool,
    /// Every write and read names a tenant (X-Scope-OrgID, or the authenticated user);
    /// tenants' data are isolated (Mimir's flag).
    #[arg(long = "auth.multitenancy-enabled")]
    multitenancy_enabled: bool,
    /// Authenticated users who may name any tenants in X-Scope-OrgID (`a|b`: several at
    /// once), comma-separated [default: none].
    #[arg(long = "auth.tenant-operators", value_delimiter = ',')]
    tenant_operators: Vec<String>,
    /// Per-tenant limits overriding the defaults (Mimir's `overrides:` file), re-read when
    /// it changes [default: none].
    #[arg(long = "runtime-config.file")]
    runtime_config_file: Option<PathBuf>,
    /// Refuse writes (503) while the data directory's filesystem has fewer free bytes than
    /// this; 0 = no check [default: 268435456].
    #[arg(long = "storage.min-free-bytes")]
    storage_min_free_bytes: Option<u64>,
    /// Most bytes of RocksDB write-ahead-log files kept (the disk a running node uses
    /// beyond its data) [default: 8388608].
    #[arg(long = "storage.max-wal-bytes")]
    storage_max_wal_bytes: Option<u64>,
    #[command(flatten)]
    ingest: config::IngestArgs,
}

fn load_config(a: StandaloneArgs) -> anyhow::Result<StandaloneConfig> {
    let mut c = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_yaml::from_str(&text).with_context(|| format!("invalid config file {}", p.display()))?
        }
        None => StandaloneConfig::default(),
    };
    if let Some(v) = a.data_dir {
        c.data_dir = v;
    }
    if let Some(v) = a.http_addr {
        c.http_addr = v;
    }
    if let Some(v) = a.retention_time {
        c.retention_time = v;
    }
    if let Some(v) = a.out_of_order_time_window {
        c.out_of_order_time_window = v;
    }
    if let Some(v) = a.shards {
        c.shards = v;
    }
    if let Some(v) = a.checkpoint_interval {
        c.checkpoint_interval = v;
    }
    if let Some(v) = a.scrape_config {
        c.scrape_config_file = Some(v);
    }
    c.enable_features.extend(a.enable_feature);
    if let Some(v) = a.web_max_connections {
        c.web_max_connections = v;
    }
    if let Some(v) = a.web_header_read_timeout {
        c.web_header_read_timeout = v;
    }
    if let Some(v) = a.storage_min_free_bytes {
        c.storage_min_free_bytes = v;
    }
    if let Some(v) = a.storage_max_wal_bytes {
        c.storage_max_wal_bytes = v;
    }
    if let Some(v) = a.web_read_timeout {
        c.web_read_timeout = v;
    }
    if let Some(v) = a.web_config_file {
        c.web_config_file = Some(v);
    }
    if let Some(v) = a.web_bearer_tokens_file {
        c.web_bearer_tokens_file = Some(v);
    }
    c.web_unauthenticated_probes |= a.web_unauthenticated_probes;
    c.web_enable_lifecycle |= a.web_enable_lifecycle;
    c.multitenancy_enabled |= a.multitenancy_enabled;
    c.tenant_operators.extend(a.tenant_operators);
    if let Some(v) = a.runtime_config_file {
        c.runtime_config_file = Some(v);
    }
    a.ingest.apply(&mut c);
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

async fn standalone(c: StandaloneConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&c.data_dir).with_context(|| format!("creating {}", c.data_dir.display()))?;
    // a one-node cluster: RF=1 shard groups on the local RocksDB, written in-process; it
    // opens no port besides the HTTP API (its groups never send a message)
    let mut cfg = StorageConfig::standalone(c.data_dir.clone(), c.shards);
    cfg.db = DbConfig {
        retention: c.retention_time.0,
        out_of_order_window: c.out_of_order_time_window.0,
        checkpoint_log_bytes: c.checkpoint_log_bytes,
        max_future: c.ingest_max_future.0,
        label_limits: c.label_limits(),
        ..DbConfig::default()
    };
    cfg.checkpoint_interval = c.checkpoint_interval.0;
    cfg.rocks = RocksConfig {
        block_cache_bytes: c.block_cache_bytes,
        max_total_wal_bytes: c.storage_max_wal_bytes,
        ..RocksConfig::default()
    };
    cfg.min_free_bytes = c.storage_min_free_bytes;
    let node = StorageNode::start_local(cfg)
        .await
        .with_context(|| format!("opening database in {}", c.data_dir.display()))?;
    let writer: Arc<dyn strata_api::Writer> = Arc::new(StandaloneWriter(node.clone()));
    let server = ServerConfig {
        max_write_body_bytes: c.max_write_body_bytes,
        engine: strata_promql::EngineConfig {
            lookback_ms: c.query_lookback_delta.0.as_millis() as i64,
            max_samples: c.query_max_samples,
            timeout: c.query_timeout.0,
            features: c.features(),
            max_bytes: c.query_max_bytes,
            max_points_per_series: c.query_max_points_per_series,
            max_nesting: c.query_max_nesting,
            ..strata_promql::EngineConfig::default()
        },
        query_max_concurrency: c.query_max_concurrency,
        max_response_bytes: c.query_max_response_bytes,
        listen: c.listen(),
        ingest: c.ingest(),
        tenancy: strata_server::TenancyConfig {
            enabled: c.multitenancy_enabled,
            operators: c.tenant_operators.clone(),
        },
        overrides: strata_server::OverridesConfig { file: c.runtime_config_file.clone(), ingestors: 1 },
        ..ServerConfig::default()
    };
    if let Some(e) = strata_server::check_overrides(&server) {
        anyhow::bail!("runtime_config_file: {e}");
    }
    let state = AppState::with(Arc::new(NodeBackend::new(node.clone())), writer.clone(), server);
    let (scrape_routes, scrape) =
        scraping::start(c.scrape_config_file.clone(), None, &c.http_addr, &state, writer).await?;
    let scrape_routes = scrape_routes.merge(lifecycle::routes(c.web_enable_lifecycle, Some(scrape)));
    let listener = tokio::net::TcpListener::bind(&c.http_addr)
        .await
        .with_context(|| format!("listening on {}", c.http_addr))?;
    tracing::info!(addr = %listener.local_addr()?, data_dir = %c.data_dir.display(), "strata standalone serving");
    state
        .serve(listener, strata_server::router(state.clone()).merge(scrape_routes), shutdown_signal())
        .await?;
    node.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Caps glibc's malloc at two arenas unless `MALLOC_ARENA_MAX` says otherwise. By default
/// glibc gives threads up to 8 arenas per core, each keeping the memory freed into it: with
/// tokio's workers, RocksDB's threads and the checkpoints' large transient batches, a
/// standalone node under 1,333 samples/s held 94.5 MB resident after 5 minutes with the
/// default and 82.5 MB with two arenas, at the same CPU (2.37 vs 2.31 s).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn cap_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt takes two integers and touches only the allocator's own settings,
        // under the allocator's lock; it is called first in main, before any thread starts,
        // and M_ARENA_MAX only bounds arenas created later (existing memory is unaffected).
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_malloc_arenas() {}

fn main() -> anyhow::Result<()> {
    cap_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.role {
        Role::Standalone(a) => {
            let c = load_config(a)?;
            rt.block_on(standalone(c))
        }
        Role::Storage(a) => rt.block_on(roles::storage(*a)),
        Role::Ingestor(a) => rt.block_on(roles::ingestor(a)),
        Role::Querier(a) => rt.block_on(roles::querier(a)),
        Role::Probe(a) => probe::probe(a),
        Role::Admin(a) => rt.block_on(admin::run(a)),
        Role::Certs(a) => certs::certs(a),
        Role::Check(c) => check(c),
    }
}
