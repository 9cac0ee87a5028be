//! Native histograms in their float form, with the arithmetic PromQL needs.
//!
//! Semantics follow Prometheus's `model/histogram.FloatHistogram`: exponential schemas
//! −4..8 (bucket `i` covers `(base^(i−1), base^i]`, `base = 2^(2^−schema)`), custom bucket
//! bounds with schema −53 (NHCB), a zero bucket `[−threshold, threshold]`, and counter-reset
//! hints. Buckets are kept as sorted `(index, count)` pairs instead of spans: the spans of
//! Prometheus are an encoding of exactly this, and every operation here (merging, schema
//! reduction, compaction) is simpler on pairs. Counts are absolute, never deltas.

use std::cmp::Ordering;
use std::sync::Arc;

/// A histogram sample as reads return it: (timestamp ms, shared histogram).
pub type HistogramSample = (i64, Arc<FloatHistogram>);

/// The schema of native histograms with custom bucket bounds (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// What a histogram says about a counter reset since the previous sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    /// Not known; detect by comparing with the previous sample.
    #[default]
    Unknown,
    /// There was a reset.
    CounterReset,
    /// There was no reset.
    NotCounterReset,
    /// A gauge histogram: resets are meaningless.
    Gauge,
}

/// One bucket with its bounds, as iteration yields it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Whether `lower` belongs to the bucket.
    pub lower_inclusive: bool,
    /// Whether `upper` belongs to the bucket.
    pub upper_inclusive: bool,
    /// Observations in the bucket.
    pub count: f64,
}

impl Bucket {
    /// The fraction of the bucket's observations below `v`, interpolating linearly or,
    /// for exponential buckets, on a log2 scale (negative buckets mirrored).
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let (ll, lu, lv) = (self.lower.abs().log2(), self.upper.abs().log2(), v.abs().log2());
        if v > 0.0 { (lv - ll) / (lu - ll) } else { 1.0 - (lv - lu) / (ll - lu) }
    }
}

/// Why two histograms cannot be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramError {
    /// One uses custom buckets and the other exponential ones.
    IncompatibleSchema,
}

/// What an addition or subtraction noticed besides its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Combined {
    /// One operand said "reset" and the other "not reset".
    pub counter_reset_collision: bool,
    /// Custom bounds differed and were reduced to their intersection.
    pub bounds_reconciled: bool,
}

/// A native histogram with float counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    /// Counter-reset hint.
    pub hint: CounterResetHint,
    /// Resolution: −4..8 exponential, [`CUSTOM_BUCKETS_SCHEMA`] for custom bounds.
    pub schema: i32,
    /// Half-width of the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// Total observations.
    pub count: f64,
    /// Sum of observations.
    pub sum: f64,
    /// Positive buckets `(index, count)`, ascending index (may hold zero counts).
    pub positive: Vec<(i32, f64)>,
    /// Negative buckets `(index, count)`, ascending index (index of the mirrored bound).
    pub negative: Vec<(i32, f64)>,
    /// Upper bounds of the custom buckets (schema −53), ascending; the last bucket is +Inf.
    pub custom_values: Vec<f64>,
}

/// `frac · 2^exp` without overflowing in intermediate steps.
fn ldexp(frac: f64, exp: i32) -> f64 {
    let mut x = frac;
    let mut e = exp;
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e)
}

