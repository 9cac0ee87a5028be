//! Where the evaluator reads series from.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_tsdb::{FloatHistogram, Labels, Matcher, SeriesData};

use crate::value::HPoint;

/// What a selection is for (Prometheus's `SelectHints`): the time range to return and how
/// the evaluator will use it, so that a source can skip or push down work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// First timestamp to return, in ms (inclusive).
    pub start: i64,
    /// Last timestamp to return, in ms (inclusive).
    pub end: i64,
    /// The query's step in ms (0 for an instant query).
    pub step: i64,
    /// The range of the range selector, in ms (0 for an instant selector).
    pub range: i64,
    /// The function the selection feeds directly, e.g. `rate`.
    pub func: Option<&'static str>,
}

/// A source of series: the local database in standalone, the shards' replicas on a querier.
pub trait Source: Send + Sync {
    /// Series matching every matcher, with their samples in `[hints.start, hints.end]`
    /// (ascending, stale markers included), sorted by labels. Histogram samples come in
    /// `SeriesData::histograms`.
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<SeriesData>, String>;
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
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<SeriesData>, String> {
        let (mint, maxt) = (hints.start, hints.end);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{Engine, EngineConfig};

    /// Records the hints of every selection.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<SelectHints>>);

    impl Source for Recorder {
        fn select(&self, _: &[Matcher], hints: &SelectHints) -> Result<Vec<SeriesData>, String> {
            self.0.lock().map_err(|e| e.to_string())?.push(*hints);
            Ok(Vec::new())
        }
    }

    #[test]
    fn selections_carry_range_step_and_function() {
        let src = Recorder::default();
        let e = Engine::new(EngineConfig::default());
        let q = crate::parse("sum(rate(x[5m])) + y").expect("parses");
        e.range(&src, &q, 600_000, 1_200_000, 60_000).expect("evaluates");
        let got = src.0.lock().expect("lock").clone();
        assert_eq!(
            got[0],
            SelectHints { start: 300_001, end: 1_200_000, step: 60_000, range: 300_000, func: Some("rate") }
        );
        assert_eq!(
            got[1],
            SelectHints { start: 300_001, end: 1_200_000, step: 60_000, range: 0, func: None }
        );
    }
}
