//! The gRPC services of a storage node.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use strata_promql::{Engine, EngineConfig, EvalAt, QueryError, SelectHints, Source};
use strata_proto::cluster::raft_server::Raft;
use strata_proto::cluster::storage_server::Storage;
use strata_proto::cluster::{
    ChangeReplicasReply, ChangeReplicasRequest, ClusterMapReply, ClusterMapRequest, Consistency,
    EvaluateReply, EvaluateRequest, GroupState, LabelsKind, LabelsReply, LabelsRequest, MetadataCommand,
    NodeStatusReply, NodeStatusRequest, RaftMessage, RaftReply, ReplicaOp, SelectReply, SelectRequest,
    ShardRefused, SnapshotChunk, WriteReply, WriteRequest,
};
use strata_raft::{META_GROUP, ReplicaStep, Request, RpcKind};
use strata_tsdb::{Matcher, SeriesData, SeriesLimits};
use tonic::{Status, Streaming};

use strata_cluster::codec::outcome_to_wire;
use strata_cluster::{Error, ShardReply, from_wire, series_to_wire, series_to_wire_with};
use strata_raft::codec::encode;

use crate::node::NodeState;

/// Series per streamed select reply.
const SERIES_PER_REPLY: usize = 256;

/// How long a snapshot stream may stay idle between two chunks before the receiver gives
/// up on it: 30 s (there is no bound on the whole transfer).
const SNAPSHOT_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Inbound Raft messages.
pub(crate) struct RaftService {
    pub(crate) node: Arc<NodeState>,
}

impl RaftService {
    /// Refuses a message for `group` from a node that is no member of it: neither in the
    /// group's membership as this node knows it, nor placed on the group by the cluster map
    /// (a new replica learns its membership from the leader's first message).
    fn check_sender(&self, group: u32, from: u64) -> Result<(), Status> {
        let node = &self.node;
        if !node.raft.groups().contains(&group) {
            return Err(Status::not_found(format!("group {group} has no replica on this node")));
        }
        // a replica added to the group (it may still hold a stale copy from an earlier
        // stay) learns the group's leader from the map; a removed replica's messages are
        // refused once the map no longer places it and the membership excludes it
        let placed = match node.map.read().as_ref() {
            Some(m) => m.replicas(group).contains(&from),
            // no map yet: the metadata group's first voters are the founders
            None => group == META_GROUP && node.peers.keys().take(3).any(|&n| n == from),
        };
        if placed || node.raft.is_member(group, from) {
            Ok(())
        } else {
            tracing::warn!(group, from, "refused a Raft message from a node that is no member of the group");
            Err(Status::permission_denied(format!("node {from} is no member of group {group}")))
        }
    }
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
        self.check_sender(m.group, m.from)?;
        let payload = self.node.raft.handle(m.group, kind, &m.payload).await;
        Ok(tonic::Response::new(RaftReply { payload }))
    }

    /// Each chunk is one frame of the snapshot, staged as it arrives (memory stays bounded
    /// whatever the shard's size).
    async fn install_snapshot(
        &self,
        req: tonic::Request<Streaming<SnapshotChunk>>,
    ) -> Result<tonic::Response<RaftReply>, Status> {
        let mut stream = req.into_inner();
        let first = next_chunk(&mut stream)
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        self.check_sender(first.group, first.from)?;
        let sender = (first.group, first.from);
        let rest = futures_util::stream::unfold(Some(stream), move |stream| async move {
            let mut stream = stream?;
            match next_chunk(&mut stream).await {
                Ok(None) => None,
                Ok(Some(c)) if (c.group, c.from) == sender => Some((Ok(c.data), Some(stream))),
                Ok(Some(_)) => Some((Err("a snapshot stream changed its group or sender".to_string()), None)),
                Err(e) => Some((Err(e.message().to_string()), None)),
            }
        });
        let frames = Box::pin(futures_util::stream::once(std::future::ready(Ok(first.data))).chain(rest));
        let payload = self.node.raft.receive_snapshot(sender.0, frames).await;
        Ok(tonic::Response::new(RaftReply { payload }))
    }
}

