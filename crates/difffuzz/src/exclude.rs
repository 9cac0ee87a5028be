//! What `../shared/conformance/VERSIONS.md` says must not be compared between Prometheus
//! 2.42 and Strata (which follows 3.x), and the verdict on a minimised mismatch.
//!
//! Static exclusions (the generator throws such expressions away, and the minimiser never
//! produces them): `holt_winters` (row 3), `histogram_fraction` (row 21), `atan2` with a
//! vector operand (row 17), `predict_linear` over an `@`-pinned range (row 20),
//! `stddev`/`stdvar` aggregations over input that may hold NaN or ±Inf (row 16), a NaN `k`
//! for `topk`/`bottomk` (row 7), and `count_values` with grouping in range queries (row
//! 19; only the range query is skipped). Boundary samples (row 1) and `rate`'s
//! extrapolation near a series start on raw data (row 5) cannot happen on the data set.
//!
//! Dynamic verdicts, checked on a minimised mismatch by asking the reference more
//! questions: a matching error of a filtering comparison that 2.42 filtered away first
//! (row 18), ties under `topk`/`bottomk` (row 23), `exp`/`sinh`/`cosh` of arguments
//! beyond ~709 (row 23), date functions of NaN, ±Inf or values beyond int64 (row 23), and
//! `rate`/`increase` whose values match 2.42's and 3.x's extrapolation to the zero point
//! respectively (row 5, on a subquery's points). Everything else is a Strata bug.

use std::collections::BTreeMap;

use crate::compare::{Answer, DiffKind, close};
use crate::expr::{Expr, Ty, is_cmp};
use crate::runner::Query;

/// A verdict on a mismatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Strata answers differently from Prometheus with no documented reason.
    StrataBug,
    /// A documented 2.42 vs 3.x difference (VERSIONS.md row).
    Version(&'static str),
    /// Behaviour no version specifies (VERSIONS.md row 23).
    Undefined(&'static str),
}

impl Verdict {
    /// Whether the mismatch counts against agreement.
    pub fn is_bug(&self) -> bool {
        matches!(self, Verdict::StrataBug)
    }

    /// Text for reports.
    pub fn text(&self) -> String {
        match self {
            Verdict::StrataBug => "Strata bug".into(),
            Verdict::Version(w) => format!("version difference to exclude ({w})"),
            Verdict::Undefined(w) => format!("undefined behaviour ({w})"),
        }
    }
}

const NAN_METRICS: &[&str] = &["app_temperature_celsius", "rpc_duration_seconds_bucket"];

/// Whether `e` may produce NaN or ±Inf (conservatively).
pub fn maybe_nonfinite(e: &Expr) -> bool {
    match e {
        Expr::Num(t) => {
            let v = parse_num(t);
            !v.is_finite() || v.abs() > 1e100
        }
        Expr::Str(_) => false,
        Expr::Sel(s, _) | Expr::Range(s, _, _) => match &s.name {
            Some(n) => NAN_METRICS.contains(&n.as_str()),
            None => true,
        },
        Expr::Call(name, args) => {
            matches!(
                *name,
                "ln" | "log2"
                    | "log10"
                    | "sqrt"
                    | "acos"
                    | "asin"
                    | "acosh"
                    | "atanh"
                    | "exp"
                    | "sinh"
                    | "cosh"
                    | "tan"
                    | "histogram_quantile"
                    | "quantile_over_time"
                    | "holt_winters"
                    | "scalar"
                    | "round"
                    | "predict_linear"
                    | "deriv"
            ) || args.iter().any(maybe_nonfinite)
        }
        Expr::Agg(op, _, _, inner) => *op == "quantile" || maybe_nonfinite(inner),
        Expr::Bin(op, ..) if matches!(*op, "/" | "%" | "^" | "*") => true,
        _ => e.children().iter().any(|c| maybe_nonfinite(c)),
    }
}

/// The value of a number literal as PromQL reads it.
pub fn parse_num(t: &str) -> f64 {
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let lower = body.to_ascii_lowercase();
    let v = if lower == "nan" {
        f64::NAN
    } else if lower == "inf" {
        f64::INFINITY
    } else if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).map_or(f64::NAN, |v| v as f64)
    } else {
        lower.parse().unwrap_or(f64::NAN)
    };
    if neg { -v } else { v }
}

