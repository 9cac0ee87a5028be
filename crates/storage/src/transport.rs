//! The gRPC transport of Raft messages: one channel per peer node carries every group's
//! messages; snapshots are streamed in chunks. [`Faults`] lets tests drop, partition and
//! delay messages between nodes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use strata_proto::cluster::raft_client::RaftClient;
use strata_proto::cluster::{RaftMessage, SnapshotChunk};
use strata_raft::{CallFuture, FrameStream, GroupId, NodeId, RpcKind, Transport, TransportError};
use tonic::transport::Channel;

use strata_cluster::{GrpcTls, MAX_MESSAGE, endpoint};

/// Network faults between nodes, for tests: cut links, a drop probability, a delay.
#[derive(Debug)]
pub struct Faults {
    state: Mutex<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    cut: HashSet<(NodeId, NodeId)>,
    drop_per_million: u64,
    delay: Duration,
    chunk_delay: Duration,
    rng: u64,
}

impl Faults {
    /// No faults yet; `seed` drives the drop decisions (runs are reproducible).
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Faults {
            state: Mutex::new(FaultState {
                cut: HashSet::new(),
                drop_per_million: 0,
                delay: Duration::ZERO,
                chunk_delay: Duration::ZERO,
                rng: seed | 1,
            }),
        })
    }

    /// Cuts every link between `node` and `others`, both ways.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        let mut s = self.state.lock();
        for &o in others.iter().filter(|&&o| o != node) {
            s.cut.insert((node, o));
            s.cut.insert((o, node));
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state.lock().cut.clear();
    }

    /// Drops each message with probability `p` (0–1).
    pub fn set_drop(&self, p: f64) {
        self.state.lock().drop_per_million = (p.clamp(0.0, 1.0) * 1e6) as u64;
    }

    /// Delays each message by `d`.
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().delay = d;
    }

    /// Delays each chunk of a snapshot stream by `d` (a slow link under a large snapshot).
    pub fn set_snapshot_chunk_delay(&self, d: Duration) {
        self.state.lock().chunk_delay = d;
    }

    fn chunk_delay(&self) -> Duration {
        self.state.lock().chunk_delay
    }

    /// Whether a message from `from` to `to` goes through, and after what delay.
    fn admit(&self, from: NodeId, to: NodeId) -> Result<Duration, String> {
        let mut s = self.state.lock();
        if s.cut.contains(&(from, to)) {
            return Err("link cut".into());
        }
        // xorshift64
        s.rng ^= s.rng << 13;
        s.rng ^= s.rng >> 7;
        s.rng ^= s.rng << 17;
        if s.rng % 1_000_000 < s.drop_per_million {
            return Err("message dropped".into());
        }
        Ok(s.delay)
    }
}

/// Sends a node's Raft messages over gRPC.
#[derive(Debug)]
pub struct GrpcTransport {
    from: NodeId,
    peers: RwLock<HashMap<NodeId, String>>,
    clients: Mutex<HashMap<NodeId, (String, RaftClient<Channel>)>>,
    faults: Option<Arc<Faults>>,
    timeout: Duration,
    tls: Option<Arc<GrpcTls>>,
}

impl GrpcTransport {
    /// The transport of node `from`; `faults` (tests) applies to every message it sends;
    /// with `tls` it dials its peers over mutual TLS.
    pub fn new(
        from: NodeId,
        faults: Option<Arc<Faults>>,
        timeout: Duration,
        tls: Option<Arc<GrpcTls>>,
    ) -> Arc<Self> {
        Arc::new(GrpcTransport {
            from,
            peers: RwLock::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            faults,
            timeout,
            tls,
        })
    }

    /// Sets the address of `node`.
    pub fn set_peer(&self, node: NodeId, addr: &str) {
        self.peers.write().insert(node, addr.to_string());
    }

    fn client(&self, target: NodeId) -> Result<RaftClient<Channel>, TransportError> {
        let addr = self
            .peers
            .read()
            .get(&target)
            .cloned()
            .ok_or_else(|| TransportError::Unreachable(target, "address unknown".into()))?;
        let mut clients = self.clients.lock();
        if let Some((a, c)) = clients.get(&target)
            && *a == addr
        {
            return Ok(c.clone());
        }
        // no timeout on the channel: a snapshot stream may take as long as it streams
        // (keep-alive and the receiver's idle timeout bound a dead one); messages get
        // theirs per call
        let ch = endpoint(&addr, self.tls.as_deref())
            .map_err(|e| TransportError::Unreachable(target, e))?
            .connect_lazy();
        let c =
            RaftClient::new(ch).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
        clients.insert(target, (addr, c.clone()));
        Ok(c)
    }
}

impl Transport for GrpcTransport {
    fn call(&self, target: NodeId, group: GroupId, kind: RpcKind, payload: Vec<u8>) -> CallFuture {
        let admitted = match &self.faults {
            Some(f) => f.admit(self.from, target).map_err(|e| TransportError::Unreachable(target, e)),
            None => Ok(Duration::ZERO),
        };
        let client = self.client(target);
        let from = self.from;
        let timeout = self.timeout;
        Box::pin(async move {
            let delay = admitted?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut client = client?;
            let unreachable = |e: tonic::Status| TransportError::Unreachable(target, e.message().to_string());
            let msg = RaftMessage { group, kind: kind.code(), payload, from };
            let reply = match tokio::time::timeout(timeout, client.call(msg)).await {
                Ok(r) => r.map_err(unreachable)?,
                Err(_) => {
                    return Err(TransportError::Unreachable(target, format!("no answer in {timeout:?}")));
                }
            };
            Ok(reply.into_inner().payload)
        })
    }

    /// One chunk per frame, read from `frames` as the stream is sent: no timeout on the
    /// whole transfer (the receiver gives up on a stream idle between chunks). A frame the
    /// sender failed to make ends the stream early: the receiver, missing the end frame,
    /// discards what it staged.
    fn snapshot(self: Arc<Self>, target: NodeId, group: GroupId, frames: FrameStream) -> CallFuture {
        let admitted = match &self.faults {
            Some(f) => f.admit(self.from, target).map_err(|e| TransportError::Unreachable(target, e)),
            None => Ok(Duration::ZERO),
        };
        let client = self.client(target);
        let from = self.from;
        let chunk_delay = self.faults.as_ref().map_or(Duration::ZERO, |f| f.chunk_delay());
        Box::pin(async move {
            admitted?;
            let mut client = client?;
            let (tx, rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(1);
            tokio::spawn(async move {
                let mut frames = frames;
                while let Some(frame) = frames.next().await {
                    let data = match frame {
                        Ok(data) => data,
                        Err(e) => {
                            tracing::warn!(group, target, error = %e, "snapshot stream ended early");
                            return;
                        }
                    };
                    if !chunk_delay.is_zero() {
                        tokio::time::sleep(chunk_delay).await;
                    }
                    if tx.send(SnapshotChunk { group, from, data }).await.is_err() {
                        return;
                    }
                }
            });
            let chunks =
                futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
            let reply = client
                .install_snapshot(chunks)
                .await
                .map_err(|e| TransportError::Unreachable(target, e.message().to_string()))?;
            Ok(reply.into_inner().payload)
        })
    }
}
