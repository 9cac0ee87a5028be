//! Prometheus's experimental extended range selectors: `x[5m] anchored` (the window also
//! takes the last sample before its start, so `increase` needs no extrapolation) and
//! `x[5m] smoothed` / `x smoothed` (values at the window's edges, or at the step, are
//! interpolated between the neighbouring samples).

use std::sync::Arc;

use strata_tsdb::FloatHistogram;
use strata_tsdb::histogram::{CounterResetHint, HistogramError};

use crate::Annotations;
use crate::error::{QueryError, Result};
use crate::value::HPoint;

/// Which extension a range selector has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// A plain range `(t − range, t]`.
    #[default]
    Plain,
    /// `anchored`: also the last sample at or before the start (within the lookback).
    Anchored,
    /// `smoothed`: also the samples around both edges (within the lookback).
    Smoothed,
}

/// The functions each modifier may be used with (Prometheus's `AnchoredSafeFunctions`,
/// `SmoothedSafeFunctions`).
pub(crate) fn check_function(mode: Mode, name: &str) -> Result<()> {
    let (allowed, modifier): (&[&str], &str) = match mode {
        Mode::Plain => return Ok(()),
        Mode::Anchored => (&["changes", "delta", "increase", "rate", "resets"], "anchored"),
        Mode::Smoothed => (&["delta", "increase", "rate"], "smoothed"),
    };
    if allowed.contains(&name) {
        return Ok(());
    }
    Err(QueryError::Execution(format!(
        "{modifier} modifier can only be used with: {} - not with {name}",
        allowed.join(", ")
    )))
}

/// The value at `t` on the line between two samples; a counter that reset counts from 0.
fn interpolate(p1: (i64, f64), p2: (i64, f64), t: i64, counter: bool) -> f64 {
    let y1 = if counter && p2.1 < p1.1 { 0.0 } else { p1.1 };
    y1 + (p2.1 - y1) * (t - p1.0) as f64 / (p2.0 - p1.0) as f64
}

/// The histogram at `t` between two histogram samples.
fn interpolate_hist(
    (t1, h1): &HPoint,
    (t2, h2): &HPoint,
    t: i64,
    counter: bool,
    annos: &mut Annotations,
) -> std::result::Result<FloatHistogram, HistogramError> {
    if t == *t1 {
        return Ok((**h1).clone());
    }
    if t == *t2 {
        return Ok((**h2).clone());
    }
    let fraction = (t - t1) as f64 / (t2 - t1) as f64;
    let mut r = (**h2).clone();
    if counter && h2.detect_reset(h1) {
        r.mul(fraction);
        return Ok(r);
    }
    let c = r.sub(h1)?;
    crate::native::note(
        annos,
        strata_tsdb::histogram::Combined { counter_reset_collision: false, ..c },
        "subtraction",
    );
    r.mul(fraction);
    let c = r.add(h1)?;
    crate::native::note(
        annos,
        strata_tsdb::histogram::Combined { counter_reset_collision: false, ..c },
        "addition",
    );
    Ok(r)
}

/// The window's edge samples (Prometheus's `extendedRate` indexing): the first is the last
/// sample at or before `start` (or the first one), the last is, when smoothed, the first
/// at or after `end`. `None` when nothing lies inside the window.
fn edges<T>(s: &[(i64, T)], start: i64, end: i64, smoothed: bool) -> Option<(usize, usize)> {
    let mut last = s.len().checked_sub(1)?;
    let first = s[..last].partition_point(|p| p.0 <= start).saturating_sub(1);
    if smoothed {
        last = s[..last].partition_point(|p| p.0 < end);
    }
    if s[last].0 <= start || (smoothed && s[first].0 > end) {
        return None;
    }
    Some((first, last))
}

