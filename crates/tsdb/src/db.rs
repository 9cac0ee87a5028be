//! The node's database: its shards (each written by its Raft group's applier), retention,
//! and the query surface.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::chunk::{self, Sample};
use crate::error::{Error, Result};
use crate::keys::{self, ShardId};
use crate::kv::{Cf, FrozenVisitor, KvEngine, WriteBatch};
use crate::labels::{
    LabelLimits, Labels, LabelsError, METRIC_NAME, TENANT_LABEL, encode_pairs, hash_encoded, validate,
};
use crate::matcher::Matcher;
use crate::outcome::{ApplyOutcome, RejectReason, SeriesLimits};
use crate::record::{RecordBuilder, SeriesKey};
use crate::shard::{ApplyRules, Persisted, SeriesSnapshot, Shard, bucket_of};
use crate::stage::{self, ShardStage};

/// A source of wall-clock time (injected so tests can move time).
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock that shows what it was last set to: for tests and simulations that move time
/// themselves.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock showing `ms` (milliseconds since the Unix epoch).
    pub fn at(ms: i64) -> std::sync::Arc<ManualClock> {
        std::sync::Arc::new(ManualClock(ms.into()))
    }

    /// Sets the time shown to `ms`.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A replicated shard's open buckets are compacted after every this many checkpoints.
const OPEN_COMPACTION_EVERY: u64 = 8;

/// Settings of a [`Db`].
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// Number of shards; fixed when the data directory is created. Default 4.
    pub shards: u32,
    /// Data older than this is dropped, in whole 2-hour buckets. Default 15 days.
    pub retention: Duration,
    /// Out-of-order window (Prometheus `out_of_order_time_window`). Default 0 (off).
    pub out_of_order_window: Duration,
    /// Checkpoint the shards that applied the most log since their last checkpoint once all
    /// of a node's shards together applied this many bytes since theirs (bounds the log a
    /// node keeps on disk). Default 16 MiB.
    pub checkpoint_log_bytes: u64,
    /// How often the maintenance thread wakes up. Default 5 seconds.
    pub maintenance_tick: Duration,
    /// Samples newer than the clock plus this are refused before they are logged
    /// ([`Db::admit`]; Mimir's `creation_grace_period`). Default 10 minutes.
    pub max_future: Duration,
    /// Limits on the labels of a series in a log record ([`Db::admit`]). Default
    /// [`LabelLimits::default`] (Mimir's: 30 labels, names of 1024 bytes, values of 2048).
    pub label_limits: LabelLimits,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            shards: 4,
            retention: Duration::from_secs(15 * 86_400),
            out_of_order_window: Duration::ZERO,
            checkpoint_log_bytes: 16 << 20,
            maintenance_tick: Duration::from_secs(5),
            max_future: Duration::from_secs(600),
            label_limits: LabelLimits::default(),
        }
    }
}

/// Data-directory format: replicated shards (the log CF holds Raft entries). Format 1 (a
/// local group-commit log) was written by pre-release builds only.
const FORMAT: u32 = 2;

struct Shards {
    shards: Vec<Shard>,
    rules: ApplyRules,
}

/// Series being gathered for one write, already split by shard: one log record per shard
/// ([`SeriesBatch::into_records`]), each proposed to its shard's group.
#[derive(Debug)]
pub struct SeriesBatch {
    shards: u32,
    builders: Vec<RecordBuilder>,
    scratch: Vec<u8>,
    limits: SeriesLimits,
}

impl SeriesBatch {
    /// An empty batch splitting series over `shards` shards (by [`shard_of`]).
    pub fn new(shards: u32) -> SeriesBatch {
        SeriesBatch {
            shards,
            builders: (0..shards).map(|_| RecordBuilder::default()).collect(),
            scratch: Vec::new(),
            limits: SeriesLimits::default(),
        }
    }

    /// Sets the limits on the writer's series that admission enforces (default none).
    pub fn set_limits(&mut self, limits: SeriesLimits) {
        self.limits = limits;
    }

    /// The limits on the writer's series ([`SeriesBatch::set_limits`]).
    pub fn limits(&self) -> SeriesLimits {
        self.limits
    }