/// Upper bound of exponential bucket `idx` at `schema`.
pub fn exponential_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = i64::from(idx) << -schema;
        if exp == 1024 {
            return f64::MAX;
        }
        if exp > 1100 {
            return f64::INFINITY;
        }
        if exp < -1100 {
            return 0.0;
        }
        return ldexp(1.0, exp as i32);
    }
    let frac_idx = idx & ((1 << schema) - 1);
    let frac = (f64::from(frac_idx) / f64::from(1 << schema)).exp2() / 2.0;
    let exp = (idx >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// Index of bucket `idx` of `from` schema in the coarser `to` schema.
fn target_idx(idx: i32, from: i32, to: i32) -> i32 {
    ((idx - 1) >> (from - to)) + 1
}

/// Merges `b` (times `sign`) into `a`, both ascending by index; equal indexes add.
fn merge_buckets(a: &[(i32, f64)], b: impl Iterator<Item = (i32, f64)>, sign: f64) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len());
    let mut ai = a.iter().copied().peekable();
    let mut bi = b.peekable();
    loop {
        match (ai.peek(), bi.peek()) {
            (Some(&(ia, ca)), Some(&(ib, cb))) => match ia.cmp(&ib) {
                Ordering::Less => {
                    out.push((ia, ca));
                    ai.next();
                }
                Ordering::Greater => {
                    out.push((ib, sign * cb));
                    bi.next();
                }
                Ordering::Equal => {
                    out.push((ia, ca + sign * cb));
                    ai.next();
                    bi.next();
                }
            },
            (Some(&x), None) => {
                out.push(x);
                ai.next();
            }
            (None, Some(&(ib, cb))) => {
                out.push((ib, sign * cb));
                bi.next();
            }
            (None, None) => return out,
        }
    }
}

