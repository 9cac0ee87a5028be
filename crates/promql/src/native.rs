//! PromQL over native histograms: quantiles, fractions, variance, rates and sums, with the
//! annotations Prometheus raises on the way.

use std::sync::Arc;

use strata_tsdb::FloatHistogram;
use strata_tsdb::histogram::{Combined, CounterResetHint, HistogramError};

use crate::Annotations;
use crate::value::HPoint;

/// Annotations for what a histogram addition or subtraction noticed, named after the
/// operation (`aggregation`, `addition`, `subtraction`).
pub(crate) fn note(annos: &mut Annotations, c: Combined, operation: &str) {
    if c.counter_reset_collision {
        annos.warn(format!("conflicting counter resets during histogram {operation}"));
    }
    if c.bounds_reconciled {
        annos.info(format!("mismatched custom buckets were reconciled during {operation}"));
    }
}

/// The warning for mixing exponential and custom-bucket histograms.
pub(crate) fn mixed_schemas(annos: &mut Annotations, name: &str) {
    annos.warn(format!(
        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}"
    ));
}

/// Prometheus's `HistogramQuantile`.
pub(crate) fn quantile(q: f64, h: &FloatHistogram, name: &str, annos: &mut Annotations) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let mut buckets = h.all_buckets();
    let forward = h.sum.is_nan() || q < 0.5;
    if !forward {
        buckets.reverse();
    }
    let mut rank = if forward { q * h.count } else { (1.0 - q) * h.count };
    let mut count = 0.0;
    let mut at = buckets.len();
    for (i, b) in buckets.iter().enumerate() {
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        at = i;
        if count >= rank {
            break;
        }
    }
    // no populated bucket: Prometheus goes on with an empty one (count 0, bounds 0)
    let mut bucket = buckets.get(at).copied().unwrap_or(strata_tsdb::histogram::Bucket {
        lower: 0.0,
        upper: 0.0,
        lower_inclusive: false,
        upper_inclusive: false,
        count: 0.0,
    });
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative.is_empty() && !h.positive.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive.is_empty() && !h.negative.is_empty() {
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return bucket.lower;
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            annos.info(format!(
                "input to histogram_quantile has NaN observations, result is NaN for metric name {name:?}"
            ));
            return f64::NAN;
        }
        return bucket.upper;
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    if h.sum.is_nan() {
        let total: f64 = count + buckets.get(at + 1..).unwrap_or(&[]).iter().map(|b| b.count).sum::<f64>();
        if total < h.count {
            annos.info(format!(
                "input to histogram_quantile has NaN observations, result is skewed higher for metric name {name:?}"
            ));
        }
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    let (ll, lu) = (bucket.lower.abs().log2(), bucket.upper.abs().log2());
    if bucket.lower > 0.0 {
        (ll + (lu - ll) * fraction).exp2()
    } else {
        -(lu + (ll - lu) * (1.0 - fraction)).exp2()
    }
}

/// Prometheus's `HistogramFraction`: the share of observations in `(lower, upper]`.
pub(crate) fn fraction(
    lower: f64,
    upper: f64,
    h: &FloatHistogram,
    name: &str,
    annos: &mut Annotations,
) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let buckets = h.all_buckets();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut consumed = buckets.len();
    for (i, b) in buckets.iter().enumerate() {
        let mut b = *b;
        count += b.count;
        let mut zero = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero = true;
            if h.negative.is_empty() && !h.positive.is_empty() {
                b.lower = 0.0;
            } else if h.positive.is_empty() && !h.negative.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = h.uses_custom_buckets() || zero;
        let interpolate = |v: f64| {
            if linear && b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * b.fraction_below(v, linear)
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            consumed = i + 1;
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            consumed = i + 1;
            break;
        }
        rank += b.count;
    }
    if h.sum.is_nan() {
        count += buckets[consumed.min(buckets.len())..].iter().map(|b| b.count).sum::<f64>();
        if count < h.count {
            annos.info(format!(
                "input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {name:?}"
            ));
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / h.count
}

/// The variance of the observations, estimated from bucket midpoints (geometric for
/// exponential buckets).
pub(crate) fn variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let mut k = crate::aggregate::Kahan::default();
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -v } else { v }
        };
        let d = val - mean;
        k.add(b.count * d * d);
    }
    k.value() / h.count
}

