//! # strata-ingestor — the write path of `strata ingestor`
//!
//! [`ClusterWriter`] is the [`Writer`] behind an ingestor's remote-write endpoint and scrape
//! loops (and a storage node's HTTP write endpoint): a batch is split by the cluster's
//! shards (again, if it was built before the map was known), sent as one proposal per shard
//! to the shard's leader through [`ClusterClient`], and acknowledged once every shard's
//! record is committed by a quorum. HA elections are claimed in the metadata group (its
//! leader applies them; every ingestor sees the same election).

use std::sync::Arc;

use strata_api::{CommitFuture, ElectFuture, HaClaim, WriteError, Writer};
use strata_tsdb::SeriesBatch;

use strata_cluster::{ClusterClient, Error};

/// Writes remote-write batches into the cluster through [`ClusterClient`].
#[derive(Debug, Clone)]
pub struct ClusterWriter(pub Arc<ClusterClient>);

impl Writer for ClusterWriter {
    fn ready(&self) -> bool {
        self.0.cached_map().is_some()
    }

    fn batch(&self) -> SeriesBatch {
        SeriesBatch::new(self.0.cached_map().map_or(1, |m| m.shards))
    }

    fn commit(&self, batch: SeriesBatch) -> CommitFuture<'_> {
        Box::pin(async move {
            let map = self.0.map().await.map_err(|e| WriteError::Unavailable(e.to_string()))?;
            // built before the map was known: split it again
            let batch = batch.reshard(map.shards).map_err(|e| WriteError::Internal(e.to_string()))?;
            let limits = batch.limits();
            self.0.write(batch.into_records(), limits).await.map_err(write_error)
        })
    }

    fn elect(&self, claim: HaClaim) -> ElectFuture<'_> {
        Box::pin(async move { self.0.elect(claim).await.map_err(write_error) })
    }
}

/// The write error of a cluster error.
fn write_error(e: Error) -> WriteError {
    match e {
        Error::Invalid(m) => WriteError::Invalid(m),
        e @ (Error::Unavailable { .. } | Error::NoMap(_)) => WriteError::Unavailable(e.to_string()),
        e => WriteError::Internal(e.to_string()),
    }
}
