//! Writes the seed corpus of every fuzz target from real inputs, into
//! `corpus/<target>/seed-*` (run from `fuzz/`: `cargo run --example seeds`; then minimise
//! with `cargo fuzz cmin`, see docs/fuzzing.md):
//!
//! * `remote_write`: bodies of the benchmark's node_exporter fleet (`strata-bench`), snappy
//!   and raw, plus one with metadata and a native histogram;
//! * `promql`: the dashboard workload and recording rules (`../shared/workloads`) and the
//!   queries of Prometheus's PromQL test files (`../shared/conformance/promqltest`);
//! * `tsdb_decode`: log records, chunks of every format and value mode, histograms and
//!   labels, made by strata-tsdb's encoders;
//! * `raft_message`: the messages three in-process nodes of one shard group exchange while
//!   electing a leader, replicating writes and bringing a lagging node up with a snapshot;
//! * `textparse`: exposition bodies of the benchmark's synthetic target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prost::Message;
use strata_bench::fleet::{Fleet, FleetConfig};
use strata_proto::prometheus as pb;
use strata_raft::{
    CallFuture, RaftConfig, RaftNode, Request, RpcKind, ShardApplier, Transport, TransportError, WriteHealth,
};
use strata_tsdb::chunk::{self, XorAppender};
use strata_tsdb::record::RecordBuilder;
use strata_tsdb::{Db, DbConfig, FloatHistogram, Labels, LogStats, MemEngine, SeriesBatch, SystemClock};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Writes `seeds` as `corpus/<target>/seed-<n>`.
fn write(target: &str, seeds: &[Vec<u8>]) -> Res<()> {
    let dir = PathBuf::from("corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:04}")), s)?;
    }
    println!("{target}: {} seeds", seeds.len());
    Ok(())
}

