//! Per-step views of series over the query's step grid, and the builder of outputs.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use strata_tsdb::{FloatHistogram, Labels, METRIC_NAME};

use crate::error::{QueryError, Result};
use crate::value::{HPoint, Series};

/// The evaluation steps of a query: `start, start+step, … ≤ end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) step: i64,
}

impl Steps {
    /// The number of steps (grids are bounded before they are built: see
    /// `limits::steps_within`).
    pub(crate) fn len(&self) -> usize {
        crate::limits::steps_within(self.start, self.end, self.step, i64::MAX).unwrap_or(0)
    }

    pub(crate) fn at(&self, i: usize) -> i64 {
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        self.start.saturating_add(i.saturating_mul(self.step))
    }

    pub(crate) fn index(&self, t: i64) -> usize {
        let i = match t.checked_sub(self.start) {
            Some(d) => i128::from(d / self.step.max(1)),
            None => (i128::from(t) - i128::from(self.start)) / i128::from(self.step.max(1)),
        };
        usize::try_from(i).unwrap_or(0)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.at(i))
    }
}

/// A value at one step: a float or a native histogram.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// A float.
    F(f64),
    /// A histogram.
    H(Arc<FloatHistogram>),
}

/// For each step, the (series index, value) pairs present at that step, floats and
/// histograms alike, in series order: one list for the whole grid with each step's start in
/// it, not a list per step.
#[derive(Debug)]
pub(crate) struct ByStep {
    starts: Vec<usize>,
    items: Vec<(usize, Val)>,
}

impl ByStep {
    /// The pairs present at each step, in step order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[(usize, Val)]> + '_ {
        self.starts.windows(2).map(|w| &self.items[w[0]..w[1]])
    }
}

