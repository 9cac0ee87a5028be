//! Binary operators: arithmetic, comparison (filtering or `bool`), set operators, with
//! Prometheus's vector matching (`on`, `ignoring`, `group_left`, `group_right`).

use rustc_hash::{FxHashMap, FxHashSet};

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use strata_tsdb::Labels;

use crate::error::{QueryError, Result};
use crate::eval::Ctx;
use crate::grid::{Out, by_step, drop_name, only, with_label, without};
use crate::value::{Series, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn parse(s: &str) -> Result<Op> {
        Ok(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            other => {
                return Err(QueryError::Parse(format!("unsupported binary operator {other:?}")));
            }
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    /// Prometheus's `vectorElemBinop` for floats: (value, keep).
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Op::Add => (l + r, true),
            Op::Sub => (l - r, true),
            Op::Mul => (l * r, true),
            Op::Div => (l / r, true),
            Op::Mod => (l % r, true),
            Op::Pow => (l.powf(r), true),
            Op::Atan2 => (l.atan2(r), true),
            Op::Eq => (l, l == r),
            Op::Ne => (l, l != r),
            Op::Gt => (l, l > r),
            Op::Lt => (l, l < r),
            Op::Ge => (l, l >= r),
            Op::Le => (l, l <= r),
            Op::And | Op::Or | Op::Unless => (l, true),
        }
    }
}

