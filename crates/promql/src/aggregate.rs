//! Aggregation operators, grouped `by` or `without` labels, evaluated per step.

use rustc_hash::FxHashMap;

use promql_parser::parser::{AggregateExpr, LabelModifier};
use strata_tsdb::Labels;

use crate::error::{QueryError, Result};
use crate::eval::Ctx;
use crate::grid::{Out, Val, project, vals_by_step, with_label};
use crate::value::Value;

/// Neumaier/Kahan compensated summation as Prometheus uses it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Kahan {
    sum: f64,
    c: f64,
}

impl Kahan {
    pub(crate) fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if t.is_infinite() {
            self.c = 0.0;
        } else if self.sum.abs() >= v.abs() {
            self.c += (self.sum - t) + v;
        } else {
            self.c += (v - t) + self.sum;
        }
        self.sum = t;
    }

    pub(crate) fn value(&self) -> f64 {
        self.sum + self.c
    }
}

/// Mean as Prometheus 3 computes it: Kahan sum divided by count, switching to an
/// incremental mean when the sum overflows.
pub(crate) fn mean(vals: impl Iterator<Item = f64>) -> f64 {
    let vals: Vec<f64> = vals.collect();
    let mut k = Kahan::default();
    for &v in &vals {
        k.add(v);
    }
    let n = vals.len() as f64;
    if k.value().is_infinite() && vals.iter().all(|v| v.is_finite()) {
        let mut m = Kahan::default();
        for (i, &v) in vals.iter().enumerate() {
            let cnt = (i + 1) as f64;
            let cur = m.value();
            m.add(v / cnt - cur / cnt);
        }
        return m.value();
    }
    k.value() / n
}

/// Population variance (Welford).
pub(crate) fn variance(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for v in vals {
        n += 1.0;
        let d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
    }
    m2 / n
}

/// Prometheus's quantile over unsorted values.
pub(crate) fn quantile(phi: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| nan_first(*a, *b));
    let n = vals.len() as f64;
    let rank = phi * (n - 1.0);
    let lo = rank.floor().max(0.0);
    let hi = (lo + 1.0).min(n - 1.0);
    let w = rank - lo;
    vals[lo as usize] * (1.0 - w) + vals[hi as usize] * w
}

/// Float order with NaN placed before (`nan_low`) or after every number.
fn cmp_nan(a: f64, b: f64, nan_low: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => {
            if nan_low {
                Less
            } else {
                Greater
            }
        }
        (false, true) => {
            if nan_low {
                Greater
            } else {
                Less
            }
        }
        _ => a.partial_cmp(&b).unwrap_or(Equal),
    }
}

/// Go's float sort order: NaN before everything.
fn nan_first(a: f64, b: f64) -> std::cmp::Ordering {
    cmp_nan(a, b, true)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: how Prometheus writes `count_values`
/// labels, and sample values between 1e-6 and 1e21 in the HTTP API (all of them:
/// [`format_value`]): the fewest significant digits that parse back to `v`,
/// written out in full without an exponent (`1e21` is `1000000000000000000000`),
/// `NaN`, `+Inf`, `-Inf` and `-0`.
///
/// Where several strings of that length parse back to `v`, Go takes the one nearest to
/// `v`'s exact value, and of two equally near the one whose last digit is even
/// (`933367573093549.25` is `933367573093549.2`); Rust's shortest formatting rounds such
/// a tie up (`…549.3`). Rust's formatting to a fixed number of digits is exact with ties
/// to even, so the digits are taken from that whenever they parse back to `v`.
pub fn format_float(v: f64) -> String {
    let Some((digits, exp)) = go_digits(v) else {
        return non_finite(v).into();
    };
    let mut out = String::with_capacity(digits.len() + 8);
    if v.is_sign_negative() {
        out.push('-');
    }
    // the value is 0.d₁d₂…dₙ × 10^point
    let point = exp.saturating_add(1);
    match usize::try_from(point) {
        _ if v == 0.0 => out.push('0'),
        Err(_) | Ok(0) => {
            out.push_str("0.");
            out.push_str(&"0".repeat(usize::try_from(-point).unwrap_or(0)));
            out.push_str(&digits);
        }
        Ok(p) if p >= digits.len() => {
            out.push_str(&digits);
            out.push_str(&"0".repeat(p - digits.len()));
        }
        Ok(p) => {
            out.push_str(&digits[..p]);
            out.push('.');
            out.push_str(&digits[p..]);
        }
    }
    out
}

/// A sample value as Prometheus's HTTP API writes it (`jsonutil.MarshalFloat`): as
/// [`format_float`], except that a value below 1e-6 or from 1e21 on in magnitude (not 0)
/// takes Go's shortest exponent form, `strconv.FormatFloat(v, 'e', -1, 64)`: `1e-07`,
/// `1.5508137018304089e-62`, `1e+21`.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-6..1e21).contains(&a) {
        return format_float(v);
    }
    let Some((digits, exp)) = go_digits(v) else {
        return non_finite(v).into();
    };
    exponent_form(v, &digits, exp)
}

