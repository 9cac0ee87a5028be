//! PromQL functions: range-vector functions over per-step windows, and instant functions.

use promql_parser::parser::{Call, Expr};
use strata_tsdb::{Labels, METRIC_NAME, MatchOp};

use crate::aggregate::{Kahan, mean, quantile, variance};
use crate::error::{QueryError, Result};
use crate::eval::{Ctx, RangeArg, selector_matchers};
use crate::grid::{Out, Val, check_distinct_labels, drop_name, labels_from, merge_same_labels, with_label};
use crate::value::{Series, Value};

type Window<'a> = &'a [(i64, f64)];

fn range_arg(ctx: &mut Ctx<'_>, e: &Expr) -> Result<RangeArg> {
    match e {
        Expr::MatrixSelector(ms) => ctx.range_of_matrix(ms),
        Expr::Subquery(sq) => ctx.range_of_subquery(sq),
        Expr::Paren(p) => range_arg(ctx, &p.expr),
        _ => Err(QueryError::Execution("expected a range vector argument".into())),
    }
}

fn vector(ctx: &mut Ctx<'_>, e: &Expr) -> Result<Vec<Series>> {
    match ctx.eval(e)? {
        Value::Vector(v) => Ok(v),
        other => Err(QueryError::Execution(format!("expected an instant vector, got {}", other.type_name()))),
    }
}

fn scalar(ctx: &mut Ctx<'_>, e: &Expr) -> Result<Vec<f64>> {
    match ctx.eval(e)? {
        Value::Scalar(s) => Ok(s.into_iter().map(|p| p.1).collect()),
        other => Err(QueryError::Execution(format!("expected a scalar, got {}", other.type_name()))),
    }
}

fn string(ctx: &mut Ctx<'_>, e: &Expr) -> Result<String> {
    match ctx.eval(e)? {
        Value::String(s) => Ok(s),
        other => Err(QueryError::Execution(format!("expected a string, got {}", other.type_name()))),
    }
}

/// Where a series' counter resets are: each index `k` whose sample is below sample `k - 1`.
/// Found once per series, so that each window of `rate` or `increase` adds the values
/// before its resets without scanning its samples.
fn resets(samples: Window<'_>) -> Vec<usize> {
    (1..samples.len()).filter(|&k| samples[k].1 < samples[k - 1].1).collect()
}

