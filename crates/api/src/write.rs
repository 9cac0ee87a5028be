//! The write port: where remote write, scrapes and rule results are stored — a one-node
//! cluster's shard groups (`strata standalone`, in `strata-storage`) or the cluster's shard
//! leaders (an ingestor's writer, in `strata-ingestor`).

use std::future::Future;
use std::pin::Pin;

use strata_tsdb::{ApplyOutcome, SeriesBatch};

use crate::{HaClaim, HaElected};

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

/// A future returned by [`Writer::elect`].
pub type ElectFuture<'a> = Pin<Box<dyn Future<Output = Result<HaElected, WriteError>> + Send + 'a>>;

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
    /// Decides an HA replica's claim against the election every node taking writes shares
    /// (the metadata group's), and answers the election after it.
    fn elect(&self, claim: HaClaim) -> ElectFuture<'_>;
}
