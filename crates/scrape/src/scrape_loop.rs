//! The loop that scrapes one target: at a fixed offset within its interval (from a hash
//! of the target, so scrapes spread and every ingestor picks the same instants), one
//! fetch, one append and one write per interval; staleness markers when the target goes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use strata_api::Writer;
use tokio::sync::oneshot;

use crate::append::{AppendConfig, Counts, FamilyMetadata, TargetState};
use crate::fetch::Fetcher;
use crate::target::Target;

/// What a target's last scrape found (for `/api/v1/targets`).
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// When the target was last scraped.
    pub last_scrape: Option<SystemTime>,
    /// How long it took, in seconds.
    pub last_duration: f64,
    /// Why it failed; empty when it worked.
    pub last_error: String,
    /// Whether it worked; None before the first scrape.
    pub up: Option<bool>,
    /// Metadata of the target's metric families.
    pub metadata: std::collections::BTreeMap<String, FamilyMetadata>,
}

/// Why a loop stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The target is gone: its series get staleness markers once it is sure no other
    /// loop took it over.
    Removed,
    /// Another ingestor scrapes it now, or the process stops: no staleness markers.
    Quiet,
}

/// Settings shared by the loops of one job.
#[derive(Debug)]
pub(crate) struct LoopShared {
    pub(crate) fetcher: Fetcher,
    pub(crate) writer: Arc<dyn Writer>,
    /// An error every scrape of the job reports instead of scraping (target_limit).
    pub(crate) forced_error: Mutex<Option<String>>,
    /// Where metric metadata goes, when the node serves `/api/v1/metadata`.
    pub(crate) metadata: Option<Arc<strata_api::MetadataStore>>,
    /// Mixed into the offset hash (the same on every ingestor of a cluster).
    pub(crate) seed: u64,
    /// The wall clock scrapes are scheduled and timestamped by.
    pub(crate) clock: Arc<dyn strata_tsdb::Clock>,
}

impl LoopShared {
    /// The clock's time now.
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.clock.now_ms().max(0) as u64)
    }
}

/// A running loop.
#[derive(Debug)]
pub(crate) struct LoopHandle {
    stop: Option<oneshot::Sender<Stop>>,
    /// The target's health, shared with the loop.
    pub(crate) health: Arc<Mutex<Health>>,
}

impl LoopHandle {
    /// Stops the loop.
    pub(crate) fn stop(mut self, how: Stop) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(how);
        }
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(Stop::Quiet);
        }
    }
}

fn now_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// How long from `now` until the next instant `k * interval + offset` (since the epoch).
fn until_slot(now: SystemTime, interval: Duration, offset: u64) -> Duration {
    let iv = interval.as_nanos().max(1) as u64;
    let now_ns = now.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let phase = now_ns % iv;
    let want = offset % iv;
    Duration::from_nanos(if want >= phase { want - phase } else { iv - phase + want })
}

/// Starts the loop of `target`.
pub(crate) fn spawn(shared: Arc<LoopShared>, target: Target, cfg: AppendConfig) -> LoopHandle {
    let (tx, rx) = oneshot::channel();
    let health = Arc::new(Mutex::new(Health::default()));
    let h = health.clone();
    tokio::spawn(async move {
        Loop { shared, target, cfg, state: TargetState::default(), health: h }.run(rx).await;
    });
    LoopHandle { stop: Some(tx), health }
}

struct Loop {
    shared: Arc<LoopShared>,
    target: Target,
    cfg: AppendConfig,
    state: TargetState,
    health: Arc<Mutex<Health>>,
}

impl Loop {
    async fn run(mut self, mut stop: oneshot::Receiver<Stop>) {
        let interval = self.target.interval;
        let offset = self.target.hash ^ self.shared.seed;
        let first = tokio::time::Instant::now() + until_slot(self.shared.now(), interval, offset);
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last: Option<SystemTime> = None;
        let how = loop {
            tokio::select! {
                how = &mut stop => break how.unwrap_or(Stop::Quiet),
                _ = ticker.tick() => {
                    let start = self.shared.now();
                    self.scrape(start).await;
                    last = Some(start);
                }
            }
        };
        if how == Stop::Removed
            && let Some(last) = last
        {
            self.end_of_run(last, interval).await;
        }
    }

    /// One scrape, its append and its write.
    async fn scrape(&mut self, start: SystemTime) {
        let ts = now_ms(start);
        let began = Instant::now();
        let forced = self.shared.forced_error.lock().clone();
        let fetched = match forced {
            Some(e) => Err(e),
            None => self.shared.fetcher.fetch(&self.target.url, self.target.timeout).await,
        };
        let duration = began.elapsed().as_secs_f64();
        let mut batch = self.shared.writer.batch();
        let result = fetched.and_then(|(body, format)| {
            self.state.append(&self.cfg, &body, format, ts, &mut batch).map_err(|(e, _)| e)
        });
        let (counts, error) = match result {
            Ok(c) => (c, None),
            Err(e) => {
                // nothing of a failed scrape is kept: a fresh batch, everything stale
                batch = self.shared.writer.batch();
                self.state.fail(ts, &mut batch);
                (Counts::default(), Some(e))
            }
        };
        self.state.report(&self.cfg, ts, error.is_none(), duration, counts, &mut batch);
        let write_error = match self.shared.writer.commit(batch).await {
            Ok(_) => None,
            Err(e) => Some(format!("writing the samples: {}", e)),
        };
        let mut h = self.health.lock();
        h.last_scrape = Some(start);
        h.last_duration = duration;
        h.up = Some(error.is_none() && write_error.is_none());
        h.last_error = error.or(write_error).unwrap_or_default();
        if !h.last_error.is_empty() {
            tracing::debug!(url = %self.target.url, error = %h.last_error, "scrape failed");
        } else if h.metadata != self.state.metadata {
            h.metadata = std::mem::take(&mut self.state.metadata);
            if let Some(store) = &self.shared.metadata {
                for (family, m) in &h.metadata {
                    store.record_named("", family, m.kind, &m.help, &m.unit);
                }
            }
        }
    }

    /// Prometheus's end-of-run staleness: wait until just past two more intervals (a loop
    /// that took the target over has written newer samples by then, which makes these
    /// markers out of order and ignored), then mark everything stale at the instant the
    /// next scrape would have happened.
    async fn end_of_run(mut self, last: SystemTime, interval: Duration) {
        let stale_at = last + interval;
        let wake = stale_at + interval + interval / 10;
        if let Ok(wait) = wake.duration_since(self.shared.now()) {
            tokio::time::sleep(wait).await;
        }
        let mut batch = self.shared.writer.batch();
        self.state.end(now_ms(stale_at), &mut batch);
        if let Err(e) = self.shared.writer.commit(batch).await {
            tracing::warn!(url = %self.target.url, error = %e, "writing staleness markers failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_offset_within_the_interval() {
        let iv = Duration::from_secs(15);
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(until_slot(at(30_000), iv, 2_000_000_000), Duration::from_secs(2));
        assert_eq!(until_slot(at(33_000), iv, 2_000_000_000), Duration::from_secs(14));
        assert_eq!(until_slot(at(32_000), iv, 2_000_000_000), Duration::ZERO);
        // offsets larger than the interval wrap
        assert_eq!(until_slot(at(30_000), iv, 17_000_000_000), Duration::from_secs(2));
    }
}
