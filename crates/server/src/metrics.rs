//! Self-metrics (prometheus-client): counters updated on the write path, plus the
//! engine's head and log statistics read at scrape time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use strata_api::QueryBackend;

use crate::AppState;

/// Label set with a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub(crate) reason: String,
}

/// Label set of a rejection: the tenant and the reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TenantReason {
    pub(crate) tenant: String,
    pub(crate) reason: String,
}

/// Label set with an HTTP status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Code {
    pub(crate) code: String,
}

/// Label set naming a configured limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Limit {
    pub(crate) name: String,
}

/// The node's self-metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) ingested: Counter,
    pub(crate) rejected: Family<TenantReason, Counter>,
    pub(crate) write_requests: Family<Code, Counter>,
    /// HTTP connections open now (see [`crate::listen`]).
    pub(crate) open_connections: Gauge,
    /// HTTP requests refused by authentication, by reason (see [`crate::web_auth`]).
    pub(crate) auth_refused: Family<Reason, Counter>,
    /// Samples of HA replicas that were not elected, dropped (see [`crate::ha`]).
    pub(crate) deduped: Family<TenantCluster, Counter>,
    /// Changes of an HA cluster's elected replica this node saw.
    pub(crate) elected_changes: Family<TenantCluster, Counter>,
}

/// Label set of an HA cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TenantCluster {
    pub(crate) tenant: String,
    pub(crate) cluster: String,
}

/// Label set of a tenant's limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLimit {
    tenant: String,
    name: String,
}

/// The limits of the tenants the runtime configuration overrides, read at scrape time.
#[derive(Debug)]
struct OverridesCollector(Arc<crate::overrides::Overrides>);

impl Collector for OverridesCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let tenants = self.0.overridden();
        if tenants.is_empty() {
            return Ok(());
        }
        let help = "Limits of the tenants the runtime configuration overrides, by tenant and name \
                    (bytes, seconds or counts; the others have strata_limit's).";
        let mut family = enc.encode_descriptor("strata_tenant_limit", help, None, MetricType::Gauge)?;
        for (tenant, limits) in tenants {
            for (name, v) in limits.gauges() {
                let labels = TenantLimit { tenant: tenant.clone(), name: name.to_owned() };
                ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct DbCollector(Arc<dyn QueryBackend>);

impl Collector for DbCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, v) in self.0.counters() {
            ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        for (name, help, v) in self.0.gauges() {
            ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        let Some(db) = self.0.local_db() else { return Ok(()) };
        let head = db.head_stats();
        let cp = db.checkpoint_stats();
        let gauges = [
            ("strata_head_series", "Series held in the index.", head.series as i64),
            ("strata_head_chunk_bytes", "Bytes held by open head chunks.", head.head_chunk_bytes as i64),
        ];
        for (name, help, v) in gauges {
            ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        let counters = [
            (
                "strata_checkpoints",
                "Shard checkpoints written.",
                cp.checkpoints.load(Ordering::Relaxed) as f64,
            ),
            (
                "strata_checkpoint_seconds",
                "Time spent writing checkpoints.",
                cp.checkpoint_micros.load(Ordering::Relaxed) as f64 / 1e6,
            ),
        ];
        for (name, help, v) in counters {
            ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Registers every metric (with the configured `limits` as the `strata_limit` gauge);
    /// `db` is read at scrape time.
    pub(crate) fn new(
        db: Arc<dyn QueryBackend>,
        limits: &[(&'static str, f64)],
        overrides: Arc<crate::overrides::Overrides>,
    ) -> Self {
        let mut registry = Registry::default();
        let ingested = Counter::default();
        let rejected = Family::<TenantReason, Counter>::default();
        let write_requests = Family::<Code, Counter>::default();
        registry.register("strata_ingested_samples", "Samples stored from remote write.", ingested.clone());
        registry.register(
            "strata_discarded_samples",
            "Samples not stored, by tenant (anonymous without tenants) and reason (Mimir's reason names).",
            rejected.clone(),
        );
        registry.register(
            "strata_remote_write_requests",
            "Remote-write requests by status code.",
            write_requests.clone(),
        );
        let limit = Family::<Limit, Gauge<f64, AtomicU64>>::default();
        for (name, v) in limits {
            limit.get_or_create(&Limit { name: (*name).to_owned() }).set(*v);
        }
        registry.register("strata_limit", "Configured limits, by name (bytes, seconds or counts).", limit);
        let open_connections = Gauge::default();
        registry.register(
            "strata_http_open_connections",
            "HTTP connections open now.",
            open_connections.clone(),
        );
        let auth_refused = Family::<Reason, Counter>::default();
        registry.register(
            "strata_http_unauthorized_requests",
            "HTTP requests refused by authentication, by reason (no_credentials, bad_password, \
             bad_token, config_error).",
            auth_refused.clone(),
        );
        let deduped = Family::<TenantCluster, Counter>::default();
        registry.register(
            "strata_deduped_samples",
            "Samples of HA replicas that were not their cluster's elected replica, dropped (202), by tenant \
             and cluster.",
            deduped.clone(),
        );
        let elected_changes = Family::<TenantCluster, Counter>::default();
        registry.register(
            "strata_ha_tracker_elected_replica_changes",
            "Changes of an HA cluster's elected replica seen by this node, by tenant and cluster.",
            elected_changes.clone(),
        );
        registry.register_collector(Box::new(DbCollector(db)));
        registry.register_collector(Box::new(OverridesCollector(overrides)));
        Metrics {
            registry,
            ingested,
            rejected,
            write_requests,
            open_connections,
            auth_refused,
            deduped,
            elected_changes,
        }
    }

    pub(crate) fn reject(&self, tenant: &str, reason: &str, n: u64) {
        if n > 0 {
            let labels = TenantReason { tenant: tenant.to_owned(), reason: reason.to_owned() };
            self.rejected.get_or_create(&labels).inc_by(n);
        }
    }
}

/// `GET /metrics` in the Prometheus/OpenMetrics text format.
pub(crate) async fn handler(State(st): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &st.metrics.registry);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out)
}
