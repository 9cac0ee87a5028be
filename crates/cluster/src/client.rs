//! The client of a cluster, used by ingestors (and storage nodes among themselves): the
//! cluster map fetched from any storage node, shard writes sent to the shard's leader
//! (learned from not-leader answers, retried across leader changes within a deadline),
//! and shard reads.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use strata_promql::LoadLimit;
use strata_proto::cluster::storage_client::StorageClient;
use strata_proto::cluster::{
    ClusterMapRequest, Consistency, EvaluateRequest, LabelsReply, LabelsRequest, MetadataCommand,
    SelectRequest, SeriesChunk, WriteRequest,
};
use strata_tsdb::{ApplyOutcome, Matcher, SeriesData};
use tonic::transport::Channel;

use crate::codec::{series_from_wire, to_wire};
use crate::error::{Error, Result, query_error_of};
use crate::map::ClusterMap;
use crate::meta::decode;
use crate::tls::GrpcTls;
use crate::transport::{MAX_MESSAGE, endpoint};

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

/// A client of the cluster's storage nodes. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct ClusterClient {
    cfg: ClientConfig,
    map: RwLock<Option<Arc<ClusterMap>>>,
    leaders: RwLock<HashMap<u32, String>>,
    channels: Mutex<HashMap<String, StorageClient<Channel>>>,
    /// Where follower reads start among a shard's replicas (spreads the load).
    next_replica: AtomicUsize,
}

/// How a shard read picks its replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// The leader after a ReadIndex round: sees every acknowledged write.
    Linearizable,
    /// The first replica that answers, as it has applied (may lag).
    Follower,
}

impl ClusterClient {
    /// A client; nothing is fetched until first used.
    pub fn new(cfg: ClientConfig) -> Self {
        ClusterClient {
            cfg,
            map: RwLock::new(None),
            leaders: RwLock::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            next_replica: AtomicUsize::new(0),
        }
    }

