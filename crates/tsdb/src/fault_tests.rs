//! I/O errors injected with [`crate::kv::testing::FaultyEngine`]: a failed checkpoint
//! changes nothing (no acknowledged sample lost, before or after a restart), a failed read
//! fails an apply without changing the shard.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::kv::testing::FaultyEngine;
use crate::tests::{Log, checkpoint};

const T0: i64 = 1_700_000_400_000;

fn cfg() -> DbConfig {
    DbConfig { shards: 2, maintenance_tick: Duration::from_secs(3600), ..DbConfig::default() }
}

fn clock() -> Arc<dyn Clock> {
    ManualClock::at(T0 + 86_400_000)
}

fn labels(host: usize) -> Labels {
    Labels::from_pairs([("__name__", "m".to_string()), ("host", format!("h{host}"))]).expect("labels")
}

/// Every sample of every series, by host.
fn read_all(db: &Db) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let m = Matcher::new(MatchOp::Equal, "__name__", "m").expect("matcher");
    db.select(&[m], i64::MIN, i64::MAX)
        .map(|s| s.map(|s| (s.labels, s.samples)))
        .collect::<Result<Vec<_>>>()
        .expect("select")
}

/// Writes `rounds` rounds of 8 series × 30 samples (90 s apart, crossing bucket edges so
/// that sealed chunks exist), adding what the writes acknowledged to `expect` (by host).
fn write_rounds(log: &Log, db: &Db, from: i64, rounds: i64, expect: &mut [Vec<(i64, f64)>]) {
    for r in from..from + rounds {
        let mut batch = Vec::new();
        for (h, acked) in expect.iter_mut().enumerate() {
            let samples: Vec<(i64, f64)> =
                (0..30).map(|i| (T0 + (r * 30 + i) * 90_000, (r * 30 + i) as f64 + h as f64)).collect();
            acked.extend(samples.clone());
            batch.push((labels(h), samples));
        }
        let o = log.write(db, batch).expect("write");
        assert_eq!(o.accepted, 240);
    }
}

fn check(db: &Db, expect: &[Vec<(i64, f64)>], when: &str) {
    let got = read_all(db);
    assert_eq!(got.len(), expect.len(), "{when}: series");
    for (labels, samples) in got {
        let h: usize = labels.get("host").and_then(|h| h[1..].parse().ok()).expect("host");
        assert_eq!(samples, expect[h], "{when}: samples of {labels:?}");
    }
}

#[test]
fn a_failed_checkpoint_loses_no_acknowledged_sample() {
    let mem = Arc::new(MemEngine::new());
    let kv = Arc::new(FaultyEngine::new(mem.clone()));
    let mut expect = vec![Vec::new(); 8];
    let log = Log::default();
    {
        let db = Db::open(kv.clone(), cfg(), clock()).expect("open");
        write_rounds(&log, &db, 0, 3, &mut expect);
        checkpoint(&db).expect("a first checkpoint");
        write_rounds(&log, &db, 3, 3, &mut expect);
        // a checkpoint (chunks) fails, twice
        kv.fail_writes(0, Some(Cf::Chunks));
        assert!(checkpoint(&db).is_err(), "the checkpoint must fail");
        check(&db, &expect, "after a failed checkpoint");
        write_rounds(&log, &db, 6, 2, &mut expect);
        assert!(checkpoint(&db).is_err(), "the checkpoint must fail again");
        check(&db, &expect, "after a second failed checkpoint");
        assert!(kv.failures() >= 2);
        // the fault clears: the next checkpoint writes everything
        kv.heal();
        checkpoint(&db).expect("checkpoint once healed");
        check(&db, &expect, "after the checkpoint");
        write_rounds(&log, &db, 8, 1, &mut expect);
        // a crash: the checkpoint and the log must hold every acknowledged sample
        std::mem::forget(db);
    }
    let db = Db::open(mem.clone(), cfg(), clock()).expect("reopen");
    log.replay(&db).expect("replay");
    check(&db, &expect, "after a restart");
    checkpoint(&db).expect("checkpoint");
    db.close().expect("close");
    let db = Db::open(mem, cfg(), clock()).expect("reopen");
    check(&db, &expect, "after a clean restart");
}