/// Prometheus's `FloatHistogram.String()`: count, sum and the populated buckets with their
/// bounds, e.g. `{count:3, sum:5, [-0.001,0.001]:1, (1,2]:2}` (`count_values` labels).
pub(crate) fn describe(h: &FloatHistogram) -> String {
    // Go's `%g`, as `FloatHistogram.String` prints
    let f = crate::aggregate::format_float_g;
    let mut out = format!("{{count:{}, sum:{}", f(h.count), f(h.sum));
    let mut bucket = |b: strata_tsdb::histogram::Bucket| {
        let (l, r) = (if b.lower_inclusive { '[' } else { '(' }, if b.upper_inclusive { ']' } else { ')' });
        out.push_str(&format!(", {l}{},{}{r}:{}", f(b.lower), f(b.upper), f(b.count)));
    };
    let neg: Vec<_> = h.negative_buckets().filter(|b| b.count != 0.0).collect();
    neg.into_iter().rev().for_each(&mut bucket);
    if h.zero_count != 0.0 {
        bucket(h.zero_bucket());
    }
    h.positive_buckets().filter(|b| b.count != 0.0).for_each(&mut bucket);
    out.push('}');
    out
}

/// Prometheus's `Equals`: the same layout and bit-identical values (the hint is ignored).
pub(crate) fn equals(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let bits = |x: &[(i32, f64)], y: &[(i32, f64)]| {
        x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.0 == q.0 && p.1.to_bits() == q.1.to_bits())
    };
    a.schema == b.schema
        && a.count.to_bits() == b.count.to_bits()
        && a.sum.to_bits() == b.sum.to_bits()
        && (a.uses_custom_buckets()
            || (a.zero_threshold == b.zero_threshold && a.zero_count.to_bits() == b.zero_count.to_bits()))
        && strata_tsdb::histogram::custom_bounds_match(&a.custom_values, &b.custom_values)
        && bits(&a.positive, &b.positive)
        && bits(&a.negative, &b.negative)
}