    /// The same series split over `shards` shards instead (a batch built before the shard
    /// count was known). A record of the batch that does not decode (a bug: the batch built
    /// it) fails the whole batch rather than drop its series.
    pub fn reshard(self, shards: u32) -> std::result::Result<SeriesBatch, AdmitError> {
        if shards == self.shards {
            return Ok(self);
        }
        let mut out = SeriesBatch::new(shards);
        out.limits = self.limits;
        for (_, rec) in self.into_records() {
            for s in crate::record::decode(&rec).ok_or(AdmitError::Undecodable)? {
                if s.reference.is_some() {
                    return Err(AdmitError::NotCanonical);
                }
                if s.samples.clone().next().is_some() {
                    out.add_encoded(s.labels, s.samples);
                }
                let hists: Vec<(i64, crate::FloatHistogram)> = s.histograms.collect();
                if !hists.is_empty() {
                    out.add_histograms_encoded(s.labels, &hists);
                }
            }
        }
        Ok(out)
    }

    /// The number of shards the batch splits series over.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// One log record per shard that received series, by shard id.
    pub fn into_records(self) -> Vec<(ShardId, Vec<u8>)> {
        self.builders
            .into_iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, b)| (i as ShardId, b.finish()))
            .collect()
    }

    /// Adds a series given as borrowed label pairs in any order (validated and
    /// canonicalised in place by [`validate`] without limits, without allocating per
    /// label). A series without samples is only validated.
    pub fn add<'a, I>(&mut self, pairs: &mut Vec<(&'a str, &'a str)>, samples: I) -> Result<(), LabelsError>
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<Sample>,
    {
        validate(pairs, &LabelLimits::NONE)?;
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return Ok(());
        }
        let mut enc = std::mem::take(&mut self.scratch);
        enc.clear();
        encode_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())), &mut enc);
        self.add_encoded(&enc, samples);
        self.scratch = enc;
        Ok(())
    }

    /// Adds the native histogram samples of a series (labels as for [`SeriesBatch::add`]).
    pub fn add_histograms<'a>(
        &mut self,
        pairs: &mut Vec<(&'a str, &'a str)>,
        hists: &[(i64, crate::FloatHistogram)],
    ) -> Result<(), LabelsError> {
        validate(pairs, &LabelLimits::NONE)?;
        if hists.is_empty() {
            return Ok(());
        }
        let mut enc = std::mem::take(&mut self.scratch);
        enc.clear();
        encode_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())), &mut enc);
        self.add_histograms_encoded(&enc, hists);
        self.scratch = enc;
        Ok(())
    }

    /// Adds native histogram samples of a series by its canonical label encoding (as
    /// [`SeriesBatch::add_encoded`]).
    pub fn add_histograms_encoded(&mut self, enc: &[u8], hists: &[(i64, crate::FloatHistogram)]) {
        let shard = shard_of(hash_encoded(enc), self.shards);
        self.builders[shard as usize].add_histograms(enc, hists);
    }

    /// Adds a series by its canonical label encoding ([`crate::Labels::encode`] of valid
    /// labels: the caller validated them once and reuses the encoding, as a scraper does).
    pub fn add_encoded<I>(&mut self, enc: &[u8], samples: I)
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<Sample>,
    {
        let shard = shard_of(hash_encoded(enc), self.shards);
        self.builders[shard as usize].add(enc, samples);
    }
}

/// Why [`Db::admit`] refused a log record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The record does not decode.
    #[error("undecodable record")]
    Undecodable,
    /// A series of the record belongs to another shard.
    #[error("a series of the record belongs to another shard than {0}")]
    WrongShard(ShardId),
    /// A series' labels are not in canonical form (sorted, unique, no empty value, UTF-8).
    #[error("a series of the record has labels that are not in canonical form")]
    NotCanonical,
    /// A series' labels are invalid or over a limit.
    #[error(transparent)]
    Labels(#[from] LabelsError),
}

/// Canonical label bytes shown as a label set (decoded only when an error is written).
struct EncodedLabels<'a>(&'a [u8]);

impl std::fmt::Display for EncodedLabels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match Labels::decode(self.0) {
            Some(l) => l.fmt(f),
            None => f.write_str("{?}"),
        }
    }
}