/// `d.ddde±XX`: Go's shortest `'e'` format of `v`, whose digits and exponent are given.
fn exponent_form(v: f64, digits: &str, exp: i32) -> String {
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let (first, rest) = digits.split_at(1);
    let dot = if rest.is_empty() { "" } else { "." };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.unsigned_abs())
}

/// Go's `fmt` verb `%g` (and `%v`) for a float64: the digits of [`format_float`], written
/// with an exponent (`1e+06`, `1.5e-05`) when the exponent is below −4 or at least 6.
/// Prometheus prints annotation values and histogram bucket bounds (`count_values` of a
/// native histogram) this way.
pub(crate) fn format_float_g(v: f64) -> String {
    let Some((digits, exp)) = go_digits(v) else {
        return non_finite(v).into();
    };
    if !(-4..6).contains(&exp) {
        return exponent_form(v, &digits, exp);
    }
    format_float(v)
}

/// `NaN`, `+Inf` or `-Inf`.
fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "+Inf"
    } else {
        "-Inf"
    }
}

/// The shortest significant digits of a finite `v` as Go chooses them (see
/// [`format_float`]) and the decimal exponent of the first; `None` for NaN and ±Inf.
fn go_digits(v: f64) -> Option<(String, i32)> {
    if !v.is_finite() {
        return None;
    }
    let a = v.abs();
    let (mut digits, mut exp) = scientific(&format!("{a:e}"));
    // a tie between two strings of n digits needs a float spacing of at least 10^-n of
    // the value, and a double's is at most 2^-52 of it (subnormals, coarser, have no
    // short exact decimal to tie): only n ≥ 16 can tie
    if digits.len() >= 16 {
        let nearest = format!("{:.*e}", digits.len() - 1, a);
        if nearest.parse::<f64>() == Ok(a) {
            (digits, exp) = scientific(&nearest);
        }
    }
    Some((digits, exp))
}

/// The significant digits (trailing zeros removed, at least one) and the decimal exponent
/// of Rust's `{:e}` form of a finite non-negative float (`9.25e-3` is `("925", -3)`).
fn scientific(s: &str) -> (String, i32) {
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exp.parse().unwrap_or(0))
}

/// The group of a series: its `by`/`without` projection, or one group for everything.
fn group_key(l: &Labels, m: Option<&LabelModifier>) -> Labels {
    project(l, m).unwrap_or_default()
}

