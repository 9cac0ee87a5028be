//! Engine behaviour over the in-memory KV engine (restart = reopen on the same engine).
//! [`Log`] plays the shard groups' part: what they do with a record (admit, make durable,
//! apply in log order, re-apply after a restart what the last checkpoint does not cover).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;

/// One series of a test write: its labels and samples.
pub(crate) type Series = (Labels, Vec<(i64, f64)>);

/// The shard groups' logs: every record [`Db::admit`]ted, kept at its shard's next index and
/// applied ([`Db::apply_record`], as a group's state machine does once it is committed).
#[derive(Debug, Default)]
pub(crate) struct Log(Mutex<Vec<(keys::ShardId, u64, Vec<u8>)>>);

impl Log {
    /// Logs and applies `batch`, record by record; the refused samples and the outcomes.
    pub(crate) fn commit(&self, db: &Db, batch: SeriesBatch) -> Result<ApplyOutcome> {
        let mut out = ApplyOutcome::default();
        let mut log = self.0.lock();
        let limits = batch.limits();
        for (shard, rec) in batch.into_records() {
            let (rec, refused) =
                db.admit(Some(shard), rec, limits).map_err(|e| Error::Invalid(e.to_string()))?;
            out.merge(refused);
            let Some(rec) = rec else { continue };
            let index = log.iter().filter(|e| e.0 == shard).count() as u64 + 1;
            out.merge(db.apply_record(shard, index, &rec)?);
            log.push((shard, index, rec));
        }
        Ok(out)
    }

    /// [`Log::commit`] of one batch of `series`.
    pub(crate) fn write(&self, db: &Db, series: Vec<Series>) -> Result<ApplyOutcome> {
        let mut b = SeriesBatch::new(db.config().shards);
        for (labels, samples) in series {
            b.add_encoded(&labels.encode(), &samples);
        }
        self.commit(db, b)
    }

    /// After a restart: re-applies what each shard's last checkpoint does not cover.
    pub(crate) fn replay(&self, db: &Db) -> Result<()> {
        for (shard, index, rec) in self.0.lock().iter() {
            if *index > db.shard_applied(*shard)? {
                db.apply_record(*shard, *index, rec)?;
            }
        }
        Ok(())
    }
}

/// Checkpoints every shard (what each group's snapshot does).
pub(crate) fn checkpoint(db: &Db) -> Result<()> {
    for shard in 0..db.config().shards {
        db.checkpoint_shard(shard, Vec::new())?;
    }
    Ok(())
}

const T0: i64 = 1_700_000_400_000;

fn cfg() -> DbConfig {
    DbConfig { maintenance_tick: Duration::from_secs(3600), ..DbConfig::default() }
}

fn open(kv: &Arc<MemEngine>, cfg: DbConfig) -> Arc<Db> {
    Db::open(kv.clone(), cfg, ManualClock::at(T0 + 86_400_000)).unwrap()
}

fn series(name: &str, host: &str, samples: Vec<(i64, f64)>) -> Series {
    (Labels::from_pairs([("__name__", name), ("host", host)]).unwrap(), samples)
}

fn eq(name: &str, v: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, name, v).unwrap()
}

fn all(db: &Db, m: &[Matcher]) -> Vec<SeriesData> {
    db.select(m, i64::MIN, i64::MAX).collect::<Result<Vec<_>>>().unwrap()
}

#[test]
fn write_select_restart_checkpoint_compact() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut expect = Vec::new();
    {
        let db = open(&kv, cfg());
        for round in 0..20 {
            let mut batch = Vec::new();
            for h in 0..20 {
                let samples: Vec<_> = (0..60)
                    .map(|i| {
                        let t = T0 + (round * 60 + i) * 15_000;
                        (t, if h == 3 && round == 19 && i == 59 { stale } else { (i * h) as f64 * 0.25 })
                    })
                    .collect();
                if h == 0 {
                    expect.extend(samples.clone());
                }
                batch.push(series("m", &format!("h{h}"), samples));
            }
            let o = log.write(&db, batch).unwrap();
            assert_eq!(o.accepted, 1200);
            assert_eq!(o.rejected_total(), 0);
            if round % 7 == 1 {
                checkpoint(&db).unwrap();
            }
        }
        assert_eq!(all(&db, &[eq("host", "h0")])[0].samples, expect);
        // no close: simulate a crash after the last acknowledged write
        std::mem::forget(db);
    }
    let db = open(&kv, cfg());
    log.replay(&db).unwrap();
    let got = all(&db, &[eq("__name__", "m")]);
    assert_eq!(got.len(), 20);
    assert_eq!(got[0].labels.get("host"), Some("h0"));
    assert_eq!(got[0].samples, expect);
    let h3 = all(&db, &[eq("host", "h3")]);
    assert!(is_stale_marker(h3[0].samples.last().unwrap().1));
    // checkpoint + compaction keep everything, bit-exactly
    checkpoint(&db).unwrap();
    db.close().unwrap();
    let db = open(&kv, cfg());
    assert_eq!(all(&db, &[eq("host", "h0")])[0].samples, expect);
    assert!(is_stale_marker(all(&db, &[eq("host", "h3")])[0].samples.last().unwrap().1));
    // range restriction
    let part: Vec<_> = db.select(&[eq("host", "h0")], T0, T0 + 15_000).collect::<Result<Vec<_>>>().unwrap();
    assert_eq!(part[0].samples.len(), 2);
}

