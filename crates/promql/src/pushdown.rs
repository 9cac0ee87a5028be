//! Pushdown of aggregations to the parts of the data ("fan out and merge").
//!
//! When the data is split into parts by series (a cluster's shards), an aggregation whose
//! operator distributes over any partition of its input — `sum`, `min`, `max`, `count`,
//! `group`, `topk`, `bottomk`, and `avg` as `sum`/`count` — and whose inner expression
//! computes every output series from one stored series alone (selectors, per-series
//! functions, arithmetic and filters with literals, subqueries of those) can be evaluated
//! on each part and the partial results merged by aggregating them again (`count` partials
//! are summed). A [`Source`] that can do this answers [`Source::pushdown`]; others leave
//! the default and the evaluator aggregates the selected series itself.
//!
//! Merging is exact for `min`, `max`, `count`, `group`, `topk` and `bottomk`; `sum` and
//! `avg` add the same numbers in another order (per part, then across parts), with the
//! same Kahan compensation, so results agree to the last bits of the float. Partial sums
//! that hold native histograms make the evaluator fall back to the unsplit plan, so
//! histogram-mixing rules stay exactly Prometheus's.

use promql_parser::label::MatchOp;
use promql_parser::parser::token::{T_COUNT, T_SUM, TokenType};
use promql_parser::parser::{AggregateExpr, Expr, VectorSelector};
use strata_tsdb::METRIC_NAME;

use crate::error::{QueryError, Result};
use crate::eval::Ctx;
use crate::source::{EvalAt, MemSource, Partials, SelectHints, Source};
use crate::value::{Series, Value};
use crate::{Engine, aggregate};

/// Functions whose every output series is computed from one input series alone.
const PER_SERIES: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "deg",
    "rad",
    "timestamp",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "changes",
    "resets",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "mad_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "double_exponential_smoothing",
    "holt_winters",
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_fraction",
];

/// A number, possibly in parentheses or negated.
fn is_literal(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => is_literal(&p.expr),
        Expr::Unary(u) => is_literal(&u.expr),
        _ => false,
    }
}

/// A selector of one metric name (so that dropping the name can never make two series of
/// different parts collide).
fn named(vs: &VectorSelector) -> bool {
    vs.matchers.or_matchers.is_empty()
        && (vs.name.is_some()
            || vs.matchers.matchers.iter().any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal))
}

/// Whether every series `e` yields is computed from one stored series alone.
fn per_series(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(vs) => named(vs),
        Expr::MatrixSelector(ms) => named(&ms.vs),
        Expr::Paren(p) => per_series(&p.expr),
        Expr::Unary(u) => per_series(&u.expr),
        Expr::Subquery(sq) => per_series(&sq.expr),
        Expr::Call(c) => {
            PER_SERIES.contains(&c.func.name)
                && c.args.args.iter().filter(|a| !is_literal(a)).count() == 1
                && c.args.args.iter().all(|a| is_literal(a) || per_series(a))
        }
        Expr::Binary(b) => {
            !b.op.is_set_operator()
                && ((per_series(&b.lhs) && is_literal(&b.rhs)) || (is_literal(&b.lhs) && per_series(&b.rhs)))
        }
        _ => false,
    }
}

/// Whether `a` can be evaluated per part of the data and merged (see the module notes).
pub fn pushable(a: &AggregateExpr) -> bool {
    let op = a.op.to_string();
    let op_ok = matches!(op.as_str(), "sum" | "min" | "max" | "count" | "group" | "avg" | "topk" | "bottomk");
    let param_ok = match &a.param {
        None => true,
        Some(p) => matches!(op.as_str(), "topk" | "bottomk") && is_literal(p),
    };
    op_ok && param_ok && per_series(&a.expr)
}

fn with_op(a: &AggregateExpr, op: promql_parser::parser::token::TokenId) -> Expr {
    Expr::Aggregate(AggregateExpr { op: TokenType::new(op), ..a.clone() })
}

/// Partial results of every part, in one list sorted by labels (the order the unsplit
/// input would have, so that ties in `topk`/`bottomk` break the same way).
fn sorted(mut v: Vec<Series>) -> Vec<Series> {
    v.sort_by(|a, b| a.labels.cmp(&b.labels));
    v
}

/// Evaluates `a` by pushdown when it can be pushed down and the source can do it;
/// `Ok(None)` sends the evaluator down the unsplit plan.
pub(crate) fn try_eval(ctx: &mut Ctx<'_>, a: &AggregateExpr) -> Result<Option<Value>> {
    if ctx.cfg.features.delayed_name_removal || !pushable(a) {
        return Ok(None);
    }
    let op = a.op.to_string();
    let exprs = if op == "avg" {
        vec![with_op(a, T_SUM), with_op(a, T_COUNT)]
    } else {
        vec![Expr::Aggregate(a.clone())]
    };
    let at = ctx.eval_at();
    let Some(res) = ctx.src.pushdown(&exprs, &at) else {
        return Ok(None);
    };
    let Partials { mut results, annotations } = res?;
    if results.len() != exprs.len() {
        return Err(QueryError::Storage("pushdown answered for another number of expressions".into()));
    }
    if results.iter().flatten().any(|s| !s.hists.is_empty()) {
        return Ok(None);
    }
    let m = a.modifier.as_ref();
    let value = match op.as_str() {
        "avg" => {
            let counts = aggregate::reduce(ctx, "sum", m, None, sorted(results.pop().unwrap_or_default()))?;
            let sums = aggregate::reduce(ctx, "sum", m, None, sorted(results.pop().unwrap_or_default()))?;
            // near the float range's end Prometheus's mean switches to an incremental form
            // that sum ÷ count cannot reproduce: such groups take the unsplit plan (a
            // non-finite partial sum makes the merged sum non-finite too)
            if let Value::Vector(v) = &sums
                && v.iter().flat_map(|s| &s.points).any(|p| !p.1.is_finite())
            {
                return Ok(None);
            }
            divide(sums, counts)
        }
        "count" => aggregate::reduce(ctx, "sum", m, None, sorted(results.pop().unwrap_or_default()))?,
        _ => {
            let param = match &a.param {
                Some(p) => Some(ctx.eval(p)?),
                None => None,
            };
            aggregate::reduce(ctx, &op, m, param, sorted(results.pop().unwrap_or_default()))?
        }
    };
    // the parts' annotations count only when their answer is used
    ctx.annotations.merge(annotations);
    Ok(Some(value))
}