/// One group of an aggregation at one step: its key, float members and histogram members
/// (by series index).
type Group<'a> = (&'a Labels, Vec<(usize, f64)>, Vec<(usize, &'a Val)>);

/// Evaluates an aggregation.
pub(crate) fn eval(ctx: &mut Ctx<'_>, a: &AggregateExpr) -> Result<Value> {
    if let Some(v) = crate::pushdown::try_eval(ctx, a)? {
        return Ok(v);
    }
    let op = a.op.to_string();
    let param = match &a.param {
        Some(p) => Some(ctx.eval(p)?),
        None => None,
    };
    let input = match ctx.eval(&a.expr)? {
        Value::Vector(v) => v,
        other => {
            return Err(QueryError::Execution(format!(
                "aggregation over {} is not supported",
                other.type_name()
            )));
        }
    };
    if matches!(op.as_str(), "topk" | "bottomk" | "limitk" | "limit_ratio")
        && let Some(Value::Scalar(p)) = &param
        && p.iter().any(|x| x.1.is_nan())
    {
        let what = if op == "limit_ratio" { "Ratio" } else { "Parameter" };
        return Err(QueryError::Execution(format!("{what} value is NaN")));
    }
    reduce(ctx, &op, a.modifier.as_ref(), param, input)
}

/// Aggregates `input` with operator `op` grouped by `modifier` at every step.
pub(crate) fn reduce(
    ctx: &mut Ctx<'_>,
    op: &str,
    modifier: Option<&LabelModifier>,
    param: Option<Value>,
    input: Vec<crate::value::Series>,
) -> Result<Value> {
    let steps = ctx.steps;
    // each series' group, hashed once (not at every step)
    let mut keys: Vec<Labels> = Vec::new();
    let gid: Vec<usize> = {
        let mut ids: FxHashMap<Labels, usize> = FxHashMap::default();
        input
            .iter()
            .map(|s| {
                let k = group_key(&s.labels, modifier);
                *ids.entry(k).or_insert_with_key(|k| {
                    keys.push(k.clone());
                    keys.len() - 1
                })
            })
            .collect()
    };
    let grid = vals_by_step(&input, steps);
    let mut out = Out::default();
    let mut counted: Vec<(Labels, bool, f64)> = Vec::new();
    // per step: group id → index into `groups` (usize::MAX when absent)
    let mut slot = vec![usize::MAX; keys.len()];
    let mut touched: Vec<usize> = Vec::new();
    for (i, present) in grid.iter().enumerate() {
        let t = steps.at(i);
        let mut groups: Vec<Group<'_>> = Vec::new();
        for (j, v) in present {
            let j = *j;
            let k = gid[j];
            if slot[k] == usize::MAX {
                slot[k] = groups.len();
                touched.push(k);
                groups.push((&keys[k], Vec::new(), Vec::new()));
            }
            let g = slot[k];
            match v {
                Val::F(x) => groups[g].1.push((j, *x)),
                h @ Val::H(_) => groups[g].2.push((j, h)),
            }
        }
        let scalar_param = |p: &Option<Value>| -> Result<f64> {
            match p {
                Some(Value::Scalar(s)) => Ok(s[i].1),
                _ => Err(QueryError::Execution(format!("{op}: expected a scalar parameter"))),
            }
        };
        for k in touched.drain(..) {
            slot[k] = usize::MAX;
        }
        for (key, members, hmembers) in groups {
            let vals = || members.iter().map(|m| m.1);
            // a name kept by `by (__name__)` but marked for removal is removed at the end
            let key_dn = key.get(strata_tsdb::METRIC_NAME).is_some()
                && members
                    .iter()
                    .map(|m| m.0)
                    .chain(hmembers.iter().map(|m| m.0))
                    .any(|j| input[j].drop_name);
            if !hmembers.is_empty() {
                match op {
                    "sum" | "avg" => {
                        if !members.is_empty() {
                            ctx.annotations
                                .warn("encountered a mix of histograms and floats for aggregation".into());
                            continue;
                        }
                        let name = input[hmembers[0].0].labels.get(strata_tsdb::METRIC_NAME).unwrap_or("");
                        let hs = hmembers.iter().filter_map(|m| match m.1 {
                            Val::H(h) => Some(&**h),
                            Val::F(_) => None,
                        });
                        if let Some(h) = crate::native::sum(hs, op == "avg", name, &mut ctx.annotations) {
                            out.push_hist(key.clone(), key_dn, (t, std::sync::Arc::new(h)))?;
                        }
                        continue;
                    }
                    "count" | "group" => {
                        let v = if op == "count" { (members.len() + hmembers.len()) as f64 } else { 1.0 };
                        out.push(key.clone(), key_dn, t, v)?;
                        continue;
                    }
                    "limitk" | "limit_ratio" => {
                        let mut all: Vec<(usize, Val)> =
                            members.iter().map(|&(j, v)| (j, Val::F(v))).collect();
                        all.extend(hmembers.iter().map(|&(j, v)| (j, v.clone())));
                        all.sort_by_key(|m| m.0);
                        let p = scalar_param(&param)?;
                        let keep: Vec<(usize, Val)> = if op == "limitk" {
                            let k = if p >= all.len() as f64 {
                                all.len()
                            } else if p < 1.0 {
                                0
                            } else {
                                p as usize
                            };
                            all.into_iter().take(k).collect()
                        } else {
                            let r = capped_ratio(&mut ctx.annotations, p);
                            all.into_iter().filter(|(j, _)| ratio_keeps(&input[*j].labels, r)).collect()
                        };
                        for (j, v) in keep {
                            out.push_val(input[j].labels.clone(), input[j].drop_name, t, v)?;
                        }
                        continue;
                    }
                    "count_values" => {}
                    other => {
                        ctx.annotations.info(format!("ignored histogram in {other} aggregation"));
                        if members.is_empty() {
                            continue;
                        }
                    }
                }
            }
            let single = |f: f64| -> Vec<(Labels, bool, f64)> { vec![(key.clone(), key_dn, f)] };
            let results: Vec<(Labels, bool, f64)> = match op {
                "sum" => {
                    let mut k = Kahan::default();
                    vals().for_each(|v| k.add(v));
                    single(k.value())
                }
                "avg" => single(mean(vals())),
                "count" => single(members.len() as f64),
                "group" => single(1.0),
                "min" => single(vals().fold(f64::NAN, |a, v| if v < a || a.is_nan() { v } else { a })),
                "max" => single(vals().fold(f64::NAN, |a, v| if v > a || a.is_nan() { v } else { a })),
                "stddev" => single(variance(vals()).sqrt()),
                "stdvar" => single(variance(vals())),
                "quantile" => {
                    let phi = scalar_param(&param)?;
                    if !(0.0..=1.0).contains(&phi) {
                        ctx.annotations.warn(format!(
                            "quantile value should be between 0 and 1, got {}",
                            format_float_g(phi)
                        ));
                    }
                    let mut v: Vec<f64> = vals().collect();
                    single(quantile(phi, &mut v))
                }
                "count_values" => {
                    let Some(Value::String(name)) = &param else {
                        return Err(QueryError::Execution(
                            "count_values: expected a string parameter".into(),
                        ));
                    };
                    // `without` the value label itself: Prometheus sets the label, then
                    // groups without it, so each group is counted as one series
                    if let Some(LabelModifier::Exclude(drop)) = modifier
                        && drop.labels.iter().any(|l| l == name)
                    {
                        let n = (members.len() + hmembers.len()) as f64;
                        vec![(key.clone(), key_dn, n)]
                    } else {
                        let mut counts: Vec<(String, f64)> = Vec::new();
                        let hist_strings = hmembers.iter().filter_map(|m| match m.1 {
                            Val::H(h) => Some(crate::native::describe(h)),
                            Val::F(_) => None,
                        });
                        for s in vals().map(format_float).chain(hist_strings) {
                            match counts.iter_mut().find(|c| c.0 == s) {
                                Some(c) => c.1 += 1.0,
                                None => counts.push((s, 1.0)),
                            }
                        }
                        counts.into_iter().map(|(s, n)| (with_label(key, name, &s), key_dn, n)).collect()
                    }
                }
                "topk" | "bottomk" | "limitk" => {
                    let k = scalar_param(&param)?;
                    if k.is_nan() {
                        return Err(QueryError::Execution(format!("Parameter value is NaN for {op}")));
                    }
                    let k = if k >= members.len() as f64 {
                        members.len()
                    } else if k < 1.0 {
                        0
                    } else {
                        k as usize
                    };
                    let mut m = members.clone();
                    if op == "topk" {
                        m.sort_by(|a, b| nan_first(b.1, a.1));
                    } else if op == "bottomk" {
                        m.sort_by(|a, b| nan_last(a.1, b.1));
                    }
                    m.truncate(k);
                    m.into_iter().map(|(j, v)| (input[j].labels.clone(), input[j].drop_name, v)).collect()
                }
                "limit_ratio" => {
                    let r = scalar_param(&param)?;
                    if r.is_nan() {
                        return Err(QueryError::Execution("Ratio value is NaN".into()));
                    }
                    let r = capped_ratio(&mut ctx.annotations, r);
                    members
                        .iter()
                        .filter(|(j, _)| ratio_keeps(&input[*j].labels, r))
                        .map(|&(j, v)| (input[j].labels.clone(), input[j].drop_name, v))
                        .collect()
                }
                other => return Err(QueryError::Execution(format!("unsupported aggregation {other}"))),
            };
            if op == "count_values" {
                // the value label may overwrite a grouping label: groups that end up with the
                // same labels are one group (Prometheus groups after setting the label)
                for (l, dn, v) in results {
                    match counted.iter_mut().find(|c| c.0 == l) {
                        Some(c) => c.2 += v,
                        None => counted.push((l, dn, v)),
                    }
                }
                continue;
            }
            for (l, dn, v) in results {
                out.push(l, dn, t, v)?;
            }
        }
        for (l, dn, v) in counted.drain(..) {
            out.push(l, dn, t, v)?;
        }
    }
    Ok(Value::Vector(out.finish()))
}

/// `limit_ratio`'s ratio capped to [−1, 1], with Prometheus's warning when it was not.
fn capped_ratio(annos: &mut crate::Annotations, r: f64) -> f64 {
    let c = r.clamp(-1.0, 1.0);
    if c != r {
        annos.warn(format!(
            "ratio value should be between -1 and 1, got {}, capping to {}",
            format_float_g(r),
            format_float_g(c)
        ));
    }
    c
}

/// Whether `limit_ratio(r, …)` keeps a series: its hash's place in `[0, 1)` against `r`.
fn ratio_keeps(l: &Labels, r: f64) -> bool {
    let off = l.prometheus_hash() as f64 / u64::MAX as f64;
    if r >= 0.0 { off < r } else { off >= 1.0 + r }
}

/// Order for bottomk: NaN after everything.
fn nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    cmp_nan(a, b, false)
}