#[test]
fn order_duplicates_and_bounds_as_prometheus() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let db = open(&kv, cfg());
    let o = log.write(&db, vec![series("m", "a", vec![(T0, 1.0), (T0 + 10, 2.0)])]).unwrap();
    assert_eq!(o.accepted, 2);
    // same value at the same timestamp: ignored; another value: duplicate; older: out of order
    let o = log
        .write(
            &db,
            vec![series("m", "a", vec![(T0 + 10, 2.0), (T0 + 10, 3.0), (T0 + 5, 1.0), (T0 + 20, 4.0)])],
        )
        .unwrap();
    assert_eq!(o.accepted, 2);
    assert_eq!(o.rejected[RejectReason::Duplicate as usize], 1);
    assert_eq!(o.rejected[RejectReason::OutOfOrder as usize], 1);
    assert!(o.first_error.unwrap().starts_with("duplicate sample for timestamp"));
    // more than an hour behind the shard's newest sample: out of bounds, even for a new series
    log.write(&db, vec![series("m", "a", vec![(T0 + 2 * 3_600_000, 1.0)])]).unwrap();
    let shard_a = shard_of(Labels::from_pairs([("__name__", "m"), ("host", "a")]).unwrap().stable_hash(), 4);
    let other = (0..100)
        .map(|i| format!("x{i}"))
        .find(|h| {
            shard_of(Labels::from_pairs([("__name__", "m"), ("host", h.as_str())]).unwrap().stable_hash(), 4)
                == shard_a
        })
        .unwrap();
    let o = log.write(&db, vec![series("m", &other, vec![(T0, 1.0)])]).unwrap();
    assert_eq!(o.rejected[RejectReason::OutOfBounds as usize], 1);
    // duplicates are still detected after a checkpoint and a restart (tail loaded from disk)
    checkpoint(&db).unwrap();
    db.close().unwrap();
    drop(db);
    let db = open(&kv, cfg());
    let o = log.write(&db, vec![series("m", "a", vec![(T0 + 2 * 3_600_000, 9.0)])]).unwrap();
    assert_eq!(o.rejected[RejectReason::Duplicate as usize], 1);
}

#[test]
fn out_of_order_window() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let db = open(&kv, DbConfig { out_of_order_window: Duration::from_secs(600), ..cfg() });
    log.write(&db, vec![series("m", "a", vec![(T0 + 1_000_000, 1.0)])]).unwrap();
    let o = log.write(&db, vec![series("m", "a", vec![(T0 + 700_000, 2.0), (T0, 3.0)])]).unwrap();
    assert_eq!(o.accepted, 1);
    assert_eq!(o.rejected[RejectReason::TooOld as usize], 1);
    let s = &all(&db, &[eq("host", "a")])[0].samples;
    assert_eq!(s, &vec![(T0 + 700_000, 2.0), (T0 + 1_000_000, 1.0)]);
    checkpoint(&db).unwrap();
    assert_eq!(&all(&db, &[eq("host", "a")])[0].samples, s);
}

