//! The read port: where queries and the series/labels lookups read — the local database
//! ([`Reader`]: standalone, a storage node's own replicas) or a querier's fan-out over the
//! cluster's shards (`strata-querier`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use strata_promql::{QueryError, SelectHints, Source};
use strata_tsdb::{Db, Labels, Matcher, SeriesData};

/// The database queries read, if this node has one (a storage node opens it once the
/// cluster map is known; an ingestor has none).
#[derive(Clone)]
pub struct Reader(Arc<dyn Fn() -> Option<Arc<Db>> + Send + Sync>);

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl Reader {
    /// Reads whatever `f` returns when asked.
    pub fn dynamic(f: impl Fn() -> Option<Arc<Db>> + Send + Sync + 'static) -> Self {
        Reader(Arc::new(f))
    }

    /// No queries on this node.
    pub fn none() -> Self {
        Reader(Arc::new(|| None))
    }

    /// The database now, if any.
    pub fn get(&self) -> Option<Arc<Db>> {
        (self.0)()
    }
}

/// How one query reads.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Answer from the shards that can be reached, with a warning naming the others,
    /// instead of failing (`partial_response=true`). Default false.
    pub partial_response: bool,
    /// When the query must be done; reads still running then stop.
    pub deadline: Instant,
    /// Most samples the reads may bring into memory (the engine's `max_samples`), across
    /// every shard.
    pub max_samples: usize,
    /// Most bytes the loaded series may take in memory (the engine's `max_bytes`), across
    /// every shard.
    pub max_bytes: usize,
    /// Set once nobody waits for the answer (the client went away): reads stop.
    pub canceled: Arc<AtomicBool>,
}

impl ReadOptions {
    /// Whether the query was canceled.
    pub fn is_canceled(&self) -> bool {
        self.canceled.load(Ordering::Relaxed)
    }
}

/// Sets the flag when dropped: held by a request handler, so that a handler dropped with its
/// client (or finished) stops the reads it started.
#[derive(Debug, Default)]
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One query's view of the data: the evaluator's source, and the series and label lookups.
/// Calls block; handlers make them on the blocking pool.
pub trait ReadView: Source {
    /// Label sets of the series matching `matchers` with data in `[start, end]`, sorted.
    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, QueryError>;
    /// Label names of the series matching `matchers` (all series when empty), sorted.
    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, QueryError>;
    /// Values of label `name` of the series matching `matchers`, sorted.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, QueryError>;
    /// Warnings the reads raised so far (shards left out of a partial response).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Where a node's queries read.
pub trait QueryBackend: Send + Sync + std::fmt::Debug + 'static {
    /// Whether queries can be answered now (`/-/ready` answers 503 until then). Default true.
    fn ready(&self) -> bool {
        true
    }
    /// A view for one query, or `None` when this node serves no queries (yet).
    fn view(&self, opts: ReadOptions) -> Option<Box<dyn ReadView>>;
    /// The local database, for the self-metrics of its head and log (none on a querier).
    fn local_db(&self) -> Option<Arc<Db>> {
        None
    }
    /// Counters of the backend for `/metrics`: (name, help, value).
    fn counters(&self) -> Vec<(&'static str, &'static str, f64)> {
        Vec::new()
    }
    /// Gauges of the backend for `/metrics`: (name, help, value).
    fn gauges(&self) -> Vec<(&'static str, &'static str, i64)> {
        Vec::new()
    }
}

impl QueryBackend for Reader {
    fn view(&self, opts: ReadOptions) -> Option<Box<dyn ReadView>> {
        let limit = strata_promql::LoadLimit::new(opts.max_samples, opts.max_bytes, opts.deadline);
        self.get().map(|db| Box::new(DbView { db, limit, opts }) as Box<dyn ReadView>)
    }

    fn local_db(&self) -> Option<Arc<Db>> {
        self.get()
    }
}

/// The local database as a query's view: its reads count against the query's samples as
/// they load, and stop at its deadline or once it is canceled.
struct DbView {
    db: Arc<Db>,
    limit: strata_promql::LoadLimit,
    opts: ReadOptions,
}

impl Source for DbView {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<SeriesData>, QueryError> {
        self.limit.collect(self.db.select(matchers, hints.start, hints.end), || self.opts.is_canceled())
    }
}

impl ReadView for DbView {
    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, QueryError> {
        Ok(self.db.series(None, matchers, start, end))
    }

    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, QueryError> {
        Ok(self.db.label_names(None, matchers, start, end))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, QueryError> {
        Ok(self.db.label_values(None, name, matchers, start, end))
    }
}