/// Buckets re-indexed to a coarser schema (merging neighbours).
fn reduce(buckets: &[(i32, f64)], from: i32, to: i32) -> Vec<(i32, f64)> {
    if from == to {
        return buckets.to_vec();
    }
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(buckets.len());
    for &(i, c) in buckets {
        let t = target_idx(i, from, to);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// Whether two custom bound lists are identical (bit for bit).
pub fn custom_bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl FloatHistogram {
    /// Whether the histogram has custom bucket bounds.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Upper bound of bucket `idx` (−Inf for custom index −1, +Inf past the last bound).
    fn bound(&self, idx: i32) -> f64 {
        if self.uses_custom_buckets() {
            let n = self.custom_values.len() as i32;
            if idx >= n {
                f64::INFINITY
            } else if idx < 0 {
                f64::NEG_INFINITY
            } else {
                self.custom_values[idx as usize]
            }
        } else {
            exponential_bound(idx, self.schema)
        }
    }

    fn bucket_at(&self, idx: i32, count: f64, positive: bool) -> Bucket {
        let (hi, lo) = (self.bound(idx), self.bound(idx - 1));
        let (lower, upper) = if positive { (lo, hi) } else { (-hi, -lo) };
        if self.uses_custom_buckets() {
            Bucket { lower, upper, lower_inclusive: idx == 0, upper_inclusive: true, count }
        } else {
            Bucket { lower, upper, lower_inclusive: lower < 0.0, upper_inclusive: upper > 0.0, count }
        }
    }

    /// Positive buckets in ascending order, with bounds.
    pub fn positive_buckets(&self) -> impl Iterator<Item = Bucket> + '_ {
        self.positive.iter().map(|&(i, c)| self.bucket_at(i, c, true))
    }

    /// Negative buckets from the one nearest zero outwards, with bounds.
    pub fn negative_buckets(&self) -> impl Iterator<Item = Bucket> + '_ {
        self.negative.iter().map(|&(i, c)| self.bucket_at(i, c, false))
    }

    /// Every bucket (negative, zero if populated, positive) from the lowest value up, with
    /// bounds clipped to the zero bucket as Prometheus's `AllBucketIterator` does.
    pub fn all_buckets(&self) -> Vec<Bucket> {
        let z = self.zero_threshold;
        let clip = |mut b: Bucket| {
            if b.upper < 0.0 && b.upper > -z {
                b.upper = -z;
            } else if b.lower > 0.0 && b.lower < z {
                b.lower = z;
            }
            b
        };
        let mut out: Vec<Bucket> =
            self.negative.iter().rev().map(|&(i, c)| clip(self.bucket_at(i, c, false))).collect();
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        out.extend(self.positive_buckets().map(clip));
        out
    }

    /// The zero bucket.
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
        }
    }

    /// Scales every count and the sum by `f` (a negative factor makes it a gauge).
    pub fn mul(&mut self, f: f64) {
        self.zero_count *= f;
        self.count *= f;
        self.sum *= f;
        self.positive.iter_mut().for_each(|b| b.1 *= f);
        self.negative.iter_mut().for_each(|b| b.1 *= f);
        if f < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
    }

    /// Divides every count and the sum by `d`; dividing by zero removes all buckets.
    pub fn div(&mut self, d: f64) {
        self.zero_count /= d;
        self.count /= d;
        self.sum /= d;
        if d == 0.0 {
            self.positive.clear();
            self.negative.clear();
            return;
        }
        self.positive.iter_mut().for_each(|b| b.1 /= d);
        self.negative.iter_mut().for_each(|b| b.1 /= d);
        if d < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
    }

    /// Whether any count or the sum is infinite (an overflowing aggregation).
    pub fn has_overflow(&self) -> bool {
        [self.zero_count, self.count, self.sum].iter().any(|v| v.is_infinite())
            || self.positive.iter().chain(&self.negative).any(|b| b.1.is_infinite())
    }

    /// Drops empty buckets.
    pub fn compact(&mut self) {
        self.positive.retain(|b| b.1 != 0.0);
        self.negative.retain(|b| b.1 != 0.0);
    }

    /// A copy at a coarser (or the same) schema.
    pub fn to_schema(&self, schema: i32) -> FloatHistogram {
        if schema >= self.schema || self.uses_custom_buckets() {
            return self.clone();
        }
        let mut h = self.clone();
        h.positive = reduce(&self.positive, self.schema, schema);
        h.negative = reduce(&self.negative, self.schema, schema);
        h.schema = schema;
        h
    }

    /// Sets the hint for the sum or difference of two histograms; true on a collision.
    pub fn adjust_hint(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        match (self.hint, other.hint) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.hint = Unknown;
                false
            }
            _ => {
                self.hint = Unknown;
                true
            }
        }
    }

    /// The zero count this histogram would have with a zero bucket of at least `larger`,
    /// and the threshold actually needed (widened to the bound of a populated bucket that
    /// straddles it).
    fn zero_count_for_threshold(&self, larger: f64) -> (f64, f64) {
        let mut larger = larger;
        if larger == self.zero_threshold {
            return (self.zero_count, larger);
        }
        'outer: loop {
            let mut zc = self.zero_count;
            for b in self.positive_buckets() {
                if b.lower >= larger {
                    break;
                }
                zc += b.count;
                if b.upper > larger {
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for b in self.negative_buckets() {
                if b.upper <= -larger {
                    break;
                }
                zc += b.count;
                if b.lower < -larger {
                    if b.count != 0.0 {
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (zc, larger);
        }
    }

    /// Widens this histogram's zero bucket to `threshold` (a bucket boundary), moving the
    /// buckets inside it into the zero count.
    fn widen_zero_bucket(&mut self, threshold: f64) {
        let (zc, t) = self.zero_count_for_threshold(threshold);
        self.zero_count = zc;
        self.zero_threshold = t;
        let schema = self.schema;
        self.positive.retain(|&(i, _)| exponential_bound(i - 1, schema) >= t);
        self.negative.retain(|&(i, _)| exponential_bound(i - 1, schema) >= t);
    }

    /// Brings both zero buckets to one threshold; returns `other`'s zero count for it.
    fn reconcile_zero(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_zc = other.zero_count;
        let mut other_t = other.zero_threshold;
        while other_t != self.zero_threshold {
            if self.zero_threshold > other_t {
                (other_zc, other_t) = other.zero_count_for_threshold(self.zero_threshold);
            }
            if other_t > self.zero_threshold {
                self.widen_zero_bucket(other_t);
            }
        }
        other_zc
    }

    /// Adds `other` (or subtracts it with `sign` −1), reconciling schema, zero bucket and
    /// custom bounds as Prometheus does.
    fn combine(&mut self, other: &FloatHistogram, sign: f64) -> Result<Combined, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        let mut res = Combined { counter_reset_collision: self.adjust_hint(other), ..Combined::default() };
        if !self.uses_custom_buckets() {
            let zc = self.reconcile_zero(other);
            self.zero_count += sign * zc;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        if self.uses_custom_buckets() {
            if custom_bounds_match(&self.custom_values, &other.custom_values) {
                self.positive = merge_buckets(&self.positive, other.positive.iter().copied(), sign);
            } else {
                res.bounds_reconciled = true;
                let bounds = intersect_bounds(&self.custom_values, &other.custom_values);
                let mut target = vec![0.0; bounds.len() + 1];
                map_custom(&self.positive, &self.custom_values, &bounds, 1.0, &mut target);
                map_custom(&other.positive, &other.custom_values, &bounds, sign, &mut target);
                self.positive = target
                    .into_iter()
                    .enumerate()
                    .filter(|b| b.1 != 0.0)
                    .map(|(i, c)| (i as i32, c))
                    .collect();
                self.custom_values = bounds;
            }
            return Ok(res);
        }
        let (mut op, mut on) = (other.positive.clone(), other.negative.clone());
        match other.schema.cmp(&self.schema) {
            Ordering::Less => {
                self.positive = reduce(&self.positive, self.schema, other.schema);
                self.negative = reduce(&self.negative, self.schema, other.schema);
                self.schema = other.schema;
            }
            Ordering::Greater => {
                op = reduce(&op, other.schema, self.schema);
                on = reduce(&on, other.schema, self.schema);
            }
            Ordering::Equal => {}
        }
        // buckets of `other` inside the (reconciled) zero bucket are already in its count
        let (schema, t) = (self.schema, self.zero_threshold);
        let outside = |b: &&(i32, f64)| exponential_bound(b.0, schema) > t;
        self.positive = merge_buckets(&self.positive, op.iter().filter(outside).copied(), sign);
        self.negative = merge_buckets(&self.negative, on.iter().filter(outside).copied(), sign);
        Ok(res)
    }

    /// `self += other`.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<Combined, HistogramError> {
        self.combine(other, 1.0)
    }

    /// `self -= other` (the hint is combined as for addition; PromQL's `-` then makes it a
    /// gauge).
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<Combined, HistogramError> {
        self.combine(other, -1.0)
    }

    /// Whether `self`, following `previous`, shows a counter reset (Prometheus's
    /// `DetectReset`).
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if !custom_bounds_match(&self.custom_values, &previous.custom_values) {
                let bounds = intersect_bounds(&self.custom_values, &previous.custom_values);
                let mut cur = vec![0.0; bounds.len() + 1];
                let mut prev = vec![0.0; bounds.len() + 1];
                map_custom(&self.positive, &self.custom_values, &bounds, 1.0, &mut cur);
                map_custom(&previous.positive, &previous.custom_values, &bounds, 1.0, &mut prev);
                return cur.iter().zip(&prev).any(|(c, p)| c < p);
            }
        } else if previous.uses_custom_buckets() {
            return true;
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zc, t) = previous.zero_count_for_threshold(self.zero_threshold);
        if t != self.zero_threshold {
            return true;
        }
        if self.zero_count < prev_zc {
            return true;
        }
        let custom = self.uses_custom_buckets();
        let outside = |b: &&(i32, f64)| custom || exponential_bound(b.0, self.schema) > t;
        for (cur, prev) in [(&self.positive, &previous.positive), (&self.negative, &previous.negative)] {
            for &(i, pc) in reduce(prev, previous.schema, self.schema).iter().filter(outside) {
                let reset = match cur.binary_search_by_key(&i, |b| b.0) {
                    Ok(k) => cur[k].1 < pc,
                    Err(_) => pc != 0.0,
                };
                if reset {
                    return true;
                }
            }
        }
        false
    }

    /// Equality up to the tolerance `eq` on counts, after compaction of both (the
    /// conformance comparison); the hint is not compared.
    pub fn approx_eq(&self, other: &FloatHistogram, eq: impl Fn(f64, f64) -> bool) -> bool {
        let (mut a, mut b) = (self.clone(), other.clone());
        a.compact();
        b.compact();
        let buckets_eq = |x: &[(i32, f64)], y: &[(i32, f64)]| {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.0 == q.0 && eq(p.1, q.1))
        };
        a.schema == b.schema
            && eq(a.count, b.count)
            && eq(a.sum, b.sum)
            && eq(a.zero_count, b.zero_count)
            && a.zero_threshold == b.zero_threshold
            && (!a.uses_custom_buckets() || custom_bounds_match(&a.custom_values, &b.custom_values))
            && buckets_eq(&a.positive, &b.positive)
            && buckets_eq(&a.negative, &b.negative)
    }
}

