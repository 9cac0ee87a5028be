//! The evaluator: walks the promql-parser AST and evaluates every node over all steps of
//! the query at once (as Prometheus's range evaluation does).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};
use strata_tsdb::histogram::CounterResetHint;
use strata_tsdb::{METRIC_NAME, MatchOp, Matcher};

use crate::EngineConfig;
use crate::error::{QueryError, Result};
use crate::grid::Steps;
use crate::source::{SelectHints, Source};
use crate::value::{HPoint, RangeSeries, Series, Value};
use crate::{aggregate, binary, functions};

/// State of one query's evaluation.
pub(crate) struct Ctx<'a> {
    pub(crate) src: &'a dyn Source,
    pub(crate) cfg: &'a EngineConfig,
    pub(crate) steps: Steps,
    /// The query's own start and end (for `@ start()` / `@ end()`).
    pub(crate) query_start: i64,
    pub(crate) query_end: i64,
    /// The query's step in ms (0 for an instant query).
    pub(crate) query_step: i64,
    pub(crate) samples: usize,
    /// Bytes allocated so far (against `cfg.max_bytes`).
    pub(crate) bytes: usize,
    pub(crate) deadline: Instant,
    /// Warnings and infos raised so far.
    pub(crate) annotations: crate::Annotations,
    /// The function whose arguments are being evaluated (a selection hint).
    pub(crate) func: Option<&'static str>,
}

/// Per-step windows of raw samples for one series of a range argument.
pub(crate) struct Windows {
    pub(crate) labels: strata_tsdb::Labels,
    /// All samples needed by every step, ascending, stale markers removed.
    pub(crate) samples: Vec<(i64, f64)>,
    /// For each step: the range `[lo, hi)` of `samples` in the window, and the window's end.
    pub(crate) ranges: Vec<(usize, usize)>,
    /// Histogram samples needed by every step, ascending, stale markers removed.
    pub(crate) hists: Vec<HPoint>,
    /// For each step: the range of `hists` in the window.
    pub(crate) hranges: Vec<(usize, usize)>,
}

/// A range argument evaluated for every step.
pub(crate) struct RangeArg {
    pub(crate) series: Vec<Windows>,
    /// Window length in ms.
    pub(crate) range: i64,
    /// For each step, the evaluation time the window ends at (after `@` and offset).
    pub(crate) ends: Vec<i64>,
    /// `anchored` / `smoothed`: the windows also hold the samples around their edges.
    pub(crate) mode: crate::extended::Mode,
}

/// A duration in ms, saturating at `i64::MAX` (`100000000y` parses).
pub(crate) fn dur_ms(d: &std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => dur_ms(d),
        Some(Offset::Neg(d)) => dur_ms(d).saturating_neg(),
        // resolved before evaluation (`durations::resolve`)
        Some(Offset::Expr(_)) | None => 0,
    }
}

fn system_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => dur_ms(&d),
        Err(e) => dur_ms(&e.duration()).saturating_neg(),
    }
}

/// Engine matchers of a selector (the metric name becomes an equality matcher).
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>> {
    let mut out = Vec::new();
    if let Some(n) = &vs.name {
        out.push(
            Matcher::new(MatchOp::Equal, METRIC_NAME, n.clone())
                .map_err(|e| QueryError::Parse(e.to_string()))?,
        );
    }
    for m in &vs.matchers.matchers {
        out.push(crate::selector::engine_matcher(m).map_err(QueryError::Parse)?);
    }
    Ok(out)
}

fn is_stale(v: f64) -> bool {
    strata_tsdb::is_stale_marker(v)
}

