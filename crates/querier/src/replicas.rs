//! Shard reads with fail-over: one shard's selection, pushed-down evaluation or label
//! lookup asked of its replicas until one answers — the leader first (linearizable) or
//! from a rotating replica (follower) — with the answer decoded as it streams in and
//! charged to the query's limits. Linearizable reads of several shards whose leader is one
//! node go to it in one call ([`ShardReader::leader_groups`], the `*_batch` reads): one
//! round trip per node instead of one per shard, each shard's answer kept apart; what the
//! node does not serve is read shard by shard.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use strata_cluster::{
    ClusterClient, Error, Result, ShardReply, not_reached, query_error_of, series_from_wire, to_wire,
};
use strata_promql::LoadLimit;
use strata_proto::cluster::storage_client::StorageClient;
use strata_proto::cluster::{
    Consistency, EvaluateReply, EvaluateRequest, LabelsReply, LabelsRequest, SelectRequest, SeriesChunk,
    ShardRefused,
};
use strata_tsdb::{Matcher, SeriesData};
use tonic::transport::Channel;

/// How a shard read picks its replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// The leader, once its lease (or, stale, a ReadIndex round) confirms it: sees every
    /// acknowledged write.
    Linearizable,
    /// The first replica that answers, as it has applied (may lag).
    Follower,
}

/// Reads shards through a [`ClusterClient`]'s map, channels and leader cache.
#[derive(Debug)]
pub struct ShardReader {
    client: Arc<ClusterClient>,
    /// Where follower reads start among a shard's replicas (spreads the load).
    next_replica: AtomicUsize,
}