/// The VERSIONS.md row that excludes `e` from every comparison, if any.
pub fn static_exclusion(e: &Expr) -> Option<&'static str> {
    for n in e.nodes() {
        match n {
            Expr::Call("holt_winters", _) => return Some("row 3: holt_winters renamed in 3.0"),
            Expr::Call("histogram_fraction", _) => return Some("row 21: histogram_fraction on classic buckets"),
            Expr::Call("predict_linear", args)
                if args.first().is_some_and(|a| {
                    a.any(&|x| matches!(x, Expr::Sel(_, m) | Expr::Range(_, _, m) | Expr::Sub(_, _, _, m) if m.at.is_some()))
                }) =>
            {
                return Some("row 20: predict_linear over an @-pinned range");
            }
            Expr::Call("quantile_over_time", args)
                if args.len() == 2
                    && !matches!(args[0], Expr::Num(_))
                    && args[1].any(&|x| {
                        matches!(x, Expr::Sel(_, m) | Expr::Range(_, _, m) | Expr::Sub(_, _, _, m) if m.at.is_some())
                    }) =>
            {
                return Some("row 20: a range function over an @-pinned range with a non-constant parameter");
            }
            Expr::Bin("atan2", _, _, l, r) if l.ty() != Ty::Scalar || r.ty() != Ty::Scalar => {
                return Some("row 17: atan2 with a vector operand");
            }
            Expr::Agg("stddev" | "stdvar", _, _, inner) if maybe_nonfinite(inner) => {
                return Some("row 16: stddev/stdvar over NaN or Inf");
            }
            Expr::Agg("topk" | "bottomk", Some(p), _, _) if !matches!(&**p, Expr::Num(t) if parse_num(t).is_finite()) => {
                return Some("row 7: topk/bottomk parameter other than a finite literal");
            }
            Expr::Agg("quantile", Some(p), _, _) if !matches!(&**p, Expr::Num(_)) => {
                return Some("row 7: quantile parameter other than a literal");
            }
            _ => {}
        }
    }
    None
}

/// The VERSIONS.md row that excludes the range query of `e`, if any.
pub fn range_exclusion(e: &Expr) -> Option<&'static str> {
    e.any(&|n| matches!(n, Expr::Agg("count_values", _, Some(_), _)))
        .then_some("row 19: count_values with grouping in a range query")
}

/// Asks the reference one query.
pub type Ask<'a> = dyn Fn(&str, &Query) -> Answer + 'a;

