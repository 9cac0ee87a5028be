//! `strata standalone` settings: a YAML file (unknown keys rejected) overridden by flags.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use strata_discovery::PromDuration;

/// Settings of `strata standalone`. Every field is optional in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StandaloneConfig {
    /// Directory holding the database. Default `./data`.
    pub(crate) data_dir: PathBuf,
    /// HTTP listen address (Prometheus API, remote write, /metrics). Default `0.0.0.0:9090`.
    pub(crate) http_addr: String,
    /// How long samples are kept; dropped in whole 2-hour buckets. Default `15d`.
    pub(crate) retention_time: PromDuration,
    /// Prometheus's `out_of_order_time_window`: how far behind the newest sample an
    /// out-of-order sample is still accepted. Default `0s` (off).
    pub(crate) out_of_order_time_window: PromDuration,
    /// Number of shards; fixed when the data directory is created. Default `4`.
    pub(crate) shards: u32,
    /// How often each shard checkpoints its head (bounds restart replay). Default `2m`.
    pub(crate) checkpoint_interval: PromDuration,
    /// Once all shards together applied this many bytes of log since their checkpoints,
    /// checkpoint the ones with the most. Default `16777216` (16 MiB).
    pub(crate) checkpoint_log_bytes: u64,
    /// Largest compressed remote-write body, in bytes; larger get 413. Default `33554432` (32 MiB).
    pub(crate) max_write_body_bytes: usize,
    /// RocksDB block cache, in bytes. Default `134217728` (128 MiB).
    pub(crate) block_cache_bytes: usize,
    /// Writes are refused (503) while the data directory's filesystem has fewer free bytes
    /// than this, before RocksDB hits a full disk; `0` turns the check off. Default
    /// `268435456` (256 MiB).
    pub(crate) storage_min_free_bytes: u64,
    /// Most bytes of RocksDB write-ahead-log files kept; past it the column families
    /// pinning the oldest file are flushed. Default `8388608` (8 MiB).
    pub(crate) storage_max_wal_bytes: u64,
    /// How far back an instant selector looks for a sample. Default `5m`.
    pub(crate) query_lookback_delta: PromDuration,
    /// Longest a query may run. Default `2m`.
    pub(crate) query_timeout: PromDuration,
    /// Most samples one query may load. Default `50000000`.
    pub(crate) query_max_samples: usize,
    /// Queries evaluated at once; more wait. Default `20`.
    pub(crate) query_max_concurrency: usize,
    /// Most bytes one query's evaluation may allocate (loaded data, step grids, computed
    /// points). Default `4294967296` (4 GiB).
    pub(crate) query_max_bytes: usize,
    /// Largest JSON answer of `query`/`query_range`, in bytes. Default `1073741824` (1 GiB).
    pub(crate) query_max_response_bytes: usize,
    /// Most points per series of a range query and of each subquery. Default `11000`.
    pub(crate) query_max_points_per_series: i64,
    /// Deepest nesting of a query (parentheses, calls, brackets, operators). Default `500`.
    pub(crate) query_max_nesting: usize,
    /// Most HTTP connections open at once; more wait to be accepted (Prometheus's
    /// `--web.max-connections`). Default `512`.
    pub(crate) web_max_connections: usize,
    /// Longest a client may take to send a request's headers (and to start its next request
    /// on a kept-alive connection). Default `30s`.
    pub(crate) web_header_read_timeout: PromDuration,
    /// Longest a client may take to send a request's body (Prometheus's
    /// `--web.read-timeout`). Default `5m`.
    pub(crate) web_read_timeout: PromDuration,
    /// Prometheus's web configuration file (`--web.config.file`): TLS, basic-auth users and
    /// response headers of the HTTP listener, re-read when it changes. Default none.
    pub(crate) web_config_file: Option<PathBuf>,
    /// A file of bearer tokens, one `USER TOKEN` per line. Default none.
    pub(crate) web_bearer_tokens_file: Option<PathBuf>,
    /// Serve `/metrics`, `/-/healthy` and `/-/ready` without authentication. Default false.
    pub(crate) web_unauthenticated_probes: bool,
    /// Serve `POST /-/reload` and `/-/quit` (Prometheus's `--web.enable-lifecycle`).
    /// Default false.
    pub(crate) web_enable_lifecycle: bool,
    /// Every write and read names a tenant (`X-Scope-OrgID`, or the authenticated user);
    /// tenants' data are isolated (`--auth.multitenancy-enabled`, Mimir's). Default false.
    pub(crate) multitenancy_enabled: bool,
    /// Authenticated users who may name any tenants in `X-Scope-OrgID` (`a|b`: several).
    /// Default none.
    pub(crate) tenant_operators: Vec<String>,
    /// Per-tenant limits overriding the defaults (`--runtime-config.file`, Mimir's
    /// `overrides:` shape), re-read when it changes. Default none.
    pub(crate) runtime_config_file: Option<PathBuf>,
    /// Samples newer than now plus this are refused, one by one, on every write path
    /// (Mimir's `creation_grace_period`). Default `10m`.
    pub(crate) ingest_max_future: PromDuration,
    /// Most labels in a series, `__name__` included; 0 = no limit. Default `30`.
    pub(crate) ingest_max_label_names_per_series: usize,
    /// Longest label name, in bytes; 0 = no limit. Default `1024`.
    pub(crate) ingest_max_label_name_length: usize,
    /// Longest label value, in bytes; 0 = no limit. Default `2048`.
    pub(crate) ingest_max_label_value_length: usize,
    /// Most series in one remote-write request; 0 = no limit. Default `100000`.
    pub(crate) ingest_max_series_per_request: usize,
    /// Most metadata entries in one remote-write request; 0 = no limit. Default `100000`.
    pub(crate) ingest_max_metadata_per_request: usize,
    /// Samples per second taken from remote write (429 above); 0 = no limit. Default `0`.
    pub(crate) ingest_rate_limit: f64,
    /// Samples the rate limit lets through at once; 0 = 20 × the rate. Default `0`.
    pub(crate) ingest_burst: u64,
    /// Most series the node holds; writes creating more get 400 for those series; 0 = no
    /// limit. Default `0`.
    pub(crate) ingest_max_active_series: usize,
    /// Most series of one metric name a tenant holds; 0 = no limit. Default `0`.
    pub(crate) ingest_max_active_series_per_metric: usize,
    /// Deduplicate Prometheus HA pairs of every tenant (the default of the per-tenant
    /// `accept_ha_samples`). Default false.
    pub(crate) ha_tracker_enable: bool,
    /// The label naming an HA pair's cluster. Default `cluster`.
    pub(crate) ha_tracker_cluster_label: String,
    /// The label naming the replica within an HA pair, dropped before storage. Default
    /// `__replica__`.
    pub(crate) ha_tracker_replica_label: String,
    /// Most HA clusters per tenant; 0 = no limit. Default `100`.
    pub(crate) ha_tracker_max_clusters: usize,
    /// How old a node's copy of an election gets before it claims it again. Default `15s`.
    pub(crate) ha_tracker_update_timeout: PromDuration,
    /// How long an election stands unrenewed before another replica takes over. Default
    /// `30s`.
    pub(crate) ha_tracker_failover_timeout: PromDuration,
    /// A Prometheus configuration file whose `scrape_configs` are scraped (relative to
    /// the working directory). Default none.
    pub(crate) scrape_config_file: Option<PathBuf>,
    /// Prometheus feature flags to turn on (`promql-experimental-functions`,
    /// `promql-delayed-name-removal`, `promql-extended-range-selectors`,
    /// `promql-binop-fill-modifiers`). Default none, as a default Prometheus 3 server.
    pub(crate) enable_features: Vec<String>,
}