    fn client(&self, addr: &str) -> Result<StorageClient<Channel>> {
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

    /// Fetches the cluster map from the first node that has one (the newest version seen
    /// wins) and caches it.
    pub async fn fetch_map(&self) -> Result<ClusterMap> {
        let mut last = String::from("no storage node configured");
        for addr in self.map_sources() {
            let mut c = match self.client(&addr) {
                Ok(c) => c,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            match c.get_cluster_map(ClusterMapRequest {}).await {
                Ok(r) if !r.get_ref().map.is_empty() => {
                    let m: ClusterMap = decode(&r.get_ref().map).map_err(|e| Error::NoMap(e.to_string()))?;
                    let mut cur = self.map.write();
                    if cur.as_ref().is_none_or(|c| c.version <= m.version) {
                        *cur = Some(Arc::new(m.clone()));
                    }
                    return Ok(m);
                }
                Ok(_) => last = format!("{addr} has no cluster map yet"),
                Err(e) => last = format!("{addr}: {}", e.message()),
            }
        }
        Err(Error::NoMap(last))
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

    /// The cached cluster map, fetched if there is none yet.
    pub async fn map(&self) -> Result<Arc<ClusterMap>> {
        if let Some(m) = self.map.read().clone() {
            return Ok(m);
        }
        self.fetch_map().await.map(Arc::new)
    }

    /// Sends a metadata command to the metadata group (through any of its replicas).
    pub async fn update_metadata(&self, command: Vec<u8>) -> Result<()> {
        let mut last = String::from("no storage node configured");
        let mut addrs = self.map_sources();
        let mut tried = 0;
        while let Some(addr) = addrs.pop() {
            tried += 1;
            if tried > 16 {
                break;
            }
            let mut c = self.client(&addr)?;
            match c.update_metadata(MetadataCommand { command: command.clone() }).await {
                Ok(r) => {
                    let r = r.into_inner();
                    if r.not_leader {
                        if !r.leader_addr.is_empty() && !addrs.contains(&r.leader_addr) {
                            addrs.push(r.leader_addr);
                        }
                        last = format!("{addr} is not the metadata leader");
                        continue;
                    }
                    return if r.error.is_empty() { Ok(()) } else { Err(Error::Invalid(r.error)) };
                }
                Err(e) => last = format!("{addr}: {}", e.message()),
            }
        }
        Err(Error::Unavailable { shard: strata_raft::META_GROUP, reason: last })
    }

    /// Writes one record to `shard` through its leader and returns what the apply did; only
    /// returns `Ok` once a quorum of the shard's replicas has the record durable. Retries
    /// across leader changes and unreachable replicas until the write timeout.
    pub async fn write_shard(&self, shard: u32, record: Vec<u8>) -> Result<ApplyOutcome> {
        let deadline = tokio::time::Instant::now() + self.cfg.write_timeout;
        let mut attempt = 0usize;
        let mut last;
        let mut hint: Option<String> = None;
        loop {
            let map = self.map().await?;
            let replicas: Vec<String> =
                map.replicas(shard).iter().filter_map(|n| map.nodes.get(n).cloned()).collect();
            if replicas.is_empty() {
                return Err(Error::Invalid(format!("no shard {shard} in the cluster map")));
            }
            let addr = hint
                .take()
                .or_else(|| self.leaders.read().get(&shard).cloned())
                .unwrap_or_else(|| replicas[attempt % replicas.len()].clone());
            attempt += 1;
            let mut c = self.client(&addr)?;
            let res = c.write(WriteRequest { shard, record: record.clone() }).await;
            match res {
                Ok(r) => {
                    let r = r.into_inner();
                    if !r.not_leader {
                        self.leaders.write().insert(shard, addr);
                        let mut rejected = [0u64; strata_tsdb::RejectReason::ALL.len()];
                        for (d, s) in rejected.iter_mut().zip(&r.rejected) {
                            *d = *s;
                        }
                        return Ok(ApplyOutcome {
                            accepted: r.accepted,
                            rejected,
                            new_series: r.new_series,
                            first_error: (!r.error.is_empty()).then_some(r.error),
                        });
                    }
                    self.leaders.write().remove(&shard);
                    last = format!("{addr} is not the leader");
                    if !r.leader_addr.is_empty() && r.leader_addr != addr {
                        hint = Some(r.leader_addr);
                        continue;
                    }
                }
                Err(e) if e.code() == tonic::Code::InvalidArgument => {
                    return Err(Error::Invalid(e.message().into()));
                }
                Err(e) => {
                    self.leaders.write().remove(&shard);
                    last = format!("{addr}: {}", e.message());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable { shard, reason: last });
            }
            // no leader known: an election is under way, or the map is stale
            tokio::time::sleep(Duration::from_millis(50 * (attempt as u64).min(10))).await;
            if attempt.is_multiple_of(4) {
                let _ = self.fetch_map().await;
            }
        }
    }

    /// Writes one record per shard concurrently; `Ok` only when every shard's write is
    /// committed, with the merged outcome.
    pub async fn write(&self, records: Vec<(u32, Vec<u8>)>) -> Result<ApplyOutcome> {
        let writes = records.into_iter().map(|(shard, rec)| self.write_shard(shard, rec));
        let mut out = ApplyOutcome::default();
        for r in futures_util::future::join_all(writes).await {
            out.merge(r?);
        }
        Ok(out)
    }

    /// Runs a read of `shard` against its replicas until one answers: the known leader
    /// first for linearizable reads (following not-leader redirects), the replicas in
    /// turn, starting at a rotating one, for follower reads. Rounds repeat (an election
    /// may be under way) until `deadline`; a query error of the shard's own (bad query,
    /// too many samples) ends the read at once.
    async fn read_shard<T, F, Fut>(
        &self,
        shard: u32,
        consistency: ReadConsistency,
        deadline: tokio::time::Instant,
        call: F,
    ) -> Result<T>
    where
        F: Fn(StorageClient<Channel>) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let mut round = 0u64;
        let mut last = String::from("no replica");
        loop {
            let map = self.map().await?;
            let mut addrs: Vec<String> =
                map.replicas(shard).iter().filter_map(|n| map.nodes.get(n).cloned()).collect();
            if addrs.is_empty() {
                return Err(Error::Invalid(format!("no shard {shard} in the cluster map")));
            }
            match consistency {
                ReadConsistency::Linearizable => {
                    if let Some(l) = self.leaders.read().get(&shard) {
                        addrs.retain(|a| a != l);
                        addrs.insert(0, l.clone());
                    }
                }
                ReadConsistency::Follower => {
                    let n = addrs.len();
                    addrs.rotate_left(self.next_replica.fetch_add(1, Ordering::Relaxed) % n);
                }
            }
            let mut i = 0;
            while i < addrs.len() && i < 8 {
                let addr = addrs[i].clone();
                i += 1;
                let attempt = tokio::time::timeout_at(deadline, call(self.client(&addr)?)).await;
                match attempt {
                    Err(_) => {
                        return Err(Error::Unavailable { shard, reason: format!("{addr}: timed out") });
                    }
                    Ok(Attempt::Done(t)) => {
                        if consistency == ReadConsistency::Linearizable {
                            self.leaders.write().insert(shard, addr);
                        }
                        return Ok(t);
                    }
                    Ok(Attempt::NotLeader(leader)) => {
                        if consistency == ReadConsistency::Linearizable {
                            self.leaders.write().remove(&shard);
                        }
                        last = format!("{addr} is not the leader");
                        if !leader.is_empty() && leader != addr && !addrs[i..].contains(&leader) {
                            addrs.insert(i, leader);
                        }
                    }
                    Ok(Attempt::Failed(s)) => {
                        if let Some(q) = query_error_of(&s) {
                            return Err(Error::Query(q));
                        }
                        if consistency == ReadConsistency::Linearizable {
                            self.leaders.write().remove(&shard);
                        }
                        last = format!("{addr}: {}", s.message());
                    }
                    Ok(Attempt::Stop(e)) => return Err(e),
                }
            }
            round += 1;
            let pause = Duration::from_millis((100 * round).min(500));
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(Error::Unavailable { shard, reason: last });
            }
            tokio::time::sleep(pause).await;
            if round.is_multiple_of(3) {
                let _ = self.fetch_map().await;
            }
        }
    }

    /// When a read started now must be done: the read timeout, or `limit` if sooner.
    pub fn read_deadline(&self, limit: Option<tokio::time::Instant>) -> tokio::time::Instant {
        let own = tokio::time::Instant::now() + self.cfg.read_timeout;
        limit.map_or(own, |l| l.min(own))
    }

    /// Reads the series of `shard` matching `matchers` with samples in `[start, end]` (ms),
    /// from the leader (linearizable) or from a replica as it has applied (follower),
    /// failing over between replicas until `deadline`. Every series received is charged
    /// to `limit` as it arrives (a retry at another replica charges again).
    pub async fn select_shard(
        &self,
        shard: u32,
        matchers: &[Matcher],
        (start, end): (i64, i64),
        consistency: ReadConsistency,
        deadline: tokio::time::Instant,
        limit: &LoadLimit,
    ) -> Result<Selected> {
        let req = SelectRequest {
            shard,
            matchers: to_wire(matchers),
            start_ms: start,
            end_ms: end,
            consistency: wire_consistency(consistency),
        };
        self.read_shard(shard, consistency, deadline, |mut c| {
            let req = req.clone();
            async move {
                let mut stream = match c.select(req).await {
                    Ok(s) => s.into_inner(),
                    Err(e) => return Attempt::Failed(e),
                };
                let mut out = Selected::default();
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(r) if r.not_leader => return Attempt::NotLeader(r.leader_addr),
                        Ok(r) => {
                            if let Err(e) = decode_series(&r.series, &mut out.bytes, &mut out.series, limit) {
                                return Attempt::Stop(e);
                            }
                        }
                        Err(e) => return Attempt::Failed(e),
                    }
                }
                Attempt::Done(out)
            }
        })
        .await
    }

    /// Evaluates pushed-down aggregations on `shard` (see `strata_promql::pushable`): for
    /// each expression the partial result series, with the evaluation's annotations. Every
    /// series received is charged to `limit` as it arrives.
    pub async fn evaluate_shard(
        &self,
        req: EvaluateRequest,
        consistency: ReadConsistency,
        deadline: tokio::time::Instant,
        limit: &LoadLimit,
    ) -> Result<Evaluated> {
        let shard = req.shard;
        let n = req.exprs.len();
        let req = EvaluateRequest { consistency: wire_consistency(consistency), ..req };
        self.read_shard(shard, consistency, deadline, |mut c| {
            let req = req.clone();
            async move {
                let mut stream = match c.evaluate(req).await {
                    Ok(s) => s.into_inner(),
                    Err(e) => return Attempt::Failed(e),
                };
                let mut out = Evaluated { results: vec![Vec::new(); n], ..Evaluated::default() };
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(r) if r.not_leader => return Attempt::NotLeader(r.leader_addr),
                        Ok(r) => {
                            out.warnings.extend(r.warnings);
                            out.infos.extend(r.infos);
                            let Some(dst) = out.results.get_mut(r.expr as usize) else {
                                return Attempt::Stop(Error::Invalid(
                                    "evaluate reply for no expression".into(),
                                ));
                            };
                            if let Err(e) = decode_series(&r.series, &mut out.bytes, dst, limit) {
                                return Attempt::Stop(e);
                            }
                        }
                        Err(e) => return Attempt::Failed(e),
                    }
                }
                Attempt::Done(out)
            }
        })
        .await
    }

    /// Series (`kind` SERIES), label names (NAMES) or values of `name` (VALUES) of `shard`.
    pub async fn labels_shard(
        &self,
        req: LabelsRequest,
        consistency: ReadConsistency,
        deadline: tokio::time::Instant,
    ) -> Result<LabelsReply> {
        let shard = req.shard;
        let req = LabelsRequest { consistency: wire_consistency(consistency), ..req };
        self.read_shard(shard, consistency, deadline, |mut c| {
            let req = req.clone();
            async move {
                match c.labels(req).await {
                    Ok(r) if r.get_ref().not_leader => Attempt::NotLeader(r.into_inner().leader_addr),
                    Ok(r) => Attempt::Done(r.into_inner()),
                    Err(e) => Attempt::Failed(e),
                }
            }
        })
        .await
    }
}