/// The verdict on a minimised mismatch of `e`: the two answers, a way to ask the
/// reference and the target more, and whether the reference is Prometheus 2.42 (`versions`).
pub fn classify(
    e: &Expr,
    query: &Query,
    kind: DiffKind,
    (reference, target): (&Answer, &Answer),
    (ask_ref, ask_target): (&Ask<'_>, &Ask<'_>),
    versions: bool,
) -> Verdict {
    // ties under topk/bottomk: which series are kept is unspecified
    if kind == DiffKind::Result {
        for n in e.nodes() {
            if let Expr::Agg("topk" | "bottomk", _, _, inner) = n
                && has_ties(&ask_ref(&inner.to_string(), query))
            {
                return Verdict::Undefined("row 23: topk/bottomk ties");
            }
        }
    }
    if !versions {
        return Verdict::StrataBug;
    }
    // Prometheus (2.42 and 3.x) panics on a parenthesised step-invariant string or range
    // vector at the top of an instant query
    if kind == DiffKind::RefErrorTargetResult
        && let Answer::Err { message, .. } = reference
        && (message.contains("unexpected result in StepInvariantExpr")
            || message.contains("unexpected number of samples"))
    {
        return Verdict::Undefined("Prometheus panics evaluating a parenthesised step-invariant expression");
    }
    // float noise: a sub-expression both compute within 1e-6 but not bit for bit, made
    // visible by count_values labels or amplified (%, sin, cos, cancellation); Kahan
    // summation changed after 2.42 (row 4), and Go's math library and libm differ in the
    // last place for transcendental functions (row 23)
    if kind == DiffKind::Result {
        for n in e.nodes().into_iter().skip(1) {
            let noisy = match n {
                Expr::Call(f, _) | Expr::Agg(f, ..) if ROW4.contains(f) => Some(Verdict::Version(
                    "row 4: Kahan summation, last digits amplified or seen through count_values",
                )),
                Expr::Call(f, _) if TRANSCENDENTAL.contains(f) => Some(Verdict::Undefined(
                    "row 23: last-place differences of Go's math and libm, amplified",
                )),
                Expr::Bin("^", ..) => Some(Verdict::Undefined(
                    "row 23: last-place differences of Go's math and libm, amplified",
                )),
                _ => None,
            };
            if let Some(v) = noisy {
                // at the query's time, and over the hour before it (inside subqueries)
                let end = match query {
                    Query::Instant(t) => *t,
                    Query::Range { end, .. } => *end,
                };
                let text = n.to_string();
                let over_hour = format!("({text})[1h:10s]");
                for (t, q) in [(&text, query.clone()), (&over_hour, Query::Instant(end))] {
                    let (a, b) = (ask_ref(t, &q), ask_target(t, &q));
                    if crate::compare::diff(&a, &b).is_none() && a.brief(usize::MAX) != b.brief(usize::MAX) {
                        return v;
                    }
                }
            }
        }
    }
    // row 4: sums computed another way (Kahan and friends) differ in the last digits,
    // which count_values turns into different labels
    if kind == DiffKind::Result
        && e.uses("count_values")
        && ROW4.iter().any(|f| e.uses(f))
        && agree_but_for_float_labels(reference, target)
    {
        return Verdict::Version("row 4: Kahan summation, last digits seen through count_values labels");
    }
    // exp/sinh/cosh beyond ~709, date functions of NaN/Inf/huge
    for n in e.nodes() {
        match n {
            Expr::Call("exp" | "sinh" | "cosh", args)
                if kind == DiffKind::Result
                    && values(&ask_ref(&args[0].to_string(), query)).iter().any(|v| v.abs() >= 709.0) =>
            {
                return Verdict::Undefined("row 23: exp/sinh/cosh overflow");
            }
            Expr::Call(
                "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
                | "month" | "year",
                args,
            ) if !args.is_empty()
                && values(&ask_ref(&args[0].to_string(), query))
                    .iter()
                    .any(|v| !v.is_finite() || v.abs() >= 9.2e18) =>
            {
                return Verdict::Undefined("row 23: date function of NaN/Inf/huge");
            }
            _ => {}
        }
    }
    // row 6: 3.x ignores tiny differences between adjacent buckets (float noise of sums)
    if kind == DiffKind::Result {
        for n in e.nodes() {
            if let Expr::Call("histogram_quantile", args) = n
                && args.len() == 2
                && has_tiny_bucket_deltas(&ask_ref(&args[1].to_string(), query))
            {
                return Verdict::Version("row 6: histogram_quantile over buckets differing by float noise");
            }
        }
    }
    // row 18: 2.42 filters a comparison before checking the matching, 3.9 after
    if kind == DiffKind::RefResultTargetError
        && let Answer::Err { message, .. } = target
        && ["multiple matches", "many-to-many", "many-to-one", "one-to-one"]
            .iter()
            .any(|m| message.contains(m))
    {
        for n in e.nodes() {
            if let Expr::Bin(op, false, _, l, r) = n
                && is_cmp(op)
                && l.ty() == Ty::Vector
                && r.ty() == Ty::Vector
                && !ask_ref(&l.to_string(), query).series().is_empty()
                && !ask_ref(&r.to_string(), query).series().is_empty()
            {
                return Verdict::Version("row 18: comparison filtered before the matching check");
            }
        }
    }
    // row 5: rate/increase extrapolation to the zero point
    if kind == DiffKind::Result
        && let Expr::Call(f @ ("rate" | "increase"), args) = e
        && let Some(arg) = args.first()
        && matches!(arg, Expr::Range(..) | Expr::Sub(..))
        && zero_point_difference(f == &"rate", arg, query, reference, target, ask_ref)
    {
        return Verdict::Version("row 5: rate extrapolation to the zero point near a series start");
    }
    Verdict::StrataBug
}

