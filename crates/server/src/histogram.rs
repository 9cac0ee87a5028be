//! Remote-write 1.0 `Histogram` messages to the engine's [`FloatHistogram`], with the
//! checks Prometheus applies before it appends a native histogram.

use strata_proto::prometheus as pb;
use strata_tsdb::FloatHistogram;
use strata_tsdb::histogram::{CUSTOM_BUCKETS_SCHEMA, CounterResetHint};

/// Expands spans and bucket values into `(index, count)` pairs; integer histograms send
/// deltas (each bucket relative to the previous one), float histograms absolute counts.
fn buckets(
    spans: &[pb::BucketSpan],
    deltas: &[i64],
    counts: &[f64],
    int: bool,
) -> Result<Vec<(i32, f64)>, String> {
    let values: Vec<f64> = if int {
        let mut acc = 0i64;
        deltas
            .iter()
            .map(|d| {
                acc = acc.wrapping_add(*d);
                acc as f64
            })
            .collect()
    } else {
        counts.to_vec()
    };
    let declared: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    if declared != values.len() as u64 {
        return Err(format!(
            "histogram spans specify different number of buckets than provided: spans need {declared} buckets, have {} buckets",
            values.len()
        ));
    }
    let mut out = Vec::with_capacity(values.len());
    let (mut idx, mut k) = (0i64, 0usize);
    for (n, s) in spans.iter().enumerate() {
        if n > 0 && s.offset < 0 {
            return Err(format!(
                "histogram has a span whose offset is negative: span number {} with offset {}",
                n + 1,
                s.offset
            ));
        }
        idx += i64::from(s.offset);
        for _ in 0..s.length {
            let i = i32::try_from(idx).map_err(|_| "histogram bucket index out of range".to_string())?;
            out.push((i, values[k]));
            k += 1;
            idx += 1;
        }
    }
    if let Some(&(i, c)) = out.iter().find(|b| b.1 < 0.0) {
        return Err(format!(
            "histogram has a bucket whose observation count is negative: bucket {i} has {c}"
        ));
    }
    Ok(out)
}

/// The sample a `Histogram` message carries: (timestamp ms, histogram), or why it is invalid.
pub(crate) fn from_wire(h: &pb::Histogram) -> Result<(i64, FloatHistogram), String> {
    use pb::histogram::{Count, ZeroCount};
    let (count, int) = match h.count {
        Some(Count::CountInt(c)) => (c as f64, true),
        Some(Count::CountFloat(c)) => (c, false),
        None => (0.0, h.positive_deltas.len() + h.negative_deltas.len() > 0),
    };
    let zero_count = match h.zero_count {
        Some(ZeroCount::ZeroCountInt(c)) => c as f64,
        Some(ZeroCount::ZeroCountFloat(c)) => c,
        None => 0.0,
    };
    if !(-4..=8).contains(&h.schema) && h.schema != CUSTOM_BUCKETS_SCHEMA {
        return Err(format!("histogram has an invalid schema {}, must be in [-4, 8] or -53", h.schema));
    }
    let positive = buckets(&h.positive_spans, &h.positive_deltas, &h.positive_counts, int)?;
    let negative = buckets(&h.negative_spans, &h.negative_deltas, &h.negative_counts, int)?;
    if zero_count < 0.0 || count < 0.0 {
        return Err("histogram has a negative count or zero count".into());
    }
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        if !negative.is_empty() || zero_count != 0.0 || h.zero_threshold != 0.0 {
            return Err(
                "custom buckets: must have no negative buckets and a zero count and threshold of 0".into()
            );
        }
        if h.custom_values.iter().any(|v| !v.is_finite()) {
            return Err("histogram custom bounds must be finite".into());
        }
        if h.custom_values.windows(2).any(|w| w[1] <= w[0]) {
            return Err("histogram custom bounds must be in strictly increasing order".into());
        }
        if positive.iter().any(|b| b.0 < 0 || b.0 as usize > h.custom_values.len()) {
            return Err("histogram custom bounds are too few".into());
        }
    }
    // without NaN observations, the buckets cannot hold more than the count
    let in_buckets: f64 = positive.iter().chain(&negative).map(|b| b.1).sum::<f64>() + zero_count;
    if !h.sum.is_nan() && in_buckets > count * (1.0 + 1e-9) + 1e-9 {
        return Err(format!(
            "histogram's observation count should be at least the number of observations found in the buckets ({count} < {in_buckets})"
        ));
    }
    let hint = match h.reset_hint {
        1 => CounterResetHint::CounterReset,
        2 => CounterResetHint::NotCounterReset,
        3 => CounterResetHint::Gauge,
        _ => CounterResetHint::Unknown,
    };
    let fh = FloatHistogram {
        hint,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count,
        count,
        sum: h.sum,
        positive,
        negative,
        custom_values: if h.schema == CUSTOM_BUCKETS_SCHEMA { h.custom_values.clone() } else { Vec::new() },
    };
    Ok((h.timestamp, fh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::histogram::{Count, ZeroCount};

    fn span(offset: i32, length: u32) -> pb::BucketSpan {
        pb::BucketSpan { offset, length }
    }

    #[test]
    fn integer_deltas_and_spans_become_absolute_buckets() {
        let h = pb::Histogram {
            count: Some(Count::CountInt(9)),
            sum: 12.5,
            schema: 0,
            zero_threshold: 1e-128,
            zero_count: Some(ZeroCount::ZeroCountInt(1)),
            positive_spans: vec![span(-1, 2), span(2, 1)],
            positive_deltas: vec![2, 1, -1],
            negative_spans: vec![span(0, 1)],
            negative_deltas: vec![1],
            reset_hint: 3,
            timestamp: 1000,
            ..pb::Histogram::default()
        };
        let (t, fh) = from_wire(&h).expect("valid");
        assert_eq!(t, 1000);
        assert_eq!(fh.positive, vec![(-1, 2.0), (0, 3.0), (3, 2.0)]);
        assert_eq!(fh.negative, vec![(0, 1.0)]);
        assert_eq!((fh.count, fh.zero_count, fh.hint), (9.0, 1.0, CounterResetHint::Gauge));
    }

    #[test]
    fn invalid_histograms_are_rejected_with_prometheus_reasons() {
        let base = pb::Histogram { count: Some(Count::CountFloat(5.0)), ..pb::Histogram::default() };
        let bad_spans =
            pb::Histogram { positive_spans: vec![span(0, 2)], positive_counts: vec![1.0], ..base.clone() };
        assert!(from_wire(&bad_spans).unwrap_err().contains("different number of buckets"));
        let negative =
            pb::Histogram { positive_spans: vec![span(0, 1)], positive_counts: vec![-1.0], ..base.clone() };
        assert!(from_wire(&negative).unwrap_err().contains("negative"));
        let unordered = pb::Histogram { schema: -53, custom_values: vec![2.0, 1.0], ..base.clone() };
        assert!(from_wire(&unordered).unwrap_err().contains("increasing"));
        let too_many = pb::Histogram { positive_spans: vec![span(0, 1)], positive_counts: vec![9.0], ..base };
        assert!(from_wire(&too_many).unwrap_err().contains("at least"));
    }
}
