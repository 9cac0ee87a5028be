//! A planned stop hands a node's leaderships to other voters (TransferLeader) instead of
//! leaving its groups to wait out an election timeout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::harness::{Cluster, SHARDS};

/// Node `id`'s own view: the shards it leads.
fn led_by(c: &Cluster, id: u64) -> Vec<u32> {
    (0..SHARDS).filter(|&s| c.nodes[&id].raft().status(s).is_ok_and(|st| st.leader == Some(id))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn planned_stop_hands_leadership_over_before_an_election_timeout() {
    let mut c = Cluster::start(3).await;
    for t in 0..10 {
        c.write_retrying(t).await;
    }
    // the node leading the most shards stops on purpose
    let (stopping, led) =
        c.nodes.keys().map(|&id| (id, led_by(&c, id))).max_by_key(|(_, led)| led.len()).expect("nodes");
    assert!(!led.is_empty(), "no node leads a shard");
    let node = c.nodes.remove(&stopping).expect("node");
    // a writer keeps going while it stops
    let client = c.client.clone();
    let base = c.base;
    let writer = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        let mut acked = BTreeSet::new();
        for t in 100..160 {
            let mut b = strata_tsdb::SeriesBatch::new(SHARDS);
            for i in 0..crate::harness::SERIES {
                let v = i.to_string();
                let mut pairs = vec![("__name__", "test_metric"), ("series", v.as_str())];
                b.add(&mut pairs, [(base + t, (base + t) as f64)]).expect("valid");
            }
            let start = Instant::now();
            if client.write(b.into_records(), strata_tsdb::SeriesLimits::default()).await.is_ok() {
                acked.insert(t);
            }
            slowest = slowest.max(start.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (acked, slowest)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let stop = tokio::spawn(async move { node.shutdown().await });
    // the shortest election timeout is 600 ms: without a hand-off no other voter could lead
    // before the stopping node's last heartbeat plus that
    let others: Vec<u64> = c.nodes.keys().copied().collect();
    let new_leaders = loop {
        let seen: Vec<Option<u64>> = led
            .iter()
            .map(|&s| {
                let views: BTreeSet<Option<u64>> = others
                    .iter()
                    .map(|id| c.nodes[id].raft().status(s).ok().and_then(|st| st.leader))
                    .collect();
                match views.into_iter().collect::<Vec<_>>().as_slice() {
                    [Some(l)] if *l != stopping => Some(*l),
                    _ => None,
                }
            })
            .collect();
        if seen.iter().all(Option::is_some) {
            break seen;
        }
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "shards {led:?} of node {stopping} had no new leader after {:?}: {seen:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let handed_off = start.elapsed();
    stop.await.expect("shutdown");
    let (acked, slowest) = writer.await.expect("writer");
    eprintln!(
        "shards {led:?} handed to {new_leaders:?} in {handed_off:?}; slowest write during the stop {slowest:?}"
    );
    assert_eq!(acked.len(), 60, "writes failed during a planned stop");
    c.converge(&acked, Duration::from_secs(30)).await;
    c.shutdown().await;
}
