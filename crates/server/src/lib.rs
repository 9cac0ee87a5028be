//! # strata-server — the HTTP surface of a node
//!
//! Axum handlers:
//! * `POST /api/v1/write`: Prometheus remote-write 1.0 (snappy + protobuf). The body is
//!   decoded with the zero-copy decoder, every series validated on its own (a bad series is
//!   reported, the good ones of the same request are stored), and the write is acknowledged
//!   with 204 only once the engine has made it durable. Errors follow Prometheus's receiver:
//!   400 for bad input, 413 above the body limit, 415 for other protocols, 5xx only when a
//!   retry can help.
//! * `GET|POST /api/v1/series`, `/api/v1/labels`, `GET /api/v1/label/<name>/values` in
//!   Prometheus's JSON envelope.
//! * `/-/ready`, `/-/healthy`, `/metrics` (self-metrics with prometheus-client).
//! * The PromQL endpoints (`query`, `query_range` and what Grafana calls with them) and,
//!   on the same port, the gRPC query API of `proto/strata/query.proto` with server
//!   reflection: one implementation of each request, rendered as JSON or protobuf.
//!
//! Queries read through a [`QueryBackend`]: the local database, or a querier's fan-out
//! over the cluster's shards.
//!
//! Blocking engine calls run on tokio's blocking pool.

mod api;
mod gojson;
mod grpc;
mod ha;
mod histogram;
mod limits;
mod listen;
mod metrics;
mod overrides;
mod params;
mod query;
mod reload;
mod tenant;
mod web_auth;
mod web_config;
mod write;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use strata_api::{CancelOnDrop, MetadataStore, QueryBackend, ReadOptions, ReadView, Writer};

pub use ha::HaLimits;
pub use limits::IngestLimits;
pub use listen::ListenConfig;
pub use metrics::Metrics;
pub use overrides::{OverridesConfig, TenantLimits};
pub use tenant::{ANONYMOUS, TENANT_LABEL, TenancyConfig, default_tenant_only};
pub use web_auth::{WebSecurityConfig, check_web_config, web_config_serves_tls};

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest accepted remote-write body (compressed), in bytes; larger bodies get 413.
    /// Default 32 MiB.
    pub max_write_body_bytes: usize,
    /// Largest accepted decompressed remote-write body, in bytes. Default 256 MiB.
    pub max_write_decoded_bytes: usize,
    /// PromQL engine settings (lookback, limits, timeout).
    pub engine: strata_promql::EngineConfig,
    /// Queries evaluated at once; more wait their turn (Prometheus's
    /// `--query.max-concurrency`). Default 20.
    pub query_max_concurrency: usize,
    /// Largest JSON body a query (`/api/v1/query`, `query_range`) may answer with, in bytes;
    /// a larger result is refused with 422 before it is rendered in full. Default 1 GiB.
    pub max_response_bytes: usize,
    /// Limits of the HTTP listener (connections, header and body deadlines).
    pub listen: ListenConfig,
    /// Remote-write limits. Default [`IngestLimits::default`].
    pub ingest: IngestLimits,
    /// The wall clock of the ingestion rate limit and of queries without a time (their
    /// `now`). Default the system clock.
    pub clock: Arc<dyn strata_tsdb::Clock>,
    /// Tenants. Default: off (one default tenant).
    pub tenancy: TenancyConfig,
    /// Per-tenant limits over the defaults above. Default: none (the defaults for all).
    pub overrides: OverridesConfig,
}