/// Functions and aggregations whose summation changed after 2.42 (VERSIONS.md row 4).
const ROW4: &[&str] = &[
    "sum",
    "avg",
    "avg_over_time",
    "sum_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "stddev",
    "stdvar",
    "deriv",
    "predict_linear",
];

/// Functions whose last-place results differ between Go's math library and libm.
const TRANSCENDENTAL: &[&str] = &[
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "exp",
    "ln", "log2", "log10",
];

/// Points of a series.
type Points = Vec<(i64, f64)>;

/// Whether the answers agree once label values that are numbers are compared as numbers
/// (relative 1e-9).
pub fn agree_but_for_float_labels(a: &Answer, b: &Answer) -> bool {
    let canon = |x: &Answer| {
        let mut v: Vec<(Vec<(String, String)>, Points)> = x
            .series()
            .into_iter()
            .map(|(labels, pts)| {
                let l = labels
                    .into_iter()
                    .map(|(k, v)| match v.parse::<f64>() {
                        Ok(f) if f.is_finite() && f != 0.0 => (k, format!("{:.9e}", f)),
                        _ => (k, v),
                    })
                    .collect();
                (l, pts)
            })
            .collect();
        v.sort_by(|x, y| format!("{:?}", x.0).cmp(&format!("{:?}", y.0)));
        v
    };
    let (x, y) = (canon(a), canon(b));
    x.len() == y.len()
        && x.iter().zip(&y).all(|(p, q)| {
            p.0 == q.0
                && p.1.len() == q.1.len()
                && p.1.iter().zip(&q.1).all(|(m, n)| m.0 == n.0 && close(m.1, n.1))
        })
}

fn values(a: &Answer) -> Vec<f64> {
    a.series().into_iter().flat_map(|s| s.1.into_iter().map(|p| p.1)).collect()
}

/// Whether two adjacent `le` buckets of one histogram at one time differ by float noise
/// only (relative 1e-9), which 3.x treats as equal and 2.42 does not.
fn has_tiny_bucket_deltas(a: &Answer) -> bool {
    let mut hists: BTreeMap<(String, i64), Vec<(f64, f64)>> = BTreeMap::new();
    for (mut labels, pts) in a.series() {
        let Some(le) = labels.remove("le").and_then(|l| l.parse::<f64>().ok()) else { continue };
        labels.remove("__name__");
        let key = format!("{labels:?}");
        for (t, v) in pts {
            hists.entry((key.clone(), t)).or_default().push((le, v));
        }
    }
    hists.values_mut().any(|b| {
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        b.windows(2).any(|w| {
            let d = (w[1].1 - w[0].1).abs();
            d > 0.0 && d <= 1e-9 * w[0].1.abs().max(w[1].1.abs())
        })
    })
}

/// Whether some evaluation time has two series of equal value (or a NaN).
fn has_ties(a: &Answer) -> bool {
    let mut by_time: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (_, pts) in a.series() {
        for (t, v) in pts {
            by_time.entry(t).or_default().push(v);
        }
    }
    by_time.values().any(|vs| {
        vs.iter().any(|v| v.is_nan())
            || vs.iter().enumerate().any(|(i, a)| vs[i + 1..].iter().any(|b| a == b))
    })
}