#[test]
fn labels_series_and_retention() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let clock = ManualClock::at(T0);
    let db = Db::open(kv.clone(), cfg(), clock.clone()).unwrap();
    log.write(&db, vec![series("old", "a", vec![(T0 - 20 * 86_400_000, 1.0)])]).unwrap();
    log.write(&db, vec![series("up", "a", vec![(T0, 1.0)]), series("up", "b", vec![(T0, 1.0)])]).unwrap();
    assert_eq!(db.label_names(None, &[], i64::MIN, i64::MAX), vec!["__name__", "host"]);
    assert_eq!(db.label_values(None, "__name__", &[], i64::MIN, i64::MAX), vec!["old", "up"]);
    assert_eq!(db.label_values(None, "__name__", &[], T0 - 1000, T0 + 1000), vec!["up"]);
    assert_eq!(db.series(None, &[eq("__name__", "up")], T0, T0).len(), 2);
    checkpoint(&db).unwrap();
    db.maintain(true).unwrap();
    assert_eq!(db.label_values(None, "__name__", &[], i64::MIN, i64::MAX), vec!["up"]);
    assert!(all(&db, &[eq("__name__", "old")]).is_empty());
}

#[test]
fn shard_count_is_fixed() {
    let kv = Arc::new(MemEngine::new());
    open(&kv, cfg()).close().unwrap();
    let err = Db::open(kv, DbConfig { shards: 8, ..cfg() }, Arc::new(SystemClock)).unwrap_err();
    assert!(matches!(err, Error::Mismatch(_)));
}

/// Chunk keys of the in-memory engine, all shards.
fn chunk_keys(kv: &MemEngine) -> usize {
    let mut n = 0;
    kv.scan(Cf::Chunks, &[], &[0xff; 16], &mut |_, _| {
        n += 1;
        true
    })
    .unwrap();
    n
}

/// Writes `rounds` rounds of `per_round` samples to each of `hosts` series `m{host="hNN"}`,
/// all in the bucket of `T0`, calling `after` after each round; returns each series' samples.
fn write_rounds(
    db: &Db,
    log: &Log,
    hosts: i64,
    rounds: i64,
    per_round: i64,
    after: &dyn Fn(i64),
) -> Vec<Vec<(i64, f64)>> {
    let mut expect = vec![Vec::new(); hosts as usize];
    for round in 0..rounds {
        let batch = (0..hosts)
            .map(|h| {
                let samples: Vec<_> = (0..per_round)
                    .map(|i| {
                        let n = round * per_round + i;
                        (T0 + n * 15_000, (h * 1000 + n) as f64 * 0.5)
                    })
                    .collect();
                expect[h as usize].extend(samples.clone());
                series("m", &format!("h{h:02}"), samples)
            })
            .collect();
        log.write(db, batch).unwrap();
        after(round);
    }
    expect
}

#[test]
fn a_bucket_compacted_in_small_batches_keeps_every_sample() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let db = open(&kv, DbConfig { shards: 1, ..cfg() });
    // six checkpoints: six segments per series in one bucket
    let expect = write_rounds(&db, &log, 30, 6, 10, &|_| checkpoint(&db).unwrap());
    assert_eq!(chunk_keys(&kv), 30 * 6);
    // a batch of one byte: every series is written in its own batch
    let merged = db.shard(0).unwrap().compact_bucket(bucket_of(T0), 1).unwrap();
    assert_eq!(merged, 30);
    assert_eq!(chunk_keys(&kv), 30);
    for (h, want) in expect.iter().enumerate() {
        let got = all(&db, &[eq("host", &format!("h{h:02}"))]);
        assert_eq!(&got[0].samples, want, "series h{h:02}");
    }
}

#[test]
fn frequent_checkpoints_keep_few_chunks_cached_and_every_sample() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let db = open(&kv, DbConfig { shards: 1, ..cfg() });
    // 30 checkpoints of 4 samples per series, all in one bucket
    let expect = write_rounds(&db, &log, 5, 30, 4, &|round| {
        db.checkpoint_shard(0, Vec::new()).unwrap();
        assert!(db.shard(0).unwrap().most_cached_chunks() <= 8, "round {round}");
    });
    let check = |db: &Db| {
        for (h, want) in expect.iter().enumerate() {
            assert_eq!(&all(db, &[eq("host", &format!("h{h:02}"))])[0].samples, want, "series h{h:02}");
        }
    };
    check(&db);
    // every 8th checkpoint merged the open bucket's segments on disk too
    assert!(chunk_keys(&kv) <= 5 * 8, "{} chunk keys", chunk_keys(&kv));
    drop(db);
    let db = open(&kv, DbConfig { shards: 1, ..cfg() });
    log.replay(&db).unwrap();
    check(&db);
}

