//! Batched reads: a node asked for several shards at once answers for those it leads, each
//! shard's answer apart and equal to what that shard's own read returns, and refuses the
//! rest with their leader; a query reads each node once for the shards it leads, and still
//! reads every shard when its idea of the leaders is wrong.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_api::{QueryBackend, ReadOptions, ReadView};
use strata_promql::{LoadLimit, SelectHints};
use strata_proto::cluster::{EvaluateRequest, LabelsKind, LabelsRequest};
use strata_querier::{ClusterBackend, QuerierConfig, ReadConsistency, ShardReader};
use strata_tsdb::{MatchOp, Matcher};

use crate::harness::{Cluster, SERIES, SHARDS};

fn matchers() -> Vec<Matcher> {
    vec![Matcher::new(MatchOp::Equal, "__name__", "test_metric").expect("matcher")]
}

fn no_limit(reader: &ShardReader) -> (tokio::time::Instant, LoadLimit) {
    let deadline = reader.read_deadline(None);
    (deadline, LoadLimit::new(usize::MAX, usize::MAX, deadline.into_std()))
}

/// A pushed-down `sum` at the last sample written (t = 19).
fn sum_request(c: &Cluster) -> EvaluateRequest {
    let t = c.base + 19;
    EvaluateRequest {
        exprs: vec!["sum by (series) (test_metric)".into()],
        start_ms: t,
        end_ms: t,
        query_start_ms: t,
        query_end_ms: t,
        step_ms: 1_000,
        query_step_ms: 1_000,
        lookback_ms: 300_000,
        timeout_ms: 10_000,
        ..EvaluateRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batched_read_answers_for_the_shards_the_node_leads_and_names_the_leader_of_the_rest() {
    let c = Cluster::start(3).await;
    let mut acked = std::collections::BTreeSet::new();
    for t in 0..20 {
        c.write_retrying(t).await;
        acked.insert(t);
    }
    c.converge(&acked, Duration::from_secs(60)).await;
    let reader = ShardReader::new(c.client.clone());
    let all: Vec<u32> = (0..SHARDS).collect();
    let m = matchers();
    for (&id, addr) in &c.peers {
        let led: Vec<u32> = all.iter().copied().filter(|&s| c.leader(s) == Some(id)).collect();
        let (deadline, limit) = no_limit(&reader);
        let batch =
            reader.select_batch(addr, &all, &m, (i64::MIN, i64::MAX), deadline, &limit).await.expect("batch");
        let done: Vec<u32> = batch.done.iter().map(|d| d.0).collect();
        assert_eq!(done, led, "node {id} answered for other shards than those it leads");
        let rest: Vec<u32> = all.iter().copied().filter(|s| !led.contains(s)).collect();
        assert_eq!(batch.refused, rest, "node {id}");
        for &shard in &rest {
            let leader = c.leader(shard).expect("leader");
            assert_eq!(c.client.leader(shard).as_deref(), Some(c.peers[&leader].as_str()), "shard {shard}");
        }
        for (shard, selected) in batch.done {
            let (deadline, limit) = no_limit(&reader);
            let alone = reader
                .select_shard(
                    shard,
                    &m,
                    (i64::MIN, i64::MAX),
                    ReadConsistency::Linearizable,
                    deadline,
                    &limit,
                )
                .await
                .expect("select");
            assert!(!alone.series.is_empty(), "shard {shard} holds no series");
            assert_eq!(selected.series, alone.series, "shard {shard}");
            assert_eq!(selected.bytes, alone.bytes, "shard {shard}");
        }
        let (deadline, limit) = no_limit(&reader);
        let batch =
            reader.evaluate_batch(addr, &all, sum_request(&c), deadline, &limit).await.expect("evaluate");
        assert_eq!(batch.done.iter().map(|d| d.0).collect::<Vec<_>>(), led, "node {id}");
        for (shard, evaluated) in batch.done {
            let (deadline, limit) = no_limit(&reader);
            let req = EvaluateRequest { shard, ..sum_request(&c) };
            let alone = reader
                .evaluate_shard(req, ReadConsistency::Linearizable, deadline, &limit)
                .await
                .expect("evaluate");
            assert!(!alone.results[0].is_empty(), "shard {shard} evaluated to nothing");
            assert_eq!(evaluated.results, alone.results, "shard {shard}");
        }
    }
    for (&id, addr) in &c.peers {
        let led: Vec<u32> = all.iter().copied().filter(|&s| c.leader(s) == Some(id)).collect();
        let req = LabelsRequest {
            kind: LabelsKind::Values as i32,
            name: "series".into(),
            matchers: strata_cluster::to_wire(&m),
            start_ms: i64::MIN,
            end_ms: i64::MAX,
            ..LabelsRequest::default()
        };
        let batch =
            reader.labels_batch(addr, &all, req.clone(), reader.read_deadline(None)).await.expect("labels");
        assert_eq!(batch.done.iter().map(|d| d.0).collect::<Vec<_>>(), led, "node {id}");
        for (shard, part) in batch.done {
            let alone = reader
                .labels_shard(
                    LabelsRequest { shard, ..req.clone() },
                    ReadConsistency::Linearizable,
                    reader.read_deadline(None),
                )
                .await
                .expect("labels");
            assert!(!alone.values.is_empty(), "shard {shard} has no values");
            assert_eq!(part.values, alone.values, "shard {shard}");
        }
    }
    // a batch naming a shard twice, or more shards than the cluster has, is refused whole
    let (deadline, limit) = no_limit(&reader);
    let twice = reader.select_batch(&c.peers[&1], &[0, 0], &m, (0, 1), deadline, &limit).await;
    assert!(twice.is_ok_and(|b| b.done.is_empty() && b.refused == [0, 0]), "a repeated shard was read");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_reads_each_leader_once_and_every_shard_when_the_leaders_it_knows_are_wrong() {
    let c = Cluster::start(3).await;
    for t in 0..5 {
        c.write_retrying(t).await;
    }
    let backend = ClusterBackend::new(c.client.clone(), QuerierConfig::default());
    let select = || on_view(backend.clone(), |v| v.select(&matchers(), &ALL).expect("select"));
    let values = || {
        on_view(backend.clone(), |v| {
            v.label_values("series", &matchers(), i64::MIN, i64::MAX).expect("values")
        })
    };
    let reads = || backend.stats().reads.load(Ordering::Relaxed);
    // the first query learns the leaders, one read per shard
    assert_eq!(select().await.len(), SERIES);
    let leaders: std::collections::BTreeSet<_> = (0..SHARDS).filter_map(|s| c.leader(s)).collect();
    let before = reads();
    assert_eq!(select().await.len(), SERIES);
    assert_eq!(reads() - before, leaders.len() as u64, "one read per leading node, {SHARDS} shards");
    let before = reads();
    assert_eq!(values().await.len(), SERIES);
    assert_eq!(reads() - before, leaders.len() as u64, "one lookup per leading node, {SHARDS} shards");
    // every shard believed led by node 1: it answers for its own, the rest are read alone
    for shard in 0..SHARDS {
        c.client.set_leader(shard, Some(c.peers[&1].clone()));
    }
    let series = select().await;
    assert_eq!(series.len(), SERIES, "a shard was missed");
    let mut sorted = series.clone();
    sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
    assert_eq!(series, sorted, "the merged answer is sorted by labels");
    for shard in 0..SHARDS {
        let leader = c.leader(shard).expect("leader");
        assert_eq!(c.client.leader(shard).as_deref(), Some(c.peers[&leader].as_str()), "shard {shard}");
        c.client.set_leader(shard, Some(c.peers[&1].clone()));
    }
    assert_eq!(values().await.len(), SERIES, "a shard was missed");
    c.shutdown().await;
}

/// The whole time range.
const ALL: SelectHints = SelectHints { start: i64::MIN, end: i64::MAX, step: 0, range: 0, func: None };

/// Runs `f` on a view of `backend` (a query of 20 s at most) on the blocking pool, as the
/// HTTP API does.
async fn on_view<T: Send + 'static>(
    backend: ClusterBackend,
    f: impl FnOnce(&dyn ReadView) -> T + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(move || {
        let opts = ReadOptions {
            partial_response: false,
            deadline: Instant::now() + Duration::from_secs(20),
            max_samples: usize::MAX,
            max_bytes: usize::MAX,
            canceled: Arc::new(AtomicBool::new(false)),
        };
        f(backend.view(opts).expect("a view").as_ref())
    })
    .await
    .expect("query")
}
