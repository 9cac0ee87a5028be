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

/// The gRPC metadata key naming the [`QueryError`] kind a status carries: a query's own
/// failure travels with its kind, so the querier raises exactly what the storage node did;
/// a status without it is the replica's failure (another replica may answer).
const QUERY_ERROR_KIND: &str = "strata-query-error";

/// Each [`QueryError`] kind: its status code and its name in [`QUERY_ERROR_KIND`].
fn query_kind(q: &QueryError) -> (tonic::Code, &'static str) {
    match q {
        QueryError::Parse(_) => (tonic::Code::InvalidArgument, "parse"),
        QueryError::Execution(_) => (tonic::Code::FailedPrecondition, "execution"),
        QueryError::TooManySamples => (tonic::Code::ResourceExhausted, "too-many-samples"),
        QueryError::Timeout(_) => (tonic::Code::DeadlineExceeded, "timeout"),
        QueryError::Unavailable(_) => (tonic::Code::Unavailable, "unavailable"),
        QueryError::Storage(_) => (tonic::Code::Internal, "storage"),
    }
}

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
            Error::Query(q) => {
                let (code, kind) = query_kind(&q);
                let mut status = tonic::Status::new(code, msg);
                status
                    .metadata_mut()
                    .insert(QUERY_ERROR_KIND, tonic::metadata::MetadataValue::from_static(kind));
                status
            }
        }
    }
}

/// The query error a storage node's status reports, with its kind, or `None` when the
/// status is the replica's own failure (unreachable, overloaded, not serving the shard, its
/// storage failing or unavailable): another replica may answer.
pub fn query_error_of(s: &tonic::Status) -> Option<QueryError> {
    let msg = s.message().to_owned();
    match s.metadata().get(QUERY_ERROR_KIND)?.to_str().ok()? {
        "parse" => Some(QueryError::Parse(msg)),
        "execution" => Some(QueryError::Execution(msg)),
        "too-many-samples" => Some(QueryError::TooManySamples),
        "timeout" => Some(QueryError::Timeout("query execution on a storage node")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_errors_keep_their_kind_across_grpc() {
        for q in [
            QueryError::Parse("1:1: parse error".into()),
            QueryError::Execution("vector cannot contain metrics with the same labelset".into()),
            QueryError::TooManySamples,
            QueryError::Timeout("query execution on a storage node"),
        ] {
            let status = tonic::Status::from(Error::Query(q.clone()));
            let back = query_error_of(&status).expect("a query error");
            assert_eq!((back.error_type(), back.to_string()), (q.error_type(), q.to_string()));
        }
        // the replica's own failures are not the query's: another replica may answer
        let own = [
            Error::Query(QueryError::Unavailable("the querier canceled the evaluation".into())),
            Error::Query(QueryError::Storage("I/O error".into())),
            Error::Config("bad map".into()),
            Error::Invalid("undecodable matcher".into()),
            Error::Unavailable { shard: 3, reason: "no leader".into() },
        ];
        for e in own {
            let what = e.to_string();
            assert!(query_error_of(&tonic::Status::from(e)).is_none(), "{what}");
        }
    }
}
