//! What applying a write did: samples accepted, samples rejected and why.

use std::fmt;

/// Why a sample was not stored (Prometheus's storage errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Older than the series' newest sample (no out-of-order window).
    OutOfOrder,
    /// Same timestamp as the newest sample with another value.
    Duplicate,
    /// Older than the head's lower bound (newest − 1 h) with no out-of-order window.
    OutOfBounds,
    /// Older than the out-of-order window allows.
    TooOld,
    /// Newer than the node's clock plus the accepted future (`--ingest.max-future`),
    /// refused before the write is logged: such a sample would move the shard's newest
    /// time, and with it the bound every later sample is checked against.
    TooFarInFuture,
    /// A new series of a tenant that holds its share of `max_per_tenant` series in the
    /// shard ([`SeriesLimits`]).
    SeriesLimit,
    /// A new series of a metric name that holds its share of `max_per_metric` series of
    /// its tenant in the shard.
    MetricSeriesLimit,
}

impl RejectReason {
    /// Every reason, in a fixed order (the index of [`ApplyOutcome::rejected`]).
    pub const ALL: [RejectReason; 7] = [
        RejectReason::OutOfOrder,
        RejectReason::Duplicate,
        RejectReason::OutOfBounds,
        RejectReason::TooOld,
        RejectReason::TooFarInFuture,
        RejectReason::SeriesLimit,
        RejectReason::MetricSeriesLimit,
    ];

    /// Prometheus's error text.
    pub fn message(self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "out of order sample",
            RejectReason::Duplicate => "duplicate sample for timestamp",
            RejectReason::OutOfBounds => "out of bounds",
            RejectReason::TooOld => "too old sample",
            RejectReason::TooFarInFuture => "received a sample whose timestamp is too far in the future",
            RejectReason::SeriesLimit => "per-user series limit exceeded",
            RejectReason::MetricSeriesLimit => "per-metric series limit exceeded",
        }
    }

    /// The metric label value (Mimir's `reason` of `cortex_discarded_samples_total`).
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "sample_out_of_order",
            RejectReason::Duplicate => "sample_duplicate_timestamp",
            RejectReason::OutOfBounds => "sample_out_of_bounds",
            RejectReason::TooOld => "sample_too_old",
            RejectReason::TooFarInFuture => "too_far_in_future",
            RejectReason::SeriesLimit => "per_user_series_limit",
            RejectReason::MetricSeriesLimit => "per_metric_series_limit",
        }
    }

    fn idx(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Most series a tenant may hold (Mimir's `max_global_series_per_user` and
/// `max_global_series_per_metric`), enforced where a write is admitted (`Db::admit`): each
/// shard holds at most its share, `ceil(limit / shards)`, of a tenant's series (a tenant's
/// series hash evenly over the shards), so the limit holds across nodes without counting
/// across them. A new series past it is refused with its samples; series the shard holds
/// are always written. 0 = no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Most series of one tenant (the value of `__tenant_id__`, none for the default one).
    pub max_per_tenant: usize,
    /// Most series of one metric name of one tenant.
    pub max_per_metric: usize,
}

impl SeriesLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.max_per_tenant > 0 || self.max_per_metric > 0
    }
}

/// The result of applying one or more log records (also what a shard group's proposal
/// answers: `strata_raft::Response`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApplyOutcome {
    /// Samples stored (an identical resend of the newest sample counts as stored).
    pub accepted: u64,
    /// Samples rejected, indexed like [`RejectReason::ALL`].
    pub rejected: [u64; RejectReason::ALL.len()],
    /// Series created.
    pub new_series: u64,
    /// The first rejection, described for the client (for the metadata group: the command's
    /// error).
    pub first_error: Option<String>,
    /// For the metadata group: the command's answer, encoded as the command defines (an HA
    /// election: the election after the claim); empty otherwise.
    pub answer: Vec<u8>,
}

impl fmt::Display for ApplyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} accepted, {} rejected", self.accepted, self.rejected.iter().sum::<u64>())
    }
}

impl ApplyOutcome {
    /// Records the rejection of a new series with its `n` samples: past `limit` series
    /// ([`RejectReason::SeriesLimit`] or [`RejectReason::MetricSeriesLimit`]), in Mimir's words.
    pub fn reject_series(&mut self, why: RejectReason, limit: usize, series: &dyn fmt::Display, n: u64) {
        self.rejected[why.idx()] += n;
        if self.first_error.is_none() {
            let (kind, code, setting) = match why {
                RejectReason::MetricSeriesLimit => {
                    ("per-metric", "max-series-per-metric", "max_global_series_per_metric")
                }
                _ => ("per-user", "max-series-per-user", "max_global_series_per_user"),
            };
            let series: String = series.to_string().chars().take(200).collect();
            self.first_error = Some(format!(
                "{kind} series limit of {limit} exceeded (err-mimir-{code}). To adjust the related limit, \
                 configure {setting}. This is for series {series}"
            ));
        }
    }

    /// Records one rejection.
    pub fn reject(&mut self, why: RejectReason, series: &dyn fmt::Display, t: i64) {
        self.rejected[why.idx()] += 1;
        if self.first_error.is_none() {
            self.first_error = Some(match why {
                // Mimir's wording (err-mimir-too-far-in-future)
                RejectReason::TooFarInFuture => {
                    let series: String = series.to_string().chars().take(200).collect();
                    format!(
                        "{why}, timestamp: {t} series: '{series}' (err-mimir-too-far-in-future). To adjust \
                         the related limit, configure --ingest.max-future"
                    )
                }
                _ => format!("{why} for series {series} at timestamp {t}"),
            });
        }
    }

    /// Adds another outcome into this one.
    pub fn merge(&mut self, o: ApplyOutcome) {
        self.accepted += o.accepted;
        self.new_series += o.new_series;
        for (a, b) in self.rejected.iter_mut().zip(o.rejected) {
            *a += b;
        }
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    /// Total samples rejected.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}
