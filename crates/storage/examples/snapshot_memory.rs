//! What a replica move costs in memory, on a shard of several GiB.
//!
//! Builds a shard of about `GIB` GiB (default 2) on one RocksDB through the real apply
//! path (records of 200 series × 500 samples, random values, so chunks barely compress),
//! checkpointed; then moves it as a replica move does: the sender's exporter (one frozen
//! RocksDB view, ~1 MiB frames) feeds the receiver's stager through a channel of 2 frames,
//! the stager writes SST files, and the import ingests them into a second RocksDB. While
//! the transfer runs, a writer keeps applying records to the sender's shard and
//! checkpointing it (what the shard's leader does while a snapshot streams). Prints the
//! shard's size, the growth of the process's peak RSS over the transfer (VmHWM reset
//! before it; sender and receiver are both in this process), the transfer time, and the
//! writer's slowest apply + checkpoint during it.
//!
//! `cargo run --release -p strata-storage --example snapshot_memory -- [GIB]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_bench::peers::dir_bytes;
use strata_engine_rocks::{RocksConfig, RocksEngine};
use strata_raft::{Applier, Request};
use strata_storage::ShardApplier;
use strata_tsdb::{Clock, Db, DbConfig, KvEngine, SeriesBatch, SystemClock};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const SERIES: usize = 20_000;
const PER_RECORD: usize = 200;
const SAMPLES: usize = 500;
const STEP_MS: i64 = 15_000;

/// `VmHWM` or `VmRSS` of this process, in MiB.
fn status_mib(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

struct Side {
    applier: ShardApplier,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

fn side() -> Res<Side> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let kv: Arc<dyn KvEngine> = Arc::new(RocksEngine::open(&path, &RocksConfig::default())?);
    let db = Db::open(kv.clone(), DbConfig { shards: 1, ..DbConfig::default() }, Arc::new(SystemClock))?;
    let health = Arc::new(strata_raft::WriteHealth::new(Some(dir.path().to_path_buf()), 0));
    let applier = ShardApplier::new(db, kv, 0, dir.path().join("snapshots"), health);
    Ok(Side { applier, _dir: dir, path })
}

/// One record: series `first..first + PER_RECORD`, `samples` samples each from `t0`.
fn record(first: usize, t0: i64, samples: usize, rng: &mut u64) -> Res<Request> {
    let mut b = SeriesBatch::new(1);
    for s in first..first + PER_RECORD {
        let inst = format!("host-{s:06}");
        let samples: Vec<(i64, f64)> = (0..samples)
            .map(|i| {
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                (t0 + i as i64 * STEP_MS, (*rng >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect();
        b.add(&mut vec![("__name__", "node_random_value"), ("instance", inst.as_str())], samples)?;
    }
    Ok(Request(b.into_records().remove(0).1))
}

fn main() -> Res<()> {
    let gib: f64 = std::env::args().nth(1).map_or(Ok(2.0), |a| a.parse())?;
    let mut sender = side()?;
    let mut receiver = side()?;
    // ~8.3 bytes per random sample once compressed
    let windows = ((gib * (1u64 << 30) as f64) / 8.3 / (SERIES * SAMPLES) as f64).ceil() as i64;
    let window_ms = SAMPLES as i64 * STEP_MS;
    let now = SystemClock.now_ms();
    let start = now - (windows + 1) * window_ms;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut index = 0u64;
    let built = Instant::now();
    for w in 0..windows {
        for first in (0..SERIES).step_by(PER_RECORD) {
            index += 1;
            sender.applier.apply(index, &record(first, start + w * window_ms, SAMPLES, &mut rng)?)?;
        }
        sender.applier.checkpoint(format!("state-{index}").into_bytes())?;
    }
    // the last checkpoint compacts the buckets the building finished: the sender is then as
    // a leader that has been running a while (a transfer does not meet a backlog of merges)
    sender.applier.checkpoint(format!("state-{index}").into_bytes())?;
    let shard_bytes = dir_bytes(&sender.path);
    println!(
        "shard built: {} samples, data directory {:.2} GiB, in {:.0?}",
        index as usize * PER_RECORD * SAMPLES,
        shard_bytes as f64 / (1u64 << 30) as f64,
        built.elapsed()
    );

    // the writer: applies and checkpoints the sender's shard while the snapshot streams
    let stop = Arc::new(AtomicBool::new(std::env::args().nth(2).is_some_and(|a| a == "--no-writer")));
    let writer = {
        let (mut a, stop) = (sender.applier.clone(), stop.clone());
        let t0 = now - window_ms / 2;
        std::thread::spawn(move || -> Result<(u64, Duration), String> {
            let (mut n, mut slowest, mut rng, mut i) = (0u64, Duration::ZERO, 7u64, index);
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                i += 1;
                // one sample per series, a second apart
                let r = record(0, t0 + n as i64 * 1000, 1, &mut rng).map_err(|e| e.to_string())?;
                a.apply(i, &r).map_err(|e| e.to_string())?;
                a.checkpoint(format!("state-{i}").into_bytes()).map_err(|e| e.to_string())?;
                slowest = slowest.max(began.elapsed());
                n += 1;
            }
            Ok((n, slowest))
        })
    };

    std::fs::write("/proc/self/clear_refs", "5")?;
    let base = status_mib("VmRSS:");
    let began = Instant::now();
    if std::env::args().nth(2).is_some_and(|a| a == "--control") {
        // the writer alone, as long as a transfer takes: what the shard's own writes cost
        std::thread::sleep(Duration::from_secs(std::env::args().nth(3).map_or(Ok(15), |a| a.parse())?));
        stop.store(true, Ordering::Relaxed);
        let (writes, slowest) = writer.join().map_err(|_| "writer panicked")??;
        let peak = status_mib("VmHWM:");
        println!(
            "control, no transfer: peak RSS {peak:.0} MiB, {:.0} MiB over {base:.0} MiB; {writes} records, \
             slowest apply + checkpoint {slowest:.1?}",
            peak - base
        );
        return Ok(());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let export = sender.applier.exporter();
    let exporting = std::thread::spawn(move || export(&mut |f| tx.send(f).is_ok()));
    let staged = (receiver.applier.stager())(&mut rx.into_iter())?;
    exporting.join().map_err(|_| "export panicked")??;
    let streamed = began.elapsed();
    receiver.applier.import(staged)?;
    let moved = began.elapsed();
    let peak = status_mib("VmHWM:");
    stop.store(true, Ordering::Relaxed);
    let (writes, slowest) = writer.join().map_err(|_| "writer panicked")??;
    println!(
        "moved in {moved:.1?} (streamed and staged in {streamed:.1?}): peak RSS {peak:.0} MiB, {:.0} MiB over \
         the {base:.0} MiB before the transfer ({:.2}% of the shard)",
        peak - base,
        (peak - base) * 100.0 / (shard_bytes as f64 / (1 << 20) as f64)
    );
    println!(
        "during the transfer the sender's shard took {writes} records of {PER_RECORD} samples with a \
         checkpoint each; slowest apply + checkpoint {slowest:.1?}"
    );
    println!("receiver's data directory: {:.2} GiB", dir_bytes(&receiver.path) as f64 / (1u64 << 30) as f64);
    Ok(())
}