#[test]
fn histograms_survive_crash_checkpoint_and_compaction() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let h = |n: f64| FloatHistogram {
        count: n,
        sum: n * 2.0,
        positive: vec![(0, n)],
        ..FloatHistogram::default()
    };
    let write = |db: &Db, from: i64, to: i64| {
        let mut b = SeriesBatch::new(db.config().shards);
        let hists: Vec<(i64, FloatHistogram)> = (from..to).map(|i| (T0 + i * 60_000, h(i as f64))).collect();
        let mut pairs = vec![("__name__", "rpc"), ("host", "a")];
        b.add_histograms(&mut pairs, &hists).unwrap();
        let mut pairs = vec![("__name__", "up"), ("host", "a")];
        b.add(&mut pairs, [(T0 + from * 60_000, 1.0)]).unwrap();
        log.commit(db, b).unwrap()
    };
    {
        let db = open(&kv, cfg());
        assert_eq!(write(&db, 0, 90).accepted, 91);
        checkpoint(&db).unwrap();
        assert_eq!(write(&db, 90, 200).accepted, 111);
        // an older histogram is out of order, an equal repeat is ignored, a changed one is a duplicate
        let o = write(&db, 150, 151);
        assert_eq!(o.rejected_total(), 1);
        std::mem::forget(db);
    }
    let db = open(&kv, cfg());
    log.replay(&db).unwrap();
    let check = |db: &Db| {
        let got = all(db, &[eq("__name__", "rpc")]);
        assert_eq!(got.len(), 1);
        assert!(got[0].samples.is_empty());
        let hs = &got[0].histograms;
        assert_eq!(hs.len(), 200);
        assert_eq!(hs[7].0, T0 + 7 * 60_000);
        assert_eq!(
            FloatHistogram { hint: histogram::CounterResetHint::Unknown, ..(*hs[7].1).clone() },
            h(7.0)
        );
        // hints as storage gives them: unknown first, then not-reset
        assert_eq!(hs[0].1.hint, histogram::CounterResetHint::Unknown);
        assert_eq!(hs[8].1.hint, histogram::CounterResetHint::NotCounterReset);
    };
    check(&db);
    checkpoint(&db).unwrap();
    check(&db);
    db.close().unwrap();
    let db = open(&kv, cfg());
    check(&db);
}

#[test]
fn resharding_a_batch_splits_it_as_if_built_for_the_new_count() {
    let add = |b: &mut SeriesBatch| {
        for i in 0..50 {
            let host = format!("h{i}");
            let mut pairs = vec![("__name__", "m"), ("host", host.as_str())];
            b.add(&mut pairs, [(T0, i as f64), (T0 + 1000, 1.0)]).unwrap();
        }
        let mut pairs = vec![("__name__", "hist"), ("host", "x")];
        b.add_histograms(
            &mut pairs,
            &[(T0, FloatHistogram { count: 3.0, sum: 1.5, ..FloatHistogram::default() })],
        )
        .unwrap();
    };
    let mut one = SeriesBatch::new(1);
    add(&mut one);
    let mut four = SeriesBatch::new(4);
    add(&mut four);
    assert_eq!(one.reshard(4).unwrap().into_records(), four.into_records());
}

#[test]
fn admit_drops_future_samples_and_refuses_bad_labels() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let db = open(&kv, DbConfig { shards: 1, ..cfg() });
    let now = T0 + 86_400_000;
    let far = now + 10 * 365 * 86_400_000;
    let mut b = SeriesBatch::new(1);
    let mut pairs = vec![("__name__", "m")];
    b.add(&mut pairs, [(now, 1.0), (far, 2.0), (now + 600_000, 3.0)]).unwrap();
    let mut pairs = vec![("__name__", "f")];
    b.add(&mut pairs, [(far, 1.0)]).unwrap();
    let o = log.commit(&db, b).unwrap();
    assert_eq!((o.accepted, o.rejected[RejectReason::TooFarInFuture as usize]), (2, 2));
    assert!(o.first_error.unwrap().contains("(err-mimir-too-far-in-future)"));
    // the shard's newest time did not move: a sample an hour behind "now" still passes
    let o = log.write(&db, vec![series("m2", "a", vec![(now - 3_000_000, 1.0)])]).unwrap();
    assert_eq!((o.accepted, o.rejected_total()), (1, 0));
    // a record whose labels are not canonical, or over a limit, is refused as a whole
    let mut rec = record::RecordBuilder::default();
    let mut enc = Vec::new();
    labels::encode_pairs([(&b"z"[..], &b"1"[..]), (b"__name__", b"m")].into_iter(), &mut enc);
    rec.add(&enc, [(now, 1.0)]);
    assert_eq!(
        db.admit(Some(0), rec.finish(), SeriesLimits::default()).unwrap_err(),
        AdmitError::NotCanonical
    );
    let long = "v".repeat(3000);
    let mut rec = record::RecordBuilder::default();
    rec.add(&Labels::from_pairs([("__name__", long.as_str())]).unwrap().encode(), [(now, 1.0)]);
    assert!(matches!(
        db.admit(Some(0), rec.finish(), SeriesLimits::default()),
        Err(AdmitError::Labels(LabelsError::ValueTooLong { .. }))
    ));
    assert_eq!(
        db.admit(Some(0), b"\x05junk".to_vec(), SeriesLimits::default()).unwrap_err(),
        AdmitError::Undecodable
    );
}

