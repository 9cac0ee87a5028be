//! Per-tenant limits with Mimir's names: every tenant gets the node's defaults (its flags),
//! and the runtime configuration file (`--runtime-config.file`, Mimir's flag and shape)
//! overrides them per tenant:
//!
//! ```yaml
//! overrides:
//!   team-a:
//!     ingestion_rate: 10000
//!     max_global_series_per_user: 150000
//! ```
//!
//! The file is read again when it changes; a bad file fails the start, and later keeps the
//! last good limits in force (Mimir's behaviour). Without tenants everything is the tenant
//! `anonymous`, so the same limits apply node-wide (today's flags).
//!
//! Rates hold across ingestors by sharding the budget: each of the `--ingest.ingestors`
//! ingestors takes 1/N of a tenant's rate and burst (Mimir's "global" strategy, with N
//! given instead of read from a ring). A sender spread evenly over the ingestors gets its
//! whole rate; one that sends to a single ingestor gets 1/N of it, never more than its rate.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use strata_discovery::PromDuration;

use crate::ha::HaLimits;
use crate::limits::{IngestLimits, RateLimiter};
use crate::reload::{OnError, Reloading};

/// A tenant's limits. 0 means no limit everywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// Samples per second the tenant may write; above: 429 with `Retry-After`.
    pub ingestion_rate: f64,
    /// Samples the rate lets through at once; 0 = 20 × the rate.
    pub ingestion_burst_size: u64,
    /// Most series the tenant holds; a write creating more gets 400 for those series
    /// (each shard takes its share).
    pub max_global_series_per_user: usize,
    /// Most series of one metric name the tenant holds (as `max_global_series_per_user`).
    pub max_global_series_per_metric: usize,
    /// Most labels in a series, `__name__` included.
    pub max_label_names_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_length: usize,
    /// Longest label value, in bytes.
    pub max_label_value_length: usize,
    /// Most series one query may select (422 above).
    pub max_fetched_series_per_query: usize,
    /// Most bytes one query's evaluation may hold (422 above).
    pub max_fetched_chunk_bytes_per_query: usize,
    /// Most samples one query may load (422 above).
    pub max_samples_per_query: usize,
    /// Longest range of a range query (422 above), a Prometheus duration (`720h`).
    pub max_total_query_length: PromDuration,
    /// How far back a query may read (a Prometheus duration): older data is not read, the
    /// start is clamped.
    pub max_query_lookback: PromDuration,
    /// Queries of the tenant evaluated at once on this node; more wait.
    pub max_concurrent_queries: usize,
    /// Deduplicate the tenant's Prometheus HA pairs (see [`HaLimits`]).
    pub accept_ha_samples: bool,
    /// The label naming an HA pair's cluster.
    pub ha_cluster_label: String,
    /// The label naming the replica of an HA pair, dropped before storage.
    pub ha_replica_label: String,
    /// Most HA clusters of the tenant (400 above); 0 = no limit.
    pub ha_max_clusters: usize,
    /// How old a node's copy of an election gets before it is claimed again (a Prometheus
    /// duration).
    pub ha_tracker_update_timeout: PromDuration,
    /// How long an election stands unrenewed before another replica takes over (a
    /// Prometheus duration).
    pub ha_tracker_failover_timeout: PromDuration,
}

impl TenantLimits {
    /// The node's defaults: its flags (remote-write limits, query engine limits).
    pub fn defaults(ingest: &IngestLimits, engine: &strata_promql::EngineConfig, concurrency: usize) -> Self {
        TenantLimits {
            ingestion_rate: ingest.rate_limit,
            ingestion_burst_size: ingest.burst,
            max_global_series_per_user: ingest.max_active_series,
            max_global_series_per_metric: ingest.max_active_series_per_metric,
            max_label_names_per_series: ingest.labels.max_names,
            max_label_name_length: ingest.labels.max_name_len,
            max_label_value_length: ingest.labels.max_value_len,
            max_fetched_series_per_query: 0,
            max_fetched_chunk_bytes_per_query: engine.max_bytes,
            max_samples_per_query: engine.max_samples,
            max_total_query_length: PromDuration(Duration::ZERO),
            max_query_lookback: PromDuration(Duration::ZERO),
            max_concurrent_queries: concurrency,
            accept_ha_samples: ingest.ha.accept,
            ha_cluster_label: ingest.ha.cluster_label.clone(),
            ha_replica_label: ingest.ha.replica_label.clone(),
            ha_max_clusters: ingest.ha.max_clusters,
            ha_tracker_update_timeout: PromDuration(ingest.ha.update_timeout),
            ha_tracker_failover_timeout: PromDuration(ingest.ha.failover_timeout),
        }
    }

