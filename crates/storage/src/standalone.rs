//! `strata standalone` on the cluster path: one storage node, RF=1, written to in-process
//! (no ingestor hop): each remote-write batch becomes one proposal per shard to the local
//! shard groups, acknowledged once committed — by the local log's synced write, since the
//! node is the whole quorum.

use std::sync::Arc;
use std::time::Duration;

use strata_api::{CommitFuture, ElectFuture, HaClaim, WriteError, Writer};
use strata_cluster::Command;
use strata_raft::META_GROUP;
use strata_raft::Request;
use strata_tsdb::{ApplyOutcome, SeriesBatch};

use crate::node::StorageNode;

/// How long a write waits for a shard group to have a leader (at startup) before 503.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Writes into the shard groups of a one-node cluster.
#[derive(Debug, Clone)]
pub struct StandaloneWriter(pub Arc<StorageNode>);

impl StandaloneWriter {
    async fn propose(&self, shard: u32, record: Vec<u8>) -> Result<ApplyOutcome, WriteError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            match self.0.raft().propose(shard, Request(record.clone())).await {
                Ok(r) => return Ok(r),
                Err(e @ (strata_raft::Error::NotLeader { .. } | strata_raft::Error::NoGroup(_))) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(WriteError::Unavailable(e.to_string()));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(strata_raft::Error::Unavailable(why)) => return Err(WriteError::Unavailable(why)),
                Err(e) => return Err(WriteError::Internal(e.to_string())),
            }
        }
    }
}

impl Writer for StandaloneWriter {
    fn ready(&self) -> bool {
        let Some(map) = self.0.map() else { return false };
        self.0.db().is_some()
            && (0..map.shards).all(|s| self.0.raft().status(s).is_ok_and(|st| st.leader == Some(self.0.id())))
    }

    fn batch(&self) -> SeriesBatch {
        SeriesBatch::new(self.0.map().map_or(1, |m| m.shards))
    }

    fn commit(&self, batch: SeriesBatch) -> CommitFuture<'_> {
        Box::pin(async move {
            let Some(map) = self.0.map() else {
                return Err(WriteError::Unavailable("the node is starting".into()));
            };
            let Some(db) = self.0.db() else {
                return Err(WriteError::Unavailable("the node is starting".into()));
            };
            let mut out = ApplyOutcome::default();
            let mut records = Vec::new();
            let batch = batch.reshard(map.shards).map_err(|e| WriteError::Internal(e.to_string()))?;
            let limits = batch.limits();
            for (shard, rec) in batch.into_records() {
                let (rec, refused) =
                    db.admit(None, rec, limits).map_err(|e| WriteError::Invalid(e.to_string()))?;
                out.merge(refused);
                records.extend(rec.map(|r| (shard, r)));
            }
            let writes = records.into_iter().map(|(shard, rec)| self.propose(shard, rec));
            for r in futures_util::future::join_all(writes).await {
                out.merge(r?);
            }
            Ok(out)
        })
    }

    fn elect(&self, claim: HaClaim) -> ElectFuture<'_> {
        Box::pin(async move {
            let internal = |e: std::io::Error| WriteError::Internal(e.to_string());
            let cmd = strata_raft::codec::encode(&Command::HaElect(claim)).map_err(internal)?;
            let out = self.propose(META_GROUP, cmd).await?;
            if let Some(e) = out.first_error {
                return Err(WriteError::Invalid(e));
            }
            strata_raft::codec::decode(&out.answer).map_err(internal)
        })
    }
}