impl ShardReader {
    /// Reads through `client`.
    pub fn new(client: Arc<ClusterClient>) -> Self {
        ShardReader { client, next_replica: AtomicUsize::new(0) }
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
            let map = self.client.map().await?;
            let mut addrs: Vec<String> =
                map.replicas(shard).iter().filter_map(|n| map.nodes.get(n).cloned()).collect();
            if addrs.is_empty() {
                return Err(Error::Invalid(format!("no shard {shard} in the cluster map")));
            }
            match consistency {
                ReadConsistency::Linearizable => {
                    if let Some(l) = self.client.leader(shard) {
                        addrs.retain(|a| *a != l);
                        addrs.insert(0, l);
                    }
                }
                ReadConsistency::Follower => {
                    let n = addrs.len();
                    addrs.rotate_left(self.next_replica.fetch_add(1, Ordering::Relaxed) % n);
                }
            }
            // a replica that just failed to answer is asked last
            self.client.reachable_first(&mut addrs);
            let mut i = 0;
            while i < addrs.len() && i < 8 {
                let addr = addrs[i].clone();
                i += 1;
                let attempt = tokio::time::timeout_at(deadline, call(self.client.storage(&addr)?)).await;
                match attempt {
                    Err(_) => {
                        return Err(Error::Unavailable { shard, reason: format!("{addr}: timed out") });
                    }
                    Ok(Attempt::Done(t)) => {
                        self.client.mark_reachable(&addr);
                        if consistency == ReadConsistency::Linearizable {
                            self.client.set_leader(shard, Some(addr));
                        }
                        return Ok(t);
                    }
                    Ok(Attempt::NotLeader(leader)) => {
                        self.client.mark_reachable(&addr);
                        if consistency == ReadConsistency::Linearizable {
                            self.client.set_leader(shard, None);
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
                        if not_reached(&s) {
                            self.client.mark_unreachable(&addr);
                        }
                        if consistency == ReadConsistency::Linearizable {
                            self.client.set_leader(shard, None);
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
                let _ = self.client.fetch_map().await;
            }
        }
    }

    /// Splits `shards` by the node a linearizable read of each asks first — its leader as
    /// last seen, unless that node failed to answer lately — into groups of two or more
    /// shards with one leader, and the shards read alone (no leader known, or the only
    /// one of their leader's).
    pub fn leader_groups(
        &self,
        shards: impl IntoIterator<Item = u32>,
    ) -> (Vec<(String, Vec<u32>)>, Vec<u32>) {
        let mut by_leader: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut alone = Vec::new();
        for shard in shards {
            match self.client.leader(shard) {
                Some(addr) if !self.client.is_unreachable(&addr) => {
                    by_leader.entry(addr).or_default().push(shard)
                }
                _ => alone.push(shard),
            }
        }
        let mut groups = Vec::new();
        for (addr, group) in by_leader {
            if group.len() > 1 {
                groups.push((addr, group));
            } else {
                alone.extend(group);
            }
        }
        (groups, alone)
    }

    /// One call to `addr` reading `shards` at once, linearizably (see
    /// [`ShardReader::leader_groups`]), without fail-over: the shards it does not serve —
    /// every shard when the call fails other than by a query error — come back
    /// [`Batch::refused`], to be read alone. `answer` folds each reply into the answers
    /// by shard; the first reply is the node's header listing the shards it refuses.
    async fn read_batch<T, R, F, Fut, S>(
        &self,
        addr: &str,
        shards: &[u32],
        deadline: tokio::time::Instant,
        call: F,
        mut answer: impl FnMut(&mut BTreeMap<u32, T>, R) -> Result<()>,
    ) -> Result<Batch<T>>
    where
        T: Default,
        F: FnOnce(StorageClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<S>, tonic::Status>>,
        S: futures_util::Stream<Item = std::result::Result<R, tonic::Status>> + Unpin,
        R: ShardReply,
    {
        let all = || Batch { done: Vec::new(), refused: shards.to_vec() };
        let read = async {
            let mut stream = match call(self.client.storage(addr)?).await {
                Ok(s) => {
                    self.client.note_reply(s.metadata());
                    s.into_inner()
                }
                Err(e) => return Ok(Err(e)),
            };
            let mut done: BTreeMap<u32, T> = BTreeMap::new();
            let refused = match stream.next().await {
                Some(Ok(mut header)) if header.is_batch_header() => header.take_refused(),
                // not a node that reads batches: every shard alone
                Some(Ok(_)) | None => {
                    let refused = shards
                        .iter()
                        .map(|&shard| ShardRefused { shard, ..ShardRefused::default() })
                        .collect();
                    return Ok(Ok((done, refused)));
                }
                Some(Err(e)) => return Ok(Err(e)),
            };
            for &shard in shards {
                if !refused.iter().any(|r| r.shard == shard) {
                    done.insert(shard, T::default());
                }
            }
            while let Some(item) = stream.next().await {
                match item {
                    Ok(r) if !done.contains_key(&r.shard()) => {
                        return Err(Error::Invalid(format!(
                            "a batched read answered for shard {}",
                            r.shard()
                        )));
                    }
                    Ok(r) => answer(&mut done, r)?,
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok((done, refused)))
        };
        let status = match tokio::time::timeout_at(deadline, read).await {
            Err(_) => {
                let shard = shards.first().copied().unwrap_or(0);
                return Err(Error::Unavailable { shard, reason: format!("{addr}: timed out") });
            }
            Ok(r) => r?,
        };
        match status {
            Ok((done, refused)) => {
                self.client.mark_reachable(addr);
                for r in &refused {
                    let hint = Some(r.leader_addr.clone()).filter(|l| !l.is_empty() && l != addr);
                    self.client.set_leader(r.shard, hint);
                }
                Ok(Batch {
                    done: done.into_iter().collect(),
                    refused: refused.into_iter().map(|r| r.shard).collect(),
                })
            }
            Err(s) => {
                if let Some(q) = query_error_of(&s) {
                    return Err(Error::Query(q));
                }
                if not_reached(&s) {
                    self.client.mark_unreachable(addr);
                }
                for &shard in shards {
                    self.client.set_leader(shard, None);
                }
                Ok(all())
            }
        }
    }

    /// [`ShardReader::select_shard`] of each of `shards` in one linearizable call to
    /// `addr` ([`ShardReader::read_batch`]).
    pub async fn select_batch(
        &self,
        addr: &str,
        shards: &[u32],
        matchers: &[Matcher],
        (start, end): (i64, i64),
        deadline: tokio::time::Instant,
        limit: &LoadLimit,
    ) -> Result<Batch<Selected>> {
        let req = SelectRequest {
            shard: shards.first().copied().unwrap_or(0),
            matchers: to_wire(matchers),
            start_ms: start,
            end_ms: end,
            consistency: wire_consistency(ReadConsistency::Linearizable),
            shards: shards.to_vec(),
        };
        self.read_batch(
            addr,
            shards,
            deadline,
            |mut c| async move { c.select(req).await },
            |done, r| {
                let out: &mut Selected = done.entry(r.shard).or_default();
                decode_series(&r.series, &mut out.bytes, &mut out.series, limit)
            },
        )
        .await
    }

    /// [`ShardReader::evaluate_shard`] of each of `shards` in one linearizable call to
    /// `addr` ([`ShardReader::read_batch`]); `req` as for one shard.
    pub async fn evaluate_batch(
        &self,
        addr: &str,
        shards: &[u32],
        req: EvaluateRequest,
        deadline: tokio::time::Instant,
        limit: &LoadLimit,
    ) -> Result<Batch<Evaluated>> {
        let n = req.exprs.len();
        let req = EvaluateRequest {
            shard: shards.first().copied().unwrap_or(0),
            consistency: wire_consistency(ReadConsistency::Linearizable),
            shards: shards.to_vec(),
            ..req
        };
        self.read_batch(
            addr,
            shards,
            deadline,
            |mut c| async move { c.evaluate(req).await },
            |done, r| {
                let out: &mut Evaluated = done.entry(r.shard).or_default();
                if out.results.is_empty() {
                    out.results = vec![Vec::new(); n];
                }
                add_evaluated(out, r, limit)
            },
        )
        .await
    }

    /// [`ShardReader::labels_shard`] of each of `shards` in one linearizable call to
    /// `addr` ([`ShardReader::read_batch`]; the node's one reply is read as its header,
    /// then a part per shard); `req` as for one shard.
    pub async fn labels_batch(
        &self,
        addr: &str,
        shards: &[u32],
        req: LabelsRequest,
        deadline: tokio::time::Instant,
    ) -> Result<Batch<LabelsReply>> {
        let req = LabelsRequest {
            shard: shards.first().copied().unwrap_or(0),
            consistency: wire_consistency(ReadConsistency::Linearizable),
            shards: shards.to_vec(),
            ..req
        };
        let call = |mut c: StorageClient<Channel>| async move {
            let reply = c.labels(req).await?;
            Ok(reply.map(|mut header| {
                let parts = std::mem::take(&mut header.parts);
                futures_util::stream::iter(std::iter::once(header).chain(parts).map(Ok))
            }))
        };
        self.read_batch(addr, shards, deadline, call, |done, r: LabelsReply| {
            let out: &mut LabelsReply = done.entry(r.shard).or_default();
            out.series.extend(r.series);
            out.values.extend(r.values);
            Ok(())
        })
        .await
    }

    /// When a read started now must be done: the read timeout, or `limit` if sooner.
    pub fn read_deadline(&self, limit: Option<tokio::time::Instant>) -> tokio::time::Instant {
        let own = tokio::time::Instant::now() + self.client.config().read_timeout;
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
            shards: Vec::new(),
        };
        self.read_shard(shard, consistency, deadline, |mut c| {
            let (req, client) = (req.clone(), self.client.clone());
            async move {
                let mut stream = match c.select(req).await {
                    Ok(s) => {
                        client.note_reply(s.metadata());
                        s.into_inner()
                    }
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
            let (req, client) = (req.clone(), self.client.clone());
            async move {
                let mut stream = match c.evaluate(req).await {
                    Ok(s) => {
                        client.note_reply(s.metadata());
                        s.into_inner()
                    }
                    Err(e) => return Attempt::Failed(e),
                };
                let mut out = Evaluated { results: vec![Vec::new(); n], ..Evaluated::default() };
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(r) if r.not_leader => return Attempt::NotLeader(r.leader_addr),
                        Ok(r) => {
                            if let Err(e) = add_evaluated(&mut out, r, limit) {
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
        let req = LabelsRequest { consistency: wire_consistency(consistency), shards: Vec::new(), ..req };
        self.read_shard(shard, consistency, deadline, |mut c| {
            let (req, client) = (req.clone(), self.client.clone());
            async move {
                let answer = c.labels(req).await;
                if let Ok(r) = &answer {
                    client.note_reply(r.metadata());
                }
                match answer {
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
        *bytes += (c.labels.len() + c.samples.len() + c.histograms.len()) as u64
            + c.stored.iter().map(Vec::len).sum::<usize>() as u64;
        let s = series_from_wire(c)?;
        limit.charge(&s).map_err(Error::Query)?;
        dst.push(s);
    }
    Ok(())
}

/// Adds one evaluate reply's series and annotations to `out` (its `results` one list per
/// expression), charging each series to the query's `limit`.
fn add_evaluated(out: &mut Evaluated, r: EvaluateReply, limit: &LoadLimit) -> Result<()> {
    out.warnings.extend(r.warnings);
    out.infos.extend(r.infos);
    let Some(dst) = out.results.get_mut(r.expr as usize) else {
        return Err(Error::Invalid("evaluate reply for no expression".into()));
    };
    decode_series(&r.series, &mut out.bytes, dst, limit)
}

/// What one call reading several shards returned.
#[derive(Debug)]
pub struct Batch<T> {
    /// The answers of the shards the node served, in shard order.
    pub done: Vec<(u32, T)>,
    /// The shards it did not serve (not their leader, no replica there, or the call
    /// failed): to be read alone.
    pub refused: Vec<u32>,
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