/// Prometheus's extrapolated rate/increase/delta of `samples[lo..hi]`; for a counter,
/// `resets` are the series' [`resets`].
fn extrapolated(
    (samples, lo, hi): (Window<'_>, usize, usize),
    (start, end): (i64, i64),
    resets: Option<&[usize]>,
    rate: bool,
) -> Option<f64> {
    let w = &samples[lo..hi];
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    let counter = resets.is_some();
    if let Some(r) = resets {
        // the resets inside the window, in order (as Prometheus adds them)
        let from = r.partition_point(|&k| k <= lo);
        for &k in r[from..].iter().take_while(|&&k| k < hi) {
            result += samples[k - 1].1;
        }
    }
    let zero = (counter && result > 0.0 && first.1 >= 0.0).then_some(first.1 / result);
    Some(result * extrapolation_factor((first.0, last.0, w.len()), start, end, zero, rate))
}

/// The factor by which rate/increase/delta extrapolate the change between the first and
/// last of `n` samples (`first` and `last` ms) to the window `(start, end]`; `zero` is the
/// first value's share of the change, when a counter's zero point limits extrapolation.
fn extrapolation_factor(
    (first, last, n): (i64, i64, usize),
    start: i64,
    end: i64,
    zero: Option<f64>,
    rate: bool,
) -> f64 {
    let mut to_start = (first - start) as f64 / 1000.0;
    let mut to_end = (end - last) as f64 / 1000.0;
    let sampled = (last - first) as f64 / 1000.0;
    let avg = sampled / (n - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if let Some(share) = zero {
        to_start = to_start.min(sampled * share);
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= (end - start) as f64 / 1000.0;
    }
    factor
}

fn instant_delta(w: Window<'_>, rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let dt = (last.0 - prev.0) as f64 / 1000.0;
    if dt == 0.0 {
        return None;
    }
    let v = if rate && last.1 < prev.1 { last.1 } else { last.1 - prev.1 };
    Some(if rate { v / dt } else { v })
}

/// Least squares with Kahan sums, x in seconds relative to `intercept_t` (Prometheus).
fn linear_regression(w: Window<'_>, intercept_t: i64) -> (f64, f64) {
    let init = w[0].1;
    let const_y = w.iter().all(|s| s.1 == init);
    if const_y {
        return if init.is_infinite() { (f64::NAN, f64::NAN) } else { (0.0, init) };
    }
    let n = w.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sx2) =
        (Kahan::default(), Kahan::default(), Kahan::default(), Kahan::default());
    for &(t, v) in w {
        let x = (t - intercept_t) as f64 / 1e3;
        sx.add(x);
        sy.add(v);
        sxy.add(x * v);
        sx2.add(x * x);
    }
    let (sx, sy, sxy, sx2) = (sx.value(), sy.value(), sxy.value(), sx2.value());
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn min_max(w: Window<'_>, max: bool) -> f64 {
    w.iter().fold(f64::NAN, |a, &(_, v)| if (if max { v > a } else { v < a }) || a.is_nan() { v } else { a })
}

/// Timestamp (s) of the last sample holding the window's min or max.
fn ts_of_extreme(w: Window<'_>, max: bool) -> f64 {
    let target = min_max(w, max);
    let t = w
        .iter()
        .rev()
        .find(|s| s.1 == target || (target.is_nan() && s.1.is_nan()))
        .map_or(w[w.len() - 1].0, |s| s.0);
    t as f64 / 1000.0
}

fn double_exponential_smoothing(w: Window<'_>, sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 || !(0.0..=1.0).contains(&sf) || !(0.0..=1.0).contains(&tf) || sf == 0.0 || tf == 0.0 {
        return None;
    }
    let mut s0 = w[0].1;
    let mut b = w[1].1 - w[0].1;
    let mut s1 = s0;
    for (i, &(_, x)) in w.iter().enumerate().skip(1) {
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        s0 = s1;
        s1 = sf * x + (1.0 - sf) * (s1 + b);
    }
    Some(s1)
}

/// Evaluates a function call.
pub(crate) fn eval(ctx: &mut Ctx<'_>, c: &Call) -> Result<Value> {
    let outer = ctx.func.replace(c.func.name);
    let r = call(ctx, c);
    ctx.func = outer;
    r
}

fn call(ctx: &mut Ctx<'_>, c: &Call) -> Result<Value> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|b| b.as_ref()).collect();
    let delayed = ctx.cfg.features.delayed_name_removal;
    match name {
        "rate"
        | "increase"
        | "delta"
        | "irate"
        | "idelta"
        | "deriv"
        | "changes"
        | "resets"
        | "avg_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "min_over_time"
        | "max_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "mad_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "ts_of_last_over_time"
        | "ts_of_first_over_time" => range_fn(ctx, name, args[0], None, None),
        "quantile_over_time" => {
            let phi = scalar(ctx, args[0])?;
            warn_quantiles(ctx, &phi);
            range_fn(ctx, name, args[1], Some(phi), None)
        }
        "predict_linear" => {
            let d = scalar(ctx, args[1])?;
            range_fn(ctx, name, args[0], Some(d), None)
        }
        "double_exponential_smoothing" => {
            let sf = scalar(ctx, args[1])?;
            let tf = scalar(ctx, args[2])?;
            range_fn(ctx, name, args[0], Some(sf), Some(tf))
        }
        "absent_over_time" => {
            let arg = range_arg(ctx, args[0])?;
            let present: Vec<bool> = (0..ctx.steps.len())
                .map(|i| {
                    arg.series
                        .iter()
                        .any(|w| w.ranges[i].1 > w.ranges[i].0 || w.hranges[i].1 > w.hranges[i].0)
                })
                .collect();
            absent(ctx, args[0], &present)
        }
        "absent" => {
            let v = vector(ctx, args[0])?;
            let mut present = vec![false; ctx.steps.len()];
            for s in &v {
                for t in s.points.iter().map(|p| p.0).chain(s.hists.iter().map(|h| h.0)) {
                    present[ctx.steps.index(t)] = true;
                }
            }
            absent(ctx, args[0], &present)
        }
        "time" => Ok(Value::Scalar(ctx.steps.iter().map(|t| (t, t as f64 / 1000.0)).collect())),
        "start" | "end" | "range" | "step" => {
            let v = match name {
                "start" => ctx.query_start as f64 / 1000.0,
                "end" => ctx.query_end as f64 / 1000.0,
                "range" => (ctx.query_end - ctx.query_start) as f64 / 1000.0,
                _ => ctx.query_step as f64 / 1000.0,
            };
            Ok(Value::Scalar(ctx.steps.iter().map(|t| (t, v)).collect()))
        }
        "min_of" | "max_of" => {
            let a = scalar(ctx, args[0])?;
            let b = scalar(ctx, args[1])?;
            let f = |x: f64, y: f64| {
                if x.is_nan() || y.is_nan() {
                    f64::NAN
                } else if name == "min_of" {
                    x.min(y)
                } else {
                    x.max(y)
                }
            };
            Ok(Value::Scalar(
                ctx.steps.iter().zip(a.into_iter().zip(b)).map(|(t, (x, y))| (t, f(x, y))).collect(),
            ))
        }
        "pi" => Ok(Value::Scalar(ctx.steps.iter().map(|t| (t, std::f64::consts::PI)).collect())),
        "vector" => {
            let s = scalar(ctx, args[0])?;
            let points = ctx.steps.iter().zip(s).collect();
            Ok(Value::Vector(vec![Series::floats(Labels::default(), false, points)]))
        }
        "scalar" => {
            let v = vector(ctx, args[0])?;
            let mut vals = vec![(0usize, f64::NAN); ctx.steps.len()];
            for s in &v {
                for &(t, x) in &s.points {
                    let slot = &mut vals[ctx.steps.index(t)];
                    slot.0 += 1;
                    slot.1 = x;
                }
            }
            Ok(Value::Scalar(
                ctx.steps
                    .iter()
                    .zip(vals)
                    .map(|(t, (n, x))| (t, if n == 1 { x } else { f64::NAN }))
                    .collect(),
            ))
        }
        "timestamp" => {
            let mut arg = args[0];
            while let Expr::Paren(p) = arg {
                arg = &p.expr;
            }
            let v = match arg {
                Expr::VectorSelector(vs) => ctx.select_instant(vs, true)?,
                e => vector(ctx, e)?
                    .into_iter()
                    .map(|s| {
                        let mut points: Vec<(i64, f64)> = s
                            .points
                            .iter()
                            .map(|&(t, _)| t)
                            .chain(s.hists.iter().map(|h| h.0))
                            .map(|t| (t, t as f64 / 1000.0))
                            .collect();
                        points.sort_by_key(|p| p.0);
                        Series { points, hists: Vec::new(), ..s }
                    })
                    .collect(),
            };
            Ok(Value::Vector(map_series(v, delayed, |_, x| Some(x))?))
        }
        "label_replace" => label_replace(ctx, &args),
        "label_join" => label_join(ctx, &args),
        "sort" | "sort_desc" => {
            if ctx.query_step > 0 {
                ctx.annotations.warn(
                    "sort is ineffective for range queries since results are always ordered by labels".into(),
                );
            }
            // histograms have no order: sort drops them
            let mut v: Vec<Series> = vector(ctx, args[0])?
                .into_iter()
                .map(|s| Series { hists: Vec::new(), ..s })
                .filter(|s| !s.is_empty())
                .collect();
            if ctx.steps.len() == 1 {
                let desc = name == "sort_desc";
                v.sort_by(|a, b| {
                    let (x, y) = (a.points[0].1, b.points[0].1);
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                        _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    }
                });
            }
            Ok(Value::Vector(v))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            if ctx.query_step > 0 {
                ctx.annotations.warn(
                    "sort is ineffective for range queries since results are always ordered by labels".into(),
                );
            }
            let mut v = vector(ctx, args[0])?;
            let mut names = Vec::new();
            for a in &args[1..] {
                names.push(string(ctx, a)?);
            }
            v.sort_by(|a, b| {
                let mut o = std::cmp::Ordering::Equal;
                for n in &names {
                    o = o.then_with(|| {
                        natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""))
                    });
                }
                let o = o.then_with(|| a.labels.cmp(&b.labels));
                if name.ends_with("_desc") { o.reverse() } else { o }
            });
            Ok(Value::Vector(v))
        }
        "histogram_quantile" => histogram_quantile(ctx, &args),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev" | "histogram_stdvar" => {
            let v = vector(ctx, args[0])?;
            let f = |h: &strata_tsdb::FloatHistogram| match name {
                "histogram_count" => h.count,
                "histogram_sum" => h.sum,
                "histogram_avg" => h.sum / h.count,
                "histogram_stddev" => crate::native::variance(h).sqrt(),
                _ => crate::native::variance(h),
            };
            Ok(Value::Vector(map_hists(v, delayed, |_, _, h| f(h))?))
        }
        "histogram_fraction" => histogram_fraction(ctx, &args),
        "histogram_quantiles" => histogram_quantiles(ctx, &args),
        "info" => crate::info::eval(ctx, &args),
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = vector(ctx, args[0])?;
            let lo = if name == "clamp_max" { None } else { Some(scalar(ctx, args[1])?) };
            let hi = match name {
                "clamp" => Some(scalar(ctx, args[2])?),
                "clamp_max" => Some(scalar(ctx, args[1])?),
                _ => None,
            };
            let steps = ctx.steps;
            Ok(Value::Vector(map_series(v, delayed, |t, x| {
                let i = steps.index(t);
                let (l, h) = (lo.as_ref().map(|s| s[i]), hi.as_ref().map(|s| s[i]));
                if let (Some(l), Some(h)) = (l, h)
                    && h < l
                {
                    return None;
                }
                // as Prometheus: math.Max(min, math.Min(max, v)) with Go's special cases
                let mut x = x;
                if let Some(h) = h {
                    x = go_min(h, x);
                }
                if let Some(l) = l {
                    x = go_max(l, x);
                }
                Some(x)
            })?))
        }
        "round" => {
            let v = vector(ctx, args[0])?;
            let to = match args.get(1) {
                Some(a) => Some(scalar(ctx, a)?),
                None => None,
            };
            let steps = ctx.steps;
            Ok(Value::Vector(map_series(v, delayed, |t, x| {
                let inv = 1.0 / to.as_ref().map_or(1.0, |s| s[steps.index(t)]);
                Some((x * inv + 0.5).floor() / inv)
            })?))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute" | "month"
        | "year" => {
            // as Prometheus: the argument's value converted as Go's `int64()` does
            // (truncated toward zero), or without one the step's time in whole seconds
            // (truncated as Go's integer division does: -0.5s is second 0)
            let Some(a) = args.first() else {
                let points = ctx.steps.iter().map(|t| (t, date_part(name, t / 1000))).collect();
                return Ok(Value::Vector(vec![Series::floats(Labels::default(), false, points)]));
            };
            let v = vector(ctx, a)?;
            Ok(Value::Vector(map_series(v, delayed, |_, x| {
                Some(date_part(name, crate::dates::go_int64(x)))
            })?))
        }
        _ => {
            let f: fn(f64) -> f64 = match name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                "floor" => f64::floor,
                "exp" => f64::exp,
                "ln" => f64::ln,
                "log2" => go_log2,
                "log10" => go_log10,
                "sqrt" => f64::sqrt,
                "sgn" => |x: f64| {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        x
                    }
                },
                "sin" => f64::sin,
                "cos" => f64::cos,
                "tan" => f64::tan,
                "asin" => f64::asin,
                "acos" => f64::acos,
                "atan" => f64::atan,
                "sinh" => f64::sinh,
                "cosh" => f64::cosh,
                "tanh" => f64::tanh,
                "asinh" => f64::asinh,
                "acosh" => f64::acosh,
                "atanh" => f64::atanh,
                // as Prometheus computes them, left to right (not `to_degrees`, which
                // multiplies by the rounded constant 180/π and differs in the last place)
                "deg" => |x: f64| x * 180.0 / std::f64::consts::PI,
                "rad" => |x: f64| x * std::f64::consts::PI / 180.0,
                other => {
                    return Err(QueryError::Execution(format!("function {other}() is not supported yet")));
                }
            };
            let v = vector(ctx, args[0])?;
            Ok(Value::Vector(map_series(v, delayed, |_, x| Some(f(x)))?))
        }
    }
}

