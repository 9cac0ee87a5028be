//! The error type of the cluster roles, and its mapping to gRPC status codes (in one place).

use strata_promql::QueryError;
use strata_raft::GroupId;

/// What can go wrong in a storage node or a cluster client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local storage engine failed.
    #[error("storage: {0}")]
    Storage(#[from] strata_tsdb::Error),
    /// A Raft group failed or refused.
    #[error(transparent)]
    Raft(#[from] strata_raft::Error),
    /// Invalid settings.
    #[error("config: {0}")]
    Config(String),
    /// No cluster map could be had (not bootstrapped, or no storage node reachable).
    #[error("no cluster map: {0}")]
    NoMap(String),
    /// A shard's write or read could not be done in time (no leader reachable).
    #[error("shard {shard} unavailable: {reason}")]
    Unavailable {
        /// The shard (or group).
        shard: GroupId,
        /// The last failure seen.
        reason: String,
    },
    /// The request is malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Serving failed (bind, I/O).
    #[error("server: {0}")]
    Server(String),
    /// A query evaluated on a shard failed for a reason of its own (not the replica's).
    #[error("{0}")]
    Query(#[from] strata_promql::QueryError),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::Invalid(_) => tonic::Status::invalid_argument(msg),
            Error::Unavailable { .. } | Error::NoMap(_) => tonic::Status::unavailable(msg),
            Error::Raft(strata_raft::Error::NoGroup(_)) => tonic::Status::not_found(msg),
            Error::Raft(strata_raft::Error::Unavailable(_)) => tonic::Status::unavailable(msg),
            Error::Raft(strata_raft::Error::NotLeader { .. }) => tonic::Status::failed_precondition(msg),
            Error::Config(_) => tonic::Status::failed_precondition(msg),
            Error::Storage(_) | Error::Raft(_) | Error::Server(_) => tonic::Status::internal(msg),
            Error::Query(q) => match q {
                QueryError::Parse(_) => tonic::Status::invalid_argument(msg),
                QueryError::Execution(_) => tonic::Status::failed_precondition(msg),
                QueryError::TooManySamples => tonic::Status::resource_exhausted(msg),
                QueryError::Timeout(_) => tonic::Status::deadline_exceeded(msg),
                QueryError::Unavailable(_) => tonic::Status::unavailable(msg),
                QueryError::Storage(_) => tonic::Status::internal(msg),
            },
        }
    }
}

/// The query error a storage node's status reports, or `None` when the status is the
/// replica's own failure (unreachable, overloaded, not serving the shard): another
/// replica may answer.
pub(crate) fn query_error_of(s: &tonic::Status) -> Option<QueryError> {
    let msg = s.message().to_owned();
    match s.code() {
        tonic::Code::InvalidArgument => Some(QueryError::Parse(msg)),
        tonic::Code::FailedPrecondition => Some(QueryError::Execution(msg)),
        tonic::Code::ResourceExhausted => Some(QueryError::TooManySamples),
        tonic::Code::DeadlineExceeded => Some(QueryError::Timeout("query execution on a storage node")),
        _ => None,
    }
}
