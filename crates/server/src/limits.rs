//! Ingestion limits of remote write: what one request may hold, how many samples per
//! second a node takes (a token bucket answering 429 with `Retry-After`), and how many
//! series it keeps. Label limits and the accepted future are checked by the engine
//! (`strata_tsdb::labels::validate`, `Db::admit`) on every write path.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_tsdb::{Clock, LabelLimits};

use crate::ha::HaLimits;

/// Limits on what remote write may store.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestLimits {
    /// Limits on one series' labels (count, name and value length); a series over them is
    /// reported in the 400 and the others are stored. Default [`LabelLimits::default`]
    /// (30 labels, names of 1024 bytes, values of 2048 bytes, as Mimir).
    pub labels: LabelLimits,
    /// Most series in one request; more and the whole request gets 400 (nothing
    /// stored), before anything is decoded. 0 = no limit. Default 100,000 (Prometheus
    /// sends at most 2,000 samples per request by default).
    pub max_series_per_request: usize,
    /// Most metadata entries in one request; more and the whole request gets 400.
    /// 0 = no limit. Default 100,000.
    pub max_metadata_per_request: usize,
    /// Samples (and histogram samples) per second this node takes from remote write,
    /// over all clients; a request over the budget gets 429 with `Retry-After`, which
    /// senders retry. 0 = no limit. Default 0.
    pub rate_limit: f64,
    /// Samples the rate limit lets through at once (the bucket's size). 0 = 20 × the
    /// rate (Mimir's default ratio, 200,000 for 10,000/s). Default 0.
    pub burst: u64,
    /// Most series a tenant holds (Mimir's `max_global_series_per_user`); a write creating
    /// more gets 400 for those series (`per-user series limit … exceeded`, as Mimir: a retry
    /// cannot help until series go away, and a 429 would make a sender retry — and hold back
    /// every other series — forever), the rest is stored. Enforced where writes are admitted
    /// (standalone, the shard leaders of a cluster: each shard takes its share,
    /// `strata_tsdb::SeriesLimits`). 0 = no limit. Default 0.
    pub max_active_series: usize,
    /// Most series of one metric name a tenant holds (Mimir's
    /// `max_global_series_per_metric`), enforced as `max_active_series`. 0 = no limit.
    /// Default 0.
    pub max_active_series_per_metric: usize,
    /// HA-pair deduplication ([`HaLimits`]; off by default).
    pub ha: HaLimits,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            labels: LabelLimits::default(),
            max_series_per_request: 100_000,
            max_metadata_per_request: 100_000,
            rate_limit: 0.0,
            burst: 0,
            max_active_series: 0,
            max_active_series_per_metric: 0,
            ha: HaLimits::default(),
        }
    }
}

impl IngestLimits {
    /// The rate limiter's bucket size, in samples.
    pub(crate) fn effective_burst(&self) -> u64 {
        if self.burst > 0 { self.burst } else { (self.rate_limit * 20.0).ceil() as u64 }
    }
}

/// A token bucket of samples: refills at the rate limit up to the burst.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    clock: Arc<dyn Clock>,
    /// Tokens left and when they were counted (ms).
    state: Mutex<(f64, i64)>,
}

impl RateLimiter {
    /// The limiter of `limits`, or `None` without a rate limit.
    pub(crate) fn new(limits: &IngestLimits, clock: Arc<dyn Clock>) -> Option<RateLimiter> {
        (limits.rate_limit > 0.0).then(|| {
            let burst = limits.effective_burst().max(1) as f64;
            RateLimiter { rate: limits.rate_limit, burst, state: Mutex::new((burst, clock.now_ms())), clock }
        })
    }

    /// Takes `n` samples from the bucket, or says how long to wait. A request larger than
    /// the burst passes when the bucket is full and leaves it in debt, so that any request
    /// size goes through eventually and the average stays at the rate.
    pub(crate) fn take(&self, n: u64) -> Result<(), Duration> {
        let now = self.clock.now_ms();
        let mut st = self.state.lock();
        let elapsed = (now - st.1).max(0) as f64 / 1000.0;
        st.0 = (st.0 + elapsed * self.rate).min(self.burst);
        st.1 = now;
        let need = (n as f64).min(self.burst);
        if st.0 >= need {
            st.0 -= n as f64;
            return Ok(());
        }
        Err(Duration::from_secs_f64((need - st.0) / self.rate))
    }

    /// Mimir's message (err-mimir-tenant-max-ingestion-rate).
    pub(crate) fn message(&self) -> String {
        format!(
            "the request has been rejected because the node exceeded the ingestion rate limit, set to {} \
             items/s with a maximum allowed burst of {} (err-mimir-tenant-max-ingestion-rate). To adjust \
             the related limits, configure --ingest.rate-limit and --ingest.burst",
            self.rate, self.burst
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_the_rate_up_to_the_burst() {
        let clock = strata_tsdb::ManualClock::at(0);
        let limits = IngestLimits { rate_limit: 100.0, burst: 200, ..IngestLimits::default() };
        let l = RateLimiter::new(&limits, clock.clone()).unwrap();
        assert!(l.take(150).is_ok());
        assert_eq!(l.take(100), Err(Duration::from_millis(500)));
        clock.set(500);
        assert!(l.take(100).is_ok());
        // a request above the burst passes on a full bucket and leaves it in debt
        clock.set(1_000_000);
        assert!(l.take(1000).is_ok());
        assert_eq!(l.take(1), Err(Duration::from_millis(8010)));
        assert!(RateLimiter::new(&IngestLimits::default(), clock).is_none());
    }
}