/// `rate`/`increase` of one series' points in `[start, end]` (ms), by 2.42's rule (`old`)
/// or 3.x's (the zero point taken after the half-interval limit).
pub fn extrapolated(points: &[(i64, f64)], start: i64, end: i64, is_rate: bool, old: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let mut result = last.1 - first.1;
    let mut prev = 0.0;
    for p in points {
        if p.1 < prev {
            result += prev;
        }
        prev = p.1;
    }
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let mut to_end = (end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (points.len() - 1) as f64;
    let threshold = avg * 1.1;
    let zero = |to_start: &mut f64| {
        if result > 0.0 && first.1 >= 0.0 {
            let to_zero = sampled * (first.1 / result);
            if to_zero < *to_start {
                *to_start = to_zero;
            }
        }
    };
    if old {
        zero(&mut to_start);
        if to_start >= threshold {
            to_start = avg / 2.0;
        }
    } else {
        if to_start >= threshold {
            to_start = avg / 2.0;
        }
        zero(&mut to_start);
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut v = result * (sampled + to_start + to_end) / sampled;
    if is_rate {
        v /= (end - start) as f64 / 1000.0;
    }
    Some(v)
}

fn zero_point_difference(
    is_rate: bool,
    arg: &Expr,
    query: &Query,
    reference: &Answer,
    target: &Answer,
    ask_ref: &Ask<'_>,
) -> bool {
    let (range, mods) = match arg {
        Expr::Range(_, r, m) | Expr::Sub(_, r, _, m) => (r.ms, m),
        _ => return false,
    };
    let times: Vec<i64> = match query {
        Query::Instant(t) => vec![*t],
        Query::Range { start, end, step } => {
            (0..).map(|i| start + i * step).take_while(|t| t <= end).collect()
        }
    };
    let (want, got) = (reference.series(), target.series());
    let find = |s: &[crate::compare::Series], labels: &BTreeMap<String, String>, t: i64| {
        s.iter()
            .find(|x| {
                let mut l = x.0.clone();
                l.remove("__name__");
                &l == labels
            })
            .and_then(|x| x.1.iter().find(|p| p.0 == t).map(|p| p.1))
    };
    let mut differs = false;
    for t in times {
        let at = match &mods.at {
            Some(crate::expr::At::Time(_, ms)) => *ms,
            Some(crate::expr::At::Start) => match query {
                Query::Instant(t) => *t,
                Query::Range { start, .. } => *start,
            },
            Some(crate::expr::At::End) => match query {
                Query::Instant(t) => *t,
                Query::Range { end, .. } => *end,
            },
            None => t,
        };
        let end = at - mods.offset_ms();
        let start = end - range;
        let raw = ask_ref(&arg.to_string(), &Query::Instant(t));
        for (mut labels, pts) in raw.series() {
            labels.remove("__name__");
            let (Some(old), Some(new)) = (
                extrapolated(&pts, start, end, is_rate, true),
                extrapolated(&pts, start, end, is_rate, false),
            ) else {
                continue;
            };
            let (Some(p), Some(s)) = (find(&want, &labels, t), find(&got, &labels, t)) else {
                return false;
            };
            if !close(p, old) || !close(s, new) {
                return false;
            }
            differs |= !close(old, new);
        }
    }
    differs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_read_as_promql_reads_them() {
        assert_eq!(parse_num("0x1F"), 31.0);
        assert_eq!(parse_num("-Inf"), f64::NEG_INFINITY);
        assert!(parse_num("nan").is_nan());
        assert_eq!(parse_num("1e3"), 1000.0);
        assert_eq!(parse_num(".5"), 0.5);
    }

    #[test]
    fn the_zero_point_moves_only_in_3x() {
        // a counter first seen 100 s into a 300 s window, 7 s of its slope above zero
        let pts: Vec<(i64, f64)> = (0..20).map(|i| (100_000 + i * 10_000, 7.0 + 10.0 * i as f64)).collect();
        let old = extrapolated(&pts, 0, 300_000, false, true).unwrap();
        let new = extrapolated(&pts, 0, 300_000, false, false).unwrap();
        assert!(old > new, "{old} {new}");
    }
}