/// A selected series with its samples in range, sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// The series.
    pub labels: Labels,
    /// Samples within the range, ascending, unique timestamps.
    pub samples: Vec<Sample>,
    /// Native histogram samples within the range, ascending, with the counter-reset hints
    /// storage gives them ([`crate::histogram::stored_hint`]).
    pub histograms: Vec<crate::histogram::HistogramSample>,
}

/// Checkpoint counters, for self-metrics.
#[derive(Debug, Default)]
pub struct CheckpointStats {
    /// Shard checkpoints written.
    pub checkpoints: AtomicU64,
    /// Time spent in checkpoints (head encode + synced batch), in microseconds.
    pub checkpoint_micros: AtomicU64,
}

/// Head statistics, for self-metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadStats {
    /// Series in the index.
    pub series: usize,
    /// Bytes held by open chunks.
    pub head_chunk_bytes: usize,
}

struct Stop {
    flag: Mutex<bool>,
    cv: Condvar,
}

/// A single-node time-series database over a [`KvEngine`].
pub struct Db {
    kv: Arc<dyn KvEngine>,
    shards: Arc<Shards>,
    cfg: DbConfig,
    clock: Arc<dyn Clock>,
    stop: Arc<Stop>,
    maint: Mutex<Option<thread::JoinHandle<()>>>,
    closed: AtomicBool,
    checkpoint_stats: CheckpointStats,
    /// Bucket of the retention cutoff at the last retention pass.
    retention_bucket: AtomicI64,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Maps a series hash to a shard (uniform, stable).
pub fn shard_of(hash: u64, shards: u32) -> ShardId {
    ((u128::from(hash) * u128::from(shards)) >> 64) as ShardId
}

fn check_settings(kv: &dyn KvEngine, cfg: &DbConfig) -> Result<()> {
    let key = keys::meta_key(keys::NODE_SHARD, keys::META_SETTINGS);
    let want = [FORMAT.to_be_bytes(), cfg.shards.to_be_bytes()].concat();
    let field =
        |v: &[u8], i: usize| v.get(i * 4..i * 4 + 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
    match kv.get(Cf::Meta, &key)? {
        Some(v) if v == want => Ok(()),
        Some(v) if field(&v, 0) != Some(FORMAT) => Err(Error::Mismatch(format!(
            "the data directory has format {:?}, this node needs format {FORMAT}; start from an empty directory",
            field(&v, 0),
        ))),
        Some(v) => Err(Error::Mismatch(format!(
            "the data directory has {:?} shards, configured {} (the shard count is fixed at creation)",
            field(&v, 1),
            cfg.shards
        ))),
        None => {
            let mut b = WriteBatch::default();
            b.put(Cf::Meta, key, want);
            kv.write(&b, true)
        }
    }
}

impl Db {
    /// Opens (or creates) the database of a storage node and starts its retention thread.
    /// Its shards are replicated: each shard's Raft log is its WAL, writes arrive through
    /// [`Db::apply_record`] (after [`Db::admit`]) and checkpoints happen when Raft
    /// snapshots ([`Db::checkpoint_shard`]); a shard reopens at its last checkpoint and its
    /// group re-applies the log after it.
    pub fn open(kv: Arc<dyn KvEngine>, cfg: DbConfig, clock: Arc<dyn Clock>) -> Result<Arc<Db>> {
        if cfg.shards == 0 {
            return Err(Error::Mismatch("shards must be at least 1".into()));
        }
        check_settings(kv.as_ref(), &cfg)?;
        let started = Instant::now();
        let shards = (0..cfg.shards).map(|i| Shard::open(i, kv.clone())).collect::<Result<Vec<_>>>()?;
        let rules = ApplyRules { ooo_window_ms: cfg.out_of_order_window.as_millis() as i64 };
        let shards = Arc::new(Shards { shards, rules });
        tracing::info!(
            shards = cfg.shards,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "database opened"
        );
        let db = Arc::new(Db {
            kv,
            shards,
            cfg,
            clock,
            stop: Arc::new(Stop { flag: Mutex::new(false), cv: Condvar::new() }),
            maint: Mutex::new(None),
            closed: AtomicBool::new(false),
            checkpoint_stats: CheckpointStats::default(),
            retention_bucket: AtomicI64::new(i64::MIN),
        });
        let weak = Arc::downgrade(&db);
        let stop = db.stop.clone();
        let tick = db.cfg.maintenance_tick;
        let handle = thread::Builder::new()
            .name("strata-maint".into())
            .spawn(move || {
                loop {
                    {
                        let mut stopped = stop.flag.lock();
                        if !*stopped {
                            stop.cv.wait_for(&mut stopped, tick);
                        }
                        if *stopped {
                            return;
                        }
                    }
                    let Some(db) = weak.upgrade() else { return };
                    if let Err(e) = db.maintain(false) {
                        tracing::error!(error = %e, "maintenance failed");
                    }
                }
            })
            .map_err(|e| Error::Kv(format!("spawn maintenance thread: {e}")))?;
        *db.maint.lock() = Some(handle);
        Ok(db)
    }

    /// The configuration in force.
    pub fn config(&self) -> &DbConfig {
        &self.cfg
    }

    /// One maintenance round: applies retention when its cutoff entered a new bucket since
    /// the last round (always with `force`).
    pub fn maintain(&self, force: bool) -> Result<()> {
        let cutoff = self.clock.now_ms() - self.cfg.retention.as_millis() as i64;
        // retention only has work when the cutoff entered a new bucket
        let due_retention =
            force || self.retention_bucket.swap(bucket_of(cutoff), Ordering::Relaxed) != bucket_of(cutoff);
        if due_retention {
            for s in &self.shards.shards {
                s.retain(cutoff)?;
            }
        }
        Ok(())
    }

    fn timed_checkpoint(&self, s: &Shard, extra: Vec<(Vec<u8>, Vec<u8>)>) -> Result<u64> {
        let started = Instant::now();
        let applied = s.checkpoint(extra)?;
        let st = &self.checkpoint_stats;
        st.checkpoints.fetch_add(1, Ordering::Relaxed);
        st.checkpoint_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(applied)
    }

    pub(crate) fn shard(&self, shard: ShardId) -> Result<&Shard> {
        self.shards.shards.get(shard as usize).ok_or(Error::NoSuchShard(shard))
    }

    /// Applies entry `index` of `shard`'s replicated log (a record built by
    /// [`SeriesBatch::into_records`]). Deterministic given the shard's state; an engine
    /// error (a failed read) leaves the shard as it was.
    pub fn apply_record(&self, shard: ShardId, index: u64, record: &[u8]) -> Result<ApplyOutcome> {
        self.shard(shard)?.apply(index, record, self.shards.rules)
    }

    /// Drops `shard`'s in-memory state (head, counters, watermark) and loads it again from
    /// its last checkpoint: a replicated shard whose group restarts after a storage error
    /// re-applies the log from there.
    pub fn reload_shard(&self, shard: ShardId) -> Result<()> {
        self.shard(shard)?.reload()
    }

    /// Checkpoints a replicated shard: its head, new index entries, watermark and `extra`
    /// meta entries (the Raft state that goes with the watermark) in one synced batch, then
    /// compacts its finished buckets, and every `OPEN_COMPACTION_EVERY`th (8th) time its open
    /// ones too (each checkpoint adds a segment per written series to the open bucket: the
    /// segments a read of recent data decodes stay few however often checkpoints come).
    /// The log is left to Raft. Returns the watermark.
    pub fn checkpoint_shard(&self, shard: ShardId, extra: Vec<(Vec<u8>, Vec<u8>)>) -> Result<u64> {
        let s = self.shard(shard)?;
        let applied = self.timed_checkpoint(s, extra)?;
        let open = s.checkpoints().is_multiple_of(OPEN_COMPACTION_EVERY);
        let merged = s.compact(self.shards.rules, open)?;
        if merged > 0 {
            tracing::debug!(shard, merged, "compacted finished buckets");
        }
        Ok(applied)
    }

    /// Merges every bucket's persisted segments of every shard into packed chunks (the
    /// open buckets too): what a clean shutdown of a replicated node does after its final
    /// checkpoints. Data is unchanged.
    pub fn compact_all(&self) -> Result<()> {
        for s in &self.shards.shards {
            s.compact(self.shards.rules, true)?;
        }
        Ok(())
    }

    /// Bytes of log records applied to `shard` since its last checkpoint.
    pub fn shard_log_bytes(&self, shard: ShardId) -> Result<u64> {
        Ok(self.shard(shard)?.log_bytes())
    }

    /// The last log index applied to `shard`.
    pub fn shard_applied(&self, shard: ShardId) -> Result<u64> {
        Ok(self.shard(shard)?.applied())
    }

    /// Visits the persisted state of `shard` (its last checkpoint; every column family but
    /// the log) as it was at one moment, family by family, keys ascending: what a snapshot
    /// sends to another replica. Checkpoints go on while the visit lasts.
    pub fn export_shard(&self, shard: ShardId, f: &mut FrozenVisitor<'_>) -> Result<()> {
        self.shard(shard)?.export(f)
    }

    /// Starts staging, in files under `dir`, another replica's [`Db::export_shard`] of
    /// `shard`, for [`Db::install_shard`].
    pub fn stage_shard(&self, shard: ShardId, dir: &Path) -> Result<ShardStage> {
        self.shard(shard)?.stage(dir)
    }

    /// Replaces `shard`'s persisted state with what a finished [`ShardStage`] left in `dir`,
    /// and reloads it. The staged files stay (the caller removes `dir`): an install
    /// interrupted by a crash is done again from them, to the same end.
    pub fn install_shard(&self, shard: ShardId, dir: &Path) -> Result<()> {
        let links = stage::ingest_links(&stage::staged_files(dir)?)?;
        self.shard(shard)?.install(&links)
    }

    /// Empties `shard` (a replica that moved elsewhere).
    pub fn clear_shard(&self, shard: ShardId) -> Result<()> {
        self.shard(shard)?.install(&[])
    }

    /// Checkpoint counters.
    pub fn checkpoint_stats(&self) -> &CheckpointStats {
        &self.checkpoint_stats
    }

    /// The newest timestamp a sample may have now: the clock plus `max_future`.
    pub fn max_time(&self) -> i64 {
        let ahead = i64::try_from(self.cfg.max_future.as_millis()).unwrap_or(i64::MAX);
        self.clock.now_ms().saturating_add(ahead)
    }

    /// What a log record must pass before it is logged, wherever it comes from (a local
    /// batch, a shard group's proposal, a `Storage.Write` from the network): it decodes,
    /// every series' labels are canonical and pass [`validate`] with the configured
    /// limits (else the whole record is refused), and samples newer than
    /// [`Db::max_time`] are dropped one by one ([`RejectReason::TooFarInFuture`]): apply
    /// moves a shard's newest time to any sample it stores, and every later sample is
    /// checked against that. With `shard` (a record from the network), every series must
    /// belong to that shard; `None` is for a record this node split by shard itself
    /// ([`SeriesBatch`] with the database's shard count), whose series are not checked against it.
    /// Series the shard holds and wrote to within the last half of the retention are named
    /// by reference in the record logged (`Shard::references`, `record.rs`), and a record
    /// carrying a reference is refused (only admission writes them).
    /// New series past the writer's [`SeriesLimits`] are refused with their samples.
    /// Returns the record to log (`None` when nothing is left; the record itself when
    /// nothing changed) and the samples refused.
    pub fn admit(
        &self,
        shard: Option<ShardId>,
        record: Vec<u8>,
        limits: SeriesLimits,
    ) -> std::result::Result<(Option<Vec<u8>>, ApplyOutcome), AdmitError> {
        let max_t = self.max_time();
        let series = crate::record::decode(&record).ok_or(AdmitError::Undecodable)?;
        // (hash, labels) of every series, to name those the shard holds by reference
        let mut keyed = Vec::with_capacity(series.len());
        for s in &series {
            if s.reference.is_some() {
                // only this function writes references, after the checks below
                return Err(AdmitError::NotCanonical);
            }
            let h = hash_encoded(s.labels);
            if let Some(shard) = shard
                && shard_of(h, self.cfg.shards) != shard
            {
                return Err(AdmitError::WrongShard(shard));
            }
            keyed.push((h, s.labels));
        }
        let target = keyed
            .first()
            .and_then(|&(h, _)| self.shard(shard.unwrap_or_else(|| shard_of(h, self.cfg.shards))).ok());
        let refs = match target {
            Some(sh) => {
                let fresh = self.clock.now_ms().saturating_sub(self.cfg.retention.as_millis() as i64 / 2);
                sh.references(&keyed, fresh)
            }
            None => Vec::new(),
        };
        let mut pairs = Vec::new();
        let mut late = false;
        // (tenant, metric name) of every series, with limits
        let mut owners = Vec::new();
        for (i, s) in series.iter().enumerate() {
            // a series the shard holds under these very bytes was checked (UTF-8, canonical
            // form) when it came: only the limits, which may have changed since, are checked
            // again, on the encoding's lengths
            let held =
                refs.get(i) == Some(&true) && crate::labels::encoded_within(s.labels, &self.cfg.label_limits);
            if held {
                if limits.any() {
                    // not looked at: the series limits count only series the shard lacks
                    owners.push(("", ""));
                }
            } else {
                crate::labels::decode_pairs(s.labels, &mut pairs).ok_or(AdmitError::NotCanonical)?;
                let canonical =
                    pairs.is_sorted_by(|a, b| a.0 < b.0) && pairs.iter().all(|(_, v)| !v.is_empty());
                validate(&mut pairs, &self.cfg.label_limits)?;
                if !canonical {
                    return Err(AdmitError::NotCanonical);
                }
                if limits.any() {
                    let value = |name| pairs.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| *v);
                    owners.push((value(TENANT_LABEL), value(METRIC_NAME)));
                }
            }
            late |= s.samples.clone().any(|(t, _)| t > max_t) || s.histograms.clone().any(|(t, _)| t > max_t);
        }
        let over = match target {
            Some(sh) if limits.any() => over_limits(sh, &keyed, &owners, limits, self.cfg.shards),
            _ => Vec::new(),
        };
        let mut out = ApplyOutcome::default();
        if !late && !refs.contains(&true) && !over.iter().any(Option::is_some) {
            return Ok((if series.is_empty() { None } else { Some(record) }, out));
        }
        // the points of one series at or before `max_t`; the others are refused
        fn admitted<T>(
            points: impl Iterator<Item = (i64, T)>,
            max_t: i64,
            shown: &EncodedLabels<'_>,
            out: &mut ApplyOutcome,
        ) -> Vec<(i64, T)> {
            points
                .filter(|(t, _)| {
                    let keep = *t <= max_t;
                    if !keep {
                        out.reject(RejectReason::TooFarInFuture, shown, *t);
                    }
                    keep
                })
                .collect()
        }
        let mut b = RecordBuilder::default();
        for (i, s) in series.into_iter().enumerate() {
            let key = match refs.get(i) {
                Some(true) => SeriesKey::Ref(keyed[i].0),
                _ => SeriesKey::Labels(s.labels),
            };
            let shown = EncodedLabels(s.labels);
            if let Some(Some((why, limit))) = over.get(i) {
                let n = s.samples.count() + s.histograms.count();
                out.reject_series(*why, *limit, &shown, n as u64);
                continue;
            }
            if !late {
                let encoded = s.encoded_samples();
                if encoded.0 > 0 {
                    b.add_encoded(key, encoded);
                }
            } else {
                let kept = admitted(s.samples, max_t, &shown, &mut out);
                if !kept.is_empty() {
                    b.add_keyed(key, &kept);
                }
            }
            let hists = admitted(s.histograms, max_t, &shown, &mut out);
            if !hists.is_empty() {
                b.add_histograms(s.labels, &hists);
            }
        }
        Ok(((!b.is_empty()).then(|| b.finish()), out))
    }

    fn snapshots(
        &self,
        only: Option<ShardId>,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        samples: bool,
    ) -> Vec<(usize, SeriesSnapshot)> {
        let mut all: Vec<(usize, SeriesSnapshot)> = self
            .shards
            .shards
            .iter()
            .enumerate()
            .filter(|(i, _)| only.is_none_or(|o| o as usize == *i))
            .flat_map(|(i, s)| s.snapshot(matchers, mint, maxt, samples).into_iter().map(move |x| (i, x)))
            .collect();
        all.sort_by(|a, b| a.1.labels.cmp(&b.1.labels));
        all
    }

    /// Streams the series matching `matchers` with their samples in `[mint, maxt]`,
    /// sorted by labels. Series with no sample in range are skipped.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Select<'_> {
        self.select_in(None, matchers, mint, maxt)
    }