/// `rate`/`increase`/`delta` over an anchored or smoothed float window.
pub(crate) fn rate(
    f: &[(i64, f64)],
    (start, end): (i64, i64),
    smoothed: bool,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    let (first, last) = edges(f, start, end, smoothed)?;
    let left = if smoothed && f[first].0 < start {
        interpolate(f[first], f[first + 1], start, counter)
    } else {
        f[first].1
    };
    let right = if smoothed && last > 0 && f[last].0 > end {
        interpolate(f[last - 1], f[last], end, counter)
    } else {
        f[last].1
    };
    let mut result = right - left;
    if counter {
        let lo = if f[first].0 <= start { first + 1 } else { first };
        let hi = if f[last].0 >= end { last } else { last + 1 };
        let mut prev = left;
        for &(_, v) in f.get(lo..hi).unwrap_or(&[]) {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
        if right < prev {
            result += prev;
        }
    }
    if rate {
        result /= (end - start) as f64 / 1000.0;
    }
    Some(result)
}

/// `rate`/`increase`/`delta` over an anchored or smoothed histogram window.
pub(crate) fn rate_hist(
    h: &[HPoint],
    (start, end): (i64, i64),
    smoothed: bool,
    counter: bool,
    rate: bool,
    name: &str,
    annos: &mut Annotations,
) -> Option<FloatHistogram> {
    let (first, last) = edges(h, start, end, smoothed)?;
    let custom = h[first].1.uses_custom_buckets();
    for (_, x) in &h[first..=last] {
        if x.uses_custom_buckets() != custom {
            crate::native::mixed_schemas(annos, name);
            return None;
        }
        if counter && x.hint == CounterResetHint::Gauge {
            annos.warn(format!("this native histogram metric is not a counter: {name:?}"));
        }
    }
    let left = if smoothed && h[first].0 < start {
        interpolate_hist(&h[first], &h[first + 1], start, counter, annos)
    } else {
        Ok((*h[first].1).clone())
    };
    let right = if smoothed && last > 0 && h[last].0 > end {
        interpolate_hist(&h[last - 1], &h[last], end, counter, annos)
    } else {
        Ok((*h[last].1).clone())
    };
    let (Ok(left), Ok(right)) = (left, right) else {
        crate::native::mixed_schemas(annos, name);
        return None;
    };
    if !counter && (left.hint != CounterResetHint::Gauge || right.hint != CounterResetHint::Gauge) {
        annos.warn(format!("this native histogram metric is not a gauge: {name:?}"));
    }
    let mut result = right.clone();
    if result.sub(&left).is_err() {
        crate::native::mixed_schemas(annos, name);
        return None;
    }
    if counter {
        // counter resets inside the window, with the interpolated edges at both ends
        let mut lo = first + 1;
        let mut prev: &FloatHistogram = &left;
        if smoothed && h[first].0 < start && h[first + 1].1.detect_reset(&h[first].1) {
            prev = &h[first + 1].1;
            lo += 1;
        }
        let hi = last; // exclusive: the last sample is `right`
        let mut correction: Option<FloatHistogram> = None;
        let add = |c: &mut Option<FloatHistogram>, x: &FloatHistogram| match c {
            None => {
                *c = Some(x.clone());
                true
            }
            Some(c) => c.add(x).is_ok(),
        };
        // (when the reset sits between the two samples of a fully interpolated window, the
        // interpolation has already accounted for it)
        if lo <= hi {
            for (_, x) in &h[lo..hi] {
                if x.detect_reset(prev) && !add(&mut correction, prev) {
                    return None;
                }
                prev = x;
            }
            if right.detect_reset(prev) && !add(&mut correction, prev) {
                return None;
            }
        }
        if let Some(c) = correction
            && result.add(&c).is_err()
        {
            crate::native::mixed_schemas(annos, name);
            return None;
        }
    }
    if rate {
        result.div((end - start) as f64 / 1000.0);
    }
    result.hint = CounterResetHint::Gauge;
    result.compact();
    Some(result)
}

/// The first sample a `resets`/`changes` walk starts from in an anchored window: the last
/// one at or before `start` (floats and histograms merged in time order); `None` when no
/// sample lies after `start`.
pub(crate) fn anchored_start<T>(merged: &[(i64, T)], start: i64) -> Option<usize> {
    let after = merged.partition_point(|p| p.0 <= start);
    (after < merged.len()).then(|| after.saturating_sub(1))
}

/// An anchored or smoothed range selector's samples as a matrix (an instant query of
/// `x[5m] anchored`): the values at both edges, then the samples strictly inside.
pub(crate) fn extend_floats(f: &[(i64, f64)], start: i64, end: i64, smoothed: bool) -> Vec<(i64, f64)> {
    let Some((first, last)) = edges(f, start, end, smoothed) else {
        return Vec::new();
    };
    let left = if smoothed && f[first].0 < start {
        interpolate(f[first], f[first + 1], start, false)
    } else {
        f[first].1
    };
    let right = if smoothed && last > 0 && f[last].0 > end {
        interpolate(f[last - 1], f[last], end, false)
    } else {
        f[last].1
    };
    let lo = if f[first].0 <= start { first + 1 } else { first };
    let hi = if f[last].0 >= end { last } else { last + 1 };
    let mut out = vec![(start, left)];
    out.extend_from_slice(f.get(lo..hi).unwrap_or(&[]));
    out.push((end, right));
    out
}

/// A smoothed instant selector's value at data time `t` from the samples in
/// `(t − lookback, t + lookback]`: the sample at `t`, or the interpolation between its
/// neighbours, or the last one before `t`.
pub(crate) fn smoothed_float(f: &[(i64, f64)], t: i64) -> Option<f64> {
    let i = f.partition_point(|p| p.0 < t);
    match (f.get(i), i.checked_sub(1).map(|k| f[k])) {
        (Some(&(ti, v)), _) if ti == t => Some(v),
        (Some(&next), Some(prev)) => Some(interpolate(prev, next, t, false)),
        (None, Some(prev)) => Some(prev.1),
        _ => None,
    }
}

/// [`smoothed_float`] for histograms (a counter unless both neighbours are gauges).
pub(crate) fn smoothed_hist(
    h: &[HPoint],
    t: i64,
    name: &str,
    annos: &mut Annotations,
) -> Option<Arc<FloatHistogram>> {
    let i = h.partition_point(|p| p.0 < t);
    match (h.get(i), i.checked_sub(1).map(|k| &h[k])) {
        (Some((ti, x)), _) if *ti == t => Some(x.clone()),
        (Some(next), Some(prev)) => {
            if prev.1.uses_custom_buckets() != next.1.uses_custom_buckets() {
                crate::native::mixed_schemas(annos, name);
                return None;
            }
            let counter = prev.1.hint != CounterResetHint::Gauge || next.1.hint != CounterResetHint::Gauge;
            match interpolate_hist(prev, next, t, counter, annos) {
                Ok(x) => Some(Arc::new(x)),
                Err(_) => {
                    crate::native::mixed_schemas(annos, name);
                    None
                }
            }
        }
        (None, Some(prev)) => {
            let mut x = (*prev.1).clone();
            x.hint = CounterResetHint::Unknown;
            Some(Arc::new(x))
        }
        _ => None,
    }
}
