//! Resolves duration expressions that use the query's `step()` or `range()` (the parser
//! folds constant ones) into plain durations before evaluation, as Prometheus's
//! `PreprocessExpr` does.

use promql_parser::parser::{DurationExpr, Expr, Offset};

use crate::error::{QueryError, Result};

/// Whether `e` holds a duration expression that needs the query's step or range.
pub(crate) fn needs_resolving(e: &Expr) -> bool {
    let off = |o: &Option<Offset>| matches!(o, Some(Offset::Expr(_)));
    match e {
        Expr::VectorSelector(vs) => off(&vs.offset),
        Expr::MatrixSelector(ms) => ms.range_expr.is_some() || off(&ms.vs.offset),
        Expr::Subquery(sq) => {
            sq.range_expr.is_some() || sq.step_expr.is_some() || off(&sq.offset) || needs_resolving(&sq.expr)
        }
        Expr::Aggregate(a) => needs_resolving(&a.expr) || a.param.as_deref().is_some_and(needs_resolving),
        Expr::Unary(u) => needs_resolving(&u.expr),
        Expr::Binary(b) => needs_resolving(&b.lhs) || needs_resolving(&b.rhs),
        Expr::Paren(p) => needs_resolving(&p.expr),
        Expr::Call(c) => c.args.args.iter().any(|a| needs_resolving(a)),
        _ => false,
    }
}

fn positive(e: &DurationExpr, step: f64, range: f64) -> Result<std::time::Duration> {
    match DurationExpr::to_duration(e.eval(step, range)) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(QueryError::Execution(format!("duration {e} must be greater than 0"))),
    }
}

fn offset(o: &mut Option<Offset>, step: f64, range: f64) -> Result<()> {
    if let Some(Offset::Expr(e)) = o {
        let v = e.eval(step, range);
        let d = DurationExpr::to_duration(v.abs())
            .ok_or_else(|| QueryError::Execution(format!("offset {e} is out of range")))?;
        *o = Some(if v < 0.0 { Offset::Neg(d) } else { Offset::Pos(d) });
    }
    Ok(())
}

/// Replaces every query-dependent duration in `e` by its value for a query with this step
/// and range (seconds; both 0 for an instant query).
pub(crate) fn resolve(e: &mut Expr, step: f64, range: f64) -> Result<()> {
    match e {
        Expr::VectorSelector(vs) => offset(&mut vs.offset, step, range),
        Expr::MatrixSelector(ms) => {
            if let Some(r) = ms.range_expr.take() {
                ms.range = positive(&r, step, range)?;
            }
            offset(&mut ms.vs.offset, step, range)
        }
        Expr::Subquery(sq) => {
            if let Some(r) = sq.range_expr.take() {
                sq.range = positive(&r, step, range)?;
            }
            if let Some(s) = sq.step_expr.take() {
                sq.step = Some(positive(&s, step, range)?);
            }
            offset(&mut sq.offset, step, range)?;
            resolve(&mut sq.expr, step, range)
        }
        Expr::Aggregate(a) => {
            resolve(&mut a.expr, step, range)?;
            match a.param.as_deref_mut() {
                Some(p) => resolve(p, step, range),
                None => Ok(()),
            }
        }
        Expr::Unary(u) => resolve(&mut u.expr, step, range),
        Expr::Binary(b) => {
            resolve(&mut b.lhs, step, range)?;
            resolve(&mut b.rhs, step, range)
        }
        Expr::Paren(p) => resolve(&mut p.expr, step, range),
        Expr::Call(c) => c.args.args.iter_mut().try_for_each(|a| resolve(a, step, range)),
        _ => Ok(()),
    }
}