impl Ctx<'_> {
    /// The grid this context evaluates at, for pushed-down evaluations.
    pub(crate) fn eval_at(&self) -> crate::source::EvalAt {
        crate::source::EvalAt {
            start: self.steps.start,
            end: self.steps.end,
            step: self.steps.step,
            query_start: self.query_start,
            query_end: self.query_end,
            query_step: self.query_step,
        }
    }

    pub(crate) fn check_deadline(&self) -> Result<()> {
        if Instant::now() >= self.deadline {
            return Err(QueryError::Timeout("query execution"));
        }
        Ok(())
    }

    fn count_samples(&mut self, n: usize) -> Result<()> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.cfg.max_samples {
            return Err(QueryError::TooManySamples);
        }
        self.count_bytes(n.saturating_mul(16))
    }

    /// Counts `n` bytes about to be allocated against the query's byte budget.
    pub(crate) fn count_bytes(&mut self, n: usize) -> Result<()> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.cfg.max_bytes {
            return Err(crate::limits::too_many_bytes(self.cfg.max_bytes));
        }
        Ok(())
    }

    /// Counts a grid of `per_step` bytes at each of the context's steps.
    pub(crate) fn count_grid(&mut self, per_step: usize) -> Result<()> {
        self.count_bytes(self.steps.len().saturating_mul(per_step))
    }

    /// The time a selector is evaluated at for step time `t`.
    pub(crate) fn eval_time(&self, t: i64, at: &Option<AtModifier>, offset: &Option<Offset>) -> i64 {
        let base = match at {
            None => t,
            Some(AtModifier::Start) => self.query_start,
            Some(AtModifier::End) => self.query_end,
            Some(AtModifier::At(st)) => system_ms(st),
        };
        base.saturating_sub(offset_ms(offset))
    }

    /// Selects a selector's series in `[mint, maxt]`; `range` is its range (0 for an instant
    /// selector).
    fn fetch(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        range: i64,
    ) -> Result<Vec<strata_tsdb::SeriesData>> {
        let m = selector_matchers(vs)?;
        let hints = SelectHints { start: mint, end: maxt, step: self.query_step, range, func: self.func };
        let data = self.src.select(&m, &hints)?;
        self.count_bytes(data.iter().map(crate::limits::series_bytes).sum())?;
        self.check_deadline()?;
        Ok(data)
    }

    /// Evaluates any expression over the context's steps.
    pub(crate) fn eval(&mut self, e: &Expr) -> Result<Value> {
        self.check_deadline()?;
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(self.steps.iter().map(|t| (t, n.val)).collect())),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|(t, x)| (t, -x)).collect())),
                // series left with the same labels by dropping the name merge, and collide
                // where both have a sample at one step (Prometheus 3)
                Value::Vector(v) => Ok(Value::Vector(crate::grid::merge_same_labels(
                    v.into_iter()
                        .map(|s| {
                            let (labels, dn) =
                                crate::grid::drop_name(&s.labels, self.cfg.features.delayed_name_removal);
                            Series {
                                labels,
                                drop_name: dn || s.drop_name,
                                points: s.points.into_iter().map(|(t, x)| (t, -x)).collect(),
                                hists: s
                                    .hists
                                    .into_iter()
                                    .map(|(t, h)| {
                                        let mut h = (*h).clone();
                                        h.mul(-1.0);
                                        (t, std::sync::Arc::new(h))
                                    })
                                    .collect(),
                            }
                        })
                        .collect(),
                )?)),
                other => Err(QueryError::Execution(format!("unary minus on {}", other.type_name()))),
            },
            Expr::VectorSelector(vs) => self.eval_vector_selector(vs).map(Value::Vector),
            Expr::MatrixSelector(ms) => {
                // only valid as a top-level instant query (or inside functions, handled there)
                let arg = self.range_of_matrix(ms)?;
                Ok(Value::Matrix(matrix_at_last(arg)?))
            }
            Expr::Subquery(sq) => {
                if let Some(m) = self.stepless_invariant_subquery(sq)? {
                    return Ok(Value::Matrix(m));
                }
                let arg = self.range_of_subquery(sq)?;
                Ok(Value::Matrix(matrix_at_last(arg)?))
            }
            Expr::Binary(b) => binary::eval(self, b),
            Expr::Aggregate(a) => aggregate::eval(self, a),
            Expr::Call(c) => functions::eval(self, c),
            Expr::Extension(_) => Err(QueryError::Execution("unsupported expression".into())),
        }
    }

    /// An instant vector selector: the newest sample in `(t − lookback, t]` at each step,
    /// unless it is a stale marker.
    pub(crate) fn eval_vector_selector(&mut self, vs: &VectorSelector) -> Result<Vec<Series>> {
        self.select_instant(vs, false)
    }

    /// The samples an instant selector picks at each step: their values, or with
    /// `timestamps` their timestamps in seconds (`timestamp()`).
    pub(crate) fn select_instant(&mut self, vs: &VectorSelector, timestamps: bool) -> Result<Vec<Series>> {
        if vs.smoothed && !timestamps {
            return self.select_smoothed(vs);
        }
        let steps = self.steps;
        self.count_grid(8)?;
        let times: Vec<i64> = steps.iter().map(|t| self.eval_time(t, &vs.at, &vs.offset)).collect();
        let (lo, hi) = (times.iter().copied().min().unwrap_or(0), times.iter().copied().max().unwrap_or(0));
        let lookback = self.cfg.lookback_ms;
        // Each step takes the newest sample in `(et − lookback, et]`. `timestamp(x @ t offset
        // o)` is Prometheus's exception: it looks back from `t` itself, but only through the
        // samples the selector loaded, those of `(t − o − lookback, t − o]`; so its window
        // is the overlap of the two.
        let pinned = match (timestamps, &vs.at) {
            (true, Some(_)) => Some(self.eval_time(0, &vs.at, &None)),
            _ => None,
        };
        let window = |et: i64| match pinned {
            Some(at) => (at.min(et), at.max(et).saturating_sub(lookback)),
            None => (et, et.saturating_sub(lookback)),
        };
        let data = self.fetch(vs, lo.saturating_sub(lookback).saturating_add(1), hi, 0)?;
        let mut out = Vec::with_capacity(data.len());
        for sd in data {
            let (mut points, mut hists) = (Vec::new(), Vec::new());
            let (mut fc, mut hc) = (0, 0);
            for (i, &et) in times.iter().enumerate() {
                let (end, after) = window(et);
                // newest sample (float or histogram) with timestamp <= end
                let fi = count_through(&sd.samples, &mut fc, end);
                let hi = count_through(&sd.histograms, &mut hc, end);
                let f = fi.checked_sub(1).map(|k| sd.samples[k]);
                let h = hi.checked_sub(1).map(|k| &sd.histograms[k]);
                let t = steps.at(i);
                let newest = match (f, h) {
                    (Some((ts, v)), h) if h.is_none_or(|h| h.0 < ts) => Some((ts, Ok(v))),
                    (_, Some((ts, h))) => Some((*ts, Err(h))),
                    _ => None,
                };
                let Some((ts, val)) = newest.filter(|n| n.0 > after) else {
                    continue;
                };
                match val {
                    Ok(v) if !is_stale(v) => {
                        points.push((t, if timestamps { ts as f64 / 1000.0 } else { v }))
                    }
                    Err(h) if !is_stale(h.sum) && timestamps => points.push((t, ts as f64 / 1000.0)),
                    Err(h) if !is_stale(h.sum) => hists.push((t, h.clone())),
                    _ => {}
                }
            }
            if !points.is_empty() || !hists.is_empty() {
                self.count_samples(points.len() + hists.len())?;
                out.push(Series { labels: sd.labels, drop_name: false, points, hists });
            }
        }
        Ok(out)
    }

    /// `x smoothed`: at each step the value interpolated between the samples around it.
    fn select_smoothed(&mut self, vs: &VectorSelector) -> Result<Vec<Series>> {
        let steps = self.steps;
        self.count_grid(8)?;
        let times: Vec<i64> = steps.iter().map(|t| self.eval_time(t, &vs.at, &vs.offset)).collect();
        let (lo, hi) = (times.iter().copied().min().unwrap_or(0), times.iter().copied().max().unwrap_or(0));
        let lookback = self.cfg.lookback_ms;
        let data =
            self.fetch(vs, lo.saturating_sub(lookback).saturating_add(1), hi.saturating_add(lookback), 0)?;
        let mut out = Vec::with_capacity(data.len());
        for sd in data {
            let name = sd.labels.get(METRIC_NAME).unwrap_or("").to_owned();
            let floats: Vec<(i64, f64)> = sd.samples.into_iter().filter(|s| !is_stale(s.1)).collect();
            let hists: Vec<HPoint> = sd.histograms.into_iter().filter(|s| !is_stale(s.1.sum)).collect();
            let (mut points, mut hpoints) = (Vec::new(), Vec::new());
            for (i, &t) in times.iter().enumerate() {
                let inside = |p: i64| p > t.saturating_sub(lookback) && p <= t.saturating_add(lookback);
                let f: Vec<(i64, f64)> = floats.iter().copied().filter(|p| inside(p.0)).collect();
                let h: Vec<HPoint> = hists.iter().filter(|p| inside(p.0)).cloned().collect();
                match (f.is_empty(), h.is_empty()) {
                    (true, true) => {}
                    (false, false) => self
                        .annotations
                        .warn(format!("encountered a mix of histograms and floats for metric name {name:?}")),
                    (false, true) => {
                        if let Some(v) = crate::extended::smoothed_float(&f, t) {
                            points.push((steps.at(i), v));
                        }
                    }
                    (true, false) => {
                        if let Some(x) = crate::extended::smoothed_hist(&h, t, &name, &mut self.annotations) {
                            hpoints.push((steps.at(i), x));
                        }
                    }
                }
            }
            if !points.is_empty() || !hpoints.is_empty() {
                self.count_samples(points.len() + hpoints.len())?;
                out.push(Series { labels: sd.labels, drop_name: false, points, hists: hpoints });
            }
        }
        Ok(out)
    }

    /// A matrix selector evaluated as windows `(end − range, end]` for every step.
    pub(crate) fn range_of_matrix(&mut self, ms: &MatrixSelector) -> Result<RangeArg> {
        let range = dur_ms(&ms.range);
        let vs = &ms.vs;
        self.count_grid(8)?;
        let ends: Vec<i64> = self.steps.iter().map(|t| self.eval_time(t, &vs.at, &vs.offset)).collect();
        let (lo, hi) = (ends.iter().copied().min().unwrap_or(0), ends.iter().copied().max().unwrap_or(0));
        // anchored and smoothed windows reach one lookback before (and, smoothed, after) the range
        let mode = match (vs.anchored, vs.smoothed) {
            (true, _) => crate::extended::Mode::Anchored,
            (_, true) => crate::extended::Mode::Smoothed,
            _ => crate::extended::Mode::Plain,
        };
        let lookback = self.cfg.lookback_ms;
        let (before, after) = match mode {
            crate::extended::Mode::Plain => (0, 0),
            crate::extended::Mode::Anchored => (lookback, 0),
            crate::extended::Mode::Smoothed => (lookback, lookback),
        };
        let width = range.saturating_add(before).saturating_add(after);
        let data = self.fetch(
            vs,
            lo.saturating_sub(range).saturating_sub(before).saturating_add(1),
            hi.saturating_add(after),
            range,
        )?;
        let ends_after: Vec<i64> = ends.iter().map(|e| e.saturating_add(after)).collect();
        let mut series = Vec::with_capacity(data.len());
        for sd in data {
            // the windows of both kinds of samples at every step
            self.count_grid(32)?;
            let samples: Vec<(i64, f64)> = sd.samples.into_iter().filter(|s| !is_stale(s.1)).collect();
            let hists: Vec<HPoint> = sd.histograms.into_iter().filter(|s| !is_stale(s.1.sum)).collect();
            let ranges = windows(&samples, &ends_after, width);
            let hranges = windows(&hists, &ends_after, width);
            let total: usize = ranges.iter().chain(&hranges).map(|r| r.1 - r.0).sum();
            self.count_samples(total)?;
            series.push(Windows { labels: sd.labels, samples, ranges, hists, hranges });
        }
        Ok(RangeArg { series, range, ends, mode })
    }

    /// A subquery's window length, step, and for each outer step the time its window ends
    /// at, with the inner grid `start ..= inner_end` spanning every window (empty when
    /// `start > inner_end`).
    fn subquery_grid(&mut self, sq: &SubqueryExpr) -> Result<(i64, i64, Vec<i64>, i64, i64)> {
        let range = dur_ms(&sq.range);
        let step = sq.step.as_ref().map_or(self.cfg.default_subquery_step_ms, dur_ms).max(1);
        // each window holds up to range / step points: Prometheus's resolution limit,
        // before anything is allocated
        if range / step > self.cfg.max_points_per_series {
            return Err(crate::limits::resolution_error(self.cfg.max_points_per_series));
        }
        self.count_grid(8)?;
        let ends: Vec<i64> = self.steps.iter().map(|t| self.eval_time(t, &sq.at, &sq.offset)).collect();
        let (lo, hi) = (ends.iter().copied().min().unwrap_or(0), ends.iter().copied().max().unwrap_or(0));
        // first multiple of step strictly after lo − range (saturating: far from any data)
        let from = lo.saturating_sub(range);
        let start = from.div_euclid(step).saturating_mul(step).saturating_add(step);
        let inner_end = hi.div_euclid(step).saturating_mul(step);
        Ok((range, step, ends, start, inner_end))
    }

    /// Prometheus's answer to a subquery query (`(x @ t)[30s:1m]`) whose window holds no
    /// step of its grid, when its inner expression is step-invariant: Prometheus evaluates
    /// such an expression once, at the first step of the grid, which here lies after the
    /// window, and returns that sample. `None` in every other case.
    fn stepless_invariant_subquery(&mut self, sq: &SubqueryExpr) -> Result<Option<Vec<RangeSeries>>> {
        if !step_invariant(&sq.expr) {
            return Ok(None);
        }
        let (_, step, _, start, inner_end) = self.subquery_grid(sq)?;
        if start <= inner_end {
            return Ok(None);
        }
        let mut inner = self.inner(Steps { start, end: start, step });
        let v = inner.eval(&sq.expr);
        self.samples = inner.samples;
        self.bytes = inner.bytes;
        self.annotations = std::mem::take(&mut inner.annotations);
        let Value::Vector(series) = v? else {
            return Ok(None);
        };
        let mut out: Vec<RangeSeries> = series
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| RangeSeries {
                labels: if s.drop_name { crate::grid::without_name(&s.labels) } else { s.labels },
                samples: s.points,
                hists: s.hists,
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Some(out))
    }

    /// A subquery: the inner expression evaluated at multiples of its step, then windows
    /// `(end − range, end]` of those points for every outer step.
    pub(crate) fn range_of_subquery(&mut self, sq: &SubqueryExpr) -> Result<RangeArg> {
        let (range, step, ends, start, inner_end) = self.subquery_grid(sq)?;
        // the inner grid spans every outer window: bounded like the samples it yields
        let max_steps = i64::try_from(self.cfg.max_samples).unwrap_or(i64::MAX);
        if crate::limits::steps_within(start, inner_end, step, max_steps).is_none() {
            return Err(QueryError::TooManySamples);
        }
        let mut series = Vec::new();
        if start <= inner_end {
            let mut inner = self.inner(Steps { start, end: inner_end, step });
            let v = inner.eval(&sq.expr)?;
            self.samples = inner.samples;
            self.bytes = inner.bytes;
            self.annotations = std::mem::take(&mut inner.annotations);
            let inner_series: Vec<Series> = match v {
                Value::Vector(v) => v,
                Value::Scalar(points) => {
                    vec![Series::floats(strata_tsdb::Labels::default(), false, points)]
                }
                other => {
                    return Err(QueryError::Execution(format!(
                        "subquery of a {} is not allowed",
                        other.type_name()
                    )));
                }
            };
            for s in inner_series {
                self.count_grid(32)?;
                let ranges = windows(&s.points, &ends, range);
                let hranges = windows(&s.hists, &ends, range);
                // as Prometheus: reset and not-reset hints do not survive a subquery, which may
                // skip or repeat the samples they refer to
                let hists: Vec<HPoint> = s
                    .hists
                    .into_iter()
                    .map(|(t, h)| match h.hint {
                        CounterResetHint::CounterReset | CounterResetHint::NotCounterReset => {
                            let mut c = (*h).clone();
                            c.hint = CounterResetHint::Unknown;
                            (t, std::sync::Arc::new(c))
                        }
                        _ => (t, h),
                    })
                    .collect();
                let labels = if s.drop_name { crate::grid::without_name(&s.labels) } else { s.labels };
                series.push(Windows { labels, samples: s.points, ranges, hists, hranges });
            }
        }
        Ok(RangeArg { series, range, ends, mode: crate::extended::Mode::Plain })
    }
}