/// The next chunk of a snapshot stream; an error once it has been idle for [`SNAPSHOT_IDLE`].
async fn next_chunk(stream: &mut Streaming<SnapshotChunk>) -> Result<Option<SnapshotChunk>, Status> {
    match tokio::time::timeout(SNAPSHOT_IDLE, stream.next()).await {
        Ok(next) => next.transpose(),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "snapshot stream idle for {SNAPSHOT_IDLE:?} between chunks"
        ))),
    }
}

/// This node's groups as it sees them.
pub(crate) fn node_status(node: &NodeState) -> NodeStatusReply {
    let groups = node
        .raft
        .groups()
        .into_iter()
        .filter_map(|g| {
            let s = node.raft.status(g).ok()?;
            Some(GroupState {
                group: g,
                leader: s.leader.unwrap_or(0),
                voters: s.voters,
                learners: s.learners,
                joint: s.joint,
                applied: s.applied,
                last_log: s.last_log,
            })
        })
        .collect();
    let map_version = node.map.read().as_ref().map_or(0, |m| m.version);
    NodeStatusReply { id: node.id, groups, map_version }
}

/// One step of a replica change, on this node as the shard's leader.
pub(crate) async fn change_replicas(
    node: &NodeState,
    r: ChangeReplicasRequest,
) -> Result<ChangeReplicasReply, Status> {
    let raft = &node.raft;
    let done =
        |done: bool, phase: &str| ChangeReplicasReply { done, phase: phase.into(), ..Default::default() };
    let res = match ReplicaOp::try_from(r.op) {
        Ok(ReplicaOp::Replace) => {
            raft.replace_replica(r.shard, r.remove, r.add, &r.add_addr, r.max_lag).await.map(|s| match s {
                ReplicaStep::Done => done(true, "done"),
                ReplicaStep::Pending(p) => done(false, p),
            })
        }
        Ok(ReplicaOp::DropLearner) => raft
            .drop_learner(r.shard, r.add)
            .await
            .map(|out| if out { done(true, "dropped") } else { done(false, "voter") }),
        Ok(ReplicaOp::TransferLeader) => {
            raft.transfer_leader(r.shard, r.add).await.map(|()| done(true, "transferring-leader"))
        }
        Err(_) => return Err(Status::invalid_argument("unknown replica operation")),
    };
    match res {
        Ok(r) => Ok(r),
        Err(strata_raft::Error::NotLeader { leader, leader_addr, .. }) => Ok(ChangeReplicasReply {
            not_leader: true,
            leader_id: leader.unwrap_or(0),
            leader_addr: leader_addr.or_else(|| leader.and_then(|l| node.addr_of(l))).unwrap_or_default(),
            ..Default::default()
        }),
        Err(e) => Err(Error::Raft(e).into()),
    }
}

/// Shard writes and reads, the cluster map.
pub(crate) struct StorageService {
    pub(crate) node: Arc<NodeState>,
}

/// How this node goes on with a shard read, unbatched or batched.
enum Plan<R> {
    /// Read these shards of the database, sending the header first (a batched read).
    Read(Arc<strata_tsdb::Db>, Vec<u32>, Option<R>),
    /// Answer with this one reply: not the leader, or a batch none of whose shards is
    /// served here (the header alone).
    Answer(R),
}

/// Whether a shard read may go ahead on this node.
enum Readable {
    /// Yes, on this database.
    Db(Arc<strata_tsdb::Db>),
    /// No: the read needs the leader, which is the node at this address ("" if unknown).
    NotLeader(String),
}