/// Evaluates a binary expression.
pub(crate) fn eval(ctx: &mut Ctx<'_>, b: &BinaryExpr) -> Result<Value> {
    let op = Op::parse(&b.op.to_string())?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ctx.eval(&b.lhs)?;
    let rhs = ctx.eval(&b.rhs)?;
    let delayed = ctx.cfg.delayed_name_removal;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
            l.into_iter()
                .zip(r)
                .map(|((t, a), (_, c))| {
                    let (v, keep) = op.apply(a, c);
                    (t, if op.is_comparison() { f64::from(u8::from(keep)) } else { v })
                })
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => vector_scalar(ctx, v, &s, op, return_bool, false, delayed),
        (Value::Scalar(s), Value::Vector(v)) => vector_scalar(ctx, v, &s, op, return_bool, true, delayed),
        (Value::Vector(l), Value::Vector(r)) => {
            let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
            let card = b.modifier.as_ref().map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
            match op {
                Op::And | Op::Or | Op::Unless => set_op(ctx, l, r, op, matching.as_ref()),
                _ => vector_vector(ctx, l, r, op, return_bool, matching.as_ref(), &card, delayed),
            }
        }
        (l, r) => Err(QueryError::Execution(format!(
            "binary operator between {} and {} is not supported",
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn vector_scalar(
    ctx: &Ctx<'_>,
    v: Vec<Series>,
    s: &[(i64, f64)],
    op: Op,
    return_bool: bool,
    swap: bool,
    delayed: bool,
) -> Result<Value> {
    let steps = ctx.steps;
    let mut out = Vec::with_capacity(v.len());
    for series in v {
        let mut points = Vec::with_capacity(series.points.len());
        for &(t, x) in &series.points {
            let sv = s[steps.index(t)].1;
            let (l, r) = if swap { (sv, x) } else { (x, sv) };
            let (mut value, keep) = op.apply(l, r);
            if op.is_comparison() && swap {
                value = x;
            }
            if return_bool {
                points.push((t, f64::from(u8::from(keep))));
            } else if keep {
                points.push((t, value));
            }
        }
        if points.is_empty() {
            continue;
        }
        let (labels, dn) = if !op.is_comparison() || return_bool {
            drop_name(&series.labels, delayed)
        } else {
            (series.labels.clone(), false)
        };
        out.push(Series { labels, drop_name: dn || series.drop_name, points });
    }
    Ok(Value::Vector(out))
}

/// The matching signature of a series (without a modifier: all labels but the name).
fn signature(l: &Labels, matching: Option<&LabelModifier>) -> Labels {
    crate::grid::project(l, matching).unwrap_or_else(|| without(l, &crate::grid::NAME_LIKE))
}

fn set_op(ctx: &Ctx<'_>, l: Vec<Series>, r: Vec<Series>, op: Op, m: Option<&LabelModifier>) -> Result<Value> {
    let steps = ctx.steps;
    let lsig: Vec<Labels> = l.iter().map(|s| signature(&s.labels, m)).collect();
    let rsig: Vec<Labels> = r.iter().map(|s| signature(&s.labels, m)).collect();
    let (lg, rg) = (by_step(&l, steps), by_step(&r, steps));
    let mut out = Out::default();
    for (i, (ls, rs)) in lg.iter().zip(&rg).enumerate() {
        let t = steps.at(i);
        let rset: FxHashSet<&Labels> = rs.iter().map(|&(j, _)| &rsig[j]).collect();
        match op {
            Op::And | Op::Unless => {
                for &(j, v) in ls {
                    if rset.contains(&lsig[j]) == (op == Op::And) {
                        out.push(l[j].labels.clone(), l[j].drop_name, t, v)?;
                    }
                }
            }
            _ => {
                let lset: FxHashSet<&Labels> = ls.iter().map(|&(j, _)| &lsig[j]).collect();
                for &(j, v) in ls {
                    out.push(l[j].labels.clone(), l[j].drop_name, t, v)?;
                }
                for &(j, v) in rs {
                    if !lset.contains(&rsig[j]) {
                        out.push(r[j].labels.clone(), r[j].drop_name, t, v)?;
                    }
                }
            }
        }
    }
    Ok(Value::Vector(out.finish()))
}

fn render(l: &Labels) -> String {
    l.to_string()
}

#[allow(clippy::too_many_arguments)]
fn vector_vector(
    ctx: &Ctx<'_>,
    l: Vec<Series>,
    r: Vec<Series>,
    op: Op,
    return_bool: bool,
    m: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    delayed: bool,
) -> Result<Value> {
    let steps = ctx.steps;
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    // the "many" side is walked, the "one" side indexed by signature
    let (many, one) = if one_to_many { (&r, &l) } else { (&l, &r) };
    let msig: Vec<Labels> = many.iter().map(|s| signature(&s.labels, m)).collect();
    let osig: Vec<Labels> = one.iter().map(|s| signature(&s.labels, m)).collect();
    let (mg, og) = (by_step(many, steps), by_step(one, steps));
    let include: Vec<String> = card.labels().map(|x| x.labels.clone()).unwrap_or_default();
    let mut out = Out::default();
    for (i, (ms, os)) in mg.iter().zip(&og).enumerate() {
        let t = steps.at(i);
        let mut index: FxHashMap<&Labels, (usize, f64)> =
            FxHashMap::with_capacity_and_hasher(os.len(), Default::default());
        for &(j, v) in os {
            if let Some(&(prev, _)) = index.get(&osig[j]) {
                let side = if one_to_many { "left" } else { "right" };
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    render(&osig[j]),
                    render(&one[prev].labels),
                    render(&one[j].labels)
                )));
            }
            index.insert(&osig[j], (j, v));
        }
        let mut matched: FxHashSet<&Labels> = FxHashSet::default();
        let mut inserted: FxHashSet<Labels> = FxHashSet::default();
        for &(j, mv) in ms {
            let Some(&(k, ov)) = index.get(&msig[j]) else {
                continue;
            };
            let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
            // checked before filtering, so the error does not depend on the values
            if one_to_one && !matched.insert(&msig[j]) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            let (fl, fr) = if one_to_many { (ov, mv) } else { (mv, ov) };
            let (value, keep) = op.apply(fl, fr);
            let value = if return_bool {
                f64::from(u8::from(keep))
            } else if keep {
                value
            } else {
                continue;
            };
            let (labels, dn) = result_labels(&many[j], &one[k], op, return_bool, m, card, &include, delayed);
            if !one_to_one && !inserted.insert(labels.clone()) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches".into(),
                ));
            }
            out.push(labels, dn, t, value)?;
        }
    }
    Ok(Value::Vector(out.finish()))
}

#[allow(clippy::too_many_arguments)]
fn result_labels(
    many: &Series,
    one: &Series,
    op: Op,
    return_bool: bool,
    m: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    include: &[String],
    delayed: bool,
) -> (Labels, bool) {
    let (mut labels, mut dn) = if !op.is_comparison() || return_bool {
        drop_name(&many.labels, delayed)
    } else {
        (many.labels.clone(), many.drop_name)
    };
    if matches!(card, VectorMatchCardinality::OneToOne) {
        match m {
            Some(LabelModifier::Include(on)) => {
                let names: Vec<&str> = on.labels.iter().map(String::as_str).collect();
                let keep_name = dn && names.contains(&strata_tsdb::METRIC_NAME);
                labels = only(&labels, &names);
                dn = keep_name;
            }
            Some(LabelModifier::Exclude(ign)) => {
                let names: Vec<&str> = ign.labels.iter().map(String::as_str).collect();
                labels = without(&labels, &names);
            }
            None => {}
        }
    }
    for name in include {
        let v = one.labels.get(name).unwrap_or("");
        labels = with_label(&labels, name, v);
    }
    (labels, dn)
}