/// The increase (or, with `counter` false, the delta) between the first and last
/// histogram of a window, corrected for counter resets, before extrapolation.
pub(crate) fn increase(
    points: &[HPoint],
    counter: bool,
    name: &str,
    annos: &mut Annotations,
) -> Option<FloatHistogram> {
    let gauge = |h: &FloatHistogram| h.hint == CounterResetHint::Gauge;
    let last = &points[points.len() - 1].1;
    let mut prev: FloatHistogram = (*points[0].1).clone();
    if counter && (gauge(&prev) || gauge(last)) {
        annos.warn(format!("this native histogram metric is not a counter: {name:?}"));
    }
    let mut custom = prev.uses_custom_buckets();
    if counter && points[1].1.detect_reset(&prev) {
        let second = &points[1].1;
        prev = FloatHistogram {
            schema: second.schema,
            custom_values: second.custom_values.clone(),
            ..FloatHistogram::default()
        };
        custom = second.uses_custom_buckets();
    }
    if last.uses_custom_buckets() != custom {
        mixed_schemas(annos, name);
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    for (_, h) in &points[1..points.len() - 1] {
        if !counter {
            continue;
        }
        if gauge(h) {
            annos.warn(format!("this native histogram metric is not a counter: {name:?}"));
        }
        min_schema = min_schema.min(h.schema);
        if h.uses_custom_buckets() != custom {
            mixed_schemas(annos, name);
            return None;
        }
    }
    let mut h = last.to_schema(min_schema);
    match h.sub(&prev) {
        Ok(c) => note(annos, Combined { counter_reset_collision: false, ..c }, "subtraction"),
        Err(HistogramError::IncompatibleSchema) => {
            mixed_schemas(annos, name);
            return None;
        }
    }
    if counter {
        let mut prev: &FloatHistogram = &prev;
        for (_, cur) in &points[1..] {
            if cur.detect_reset(prev) {
                match h.add(prev) {
                    Ok(c) => note(annos, Combined { counter_reset_collision: false, ..c }, "addition"),
                    Err(HistogramError::IncompatibleSchema) => {
                        mixed_schemas(annos, name);
                        return None;
                    }
                }
            }
            prev = cur;
        }
    } else if !gauge(&points[0].1) || !gauge(last) {
        annos.warn(format!("this native histogram metric is not a gauge: {name:?}"));
    }
    h.hint = CounterResetHint::Gauge;
    h.compact();
    Some(h)
}

/// `irate`/`idelta` over the last two histograms.
pub(crate) fn instant(
    prev: &(i64, Arc<FloatHistogram>),
    last: &(i64, Arc<FloatHistogram>),
    rate: bool,
    name: &str,
    annos: &mut Annotations,
) -> Option<FloatHistogram> {
    let gauge = |h: &FloatHistogram| h.hint == CounterResetHint::Gauge;
    let mut h = (*last.1).clone();
    if rate && (gauge(&last.1) || gauge(&prev.1)) {
        annos.warn(format!("this native histogram metric is not a counter: {name:?}"));
    }
    if !rate && (!gauge(&last.1) || !gauge(&prev.1)) {
        annos.warn(format!("this native histogram metric is not a gauge: {name:?}"));
    }
    if !rate || !last.1.detect_reset(&prev.1) {
        match h.sub(&prev.1) {
            Ok(c) => note(annos, Combined { counter_reset_collision: false, ..c }, "subtraction"),
            Err(HistogramError::IncompatibleSchema) => {
                mixed_schemas(annos, name);
                return None;
            }
        }
    }
    h.hint = CounterResetHint::Gauge;
    h.compact();
    if rate {
        h.div((last.0 - prev.0) as f64 / 1000.0);
    }
    Some(h)
}

/// A Kahan-compensated running sum of histograms. Compensation is kept per bucket while
/// the layout (schema, zero threshold, custom bounds) stays the same, and folded in when an
/// addend changes it.
#[derive(Clone)]
struct HistSum {
    h: FloatHistogram,
    c: FloatHistogram,
}

/// Kahan's step: `sum + inc` with the lost low-order part accumulated in `c`.
fn kahan_inc(inc: f64, sum: &mut f64, c: &mut f64) {
    let t = *sum + inc;
    if t.is_infinite() {
        *c = 0.0;
    } else if sum.abs() >= inc.abs() {
        *c += (*sum - t) + inc;
    } else {
        *c += (inc - t) + *sum;
    }
    *sum = t;
}

fn kahan_buckets(h: &mut Vec<(i32, f64)>, c: &mut Vec<(i32, f64)>, other: &[(i32, f64)]) {
    for &(i, v) in other {
        match h.binary_search_by_key(&i, |b| b.0) {
            Ok(k) => {
                let ck = c.binary_search_by_key(&i, |b| b.0).unwrap_or_else(|k| {
                    c.insert(k, (i, 0.0));
                    k
                });
                kahan_inc(v, &mut h[k].1, &mut c[ck].1);
            }
            Err(k) => h.insert(k, (i, v)),
        }
    }
}

impl HistSum {
    fn new(h: &FloatHistogram) -> HistSum {
        let c = FloatHistogram {
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            ..FloatHistogram::default()
        };
        HistSum { h: h.clone(), c }
    }

    fn fold(&mut self) {
        let c = std::mem::replace(
            &mut self.c,
            FloatHistogram {
                schema: self.h.schema,
                zero_threshold: self.h.zero_threshold,
                ..FloatHistogram::default()
            },
        );
        self.h.count += c.count;
        self.h.sum += c.sum;
        self.h.zero_count += c.zero_count;
        for (mine, comp) in [(&mut self.h.positive, c.positive), (&mut self.h.negative, c.negative)] {
            for (i, v) in comp {
                if let Ok(k) = mine.binary_search_by_key(&i, |b| b.0) {
                    mine[k].1 += v;
                }
            }
        }
    }

    fn add(&mut self, o: &FloatHistogram) -> Result<Combined, HistogramError> {
        let same_layout = self.h.uses_custom_buckets() == o.uses_custom_buckets()
            && self.h.schema == o.schema
            && self.h.zero_threshold == o.zero_threshold
            && strata_tsdb::histogram::custom_bounds_match(&self.h.custom_values, &o.custom_values);
        if !same_layout {
            self.fold();
            let r = self.h.add(o);
            self.c.schema = self.h.schema;
            self.c.zero_threshold = self.h.zero_threshold;
            return r;
        }
        let collision = self.h.adjust_hint(o);
        kahan_inc(o.count, &mut self.h.count, &mut self.c.count);
        kahan_inc(o.sum, &mut self.h.sum, &mut self.c.sum);
        kahan_inc(o.zero_count, &mut self.h.zero_count, &mut self.c.zero_count);
        kahan_buckets(&mut self.h.positive, &mut self.c.positive, &o.positive);
        kahan_buckets(&mut self.h.negative, &mut self.c.negative, &o.negative);
        Ok(Combined { counter_reset_collision: collision, bounds_reconciled: false })
    }

    /// Scales the running value and its compensation (the incremental mean's `· (n−1)/n`).
    fn scale(&mut self, f: f64) {
        let hint = self.h.hint;
        self.h.mul(f);
        self.h.hint = hint;
        self.c.mul(f);
    }

    fn finish(mut self) -> FloatHistogram {
        self.fold();
        self.h
    }
}

/// The sum (or, with `avg`, the mean) of histograms, for aggregations and
/// `sum_over_time`/`avg_over_time`: Kahan-compensated, switching to an incremental mean
/// when the sum would overflow, with Prometheus's warnings for conflicting counter resets
/// and its info for reconciled custom bounds; `None` (with a warning) when exponential and
/// custom-bucket histograms meet.
pub(crate) fn sum<'a>(
    hs: impl Iterator<Item = &'a FloatHistogram>,
    avg: bool,
    name: &str,
    annos: &mut Annotations,
) -> Option<FloatHistogram> {
    let mut acc: Option<HistSum> = None;
    // avg switches to an incremental mean (Kahan-compensated too) once the sum overflows
    let mut incremental = false;
    let mut n = 0.0;
    let (mut reset, mut not_reset, mut reconciled) = (false, false, false);
    for h in hs {
        n += 1.0;
        match h.hint {
            CounterResetHint::CounterReset => reset = true,
            CounterResetHint::NotCounterReset => not_reset = true,
            _ => {}
        }
        let Some(a) = &mut acc else {
            acc = Some(HistSum::new(h));
            continue;
        };
        if !incremental {
            let before = a.clone();
            let r = a.add(h);
            if !(avg && a.h.has_overflow()) {
                match r {
                    Ok(c) => reconciled |= c.bounds_reconciled,
                    Err(HistogramError::IncompatibleSchema) => {
                        mixed_schemas(annos, name);
                        return None;
                    }
                }
                continue;
            }
            *a = before;
            a.scale(1.0 / (n - 1.0));
            incremental = true;
        }
        // mean·(n−1)/n + h/n
        a.scale((n - 1.0) / n);
        let mut part = h.clone();
        part.div(n);
        match a.add(&part) {
            Ok(c) => reconciled |= c.bounds_reconciled,
            Err(HistogramError::IncompatibleSchema) => {
                mixed_schemas(annos, name);
                return None;
            }
        }
    }
    if reset && not_reset {
        annos.warn("conflicting counter resets during histogram aggregation".into());
    }
    if reconciled {
        annos.info("mismatched custom buckets were reconciled during aggregation".into());
    }
    let mut out = acc?.finish();
    if avg && !incremental {
        out.div(n);
    }
    out.compact();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schema 0, buckets (0.5,1]:1, (1,2]:2, (2,4]:1.
    fn h() -> FloatHistogram {
        FloatHistogram {
            schema: 0,
            count: 4.0,
            sum: 7.0,
            positive: vec![(0, 1.0), (1, 2.0), (2, 1.0)],
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn quantile_interpolates_exponentially_within_a_bucket() {
        let mut a = Annotations::default();
        // rank 2 of 4 ends half-way into (1,2]: 2^0.5
        assert!((quantile(0.5, &h(), "x", &mut a) - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(quantile(1.5, &h(), "x", &mut a), f64::INFINITY);
        assert!(quantile(0.5, &FloatHistogram::default(), "x", &mut a).is_nan());
    }

    #[test]
    fn fraction_counts_whole_and_partial_buckets() {
        let mut a = Annotations::default();
        assert_eq!(fraction(1.0, 4.0, &h(), "x", &mut a), 0.75);
        assert_eq!(fraction(0.0, f64::INFINITY, &h(), "x", &mut a), 1.0);
        assert_eq!(fraction(2.0, 1.0, &h(), "x", &mut a), 0.0);
    }

    #[test]
    fn increase_adds_back_what_a_reset_lost() {
        let mut a = Annotations::default();
        let p = |t: i64, c: f64| {
            (
                t,
                Arc::new(FloatHistogram {
                    count: c,
                    sum: c,
                    positive: vec![(0, c)],
                    ..FloatHistogram::default()
                }),
            )
        };
        let got = increase(&[p(0, 5.0), p(1, 8.0), p(2, 2.0)], true, "x", &mut a).expect("increase");
        assert_eq!(got.count, 3.0 + 2.0);
        assert_eq!(got.positive, vec![(0, 5.0)]);
        assert_eq!(got.hint, CounterResetHint::Gauge);
        assert!(a.warnings.is_empty());
    }

    #[test]
    fn summing_exponential_and_custom_buckets_warns_and_yields_nothing() {
        let mut a = Annotations::default();
        let custom = FloatHistogram {
            schema: strata_tsdb::histogram::CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![1.0],
            ..FloatHistogram::default()
        };
        assert!(sum([h(), custom].iter(), false, "x", &mut a).is_none());
        assert_eq!(a.warnings.len(), 1);
    }

    #[test]
    fn kahan_sum_keeps_small_values_next_to_huge_ones() {
        let mut a = Annotations::default();
        let mk = |s: f64| FloatHistogram { sum: s, count: 1.0, ..FloatHistogram::default() };
        let got = sum([mk(1e100), mk(1.0), mk(-1e100)].iter(), false, "x", &mut a).expect("sum");
        assert_eq!(got.sum, 1.0);
    }
}