impl StorageService {
    /// Checks that this node holds a replica of `shard` and, for a linearizable read, that
    /// it is the leader (lease or ReadIndex) and has applied everything committed before the
    /// read.
    async fn readable(&self, shard: u32, consistency: i32) -> Result<Readable, Status> {
        let db = self.node.db().ok_or_else(|| Status::unavailable("this node has no database yet"))?;
        if !self.node.raft.groups().contains(&shard) {
            return Err(Status::not_found(format!("shard {shard} has no replica on this node")));
        }
        if consistency != Consistency::Linearizable as i32 {
            // a follower read: only a voter has every committed entry's data coming (a
            // learner may still be catching up, a removed replica no longer receives any)
            let status = self.node.raft.status(shard).map_err(|e| Status::from(Error::Raft(e)))?;
            if !status.voters.contains(&self.node.id) {
                let addr = status.leader.and_then(|l| self.node.addr_of(l)).unwrap_or_default();
                return Ok(Readable::NotLeader(addr));
            }
        } else {
            match self.node.raft.read_barrier(shard).await {
                Ok(()) => {}
                Err(strata_raft::Error::NotLeader { leader, leader_addr, .. }) => {
                    let addr =
                        leader_addr.or_else(|| leader.and_then(|l| self.node.addr_of(l))).unwrap_or_default();
                    return Ok(Readable::NotLeader(addr));
                }
                Err(e) => return Err(Error::Raft(e).into()),
            }
        }
        Ok(Readable::Db(db))
    }

    /// How a read goes on: `shard` alone (an unbatched read: `batch` empty), or each of
    /// `batch` — the shards this node serves, after a header naming the others with the
    /// leader's address or why not. A batch names each shard at most once and no more
    /// shards than the cluster has.
    async fn plan<R: ShardReply>(
        &self,
        shard: u32,
        batch: &[u32],
        consistency: i32,
    ) -> Result<Plan<R>, Status> {
        if batch.is_empty() {
            return Ok(match self.readable(shard, consistency).await? {
                Readable::Db(db) => Plan::Read(db, vec![shard], None),
                Readable::NotLeader(addr) => Plan::Answer(R::not_leader(addr)),
            });
        }
        let shards = self.node.map.read().as_ref().map_or(0, |m| m.shards);
        let mut wanted = batch.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.len() != batch.len() || wanted.len() > shards as usize {
            return Err(Status::invalid_argument(format!(
                "a batched read names {} shards, the cluster has {shards}, each at most once",
                batch.len()
            )));
        }
        let checks =
            futures_util::future::join_all(wanted.iter().map(|&s| self.readable(s, consistency))).await;
        let (mut db, mut served, mut refused) = (None, Vec::new(), Vec::new());
        for (shard, check) in wanted.into_iter().zip(checks) {
            match check {
                Ok(Readable::Db(d)) => {
                    db = Some(d);
                    served.push(shard);
                }
                Ok(Readable::NotLeader(leader_addr)) => {
                    refused.push(ShardRefused { shard, leader_addr, reason: String::new() })
                }
                Err(s) => refused.push(ShardRefused {
                    shard,
                    leader_addr: String::new(),
                    reason: s.message().to_owned(),
                }),
            }
        }
        let header = R::batch_header(refused);
        Ok(match db {
            Some(db) => Plan::Read(db, served, Some(header)),
            None => Plan::Answer(header),
        })
    }