impl ServerConfig {
    /// Every configured limit as (name, value) for the `strata_limit` gauge of `/metrics`
    /// (sizes in bytes, durations in seconds).
    pub fn limits(&self) -> Vec<(&'static str, f64)> {
        let e = &self.engine;
        vec![
            ("query_max_samples", e.max_samples as f64),
            ("query_max_bytes", e.max_bytes as f64),
            ("query_max_points_per_series", e.max_points_per_series as f64),
            ("query_max_nesting", e.max_nesting as f64),
            ("query_timeout_seconds", e.timeout.as_secs_f64()),
            ("query_max_concurrency", self.query_max_concurrency as f64),
            ("web_max_connections", self.listen.max_connections as f64),
            ("web_header_read_timeout_seconds", self.listen.header_read_timeout.as_secs_f64()),
            ("web_read_timeout_seconds", self.listen.body_read_timeout.as_secs_f64()),
            ("web_max_concurrent_streams", f64::from(self.listen.max_concurrent_streams)),
            ("query_max_response_bytes", self.max_response_bytes as f64),
            ("regex_cache_bytes", strata_tsdb::matcher::REGEX_CACHE_BYTES as f64),
            ("regex_max_compiled_bytes", strata_tsdb::matcher::REGEX_MAX_COMPILED_BYTES as f64),
            ("ingest_max_label_names_per_series", self.ingest.labels.max_names as f64),
            ("ingest_max_label_name_length", self.ingest.labels.max_name_len as f64),
            ("ingest_max_label_value_length", self.ingest.labels.max_value_len as f64),
            ("ingest_max_series_per_request", self.ingest.max_series_per_request as f64),
            ("ingest_max_metadata_per_request", self.ingest.max_metadata_per_request as f64),
            ("ingest_rate_limit", self.ingest.rate_limit),
            ("ingest_burst", self.ingest.effective_burst() as f64),
            ("ingest_max_active_series", self.ingest.max_active_series as f64),
            ("ingest_max_active_series_per_metric", self.ingest.max_active_series_per_metric as f64),
            ("ha_tracker_enabled", f64::from(u8::from(self.ingest.ha.accept))),
            ("ha_tracker_max_clusters", self.ingest.ha.max_clusters as f64),
            ("ha_tracker_update_timeout_seconds", self.ingest.ha.update_timeout.as_secs_f64()),
            ("ha_tracker_failover_timeout_seconds", self.ingest.ha.failover_timeout.as_secs_f64()),
            ("write_max_body_bytes", self.max_write_body_bytes as f64),
            ("write_max_decoded_bytes", self.max_write_decoded_bytes as f64),
            ("write_min_bytes_per_sample", write::MIN_SAMPLE_BYTES as f64),
            ("metadata_max_bytes", strata_api::MAX_METADATA_BYTES as f64),
        ]
    }

    /// Every tenant's limits unless overridden: this configuration's.
    pub fn tenant_defaults(&self) -> TenantLimits {
        TenantLimits::defaults(&self.ingest, &self.engine, self.query_max_concurrency)
    }
}

/// Checks the runtime configuration (per-tenant limits) of `cfg` as a node reads it at
/// start: None when it is good (or there is none), else the reason.
pub fn check_overrides(cfg: &ServerConfig) -> Option<String> {
    overrides::Overrides::new(&cfg.overrides, cfg.tenant_defaults()).err()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_write_body_bytes: 32 << 20,
            max_write_decoded_bytes: 256 << 20,
            engine: strata_promql::EngineConfig::default(),
            query_max_concurrency: 20,
            max_response_bytes: 1 << 30,
            listen: ListenConfig::default(),
            ingest: IngestLimits::default(),
            clock: Arc::new(strata_tsdb::SystemClock),
            tenancy: TenancyConfig::default(),
            overrides: OverridesConfig::default(),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    backend: Arc<dyn QueryBackend>,
    writer: Arc<dyn Writer>,
    metrics: Arc<Metrics>,
    cfg: ServerConfig,
    engine: strata_promql::Engine,
    queries: Arc<tokio::sync::Semaphore>,
    metadata: Arc<MetadataStore>,
    overrides: Arc<overrides::Overrides>,
    ha: Arc<ha::HaTracker>,
}

