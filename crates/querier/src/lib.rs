//! # strata-querier — PromQL over a cluster
//!
//! A querier holds no data. [`ClusterBackend`] is the [`QueryBackend`] of `strata querier`:
//! for each query it gives the HTTP and gRPC APIs a view of every shard, and the PromQL
//! engine evaluates over that view as it does over the local database in standalone.
//!
//! * **Fan-out.** A selection asks every shard at once, one replica each: the leader after
//!   its lease or a ReadIndex round confirmed it (linearizable, the default: sees every
//!   acknowledged write) or any replica as it has applied (follower). A replica that
//!   fails or times out is replaced by the next; a shard none of whose replicas answers
//!   before the read timeout fails the query with `unavailable` (503) — or, with
//!   `partial_response=true`, is left out with a warning (after one more try at a
//!   follower, whose possibly stale answer is marked).
//! * **Pushdown.** Aggregations that distribute over shards (`strata_promql::pushable`:
//!   `sum`, `min`, `max`, `count`, `group`, `topk`, `bottomk`, `avg` over per-series inner
//!   expressions) are sent as PromQL text to one replica per shard, which evaluates its
//!   shard's partial aggregate; the engine merges the partials. Only partial results cross
//!   the network instead of every selected sample.
//! * **Limits.** Every series received, by any shard read of the query, is charged as it
//!   arrives against the query's `max_samples` and `max_bytes` (one [`LoadLimit`]), so a
//!   query over them stops while the answers stream in, not after they are all in memory;
//!   the query's deadline bounds every read; a canceled query (client gone) drops its
//!   streams, which stops the storage nodes' work.
//!
//! The shard reads themselves — replica choice, not-leader redirects, fail-over, decoding
//! the streamed answer — are [`ShardReader`]'s ([`replicas`]).
//!
//! Every call of the view blocks (the engine is synchronous); it runs on the blocking
//! pool and drives its async reads on the runtime it was created in.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{FutureExt, LocalBoxFuture, join_all};
use futures_util::stream::FuturesUnordered;
use parking_lot::Mutex;
use promql_parser::parser::Expr;
use strata_api::{QueryBackend, ReadOptions, ReadView};
use strata_cluster::{ClusterClient, Error as ClusterError};
use strata_promql::{Annotations, EvalAt, LoadLimit, Partials, QueryError, SelectHints, Series, Source};
use strata_proto::cluster::{EvaluateRequest, LabelsKind, LabelsRequest};
use strata_tsdb::{Labels, Matcher, SeriesData};

pub mod replicas;

pub use replicas::{Batch, Evaluated, ReadConsistency, Selected, ShardReader};

/// Settings of a querier.
#[derive(Debug, Clone)]
pub struct QuerierConfig {
    /// How shard reads pick their replica. Default [`ReadConsistency::Linearizable`].
    pub consistency: ReadConsistency,
    /// Evaluate pushable aggregations on the storage nodes and merge partials. Default true.
    pub pushdown: bool,
    /// The engine's lookback (sent with pushed-down evaluations), in ms. Default 300 000.
    pub lookback_ms: i64,
}

impl Default for QuerierConfig {
    fn default() -> Self {
        QuerierConfig { consistency: ReadConsistency::Linearizable, pushdown: true, lookback_ms: 300_000 }
    }
}

/// Counters of a querier's fan-out (exported on `/metrics`).
#[derive(Debug, Default)]
pub struct FanoutStats {
    /// Bytes of series (labels and compressed chunks) received by selections.
    pub selected_bytes: AtomicU64,
    /// Bytes of partial results received from pushed-down evaluations.
    pub pushdown_bytes: AtomicU64,
    /// Aggregations evaluated by pushdown.
    pub pushdowns: AtomicU64,
    /// Shard reads that failed on every replica.
    pub shard_failures: AtomicU64,
    /// Reads asked of storage nodes: one per shard read alone, one per batched read of
    /// several shards led by one node.
    pub reads: AtomicU64,
}