    /// Proposes to `group`; a follower answers with the leader instead.
    async fn propose(&self, group: u32, payload: Vec<u8>) -> Result<WriteReply, Status> {
        match self.node.raft.propose(group, Request(payload)).await {
            Ok(r) => Ok(outcome_to_wire(r)),
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

/// A response stream of `T`.
type ReplyStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
type SelectStream = ReplyStream<SelectReply>;
type EvaluateStream = ReplyStream<EvaluateReply>;

/// A response stream of one reply.
fn one_reply<T: Send + 'static>(reply: T) -> tonic::Response<ReplyStream<T>> {
    tonic::Response::new(Box::pin(futures_util::stream::iter([Ok(reply)])))
}

/// The replies a blocking producer sends, as a response stream.
fn receiver_stream<T: Send + 'static>(rx: tokio::sync::mpsc::Receiver<Result<T, Status>>) -> ReplyStream<T> {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) }))
}

/// One shard of the node's database as the evaluator's source; reads count against the
/// evaluation's samples as they load, and stop once the querier is gone (its reply stream
/// closed).
struct ShardSource {
    db: Arc<strata_tsdb::Db>,
    shard: u32,
    gone: tokio::sync::mpsc::Sender<Result<EvaluateReply, Status>>,
    limit: strata_promql::LoadLimit,
}

impl Source for ShardSource {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<SeriesData>, QueryError> {
        if self.gone.is_closed() {
            tracing::debug!(shard = self.shard, "evaluation stopped: the querier went away");
            return Err(QueryError::Unavailable("the querier canceled the evaluation".into()));
        }
        self.limit.collect(self.db.select_shard(self.shard, matchers, hints.start, hints.end), || {
            self.gone.is_closed()
        })
    }
}

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
        // one decode: every series of the shard, labels validated as remote write validates
        // them, samples too far ahead dropped
        let db = self.node.db().ok_or_else(|| Status::unavailable("this node has no database yet"))?;
        let limits = SeriesLimits {
            max_per_tenant: usize::try_from(w.max_series_per_tenant).unwrap_or(usize::MAX),
            max_per_metric: usize::try_from(w.max_series_per_metric).unwrap_or(usize::MAX),
        };
        let (record, refused) =
            db.admit(Some(w.shard), w.record, limits).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut reply = match record {
            Some(record) => self.propose(w.shard, record).await?,
            None => WriteReply::default(),
        };
        if !reply.not_leader {
            reply.rejected.resize(refused.rejected.len().max(reply.rejected.len()), 0);
            for (r, n) in reply.rejected.iter_mut().zip(refused.rejected) {
                *r += n;
            }
            if reply.error.is_empty() {
                reply.error = refused.first_error.unwrap_or_default();
            }
        }
        Ok(tonic::Response::new(reply))
    }

    type SelectStream = SelectStream;

    async fn select(
        &self,
        req: tonic::Request<SelectRequest>,
    ) -> Result<tonic::Response<SelectStream>, Status> {
        let r = req.into_inner();
        let matchers = from_wire(&r.matchers).map_err(Status::from)?;
        let (db, shards, header) = match self.plan::<SelectReply>(r.shard, &r.shards, r.consistency).await? {
            Plan::Read(db, shards, header) => (db, shards, header),
            Plan::Answer(reply) => return Ok(one_reply(reply)),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<SelectReply, Status>>(4);
        tokio::task::spawn_blocking(move || {
            if let Some(h) = header
                && tx.blocking_send(Ok(h)).is_err()
            {
                return;
            }
            let send = |shard, series| {
                let gone =
                    tx.blocking_send(Ok(SelectReply { series, shard, ..SelectReply::default() })).is_err();
                if gone {
                    tracing::debug!(shard, "select stopped: the reader went away");
                }
                !gone
            };
            for shard in shards {
                let mut batch = Vec::with_capacity(SERIES_PER_REPLY);
                // stored chunks of whole buckets go as they are: one decode, at the querier
                for s in db.select_shard(shard, &matchers, r.start_ms, r.end_ms).forwarding() {
                    match s {
                        Ok((s, stored)) => batch.push(series_to_wire_with(&s, stored)),
                        Err(e) => {
                            let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
                            return;
                        }
                    }
                    if batch.len() == SERIES_PER_REPLY && !send(shard, std::mem::take(&mut batch)) {
                        return;
                    }
                }
                if !batch.is_empty() && !send(shard, batch) {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(receiver_stream(rx)))
    }

    type EvaluateStream = EvaluateStream;

    async fn evaluate(
        &self,
        req: tonic::Request<EvaluateRequest>,
    ) -> Result<tonic::Response<EvaluateStream>, Status> {
        let r = req.into_inner();
        let exprs = r
            .exprs
            .iter()
            .map(|e| strata_promql::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::from(Error::Query(e)))?;
        let (db, shards, header) = match self.plan::<EvaluateReply>(r.shard, &r.shards, r.consistency).await?
        {
            Plan::Read(db, shards, header) => (db, shards, header),
            Plan::Answer(reply) => return Ok(one_reply(reply)),
        };
        let defaults = EngineConfig::default();
        let engine = Engine::new(EngineConfig {
            lookback_ms: if r.lookback_ms > 0 { r.lookback_ms } else { defaults.lookback_ms },
            // this node's cap or the querier's, whichever is lower
            max_samples: if r.max_samples > 0 {
                usize::try_from(r.max_samples).unwrap_or(usize::MAX).min(defaults.max_samples)
            } else {
                defaults.max_samples
            },
            timeout: if r.timeout_ms > 0 {
                Duration::from_millis(r.timeout_ms).min(defaults.timeout)
            } else {
                defaults.timeout
            },
            ..defaults
        });
        let at = EvalAt {
            start: r.start_ms,
            end: r.end_ms,
            step: r.step_ms,
            query_start: r.query_start_ms,
            query_end: r.query_end_ms,
            query_step: r.query_step_ms,
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<EvaluateReply, Status>>(4);
        tokio::task::spawn_blocking(move || {
            if let Some(h) = header
                && tx.blocking_send(Ok(h)).is_err()
            {
                return;
            }
            let send = |reply: EvaluateReply| {
                let shard = reply.shard;
                let gone = tx.blocking_send(Ok(reply)).is_err();
                if gone {
                    tracing::debug!(shard, "evaluation stopped: the querier went away");
                }
                !gone
            };
            let cfg = engine.config();
            // each shard is evaluated on its own, with its own sample limit, as if asked alone
            for shard in shards {
                let limit = strata_promql::LoadLimit::new(
                    cfg.max_samples,
                    cfg.max_bytes,
                    std::time::Instant::now() + cfg.timeout,
                );
                let src = ShardSource { db: db.clone(), shard, gone: tx.clone(), limit };
                let partials = match strata_promql::evaluate_parts(&engine, [&src], &exprs, &at) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Error::Query(e).into()));
                        return;
                    }
                };
                for (i, series) in partials.results.into_iter().enumerate() {
                    let series: Vec<SeriesData> = series.into_iter().map(SeriesData::from).collect();
                    for batch in series.chunks(SERIES_PER_REPLY) {
                        let series = batch.iter().map(series_to_wire).collect();
                        if !send(EvaluateReply { expr: i as u32, series, shard, ..EvaluateReply::default() })
                        {
                            return;
                        }
                    }
                }
                let a = partials.annotations;
                if !send(EvaluateReply {
                    warnings: a.warnings,
                    infos: a.infos,
                    shard,
                    ..EvaluateReply::default()
                }) {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(receiver_stream(rx)))
    }

    async fn labels(
        &self,
        req: tonic::Request<LabelsRequest>,
    ) -> Result<tonic::Response<LabelsReply>, Status> {
        let r = req.into_inner();
        let matchers = from_wire(&r.matchers).map_err(Status::from)?;
        let (db, shards, header) = match self.plan::<LabelsReply>(r.shard, &r.shards, r.consistency).await? {
            Plan::Read(db, shards, header) => (db, shards, header),
            Plan::Answer(reply) => return Ok(tonic::Response::new(reply)),
        };
        let reply = tokio::task::spawn_blocking(move || {
            let (m, lo, hi) = (&matchers[..], r.start_ms, r.end_ms);
            let mut parts = shards.into_iter().map(|shard| {
                let part = match LabelsKind::try_from(r.kind) {
                    Ok(LabelsKind::Series) => LabelsReply {
                        series: db.series(Some(shard), m, lo, hi).iter().map(|l| l.encode()).collect(),
                        ..LabelsReply::default()
                    },
                    Ok(LabelsKind::Names) => LabelsReply {
                        values: db.label_names(Some(shard), m, lo, hi),
                        ..LabelsReply::default()
                    },
                    Ok(LabelsKind::Values) | Err(_) => LabelsReply {
                        values: db.label_values(Some(shard), &r.name, m, lo, hi),
                        ..LabelsReply::default()
                    },
                };
                LabelsReply { shard, ..part }
            });
            match header {
                Some(header) => LabelsReply { parts: parts.collect(), ..header },
                None => parts.next().unwrap_or_default(),
            }
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(tonic::Response::new(reply))
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

    async fn change_replicas(
        &self,
        req: tonic::Request<ChangeReplicasRequest>,
    ) -> Result<tonic::Response<ChangeReplicasReply>, Status> {
        Ok(tonic::Response::new(change_replicas(&self.node, req.into_inner()).await?))
    }

    async fn node_status(
        &self,
        _req: tonic::Request<NodeStatusRequest>,
    ) -> Result<tonic::Response<NodeStatusReply>, Status> {
        Ok(tonic::Response::new(node_status(&self.node)))
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