/// A snapshot from another replica is staged only if every key is one the shard could have
/// written, in the order an export visits them: a short index key (found by the
/// `raft_message` fuzz target) made the reload after an import slice past its end and
/// panic. An install replaces the shard's state, and done again (a crash after it) ends in
/// the same state.
#[test]
fn staged_keys_are_checked_and_an_install_replaces_the_shard() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let db = open(&kv, DbConfig { shards: 1, ..cfg() });
    log.write(&db, vec![series("m", "a", vec![(T0, 1.0)])]).unwrap();
    db.checkpoint_shard(0, Vec::new()).unwrap();
    let mut good = Vec::new();
    db.export_shard(0, &mut |cf, k, v| {
        good.push((cf, k.to_vec(), v.to_vec()));
        true
    })
    .unwrap();
    assert!(good.len() >= 3, "{good:?}");
    let root = std::env::temp_dir().join(format!("strata-stage-test-{}", std::process::id()));
    let (s, _) = keys::day_range(0, 0, u32::MAX);
    for (cf, key, why) in [
        (Cf::Index, s.clone(), "malformed"),
        (Cf::Chunks, keys::shard_range(0).0, "malformed"),
        (Cf::Log, keys::log_key(0, 1), "outside"),
        (Cf::Index, keys::shard_range(1).0, "outside"),
        (good[0].0, good[0].1.clone(), "out of order"),
    ] {
        let mut stage = db.stage_shard(0, &root.join("bad")).unwrap();
        for (c, k, v) in &good {
            stage.put(*c, k, v).unwrap();
        }
        let e = stage.put(cf, &key, b"").unwrap_err();
        assert!(e.to_string().contains(why), "{cf:?} {key:02x?}: {e}");
    }
    let dir = root.join("good");
    let mut stage = db.stage_shard(0, &dir).unwrap();
    for (c, k, v) in &good {
        stage.put(*c, k, v).unwrap();
    }
    assert_eq!(stage.finish().unwrap(), good.len() as u64);
    // written after the export: gone once the export is installed
    log.write(&db, vec![series("m", "b", vec![(T0, 2.0)])]).unwrap();
    db.checkpoint_shard(0, Vec::new()).unwrap();
    assert_eq!(all(&db, &[eq("__name__", "m")]).len(), 2);
    for _ in 0..2 {
        db.install_shard(0, &dir).unwrap();
        assert_eq!(all(&db, &[eq("host", "a")])[0].samples, vec![(T0, 1.0)]);
        assert!(all(&db, &[eq("host", "b")]).is_empty());
    }
    db.clear_shard(0).unwrap();
    assert!(all(&db, &[eq("__name__", "m")]).is_empty());
    let _ = std::fs::remove_dir_all(&root);
}

