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

/// Histogram `k` of a series as storage returns it: with the counter-reset hint its
/// position in the series gives it ([`strata_tsdb::histogram::stored_hint`]).
fn read_back(floats: &[(i64, f64)], hists: &[HPoint], k: usize) -> HPoint {
    let (t, h) = &hists[k];
    let prev = k.checked_sub(1).map(|p| &hists[p]).filter(|p| {
        // a float stored in between starts a new chunk
        !floats.iter().any(|f| f.0 > p.0 && f.0 < *t)
    });
    let hint = strata_tsdb::histogram::stored_hint(prev.map(|p| &*p.1), h);
    if hint == h.hint {
        return (*t, h.clone());
    }
    let mut c = (**h).clone();
    c.hint = hint;
    (*t, Arc::new(c))
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
                (hi > lo || hhi > hlo).then(|| SeriesData {
                    labels: l.clone(),
                    samples: s[lo..hi].to_vec(),
                    histograms: (hlo..hhi).map(|k| read_back(s, h, k)).collect(),
                })
            })
            .collect())
    }
}
