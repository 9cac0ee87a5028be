//! The Raft network of a node: every group's RPCs to a peer go through one [`Transport`]
//! (in production one gRPC channel per peer; in tests anything, e.g. with injected
//! faults), tagged with the group id — openraft-multi's `GroupRouter`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft_multi::{GroupNetworkAdapter, GroupRouter};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode};
use crate::snapshot::{FrameStream, InFlight, SnapshotStats, Throttle};
use crate::state_machine::SnapshotPayload;
use crate::{GroupId, NodeId, TypeConfig};

/// The kinds of Raft RPC a node sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcKind {
    /// AppendEntries (also the heartbeat).
    Append,
    /// RequestVote.
    Vote,
    /// Pre-vote.
    PreVote,
    /// A snapshot's frames in one message (what [`Transport::snapshot`] sends by default;
    /// the gRPC transport streams them instead).
    Snapshot,
    /// A leader hands its leadership to a voter (sent to every voter; the named one
    /// starts an election at once, the others stop honouring the old leader's lease).
    TransferLeader,
}

impl RpcKind {
    /// Every kind, by wire number.
    pub const ALL: [RpcKind; 5] =
        [RpcKind::Append, RpcKind::Vote, RpcKind::PreVote, RpcKind::Snapshot, RpcKind::TransferLeader];

    /// The wire number.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The kind of a wire number.
    pub fn from_code(c: u32) -> Option<RpcKind> {
        Self::ALL.get(c as usize).copied()
    }
}

/// Why a message did not get an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (connection refused, partitioned, dropped).
    #[error("node {0} unreachable: {1}")]
    Unreachable(NodeId, String),
    /// The peer answered with an error.
    #[error("node {0}: {1}")]
    Remote(NodeId, String),
}

/// A boxed future of a transport call.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, TransportError>> + Send>>;

/// Carries encoded Raft messages to peers and brings back their encoded answers.
pub trait Transport: Send + Sync + 'static {
    /// Sends `payload` of `kind` for `group` to `target`; resolves to the peer's answer.
    fn call(&self, target: NodeId, group: GroupId, kind: RpcKind, payload: Vec<u8>) -> CallFuture;

    /// Streams a snapshot's `frames` for `group` to `target` (the peer hands them to
    /// [`RaftNode::receive_snapshot`](crate::RaftNode::receive_snapshot)); resolves to its
    /// answer. By default the frames are gathered into one [`RpcKind::Snapshot`] message
    /// (whole in memory: for transports of tests, whose snapshots are small).
    fn snapshot(self: Arc<Self>, target: NodeId, group: GroupId, frames: FrameStream) -> CallFuture {
        Box::pin(async move {
            let frames: Vec<Vec<u8>> = frames
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, String>>()
                .map_err(|e| TransportError::Unreachable(target, e))?;
            let payload = encode(&frames).map_err(|e| TransportError::Unreachable(target, e.to_string()))?;
            self.call(target, group, RpcKind::Snapshot, payload).await
        })
    }
}

/// A transport that reaches no peer: every call fails as unreachable. For a node that is
/// alone in its groups and must never send (a one-node test, a fuzzed node's answers).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPeers;

impl Transport for NoPeers {
    fn call(&self, target: NodeId, _group: GroupId, _kind: RpcKind, _payload: Vec<u8>) -> CallFuture {
        Box::pin(async move { Err(TransportError::Unreachable(target, "this node has no peers".into())) })
    }
}

/// Routes every group's messages over the node's transport.
#[derive(Clone)]
pub(crate) struct Router {
    pub(crate) transport: Arc<dyn Transport>,
    /// Paces the snapshot bytes the node sends.
    pub(crate) throttle: Arc<Throttle>,
    pub(crate) stats: Arc<SnapshotStats>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Router")
    }
}

fn unreachable(e: &TransportError) -> Unreachable<TypeConfig> {
    Unreachable::new(e)
}

impl Router {
    async fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        group: GroupId,
        kind: RpcKind,
        req: &Req,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let bytes = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        match self.transport.call(target, group, kind, bytes).await {
            Ok(b) => decode::<Result<Resp, String>>(&b)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?
                .map_err(|e| RPCError::Unreachable(unreachable(&TransportError::Remote(target, e)))),
            Err(e) => Err(RPCError::Unreachable(unreachable(&e))),
        }
    }
}

impl GroupRouter<TypeConfig, GroupId> for Router {
    type SnapshotData = SnapshotPayload;

    async fn append_entries(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(target, group, RpcKind::Append, &rpc).await
    }

    async fn vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(target, group, RpcKind::Vote, &rpc).await
    }

    async fn pre_vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(target, group, RpcKind::PreVote, &rpc).await
    }

    async fn transfer_leader(
        &self,
        target: NodeId,
        group: GroupId,
        req: TransferLeaderRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(target, group, RpcKind::TransferLeader, &req).await
    }

    async fn full_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotPayload>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        // the checkpoint is exported as it is sent (its Raft state may be newer than the
        // meta's: the receiver takes the one stored with the data)
        let SnapshotPayload::Local(export) = snapshot.snapshot else {
            let e = std::io::Error::other("only this node's own checkpoint is sent");
            return Err(StreamingError::Network(NetworkError::new(&e)));
        };
        let _in_flight = InFlight::new(&self.stats);
        let frames = crate::snapshot::outgoing(vote, export, self.throttle.clone(), self.stats.clone());
        let send = async {
            let b =
                self.transport.clone().snapshot(target, group, frames).await.map_err(|e| unreachable(&e))?;
            let answer = decode::<Result<SnapshotResponse<TypeConfig>, String>>(&b)
                .map_err(|e| unreachable(&TransportError::Remote(target, e.to_string())))?;
            let r = answer.map_err(|e| unreachable(&TransportError::Remote(target, e)))?;
            self.stats.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(r)
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = send => r.map_err(StreamingError::Unreachable),
        }
    }
}

/// Hands openraft a network per (target, group) over the shared [`Router`].
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) router: Router,
    pub(crate) group: GroupId,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupNetworkAdapter<TypeConfig, GroupId, Router>;

    async fn new_client(&mut self, target: NodeId, _node: &openraft::BasicNode) -> Self::Network {
        GroupNetworkAdapter::new(self.router.clone(), target, self.group)
    }
}