/// An export reads one moment of the shard without holding its lock: a checkpoint made
/// while the export is under way finishes (the leader's applies and checkpoints go on while
/// a snapshot streams), and the export still sees the state from before it.
#[test]
fn a_checkpoint_during_an_export_goes_through_and_the_export_sees_the_earlier_moment() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let db = open(&kv, DbConfig { shards: 1, ..cfg() });
    log.write(&db, vec![series("m", "a", vec![(T0, 1.0)])]).unwrap();
    db.checkpoint_shard(0, Vec::new()).unwrap();
    log.write(&db, vec![series("m", "b", vec![(T0, 2.0)])]).unwrap();
    let mut seen = Vec::new();
    let mut checkpointed = None;
    db.export_shard(0, &mut |cf, k, v| {
        if checkpointed.is_none() {
            let db = db.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(db.checkpoint_shard(0, Vec::new()).is_ok()));
            checkpointed = Some(rx.recv_timeout(std::time::Duration::from_secs(10)));
        }
        seen.push((cf, k.to_vec(), v.to_vec()));
        true
    })
    .unwrap();
    assert_eq!(checkpointed, Some(Ok(true)), "the checkpoint waited for the export");
    let labels = |entries: &[(Cf, Vec<u8>, Vec<u8>)]| {
        entries.iter().filter(|(cf, k, _)| *cf == Cf::Index && k.len() == 13).count()
    };
    assert_eq!(labels(&seen), 1, "the export sees the shard as it was when it began");
    let mut now = Vec::new();
    db.export_shard(0, &mut |cf, k, v| {
        now.push((cf, k.to_vec(), v.to_vec()));
        true
    })
    .unwrap();
    assert_eq!(labels(&now), 2);
}

#[test]
fn admit_refuses_a_record_holding_another_shards_series() {
    let kv = Arc::new(MemEngine::new());
    let db = open(&kv, cfg());
    let labels = Labels::from_pairs([("__name__", "m"), ("host", "a")]).unwrap();
    let shard = shard_of(labels.stable_hash(), db.config().shards);
    let mut rec = record::RecordBuilder::default();
    rec.add(&labels.encode(), [(T0, 1.0)]);
    let rec = rec.finish();
    let other = (shard + 1) % db.config().shards;
    assert_eq!(
        db.admit(Some(other), rec.clone(), SeriesLimits::default()).unwrap_err(),
        AdmitError::WrongShard(other)
    );
    assert!(db.admit(Some(shard), rec, SeriesLimits::default()).unwrap().0.is_some());
}

/// A series the shard holds and writes to lately is logged by reference (its labels' hash
/// instead of the labels); the record applies to the same series, after a crash too. A
/// series with no sample in the last half of the retention is logged by its labels again,
/// and a record from the network may not carry references.
#[test]
fn series_the_shard_holds_are_logged_by_reference() {
    let kv = Arc::new(MemEngine::new());
    let clock = ManualClock::at(T0 + 60_000);
    let db = Db::open(kv.clone(), DbConfig { shards: 1, ..cfg() }, clock.clone()).unwrap();
    let enc = Labels::from_pairs([("__name__", "node_cpu_seconds_total"), ("cpu", "0"), ("mode", "idle")])
        .unwrap()
        .encode();
    let record = |t: i64| {
        let mut b = record::RecordBuilder::default();
        b.add(&enc, [(t, t as f64)]);
        b.finish()
    };
    let (first, _) = db.admit(Some(0), record(T0), SeriesLimits::default()).unwrap();
    let first = first.unwrap();
    assert_eq!(first, record(T0), "a new series is logged by its labels");
    assert_eq!(db.apply_record(0, 1, &first).unwrap().accepted, 1);
    let (second, _) = db.admit(Some(0), record(T0 + 15_000), SeriesLimits::default()).unwrap();
    let second = second.unwrap();
    let decoded = record::decode(&second).unwrap();
    assert_eq!(decoded[0].key(), record::SeriesKey::Ref(labels::hash_encoded(&enc)));
    assert!(second.len() + enc.len() - 8 == record(T0 + 15_000).len(), "{} bytes", second.len());
    assert_eq!(db.apply_record(0, 2, &second).unwrap().accepted, 1);
    // a crash: the log is applied again over the empty shard, the reference included
    std::mem::forget(db);
    let db = Db::open(kv.clone(), DbConfig { shards: 1, ..cfg() }, clock.clone()).unwrap();
    for (i, rec) in [&first, &second].into_iter().enumerate() {
        db.apply_record(0, i as u64 + 1, rec).unwrap();
    }
    let got = all(&db, &[eq("cpu", "0")]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples, vec![(T0, T0 as f64), (T0 + 15_000, (T0 + 15_000) as f64)]);
    // idle for more than half the retention: by labels again (retention may drop it)
    clock.set(T0 + 15_000 + cfg().retention.as_millis() as i64 / 2 + 1);
    let (third, _) = db.admit(Some(0), record(T0 + 30_000), SeriesLimits::default()).unwrap();
    let third = third.unwrap();
    assert_eq!(third, record(T0 + 30_000));
    // only admission writes references
    assert_eq!(db.admit(Some(0), second, SeriesLimits::default()).unwrap_err(), AdmitError::NotCanonical);
    // a series the shard holds is not decoded again, but the label limits still hold for
    // it: reopened with a shorter value limit, its next write is refused as a new one's
    clock.set(T0 + 45_000);
    assert!(db.admit(Some(0), record(T0 + 45_000), SeriesLimits::default()).unwrap().0.is_some());
    std::mem::forget(db);
    let strict = LabelLimits { max_value_len: 4, ..LabelLimits::default() };
    let db = Db::open(kv, DbConfig { shards: 1, label_limits: strict, ..cfg() }, clock.clone()).unwrap();
    for (i, rec) in [&first, &third].into_iter().enumerate() {
        db.apply_record(0, i as u64 + 1, rec).unwrap();
    }
    let e = db.admit(Some(0), record(T0 + 60_000), SeriesLimits::default()).unwrap_err();
    assert!(e.to_string().contains("err-mimir-label-value-too-long"), "{e}");
}

