//! What a parser yields: entries, metric types and errors.

use std::borrow::Cow;
use std::fmt;

/// Type of a metric family, as declared by a `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram` (classic, with `_bucket`, `_sum` and `_count` series).
    Histogram,
    /// `gaugehistogram` (OpenMetrics only).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics only).
    Info,
    /// `stateset` (OpenMetrics only).
    StateSet,
    /// `untyped` in the text format, `unknown` in OpenMetrics.
    Unknown,
}

impl MetricType {
    /// The name Prometheus gives this type in its metadata API (`"counter"`, …, `"unknown"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
            Self::Unknown => "unknown",
        }
    }
}

/// One entry of a body, borrowing from it.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry<'a> {
    /// A sample line. Its labels are given by [`Parser::labels`](crate::Parser::labels).
    Series {
        /// The series exactly as on the wire: the metric name and its `{...}` label block if any,
        /// without the value, timestamp or exemplar and without surrounding whitespace. Two lines
        /// writing the same series identically give equal bytes, so it serves as a cache key.
        series: &'a [u8],
        /// The sample value. A NaN is Prometheus's "normal" NaN (bits `0x7ff8000000000001`),
        /// never its staleness marker.
        value: f64,
        /// The sample's timestamp in milliseconds, if the line has one (OpenMetrics seconds are
        /// multiplied by 1000 and truncated toward zero, as Prometheus does).
        timestamp_ms: Option<i64>,
    },
    /// `# HELP family text`.
    Help {
        /// The metric family (for a quoted name: the bytes between the quotes, as written).
        family: &'a str,
        /// The help text, unescaped: `\\` and `\n` in the text format, also `\"` in OpenMetrics.
        help: Cow<'a, str>,
    },
    /// `# TYPE family type`.
    Type {
        /// The metric family (for a quoted name: the bytes between the quotes, as written).
        family: &'a str,
        /// The declared type.
        kind: MetricType,
    },
    /// `# UNIT family unit` (OpenMetrics only).
    Unit {
        /// The metric family (for a quoted name: the bytes between the quotes, as written).
        family: &'a str,
        /// The unit, as written (empty, or a suffix of the family name after a `_`).
        unit: &'a str,
    },
}

/// Why a body could not be parsed, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based number of the offending line.
    pub line: usize,
    /// What is wrong, quoting the offending token (truncated to about 100 bytes).
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}