impl AppState {
    /// State reading through `backend` and writing through `writer`.
    pub fn with(backend: Arc<dyn QueryBackend>, writer: Arc<dyn Writer>, cfg: ServerConfig) -> Self {
        let engine = strata_promql::Engine::new(cfg.engine.clone());
        let queries = Arc::new(tokio::sync::Semaphore::new(cfg.query_max_concurrency.max(1)));
        let defaults = cfg.tenant_defaults();
        // a bad file was refused at start (check_overrides); should it turn bad in between,
        // every tenant gets the defaults
        let overrides = overrides::Overrides::new(&cfg.overrides, defaults.clone()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "runtime configuration not usable: every tenant gets the defaults");
            overrides::Overrides::defaults_only(&cfg.overrides, defaults)
        });
        let overrides = Arc::new(overrides);
        let metrics = Arc::new(Metrics::new(backend.clone(), &cfg.limits(), overrides.clone()));
        AppState {
            backend,
            writer,
            metrics,
            cfg,
            engine,
            queries,
            metadata: Arc::default(),
            overrides,
            ha: Arc::default(),
        }
    }

    /// Serves `routes` (this state's [`router`], and whatever is merged into it) on
    /// `listener` with the configured listener limits and security (TLS, authentication),
    /// until `shutdown` completes; a bad web configuration file is an error at once.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        routes: Router,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let security =
            web_auth::WebSecurity::new(self.cfg.listen.security.clone(), self.metrics.auth_refused.clone())
                .map_err(std::io::Error::other)?;
        let security = Arc::new(security);
        listen::serve(listener, routes, &self.cfg.listen, security, &self.metrics.open_connections, shutdown)
            .await
    }

    /// The settings this state serves with.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// The metadata `/api/v1/metadata` serves (a scraper records what it scrapes here).
    pub fn metadata(&self) -> Arc<MetadataStore> {
        self.metadata.clone()
    }

    /// A view of the data for one request (with `partial_response` from its parameters and
    /// the deadline of `engine`), restricted to the request's tenant, and the guard that
    /// cancels its reads when dropped; the error a query gets on a node that serves none.
    fn view(
        &self,
        p: &params::Params,
        engine: &strata_promql::Engine,
    ) -> Result<(Box<dyn ReadView>, CancelOnDrop), api::ApiError> {
        let guard = CancelOnDrop::default();
        let opts = ReadOptions {
            partial_response: matches!(p.get("partial_response"), Some("true" | "1")),
            deadline: std::time::Instant::now() + engine.config().timeout,
            max_samples: engine.config().max_samples,
            max_bytes: engine.config().max_bytes,
            canceled: guard.0.clone(),
        };
        let tenant = Self::tenant(p)?;
        let max_series = self.overrides.limits(&tenant.key()).max_fetched_series_per_query;
        let view = self
            .backend
            .view(opts)
            .ok_or_else(|| api::ApiError::unavailable("this node serves no queries (yet)"))?;
        Ok((tenant.scope(view, max_series), guard))
    }

    /// The tenant of a request; fail closed: a route that resolves none reads nothing.
    pub(crate) fn tenant(p: &params::Params) -> Result<&tenant::Tenant, api::ApiError> {
        p.tenant().ok_or_else(|| api::ApiError::internal("no tenant resolved for this route"))
    }

    /// The limits in force for the tenant of a request.
    fn tenant_limits(&self, p: &params::Params) -> Result<TenantLimits, api::ApiError> {
        Ok(self.overrides.limits(&Self::tenant(p)?.key()))
    }

    /// A place among the node's concurrent queries and among the tenant's; waits for both.
    async fn query_permits(
        &self,
        p: &params::Params,
    ) -> Result<(tokio::sync::SemaphorePermit<'_>, Option<tokio::sync::OwnedSemaphorePermit>), api::ApiError>
    {
        let key = Self::tenant(p)?.key();
        let internal = |e: tokio::sync::AcquireError| api::ApiError::internal(e.to_string());
        let tenant = match self.overrides.query_slots(&key, &self.overrides.limits(&key)) {
            Some(s) => Some(s.acquire_owned().await.map_err(internal)?),
            None => None,
        };
        Ok((self.queries.acquire().await.map_err(internal)?, tenant))
    }
}

/// `/-/ready`: 200 once the node can take writes (an ingestor: once it has the cluster map).
async fn ready(
    axum::extract::State(st): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, &'static str) {
    if st.writer.ready() && st.backend.ready() {
        (axum::http::StatusCode::OK, "Strata is Ready.\n")
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "Strata is not ready: no cluster map yet.\n")
    }
}

/// `GET /api/v1/status/limits`: the limits in force for the caller's tenant (the flags'
/// defaults with its overrides).
async fn limits_in_force(
    axum::extract::State(st): axum::extract::State<AppState>,
    p: params::Params,
) -> Result<axum::response::Response, api::ApiError> {
    let key = AppState::tenant(&p)?.key();
    let limits = serde_json::to_value(st.overrides.limits(&key))
        .map_err(|e| api::ApiError::internal(e.to_string()))?;
    Ok(api::success(serde_json::json!({"tenant": key, "limits": limits}), Vec::new()))
}

/// The node's HTTP routes. Those that read or write data resolve the request's tenant
/// first ([`TenancyConfig`]).
pub fn router(state: AppState) -> Router {
    let tenancy = Arc::new(state.cfg.tenancy.clone());
    let data = Router::new()
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/query_exemplars", get(query::exemplars).post(query::exemplars))
        .route("/api/v1/metadata", get(query::metadata))
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route("/api/v1/status/limits", get(limits_in_force))
        .with_state(state.clone())
        .merge(grpc::routes(state.clone()))
        .layer(axum::middleware::from_fn_with_state(tenancy, tenant::middleware));
    Router::new()
        .route("/api/v1/format_query", get(query::format_query).post(query::format_query))
        .route("/api/v1/parse_query", get(query::parse_query).post(query::parse_query))
        .route("/api/v1/status/buildinfo", get(query::buildinfo))
        .route("/-/ready", get(ready))
        .route("/-/healthy", get(|| async { "Strata is Healthy.\n" }))
        .route("/metrics", get(metrics::handler))
        .with_state(state)
        .merge(data)
}

#[cfg(test)]
mod tests;
