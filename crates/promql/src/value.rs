//! Query values: scalars, strings, instant vectors and range vectors, evaluated over the
//! steps of a query (an instant query has one step).

use std::sync::Arc;

use strata_tsdb::{FloatHistogram, Labels};

/// A histogram sample: (timestamp ms, histogram).
pub type HPoint = (i64, Arc<FloatHistogram>);

/// One series of an instant-vector expression over the query's steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: Labels,
    /// `__name__` is to be removed when the query ends (delayed name removal); with eager
    /// removal the name is already gone and this stays false.
    pub drop_name: bool,
    /// (timestamp ms, value), ascending; a step without a value has no point.
    pub points: Vec<(i64, f64)>,
    /// Histogram points, ascending; a step has a float or a histogram, never both.
    pub hists: Vec<HPoint>,
}

impl Series {
    /// A series of float points only.
    pub fn floats(labels: Labels, drop_name: bool, points: Vec<(i64, f64)>) -> Series {
        Series { labels, drop_name, points, hists: Vec::new() }
    }

    /// Whether it has no point at all.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.hists.is_empty()
    }
}

/// A result series as stored-series data (how a partial result crosses the wire).
impl From<Series> for strata_tsdb::SeriesData {
    fn from(s: Series) -> Self {
        strata_tsdb::SeriesData { labels: s.labels, samples: s.points, histograms: s.hists }
    }
}

/// Series data received as a result series (a partial result, its name already final).
impl From<strata_tsdb::SeriesData> for Series {
    fn from(s: strata_tsdb::SeriesData) -> Self {
        Series { labels: s.labels, drop_name: false, points: s.samples, hists: s.histograms }
    }
}

/// A range vector: samples in a window ending at one evaluation time.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Its labels.
    pub labels: Labels,
    /// Raw samples in the window, ascending.
    pub samples: Vec<(i64, f64)>,
    /// Raw histogram samples in the window, ascending.
    pub hists: Vec<HPoint>,
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One value per step.
    Scalar(Vec<(i64, f64)>),
    /// A string literal.
    String(String),
    /// An instant vector over the steps.
    Vector(Vec<Series>),
    /// A range vector at a single evaluation time (only as a query's top-level result).
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The PromQL type name, as Prometheus prints it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