/// The query backend of `strata querier`: views over every shard of the cluster.
#[derive(Debug, Clone)]
pub struct ClusterBackend {
    client: Arc<ClusterClient>,
    reader: Arc<ShardReader>,
    cfg: QuerierConfig,
    rt: tokio::runtime::Handle,
    stats: Arc<FanoutStats>,
}

impl ClusterBackend {
    /// A backend reading through `client`; must be created inside the tokio runtime its
    /// reads will run on.
    pub fn new(client: Arc<ClusterClient>, cfg: QuerierConfig) -> Self {
        let reader = Arc::new(ShardReader::new(client.clone()));
        ClusterBackend { client, reader, cfg, rt: tokio::runtime::Handle::current(), stats: Arc::default() }
    }

    /// The fan-out counters.
    pub fn stats(&self) -> &Arc<FanoutStats> {
        &self.stats
    }
}

impl QueryBackend for ClusterBackend {
    fn ready(&self) -> bool {
        self.client.cached_map().is_some()
    }

    fn view(&self, opts: ReadOptions) -> Option<Box<dyn ReadView>> {
        let shards = self.client.cached_map()?.shards;
        Some(Box::new(ClusterView {
            backend: self.clone(),
            shards,
            warnings: Mutex::new(Vec::new()),
            limit: LoadLimit::new(opts.max_samples, opts.max_bytes, opts.deadline),
            opts,
        }))
    }

    fn counters(&self) -> Vec<(&'static str, &'static str, f64)> {
        let s = &self.stats;
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        vec![
            (
                "strata_querier_selected_bytes",
                "Bytes of series received from storage nodes by selections.",
                v(&s.selected_bytes),
            ),
            (
                "strata_querier_pushdown_bytes",
                "Bytes of partial aggregates received from storage nodes.",
                v(&s.pushdown_bytes),
            ),
            ("strata_querier_pushdowns", "Aggregations evaluated by pushdown.", v(&s.pushdowns)),
            (
                "strata_querier_reads",
                "Reads asked of storage nodes (one per shard, or one per node for the shards it leads).",
                v(&s.reads),
            ),
            (
                "strata_querier_shard_failures",
                "Shard reads that failed on every replica.",
                v(&s.shard_failures),
            ),
        ]
    }
}

/// One query's view of the cluster.
struct ClusterView {
    backend: ClusterBackend,
    shards: u32,
    opts: ReadOptions,
    warnings: Mutex<Vec<String>>,
    /// What the query's reads may load, charged by every shard read as series arrive.
    limit: LoadLimit,
}

/// What a shard read's failure means for the query.
fn shard_error(shard: u32, e: ClusterError) -> QueryError {
    match e {
        ClusterError::Query(q) => q,
        e => QueryError::Unavailable(format!("shard {shard}: {e}")),
    }
}

impl ClusterView {
    fn warn(&self, w: String) {
        let mut ws = self.warnings.lock();
        if !ws.contains(&w) {
            ws.push(w);
        }
    }

