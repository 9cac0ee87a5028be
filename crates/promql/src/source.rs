//! Where the evaluator reads series from.

use std::collections::BTreeMap;
use std::sync::Arc;

use promql_parser::parser::Expr;
use strata_tsdb::{FloatHistogram, Labels, Matcher, SeriesData};

use crate::error::Result;

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

/// The grid an expression is evaluated at: its steps, and the query's own start, end and
/// step (for `@ start()`, `@ end()` and the step-dependent functions). A subquery's inner
/// expression has its own steps but the query's start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalAt {
    /// First step, in ms.
    pub start: i64,
    /// Last step (inclusive; a multiple of `step` after `start`), in ms.
    pub end: i64,
    /// Distance between steps, in ms (≥ 1; 1 for an instant evaluation).
    pub step: i64,
    /// The query's start, in ms.
    pub query_start: i64,
    /// The query's end, in ms.
    pub query_end: i64,
    /// The query's step in ms (0 for an instant query).
    pub query_step: i64,
}

impl EvalAt {
    /// An instant query at `t` (ms).
    pub fn instant(t: i64) -> Self {
        EvalAt { start: t, end: t, step: 1, query_start: t, query_end: t, query_step: 0 }
    }

    /// A range query (ms).
    pub fn range(start: i64, end: i64, step: i64) -> Self {
        EvalAt { start, end, step, query_start: start, query_end: end, query_step: step }
    }
}

/// What the parts of a source returned for pushed-down aggregations.
#[derive(Debug, Clone, Default)]
pub struct Partials {
    /// For each expression asked, the series every part returned (in any order).
    pub results: Vec<Vec<crate::value::Series>>,
    /// The parts' annotations.
    pub annotations: crate::Annotations,
}

/// A source of series: the local database in standalone, the shards' replicas on a querier.
pub trait Source: Send + Sync {
    /// Series matching every matcher, with their samples in `[hints.start, hints.end]`
    /// (ascending, stale markers included), sorted by labels. Histogram samples come in
    /// `SeriesData::histograms`.
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<SeriesData>>;

    /// Evaluates each of `exprs` — aggregations [`pushable`](crate::pushable) to the parts
    /// of the data — on every part separately at `at`, and returns the partial results for
    /// the evaluator to merge. `None` (the default): this source has no parts; the
    /// evaluator selects and aggregates itself.
    fn pushdown(&self, exprs: &[Expr], at: &EvalAt) -> Option<Result<Partials>> {
        let _ = (exprs, at);
        None
    }
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

    /// This source split into `n` parts by the series' stable label hash (as shards).
    pub fn split(&self, n: usize) -> Vec<MemSource> {
        let n = n.max(1);
        let mut parts = vec![MemSource::new(); n];
        for (l, s) in &self.series {
            parts[(l.stable_hash() % n as u64) as usize].series.insert(l.clone(), s.clone());
        }
        parts
    }
}

impl Source for MemSource {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<SeriesData>> {
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
    use crate::{Engine, EngineConfig, QueryError};

    /// Records the hints of every selection.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<SelectHints>>);

    impl Source for Recorder {
        fn select(&self, _: &[Matcher], hints: &SelectHints) -> Result<Vec<SeriesData>> {
            self.0.lock().map_err(|e| QueryError::Storage(e.to_string()))?.push(*hints);
            Ok(Vec::new())
        }
    }

    /// Answers every selection with nothing, after a pause.
    struct Slow(std::time::Duration);

    impl Source for Slow {
        fn select(&self, _: &[Matcher], _: &SelectHints) -> Result<Vec<SeriesData>> {
            std::thread::sleep(self.0);
            Ok(Vec::new())
        }
    }

    #[test]
    fn a_query_past_its_deadline_times_out_even_when_its_last_read_finished() {
        let cfg = EngineConfig { timeout: std::time::Duration::from_millis(2), ..EngineConfig::default() };
        let e = Engine::new(cfg);
        let q = crate::parse("sum(x)").expect("parses");
        let slow = Slow(std::time::Duration::from_millis(20));
        assert!(matches!(e.instant(&slow, &q, 0), Err(QueryError::Timeout(_))));
        assert!(matches!(e.range(&slow, &q, 0, 60_000, 15_000), Err(QueryError::Timeout(_))));
        let at = EvalAt::instant(0);
        assert!(matches!(e.eval_at(&slow, &q, &at), Err(QueryError::Timeout(_))));
        let quick = Slow(std::time::Duration::ZERO);
        let e = Engine::new(EngineConfig::default());
        assert!(e.instant(&quick, &q, 0).is_ok());
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