impl<'a> Ctx<'a> {
    /// A context for evaluating a subquery's inner expression over `steps`, taking over
    /// this one's counters and annotations (hand them back when it is done).
    fn inner(&mut self, steps: Steps) -> Ctx<'a> {
        Ctx {
            src: self.src,
            cfg: self.cfg,
            steps,
            query_start: self.query_start,
            query_end: self.query_end,
            query_step: self.query_step,
            samples: self.samples,
            bytes: self.bytes,
            deadline: self.deadline,
            annotations: std::mem::take(&mut self.annotations),
            func: None,
        }
    }
}

/// How many of `samples` (ascending) are at or before `t`, found by walking on from
/// `cursor` (the count at an earlier step) when the steps move forward, as they do unless
/// an `@` modifier pins them: the steps visit each sample once instead of searching the
/// whole series each.
fn count_through<T>(samples: &[(i64, T)], cursor: &mut usize, t: i64) -> usize {
    if *cursor > 0 && samples[*cursor - 1].0 > t {
        *cursor = samples.partition_point(|s| s.0 <= t);
    }
    while samples.get(*cursor).is_some_and(|s| s.0 <= t) {
        *cursor += 1;
    }
    *cursor
}

/// For each window end, the index range of samples in `(end − range, end]`.
fn windows<T>(samples: &[(i64, T)], ends: &[i64], range: i64) -> Vec<(usize, usize)> {
    if ends.windows(2).all(|w| w[0] <= w[1]) {
        // ends ascending (the usual case): both edges only move forward
        let (mut lo, mut hi) = (0, 0);
        return ends
            .iter()
            .map(|&e| {
                while lo < samples.len() && samples[lo].0 <= e.saturating_sub(range) {
                    lo += 1;
                }
                hi = hi.max(lo);
                while hi < samples.len() && samples[hi].0 <= e {
                    hi += 1;
                }
                (lo, hi)
            })
            .collect();
    }
    ends.iter()
        .map(|&e| {
            let lo = samples.partition_point(|s| s.0 <= e.saturating_sub(range));
            let hi = samples.partition_point(|s| s.0 <= e);
            (lo, hi.max(lo))
        })
        .collect()
}

