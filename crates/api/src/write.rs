//! The write port: where remote write, scrapes and rule results are stored — the local
//! database ([`LocalWriter`], `strata standalone`) or the cluster's shard leaders (an
//! ingestor's writer in `strata-cluster`).

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

impl std::fmt::Display for WriteError {
    /// The reason alone, as the HTTP answer carries it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (WriteError::Unavailable(m) | WriteError::Invalid(m) | WriteError::Internal(m)) = self;
        f.write_str(m)
    }
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
