//! Storage faults injected under a one-node shard group (`FaultyEngine` over the memory
//! engine): a failed checkpoint fails the snapshot and keeps the log; a failed log write
//! refuses writes while reads go on, and writes resume by themselves once it clears; a
//! failed read during apply stops the group instead of letting the replica diverge. After
//! each, every acknowledged sample is there, also after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_raft::{
    CallFuture, Error, RaftConfig, RaftNode, Request, RpcKind, ShardApplier, Transport, TransportError,
};
use strata_tsdb::kv::testing::FaultyEngine;
use strata_tsdb::{
    Cf, Db, DbConfig, KvEngine, Labels, LogStats, MatchOp, Matcher, MemEngine, SeriesBatch, SystemClock,
};

/// A node alone in its groups never sends a message.
struct Nowhere;

impl Transport for Nowhere {
    fn call(&self, target: u64, _group: u32, _kind: RpcKind, _payload: Vec<u8>) -> CallFuture {
        Box::pin(async move { Err(TransportError::Unreachable(target, "no peers".into())) })
    }
}

const T0: i64 = 1_700_000_000_000;
const SHARDS: u32 = 1;

struct Node {
    raft: Arc<RaftNode>,
    db: Arc<Db>,
}

async fn start(kv: Arc<dyn KvEngine>, fresh: bool) -> Node {
    // no entry kept behind a snapshot: a snapshot purges the log at once
    let cfg = RaftConfig {
        node_id: 1,
        heartbeat_ms: 50,
        election_ms: (150, 300),
        keep_entries: 0,
        ..RaftConfig::default()
    };
    let health = Arc::new(strata_raft::WriteHealth::new(None, 0));
    let raft = RaftNode::new(cfg, kv.clone(), Arc::new(Nowhere), Arc::new(LogStats::default()), health)
        .expect("raft node");
    let db = Db::open_replicated(
        kv.clone(),
        DbConfig { shards: SHARDS, ..DbConfig::default() },
        Arc::new(SystemClock),
    )
    .expect("db");
    raft.add_group(0, Box::new(ShardApplier::new(db.clone(), kv, 0))).await.expect("group");
    if fresh {
        raft.initialize(0, &BTreeMap::from([(1, "here".to_string())])).await.expect("initialize");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while raft.status(0).expect("status").leader != Some(1) {
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Node { raft, db }
}

/// One record of 4 series with samples at minutes `from..from + n`.
fn record(from: i64, n: i64) -> Request {
    let mut b = SeriesBatch::new(SHARDS);
    for h in 0..4 {
        let l =
            Labels::from_pairs([("__name__", "m".to_string()), ("host", format!("h{h}"))]).expect("labels");
        let samples: Vec<(i64, f64)> = (from..from + n).map(|i| (T0 + i * 60_000, i as f64)).collect();
        b.add_encoded(&l.encode(), &samples);
    }
    let mut recs = b.into_records();
    Request(recs.remove(0).1)
}

/// The minutes of host h0's samples.
fn minutes(db: &Db) -> Vec<i64> {
    let m = Matcher::new(MatchOp::Equal, "host", "h0").expect("matcher");
    let got: Vec<_> = db.select(&[m], i64::MIN, i64::MAX).collect::<Result<_, _>>().expect("select");
    got.first().map_or_else(Vec::new, |s| s.samples.iter().map(|(t, _)| (t - T0) / 60_000).collect())
}

async fn write(node: &Node, from: i64, n: i64) -> Result<u64, Error> {
    node.raft.propose(0, record(from, n)).await.map(|r| r.accepted)
}

/// Retries `write` while the node heals itself (what a remote-write sender does on 503).
async fn write_until_accepted(node: &Node, from: i64, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        node.raft.maintain_health().await;
        match write(node, from, n).await {
            Ok(a) => {
                assert_eq!(a, 4 * n as u64);
                return;
            }
            Err(e) => assert!(Instant::now() < deadline, "writes did not resume: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn restart(node: Node, mem: Arc<MemEngine>) -> Node {
    node.raft.shutdown(false).await;
    drop(node);
    start(mem, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_checkpoint_fails_the_snapshot_and_keeps_the_log() {
    let mem = Arc::new(MemEngine::new());
    let kv = Arc::new(FaultyEngine::new(mem.clone()));
    let node = start(kv.clone(), true).await;
    for i in 0..10 {
        write(&node, i * 10, 10).await.expect("write");
    }
    let applied = node.raft.status(0).expect("status").applied;
    // the checkpoint's chunks fail; the log's appends pass
    kv.fail_writes(0, Some(Cf::Chunks));
    node.raft.snapshot(0).await.expect("trigger");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(kv.failures() > 0, "the checkpoint was tried");
    let st = node.raft.status(0).expect("status");
    assert_eq!(st.purged, 0, "no snapshot may claim what was not written: the log stays");
    write(&node, 100, 10).await.expect("the group goes on");
    assert_eq!(minutes(&node.db), (0..110).collect::<Vec<_>>());
    kv.heal();
    node.raft.snapshot(0).await.expect("trigger");
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.raft.status(0).expect("status").purged < applied {
        assert!(Instant::now() < deadline, "no snapshot once healed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let node = restart(node, mem).await;
    assert_eq!(minutes(&node.db), (0..110).collect::<Vec<_>>(), "after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_log_write_refuses_writes_until_it_clears() {
    let mem = Arc::new(MemEngine::new());
    let kv = Arc::new(FaultyEngine::new(mem.clone()));
    let node = start(kv.clone(), true).await;
    for i in 0..5 {
        write(&node, i * 10, 10).await.expect("write");
    }
    kv.fail_writes(0, None);
    assert!(write(&node, 50, 10).await.is_err(), "a write whose log append failed is not acknowledged");
    node.raft.maintain_health().await;
    match write(&node, 50, 10).await {
        Err(Error::Unavailable(why)) => {
            assert!(why.starts_with("storage write failed: "), "{why}");
            assert!(why.contains("No space left on device"), "{why}");
            assert!(why.ends_with("not accepting writes until it clears"), "{why}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // reads go on
    assert_eq!(minutes(&node.db), (0..50).collect::<Vec<_>>());
    kv.heal();
    write_until_accepted(&node, 50, 10).await;
    write(&node, 60, 10).await.expect("write");
    assert_eq!(minutes(&node.db), (0..70).collect::<Vec<_>>());
    let node = restart(node, mem).await;
    assert_eq!(minutes(&node.db), (0..70).collect::<Vec<_>>(), "after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_during_apply_stops_the_group_instead_of_diverging() {
    let mem = Arc::new(MemEngine::new());
    let kv = Arc::new(FaultyEngine::new(mem.clone()));
    let node = start(kv.clone(), true).await;
    write(&node, 100, 10).await.expect("write");
    node.raft.checkpoint_all(Duration::from_secs(10)).await;
    // the shard as after a restart: its series on disk, their newest sample not in memory
    node.db.reload_shard(0).expect("reload");
    kv.fail_reads(0, Some(Cf::Chunks));
    // older than the newest stored sample: out of order, when the apply can read it
    assert!(write(&node, 50, 10).await.is_err(), "the apply failed");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match write(&node, 50, 10).await {
            Err(Error::Unavailable(why)) => {
                assert!(why.contains("stopped on a storage error"), "{why}");
                break;
            }
            other => assert!(Instant::now() < deadline, "the group must stop, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kv.heal();
    assert_eq!(minutes(&node.db), (100..110).collect::<Vec<_>>(), "nothing applied on a guess");
    // restarted from its checkpoint, the group re-applies the entry and rejects its samples
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        node.raft.maintain_health().await;
        if let Ok(accepted) = write(&node, 50, 10).await {
            assert_eq!(accepted, 0, "out of order");
            break;
        }
        assert!(Instant::now() < deadline, "the group did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write(&node, 110, 10).await.expect("write");
    assert_eq!(minutes(&node.db), (100..120).collect::<Vec<_>>());
    let node = restart(node, mem).await;
    assert_eq!(minutes(&node.db), (100..120).collect::<Vec<_>>(), "after a restart");
}
