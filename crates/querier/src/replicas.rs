//! Shard reads with fail-over: one shard's selection, pushed-down evaluation or label
//! lookup asked of its replicas until one answers — the leader first (linearizable) or
//! from a rotating replica (follower) — with the answer decoded as it streams in and
//! charged to the query's limits.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use strata_cluster::{ClusterClient, Error, Result, not_reached, query_error_of, series_from_wire, to_wire};
use strata_promql::LoadLimit;
use strata_proto::cluster::storage_client::StorageClient;
use strata_proto::cluster::{
    Consistency, EvaluateRequest, LabelsReply, LabelsRequest, SelectRequest, SeriesChunk,
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