/// The midpoint Prometheus assumes for the observations left in `(lower, upper]` after a
/// trim: arithmetic for linear buckets, geometric (mirrored when negative) for exponential
/// ones, with infinite bounds handled as Prometheus does.
fn trim_midpoint(lower: f64, upper: f64, positive: bool, linear: bool) -> f64 {
    if lower.is_infinite() {
        if upper.is_infinite() {
            return 0.0;
        }
        return if upper > 0.0 { upper / 2.0 } else { upper };
    }
    if upper.is_infinite() {
        return lower;
    }
    if linear {
        return (lower + upper) / 2.0;
    }
    let g = (lower * upper).abs().sqrt();
    if positive { g } else { -g }
}

/// What remains of a bucket with an infinite bound after a trim at `rhs`: (count, midpoint).
fn trim_infinite_bucket(b: &Bucket, rhs: f64, upper_trim: bool) -> (f64, f64) {
    let zero_if_inf = |x: f64| if x.is_infinite() { 0.0 } else { x };
    if b.lower == f64::NEG_INFINITY {
        if upper_trim {
            if rhs >= b.upper {
                return (b.count, 0.0);
            }
            if rhs > 0.0 && b.upper > 0.0 && b.upper.is_finite() {
                return (b.count * rhs / b.upper, rhs / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, rhs);
            }
            return (0.0, zero_if_inf(b.upper));
        }
        if rhs >= 0.0 && b.upper > rhs && b.upper.is_finite() {
            return (b.count * (1.0 - rhs / b.upper), (rhs + b.upper) / 2.0);
        }
        return (0.0, zero_if_inf(b.upper));
    }
    if upper_trim {
        return (0.0, zero_if_inf(b.lower));
    }
    if rhs >= b.lower {
        return (b.count, rhs);
    }
    (0.0, zero_if_inf(b.lower))
}

