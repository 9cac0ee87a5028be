//! # strata-tsdb — the storage engine
//!
//! Owns how samples are stored on one node; knows nothing of Raft, HTTP or PromQL.
//!
//! * **Write path.** A writer splits a batch by shard ([`shard_of`] over the stable hash of
//!   the canonical labels) into one log record per shard ([`SeriesBatch`], [`record`]); each
//!   passes [`Db::admit`], is made durable by its shard's Raft group (the WAL; `strata-raft`)
//!   and comes back through [`Db::apply_record`] in log order. Apply appends to the shard's
//!   head: one open XOR chunk per series ([`chunk::XorAppender`]), checked for order and
//!   duplicates as Prometheus does.
//! * **Checkpoints.** When its group snapshots, a shard writes its head chunks, new index
//!   entries and its applied watermark in one synced batch ([`Db::checkpoint_shard`]);
//!   restart loads the index and the group re-applies its log after the watermark.
//! * **Compaction.** When a 2-hour bucket can no longer receive samples, its segments are
//!   merged into one packed chunk per series ([`chunk::encode_packed`]).
//! * **Retention** drops whole buckets and day entries with range deletes.
//! * **Reads.** [`Db::select`] resolves matchers on the in-memory postings, snapshots head
//!   samples under the shard lock, then streams persisted chunks per series.
//!
//! Persistence goes through the [`KvEngine`] trait ([`kv`]); the key layout is in [`keys`].

pub mod chunk;
mod db;
mod error;
pub mod histogram;
mod index;
pub mod keys;
pub mod kv;
pub mod labels;
pub mod matcher;
mod outcome;
pub mod record;
mod shard;
mod stage;
pub mod varint;

pub use db::{
    AdmitError, CheckpointStats, Clock, Db, DbConfig, Forwarding, HeadStats, ManualClock, Select,
    SeriesBatch, SeriesData, SystemClock, shard_of,
};
pub use error::{Error, Result};
pub use histogram::FloatHistogram;
pub use kv::{Cf, CfRange, KvEngine, MemEngine, WriteBatch};
pub use labels::{Label, LabelLimits, Labels, LabelsError, METRIC_NAME, TENANT_LABEL};
pub use matcher::{MatchOp, Matcher};
pub use outcome::{ApplyOutcome, RejectReason, SeriesLimits};
pub use shard::{BUCKET_MS, bucket_of};
pub use stage::{STAGE_FILE_BYTES, ShardStage, sync_dir};

/// Prometheus's staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `v` is a staleness marker (compared bit-exactly).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod go_regex_table;
#[cfg(test)]
mod tests;
