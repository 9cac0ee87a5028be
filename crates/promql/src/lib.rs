//! # strata-promql — the PromQL evaluator
//!
//! Parses with the `promql-parser` crate and evaluates over any [`Source`] of series, so the
//! same engine serves `strata standalone` (the local database) and, later, stateless
//! queriers (the shards). Semantics are Prometheus 3's: left-open range windows
//! `(t − range, t]`, lookback `(t − 5m, t]` ending at stale markers, `@` and `offset`,
//! subqueries aligned to multiples of their step, Kahan summation where Prometheus uses
//! it, and eager `__name__` removal (delayed removal behind [`EngineConfig`]).
//!
//! Every node is evaluated over all steps of the query at once; an instant query is a
//! range query with one step.

mod aggregate;
mod annotations;
mod binary;
mod dates;
mod durations;
mod error;
mod eval;
mod extended;
mod features;
mod functions;
mod grid;
mod info;
mod limits;
mod native;
mod pushdown;
mod selector;
mod source;
mod value;

use std::time::{Duration, Instant};

use promql_parser::parser::{self, Expr};

pub use aggregate::{format_float, format_value};
pub use annotations::{Annotations, Output};
pub use error::{QueryError, Result};
pub use features::{FEATURE_NAMES, Features};
pub use functions::almost_equal;
pub use limits::{LoadLimit, resolution_error, steps_within};
pub use pushdown::{Partitioned, evaluate_parts, pushable};
pub use selector::{parse_selector, restrict};
pub use source::{EvalAt, MemSource, Partials, SelectHints, Source};
pub use value::{HPoint, RangeSeries, Series, Value};

use crate::eval::Ctx;
use crate::grid::{Out, Steps, without_name};

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How far back an instant selector looks for a sample, in ms. Default 300 000 (5m).
    pub lookback_ms: i64,
    /// Most samples a query may load. Default 50 000 000 (Prometheus's default).
    pub max_samples: usize,
    /// Step of subqueries written without one (`x[5m:]`), in ms. Default 60 000.
    pub default_subquery_step_ms: i64,
    /// The features Prometheus gates behind `--enable-feature` (delayed name removal,
    /// experimental functions, `anchored`/`smoothed`, `fill*`). Default all off.
    pub features: Features,
    /// Longest a query may run. Default 2 minutes.
    pub timeout: Duration,
    /// Most points a series may get from a range query, and from each subquery (its range
    /// over its step): Prometheus's 11,000-points resolution limit, checked before
    /// anything is allocated. Default 11 000.
    pub max_points_per_series: i64,
    /// Deepest syntax tree a query may have, in levels (parentheses, calls, brackets and
    /// operators, counted before parsing; a query over it is refused with 400). Bounds the
    /// stack the parser, the evaluator and the formatter use. Default 500.
    pub max_nesting: usize,
    /// Most bytes one query's evaluation may allocate for the data it loads, its step grids
    /// and the points it computes (counted as they are allocated, never released: a bound
    /// of its peak memory); over it the query fails with 422. Default 4 GiB.
    pub max_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lookback_ms: 300_000,
            max_samples: 50_000_000,
            default_subquery_step_ms: 60_000,
            features: Features::default(),
            timeout: Duration::from_secs(120),
            max_points_per_series: 11_000,
            max_nesting: 500,
            max_bytes: 4 << 30,
        }
    }
}

/// The PromQL engine.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    cfg: EngineConfig,
}

/// Parses a query as Prometheus does (errors are `bad_data`), refusing one nested deeper
/// than the default [`EngineConfig::max_nesting`] before parsing it.
pub fn parse(query: &str) -> Result<Expr> {
    parse_nested(query, EngineConfig::default().max_nesting)
}

/// Parses a query nested at most `max_nesting` levels (see [`EngineConfig::max_nesting`]).
pub fn parse_nested(query: &str, max_nesting: usize) -> Result<Expr> {
    limits::check_nesting(query, max_nesting)?;
    parser::parse(query).map_err(QueryError::Parse)
}

impl Engine {
    /// An engine with `cfg`.
    pub fn new(cfg: EngineConfig) -> Self {
        Engine { cfg }
    }

    /// Its settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Parses a query within this engine's nesting limit.
    pub fn parse(&self, query: &str) -> Result<Expr> {
        parse_nested(query, self.cfg.max_nesting)
    }

    /// Evaluates `expr` at time `t` (ms).
    pub fn instant(&self, src: &dyn Source, expr: &Expr, t: i64) -> Result<Output> {
        self.run(src, expr, Steps { start: t, end: t, step: 1 }, 0)
    }