/// What remains of a bucket holding the trim point: (count, midpoint).
fn trim_bucket(b: &Bucket, rhs: f64, upper_trim: bool, positive: bool, linear: bool) -> (f64, f64) {
    if b.lower.is_infinite() || b.upper.is_infinite() {
        return trim_infinite_bucket(b, rhs, upper_trim);
    }
    let under = if rhs <= b.lower {
        0.0
    } else if rhs >= b.upper {
        b.count
    } else {
        b.count * b.fraction_below(rhs, linear)
    };
    if upper_trim {
        (under, trim_midpoint(b.lower, rhs, positive, linear))
    } else {
        (b.count - under, trim_midpoint(rhs, b.upper, positive, linear))
    }
}

impl FloatHistogram {
    /// Prometheus's `TrimBuckets`: `h </ rhs` (`upper_trim`) keeps the observations below
    /// `rhs`, `h >/ rhs` those above, interpolating within the bucket that holds `rhs`;
    /// count and sum are re-estimated from bucket midpoints when anything was cut.
    pub fn trim(&mut self, rhs: f64, upper_trim: bool) {
        let linear = self.uses_custom_buckets();
        let (mut count, mut sum, mut trimmed) = (0.0, 0.0, false);
        let (mut has_pos, mut has_neg) = (false, false);
        for positive in [true, false] {
            let buckets: Vec<(usize, Bucket)> = if positive {
                self.positive_buckets().enumerate().collect()
            } else {
                self.negative_buckets().enumerate().collect()
            };
            for (i, b) in buckets {
                if b.count == 0.0 {
                    continue;
                }
                if positive {
                    has_pos = true;
                } else {
                    has_neg = true;
                }
                let keep_all = if upper_trim { b.upper <= rhs } else { b.lower >= rhs };
                let partial = if upper_trim { b.lower < rhs } else { b.upper > rhs };
                let slot = if positive { &mut self.positive[i].1 } else { &mut self.negative[i].1 };
                if keep_all {
                    count += b.count;
                    sum += trim_midpoint(b.lower, b.upper, positive, linear) * b.count;
                } else if partial {
                    let (keep, mid) = trim_bucket(&b, rhs, upper_trim, positive, linear);
                    count += keep;
                    sum += mid * keep;
                    if *slot != keep {
                        *slot = keep;
                        trimmed = true;
                    }
                } else {
                    *slot = 0.0;
                    trimmed = true;
                }
            }
        }
        if self.zero_count > 0.0 {
            let z = self.zero_bucket();
            let (mut lower, mut upper) = (z.lower, z.upper);
            if has_neg && !has_pos {
                upper = 0.0;
            }
            if has_pos && !has_neg {
                lower = 0.0;
            }
            let (keep, mid) = if upper_trim {
                if rhs <= lower {
                    (0.0, 0.0)
                } else if rhs >= upper {
                    (z.count, (lower + upper) / 2.0)
                } else {
                    (z.count * (rhs - lower) / (upper - lower), (lower + rhs) / 2.0)
                }
            } else if rhs <= lower {
                (z.count, (lower + upper) / 2.0)
            } else if rhs >= upper {
                (0.0, 0.0)
            } else {
                (z.count * (upper - rhs) / (upper - lower), (rhs + upper) / 2.0)
            };
            if self.zero_count != keep {
                self.zero_count = keep;
                trimmed = true;
            }
            sum += mid * keep;
            count += keep;
        }
        if trimmed {
            self.count = count;
            self.sum = sum;
            self.compact();
        }
    }
}