/// Go's `math.Log10`: the natural logarithm times 1/ln 10 (not libm's `log10`, which
/// differs in the last place).
fn go_log10(x: f64) -> f64 {
    x.ln() * std::f64::consts::LOG10_E
}

/// Go's `math.Log2`: exact for powers of two, else ln(frac) / ln 2 + exp of `Frexp`.
fn go_log2(x: f64) -> f64 {
    let (frac, exp) = go_frexp(x);
    if frac == 0.5 {
        return f64::from(exp - 1);
    }
    frac.ln() * std::f64::consts::LOG2_E + f64::from(exp)
}

/// Go's `math.Frexp`: `x = frac × 2^exp` with |frac| in [0.5, 1); zero, infinities and
/// NaN come back unchanged with exponent 0.
fn go_frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let (mut x, mut exp) = (x, 0);
    if x.abs() < f64::MIN_POSITIVE {
        x *= (1u64 << 52) as f64;
        exp = -52;
    }
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, exp)
}

/// Go's `math.Max`: +Inf if either is +Inf, else NaN if either is NaN, and +0 over -0.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: -Inf if either is -Inf, else NaN if either is NaN, and -0 under +0.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

fn warn_quantiles(ctx: &mut Ctx<'_>, phis: &[f64]) {
    if let Some(&phi) = phis.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        ctx.annotations.warn(format!(
            "quantile value should be between 0 and 1, got {}",
            crate::aggregate::format_float_g(phi)
        ));
    }
}

/// Applies `f` to every point, dropping the metric name; `None` drops the point. Series
/// left with the same labels merge, and collide where both have a point at one step.
fn map_series(v: Vec<Series>, delayed: bool, f: impl Fn(i64, f64) -> Option<f64>) -> Result<Vec<Series>> {
    let mapped = v
        .into_iter()
        .filter_map(|s| {
            let points: Vec<(i64, f64)> =
                s.points.iter().filter_map(|&(t, x)| f(t, x).map(|y| (t, y))).collect();
            if points.is_empty() {
                return None;
            }
            let (labels, dn) = drop_name(&s.labels, delayed);
            Some(Series::floats(labels, dn || s.drop_name, points))
        })
        .collect();
    merge_same_labels(mapped)
}

