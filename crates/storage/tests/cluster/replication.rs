//! Acknowledged writes survive leader loss, partitions and a wiped node; replicas converge
//! to identical contents.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::Cluster;

/// Writes batches at t = start, start+1, … until `n` are acknowledged; returns them.
async fn write_n(c: &Cluster, start: i64, n: usize) -> BTreeSet<i64> {
    let mut acked = BTreeSet::new();
    let mut t = start;
    while acked.len() < n {
        if c.write(t).await.is_ok() {
            acked.insert(t);
        }
        t += 1;
    }
    acked
}

/// Every replica of every shard holds the same series and samples.
fn assert_identical(c: &Cluster) {
    let mut it = c.nodes.keys().map(|&id| (id, c.contents(id)));
    let (first_id, first) = it.next().expect("a node");
    assert!(!first.is_empty());
    for (id, other) in it {
        assert_eq!(first, other, "node {id} differs from node {first_id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_during_continuous_writes_loses_nothing_acknowledged() {
    let mut c = Cluster::start(3).await;
    let mut acked = write_n(&c, 1_000, 30).await;
    let leader = c.leader(0).expect("shard 0 has a leader");
    // keep writing from another task while the leader dies
    let client = c.client.clone();
    let base = c.base;
    let writer = tokio::spawn(async move {
        let mut acked = BTreeSet::new();
        for t in 2_000..2_060 {
            if crate::harness::write_batch(&client, base, t).await.is_ok() {
                acked.insert(t);
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.kill(leader).await;
    let during = writer.await.expect("writer");
    assert!(during.len() > 40, "writes stalled after the leader died: {} of 60 acknowledged", during.len());
    acked.extend(during);
    assert_eq!(c.restart(leader, false).await, leader);
    c.converge(&acked, Duration::from_secs(60)).await;
    assert_identical(&c);
    assert_reads_match(&c).await;
    c.shutdown().await;
}

/// `Storage.Select` through the client, linearizable (leader after ReadIndex) and from a
/// follower, returns what the replicas hold.
async fn assert_reads_match(c: &Cluster) {
    use strata_querier::{ReadConsistency, ShardReader};
    let m =
        [strata_tsdb::Matcher::new(strata_tsdb::MatchOp::Equal, "__name__", "test_metric").expect("matcher")];
    let stored = c.contents(*c.nodes.keys().next().expect("node"));
    let reader = ShardReader::new(c.client.clone());
    for shard in 0..crate::harness::SHARDS {
        let want: Vec<_> =
            stored.iter().filter(|x| x.0 == shard).map(|x| (x.1.clone(), x.2.clone())).collect();
        for consistency in [ReadConsistency::Linearizable, ReadConsistency::Follower] {
            let deadline = reader.read_deadline(None);
            let limit = strata_promql::LoadLimit::new(usize::MAX, usize::MAX, deadline.into_std());
            let got = reader
                .select_shard(shard, &m, (i64::MIN, i64::MAX), consistency, deadline, &limit)
                .await
                .expect("select");
            let got: Vec<_> = got
                .series
                .into_iter()
                .map(|s| (s.labels, s.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect::<Vec<_>>()))
                .collect();
            assert_eq!(got, want, "shard {shard}, {consistency:?}");
        }
        // a read over the query's limits stops with the limit's error, charged as series arrive
        let samples: usize = want.iter().map(|w| w.1.len()).sum();
        if samples == 0 {
            continue;
        }
        for (max_samples, max_bytes, error) in [
            (samples - 1, usize::MAX, "query processing would load too many samples"),
            (usize::MAX, 1, "--query.max-bytes"),
        ] {
            let deadline = reader.read_deadline(None);
            let limit = strata_promql::LoadLimit::new(max_samples, max_bytes, deadline.into_std());
            let e = reader
                .select_shard(
                    shard,
                    &m,
                    (i64::MIN, i64::MAX),
                    ReadConsistency::Linearizable,
                    deadline,
                    &limit,
                )
                .await
                .expect_err("over the limit");
            assert!(e.to_string().contains(error), "shard {shard}: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_minority_catches_up_after_healing() {
    let c = Cluster::start(3).await;
    let mut acked = write_n(&c, 1_000, 10).await;
    c.faults.isolate(3, &[1, 2]);
    // the majority keeps accepting writes
    acked.extend(write_n(&c, 2_000, 80).await);
    assert!(acked.iter().filter(|&&t| t >= 2_000).count() == 80);
    c.faults.heal();
    c.converge(&acked, Duration::from_secs(60)).await;
    assert_identical(&c);
    c.shutdown().await;
}

/// Node 2 wiped after its peers purged the log it would need, restarted (with
/// `before_restart` applied to the network first): it comes back under a new id and its
/// replicas are rebuilt on it by snapshots and the log, losing nothing acknowledged.
async fn wipe_and_rebuild(mut c: Cluster, before_restart: impl FnOnce(&Cluster)) {
    let mut acked = write_n(&c, 1_000, 120).await;
    c.kill(2).await;
    // longer than leaders keep log for a missing follower (8 snapshot intervals of 40)
    acked.extend(write_n(&c, 2_000, 400).await);
    for shard in 0..crate::harness::SHARDS {
        let leader = c.leader(shard).expect("leader");
        let status = c.nodes[&leader].raft().status(shard).expect("status");
        assert!(status.purged > 40, "shard {shard}: the log was not purged ({status:?}), no snapshot needed");
    }
    before_restart(&c);
    // a founder that ran before never reuses its id: it joins anew, its replicas (and its
    // seat in the metadata group) move to the new id
    let new = c.restart(2, true).await;
    assert!(new > 3, "the wiped founder came back as node {new}");
    acked.extend(write_n(&c, 3_000, 20).await);
    c.converge(&acked, Duration::from_secs(60)).await;
    assert_identical(&c);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiped_node_is_rebuilt_from_snapshot_and_log() {
    wipe_and_rebuild(Cluster::start(3).await, |_| {}).await;
}

/// A snapshot whose transfer takes longer than a Raft message may (1 s here; the stream
/// takes 2.5 s) still installs: there is no bound on a whole transfer, only on a stream
/// idle between chunks. (With the channel's message timeout on the stream, as before, the
/// wiped node never got its snapshot.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_slower_than_the_message_timeout_still_installs() {
    let c = Cluster::start_with_raft_timeout(3, Duration::from_secs(1)).await;
    wipe_and_rebuild(c, |c| c.faults.set_snapshot_chunk_delay(Duration::from_millis(2_500))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lossy_slow_network_still_commits_and_converges() {
    let c = Cluster::start(3).await;
    let mut acked = write_n(&c, 1_000, 10).await;
    c.faults.set_drop(0.2);
    c.faults.set_delay(Duration::from_millis(20));
    acked.extend(write_n(&c, 2_000, 30).await);
    c.faults.set_drop(0.0);
    c.faults.set_delay(Duration::ZERO);
    c.converge(&acked, Duration::from_secs(60)).await;
    assert_identical(&c);
    c.shutdown().await;
}

/// A killed leader's followers elect a new one within the configured election timeout
/// (2–3 s here): openraft waits out the dead leader's lease before its own timeout starts,
/// which the node's settings account for. Writes through the client resume as soon as the
/// shard has a leader.
/// Kills shard 0's leader and waits for another: (the new leader, how long it took).
async fn kill_leader_and_time_the_election(c: &mut Cluster, leader: u64) -> (u64, Duration) {
    let killed = std::time::Instant::now();
    c.kill(leader).await;
    loop {
        if let Some(new) = c.leader(0).filter(|&l| l != leader) {
            return (new, killed.elapsed());
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "no new leader in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_within_the_election_timeout_of_a_leader_kill() {
    let mut c = Cluster::start_with_election(3, (2_000, 3_000)).await;
    write_n(&c, 1, 5).await;
    let leader = c.leader(0).expect("shard 0 has a leader");
    let elected = kill_leader_and_time_the_election(&mut c, leader).await;
    // the longest election timeout, a heartbeat's worth of silence before the kill, and
    // slack for a busy machine; the double wait (lease, then timeout) takes 5–6 s
    assert!(
        elected.1 < Duration::from_millis(4_000),
        "node {} elected {:?} after the kill",
        elected.0,
        elected.1
    );
    let t = std::time::Instant::now();
    write_n(&c, 100, 1).await;
    eprintln!("new leader after {:?}; the next write took {:?}", elected.1, t.elapsed());
    c.shutdown().await;
}

/// A follower that missed the last entries (cut off from the leader, as one is when the
/// leader dies mid-replication) campaigns first once the leader is gone, and loses: its
/// log is behind. Without Pre-Vote its campaigns have raised its term, so the up-to-date
/// follower's first election fails too and the shard stays leaderless for extra rounds;
/// with Pre-Vote the stale follower never raises its term and the other wins its first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_with_a_stale_log_does_not_delay_the_election() {
    let mut c = Cluster::start_with_election(3, (2_000, 3_000)).await;
    write_n(&c, 1, 5).await;
    let leader = c.leader(0).expect("shard 0 has a leader");
    let stale = *c.nodes.keys().find(|&&id| id != leader).expect("a follower");
    c.faults.isolate(stale, &[leader]);
    // long enough for the stale follower to time out (and, without Pre-Vote, campaign) twice
    let t = std::time::Instant::now();
    let mut next = 10;
    while t.elapsed() < Duration::from_millis(5_000) {
        next = write_n(&c, next, 1).await.last().copied().unwrap_or(next) + 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (new, took) = kill_leader_and_time_the_election(&mut c, leader).await;
    c.faults.heal();
    assert_ne!(new, stale, "the follower with the stale log was elected");
    // the other follower's lease and one random timeout: at most 3 s after its last
    // heartbeat, plus slack for a busy machine; a second round would take 0.5–1.5 s more
    assert!(took < Duration::from_millis(3_500), "node {new} elected {took:?} after the kill");
    eprintln!("node {new} elected {took:?} after the kill");
    write_n(&c, next, 1).await;
    c.shutdown().await;
}

/// A linearizable read on a shard leader whose lease is fresh costs no round trip (with
/// every message delayed 50 ms, a ReadIndex round would take 100); a leader cut off from
/// the others stops serving them once its lease ends, never after the others elected a new
/// leader (which could have acknowledged writes it does not have).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linearizable_reads_ride_the_leader_lease_and_stop_before_a_new_leader() {
    use std::time::Instant;
    let c = Cluster::start(3).await;
    write_n(&c, 1_000, 10).await;
    let leader = c.leader(0).expect("leader");
    let raft = c.nodes[&leader].raft();
    c.faults.set_delay(Duration::from_millis(50));
    // heartbeats acknowledged under the delay keep the lease fresh
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    for _ in 0..5 {
        let started = Instant::now();
        raft.read_barrier(0).await.expect("read barrier");
        assert!(started.elapsed() < Duration::from_millis(50), "a read waited {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.faults.set_delay(Duration::ZERO);
    let others: Vec<_> = c.nodes.keys().copied().filter(|&n| n != leader).collect();
    c.faults.isolate(leader, &others);
    let started = Instant::now();
    let mut refused = false;
    let mut elected = false;
    while started.elapsed() < Duration::from_secs(20) && !(refused && elected) {
        // looked at before the read: a new leader elected by then must already see it refused
        elected = others.iter().any(|&o| c.nodes[&o].raft().status(0).is_ok_and(|s| s.leader == Some(o)));
        match raft.read_barrier(0).await {
            Ok(()) => assert!(!elected, "the cut-off leader served a read after a new leader was elected"),
            Err(_) => refused = true,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused && elected, "refused: {refused}, new leader: {elected}");
    c.faults.heal();
    c.shutdown().await;
}
