//! The client of a cluster, used by every role: the cluster map fetched from any storage
//! node, shard writes sent to the shard's leader (learned from not-leader answers, retried
//! across leader changes within a deadline), and the channels and leader cache the
//! querier's shard reads (`strata-querier`) go through.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use strata_proto::cluster::storage_client::StorageClient;
use strata_proto::cluster::{
    ChangeReplicasReply, ChangeReplicasRequest, ClusterMapRequest, MetadataCommand, NodeStatusReply,
    NodeStatusRequest, WriteRequest,
};
use strata_tsdb::{ApplyOutcome, SeriesLimits};
use tonic::transport::Channel;

use crate::channel::{MAX_MESSAGE, endpoint};
use crate::codec::outcome_from_wire;
use crate::error::{Error, Result};
use crate::map::ClusterMap;
use crate::tls::GrpcTls;

/// Settings of a [`ClusterClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Storage node addresses to fetch the cluster map from (any subset will do). Required.
    pub seeds: Vec<String>,
    /// How long a shard write may take, retries across leader changes included, before it
    /// fails with [`Error::Unavailable`]. Default 10 s.
    pub write_timeout: Duration,
    /// Timeout of one RPC. Default 5 s.
    pub rpc_timeout: Duration,
    /// How long a shard read may try its replicas (an election takes 1.5–3 s) before the
    /// shard counts as unavailable. Default 6 s.
    pub read_timeout: Duration,
    /// Mutual TLS to the storage nodes (their gRPC ports require it unless they run with
    /// `--grpc-insecure`). Default none: plain HTTP/2.
    pub tls: Option<Arc<GrpcTls>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            seeds: Vec::new(),
            write_timeout: Duration::from_secs(10),
            rpc_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(6),
            tls: None,
        }
    }
}

/// How long a node that could not be reached is asked last among a shard's replicas
/// after its first failure: 3 s, doubling with each failure in a row up to 24 s; then a
/// background probe (not a caller) asks it for the cluster map, and it is asked like the
/// others again once it answers. A refused or unresolvable address fails at once; a host
/// that vanished (no FIN, no RST) costs a connect timeout or a missed keep-alive, ~2 s:
/// once, not per call. A node asked last is still asked when the others fail.
pub const UNREACHABLE_FOR: Duration = Duration::from_secs(3);

/// A node whose last calls did not reach it.
#[derive(Debug, Clone, Copy)]
struct Unreachable {
    /// When the last call failed.
    since: Instant,
    /// Failures in a row.
    failures: u32,
    /// A background probe is asking it.
    probing: bool,
}

type UnreachableNodes = Arc<Mutex<HashMap<String, Unreachable>>>;

/// A client of the cluster's storage nodes. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct ClusterClient {
    cfg: ClientConfig,
    map: RwLock<Option<Arc<ClusterMap>>>,
    leaders: RwLock<HashMap<u32, String>>,
    channels: Mutex<HashMap<String, StorageClient<Channel>>>,
    /// Nodes whose last calls failed to reach them.
    unreachable: UnreachableNodes,
    /// The newest map version a storage node's reply carried ([`MAP_VERSION_HEADER`]).
    seen_version: AtomicU64,
    /// The `seen_version` the last fetch it caused was for (one fetch per newer version).
    fetched_for: AtomicU64,
}

/// The header of every storage node's gRPC reply: the version of the cluster map it knows.
/// A client that sees a newer version than its cached map's fetches the map before its next
/// call, without waiting for its poll.
pub const MAP_VERSION_HEADER: &str = "strata-map-version";

fn note_failure(down: &UnreachableNodes, addr: &str) {
    let mut down = down.lock();
    let failures = down.get(addr).map_or(0, |u| u.failures).saturating_add(1);
    down.insert(addr.to_string(), Unreachable { since: Instant::now(), failures, probing: false });
}

/// `call`, failed as `DeadlineExceeded` after `limit`: the channel's own timeout does not
/// bound a connection whose TLS handshake never completes (a port that accepts and never
/// answers), so every call of the client carries its own.
async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
) -> std::result::Result<T, tonic::Status> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded(format!("no answer in {limit:?}"))))
}

/// Whether a failed call never got the node's own answer (refused, unresolvable, reset,
/// timed out), as opposed to the node answering with an error.
pub fn not_reached(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled)
}

impl ClusterClient {
    /// A client; nothing is fetched until first used.
    pub fn new(cfg: ClientConfig) -> Self {
        ClusterClient {
            cfg,
            map: RwLock::new(None),
            leaders: RwLock::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            unreachable: UnreachableNodes::default(),
            seen_version: AtomicU64::new(0),
            fetched_for: AtomicU64::new(0),
        }
    }

