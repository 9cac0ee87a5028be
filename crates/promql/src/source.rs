//! Where the evaluator reads series from.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_tsdb::{FloatHistogram, Labels, Matcher, SeriesData};

use crate::value::HPoint;

/// A source of series: the local database in standalone, the shards' replicas on a querier.
pub trait Source: Send + Sync {
    /// Series matching every matcher, with their samples in `[mint, maxt]` (ascending,
    /// stale markers included), sorted by labels.
    /// Histogram samples come in `SeriesData::histograms`.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesData>, String>;
}

/// An in-memory source (the conformance runner, tests).
#[derive(Debug, Default, Clone)]
pub struct MemSource {
    series: BTreeMap<Labels, MemSeries>,
}

/// One series of a [`MemSource`]: its float samples and its histogram samples.
type MemSeries = (Vec<(i64, f64)>, Vec<HPoint>);

impl MemSource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to a series (kept sorted; a sample at an existing timestamp replaces it).
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = (i64, f64)>) {
        let (s, h) = self.series.entry(labels).or_default();
        for (t, v) in samples {
            h.retain(|x| x.0 != t);
            match s.binary_search_by_key(&t, |x| x.0) {
                Ok(i) => s[i].1 = v,
                Err(i) => s.insert(i, (t, v)),
            }
        }
    }

    /// Adds histogram samples to a series (a sample at an existing timestamp replaces it).
    pub fn add_histograms(
        &mut self,
        labels: Labels,
        samples: impl IntoIterator<Item = (i64, FloatHistogram)>,
    ) {
        let (s, h) = self.series.entry(labels).or_default();
        for (t, v) in samples {
            s.retain(|x| x.0 != t);
            match h.binary_search_by_key(&t, |x| x.0) {
                Ok(i) => h[i].1 = Arc::new(v),
                Err(i) => h.insert(i, (t, Arc::new(v))),
            }
        }
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }
}

impl Source for MemSource {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesData>, String> {
        Ok(self
            .series
            .iter()
            .filter(|(l, _)| matchers.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
            .filter_map(|(l, (s, h))| {
                let (lo, hi) = (s.partition_point(|x| x.0 < mint), s.partition_point(|x| x.0 <= maxt));
                let (hlo, hhi) = (h.partition_point(|x| x.0 < mint), h.partition_point(|x| x.0 <= maxt));
                (hi > lo || hhi > hlo).then(|| {
                    // hints as storage gives them, from the whole series
                    let mut all = h.clone();
                    strata_tsdb::histogram::settle(&mut all, s);
                    SeriesData {
                        labels: l.clone(),
                        samples: s[lo..hi].to_vec(),
                        histograms: all[hlo..hhi].to_vec(),
                    }
                })
            })
            .collect())
    }
}