/// The hint a histogram carries when read back from storage, as Prometheus's chunks give
/// it: gauges stay gauges; the first histogram after anything but a histogram (a new
/// chunk) and one after a detected reset are `Unknown`; an explicit reset stays a reset;
/// every other one is `NotCounterReset`. `prev` is the sample stored just before, if it
/// is a histogram.
pub fn stored_hint(prev: Option<&FloatHistogram>, cur: &FloatHistogram) -> CounterResetHint {
    use CounterResetHint::*;
    match (cur.hint, prev) {
        (Gauge, _) => Gauge,
        (CounterReset, _) => CounterReset,
        (_, None) => Unknown,
        (_, Some(p)) if p.hint == Gauge || cur.detect_reset(p) => Unknown,
        _ => NotCounterReset,
    }
}

impl FloatHistogram {
    /// Appends the storage encoding: hint, schema, zero threshold and count, count, sum,
    /// then the positive and negative buckets as (index delta, count) and the custom
    /// bounds. Floats keep their exact bits (stale markers included).
    pub fn encode(&self, out: &mut Vec<u8>) {
        use crate::varint::{put_uvarint, put_varint};
        out.push(match self.hint {
            CounterResetHint::Unknown => 0,
            CounterResetHint::CounterReset => 1,
            CounterResetHint::NotCounterReset => 2,
            CounterResetHint::Gauge => 3,
        });
        put_varint(out, i64::from(self.schema));
        for v in [self.zero_threshold, self.zero_count, self.count, self.sum] {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        for buckets in [&self.positive, &self.negative] {
            put_uvarint(out, buckets.len() as u64);
            let mut prev = 0i64;
            for &(i, c) in buckets.iter() {
                put_varint(out, i64::from(i) - prev);
                prev = i64::from(i);
                out.extend_from_slice(&c.to_bits().to_le_bytes());
            }
        }
        put_uvarint(out, self.custom_values.len() as u64);
        for v in &self.custom_values {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }

    /// Decodes [`FloatHistogram::encode`]'s output from the front of `b`; `None` if malformed.
    pub fn decode(b: &mut &[u8]) -> Option<FloatHistogram> {
        use crate::varint::{get_u64_le, get_uvarint, get_varint};
        let (&hint, rest) = b.split_first()?;
        *b = rest;
        let hint = match hint {
            0 => CounterResetHint::Unknown,
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => return None,
        };
        let schema = i32::try_from(get_varint(b)?).ok()?;
        let mut f = || get_u64_le(b).map(f64::from_bits);
        let (zero_threshold, zero_count, count, sum) = (f()?, f()?, f()?, f()?);
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let n = get_uvarint(b)?;
            let mut prev = 0i64;
            for _ in 0..n {
                prev = prev.checked_add(get_varint(b)?)?;
                list.push((i32::try_from(prev).ok()?, f64::from_bits(get_u64_le(b)?)));
            }
        }
        let n = get_uvarint(b)?;
        let mut custom_values = Vec::new();
        for _ in 0..n {
            custom_values.push(f64::from_bits(get_u64_le(b)?));
        }
        let [positive, negative] = lists;
        Some(FloatHistogram {
            hint,
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive,
            negative,
            custom_values,
        })
    }
}

/// Orders a series' histogram samples read from storage (later copies of a timestamp win)
/// and gives each the hint storage would ([`stored_hint`]); `floats` are the series'
/// float samples, which break a run of histograms as a new chunk does in Prometheus.
pub fn settle(hists: &mut Vec<HistogramSample>, floats: &[(i64, f64)]) {
    hists.sort_by_key(|h| h.0);
    let mut w = 0;
    for i in 0..hists.len() {
        if w > 0 && hists[w - 1].0 == hists[i].0 {
            hists.swap(w - 1, i);
        } else {
            hists.swap(w, i);
            w += 1;
        }
    }
    hists.truncate(w);
    let originals: Vec<Arc<FloatHistogram>> = hists.iter().map(|h| h.1.clone()).collect();
    for k in 0..hists.len() {
        let t = hists[k].0;
        let float_between = |p: usize| {
            let i = floats.partition_point(|f| f.0 <= hists[p].0);
            i < floats.len() && floats[i].0 < t
        };
        let prev = k.checked_sub(1).filter(|&p| !float_between(p)).map(|p| &*originals[p]);
        let hint = stored_hint(prev, &originals[k]);
        if hint != hists[k].1.hint {
            let mut c = (*hists[k].1).clone();
            c.hint = hint;
            hists[k].1 = Arc::new(c);
        }
    }
}

/// The bounds present in both lists.
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].partial_cmp(&b[j]) {
            Some(Ordering::Equal) => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
            Some(Ordering::Less) => i += 1,
            _ => j += 1,
        }
    }
    out
}