    /// Notes the map version a storage node's reply carried ([`MAP_VERSION_HEADER`]): when
    /// newer than the cached map's, the next [`ClusterClient::map`] fetches the map first.
    pub fn note_reply(&self, metadata: &tonic::metadata::MetadataMap) {
        let version = metadata.get(MAP_VERSION_HEADER).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(v) = version {
            self.seen_version.fetch_max(v, Ordering::Relaxed);
        }
    }

    /// Notes that a call to `addr` did not reach it ([`not_reached`]): it is asked after
    /// the shard's other replicas for a while (see [`UNREACHABLE_FOR`]).
    pub fn mark_unreachable(&self, addr: &str) {
        note_failure(&self.unreachable, addr);
    }

    /// Notes that `addr` answered (an error of its own counts).
    pub fn mark_reachable(&self, addr: &str) {
        let mut down = self.unreachable.lock();
        if !down.is_empty() {
            down.remove(addr);
        }
    }

    /// Whether `addr` is to be asked last: its last calls failed to reach it and it has not
    /// answered a probe since ([`UNREACHABLE_FOR`]). Starts the probe when it is due.
    pub fn is_unreachable(&self, addr: &str) -> bool {
        let due = {
            let mut down = self.unreachable.lock();
            let Some(u) = down.get_mut(addr) else { return false };
            let wait = UNREACHABLE_FOR * (1 << u.failures.saturating_sub(1).min(3));
            let due = !u.probing && u.since.elapsed() >= wait;
            u.probing |= due;
            due
        };
        if due {
            self.probe(addr);
        }
        true
    }