/// Per series and step: sum ÷ count.
fn divide(sums: Value, counts: Value) -> Value {
    let (Value::Vector(sums), Value::Vector(counts)) = (sums, counts) else {
        return Value::Vector(Vec::new());
    };
    let by_labels: rustc_hash::FxHashMap<&strata_tsdb::Labels, &Series> =
        counts.iter().map(|c| (&c.labels, c)).collect();
    let out = sums
        .into_iter()
        .filter_map(|mut s| {
            let c = *by_labels.get(&s.labels)?;
            s.points.retain_mut(|(t, v)| match c.points.binary_search_by_key(t, |p| p.0) {
                Ok(i) => {
                    *v /= c.points[i].1;
                    true
                }
                Err(_) => false,
            });
            (!s.points.is_empty()).then_some(s)
        })
        .collect();
    Value::Vector(out)
}

/// Evaluates `exprs` on each of `parts` with `engine` and gathers the results: what a
/// storage node does for its shard, and a querier over its shards.
pub fn evaluate_parts<'a, S: Source + 'a>(
    engine: &Engine,
    parts: impl IntoIterator<Item = &'a S>,
    exprs: &[Expr],
    at: &EvalAt,
) -> Result<Partials> {
    let parts: Vec<&S> = parts.into_iter().collect();
    let mut out = Partials { results: vec![Vec::new(); exprs.len()], ..Partials::default() };
    for (i, e) in exprs.iter().enumerate() {
        for part in &parts {
            let o = engine.eval_at(*part, e, at)?;
            out.annotations.merge(o.annotations);
            match o.value {
                Value::Vector(v) => out.results[i].extend(v),
                other => {
                    return Err(QueryError::Execution(format!(
                        "pushed-down aggregation returned a {}",
                        other.type_name()
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// A source split into parts by series hash, answering [`Source::pushdown`] by evaluating
/// each part separately after a round trip of the expression through its text (as a
/// querier sends it to storage nodes): the querier's plan in one process, for tests.
#[derive(Debug)]
pub struct Partitioned {
    parts: Vec<MemSource>,
    engine: Engine,
    pushed: std::sync::atomic::AtomicUsize,
}

impl Partitioned {
    /// `src` split into `n` parts (by the series' stable label hash); `engine` evaluates
    /// the parts.
    pub fn new(src: &MemSource, n: usize, engine: Engine) -> Self {
        Partitioned { parts: src.split(n), engine, pushed: Default::default() }
    }

    /// How many aggregations were pushed down so far.
    pub fn pushed(&self) -> usize {
        self.pushed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Source for Partitioned {
    fn select(
        &self,
        matchers: &[strata_tsdb::Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<strata_tsdb::SeriesData>> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(p.select(matchers, hints)?);
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn pushdown(&self, exprs: &[Expr], at: &EvalAt) -> Option<Result<Partials>> {
        let reparsed: Result<Vec<Expr>> = exprs.iter().map(|e| crate::parse(&e.to_string())).collect();
        self.pushed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(reparsed.and_then(|exprs| evaluate_parts(&self.engine, &self.parts, &exprs, at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(q: &str) -> bool {
        match crate::parse(q).expect("parses") {
            Expr::Aggregate(a) => pushable(&a),
            _ => panic!("not an aggregation: {q}"),
        }
    }

    #[test]
    fn what_pushes_down() {
        for q in [
            "sum(up)",
            "sum by (job) (rate(http_requests_total[5m]))",
            "avg without (cpu) (1 - rate(node_cpu_seconds_total{mode=\"idle\"}[1m]))",
            "topk(5, max_over_time(x[1h]))",
            "count(x > 0)",
            "max by (instance) (clamp_min(x, 0) * 100)",
            "min(max_over_time(rate(x[5m])[1h:1m]))",
            "group by (job) ({__name__=\"up\"})",
        ] {
            assert!(agg(q), "{q} should push down");
        }
        for q in [
            "sum({job=\"a\"})",
            "sum(a / b)",
            "sum(histogram_quantile(0.9, rate(x[5m])))",
            "quantile(0.9, x)",
            "topk(scalar(y), x)",
            "sum(sum by (job) (x))",
            "sum(label_replace(x, \"a\", \"b\", \"c\", \".*\"))",
            "count(vector(1))",
            "sum(x and y)",
            "stddev(x)",
        ] {
            assert!(!agg(q), "{q} should not push down");
        }
    }
}