    /// [`Db::select`] over one shard.
    pub fn select_shard(&self, shard: ShardId, matchers: &[Matcher], mint: i64, maxt: i64) -> Select<'_> {
        self.select_in(Some(shard), matchers, mint, maxt)
    }

    fn select_in(&self, only: Option<ShardId>, matchers: &[Matcher], mint: i64, maxt: i64) -> Select<'_> {
        Select {
            db: self,
            snaps: self.snapshots(only, matchers, mint, maxt, true).into_iter(),
            ready: std::collections::VecDeque::new(),
            mint,
            maxt,
            forward: false,
        }
    }

    /// Label sets of series matching `matchers` with data in the range (day granularity),
    /// sorted; of one shard, or of all with `None`.
    pub fn series(&self, only: Option<ShardId>, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Labels> {
        self.snapshots(only, matchers, mint, maxt, false).into_iter().map(|(_, s)| s.labels).collect()
    }

    fn shards_in(&self, only: Option<ShardId>) -> impl Iterator<Item = &Shard> {
        self.shards
            .shards
            .iter()
            .enumerate()
            .filter(move |(i, _)| only.is_none_or(|o| o as usize == *i))
            .map(|x| x.1)
    }

    /// Sorted label names, of all series or of those matching `matchers`; of one shard, or
    /// of all with `None`.
    pub fn label_names(
        &self,
        only: Option<ShardId>,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let mut v: Vec<String> =
            self.shards_in(only).flat_map(|s| s.label_names(matchers, mint, maxt)).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Sorted values of label `name`; of one shard, or of all with `None`.
    pub fn label_values(
        &self,
        only: Option<ShardId>,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let mut v: Vec<String> =
            self.shards_in(only).flat_map(|s| s.label_values(name, matchers, mint, maxt)).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Head statistics.
    pub fn head_stats(&self) -> HeadStats {
        let mut h = HeadStats::default();
        for s in &self.shards.shards {
            let (n, b) = s.head_stats();
            h.series += n;
            h.head_chunk_bytes += b;
        }
        h
    }

    /// Stops maintenance and flushes the engine. Checkpoints are the shard groups' (a
    /// replicated shard's checkpoint carries its Raft state): their owner takes them first.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        *self.stop.flag.lock() = true;
        self.stop.cv.notify_all();
        if let Some(h) = self.maint.lock().take() {
            let _ = h.join();
        }
        self.kv.flush()
    }
}

/// For each series of a record for shard `sh` (`keyed`: hash and labels, `owners`: tenant
/// and metric name), whether it is a new series past `limits` (the reason and the limit):
/// the shard takes its share, `ceil(limit / shards)`, of each tenant's series and of each
/// tenant's series of one metric name, counting those of the record it admits.
fn over_limits(
    sh: &Shard,
    keyed: &[(u64, &[u8])],
    owners: &[(&str, &str)],
    limits: SeriesLimits,
    shards: u32,
) -> Vec<Option<(RejectReason, usize)>> {
    let share = |limit: usize| limit.div_ceil(shards.max(1) as usize);
    let mut tenants: HashMap<&str, usize> = HashMap::new();
    let mut metrics: HashMap<(&str, &str), usize> = HashMap::new();
    let mut out = Vec::with_capacity(keyed.len());
    for ((_, labels), (tenant, metric)) in keyed.iter().zip(owners) {
        if sh.contains(labels) {
            out.push(None);
            continue;
        }
        // each count is looked up once per record, and only for a limit that is set
        let held = (limits.max_per_tenant > 0)
            .then(|| tenants.entry(tenant).or_insert_with(|| sh.count_label_value(TENANT_LABEL, tenant)));
        let of_metric = (limits.max_per_metric > 0).then(|| {
            metrics
                .entry((tenant, metric))
                .or_insert_with(|| sh.count_of_metric(TENANT_LABEL, tenant, metric))
        });
        let verdict = if held.as_ref().is_some_and(|n| **n >= share(limits.max_per_tenant)) {
            Some((RejectReason::SeriesLimit, limits.max_per_tenant))
        } else if of_metric.as_ref().is_some_and(|n| **n >= share(limits.max_per_metric)) {
            Some((RejectReason::MetricSeriesLimit, limits.max_per_metric))
        } else {
            held.into_iter().chain(of_metric).for_each(|n| *n += 1);
            None
        };
        out.push(verdict);
    }
    out
}

/// Series read from the engine per batch of [`Select`].
const SERIES_PER_READ: usize = 256;

/// Iterator of [`Db::select`]: reads the chunks of the series in batches as it reaches them,
/// one engine iterator per shard and batch.
pub struct Select<'a> {
    db: &'a Db,
    snaps: std::vec::IntoIter<(usize, SeriesSnapshot)>,
    ready: std::collections::VecDeque<(SeriesData, Vec<Vec<u8>>)>,
    mint: i64,
    maxt: i64,
    /// Whether float chunks of buckets wholly in range are handed out as stored.
    forward: bool,
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select").field("remaining", &(self.snaps.len() + self.ready.len())).finish()
    }
}