/// What one replica answered to a read.
enum Attempt<T> {
    /// The answer.
    Done(T),
    /// Not the leader (and the leader's address, if known).
    NotLeader(String),
    /// The call failed; a query error ends the read, anything else tries another replica.
    Failed(tonic::Status),
    /// The read ends with this error: the answer does not decode, or the query went over
    /// its limits while it arrived.
    Stop(Error),
}

/// Decodes streamed series into `dst`, adding their size on the wire to `bytes` and
/// charging each to the query's `limit` as it arrives (so that a query over its samples or
/// bytes stops before the rest of the answer is in memory).
fn decode_series(
    chunks: &[SeriesChunk],
    bytes: &mut u64,
    dst: &mut Vec<SeriesData>,
    limit: &LoadLimit,
) -> Result<()> {
    for c in chunks {
        *bytes += (c.labels.len() + c.samples.len() + c.histograms.len()) as u64;
        let s = series_from_wire(c)?;
        limit.charge(&s).map_err(Error::Query)?;
        dst.push(s);
    }
    Ok(())
}

fn wire_consistency(c: ReadConsistency) -> i32 {
    match c {
        ReadConsistency::Linearizable => Consistency::Linearizable as i32,
        ReadConsistency::Follower => Consistency::Follower as i32,
    }
}

/// The series a shard read returned, and the bytes they took on the wire.
#[derive(Debug, Default)]
pub struct Selected {
    /// Series sorted by labels.
    pub series: Vec<SeriesData>,
    /// Bytes of labels and chunks received.
    pub bytes: u64,
}

/// What a shard's pushed-down evaluation returned.
#[derive(Debug, Default)]
pub struct Evaluated {
    /// For each expression, the partial result series (labels and per-step points).
    pub results: Vec<Vec<SeriesData>>,
    /// Annotations of the evaluation.
    pub warnings: Vec<String>,
    /// Info annotations of the evaluation.
    pub infos: Vec<String>,
    /// Bytes of labels and chunks received.
    pub bytes: u64,
}