/// A range argument as the matrix at its last step (instant queries of `x[5m]`).
fn matrix_at_last(arg: RangeArg) -> Result<Vec<RangeSeries>> {
    if arg.mode != crate::extended::Mode::Plain {
        let (Some(&end), smoothed) = (arg.ends.last(), arg.mode == crate::extended::Mode::Smoothed) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for w in arg.series {
            let (&(lo, hi), &(hlo, hhi)) =
                (w.ranges.last().unwrap_or(&(0, 0)), w.hranges.last().unwrap_or(&(0, 0)));
            if hhi > hlo {
                let m = if smoothed { "smoothed" } else { "anchored" };
                return Err(QueryError::Execution(format!("{m} modifier is not supported with histograms")));
            }
            if hi > lo {
                let samples = crate::extended::extend_floats(
                    &w.samples[lo..hi],
                    end.saturating_sub(arg.range),
                    end,
                    smoothed,
                );
                if !samples.is_empty() {
                    out.push(RangeSeries { labels: w.labels, samples, hists: Vec::new() });
                }
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        return Ok(out);
    }
    let mut out: Vec<RangeSeries> = arg
        .series
        .into_iter()
        .filter_map(|w| {
            let &(lo, hi) = w.ranges.last()?;
            let &(hlo, hhi) = w.hranges.last()?;
            (hi > lo || hhi > hlo).then(|| RangeSeries {
                labels: w.labels,
                samples: w.samples[lo..hi].to_vec(),
                hists: w.hists[hlo..hhi].to_vec(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// Functions whose value depends on the evaluation time even over step-invariant arguments
/// (Prometheus's `AtModifierUnsafeFunctions`).
const TIME_DEPENDENT_FUNCTIONS: [&str; 15] = [
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "end",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
    "timestamp",
];

/// Whether Prometheus treats `e` as step-invariant (its preprocessing wraps such
/// expressions to evaluate them once): `@`-pinned selectors and subqueries, literals, and
/// operators, aggregations and functions (but the time-dependent ones) over nothing else;
/// `timestamp()` of a pinned instant selector too.
pub(crate) fn step_invariant(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(vs) => vs.at.is_some(),
        Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
        Expr::Subquery(sq) => sq.at.is_some(),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::Paren(p) => step_invariant(&p.expr),
        Expr::Unary(u) => step_invariant(&u.expr),
        Expr::Aggregate(a) => step_invariant(&a.expr),
        Expr::Binary(b) => step_invariant(&b.lhs) && step_invariant(&b.rhs),
        Expr::Call(c) => {
            let args = || c.args.args.iter().map(|a| unparen(a));
            if c.func.name == "timestamp" {
                return args().all(|a| matches!(a, Expr::VectorSelector(vs) if vs.at.is_some()));
            }
            !TIME_DEPENDENT_FUNCTIONS.contains(&c.func.name) && args().all(step_invariant)
        }
        Expr::Extension(_) => false,
    }
}

/// `e` without enclosing parentheses.
fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

#[cfg(test)]
mod tests {
    /// The cursor walks forward with the steps and starts over when a time goes back (an
    /// `@` modifier): either way it counts what a search would.
    #[test]
    fn counts_through_times_in_any_order() {
        let s: Vec<(i64, ())> = [10, 20, 20, 30, 50].iter().map(|&t| (t, ())).collect();
        let mut cursor = 0;
        for t in [0, 10, 25, 60, 15, 30, 5, 100, 20, 20, 49] {
            let want = s.partition_point(|x| x.0 <= t);
            assert_eq!(super::count_through(&s, &mut cursor, t), want, "at {t}");
        }
    }
}