impl<'a> Select<'a> {
    /// The same selection with the packed float chunks of buckets wholly in `[mint, maxt]`
    /// as they are stored, not decoded (what a storage node sends a querier): each series comes
    /// with those chunks, oldest first, and the rest of its samples decoded. The samples of
    /// the series are the chunks' decoded in that order, then the rest, sorted by time with
    /// the later of equal timestamps kept ([`chunk::sort_dedup`]). A series with histogram
    /// samples comes wholly decoded (their counter-reset hints depend on its floats).
    pub fn forwarding(mut self) -> Forwarding<'a> {
        self.forward = true;
        Forwarding(self)
    }

    /// Reads the next batch of series into `ready`.
    fn fill(&mut self) -> Result<()> {
        let batch: Vec<(usize, SeriesSnapshot)> = self.snaps.by_ref().take(SERIES_PER_READ).collect();
        let mut persisted: Vec<Persisted> = vec![Persisted::default(); batch.len()];
        for (shard, s) in self.db.shards.shards.iter().enumerate() {
            let idx: Vec<usize> = (0..batch.len()).filter(|&i| batch[i].0 == shard).collect();
            if idx.is_empty() {
                continue;
            }
            let ids: Vec<(u64, (u32, u32), Option<i64>)> =
                idx.iter().map(|&i| (batch[i].1.id, batch[i].1.days, batch[i].1.cached_bucket)).collect();
            for (i, v) in
                idx.into_iter().zip(s.read_persisted_many(&ids, self.mint, self.maxt, self.forward)?)
            {
                persisted[i] = v;
            }
        }
        for ((shard, snap), p) in batch.into_iter().zip(persisted) {
            let Persisted { mut samples, mut histograms, mut stored } = p;
            histograms.extend(snap.head_hists);
            if !histograms.is_empty() && !stored.is_empty() {
                samples = chunk::join_forwarded(&std::mem::take(&mut stored), samples).ok_or_else(|| {
                    Error::Corrupt { shard: shard as ShardId, what: "a stored chunk".into() }
                })?;
            }
            // head data is newer than anything persisted: it goes last and wins ties
            samples.extend_from_slice(&snap.head);
            chunk::sort_dedup(&mut samples);
            if !histograms.is_empty() {
                crate::histogram::settle(&mut histograms, &samples);
            }
            if !samples.is_empty() || !histograms.is_empty() || !stored.is_empty() {
                self.ready.push_back((SeriesData { labels: snap.labels, samples, histograms }, stored));
            }
        }
        Ok(())
    }

    fn next_forwarded(&mut self) -> Option<Result<(SeriesData, Vec<Vec<u8>>)>> {
        while self.ready.is_empty() {
            if self.snaps.len() == 0 {
                return None;
            }
            if let Err(e) = self.fill() {
                return Some(Err(e));
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

/// [`Select::forwarding`]: each series with the stored float chunks of its whole buckets.
#[derive(Debug)]
pub struct Forwarding<'a>(Select<'a>);

impl Iterator for Forwarding<'_> {
    type Item = Result<(SeriesData, Vec<Vec<u8>>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_forwarded()
    }
}

impl Iterator for Select<'_> {
    type Item = Result<SeriesData>;

    fn next(&mut self) -> Option<Self::Item> {
        // not forwarding: every chunk was decoded
        self.next_forwarded().map(|r| r.map(|(s, _)| s))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "close on drop failed");
        }
    }
}