    /// Every limit as (name, value) for `/metrics` (durations in seconds).
    pub(crate) fn gauges(&self) -> [(&'static str, f64); 17] {
        [
            ("ingestion_rate", self.ingestion_rate),
            ("ingestion_burst_size", self.ingestion_burst_size as f64),
            ("max_global_series_per_user", self.max_global_series_per_user as f64),
            ("max_global_series_per_metric", self.max_global_series_per_metric as f64),
            ("max_label_names_per_series", self.max_label_names_per_series as f64),
            ("max_label_name_length", self.max_label_name_length as f64),
            ("max_label_value_length", self.max_label_value_length as f64),
            ("max_fetched_series_per_query", self.max_fetched_series_per_query as f64),
            ("max_fetched_chunk_bytes_per_query", self.max_fetched_chunk_bytes_per_query as f64),
            ("max_samples_per_query", self.max_samples_per_query as f64),
            ("max_total_query_length", self.max_total_query_length.0.as_secs_f64()),
            ("max_query_lookback", self.max_query_lookback.0.as_secs_f64()),
            ("max_concurrent_queries", self.max_concurrent_queries as f64),
            ("accept_ha_samples", f64::from(u8::from(self.accept_ha_samples))),
            ("ha_max_clusters", self.ha_max_clusters as f64),
            ("ha_tracker_update_timeout", self.ha_tracker_update_timeout.0.as_secs_f64()),
            ("ha_tracker_failover_timeout", self.ha_tracker_failover_timeout.0.as_secs_f64()),
        ]
    }

    /// The remote-write limits of the tenant (the node's, with the tenant's values).
    pub(crate) fn ingest(&self, node: &IngestLimits, ingestors: usize) -> IngestLimits {
        let n = ingestors.max(1);
        IngestLimits {
            labels: strata_tsdb::LabelLimits {
                max_names: self.max_label_names_per_series,
                max_name_len: self.max_label_name_length,
                max_value_len: self.max_label_value_length,
            },
            rate_limit: self.ingestion_rate / n as f64,
            burst: self.ingestion_burst_size.div_ceil(n as u64),
            max_active_series: self.max_global_series_per_user,
            max_active_series_per_metric: self.max_global_series_per_metric,
            ha: self.ha(),
            ..node.clone()
        }
    }

    /// The tenant's HA tracker settings.
    pub(crate) fn ha(&self) -> HaLimits {
        HaLimits {
            accept: self.accept_ha_samples,
            cluster_label: self.ha_cluster_label.clone(),
            replica_label: self.ha_replica_label.clone(),
            max_clusters: self.ha_max_clusters,
            update_timeout: self.ha_tracker_update_timeout.0,
            failover_timeout: self.ha_tracker_failover_timeout.0,
        }
    }
}

/// The runtime configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeFile {
    #[serde(default)]
    overrides: BTreeMap<String, serde_yaml::Mapping>,
}

/// Where the limits come from.
#[derive(Debug, Clone, Default)]
pub struct OverridesConfig {
    /// The runtime configuration file (`--runtime-config.file`). Default none: every tenant
    /// has the defaults.
    pub file: Option<PathBuf>,
    /// Ingestors a tenant's rate is shared by (`--ingest.ingestors`): each takes 1/N.
    /// Default 1.
    pub ingestors: usize,
}

/// Reads `file` over `defaults`: each tenant's entry replaces the defaults it names.
fn load(file: &std::path::Path, defaults: &TenantLimits) -> Result<BTreeMap<String, TenantLimits>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let parsed: RuntimeFile = serde_yaml::from_str::<Option<RuntimeFile>>(&text)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .unwrap_or_default();
    let base = serde_yaml::to_value(defaults).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (tenant, entry) in parsed.overrides {
        let mut v = base.clone();
        if let serde_yaml::Value::Mapping(m) = &mut v {
            m.extend(entry);
        }
        let limits: TenantLimits = serde_yaml::from_value(v)
            .map_err(|e| format!("{}: overrides of {tenant}: {e}", file.display()))?;
        limits.ha().check().map_err(|e| format!("{}: overrides of {tenant}: {e}", file.display()))?;
        out.insert(tenant, limits);
    }
    Ok(out)
}

/// Most tenants whose rate limiter or query slots are kept: past it they are all dropped
/// and made again on use (a tenant then starts from a full burst), so that requests naming
/// ever new tenants cannot grow the node's memory without bound.
const MAX_TRACKED_TENANTS: usize = 100_000;

/// A tenant's rate limiter (None: no rate limit) and the limits it was made for.
type Bucket = (TenantLimits, Option<Arc<RateLimiter>>);

/// The limits of every tenant, and the state that enforces them across requests.
#[derive(Debug)]
pub(crate) struct Overrides {
    defaults: TenantLimits,
    ingestors: usize,
    file: Option<Reloading<BTreeMap<String, TenantLimits>>>,
    /// Each tenant's rate limiter, with the limits it was made for.
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Each tenant's query slots, with their number.
    queries: Mutex<HashMap<String, (usize, Arc<tokio::sync::Semaphore>)>>,
}