/// Applies `f` to every histogram point (floats are dropped), dropping the metric name
/// (series left with the same labels merge, as in [`map_series`]).
fn map_hists(
    v: Vec<Series>,
    delayed: bool,
    mut f: impl FnMut(&Labels, i64, &strata_tsdb::FloatHistogram) -> f64,
) -> Result<Vec<Series>> {
    let mapped = v
        .into_iter()
        .filter(|s| !s.hists.is_empty())
        .map(|s| {
            let points = s.hists.iter().map(|(t, h)| (*t, f(&s.labels, *t, h))).collect();
            let (labels, dn) = drop_name(&s.labels, delayed);
            Series::floats(labels, dn || s.drop_name, points)
        })
        .collect();
    merge_same_labels(mapped)
}

/// The metric name Prometheus puts in a histogram function's annotation: the name, unless
/// it was already removed (eager removal).
fn annotation_name(l: &Labels, delayed: bool) -> &str {
    if delayed { l.get(METRIC_NAME).unwrap_or("") } else { "" }
}

/// A date function of Unix second `secs` (Go's `time.Unix(secs, 0).UTC()`).
fn date_part(name: &str, secs: i64) -> f64 {
    let c = crate::dates::Civil::from_unix(secs);
    let v = match name {
        "day_of_month" => c.day,
        "day_of_week" => c.weekday,
        "day_of_year" => c.yday,
        "days_in_month" => crate::dates::days_in_month(c.year, c.month),
        "hour" => c.hour,
        "minute" => c.minute,
        "month" => c.month,
        _ => return c.year as f64,
    };
    f64::from(v)
}

fn range_fn(
    ctx: &mut Ctx<'_>,
    name: &str,
    arg: &Expr,
    p1: Option<Vec<f64>>,
    p2: Option<Vec<f64>>,
) -> Result<Value> {
    let ra = range_arg(ctx, arg)?;
    crate::extended::check_function(ra.mode, name)?;
    let steps = ctx.steps;
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    if matches!(name, "rate" | "increase" | "irate") {
        for w in &ra.series {
            if let Some(n) = w.labels.get(METRIC_NAME)
                && !["_total", "_sum", "_count", "_bucket"].iter().any(|s| n.ends_with(s))
                && w.ranges.iter().any(|r| r.1 > r.0)
            {
                ctx.annotations.info(format!(
                    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {n:?}"
                ));
            }
        }
    }
    let delayed = ctx.cfg.features.delayed_name_removal;
    let mut out = Vec::with_capacity(ra.series.len());
    for w in &ra.series {
        let (mut points, mut hists) = (Vec::with_capacity(steps.len()), Vec::new());
        let metric = w.labels.get(METRIC_NAME).unwrap_or("");
        let mut series_resets: Option<Vec<usize>> = None;
        for (i, (&(lo, hi), &(hlo, hhi))) in w.ranges.iter().zip(&w.hranges).enumerate() {
            let win = &w.samples[lo..hi];
            let hwin = &w.hists[hlo..hhi];
            if win.is_empty() && hwin.is_empty() {
                continue;
            }
            let end = ra.ends[i];
            let start = end - ra.range;
            let t = steps.at(i);
            if ra.mode != crate::extended::Mode::Plain {
                match extended_window(ctx, name, ra.mode, win, hwin, (start, end), metric) {
                    Windowed::Float(v) => points.push((t, v)),
                    Windowed::Hist(h) => hists.push((t, std::sync::Arc::new(h))),
                    Windowed::Nothing | Windowed::FloatsOnly => {}
                }
                continue;
            }
            if !hwin.is_empty() {
                match native_window(ctx, name, win, hwin, (start, end), metric) {
                    Windowed::Float(v) => points.push((t, v)),
                    Windowed::Hist(h) => hists.push((t, std::sync::Arc::new(h))),
                    Windowed::Nothing => {}
                    Windowed::FloatsOnly => {}
                }
                if win.is_empty() || !matches!(native_kind(name), Kind::FloatsOnly) {
                    continue;
                }
            }
            let v = match name {
                "rate" | "increase" => {
                    let r = series_resets.get_or_insert_with(|| resets(&w.samples));
                    extrapolated((&w.samples, lo, hi), (start, end), Some(r), name == "rate")
                }
                "delta" => extrapolated((&w.samples, lo, hi), (start, end), None, false),
                "irate" => instant_delta(win, true),
                "idelta" => instant_delta(win, false),
                "deriv" => (win.len() >= 2).then(|| linear_regression(win, win[0].0).0),
                "predict_linear" => (win.len() >= 2).then(|| {
                    let (slope, icpt) = linear_regression(win, t);
                    slope * p1.as_ref().map_or(0.0, |d| d[i]) + icpt
                }),
                "changes" => Some(
                    win.windows(2)
                        .filter(|p| p[1].1 != p[0].1 && !(p[1].1.is_nan() && p[0].1.is_nan()))
                        .count() as f64,
                ),
                "resets" => Some(win.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64),
                "avg_over_time" => Some(mean(win.iter().map(|s| s.1))),
                "sum_over_time" => {
                    let mut k = Kahan::default();
                    win.iter().for_each(|s| k.add(s.1));
                    Some(k.value())
                }
                "count_over_time" => Some(win.len() as f64),
                "min_over_time" => Some(min_max(win, false)),
                "max_over_time" => Some(min_max(win, true)),
                "last_over_time" => Some(win[win.len() - 1].1),
                "first_over_time" => Some(win[0].1),
                "present_over_time" => Some(1.0),
                "stddev_over_time" => Some(variance(win.iter().map(|s| s.1)).sqrt()),
                "stdvar_over_time" => Some(variance(win.iter().map(|s| s.1))),
                "quantile_over_time" => {
                    let mut vals: Vec<f64> = win.iter().map(|s| s.1).collect();
                    Some(quantile(p1.as_ref().map_or(f64::NAN, |q| q[i]), &mut vals))
                }
                // a NaN makes the median, and so the deviation, undefined
                "mad_over_time" if win.iter().any(|s| s.1.is_nan()) => Some(f64::NAN),
                "mad_over_time" => {
                    let mut vals: Vec<f64> = win.iter().map(|s| s.1).collect();
                    let med = quantile(0.5, &mut vals);
                    let mut dev: Vec<f64> = vals.iter().map(|v| (v - med).abs()).collect();
                    Some(quantile(0.5, &mut dev))
                }
                "ts_of_min_over_time" => Some(ts_of_extreme(win, false)),
                "ts_of_max_over_time" => Some(ts_of_extreme(win, true)),
                "ts_of_last_over_time" => Some(win[win.len() - 1].0 as f64 / 1000.0),
                "ts_of_first_over_time" => Some(win[0].0 as f64 / 1000.0),
                "double_exponential_smoothing" => double_exponential_smoothing(
                    win,
                    p1.as_ref().map_or(f64::NAN, |s| s[i]),
                    p2.as_ref().map_or(f64::NAN, |s| s[i]),
                ),
                _ => None,
            };
            if let Some(v) = v {
                points.push((t, v));
            }
        }
        if points.is_empty() && hists.is_empty() {
            continue;
        }
        let (labels, dn) = if keep_name { (w.labels.clone(), false) } else { drop_name(&w.labels, delayed) };
        out.push(Series { labels, drop_name: dn, points, hists });
    }
    // Prometheus checks this only with eager name removal (delayed removal checks at the end)
    if !delayed {
        check_distinct_labels(&out)?;
    }
    Ok(Value::Vector(out))
}

