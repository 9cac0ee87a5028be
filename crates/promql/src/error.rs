//! Query errors, with the Prometheus API error type each maps to.

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse or does not type-check (`bad_data`, 400).
    #[error("{0}")]
    Parse(String),
    /// Evaluation failed (`execution`, 422).
    #[error("{0}")]
    Execution(String),
    /// Too many samples loaded (`execution`, 422).
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// The query ran out of time (`timeout`, 503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The storage failed (`internal`, 500).
    #[error("{0}")]
    Storage(String),
    /// Part of the data cannot be reached now (`unavailable`, 503): a shard without a
    /// reachable replica.
    #[error("{0}")]
    Unavailable(String),
}

impl QueryError {
    /// Prometheus's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::Parse(_) => "bad_data",
            QueryError::Execution(_) | QueryError::TooManySamples => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Storage(_) => "internal",
            QueryError::Unavailable(_) => "unavailable",
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