impl Overrides {
    /// The limits of `cfg` over `defaults`; a bad file is an error.
    pub(crate) fn new(cfg: &OverridesConfig, defaults: TenantLimits) -> Result<Self, String> {
        let file = match &cfg.file {
            None => None,
            Some(f) => {
                let (f, d) = (f.clone(), defaults.clone());
                Some(Reloading::new("runtime configuration", OnError::KeepLast, move || {
                    (vec![f.clone()], load(&f, &d))
                })?)
            }
        };
        Ok(Self::with_file(cfg, defaults, file))
    }

    /// The defaults for every tenant, whatever the file says.
    pub(crate) fn defaults_only(cfg: &OverridesConfig, defaults: TenantLimits) -> Self {
        Self::with_file(cfg, defaults, None)
    }

    fn with_file(
        cfg: &OverridesConfig,
        defaults: TenantLimits,
        file: Option<Reloading<BTreeMap<String, TenantLimits>>>,
    ) -> Self {
        Overrides {
            defaults,
            ingestors: cfg.ingestors.max(1),
            file,
            buckets: Mutex::default(),
            queries: Mutex::default(),
        }
    }

    /// The limits in force for `tenant`.
    pub(crate) fn limits(&self, tenant: &str) -> TenantLimits {
        self.file
            .as_ref()
            .and_then(|f| f.current().ok())
            .and_then(|m| m.get(tenant).cloned())
            .unwrap_or_else(|| self.defaults.clone())
    }

    /// The tenants the runtime configuration names, with their limits.
    pub(crate) fn overridden(&self) -> Vec<(String, TenantLimits)> {
        let Some(m) = self.file.as_ref().and_then(|f| f.current().ok()) else { return Vec::new() };
        m.iter().map(|(t, l)| (t.clone(), l.clone())).collect()
    }

    /// The share of the tenant's rate this node enforces.
    pub(crate) fn ingestors(&self) -> usize {
        self.ingestors
    }

    /// The tenant's rate limiter (None: no rate limit), made again when its limits change.
    pub(crate) fn rate_limiter(
        &self,
        tenant: &str,
        limits: &TenantLimits,
        node: &IngestLimits,
        clock: &Arc<dyn strata_tsdb::Clock>,
    ) -> Option<Arc<RateLimiter>> {
        let mut b = self.buckets.lock();
        if let Some((l, r)) = b.get(tenant)
            && l == limits
        {
            return r.clone();
        }
        let r = RateLimiter::new(&limits.ingest(node, self.ingestors), clock.clone()).map(Arc::new);
        if b.len() >= MAX_TRACKED_TENANTS {
            b.clear();
        }
        b.insert(tenant.to_owned(), (limits.clone(), r.clone()));
        r
    }

    /// The tenant's query slots (`max_concurrent_queries`; None: no limit).
    pub(crate) fn query_slots(
        &self,
        tenant: &str,
        limits: &TenantLimits,
    ) -> Option<Arc<tokio::sync::Semaphore>> {
        let n = limits.max_concurrent_queries;
        if n == 0 {
            return None;
        }
        let mut q = self.queries.lock();
        if q.len() >= MAX_TRACKED_TENANTS && !q.contains_key(tenant) {
            q.clear();
        }
        let e = q.entry(tenant.to_owned()).or_insert_with(|| (n, Arc::new(tokio::sync::Semaphore::new(n))));
        if e.0 != n {
            *e = (n, Arc::new(tokio::sync::Semaphore::new(n)));
        }
        Some(e.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_the_defaults_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("runtime.yml");
        std::fs::write(
            &f,
            "overrides:\n  team-a:\n    ingestion_rate: 10\n    max_global_series_per_user: 5\n",
        )
        .unwrap();
        let defaults =
            TenantLimits::defaults(&IngestLimits::default(), &strata_promql::EngineConfig::default(), 20);
        let o = Overrides::new(&OverridesConfig { file: Some(f.clone()), ingestors: 2 }, defaults.clone())
            .unwrap();
        let a = o.limits("team-a");
        assert_eq!((a.ingestion_rate, a.max_global_series_per_user), (10.0, 5));
        assert_eq!(a.max_label_names_per_series, defaults.max_label_names_per_series);
        assert_eq!(o.limits("team-b"), defaults);
        // each of 2 ingestors takes half of the rate
        assert_eq!(a.ingest(&IngestLimits::default(), o.ingestors()).rate_limit, 5.0);
        std::fs::write(&f, "overrides:\n  team-a:\n    ingestion_rat: 1\n").unwrap();
        let err = Overrides::new(&OverridesConfig { file: Some(f), ingestors: 1 }, defaults).unwrap_err();
        assert!(err.contains("ingestion_rat"), "{err}");
    }
}