/// One replicated shard's records built as the write path builds them.
fn records(shards: u32, from: i64, n: i64) -> Vec<(u32, Vec<u8>)> {
    let mut b = SeriesBatch::new(shards);
    for h in 0..8 {
        let samples: Vec<(i64, f64)> = (from..from + n).map(|i| (T0 + i * 60_000, i as f64)).collect();
        b.add_encoded(&labels(h).encode(), &samples);
    }
    b.into_records()
}

#[test]
fn a_failed_replicated_checkpoint_moves_no_watermark() {
    let mem = Arc::new(MemEngine::new());
    let kv = Arc::new(FaultyEngine::new(mem.clone()));
    let db = Db::open(kv.clone(), cfg(), clock()).expect("open");
    let mut index = 0;
    for round in 0..4 {
        for (shard, rec) in records(2, round * 200, 200) {
            index += 1;
            db.apply_record(shard, index, &rec).expect("apply");
        }
        if round == 1 {
            for s in 0..2 {
                db.checkpoint_shard(s, Vec::new()).expect("checkpoint");
            }
        }
    }
    let before = read_all(&db);
    assert_eq!(before[0].1.len(), 800);
    kv.fail_writes(0, None);
    for s in 0..2 {
        let watermark = mem.get(Cf::Meta, &keys::meta_key(s, keys::META_APPLIED)).expect("get");
        assert!(db.checkpoint_shard(s, Vec::new()).is_err());
        assert_eq!(mem.get(Cf::Meta, &keys::meta_key(s, keys::META_APPLIED)).expect("get"), watermark);
        assert!(db.shard_log_bytes(s).expect("log bytes") > 0, "still counts as not checkpointed");
    }
    assert_eq!(read_all(&db), before, "a failed checkpoint must keep the head");
    kv.heal();
    for s in 0..2 {
        db.checkpoint_shard(s, Vec::new()).expect("checkpoint once healed");
    }
    drop(db);
    // what the disk holds now is the whole state (the Raft log would replay nothing)
    let db = Db::open(mem, cfg(), clock()).expect("reopen");
    assert_eq!(read_all(&db), before, "after a restart");
}

#[test]
fn a_failed_read_fails_the_apply_and_changes_nothing() {
    let mem = Arc::new(MemEngine::new());
    let kv = Arc::new(FaultyEngine::new(mem.clone()));
    let shards = 2;
    {
        let db = Db::open(kv.clone(), cfg(), clock()).expect("open");
        for (i, (shard, rec)) in records(shards, 100, 10).into_iter().enumerate() {
            db.apply_record(shard, i as u64 + 1, &rec).expect("apply");
        }
        for s in 0..shards {
            db.checkpoint_shard(s, Vec::new()).expect("checkpoint");
        }
    }
    // reopened: the series are on disk, their newest sample not yet in memory
    let db = Db::open(kv.clone(), cfg(), clock()).expect("reopen");
    let before = read_all(&db);
    kv.fail_reads(0, Some(Cf::Chunks));
    // samples older than the newest persisted one: out of order, if the apply knew it
    let older = records(shards, 50, 10);
    for (shard, rec) in &older {
        let applied = db.shard_applied(*shard).expect("applied");
        assert!(db.apply_record(*shard, applied + 1, rec).is_err(), "a failed read must fail the apply");
        assert_eq!(db.shard_applied(*shard).expect("applied"), applied, "the watermark stays");
    }
    kv.heal();
    assert_eq!(read_all(&db), before, "nothing applied");
    for (shard, rec) in &older {
        let applied = db.shard_applied(*shard).expect("applied");
        let o = db.apply_record(*shard, applied + 1, rec).expect("apply once healed");
        assert_eq!(o.accepted, 0, "every sample is out of order");
    }
    assert_eq!(read_all(&db), before);
}