#[cfg(test)]
mod tests {
    use super::format_float;

    /// Go's `strconv.FormatFloat(v, 'f', -1, 64)` of each value (by its bits), as Go 1.19
    /// prints them; the last ones are ties between two shortest strings.
    #[test]
    fn floats_are_formatted_as_go_formats_them() {
        let cases: [(u64, &str); 19] = [
            (0x0000000000000000, "0"),
            (0x8000000000000000, "-0"),
            (0x444b1ae4d6e2ef50, "1000000000000000000000"),
            (0x4480f0cf064dd592, "10000000000000000000000"),
            (0x44b52d02c7e14af6, "100000000000000000000000"),
            (0x3e7ad7f29abcaf48, "0.0000001"),
            (0x419d6f3454800000, "123456789.125"),
            (0x3fd3333333333334, "0.30000000000000004"),
            (0x4340000000000000, "9007199254740992"),
            (0x4450000000000000, "1180591620717411300000"),
            (0x3ff8000000000000, "1.5"),
            (0x4059000000000000, "100"),
            (0x3f201f31f46ed246, "0.000123"),
            (0x430a8724951ce56a, "933367573093549.2"),
            (0x42e450f11c99c0f4, "178703000980999.62"),
            (0x4300d013254d4baa, "591547534518645.2"),
            (0x42e3e35160fce884, "174936350517060.12"),
            (0x42ec6961dc5b0f74, "249911511799931.62"),
            (0xc301fa18b5766352, "-632507329334378.2"),
        ];
        for (bits, want) in cases {
            assert_eq!(format_float(f64::from_bits(bits)), want, "{bits:#018x}");
        }
        assert_eq!(format_float(5e-324), format!("0.{}5", "0".repeat(323)));
        assert_eq!(format_float(f64::MIN_POSITIVE), format!("0.{}22250738585072014", "0".repeat(307)));
        assert_eq!(format_float(-f64::MAX), format!("-17976931348623157{}", "0".repeat(292)));
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
    }