/// How a range function treats a window holding histograms.
enum Kind {
    /// It reads floats only; histograms are ignored (with an info when floats are there).
    FloatsOnly,
    /// It handles histograms itself.
    Native,
}

fn native_kind(name: &str) -> Kind {
    match name {
        "rate"
        | "increase"
        | "delta"
        | "irate"
        | "idelta"
        | "changes"
        | "resets"
        | "avg_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "ts_of_last_over_time"
        | "ts_of_first_over_time" => Kind::Native,
        _ => Kind::FloatsOnly,
    }
}

/// What a range function made of one window.
enum Windowed {
    Float(f64),
    Hist(strata_tsdb::FloatHistogram),
    Nothing,
    /// The float evaluation decides.
    FloatsOnly,
}

/// A float or histogram sample of a window, for functions that walk both in time order.
enum Either<'a> {
    F(f64),
    H(&'a strata_tsdb::FloatHistogram),
}

/// The window's floats and histograms merged in time order.
fn merged<'a>(win: Window<'a>, hwin: &'a [crate::value::HPoint]) -> Vec<(i64, Either<'a>)> {
    let mut all: Vec<(i64, Either<'a>)> = win.iter().map(|&(t, v)| (t, Either::F(v))).collect();
    all.extend(hwin.iter().map(|(t, h)| (*t, Either::H(h))));
    all.sort_by_key(|x| x.0);
    all
}

/// `resets` / `changes` over floats and histograms in time order (a switch between the two
/// counts); `anchor`, for an anchored window, starts the walk at the last sample at or
/// before it.
fn count_changes(
    name: &str,
    win: Window<'_>,
    hwin: &[crate::value::HPoint],
    anchor: Option<i64>,
) -> Option<f64> {
    let all = merged(win, hwin);
    let from = match anchor {
        Some(start) => crate::extended::anchored_start(&all, start)?,
        None => 0,
    };
    let n = all[from..]
        .windows(2)
        .filter(|p| match (&p[0].1, &p[1].1) {
            (Either::F(a), Either::F(b)) => {
                if name == "resets" {
                    b < a
                } else {
                    a != b && !(a.is_nan() && b.is_nan())
                }
            }
            (Either::H(a), Either::H(b)) => {
                if name == "resets" {
                    b.detect_reset(a)
                } else {
                    !crate::native::equals(a, b)
                }
            }
            _ => true,
        })
        .count();
    Some(n as f64)
}

/// `rate`/`increase`/`delta`/`resets`/`changes` over an anchored or smoothed window.
fn extended_window(
    ctx: &mut Ctx<'_>,
    name: &str,
    mode: crate::extended::Mode,
    win: Window<'_>,
    hwin: &[crate::value::HPoint],
    (start, end): (i64, i64),
    metric: &str,
) -> Windowed {
    if matches!(name, "resets" | "changes") {
        return count_changes(name, win, hwin, Some(start)).map_or(Windowed::Nothing, Windowed::Float);
    }
    let smoothed = mode == crate::extended::Mode::Smoothed;
    let (counter, rate) = (name != "delta", name == "rate");
    match (win.is_empty(), hwin.is_empty()) {
        (false, false) => {
            ctx.annotations
                .warn(format!("encountered a mix of histograms and floats for metric name {metric:?}"));
            Windowed::Nothing
        }
        (false, true) => crate::extended::rate(win, (start, end), smoothed, counter, rate)
            .map_or(Windowed::Nothing, Windowed::Float),
        (true, false) => crate::extended::rate_hist(
            hwin,
            (start, end),
            smoothed,
            counter,
            rate,
            metric,
            &mut ctx.annotations,
        )
        .map_or(Windowed::Nothing, Windowed::Hist),
        (true, true) => Windowed::Nothing,
    }
}

/// A range function over a window that holds histograms (Prometheus's histogram paths).
fn native_window(
    ctx: &mut Ctx<'_>,
    name: &str,
    win: Window<'_>,
    hwin: &[crate::value::HPoint],
    (start, end): (i64, i64),
    metric: &str,
) -> Windowed {
    let annos = &mut ctx.annotations;
    let mixed = |annos: &mut crate::Annotations| {
        annos.warn(format!("encountered a mix of histograms and floats for metric name {metric:?}"));
        Windowed::Nothing
    };
    match name {
        "rate" | "increase" | "delta" => {
            if !win.is_empty() {
                return mixed(annos);
            }
            if hwin.len() < 2 {
                return Windowed::Nothing;
            }
            let counter = name != "delta";
            let Some(mut h) = crate::native::increase(hwin, counter, metric, annos) else {
                return Windowed::Nothing;
            };
            let zero =
                (counter && h.count > 0.0 && hwin[0].1.count >= 0.0).then(|| hwin[0].1.count / h.count);
            let f = extrapolation_factor(
                (hwin[0].0, hwin[hwin.len() - 1].0, hwin.len()),
                start,
                end,
                zero,
                name == "rate",
            );
            h.mul(f);
            Windowed::Hist(h)
        }
        "irate" | "idelta" => {
            let all = merged(win, hwin);
            if all.len() < 2 {
                return Windowed::Nothing;
            }
            let (a, b) = (&all[all.len() - 2], &all[all.len() - 1]);
            match (&a.1, &b.1) {
                (Either::H(_), Either::H(_)) => {
                    let (pa, pb) = (&hwin[hwin.len() - 2], &hwin[hwin.len() - 1]);
                    crate::native::instant(pa, pb, name == "irate", metric, annos)
                        .map_or(Windowed::Nothing, Windowed::Hist)
                }
                (Either::F(x), Either::F(y)) => instant_delta(&[(a.0, *x), (b.0, *y)], name == "irate")
                    .map_or(Windowed::Nothing, Windowed::Float),
                _ => mixed(annos),
            }
        }
        "resets" | "changes" => {
            count_changes(name, win, hwin, None).map_or(Windowed::Nothing, Windowed::Float)
        }
        "sum_over_time" | "avg_over_time" => {
            if !win.is_empty() {
                return mixed(annos);
            }
            crate::native::sum(hwin.iter().map(|h| &*h.1), name == "avg_over_time", metric, annos)
                .map_or(Windowed::Nothing, Windowed::Hist)
        }
        "count_over_time" => Windowed::Float((win.len() + hwin.len()) as f64),
        "present_over_time" => Windowed::Float(1.0),
        "last_over_time" | "ts_of_last_over_time" => {
            let h = &hwin[hwin.len() - 1];
            match win.last() {
                Some(&(t, v)) if t > h.0 => {
                    Windowed::Float(if name == "last_over_time" { v } else { t as f64 / 1000.0 })
                }
                _ if name == "last_over_time" => Windowed::Hist((*h.1).clone()),
                _ => Windowed::Float(h.0 as f64 / 1000.0),
            }
        }
        "first_over_time" | "ts_of_first_over_time" => {
            let h = &hwin[0];
            match win.first() {
                Some(&(t, v)) if t < h.0 => {
                    Windowed::Float(if name == "first_over_time" { v } else { t as f64 / 1000.0 })
                }
                _ if name == "first_over_time" => Windowed::Hist((*h.1).clone()),
                _ => Windowed::Float(h.0 as f64 / 1000.0),
            }
        }
        _ => {
            if !win.is_empty() {
                annos.info(format!(
                    "ignored histograms in a range containing both floats and histograms for metric name {metric:?}"
                ));
            }
            Windowed::FloatsOnly
        }
    }
}

/// `absent()` / `absent_over_time()`: 1 at steps where nothing was present, labelled with
/// the selector's equality matchers.
fn absent(ctx: &Ctx<'_>, arg: &Expr, present: &[bool]) -> Result<Value> {
    let vs = match arg {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(ms) => Some(&ms.vs),
        _ => None,
    };
    // Prometheus: the first equality matcher of a name sets it, any other matcher on it drops it
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(vs) = vs {
        let mut seen: Vec<String> = Vec::new();
        for m in selector_matchers(vs)? {
            if m.name == METRIC_NAME {
                continue;
            }
            pairs.retain(|p| p.0 != m.name);
            if m.op == MatchOp::Equal && !seen.contains(&m.name) {
                pairs.push((m.name.clone(), m.value.clone()));
                seen.push(m.name);
            }
        }
    }
    let labels = labels_from(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let points: Vec<(i64, f64)> =
        ctx.steps.iter().zip(present).filter(|(_, p)| !**p).map(|(t, _)| (t, 1.0)).collect();
    if points.is_empty() {
        return Ok(Value::Vector(Vec::new()));
    }
    Ok(Value::Vector(vec![Series::floats(labels, false, points)]))
}

/// Natural order: digit runs compare as numbers ("2" < "10").
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let chunks = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match out.last_mut() {
                Some((ld, cur)) if *ld == d => cur.push(c),
                _ => out.push((d, c.to_string())),
            }
        }
        out
    };
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = if x.0 && y.0 {
            let (xs, ys) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
            xs.len().cmp(&ys.len()).then_with(|| xs.cmp(ys))
        } else {
            x.1.cmp(&y.1)
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

fn valid_label_name(n: &str) -> bool {
    !n.is_empty()
}

fn label_replace(ctx: &mut Ctx<'_>, args: &[&Expr]) -> Result<Value> {
    let v = vector(ctx, args[0])?;
    let dst = string(ctx, args[1])?;
    let repl = string(ctx, args[2])?;
    let src = string(ctx, args[3])?;
    let re_src = string(ctx, args[4])?;
    // Go's syntax and meaning (strata_goregex), anchored, `.` matching newlines as
    // in Prometheus 3
    // (the source is not parsed on its own first, as Prometheus does not)
    let re = strata_goregex::translate(&format!("^(?s:{re_src})$"))
        .and_then(|rust| regex::Regex::new(&rust).map_err(|e| e.to_string()))
        .map_err(|_| {
            QueryError::Execution(format!("invalid regular expression in label_replace(): {re_src}"))
        })?;
    if !valid_label_name(&dst) {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    relabel(v, |l| {
        let val = l.get(&src).unwrap_or("");
        match re.captures(val) {
            Some(caps) => {
                let mut res = String::new();
                caps.expand(&repl, &mut res);
                (with_label(l, &dst, &res), dst == METRIC_NAME)
            }
            None => (l.clone(), false),
        }
    })
}

fn label_join(ctx: &mut Ctx<'_>, args: &[&Expr]) -> Result<Value> {
    let v = vector(ctx, args[0])?;
    let dst = string(ctx, args[1])?;
    let sep = string(ctx, args[2])?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        srcs.push(string(ctx, a)?);
    }
    if !valid_label_name(&dst) {
        return Err(QueryError::Execution(format!("invalid destination label name in label_join(): {dst}")));
    }
    relabel(v, |l| {
        let joined: Vec<&str> = srcs.iter().map(|s| l.get(s).unwrap_or("")).collect();
        (with_label(l, &dst, &joined.join(&sep)), dst == METRIC_NAME)
    })
}

/// Rewrites labels point by point, merging series that end up with the same labels and
/// failing when two collide at one step. `f` returns the new labels and whether it wrote
/// `__name__` (a name written by the function is kept even when it was to be dropped).
fn relabel(v: Vec<Series>, f: impl Fn(&Labels) -> (Labels, bool)) -> Result<Value> {
    let mut out = Out::default();
    let mut rows: Vec<(Labels, bool, i64, Val)> = Vec::new();
    for s in v {
        let (nl, wrote_name) = f(&s.labels);
        let dn = s.drop_name && !wrote_name;
        for &(t, x) in &s.points {
            rows.push((nl.clone(), dn, t, Val::F(x)));
        }
        for (t, h) in s.hists {
            rows.push((nl.clone(), dn, t, Val::H(h)));
        }
    }
    rows.sort_by_key(|r| r.2);
    for (l, dn, t, x) in rows {
        out.push_val(l, dn, t, x)?;
    }
    Ok(Value::Vector(out.finish()))
}

fn histogram_quantile(ctx: &mut Ctx<'_>, args: &[&Expr]) -> Result<Value> {
    let phi = scalar(ctx, args[0])?;
    warn_quantiles(ctx, &phi);
    let v = vector(ctx, args[1])?;
    histogram_quantile_of(ctx, &v, &phi)
}

/// `histogram_quantile` of `v` with the quantile `phi` of each step.
fn histogram_quantile_of(ctx: &mut Ctx<'_>, v: &[Series], phi: &[f64]) -> Result<Value> {
    over_histograms(
        ctx,
        v,
        |i, h, name, annos| crate::native::quantile(phi[i], h, name, annos),
        |i, buckets, name, annos| {
            let (value, fixed) = bucket_quantile(phi[i], buckets);
            if fixed {
                annos.info(format!(
                    "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"
                ));
            }
            value
        },
    )
}

/// `histogram_quantiles(v, "label", q1, q2, …)`: one output series per input and quantile,
/// the quantile written into `label` as OpenMetrics writes floats (`0.0`, `0.25`).
fn histogram_quantiles(ctx: &mut Ctx<'_>, args: &[&Expr]) -> Result<Value> {
    let v = vector(ctx, args[0])?;
    let label = string(ctx, args[1])?;
    let mut phis = Vec::new();
    for a in &args[2..] {
        let phi = scalar(ctx, a)?;
        warn_quantiles(ctx, &phi);
        phis.push(phi);
    }
    let mut out = Out::default();
    for phi in &phis {
        let Value::Vector(res) = histogram_quantile_of(ctx, &v, phi)? else {
            continue;
        };
        for s in res {
            let text = phi.first().map_or_else(String::new, |&q| openmetrics_float(q));
            let labels = with_label(&s.labels, &label, &text);
            for (t, x) in s.points {
                out.push(labels.clone(), s.drop_name, t, x)?;
            }
        }
    }
    Ok(Value::Vector(out.finish()))
}

/// A float as Prometheus's `FormatOpenMetricsFloat` writes it: Go's `%g` (`0.25`,
/// `1e+06`), with `.0` added to a number that has neither a point nor an exponent, and
/// `0.0` for both zeros.
fn openmetrics_float(v: f64) -> String {
    if v == 0.0 {
        return "0.0".into();
    }
    let s = crate::aggregate::format_float_g(v);
    if v.is_finite() && !s.contains(['e', '.']) { format!("{s}.0") } else { s }
}

fn histogram_fraction(ctx: &mut Ctx<'_>, args: &[&Expr]) -> Result<Value> {
    let lo = scalar(ctx, args[0])?;
    let hi = scalar(ctx, args[1])?;
    let v = vector(ctx, args[2])?;
    over_histograms(
        ctx,
        &v,
        |i, h, name, annos| crate::native::fraction(lo[i], hi[i], h, name, annos),
        |i, buckets, _, _| bucket_fraction(lo[i], hi[i], buckets),
    )
}

/// Evaluates a histogram function at every step: `native` on each native histogram,
/// `classic` on the (upper bound, cumulative count) buckets of each classic histogram
/// (series grouped by their labels without `le` and the name).
fn over_histograms(
    ctx: &mut Ctx<'_>,
    v: &[Series],
    mut native: impl FnMut(usize, &strata_tsdb::FloatHistogram, &str, &mut crate::Annotations) -> f64,
    mut classic: impl FnMut(usize, &mut [(f64, f64)], &str, &mut crate::Annotations) -> f64,
) -> Result<Value> {
    let steps = ctx.steps;
    let delayed = ctx.cfg.features.delayed_name_removal;
    let mut annos = std::mem::take(&mut ctx.annotations);
    // classic buckets grouped by their labels without `le` (the name included)
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (j, s) in v.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let Some(le) = s.labels.get("le").and_then(parse_le) else {
            annos.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                s.labels.get("le").unwrap_or(""),
                annotation_name(&s.labels, delayed)
            ));
            continue;
        };
        let key = crate::grid::without(&s.labels, &["le"]);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push((le, j)),
            None => groups.push((key, vec![(le, j)])),
        }
    }
    let mut out = Out::default();
    for i in 0..steps.len() {
        let t = steps.at(i);
        let mut buckets: Vec<Vec<(f64, f64)>> = groups
            .iter()
            .map(|(_, members)| {
                members
                    .iter()
                    .filter_map(|&(le, j)| v[j].points.iter().find(|p| p.0 == t).map(|p| (le, p.1)))
                    .collect()
            })
            .collect();
        for s in v {
            let Some((_, h)) = s.hists.iter().find(|p| p.0 == t) else {
                continue;
            };
            // a native histogram next to classic buckets of the same series: neither counts
            if let Some(g) = groups.iter().position(|g| g.0 == s.labels)
                && !buckets[g].is_empty()
            {
                annos.warn(format!(
                    "vector contains a mix of classic and native histograms for metric name {:?}",
                    annotation_name(&s.labels, delayed)
                ));
                buckets[g].clear();
                continue;
            }
            let (labels, dn) = drop_name(&s.labels, delayed);
            let x = native(i, h, annotation_name(&s.labels, delayed), &mut annos);
            out.push(labels, dn || s.drop_name, t, x)?;
        }
        for ((key, members), b) in groups.iter().zip(&mut buckets) {
            if b.is_empty() {
                continue;
            }
            let name = annotation_name(key, delayed);
            let name = name.strip_suffix("_bucket").unwrap_or(name);
            let value = classic(i, b, name, &mut annos);
            let (labels, dn) = drop_name(key, delayed);
            let dn = dn || members.iter().any(|m| v[m.1].drop_name);
            out.push(labels, dn, t, value)?;
        }
    }
    ctx.annotations = annos;
    Ok(Value::Vector(out.finish()))
}