    /// Runs `read` against every shard at once and returns the answers in shard order.
    /// A shard that cannot be read fails the query, or with a partial response is retried
    /// once at a follower and otherwise left out with a warning. Linearizable reads of
    /// shards led by one node go to it in one call (`batch(addr, shards, deadline)`); the
    /// shards it does not serve, or all of them if it fails, are read alone.
    fn fan_out<T, F, Fut, B, BFut>(&self, read: F, batch: B) -> Result<Vec<T>, QueryError>
    where
        F: Fn(u32, ReadConsistency, tokio::time::Instant) -> Fut,
        Fut: Future<Output = strata_cluster::Result<T>>,
        B: Fn(String, Vec<u32>, tokio::time::Instant) -> BFut,
        BFut: Future<Output = strata_cluster::Result<Batch<T>>>,
    {
        let b = &self.backend;
        let deadline = tokio::time::Instant::from_std(self.opts.deadline);
        let partial = self.opts.partial_response;
        let read = &read;
        let one = |shard: u32| async move {
            b.stats.reads.fetch_add(1, Ordering::Relaxed);
            let first = read(shard, b.cfg.consistency, b.reader.read_deadline(Some(deadline))).await;
            let res = match first {
                Err(e @ ClusterError::Unavailable { .. })
                    if partial && b.cfg.consistency == ReadConsistency::Linearizable =>
                {
                    let again =
                        read(shard, ReadConsistency::Follower, b.reader.read_deadline(Some(deadline))).await;
                    if again.is_ok() {
                        self.warn(format!("shard {shard} answered from a follower, possibly stale: {e}"));
                    }
                    again
                }
                other => other,
            };
            (shard, res)
        };
        let (groups, alone) = match b.cfg.consistency {
            ReadConsistency::Linearizable => b.reader.leader_groups(0..self.shards),
            ReadConsistency::Follower => (Vec::new(), (0..self.shards).collect()),
        };
        let batch = &batch;
        let many = |addr: String, group: Vec<u32>| async move {
            b.stats.reads.fetch_add(1, Ordering::Relaxed);
            let left = match batch(addr, group.clone(), b.reader.read_deadline(Some(deadline))).await {
                Ok(Batch { done, refused }) => {
                    let mut out: Answers<T> = done.into_iter().map(|(shard, t)| (shard, Ok(t))).collect();
                    out.extend(join_all(refused.into_iter().map(one)).await);
                    return out;
                }
                Err(ClusterError::Query(q)) => return vec![(group[0], Err(ClusterError::Query(q)))],
                Err(_) => group,
            };
            join_all(left.into_iter().map(one)).await
        };
        let mut pending: FuturesUnordered<LocalBoxFuture<'_, Answers<T>>> = FuturesUnordered::new();
        for (addr, group) in groups {
            pending.push(many(addr, group).boxed_local());
        }
        for shard in alone {
            pending.push(one(shard).map(|r| vec![r]).boxed_local());
        }
        let gather = async {
            let mut got: Vec<(u32, T)> = Vec::with_capacity(self.shards as usize);
            while let Some(answers) = pending.next().await {
                for (shard, res) in answers {
                    match res {
                        Ok(t) => got.push((shard, t)),
                        Err(ClusterError::Query(q)) => return Err(q),
                        // the query's own deadline, not the shard's fault
                        Err(_) if tokio::time::Instant::now() >= deadline => {
                            return Err(QueryError::Timeout("query execution"));
                        }
                        Err(e) => {
                            b.stats.shard_failures.fetch_add(1, Ordering::Relaxed);
                            if !partial {
                                return Err(shard_error(shard, e));
                            }
                            self.warn(format!("shard {shard} left out of the partial response: {e}"));
                        }
                    }
                }
            }
            got.sort_by_key(|x| x.0);
            Ok(got.into_iter().map(|x| x.1).collect())
        };
        let canceled = async {
            while !self.opts.is_canceled() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        b.rt.block_on(async {
            tokio::select! {
                r = tokio::time::timeout_at(deadline, gather) => {
                    r.unwrap_or(Err(QueryError::Timeout("query execution")))
                }
                () = canceled => Err(QueryError::Unavailable("the query was canceled".into())),
            }
        })
    }

    /// A label lookup on every shard, united and sorted.
    fn labels(&self, req: LabelsRequest) -> Result<Vec<LabelsReplyParts>, QueryError> {
        let client = &self.backend.reader;
        let parts = self.fan_out(
            |shard, c, d| {
                let req = LabelsRequest { shard, ..req.clone() };
                async move { client.labels_shard(req, c, d).await }
            },
            |addr: String, shards: Vec<u32>, d| {
                let req = req.clone();
                async move { client.labels_batch(&addr, &shards, req, d).await }
            },
        )?;
        Ok(parts.into_iter().map(|r| (r.series, r.values)).collect())
    }

    fn labels_request(
        &self,
        kind: LabelsKind,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> LabelsRequest {
        LabelsRequest {
            shard: 0,
            kind: kind as i32,
            name: name.to_owned(),
            matchers: strata_cluster::to_wire(matchers),
            start_ms: start,
            end_ms: end,
            consistency: 0,
            shards: Vec::new(),
        }
    }

    fn values(&self, req: LabelsRequest) -> Result<Vec<String>, QueryError> {
        let mut v: Vec<String> = self.labels(req)?.into_iter().flat_map(|p| p.1).collect();
        v.sort();
        v.dedup();
        Ok(v)
    }
}

/// Shards' answers (or failures) as one read of [`ClusterView::fan_out`] returns them.
type Answers<T> = Vec<(u32, strata_cluster::Result<T>)>;

/// A shard's label lookup answer: encoded label sets, names or values.
type LabelsReplyParts = (Vec<Vec<u8>>, Vec<String>);

impl Source for ClusterView {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<SeriesData>, QueryError> {
        let client = &self.backend.reader;
        let limit = &self.limit;
        let range = (hints.start, hints.end);
        let parts = self.fan_out(
            |shard, c, d| client.select_shard(shard, matchers, range, c, d, limit),
            |addr: String, shards: Vec<u32>, d| async move {
                client.select_batch(&addr, &shards, matchers, range, d, limit).await
            },
        )?;
        let bytes: u64 = parts.iter().map(|p| p.bytes).sum();
        self.backend.stats.selected_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut out: Vec<SeriesData> = parts.into_iter().flat_map(|p| p.series).collect();
        // every shard's part is sorted: the stable sort merges the runs
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn pushdown(&self, exprs: &[Expr], at: &EvalAt) -> Option<Result<Partials, QueryError>> {
        let b = &self.backend;
        if !b.cfg.pushdown {
            return None;
        }
        let left = self.opts.deadline.saturating_duration_since(std::time::Instant::now());
        let req = EvaluateRequest {
            shard: 0,
            exprs: exprs.iter().map(|e| e.to_string()).collect(),
            start_ms: at.start,
            end_ms: at.end,
            step_ms: at.step,
            query_start_ms: at.query_start,
            query_end_ms: at.query_end,
            query_step_ms: at.query_step,
            lookback_ms: b.cfg.lookback_ms,
            max_samples: self.opts.max_samples as u64,
            timeout_ms: left.as_millis().max(1) as u64,
            consistency: 0,
            shards: Vec::new(),
        };
        let (client, limit) = (&b.reader, &self.limit);
        let parts = self.fan_out(
            |shard, c, d| {
                let req = EvaluateRequest { shard, ..req.clone() };
                async move { client.evaluate_shard(req, c, d, limit).await }
            },
            |addr: String, shards: Vec<u32>, d| {
                let req = req.clone();
                async move { client.evaluate_batch(&addr, &shards, req, d, limit).await }
            },
        );
        let parts = match parts {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        b.stats.pushdowns.fetch_add(1, Ordering::Relaxed);
        let mut out =
            Partials { results: vec![Vec::new(); exprs.len()], annotations: Annotations::default() };
        for p in parts {
            b.stats.pushdown_bytes.fetch_add(p.bytes, Ordering::Relaxed);
            out.annotations.merge(Annotations { warnings: p.warnings, infos: p.infos });
            for (dst, series) in out.results.iter_mut().zip(p.results) {
                dst.extend(series.into_iter().map(Series::from));
            }
        }
        Some(Ok(out))
    }
}

impl ReadView for ClusterView {
    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, QueryError> {
        let req = self.labels_request(LabelsKind::Series, "", matchers, start, end);
        let mut out = Vec::new();
        for (series, _) in self.labels(req)? {
            for enc in series {
                let l = Labels::decode(&enc)
                    .ok_or_else(|| QueryError::Storage("undecodable labels from a storage node".into()))?;
                out.push(l);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, QueryError> {
        self.values(self.labels_request(LabelsKind::Names, "", matchers, start, end))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, QueryError> {
        self.values(self.labels_request(LabelsKind::Values, name, matchers, start, end))
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }
}