    /// Asks `addr` for the cluster map in the background: reachable again if it answers.
    fn probe(&self, addr: &str) {
        let down = self.unreachable.clone();
        let addr = addr.to_string();
        let client = self.storage(&addr);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            down.lock().remove(&addr);
            return;
        };
        handle.spawn(async move {
            let answered = match client {
                Ok(mut c) => match bounded(UNREACHABLE_FOR, c.get_cluster_map(ClusterMapRequest {})).await {
                    Ok(_) => true,
                    Err(e) => !not_reached(&e),
                },
                Err(_) => false,
            };
            if answered {
                down.lock().remove(&addr);
            } else {
                note_failure(&down, &addr);
            }
        });
    }

    /// Moves the replicas to be asked last ([`ClusterClient::is_unreachable`]) behind the
    /// others, each group in its order; returns how many are not to be asked last.
    pub fn reachable_first(&self, addrs: &mut [String]) -> usize {
        let mut keyed: Vec<(bool, String)> =
            addrs.iter_mut().map(|a| (self.is_unreachable(a), std::mem::take(a))).collect();
        keyed.sort_by_key(|(down, _)| *down);
        let reachable = keyed.iter().take_while(|(down, _)| !down).count();
        for (slot, (_, a)) in addrs.iter_mut().zip(keyed) {
            *slot = a;
        }
        reachable
    }

    /// The settings in force.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The Storage service of the node at `addr` (one lazily connecting channel per node).
    pub fn storage(&self, addr: &str) -> Result<StorageClient<Channel>> {
        let mut ch = self.channels.lock();
        if let Some(c) = ch.get(addr) {
            return Ok(c.clone());
        }
        let channel = endpoint(addr, self.cfg.tls.as_deref())
            .map_err(Error::Config)?
            .timeout(self.cfg.rpc_timeout)
            .connect_lazy();
        let c = StorageClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        ch.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Addresses to ask for the map: the known nodes, then the seeds.
    fn map_sources(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.map.read().as_ref().map(|m| m.nodes.values().cloned().collect()).unwrap_or_default();
        for s in &self.cfg.seeds {
            if !v.contains(s) {
                v.push(s.clone());
            }
        }
        v
    }

    /// Asks every known node and seed for its map at once and returns the newest of the
    /// answers that arrive until 300 ms after the first (a node that left the metadata
    /// group serves its last, stale copy; a node that is down does not hold the others
    /// up); caches it. An older map than one seen before never replaces it: the newer one
    /// is returned.
    pub async fn fetch_map(&self) -> Result<ClusterMap> {
        use futures_util::StreamExt;
        let mut asks: futures_util::stream::FuturesUnordered<_> = self
            .map_sources()
            .into_iter()
            .map(|addr| async move {
                let mut c = self.storage(&addr).map_err(|e| e.to_string())?;
                let answer = bounded(self.cfg.rpc_timeout, c.get_cluster_map(ClusterMapRequest {})).await;
                if answer.is_ok() {
                    // an answer proves the node reachable again (before its probe is due)
                    self.mark_reachable(&addr);
                }
                match answer {
                    Ok(r) if !r.get_ref().map.is_empty() => {
                        ClusterMap::decode(&r.get_ref().map).map_err(|e| format!("{addr}: {e}"))
                    }
                    Ok(_) => Err(format!("{addr} has no cluster map yet")),
                    Err(e) => Err(format!("{addr}: {}", e.message())),
                }
            })
            .collect();
        let mut newest: Option<ClusterMap> = None;
        let mut last = String::from("no storage node configured");
        let mut until: Option<tokio::time::Instant> = None;
        loop {
            let next = match until {
                Some(t) => match tokio::time::timeout_at(t, asks.next()).await {
                    Ok(n) => n,
                    Err(_) => break,
                },
                None => asks.next().await,
            };
            match next {
                None => break,
                Some(Ok(m)) => {
                    until.get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_millis(300));
                    if newest.as_ref().is_none_or(|n| n.version < m.version) {
                        newest = Some(m);
                    }
                }
                Some(Err(e)) => last = e,
            }
        }
        let m = newest.ok_or(Error::NoMap(last))?;
        let mut cur = self.map.write();
        match cur.as_ref() {
            Some(c) if c.version > m.version => Ok(ClusterMap::clone(c)),
            _ => {
                *cur = Some(Arc::new(m.clone()));
                Ok(m)
            }
        }
    }

    /// Keeps the cached map fresh in the background: fetched every second until there is
    /// one, then every `every` (the "watch" of the map, by polling).
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let c = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = c.fetch_map().await {
                    tracing::warn!(error = %e, "cluster map not available yet");
                }
                let wait = if c.cached_map().is_some() { every } else { Duration::from_secs(1) };
                tokio::time::sleep(wait).await;
            }
        })
    }

    /// The cached cluster map, if one was fetched.
    pub fn cached_map(&self) -> Option<Arc<ClusterMap>> {
        self.map.read().clone()
    }

    /// The cached cluster map, fetched if there is none yet, or if a node answered with a
    /// newer version ([`ClusterClient::note_reply`]; once per version: a fetch that does not
    /// find it leaves the cached map in use).
    pub async fn map(&self) -> Result<Arc<ClusterMap>> {
        let cached = self.map.read().clone();
        let Some(m) = cached else { return self.fetch_map().await.map(Arc::new) };
        let seen = self.seen_version.load(Ordering::Relaxed);
        if m.version >= seen || self.fetched_for.fetch_max(seen, Ordering::Relaxed) >= seen {
            return Ok(m);
        }
        Ok(self.fetch_map().await.map_or(m, Arc::new))
    }

    /// Sends a metadata command to the metadata group (through any of its replicas); answers
    /// the command's answer (empty for most commands).
    pub async fn update_metadata(&self, command: Vec<u8>) -> Result<Vec<u8>> {
        let mut last = String::from("no storage node configured");
        let mut addrs = self.map_sources();
        let mut tried = 0;
        while let Some(addr) = addrs.pop() {
            tried += 1;
            if tried > 16 {
                break;
            }
            let mut c = self.storage(&addr)?;
            match bounded(
                self.cfg.rpc_timeout,
                c.update_metadata(MetadataCommand { command: command.clone() }),
            )
            .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    if r.not_leader {
                        if !r.leader_addr.is_empty() && !addrs.contains(&r.leader_addr) {
                            addrs.push(r.leader_addr);
                        }
                        last = format!("{addr} is not the metadata leader");
                        continue;
                    }
                    return if r.error.is_empty() { Ok(r.answer) } else { Err(Error::Invalid(r.error)) };
                }
                Err(e) => last = format!("{addr}: {}", e.message()),
            }
        }
        Err(Error::Unavailable { shard: strata_raft::META_GROUP, reason: last })
    }

    /// Claims an HA election in the metadata group: the election after the claim.
    pub async fn elect(&self, claim: strata_api::HaClaim) -> Result<strata_api::HaElected> {
        let internal = |e: std::io::Error| Error::Server(e.to_string());
        let cmd = strata_raft::codec::encode(&crate::Command::HaElect(claim)).map_err(internal)?;
        strata_raft::codec::decode(&self.update_metadata(cmd).await?).map_err(internal)
    }

    /// The groups of the node at `addr` as it sees them (one bounded call).
    pub async fn node_status(&self, addr: &str) -> std::result::Result<NodeStatusReply, tonic::Status> {
        let mut c = self.storage(addr).map_err(tonic::Status::from)?;
        bounded(self.cfg.rpc_timeout, c.node_status(NodeStatusRequest {})).await.map(|r| r.into_inner())
    }

    /// One replica change step on the node at `addr` (the shard's leader; one bounded call).
    pub async fn change_replicas(
        &self,
        addr: &str,
        req: ChangeReplicasRequest,
    ) -> std::result::Result<ChangeReplicasReply, tonic::Status> {
        let mut c = self.storage(addr).map_err(tonic::Status::from)?;
        bounded(self.cfg.rpc_timeout, c.change_replicas(req)).await.map(|r| r.into_inner())
    }

    /// The address of `shard`'s leader as last seen, if any.
    pub fn leader(&self, shard: u32) -> Option<String> {
        self.leaders.read().get(&shard).cloned()
    }

    /// Records `shard`'s leader (`None`: forgets it, after a not-leader answer or a failure).
    pub fn set_leader(&self, shard: u32, addr: Option<String>) {
        match addr {
            Some(a) => self.leaders.write().insert(shard, a),
            None => self.leaders.write().remove(&shard),
        };
    }

    /// Writes one record to `shard` through its leader and returns what the apply did; only
    /// returns `Ok` once a quorum of the shard's replicas has the record durable. Retries
    /// across leader changes and unreachable replicas until the write timeout. The leader
    /// refuses new series past `limits` (the writer's tenant's).
    pub async fn write_shard(
        &self,
        shard: u32,
        record: Vec<u8>,
        limits: SeriesLimits,
    ) -> Result<ApplyOutcome> {
        let deadline = tokio::time::Instant::now() + self.cfg.write_timeout;
        let mut attempt = 0usize;
        let mut last;
        let mut hint: Option<String> = None;
        loop {
            let map = self.map().await?;
            let mut replicas: Vec<String> =
                map.replicas(shard).iter().filter_map(|n| map.nodes.get(n).cloned()).collect();
            if replicas.is_empty() {
                return Err(Error::Invalid(format!("no shard {shard} in the cluster map")));
            }
            // a node that just failed to answer is asked only when no other one is left, and
            // never on a leader hint (followers name a dead leader until they elect another;
            // a call to it costs up to the RPC timeout): the background probe finds it back
            let reachable = self.reachable_first(&mut replicas).max(1);
            let next = replicas[attempt % reachable].clone();
            let addr = match hint.take().or_else(|| self.leaders.read().get(&shard).cloned()) {
                Some(h) if !self.is_unreachable(&h) => h,
                _ => next,
            };
            attempt += 1;
            let mut c = self.storage(&addr)?;
            let req = WriteRequest {
                shard,
                record: record.clone(),
                max_series_per_tenant: limits.max_per_tenant as u64,
                max_series_per_metric: limits.max_per_metric as u64,
            };
            let res = bounded(self.cfg.rpc_timeout, c.write(req)).await;
            match res {
                Ok(r) => {
                    self.mark_reachable(&addr);
                    self.note_reply(r.metadata());
                    let r = r.into_inner();
                    if !r.not_leader {
                        self.leaders.write().insert(shard, addr);
                        return Ok(outcome_from_wire(r));
                    }
                    self.leaders.write().remove(&shard);
                    last = format!("{addr} is not the leader");
                    // a hint naming a node that does not answer waits for the next round
                    if !r.leader_addr.is_empty()
                        && r.leader_addr != addr
                        && !self.is_unreachable(&r.leader_addr)
                    {
                        hint = Some(r.leader_addr);
                        continue;
                    }
                }
                Err(e) if e.code() == tonic::Code::InvalidArgument => {
                    return Err(Error::Invalid(e.message().into()));
                }
                Err(e) => {
                    self.leaders.write().remove(&shard);
                    if not_reached(&e) {
                        self.mark_unreachable(&addr);
                    }
                    last = format!("{addr}: {}", e.message());
                    if e.code() == tonic::Code::NotFound {
                        // the replica moved away: the map changed, follow it now
                        let _ = self.fetch_map().await;
                    }
                }
            }
            tracing::debug!(shard, attempt, reason = %last, "write not committed yet");
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable { shard, reason: last });
            }
            // no leader known: an election is under way, or the map is stale
            tokio::time::sleep(Duration::from_millis(50 * (attempt as u64).min(5))).await;
            if attempt.is_multiple_of(4) {
                let _ = self.fetch_map().await;
            }
        }
    }

    /// Writes one record per shard concurrently; `Ok` only when every shard's write is
    /// committed, with the merged outcome.
    pub async fn write(&self, records: Vec<(u32, Vec<u8>)>, limits: SeriesLimits) -> Result<ApplyOutcome> {
        let writes = records.into_iter().map(|(shard, rec)| self.write_shard(shard, rec, limits));
        let mut out = ApplyOutcome::default();
        for r in futures_util::future::join_all(writes).await {
            out.merge(r?);
        }
        Ok(out)
    }
}