/// A reference that names no series of the shard (a replica whose state differs) stores
/// nothing and says why; the record's other series are applied.
#[test]
fn a_reference_to_no_series_stores_nothing_and_says_so() {
    let kv = Arc::new(MemEngine::new());
    let db = open(&kv, DbConfig { shards: 1, ..cfg() });
    let labels = Labels::from_pairs([("__name__", "up")]).unwrap().encode();
    let mut b = record::RecordBuilder::default();
    b.add_keyed(record::SeriesKey::Ref(42), [(T0, 1.0)]);
    b.add(&labels, [(T0, 1.0)]);
    let o = db.apply_record(0, 1, &b.finish()).unwrap();
    assert_eq!(o.accepted, 1);
    assert!(o.first_error.unwrap().contains("names no series"));
}

/// A selection that forwards stored chunks gives, once joined, exactly the samples of the
/// decoded selection: whole and partial buckets, out-of-order segments in old buckets,
/// packed (compacted) and segment chunks, the head.
#[test]
fn forwarded_chunks_join_to_the_decoded_selection() {
    let kv = Arc::new(MemEngine::new());
    let log = Log::default();
    let db = open(&kv, DbConfig { out_of_order_window: Duration::from_secs(8 * 3600), ..cfg() });
    let hour = |h: i64, host: &str| {
        series("m", host, (0..60).map(|i| (T0 + h * 3_600_000 + i * 60_000, (h * 60 + i) as f64)).collect())
    };
    for h in 0..8 {
        log.write(&db, vec![hour(h, "a"), hour(h, "b")]).unwrap();
        if h % 2 == 1 {
            checkpoint(&db).unwrap();
        }
    }
    // out of order into the first bucket: a later segment there, then a head sample
    log.write(&db, vec![series("m", "a", vec![(T0 + 30_000, -1.0), (T0 + 90_000, -2.0)])]).unwrap();
    checkpoint(&db).unwrap();
    log.write(&db, vec![series("m", "a", vec![(T0 + 150_000, -3.0)])]).unwrap();
    let mut forwarded = 0;
    for (mint, maxt) in [
        (i64::MIN, i64::MAX),
        (T0, T0 + 4 * 3_600_000 - 1),
        (T0 + 3_600_000, T0 + 7 * 3_600_000),
        (T0 + 2 * 3_600_000 + 1, T0 + 6 * 3_600_000),
    ] {
        let want = all_in(&db, mint, maxt);
        let got: Vec<SeriesData> = db
            .select(&[eq("__name__", "m")], mint, maxt)
            .forwarding()
            .map(|r| {
                let (s, stored) = r.unwrap();
                forwarded += stored.len();
                SeriesData { samples: chunk::join_forwarded(&stored, s.samples).unwrap(), ..s }
            })
            .collect();
        assert_eq!(got.len(), want.len(), "[{mint}, {maxt}]");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.labels, &g.samples), (&w.labels, &w.samples), "[{mint}, {maxt}]");
        }
    }
    assert!(forwarded > 0, "no chunk was forwarded: the test compares nothing");
}

fn all_in(db: &Db, mint: i64, maxt: i64) -> Vec<SeriesData> {
    db.select(&[eq("__name__", "m")], mint, maxt).collect::<Result<Vec<_>>>().unwrap()
}