/// Prometheus's `BucketFraction` over (upper bound, cumulative count) pairs: the share of
/// observations in `(lower, upper]`, interpolating linearly within buckets.
fn bucket_fraction(lower: f64, upper: f64, b: &mut [(f64, f64)]) -> f64 {
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b.last().is_none_or(|x| x.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for &(ub, n) in b.iter() {
        match c.last_mut() {
            Some(last) if last.0 == ub => last.1 += n,
            _ => c.push((ub, n)),
        }
    }
    let count = c[c.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if c[0].0 <= 0.0 { f64::NEG_INFINITY } else { 0.0 };
    for (i, &(upper_bound, n)) in c.iter().enumerate() {
        if i > 0 {
            lower_bound = c[i - 1].0;
        }
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                return n;
            }
            rank + (n - rank) * (v - lower_bound) / (upper_bound - lower_bound)
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = n;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        _ => s.parse().ok(),
    }
}

/// Prometheus's `BucketQuantile` over (upper bound, cumulative count) pairs.
/// Returns the quantile and whether the counts had to be fixed for monotonicity.
fn bucket_quantile(q: f64, b: &mut [(f64, f64)]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|x| x.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    // coalesce equal bounds
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for &(ub, n) in b.iter() {
        match c.last_mut() {
            Some(last) if last.0 == ub => last.1 += n,
            _ => c.push((ub, n)),
        }
    }
    // monotonicity: numerically insignificant differences are ignored, decreases removed;
    // a NaN count compares as neither, and the next bucket is measured against it
    let mut prev = c[0].1;
    let mut fixed = false;
    for x in c.iter_mut().skip(1) {
        if x.1 == prev {
            continue;
        }
        if almost_equal(prev, x.1, 1e-12) {
            x.1 = prev;
            continue;
        }
        if x.1 < prev {
            x.1 = prev;
            fixed = true;
            continue;
        }
        prev = x.1;
    }
    if c.len() < 2 {
        return (f64::NAN, false);
    }
    // a NaN total makes the rank NaN, and the search below then ends at the last bucket
    let obs = c[c.len() - 1].1;
    if obs == 0.0 {
        return (f64::NAN, false);
    }
    let mut rank = q * obs;
    let idx = go_search(c.len() - 1, |i| c[i].1 >= rank);
    if idx == c.len() - 1 {
        return (c[c.len() - 2].0, fixed);
    }
    if idx == 0 && c[0].0 <= 0.0 {
        return (c[0].0, fixed);
    }
    let (mut start, end, mut count) = (0.0, c[idx].0, c[idx].1);
    if idx > 0 {
        start = c[idx - 1].0;
        count -= c[idx - 1].1;
        rank -= c[idx - 1].1;
    }
    (start + (end - start) * (rank / count), fixed)
}

/// Go's `sort.Search(n, f)`: the bisection Prometheus finds a bucket with. With NaN counts
/// the predicate is not monotonic, and the answer depends on the exact midpoints probed.
fn go_search(n: usize, f: impl Fn(usize) -> bool) -> usize {
    let (mut i, mut j) = (0, n);
    while i < j {
        let h = i + (j - i) / 2;
        if f(h) {
            j = h;
        } else {
            i = h + 1;
        }
    }
    i
}

/// Prometheus's `almost.Equal`: `a` and `b` differ by less than `epsilon` relative to their
/// size (by less than `epsilon` times the smallest normal float where one is 0 or both are
/// tiny); two NaNs are equal.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

#[cfg(test)]
mod tests {
    /// `rate` and `increase` add the value before each counter reset in the window, in
    /// order: read from the series' reset positions, every window of a counter with resets
    /// (and NaNs, which never count as one) gives bit for bit what a scan of its samples
    /// gives.
    #[test]
    fn windows_add_the_resets_they_hold() {
        let vals = [3.0, 5.0, 1.0, 4.0, 4.0, f64::NAN, 2.0, 7.5, 0.25, 9.0, 3.0, 3.5, 1e17, 2.0, 6.0];
        let samples: Vec<(i64, f64)> =
            vals.iter().enumerate().map(|(i, &v)| (i as i64 * 15_000, v)).collect();
        let resets = super::resets(&samples);
        assert_eq!(resets, [2, 8, 10, 13]);
        for lo in 0..samples.len() {
            for hi in lo..=samples.len() {
                let w = &samples[lo..hi];
                let scanned = (w.len() >= 2).then(|| {
                    let mut r = w[w.len() - 1].1 - w[0].1;
                    for p in w.windows(2) {
                        if p[1].1 < p[0].1 {
                            r += p[0].1;
                        }
                    }
                    r
                });
                let range = (lo as i64 * 15_000 - 10_000, hi as i64 * 15_000);
                let got = super::extrapolated((&samples, lo, hi), range, Some(&resets), false);
                match (got, scanned) {
                    (None, None) => {}
                    (Some(g), Some(want)) if want.is_nan() => assert!(g.is_nan(), "{lo}..{hi}"),
                    (Some(g), Some(want)) => {
                        // the increase is the corrected change times the (possibly
                        // zero-limited) extrapolation: compare the change itself
                        let zero = want > 0.0 && w[0].1 >= 0.0;
                        let f = super::extrapolation_factor(
                            (w[0].0, w[w.len() - 1].0, w.len()),
                            range.0,
                            range.1,
                            zero.then_some(w[0].1 / want),
                            false,
                        );
                        assert_eq!(g.to_bits(), (want * f).to_bits(), "{lo}..{hi}: {g} vs {want} × {f}");
                    }
                    other => panic!("{lo}..{hi}: {other:?}"),
                }
            }
        }
    }

    /// Prometheus's `FormatOpenMetricsFloat` (model/labels/float.go) of each value.
    #[test]
    fn openmetrics_floats() {
        let cases: [(f64, &str); 9] = [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (-0.0, "0.0"),
            (100.0, "100.0"),
            (1e6, "1e+06"),
            (0.00001, "1e-05"),
            (0.99, "0.99"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(super::openmetrics_float(v), want);
        }
    }
}
