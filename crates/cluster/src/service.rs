//! The gRPC services of a storage node.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use strata_proto::cluster::raft_server::Raft;
use strata_proto::cluster::storage_server::Storage;
use strata_proto::cluster::{
    ClusterMapReply, ClusterMapRequest, Consistency, MetadataCommand, RaftMessage, RaftReply, SelectReply,
    SelectRequest, SnapshotChunk, WriteReply, WriteRequest,
};
use strata_raft::{META_GROUP, RaftNode, Request, Response, RpcKind};
use tonic::{Status, Streaming};

use crate::codec::{from_wire, series_to_wire};
use crate::error::Error;
use crate::meta::encode;
use crate::storage::NodeState;

/// Series per streamed select reply.
const SELECT_BATCH: usize = 256;

/// Inbound Raft messages.
#[derive(Debug)]
pub(crate) struct RaftService {
    pub(crate) raft: Arc<RaftNode>,
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn call(&self, req: tonic::Request<RaftMessage>) -> Result<tonic::Response<RaftReply>, Status> {
        let m = req.into_inner();
        let kind = RpcKind::from_code(m.kind)
            .ok_or_else(|| Status::invalid_argument("unknown Raft message kind"))?;
        if kind == RpcKind::Snapshot {
            return Err(Status::invalid_argument("snapshots go through InstallSnapshot"));
        }
        let payload = self.raft.handle(m.group, kind, &m.payload).await;
        Ok(tonic::Response::new(RaftReply { payload }))
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<Streaming<SnapshotChunk>>,
    ) -> Result<tonic::Response<RaftReply>, Status> {
        let mut stream = req.into_inner();
        let mut group = None;
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            let c = chunk?;
            group.get_or_insert(c.group);
            data.extend_from_slice(&c.data);
        }
        let group = group.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let payload = self.raft.handle(group, RpcKind::Snapshot, &data).await;
        Ok(tonic::Response::new(RaftReply { payload }))
    }
}

/// Shard writes and reads, the cluster map.
pub(crate) struct StorageService {
    pub(crate) node: Arc<NodeState>,
}

fn write_reply(r: Response) -> WriteReply {
    WriteReply {
        accepted: r.accepted,
        rejected: r.rejected.to_vec(),
        new_series: r.new_series,
        error: r.error.unwrap_or_default(),
        ..WriteReply::default()
    }
}

impl StorageService {
    /// Proposes to `group`; a follower answers with the leader instead.
    async fn propose(&self, group: u32, payload: Vec<u8>) -> Result<WriteReply, Status> {
        match self.node.raft.propose(group, Request(payload)).await {
            Ok(r) => Ok(write_reply(r)),
            Err(strata_raft::Error::NotLeader { leader, leader_addr, .. }) => Ok(WriteReply {
                not_leader: true,
                leader_id: leader.unwrap_or(0),
                leader_addr: leader_addr
                    .or_else(|| leader.and_then(|l| self.node.addr_of(l)))
                    .unwrap_or_default(),
                ..WriteReply::default()
            }),
            Err(e) => Err(Error::Raft(e).into()),
        }
    }
}

/// Checks that a record decodes and that every series in it belongs to `shard`.
fn check_record(record: &[u8], shard: u32, shards: u32) -> Result<(), Status> {
    let series =
        strata_tsdb::record::decode(record).ok_or_else(|| Status::invalid_argument("undecodable record"))?;
    for s in series {
        let h = strata_tsdb::labels::hash_encoded(s.labels);
        if strata_tsdb::shard_of(h, shards) != shard {
            return Err(Status::invalid_argument(format!(
                "a series of the record belongs to another shard than {shard}"
            )));
        }
    }
    Ok(())
}

type SelectStream = Pin<Box<dyn Stream<Item = Result<SelectReply, Status>> + Send>>;

#[tonic::async_trait]
impl Storage for StorageService {
    async fn write(&self, req: tonic::Request<WriteRequest>) -> Result<tonic::Response<WriteReply>, Status> {
        let w = req.into_inner();
        let shards = self.node.map.read().as_ref().map(|m| m.shards);
        let Some(shards) = shards else {
            return Err(Status::unavailable("this node has no cluster map yet"));
        };
        if w.shard >= shards {
            return Err(Status::invalid_argument(format!("no shard {} (the cluster has {shards})", w.shard)));
        }
        check_record(&w.record, w.shard, shards)?;
        Ok(tonic::Response::new(self.propose(w.shard, w.record).await?))
    }

    type SelectStream = SelectStream;

    async fn select(
        &self,
        req: tonic::Request<SelectRequest>,
    ) -> Result<tonic::Response<SelectStream>, Status> {
        let r = req.into_inner();
        let matchers = from_wire(&r.matchers).map_err(Status::from)?;
        let db = self.node.db().ok_or_else(|| Status::unavailable("this node has no database yet"))?;
        if !self.node.raft.groups().contains(&r.shard) {
            return Err(Status::not_found(format!("shard {} has no replica on this node", r.shard)));
        }
        if r.consistency == Consistency::Linearizable as i32 {
            match self.node.raft.read_barrier(r.shard).await {
                Ok(()) => {}
                Err(strata_raft::Error::NotLeader { leader, leader_addr, .. }) => {
                    let addr =
                        leader_addr.or_else(|| leader.and_then(|l| self.node.addr_of(l))).unwrap_or_default();
                    let reply = SelectReply { not_leader: true, leader_addr: addr, ..SelectReply::default() };
                    return Ok(tonic::Response::new(Box::pin(futures_util::stream::iter([Ok(reply)]))));
                }
                Err(e) => return Err(Error::Raft(e).into()),
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<SelectReply, Status>>(4);
        tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(SELECT_BATCH);
            for s in db.select_shard(r.shard, &matchers, r.start_ms, r.end_ms) {
                match s {
                    Ok(s) => batch.push(series_to_wire(&s)),
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
                        return;
                    }
                }
                if batch.len() == SELECT_BATCH {
                    let series = std::mem::take(&mut batch);
                    if tx.blocking_send(Ok(SelectReply { series, ..SelectReply::default() })).is_err() {
                        return; // the client went away
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(Ok(SelectReply { series: batch, ..SelectReply::default() }));
            }
        });
        let stream =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn get_cluster_map(
        &self,
        _req: tonic::Request<ClusterMapRequest>,
    ) -> Result<tonic::Response<ClusterMapReply>, Status> {
        let map = self.node.map.read().clone();
        let bytes = match map {
            Some(m) => encode(&m).map_err(|e| Status::internal(e.to_string()))?,
            None => Vec::new(),
        };
        Ok(tonic::Response::new(ClusterMapReply { map: bytes }))
    }

    async fn update_metadata(
        &self,
        req: tonic::Request<MetadataCommand>,
    ) -> Result<tonic::Response<WriteReply>, Status> {
        let cmd = req.into_inner().command;
        if !self.node.raft.groups().contains(&META_GROUP) {
            return Err(Status::failed_precondition("this node holds no metadata replica"));
        }
        Ok(tonic::Response::new(self.propose(META_GROUP, cmd).await?))
    }
}