impl Default for StandaloneConfig {
    fn default() -> Self {
        StandaloneConfig {
            data_dir: PathBuf::from("./data"),
            http_addr: "0.0.0.0:9090".into(),
            retention_time: PromDuration(Duration::from_secs(15 * 86_400)),
            out_of_order_time_window: PromDuration(Duration::ZERO),
            shards: 4,
            checkpoint_interval: PromDuration(Duration::from_secs(120)),
            checkpoint_log_bytes: 16 << 20,
            max_write_body_bytes: 32 << 20,
            block_cache_bytes: 128 << 20,
            storage_min_free_bytes: 256 << 20,
            storage_max_wal_bytes: 8 << 20,
            query_lookback_delta: PromDuration(Duration::from_secs(300)),
            query_timeout: PromDuration(Duration::from_secs(120)),
            ingest_max_future: PromDuration(Duration::from_secs(600)),
            ingest_max_label_names_per_series: 30,
            ingest_max_label_name_length: 1024,
            ingest_max_label_value_length: 2048,
            ingest_max_series_per_request: 100_000,
            ingest_max_metadata_per_request: 100_000,
            ingest_rate_limit: 0.0,
            ingest_burst: 0,
            ingest_max_active_series: 0,
            ingest_max_active_series_per_metric: 0,
            ha_tracker_enable: false,
            ha_tracker_cluster_label: "cluster".into(),
            ha_tracker_replica_label: "__replica__".into(),
            ha_tracker_max_clusters: 100,
            ha_tracker_update_timeout: PromDuration(Duration::from_secs(15)),
            ha_tracker_failover_timeout: PromDuration(Duration::from_secs(30)),
            scrape_config_file: None,
            query_max_samples: 50_000_000,
            query_max_concurrency: 20,
            query_max_bytes: 4 << 30,
            query_max_response_bytes: 1 << 30,
            query_max_points_per_series: 11_000,
            query_max_nesting: 500,
            web_max_connections: 512,
            web_header_read_timeout: PromDuration(Duration::from_secs(30)),
            web_read_timeout: PromDuration(Duration::from_secs(300)),
            web_config_file: None,
            web_bearer_tokens_file: None,
            web_unauthenticated_probes: false,
            web_enable_lifecycle: false,
            multitenancy_enabled: false,
            tenant_operators: Vec::new(),
            runtime_config_file: None,
            enable_features: Vec::new(),
        }
    }
}

