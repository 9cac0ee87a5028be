//! A replica whose host vanished costs the cluster's clients one detection, not one per
//! call: writes and reads go to the other replicas.

use std::time::{Duration, Instant};

use strata_querier::{ReadConsistency, ShardReader};

use crate::harness::{Cluster, SHARDS};

/// The port of the leader of shard 0 turns silent (accepts, never answers: no FIN, no
/// RST, as when a host or its network vanishes). Writes to every shard and follower reads
/// (which rotate over the replicas, so every third would start at the silent one) keep
/// being answered: past the first seconds (an election, one connection found dead), no
/// call waits on the silent node again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_replica_costs_one_detection_not_one_per_call() {
    let mut c = Cluster::start(3).await;
    for t in 0..10 {
        c.write_retrying(t).await;
    }
    let reader = ShardReader::new(c.client.clone());
    let m = [strata_tsdb::Matcher::new(strata_tsdb::MatchOp::Equal, "__name__", "test_metric").expect("m")];
    let read = |shard: u32| {
        let reader = &reader;
        let m = &m;
        async move {
            let deadline = reader.read_deadline(None);
            let limit = strata_promql::LoadLimit::new(usize::MAX, usize::MAX, deadline.into_std());
            reader
                .select_shard(shard, m, (i64::MIN, i64::MAX), ReadConsistency::Follower, deadline, &limit)
                .await
        }
    };
    // follower reads are spread over every replica, the silent one-to-be included
    for s in 0..SHARDS {
        read(s).await.expect("read");
    }
    let victim = c.leader(0).expect("shard 0 has a leader");
    let silent = c.silence(victim).await;
    let start = Instant::now();
    let settle = Duration::from_secs(5);
    let mut slow = Vec::new();
    let mut t = 100;
    while start.elapsed() < settle + Duration::from_secs(5) {
        let call = Instant::now();
        c.write(t).await.expect("write acknowledged with a replica silent");
        for s in 0..SHARDS {
            let got = read(s).await.expect("read answered with a replica silent");
            assert!(!got.series.is_empty(), "shard {s} read nothing");
        }
        let took = call.elapsed();
        if start.elapsed() > settle && took > Duration::from_millis(800) {
            slow.push((start.elapsed(), took));
        }
        t += 1;
    }
    assert!(t > 110, "only {} rounds of writes and reads in 10 s", t - 100);
    assert!(slow.is_empty(), "calls still waited on the silent node {victim} after {settle:?}: {slow:?}");
    silent.abort();
    c.shutdown().await;
}
