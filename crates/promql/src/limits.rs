//! What one query may cost, checked before the cost is paid: how deeply it nests (before
//! it is parsed, so that neither the parser, dropping its tree, the evaluator nor the
//! formatter can run out of stack), how many points a series may get, how many samples
//! and bytes its reads and its evaluation may hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use strata_tsdb::SeriesData;

use crate::error::{QueryError, Result};

/// An upper bound of the depth of the syntax tree of `query`, found without parsing it
/// (one pass over its bytes, no recursion): the deepest nesting of `(` and `{`, plus every
/// `[` (a range or a subquery, which chain without nesting), plus every operator
/// (binary operators chain without nesting: `1+1+…+1` is as deep as it is long; a unary
/// minus is one level). Every inner node of the tree owns one of those tokens, so the tree
/// is never deeper than this. Strings and comments are skipped; label matchers are not
/// operators.
pub(crate) fn nesting_bound(query: &str) -> usize {
    let b = query.as_bytes();
    let (mut depth, mut deepest, mut chained, mut braces) = (0usize, 0usize, 0usize, 0usize);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                // a string: to its closing quote (backslash escapes except in raw strings)
                i += 1;
                while i < b.len() && b[i] != c {
                    if c != b'`' && b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                braces += usize::from(c == b'{');
            }
            b')' | b'}' => {
                depth = depth.saturating_sub(1);
                braces = braces.saturating_sub(usize::from(c == b'}'));
            }
            b'[' => chained += 1,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'=' | b'!' if braces == 0 => {
                // two-character operators (`==`, `!=`, `>=`, `<=`, `</`, `>/`) count once
                if matches!(b.get(i + 1), Some(b'=' | b'/')) && matches!(c, b'=' | b'!' | b'<' | b'>') {
                    i += 1;
                }
                chained += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                    i += 1;
                }
                let word = &query[start..i];
                if braces == 0
                    && ["and", "or", "unless", "atan2"].iter().any(|k| word.eq_ignore_ascii_case(k))
                {
                    chained += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    deepest.saturating_add(chained)
}

/// Refuses a query whose syntax tree may be deeper than `max` levels, before it is parsed.
pub(crate) fn check_nesting(query: &str, max: usize) -> Result<()> {
    if nesting_bound(query) > max {
        return Err(QueryError::Parse(format!(
            "query nesting too deep: more than {max} levels of parentheses, brackets, calls and operators"
        )));
    }
    Ok(())
}

/// `n` written with thousands separators, as Prometheus words its resolution limit.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Prometheus's error for a range query (or here also a subquery) asking for more than
/// `max` points per series.
pub fn resolution_error(max: i64) -> QueryError {
    QueryError::Parse(format!(
        "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
        thousands(max)
    ))
}

/// The number of steps from `start` to `end` (inclusive) every `step` ms, when it is at
/// most `max`: computed without overflow whatever the inputs.
pub fn steps_within(start: i64, end: i64, step: i64, max: i64) -> Option<usize> {
    let n = (i128::from(end) - i128::from(start)) / i128::from(step.max(1)) + 1;
    (n <= i128::from(max)).then(|| usize::try_from(n.max(0)).unwrap_or(0))
}

/// The error of a query over its byte budget.
pub(crate) fn too_many_bytes(max: usize) -> QueryError {
    QueryError::Execution(format!(
        "query processing would hold more than {max} bytes in memory in query execution (--query.max-bytes)"
    ))
}

/// Bytes a loaded series takes in memory (an estimate: labels, samples, histograms with
/// their buckets).
pub(crate) fn series_bytes(sd: &SeriesData) -> usize {
    let labels: usize = sd.labels.iter().map(|l| l.name.len() + l.value.len() + 48).sum();
    let hists: usize = sd
        .histograms
        .iter()
        .map(|h| {
            std::mem::size_of::<strata_tsdb::FloatHistogram>()
                + 16 * (h.1.positive.len() + h.1.negative.len())
                + 8 * h.1.custom_values.len()
                + 32
        })
        .sum();
    labels + 16 * sd.samples.len() + hists + 64
}

/// What one query's reads may load, checked as each series arrives so that a selection
/// over the limit stops before all of it is in memory: the samples (the engine's
/// `max_samples`) and their bytes in memory (the engine's `max_bytes`, estimated as the
/// evaluator does), across every read of the query, the deadline and cancellation. Shared
/// by the concurrent reads of a fan-out.
#[derive(Debug)]
pub struct LoadLimit {
    max_samples: usize,
    max_bytes: usize,
    loaded: AtomicUsize,
    bytes: AtomicUsize,
    deadline: Instant,
}

impl LoadLimit {
    /// At most `max_samples` samples taking at most `max_bytes` bytes, until `deadline`.
    pub fn new(max_samples: usize, max_bytes: usize, deadline: Instant) -> Self {
        LoadLimit {
            max_samples,
            max_bytes,
            loaded: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            deadline,
        }
    }

    /// Counts one loaded series: Prometheus's too-many-samples error once the query's
    /// reads passed `max_samples`, the byte budget's error past `max_bytes`, a timeout
    /// past the deadline.
    pub fn charge(&self, s: &SeriesData) -> Result<()> {
        let n = s.samples.len() + s.histograms.len();
        if self.loaded.fetch_add(n, Ordering::Relaxed).saturating_add(n) > self.max_samples {
            return Err(QueryError::TooManySamples);
        }
        let b = series_bytes(s);
        if self.bytes.fetch_add(b, Ordering::Relaxed).saturating_add(b) > self.max_bytes {
            return Err(too_many_bytes(self.max_bytes));
        }
        if Instant::now() >= self.deadline {
            return Err(QueryError::Timeout("query execution"));
        }
        Ok(())
    }

    /// Collects a selection's series, each [charged](Self::charge), failing with
    /// `unavailable` once `canceled` says nobody waits for the answer.
    pub fn collect<E: std::fmt::Display>(
        &self,
        series: impl Iterator<Item = std::result::Result<SeriesData, E>>,
        canceled: impl Fn() -> bool,
    ) -> Result<Vec<SeriesData>> {
        let mut out = Vec::new();
        for s in series {
            let s = s.map_err(|e| QueryError::Storage(e.to_string()))?;
            self.charge(&s)?;
            if canceled() {
                return Err(QueryError::Unavailable("the query was canceled".into()));
            }
            out.push(s);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_bounds_the_tree() {
        assert_eq!(nesting_bound("up"), 0);
        assert_eq!(nesting_bound("sum(rate(x{a=~\"b|c\",d!=\"(\"}[5m]))"), 4);
        assert_eq!(nesting_bound("1 + 2 * 3"), 2);
        assert_eq!(nesting_bound("a and b or c unless d"), 3);
        assert_eq!(nesting_bound("x[5m:][5m:]"), 2);
        assert_eq!(nesting_bound("- - - x"), 3);
        assert_eq!(nesting_bound("x >= 1 != 2 </ 3"), 3);
        assert_eq!(nesting_bound("# ((((\nx"), 0);
        assert_eq!(nesting_bound(&"(".repeat(900_000)), 900_000);
        assert!(check_nesting(&format!("{}x{}", "(".repeat(10), ")".repeat(10)), 10).is_ok());
        let e = check_nesting(&format!("{}x{}", "(".repeat(11), ")".repeat(11)), 10).unwrap_err();
        assert!(e.to_string().starts_with("query nesting too deep: more than 10 levels"), "{e}");
    }

    #[test]
    fn resolution_wording_and_overflow_safe_steps() {
        assert_eq!(
            resolution_error(11_000).to_string(),
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(steps_within(0, 10, 1, 11), Some(11));
        assert_eq!(steps_within(0, 10, 1, 10), None);
        assert_eq!(steps_within(i64::MIN, i64::MAX, 1, 11_000), None);
        assert_eq!(steps_within(i64::MIN, i64::MAX, i64::MAX, 11_000), Some(3));
    }
}