    /// Evaluates `expr` at `start, start+step, … ≤ end` (ms); the result is a matrix sorted by labels.
    pub fn range(&self, src: &dyn Source, expr: &Expr, start: i64, end: i64, step: i64) -> Result<Output> {
        if step <= 0 {
            return Err(QueryError::Parse(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        if end < start {
            return Err(QueryError::Parse("end timestamp must not be before start time".into()));
        }
        // as Prometheus: (end − start) / step may be the limit, one more point than that
        if limits::steps_within(start, end, step, self.cfg.max_points_per_series.saturating_add(1)).is_none()
        {
            return Err(resolution_error(self.cfg.max_points_per_series));
        }
        // the type of the expression, as Prometheus checks it: through parentheses
        let mut inner = expr;
        while let Expr::Paren(p) = inner {
            inner = &p.expr;
        }
        if let Expr::MatrixSelector(_) | Expr::Subquery(_) = inner {
            return Err(QueryError::Parse(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
                    .into(),
            ));
        }
        if let Expr::StringLiteral(_) = inner {
            return Err(QueryError::Parse(
                "invalid expression type \"string\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        let out = self.run(src, expr, Steps { start, end, step }, step)?;
        let value = match out.value {
            Value::Vector(mut s) => {
                s.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Vector(s)
            }
            // a range query's scalar result is a matrix of one series without labels
            Value::Scalar(points) => {
                Value::Vector(vec![Series::floats(strata_tsdb::Labels::default(), false, points)])
            }
            other => other,
        };
        Ok(Output { value, annotations: out.annotations })
    }

    /// Evaluates `expr` at the grid `at` without the query-level finishing (no delayed
    /// name removal, no sorting): a part's share of a pushed-down aggregation.
    pub fn eval_at(&self, src: &dyn Source, expr: &Expr, at: &EvalAt) -> Result<Output> {
        if at.step <= 0 || at.end < at.start {
            return Err(QueryError::Parse("invalid evaluation grid".into()));
        }
        // a pushed-down part's grid is the querier's (a range query's or a subquery's
        // inner grid): more steps than samples allowed cannot be answered
        let max = i64::try_from(self.cfg.max_samples).unwrap_or(i64::MAX);
        if limits::steps_within(at.start, at.end, at.step, max).is_none() {
            return Err(QueryError::TooManySamples);
        }
        self.cfg.features.check(expr)?;
        let mut ctx = Ctx {
            src,
            cfg: &self.cfg,
            steps: Steps { start: at.start, end: at.end, step: at.step },
            query_start: at.query_start,
            query_end: at.query_end,
            query_step: at.query_step,
            samples: 0,
            bytes: 0,
            deadline: Instant::now() + self.cfg.timeout,
            annotations: Annotations::default(),
            func: None,
        };
        let value = ctx.eval(expr)?;
        // a query that ran past its deadline fails even if its last step finished
        ctx.check_deadline()?;
        Ok(Output { value, annotations: ctx.annotations })
    }

    fn run(&self, src: &dyn Source, expr: &Expr, steps: Steps, query_step: i64) -> Result<Output> {
        let mut ctx = Ctx {
            src,
            cfg: &self.cfg,
            steps,
            query_start: steps.start,
            query_end: steps.end,
            query_step,
            samples: 0,
            bytes: 0,
            deadline: Instant::now() + self.cfg.timeout,
            annotations: Annotations::default(),
            func: None,
        };
        self.cfg.features.check(expr)?;
        let resolved;
        let expr = if durations::needs_resolving(expr) {
            let mut e = expr.clone();
            let range = (steps.end as f64 - steps.start as f64) / 1000.0;
            durations::resolve(&mut e, query_step as f64 / 1000.0, range)?;
            resolved = e;
            &resolved
        } else {
            expr
        };
        let v = ctx.eval(expr)?;
        // a query that ran past its deadline fails even if its last step finished, so a
        // timeout does not depend on where the evaluator happened to look at the clock
        ctx.check_deadline()?;
        let annotations = std::mem::take(&mut ctx.annotations);
        let value = match v {
            Value::Vector(series) if series.iter().any(|s| s.drop_name) => {
                // delayed name removal: drop marked names now, then check for collisions
                let mut rows: Vec<(strata_tsdb::Labels, i64, Result<f64, value::HPoint>)> = Vec::new();
                for s in series {
                    let l = if s.drop_name { without_name(&s.labels) } else { s.labels };
                    rows.extend(s.points.into_iter().map(|(t, x)| (l.clone(), t, Ok(x))));
                    rows.extend(s.hists.into_iter().map(|h| (l.clone(), h.0, Err(h))));
                }
                rows.sort_by_key(|r| r.1);
                let mut out = Out::default();
                for (l, t, x) in rows {
                    match x {
                        Ok(x) => out.push(l, false, t, x)?,
                        Err(h) => out.push_hist(l, false, h)?,
                    }
                }
                Value::Vector(out.finish())
            }
            other => other,
        };
        Ok(Output { value, annotations })
    }
}
