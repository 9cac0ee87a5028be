//! The engine's error type.

use crate::keys::ShardId;

/// Everything that can go wrong inside the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key-value engine underneath failed.
    #[error("storage engine: {0}")]
    Kv(String),
    /// The data directory is held by another engine (one of this process still closing,
    /// or another process).
    #[error("storage engine: {0}")]
    Busy(String),
    /// Stored bytes did not decode; the data directory is damaged or of another version.
    #[error("corrupt data in shard {shard}: {what}")]
    Corrupt {
        /// Shard whose data was being read.
        shard: ShardId,
        /// What failed to decode.
        what: String,
    },
    /// A log (WAL) record could not be made durable.
    #[error("write-ahead log of shard {shard}: {reason}")]
    Wal {
        /// Shard whose log failed.
        shard: ShardId,
        /// Why.
        reason: String,
    },
    /// A regular expression in a matcher does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    BadRegex {
        /// The pattern as given.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// The engine was opened with settings that contradict the data directory.
    #[error("data directory mismatch: {0}")]
    Mismatch(String),
    /// A shard id outside the node's shard count.
    #[error("no shard {0} on this node")]
    NoSuchShard(ShardId),
    /// A write was refused as a whole (its labels are invalid, see [`crate::Db::admit`]).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