impl StandaloneConfig {
    /// Checks values that parse but make no sense.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !self.shards.is_power_of_two() || self.shards > 4096 {
            return Err(format!("shards must be a power of two between 1 and 4096, got {}", self.shards));
        }
        if self.retention_time.0.is_zero() {
            return Err("retention_time must be positive".into());
        }
        if self.checkpoint_interval.0 < Duration::from_secs(1) {
            return Err("checkpoint_interval must be at least 1s".into());
        }
        if self.query_lookback_delta.0.is_zero() || self.query_timeout.0.is_zero() {
            return Err("query_lookback_delta and query_timeout must be positive".into());
        }
        if self.query_max_samples == 0 || self.query_max_concurrency == 0 {
            return Err("query_max_samples and query_max_concurrency must be at least 1".into());
        }
        if self.query_max_bytes == 0
            || self.query_max_response_bytes == 0
            || self.query_max_points_per_series <= 0
            || self.query_max_nesting == 0
        {
            return Err("query_max_bytes, query_max_response_bytes, query_max_points_per_series and \
                 query_max_nesting must be at least 1"
                .into());
        }
        if self.web_max_connections == 0
            || self.web_header_read_timeout.0.is_zero()
            || self.web_read_timeout.0.is_zero()
        {
            return Err(
                "web_max_connections, web_header_read_timeout and web_read_timeout must be positive".into()
            );
        }
        if let Some(e) = self.web_config_file.as_deref().and_then(strata_server::check_web_config) {
            return Err(format!("web_config_file: {e}"));
        }
        if self.max_write_body_bytes == 0 {
            return Err("max_write_body_bytes must be positive".into());
        }
        if !(self.ingest_rate_limit >= 0.0 && self.ingest_rate_limit.is_finite()) {
            return Err("ingest_rate_limit must be a number of samples per second, 0 for none".into());
        }
        self.ingest().ha.check()?;
        if let Some(f) =
            self.enable_features.iter().find(|f| !strata_promql::FEATURE_NAMES.contains(&f.as_str()))
        {
            return Err(format!("unknown feature {f:?}; known: {}", strata_promql::FEATURE_NAMES.join(", ")));
        }
        Ok(())
    }

    /// The limits on one series' labels.
    pub(crate) fn label_limits(&self) -> strata_tsdb::LabelLimits {
        strata_tsdb::LabelLimits {
            max_names: self.ingest_max_label_names_per_series,
            max_name_len: self.ingest_max_label_name_length,
            max_value_len: self.ingest_max_label_value_length,
        }
    }

    /// The remote-write limits.
    pub(crate) fn ingest(&self) -> strata_server::IngestLimits {
        strata_server::IngestLimits {
            labels: self.label_limits(),
            max_series_per_request: self.ingest_max_series_per_request,
            max_metadata_per_request: self.ingest_max_metadata_per_request,
            rate_limit: self.ingest_rate_limit,
            burst: self.ingest_burst,
            max_active_series: self.ingest_max_active_series,
            max_active_series_per_metric: self.ingest_max_active_series_per_metric,
            ha: strata_server::HaLimits {
                accept: self.ha_tracker_enable,
                cluster_label: self.ha_tracker_cluster_label.clone(),
                replica_label: self.ha_tracker_replica_label.clone(),
                max_clusters: self.ha_tracker_max_clusters,
                update_timeout: self.ha_tracker_update_timeout.0,
                failover_timeout: self.ha_tracker_failover_timeout.0,
            },
        }
    }

    /// The HTTP listener's limits.
    pub(crate) fn listen(&self) -> strata_server::ListenConfig {
        strata_server::ListenConfig {
            max_connections: self.web_max_connections,
            header_read_timeout: self.web_header_read_timeout.0,
            body_read_timeout: self.web_read_timeout.0,
            security: strata_server::WebSecurityConfig {
                config_file: self.web_config_file.clone(),
                bearer_tokens_file: self.web_bearer_tokens_file.clone(),
                open_probes: self.web_unauthenticated_probes,
            },
            ..strata_server::ListenConfig::default()
        }
    }

    /// The PromQL features turned on.
    pub(crate) fn features(&self) -> strata_promql::Features {
        let mut f = strata_promql::Features::default();
        for name in &self.enable_features {
            f.enable(name);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_unknown_keys_fail() {
        let c: StandaloneConfig = serde_yaml::from_str("retention_time: 30d\nshards: 8\n").unwrap();
        assert_eq!(c.retention_time.0, Duration::from_secs(30 * 86_400));
        assert_eq!(c.shards, 8);
        assert_eq!(c.http_addr, "0.0.0.0:9090");
        let e = serde_yaml::from_str::<StandaloneConfig>("retension_time: 30d\n").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(serde_yaml::from_str::<StandaloneConfig>("retention_time: 30x\n").is_err());
        let c: StandaloneConfig =
            serde_yaml::from_str("enable_features: [promql-experimental-functions]\n").unwrap();
        assert!(
            c.validate().is_ok() && c.features().experimental_functions && !c.features().binop_fill_modifiers
        );
        let c: StandaloneConfig = serde_yaml::from_str("enable_features: [promql-nonsense]\n").unwrap();
        assert!(c.validate().unwrap_err().contains("unknown feature"));
        assert!(StandaloneConfig { shards: 0, ..StandaloneConfig::default() }.validate().is_err());
    }
}

/// The `--ingest.*` flags, of every role that takes writes (standalone, ingestor, storage):
/// each overrides the config file (standalone) or the default.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct IngestArgs {
    /// Refuse samples newer than now plus this [default: 10m]. Not on an ingestor (the
    /// storage nodes check every sample they apply).
    #[arg(long = "ingest.max-future")]
    ingest_max_future: Option<PromDuration>,
    /// Most labels in a series; 0 = no limit [default: 30].
    #[arg(long = "ingest.max-label-names-per-series")]
    ingest_max_label_names_per_series: Option<usize>,
    /// Longest label name, in bytes; 0 = no limit [default: 1024].
    #[arg(long = "ingest.max-label-name-length")]
    ingest_max_label_name_length: Option<usize>,
    /// Longest label value, in bytes; 0 = no limit [default: 2048].
    #[arg(long = "ingest.max-label-value-length")]
    ingest_max_label_value_length: Option<usize>,
    /// Most series in one remote-write request; 0 = no limit [default: 100000].
    #[arg(long = "ingest.max-series-per-request")]
    ingest_max_series_per_request: Option<usize>,
    /// Most metadata entries in one remote-write request; 0 = no limit [default: 100000].
    #[arg(long = "ingest.max-metadata-per-request")]
    ingest_max_metadata_per_request: Option<usize>,
    /// Remote-write samples per second this process takes; more get 429 with Retry-After;
    /// 0 = no limit [default: 0].
    #[arg(long = "ingest.rate-limit")]
    ingest_rate_limit: Option<f64>,
    /// Samples the rate limit lets through at once; 0 = 20 × the rate [default: 0].
    #[arg(long = "ingest.burst")]
    ingest_burst: Option<u64>,
    /// Most series a tenant holds; new series beyond get 400; 0 = no limit [default: 0].
    /// Enforced by the shard leaders, each for its share.
    #[arg(long = "ingest.max-active-series")]
    ingest_max_active_series: Option<usize>,
    /// Most series of one metric name a tenant holds; new series beyond get 400; 0 = no
    /// limit [default: 0].
    #[arg(long = "ingest.max-active-series-per-metric")]
    ingest_max_active_series_per_metric: Option<usize>,
    /// Deduplicate Prometheus HA pairs of every tenant (series with the cluster and replica
    /// labels are stored from the elected replica only) [default: false].
    #[arg(long = "ha-tracker.enable")]
    ha_tracker_enable: bool,
    /// The label naming an HA pair's cluster [default: cluster].
    #[arg(long = "ha-tracker.cluster-label")]
    ha_tracker_cluster_label: Option<String>,
    /// The label naming the replica of an HA pair, dropped before storage [default: __replica__].
    #[arg(long = "ha-tracker.replica-label")]
    ha_tracker_replica_label: Option<String>,
    /// Most HA clusters per tenant; 0 = no limit [default: 100].
    #[arg(long = "ha-tracker.max-clusters")]
    ha_tracker_max_clusters: Option<usize>,
    /// How old a node's copy of an HA election gets before it claims it again [default: 15s].
    #[arg(long = "ha-tracker.update-timeout")]
    ha_tracker_update_timeout: Option<PromDuration>,
    /// How long an HA election stands unrenewed before another replica takes over
    /// [default: 30s].
    #[arg(long = "ha-tracker.failover-timeout")]
    ha_tracker_failover_timeout: Option<PromDuration>,
}