    /// Prometheus's `jsonutil.MarshalFloat` (without the quotes), as 2.42 answers.
    #[test]
    fn api_values_are_written_as_prometheus_writes_them() {
        use super::format_value as f;
        assert_eq!(f(1.5508137018304089e-62), "1.5508137018304089e-62");
        assert_eq!(f(1e-7), "1e-07");
        assert_eq!(f(-2.5e-7), "-2.5e-07");
        assert_eq!(f(1e-6), "0.000001");
        assert_eq!(f(1041854849514717400.0), "1041854849514717400");
        assert_eq!(f(1e21), "1e+21");
        assert_eq!(f(-1.5e300), "-1.5e+300");
        assert_eq!(f(5e-324), "5e-324");
        assert_eq!(f(f64::from_bits(0x430a8724951ce56a)), "933367573093549.2");
        assert_eq!(f(0.0), "0");
        assert_eq!(f(-0.0), "-0");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
    }

    /// Go's `fmt.Sprintf("%g", v)`, as Go 1.19 prints them.
    #[test]
    fn g_format_is_go_s() {
        use super::format_float_g as g;
        let cases: [(f64, &str); 14] = [
            (1e6, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (1e20, "1e+20"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5, "1.5"),
            (100000.0, "100000"),
            (f64::from_bits(0x430a8724951ce56a), "9.333675730935492e+14"),
            (-0.0, "-0"),
            (0.0, "0"),
            (5e-324, "5e-324"),
            (1e100, "1e+100"),
            (-2.5e-7, "-2.5e-07"),
            (f64::INFINITY, "+Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(g(v), want, "{v:e}");
        }
    }
}