/// The values of `series` by step (see [`ByStep`]).
pub(crate) fn vals_by_step(series: &[Series], steps: Steps) -> ByStep {
    let n = steps.len();
    let mut starts = vec![0usize; n + 1];
    for s in series {
        for &(t, _) in &s.points {
            starts[steps.index(t) + 1] += 1;
        }
        for (t, _) in &s.hists {
            starts[steps.index(*t) + 1] += 1;
        }
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut next = starts.clone();
    let mut items = vec![(0, Val::F(0.0)); starts[n]];
    let mut put = |t: i64, item: (usize, Val)| {
        let at = &mut next[steps.index(t)];
        items[*at] = item;
        *at += 1;
    };
    for (i, s) in series.iter().enumerate() {
        for &(t, v) in &s.points {
            put(t, (i, Val::F(v)));
        }
        for (t, h) in &s.hists {
            put(*t, (i, Val::H(h.clone())));
        }
    }
    ByStep { starts, items }
}

/// Assembles output series step by step, keyed by label set.
#[derive(Debug, Default)]
pub(crate) struct Out {
    map: FxHashMap<Labels, usize>,
    pub(crate) series: Vec<Series>,
}

impl Out {
    /// Adds a point; two points of one label set at one step is Prometheus's collision error.
    pub(crate) fn push(&mut self, labels: Labels, drop_name: bool, t: i64, v: f64) -> Result<()> {
        let s = self.slot(labels, drop_name, t)?;
        s.points.push((t, v));
        Ok(())
    }

    /// Adds a float or histogram point.
    pub(crate) fn push_val(&mut self, labels: Labels, drop_name: bool, t: i64, v: Val) -> Result<()> {
        let idx = self.index(labels);
        self.push_at(idx, drop_name, t, v)
    }

    /// Adds a histogram point (same collision rule).
    pub(crate) fn push_hist(&mut self, labels: Labels, drop_name: bool, h: HPoint) -> Result<()> {
        let s = self.slot(labels, drop_name, h.0)?;
        s.hists.push(h);
        Ok(())
    }

    /// The index of the output series with `labels`, added (with no points yet) if there is
    /// none. An operation that knows which output each of its inputs feeds looks the labels
    /// up once and then adds points with [`Out::push_at`], instead of hashing the label set
    /// at every step; call it only right before a point is added, as an output series with
    /// no points is output all the same.
    pub(crate) fn index(&mut self, labels: Labels) -> usize {
        match self.map.get(&labels) {
            Some(&i) => i,
            None => {
                self.series.push(Series::floats(labels.clone(), false, Vec::new()));
                self.map.insert(labels, self.series.len() - 1);
                self.series.len() - 1
            }
        }
    }

    /// Adds a float or histogram point to the output series `idx` (from [`Out::index`]),
    /// with the same collision rule as [`Out::push`].
    pub(crate) fn push_at(&mut self, idx: usize, drop_name: bool, t: i64, v: Val) -> Result<()> {
        let s = self.checked(idx, drop_name, t)?;
        match v {
            Val::F(x) => s.points.push((t, x)),
            Val::H(h) => s.hists.push((t, h)),
        }
        Ok(())
    }

    /// [`Out::index`] of the labels (and name-drop flag) `labels` makes, looked up once per
    /// `known`: an input's output index remembered between steps.
    pub(crate) fn index_of(
        &mut self,
        known: &mut Option<(usize, bool)>,
        labels: impl FnOnce() -> (Labels, bool),
    ) -> (usize, bool) {
        if let Some(k) = *known {
            return k;
        }
        let (l, dn) = labels();
        let k = (self.index(l), dn);
        *known = Some(k);
        k
    }

    fn slot(&mut self, labels: Labels, drop_name: bool, t: i64) -> Result<&mut Series> {
        let idx = self.index(labels);
        self.checked(idx, drop_name, t)
    }

    fn checked(&mut self, idx: usize, drop_name: bool, t: i64) -> Result<&mut Series> {
        let s = &mut self.series[idx];
        s.drop_name |= drop_name;
        if s.points.last().is_some_and(|p| p.0 == t) || s.hists.last().is_some_and(|p| p.0 == t) {
            return Err(same_labelset());
        }
        Ok(s)
    }

    pub(crate) fn finish(self) -> Vec<Series> {
        self.series
    }
}

/// Prometheus's error for two samples of one label set at one step.
pub(crate) fn same_labelset() -> QueryError {
    QueryError::Execution("vector cannot contain metrics with the same labelset".into())
}

/// Merges series that share a label set (as an operation that drops the metric name can
/// leave them) into one, as Prometheus's step-by-step evaluation does: two of them with a
/// sample at the same step are its collision error. The merged series takes the place of
/// the first of its parts.
pub(crate) fn merge_same_labels(series: Vec<Series>) -> Result<Vec<Series>> {
    if series.len() < 2 {
        return Ok(series);
    }
    let mut first: FxHashMap<&Labels, usize> = FxHashMap::default();
    let mut group = Vec::with_capacity(series.len());
    let mut shared = false;
    for (i, s) in series.iter().enumerate() {
        let g = *first.entry(&s.labels).or_insert(i);
        shared |= g != i;
        group.push(g);
    }
    if !shared {
        return Ok(series);
    }
    let mut out: Vec<Option<Series>> = Vec::with_capacity(series.len());
    for (i, (s, g)) in series.into_iter().zip(group).enumerate() {
        if g == i {
            out.push(Some(s));
            continue;
        }
        if let Some(Some(m)) = out.get_mut(g) {
            m.drop_name |= s.drop_name;
            m.points.extend(s.points);
            m.hists.extend(s.hists);
        }
        out.push(None);
    }
    let mut merged: Vec<Series> = out.into_iter().flatten().collect();
    for m in &mut merged {
        m.points.sort_by_key(|p| p.0);
        m.hists.sort_by_key(|h| h.0);
        let mut times: Vec<i64> = m.points.iter().map(|p| p.0).chain(m.hists.iter().map(|h| h.0)).collect();
        times.sort_unstable();
        if times.windows(2).any(|w| w[0] == w[1]) {
            return Err(same_labelset());
        }
    }
    Ok(merged)
}

/// Prometheus's check of a range function's result: no two of its series may share a label
/// set, whether or not their samples overlap in time (`rate()` and the other functions of a
/// range drop the metric name series by series).
pub(crate) fn check_distinct_labels(series: &[Series]) -> Result<()> {
    let mut seen: FxHashSet<&Labels> = FxHashSet::default();
    for s in series {
        if !seen.insert(&s.labels) {
            return Err(same_labelset());
        }
    }
    Ok(())
}

/// Labels that go wherever the metric name goes (Prometheus's type-and-unit labels).
pub(crate) const NAME_LIKE: [&str; 3] = [METRIC_NAME, "__type__", "__unit__"];

/// The labels with `__name__` (and `__type__`, `__unit__`) removed.
pub(crate) fn without_name(l: &Labels) -> Labels {
    without(l, &NAME_LIKE)
}

/// The labels without `names`.
pub(crate) fn without(l: &Labels, names: &[&str]) -> Labels {
    if !l.iter().any(|x| names.contains(&x.name.as_str())) {
        return l.clone();
    }
    labels_from(
        l.iter().filter(|x| !names.contains(&x.name.as_str())).map(|x| (x.name.as_str(), x.value.as_str())),
    )
}

/// Only the labels in `names`.
pub(crate) fn only(l: &Labels, names: &[&str]) -> Labels {
    labels_from(
        l.iter().filter(|x| names.contains(&x.name.as_str())).map(|x| (x.name.as_str(), x.value.as_str())),
    )
}

/// Builds labels from pairs that are already unique (any order; empty values dropped).
pub(crate) fn labels_from<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Labels {
    Labels::from_unchecked(pairs)
}

/// The labels a `by`/`on` (keep the listed ones) or `without`/`ignoring` (drop them and the
/// name) modifier leaves; `None` without a modifier.
pub(crate) fn project(l: &Labels, m: Option<&promql_parser::parser::LabelModifier>) -> Option<Labels> {
    use promql_parser::parser::LabelModifier;
    match m {
        Some(LabelModifier::Include(keep)) => {
            let names: Vec<&str> = keep.labels.iter().map(String::as_str).collect();
            Some(only(l, &names))
        }
        Some(LabelModifier::Exclude(drop)) => {
            let mut names: Vec<&str> = drop.labels.iter().map(String::as_str).collect();
            names.extend(NAME_LIKE);
            Some(without(l, &names))
        }
        None => None,
    }
}

/// Sets (or, with an empty value, removes) label `name`.
pub(crate) fn with_label(l: &Labels, name: &str, value: &str) -> Labels {
    let rest = l.iter().filter(|x| x.name != name).map(|x| (x.name.as_str(), x.value.as_str()));
    labels_from(rest.chain(std::iter::once((name, value))))
}

/// Applies eager or delayed `__name__` removal to a series about to be output by an
/// operation that drops the name.
pub(crate) fn drop_name(l: &Labels, delayed: bool) -> (Labels, bool) {
    if delayed { (l.clone(), l.get(METRIC_NAME).is_some()) } else { (without_name(l), false) }
}
