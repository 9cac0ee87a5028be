//! Where a node's HTTP handlers write to and read from: the local database
//! (`strata standalone`), or the cluster (an ingestor writes through the shard leaders; a
//! storage node reads its own replicas).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use strata_tsdb::{ApplyOutcome, Db, SeriesBatch};

/// Why a write was not stored.
#[derive(Debug, Clone)]
pub enum WriteError {
    /// Temporarily impossible (no quorum, leader election, shutting down): 503 with
    /// `Retry-After`, the client retries.
    Unavailable(String),
    /// The request itself is wrong: 400.
    Invalid(String),
    /// Failed inside the node: 500.
    Internal(String),
}

/// A future returned by [`Writer::commit`].
pub type CommitFuture<'a> = Pin<Box<dyn Future<Output = Result<ApplyOutcome, WriteError>> + Send + 'a>>;

/// Stores remote-write batches durably.
pub trait Writer: Send + Sync + std::fmt::Debug + 'static {
    /// Whether writes can be taken now (`/-/ready` answers 503 until then). Default true.
    fn ready(&self) -> bool {
        true
    }
    /// An empty batch, split by shard the way this writer's storage is.
    fn batch(&self) -> SeriesBatch;
    /// Stores the batch; resolves once it is durable (for a cluster: committed by a quorum
    /// of every shard it touches).
    fn commit(&self, batch: SeriesBatch) -> CommitFuture<'_>;
}

/// Writes into a local database.
#[derive(Debug, Clone)]
pub struct LocalWriter(pub Arc<Db>);

impl Writer for LocalWriter {
    fn batch(&self) -> SeriesBatch {
        self.0.batch()
    }

    fn commit(&self, batch: SeriesBatch) -> CommitFuture<'_> {
        let db = self.0.clone();
        Box::pin(async move {
            let res = tokio::task::spawn_blocking(move || db.commit(batch))
                .await
                .map_err(|e| WriteError::Internal(e.to_string()))?;
            res.map_err(|e| match e {
                strata_tsdb::Error::ShuttingDown => WriteError::Unavailable(e.to_string()),
                e => WriteError::Internal(e.to_string()),
            })
        })
    }
}

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
    /// Reads `db`.
    pub fn local(db: Arc<Db>) -> Self {
        Reader(Arc::new(move || Some(db.clone())))
    }

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