/// Adds custom buckets laid out on `bounds` into `target`, laid out on the coarser `onto`.
fn map_custom(buckets: &[(i32, f64)], bounds: &[f64], onto: &[f64], sign: f64, target: &mut [f64]) {
    for &(i, c) in buckets {
        let t = match bounds.get(i as usize) {
            Some(&ub) => onto.iter().position(|&b| b >= ub).unwrap_or(onto.len()),
            None => onto.len(),
        };
        target[t] += sign * c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(schema: i32, pos: &[(i32, f64)]) -> FloatHistogram {
        let count = pos.iter().map(|b| b.1).sum();
        FloatHistogram { schema, count, positive: pos.to_vec(), ..FloatHistogram::default() }
    }

    /// Found by the `tsdb_decode` fuzz target: bucket index deltas whose sum overflows i64
    /// are a malformed histogram, not a panic (debug builds) or a wrapped index (release).
    #[test]
    fn bucket_index_deltas_overflowing_are_malformed() {
        use crate::varint::{put_uvarint, put_varint};
        let mut b = vec![0];
        put_varint(&mut b, 0);
        b.extend_from_slice(&[0; 32]);
        put_uvarint(&mut b, 2);
        for delta in [1, i64::MAX] {
            put_varint(&mut b, delta);
            b.extend_from_slice(&1f64.to_bits().to_le_bytes());
        }
        put_uvarint(&mut b, 0);
        put_uvarint(&mut b, 0);
        assert_eq!(FloatHistogram::decode(&mut b.as_slice()), None);
    }

    #[test]
    fn bounds_of_schema_zero_and_one() {
        assert_eq!(exponential_bound(0, 0), 1.0);
        assert_eq!(exponential_bound(1, 0), 2.0);
        assert_eq!(exponential_bound(-1, 0), 0.5);
        assert!((exponential_bound(1, 1) - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(exponential_bound(1, -1), 4.0);
    }

    #[test]
    fn adding_a_coarser_histogram_reduces_the_schema() {
        let mut a = h(1, &[(1, 1.0), (2, 2.0)]);
        let b = h(0, &[(1, 5.0)]);
        a.add(&b).unwrap();
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive, vec![(1, 8.0)]);
        assert_eq!(a.count, 8.0);
    }

    #[test]
    fn a_missing_populated_bucket_is_a_reset() {
        let prev = h(0, &[(0, 1.0), (1, 2.0)]);
        let mut cur = h(0, &[(0, 3.0)]);
        cur.count = 5.0;
        assert!(cur.detect_reset(&prev));
        let cur = h(0, &[(0, 3.0), (1, 2.0)]);
        assert!(!cur.detect_reset(&prev));
    }

    #[test]
    fn encoding_round_trips_exactly() {
        let h = FloatHistogram {
            hint: CounterResetHint::Gauge,
            schema: -53,
            zero_threshold: 0.0,
            zero_count: 0.0,
            count: f64::from_bits(crate::STALE_NAN_BITS),
            sum: -3.5,
            positive: vec![(-2, 1.0), (0, 0.0), (7, 2.5)],
            negative: vec![(3, 1e300)],
            custom_values: vec![0.5, 1.0],
        };
        let mut b = Vec::new();
        h.encode(&mut b);
        let mut r = b.as_slice();
        let got = FloatHistogram::decode(&mut r).expect("decodes");
        assert!(r.is_empty());
        assert_eq!(got.count.to_bits(), h.count.to_bits());
        assert_eq!(FloatHistogram { count: 0.0, ..got }, FloatHistogram { count: 0.0, ..h });
        assert!(FloatHistogram::decode(&mut &b[..b.len() - 1]).is_none());
    }

    #[test]
    fn mismatched_custom_bounds_intersect() {
        let mut a = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![1.0, 2.0, 4.0],
            positive: vec![(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)],
            count: 4.0,
            ..FloatHistogram::default()
        };
        let b = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![2.0, 3.0],
            positive: vec![(0, 1.0), (1, 1.0), (2, 1.0)],
            count: 3.0,
            ..FloatHistogram::default()
        };
        let r = a.add(&b).unwrap();
        assert!(r.bounds_reconciled);
        assert_eq!(a.custom_values, vec![2.0]);
        assert_eq!(a.positive, vec![(0, 3.0), (1, 4.0)]);
    }
}