fn remote_write() -> Vec<Vec<u8>> {
    let mut fleet = Fleet::new(FleetConfig { hosts: 2, series_per_host: 20, ..FleetConfig::default() });
    let mut out = Vec::new();
    for i in 0..3 {
        let series = fleet.scrape(1_700_000_000_000 + i * 15_000);
        let raw = pb::WriteRequest { timeseries: series.clone(), metadata: vec![] }.encode_to_vec();
        out.push(strata_bench::fleet::encode(series));
        out.push(raw);
    }
    let hist = pb::Histogram {
        count: Some(pb::histogram::Count::CountInt(3)),
        sum: 1.5,
        schema: 0,
        zero_threshold: 1e-128,
        zero_count: Some(pb::histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![pb::BucketSpan { offset: 0, length: 2 }],
        positive_deltas: vec![1, 0],
        timestamp: 1_700_000_000_000,
        ..pb::Histogram::default()
    };
    let req = pb::WriteRequest {
        timeseries: vec![pb::TimeSeries {
            labels: vec![pb::Label { name: "__name__".into(), value: "latency_seconds".into() }],
            samples: vec![],
            exemplars: vec![],
            histograms: vec![hist],
        }],
        metadata: vec![pb::MetricMetadata {
            r#type: 1,
            metric_family_name: "latency_seconds".into(),
            help: "Latency.".into(),
            unit: "seconds".into(),
        }],
    };
    let raw = req.encode_to_vec();
    out.push(snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default());
    out.push(raw);
    out
}

/// The query of a promqltest `eval` line (`eval instant at T q`, `eval range from A to B
/// step S q`, with any `_fail`/`_warn`/`_ordered`… suffix).
fn eval_query(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("eval")?;
    let rest = rest.trim_start_matches(|c: char| c != ' ').trim_start();
    let skip = if rest.starts_with("instant") { 3 } else { 7 };
    let mut s = rest;
    for _ in 0..skip {
        s = s.trim_start().split_once(' ')?.1;
    }
    Some(s.trim())
}

fn promql(shared: &Path) -> Res<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for (_, q) in strata_bench::dashboards::load(&shared.join("workloads/dashboards"))? {
        out.push(strata_bench::dashboards::substitute(&q, "1m0s").into_bytes());
    }
    for f in std::fs::read_dir(shared.join("workloads/rules"))? {
        for line in std::fs::read_to_string(f?.path())?.lines() {
            if let Some(q) = line.trim().strip_prefix("expr:") {
                out.push(q.trim().trim_matches(|c| c == '|' || c == '>').trim().as_bytes().to_vec());
            }
        }
    }
    let mut tests: Vec<PathBuf> = std::fs::read_dir(shared.join("conformance/promqltest"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    tests.sort();
    for f in tests {
        for line in std::fs::read_to_string(f)?.lines() {
            if let Some(q) = eval_query(line) {
                out.push(q.as_bytes().to_vec());
            }
        }
    }
    out.retain(|q| !q.is_empty());
    out.sort();
    out.dedup();
    Ok(out)
}

fn tsdb_decode() -> Vec<Vec<u8>> {
    let h = FloatHistogram {
        count: 6.0,
        sum: 3.5,
        zero_count: 1.0,
        positive: vec![(0, 2.0), (3, 3.0)],
        negative: vec![(-1, 1.0)],
        ..FloatHistogram::default()
    };
    let labels = Labels::from_unchecked([("__name__", "m"), ("job", "a")].into_iter());
    let t0 = 1_700_000_000_000;
    let regular: Vec<(i64, f64)> = (0..120).map(|i| (t0 + i * 15_000, i as f64)).collect();
    let decimals: Vec<(i64, f64)> =
        (0..120).map(|i| (t0 + i * 15_000 + i % 3, 0.25 * i as f64 + 0.1)).collect();
    let floats: Vec<(i64, f64)> = (0..120).map(|i| (t0 + i * 15_001, (i as f64).sqrt())).collect();
    let constant: Vec<(i64, f64)> = (0..20).map(|i| (t0 + i * 60_000, 1.0)).collect();
    let stale = vec![(t0, 1.0), (t0 + 15_000, f64::from_bits(0x7ff0_0000_0000_0002))];
    let mut out = Vec::new();
    for samples in [&regular, &decimals, &floats, &constant, &stale] {
        out.push(chunk::encode_packed(samples));
        let mut x = XorAppender::new();
        samples.iter().for_each(|&(t, v)| x.append(t, v));
        out.push(x.to_bytes());
    }
    out.push(chunk::encode_histograms(&[(t0, h.clone()), (t0 + 15_000, FloatHistogram::default())]));
    let mut one = Vec::new();
    h.encode(&mut one);
    out.push(one);
    out.push(labels.encode());
    let mut r = RecordBuilder::default();
    r.add(&labels.encode(), &regular[..10]);
    r.add(&Labels::from_unchecked([("__name__", "up")].into_iter()).encode(), &stale);
    r.add_histograms(&labels.encode(), &[(t0, h)]);
    out.push(r.finish());
    let mut r = RecordBuilder::default();
    r.add(&labels.encode(), &floats[..5]);
    out.push(r.finish());
    out
}

/// Routes messages between in-process nodes, recording each as a `raft_message` input.
#[derive(Default)]
struct Recorder {
    nodes: OnceLock<Vec<Arc<RaftNode>>>,
    /// Nodes cut off (by id).
    down: Mutex<Vec<u64>>,
    seen: Mutex<Vec<Vec<u8>>>,
}

/// A node's handle on the shared [`Recorder`].
struct Net(Arc<Recorder>);

impl Transport for Net {
    fn call(&self, target: u64, group: u32, kind: RpcKind, payload: Vec<u8>) -> CallFuture {
        let this = self.0.clone();
        Box::pin(async move {
            let node = this.nodes.get().and_then(|n| n.get(target as usize - 1)).cloned();
            let down = this.down.lock().map(|d| d.contains(&target)).unwrap_or(true);
            let (Some(node), false) = (node, down) else {
                return Err(TransportError::Unreachable(target, "down".into()));
            };
            let mut msg = vec![kind.code() as u8];
            msg.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            msg.extend_from_slice(&payload);
            if let Ok(mut seen) = this.seen.lock() {
                seen.push(msg);
            }
            Ok(node.handle(group, kind, &payload).await)
        })
    }
}

/// One record of `n` series with a sample each at minute `i`.
fn request(i: i64, n: usize) -> Request {
    let mut b = SeriesBatch::new(1);
    for h in 0..n {
        let l = Labels::from_unchecked([("__name__", "m"), ("host", &*format!("h{h}"))].into_iter());
        b.add_encoded(&l.encode(), [(1_700_000_000_000 + i * 60_000, i as f64)]);
    }
    Request(b.into_records().remove(0).1)
}

async fn raft_message() -> Res<Vec<Vec<u8>>> {
    let rec = Arc::new(Recorder::default());
    rec.down.lock().map_err(|e| e.to_string())?.push(3);
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let kv = Arc::new(MemEngine::new());
        let cfg = RaftConfig {
            node_id: id,
            heartbeat_ms: 50,
            election_ms: (150, 300),
            snapshot_entries: 5,
            keep_entries: 0,
        };
        let health = Arc::new(WriteHealth::new(None, 0));
        let node = RaftNode::new(
            cfg,
            kv.clone(),
            Arc::new(Net(rec.clone())),
            Arc::new(LogStats::default()),
            health,
        )?;
        let db = Db::open_replicated(
            kv.clone(),
            DbConfig { shards: 1, ..DbConfig::default() },
            Arc::new(SystemClock),
        )?;
        let staging = std::env::temp_dir().join(format!("strata-seeds-{}-{id}", std::process::id()));
        node.add_group(0, Box::new(ShardApplier::new(db, kv, 0, staging))).await?;
        nodes.push(node);
    }
    rec.nodes.set(nodes.clone()).map_err(|_| "nodes set twice")?;
    let members: BTreeMap<u64, String> = (1..=3).map(|id| (id, format!("node-{id}"))).collect();
    nodes[0].initialize(0, &members).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        if let Some(l) = nodes[0].status(0)?.leader {
            break nodes[l as usize - 1].clone();
        }
        if Instant::now() > deadline {
            return Err("no leader".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for i in 0..60 {
        leader.propose(0, request(i, 3)).await?;
    }
    // the lagging node's entries are purged behind a snapshot: it gets the snapshot
    leader.snapshot(0).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader.status(0)?.purged == 0 && Instant::now() < deadline {
        leader.update_purge_floors();
        leader.propose(0, request(100, 1)).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rec.down.lock().map_err(|e| e.to_string())?.clear();
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes[2].status(0)?.applied < leader.status(0)?.applied && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in &nodes {
        n.shutdown(false).await;
    }
    let seen = std::mem::take(&mut *rec.seen.lock().map_err(|e| e.to_string())?);
    // every snapshot, and up to 40 of each other kind (heartbeats are alike)
    let mut out = Vec::new();
    for kind in RpcKind::ALL {
        let of_kind: Vec<Vec<u8>> = seen.iter().filter(|m| m[0] == kind.code() as u8).cloned().collect();
        let keep = if kind == RpcKind::Snapshot { of_kind.len() } else { 40 };
        println!("raft_message: {} {kind:?} messages seen", of_kind.len());
        out.extend(of_kind.into_iter().take(keep));
    }
    Ok(out)
}

fn textparse() -> Vec<Vec<u8>> {
    (0..3).map(|i| strata_bench::exposition::synthetic_body(20, i)).collect()
}

fn main() -> Res<()> {
    let shared = std::env::args().nth(1).map_or_else(|| PathBuf::from("../../shared"), PathBuf::from);
    write("remote_write", &remote_write())?;
    write("promql", &promql(&shared)?)?;
    write("tsdb_decode", &tsdb_decode())?;
    write("textparse", &textparse())?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    write("raft_message", &rt.block_on(raft_message())?)?;
    Ok(())
}