impl IngestArgs {
    /// Overrides `c`'s ingest settings with the flags given.
    pub(crate) fn apply(&self, c: &mut StandaloneConfig) {
        let set = |dst: &mut usize, v: Option<usize>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        if let Some(v) = self.ingest_max_future {
            c.ingest_max_future = v;
        }
        set(&mut c.ingest_max_label_names_per_series, self.ingest_max_label_names_per_series);
        set(&mut c.ingest_max_label_name_length, self.ingest_max_label_name_length);
        set(&mut c.ingest_max_label_value_length, self.ingest_max_label_value_length);
        set(&mut c.ingest_max_series_per_request, self.ingest_max_series_per_request);
        set(&mut c.ingest_max_metadata_per_request, self.ingest_max_metadata_per_request);
        set(&mut c.ingest_max_active_series, self.ingest_max_active_series);
        set(&mut c.ingest_max_active_series_per_metric, self.ingest_max_active_series_per_metric);
        if let Some(v) = self.ingest_rate_limit {
            c.ingest_rate_limit = v;
        }
        if let Some(v) = self.ingest_burst {
            c.ingest_burst = v;
        }
        c.ha_tracker_enable |= self.ha_tracker_enable;
        if let Some(v) = &self.ha_tracker_cluster_label {
            c.ha_tracker_cluster_label = v.clone();
        }
        if let Some(v) = &self.ha_tracker_replica_label {
            c.ha_tracker_replica_label = v.clone();
        }
        set(&mut c.ha_tracker_max_clusters, self.ha_tracker_max_clusters);
        if let Some(v) = self.ha_tracker_update_timeout {
            c.ha_tracker_update_timeout = v;
        }
        if let Some(v) = self.ha_tracker_failover_timeout {
            c.ha_tracker_failover_timeout = v;
        }
    }

    /// The ingest settings of a cluster role: the defaults overridden by the flags given,
    /// checked.
    pub(crate) fn settings(&self) -> anyhow::Result<StandaloneConfig> {
        let mut c = StandaloneConfig::default();
        self.apply(&mut c);
        c.validate().map_err(anyhow::Error::msg)?;
        Ok(c)
    }

    /// The first flag given that only a node with a database can apply (an ingestor
    /// stamps no sample: storage nodes check those against their clock).
    pub(crate) fn storage_only(&self) -> Option<&'static str> {
        self.ingest_max_future.is_some().then_some("--ingest.max-future")
    }
}
