//! # strata-difffuzz — differential fuzzing of PromQL
//!
//! A grammar-based random PromQL generator and a differential runner: the same seeded
//! expressions asked of Prometheus 2.42 and of Strata (and of a cluster's queriers, with
//! aggregation pushdown on and off, against `strata standalone`), over one data set of
//! node_exporter-, application- and histogram-shaped series with counter resets, gaps and
//! stale markers. Each expression is asked as an instant query at several times and as a
//! range query; errors are compared by `errorType`, results by labels and values (relative
//! 1e-6, NaN equal to NaN). A disagreement is shrunk to the smallest expression that still
//! disagrees the same way and given a verdict: Strata bug, documented 2.42 vs 3.x
//! difference, or unspecified behaviour (`../shared/conformance/VERSIONS.md`).
//!
//! * [`expr`]: the syntax tree and its printing;
//! * [`generator`]: the seeded generator;
//! * [`data`]: the data set;
//! * [`compare`]: answers and their comparison;
//! * [`exclude`]: VERSIONS.md exclusions and verdicts;
//! * [`minimise`]: shrinking a disagreeing expression;
//! * [`runner`]: starting the systems, loading the data, running cases, the report.
//!
//! The `strata-difffuzz` binary runs long campaigns (docs/promql-fuzzing.md); the
//! integration test `tests/it/promql_fuzz.rs` runs a seeded 3,000 in CI.

pub mod compare;
pub mod data;
pub mod exclude;
pub mod expr;
pub mod generator;
pub mod minimise;
pub mod runner;
